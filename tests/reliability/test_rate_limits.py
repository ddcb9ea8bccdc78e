"""Rate limiting at the public edge, over HTTP: per API key, and per source for webhooks.

The real gateway app (real database for its keys) in front of a fake ingest.
A 429 must carry ``Retry-After`` and the IETF ``RateLimit-Policy``/``RateLimit``
fields (draft-ietf-httpapi-ratelimit-headers), and the bucket must be per key.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from closeloop_gateway.migrate import upgrade_async
from tests.gateway.support import (
    ADMIN_KEY,
    FakeUpstream,
    bearer,
    fake_upstream,
    gateway_settings,
    running_gateway,
)

pytestmark = [pytest.mark.integration]

BURST = 5
# RateLimit-Policy: "per-key";q=5;w=50   RateLimit: "per-key";r=0;t=10  (structured fields)
POLICY = re.compile(r'^"[^"]+";q=\d+;w=\d+$')
REMAINING = re.compile(r'^"[^"]+";r=\d+;t=\d+$')
FEEDBACK = (
    b'{"channel": "app", "external_id": "x", "text": "t", "occurred_at": "2026-01-01T00:00:00Z"}'
)


@pytest.fixture(scope="module")
async def upstream() -> AsyncIterator[FakeUpstream]:
    async with fake_upstream("ingest") as ingest:
        yield ingest


@pytest.fixture(scope="module")
async def gateway(database_url: str, upstream: FakeUpstream) -> AsyncIterator[httpx.AsyncClient]:
    await upgrade_async(database_url)
    settings = gateway_settings(
        upstream.url, upstream.url, rate_limit_per_s=0.1, rate_limit_burst=BURST
    )
    async with running_gateway(settings, database_url) as client:
        yield client


async def _new_key(gateway: httpx.AsyncClient, name: str) -> str:
    response = await gateway.post(
        "/v1/admin/api-keys",
        json={"name": name, "scopes": ["feedback:write"]},
        headers=bearer(ADMIN_KEY),
    )
    assert response.status_code == 201, response.text
    key: str = response.json()["key"]
    return key


async def test_a_key_over_its_burst_gets_429_with_retry_after_and_ietf_fields(
    gateway: httpx.AsyncClient,
) -> None:
    key, other = await _new_key(gateway, "burst-a"), await _new_key(gateway, "burst-b")
    headers = {**bearer(key), "Content-Type": "application/json"}
    statuses = []
    for _ in range(BURST + 3):
        response = await gateway.post("/v1/feedback", content=FEEDBACK, headers=headers)
        statuses.append(response.status_code)
        assert POLICY.match(response.headers["RateLimit-Policy"]), response.headers
        assert REMAINING.match(response.headers["RateLimit"]), response.headers
    assert statuses[:BURST] == [202] * BURST
    assert statuses[BURST:] == [429] * 3
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["error"]["code"] == "rate_limited"
    # Another key has its own bucket.
    fresh = await gateway.post(
        "/v1/feedback",
        content=FEEDBACK,
        headers={**bearer(other), "Content-Type": "application/json"},
    )
    assert fresh.status_code == 202


async def test_one_source_flooding_a_webhook_route_gets_429(gateway: httpx.AsyncClient) -> None:
    statuses = set()
    for _ in range(300):
        response = await gateway.post(
            "/v1/webhooks/meta",
            content=b"{}",
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=00"},
        )
        statuses.add(response.status_code)
        if response.status_code == 429:
            break
    assert 429 in statuses
    assert response.headers.get("Retry-After")
    assert POLICY.match(response.headers.get("RateLimit-Policy", ""))
