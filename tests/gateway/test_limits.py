"""Unit tests: media types, body size limits, the token bucket."""

from __future__ import annotations

from typing import Any

import pytest

from closeloop_gateway.errors import ProblemError
from closeloop_gateway.limits import (
    RateLimiter,
    check_declared_length,
    is_form,
    is_json,
    media_type,
    read_body,
    require_media_type,
)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.mark.parametrize(
    ("content_type", "json"),
    [
        (b"application/json", True),
        (b"Application/JSON; charset=utf-8", True),
        (b"application/problem+json", True),
        (b"text/plain", False),
        (b"application/x-www-form-urlencoded", False),
        (b"", False),
        (None, False),
    ],
)
def test_json_media_types(content_type: bytes | None, json: bool) -> None:
    assert is_json(content_type) is json


def test_form_media_types() -> None:
    assert is_form(b"multipart/form-data; boundary=abc")
    assert is_form(b"application/x-www-form-urlencoded")
    assert not is_form(b"application/json")
    assert media_type(b" Multipart/Form-Data ;boundary=x") == "multipart/form-data"


def test_wrong_media_type_is_415() -> None:
    with pytest.raises(ProblemError) as raised:
        require_media_type(b"text/plain", is_json, "application/json")
    assert raised.value.status == 415
    assert raised.value.extra == {"received": "text/plain"}


def test_declared_length_is_checked_before_reading() -> None:
    check_declared_length(None, 10)
    check_declared_length(b"10", 10)
    with pytest.raises(ProblemError) as raised:
        check_declared_length(b"11", 10)
    assert raised.value.status == 413
    for bad in (b"ten", b"-1"):
        with pytest.raises(ProblemError) as raised:
            check_declared_length(bad, 10)
        assert raised.value.status == 400


def receiver(*chunks: bytes) -> Any:
    messages = [
        {"type": "http.request", "body": chunk, "more_body": index < len(chunks) - 1}
        for index, chunk in enumerate(chunks)
    ]
    received: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        message = messages.pop(0)
        received.append(message)
        return message

    receive.received = received  # type: ignore[attr-defined]
    return receive


async def test_read_body_returns_one_or_many_chunks() -> None:
    assert await read_body(receiver(b"abc"), 3) == b"abc"
    assert await read_body(receiver(b"ab", b"", b"cd"), 4) == b"abcd"
    assert await read_body(receiver(b""), 0) == b""


async def test_read_body_stops_at_the_first_chunk_over_the_limit() -> None:
    receive = receiver(b"a" * 4, b"b" * 4, b"c" * 4, b"d" * 4)
    with pytest.raises(ProblemError) as raised:
        await read_body(receive, 6)
    assert raised.value.status == 413
    assert raised.value.extra == {"limit": 6}
    # Two chunks were enough to know; the rest of the stream was never pulled.
    assert len(receive.received) == 2


def test_token_bucket_allows_the_burst_then_refills_at_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    decisions = [limiter.acquire("k") for _ in range(4)]
    assert [d.allowed for d in decisions] == [True, True, True, False]
    assert [d.remaining for d in decisions] == [2, 1, 0, 0]
    assert decisions[3].retry_after_s == 1
    # Another key has its own bucket.
    assert limiter.acquire("other").allowed
    clock.now += 0.5  # one token back
    assert limiter.acquire("k").allowed
    assert not limiter.acquire("k").allowed
    clock.now += 60  # never more than the burst
    assert [limiter.acquire("k").allowed for _ in range(4)] == [True, True, True, False]


def test_ratelimit_headers_follow_the_ietf_draft() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=10.0, burst=100, clock=clock)
    decision = limiter.acquire("k")
    assert dict(limiter.headers(decision)) == {
        b"ratelimit-policy": b'"per-key";q=100;w=10',
        b"ratelimit": b'"per-key";r=99;t=1',
    }


def test_forgotten_key_starts_with_a_full_bucket() -> None:
    limiter = RateLimiter(rate_per_s=1.0, burst=1, clock=Clock())
    assert limiter.acquire("k").allowed
    assert not limiter.acquire("k").allowed
    limiter.forget("k")
    assert limiter.acquire("k").allowed


def test_rate_limiter_needs_a_positive_rate() -> None:
    with pytest.raises(ValueError, match="rate_per_s"):
        RateLimiter(rate_per_s=0, burst=1)


def test_source_limiter_keeps_a_bounded_number_of_buckets() -> None:
    now = [0.0]
    limiter = RateLimiter(1.0, 1, clock=lambda: now[0], policy_name="per-source", max_keys=2)
    assert limiter.acquire("10.0.0.1").allowed
    assert not limiter.acquire("10.0.0.1").allowed  # its one token is spent
    assert limiter.acquire("10.0.0.2").allowed
    assert limiter.acquire("10.0.0.3").allowed  # evicts the oldest bucket, 10.0.0.1's
    assert limiter.acquire("10.0.0.1").allowed  # so it starts again with a full bucket
    policy = dict(limiter.headers(limiter.acquire("10.0.0.9")))[b"ratelimit-policy"]
    assert policy.startswith(b'"per-source";q=1;')
