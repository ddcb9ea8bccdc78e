"""A local stand-in for an owner's webhook endpoint, used by ``make run`` / ``make demo``.

It verifies every delivery's Standard Webhooks signature with the secret the
routing file gives that owner (as a real receiver must), keeps what it got in
memory and logs one line per alert. ``GET /received`` lists the deliveries.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import uvicorn
import yaml
from standardwebhooks import Webhook, WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route


def owner_secrets(routing_file: Path) -> dict[str, str]:
    """Map the path of each owner's local webhook URL to its signing secret."""
    document = yaml.safe_load(routing_file.read_text())
    secrets: dict[str, str] = {}
    for owner in document.get("owners", []):
        for target in owner.get("notify", []):
            if target.get("type") == "webhook":
                path = "/" + target["url"].split("://", 1)[1].split("/", 1)[1]
                secrets[path] = target["secret"]
    return secrets


def create_app(routing_file: Path) -> Starlette:
    secrets = owner_secrets(routing_file)
    received: list[dict[str, Any]] = []

    async def receive(request: Request) -> JSONResponse:
        secret = secrets.get(request.url.path)
        if secret is None:
            return JSONResponse({"error": "unknown owner path"}, status_code=404)
        body = await request.body()
        try:
            Webhook(secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        payload = orjson.loads(body)
        received.append(
            {
                "path": request.url.path,
                "webhook_id": request.headers["webhook-id"],
                "headers": {
                    name: request.headers[name]
                    for name in ("webhook-id", "webhook-timestamp", "webhook-signature")
                },
                "body": body.decode(),
                "received_at": time.time(),
                "payload": payload,
            }
        )
        alert = payload.get("data", {}).get("alert", {})
        feedback = payload.get("data", {}).get("feedback", {})
        print(
            orjson.dumps(
                {
                    "event": "demo_owner_received",
                    "owner_path": request.url.path,
                    "alert": alert.get("id"),
                    "priority": alert.get("priority"),
                    "channel": feedback.get("channel"),
                }
            ).decode(),
            flush=True,
        )
        return JSONResponse({"ok": True})

    async def list_received(_request: Request) -> JSONResponse:
        return JSONResponse(received)

    return Starlette(
        routes=[
            Route("/received", list_received, methods=["GET"]),
            Route("/{path:path}", receive, methods=["POST"]),
        ]
    )


def serve(port: int, routing_file: Path) -> None:
    uvicorn.run(create_app(routing_file), host="127.0.0.1", port=port, log_level="warning")
