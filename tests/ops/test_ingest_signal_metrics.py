"""Ingest counts accepted feedback by channel, touchpoint, journey stage and language."""

from __future__ import annotations

from datetime import UTC, datetime

from prometheus_client import REGISTRY

from closeloop_ingest.metrics import record_accepted
from closeloop_shared.contracts.feedback import FeedbackIn, identify


def _value(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_an_accepted_item_is_counted_by_every_signal_dimension() -> None:
    item = identify(
        FeedbackIn.model_validate(
            {
                "channel": "email",
                "external_id": "metrics-1",
                "text": "Where is my refund?",
                "occurred_at": "2026-11-22T10:00:00Z",
                "touchpoint": "billing",
                "journey_stage": "renewal",
                "language": "de-CH",
            }
        ),
        datetime.now(UTC),
    )
    by_touchpoint = {"channel": "email", "touchpoint": "billing", "journey_stage": "renewal"}
    by_language = {"channel": "email", "language": "de"}
    received = {"channel": "email", "adapter": "test"}
    before = (
        _value("closeloop_ingest_feedback_by_touchpoint_total", **by_touchpoint),
        _value("closeloop_ingest_feedback_by_language_total", **by_language),
        _value("closeloop_ingest_feedback_received_total", **received),
    )
    record_accepted(item, "test")
    after = (
        _value("closeloop_ingest_feedback_by_touchpoint_total", **by_touchpoint),
        _value("closeloop_ingest_feedback_by_language_total", **by_language),
        _value("closeloop_ingest_feedback_received_total", **received),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


def test_unset_fields_are_none_and_und() -> None:
    item = identify(
        FeedbackIn.model_validate(
            {"channel": "app", "external_id": "metrics-2", "text": "ok",
             "occurred_at": "2026-11-22T10:00:00Z"}
        ),
        datetime.now(UTC),
    )  # fmt: skip
    labels = {"channel": "app", "touchpoint": "none", "journey_stage": "none"}
    before = _value("closeloop_ingest_feedback_by_touchpoint_total", **labels)
    language_before = _value(
        "closeloop_ingest_feedback_by_language_total", channel="app", language="und"
    )
    record_accepted(item, "test")
    assert _value("closeloop_ingest_feedback_by_touchpoint_total", **labels) == before + 1
    assert (
        _value("closeloop_ingest_feedback_by_language_total", channel="app", language="und")
        == language_before + 1
    )
