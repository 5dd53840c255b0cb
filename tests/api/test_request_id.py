"""X-Request-ID: a client's plain id is echoed, anything else replaced by a fresh one, on
every answer (successes and 401, 413, 422, 500, 503 from any layer); log lines carry it,
uvicorn's access log included, as text or JSON lines."""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api.request_id import RequestIdMiddleware
from app.core import logs
from tests.support.factories import people, photo, upload
from tests.support.live import free_port, live_server
from tests.support.service import Api, MakeApi

FRESH = re.compile(r"[0-9a-f]{32}")
ROOT = Path(__file__).resolve().parents[2]


def test_a_plain_client_id_is_echoed_and_a_missing_one_made(api: Api) -> None:
    r = api.get("/v1/models", headers={"X-Request-ID": "door-7:2026-12-01T03.25_a"})
    assert r.status_code == 200
    assert r.headers["x-request-id"] == "door-7:2026-12-01T03.25_a"
    first = api.get("/v1/models").headers["x-request-id"]
    second = api.get("/v1/models").headers["x-request-id"]
    assert FRESH.fullmatch(first) and FRESH.fullmatch(second) and first != second


@pytest.mark.parametrize(
    "sent",
    [
        b"x" * 129,  # longer than 128
        b"",
        b"has space",
        b'quote"d',
        b"tab\there",
        "nön-ascii".encode(),
        b"<script>",
    ],
)
def test_an_unsafe_id_is_replaced_never_reflected(api: Api, sent: bytes) -> None:
    r = api.client.get("/healthz", headers=[(b"X-Request-ID", sent)])
    echoed = r.headers["x-request-id"]
    assert FRESH.fullmatch(echoed), echoed
    assert echoed.encode() != sent


def test_two_ids_are_one_too_many(api: Api) -> None:
    r = api.client.get("/healthz", headers=[(b"X-Request-ID", b"a"), (b"X-Request-ID", b"b")])
    assert FRESH.fullmatch(r.headers["x-request-id"])
    assert len(r.headers.get_list("x-request-id")) == 1


def test_echoed_on_errors_from_every_layer(make_api: MakeApi) -> None:
    api = make_api(max_body_bytes=100_000, db_pool_size=1, db_pool_timeout_s=0.2)

    @api.app.get("/test-only/boom")
    async def boom() -> None:
        raise RuntimeError("a bug")

    def sent(rid: str, method: str, path: str, **kw: object) -> httpx.Response:
        headers = {"X-Request-ID": rid, **kw.pop("headers", {})}  # type: ignore[dict-item]
        r: httpx.Response = api.client.request(method, path, headers=headers, **kw)  # type: ignore[arg-type]
        assert r.headers["x-request-id"] == rid, (r.status_code, r.headers)
        return r

    assert sent("e401", "GET", "/v1/models").status_code == 401  # the key check
    big = {"image": upload(b"\0" * 200_000)}
    assert sent("e413", "POST", "/v1/identities", files=big).status_code == 413  # body limit
    r = sent("e422", "POST", "/v1/recognize", headers=api.headers(), files={"nope": upload(b"x")})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    r = sent(
        "e404", "GET", "/v1/identities/0190e7a0-0000-7000-8000-000000000000", headers=api.headers()
    )
    assert r.status_code == 404
    r = sent("e500", "GET", "/test-only/boom")  # the last-resort guard's own answer
    assert r.status_code == 500 and r.json()["error"] == "internal_error"

    # 503: the only pooled connection is taken, so the key check cannot get one
    engine = api.app.state.sessions.kw["bind"]

    async def take() -> object:
        return await engine.connect()

    held = api.run(take)
    try:
        r = sent("e503", "GET", "/v1/models", headers=api.headers())
        assert r.status_code == 503 and r.json()["error"] == "unavailable"
    finally:
        api.run(held.close)  # type: ignore[attr-defined]
    assert sent("ok", "GET", "/v1/models", headers=api.headers()).status_code == 200


def test_log_lines_of_a_request_carry_its_id(api: Api, caplog: pytest.LogCaptureFixture) -> None:
    """The filter reads the id the middleware set, in the request's own context."""
    (ada,) = people(1)
    handler = logging.Handler()
    handler.addFilter(logs.RequestIdFilter())
    records: list[logging.LogRecord] = []
    handler.emit = records.append  # type: ignore[method-assign]
    audit_log = logging.getLogger("facesvc.audit")
    audit_log.addHandler(handler)
    old_level = audit_log.level
    audit_log.setLevel(logging.INFO)
    try:
        r = api.post(
            "/v1/identities",
            files={"image": upload(photo(ada))},
            data={"name": "Ada"},
            headers={"X-Request-ID": "enroll-42"},
        )
    finally:
        audit_log.removeHandler(handler)
        audit_log.setLevel(old_level)
    assert r.status_code == 201, r.text
    assert [rec.request_id for rec in records] == ["enroll-42"]  # type: ignore[attr-defined]
    # outside a request: "-"
    outside = logging.makeLogRecord({"msg": "x"})
    logs.RequestIdFilter().filter(outside)
    assert outside.request_id == "-"  # type: ignore[attr-defined]


