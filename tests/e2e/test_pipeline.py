"""The whole loop on real infrastructure: four service processes, the broker, PostgreSQL.

Feedback from every channel goes in through the gateway (provider webhooks signed
as the providers sign them); every negative item must reach its owner as a
Standard Webhooks-signed delivery; support then acknowledges and resolves.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from standardwebhooks import Webhook

from closeloop_devstack import infra
from closeloop_devstack.demo import DemoRequest, DemoTarget, all_requests
from closeloop_devstack.stack import Ports, Stack, StackConfig

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

SECRETS = {
    "hotline-team": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "social-team": "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
    "cx-team": "whsec_dGVzdC1jeC10ZWFtLXNlY3JldC0xMjM0NTY3OA==",
}


def _routing_file(path: Path, owner_port: int) -> Path:
    owners = "\n".join(
        f"""  - id: {owner}
    name: {owner}
    notify:
      - type: webhook
        url: http://127.0.0.1:{owner_port}/owners/{owner}
        secret: {secret}"""
        for owner, secret in SECRETS.items()
    )
    path.write_text(
        f"""owners:
{owners}
rules:
  - id: hotline-negative
    when: {{channel: hotline, sentiment: negative}}
    owner: hotline-team
    priority: high
  - id: social-negative
    when: {{channel: social, sentiment: negative}}
    owner: social-team
    priority: high
