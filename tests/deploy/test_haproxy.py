"""deploy/compose/haproxy.cfg, run by Debian's haproxy: which requests it replays.

Small HTTP servers stand in for the replicas (the balancer's behaviour is under test,
not the service's): one that dies while answering (it reads a POST, then closes the
connection without a word), or a port where nothing listens, next to two that answer.
A read-only POST that reached the dying one is replayed on another; an enroll is not
(502), and is never seen twice; a refused connection is sent on, whatever the request.
Skips without haproxy (`apt-get install haproxy`; .ci/run installs it).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = ROOT / "deploy" / "compose" / "haproxy.cfg"
HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
if not Path(HAPROXY).exists():
    pytest.skip(f"no haproxy at {HAPROXY} (apt-get install haproxy)", allow_module_level=True)


class Replica(ThreadingHTTPServer):
    """Answers /readyz 200; other requests are recorded, then answered or dropped."""

    def __init__(self, *, dies: bool) -> None:
        self.dies = dies
        self.seen: list[str] = []
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"


class Handler(BaseHTTPRequestHandler):
    server: Replica

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def answer(self) -> None:
        length = int(self.headers.get("Content-Length", 0))
        self.rfile.read(length)
        if self.path == "/readyz":
            self.reply()
            return
        self.server.seen.append(f"{self.command} {self.path}")
        if self.server.dies:
            # the request arrived whole; the replica goes before it answers
            self.connection.shutdown(socket.SHUT_RDWR)
            self.close_connection = True
            return
        self.reply()

    def reply(self) -> None:
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    do_GET = do_POST = answer


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def balancer(request: pytest.FixtureRequest) -> Iterator[tuple[str, list[Replica]]]:
    """haproxy on the committed file; replica 1 dies mid-request, or (param "refused")
    is a port nobody listens on; replicas 2 and 3 answer."""
    refused = request.param == "refused"
    first = None if refused else Replica(dies=True)
    others = [Replica(dies=False), Replica(dies=False)]
    port = free_port()
    env = {
        **os.environ,
        "FACESVC_LB_BIND": f"127.0.0.1:{port}",
        "FACESVC_REPLICA_1": first.address if first else f"127.0.0.1:{free_port()}",
        "FACESVC_REPLICA_2": others[0].address,
        "FACESVC_REPLICA_3": others[1].address,
    }
    proxy = subprocess.Popen(
        [HAPROXY, "-db", "-f", str(CONFIG)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{url}/lbz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, [r for r in (first, *others) if r is not None]
    finally:
        proxy.terminate()
        proxy.wait(10)
        for replica in (first, *others):
            if replica is not None:
                replica.shutdown()
                replica.server_close()


def post_until_the_first_replica_saw_one(
    url: str, path: str, dying: Replica
) -> list[httpx.Response]:
    """Sequential POSTs until one reached the dying replica (at most 9: the balancer
    spreads them over three)."""
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for i in range(9):
            answers.append(client.post(path, content=f"photo {i}".encode()))
            if dying.seen:
                break
    return answers


@pytest.mark.parametrize("balancer", ["dies"], indirect=True)
def test_a_recognize_cut_off_by_a_dying_replica_is_replayed(
    balancer: tuple[str, list[Replica]],
) -> None:
    url, (dying, *good) = balancer
    answers = post_until_the_first_replica_saw_one(url, "/v1/recognize", dying)
    assert dying.seen == ["POST /v1/recognize"]
    assert [a.status_code for a in answers] == [200] * len(answers)
    # every request answered by a live replica, the cut-off one included
    assert sum(len(r.seen) for r in good) == len(answers)
    assert {a.headers["x-facesvc-replica"] for a in answers} <= {"facesvc-2", "facesvc-3"}


@pytest.mark.parametrize("balancer", ["dies"], indirect=True)
def test_an_enroll_cut_off_by_a_dying_replica_is_not_replayed(
    balancer: tuple[str, list[Replica]],
) -> None:
    url, (dying, *good) = balancer
    answers = post_until_the_first_replica_saw_one(url, "/v1/identities", dying)
    assert dying.seen == ["POST /v1/identities"]
    # the client hears that it failed: it may have been enrolled, it is not enrolled twice
    assert answers[-1].status_code == 502
    assert answers[-1].headers["x-facesvc-replica"] == "facesvc-1"
    assert [a.status_code for a in answers[:-1]] == [200] * (len(answers) - 1)
    assert sum(len(r.seen) for r in good) == len(answers) - 1


@pytest.mark.parametrize("balancer", ["refused"], indirect=True)
def test_an_enroll_refused_by_a_stopped_replica_goes_to_another(
    balancer: tuple[str, list[Replica]],
) -> None:
    url, good = balancer
    with httpx.Client(base_url=url, timeout=10) as client:
        answers = [client.post("/v1/identities", content=b"photo") for _ in range(6)]
    assert [a.status_code for a in answers] == [200] * 6
    assert sum(len(r.seen) for r in good) == 6  # each exactly once
