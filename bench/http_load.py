"""HTTP load on loopback: closed-loop clients in several processes, and an overload phase.

    python -m bench.http_load [--routes verify] [--clients 32 128 256 512] [--duration 15]
        [--auth keys|open] [--database-url URL] [--device cpu|cuda] [--json out.json]
        [--variant NAME[@ROOT][:K=V,...]] ... | [--url [NAME=]URL --key KEY]
        [--overload [--rate R | --sustained S]] [--overload-seconds 10]

Targets. By default one server is started here (`facesvc serve` on 127.0.0.1, SQLite in a
temporary folder, keys mode with a key made by `facesvc keys create` against the same
database). `--variant` starts one server per variant instead; each may run another
checkout (`@ROOT`: cwd and first PYTHONPATH entry) and extra environment. `--url` targets a
running server instead (`--key`, or `--database-url` to create a key there). Cells of
several targets take turns, so all see the same background load. Examples:

    # batching on against off (the old default of this script)
    python -m bench.http_load --variant on:FACESVC_INFERENCE_MAX_BATCH=32 \
        --variant off:FACESVC_INFERENCE_MAX_BATCH=1 --routes verify recognize --clients 1 8 32
    # side by side with the commit before a change, 32 clients
    git worktree add /tmp/facesvc-old <commit>
    python -m bench.http_load --variant old@/tmp/facesvc-old --variant new --clients 32 \
        --duration 30
    # Postgres, keys mode, 256 clients for 60 s (one database per variant: {name})
    python -m bench.http_load --database-url \
        'postgresql+psycopg://postgres@127.0.0.1:5432/bench_{name}' --fresh-db \
        --clients 256 --duration 60 --json pg256.json
    # overload at 4x what 32 clients sustained, then time to recovery
    python -m bench.http_load --clients 32 --overload

Clients. Each cell runs `--clients` closed-loop clients (each sends its next request when
its last one is answered) spread over `--procs` processes (default: at most 64
connections per process; one Python client process saturates near 128), each running
asyncio + httpx on keep-alive connections (bench/load_client.py; the request mix makes
every successful answer checkable). Transport failures (connect, reset, read, timeouts,
protocol) are counted by kind, never raised. Per cell: statuses, successes/s (those
answered within --duration, over it; requests still out then are waited for and count in
the latencies), client latency of successes (p50/p90/p99/max) and of 503s, 503s without
Retry-After, the server's own time from the `Server-Timing: app;dur=<ms>` header
(successes and 503s), and answers that were wrong. Everything also goes to `--json`.

Overload. `--overload` offers verify requests open-loop at `--rate` req/s (or 4x
`--sustained`, or 4x the successes/s of the last cell of the first target; given --rate
or --sustained, no closed-loop cells run) for `--overload-seconds`, samples the RSS of
the server process and its children (psutil if installed, else /proc) for its peak, and
from the moment the load stops sends one probe verify every 0.25 s, each on its own (not
waiting for the previous one): "recovered after X s" is the send time from which every
probe was answered 200, right, within normal latency (`--normal-ms`, default twice the
median of 5 sequential verifies taken before the load).
Only loopback is used; every loop is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import multiprocessing
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.load_client import PEOPLE, Job, Sender, child
from bench.load_stats import Tally

HOST = "127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent
CLI = "import sys; from app.cli import main; sys.exit(main())"
PER_PROCESS = 64  # connections per client process by default


@dataclass
class Target:
    name: str
    url: str
    key: str | None = None
    process: subprocess.Popen[bytes] | None = None
    log: Path | None = None
    cells: list[dict[str, Any]] = field(default_factory=list)


# ---------------------------------------------------------------------------------------
# Servers, databases and keys.


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def parse_variant(spec: str) -> tuple[str, Path, dict[str, str]]:
    """'NAME[@ROOT][:K=V,K=V]' -> (name, checkout root, extra environment)."""
    head, _, env_part = spec.partition(":")
    name, _, root = head.partition("@")
    env = dict(item.split("=", 1) for item in env_part.split(",") if item)
    return name, Path(root).resolve() if root else ROOT, env


def pythonpath(root: Path) -> str:
    rest = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join([str(root), *([rest] if rest else [])])


def ensure_postgres(url: str, fresh: bool) -> None:
    """Create the URL's database if missing (drop it first with `fresh`)."""
    import psycopg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    admin = {
        "host": parsed.host or HOST,
        "port": str(parsed.port or 5432),
        "user": parsed.username or "postgres",
        "password": parsed.password,
        "dbname": "postgres",
    }
    conninfo = " ".join(f"{k}={v}" for k, v in admin.items() if v is not None)
    with psycopg.connect(conninfo, autocommit=True) as conn:
        name = parsed.database
        if fresh:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


