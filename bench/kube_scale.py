"""Scale on a real control plane: N Deployments and their scalers, reconciled every 5 s.

A real Kubernetes control plane (tests/e2e/controlplane.py: etcd, kube-apiserver, controller-
manager, scheduler, KWOK's fake nodes; the folder CIUIC_KUBE_ASSETS names) holds `--scalers`
Deployments spread over `--namespaces` namespaces, one pod each to begin with.
deploy/kubernetes's RBAC is applied and `ciuic serve` runs as its own process with the
ServiceAccount's token alone (TLS verified), the default reconcile interval (5 s), one scaler
per Deployment (reactive, a pushed queue per scaler). This process pushes every scaler's load
every 5 s, as its pods would.

Three windows, after the service has decided every scaler once (start-up, measured too):
- steady: the loads do not move; what remains is the watch caches, the Lease, the passes;
- active: every 5 s a tenth of the scalers see their load double or halve, so they scale
  (a scale write each, and their pods come and go);
and the same two windows again with the service on its built-in simulated cluster (no
kubeconfig): the ratio is what talking to Kubernetes costs.

What is measured, and where:
- Ciuic's CPU: the service process and its children (/proc), in cores;
- the requests it sends: the API server's priority-and-fairness counters for its flow
  schema (`service-accounts`: the only client using a ServiceAccount token here; the control
  plane's own use the admin token, `exempt`), per second; rejections (429) and queue waits;
  the scale subresource's GET and PATCH and the namespaced LISTs from apiserver_request_total
  (no other client makes those);
- its watches: the API server's long-running WATCH requests at namespace scope (the control
  plane watches cluster-wide), less those open before it started.
For scale: client-go's default client-side limit is 5 requests/s with a burst of 10.

    .venv/bin/python bench/kube_scale.py [--scalers 200] [--namespaces 10] [--steady 60]
                                         [--active 120] [--backend postgresql|sqlite]
                                         [--json out.json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._common import drop_database, fresh_database, start_service  # noqa: E402
from tests.e2e.controlplane import (  # noqa: E402
    ASSETS_ENV,
    Admin,
    ControlPlane,
    deployment,
    kubeconfig,
    pod_ready,
)

DEPLOY = ROOT / "deploy" / "kubernetes"
SA = "system:serviceaccount:ciuic:ciuic"
FREE = {"stabilizationWindowSeconds": 0,
        "policies": [{"type": "Pods", "value": 100, "periodSeconds": 1}]}  # fmt: skip
SMALL = {"cpu": "100m", "memory": "128Mi"}


def docs(name: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((DEPLOY / name).read_text()) if d]


# ---- the cluster ----------------------------------------------------------------------------


def setup(admin: Admin, scalers: int, namespaces: int) -> list[tuple[str, str]]:
    """The manifests' RBAC, the namespaces with their RoleBindings, the Deployments (one pod
    each, Ready 1 s after start); returns (namespace, name) per Deployment."""
    for name in ("namespace.yaml", "serviceaccount.yaml", "rbac.yaml"):
        for doc in docs(name):
            admin.apply(doc)
    bindings = [d for d in docs("rbac.yaml") if d["kind"] == "RoleBinding"
                and d["metadata"]["namespace"] == "default"]  # fmt: skip
    targets = [(f"bench-{i % namespaces}", f"llm-{i}") for i in range(scalers)]
    for ns in sorted({ns for ns, _ in targets}):
        admin.apply({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}})
        for doc in bindings:
            admin.apply({**doc, "metadata": {**doc["metadata"], "namespace": ns}})
    for ns, name in targets:
        admin.create(deployment(name, ns, replicas=1, ready_s=1.0,
                                resources={"requests": SMALL, "limits": SMALL}))  # fmt: skip
    deadline = time.monotonic() + 300
    while True:
        ready = sum(
            1
            for ns in sorted({ns for ns, _ in targets})
            for p in admin.pods(ns, "")
            if pod_ready(p)
        )
        if ready >= len(targets):
            return targets
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {ready} of {len(targets)} pods Ready after 300 s")
        time.sleep(1)


class Meter:
    """The API server's view of Ciuic's requests and watches, and Ciuic's CPU."""

    NAMES = (
        "apiserver_flowcontrol_dispatched_requests_total",
        "apiserver_flowcontrol_rejected_requests_total",
        "apiserver_flowcontrol_request_execution_seconds_count",
        "apiserver_flowcontrol_request_wait_duration_seconds_bucket",
        "apiserver_longrunning_requests",
        "apiserver_request_total",
    )

    def __init__(self, admin: Admin | None, pid: int) -> None:
        self.admin, self.pid = admin, pid

    def cpu_s(self) -> float:
        """User + system seconds of the process and its descendants."""
        tick = os.sysconf("SC_CLK_TCK")
        total, todo = 0.0, [self.pid]
        while todo:
            pid = todo.pop()
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
                for task in Path(f"/proc/{pid}/task").iterdir():
                    todo += [int(c) for c in (task / "children").read_text().split()]
            except (OSError, ValueError):
                continue
        return total

    def sample(self) -> dict[str, Any]:
        out: dict[str, Any] = {"t": time.monotonic(), "cpu_s": self.cpu_s()}
        if self.admin is None:
            return out
        m = self.admin.metrics(*self.NAMES)

        def mine(labels: dict[str, str]) -> bool:
            return labels.get("flow_schema") == "service-accounts"

        out["requests"] = sum(
            v for lb, v in m["apiserver_flowcontrol_dispatched_requests_total"] if mine(lb)
        )
        out["rejected"] = sum(
            v for lb, v in m["apiserver_flowcontrol_rejected_requests_total"] if mine(lb)
        )
        out["watch_starts"] = sum(
            v
            for lb, v in m["apiserver_flowcontrol_request_execution_seconds_count"]
            if mine(lb) and lb.get("type") == "watch"
        )
        out["wait_buckets"] = {
            float(lb["le"]): v
            for lb, v in m["apiserver_flowcontrol_request_wait_duration_seconds_bucket"]
            if mine(lb) and lb.get("execute") == "true"
        }
        out["ns_watches"] = sum(
            v
            for lb, v in m["apiserver_longrunning_requests"]
            if lb.get("verb") == "WATCH" and lb.get("scope") == "namespace"
        )
        by_kind: dict[str, float] = {}
        for lb, v in m["apiserver_request_total"]:
            key = _kind(lb)
            if key:
                by_kind[key] = by_kind.get(key, 0.0) + v
        out["by_kind"] = by_kind
        return out


