"""The app's lifespan and HTTP surface without a broker: probes while starting, /v1/score."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import httpx
import pytest
from asgi_lifespan import LifespanManager

from closeloop_sentiment.app import create_app
from closeloop_sentiment.config import SentimentSettings
from closeloop_sentiment.scoring import Scorer, ScoringInput
from closeloop_shared.config import KafkaSettings
from closeloop_shared.contracts.sentiment import Sentiment, SentimentLabel

# Nothing listens there: the producer keeps retrying, so the broker check stays false.
NO_BROKER = KafkaSettings(bootstrap_servers="127.0.0.1:1", request_timeout_ms=1000)


class EchoScorer:
    model_name = "echo-test"
    model_version = "0.0.1"

    def score_batch(self, items: Sequence[ScoringInput]) -> list[Sentiment]:
        return [
            Sentiment(
                label=SentimentLabel.NEUTRAL,
                score=0.0,
                confidence=0.5,
                language=item.declared_language or "und",
                topics=[item.text],
                model=self.model_name,
                model_version=self.model_version,
                scored_at=datetime.now(UTC),
            )
            for item in items
        ]


@asynccontextmanager
async def running(
    load_scorer: Callable[[], Scorer], **settings: object
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(
        SentimentSettings(environment="test", **settings),  # type: ignore[arg-type]
        NO_BROKER,
        load_scorer=load_scorer,
    )
    async with (
        LifespanManager(app, startup_timeout=5, shutdown_timeout=10),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


async def poll(
    request: Callable[[], Awaitable[httpx.Response]],
    until: Callable[[httpx.Response], bool],
    timeout_s: float = 5.0,
) -> httpx.Response:
    """Repeat ``request`` until its response satisfies ``until``; the last response."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    response = await request()
    while not until(response) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
        response = await request()
    return response


async def test_not_ready_while_loading_then_scoring_once_loaded() -> None:
    release = threading.Event()

    def slow_load() -> Scorer:
        release.wait(10)
        return EchoScorer()

    async with running(slow_load) as client:
        ready = await client.get("/readyz")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"models": False, "broker": False}
        # Starting is not dead: the liveness probe must not restart us mid-load.
        assert (await client.get("/healthz")).status_code == 200
        loading = await client.post("/v1/score", json={"text": "hello"})
        assert loading.status_code == 503
        assert loading.json()["error"]["code"] == "unavailable"
        assert loading.headers["retry-after"] == "5"

        release.set()
        ready = await poll(
            lambda: client.get("/readyz"), until=lambda r: r.json()["checks"]["models"]
        )
        # Loaded, but without a broker the service is still not ready.
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"models": True, "broker": False}
        scored = await client.post("/v1/score", json={"text": "hello", "language": "fr"})
        assert scored.status_code == 200
        assert scored.json()["model"] == "echo-test"
        assert scored.json()["language"] == "fr"


async def test_a_failed_model_load_fails_the_liveness_probe() -> None:
    def broken_load() -> Scorer:
        raise RuntimeError("model file missing")

    async with running(broken_load) as client:
        health = await poll(lambda: client.get("/healthz"), until=lambda r: r.status_code != 200)
    assert health.status_code == 503
    assert health.json()["error"]["code"] == "unhealthy"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"text": ""},
        {"text": "   "},
        {"text": 42},
        {"text": "x" * 100_001},
        {"text": "ok", "rating": {"type": "stars", "value": 9}},
        {"text": "ok", "rating": {"type": "smileys", "value": 1}},
        {"text": "ok", "unexpected": True},
        {"text": "ok", "language": "x" * 17},
    ],
)
async def test_bad_score_requests_get_a_422_naming_the_problem(body: object) -> None:
    async with running(EchoScorer) as client:
        response = await client.post("/v1/score", json=body)
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "invalid_request"


async def test_a_score_request_that_is_not_json_gets_a_4xx() -> None:
    async with running(EchoScorer) as client:
        response = await client.post(
            "/v1/score", content=b"not json", headers={"content-type": "application/json"}
        )
    assert 400 <= response.status_code < 500


async def test_the_score_endpoint_can_be_switched_off() -> None:
    async with running(EchoScorer, score_endpoint_enabled=False) as client:
        response = await client.post("/v1/score", json={"text": "hello"})
    assert response.status_code == 404


async def test_the_score_endpoint_applies_the_channels_text_handling() -> None:
    async with running(EchoScorer) as client:
        await poll(lambda: client.get("/readyz"), until=lambda r: r.json()["checks"]["models"])
        body = {
            "text": "Still broken.\n\nOn Mon, Support wrote:\n> Great news!",
            "subject": "Re: ticket",
            "channel": "email",
        }
        scored = await client.post("/v1/score", json=body)
        assert scored.status_code == 200
        # The echo scorer returns what it was given as its one topic.
        assert scored.json()["topics"] == ["Re: ticket\nStill broken."]
        plain = await client.post("/v1/score", json={"text": "AGENT: hi\nCUSTOMER: bad"})
        assert plain.json()["topics"] == ["AGENT: hi\nCUSTOMER: bad"]
