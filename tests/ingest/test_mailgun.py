"""Mailgun inbound routes: signature, freshness, replays, both form encodings, mapping."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import httpx
import pytest

from closeloop_ingest.adapters.mailgun import mailgun_to_feedback, verify_mailgun_signature
from closeloop_ingest.errors import SignatureRejected
from closeloop_shared.contracts.feedback import Channel, feedback_id
from tests.ingest.support import (
    FORM_HEADERS,
    MAILGUN_SIGNING_KEY,
    FakeProducer,
    form,
    mailgun_fields,
)

PATH = "/v1/webhooks/mailgun"
RECEIVED_AT = datetime(2024, 3, 4, 9, 30, tzinfo=UTC)


# -- verifier -------------------------------------------------------------------------------


def test_signature_computed_as_mailgun_does_is_accepted() -> None:
    fields = mailgun_fields()
    signed = verify_mailgun_signature(MAILGUN_SIGNING_KEY, fields, now=time.time(), tolerance_s=300)
    assert signed.token == fields["token"]


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        pytest.param(
            mailgun_fields(signing_key="another-key"), "signature_invalid", id="wrong-key"
        ),
        pytest.param(
            {**mailgun_fields(), "token": "x" * 50}, "signature_invalid", id="token-swapped"
        ),
        pytest.param(
            {**mailgun_fields(), "signature": "é" * 64}, "signature_invalid", id="non-ascii"
        ),
        pytest.param({**mailgun_fields(), "signature": ""}, "signature_missing", id="missing"),
    ],
)
def test_bad_signatures_are_rejected(fields: dict[str, str], reason: str) -> None:
    with pytest.raises(SignatureRejected) as raised:
        verify_mailgun_signature(MAILGUN_SIGNING_KEY, fields, now=time.time(), tolerance_s=300)
    assert raised.value.reason == reason


@pytest.mark.parametrize("offset_s", [-301, 301, -86_400])
def test_timestamps_outside_the_window_are_rejected_both_ways(offset_s: int) -> None:
    now = time.time()
    fields = mailgun_fields(timestamp=int(now) + offset_s)
    with pytest.raises(SignatureRejected) as raised:
        verify_mailgun_signature(MAILGUN_SIGNING_KEY, fields, now=now, tolerance_s=300)
    assert raised.value.reason == "timestamp_stale"


@pytest.mark.parametrize("timestamp", ["nan", "inf", "1.7e9", "-5", " 1709548200"])
def test_correctly_signed_timestamps_that_are_not_unix_seconds_are_rejected(
    timestamp: str,
) -> None:
    token = "t" * 50
    signature = hmac.new(
        MAILGUN_SIGNING_KEY.encode(), (timestamp + token).encode(), hashlib.sha256
    ).hexdigest()
    fields = {"timestamp": timestamp, "token": token, "signature": signature}
    with pytest.raises(SignatureRejected):
        verify_mailgun_signature(MAILGUN_SIGNING_KEY, fields, now=time.time(), tolerance_s=300)


def test_timestamps_inside_the_window_are_accepted() -> None:
    now = time.time()
    for offset_s in (-299, 299):
        fields = mailgun_fields(timestamp=int(now) + offset_s)
        verify_mailgun_signature(MAILGUN_SIGNING_KEY, fields, now=now, tolerance_s=300)


# -- mapping --------------------------------------------------------------------------------


def test_email_maps_to_canonical_feedback() -> None:
    fields = mailgun_fields(message_id="<abc@mail.example.com>")
    [item] = mailgun_to_feedback(fields, RECEIVED_AT, attachment_count=2).items
    assert item.channel is Channel.EMAIL
    assert item.external_id == "<abc@mail.example.com>"
    # stripped-text (the reply without quotes) wins over body-plain.
    assert item.text == fields["stripped-text"]
    assert item.subject == "Charged twice for order #48213"
    assert item.customer.email == "dana.reyes@example.com"
    assert item.customer.name == "Dana Reyes"
    assert item.occurred_at == datetime(2024, 3, 4, 8, 30, tzinfo=UTC)
    assert item.attributes == {"recipient": "support@closeloop.example", "attachment_count": 2}


def test_body_plain_is_used_without_stripped_text_and_token_without_message_id() -> None:
    fields = mailgun_fields()
    del fields["stripped-text"]
    fields["message-headers"] = "[]"
    [item] = mailgun_to_feedback(fields, RECEIVED_AT).items
    assert item.text.startswith("Hello,")
    assert item.external_id == fields["token"]
    assert item.occurred_at == datetime.fromtimestamp(int(fields["timestamp"]), tz=UTC)


def test_email_without_text_is_ignored() -> None:
    fields = mailgun_fields()
    fields.update({"stripped-text": "", "body-plain": " \n "})
    result = mailgun_to_feedback(fields, RECEIVED_AT)
    assert result.items == []
    assert result.ignored == {"no_text": 1}


# -- over HTTP ------------------------------------------------------------------------------


async def test_urlencoded_email_is_published(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    fields = mailgun_fields(message_id="<urlencoded@example.com>")
    response = await client.post(PATH, content=form(fields), headers=FORM_HEADERS)
    # Mailgun treats anything but 200 as a failure and retries it for 8 hours.
    assert response.status_code == 200, response.text
    expected = feedback_id(Channel.EMAIL, "<urlencoded@example.com>")
    assert response.json() == {"id": str(expected)}
    [event] = producer.events()
    assert event["source"] == "/closeloop/ingest/mailgun"
    assert event["data"]["customer"] == {"email": "dana.reyes@example.com", "name": "Dana Reyes"}


async def test_multipart_email_with_attachments_is_published(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    fields = mailgun_fields()
    files = {
        "attachment-1": ("invoice.pdf", b"%PDF-1.4 fake", "application/pdf"),
        "attachment-2": ("photo.jpg", b"\xff\xd8\xff fake", "image/jpeg"),
    }
    response = await client.post(PATH, data=fields, files=files)
    assert response.status_code == 200, response.text
    [event] = producer.events()
    assert event["data"]["attributes"]["attachment_count"] == 2
    assert event["data"]["text"] == fields["stripped-text"]


async def test_replayed_token_is_rejected(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    fields = mailgun_fields()
    first = await client.post(PATH, content=form(fields), headers=FORM_HEADERS)
    assert first.status_code == 200
    # Same signed token, different content: exactly what an attacker would send.
    replay = {**fields, "stripped-text": "Forged complaint"}
    second = await client.post(PATH, content=form(replay), headers=FORM_HEADERS)
    assert second.status_code == 401
    assert second.json()["error"]["code"] == "invalid_signature"
    assert len(producer.sent) == 1


async def test_stale_timestamp_is_rejected_over_http(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    fields = mailgun_fields(timestamp=int(time.time()) - 301)
    response = await client.post(PATH, content=form(fields), headers=FORM_HEADERS)
    assert response.status_code == 401
    assert producer.sent == []


async def test_token_of_a_webhook_refused_for_an_outage_is_accepted_on_retry(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    fields = mailgun_fields()
    producer.available = False
    refused = await client.post(PATH, content=form(fields), headers=FORM_HEADERS)
    assert refused.status_code == 503
    assert refused.headers["Retry-After"] == "5"
    producer.available = True
    retried = await client.post(PATH, content=form(fields), headers=FORM_HEADERS)
    assert retried.status_code == 200, retried.text
    assert len(producer.sent) == 1


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        pytest.param(
            b"--b\r\nContent-Disposition: form-data\r\n\r\nno name\r\n--b--\r\n",
            "multipart/form-data; boundary=b",
            id="part-without-name",
        ),
        pytest.param(b"garbage", "multipart/form-data", id="no-boundary"),
        pytest.param(b"garbage", "multipart/form-data; boundary=b", id="not-multipart"),
    ],
)
async def test_malformed_multipart_is_a_bad_request(
    client: httpx.AsyncClient, content: bytes, content_type: str
) -> None:
    response = await client.post(PATH, content=content, headers={"Content-Type": content_type})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"


async def test_invalid_utf8_form_is_a_bad_request(client: httpx.AsyncClient) -> None:
    response = await client.post(PATH, content=b"subject=%FF%FE", headers=FORM_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"
