"""The ``closeloop`` operator CLI against a running stack: keys, topics, lag, dead letters,
export, re-score and routing checks, run as the console script an operator runs."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import re
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
import uvicorn

from closeloop_devstack.stack import Stack, pii_keys
from closeloop_sentiment.app import create_app as create_sentiment_app
from closeloop_sentiment.config import SentimentSettings
from closeloop_sentiment.scoring import ScoringInput
from closeloop_shared.contracts.feedback import FeedbackIn, identify
from closeloop_shared.contracts.sentiment import Sentiment, SentimentLabel
from closeloop_shared.events import FeedbackReceivedEvent, Topic, dead_letter_topic, encode
from closeloop_shared.kafka.producer import EventProducer, OutgoingMessage

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CLOSELOOP = Path(sys.executable).parent / "closeloop"
SENTIMENT_DLQ = dead_letter_topic(Topic.FEEDBACK_RECEIVED, "closeloop-sentiment")


def closeloop(
    stack: Stack, *args: str, api_key: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environment = {
        **os.environ,
        "COLUMNS": "250",
        "CLOSELOOP_GATEWAY_URL": stack.url("gateway"),
        "CLOSELOOP_API_KEY": api_key if api_key is not None else stack.config.admin_key,
        "CLOSELOOP_KAFKA_BOOTSTRAP_SERVERS": stack.bootstrap_servers,
        "CLOSELOOP_DATABASE_URL": stack.database_url,
        "CLOSELOOP_SENTIMENT_URL": stack.url("sentiment"),
        # The stack's PII keys: exporting customer data opens the sealed fields.
        **pii_keys(stack.config.state_dir),
        **(env or {}),
    }
    return subprocess.run(
        [str(CLOSELOOP), *args],
        env=environment,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _until(check: Callable[[], bool], what: str, timeout_s: float = 45) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not true after {timeout_s:.0f}s")
        time.sleep(0.3)


def _feedback(text: str, channel: str = "app") -> dict[str, Any]:
    return {
        "channel": channel,
        "external_id": f"ops-{uuid.uuid4().hex}",
        "text": text,
        "occurred_at": datetime.now(UTC).isoformat(),
        "touchpoint": "checkout",
        "journey_stage": "purchase",
        "customer": {"email": "ops-test@example.com"},
    }


def _stored(stack: Stack, feedback_id: str) -> dict[str, Any] | None:
    response = httpx.get(
        f"{stack.url('gateway')}/v1/feedback/{feedback_id}",
        headers={"Authorization": f"Bearer {stack.config.admin_key}"},
        timeout=10,
    )
    return response.json() if response.status_code == 200 else None


def _post_and_wait(stack: Stack, item: dict[str, Any]) -> str:
    response = httpx.post(
        f"{stack.url('gateway')}/v1/feedback",
        json=item,
        headers={"Authorization": f"Bearer {stack.config.admin_key}"},
        timeout=15,
    )
    assert response.status_code == 202, response.text
    feedback_id: str = response.json()["id"]
    _until(lambda: _stored(stack, feedback_id) is not None, f"feedback {feedback_id} stored")
    return feedback_id


# -- keys -----------------------------------------------------------------------------------


def _keys(stack: Stack) -> dict[str, dict[str, Any]]:
    return {k["id"]: k for k in orjson.loads(ok(closeloop(stack, "keys", "list", "--json")))}


def _status(stack: Stack, key: str) -> int:
    return httpx.get(
        f"{stack.url('gateway')}/v1/admin/api-keys",
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    ).status_code


def test_keys_create_list_rotate_revoke(ops_stack: Stack) -> None:
    name = f"ops-{uuid.uuid4().hex[:8]}"
    created = closeloop(ops_stack, "keys", "create", name, "-s", "admin")
    secret = ok(created).strip()
    assert secret.startswith("clk_"), created
    assert "shown once" in created.stderr
    (old,) = [k for k in _keys(ops_stack).values() if k["name"] == name]
    assert old["scopes"] == ["admin"]
    assert _status(ops_stack, secret) == 200

    rotated = closeloop(ops_stack, "keys", "rotate", old["id"])
    new_secret = ok(rotated).strip()
    assert new_secret.startswith("clk_")
    assert new_secret != secret
    assert "revoked" in rotated.stderr
    keys = _keys(ops_stack)
    assert keys[old["id"]]["revoked_at"] is not None
    (new,) = [k for k in keys.values() if k["name"] == name and k["revoked_at"] is None]
    assert new["scopes"] == ["admin"]
    assert _status(ops_stack, secret) == 401
    assert _status(ops_stack, new_secret) == 200

    table = ok(closeloop(ops_stack, "keys", "list"))
    assert name in table
    ok(closeloop(ops_stack, "keys", "revoke", new["id"]))
    assert _status(ops_stack, new_secret) == 401
    active = ok(closeloop(ops_stack, "keys", "list", "--active", "--json"))
    assert name not in active


def test_keys_without_an_admin_key_say_what_to_set(ops_stack: Stack) -> None:
    result = closeloop(ops_stack, "keys", "list", api_key="")
    assert result.returncode == 1
    assert "CLOSELOOP_API_KEY" in result.stderr
    refused = closeloop(ops_stack, "keys", "list", api_key="clk_" + "x" * 43)
    assert refused.returncode == 1
    assert "401" in refused.stderr


def test_rotating_an_unknown_key_is_a_clear_error(ops_stack: Stack) -> None:
    result = closeloop(ops_stack, "keys", "rotate", str(uuid.uuid4()))
    assert result.returncode == 1
    assert "no key with id" in result.stderr


# -- topics and lag -------------------------------------------------------------------------


def test_topics_create_is_idempotent_and_list_shows_partitions(ops_stack: Stack) -> None:
    created = ok(closeloop(ops_stack, "topics", "create"))
    assert "closeloop.feedback.received.v1" in created
    assert "created" not in created.replace("topics", "")  # the stack created them already
    listed = ok(closeloop(ops_stack, "topics", "list"))
    assert SENTIMENT_DLQ in listed


def test_lag_per_group_and_partition_drains_to_zero(ops_stack: Stack) -> None:
    _post_and_wait(ops_stack, _feedback("Checkout is broken again, I am furious"))

    def drained() -> bool:
        rows = orjson.loads(ok(closeloop(ops_stack, "lag", "--json")))
        assert {r["group"] for r in rows} == {
            "closeloop-sentiment",
            "closeloop-alerts",
            "closeloop-alerts-rescores",
        }
        assert all(r["end"] >= 0 for r in rows)
        return sum(r["lag"] for r in rows) == 0 and any(r["end"] > 0 for r in rows)

    _until(drained, "lag of both groups back to 0")
    table = ok(closeloop(ops_stack, "lag"))
    assert "closeloop-sentiment: 0 messages behind" in table
    partitions = orjson.loads(
        ok(closeloop(ops_stack, "lag", "--json", "--group", "closeloop-alerts"))
    )
    assert sorted(r["partition"] for r in partitions) == list(range(6))


# -- dead letters ---------------------------------------------------------------------------


async def _dead_letter(stack: Stack, value: bytes, key: bytes, reason: str, marker: str) -> None:
    producer = EventProducer(stack.kafka_settings(), client_id="ops-test")
    await producer.start()
    try:
        await producer.send(
            OutgoingMessage(
                SENTIMENT_DLQ,
                value,
                key=key,
                headers=[
                    ("x-closeloop-dlq-source-topic", Topic.FEEDBACK_RECEIVED.value.encode()),
                    ("x-closeloop-dlq-source-partition", b"0"),
                    ("x-closeloop-dlq-source-offset", b"42"),
                    ("x-closeloop-dlq-consumer-group", b"closeloop-sentiment"),
                    ("x-closeloop-dlq-reason", reason.encode()),
                    ("x-closeloop-dlq-error", f"RuntimeError: {marker}".encode()),
                ],
            )
        )
    finally:
        await producer.stop()


def test_dead_letters_are_shown_and_a_filtered_replay_closes_the_loop(ops_stack: Stack) -> None:
    marker = f"ops-test-{uuid.uuid4().hex[:8]}"
    item = FeedbackIn.model_validate(_feedback("The app crashed and I lost my order, terrible"))
    feedback = identify(item, datetime.now(UTC))
    event = FeedbackReceivedEvent(
        id=str(feedback.id),
        source="/closeloop/ingest/ops-test",
        subject=str(feedback.id),
        time=feedback.received_at,
        data=feedback,
    )
    key = str(feedback.id).encode()
    asyncio.run(_dead_letter(ops_stack, encode(event), key, "processing_failed", marker))
    asyncio.run(_dead_letter(ops_stack, b"not json", b"junk", "undecodable", marker))

    shown = ok(closeloop(ops_stack, "dlq", "show", SENTIMENT_DLQ, "--error-contains", marker))
    assert "2 matching" in shown
    assert "processing_failed" in shown
    assert "undecodable" in shown
    assert "closeloop.feedback.received.v1[0]@42" in shown
    listed = ok(closeloop(ops_stack, "dlq", "list"))
    assert SENTIMENT_DLQ in listed

    selection = ("--error-contains", marker, "--reason", "processing_failed")
    dry = ok(closeloop(ops_stack, "dlq", "replay", SENTIMENT_DLQ, *selection, "--dry-run"))
    assert "1 letters would be replayed" in dry
    assert _stored(ops_stack, str(feedback.id)) is None

    replayed = ok(closeloop(ops_stack, "dlq", "replay", SENTIMENT_DLQ, *selection, "--yes"))
    assert "replayed 1" in replayed
    _until(lambda: _stored(ops_stack, str(feedback.id)) is not None, "the replayed item stored")
    stored = _stored(ops_stack, str(feedback.id))
    assert stored is not None
    assert stored["sentiment"]["label"] == "negative"

    nothing = ok(
        closeloop(
            ops_stack,
            "dlq",
            "replay",
            SENTIMENT_DLQ,
            "--error-contains",
            "no-such-error-text",
            "--yes",
        )
    )
    assert "nothing to replay" in nothing


def test_dlq_list_counts_the_letters_by_reading_them(ops_stack: Stack) -> None:
    # Nothing else writes to the re-score consumer's dead-letter topic in this stack.
    topic = dead_letter_topic(Topic.SENTIMENT_RESCORED, "closeloop-alerts-rescores")

    async def produce(count: int) -> None:
        producer = EventProducer(ops_stack.kafka_settings(), client_id="ops-test")
        await producer.start()
        try:
            # Batched produces: the case where Tansu's end offsets are not a count.
            await producer.send_many(
                [OutgoingMessage(topic, b"junk", key=f"k{n}".encode()) for n in range(count)]
            )
        finally:
            await producer.stop()

    def counted() -> int:
        listed = ok(closeloop(ops_stack, "dlq", "list"))
        found = re.search(rf"{re.escape(topic)}\s*│\s*(\d+)", listed)
        assert found is not None, listed
        return int(found.group(1))

    before = counted()
    asyncio.run(produce(7))
    asyncio.run(produce(5))
    assert counted() == before + 12
    shown = ok(closeloop(ops_stack, "dlq", "show", topic, "--limit", "0"))
    assert f"{before + 12} matching" in " ".join(shown.split())  # the title may wrap


def test_replaying_an_unknown_topic_names_the_problem(ops_stack: Stack) -> None:
    result = closeloop(ops_stack, "dlq", "replay", "closeloop.nope.dlq", "--yes")
    assert result.returncode == 1
    assert "does not exist" in result.stderr


# -- export and re-score --------------------------------------------------------------------


def test_export_feedback_and_alerts_as_json_lines_and_csv(ops_stack: Stack, tmp_path: Path) -> None:
    feedback_id = _post_and_wait(ops_stack, _feedback("Refund never arrived, still waiting"))

    out = tmp_path / "feedback.jsonl"
    result = closeloop(ops_stack, "export", "feedback", "--since", "1h", "-o", str(out))
    ok(result)
    rows = [orjson.loads(line) for line in out.read_text().splitlines()]
    mine = next(r for r in rows if r["id"] == feedback_id)
    assert mine["touchpoint"] == "checkout"
    assert mine["sentiment_label"] == "negative"
    assert "customer" not in mine  # PII only on request
    assert f"exported {len(rows)} feedback" in result.stderr

    with_customer = ok(
        closeloop(ops_stack, "export", "feedback", "--since", "1h", "--include-customer")
    )
    assert "ops-test@example.com" in with_customer

    alerts_csv = ok(closeloop(ops_stack, "export", "alerts", "--since", "1h", "--format", "csv"))
    alerts = list(csv.DictReader(io.StringIO(alerts_csv)))
    assert any(a["feedback_id"] == feedback_id for a in alerts)
    assert {"status", "priority", "owner", "channel", "created_at"} <= set(alerts[0])

    empty = closeloop(
        ops_stack, "export", "alerts", "--since", "2000-01-01", "--until", "2000-01-02"
    )
    assert "exported 0 alerts" in ok(empty) + empty.stderr


NEW_VERSION = "9.9.9-ops-test"


class CraftedScorer:
    """A "new model version" whose answer the test knows: the label named by a marker in the
    text (``[new:positive]``), neutral without one."""

    model_name = "closeloop-lexicon"
    model_version = NEW_VERSION

    def score_batch(self, items: Sequence[ScoringInput]) -> list[Sentiment]:
        results = []
        for item in items:
            found = re.search(r"\[new:(\w+)\]", item.text)
            label = SentimentLabel(found.group(1)) if found else SentimentLabel.NEUTRAL
            results.append(
                Sentiment(
                    label=label,
                    score={"negative": -0.8, "neutral": 0.0, "positive": 0.8}[label.value],
                    confidence=0.9,
                    language="en",
                    model=self.model_name,
                    model_version=self.model_version,
                    scored_at=datetime.now(UTC),
                    topics=["crafted"],
                )
            )
        return results


@pytest.fixture(scope="module")
def new_model() -> Iterator[str]:
    """A score-only sentiment deployment of the new version (it joins no consumer group)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    app = create_sentiment_app(
        SentimentSettings(environment="test", consume_enabled=False),
        load_scorer=CraftedScorer,
    )
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="new-model", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/readyz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    _until(ready, "the new model's deployment ready")
    yield url
    server.should_exit = True
    thread.join(timeout=30)


