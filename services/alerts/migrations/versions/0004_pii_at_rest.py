"""Customer contact data encrypted at rest, blind indexes, erasures.

* ``feedback.customer``: contact fields sealed with the active PII key (existing rows are
  converted here, which needs ``CLOSELOOP_ALERTS_PII_KEYS`` / ``_INDEX_KEY`` when rows exist).
* ``alert_identity.identity``: blind indexes instead of clear e-mails, phones and handles.
* ``customer_identity``: the blind indexes of each item's customer (erasure finds items).
* ``privacy_erasure`` and ``feedback.erased_at``: erasures and what they touched.
* The audit trail stays append-only, except that an erasure (a transaction that set
  ``closeloop.erasure``) may mask ``note`` and ``details``; no other column may change.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "alerts"
BATCH = 1000
_BLIND = re.compile(r"[a-z]+:[0-9a-f]{64}")

GUARD_FUNCTION = f"""
CREATE FUNCTION {SCHEMA}.guard_alert_event() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE'
       AND current_setting('closeloop.erasure', true) = 'on'
       AND NEW.id = OLD.id
       AND NEW.alert_id = OLD.alert_id
       AND NEW.type = OLD.type
       AND NEW.from_status IS NOT DISTINCT FROM OLD.from_status
       AND NEW.to_status = OLD.to_status
       AND NEW.actor IS NOT DISTINCT FROM OLD.actor
       AND NEW.occurred_at = OLD.occurred_at THEN
        RETURN NEW;
    END IF;
    RAISE EXCEPTION '%.% is append-only', TG_TABLE_SCHEMA, TG_TABLE_NAME;
END
$$
"""


def upgrade() -> None:
    op.add_column("feedback", sa.Column("erased_at", sa.DateTime(timezone=True)), schema=SCHEMA)
    op.create_table(
        "customer_identity",
        sa.Column("identity", sa.String(length=320), nullable=False),
        sa.Column("feedback_id", sa.Uuid(), nullable=False),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["alerts.feedback.id"],
            name=op.f("customer_identity_feedback_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("identity", "feedback_id", name=op.f("customer_identity_pkey")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_customer_identity_feedback_id", "customer_identity", ["feedback_id"], schema=SCHEMA
    )
    op.create_table(
        "privacy_erasure",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("identifier_kinds", postgresql.JSONB(), nullable=False),
        sa.Column("counts", postgresql.JSONB(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("privacy_erasure_pkey")),
        schema=SCHEMA,
    )
    op.execute(GUARD_FUNCTION)
    op.execute(f"DROP TRIGGER alert_event_append_only ON {SCHEMA}.alert_event")
    op.execute(
        f"CREATE TRIGGER alert_event_append_only BEFORE UPDATE OR DELETE ON {SCHEMA}.alert_event "
        f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.guard_alert_event()"
    )
    _convert_existing_rows(op.get_bind())


def _convert_existing_rows(bind: sa.Connection) -> None:
    """Seal the customers stored in clear and blind the identities (batches of ids)."""
    has_feedback = bind.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.feedback)"))
    has_identities = bind.execute(sa.text(f"SELECT EXISTS (SELECT 1 FROM {SCHEMA}.alert_identity)"))
    if not has_feedback.scalar() and not has_identities.scalar():
        return
    from closeloop_alerts.config import AlertsSettings
    from closeloop_alerts.pii import identities, open_customer, seal_customer

    keyring = AlertsSettings().pii_keyring()  # rows to convert: the keys must be set
    last = None
    while True:
        rows = bind.execute(
            sa.text(
                f"SELECT id, customer FROM {SCHEMA}.feedback"
                + (" WHERE id > :last" if last is not None else "")
                + " ORDER BY id LIMIT :limit"
            ),
            {"last": last, "limit": BATCH},
        ).all()
        if not rows:
            break
        for feedback_id, customer in rows:
            stored = seal_customer(keyring, feedback_id, customer or {})
            if stored != customer:
                bind.execute(
                    sa.text(
                        f"UPDATE {SCHEMA}.feedback SET customer = CAST(:customer AS jsonb) "
                        "WHERE id = :id"
                    ),
                    {"customer": orjson.dumps(stored).decode(), "id": feedback_id},
                )
            clear = open_customer(keyring, feedback_id, stored)
            _execute_many(
                bind,
                f"INSERT INTO {SCHEMA}.customer_identity (identity, feedback_id) "
                "VALUES (:identity, :feedback_id) ON CONFLICT DO NOTHING",
                [
                    {"identity": blind, "feedback_id": feedback_id}
                    for blind in keyring.blind_all(identities(clear))
                ],
            )
        last = rows[-1][0]
    clear_identities = [
        (alert_id, identity)
        for alert_id, identity in bind.execute(
            sa.text(f"SELECT alert_id, identity FROM {SCHEMA}.alert_identity")
        ).all()
        if not _BLIND.fullmatch(identity)
    ]
    _execute_many(
        bind,
        f"INSERT INTO {SCHEMA}.alert_identity (alert_id, identity) "
        "VALUES (:alert_id, :identity) ON CONFLICT DO NOTHING",
        [{"alert_id": a, "identity": keyring.blind(i)} for a, i in clear_identities],
    )
    _execute_many(
        bind,
        f"DELETE FROM {SCHEMA}.alert_identity WHERE alert_id = :alert_id AND identity = :identity",
        [{"alert_id": a, "identity": i} for a, i in clear_identities],
    )


def _execute_many(bind: sa.Connection, statement: str, rows: list[dict[str, Any]]) -> None:
    if rows:
        bind.execute(sa.text(statement), rows)


def downgrade() -> None:
    # Sealed customers and blind identities stay as they are: a downgrade must not write
    # personal data back in clear.
    op.execute(f"DROP TRIGGER alert_event_append_only ON {SCHEMA}.alert_event")
    op.execute(
        f"CREATE TRIGGER alert_event_append_only BEFORE UPDATE OR DELETE ON {SCHEMA}.alert_event "
        f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change()"
    )
    op.execute(f"DROP FUNCTION {SCHEMA}.guard_alert_event()")
    op.drop_table("privacy_erasure", schema=SCHEMA)
    op.drop_index("ix_customer_identity_feedback_id", "customer_identity", schema=SCHEMA)
    op.drop_table("customer_identity", schema=SCHEMA)
    op.drop_column("feedback", "erased_at", schema=SCHEMA)
