"""``GET /v1/feedback`` on real PostgreSQL: every filter, exact pages, team scope, and the
point of it all: for the same range and group, the list is exactly as long as the KPI
number the dashboard shows.

The support API is mounted on a bare FastAPI app with the real routes and database, as in
test_console_reads; the items occur in a fixed window of their own.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts.models import Alert
from closeloop_alerts.rescores import RescoreIntake
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import AlertIntake
from closeloop_shared.contracts.feedback import Channel, Customer, JourneyStage, RatingType
from closeloop_shared.contracts.sentiment import (
    RescoredSentiment,
    ScoredFeedback,
    SentimentLabel,
)
from closeloop_shared.events import SentimentRescoredEvent
from tests.alerts.support import scored, support_api

# The routing of the console-read tests: e-mail negatives to email-team, others to hotline-team.
from tests.alerts.test_console_reads import AGENT, ROUTING

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]
NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)
# The window the corpus occurred in, and one item just before it.
START = NOW - timedelta(days=3)
RANGE = {"from": START.isoformat(), "to": NOW.isoformat()}


def item(
    *,
    channel: Channel,
    label: SentimentLabel,
    occurred_at: datetime,
    customer: str = "c-list",
    touchpoint: str | None = None,
    journey_stage: JourneyStage | None = None,
    topics: tuple[str, ...] = (),
    rating: tuple[RatingType, float] | None = None,
) -> ScoredFeedback:
    base = scored(
        channel=channel,
        label=label,
        score=-0.8 if label is SentimentLabel.NEGATIVE else 0.6,
        touchpoint=touchpoint,
        journey_stage=journey_stage,
        rating=rating,
    )
    return ScoredFeedback(
        feedback=base.feedback.model_copy(
            update={
                "customer": Customer(id=customer, name="Dana Example"),
                "occurred_at": occurred_at,
            }
        ),
        sentiment=base.sentiment.model_copy(update={"topics": list(topics)}),
    )


@pytest.fixture(scope="module")
def state() -> RoutingState:
    return RoutingState(Router(parse_routing(ROUTING)))


@pytest.fixture(scope="module")
async def api(sessionmaker: Sessions, state: RoutingState) -> AsyncIterator[httpx.AsyncClient]:
    async with support_api(
        sessionmaker, state, service="alerts-feedback-list-test", clock=lambda: NOW
    ) as client:
        yield client


@pytest.fixture(scope="module")
async def corpus(sessionmaker: Sessions, state: RoutingState) -> dict[str, ScoredFeedback]:
    """Items across channels, groups, labels and ratings; negative ones raise alerts
    (e-mail to email-team, the rest to hotline-team), the others none."""
    hours = iter(range(1, 100))

    def at() -> datetime:
        return START + timedelta(hours=next(hours))

    items = {
        "call_billing": item(
            channel=Channel.HOTLINE,
            label=SentimentLabel.NEGATIVE,
            occurred_at=at(),
            touchpoint="checkout",
            journey_stage=JourneyStage.PURCHASE,
            topics=("billing", "wait_time"),
            rating=(RatingType.NPS, 3),
        ),
        "email_refund": item(
            channel=Channel.EMAIL,
            label=SentimentLabel.NEGATIVE,
            occurred_at=at(),
            touchpoint="checkout",
            topics=("refund",),
            rating=(RatingType.CSAT, 2),
        ),
        "app_praise": item(
            channel=Channel.APP,
            label=SentimentLabel.POSITIVE,
            occurred_at=at(),
            journey_stage=JourneyStage.ONBOARDING,
            rating=(RatingType.NPS, 10),
        ),
        "social_neutral": item(
            channel=Channel.SOCIAL,
            label=SentimentLabel.NEUTRAL,
            occurred_at=at(),
            touchpoint="checkout",
            journey_stage=JourneyStage.PURCHASE,
            topics=("billing",),
            rating=(RatingType.CES, 5),
        ),
        "call_stars": item(
            channel=Channel.HOTLINE,
            label=SentimentLabel.POSITIVE,
            occurred_at=at(),
            topics=("billing",),
            rating=(RatingType.STARS, 5),
        ),
        "app_crash": item(
            channel=Channel.APP,
            label=SentimentLabel.NEGATIVE,
            occurred_at=at(),
            touchpoint="login",
            journey_stage=JourneyStage.USAGE,
            topics=("crash",),
            rating=(RatingType.NPS, 8),
        ),
        # Occurred before the window: in no count of it.
        "before": item(
            channel=Channel.HOTLINE,
            label=SentimentLabel.NEGATIVE,
            occurred_at=START - timedelta(minutes=1),
            touchpoint="checkout",
        ),
    }
    await AlertIntake(sessionmaker, state).process(list(items.values()))
    # A re-score calls the praise negative: neither the list nor the KPIs follow it.
    praise = items["app_praise"]
    rescored = praise.sentiment.model_copy(
        update={"model_version": "9.9.9", "label": SentimentLabel.NEGATIVE, "score": -0.9}
    )
    event = SentimentRescoredEvent(
        id=str(uuid.uuid4()),
        source="/closeloop/cli/rescore",
        subject=str(praise.feedback.id),
        time=rescored.scored_at,
        data=RescoredSentiment(feedback_id=praise.feedback.id, sentiment=rescored),
    )
    assert await RescoreIntake(sessionmaker).store([event]) == 1
    return items


async def _all(api: httpx.AsyncClient, params: dict[str, Any], **headers: str) -> list[str]:
    """Every page of the list, ``limit`` items a page (1 unless given): the ids in order."""
    found: list[str] = []
    query = {"limit": 1, **params}
    while True:
        answer = await api.get(f"/v1/feedback?{urlencode(query, doseq=True)}", headers=headers)
        assert answer.status_code == 200, answer.text
        page = answer.json()
        found.extend(entry["feedback"]["id"] for entry in page["items"])
        if page["next_cursor"] is None:
            return found
        query["cursor"] = page["next_cursor"]


def _ids(corpus: dict[str, ScoredFeedback], *names: str) -> set[str]:
    return {str(corpus[name].feedback.id) for name in names}


IN_RANGE = (
    "call_billing",
    "email_refund",
    "app_praise",
    "social_neutral",
    "call_stars",
    "app_crash",
)


async def test_pages_are_exact_and_newest_first(
    api: httpx.AsyncClient, corpus: dict[str, ScoredFeedback]
) -> None:
    listed = await _all(api, RANGE)
    # Each once, newest first: the corpus occurred an hour apart, in the order written.
    assert listed == [str(corpus[name].feedback.id) for name in reversed(IN_RANGE)]
    assert await _all(api, {**RANGE, "limit": 4}) == listed
    everything = await _all(api, {"limit": 200})
    assert set(everything) == _ids(corpus, *corpus)
    assert everything[-1] == str(corpus["before"].feedback.id)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({"channel": "hotline"}, ("call_billing", "call_stars")),
        ({"touchpoint": "checkout"}, ("call_billing", "email_refund", "social_neutral")),
        ({"touchpoint": "(none)"}, ("app_praise", "call_stars")),
        ({"journey_stage": "purchase"}, ("call_billing", "social_neutral")),
        ({"journey_stage": "(none)"}, ("email_refund", "call_stars")),
        # The live label: the praise's negative re-score does not count.
        ({"sentiment": "negative"}, ("call_billing", "email_refund", "app_crash")),
        (
            {"sentiment": ["positive", "neutral"]},
            ("app_praise", "social_neutral", "call_stars"),
        ),
        ({"rating_type": "nps"}, ("call_billing", "app_praise", "app_crash")),
        ({"rating_type": "csat"}, ("email_refund",)),
        ({"rating_type": "ces"}, ("social_neutral",)),
        ({"topic": "billing"}, ("call_billing", "social_neutral", "call_stars")),
        ({"topic": "(none)"}, ("app_praise",)),
        ({"channel": "app", "sentiment": "negative"}, ("app_crash",)),
        ({"touchpoint": "checkout", "topic": "refund"}, ("email_refund",)),
    ],
)
async def test_each_filter_keeps_exactly_its_items(
    api: httpx.AsyncClient,
    corpus: dict[str, ScoredFeedback],
    params: dict[str, Any],
    expected: tuple[str, ...],
) -> None:
    listed = await _all(api, {**RANGE, **params})
    assert len(listed) == len(set(listed))
    assert set(listed) == _ids(corpus, *expected)


async def test_the_range_is_on_when_items_occurred(
    api: httpx.AsyncClient, corpus: dict[str, ScoredFeedback]
) -> None:
    third = START + timedelta(hours=3)
    assert set(await _all(api, {"from": START.isoformat(), "to": third.isoformat()})) == (
        _ids(corpus, "call_billing", "email_refund")
    )
    assert set(await _all(api, {"from": third.isoformat(), "to": NOW.isoformat()})) == _ids(
        corpus, "app_praise", "social_neutral", "call_stars", "app_crash"
    )
    assert set(await _all(api, {"to": START.isoformat()})) == _ids(corpus, "before")


async def test_items_carry_the_decrypted_customer_live_score_and_alert(
    api: httpx.AsyncClient, sessionmaker: Sessions, corpus: dict[str, ScoredFeedback]
) -> None:
    page = (await api.get("/v1/feedback", params={**RANGE, "limit": 200})).json()
    by_id = {entry["feedback"]["id"]: entry for entry in page["items"]}
    call = by_id[str(corpus["call_billing"].feedback.id)]
    assert call["feedback"]["customer"]["id"] == "c-list"
    assert call["feedback"]["rating"] == {"type": "nps", "value": 3.0}
    assert call["sentiment"]["label"] == "negative"
    assert call["sentiment"]["topics"] == ["billing", "wait_time"]
    async with sessionmaker() as session:
        alert = await session.scalar(
            select(Alert).where(Alert.feedback_id == corpus["call_billing"].feedback.id)
        )
    assert alert is not None
    assert call["alert_id"] == str(alert.id)
    assert call["alert_status"] == "open"
    praise = by_id[str(corpus["app_praise"].feedback.id)]
    assert praise["sentiment"]["label"] == "positive"
    assert praise["sentiment"]["model_version"] == "3.3.2"
    assert praise["alert_id"] is None
    assert praise["alert_status"] is None


async def test_an_agent_sees_only_items_whose_alert_is_the_teams(
    api: httpx.AsyncClient, corpus: dict[str, ScoredFeedback]
) -> None:
    # The e-mail's alert is email-team's; positive and neutral items raised none.
    assert set(await _all(api, RANGE, **AGENT)) == _ids(corpus, "call_billing", "app_crash")
    assert await _all(api, {**RANGE, "channel": "email"}, **AGENT) == []
    lead = {"X-Closeloop-Role": "lead", "X-Closeloop-Team": "email-team"}
    assert set(await _all(api, RANGE, **lead)) == _ids(corpus, "email_refund")
    admin = {"X-Closeloop-Role": "admin"}
    assert set(await _all(api, RANGE, **admin)) == _ids(corpus, *IN_RANGE)
    refused = await api.get("/v1/feedback", headers={"X-Closeloop-Role": "agent"})
    assert refused.status_code == 403


def _group_filters(group_by: str, key: str) -> dict[str, str]:
    """The list's filters of one KPI group (the console's dashboard links carry these)."""
    if group_by == "journey_stage_touchpoint":
        stage, touchpoint = key.split("|")
        return {"journey_stage": stage, "touchpoint": touchpoint}
    return {group_by: key}


@pytest.mark.parametrize(
    "group_by", ["channel", "touchpoint", "journey_stage", "topic", "journey_stage_touchpoint"]
)
@pytest.mark.parametrize("headers", [{}, AGENT], ids=["admin", "agent"])
async def test_every_kpi_count_equals_the_length_of_its_list(
    api: httpx.AsyncClient,
    corpus: dict[str, ScoredFeedback],
    group_by: str,
    headers: dict[str, str],
) -> None:
    report = await api.get("/v1/kpis", params={**RANGE, "group_by": group_by}, headers=headers)
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["groups"], "the corpus fills some groups"
    assert len(await _all(api, {**RANGE, "limit": 200}, **headers)) == body["total"]["volume"]
    for group in body["groups"]:
        params = {**RANGE, "limit": 200, **_group_filters(group_by, group["key"])}
        assert len(await _all(api, params, **headers)) == group["volume"], group
        for label, count in group["sentiment"].items():
            assert len(await _all(api, {**params, "sentiment": label}, **headers)) == count
        for rating_type in ("nps", "csat", "ces"):
            responses = group[f"{rating_type}_responses"]
            listed = await _all(api, {**params, "rating_type": rating_type}, **headers)
            assert len(listed) == responses, (group["key"], rating_type)


async def test_erased_items_are_left_out(
    api: httpx.AsyncClient, sessionmaker: Sessions, state: RoutingState
) -> None:
    when = NOW + timedelta(days=10)
    window = {"from": when.isoformat(), "to": (when + timedelta(hours=1)).isoformat()}
    kept = item(channel=Channel.APP, label=SentimentLabel.POSITIVE, occurred_at=when)
    gone = item(
        channel=Channel.APP,
        label=SentimentLabel.POSITIVE,
        occurred_at=when + timedelta(minutes=1),
        customer="c-forget-me",
    )
    await AlertIntake(sessionmaker, state).process([kept, gone])
    assert len(await _all(api, window)) == 2
    erased = await api.post("/v1/privacy/erasures", json={"customer_id": "c-forget-me"})
    assert erased.status_code == 201, erased.text
    assert await _all(api, window) == [str(kept.feedback.id)]
    # The dashboard's number for the window follows the list.
    report = (await api.get("/v1/kpis", params=window)).json()
    assert report["total"]["volume"] == 1


async def test_an_alert_escalated_to_the_team_counts_in_its_kpis_and_its_list(
    api: httpx.AsyncClient, sessionmaker: Sessions, state: RoutingState
) -> None:
    when = NOW + timedelta(days=20)
    window = {"from": when.isoformat(), "to": (when + timedelta(hours=1)).isoformat()}
    complaint = item(channel=Channel.EMAIL, label=SentimentLabel.NEGATIVE, occurred_at=when)
    await AlertIntake(sessionmaker, state).process([complaint])
    async with sessionmaker() as session, session.begin():
        alert = await session.scalar(
            select(Alert).where(Alert.feedback_id == complaint.feedback.id)
        )
        assert alert is not None
        assert alert.owner_id == "email-team"
        alert.escalated_to = AGENT["X-Closeloop-Team"]

    assert await _all(api, window, **AGENT) == [str(complaint.feedback.id)]
    report = (await api.get("/v1/kpis", params=window, headers=AGENT)).json()
    # (Its alert was raised now, outside the window: KPIs count alerts by when raised.)
    assert report["total"]["volume"] == 1


@pytest.mark.parametrize(
    "query",
    [
        "channel=fax",
        "sentiment=furious",
        "rating_type=stars",
        "journey_stage=shopping",
        "topic=%00",
        "touchpoint=" + "x" * 129,
        "from=2026-11-01T00:00:00",
        "from=2026-11-02T00:00:00Z&to=2026-11-01T00:00:00Z",
        "limit=0",
        "limit=201",
    ],
)
async def test_bad_filters_are_422_with_the_json_error_shape(
    api: httpx.AsyncClient, query: str
) -> None:
    answer = await api.get(f"/v1/feedback?{query}")
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"]["code"] == "invalid_request"
    assert answer.json()["error"]["detail"]


async def test_a_cursor_not_from_the_api_is_422(api: httpx.AsyncClient) -> None:
    answer = await api.get("/v1/feedback?cursor=not-a-cursor")
    assert answer.status_code == 422
    assert answer.json()["error"]["code"] == "invalid_cursor"
