"""Property-based API test: schemathesis against our own OpenAPI, with an admin key.

Every operation, on SQLite and on PostgreSQL, through a real uvicorn server (one
lifespan per database) with the real pipeline: no 500, every answer a status the
operation documents, with a body that conforms to the documented schema, and every
error the one error body.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from fastapi.testclient import TestClient  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from schemathesis.checks import not_a_server_error  # noqa: E402
from schemathesis.specs.openapi.checks import (  # noqa: E402
    response_schema_conformance,
    status_code_conformance,
)

from app.core.config import Settings  # noqa: E402
from app.core.model.pipeline import FacePipeline  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.support.factories import people, photo, upload  # noqa: E402
from tests.support.live import serve  # noqa: E402
from tests.support.service import _clean_postgres, create_keys  # noqa: E402

CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
EXAMPLES = 15  # per operation and database: about 20 s a database


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def live(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    pipeline: FacePipeline,
) -> Iterator[dict[str, Any]]:
    import httpx

    if request.param == "sqlite":
        url = f"sqlite:///{Path(tmp_path_factory.mktemp('fuzz')) / 'fuzz.db'}"
    else:
        url = request.getfixturevalue("postgres_url")
        _clean_postgres(url)
    settings_ = Settings(database_url=url, auto_migrate=True, _env_file=None)
    setup = create_app(settings_, pipeline=pipeline)
    with TestClient(setup) as client:
        key = create_keys(client, setup)["admin"]
    app = create_app(settings_, pipeline=pipeline)
    with serve(app) as base:
        # someone in the gallery, so that verify / recognize reach deep code
        r = httpx.post(
            f"{base}/v1/identities",
            files={"image": upload(photo(people(1)[0]))},
            data={"name": "x", "external_id": "emp-1"},
            headers={"X-API-Key": key},
            timeout=60,
        )
        assert r.status_code == 201, r.text
        yield {"base_url": base, "schema": app.openapi(), "key": key}


def _operations() -> list[str]:
    spec = create_app(Settings(_env_file=None)).openapi()
    methods = ("get", "post", "patch", "delete", "put")
    return [
        f"{m.upper()} {path}" for path, item in spec["paths"].items() for m in item if m in methods
    ]


@pytest.mark.parametrize("label", _operations())
def test_operation_conforms(label: str, live: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(live["schema"])
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    headers = {"X-API-Key": live["key"]}
    checked = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
    )
    def run(case: Any) -> None:
        nonlocal checked
        response = case.call(base_url=live["base_url"], headers=headers, timeout=30)
        checked += 1
        case.validate_response(response, checks=CHECKS, headers=headers)
        if response.status_code >= 400:
            assert set(response.json()) == {"error", "detail"}, response.text

    run()
    assert checked > 0
