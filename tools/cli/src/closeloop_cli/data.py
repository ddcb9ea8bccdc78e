"""Read-only access to the stored feedback and alerts (schema ``alerts``): export and re-score.

The CLI opens its own read-only transaction; it never writes to the database. Re-scoring
calls a sentiment deployment's ``POST /v1/score/batch`` (which publishes nothing) and reports
how labels change from each item's live score; with ``--apply`` it publishes the new scores
as ``sentiment.rescored`` events, which the alerts service stores beside the live ones.
"""

from __future__ import annotations

import asyncio
import csv
import re
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import orjson

from closeloop_cli.output import OperatorError
from closeloop_cli.pii import customer_opener
from closeloop_shared.contracts.sentiment import RescoredSentiment, Sentiment
from closeloop_shared.events import SentimentRescoredEvent, Topic, encode
from closeloop_shared.kafka.producer import EventProducer, OutgoingMessage

FEEDBACK_COLUMNS = (
    "id", "channel", "external_id", "touchpoint", "journey_stage", "language", "rating_type",
    "rating_value", "occurred_at", "received_at", "subject", "text",
    "sentiment_label", "sentiment_score", "sentiment_confidence", "sentiment_language",
    "model", "model_version",
)  # fmt: skip
CUSTOMER_COLUMN = "customer"
ALERT_COLUMNS = (
    "id", "feedback_id", "status", "priority", "owner", "rule_id", "channel", "created_at",
    "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "resolution_note",
)  # fmt: skip

# An item's live score: the first stored (a re-score is kept beside it, never replaces it).
_LIVE_SCORE = """
LEFT JOIN LATERAL (
    SELECT s.id, s.label AS sentiment_label, s.score AS sentiment_score,
           s.confidence AS sentiment_confidence, s.language AS sentiment_language,
           s.model, s.model_version, s.topics
    FROM alerts.sentiment_score s WHERE s.feedback_id = f.id
    ORDER BY s.id LIMIT 1
) s ON true
"""
FEEDBACK_QUERY = f"""
SELECT f.id, f.channel, f.external_id, f.touchpoint, f.journey_stage, f.language,
       f.rating_type, f.rating_value, f.occurred_at, f.received_at, f.subject, f.text,
       s.sentiment_label, s.sentiment_score, s.sentiment_confidence, s.sentiment_language,
       s.model, s.model_version, f.customer
FROM alerts.feedback f {_LIVE_SCORE}
WHERE f.received_at >= $1 AND f.received_at < $2
ORDER BY f.received_at, f.id
"""
FEEDBACK_COUNT = (
    "SELECT count(*) FROM alerts.feedback f WHERE f.received_at >= $1 AND f.received_at < $2"
)
ALERT_QUERY = """
SELECT a.id, a.feedback_id, a.status, a.priority, a.owner_id AS owner, a.rule_id, f.channel,
       a.created_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at, a.resolved_by,
       a.resolution_note
FROM alerts.alert a JOIN alerts.feedback f ON f.id = a.feedback_id
WHERE a.created_at >= $1 AND a.created_at < $2
ORDER BY a.created_at, a.id
"""
ALERT_COUNT = "SELECT count(*) FROM alerts.alert a WHERE a.created_at >= $1 AND a.created_at < $2"

_RELATIVE = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (naive means UTC), ``now``, or an age like ``90m``, ``24h``, ``7d``, ``2w``."""
    now = now or datetime.now(UTC)
    text = value.strip()
    if text == "now":
        return now
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise OperatorError(
            f"{value!r} is not a time: use ISO 8601, 'now' or an age like 24h"
        ) from error
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants ``postgresql://``; the services' setting is SQLAlchemy's URL."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


async def connect(url: str) -> asyncpg.Connection:
    try:
        async with asyncio.timeout(15):
            connection: asyncpg.Connection = await asyncpg.connect(asyncpg_dsn(url))
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise OperatorError(
            f"cannot connect to the database ({type(error).__name__}: {error}); "
            "set CLOSELOOP_DATABASE_URL or --database-url"
        ) from error
    return connection


async def _rows(
    connection: asyncpg.Connection, query: str, since: datetime, until: datetime
) -> AsyncIterator[dict[str, Any]]:
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        async for record in connection.cursor(query, since, until, prefetch=500):
            yield dict(record)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict | list):
        return value
    return str(value)


@dataclass
class ExportReport:
    rows: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)


async def export(
    url: str,
    kind: str,
    since: datetime,
    until: datetime,
    out: IO[str],
    fmt: str,
    include_customer: bool = False,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Write ``feedback`` or ``alerts`` received/raised in [since, until) as CSV or JSON Lines."""
    query, count, columns = (
        (FEEDBACK_QUERY, FEEDBACK_COUNT, list(FEEDBACK_COLUMNS))
        if kind == "feedback"
        else (ALERT_QUERY, ALERT_COUNT, list(ALERT_COLUMNS))
    )
    if kind == "feedback" and include_customer:
        columns.append(CUSTOMER_COLUMN)
        open_customer = customer_opener()  # before connecting: missing keys fail fast
    report = ExportReport()
    connection = await connect(url)
    try:
        if on_total is not None:
            on_total(int(await connection.fetchval(count, since, until)))
        writer = (
            csv.DictWriter(out, fieldnames=columns, extrasaction="ignore") if fmt == "csv" else None
        )
        if writer is not None:
            writer.writeheader()
        async for row in _rows(connection, query, since, until):
            plain = {name: _plain(row.get(name)) for name in columns}
            customer = plain.get(CUSTOMER_COLUMN)
            if isinstance(customer, str):
                plain[CUSTOMER_COLUMN] = open_customer(row["id"], orjson.loads(customer))
            if writer is not None:
                writer.writerow(
                    {
                        k: orjson.dumps(v).decode() if isinstance(v, dict | list) else v
                        for k, v in plain.items()
                    }
                )
            else:
                out.write(orjson.dumps(plain).decode() + "\n")
            report.rows += 1
            report.by_channel[str(row.get("channel"))] += 1
            if on_progress is not None:
                on_progress(1)
    finally:
        await connection.close()
    return report


# -- re-score -------------------------------------------------------------------------------

RESCORE_QUERY = f"""
SELECT f.id, f.channel, f.language, f.rating_type, f.rating_value, f.subject, f.text,
       f.attributes, s.sentiment_label, s.sentiment_score, s.model, s.model_version,
       s.topics AS sentiment_topics
FROM alerts.feedback f {_LIVE_SCORE}
WHERE f.received_at >= $1 AND f.received_at < $2
ORDER BY f.received_at, f.id
"""
# The re-scores of one model version stored beside the live score (closeloop rescore --apply).
FLIPS_QUERY = f"""
SELECT f.id, f.channel, s.sentiment_label, s.sentiment_score, s.model_version,
       s.topics AS sentiment_topics, r.label AS new_label, r.score AS new_score,
       r.model AS new_model, r.model_version AS new_model_version
FROM alerts.sentiment_score r
JOIN alerts.feedback f ON f.id = r.feedback_id
{_LIVE_SCORE}
WHERE r.model_version = $3 AND r.id <> s.id AND f.received_at >= $1 AND f.received_at < $2
ORDER BY f.received_at, f.id
"""
FLIPS_COUNT = """
SELECT count(*) FROM alerts.sentiment_score r JOIN alerts.feedback f ON f.id = r.feedback_id
WHERE r.model_version = $3 AND f.received_at >= $1 AND f.received_at < $2
"""
NO_TOPIC = "(no topic)"
# Event ids of re-scores: the same (item, model, version) is the same event on every run.
RESCORED_EVENT_NAMESPACE = uuid.UUID("5d0f3c8e-2f59-4c55-9a43-1b0e7d6a2c19")
RESCORE_SOURCE = "/closeloop/cli/rescore"


