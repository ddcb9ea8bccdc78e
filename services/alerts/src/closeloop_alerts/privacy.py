"""The customer's right to be forgotten, and the rotation of the PII keys.

**Erasure** (``POST /v1/privacy/erasures``) finds every feedback item of a customer by the
blind indexes of the identifiers given (and of every other identifier those items carry,
until no new item turns up), then, in one transaction:

* feedback: text ``[erased]``, no subject, no attributes, no contact fields, the external
  id masked, ``erased_at`` set. The row stays, anonymised, so a replay of its Kafka event
  is recognised as stored and does not bring the data back; scores (a label and numbers)
  and alert links stay, so KPIs keep their counts;
* blind indexes of the customer (``customer_identity``, ``alert_identity``): deleted;
* their alerts: the reply to the customer erased, the resolution note masked;
* the audit trail of those alerts: ``note`` and ``details`` masked (the only change the
  append-only trigger allows, and only inside an erasure), and one ``customer_erased``
  entry per alert that names the erasure, not the customer;
* the outbox: customer reply requests and published events of those items deleted, notes
  of unpublished lifecycle events masked;
* deliveries store no payload (it is rendered when sent), so pending ones send the
  anonymised item.

Masking removes e-mails, phones, card and ID numbers, and every contact value the
customer's items carried (their name, handle, ...). The erasure itself is recorded in
``privacy_erasure`` with counts and which kinds of identifier were given, never values.
Running it again finds nothing and changes nothing.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import pii, repository
from closeloop_alerts.clock import Clock, system_clock
from closeloop_alerts.config import AlertsSettings
from closeloop_alerts.models import (
    Alert,
    AlertEvent,
    AlertIdentity,
    AlertItem,
    CustomerIdentity,
    Feedback,
    Outbox,
    PrivacyErasure,
)
from closeloop_alerts.outbox import CUSTOMER_REPLY_TOPIC
from closeloop_shared.config import DatabaseSettings
from closeloop_shared.db.engine import create_engine, create_sessionmaker
from closeloop_shared.logging import get_logger
from closeloop_shared.redaction import DEFAULT_REDACTOR

log = get_logger(__name__)

ERASED = "[erased]"
# Identifiers shared by several customers would chain erasures across them: stop after
# this many rounds of "the items found carry further identifiers".
_MAX_ROUNDS = 5


@dataclass(frozen=True)
class ErasureRequest:
    customer_id: str | None = None
    email: str | None = None
    phone: str | None = None
    handle: str | None = None
    actor: str | None = None
    reference: str | None = None

    def identities(self) -> list[str]:
        return pii.identities(
            {
                "id": self.customer_id,
                "email": self.email,
                "phone": self.phone,
                "handle": self.handle,
            }
        )

    def kinds(self) -> list[str]:
        return [identity.partition(":")[0] for identity in self.identities()]


@dataclass(frozen=True)
class Erasure:
    id: uuid.UUID
    requested_at: datetime
    counts: dict[str, int]


def _mask(value: str | None, known: Sequence[str]) -> str | None:
    return None if value is None else DEFAULT_REDACTOR.redact_text(value, known)


def _mask_any(value: Any, known: Sequence[str]) -> Any:
    if isinstance(value, str):
        return DEFAULT_REDACTOR.redact_text(value, known)
    if isinstance(value, dict):
        return {key: _mask_any(item, known) for key, item in value.items()}
    if isinstance(value, list):
        return [_mask_any(item, known) for item in value]
    return value


async def erase(
    sessionmaker: async_sessionmaker[AsyncSession],
    request: ErasureRequest,
    *,
    clock: Clock = system_clock,
) -> Erasure:
    erasure_id = uuid.uuid4()
    async with sessionmaker() as session, session.begin():
        now = clock()
        counts = await _erase(session, request, erasure_id, now)
        session.add(
            PrivacyErasure(
                id=erasure_id,
                requested_at=now,
                actor=request.actor,
                reference=request.reference,
                identifier_kinds=request.kinds(),
                counts=counts,
            )
        )
    log.info("customer_erased", erasure_id=str(erasure_id), **counts)
    return Erasure(erasure_id, now, counts)


async def _find_items(
    session: AsyncSession, keyring: pii.Keyring, identities: Iterable[str]
) -> tuple[dict[uuid.UUID, Feedback], set[str]]:
    """The customer's items (customers opened) and every blind index they answer to."""
    blinded = set(keyring.blind_all(identities))
    items: dict[uuid.UUID, Feedback] = {}
    searched: set[str] = set()
    for _ in range(_MAX_ROUNDS):
        fresh = blinded - searched
        if not fresh:
            break
        searched |= fresh
        found = await session.scalars(
            select(Feedback)
            .join(CustomerIdentity, CustomerIdentity.feedback_id == Feedback.id)
            .where(CustomerIdentity.identity.in_(sorted(fresh)), Feedback.id.not_in(items))
            .with_for_update(of=Feedback)
        )
        for feedback in found.unique():
            items[feedback.id] = repository.reveal(session, feedback)
            blinded |= set(keyring.blind_all(pii.identities(feedback.customer)))
    return items, blinded


