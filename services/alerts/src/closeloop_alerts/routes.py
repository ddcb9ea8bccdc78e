"""The support API: list, inspect, acknowledge and resolve alerts; look up feedback.

The gateway forwards these paths unchanged and names the caller in
``X-Closeloop-Actor``; that name is what the audit trail records. ``X-Closeloop-Role`` and
``X-Closeloop-Team`` limit an agent or lead to their team's alerts (see ``access.py``).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import JSONResponse, Response
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import kpis, repository, service
from closeloop_alerts.access import (
    AdminAccess,
    CallerAccess,
    ReporterAccess,
    Role,
    forbidden,
    hidden,
)
from closeloop_alerts.alert_filters import ListFilters
from closeloop_alerts.models import OwnerRecord, TargetHealth
from closeloop_alerts.outbound import Allowlist, BlockedURL, UnresolvableHost, check_url
from closeloop_alerts.owners import OwnerConflict, OwnerStore
from closeloop_alerts.routing import EmailTarget, Owner, Router, format_errors
from closeloop_alerts.schemas import (
    AlertDetailOut,
    AlertEventOut,
    AlertOut,
    AlertPage,
    AssignIn,
    CommentIn,
    CustomerReplyReceiptOut,
    CustomerReplyStatusIn,
    DeliveryOut,
    DryRunIn,
    DryRunOut,
    DryRunSla,
    EscalateIn,
    FeedbackDetailOut,
    FeedbackOut,
    JoinedItemOut,
    KpiGroup,
    KpiReport,
    OwnerList,
    OwnerOut,
    ReopenIn,
    ResolveIn,
    RuleCheckOut,
    SentimentOut,
    TargetOut,
    WorkingHoursOut,
    refuse_nul,
)
from closeloop_alerts.sla import deadlines
from closeloop_shared.contracts.alerts import AlertPriority, AlertStatus
from closeloop_shared.contracts.feedback import identify
from closeloop_shared.contracts.sentiment import ScoredFeedback, Sentiment
from closeloop_shared.http.observability import problem

MAX_PAGE = 200
MAX_KPI_DAYS = 366


@dataclass(frozen=True)
class ApiContext:
    """What the routes need from the app's lifespan (set on ``app.state.api``)."""

    sessionmaker: async_sessionmaker[AsyncSession]
    wake_outbox: Callable[[], None]
    lifecycle: service.Lifecycle
    owners: OwnerStore
    # When set, the owners API refuses notify URLs the SSRF guard would block at delivery
    # (deliveries check them again each time: DNS answers change).
    outbound_allowlist: Allowlist | None = None


def _context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.api
    return context


Context = Annotated[ApiContext, Depends(_context)]
Actor = Annotated[
    str | None,
    Header(
        alias="X-Closeloop-Actor",
        max_length=256,
        description="Who acts (the gateway sets the API key name); recorded in the audit trail.",
    ),
]

OwnerId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$", description="The owner id.")
]

