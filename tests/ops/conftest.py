"""One running stack (``closeloop_devstack.stack``, free ports) shared by the operations tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from closeloop_devstack import infra
from closeloop_devstack.stack import Ports, Stack, StackConfig

OWNER_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


@pytest.fixture(scope="session")
async def ops_stack(
    postgres_server_url: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    state = tmp_path_factory.mktemp("ops-stack")
    state.chmod(0o755)
    ports = Ports.free()
    routing = state / "routing.yaml"
    routing.write_text(
        f"""owners:
  - id: cx-team
    notify:
      - type: webhook
        url: http://127.0.0.1:{ports.demo_owner}/owners/cx-team
        secret: {OWNER_SECRET}
rules: []
default_owner: cx-team
"""
    )
    running = Stack(
        StackConfig(
            state_dir=state,
            routing_file=routing,
            ports=ports,
            database_url=infra.with_database(postgres_server_url, f"closeloop_ops_{ports.gateway}"),
            # The owner endpoint is the local demo owner: allow its loopback address.
            extra_env={"CLOSELOOP_OUTBOUND_ALLOWLIST": "127.0.0.1"},
        )
    )
    try:
        await running.start(timeout_s=120)
        yield running
    finally:
        running.stop()
        await infra.drop_database(running.database_url)