def create_key(root: Path, env: dict[str, str]) -> str:
    """`facesvc keys create` against env's FACESVC_DATABASE_URL; the key is printed last."""
    command = [sys.executable, "-c", CLI, "keys", "create", "--name", "bench"]
    command += ["--scope", "admin"]
    done = subprocess.run(command, cwd=root, env=env, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"keys create failed: {done.stderr.strip()[-2000:]}")
    return done.stdout.strip().splitlines()[-1].strip()


def server_env(name: str, root: Path, extra: dict[str, str], args: argparse.Namespace) -> dict:
    env = {
        **os.environ,
        "PYTHONPATH": pythonpath(root),
        "FACESVC_DATABASE_URL": args.database_url.format(name=name),
        "FACESVC_AUTH_MODE": args.auth,
        "FACESVC_LOG_LEVEL": "warning",
        "FACESVC_TORCH_THREADS": str(args.torch_threads),
        "FACESVC_AUTO_MIGRATE": "true",  # Postgres too: keys create and serve migrate it
    }
    if args.device:
        env["FACESVC_DEVICE"] = args.device
    env.update(dict(item.split("=", 1) for item in args.env))
    env.update(extra)
    return env


def start_server(spec: str, workdir: Path, args: argparse.Namespace) -> Target:
    name, root, extra = parse_variant(spec)
    env = server_env(name, root, extra, args)
    if env["FACESVC_DATABASE_URL"].startswith("postgresql"):
        ensure_postgres(env["FACESVC_DATABASE_URL"], args.fresh_db)
    key = create_key(root, env) if args.auth == "keys" else None
    port = free_port()
    command = [sys.executable, "-c", CLI, "serve", "--host", HOST, "--port", str(port)]
    if args.server_workers:
        command += ["--workers", str(args.server_workers)]
    log = workdir / f"{name}.log"
    with log.open("wb") as out:  # the child keeps its own descriptor
        # Same process group as this script: `timeout` (bench/gpu_check.sh) ends both.
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT)
    return Target(name, f"http://{HOST}:{port}", key, process, log)


def stop_server(target: Target) -> None:
    """SIGTERM (the server stops its own workers), then SIGKILL for whatever is left."""
    if target.process is None or target.process.poll() is not None:
        return
    family = descendants(target.process.pid)
    target.process.terminate()
    try:
        target.process.wait(30)
    except subprocess.TimeoutExpired:
        target.process.kill()
        target.process.wait(10)
    for pid in family:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], list(children.get(pid, []))
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def log_tracebacks(target: Target) -> int | None:
    if target.log is None or not target.log.exists():
        return None
    return target.log.read_text(errors="replace").count("Traceback (most recent call last)")


def wait_ready(target: Target, timeout: float) -> None:
    end = time.monotonic() + timeout
    with httpx.Client(base_url=target.url, timeout=5) as http:
        while time.monotonic() < end:
            if target.process is not None and target.process.poll() is not None:
                break
            with contextlib.suppress(httpx.TransportError):
                if http.get("/readyz").status_code == 200:
                    return
            time.sleep(0.5)
    tail = target.log.read_text(errors="replace")[-3000:] if target.log else ""
    raise RuntimeError(f"{target.name} ({target.url}) did not become ready:\n{tail}")


