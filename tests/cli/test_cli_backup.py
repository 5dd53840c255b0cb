"""`facesvc export` / `facesvc import` (issue 13): a gallery moved from SQLite to
PostgreSQL keeps every collection, identity and embedding bit for bit, and recognize
answers exactly as before; broken or clashing files change nothing."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, select

from app.cli import main
from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.core.store import db
from app.core.store.rows.collections import Collection
from app.core.store.rows.identities import Face, Identity
from app.main import create_app
from tests.support.factories import people, photo, upload
from tests.support.service import _clean_postgres, create_keys


def _utc(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return value


def _rows(url: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every stored value of the gallery, in id order (the collections by name, without
    the default one's creation time: each database's migration made its own)."""
    engine = create_engine(db.sync_url(url))
    try:
        with engine.connect() as conn:
            names = dict(conn.execute(select(Collection.id, Collection.name)).all())
            collections = [
                (r.name, r.description, r.metadata, r.name != "default" and _utc(r.created_at))
                for r in conn.execute(select(Collection.__table__).order_by(Collection.name))
            ]
            identities = [
                (r.id, names[r.collection_id], r.name, r.external_id, r.metadata,
                 _utc(r.created_at), _utc(r.updated_at))
                for r in conn.execute(select(Identity.__table__).order_by(Identity.id))
            ]  # fmt: skip
            faces = [
                tuple(_utc(v) for v in r)
                for r in conn.execute(select(Face.__table__).order_by(Face.id))
            ]
    finally:
        engine.dispose()
    return {"collections": collections, "identities": identities, "faces": faces}


def _service(url: str, pipeline: FacePipeline) -> Any:
    settings = Settings(database_url=url, auto_migrate=True, _env_file=None)
    return create_app(settings, pipeline=pipeline)


def _answers(client: TestClient, key: str, probes: list[tuple[str, bytes]]) -> list[Any]:
    out = []
    for collection, image in probes:
        r = client.post(
            "/v1/recognize",
            headers={"X-API-Key": key},
            files={"image": upload(image)},
            data={"collection": collection, "include_rejected": "true", "top_k": "5"},
        )
        assert r.status_code == 200, r.text
        out.append(r.json())
    return out


def test_sqlite_to_postgres_round_trip(
    tmp_path: Path,
    postgres_url: str,
    pipeline: FacePipeline,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    source = f"sqlite:///{tmp_path / 'source.db'}"
    a, b, c = people(3)
    probes = [(where, photo(p, 2)) for where in ("default", "north") for p in (a, b, c)]
    app = _service(source, pipeline)
    with TestClient(app) as client:
        admin = create_keys(client, app)["admin"]
        h = {"X-API-Key": admin}
        r = client.post(
            "/v1/collections",
            headers=h,
            json={"name": "north", "description": "North door", "metadata": {"floor": 2}},
        )
        assert r.status_code == 201
        for person, where, extra in (
            (a, "default", "a-1"),
            (b, "north", None),
            (a, "north", "a-1"),
        ):
            data = {"name": f"{person} in {where}", "collection": where,
                    "metadata": json.dumps({"team": where, "n": [1.5, None]})}  # fmt: skip
            if extra:
                data["external_id"] = extra
            r = client.post(
                "/v1/identities", headers=h, files={"image": upload(photo(person))}, data=data
            )
            assert r.status_code == 201, r.text
        more = client.post(
            f"/v1/identities/{r.json()['identity']['id']}/faces",
            headers=h,
            files={"image": upload(photo(a, 2))},
            data={"collection": "north"},
        )
        assert more.status_code == 201
        client.post(
            "/v1/identities", headers=h, files={"image": upload(photo(c))}, data={"name": "c"}
        )
        before = _answers(client, admin, probes)
    assert sum(f["identity"] is not None for answer in before for f in answer["faces"]) >= 4

    export = tmp_path / "gallery.jsonl"
    monkeypatch.setenv("FACESVC_DATABASE_URL", source)
    assert main(["export", "-o", str(export)]) == 0
    assert "2 collection(s), 4 identities, 5 faces" in capsys.readouterr().out
    lines = [json.loads(line) for line in export.read_text().splitlines()]
    assert lines[0]["format"] == "facesvc-export" and lines[0]["version"] == 1
    assert [m["name"] for m in lines[0]["models"]] == [pipeline.model[0]]
    assert lines[-1] == {"type": "end", "collections": 2, "identities": 4, "faces": 5}

    _clean_postgres(postgres_url)
    monkeypatch.setenv("FACESVC_DATABASE_URL", postgres_url)
    assert main(["import", str(export)]) == 0
    assert "2 collection(s)" in capsys.readouterr().out
    assert _rows(postgres_url) == _rows(source)  # every value, embeddings' bytes included

    app = _service(postgres_url, pipeline)
    with TestClient(app) as client:
        admin = create_keys(client, app)["admin"]
        assert _answers(client, admin, probes) == before
        # the sequences moved past the imported ids: enrolling goes on
        r = client.post(
            "/v1/identities",
            headers={"X-API-Key": admin},
            files={"image": upload(photo(people(4)[3]))},
            data={"name": "new"},
        )
        assert r.status_code == 201 and r.json()["face"]["id"] > 5
        assert (
            client.post(
                "/v1/collections", headers={"X-API-Key": admin}, json={"name": "south"}
            ).status_code
            == 201
        )

    # importing the same file again clashes on ids: refused whole, nothing added
    stored = _rows(postgres_url)
    assert main(["import", str(export)]) == 2
    assert "conflict" in capsys.readouterr().err
    assert _rows(postgres_url) == stored


def test_broken_files_are_refused(
    tmp_path: Path,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("FACESVC_DATABASE_URL", database_url)
    assert main(["db", "upgrade"]) == 0
    export = tmp_path / "empty.jsonl"
    assert main(["export", "-o", str(export)]) == 0
    whole = export.read_text().splitlines()
    header = json.loads(whole[0])
    face = {
        "type": "face", "id": 1, "identity_id": "0190a000-0000-7000-8000-000000000001",
        "model_name": "other-model", "model_version": "9", "dim": 2,
        "embedding": "AACAPwAAAEA=", "box": None, "detection_score": None,
        "thumbnail": None, "created_at": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip
    identity = {
        "type": "identity", "id": face["identity_id"], "collection": "default",
        "name": "x", "external_id": None, "metadata": {},
        "created_at": "2026-01-01T00:00:00+00:00", "updated_at": "2026-01-01T00:00:00+00:00",
    }  # fmt: skip
    end = {"type": "end", "collections": 1, "identities": 1, "faces": 1}
    cases = {
        "not json": ["{", *whole[1:]],
        "a newer version": [json.dumps({**header, "version": 2}), *whole[1:]],
        "cut short": whole[:-1],
        "counts wrong": [*whole[:-1], json.dumps({**json.loads(whole[-1]), "faces": 3})],
        "another model": [
            *whole[:-1], json.dumps(identity), json.dumps(face), json.dumps(end)
        ],
    }  # fmt: skip
    for name, lines in cases.items():
        broken = tmp_path / "broken.jsonl"
        broken.write_text("\n".join(lines) + "\n")
        assert main(["import", str(broken)]) == 2, name
        err = capsys.readouterr().err
        assert ("model_mismatch" if name == "another model" else "validation_error") in err, name
    # with --any-model the foreign face is taken as it is (for `facesvc reembed`)
    assert main(["import", "--any-model", str(broken)]) == 0
