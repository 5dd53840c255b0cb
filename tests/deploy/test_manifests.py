"""The deployment files of docs/deploy.md parse, and say what the doc says they say.

No container runtime or cluster runs them here; these checks catch a broken YAML file, a
probe on the wrong path, a selector that matches nothing, a replica without a health
check or a restart policy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "deploy" / "compose" / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"


def load(path: Path) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(path.read_text())
    return document


def k8s(kind: str) -> dict[str, Any]:
    (found,) = [
        doc
        for path in sorted(K8S.glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc.get("kind") == kind
    ]
    return found


def test_compose_runs_three_replicas_behind_traefik_on_one_postgres() -> None:
    services = load(COMPOSE)["services"]
    app, postgres, proxy = services["facesvc"], services["postgres"], services["traefik"]
    assert app["deploy"]["replicas"] == 3
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pgdata" in load(COMPOSE)["volumes"]
    for service in (app, postgres, proxy):
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"]
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert app["labels"]["traefik.http.services.facesvc.loadbalancer.healthcheck.path"] == "/readyz"
    assert app["environment"]["FACESVC_AUTO_MIGRATE"] == "false"  # the migrate service runs them
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["facesvc", "db", "upgrade"]


def test_k8s_deployment_probes_resources_and_gpu_nodes() -> None:
    deployment = k8s("Deployment")
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert deployment["spec"]["replicas"] == 3
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert {"cpu", "memory", "nvidia.com/gpu"} <= container["resources"]["requests"].keys()
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert pod["nodeSelector"] == {"nvidia.com/gpu.present": "true"}
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


@pytest.mark.parametrize("kind", ["PodDisruptionBudget", "Service"])
def test_selectors_match_the_replicas(kind: str) -> None:
    labels = k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    spec = k8s(kind)["spec"]
    selector = spec["selector"].get("matchLabels", spec["selector"])
    assert selector.items() <= labels.items()
    if kind == "PodDisruptionBudget":
        assert spec["minAvailable"] < k8s("Deployment")["spec"]["replicas"]


def test_the_kustomization_names_every_manifest() -> None:
    listed = set(load(K8S / "kustomization.yaml")["resources"])
    present = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", "secret.example.yaml"}
    assert listed == present
