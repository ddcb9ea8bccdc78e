"""Re-scores on closeloop.sentiment.rescored.v1: stored beside the live score by their own
consumer group, idempotent, never raising or changing an alert (real broker and PostgreSQL)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from closeloop_shared.contracts.feedback import Channel
from closeloop_shared.contracts.sentiment import RescoredSentiment, ScoredFeedback, SentimentLabel
from closeloop_shared.events import SentimentRescoredEvent, Topic, encode
from closeloop_shared.kafka.producer import EventProducer, OutgoingMessage
from tests.alerts import test_app as running_service
from tests.alerts.support import scored
from tests.alerts.test_app import alert_of, eventually, publish

pytestmark = pytest.mark.integration

NEW_VERSION = "9.0.0-rescore-test"

# The running service of test_app (real broker and database), started once for this module.
routing_path = running_service.routing_path
api = running_service.api
producer = running_service.producer


def rescored(item: ScoredFeedback, label: SentimentLabel, score: float) -> SentimentRescoredEvent:
    sentiment = item.sentiment.model_copy(
        update={
            "label": label,
            "score": score,
            "model_version": NEW_VERSION,
            "scored_at": datetime.now(UTC),
            "topics": ["billing"],
        }
    )
    return SentimentRescoredEvent(
        id=str(uuid.uuid4()),
        source="/closeloop/cli/rescore",
        subject=str(item.feedback.id),
        time=sentiment.scored_at,
        data=RescoredSentiment(feedback_id=item.feedback.id, sentiment=sentiment),
    )


async def publish_rescores(producer: EventProducer, *events: SentimentRescoredEvent) -> None:
    await producer.send_many(
        [
            OutgoingMessage(
                Topic.SENTIMENT_RESCORED.value,
                encode(event),
                key=str(event.data.feedback_id).encode(),
            )
            for event in events
        ]
    )


async def outcome_total(api: httpx.AsyncClient, outcome: str) -> float:
    metrics = (await api.get("/metrics")).text
    found = re.search(
        rf'^closeloop_alerts_rescores_total{{outcome="{outcome}"}} (\S+)$', metrics, re.MULTILINE
    )
    return float(found.group(1)) if found else 0.0


async def history(api: httpx.AsyncClient, item: ScoredFeedback, count: int) -> dict[str, Any]:
    async def check() -> dict[str, Any] | None:
        response = await api.get(f"/v1/feedback/{item.feedback.id}/scores")
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body if len(body["scores"]) == count else None

    return await eventually(check)


async def test_rescores_are_kept_beside_the_live_score_and_change_no_alert(
    api: httpx.AsyncClient, producer: EventProducer
) -> None:
    negative = scored(channel=Channel.EMAIL, text="Charged twice, furious.")
    positive = scored(channel=Channel.APP, label=SentimentLabel.POSITIVE, score=0.7)
    await publish(producer, negative, positive)
    alert = await alert_of(api, negative)
    await history(api, positive, 1)
    alerts_before = (await api.get("/v1/alerts", params={"limit": 200})).json()["items"]

    # The new model flips both: the positive item turns negative, the complaint positive.
    flips = [
        rescored(negative, SentimentLabel.POSITIVE, 0.4),
        rescored(positive, SentimentLabel.NEGATIVE, -0.9),
    ]
    stored_before = await outcome_total(api, "stored")
    await publish_rescores(producer, *flips)
    kept = await history(api, negative, 2)
    turned = await history(api, positive, 2)
    assert await outcome_total(api, "stored") == stored_before + 2

    # The live score stays first and live; the re-score keeps its model version.
    assert kept["live"]["model_version"] == "3.3.2"
    assert kept["live"]["label"] == "negative"
    assert [(s["model_version"], s["label"], s["live"]) for s in kept["scores"]] == [
        ("3.3.2", "negative", True),
        (NEW_VERSION, "positive", False),
    ]
    assert [s["raised_alert"] for s in kept["scores"]] == [True, False]
    assert turned["live"]["label"] == "positive"
    assert turned["scores"][1]["label"] == "negative"
    assert turned["scores"][1]["topics"] == ["billing"]

    # No alert raised for the item that turned negative, none changed for the complaint.
    detail = (await api.get(f"/v1/feedback/{positive.feedback.id}")).json()
    assert detail["alert"] is None
    assert detail["sentiment"]["model_version"] == "3.3.2"  # the feedback API shows the live one
    assert (await api.get("/v1/alerts", params={"limit": 200})).json()["items"] == alerts_before
    assert (await api.get(f"/v1/alerts/{alert['id']}")).json()["status"] == "open"

    # A re-run (same scores again) stores nothing twice and overwrites nothing.
    duplicates_before = await outcome_total(api, "duplicate")
    again = [
        rescored(negative, SentimentLabel.NEUTRAL, 0.0),
        rescored(positive, SentimentLabel.NEUTRAL, 0.0),
    ]
    await publish_rescores(producer, *again)

    async def duplicates_seen() -> bool | None:
        return await outcome_total(api, "duplicate") >= duplicates_before + 2 or None

    await eventually(duplicates_seen)
    assert (await history(api, negative, 2))["scores"][1]["label"] == "positive"
    assert (await history(api, positive, 2))["scores"][1]["label"] == "negative"


async def test_a_rescore_of_an_item_not_stored_is_counted_not_dead_lettered(
    api: httpx.AsyncClient, producer: EventProducer
) -> None:
    unknown = scored(channel=Channel.SOCIAL)  # never published live: not stored
    before = await outcome_total(api, "unknown_feedback")
    await publish_rescores(producer, rescored(unknown, SentimentLabel.POSITIVE, 0.5))

    async def counted() -> bool | None:
        return await outcome_total(api, "unknown_feedback") >= before + 1 or None

    await eventually(counted)
    missing = await api.get(f"/v1/feedback/{unknown.feedback.id}/scores")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "feedback_not_found"
    assert (await api.get("/healthz")).status_code == 200  # both consumers still healthy


async def test_score_history_refuses_a_malformed_id(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/feedback/not-a-uuid/scores")
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_score_history_is_team_scoped_like_the_item(
    api: httpx.AsyncClient, producer: EventProducer
) -> None:
    complaint = scored(channel=Channel.EMAIL, text="Billed twice again.")
    praise = scored(channel=Channel.APP, label=SentimentLabel.POSITIVE, score=0.8)
    await publish(producer, complaint, praise)
    owner = (await alert_of(api, complaint))["owner"]
    await history(api, praise, 1)

    def as_agent(team: str) -> dict[str, str]:
        return {"X-Closeloop-Role": "agent", "X-Closeloop-Team": team}

    own = await api.get(f"/v1/feedback/{complaint.feedback.id}/scores", headers=as_agent(owner))
    assert own.status_code == 200
    assert own.json()["live"]["label"] == "negative"
    # Another team's item, and an item that raised no alert, look like unknown ones.
    for item, team in ((complaint, f"not-{owner}"), (praise, owner)):
        other = await api.get(f"/v1/feedback/{item.feedback.id}/scores", headers=as_agent(team))
        assert other.status_code == 404
        assert other.json()["error"]["code"] == "feedback_not_found"
