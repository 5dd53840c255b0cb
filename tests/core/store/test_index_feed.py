"""Replicas on one Postgres: the index kept current by LISTEN/NOTIFY (issue 16).

Two apps over the same database stand for two replicas (each with its own index and its
own listening connection); the three-process test is tests/core/serving/test_replicas.py.

- The triggers: numbers in commit order without holes (a rolled-back change leaves
  none), cascades and hand-written SQL are recorded, a moved face is not.
- Another app's enroll, face delete, identity delete and collection delete reach this
  app's index without any search (no per-search catch-up while the feed is live).
- A change too large for one NOTIFY is read from the log; a missing number rebuilds the
  index from the database; a lost connection (the listening backend terminated) is
  noticed, and the rebuilt index holds exactly the database's faces, also those
  enrolled while it was away.
- A change whose notification never came is read from the log at the next heartbeat.
- SQLite has no feed and keeps the per-search catch-up.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb
from sqlalchemy.engine import make_url

from app.core.store.index_feed import HEARTBEAT_S
from tests.support.factories import people, photo
from tests.support.service import Api, MakeApi, _clean_postgres

WAIT_S = 5.0


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Postgres only: the feed is Postgres's."""
    _clean_postgres(postgres_url)
    return postgres_url


def plain(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def eventually(check: Callable[[], bool], what: str, limit: float = WAIT_S) -> float:
    """Seconds until `check` held (fails after `limit`)."""
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < limit, f"not within {limit} s: {what}"
        time.sleep(0.005)
    return time.monotonic() - start


def log_rows(url: str) -> list[tuple[Any, ...]]:
    with psycopg.connect(plain(url)) as conn:
        return conn.execute(
            "SELECT seq, added, removed, reset FROM index_changes ORDER BY seq"
        ).fetchall()


def test_the_trigger_numbers_changes_in_commit_order_without_holes(database_url: str) -> None:
    url = plain(database_url)
    start = len(log_rows(database_url)) and log_rows(database_url)[-1][0]
    identity = "0190a000-0000-7000-8000-000000000001"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO identities (id, collection_id, name, metadata, created_at, updated_at)"
            " VALUES (%s, 1, 'x', '{}', now(), now())",
            (identity,),
        )
        add = (
            "INSERT INTO faces (identity_id, model_name, model_version, dim, embedding, "
            "created_at) SELECT %s, 'm', '1', 2, '\\x00', now() FROM generate_series(1, %s)"
        )
        conn.execute(add, (identity, 2))
        with conn.transaction(force_rollback=True):  # rolled back: no number used
            conn.execute(add, (identity, 1))
        conn.execute("UPDATE faces SET identity_id = identity_id")  # moved: not a change
        conn.execute("UPDATE faces SET model_version = '2' WHERE id = (SELECT min(id) FROM faces)")
        conn.execute("DELETE FROM identities")  # faces go by the cascade
    rows = log_rows(database_url)[-3:]
    first_face = rows[0][1][0]
    assert [r[0] for r in rows] == [start + 1, start + 2, start + 3]
    assert rows[0][1:] == ([first_face, first_face + 1], [], False)
    assert rows[1][1:] == ([first_face], [], False)
    assert rows[2][1:] == ([], [first_face, first_face + 1], False)


def in_index(api: Api, face_id: int) -> Callable[[], bool]:
    return lambda: face_id in api.gallery


def not_in_index(api: Api, face_id: int) -> Callable[[], bool]:
    return lambda: face_id not in api.gallery


def test_changes_reach_the_other_replica_without_a_search(make_api: MakeApi) -> None:
    one, two = make_api(), make_api()
    assert two.app.state.index_feed.live
    a, b, c = people(3)
    first = one.enroll(photo(a), "a").json()
    eventually(in_index(two, first["face"]["id"]), "enroll seen")
    extra = one.add_face(first["identity"]["id"], photo(a, 2)).json()
    eventually(in_index(two, extra["face"]["id"]), "added face seen")
    assert two.gallery.collection_of(extra["face"]["id"]) == 1

    identity = first["identity"]["id"]
    face_url = f"/v1/identities/{identity}/faces/{extra['face']['id']}"
    assert one.delete(face_url).status_code == 204
    eventually(not_in_index(two, extra["face"]["id"]), "face delete seen")
    assert one.delete(f"/v1/identities/{identity}").status_code == 204
    eventually(not_in_index(two, first["face"]["id"]), "identity delete seen")

    assert one.post("/v1/collections", json={"name": "temp"}).status_code == 201
    temp = one.enroll(photo(b), "b", collection="temp").json()
    eventually(in_index(two, temp["face"]["id"]), "enroll in a collection seen")
    assert two.gallery.collection_of(temp["face"]["id"]) != 1
    kept = one.enroll(photo(c), "c").json()
    assert one.delete("/v1/collections/temp").status_code == 204
    eventually(not_in_index(two, temp["face"]["id"]), "collection delete seen")
    eventually(in_index(two, kept["face"]["id"]), "the other enroll seen")

    assert two.gallery.ids() == two.db_face_ids() == one.gallery.ids()
    # and a search finds what the other replica enrolled
    found = two.recognize(photo(c, 2)).json()["faces"][0]["identity"]
    assert found["id"] == kept["identity"]["id"]


