"""A real Kubernetes control plane for the e2e tier and bench/kube_scale.py, and a small admin
client for it (what a test would otherwise do with kubectl).

`ControlPlane.start(assets)` runs `ASSETS/up start` (etcd, kube-apiserver, controller-manager,
scheduler and KWOK's fake nodes; see ../shared/kube/README.md) with a state folder and ports of
its own, so several sessions on one machine never meet; `stop()` runs `up stop`. The folder is
named by CIUIC_KUBE_ASSETS, as envtest's binaries are by KUBEBUILDER_ASSETS.

`Admin` talks to the API server with the cluster-admin token over plain HTTPS (httpx), not
through kubernetes-asyncio: the code under test and the test's own view of the cluster never
share a client library.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import json
import os
import random
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

__all__ = [
    "ASSETS_ENV",
    "Admin",
    "ControlPlane",
    "KubeError",
    "Recorder",
    "deployment",
    "kubeconfig",
    "pod_ready",
    "statefulset",
    "wait_until",
]

ASSETS_ENV = "CIUIC_KUBE_ASSETS"
T = TypeVar("T")


def _ports_free(base: int, count: int) -> bool:
    for port in range(base, base + count):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def _free_base(count: int = 6) -> int:
    """A base port with `count` free ports after it, below the ephemeral range (32768+), so
    no outgoing connection takes one between this check and the binds."""
    for _ in range(200):
        base = random.randrange(20000, 32000 - count)
        if _ports_free(base, count):
            return base
    raise RuntimeError("no 6 consecutive free ports in 20000-32000")


@dataclass
class ControlPlane:
    assets: Path  # the folder holding `up`
    state: Path  # KUBE_DIR: logs, kubeconfig, etcd data
    port_base: int
    ready_delay_ms: int
    nodes: int

    @property
    def server(self) -> str:
        return f"https://127.0.0.1:{self.port_base}"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state / "admin.kubeconfig"

    @property
    def admin_token(self) -> str:
        return (self.state / "pki" / "tokens.csv").read_text().split(",", 1)[0]

    @property
    def ca_pem(self) -> bytes:
        """The API server's serving certificate and its CA: enough to verify TLS."""
        return (self.state / "run" / "apiserver-certs" / "apiserver.crt").read_bytes()

    @property
    def etcd_url(self) -> str:
        return f"http://127.0.0.1:{self.port_base + 1}"

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "KUBE_DIR": str(self.state),
            "KUBE_PORT_BASE": str(self.port_base),
            "KUBE_READY_DELAY_MS": str(self.ready_delay_ms),
            "KUBE_NODES": str(self.nodes),
        }

    def _up(self, command: str, timeout_s: float) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.assets / "up"), command],
            env=self._env(),
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
        )

    @classmethod
    def start(
        cls,
        assets: Path,
        *,
        state: Path | None = None,
        ready_delay_ms: int = 1000,
        nodes: int = 2,
        timeout_s: float = 240.0,
    ) -> ControlPlane:
        """Start it (the first start on a machine unpacks the binaries, ~10 s more);
        RuntimeError with the logs' tail when it does not come up."""
        plane = cls(
            assets=assets,
            state=state or Path(tempfile.mkdtemp(prefix="ciuic-kube-")),
            port_base=_free_base(),
            ready_delay_ms=ready_delay_ms,
            nodes=nodes,
        )
        # `up` unpacks the binaries into a shared cache on first use: one unpacker at a time.
        lock = Path(tempfile.gettempdir()) / "ciuic-kube-unpack.lock"
        with lock.open("w") as held:
            fcntl.flock(held, fcntl.LOCK_EX)
            done = plane._up("start", timeout_s)
        if done.returncode != 0:
            logs = "".join(
                f"\n--- {log.name}\n{log.read_text(errors='replace')[-1500:]}"
                for log in sorted((plane.state / "logs").glob("*.log"))
            )
            plane.stop()
            raise RuntimeError(f"`up start` failed ({done.returncode}): {done.stderr}{logs}")
        # `up` takes any /readyz body holding "ok" for ready, and a failing one lists the
        # checks that passed ("[+]ping ok"): wait for a 200, or the RBAC bootstrap roles (what
        # every authenticated user may do) can still be missing.
        with plane.admin() as admin:
            wait_until(lambda: admin.http.get("/readyz").status_code == 200, 60, "/readyz 200")
        return plane

    def stop(self) -> None:
        """SIGKILL, in `up stop`'s order (KWOK and the controllers, then the API server, then
        etcd): the state is thrown away, and `up stop`'s SIGTERMs take ~2 s a process. What
        is left (a process that outlived it) gets `up stop`."""
        run = self.state / "run"
        for name in ("kwok", "scheduler", "kcm", "apiserver", "etcd"):
            pidfile = run / f"{name}.pid"
            try:
                pid = int(pidfile.read_text())
            except (OSError, ValueError):
                continue
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline and _alive(pid):
                    time.sleep(0.02)
            if not _alive(pid):
                pidfile.unlink(missing_ok=True)
        if any(run.glob("*.pid")):
            self._up("stop", 120)

    def admin(self) -> Admin:
        return Admin(self.server, self.admin_token)


