"""Database connection pool usage, read from each engine's pool at scrape time.

``create_engine`` registers every engine it makes under its application name (one of
a fixed set: the service names), so the label set stays bounded. A custom collector
rather than gauges updated on checkout: the numbers are exact at scrape time and
cost nothing on the request path.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client import REGISTRY
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import QueuePool


class PoolCollector(Collector):
    """``closeloop_db_pool_*`` for every live engine registered with :func:`instrument_engine`."""

    def __init__(self) -> None:
        self._engines: weakref.WeakKeyDictionary[AsyncEngine, str] = weakref.WeakKeyDictionary()
        self._checkouts: dict[str, int] = {}

    def add(self, engine: AsyncEngine, name: str) -> None:
        self._engines[engine] = name
        self._checkouts.setdefault(name, 0)

        def on_checkout(*_args: object) -> None:
            self._checkouts[name] = self._checkouts.get(name, 0) + 1

        event.listen(engine.sync_engine.pool, "checkout", on_checkout)

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        size = GaugeMetricFamily(
            "closeloop_db_pool_size_connections",
            "Connections the pool keeps open (pool_size), per pool.",
            labels=["pool"],
        )
        max_connections = GaugeMetricFamily(
            "closeloop_db_pool_max_connections",
            "Most connections the pool may hold at once (pool_size + max_overflow), per pool.",
            labels=["pool"],
        )
        connections = GaugeMetricFamily(
            "closeloop_db_pool_connections",
            "Connections by state: in_use (checked out) or idle (in the pool), per pool.",
            labels=["pool", "state"],
        )
        checkouts = CounterMetricFamily(
            "closeloop_db_pool_checkouts_total",
            "Connections handed out by the pool, per pool.",
            labels=["pool"],
        )
        usage: dict[str, list[int]] = {}
        for engine, name in list(self._engines.items()):
            pool = engine.sync_engine.pool
            if not isinstance(pool, QueuePool):
                continue
            totals = usage.setdefault(name, [0, 0, 0, 0])
            totals[0] += pool.size()
            totals[1] += pool.size() + max(int(getattr(pool, "_max_overflow", 0)), 0)
            totals[2] += pool.checkedout()
            totals[3] += pool.checkedin()
        for name, (pool_size, most, in_use, idle) in sorted(usage.items()):
            size.add_metric([name], pool_size)
            max_connections.add_metric([name], most)
            connections.add_metric([name, "in_use"], in_use)
            connections.add_metric([name, "idle"], idle)
        for name, count in sorted(self._checkouts.items()):
            checkouts.add_metric([name], count)
        yield size
        yield max_connections
        yield connections
        yield checkouts


POOL_COLLECTOR = PoolCollector()
REGISTRY.register(POOL_COLLECTOR)


def instrument_engine(engine: AsyncEngine, name: str) -> None:
    """Export ``engine``'s pool usage under ``pool=name`` (a service name: bounded)."""
    POOL_COLLECTOR.add(engine, name)
