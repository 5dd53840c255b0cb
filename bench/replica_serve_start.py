"""A whole replica starting on a large Postgres gallery: `facesvc serve` from its launch
to its first ready answer, and the memory of all its processes.

    python -m bench.replica_serve_start [--faces 1000000] [--database-url URL]
        [--kind auto|flat|hnsw|ivfpq] [--backend process|thread]

Fills a database of its own (as `bench/replica_start.py` does, but with the default
model's own name and version, so the service loads those faces as its gallery), then
launches `facesvc serve` as an operator would and polls `/readyz` every 0.2 s. Ready
means what the load balancer and Kubernetes wait for: the model loaded and warm, the
index built from the database, the change feed listening (docs/deploy.md, "Readiness").
Memory is the resident set (VmRSS) of every process of the replica's process group (the
API process, and with the process backend the pool server and its worker), read at ready
and again after one recognize; their peaks (VmHWM) are summed too, an upper bound since
they need not peak at once. One recognize of a real photo then shows that the gallery
in the index is the one searched.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench.replica_start import ensure_database, fill
from bench.replicas_under_load import ENTRY, ROOT, free_port

PROBE = ROOT / "tests" / "data" / "faces"


def default_model() -> tuple[str, str]:
    """The (name, version) the service stores its faces under, with default settings."""
    from app.core.config import Settings
    from app.core.model.pipeline import FacePipeline

    return FacePipeline.load(Settings(device="cpu")).model


def group_processes(pgid: int) -> list[tuple[int, str, float, float]]:
    """(pid, what it runs, VmRSS MiB, VmHWM MiB) of each process of a process group."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if os.getpgid(int(entry.name)) != pgid:
                continue
            fields = dict(
                line.split(":", 1) for line in (entry / "status").read_text().splitlines()
            )
            argv = (entry / "cmdline").read_bytes().split(b"\0")
        except (ProcessLookupError, FileNotFoundError, PermissionError):
            continue
        what = " ".join(a.decode(errors="replace") for a in argv if a)[-60:]
        rss = int(fields.get("VmRSS", "0 kB").split()[0]) / 1024
        hwm = int(fields.get("VmHWM", "0 kB").split()[0]) / 1024
        found.append((int(entry.name), what, rss, hwm))
    return sorted(found)


def group_memory_mib(pgid: int) -> tuple[int, float, float]:
    """(processes, summed VmRSS, summed VmHWM) of a process group, in MiB."""
    processes = group_processes(pgid)
    return len(processes), sum(p[2] for p in processes), sum(p[3] for p in processes)


def index_size(url: str) -> str:
    """facesvc_index_size from /metrics (open mode serves it without a key)."""
    answer = httpx.get(f"{url}/metrics", timeout=10)
    for line in answer.text.splitlines():
        if line.startswith("facesvc_index_size"):
            return f"{float(line.split()[-1]):,.0f}"
    return f"not shown (/metrics answered {answer.status_code})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument(
        "--database-url",
        default="postgresql+psycopg://postgres@127.0.0.1:5432/facesvc_bench_serve",
    )
    parser.add_argument("--kind", choices=["auto", "flat", "hnsw", "ivfpq"], default="auto")
    parser.add_argument("--backend", choices=["process", "thread"], default="process")
    parser.add_argument("--limit", type=float, default=1200, help="seconds to wait for ready")
    args = parser.parse_args()

    model = default_model()
    ensure_database(args.database_url)
    fill(args.database_url, args.faces, model)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "FACESVC_DATABASE_URL": args.database_url,
        "FACESVC_AUTH_MODE": "open",
        "FACESVC_INDEX_KIND": args.kind,
        "FACESVC_INFERENCE_BACKEND": args.backend,
        "FACESVC_TORCH_THREADS": "1",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with tempfile.TemporaryDirectory() as tmp:
        log_path = Path(tmp) / "serve.log"
        with log_path.open("wb") as log:
            started = time.perf_counter()
            process = subprocess.Popen(
                [sys.executable, "-c", ENTRY, "serve", "--port", str(port)],
                env=env,
                cwd=tmp,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            try:
                measure(process, port, started, args)
            except Exception:
                print(log_path.read_text()[-3000:], file=sys.stderr)
                raise
            finally:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(60)


def measure(
    process: subprocess.Popen[bytes], port: int, started: float, args: argparse.Namespace
) -> None:
    url = f"http://127.0.0.1:{port}"
    deadline = started + args.limit
    answering = None
    while True:
        if process.poll() is not None:
            raise RuntimeError("the replica exited before it was ready")
        if time.perf_counter() > deadline:
            raise RuntimeError("the replica was not ready in time")
        try:
            status = httpx.get(f"{url}/readyz", timeout=2).status_code
        except httpx.TransportError:
            status = None
        if status is not None and answering is None:
            answering = time.perf_counter() - started
        if status == 200:
            break
        time.sleep(0.2)
    ready = time.perf_counter() - started
    count, rss, hwm = group_memory_mib(process.pid)
    print(
        f"{args.faces:,} faces, index {args.kind}, "
        f"{args.backend} backend: port answering after {answering:.1f} s, "
        f"ready after {ready:.1f} s; {count} processes, resident {rss:.0f} MiB "
        f"(peaks summed {hwm:.0f} MiB)"
    )
    for pid, what, rss_one, hwm_one in group_processes(process.pid):
        print(f"  pid {pid}: resident {rss_one:.0f} MiB, peak {hwm_one:.0f} MiB  ({what})")
    photo = sorted(PROBE.glob("*.jpg"))[0]
    t0 = time.perf_counter()
    answer = httpx.post(
        f"{url}/v1/recognize",
        files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
        data={"top_k": "3", "include_rejected": "true"},
        timeout=120,
    )
    took = time.perf_counter() - t0
    answer.raise_for_status()
    faces = answer.json()["faces"]
    candidates = len(faces[0]["candidates"]) if faces else 0
    indexed = index_size(url)
    _, rss_after, hwm_after = group_memory_mib(process.pid)
    print(
        f"first recognize {took * 1000:.0f} ms: {len(faces)} face(s), {candidates} "
        f"candidates from the gallery; faces in the index (/metrics): {indexed}; "
        f"resident after it {rss_after:.0f} MiB "
        f"(peaks summed {hwm_after:.0f} MiB)"
    )


if __name__ == "__main__":
    main()
