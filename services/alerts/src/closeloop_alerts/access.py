"""Who may see and work which alerts: the caller's role and team, as the gateway names them.

The gateway authenticates the API key and sends ``X-Closeloop-Role`` (channel, agent,
lead, admin) and, for agents and leads, ``X-Closeloop-Team`` (an owner id). It never
forwards a client's own ``X-Closeloop-*`` headers, and this service is only reachable on
the private network, so these headers are trusted here.

- agent: lists, reads and acts on the alerts its team owns or that were escalated to it;
  an alert of another team does not exist for it (404, the same answer as an unknown id,
  so ids of other teams' alerts cannot be probed); may not assign;
- lead: the same, and may assign within the team (to a person, or keep the owner);
- admin, and requests without a role header (internal callers: tests, the SLA scanner,
  operators on the private network): everything, as before roles existed;
- channel: nothing here (it posts feedback through ingest) but the one thing a channel
  system must report: whether it delivered a customer reply (``reply_reporter``), on any
  team's alert, answered with the reply's state only, never the alert;
- an unknown role, or an agent or lead without a team: refused (403), never widened.

Every refusal carries ``X-Closeloop-Denied: <reason>`` so the gateway's access audit
records why; the gateway does not pass that header on to the client.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Annotated

from fastapi import Depends, Header, HTTPException
from fastapi.responses import JSONResponse
from sqlalchemy import ColumnElement, or_

from closeloop_alerts.models import Alert
from closeloop_shared.http.observability import problem

DENIAL_HEADER = "X-Closeloop-Denied"
TEAM_SCOPE = "team_scope"
ROLE = "role"


class Role(StrEnum):
    CHANNEL = "channel"
    AGENT = "agent"
    LEAD = "lead"
    ADMIN = "admin"


TEAM_ROLES = frozenset({Role.AGENT, Role.LEAD})


def sees(team: str | None, owner_id: str, escalated_to: str | None) -> bool:
    """Whether ``team`` (None: no team limit) sees an alert of ``owner_id``, escalated to
    ``escalated_to``. The lifecycle applies it to the locked row (see service._apply)."""
    return team is None or team in (owner_id, escalated_to)


def _refuse(detail: str) -> HTTPException:
    return HTTPException(403, detail, headers={DENIAL_HEADER: ROLE})


@dataclass(frozen=True, slots=True)
class Access:
    """What one request may reach. ``team`` is None exactly when nothing is team-scoped."""

    role: Role | None
    team: str | None

    @property
    def scoped(self) -> bool:
        return self.team is not None

    def sees(self, owner_id: str, escalated_to: str | None) -> bool:
        return sees(self.team, owner_id, escalated_to)

    def alert_filter(self) -> ColumnElement[bool] | None:
        """The SQL condition limiting alerts to the team's, or None for everything."""
        if self.team is None:
            return None
        return or_(Alert.owner_id == self.team, Alert.escalated_to == self.team)

    def may_assign_to(self, owner_id: str | None) -> bool:
        """Agents do not assign; leads assign within their team (to a person, or keeping
        the alert with the team); admins anywhere."""
        if self.role is Role.AGENT:
            return False
        return self.team is None or owner_id in (None, self.team)


UNRESTRICTED = Access(role=None, team=None)


RoleHeader = Annotated[
    str | None,
    Header(
        alias="X-Closeloop-Role",
        max_length=16,
        description="The caller's role (the gateway sets it from the API key).",
    ),
]
TeamHeader = Annotated[
    str | None,
    Header(
        alias="X-Closeloop-Team",
        max_length=128,
        description="The agent's or lead's team, an owner id (set by the gateway).",
    ),
]


def _access(role: str | None, team: str | None, *, channel: Access | None) -> Access:
    """The access of ``role``/``team``; a channel gets ``channel`` or, if None, a 403."""
    if role is None:
        return UNRESTRICTED
    try:
        known = Role(role)
    except ValueError:
        raise _refuse(f"Unknown role {role!r}.") from None
    if known is Role.CHANNEL:
        if channel is None:
            raise _refuse("A channel key posts feedback; it has no access to alerts.")
        return channel
    if known is Role.ADMIN:
        return Access(role=known, team=None)
    if not team:
        raise _refuse(f"A {known.value} needs a team.")
    return Access(role=known, team=team)


def caller_access(role: RoleHeader = None, team: TeamHeader = None) -> Access:
    """A FastAPI dependency: the caller's access, or 403 for anything not understood."""
    return _access(role, team, channel=None)


# A channel system reporting a reply's delivery: it sends replies for every team's alerts,
# so no team limits it, and the route answers it with the reply's state alone.
CHANNEL_REPORTER = Access(role=Role.CHANNEL, team=None)


def reply_reporter(role: RoleHeader = None, team: TeamHeader = None) -> Access:
    """A FastAPI dependency for ``POST /v1/alerts/{id}/customer-reply``: what
    :func:`caller_access` allows, and a channel system too."""
    return _access(role, team, channel=CHANNEL_REPORTER)


def admin_only(access: Annotated[Access, Depends(caller_access)]) -> Access:
    """A FastAPI dependency for admin operations (owners, routing, data deletion)."""
    if access.role not in (None, Role.ADMIN):
        raise _refuse("Only an admin may do this.")
    return access


CallerAccess = Annotated[Access, Depends(caller_access)]
AdminAccess = Annotated[Access, Depends(admin_only)]
ReporterAccess = Annotated[Access, Depends(reply_reporter)]


def hidden(kind: str, item_id: uuid.UUID) -> JSONResponse:
    """The 404 of an unknown id, marked for the gateway's audit as a scope refusal."""
    response = problem(404, f"{kind}_not_found", f"No {kind} with id {item_id}.", id=str(item_id))
    response.headers[DENIAL_HEADER] = TEAM_SCOPE
    return response


def forbidden(detail: str) -> JSONResponse:
    response = problem(403, "forbidden", detail)
    response.headers[DENIAL_HEADER] = ROLE
    return response
