"""Typed errors for everything a caller can get wrong; each maps to one 4xx answer.

Routes turn an :class:`IngestError` into ``problem(status, code, detail)`` and
count it in ``closeloop_ingest_webhooks_rejected_total{adapter, reason}``, so
``reason`` must come from a small fixed vocabulary (it is a metric label).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, ClassVar

from pydantic import ValidationError


class IngestError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"
    reason: str = "bad_request"

    def __init__(self, detail: str, *, reason: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if reason is not None:
            self.reason = reason
        self.extra = extra


class ChannelNotConfigured(IngestError):
    """The provider's secret is not set, so this channel is switched off."""

    status = 404
    code = "channel_not_configured"
    reason = "not_configured"


class UnsupportedMediaType(IngestError):
    status = 415
    code = "unsupported_media_type"
    reason = "unsupported_media_type"


class BodyTooLarge(IngestError):
    status = 413
    code = "payload_too_large"
    reason = "body_too_large"


class MalformedBody(IngestError):
    """The bytes are not what the content type promises (not UTF-8, not JSON, broken form)."""

    status = 400
    code = "malformed_body"
    reason = "malformed_body"


class InvalidPayload(IngestError):
    """Well-formed, but fields are missing or out of range."""

    status = 422
    code = "invalid_payload"
    reason = "invalid_payload"


class SignatureRejected(IngestError):
    """Authentication of the provider failed; ``reason`` says how (for metrics and logs)."""

    status = 401
    code = "invalid_signature"
    reason = "signature_invalid"


class Forbidden(IngestError):
    status = 403
    code = "forbidden"
    reason = "forbidden"


def error_list(error: ValidationError, *, prefix: Iterable[str | int] = ()) -> list[dict[str, Any]]:
    """Pydantic errors as ``{loc, msg, type}``, never echoing the input (it is customer data)."""
    return [
        {"loc": [*prefix, *e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in error.errors(include_url=False, include_input=False)
    ]


def is_malformed_json(error: ValidationError) -> bool:
    """True if pydantic could not even parse the bytes as JSON (or they are not UTF-8)."""
    return any(e["type"] == "json_invalid" for e in error.errors())
