"""The canonical API: /v1/feedback and /v1/feedback/batch, plus the body rules every route shares."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import orjson
import pytest

from closeloop_ingest.config import MIB
from closeloop_shared.contracts.feedback import Channel, feedback_id
from tests.ingest.support import (
    JSON_HEADERS,
    FakeProducer,
    feedback_item,
    ingest_settings,
    running_app,
)


async def test_feedback_is_accepted_with_its_deterministic_id(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    item = feedback_item()
    response = await client.post("/v1/feedback", json=item)
    assert response.status_code == 202, response.text
    expected = feedback_id(Channel.APP, item["external_id"])
    assert response.json() == {"id": str(expected)}
    [event] = producer.events()
    assert event["source"] == "/closeloop/ingest/api"
    assert event["data"]["rating"] == {"type": "nps", "value": 10.0}


@pytest.mark.parametrize(
    ("item", "location"),
    [
        pytest.param(feedback_item(text=""), ["text"], id="empty-text"),
        pytest.param(feedback_item(text="   "), ["text"], id="blank-text"),
        pytest.param(feedback_item(channel="fax"), ["channel"], id="unknown-channel"),
        pytest.param(feedback_item(occurred_at="2024-03-04T09:30:00"), ["occurred_at"], id="naive-time"),
        pytest.param(feedback_item(rating={"type": "nps", "value": 11}), ["rating"], id="nps-out-of-range"),
        pytest.param(feedback_item(unknown="x"), ["unknown"], id="unknown-field"),
    ],
)  # fmt: skip
async def test_invalid_feedback_is_422_naming_the_field(
    client: httpx.AsyncClient, producer: FakeProducer, item: dict[str, object], location: list[str]
) -> None:
    response = await client.post("/v1/feedback", json=item)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_payload"
    assert location in [e["loc"] for e in error["errors"]]
    # The error never echoes what was sent: it may be customer text.
    assert all("input" not in e for e in error["errors"])
    assert producer.sent == []


async def test_missing_fields_are_422(client: httpx.AsyncClient) -> None:
    response = await client.post("/v1/feedback", json={"channel": "app"})
    assert response.status_code == 422
    missing = {e["loc"][0] for e in response.json()["error"]["errors"] if e["type"] == "missing"}
    assert missing == {"external_id", "text", "occurred_at"}


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b'{"channel": "app", ', id="truncated"),
        pytest.param(b"", id="empty"),
        pytest.param('{"text": "café"}'.encode("latin-1"), id="not-utf8"),
    ],
)
async def test_malformed_json_is_400(client: httpx.AsyncClient, content: bytes) -> None:
    response = await client.post("/v1/feedback", content=content, headers=JSON_HEADERS)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "malformed_body"


@pytest.mark.parametrize(
    "content_type",
    [None, "text/plain", "application/x-www-form-urlencoded", "application/jsonx"],
)
async def test_other_content_types_are_415(
    client: httpx.AsyncClient, content_type: str | None
) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    response = await client.post(
        "/v1/feedback", content=orjson.dumps(feedback_item()), headers=headers
    )
    assert response.status_code == 415


async def test_json_with_a_charset_parameter_is_accepted(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/v1/feedback",
        content=orjson.dumps(feedback_item()),
        headers={"Content-Type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 202


# -- batch ----------------------------------------------------------------------------------


async def test_batch_is_accepted_in_order(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    items = [feedback_item() for _ in range(3)]
    response = await client.post("/v1/feedback/batch", json={"items": items})
    assert response.status_code == 202, response.text
    expected = [str(feedback_id(Channel.APP, item["external_id"])) for item in items]
    assert response.json() == {"ids": expected}
    assert [message.key for message in producer.sent] == [i.encode() for i in expected]


async def test_batch_with_bad_items_is_refused_whole_naming_each_index(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    items = [feedback_item(), feedback_item(text=""), feedback_item(), feedback_item(channel="x")]
    response = await client.post("/v1/feedback/batch", json={"items": items})
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["invalid_items"] == [1, 3]
    assert producer.sent == []


@pytest.mark.parametrize("count", [0, 1001])
async def test_batch_size_is_1_to_1000(client: httpx.AsyncClient, count: int) -> None:
    item = feedback_item(text="ok")
    response = await client.post("/v1/feedback/batch", json={"items": [item] * count})
    assert response.status_code == 422


async def test_full_batch_of_1000_is_accepted(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    items = [feedback_item(text="ok", external_id=f"bulk-{i}") for i in range(1000)]
    response = await client.post("/v1/feedback/batch", json={"items": items})
    assert response.status_code == 202
    assert len(response.json()["ids"]) == 1000
    assert len(producer.sent) == 1000


# -- broker outage --------------------------------------------------------------------------


async def test_broker_outage_is_503_with_retry_after(
    client: httpx.AsyncClient, producer: FakeProducer
) -> None:
    producer.available = False
    response = await client.post("/v1/feedback", json=feedback_item())
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "5"
    assert response.json()["error"]["code"] == "broker_unavailable"
    readiness = await client.get("/readyz")
    assert readiness.status_code == 503


# -- body size ------------------------------------------------------------------------------


@pytest.fixture
async def small_client(producer: FakeProducer) -> AsyncIterator[httpx.AsyncClient]:
    async with running_app(ingest_settings(max_body_bytes=1024), producer) as http:
        yield http


async def test_declared_oversized_body_is_413_before_reading(
    small_client: httpx.AsyncClient,
) -> None:
    body = orjson.dumps(feedback_item(text="x" * 2000))
    response = await small_client.post("/v1/feedback", content=body, headers=JSON_HEADERS)
    assert response.status_code == 413
    assert response.json()["error"] == {
        "code": "payload_too_large",
        "detail": "The body exceeds 1024 bytes.",
        "limit": 1024,
    }


async def test_streamed_oversized_body_without_length_is_413(
    small_client: httpx.AsyncClient,
) -> None:
    chunks_sent = 0

    async def endless() -> AsyncIterator[bytes]:
        nonlocal chunks_sent
        # Far more than the cap, without a Content-Length: counted while streaming.
        for _ in range(10_000):
            chunks_sent += 1
            yield b"x" * 512

    response = await small_client.post("/v1/feedback", content=endless(), headers=JSON_HEADERS)
    assert response.status_code == 413
    assert chunks_sent < 10_000


async def test_lying_content_length_is_still_capped(small_client: httpx.AsyncClient) -> None:
    request = small_client.build_request(
        "POST",
        "/v1/feedback",
        content=b"x" * 4096,
        headers={**JSON_HEADERS, "Content-Length": "10"},
    )
    response = await small_client.send(request)
    assert response.status_code == 413


async def test_email_routes_have_the_larger_cap() -> None:
    settings = ingest_settings(max_body_bytes=1024, max_email_body_bytes=2 * MIB)
    async with running_app(settings, FakeProducer()) as client:
        # Postmark is authenticated after reading: a 401 means the size was accepted.
        big = orjson.dumps({"TextBody": "x" * 100_000})
        response = await client.post("/v1/webhooks/postmark", content=big, headers=JSON_HEADERS)
        assert response.status_code == 401
        meta = await client.post("/v1/webhooks/meta", content=big, headers=JSON_HEADERS)
        assert meta.status_code == 413


async def test_bad_content_length_is_400(client: httpx.AsyncClient) -> None:
    request = client.build_request(
        "POST", "/v1/feedback", content=b"{}", headers={**JSON_HEADERS, "Content-Length": "ten"}
    )
    response = await client.send(request)
    assert response.status_code == 400


# -- operations and docs ----------------------------------------------------------------------


async def test_health_readiness_and_metrics(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    readiness = await client.get("/readyz")
    assert readiness.status_code == 200
    assert readiness.json()["checks"] == {"broker": True}
    await client.post("/v1/feedback", json=feedback_item())
    exposition = (await client.get("/metrics")).text
    assert 'closeloop_ingest_feedback_received_total{adapter="api",channel="app"}' in exposition
    assert "closeloop_ingest_publish_duration_seconds_bucket" in exposition


async def test_openapi_documents_the_raw_bodies_with_resolvable_schemas(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    body = document["paths"]["/v1/feedback"]["post"]["requestBody"]["content"]["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/FeedbackIn"}
    assert {"FeedbackIn", "Customer", "Rating", "FeedbackBatchIn", "MetaWebhook"} <= set(schemas)

    def references(node: object) -> set[str]:
        if isinstance(node, dict):
            found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
            return found.union(*(references(value) for value in node.values()))
        if isinstance(node, list):
            return set().union(*(references(value) for value in node))
        return set()

    for reference in references(document):
        assert reference.removeprefix("#/components/schemas/") in schemas, reference
    twilio = document["paths"]["/v1/webhooks/twilio/transcription"]["post"]
    assert "application/x-www-form-urlencoded" in twilio["requestBody"]["content"]
