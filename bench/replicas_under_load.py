"""Three replicas behind a load balancer, one stopped mid-run, under load (issue 16).

    python -m bench.replicas_under_load [--database-url URL] [--rate 4] [--seconds 40]
                                        [--stop-at 15] [--signal KILL]

Processes stand in for containers (no container runtime here): three `facesvc serve`
(FACESVC_INFERENCE_BACKEND=thread, one worker each) on one Postgres database (created
when missing, default `facesvc_bench_lb`), and nginx (Debian's, `apt-get install nginx`)
as the load balancer: round robin, passive checks, a request that could not reach a
replica (connection refused) sent to the next one; a POST already sent is never sent
twice. The compose file uses Traefik (docs/deploy.md); nginx is what this machine has.

An open-loop client sends POST /v1/recognize (a photo of an enrolled person) at --rate
per second through nginx, each at its scheduled time from a thread of its own, so a
slow answer does not slow the sending. At --stop-at seconds replica 3 gets --signal
(KILL: `kill -9` of its process group; TERM: uvicorn's graceful shutdown). Printed:
requests sent, answered 200, failed; of the failed, those in flight on the stopped
replica at the stop (sent before it, to it: nginx names the upstream of each answer in
X-Upstream) and any other (lost beyond those); latency of the 200s before and after
the stop; requests per replica.
"""

from __future__ import annotations

import argparse
import os
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

NGINX = """
worker_processes 1;
daemon off;
{user}
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    upstream facesvc {{
{servers}
        keepalive 16;
    }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 20m;
        location / {{
            proxy_pass http://facesvc;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_next_upstream error timeout;
            proxy_next_upstream_tries 3;
            proxy_connect_timeout 1s;
            proxy_read_timeout 60s;
            add_header X-Upstream $upstream_addr always;
        }}
    }}
}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Replica:
    def __init__(self, database_url: str, tmp: Path, n: int) -> None:
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
    sent: float
    done: float
    status: int | None  # None: no HTTP answer
    upstream: str


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
    args = parser.parse_args()
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        sys.exit("nginx is not installed (apt-get install nginx)")

    prepare_database(args.database_url)
    tmp = Path(tempfile.mkdtemp(prefix="facesvc-lb-"))
    replicas = [Replica(args.database_url, tmp, n) for n in range(1, 4)]
    lb_port = free_port()
    servers = "\n".join(f"        server {r.addr} max_fails=1 fail_timeout=10s;" for r in replicas)
    user = "user root;" if os.geteuid() == 0 else ""
    (tmp / "nginx.conf").write_text(NGINX.format(tmp=tmp, servers=servers, port=lb_port, user=user))
    proxy = subprocess.Popen(
        [nginx, "-c", str(tmp / "nginx.conf"), "-p", str(tmp)], start_new_session=True
    )
    try:
        started = time.perf_counter()
        for r in replicas:
            r.wait_ready()
        print(f"3 replicas ready in {time.perf_counter() - started:.1f} s; nginx on {lb_port}")
        run(args, replicas, f"http://127.0.0.1:{lb_port}")
    finally:
        for r in replicas:
            r.stop(signal.SIGKILL)
        proxy.terminate()
        proxy.wait(10)


def run(args: argparse.Namespace, replicas: list[Replica], url: str) -> None:
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
            r = client.post("/v1/recognize", files=files)
            status: int | None = r.status_code
            upstream = r.headers.get("x-upstream", "")
        except httpx.TransportError:
            status, upstream = None, ""
        with lock:
            results.append(Result(sent, time.perf_counter(), status, upstream))

    victim = replicas[2]
    stopped_at = 0.0
    killed: list[tuple[float, float]] = []  # just before and after the signal went
    total = int(args.rate * args.seconds)
    start = time.perf_counter()
    with ThreadPoolExecutor(256) as pool:
        for i in range(total):
            due = start + i / args.rate
            if not stopped_at and due - start >= args.stop_at:
                stopped_at = time.perf_counter()
                sig = getattr(signal, f"SIG{args.signal}")
                threading.Thread(target=lambda s=sig: killed.append(victim.stop(s))).start()
            time.sleep(max(0.0, due - time.perf_counter()))
            pool.submit(send, i)
    client.close()
    stopped_at, signalled = killed[0]

    failed = [r for r in results if r.status != 200]
    # sent before the signal went, answered after it began: cut off by the stop
    in_flight = [
        r
        for r in failed
        if r.sent < signalled and r.done >= stopped_at and victim.addr in r.upstream
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
            f"status {r.status}, via {r.upstream!r}"
        )
    print(f"latency before the stop: {percentiles(before)}")
    print(f"latency from 2 s after:  {percentiles(after)}")
    for n, replica in enumerate(replicas, start=1):
        served = sum(1 for r in results if r.status == 200 and r.upstream.endswith(replica.addr))
        print(f"replica {n} answered {served}")


if __name__ == "__main__":
    main()
