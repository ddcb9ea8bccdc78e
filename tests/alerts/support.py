"""Test helpers for the alerts service: events, routing files and a local webhook receiver."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from starlette.requests import Request
from starlette.responses import Response

from closeloop_alerts import feedback_list, privacy_api, related, routes
from closeloop_alerts.clock import Clock, system_clock
from closeloop_alerts.delivery_payload import AttemptResult, signed_headers
from closeloop_alerts.notifiers import Notifier
from closeloop_alerts.outbound import Allowlist
from closeloop_alerts.owners import OwnerStore
from closeloop_alerts.routing import RoutingState
from closeloop_alerts.service import Lifecycle
from closeloop_devstack.infra import free_port
from closeloop_shared.contracts.feedback import (
    Channel,
    Customer,
    JourneyStage,
    Rating,
    RatingType,
    feedback_id,
)
from closeloop_shared.contracts.feedback import Feedback as FeedbackContract
from closeloop_shared.contracts.sentiment import ScoredFeedback, Sentiment, SentimentLabel
from closeloop_shared.events import FeedbackScoredEvent, new_event_id, utcnow
from closeloop_shared.http.observability import install_observability

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

# The local receiver listens on loopback: the only address the SSRF guard lets through here.
LOOPBACK = Allowlist.parse(["127.0.0.1"])


async def send_signed_webhook(
    client: httpx.AsyncClient, url: str, secret: str, msg_id: str, body: bytes
) -> AttemptResult:
    """POST one signed webhook as a delivery does: through the Notifier, behind the SSRF
    guard (the product has no other way to send one)."""
    headers = signed_headers(secret, msg_id, body, utcnow())
    return await Notifier(client, allowlist=LOOPBACK)._post(url, body, headers, "webhook")


# The minimal routing file of the issue, verbatim.
MINIMAL_ROUTING = """\
owners:
  - id: hotline-team
    name: Hotline team
    notify:
      - type: webhook
        url: https://hooks.example.com/closeloop/hotline
        secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
  - id: cx-team
    name: Customer experience
    notify:
      - type: webhook
        url: https://hooks.example.com/closeloop/cx
        secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
rules:
  - id: hotline-negative
    when: {channel: hotline, sentiment: negative}
    owner: hotline-team
    priority: high
default_owner: cx-team
"""


def routing_yaml(hotline_url: str, cx_url: str, secret: str = SECRET) -> str:
    """The minimal routing file pointed at local receiver URLs."""
    return (
        MINIMAL_ROUTING.replace("https://hooks.example.com/closeloop/hotline", hotline_url)
        .replace("https://hooks.example.com/closeloop/cx", cx_url)
        .replace(SECRET, secret)
    )


def scored(
    *,
    channel: Channel = Channel.HOTLINE,
    external_id: str | None = None,
    label: SentimentLabel = SentimentLabel.NEGATIVE,
    score: float = -0.8,
    text: str = "The agent hung up on me twice.",
    touchpoint: str | None = None,
    journey_stage: JourneyStage | None = None,
    tier: str | None = None,
    language: str | None = None,
    detected_language: str = "en",
    rating: tuple[RatingType, float] | None = None,
    model: str = "vader",
    model_version: str = "3.3.2",
    scored_at: datetime | None = None,
) -> ScoredFeedback:
    external_id = external_id or f"ext-{uuid.uuid4().hex[:12]}"
    now = datetime.now(UTC)
    feedback = FeedbackContract(
        id=feedback_id(channel, external_id),
        channel=channel,
        external_id=external_id,
        text=text,
        subject="Call 4711" if channel is Channel.EMAIL else None,
        occurred_at=now,
        received_at=now,
        customer=Customer(id="c-1", name="Dana Example", tier=tier),
        rating=Rating(type=rating[0], value=rating[1]) if rating else None,
        touchpoint=touchpoint,
        journey_stage=journey_stage,
        language=language,
    )
    sentiment = Sentiment(
        label=label,
        score=score,
        confidence=0.9,
        language=detected_language,
        model=model,
        model_version=model_version,
        scored_at=scored_at or now,
    )
    return ScoredFeedback(feedback=feedback, sentiment=sentiment)


def scored_event(item: ScoredFeedback) -> FeedbackScoredEvent:
    return FeedbackScoredEvent(
        id=new_event_id(),
        source="/closeloop/sentiment",
        subject=str(item.feedback.id),
        time=item.sentiment.scored_at,
        data=item,
    )


# --- Local webhook receiver ---------------------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    body: bytes = b""


@dataclass(frozen=True)
class Captured:
    path: str
    headers: dict[str, str]
    body: bytes


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Leave Ctrl-C to pytest: this server only lives inside a test.
        yield


class WebhookReceiver:
    """An HTTP server on 127.0.0.1 that records requests and answers from a per-path script.

    ``script(path, Reply(500), Reply(200))`` makes the next two requests to ``path`` get
    500 then 200; once the script is used up every request gets 200.
    """

    def __init__(self) -> None:
        self.port = free_port()
        self.requests: list[Captured] = []
        self._scripts: dict[str, list[Reply]] = {}
        self._arrived = asyncio.Event()
        self._server = _QuietServer(
            uvicorn.Config(
                self._asgi,
                host="127.0.0.1",
                port=self.port,
                log_level="warning",
                lifespan="off",
                interface="asgi3",
            )
        )
        self._task: asyncio.Task[None] | None = None

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path: str, *replies: Reply) -> None:
        self._scripts[path] = list(replies)

    def at(self, path: str) -> list[Captured]:
        return [request for request in self.requests if request.path == path]

    async def wait_for(self, path: str, count: int, timeout_s: float = 15.0) -> list[Captured]:
        """Wait until ``path`` received at least ``count`` requests."""
        async with asyncio.timeout(timeout_s):
            while len(self.at(path)) < count:
                self._arrived.clear()
                await self._arrived.wait()
        return self.at(path)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._server.serve())
        # uvicorn exposes a flag, not an event: poll it for up to ten seconds.
        for _ in range(1000):
            if self._server.started:
                return
            await asyncio.sleep(0.01)
        raise TimeoutError("the webhook receiver did not start")

    async def stop(self) -> None:
        self._server.should_exit = True
        if self._task is not None:
            await self._task

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        request = Request(scope, receive)
        body = await request.body()
        script = self._scripts.get(request.url.path)
        reply = script.pop(0) if script else Reply()
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        self.requests.append(Captured(request.url.path, dict(request.headers), body))
        self._arrived.set()
        response = Response(content=reply.body, status_code=reply.status, headers=reply.headers)
        await response(scope, receive, send)


@contextlib.asynccontextmanager
async def support_api(
    sessionmaker: async_sessionmaker[AsyncSession],
    state: RoutingState,
    *,
    service: str,
    clock: Clock = system_clock,
) -> AsyncIterator[httpx.AsyncClient]:
    """The alerts service's support API (every router agents and the console use) on a bare
    app with the real database, without consumers: a client of it."""
    app = FastAPI()
    for router in (
        routes.router,
        routes.admin,
        privacy_api.router,
        related.router,
        feedback_list.router,
    ):
        app.include_router(router)
    app.state.api = routes.ApiContext(
        sessionmaker=sessionmaker,
        wake_outbox=lambda: None,
        lifecycle=Lifecycle(sessionmaker, state, clock=clock),
        owners=OwnerStore(sessionmaker, state, None),
        outbound_allowlist=Allowlist.parse(()),
    )
    install_observability(app, service=service, readiness={})
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://alerts"
    ) as client:
        yield client
