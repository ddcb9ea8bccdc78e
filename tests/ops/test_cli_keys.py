"""``closeloop keys``: roles and teams on create, rotation through the gateway's endpoint
(unit tests against a fake admin API; tests/ops/test_cli.py runs them on the real stack)."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from click.testing import CliRunner

from closeloop_cli import keys
from closeloop_cli.app import cli

OLD_ID = "7d6f0c2e-1111-4222-8333-944445555666"
OLD: dict[str, Any] = {
    "id": OLD_ID,
    "name": "ann",
    "prefix": "clk_abcdefgh",
    "role": "agent",
    "team": "hotline-team",
    "scopes": ["alerts:read", "alerts:write"],
    "created_at": "2026-11-22T10:00:00+00:00",
    "revoked_at": None,
    "last_used_at": None,
}


class FakeAdminApi:
    def __init__(self) -> None:
        self.requests: list[tuple[str, str, dict[str, Any] | None]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content) if request.content else None
        self.requests.append((request.method, str(request.url), body))
        path = request.url.path
        if request.method == "GET" and path == keys.PATH:
            return httpx.Response(200, json={"items": [OLD]})
        if request.method == "POST" and path == keys.PATH:
            assert body is not None
            return httpx.Response(201, json={**OLD, **body, "id": "new", "key": "clk_secret"})
        if request.method == "POST" and path.endswith("/rotate"):
            keep = request.url.params["keep_old"] == "true"
            rotated = {**OLD, "id": "new", "key": "clk_new", "replaces": OLD["id"]}
            return httpx.Response(201, json={**rotated, "replaced_revoked": not keep})
        return httpx.Response(204)


def _client(api: FakeAdminApi) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.MockTransport(api), base_url="http://gateway")


async def test_create_sends_role_team_and_only_the_scopes_asked_for() -> None:
    api = FakeAdminApi()
    async with _client(api) as client:
        await keys.create_key(client, "ann", [], role="agent", team="hotline-team")
        await keys.create_key(client, "crm", ["feedback:write"])
    assert api.requests[0][2] == {"name": "ann", "role": "agent", "team": "hotline-team"}
    assert api.requests[1][2] == {"name": "crm", "scopes": ["feedback:write"]}


async def test_rotation_uses_the_gateways_endpoint_and_keeps_the_role() -> None:
    api = FakeAdminApi()
    async with _client(api) as client:
        rotation = await keys.rotate_key(client, OLD_ID, keep_old=True)
    assert rotation.new["key"] == "clk_new"
    assert rotation.old_revoked is False
    method, url, _ = api.requests[-1]
    assert (method, url) == ("POST", f"http://gateway{keys.PATH}/{OLD['id']}/rotate?keep_old=true")

    api = FakeAdminApi()
    async with _client(api) as client:
        renamed = await keys.rotate_key(client, OLD_ID, name="ann-2")
    # A new name is a create with the old role, team and scopes, then a revoke.
    created = next(body for method, _, body in api.requests if method == "POST")
    assert created == {
        "name": "ann-2",
        "role": "agent",
        "team": "hotline-team",
        "scopes": ["alerts:read", "alerts:write"],
    }
    assert api.requests[-1][0] == "DELETE"
    assert renamed.old_revoked is True


def test_create_needs_a_role_or_scopes() -> None:
    result = CliRunner().invoke(cli, ["--api-key", "clk_x", "keys", "create", "ann"])
    assert result.exit_code != 0
    assert "--role" in result.output


@pytest.mark.parametrize("role", ["root", ""])
def test_create_refuses_unknown_roles(role: str) -> None:
    result = CliRunner().invoke(
        cli, ["--api-key", "clk_x", "keys", "create", "ann", "--role", role]
    )
    assert result.exit_code == 2
