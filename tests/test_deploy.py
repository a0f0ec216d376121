"""deploy/: every manifest parses, and what must agree with the CLI does (ports, probes, env vars)."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")

from turborank.server.config import ENV_PREFIX, ServerConfig  # noqa: E402

DEPLOY = Path(__file__).resolve().parents[1] / "deploy"
FIELDS = {f.name for f in dataclasses.fields(ServerConfig)}
# The probe routes; /health/live and /health/ready come with issue 16's health routes.
LIVENESS, READINESS = "/health/live", "/health/ready"
SERVE_PORT = 8000  # Ray Serve's HTTP proxy port, which KubeRay exposes as "serve"


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]


def by_kind(path: Path) -> dict[str, dict]:
    return {doc["kind"]: doc for doc in documents(path)}


def env_of(container: dict) -> dict[str, str | None]:
    return {e["name"]: e.get("value") for e in container.get("env", [])}


def check_turborank_env(env: dict[str, str | None]) -> None:
    """Every TURBORANK_* variable names a ServerConfig field, and its value parses as that field."""
    from turborank.server.config import from_sources

    settings = {name: value for name, value in env.items() if name.startswith(ENV_PREFIX)}
    for name in settings:
        assert name.removeprefix(ENV_PREFIX).lower() in FIELDS, f"{name} is not a turborank serve setting"
    from_sources(None, {k: v for k, v in settings.items() if v is not None})  # raises on a bad value


def test_every_manifest_parses_with_a_kind():
    manifests = sorted(DEPLOY.rglob("*.yaml"))
    assert len(manifests) == 2
    for path in manifests:
        for doc in documents(path):
            assert doc.get("apiVersion") and doc.get("kind"), path


def test_the_deployment_service_and_autoscaler_agree_with_the_server():
    kinds = by_kind(DEPLOY / "kubernetes" / "turborank.yaml")
    assert set(kinds) == {"Deployment", "Service", "HorizontalPodAutoscaler"}
    pod = kinds["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = env_of(container)
    check_turborank_env(env)
    port = int(env.get("TURBORANK_PORT") or ServerConfig.port)
    assert env["TURBORANK_HOST"] == "0.0.0.0"  # the default 127.0.0.1 is unreachable from the kubelet
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": port}
    probes = {
        kind: container[kind]["httpGet"] for kind in ("livenessProbe", "readinessProbe", "startupProbe")
    }
    assert probes["livenessProbe"]["path"] == probes["startupProbe"]["path"] == LIVENESS
    assert probes["readinessProbe"]["path"] == READINESS
    assert all(probe["port"] in ("http", port) for probe in probes.values())
    assert pod["terminationGracePeriodSeconds"] > float(env["TURBORANK_GRACEFUL_TIMEOUT"])
    assert int(env["TURBORANK_THREADS"]) <= int(container["resources"]["limits"]["cpu"])
    service = kinds["Service"]["spec"]
    assert service["selector"] == kinds["Deployment"]["spec"]["selector"]["matchLabels"]
    assert [p["targetPort"] for p in service["ports"]] == ["http"]
    target = kinds["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", kinds["Deployment"]["metadata"]["name"])


def test_the_probe_paths_are_routes_of_the_app():
    pytest.importorskip("fastapi")
    from turborank.server.app import create_app

    paths = create_app(ServerConfig()).openapi()["paths"]
    assert "get" in paths[LIVENESS] and "get" in paths[READINESS]


def test_the_rayservice_builds_turborank_with_known_settings():
    (service,) = documents(DEPLOY / "kuberay" / "rayservice.yaml")
    assert service["kind"] == "RayService"
    (application,) = yaml.safe_load(service["spec"]["serveConfigV2"])["applications"]
    module, _, function = application["import_path"].partition(":")
    source = Path(__file__).resolve().parents[1] / "src" / Path(*module.split("."))
    assert re.search(rf"^def {function}\(args: dict", source.with_suffix(".py").read_text(), re.M)
    assert set(application["args"]) <= FIELDS
    assert not {"host", "port", "ray", "ray_address"} & set(application["args"])  # KubeRay sets those
    ServerConfig(**application["args"])  # valid values
    cluster = service["spec"]["rayClusterConfig"]
    (head,) = cluster["headGroupSpec"]["template"]["spec"]["containers"]
    assert {"name": "serve", "containerPort": SERVE_PORT} in head["ports"]
    workers = [c for group in cluster["workerGroupSpecs"] for c in group["template"]["spec"]["containers"]]
    for container in [head, *workers]:
        check_turborank_env(env_of(container))
        assert env_of(container).get("RAY_worker_niceness") == "0"  # Ray's nice 15 starves replicas
    cpus = float(workers[0]["resources"]["limits"]["cpu"])
    assert application["args"]["threads"] == application["args"]["num_cpus"] <= cpus


def test_the_dockerfile_serves_on_the_port_it_exposes():
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    env = dict(re.findall(r"(TURBORANK_\w+)=(\S+)", text))
    check_turborank_env(env)
    assert re.search(rf"^EXPOSE {env['TURBORANK_PORT']}$", text, re.M)
    assert env["TURBORANK_HOST"] == "0.0.0.0"
    assert re.search(r'^CMD \["turborank", "serve"\]$', text, re.M)
    assert "ARG EXTRAS=server" in text and '".[${EXTRAS}]"' in text
    assert "download.pytorch.org/whl/cpu" in text  # the CPU torch, not a CUDA build
