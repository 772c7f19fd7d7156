"""The API's own documentation, as a user without internet meets it: /docs and /redoc load
only what the service serves, and "Try it out" on a scaler starts from a real spec.

(tests/browser renders the same pages in Chromium; these read the HTML and the document.)
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import jsonschema_rs
import pytest
import yaml

from app.api.scalers import SPEC_EXAMPLE
from app.openapi import export_openapi
from app.policy import parse_spec
from tests.conftest import LiveServer

ROOT = Path(__file__).resolve().parents[2]
# Every URL a page loads or links to: src/href attributes, and the spec's url in the script.
_URLS = re.compile(r"""(?:src|href|url|spec-url)\s*[=:]\s*["']([^"']+)["']""")


def _urls(html: str) -> list[str]:
    return _URLS.findall(html)


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_a_docs_page_loads_nothing_from_another_host(server: LiveServer, page: str) -> None:
    html = httpx.get(f"{server.url}{page}").text
    urls = _urls(html)
    assert urls, "the page names its assets"
    assert [u for u in urls if not u.startswith("/")] == []
    assert "googleapis" not in html and "cdn." not in html
    for url in urls:
        response = httpx.get(f"{server.url}{url}")
        assert response.status_code == 200, url
        assert response.content, url


def test_swagger_asks_no_validator_for_a_badge(server: LiveServer) -> None:
    # swagger-ui's default validatorUrl is validator.swagger.io: one request off the machine
    assert '"validatorUrl": null' in httpx.get(f"{server.url}/docs").text


def test_the_spec_example_is_the_briefs_file() -> None:
    example = yaml.safe_load((ROOT / "examples" / "ciuic-config.yaml").read_text())
    assert example == SPEC_EXAMPLE
    assert parse_spec(SPEC_EXAMPLE).scaler_name == "deepseek-service"


def _spec_validator(document: dict[str, Any]) -> Any:
    return jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/ScalerSpec", "components": document["components"]}
    )


@pytest.mark.parametrize("operation", [("/v1/scalers", "post"), ("/v1/scalers/{name}", "put")])
def test_a_spec_body_is_documented_by_its_schema_with_the_example(
    operation: tuple[str, str],
) -> None:
    document = export_openapi()
    path, method = operation
    content = document["paths"][path][method]["requestBody"]["content"]
    body = content["application/json"]
    assert body["schema"] == {"$ref": "#/components/schemas/ScalerSpec"}
    validator = _spec_validator(document)
    assert validator.is_valid(body["example"])
    assert yaml.safe_load(content["application/yaml"]["example"]) == body["example"]


@pytest.mark.parametrize(
    ("document", "why"),
    [
        pytest.param({"target": "x"}, "no metrics", id="metrics-required"),
        pytest.param({**SPEC_EXAMPLE, "scaler": "magic"}, "no such scaler", id="enum"),
        pytest.param({**SPEC_EXAMPLE, "replicas": 3}, "not a key", id="unknown-key"),
    ],
)
def test_the_published_schema_refuses_what_the_parser_refuses(
    document: dict[str, Any], why: str
) -> None:
    assert not _spec_validator(export_openapi()).is_valid(document), why


@pytest.mark.parametrize(
    ("path", "body"), [("/-/healthy", "OK"), ("/-/ready", "OK"), ("/healthz", None)]
)
def test_every_probe_the_service_answers_is_documented(
    server: LiveServer, path: str, body: str | None
) -> None:
    assert path in export_openapi()["paths"]
    response = httpx.get(f"{server.url}{path}")
    assert response.status_code == 200
    if body is not None:
        assert response.text == body
