"""Incident alerts for spikes: one item may raise its own alert and trigger an incident.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "alerts"


def upgrade() -> None:
    op.drop_constraint("alert_feedback_id_key", "alert", schema=SCHEMA, type_="unique")
    # Still one item alert per feedback item (redeliveries hit this and do nothing).
    op.create_index(
        "ix_alert_item_feedback_id",
        "alert",
        ["feedback_id"],
        unique=True,
        schema=SCHEMA,
        postgresql_where=sa.text("kind = 'item'"),
    )
    op.create_index("ix_alert_feedback_id", "alert", ["feedback_id"], schema=SCHEMA)


def downgrade() -> None:
    op.execute(f"DELETE FROM {SCHEMA}.alert WHERE kind = 'spike'")
    op.drop_index("ix_alert_feedback_id", table_name="alert", schema=SCHEMA)
    op.drop_index("ix_alert_item_feedback_id", table_name="alert", schema=SCHEMA)
    op.create_unique_constraint("alert_feedback_id_key", "alert", ["feedback_id"], schema=SCHEMA)
