"""What the support console reads (real PostgreSQL): emotions and urgency cues stored with
the score, exact list filters in SQL with pagination, and the customer's other feedback.

The support API is mounted on a bare FastAPI app with the real routes, lifecycle and
database, as in test_access; the service's clock is fixed so SLA states are exact.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts.models import Alert, SentimentScore
from closeloop_alerts.rescores import RescoreIntake
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import AlertIntake
from closeloop_shared.contracts.feedback import Channel, Customer, JourneyStage
from closeloop_shared.contracts.sentiment import (
    RescoredSentiment,
    ScoredFeedback,
    SentimentLabel,
    Urgency,
)
from closeloop_shared.events import SentimentRescoredEvent
from tests.alerts.support import scored, support_api

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)

ROUTING = """\
owners:
  - id: hotline-team
    notify:
      - {type: email, to: hotline@example.com}
  - id: email-team
    notify:
      - {type: email, to: email@example.com}
rules:
  - id: email
    when: {channel: email, sentiment: negative}
    owner: email-team
    priority: high
  - id: negative
    when: {sentiment: negative}
    owner: hotline-team
    priority: high
default_owner: hotline-team
sla:
  high: {acknowledge: 1h, resolve: 8h}
"""

AGENT = {"X-Closeloop-Role": "agent", "X-Closeloop-Team": "hotline-team"}


def enriched(
    *,
    channel: Channel = Channel.HOTLINE,
    text: str = "The agent hung up on me twice.",
    customer: str = "c-1",
    topics: list[str] | None = None,
    label: SentimentLabel = SentimentLabel.NEGATIVE,
    touchpoint: str | None = None,
    journey_stage: JourneyStage | None = None,
    occurred_at: datetime | None = None,
    emotions: dict[str, float] | None = None,
    urgency_cues: list[str] | None = None,
) -> ScoredFeedback:
    item = scored(
        channel=channel,
        text=text,
        label=label,
        score=-0.8 if label is SentimentLabel.NEGATIVE else 0.7,
        touchpoint=touchpoint,
        journey_stage=journey_stage,
    )
    feedback = item.feedback.model_copy(
        update={
            "customer": Customer(id=customer, name="Dana Example"),
            "occurred_at": occurred_at or item.feedback.occurred_at,
        }
    )
    sentiment = item.sentiment.model_copy(
        update={
            "topics": topics or [],
            "emotions": emotions or {},
            "urgency": Urgency.HIGH if urgency_cues else None,
            "urgency_cues": urgency_cues or [],
        }
    )
    return ScoredFeedback(feedback=feedback, sentiment=sentiment)


@pytest.fixture(scope="module")
def state() -> RoutingState:
    return RoutingState(Router(parse_routing(ROUTING)))


@pytest.fixture(scope="module")
async def api(sessionmaker: Sessions, state: RoutingState) -> AsyncIterator[httpx.AsyncClient]:
    async with support_api(
        sessionmaker, state, service="alerts-console-reads-test", clock=lambda: NOW
    ) as client:
        yield client


async def _process(sessionmaker: Sessions, state: RoutingState, *items: ScoredFeedback) -> None:
    await AlertIntake(sessionmaker, state).process(list(items))


async def _alert_of(sessionmaker: Sessions, item: ScoredFeedback) -> Alert:
    async with sessionmaker() as session:
        alert = await session.scalar(
            select(Alert).where(Alert.feedback_id == item.feedback.id, Alert.kind == "item")
        )
    assert alert is not None
    return alert


def ids(page: dict[str, Any]) -> list[str]:
    return [item["id"] for item in page["items"]]


# --- emotions and urgency cues ----------------------------------------------------------------


async def test_emotions_and_urgency_cues_are_stored_and_shown_with_the_alert(
    api: httpx.AsyncClient, sessionmaker: Sessions, state: RoutingState
) -> None:
    item = enriched(
        text="I am furious. Cancel my subscription, this is the third time I call.",
        customer="c-emotions",
        topics=["billing"],
        emotions={"anger": 0.75, "frustration": 0.5},
        urgency_cues=["cancel: cancel my subscription", "repeat_contact: third time i call"],
    )
    await _process(sessionmaker, state, item)
    alert = await _alert_of(sessionmaker, item)

    detail = (await api.get(f"/v1/alerts/{alert.id}")).json()
    sentiment = detail["sentiment"]
    assert sentiment["emotions"] == {"anger": 0.75, "frustration": 0.5}
    assert sentiment["urgency_cues"] == [
        "cancel: cancel my subscription",
        "repeat_contact: third time i call",
    ]
    assert sentiment["urgency"] == "high"
    assert sentiment["topics"] == ["billing"]


async def test_a_rescore_keeps_its_emotions_and_cues_beside_the_live_score(
    sessionmaker: Sessions, state: RoutingState
) -> None:
    item = enriched(customer="c-rescore", emotions={"joy": 0.5})
    await _process(sessionmaker, state, item)
    sentiment = item.sentiment.model_copy(
        update={
            "model_version": "9.9.9",
            "emotions": {"anxiety": 0.5},
            "urgency_cues": ["legal: lawyer"],
        }
    )
    event = SentimentRescoredEvent(
        id=str(uuid.uuid4()),
        source="/closeloop/cli/rescore",
        subject=str(item.feedback.id),
        time=sentiment.scored_at,
        data=RescoredSentiment(feedback_id=item.feedback.id, sentiment=sentiment),
    )
    assert await RescoreIntake(sessionmaker).store([event]) == 1
    async with sessionmaker() as session:
        rows = (
            await session.execute(
                select(SentimentScore.emotions, SentimentScore.urgency_cues)
                .where(SentimentScore.feedback_id == item.feedback.id)
                .order_by(SentimentScore.id)
            )
        ).all()
    assert [tuple(row) for row in rows] == [
        ({"joy": 0.5}, []),
        ({"anxiety": 0.5}, ["legal: lawyer"]),
    ]


# --- list filters in SQL ----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def filtered(sessionmaker: Sessions, state: RoutingState) -> dict[str, Alert]:
    """Alerts made for the filter tests, on a touchpoint no other test uses."""
    items = {
        "hotline_billing": enriched(touchpoint="filters", topics=["billing", "wait_time"]),
        "email_refund": enriched(
            channel=Channel.EMAIL,
            touchpoint="filters",
            topics=["refund"],
            journey_stage=JourneyStage.PURCHASE,
        ),
        "social_none": enriched(channel=Channel.SOCIAL, touchpoint="filters"),
        "app_billing": enriched(channel=Channel.APP, touchpoint="filters", topics=["billing"]),
    }
    for item in items.values():
        await _process(sessionmaker, state, item)
    alerts = {name: await _alert_of(sessionmaker, item) for name, item in items.items()}
    # SLA clocks as of NOW (created an hour ago unless said otherwise):
    clocks: dict[str, dict[str, Any]] = {
        # open, 50 of 60 minutes left: ok
        "hotline_billing": {"status": "open", "ack_due_at": NOW + timedelta(minutes=50)},
        # open, 5 of 65 minutes left: at risk
        "email_refund": {"status": "open", "ack_due_at": NOW + timedelta(minutes=5)},
        # acknowledged, the resolve clock is due: breached (though not marked yet)
        "social_none": {"status": "acknowledged", "resolve_due_at": NOW - timedelta(minutes=1)},
        # resolved after an acknowledge breach: breached, never ok or at risk
        "app_billing": {"status": "resolved", "ack_breached_at": NOW - timedelta(hours=2)},
    }
    async with sessionmaker() as session, session.begin():
        for name, values in clocks.items():
            await session.execute(
                update(Alert)
                .where(Alert.id == alerts[name].id)
                .values(created_at=NOW - timedelta(hours=1), **values)
            )
    return alerts


async def _listed(api: httpx.AsyncClient, query: str, **headers: str) -> list[str]:
    """Every page of ``/v1/alerts?touchpoint=filters&<query>``, one alert per page."""
    found: list[str] = []
    cursor = ""
    while True:
        answer = await api.get(
            f"/v1/alerts?touchpoint=filters&status=open&status=acknowledged&status=resolved"
            f"&limit=1&{query}{cursor}",
            headers=headers,
        )
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found.extend(ids(page))
        if page["next_cursor"] is None:
            return found
        cursor = f"&cursor={page['next_cursor']}"


async def test_channel_topic_stage_and_sla_filters_are_exact_across_pages(
    api: httpx.AsyncClient, filtered: dict[str, Alert]
) -> None:
    def named(*names: str) -> set[str]:
        return {str(filtered[name].id) for name in names}

    everything = await _listed(api, "")
    assert set(everything) == named(*filtered)
    assert len(everything) == len(set(everything)) == 4  # each once across the pages

    assert set(await _listed(api, "channel=email")) == named("email_refund")
    assert set(await _listed(api, "topic=billing")) == named("hotline_billing", "app_billing")
    assert set(await _listed(api, "topic=(none)")) == named("social_none")
    assert set(await _listed(api, "journey_stage=purchase")) == named("email_refund")
    assert set(await _listed(api, "journey_stage=(none)")) == named(
        "hotline_billing", "social_none", "app_billing"
    )
    assert set(await _listed(api, "sla=ok")) == named("hotline_billing")
    assert set(await _listed(api, "sla=at_risk")) == named("email_refund")
    assert set(await _listed(api, "sla=breached")) == named("social_none", "app_billing")
    assert set(await _listed(api, "topic=billing&sla=breached")) == named("app_billing")
    assert await _listed(api, "channel=app&sla=ok") == []
    # Created in [from, to): all were created an hour before NOW.
    hour_ago = (NOW - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    assert set(await _listed(api, f"from={hour_ago}")) == named(*filtered)
    assert await _listed(api, f"to={hour_ago}") == []


async def test_status_takes_several_values(
    api: httpx.AsyncClient, filtered: dict[str, Alert]
) -> None:
    page = (await api.get("/v1/alerts?touchpoint=filters&status=open&limit=200")).json()
    assert set(ids(page)) == {str(filtered["hotline_billing"].id), str(filtered["email_refund"].id)}
    page = (
        await api.get("/v1/alerts?touchpoint=filters&status=open&status=acknowledged&limit=200")
    ).json()
    assert str(filtered["social_none"].id) in ids(page)
    assert str(filtered["app_billing"].id) not in ids(page)


async def test_the_filters_stay_within_the_team(
    api: httpx.AsyncClient, filtered: dict[str, Alert]
) -> None:
    # The e-mail item went to email-team: an agent of hotline-team never gets it.
    assert await _listed(api, "channel=email", **AGENT) == []
    assert set(await _listed(api, "topic=billing", **AGENT)) == {
        str(filtered["hotline_billing"].id),
        str(filtered["app_billing"].id),
    }


@pytest.mark.parametrize(
    "query",
    [
        "channel=fax",
        "sla=late",
        "journey_stage=shopping",
        "topic=%00",
        "topic=" + "x" * 129,
        "from=2026-11-01T00:00:00",
        "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
        "status=closed",
    ],
)
async def test_bad_filter_values_are_422(api: httpx.AsyncClient, query: str) -> None:
    answer = await api.get(f"/v1/alerts?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"


# --- the customer's other feedback ------------------------------------------------------------


@pytest.fixture(scope="module")
async def customer(sessionmaker: Sessions, state: RoutingState) -> dict[str, ScoredFeedback]:
    """One customer on three channels (two alerts, one to another team, one positive
    review without an alert) and another customer."""
    start = NOW - timedelta(days=3)
    items = {
        "call": enriched(customer="c-related", occurred_at=start + timedelta(days=2)),
        "email": enriched(
            channel=Channel.EMAIL, customer="c-related", occurred_at=start + timedelta(days=1)
        ),
        "review": enriched(
            channel=Channel.APP,
            customer="c-related",
            label=SentimentLabel.POSITIVE,
            text="Love the new app",
            occurred_at=start,
        ),
        "stranger": enriched(customer="c-stranger", occurred_at=start + timedelta(days=2)),
    }
    await _process(sessionmaker, state, *items.values())
    return items


async def test_related_feedback_is_the_same_customers_newest_first(
    api: httpx.AsyncClient, sessionmaker: Sessions, customer: dict[str, ScoredFeedback]
) -> None:
    call = customer["call"].feedback.id
    answer = await api.get(f"/v1/feedback/{call}/related")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["feedback_id"] == str(call)
    assert body["more"] is False
    items = body["items"]
    assert [item["feedback"]["id"] for item in items] == [
        str(customer["email"].feedback.id),
        str(customer["review"].feedback.id),
    ]
    email, review = items
    assert email["feedback"]["channel"] == "email"
    # Customer fields come back decrypted, as on the other reads.
    assert email["feedback"]["customer"]["id"] == "c-related"
    assert email["sentiment"]["label"] == "negative"
    assert email["alert_id"] == str((await _alert_of(sessionmaker, customer["email"])).id)
    assert email["alert_status"] == "open"
    assert review["sentiment"]["label"] == "positive"
    assert review["alert_id"] is None

    first = (await api.get(f"/v1/feedback/{call}/related?limit=1")).json()
    assert [item["feedback"]["id"] for item in first["items"]] == [
        str(customer["email"].feedback.id)
    ]
    assert first["more"] is True

    stranger = (await api.get(f"/v1/feedback/{customer['stranger'].feedback.id}/related")).json()
    assert stranger["items"] == []


async def test_related_feedback_is_team_scoped(
    api: httpx.AsyncClient, customer: dict[str, ScoredFeedback]
) -> None:
    call, email = customer["call"].feedback.id, customer["email"].feedback.id
    mine = (await api.get(f"/v1/feedback/{call}/related", headers=AGENT)).json()
    # The e-mail's alert is email-team's and the review raised none: neither is the team's.
    assert mine["items"] == []
    hidden = await api.get(f"/v1/feedback/{email}/related", headers=AGENT)
    assert hidden.status_code == 404
    assert hidden.headers["x-closeloop-denied"] == "team_scope"
    assert hidden.json()["error"]["code"] == "feedback_not_found"


async def test_related_feedback_refuses_unknown_ids_and_bad_limits(
    api: httpx.AsyncClient, customer: dict[str, ScoredFeedback]
) -> None:
    unknown = await api.get(f"/v1/feedback/{uuid.uuid4()}/related")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "feedback_not_found"
    call = customer["call"].feedback.id
    for limit in ("0", "101", "many"):
        answer = await api.get(f"/v1/feedback/{call}/related?limit={limit}")
        assert answer.status_code == 422
        assert answer.json()["error"]["code"] == "invalid_request"
    assert (await api.get("/v1/feedback/not-a-uuid/related")).status_code == 422