def _tiny_app() -> FastAPI:
    app = FastAPI()

    @app.get("/hello")
    async def hello() -> dict[str, str]:
        logging.getLogger("facesvc.test").info("inside")
        return {"ok": "yes"}

    app.add_middleware(RequestIdMiddleware)
    return app


@pytest.mark.parametrize("http", ["h11", "httptools"])
def test_uvicorn_access_log_carries_the_id(http: str) -> None:
    records: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.addFilter(logs.RequestIdFilter())
    handler.emit = records.append  # type: ignore[method-assign]
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    old_level = access.level
    access.setLevel(logging.INFO)
    try:
        with live_server(_tiny_app(), http=http) as url:
            r = httpx.get(f"{url}/hello?external_id=emp-42", headers={"X-Request-ID": "acc-1"})
            assert r.headers["x-request-id"] == "acc-1"
            time.sleep(0.2)  # the access line is written as the response ends
    finally:
        access.removeHandler(handler)
        access.setLevel(old_level)
    lines = [rec for rec in records if rec.name == "uvicorn.access"]
    assert [rec.request_id for rec in lines] == ["acc-1"]  # type: ignore[attr-defined]


SERVER = textwrap.dedent(
    """
    import logging, sys
    import uvicorn
    from fastapi import FastAPI
    from app.api import access_log
    from app.api.request_id import RequestIdMiddleware
    from app.core import logs

    app = FastAPI()

    @app.get("/hello")
    async def hello():
        logging.getLogger("facesvc.test").warning("inside the request")
        return {"ok": True}

    app.add_middleware(RequestIdMiddleware)
    fmt = sys.argv[2]
    logs.configure("info", fmt)
    access_log.install()
    uvicorn.run(app, host="127.0.0.1", port=int(sys.argv[1]),
                log_config=logs.dict_config("info", fmt))
    """
)


def _serve_and_log(log_format: str) -> list[str]:
    """A real uvicorn process configured as `facesvc serve` does; its stderr lines."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port), log_format],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                r = httpx.get(
                    f"http://127.0.0.1:{port}/hello?external_id=emp-42",
                    headers={"X-Request-ID": "json-1"},
                )
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.1)
        assert r.headers["x-request-id"] == "json-1"
    finally:
        process.terminate()
        _, err = process.communicate(timeout=30)
    return err.splitlines()


def test_json_lines_parse_and_have_the_fields() -> None:
    lines = [json.loads(line) for line in _serve_and_log("json")]  # every line is JSON
    for line in lines:
        assert {"time", "level", "logger", "request_id", "message"} <= line.keys()
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    inside = next(line for line in lines if line["logger"] == "facesvc.test")
    assert inside["request_id"] == "json-1" and inside["level"] == "WARNING"
    access = next(line for line in lines if line["logger"] == "uvicorn.access")
    assert access["request_id"] == "json-1"
    assert access["method"] == "GET" and access["status"] == 200
    assert access["path"] == "/hello"  # the query string (a person's id) dropped
    assert "emp-42" not in json.dumps(lines)
    assert "\x1b" not in json.dumps(lines, ensure_ascii=False)  # no terminal colour codes
    started = next(line for line in lines if line["logger"] == "uvicorn.error")
    assert started["request_id"] is None  # uvicorn's own lines, outside any request


def test_text_lines_have_time_level_logger_and_id() -> None:
    lines = _serve_and_log("text")
    pattern = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z (\w+) (\S+) \[(\S+)\] (.*)")
    parsed = [m.groups() for line in lines if (m := pattern.fullmatch(line))]
    assert len(parsed) == len(lines)  # every line in the format
    assert ("WARNING", "facesvc.test", "json-1", "inside the request") in parsed
    access = [p for p in parsed if p[1] == "uvicorn.access"]
    assert len(access) == 1 and access[0][2] == "json-1"
    assert '"GET /hello HTTP/1.1" 200' in access[0][3] and "emp-42" not in access[0][3]


def test_browsers_may_read_it_when_cors_is_on(make_api: MakeApi) -> None:
    api = make_api(cors_origins=["https://door.example"])
    r = api.client.get(
        "/healthz", headers={"Origin": "https://door.example", "X-Request-ID": "b-1"}
    )
    assert r.headers["access-control-allow-origin"] == "https://door.example"
    assert "x-request-id" in r.headers["access-control-expose-headers"].lower()
    assert r.headers["x-request-id"] == "b-1"
