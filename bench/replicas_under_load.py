"""Three replicas behind a load balancer, one stopped mid-run, under load (issue 16).

    python -m bench.replicas_under_load [--database-url URL] [--rate 4] [--seconds 40]
                                        [--stop-at 15] [--signal KILL] [--while-busy]

Processes stand in for containers (no container runtime here): three `facesvc serve`
(FACESVC_INFERENCE_BACKEND=thread, one worker each) on one Postgres database (created
when missing, default `facesvc_bench_lb`), and HAProxy (Debian's 2.6, `apt-get install
haproxy`) on deploy/compose/haproxy.cfg, the file the compose file mounts, with the
replicas' local ports in its environment (FACESVC_REPLICA_1..3, FACESVC_LB_BIND).

An open-loop client sends POST /v1/recognize (a photo of an enrolled person) at --rate
per second through HAProxy, each at its scheduled time from a thread of its own, so a
slow answer does not slow the sending. At --stop-at seconds replica 3 gets --signal
(KILL: `kill -9` of its process group; TERM: uvicorn's graceful shutdown); with
--while-busy, at the first moment from then on that its process works (a request in
flight there, not the idle gap between two). Printed:
requests sent, answered 200, failed; of the failed, those in flight on the stopped
replica at the stop (sent before it, to it: HAProxy names the replica of each answer in
X-Facesvc-Replica) and any other (lost beyond those); the requests HAProxy retried or
replayed on another replica (its log); latency of the 200s before and after the stop;
requests per replica.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import numpy as np
import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
FACES = ROOT / "tests" / "data" / "faces"
ENTRY = "import sys; from app.cli import main; sys.exit(main())"  # = `facesvc`

HAPROXY_CFG = ROOT / "deploy" / "compose" / "haproxy.cfg"
# httplog's connection counts, the last the retries ("+N": redispatched), then its queues
RETRIES = re.compile(r" \d+/\d+/\d+/\d+/\+?(\d+) \d+/\d+ ")
REQUEST = re.compile(r'"POST /v1/recognize\?n=(\d+) ')


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    def __init__(self, database_url: str, tmp: Path, n: int) -> None:
        self.name = f"facesvc-{n}"  # its server name in haproxy.cfg
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "FACESVC_DATABASE_URL": database_url,
            "FACESVC_AUTO_MIGRATE": "false",
            "FACESVC_AUTH_MODE": "open",
            "FACESVC_INFERENCE_BACKEND": "thread",
            "FACESVC_TORCH_THREADS": "1",
            "FACESVC_WORKERS": "1",
        }
        env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        self.log = (tmp / f"replica-{n}.log").open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-c", ENTRY, "serve", "--port", str(self.port)],
            env=env,
            cwd=tmp,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, limit: float = 300) -> None:
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"replica on {self.port} exited; see {self.log.name}")
            try:
                if httpx.get(f"http://{self.addr}/readyz", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"replica on {self.port} not ready in {limit} s")

    def wait_busy(self, limit: float = 10) -> None:
        """Until the process works (30 ms of CPU in the last 40 ms): it is answering a
        recognize (100 ms or more of CPU; a /readyz probe takes a few)."""
        stat = Path(f"/proc/{self.process.pid}/stat")
        ticks: list[int] = []
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            ticks.append(int(fields[11]) + int(fields[12]))  # utime + stime, 10 ms each
            if len(ticks) > 4 and ticks[-1] - ticks[-5] >= 3:
                return
            time.sleep(0.01)

    def stop(self, sig: signal.Signals) -> tuple[float, float]:
        """Times just before and just after the signal was sent."""
        before = after = time.perf_counter()
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            after = time.perf_counter()
            self.process.wait(60)
        return before, after


@dataclass
class Result:
    n: int
    sent: float
    done: float
    status: int | None  # None: no HTTP answer
    replica: str  # X-Facesvc-Replica: the server HAProxy sent it to last


def prepare_database(url: str) -> None:
    name = make_url(url).database
    admin = make_url(url).set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    from app.core.store import db

    db.upgrade(url)


def percentiles(values: list[float]) -> str:
    if not values:
        return "none"
    ms = np.asarray(values) * 1000
    return f"p50 {np.percentile(ms, 50):.0f} ms, p99 {np.percentile(ms, 99):.0f} ms (n={len(ms)})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/facesvc_bench_lb"
    )
    parser.add_argument("--rate", type=float, default=4.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=40.0)
    parser.add_argument("--stop-at", type=float, default=15.0)
    parser.add_argument("--signal", choices=["KILL", "TERM"], default="KILL")
    parser.add_argument(
        "--while-busy",
        action="store_true",
        help="from --stop-at, wait until replica 3 is answering a request, then stop it",
    )
    args = parser.parse_args()
    haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
    if not Path(haproxy).exists():
        sys.exit("haproxy is not installed (apt-get install haproxy)")

    prepare_database(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="facesvc-lb-"))
    replicas = [Replica(args.database_url, tmp, n) for n in range(1, 4)]
    lb_port = free_port()
    env = {
        **os.environ,
        "FACESVC_LB_BIND": f"127.0.0.1:{lb_port}",
        **{f"FACESVC_REPLICA_{n}": r.addr for n, r in enumerate(replicas, start=1)},
    }
    log = tmp / "haproxy.log"
    # -db: in the foreground, not as a daemon: stopped with the run
    proxy = subprocess.Popen(
        [haproxy, "-db", "-f", str(HAPROXY_CFG)],
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        started = time.perf_counter()
        for r in replicas:
            r.wait_ready()
        wait_all_up(f"http://127.0.0.1:{lb_port}", replicas)
        print(f"3 replicas ready in {time.perf_counter() - started:.1f} s; haproxy on {lb_port}")
        run(args, replicas, f"http://127.0.0.1:{lb_port}", log)
    finally:
        for r in replicas:
            r.stop(signal.SIGKILL)
        proxy.terminate()
        proxy.wait(10)


def retried(log: Path) -> dict[int, int]:
    """Request number (`?n=`) -> how often HAProxy sent it again, from its log."""
    counts: dict[int, int] = {}
    for line in log.read_text().splitlines():
        number, found = REQUEST.search(line), RETRIES.search(line)
        if number and found:
            counts[int(number.group(1))] = int(found.group(1))
    return counts


def wait_all_up(url: str, replicas: list[Replica], limit: float = 30) -> None:
    """Until HAProxy's checks found every replica ready: each has answered once."""
    names = {r.name for r in replicas}
    seen: set[str] = set()
    deadline = time.monotonic() + limit
    while not names <= seen and time.monotonic() < deadline:
        # no header: HAProxy's own 503 while its checks find none up yet
        seen.add(httpx.get(f"{url}/readyz", timeout=5).headers.get("x-facesvc-replica", ""))
        time.sleep(0.05)
    if not names <= seen:
        raise RuntimeError(f"haproxy reached only {sorted(seen)} in {limit} s")


