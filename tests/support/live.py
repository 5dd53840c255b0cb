"""A real uvicorn server on 127.0.0.1 in a thread, for what only a socket shows:
keep-alive reuse, clients that hang up or send before they read, Expect: 100-continue,
concurrent uploads."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@contextmanager
def live_server(app: FastAPI, **config: object) -> Iterator[str]:
    """Serve `app` (its lifespan included) until the block ends; yields the base URL.
    Logging is left to the test's configuration (caplog sees the server's records)."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, **config)  # type: ignore[arg-type]
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 120
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


@contextmanager
def serve(app: FastAPI, http: str = "auto") -> Iterator[str]:
    """`live_server` with one of uvicorn's HTTP implementations (h11, httptools)."""
    with live_server(app, http=http, log_level="warning") as url:
        yield url
