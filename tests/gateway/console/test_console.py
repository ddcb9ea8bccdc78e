"""The console's pages against a fake alerts service (the real key store and database)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from urllib.parse import parse_qs

import httpx
import orjson
import pytest

from tests.gateway.console.fake_alerts import (
    FakeAlerts,
    a_detail,
    a_feedback_item,
    a_kpi_group,
    an_alert,
)
from tests.gateway.support import (
    ADMIN_KEY,
    FakeUpstream,
    Reply,
    bearer,
    gateway_settings,
    running_gateway,
)

pytestmark = pytest.mark.integration

HTML = {"Accept": "text/html"}
HOTLINE = an_alert()
EMAIL = an_alert(
    id="9a0e7c55-1f7e-4a7b-8a4b-4c2b0f3f0b22",
    feedback_id="3c2d1e0f-4b5a-4c6d-8e7f-9a0b1c2d3e44",
    channel="email",
    owner="cx-team",
    priority="medium",
    rule_id="email-negative",
)


@pytest.fixture(scope="module")
async def alerts() -> AsyncIterator[FakeAlerts]:
    upstream = FakeAlerts("alerts")
    upstream.alerts = [HOTLINE, EMAIL]
    upstream.details = {
        HOTLINE["id"]: a_detail(
            HOTLINE,
            "Waited an hour, <b>billing</b> is wrong. Close  my account!",
            ["billing"],
        ),
        EMAIL["id"]: a_detail(EMAIL, "Refund never came", ["refund"]),
    }
    upstream.kpis = {
        "channel": [a_kpi_group("hotline", 10, 6, 4), a_kpi_group("email", 5, 1, 1)],
        "touchpoint": [a_kpi_group("checkout", 15, 7, 5)],
        "journey_stage": [a_kpi_group("purchase", 15, 7, 5)],
        "topic": [a_kpi_group("billing", 8, 5, 3)],
    }
    upstream.related = {
        HOTLINE["feedback_id"]: [
            {
                "feedback": a_detail(EMAIL, "Second <i>mail</i> about it", [])["feedback"]
                | {"id": EMAIL["feedback_id"], "subject": "Still waiting"},
                "sentiment": a_detail(EMAIL, "", [])["sentiment"],
                "alert_id": EMAIL["id"],
                "alert_status": "open",
            },
            {
                "feedback": a_detail(HOTLINE, "Love the app", [])["feedback"]
                | {"id": "5d1f0c3e-2a47-4d8e-9b1a-7c2e4f6a8b33", "channel": "app"},
                "sentiment": None,
                "alert_id": None,
                "alert_status": None,
            },
        ]
    }
    upstream.feedback = [
        a_feedback_item(1, "hotline", "negative", {"type": "nps", "value": 2}),
        a_feedback_item(2, "app", "positive", {"type": "nps", "value": 10}),
        a_feedback_item(3, "email", "neutral", {"type": "csat", "value": 3}),
        a_feedback_item(4, "app", None, None),
    ]
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


@pytest.fixture(scope="module")
async def console(
    migrated_database: str, ingest: FakeUpstream, alerts: FakeAlerts
) -> AsyncIterator[httpx.AsyncClient]:
    settings = gateway_settings(ingest.url, alerts.url)
    async with running_gateway(settings, migrated_database) as client:
        yield client


async def _sign_in(client: httpx.AsyncClient, name: str | None = "Alice") -> str:
    """Signs in (the client keeps the cookie) and returns the page's CSRF token."""
    client.cookies.clear()
    form = {"key": ADMIN_KEY, "next": "/console/inbox"}
    if name:
        form["name"] = name
    response = await client.post("/console/sign-in", data=form, headers=HTML)
    assert response.status_code == 303, response.text
    inbox = await client.get("/console/inbox", headers=HTML)
    assert inbox.status_code == 200, inbox.text
    found = re.search(r'name="csrf" value="([^"]+)"', inbox.text)
    assert found is not None
    return found.group(1)


async def test_pages_need_a_session(console: httpx.AsyncClient) -> None:
    console.cookies.clear()
    response = await console.get("/console/inbox?status=open", headers=HTML)
    assert response.status_code == 303
    assert (
        response.headers["location"] == "/console/sign-in?next=%2Fconsole%2Finbox%3Fstatus%3Dopen"
    )
    form = await console.get("/console/sign-in", headers=HTML)
    assert form.status_code == 200
    assert 'for="key"' in form.text
    assert 'id="key"' in form.text


