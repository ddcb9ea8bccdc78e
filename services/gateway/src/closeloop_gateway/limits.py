"""What a request may cost: body size, media type and a per-API-key rate.

Everything here runs before the body is read, or while it is, so an oversized or
unwanted request costs the gateway as little as possible.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from starlette.requests import ClientDisconnect
from starlette.types import Receive

from closeloop_gateway.errors import ProblemError

# --- media types ------------------------------------------------------------------------------

FORM_URLENCODED = "application/x-www-form-urlencoded"
MULTIPART_FORM = "multipart/form-data"


def media_type(content_type: bytes | None) -> str:
    """``b"Application/JSON; charset=utf-8"`` → ``"application/json"``."""
    if not content_type:
        return ""
    return content_type.split(b";", 1)[0].strip().lower().decode("latin-1")


def is_json(content_type: bytes | None) -> bool:
    kind = media_type(content_type)
    return kind == "application/json" or (
        kind.startswith("application/") and kind.endswith("+json")
    )


def is_form(content_type: bytes | None) -> bool:
    return media_type(content_type) in (FORM_URLENCODED, MULTIPART_FORM)


MediaCheck = Callable[[bytes | None], bool]


def require_media_type(content_type: bytes | None, check: MediaCheck, expected: str) -> None:
    if not check(content_type):
        raise ProblemError(
            415,
            "unsupported_media_type",
            f"Content-Type must be {expected}.",
            received=media_type(content_type) or None,
        )


# --- body size --------------------------------------------------------------------------------


def too_large(limit: int) -> ProblemError:
    return ProblemError(
        413, "payload_too_large", f"The request body exceeds {limit} bytes.", limit=limit
    )


def check_declared_length(content_length: bytes | None, limit: int) -> None:
    """Refuse an honest oversized request from its Content-Length, before reading a byte."""
    if content_length is None:
        return
    try:
        declared = int(content_length)
    except ValueError:
        raise ProblemError(400, "bad_request", "Content-Length is not a number.") from None
    if declared < 0:
        raise ProblemError(400, "bad_request", "Content-Length is negative.")
    if declared > limit:
        raise too_large(limit)


async def read_body(receive: Receive, limit: int) -> bytes:
    """The whole body, counted while it streams in: chunked requests have no length, and a
    dishonest Content-Length is caught here too (the server also stops at the declared one).
    """
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnect()
    body: bytes = message.get("body", b"")
    if len(body) > limit:
        raise too_large(limit)
    if not message.get("more_body", False):
        # The common case (one chunk): no list, no join.
        return body
    chunks = [body]
    size = len(body)
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


@dataclass(frozen=True, slots=True)
class BodyLimits:
    default: int
    large: int


# --- rate -------------------------------------------------------------------------------------

POLICY_NAME = "per-key"


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    # Whole requests left in the bucket after this one.
    remaining: int
    # Seconds until the bucket is full again (the RateLimit "t" parameter).
    reset_s: int
    # Seconds until the next request would be allowed (0 when allowed).
    retry_after_s: int


class RateLimiter:
    """A token bucket per API key, in this process's memory.

    Deliberately simple: N replicas allow N times the rate, and a restart refills every
    bucket. Buckets exist only for authenticated keys, so their number is bounded by the
    number of keys, not by what an attacker sends.
    """

    def __init__(
        self,
        rate_per_s: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
        *,
        policy_name: str = POLICY_NAME,
        max_keys: int | None = None,
    ) -> None:
        if rate_per_s <= 0 or burst < 1:
            raise ValueError("a rate limiter needs rate_per_s > 0 and burst >= 1")
        self.rate = rate_per_s
        self.burst = burst
        self._clock = clock
        self._policy_name = policy_name
        # Keyed by something a client chooses (its address), the buckets must be bounded:
        # past max_keys the oldest bucket is dropped (its key starts again with a full one).
        self._max_keys = max_keys
        # key -> [tokens, last refill time]; a list so the hot path updates in place.
        self._buckets: dict[object, list[float]] = {}
        window = max(1, math.ceil(burst / rate_per_s))
        # IETF draft-ietf-httpapi-ratelimit-headers: the quota (the burst) and the window
        # in which it refills completely; constant, so rendered once.
        self.policy_header = (
            b"ratelimit-policy",
            f'"{policy_name}";q={burst};w={window}'.encode(),
        )

    def acquire(self, key: object) -> RateDecision:
        now = self._clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if self._max_keys is not None and len(self._buckets) >= self._max_keys:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[key] = [float(self.burst), now]
        tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        if tokens >= 1.0:
            tokens -= 1.0
            bucket[0] = tokens
            return RateDecision(True, int(tokens), self._seconds(self.burst - tokens), 0)
        bucket[0] = tokens
        return RateDecision(
            False, 0, self._seconds(self.burst - tokens), max(1, self._seconds(1.0 - tokens))
        )

    def _seconds(self, tokens: float) -> int:
        return math.ceil(tokens / self.rate - 1e-9) if tokens > 0 else 0

    def headers(self, decision: RateDecision) -> list[tuple[bytes, bytes]]:
        current = f'"{self._policy_name}";r={decision.remaining};t={decision.reset_s}'.encode()
        return [self.policy_header, (b"ratelimit", current)]

    def forget(self, key: object) -> None:
        self._buckets.pop(key, None)
