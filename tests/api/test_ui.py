"""The operator page as served: one self-contained file, public (it holds no data), confined
to this service by its Content-Security-Policy, and shipped in the wheel.

(tests/browser drives it in Chromium: the scalers, a scaler acting, the token prompt.)
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import httpx

from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]


def test_the_page_is_served_to_anyone_and_loads_nothing_else(
    secured_server: LiveServer,
) -> None:
    response = httpx.get(f"{secured_server.url}/ui")  # no token: the data needs one, not this
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    html = response.text
    assert re.findall(r"""<(?:script|link|img)[^>]*(?:src|href)=""", html) == []
    csp = response.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp


def test_the_page_reads_its_data_with_the_token_it_was_given(
    secured_server: LiveServer,
) -> None:
    # What the page's script calls answers 401 without a token: the page then asks for one.
    assert httpx.get(f"{secured_server.url}/v1/scalers").status_code == 401
    assert "Authorization" in httpx.get(f"{secured_server.url}/ui").text


def test_the_wheel_ships_the_page() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "ui.html" in pyproject["tool"]["setuptools"]["package-data"]["app.api"]
    assert (ROOT / "app" / "api" / "ui.html").is_file()
