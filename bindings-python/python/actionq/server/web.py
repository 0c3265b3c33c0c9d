"""The approvers' web page (docs/contract/approvers-page.md), served at ``/``.

Plain HTML, CSS and JavaScript from the package's ``static/`` folder (shipped in
the wheel, no build step). The page talks to the JSON API with the key the
person signs in with, kept in the tab's ``sessionStorage``.

Every response of the page carries a Content-Security-Policy that allows
scripts only from this origin's files (no inline script, no ``eval``), so
markup that slipped into a name, reason or output could not run even if the
page rendered it as HTML (it renders everything as text).
"""

from __future__ import annotations

from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

__all__ = ["CONTENT_SECURITY_POLICY", "SECURITY_HEADERS", "page_router"]

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
"""No inline script or style, nothing from another origin, no framing."""

SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    # A new release's files are fetched again, never mixed with old ones.
    "Cache-Control": "no-cache",
}
"""Headers of every response of the page and its files."""

_MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
"""The page's files, the only names served (no path from a request reaches the disk)."""


def _file(name: str) -> Response:
    body = resources.files("actionq.server").joinpath("static", name).read_bytes()
    return Response(body, media_type=_MEDIA_TYPES[name], headers=SECURITY_HEADERS)


page_router = APIRouter(include_in_schema=False)
"""``/`` (the page) and ``/static/{name}`` (its script, style sheet and icon).
Open: the page holds no data; the API it calls checks the key."""


@page_router.get("/")
async def page() -> Response:
    return _file("index.html")


@page_router.get("/static/{name}")
async def static_file(name: str) -> Response:
    if name not in _MEDIA_TYPES or name == "index.html":
        raise HTTPException(status_code=404, detail="Not Found")
    return _file(name)