def metric(api: Api, name: str) -> float:
    text = api.get("/metrics").text
    values = [line.split()[-1] for line in text.splitlines() if line.startswith(name)]
    assert values, f"no {name} in /metrics"
    return sum(float(v) for v in values)


def test_a_change_too_large_for_a_notification_is_read_from_the_log(
    make_api: MakeApi, database_url: str
) -> None:
    one, two = make_api(), make_api()
    enrolled = one.enroll(photo(people(1)[0]), "a").json()
    eventually(in_index(two, enrolled["face"]["id"]), "enroll seen")
    face = enrolled["face"]["id"]
    with psycopg.connect(plain(database_url), autocommit=True) as conn:
        # 1500 copies of the face in one statement: its ids do not fit in 8000 bytes
        conn.execute(
            "INSERT INTO faces (identity_id, model_name, model_version, dim, embedding, "
            "created_at) SELECT identity_id, model_name, model_version, dim, embedding, now() "
            "FROM faces, generate_series(1, 1500) WHERE id = %s",
            (face,),
        )
    eventually(lambda: len(two.gallery) == 1501, "1500 faces from the log")
    assert two.gallery.ids() == two.db_face_ids()
    assert metric(two, "facesvc_index_rebuilds_total") == 1  # the start only: no gap


def test_a_lost_connection_is_rebuilt_from_the_database(
    make_api: MakeApi, database_url: str
) -> None:
    one, two = make_api(), make_api()
    group = people(4)
    faces = [one.enroll(photo(p), p).json()["face"]["id"] for p in group[:2]]
    eventually(lambda: two.gallery.ids() >= set(faces), "enrolls seen")
    feed = two.app.state.index_feed
    with psycopg.connect(plain(database_url), autocommit=True) as conn:
        listening = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE query = 'LISTEN facesvc_index'"
            " AND datname = current_database()"  # not another test run's replicas
        ).fetchall()
        assert len(listening) == 2  # one per app
        for (pid,) in listening:  # both: the other app's too
            conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    faces += [one.enroll(photo(p), p).json()["face"]["id"] for p in group[2:]]
    assert one.delete(f"/v1/identities/{one_identity(one, group[0])}").status_code == 204
    eventually(lambda: feed.live and two.gallery.ids() == two.db_face_ids(), "rebuilt")
    assert two.gallery.ids() == set(faces[1:]) == one.gallery.ids()
    assert metric(two, 'facesvc_index_rebuilds_total{reason="reconnect"}') >= 1
    assert two.get("/readyz").status_code == 200
    assert metric(two, "facesvc_index_lag_changes") == 0


def one_identity(api: Api, name: str) -> str:
    page = api.get("/v1/identities", params={"limit": 100}).json()
    (identity,) = [i["id"] for i in page["items"] if i["name"] == name]
    return str(identity)


def test_readiness_and_metrics_tell_the_lag(make_api: MakeApi) -> None:
    """A replica whose feed stopped is not ready, and shows how far behind it is; its
    searches catch up by query meanwhile; started again, it is current and ready."""
    one, two = make_api(), make_api()
    assert two.get("/readyz").json() == {
        "status": "ok",
        "model": True,
        "database": True,
        "index": True,
    }
    feed = two.app.state.index_feed
    two.run(feed.stop)
    assert two.get("/readyz").status_code == 503
    a, b = people(2)
    enrolled = [one.enroll(photo(p), p).json() for p in (a, b)]
    time.sleep(0.3)
    assert metric(two, "facesvc_index_lag_changes") == 2
    assert metric(two, "facesvc_index_lag_rows") == 2
    assert metric(two, "facesvc_index_lag_seconds") >= 0.3
    ready = two.get("/readyz")
    assert ready.status_code == 503 and ready.json()["index"] is False
    found = two.recognize(photo(a, 2)).json()["faces"][0]["identity"]
    assert found["id"] == enrolled[0]["identity"]["id"]  # caught up by query

    two.run(feed.start)
    assert two.get("/readyz").status_code == 200
    assert metric(two, "facesvc_index_lag_changes") == 0
    assert metric(two, "facesvc_index_lag_seconds") == 0
    assert two.gallery.ids() == two.db_face_ids()
    assert metric(two, "facesvc_index_apply_delay_seconds_count") == 0  # none by NOTIFY
    one_more = one.enroll(photo(a), "again").json()
    eventually(in_index(two, one_more["face"]["id"]), "live again")
    assert metric(two, "facesvc_index_apply_delay_seconds_count") == 1