def _kind(labels: dict[str, str]) -> str | None:
    """The request kinds only Ciuic makes here."""
    verb, resource, sub = labels.get("verb"), labels.get("resource"), labels.get("subresource")
    if sub == "scale" and verb in ("GET", "PATCH"):
        return f"{verb} {resource}/scale"
    if (
        labels.get("scope") == "namespace"
        and verb == "LIST"
        and resource
        in (
            "pods",
            "deployments",
        )
    ):
        return f"LIST {resource}"
    if verb == "GET" and labels.get("scope") == "resource" and resource == "deployments":
        return "GET deployments"
    if sub == "resize":
        return f"{verb} pods/resize"
    return None


def wait_p99_ms(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The 99th percentile of APF queue waits between two samples (bucket upper bound)."""
    delta = sorted((le, after.get(le, 0.0) - before.get(le, 0.0)) for le in after)
    total = delta[-1][1] if delta else 0.0
    if total <= 0:
        return None
    for le, count in delta:
        if count >= 0.99 * total:
            return round(le * 1000, 1)
    return None


def window(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    seconds = b["t"] - a["t"]
    out: dict[str, Any] = {
        "seconds": round(seconds, 1),
        "cpu_cores": round((b["cpu_s"] - a["cpu_s"]) / seconds, 3),
        "cpu_s_per_min": round(60 * (b["cpu_s"] - a["cpu_s"]) / seconds, 2),
    }
    if "requests" in a:
        out.update(
            requests_per_s=round((b["requests"] - a["requests"]) / seconds, 2),
            rejected_429=int(b["rejected"] - a["rejected"]),
            watch_starts_per_min=round(60 * (b["watch_starts"] - a["watch_starts"]) / seconds, 1),
            apf_wait_p99_ms=wait_p99_ms(a["wait_buckets"], b["wait_buckets"]),
            by_kind_per_s={
                k: round((v - a["by_kind"].get(k, 0.0)) / seconds, 3)
                for k, v in sorted(b["by_kind"].items())
                if v - a["by_kind"].get(k, 0.0) > 0
            },
        )
    return out


# ---- the service and its load --------------------------------------------------------------


def spec(ns: str, name: str) -> dict[str, Any]:
    metric = name.replace("-", "_") + "_queue"
    return {
        "name": name,
        "target": {"kind": "Deployment", "namespace": ns, "name": name},
        "scaler": "reactive",
        "metrics": [{"name": metric, "target": "<5", "aggregation": "sum"}],
        "max_replicas": 4,
        "behavior": {"scaleUp": FREE, "scaleDown": FREE},
    }


class Pusher:
    """Every 5 s, one request with every scaler's queue (its pods' push, in short)."""

    def __init__(self, base: str, names: list[str]) -> None:
        self.base, self.names = base, names
        self.need = dict.fromkeys(names, 1)  # pods each scaler's load asks for
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def push(self) -> None:
        samples = [
            {"metric": n.replace("-", "_") + "_queue", "labels": {"pod": "p0"},
             "value": 5.0 * self.need[n]}
            for n in self.names
        ]  # fmt: skip
        response = httpx.post(f"{self.base}/v1/samples", json={"samples": samples}, timeout=30)
        response.raise_for_status()

    def _run(self) -> None:
        while not self.stop.wait(5.0):
            self.push()


def run_service(
    label: str,
    url: str,
    env: dict[str, str],
    targets: list[tuple[str, str]],
    admin: Admin | None,
    steady_s: float,
    active_s: float,
) -> dict[str, Any]:
    """The service on `url`'s database, `env` saying which cluster: start-up, then the
    steady and the active windows."""
    server, base = start_service(url, env={**env, "CIUIC_LOG_LEVEL": "WARNING"}, ready_s=60)
    meter = Meter(admin, server.pid)
    out: dict[str, Any] = {"cluster": label}
    pusher = Pusher(base, [n for _, n in targets])
    try:
        start = meter.sample()
        with httpx.Client(base_url=base, timeout=30) as client:
            for ns, name in targets:
                assert client.post("/v1/scalers", json=spec(ns, name)).status_code == 201
            pusher.push()
            pusher.thread.start()
            deadline = time.monotonic() + 120
            peak, last = 0.0, start
            while True:  # start-up: until every scaler has decided once
                listed = client.get("/v1/scalers").json()
                if all(s["status"]["last_decision"] for s in listed):
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError("not every scaler decided within 120 s")
                time.sleep(1)
                now = meter.sample()
                if "requests" in now:
                    peak = max(peak, (now["requests"] - last["requests"]) / (now["t"] - last["t"]))
                last = now
            decided = meter.sample()
            out["startup"] = window(start, decided)
            if "requests" in decided:
                out["startup"]["peak_requests_per_s"] = round(peak, 1)
            time.sleep(10)  # the first passes' writes settle
            a = meter.sample()
            time.sleep(steady_s)
            b = meter.sample()
            out["steady"] = window(a, b)
            if "ns_watches" in b:  # less the control plane's own, open before we started
                out["watches"] = int(b["ns_watches"] - start["ns_watches"])
            names = [n for _, n in targets]
            tenth = max(1, len(names) // 10)
            ends = time.monotonic() + active_s
            turn = 0
            while time.monotonic() < ends:
                for name in names[turn * tenth % len(names) :][:tenth]:
                    pusher.need[name] = 2 if pusher.need[name] == 1 else 1
                turn += 1
                time.sleep(5.0)
            c = meter.sample()
            out["active"] = window(b, c)
            actions = sum(
                len(client.get(f"/v1/scalers/{n}/events", params={"kind": "action"})
                    .json()["events"])
                for n in names
            )  # fmt: skip
            out["active"]["scale_actions"] = actions
            out["active"]["scale_errors"] = sum(
                len(client.get(f"/v1/scalers/{n}/events", params={"kind": "error"})
                    .json()["events"])
                for n in names
            )  # fmt: skip
    finally:
        pusher.stop.set()
        server.terminate()
        server.wait(timeout=60)
    return out


def table(results: list[dict[str, Any]]) -> str:
    rows = [
        ("Ciuic CPU, cores (steady / active)", lambda r: f"{r['steady']['cpu_cores']} / "
         f"{r['active']['cpu_cores']}"),
        ("start-up: all decided in, s", lambda r: r["startup"]["seconds"]),
        ("requests/s (steady / active)", lambda r: f"{r['steady'].get('requests_per_s', '-')} / "
         f"{r['active'].get('requests_per_s', '-')}"),
        ("requests/s peak (start-up)", lambda r: r["startup"].get("peak_requests_per_s", "-")),
        ("watches open", lambda r: r.get("watches", "-")),
        ("429s (APF)", lambda r: r["active"].get("rejected_429", "-")),
        ("APF queue wait p99, ms", lambda r: r["active"].get("apf_wait_p99_ms", "-")),
        ("scale actions (active)", lambda r: r["active"]["scale_actions"]),
        ("errors on the scalers (all windows)", lambda r: r["active"]["scale_errors"]),
    ]  # fmt: skip
    head = "| measure | " + " | ".join(r["cluster"] for r in results) + " |"
    lines = [head, "|" + " --- |" * (len(results) + 1)]
    for label, get in rows:
        lines.append(f"| {label} | " + " | ".join(str(get(r)) for r in results) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--scalers", type=int, default=200)
    parser.add_argument("--namespaces", type=int, default=10)
    parser.add_argument("--steady", type=float, default=60.0)
    parser.add_argument("--active", type=float, default=120.0)
    parser.add_argument("--backend", choices=("postgresql", "sqlite"), default="postgresql")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    assets = Path(os.environ.get(ASSETS_ENV) or ROOT.parent / "shared" / "kube")
    nodes = max(2, math.ceil(args.scalers * 2 / 100) + 1)  # 110 pods a node; 2 pods a scaler
    plane = ControlPlane.start(assets, nodes=nodes)
    results: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp())
    try:
        with plane.admin() as admin:
            started = time.monotonic()
            targets = setup(admin, args.scalers, args.namespaces)
            print(f"{len(targets)} Deployments Ready in {time.monotonic() - started:.0f} s",
                  file=sys.stderr)  # fmt: skip
            config = tmp / "ciuic.kubeconfig"
            config.write_text(
                kubeconfig(plane.server, admin.token("ciuic", "ciuic", 24 * 3600), plane.ca_pem)
            )
            for label, env, meter_admin in (
                ("kubernetes", {"CIUIC_KUBECONFIG": str(config), "CIUIC_NAMESPACE": "ciuic"},
                 admin),
                ("simulated", {}, None),
            ):  # fmt: skip
                url, name = asyncio.run(fresh_database(args.backend, tmp, label))
                try:
                    windows = (args.steady, args.active)
                    results.append(run_service(label, url, env, targets, meter_admin, *windows))
                finally:
                    asyncio.run(drop_database(name))
    finally:
        plane.stop()
    kube, sim = results
    summary = {
        "bench": "kube_scale",
        "scalers": args.scalers,
        "namespaces": args.namespaces,
        "nodes": nodes,
        "backend": args.backend,
        "results": results,
        "cpu_ratio_active_kube_vs_simulated": round(
            kube["active"]["cpu_cores"] / max(sim["active"]["cpu_cores"], 1e-9), 2
        ),
    }
    print(json.dumps(summary))
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
