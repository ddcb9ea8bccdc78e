"""Migration 0004 converts a database that already holds customers stored in clear.

Every other alerts test migrates an empty database, so the conversion path (seal existing
customers, blind existing merge identities, index every item's customer) runs only here.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import orjson
import pytest
from alembic import command
from sqlalchemy import Connection, text
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from closeloop_alerts.config import AlertsSettings
from closeloop_alerts.migrate import alembic_config, upgrade_async
from closeloop_alerts.pii import identities, open_customer

pytestmark = pytest.mark.integration

CUSTOMER = {
    "id": "crm-4711",
    "email": "Li.Wei@Example.com",
    "phone": "+86 138 0013 8000",
    "name": "李伟",
    "tier": "gold",
}
NOW = datetime(2026, 11, 1, 9, 30, tzinfo=UTC)


def _downgrade_to(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


@pytest.fixture
async def engine(database_url: str) -> AsyncIterator[AsyncEngine]:
    engine = create_async_engine(database_url, poolclass=NullPool)
    yield engine
    await engine.dispose()


async def _store_clear_rows(
    engine: AsyncEngine, feedback_id: uuid.UUID, alert_id: uuid.UUID
) -> None:
    """What a 0003 database holds: the customer and the merge identities in clear."""
    async with engine.begin() as connection:
        await connection.execute(
            text(
                "INSERT INTO alerts.feedback (id, channel, external_id, text, customer, attributes,"
                " occurred_at, received_at) VALUES (:id, 'email', 'm-1', 'Charged twice.',"
                " CAST(:customer AS jsonb), '{}'::jsonb, :at, :at)"
            ),
            {"id": feedback_id, "customer": orjson.dumps(CUSTOMER).decode(), "at": NOW},
        )
        score_id = (
            await connection.execute(
                text(
                    "INSERT INTO alerts.sentiment_score (feedback_id, label, score, confidence,"
                    " language, model, model_version, scored_at) VALUES (:id, 'negative', -0.8,"
                    " 0.9, 'en', 'closeloop-lexicon', '2.0.0', :at) RETURNING id"
                ),
                {"id": feedback_id, "at": NOW},
            )
        ).scalar_one()
        await connection.execute(
            text(
                "INSERT INTO alerts.alert (id, feedback_id, sentiment_score_id, status, priority,"
                " owner_id) VALUES (:id, :feedback_id, :score_id, 'open', 'high', 'cx-team')"
            ),
            {"id": alert_id, "feedback_id": feedback_id, "score_id": score_id},
        )
        for identity in identities(CUSTOMER):
            await connection.execute(
                text("INSERT INTO alerts.alert_identity (alert_id, identity) VALUES (:a, :i)"),
                {"a": alert_id, "i": identity},
            )


@pytest.fixture
async def converted(database_url: str, engine: AsyncEngine) -> tuple[uuid.UUID, uuid.UUID]:
    """A database at 0003 holding one clear customer with an alert, then upgraded to head."""
    async with engine.begin() as connection:
        await connection.execute(text("DROP SCHEMA IF EXISTS alerts CASCADE"))
    await upgrade_async(database_url, "0003")
    feedback_id, alert_id = uuid.uuid4(), uuid.uuid4()
    await _store_clear_rows(engine, feedback_id, alert_id)
    await upgrade_async(database_url)
    return feedback_id, alert_id


async def test_upgrade_seals_clear_customers_and_blinds_their_identities(
    engine: AsyncEngine, converted: tuple[uuid.UUID, uuid.UUID]
) -> None:
    feedback_id, alert_id = converted
    keyring = AlertsSettings().pii_keyring()
    async with engine.connect() as connection:
        stored = (
            await connection.execute(
                text("SELECT customer FROM alerts.feedback WHERE id = :id"), {"id": feedback_id}
            )
        ).scalar_one()
        merge_identities = set(
            (
                await connection.execute(
                    text("SELECT identity FROM alerts.alert_identity WHERE alert_id = :id"),
                    {"id": alert_id},
                )
            ).scalars()
        )
        customer_identities = set(
            (
                await connection.execute(
                    text("SELECT identity FROM alerts.customer_identity WHERE feedback_id = :id"),
                    {"id": feedback_id},
                )
            ).scalars()
        )
        rows: list[str] = []
        for table in ("feedback", "alert_identity", "customer_identity"):
            result = await connection.execute(text(f"SELECT * FROM alerts.{table}"))
            rows.extend(str(row) for row in result.all())
        dump = " ".join(rows)

    for clear in ("Li.Wei@Example.com", "li.wei@example.com", "8613800138000", "李伟", "crm-4711"):
        assert clear not in dump, f"{clear!r} is still stored in clear"
    assert stored["tier"] == "gold", "the tier is not personal data and stays readable"
    assert open_customer(keyring, feedback_id, stored) == CUSTOMER
    blinded = set(keyring.blind_all(identities(CUSTOMER)))
    assert merge_identities == blinded
    assert customer_identities == blinded


async def test_upgrade_twice_changes_nothing_more(
    database_url: str, engine: AsyncEngine, converted: tuple[uuid.UUID, uuid.UUID]
) -> None:
    """Running the conversion on already sealed rows (a re-run after a partial failure) must
    not seal tokens again or duplicate identities."""
    async with engine.connect() as connection:
        before = (await connection.execute(text("SELECT id, customer FROM alerts.feedback"))).all()
    assert [row.id for row in before] == [converted[0]]
    # 0004's downgrade keeps customers sealed (it must not write them back in clear), so
    # upgrading again runs the conversion over rows it converted before.
    async with engine.begin() as connection:
        await connection.run_sync(_downgrade_to, "0003")
    await upgrade_async(database_url)
    async with engine.connect() as connection:
        after = (await connection.execute(text("SELECT id, customer FROM alerts.feedback"))).all()
        identity_count = (
            await connection.execute(text("SELECT count(*) FROM alerts.alert_identity"))
        ).scalar_one()
    assert after == before
    assert identity_count == len(identities(CUSTOMER))