def _alive(pid: int) -> bool:
    """Running (a zombie of ours counts as gone: `up` started it, not us)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def kubeconfig(server: str, token: str, ca_pem: bytes | None, namespace: str = "default") -> str:
    """A kubeconfig with one bearer token; TLS verified against `ca_pem` when given."""
    cluster: dict[str, Any] = {"server": server}
    if ca_pem is None:
        cluster["insecure-skip-tls-verify"] = True
    else:
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode()
    return yaml.safe_dump(
        {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "e2e", "cluster": cluster}],
            "users": [{"name": "e2e", "user": {"token": token}}],
            "contexts": [
                {
                    "name": "e2e",
                    "context": {"cluster": "e2e", "user": "e2e", "namespace": namespace},
                }
            ],
            "current-context": "e2e",
        }
    )


class KubeError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:500]}")
        self.status = status


# kind -> (API path prefix, plural, namespaced), for what the tests and the manifests use.
KINDS: dict[str, tuple[str, str, bool]] = {
    "Namespace": ("/api/v1", "namespaces", False),
    "ServiceAccount": ("/api/v1", "serviceaccounts", True),
    "Secret": ("/api/v1", "secrets", True),
    "Service": ("/api/v1", "services", True),
    "Pod": ("/api/v1", "pods", True),
    "Deployment": ("/apis/apps/v1", "deployments", True),
    "StatefulSet": ("/apis/apps/v1", "statefulsets", True),
    "ReplicaSet": ("/apis/apps/v1", "replicasets", True),
    "Lease": ("/apis/coordination.k8s.io/v1", "leases", True),
    "PodDisruptionBudget": ("/apis/policy/v1", "poddisruptionbudgets", True),
    "Role": ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    "RoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "rolebindings", True),
    "ClusterRole": ("/apis/rbac.authorization.k8s.io/v1", "clusterroles", False),
    "ClusterRoleBinding": ("/apis/rbac.authorization.k8s.io/v1", "clusterrolebindings", False),
}


class Admin:
    """The cluster-admin's view: plain REST calls, JSON in and out."""

    def __init__(self, server: str, token: str) -> None:
        self.http = httpx.Client(
            base_url=server,
            headers={"Authorization": f"Bearer {token}"},
            verify=False,  # the test's own view; the code under test verifies (see kubeconfig)
            timeout=30,
        )

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Admin:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @staticmethod
    def path(kind: str, namespace: str | None = None, name: str = "", sub: str = "") -> str:
        prefix, plural, namespaced = KINDS[kind]
        where = f"/namespaces/{namespace}" if namespaced and namespace else ""
        tail = f"/{name}" if name else ""
        return f"{prefix}{where}/{plural}{tail}" + (f"/{sub}" if sub else "")

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        content_type: str = "application/json",
        params: dict[str, str] | None = None,
    ) -> dict[str, Any]:
        content = None
        if body is not None:
            content = body if isinstance(body, str | bytes) else json.dumps(body).encode()
        response = self.http.request(
            method, path, content=content, params=params, headers={"Content-Type": content_type}
        )
        if response.status_code >= 400:
            raise KubeError(response.status_code, response.text)
        found: dict[str, Any] = response.json() if response.content else {}
        return found

    def get(self, kind: str, namespace: str | None, name: str, sub: str = "") -> dict[str, Any]:
        return self.request("GET", self.path(kind, namespace, name, sub))

    def find(self, kind: str, namespace: str | None, name: str) -> dict[str, Any] | None:
        try:
            return self.get(kind, namespace, name)
        except KubeError as exc:
            if exc.status == 404:
                return None
            raise

    def items(self, kind: str, namespace: str | None, selector: str = "") -> list[dict[str, Any]]:
        params = {"labelSelector": selector} if selector else None
        items: list[dict[str, Any]] = self.request(
            "GET", self.path(kind, namespace), params=params
        )["items"]
        return items

    def create(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        return self.request("POST", self.path(obj["kind"], meta.get("namespace")), obj)

    def apply(
        self, obj: dict[str, Any], manager: str = "e2e-admin", *, dry_run: bool = False
    ) -> dict[str, Any]:
        """Server-side apply, as `kubectl apply --server-side --force-conflicts` does; with
        `dry_run`, validated and admitted by the API server but not stored."""
        meta = obj["metadata"]
        params = {"fieldManager": manager, "force": "true"}
        if dry_run:
            params["dryRun"] = "All"
        return self.request(
            "PATCH",
            self.path(obj["kind"], meta.get("namespace"), meta["name"]),
            yaml.safe_dump(obj),
            content_type="application/apply-patch+yaml",
            params=params,
        )

    def patch(
        self,
        kind: str,
        namespace: str | None,
        name: str,
        body: Any,
        *,
        sub: str = "",
        content_type: str = "application/merge-patch+json",
    ) -> dict[str, Any]:
        path = self.path(kind, namespace, name, sub)
        return self.request("PATCH", path, body, content_type=content_type)

    def delete(self, kind: str, namespace: str | None, name: str) -> None:
        with contextlib.suppress(KubeError):
            self.request("DELETE", self.path(kind, namespace, name))

    def watch(self, kind: str, namespace: str) -> Recorder:
        """A `Recorder` of every event of `kind` in `namespace`, from now on."""
        token = str(self.http.headers["Authorization"]).removeprefix("Bearer ")
        return Recorder(str(self.http.base_url), token, self.path(kind, namespace))

    def scale(self, kind: str, namespace: str, name: str, replicas: int) -> dict[str, Any]:
        """`kubectl scale`: a merge patch of the scale subresource."""
        body = {"spec": {"replicas": replicas}}
        return self.patch(kind, namespace, name, body, sub="scale")

    def token(self, namespace: str, service_account: str, seconds: int = 3600) -> str:
        """A token for the ServiceAccount, from the TokenRequest API."""
        found = self.request(
            "POST",
            self.path("ServiceAccount", namespace, service_account, "token"),
            {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
             "spec": {"expirationSeconds": seconds}},
        )  # fmt: skip
        token: str = found["status"]["token"]
        return token

    def pods(self, namespace: str, selector: str) -> list[dict[str, Any]]:
        return self.items("Pod", namespace, selector)

    def metrics(self, *names: str) -> dict[str, list[tuple[dict[str, str], float]]]:
        """Samples of the named metrics from the API server's /metrics: (labels, value)."""
        wanted = set(names)
        found: dict[str, list[tuple[dict[str, str], float]]] = {n: [] for n in names}
        for line in self.http.get("/metrics").text.splitlines():
            m = _SAMPLE.match(line)
            if m and m.group(1) in wanted:
                labels = dict(re.findall(r'(\w+)="([^"]*)"', m.group(2) or ""))
                found[m.group(1)].append((labels, float(m.group(3))))
        return found


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:{(.*)})? (\S+)$")