async def _erase(
    session: AsyncSession, request: ErasureRequest, erasure_id: uuid.UUID, now: datetime
) -> dict[str, int]:
    keyring = pii.keyring_of(session)
    items, blinded = await _find_items(session, keyring, request.identities())
    feedback_ids = sorted(items)
    known = sorted(
        {
            str(value)
            for feedback in items.values()
            for name, value in feedback.customer.items()
            if name not in pii.CLEAR_CUSTOMER_FIELDS and value
        }
        | {
            value
            for value in (request.customer_id, request.email, request.phone, request.handle)
            if value
        },
        key=len,
        reverse=True,
    )

    alert_ids: set[uuid.UUID] = set(
        (
            await session.scalars(
                select(AlertIdentity.alert_id).where(AlertIdentity.identity.in_(sorted(blinded)))
            )
        ).all()
    )
    if feedback_ids:
        alert_ids |= set(
            await session.scalars(select(Alert.id).where(Alert.feedback_id.in_(feedback_ids)))
        )
        alert_ids |= set(
            await session.scalars(
                select(AlertItem.alert_id).where(AlertItem.feedback_id.in_(feedback_ids))
            )
        )
    alerts = list(
        (
            await session.scalars(
                select(Alert).where(Alert.id.in_(sorted(alert_ids))).order_by(Alert.id)
            )
        ).all()
    )

    for feedback in items.values():
        feedback.text = ERASED
        feedback.subject = None
        feedback.attributes = {}
        feedback.customer = {}
        feedback.external_id = DEFAULT_REDACTOR.redact_text(feedback.external_id, known)
        feedback.erased_at = now

    customer_identities = 0
    if feedback_ids:
        removed = await session.execute(
            delete(CustomerIdentity)
            .where(CustomerIdentity.feedback_id.in_(feedback_ids))
            .returning(CustomerIdentity.identity)
        )
        customer_identities = len(removed.all())
    removed_alert_identities = await session.execute(
        delete(AlertIdentity)
        .where(AlertIdentity.identity.in_(sorted(blinded)))
        .returning(AlertIdentity.alert_id)
    )

    for alert in alerts:
        if alert.customer_reply is not None:
            alert.customer_reply = ERASED
        alert.customer_reply_detail = _mask(alert.customer_reply_detail, known)
        alert.resolution_note = _mask(alert.resolution_note, known)
        alert.updated_at = now
    await session.flush()

    audit_masked = await _mask_audit(session, sorted(alert_ids), known)
    outbox_changed = await _scrub_outbox(
        session, {*feedback_ids, *(alert.feedback_id for alert in alerts)}, known
    )
    counts = {
        "feedback": len(items),
        "alerts": len(alerts),
        "customer_identities": customer_identities,
        "alert_identities": len(removed_alert_identities.all()),
        "audit_entries_masked": audit_masked,
        "outbox_events": outbox_changed,
    }
    await repository.insert_rows(
        session,
        AlertEvent,
        [
            {
                "alert_id": alert.id,
                "type": "customer_erased",
                "from_status": alert.status,
                "to_status": alert.status,
                "actor": request.actor,
                "note": None,
                "occurred_at": now,
                "details": {"erasure_id": str(erasure_id)},
            }
            for alert in alerts
        ],
    )
    return counts