# (channel, text, the new model's label): texts whose live (lexicon) label is unambiguous.
CRAFTED = [
    ("app", "The app keeps crashing at checkout, terrible, I want a refund", "positive"),
    ("app", "Love the new app, fast and easy, great job", "negative"),
    ("app", "The app crashed again and charged me twice, awful", "negative"),
    ("email", "I was charged twice and nobody answers, furious", "positive"),
    ("email", "Thank you so much, the refund arrived quickly, wonderful", "positive"),
    ("social", "Worst delivery ever, the parcel never arrived, angry", "neutral"),
    ("social", "Great service, the delivery was early, thanks", "negative"),
]


def _score_history(stack: Stack, feedback_id: str) -> dict[str, Any]:
    response = httpx.get(f"{stack.url('alerts')}/v1/feedback/{feedback_id}/scores", timeout=10)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def _alert_ids(stack: Stack) -> set[str]:
    response = httpx.get(
        f"{stack.url('gateway')}/v1/alerts",
        params={"limit": 200},
        headers={"Authorization": f"Bearer {stack.config.admin_key}"},
        timeout=10,
    )
    return {alert["id"] for alert in response.json()["items"]}


def _rescores_drained(stack: Stack) -> bool:
    rows = orjson.loads(
        ok(closeloop(stack, "lag", "--json", "--group", "closeloop-alerts-rescores"))
    )
    return sum(r["lag"] for r in rows) == 0 and any(r["end"] > 0 for r in rows)