default_owner: cx-team
"""
    )
    return path


@pytest.fixture(scope="module")
async def stack(
    postgres_server_url: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    state = tmp_path_factory.mktemp("stack")
    state.chmod(0o755)
    ports = Ports.free()
    database_url = infra.with_database(postgres_server_url, f"closeloop_e2e_{ports.gateway}")
    config = StackConfig(
        state_dir=state,
        routing_file=_routing_file(state / "routing.yaml", ports.demo_owner),
        ports=ports,
        database_url=database_url,
    )
    running = Stack(config)
    try:
        await running.start(timeout_s=120)
        yield running
    finally:
        running.stop()
        await infra.drop_database(running.database_url)


def _target(stack: Stack) -> DemoTarget:
    return DemoTarget(
        gateway_url=stack.url("gateway"),
        demo_owner_url=stack.url("demo_owner"),
        alerts_url=stack.url("alerts"),
        admin_key=stack.config.admin_key,
        secrets=stack.config.provider_secrets,
    )


async def _post(client: httpx.AsyncClient, request: DemoRequest) -> httpx.Response:
    return await client.request(
        request.method, request.path, content=request.content, headers=request.headers
    )


async def _deliveries(stack: Stack, at_least: int, timeout_s: float = 60) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout_s
    async with httpx.AsyncClient() as client:
        while True:
            received: list[dict[str, Any]] = (
                await client.get(stack.url("demo_owner") + "/received")
            ).json()
            if len(received) >= at_least or time.monotonic() > deadline:
                return received
            await asyncio.sleep(0.25)


async def test_every_negative_item_reaches_its_owner_signed(stack: Stack) -> None:
    target = _target(stack)
    requests = all_requests(target)
    auth = {"Authorization": f"Bearer {target.admin_key}"}
    async with httpx.AsyncClient(base_url=target.gateway_url, timeout=15) as client:
        for request in requests:
            response = await _post(client, request)
            # Meta expects 200 from its webhooks; every other route answers 202 Accepted.
            assert response.status_code in {200, 202}, (request.label, response.text)
        negatives = [r for r in requests if r.expect_negative]
        received = await _deliveries(stack, len(negatives))
        assert len(received) == len(negatives), [
            r["payload"]["data"]["feedback"]["channel"] for r in received
        ]

        channels = set()
        for delivery in received:
            owner = delivery["path"].rsplit("/", 1)[1]
            # Verify as an owner would: the raw body against the three headers and its secret.
            Webhook(SECRETS[owner]).verify(delivery["body"], delivery["headers"])
            payload = delivery["payload"]
            assert payload["type"] == "alert.raised"
            data = payload["data"]
            assert data["sentiment"]["label"] == "negative"
            assert data["alert"]["owner"] == owner
            assert data["alert"]["status"] == "open"
            channels.add(data["feedback"]["channel"])
            if data["feedback"]["channel"] in {"hotline", "social"}:
                assert data["alert"]["priority"] == "high"
        assert channels == {"hotline", "email", "social", "app"}

        # Support works one alert through its lifecycle via the gateway.
        listed = (await client.get("/v1/alerts", params={"status": "open"}, headers=auth)).json()
        alert_ids = {item["id"] for item in listed["items"]}
        assert len(alert_ids) >= len(negatives)
        alert_id = received[0]["payload"]["data"]["alert"]["id"]
        feedback_id = received[0]["payload"]["data"]["feedback"]["id"]
        acknowledged = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=auth)
        assert acknowledged.status_code == 200, acknowledged.text
        assert acknowledged.json()["status"] == "acknowledged"
        resolved = await client.post(
            f"/v1/alerts/{alert_id}/resolve",
            json={"note": "Called back, refunded."},
            headers=auth,
        )
        assert resolved.status_code == 200, resolved.text
        assert resolved.json()["status"] == "resolved"
        again = await client.post(f"/v1/alerts/{alert_id}/acknowledge", headers=auth)
        assert again.status_code == 409

        feedback = (await client.get(f"/v1/feedback/{feedback_id}", headers=auth)).json()
        assert feedback["id"] == feedback_id
        assert feedback["sentiment"]["label"] == "negative"
        assert feedback["alert"]["status"] == "resolved"

        # Ops can see it in the metrics.
        alerts_metrics = (await client.get(stack.url("alerts") + "/metrics")).text
        assert _metric_total(alerts_metrics, "closeloop_alerts_raised_total") >= len(negatives)
        gateway_metrics = (await client.get("/metrics")).text
        assert _metric_total(gateway_metrics, "closeloop_http_requests_total") >= len(requests)


async def test_provider_retry_of_the_same_webhook_is_one_item(stack: Stack) -> None:
    target = _target(stack)
    twilio = next(r for r in all_requests(target) if "Twilio" in r.label)
    async with httpx.AsyncClient(base_url=target.gateway_url, timeout=15) as client:
        before = len(await _deliveries(stack, 0, timeout_s=0))
        first = await _post(client, twilio)
        second = await _post(client, twilio)
        assert first.status_code == second.status_code == 202
        assert first.json()["id"] == second.json()["id"]
        await _deliveries(stack, before + 1)
        await asyncio.sleep(2)  # a second alert, if one were raised, would have arrived by now
        new = (await _deliveries(stack, before + 2, timeout_s=0))[before:]
        assert len({r["payload"]["data"]["feedback"]["id"] for r in new}) == 1
        assert len({r["webhook_id"] for r in new}) == 1


async def test_bad_signature_and_missing_key_are_refused(stack: Stack) -> None:
    target = _target(stack)
    twilio = next(r for r in all_requests(target) if "Twilio" in r.label)
    tampered = DemoRequest(
        twilio.label,
        twilio.method,
        twilio.path,
        twilio.content + b"&Extra=1",
        twilio.headers,
        True,
    )
    async with httpx.AsyncClient(base_url=target.gateway_url, timeout=15) as client:
        assert (await _post(client, tampered)).status_code == 401
        response = await client.post("/v1/feedback", json={"channel": "app"})
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"


async def test_logs_are_json_lines_without_customer_text_or_secrets(stack: Stack) -> None:
    """Runs last in this module: every service has handled every channel's feedback by now."""
    target = _target(stack)
    secrets = stack.config.provider_secrets
    forbidden = [
        target.admin_key,
        secrets.twilio_auth_token,
        secrets.mailgun_signing_key,
        secrets.postmark_password,
        secrets.meta_app_secret,
        *SECRETS.values(),
        "charged twice",  # email text
        "宽带",  # hotline transcript text
        "dana.reyes@example.com",  # customer email
        "+14155550123",  # customer phone
        "Your app crashed",  # social comment
    ]
    for service in ("gateway", "ingest", "sentiment", "alerts"):
        log = (stack.log_dir / f"{service}.log").read_text(encoding="utf-8")
        lines = [line for line in log.splitlines() if line.strip()]
        assert lines, f"{service} logged nothing"
        for line in lines:
            assert orjson.loads(line)["service"], line
        for needle in forbidden:
            assert needle not in log, f"{service} log contains {needle[:12]}..."


def _metric_total(exposition: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in exposition.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )
