"""Swagger UI at ``/docs``, from files shipped in the wheel.

The HTML, its start-up script and Swagger UI's own script and style sheet
(Swagger UI 5, Apache-2.0, as the ``fastapi-offline`` package ships it: 4.x
cannot read FastAPI's OpenAPI 3.1) are all served by this app,
under the approvers' page's Content-Security-Policy: nothing loads
from another origin and no inline script runs, so the documentation page
cannot become a way to run someone else's code next to the API key a
person types into it.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from fastapi import APIRouter, HTTPException
from fastapi.responses import Response

from actionq.server.web import SECURITY_HEADERS

__all__ = ["docs_router"]

_HEADERS = SECURITY_HEADERS
"""The approvers' page's headers and CSP: Swagger UI needs nothing more."""

_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>actionq Action Queue API - Swagger UI</title>
<link rel="stylesheet" href="/docs/swagger-ui.css">
<link rel="icon" type="image/png" href="/docs/favicon.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/swagger-ui-bundle.js"></script>
<script src="/docs/docs-init.js"></script>
</body>
</html>
"""

_BUNDLE_FILES = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon.png": "image/png",
}
"""Swagger UI's files served under /docs/ (no path from a request reaches the disk)."""


@cache
def _bundle_file(name: str) -> bytes:
    return resources.files("fastapi_offline").joinpath("static", name).read_bytes()


docs_router = APIRouter(include_in_schema=False)
"""``/docs`` and its files. Open, like FastAPI's own: the schema is public."""


@docs_router.get("/docs")
async def docs() -> Response:
    return Response(_HTML, media_type="text/html; charset=utf-8", headers=_HEADERS)


@docs_router.get("/docs/{name}")
async def docs_file(name: str) -> Response:
    if name == "docs-init.js":
        body = resources.files("actionq.server").joinpath("static", name).read_bytes()
        return Response(body, media_type="text/javascript; charset=utf-8", headers=_HEADERS)
    if name not in _BUNDLE_FILES:
        raise HTTPException(status_code=404, detail="Not Found")
    return Response(_bundle_file(name), media_type=_BUNDLE_FILES[name], headers=_HEADERS)
