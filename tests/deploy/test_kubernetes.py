"""The Kustomize overlays build (kubectl's kustomize) and validate against the Kubernetes schemas."""

from __future__ import annotations

import subprocess
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.tools import REPO, require_tool

K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(p.name for p in (K8S / "overlays").iterdir() if p.is_dir())
KUBERNETES_VERSION = "1.30.0"  # the oldest version the manifests promise to work on
SERVICES = {"gateway": 8000, "ingest": 8001, "sentiment": 8002, "alerts": 8003}
CONSUMERS = {"sentiment", "alerts"}
# BatchConsumer.stop() waits this long for the in-flight batch to finish and commit.
CONSUMER_STOP_TIMEOUT_S = 30


def _build(overlay: str) -> list[dict[str, Any]]:
    result = subprocess.run(
        [require_tool("kubectl"), "kustomize", str(K8S / "overlays" / overlay)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def _by_kind(docs: list[dict[str, Any]], kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for d in docs if d["kind"] == kind}


def test_there_is_a_dev_and_a_production_overlay() -> None:
    assert {"dev", "production"} <= set(OVERLAYS)


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_overlay_builds_and_every_resource_matches_the_kubernetes_schema(overlay: str) -> None:
    docs = _build(overlay)
    assert docs
    for doc in docs:
        try:
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as error:
            pytest.fail(f"{doc['kind']}/{doc['metadata']['name']}: {error.message} at {error.path}")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_service_is_deployed_the_way_operations_needs(overlay: str) -> None:
    docs = _build(overlay)
    deployments = _by_kind(docs, "Deployment")
    pdbs = _by_kind(docs, "PodDisruptionBudget")
    hpas = _by_kind(docs, "HorizontalPodAutoscaler")
    services = _by_kind(docs, "Service")
    assert set(deployments) == {f"closeloop-{name}" for name in SERVICES}
    for name, port in SERVICES.items():
        deployment = deployments[f"closeloop-{name}"]
        pod = deployment["spec"]["template"]
        (container,) = pod["spec"]["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert {"cpu", "memory"} <= set(container["resources"]["requests"])
        assert {"cpu", "memory"} <= set(container["resources"]["limits"])
        assert container["ports"][0]["containerPort"] == port
        grace = pod["spec"]["terminationGracePeriodSeconds"]
        if name in CONSUMERS:
            pre_stop = container["lifecycle"]["preStop"]["sleep"]["seconds"]
            assert grace > CONSUMER_STOP_TIMEOUT_S + pre_stop, name
        annotations = pod["metadata"]["annotations"]
        assert annotations["prometheus.io/scrape"] == "true"
        assert annotations["prometheus.io/port"] == str(port)
        assert annotations["prometheus.io/path"] == "/metrics"
        # Generated names carry a content hash, so a settings change rolls the pods.
        env_from = {
            kind: ref["name"] for item in container["envFrom"] for kind, ref in item.items()
        }
        assert env_from["configMapRef"].startswith("closeloop-config")
        assert env_from["secretRef"].startswith("closeloop-secrets")
        assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
        selector = deployment["spec"]["selector"]["matchLabels"]
        assert pdbs[f"closeloop-{name}"]["spec"]["selector"]["matchLabels"] == selector
        assert services[f"closeloop-{name}"]["spec"]["selector"] == selector
        hpa = hpas[f"closeloop-{name}"]
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"closeloop-{name}"
        if name in CONSUMERS:
            # More consumer replicas than partitions would sit idle.
            partitions = int(
                _by_kind(docs, "ConfigMap")[_config_name(docs)]["data"][
                    "CLOSELOOP_KAFKA_TOPIC_PARTITIONS"
                ]
            )
            assert hpa["spec"]["maxReplicas"] <= partitions, name


def _config_name(docs: list[dict[str, Any]]) -> str:
    (name,) = [n for n in _by_kind(docs, "ConfigMap") if n.startswith("closeloop-config")]
    return name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_migrations_and_topics_run_as_jobs(overlay: str) -> None:
    jobs = _by_kind(_build(overlay), "Job")
    commands = [
        c["command"]
        for job in jobs.values()
        for key in ("initContainers", "containers")
        for c in job["spec"]["template"]["spec"].get(key, [])
    ]
    assert ["closeloop-gateway", "migrate"] in commands
    assert ["closeloop-alerts", "migrate"] in commands
    assert ["python", "-m", "closeloop_shared.kafka.admin"] in commands


def test_production_keeps_secrets_out_of_git_and_pins_images() -> None:
    docs = _build("production")
    assert _by_kind(docs, "Secret") == {}, "production secrets are created outside Git"
    for deployment in _by_kind(docs, "Deployment").values():
        image = deployment["spec"]["template"]["spec"]["containers"][0]["image"]
        assert not image.endswith(":latest"), image
    assert {d["metadata"].get("namespace") for d in docs if d["kind"] != "Namespace"} == {
        "closeloop"
    }
