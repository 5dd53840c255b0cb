"""Three replicas on one Postgres (issue 16, "Must show"): three `facesvc serve`
processes on their own ports, one worker each (FACESVC_INFERENCE_BACKEND=thread), each
index kept current by LISTEN/NOTIFY (app/core/store/index_feed.py).

- An identity enrolled through replica 1 is recognized by replicas 2 and 3; the lag from
  the enroll's response to the face being in each other index is measured and its p99
  printed against the 200 ms target (docs/deploy.md quotes the runs). The test holds
  every change to LAG_BOUND_S, well under the 5 s heartbeat, so it fails when changes
  arrive by the heartbeat rather than by NOTIFY, but not when a busy CI machine adds
  a slow sample to a p99 of 26 (speed is a measurement, not a pass mark).
- A deleted identity is not returned by any replica once the DELETE answered and that
  lag passed (nor listed among the rejected candidates).
- Replica 3 killed with SIGKILL and restarted while enrolls and deletes go on through
  the other two converges to the database exactly: the same face count, and the same
  face ids, read through the public API (a recognize listing every identity).

The index is observed through /metrics (facesvc_index_size) and /v1/recognize only.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, select

from app.core.store.rows.identities import Face
from tests.core.serving.test_process_death import Server, enroll
from tests.support.factories import people, photo
from tests.support.service import _clean_postgres

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

LAG_TARGET_S = 0.2  # the target for p99: printed
LAG_BOUND_S = 2.0  # every change, asserted: a NOTIFY, not the heartbeat (5 s), delivered it
REPLICA = {"inference_backend": "thread", "workers": "1", "max_top_k": "1000"}


@pytest.fixture
def database_url(postgres_url: str) -> str:
    """Postgres only: replicas share one, and learn of changes by its NOTIFY."""
    _clean_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def replicas(database_url: str, tmp_path: Path) -> Iterator[Callable[[int], list[Server]]]:
    started: list[Server] = []

    def start(count: int) -> list[Server]:
        with ThreadPoolExecutor(count) as pool:  # the model loads overlap
            new = list(pool.map(lambda _: Server(database_url, tmp_path, **REPLICA), range(count)))
        started.extend(new)
        return new

    yield start
    for server in started:
        if server.process.poll() is None:
            server.kill()


def db_face_ids(database_url: str) -> set[int]:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return set(conn.execute(select(Face.id)).scalars())
    finally:
        engine.dispose()


def recognize(server: Server, image: bytes, **fields: str) -> list[dict[str, object]]:
    files = {"image": ("probe.jpg", image, "image/jpeg")}
    r = server.client.post("/v1/recognize", files=files, data=fields)
    assert r.status_code == 200, r.text
    faces: list[dict[str, object]] = r.json()["faces"]
    return faces


def who(server: Server, person: str) -> str | None:
    identity = recognize(server, photo(person, 2))[0]["identity"]
    return None if identity is None else str(identity["id"])  # type: ignore[index]


def listed_face_ids(server: Server) -> set[int]:
    """Every face id the replica's index holds: one face per identity here, so a
    recognize listing every identity (rejected ones too) names them all."""
    face = recognize(server, photo(people(1)[0], 2), top_k="1000", include_rejected="true")[0]
    return {int(c["face_id"]) for c in face["candidates"]}  # type: ignore[attr-defined]


def wait_size(servers: list[Server], size: int, start: float, limit: float = 10.0) -> list[float]:
    """Seconds from `start` until each server's index held `size` faces (each polled
    from a thread of its own, every 5 ms: a scrape costs the replica a few ms of CPU)."""

    def one(server: Server) -> float:
        while server.index_size() != size:
            assert time.perf_counter() - start < limit, f"index size {size} not reached"
            time.sleep(0.005)
        return time.perf_counter() - start

    with ThreadPoolExecutor(len(servers)) as pool:
        return list(pool.map(one, servers))


def test_three_replicas_agree_and_a_killed_one_converges(
    replicas: Callable[[int], list[Server]], database_url: str
) -> None:
    one, two, three = replicas(3)
    everyone = people()
    gone, steady = everyone[0], everyone[1:]

    # ---- enrolled through replica 1: in replicas 2 and 3, lag measured
    lags: list[float] = []
    ids: dict[str, str] = {}
    for n, person in enumerate(everyone, start=1):
        r = enroll(one.client, person)
        answered = time.perf_counter()
        assert r.status_code == 201, r.text
        ids[person] = r.json()["identity"]["id"]
        lags += wait_size([two, three], n, answered)
    for person in steady[:3]:
        assert who(two, person) == who(three, person) == ids[person], person

    # ---- deleted through replica 1: gone everywhere after the answer plus the lag
    r = one.client.delete(f"/v1/identities/{ids[gone]}")
    answered = time.perf_counter()
    assert r.status_code == 204
    delete_lags = wait_size([two, three], len(everyone) - 1, answered)
    lags += delete_lags
    p99 = float(np.percentile(lags, 99))
    print(
        f"\nreplica lag over {len(lags)} changes (enroll or delete answered -> in the "
        f"other index): p50 {np.percentile(lags, 50) * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms (target {LAG_TARGET_S * 1000:.0f} ms), "
        f"max {max(lags) * 1000:.1f} ms"
    )
    delays = [
        metric(s, "facesvc_index_apply_delay_seconds_sum")
        / metric(s, "facesvc_index_apply_delay_seconds_count")
        for s in (two, three)
    ]
    print(f"commit -> applied, as replicas 2 and 3 measured it: mean {max(delays) * 1000:.1f} ms")
    assert max(lags) <= LAG_BOUND_S
    for server in (one, two, three):
        for face in recognize(server, photo(gone, 2), top_k="5", include_rejected="true"):
            assert face["identity"] is None or face["identity"]["id"] != ids[gone]  # type: ignore[index]
            assert all(c["identity"]["id"] != ids[gone] for c in face["candidates"])  # type: ignore[attr-defined,index]

    # ---- replica 3 killed -9 and restarted while enrolls and deletes go on
    stop = threading.Event()
    errors: list[str] = []

    def burst(server: Server, tag: str) -> None:
        with httpx.Client(base_url=server.url, timeout=60) as client:
            n = 0
            while not stop.is_set():
                person = steady[n % len(steady)]
                files = {"image": (f"{person}.jpg", photo(person), "image/jpeg")}
                r = client.post("/v1/identities", files=files, data={"name": f"{tag}-{n}"})
                if r.status_code != 201:
                    errors.append(r.text)
                elif n % 3 == 2:  # every third one deleted again
                    d = client.delete(f"/v1/identities/{r.json()['identity']['id']}")
                    if d.status_code != 204:
                        errors.append(d.text)
                n += 1

    with ThreadPoolExecutor(2) as pool:
        bursts = [pool.submit(burst, one, "one"), pool.submit(burst, two, "two")]
        time.sleep(1.0)
        three.kill()
        killed = len(db_face_ids(database_url))
        down = time.perf_counter()
        (three,) = replicas(1)  # ready: the index rebuilt, the feed listening
        restarted = len(db_face_ids(database_url))
        up = time.perf_counter() - down
        time.sleep(1.5)  # enrolls and deletes reach the restarted replica by NOTIFY
        stop.set()
        for b in bursts:
            b.result()
    assert not errors, errors[:3]
    expected = db_face_ids(database_url)
    assert len(expected) > len(everyone) + 5  # the bursts did enroll
    settled = time.perf_counter()
    wait_size([one, two, three], len(expected), settled)
    for server in (one, two, three):
        assert server.index_size() == len(expected)
        assert listed_face_ids(server) == expected
    # the restarted replica rebuilt once, then followed the changes made since by NOTIFY
    assert metric(three, "facesvc_index_rebuilds_total") == 1
    assert metric(three, "facesvc_index_apply_delay_seconds_count") > 0
    print(
        f"replica 3 down {up:.1f} s (kill -9 to ready); faces: {killed} at the kill, "
        f"{restarted} when it was ready again, {len(expected)} at the end"
    )


def metric(server: Server, name: str) -> float:
    lines = server.client.get("/metrics").text.splitlines()
    return sum(float(line.split()[-1]) for line in lines if line.startswith(name))
