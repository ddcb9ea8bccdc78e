from __future__ import annotations

import httpx
from fastapi import APIRouter, FastAPI

from closeloop_shared.http.observability import HTTP_REQUESTS, install_observability


def _count(route: str, status: str) -> float:
    value = HTTP_REQUESTS.labels("obs-test", route, "GET", status)._value.get()
    return float(value)


def _app(ready: bool, alive: bool = True) -> FastAPI:
    app = FastAPI()
    router = APIRouter(prefix="/v1")

    @router.get("/things/{thing_id}")
    async def get_thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app.include_router(router)

    async def check() -> bool:
        return ready

    install_observability(
        app, service="obs-test", readiness={"broker": check}, liveness=lambda: alive
    )
    return app


async def _get(app: FastAPI, path: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        return await client.get(path)


async def test_requests_are_counted_by_route_template_not_by_id() -> None:
    app = _app(ready=True)
    before = _count("/v1/things/{thing_id}", "200")
    assert (await _get(app, "/v1/things/1")).status_code == 200
    assert (await _get(app, "/v1/things/2")).status_code == 200
    assert _count("/v1/things/{thing_id}", "200") == before + 2


async def test_validation_errors_are_json_naming_the_field() -> None:
    response = await _get(_app(ready=True), "/v1/things/not-a-number")
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "invalid_request"
    assert error["errors"][0]["loc"] == ["path", "thing_id"]


async def test_unknown_path_is_a_json_404() -> None:
    response = await _get(_app(ready=True), "/nope")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


async def test_readiness_reports_each_check() -> None:
    ready = await _get(_app(ready=True), "/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"broker": True}}
    not_ready = await _get(_app(ready=False), "/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["checks"] == {"broker": False}


async def test_liveness_fails_when_a_background_loop_died() -> None:
    assert (await _get(_app(ready=True, alive=True), "/healthz")).status_code == 200
    assert (await _get(_app(ready=True, alive=False), "/healthz")).status_code == 503


async def test_metrics_exposition_has_build_info() -> None:
    body = (await _get(_app(ready=True), "/metrics")).text
    assert 'closeloop_build_info{service="obs-test"' in body
