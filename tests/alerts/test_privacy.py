"""Erasure (right to be forgotten) on real PostgreSQL, and masked notifications."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import repository
from closeloop_alerts.delivery_payload import masked
from closeloop_alerts.models import (
    Alert,
    AlertEvent,
    CustomerIdentity,
    Feedback,
    Outbox,
    PrivacyErasure,
)
from closeloop_alerts.outbox import CUSTOMER_REPLY_TOPIC
from closeloop_alerts.privacy import ERASED, ErasureRequest, erase
from closeloop_alerts.routing import Owner, Router, RoutingState, parse_routing
from closeloop_alerts.service import AlertIntake, Lifecycle
from closeloop_shared.contracts.feedback import Channel, Customer
from closeloop_shared.contracts.sentiment import ScoredFeedback, SentimentLabel
from tests.alerts.support import MINIMAL_ROUTING, scored

Sessions = async_sessionmaker[AsyncSession]

NAME = "Lin Qingxue"
EMAIL = "lin.qingxue@example.com"
PHONE = "+86 138 0013 8000"
ROUTING = MINIMAL_ROUTING + "merge: {window: 2h}\n"


def of(item: ScoredFeedback, text_: str, **customer: str) -> ScoredFeedback:
    feedback = item.feedback.model_copy(update={"customer": Customer(**customer), "text": text_})
    return item.model_copy(update={"feedback": feedback})


async def _everything_mentioning(session: AsyncSession, *needles: str) -> list[str]:
    """Rows of every alerts table whose text form contains any of ``needles``."""
    tables = (
        await session.scalars(
            text("SELECT table_name FROM information_schema.tables WHERE table_schema = 'alerts'")
        )
    ).all()
    hits = []
    for table in tables:
        for needle in needles:
            # The outbox payload is bytea: a row's text form would show it as hex.
            payload = (
                " OR convert_from(t.payload, 'UTF8') ILIKE :needle" if table == "outbox" else ""
            )
            found = await session.scalar(
                text(f"SELECT count(*) FROM alerts.{table} t WHERE t::text ILIKE :needle{payload}"),
                {"needle": f"%{needle}%"},
            )
            if found:
                hits.append(f"{table}: {needle}")
    return hits


async def test_erasure_anonymises_everything_of_the_customer_once(sessionmaker: Sessions) -> None:
    state = RoutingState(Router(parse_routing(ROUTING)))
    intake = AlertIntake(sessionmaker, state)
    complaint = of(
        scored(channel=Channel.EMAIL),
        f"I am {NAME}, call me on {PHONE} or write to {EMAIL}. Card 4111 1111 1111 1111.",
        email=EMAIL,
        name=NAME,
        phone=PHONE,
    )
    # Known only by the phone: found because the first item carries that phone too.
    follow_up = of(scored(channel=Channel.SOCIAL), "Still broken!", phone="+86-138-0013-8000")
    praise = of(
        scored(channel=Channel.APP, label=SentimentLabel.POSITIVE, score=0.8),
        "Works now, thanks",
        email=EMAIL.upper(),
    )
    someone_else = of(scored(), "Other person, other problem", email="other.person@example.com")
    await intake.process([complaint])
    await intake.process([follow_up, praise, someone_else])

    async with sessionmaker() as session:
        alert_id = await session.scalar(
            select(Alert.id).where(Alert.feedback_id == complaint.feedback.id)
        )
    assert alert_id is not None
    lifecycle = Lifecycle(sessionmaker, state)
    await lifecycle.comment(alert_id, actor="agent-7", text=f"Spoke to {NAME}, mail {EMAIL}")
    await lifecycle.resolve(
        alert_id,
        actor="agent-7",
        note=f"Refunded {NAME} ({PHONE})",
        customer_reply=f"Dear {NAME}, we refunded you.",
    )

    erasure = await erase(sessionmaker, ErasureRequest(email=EMAIL, actor="dpo", reference="T-1"))
    counts = erasure.counts
    assert counts["feedback"] == 3
    assert counts["alerts"] == 1
    assert counts["customer_identities"] >= 4  # email, phone (twice), ...
    assert counts["alert_identities"] >= 2
    assert counts["audit_entries_masked"] >= 2  # the comment and the resolution
    assert counts["outbox_events"] >= 1  # the reply request held the contact

    async with sessionmaker() as session:
        assert await _everything_mentioning(session, NAME, EMAIL, "13800138000", "4111 1111") == []
        for item in (complaint, follow_up, praise):
            row = await session.get(Feedback, item.feedback.id)
            assert row is not None
            assert row.text == ERASED
            assert row.customer == {}
            assert row.erased_at is not None
        other = await repository.get_feedback_detail(session, someone_else.feedback.id)
        assert other is not None
        assert other.feedback.customer == {"email": "other.person@example.com"}
        assert other.feedback.text == "Other person, other problem"
        assert not (
            await session.scalars(
                select(CustomerIdentity).where(
                    CustomerIdentity.feedback_id == complaint.feedback.id
                )
            )
        ).all()
        alert = await session.get(Alert, alert_id)
        assert alert is not None
        assert alert.customer_reply == ERASED
        assert alert.status == "resolved"
        history = (
            await session.scalars(
                select(AlertEvent).where(AlertEvent.alert_id == alert_id).order_by(AlertEvent.id)
            )
        ).all()
        assert [event.type for event in history][-1] == "customer_erased"
        assert history[-1].details == {"erasure_id": str(erasure.id)}
        assert history[-1].actor == "dpo"
        assert not (
            await session.scalars(select(Outbox).where(Outbox.topic == CUSTOMER_REPLY_TOPIC))
        ).all()
        record = await session.get(PrivacyErasure, erasure.id)
        assert record is not None
        assert record.identifier_kinds == ["email"]
        assert record.reference == "T-1"
        assert record.counts == counts

    # Idempotent: nothing left to find.
    again = await erase(sessionmaker, ErasureRequest(email=EMAIL))
    assert set(again.counts.values()) == {0}
    # A replay of the original event does not bring anything back.
    await intake.process([complaint])
    async with sessionmaker() as session:
        row = await session.get(Feedback, complaint.feedback.id)
        assert row is not None
        assert row.text == ERASED
        assert await _everything_mentioning(session, EMAIL) == []


async def test_the_audit_trail_stays_append_only_outside_an_erasure(
    sessionmaker: Sessions,
) -> None:
    state = RoutingState(Router(parse_routing(ROUTING)))
    item = of(scored(), "Broken", email="audit.case@example.com")
    await AlertIntake(sessionmaker, state).process([item])
    async with sessionmaker() as session:
        alert_id = await session.scalar(
            select(Alert.id).where(Alert.feedback_id == item.feedback.id)
        )

    async def rewrite(erasure_mode: bool, values: dict[str, str]) -> None:
        async with sessionmaker() as session, session.begin():
            if erasure_mode:
                await session.execute(text("SELECT set_config('closeloop.erasure', 'on', true)"))
            await session.execute(
                update(AlertEvent).where(AlertEvent.alert_id == alert_id).values(**values)
            )

    with pytest.raises(DBAPIError, match="append-only"):
        await rewrite(False, {"note": "rewritten"})
    # Even inside an erasure, only note and details may change.
    with pytest.raises(DBAPIError, match="append-only"):
        await rewrite(True, {"type": "forged"})
    with pytest.raises(DBAPIError, match="append-only"):
        await rewrite(True, {"actor": "someone-else"})
    await rewrite(True, {"note": "masked by an erasure"})


def test_masked_notifications_drop_contact_data_and_mask_the_text() -> None:
    now = datetime.now(UTC)
    feedback = Feedback(
        id=uuid.uuid4(),
        channel="email",
        external_id=f"<msg-1+{EMAIL}>",
        text=f"{NAME} here, {PHONE}, ID 11010519491231002X",
        subject=f"From {NAME}",
        customer={"email": EMAIL, "name": NAME, "tier": "gold"},
        rating_type=None,
        rating_value=None,
        touchpoint=None,
        journey_stage=None,
        language="en",
        attributes={"transcript": [PHONE]},
        occurred_at=now,
        received_at=now,
    )
    shown = masked(feedback)
    assert shown.customer == {"tier": "gold"}
    assert shown.text == ("[redacted personal data] here, [redacted phone], ID [redacted cn_id]")
    assert shown.subject == "From [redacted personal data]"
    assert EMAIL not in shown.external_id
    assert shown.attributes == {}
    assert feedback.customer["email"] == EMAIL  # the stored row is untouched


def test_owners_choose_masking_and_chat_tools_are_masked_by_default() -> None:
    targets = [
        {"type": "webhook", "url": "https://hooks.example.com/a", "secret": "whsec_" + "A" * 32},
        {"type": "slack", "url": "https://hooks.slack.com/services/x"},
        {"type": "email", "to": ["ops@example.com"]},
        {"type": "wecom", "url": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=k"},
    ]
    default = Owner.model_validate({"id": "a", "notify": targets})
    assert [default.redacts_pii(t) for _, t in default.targets()] == [False, True, True, True]
    everything = Owner.model_validate({"id": "b", "notify": targets, "redact_pii": True})
    assert all(everything.redacts_pii(t) for _, t in everything.targets())
    nothing = Owner.model_validate({"id": "c", "notify": targets, "redact_pii": False})
    assert not any(nothing.redacts_pii(t) for _, t in nothing.targets())