def test_sqlite_keeps_the_per_search_catch_up(tmp_path: Any, make_api: MakeApi) -> None:
    sqlite = make_api(database_url=f"sqlite:///{tmp_path / 'one.db'}")
    other = make_api(database_url=f"sqlite:///{tmp_path / 'one.db'}")
    assert sqlite.app.state.index_feed is None
    person = people(1)[0]
    enrolled = sqlite.enroll(photo(person), "a").json()
    assert enrolled["face"]["id"] not in other.gallery  # no feed: nothing arrives by itself
    found = other.recognize(photo(person, 2)).json()["faces"][0]["identity"]
    assert found["id"] == enrolled["identity"]["id"]  # the search caught up


def test_a_missing_number_is_a_gap_and_rebuilds_from_the_database(
    make_api: MakeApi, database_url: str
) -> None:
    """A notification numbered past the next one (here sent by hand: the notifications
    in between never came) makes the feed read the missing changes from the log; the log
    does not hold them, so it rebuilds, and the index equals the database."""
    one, two = make_api(), make_api()
    enrolled = one.enroll(photo(people(1)[0]), "a").json()
    eventually(in_index(two, enrolled["face"]["id"]), "enroll seen")
    feed = two.app.state.index_feed
    ahead = feed.applied + 5
    with psycopg.connect(plain(database_url), autocommit=True) as conn:
        conn.execute(f"""NOTIFY facesvc_index, '{{"seq": {ahead}, "add": [], "del": []}}'""")
    eventually(lambda: metric(two, 'facesvc_index_rebuilds_total{reason="gap"}') == 1, "gap")
    assert feed.live and two.gallery.ids() == two.db_face_ids() == {enrolled["face"]["id"]}
    later = one.enroll(photo(people(2)[1]), "b").json()  # and it follows on from there
    eventually(in_index(two, later["face"]["id"]), "enroll after the gap seen")


def test_a_missed_notification_is_caught_up_by_the_heartbeat(
    make_api: MakeApi, database_url: str
) -> None:
    """A change committed without its NOTIFY (the triggers off for its transaction and
    its log row written by hand: a notification lost on the way) reaches the replica at
    its next heartbeat, which finds the log ahead of the number it applied and reads the
    change from there, without a rebuild."""
    one, two = make_api(), make_api()
    face = one.enroll(photo(people(1)[0]), "a").json()["face"]["id"]
    eventually(in_index(two, face), "enroll seen")
    feed = two.app.state.index_feed
    with psycopg.connect(plain(database_url), autocommit=True) as listener:
        listener.execute("LISTEN facesvc_index")
        with psycopg.connect(plain(database_url)) as conn:  # one transaction
            conn.execute("SET LOCAL session_replication_role = replica")  # no trigger fires
            row = conn.execute(
                "INSERT INTO faces (identity_id, model_name, model_version, dim, embedding, "
                "created_at) SELECT identity_id, model_name, model_version, dim, embedding, "
                "now() FROM faces WHERE id = %s RETURNING id",
                (face,),
            ).fetchone()
            assert row is not None
            copy = int(row[0])
            conn.execute(
                "INSERT INTO index_changes (seq, at, added, removed, reset) "
                "SELECT max(seq) + 1, clock_timestamp(), %s, '[]', false FROM index_changes",
                (Jsonb([copy]),),
            )
        eventually(in_index(two, copy), "the missed change applied", HEARTBEAT_S + 3.0)
        assert list(listener.notifies(timeout=0.2)) == []  # no NOTIFY was ever sent for it
    assert feed.live and two.gallery.ids() == two.db_face_ids() == {face, copy}
    assert metric(two, "facesvc_index_rebuilds_total") == 1  # the start only: no rebuild
