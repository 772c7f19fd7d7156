"""Schemathesis against the service's own OpenAPI document, over real HTTP, on both backends.

Every operation in openapi/openapi.json is fuzzed twice: with the admin token (every answer is
a documented status with a body matching its schema and content type, and never a 5xx) and
with no token at all (every guarded operation answers 401, in the documented error shape;
on SQLite only, as no database is reached).
Half the examples of an operation on a scaler name the brief's scaler, stored before each
example, so the handlers past the 404 are reached too.

A third run, under several seeds, puts an extreme in each example (issue 14: a timestamp of
1e308 was a 500): one number of the JSON body, or one query parameter, becomes a huge,
negative, NaN or 400-digit number. Each answer must still be documented and never a 5xx.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, seed, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from app.openapi import export_openapi
from tests.conftest import ADMIN_TOKEN, LiveServer

ROOT = Path(__file__).resolve().parents[2]
SPEC = json.loads((ROOT / "openapi" / "openapi.json").read_text())
BRIEF = (ROOT / "tests" / "policy" / "brief.yaml").read_text()
SEEDED = "deepseek-service"  # the brief's scaler


@schemathesis.serializer("application/x-protobuf")
def _binary(_ctx: Any, value: Any) -> bytes:
    """POST /api/v1/write's body (remote write) as generated: bytes that are neither snappy nor
    protobuf, sent without `Content-Encoding: snappy`, whose refusals must be documented 4xx.
    Real bodies: tests/api/test_remote_write.py."""
    return value if isinstance(value, bytes) else str(value).encode()


schema = schemathesis.openapi.from_dict(SPEC)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
FUZZ = settings(
    max_examples=12,
    derandomize=True,  # the same examples on every run: CI is deterministic
    deadline=None,
    database=None,
    phases=[Phase.explicit, Phase.generate],  # no shrinking: a failure shows its first example
    suppress_health_check=list(HealthCheck),
)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
# The extremes run: few examples per seed, several seeds (each a different draw of leaves and
# extremes; fixed, so CI stays deterministic).
SEEDS = (1, 2, 3)
EXTREME_FUZZ = settings(FUZZ, max_examples=4, derandomize=False)
BIG = int("1" + "0" * 400)  # a JSON integer beyond any float
EXTREMES: list[object] = [
    1e308,
    -1e308,
    1e19,
    2**63,
    -(2**63) - 1,
    -1,
    0,
    1e-308,
    BIG,
    253402300800,  # the first second after the year 9999
]  # NaN and Infinity are not JSON (the client refuses them): tests/api/test_extremes.py
QUERY_EXTREMES = ["1e308", "-1", "NaN", "Infinity", "9223372036854775808", "1e19", str(BIG)]
EXERCISED: dict[str, set[str]] = {"admin": set(), "anonymous": set()}


def _operations(spec: dict[str, object]) -> set[str]:
    paths = spec["paths"]
    assert isinstance(paths, dict)
    return {f"{method.upper()} {path}" for path, ops in paths.items() for method in ops}


def _seed(server: LiveServer) -> None:
    response = httpx.put(
        f"{server.url}/v1/scalers/{SEEDED}",
        content=BRIEF,
        headers={**ADMIN, "Content-Type": "application/yaml"},
    )
    assert response.status_code in (200, 201), response.text


def _names_the_seeded_scaler(case: schemathesis.Case) -> bool:
    """Half the examples with a scaler name, chosen from the example itself (deterministic)."""
    name = (case.path_parameters or {}).get("name")
    return name is not None and zlib.crc32(repr(name).encode()) % 2 == 0


@schema.parametrize()
@FUZZ
def test_with_the_admin_token(case: schemathesis.Case, secured_server: LiveServer) -> None:
    if _names_the_seeded_scaler(case):
        _seed(secured_server)
        case.path_parameters = {**(case.path_parameters or {}), "name": SEEDED}
    case.call_and_validate(base_url=secured_server.url, headers=ADMIN, checks=CHECKS)
    EXERCISED["admin"].add(case.operation.label)


@schema.parametrize()
@FUZZ
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # no token reaches a database
def test_without_a_token(case: schemathesis.Case, secured_server: LiveServer) -> None:
    case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() != "authorization"}
    response = case.call_and_validate(base_url=secured_server.url, checks=CHECKS)
    same_method = case.method.upper() == case.operation.method.upper()  # not a 405 probe
    if same_method and case.operation.definition.raw.get("security"):
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthorized"
        assert "www-authenticate" in response.headers, response.headers  # the challenge
    EXERCISED["anonymous"].add(case.operation.label)


def _numbers(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The paths of the number leaves of a JSON document."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _numbers(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _numbers(v, (*path, i))]
    if isinstance(node, int | float) and not isinstance(node, bool):
        return [path]
    return []


def _set(node: Any, path: tuple[Any, ...], value: object) -> Any:
    if not path:
        return value
    copy = dict(node) if isinstance(node, dict) else list(node)
    copy[path[0]] = _set(node[path[0]], path[1:], value)
    return copy


def _one_extreme_in_the_body(_ctx: Any, body: Any) -> st.SearchStrategy[Any]:
    paths = _numbers(body)
    if not paths:
        return st.just(body)
    return st.builds(
        lambda path, value: _set(body, path, value),
        st.sampled_from(paths),
        st.sampled_from(EXTREMES),
    )


def _one_extreme_in_the_query(_ctx: Any, query: Any) -> st.SearchStrategy[Any]:
    if not query:
        return st.just(query)
    return st.builds(
        lambda key, value: {**query, key: value},
        st.sampled_from(sorted(query)),
        st.sampled_from(QUERY_EXTREMES),
    )


def _extremes_test(run_seed: int) -> Callable[..., None]:
    @schema.hooks.apply(_one_extreme_in_the_body, name="flatmap_body")
    @schema.hooks.apply(_one_extreme_in_the_query, name="flatmap_query")
    @schema.parametrize()
    @seed(run_seed)
    @EXTREME_FUZZ
    def test(case: schemathesis.Case, secured_server: LiveServer) -> None:
        if _names_the_seeded_scaler(case):
            _seed(secured_server)
            case.path_parameters = {**(case.path_parameters or {}), "name": SEEDED}
        case.call_and_validate(base_url=secured_server.url, headers=ADMIN, checks=CHECKS)

    return test


for _run_seed in SEEDS:
    globals()[f"test_extremes_with_the_admin_token_seed_{_run_seed}"] = _extremes_test(_run_seed)


def test_the_fuzzed_document_is_the_service_and_every_operation_loads() -> None:
    loaded = {result.ok().label for result in schema.get_all_operations()}
    assert loaded == _operations(SPEC) == _operations(export_openapi())


def test_every_operation_was_fuzzed_both_ways() -> None:
    # Runs after the fuzz tests above (file order); a new route cannot slip past them.
    if not any(EXERCISED.values()):
        return  # selected alone (-k): nothing to compare
    fuzzed = {"admin": _operations(SPEC), "anonymous": _operations(SPEC)}
    assert fuzzed == EXERCISED
