"""Every service log of a full run, scanned for personal data and secrets.

The stack takes every channel's webhooks plus canonical items whose customer fields and
text carry e-mails, phone numbers (Chinese mobiles, +86 and international forms), a card
number and a Chinese ID number; alerts are raised, delivered and one customer is erased.
Then no service log may contain any of those values, nor any secret the stack was given
(API key, provider secrets, webhook secrets, the PII keys).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator

import httpx
import pytest

from closeloop_devstack import infra
from closeloop_devstack.demo import all_requests
from closeloop_devstack.stack import SERVICES, Ports, Stack, StackConfig, pii_keys
from tests.e2e.test_pipeline import SECRETS, _post, _routing_file, _target

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

EMAIL = "mei.chen.logscan@example.com"
MOBILE = "13912345678"
PHONE_86 = "+86 139 1234 5678"
US_PHONE = "+1 415-555-0199"
CARD = "4111 1111 1111 1111"
CN_ID = "11010519491231002X"
NAME = "Chen Meilogscan"


@pytest.fixture(scope="module")
async def stack(
    postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    state = tmp_path_factory.mktemp("logscan")
    state.chmod(0o755)
    ports = Ports.free()
    database_url = infra.with_database(postgres_server_url, f"closeloop_logscan_{ports.gateway}")
    running = Stack(
        StackConfig(
            state_dir=state,
            routing_file=_routing_file(state / "routing.yaml", ports.demo_owner),
            ports=ports,
            database_url=database_url,
        )
    )
    try:
        await running.start(timeout_s=120)
        yield running
    finally:
        running.stop()
        await infra.drop_database(running.database_url)


def _items() -> list[dict[str, object]]:
    text = (
        f"I am {NAME}. Charged twice on card {CARD}! Call {PHONE_86} or {US_PHONE}, "
        f"mail {EMAIL}. 身份证 {CN_ID}, 手机{MOBILE}"
    )
    return [
        {
            "channel": channel,
            "external_id": f"logscan-{channel}",
            "text": text,
            "occurred_at": "2026-11-22T10:00:00Z",
            "customer": {"name": NAME, "email": EMAIL, "phone": PHONE_86, "handle": "meichen"},
            "rating": {"type": "nps", "value": 0},
        }
        for channel in ("app", "email", "hotline")
    ]


async def _alerts_for(client: httpx.AsyncClient, count: int) -> None:
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        page = (await client.get("/v1/alerts", params={"limit": 200})).json()
        if len(page["items"]) >= count:
            return
        await asyncio.sleep(0.5)
    raise AssertionError("the alerts never appeared")


async def test_no_service_log_holds_personal_data_or_secrets(stack: Stack) -> None:
    target = _target(stack)
    auth = {"Authorization": f"Bearer {target.admin_key}"}
    async with httpx.AsyncClient(base_url=target.gateway_url, timeout=15) as client:
        for request in all_requests(target):
            assert (await _post(client, request)).status_code < 300
        for item in _items():
            answer = await client.post("/v1/feedback", json=item, headers=auth)
            assert answer.status_code == 202, answer.text
        # Bad input that quotes personal data must not be logged either.
        bad = await client.post(
            "/v1/feedback", json={"channel": "app", "text": EMAIL}, headers=auth
        )
        assert bad.status_code == 422
        client.headers.update(auth)
        await _alerts_for(client, 3)
        page = (await client.get("/v1/alerts", params={"limit": 200})).json()
        for alert in page["items"][:3]:
            await client.get(f"/v1/alerts/{alert['id']}")
    async with httpx.AsyncClient(base_url=stack.url("alerts"), timeout=15) as alerts:
        erased = await alerts.post("/v1/privacy/erasures", json={"email": EMAIL})
        assert erased.status_code == 201, erased.text
        assert erased.json()["counts"]["feedback"] >= 3

    keys = pii_keys(stack.config.state_dir)
    provider = stack.config.provider_secrets
    forbidden = {
        "email": EMAIL,
        "mobile": MOBILE,
        "+86 phone": "139 1234 5678",
        "us phone": "415-555-0199",
        "card": CARD,
        "card digits": CARD.replace(" ", ""),
        "cn id": CN_ID,
        "name": NAME,
        "admin key": target.admin_key,
        "twilio token": provider.twilio_auth_token,
        "mailgun key": provider.mailgun_signing_key,
        "postmark password": provider.postmark_password,
        "meta secret": provider.meta_app_secret,
        "pii key": keys["CLOSELOOP_ALERTS_PII_KEYS"].partition(":")[2],
        "pii index key": keys["CLOSELOOP_ALERTS_PII_INDEX_KEY"],
        **{f"webhook secret {owner}": secret for owner, secret in SECRETS.items()},
    }
    scanned = 0
    for service in SERVICES:
        log = (stack.log_dir / f"{service}.log").read_text(encoding="utf-8")
        assert log.strip(), f"{service} logged nothing"
        scanned += len(log)
        hits = [name for name, value in forbidden.items() if value and value in log]
        assert hits == [], f"{service} log contains: {hits}"
    assert scanned > 0