@dataclass
class RescoreReport:
    """Label changes from each item's live score to the new model's, by channel and by topic
    (an item's topics are those of its live score; one item counts under each of them)."""

    model: str = ""
    model_version: str = ""
    scored: Counter[str] = field(default_factory=Counter)
    flips: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    scored_by_topic: Counter[str] = field(default_factory=Counter)
    topic_flips: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    failures: int = 0
    published: int = 0

    @property
    def flipped(self) -> int:
        return sum(self.flips.values())

    def add(
        self, row: dict[str, Any], new: dict[str, Any], flips_out: IO[str] | None = None
    ) -> None:
        """Count one item: ``row`` has its channel and live score, ``new`` the new one."""
        channel = str(row["channel"])
        topics = [str(t) for t in _json_list(row.get("sentiment_topics"))] or [NO_TOPIC]
        old, label = row.get("sentiment_label") or "unscored", str(new["label"])
        self.scored[channel] += 1
        for topic in topics:
            self.scored_by_topic[topic] += 1
        if old == label:
            return
        self.flips[(channel, old, label)] += 1
        for topic in topics:
            self.topic_flips[(topic, old, label)] += 1
        if flips_out is not None:
            flips_out.write(
                orjson.dumps(
                    {
                        "feedback_id": str(row["id"]), "channel": channel,
                        "topics": [t for t in topics if t != NO_TOPIC],
                        "old_label": old, "new_label": label,
                        "old_score": row.get("sentiment_score"), "new_score": new.get("score"),
                        "old_model_version": row.get("model_version"),
                        "new_model_version": new.get("model_version"),
                    }
                ).decode() + "\n"
            )  # fmt: skip


def _json_list(value: object) -> list[object]:
    """asyncpg hands JSONB over as text."""
    if isinstance(value, str):
        value = orjson.loads(value)
    return list(value) if isinstance(value, list) else []


def _json_object(value: object) -> dict[str, Any]:
    if isinstance(value, str):
        value = orjson.loads(value)
    return dict(value) if isinstance(value, dict) else {}


def score_request(row: dict[str, Any]) -> dict[str, Any]:
    """One item of ``POST /v1/score/batch``: what the stream scored (channel, subject, text,
    rating, declared language, attributes such as a transcript), so only the model differs."""
    body: dict[str, Any] = {"text": row.get("text") or " "}
    for name in ("channel", "subject", "language"):
        if row.get(name):
            body[name] = row[name]
    if row.get("rating_type") and row.get("rating_value") is not None:
        value = float(row["rating_value"])
        body["rating"] = {
            "type": row["rating_type"],
            "value": int(value) if value.is_integer() else value,
        }
    attributes = _json_object(row.get("attributes"))
    if attributes:
        body["attributes"] = attributes
    return body


def rescored_message(row: dict[str, Any], sentiment: dict[str, Any]) -> OutgoingMessage:
    """The ``sentiment.rescored`` event of one item, keyed by its id like every event of it."""
    scored = Sentiment.model_validate(sentiment)
    feedback_id = uuid.UUID(str(row["id"]))
    event = SentimentRescoredEvent(
        id=str(
            uuid.uuid5(
                RESCORED_EVENT_NAMESPACE, f"{feedback_id}:{scored.model}:{scored.model_version}"
            )
        ),
        source=RESCORE_SOURCE,
        subject=str(feedback_id),
        time=scored.scored_at,
        data=RescoredSentiment(feedback_id=feedback_id, sentiment=scored),
    )
    return OutgoingMessage(
        Topic.SENTIMENT_RESCORED.value, encode(event), key=str(feedback_id).encode()
    )


class _Scorer:
    """Batches to the chosen deployment's ``POST /v1/score/batch``, a few in flight."""

    def __init__(
        self, client: httpx.AsyncClient, sentiment_url: str, model_version: str | None
    ) -> None:
        self._client = client
        self._url = sentiment_url
        self._model_version = model_version

    async def score(self, rows: list[dict[str, Any]]) -> dict[str, Any] | None:
        """The answer for ``rows`` (model, model_version, results), or None if refused."""
        body = {"items": [score_request(row) for row in rows]}
        for attempt in range(5):
            try:
                response = await self._client.post("/v1/score/batch", json=body)
            except httpx.HTTPError as error:
                raise OperatorError(
                    f"cannot reach the sentiment service at {self._url} ({type(error).__name__})"
                ) from error
            if response.status_code != 503:
                break
            # The model is still loading: wait as asked, a few times.
            await asyncio.sleep(float(response.headers.get("retry-after", "2")) * (attempt + 1))
        if response.status_code in (404, 405):
            raise OperatorError(
                f"{self._url} has no POST /v1/score/batch: deploy a sentiment version with it"
            )
        if response.status_code != 200:
            return None
        answer: dict[str, Any] = response.json()
        if self._model_version is not None and answer.get("model_version") != self._model_version:
            raise OperatorError(
                f"{self._url} runs {answer.get('model')} {answer.get('model_version')}, not "
                f"{self._model_version}: point --sentiment-url at a deployment of that version"
            )
        return answer


