"""Schema, batch handler and state changes against the real PostgreSQL."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Connection, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import pii, repository
from closeloop_alerts.config import AlertsSettings
from closeloop_alerts.migrate import upgrade, upgrade_async
from closeloop_alerts.models import (
    SCHEMA,
    Alert,
    AlertEvent,
    Base,
    Delivery,
    Feedback,
    Outbox,
    SentimentScore,
)
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import (
    ACKNOWLEDGE,
    RESOLVE,
    AlertIntake,
    Changed,
    Conflict,
    NotFound,
    change_status,
    webhook_id,
)
from closeloop_shared.config import DatabaseSettings
from closeloop_shared.contracts.alerts import AlertStatus
from closeloop_shared.contracts.feedback import Channel
from closeloop_shared.contracts.sentiment import SentimentLabel
from closeloop_shared.db.engine import create_engine, create_sessionmaker
from closeloop_shared.events import AlertLifecycleEvent, EventType, Topic
from closeloop_shared.kafka.consumer import Received, TransientError
from tests.alerts.support import SECRET, routing_yaml, scored, scored_event

pytestmark = pytest.mark.integration

Sessions = async_sessionmaker[AsyncSession]

TWO_TARGETS = f"""\
owners:
  - id: hotline-team
    notify:
      - {{type: webhook, url: "https://a.test/hook", secret: {SECRET}}}
      - {{type: webhook, id: pager, url: "https://b.test/hook", secret: {SECRET}}}
  - id: cx-team
rules:
  - id: hotline-negative
    when: {{channel: hotline}}
    owner: hotline-team
    priority: high
