"""The operator CLI's pure parts: time ranges, dead-letter filters, score requests, URLs."""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta

import orjson
import pytest

from closeloop_cli.data import NO_TOPIC, RescoreReport, asyncpg_dsn, parse_time, score_request
from closeloop_cli.kafka_ops import DeadLetter, DeadLetterFilter, PartitionLag
from closeloop_cli.output import OperatorError

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("now", NOW),
        ("90m", NOW - timedelta(minutes=90)),
        ("24h", NOW - timedelta(hours=24)),
        ("7d", NOW - timedelta(days=7)),
        ("2w", NOW - timedelta(weeks=2)),
        ("2026-11-01", datetime(2026, 11, 1, tzinfo=UTC)),
        ("2026-11-01T10:00:00Z", datetime(2026, 11, 1, 10, tzinfo=UTC)),
        ("2026-11-01T10:00:00+08:00", datetime(2026, 11, 1, 2, tzinfo=UTC)),
    ],
)
def test_parse_time(text: str, expected: datetime) -> None:
    assert parse_time(text, now=NOW) == expected


def test_parse_time_refuses_what_it_cannot_read() -> None:
    with pytest.raises(OperatorError, match="is not a time"):
        parse_time("last tuesday", now=NOW)


def _letter(
    offset: int, reason: str, error: str = "ValueError: x", partition: int = 0
) -> DeadLetter:
    return DeadLetter(
        topic="t.dlq",
        partition=partition,
        offset=offset,
        key=b"k",
        value=b"v",
        headers={
            "x-closeloop-dlq-source-topic": "t",
            "x-closeloop-dlq-source-partition": "3",
            "x-closeloop-dlq-source-offset": "17",
            "x-closeloop-dlq-reason": reason,
            "x-closeloop-dlq-error": error,
        },
    )


def test_dead_letter_filters_combine() -> None:
    letters = [
        _letter(0, "undecodable"),
        _letter(1, "processing_failed", "IntegrityError: duplicate"),
        _letter(2, "processing_failed", "TimeoutError"),
        _letter(3, "processing_failed", "IntegrityError: again", partition=1),
    ]
    pick = DeadLetterFilter(reasons=frozenset({"processing_failed"}), error_contains="integrity")
    assert [d.offset for d in letters if pick.matches(d)] == [1, 3]
    ranged = DeadLetterFilter(from_offset=1, to_offset=2, partition=0)
    assert [d.offset for d in letters if ranged.matches(d)] == [1, 2]
    assert all(DeadLetterFilter().matches(d) for d in letters)
    assert letters[0].origin == "t[3]@17"
    assert letters[0].source_topic == "t"


def test_lag_counts_from_the_start_when_nothing_was_committed() -> None:
    assert PartitionLag("g", "t", 0, None, 12).lag == 12
    assert PartitionLag("g", "t", 0, 10, 12).lag == 2
    assert PartitionLag("g", "t", 0, 12, 12).lag == 0


def test_score_request_carries_what_the_stream_scored() -> None:
    body = score_request(
        {"channel": "hotline", "subject": "Refund", "text": "still waiting",
         "rating_type": "stars", "rating_value": 2.0, "language": "en",
         "attributes": '{"transcript": [{"role": "customer", "text": "still waiting"}]}'}
    )  # fmt: skip
    assert body == {
        "text": "still waiting",
        "channel": "hotline",
        "subject": "Refund",
        "rating": {"type": "stars", "value": 2},
        "language": "en",
        "attributes": {"transcript": [{"role": "customer", "text": "still waiting"}]},
    }
    bare = {"subject": None, "text": "ok", "rating_type": None, "attributes": "{}"}
    assert score_request(bare) == {"text": "ok"}


def test_flips_are_counted_by_channel_and_by_each_live_topic() -> None:
    report = RescoreReport()
    out = io.StringIO()
    rows = [
        ("app", '["billing", "app_bug"]', "negative", "positive"),
        ("app", '["billing"]', "negative", "negative"),
        ("email", "[]", "neutral", "negative"),
        ("email", '["billing"]', None, "positive"),
    ]
    for channel, topics, old, new in rows:
        row = {"id": "f", "channel": channel, "sentiment_topics": topics, "sentiment_label": old}
        report.add(row, {"label": new, "score": 0.1, "model_version": "2"}, out)
    assert report.scored == {"app": 2, "email": 2}
    assert report.flips == {
        ("app", "negative", "positive"): 1,
        ("email", "neutral", "negative"): 1,
        ("email", "unscored", "positive"): 1,
    }
    assert report.scored_by_topic == {"billing": 3, "app_bug": 1, NO_TOPIC: 1}
    assert report.topic_flips == {
        ("billing", "negative", "positive"): 1,
        ("app_bug", "negative", "positive"): 1,
        (NO_TOPIC, "neutral", "negative"): 1,
        ("billing", "unscored", "positive"): 1,
    }
    lines = [orjson.loads(line) for line in out.getvalue().splitlines()]
    assert [(f["channel"], f["topics"], f["old_label"], f["new_label"]) for f in lines] == [
        ("app", ["billing", "app_bug"], "negative", "positive"),
        ("email", [], "neutral", "negative"),
        ("email", ["billing"], "unscored", "positive"),
    ]


def test_asyncpg_dsn_drops_the_sqlalchemy_driver() -> None:
    assert asyncpg_dsn("postgresql+asyncpg://u:p@h:5432/db") == "postgresql://u:p@h:5432/db"
    assert asyncpg_dsn("postgresql://u@h/db") == "postgresql://u@h/db"


def test_the_cli_offers_exactly_the_gateways_scopes_and_roles() -> None:
    # The CLI validates choices itself; a scope the gateway adds must not be refused here.
    from closeloop_cli.app import ROLES, SCOPES
    from closeloop_gateway.auth import Role, Scope

    assert set(SCOPES) == {scope.value for scope in Scope}
    assert set(ROLES) == {role.value for role in Role}