def enroll_people(target: Target, prefix: str) -> None:
    """Enroll every person of the mix from photo 1; 409 (enrolled earlier) is fine."""
    from tests.support.factories import photo

    headers = {"x-api-key": target.key} if target.key else {}
    with httpx.Client(base_url=target.url, timeout=120, headers=headers) as http:
        for person in PEOPLE:
            files = {"image": ("p.jpg", photo(person, 1), "image/jpeg")}
            data = {"name": person, "external_id": prefix + person}
            r = http.post("/v1/identities", files=files, data=data)
            if r.status_code not in (201, 409):
                raise RuntimeError(f"enrolling {person} on {target.name}: {r.status_code} {r.text}")


# ---------------------------------------------------------------------------------------
# Cells: spawn the client processes, start them together, merge what they saw.


def run_processes(
    jobs: list[Job], lead_s: float = 0.3, on_start: Callable[[float], None] | None = None
) -> Tally:
    """Run the jobs in spawned processes from one common start (told to `on_start`)."""
    context = multiprocessing.get_context("spawn")
    pipes, processes = [], []
    for job in jobs:
        parent_end, child_end = context.Pipe()
        process = context.Process(target=child, args=(child_end, json.dumps(asdict(job))))
        process.start()
        pipes.append(parent_end)
        processes.append(process)
    try:
        for pipe in pipes:
            if not pipe.poll(120) or pipe.recv() != "ready":
                raise RuntimeError("a client process did not start")
        start = time.time() + lead_s
        if on_start is not None:
            on_start(start)
        for pipe in pipes:
            pipe.send(start)
        longest = max(job.duration + job.timeout for job in jobs) + 60
        tallies = [pipe.recv() if pipe.poll(longest) else Tally() for pipe in pipes]
    finally:
        for process in processes:
            process.join(5)
            if process.is_alive():
                process.kill()
    return Tally.merge(tallies)


