"""The manifests in deploy/kubernetes agree with the code: the Lease's rules name the Lease the
settings use, probes hit real routes, and every CIUIC_ variable is a setting. RBAC itself is
judged by a real API server: tests/e2e/test_rbac.py."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from app.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def test_lease_rules_name_the_lease_the_settings_use() -> None:
    role = next(d for d in documents("rbac.yaml") if d["kind"] == "Role")
    named = [r for r in role["rules"] if r.get("resourceNames")]
    assert named and all(r["resourceNames"] == [Settings().lease_name] for r in named)


def test_deployment_probes_and_environment_match_the_service() -> None:
    from app.main import create_app

    deployment = next(d for d in documents("deployment.yaml") if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 2
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == documents("serviceaccount.yaml")[0]["metadata"]["name"]
    container = pod["containers"][0]
    paths = set(create_app(Settings()).openapi()["paths"])
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz" in paths
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz" in paths
    names = [e["name"] for e in container["env"]]
    names += list(documents("secret.yaml")[0]["stringData"])
    fields = set(Settings.model_fields)
    for name in names:
        assert name.startswith("CIUIC_") and name.removeprefix("CIUIC_").lower() in fields, name
    env = {e["name"]: e.get("value") for e in container["env"]}
    settings = Settings(
        **{k.removeprefix("CIUIC_").lower(): v for k, v in env.items() if v is not None}
    )
    assert settings.in_cluster and settings.kubeconfig is None


@pytest.mark.parametrize("name", sorted(p.name for p in DEPLOY.glob("*.yaml")))
def test_every_manifest_is_in_the_kustomization(name: str) -> None:
    listed = documents("kustomization.yaml")[0]["resources"]
    assert name == "kustomization.yaml" or name in listed
