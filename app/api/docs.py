"""Swagger UI (/docs) and ReDoc (/redoc), served from assets installed with the service.

FastAPI's own pages load swagger-ui, redoc and Google Fonts from CDNs: on a machine without
internet they stay blank. The bundles here come from the `fastapi-offline` package (swagger-ui
and redoc's standalone build, as published upstream), so the pages name no other host: no
font link, no validator badge (swagger-ui's default calls validator.swagger.io), no favicon
from fastapi.tiangolo.com. What the bundles themselves would fetch (redoc's menu shows a logo
from cdn.redoc.ly, with no option to hide it) is refused by the pages' Content-Security-Policy,
which keeps every load and call on this service: offline, nothing waits on a host that cannot
answer; online, nothing tells another host who reads the docs.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

__all__ = ["ASSETS_URL", "install_docs"]

ASSETS_URL = "/static/docs"
_ASSETS = Path(fastapi_offline.__file__).parent / "static"
_OAUTH2_REDIRECT = "/docs/oauth2-redirect"
# The bundles compile schemas at run time (ajv: eval) and run redoc's search in a blob worker.
_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline' 'unsafe-eval'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; font-src 'self' data:; "
    "worker-src 'self' blob:; connect-src 'self'; base-uri 'self'; frame-ancestors 'none'"
)
SWAGGER_PARAMETERS = {
    "validatorUrl": None,  # no badge fetched from validator.swagger.io
    "persistAuthorization": True,  # a token typed into Authorize survives a reload
    "displayOperationId": True,  # the names the SDK and generated clients use
}


def _confined(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = _CSP
    return page


def install_docs(app: FastAPI) -> None:
    """Serve the assets and the two pages; create the app with `docs_url=None, redoc_url=None`
    so FastAPI's CDN pages are not served as well."""
    app.mount(ASSETS_URL, StaticFiles(directory=_ASSETS), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _confined(
            get_swagger_ui_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - Swagger UI",
                oauth2_redirect_url=f"{root}{_OAUTH2_REDIRECT}",
                swagger_js_url=f"{root}{ASSETS_URL}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_URL}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                swagger_ui_parameters=SWAGGER_PARAMETERS,
            )
        )

    @app.get(_OAUTH2_REDIRECT, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return _confined(
            get_redoc_html(
                openapi_url=f"{root}{openapi_url}",
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_URL}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_URL}/favicon.png",
                with_google_fonts=False,
            )
        )
