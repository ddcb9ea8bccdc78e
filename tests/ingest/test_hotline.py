"""Contact-centre transcripts in the Amazon Connect Contact Lens shape."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from closeloop_ingest.adapters.hotline import contact_lens_to_feedback
from closeloop_ingest.errors import InvalidPayload, MalformedBody
from closeloop_shared.contracts.feedback import MAX_TEXT_CHARS, Channel, JourneyStage, feedback_id
from tests.ingest.support import FakeProducer, contact_lens

PATH = "/v1/webhooks/hotline/transcript"
RECEIVED_AT = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)


def test_transcript_becomes_one_item_with_labelled_turns() -> None:
    body = contact_lens(contact_id="c-123")
    [item] = contact_lens_to_feedback(orjson.dumps(body), RECEIVED_AT).items
    assert item.channel is Channel.HOTLINE
    assert item.external_id == "c-123"
    assert item.text == (
        "AGENT: Thanks for calling, how can I help?\n"
        "CUSTOMER: My router keeps dropping the connection."
    )
    assert item.attributes["transcript"] == [
        {
            "role": "agent",
            "text": "Thanks for calling, how can I help?",
            "begin_ms": 0,
            "end_ms": 2100,
            "provider_sentiment": "neutral",
        },
        {
            "role": "customer",
            "text": "My router keeps dropping the connection.",
            "begin_ms": 2300,
            "end_ms": 6100,
            "provider_sentiment": "negative",
        },
    ]
    assert item.attributes["contact_id"] == "c-123"
    assert item.attributes["instance_id"] == "inst-1"
    assert item.attributes["contact_channel"] == "VOICE"
    assert item.language == "en-US"
    assert item.touchpoint == "call_center"
    assert item.journey_stage is JourneyStage.SUPPORT
    assert item.occurred_at == RECEIVED_AT


def test_turn_of_an_unlisted_participant_keeps_its_id_as_role() -> None:
    body = contact_lens(Participants=[])
    [item] = contact_lens_to_feedback(orjson.dumps(body), RECEIVED_AT).items
    assert [turn["role"] for turn in item.attributes["transcript"]] == ["a1", "c1"]


def test_transcript_longer_than_the_contract_is_cut_at_a_line_and_flagged() -> None:
    turn = {"ParticipantId": "C1", "Content": "x" * 30_000}
    body = contact_lens(Transcript=[turn] * 5)
    [item] = contact_lens_to_feedback(orjson.dumps(body), RECEIVED_AT).items
    assert len(item.text) <= MAX_TEXT_CHARS
    assert item.text.endswith("x")
    assert item.attributes["text_truncated"] is True
    assert len(item.attributes["transcript"]) == 5


def test_transcript_without_content_is_ignored() -> None:
    body = contact_lens(Transcript=[{"ParticipantId": "C1", "Content": "  "}])
    result = contact_lens_to_feedback(orjson.dumps(body), RECEIVED_AT)
    assert result.items == []
    assert result.ignored == {"no_text": 1}


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({"Transcript": []}, id="no-metadata"),
        pytest.param({"CustomerMetadata": {"InstanceId": "i"}}, id="no-contact-id"),
        pytest.param(
            {"CustomerMetadata": {"ContactId": "c"}, "Transcript": [{"Content": "hi"}]},
            id="turn-without-participant",
        ),
    ],
)
def test_missing_fields_are_invalid(body: dict[str, object]) -> None:
    with pytest.raises(InvalidPayload):
        contact_lens_to_feedback(orjson.dumps(body), RECEIVED_AT)


def test_malformed_json_is_a_bad_request() -> None:
    with pytest.raises(MalformedBody):
        contact_lens_to_feedback(b'{"CustomerMetadata": ', RECEIVED_AT)


async def test_transcript_is_published(client: httpx.AsyncClient, producer: FakeProducer) -> None:
    body = contact_lens()
    response = await client.post(PATH, json=body, headers={"X-Closeloop-Principal": "key:demo"})
    assert response.status_code == 202, response.text
    contact_id = body["CustomerMetadata"]["ContactId"]
    assert response.json() == {"id": str(feedback_id(Channel.HOTLINE, contact_id))}
    [event] = producer.events()
    assert event["source"] == "/closeloop/ingest/hotline"
    assert event["data"]["attributes"]["transcript"][1]["role"] == "customer"


async def test_empty_transcript_is_acknowledged_without_publishing(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    response = await client.post(PATH, json=contact_lens(Transcript=[]))
    assert response.status_code == 200
    assert response.json()["id"] is None
    assert producer.sent == []


async def test_invalid_transcript_is_422(client: httpx.AsyncClient) -> None:
    response = await client.post(PATH, json={"Transcript": "nope"})
    assert response.status_code == 422
    locations = [error["loc"] for error in response.json()["error"]["errors"]]
    assert ["CustomerMetadata"] in locations
