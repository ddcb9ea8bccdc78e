"""Routing files: validated, and dry-run against sample feedback, by the alerts service itself.

The CLI never imports a service package. ``check`` runs ``closeloop-alerts check-routing``
(installed with the alerts service). A dry run scores samples that carry no ``sentiment``
with the sentiment service's ``POST /v1/score`` first, then asks either the running alerts
service (``POST /v1/routing/dry-run``: the routing it has loaded) or, for a file that is
not deployed yet, ``closeloop-alerts check-routing FILE --samples SAMPLES``, which answers
one JSON object per sample and line: ``{"index", "owner", "priority", "rule_id"}``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import orjson

from closeloop_cli.output import OperatorError

ALERTS_CLI = "closeloop-alerts"
# Tests and unusual installs may point at another executable.
ALERTS_CLI_VARIABLE = "CLOSELOOP_ALERTS_CLI"


def alerts_cli() -> str:
    configured = os.environ.get(ALERTS_CLI_VARIABLE)
    if configured:
        return configured
    beside = Path(sys.executable).parent / ALERTS_CLI
    if beside.exists():
        return str(beside)
    found = shutil.which(ALERTS_CLI)
    if found is None:
        raise OperatorError(
            f"{ALERTS_CLI} not found: install the alerts service package (closeloop-alerts) "
            "or run this where it is installed (its container image has it)"
        )
    return found


@dataclass(frozen=True)
class CheckResult:
    ok: bool
    message: str


def check(path: Path) -> CheckResult:
    if not path.is_file():
        raise OperatorError(f"{path}: no such file")
    result = subprocess.run(
        [alerts_cli(), "check-routing", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    message = (result.stdout + result.stderr).strip()
    return CheckResult(ok=result.returncode == 0, message=message)


def load_samples(path: Path) -> list[dict[str, Any]]:
    samples: list[dict[str, Any]] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            sample = orjson.loads(line)
        except orjson.JSONDecodeError as error:
            raise OperatorError(f"{path}:{number}: not JSON ({error})") from error
        if not isinstance(sample, dict) or "feedback" not in sample:
            # A bare canonical item is accepted too.
            sample = {"feedback": sample}
        samples.append(sample)
    if not samples:
        raise OperatorError(f"{path}: no samples (one JSON object per line)")
    return samples


async def score_missing(
    samples: list[dict[str, Any]],
    sentiment_url: str | None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> None:
    """Fill in ``sentiment`` from the sentiment service for the samples without one."""
    missing = [s for s in samples if "sentiment" not in s]
    if not missing:
        return
    if sentiment_url is None:
        raise OperatorError(
            f"{len(missing)} samples have no sentiment: add one to each, or pass --sentiment-url"
        )
    async with httpx.AsyncClient(base_url=sentiment_url, timeout=30, transport=transport) as client:
        for sample in missing:
            feedback = sample["feedback"]
            text = "\n".join(p for p in (feedback.get("subject"), feedback.get("text")) if p)
            body: dict[str, Any] = {"text": text or " "}
            for key in ("rating", "language"):
                if feedback.get(key) is not None:
                    body[key] = feedback[key]
            try:
                response = await client.post("/v1/score", json=body)
            except httpx.HTTPError as error:
                raise OperatorError(
                    f"cannot reach the sentiment service at {sentiment_url} ({type(error).__name__})"
                ) from error
            if response.status_code != 200:
                raise OperatorError(
                    f"scoring a sample failed: {response.status_code} {response.text[:200]}"
                )
            sample["sentiment"] = response.json()


# What the alerts service's dry run accepts of a sentiment (it refuses unknown fields).
DRY_RUN_SENTIMENT_FIELDS = (
    "label", "score", "confidence", "language", "topics", "urgency", "urgency_cues", "emotions",
)  # fmt: skip


async def dry_run_service(
    alerts_url: str,
    samples: list[dict[str, Any]],
    transport: httpx.AsyncBaseTransport | None = None,
) -> list[dict[str, Any]]:
    """Ask the running alerts service (``POST /v1/routing/dry-run``) about each sample.

    The answer reflects the routing the service has loaded; nothing is stored.
    """
    decisions: list[dict[str, Any]] = []
    async with httpx.AsyncClient(base_url=alerts_url, timeout=30, transport=transport) as client:
        for index, sample in enumerate(samples):
            sentiment = {
                k: v for k, v in sample["sentiment"].items() if k in DRY_RUN_SENTIMENT_FIELDS
            }
            try:
                response = await client.post(
                    "/v1/routing/dry-run",
                    json={"feedback": sample["feedback"], "sentiment": sentiment},
                )
            except httpx.HTTPError as error:
                raise OperatorError(
                    f"cannot reach the alerts service at {alerts_url} ({type(error).__name__}); "
                    "set CLOSELOOP_ALERTS_URL or --alerts-url"
                ) from error
            if response.status_code == 404:
                raise OperatorError(
                    f"{alerts_url} has no routing dry run (POST /v1/routing/dry-run)"
                )
            if response.status_code != 200:
                raise OperatorError(
                    f"sample {index}: the alerts service answered {response.status_code} "
                    f"{response.text[:300]}"
                )
            answer: dict[str, Any] = response.json()
            answer["index"] = index
            decisions.append(answer)
    return decisions


def dry_run(path: Path, samples: list[dict[str, Any]]) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as handle:
        for sample in samples:
            handle.write(orjson.dumps(sample) + b"\n")
        samples_file = handle.name
    try:
        result = subprocess.run(
            [alerts_cli(), "check-routing", str(path), "--samples", samples_file],
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )
    finally:
        Path(samples_file).unlink(missing_ok=True)
    if result.returncode != 0:
        if "unrecognized arguments" in result.stderr:
            raise OperatorError(
                f"this {ALERTS_CLI} cannot dry-run yet: it needs "
                "`check-routing FILE --samples SAMPLES.jsonl` (see docs/operations.md)"
            )
        raise OperatorError((result.stdout + result.stderr).strip() or "routing dry-run failed")
    decisions = [orjson.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    if len(decisions) != len(samples):
        raise OperatorError(f"expected {len(samples)} decisions, got {len(decisions)}")
    return [dict(d) for d in decisions]
