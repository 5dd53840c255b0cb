"""Request body limit, enforced while the body is read (before any decoding), and
answers that a client still sending can read.

A client that sends its whole body before reading the answer (Python's urllib, most
simple clients, which also ask for `Connection: close`) got a reset connection instead
of our 413 (or a 401, 415, 422 given before the body was read): the server closed the
socket with the upload still arriving. Now such an answer is sent whole, the rest of
the body is read and thrown away, up to `DRAIN_FACTOR` times the limit and
`DRAIN_SECONDS`, and only then does the response end and the connection close. A
client that asked `Expect: 100-continue` is answered before it sends anything: the
server says "100 Continue" only once the app reads the body, and a body refused from
its Content-Length (or before any read) is never asked for.
"""

from __future__ import annotations

import json

import anyio
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

DRAIN_FACTOR = 4  # most bytes read and dropped after an early answer, times the limit
DRAIN_SECONDS = 10.0  # and for how long at most


class BodyTooLarge(HTTPException):
    """Raised from `receive`; an HTTPException so that framework body readers pass it on."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body exceeds {limit} bytes")


def _payload(limit: int) -> bytes:
    return json.dumps(
        {"error": "image_too_large", "detail": f"the request body exceeds {limit} bytes"}
    ).encode()


class BodyLimitMiddleware:
    """413 `image_too_large` for a declared or streamed body over `limit` bytes."""

    def __init__(
        self,
        app: ASGIApp,
        limit: int,
        drain_bytes: int | None = None,
        drain_seconds: float = DRAIN_SECONDS,
    ) -> None:
        self.app = app
        self.limit = limit
        self.drain_bytes = DRAIN_FACTOR * limit if drain_bytes is None else drain_bytes
        self.drain_seconds = drain_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        # With 100-continue the client sends nothing until the app first reads.
        expects = headers.get(b"expect", b"").lower() == b"100-continue"
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._reject(send, receive, more=not expects)
            return

        received = 0
        # Whether the client may still be sending: an answer given before the body is
        # read (401, 415, 422, 413) is followed by a bounded drain, then a close.
        more = (declared is not None and declared not in (b"", b"0")) or (
            b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        )
        read_yet = False
        started = False

        async def limited_receive() -> Message:
            nonlocal received, more, read_yet
            read_yet = True
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                more = bool(message.get("more_body", False))
                if received > self.limit:
                    raise BodyTooLarge(self.limit)
            elif message["type"] == "http.disconnect":
                more = False
            return message

        def unread() -> bool:
            return more and (read_yet or not expects)

        async def draining_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                if unread():
                    message = {**message, "headers": _closing(message.get("headers", []))}
            elif (
                message["type"] == "http.response.body"
                and not message.get("more_body")
                and unread()
            ):  # the answer goes out whole, then the drain, then the end
                await send({**message, "more_body": True})
                await self._drain(receive, more)
                message = {"type": "http.response.body", "body": b""}
            await send(message)

        try:
            await self.app(scope, limited_receive, draining_send)
        except BodyTooLarge:
            if started:
                raise
            await self._reject(send, receive, more=unread())

    async def _reject(self, send: Send, receive: Receive, *, more: bool) -> None:
        body = _payload(self.limit)
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        await send({"type": "http.response.start", "status": 413, "headers": _closing(headers)})
        # The whole answer goes out first, so that a client reading while it sends
        # sees it at once; the response ends (and the connection closes) after the drain.
        await send({"type": "http.response.body", "body": body, "more_body": True})
        await self._drain(receive, more)
        await send({"type": "http.response.body", "body": b""})

    async def _drain(self, receive: Receive, more: bool) -> None:
        """Read and drop what the client still sends, within the bounds."""
        left = self.drain_bytes
        with anyio.move_on_after(self.drain_seconds):
            while more and left > 0:
                message = await receive()
                if message["type"] != "http.request":
                    return
                left -= len(message.get("body", b""))
                more = bool(message.get("more_body", False))


def _closing(headers: list[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    kept = [(k, v) for k, v in headers if k.lower() != b"connection"]
    return [*kept, (b"connection", b"close")]
