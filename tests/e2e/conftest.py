"""Fixtures of the e2e tier: one real control plane per session, one namespace per test.

The control plane comes from the folder named by CIUIC_KUBE_ASSETS (scripts/test points it at
../shared/kube when that exists). Without it the tier is skipped, naming the variable; under
CI=true it FAILS instead, so CI never passes without having run it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from app.kube.adapter import KubernetesCluster
from app.kube.config import api_client
from app.settings import Settings
from app.store.migrate import upgrade
from tests.conftest import IN_CI, LiveServer, start_server
from tests.e2e.controlplane import ASSETS_ENV, Admin, ControlPlane, kubeconfig

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.e2e)


def _assets() -> Path | str:
    """The assets folder, or why there is none."""
    named = os.environ.get(ASSETS_ENV, "")
    if not named:
        return f"{ASSETS_ENV} is not set"
    folder = Path(named).resolve()
    if not os.access(folder / "up", os.X_OK):
        return f"{ASSETS_ENV}={named} has no executable `up`"
    return folder


@pytest.fixture(scope="session")
def control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    assets = _assets()
    if isinstance(assets, str):
        why = (
            f"no Kubernetes control plane for the e2e tier: {assets}. Point {ASSETS_ENV} at a "
            "folder holding `up` (../shared/kube/README.md); scripts/test does when "
            "../shared/kube exists"
        )
        if IN_CI:
            pytest.fail(f"{why} (required under CI=true)")
        pytest.skip(why)
    started = time.monotonic()
    # Pods are Ready 1 s after they run unless their template says otherwise (each test's
    # Deployments set their own delay through KWOK's annotations).
    plane = ControlPlane.start(assets, state=tmp_path_factory.mktemp("kube"), ready_delay_ms=1000)
    print(f"\ncontrol plane up in {time.monotonic() - started:.1f} s at {plane.server}")
    try:
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="session")
def admin(control_plane: ControlPlane) -> Iterator[Admin]:
    client = control_plane.admin()
    yield client
    client.close()


@pytest.fixture
def namespace(admin: Admin, request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace of the test's own, named after it; deleted afterwards (not waited for)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")
    name = f"{slug[:50].strip('-')}-{uuid.uuid4().hex[:6]}"
    admin.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
    yield name
    admin.delete("Namespace", None, name)


@pytest.fixture
def service(
    control_plane: ControlPlane, namespace: str, tmp_path: Path
) -> Iterator[Callable[..., LiveServer]]:
    """Starts the service in this process (uvicorn in a thread, SQLite), driving the control
    plane with the admin's kubeconfig and leading through a Lease in the test's namespace."""
    started: list[LiveServer] = []

    def start(**overrides: Any) -> LiveServer:
        config = tmp_path / "kubeconfig"
        config.write_text(
            kubeconfig(control_plane.server, control_plane.admin_token, control_plane.ca_pem)
        )
        url = f"sqlite+aiosqlite:///{tmp_path}/ciuic-{len(started)}.db"
        asyncio.run(upgrade(url))
        settings = Settings(
            **{
                "database_url": url,
                "kubeconfig": str(config),
                "namespace": namespace,
                "reconcile_interval_s": 0.2,
                "lease_duration_s": 3.0,
                "lease_renew_deadline_s": 2.0,
                "lease_retry_period_s": 0.2,
                "kube_request_timeout_s": 5.0,
                **overrides,
            }
        )
        live = start_server(settings)
        started.append(live)
        return live

    yield start
    for live in started:
        live.stop()


@pytest.fixture
async def adapter(
    control_plane: ControlPlane, tmp_path: Path
) -> AsyncIterator[Callable[..., Awaitable[KubernetesCluster]]]:
    """Makes our Kubernetes adapter in this test's event loop, configured the way the service
    configures it (app.kube.config from a kubeconfig file), with the admin's token."""
    made: list[KubernetesCluster] = []

    async def make(**options: Any) -> KubernetesCluster:
        config = tmp_path / "adapter.kubeconfig"
        config.write_text(
            kubeconfig(control_plane.server, control_plane.admin_token, control_plane.ca_pem)
        )
        api = await api_client(Settings(kubeconfig=str(config)))
        cluster = KubernetesCluster(api, **options)
        made.append(cluster)
        return cluster

    yield make
    for cluster in made:
        await cluster.close()


async def eventually(check: Callable[[], Any], timeout_s: float, what: str) -> Any:
    """Until `check()` (plain or awaitable) gives something truthy, which is returned; without
    blocking the loop (the adapter's watches run on it). AssertionError naming `what` after
    `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = check()
        if inspect.isawaitable(found):
            found = await found
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout_s:g} s")
        await asyncio.sleep(0.05)
