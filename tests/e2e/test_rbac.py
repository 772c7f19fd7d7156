"""RBAC for real: deploy/kubernetes applied to the API server, Ciuic run with nothing but its
ServiceAccount's token (from the TokenRequest API), the real RBAC authorizer judging every
request.

- With the manifests' grants every feature works: the Lease, watching Deployments,
  StatefulSets and pods, scaling both through `scale`, resizing a partial pod, rolling out
  both (`ciuic serve` as a real process, TLS verified).
- The token may do nothing more than the manifests grant (SelfSubjectRulesReview).
- Each grant is needed: with any one removed, what needs it fails, and the scaler's status,
  the rollout or /readyz (for the Lease, without which nothing reconciles) names the verb and
  the resource to grant.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.policy.deletion import DELETION_COST
from app.settings import Settings
from app.store.migrate import upgrade
from tests.conftest import LiveServer, start_server
from tests.e2e.controlplane import (
    Admin,
    ControlPlane,
    deployment,
    kubeconfig,
    pod_ready,
    statefulset,
    wait_until,
)
from tests.e2e.serve import Serve, events, push, rollout, scaler, serve_env

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "kubernetes"
SA_NAMESPACE, SA_NAME = "ciuic", "ciuic"  # the manifests' ServiceAccount
SA_USER = f"system:serviceaccount:{SA_NAMESPACE}:{SA_NAME}"
SA_GROUPS = ["system:serviceaccounts", f"system:serviceaccounts:{SA_NAMESPACE}",
             "system:authenticated"]  # fmt: skip
WHOLE = {"cpu": "4", "memory": "16Gi", "nvidia.com/gpu": "1"}
SMALL = {"cpu": "100m", "memory": "128Mi"}
FREE = {"stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]}  # fmt: skip


def documents(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


@dataclass(frozen=True)
class Grant:
    """One verb on one resource, as a rule of one of the manifests' roles grants it."""

    role: str  # ciuic-scaler | ciuic-leader | ciuic-rollouts
    group: str
    resource: str  # "deployments/scale"
    verb: str
    names: tuple[str, ...] = ()

    def rule(self) -> dict[str, Any]:
        rule: dict[str, Any] = {"apiGroups": [self.group], "resources": [self.resource],
                                "verbs": [self.verb]}  # fmt: skip
        if self.names:
            rule["resourceNames"] = list(self.names)
        return rule

    def attributes(self, namespace: str) -> dict[str, str]:
        resource, _, sub = self.resource.partition("/")
        found = {"namespace": namespace, "verb": self.verb, "group": self.group,
                 "resource": resource, "subresource": sub}  # fmt: skip
        if self.names:
            found["name"] = self.names[0]
        return found


