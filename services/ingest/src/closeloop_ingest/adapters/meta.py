"""Meta Graph webhooks: Facebook Page feed and Instagram comments.

Subscription: Meta first GETs ``?hub.mode=subscribe&hub.verify_token=...&hub.challenge=...``
and expects the challenge echoed. Deliveries are POSTed JSON signed with
``X-Hub-Signature-256: sha256=<hex HMAC-SHA256(app secret, raw body)>``::

    {"object": "page" | "instagram",
     "entry": [{"id", "time", "changes": [{"field", "value"}]}]}

One delivery may batch many changes; each change with customer text becomes
one social item, the rest (reactions, removals, the page's own replies,
mentions that carry no text) are counted and skipped.
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import datetime
from typing import Any

from pydantic import Field, ValidationError

from closeloop_ingest.adapters.base import (
    Normalised,
    NormalisedBuilder,
    ProviderModel,
    build_feedback,
    clip,
    fit_text,
    from_iso8601,
    from_unix_seconds,
    parse_json_model,
)
from closeloop_ingest.errors import Forbidden, InvalidPayload, SignatureRejected
from closeloop_shared.contracts.feedback import Channel

SIGNATURE_HEADER = "x-hub-signature-256"
_SIGNATURE_PREFIX = "sha256="

# Page feed verbs that mean "here is text a person wrote" (new, or changed).
_TEXT_VERBS = frozenset({"add", "edited", "edit"})
_INSTAGRAM_COMMENT_FIELDS = frozenset({"comments", "live_comments"})


def meta_signature(app_secret: str, raw_body: bytes) -> str:
    return _SIGNATURE_PREFIX + hmac.new(app_secret.encode(), raw_body, hashlib.sha256).hexdigest()


def verify_meta_signature(app_secret: str, raw_body: bytes, header: str | None) -> None:
    if not header:
        raise SignatureRejected("X-Hub-Signature-256 is missing.", reason="signature_missing")
    expected = meta_signature(app_secret, raw_body)
    if not hmac.compare_digest(expected.encode(), header.strip().lower().encode()):
        raise SignatureRejected("X-Hub-Signature-256 does not match.", reason="signature_invalid")


def verify_subscription(
    mode: str | None, verify_token: str | None, challenge: str | None, configured_token: str
) -> str:
    """The challenge to echo if Meta's handshake names our verify token; else Forbidden."""
    token_ok = hmac.compare_digest((verify_token or "").encode(), configured_token.encode())
    if mode != "subscribe" or not token_ok or challenge is None:
        raise Forbidden("The subscription request was refused.", reason="verify_token_mismatch")
    return challenge


class MetaActor(ProviderModel):
    id: str | None = None
    name: str | None = None
    username: str | None = None


class MetaChange(ProviderModel):
    field: str
    value: dict[str, Any] = Field(default_factory=dict)


class MetaEntry(ProviderModel):
    id: str | None = None
    time: float | None = None
    changes: list[MetaChange] = Field(default_factory=list)
    # Messenger deliveries (entry[].messaging[]) are a different product; counted, not read.
    messaging: list[Any] = Field(default_factory=list)


class MetaWebhook(ProviderModel):
    object: str
    entry: list[MetaEntry] = Field(default_factory=list)


class PageFeedValue(ProviderModel):
    item: str | None = None
    verb: str | None = None
    comment_id: str | None = None
    post_id: str | None = None
    parent_id: str | None = None
    message: str | None = None
    actor: MetaActor | None = Field(default=None, alias="from")
    created_time: float | str | None = None


class InstagramMedia(ProviderModel):
    id: str | None = None
    media_product_type: str | None = None


class InstagramCommentValue(ProviderModel):
    id: str = Field(min_length=1)
    text: str | None = None
    actor: MetaActor | None = Field(default=None, alias="from")
    media: InstagramMedia | None = None
    parent_id: str | None = None


def _entry_time(entry: MetaEntry) -> datetime | None:
    if entry.time is None:
        return None
    # Graph sends seconds; some Meta products send milliseconds in the same field.
    seconds = entry.time / 1000 if entry.time > 100_000_000_000 else entry.time
    return from_unix_seconds(seconds)


