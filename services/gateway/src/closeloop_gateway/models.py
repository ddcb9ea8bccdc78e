"""Tables of the ``gateway`` schema: API keys (stored as hashes only) and the access audit."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    Identity,
    Index,
    SmallInteger,
    String,
    Uuid,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, INET
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from closeloop_shared.db.engine import make_base

SCHEMA = "gateway"

if TYPE_CHECKING:
    # mypy cannot subclass the value make_base() returns; it has exactly this shape.
    class Base(DeclarativeBase):
        pass
else:
    Base = make_base(SCHEMA)


class ApiKey(Base):
    __tablename__ = "api_key"
    __table_args__ = (
        CheckConstraint("char_length(hash) = 64", name="hash_is_sha256_hex"),
        CheckConstraint("cardinality(scopes) > 0", name="has_scopes"),
        CheckConstraint("role IN ('channel', 'agent', 'lead', 'admin')", name="known_role"),
        # Agents and leads act for exactly one team; the other roles for none.
        CheckConstraint("(role IN ('agent', 'lead')) = (team IS NOT NULL)", name="team_for_role"),
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the key, to tell keys apart in a list; never enough to use.
    prefix: Mapped[str] = mapped_column(String(16))
    # Hex SHA-256 of the key; unique, and the index every lookup uses.
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    role: Mapped[str] = mapped_column(String(16))
    # An owner id from routing (e.g. hotline-team): the alerts an agent or lead works.
    team: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Refreshed when a replica loads the key into its cache, so precise to the cache TTL.
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class AccessAudit(Base):
    """One refused or privileged request. Append-only: a trigger (migration 0002) refuses
    UPDATE, DELETE and TRUNCATE. Never the key, never a body."""

    __tablename__ = "access_audit"
    __table_args__ = (
        Index("ix_access_audit_at", "at"),
        Index("ix_access_audit_key_id_id", "key_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigInteger, Identity(), primary_key=True)
    # When the gateway answered (not when the row was written: writes are batched).
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # "denied" or "privileged".
    kind: Mapped[str] = mapped_column(String(16))
    key_id: Mapped[uuid.UUID | None] = mapped_column(Uuid)
    key_name: Mapped[str | None] = mapped_column(String(100))
    role: Mapped[str | None] = mapped_column(String(16))
    team: Mapped[str | None] = mapped_column(String(128))
    method: Mapped[str] = mapped_column(String(16))
    # The route template (/v1/alerts/{alert_id}), never the concrete path.
    route: Mapped[str] = mapped_column(String(200))
    status: Mapped[int] = mapped_column(SmallInteger)
    reason: Mapped[str | None] = mapped_column(String(64))
    # What a privileged action acted on (key_id=..., owner_id=...): ids, never content.
    target: Mapped[str | None] = mapped_column(String(300))
    client_ip: Mapped[str | None] = mapped_column(INET)
