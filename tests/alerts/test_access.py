"""Team scope: an agent or lead sees and works only their team's alerts (real PostgreSQL).

The support API is mounted on a bare FastAPI app with the real routes, lifecycle and
database; the X-Closeloop-Role/-Team headers are what the gateway sends for a key.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, HTTPException
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import routes
from closeloop_alerts.access import UNRESTRICTED, Access, Role, caller_access
from closeloop_alerts.models import Alert
from closeloop_alerts.outbound import Allowlist
from closeloop_alerts.owners import OwnerStore
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import AlertIntake, Lifecycle
from closeloop_shared.http.observability import install_observability
from tests.alerts.support import scored

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
    app = FastAPI()
    app.include_router(routes.router)
    app.include_router(routes.admin)
    app.state.api = routes.ApiContext(
        sessionmaker=sessionmaker,
        wake_outbox=lambda: None,
        lifecycle=Lifecycle(sessionmaker, state),
        owners=OwnerStore(sessionmaker, state, None),
        outbound_allowlist=Allowlist.parse(()),
    )
    install_observability(app, service="alerts-access-test", readiness={})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://alerts"
    ) as client:
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
        ("assign", {"assignee": "me"}),
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
    assert {group["key"] for group in mine["groups"]} == {"hotline-team"}
    team = next(g for g in everything["groups"] if g["key"] == "hotline-team")
    assert mine["total"]["alerts"] == team["alerts"]
    assert mine["total"]["alerts"] < everything["total"]["alerts"]