def _created_time(value: float | str | None) -> datetime | None:
    if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
        return from_iso8601(value)
    return from_unix_seconds(value)


def _without_none(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


def _page_feed_item(
    entry: MetaEntry, change: MetaChange, received_at: datetime, result: NormalisedBuilder
) -> None:
    try:
        value = PageFeedValue.model_validate(change.value)
    except ValidationError:
        result.ignore("malformed_change")
        return
    if (value.verb or "").lower() not in _TEXT_VERBS:
        result.ignore("not_new_text")
        return
    text, truncated = fit_text(value.message or "")
    if not text:
        result.ignore("no_text")
        return
    actor = value.actor or MetaActor()
    if actor.id is not None and actor.id == entry.id:
        # The page replying to its customers is not customer feedback.
        result.ignore("own_account")
        return
    item = (value.item or "").lower()
    external_id = value.comment_id if item == "comment" else value.post_id or value.comment_id
    if not external_id:
        result.ignore("malformed_change")
        return
    attributes = _without_none(
        {
            "platform": "facebook",
            "item": item or None,
            "verb": (value.verb or "").lower(),
            "page_id": entry.id,
            "post_id": value.post_id if item == "comment" else None,
            "parent_id": value.parent_id,
            "text_truncated": True if truncated else None,
        }
    )
    result.add(
        build_feedback(
            channel=Channel.SOCIAL,
            external_id=clip(external_id, 256),
            text=text,
            occurred_at=_created_time(value.created_time) or _entry_time(entry) or received_at,
            customer={"id": clip(actor.id), "handle": clip(actor.name)},
            touchpoint="facebook_page",
            attributes=attributes,
        )
    )


def _instagram_comment(
    entry: MetaEntry, change: MetaChange, received_at: datetime, result: NormalisedBuilder
) -> None:
    try:
        value = InstagramCommentValue.model_validate(change.value)
    except ValidationError:
        result.ignore("malformed_change")
        return
    text, truncated = fit_text(value.text or "")
    if not text:
        result.ignore("no_text")
        return
    actor = value.actor or MetaActor()
    if actor.id is not None and actor.id == entry.id:
        result.ignore("own_account")
        return
    media = value.media or InstagramMedia()
    attributes = _without_none(
        {
            "platform": "instagram",
            "item": "live_comment" if change.field == "live_comments" else "comment",
            "account_id": entry.id,
            "media_id": media.id,
            "media_product_type": media.media_product_type,
            "parent_id": value.parent_id,
            "text_truncated": True if truncated else None,
        }
    )
    result.add(
        build_feedback(
            channel=Channel.SOCIAL,
            external_id=clip(value.id, 256),
            text=text,
            occurred_at=_entry_time(entry) or received_at,
            customer={"id": clip(actor.id), "handle": clip(actor.username or actor.name)},
            touchpoint="instagram",
            attributes=attributes,
        )
    )


def meta_to_feedback(raw: bytes, received_at: datetime) -> Normalised:
    webhook = parse_json_model(MetaWebhook, raw)
    result = NormalisedBuilder()
    platform = webhook.object.lower()
    for entry in webhook.entry:
        for _ in entry.messaging:
            result.ignore("unsupported_field")
        for change in entry.changes:
            # One odd change must not cost the others: Meta retries (and eventually
            # disables) a subscription whose deliveries keep failing.
            try:
                _read_change(platform, entry, change, received_at, result)
            except InvalidPayload:
                result.ignore("malformed_change")
    return result.build()


def _read_change(
    platform: str,
    entry: MetaEntry,
    change: MetaChange,
    received_at: datetime,
    result: NormalisedBuilder,
) -> None:
    if platform == "page" and change.field == "feed":
        _page_feed_item(entry, change, received_at, result)
    elif platform == "instagram" and change.field in _INSTAGRAM_COMMENT_FIELDS:
        _instagram_comment(entry, change, received_at, result)
    elif platform == "instagram" and change.field == "mentions":
        # A mention names only media_id/comment_id; its text needs a Graph API call.
        result.ignore("no_text")
    else:
        result.ignore("unsupported_field")