def run(args: argparse.Namespace, replicas: list[Replica], url: str, log: Path) -> None:
    people = sorted({p.name.rsplit("_", 1)[0] for p in FACES.glob("*_0*.jpg")})
    photos = {p: sorted(FACES.glob(f"{p}_0*.jpg")) for p in people}
    with httpx.Client(base_url=url, timeout=60) as client:
        for person in people:
            files = {"image": ("a.jpg", photos[person][0].read_bytes(), "image/jpeg")}
            client.post("/v1/identities", files=files, data={"name": person}).raise_for_status()
    probes = [photos[p][-1].read_bytes() for p in people]

    results: list[Result] = []
    lock = threading.Lock()
    client = httpx.Client(base_url=url, timeout=60, limits=httpx.Limits(max_connections=200))

    def send(i: int) -> None:
        files = {"image": ("probe.jpg", probes[i % len(probes)], "image/jpeg")}
        sent = time.perf_counter()
        try:
            # the number finds the request in HAProxy's log (the service ignores it)
            r = client.post(f"/v1/recognize?n={i}", files=files)
            status: int | None = r.status_code
            replica = r.headers.get("x-facesvc-replica", "")
        except httpx.TransportError:
            status, replica = None, ""
        with lock:
            results.append(Result(i, sent, time.perf_counter(), status, replica))

    victim = replicas[2]
    killed: list[tuple[float, float]] = []  # just before and after the signal went
    total = int(args.rate * args.seconds)
    start = time.perf_counter()

    def stop() -> None:
        time.sleep(max(0.0, start + args.stop_at - time.perf_counter()))
        if args.while_busy:
            victim.wait_busy()
        killed.append(victim.stop(getattr(signal, f"SIG{args.signal}")))

    stopper = threading.Thread(target=stop)
    stopper.start()
    with ThreadPoolExecutor(256) as pool:
        for i in range(total):
            time.sleep(max(0.0, start + i / args.rate - time.perf_counter()))
            pool.submit(send, i)
    client.close()
    stopper.join()
    stopped_at, signalled = killed[0]
    time.sleep(0.5)  # HAProxy's last log lines
    again = retried(log)

    failed = [r for r in results if r.status != 200]
    # sent before the signal went, answered after it began: cut off by the stop
    in_flight = [
        r
        for r in failed
        if r.sent < signalled and r.done >= stopped_at and r.replica == victim.name
    ]
    lost = [r for r in failed if r not in in_flight]
    before = [r.done - r.sent for r in results if r.status == 200 and r.sent < stopped_at]
    after = [r.done - r.sent for r in results if r.status == 200 and r.sent >= stopped_at + 2]
    print(
        f"{len(results)} requests at {args.rate}/s over {args.seconds:.0f} s; replica 3 "
        f"got SIG{args.signal} at {stopped_at - start:.3f}-{signalled - start:.3f} s"
    )
    print(
        f"answered 200: {len(results) - len(failed)}; failed: {len(failed)} "
        f"(in flight on the stopped replica: {len(in_flight)}, other: {len(lost)})"
    )
    for r in lost[:5]:
        print(
            f"  lost: sent at {r.sent - start:.3f} s, answered at {r.done - start:.3f} s, "
            f"status {r.status}, via {r.replica!r}"
        )
    print(f"latency before the stop: {percentiles(before)}")
    print(f"latency from 2 s after:  {percentiles(after)}")
    # HAProxy sent these to another replica: before the signal, cut off in flight (a
    # replay, allowed for recognize); after it, refused by the stopped one (a re-send)
    resent = [r for r in results if again.get(r.n)]
    cut_off = [r for r in resent if r.sent < signalled]
    print(
        f"sent again by haproxy: {len(resent)} (sent before the signal, replayed: "
        f"{len(cut_off)}; after it, refused and sent on: {len(resent) - len(cut_off)}); "
        f"of those answered 200: {sum(1 for r in resent if r.status == 200)}"
    )
    for n, replica in enumerate(replicas, start=1):
        served = sum(1 for r in results if r.status == 200 and r.replica == replica.name)
        print(f"replica {n} answered {served}")


if __name__ == "__main__":
    main()
