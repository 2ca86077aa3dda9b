"""deploy/: the container image definition, the Kubernetes manifests (validated against the
Kubernetes OpenAPI schemas bundled in kubernetes-validate, strict: unknown fields fail) and
the collector configs they carry (validated by `airis validate`)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
MANIFESTS = sorted((DEPLOY / "kubernetes").glob("*.yaml"))
# oldest Kubernetes these manifests target (native sidecars: restartable init containers,
# on by default since 1.29) and the newest schema bundled
K8S_VERSIONS = ["1.29.0", kubernetes_validate.latest_version()]
HEALTH_PORT = 13133

sys.path.insert(0, str(DEPLOY / "kubernetes"))
import render  # noqa: E402


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _find(docs: list[dict[str, Any]], kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)
    ]
    assert len(found) == 1, (kind, name, len(found))
    return found[0]


def test_manifests_exist() -> None:
    assert {p.name for p in MANIFESTS} == {"gateway.yaml", "sidecar.yaml"}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifests_match_the_kubernetes_schemas(path: Path, version: str) -> None:
    for doc in _docs(path):
        kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_a_bad_manifest() -> None:
    doc = _find(_docs(DEPLOY / "kubernetes" / "gateway.yaml"), "Deployment")
    doc["spec"]["replica"] = doc["spec"].pop("replicas")  # a typo kubectl would refuse
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(doc, K8S_VERSIONS[-1], strict=True)


@pytest.mark.parametrize("name", ["gateway", "sidecar"])
def test_rendered_manifests_are_up_to_date(name: str) -> None:
    rendered = (DEPLOY / "kubernetes" / f"{name}.yaml").read_text()
    assert rendered == render.render(name), "run: python deploy/kubernetes/render.py"
    config_map = _find(_docs(DEPLOY / "kubernetes" / f"{name}.yaml"), "ConfigMap")
    assert config_map["data"]["config.yaml"] == (DEPLOY / "config" / f"{name}.yaml").read_text()


@pytest.mark.parametrize("name", ["gateway", "sidecar"])
def test_collector_configs_validate(name: str) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "otlp.cli",
            "validate",
            "--config",
            str(DEPLOY / "config" / f"{name}.yaml"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "configuration is valid" in result.stdout


def _probes_on_health(container: dict[str, Any]) -> None:
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports["health"] == HEALTH_PORT
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/" and get["port"] == "health", probe
    limits, requests = container["resources"]["limits"], container["resources"]["requests"]
    assert {"cpu", "memory"} <= set(limits) and {"cpu", "memory"} <= set(requests)
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True


def test_gateway_shape() -> None:
    docs = _docs(DEPLOY / "kubernetes" / "gateway.yaml")
    deployment = _find(docs, "Deployment", "airis-gateway")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"] == labels
    pod = deployment["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    (container,) = pod["containers"]
    _probes_on_health(container)
    regular = _find(docs, "Service", "airis-gateway")
    headless = _find(docs, "Service", "airis-gateway-headless")
    assert headless["spec"]["clusterIP"] == "None" and "clusterIP" not in regular["spec"]
    for service in (regular, headless):
        assert service["spec"]["selector"] == labels
    hpa = _find(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"]["name"] == "airis-gateway"
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = _find(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"] == labels
    # the sidecar config resolves the headless Service this manifest defines
    sidecar = yaml.safe_load((DEPLOY / "config" / "sidecar.yaml").read_text())
    dns = sidecar["exporters"]["loadbalancing"]["resolver"]["dns"]
    namespace = headless["metadata"]["namespace"]
    assert f"airis-gateway-headless.{namespace}.svc" in dns["hostname"]
    assert dns["port"] == str(headless["spec"]["ports"][0]["port"])


def test_sidecar_shape() -> None:
    docs = _docs(DEPLOY / "kubernetes" / "sidecar.yaml")
    pod = _find(docs, "Deployment")["spec"]["template"]["spec"]
    (collector,) = pod["initContainers"]
    assert collector["restartPolicy"] == "Always"  # a native sidecar
    _probes_on_health(collector)
    (app,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in app["env"]}
    assert env["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://localhost:4317"
    config = yaml.safe_load((DEPLOY / "config" / "sidecar.yaml").read_text())
    protocols = config["receivers"]["otlp"]["protocols"]
    assert protocols["grpc"]["endpoint"].startswith("127.0.0.1:")  # OTLP only inside the pod
    assert config["extensions"]["health_check"]["endpoint"] == f"0.0.0.0:{HEALTH_PORT}"


def test_dockerfile() -> None:
    text = (DEPLOY / "Dockerfile").read_text()
    stages = re.findall(r"^FROM\s+\S+", text, re.M)
    assert len(stages) >= 2, "multi-stage build"
    user = re.findall(r"^USER\s+(\S+)", text, re.M)
    assert user and not user[-1].startswith(("root", "0")), "runs as a non-root user"
    assert re.search(r"^HEALTHCHECK .*\n?.*13133", text, re.M), "health check on the health port"
    copied = set(re.findall(r"^COPY (\w+) \./\1$", text, re.M))
    packages = {"otlp", "receivers", "processors", "exporters", "extensions", "storage"}
    assert packages <= copied, f"the image must ship every package: missing {packages - copied}"
