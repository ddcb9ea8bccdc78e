"""Test helpers: fake upstream services that record what the gateway sent them."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn
from asgi_lifespan import LifespanManager

from closeloop_devstack.infra import free_port
from closeloop_gateway.app import create_app
from closeloop_gateway.config import GatewaySettings
from closeloop_shared.config import DatabaseSettings

ADMIN_KEY = "clk_" + secrets.token_urlsafe(32)
FEEDBACK_ID = "0b7f5a57-8d4e-5a8c-9d5f-3c3b2f4d9e11"


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    query: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.all(name)
        assert len(values) <= 1, f"{name} sent {len(values)} times: {values}"
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        wanted = name.lower().encode()
        return [value.decode("latin-1") for key, value in self.headers if key.lower() == wanted]


@dataclass(frozen=True)
class Reply:
    status: int = 202
    body: bytes = b'{"id": "' + FEEDBACK_ID.encode() + b'"}'
    headers: tuple[tuple[str, str], ...] = (("content-type", "application/json"),)
    delay_s: float = 0.0


class _QuietServer(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # Leave Ctrl-C to pytest: this server only lives inside a test.
        yield


@dataclass
class FakeUpstream:
    """A service behind the gateway, on a free loopback port: records requests, answers
    from a per-path script (then with ``default``)."""

    name: str
    port: int = field(default_factory=free_port)
    received: list[Received] = field(default_factory=list)
    default: Reply = field(default_factory=Reply)
    _scripts: dict[str, list[Reply]] = field(default_factory=dict)
    _server: _QuietServer | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def script(self, path: str, *replies: Reply) -> None:
        self._scripts[path] = list(replies)

    def at(self, path: str) -> list[Received]:
        return [request for request in self.received if request.path == path]

    def last(self, path: str) -> Received:
        seen = self.at(path)
        assert seen, f"{self.name} received nothing at {path}"
        return seen[-1]

    async def start(self) -> None:
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
        self._task = asyncio.create_task(self._server.serve())
        async with asyncio.timeout(10):
            while not self._server.started:  # noqa: ASYNC110 - uvicorn offers no event
                await asyncio.sleep(0.01)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._task is not None:
            await self._task

    def reply_to(self, request: Received) -> Reply:
        """The scripted reply for the path, else the default (subclasses answer otherwise)."""
        script = self._scripts.get(request.path)
        return script.pop(0) if script else self.default

    async def _asgi(self, scope: Any, receive: Any, send: Any) -> None:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        path: str = scope["path"]
        if path == "/healthz":
            reply = Reply(200, b'{"status": "ok"}')
        else:
            request = Received(
                scope["method"],
                path,
                scope["query_string"],
                list(scope["headers"]),
                b"".join(chunks),
            )
            self.received.append(request)
            reply = self.reply_to(request)
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode(), v.encode()) for k, v in reply.headers],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})


@contextlib.asynccontextmanager
async def fake_upstream(name: str) -> AsyncIterator[FakeUpstream]:
    upstream = FakeUpstream(name)
    await upstream.start()
    try:
        yield upstream
    finally:
        await upstream.stop()


def gateway_settings(ingest_url: str, alerts_url: str, **overrides: Any) -> GatewaySettings:
    values: dict[str, Any] = {
        "ingest_url": ingest_url,
        "alerts_url": alerts_url,
        "bootstrap_admin_key": ADMIN_KEY,
        # Revocation must be visible to the very next request in tests.
        "key_cache_ttl_s": 0,
        "rate_limit_per_s": 0,
        "upstream_retry_after_s": 7,
        **overrides,
    }
    return GatewaySettings.model_validate(values)


def database_settings(database_url: str) -> DatabaseSettings:
    return DatabaseSettings().model_copy(update={"url": database_url, "pool_size": 2})


@contextlib.asynccontextmanager
async def running_gateway(
    settings: GatewaySettings, database_url: str
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, database_settings(database_url))
    async with (
        LifespanManager(app) as manager,
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=manager.app), base_url="http://testserver"
        ) as client,
    ):
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}
