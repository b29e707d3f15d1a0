"""Deployment descriptors are valid: Kubernetes manifests against the API schemas, compose."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
K8S_VERSION = "1.33.0"


def _documents() -> list[tuple[str, dict[str, Any]]]:
    docs = []
    for path in sorted(K8S.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            if doc:
                docs.append((f"{path.name}:{doc['kind']}/{doc['metadata']['name']}", doc))
    return docs


@pytest.mark.parametrize(("name", "doc"), _documents(), ids=[n for n, _ in _documents()])
def test_manifest_is_valid_against_the_kubernetes_schema(name: str, doc: dict[str, Any]) -> None:
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def test_every_service_has_a_deployment_with_probes_resources_config_and_secrets() -> None:
    deployments = {d["metadata"]["name"]: d for _, d in _documents() if d["kind"] == "Deployment"}
    assert set(deployments) == {"intake", "router", "rumor-control"}
    for deployment in deployments.values():
        container = deployment["spec"]["template"]["spec"]["containers"][0]
        assert container["readinessProbe"]["httpGet"]["path"] == "/internal/ready"
        assert container["livenessProbe"]["httpGet"]["path"] == "/internal/alive"
        assert container["resources"]["requests"]
        sources = {next(iter(s)) for s in container["envFrom"]}
        assert sources == {"configMapRef", "secretRef"}


def test_compose_file_is_valid() -> None:
    compose = ROOT / "deploy" / "compose.yaml"
    docker = shutil.which("docker")
    has_compose = docker and subprocess.run([docker, "compose", "version"], capture_output=True)
    if has_compose and has_compose.returncode == 0:
        result = subprocess.run(
            [docker, "compose", "-f", str(compose), "config", "-q"], capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
    # Without the compose plugin (as on these machines), check its structure ourselves.
    spec = yaml.safe_load(compose.read_text())
    services = spec["services"]
    assert {"kafka", "postgres", "intake", "router", "rumor_control"} <= set(services)
    for name in ("intake", "router", "rumor_control"):
        service = services[name]
        assert service["command"] == ["serve", name]
        assert set(service["depends_on"]) <= set(services)
        assert "KAFKA_BOOTSTRAP_SERVERS" in service["environment"]
        assert "DATABASE_URL" in service["environment"]
        assert all(port.startswith("127.0.0.1:") for port in service["ports"])
