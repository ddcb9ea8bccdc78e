"""Read-only access to the stored feedback and alerts (schema ``alerts``): export and re-score.

The CLI opens its own read-only transaction; it never writes to the database. Re-scoring
calls the sentiment service's ``POST /v1/score`` (which publishes nothing) and reports how
labels would change; writing the new scores back is not done yet (see docs/operations.md).
"""

from __future__ import annotations

import asyncio
import csv
import re
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any

import asyncpg
import httpx
import orjson

from closeloop_cli.output import OperatorError
from closeloop_cli.pii import customer_opener

FEEDBACK_COLUMNS = (
    "id", "channel", "external_id", "touchpoint", "journey_stage", "language", "rating_type",
    "rating_value", "occurred_at", "received_at", "subject", "text",
    "sentiment_label", "sentiment_score", "sentiment_confidence", "sentiment_language",
    "model", "model_version",
)  # fmt: skip
CUSTOMER_COLUMN = "customer"
ALERT_COLUMNS = (
    "id", "feedback_id", "status", "priority", "owner", "rule_id", "channel", "created_at",
    "acknowledged_at", "acknowledged_by", "resolved_at", "resolved_by", "resolution_note",
)  # fmt: skip

_LATEST_SCORE = """
LEFT JOIN LATERAL (
    SELECT s.label AS sentiment_label, s.score AS sentiment_score,
           s.confidence AS sentiment_confidence, s.language AS sentiment_language,
           s.model, s.model_version
    FROM alerts.sentiment_score s WHERE s.feedback_id = f.id
    ORDER BY s.scored_at DESC, s.id DESC LIMIT 1
) s ON true
"""
FEEDBACK_QUERY = f"""
SELECT f.id, f.channel, f.external_id, f.touchpoint, f.journey_stage, f.language,
       f.rating_type, f.rating_value, f.occurred_at, f.received_at, f.subject, f.text,
       s.sentiment_label, s.sentiment_score, s.sentiment_confidence, s.sentiment_language,
       s.model, s.model_version, f.customer
FROM alerts.feedback f {_LATEST_SCORE}
WHERE f.received_at >= $1 AND f.received_at < $2
ORDER BY f.received_at, f.id
"""
FEEDBACK_COUNT = (
    "SELECT count(*) FROM alerts.feedback f WHERE f.received_at >= $1 AND f.received_at < $2"
)
ALERT_QUERY = """
SELECT a.id, a.feedback_id, a.status, a.priority, a.owner_id AS owner, a.rule_id, f.channel,
       a.created_at, a.acknowledged_at, a.acknowledged_by, a.resolved_at, a.resolved_by,
       a.resolution_note
FROM alerts.alert a JOIN alerts.feedback f ON f.id = a.feedback_id
WHERE a.created_at >= $1 AND a.created_at < $2
ORDER BY a.created_at, a.id
"""
ALERT_COUNT = "SELECT count(*) FROM alerts.alert a WHERE a.created_at >= $1 AND a.created_at < $2"

_RELATIVE = re.compile(r"(\d+)([mhdw])")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_time(value: str, now: datetime | None = None) -> datetime:
    """ISO 8601 (naive means UTC), ``now``, or an age like ``90m``, ``24h``, ``7d``, ``2w``."""
    now = now or datetime.now(UTC)
    text = value.strip()
    if text == "now":
        return now
    relative = _RELATIVE.fullmatch(text)
    if relative:
        return now - timedelta(**{_UNITS[relative.group(2)]: int(relative.group(1))})
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as error:
        raise OperatorError(
            f"{value!r} is not a time: use ISO 8601, 'now' or an age like 24h"
        ) from error
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def asyncpg_dsn(url: str) -> str:
    """asyncpg wants ``postgresql://``; the services' setting is SQLAlchemy's URL."""
    return re.sub(r"^postgresql\+\w+://", "postgresql://", url)


async def connect(url: str) -> asyncpg.Connection:
    try:
        async with asyncio.timeout(15):
            connection: asyncpg.Connection = await asyncpg.connect(asyncpg_dsn(url))
    except (OSError, TimeoutError, asyncpg.PostgresError) as error:
        raise OperatorError(
            f"cannot connect to the database ({type(error).__name__}: {error}); "
            "set CLOSELOOP_DATABASE_URL or --database-url"
        ) from error
    return connection


async def _rows(
    connection: asyncpg.Connection, query: str, since: datetime, until: datetime
) -> AsyncIterator[dict[str, Any]]:
    async with connection.transaction(readonly=True, isolation="repeatable_read"):
        async for record in connection.cursor(query, since, until, prefetch=500):
            yield dict(record)


def _plain(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    if isinstance(value, dict | list):
        return value
    return str(value)


@dataclass
class ExportReport:
    rows: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)


