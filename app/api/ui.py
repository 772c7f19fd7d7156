"""The operator page, `/ui`: a read-only view of the scalers (one HTML file, `ui.html`).

It lists the scalers and, for the one chosen, draws its replicas over time (the recorded
decisions and actions, and the forecast's plan ahead), the forecast with its band, the last
decision's reasons and the events, all read from the JSON API by the page's own script.

Access: the page itself is public, as /docs is: it is a static file that holds no data. What
it shows comes from the API, under the same rules as any client: with an admin token
configured, the page asks for a token (read scope or above) the first time an API call answers
401, keeps it in the tab's sessionStorage (gone when the tab closes; never a cookie, so no
other site can make the browser send it) and sends it as `Authorization: Bearer`. With no
token configured the API is open and the page asks nothing.

The Content-Security-Policy keeps the page to this service: it can load nothing from, nor
send anything to, another host, even if a value it shows were crafted to try.
"""

from __future__ import annotations

from functools import cache
from importlib.resources import files

from fastapi import APIRouter
from fastapi.responses import HTMLResponse

__all__ = ["router"]

router = APIRouter(tags=["ui"])

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
        "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; "
        "frame-ancestors 'none'"
    ),
    "Cache-Control": "no-cache",
    "X-Content-Type-Options": "nosniff",
}


@cache
def _page() -> str:
    return files("app.api").joinpath("ui.html").read_text(encoding="utf-8")


@router.get("/ui", include_in_schema=False)
async def operator_page() -> HTMLResponse:
    return HTMLResponse(_page(), headers=_HEADERS)
