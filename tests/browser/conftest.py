"""Fixtures of the browser tier: Debian's headless Chromium, driven through chromedriver by
selenium, against the real service on a loopback port.

The browser cannot reach any other host: `--host-resolver-rules` resolves every name but
127.0.0.1 to nothing, so a page that still loads a CDN asset fails visibly, and every test
also reads the browser's network log and fails on a request that left 127.0.0.1.

Without chromium or chromedriver the tier is skipped, naming what is missing; under CI=true it
FAILS instead (.ci/run installs both), so CI never passes without having run it. Screenshots
go to artifacts/screenshots/ (CIUIC_SCREENSHOTS names another folder).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.remote.webdriver import WebDriver

from app.clock import SystemClock
from app.kube.simulated import SimulatedCluster
from app.main import create_app
from app.settings import Settings
from app.store.migrate import upgrade
from tests.conftest import ADMIN_TOKEN, IN_CI, LiveServer, start_server

ROOT = Path(__file__).resolve().parents[2]
HERE = Path(__file__).parent
# Debian's packages (apt-get install chromium chromium-driver); the variables name others.
CHROMIUM = os.environ.get("CIUIC_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CIUIC_CHROMEDRIVER", "/usr/bin/chromedriver")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.browser)


def _missing() -> list[str]:
    return [
        path
        for path in (CHROMIUM, CHROMEDRIVER)
        if not (os.access(path, os.X_OK) or shutil.which(path))
    ]


@pytest.fixture(scope="session")
def screenshots() -> Path:
    folder = Path(os.environ.get("CIUIC_SCREENSHOTS", ROOT / "artifacts" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


# Module-scoped: the browser and the servers (whose workers keep running) stop when the tier
# is done, not at the end of the whole suite.
@pytest.fixture(scope="module")
def browser() -> Iterator[WebDriver]:
    missing = _missing()
    if missing:
        why = (
            f"no headless Chromium for the browser tier: {', '.join(missing)} not found "
            "(apt-get install chromium chromium-driver; or set CIUIC_CHROMIUM and "
            "CIUIC_CHROMEDRIVER)"
        )
        if IN_CI:
            pytest.fail(f"{why} (required under CI=true)")
        pytest.skip(why)
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which(CHROMIUM) or CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",  # CI runs as root, where Chromium's sandbox refuses to start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,1000",
        # Offline, as the user's machine: no name resolves but the service's address.
        "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    service = Service(executable_path=shutil.which(CHROMEDRIVER) or CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def requested_urls(driver: WebDriver) -> list[str]:
    """The URLs the browser asked for since the last call (the log empties as it is read),
    less those the page's Content-Security-Policy refused before they were sent."""
    asked: dict[str, str] = {}
    refused: set[str] = set()
    for entry in driver.get_log("performance"):
        message: dict[str, Any] = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message.get("method") == "Network.requestWillBeSent":
            asked[params["requestId"]] = params["request"]["url"]
        elif (
            message.get("method") == "Network.loadingFailed"
            and params.get("blockedReason") == "csp"
        ):
            refused.add(params["requestId"])
    return [url for request, url in asked.items() if request not in refused]


def off_the_machine(urls: list[str], server: LiveServer) -> list[str]:
    return [u for u in urls if not u.startswith((server.url, "data:", "blob:", "about:"))]


@pytest.fixture
def page(browser: WebDriver, live: LiveServer) -> Iterator[WebDriver]:
    """The browser, on a blank page with an empty log; after the test, no request may have
    left the machine."""
    browser.get("about:blank")
    requested_urls(browser)
    yield browser
    assert off_the_machine(requested_urls(browser), live) == []


def _server(tmp_path_factory: pytest.TempPathFactory, **overrides: Any) -> LiveServer:
    """The service with its workers, on a SQLite file of its own (the browser is what is
    under test here; both backends are covered by tests/api), driving the built-in simulated
    cluster with cold starts of about a second."""
    path = tmp_path_factory.mktemp("browser") / "ciuic.db"
    url = f"sqlite+aiosqlite:///{path}"
    asyncio.run(upgrade(url))
    settings = Settings(
        database_url=url,
        reconcile_interval_s=1.0,
        leader_interval_s=0.2,
        forecast_refit_s=1.0,
        **overrides,
    )
    clock = SystemClock()
    cluster = SimulatedCluster(clock, initial_replicas=1, cold_start_s=(0.5, 1.0))
    return start_server(settings, create_app(settings, clock=clock, cluster=cluster))


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """An open service (no admin token)."""
    server = _server(tmp_path_factory)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A service that requires tokens; the bootstrap admin token is ADMIN_TOKEN."""
    server = _server(tmp_path_factory, admin_token=ADMIN_TOKEN)
    yield server
    server.stop()