def grants() -> list[Grant]:
    """Every grant of rbac.yaml's three roles, one verb and resource each."""
    out = []
    for doc in documents("rbac.yaml"):
        if doc["kind"] not in ("Role", "ClusterRole"):
            continue
        for rule in doc["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        names = tuple(rule.get("resourceNames", ()))
                        out.append(Grant(doc["metadata"]["name"], group, resource, verb, names))
    return out


# What fails without each grant: the feature to exercise (and on which target). A grant of the
# manifests missing here is one no feature needs: the test below says so.
NEEDS = {
    ("get", "deployments"): "rollout:llm",  # the pod template is read to patch and restore it
    ("list", "deployments"): "reconcile:llm",
    ("watch", "deployments"): "reconcile:llm",
    ("get", "statefulsets"): "rollout:db",
    ("list", "statefulsets"): "reconcile:db",
    ("watch", "statefulsets"): "reconcile:db",
    ("get", "deployments/scale"): "reconcile:llm",
    ("patch", "deployments/scale"): "reconcile:llm",
    ("get", "statefulsets/scale"): "reconcile:db",
    ("patch", "statefulsets/scale"): "reconcile:db",
    ("list", "pods"): "reconcile:llm",
    ("watch", "pods"): "reconcile:llm",
    ("patch", "pods/resize"): "resize:llm",
    ("patch", "pods"): "scaledown:llm",  # the idle pods marked to go first
    ("create", "leases"): "lead",
    ("get", "leases"): "lead",
    ("update", "leases"): "lead",
    ("patch", "deployments"): "rollout:llm",
    ("patch", "statefulsets"): "rollout:db",
}


def test_every_grant_in_the_manifests_has_a_feature_that_needs_it() -> None:
    """Protects least privilege as the manifests evolve: each grant names what needs it (and
    the e2e cases below prove it), so a grant no feature uses cannot creep in."""
    granted = [(g.verb, g.resource) for g in grants()]
    assert len(granted) == len(set(granted))
    assert set(granted) == set(NEEDS)


@pytest.fixture(scope="module")
def manifests(admin: Admin) -> Iterator[None]:
    """deploy/kubernetes as `kubectl apply -k` would send it: the namespace, the
    ServiceAccount and the RBAC stored; the rest (placeholder Secret, Ciuic's own Deployment,
    Services) validated by the API server with a server-side dry run."""
    stored = ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml")
    for name in documents("kustomization.yaml")[0]["resources"]:
        for doc in documents(name):
            admin.apply(doc, dry_run=name not in stored)
    yield
    admin.delete("Lease", SA_NAMESPACE, "ciuic-leader")


def copy_bindings(admin: Admin, namespace: str) -> None:
    """What the README tells users: one copy of the RoleBindings per scaled namespace."""
    for doc in documents("rbac.yaml"):
        if doc["kind"] == "RoleBinding" and doc["metadata"]["namespace"] == "default":
            admin.apply({**doc, "metadata": {**doc["metadata"], "namespace": namespace}})


def workloads(
    admin: Admin, namespace: str, whole: dict[str, str] = WHOLE, llm_replicas: int = 1
) -> None:
    """llm: a Deployment of (GPU) pods, Guaranteed; db: a StatefulSet."""
    resources = {"requests": whole, "limits": whole}
    admin.create(
        deployment("llm", namespace, replicas=llm_replicas, ready_s=0.3, resources=resources)
    )
    admin.create(statefulset("db", namespace, replicas=1, ready_s=0.3))


def scaler_specs(namespace: str, prefix: str = "") -> list[dict[str, Any]]:
    """llm needs its queue / 5 pods, fractionally; db its own queue / 5 (the scalers named
    with `prefix`, their metrics after them)."""

    def spec(target: str, kind: str, **extra: Any) -> dict[str, Any]:
        name = f"{prefix}{target}"
        return {
            "name": name,
            "target": {"kind": kind, "namespace": namespace, "name": target},
            "scaler": "reactive",
            "metrics": [{"name": metric(name), "target": "<5", "aggregation": "sum"}],
            "max_replicas": 8,
            "cold_start": "learn",
            "behavior": {"scaleUp": FREE, "scaleDown": FREE},
            # each decision on its own reading: the stable window and its hold on scale-down
            # have their own tests (tests/policy/test_windows.py)
            "reactive": {"window": "1s"},
            **extra,
        }

    return [spec("llm", "Deployment", fractional={"enabled": True}), spec("db", "StatefulSet")]


def metric(scaler_name: str) -> str:
    return scaler_name.replace("-", "_") + "_queue"


def play_resize_capable_kubelet(admin: Admin, namespace: str, selector: str) -> None:
    """A kubelet with in-place resize reports each container's resources in the pod's status;
    KWOK's does not, and the API server refuses a resize without it (test_resize.py)."""
    for pod in admin.pods(namespace, selector):
        statuses = pod["status"]["containerStatuses"]
        for status, container in zip(statuses, pod["spec"]["containers"], strict=True):
            status["resources"] = container["resources"]
        admin.patch("Pod", namespace, pod["metadata"]["name"],
                    {"status": {"containerStatuses": statuses}}, sub="status")  # fmt: skip


def ready_pods(admin: Admin, namespace: str, app: str) -> int:
    return len([p for p in admin.pods(namespace, f"app={app}") if pod_ready(p)])


def test_ciuic_serve_with_only_its_service_account_token_does_everything(
    admin: Admin,
    control_plane: ControlPlane,
    manifests: None,
    namespace: str,
    tmp_path: Path,
) -> None:
    """Protects the manifests against a missing grant: with them applied as the README says,
    `ciuic serve` holding nothing but the ServiceAccount's token (TLS verified) leads, scales
    a Deployment and a StatefulSet, learns the cold start, resizes a partial pod, rolls
    both out and marks the idle pods before a scale-down, and never meets a 403."""
    copy_bindings(admin, namespace)
    workloads(admin, namespace)
    token = admin.token(SA_NAMESPACE, SA_NAME)
    config = tmp_path / "ciuic.kubeconfig"
    config.write_text(kubeconfig(control_plane.server, token, control_plane.ca_pem))
    env = serve_env(kubeconfig=config, namespace=SA_NAMESPACE,
                    database_url=f"sqlite+aiosqlite:///{tmp_path}/ciuic.db")  # fmt: skip
    service = Serve("ciuic-rbac", env, tmp_path / "serve.log")
    try:
        url = service.url
        wait_until(lambda: service.readyz()["leader"], 10, "ciuic-rbac leads")
        lease = admin.get("Lease", SA_NAMESPACE, "ciuic-leader")
        assert lease["spec"]["holderIdentity"] == "ciuic-rbac"

        for spec in scaler_specs(namespace):
            assert httpx.post(f"{url}/v1/scalers", json=spec).status_code == 201
        push(url, metric("llm"), 2.5 * 5)  # 2 whole pods and one at half: 3 replicas
        push(url, metric("db"), 2 * 5)
        wait_until(lambda: ready_pods(admin, namespace, "llm") == 3
                   and ready_pods(admin, namespace, "db") == 2, 20, "both scaled up")  # fmt: skip
        assert admin.get("Deployment", namespace, "llm")["spec"]["replicas"] == 3
        assert admin.get("StatefulSet", namespace, "db")["spec"]["replicas"] == 2

        play_resize_capable_kubelet(admin, namespace, "app=llm")
        halves = lambda: [  # noqa: E731
            p for p in admin.pods(namespace, "app=llm")
            if p["spec"]["containers"][0]["resources"]["requests"]["cpu"] == "2"
        ]  # fmt: skip
        [half] = wait_until(halves, 10, "the partial pod resized to half")
        assert half["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
        decision = httpx.get(f"{url}/v1/scalers/llm/decision").json()
        assert decision["cluster"]["cold_start_s"] is not None  # pods watched: learned

        started = [
            httpx.post(f"{url}/v1/scalers/{name}/rollouts",
                       json={"image": image, "surge_percent": 50, "stabilize_s": 0.2})
            for name, image in (("llm", "deepseek:7b-v2"), ("db", "db:2"))
        ]  # fmt: skip
        assert [r.status_code for r in started] == [201, 201], [r.text for r in started]
        ids = [r.json()["id"] for r in started]
        done = wait_until(
            lambda: (
                all(rollout(url, i)["status"] in ("succeeded", "failed") for i in ids)
                and [rollout(url, i) for i in ids]
            ),
            40,
            "both rollouts finished",
        )
        assert [r["status"] for r in done] == ["succeeded", "succeeded"], done
        images = {
            kind: admin.get(kind, namespace, name)["spec"]["template"]["spec"]["containers"][0][
                "image"
            ]
            for kind, name in (("Deployment", "llm"), ("StatefulSet", "db"))
        }
        assert images == {"Deployment": "deepseek:7b-v2", "StatefulSet": "db:2"}

        # A scale-down marks the idle pods to go first (patch on pods), then scales.
        llm_pods = [p["metadata"]["name"] for p in admin.pods(namespace, "app=llm")
                    if pod_ready(p) and not p["metadata"].get("deletionTimestamp")]  # fmt: skip
        busy = llm_pods[0]

        def scaled_down() -> bool:
            for pod in llm_pods:
                push(url, metric("llm"), 5.0 if pod == busy else 0.0, pod=pod)
            return bool(admin.get("Deployment", namespace, "llm")["spec"]["replicas"] == 1)

        wait_until(scaled_down, 20, "llm scaled down to 1", interval_s=0.3)
        costs = {p["metadata"]["name"]: p["metadata"].get("annotations", {}).get(DELETION_COST)
                 for p in admin.pods(namespace, "app=llm")}  # fmt: skip
        assert costs.get(busy) == "5000", costs

        refused = "the service account may not"  # a 403, as the adapter words it
        for name in ("llm", "db"):
            assert scaler(url, name)["status"]["last_error"] is None
            assert not [e for e in events(url, name) if refused in e["message"]]
        assert refused not in service.log.read_text()
    finally:
        service.stop()


def rules_review(control_plane: ControlPlane, token: str, namespace: str) -> dict[str, Any]:
    """What the token may do in `namespace`, as the API server's authorizer lists it."""
    with httpx.Client(base_url=control_plane.server, verify=False,
                      headers={"Authorization": f"Bearer {token}"}) as http:  # fmt: skip
        answer = http.post(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            json={"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview",
                  "spec": {"namespace": namespace}},
        )  # fmt: skip
    assert answer.status_code == 201, answer.text
    status: dict[str, Any] = answer.json()["status"]
    assert not status.get("incomplete"), status
    return status


def atomic(rules: list[dict[str, Any]]) -> set[tuple[str, str, str, tuple[str, ...]]]:
    return {
        (group, resource, verb, tuple(rule.get("resourceNames") or ()))
        for rule in rules
        for group in rule.get("apiGroups") or [""]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def test_the_token_may_do_nothing_beyond_the_manifests(
    admin: Admin, control_plane: ControlPlane, manifests: None, namespace: str
) -> None:
    """Protects least privilege on the real authorizer: in a scaled namespace the token may
    do exactly what ciuic-scaler and ciuic-rollouts grant, in `ciuic` what ciuic-leader
    grants, anywhere else nothing but what every authenticated user may (discovery, and
    reviews of its own rights); no cluster-wide grant."""
    copy_bindings(admin, namespace)
    token = admin.token(SA_NAMESPACE, SA_NAME)
    expected = {role: {(g.group, g.resource, g.verb, g.names) for g in grants() if g.role == role}
                for role in ("ciuic-scaler", "ciuic-leader", "ciuic-rollouts")}  # fmt: skip

    unbound = rules_review(control_plane, token, "kube-public")
    everyone = atomic(unbound["resourceRules"])
    assert {(g, r, v) for g, r, v, _ in everyone} == {
        ("authorization.k8s.io", "selfsubjectaccessreviews", "create"),
        ("authorization.k8s.io", "selfsubjectrulesreviews", "create"),
        ("authentication.k8s.io", "selfsubjectreviews", "create"),
    }
    assert {v for rule in unbound["nonResourceRules"] for v in rule["verbs"]} == {"get"}

    def granted() -> bool:
        scaled = atomic(rules_review(control_plane, token, namespace)["resourceRules"])
        return scaled - everyone == expected["ciuic-scaler"] | expected["ciuic-rollouts"]

    wait_until(granted, 10, "the copied RoleBindings in effect")
    leader = atomic(rules_review(control_plane, token, SA_NAMESPACE)["resourceRules"])
    assert leader - everyone == expected["ciuic-leader"]


# ---- each grant needed ------------------------------------------------------------------


def allowed(admin: Admin, grant: Grant, namespace: str) -> bool:
    review = admin.request(
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews",
        {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
         "spec": {"user": SA_USER, "groups": SA_GROUPS,
                  "resourceAttributes": grant.attributes(namespace)}},
    )  # fmt: skip
    return bool(review["status"].get("allowed"))


def bind_all_but(admin: Admin, namespace: str, dropped: Grant | None) -> None:
    """The manifests' three roles as Roles in `namespace`, less one grant, bound to the
    ServiceAccount; waits until the authorizer judges by them."""
    kept = [g for g in grants() if g != dropped]
    for role in ("ciuic-scaler", "ciuic-leader", "ciuic-rollouts"):
        rbac = {"apiVersion": "rbac.authorization.k8s.io/v1", "metadata": {"name": role,
                "namespace": namespace}}  # fmt: skip
        admin.create({**rbac, "kind": "Role", "rules": [g.rule() for g in kept if g.role == role]})
        admin.create({**rbac, "kind": "RoleBinding",
                      "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": role},
                      "subjects": [{"kind": "ServiceAccount", "name": SA_NAME,
                                    "namespace": SA_NAMESPACE}]})  # fmt: skip


def in_effect(admin: Admin, namespace: str, dropped: Grant | None) -> bool:
    return all(allowed(admin, g, namespace) == (g != dropped) for g in grants())


@pytest.fixture
def live_service(
    admin: Admin, control_plane: ControlPlane, tmp_path: Path
) -> Iterator[Callable[..., LiveServer]]:
    """Starts the service in this process with the ServiceAccount's token alone, leading
    through a Lease in the namespace given."""
    started: list[LiveServer] = []

    def start(lease_namespace: str, **settings: Any) -> LiveServer:
        config = tmp_path / "ciuic.kubeconfig"
        token = admin.token(SA_NAMESPACE, SA_NAME)
        config.write_text(kubeconfig(control_plane.server, token, control_plane.ca_pem))
        url = f"sqlite+aiosqlite:///{tmp_path}/ciuic.db"
        asyncio.run(upgrade(url))
        defaults: dict[str, Any] = {
            "reconcile_interval_s": 0.1,
            "rollout_poll_s": 0.05,
            "lease_duration_s": 1.5,
            "lease_renew_deadline_s": 1.0,
            "lease_retry_period_s": 0.1,
            "kube_request_timeout_s": 5.0,
        }
        live = start_server(
            Settings(
                database_url=url,
                kubeconfig=str(config),
                namespace=lease_namespace,
                leader_identity="ciuic-rbac",
                **(defaults | settings),
            )
        )
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


def case_namespace(admin: Admin, namespace: str, grant: Grant) -> str:
    """The test's namespace for the case without `grant` (deleted with the test's own)."""
    name = f"{namespace[:40]}-{grant.verb}-{grant.resource.replace('/', '-')}"[:63].strip("-")
    admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    return name


def test_without_any_one_grant_what_needs_it_fails_saying_what_to_grant(
    admin: Admin,
    manifests: None,
    namespace: str,
    live_service: Callable[..., LiveServer],
) -> None:
    """Protects both least privilege and the operator, for every grant of the scaler and
    rollout roles at once: one namespace per grant, holding the roles less that grant, and
    one service (the ServiceAccount's token alone) driving them all. In each, what needs the
    grant fails and says which verb and resource to grant (the scaler's status, its events
    for a resize, the rollout), and nothing else there is refused."""
    cases = {g: case_namespace(admin, namespace, g) for g in grants() if g.role != "ciuic-leader"}
    bind_all_but(admin, namespace, None)  # the Lease's namespace: everything granted
    try:
        for grant, where in cases.items():
            bind_all_but(admin, where, grant)
            scaledown = NEEDS[(grant.verb, grant.resource)].startswith("scaledown")
            # 15 namespaces' pods fit the two fake nodes; a scale-down starts above its need
            workloads(admin, where, SMALL, llm_replicas=3 if scaledown else 1)
        for grant, where in cases.items():
            wait_until(lambda g=grant, w=where: in_effect(admin, w, g), 10, f"{where}'s Roles")
        # A pass over 30 scalers a second: passes back to back would slow the API calls
        # below (one SQLite file, the server in this process) for no earlier failure.
        live = live_service(namespace, reconcile_interval_s=1.0)
        url = live.url
        wait_until(lambda: httpx.get(f"{url}/readyz").json()["leader"], 10, "the service leads")
        prefix = {g: f"{g.verb}-{g.resource.replace('/', '-')}-" for g in cases}
        load = {}
        for grant, where in cases.items():
            for spec in scaler_specs(where, prefix[grant]):
                assert httpx.post(f"{url}/v1/scalers", json=spec).status_code == 201
                # llm: one whole pod and one at half (scale and resize); db: two pods
                load[metric(spec["name"])] = 1.5 * 5 if spec["name"].endswith("llm") else 10
        for grant in cases:
            if NEEDS[(grant.verb, grant.resource)].startswith("scaledown"):
                del load[metric(prefix[grant] + "llm")]  # a pod "p0" would name no real pod
        push(url, load)
        for grant, where in cases.items():
            if NEEDS[(grant.verb, grant.resource)].startswith("scaledown"):
                # the pods' own names: a load the marks can follow (busy, idle, idle)
                pods = wait_until(lambda w=where: len(p := admin.pods(w, "app=llm")) == 3 and p,
                                  20, "3 llm pods")  # fmt: skip
                for pod, value in zip(pods, (1.5 * 5, 0.0, 0.0), strict=True):
                    push(url, metric(prefix[grant] + "llm"), value, pod=pod["metadata"]["name"])
        rollouts = {}
        for grant in cases:
            feature, _, target = NEEDS[(grant.verb, grant.resource)].partition(":")
            if feature == "rollout":
                name = prefix[grant] + target
                image = "deepseek:7b-v2" if target == "llm" else "db:2"
                rollouts[grant] = httpx.post(
                    f"{url}/v1/scalers/{name}/rollouts",
                    json={"image": image, "surge_percent": 50, "stabilize_s": 0},
                )

        def said(grant: Grant) -> str | None:
            """Where the failure of what needs `grant` names it, once it does."""
            what = f"may not {grant.verb} {grant.resource}"
            feature, _, target = NEEDS[(grant.verb, grant.resource)].partition(":")
            name = prefix[grant] + target
            if feature == "reconcile":
                found = scaler(url, name)["status"]["last_error"]
                return found if found and what in found else None
            if feature in ("resize", "scaledown"):
                notes = [e["message"] for e in events(url, name) if what in e["message"]]
                return notes[0] if notes else None
            started = rollouts[grant]
            if started.status_code == 409:  # refused at once: the template cannot be read
                return str(started.json()["error"]["message"])
            body = rollout(url, started.json()["id"])
            return body["error"] if body["status"] == "failed" else None

        found: dict[Grant, str | None] = {}
        with contextlib.suppress(AssertionError):  # reported just below, case by case
            wait_until(lambda: all(found.setdefault(g, said(g)) or found.pop(g) for g in cases),
                       20, "every case failing")  # fmt: skip
        assert set(found) == set(cases), {
            f"{g.verb} {g.resource}": scaler(url, prefix[g] + NEEDS[(g.verb, g.resource)]
                                             .partition(":")[2])["status"]
            if g not in rollouts else rollout(url, rollouts[g].json()["id"])
            for g in set(cases) - set(found)
        }  # fmt: skip
        for grant, message in found.items():
            verb, resource = grant.verb, grant.resource
            assert f"grant verb '{verb}' on '{resource}'" in str(message), (grant, message)
        # Nothing else was refused: each namespace's other scaler has no error at all, and
        # no event anywhere names another grant.
        for grant in cases:
            for spec in scaler_specs("-", prefix[grant]):
                for event in events(url, spec["name"]):
                    if "the service account may not" in event["message"]:
                        assert f"may not {grant.verb} {grant.resource} " in event["message"], (
                            grant,
                            event,
                        )
    finally:
        for where in cases.values():
            admin.delete("Namespace", None, where)


@pytest.mark.parametrize(
    "verb", ["create", "get", "update"], ids=["create-leases", "get-leases", "update-leases"]
)
def test_without_a_lease_grant_no_replica_leads_and_readyz_says_why(
    admin: Admin, manifests: None, namespace: str,
    live_service: Callable[..., LiveServer], verb: str,
) -> None:  # fmt: skip
    """Protects the Lease grants: without one the replica cannot lead (or, without update,
    cannot renew: it steps down), so nothing reconciles and no scaler's status could say
    why; /readyz does, naming the verb and resource to grant."""
    [dropped] = [g for g in grants() if (g.verb, g.resource) == (verb, "leases")]
    bind_all_but(admin, namespace, dropped)
    wait_until(lambda: in_effect(admin, namespace, dropped), 10, "the Roles in effect")
    live = live_service(namespace)
    what = f"may not {verb} leases"

    def refused() -> dict[str, Any] | None:
        ready: dict[str, Any] = httpx.get(f"{live.url}/readyz").json()
        return ready if not ready["leader"] and what in ready.get("leader_error", "") else None

    ready = wait_until(refused, 10, f"/readyz saying {what}")
    assert f"grant verb '{verb}' on 'leases'" in ready["leader_error"]
    assert ready["leader_error"].startswith(f"lease {namespace}/ciuic-leader: forbidden")
