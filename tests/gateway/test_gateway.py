"""The gateway in front of fake upstreams, with the real PostgreSQL."""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import orjson
import pytest

from tests.gateway.support import (
    ADMIN_KEY,
    FEEDBACK_ID,
    FakeUpstream,
    Reply,
    bearer,
    gateway_settings,
    running_gateway,
)

pytestmark = pytest.mark.integration

FEEDBACK = orjson.dumps(
    {
        "channel": "app",
        "external_id": "r-1",
        "text": "The app crashes every time I open my invoices.  ",
        "occurred_at": "2026-11-22T10:00:00+00:00",
        "attributes": {"order": 48213, "emoji": "😡"},
    }
)


async def create_key(gateway: httpx.AsyncClient, name: str, *scopes: str) -> dict[str, Any]:
    response = await gateway.post(
        "/v1/admin/api-keys", json={"name": name, "scopes": list(scopes)}, headers=bearer(ADMIN_KEY)
    )
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


@pytest.fixture(scope="module")
async def writer_key(gateway: httpx.AsyncClient) -> str:
    key: str = (await create_key(gateway, "crm-sync", "feedback:write"))["key"]
    return key


@pytest.fixture(scope="module")
async def support_key(gateway: httpx.AsyncClient) -> str:
    key: str = (await create_key(gateway, "support desk", "alerts:read", "alerts:write"))["key"]
    return key


# --- authentication ---------------------------------------------------------------------------