def _flip_set(path: Path) -> set[tuple[str, str, str, str, tuple[str, ...]]]:
    return {
        (f["feedback_id"], f["channel"], f["old_label"], f["new_label"], tuple(f["topics"]))
        for f in map(orjson.loads, path.read_text().splitlines())
    }


def test_rescore_applies_a_new_model_version_beside_the_live_scores(
    ops_stack: Stack, new_model: str, tmp_path: Path
) -> None:
    since = datetime.now(UTC).isoformat()
    posted = [
        (_post_and_wait(ops_stack, _feedback(f"{text} [new:{label}]", channel)), channel, label)
        for channel, text, label in CRAFTED
    ]
    until = datetime.now(UTC).isoformat()
    live: dict[str, dict[str, Any]] = {}
    for fid, _, _ in posted:
        stored_item = _stored(ops_stack, fid)
        assert stored_item is not None
        live[fid] = stored_item
    # What the report must say, from the live labels and topics the pipeline stored.
    expected: set[tuple[str, str, str, str, tuple[str, ...]]] = set()
    by_channel: Counter[str] = Counter()
    by_topic: Counter[str] = Counter()
    for fid, channel, label in posted:
        sentiment = live[fid]["sentiment"]
        if sentiment["label"] != label:
            expected.add((fid, channel, sentiment["label"], label, tuple(sentiment["topics"])))
            by_channel[channel] += 1
            for topic in sentiment["topics"] or ["(no topic)"]:
                by_topic[topic] += 1
    assert len(expected) >= 4, live  # the crafted set flips something on every channel
    alerts_before = _alert_ids(ops_stack)
    window = ("--since", since, "--until", until)

    def with_new_model(*args: str) -> subprocess.CompletedProcess[str]:
        return closeloop(ops_stack, *args, env={"CLOSELOOP_SENTIMENT_URL": new_model})

    preview = tmp_path / "preview.jsonl"
    report = ok(with_new_model("rescore", *window, "--flips", str(preview)))
    assert f"{len(expected)} of {len(posted)} labels would change" in report
    assert "nothing stored" in report
    assert _flip_set(preview) == expected
    for channel, flips in by_channel.items():
        assert re.search(rf"{channel}\s*│\s*\d+\s*│\s*{flips}\s*│", report), report
    for topic, flips in by_topic.items():
        assert re.search(rf"{re.escape(topic)}\s*│\s*\d+\s*│\s*{flips}\s*│", report), report

    refused = with_new_model("rescore", *window, "--apply")
    assert refused.returncode == 1
    assert "--apply needs --model-version" in refused.stderr
    wrong = with_new_model("rescore", *window, "--model-version", "0.0.0-nope")
    assert wrong.returncode == 1
    assert "not 0.0.0-nope" in wrong.stderr

    applied = ok(with_new_model("rescore", *window, "--model-version", NEW_VERSION, "--apply"))
    assert f"published {len(posted)} scores of {NEW_VERSION}" in applied
    _until(
        lambda: all(len(_score_history(ops_stack, fid)["scores"]) == 2 for fid, _, _ in posted),
        "every re-score stored beside the live score",
    )
    for fid, _, label in posted:
        history = _score_history(ops_stack, fid)
        assert history["live"]["model_version"] == live[fid]["sentiment"]["model_version"]
        assert [(s["model_version"], s["live"]) for s in history["scores"]][1] == (
            NEW_VERSION,
            False,
        )
        assert history["scores"][1]["label"] == label
        # The live score is what the feedback API still shows; nothing else changed.
        assert _stored(ops_stack, fid) == live[fid]
    assert _alert_ids(ops_stack) == alerts_before

    stored = tmp_path / "stored.jsonl"
    flips_report = ok(
        with_new_model("rescore-flips", "--model-version", NEW_VERSION,
                  "--since", since, "--until", until, "--flips", str(stored))
    )  # fmt: skip
    assert f"{len(expected)} of {len(posted)} labels changed" in flips_report
    assert _flip_set(stored) == expected

    # Running it again publishes the same events; the alerts service stores nothing twice.
    ok(with_new_model("rescore", *window, "--model-version", NEW_VERSION, "--apply"))
    _until(lambda: _rescores_drained(ops_stack), "the second run consumed")
    assert all(len(_score_history(ops_stack, fid)["scores"]) == 2 for fid, _, _ in posted)
    assert _alert_ids(ops_stack) == alerts_before

    bad_time = with_new_model("rescore", "--since", "yesterday-ish")
    assert bad_time.returncode == 1
    assert "is not a time" in bad_time.stderr
    neither = with_new_model("rescore")
    assert neither.returncode == 1
    assert "--since" in neither.stderr


