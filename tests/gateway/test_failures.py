"""When things go wrong: services away or slow, the database away, a key over its rate."""

from __future__ import annotations

import asyncio

import pytest

from closeloop_devstack.infra import free_port
from tests.gateway.support import (
    ADMIN_KEY,
    FakeUpstream,
    Reply,
    bearer,
    gateway_settings,
    running_gateway,
)

pytestmark = pytest.mark.integration

JSON = {"Content-Type": "application/json"}


async def test_unreachable_upstream_is_503_with_retry_after(
    migrated_database: str, alerts: FakeUpstream
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"
    settings = gateway_settings(nowhere, alerts.url)
    async with running_gateway(settings, migrated_database) as gateway:
        response = await gateway.post(
            "/v1/feedback", content=b"{}", headers={**bearer(ADMIN_KEY), **JSON}
        )
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        assert response.json()["error"]["code"] == "unavailable"
        assert response.json()["error"]["upstream"] == "ingest"
        webhook = await gateway.post(
            "/v1/webhooks/twilio/transcription",
            content=b"a=1",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert webhook.status_code == 503
        ready = await gateway.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"database": True, "ingest": False, "alerts": True}
        exposition = (await gateway.get("/metrics")).text
        assert (
            'closeloop_gateway_upstream_requests_total{status="unavailable",upstream="ingest"}'
            in exposition
        )


async def test_slow_upstream_is_503_not_a_hang(
    migrated_database: str, ingest: FakeUpstream, alerts: FakeUpstream
) -> None:
    settings = gateway_settings(ingest.url, alerts.url, upstream_timeout_s=0.3)
    alerts.script("/v1/alerts", Reply(200, b"{}", delay_s=2.0))
    async with running_gateway(settings, migrated_database) as gateway:
        async with asyncio.timeout(1.5):
            response = await gateway.get("/v1/alerts", headers=bearer(ADMIN_KEY))
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"


async def test_database_away_is_503_for_keyed_routes_and_not_ready(
    ingest: FakeUpstream, alerts: FakeUpstream
) -> None:
    # Nothing listens there; without a bootstrap key the gateway starts anyway.
    nowhere = f"postgresql+asyncpg://postgres@127.0.0.1:{free_port()}/closeloop"
    settings = gateway_settings(ingest.url, alerts.url, bootstrap_admin_key=None)
    async with running_gateway(settings, nowhere) as gateway:
        response = await gateway.post(
            "/v1/feedback", content=b"{}", headers={**bearer(ADMIN_KEY), **JSON}
        )
        assert response.status_code == 503
        assert response.headers["retry-after"] == "7"
        listed = await gateway.get("/v1/admin/api-keys", headers=bearer(ADMIN_KEY))
        assert listed.status_code == 503
        # Webhooks need no key, so they still flow.
        webhook = await gateway.post(
            "/v1/webhooks/meta", content=b'{"object": "page", "entry": []}', headers=JSON
        )
        assert webhook.status_code == 202
        ready = await gateway.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"]["database"] is False


async def test_rate_limit_answers_429_with_ratelimit_headers(
    migrated_database: str, ingest: FakeUpstream, alerts: FakeUpstream
) -> None:
    settings = gateway_settings(ingest.url, alerts.url, rate_limit_per_s=0.5, rate_limit_burst=2)
    async with running_gateway(settings, migrated_database) as gateway:
        headers = {**bearer(ADMIN_KEY), **JSON}
        first = await gateway.post("/v1/feedback", content=b"{}", headers=headers)
        assert first.status_code == 202
        assert first.headers["ratelimit-policy"] == '"per-key";q=2;w=4'
        assert first.headers["ratelimit"] == '"per-key";r=1;t=2'
        second = await gateway.post("/v1/feedback", content=b"{}", headers=headers)
        assert second.status_code == 202
        assert second.headers["ratelimit"] == '"per-key";r=0;t=4'
        third = await gateway.post("/v1/feedback", content=b"{}", headers=headers)
        assert third.status_code == 429
        assert third.json()["error"]["code"] == "rate_limited"
        assert third.headers["retry-after"] == "2"
        assert third.headers["ratelimit-policy"] == '"per-key";q=2;w=4'
        assert third.headers["ratelimit"].startswith('"per-key";r=0;')
        exposition = (await gateway.get("/metrics")).text
        assert "\ncloseloop_gateway_rate_limited_total " in exposition
        # Webhooks have no key and no bucket.
        webhook = await gateway.post(
            "/v1/webhooks/meta", content=b'{"object": "page", "entry": []}', headers=JSON
        )
        assert webhook.status_code == 202


async def test_revocation_reaches_other_replicas_within_the_cache_ttl(
    migrated_database: str, ingest: FakeUpstream, alerts: FakeUpstream
) -> None:
    caching = gateway_settings(ingest.url, alerts.url, key_cache_ttl_s=0.5)
    admin = gateway_settings(ingest.url, alerts.url)
    async with (
        running_gateway(caching, migrated_database) as replica,
        running_gateway(admin, migrated_database) as other,
    ):
        created = await other.post(
            "/v1/admin/api-keys",
            json={"name": "short-lived", "scopes": ["feedback:write"]},
            headers=bearer(ADMIN_KEY),
        )
        key, key_id = created.json()["key"], created.json()["id"]
        headers = {**bearer(key), **JSON}
        assert (
            await replica.post("/v1/feedback", content=b"{}", headers=headers)
        ).status_code == 202
        assert (
            await other.delete(f"/v1/admin/api-keys/{key_id}", headers=bearer(ADMIN_KEY))
        ).status_code == 204
        # The replica still has the key cached: accepted until the entry expires.
        assert (
            await replica.post("/v1/feedback", content=b"{}", headers=headers)
        ).status_code == 202
        await asyncio.sleep(0.6)
        assert (
            await replica.post("/v1/feedback", content=b"{}", headers=headers)
        ).status_code == 401
        assert (await other.post("/v1/feedback", content=b"{}", headers=headers)).status_code == 401
