"""Debian's Prometheus scrapes the running stack: targets come up, the key series exist and move.

The stack is the one ``make run`` starts (``closeloop_devstack.stack``) on free ports;
Prometheus runs with the repository's recording and alert rules loaded, so the rules
are also evaluated against real series, not only promtool's synthetic ones.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml

from closeloop_devstack import infra
from closeloop_devstack.demo import DemoTarget, all_requests
from closeloop_devstack.stack import SERVICES, Stack
from tests.deploy.tools import REPO, require_tool

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

RULES = REPO / "deploy" / "prometheus" / "rules"
DASHBOARDS = REPO / "deploy" / "grafana" / "dashboards"


@pytest.fixture(scope="module")
def prometheus(ops_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = require_tool("prometheus")
    workdir = tmp_path_factory.mktemp("prometheus")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(path) for path in sorted(RULES.glob("*.yml"))],
        "scrape_configs": [
            {
                "job_name": f"closeloop-{service}",
                "static_configs": [
                    {"targets": [f"127.0.0.1:{ops_stack.config.ports.of(service)}"]}
                ],
            }
            for service in SERVICES
        ],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = infra.free_port()
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={workdir / 'prometheus.yml'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--storage.tsdb.path={workdir / 'data'}",
            "--storage.tsdb.retention.time=1h",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    log.close()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 20
        while True:
            if process.poll() is not None:
                pytest.fail("prometheus exited:\n" + (workdir / "prometheus.log").read_text())
            try:
                if httpx.get(url + "/-/ready", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(
                    "prometheus not ready after 20s:\n" + (workdir / "prometheus.log").read_text()
                )
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def _query(client: httpx.AsyncClient, promql: str) -> list[dict[str, Any]]:
    response = await client.get("/api/v1/query", params={"query": promql})
    response.raise_for_status()
    body = response.json()
    assert body["status"] == "success", body
    result: list[dict[str, Any]] = body["data"]["result"]
    return result


async def _scalar(client: httpx.AsyncClient, promql: str) -> float:
    """The value of a query that sums to one sample; 0 when there is no series yet."""
    result = await _query(client, promql)
    return float(result[0]["value"][1]) if result else 0.0


async def _until(check: Any, what: str, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not true after {timeout_s:.0f}s")
        await asyncio.sleep(0.5)


async def test_prometheus_scrapes_every_service_and_the_key_series_move(
    ops_stack: Stack, prometheus: str
) -> None:
    stack = ops_stack
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as client:

        async def all_up() -> bool:
            up = await _query(client, 'up{job=~"closeloop-.+"} == 1')
            return {sample["metric"]["job"] for sample in up} == {
                f"closeloop-{service}" for service in SERVICES
            }

        await _until(all_up, "up == 1 for all four services", timeout_s=30)
        targets = (await client.get("/api/v1/targets")).json()["data"]["activeTargets"]
        assert {t["health"] for t in targets} == {"up"}, targets

        build = await _query(client, "closeloop_build_info")
        assert {s["metric"]["job"] for s in build} == {f"closeloop-{n}" for n in SERVICES}, build
        assert all(s["metric"]["version"] for s in build), build

        counters = {
            "http": 'sum(closeloop_http_requests_total{job="closeloop-gateway"})',
            "received": 'sum(closeloop_ingest_feedback_received_total{job="closeloop-ingest"})',
            "produced": 'sum(closeloop_kafka_messages_produced_total{outcome="ok"})',
            "sentiment": 'sum(closeloop_kafka_messages_consumed_total{group="closeloop-sentiment", outcome="ok"})',
            "alerts": 'sum(closeloop_kafka_messages_consumed_total{group="closeloop-alerts", outcome="ok"})',
            "raised": "sum(closeloop_alerts_raised_total)",
            "scored": "sum(closeloop_sentiment_items_scored_total)",
            "age": "sum(closeloop_kafka_message_age_seconds_count)",
        }
        before = {name: await _scalar(client, q) for name, q in counters.items()}

        target = DemoTarget(
            gateway_url=stack.url("gateway"),
            demo_owner_url=stack.url("demo_owner"),
            alerts_url=stack.url("alerts"),
            admin_key=stack.config.admin_key,
            secrets=stack.config.provider_secrets,
        )
        requests = all_requests(target)
        async with httpx.AsyncClient(base_url=target.gateway_url, timeout=15) as gateway:
            for request in requests:
                response = await gateway.request(
                    request.method, request.path, content=request.content, headers=request.headers
                )
                assert response.status_code in {200, 202}, (request.label, response.text)
        negatives = sum(1 for r in requests if r.expect_negative)

        async def moved() -> bool:
            now = {name: await _scalar(client, q) for name, q in counters.items()}
            return (
                now["http"] >= before["http"] + len(requests)
                and now["raised"] >= before["raised"] + negatives
                and all(now[name] > before[name] for name in counters)
            )

        await _until(moved, "every key counter increased after the traffic", timeout_s=45)

        # Series that exist once the pipeline ran: lag per partition, pool usage, signal.
        lag = await _query(client, "closeloop_kafka_consumer_lag_messages")
        assert {s["metric"]["group"] for s in lag} == {
            "closeloop-sentiment",
            "closeloop-alerts",
            "closeloop-alerts-rescores",  # re-scores have a consumer group of their own
        }
        assert all("partition" in s["metric"] for s in lag)
        pools = await _query(client, 'closeloop_db_pool_connections{state="in_use"}')
        assert {s["metric"]["pool"] for s in pools} >= {"closeloop-gateway"}, pools

        async def every_channel() -> bool:
            by_channel = await _query(
                client, "sum by (channel) (closeloop_ingest_feedback_by_touchpoint_total)"
            )
            return {s["metric"]["channel"] for s in by_channel} == {
                "hotline",
                "email",
                "social",
                "app",
            }

        await _until(every_channel, "feedback by touchpoint for all four channels", 15)
        assert await _query(client, "closeloop_http_request_duration_seconds_bucket")

        async def delivered() -> bool:
            query = 'sum(closeloop_alerts_notifications_total{outcome="delivered"})'
            return await _scalar(client, query) >= negatives

        await _until(delivered, "a delivered notification for every negative item", 30)

        # The recording rules evaluate against the real series.
        async def recorded() -> bool:
            return bool(await _query(client, "closeloop:kafka_messages_consumed:rate5m > 0"))

        await _until(recorded, "recording rule closeloop:kafka_messages_consumed:rate5m", 20)
        rules = (await client.get("/api/v1/rules")).json()["data"]["groups"]
        assert all(rule["health"] == "ok" for group in rules for rule in group["rules"]), rules


async def test_every_dashboard_query_is_valid_promql(prometheus: str) -> None:
    """Grafana's variables substituted, each panel query parses and runs on the real server."""
    async with httpx.AsyncClient(base_url=prometheus, timeout=5) as client:
        for path in sorted(DASHBOARDS.glob("*.json")):
            dashboard = json.loads(path.read_text())
            for panel in dashboard["panels"]:
                for target in panel.get("targets", []):
                    expr = target["expr"].replace("$__range", "5m").replace("$channel", ".*")
                    response = await client.get("/api/v1/query", params={"query": expr})
                    assert response.status_code == 200, (path.name, panel["title"], response.text)
                    assert response.json()["status"] == "success", (path.name, panel["title"])
