"""openapi/openapi.json is the exported spec; regenerate with `ciuic openapi` when this fails."""

from __future__ import annotations

import json
from pathlib import Path

from app.openapi import export_openapi

SPEC = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"


def test_exported_spec_is_current() -> None:
    assert json.loads(SPEC.read_text()) == export_openapi(), (
        "openapi/openapi.json is stale: run `.venv/bin/ciuic openapi`"
    )


def test_every_operation_has_a_stable_operation_id() -> None:
    spec = export_openapi()
    ids = [op["operationId"] for path in spec["paths"].values() for op in path.values()]
    assert len(ids) == len(set(ids))
    assert all("__" not in i for i in ids), "generated operationIds change with paths"