async def test_a_link_from_another_site_reaches_the_page_it_names(
    console: httpx.AsyncClient,
) -> None:
    """A notification's link: the browser leaves the Strict cookie out of a cross-site
    navigation, so the console asks again from itself (which carries it); without a
    session then either, sign-in sends the person back to the page."""
    console.cookies.clear()
    target = f"/console/alerts/{HOTLINE['id']}?from=slack"
    bounce = await console.get(target, headers={**HTML, "Sec-Fetch-Site": "cross-site"})
    assert bounce.status_code == 200
    escaped = target.replace("&", "&amp;")
    assert f'<meta http-equiv="refresh" content="0;url={escaped}">' in bounce.text
    assert "Content-Security-Policy".lower() in bounce.headers
    again = await console.get(target, headers={**HTML, "Sec-Fetch-Site": "same-origin"})
    assert again.status_code == 303
    signed_in = await console.post(
        "/console/sign-in",
        data={"key": ADMIN_KEY, "next": target},
        headers=HTML,
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == target
    # With the session, the same cross-site link opens the page at once.
    page = await console.get(target, headers={**HTML, "Sec-Fetch-Site": "cross-site"})
    assert page.status_code == 200
    assert 'data-testid="feedback-text"' in page.text


@pytest.mark.parametrize(
    "target",
    [
        "//evil.example/console",
        "https://evil.example/console/inbox",
        "/console\\@evil.example",
        "/consoleevil",
        "/console/inbox\r\nSet-Cookie: x=1",
        "",
    ],
)
async def test_sign_in_goes_back_only_to_console_paths(
    console: httpx.AsyncClient, target: str
) -> None:
    console.cookies.clear()
    signed_in = await console.post(
        "/console/sign-in", data={"key": ADMIN_KEY, "next": target}, headers=HTML
    )
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/console/inbox"


async def test_sign_in_sets_a_strict_http_only_cookie_without_the_key(
    console: httpx.AsyncClient,
) -> None:
    console.cookies.clear()
    response = await console.post(
        "/console/sign-in", data={"key": ADMIN_KEY, "next": "/console/dashboard"}, headers=HTML
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/console/dashboard"
    cookie = response.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    assert "Path=/console" in cookie
    assert ADMIN_KEY not in cookie
    assert ADMIN_KEY[4:20] not in cookie


@pytest.mark.parametrize(
    ("key", "status", "message"),
    [
        ("clk_" + "x" * 43, 401, "unknown or revoked"),
        ("not a key", 422, "not an API key"),
    ],
)
async def test_sign_in_refuses_bad_keys(
    console: httpx.AsyncClient, key: str, status: int, message: str
) -> None:
    console.cookies.clear()
    response = await console.post("/console/sign-in", data={"key": key}, headers=HTML)
    assert response.status_code == status
    assert message in response.text
    assert "set-cookie" not in response.headers


async def test_a_forged_cookie_is_no_session(console: httpx.AsyncClient) -> None:
    console.cookies.clear()
    console.cookies.set("closeloop_console", "eyJrIjoiYWJjIn0.forged.sig", path="/console")
    response = await console.get("/console/inbox", headers=HTML)
    assert response.status_code == 303


async def test_inbox_lists_through_the_alerts_api_as_the_named_user(
    console: httpx.AsyncClient, alerts: FakeAlerts
) -> None:
    await _sign_in(console)
    alerts.received.clear()
    response = await console.get("/console/inbox", headers=HTML)
    assert response.status_code == 200
    assert HOTLINE["id"] in response.text
    assert EMAIL["id"] in response.text
    sent = alerts.last("/v1/alerts")
    assert sent.header("x-closeloop-actor") == "Alice (bootstrap-admin)"
    assert sent.header("x-closeloop-principal") is not None
    assert sent.header("authorization") is None
    assert sent.header("cookie") is None
    assert response.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in response.headers["content-security-policy"]


async def test_inbox_filters_are_the_alerts_services(
    console: httpx.AsyncClient, alerts: FakeAlerts
) -> None:
    """Every filter goes to the alerts list API, which applies it over all alerts."""
    await _sign_in(console)
    by_channel = await console.get("/console/inbox?channel=email", headers=HTML)
    assert EMAIL["id"] in by_channel.text
    assert HOTLINE["id"] not in by_channel.text
    assert alerts.last("/v1/alerts").query == (
        b"status=open&status=acknowledged&channel=email&limit=200"
    )
    by_topic = await console.get("/console/inbox?topic=billing&status=all", headers=HTML)
    assert HOTLINE["id"] in by_topic.text
    assert EMAIL["id"] not in by_topic.text
    assert alerts.last("/v1/alerts").query == b"topic=billing&limit=200"
    upstream = await console.get("/console/inbox?priority=medium", headers=HTML)
    assert b"priority=medium" in alerts.last("/v1/alerts").query
    assert EMAIL["id"] in upstream.text
    assert HOTLINE["id"] not in upstream.text
    await console.get(
        "/console/inbox?status=resolved&sla=breached&touchpoint=(none)&journey_stage=purchase"
        "&from=2026-11-01&to=2026-11-07&owner=cx-team",
        headers=HTML,
    )
    sent = parse_qs(alerts.last("/v1/alerts").query.decode())
    assert sent == {
        "status": ["resolved"],
        "owner": ["cx-team"],
        "sla": ["breached"],
        "touchpoint": ["(none)"],
        "journey_stage": ["purchase"],
        "from": ["2026-11-01T00:00:00+00:00"],
        "to": ["2026-11-08T00:00:00+00:00"],
        "limit": ["200"],
    }
    rows = await console.get("/console/inbox/rows?channel=hotline", headers=HTML)
    assert rows.text.lstrip().startswith("<tr")
    assert HOTLINE["id"] in rows.text
    assert EMAIL["id"] not in rows.text


async def test_bad_filters_are_422_json_for_api_clients(console: httpx.AsyncClient) -> None:
    await _sign_in(console)
    response = await console.get("/console/inbox?channel=fax", headers={"Accept": "*/*"})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"
    page = await console.get("/console/inbox?from=yesterday", headers=HTML)
    assert page.status_code == 422
    assert "YYYY-MM-DD" in page.text


async def test_alert_page_shows_the_feedback_escaped_and_highlighted(
    console: httpx.AsyncClient,
) -> None:
    await _sign_in(console)
    response = await console.get(f"/console/alerts/{HOTLINE['id']}", headers=HTML)
    assert response.status_code == 200
    page = response.text
    assert "&lt;<mark" not in page  # the term is "billing", not "b"
    # Escaped first, then marked, each mark labelled (not by colour alone).
    assert (
        '&lt;b&gt;<mark class="cue topic" title="Topic: billing">billing'
        '<span class="visually-hidden"> (Topic: billing)</span></mark>&lt;/b&gt;'
    ) in page
    # The urgency cue "close my account" is found across the text's double space.
    assert (
        '<mark class="cue urgency" title="Urgency cue: cancelling">Close  my account'
        '<span class="visually-hidden"> (Urgency cue: cancelling)</span></mark>'
    ) in page
    assert 'data-testid="legend"' in page
    emotions = page[page.index('data-testid="emotions"') :]
    # Strongest first, with a label and a number beside the meter.
    assert emotions.index("Anger") < emotions.index("Frustration")
    assert "75%" in emotions
    assert "Li Wei" in page
    assert 'id="acknowledge-form"' in page
    missing = await console.get(
        "/console/alerts/00000000-0000-0000-0000-000000000000", headers=HTML
    )
    assert missing.status_code == 404
    not_an_id = await console.get("/console/alerts/nope", headers=HTML)
    assert not_an_id.status_code == 404


async def test_alert_page_shows_the_customers_other_feedback_with_links(
    console: httpx.AsyncClient, alerts: FakeAlerts
) -> None:
    await _sign_in(console)
    page = (await console.get(f"/console/alerts/{HOTLINE['id']}", headers=HTML)).text
    related = page[page.index('data-testid="related"') :]
    assert f'href="/console/alerts/{EMAIL["id"]}"' in related
    assert "Second &lt;i&gt;mail&lt;/i&gt; about it" in related
    assert "Still waiting" in related
    assert "no alert" in related
    assert alerts.last(f"/v1/feedback/{HOTLINE['feedback_id']}/related").query == b"limit=20"
    # No related feedback to show (404 from the alerts service): the page still renders.
    other = await console.get(f"/console/alerts/{EMAIL['id']}", headers=HTML)
    assert other.status_code == 200
    assert "No other feedback from this customer." in other.text


async def test_actions_need_the_session_csrf_token(
    console: httpx.AsyncClient, alerts: FakeAlerts
) -> None:
    await _sign_in(console)
    alerts.received.clear()
    path = f"/console/alerts/{HOTLINE['id']}/acknowledge"
    refused = await console.post(path, data={"csrf": "guess"}, headers=HTML)
    assert refused.status_code == 403
    cross_site = await console.post(
        path, data={"csrf": "x"}, headers={**HTML, "Origin": "https://evil.example"}
    )
    assert cross_site.status_code == 403
    assert not alerts.at(f"/v1/alerts/{HOTLINE['id']}/acknowledge")


async def test_acknowledge_and_resolve_post_to_the_alerts_api(
    console: httpx.AsyncClient, alerts: FakeAlerts
) -> None:
    csrf = await _sign_in(console, name=None)
    alert_id = HOTLINE["id"]
    acknowledged = await console.post(
        f"/console/alerts/{alert_id}/acknowledge", data={"csrf": csrf}, headers=HTML
    )
    assert acknowledged.status_code == 303
    assert acknowledged.headers["location"] == f"/console/alerts/{alert_id}?done=acknowledge"
    sent = alerts.last(f"/v1/alerts/{alert_id}/acknowledge")
    assert sent.body == b""
    assert sent.header("x-closeloop-actor") == "bootstrap-admin"
    resolved = await console.post(
        f"/console/alerts/{alert_id}/resolve",
        data={
            "csrf": csrf,
            "note": "Refunded",
            "root_cause": "billing-error",
            "customer_reply": " ",
        },
        headers=HTML,
    )
    assert resolved.status_code == 303
    body = orjson.loads(alerts.last(f"/v1/alerts/{alert_id}/resolve").body)
    assert body == {"note": "Refunded", "root_cause": "billing-error"}
    comment = await console.post(
        f"/console/alerts/{alert_id}/comment", data={"csrf": csrf, "text": "Called"}, headers=HTML
    )
    assert comment.status_code == 303
    assert orjson.loads(alerts.last(f"/v1/alerts/{alert_id}/comments").body) == {"text": "Called"}


async def test_a_refused_action_shows_why_with_its_status(
    console: httpx.AsyncClient, alerts: FakeAlerts
) -> None:
    csrf = await _sign_in(console)
    alerts.action_replies.append(
        Reply(409, b'{"error": {"code": "invalid_transition", "detail": "resolved"}}')
    )
    response = await console.post(
        f"/console/alerts/{HOTLINE['id']}/acknowledge", data={"csrf": csrf}, headers=HTML
    )
    assert response.status_code == 409
    assert "does not apply to the alert in its current state" in response.text


async def test_chinese_from_the_browser_and_by_choice(console: httpx.AsyncClient) -> None:
    await _sign_in(console)
    chinese = await console.get(
        "/console/inbox", headers={**HTML, "Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}
    )
    assert "工单箱" in chinese.text
    assert 'lang="zh-CN"' in chinese.text
    chosen = await console.get("/console/language?lang=en&next=/console/inbox")
    assert chosen.status_code == 303
    english = await console.get("/console/inbox", headers={**HTML, "Accept-Language": "zh-CN"})
    assert "Inbox" in english.text
    assert "工单箱" not in english.text
    console.cookies.delete("closeloop_lang", path="/console")
    elsewhere = await console.get("/console/language?lang=en&next=https://evil.example/")
    assert elsewhere.headers["location"] == "/console/inbox"


async def test_dashboard_numbers_link_to_the_items_behind_them(
    console: httpx.AsyncClient,
) -> None:
    await _sign_in(console)
    response = await console.get("/console/dashboard?from=2026-11-01&to=2026-11-07", headers=HTML)
    assert response.status_code == 200, response.text
    text = response.text
    # Totals are the sum of the groups the fake reported: 15 items, 5 alerts.
    assert re.search(r'data-kpi="volume">.*?>15</a>', text, re.S)
    assert re.search(
        r'data-testid="alerts-raised"><a href="/console/inbox\?from=2026-11-01&amp;to=2026-11-07&amp;status=all">5</a>',
        text,
    )
    assert (
        'href="/console/inbox?from=2026-11-01&amp;to=2026-11-07&amp;status=all&amp;channel=hotline">4</a>'
        in text
    )
    # Feedback numbers link to the feedback items behind them, with the KPI group's filters.
    week = "from=2026-11-01&amp;to=2026-11-07"
    assert f'data-testid="feedback-volume"><a href="/console/feedback?{week}">15</a>' in text
    assert f'href="/console/feedback?{week}&amp;sentiment=negative">47%</a>' in text
    assert f'href="/console/feedback?{week}&amp;sentiment=neutral">Neutral 8</a>' in text
    assert f'href="/console/feedback?{week}&amp;rating_type=nps">-40</a>' in text
    assert f'href="/console/feedback?{week}&amp;channel=hotline">10</a>' in text
    assert f'href="/console/feedback?{week}&amp;channel=email&amp;rating_type=nps">-40</a>' in text
    assert f'href="/console/feedback?{week}&amp;touchpoint=checkout">15</a>' in text
    # The daily bars count items too; alert numbers (MTTR here) stay with the inbox.
    assert text.count('<a href="/console/feedback?from=2026-11-0') >= 7
    assert f'href="/console/inbox?{week}&amp;status=resolved">60 min</a>' in text
    # 7 days, one bar per day; this fake has no stage × touchpoint grouping: no heat map.
    assert text.count('class="seg negative"') == 7
    assert "journey stage and touchpoint" not in text
    bad = await console.get("/console/dashboard?from=2026-11-08&to=2026-11-01", headers=HTML)
    assert bad.status_code == 422


async def test_feedback_page_lists_the_items_with_their_filters(
    console: httpx.AsyncClient, alerts: FakeAlerts
) -> None:
    await _sign_in(console)
    response = await console.get(
        "/console/feedback?from=2026-11-01&to=2026-11-07&sentiment=negative&sentiment=positive"
        "&rating_type=nps&journey_stage=(none)&topic=billing",
        headers=HTML,
    )
    assert response.status_code == 200, response.text
    sent = parse_qs(alerts.last("/v1/feedback").query.decode())
    assert sent == {
        "journey_stage": ["(none)"],
        "sentiment": ["negative", "positive"],
        "rating_type": ["nps"],
        "topic": ["billing"],
        "from": ["2026-11-01T00:00:00+00:00"],
        "to": ["2026-11-08T00:00:00+00:00"],
        "limit": ["200"],
    }
    assert alerts.last("/v1/feedback").header("x-closeloop-actor") == "Alice (bootstrap-admin)"
    text = response.text
    rows = re.findall(r'<tr data-feedback-id="([^"]+)"', text)
    assert rows == [alerts.feedback[0]["feedback"]["id"], alerts.feedback[1]["feedback"]["id"]]
    # Escaped text, the sentiment badge, the rating and the alert link (none for the praise).
    assert "Item 1 &lt;says&gt; something" in text
    assert '<span class="badge sentiment negative">Negative</span>' in text
    assert "NPS 10" in text
    assert f'href="/console/alerts/{alerts.feedback[0]["alert_id"]}"' in text
    assert "no alert" in text
    # The form keeps the filters; the nav marks the page.
    assert 'value="negative" checked' in text
    assert 'value="neutral" >' in text
    assert '<option value="nps" selected>' in text
    assert 'href="/console/feedback" aria-current="page"' in text


async def test_feedback_page_pages_with_the_cursor(
    console: httpx.AsyncClient, alerts: FakeAlerts
) -> None:
    await _sign_in(console)
    alerts.feedback_page_size = 3
    try:
        first = await console.get("/console/feedback?channel=app", headers=HTML)
        everything = await console.get("/console/feedback?from=2026-11-01", headers=HTML)
        older = re.search(r'href="(/console/feedback\?[^"]*cursor=[^"]*)"', everything.text)
        assert older is not None
        second = await console.get(older.group(1).replace("&amp;", "&"), headers=HTML)
    finally:
        alerts.feedback_page_size = None
    ids = [item["feedback"]["id"] for item in alerts.feedback]
    assert re.findall(r'data-feedback-id="([^"]+)"', first.text) == [ids[1], ids[3]]
    assert 'data-testid="older-feedback"' not in first.text
    assert re.findall(r'data-feedback-id="([^"]+)"', everything.text) == ids[:3]
    assert re.findall(r'data-feedback-id="([^"]+)"', second.text) == ids[3:]
    # The next page keeps the filters and carries the service's cursor.
    assert alerts.last("/v1/feedback").query == (
        b"from=2026-11-01T00%3A00%3A00%2B00%3A00&limit=200&cursor=3"
    )


async def test_feedback_page_refuses_bad_filters(console: httpx.AsyncClient) -> None:
    await _sign_in(console)
    for query in ("sentiment=furious", "rating_type=stars", "from=2026-11-08&to=2026-11-01"):
        answer = await console.get(f"/console/feedback?{query}", headers={"Accept": "*/*"})
        assert answer.status_code == 422, query
        assert answer.json()["error"]["code"] == "invalid_request"
    empty = await console.get("/console/feedback?channel=social", headers=HTML)
    assert "No feedback matches." in empty.text
    chinese = await console.get(
        "/console/feedback?channel=social", headers={**HTML, "Accept-Language": "zh-CN"}
    )
    assert "没有符合条件的反馈。" in chinese.text


async def test_static_assets_are_cached_by_content_hash(console: httpx.AsyncClient) -> None:
    await _sign_in(console)
    page = await console.get("/console/inbox", headers=HTML)
    found = re.search(r'src="(/console/static/([0-9a-f]{12})/console\.js)"', page.text)
    assert found is not None
    script = await console.get(found.group(1))
    assert script.status_code == 200
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert script.headers["content-type"].startswith("text/javascript")
    stale = await console.get("/console/static/000000000000/console.js")
    assert stale.headers["cache-control"] == "no-cache"
    missing = await console.get(f"/console/static/{found.group(2)}/nope.js")
    assert missing.status_code == 404


async def test_sign_out_ends_the_session(console: httpx.AsyncClient) -> None:
    csrf = await _sign_in(console)
    response = await console.post("/console/sign-out", data={"csrf": csrf}, headers=HTML)
    assert response.status_code == 303
    console.cookies.clear()  # what the browser does with the expired cookie
    assert (await console.get("/console/inbox", headers=HTML)).status_code == 303


async def test_console_is_not_in_the_api_document(console: httpx.AsyncClient) -> None:
    document = (await console.get("/openapi.json")).json()
    assert not [path for path in document["paths"] if path.startswith("/console")]
    assert (await console.get("/v1/alerts", headers=bearer(ADMIN_KEY))).status_code == 200


async def test_dashboard_heat_map_when_the_alerts_service_groups_by_stage_and_touchpoint(
    console: httpx.AsyncClient, alerts: FakeAlerts
) -> None:
    await _sign_in(console)
    alerts.kpis["journey_stage_touchpoint"] = [
        a_kpi_group("purchase|checkout", 10, 9, 2),
        a_kpi_group("usage|app", 4, 0, 0),
    ]
    try:
        response = await console.get(
            "/console/dashboard?from=2026-11-01&to=2026-11-07", headers=HTML
        )
    finally:
        del alerts.kpis["journey_stage_touchpoint"]
    assert response.status_code == 200
    text = response.text
    assert "journey stage and touchpoint" in text
    # 90 % negative is a dark cell with white text; 0 % a near-white one with dark text.
    assert 'fill="hsl(0 75% 47%)"' in text
    assert 'fill="hsl(0 75% 97%)"' in text
    # A cell is a share of negative items: it links to those items of the cell.
    assert (
        'href="/console/feedback?from=2026-11-01&amp;to=2026-11-07'
        '&amp;journey_stage=purchase&amp;touchpoint=checkout&amp;sentiment=negative"' in text
    )
    assert "status=all&amp;journey_stage=purchase&amp;touchpoint=checkout" not in text
    # A stage without data for a touchpoint is an empty cell, not a zero.
    assert text.count('<svg class="cell"') == 2
