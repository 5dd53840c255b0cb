"""Real process death: `facesvc serve` in a subprocess, killed with SIGKILL mid-work, then
restarted over the same database (SQLite and PostgreSQL).

- During a burst of enrolls and deletes: after the restart every 201 is there, every 204
  is gone, search finds the enrolled people and not the deleted ones, and the rebuilt
  index holds exactly the database's faces.
- During a style-transfer job: the restarted process re-runs it
  (FACESVC_STYLIZE_ON_RESTART=rerun); killed again and restarted under `fail`, it is
  marked failed with the reason (docs/stylize.md, "Restart").

The whole process group is killed, so any worker processes `serve` starts die with it.
One server at a time; the model load per start is the main cost.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, func, select

from app.core.store.rows.identities import Face
from tests.support.factories import people, photo

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

ROOT = Path(__file__).resolve().parents[3]
STYLE = ROOT / "tests" / "data" / "styles" / "starry_night_96.png"
JOB = {"network": "dlib-resnet", "max_side": "48", "seed": "1", "steps": "400"}
STALE_S = 1.0  # heartbeat age that counts as a dead process (the default is 60 s)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    """`facesvc serve` in its own session (process group) on a free loopback port."""

    def __init__(self, database_url: str, tmp: Path, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (tmp / f"serve-{self.port}.log").open("wb")
        environ = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FACESVC_DATABASE_URL": database_url,
            "FACESVC_AUTO_MIGRATE": "true",
            "FACESVC_AUTH_MODE": "open",
            "FACESVC_TORCH_THREADS": "1",
            "FACESVC_STYLIZE_RESULTS_DIR": str(tmp / "results"),
            "FACESVC_STYLIZE_STALE_AFTER_S": str(STALE_S),
            **{f"FACESVC_{k.upper()}": v for k, v in env.items()},
        }
        entry = "import sys; from app.cli import main; sys.exit(main())"  # = `facesvc`
        command = [sys.executable, "-c", entry, "serve", "--port", str(self.port)]
        self.process = subprocess.Popen(
            command,
            env=environ,
            cwd=tmp,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.client = httpx.Client(base_url=self.url, timeout=60)
        self._wait_ready()

    def _wait_ready(self, limit: float = 180) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"serve exited:\n{self.output()}"
            try:
                if self.client.get("/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"serve was not ready in {limit} s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return Path(self.log.name).read_text(errors="replace")[-4000:]

    def kill(self) -> None:
        """SIGKILL to the whole process group: no shutdown code runs anywhere."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.client.close()
        self.log.close()

    def index_size(self) -> int:
        for line in self.client.get("/metrics").text.splitlines():
            if line.startswith("facesvc_index_size "):
                return int(float(line.split()[1]))
        raise AssertionError("no facesvc_index_size in /metrics")

    def job(self, job_id: str) -> dict[str, Any]:
        r = self.client.get(f"/v1/jobs/{job_id}")
        assert r.status_code == 200, r.text
        body: dict[str, Any] = r.json()
        return body

    def wait_job(self, job_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while not done(body := self.job(job_id)):
            assert time.monotonic() < deadline, body
            time.sleep(0.1)
        return body


@pytest.fixture
def servers(database_url: str, tmp_path: Path) -> Iterator[Callable[..., Server]]:
    started: list[Server] = []

    def start(**env: str) -> Server:
        server = Server(database_url, tmp_path, **env)
        started.append(server)
        return server

    yield start
    for server in started:  # whatever a failed test left running
        if server.process.poll() is None:
            server.kill()


@contextmanager
def postgres_jobs_cleared(database_url: str) -> Iterator[None]:
    """The Postgres test database is shared by the session: no job may outlive the test."""
    try:
        yield
    finally:
        if database_url.startswith("postgresql"):
            engine = create_engine(database_url)
            with engine.begin() as conn:
                conn.exec_driver_sql("DELETE FROM stylize_jobs")
            engine.dispose()


def db_face_count(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(Face)).scalar_one())
    finally:
        engine.dispose()


def enroll(client: httpx.Client, person: str) -> httpx.Response:
    files = {"image": (f"{person}.jpg", photo(person), "image/jpeg")}
    return client.post("/v1/identities", files=files, data={"name": person})


def recognized(server: Server, person: str) -> str | None:
    """Who the service says the person's *other* photo shows (identity id or None)."""
    files = {"image": ("probe.jpg", photo(person, 2), "image/jpeg")}
    r = server.client.post("/v1/recognize", files=files)
    assert r.status_code == 200, r.text
    identity = r.json()["faces"][0]["identity"]
    return None if identity is None else str(identity["id"])


