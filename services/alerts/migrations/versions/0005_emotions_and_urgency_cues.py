"""What the sentiment service found besides topics and urgency: emotions and urgency cues.

* ``sentiment_score.emotions``: emotion → intensity (0..1), as the ``sentiment.scored``
  event carries it; ``{}`` for scores stored before this revision.
* ``sentiment_score.urgency_cues``: ``kind: matched text`` for each urgency cue found
  (e.g. ``cancel: close my account``); ``[]`` for older scores. The console finds the
  matched text in the feedback to highlight it.

The contract carries no spans for topics or emotions, so none are stored.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCHEMA = "alerts"


def upgrade() -> None:
    # Constant defaults: PostgreSQL adds these columns without rewriting the table.
    op.add_column(
        "sentiment_score",
        sa.Column(
            "emotions",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'{}'::jsonb"),
            nullable=False,
        ),
        schema=SCHEMA,
    )
    op.add_column(
        "sentiment_score",
        sa.Column(
            "urgency_cues",
            postgresql.JSONB(astext_type=sa.Text()),
            server_default=sa.text("'[]'::jsonb"),
            nullable=False,
        ),
        schema=SCHEMA,
    )


def downgrade() -> None:
    op.drop_column("sentiment_score", "urgency_cues", schema=SCHEMA)
    op.drop_column("sentiment_score", "emotions", schema=SCHEMA)
