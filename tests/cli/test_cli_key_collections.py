"""`facesvc keys create --collection NAME`: a key bound to collections (issue 13)."""

from __future__ import annotations

import pytest

from app.cli import main
from app.core.model.pipeline import FacePipeline
from app.main import create_app
from tests.support.factories import people, photo, upload


def _key(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    assert main(["keys", "create", *argv]) == 0
    return capsys.readouterr().out.strip().splitlines()[-1]


def test_keys_bound_to_collections(
    database_url: str,
    pipeline: FacePipeline,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fastapi.testclient import TestClient

    from app.core.config import Settings

    monkeypatch.setenv("FACESVC_DATABASE_URL", database_url)
    assert main(["db", "upgrade"]) == 0
    # an unknown collection is refused, and no key is made
    assert main(["keys", "create", "--name", "x", "--scope", "admin", "--collection", "a"]) == 2
    assert "no collection named 'a'" in capsys.readouterr().err
    admin = _key(capsys, "--name", "root", "--scope", "admin")
    app = create_app(Settings(database_url=database_url, _env_file=None), pipeline=pipeline)
    with TestClient(app) as client:
        for name in ("a", "b", "c"):
            r = client.post("/v1/collections", headers={"X-API-Key": admin}, json={"name": name})
            assert r.status_code == 201
        bound = _key(
            capsys, "--name", "door", "--scope", "enroll", "verify", "--collection", "a",
            "--collection", "b",
        )  # fmt: skip
        assert main(["keys", "list"]) == 0
        assert "door (a, b)" in capsys.readouterr().out
        headers = {"X-API-Key": bound}
        listed = client.get("/v1/collections", headers=headers).json()["items"]
        assert [c["name"] for c in listed] == ["a", "b"]
        (person,) = people(1)
        for name, status in (("a", 201), ("b", 201), ("c", 403), ("default", 403)):
            r = client.post(
                "/v1/identities",
                headers=headers,
                files={"image": upload(photo(person))},
                data={"name": "p", "collection": name},
            )
            assert r.status_code == status, (name, r.text)
