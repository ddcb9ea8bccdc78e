"""API keys through the gateway's admin API (``/v1/admin/api-keys``).

Rotation is the gateway's (``POST /v1/admin/api-keys/{id}/rotate``): a new key with the
same name, role, team and scopes, and the old one revoked in the same transaction
(``--keep-old`` leaves both valid while clients move). A rotation with a new name is a
create with the old key's role, team and scopes followed by a revoke.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from closeloop_cli.output import OperatorError

PATH = "/v1/admin/api-keys"
BOOTSTRAP_NAME = "bootstrap-admin"


@dataclass(frozen=True)
class Rotation:
    old: dict[str, Any]
    new: dict[str, Any]
    old_revoked: bool


def _check(response: httpx.Response, action: str) -> None:
    if response.is_success:
        return
    try:
        error = response.json()["error"]
        detail = f"{error.get('code')}: {error.get('detail')}"
    except (ValueError, KeyError, TypeError):
        detail = response.text[:200]
    hint = ""
    if response.status_code in {401, 403}:
        hint = " (set CLOSELOOP_API_KEY to an admin key)"
    raise OperatorError(f"{action} failed with {response.status_code} {detail}{hint}")


async def list_keys(
    client: httpx.AsyncClient, include_revoked: bool = True
) -> list[dict[str, Any]]:
    response = await client.get(PATH)
    _check(response, "listing keys")
    items: list[dict[str, Any]] = response.json()["items"]
    return [k for k in items if include_revoked or k.get("revoked_at") is None]


async def create_key(
    client: httpx.AsyncClient,
    name: str,
    scopes: list[str],
    *,
    role: str | None = None,
    team: str | None = None,
) -> dict[str, Any]:
    body: dict[str, Any] = {"name": name}
    if scopes:
        body["scopes"] = scopes
    if role is not None:
        body["role"] = role
    if team is not None:
        body["team"] = team
    response = await client.post(PATH, json=body)
    _check(response, f"creating key {name!r}")
    created: dict[str, Any] = response.json()
    return created


async def revoke_key(client: httpx.AsyncClient, key_id: str) -> None:
    response = await client.delete(f"{PATH}/{key_id}")
    _check(response, f"revoking key {key_id}")


async def rotate_key(
    client: httpx.AsyncClient, key_id: str, keep_old: bool = False, name: str | None = None
) -> Rotation:
    keys = {k["id"]: k for k in await list_keys(client)}
    old = keys.get(key_id)
    if old is None:
        raise OperatorError(f"no key with id {key_id} (see `closeloop keys list`)")
    if old["name"] == BOOTSTRAP_NAME:
        raise OperatorError(
            "the bootstrap admin key is rotated by setting a new CLOSELOOP_BOOTSTRAP_ADMIN_KEY "
            "and restarting the gateway (the previous one is then revoked)"
        )
    if old.get("revoked_at") is not None:
        raise OperatorError(f"key {key_id} is already revoked; create a new one instead")
    if name is None or name == old["name"]:
        response = await client.post(
            f"{PATH}/{key_id}/rotate", params={"keep_old": "true" if keep_old else "false"}
        )
        _check(response, f"rotating key {key_id}")
        rotated: dict[str, Any] = response.json()
        return Rotation(old=old, new=rotated, old_revoked=rotated["replaced_revoked"])
    new = await create_key(
        client, name, list(old["scopes"]), role=old.get("role"), team=old.get("team")
    )
    if not keep_old:
        await revoke_key(client, key_id)
    return Rotation(old=old, new=new, old_revoked=not keep_old)
