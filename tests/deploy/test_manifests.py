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
HAPROXY_CFG = ROOT / "deploy" / "compose" / "haproxy.cfg"
K8S = ROOT / "deploy" / "k8s"
REPLICAS = ("facesvc-1", "facesvc-2", "facesvc-3")


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


def test_compose_runs_three_replicas_behind_haproxy_on_one_postgres() -> None:
    services = load(COMPOSE)["services"]
    postgres, proxy = services["postgres"], services["haproxy"]
    replicas = [services[f"facesvc-{n}"] for n in (1, 2, 3)]
    assert {name for name in services if name.startswith("facesvc")} == set(REPLICAS)
    assert replicas[1] == replicas[0] == replicas[2]  # one anchor: identical replicas
    app = replicas[0]
    assert "pgdata:/var/lib/postgresql/data" in postgres["volumes"]
    assert "pgdata" in load(COMPOSE)["volumes"]
    for service in (app, postgres, proxy):
        assert service["restart"] == "unless-stopped"
        assert service["healthcheck"]["test"]
    assert "/readyz" in " ".join(app["healthcheck"]["test"])
    assert app["environment"]["FACESVC_AUTO_MIGRATE"] == "false"  # the migrate service runs them
    assert app["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert services["migrate"]["command"] == ["facesvc", "db", "upgrade"]
    assert "/lbz" in " ".join(proxy["healthcheck"]["test"])
    assert proxy["image"].startswith("haproxy:")
    assert proxy["ports"] == ["8000:8000"]


def haproxy_config() -> dict[str, list[str]]:
    """Each section of haproxy.cfg ("backend replicas", ...) with its lines, comments out."""
    sections: dict[str, list[str]] = {}
    current: list[str] = []
    for raw in HAPROXY_CFG.read_text().splitlines():
        line = raw.split("#", 1)[0].rstrip()
        if not line:
            continue
        if not line[0].isspace():
            current = sections.setdefault(line, [])
        else:
            current.append(" ".join(line.split()))
    return sections


def test_compose_and_the_load_script_run_the_one_haproxy_cfg() -> None:
    proxy = load(COMPOSE)["services"]["haproxy"]
    assert proxy["volumes"] == ["./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro"]
    mounted = proxy["volumes"][0].split(":")[0]
    assert (COMPOSE.parent / mounted).resolve() == HAPROXY_CFG
    from bench import replicas_under_load

    assert replicas_under_load.HAPROXY_CFG == HAPROXY_CFG


def test_haproxy_routes_to_the_three_replicas_by_readyz() -> None:
    config = haproxy_config()
    backend = config["backend replicas"]
    servers = [line.split()[1:3] for line in backend if line.startswith("server ")]
    # the compose service names by default; the load script gives local ports
    assert servers == [
        [name, f'"${{FACESVC_REPLICA_{name[-1]}-{name}:8000}}"'] for name in REPLICAS
    ]
    assert "option httpchk GET /readyz" in backend
    assert "http-check expect status 200" in backend
    (server_options,) = [line for line in backend if line.startswith("default-server ")]
    assert "check" in server_options.split()
    # names re-resolved: a recreated replica is found at its new address
    assert "resolvers docker" in server_options
    assert "resolvers docker" in config
    assert config["frontend facesvc"][0] == 'bind "${FACESVC_LB_BIND-:8000}"'
    # a request that reached a replica is replayed only when it changes nothing
    assert "retry-on conn-failure empty-response" in backend
    assert "http-request disable-l7-retry unless replayable" in backend
    replayable = " ".join(line for line in backend if line.startswith("acl replayable "))
    for path in ("/v1/recognize", "/v1/verify"):
        assert path in replayable
    assert "/v1/identities" not in replayable
    assert "POST" not in replayable


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
