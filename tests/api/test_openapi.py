"""openapi/openapi.json is the exported spec; regenerate with `ciuic openapi` when this fails."""

from __future__ import annotations

import json
from pathlib import Path

from app.openapi import export_openapi

SPEC = Path(__file__).resolve().parents[2] / "openapi" / "openapi.json"


def test_exported_spec_is_current() -> None:
    assert json.loads(SPEC.read_text()) == export_openapi(), (
        "openapi/openapi.json is stale: run `.venv/bin/ciuic openapi`"
    )


def test_every_operation_has_a_stable_operation_id() -> None:
    spec = export_openapi()
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert all("__" not in i for i in ids), "generated operationIds change with paths"


def test_every_error_is_documented_in_the_one_error_shape() -> None:
    spec = export_openapi()
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for code, response in op["responses"].items():
                if code.startswith(("4", "5")):
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)


def test_every_operation_behind_a_token_says_so_and_documents_the_refusals() -> None:
    spec = export_openapi()
    assert set(spec["components"]["securitySchemes"]) == {"bearerAuth", "basicAuth"}
    open_ops = set()
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if "security" not in op:
                open_ops.add(f"{method.upper()} {path}")
                continue
            assert op["security"] == [{"bearerAuth": []}, {"basicAuth": []}], path
            assert {"401", "403", "503"} <= set(op["responses"]), (method, path)
    assert open_ops == {
        "GET /healthz",
        "GET /readyz",
        "GET /metrics",
        "GET /-/healthy",
        "GET /-/ready",
    }


def test_no_reference_points_outside_the_components() -> None:
    text = json.dumps(export_openapi())
    assert "#/$defs/" not in text
