"""Calls to the alerts service on behalf of the signed-in person.

Only through the gateway's pooled ``Upstream`` client and only with the principal's own
upstream headers (principal, actor and whatever else the key carries, such as its role
and team), so the alerts service sees exactly what it would see from the public API.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

import orjson

from closeloop_gateway.auth import Principal
from closeloop_gateway.proxy import DENIAL_HEADER, Upstream, UpstreamUnavailable


class AlertsError(Exception):
    """The alerts service refused (4xx) or could not be reached (503)."""

    def __init__(self, status: int, code: str, detail: str, denied: str | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        # The alerts service's reason when it refused by role or team (X-Closeloop-Denied),
        # for the gateway's access audit; never shown to the person.
        self.denied = denied


def upstream_headers(principal: Principal, display_name: str | None) -> list[tuple[bytes, bytes]]:
    """The key's upstream headers; a named user is recorded as "name (key name)"."""
    headers = []
    for name, value in principal.upstream_headers:
        if name == b"x-closeloop-actor" and display_name:
            value = f"{display_name} ({principal.name})".encode()
        headers.append((name, value))
    return headers


class AlertsApi:
    def __init__(self, upstream: Upstream, headers: list[tuple[bytes, bytes]]) -> None:
        self._upstream = upstream
        self._headers = [
            *headers,
            (b"accept", b"application/json"),
            (b"user-agent", b"closeloop-console"),
        ]

    async def get(
        self, path: str, query: Mapping[str, str | Sequence[str] | None] | None = None
    ) -> Any:
        """GET ``path``; a list value repeats its parameter (status=open&status=...)."""
        pairs: list[tuple[str, str]] = []
        for name, value in (query or {}).items():
            values = [value] if isinstance(value, str) else list(value or ())
            pairs.extend((name, item) for item in values if item)
        return await self._call("GET", path, urlencode(pairs).encode(), None)

    async def post(self, path: str, body: Mapping[str, Any] | None) -> Any:
        return await self._call("POST", path, b"", body)

    async def _call(
        self, method: str, path: str, query: bytes, body: Mapping[str, Any] | None
    ) -> Any:
        headers = list(self._headers)
        content: bytes | None = None
        if method == "POST":
            content = b"" if body is None else orjson.dumps(body)
            if body is not None:
                headers.append((b"content-type", b"application/json"))
        upstream = self._upstream
        started = time.perf_counter()
        try:
            answer = await upstream.send(
                method, upstream.url(path, query, fixed=False), content, headers
            )
        except UpstreamUnavailable:
            upstream.unavailable.inc()
            raise AlertsError(503, "unavailable", "The alerts service is unavailable.") from None
        finally:
            upstream.duration.observe(time.perf_counter() - started)
        upstream.count(answer.status_code)
        try:
            data = orjson.loads(answer.content) if answer.content else None
        except orjson.JSONDecodeError:
            data = None
        if answer.status_code >= 400:
            error = data.get("error") if isinstance(data, dict) else None
            if not isinstance(error, dict):
                error = {}
            denied = next(
                (
                    v.decode("latin-1")[:64]
                    for k, v in answer.raw_headers
                    if k.lower() == DENIAL_HEADER
                ),
                None,
            )
            raise AlertsError(
                answer.status_code,
                str(error.get("code", "upstream_error")),
                str(error.get("detail", f"The alerts service answered {answer.status_code}.")),
                denied,
            )
        return data