async def test_no_key_is_401_with_a_bearer_challenge(gateway: httpx.AsyncClient) -> None:
    response = await gateway.post(
        "/v1/feedback", content=FEEDBACK, headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.parametrize(
    "authorization",
    [
        b"Bearer clk_not-a-real-key",
        b"Basic dXNlcjpwYXNz",
        b"Bearer",
        b"Bearer a b",
        b"Bearer caf\xc3\xa9",
    ],
)
async def test_wrong_or_malformed_key_is_401(
    gateway: httpx.AsyncClient, ingest: FakeUpstream, authorization: bytes
) -> None:
    before = len(ingest.received)
    response = await gateway.post(
        "/v1/feedback",
        content=FEEDBACK,
        headers=[(b"content-type", b"application/json"), (b"authorization", authorization)],
    )
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert len(ingest.received) == before


async def test_key_without_the_scope_is_403(
    gateway: httpx.AsyncClient, writer_key: str, support_key: str
) -> None:
    response = await gateway.get("/v1/alerts", headers=bearer(writer_key))
    assert response.status_code == 403
    assert response.json()["error"] == {
        "code": "forbidden",
        "detail": "This API key lacks the 'alerts:read' scope.",
        "required_scope": "alerts:read",
    }
    response = await gateway.post(
        "/v1/feedback",
        content=FEEDBACK,
        headers={**bearer(support_key), "Content-Type": "application/json"},
    )
    assert response.status_code == 403
    response = await gateway.get("/v1/admin/api-keys", headers=bearer(support_key))
    assert response.status_code == 403


# --- forwarding to ingest ---------------------------------------------------------------------


async def test_feedback_is_forwarded_byte_for_byte_with_the_caller_identity(
    gateway: httpx.AsyncClient, ingest: FakeUpstream, writer_key: str
) -> None:
    response = await gateway.post(
        "/v1/feedback",
        content=FEEDBACK,
        headers={
            **bearer(writer_key),
            "Content-Type": "application/json; charset=utf-8",
            # Forged identity and forwarding headers must not reach the service.
            "X-Closeloop-Principal": "someone-else",
            "X-Closeloop-Actor": "admin",
            "X-Forwarded-Host": "evil.example",
            "Cookie": "session=1",
        },
    )
    assert response.status_code == 202
    assert response.json() == {"id": FEEDBACK_ID}
    assert response.headers["content-type"] == "application/json"

    seen = ingest.last("/v1/feedback")
    assert seen.method == "POST"
    assert seen.body == FEEDBACK
    assert seen.header("content-type") == "application/json; charset=utf-8"
    keys = (await gateway.get("/v1/admin/api-keys", headers=bearer(ADMIN_KEY))).json()["items"]
    writer = next(key for key in keys if key["name"] == "crm-sync")
    assert seen.header("x-closeloop-principal") == writer["id"]
    assert seen.header("x-closeloop-actor") == "crm-sync"
    assert seen.header("x-forwarded-host") == "testserver"
    assert seen.header("x-forwarded-proto") == "http"
    assert seen.header("x-forwarded-for") == "127.0.0.1"
    assert seen.header("authorization") is None
    assert seen.header("cookie") is None
    assert writer["last_used_at"] is not None


async def test_batch_is_forwarded(
    gateway: httpx.AsyncClient, ingest: FakeUpstream, writer_key: str
) -> None:
    batch = b'{"items": [' + b",".join([FEEDBACK] * 3) + b"]}"
    ingest.script("/v1/feedback/batch", Reply(202, b'{"ids": []}'))
    response = await gateway.post(
        "/v1/feedback/batch",
        content=batch,
        headers={**bearer(writer_key), "Content-Type": "application/json"},
    )
    assert response.status_code == 202
    assert ingest.last("/v1/feedback/batch").body == batch


async def test_upstream_answers_pass_through_unchanged(
    gateway: httpx.AsyncClient, ingest: FakeUpstream, writer_key: str
) -> None:
    problem = b'{"error":{"code":"invalid_request","detail":"text is required"}}'
    ingest.script(
        "/v1/feedback",
        Reply(422, problem),
        Reply(
            503,
            b'{"error":{"code":"unavailable"}}',
            (
                ("content-type", "application/problem+json"),
                ("retry-after", "3"),
                ("x-internal", "1"),
            ),
        ),
    )
    headers = {**bearer(writer_key), "Content-Type": "application/json"}
    invalid = await gateway.post("/v1/feedback", content=b"{}", headers=headers)
    assert invalid.status_code == 422
    assert invalid.content == problem
    busy = await gateway.post("/v1/feedback", content=FEEDBACK, headers=headers)
    assert busy.status_code == 503
    assert busy.headers["retry-after"] == "3"
    assert busy.headers["content-type"] == "application/problem+json"
    assert "x-internal" not in busy.headers


async def test_keyed_webhooks_are_forwarded(
    gateway: httpx.AsyncClient, ingest: FakeUpstream, writer_key: str
) -> None:
    for path in ("/v1/webhooks/hotline/transcript", "/v1/webhooks/app/reviews"):
        body = b'{"provider": "' + path.encode() + b'"}'
        response = await gateway.post(
            path, content=body, headers={**bearer(writer_key), "Content-Type": "application/json"}
        )
        assert response.status_code == 202, path
        assert ingest.last(path).body == body
        assert ingest.last(path).header("x-closeloop-actor") == "crm-sync"
        assert (await gateway.post(path, content=body)).status_code == 401


async def test_twilio_webhook_needs_no_key_and_keeps_signature_query_and_public_url(
    gateway: httpx.AsyncClient, ingest: FakeUpstream
) -> None:
    form = b"TranscriptionSid=TR1&TranscriptionText=Caf%C3%A9+is+closed%21&From=%2B14155550123"
    query = b"tenant=a%2Fb&x=%7E+1"
    response = await gateway.post(
        "/v1/webhooks/twilio/transcription?" + query.decode(),
        content=form,
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": "c2lnbmF0dXJl",
            "Host": "feedback.example.com",
            "X-Closeloop-Principal": "forged",
        },
    )
    assert response.status_code == 202
    seen = ingest.last("/v1/webhooks/twilio/transcription")
    assert seen.body == form
    assert seen.query == query
    assert seen.header("x-twilio-signature") == "c2lnbmF0dXJl"
    assert seen.header("x-forwarded-host") == "feedback.example.com"
    assert seen.header("x-forwarded-proto") == "http"
    assert seen.header("x-forwarded-for") == "127.0.0.1"
    assert seen.header("x-closeloop-principal") is None
    assert seen.header("x-closeloop-actor") is None


