"""The benchmark's scenarios; each returns plain figures for the report."""

from __future__ import annotations

import asyncio
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import orjson
from prometheus_client.parser import text_string_to_metric_families

from closeloop_bench import load, payloads, procstat
from closeloop_devstack import infra
from closeloop_devstack.stack import Stack
from closeloop_shared.contracts.feedback import FeedbackIn, identify
from closeloop_shared.events import FeedbackReceivedEvent, Topic, encode
from closeloop_shared.kafka.producer import EventProducer, OutgoingMessage


@dataclass
class Durations:
    """How long each measured run lasts; ``quick`` is for smoke tests of the harness."""

    warmup_s: int = 3
    saturation_s: int = 10
    fixed_rate_s: int = 10
    steady_s: int = 20
    step_s: int = 12
    repeats: int = 3
    scale_base_items: int = 2_000

    @classmethod
    def quick(cls) -> Durations:
        return cls(
            warmup_s=1,
            saturation_s=2,
            fixed_rate_s=2,
            steady_s=3,
            step_s=3,
            repeats=1,
            scale_base_items=200,
        )


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


# --- 1. single items through the gateway vs a bare ASGI app -------------------------------------


def start_bare_asgi(port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                "closeloop_bench.bare_asgi:app",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--loop",
                "uvloop",
                "--http",
                "httptools",
                "--no-access-log",
                "--log-level",
                "warning",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    infra.wait_for_port("127.0.0.1", port)
    return process


def single_item(stack: Stack, work: Path, durations: Durations) -> dict[str, Any]:
    script = load.wrk_script(
        work / "single.lua",
        route="/v1/feedback",
        auth=stack.config.admin_key,
        body_lua=payloads.one_item_lua_body(),
    )
    bare_port = infra.free_port()
    bare = start_bare_asgi(bare_port, work / "bare-asgi.log")
    try:
        gateway_url, bare_url = stack.url("gateway"), f"http://127.0.0.1:{bare_port}"
        load.run_wrk(gateway_url, script, connections=32, duration_s=durations.warmup_s)
        load.run_wrk(bare_url, script, connections=32, duration_s=durations.warmup_s)
        gateway_runs, bare_runs = [], []
        for _ in range(durations.repeats):  # interleaved, so drift hits both alike
            gateway_runs.append(
                load.run_wrk(gateway_url, script, connections=32, duration_s=durations.saturation_s)
            )
            bare_runs.append(
                load.run_wrk(bare_url, script, connections=32, duration_s=durations.saturation_s)
            )
    finally:
        bare.terminate()
        bare.wait()
    gateway_rps = median([r.requests_per_s for r in gateway_runs])
    bare_rps = median([r.requests_per_s for r in bare_runs])
    # Fixed moderate rate: half the ceiling's target share (25%), i.e. 12.5% of bare ASGI.
    body = work / "single.json"
    body.write_bytes(orjson.dumps(payloads.item(2, payloads.new_run())))
    moderate_rate = max(50.0, min(gateway_rps, 0.25 * bare_rps) / 2)
    fixed = [
        load.run_hey(
            stack.url("gateway") + "/v1/feedback",
            body,
            rate=moderate_rate,
            duration_s=durations.fixed_rate_s,
            auth=stack.config.admin_key,
        )
        for _ in range(durations.repeats)
    ]
    return {
        "gateway_saturation_rps": gateway_rps,
        "gateway_saturation_p50_ms": median([r.p50_ms for r in gateway_runs]),
        "gateway_saturation_p99_ms": median([r.p99_ms for r in gateway_runs]),
        "gateway_non_2xx": sum(r.non_2xx for r in gateway_runs),
        "bare_asgi_rps": bare_rps,
        "share_of_ceiling": gateway_rps / bare_rps if bare_rps else float("nan"),
        "fixed_rate_rps": moderate_rate,
        "fixed_rate_p50_ms": median([r.p50_ms for r in fixed]),
        "fixed_rate_p99_ms": median([r.p99_ms for r in fixed]),
        "fixed_rate_non_2xx": sum(r.non_2xx for r in fixed),
    }


# --- 2. batches through the gateway vs aiokafka producing the same bytes ------------------------


async def batch_items(
    stack: Stack, work: Path, durations: Durations, size: int = 500
) -> dict[str, Any]:
    script = load.wrk_script(
        work / "batch.lua",
        route="/v1/feedback/batch",
        auth=stack.config.admin_key,
        body_lua=payloads.batch_lua_body(size),
    )
    load.run_wrk(stack.url("gateway"), script, connections=8, duration_s=durations.warmup_s)
    runs = [
        load.run_wrk(stack.url("gateway"), script, connections=8, duration_s=durations.saturation_s)
        for _ in range(durations.repeats)
    ]
    ceiling = [
        await _produce_directly(stack, size, durations.saturation_s)
        for _ in range(durations.repeats)
    ]
    items_per_s = median([r.requests_per_s for r in runs]) * size
    return {
        "batch_size": size,
        "gateway_items_per_s": items_per_s,
        "gateway_p99_ms": median([r.p99_ms for r in runs]),
        "gateway_non_2xx": sum(r.non_2xx for r in runs),
        "aiokafka_direct_items_per_s": median(ceiling),
        "share_of_ceiling": items_per_s / median(ceiling),
    }


async def _produce_directly(stack: Stack, size: int, duration_s: float) -> float:
    """The same work ingest does for a batch, minus HTTP: build events, produce, await acks."""
    producer = EventProducer(stack.kafka_settings(), client_id="bench-direct", ack_timeout_s=30)
    await producer.start()
    run = payloads.new_run()
    sent = 0
    try:
        started = time.perf_counter()
        batch_number = 0
        while time.perf_counter() - started < duration_s:
            batch_number += 1
            now = infra_now()
            messages = []
            for i in range(size):
                raw = payloads.item(i + 1, f"{run}-{batch_number}")
                feedback = identify(FeedbackIn.model_validate(raw), now)
                event = FeedbackReceivedEvent(
                    id=str(feedback.id), source="/bench", time=now, data=feedback
                )
                messages.append(
                    OutgoingMessage(
                        Topic.FEEDBACK_RECEIVED, encode(event), key=str(feedback.id).encode()
                    )
                )
            await producer.send_many(messages)
            sent += size
        return sent / (time.perf_counter() - started)
    finally:
        await producer.stop()


def infra_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


# --- 3/4. end to end: steady rate latency, highest sustained rate --------------------------------


async def _owner_arrivals(client: httpx.AsyncClient, owner_url: str) -> dict[str, float]:
    body = (await client.get(owner_url + "/arrivals")).json()
    arrivals: dict[str, float] = body["arrivals"]
    return arrivals


async def paced_load(
    stack: Stack, owner_url: str, rate: float, duration_s: float, batch: int
) -> dict[str, Any]:
    """Post ``rate`` items/s for ``duration_s`` (in batches of ``batch``), then wait for the
    negative ones' webhooks; returns acceptance→webhook latencies and drain time."""
    run = payloads.new_run()
    accepted_at: dict[str, float] = {}
    negative_ids: set[str] = set()
    rejected = 0
    headers = {"Authorization": f"Bearer {stack.config.admin_key}"}
    interval = batch / rate
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=stack.url("gateway"), headers=headers, timeout=30, limits=limits
    ) as client:
        await client.post(owner_url + "/reset")

        async def send(first: int) -> None:
            nonlocal rejected
            items = [payloads.item(first + i, run) for i in range(batch)]
            if batch == 1:
                response = await client.post("/v1/feedback", json=items[0])
                ids = [response.json().get("id")] if response.status_code == 202 else []
            else:
                response = await client.post("/v1/feedback/batch", json={"items": items})
                ids = response.json().get("ids", []) if response.status_code == 202 else []
            if response.status_code != 202:
                rejected += len(items)
                return
            now = time.time()
            for offset, feedback_id in enumerate(ids):
                accepted_at[feedback_id] = now
                if (first + offset) % 5 == 0:
                    negative_ids.add(feedback_id)

        tasks = []
        started = time.monotonic()
        index = 0
        while time.monotonic() - started < duration_s:
            tasks.append(asyncio.create_task(send(index)))
            index += batch
            next_at = started + (index / batch) * interval
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks)
        sent_for = time.monotonic() - started
        load_ended = time.time()
        deadline = time.monotonic() + 60
        arrivals: dict[str, float] = {}
        while time.monotonic() < deadline:
            arrivals = await _owner_arrivals(client, owner_url)
            if negative_ids <= arrivals.keys():
                break
            await asyncio.sleep(0.25)
    latencies = [(arrivals[f] - accepted_at[f]) * 1000 for f in negative_ids if f in arrivals]
    last_arrival = max((arrivals[f] for f in negative_ids if f in arrivals), default=load_ended)
    return {
        "rate_items_per_s": rate,
        "offered_items": index,
        "achieved_items_per_s": len(accepted_at) / sent_for,
        "rejected_items": rejected,
        "negative_items": len(negative_ids),
        "webhooks_missing": len(negative_ids - arrivals.keys()),
        "latency_p50_ms": percentile(latencies, 0.50),
        "latency_p95_ms": percentile(latencies, 0.95),
        "latency_p99_ms": percentile(latencies, 0.99),
        "drain_after_load_s": max(0.0, last_arrival - load_ended),
    }


