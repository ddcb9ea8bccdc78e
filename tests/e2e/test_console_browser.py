"""The support console in Debian's Chromium against the whole running stack.

Real processes, broker and PostgreSQL (``closeloop_devstack.stack``); a real browser
(Playwright driving ``/usr/bin/chromium``, headless). A support lead signs in, watches a
new alert arrive in the inbox after negative feedback is posted, acknowledges it with the
keyboard, resolves it with a reply to the customer, and sees the dashboard change.
Screenshots of the inbox, the alert and the dashboard (desktop, and a phone in Chinese)
are saved under ``test-artifacts/console/``.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from playwright.async_api import Browser, Page, async_playwright, expect

from closeloop_devstack import infra
from closeloop_devstack.stack import Ports, Stack, StackConfig

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "console"
# The browser waits this long for something the pipeline does (score, route, store).
PIPELINE_WAIT_MS = 60_000
COMPLAINT = (
    "The app crashed at checkout twice and I was charged for both orders. Unacceptable. "
    "I will cancel my subscription if this happens again."
)
DANA = {"id": "c-42", "name": "Dana Reyes", "email": "dana@example.com"}
# Feedback already in when the lead signs in: two complaints (one Chinese) and praise.
EARLIER = [
    {
        "channel": "hotline",
        "external_id": "console-e2e-hotline",
        "text": "宽带又断了，已经三天了，打了五次电话都没人解决，太失望了。",
        "language": "zh",
        "customer": {"id": "c-7", "name": "王芳", "phone": "+8613800138000"},
        "touchpoint": "broadband",
        "journey_stage": "support",
    },
    {
        "channel": "email",
        "external_id": "console-e2e-email",
        "subject": "Refund still missing",
        "text": "I returned the order three weeks ago and the refund has still not arrived. Terrible service.",
        "customer": {"id": "c-9", "name": "Sam Lee", "email": "sam@example.com"},
        "rating": {"type": "csat", "value": 1},
        "touchpoint": "returns",
        "journey_stage": "support",
    },
    {
        # The app complainant's earlier praise by e-mail: no alert, but on her alert's page.
        "channel": "email",
        "external_id": "console-e2e-dana-thanks",
        "subject": "Thank you",
        "text": "Thanks for the quick delivery last month, I love the new app.",
        "customer": DANA,
        "touchpoint": "delivery",
        "journey_stage": "usage",
    },
    {
        "channel": "social",
        "external_id": "console-e2e-social",
        "text": "Great support today, the agent fixed my account in minutes. Thank you!",
        "customer": {"handle": "@happy_user"},
        "touchpoint": "account",
        "journey_stage": "usage",
    },
]


def _routing_file(path: Path, owner_port: int) -> Path:
    path.write_text(
        f"""owners:
  - id: cx-team
    name: Customer experience
    notify:
      - type: webhook
        url: http://127.0.0.1:{owner_port}/owners/cx-team
        secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  - id: hotline-team
    name: Hotline
rules:
  - id: app-negative
    when: {{channel: app, sentiment: negative}}
    owner: cx-team
    priority: high
default_owner: cx-team
sla:
  high: {{acknowledge: 30m, resolve: 4h}}
root_causes: [app-defect, billing-error]
"""
    )
    return path


@pytest.fixture(scope="module")
async def stack(
    postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    state = tmp_path_factory.mktemp("console-stack")
    state.chmod(0o755)
    ports = Ports.free()
    config = StackConfig(
        state_dir=state,
        routing_file=_routing_file(state / "routing.yaml", ports.demo_owner),
        ports=ports,
        database_url=infra.with_database(postgres_server_url, f"closeloop_console_{ports.gateway}"),
        # The inbox asks for new alerts every second in this test (5 s by default).
        extra_env={"CLOSELOOP_CONSOLE_POLL_INTERVAL_S": "1"},
    )
    running = Stack(config)
    try:
        await running.start(timeout_s=120)
        yield running
    finally:
        running.stop()
        await infra.drop_database(running.database_url)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    assert os.access(CHROMIUM, os.X_OK), (
        "Debian's chromium is missing: make system-tools installs it"
    )
    async with async_playwright() as playwright:
        # --no-sandbox: CI and this machine run the tests as root, where Chromium's
        # sandbox refuses to start.
        launched = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        try:
            yield launched
        finally:
            await launched.close()


async def _shoot(page: Page, name: str, *, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=full_page)


async def _sign_in(page: Page, gateway: str, key: str, name: str) -> None:
    await page.goto(gateway + "/console")
    await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    await page.get_by_label("API key").fill(key)
    await page.get_by_label("Your name").fill(name)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Inbox", exact=True)).to_be_visible()
    await expect(page.get_by_test_id("who")).to_have_text(name)


async def _audited_team_refusal(
    gateway: str, auth: dict[str, str], key_id: str
) -> tuple[str, str] | None:
    """The route and key name of the key's team-scope refusal in the access audit, once the
    audit's buffer (written about every second) has it; None if it never comes."""
    query = {"kind": "denied", "reason": "team_scope", "key_id": key_id}
    async with httpx.AsyncClient(base_url=gateway, timeout=15) as client:
        for _ in range(100):
            page = await client.get("/v1/audit", headers=auth, params=query)
            assert page.status_code == 200, page.text
            if page.json()["items"]:
                entry = page.json()["items"][0]
                return entry["route"], entry["key_name"]
            await asyncio.sleep(0.2)
    return None


