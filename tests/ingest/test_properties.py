"""Property tests: whatever a client or provider sends, ingest answers a clear 4xx or accepts
valid canonical events; never a 5xx, never an exception.

Every channel's route is driven through the real app (fake producer) with:
* any byte string, under every media type the route accepts;
* any JSON shape, and a valid payload mutated at a random place (a value
  replaced by any JSON value, a key dropped) so the adapter's deep paths run;
* any form, signed with the provider's scheme so the adapter is reached.

A 2xx must come with events that validate as the canonical
``FeedbackReceivedEvent`` and with exactly one id per published event.
"""

from __future__ import annotations

import copy
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from closeloop_shared.events import FeedbackReceivedEvent
from tests.ingest.support import (
    FORWARDED_HTTPS,
    INTERNAL_BASE_URL,
    JSON_HEADERS,
    PUBLIC_HOST,
    TWILIO_AUTH_TOKEN,
    FakeProducer,
    app_store_review,
    basic_auth,
    contact_lens,
    feedback_item,
    form,
    ingest_settings,
    instagram_comment,
    mailgun_fields,
    meta_body,
    meta_headers,
    page_comment,
    postmark_body,
    running_app,
    transcription_params,
    twilio_signature,
)

# Clear answers for something the client sent (or 200/202 when it was fine).
CLIENT_STATUSES = {200, 202, 400, 401, 413, 415, 422}
EXAMPLES = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

JSON_ROUTES = (
    "/v1/feedback",
    "/v1/feedback/batch",
    "/v1/webhooks/hotline/transcript",
    "/v1/webhooks/postmark",
    "/v1/webhooks/meta",
    "/v1/webhooks/app/reviews",
)
FORM_ROUTES = ("/v1/webhooks/twilio/transcription", "/v1/webhooks/mailgun")
ALL_ROUTES = JSON_ROUTES + FORM_ROUTES
MEDIA_TYPES = (
    "application/json",
    "application/json; charset=utf-8",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=xyz",
    "text/plain",
    "",
)

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=60)
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=20), children, max_size=5)
    ),
    max_leaves=30,
)


@pytest.fixture(scope="module")
def producer() -> FakeProducer:
    return FakeProducer()


@pytest.fixture(scope="module")
async def client(producer: FakeProducer) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(ingest_settings(), producer) as http:
        yield http


def _valid_payloads() -> dict[str, Any]:
    return {
        "/v1/feedback": feedback_item(),
        "/v1/feedback/batch": {"items": [feedback_item(), feedback_item(channel="email")]},
        "/v1/webhooks/hotline/transcript": contact_lens(),
        "/v1/webhooks/postmark": postmark_body(),
        "/v1/webhooks/meta": orjson.loads(
            meta_body("page", [page_comment(), page_comment(verb="edited")])
        ),
        "/v1/webhooks/app/reviews": {"data": [app_store_review(), app_store_review()]},
    }


@st.composite
def mutated(draw: st.DrawFn, payload: Any) -> Any:
    """``payload`` with one to three random places replaced by any JSON value or dropped."""
    result = copy.deepcopy(payload)
    for _ in range(draw(st.integers(1, 3))):
        node: Any = result
        path: list[Any] = []
        while isinstance(node, dict | list) and node and draw(st.booleans()):
            key = draw(
                st.sampled_from(list(node.keys()) if isinstance(node, dict) else range(len(node)))
            )
            path.append(key)
            node = node[key]
        if not path:
            continue
        parent: Any = result
        for key in path[:-1]:
            parent = parent[key]
        if isinstance(parent, dict) and draw(st.booleans()):
            parent.pop(path[-1], None)
        else:
            parent[path[-1]] = draw(json_values)
    return result