def pod_ready(pod: dict[str, Any]) -> bool:
    conditions = pod.get("status", {}).get("conditions") or []
    return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)


def _pod_template(
    app: str,
    *,
    ready_s: float,
    grace_s: int,
    image: str,
    resources: dict[str, Any] | None,
) -> dict[str, Any]:
    delay = f"{round(ready_s * 1000)}ms"
    container: dict[str, Any] = {"name": "model", "image": image}
    if resources is not None:
        container["resources"] = resources
    return {
        "metadata": {
            "labels": {"app": app},
            # KWOK's pod-ready stage: Ready exactly `ready_s` after the pod runs (the jitter
            # equal to the delay: none), whatever the control plane's default.
            "annotations": {
                "pod-ready.stage.kwok.x-k8s.io/delay": delay,
                "pod-ready.stage.kwok.x-k8s.io/jitter-delay": delay,
            },
        },
        "spec": {
            "terminationGracePeriodSeconds": grace_s,
            "nodeSelector": {"type": "kwok"},
            "tolerations": [
                {"key": "kwok.x-k8s.io/node", "operator": "Exists", "effect": "NoSchedule"}
            ],
            "containers": [container],
        },
    }


def deployment(
    name: str,
    namespace: str,
    *,
    replicas: int = 1,
    ready_s: float = 0.5,
    grace_s: int = 1,
    image: str = "deepseek:7b",
    resources: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A Deployment whose pods KWOK runs: Ready `ready_s` after start, gone `grace_s` after
    their deletion."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app": name}},
            "template": _pod_template(
                name, ready_s=ready_s, grace_s=grace_s, image=image, resources=resources
            ),
        },
    }