def sustained(result: dict[str, Any]) -> bool:
    """Bounded lag: everything delivered, drained within 5 s, p99 under 2 s, nothing refused."""
    return bool(
        result["webhooks_missing"] == 0
        and result["rejected_items"] == 0
        and result["drain_after_load_s"] < 5.0
        and result["latency_p99_ms"] < 2000
        and result["achieved_items_per_s"] >= 0.95 * result["rate_items_per_s"]
    )


# --- 5. memory, CPU, database writes -----------------------------------------------------------


def service_samples(stack: Stack) -> dict[str, procstat.ProcessSample]:
    samples = {}
    for name in ("gateway", "ingest", "sentiment", "alerts"):
        managed = stack.processes[name]
        assert managed.process is not None
        samples[name] = procstat.sample(managed.process.pid)
    return samples


async def stored_feedback_count(stack: Stack) -> int:
    connection = await asyncpg.connect(infra._asyncpg_dsn(stack.database_url))
    try:
        count: int = await connection.fetchval("SELECT count(*) FROM alerts.feedback")
        return count
    finally:
        await connection.close()


async def backlog(stack: Stack) -> tuple[int, int]:
    """(items published by ingest but not stored yet, deliveries not yet done)."""
    async with httpx.AsyncClient(timeout=10) as client:
        metrics = (await client.get(stack.url("ingest") + "/metrics")).text
    published = sum(
        sample.value
        for family in text_string_to_metric_families(metrics)
        for sample in family.samples
        if sample.name == "closeloop_kafka_messages_produced_total"
        and sample.labels.get("topic") == "closeloop.feedback.received.v1"
        and sample.labels.get("outcome") == "ok"
    )
    connection = await asyncpg.connect(infra._asyncpg_dsn(stack.database_url))
    try:
        stored: int = await connection.fetchval("SELECT count(*) FROM alerts.feedback")
        pending: int = await connection.fetchval(
            "SELECT count(*) FROM alerts.delivery WHERE status = 'pending'"
        )
    finally:
        await connection.close()
    return max(int(published) - stored, 0), pending


