"""/docs (Swagger UI) and /redoc (ReDoc) with their assets served here, not from a CDN,
and /openapi.json behind an API key (FACESVC_DOCS=key).

The JavaScript and CSS come from the `fastapi-offline` package, which ships current
swagger-ui-dist and ReDoc bundles (docs/architecture.md says why that package). They
are public library code, so /docs-assets needs no key: the pages and the schema do
when FACESVC_DOCS=key (any valid key; FastAPI itself serves /openapi.json for
"public", and the app is built without the pages for "off").

The pages carry a Content-Security-Policy that lets them load and fetch from this
service only: ReDoc's bundle still names a Redocly logo on a CDN, which the browser
then never asks for (tests/api/test_docs_offline.py).
"""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse

from app.api.deps import require
from app.core.errors import NotFound

OPENAPI_URL = "/openapi.json"
ASSETS_URL = "/docs-assets"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
# The only files served, by name: nothing else of the package's folder is reachable.
ASSET_FILES = {
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui.css": "text/css",
    "redoc.standalone.js": "text/javascript",
    "favicon.png": "image/png",
}
SWAGGER_PARAMETERS = {
    "validatorUrl": None,  # no badge fetched from validator.swagger.io
    "persistAuthorization": True,  # the key given to "Authorize" survives a reload
    "displayOperationId": True,
}


def _self_only(page: HTMLResponse) -> HTMLResponse:
    """The page with a CSP: everything from this origin, its inline script by nonce."""
    nonce = secrets.token_urlsafe(16)
    html = bytes(page.body).decode().replace("<script>", f'<script nonce="{nonce}">')
    policy = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{nonce}'",
            "style-src 'self' 'unsafe-inline'",  # both viewers inject their styles
            "img-src 'self' data:",
            "font-src 'self' data:",
            "worker-src 'self' blob:",  # ReDoc's search runs in a blob worker
            "connect-src 'self'",
            "base-uri 'none'",
            "frame-ancestors 'none'",
        ]
    )
    return HTMLResponse(html, headers={"Content-Security-Policy": policy})


def docs_router(*, keyed: bool) -> APIRouter:
    """The pages and assets; with `keyed`, the pages and /openapi.json need a valid key."""
    router = APIRouter(include_in_schema=False)
    key = [Depends(require(None))] if keyed else []

    @router.get(f"{ASSETS_URL}/{{asset}}")
    async def docs_asset(asset: str) -> FileResponse:
        media_type = ASSET_FILES.get(asset)
        if media_type is None:
            raise NotFound(f"no docs asset {asset!r}")
        headers = {"Cache-Control": "public, max-age=86400"}
        return FileResponse(ASSETS / asset, media_type=media_type, headers=headers)

    if keyed:

        @router.get(OPENAPI_URL, dependencies=key)
        async def openapi(request: Request) -> JSONResponse:
            app: FastAPI = request.app
            schema: dict[str, Any] = app.openapi()
            return JSONResponse(schema)

    @router.get("/docs", dependencies=key)
    async def swagger(request: Request) -> HTMLResponse:
        page = get_swagger_ui_html(
            openapi_url=OPENAPI_URL,
            title=f"{request.app.title} docs",
            swagger_js_url=f"{ASSETS_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_URL}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )
        return _self_only(page)

    @router.get("/redoc", dependencies=key)
    async def redoc(request: Request) -> HTMLResponse:
        page = get_redoc_html(
            openapi_url=OPENAPI_URL,
            title=f"{request.app.title} docs",
            redoc_js_url=f"{ASSETS_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_URL}/favicon.png",
            with_google_fonts=False,
        )
        return _self_only(page)

    return router
