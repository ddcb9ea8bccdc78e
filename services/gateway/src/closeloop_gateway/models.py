"""Tables of the ``gateway`` schema: API keys, stored as hashes only."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import CheckConstraint, DateTime, String, Uuid, func
from sqlalchemy.dialects.postgresql import ARRAY
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
    )

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    # The first characters of the key, to tell keys apart in a list; never enough to use.
    prefix: Mapped[str] = mapped_column(String(16))
    # Hex SHA-256 of the key; unique, and the index every lookup uses.
    hash: Mapped[str] = mapped_column(String(64), unique=True)
    scopes: Mapped[list[str]] = mapped_column(ARRAY(String(32)))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Refreshed when a replica loads the key into its cache, so precise to the cache TTL.
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
