"""Closing the loop: owners, SLA clocks, escalation, assignment, root cause, customer reply,
cross-channel merge, incidents, target health, per-event deliveries, richer scores.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "alerts"


def _tstz(name: str) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=True)


def upgrade() -> None:
    # --- alert: lifecycle, SLA, merge and incident columns -----------------------------------
    alert_columns: list[sa.Column[object]] = [
        sa.Column("kind", sa.String(16), server_default=sa.text("'item'"), nullable=False),
        sa.Column("assignee", sa.String(256), nullable=True),
        sa.Column("root_cause", sa.String(64), nullable=True),
        sa.Column("escalation_level", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _tstz("escalated_at"),
        sa.Column("escalated_to", sa.String(128), nullable=True),
        sa.Column("reopened_count", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _tstz("ack_due_at"),
        _tstz("resolve_due_at"),
        _tstz("ack_breached_at"),
        _tstz("resolve_breached_at"),
        sa.Column("item_count", sa.Integer(), server_default=sa.text("1"), nullable=False),
        _tstz("last_item_at"),
        sa.Column("incident_key", sa.String(200), nullable=True),
        sa.Column("customer_reply", sa.Text(), nullable=True),
        sa.Column("customer_reply_status", sa.String(16), nullable=True),
        _tstz("customer_reply_at"),
        sa.Column("customer_reply_detail", sa.Text(), nullable=True),
    ]
    for column in alert_columns:
        op.add_column("alert", column, schema=SCHEMA)
    op.create_check_constraint(
        op.f("alert_kind_check"), "alert", "kind IN ('item', 'spike')", schema=SCHEMA
    )
    op.create_index(
        "ix_alert_ack_due_at",
        "alert",
        ["ack_due_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status = 'open' AND ack_breached_at IS NULL"),
    )
    op.create_index(
        "ix_alert_resolve_due_at",
        "alert",
        ["resolve_due_at"],
        schema=SCHEMA,
        postgresql_where=sa.text("status <> 'resolved' AND resolve_breached_at IS NULL"),
    )
    op.create_index(
        "ix_alert_incident_key",
        "alert",
        ["incident_key"],
        schema=SCHEMA,
        postgresql_where=sa.text("status <> 'resolved'"),
    )

    # --- audit details --------------------------------------------------------------------------
    op.add_column(
        "alert_event",
        sa.Column("details", postgresql.JSONB(astext_type=sa.Text()), nullable=True),
        schema=SCHEMA,
    )

    # --- richer scores (topics for KPIs and spikes) ----------------------------------------
    op.add_column(
        "sentiment_score",
        sa.Column(
            "topics",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.add_column(
        "sentiment_score", sa.Column("urgency", sa.String(16), nullable=True), schema=SCHEMA
    )

    # --- deliveries: one per alert x target x event ----------------------------------------
    op.add_column(
        "delivery",
        sa.Column("event", sa.String(32), server_default=sa.text("'alert.raised'"), nullable=False),
        schema=SCHEMA,
    )
    op.drop_constraint(
        "delivery_alert_id_owner_id_target_key_key", "delivery", schema=SCHEMA, type_="unique"
    )
    op.create_unique_constraint(
        "delivery_alert_id_owner_id_target_key_event_key",
        "delivery",
        ["alert_id", "owner_id", "target_key", "event"],
        schema=SCHEMA,
    )

    # --- items joined to an alert (cross-channel merge, incidents) -------------------------
    op.create_table(
        "alert_item",
        sa.Column("feedback_id", sa.Uuid(), nullable=False),
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["feedback_id"],
            ["alerts.feedback.id"],
            name=op.f("alert_item_feedback_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.alert.id"],
            name=op.f("alert_item_alert_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("feedback_id", name=op.f("alert_item_pkey")),
        schema=SCHEMA,
    )
    op.create_index("ix_alert_item_alert_id", "alert_item", ["alert_id"], schema=SCHEMA)

    # --- customer identities of open alerts (id, email, phone, handle) ---------------------
    op.create_table(
        "alert_identity",
        sa.Column("alert_id", sa.Uuid(), nullable=False),
        sa.Column("identity", sa.String(320), nullable=False),
        sa.ForeignKeyConstraint(
            ["alert_id"],
            ["alerts.alert.id"],
            name=op.f("alert_identity_alert_id_fkey"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("alert_id", "identity", name=op.f("alert_identity_pkey")),
        schema=SCHEMA,
    )
    op.create_index("ix_alert_identity_identity", "alert_identity", ["identity"], schema=SCHEMA)

    # --- owners (admin API; seeded from the routing file) ----------------------------------
    op.create_table(
        "owner",
        sa.Column("id", sa.String(128), nullable=False),
        sa.Column("definition", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("managed_by", sa.String(8), nullable=False),
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
        sa.CheckConstraint("managed_by IN ('file', 'api')", name=op.f("owner_managed_by_check")),
        sa.PrimaryKeyConstraint("id", name=op.f("owner_pkey")),
        schema=SCHEMA,
    )

    # --- notify target health --------------------------------------------------------------
    op.create_table(
        "target_health",
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("target_key", sa.String(128), nullable=False),
        sa.Column(
            "consecutive_failures", sa.Integer(), server_default=sa.text("0"), nullable=False
        ),
        _tstz("unhealthy_since"),
        _tstz("last_failure_at"),
        _tstz("last_success_at"),
        sa.PrimaryKeyConstraint("owner_id", "target_key", name=op.f("target_health_pkey")),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_table("target_health", schema=SCHEMA)
    op.drop_table("owner", schema=SCHEMA)
    op.drop_index("ix_alert_identity_identity", table_name="alert_identity", schema=SCHEMA)
    op.drop_table("alert_identity", schema=SCHEMA)
    op.drop_index("ix_alert_item_alert_id", table_name="alert_item", schema=SCHEMA)
    op.drop_table("alert_item", schema=SCHEMA)
    op.drop_constraint(
        "delivery_alert_id_owner_id_target_key_event_key", "delivery", schema=SCHEMA, type_="unique"
    )
    op.execute(f"DELETE FROM {SCHEMA}.delivery WHERE event <> 'alert.raised'")
    op.create_unique_constraint(
        "delivery_alert_id_owner_id_target_key_key",
        "delivery",
        ["alert_id", "owner_id", "target_key"],
        schema=SCHEMA,
    )
    op.drop_column("delivery", "event", schema=SCHEMA)
    op.drop_column("sentiment_score", "urgency", schema=SCHEMA)
    op.drop_column("sentiment_score", "topics", schema=SCHEMA)
    op.drop_column("alert_event", "details", schema=SCHEMA)
    op.drop_index("ix_alert_incident_key", table_name="alert", schema=SCHEMA)
    op.drop_index("ix_alert_resolve_due_at", table_name="alert", schema=SCHEMA)
    op.drop_index("ix_alert_ack_due_at", table_name="alert", schema=SCHEMA)
    op.drop_constraint("alert_kind_check", "alert", schema=SCHEMA, type_="check")
    for column in (
        "kind",
        "assignee",
        "root_cause",
        "escalation_level",
        "escalated_at",
        "escalated_to",
        "reopened_count",
        "ack_due_at",
        "resolve_due_at",
        "ack_breached_at",
        "resolve_breached_at",
        "item_count",
        "last_item_at",
        "incident_key",
        "customer_reply",
        "customer_reply_status",
        "customer_reply_at",
        "customer_reply_detail",
    ):
        op.drop_column("alert", column, schema=SCHEMA)
