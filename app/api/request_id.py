"""`X-Request-ID`: taken from the client when it is a plain token, otherwise made here;
set for the request's log lines (`app.core.logs.request_id`) and echoed on every
response, our own early answers (401, 413, 503, the guard's 500) included.

A client's value is used only if it is 1-128 characters of letters, digits and
`-_.:`: anything else (control characters, spaces, quotes, a megabyte) is never
reflected into a header or a log line; a fresh id replaces it.
"""

from __future__ import annotations

import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logs import request_id

HEADER = b"x-request-id"
MAX_LENGTH = 128
_SAFE = re.compile(rb"[A-Za-z0-9._:-]{1,%d}" % MAX_LENGTH)


def accepted(value: bytes | None) -> str | None:
    """The client's id if it is safe to log and echo, else None."""
    if value is None or _SAFE.fullmatch(value) is None:
        return None
    return value.decode("ascii")


def new_id() -> str:
    return uuid.uuid4().hex


class RequestIdMiddleware:
    """Outermost: every answer, from any layer below, carries the id."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        sent = [v for k, v in scope.get("headers") or [] if k.lower() == HEADER]
        rid = (accepted(sent[0]) if len(sent) == 1 else None) or new_id()
        token = request_id.set(rid)

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != HEADER]
                message = {**message, "headers": [*headers, (HEADER, rid.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            request_id.reset(token)
