"""A small Kubernetes API server for tests: just what kubernetes-asyncio calls on our behalf.

It is a real HTTP server (Starlette under uvicorn, in a thread, on a free port), so the client
library, its (de)serialisation, aiohttp and our error mapping all run for real. Objects are
shaped like the API server's (kind, apiVersion, metadata with resourceVersion, Status objects
for errors) so the generated models accept them.

What it models:

- apps/v1 deployments and statefulsets: get, list, watch, merge patch, and the `scale` subresource
  (get, merge patch, replace) with autoscaling/v1 Scale objects and resourceVersion
  preconditions (409 Conflict on a stale one). A built-in "controller" creates and deletes
  pods to follow spec.replicas and keeps the workload's status counts. A Deployment's template
  change (merge or strategic merge patch; it bumps metadata.generation) rolls out like a
  RollingUpdate with the default 25 %/25 % surge and unavailability: new pods take their cold
  start, old ones leave as new ones become Ready, and status.updatedReplicas follows.
- core/v1 pods: get, list and watch (JSON lines) with a label selector. One resourceVersion
  counter for everything, like etcd; a watch from a version older than the last compaction
  gets an ERROR event carrying a 410 Expired Status, as the real server sends.
- Pods become Ready a configurable cold start after creation, on a fake clock that the test
  advances (`advance`), so measured cold starts are exact; `realtime=True` follows the wall
  clock instead. Readiness gates hold Ready back until their condition is set.
- coordination.k8s.io/v1 leases: get, create (409 AlreadyExists), replace (409 on a stale
  resourceVersion), delete; MicroTime fields are checked strictly.
- 404 for missing objects, 403 for configured (verb, resource) pairs, 401 without the token
  when one is required, and fault injection: the next N matching requests fail with a status,
  wait, or meet a concurrent writer; watch streams can be stalled, dropped and expired.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import math
import re
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from app.kube.cluster import strategic_merge  # the API server's merge, as the adapter reads it

__all__ = ["KubeEmulator", "Selector"]

Obj = dict[str, Any]

WORKLOADS = {"deployments": "Deployment", "statefulsets": "StatefulSet"}
EPOCH = 1_800_000_000.0  # 2027-01-15: a fixed, readable start for the fake clock
MICRO_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}(Z|[+-]\d\d:\d\d)$")


def _ts(t: float) -> str:
    """metav1.Time: whole seconds, as the API server writes them."""
    return datetime.fromtimestamp(int(t), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _merge(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = _merge(out.get(key), value)
    return out


class Selector:
    """A label selector string: `a=b`, `a==b`, `a!=b`, `a in (x,y)`, `a notin (x)`, `a`, `!a`."""

    def __init__(self, text: str | None) -> None:
        self.terms: list[Callable[[dict[str, str]], bool]] = []
        for raw in re.split(r",(?![^()]*\))", text or ""):
            term = raw.strip()
            if term:
                self.terms.append(self._parse(term))

    @staticmethod
    def _parse(term: str) -> Callable[[dict[str, str]], bool]:
        m = re.fullmatch(r"([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)", term)
        if m:
            key, op, values = m[1], m[2], {v.strip() for v in m[3].split(",")}
            if op == "in":
                return lambda labels: labels.get(key) in values
            return lambda labels: labels.get(key) not in values
        m = re.fullmatch(r"([\w./-]+)\s*(==|=|!=)\s*([\w./-]*)", term)
        if m:
            key, op, value = m[1], m[2], m[3]
            if op == "!=":
                return lambda labels: labels.get(key) != value
            return lambda labels: labels.get(key) == value
        if term.startswith("!"):
            return lambda labels: term[1:] not in labels
        if re.fullmatch(r"[\w./-]+", term):
            return lambda labels: term in labels
        raise ValueError(f"unable to parse requirement: {term!r}")

    def matches(self, labels: dict[str, str]) -> bool:
        return all(term(labels) for term in self.terms)


@dataclass
class _Fault:
    remaining: int
    verb: str | None
    resource: str | None
    status: int | None = None
    delay_s: float = 0.0
    race: bool = False  # a concurrent writer bumps the object's resourceVersion first
    agent: str | None = None  # only requests whose User-Agent contains this

    def matches(self, verb: str, resource: str, agent: str) -> bool:
        return (
            (self.verb is None or self.verb == verb)
            and (self.resource is None or self.resource == resource)
            and (self.agent is None or self.agent in agent)
        )


@dataclass
class _PodSim:
    workload: tuple[str, str, str]  # (resource, namespace, name)
    created: float
    cold_start_s: float
    containers_ready_at: float | None = None


@dataclass
class Seen:
    verb: str
    resource: str
    namespace: str
    name: str
    content_type: str = ""
    query: dict[str, str] = field(default_factory=dict)
    at: float = field(default_factory=time.monotonic)  # when it arrived (benchmarks)


class _ApiError(Exception):
    def __init__(self, code: int, reason: str, message: str, details: Obj | None = None) -> None:
        super().__init__(message)
        self.code, self.reason, self.message, self.details = code, reason, message, details


class KubeEmulator:
    """The API server. Start with `with KubeEmulator() as kube:`; `kube.url` is its address."""

    def __init__(
        self,
        *,
        cold_start_s: float = 30.0,
        realtime: bool = False,
        token: str | None = None,
        start: float = EPOCH,
    ) -> None:
        self.cold_start_s = cold_start_s
        self.realtime = realtime
        self.token = token
        self._fake_now = start
        self._lock = threading.RLock()
        self._objects: dict[tuple[str, str, str], Obj] = {}
        self._pods: dict[tuple[str, str], _PodSim] = {}
        self._cold_starts: dict[tuple[str, str, str], float] = {}
        self._rv = 1000
        self._log: list[tuple[int, str, str, str, Obj]] = []  # rv, type, resource, ns, object
        self._compacted = 0  # a watch from below this version has missed events: 410
        self._serial = 0
        self._forbidden: set[tuple[str, str]] = set()
        self.resize_supported = True  # pods/resize exists (Kubernetes >= 1.33)
        self.resizes: list[tuple[str, Any]] = []  # (pod, patch) as received
        self._faults: list[_Fault] = []
        self._drop_generation = 0
        self._stalled = False
        self._closing = False
        self._wakeup: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self.requests: list[Seen] = []
        self.watch_requests = 0
        self._delayed_answered = 0  # requests answered after waiting out an injected delay
        self.url = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    # ---- lifecycle -------------------------------------------------------------------------

    def __enter__(self) -> KubeEmulator:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> None:
        port = _free_port()
        config = uvicorn.Config(
            self._app(),
            host="127.0.0.1",
            port=port,
            log_config=None,
            access_log=False,
            lifespan="on",
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True, name="kube-emu")
        self._thread.start()
        deadline = time.monotonic() + 20
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the Kubernetes emulator did not start")
            time.sleep(0.01)
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self._closing = True
        self._notify()
        if self._server is not None and self._thread is not None:
            self._server.should_exit = True
            self._thread.join(timeout=10)

    def kubeconfig(self, *, token: str | None = None, namespace: str = "default") -> Obj:
        """A kubeconfig document pointing at this server (write it to a file as YAML/JSON)."""
        user: Obj = {"token": token} if token else {}
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "emu", "cluster": {"server": self.url}}],
            "users": [{"name": "emu", "user": user}],
            "contexts": [
                {
                    "name": "emu",
                    "context": {"cluster": "emu", "user": "emu", "namespace": namespace},
                }
            ],
            "current-context": "emu",
        }

    # ---- the clock -------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return time.time() if self.realtime else self._fake_now

    def advance(self, seconds: float) -> None:
        """Move the fake clock; pods whose cold start has elapsed become Ready (at the exact
        instant they were due, however far the clock jumps)."""
        with self._lock:
            self._fake_now += seconds
            self._tick()

    # ---- test controls ---------------------------------------------------------------------

    def add_workload(
        self,
        name: str,
        *,
        namespace: str = "default",
        replicas: int = 1,
        kind: str = "Deployment",
        labels: dict[str, str] | None = None,
        cold_start_s: float | None = None,
        readiness_gates: tuple[str, ...] = (),
        annotations: dict[str, str] | None = None,
        ready: bool = False,
        resources: dict[str, dict[str, str]] | None = None,
    ) -> Obj:
        """A Deployment (or StatefulSet) and its pods; `ready` makes the first pods Ready now."""
        resource = "deployments" if kind == "Deployment" else "statefulsets"
        labels = labels or {"app": name}
        with self._lock:
            obj: Obj = {
                "apiVersion": "apps/v1",
                "kind": kind,
                "metadata": {
                    "name": name,
                    "namespace": namespace,
                    "uid": str(uuid.uuid4()),
                    "generation": 1,
                    "creationTimestamp": _ts(self.now),
                    "labels": dict(labels),
                    "annotations": {},
                },
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": dict(labels)},
                    "template": {
                        "metadata": {"labels": dict(labels), "annotations": annotations or {}},
                        "spec": {
                            "containers": [
                                {"name": "model", "image": "deepseek:7b"}
                                | ({"resources": resources} if resources else {})
                            ],
                            "readinessGates": [{"conditionType": g} for g in readiness_gates],
                        },
                    },
                },
                "status": {"observedGeneration": 1, "replicas": 0},
            }
            if kind == "StatefulSet":
                obj["spec"]["serviceName"] = name
            if cold_start_s is not None:
                self._cold_starts[(resource, namespace, name)] = cold_start_s
            self._put("ADDED", resource, obj)
            self._sync_workload(resource, namespace, name)
            if ready:
                for sim in self._pods.values():
                    if sim.workload == (resource, namespace, name):
                        sim.cold_start_s = 0.0
                self._tick()
            return copy.deepcopy(self._objects[(resource, namespace, name)])

    def set_replicas(self, name: str, replicas: int, *, namespace: str = "default") -> None:
        """Someone else (kubectl, a rollout) scales the workload."""
        with self._lock:
            resource = self._workload_resource(namespace, name)
            obj = copy.deepcopy(self._objects[(resource, namespace, name)])
            obj["spec"]["replicas"] = replicas
            self._put("MODIFIED", resource, obj)
            self._sync_workload(resource, namespace, name)

    def touch(self, resource: str, name: str, *, namespace: str = "default") -> str:
        """A concurrent writer changes the object: its resourceVersion moves on (returned)."""
        with self._lock:
            obj = copy.deepcopy(self._objects[(resource, namespace, name)])
            version: str = self._put("MODIFIED", resource, obj)["metadata"]["resourceVersion"]
            return version

    def pod(self, name: str, *, namespace: str = "default") -> Obj:
        with self._lock:
            return copy.deepcopy(self._objects[("pods", namespace, name)])

    def workload(self, name: str, *, namespace: str = "default") -> Obj:
        with self._lock:
            resource = self._workload_resource(namespace, name)
            return copy.deepcopy(self._objects[(resource, namespace, name)])

    def pods(self, namespace: str = "default", selector: str | None = None) -> list[Obj]:
        sel = Selector(selector)
        with self._lock:
            return [
                copy.deepcopy(o)
                for (res, ns, _), o in sorted(self._objects.items())
                if res == "pods" and ns == namespace and sel.matches(o["metadata"]["labels"])
            ]

    def lease(self, name: str, *, namespace: str = "default") -> Obj | None:
        with self._lock:
            found = self._objects.get(("leases", namespace, name))
            return copy.deepcopy(found) if found else None

    def set_pod_annotation(
        self, name: str, key: str, value: str, *, namespace: str = "default"
    ) -> None:
        with self._lock:
            pod = copy.deepcopy(self._objects[("pods", namespace, name)])
            pod["metadata"].setdefault("annotations", {})[key] = value
            self._put("MODIFIED", "pods", pod)

    def set_pod_condition(
        self, name: str, ctype: str, status: bool, *, namespace: str = "default"
    ) -> None:
        """Set a readiness gate's condition (what the SDK's warm-up helper does)."""
        with self._lock:
            pod = copy.deepcopy(self._objects[("pods", namespace, name)])
            conditions = [c for c in pod["status"]["conditions"] if c["type"] != ctype]
            conditions.append(
                {"type": ctype, "status": str(status), "lastTransitionTime": _ts(self.now)}
            )
            pod["status"]["conditions"] = conditions
            self._refresh_ready(pod)
            self._put("MODIFIED", "pods", pod)
            self._update_status(self._pods[(namespace, name)].workload)

    def delete_pod(self, name: str, *, namespace: str = "default") -> None:
        """A pod dies (node lost, eviction); the controller replaces it."""
        with self._lock:
            sim = self._pods.pop((namespace, name))
            pod = self._objects.pop(("pods", namespace, name))
            self._rv += 1
            pod["metadata"]["resourceVersion"] = str(self._rv)
            self._record("DELETED", "pods", pod)
            self._sync_workload(*sim.workload)

    def forbid(self, verb: str, resource: str) -> None:
        """RBAC lacks (verb, resource), e.g. ("patch", "deployments/scale")."""
        with self._lock:
            self._forbidden.add((verb, resource))

    def allow(self, verb: str, resource: str) -> None:
        with self._lock:
            self._forbidden.discard((verb, resource))

    def fail(
        self,
        n: int,
        status: int = 500,
        *,
        verb: str | None = None,
        resource: str | None = None,
        agent: str | None = None,
    ) -> None:
        """The next `n` matching requests answer `status` with a Status object (`agent`:
        only a client whose User-Agent contains it, e.g. one replica of two)."""
        with self._lock:
            self._faults.append(_Fault(n, verb, resource, status=status, agent=agent))

    def delay(
        self,
        n: int,
        seconds: float,
        *,
        verb: str | None = None,
        resource: str | None = None,
        agent: str | None = None,
    ) -> None:
        """The next `n` matching requests wait `seconds` before being served."""
        with self._lock:
            self._faults.append(_Fault(n, verb, resource, delay_s=seconds, agent=agent))

    def race(self, n: int, *, verb: str = "patch", resource: str = "deployments/scale") -> None:
        """Just before each of the next `n` matching requests, another writer updates the
        object, so a resourceVersion precondition taken earlier is now stale (a real 409)."""
        with self._lock:
            self._faults.append(_Fault(n, verb, resource, race=True))

    def drop_watches(self) -> None:
        """Close every open watch stream (a proxy or API server restart)."""
        with self._lock:
            self._drop_generation += 1
        self._notify()

    @contextmanager
    def watches_stalled(self, *, expire: bool = True) -> Iterator[None]:
        """Open watch streams deliver nothing inside the block (a partition); on exit the
        history is compacted (`expire`) and the streams dropped, so a client resuming from its
        last resourceVersion gets 410 Gone and must list again."""
        with self._lock:
            self._stalled = True
        try:
            yield
        finally:
            with self._lock:
                if expire:
                    self._compacted = self._rv
                    self._log.clear()
                self._stalled = False
                self._drop_generation += 1
            self._notify()

    def compact(self) -> None:
        """Forget the event history: watches from any older resourceVersion get 410."""
        with self._lock:
            self._compacted = self._rv
            self._log.clear()

    def count(self, verb: str, resource: str) -> int:
        with self._lock:
            return sum(1 for r in self.requests if r.verb == verb and r.resource == resource)

    @property
    def delayed_answered(self) -> int:
        """Requests held by `delay` and answered since: once it counts every delay injected,
        a request whose client gave up on it has been applied (or refused) by now."""
        with self._lock:
            return self._delayed_answered

    # ---- the store -------------------------------------------------------------------------

    def _notify(self) -> None:
        loop = self._loop
        if loop is not None and not loop.is_closed():
            with suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(self._wake)

    def _wake(self) -> None:
        if self._wakeup is not None:
            self._wakeup.set()
        self._wakeup = asyncio.Event()

    def _record(self, etype: str, resource: str, obj: Obj) -> None:
        self._log.append(
            (self._rv, etype, resource, obj["metadata"]["namespace"], copy.deepcopy(obj))
        )
        self._notify()

    def _put(self, etype: str, resource: str, obj: Obj) -> Obj:
        """Store a new version of `obj` under the next resourceVersion and log the event."""
        self._rv += 1
        meta = obj["metadata"]
        meta["resourceVersion"] = str(self._rv)
        self._objects[(resource, meta["namespace"], meta["name"])] = obj
        self._record(etype, resource, obj)
        return obj

    def _workload_resource(self, namespace: str, name: str) -> str:
        for resource in WORKLOADS:
            if (resource, namespace, name) in self._objects:
                return resource
        raise KeyError(f"no workload {namespace}/{name}")

    def _sync_workload(self, resource: str, namespace: str, name: str) -> None:
        """The controller: create or delete pods until they match spec.replicas."""
        obj = self._objects[(resource, namespace, name)]
        want = int(obj["spec"].get("replicas", 1))
        mine = sorted(
            (key for key, sim in self._pods.items() if sim.workload == (resource, namespace, name)),
            key=lambda key: (self._pods[key].created, key[1]),
        )
        template = obj["spec"]["template"]
        template_hash = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[
            :10
        ]
        cold_start = self._cold_starts.get((resource, namespace, name), self.cold_start_s)
        if resource == "deployments" and self._rolling(mine, template_hash):
            self._roll(obj, mine, template, template_hash, cold_start)
            self._update_status((resource, namespace, name))
            return
        if resource == "statefulsets":
            taken = {key[1] for key in mine}
            ordinal = 0
            while len(mine) < want:
                pod_name = f"{name}-{ordinal}"
                ordinal += 1
                if pod_name not in taken:
                    mine.append(self._create_pod(obj, pod_name, template, "", cold_start))
        while len(mine) < want:
            self._serial += 1
            suffix = hashlib.sha256(f"{name}{self._serial}".encode()).hexdigest()[:5]
            pod_name = f"{name}-{template_hash}-{suffix}"
            mine.append(self._create_pod(obj, pod_name, template, template_hash, cold_start))
        if len(mine) > want:
            # Like the ReplicaSet controller: not-ready pods go first, then the youngest.
            def victim_order(key: tuple[str, str]) -> tuple[bool, float, str]:
                sim = self._pods[key]
                return (sim.containers_ready_at is not None, -sim.created, key[1])

            for key in sorted(mine, key=victim_order)[: len(mine) - want]:
                del self._pods[key]
                pod = self._objects.pop(("pods", *key))
                self._rv += 1
                pod["metadata"]["resourceVersion"] = str(self._rv)
                self._record("DELETED", "pods", pod)
        self._update_status((resource, namespace, name))

    def _pod_hash(self, key: tuple[str, str]) -> str:
        labels: dict[str, str] = self._objects[("pods", *key)]["metadata"]["labels"]
        return labels.get("pod-template-hash", "")

    def _rolling(self, mine: list[tuple[str, str]], template_hash: str) -> bool:
        return any(self._pod_hash(key) != template_hash for key in mine)

    def _is_ready(self, key: tuple[str, str]) -> bool:
        conditions = self._objects[("pods", *key)]["status"]["conditions"]
        return any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)

    def _roll(
        self,
        obj: Obj,
        mine: list[tuple[str, str]],
        template: Obj,
        template_hash: str,
        cold_start: float,
    ) -> None:
        """A RollingUpdate step with the defaults (maxSurge 25 % up, maxUnavailable 25 %
        down): add pods of the new template while the total stays within replicas + surge,
        remove old pods (not-ready ones first) while enough pods stay available. Called again
        whenever a pod becomes Ready."""
        name, namespace = obj["metadata"]["name"], obj["metadata"]["namespace"]
        want = int(obj["spec"].get("replicas", 1))
        surge, unavailable = math.ceil(want * 0.25), math.floor(want * 0.25)
        if surge == 0 and unavailable == 0:
            unavailable = 1
        changed = True
        while changed:  # create, then remove, until neither can go further
            changed = False
            mine = self._pods_of(obj)
            new = [k for k in mine if self._pod_hash(k) == template_hash]
            old = [k for k in mine if self._pod_hash(k) != template_hash]
            total = len(mine)
            while total < want + surge and len(new) < want:
                self._serial += 1
                suffix = hashlib.sha256(f"{name}{self._serial}".encode()).hexdigest()[:5]
                pod_name = f"{name}-{template_hash}-{suffix}"
                new.append(self._create_pod(obj, pod_name, template, template_hash, cold_start))
                total += 1
            ready = sum(1 for k in new + old if self._is_ready(k))
            for key in sorted(old, key=lambda k: (self._is_ready(k), -self._pods[k].created)):
                if self._is_ready(key):
                    if ready - 1 < want - unavailable:
                        break
                    ready -= 1
                del self._pods[key]
                pod = self._objects.pop(("pods", *key))
                self._rv += 1
                pod["metadata"]["resourceVersion"] = str(self._rv)
                self._record("DELETED", "pods", pod)
                changed = True
        if not any(self._pod_hash(k) != template_hash for k in self._pods_of(obj)):
            self._sync_workload("deployments", namespace, name)  # done: trim to replicas

    def _pods_of(self, obj: Obj) -> list[tuple[str, str]]:
        workload = ("deployments", obj["metadata"]["namespace"], obj["metadata"]["name"])
        return [key for key, sim in self._pods.items() if sim.workload == workload]

    def _create_pod(
        self, owner: Obj, name: str, template: Obj, template_hash: str, cold_start: float
    ) -> tuple[str, str]:
        namespace = owner["metadata"]["namespace"]
        labels = dict(template["metadata"]["labels"])
        if template_hash:
            labels["pod-template-hash"] = template_hash
        now = self.now
        owner_kind = "ReplicaSet" if owner["kind"] == "Deployment" else owner["kind"]
        owner_name = (
            f"{owner['metadata']['name']}-{template_hash}"
            if template_hash
            else owner["metadata"]["name"]
        )
        pod: Obj = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": str(uuid.uuid4()),
                "creationTimestamp": _ts(now),
                "labels": labels,
                "annotations": dict(template["metadata"].get("annotations") or {}),
                "ownerReferences": [
                    {
                        "apiVersion": "apps/v1",
                        "kind": owner_kind,
                        "name": owner_name,
                        "uid": owner["metadata"]["uid"],
                        "controller": True,
                    }
                ],
            },
            "spec": copy.deepcopy(template["spec"]),
            "status": {
                "phase": "Pending",
                "conditions": [
                    {"type": "PodScheduled", "status": "True", "lastTransitionTime": _ts(now)},
                    {
                        "type": "ContainersReady",
                        "status": "False",
                        "lastTransitionTime": _ts(now),
                    },
                    {
                        "type": "Ready",
                        "status": "False",
                        "lastTransitionTime": _ts(now),
                        "reason": "ContainersNotReady",
                    },
                ],
            },
        }
        sim = _PodSim(
            (WORKLOAD_RESOURCE[owner["kind"]], namespace, owner["metadata"]["name"]),
            now,
            cold_start,
        )
        self._pods[(namespace, name)] = sim
        self._put("ADDED", "pods", pod)
        return (namespace, name)

    def _tick(self) -> None:
        due = sorted(
            (sim.created + sim.cold_start_s, key)
            for key, sim in self._pods.items()
            if sim.containers_ready_at is None and sim.created + sim.cold_start_s <= self.now
        )
        touched: set[tuple[str, str, str]] = set()
        for at, key in due:
            sim = self._pods[key]
            sim.containers_ready_at = at
            pod = copy.deepcopy(self._objects[("pods", *key)])
            pod["status"]["phase"] = "Running"
            for cond in pod["status"]["conditions"]:
                if cond["type"] == "ContainersReady":
                    cond.update(status="True", lastTransitionTime=_ts(at))
            self._refresh_ready(pod)
            self._put("MODIFIED", "pods", pod)
            touched.add(sim.workload)
        for workload in touched:
            if workload[0] == "deployments" and workload in self._objects:
                self._sync_workload(*workload)  # a rolling update moves on when pods are Ready
            self._update_status(workload)

    def _refresh_ready(self, pod: Obj) -> None:
        """Ready = containers ready and every readiness gate's condition True; its
        lastTransitionTime is when the last of those became true."""
        conditions = {c["type"]: c for c in pod["status"]["conditions"]}
        needed = ["ContainersReady"] + [
            g["conditionType"] for g in pod["spec"].get("readinessGates") or []
        ]
        ready = all(conditions.get(t, {}).get("status") == "True" for t in needed)
        ready_cond = conditions["Ready"]
        if ready and ready_cond["status"] != "True":
            ready_cond.update(
                status="True",
                lastTransitionTime=max(conditions[t]["lastTransitionTime"] for t in needed),
            )
            ready_cond.pop("reason", None)
        elif not ready and ready_cond["status"] == "True":
            ready_cond.update(
                status="False", lastTransitionTime=_ts(self.now), reason="ReadinessGatesNotReady"
            )

    def _update_status(self, workload: tuple[str, str, str]) -> None:
        obj = self._objects.get(workload)
        if obj is None:
            return
        pods = [
            self._objects[("pods", *key)]
            for key, sim in self._pods.items()
            if sim.workload == workload
        ]
        ready = sum(
            1
            for p in pods
            if any(
                c["type"] == "Ready" and c["status"] == "True" for c in p["status"]["conditions"]
            )
        )
        current = hashlib.sha256(
            json.dumps(obj["spec"]["template"], sort_keys=True).encode()
        ).hexdigest()[:10]
        updated = sum(
            1
            for p in pods
            if workload[0] != "deployments"
            or p["metadata"]["labels"].get("pod-template-hash") == current
        )
        status = {
            "observedGeneration": obj["metadata"]["generation"],
            "replicas": len(pods),
            "updatedReplicas": updated,
            "readyReplicas": ready,
            "availableReplicas": ready,
        }
        if obj.get("status") != status:
            obj = copy.deepcopy(obj)
            obj["status"] = status
            self._put("MODIFIED", workload[0], obj)

    # ---- HTTP ------------------------------------------------------------------------------

    def _app(self) -> Starlette:
        @asynccontextmanager
        async def lifespan(_: Starlette) -> AsyncIterator[None]:
            self._loop = asyncio.get_running_loop()
            self._wake()
            ticker = asyncio.create_task(self._realtime_ticker()) if self.realtime else None
            yield
            if ticker is not None:
                ticker.cancel()

        apps = "/apis/apps/v1/namespaces/{ns}/{res}"
        pods = "/api/v1/namespaces/{ns}/pods"
        leases = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"
        routes = [
            Route(apps, self._workload_collection, methods=["GET"]),
            Route(apps + "/{name}", self._workload_item, methods=["GET", "PATCH"]),
            Route(apps + "/{name}/scale", self._scale, methods=["GET", "PATCH", "PUT"]),
            Route(pods, self._pod_collection, methods=["GET"]),
            Route(pods + "/{name}", self._pod_item, methods=["GET"]),
            Route(pods + "/{name}/resize", self._pod_resize, methods=["PATCH"]),
            Route(leases, self._lease_collection, methods=["GET", "POST"]),
            Route(leases + "/{name}", self._lease_item, methods=["GET", "PUT", "DELETE"]),
        ]
        return Starlette(routes=routes, lifespan=lifespan)

    async def _realtime_ticker(self) -> None:
        while not self._closing:
            with self._lock:
                self._tick()
            await asyncio.sleep(0.02)

    @staticmethod
    def _status(code: int, reason: str, message: str, details: Obj | None = None) -> JSONResponse:
        body = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": message,
            "reason": reason,
            "code": code,
        }
        if details:
            body["details"] = details
        return JSONResponse(body, status_code=code)

    async def _guard(self, request: Request, verb: str, resource: str, ns: str, name: str) -> None:
        """Record the request, then apply auth, RBAC and the injected faults, in that order."""
        group = {"pods": "", "leases": "coordination.k8s.io"}.get(resource.split("/")[0], "apps")
        with self._lock:
            self.requests.append(
                Seen(
                    verb,
                    resource,
                    ns,
                    name,
                    request.headers.get("content-type", ""),
                    dict(request.query_params),
                )
            )
            if verb == "watch":
                self.watch_requests += 1
            fault = next(
                (
                    f
                    for f in self._faults
                    if f.remaining > 0
                    and f.matches(verb, resource, request.headers.get("user-agent", ""))
                ),
                None,
            )
            if fault is not None:
                fault.remaining -= 1
                self._faults = [f for f in self._faults if f.remaining > 0]
            forbidden = (verb, resource) in self._forbidden
        if self.token is not None:
            auth = request.headers.get("authorization", "")
            if auth != f"Bearer {self.token}":
                raise _ApiError(401, "Unauthorized", "Unauthorized")
        if forbidden:
            what = (
                f'{resource.split("/")[0]}{"." + group if group else ""} "{name}"'
                if name
                else resource
            )
            raise _ApiError(
                403,
                "Forbidden",
                f'{what} is forbidden: User "system:serviceaccount:ciuic:ciuic" cannot {verb} '
                f'resource "{resource}" in API group "{group}" in the namespace "{ns}"',
                {"name": name, "group": group, "kind": resource.split("/")[0]},
            )
        if fault is None:
            return
        if fault.delay_s:
            request.state.delayed = True  # `_handle` counts it once answered
            await asyncio.sleep(fault.delay_s)
        if fault.race:
            with self._lock:
                base = resource.split("/")[0]
                if (base, ns, name) in self._objects:
                    self.touch(base, name, namespace=ns)
        if fault.status is not None:
            raise _ApiError(fault.status, "InternalError", f"injected failure ({fault.status})")

    async def _handle(
        self, request: Request, verb: str, resource: str, body: Callable[[], Any]
    ) -> Response:
        ns = request.path_params["ns"]
        name = request.path_params.get("name", "")
        try:
            await self._guard(request, verb, resource, ns, name)
            result = body()
        except _ApiError as exc:
            return self._status(exc.code, exc.reason, exc.message, exc.details)
        finally:
            if getattr(request.state, "delayed", False):
                with self._lock:
                    self._delayed_answered += 1
        if isinstance(result, Response):
            return result
        code = 201 if verb == "create" else 200
        return JSONResponse(result, status_code=code)

    def _not_found(self, resource: str, name: str) -> _ApiError:
        group = {"pods": "", "leases": "coordination.k8s.io"}.get(resource, "apps")
        qualified = f"{resource}.{group}" if group else resource
        return _ApiError(
            404,
            "NotFound",
            f'{qualified} "{name}" not found',
            {"name": name, "group": group, "kind": resource},
        )

    def _conflict(self, resource: str, name: str) -> _ApiError:
        group = {"pods": "", "leases": "coordination.k8s.io"}.get(resource, "apps")
        qualified = f"{resource}.{group}" if group else resource
        return _ApiError(
            409,
            "Conflict",
            f'Operation cannot be fulfilled on {qualified} "{name}": the object has been '
            "modified; please apply your changes to the latest version and try again",
            {"name": name, "group": group, "kind": resource},
        )

    @staticmethod
    async def _json(request: Request) -> Any:
        try:
            return await request.json()
        except ValueError as exc:
            raise _ApiError(400, "BadRequest", f"invalid JSON body: {exc}") from exc

    @staticmethod
    def _is_watch(request: Request) -> bool:
        return request.query_params.get("watch", "").lower() in ("1", "true")

    def _list(
        self, resource: str, ns: str, selector: str | None, kind: str, api_version: str
    ) -> Obj:
        sel = Selector(selector)
        with self._lock:
            items = [
                copy.deepcopy(o)
                for (res, n, _), o in sorted(self._objects.items())
                if res == resource and n == ns and sel.matches(o["metadata"].get("labels") or {})
            ]
            return {
                "kind": kind,
                "apiVersion": api_version,
                "metadata": {"resourceVersion": str(self._rv)},
                "items": items,
            }

    # workloads

    def _resource(self, request: Request) -> str:
        res: str = request.path_params["res"]
        if res not in WORKLOADS:
            raise _ApiError(
                404, "NotFound", f"the server could not find the requested resource ({res})"
            )
        return res

    async def _workload_collection(self, request: Request) -> Response:
        res, ns = request.path_params["res"], request.path_params["ns"]
        selector = request.query_params.get("labelSelector")
        if self._is_watch(request):

            def start() -> Response:
                self._resource(request)
                return self._watch(request, res, ns, selector)

            return await self._handle(request, "watch", res, start)

        def body() -> Obj:
            self._resource(request)
            return self._list(res, ns, selector, WORKLOADS[res] + "List", "apps/v1")

        return await self._handle(request, "list", res, body)

    async def _workload_item(self, request: Request) -> Response:
        res, ns, name = (
            request.path_params["res"],
            request.path_params["ns"],
            request.path_params["name"],
        )
        verb = "get" if request.method == "GET" else "patch"
        patch = await self._json(request) if verb == "patch" else None

        def body() -> Obj:
            self._resource(request)
            with self._lock:
                obj = self._objects.get((res, ns, name))
                if obj is None:
                    raise self._not_found(res, name)
                if patch is None:
                    return copy.deepcopy(obj)
                self._check_precondition(obj, patch, res, name)
                if "strategic-merge-patch" in request.headers.get("content-type", ""):
                    merged = strategic_merge(copy.deepcopy(obj), patch)
                else:
                    merged = _merge(copy.deepcopy(obj), patch)
                if merged["spec"] != obj["spec"]:
                    merged["metadata"]["generation"] = obj["metadata"]["generation"] + 1
                self._put("MODIFIED", res, merged)
                self._sync_workload(res, ns, name)
                return copy.deepcopy(self._objects[(res, ns, name)])

        return await self._handle(request, verb, res, body)

    def _check_precondition(self, obj: Obj, patch: Any, res: str, name: str) -> None:
        wanted = (
            (patch.get("metadata") or {}).get("resourceVersion")
            if isinstance(patch, dict)
            else None
        )
        if wanted is not None and wanted != obj["metadata"]["resourceVersion"]:
            raise self._conflict(res, name)

    def _scale_of(self, obj: Obj) -> Obj:
        meta = obj["metadata"]
        selector = ",".join(
            f"{k}={v}" for k, v in sorted(obj["spec"]["selector"]["matchLabels"].items())
        )
        return {
            "kind": "Scale",
            "apiVersion": "autoscaling/v1",
            "metadata": {
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta["uid"],
                "resourceVersion": meta["resourceVersion"],
                "creationTimestamp": meta["creationTimestamp"],
            },
            "spec": {"replicas": obj["spec"].get("replicas", 1)},
            "status": {"replicas": obj["status"].get("replicas", 0), "selector": selector},
        }

    async def _scale(self, request: Request) -> Response:
        res, ns, name = (
            request.path_params["res"],
            request.path_params["ns"],
            request.path_params["name"],
        )
        verb = {"GET": "get", "PATCH": "patch", "PUT": "update"}[request.method]
        content_type = request.headers.get("content-type", "")
        payload = await self._json(request) if verb != "get" else None

        def body() -> Obj:
            self._resource(request)
            with self._lock:
                obj = self._objects.get((res, ns, name))
                if obj is None:
                    raise self._not_found(res, name)
                if verb == "get":
                    return self._scale_of(obj)
                if verb == "patch":
                    if "json-patch" in content_type:
                        raise _ApiError(
                            415, "UnsupportedMediaType", "the emulator takes merge patches only"
                        )
                    self._check_precondition(obj, payload, res, name)
                    scale = _merge(self._scale_of(obj), payload)
                else:
                    wanted = ((payload or {}).get("metadata") or {}).get("resourceVersion")
                    if wanted and wanted != obj["metadata"]["resourceVersion"]:
                        raise self._conflict(res, name)
                    scale = payload
                replicas = (scale.get("spec") or {}).get("replicas")
                if not isinstance(replicas, int) or replicas < 0:
                    raise _ApiError(
                        422,
                        "Invalid",
                        f'Scale.autoscaling "{name}" is invalid: '
                        f"spec.replicas: Invalid value: {replicas!r}",
                    )
                if replicas != obj["spec"].get("replicas"):
                    obj = copy.deepcopy(obj)
                    obj["spec"]["replicas"] = replicas
                    obj["metadata"]["generation"] += 1
                    self._put("MODIFIED", res, obj)
                    self._sync_workload(res, ns, name)
                return self._scale_of(self._objects[(res, ns, name)])

        return await self._handle(request, verb, res + "/scale", body)

    # pods

    async def _pod_collection(self, request: Request) -> Response:
        ns = request.path_params["ns"]
        selector = request.query_params.get("labelSelector")
        if self._is_watch(request):
            return await self._handle(
                request, "watch", "pods", lambda: self._watch(request, "pods", ns, selector)
            )
        return await self._handle(
            request, "list", "pods", lambda: self._list("pods", ns, selector, "PodList", "v1")
        )

    async def _pod_item(self, request: Request) -> Response:
        ns, name = request.path_params["ns"], request.path_params["name"]

        def body() -> Obj:
            with self._lock:
                obj = self._objects.get(("pods", ns, name))
                if obj is None:
                    raise self._not_found("pods", name)
                return copy.deepcopy(obj)

        return await self._handle(request, "get", "pods", body)

    async def _pod_resize(self, request: Request) -> Response:
        """In-place resize (Kubernetes 1.33+): containers' resources merged by name. With
        `resize_supported` off, the subresource does not exist (404), as on older clusters."""
        ns, name = request.path_params["ns"], request.path_params["name"]
        patch = await self._json(request) if self.resize_supported else None

        def body() -> Obj:
            if not self.resize_supported:
                raise _ApiError(404, "NotFound", "the server could not find the requested resource")
            with self._lock:
                obj = self._objects.get(("pods", ns, name))
                if obj is None:
                    raise self._not_found("pods", name)
                pod = copy.deepcopy(obj)
                wanted = {c["name"]: c for c in patch.get("spec", {}).get("containers", [])}
                for container in pod["spec"]["containers"]:
                    change = wanted.get(container["name"])
                    if change and "resources" in change:
                        container["resources"] = strategic_merge(
                            container.get("resources") or {}, change["resources"]
                        )
                self.resizes.append((name, copy.deepcopy(patch)))
                return self._put("MODIFIED", "pods", pod)

        return await self._handle(request, "patch", "pods/resize", body)

    def _watch(self, request: Request, resource: str, ns: str, selector: str | None) -> Response:
        sel = Selector(selector)
        since_text = request.query_params.get("resourceVersion", "")
        timeout_s = float(request.query_params.get("timeoutSeconds", "1800"))

        def matches(res: str, n: str, obj: Obj) -> bool:
            return res == resource and n == ns and sel.matches(obj["metadata"].get("labels") or {})

        def line(etype: str, obj: Obj) -> bytes:
            return (json.dumps({"type": etype, "object": obj}) + "\n").encode()

        async def stream() -> AsyncIterator[bytes]:
            with self._lock:
                generation = self._drop_generation
                if since_text in ("", "0"):
                    # No version: the current state as ADDED events, then the changes.
                    since = self._rv
                    initial = [
                        line("ADDED", copy.deepcopy(o))
                        for (res, n, _), o in sorted(self._objects.items())
                        if matches(res, n, o)
                    ]
                else:
                    since = int(since_text)
                    initial = []
                    if since < self._compacted:
                        gone = {
                            "kind": "Status",
                            "apiVersion": "v1",
                            "metadata": {},
                            "status": "Failure",
                            "message": f"too old resource version: {since} ({self._compacted})",
                            "reason": "Expired",
                            "code": 410,
                        }
                        initial = [line("ERROR", gone)]
                        since = -1
            for chunk in initial:
                yield chunk
            if since < 0:
                return
            deadline = time.monotonic() + timeout_s
            while not self._closing:
                with self._lock:
                    if self._drop_generation != generation:
                        return
                    wakeup = self._wakeup
                    pending = []
                    if not self._stalled:
                        pending = [
                            (rv, t, o)
                            for rv, t, res, n, o in self._log
                            if rv > since and matches(res, n, o)
                        ]
                        since = self._rv  # all later changes are in the log
                for _, etype, obj in pending:
                    yield line(etype, obj)
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                if wakeup is None:
                    await asyncio.sleep(0.01)
                    continue
                with suppress(TimeoutError):
                    await asyncio.wait_for(wakeup.wait(), timeout=min(left, 0.5))

        return StreamingResponse(stream(), media_type="application/json")

    # leases

    @staticmethod
    def _check_lease(lease: Obj, ns: str, name: str | None) -> None:
        meta = lease.get("metadata") or {}
        if lease.get("kind", "Lease") != "Lease" or not meta.get("name"):
            raise _ApiError(422, "Invalid", "Lease is invalid: metadata.name: Required value")
        if name is not None and meta["name"] != name:
            raise _ApiError(
                400, "BadRequest", "the name of the object does not match the name on the URL"
            )
        for key in ("acquireTime", "renewTime"):
            value = (lease.get("spec") or {}).get(key)
            if value is not None and not MICRO_RE.match(value):
                raise _ApiError(
                    400,
                    "BadRequest",
                    f"spec.{key}: {value!r} is not a MicroTime (RFC 3339, 6 fractional digits)",
                )

    async def _lease_collection(self, request: Request) -> Response:
        ns = request.path_params["ns"]
        if request.method == "GET":
            return await self._handle(
                request,
                "list",
                "leases",
                lambda: self._list("leases", ns, None, "LeaseList", "coordination.k8s.io/v1"),
            )
        lease = await self._json(request)

        def create() -> Obj:
            self._check_lease(lease, ns, None)
            name = lease["metadata"]["name"]
            with self._lock:
                if ("leases", ns, name) in self._objects:
                    raise _ApiError(
                        409,
                        "AlreadyExists",
                        f'leases.coordination.k8s.io "{name}" already exists',
                        {"name": name, "group": "coordination.k8s.io", "kind": "leases"},
                    )
                obj = copy.deepcopy(lease)
                obj.update(kind="Lease", apiVersion="coordination.k8s.io/v1")
                obj["metadata"].update(
                    namespace=ns, uid=str(uuid.uuid4()), creationTimestamp=_ts(self.now)
                )
                return copy.deepcopy(self._put("ADDED", "leases", obj))

        return await self._handle(request, "create", "leases", create)

    async def _lease_item(self, request: Request) -> Response:
        ns, name = request.path_params["ns"], request.path_params["name"]
        verb = {"GET": "get", "PUT": "update", "DELETE": "delete"}[request.method]
        lease = await self._json(request) if verb == "update" else None

        def body() -> Obj:
            with self._lock:
                current = self._objects.get(("leases", ns, name))
                if current is None:
                    raise self._not_found("leases", name)
                if verb == "get":
                    return copy.deepcopy(current)
                if verb == "delete":
                    del self._objects[("leases", ns, name)]
                    return {
                        "kind": "Status",
                        "apiVersion": "v1",
                        "metadata": {},
                        "status": "Success",
                    }
                assert lease is not None
                self._check_lease(lease, ns, name)
                wanted = lease["metadata"].get("resourceVersion")
                if not wanted:
                    raise _ApiError(
                        422, "Invalid", "metadata.resourceVersion: must be specified for an update"
                    )
                if wanted != current["metadata"]["resourceVersion"]:
                    raise self._conflict("leases", name)
                obj = copy.deepcopy(lease)
                obj.update(kind="Lease", apiVersion="coordination.k8s.io/v1")
                obj["metadata"].update(
                    namespace=ns,
                    uid=current["metadata"]["uid"],
                    creationTimestamp=current["metadata"]["creationTimestamp"],
                )
                return copy.deepcopy(self._put("MODIFIED", "leases", obj))

        return await self._handle(request, verb, "leases", body)


WORKLOAD_RESOURCE = {kind: resource for resource, kind in WORKLOADS.items()}
