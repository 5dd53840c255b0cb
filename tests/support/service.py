"""Fixtures for the REST service tests.

Every test runs the real face pipeline (loaded once per session and shared by all the
apps a test starts) on real photos (tests/support/factories.py), on SQLite and on
PostgreSQL.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.main import create_app
from tests.support.factories import upload

PG_ADMIN_URL = os.environ.get("FACESVC_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
# Its own name per checkout when set, so that two suites never TRUNCATE each other.
PG_TEST_DB = os.environ.get("FACESVC_TEST_PG_DB", "facesvc_test")
SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"


@pytest.fixture(scope="session")
def pipeline() -> FacePipeline:
    """The real face pipeline, loaded once per test session and shared by every app."""
    return FacePipeline.load(Settings(_env_file=None))


# ---------------------------------------------------------------- databases


def _postgres_available() -> str | None:
    """None when the test database is ready, else the reason to skip."""
    try:
        import psycopg
    except ImportError:  # pragma: no cover
        return "psycopg is not installed"
    try:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=3) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (PG_TEST_DB,)
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{PG_TEST_DB}"')
    except Exception as exc:
        return f"no PostgreSQL server at {PG_ADMIN_URL}: {exc}"
    return None


# CI sets this: a missing PostgreSQL must fail the run, not skip half the suite silently.
REQUIRE_POSTGRES = os.environ.get("FACESVC_REQUIRE_POSTGRES", "") not in ("", "0")


@pytest.fixture(scope="session")
def postgres_url() -> str:
    reason = _postgres_available()
    if reason:
        if REQUIRE_POSTGRES:
            pytest.fail(f"FACESVC_REQUIRE_POSTGRES is set but {reason}", pytrace=False)
        pytest.skip(reason)
    from sqlalchemy.engine import make_url

    url = make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=PG_TEST_DB)
    return url.render_as_string(hide_password=False)


def _clean_postgres(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url

    from app.core.store import db

    db.upgrade(url)
    plain = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(plain, autocommit=True) as conn:
        tables = "identities, faces, api_keys, calibrations, stylize_jobs, audit_events, decisions"
        conn.execute(f"TRUNCATE {tables} RESTART IDENTITY CASCADE")
        # the default collection (made by migration 0004) stays; every other one goes
        conn.execute("DELETE FROM collections WHERE name <> 'default'")


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'facesvc.db'}"
    url: str = request.getfixturevalue("postgres_url")
    _clean_postgres(url)
    return url


# ---------------------------------------------------------------- apps and clients


@pytest.fixture
def settings(database_url: str) -> Settings:
    return Settings(database_url=database_url, auto_migrate=True, _env_file=None)


MakeApi = Callable[..., "Api"]
"""The `make_api` fixture: `make_api(**settings_overrides)` starts an app."""


@dataclass
class Api:
    """A running app with one key per scope."""

    client: TestClient
    app: FastAPI
    keys: dict[str, str]

    def headers(self, scope: str = "admin") -> dict[str, str]:
        return {"X-API-Key": self.keys[scope]}

    def request(self, method: str, path: str, scope: str = "admin", **kw: Any) -> Any:
        headers = {**self.headers(scope), **kw.pop("headers", {})}
        return self.client.request(method, path, headers=headers, **kw)

    def post(self, path: str, scope: str = "admin", **kw: Any) -> Any:
        return self.request("POST", path, scope, **kw)

    def get(self, path: str, scope: str = "admin", **kw: Any) -> Any:
        return self.request("GET", path, scope, **kw)

    def delete(self, path: str, scope: str = "admin", **kw: Any) -> Any:
        return self.request("DELETE", path, scope, **kw)

    def enroll(self, image: bytes, name: str = "someone", **fields: Any) -> Any:
        """POST /v1/identities (multipart); booleans are sent as 'true' / 'false'."""
        return self.post(
            "/v1/identities", files={"image": upload(image)}, data={"name": name, **form(fields)}
        )

    def add_face(self, identity_id: str, image: bytes, **fields: Any) -> Any:
        return self.post(
            f"/v1/identities/{identity_id}/faces", files={"image": upload(image)}, data=form(fields)
        )

    def verify(self, image: bytes, scope: str = "admin", **fields: Any) -> Any:
        return self.post("/v1/verify", scope, files={"image": upload(image)}, data=form(fields))

    def recognize(self, image: bytes, scope: str = "admin", **fields: Any) -> Any:
        return self.post("/v1/recognize", scope, files={"image": upload(image)}, data=form(fields))

    @property
    def gallery(self) -> Any:
        return self.app.state.gallery

    def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        assert self.client.portal is not None
        return self.client.portal.call(fn, *args)

    def db_face_ids(self) -> set[int]:
        from sqlalchemy import select

        from app.core.store.rows.identities import Face

        async def query() -> set[int]:
            async with self.app.state.sessions() as session:
                return set((await session.scalars(select(Face.id))).all())

        result: set[int] = self.run(query)
        return result


def form(fields: dict[str, Any]) -> dict[str, str]:
    """Multipart form values: booleans as 'true' / 'false', everything else as str()."""
    return {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in fields.items()}


def create_keys(api_client: TestClient, app: FastAPI) -> dict[str, str]:
    from app.core.store.repos.keys import create_key

    async def make() -> dict[str, str]:
        out = {}
        async with app.state.sessions() as session, session.begin():
            for scope in ("admin", "enroll", "verify"):
                _, out[scope] = await create_key(session, f"test-{scope}", [scope])
        return out

    assert api_client.portal is not None
    keys: dict[str, str] = api_client.portal.call(make)
    return keys


@pytest.fixture
def make_api(settings: Settings, pipeline: FacePipeline) -> Iterator[MakeApi]:
    """Start an app (over the test database); call again for a 'restarted' process."""
    stack: list[TestClient] = []
    keys: dict[str, str] = {}

    def start(**overrides: Any) -> Api:
        used = settings.model_copy(update=overrides)
        model = pipeline
        if used.normalise_embeddings != pipeline.options.normalise_embeddings:
            # the same network, the other version: as a process started with that setting
            options = replace(pipeline.options, normalise_embeddings=used.normalise_embeddings)
            model = FacePipeline(options, pipeline.detector, pipeline.backbone)
        app = create_app(used, pipeline=model)
        client = TestClient(app, raise_server_exceptions=False)
        client.__enter__()
        stack.append(client)
        if not keys:
            keys.update(create_keys(client, app))
        return Api(client=client, app=app, keys=keys)

    yield start
    for client in reversed(stack):
        client.__exit__(None, None, None)


@pytest.fixture
def api(make_api: MakeApi) -> Api:
    return make_api()


def new_uuid() -> str:
    return str(uuid.uuid4())
