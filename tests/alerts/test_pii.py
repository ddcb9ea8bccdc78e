"""Customer data at rest: sealed tokens, blind indexes, rotation, and what the database holds."""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from closeloop_alerts import pii, repository
from closeloop_alerts.models import Alert, AlertIdentity, CustomerIdentity, Feedback
from closeloop_alerts.pii import Keyring, PiiKeyError, PiiTokenError
from closeloop_alerts.privacy import rotate_keys
from closeloop_alerts.routing import Router, RoutingState, parse_routing
from closeloop_alerts.service import AlertIntake
from closeloop_shared.contracts.feedback import Channel, Customer
from closeloop_shared.contracts.sentiment import ScoredFeedback
from tests.alerts.support import MINIMAL_ROUTING, scored

Sessions = async_sessionmaker[AsyncSession]


def keyring(active: str = "k1", **keys: str) -> Keyring:
    keys = keys or {"k1": pii.new_key()}
    return Keyring({k: base64.b64decode(v) for k, v in keys.items()}, active, bytes(32))


# --- the keyring and its tokens -------------------------------------------------------------------


def test_keys_parse_as_json_or_pairs() -> None:
    first, second = pii.new_key(), pii.new_key()
    assert set(pii.parse_keys(f'{{"2025-01": "{first}", "2026-01": "{second}"}}')) == {
        "2025-01",
        "2026-01",
    }
    assert set(pii.parse_keys(f"a:{first}, b:{second}")) == {"a", "b"}
    ring = Keyring.parse(f"only:{first}", None, second)
    assert ring.active == "only"


@pytest.mark.parametrize(
    ("spec", "active", "message"),
    [
        ("k1:bm90IGEga2V5", "k1", "must be 32 bytes"),
        ("k1:***", "k1", "not base64"),
        ("bad id!:" + "A" * 44, None, "key id"),
        ("k1", "k1", "<key id>:<base64 key>"),
        ('{"k1": 3}', "k1", "JSON object"),
        ("", None, "no PII keys"),
    ],
)
def test_malformed_keys_are_refused_with_a_reason(
    spec: str, active: str | None, message: str
) -> None:
    with pytest.raises(PiiKeyError, match=message):
        Keyring.parse(spec, active, pii.new_key())


def test_the_active_key_must_be_known_and_named_when_there_are_several() -> None:
    spec = f"a:{pii.new_key()},b:{pii.new_key()}"
    with pytest.raises(PiiKeyError, match="name the active one"):
        Keyring.parse(spec, None, pii.new_key())
    with pytest.raises(PiiKeyError, match="not among the keys"):
        Keyring.parse(spec, "c", pii.new_key())


def test_a_token_opens_only_in_its_own_context() -> None:
    ring = keyring()
    token = ring.seal("dana@example.com", "alerts.feedback/1/customer/email")
    assert token.startswith(pii.TOKEN_PREFIX)
    assert "dana" not in token
    assert ring.open(token, "alerts.feedback/1/customer/email") == "dana@example.com"
    # Random nonces: the same value never gives the same token.
    assert ring.seal("dana@example.com", "alerts.feedback/1/customer/email") != token
    # Moved to another row or field, it does not decrypt.
    for other in ("alerts.feedback/2/customer/email", "alerts.feedback/1/customer/phone"):
        with pytest.raises(PiiTokenError):
            ring.open(token, other)


def test_a_tampered_or_foreign_token_is_refused() -> None:
    ring = keyring()
    token = ring.seal("x", "c")
    raw = bytearray(base64.urlsafe_b64decode(token.removeprefix("pii1.") + "=="))
    raw[-1] ^= 1
    tampered = "pii1." + base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    with pytest.raises(PiiTokenError):
        ring.open(tampered, "c")
    for junk in ("plain text", "pii1.***", "pii1.AAAA"):
        with pytest.raises(PiiTokenError):
            ring.open(junk, "c")
    with pytest.raises(PiiKeyError, match="no PII key 'k1'"):
        keyring("other", other=pii.new_key()).open(token, "c")


