"""KPIs on a fixture set whose expected values are computed by hand (in the comments)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import kpis
from closeloop_alerts.models import Alert
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import ACKNOWLEDGE, AlertIntake, Lifecycle
from closeloop_alerts.sla import SlaMonitor
from closeloop_shared.contracts.feedback import Channel, RatingType
from closeloop_shared.contracts.sentiment import ScoredFeedback, SentimentLabel
from tests.alerts.support import scored

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
T0 = datetime(2026, 11, 18, 10, 0, tzinfo=UTC)

ROUTING = """\
owners:
  - id: support
  - id: hotline-team
rules:
  - {id: hotline, when: {channel: hotline}, owner: hotline-team}
default_owner: support
sla:
  medium: {acknowledge: 30m, resolve: 4h}
"""


class Clock:
    now = T0

    def __call__(self) -> datetime:
        return self.now


def item(
    channel: Channel,
    label: SentimentLabel,
    rating: tuple[RatingType, float],
    topics: list[str],
    touchpoint: str | None = None,
) -> ScoredFeedback:
    score = {"negative": -0.7, "neutral": 0.0, "positive": 0.7}[label.value]
    base = scored(channel=channel, label=label, score=score, rating=rating, touchpoint=touchpoint)
    feedback = base.feedback.model_copy(update={"occurred_at": T0})
    sentiment = base.sentiment.model_copy(update={"topics": topics})
    return ScoredFeedback(feedback=feedback, sentiment=sentiment)


@pytest.fixture(scope="module")
async def report_inputs(
    sessionmaker: Sessions,
) -> tuple[list[kpis.ItemFacts], list[kpis.AlertFacts]]:
    clock = Clock()
    state = RoutingState(Router(parse_routing(ROUTING)))
    intake = AlertIntake(sessionmaker, state, clock=clock)
    lifecycle = Lifecycle(sessionmaker, state, clock=clock)
    negative, neutral, positive = (
        SentimentLabel.NEGATIVE,
        SentimentLabel.NEUTRAL,
        SentimentLabel.POSITIVE,
    )
    items = [
        # 1: app detractor (NPS 2), negative → alert A1 (support)
        item(Channel.APP, negative, (RatingType.NPS, 2), ["billing"], "checkout"),
        # 2: app promoter (NPS 10), positive
        item(Channel.APP, positive, (RatingType.NPS, 10), ["billing", "ui"], "checkout"),
        # 3: email CSAT 5, positive
        item(Channel.EMAIL, positive, (RatingType.CSAT, 5), []),
        # 4: email CSAT 2, negative → alert A2 (support)
        item(Channel.EMAIL, negative, (RatingType.CSAT, 2), []),
        # 5: hotline CES 6, negative → alert A3 (hotline-team)
        item(Channel.HOTLINE, negative, (RatingType.CES, 6), ["wait"]),
        # 6: hotline CES 2, neutral
        item(Channel.HOTLINE, neutral, (RatingType.CES, 2), []),
    ]
    await intake.process(items)
    async with sessionmaker() as session:
        ids = {
            alert.feedback_id: alert.id for alert in (await session.scalars(select(Alert))).all()
        }
    a1, a2 = ids[items[0].feedback.id], ids[items[3].feedback.id]
    clock.now = T0 + timedelta(minutes=10)
    await lifecycle.transition(a1, ACKNOWLEDGE, actor="x")  # MTTA 600 s
    clock.now = T0 + timedelta(minutes=30)
    await lifecycle.transition(a2, ACKNOWLEDGE, actor="x")  # MTTA 1800 s, just in time
    clock.now = T0 + timedelta(minutes=40)
    await SlaMonitor(sessionmaker, state, clock=clock).check_once()  # A3 breaches
    clock.now = T0 + timedelta(minutes=70)
    await lifecycle.resolve(a1, actor="x", note="done")  # MTTR 4200 s
    async with sessionmaker() as session:
        return await kpis.load(session, T0 - timedelta(hours=1), T0 + timedelta(days=1))


def by_key(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {row["key"]: row for row in rows}


async def test_kpis_by_channel(
    report_inputs: tuple[list[kpis.ItemFacts], list[kpis.AlertFacts]],
) -> None:
    rows = by_key(kpis.aggregate(*report_inputs, "channel"))
    assert set(rows) == {"app", "email", "hotline"}
    app, email, hotline = rows["app"], rows["email"], rows["hotline"]
    # app: one promoter, one detractor of two → NPS 50 − 50 = 0.
    assert (app["volume"], app["sentiment"]) == (2, {"negative": 1, "neutral": 0, "positive": 1})
    assert (app["nps"], app["nps_responses"], app["csat"], app["ces"]) == (0.0, 2, None, None)
    assert (app["alerts"], app["mtta_s"], app["mttr_s"], app["sla_compliance"]) == (
        1,
        600.0,
        4200.0,
        1.0,
    )
    assert app["negative_share"] == 0.5
    # email: CSAT 5 and 2 → one of two satisfied = 50 %.
    assert (email["csat"], email["csat_responses"], email["nps"]) == (50.0, 2, None)
    assert (email["alerts"], email["mtta_s"], email["mttr_s"], email["sla_compliance"]) == (
        1,
        1800.0,
        None,
        1.0,
    )
    # hotline: CES (6 + 2) / 2 = 4; its alert was never acknowledged and breached.
    assert (hotline["ces"], hotline["ces_responses"]) == (4.0, 2)
    assert hotline["sentiment"] == {"negative": 1, "neutral": 1, "positive": 0}
    assert (hotline["alerts"], hotline["mtta_s"], hotline["sla_compliance"]) == (1, None, 0.0)


async def test_kpis_by_topic_and_owner(
    report_inputs: tuple[list[kpis.ItemFacts], list[kpis.AlertFacts]],
) -> None:
    topics = by_key(kpis.aggregate(*report_inputs, "topic"))
    # Item 2 has two topics and counts under both; items without topics under (none).
    assert {key: (row["volume"], row["alerts"]) for key, row in topics.items()} == {
        "(none)": (3, 1),
        "billing": (2, 1),
        "ui": (1, 0),
        "wait": (1, 1),
    }
    owners = by_key(kpis.aggregate(*report_inputs, "owner"))
    assert {key: (row["volume"], row["alerts"]) for key, row in owners.items()} == {
        "(none)": (3, 0),
        "hotline-team": (1, 1),
        "support": (2, 2),
    }
    # MTTA of support: (600 + 1800) / 2 = 1200 s.
    assert owners["support"]["mtta_s"] == 1200.0
    touchpoints = by_key(kpis.aggregate(*report_inputs, "touchpoint"))
    assert touchpoints["checkout"]["volume"] == 2


async def test_an_empty_range_has_no_groups(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        items, alerts = await kpis.load(session, T0 - timedelta(days=30), T0 - timedelta(days=29))
    assert kpis.aggregate(items, alerts, "channel") == []


async def test_kpis_by_journey_stage_and_touchpoint_key_the_heat_map_cells(
    report_inputs: tuple[list[kpis.ItemFacts], list[kpis.AlertFacts]],
) -> None:
    cells = by_key(kpis.aggregate(*report_inputs, "journey_stage_touchpoint"))
    # No item names a stage; items 1 and 2 name the checkout touchpoint (one negative).
    assert {key: (row["volume"], row["alerts"]) for key, row in cells.items()} == {
        "(none)|checkout": (2, 1),
        "(none)|(none)": (4, 2),
    }
    assert cells["(none)|checkout"]["negative_share"] == 0.5
