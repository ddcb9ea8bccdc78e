"""Forwarding to the services behind the gateway, and the public routes that do it.

The gateway never parses a feedback or webhook body: it checks who is calling, the media
type and the size, then sends the raw bytes upstream (ingest validates them, and the
providers' signatures are over exactly those bytes). Upstream answers come back with
their status, body, Content-Type and Retry-After unchanged.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

import aiohttp
import yarl
from fastapi import Depends, FastAPI, Path, Query, Request
from fastapi.responses import Response
from fastapi.routing import APIRoute
from multidict import CIMultiDict
from prometheus_client import Counter
from starlette.routing import request_response
from starlette.types import Scope as ASGIScope

from closeloop_gateway.auth import DENIAL_KEY, Authorized, Guard, Principal, Scope, require
from closeloop_gateway.config import GatewaySettings
from closeloop_gateway.errors import ProblemError, unavailable
from closeloop_gateway.limits import (
    BodyLimits,
    MediaCheck,
    RateLimiter,
    check_declared_length,
    is_form,
    is_json,
    media_type,
    read_body,
    require_media_type,
)
from closeloop_gateway.metrics import RATE_LIMITED, UPSTREAM_DURATION, UPSTREAM_REQUESTS
from closeloop_gateway.schemas import (
    AlertDetail,
    AlertOut,
    AlertPage,
    CustomerReplyReported,
    DryRunOut,
    ErasureOut,
    FeedbackDetail,
    FeedbackPage,
    ItemAccepted,
    ItemsAccepted,
    KpiReport,
    OwnerList,
    OwnerOut,
    Problem,
    RelatedFeedback,
    ScoreHistory,
)
from closeloop_shared.contracts.alerts import AlertPriority, AlertStatus
from closeloop_shared.contracts.feedback import (
    Channel,
    FeedbackAccepted,
    FeedbackBatchAccepted,
    JourneyStage,
)
from closeloop_shared.logging import get_logger

log = get_logger(__name__)

INGEST = "ingest"
ALERTS = "alerts"
# Alert list filters on the item (as the alerts service checks them): a topic or touchpoint
# without control characters, a journey stage, or "(none)" for items without one.
ITEM_VALUE = r"^[^\x00-\x1f\x7f]{1,128}$"
JOURNEY_STAGE = "^(" + "|".join([*(stage.value for stage in JourneyStage), r"\(none\)"]) + ")$"

# Request headers that travel upstream; everything else (the caller's Authorization above
# all, cookies, hop-by-hop headers, X-Closeloop-* and X-Forwarded-* a client made up) stays.
API_HEADERS = frozenset(
    {b"content-type", b"content-encoding", b"accept", b"user-agent", b"x-request-id"}
)
# Webhooks also carry the provider's proof of origin, which ingest verifies.
TWILIO_HEADERS = API_HEADERS | {b"x-twilio-signature"}
META_HEADERS = API_HEADERS | {b"x-hub-signature-256", b"x-hub-signature"}
# Postmark authenticates with HTTP basic auth in Authorization (not an API key).
POSTMARK_HEADERS = API_HEADERS | {b"authorization"}

# Upstream response headers the client gets; the rest (Server, Date, Content-Length,
# connection handling) is the gateway's own.
RESPONSE_HEADERS = frozenset(
    {b"content-type", b"retry-after", b"location", b"www-authenticate", b"cache-control"}
)
# Set by the alerts service when it refuses a request by the caller's role or team (the
# answer itself is a plain 403/404): the reason for the access audit, kept from the client.
DENIAL_HEADER = b"x-closeloop-denied"


# Added to every upstream request: bodies pass through as they are, so nothing is asked to
# be compressed, and no client-side headers are invented.
_UPSTREAM_DEFAULT_HEADERS = (("Accept-Encoding", "identity"),)
_SKIPPED_AUTO_HEADERS = frozenset({"User-Agent", "Accept", "Accept-Encoding", "Content-Type"})


class UpstreamUnavailable(Exception):
    """The upstream could not be reached or did not answer in time."""


@dataclass(frozen=True)
class UpstreamAnswer:
    status_code: int
    raw_headers: list[tuple[bytes, bytes]]
    content: bytes


class Upstream:
    """One service behind the gateway: one pooled keep-alive aiohttp session, made in the lifespan.

    Why aiohttp and not httpx: forwarding is the gateway's whole hot path, and on this
    hardware httpx (with httpcore's pool, which rescans every connection on each request)
    cost ~1.7-2.6 ms of client CPU per request against ~0.16-0.23 ms for aiohttp in the
    same run (a keep-alive POST of 1 KB to a bare ASGI server, 32 in flight).
    """

    def __init__(self, name: str, base_url: str, settings: GatewaySettings) -> None:
        self.name = name
        self.base_url = base_url.rstrip("/")
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(
                limit=settings.upstream_max_connections,
                keepalive_timeout=settings.upstream_keepalive_expiry_s,
            ),
            timeout=aiohttp.ClientTimeout(
                total=None,
                connect=settings.upstream_pool_timeout_s + settings.upstream_connect_timeout_s,
                sock_connect=settings.upstream_connect_timeout_s,
                sock_read=settings.upstream_timeout_s,
            ),
            # Bodies pass through byte for byte: never decompress, never add cookies.
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_SKIPPED_AUTO_HEADERS,
        )
        self._fixed_urls: dict[str, yarl.URL] = {}
        self.readiness_timeout_s = settings.readiness_timeout_s
        self.duration = UPSTREAM_DURATION.labels(name)
        self._by_status: dict[int, Counter] = {}
        self.unavailable = UPSTREAM_REQUESTS.labels(name, "unavailable")

    def url(self, path: str, query: bytes, *, fixed: bool) -> yarl.URL:
        """The upstream URL; ``fixed`` paths (no ids in them) are parsed once and reused."""
        if query:
            # The query string goes on byte for byte (encoded=True): Twilio signs the URL
            # including it, so it must not be re-encoded.
            return yarl.URL(self.base_url + path + "?" + query.decode("latin-1"), encoded=True)
        if not fixed:
            return yarl.URL(self.base_url + path, encoded=True)
        url = self._fixed_urls.get(path)
        if url is None:
            url = self._fixed_urls[path] = yarl.URL(self.base_url + path, encoded=True)
        return url

    async def send(
        self,
        method: str,
        url: yarl.URL,
        body: bytes | None,
        headers: list[tuple[bytes, bytes]],
    ) -> UpstreamAnswer:
        outgoing = CIMultiDict(
            (name.decode("latin-1"), value.decode("latin-1")) for name, value in headers
        )
        outgoing.extend(_UPSTREAM_DEFAULT_HEADERS)
        try:
            async with self._session.request(
                method, url, data=body, headers=outgoing, allow_redirects=False
            ) as answer:
                content = await answer.read()
                return UpstreamAnswer(answer.status, list(answer.raw_headers), content)
        except (aiohttp.ClientError, TimeoutError) as error:
            # Unreachable, refused, reset, timed out, or no pooled connection free in time.
            raise UpstreamUnavailable(type(error).__name__) from error

    def count(self, status: int) -> None:
        counter = self._by_status.get(status)
        if counter is None:
            counter = self._by_status[status] = UPSTREAM_REQUESTS.labels(self.name, str(status))
        counter.inc()

    async def healthy(self) -> bool:
        try:
            async with self._session.get(
                self.base_url + "/healthz",
                timeout=aiohttp.ClientTimeout(total=self.readiness_timeout_s),
            ) as response:
                return response.status == 200
        except (aiohttp.ClientError, TimeoutError):
            return False

    async def aclose(self) -> None:
        await self._session.close()


class Proxy:
    """Everything a proxied request needs, built in the lifespan and kept on ``app.state``."""

    def __init__(
        self,
        upstreams: dict[str, Upstream],
        guard: Guard,
        limits: BodyLimits,
        settings: GatewaySettings,
    ) -> None:
        self.upstreams = upstreams
        self.guard = guard
        self.limits = limits
        self.source_limiter = (
            RateLimiter(
                settings.source_rate_limit_per_s,
                settings.source_rate_limit_burst,
                policy_name="per-source",
                max_keys=settings.source_rate_limit_max_sources,
            )
            if settings.source_rate_limit_per_s > 0
            else None
        )
        self.retry_after_s = settings.upstream_retry_after_s
        self._public_proto: bytes | None = None
        self._public_host: bytes | None = None
        if settings.public_url:
            parts = urlsplit(settings.public_url)
            self._public_proto = parts.scheme.encode()
            self._public_host = parts.netloc.encode()

    async def forward(
        self,
        request: Request,
        upstream_name: str,
        path: str,
        *,
        body: bytes | None,
        allow: frozenset[bytes],
        principal: Principal | None,
        response_headers: list[tuple[bytes, bytes]],
        fixed_path: bool = False,
    ) -> Response:
        upstream = self.upstreams[upstream_name]
        scope = request.scope
        headers: list[tuple[bytes, bytes]] = []
        host: bytes | None = None
        for name, value in scope["headers"]:
            if name in allow:
                headers.append((name, value))
            elif name == b"host":
                host = value
        headers.extend(self._forwarded(scope, host))
        if principal is not None:
            headers.extend(principal.upstream_headers)
        try:
            url = upstream.url(path, scope["query_string"], fixed=fixed_path)
        except ValueError:
            raise ProblemError(400, "bad_request", "The query string is not valid.") from None
        started = time.perf_counter()
        try:
            answer = await upstream.send(scope["method"], url, body, headers)
        except UpstreamUnavailable as error:
            # A POST that timed out may have been processed; retrying is safe because
            # feedback ids are derived from (channel, external_id).
            upstream.duration.observe(time.perf_counter() - started)
            upstream.unavailable.inc()
            log.warning("upstream_unavailable", upstream=upstream_name, error=str(error))
            raise unavailable(
                f"The {upstream_name} service is unavailable; retry later.",
                self.retry_after_s,
                upstream=upstream_name,
            ) from None
        upstream.duration.observe(time.perf_counter() - started)
        upstream.count(answer.status_code)
        response = Response(content=answer.content, status_code=answer.status_code)
        raw = response.raw_headers
        for name, value in answer.raw_headers:
            lowered = name.lower()
            if lowered in RESPONSE_HEADERS:
                raw.append((lowered, value))
            elif lowered == DENIAL_HEADER:
                # The alerts service refused by team scope: audited here, never shown.
                scope[DENIAL_KEY] = value.decode("latin-1")[:64]
        raw.extend(response_headers)
        return response

    def limit_source(self, scope: ASGIScope) -> list[tuple[bytes, bytes]]:
        """The per-address bucket of an unkeyed (webhook) route: 429 when it is empty."""
        assert self.source_limiter is not None
        client = scope.get("client")
        decision = self.source_limiter.acquire(client[0] if client else "unknown")
        headers = self.source_limiter.headers(decision)
        if not decision.allowed:
            RATE_LIMITED.inc()
            raise ProblemError(
                429,
                "rate_limited",
                "Too many requests from this address; slow down.",
                headers=[*headers, (b"retry-after", str(decision.retry_after_s).encode())],
            )
        return headers

    def _forwarded(self, scope: ASGIScope, host: bytes | None) -> list[tuple[bytes, bytes]]:
        """X-Forwarded-* describing the public request (ingest rebuilds the signed URL)."""
        proto = self._public_proto or scope["scheme"].encode()
        public_host = self._public_host or host
        if public_host is None:
            server = scope.get("server")
            public_host = f"{server[0]}:{server[1]}".encode() if server else b""
        forwarded = [(b"x-forwarded-proto", proto), (b"x-forwarded-host", public_host)]
        client = scope.get("client")
        if client:
            forwarded.append((b"x-forwarded-for", client[0].encode()))
        return forwarded


def proxy_of(request: Request) -> Proxy:
    proxy: Proxy = request.app.state.proxy
    return proxy


# --- the ingest routes: raw, on the hot path --------------------------------------------------


class RawRoute(APIRoute):
    """An APIRoute for the OpenAPI document whose requests bypass FastAPI's request handling.

    FastAPI's per-request layer (dependency solving, body parsing, serialisation) was
    measured at ~130-180 µs per request on the reference VM, more than the server and
    Starlette together. These endpoints take the Starlette Request, do their own cheap
    checks and return a ready Response, so Starlette's handler is enough.
    """

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(path, endpoint, **kwargs)
        self.app = request_response(endpoint)


@dataclass(frozen=True, slots=True)
class Passage:
    """How one ingest route is guarded and forwarded."""

    path: str
    scope: Scope | None  # None: no API key; the provider's signature is checked upstream
    media: tuple[MediaCheck, str] | None
    large_body: bool
    headers: frozenset[bytes]


def passthrough(passage: Passage) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        proxy: Proxy = request.app.state.proxy
        authorization = content_type = content_length = None
        for name, value in request.scope["headers"]:
            if name == b"authorization":
                authorization = value
            elif name == b"content-type":
                content_type = value
            elif name == b"content-length":
                content_length = value
        principal: Principal | None = None
        response_headers: list[tuple[bytes, bytes]] = []
        if passage.scope is not None:
            authorized = await proxy.guard.authorize(authorization, passage.scope, request.scope)
            principal = authorized.principal
            response_headers = authorized.response_headers
        elif proxy.source_limiter is not None:
            response_headers = proxy.limit_source(request.scope)
        body: bytes | None = None
        if request.scope["method"] != "GET":
            if passage.media is not None:
                require_media_type(content_type, *passage.media)
            limit = proxy.limits.large if passage.large_body else proxy.limits.default
            check_declared_length(content_length, limit)
            body = await read_body(request.receive, limit)
        return await proxy.forward(
            request,
            INGEST,
            passage.path,
            body=body,
            allow=passage.headers,
            principal=principal,
            response_headers=response_headers,
            fixed_path=True,
        )

    return endpoint


def is_urlencoded(content_type: bytes | None) -> bool:
    return media_type(content_type) == "application/x-www-form-urlencoded"


JSON: tuple[MediaCheck, str] = (is_json, "application/json")
URLENCODED: tuple[MediaCheck, str] = (is_urlencoded, "application/x-www-form-urlencoded")
FORM: tuple[MediaCheck, str] = (
    is_form,
    "application/x-www-form-urlencoded or multipart/form-data",
)

PROBLEM_DESCRIPTIONS = {
    400: "The body could not be read (malformed).",
    401: "No API key, or an unknown or revoked one; for webhooks, a bad provider signature.",
    403: "The API key lacks the scope this route needs.",
    404: "No such item.",
    409: "The alert is not in a state that allows this action.",
    413: "The body is larger than this route accepts.",
    415: "The body's Content-Type is not one this route accepts.",
    422: "The request does not match the schema.",
    429: "This API key's rate limit is exhausted; see Retry-After.",
    503: "A service behind the gateway is unavailable; see Retry-After.",
}


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    return {
        status: {"model": Problem, "description": PROBLEM_DESCRIPTIONS[status]}
        for status in statuses
    }


def _ref(model: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model}"}


def _body(media: str, schema: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"required": True, "content": {media: {"schema": schema}}}
    if description:
        body["description"] = description
    return body


def _secured(scope: Scope) -> dict[str, Any]:
    return {"security": [{"bearer": []}], "x-required-scope": scope.value}


# Webhooks are not called with an API key: an empty security list says so in OpenAPI.
_UNSECURED: dict[str, Any] = {"security": []}


def _provider_object(description: str, properties: dict[str, str]) -> dict[str, Any]:
    return {
        "type": "object",
        "description": description,
        "properties": {
            name: {"type": "string", "description": text} for name, text in properties.items()
        },
        "additionalProperties": True,
    }


# What ingest's app-review adapter reads (closeloop_ingest.adapters.app_reviews): the shape
# it refuses is refused here too. Inner fields are left open: ingest reads them leniently
# (Google sends int64 as strings) and ignores what it does not know.
_APP_STORE_REVIEW: dict[str, Any] = {
    "type": "object",
    "description": "A customerReviews resource; attributes carry rating, title, body, "
    "reviewerNickname, createdDate, territory.",
    "required": ["type", "id"],
    "properties": {
        "type": {"type": "string", "description": "customerReviews; other types are ignored."},
        "id": {"type": "string", "minLength": 1, "maxLength": 200},
        "attributes": {"type": "object", "additionalProperties": True},
    },
    "additionalProperties": True,
}
_GOOGLE_PLAY_REVIEW: dict[str, Any] = {
    "type": "object",
    "description": "A review; the first comments[].userComment (text, starRating, "
    "lastModified, reviewerLanguage, ...) is the customer's.",
    "required": ["reviewId"],
    "properties": {
        "reviewId": {"type": "string", "minLength": 1, "maxLength": 200},
        "authorName": {"anyOf": [{"type": "string"}, {"type": "null"}]},
        "comments": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "userComment": {
                        "anyOf": [
                            {"type": "object", "additionalProperties": True},
                            {"type": "null"},
                        ]
                    }
                },
                "additionalProperties": True,
            },
        },
    },
    "additionalProperties": True,
}
APP_REVIEWS_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "title": "AppStoreReviews",
            "required": ["data"],
            "properties": {
                "data": {
                    "anyOf": [{"type": "array", "items": _APP_STORE_REVIEW}, _APP_STORE_REVIEW]
                }
            },
            "additionalProperties": True,
        },
        {
            "type": "object",
            "title": "GooglePlayReviews",
            "required": ["reviews"],
            # With "data" present, ingest reads the body as App Store Connect's.
            "not": {"required": ["data"]},
            "properties": {"reviews": {"type": "array", "items": _GOOGLE_PLAY_REVIEW}},
            "additionalProperties": True,
        },
    ]
}


def add_ingest_routes(app: FastAPI) -> None:
    def add(
        passage: Passage,
        *,
        method: str,
        operation_id: str,
        summary: str,
        status: int,
        model: type[Any] | None,
        errors: tuple[int, ...],
        extra: dict[str, Any],
        description: str | None = None,
    ) -> None:
        responses: dict[int | str, dict[str, Any]] = problems(*errors)
        if model is not None:
            responses[status] = {"model": model, "description": summary}
            if status != 200 and model in (ItemAccepted, ItemsAccepted):
                # Ingest answers 200 (nothing published) when no item carries customer text.
                responses[200] = {
                    "model": model,
                    "description": "No customer text: nothing published (see ignored).",
                }
        app.router.add_api_route(
            passage.path,
            passthrough(passage),
            methods=[method],
            status_code=status,
            response_model=None,
            operation_id=operation_id,
            summary=summary,
            description=description,
            tags=["feedback" if passage.scope is not None else "webhooks"],
            responses=responses,
            openapi_extra={
                **(_secured(passage.scope) if passage.scope is not None else _UNSECURED),
                **extra,
            },
            route_class_override=RawRoute,
            name=operation_id,
        )

    keyed = (400, 401, 403, 413, 415, 422, 429, 503)
    signed = (400, 401, 413, 415, 422, 503)
    add(
        Passage("/v1/feedback", Scope.FEEDBACK_WRITE, JSON, False, API_HEADERS),
        method="POST",
        operation_id="submitFeedback",
        summary="Submit one feedback item",
        description="Accepted once the item is durably queued; its id is derived from "
        "(channel, external_id), so a retry of the same item returns the same id.",
        status=202,
        model=FeedbackAccepted,
        errors=keyed,
        extra={"requestBody": _body("application/json", _ref("FeedbackIn"))},
    )
    add(
        Passage("/v1/feedback/batch", Scope.FEEDBACK_WRITE, JSON, True, API_HEADERS),
        method="POST",
        operation_id="submitFeedbackBatch",
        summary="Submit up to 1,000 feedback items",
        status=202,
        model=FeedbackBatchAccepted,
        errors=keyed,
        extra={"requestBody": _body("application/json", _ref("FeedbackBatchIn"))},
    )
    add(
        Passage("/v1/webhooks/hotline/transcript", Scope.FEEDBACK_WRITE, JSON, False, API_HEADERS),
        method="POST",
        operation_id="receiveHotlineTranscript",
        summary="A call transcript (Amazon Connect Contact Lens JSON)",
        status=202,
        model=ItemAccepted,
        errors=keyed,
        extra={
            "requestBody": _body(
                "application/json",
                _provider_object(
                    "Contact Lens post-call transcript: the customer's turns become the text.",
                    {
                        "Version": "Transcript format version.",
                        "CustomerMetadata": "Object with ContactId (the external id).",
                        "Participants": "Array of {ParticipantId, ParticipantRole}.",
                        "Transcript": "Array of {ParticipantId, Content, BeginOffsetMillis}.",
                    },
                ),
            )
        },
    )
    add(
        Passage("/v1/webhooks/app/reviews", Scope.FEEDBACK_WRITE, JSON, False, API_HEADERS),
        method="POST",
        operation_id="receiveAppReviews",
        summary="App store reviews (App Store Connect customerReviews or Google Play reviews)",
        status=202,
        model=ItemsAccepted,
        errors=keyed,
        extra={
            "requestBody": _body(
                "application/json",
                APP_REVIEWS_SCHEMA,
                "An App Store Connect customerReviews response ({data: [...]}) or a Google "
                "Play reviews.list response ({reviews: [...]}), as fetched.",
            )
        },
    )
    add(
        Passage("/v1/webhooks/twilio/transcription", None, URLENCODED, False, TWILIO_HEADERS),
        method="POST",
        operation_id="receiveTwilioTranscription",
        summary="Twilio transcription callback (signed with X-Twilio-Signature)",
        status=202,
        model=ItemAccepted,
        errors=signed,
        extra={
            "requestBody": _body(
                "application/x-www-form-urlencoded",
                _provider_object(
                    "Twilio's transcription callback parameters.",
                    {
                        "TranscriptionSid": "The external id.",
                        "TranscriptionText": "What the caller said.",
                        "TranscriptionStatus": "completed or failed.",
                        "CallSid": "The call.",
                        "From": "The caller's number.",
                    },
                ),
            ),
            "parameters": [
                {
                    "name": "X-Twilio-Signature",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "HMAC-SHA1 over the public URL and the sorted parameters.",
                }
            ],
        },
    )
    add(
        Passage("/v1/webhooks/mailgun", None, FORM, True, API_HEADERS),
        method="POST",
        operation_id="receiveMailgunEmail",
        summary="Mailgun inbound route (signed in the timestamp/token/signature fields)",
        status=200,
        model=ItemAccepted,
        errors=signed,
        extra={
            "requestBody": {
                "required": True,
                "content": {
                    media: {
                        "schema": _provider_object(
                            "Mailgun's parsed message.",
                            {
                                "sender": "The sender address.",
                                "subject": "The subject.",
                                "stripped-text": "The reply without quotes or signature.",
                                "timestamp": "Signed with token using the signing key.",
                                "token": "Random token.",
                                "signature": "HMAC-SHA256 of timestamp + token.",
                            },
                        )
                    }
                    for media in ("application/x-www-form-urlencoded", "multipart/form-data")
                },
            }
        },
    )
    add(
        Passage("/v1/webhooks/postmark", None, JSON, True, POSTMARK_HEADERS),
        method="POST",
        operation_id="receivePostmarkEmail",
        summary="Postmark inbound webhook (HTTP basic auth)",
        status=200,
        model=ItemAccepted,
        errors=signed,
        extra={
            "requestBody": _body(
                "application/json",
                _provider_object(
                    "Postmark's inbound message JSON.",
                    {
                        "MessageID": "The external id.",
                        "From": "The sender.",
                        "Subject": "The subject.",
                        "TextBody": "The plain-text body.",
                        "StrippedTextReply": "The reply without the quoted thread.",
                    },
                ),
            ),
            # Basic credentials (user:password in the webhook URL) checked by ingest.
            "security": [{"postmarkBasic": []}],
        },
    )
    add(
        Passage("/v1/webhooks/meta", None, None, False, META_HEADERS),
        method="GET",
        operation_id="verifyMetaWebhook",
        summary="Meta webhook subscription check (echoes hub.challenge)",
        status=200,
        model=None,
        errors=(401, 403, 404, 503),
        extra={
            "parameters": [
                {"name": name, "in": "query", "required": True, "schema": {"type": "string"}}
                for name in ("hub.mode", "hub.verify_token", "hub.challenge")
            ],
            "responses": {
                "200": {
                    "description": "The challenge, as plain text.",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        },
    )
    add(
        Passage("/v1/webhooks/meta", None, JSON, False, META_HEADERS),
        method="POST",
        operation_id="receiveMetaWebhook",
        summary="Meta (Facebook/Instagram) webhook (signed with X-Hub-Signature-256)",
        status=200,
        model=ItemsAccepted,
        errors=signed,
        extra={
            "requestBody": _body(
                "application/json",
                _provider_object(
                    "A Meta webhook delivery ({object, entry: [...]}).",
                    {"object": "page or instagram.", "entry": "Array of changes and messages."},
                ),
            ),
            "parameters": [
                {
                    "name": "X-Hub-Signature-256",
                    "in": "header",
                    "required": True,
                    "schema": {"type": "string"},
                    "description": "sha256=<HMAC-SHA256 of the raw body with the app secret>.",
                }
            ],
        },
    )


# --- the alerts routes ------------------------------------------------------------------------

AlertsReader = Annotated[Authorized, Depends(require(Scope.ALERTS_READ))]
AlertsWriter = Annotated[Authorized, Depends(require(Scope.ALERTS_WRITE))]
ReplyReporter = Annotated[Authorized, Depends(require(Scope.REPLIES_WRITE))]
Admin = Annotated[Authorized, Depends(require(Scope.ADMIN))]
OwnerId = Annotated[
    str, Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$", description="The owner id.")
]


async def list_alerts(
    request: Request,
    caller: AlertsReader,
    status: Annotated[
        list[AlertStatus] | None, Query(description="Repeat for any of several statuses.")
    ] = None,
    # An owner id's own pattern: anything else (a NUL byte above all) is a 422, not a query.
    owner: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$")] = None,
    priority: AlertPriority | None = None,
    channel: Channel | None = None,
    topic: Annotated[
        str | None, Query(pattern=ITEM_VALUE, description="`(none)`: items without a topic.")
    ] = None,
    touchpoint: Annotated[str | None, Query(pattern=ITEM_VALUE)] = None,
    journey_stage: Annotated[
        str | None, Query(pattern=JOURNEY_STAGE, description="`(none)`: no stage given.")
    ] = None,
    sla: Annotated[
        Literal["ok", "at_risk", "breached"] | None,
        Query(description="Where the running SLA clock stands (at_risk: 25% or less left)."),
    ] = None,
    created_from: Annotated[
        str | None, Query(alias="from", max_length=64, description="Created at or after.")
    ] = None,
    created_to: Annotated[
        str | None, Query(alias="to", max_length=64, description="Created before.")
    ] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Alerts, newest first, optionally filtered (in the database: pages are exact);
    follow `next_cursor` for more."""
    # The parameters are declared for the document and checked here; the query string
    # itself goes upstream untouched.
    return await proxy_of(request).forward(
        request,
        ALERTS,
        "/v1/alerts",
        body=None,
        allow=API_HEADERS,
        principal=caller.principal,
        response_headers=caller.response_headers,
        fixed_path=True,
    )


async def get_alert(alert_id: uuid.UUID, request: Request, caller: AlertsReader) -> Response:
    """One alert."""
    return await proxy_of(request).forward(
        request,
        ALERTS,
        f"/v1/alerts/{alert_id}",
        body=None,
        allow=API_HEADERS,
        principal=caller.principal,
        response_headers=caller.response_headers,
    )


async def acknowledge_alert(
    alert_id: uuid.UUID, request: Request, caller: AlertsWriter
) -> Response:
    """Acknowledge an open alert; the key's name is recorded as the actor."""
    return await proxy_of(request).forward(
        request,
        ALERTS,
        f"/v1/alerts/{alert_id}/acknowledge",
        body=b"",
        allow=API_HEADERS - {b"content-type", b"content-encoding"},
        principal=caller.principal,
        response_headers=caller.response_headers,
    )


async def _forward_json(request: Request, caller: Authorized, path: str) -> Response:
    """Check the media type and size of a JSON body, then forward it unparsed."""
    proxy = proxy_of(request)
    headers = request.headers
    require_media_type(headers.get("content-type", "").encode("latin-1"), *JSON)
    declared = headers.get("content-length")
    check_declared_length(None if declared is None else declared.encode(), proxy.limits.default)
    body = await read_body(request.receive, proxy.limits.default)
    return await proxy.forward(
        request,
        ALERTS,
        path,
        body=body,
        allow=API_HEADERS,
        principal=caller.principal,
        response_headers=caller.response_headers,
    )


async def _forward_plain(
    request: Request, caller: Authorized, path: str, *, fixed: bool = False
) -> Response:
    """Forward a request without a body (GET, DELETE); the query string goes as it came."""
    return await proxy_of(request).forward(
        request,
        ALERTS,
        path,
        body=None,
        allow=API_HEADERS,
        principal=caller.principal,
        response_headers=caller.response_headers,
        fixed_path=fixed,
    )


async def resolve_alert(alert_id: uuid.UUID, request: Request, caller: AlertsWriter) -> Response:
    """Resolve an alert with a note, optionally a root cause and a reply to the customer."""
    return await _forward_json(request, caller, f"/v1/alerts/{alert_id}/resolve")


async def reopen_alert(alert_id: uuid.UUID, request: Request, caller: AlertsWriter) -> Response:
    """Reopen a resolved alert (fresh SLA clocks), with a note."""
    return await _forward_json(request, caller, f"/v1/alerts/{alert_id}/reopen")


async def assign_alert(alert_id: uuid.UUID, request: Request, caller: AlertsWriter) -> Response:
    """Assign the alert to a person and/or hand it to another owner (who is notified)."""
    return await _forward_json(request, caller, f"/v1/alerts/{alert_id}/assign")


async def comment_alert(alert_id: uuid.UUID, request: Request, caller: AlertsWriter) -> Response:
    """Add a comment to the alert's history."""
    return await _forward_json(request, caller, f"/v1/alerts/{alert_id}/comments")


async def escalate_alert(alert_id: uuid.UUID, request: Request, caller: AlertsWriter) -> Response:
    """Escalate now, to a named owner or up the escalation chain (who is notified)."""
    return await _forward_json(request, caller, f"/v1/alerts/{alert_id}/escalate")


async def report_customer_reply(
    alert_id: uuid.UUID, request: Request, caller: ReplyReporter
) -> Response:
    """For channel systems: report whether the customer reply was sent or failed."""
    return await _forward_json(request, caller, f"/v1/alerts/{alert_id}/customer-reply")


async def request_erasure(request: Request, caller: Admin) -> Response:
    """Erase (anonymise) every stored item of a customer: right to be forgotten."""
    return await _forward_json(request, caller, "/v1/privacy/erasures")


async def list_owners(request: Request, caller: AlertsReader) -> Response:
    """Every owner, without credentials, with the health of its notify targets."""
    return await _forward_plain(request, caller, "/v1/owners", fixed=True)


async def get_owner(owner_id: OwnerId, request: Request, caller: AlertsReader) -> Response:
    """One owner."""
    return await _forward_plain(request, caller, f"/v1/owners/{owner_id}")


async def put_owner(owner_id: OwnerId, request: Request, caller: Admin) -> Response:
    """Create or replace an owner; takes effect without a restart."""
    return await _forward_json(request, caller, f"/v1/owners/{owner_id}")


async def delete_owner(owner_id: OwnerId, request: Request, caller: Admin) -> Response:
    """Remove an owner the admin API created and nothing refers to."""
    return await _forward_plain(request, caller, f"/v1/owners/{owner_id}")


async def dry_run_routing(request: Request, caller: AlertsReader) -> Response:
    """Which rule, owner, priority and SLA a feedback item would get, and why."""
    return await _forward_json(request, caller, "/v1/routing/dry-run")


async def get_kpis(
    request: Request,
    caller: AlertsReader,
    start: Annotated[str | None, Query(alias="from", max_length=64)] = None,
    end: Annotated[str | None, Query(alias="to", max_length=64)] = None,
    group_by: Annotated[
        str | None,
        Query(pattern="^(channel|touchpoint|journey_stage|topic|owner|journey_stage_touchpoint)$"),
    ] = None,
) -> Response:
    """KPIs over [from, to) (ISO 8601 with a time zone; default the last 7 days)."""
    return await _forward_plain(request, caller, "/v1/kpis", fixed=True)


async def get_feedback(feedback_id: uuid.UUID, request: Request, caller: AlertsReader) -> Response:
    """A stored feedback item with its sentiment and the alert it raised, if any."""
    return await proxy_of(request).forward(
        request,
        ALERTS,
        f"/v1/feedback/{feedback_id}",
        body=None,
        allow=API_HEADERS,
        principal=caller.principal,
        response_headers=caller.response_headers,
    )


async def list_feedback(
    request: Request,
    caller: AlertsReader,
    channel: Channel | None = None,
    touchpoint: Annotated[
        str | None, Query(pattern=ITEM_VALUE, description="`(none)`: no touchpoint given.")
    ] = None,
    journey_stage: Annotated[
        str | None, Query(pattern=JOURNEY_STAGE, description="`(none)`: no stage given.")
    ] = None,
    sentiment: Annotated[
        list[Literal["negative", "neutral", "positive"]] | None,
        Query(description="The live score's label; repeat for any of several."),
    ] = None,
    rating_type: Literal["nps", "csat", "ces"] | None = None,
    topic: Annotated[
        str | None, Query(pattern=ITEM_VALUE, description="`(none)`: items without a topic.")
    ] = None,
    occurred_from: Annotated[
        str | None, Query(alias="from", max_length=64, description="Occurred at or after.")
    ] = None,
    occurred_to: Annotated[
        str | None, Query(alias="to", max_length=64, description="Occurred before.")
    ] = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    cursor: Annotated[str | None, Query(max_length=512)] = None,
) -> Response:
    """Stored feedback, newest first, filtered as the KPIs group it (same range, same
    groups: a KPI number and the length of its list agree); follow `next_cursor` for more."""
    # Declared for the document and checked here; the query string goes upstream untouched.
    return await _forward_plain(request, caller, "/v1/feedback", fixed=True)


async def get_related_feedback(
    feedback_id: uuid.UUID,
    request: Request,
    caller: AlertsReader,
    limit: Annotated[int | None, Query(ge=1, le=100)] = None,
) -> Response:
    """The same customer's other feedback (any channel), newest first, with live scores."""
    return await _forward_plain(request, caller, f"/v1/feedback/{feedback_id}/related")


async def get_score_history(
    feedback_id: uuid.UUID, request: Request, caller: AlertsReader
) -> Response:
    """Every score of a stored item with its model and version; which one is live."""
    return await _forward_plain(request, caller, f"/v1/feedback/{feedback_id}/scores")


def add_alerts_routes(app: FastAPI) -> None:
    def add(
        path: str,
        endpoint: Callable[..., Awaitable[Response]],
        method: str,
        operation_id: str,
        summary: str,
        scope: Scope,
        model: type[Any] | None,
        errors: tuple[int, ...],
        extra: dict[str, Any] | None = None,
        *,
        status: int = 200,
        tag: str = "alerts",
    ) -> None:
        # A route with a JSON body answers 400 when the body is not JSON at all.
        body_errors = (400,) if method in {"POST", "PUT"} else ()
        responses = problems(401, 403, 422, 429, 503, *body_errors, *errors)
        if model is not None:
            responses[status] = {"model": model, "description": "The alerts service's answer."}
            if method == "PUT":
                responses[201] = {"model": model, "description": "Created."}
        else:
            responses[status] = {"description": "Done (no body)."}
        app.router.add_api_route(
            path,
            endpoint,
            methods=[method],
            status_code=status,
            response_model=None,
            operation_id=operation_id,
            summary=summary,
            tags=[tag],
            responses=responses,
            openapi_extra={**_secured(scope), **(extra or {})},
            name=operation_id,
        )

    add(
        "/v1/alerts",
        list_alerts,
        "GET",
        "listAlerts",
        "List alerts",
        Scope.ALERTS_READ,
        AlertPage,
        (),
    )
    add(
        "/v1/alerts/{alert_id}",
        get_alert,
        "GET",
        "getAlert",
        "Get an alert with its feedback, deliveries and history",
        Scope.ALERTS_READ,
        AlertDetail,
        (404,),
    )
    add(
        "/v1/alerts/{alert_id}/acknowledge",
        acknowledge_alert,
        "POST",
        "acknowledgeAlert",
        "Acknowledge an alert",
        Scope.ALERTS_WRITE,
        AlertOut,
        (404, 409),
    )
    add(
        "/v1/alerts/{alert_id}/resolve",
        resolve_alert,
        "POST",
        "resolveAlert",
        "Resolve an alert",
        Scope.ALERTS_WRITE,
        AlertOut,
        (404, 409, 413, 415),
        {"requestBody": _body("application/json", _ref("ResolveAlertIn"))},
    )
    add(
        "/v1/feedback",
        list_feedback,
        "GET",
        "listFeedback",
        "List stored feedback (the items behind the KPI numbers)",
        Scope.ALERTS_READ,
        FeedbackPage,
        (),
    )
    add(
        "/v1/feedback/{feedback_id}",
        get_feedback,
        "GET",
        "getFeedback",
        "Get a feedback item with its sentiment and alert",
        Scope.ALERTS_READ,
        FeedbackDetail,
        (404,),
    )
    add(
        "/v1/feedback/{feedback_id}/related",
        get_related_feedback,
        "GET",
        "getRelatedFeedback",
        "Get the same customer's other feedback across channels",
        Scope.ALERTS_READ,
        RelatedFeedback,
        (404,),
    )
    add(
        "/v1/feedback/{feedback_id}/scores",
        get_score_history,
        "GET",
        "getScoreHistory",
        "Get every score of a feedback item (live and re-scores, with model versions)",
        Scope.ALERTS_READ,
        ScoreHistory,
        (404,),
    )
    for suffix, endpoint, operation_id, summary, body, errors in (
        ("reopen", reopen_alert, "reopenAlert", "Reopen a resolved alert", "ReopenAlertIn", (409,)),
        (
            "assign",
            assign_alert,
            "assignAlert",
            "Assign an alert to a person or another owner",
            "AssignAlertIn",
            (409,),
        ),
        ("comments", comment_alert, "commentAlert", "Comment on an alert", "CommentAlertIn", ()),
        (
            "escalate",
            escalate_alert,
            "escalateAlert",
            "Escalate an alert",
            "EscalateAlertIn",
            (409,),
        ),
    ):
        add(
            f"/v1/alerts/{{alert_id}}/{suffix}",
            endpoint,
            "POST",
            operation_id,
            summary,
            Scope.ALERTS_WRITE,
            AlertOut,
            (404, 413, 415, *errors),
            {"requestBody": _body("application/json", _ref(body))},
        )
    add(
        "/v1/alerts/{alert_id}/customer-reply",
        report_customer_reply,
        "POST",
        "reportCustomerReply",
        "Report whether the reply reached the customer (channel systems)",
        Scope.REPLIES_WRITE,
        CustomerReplyReported,
        (404, 413, 415),
        {
            "requestBody": _body("application/json", _ref("CustomerReplyStatusIn")),
            "description": "Needs `replies:write` (channel keys hold it) or `alerts:write`. "
            "A channel key gets a `CustomerReplyReceipt` (the reply's state, nothing of the "
            "alert); other keys get the alert.",
        },
    )
    add(
        "/v1/privacy/erasures",
        request_erasure,
        "POST",
        "requestErasure",
        "Erase a customer's data (right to be forgotten)",
        Scope.ADMIN,
        ErasureOut,
        (413, 415),
        {
            "requestBody": _body("application/json", _ref("ErasureIn")),
            "description": "Every stored item carrying one of the identifiers (and the other "
            "identifiers those items carry) is anonymised: text, customer, subject, replies, "
            "audit notes; alerts and scores stay for the KPIs. Recorded in the access audit. "
            "Idempotent: a repeat finds nothing more to erase.",
        },
        status=201,
        tag="privacy",
    )
    add(
        "/v1/owners",
        list_owners,
        "GET",
        "listOwners",
        "List owners",
        Scope.ALERTS_READ,
        OwnerList,
        (),
        tag="owners",
    )
    add(
        "/v1/owners/{owner_id}",
        get_owner,
        "GET",
        "getOwner",
        "Get an owner",
        Scope.ALERTS_READ,
        OwnerOut,
        (404,),
        tag="owners",
    )
    add(
        "/v1/owners/{owner_id}",
        put_owner,
        "PUT",
        "putOwner",
        "Create or replace an owner (200 replaced, 201 created)",
        Scope.ADMIN,
        OwnerOut,
        (409, 413, 415),
        {"requestBody": _body("application/json", _ref("OwnerIn"))},
        tag="owners",
    )
    add(
        "/v1/owners/{owner_id}",
        delete_owner,
        "DELETE",
        "deleteOwner",
        "Delete an owner",
        Scope.ADMIN,
        None,
        (404, 409),
        status=204,
        tag="owners",
    )
    add(
        "/v1/routing/dry-run",
        dry_run_routing,
        "POST",
        "dryRunRouting",
        "Dry-run the routing rules for a feedback item",
        Scope.ALERTS_READ,
        DryRunOut,
        (413, 415),
        {"requestBody": _body("application/json", _ref("DryRunIn"))},
        tag="routing",
    )
    add(
        "/v1/kpis",
        get_kpis,
        "GET",
        "getKpis",
        "KPIs over a time range",
        Scope.ALERTS_READ,
        KpiReport,
        (),
        tag="kpis",
    )