async def export(
    url: str,
    kind: str,
    since: datetime,
    until: datetime,
    out: IO[str],
    fmt: str,
    include_customer: bool = False,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> ExportReport:
    """Write ``feedback`` or ``alerts`` received/raised in [since, until) as CSV or JSON Lines."""
    query, count, columns = (
        (FEEDBACK_QUERY, FEEDBACK_COUNT, list(FEEDBACK_COLUMNS))
        if kind == "feedback"
        else (ALERT_QUERY, ALERT_COUNT, list(ALERT_COLUMNS))
    )
    if kind == "feedback" and include_customer:
        columns.append(CUSTOMER_COLUMN)
        open_customer = customer_opener()  # before connecting: missing keys fail fast
    report = ExportReport()
    connection = await connect(url)
    try:
        if on_total is not None:
            on_total(int(await connection.fetchval(count, since, until)))
        writer = (
            csv.DictWriter(out, fieldnames=columns, extrasaction="ignore") if fmt == "csv" else None
        )
        if writer is not None:
            writer.writeheader()
        async for row in _rows(connection, query, since, until):
            plain = {name: _plain(row.get(name)) for name in columns}
            customer = plain.get(CUSTOMER_COLUMN)
            if isinstance(customer, str):
                plain[CUSTOMER_COLUMN] = open_customer(row["id"], orjson.loads(customer))
            if writer is not None:
                writer.writerow(
                    {
                        k: orjson.dumps(v).decode() if isinstance(v, dict | list) else v
                        for k, v in plain.items()
                    }
                )
            else:
                out.write(orjson.dumps(plain).decode() + "\n")
            report.rows += 1
            report.by_channel[str(row.get("channel"))] += 1
            if on_progress is not None:
                on_progress(1)
    finally:
        await connection.close()
    return report


# -- re-score -------------------------------------------------------------------------------


@dataclass
class RescoreReport:
    model: str = ""
    model_version: str = ""
    scored: Counter[str] = field(default_factory=Counter)
    flips: Counter[tuple[str, str, str]] = field(default_factory=Counter)
    failures: int = 0

    @property
    def flipped(self) -> int:
        return sum(self.flips.values())


def score_request(row: dict[str, Any]) -> dict[str, Any]:
    """The body for ``POST /v1/score``: subject and text together, the rating, the language."""
    text = "\n".join(part for part in (row.get("subject"), row.get("text")) if part)
    body: dict[str, Any] = {"text": text or " "}
    if row.get("rating_type") and row.get("rating_value") is not None:
        value = float(row["rating_value"])
        body["rating"] = {
            "type": row["rating_type"],
            "value": int(value) if value.is_integer() else value,
        }
    if row.get("language"):
        body["language"] = row["language"]
    return body


async def rescore(
    url: str,
    sentiment_url: str,
    since: datetime,
    until: datetime,
    model_version: str | None = None,
    flips_out: IO[str] | None = None,
    concurrency: int = 8,
    on_total: Callable[[int], None] | None = None,
    on_progress: Callable[[int], None] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RescoreReport:
    """Score the stored feedback of [since, until) again and count the label changes by channel."""
    report = RescoreReport()
    connection = await connect(url)
    semaphore = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(base_url=sentiment_url, timeout=30, transport=transport) as client:

        async def score(row: dict[str, Any]) -> None:
            async with semaphore:
                try:
                    response = await client.post("/v1/score", json=score_request(row))
                except httpx.HTTPError as error:
                    raise OperatorError(
                        f"cannot reach the sentiment service at {sentiment_url} ({type(error).__name__})"
                    ) from error
            if response.status_code != 200:
                report.failures += 1
                return
            result = response.json()
            if model_version is not None and result.get("model_version") != model_version:
                raise OperatorError(
                    f"{sentiment_url} runs {result.get('model')} {result.get('model_version')}, not "
                    f"{model_version}: point --sentiment-url at a deployment of that version"
                )
            report.model, report.model_version = (
                result.get("model", ""),
                result.get("model_version", ""),
            )
            channel = str(row["channel"])
            report.scored[channel] += 1
            old, new = row.get("sentiment_label") or "unscored", result["label"]
            if old != new:
                report.flips[(channel, old, new)] += 1
                if flips_out is not None:
                    flips_out.write(
                        orjson.dumps(
                            {
                                "feedback_id": str(row["id"]), "channel": channel,
                                "old_label": old, "new_label": new,
                                "old_score": row.get("sentiment_score"), "new_score": result["score"],
                                "old_model_version": row.get("model_version"),
                                "new_model_version": result.get("model_version"),
                            }
                        ).decode() + "\n"
                    )  # fmt: skip
            if on_progress is not None:
                on_progress(1)

        try:
            if on_total is not None:
                on_total(int(await connection.fetchval(FEEDBACK_COUNT, since, until)))
            batch: list[dict[str, Any]] = []
            async for row in _rows(connection, FEEDBACK_QUERY, since, until):
                batch.append(row)
                if len(batch) >= 200:
                    await asyncio.gather(*(score(r) for r in batch))
                    batch = []
            await asyncio.gather(*(score(r) for r in batch))
        finally:
            await connection.close()
    return report


def open_output(path: Path | None) -> IO[str]:
    import sys

    if path is None or str(path) == "-":
        return sys.stdout
    return path.open("w", encoding="utf-8", newline="")
