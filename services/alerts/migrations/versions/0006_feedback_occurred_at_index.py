"""An index on when feedback occurred: the KPIs (every minute, for the gauges) and the
feedback list select by that time, which was a scan of every stored item.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "alerts"


def upgrade() -> None:
    op.create_index("ix_feedback_occurred_at_id", "feedback", ["occurred_at", "id"], schema=SCHEMA)


def downgrade() -> None:
    op.drop_index("ix_feedback_occurred_at_id", "feedback", schema=SCHEMA)