def test_old_tokens_open_after_the_active_key_changed() -> None:
    old_key, new_key = pii.new_key(), pii.new_key()
    before = keyring("k1", k1=old_key)
    after = keyring("k2", k1=old_key, k2=new_key)
    token = before.seal("13800138000", "c")
    assert after.open(token, "c") == "13800138000"
    assert pii.key_id_of(after.seal("x", "c")) == "k2"


def test_blind_indexes_are_stable_keyed_and_keep_only_the_kind() -> None:
    ring = keyring()
    blind = ring.blind("email:dana@example.com")
    assert blind == ring.blind("email:dana@example.com")
    assert blind.startswith("email:")
    assert "dana" not in blind
    other_index_key = Keyring(ring.keys, ring.active, b"\x01" * 32)
    assert other_index_key.blind("email:dana@example.com") != blind


def test_customers_are_sealed_field_by_field_except_the_tier() -> None:
    ring = keyring()
    feedback_id = uuid.uuid4()
    customer = {"id": "c-9", "email": "a@b.co", "tier": "gold", "name": "王芳"}
    stored = pii.seal_customer(ring, feedback_id, customer)
    assert stored["tier"] == "gold"
    assert all(pii.is_token(stored[name]) for name in ("id", "email", "name"))
    assert pii.open_customer(ring, feedback_id, stored) == customer
    assert pii.reseal_customer(ring, feedback_id, stored) is None
    rotated = keyring("k2", k1=base64.b64encode(ring.keys["k1"]).decode(), k2=pii.new_key())
    fresh = pii.reseal_customer(rotated, feedback_id, stored)
    assert fresh is not None
    assert {pii.key_id_of(fresh[name]) for name in ("id", "email", "name")} == {"k2"}
    assert pii.open_customer(rotated, feedback_id, fresh) == customer


def test_identities_are_normalised_per_kind() -> None:
    assert pii.identities(
        {"id": " C-1 ", "email": "Dana@Example.COM", "phone": "+86 138-0013-8000", "handle": "@dj"}
    ) == ["id:c-1", "email:dana@example.com", "phone:+8613800138000", "handle:dj"]
    assert pii.identities({"phone": "12-34", "email": "  "}) == []


def test_a_session_without_a_keyring_refuses_customer_data() -> None:
    class Bare:
        def __init__(self) -> None:
            self.info: dict[str, Any] = {}

    with pytest.raises(PiiKeyError, match="no PII keyring"):
        pii.keyring_of(Bare())  # type: ignore[arg-type]


# --- what the database holds --------------------------------------------------------------------

ADDRESS = "zhao.yun.pii@example.com"
PHONE = "+86 139 1234 5678"


def with_customer(item: ScoredFeedback, **customer: str) -> ScoredFeedback:
    feedback = item.feedback.model_copy(update={"customer": Customer(**customer)})
    return item.model_copy(update={"feedback": feedback})


