"""Delivery guarantees, proven by counting, while the processes are killed with SIGKILL.

20,000 feedback items from every channel go in through the gateway (mostly
canonical batches, some single items, and every provider's signed webhook),
a fixed 30 % of them negative. Meanwhile ingest, sentiment and alerts are each
killed with ``kill -9`` at random moments, several times, and restarted. The
clients retry like providers do, and only a 2xx counts as accepted. After the
pipeline drained, PostgreSQL and the owners' endpoint are counted:

* every accepted item is stored exactly once, with exactly one score, the right label;
* every negative one has exactly one alert, and no other item has one;
* every alert reached its owner at least once, and all deliveries of one alert
  carry the same ``webhook-id`` (the one recorded for it).

The counts are printed and written to ``test-artifacts/reliability-crash.json``.
Loopback only: the broker, PostgreSQL, the services and the owner all run here.
"""

from __future__ import annotations

import asyncio
import os
import random
import time
from collections import Counter
from pathlib import Path

import pytest

from closeloop_devstack.stack import Stack
from tests.reliability.support import (
    OwnerReceiver,
    build_plan,
    count,
    running_stack,
    send_all,
    wait_drained,
)

pytestmark = [pytest.mark.integration, pytest.mark.e2e, pytest.mark.slow]

TOTAL_ITEMS = int(os.environ.get("CLOSELOOP_CRASH_ITEMS", "20000"))
KILLS_PER_SERVICE = 3
VICTIMS = ("ingest", "sentiment", "alerts")
LOAD_SECONDS = 50.0


async def _killer(stack: Stack, rng: random.Random, log: list[dict[str, object]]) -> None:
    """SIGKILL a random running victim every few seconds; it restarts in the background.

    A victim is only killed again once it is ready again, so every kill hits a
    process that was doing work (consuming, publishing, delivering).
    """
    remaining = Counter(dict.fromkeys(VICTIMS, KILLS_PER_SERVICE))
    restarting: set[str] = set()
    restarts: list[asyncio.Task[None]] = []

    async def restart(service: str, killed_at: float) -> None:
        await asyncio.sleep(rng.uniform(0.1, 1.5))
        stack.start_service(service)
        await stack.wait_ready(90, (service,))
        log.append({"service": service, "down_s": round(time.monotonic() - killed_at, 2)})
        restarting.discard(service)

    while +remaining:
        await asyncio.sleep(rng.uniform(1.5, 4.0))
        candidates = [s for s in VICTIMS if remaining[s] and s not in restarting]
        if not candidates:
            continue
        service = rng.choice(candidates)
        stack.processes[service].kill()
        remaining[service] -= 1
        restarting.add(service)
        restarts.append(asyncio.create_task(restart(service, time.monotonic())))
    await asyncio.gather(*restarts)


@pytest.mark.timeout(720)
async def test_kill_9_loses_and_duplicates_nothing(
    postgres_server_url: str, tmp_path: Path
) -> None:
    receiver = OwnerReceiver()
    receiver.start()
    try:
        async with running_stack(tmp_path / "stack", postgres_server_url, receiver) as stack:
            plan = build_plan(
                stack.url("gateway"),
                stack.config.admin_key,
                stack.config.provider_secrets,
                TOTAL_ITEMS,
                webhooks_per_provider=max(TOTAL_ITEMS // 400, 4),
                singles=max(TOTAL_ITEMS // 60, 8),
            )
            rng = random.Random(int(os.environ.get("CLOSELOOP_CRASH_SEED", "6")))
            kills: list[dict[str, object]] = []
            started = time.monotonic()
            killer = asyncio.create_task(_killer(stack, rng, kills))
            # Paced so the load spans the kills: ingest dies while requests are in flight.
            stats = await send_all(
                plan, concurrency=6, deadline_s=300, items_per_s=TOTAL_ITEMS / LOAD_SECONDS
            )
            load_s = time.monotonic() - started
            await killer  # every victim died KILLS_PER_SERVICE times, during load or drain
            stored = await wait_drained(plan, stack.database_url, receiver, timeout_s=300)
            drain_s = time.monotonic() - started - load_s
            counts = count(
                plan,
                stored,
                receiver.snapshot(),
                load_seconds=round(load_s, 1),
                drain_seconds=round(drain_s, 1),
                requests=stats.requests,
                attempts=stats.attempts,
                retried_requests=stats.retried_requests,
                client_gave_up=stats.gave_up,
                statuses=stats.statuses,
                kills=kills,
                kills_per_service=dict(Counter(str(k["service"]) for k in kills)),
                owner_refused=receiver.refused,
                deliveries_pending=stored.deliveries_pending,
            )
            counts.write("crash")
            assert stats.gave_up == 0, stats
            assert counts.accepted_items == counts.sent_items
            assert counts.sent_items >= TOTAL_ITEMS
            assert all(n == KILLS_PER_SERVICE for n in counts.extra["kills_per_service"].values())
            counts.assert_exact()
    finally:
        receiver.stop()