async def _mask_audit(
    session: AsyncSession, alert_ids: Sequence[uuid.UUID], known: Sequence[str]
) -> int:
    """Mask notes and details of the alerts' audit entries; returns how many changed."""
    if not alert_ids:
        return 0
    # The append-only trigger lets exactly this through, for this transaction only.
    await session.execute(text("SELECT set_config('closeloop.erasure', 'on', true)"))
    changed = 0
    rows = await session.execute(
        select(AlertEvent.id, AlertEvent.note, AlertEvent.details).where(
            AlertEvent.alert_id.in_(alert_ids)
        )
    )
    for event_id, note, details in rows.all():
        masked_note, masked_details = _mask(note, known), _mask_any(details, known)
        if masked_note != note or masked_details != details:
            await session.execute(
                update(AlertEvent)
                .where(AlertEvent.id == event_id)
                .values(note=masked_note, details=masked_details)
            )
            changed += 1
    await session.execute(text("SELECT set_config('closeloop.erasure', 'off', true)"))
    return changed


async def _scrub_outbox(
    session: AsyncSession, feedback_ids: set[uuid.UUID], known: Sequence[str]
) -> int:
    """Delete reply requests and published events of the items; mask unpublished notes."""
    if not feedback_ids:
        return 0
    keys = [str(feedback_id).encode() for feedback_id in sorted(feedback_ids)]
    deleted = await session.execute(
        delete(Outbox)
        .where(
            Outbox.key.in_(keys),
            (Outbox.topic == CUSTOMER_REPLY_TOPIC) | Outbox.published_at.is_not(None),
        )
        .returning(Outbox.id)
    )
    changed = len(deleted.all())
    pending = await session.execute(
        select(Outbox.id, Outbox.payload).where(Outbox.key.in_(keys), Outbox.published_at.is_(None))
    )
    for row_id, payload in pending.all():
        event = orjson.loads(payload)
        data = event.get("data")
        if isinstance(data, dict) and isinstance(data.get("note"), str):
            masked_note = _mask(data["note"], known)
            if masked_note != data["note"]:
                data["note"] = masked_note
                await session.execute(
                    update(Outbox).where(Outbox.id == row_id).values(payload=orjson.dumps(event))
                )
                changed += 1
    return changed


# --- key rotation -------------------------------------------------------------------------------


@dataclass(frozen=True)
class RotationReport:
    scanned: int
    resealed: int
    last_id: uuid.UUID | None


async def rotate_keys(
    sessionmaker: async_sessionmaker[AsyncSession],
    *,
    batch_size: int = 500,
    after: uuid.UUID | None = None,
) -> RotationReport:
    """Re-seal every stored customer under the active key, one transaction per batch in id
    order. Interrupted, it resumes from ``after`` (the last id it logged), or from the start,
    where already re-sealed rows are only read."""
    scanned = resealed = 0
    last = after
    while True:
        async with sessionmaker() as session, session.begin():
            keyring = pii.keyring_of(session)
            statement = select(Feedback.id, Feedback.customer).order_by(Feedback.id)
            if last is not None:
                statement = statement.where(Feedback.id > last)
            rows = (
                await session.execute(
                    statement.limit(batch_size).with_for_update(skip_locked=False)
                )
            ).all()
            if not rows:
                break
            for feedback_id, customer in rows:
                fresh = pii.reseal_customer(keyring, feedback_id, customer)
                if fresh is not None:
                    await session.execute(
                        update(Feedback).where(Feedback.id == feedback_id).values(customer=fresh)
                    )
                    resealed += 1
            scanned += len(rows)
            last = rows[-1][0]
        log.info("pii_rotation_progress", scanned=scanned, resealed=resealed, last_id=str(last))
    return RotationReport(scanned, resealed, last)


async def run_rotation(
    settings: AlertsSettings, database: DatabaseSettings, *, after: uuid.UUID | None = None
) -> RotationReport:
    """``closeloop-alerts rotate-pii-key``: its own engine, the keyring of the settings."""
    engine = create_engine(database, application_name="closeloop-alerts-rotate-pii-key")
    try:
        sessionmaker = pii.bind(create_sessionmaker(engine), settings.pii_keyring())
        return await rotate_keys(
            sessionmaker, batch_size=settings.pii_rotation_batch_size, after=after
        )
    finally:
        await engine.dispose()
