"""HTTP endpoints: one per channel, all through the same pipeline.

Every request goes: channel configured? (404) → media type (415) → body read
under a size cap (413) → signature (401) → parse and normalise (400/422) →
publish and await the broker's acknowledgement (503 + Retry-After if it does
not come) → 200/202 with the feedback ids. Nothing is answered 2xx before the
broker acknowledged, so a provider's own retry is our buffer during an outage.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, SecretStr

from closeloop_ingest.adapters import meta as meta_adapter
from closeloop_ingest.adapters import twilio as twilio_adapter
from closeloop_ingest.adapters.app_reviews import (
    AppStoreReviews,
    GooglePlayReviews,
    app_reviews_to_feedback,
)
from closeloop_ingest.adapters.base import Normalised
from closeloop_ingest.adapters.canonical import parse_batch, parse_feedback
from closeloop_ingest.adapters.hotline import ContactLensAnalysis, contact_lens_to_feedback
from closeloop_ingest.adapters.mailgun import mailgun_to_feedback, verify_mailgun_signature
from closeloop_ingest.adapters.postmark import (
    PostmarkInbound,
    postmark_to_feedback,
    verify_basic_auth,
)
from closeloop_ingest.config import IngestSettings
from closeloop_ingest.errors import ChannelNotConfigured, IngestError, SignatureRejected
from closeloop_ingest.http_body import (
    FORM_URLENCODED,
    JSON,
    MULTIPART_FORM,
    parse_multipart,
    parse_urlencoded,
    public_url,
    read_body,
    require_media_type,
)
from closeloop_ingest.metrics import ITEMS_IGNORED, WEBHOOKS_REJECTED
from closeloop_ingest.openapi import Problem, form_body, json_body
from closeloop_ingest.publisher import FeedbackPublisher
from closeloop_ingest.replay import SeenTokens
from closeloop_shared.contracts.feedback import (
    FeedbackAccepted,
    FeedbackBatchAccepted,
    FeedbackBatchIn,
    FeedbackIn,
)
from closeloop_shared.http.observability import problem
from closeloop_shared.kafka.producer import BrokerUnavailable
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

PRINCIPAL_HEADER = "x-closeloop-principal"
# Meta's challenge is a short number; anything long is not Meta.
_MAX_CHALLENGE_CHARS = 256


@dataclass(frozen=True)
class Endpoint:
    """How one channel's route is served; ``adapter`` names it in metrics and event sources."""

    adapter: str
    media_types: frozenset[str]
    # Mailgun and Postmark count only 200 as delivered (anything else is retried
    # for hours) and Meta expects 200; everything else answers 202 Accepted.
    accepted_status: int
    # One item per request by nature (one call, one email): answer {"id"}, else {"ids"}.
    single_item: bool
    email_sized: bool = False


CANONICAL = Endpoint("api", frozenset({JSON}), 202, single_item=True)
CANONICAL_BATCH = Endpoint("api", frozenset({JSON}), 202, single_item=False)
TWILIO = Endpoint("twilio", frozenset({FORM_URLENCODED}), 202, single_item=True)
HOTLINE = Endpoint("hotline", frozenset({JSON}), 202, single_item=True)
MAILGUN = Endpoint(
    "mailgun", frozenset({FORM_URLENCODED, MULTIPART_FORM}), 200, single_item=True, email_sized=True
)
POSTMARK = Endpoint("postmark", frozenset({JSON}), 200, single_item=True, email_sized=True)
META = Endpoint("meta", frozenset({JSON}), 200, single_item=False)
APP_REVIEWS = Endpoint("app_reviews", frozenset({JSON}), 202, single_item=False)

# (raw body, media type, received_at) -> what to publish
Normaliser = Callable[[bytes, str, datetime], Awaitable[Normalised]]

NOTHING_PUBLISHED = "No customer text to ingest; nothing was published."


class ItemAccepted(BaseModel):
    """Answer of the one-item webhooks; ``id`` is null when the item carried no customer text."""

    id: uuid.UUID | None
    ignored: dict[str, int] | None = None
    note: str | None = None


class ItemsAccepted(BaseModel):
    """Answer of the many-item webhooks (Meta, app reviews)."""

    ids: list[uuid.UUID]
    ignored: dict[str, int] | None = None
    note: str | None = None


def accepted_body(
    endpoint: Endpoint, ids: list[uuid.UUID], ignored: dict[str, int]
) -> dict[str, Any]:
    """``{"id"}`` or ``{"ids"}``, plus what was ignored and a note if nothing was published."""
    body: dict[str, Any] = (
        {"id": str(ids[0]) if ids else None}
        if endpoint.single_item
        else {"ids": [str(i) for i in ids]}
    )
    if ignored:
        body["ignored"] = ignored
    if not ids:
        body["note"] = NOTHING_PUBLISHED
    return body


