"""API key roles and teams; the append-only access audit.

Existing keys keep working: a key holding only ``feedback:write`` becomes a ``channel``
key, every other key ``admin`` (it saw every alert before roles existed and still does;
its scopes still limit what it may do). The same rule is ``auth.legacy_role``.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
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

SCHEMA = "gateway"


def upgrade() -> None:
    op.add_column("api_key", sa.Column("role", sa.String(length=16), nullable=True), schema=SCHEMA)
    op.add_column("api_key", sa.Column("team", sa.String(length=128), nullable=True), schema=SCHEMA)
    op.execute(
        f"UPDATE {SCHEMA}.api_key SET role = CASE "
        "WHEN scopes <@ ARRAY['feedback:write']::varchar[] THEN 'channel' ELSE 'admin' END"
    )
    op.alter_column("api_key", "role", nullable=False, schema=SCHEMA)
    # Plain SQL: the names must be exactly these (the metadata's naming convention would
    # otherwise be applied on top of them).
    op.execute(
        f"ALTER TABLE {SCHEMA}.api_key ADD CONSTRAINT api_key_known_role_check "
        "CHECK (role IN ('channel', 'agent', 'lead', 'admin'))"
    )
    op.execute(
        f"ALTER TABLE {SCHEMA}.api_key ADD CONSTRAINT api_key_team_for_role_check "
        "CHECK ((role IN ('agent', 'lead')) = (team IS NOT NULL))"
    )

    op.create_table(
        "access_audit",
        sa.Column("id", sa.BigInteger(), sa.Identity(always=False), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("key_id", sa.Uuid(), nullable=True),
        sa.Column("key_name", sa.String(length=100), nullable=True),
        sa.Column("role", sa.String(length=16), nullable=True),
        sa.Column("team", sa.String(length=128), nullable=True),
        sa.Column("method", sa.String(length=16), nullable=False),
        sa.Column("route", sa.String(length=200), nullable=False),
        sa.Column("status", sa.SmallInteger(), nullable=False),
        sa.Column("reason", sa.String(length=64), nullable=True),
        sa.Column("target", sa.String(length=300), nullable=True),
        sa.Column("client_ip", postgresql.INET(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="access_audit_pkey"),
        schema=SCHEMA,
    )
    op.create_index("ix_access_audit_at", "access_audit", ["at"], schema=SCHEMA)
    op.create_index("ix_access_audit_key_id_id", "access_audit", ["key_id", "id"], schema=SCHEMA)
    # Append-only for the gateway's own database user too: an attacker holding the
    # gateway's credentials cannot quietly edit what was recorded.
    op.execute(
        f"""
        CREATE FUNCTION {SCHEMA}.access_audit_is_append_only() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'access_audit is append-only (% refused)', TG_OP
                USING ERRCODE = 'insufficient_privilege';
        END
        $$
        """
    )
    op.execute(
        f"CREATE TRIGGER access_audit_no_change BEFORE UPDATE OR DELETE ON {SCHEMA}.access_audit "
        f"FOR EACH ROW EXECUTE FUNCTION {SCHEMA}.access_audit_is_append_only()"
    )
    op.execute(
        f"CREATE TRIGGER access_audit_no_truncate BEFORE TRUNCATE ON {SCHEMA}.access_audit "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {SCHEMA}.access_audit_is_append_only()"
    )


def downgrade() -> None:
    op.drop_table("access_audit", schema=SCHEMA)
    op.execute(f"DROP FUNCTION {SCHEMA}.access_audit_is_append_only()")
    op.execute(f"ALTER TABLE {SCHEMA}.api_key DROP CONSTRAINT api_key_team_for_role_check")
    op.execute(f"ALTER TABLE {SCHEMA}.api_key DROP CONSTRAINT api_key_known_role_check")
    op.drop_column("api_key", "team", schema=SCHEMA)
    op.drop_column("api_key", "role", schema=SCHEMA)
