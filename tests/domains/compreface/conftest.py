"""One real uvicorn server per test module and database (SQLite, PostgreSQL), the real
pipeline, and keys shaped like CompreFace's services: a recognition key (enroll, delete
and verify: CompreFace's recognition service both manages and recognizes), a verify-only
key, an enroll-only key (no deletes), a delete-only key and a read-only key."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.main import create_app
from tests.support.live import live_server
from tests.support.service import _clean_postgres

KEYS = {
    "recognition": ["enroll", "delete", "verify"],
    "verify": ["verify"],
    "enroll": ["enroll"],
    "delete": ["delete"],
    "read": ["read"],
}


@dataclass(frozen=True)
class Live:
    url: str
    keys: dict[str, str]
    app: FastAPI  # the served app: its index (`app.state.gallery`) can be looked at

    @property
    def host(self) -> str:
        return f"http://{urlsplit(self.url).hostname}"

    @property
    def port(self) -> str:
        return str(urlsplit(self.url).port)

    def headers(self, key: str = "recognition") -> dict[str, str]:
        return {"x-api-key": self.keys[key]}


def _make_keys(settings: Settings, pipeline: FacePipeline) -> dict[str, str]:
    from app.core.store.repos.keys import create_key

    app = create_app(settings, pipeline=pipeline)
    with TestClient(app) as client:

        async def make() -> dict[str, str]:
            out = {}
            async with app.state.sessions() as session, session.begin():
                for name, scopes in KEYS.items():
                    _, out[name] = await create_key(session, f"compreface-{name}", scopes)
            return out

        assert client.portal is not None
        return client.portal.call(make)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pipeline: FacePipeline,
) -> Iterator[Live]:
    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('compreface')) / 'facesvc.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        _clean_postgres(url)
    settings = Settings(database_url=url, auto_migrate=True, _env_file=None)
    keys = _make_keys(settings, pipeline)
    app = create_app(settings, pipeline=pipeline)
    with live_server(app, log_level="warning") as base:
        yield Live(base, keys, app)
