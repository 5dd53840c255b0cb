"""The audit trail: every enroll, face and identity delete, update, key creation and
revocation leaves one row (and one log line after its commit), with the key that did it
and the request id; refused changes are recorded with their error code. Real pipeline,
real photos, SQLite and Postgres."""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from app.cli import main
from app.core import logs
from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from tests.support.factories import people, photo
from tests.support.service import Api, new_uuid


def prefix(key: str) -> str:
    return key.split("_")[1]


def audit(api: Api, scope: str = "admin", **params: Any) -> dict[str, Any]:
    r = api.get("/v1/audit", scope, params=params)
    assert r.status_code == 200, r.text
    body: dict[str, Any] = r.json()
    return body


def test_gallery_changes_are_audited_with_key_and_request_id(
    api: Api, caplog: pytest.LogCaptureFixture
) -> None:
    (ada,) = people(1)
    enroller = prefix(api.keys["enroll"])
    with caplog.at_level(logging.INFO, logger="facesvc.audit"):
        r = api.post(
            "/v1/identities",
            "enroll",
            files={"image": ("a.jpg", photo(ada), "image/jpeg")},
            data={"name": "Ada", "external_id": "emp-1"},
            headers={"X-Request-ID": "door-7.enroll-1"},
        )
        assert r.status_code == 201, r.text
        identity_id, first_face = r.json()["identity"]["id"], r.json()["face"]["id"]
        r = api.add_face(identity_id, photo(ada, 2))
        assert r.status_code == 201, r.text
        second_face = r.json()["face"]["id"]
        r = api.request("PATCH", f"/v1/identities/{identity_id}", "enroll", json={"name": "Ada L."})
        assert r.status_code == 200, r.text
        assert api.delete(f"/v1/identities/{identity_id}/faces/{second_face}").status_code == 204
        # enroll does not delete (the `delete` scope); refused before any work: not audited
        assert api.delete(f"/v1/identities/{identity_id}", "enroll").status_code == 403
        assert api.delete(f"/v1/identities/{identity_id}").status_code == 204

    items = audit(api)["items"]  # newest first
    admin = prefix(api.keys["admin"])
    summary = [(e["action"], e["actor"], e["outcome"], e["target"]) for e in items]
    assert summary[:5] == [
        ("identity.delete", admin, "ok", {"identity_id": identity_id}),
        ("face.delete", admin, "ok", {"identity_id": identity_id, "face_id": second_face}),
        ("identity.update", enroller, "ok", {"identity_id": identity_id}),
        ("face.create", admin, "ok", {"identity_id": identity_id, "face_id": second_face}),
        ("identity.create", enroller, "ok", {"identity_id": identity_id, "face_id": first_face}),
    ]
    enrolled = items[4]
    assert enrolled["request_id"] == "door-7.enroll-1"
    assert enrolled["actor_name"] == "test-enroll"
    # the other requests sent no id: each got its own, echoed and recorded
    assert len({e["request_id"] for e in items[:5]}) == 5
    # nothing that names the person: ids only (the external_id outlives no deletion here)
    assert "emp-1" not in str(items) and "Ada" not in str(items)
    # the key rows of the fixture's keys come first in time
    assert {e["action"] for e in items[5:]} == {"key.create"}
    # one log line per change, after its commit, with the same fields
    lines = [r for r in caplog.records if r.name == "facesvc.audit"]
    assert [rec.audit["action"] for rec in lines] == [  # type: ignore[attr-defined]
        "identity.create",
        "face.create",
        "identity.update",
        "face.delete",
        "identity.delete",
    ]
    assert lines[0].audit["request_id"] == "door-7.enroll-1"  # type: ignore[attr-defined]
    assert lines[0].audit["id"] == enrolled["id"]  # type: ignore[attr-defined]
    # as a JSON line (FACESVC_LOG_FORMAT=json): the row's fields under "audit"
    line = json.loads(logs.JsonFormatter().format(lines[0]))
    assert line["logger"] == "facesvc.audit" and line["level"] == "INFO"
    assert line["audit"] == {**enrolled, "at": line["audit"]["at"]}
    assert line["message"].startswith(f"identity.create by {enroller} (test-enroll): ok")


