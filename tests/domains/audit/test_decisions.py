"""Recorded decisions (FACESVC_RECORD_DECISIONS): off by default; when on, one row per
verify and per recognized face, written after the answer without holding a connection
through inference; deleted after the retention. Real pipeline and photos, SQLite and
Postgres."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text

from app.core.store.rows.audit import DecisionRecord
from tests.api.test_serving import _watch_connections_during_inference
from tests.support.factories import people, photo, upload
from tests.support.service import Api, MakeApi

COLUMNS = {c.name for c in DecisionRecord.__table__.columns}


def decisions(api: Api, **params: Any) -> list[dict[str, Any]]:
    r = api.get("/v1/decisions", params=params)
    assert r.status_code == 200, r.text
    items: list[dict[str, Any]] = r.json()["items"]
    return items


def test_not_recorded_by_default(api: Api) -> None:
    ada, _ = people(2)
    r = api.enroll(photo(ada), "Ada")
    identity_id = r.json()["identity"]["id"]
    assert api.verify(photo(ada, 2), "verify", identity_id=identity_id).json()["match"]
    assert api.recognize(photo(ada, 2), "verify").status_code == 200
    assert decisions(api) == []


def test_recorded_when_on_with_no_image_nor_embedding(make_api: MakeApi) -> None:
    api = make_api(record_decisions=True)
    held = _watch_connections_during_inference(api.app)
    ada, stranger = people(2)
    identity_id = api.enroll(photo(ada), "Ada").json()["identity"]["id"]
    door = api.keys["verify"].split("_")[1]

    match = api.post(
        "/v1/verify",
        "verify",
        files={"image": upload(photo(ada, 2))},
        data={"identity_id": identity_id},
        headers={"X-Request-ID": "gate-1"},
    ).json()
    miss = api.verify(photo(stranger), "verify", identity_id=identity_id).json()
    known = api.recognize(photo(ada, 2), "verify").json()
    unknown = api.recognize(photo(stranger), "verify").json()
    assert match["match"] and not miss["match"]
    assert known["faces"][0]["identity"]["id"] == identity_id
    assert unknown["faces"][0]["identity"] is None
    # enroll, 2 verifies, 2 recognizes: no request held a connection during inference
    assert held == [False] * 5

    rows = decisions(api)[::-1]  # oldest first
    summary = [(d["action"], d["result"], d["identity_id"], d["actor"]) for d in rows]
    assert summary == [
        ("verify", "match", identity_id, door),
        ("verify", "no_match", identity_id, door),  # the claimed one, though not shown
        ("recognize", "known", identity_id, door),
        ("recognize", "unknown", None, door),
    ]
    assert rows[0]["distance"] == match["distance"]
    assert rows[0]["threshold"] == match["threshold"]
    assert rows[1]["distance"] is None  # the answer to a key without `read` had none
    assert rows[2]["distance"] == known["faces"][0]["distance"]
    assert rows[3]["threshold"] == unknown["threshold"]
    assert rows[0]["request_id"] == "gate-1"
    # what a row can hold at all: no image, no embedding, no key secret
    assert {
        "id",
        "at",
        "actor",
        "actor_name",
        "action",
        "result",
        "identity_id",
        "distance",
        "threshold",
        "collection",
        "request_id",
    } == COLUMNS
    assert [d["action"] for d in decisions(api, action="verify")] == ["verify", "verify"]
    # by result: one, several (the doors opened), and with the action
    assert [d["id"] for d in decisions(api, result="known")] == [rows[2]["id"]]
    opened = decisions(api, result=["known", "match"])
    assert [d["id"] for d in opened] == [rows[2]["id"], rows[0]["id"]]  # newest first
    refused = decisions(api, result=["unknown", "no_match"], action="recognize")
    assert [(d["action"], d["result"]) for d in refused] == [("recognize", "unknown")]
    assert decisions(api, result="no_match", action="recognize") == []
    r = api.get("/v1/decisions", params={"result": "granted"})
    assert r.status_code == 422 and r.json()["error"] == "validation_error"
    assert r.json()["detail"].startswith("result"), r.json()
    assert decisions(api, actor="someone-else") == []
    # failures decide nothing: no row
    r = api.verify(b"not an image", "verify", identity_id=identity_id)
    assert r.status_code == 422
    assert len(decisions(api)) == 4


def test_retention_prunes_old_decisions(make_api: MakeApi) -> None:
    api = make_api(record_decisions=True, decision_retention_days=30)
    now = datetime.now(UTC)

    def insert(days_ago: float) -> None:
        async def add() -> None:
            async with api.app.state.sessions() as session, session.begin():
                session.add(
                    DecisionRecord(
                        at=now - timedelta(days=days_ago),
                        actor="old",
                        actor_name="old",
                        action="verify",
                        result="match",
                        identity_id=None,
                        distance=0.1,
                        threshold=0.3,
                    )
                )

        api.run(add)

    insert(45)
    insert(29)
    (ada,) = people(1)
    identity_id = api.enroll(photo(ada), "Ada").json()["identity"]["id"]
    assert api.verify(photo(ada, 2), "verify", identity_id=identity_id).status_code == 200
    # the write pruned: the 45-day-old row is gone, the 29-day-old one kept
    ages = sorted(_days_ago(now, d) for d in decisions(api))
    assert ages == [0, 29]
    # pruning runs at most every few minutes on writes; and on call
    insert(31)
    assert api.verify(photo(ada, 2), "verify", identity_id=identity_id).status_code == 200
    assert len(decisions(api)) == 4
    assert api.run(api.app.state.decision_log.prune) == 1
    assert sorted(_days_ago(now, d) for d in decisions(api)) == [0, 0, 29]
    # and at start, also when recording has been switched off since
    insert(31)
    restarted = make_api(record_decisions=False, decision_retention_days=30)
    assert sorted(_days_ago(now, d) for d in decisions(restarted)) == [0, 0, 29]


def _days_ago(now: datetime, row: dict[str, Any]) -> int:
    at = datetime.fromisoformat(row["at"].replace("Z", "+00:00"))
    return round((now - at).total_seconds() / 86400)


def test_a_failed_write_never_fails_the_answer(
    make_api: MakeApi, caplog: pytest.LogCaptureFixture
) -> None:
    """The door still gets its answer; the lost record is logged as an error."""
    api = make_api(record_decisions=True)
    (ada,) = people(1)
    identity_id = api.enroll(photo(ada), "Ada").json()["identity"]["id"]

    async def drop() -> None:
        async with api.app.state.sessions() as session, session.begin():
            await session.execute(text("DROP TABLE decisions"))

    async def restore() -> None:  # the next test's database is this one, migrated
        async with api.app.state.sessions.kw["bind"].begin() as connection:
            await connection.run_sync(DecisionRecord.__table__.create)

    api.run(drop)
    try:
        with caplog.at_level(logging.ERROR, logger="facesvc.audit"):
            r = api.verify(photo(ada, 2), "verify", identity_id=identity_id)
    finally:
        api.run(restore)
    assert r.status_code == 200 and r.json()["match"] is True
    assert "could not record 1 decision(s)" in caplog.text
    assert api.verify(photo(ada, 2), "verify", identity_id=identity_id).status_code == 200
    assert len(decisions(api)) == 1  # recorded again once the table is back