def statefulset(
    name: str, namespace: str, *, replicas: int = 1, ready_s: float = 0.5
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "replicas": replicas,
            "serviceName": name,
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": {"app": name}},
            "template": _pod_template(
                name, ready_s=ready_s, grace_s=1, image="db:1", resources=None
            ),
        },
    }


def wait_until(
    check: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.05
) -> T:
    """Poll `check()` until it returns something truthy (returned); AssertionError naming
    `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        time.sleep(interval_s)


class Recorder:
    """Watches one kind of object in a namespace from a thread of its own (and its own HTTP
    client): every event, with the monotonic time it arrived. The first events are the
    objects already there (ADDED), as a watch without a resourceVersion sends them."""

    def __init__(self, server: str, token: str, path: str) -> None:
        self.events: list[tuple[float, str, dict[str, Any]]] = []
        self._http = httpx.Client(
            base_url=server, headers={"Authorization": f"Bearer {token}"}, verify=False,
            timeout=httpx.Timeout(10, read=None),
        )  # fmt: skip
        self._path = path
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"watch {path}")
        self._thread.start()

    def _run(self) -> None:
        version: str | None = None
        while not self._stopping.is_set():
            # Short watches, resumed from the last version: stop() waits for one to end.
            params = {"watch": "1", "timeoutSeconds": "1"}
            if version:
                params["resourceVersion"] = version
            try:
                with self._http.stream("GET", self._path, params=params) as response:
                    for line in response.iter_lines():
                        if not line:
                            continue
                        event = json.loads(line)
                        obj = event["object"]
                        version = obj["metadata"]["resourceVersion"]
                        self.events.append((time.monotonic(), event["type"], obj))
            except (httpx.HTTPError, RuntimeError):
                if self._stopping.is_set():
                    return
                time.sleep(0.1)

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join(timeout=5)
        self._http.close()

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
