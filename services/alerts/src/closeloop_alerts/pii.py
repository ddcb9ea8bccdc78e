"""Customer contact data encrypted at rest, and blind indexes to find it without decrypting.

* **Sealing.** Every contact field of ``feedback.customer`` (id, name, email, phone,
  handle, and any other field but ``tier``) is stored as a token
  ``pii1.<base64url(version | key id length | key id | nonce | AES-256-GCM ciphertext)>``.
  The associated data binds the token to its version, key id and *context* (the row and
  field it belongs to), so a token copied to another row or field does not decrypt.
* **Rotation.** Tokens name their key; the keyring holds every key still in use and
  seals with the active one. ``closeloop-alerts rotate-pii-key`` re-seals old rows
  (:mod:`closeloop_alerts.privacy`); reads work with old and new keys meanwhile.
* **Blind indexes.** Equality lookups (merging a customer's items into one alert,
  finding a customer's feedback to erase it) use ``<kind>:<HMAC-SHA256(index key,
  "<kind>:<normalised value>")>`` instead of the value. The index key is separate from
  the encryption keys, so rotating those leaves every index valid.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

TOKEN_PREFIX = "pii1."
_VERSION = 1
_NONCE_BYTES = 12
_KEY_BYTES = 32
_KEY_ID = re.compile(r"[A-Za-z0-9_-]{1,32}")
# Customer fields kept in clear: routing and the KPIs group by tier, and it names no one.
CLEAR_CUSTOMER_FIELDS = frozenset({"tier"})
IDENTITY_KINDS = ("id", "email", "phone", "handle")
_SESSION_INFO_KEY = "closeloop_pii_keyring"


class PiiKeyError(ValueError):
    """The keyring is missing, malformed, or lacks the key a token names."""


class PiiTokenError(ValueError):
    """A token that is not one of ours, or that does not decrypt in its context."""


def _decode_key(key_id: str, encoded: str) -> bytes:
    try:
        key = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise PiiKeyError(f"PII key {key_id!r} is not base64") from None
    if len(key) != _KEY_BYTES:
        raise PiiKeyError(f"PII key {key_id!r} must be {_KEY_BYTES} bytes, not {len(key)}")
    return key


def parse_keys(spec: str) -> dict[str, bytes]:
    """``{"k1": "<base64>", ...}`` (JSON) or ``k1:<base64>,k2:<base64>``."""
    spec = spec.strip()
    pairs: list[tuple[str, str]]
    if spec.startswith("{"):
        try:
            loaded = orjson.loads(spec)
        except orjson.JSONDecodeError:
            raise PiiKeyError("the PII keys are not valid JSON") from None
        if not isinstance(loaded, dict) or not all(isinstance(v, str) for v in loaded.values()):
            raise PiiKeyError('the PII keys must be a JSON object {"key id": "base64 key"}')
        pairs = list(loaded.items())
    else:
        pairs = []
        for part in filter(None, (p.strip() for p in spec.split(","))):
            key_id, separator, encoded = part.partition(":")
            if not separator:
                raise PiiKeyError("each PII key must be written <key id>:<base64 key>")
            pairs.append((key_id.strip(), encoded))
    keys: dict[str, bytes] = {}
    for key_id, encoded in pairs:
        if not _KEY_ID.fullmatch(key_id):
            raise PiiKeyError(f"PII key id {key_id!r} must be 1-32 of A-Z a-z 0-9 _ -")
        if key_id in keys:
            raise PiiKeyError(f"PII key id {key_id!r} appears twice")
        keys[key_id] = _decode_key(key_id, encoded)
    if not keys:
        raise PiiKeyError("no PII keys given")
    return keys


def new_key() -> str:
    """A fresh random key, base64 (what the devstack and the docs generate)."""
    return base64.b64encode(os.urandom(_KEY_BYTES)).decode()


@dataclass(frozen=True)
class Keyring:
    keys: Mapping[str, bytes] = field(repr=False)
    active: str
    index_key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if self.active not in self.keys:
            raise PiiKeyError(f"the active PII key {self.active!r} is not among the keys")
        if len(self.index_key) != _KEY_BYTES:
            raise PiiKeyError(f"the PII index key must be {_KEY_BYTES} bytes")

    @classmethod
    def parse(cls, keys: str, active: str | None, index_key: str) -> Keyring:
        parsed = parse_keys(keys)
        if active is None:
            if len(parsed) != 1:
                raise PiiKeyError("several PII keys: name the active one")
            active = next(iter(parsed))
        return cls(parsed, active, _decode_key("index", index_key))

    # -- sealing ----------------------------------------------------------------------------

    def seal(self, plaintext: str, context: str) -> str:
        key_id = self.active.encode()
        header = bytes([_VERSION, len(key_id)]) + key_id
        nonce = os.urandom(_NONCE_BYTES)
        sealed = AESGCM(self.keys[self.active]).encrypt(
            nonce, plaintext.encode(), header + context.encode()
        )
        raw = header + nonce + sealed
        return TOKEN_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")

    def open(self, token: str, context: str) -> str:
        key_id, header, nonce, sealed = _split(token)
        key = self.keys.get(key_id)
        if key is None:
            raise PiiKeyError(f"no PII key {key_id!r} in the keyring (still needed to read)")
        try:
            plain = AESGCM(key).decrypt(nonce, sealed, header + context.encode())
        except InvalidTag:
            raise PiiTokenError(f"the token does not decrypt in context {context!r}") from None
        return plain.decode()

    # -- blind indexes ----------------------------------------------------------------------

    def blind(self, identity: str) -> str:
        """``kind:value`` (see :func:`identities`) → ``kind:<hex HMAC>``."""
        kind = identity.partition(":")[0]
        digest = hmac.new(self.index_key, identity.encode(), hashlib.sha256).hexdigest()
        return f"{kind}:{digest}"

    def blind_all(self, identities: Iterable[str]) -> list[str]:
        return [self.blind(identity) for identity in identities]


def is_token(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(TOKEN_PREFIX)


def key_id_of(token: str) -> str:
    return _split(token)[0]


def _split(token: str) -> tuple[str, bytes, bytes, bytes]:
    if not is_token(token):
        raise PiiTokenError("not a sealed value")
    encoded = token[len(TOKEN_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
    except (binascii.Error, ValueError):
        raise PiiTokenError("a sealed value that is not base64") from None
    if len(raw) < 2 or raw[0] != _VERSION:
        raise PiiTokenError("a sealed value of an unknown version")
    end = 2 + raw[1]
    if len(raw) < end + _NONCE_BYTES + 16:
        raise PiiTokenError("a truncated sealed value")
    key_id = raw[2:end].decode("ascii", errors="replace")
    return key_id, raw[:end], raw[end : end + _NONCE_BYTES], raw[end + _NONCE_BYTES :]


# --- the customer of a feedback item ------------------------------------------------------------


def customer_context(feedback_id: uuid.UUID, field_name: str) -> str:
    return f"alerts.feedback/{feedback_id}/customer/{field_name}"


def seal_customer(
    keyring: Keyring, feedback_id: uuid.UUID, customer: Mapping[str, Any]
) -> dict[str, Any]:
    """The customer as stored: contact fields sealed (tokens already sealed stay)."""
    stored: dict[str, Any] = {}
    for name, value in customer.items():
        if name in CLEAR_CUSTOMER_FIELDS or value is None or is_token(value):
            stored[name] = value
        else:
            plain = value if isinstance(value, str) else orjson.dumps(value).decode()
            stored[name] = keyring.seal(plain, customer_context(feedback_id, name))
    return stored


def open_customer(
    keyring: Keyring, feedback_id: uuid.UUID, stored: Mapping[str, Any]
) -> dict[str, Any]:
    """The customer as the API and notifications show it."""
    return {
        name: keyring.open(value, customer_context(feedback_id, name)) if is_token(value) else value
        for name, value in stored.items()
    }


def reseal_customer(
    keyring: Keyring, feedback_id: uuid.UUID, stored: Mapping[str, Any]
) -> dict[str, Any] | None:
    """The customer sealed under the active key, or None if it already is."""
    stale = [
        name
        for name, value in stored.items()
        if (is_token(value) and key_id_of(value) != keyring.active)
        or (not is_token(value) and name not in CLEAR_CUSTOMER_FIELDS and value is not None)
    ]
    if not stale:
        return None
    opened = open_customer(keyring, feedback_id, {name: stored[name] for name in stale})
    return {**stored, **seal_customer(keyring, feedback_id, opened)}


def identities(customer: Mapping[str, Any] | Any) -> list[str]:
    """Keys that identify a customer on every channel: id, email, phone, handle (normalised)."""
    data = customer if isinstance(customer, Mapping) else customer.model_dump()
    found: list[str] = []
    for kind in IDENTITY_KINDS:
        value = data.get(kind)
        if not isinstance(value, str) or not value.strip():
            continue
        value = value.strip().casefold()
        if kind == "phone":
            value = "".join(ch for ch in value if ch.isdigit() or ch == "+")
            if len(value.lstrip("+")) < 6:
                continue
        elif kind == "handle":
            value = value.lstrip("@")
        found.append(f"{kind}:{value}"[:320])
    return found


# --- the keyring of a session -------------------------------------------------------------------


def bind(
    sessionmaker: async_sessionmaker[AsyncSession], keyring: Keyring
) -> async_sessionmaker[AsyncSession]:
    """Sessions of ``sessionmaker`` carry ``keyring``: the repository seals and opens with
    it, and a session without one refuses to store or read customer data."""
    sessionmaker.configure(info={_SESSION_INFO_KEY: keyring})
    return sessionmaker


def keyring_of(session: AsyncSession) -> Keyring:
    keyring = session.info.get(_SESSION_INFO_KEY)
    if not isinstance(keyring, Keyring):
        raise PiiKeyError("this session has no PII keyring (pii.bind the sessionmaker)")
    return keyring
