"""Team scope: an agent or lead sees and works only their team's alerts (real PostgreSQL).

The support API is mounted on a bare FastAPI app with the real routes, lifecycle and
database; the X-Closeloop-Role/-Team headers are what the gateway sends for a key.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import HTTPException
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import repository
from closeloop_alerts.access import (
    CHANNEL_REPORTER,
    UNRESTRICTED,
    Access,
    Role,
    caller_access,
    reply_reporter,
)
from closeloop_alerts.models import Alert
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import AlertIntake
from tests.alerts.support import scored, support_api

Sessions = async_sessionmaker[AsyncSession]

ROUTING = """\
owners:
  - id: hotline-team
    escalation_owner: leads
    notify:
      - {type: email, to: hotline@example.com}
  - id: email-team
    escalation_owner: leads
    notify:
      - {type: email, to: email@example.com}
  - id: leads
    notify:
      - {type: email, to: leads@example.com}
rules:
  - id: email
    when: {touchpoint: inbox}
    owner: email-team
    priority: high
default_owner: hotline-team
sla:
  medium: {acknowledge: 30m, resolve: 4h}
  high: {acknowledge: 1h, resolve: 8h}
"""

AGENT = {"X-Closeloop-Role": "agent", "X-Closeloop-Team": "hotline-team"}
LEAD = {"X-Closeloop-Role": "lead", "X-Closeloop-Team": "hotline-team"}
ADMIN = {"X-Closeloop-Role": "admin"}
CHANNEL = {"X-Closeloop-Role": "channel"}


# --- unit: reading the headers ---------------------------------------------------------------


def test_headers_become_access_and_anything_unclear_is_refused() -> None:
    assert caller_access(None, None) == UNRESTRICTED
    assert caller_access("admin", "hotline-team") == Access(Role.ADMIN, None)
    assert caller_access("agent", "hotline-team") == Access(Role.AGENT, "hotline-team")
    for role, team in (("agent", None), ("lead", ""), ("channel", None), ("root", "x")):
        with pytest.raises(HTTPException) as refused:
            caller_access(role, team)
        assert refused.value.status_code == 403
        assert refused.value.headers == {"X-Closeloop-Denied": "role"}


def test_only_the_reply_report_lets_a_channel_in_and_only_without_a_team() -> None:
    assert reply_reporter("channel", None) == CHANNEL_REPORTER
    assert reply_reporter("channel", "hotline-team") == CHANNEL_REPORTER
    assert CHANNEL_REPORTER.team is None
    assert reply_reporter("agent", "hotline-team") == Access(Role.AGENT, "hotline-team")
    assert reply_reporter(None, None) == UNRESTRICTED
    for role, team in (("agent", None), ("root", "x")):
        with pytest.raises(HTTPException):
            reply_reporter(role, team)


def test_who_sees_and_assigns_what() -> None:
    agent = Access(Role.AGENT, "hotline-team")
    lead = Access(Role.LEAD, "hotline-team")
    assert agent.sees("hotline-team", None)
    assert agent.sees("email-team", "hotline-team")  # escalated to the team
    assert not agent.sees("email-team", None)
    assert not agent.sees("email-team", "leads")
    assert UNRESTRICTED.sees("email-team", None)
    assert not agent.may_assign_to(None)
    assert lead.may_assign_to(None)
    assert lead.may_assign_to("hotline-team")
    assert not lead.may_assign_to("email-team")
    assert Access(Role.ADMIN, None).may_assign_to("email-team")
    assert agent.alert_filter() is not None
    assert UNRESTRICTED.alert_filter() is None


# --- over HTTP, on the database --------------------------------------------------------------


@pytest.fixture(scope="module")
def state() -> RoutingState:
    return RoutingState(Router(parse_routing(ROUTING)))


@pytest.fixture(scope="module")
async def api(sessionmaker: Sessions, state: RoutingState) -> AsyncIterator[httpx.AsyncClient]:
    async with support_api(sessionmaker, state, service="alerts-access-test") as client:
        yield client


async def _raise(sessionmaker: Sessions, state: RoutingState, touchpoint: str | None) -> Alert:
    item = scored(touchpoint=touchpoint)
    await AlertIntake(sessionmaker, state).process([item])
    async with sessionmaker() as session:
        alert = await session.scalar(select(Alert).where(Alert.feedback_id == item.feedback.id))
    assert alert is not None
    return alert


@pytest.fixture(scope="module")
async def alerts(sessionmaker: Sessions, state: RoutingState) -> dict[str, Alert]:
    return {
        "hotline": await _raise(sessionmaker, state, None),
        "email": await _raise(sessionmaker, state, "inbox"),
        "escalated": await _raise(sessionmaker, state, "inbox"),
    }


def ids(page: dict[str, Any]) -> set[str]:
    return {item["id"] for item in page["items"]}


async def test_an_agent_lists_and_reads_only_the_teams_alerts(
    api: httpx.AsyncClient, alerts: dict[str, Alert]
) -> None:
    hotline, email = str(alerts["hotline"].id), str(alerts["email"].id)
    everything = ids((await api.get("/v1/alerts?limit=200")).json())
    assert {hotline, email} <= everything
    assert {hotline, email} <= ids((await api.get("/v1/alerts?limit=200", headers=ADMIN)).json())

    mine = (await api.get("/v1/alerts?limit=200", headers=AGENT)).json()
    assert hotline in ids(mine)
    assert email not in ids(mine)
    assert {item["owner"] for item in mine["items"]} == {"hotline-team"}
    # Asking for another team's alerts by the owner filter finds nothing.
    other = (await api.get("/v1/alerts?owner=email-team", headers=AGENT)).json()
    assert other["items"] == []

    assert (await api.get(f"/v1/alerts/{hotline}", headers=AGENT)).status_code == 200
    hidden = await api.get(f"/v1/alerts/{email}", headers=AGENT)
    unknown = await api.get(f"/v1/alerts/{uuid.uuid4()}", headers=AGENT)
    # Another team's alert looks exactly like an unknown id, but says why to the gateway.
    assert hidden.status_code == unknown.status_code == 404
    assert hidden.json()["error"]["code"] == unknown.json()["error"]["code"] == "alert_not_found"
    assert hidden.headers["x-closeloop-denied"] == "team_scope"
    assert "x-closeloop-denied" not in unknown.headers

    feedback = await api.get(f"/v1/feedback/{alerts['email'].feedback_id}", headers=AGENT)
    assert feedback.status_code == 404
    assert feedback.headers["x-closeloop-denied"] == "team_scope"
    own = await api.get(f"/v1/feedback/{alerts['hotline'].feedback_id}", headers=AGENT)
    assert own.status_code == 200


async def test_an_agent_acts_only_on_the_teams_alerts_and_never_assigns(
    api: httpx.AsyncClient, alerts: dict[str, Alert], sessionmaker: Sessions
) -> None:
    email = alerts["email"].id
    for path, body in (
        ("acknowledge", None),
        ("resolve", {"note": "not mine"}),
        ("comments", {"text": "hello"}),
        ("escalate", {"note": "up"}),
        ("customer-reply", {"status": "sent"}),
    ):
        refused = await api.post(f"/v1/alerts/{email}/{path}", json=body, headers=AGENT)
        assert refused.status_code == 404, path
        assert refused.headers["x-closeloop-denied"] == "team_scope"
    async with sessionmaker() as session:
        untouched = await session.get(Alert, email)
    assert untouched is not None
    assert untouched.status == "open"
    assert untouched.escalation_level == 0
    # Agents never assign: refused for the role, whichever alert it is (nothing to probe).
    for alert_id in (email, alerts["hotline"].id, uuid.uuid4()):
        assign = await api.post(
            f"/v1/alerts/{alert_id}/assign", json={"assignee": "me"}, headers=AGENT
        )
        assert assign.status_code == 403
        assert assign.headers["x-closeloop-denied"] == "role"

    hotline = alerts["hotline"].id
    acknowledged = await api.post(f"/v1/alerts/{hotline}/acknowledge", headers=AGENT)
    assert acknowledged.status_code == 200
    assert acknowledged.json()["status"] == "acknowledged"
    assign = await api.post(f"/v1/alerts/{hotline}/assign", json={"assignee": "x"}, headers=AGENT)
    assert assign.status_code == 403
    assert assign.headers["x-closeloop-denied"] == "role"


async def test_a_lead_assigns_within_the_team_only(
    api: httpx.AsyncClient, alerts: dict[str, Alert]
) -> None:
    hotline = alerts["hotline"].id
    within = await api.post(f"/v1/alerts/{hotline}/assign", json={"assignee": "ann"}, headers=LEAD)
    assert within.status_code == 200
    assert within.json()["assignee"] == "ann"
    away = await api.post(
        f"/v1/alerts/{hotline}/assign", json={"owner": "email-team"}, headers=LEAD
    )
    assert away.status_code == 403
    assert (await api.get(f"/v1/alerts/{alerts['email'].id}", headers=LEAD)).status_code == 404


async def test_an_alert_escalated_to_the_team_becomes_visible_to_it(
    api: httpx.AsyncClient, alerts: dict[str, Alert]
) -> None:
    escalated = alerts["escalated"].id
    assert (await api.get(f"/v1/alerts/{escalated}", headers=AGENT)).status_code == 404
    response = await api.post(
        f"/v1/alerts/{escalated}/escalate",
        json={"note": "hotline knows this customer", "to_owner": "hotline-team"},
        headers=ADMIN,
    )
    assert response.status_code == 200
    assert (await api.get(f"/v1/alerts/{escalated}", headers=AGENT)).status_code == 200
    assert str(escalated) in ids((await api.get("/v1/alerts?limit=200", headers=AGENT)).json())
    commented = await api.post(
        f"/v1/alerts/{escalated}/comments", json={"text": "on it"}, headers=AGENT
    )
    assert commented.status_code == 200


async def test_owners_changes_are_admin_only_and_kpis_are_the_teams(
    api: httpx.AsyncClient, alerts: dict[str, Alert]
) -> None:
    owner = {"notify": [{"type": "email", "to": "new@example.com"}]}
    for headers in (AGENT, LEAD):
        put = await api.put("/v1/owners/new-team", json=owner, headers=headers)
        assert put.status_code == 403
        assert put.headers["x-closeloop-denied"] == "role"
        assert (await api.delete("/v1/owners/new-team", headers=headers)).status_code == 403
    assert (await api.put("/v1/owners/new-team", json=owner, headers=ADMIN)).status_code == 201
    assert (await api.delete("/v1/owners/new-team", headers=ADMIN)).status_code == 204
    # The same SSRF guard as deliveries, at the door: no target inside the network.
    for url in ("http://169.254.169.254/latest/", "http://2130706433/", "http://[::1]/"):
        unsafe = {"notify": [{"type": "slack", "url": url}]}
        refused = await api.put("/v1/owners/new-team", json=unsafe, headers=ADMIN)
        assert refused.status_code == 422, url
        problems = refused.json()["error"]["problems"]
        assert problems[0]["target"] == "slack-1", problems
        assert "non-public" in problems[0]["detail"]
    # Reading owners is fine for everyone with alerts:read (it names no credentials).
    assert (await api.get("/v1/owners", headers=AGENT)).status_code == 200

    everything = (await api.get("/v1/kpis?group_by=owner")).json()
    mine = (await api.get("/v1/kpis?group_by=owner", headers=AGENT)).json()
    assert {group["key"] for group in everything["groups"]} >= {"hotline-team", "email-team"}
    # The agent's KPIs cover what its inbox shows: the team's alerts and those escalated to
    # it (earlier tests here escalate an email-team alert to hotline-team).
    visible = (await api.get("/v1/alerts?limit=200", headers=AGENT)).json()["items"]
    assert mine["total"]["alerts"] == len(visible)
    assert {group["key"] for group in mine["groups"]} == {alert["owner"] for alert in visible}
    team = next(g for g in everything["groups"] if g["key"] == "hotline-team")
    assert next(g for g in mine["groups"] if g["key"] == "hotline-team")["alerts"] == team["alerts"]
    assert mine["total"]["alerts"] < everything["total"]["alerts"]


async def _blocked_by(sessionmaker: Sessions, holder_pid: int) -> bool:
    """Whether some backend waits on a lock ``holder_pid`` holds."""
    async with sessionmaker() as session:
        waiting = await session.scalar(
            text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY(pg_blocking_pids(pid))"),
            {"pid": holder_pid},
        )
    return bool(waiting)


async def test_an_alert_handed_to_another_team_while_an_agent_acts_is_refused(
    api: httpx.AsyncClient, sessionmaker: Sessions, state: RoutingState
) -> None:
    alert = await _raise(sessionmaker, state, None)
    assert alert.owner_id == "hotline-team"
    async with sessionmaker() as holder:
        async with holder.begin():
            holder_pid = await holder.scalar(text("SELECT pg_backend_pid()"))
            assert isinstance(holder_pid, int)
            # A hand-over in flight: the row is locked and already another team's.
            locked = await repository.lock_alert(holder, alert.id)
            assert locked is not None
            locked.owner_id = "email-team"
            await holder.flush()
            acting = asyncio.create_task(
                api.post(f"/v1/alerts/{alert.id}/acknowledge", headers=AGENT)
            )
            # The agent's request has started and waits on the hand-over's lock. A team check
            # outside the action's transaction would have read the old, committed owner by now.
            async with asyncio.timeout(30):
                while not await _blocked_by(sessionmaker, holder_pid):  # noqa: ASYNC110
                    await asyncio.sleep(0.02)
        # The hand-over commits; only now does the agent's action see the row.
        refused = await acting
    assert refused.status_code == 404
    assert refused.headers["x-closeloop-denied"] == "team_scope"
    async with sessionmaker() as session:
        after = await session.get(Alert, alert.id)
    assert after is not None
    assert (after.owner_id, after.status) == ("email-team", "open")
    # The other team's agent now may, through the same path.
    other = {"X-Closeloop-Role": "agent", "X-Closeloop-Team": "email-team"}
    allowed = await api.post(f"/v1/alerts/{alert.id}/acknowledge", headers=other)
    assert allowed.status_code == 200


async def test_a_channel_reports_reply_delivery_without_reading_alerts(
    api: httpx.AsyncClient, sessionmaker: Sessions, state: RoutingState
) -> None:
    with_reply = await _raise(sessionmaker, state, "inbox")
    resolved = await api.post(
        f"/v1/alerts/{with_reply.id}/resolve",
        json={"note": "refunded", "customer_reply": "We refunded you."},
        headers=ADMIN,
    )
    assert resolved.status_code == 200
    without_reply = await _raise(sessionmaker, state, None)

    reported = await api.post(
        f"/v1/alerts/{with_reply.id}/customer-reply",
        json={"status": "sent", "detail": "smtp 250"},
        headers={**CHANNEL, "X-Closeloop-Actor": "mail-gateway"},
    )
    assert reported.status_code == 200, reported.text
    receipt = reported.json()
    # The reply's state, and nothing of the alert (no owner, status, notes, customer).
    assert set(receipt) == {"alert_id", "feedback_id", "customer_reply"}
    assert receipt["alert_id"] == str(with_reply.id)
    assert receipt["customer_reply"]["status"] == "sent"
    assert receipt["customer_reply"]["detail"] == "smtp 250"
    history = (await api.get(f"/v1/alerts/{with_reply.id}", headers=ADMIN)).json()["history"]
    assert (history[-1]["type"], history[-1]["actor"]) == ("customer_reply_sent", "mail-gateway")

    # Unknown alerts and alerts without a reply answer as they do for everyone.
    unknown = await api.post(
        f"/v1/alerts/{uuid.uuid4()}/customer-reply", json={"status": "sent"}, headers=CHANNEL
    )
    assert unknown.status_code == 404
    no_reply = await api.post(
        f"/v1/alerts/{without_reply.id}/customer-reply", json={"status": "failed"}, headers=CHANNEL
    )
    assert no_reply.status_code == 422
    assert no_reply.json()["error"]["code"] == "no_customer_reply"

    # Everything else stays closed to a channel.
    for method, path, body in (
        ("GET", "/v1/alerts", None),
        ("GET", f"/v1/alerts/{with_reply.id}", None),
        ("GET", f"/v1/feedback/{with_reply.feedback_id}", None),
        ("POST", f"/v1/alerts/{without_reply.id}/acknowledge", None),
        ("POST", f"/v1/alerts/{without_reply.id}/comments", {"text": "hi"}),
        ("POST", f"/v1/alerts/{with_reply.id}/reopen", {"note": "again"}),
        ("GET", "/v1/kpis", None),
    ):
        refused = await api.request(method, path, json=body, headers=CHANNEL)
        assert refused.status_code == 403, (method, path)
        assert refused.headers["x-closeloop-denied"] == "role"
    async with sessionmaker() as session:
        untouched = await session.get(Alert, without_reply.id)
    assert untouched is not None
    assert untouched.status == "open"


async def test_erasure_is_admin_only_when_a_role_is_named(api: httpx.AsyncClient) -> None:
    body = {"email": f"nobody-{uuid.uuid4().hex}@example.com", "reference": "T-42"}
    for headers in (AGENT, LEAD, CHANNEL, {"X-Closeloop-Role": "root"}):
        refused = await api.post("/v1/privacy/erasures", json=body, headers=headers)
        assert refused.status_code == 403, headers
        assert refused.headers["x-closeloop-denied"] == "role"
    for headers in (ADMIN, {}):
        done = await api.post("/v1/privacy/erasures", json=body, headers=headers)
        assert done.status_code == 201, done.text
        assert done.json()["counts"]["feedback"] == 0


async def test_owners_show_their_redact_pii_setting(api: httpx.AsyncClient) -> None:
    for value in (True, False, None):
        owner_id = f"redact-{str(value).lower()}"
        owner: dict[str, Any] = {"notify": [{"type": "email", "to": "x@example.com"}]}
        if value is not None:
            owner["redact_pii"] = value
        put = await api.put(f"/v1/owners/{owner_id}", json=owner, headers=ADMIN)
        assert put.status_code == 201, put.text
        assert put.json()["redact_pii"] is value
        assert (await api.get(f"/v1/owners/{owner_id}")).json()["redact_pii"] is value
        listed = (await api.get("/v1/owners")).json()["items"]
        assert next(o for o in listed if o["id"] == owner_id)["redact_pii"] is value
        assert (await api.delete(f"/v1/owners/{owner_id}", headers=ADMIN)).status_code == 204
