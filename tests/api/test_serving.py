"""The request path under concurrency and misbehaving clients, on a real server socket:
more clients than database connections, a 500 on a keep-alive connection, a client that
hangs up mid-body. Real model, real photos, SQLite and Postgres."""

from __future__ import annotations

import asyncio
import http.client
import json
import logging
import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import event

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.main import create_app
from tests.support.factories import people, photo, upload
from tests.support.live import live_server


def keyed_app(settings: Settings, pipeline: FacePipeline, **overrides: object) -> FastAPI:
    return create_app(settings.model_copy(update=overrides), pipeline=pipeline)


def test_more_clients_than_database_connections_all_get_answers(
    settings: Settings, pipeline: FacePipeline
) -> None:
    """16 concurrent verifies through 2 pooled connections: neither auth nor the route may
    hold a connection while its request waits for inference, or the later requests queue
    for connections instead of sharing inference batches.

    Checked on each request itself (which task holds which connection when inference is
    asked for), not by a short pool timeout: on a loaded 2-core CI machine the queries
    themselves can take longer than any timeout short enough to tell the two apart."""
    app = keyed_app(settings, pipeline, db_pool_size=2, db_pool_timeout_s=10)
    with live_server(app) as url:
        held_during_inference = _watch_connections_during_inference(app)
        keys = _keys(settings)
        person = people(1)[0]
        enrolled = httpx.post(
            f"{url}/v1/identities",
            headers={"X-API-Key": keys["enroll"]},
            files={"image": upload(photo(person))},
            data={"name": person, "external_id": "p1"},
            timeout=60,
        )
        assert enrolled.status_code == 201, enrolled.text

        async def burst() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=url, timeout=60) as http:
                return await asyncio.gather(
                    *(
                        http.post(
                            "/v1/verify",
                            headers={"X-API-Key": keys["verify"]},
                            files={"image": upload(photo(person))},
                            data={"external_id": "p1"},
                        )
                        for _ in range(16)
                    )
                )

        answers = asyncio.run(burst())
    statuses = [r.status_code for r in answers]
    assert statuses == [200] * 16, [(r.status_code, r.text) for r in answers if r.is_error]
    assert all(r.json()["match"] is True for r in answers)
    assert held_during_inference == [False] * 17  # the enroll and the 16 verifies


def _watch_connections_during_inference(app: FastAPI) -> list[bool]:
    """For each call to inference, whether the calling request's task held a pooled
    connection at that moment. A spy that calls through: the real inference runs."""
    engine = app.state.sessions.kw["bind"].sync_engine
    holders: dict[int, asyncio.Task[object] | None] = {}

    def checked_out(_dbapi: object, record: object, _proxy: object) -> None:
        holders[id(record)] = _current_task()

    def checked_in(_dbapi: object, record: object) -> None:
        holders.pop(id(record), None)

    event.listen(engine, "checkout", checked_out)
    event.listen(engine, "checkin", checked_in)
    inference = app.state.inference
    analyze = inference.analyze
    seen: list[bool] = []

    async def watched(*args: object, **kwargs: object) -> object:
        task = asyncio.current_task()
        seen.append(any(holder is task for holder in holders.values()))
        return await analyze(*args, **kwargs)

    inference.analyze = watched
    return seen


def _current_task() -> asyncio.Task[object] | None:
    try:
        return asyncio.current_task()
    except RuntimeError:  # a checkout outside the event loop's thread
        return None


def _keys(settings: Settings) -> dict[str, str]:
    """Keys written through an engine of this loop's own: the server's engine belongs to
    the server thread's event loop."""
    from app.core.store import db
    from app.core.store.repos.keys import create_key

    async def make() -> dict[str, str]:
        engine = db.create_engine(settings.database_url)
        out = {}
        try:
            async with db.create_sessionmaker(engine)() as session, session.begin():
                for scope in ("enroll", "verify"):
                    _, out[scope] = await create_key(session, f"serving-{scope}", [scope])
        finally:
            await engine.dispose()
        return out

    return asyncio.run(make())


@pytest.fixture
def open_settings(tmp_path: object) -> Settings:
    return Settings(
        _env_file=None, database_url=f"sqlite:///{tmp_path}/facesvc.db", auth_mode="open"
    )


def test_a_500_leaves_the_keep_alive_connection_usable(
    open_settings: Settings, pipeline: FacePipeline
) -> None:
    app = create_app(open_settings, pipeline=pipeline)

    @app.get("/test-only/fails")
    async def fails() -> None:  # a bug we have not found yet
        raise RuntimeError("boom")

    with live_server(app) as url:
        parts = urlsplit(url)
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
        conn.request("GET", "/test-only/fails")
        failed = conn.getresponse()
        body = failed.read()
        sock = conn.sock
        assert failed.status == 500
        assert json.loads(body) == {"error": "internal_error", "detail": "internal server error"}
        conn.request("GET", "/healthz")  # the same connection, as a pooled client would
        again = conn.getresponse()
        assert again.status == 200 and again.read() == b'{"status":"ok"}'
        assert conn.sock is sock  # not silently reconnected
        conn.close()


def test_a_client_that_hangs_up_mid_body_is_one_quiet_log_line(
    open_settings: Settings, pipeline: FacePipeline, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(open_settings, pipeline=pipeline)
    with live_server(app) as url:
        parts = urlsplit(url)
        caplog.clear()
        with caplog.at_level(logging.INFO):
            with socket.create_connection((parts.hostname, parts.port)) as raw:
                raw.sendall(
                    b"POST /v1/detect HTTP/1.1\r\nHost: t\r\n"
                    b"Content-Type: multipart/form-data; boundary=xx\r\n"
                    b"Content-Length: 100000\r\n\r\n--xx\r\n"
                    b'Content-Disposition: form-data; name="image"; filename="a.jpg"\r\n\r\n'
                    + b"\xff"
                    * 1000
                )
                time.sleep(0.5)  # the server is now waiting for the rest of the body
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and not _disconnects(caplog):
                time.sleep(0.1)
        assert httpx.get(f"{url}/healthz").status_code == 200
    lines = _disconnects(caplog)
    assert len(lines) == 1, caplog.text
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR], caplog.text


def _disconnects(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "client disconnected" in r.getMessage()]