async def rescore(
    url: str,
    sentiment_url: str,
    since: datetime,
    until: datetime,
    model_version: str | None = None,
    flips_out: IO[str] | None = None,
    concurrency: int = 4,
    batch_size: int = 100,
    publisher: EventProducer | None = None,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RescoreReport:
    """Score the stored feedback of [since, until) with the deployment at ``sentiment_url``,
    count the label changes by channel and topic, and with a ``publisher`` publish each new
    score as a ``sentiment.rescored`` event (the alerts service stores it beside the live one).
    """
    report = RescoreReport()
    connection = await connect(url)
    in_flight = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(
        base_url=sentiment_url, timeout=120, transport=transport
    ) as client:
        scorer = _Scorer(client, sentiment_url, model_version)

        async def score(rows: list[dict[str, Any]]) -> None:
            try:
                answer = await scorer.score(rows)
                if answer is None:
                    report.failures += len(rows)
                    return
                report.model, report.model_version = answer["model"], answer["model_version"]
                results: list[dict[str, Any]] = answer["results"]
                for row, result in zip(rows, results, strict=True):
                    report.add(row, result, flips_out)
                if publisher is not None:
                    await publisher.send_many(
                        [
                            rescored_message(row, result)
                            for row, result in zip(rows, results, strict=True)
                        ]
                    )
                    report.published += len(rows)
            finally:
                in_flight.release()
                if on_progress is not None:
                    on_progress(len(rows))

        try:
            if on_total is not None:
                on_total(int(await connection.fetchval(FEEDBACK_COUNT, since, until)))
            async with asyncio.TaskGroup() as group:
                batch: list[dict[str, Any]] = []
                async for row in _rows(connection, RESCORE_QUERY, since, until):
                    batch.append(row)
                    if len(batch) >= batch_size:
                        # Bounded: reading waits while `concurrency` batches are scored.
                        await in_flight.acquire()
                        group.create_task(score(batch))
                        batch = []
                if batch:
                    await in_flight.acquire()
                    group.create_task(score(batch))
        except* Exception as errors:
            first = errors.exceptions[0]
            if isinstance(first, OperatorError):
                raise first from None
            raise OperatorError(
                f"re-score stopped ({type(first).__name__}: {first}); what was published is "
                "stored, and running it again publishes nothing twice"
            ) from first
        finally:
            await connection.close()
    return report


async def stored_flips(
    url: str,
    model_version: str,
    since: datetime,
    until: datetime,
    flips_out: IO[str] | None = None,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> RescoreReport:
    """The label changes of a stored re-score (``--apply``) against the live scores."""
    report = RescoreReport(model_version=model_version)
    connection = await connect(url)
    try:
        if on_total is not None:
            on_total(int(await connection.fetchval(FLIPS_COUNT, since, until, model_version)))
        async with connection.transaction(readonly=True, isolation="repeatable_read"):
            cursor = connection.cursor(FLIPS_QUERY, since, until, model_version, prefetch=500)
            async for record in cursor:
                row = dict(record)
                report.model = str(row["new_model"])
                new = {
                    "label": row["new_label"],
                    "score": row["new_score"],
                    "model_version": row["new_model_version"],
                }
                report.add(row, new, flips_out)
                if on_progress is not None:
                    on_progress(1)
    finally:
        await connection.close()
    return report


def open_output(path: Path | None) -> IO[str]:
    import sys

    if path is None or str(path) == "-":
        return sys.stdout
    return path.open("w", encoding="utf-8", newline="")