class IngestService:
    """The per-process state behind the routes: settings, publisher, replay cache, clock."""

    def __init__(
        self,
        settings: IngestSettings,
        publisher: FeedbackPublisher,
        seen_tokens: SeenTokens,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.publisher = publisher
        self.seen_tokens = seen_tokens
        self.clock = clock

    def body_limit(self, endpoint: Endpoint) -> int:
        s = self.settings
        return s.max_email_body_bytes if endpoint.email_sized else s.max_body_bytes

    def reject(self, request: Request, endpoint: Endpoint, error: IngestError) -> Response:
        WEBHOOKS_REJECTED.labels(endpoint.adapter, error.reason).inc()
        log_method = log.warning if error.status in (401, 403) else log.info
        log_method(
            "request_rejected",
            adapter=endpoint.adapter,
            reason=error.reason,
            status=error.status,
            client=_client_address(request),
            principal=request.headers.get(PRINCIPAL_HEADER),
        )
        response = problem(error.status, error.code, error.detail, **error.extra)
        if isinstance(error, SignatureRejected) and endpoint is POSTMARK:
            response.headers["WWW-Authenticate"] = 'Basic realm="closeloop-ingest"'
        return response

    def not_configured(self, request: Request, endpoint: Endpoint) -> Response:
        return self.reject(
            request,
            endpoint,
            ChannelNotConfigured(
                f"The {endpoint.adapter} channel is not configured on this server."
            ),
        )

    async def handle(
        self,
        request: Request,
        endpoint: Endpoint,
        normalise: Normaliser,
    ) -> Response:
        received_at = datetime.fromtimestamp(self.clock(), tz=UTC)
        try:
            kind = require_media_type(request, endpoint.media_types)
            raw = await read_body(request, self.body_limit(endpoint))
            normalised = await normalise(raw, kind, received_at)
        except IngestError as error:
            return self.reject(request, endpoint, error)

        for reason, count in normalised.ignored.items():
            ITEMS_IGNORED.labels(endpoint.adapter, reason).inc(count)
        if not normalised.items:
            # Acknowledged and skipped: a provider's retry would carry the same nothing.
            return JSONResponse(accepted_body(endpoint, [], normalised.ignored), status_code=200)

        try:
            ids = await self.publisher.publish(
                normalised.items, adapter=endpoint.adapter, received_at=received_at
            )
        except IngestError as error:  # an item the wire format cannot carry: the client's input
            return self.reject(request, endpoint, error)
        except BrokerUnavailable as error:
            WEBHOOKS_REJECTED.labels(endpoint.adapter, "broker_unavailable").inc()
            log.error(
                "publish_failed",
                adapter=endpoint.adapter,
                items=len(normalised.items),
                error=str(error),
            )
            response = problem(
                503,
                "broker_unavailable",
                "The event broker did not acknowledge the feedback; nothing was accepted. "
                "Retry later.",
            )
            response.headers["Retry-After"] = str(self.settings.retry_after_s)
            return response

        log.info(
            "feedback_accepted",
            adapter=endpoint.adapter,
            items=len(ids),
            # One id identifies the request in logs; a 1,000-item batch would flood them.
            first_feedback_id=str(ids[0]),
            ignored=normalised.ignored or None,
            principal=request.headers.get(PRINCIPAL_HEADER),
        )
        return JSONResponse(
            accepted_body(endpoint, ids, normalised.ignored), status_code=endpoint.accepted_status
        )


def _client_address(request: Request) -> str | None:
    forwarded = request.headers.get("x-forwarded-for")
    if forwarded:
        return forwarded.split(",", 1)[0].strip() or None
    return request.client.host if request.client else None


def _service(request: Request) -> IngestService:
    service = request.app.state.ingest
    assert isinstance(service, IngestService)
    return service


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _responses(success: int, model: type[BaseModel], *errors: int) -> dict[int | str, Any]:
    documented: dict[int | str, Any] = {success: {"model": model}}
    if success != 200 and model in (ItemAccepted, ItemsAccepted):
        documented[200] = {"model": model, "description": "No customer text: nothing published"}
    for status in (*errors, 413, 415, 503):
        documented[status] = {"model": Problem}
    return documented


router = APIRouter()


# -- canonical API ---------------------------------------------------------------------------


@router.post(
    "/v1/feedback",
    tags=["feedback"],
    summary="Submit one canonical feedback item",
    status_code=202,
    responses=_responses(202, FeedbackAccepted, 400, 422),
    openapi_extra=json_body(FeedbackIn),
)
async def submit_feedback(request: Request) -> Response:
    async def normalise(raw: bytes, _kind: str, _received_at: datetime) -> Normalised:
        return Normalised(items=[parse_feedback(raw)])

    return await _service(request).handle(request, CANONICAL, normalise)


@router.post(
    "/v1/feedback/batch",
    tags=["feedback"],
    summary="Submit up to 1,000 canonical feedback items, all or nothing",
    status_code=202,
    responses=_responses(202, FeedbackBatchAccepted, 400, 422),
    openapi_extra=json_body(FeedbackBatchIn),
)
async def submit_feedback_batch(request: Request) -> Response:
    async def normalise(raw: bytes, _kind: str, _received_at: datetime) -> Normalised:
        return Normalised(items=parse_batch(raw))

    return await _service(request).handle(request, CANONICAL_BATCH, normalise)


# -- hotline ---------------------------------------------------------------------------------

_TWILIO_FIELDS = {
    "TranscriptionSid": "Identifies the transcription; the feedback's external id.",
    "TranscriptionText": "The transcribed speech.",
    "TranscriptionStatus": "completed or failed (failed ones are acknowledged and skipped).",
    "TranscriptionUrl": "The transcription resource.",
    "RecordingSid": "The recording that was transcribed.",
    "RecordingUrl": "The recording's audio.",
    "CallSid": "The call.",
    "AccountSid": "The Twilio account.",
    "From": "The caller's number: the customer.",
    "To": "The number called: which hotline.",
}


@router.post(
    "/v1/webhooks/twilio/transcription",
    tags=["webhooks"],
    summary="Twilio <Record transcribeCallback>, signed with X-Twilio-Signature",
    status_code=202,
    responses=_responses(202, ItemAccepted, 400, 401, 404, 422),
    openapi_extra=form_body(_TWILIO_FIELDS, ["TranscriptionSid"]),
)
async def twilio_transcription(request: Request) -> Response:
    service = _service(request)
    auth_token = _secret(service.settings.twilio_auth_token)
    if auth_token is None:
        return service.not_configured(request, TWILIO)

    async def normalise(raw: bytes, _kind: str, received_at: datetime) -> Normalised:
        fields = parse_urlencoded(raw)
        twilio_adapter.verify_twilio_signature(
            auth_token,
            public_url(request),
            fields,
            request.headers.get(twilio_adapter.SIGNATURE_HEADER),
        )
        return twilio_adapter.transcription_to_feedback(fields, received_at)

    return await service.handle(request, TWILIO, normalise)


@router.post(
    "/v1/webhooks/hotline/transcript",
    tags=["webhooks"],
    summary="Post-call transcript (Amazon Connect Contact Lens analysis file)",
    status_code=202,
    responses=_responses(202, ItemAccepted, 400, 422),
    openapi_extra=json_body(ContactLensAnalysis),
)
async def hotline_transcript(request: Request) -> Response:
    async def normalise(raw: bytes, _kind: str, received_at: datetime) -> Normalised:
        return contact_lens_to_feedback(raw, received_at)

    return await _service(request).handle(request, HOTLINE, normalise)


# -- email -----------------------------------------------------------------------------------

_MAILGUN_FIELDS = {
    "timestamp": "Signed Unix time; refused if more than the tolerance away from now.",
    "token": "Random string, signed; remembered to refuse replays.",
    "signature": "hex HMAC-SHA256(signing key, timestamp + token).",
    "sender": "Envelope sender (MAIL FROM).",
    "from": "The From header: the customer's name and address.",
    "recipient": "Our address that received it.",
    "subject": "Subject.",
    "body-plain": "Text body.",
    "stripped-text": "Text body without quoted parts and signature (preferred).",
    "message-headers": "JSON list of [name, value]; Message-Id is the external id.",
}


@router.post(
    "/v1/webhooks/mailgun",
    tags=["webhooks"],
    summary="Mailgun inbound route forward(), signed with timestamp/token/signature",
    responses=_responses(200, ItemAccepted, 400, 401, 404, 422),
    openapi_extra=form_body(_MAILGUN_FIELDS, ["timestamp", "token", "signature"], multipart=True),
)
async def mailgun_inbound(request: Request) -> Response:
    service = _service(request)
    signing_key = _secret(service.settings.mailgun_signing_key)
    if signing_key is None:
        return service.not_configured(request, MAILGUN)
    tolerance_s = service.settings.signature_tolerance_s
    claimed_tokens: list[str] = []

    async def normalise(raw: bytes, kind: str, received_at: datetime) -> Normalised:
        if kind == MULTIPART_FORM:
            form = await parse_multipart(
                raw,
                request.headers.get("content-type", ""),
                max_part_bytes=service.body_limit(MAILGUN),
            )
            fields, attachment_count = form.fields, form.file_count
        else:
            fields, attachment_count = parse_urlencoded(raw), 0
        signed = verify_mailgun_signature(
            signing_key, fields, now=service.clock(), tolerance_s=tolerance_s
        )
        # The signature stays valid until its timestamp leaves the window: remember it until then.
        if not service.seen_tokens.claim(signed.token, expires_at=signed.signed_at + tolerance_s):
            raise SignatureRejected("This webhook was already received.", reason="token_replayed")
        claimed_tokens.append(signed.token)
        return mailgun_to_feedback(fields, received_at, attachment_count=attachment_count)

    response = await service.handle(request, MAILGUN, normalise)
    if response.status_code >= 300:
        # Not accepted (e.g. the broker was down): Mailgun's retry must not look like a replay.
        for token in claimed_tokens:
            service.seen_tokens.release(token)
    return response


@router.post(
    "/v1/webhooks/postmark",
    tags=["webhooks"],
    summary="Postmark inbound JSON, authenticated by HTTP basic auth in the webhook URL",
    responses=_responses(200, ItemAccepted, 400, 401, 404, 422),
    openapi_extra=json_body(PostmarkInbound),
)
async def postmark_inbound(request: Request) -> Response:
    service = _service(request)
    username = _secret(service.settings.postmark_basic_auth_user)
    password = _secret(service.settings.postmark_basic_auth_password)
    if username is None or password is None:
        return service.not_configured(request, POSTMARK)

    async def normalise(raw: bytes, _kind: str, received_at: datetime) -> Normalised:
        verify_basic_auth(request.headers.get("authorization"), username, password)
        return postmark_to_feedback(raw, received_at)

    return await service.handle(request, POSTMARK, normalise)


# -- social ----------------------------------------------------------------------------------


@router.get(
    "/v1/webhooks/meta",
    tags=["webhooks"],
    summary="Meta subscription handshake: echo hub.challenge if hub.verify_token matches",
    response_class=PlainTextResponse,
    responses={403: {"model": Problem}, 404: {"model": Problem}},
)
async def meta_subscription(request: Request) -> Response:
    service = _service(request)
    verify_token = _secret(service.settings.meta_verify_token)
    if verify_token is None:
        return service.not_configured(request, META)
    query = request.query_params
    challenge = query.get("hub.challenge")
    try:
        if challenge is not None and len(challenge) > _MAX_CHALLENGE_CHARS:
            challenge = None
        echoed = meta_adapter.verify_subscription(
            query.get("hub.mode"), query.get("hub.verify_token"), challenge, verify_token
        )
    except IngestError as error:
        return service.reject(request, META, error)
    log.info("meta_subscription_verified")
    return PlainTextResponse(echoed, headers={"X-Content-Type-Options": "nosniff"})


@router.post(
    "/v1/webhooks/meta",
    tags=["webhooks"],
    summary="Meta Graph webhooks (Page feed, Instagram comments), signed X-Hub-Signature-256",
    responses=_responses(200, ItemsAccepted, 400, 401, 404, 422),
    openapi_extra=json_body(meta_adapter.MetaWebhook),
)
async def meta_webhook(request: Request) -> Response:
    service = _service(request)
    app_secret = _secret(service.settings.meta_app_secret)
    if app_secret is None:
        return service.not_configured(request, META)

    async def normalise(raw: bytes, _kind: str, received_at: datetime) -> Normalised:
        meta_adapter.verify_meta_signature(
            app_secret, raw, request.headers.get(meta_adapter.SIGNATURE_HEADER)
        )
        return meta_adapter.meta_to_feedback(raw, received_at)

    return await service.handle(request, META, normalise)


# -- app -------------------------------------------------------------------------------------


@router.post(
    "/v1/webhooks/app/reviews",
    tags=["webhooks"],
    summary="App Store Connect customerReviews or Google Play reviews, as fetched",
    status_code=202,
    responses=_responses(202, ItemsAccepted, 400, 422),
    openapi_extra=json_body(AppStoreReviews, GooglePlayReviews),
)
async def app_reviews(request: Request) -> Response:
    async def normalise(raw: bytes, _kind: str, received_at: datetime) -> Normalised:
        return app_reviews_to_feedback(raw, received_at)

    return await _service(request).handle(request, APP_REVIEWS, normalise)
