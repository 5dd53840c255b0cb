"""Operational surfaces: /docs and /metrics settings, no redirect that echoes Host, an
access log without query strings, and SQLite deletes that leave no trace in the files."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from uvicorn.logging import AccessFormatter

from app.api import access_log
from app.core import logs
from tests.support.factories import people, photo
from tests.support.service import Api, MakeApi

DOCS = ("/openapi.json", "/docs", "/redoc")


@pytest.mark.parametrize("docs", ["public", "key", "off"])
def test_docs_setting(make_api: MakeApi, docs: str) -> None:
    api = make_api(docs=docs)
    for path in DOCS:
        anonymous = api.client.get(path)
        keyed = api.get(path, "verify")  # any valid key will do
        if docs == "public":
            assert anonymous.status_code == keyed.status_code == 200, path
        elif docs == "key":
            assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthorized"
            bad = api.client.get(path, headers={"X-API-Key": "fsk_0123456789ab_nope"})
            assert bad.status_code == 401
            assert keyed.status_code == 200, path
        else:
            assert anonymous.status_code == keyed.status_code == 404, path
            assert keyed.json()["error"] == "not_found"
    if docs != "off":
        schema = api.get("/openapi.json", "enroll").json()
        assert "/v1/verify" in schema["paths"] and "/openapi.json" not in schema["paths"]


def test_docs_in_open_mode_need_no_key(make_api: MakeApi) -> None:
    """The default (key) in open mode, where every caller counts as admin: the README's
    first try can open /docs."""
    api = make_api(auth_mode="open")
    assert all(api.client.get(path).status_code == 200 for path in DOCS)


@pytest.mark.parametrize("metrics", ["public", "key", "off"])
def test_metrics_setting(make_api: MakeApi, metrics: str) -> None:
    from app.core.store.repos.keys import create_key

    api = make_api(metrics=metrics)

    async def scraper_key() -> str:
        async with api.app.state.sessions() as session, session.begin():
            return (await create_key(session, "prometheus", ["metrics"]))[1]

    scraper = {"X-API-Key": api.run(scraper_key)}
    anonymous = api.client.get("/metrics")
    scraped = api.client.get("/metrics", headers=scraper)
    verify = api.get("/metrics", "verify")
    if metrics == "public":
        assert anonymous.status_code == scraped.status_code == 200
        assert "facesvc_index_size" in anonymous.text
    elif metrics == "key":
        assert anonymous.status_code == 401 and verify.status_code == 403
        assert scraped.status_code == 200 and "facesvc_index_size" in scraped.text
        assert api.get("/metrics", "admin").status_code == 200
        # the scraper's key is good for nothing else
        assert api.client.get("/v1/models", headers=scraper).status_code == 403
    else:
        assert anonymous.status_code == scraped.status_code == 404
    paths = api.get("/openapi.json").json()["paths"]
    assert ("/metrics" in paths) == (metrics != "off")


def test_no_redirect_echoes_the_host(api: Api) -> None:
    for path in ("/v1/identities/", "/v1/models/", "/healthz/"):
        r = api.client.get(
            path, headers={"Host": "evil.example", **api.headers()}, follow_redirects=False
        )
        assert r.status_code == 404, (path, r.status_code)
        assert r.json()["error"] == "not_found" and "location" not in r.headers
        assert "evil.example" not in r.text


def _access_record(path: str) -> logging.LogRecord:
    """A record as uvicorn's h11/httptools protocols log it."""
    return logging.LogRecord(
        "uvicorn.access",
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5000", "GET", path, "1.1", 200),
        None,
    )


def test_access_log_drops_query_strings() -> None:
    formatter = AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s')
    record = _access_record("/v1/identities?external_id=emp-42&limit=5")
    assert "emp-42" in formatter.format(record)  # what uvicorn logs on its own
    logger = logging.getLogger("test.access.filter")
    access_log.install(logger.name)
    access_log.install(logger.name)  # idempotent
    assert sum(isinstance(f, access_log.DropQueryString) for f in logger.filters) == 1
    record = _access_record("/v1/identities?external_id=emp-42&limit=5")
    assert logger.filter(record)
    line = formatter.format(record)
    assert line == '127.0.0.1:5000 - "GET /v1/identities HTTP/1.1" 200 OK'
    plain = _access_record("/v1/models")
    assert logger.filter(plain) and "/v1/models HTTP" in formatter.format(plain)


def test_the_served_app_installs_the_filter(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from app.main import app_from_env

    monkeypatch.setenv("FACESVC_DATABASE_URL", f"sqlite:///{tmp_path / 'x.db'}")
    logger = logging.getLogger(access_log.ACCESS_LOGGER)
    before = list(logger.filters)
    # app_from_env configures the process's logging (app.core.logs): undone afterwards
    touched = [logging.root, *map(logging.getLogger, logs.SERVICE_LOGGERS)]
    saved = [(one, one.level, list(one.handlers)) for one in touched]
    try:
        app_from_env()  # no lifespan here: nothing is loaded
        assert any(isinstance(f, access_log.DropQueryString) for f in logger.filters)
    finally:
        logger.filters[:] = before
        for one, level, handlers in saved:
            one.setLevel(level)
            one.handlers[:] = handlers


def _stored_bytes(database: Path) -> bytes:
    files = [database, database.with_name(database.name + "-wal")]
    return b"".join(f.read_bytes() for f in files if f.exists())


@pytest.mark.parametrize("what", ["identity", "face", "renamed"])
def test_sqlite_forgets_deleted_and_changed_names(
    make_api: MakeApi, database_url: str, what: str
) -> None:
    if not database_url.startswith("sqlite"):
        pytest.skip("the files of SQLite")
    database = Path(database_url.removeprefix("sqlite:///"))
    api = make_api()
    name = f"Zebulon-{uuid.uuid4().hex}"
    a = people(1)[0]
    body = api.enroll(photo(a), name, external_id=f"emp-{uuid.uuid4().hex}").json()
    ident, face = body["identity"]["id"], body["face"]["id"]
    assert name.encode() in _stored_bytes(database)
    if what == "identity":
        assert api.delete(f"/v1/identities/{ident}").status_code == 204
    elif what == "renamed":
        r = api.request("PATCH", f"/v1/identities/{ident}", json={"name": "Someone Else"})
        assert r.status_code == 200
    else:  # the face's embedding bytes go; the identity (and its name) stays
        from app.core.store.rows.identities import Face

        async def embedding() -> bytes:
            async with api.app.state.sessions() as session:
                row = await session.get(Face, face)
                assert row is not None
                return bytes(row.embedding)

        vector = api.run(embedding)
        assert vector in _stored_bytes(database)
        assert api.delete(f"/v1/identities/{ident}/faces/{face}").status_code == 204
        assert vector not in _stored_bytes(database)
        assert api.delete(f"/v1/identities/{ident}").status_code == 204
    assert name.encode() not in _stored_bytes(database)