async def scaled_run(
    stack: Stack,
    items: int,
    batch: int = 500,
    concurrency: int = 4,
) -> dict[str, Any]:
    """Push ``items`` through the batch endpoint as fast as allowed; time until all are stored."""
    run = payloads.new_run()
    before = await stored_feedback_count(stack)
    headers = {"Authorization": f"Bearer {stack.config.admin_key}"}
    semaphore = asyncio.Semaphore(concurrency)
    started = time.monotonic()
    async with httpx.AsyncClient(
        base_url=stack.url("gateway"), headers=headers, timeout=60
    ) as client:

        async def send(first: int) -> None:
            body = {"items": [payloads.item(first + i, run) for i in range(batch)]}
            async with semaphore:
                response = await client.post("/v1/feedback/batch", json=body)
            response.raise_for_status()

        await asyncio.gather(*(send(i) for i in range(0, items, batch)))
    accepted_s = time.monotonic() - started
    # Bounded: well over the time a healthy pipeline needs (it stores > 500 items/s).
    limit_s = 60 + items / 100
    deadline = time.monotonic() + limit_s
    while await stored_feedback_count(stack) < before + items:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{items} items were not all stored within {limit_s:.0f} s")
        await asyncio.sleep(0.2)
    stored_s = time.monotonic() - started
    return {
        "items": items,
        "accepted_items_per_s": items / accepted_s,
        "stored_items_per_s": items / stored_s,
    }
