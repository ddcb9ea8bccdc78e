"""KPIs over a time range, grouped by channel, touchpoint, journey stage, topic or owner
(or by journey stage × touchpoint, keyed ``<stage>|<touchpoint>``, for a heat map).

Feedback measures count the items that **occurred** in the range (their latest score);
alert measures count the alerts **raised** in the range. An item with several topics
counts once under each of them; an item without a value for the dimension is grouped
under ``(none)``. For ``owner``, an item belongs to the owner of the alert it raised or
joined.

* volume: items; sentiment: negative / neutral / positive counts;
* NPS: % promoters (9-10) − % detractors (0-6) over NPS ratings, −100..100;
* CSAT: % of CSAT ratings that are 4 or 5 (of 5); CES: mean CES rating (1-7);
* alerts, MTTA / MTTR (mean seconds from raise to acknowledgement / resolution, of the
  alerts that got there), SLA compliance (share of alerts with an SLA that breached
  neither clock).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import select, union_all
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.ext.asyncio import AsyncSession

from closeloop_alerts.models import Alert, AlertItem, Feedback, SentimentScore
from closeloop_alerts.rescores import live_first

GroupBy = Literal[
    "channel", "touchpoint", "journey_stage", "topic", "owner", "journey_stage_touchpoint"
]
NONE = "(none)"


@dataclass(frozen=True)
class ItemFacts:
    channel: str
    touchpoint: str | None
    journey_stage: str | None
    topics: tuple[str, ...]
    owner: str | None
    label: str | None
    rating_type: str | None
    rating_value: float | None
    # Team scope (an agent or lead sees an item through its alert: owned or escalated to).
    escalated_to: str | None = None


@dataclass(frozen=True)
class AlertFacts:
    channel: str
    touchpoint: str | None
    journey_stage: str | None
    topics: tuple[str, ...]
    owner: str
    created_at: datetime
    acknowledged_at: datetime | None
    resolved_at: datetime | None
    has_sla: bool
    breached: bool
    escalated_to: str | None = None


@dataclass
class Group:
    key: str
    volume: int = 0
    sentiment: dict[str, int] = field(
        default_factory=lambda: {"negative": 0, "neutral": 0, "positive": 0}
    )
    nps_scores: list[float] = field(default_factory=list)
    csat_scores: list[float] = field(default_factory=list)
    ces_scores: list[float] = field(default_factory=list)
    alerts: int = 0
    ack_seconds: list[float] = field(default_factory=list)
    resolve_seconds: list[float] = field(default_factory=list)
    with_sla: int = 0
    compliant: int = 0

    def report(self) -> dict[str, Any]:
        nps = None
        if self.nps_scores:
            promoters = sum(1 for s in self.nps_scores if s >= 9)
            detractors = sum(1 for s in self.nps_scores if s <= 6)
            nps = round(100.0 * (promoters - detractors) / len(self.nps_scores), 2)
        csat = None
        if self.csat_scores:
            csat = round(
                100.0 * sum(1 for s in self.csat_scores if s >= 4) / len(self.csat_scores), 2
            )
        return {
            "key": self.key,
            "volume": self.volume,
            "sentiment": dict(self.sentiment),
            "negative_share": round(self.sentiment["negative"] / self.volume, 4)
            if self.volume
            else None,
            "nps": nps,
            "nps_responses": len(self.nps_scores),
            "csat": csat,
            "csat_responses": len(self.csat_scores),
            "ces": round(sum(self.ces_scores) / len(self.ces_scores), 3)
            if self.ces_scores
            else None,
            "ces_responses": len(self.ces_scores),
            "alerts": self.alerts,
            "mtta_s": _mean(self.ack_seconds),
            "mttr_s": _mean(self.resolve_seconds),
            "sla_compliance": round(self.compliant / self.with_sla, 4) if self.with_sla else None,
        }


def _mean(values: list[float]) -> float | None:
    return round(sum(values) / len(values), 3) if values else None


def _keys(facts: ItemFacts | AlertFacts, group_by: GroupBy) -> Iterable[str]:
    if group_by == "topic":
        return facts.topics or (NONE,)
    if group_by == "journey_stage_touchpoint":
        # The cells of a stage × touchpoint heat map; stages are slugs, so "|" splits it.
        return (f"{facts.journey_stage or NONE}|{facts.touchpoint or NONE}",)
    value = getattr(facts, group_by)
    return (value or NONE,)


def aggregate(
    items: Iterable[ItemFacts], alerts: Iterable[AlertFacts], group_by: GroupBy
) -> list[dict[str, Any]]:
    """Pure: the KPI rows, one per group, sorted by key."""
    groups: dict[str, Group] = {}

    def group(key: str) -> Group:
        found = groups.get(key)
        if found is None:
            found = groups[key] = Group(key)
        return found

    for item in items:
        for key in _keys(item, group_by):
            target = group(key)
            target.volume += 1
            if item.label in target.sentiment:
                target.sentiment[item.label] += 1
            if item.rating_value is not None:
                scores = {
                    "nps": target.nps_scores,
                    "csat": target.csat_scores,
                    "ces": target.ces_scores,
                }.get(item.rating_type or "")
                if scores is not None:
                    scores.append(item.rating_value)
    for alert in alerts:
        for key in _keys(alert, group_by):
            target = group(key)
            target.alerts += 1
            if alert.acknowledged_at is not None:
                target.ack_seconds.append(
                    (alert.acknowledged_at - alert.created_at).total_seconds()
                )
            if alert.resolved_at is not None:
                target.resolve_seconds.append(
                    (alert.resolved_at - alert.created_at).total_seconds()
                )
            if alert.has_sla:
                target.with_sla += 1
                target.compliant += 0 if alert.breached else 1
    return [groups[key].report() for key in sorted(groups)]


def totals(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {
        "volume": sum(row["volume"] for row in rows),
        "alerts": sum(row["alerts"] for row in rows),
    }


async def load(
    session: AsyncSession, start: datetime, end: datetime
) -> tuple[list[ItemFacts], list[AlertFacts]]:
    """The facts of the range: items that occurred in it, alerts raised in it."""
    # An erased customer's items keep no content; the feedback list leaves them out too,
    # so every dashboard number still equals the list behind it.
    in_range = (
        Feedback.occurred_at >= start,
        Feedback.occurred_at < end,
        Feedback.erased_at.is_(None),
    )
    latest = (
        select(
            SentimentScore.feedback_id,
            SentimentScore.label,
            SentimentScore.topics,
        )
        # Only the range's scores: DISTINCT ON over every stored score made this query (run
        # every minute for the gauges) take minutes once a few hundred thousand were stored.
        .join(Feedback, Feedback.id == SentimentScore.feedback_id)
        .where(*in_range)
        .ext(distinct_on(SentimentScore.feedback_id))
        # The live score: KPIs describe what the pipeline saw, not a re-score.
        .order_by(SentimentScore.feedback_id, *live_first())
        .subquery()
    )
    membership = union_all(
        select(Alert.feedback_id.label("feedback_id"), Alert.id.label("alert_id")),
        select(AlertItem.feedback_id, AlertItem.alert_id),
    ).subquery()
    rows = await session.execute(
        select(
            Feedback.id,
            Feedback.channel,
            Feedback.touchpoint,
            Feedback.journey_stage,
            Feedback.rating_type,
            Feedback.rating_value,
            latest.c.label,
            latest.c.topics,
            Alert.owner_id,
            Alert.escalated_to,
        )
        .outerjoin(latest, latest.c.feedback_id == Feedback.id)
        .outerjoin(membership, membership.c.feedback_id == Feedback.id)
        .outerjoin(Alert, Alert.id == membership.c.alert_id)
        .where(*in_range)
    )
    seen: set[uuid.UUID] = set()
    items: list[ItemFacts] = []
    for row in rows:
        if row.id in seen:
            continue
        seen.add(row.id)
        items.append(
            ItemFacts(
                channel=row.channel,
                touchpoint=row.touchpoint,
                journey_stage=row.journey_stage,
                topics=tuple(row.topics or ()),
                owner=row.owner_id,
                label=row.label,
                rating_type=row.rating_type,
                rating_value=row.rating_value,
                escalated_to=row.escalated_to,
            )
        )
    # Columns, not ORM entities: building a full Alert object per row was most of this
    # function's time on a day of a few hundred thousand alerts.
    alert_rows = await session.execute(
        select(
            Alert.owner_id,
            Alert.escalated_to,
            Alert.created_at,
            Alert.acknowledged_at,
            Alert.resolved_at,
            Alert.ack_due_at,
            Alert.resolve_due_at,
            Alert.ack_breached_at,
            Alert.resolve_breached_at,
            Feedback.channel,
            Feedback.touchpoint,
            Feedback.journey_stage,
            SentimentScore.topics,
        )
        .join(Feedback, Feedback.id == Alert.feedback_id)
        .join(SentimentScore, SentimentScore.id == Alert.sentiment_score_id)
        .where(Alert.created_at >= start, Alert.created_at < end)
    )
    alerts = [
        AlertFacts(
            channel=row.channel,
            touchpoint=row.touchpoint,
            journey_stage=row.journey_stage,
            topics=tuple(row.topics or ()),
            owner=row.owner_id,
            created_at=row.created_at,
            acknowledged_at=row.acknowledged_at,
            resolved_at=row.resolved_at,
            has_sla=row.ack_due_at is not None or row.resolve_due_at is not None,
            breached=row.ack_breached_at is not None or row.resolve_breached_at is not None,
            escalated_to=row.escalated_to,
        )
        for row in alert_rows
    ]
    return items, alerts
