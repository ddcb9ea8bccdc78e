"""Owners in the database: managed through the admin API, seeded from the routing file,
and reloaded into the running router without a restart.

* The routing file's owners are **seeded** into ``alerts.owner`` (``managed_by = 'file'``)
  at start and whenever the file changes; a file owner that the admin API edited becomes
  ``managed_by = 'api'`` and the file no longer overwrites it.
* Every replica polls the file (modification time and size) and the owner table
  (count and last change) every ``routing_reload_interval_s`` and swaps in a new
  :class:`Router` when either changed; the replica that served an admin change swaps at
  once. A file that became invalid is logged and ignored: the last good one stays in use.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime, time
from pathlib import Path
from typing import Any

from pydantic import AnyUrl, SecretStr, ValidationError
from sqlalchemy import delete, func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts.clock import Clock, system_clock
from closeloop_alerts.models import OwnerRecord
from closeloop_alerts.routing import (
    Owner,
    Router,
    RoutingConfig,
    RoutingError,
    RoutingState,
    load_routing,
)
from closeloop_shared.logging import get_logger

log = get_logger(__name__)


def _plain(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    if isinstance(value, AnyUrl):
        return str(value)
    if isinstance(value, time):
        return value.strftime("%H:%M")
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return getattr(value, "value", value)


def definition_of(owner: Owner) -> dict[str, Any]:
    """The owner as a routing-file mapping, secrets included (stored, never returned)."""
    return dict(_plain(owner.model_dump(mode="python", exclude_none=True)))


class OwnerConflict(ValueError):
    pass


class OwnerStore:
    def __init__(
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        state: RoutingState,
        routing_file: Path | None,
        *,
        clock: Clock = system_clock,
    ) -> None:
        self._sessionmaker = sessionmaker
        self.state = state
        self._file = routing_file
        self._clock = clock
        self._file_stamp = self._stamp()
        self._owners_stamp: tuple[int, datetime | None] | None = None

    def _stamp(self) -> tuple[float, int] | None:
        if self._file is None:
            return None
        try:
            stat = self._file.stat()
        except OSError:
            return None
        return (stat.st_mtime, stat.st_size)

    @property
    def config(self) -> RoutingConfig:
        return self.state.router.config

    async def seed(self, config: RoutingConfig) -> None:
        """Write the file's owners (those not taken over by the admin API); file owners
        that left the file are removed."""
        now = self._clock()
        async with self._sessionmaker() as session, session.begin():
            await session.execute(
                delete(OwnerRecord).where(
                    OwnerRecord.managed_by == "file",
                    OwnerRecord.id.not_in([owner.id for owner in config.owners]),
                )
            )
            for owner in config.owners:
                statement = insert(OwnerRecord).values(
                    id=owner.id,
                    definition=definition_of(owner),
                    managed_by="file",
                    created_at=now,
                    updated_at=now,
                )
                excluded = statement.excluded
                await session.execute(
                    statement.on_conflict_do_update(
                        index_elements=[OwnerRecord.id],
                        set_={"definition": excluded.definition, "updated_at": now},
                        where=(OwnerRecord.managed_by == "file")
                        & (OwnerRecord.definition != excluded.definition),
                    )
                )

    async def load(self) -> list[Owner]:
        async with self._sessionmaker() as session:
            rows = (await session.scalars(select(OwnerRecord).order_by(OwnerRecord.id))).all()
        owners = []
        for row in rows:
            try:
                owners.append(Owner.model_validate(row.definition))
            except ValidationError as error:
                log.warning("owner_invalid", owner=row.id, errors=error.error_count())
        return owners

    async def _owners_changed(self) -> bool:
        async with self._sessionmaker() as session:
            count, last = (
                await session.execute(
                    select(func.count(), func.max(OwnerRecord.updated_at)).select_from(OwnerRecord)
                )
            ).one()
        stamp = (int(count), last)
        changed = stamp != self._owners_stamp
        self._owners_stamp = stamp
        return changed

    async def start(self, config: RoutingConfig) -> None:
        """Seed the file's owners and build the router from the database."""
        await self.seed(config)
        await self._owners_changed()
        self.state.replace(Router(config, await self.load()))

    async def refresh(self, *, force: bool = False) -> bool:
        """Reload what changed; True if a new router is in use."""
        config = self.config
        stamp = self._stamp()
        file_changed = stamp != self._file_stamp and self._file is not None
        if file_changed:
            self._file_stamp = stamp
            try:
                config = load_routing(self._file)  # type: ignore[arg-type]
            except RoutingError as error:
                log.error("routing_file_invalid_kept_previous", problems=error.problems)
                file_changed = False
            else:
                await self.seed(config)
        owners_changed = await self._owners_changed()
        if not (force or file_changed or owners_changed):
            return False
        self.state.replace(Router(config, await self.load()))
        log.info("routing_reloaded", file_changed=file_changed, owners_changed=owners_changed)
        return True

    async def run(self, interval_s: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.sleep(interval_s)
            try:
                await self.refresh()
            except asyncio.CancelledError:
                raise
            except Exception as error:
                log.warning("routing_reload_failed", error=type(error).__name__)

    # --- admin API ----------------------------------------------------------------------------

    async def records(self) -> dict[str, OwnerRecord]:
        async with self._sessionmaker() as session:
            rows = (await session.scalars(select(OwnerRecord).order_by(OwnerRecord.id))).all()
        return {row.id: row for row in rows}

    async def put(self, owner: Owner) -> bool:
        """Create or replace an owner; returns True if it was created."""
        router = self.state.router
        if owner.escalation_owner is not None and router.owner(owner.escalation_owner) is None:
            raise OwnerConflict(f"escalation_owner: unknown owner {owner.escalation_owner!r}")
        now = self._clock()
        async with self._sessionmaker() as session, session.begin():
            existed = await session.get(OwnerRecord, owner.id, with_for_update=True)
            statement = insert(OwnerRecord).values(
                id=owner.id,
                definition=definition_of(owner),
                managed_by="api",
                created_at=now,
                updated_at=now,
            )
            await session.execute(
                statement.on_conflict_do_update(
                    index_elements=[OwnerRecord.id],
                    set_={
                        "definition": statement.excluded.definition,
                        "managed_by": "api",
                        "updated_at": now,
                    },
                )
            )
        await self.refresh(force=True)
        return existed is None

    async def delete(self, owner_id: str) -> bool:
        """Remove an owner nobody refers to; False if there was none."""
        config = self.config
        if any(owner.id == owner_id for owner in config.owners):
            raise OwnerConflict(
                f"owner {owner_id!r} is defined in the routing file; remove it there"
            )
        users = [rule.id for rule in config.rules if rule.owner == owner_id]
        if config.default_owner == owner_id or users:
            raise OwnerConflict(f"owner {owner_id!r} is used by routing rules: {users}")
        escalating = [
            owner.id for owner in self.state.router.owners if owner.escalation_owner == owner_id
        ]
        if escalating:
            raise OwnerConflict(f"owner {owner_id!r} is the escalation owner of {escalating}")
        async with self._sessionmaker() as session, session.begin():
            removed = await session.execute(
                delete(OwnerRecord).where(OwnerRecord.id == owner_id).returning(OwnerRecord.id)
            )
            found = removed.first() is not None
        await self.refresh(force=True)
        return found
