"""promtool checks the Prometheus configuration, the rules, and runs every rule's unit test."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import yaml

from closeloop_alerts.metrics import KPI_GAUGES
from tests.deploy.tools import REPO, require_tool

PROMETHEUS = REPO / "deploy" / "prometheus"
RULE_FILES = sorted((PROMETHEUS / "rules").glob("*.yml"))
TEST_FILES = sorted((PROMETHEUS / "tests").glob("*.test.yml"))

METRIC_NAME = re.compile(r"\bcloseloop_[a-z0-9_]+")
# A metric's registration: Counter("closeloop_...", ...), GaugeMetricFamily("closeloop_...", ...).
DEFINITION = re.compile(
    r'(?:Counter|Gauge|Histogram|Summary|Info|Enum|MetricFamily)\(\s*"(closeloop_[a-z0-9_]+)"'
)


def _promtool(*args: str, cwd: Path = PROMETHEUS) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [require_tool("promtool"), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=cwd,
        timeout=60,
    )


def test_prometheus_config_is_valid() -> None:
    result = _promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_rules_are_valid() -> None:
    result = _promtool("check", "rules", *(str(p) for p in RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def test_rule_unit_tests_pass() -> None:
    result = _promtool("test", "rules", *(str(p) for p in TEST_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


def _alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((PROMETHEUS / "rules" / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_every_alert_rule_has_a_test_that_fires_it() -> None:
    fired: set[str] = set()
    for path in TEST_FILES:
        for case in yaml.safe_load(path.read_text())["tests"]:
            for check in case.get("alert_rule_test", []):
                if check.get("exp_alerts"):
                    fired.add(check["alertname"])
    names = {rule["alert"] for rule in _alert_rules()}
    assert names - fired == set(), "alert rules without a firing unit test"


def test_every_alert_has_severity_summary_and_a_runbook_section() -> None:
    operations = (REPO / "docs" / "operations.md").read_text()
    anchors = {_anchor(line) for line in operations.splitlines() if line.startswith("#")}
    for rule in _alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        runbook = rule["annotations"]["runbook"]
        assert runbook.startswith("docs/operations.md#"), rule["alert"]
        assert runbook.split("#", 1)[1] in anchors, f"{rule['alert']}: no section {runbook}"


def _anchor(heading: str) -> str:
    text = heading.lstrip("#").strip().lower()
    return re.sub(r"[^a-z0-9 -]", "", text).replace(" ", "-")


def _defined_metrics() -> set[str]:
    """Metric names the code registers (histograms expose _bucket, _sum and _count too)."""
    names: set[str] = set()
    sources = [*REPO.glob("shared/src/**/*.py"), *REPO.glob("services/*/src/**/*.py")]
    for path in sources:
        for name in DEFINITION.findall(path.read_text(encoding="utf-8")):
            names.update({name, f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    # The alerts service builds its KPI gauges in a loop; read their names from the objects.
    names.update(gauge._name for gauge in KPI_GAUGES.values())
    return names


def test_rules_and_dashboards_read_only_metrics_that_exist() -> None:
    defined = _defined_metrics()
    files = [*RULE_FILES, *(REPO / "deploy" / "grafana" / "dashboards").glob("*.json")]
    for path in files:
        used = set(METRIC_NAME.findall(path.read_text()))
        unknown = used - defined
        assert not unknown, f"{path.relative_to(REPO)} reads metrics nobody exports: {unknown}"


def test_metric_names_follow_the_conventions() -> None:
    for name in _defined_metrics():
        assert re.fullmatch(r"closeloop_[a-z]+_[a-z0-9_]+", name), name
        for unit in ("_ms", "_milliseconds", "_minutes", "_bytes_total_total"):
            assert not name.endswith(unit), f"{name}: use base units (seconds, bytes)"