def _dumps(value: Any) -> bytes:
    # The standard library, not orjson: clients may send integers beyond 64 bits.
    return json.dumps(value, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _headers_for(path: str, raw: bytes, content_type: str) -> dict[str, str]:
    headers = {"Content-Type": content_type} if content_type else {}
    if path == "/v1/webhooks/meta":
        headers["X-Hub-Signature-256"] = meta_headers(raw)["X-Hub-Signature-256"]
    if path == "/v1/webhooks/postmark":
        headers["Authorization"] = basic_auth()
    return headers


async def _check(
    client: httpx.AsyncClient,
    producer: FakeProducer,
    path: str,
    raw: bytes,
    headers: dict[str, str],
) -> httpx.Response:
    before = len(producer.sent)
    response = await client.post(path, content=raw, headers=headers)
    assert response.status_code in CLIENT_STATUSES, (path, response.status_code, response.text)
    body = response.json()
    published = producer.sent[before:]
    if response.status_code >= 400:
        assert isinstance(body["error"]["code"], str)
        assert body["error"]["detail"]
        assert not published, "a refused request published events"
        return response
    ids = body.get("ids", [body.get("id")] if body.get("id") else [])
    assert len(ids) == len(published)
    for message in published:
        event = FeedbackReceivedEvent.model_validate_json(message.value)
        assert str(event.data.id) in ids
        assert message.key == str(event.data.id).encode()
    return response


@EXAMPLES
@given(
    path=st.sampled_from(ALL_ROUTES),
    raw=st.binary(max_size=2000),
    content_type=st.sampled_from(MEDIA_TYPES),
)
async def test_any_bytes_get_a_clear_answer(
    client: httpx.AsyncClient, producer: FakeProducer, path: str, raw: bytes, content_type: str
) -> None:
    await _check(client, producer, path, raw, _headers_for(path, raw, content_type))


@EXAMPLES
@given(path=st.sampled_from(JSON_ROUTES), value=json_values)
async def test_any_json_shape_gets_a_clear_answer(
    client: httpx.AsyncClient, producer: FakeProducer, path: str, value: Any
) -> None:
    raw = _dumps(value)
    await _check(client, producer, path, raw, _headers_for(path, raw, "application/json"))


@EXAMPLES
@given(data=st.data(), path=st.sampled_from(JSON_ROUTES))
async def test_valid_payloads_mutated_anywhere_get_a_clear_answer(
    client: httpx.AsyncClient, producer: FakeProducer, data: st.DataObject, path: str
) -> None:
    payload = data.draw(mutated(_valid_payloads()[path]))
    raw = _dumps(payload)
    await _check(client, producer, path, raw, _headers_for(path, raw, "application/json"))


form_fields = st.dictionaries(st.text(min_size=1, max_size=20), st.text(max_size=80), max_size=8)


@EXAMPLES
@given(extra=form_fields, drop=st.sets(st.sampled_from(list(transcription_params())), max_size=4))
async def test_any_signed_twilio_form_gets_a_clear_answer(
    client: httpx.AsyncClient, producer: FakeProducer, extra: dict[str, str], drop: set[str]
) -> None:
    params = {k: v for k, v in transcription_params().items() if k not in drop}
    params.update(extra)
    path = "/v1/webhooks/twilio/transcription"
    url = f"https://{PUBLIC_HOST}{path}"
    headers = {
        **FORWARDED_HTTPS,
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": twilio_signature(TWILIO_AUTH_TOKEN, url, params),
    }
    await _check(client, producer, path, form(params), headers)


@EXAMPLES
@given(
    extra=form_fields,
    drop=st.sets(
        st.sampled_from(
            ["from", "sender", "subject", "body-plain", "stripped-text", "message-headers"]
        )
    ),
    headers_value=st.none() | json_values.map(json.dumps),
)
async def test_any_signed_mailgun_form_gets_a_clear_answer(
    client: httpx.AsyncClient,
    producer: FakeProducer,
    extra: dict[str, str],
    drop: set[str],
    headers_value: str | None,
) -> None:
    fields = mailgun_fields(token=uuid.uuid4().hex, timestamp=int(time.time()))
    signed = {k: fields[k] for k in ("timestamp", "token", "signature")}
    fields = {k: v for k, v in fields.items() if k not in drop}
    fields.update({k: v for k, v in extra.items() if k not in signed})
    if headers_value is not None:
        fields["message-headers"] = headers_value
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    await _check(client, producer, "/v1/webhooks/mailgun", form(fields), headers)


@EXAMPLES
@given(
    text=st.text(min_size=1, max_size=3000),
    route=st.sampled_from(["/v1/feedback", "/v1/webhooks/postmark", "/v1/webhooks/meta"]),
)
async def test_texts_in_any_script_are_accepted_unchanged(
    client: httpx.AsyncClient, producer: FakeProducer, text: str, route: str
) -> None:
    if route == "/v1/feedback":
        payload: Any = feedback_item(text=text)
    elif route == "/v1/webhooks/postmark":
        payload = postmark_body(StrippedTextReply=text, TextBody=text)
    else:
        payload = orjson.loads(meta_body("instagram", [instagram_comment(text=text)]))
    raw = orjson.dumps(payload)
    response = await _check(
        client, producer, route, raw, _headers_for(route, raw, JSON_HEADERS["Content-Type"])
    )
    if response.status_code in (200, 202) and text.strip():
        event = FeedbackReceivedEvent.model_validate_json(producer.sent[-1].value)
        # Adapters may trim surrounding space and normalise line ends; every character stays.
        assert "".join(event.data.text.split()) == "".join(text.split())


@pytest.mark.parametrize(
    ("label", "text"),
    [
        ("10,000 emoji", "😡" * 10_000),
        ("null byte", "refund\x00please"),
        ("right-to-left", "التطبيق لا يعمل منذ التحديث"),
        ("combining marks", "e\u0301" * 2000),
        ("astral plane", "𝕿𝖍𝖎𝖘 𝖆𝖕𝖕 𝖈𝖗𝖆𝖘𝖍𝖊𝖘"),
    ],
)
async def test_edge_texts(
    client: httpx.AsyncClient, producer: FakeProducer, label: str, text: str
) -> None:
    raw = orjson.dumps(feedback_item(text=text))
    response = await _check(client, producer, "/v1/feedback", raw, JSON_HEADERS)
    assert response.status_code in (202, 422), label


async def test_invalid_utf8_is_a_400(client: httpx.AsyncClient, producer: FakeProducer) -> None:
    raw = b'{"channel": "app", "external_id": "x", "text": "\xff\xfe", "occurred_at": "2024-01-01T00:00:00Z"}'
    for path in JSON_ROUTES:
        response = await _check(
            client, producer, path, raw, _headers_for(path, raw, "application/json")
        )
        assert response.status_code in (400, 401, 422), path


@pytest.mark.parametrize("depth", [64, 1000, 100_000])
async def test_deeply_nested_json_is_refused(
    client: httpx.AsyncClient, producer: FakeProducer, depth: int
) -> None:
    raw = b'{"items": ' + b"[" * depth + b"]" * depth + b"}"
    for path in JSON_ROUTES:
        response = await _check(
            client, producer, path, raw, _headers_for(path, raw, "application/json")
        )
        assert 400 <= response.status_code < 500, path


async def test_huge_json_over_the_limit_is_413_on_every_route(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    huge = b'{"text": "' + b"a" * (11 * 1024 * 1024) + b'"}'
    for path in ALL_ROUTES:
        content_type = (
            "application/x-www-form-urlencoded" if path in FORM_ROUTES else "application/json"
        )
        response = await _check(
            client, producer, path, huge, _headers_for(path, huge, content_type)
        )
        assert response.status_code == 413, path


async def test_size_limit_is_checked_before_reading_the_body(
    producer: FakeProducer,
) -> None:
    """A Content-Length over the limit is refused before one byte of the body is consumed."""
    consumed = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal consumed
        for _ in range(1000):
            consumed += 65536
            yield b"a" * 65536

    async with running_app(ingest_settings(), producer) as http:
        for path in ALL_ROUTES:
            consumed = 0
            content_type = (
                "application/x-www-form-urlencoded" if path in FORM_ROUTES else "application/json"
            )
            response = await http.post(
                path,
                content=endless(),
                headers={
                    **_headers_for(path, b"", content_type),
                    "Content-Length": str(64 * 1024 * 1024),
                },
            )
            assert response.status_code == 413, path
            # The ASGI transport may have buffered the first chunk; never the whole body.
            assert consumed <= 65536 * 2, (path, consumed)


def test_internal_base_url_is_what_the_twilio_signature_does_not_use() -> None:
    # Guards the Twilio property test above: it signs the public URL, not the internal one.
    assert PUBLIC_HOST not in INTERNAL_BASE_URL


@pytest.mark.parametrize(
    ("path", "payload"),
    [
        ("/v1/feedback", feedback_item(attributes={"n": 2**70})),
        (
            "/v1/feedback/batch",
            {"items": [feedback_item(), feedback_item(attributes={"n": -(2**64)})]},
        ),
        ("/v1/feedback", feedback_item(attributes={"deep": json.loads("[" * 190 + "]" * 190)})),
    ],
    ids=["int-beyond-64-bits", "batch-item-beyond-64-bits", "nesting-190"],
)
async def test_values_the_event_wire_format_cannot_carry_are_422_not_500(
    client: httpx.AsyncClient, producer: FakeProducer, path: str, payload: Any
) -> None:
    """Found by Schemathesis: integers beyond 64 bits in ``attributes`` made orjson raise → 500."""
    raw = _dumps(payload)
    response = await _check(client, producer, path, raw, JSON_HEADERS)
    if path.endswith("batch"):
        assert response.status_code == 422
        assert response.json()["error"]["invalid_items"] == [1]
    elif "deep" in payload["attributes"]:
        assert response.status_code in (202, 422)
    else:
        assert response.status_code == 422
        assert response.json()["error"]["code"] == "invalid_payload"


async def test_provider_numbers_beyond_64_bits_are_422_not_500(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    body = contact_lens()
    body["Transcript"][1]["BeginOffsetMillis"] = 2**70
    raw = _dumps(body)
    response = await _check(client, producer, "/v1/webhooks/hotline/transcript", raw, JSON_HEADERS)
    assert response.status_code in (202, 422)