# -- routing --------------------------------------------------------------------------------


def test_routing_check_accepts_a_good_file_and_names_the_problem_in_a_bad_one(
    ops_stack: Stack, tmp_path: Path
) -> None:
    good = ok(closeloop(ops_stack, "routing", "check", str(ops_stack.config.routing_file)))
    assert "ok" in good
    assert "1 owners" in good
    bad = tmp_path / "bad.yaml"
    bad.write_text("owners: []\nrules: []\ndefault_owner: nobody\n")
    result = closeloop(ops_stack, "routing", "check", str(bad))
    assert result.returncode == 1
    assert "owners" in result.stderr


FAKE_ALERTS_CLI = '''#!{python}
"""Stands in for `closeloop-alerts check-routing FILE [--samples FILE]` (the dry-run contract)."""
import json, sys
args = sys.argv[1:]
if "--samples" not in args:
    print(args[1] + ": 1 owners, 0 rules")
    sys.exit(0)
samples = [json.loads(l) for l in open(args[args.index("--samples") + 1]) if l.strip()]
for i, s in enumerate(samples):
    negative = s["sentiment"]["label"] == "negative"
    print(json.dumps({{"index": i, "owner": "cx-team" if negative else None,
                      "priority": "medium" if negative else None, "rule_id": None}}))
'''


