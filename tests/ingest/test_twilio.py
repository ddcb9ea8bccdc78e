"""Twilio transcription callbacks: signature over the public URL, mapping, skips."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from closeloop_ingest.adapters.twilio import transcription_to_feedback, verify_twilio_signature
from closeloop_ingest.errors import InvalidPayload, SignatureRejected
from closeloop_shared.contracts.feedback import Channel, JourneyStage, feedback_id
from tests.ingest.support import (
    FORM_HEADERS,
    FORWARDED_HTTPS,
    INTERNAL_BASE_URL,
    PUBLIC_HOST,
    TWILIO_AUTH_TOKEN,
    FakeProducer,
    form,
    ingest_settings,
    metric,
    running_app,
    transcription_params,
    twilio_signature,
)

PATH = "/v1/webhooks/twilio/transcription"
PUBLIC_URL = f"https://{PUBLIC_HOST}{PATH}"
RECEIVED_AT = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)


def signed_headers(params: dict[str, str], url: str = PUBLIC_URL) -> dict[str, str]:
    return {
        **FORM_HEADERS,
        **FORWARDED_HTTPS,
        "X-Twilio-Signature": twilio_signature(TWILIO_AUTH_TOKEN, url, params),
    }


# -- verifier -------------------------------------------------------------------------------


def test_signature_computed_as_twilio_does_is_accepted() -> None:
    params = transcription_params()
    signature = twilio_signature(TWILIO_AUTH_TOKEN, PUBLIC_URL, params)
    verify_twilio_signature(TWILIO_AUTH_TOKEN, PUBLIC_URL, params, signature)


@pytest.mark.parametrize(
    ("url", "token", "tamper"),
    [
        pytest.param(PUBLIC_URL, "wrong-token", False, id="wrong-token"),
        pytest.param(PUBLIC_URL, TWILIO_AUTH_TOKEN, True, id="tampered-param"),
        pytest.param(f"http://{PUBLIC_HOST}{PATH}", TWILIO_AUTH_TOKEN, False, id="other-scheme"),
        pytest.param(f"https://{PUBLIC_HOST}/other", TWILIO_AUTH_TOKEN, False, id="other-path"),
    ],
)
def test_signature_mismatch_is_rejected(url: str, token: str, tamper: bool) -> None:
    params = transcription_params()
    signature = twilio_signature(token, url, params)
    if tamper:
        params["TranscriptionText"] += " (edited)"
    with pytest.raises(SignatureRejected) as raised:
        verify_twilio_signature(TWILIO_AUTH_TOKEN, PUBLIC_URL, params, signature)
    assert raised.value.reason == "signature_invalid"


def test_missing_signature_is_rejected() -> None:
    with pytest.raises(SignatureRejected) as raised:
        verify_twilio_signature(TWILIO_AUTH_TOKEN, PUBLIC_URL, transcription_params(), None)
    assert raised.value.reason == "signature_missing"


# -- mapping --------------------------------------------------------------------------------


def test_completed_transcription_becomes_one_hotline_item() -> None:
    params = transcription_params()
    [item] = transcription_to_feedback(params, RECEIVED_AT).items
    assert item.channel is Channel.HOTLINE
    assert item.external_id == params["TranscriptionSid"]
    assert item.text == params["TranscriptionText"]
    assert item.customer.phone == "+14155550123"
    assert item.occurred_at == RECEIVED_AT
    assert item.touchpoint == "call_center"
    assert item.journey_stage is JourneyStage.SUPPORT
    assert item.attributes["call_sid"] == params["CallSid"]
    assert item.attributes["recording_url"] == params["RecordingUrl"]
    assert item.attributes["called_number"] == "+14155550100"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"TranscriptionStatus": "failed", "TranscriptionText": ""}, "transcription_failed"),
        ({"TranscriptionStatus": "failed"}, "transcription_failed"),
        ({"TranscriptionText": "   "}, "no_text"),
    ],
)
def test_failed_or_empty_transcriptions_are_ignored(overrides: dict[str, str], reason: str) -> None:
    result = transcription_to_feedback(transcription_params(**overrides), RECEIVED_AT)
    assert result.items == []
    assert result.ignored == {reason: 1}


def test_missing_transcription_sid_is_invalid() -> None:
    params = transcription_params()
    del params["TranscriptionSid"]
    with pytest.raises(InvalidPayload):
        transcription_to_feedback(params, RECEIVED_AT)


# -- over HTTP ------------------------------------------------------------------------------


async def test_signed_callback_is_published_with_a_deterministic_id(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    params = transcription_params()
    response = await client.post(PATH, content=form(params), headers=signed_headers(params))
    assert response.status_code == 202, response.text
    expected = feedback_id(Channel.HOTLINE, params["TranscriptionSid"])
    assert response.json() == {"id": str(expected)}
    [event] = producer.events()
    assert event["id"] == str(expected)
    assert event["source"] == "/closeloop/ingest/twilio"
    assert producer.sent[0].key == str(expected).encode()


async def test_url_is_taken_from_forwarded_headers_not_the_internal_address(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    # Signed for the URL the app sees internally: Twilio never calls that one.
    params = transcription_params()
    headers = signed_headers(params, url=INTERNAL_BASE_URL + PATH)
    response = await client.post(PATH, content=form(params), headers=headers)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "invalid_signature"
    assert producer.sent == []


async def test_without_forwarded_headers_the_request_url_is_used(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    params = transcription_params()
    headers = {
        **FORM_HEADERS,
        "X-Twilio-Signature": twilio_signature(TWILIO_AUTH_TOKEN, INTERNAL_BASE_URL + PATH, params),
    }
    response = await client.post(PATH, content=form(params), headers=headers)
    assert response.status_code == 202, response.text
    assert len(producer.sent) == 1


async def test_query_string_is_part_of_the_signed_url(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    params = transcription_params()
    headers = signed_headers(params, url=PUBLIC_URL + "?hotline=billing")
    response = await client.post(PATH + "?hotline=billing", content=form(params), headers=headers)
    assert response.status_code == 202, response.text


async def test_unparseable_forwarded_host_is_401_not_500(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    params = transcription_params()
    headers = {**signed_headers(params), "X-Forwarded-Host": "feedback.example.com:notaport"}
    response = await client.post(PATH, content=form(params), headers=headers)
    assert response.status_code == 401
    assert producer.sent == []


async def test_tampered_body_is_rejected_and_counted(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    before = metric(
        "closeloop_ingest_webhooks_rejected_total", adapter="twilio", reason="signature_invalid"
    )
    params = transcription_params()
    headers = signed_headers(params)
    response = await client.post(PATH, content=form(params) + b"&Extra=1", headers=headers)
    assert response.status_code == 401
    assert producer.sent == []
    after = metric(
        "closeloop_ingest_webhooks_rejected_total", adapter="twilio", reason="signature_invalid"
    )
    assert after == before + 1


async def test_failed_transcription_is_acknowledged_without_publishing(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    params = transcription_params(TranscriptionStatus="failed", TranscriptionText="")
    response = await client.post(PATH, content=form(params), headers=signed_headers(params))
    assert response.status_code == 200
    body = response.json()
    assert body["id"] is None
    assert body["ignored"] == {"transcription_failed": 1}
    assert "note" in body
    assert producer.sent == []


async def test_json_body_is_unsupported_media_type(client: httpx.AsyncClient) -> None:
    response = await client.post(PATH, json={"TranscriptionSid": "TR1"})
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_media_type"


async def test_without_auth_token_the_channel_is_not_configured() -> None:
    async with running_app(ingest_settings(twilio_auth_token=None), FakeProducer()) as client:
        params = transcription_params()
        response = await client.post(PATH, content=form(params), headers=signed_headers(params))
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "channel_not_configured"