def burst_then_kill(
    server: Server, to_delete: dict[str, str], to_enroll: list[str]
) -> tuple[dict[str, str], dict[str, str], set[str]]:
    """Enrolls and deletes from 3 threads; SIGKILL once at least two of each answered,
    with requests still in flight. Returns the 201'd and the 204'd (person -> identity id)
    and everyone a delete was sent for."""
    created: dict[str, str] = {}
    deleted: dict[str, str] = {}
    lock = threading.Lock()
    killed = threading.Event()
    active = [0]  # requests sent and not yet answered
    sent_deletes: set[str] = set()  # its outcome may be unknown: cut off by the kill

    def work(kind: str, person: str) -> None:
        with lock:
            if killed.is_set():
                return
            active[0] += 1
            if kind == "delete":
                sent_deletes.add(person)
        try:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                if kind == "enroll":
                    r = enroll(client, person)
                    if r.status_code == 201:
                        with lock:
                            created[person] = r.json()["identity"]["id"]
                    else:
                        assert r.status_code >= 500 or killed.is_set(), r.text
                else:
                    r = client.delete(f"/v1/identities/{to_delete[person]}")
                    if r.status_code == 204:
                        with lock:
                            deleted[person] = to_delete[person]
        except httpx.TransportError:
            assert killed.is_set()  # only the kill may cut a request off
        finally:
            with lock:
                active[0] -= 1

    tasks = [
        pair
        for a, b in zip(to_enroll, to_delete, strict=True)
        for pair in (("enroll", a), ("delete", b))
    ]
    with ThreadPoolExecutor(3) as pool:
        futures = [pool.submit(work, kind, person) for kind, person in tasks]
        deadline = time.monotonic() + 120
        while min(len(created), len(deleted)) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        with lock:
            killed.set()
            server.kill()
            created_at_kill, deleted_at_kill = dict(created), dict(deleted)
            in_flight = active[0]
        for f in futures:
            f.result()
    assert min(len(created_at_kill), len(deleted_at_kill)) >= 2, server.output()
    assert in_flight > 0, "no request was in flight at the kill"
    return created_at_kill, deleted_at_kill, sent_deletes


def test_kill_9_during_enrolls_deletes_and_a_style_job(
    servers: Callable[..., Server], database_url: str
) -> None:
    everyone = people()
    seeds, newcomers = list(everyone[:6]), list(everyone[6:])
    with postgres_jobs_cleared(database_url):
        first = servers(stylize_on_restart="rerun")
        seeded = {}
        for person in seeds:
            r = enroll(first.client, person)
            assert r.status_code == 201, r.text
            seeded[person] = r.json()["identity"]["id"]
        files = {
            "content": ("me.jpg", photo(seeds[0]), "image/jpeg"),
            "style": ("style.png", STYLE.read_bytes(), "image/png"),
        }
        r = first.client.post("/v1/stylize", files=files, data=JOB)
        assert r.status_code == 202, r.text
        job_id = r.json()["job_id"]
        first.wait_job(job_id, lambda b: b["status"] == "running" and b["progress"]["step"] >= 1)

        created, deleted, sent_deletes = burst_then_kill(first, seeded, newcomers)

        # ---- restart: the gallery is what the answers said, index == database
        second = servers(stylize_on_restart="rerun")
        for person, identity in created.items():
            assert second.client.get(f"/v1/identities/{identity}").status_code == 200, person
        for person, identity in deleted.items():
            assert second.client.get(f"/v1/identities/{identity}").status_code == 404, person
        survivors = {p: i for p, i in seeded.items() if p not in sent_deletes}
        for person, identity in survivors.items():  # never asked to go
            assert second.client.get(f"/v1/identities/{identity}").status_code == 200, person
        for person in list(created)[:2] + list(survivors)[:1]:
            assert recognized(second, person) == {**created, **survivors}[person], person
        for person, identity in list(deleted.items())[:2]:
            assert recognized(second, person) != identity, person
        assert second.index_size() == db_face_count(database_url)

        # ---- the style job that was running: re-run from the start, second attempt
        body = second.wait_job(job_id, lambda b: b["attempts"] == 2 and b["status"] == "running")
        assert body["error"] is None or "re-run" in body["error"], body
        second.wait_job(job_id, lambda b: b["progress"]["step"] >= 1)

        # ---- killed again, restarted under `fail`: failed, with the reason
        second.kill()
        third = servers(stylize_on_restart="fail")
        body = third.wait_job(job_id, lambda b: b["status"] != "running")
        assert body["status"] == "failed", body
        assert "interrupted at step" in body["error"] and "process" in body["error"], body
        assert third.client.get(f"/v1/jobs/{job_id}/result").status_code == 409
        assert third.index_size() == db_face_count(database_url)
        third.kill()