default_owner: cx-team
"""


@pytest.fixture(scope="module")
def intake(sessionmaker: Sessions) -> AlertIntake:
    return AlertIntake(sessionmaker, RoutingState(Router(parse_routing(TWO_TARGETS))))


async def count(session: AsyncSession, model: type[Any], *where: Any) -> int:
    return int(await session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


# --- Migrations ---------------------------------------------------------------------------------


async def test_migration_creates_the_schema_with_its_version_table(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        tables = set(
            (
                await session.scalars(
                    text(
                        "SELECT table_name FROM information_schema.tables WHERE table_schema = :s"
                    ),
                    {"s": SCHEMA},
                )
            ).all()
        )
        public = await session.scalar(
            text("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        )
    assert tables == {
        "alembic_version",
        "feedback",
        "sentiment_score",
        "alert",
        "alert_event",
        "delivery",
        "delivery_attempt",
        "outbox",
        "alert_item",
        "alert_identity",
        "customer_identity",
        "privacy_erasure",
        "owner",
        "target_health",
    }
    assert public == 0


async def test_migration_matches_the_models_and_is_idempotent(alerts_database_url: str) -> None:
    await upgrade_async(alerts_database_url)  # second run: nothing to do
    upgrade(alerts_database_url)  # the synchronous entry point works inside a loop too

    def diff(connection: Connection) -> list[Any]:
        context = MigrationContext.configure(
            connection,
            opts={
                "include_schemas": True,
                "include_name": lambda name, type_, _: type_ != "schema" or name == SCHEMA,
                "compare_type": True,
                "version_table_schema": SCHEMA,
            },
        )
        return list(compare_metadata(context, Base.metadata))

    engine = create_engine(DatabaseSettings(CLOSELOOP_DATABASE_URL=alerts_database_url), "t")
    try:
        async with engine.connect() as connection:
            assert await connection.run_sync(diff) == []
    finally:
        await engine.dispose()


async def test_timestamps_are_timezone_aware(sessionmaker: Sessions) -> None:
    async with sessionmaker() as session:
        naive = await session.scalar(
            text(
                "SELECT count(*) FROM information_schema.columns WHERE table_schema = :s"
                " AND data_type = 'timestamp without time zone'"
            ),
            {"s": SCHEMA},
        )
    assert naive == 0


# --- The batch handler --------------------------------------------------------------------------


async def test_batch_stores_feedback_scores_alerts_deliveries_and_events(
    intake: AlertIntake, sessionmaker: Sessions
) -> None:
    hotline = scored(channel=Channel.HOTLINE)
    email = scored(channel=Channel.EMAIL)
    happy = scored(channel=Channel.APP, label=SentimentLabel.POSITIVE, score=0.9)
    outcome = await intake.process([hotline, email, happy])
    assert (outcome.feedback_stored, outcome.alerts_raised, outcome.deliveries_queued) == (3, 2, 2)

    async with sessionmaker() as session:
        ids = [hotline.feedback.id, email.feedback.id, happy.feedback.id]
        assert await count(session, Feedback, Feedback.id.in_(ids)) == 3
        assert await count(session, SentimentScore, SentimentScore.feedback_id.in_(ids)) == 3
        assert await count(session, Alert, Alert.feedback_id == happy.feedback.id) == 0

        alert = await session.scalar(select(Alert).where(Alert.feedback_id == hotline.feedback.id))
        assert alert is not None
        assert (alert.status, alert.priority, alert.owner_id, alert.rule_id) == (
            "open",
            "high",
            "hotline-team",
            "hotline-negative",
        )
        assert alert.created_at.tzinfo is not None
        deliveries = (
            await session.scalars(select(Delivery).where(Delivery.alert_id == alert.id))
        ).all()
        assert sorted((d.target_key, d.url, d.status) for d in deliveries) == [
            ("pager", "https://b.test/hook", "pending"),
            ("webhook-1", "https://a.test/hook", "pending"),
        ]
        assert {d.webhook_id for d in deliveries} == {
            webhook_id(alert.id, "hotline-team", "webhook-1"),
            webhook_id(alert.id, "hotline-team", "pager"),
        }
        [raised] = (
            await session.scalars(select(AlertEvent).where(AlertEvent.alert_id == alert.id))
        ).all()
        assert (raised.type, raised.to_status, raised.note) == (
            "raised",
            "open",
            "rule hotline-negative",
        )

        # The default owner has no targets: an alert, but nothing to deliver.
        default = await session.scalar(select(Alert).where(Alert.feedback_id == email.feedback.id))
        assert default is not None
        assert (default.owner_id, default.priority, default.rule_id) == ("cx-team", "medium", None)
        assert await count(session, Delivery, Delivery.alert_id == default.id) == 0

        [row] = (
            await session.scalars(
                select(Outbox).where(Outbox.key == str(hotline.feedback.id).encode())
            )
        ).all()
    assert row.topic == Topic.ALERT_LIFECYCLE
    event = AlertLifecycleEvent.model_validate_json(row.payload)
    assert event.type == EventType.ALERT_RAISED
    assert (event.data.alert_id, event.data.status, event.data.owner_id) == (
        alert.id,
        AlertStatus.OPEN,
        "hotline-team",
    )


async def test_redelivery_creates_nothing_twice(
    intake: AlertIntake, sessionmaker: Sessions
) -> None:
    item = scored(channel=Channel.HOTLINE)
    first = await intake.process([item])
    # The same event again, alone and twice within one batch.
    again = await intake.process([item])
    twice = await intake.process([item, item])
    assert first.alerts_raised == 1
    assert (again.feedback_stored, again.alerts_raised, again.deliveries_queued) == (0, 0, 0)
    assert (twice.feedback_stored, twice.alerts_raised) == (0, 0)
    async with sessionmaker() as session:
        [alert_id] = (
            await session.scalars(select(Alert.id).where(Alert.feedback_id == item.feedback.id))
        ).all()
        assert await count(session, Delivery, Delivery.alert_id == alert_id) == 2
        assert await count(session, AlertEvent, AlertEvent.alert_id == alert_id) == 1
        assert await count(session, Outbox, Outbox.key == str(item.feedback.id).encode()) == 1


async def test_handler_takes_received_messages(intake: AlertIntake, sessionmaker: Sessions) -> None:
    item = scored(channel=Channel.SOCIAL)
    event = scored_event(item)
    await intake.handle(
        [Received("t", 0, 1, None, event, b"", 0), Received("t", 1, 7, None, event, b"", 0)]
    )
    async with sessionmaker() as session:
        assert await count(session, Alert, Alert.feedback_id == item.feedback.id) == 1


async def test_rescoring_keeps_one_row_per_model_version(
    intake: AlertIntake, sessionmaker: Sessions
) -> None:
    first = scored(label=SentimentLabel.NEUTRAL, score=0.0, model_version="1")
    fid = first.feedback.id
    later = first.sentiment.scored_at + timedelta(minutes=5)
    newer_model = first.model_copy(
        update={
            "sentiment": first.sentiment.model_copy(
                update={
                    "label": SentimentLabel.NEGATIVE,
                    "score": -0.7,
                    "model_version": "2",
                    "scored_at": later,
                }
            )
        }
    )
    stale_replay = first.model_copy(
        update={
            "sentiment": first.sentiment.model_copy(
                update={"score": 0.3, "scored_at": first.sentiment.scored_at - timedelta(hours=1)}
            )
        }
    )
    assert (await intake.process([first])).alerts_raised == 0
    assert (await intake.process([newer_model])).alerts_raised == 1  # now negative: alert
    await intake.process([stale_replay])
    async with sessionmaker() as session:
        scores = {
            s.model_version: s.score
            for s in await session.scalars(
                select(SentimentScore).where(SentimentScore.feedback_id == fid)
            )
        }
        alert = await session.scalar(select(Alert).where(Alert.feedback_id == fid))
        assert alert is not None
        linked = await session.get(SentimentScore, alert.sentiment_score_id)
    assert scores == {"1": 0.0, "2": -0.7}  # the older replay did not overwrite version 1
    assert linked is not None
    assert linked.model_version == "2"


async def test_nul_characters_and_long_model_names_are_stored(
    intake: AlertIntake, sessionmaker: Sessions
) -> None:
    item = scored(text="cut\x00off", model="m" * 300, model_version="2026.03-" + "x" * 100)
    assert (await intake.process([item])).alerts_raised == 1
    async with sessionmaker() as session:
        feedback = await session.get(Feedback, item.feedback.id)
    assert feedback is not None
    assert feedback.text == "cut\ufffdoff"


async def test_database_outage_is_transient(sessionmaker: Sessions) -> None:
    engine = create_engine(
        DatabaseSettings(CLOSELOOP_DATABASE_URL="postgresql+asyncpg://postgres@127.0.0.1:9/none"),
        "t",
    )
    broken = AlertIntake(
        pii.bind(create_sessionmaker(engine), AlertsSettings().pii_keyring()),
        RoutingState(Router(parse_routing(TWO_TARGETS))),
    )
    try:
        with pytest.raises(TransientError):
            await broken.process([scored()])
    finally:
        await engine.dispose()


def test_deadlocks_and_lost_connections_count_as_retryable() -> None:
    class Orig(Exception):
        def __init__(self, sqlstate: str) -> None:
            super().__init__(sqlstate)
            self.sqlstate = sqlstate

    assert repository.is_retryable(DBAPIError("x", None, Orig("40P01")))
    assert repository.is_retryable(DBAPIError("x", None, Orig("08006")))
    assert not repository.is_retryable(DBAPIError("x", None, Orig("23505")))
    assert not repository.is_retryable(ValueError("x"))


# --- State changes ------------------------------------------------------------------------------


async def raise_one(intake: AlertIntake, sessionmaker: Sessions) -> uuid.UUID:
    item = scored(channel=Channel.HOTLINE)
    await intake.process([item])
    async with sessionmaker() as session:
        alert_id = await session.scalar(
            select(Alert.id).where(Alert.feedback_id == item.feedback.id)
        )
    assert alert_id is not None
    return alert_id


async def test_acknowledge_then_resolve_with_audit_and_events(
    intake: AlertIntake, sessionmaker: Sessions
) -> None:
    alert_id = await raise_one(intake, sessionmaker)
    acked = await change_status(sessionmaker, alert_id, ACKNOWLEDGE, actor="support-desk")
    assert isinstance(acked, Changed)
    assert (acked.alert.status, acked.alert.acknowledged_by, acked.channel) == (
        "acknowledged",
        "support-desk",
        "hotline",
    )
    again = await change_status(sessionmaker, alert_id, ACKNOWLEDGE, actor="support-desk")
    assert again == Conflict(AlertStatus.ACKNOWLEDGED)
    resolved = await change_status(
        sessionmaker, alert_id, RESOLVE, actor="lead", note="Called back"
    )
    assert isinstance(resolved, Changed)
    assert (resolved.alert.resolved_by, resolved.alert.resolution_note) == ("lead", "Called back")
    assert await change_status(sessionmaker, alert_id, RESOLVE, actor="x", note="y") == Conflict(
        AlertStatus.RESOLVED
    )
    assert isinstance(
        await change_status(sessionmaker, uuid.uuid4(), ACKNOWLEDGE, actor="x"), NotFound
    )

    async with sessionmaker() as session:
        history = (
            await session.scalars(
                select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
            )
        ).all()
        assert [(e.type, e.from_status, e.to_status, e.actor) for e in history] == [
            ("raised", None, "open", None),
            ("acknowledged", "open", "acknowledged", "support-desk"),
            ("resolved", "acknowledged", "resolved", "lead"),
        ]
        events = [
            AlertLifecycleEvent.model_validate_json(payload)
            for payload in await session.scalars(select(Outbox.payload).order_by(Outbox.id))
        ]
    mine = [e for e in events if e.data.alert_id == alert_id]
    assert [e.type for e in mine] == [
        EventType.ALERT_RAISED,
        EventType.ALERT_ACKNOWLEDGED,
        EventType.ALERT_RESOLVED,
    ]
    assert (mine[2].data.actor, mine[2].data.note) == ("lead", "Called back")


async def test_resolve_straight_from_open(intake: AlertIntake, sessionmaker: Sessions) -> None:
    alert_id = await raise_one(intake, sessionmaker)
    result = await change_status(sessionmaker, alert_id, RESOLVE, actor="a", note="duplicate")
    assert isinstance(result, Changed)
    assert result.alert.status == "resolved"
    assert result.alert.acknowledged_at is None


async def test_audit_trail_is_append_only(intake: AlertIntake, sessionmaker: Sessions) -> None:
    alert_id = await raise_one(intake, sessionmaker)
    with pytest.raises(DBAPIError, match="append-only"):
        async with sessionmaker() as session, session.begin():
            await session.execute(
                update(AlertEvent).where(AlertEvent.alert_id == alert_id).values(actor="forged")
            )


async def test_minimal_routing_file_raises_for_hotline(sessionmaker: Sessions) -> None:
    routed = AlertIntake(
        sessionmaker,
        RoutingState(Router(parse_routing(routing_yaml("https://h.test/", "https://c.test/")))),
    )
    item = scored(channel=Channel.HOTLINE)
    outcome = await routed.process([item])
    assert (outcome.alerts_raised, outcome.deliveries_queued) == (1, 1)