async def test_postmark_basic_auth_and_meta_signature_reach_ingest(
    gateway: httpx.AsyncClient, ingest: FakeUpstream
) -> None:
    basic = "Basic " + base64.b64encode(b"postmark:s3cret").decode()
    ingest.script("/v1/webhooks/postmark", Reply(200, b'{"id": null}'))
    response = await gateway.post(
        "/v1/webhooks/postmark",
        content=b'{"MessageID": "m-1"}',
        headers={"Content-Type": "application/json", "Authorization": basic},
    )
    assert response.status_code == 200
    assert ingest.last("/v1/webhooks/postmark").header("authorization") == basic

    ingest.script("/v1/webhooks/meta", Reply(200, b'{"ids": []}'))
    response = await gateway.post(
        "/v1/webhooks/meta",
        content=b'{"object": "page", "entry": []}',
        headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=abc"},
    )
    assert response.status_code == 200
    seen = ingest.last("/v1/webhooks/meta")
    assert seen.header("x-hub-signature-256") == "sha256=abc"
    assert seen.header("authorization") is None


async def test_meta_verification_get_passes_query_and_plain_text_back(
    gateway: httpx.AsyncClient, ingest: FakeUpstream
) -> None:
    ingest.script("/v1/webhooks/meta", Reply(200, b"1158201444", (("content-type", "text/plain"),)))
    query = "hub.mode=subscribe&hub.verify_token=tok&hub.challenge=1158201444"
    response = await gateway.get(f"/v1/webhooks/meta?{query}")
    assert response.status_code == 200
    assert response.text == "1158201444"
    assert response.headers["content-type"] == "text/plain"
    seen = ingest.last("/v1/webhooks/meta")
    assert seen.method == "GET"
    assert seen.query == query.encode()


async def test_mailgun_multipart_is_forwarded_untouched(
    gateway: httpx.AsyncClient, ingest: FakeUpstream
) -> None:
    ingest.script("/v1/webhooks/mailgun", Reply(200, b'{"id": null}'))
    response = await gateway.post(
        "/v1/webhooks/mailgun",
        data={"sender": "dana@example.com", "stripped-text": "Charged twice."},
        files={"attachment-1": ("a.txt", b"\x00\x01binary", "application/octet-stream")},
    )
    assert response.status_code == 200
    seen = ingest.last("/v1/webhooks/mailgun")
    content_type = seen.header("content-type")
    assert content_type is not None
    assert content_type.startswith("multipart/form-data; boundary=")
    assert b"\x00\x01binary" in seen.body


# --- limits -----------------------------------------------------------------------------------


async def test_wrong_or_missing_content_type_is_415(
    gateway: httpx.AsyncClient, writer_key: str
) -> None:
    for headers in ({"Content-Type": "text/plain"}, {}):
        response = await gateway.post(
            "/v1/feedback", content=FEEDBACK, headers={**bearer(writer_key), **headers}
        )
        assert response.status_code == 415
        assert response.json()["error"]["code"] == "unsupported_media_type"
    response = await gateway.post(
        "/v1/webhooks/twilio/transcription",
        content=b"{}",
        headers={"Content-Type": "application/json"},
    )
    assert response.status_code == 415


async def test_oversized_body_is_413_with_or_without_content_length(
    gateway: httpx.AsyncClient, ingest: FakeUpstream, writer_key: str
) -> None:
    before = len(ingest.received)
    big = b"x" * (1024 * 1024 + 1)
    headers = {**bearer(writer_key), "Content-Type": "application/json"}
    declared = await gateway.post("/v1/feedback", content=big, headers=headers)
    assert declared.status_code == 413
    assert declared.json()["error"] == {
        "code": "payload_too_large",
        "detail": "The request body exceeds 1048576 bytes.",
        "limit": 1048576,
    }

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(17):
            yield b"y" * 65536

    streamed = await gateway.post("/v1/feedback", content=chunks(), headers=headers)
    assert streamed.status_code == 413
    assert len(ingest.received) == before
    # The batch route takes 10 MiB.
    ingest.script("/v1/feedback/batch", Reply(202, b'{"ids": []}'))
    accepted = await gateway.post("/v1/feedback/batch", content=big, headers=headers)
    assert accepted.status_code == 202
    assert ingest.last("/v1/feedback/batch").body == big


# --- alerts -----------------------------------------------------------------------------------


