"""HTTP load on loopback: /v1/verify and /v1/recognize, with batching on and off.

    python -m bench.http_load [--clients 1 8 32] [--requests 300] [--seconds 15] [--overload]

Starts two servers (uvicorn subprocesses on 127.0.0.1, SQLite, open auth mode): one with
the default batching (`FACESVC_INFERENCE_MAX_BATCH=32`), one with batching off (1). Both
enroll the same people from tests/data/faces (photo 1); probes are their photo 2. For each
route and number of concurrent clients the two servers take turns, so both see the same
background load. Each cell is bounded: --requests requests or --seconds seconds, whichever
comes first. Only loopback is used.

--overload then drives the batching server open-loop at 4x the rate it sustained with 32
clients and reports how fast the 503s come back, the server's peak memory, whether the
accepted answers were right, and whether it serves normally once the load stops.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.service.factories import people, photo

HOST = "127.0.0.1"
PEOPLE = people(8)
PROBES = {person: photo(person, 2) for person in PEOPLE}

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class Server:
    name: str
    url: str
    process: subprocess.Popen[bytes]

    def rss_mib(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")


@dataclass
class Cell:
    latencies: list[float] = field(default_factory=list)  # seconds, 200s only
    statuses: Counter[int] = field(default_factory=Counter)
    wrong: int = 0
    wall: float = 0.0

    def rate(self) -> float:
        return self.statuses[200] / self.wall if self.wall else 0.0

    def percentile(self, q: float) -> float:
        return percentile_ms(self.latencies, q)


def percentile_ms(seconds: list[float], q: float) -> float:
    """The q-th percentile (nearest rank), in milliseconds."""
    if not seconds:
        return float("nan")
    ordered = sorted(seconds)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))] * 1000


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def start_server(name: str, workdir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    db = workdir / f"{name}.db"
    full_env = {
        **os.environ,
        "FACESVC_DATABASE_URL": f"sqlite:///{db}",
        "FACESVC_AUTH_MODE": "open",
        "FACESVC_LOG_LEVEL": "warning",
        **env,
    }
    command = [sys.executable, "-m", "uvicorn", "--factory", "app.main:app_from_env"]
    command += ["--host", HOST, "--port", str(port), "--log-level", "warning"]
    process = subprocess.Popen(command, cwd=ROOT, env=full_env)
    return Server(name, f"http://{HOST}:{port}", process)


async def wait_ready(server: Server, timeout: float = 120) -> None:
    async with httpx.AsyncClient(base_url=server.url) as http:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                if (await http.get("/readyz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.5)
    raise RuntimeError(f"{server.name} did not become ready")


async def enroll(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
        for person in PEOPLE:
            files = {"image": ("p.jpg", photo(person, 1), "image/jpeg")}
            data = {"name": person, "external_id": person}
            r = await http.post("/v1/identities", files=files, data=data)
            r.raise_for_status()


async def one_request(http: httpx.AsyncClient, route: str, person: str) -> tuple[int, bool]:
    """(status, answer correct). Correct: verify matches, recognize names the person."""
    files = {"image": ("p.jpg", PROBES[person], "image/jpeg")}
    data = {"external_id": person} if route == "verify" else {}
    r = await http.post(f"/v1/{route}", files=files, data=data)
    if r.status_code != 200:
        return r.status_code, True
    body = r.json()
    if route == "verify":
        return 200, bool(body["match"])
    identity = body["faces"][0]["identity"]
    return 200, identity is not None and identity["name"] == person


async def closed_loop(server: Server, route: str, clients: int, args: argparse.Namespace) -> Cell:
    """`clients` clients, each sending its next request when the last one is answered."""
    cell, issued = Cell(), 0
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
        start = time.monotonic()
        end = start + args.seconds

        async def client(index: int) -> None:
            nonlocal issued
            while issued < args.requests and time.monotonic() < end:
                person = PEOPLE[issued % len(PEOPLE)]
                issued += 1
                sent = time.monotonic()
                status, correct = await one_request(http, route, person)
                cell.statuses[status] += 1
                if status == 200:
                    cell.latencies.append(time.monotonic() - sent)
                    cell.wrong += not correct

        await asyncio.gather(*(client(i) for i in range(clients)))
        cell.wall = time.monotonic() - start
    return cell


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def print_table(results: dict[tuple[str, int, str], Cell], args: argparse.Namespace) -> None:
    print("| route | clients | batching | req/s | p50 ms | p95 ms | p99 ms | p99/p50 |", end="")
    print(" non-200 | wrong | on/off req/s |")
    print("|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for route in args.routes:
        for clients in args.clients:
            on_rate = results[route, clients, "on"].rate()
            for mode in ("on", "off"):
                c = results[route, clients, mode]
                others = sum(n for s, n in c.statuses.items() if s != 200)
                p50, p95, p99 = (c.percentile(q) for q in (50, 95, 99))
                ratio = f"{on_rate / c.rate():.2f}x" if mode == "off" and c.rate() else ""
                print(
                    f"| {route} | {clients} | {mode} | {c.rate():.1f} | {p50:.0f} | {p95:.0f} "
                    f"| {p99:.0f} | {p99 / p50:.2f} | {others} | {c.wrong} | {ratio} |"
                )


async def overload(server: Server, sustained: float, args: argparse.Namespace) -> None:
    """Open loop at 4x `sustained` req/s on /v1/verify for --overload-seconds."""
    rate = 4 * sustained
    print(
        f"\n## overload: {rate:.1f} req/s offered (4 x {sustained:.1f}) for "
        f"{args.overload_seconds:.0f} s on /v1/verify, batching on"
    )
    latencies: dict[int, list[float]] = {}
    wrong = 0
    peak_rss = server.rss_mib()
    rss_before = peak_rss
    limits = httpx.Limits(max_connections=1000, max_keepalive_connections=1000)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:

        async def shoot(person: str) -> None:
            nonlocal wrong
            sent = time.monotonic()
            try:
                status, correct = await one_request(http, "verify", person)
            except httpx.TransportError:
                status, correct = -1, True
            latencies.setdefault(status, []).append(time.monotonic() - sent)
            wrong += not correct

        tasks, start = [], time.monotonic()
        sent = 0
        while (now := time.monotonic()) - start < args.overload_seconds:
            due = int((now - start) * rate)
            while sent < due:
                tasks.append(asyncio.create_task(shoot(PEOPLE[sent % len(PEOPLE)])))
                sent += 1
            peak_rss = max(peak_rss, server.rss_mib())
            await asyncio.sleep(0.005)
        offered_wall = time.monotonic() - start
        while not all(t.done() for t in tasks):
            peak_rss = max(peak_rss, server.rss_mib())
            await asyncio.sleep(0.05)
        drained = time.monotonic() - start

        await asyncio.sleep(1.0)
        after = [await one_request(http, "verify", p) for p in PEOPLE]

    print(f"sent {sent} in {offered_wall:.1f} s; all answered after {drained:.1f} s")
    print("| status | count | p50 ms | p99 ms | max ms |")
    print("|---:|---:|---:|---:|---:|")
    for status, values in sorted(latencies.items()):
        p50, p99, top = (percentile_ms(values, q) for q in (50, 99, 100))
        print(f"| {status} | {len(values)} | {p50:.0f} | {p99:.0f} | {top:.0f} |")
    accepted = len(latencies.get(200, []))
    print(f"accepted answers wrong: {wrong} of {accepted}")
    print(f"server RSS: {rss_before:.0f} MiB before, {peak_rss:.0f} MiB peak")
    recovered = sum(status == 200 and ok for status, ok in after)
    print(f"after the load: {recovered}/{len(after)} sequential verifies answered 200 and right")


async def main(args: argparse.Namespace) -> None:
    print(f"load average at start: {load_average()}")
    print(
        f"nproc {os.cpu_count()}, FACESVC_TORCH_THREADS={args.torch_threads}, "
        f"{args.requests} requests or {args.seconds:.0f} s per cell"
    )
    common = {"FACESVC_TORCH_THREADS": str(args.torch_threads)}
    with tempfile.TemporaryDirectory() as tmp:
        servers = {
            "on": start_server("on", Path(tmp), {**common, "FACESVC_INFERENCE_MAX_BATCH": "32"}),
            "off": start_server("off", Path(tmp), {**common, "FACESVC_INFERENCE_MAX_BATCH": "1"}),
        }
        try:
            for server in servers.values():
                await wait_ready(server)
                await enroll(server)
            results: dict[tuple[str, int, str], Cell] = {}
            for route in args.routes if args.sustained is None else []:
                for clients in args.clients:
                    for mode, server in servers.items():
                        await closed_loop(server, route, clients, warmup_args(args))
                        results[route, clients, mode] = await closed_loop(
                            server, route, clients, args
                        )
            if results:
                print()
                print_table(results, args)
                print(f"\nload average after the table: {load_average()}")
                for mode, server in servers.items():
                    print(f"mean jobs per batch, batching {mode}: {await mean_batch_sizes(server)}")
            if args.overload:
                servers["off"].process.terminate()
                sustained = args.sustained or results["verify", max(args.clients), "on"].rate()
                await overload(servers["on"], sustained, args)
        finally:
            for server in servers.values():
                server.process.terminate()
                server.process.wait(30)
    print(f"load average at end: {load_average()}")


async def mean_batch_sizes(server: Server) -> str:
    """From the server's /metrics: how many jobs its detection and embedding batches held."""
    async with httpx.AsyncClient(base_url=server.url) as http:
        text = (await http.get("/metrics")).text
    sizes = []
    for kind in ("detect", "embed"):
        total = count = 0.0
        for line in text.splitlines():
            if line.startswith(f'facesvc_inference_batch_size_sum{{kind="{kind}"}}'):
                total = float(line.split()[-1])
            if line.startswith(f'facesvc_inference_batch_size_count{{kind="{kind}"}}'):
                count = float(line.split()[-1])
        sizes.append(f"{kind} {total / count:.2f}" if count else f"{kind} -")
    return ", ".join(sizes)


def warmup_args(args: argparse.Namespace) -> argparse.Namespace:
    return argparse.Namespace(**{**vars(args), "requests": 4, "seconds": 10.0})


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--routes", nargs="+", default=["verify", "recognize"])
    parser.add_argument("--clients", nargs="+", type=int, default=[1, 8, 32])
    parser.add_argument("--requests", type=int, default=300, help="most requests per cell")
    parser.add_argument("--seconds", type=float, default=15.0, help="most seconds per cell")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--overload", action="store_true")
    parser.add_argument("--overload-seconds", type=float, default=10.0)
    parser.add_argument(
        "--sustained", type=float, help="req/s the server sustains: skip the table, overload only"
    )
    asyncio.run(main(parser.parse_args()))
