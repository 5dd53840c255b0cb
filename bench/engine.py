"""The inference pool alone: batching on and off, or 1 against N worker processes.

    python -m bench.engine [--clients 32] [--seconds 20] [--torch-threads 1]
        [--device cpu|cuda] [--modes on off]
    python -m bench.engine --backend process --workers 1 2 [--clients 32] [--seconds 20]

In one process, `--clients` closed-loop callers run `FaceInference.analyze` (decode,
detect, align, embed: what /v1/verify asks of the pool) on the real photos of
tests/data/faces, against two engines built from one loaded pipeline: batching on
(the device's default batch limits: 32 jobs and detection batches of 8 on the CPU, 256
and 32 on a GPU) and off (1). The engines take turns in rounds of --seconds / 4 seconds
so that background load hits both alike. Several --clients values give one line each;
--modes on measures batching on alone (bench/gpu_check.sh, to save time).
No HTTP, no database: the ratio printed is the most batching can bring to the service's
requests per second on this machine, whatever the web layer costs.

With `--backend process`, one pool of worker processes per `--workers` count (each
process loads its own pipeline, `--torch-threads` threads each) is started, then they
take turns the same way; the ratio printed is the scaling from the first count to the
last. On a 2-core machine, `--workers 1 2 --torch-threads 1` is the proof that no shared
lock bounds the pool (docs/architecture.md).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import torch

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.core.serving.inference import FaceInference
from app.core.telemetry import Metrics

FACES = Path(__file__).resolve().parent.parent / "tests" / "data" / "faces"
MODES = {
    "on": {"inference_max_batch": 0, "inference_max_detect_batch": 0},  # 0: by device
    "off": {"inference_max_batch": 1, "inference_max_detect_batch": 1},
}


async def requests_per_second(
    engine: FaceInference, photos: list[bytes], clients: int, seconds: float
) -> float:
    done = 0
    stop = time.monotonic() + seconds

    async def client(k: int) -> None:
        nonlocal done
        i = k
        while time.monotonic() < stop:
            await engine.analyze(photos[i % len(photos)], faces="largest")
            done += 1
            i += clients

    start = time.monotonic()
    await asyncio.gather(*(client(k) for k in range(clients)))
    return done / (time.monotonic() - start)


async def scaling(args: argparse.Namespace, base: Settings, photos: list[bytes]) -> None:
    """Worker-process pools of each size in `args.workers`, in turns."""
    pipeline = FacePipeline.load(base)  # metadata only: the workers load their own
    engines = {}
    for n in args.workers:
        settings = base.model_copy(update={"inference_workers_per_device": n})
        engine = FaceInference([pipeline], settings, Metrics(), backend="process")
        started = time.monotonic()
        await engine.start()
        print(f"{n} worker processes warm in {time.monotonic() - started:.1f} s")
        engines[n] = engine
    rates: dict[int, list[float]] = {n: [] for n in args.workers}
    try:
        for _ in range(4):
            for n, engine in engines.items():
                rate = await requests_per_second(engine, photos, args.clients[0], args.seconds / 4)
                rates[n].append(rate)
    finally:
        for engine in engines.values():
            await engine.stop()
    medians = {n: statistics.median(r) for n, r in rates.items()}
    for n, rate in medians.items():
        rounds = ", ".join(f"{r:.1f}" for r in rates[n])
        print(f"{n} worker processes: {rate:.1f} requests/s (rounds: {rounds})")
    first, last = args.workers[0], args.workers[-1]
    print(f"{last} / {first} processes: {medians[last] / medians[first]:.2f}x")


async def main(args: argparse.Namespace) -> None:
    torch.set_num_threads(args.torch_threads)
    base = Settings(
        _env_file=None,
        torch_threads=args.torch_threads,
        device=args.device,
        inference_deadline_ms=600_000,  # measure throughput, never time out
        inference_queue_size=max(64, *args.clients),
    )
    photos = [p.read_bytes() for p in sorted(FACES.glob("*.jpg"))]
    print(f"nproc {os.cpu_count()}, torch threads {args.torch_threads}, device {args.device}")
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    if args.backend == "process":
        await scaling(args, base, photos)
        print("load average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
        return
    pipeline = FacePipeline.load(base)
    for clients in args.clients:
        rates: dict[str, list[float]] = {mode: [] for mode in args.modes}
        for _ in range(4):
            for mode in args.modes:
                engine = FaceInference([pipeline], base.model_copy(update=MODES[mode]), Metrics())
                await engine.start()
                rates[mode].append(
                    await requests_per_second(engine, photos, clients, args.seconds / 4)
                )
                await engine.stop()
        medians = {mode: statistics.median(rates[mode]) for mode in args.modes}
        for mode, rate in medians.items():
            rounds = ", ".join(f"{r:.1f}" for r in rates[mode])
            print(f"{clients} clients, batching {mode}: {rate:.1f} requests/s (rounds: {rounds})")
        if len(medians) == 2:
            print(f"{clients} clients, on / off: {medians['on'] / medians['off']:.2f}x")
    print("load average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[32])
    parser.add_argument("--seconds", type=float, default=20.0, help="per mode, in 4 rounds")
    parser.add_argument("--torch-threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N")
    parser.add_argument("--modes", nargs="+", choices=list(MODES), default=list(MODES))
    parser.add_argument(
        "--backend",
        choices=("thread", "process"),
        default="thread",
        help="thread: batching on/off in worker threads; process: --workers compared",
    )
    parser.add_argument(
        "--workers", type=int, nargs="+", default=[1, 2], help="worker processes per pool"
    )
    asyncio.run(main(parser.parse_args()))
