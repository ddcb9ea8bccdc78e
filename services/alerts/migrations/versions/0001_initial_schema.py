"""Initial schema: feedback, scores, alerts with their audit trail, deliveries, outbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "alerts"

APPEND_ONLY_FUNCTION = f"""
CREATE FUNCTION {SCHEMA}.refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%.% is append-only', TG_TABLE_SCHEMA, TG_TABLE_NAME;
END
$$
"""
APPEND_ONLY_TRIGGER = f"""
CREATE TRIGGER alert_event_append_only BEFORE UPDATE OR DELETE ON {SCHEMA}.alert_event
FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.refuse_change()
"""


def upgrade() -> None:
    op.create_table(
        "feedback",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("channel", sa.String(length=16), nullable=False),
        sa.Column("external_id", sa.String(length=256), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("subject", sa.Text(), nullable=True),
        sa.Column("customer", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("rating_type", sa.String(length=16), nullable=True),
        sa.Column("rating_value", sa.Float(), nullable=True),
        sa.Column("touchpoint", sa.String(length=64), nullable=True),
        sa.Column("journey_stage", sa.String(length=32), nullable=True),
        sa.Column("language", sa.String(length=16), nullable=True),
        sa.Column("attributes", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "stored_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("feedback_pkey")),
        schema=SCHEMA,
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("topic", sa.String(length=255), nullable=False),
        sa.Column("event_type", sa.String(length=128), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=True),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("outbox_pkey")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_outbox_published_at", "outbox", ["published_at"], unique=False, schema=SCHEMA
    )
    op.create_index(
        "ix_outbox_unpublished",
        "outbox",
        ["id"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.create_table(
        "sentiment_score",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("feedback_id", sa.Uuid(), nullable=False),
        sa.Column("label", sa.String(length=16), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("confidence", sa.Float(), nullable=False),
        sa.Column("language", sa.Text(), nullable=False),
        sa.Column("model", sa.Text(), nullable=False),
        sa.Column("model_version", sa.Text(), nullable=False),
        sa.Column("scored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "stored_at", sa.DateTime(timezone=True), server_default=sa.text("now()"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["alerts.feedback.id"],
            name=op.f("sentiment_score_feedback_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("sentiment_score_pkey")),
        sa.UniqueConstraint(
            "feedback_id",
            "model",
            "model_version",
            name=op.f("sentiment_score_feedback_id_model_model_version_key"),
        ),
        schema=SCHEMA,
    )
    op.create_table(
        "alert",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("feedback_id", sa.Uuid(), nullable=False),
        sa.Column("sentiment_score_id", sa.BigInteger(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("owner_id", sa.String(length=128), nullable=False),
        sa.Column("rule_id", sa.String(length=128), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=256), nullable=True),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=256), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.CheckConstraint(
            "priority IN ('low', 'medium', 'high', 'critical')", name=op.f("alert_priority_check")
        ),
        sa.CheckConstraint(
            "status IN ('open', 'acknowledged', 'resolved')", name=op.f("alert_status_check")
        ),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["alerts.feedback.id"],
            name=op.f("alert_feedback_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["sentiment_score_id"],
            ["alerts.sentiment_score.id"],
            name=op.f("alert_sentiment_score_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("alert_pkey")),
        sa.UniqueConstraint("feedback_id", name=op.f("alert_feedback_id_key")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_alert_created_at_id", "alert", ["created_at", "id"], unique=False, schema=SCHEMA
    )
    op.create_index(
        "ix_alert_open_priority",
        "alert",
        ["priority"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.create_index(
        "ix_alert_owner_id_created_at_id",
        "alert",
        ["owner_id", "created_at", "id"],
        unique=False,
        schema=SCHEMA,
    )
    op.create_index(
        "ix_alert_status_created_at_id",
        "alert",
        ["status", "created_at", "id"],
        unique=False,
        schema=SCHEMA,
    )
    op.create_table(
        "alert_event",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("from_status", sa.String(length=16), nullable=True),
        sa.Column("to_status", sa.String(length=16), nullable=False),
        sa.Column("actor", sa.String(length=256), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column(
            "occurred_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"], ["alerts.alert.id"], name=op.f("alert_event_alert_id_fkey")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("alert_event_pkey")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_alert_event_alert_id_id", "alert_event", ["alert_id", "id"], unique=False, schema=SCHEMA
    )
    # The audit trail is evidence: the database itself refuses to rewrite or delete it.
    op.execute(APPEND_ONLY_FUNCTION)
    op.execute(APPEND_ONLY_TRIGGER)
    op.create_table(
        "delivery",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("owner_id", sa.String(length=128), nullable=False),
        sa.Column("target_key", sa.String(length=128), nullable=False),
        sa.Column("target_type", sa.String(length=16), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("webhook_id", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("lease_token", sa.Uuid(), nullable=True),
        sa.Column("last_status_code", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column(
            "updated_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("now()"),
            nullable=False,
        ),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'disabled')",
            name=op.f("delivery_status_check"),
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.alert.id"],
            name=op.f("delivery_alert_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("delivery_pkey")),
        sa.UniqueConstraint(
            "alert_id",
            "owner_id",
            "target_key",
            name=op.f("delivery_alert_id_owner_id_target_key_key"),
        ),
        sa.UniqueConstraint("webhook_id", name=op.f("delivery_webhook_id_key")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_delivery_due",
        "delivery",
        ["next_attempt_at"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_delivery_target_pending",
        "delivery",
        ["owner_id", "target_key"],
        unique=False,
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_table(
        "delivery_attempt",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("delivery_id", sa.Uuid(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.CheckConstraint(
            "outcome IN ('delivered', 'retrying', 'failed', 'disabled')",
            name=op.f("delivery_attempt_outcome_check"),
        ),
        sa.ForeignKeyConstraint(
            ["delivery_id"],
            ["alerts.delivery.id"],
            name=op.f("delivery_attempt_delivery_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("delivery_attempt_pkey")),
        schema=SCHEMA,
    )
    op.create_index(
        "ix_delivery_attempt_delivery_id_number",
        "delivery_attempt",
        ["delivery_id", "number"],
        unique=False,
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_delivery_attempt_delivery_id_number", table_name="delivery_attempt", schema=SCHEMA
    )
    op.drop_table("delivery_attempt", schema=SCHEMA)
    op.drop_index(
        "ix_delivery_target_pending",
        table_name="delivery",
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_index(
        "ix_delivery_due",
        table_name="delivery",
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.drop_table("delivery", schema=SCHEMA)
    op.drop_index("ix_alert_event_alert_id_id", table_name="alert_event", schema=SCHEMA)
    op.execute(f"DROP TRIGGER IF EXISTS alert_event_append_only ON {SCHEMA}.alert_event")
    op.drop_table("alert_event", schema=SCHEMA)
    op.execute(f"DROP FUNCTION IF EXISTS {SCHEMA}.refuse_change()")
    op.drop_index("ix_alert_status_created_at_id", table_name="alert", schema=SCHEMA)
    op.drop_index("ix_alert_owner_id_created_at_id", table_name="alert", schema=SCHEMA)
    op.drop_index(
        "ix_alert_open_priority",
        table_name="alert",
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open'"),
    )
    op.drop_index("ix_alert_created_at_id", table_name="alert", schema=SCHEMA)
    op.drop_table("alert", schema=SCHEMA)
    op.drop_table("sentiment_score", schema=SCHEMA)
    op.drop_index(
        "ix_outbox_unpublished",
        table_name="outbox",
        schema=SCHEMA,
        postgresql_where=sa.text("published_at IS NULL"),
    )
    op.drop_index("ix_outbox_published_at", table_name="outbox", schema=SCHEMA)
    op.drop_table("outbox", schema=SCHEMA)
    op.drop_table("feedback", schema=SCHEMA)
