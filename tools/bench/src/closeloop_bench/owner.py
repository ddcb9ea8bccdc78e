"""A timing owner: records when each alert's webhook first arrived, per feedback id.

Runs as its own process (``python -m closeloop_bench.owner``) so receiving webhooks does
not steal CPU from the load generator. Signatures are not verified here: the end-to-end
test proves them; the benchmark measures time.
"""

from __future__ import annotations

import sys
import time

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

arrivals: dict[str, float] = {}
deliveries = 0


async def receive(request: Request) -> Response:
    global deliveries
    now = time.time()
    payload = orjson.loads(await request.body())
    deliveries += 1
    feedback_id = payload["data"]["feedback"]["id"]
    arrivals.setdefault(feedback_id, now)
    return Response(status_code=204)


async def list_arrivals(_request: Request) -> Response:
    body = orjson.dumps({"deliveries": deliveries, "arrivals": arrivals})
    return Response(body, media_type="application/json")


async def reset(_request: Request) -> Response:
    global deliveries
    arrivals.clear()
    deliveries = 0
    return Response(status_code=204)


app = Starlette(
    routes=[
        Route("/arrivals", list_arrivals, methods=["GET"]),
        Route("/reset", reset, methods=["POST"]),
        Route("/{path:path}", receive, methods=["POST"]),
    ]
)

if __name__ == "__main__":
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning")
