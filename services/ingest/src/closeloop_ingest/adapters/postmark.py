"""Postmark inbound webhooks: one email as JSON.

Postmark signs nothing; the webhook URL carries HTTP basic auth
(``https://user:password@host/v1/webhooks/postmark``), which we check against
the configured credentials. Fields used: ``MessageID``, ``From``/``FromName``/
``FromFull``, ``To``, ``OriginalRecipient``, ``Subject``, ``Date``,
``StrippedTextReply``, ``TextBody``, ``HtmlBody``, ``Attachments``.
"""

from __future__ import annotations

import base64
import binascii
import hmac
from datetime import datetime
from typing import Any

from pydantic import Field

from closeloop_ingest.adapters.base import (
    SUBJECT_CHARS,
    Normalised,
    NormalisedBuilder,
    ProviderModel,
    build_feedback,
    clip,
    fit_text,
    from_rfc2822,
    parse_json_model,
)
from closeloop_ingest.adapters.html_text import html_to_text
from closeloop_ingest.errors import SignatureRejected
from closeloop_shared.contracts.feedback import Channel


def verify_basic_auth(authorization: str | None, username: str, password: str) -> None:
    """Raise :class:`SignatureRejected` unless ``Authorization: Basic`` carries these credentials."""
    scheme, _, encoded = (authorization or "").partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise SignatureRejected("Basic authentication is required.", reason="signature_missing")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise SignatureRejected(
            "Malformed basic credentials.", reason="signature_invalid"
        ) from None
    given_user, separator, given_password = decoded.partition(b":")
    # Compare both parts even if the first differs, so timing does not reveal which was wrong.
    user_ok = hmac.compare_digest(given_user, username.encode())
    password_ok = hmac.compare_digest(given_password, password.encode())
    if not (separator and user_ok and password_ok):
        raise SignatureRejected("Wrong basic credentials.", reason="signature_invalid")


class PostmarkAddress(ProviderModel):
    Email: str | None = None
    Name: str | None = None


class PostmarkInbound(ProviderModel):
    MessageID: str = Field(min_length=1, max_length=256)
    From: str | None = None
    FromName: str | None = None
    FromFull: PostmarkAddress | None = None
    To: str | None = None
    OriginalRecipient: str | None = None
    Subject: str | None = None
    Date: str | None = None
    TextBody: str | None = None
    HtmlBody: str | None = None
    StrippedTextReply: str | None = None
    Attachments: list[dict[str, Any]] = Field(default_factory=list)


def email_text(inbound: PostmarkInbound) -> str:
    """The reply alone if Postmark could strip quotes, else the text body, else the HTML as text."""
    for candidate in (inbound.StrippedTextReply, inbound.TextBody):
        if candidate and candidate.strip():
            return candidate
    return html_to_text(inbound.HtmlBody) if inbound.HtmlBody else ""


def postmark_to_feedback(raw: bytes, received_at: datetime) -> Normalised:
    inbound = parse_json_model(PostmarkInbound, raw)
    result = NormalisedBuilder()
    text, truncated = fit_text(email_text(inbound))
    if not text:
        result.ignore("no_text")
        return result.build()

    sender = inbound.FromFull or PostmarkAddress()
    attributes: dict[str, object] = {}
    if recipient := clip(inbound.OriginalRecipient or inbound.To):
        attributes["recipient"] = recipient
    if inbound.Attachments:
        attributes["attachment_count"] = len(inbound.Attachments)
    if truncated:
        attributes["text_truncated"] = True
    result.add(
        build_feedback(
            channel=Channel.EMAIL,
            external_id=inbound.MessageID,
            text=text,
            subject=clip(inbound.Subject, SUBJECT_CHARS),
            occurred_at=from_rfc2822(inbound.Date) or received_at,
            customer={
                "email": clip(sender.Email or inbound.From),
                "name": clip(sender.Name or inbound.FromName),
            },
            attributes=attributes,
        )
    )
    return result.build()
