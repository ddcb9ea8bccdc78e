"""The ceiling for single-item ingestion: a bare ASGI app that drains the body and answers 202.

Served by the same server stack as the services (uvicorn with uvloop and httptools), so
the gap between it and the gateway is the cost of Closeloop's own work.
"""

from __future__ import annotations

from starlette.types import Receive, Scope, Send

_BODY = b'{"status":"accepted"}'
_HEADERS = [(b"content-type", b"application/json"), (b"content-length", b"21")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 202, "headers": _HEADERS})
    await send({"type": "http.response.body", "body": _BODY})
