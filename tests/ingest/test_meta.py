"""Meta Graph webhooks: handshake, X-Hub-Signature-256, Page feed and Instagram comments."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from closeloop_ingest.adapters.meta import meta_to_feedback, verify_meta_signature
from closeloop_ingest.errors import SignatureRejected
from closeloop_shared.contracts.feedback import Channel, feedback_id
from tests.ingest.support import (
    META_APP_SECRET,
    META_VERIFY_TOKEN,
    FakeProducer,
    ingest_settings,
    instagram_comment,
    meta_body,
    meta_headers,
    metric,
    page_comment,
    running_app,
)

PATH = "/v1/webhooks/meta"
RECEIVED_AT = datetime(2024, 3, 4, 12, 0, tzinfo=UTC)


# -- subscription handshake -----------------------------------------------------------------


async def test_handshake_with_our_verify_token_echoes_the_challenge(
    client: httpx.AsyncClient,
) -> None:
    params = {
        "hub.mode": "subscribe",
        "hub.verify_token": META_VERIFY_TOKEN,
        "hub.challenge": "1158201444",
    }
    response = await client.get(PATH, params=params)
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"].startswith("text/plain")


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"hub.mode": "subscribe", "hub.verify_token": "guess", "hub.challenge": "1"}, id="wrong-token"),
        pytest.param({"hub.mode": "unsubscribe", "hub.verify_token": META_VERIFY_TOKEN, "hub.challenge": "1"}, id="wrong-mode"),
        pytest.param({"hub.mode": "subscribe", "hub.verify_token": META_VERIFY_TOKEN}, id="no-challenge"),
        pytest.param({}, id="nothing"),
    ],
)  # fmt: skip
async def test_handshake_without_our_verify_token_is_forbidden(
    client: httpx.AsyncClient, params: dict[str, str]
) -> None:
    response = await client.get(PATH, params=params)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


async def test_handshake_without_configured_token_is_not_configured() -> None:
    async with running_app(ingest_settings(meta_verify_token=None), FakeProducer()) as client:
        response = await client.get(PATH, params={"hub.mode": "subscribe"})
    assert response.status_code == 404


# -- signature ------------------------------------------------------------------------------


def test_signature_computed_as_meta_does_is_accepted() -> None:
    raw = meta_body("page", [page_comment()])
    verify_meta_signature(META_APP_SECRET, raw, meta_headers(raw)["X-Hub-Signature-256"])


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        pytest.param(None, "signature_missing", id="missing"),
        pytest.param("sha256=" + "0" * 64, "signature_invalid", id="wrong"),
        pytest.param("sha1=abc", "signature_invalid", id="legacy-sha1"),
        pytest.param("sha256=ünïcode", "signature_invalid", id="non-ascii"),
    ],
)
def test_bad_signatures_are_rejected(header: str | None, reason: str) -> None:
    with pytest.raises(SignatureRejected) as raised:
        verify_meta_signature(META_APP_SECRET, b"{}", header)
    assert raised.value.reason == reason


async def test_tampered_body_is_rejected(client: httpx.AsyncClient, producer: FakeProducer) -> None:
    raw = meta_body("page", [page_comment()])
    headers = meta_headers(raw)
    tampered = raw.replace(b"crashed", b"worked!")
    response = await client.post(PATH, content=tampered, headers=headers)
    assert response.status_code == 401
    assert producer.sent == []


async def test_wrong_app_secret_is_rejected(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    raw = meta_body("page", [page_comment()])
    response = await client.post(PATH, content=raw, headers=meta_headers(raw, "other-secret"))
    assert response.status_code == 401
    assert producer.sent == []


# -- mapping --------------------------------------------------------------------------------


def test_page_comment_maps_to_social_feedback() -> None:
    change = page_comment(comment_id="111_222")
    [item] = meta_to_feedback(meta_body("page", [change]), RECEIVED_AT).items
    assert item.channel is Channel.SOCIAL
    assert item.external_id == "111_222"
    assert item.text == change["value"]["message"]
    assert item.customer.id == "5550001"
    assert item.customer.handle == "Chris Miller"
    assert item.occurred_at == datetime.fromtimestamp(1709548200, tz=UTC)
    assert item.touchpoint == "facebook_page"
    assert item.attributes == {
        "platform": "facebook",
        "item": "comment",
        "verb": "add",
        "page_id": "1234567890",
        "post_id": "1234567890_987654321",
        "parent_id": "1234567890_987654321",
    }


def test_page_post_uses_the_post_id() -> None:
    change = page_comment(item="post", comment_id=None, post_id="1234567890_55")
    del change["value"]["comment_id"]
    [item] = meta_to_feedback(meta_body("page", [change]), RECEIVED_AT).items
    assert item.external_id == "1234567890_55"


def test_instagram_comment_maps_to_social_feedback() -> None:
    change = instagram_comment(comment_id="17865799348089039")
    [item] = meta_to_feedback(
        meta_body("instagram", [change], entry_id="17841400000000000"), RECEIVED_AT
    ).items
    assert item.external_id == "17865799348089039"
    assert item.customer.handle == "xiaoming_li"
    assert item.customer.id == "9988776655"
    assert item.touchpoint == "instagram"
    assert item.attributes["media_id"] == "17900000000000000"
    assert item.occurred_at == datetime.fromtimestamp(1709548260, tz=UTC)


def test_changes_without_customer_text_are_ignored_by_reason() -> None:
    # The page answering its own customers (entry id == author id).
    own_reply = page_comment()
    own_reply["value"]["from"] = {"id": "1234567890", "name": "Our Page"}
    changes = [
        page_comment(verb="remove"),
        page_comment(item="reaction", message=None, reaction_type="like"),
        own_reply,
        page_comment(),
        {"field": "mention", "value": {"post_id": "1"}},
    ]
    result = meta_to_feedback(meta_body("page", changes), RECEIVED_AT)
    assert len(result.items) == 1
    assert result.ignored == {
        "not_new_text": 1,
        "no_text": 1,
        "own_account": 1,
        "unsupported_field": 1,
    }


def test_instagram_mentions_carry_no_text_and_are_ignored() -> None:
    change = {"field": "mentions", "value": {"media_id": "1", "comment_id": "2"}}
    result = meta_to_feedback(meta_body("instagram", [change]), RECEIVED_AT)
    assert result.items == []
    assert result.ignored == {"no_text": 1}


def test_one_malformed_change_does_not_cost_the_others() -> None:
    changes = [{"field": "comments", "value": {"text": "no id"}}, instagram_comment()]
    result = meta_to_feedback(meta_body("instagram", changes), RECEIVED_AT)
    assert len(result.items) == 1
    assert result.ignored == {"malformed_change": 1}


# -- over HTTP ------------------------------------------------------------------------------


async def test_one_webhook_with_several_comments_publishes_several_events(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    first, second = page_comment(), page_comment()
    ignored_before = metric(
        "closeloop_ingest_items_ignored_total", adapter="meta", reason="not_new_text"
    )
    raw = meta_body("page", [first, second, page_comment(verb="remove")])
    response = await client.post(PATH, content=raw, headers=meta_headers(raw))
    # Meta expects 200; anything else is retried and can disable the subscription.
    assert response.status_code == 200, response.text
    expected = [
        str(feedback_id(Channel.SOCIAL, change["value"]["comment_id"]))
        for change in (first, second)
    ]
    assert response.json() == {"ids": expected, "ignored": {"not_new_text": 1}}
    assert [event["id"] for event in producer.events()] == expected
    assert {event["source"] for event in producer.events()} == {"/closeloop/ingest/meta"}
    ignored_after = metric(
        "closeloop_ingest_items_ignored_total", adapter="meta", reason="not_new_text"
    )
    assert ignored_after == ignored_before + 1


async def test_webhook_with_nothing_to_ingest_is_200(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    raw = meta_body("page", [page_comment(verb="remove")])
    response = await client.post(PATH, content=raw, headers=meta_headers(raw))
    assert response.status_code == 200
    assert response.json()["ids"] == []
    assert producer.sent == []


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(b'{"entry": []}', id="no-object"),
        pytest.param(b'{"object": "page", "entry": "nope"}', id="entry-not-a-list"),
    ],
)
async def test_malformed_payload_with_a_valid_signature_is_422(
    client: httpx.AsyncClient, raw: bytes
) -> None:
    response = await client.post(PATH, content=raw, headers=meta_headers(raw))
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_payload"


async def test_signed_non_json_is_400(client: httpx.AsyncClient) -> None:
    raw = b"not json at all"
    response = await client.post(PATH, content=raw, headers=meta_headers(raw))
    assert response.status_code == 400
