"""The manifests in deploy/kubernetes agree with the code: RBAC grants exactly what the adapter
asks of the API (checked against the requests it really makes), probes hit real routes, and
every CIUIC_ variable is a setting."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from app.kube.adapter import KubernetesCluster
from app.kube.lease import LeaseElector
from app.policy.spec import TargetRef
from app.settings import Settings
from testkit.kube_emulator import KubeEmulator
from tests.kube.conftest import FAST, api_client, eventually

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


def granted(kind: str, name: str) -> set[tuple[str, str]]:
    role = next(
        d for d in documents("rbac.yaml") if d["kind"] == kind and d["metadata"]["name"] == name
    )
    return {
        (verb, resource)
        for rule in role["rules"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


async def test_rbac_grants_every_request_the_adapter_makes_and_nothing_broader(
    kube: KubeEmulator,
) -> None:
    kube.add_workload("llm", replicas=1)
    kube.add_workload("db", kind="StatefulSet", replicas=1)
    cluster = KubernetesCluster(api_client(kube.url), retry=FAST)
    elector = LeaseElector(
        cluster.api,
        name="ciuic-leader",
        namespace="ciuic",
        identity="a",
        lease_duration_s=1,
        renew_deadline_s=0.6,
        retry_period_s=0.1,
    )
    try:
        for target in (TargetRef(name="llm"), TargetRef(kind="StatefulSet", name="db")):
            await cluster.observe(target)
            await cluster.scale(target, 2)
        assert await elector.try_acquire() and await elector.still_leader()
        await elector.release()
        await eventually(lambda: kube.count("watch", "pods") > 0)  # the pod watches are open
    finally:
        await cluster.close()
    used = {(r.verb, r.resource) for r in kube.requests}
    assert {("watch", "pods"), ("patch", "statefulsets/scale"), ("update", "leases")} <= used
    scaler, leader = granted("ClusterRole", "ciuic-scaler"), granted("Role", "ciuic-leader")
    assert {u for u in used if u[1] != "leases"} <= scaler
    assert {u for u in used if u[1] == "leases"} <= leader
    # Least privilege: no wildcard, no write to a workload itself, no pod creation, no secrets.
    for verb, resource in scaler | leader:
        assert "*" not in (verb, resource)
        assert resource != "secrets"
        assert not (
            resource in ("deployments", "statefulsets", "pods")
            and verb not in ("get", "list", "watch")
        )
    # The only write beyond scale and leases is the in-place resize of fractional pods.
    assert {u for u in scaler if u[0] == "patch"} == {
        ("patch", "deployments/scale"),
        ("patch", "statefulsets/scale"),
        ("patch", "pods/resize"),
    }


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