router = APIRouter(prefix="/v1", tags=["alerts"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    404: {"description": "Unknown id (JSON error)"},
    422: {"description": "Invalid id or body (JSON error)"},
}


def _not_found(kind: str, item_id: uuid.UUID) -> JSONResponse:
    return problem(404, f"{kind}_not_found", f"No {kind} with id {item_id}.", id=str(item_id))


@router.get("/alerts", response_model=AlertPage)
async def list_alerts(
    context: Context,
    access: CallerAccess,
    filters: ListFilters,
    status: Annotated[
        list[AlertStatus] | None,
        Query(description="Repeat for any of several (status=open&status=acknowledged)."),
    ] = None,
    # An owner id's own pattern: anything else (a NUL byte above all) is a 422, not a query.
    owner: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")] = None,
    priority: AlertPriority | None = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> AlertPage | JSONResponse:
    """Alerts, newest first; follow ``next_cursor`` for older pages. Every filter is
    applied in the database (see ``alert_filters.py``), so pages are exact."""
    try:
        position = repository.Cursor.decode(cursor) if cursor else None
    except repository.InvalidCursor as error:
        return problem(422, "invalid_cursor", str(error))
    async with context.sessionmaker() as session:
        rows, next_cursor = await repository.list_alerts(
            session,
            status=[value.value for value in status] if status else None,
            owner=owner,
            priority=priority.value if priority else None,
            limit=limit,
            cursor=position,
            visible=access.alert_filter(),
            filters=filters,
        )
    return AlertPage(
        items=[AlertOut.of(alert, channel) for alert, channel in rows],
        next_cursor=next_cursor.encode() if next_cursor else None,
    )


@router.get("/alerts/{alert_id}", response_model=AlertDetailOut, responses=_ERRORS)
async def get_alert(
    alert_id: uuid.UUID, context: Context, access: CallerAccess
) -> AlertDetailOut | JSONResponse:
    """One alert with its feedback, sentiment, deliveries (and their attempts) and history."""
    async with context.sessionmaker() as session:
        detail = await repository.get_alert_detail(session, alert_id)
    if detail is None:
        return _not_found("alert", alert_id)
    if not access.sees(detail.alert.owner_id, detail.alert.escalated_to):
        return hidden("alert", alert_id)
    summary = AlertOut.of(detail.alert, detail.feedback.channel)
    return AlertDetailOut(
        **summary.model_dump(),
        feedback=FeedbackOut.of(detail.feedback),
        sentiment=SentimentOut.of(detail.score),
        deliveries=[DeliveryOut.of(d, detail.attempts[d.id]) for d in detail.deliveries],
        history=[AlertEventOut.of(event) for event in detail.history],
        items=[JoinedItemOut.of(item, feedback) for item, feedback in detail.items],
    )


def answer(result: service.Result, alert_id: uuid.UUID) -> AlertOut | JSONResponse:
    if isinstance(result, service.NotFound):
        return _not_found("alert", alert_id)
    if isinstance(result, service.Hidden):
        return hidden("alert", alert_id)
    if isinstance(result, service.Conflict):
        allowed = " or ".join(sorted(status.value for status in result.allowed))
        return problem(
            409,
            "invalid_transition",
            f"Cannot {result.verb} an alert that is {result.status.value}; "
            f"only {allowed} alerts can be.",
            current_status=result.status.value,
        )
    if isinstance(result, service.Invalid):
        return problem(422, result.code, result.detail)
    return AlertOut.of(result.alert, result.channel)


_CHANGE_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    409: {"description": "The alert's state does not allow this (JSON error)"},
}


@router.post("/alerts/{alert_id}/acknowledge", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def acknowledge_alert(
    alert_id: uuid.UUID, context: Context, access: CallerAccess, actor: Actor = None
) -> AlertOut | JSONResponse:
    """open → acknowledged."""
    result = await context.lifecycle.transition(
        alert_id, service.ACKNOWLEDGE, actor=actor, team=access.team
    )
    return answer(result, alert_id)


@router.post("/alerts/{alert_id}/resolve", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def resolve_alert(
    alert_id: uuid.UUID,
    body: ResolveIn,
    context: Context,
    access: CallerAccess,
    actor: Actor = None,
) -> AlertOut | JSONResponse:
    """open or acknowledged → resolved, with a required note, an optional root cause and an
    optional reply to the customer (published for the channel system to deliver)."""
    result = await context.lifecycle.resolve(
        alert_id,
        actor=actor,
        note=body.note,
        root_cause=body.root_cause,
        customer_reply=body.customer_reply,
        team=access.team,
    )
    return answer(result, alert_id)


@router.post("/alerts/{alert_id}/reopen", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def reopen_alert(
    alert_id: uuid.UUID, body: ReopenIn, context: Context, access: CallerAccess, actor: Actor = None
) -> AlertOut | JSONResponse:
    """resolved → open again (fresh SLA clocks), with a required note."""
    result = await context.lifecycle.reopen(alert_id, actor=actor, note=body.note, team=access.team)
    return answer(result, alert_id)


@router.post("/alerts/{alert_id}/assign", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def assign_alert(
    alert_id: uuid.UUID, body: AssignIn, context: Context, access: CallerAccess, actor: Actor = None
) -> AlertOut | JSONResponse:
    """Assign to a person and/or hand over to another owner (who is notified)."""
    if not access.may_assign_to(body.owner):
        return forbidden("Agents do not assign; a lead assigns within the team.")
    result = await context.lifecycle.assign(
        alert_id,
        actor=actor,
        assignee=body.assignee,
        owner_id=body.owner,
        note=body.note,
        team=access.team,
    )
    return answer(result, alert_id)


@router.post("/alerts/{alert_id}/comments", response_model=AlertOut, responses=_ERRORS)
async def comment_alert(
    alert_id: uuid.UUID,
    body: CommentIn,
    context: Context,
    access: CallerAccess,
    actor: Actor = None,
) -> AlertOut | JSONResponse:
    """Add a comment to the alert's history (any state)."""
    result = await context.lifecycle.comment(
        alert_id, actor=actor, text=body.text, team=access.team
    )
    return answer(result, alert_id)


@router.post("/alerts/{alert_id}/escalate", response_model=AlertOut, responses=_CHANGE_ERRORS)
async def escalate_alert(
    alert_id: uuid.UUID,
    body: EscalateIn,
    context: Context,
    access: CallerAccess,
    actor: Actor = None,
) -> AlertOut | JSONResponse:
    """Escalate now: to ``to_owner`` or up the escalation chain (who is notified)."""
    result = await context.lifecycle.escalate(
        alert_id, actor=actor, note=body.note, to_owner=body.to_owner, team=access.team
    )
    return answer(result, alert_id)


@router.post(
    "/alerts/{alert_id}/customer-reply",
    response_model=AlertOut | CustomerReplyReceiptOut,
    responses=_ERRORS,
)
async def report_customer_reply(
    alert_id: uuid.UUID,
    body: CustomerReplyStatusIn,
    context: Context,
    access: ReporterAccess,
    actor: Actor = None,
) -> AlertOut | CustomerReplyReceiptOut | JSONResponse:
    """For channel systems: report whether the reply reached the customer (sent / failed).

    A channel key (role ``channel``) may report on any alert's reply but reads no alert:
    it gets the reply's state only. Agents and leads report on their team's alerts and,
    like everyone else, get the alert."""
    result = await context.lifecycle.record_customer_reply(
        alert_id, actor=actor, status=body.status, detail=body.detail, team=access.team
    )
    if access.role is Role.CHANNEL and isinstance(result, service.Changed):
        return CustomerReplyReceiptOut.of(result.alert)
    return answer(result, alert_id)


@router.get(
    "/feedback/{feedback_id}",
    response_model=FeedbackDetailOut,
    responses=_ERRORS,
    tags=["feedback"],
)
async def get_feedback(
    feedback_id: uuid.UUID, context: Context, access: CallerAccess
) -> FeedbackDetailOut | JSONResponse:
    """A stored feedback item with its latest sentiment score and its alert, if any. An
    agent or lead sees only items whose alert is their team's."""
    async with context.sessionmaker() as session:
        detail = await repository.get_feedback_detail(session, feedback_id)
    if detail is None:
        return _not_found("feedback", feedback_id)
    if access.scoped and (
        detail.alert is None or not access.sees(detail.alert.owner_id, detail.alert.escalated_to)
    ):
        return hidden("feedback", feedback_id)
    feedback = FeedbackOut.of(detail.feedback)
    return FeedbackDetailOut(
        **feedback.model_dump(),
        sentiment=SentimentOut.of(detail.score) if detail.score else None,
        alert=AlertOut.of(detail.alert, detail.feedback.channel) if detail.alert else None,
    )


# --- owners (admin) ---------------------------------------------------------------------------

admin = APIRouter(prefix="/v1", tags=["owners"])


def _owner_out(
    owner: Owner,
    record: OwnerRecord | None,
    health: dict[tuple[str, str], TargetHealth],
) -> OwnerOut:
    targets = []
    for key, target in owner.targets():
        state = health.get((owner.id, key))
        url = getattr(target, "url", None)
        targets.append(
            TargetOut(
                key=key,
                type=target.type,
                host=None if isinstance(target, EmailTarget) else urlsplit(str(url)).hostname,
                to=list(target.to) if isinstance(target, EmailTarget) else None,
                signed=getattr(target, "secret", None) is not None,
                healthy=state is None or state.unhealthy_since is None,
                consecutive_failures=state.consecutive_failures if state else 0,
                unhealthy_since=state.unhealthy_since if state else None,
            )
        )
    hours = owner.working_hours
    return OwnerOut(
        id=owner.id,
        name=owner.name,
        timezone=owner.timezone,
        working_hours=WorkingHoursOut(
            days=list(hours.days),
            start=hours.start.strftime("%H:%M"),
            end=hours.end.strftime("%H:%M"),
        )
        if hours
        else None,
        escalation_owner=owner.escalation_owner,
        redact_pii=owner.redact_pii,
        managed_by=record.managed_by if record else "file",
        targets=targets,
        updated_at=record.updated_at if record else None,
    )


async def _health(context: ApiContext) -> dict[tuple[str, str], TargetHealth]:
    async with context.sessionmaker() as session:
        rows = await repository.target_health(session)
    return {(row.owner_id, row.target_key): row for row in rows}


@admin.get("/owners", response_model=OwnerList)
async def list_owners(context: Context) -> OwnerList:
    """Every owner in use (file and admin API), without credentials, with target health."""
    records = await context.owners.records()
    health = await _health(context)
    owners = sorted(context.owners.state.router.owners, key=lambda owner: owner.id)
    return OwnerList(items=[_owner_out(o, records.get(o.id), health) for o in owners])


@admin.get("/owners/{owner_id}", response_model=OwnerOut, responses=_ERRORS)
async def get_owner(owner_id: OwnerId, context: Context) -> OwnerOut | JSONResponse:
    owner = context.owners.state.router.owner(owner_id)
    if owner is None:
        return problem(404, "owner_not_found", f"No owner with id {owner_id}.", id=owner_id)
    records = await context.owners.records()
    return _owner_out(owner, records.get(owner_id), await _health(context))


@admin.put(
    "/owners/{owner_id}",
    response_model=OwnerOut,
    responses={**_ERRORS, 409: {"description": "Refers to an unknown owner (JSON error)"}},
)
async def put_owner(
    owner_id: OwnerId, body: dict[str, Any], context: Context, _admin: AdminAccess
) -> OwnerOut | JSONResponse:
    """Create or replace an owner: the routing file's owner mapping (``notify``,
    ``timezone``, ``working_hours``, ``escalation_owner``). Takes effect at once here and
    within ``routing_reload_interval_s`` on other replicas."""
    try:
        refuse_nul(body)
    except ValueError as error:
        return problem(422, "invalid_owner", str(error))
    if body.get("id", owner_id) != owner_id:
        return problem(422, "invalid_request", "The body's id differs from the path's.")
    try:
        owner = Owner.model_validate({**body, "id": owner_id})
    except ValidationError as error:
        return problem(
            422,
            "invalid_owner",
            "The owner is not valid.",
            problems=format_errors(error),
        )
    if context.outbound_allowlist is not None:
        blocked = await _blocked_targets(owner, context.outbound_allowlist)
        if blocked:
            return problem(
                422,
                "invalid_owner",
                "A notify target's URL points where deliveries may not go.",
                problems=blocked,
            )
    try:
        created = await context.owners.put(owner)
    except OwnerConflict as error:
        return problem(409, "owner_conflict", str(error))
    records = await context.owners.records()
    answer = _owner_out(owner, records.get(owner_id), await _health(context))
    return JSONResponse(answer.model_dump(mode="json"), status_code=201 if created else 200)


async def _blocked_targets(owner: Owner, allowlist: Allowlist) -> list[dict[str, str]]:
    """The targets whose URL the SSRF guard refuses (a name that does not resolve yet is
    let through: it is checked again at every delivery)."""
    blocked = []
    for key, target in owner.targets():
        if isinstance(target, EmailTarget):
            continue
        try:
            await check_url(str(target.url), allowlist)
        except UnresolvableHost:
            continue
        except BlockedURL as error:
            blocked.append({"target": key, "detail": str(error)})
    return blocked


@admin.delete(
    "/owners/{owner_id}",
    status_code=204,
    responses={**_ERRORS, 409: {"description": "The owner is still referred to (JSON error)"}},
)
async def delete_owner(owner_id: OwnerId, context: Context, _admin: AdminAccess) -> Response:
    """Remove an owner the admin API created and nothing refers to."""
    try:
        found = await context.owners.delete(owner_id)
    except OwnerConflict as error:
        return problem(409, "owner_conflict", str(error))
    if not found:
        return problem(404, "owner_not_found", f"No owner with id {owner_id}.", id=owner_id)
    return Response(status_code=204)


@admin.post("/routing/dry-run", response_model=DryRunOut, tags=["routing"])
async def dry_run(body: DryRunIn, context: Context) -> DryRunOut:
    """Which rule would match this item, which owner, priority and SLA, and why."""
    return dry_run_answer(context.owners.state.router, body, context.lifecycle.clock())


def dry_run_answer(router: Router, body: DryRunIn, now: datetime) -> DryRunOut:
    """The dry run of one item against ``router`` (also used by ``check-routing --samples``)."""
    feedback = identify(body.feedback, now)
    sentiment = Sentiment(
        **body.sentiment.model_dump(), model="dry-run", model_version="0", scored_at=now
    )
    explanation = router.explain(ScoredFeedback(feedback=feedback, sentiment=sentiment))
    decision = explanation.decision
    sla = None
    escalation = None
    if decision is not None:
        ack_due, resolve_due = deadlines(now, decision.sla, decision.owner)
        sla = DryRunSla(
            acknowledge_s=decision.sla.acknowledge,
            resolve_s=decision.sla.resolve,
            acknowledge_due_at=ack_due,
            resolve_due_at=resolve_due,
        )
        escalation = decision.owner.escalation_owner
    return DryRunOut(
        alert=decision is not None,
        rule_id=decision.rule_id if decision else None,
        owner=decision.owner.id if decision else None,
        priority=decision.priority if decision else None,
        escalation_owner=escalation,
        sla=sla,
        reason=explanation.reason,
        evaluation=router.config.evaluation,
        rules=[
            RuleCheckOut(rule_id=check.rule_id, matched=check.matched, failed=check.failed)
            for check in explanation.checks
        ],
    )


@admin.get("/kpis", response_model=KpiReport, tags=["kpis"], responses=_ERRORS)
async def get_kpis(
    context: Context,
    access: CallerAccess,
    start: Annotated[datetime | None, Query(alias="from")] = None,
    end: Annotated[datetime | None, Query(alias="to")] = None,
    group_by: kpis.GroupBy = "channel",
) -> KpiReport | JSONResponse:
    """Volume, sentiment mix, NPS, CSAT, CES, alerts, MTTA, MTTR and SLA compliance over
    ``[from, to)`` (default: the last 7 days), one row per group. An agent or lead gets
    their team's: the items that raised or joined its alerts, and those alerts."""
    end = end or context.lifecycle.clock()
    start = start or end - timedelta(days=7)
    if start.tzinfo is None or end.tzinfo is None:
        return problem(422, "invalid_request", "from and to need a time zone (e.g. Z).")
    if not start < end or end - start > timedelta(days=MAX_KPI_DAYS):
        return problem(
            422,
            "invalid_range",
            f"from must be before to, at most {MAX_KPI_DAYS} days apart.",
        )
    async with context.sessionmaker() as session:
        items, alerts = await kpis.load(session, start, end)
    if access.scoped:
        # The same rule as the inbox and the feedback list: owned by or escalated to the team.
        items = [i for i in items if i.owner is not None and access.sees(i.owner, i.escalated_to)]
        alerts = [a for a in alerts if access.sees(a.owner, a.escalated_to)]
    rows = kpis.aggregate(items, alerts, group_by)
    return KpiReport(
        start=start,
        end=end,
        group_by=group_by,
        groups=[KpiGroup.model_validate(row) for row in rows],
        total=KpiGroup.model_validate(_total(items, alerts)),
    )


def _total(items: list[kpis.ItemFacts], alerts: list[kpis.AlertFacts]) -> dict[str, Any]:
    """Everything as one group (an item counts once, whatever its topics)."""
    flat_items = [
        kpis.ItemFacts("all", None, None, (), None, i.label, i.rating_type, i.rating_value)
        for i in items
    ]
    flat_alerts = [
        kpis.AlertFacts(
            "all",
            None,
            None,
            (),
            a.owner,
            a.created_at,
            a.acknowledged_at,
            a.resolved_at,
            a.has_sla,
            a.breached,
        )
        for a in alerts
    ]
    rows = kpis.aggregate(flat_items, flat_alerts, "channel")
    return rows[0] if rows else kpis.Group("all").report()
