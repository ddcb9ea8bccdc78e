"""Twilio Voice: the ``<Record transcribe="true" transcribeCallback="...">`` callback.

Twilio POSTs ``application/x-www-form-urlencoded`` fields (``TranscriptionSid``,
``TranscriptionText``, ``TranscriptionStatus``, ``RecordingSid``, ``CallSid``,
``From``, ``To``, ...) and signs them with ``X-Twilio-Signature``:
base64(HMAC-SHA1(auth token, public URL + every POST key and value, sorted by key)).
There is no timestamp, so a provider retry is recognised by ``TranscriptionSid``
(it maps to the same feedback id), not refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from twilio.request_validator import RequestValidator

from closeloop_ingest.adapters.base import (
    Normalised,
    NormalisedBuilder,
    build_feedback,
    clip,
    fit_text,
)
from closeloop_ingest.errors import InvalidPayload, SignatureRejected
from closeloop_shared.contracts.feedback import Channel, JourneyStage

SIGNATURE_HEADER = "x-twilio-signature"


def verify_twilio_signature(
    auth_token: str, url: str, params: Mapping[str, str], signature: str | None
) -> None:
    """Raise :class:`SignatureRejected` unless ``signature`` is Twilio's for ``url`` and ``params``.

    ``params`` may be a multi-dict (with ``getlist``) so repeated keys are signed
    as Twilio signs them. ``url`` must be the URL Twilio called, scheme, host,
    port, path and query exactly; Twilio's validator also tries it with and
    without the default port, and compares in constant time.
    """
    if not signature:
        raise SignatureRejected("X-Twilio-Signature is missing.", reason="signature_missing")
    try:
        valid = RequestValidator(auth_token).validate(url, params, signature)
    except ValueError:
        # e.g. a forwarded host with a non-numeric port: no URL Twilio could have signed.
        valid = False
    if not valid:
        raise SignatureRejected("X-Twilio-Signature does not match.", reason="signature_invalid")


def transcription_to_feedback(fields: Mapping[str, str], received_at: datetime) -> Normalised:
    """One hotline item per completed transcription; failed or empty ones are ignored.

    The callback carries no time of its own: the call ended moments before
    Twilio finished transcribing, so the time we received it stands in.
    """
    result = NormalisedBuilder()
    transcription_sid = clip(fields.get("TranscriptionSid"), 256)
    if transcription_sid is None:
        raise InvalidPayload(
            "TranscriptionSid is missing.",
            errors=[{"loc": ["TranscriptionSid"], "msg": "Field required", "type": "missing"}],
        )
    status = (fields.get("TranscriptionStatus") or "").strip().lower()
    if status == "failed":
        result.ignore("transcription_failed")
        return result.build()
    text, truncated = fit_text(fields.get("TranscriptionText") or "")
    if not text:
        result.ignore("no_text")
        return result.build()

    attributes: dict[str, object] = {
        key: value
        for key, value in {
            "call_sid": clip(fields.get("CallSid")),
            "recording_sid": clip(fields.get("RecordingSid")),
            "recording_url": clip(fields.get("RecordingUrl"), 2048),
            "transcription_url": clip(fields.get("TranscriptionUrl"), 2048),
            # The number the customer dialled tells which hotline (and owner) it was.
            "called_number": clip(fields.get("To")),
        }.items()
        if value is not None
    }
    if truncated:
        attributes["text_truncated"] = True
    result.add(
        build_feedback(
            channel=Channel.HOTLINE,
            external_id=transcription_sid,
            text=text,
            occurred_at=received_at,
            # Inbound call: the caller is the customer.
            customer={"phone": clip(fields.get("From"))},
            touchpoint="call_center",
            journey_stage=JourneyStage.SUPPORT,
            attributes=attributes,
        )
    )
    return result.build()
