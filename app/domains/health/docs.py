"""/docs, /redoc and /openapi.json behind an API key (FACESVC_DOCS=key).

FastAPI serves them without auth or not at all; for "key" the app is built without them
(`app.main`) and these routes, which need any valid key, take their place.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse

from app.api.deps import require

OPENAPI_URL = "/openapi.json"


def docs_router() -> APIRouter:
    router = APIRouter(include_in_schema=False, dependencies=[Depends(require(None))])

    @router.get(OPENAPI_URL)
    async def openapi(request: Request) -> JSONResponse:
        app: FastAPI = request.app
        schema: dict[str, Any] = app.openapi()
        return JSONResponse(schema)

    @router.get("/docs")
    async def swagger(request: Request) -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} docs")

    @router.get("/redoc")
    async def redoc(request: Request) -> HTMLResponse:
        return get_redoc_html(openapi_url=OPENAPI_URL, title=f"{request.app.title} docs")

    return router
