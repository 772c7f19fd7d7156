"""The exported OpenAPI document (openapi/openapi.json), kept in sync by a test."""

from __future__ import annotations

from typing import Any

from app.main import create_app
from app.settings import Settings

__all__ = ["export_openapi"]


def export_openapi() -> dict[str, Any]:
    app = create_app(Settings(database_url="sqlite+aiosqlite:///:memory:"))
    return app.openapi()