async def test_contact_data_is_stored_sealed_and_read_back_in_clear(
    sessionmaker: Sessions,
) -> None:
    state = RoutingState(Router(parse_routing(MINIMAL_ROUTING + "merge: {window: 2h}\n")))
    first = with_customer(
        scored(channel=Channel.EMAIL), email=ADDRESS, name="Zhao Yun", phone=PHONE, tier="gold"
    )
    # The same customer on another channel, known only by the phone: merged by blind index.
    second = with_customer(scored(channel=Channel.SOCIAL), phone="+8613912345678", handle="zy")
    intake = AlertIntake(sessionmaker, state)
    await intake.process([first])
    await intake.process([second])

    async with sessionmaker() as session:
        dump = await session.scalar(
            text(
                "SELECT string_agg(t::text, ' ') FROM (SELECT customer::text AS t FROM "
                "alerts.feedback UNION ALL SELECT identity FROM alerts.alert_identity "
                "UNION ALL SELECT identity FROM alerts.customer_identity) s"
            )
        )
        assert dump is not None
        for clear in (ADDRESS, "Zhao Yun", "13912345678", "139 1234", '"zy"'):
            assert clear not in dump
        stored = await session.scalar(
            select(Feedback.customer).where(Feedback.id == first.feedback.id)
        )
        assert stored is not None
        assert stored["tier"] == "gold"
        assert pii.is_token(stored["email"])
        indexes = set(
            (
                await session.scalars(
                    select(CustomerIdentity.identity).where(
                        CustomerIdentity.feedback_id == first.feedback.id
                    )
                )
            ).all()
        )
        ring = pii.keyring_of(session)
        assert indexes == {
            ring.blind(f"email:{ADDRESS}"),
            ring.blind("phone:+8613912345678"),
        }
        alert = await session.scalar(select(Alert).where(Alert.feedback_id == first.feedback.id))
        assert alert is not None
        assert alert.item_count == 2  # the social item joined through the phone's index
        alert_indexes = set(
            (
                await session.scalars(
                    select(AlertIdentity.identity).where(AlertIdentity.alert_id == alert.id)
                )
            ).all()
        )
        assert ring.blind("handle:zy") in alert_indexes

    async with sessionmaker() as session:
        detail = await repository.get_feedback_detail(session, first.feedback.id)
        assert detail is not None
        assert detail.feedback.customer == {
            "email": ADDRESS,
            "name": "Zhao Yun",
            "phone": PHONE,
            "tier": "gold",
        }
        # Opening never marks the row dirty: committing writes nothing back in clear.
        await session.commit()
    async with sessionmaker() as session:
        again = await session.scalar(
            select(Feedback.customer).where(Feedback.id == first.feedback.id)
        )
        assert again is not None
        assert pii.is_token(again["email"])


async def test_rotation_reseals_every_row_and_resumes(sessionmaker: Sessions) -> None:
    state = RoutingState(Router(parse_routing(MINIMAL_ROUTING)))
    items = [with_customer(scored(), email=f"rot-{n}@example.com") for n in range(5)]
    await AlertIntake(sessionmaker, state).process(items)
    async with sessionmaker() as session:
        current = pii.keyring_of(session)
    new_key = pii.new_key()
    rotated = Keyring(
        {**current.keys, "rotated": base64.b64decode(new_key)}, "rotated", current.index_key
    )
    new_sessions = async_sessionmaker(sessionmaker.kw["bind"], expire_on_commit=False)
    pii.bind(new_sessions, rotated)

    # An interrupted run: resume after the second id, then a full run finishes the rest.
    ids = sorted(item.feedback.id for item in items)
    partial = await rotate_keys(new_sessions, batch_size=2, after=ids[1])
    assert partial.resealed >= 3
    report = await rotate_keys(new_sessions, batch_size=2)
    assert report.scanned >= 5
    assert report.last_id is not None
    async with new_sessions() as session:
        for stored in (await session.scalars(select(Feedback.customer))).all():
            tokens = [v for k, v in stored.items() if k != "tier"]
            assert {pii.key_id_of(token) for token in tokens} <= {"rotated"}
    # Done: a second run re-seals nothing, and the old key is no longer needed to read.
    assert (await rotate_keys(new_sessions, batch_size=2)).resealed == 0
    only_new = async_sessionmaker(sessionmaker.kw["bind"], expire_on_commit=False)
    pii.bind(
        only_new,
        Keyring({"rotated": base64.b64decode(new_key)}, "rotated", current.index_key),
    )
    async with only_new() as session:
        detail = await repository.get_feedback_detail(session, items[0].feedback.id)
        assert detail is not None
        assert detail.feedback.customer["email"] == "rot-0@example.com"
