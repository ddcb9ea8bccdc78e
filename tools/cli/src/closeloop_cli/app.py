"""The ``closeloop`` command: the jobs operators used to do by hand.

Every subcommand reads its addresses from the same environment variables the services use
(``CLOSELOOP_KAFKA_BOOTSTRAP_SERVERS``, ``CLOSELOOP_DATABASE_URL``) plus
``CLOSELOOP_GATEWAY_URL``, ``CLOSELOOP_API_KEY`` and ``CLOSELOOP_SENTIMENT_URL``.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

import click
import httpx
import orjson
from aiokafka.errors import KafkaError
from rich.progress import Progress, TaskID

from closeloop_cli import data, kafka_ops, keys, routing
from closeloop_cli.output import OperatorError, console, errors, progress, table
from closeloop_shared.config import KafkaSettings
from closeloop_shared.events import Topic
from closeloop_shared.kafka.admin import ensure_topics
from closeloop_shared.kafka.producer import EventProducer

T = TypeVar("T")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SCOPES = ("feedback:write", "replies:write", "alerts:read", "alerts:write", "admin")
ROLES = ("channel", "agent", "lead", "admin")


@dataclass
class Context:
    gateway_url: str
    api_key: str | None
    bootstrap_servers: str | None
    database_url: str | None
    sentiment_url: str

    def kafka(self, **overrides: Any) -> KafkaSettings:
        settings = KafkaSettings()
        if self.bootstrap_servers:
            overrides["bootstrap_servers"] = self.bootstrap_servers
        return settings.model_copy(update=overrides)

    def gateway(self) -> httpx.AsyncClient:
        if not self.api_key:
            raise OperatorError("set CLOSELOOP_API_KEY (or --api-key) to an admin API key")
        return httpx.AsyncClient(
            base_url=self.gateway_url,
            headers={"Authorization": f"Bearer {self.api_key}"},
            timeout=15,
        )

    def database(self) -> str:
        if not self.database_url:
            raise OperatorError(
                "set CLOSELOOP_DATABASE_URL (or --database-url); read-only access is enough"
            )
        return self.database_url


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return asyncio.run(coroutine)
    except httpx.ConnectError as error:
        raise OperatorError(f"cannot connect: {error}") from error


pass_context = click.make_pass_decorator(Context)


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option(
    "--gateway-url",
    envvar="CLOSELOOP_GATEWAY_URL",
    default="http://127.0.0.1:8000",
    show_default=True,
    help="The gateway (API keys).",
)
@click.option(
    "--api-key", envvar="CLOSELOOP_API_KEY", help="An admin API key [env CLOSELOOP_API_KEY]."
)
@click.option(
    "--bootstrap-servers",
    envvar="CLOSELOOP_KAFKA_BOOTSTRAP_SERVERS",
    help="Kafka brokers [env CLOSELOOP_KAFKA_BOOTSTRAP_SERVERS].",
)
@click.option(
    "--database-url",
    envvar="CLOSELOOP_DATABASE_URL",
    help="PostgreSQL, read-only is enough [env CLOSELOOP_DATABASE_URL].",
)
@click.option(
    "--sentiment-url",
    envvar="CLOSELOOP_SENTIMENT_URL",
    default="http://127.0.0.1:8002",
    show_default=True,
    help="The sentiment service (re-score, routing dry-run).",
)
@click.pass_context
def cli(
    ctx: click.Context,
    gateway_url: str,
    api_key: str | None,
    bootstrap_servers: str | None,
    database_url: str | None,
    sentiment_url: str,
) -> None:
    """Operate Closeloop: API keys, routing files, topics, lag, dead letters, re-scores, exports."""
    ctx.obj = Context(gateway_url, api_key, bootstrap_servers, database_url, sentiment_url)


# -- keys -----------------------------------------------------------------------------------


@cli.group("keys")
def keys_group() -> None:
    """Create, list, rotate and revoke API keys (through the gateway's admin API)."""


def _key_rows(items: list[dict[str, Any]]) -> list[tuple[object, ...]]:
    return [
        (k["id"], k["name"], k["prefix"], k.get("role") or "", k.get("team") or "",
         ",".join(k["scopes"]), k["created_at"][:19],
         (k.get("revoked_at") or "")[:19], (k.get("last_used_at") or "")[:19])
        for k in items
    ]  # fmt: skip


KEY_COLUMNS = (
    "id", "name", "prefix", "role", "team", "scopes", "created", "revoked", "last used"
)  # fmt: skip


@keys_group.command("list")
@click.option("--active", is_flag=True, help="Leave out revoked keys.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@pass_context
def keys_list(obj: Context, active: bool, as_json: bool) -> None:
    """Every key (never a secret)."""

    async def go() -> list[dict[str, Any]]:
        async with obj.gateway() as client:
            return await keys.list_keys(client, include_revoked=not active)

    items = run(go())
    if as_json:
        click.echo(orjson.dumps(items, option=orjson.OPT_INDENT_2).decode())
        return
    console.print(table(f"{len(items)} API keys", KEY_COLUMNS, _key_rows(items)))


def _show_secret(created: dict[str, Any]) -> None:
    console.print(f"[bold]{created['key']}[/]")
    team = f", team {created['team']}" if created.get("team") else ""
    errors.print(
        f"key [bold]{created['name']}[/] ({created['id']}, role {created.get('role')}{team}, "
        f"scopes {','.join(created['scopes'])}) "
        "created: the secret above is shown [bold]once[/]; store it now."
    )


@keys_group.command("create")
@click.argument("name")
@click.option(
    "-r",
    "--role",
    type=click.Choice(ROLES),
    help="channel (feedback, reply status), agent and lead (one team's alerts), admin.",
)
@click.option("-t", "--team", help="The team (an owner id, e.g. hotline-team) of an agent or lead.")
@click.option(
    "-s",
    "--scope",
    "scopes",
    multiple=True,
    type=click.Choice(SCOPES),
    help="Narrow the role's scopes; repeat for several (default: all the role allows).",
)
@pass_context
def keys_create(
    obj: Context, name: str, role: str | None, team: str | None, scopes: tuple[str, ...]
) -> None:
    """Create a key NAME; prints its secret once (stdout), the rest on stderr."""
    if role is None and not scopes:
        raise OperatorError("give --role (and --team for an agent or lead) or --scope")

    async def go() -> dict[str, Any]:
        async with obj.gateway() as client:
            return await keys.create_key(client, name, list(scopes), role=role, team=team)

    _show_secret(run(go()))


@keys_group.command("rotate")
@click.argument("key_id")
@click.option("--keep-old", is_flag=True, help="Leave the old key valid; revoke it later.")
@click.option("--name", help="Name of the new key (default: the old key's name).")
@pass_context
def keys_rotate(obj: Context, key_id: str, keep_old: bool, name: str | None) -> None:
    """Replace KEY_ID by a new key with the same name, role, team and scopes, then revoke it."""

    async def go() -> keys.Rotation:
        async with obj.gateway() as client:
            return await keys.rotate_key(client, key_id, keep_old=keep_old, name=name)

    rotation = run(go())
    _show_secret(rotation.new)
    if rotation.old_revoked:
        errors.print(f"old key {rotation.old['prefix']}… ({key_id}) revoked.")
    else:
        errors.print(
            f"old key {key_id} still valid: revoke it with `closeloop keys revoke {key_id}`."
        )


@keys_group.command("revoke")
@click.argument("key_id")
@pass_context
def keys_revoke(obj: Context, key_id: str) -> None:
    """Revoke KEY_ID (idempotent). Other gateway replicas honour it within their cache TTL."""

    async def go() -> None:
        async with obj.gateway() as client:
            await keys.revoke_key(client, key_id)

    run(go())
    console.print(f"revoked {key_id}")


# -- routing --------------------------------------------------------------------------------


@cli.group("routing")
def routing_group() -> None:
    """Validate a routing file and dry-run it against sample feedback."""


@routing_group.command("check")
@click.argument("file", type=click.Path(path_type=Path))
def routing_check(file: Path) -> None:
    """Validate FILE exactly as the alerts service loads it."""
    result = routing.check(file)
    if not result.ok:
        raise OperatorError(f"{file} is not valid:\n{result.message}")
    console.print(f"[green]ok[/] {result.message}")


@routing_group.command("dry-run")
@click.argument("samples", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--file",
    "file",
    type=click.Path(path_type=Path),
    help="A routing file not deployed yet (needs closeloop-alerts check-routing --samples).",
)
@click.option(
    "--alerts-url",
    envvar="CLOSELOOP_ALERTS_URL",
    default="http://127.0.0.1:8003",
    show_default=True,
    help="The alerts service whose loaded routing is asked.",
)
@pass_context
def routing_dry_run(obj: Context, samples: Path, file: Path | None, alerts_url: str) -> None:
    """Show the rule, owner and priority each sample in SAMPLES (JSON Lines) would get.

    Each line is a canonical feedback item, or {"feedback": ..., "sentiment": ...}; items
    without a sentiment are scored by the sentiment service first. Without --file the
    running alerts service answers with the routing it has loaded; nothing is stored.
    """
    if file is not None:
        result = routing.check(file)
        if not result.ok:
            raise OperatorError(f"{file} is not valid:\n{result.message}")
    items = routing.load_samples(samples)
    run(routing.score_missing(items, obj.sentiment_url))
    if file is not None:
        decisions = routing.dry_run(file, items)
        title = f"{file}: {len(items)} samples"
    else:
        decisions = run(routing.dry_run_service(alerts_url, items))
        title = f"routing loaded by {alerts_url}: {len(items)} samples"
    rows = []
    for position, (sample, decision) in enumerate(zip(items, decisions, strict=True)):
        feedback, sentiment = sample["feedback"], sample.get("sentiment") or {}
        rows.append((
            decision.get("index", position), feedback.get("channel"), feedback.get("external_id"),
            sentiment.get("label"), decision.get("owner") or "-", decision.get("priority") or "-",
            decision.get("rule_id") or ("default" if decision.get("owner") else "no alert"),
            decision.get("reason") or "",
        ))  # fmt: skip
    console.print(table(title, ("#", "channel", "external id", "sentiment", "owner", "priority",
                               "rule", "why"), rows))  # fmt: skip


# -- topics and lag -------------------------------------------------------------------------


@cli.group("topics")
def topics_group() -> None:
    """Create and list the Kafka topics."""


@topics_group.command("create")
@click.option(
    "--partitions", type=click.IntRange(1, 1000), help="For new topics (default: setting)."
)
@click.option("--replication-factor", type=click.IntRange(1, 10), help="For new topics.")
@pass_context
def topics_create(obj: Context, partitions: int | None, replication_factor: int | None) -> None:
    """Create every Closeloop topic and dead-letter topic that is missing (idempotent)."""
    overrides: dict[str, Any] = {}
    if partitions:
        overrides["topic_partitions"] = partitions
    if replication_factor:
        overrides["topic_replication_factor"] = replication_factor
    infos = run(kafka_ops.create_topics(obj.kafka(**overrides)))
    rows = [(t.name, t.partitions, "created" if t.created else "existed") for t in infos]
    console.print(table("topics", ("topic", "partitions", ""), rows))


@topics_group.command("list")
@pass_context
def topics_list(obj: Context) -> None:
    """Every topic on the broker with its partition count."""
    infos = run(kafka_ops.describe_topics(obj.kafka()))
    console.print(table("topics", ("topic", "partitions"), [(t.name, t.partitions) for t in infos]))


@cli.command("lag")
@click.option("--group", "groups", multiple=True, help="Only these groups (repeatable).")
@click.option("--topic", help="The topic of a --group that is not a Closeloop consumer.")
@click.option("--json", "as_json", is_flag=True, help="JSON instead of a table.")
@pass_context
def lag(obj: Context, groups: tuple[str, ...], topic: str | None, as_json: bool) -> None:
    """Consumer lag per group and partition: the high watermark minus the committed offset."""
    known = kafka_ops.known_groups()
    wanted = dict(known)
    if groups:
        unknown = [g for g in groups if g not in known]
        if unknown and topic is None:
            raise OperatorError(f"unknown group(s) {', '.join(unknown)}: pass --topic")
        wanted = {g: known.get(g) or topic or "" for g in groups}
    rows = run(kafka_ops.consumer_lag(obj.kafka(), wanted))
    if as_json:
        click.echo(orjson.dumps([{**r.__dict__, "lag": r.lag} for r in rows]).decode())
        return
    console.print(table(
        "consumer lag", ("group", "topic", "partition", "committed", "end", "lag"),
        [(r.group, r.topic, r.partition, "none" if r.committed is None else r.committed, r.end, r.lag)
         for r in rows],
    ))  # fmt: skip
    for group in wanted:
        total = sum(r.lag for r in rows if r.group == group)
        console.print(f"{group}: [bold]{total}[/] messages behind")


# -- dead letters ---------------------------------------------------------------------------


@cli.group("dlq")
def dlq_group() -> None:
    """Inspect dead-letter topics and replay them to their source topic."""


def _filter_options(function: Any) -> Any:
    for option in reversed([
        click.option("--reason", "reasons", multiple=True,
                     help="Only these reasons (undecodable, processing_failed); repeatable."),
        click.option("--error-contains", help="Only letters whose error contains this text."),
        click.option("--partition", type=int, help="Only this partition of the dead-letter topic."),
        click.option("--from-offset", type=int, help="Dead-letter offsets from (inclusive)."),
        click.option("--to-offset", type=int, help="Dead-letter offsets to (inclusive)."),
    ]):  # fmt: skip
        function = option(function)
    return function


def _selection(**kwargs: Any) -> kafka_ops.DeadLetterFilter:
    return kafka_ops.DeadLetterFilter(
        reasons=frozenset(kwargs["reasons"]),
        error_contains=kwargs["error_contains"],
        partition=kwargs["partition"],
        from_offset=kwargs["from_offset"],
        to_offset=kwargs["to_offset"],
    )


def _read(
    obj: Context, topic: str, selection: kafka_ops.DeadLetterFilter
) -> list[kafka_ops.DeadLetter]:
    with progress() as bar:
        task = bar.add_task(f"reading {topic}", total=None)
        return run(kafka_ops.read_dead_letters(
            obj.kafka(), topic, selection,
            on_total=lambda n: bar.update(task, total=n),
            on_progress=lambda n: bar.advance(task, n),
        ))  # fmt: skip


def _count(obj: Context, topic: str) -> int:
    with progress() as bar:
        task = bar.add_task(f"counting {topic}", total=None)
        return run(kafka_ops.count_records(
            obj.kafka(), topic,
            on_total=lambda n: bar.update(task, total=n),
            on_progress=lambda n: bar.advance(task, n),
        ))  # fmt: skip


@dlq_group.command("list")
@pass_context
def dlq_list(obj: Context) -> None:
    """The dead-letter topics and how many messages each holds, counted by reading them
    (up to the end each had when the count began)."""
    counts = [(name, _count(obj, name)) for name in kafka_ops.known_dead_letter_topics()]
    console.print(table("dead-letter topics", ("topic", "messages"), counts))


@dlq_group.command("show")
@click.argument("topic")
@_filter_options
@click.option("--limit", type=int, default=50, show_default=True, help="Rows to show.")
@pass_context
def dlq_show(obj: Context, /, topic: str, limit: int, **filters: Any) -> None:
    """List the letters in TOPIC: where each came from, why, and the error."""
    letters = _read(obj, topic, _selection(**filters))
    rows = [
        (f"{d.partition}@{d.offset}", d.origin, d.reason, d.error[:80]) for d in letters[:limit]
    ]
    console.print(
        table(f"{topic}: {len(letters)} matching", ("letter", "from", "reason", "error"), rows)
    )


@dlq_group.command("replay")
@click.argument("topic")
@_filter_options
@click.option("--dry-run", is_flag=True, help="Show what would be replayed; send nothing.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def dlq_replay(obj: Context, /, topic: str, dry_run: bool, yes: bool, **filters: Any) -> None:
    """Send the matching letters of TOPIC back to their source topic (original key and bytes).

    Nothing is removed from the dead-letter topic; consumers are idempotent, so replaying a
    letter twice is harmless. Resume a partial replay with --from-offset.
    """
    letters = _read(obj, topic, _selection(**filters))
    if not letters:
        console.print("nothing matches: nothing to replay")
        return
    by_source: dict[str, int] = {}
    for letter in letters:
        by_source[letter.source_topic or "(no source header)"] = (
            by_source.get(letter.source_topic or "(no source header)", 0) + 1
        )
    console.print(table("to replay", ("source topic", "letters"), sorted(by_source.items())))
    if dry_run:
        report = run(kafka_ops.replay(obj.kafka(), letters, dry_run=True))
        console.print(f"dry run: {report.matched} letters would be replayed; nothing sent")
        return
    if not yes and not click.confirm(f"replay {len(letters)} letters?", err=True):
        raise click.Abort
    with progress() as bar:
        task = bar.add_task("replaying", total=len(letters))
        report = run(
            kafka_ops.replay(obj.kafka(), letters, on_progress=lambda n: bar.advance(task, n))
        )
    console.print(
        f"[green]replayed {report.replayed}[/] of {report.matched} matching letters"
        + (f"; {report.skipped_no_source} had no source header" if report.skipped_no_source else "")
    )
    for partition, offset in sorted(report.last_offsets.items()):
        console.print(
            f"  partition {partition}: up to offset {offset} (next run: --partition {partition} --from-offset {offset + 1})"
        )


# -- re-score and export --------------------------------------------------------------------

_TIME_HELP = "ISO 8601, 'now', or an age like 24h, 7d."


def _time_range(since: str | None, until: str, everything: bool) -> tuple[datetime, datetime]:
    if everything == (since is not None):
        raise OperatorError("give either --since (and --until) or --all")
    if everything:
        return EPOCH, data.parse_time("now")
    assert since is not None
    return data.parse_time(since), data.parse_time(until)


def _flips_file(path: Path | None) -> IO[str] | None:
    return path.open("w", encoding="utf-8") if path is not None else None


def _show_flips(report: data.RescoreReport, title: str) -> None:
    def changes(flips: Counter[tuple[str, str, str]], key: str) -> tuple[int, str]:
        mine = sorted((a, b, n) for (k, a, b), n in flips.items() if k == key)
        return sum(n for _, _, n in mine), ", ".join(f"{a}→{b}: {n}" for a, b, n in mine)

    for heading, scored, flips in (
        ("channel", report.scored, report.flips),
        ("topic", report.scored_by_topic, report.topic_flips),
    ):
        rows = [(key, scored[key], *changes(flips, key)) for key in sorted(scored)]
        console.print(table(f"{title}, by {heading}", (heading, "scored", "changed", "changes"),
                            rows))  # fmt: skip


@cli.command("rescore")
@click.option("--since", help=_TIME_HELP)
@click.option("--until", default="now", show_default=True, help=_TIME_HELP)
@click.option("--all", "everything", is_flag=True, help="Every stored item (instead of --since).")
@click.option(
    "--model-version",
    help="Refuse unless the sentiment deployment runs this version (required with --apply).",
)
@click.option(
    "--apply",
    is_flag=True,
    help="Store the new scores: publish them on closeloop.sentiment.rescored.v1 (the alerts "
    "service keeps them beside the live ones; alerts are never changed).",
)
@click.option(
    "--flips",
    "flips_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write each changed label to this JSON Lines file.",
)
@click.option("--batch-size", type=click.IntRange(1, 500), default=100, show_default=True)
@click.option("--concurrency", type=click.IntRange(1, 32), default=4, show_default=True,
              help="Batches scored at the same time.")  # fmt: skip
@pass_context
def rescore(obj: Context, since: str | None, until: str, everything: bool,
            model_version: str | None, apply: bool, flips_path: Path | None, batch_size: int,
            concurrency: int) -> None:  # fmt: skip
    """Score stored feedback again with a chosen model version and report how labels change
    from each item's live score, by channel and by topic.

    Calls --sentiment-url's POST /v1/score/batch (a score-only deployment of the new version,
    CLOSELOOP_SENTIMENT_CONSUME_ENABLED=false), which publishes nothing. Without --apply nothing
    is stored; with it each new score is published for the alerts service, which stores it
    beside the live score (re-running stores nothing twice). Live scores and alerts never change.
    """
    start, end = _time_range(since, until, everything)
    if apply and model_version is None:
        raise OperatorError("--apply needs --model-version: name the version you store")
    flips_out = _flips_file(flips_path)
    publisher = EventProducer(obj.kafka(), client_id="closeloop-cli-rescore", ack_timeout_s=30.0)

    async def go(bar: Progress, task: TaskID) -> data.RescoreReport:
        if apply:
            try:
                async with asyncio.timeout(30):
                    await ensure_topics(obj.kafka(), [Topic.SENTIMENT_RESCORED.value])
                    await publisher.start()
            except (TimeoutError, KafkaError, OSError) as error:
                raise OperatorError(
                    f"cannot reach the broker at {obj.kafka().bootstrap_servers} "
                    f"({type(error).__name__}): --apply publishes the new scores there"
                ) from error
        try:
            return await data.rescore(
                obj.database(), obj.sentiment_url, start, end, model_version, flips_out,
                concurrency, batch_size, publisher if apply else None,
                on_total=lambda n: bar.update(task, total=n),
                on_progress=lambda n: bar.advance(task, n),
            )  # fmt: skip
        finally:
            await publisher.stop()

    try:
        with progress() as bar:
            report = run(go(bar, bar.add_task("re-scoring", total=None)))
    finally:
        if flips_out is not None:
            flips_out.close()
    _show_flips(report, f"re-scored with {report.model} {report.model_version}")
    total = sum(report.scored.values())
    verb = "changed" if apply else "would change"
    console.print(f"{report.flipped} of {total} labels {verb}; {report.failures} failed to score")
    if apply:
        console.print(
            f"published {report.published} scores of {report.model_version} to "
            f"{Topic.SENTIMENT_RESCORED.value}: the alerts service stores them beside the live "
            f"ones (see `closeloop rescore-flips --model-version {report.model_version}`)"
        )
    else:
        console.print("nothing stored (--apply stores the new scores)")


@cli.command("rescore-flips")
@click.option("--model-version", required=True, help="The re-score's model version.")
@click.option("--since", help=_TIME_HELP)
@click.option("--until", default="now", show_default=True, help=_TIME_HELP)
@click.option("--all", "everything", is_flag=True, help="Every stored item (instead of --since).")
@click.option(
    "--flips",
    "flips_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write each changed label to this JSON Lines file.",
)
@pass_context
def rescore_flips(obj: Context, model_version: str, since: str | None, until: str,
                  everything: bool, flips_path: Path | None) -> None:  # fmt: skip
    """Label changes of a stored re-score (rescore --apply) against the live scores, by
    channel and by topic, read from the database (items by received time)."""
    start, end = _time_range(since, until, everything)
    flips_out = _flips_file(flips_path)
    try:
        with progress() as bar:
            task = bar.add_task(f"reading {model_version} scores", total=None)
            report = run(data.stored_flips(
                obj.database(), model_version, start, end, flips_out,
                on_total=lambda n: bar.update(task, total=n),
                on_progress=lambda n: bar.advance(task, n),
            ))  # fmt: skip
    finally:
        if flips_out is not None:
            flips_out.close()
    total = sum(report.scored.values())
    if total == 0:
        console.print(f"no stored scores of model version {model_version} in that range")
        return
    _show_flips(report, f"stored re-score {report.model} {model_version}")
    console.print(f"{report.flipped} of {total} labels changed from the live score")


@cli.command("export")
@click.argument("kind", type=click.Choice(["feedback", "alerts"]))
@click.option("--since", required=True, help=_TIME_HELP)
@click.option("--until", default="now", show_default=True, help=_TIME_HELP)
@click.option(
    "--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="jsonl", show_default=True
)
@click.option(
    "-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Default: stdout."
)
@click.option(
    "--include-customer", is_flag=True, help="Also export customer contact details (PII)."
)
@pass_context
def export(obj: Context, kind: str, since: str, until: str, fmt: str, output: Path | None,
           include_customer: bool) -> None:  # fmt: skip
    """Export feedback (by received time) or alerts (by creation time) as CSV or JSON Lines."""
    start, end = data.parse_time(since), data.parse_time(until)
    out = data.open_output(output)
    try:
        with progress() as bar:
            task = bar.add_task(f"exporting {kind}", total=None)
            report = run(data.export(
                obj.database(), kind, start, end, out, fmt, include_customer,
                on_total=lambda n: bar.update(task, total=n),
                on_progress=lambda n: bar.advance(task, n),
            ))  # fmt: skip
    finally:
        if output is not None:
            out.close()
    summary = ", ".join(f"{c}: {n}" for c, n in sorted(report.by_channel.items())) or "none"
    errors.print(f"exported {report.rows} {kind} ({summary})" + (f" to {output}" if output else ""))