def test_routing_dry_run_of_a_file_scores_samples_and_shows_each_decision(
    ops_stack: Stack, tmp_path: Path
) -> None:
    fake = tmp_path / "closeloop-alerts"
    fake.write_text(FAKE_ALERTS_CLI.format(python=sys.executable))
    fake.chmod(0o755)
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        orjson.dumps(_feedback("This is the worst service, nobody called back")).decode()
        + "\n"
        + orjson.dumps(
            {"feedback": _feedback("Great help, thanks!"), "sentiment": {"label": "positive"}}
        ).decode()
        + "\n"
    )
    result = closeloop(
        ops_stack,
        "routing",
        "dry-run",
        str(samples),
        "--file",
        str(ops_stack.config.routing_file),
        env={"CLOSELOOP_ALERTS_CLI": str(fake)},
    )
    output = ok(result)
    assert "2 samples" in output
    assert "cx-team" in output  # the negative sample, scored by the real sentiment service
    assert "no alert" in output


def test_routing_dry_run_asks_the_running_alerts_service(ops_stack: Stack, tmp_path: Path) -> None:
    samples = tmp_path / "samples.jsonl"
    samples.write_text(
        orjson.dumps(_feedback("Charged twice and nobody called back, awful")).decode()
        + "\n"
        + orjson.dumps(
            {
                "feedback": _feedback("Great help, thanks!"),
                "sentiment": {"label": "positive", "score": 0.8},
            }
        ).decode()
        + "\n"
    )
    result = closeloop(
        ops_stack, "routing", "dry-run", str(samples), "--alerts-url", ops_stack.url("alerts")
    )
    output = ok(result)
    assert "2 samples" in output
    lines = [line for line in output.splitlines() if "ops-" in line]
    assert "cx-team" in lines[0]  # negative: the default owner of the stack's routing
    assert "no alert" in lines[1]


def test_cli_help_lists_every_job() -> None:
    result = subprocess.run([str(CLOSELOOP), "--help"], capture_output=True, text=True, check=False)
    assert result.returncode == 0
    for command in ("keys", "routing", "topics", "lag", "dlq", "rescore", "export"):
        assert command in result.stdout