def test_refused_changes_are_audited_with_their_error_and_invent_nothing(api: Api) -> None:
    (ada,) = people(1)
    assert api.enroll(photo(ada), "Ada", external_id="emp-1").status_code == 201
    before = audit(api)["items"][0]["id"]
    r = api.enroll(photo(ada, 2), "Ada again", external_id="emp-1")
    assert r.status_code == 409, r.text
    unknown = new_uuid()
    assert api.delete(f"/v1/identities/{unknown}").status_code == 404
    newer = audit(api)["items"]
    assert [(e["action"], e["outcome"], e["target"]) for e in newer if e["id"] > before] == [
        ("identity.delete", "not_found", {"identity_id": unknown}),
        ("identity.create", "conflict", {}),
    ]
    # the refused enroll stored nothing: one identity, one ok create
    creates = [e for e in newer if e["action"] == "identity.create" and e["outcome"] == "ok"]
    assert len(creates) == 1
    assert len(api.db_face_ids()) == 1
    # the outcome filter is the service's: made, or refused whatever the error
    refused = audit(api, outcome="refused")["items"]
    assert [e["outcome"] for e in refused] == ["not_found", "conflict"]
    made = audit(api, outcome="ok")["items"]
    assert made and {e["outcome"] for e in made} == {"ok"}
    assert len(made) + len(refused) == len(newer)
    r = api.get("/v1/audit", params={"outcome": "not_found"})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"


def test_filters_and_pages(api: Api) -> None:
    ids = []
    for n, person in enumerate(people(3)):
        r = api.enroll(photo(person), f"Person {n}")
        assert r.status_code == 201, r.text
        ids.append(r.json()["identity"]["id"])
    creates = audit(api, action="identity.create")["items"]
    assert [e["target"]["identity_id"] for e in creates] == ids[::-1]
    page1 = audit(api, action="identity.create", limit=2)
    assert len(page1["items"]) == 2 and page1["next_before"] == page1["items"][-1]["id"]
    page2 = audit(api, action="identity.create", limit=2, before=page1["next_before"])
    assert [e["id"] for e in page1["items"] + page2["items"]] == [e["id"] for e in creates]
    assert page2["next_before"] is None
    admin = prefix(api.keys["admin"])
    assert {e["actor"] for e in audit(api, actor=admin)["items"]} == {admin}
    assert audit(api, actor="nobody")["items"] == []
    # since / until, in any offset: the same instant
    now = datetime.now(UTC)
    later = (now + timedelta(hours=1)).isoformat()
    assert audit(api, since=later)["items"] == []
    east = (now + timedelta(minutes=1)).astimezone(timezone(timedelta(hours=5)))
    assert len(audit(api, until=east.isoformat(), action="identity.create")["items"]) == 3
    west = (now - timedelta(minutes=10)).astimezone(timezone(timedelta(hours=-5)))
    assert len(audit(api, since=west.isoformat(), action="identity.create")["items"]) == 3
    hour_ago = (now - timedelta(hours=1)).isoformat()
    assert audit(api, until=hour_ago)["items"] == []
    r = api.get("/v1/audit", params={"since": "yesterday"})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"


@pytest.mark.parametrize("path", ["/v1/audit", "/v1/decisions"])
@pytest.mark.parametrize("scope", ["enroll", "verify"])
def test_only_admin_keys_read_the_trail(api: Api, path: str, scope: str) -> None:
    r = api.get(path, scope)
    assert r.status_code == 403 and r.json()["error"] == "forbidden"
    assert api.client.get(path).status_code == 401
    assert api.get(path).status_code == 200


def test_keys_made_and_revoked_by_the_cli_are_audited_as_cli(
    database_url: str,
    pipeline: FacePipeline,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from fastapi.testclient import TestClient

    from app.main import create_app

    monkeypatch.setenv("FACESVC_DATABASE_URL", database_url)
    assert main(["db", "upgrade"]) == 0
    assert main(["keys", "create", "--name", "ops", "--scope", "admin"]) == 0
    admin = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["keys", "create", "--name", "door", "--scope", "verify"]) == 0
    door = capsys.readouterr().out.strip().splitlines()[-1]
    assert main(["keys", "revoke", prefix(door)]) == 0
    assert main(["keys", "revoke", prefix(door)]) == 0  # already revoked: no change
    app = create_app(Settings(database_url=database_url, _env_file=None), pipeline=pipeline)
    with TestClient(app) as client:
        r = client.get("/v1/audit", headers={"X-API-Key": admin})
    assert r.status_code == 200, r.text
    rows = [(e["action"], e["actor"], e["target"], e["request_id"]) for e in r.json()["items"]]
    assert rows == [
        ("key.revoke", "cli", {"key": prefix(door), "name": "door"}, None),
        ("key.create", "cli", {"key": prefix(door), "name": "door"}, None),
        ("key.create", "cli", {"key": prefix(admin), "name": "ops"}, None),
    ]
    assert door not in r.text and door.split("_")[2] not in r.text  # never the secret
