"""/console: the operator's console, static files shipped in the package (no build step,
no CDN), and /v1/whoami, which it signs in with.

The pages need no key: they are public code, like /docs-assets. Every API call they make
carries the key the operator typed, kept in the tab's sessionStorage (never in a URL).
A Content-Security-Policy lets them load, connect and frame nothing but this service.
"""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.api import errors
from app.api.deps import AnyKey
from app.core.errors import NotFound
from app.domains.console.schemas import WhoAmI

STATIC = Path(__file__).parent / "static"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Served by name from this list only: nothing else of the folder, no path in a name.
FILES = {
    path.name: MEDIA_TYPES[path.suffix]
    for path in STATIC.iterdir()
    if path.suffix in MEDIA_TYPES and re.fullmatch(r"[a-z][a-z0-9-]*\.[a-z]+", path.name)
}
POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",  # the chosen photo or webcam still, drawn on a canvas
        "media-src 'self' blob: mediastream:",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # a new release's files on the next load
}

pages = APIRouter(include_in_schema=False)  # FACESVC_CONSOLE
router = APIRouter()  # always served


@pages.get("/console")
async def console_page() -> FileResponse:
    return FileResponse(STATIC / "index.html", media_type=FILES["index.html"], headers=HEADERS)


@pages.get("/console/{file}")
async def console_file(file: str) -> FileResponse:
    media_type = FILES.get(file)
    if media_type is None:
        raise NotFound(f"no console file {file!r}")
    return FileResponse(STATIC / file, media_type=media_type, headers=HEADERS)


@router.get(
    "/v1/whoami",
    response_model=WhoAmI,
    tags=["keys"],
    summary="The calling key: its name, scopes and collections",
    description="What the console signs in with: any valid key may ask about itself.",
    responses=errors.responses(),
)
async def whoami(principal: AnyKey) -> WhoAmI:
    return WhoAmI.of(principal)
