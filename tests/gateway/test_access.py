"""Roles and teams on API keys, rotation, and the access audit, on a real database."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from asgi_lifespan import LifespanManager
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import create_async_engine

from closeloop_devstack.infra import free_port
from closeloop_gateway.app import create_app
from closeloop_gateway.audit import AUDIT_WRITE_FAILURES, AuditLog
from tests.gateway.support import (
    ADMIN_KEY,
    FakeUpstream,
    Reply,
    bearer,
    database_settings,
    gateway_settings,
)

pytestmark = pytest.mark.integration

KEYS = "/v1/admin/api-keys"


async def create(gateway: httpx.AsyncClient, **body: Any) -> dict[str, Any]:
    response = await gateway.post(KEYS, json=body, headers=bearer(ADMIN_KEY))
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


async def audit(gateway: httpx.AsyncClient, **filters: Any) -> list[dict[str, Any]]:
    response = await gateway.get("/v1/audit", params=filters, headers=bearer(ADMIN_KEY))
    assert response.status_code == 200, response.text
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_roles_set_default_scopes_and_scopes_only_narrow(
    gateway: httpx.AsyncClient,
) -> None:
    agent = await create(gateway, name="ann", role="agent", team="hotline-team")
    assert (agent["role"], agent["team"]) == ("agent", "hotline-team")
    assert agent["scopes"] == ["alerts:read", "alerts:write"]
    reader = await create(
        gateway, name="viewer", role="lead", team="email-team", scopes=["alerts:read"]
    )
    assert (reader["role"], reader["scopes"]) == ("lead", ["alerts:read"])
    channel = await create(gateway, name="app-backend", role="channel")
    assert (channel["role"], channel["team"], channel["scopes"]) == (
        "channel",
        None,
        ["feedback:write", "replies:write"],
    )
    # Clients from before roles: the role follows the scopes.
    legacy = await create(gateway, name="old-crm", scopes=["feedback:write"])
    assert legacy["role"] == "channel"
    legacy_support = await create(gateway, name="old-desk", scopes=["alerts:read"])
    assert (legacy_support["role"], legacy_support["scopes"]) == ("admin", ["alerts:read"])
    admin = await create(gateway, name="ops", role="admin")
    assert admin["scopes"] == [
        "admin",
        "alerts:read",
        "alerts:write",
        "feedback:write",
        "replies:write",
    ]

    listed = (await gateway.get(KEYS, headers=bearer(ADMIN_KEY))).json()["items"]
    by_id = {item["id"]: item for item in listed}
    assert by_id[agent["id"]]["role"] == "agent"
    assert by_id[agent["id"]]["team"] == "hotline-team"
    bootstrap = next(item for item in listed if item["name"] == "bootstrap-admin")
    assert bootstrap["role"] == "admin"

    for body in (
        {"name": "x", "role": "agent"},  # no team
        {"name": "x", "role": "admin", "team": "hotline-team"},  # a team without a team role
        {"name": "x", "role": "channel", "scopes": ["alerts:read"]},  # beyond the role
        {"name": "x", "role": "agent", "team": "t", "scopes": ["replies:write"]},
        {"name": "x", "role": "agent", "team": "t", "scopes": ["admin"]},
        {"name": "x", "role": "root"},
        {"name": "x", "role": "agent", "team": "bad\nteam"},
        {"name": "x"},
    ):
        response = await gateway.post(KEYS, json=body, headers=bearer(ADMIN_KEY))
        assert response.status_code == 422, body
        assert response.json()["error"]["code"] == "invalid_request"


async def test_an_agent_key_cannot_manage_keys_or_post_feedback(
    gateway: httpx.AsyncClient,
) -> None:
    agent = await create(gateway, name="bob", role="agent", team="hotline-team")
    key = bearer(agent["key"])
    assert (await gateway.get(KEYS, headers=key)).status_code == 403
    refused = await gateway.post(
        "/v1/feedback", content=b"{}", headers={**key, "Content-Type": "application/json"}
    )
    assert refused.status_code == 403
    assert (await gateway.get("/v1/audit", headers=key)).status_code == 403


async def test_role_and_team_travel_upstream_and_forged_ones_never_do(
    gateway: httpx.AsyncClient, alerts: FakeUpstream, ingest: FakeUpstream
) -> None:
    agent = await create(gateway, name="cat", role="agent", team="hotline-team")
    alerts.script("/v1/alerts", Reply(200, b'{"items": [], "next_cursor": null}'))
    forged = {
        "X-Closeloop-Role": "admin",
        "X-Closeloop-Team": "email-team",
        "X-Closeloop-Denied": "none",
    }
    response = await gateway.get("/v1/alerts", headers={**bearer(agent["key"]), **forged})
    assert response.status_code == 200
    seen = alerts.last("/v1/alerts")
    assert seen.header("x-closeloop-role") == "agent"
    assert seen.header("x-closeloop-team") == "hotline-team"
    assert seen.header("x-closeloop-denied") is None

    # The admin's own requests carry the admin role and no team, whatever the client says.
    await gateway.get("/v1/alerts", headers={**bearer(ADMIN_KEY), **forged})
    seen = alerts.last("/v1/alerts")
    assert seen.header("x-closeloop-role") == "admin"
    assert seen.header("x-closeloop-team") is None

    # Unkeyed webhook routes never carry an identity at all.
    await gateway.post(
        "/v1/webhooks/mailgun",
        content=b"a=1",
        headers={"Content-Type": "application/x-www-form-urlencoded", **forged},
    )
    webhook = ingest.last("/v1/webhooks/mailgun")
    assert webhook.header("x-closeloop-role") is None
    assert webhook.header("x-closeloop-team") is None


async def test_rotation_keeps_role_team_and_scopes_and_revokes_the_old_key(
    gateway: httpx.AsyncClient,
) -> None:
    old = await create(
        gateway, name="dan", role="lead", team="hotline-team", scopes=["alerts:read"]
    )
    response = await gateway.post(f"{KEYS}/{old['id']}/rotate", headers=bearer(ADMIN_KEY))
    assert response.status_code == 201
    assert response.headers["cache-control"] == "no-store"
    new = response.json()
    assert new["key"] != old["key"]
    assert (new["name"], new["role"], new["team"], new["scopes"]) == (
        "dan",
        "lead",
        "hotline-team",
        ["alerts:read"],
    )
    assert (new["replaces"], new["replaced_revoked"]) == (old["id"], True)
    assert (await gateway.get("/v1/alerts", headers=bearer(old["key"]))).status_code == 401
    # The fake alerts service answers 202 to anything that reaches it.
    assert (await gateway.get("/v1/alerts", headers=bearer(new["key"]))).status_code == 202

    kept = await gateway.post(
        f"{KEYS}/{new['id']}/rotate", params={"keep_old": "true"}, headers=bearer(ADMIN_KEY)
    )
    assert kept.status_code == 201
    assert kept.json()["replaced_revoked"] is False
    assert (await gateway.get("/v1/alerts", headers=bearer(new["key"]))).status_code == 202

    # A revoked or unknown key cannot be rotated; neither can the operator's bootstrap key.
    revoked = await gateway.post(f"{KEYS}/{old['id']}/rotate", headers=bearer(ADMIN_KEY))
    assert revoked.status_code == 404
    unknown = await gateway.post(f"{KEYS}/{uuid.uuid4()}/rotate", headers=bearer(ADMIN_KEY))
    assert unknown.status_code == 404
    listed = (await gateway.get(KEYS, headers=bearer(ADMIN_KEY))).json()["items"]
    bootstrap = next(item for item in listed if item["name"] == "bootstrap-admin")
    refused = await gateway.post(f"{KEYS}/{bootstrap['id']}/rotate", headers=bearer(ADMIN_KEY))
    assert refused.status_code == 409


async def test_denials_and_privileged_actions_are_audited_without_secrets(
    gateway: httpx.AsyncClient, alerts: FakeUpstream
) -> None:
    agent = await create(gateway, name="eve", role="agent", team="hotline-team")
    alert_id = uuid.uuid4()
    # The alerts service refuses an alert of another team with a plain 404 and says why
    # in a header only the gateway reads.
    alerts.script(
        f"/v1/alerts/{alert_id}",
        Reply(
            404,
            b'{"error": {"code": "alert_not_found", "detail": "No alert."}}',
            headers=(("content-type", "application/json"), ("x-closeloop-denied", "team_scope")),
        ),
    )
    hidden = await gateway.get(f"/v1/alerts/{alert_id}", headers=bearer(agent["key"]))
    assert hidden.status_code == 404
    assert "x-closeloop-denied" not in hidden.headers
    # An ordinary 404 (no such alert) is not a denial.
    missing_id = uuid.uuid4()
    alerts.script(f"/v1/alerts/{missing_id}", Reply(404, b"{}"))
    missing = await gateway.get(f"/v1/alerts/{missing_id}", headers=bearer(agent["key"]))
    assert missing.status_code == 404
    wrong = await gateway.get("/v1/alerts", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert (await gateway.get("/v1/alerts")).status_code == 401
    assert (await gateway.get(KEYS, headers=bearer(agent["key"]))).status_code == 403
    revoked = await gateway.delete(f"{KEYS}/{agent['id']}", headers=bearer(ADMIN_KEY))
    assert revoked.status_code == 204

    entries = await audit(gateway)
    by_route = [(e["kind"], e["method"], e["route"], e["status"], e["reason"]) for e in entries]
    assert ("denied", "GET", "/v1/alerts/{alert_id}", 404, "team_scope") in by_route
    assert ("denied", "GET", "/v1/alerts", 401, "missing") in by_route
    assert ("denied", "GET", "/v1/alerts", 401, "invalid") in by_route
    assert ("denied", "GET", KEYS, 403, "insufficient_scope") in by_route
    assert ("privileged", "DELETE", KEYS + "/{key_id}", 204, None) in by_route
    assert ("privileged", "POST", KEYS, 201, None) in by_route

    scoped = next(e for e in entries if e["reason"] == "team_scope")
    assert (scoped["key_id"], scoped["key_name"], scoped["role"], scoped["team"]) == (
        agent["id"],
        "eve",
        "agent",
        "hotline-team",
    )
    assert scoped["target"] == f"alert_id={alert_id}"
    assert scoped["client_ip"] == "127.0.0.1"
    created = next(
        e
        for e in entries
        if e["kind"] == "privileged"
        and e["target"].startswith(f"key_id={agent['id']}")
        and e["method"] == "POST"
    )
    assert created["target"] == f"key_id={agent['id']} role=agent team=hotline-team"
    assert created["key_name"] == "bootstrap-admin"
    # Never a secret: neither the agent's key nor the admin's is anywhere in the audit.
    everything = (await gateway.get("/v1/audit?limit=500", headers=bearer(ADMIN_KEY))).text
    assert agent["key"] not in everything
    assert ADMIN_KEY not in everything
    # Ordinary successful reads and ordinary 404s are not audited.
    assert not [e for e in entries if e["status"] == 200]
    assert not [e for e in entries if e["target"] == f"alert_id={missing_id}"]


async def test_audit_filters_and_pages(gateway: httpx.AsyncClient) -> None:
    for _ in range(5):
        await gateway.get("/v1/kpis", headers={"Authorization": "Bearer clk_wrong"})
    denied = await audit(gateway, kind="denied", route="/v1/kpis", reason="invalid")
    assert len(denied) >= 5
    assert {e["route"] for e in denied} == {"/v1/kpis"}
    first = await gateway.get(
        "/v1/audit", params={"route": "/v1/kpis", "limit": 2}, headers=bearer(ADMIN_KEY)
    )
    page = first.json()
    assert len(page["items"]) == 2
    second = await gateway.get(
        "/v1/audit",
        params={"route": "/v1/kpis", "limit": 2, "cursor": page["next_cursor"]},
        headers=bearer(ADMIN_KEY),
    )
    later_ids = [e["id"] for e in second.json()["items"]]
    assert later_ids
    assert max(later_ids) < min(e["id"] for e in page["items"])
    assert await audit(gateway, status=401, route="/v1/kpis", kind="privileged") == []
    for bad in ({"cursor": "!!"}, {"status": "99"}, {"kind": "other"}, {"from": "yesterday"}):
        response = await gateway.get("/v1/audit", params=bad, headers=bearer(ADMIN_KEY))
        assert response.status_code == 422, bad


async def test_the_audit_table_is_append_only(migrated_database: str) -> None:
    engine = create_async_engine(migrated_database)
    try:
        async with engine.begin() as connection:
            await connection.execute(
                text(
                    "INSERT INTO gateway.access_audit (at, kind, method, route, status) "
                    "VALUES (now(), 'denied', 'GET', '/x', 401)"
                )
            )
        for statement in (
            "UPDATE gateway.access_audit SET status = 200",
            "DELETE FROM gateway.access_audit",
            "TRUNCATE gateway.access_audit",
        ):
            with pytest.raises(DBAPIError, match="append-only"):
                async with engine.begin() as connection:
                    await connection.execute(text(statement))
    finally:
        await engine.dispose()


async def test_a_database_outage_never_turns_a_denial_into_a_500(
    ingest: FakeUpstream, alerts: FakeUpstream
) -> None:
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/closeloop"
    settings = gateway_settings(ingest.url, alerts.url, bootstrap_admin_key=None)
    failures_before = AUDIT_WRITE_FAILURES._value.get()
    app = create_app(settings, database_settings(nowhere))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as gateway,
    ):
        for _ in range(3):
            response = await gateway.get("/v1/alerts")
            assert response.status_code == 401
        access_audit: AuditLog = app.state.audit
        # Kept for when the database is back, while the writer fails and counts it.
        assert len(access_audit) == 3
        async with asyncio.timeout(30):
            while AUDIT_WRITE_FAILURES._value.get() == failures_before:  # noqa: ASYNC110
                await asyncio.sleep(0.05)
        assert len(access_audit) == 3
        exposition = (await gateway.get("/metrics")).text
        assert "closeloop_gateway_access_audit_write_failures_total" in exposition


JSON = {"Content-Type": "application/json"}
ERASURES = "/v1/privacy/erasures"


async def test_erasure_is_admin_only_and_every_one_is_audited(
    gateway: httpx.AsyncClient, alerts: FakeUpstream
) -> None:
    erased = (
        b'{"id": "5b0c2f4e-3d7a-4f0e-9f1a-2b3c4d5e6f70", "requested_at": "2026-11-22T18:00:00Z",'
        b' "counts": {"feedback": 2, "alerts": 1, "customer_identities": 2,'
        b' "alert_identities": 1, "audit_entries_masked": 3, "outbox_events": 0}}'
    )
    alerts.script(ERASURES, Reply(201, erased), Reply(201, erased))
    body = b'{"email": "ann@example.com", "reference": "DSR-7"}'
    forwarded_before = len(alerts.at(ERASURES))

    # Agents, leads and channel systems never get the request through, whatever they send.
    refused_keys = [
        await create(gateway, name="erase-agent", role="agent", team="hotline-team"),
        await create(gateway, name="erase-lead", role="lead", team="hotline-team"),
        await create(gateway, name="erase-channel", role="channel"),
        await create(gateway, name="erase-all-scopes", scopes=["alerts:read", "alerts:write"]),
    ]
    for key in refused_keys:
        refused = await gateway.post(ERASURES, content=body, headers={**bearer(key["key"]), **JSON})
        assert refused.status_code == 403, key["name"]
        assert refused.json()["error"]["required_scope"] == "admin"
    assert len(alerts.at(ERASURES)) == forwarded_before

    done = await gateway.post(ERASURES, content=body, headers={**bearer(ADMIN_KEY), **JSON})
    assert done.status_code == 201
    assert done.json()["counts"]["feedback"] == 2
    seen = alerts.last(ERASURES)
    assert (seen.method, seen.body) == ("POST", body)
    assert seen.header("x-closeloop-role") == "admin"
    assert seen.header("x-closeloop-actor") == "bootstrap-admin"
    # A repeat is an erasure request like any other: audited again.
    again = await gateway.post(ERASURES, content=body, headers={**bearer(ADMIN_KEY), **JSON})
    assert again.status_code == 201

    entries = await audit(gateway, route=ERASURES)
    privileged = [e for e in entries if e["kind"] == "privileged"]
    assert [(e["method"], e["status"], e["key_name"], e["role"]) for e in privileged] == [
        ("POST", 201, "bootstrap-admin", "admin"),
        ("POST", 201, "bootstrap-admin", "admin"),
    ]
    denied = {(e["key_name"], e["status"], e["reason"]) for e in entries if e["kind"] == "denied"}
    assert denied == {(key["name"], 403, "insufficient_scope") for key in refused_keys}
    # Never the identifiers themselves.
    everything = (await gateway.get("/v1/audit?limit=500", headers=bearer(ADMIN_KEY))).text
    assert "ann@example.com" not in everything
    assert "DSR-7" not in everything


async def test_a_refused_erasure_upstream_is_audited_with_its_status(
    gateway: httpx.AsyncClient, alerts: FakeUpstream
) -> None:
    alerts.script(
        ERASURES,
        Reply(
            422,
            b'{"error": {"code": "invalid_identifier", "detail": "None can identify anyone."}}',
        ),
    )
    response = await gateway.post(
        ERASURES, content=b'{"phone": "12"}', headers={**bearer(ADMIN_KEY), **JSON}
    )
    assert response.status_code == 422
    entries = await audit(gateway, route=ERASURES, status=422)
    assert [(e["kind"], e["key_name"]) for e in entries] == [("privileged", "bootstrap-admin")]


async def test_a_channel_key_reports_reply_delivery_and_nothing_else(
    gateway: httpx.AsyncClient, alerts: FakeUpstream
) -> None:
    channel = await create(gateway, name="mail-gateway", role="channel")
    feedback_only = await create(
        gateway, name="crm-sync", role="channel", scopes=["feedback:write"]
    )
    agent = await create(gateway, name="fay", role="agent", team="hotline-team")
    reader = await create(
        gateway, name="gus", role="lead", team="hotline-team", scopes=["alerts:read"]
    )
    alert_id = uuid.uuid4()
    path = f"/v1/alerts/{alert_id}/customer-reply"
    receipt = (
        b'{"alert_id": "'
        + str(alert_id).encode()
        + b'", "feedback_id": "'
        + str(uuid.uuid4()).encode()
        + b'", "customer_reply": {"text": "Sorry", "status": '
        b'"sent", "requested_at": "2026-11-22T18:00:00Z", "detail": null}}'
    )
    alerts.script(path, Reply(200, receipt), Reply(200, b"{}"))
    body = b'{"status": "sent"}'

    reported = await gateway.post(path, content=body, headers={**bearer(channel["key"]), **JSON})
    assert reported.status_code == 200
    assert reported.json()["customer_reply"]["status"] == "sent"
    seen = alerts.last(path)
    assert (seen.header("x-closeloop-role"), seen.header("x-closeloop-actor")) == (
        "channel",
        "mail-gateway",
    )
    # alerts:write implies replies:write: agents report as they always could.
    by_agent = await gateway.post(path, content=body, headers={**bearer(agent["key"]), **JSON})
    assert by_agent.status_code == 200
    assert alerts.last(path).header("x-closeloop-role") == "agent"

    forwarded = len(alerts.at(path))
    for key in (feedback_only, reader):
        refused = await gateway.post(path, content=body, headers={**bearer(key["key"]), **JSON})
        assert refused.status_code == 403, key["name"]
        assert refused.json()["error"]["required_scope"] == "replies:write"
    assert len(alerts.at(path)) == forwarded

    # The scope opens this one route: every other alerts route stays closed to a channel.
    key = bearer(channel["key"])
    alerts_before = len(alerts.received)
    for method, url, content in (
        ("GET", "/v1/alerts", None),
        ("GET", f"/v1/alerts/{alert_id}", None),
        ("POST", f"/v1/alerts/{alert_id}/acknowledge", None),
        ("POST", f"/v1/alerts/{alert_id}/resolve", b'{"note": "x"}'),
        ("POST", f"/v1/alerts/{alert_id}/comments", b'{"text": "x"}'),
        ("GET", "/v1/owners", None),
        ("GET", "/v1/kpis", None),
        ("POST", ERASURES, b'{"email": "a@example.com"}'),
    ):
        refused = await gateway.request(method, url, content=content, headers={**key, **JSON})
        assert refused.status_code == 403, (method, url)
    assert len(alerts.received) == alerts_before
