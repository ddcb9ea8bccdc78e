"""The alert list's filters on the item and its score: channel, topic, touchpoint, journey
stage, SLA state and creation time (``GET /v1/alerts``).

Applied in SQL with the status, owner and priority filters, so a page is exact over all
alerts and the cursor pages through exactly the matching ones. ``(none)`` asks for alerts
whose item has no value (no topic, no touchpoint, no stage): it is how the KPI groups name
"no value", and the console's dashboard links carry it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy import ColumnElement, and_, func, or_

from closeloop_alerts.models import Alert, Feedback, SentimentScore
from closeloop_shared.contracts.feedback import Channel, JourneyStage

NONE_VALUE = "(none)"
# An SLA clock is "at risk" when this share of its window is left (the console's amber).
AT_RISK_SHARE = 0.25
# Free-form values of the item (topics, touchpoints): bounded, no control characters.
VALUE_PATTERN = r"^[^\x00-\x1f\x7f]{1,128}$"


class SlaState(StrEnum):
    """Where the running SLA clock of an alert stands (an unresolved alert's clock is the
    acknowledge clock while open, the resolve clock once acknowledged)."""

    OK = "ok"  # running, more than AT_RISK_SHARE of its window left
    AT_RISK = "at_risk"  # running, at most AT_RISK_SHARE left
    BREACHED = "breached"  # a clock breached (resolved alerts too) or the running one is due


@dataclass(frozen=True, slots=True)
class AlertFilters:
    channel: Channel | None = None
    topic: str | None = None
    touchpoint: str | None = None
    journey_stage: str | None = None
    sla: SlaState | None = None
    created_from: datetime | None = None
    created_to: datetime | None = None
    # The moment SLA states are judged at (the service's clock).
    now: datetime | None = None

    @property
    def needs_score(self) -> bool:
        return self.topic is not None

    def conditions(self) -> list[ColumnElement[bool]]:
        """SQL conditions on ``Alert``, its ``Feedback`` and its ``SentimentScore``."""
        found: list[ColumnElement[bool]] = []
        if self.channel is not None:
            found.append(Feedback.channel == self.channel.value)
        if self.topic == NONE_VALUE:
            found.append(func.jsonb_array_length(SentimentScore.topics) == 0)
        elif self.topic is not None:
            found.append(SentimentScore.topics.contains([self.topic]))
        found.extend(place_conditions(self.touchpoint, self.journey_stage))
        if self.created_from is not None:
            found.append(Alert.created_at >= self.created_from)
        if self.created_to is not None:
            found.append(Alert.created_at < self.created_to)
        if self.sla is not None:
            found.append(sla_condition(self.sla, self.now or datetime.now(UTC)))
        return found


def place_conditions(
    touchpoint: str | None, journey_stage: str | None
) -> list[ColumnElement[bool]]:
    """Conditions on the item's touchpoint and journey stage (``(none)``: not given)."""
    found: list[ColumnElement[bool]] = []
    for column, wanted in (
        (Feedback.touchpoint, touchpoint),
        (Feedback.journey_stage, journey_stage),
    ):
        if wanted == NONE_VALUE:
            found.append(column.is_(None))
        elif wanted is not None:
            found.append(column == wanted)
    return found


def check_range(start: datetime | None, end: datetime | None) -> None:
    """The ``from``/``to`` query pair: time zones given, ``from`` before ``to`` (422)."""
    for name, moment in (("from", start), ("to", end)):
        if moment is not None and moment.tzinfo is None:
            raise invalid_query(name, "needs a time zone (e.g. Z)")
    if start and end and start >= end:
        raise invalid_query("to", "must be after from")


def _seconds(interval: ColumnElement[Any]) -> ColumnElement[Any]:
    return func.extract("epoch", interval)


def sla_condition(state: SlaState, now: datetime) -> ColumnElement[bool]:
    """Alerts whose SLA is in ``state`` at ``now`` (as the console's badge shows it)."""
    breached_mark = or_(Alert.ack_breached_at.is_not(None), Alert.resolve_breached_at.is_not(None))
    unresolved = Alert.status != "resolved"
    # Each running clock, its due time and its window (from the alert's creation).
    clocks = (
        (Alert.status == "open", Alert.ack_due_at),
        (Alert.status == "acknowledged", Alert.resolve_due_at),
    )
    due_passed = or_(*(and_(running, due <= now) for running, due in clocks))
    if state is SlaState.BREACHED:
        return or_(breached_mark, and_(unresolved, due_passed))
    at_risk = or_(
        *(
            and_(
                running,
                due > now,
                # left <= share × window, i.e. due - now <= share × (due - created)
                _seconds(due - now) <= _seconds(due - Alert.created_at) * AT_RISK_SHARE,
            )
            for running, due in clocks
        )
    )
    running_in_time = or_(*(and_(running, due > now) for running, due in clocks))
    in_time = and_(unresolved, ~breached_mark, running_in_time)
    if state is SlaState.AT_RISK:
        return and_(in_time, at_risk)
    return and_(in_time, ~at_risk)


STAGE_PATTERN = "^(" + "|".join([*(stage.value for stage in JourneyStage), r"\(none\)"]) + ")$"


def invalid_query(name: str, message: str) -> RequestValidationError:
    # The shape FastAPI gives any other bad query value: 422 invalid_request.
    return RequestValidationError(
        [{"loc": ["query", name], "msg": message, "type": "value_error", "input": None}]
    )


def alert_filters(
    request: Request,
    channel: Annotated[Channel | None, Query(description="The item's channel.")] = None,
    topic: Annotated[
        str | None,
        Query(
            pattern=VALUE_PATTERN, description="A topic of the item's score; `(none)`: no topic."
        ),
    ] = None,
    touchpoint: Annotated[
        str | None,
        Query(pattern=VALUE_PATTERN, description="The item's touchpoint; `(none)`: none given."),
    ] = None,
    journey_stage: Annotated[
        str | None,
        Query(pattern=STAGE_PATTERN, description="The item's journey stage; `(none)`: none given."),
    ] = None,
    sla: Annotated[
        SlaState | None,
        Query(
            description="ok or at_risk: the running clock has more / at most 25% of its "
            "window left; breached: a clock breached or the running one is due."
        ),
    ] = None,
    created_from: Annotated[
        datetime | None,
        Query(alias="from", description="Created at or after (ISO 8601 with a time zone)."),
    ] = None,
    created_to: Annotated[
        datetime | None, Query(alias="to", description="Created before (ISO 8601, time zone).")
    ] = None,
) -> AlertFilters:
    """A FastAPI dependency: the list's item filters, validated (422 otherwise)."""
    check_range(created_from, created_to)
    context = getattr(request.app.state, "api", None)
    return AlertFilters(
        channel=channel,
        topic=topic,
        touchpoint=touchpoint,
        journey_stage=journey_stage,
        sla=sla,
        created_from=created_from,
        created_to=created_to,
        # SLA states are judged by the service's clock, as the SLA scanner judges them.
        now=context.lifecycle.clock() if context is not None else None,
    )


ListFilters = Annotated[AlertFilters, Depends(alert_filters)]