async def test_alert_routes_are_forwarded_with_query_and_identity(
    gateway: httpx.AsyncClient, alerts: FakeUpstream, support_key: str
) -> None:
    alerts.default = Reply(200, b'{"items": [], "next_cursor": null}')
    alert_id = uuid.uuid4()
    response = await gateway.get(
        "/v1/alerts?status=open&owner=billing&limit=20&cursor=abc%3D%3D",
        headers=bearer(support_key),
    )
    assert response.status_code == 200
    assert response.json() == {"items": [], "next_cursor": None}
    seen = alerts.last("/v1/alerts")
    assert seen.query == b"status=open&owner=billing&limit=20&cursor=abc%3D%3D"
    assert seen.header("x-closeloop-actor") == "support desk"

    assert (await gateway.get(f"/v1/alerts/{alert_id}", headers=bearer(support_key))).is_success
    assert alerts.last(f"/v1/alerts/{alert_id}").method == "GET"
    feedback_id = uuid.uuid4()
    assert (
        await gateway.get(f"/v1/feedback/{feedback_id}", headers=bearer(support_key))
    ).is_success
    assert alerts.last(f"/v1/feedback/{feedback_id}").method == "GET"
    related = f"/v1/feedback/{feedback_id}/related"
    assert (await gateway.get(f"{related}?limit=5", headers=bearer(support_key))).is_success
    assert alerts.last(related).query == b"limit=5"
    refused = await gateway.get(f"{related}?limit=0", headers=bearer(support_key))
    assert refused.status_code == 422
    listed = await gateway.get(
        "/v1/feedback?channel=app&sentiment=negative&sentiment=neutral&rating_type=nps"
        "&journey_stage=(none)&limit=5",
        headers=bearer(support_key),
    )
    assert listed.is_success
    assert alerts.last("/v1/feedback").method == "GET"
    assert alerts.last("/v1/feedback").query == (
        b"channel=app&sentiment=negative&sentiment=neutral&rating_type=nps"
        b"&journey_stage=(none)&limit=5"
    )
    assert (
        await gateway.get("/v1/feedback?rating_type=stars", headers=bearer(support_key))
    ).status_code == 422
    scores = f"/v1/feedback/{feedback_id}/scores"
    assert (await gateway.get(scores, headers=bearer(support_key))).is_success
    assert alerts.last(scores).method == "GET"
    filtered = await gateway.get(
        "/v1/alerts?status=open&status=acknowledged&channel=email&sla=at_risk&topic=(none)",
        headers=bearer(support_key),
    )
    assert filtered.status_code == 200
    assert alerts.last("/v1/alerts").query == (
        b"status=open&status=acknowledged&channel=email&sla=at_risk&topic=(none)"
    )
    for bad in ("sla=late", "channel=fax", "journey_stage=shopping", "topic=%00"):
        answer = await gateway.get(f"/v1/alerts?{bad}", headers=bearer(support_key))
        assert answer.status_code == 422, bad

    acknowledged = await gateway.post(
        f"/v1/alerts/{alert_id}/acknowledge", headers=bearer(support_key)
    )
    assert acknowledged.status_code == 200
    assert alerts.last(f"/v1/alerts/{alert_id}/acknowledge").body == b""

    note = b'{"note": "Called back, refunded."}'
    resolved = await gateway.post(
        f"/v1/alerts/{alert_id}/resolve",
        content=note,
        headers={**bearer(support_key), "Content-Type": "application/json"},
    )
    assert resolved.status_code == 200
    seen = alerts.last(f"/v1/alerts/{alert_id}/resolve")
    assert seen.body == note
    assert seen.header("x-closeloop-principal") is not None

    alerts.script(
        f"/v1/alerts/{alert_id}/acknowledge", Reply(409, b'{"error": {"code": "conflict"}}')
    )
    again = await gateway.post(f"/v1/alerts/{alert_id}/acknowledge", headers=bearer(support_key))
    assert again.status_code == 409


async def test_alert_routes_check_ids_and_filters(
    gateway: httpx.AsyncClient, alerts: FakeUpstream, support_key: str
) -> None:
    before = len(alerts.received)
    bad_id = await gateway.get("/v1/alerts/..%2F..%2Fadmin", headers=bearer(support_key))
    assert bad_id.status_code in (404, 422)
    bad_status = await gateway.get("/v1/alerts?status=bogus", headers=bearer(support_key))
    assert bad_status.status_code == 422
    assert bad_status.json()["error"]["code"] == "invalid_request"
    assert len(alerts.received) == before


