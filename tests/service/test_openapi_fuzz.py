"""Property-based API test: schemathesis against our own OpenAPI finds no 500.

Runs a real uvicorn server (one lifespan) on SQLite with the real pipeline.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402

from app.config import Settings  # noqa: E402
from app.face.pipeline import FacePipeline  # noqa: E402
from app.main import create_app  # noqa: E402
from tests.service.factories import people, photo, upload  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def live(
    tmp_path_factory: pytest.TempPathFactory, pipeline: FacePipeline
) -> Iterator[dict[str, Any]]:
    import httpx
    import uvicorn

    db = Path(tmp_path_factory.mktemp("fuzz")) / "fuzz.db"
    app = create_app(
        Settings(database_url=f"sqlite:///{db}", auth_mode="open", _env_file=None),
        pipeline=pipeline,
    )
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    for _ in range(200):
        if server.started:
            break
        time.sleep(0.05)
    # something in the gallery, so that verify / recognize reach deep code
    r = httpx.post(
        f"{base}/v1/identities",
        files={"image": upload(photo(people(1)[0]))},
        data={"name": "x"},
        timeout=60,
    )
    assert r.status_code == 201, r.text
    yield {"base_url": base, "schema": app.openapi()}
    server.should_exit = True
    thread.join(timeout=10)


def _operations() -> list[str]:
    spec = create_app(Settings(_env_file=None)).openapi()
    methods = ("get", "post", "patch", "delete", "put")
    return [
        f"{m.upper()} {path}" for path, item in spec["paths"].items() for m in item if m in methods
    ]


@pytest.mark.parametrize("label", _operations())
def test_no_server_errors(label: str, live: dict[str, Any]) -> None:
    schema = schemathesis.openapi.from_dict(live["schema"])
    method, path = label.split(" ", 1)
    operation = schema[path][method]
    checked = 0

    @given(case=operation.as_strategy())
    @settings(
        max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True
    )
    def run(case: Any) -> None:
        nonlocal checked
        response = case.call(base_url=live["base_url"], timeout=30)
        checked += 1
        assert response.status_code < 500, (label, response.status_code, response.text, case.body)
        if response.status_code >= 400:
            assert set(response.json()) == {"error", "detail"}, response.text

    run()
    assert checked > 0
