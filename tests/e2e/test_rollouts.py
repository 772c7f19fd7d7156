"""A cancelled rollout on the real Deployment controller: the template Ciuic saved (as the API
server returned it, every defaulted field included) is restored exactly, and the controller
goes back to the original ReplicaSet."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx

from tests.conftest import LiveServer
from tests.e2e.controlplane import Admin, deployment, pod_ready, wait_until
from tests.e2e.serve import push, rollout

NAME = "llm"


def test_a_cancelled_rollout_restores_the_template_exactly(
    admin: Admin, namespace: str, service: Callable[..., LiveServer]
) -> None:
    """Protects the rollback: the merge patch of the difference between the patched template
    and the saved one, computed against what the real API server stores (defaults filled
    in), gives back the original template to the byte; the controller then scales the
    original ReplicaSet back up and the new one down, and every pod runs the old image."""
    admin.create(deployment(NAME, namespace, replicas=2, ready_s=0.3, grace_s=1))
    wait_until(lambda: len([p for p in admin.pods(namespace, f"app={NAME}") if pod_ready(p)])
               == 2, 20, "2 pods Ready")  # fmt: skip
    original = admin.get("Deployment", namespace, NAME)["spec"]["template"]
    live = service()
    scaler = {
        "name": NAME,
        "target": {"kind": "Deployment", "namespace": namespace, "name": NAME},
        "scaler": "reactive",
        "metrics": [{"name": "request_queue", "target": "<5", "aggregation": "sum"}],
        "min_replicas": 2,
        # each decision on its own reading: the stable window and its hold on scale-down
        # have their own tests (tests/policy/test_windows.py)
        "reactive": {"window": "1s"},
    }
    assert httpx.post(f"{live.url}/v1/scalers", json=scaler).status_code == 201
    push(live.url, "request_queue", 10)
    created = httpx.post(
        f"{live.url}/v1/scalers/{NAME}/rollouts",
        json={
            "template_patch": {
                "metadata": {"annotations": {"release": "v2"}},
                "spec": {"containers": [{"name": "model", "image": "deepseek:7b-v2"}]},
            },
            "surge_percent": 50,
            "stabilize_s": 600,
        },
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    wait_until(lambda: rollout(live.url, rid)["step"] == "stabilize", 20, "rolled out")
    patched = admin.get("Deployment", namespace, NAME)["spec"]["template"]
    assert patched["metadata"]["annotations"]["release"] == "v2"
    assert patched["spec"]["containers"][0]["image"] == "deepseek:7b-v2"

    assert httpx.post(f"{live.url}/v1/rollouts/{rid}/cancel").status_code == 202
    body: dict[str, Any] = wait_until(
        lambda: (r := rollout(live.url, rid))["status"] in ("cancelled", "failed") and r,
        20,
        "the rollout cancelled",
    )
    assert body["status"] == "cancelled", body
    assert admin.get("Deployment", namespace, NAME)["spec"]["template"] == original

    def back() -> bool:
        pods = admin.pods(namespace, f"app={NAME}")
        images = {p["spec"]["containers"][0]["image"] for p in pods}
        return len(pods) == 2 and all(pod_ready(p) for p in pods) and images == {"deepseek:7b"}

    wait_until(back, 20, "the original pods back")
    sets = {
        rs["spec"]["template"]["spec"]["containers"][0]["image"]: rs["spec"]["replicas"]
        for rs in admin.items("ReplicaSet", namespace, f"app={NAME}")
    }
    assert sets == {"deepseek:7b": 2, "deepseek:7b-v2": 0}


def test_a_patch_the_api_server_would_drop_fails_the_rollout_at_once(
    admin: Admin, namespace: str, service: Callable[..., LiveServer]
) -> None:
    """A misspelt field deep in the patch (`containerz`) is dropped by the API server with a
    mere warning: the Deployment is 'patched (no change)', and a rollout that trusted it would
    surge, follow an unchanged template and report success. Sent with strict field
    validation, the patch is refused (400), and the rollout fails at its patch step, at once
    rather than after its timeout, saying which field; the template is untouched."""
    admin.create(deployment(NAME, namespace, replicas=1, ready_s=0.3, grace_s=1))
    wait_until(lambda: admin.get("Deployment", namespace, NAME).get("status", {})
               .get("readyReplicas") == 1, 20, "1 pod Ready")  # fmt: skip
    before = admin.get("Deployment", namespace, NAME)
    live = service()
    scaler = {
        "name": NAME,
        "target": {"kind": "Deployment", "namespace": namespace, "name": NAME},
        "scaler": "reactive",
        "metrics": [{"name": "request_queue", "target": "<5", "aggregation": "sum"}],
        "reactive": {"window": "1s"},
    }
    assert httpx.post(f"{live.url}/v1/scalers", json=scaler).status_code == 201
    # A misspelt container name is no field error: containers merge by name, and the API
    # server would add a second container to every pod. Refused before anything is recorded,
    # naming the containers the real Deployment has.
    typo = httpx.post(
        f"{live.url}/v1/scalers/{NAME}/rollouts",
        json={"template_patch": {"spec": {"containers": [{"name": "modle", "image": "x:2"}]}}},
    )
    assert typo.status_code == 422, typo.text
    [problem] = typo.json()["error"]["details"]
    assert problem["unknown"] == ["modle"] and problem["containers"] == ["model"], problem
    assert httpx.get(f"{live.url}/v1/scalers/{NAME}/rollouts").json()["rollouts"] == []
    created = httpx.post(
        f"{live.url}/v1/scalers/{NAME}/rollouts",
        json={
            "template_patch": {"spec": {"containerz": [{"name": "model", "image": "x:2"}]}},
            "surge_percent": 100,
            "stabilize_s": 0,
            "timeout_s": 600,
        },
    )
    assert created.status_code == 201, created.text
    rid = created.json()["id"]
    body: dict[str, Any] = wait_until(
        lambda: (r := rollout(live.url, rid))["status"] in ("succeeded", "failed") and r,
        30,
        "the rollout ended",
    )
    assert body["status"] == "failed", body
    assert "containerz" in body["error"], body["error"]
    patch = next(s for s in body["steps"] if s["name"] == "patch")
    assert patch["status"] == "failed", patch
    after = admin.get("Deployment", namespace, NAME)
    assert after["spec"]["template"] == before["spec"]["template"]
