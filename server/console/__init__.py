"""The web console: a static page at /console that drives the public /v1 API from a browser.

It is a door like the REST API, not a second API: the page's script calls /v1 and /metrics
with the key the user types, so the routes here serve files only and hold no state. They are
not behind the API key (the page must load to ask for one); without keys the loopback guard
covers them like everything else.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import FileResponse, RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

STATIC_DIR = Path(__file__).resolve().parent / "static"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    # Revalidated on every load (the ETag makes that cheap): an upgrade shows at once.
    "cache-control": "no-cache",
}


class ConsoleFiles(StaticFiles):
    """The page's script and style, with the console's security headers."""

    async def get_response(self, path: str, scope: Scope) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(SECURITY_HEADERS)
        return response


router = APIRouter(include_in_schema=False)


@router.get("/")
def root() -> RedirectResponse:
    return RedirectResponse("/console", status_code=307)


@router.get("/console")
def console_page() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", headers=SECURITY_HEADERS)


def install_console(app: FastAPI) -> None:
    """Serve the console at /console (and redirect / there)."""
    app.include_router(router)
    app.mount("/console/static", ConsoleFiles(directory=STATIC_DIR), name="console-static")
