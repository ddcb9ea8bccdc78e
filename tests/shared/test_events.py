from __future__ import annotations

import uuid
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from pydantic import ValidationError

from closeloop_shared import schemas
from closeloop_shared.contracts.feedback import Channel, FeedbackIn, feedback_id, identify
from closeloop_shared.events import (
    EventType,
    FeedbackReceivedEvent,
    Topic,
    dead_letter_topic,
    encode,
)

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "shared" / "schemas"


def _item(**overrides: object) -> FeedbackIn:
    body: dict[str, object] = {
        "channel": "email",
        "external_id": "msg-1",
        "text": "The refund never arrived.",
        "occurred_at": "2026-11-20T10:00:00+08:00",
        **overrides,
    }
    return FeedbackIn.model_validate(body)


def test_feedback_id_is_deterministic_per_channel_and_external_id() -> None:
    assert feedback_id(Channel.EMAIL, "msg-1") == feedback_id(Channel.EMAIL, "msg-1")
    assert feedback_id(Channel.EMAIL, "msg-1") != feedback_id(Channel.SOCIAL, "msg-1")
    assert feedback_id(Channel.EMAIL, "msg-1") != feedback_id(Channel.EMAIL, "msg-2")
    assert feedback_id(Channel.EMAIL, "msg-1").version == 5


def test_received_event_round_trips_through_the_wire_format() -> None:
    feedback = identify(_item(rating={"type": "nps", "value": 3}), datetime.now(UTC))
    event = FeedbackReceivedEvent(
        id=str(feedback.id), source="/test", time=feedback.received_at, data=feedback
    )
    wire = encode(event)
    envelope = orjson.loads(wire)
    assert envelope["specversion"] == "1.0"
    assert envelope["type"] == EventType.FEEDBACK_RECEIVED
    assert envelope["datacontenttype"] == "application/json"
    decoded = FeedbackReceivedEvent.model_validate_json(wire)
    assert decoded.data == feedback


def test_event_of_another_type_is_rejected() -> None:
    feedback = identify(_item(), datetime.now(UTC))
    envelope = orjson.loads(
        encode(FeedbackReceivedEvent(id="x", source="/t", time=feedback.received_at, data=feedback))
    )
    envelope["type"] = "com.example.other"
    with pytest.raises(ValidationError):
        FeedbackReceivedEvent.model_validate(envelope)


@pytest.mark.parametrize(
    ("rating", "valid"),
    [
        ({"type": "nps", "value": 0}, True),
        ({"type": "nps", "value": 11}, False),
        ({"type": "csat", "value": 0}, False),
        ({"type": "ces", "value": 7}, True),
        ({"type": "stars", "value": 5}, True),
        ({"type": "stars", "value": 6}, False),
    ],
)
def test_rating_values_must_lie_on_their_scale(rating: dict[str, object], valid: bool) -> None:
    if valid:
        assert _item(rating=rating).rating is not None
    else:
        with pytest.raises(ValidationError):
            _item(rating=rating)


def test_unknown_fields_and_naive_times_are_rejected() -> None:
    with pytest.raises(ValidationError):
        _item(colour="red")
    with pytest.raises(ValidationError):
        _item(occurred_at="2026-11-20T10:00:00")


def test_dead_letter_topic_names_source_and_group() -> None:
    assert (
        dead_letter_topic(Topic.FEEDBACK_RECEIVED, "closeloop-sentiment")
        == "closeloop.feedback.received.v1.closeloop-sentiment.dlq"
    )


@pytest.mark.parametrize("name", sorted(schemas.PUBLISHED))
def test_published_json_schemas_match_the_models(name: str) -> None:
    committed = (SCHEMA_DIR / name).read_text(encoding="utf-8")
    assert committed == schemas.render(name, schemas.PUBLISHED[name]), (
        f"shared/schemas/{name} is stale: run `make schemas`"
    )


def test_feedback_id_namespace_is_stable() -> None:
    # Changing the namespace would give every provider retry a new id: never do it.
    assert feedback_id(Channel.HOTLINE, "CA123") == uuid.UUID(
        str(uuid.uuid5(uuid.UUID("6f1c2b8e-4a57-5d3e-9c1a-2b7d0e5f8a31"), "hotline:CA123"))
    )