def split(total: int, parts: int) -> list[int]:
    """`total` as `parts` near-equal positive counts (connections per process)."""
    return [total // parts + (i < total % parts) for i in range(parts)]


def procs_for(clients: int, args: argparse.Namespace) -> int:
    return min(clients, args.procs or math.ceil(clients / PER_PROCESS))


def closed_cell(target: Target, route: str, clients: int, args: argparse.Namespace) -> dict:
    procs = procs_for(clients, args)
    caps = split(args.requests, procs) if args.requests else [None] * procs
    jobs = [
        Job(target.url, route, n, args.duration, i, procs, target.key, args.prefix,
            requests=cap, timeout=args.timeout, backoff=args.backoff, nice=args.client_nice)
        for i, (n, cap) in enumerate(zip(split(clients, procs), caps, strict=True))
    ]  # fmt: skip
    tally = run_processes(jobs)
    row = {"target": target.name, "route": route, "clients": clients, "procs": procs}
    return {**row, **tally.summary()}


def warm_up(target: Target, route: str, args: argparse.Namespace, count: int = 4) -> None:
    """A few sequential requests first: first-call costs (kernels, caches) stay out."""
    job = Job(target.url, route, 1, 0, 0, 1, target.key, args.prefix, timeout=args.timeout)

    async def go() -> None:
        async with httpx.AsyncClient(base_url=target.url, timeout=args.timeout) as http:
            sender = Sender(job, http)
            for n in range(count):
                await sender.send(n)

    asyncio.run(go())


# ---------------------------------------------------------------------------------------
# Overload: open loop, memory, recovery.


def tree_rss_mib(pid: int) -> float:
    """RSS of `pid` and all its descendants, MiB (shared pages count once per process)."""
    try:
        import psutil
    except ImportError:
        return _proc_tree_rss_mib(pid)
    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return math.nan
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            total += proc.memory_info().rss
    return total / 2**20


def _proc_tree_rss_mib(pid: int) -> float:
    total_kib = 0
    for current in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{current}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total_kib += int(line.split()[1])
    return total_kib / 1024 if total_kib else math.nan


class RssSampler(threading.Thread):
    def __init__(self, pid: int | None, every: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.pid, self.every = pid, every
        self.before = self.peak = tree_rss_mib(pid) if pid else math.nan
        self.stopped = threading.Event()

    def run(self) -> None:
        while self.pid and not self.stopped.wait(self.every):
            now = tree_rss_mib(self.pid)
            if not math.isnan(now):
                self.peak = max(self.peak, now) if not math.isnan(self.peak) else now

    def stop(self) -> None:
        self.stopped.set()
        self.join(5)


class Prober:
    """Sequential verifies from the parent: the baseline, then the recovery probes."""

    def __init__(self, target: Target, args: argparse.Namespace) -> None:
        self.job = Job(target.url, "verify", 1, 0, 0, 1, target.key, args.prefix)
        self.n, self.args = 0, args

    async def one(self, http: httpx.AsyncClient) -> tuple[bool, float]:
        sender = Sender(self.job, http)
        sent = time.monotonic()
        status, _ = await sender.send(self.n)
        self.n += 1
        right = status == 200 and sender.tally.wrong == 0
        return right, time.monotonic() - sent

    async def baseline(self, count: int = 5) -> float:
        async with httpx.AsyncClient(base_url=self.job.url, timeout=self.args.timeout) as http:
            times = [t for ok, t in [await self.one(http) for _ in range(count)] if ok]
        if not times:
            raise RuntimeError("no verify answered 200 and right before the overload")
        return statistics.median(times)

    async def recovery(self, stop_at: float, normal: float, limit: float) -> dict[str, Any]:
        """Probes sent every 0.25 s from `stop_at` (monotonic), each on its own, not
        waiting for the one before (a probe stuck in the draining queue must not delay the
        next). Recovered at the send time from which every probe was 200, right and
        within `normal`; probing stops 1 s of normal answers after that."""
        outcomes: list[tuple[float, bool]] = []  # (sent after stop_at, normal)

        async def probe(http: httpx.AsyncClient, offset: float) -> None:
            ok, took = await self.one(http)
            outcomes.append((offset, ok and took <= normal))

        def recovered_at() -> float | None:
            done = sorted(outcomes)
            at = None
            for offset, fine in done:
                if not fine:
                    at = None
                elif at is None:
                    at = offset
            return at

        tasks: list[asyncio.Task[None]] = []
        async with httpx.AsyncClient(base_url=self.job.url, timeout=self.args.timeout) as http:
            offset = 0.0
            while offset < limit:
                await asyncio.sleep(max(0.0, stop_at + offset - time.monotonic()))
                tasks.append(asyncio.create_task(probe(http, offset)))
                at = recovered_at()
                if at is not None and len(outcomes) == len(tasks) - 1 and offset - at >= 1.0:
                    break
                offset += 0.25
            await asyncio.gather(*tasks)
        at = recovered_at()
        return {"recovered_after_s": None if at is None else round(at, 2), "probes": len(tasks)}


def overload(target: Target, rate: float, args: argparse.Namespace) -> dict[str, Any]:
    prober = Prober(target, args)
    base = asyncio.run(prober.baseline())
    normal = args.normal_ms / 1000 if args.normal_ms else 2 * base
    procs = args.procs or max(1, min(8, math.ceil(rate / 200)))
    inflight = split(max(args.max_inflight, procs), procs)
    jobs = [
        Job(target.url, "verify", n, args.overload_seconds, i, procs, target.key, args.prefix,
            rate=rate / procs, timeout=args.timeout)  # open loop keeps its schedule: nice 0
        for i, n in enumerate(inflight)
    ]  # fmt: skip
    sampler = RssSampler(target.process.pid if target.process else args.server_pid)
    sampler.start()
    result: dict[str, Any] = {}
    started = threading.Event()
    start_wall = [0.0]

    def on_start(start: float) -> None:
        start_wall[0] = start
        started.set()

    def probe_after_load() -> None:  # a thread: the clients run in their own processes
        if not started.wait(180):
            return
        stop_wall = start_wall[0] + args.overload_seconds
        stop_at = time.monotonic() + (stop_wall - time.time())
        result.update(asyncio.run(prober.recovery(stop_at, normal, args.recovery_limit)))

    prober_thread = threading.Thread(target=probe_after_load, daemon=True)
    prober_thread.start()
    try:
        tally = run_processes(jobs, on_start=on_start)
    finally:
        started.set()
        prober_thread.join(args.recovery_limit + args.timeout + 10)
        sampler.stop()
    return {
        "target": target.name,
        "offered_per_s": round(rate, 2),
        "seconds": args.overload_seconds,
        "procs": procs,
        "baseline_ms": round(base * 1000, 1),
        "normal_ms": round(normal * 1000, 1),
        "rss_before_mib": round(sampler.before, 1),
        "rss_peak_mib": round(sampler.peak, 1),
        "recovered_after_s": None,
        **result,
        **tally.summary(wall=args.overload_seconds),
    }


# ---------------------------------------------------------------------------------------
# Reporting and the command line.


def mean_batch_sizes(target: Target) -> str:
    """From /metrics: how many jobs the detection and embedding batches held (if exported)."""
    try:
        headers = {"X-API-Key": target.key} if target.key else {}  # FACESVC_METRICS=key
        text = httpx.get(f"{target.url}/metrics", headers=headers, timeout=10).text
    except httpx.TransportError:
        return "-"
    sizes = []
    for kind in ("detect", "embed"):
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith(f'facesvc_inference_batch_size_sum{{kind="{kind}"'):
                total += float(line.split()[-1])
            if line.startswith(f'facesvc_inference_batch_size_count{{kind="{kind}"'):
                count += float(line.split()[-1])
        sizes.append(f"{kind} {total / count:.2f}" if count else f"{kind} -")
    return ", ".join(sizes)


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def others(cell: dict[str, Any]) -> str:
    codes = {k: v for k, v in cell["statuses"].items() if k not in ("200", "201", "503")}
    parts = [f"{k}x{v}" for k, v in codes.items()]
    parts += [f"{k}x{v}" for k, v in cell["transport_errors"].items()]
    return " ".join(parts) or "0"


def print_cells(cells: list[dict[str, Any]]) -> None:
    print(
        "| target | route | clients | procs | ok/s | p50 | p90 | p99 | max | p99/p50 | 503 "
        "| 503 p50 | 503 p99 | no Retry-After | srv ok p50/p99 | srv 503 p50/p99 | other "
        "| wrong/checked |"
    )
    print(
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"
    )
    for c in cells:
        ratio = (
            f"{c['ok_p99_ms'] / c['ok_p50_ms']:.2f}" if c["ok_p50_ms"] and c["ok_p99_ms"] else "-"
        )
        print(
            f"| {c['target']} | {c['route']} | {c['clients']} | {c['procs']} | {c['ok_per_s']:.1f} "
            f"| {_ms(c['ok_p50_ms'])} | {_ms(c['ok_p90_ms'])} | {_ms(c['ok_p99_ms'])} "
            f"| {_ms(c['ok_max_ms'])} | {ratio} | {c['statuses'].get('503', 0)} "
            f"| {_ms(c['503_p50_ms'])} | {_ms(c['503_p99_ms'])} | {c['503_without_retry_after']} "
            f"| {_ms(c['server_ok_p50_ms'])}/{_ms(c['server_ok_p99_ms'])} "
            f"| {_ms(c['server_503_p50_ms'])}/{_ms(c['server_503_p99_ms'])} | {others(c)} "
            f"| {c['wrong']}/{c['checked']} |"
        )
    print("(latencies in ms, client side unless 'srv': the server's Server-Timing app;dur)")


def print_overload(o: dict[str, Any]) -> None:
    print(
        f"\n## overload on {o['target']}: {o['offered_per_s']:.1f} verify/s offered open-loop "
        f"for {o['seconds']:.0f} s from {o['procs']} processes"
    )
    print(f"statuses: {o['statuses']}; transport errors: {o['transport_errors'] or 0}")
    print(
        f"200: {o['ok_per_s']:.1f}/s, p50 {_ms(o['ok_p50_ms'])} ms, p99 {_ms(o['ok_p99_ms'])} ms, "
        f"max {_ms(o['ok_max_ms'])} ms; wrong {o['wrong']} of {o['checked']} checked"
    )
    print(
        f"503: p50 {_ms(o['503_p50_ms'])} ms, p99 {_ms(o['503_p99_ms'])} ms (server "
        f"{_ms(o['server_503_p50_ms'])}/{_ms(o['server_503_p99_ms'])} ms); "
        f"{o['503_without_retry_after']} without Retry-After"
    )
    print(f"server RSS: {o['rss_before_mib']:.0f} MiB before, {o['rss_peak_mib']:.0f} MiB peak")
    recovered = o.get("recovered_after_s")
    normal = f"200, right, within {o['normal_ms']:.0f} ms (baseline {o['baseline_ms']:.0f} ms)"
    if recovered is None:
        print(f"NOT recovered ({normal}) within the probe limit, {o['probes']} probes")
    else:
        print(f"recovered after {recovered:.2f} s ({normal}; {o['probes']} probes)")


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def targets_from_urls(args: argparse.Namespace) -> list[Target]:
    found = []
    for i, spec in enumerate(args.url):
        name, _, url = spec.rpartition("=") if "=" in spec else (f"url{i + 1}", "", spec)
        key = args.key
        if key is None and args.auth == "keys":
            if not args.database_url or "{name}" in args.database_url:
                raise SystemExit("--url in keys mode needs --key or a literal --database-url")
            env = {**os.environ, "PYTHONPATH": pythonpath(ROOT), "FACESVC_AUTO_MIGRATE": "true"}
            key = create_key(ROOT, {**env, "FACESVC_DATABASE_URL": args.database_url})
        found.append(Target(name, url.rstrip("/"), key))
    return found


def main(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "argv": sys.argv[1:],
        "nproc": os.cpu_count(),
        "load_average_start": load_average(),
        "cells": [],
    }
    print(f"load average at start: {report['load_average_start']}; nproc {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="http_load-") as tmp:
        if args.database_url is None:
            args.database_url = f"sqlite:///{tmp}/{{name}}.db"
        targets: list[Target] = []
        try:
            if args.url:
                targets = targets_from_urls(args)
            else:
                targets = [start_server(v, Path(tmp), args) for v in args.variant or ["new"]]
            for target in targets:
                wait_ready(target, args.ready_timeout)
                enroll_people(target, args.prefix)
            for route in [] if args.sustained or args.rate else args.routes:
                for clients in args.clients:
                    for target in targets:
                        warm_up(target, route, args)
                        cell = closed_cell(target, route, clients, args)
                        report["cells"].append(cell)
                        target.cells.append(cell)
                        if args.verbose:
                            print_cells([cell])
            if report["cells"]:
                print()
                print_cells(report["cells"])
                for target in targets:
                    print(f"mean jobs per batch on {target.name}: {mean_batch_sizes(target)}")
            if args.overload:
                target = targets[0]
                rate = args.rate or args.factor * (args.sustained or target.cells[-1]["ok_per_s"])
                report["overload"] = overload(target, rate, args)
                print_overload(report["overload"])
        finally:
            for target in targets:
                stop_server(target)
            report["server_tracebacks"] = {t.name: log_tracebacks(t) for t in targets}
    report["load_average_end"] = load_average()
    print(f"tracebacks in server logs: {report['server_tracebacks']}")
    print(f"load average at end: {report['load_average_end']}")
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2) + "\n")
    return report


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=(__doc__ or "").splitlines()[0], formatter_class=argparse.RawTextHelpFormatter
    )
    p.add_argument("--routes", nargs="+", default=["verify"],
                   choices=["verify", "recognize", "compare", "enroll"])  # fmt: skip
    p.add_argument("--clients", nargs="+", type=int, default=[32])
    p.add_argument("--duration", "--seconds", dest="duration", type=float, default=15.0,
                   help="seconds per cell")  # fmt: skip
    p.add_argument("--requests", type=int, help="most requests per cell (default: no cap)")
    p.add_argument(
        "--procs", type=int, help=f"client processes (default: {PER_PROCESS} conns each)"
    )
    p.add_argument("--timeout", type=float, default=60.0, help="client timeout per request, s")
    p.add_argument("--backoff", action="store_true", help="clients sleep Retry-After after a 503")
    p.add_argument(
        "--client-nice",
        type=int,
        default=10,
        help="niceness of the closed-loop client processes: they stand in for other "
        "machines, so they yield this machine's CPU to the server (0: compete as equals). "
        "The open-loop overload generator runs at 0: it must keep its schedule",
    )
    p.add_argument("--auth", choices=["keys", "open"], default="keys")
    p.add_argument("--key", help="API key for --url targets (keys mode)")
    p.add_argument("--database-url", help="servers' database; '{name}' becomes the variant name "
                   "(default: SQLite in a temporary folder)")  # fmt: skip
    p.add_argument("--fresh-db", action="store_true", help="drop Postgres databases first")
    p.add_argument("--device", help="FACESVC_DEVICE of started servers (cpu, cuda)")
    p.add_argument("--torch-threads", type=int, default=1, help="FACESVC_TORCH_THREADS")
    p.add_argument("--server-workers", type=int, help="`facesvc serve --workers N`")
    p.add_argument("--env", nargs="*", default=[], metavar="K=V", help="for every started server")
    p.add_argument("--variant", action="append", metavar="NAME[@ROOT][:K=V,...]",
                   help="start one server per variant (repeat); default: one, 'new'")  # fmt: skip
    p.add_argument("--url", action="append", default=[], metavar="[NAME=]URL",
                   help="target a running server instead (repeat)")  # fmt: skip
    p.add_argument("--prefix", default="bench-", help="external_id prefix of enrolled people")
    p.add_argument("--ready-timeout", type=float, default=300.0)
    p.add_argument("--overload", action="store_true")
    p.add_argument("--rate", type=float, help="overload: req/s offered")
    p.add_argument("--sustained", type=float, help="overload only, at --factor x this req/s")
    p.add_argument("--factor", type=float, default=4.0)
    p.add_argument("--overload-seconds", type=float, default=10.0)
    p.add_argument("--max-inflight", type=int, default=1024, help="overload: client-side bound")
    p.add_argument("--normal-ms", type=float, help="recovered: a 200 within this (default 2x base)")
    p.add_argument("--recovery-limit", type=float, default=30.0, help="probe for at most, s")
    p.add_argument("--server-pid", type=int, help="--url targets: pid whose RSS to sample")
    p.add_argument("--json", help="write the whole report here")
    p.add_argument("--verbose", action="store_true", help="print each cell as it ends")
    return p


if __name__ == "__main__":
    # SIGTERM (a `timeout`) unwinds like Ctrl-C, so the servers started here are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    arguments = parser().parse_args()
    if (arguments.rate or arguments.sustained) and not arguments.overload:
        arguments.overload = True
    main(arguments)
