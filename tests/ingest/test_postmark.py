"""Postmark inbound: basic auth from the webhook URL, text choice, mapping."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import orjson
import pytest

from closeloop_ingest.adapters.postmark import postmark_to_feedback, verify_basic_auth
from closeloop_ingest.errors import InvalidPayload, SignatureRejected
from closeloop_shared.contracts.feedback import Channel, feedback_id
from tests.ingest.support import (
    JSON_HEADERS,
    POSTMARK_PASSWORD,
    POSTMARK_USER,
    FakeProducer,
    basic_auth,
    ingest_settings,
    postmark_body,
    running_app,
)

PATH = "/v1/webhooks/postmark"
RECEIVED_AT = datetime(2024, 3, 5, 3, 0, tzinfo=UTC)


def test_matching_basic_credentials_pass() -> None:
    verify_basic_auth(basic_auth(), POSTMARK_USER, POSTMARK_PASSWORD)


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(None, "signature_missing", id="missing"),
        pytest.param("Bearer abc", "signature_missing", id="other-scheme"),
        pytest.param("Basic !!!not-base64", "signature_invalid", id="malformed"),
        pytest.param(basic_auth(password="wrong"), "signature_invalid", id="wrong-password"),
        pytest.param(basic_auth(username="someone"), "signature_invalid", id="wrong-user"),
        pytest.param("Basic " + "bm9jb2xvbg==", "signature_invalid", id="no-colon"),
    ],
)
def test_wrong_credentials_are_rejected(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureRejected) as raised:
        verify_basic_auth(header, POSTMARK_USER, POSTMARK_PASSWORD)
    assert raised.value.reason == reason


def test_inbound_email_maps_to_canonical_feedback() -> None:
    body = postmark_body()
    [item] = postmark_to_feedback(orjson.dumps(body), RECEIVED_AT).items
    assert item.channel is Channel.EMAIL
    assert item.external_id == body["MessageID"]
    assert item.text == body["StrippedTextReply"]
    assert item.subject == "退款两周还没到账"
    assert item.customer.email == "wang.fang@example.cn"
    assert item.customer.name == "王芳"
    assert item.occurred_at == datetime(2024, 3, 5, 2, 0, tzinfo=UTC)
    assert item.attributes == {"recipient": "support@closeloop.example"}


def test_text_body_is_used_when_no_reply_could_be_stripped() -> None:
    body = postmark_body(StrippedTextReply="", TextBody="Full text body")
    [item] = postmark_to_feedback(orjson.dumps(body), RECEIVED_AT).items
    assert item.text == "Full text body"


def test_html_only_email_is_turned_into_text() -> None:
    html = (
        "<html><head><style>p {color: red}</style><title>Ignored</title></head>"
        "<body><p>Refund &amp; apology, please.</p><script>alert(1)</script>"
        "<div>Order&nbsp;#42<br>Thanks</div></body></html>"
    )
    body = postmark_body(StrippedTextReply=None, TextBody="", HtmlBody=html)
    [item] = postmark_to_feedback(orjson.dumps(body), RECEIVED_AT).items
    assert item.text == "Refund & apology, please.\n\nOrder #42\nThanks"


def test_email_without_any_text_is_ignored() -> None:
    body = postmark_body(StrippedTextReply="", TextBody="", HtmlBody="<p> </p>")
    result = postmark_to_feedback(orjson.dumps(body), RECEIVED_AT)
    assert result.items == []
    assert result.ignored == {"no_text": 1}


def test_missing_message_id_is_invalid() -> None:
    body = postmark_body()
    del body["MessageID"]
    with pytest.raises(InvalidPayload) as raised:
        postmark_to_feedback(orjson.dumps(body), RECEIVED_AT)
    assert raised.value.extra["errors"][0]["loc"] == ["MessageID"]


async def test_authenticated_email_is_published(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    body = postmark_body()
    response = await client.post(
        PATH, json=body, headers={"Authorization": basic_auth(), **JSON_HEADERS}
    )
    assert response.status_code == 200, response.text
    expected = feedback_id(Channel.EMAIL, body["MessageID"])
    assert response.json() == {"id": str(expected)}
    [event] = producer.events()
    assert event["source"] == "/closeloop/ingest/postmark"


async def test_wrong_password_is_401_with_a_basic_challenge(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    response = await client.post(
        PATH, json=postmark_body(), headers={"Authorization": basic_auth(password="guess")}
    )
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert producer.sent == []


async def test_missing_fields_are_422_not_500(client: httpx.AsyncClient) -> None:
    response = await client.post(
        PATH, json={"Subject": "no id"}, headers={"Authorization": basic_auth()}
    )
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_payload"


async def test_without_credentials_configured_the_channel_is_not_configured() -> None:
    settings = ingest_settings(postmark_basic_auth_password=None)
    async with running_app(settings, FakeProducer()) as client:
        response = await client.post(
            PATH, json=postmark_body(), headers={"Authorization": basic_auth()}
        )
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "channel_not_configured"