async def _dashboard_figure(page: Page, gateway: str, test_id: str) -> str:
    await page.goto(gateway + "/console/dashboard")
    return (await page.get_by_test_id(test_id).inner_text()).strip()


async def test_sign_in_see_an_alert_arrive_act_on_it_and_see_the_dashboard_change(
    stack: Stack, browser: Browser
) -> None:
    gateway = stack.url("gateway")
    key = stack.config.admin_key
    shutil.rmtree(ARTIFACTS, ignore_errors=True)
    context = await browser.new_context(
        viewport={"width": 1280, "height": 860}, locale="en-US", color_scheme="light"
    )
    page = await context.new_page()
    occurred = datetime.now(UTC).isoformat()
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=gateway, timeout=15) as client:
        for item in EARLIER:
            accepted = await client.post(
                "/v1/feedback", headers=auth, json={**item, "occurred_at": occurred}
            )
            assert accepted.status_code == 202, accepted.text
        await _sign_in(page, gateway, key, "Alice")
        rows = page.locator("#alerts tbody tr[data-alert-id]")
        await expect(rows).to_have_count(2, timeout=PIPELINE_WAIT_MS)

        assert await _dashboard_figure(page, gateway, "alerts-raised") == "2"
        assert await _dashboard_figure(page, gateway, "mttr") == "—"

        # With the inbox open, new negative feedback arrives through the public API.
        await page.goto(gateway + "/console/inbox")
        await expect(rows).to_have_count(2)
        accepted = await client.post(
            "/v1/feedback",
            headers=auth,
            json={
                "channel": "app",
                "external_id": "console-e2e-app",
                "text": COMPLAINT,
                "occurred_at": occurred,
                "customer": DANA,
                "rating": {"type": "nps", "value": 1},
                "touchpoint": "checkout",
                "journey_stage": "purchase",
            },
        )
        assert accepted.status_code == 202, accepted.text

    # It appears without a reload (the page polls), on top, marked as new and announced.
    await expect(rows).to_have_count(3, timeout=PIPELINE_WAIT_MS)
    await expect(rows.first).to_have_class(re.compile(r"\bfresh\b"))
    await expect(rows.first).to_contain_text("App")
    await expect(page.locator("#live-status")).to_contain_text("1 new alerts")
    await expect(rows.first.locator(".sla")).to_contain_text("Ack in")
    await _shoot(page, "inbox-desktop")

    # Keyboard: j selects the first row, Enter opens it.
    await page.locator("body").press("j")
    await page.keyboard.press("Enter")
    await expect(page.get_by_test_id("feedback-text")).to_contain_text("crashed at checkout")
    await expect(page.get_by_test_id("alert-status")).to_have_text("Open")
    # What the analysis found: the urgency cue marked in the text (labelled, in the
    # legend), the emotions listed, and the customer's earlier e-mail on another channel.
    cue = page.get_by_test_id("feedback-text").locator("mark.cue.urgency")
    await expect(cue).to_have_count(1)
    await expect(cue).to_contain_text("cancel my")
    await expect(cue).to_have_attribute("title", re.compile(r"^Urgency cue: "))
    await expect(page.get_by_test_id("legend")).to_contain_text("urgency cue")
    await expect(page.get_by_test_id("urgency-cues")).to_contain_text("cancel my")
    emotions = page.get_by_test_id("emotions")
    await expect(emotions).to_contain_text("Anger")
    await expect(emotions.locator("meter")).not_to_have_count(0)
    related = page.get_by_test_id("related")
    await expect(related).to_contain_text("Thanks for the quick delivery")
    await expect(related).to_contain_text("no alert")

    # "a" acknowledges.
    await page.locator("body").press("a")
    await expect(page.get_by_test_id("done")).to_have_text("Acknowledged.")
    await expect(page.get_by_test_id("alert-status")).to_have_text("Acknowledged")

    await page.get_by_label("What was done").fill(
        "Refunded the second charge; fix shipped in 4.2.1."
    )
    await page.get_by_label("Root cause").fill("app-defect")
    await page.get_by_label("Reply to the customer").fill(
        "Sorry, Dana: we refunded the duplicate charge and fixed the crash."
    )
    await page.get_by_role("button", name="Resolve", exact=True).click()
    await expect(page.get_by_test_id("done")).to_have_text("Resolved.")
    await expect(page.get_by_test_id("alert-status")).to_have_text("Resolved")
    await expect(page.get_by_test_id("customer-reply")).to_contain_text("refunded the duplicate")
    history = page.get_by_test_id("history")
    await expect(history).to_contain_text("Acknowledged · Alice (bootstrap-admin)")
    await expect(history).to_contain_text("Resolved · Alice (bootstrap-admin)")
    await expect(page.get_by_test_id("root-cause")).to_have_text("app-defect")
    await _shoot(page, "alert-desktop")
    alert_url = page.url.split("?")[0]

    # The dashboard now counts the alert, its resolution time and no open alerts.
    assert await _dashboard_figure(page, gateway, "alerts-raised") == "3"
    assert await _dashboard_figure(page, gateway, "mttr") != "—"
    assert await _dashboard_figure(page, gateway, "open-alerts") == "2"
    volume = page.locator('[data-kpi="volume"] .value a')
    await expect(volume).to_have_text("5")
    # Every number links to the items behind it. The feedback volume opens the feedback
    # list, which holds exactly that many items (most of them raised no alert) ...
    await volume.click()
    await expect(page).to_have_url(re.compile(r"/console/feedback\?from=.*&to="))
    listed = page.locator("[data-testid='feedback'] tbody tr[data-feedback-id]")
    await expect(listed).to_have_count(5)
    await expect(listed.filter(has_text="no alert")).to_have_count(2)
    await expect(listed.filter(has_text="Resolved")).to_have_count(1)
    await _shoot(page, "feedback-desktop")
    # ... and the sentiment mix's negative count opens exactly its negative items.
    await page.goto(gateway + "/console/dashboard")
    negative = page.locator('[data-kpi="negative_share"] .mix a').first
    negative_count = int((await negative.inner_text()).split()[-1])
    assert negative_count >= 3  # the three complaints
    await negative.click()
    await expect(listed).to_have_count(negative_count)
    await expect(listed.locator(".badge.sentiment.negative")).to_have_count(negative_count)
    await page.goto(gateway + "/console/dashboard")
    # The alert count opens the inbox with those alerts.
    await page.get_by_test_id("by-channel").locator("tr[data-key='app'] .alerts-count a").click()
    await expect(page).to_have_url(re.compile(r"/console/inbox\?.*channel=app"))
    await expect(rows).to_have_count(1)
    # The alerts service filters (exact over every alert): e-mail alerts are Sam's only;
    # none of the three has breached its SLA; the purchase stage is the app alert's.
    await page.goto(gateway + "/console/inbox?status=all&channel=email")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("Email")
    await page.goto(gateway + "/console/inbox?status=all&sla=breached")
    await expect(page.get_by_text("No alerts match.")).to_be_visible()
    await page.goto(gateway + "/console/inbox?status=all&journey_stage=purchase")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_contain_text("App")
    await page.goto(gateway + "/console/dashboard")
    await _shoot(page, "dashboard-desktop")

    # An agent of another team signs in and sees none of cx-team's alerts, not even by id.
    async with httpx.AsyncClient(base_url=gateway, timeout=15) as client:
        created = await client.post(
            "/v1/admin/api-keys",
            headers=auth,
            json={"name": "hotline-agent", "role": "agent", "team": "hotline-team"},
        )
    assert created.status_code == 201, created.text
    outsider = await browser.new_context(viewport={"width": 1280, "height": 860}, locale="en-US")
    other = await outsider.new_page()
    await _sign_in(other, gateway, created.json()["key"], "Hui")
    await other.goto(gateway + "/console/inbox?status=all")
    await expect(other.get_by_text("No alerts match.")).to_be_visible()
    await expect(other.locator("#alerts tbody tr[data-alert-id]")).to_have_count(0)
    response = await other.goto(alert_url)
    assert response is not None
    assert response.status == 404
    await outsider.close()
    # The refusal is in the gateway's access audit, like one through the API.
    assert await _audited_team_refusal(gateway, auth, created.json()["id"]) == (
        "/console/alerts/{alert_id}",
        "hotline-agent",
    )

    # A phone, in Chinese (the browser's language picks it).
    phone = await browser.new_context(
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        has_touch=True,
        locale="zh-CN",
        storage_state=await context.storage_state(),
    )
    mobile = await phone.new_page()
    await mobile.goto(gateway + "/console/inbox?status=all")
    await expect(mobile.get_by_role("heading", name="工单箱")).to_be_visible()
    await expect(mobile.locator("#alerts tbody tr[data-alert-id]")).to_have_count(3)
    await _shoot(mobile, "inbox-phone-zh", full_page=False)
    await mobile.locator("#alerts tr", has_text="热线").locator("a.open").click()
    await expect(mobile.get_by_test_id("feedback-text")).to_contain_text("宽带又断了")
    await expect(mobile.get_by_test_id("alert-status")).to_have_text("待处理")
    await _shoot(mobile, "alert-phone-zh", full_page=False)
    await phone.close()

    # Signing out ends the session: the inbox asks for a key again.
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/console/sign-in"))
    await page.goto(gateway + "/console/inbox")
    await expect(page).to_have_url(re.compile(r"/console/sign-in\?next="))
    await context.close()

    for name in (
        "inbox-desktop",
        "alert-desktop",
        "dashboard-desktop",
        "feedback-desktop",
        "inbox-phone-zh",
    ):
        assert (ARTIFACTS / f"{name}.png").stat().st_size > 10_000
