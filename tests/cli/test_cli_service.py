"""`facesvc db upgrade` and `facesvc keys create|list|revoke`."""

from __future__ import annotations

import pytest

from app.cli import main
from app.core.model.pipeline import FacePipeline
from app.main import create_app


def test_keys_cli(
    database_url: str,
    pipeline: FacePipeline,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fastapi.testclient import TestClient

    from app.core.config import Settings

    monkeypatch.setenv("FACESVC_DATABASE_URL", database_url)
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["keys", "create", "--name", "door", "--scope", "verify", "enroll"]) == 0
    key = capsys.readouterr().out.strip().splitlines()[-1]
    assert key.startswith("fsk_")
    prefix = key.split("_")[1]
    assert main(["keys", "list"]) == 0
    listing = capsys.readouterr().out
    assert prefix in listing and "door" in listing and key not in listing

    app = create_app(Settings(database_url=database_url, _env_file=None), pipeline=pipeline)
    with TestClient(app) as client:
        assert client.get("/v1/models", headers={"X-API-Key": key}).status_code == 200
        assert main(["keys", "revoke", prefix]) == 0
        assert client.get("/v1/models", headers={"X-API-Key": key}).status_code == 401
    assert main(["keys", "revoke", "nope"]) == 2  # not_found
    with pytest.raises(SystemExit) as exit_:
        main(["keys", "create", "--name", "x", "--scope", "root"])
    assert exit_.value.code == 3  # usage (app/cli/exit_codes.py)
