"""Mailgun inbound routes (``forward()``): one email as form fields.

Mailgun POSTs ``application/x-www-form-urlencoded``, or ``multipart/form-data``
when the email has attachments, with ``sender``, ``from``, ``recipient``,
``subject``, ``body-plain``, ``stripped-text``, ``message-headers`` (a JSON list
of ``[name, value]``) and the signature fields ``timestamp``, ``token`` and
``signature`` = hex HMAC-SHA256(signing key, timestamp + token).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.utils import parseaddr

import orjson

from closeloop_ingest.adapters.base import (
    SUBJECT_CHARS,
    Normalised,
    NormalisedBuilder,
    build_feedback,
    clip,
    fit_text,
    from_rfc2822,
    from_unix_seconds,
)
from closeloop_ingest.errors import InvalidPayload, SignatureRejected
from closeloop_shared.contracts.feedback import Channel


def mailgun_signature(signing_key: str, timestamp: str, token: str) -> str:
    return hmac.new(signing_key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()


@dataclass(frozen=True)
class SignedToken:
    """A verified ``token`` and the time it was signed at, for the replay check."""

    token: str
    signed_at: float


def verify_mailgun_signature(
    signing_key: str, fields: Mapping[str, str], *, now: float, tolerance_s: float
) -> SignedToken:
    """Check the signature and the timestamp's freshness.

    The timestamp is checked in both directions: a clock far in the future is
    as suspicious as a stale one, and either would stretch the replay window.
    """
    timestamp = fields.get("timestamp", "")
    token = fields.get("token", "")
    signature = fields.get("signature", "")
    if not (timestamp and token and signature):
        raise SignatureRejected(
            "timestamp, token and signature are required.", reason="signature_missing"
        )
    expected = mailgun_signature(signing_key, timestamp, token)
    # Bytes, not str: compare_digest refuses non-ASCII str, and a forged field may contain any.
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        raise SignatureRejected("The Mailgun signature does not match.", reason="signature_invalid")
    # Digits only: float() would also take "nan", which compares as never stale.
    if not (timestamp.isascii() and timestamp.isdigit()):
        raise SignatureRejected("timestamp is not Unix seconds.", reason="signature_invalid")
    signed_at = float(timestamp)
    if abs(now - signed_at) > tolerance_s:
        raise SignatureRejected(
            f"The signed timestamp is more than {tolerance_s:g} s away from now.",
            reason="timestamp_stale",
        )
    return SignedToken(token=token, signed_at=signed_at)


def message_headers(fields: Mapping[str, str]) -> dict[str, str]:
    """``message-headers`` as a case-insensitive lookup (lower-case names; first value wins)."""
    try:
        pairs = orjson.loads(fields.get("message-headers") or "[]")
    except orjson.JSONDecodeError:
        return {}
    headers: dict[str, str] = {}
    if isinstance(pairs, list):
        for pair in pairs:
            if (
                isinstance(pair, list)
                and len(pair) == 2
                and isinstance(pair[0], str)
                and isinstance(pair[1], str)
            ):
                headers.setdefault(pair[0].lower(), pair[1])
    return headers


def mailgun_to_feedback(
    fields: Mapping[str, str], received_at: datetime, *, attachment_count: int = 0
) -> Normalised:
    """One email item; ``stripped-text`` (the reply without quotes and signature) is preferred."""
    result = NormalisedBuilder()
    headers = message_headers(fields)
    # Message-Id is the same on every delivery attempt; the token is a last resort.
    external_id = clip(headers.get("message-id"), 256) or clip(fields.get("token"), 256)
    if external_id is None:
        raise InvalidPayload(
            "Neither a Message-Id header nor a token identifies the email.",
            errors=[{"loc": ["message-headers"], "msg": "Message-Id missing", "type": "missing"}],
        )
    text, truncated = fit_text(fields.get("stripped-text") or fields.get("body-plain") or "")
    if not text:
        result.ignore("no_text")
        return result.build()

    name, address = parseaddr(fields.get("from") or fields.get("sender") or "")
    occurred_at = (
        from_rfc2822(headers.get("date"))
        or from_unix_seconds(fields.get("timestamp"))
        or received_at
    )
    attributes: dict[str, object] = {}
    if recipient := clip(fields.get("recipient")):
        # Which of our mailboxes it reached (support@, billing@) decides the owner.
        attributes["recipient"] = recipient
    if attachment_count:
        attributes["attachment_count"] = attachment_count
    if truncated:
        attributes["text_truncated"] = True
    result.add(
        build_feedback(
            channel=Channel.EMAIL,
            external_id=external_id,
            text=text,
            subject=clip(fields.get("subject"), SUBJECT_CHARS),
            occurred_at=occurred_at,
            customer={"email": clip(address), "name": clip(name)},
            attributes=attributes,
        )
    )
    return result.build()
