"""The ``closeloop`` operator CLI against a running stack: keys, topics, lag, dead letters,
export, re-score and routing checks, run as the console script an operator runs."""

from __future__ import annotations

import asyncio
import csv
import io
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from closeloop_devstack.stack import Stack, pii_keys
from closeloop_shared.contracts.feedback import FeedbackIn, identify
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
        assert {r["group"] for r in rows} == {"closeloop-sentiment", "closeloop-alerts"}
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


def test_rescore_reports_label_changes_and_refuses_another_model_version(
    ops_stack: Stack, tmp_path: Path
) -> None:
    _post_and_wait(ops_stack, _feedback("Love the new checkout, so fast and easy!"))
    flips = tmp_path / "flips.jsonl"
    result = closeloop(ops_stack, "rescore", "--since", "1h", "--flips", str(flips))
    output = ok(result)
    assert "re-scored with closeloop-lexicon" in output
    assert "labels would change" in output
    assert flips.exists()

    wrong = closeloop(ops_stack, "rescore", "--since", "1h", "--model-version", "0.0.0-nope")
    assert wrong.returncode == 1
    assert "not 0.0.0-nope" in wrong.stderr

    bad_time = closeloop(ops_stack, "rescore", "--since", "yesterday-ish")
    assert bad_time.returncode == 1
    assert "is not a time" in bad_time.stderr


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
