"""Grafana is provisioned from deploy/grafana: one Prometheus datasource, dashboards that use it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deploy.tools import REPO

GRAFANA = REPO / "deploy" / "grafana"
DASHBOARDS = sorted((GRAFANA / "dashboards").glob("*.json"))


def _datasource() -> dict[str, Any]:
    document = yaml.safe_load((GRAFANA / "provisioning/datasources/prometheus.yml").read_text())
    (source,) = document["datasources"]
    assert isinstance(source, dict)
    return source


def _panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for p in dashboard["panels"] if p["type"] != "row"]


def test_the_datasource_is_the_compose_prometheus() -> None:
    source = _datasource()
    assert source["type"] == "prometheus"
    assert source["url"] == "http://prometheus:9090"
    assert source["uid"]


def test_the_dashboard_provider_reads_the_mounted_folder() -> None:
    document = yaml.safe_load((GRAFANA / "provisioning/dashboards/closeloop.yml").read_text())
    (provider,) = document["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards"


def test_there_are_the_pipeline_and_customer_dashboards() -> None:
    uids = {json.loads(p.read_text())["uid"] for p in DASHBOARDS}
    assert uids == {"closeloop-pipeline-health", "closeloop-customer-experience"}


@pytest.mark.parametrize("path", DASHBOARDS, ids=lambda p: Path(p).stem)
def test_every_panel_queries_the_provisioned_datasource(path: Path) -> None:
    dashboard = json.loads(path.read_text())
    uid = _datasource()["uid"]
    panels = _panels(dashboard)
    assert panels
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])
    assert len({p["title"] for p in panels}) == len(panels)
    for panel in panels:
        assert panel["datasource"]["uid"] == uid, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == uid, panel["title"]
            assert "closeloop" in target["expr"] or target["expr"].startswith("up"), panel["title"]
        grid = panel["gridPos"]
        assert grid["x"] >= 0, panel["title"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]


def test_the_customer_dashboard_breaks_down_by_channel_touchpoint_and_journey_stage() -> None:
    text = (GRAFANA / "dashboards/customer-experience.json").read_text()
    for label in ("by (channel", "by (touchpoint)", "by (journey_stage)", "by (label)"):
        assert label in text, label
