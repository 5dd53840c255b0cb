"""The last line: an exception nothing else handled becomes a 500 with the error body,
sent by us, so that the keep-alive connection stays usable.

Starlette's ServerErrorMiddleware sends its 500 and then re-raises, and uvicorn answers
an exception from a started response by closing the socket without `Connection: close`;
a client that reuses that pooled connection for its next request gets a reset. Here the
exception ends with the response, and the connection is left in a clean state. A failure
after the response started cannot be repaired: it is re-raised (uvicorn closes).
"""

from __future__ import annotations

import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

log = logging.getLogger("facesvc.errors")

BODY = json.dumps(
    {"error": "internal_error", "detail": "internal server error"}, separators=(",", ":")
).encode()


class ServerErrorGuard:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception:
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            if started:
                raise
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(BODY)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": BODY})