@pytest.mark.parametrize(
    ("suffix", "body"),
    [
        ("reopen", b'{"note": "The customer wrote again."}'),
        ("assign", b'{"assignee": "ana@example.com", "owner": "billing"}'),
        ("comments", b'{"text": "Called, no answer."}'),
        ("escalate", b'{"to_owner": "leads"}'),
        ("customer-reply", b'{"status": "sent"}'),
        (
            "resolve",
            b'{"note": "Refunded", "root_cause": "billing-error", "customer_reply": "Sorry!"}',
        ),
    ],
)
async def test_lifecycle_actions_forward_their_json_body(
    gateway: httpx.AsyncClient, alerts: FakeUpstream, support_key: str, suffix: str, body: bytes
) -> None:
    alerts.default = Reply(200, b"{}")
    alert_id = uuid.uuid4()
    path = f"/v1/alerts/{alert_id}/{suffix}"
    response = await gateway.post(
        path, content=body, headers={**bearer(support_key), "Content-Type": "application/json"}
    )
    assert response.status_code == 200
    seen = alerts.last(path)
    assert (seen.method, seen.body) == ("POST", body)
    assert seen.header("x-closeloop-actor") == "support desk"
    wrong_type = await gateway.post(
        path, content=body, headers={**bearer(support_key), "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415


async def test_owner_routes_need_admin_to_change_and_forward(
    gateway: httpx.AsyncClient, alerts: FakeUpstream, support_key: str
) -> None:
    alerts.default = Reply(200, b'{"items": []}')
    listed = await gateway.get("/v1/owners", headers=bearer(support_key))
    assert listed.status_code == 200
    assert alerts.last("/v1/owners").method == "GET"
    assert (await gateway.get("/v1/owners/cx-team", headers=bearer(support_key))).is_success
    owner = b'{"notify": [], "timezone": "Asia/Shanghai", "escalation_owner": "leads"}'
    json_headers = {"Content-Type": "application/json"}
    refused = await gateway.put(
        "/v1/owners/cx-team", content=owner, headers={**bearer(support_key), **json_headers}
    )
    assert refused.status_code == 403
    assert refused.json()["error"]["required_scope"] == "admin"
    alerts.script("/v1/owners/new-team", Reply(201, b"{}"), Reply(204, b""))
    created = await gateway.put(
        "/v1/owners/new-team", content=owner, headers={**bearer(ADMIN_KEY), **json_headers}
    )
    assert created.status_code == 201
    assert alerts.last("/v1/owners/new-team").body == owner
    deleted = await gateway.delete("/v1/owners/new-team", headers=bearer(ADMIN_KEY))
    assert deleted.status_code == 204
    assert alerts.last("/v1/owners/new-team").method == "DELETE"
    before = len(alerts.received)
    bad = await gateway.get("/v1/owners/..%2Fadmin", headers=bearer(support_key))
    assert bad.status_code in (404, 422)
    assert len(alerts.received) == before


async def test_dry_run_and_kpis_are_forwarded(
    gateway: httpx.AsyncClient, alerts: FakeUpstream, support_key: str
) -> None:
    alerts.default = Reply(200, b"{}")
    body = b'{"feedback": {}, "sentiment": {"label": "negative", "score": -0.8}}'
    dry = await gateway.post(
        "/v1/routing/dry-run",
        content=body,
        headers={**bearer(support_key), "Content-Type": "application/json"},
    )
    assert dry.status_code == 200
    assert alerts.last("/v1/routing/dry-run").body == body
    kpis = await gateway.get(
        "/v1/kpis?from=2026-11-01T00:00:00Z&group_by=topic", headers=bearer(support_key)
    )
    assert kpis.status_code == 200
    assert alerts.last("/v1/kpis").query == b"from=2026-11-01T00:00:00Z&group_by=topic"
    # The console's heat map grouping is public too.
    heat_map = await gateway.get(
        "/v1/kpis?group_by=journey_stage_touchpoint", headers=bearer(support_key)
    )
    assert heat_map.status_code == 200
    assert alerts.last("/v1/kpis").query == b"group_by=journey_stage_touchpoint"
    before = len(alerts.received)
    bad = await gateway.get("/v1/kpis?group_by=customer", headers=bearer(support_key))
    assert bad.status_code == 422
    assert len(alerts.received) == before


# --- API keys ---------------------------------------------------------------------------------


async def test_key_lifecycle_create_list_use_revoke(
    gateway: httpx.AsyncClient, ingest: FakeUpstream
) -> None:
    response = await gateway.post(
        "/v1/admin/api-keys",
        json={"name": "temporary", "scopes": ["feedback:write", "feedback:write"]},
        headers=bearer(ADMIN_KEY),
    )
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    created = response.json()
    key = created["key"]
    assert key.startswith("clk_")
    assert len(key) >= 40
    assert created["prefix"] == key[:12]
    assert created["scopes"] == ["feedback:write"]
    assert created["revoked_at"] is None

    listed = await gateway.get("/v1/admin/api-keys", headers=bearer(ADMIN_KEY))
    assert listed.status_code == 200
    assert key not in listed.text
    assert all("key" not in item for item in listed.json()["items"])
    names = [item["name"] for item in listed.json()["items"]]
    assert "bootstrap-admin" in names
    assert "temporary" in names

    headers = {**bearer(key), "Content-Type": "application/json"}
    assert (
        await gateway.post("/v1/feedback", content=FEEDBACK, headers=headers)
    ).status_code == 202

    revoked = await gateway.delete(f"/v1/admin/api-keys/{created['id']}", headers=bearer(ADMIN_KEY))
    assert revoked.status_code == 204
    refused = await gateway.post("/v1/feedback", content=FEEDBACK, headers=headers)
    assert refused.status_code == 401
    again = await gateway.delete(f"/v1/admin/api-keys/{created['id']}", headers=bearer(ADMIN_KEY))
    assert again.status_code == 204
    listed_after = (await gateway.get("/v1/admin/api-keys", headers=bearer(ADMIN_KEY))).json()
    entry = next(item for item in listed_after["items"] if item["id"] == created["id"])
    assert entry["revoked_at"] is not None


async def test_admin_api_refuses_bad_requests(gateway: httpx.AsyncClient) -> None:
    admin = bearer(ADMIN_KEY)
    missing = await gateway.delete(f"/v1/admin/api-keys/{uuid.uuid4()}", headers=admin)
    assert missing.status_code == 404
    for body in (
        {"name": "x", "scopes": []},
        {"name": "x", "scopes": ["root"]},
        {"name": "bad\nname", "scopes": ["admin"]},
        {"name": "x", "scopes": ["admin"], "extra": 1},
    ):
        response = await gateway.post("/v1/admin/api-keys", json=body, headers=admin)
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "invalid_request"
    reserved = await gateway.post(
        "/v1/admin/api-keys", json={"name": "bootstrap-admin", "scopes": ["admin"]}, headers=admin
    )
    assert reserved.status_code == 409
    wrong_type = await gateway.post(
        "/v1/admin/api-keys", content=b"name=x", headers={**admin, "Content-Type": "text/plain"}
    )
    assert wrong_type.status_code == 415
    unauthenticated = await gateway.post(
        "/v1/admin/api-keys", json={"name": "x", "scopes": ["admin"]}
    )
    assert unauthenticated.status_code == 401


async def test_admin_scope_implies_every_scope(
    gateway: httpx.AsyncClient, alerts: FakeUpstream
) -> None:
    alerts.default = Reply(200, b'{"items": [], "next_cursor": null}')
    assert (await gateway.get("/v1/alerts", headers=bearer(ADMIN_KEY))).status_code == 200
    assert alerts.last("/v1/alerts").header("x-closeloop-actor") == "bootstrap-admin"


# --- the document and operations ------------------------------------------------------------


PUBLIC_OPERATIONS = {
    ("/v1/feedback", "post"),
    ("/v1/feedback/batch", "post"),
    ("/v1/webhooks/hotline/transcript", "post"),
    ("/v1/webhooks/app/reviews", "post"),
    ("/v1/webhooks/twilio/transcription", "post"),
    ("/v1/webhooks/mailgun", "post"),
    ("/v1/webhooks/postmark", "post"),
    ("/v1/webhooks/meta", "get"),
    ("/v1/webhooks/meta", "post"),
    ("/v1/alerts", "get"),
    ("/v1/feedback", "get"),
    ("/v1/alerts/{alert_id}", "get"),
    ("/v1/alerts/{alert_id}/acknowledge", "post"),
    ("/v1/alerts/{alert_id}/resolve", "post"),
    ("/v1/feedback/{feedback_id}", "get"),
    ("/v1/feedback/{feedback_id}/related", "get"),
    ("/v1/feedback/{feedback_id}/scores", "get"),
    ("/v1/alerts/{alert_id}/reopen", "post"),
    ("/v1/alerts/{alert_id}/assign", "post"),
    ("/v1/alerts/{alert_id}/comments", "post"),
    ("/v1/alerts/{alert_id}/escalate", "post"),
    ("/v1/alerts/{alert_id}/customer-reply", "post"),
    ("/v1/privacy/erasures", "post"),
    ("/v1/owners", "get"),
    ("/v1/owners/{owner_id}", "get"),
    ("/v1/owners/{owner_id}", "put"),
    ("/v1/owners/{owner_id}", "delete"),
    ("/v1/routing/dry-run", "post"),
    ("/v1/kpis", "get"),
    ("/v1/admin/api-keys", "post"),
    ("/v1/admin/api-keys", "get"),
    ("/v1/admin/api-keys/{key_id}", "delete"),
    ("/v1/admin/api-keys/{key_id}/rotate", "post"),
    ("/v1/audit", "get"),
}


def _refs(node: object) -> set[str]:
    if isinstance(node, dict):
        found = {node["$ref"]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            found |= _refs(value)
        return found
    if isinstance(node, list):
        return set().union(*(_refs(item) for item in node)) if node else set()
    return set()


async def test_openapi_documents_every_public_operation(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    operations = {(path, method) for path, item in document["paths"].items() for method in item}
    assert operations == PUBLIC_OPERATIONS
    operation_ids = [
        operation["operationId"]
        for item in document["paths"].values()
        for operation in item.values()
    ]
    assert len(set(operation_ids)) == len(operation_ids)
    assert "submitFeedback" in operation_ids
    assert "createApiKey" in operation_ids
    schemas = document["components"]["schemas"]
    for ref in _refs(document):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    feedback = document["paths"]["/v1/feedback"]["post"]
    assert feedback["security"] == [{"bearer": []}]
    assert feedback["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/FeedbackIn"
    }
    assert document["paths"]["/v1/webhooks/twilio/transcription"]["post"]["security"] == []
    assert "alert" in schemas["FeedbackDetail"]["properties"]
    assert (await gateway.get("/docs")).status_code == 200


async def test_metrics_count_upstream_requests_and_auth_failures(
    gateway: httpx.AsyncClient, writer_key: str
) -> None:
    await gateway.get("/v1/alerts")
    await gateway.post(
        "/v1/feedback",
        content=FEEDBACK,
        headers={**bearer(writer_key), "Content-Type": "application/json"},
    )
    exposition = (await gateway.get("/metrics")).text
    assert 'closeloop_gateway_upstream_requests_total{status="202",upstream="ingest"}' in exposition
    assert 'closeloop_gateway_auth_failures_total{reason="missing"}' in exposition
    assert 'closeloop_gateway_upstream_duration_seconds_count{upstream="ingest"}' in exposition
    assert 'route="/v1/feedback"' in exposition


async def test_readiness_checks_database_and_upstreams(gateway: httpx.AsyncClient) -> None:
    response = await gateway.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": True, "ingest": True, "alerts": True}


async def test_configured_public_url_is_what_ingest_is_told(
    migrated_database: str, ingest: FakeUpstream, alerts: FakeUpstream
) -> None:
    settings = gateway_settings(ingest.url, alerts.url, public_url="https://feedback.example.com/")
    async with running_gateway(settings, migrated_database) as gateway:
        response = await gateway.post(
            "/v1/webhooks/twilio/transcription",
            content=b"TranscriptionSid=TR2",
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Forwarded-Proto": "gopher",
            },
        )
    assert response.status_code == 202
    seen = ingest.last("/v1/webhooks/twilio/transcription")
    assert seen.header("x-forwarded-proto") == "https"
    assert seen.header("x-forwarded-host") == "feedback.example.com"
