"""Gallery search: FAISS exact (IndexFlatL2), FAISS HNSW and numpy brute force.

    python bench/index.py [--sizes 10000 100000 1000000] [--queries 200]

Synthetic 128-d embeddings: gallery vectors uniform on a sphere of dlib-like norm, and
probes that are noisy copies of enrolled vectors (another photo of an enrolled person,
squared distance about 0.1 to the original against about 2 between two gallery vectors).
Per gallery size: HNSW (M=32, efConstruction 40 as in app/core/store/index_kinds.py) is built, the
smallest efSearch from --ef-search with recall@1 >= --target against exact search is
chosen, and single-query latency (one query per call, as /v1/recognize does, FAISS on one
thread) is measured for each method: median and p99 over --queries probes. Memory is the
size of the serialised index, per million vectors.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable

import faiss
import numpy as np

DIM = 128


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def make_data(size: int, queries: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gallery = rng.standard_normal((size, DIM), dtype=np.float32)
    gallery /= np.linalg.norm(gallery, axis=1, keepdims=True)
    picks = rng.integers(0, size, queries)
    noise = rng.standard_normal((queries, DIM), dtype=np.float32) * np.float32(np.sqrt(0.1 / DIM))
    return gallery, np.ascontiguousarray(gallery[picks] + noise)


def latencies_ms(search: Callable[[np.ndarray], object], probes: np.ndarray) -> list[float]:
    out = []
    for probe in probes:
        start = time.perf_counter()
        search(probe[None, :])
        out.append((time.perf_counter() - start) * 1000)
    return out


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(0.99 * (len(ordered) - 1)))]


def mib_per_million(index: faiss.Index, size: int) -> float:
    return len(faiss.serialize_index(index)) / 2**20 * 1e6 / size


def bench_size(size: int, args: argparse.Namespace) -> list[str]:
    gallery, probes = make_data(size, args.queries, seed=size)
    norms = (gallery**2).sum(axis=1)

    flat = faiss.IndexFlatL2(DIM)
    flat.add(gallery)
    _, exact = flat.search(probes, 1)

    faiss.omp_set_num_threads(args.build_threads)  # building may use every core
    start = time.perf_counter()
    hnsw = faiss.IndexHNSWFlat(DIM, args.hnsw_m)
    hnsw.add(gallery)
    build = time.perf_counter() - start
    faiss.omp_set_num_threads(1)  # latency: one query, one thread

    chosen, recall = args.ef_search[-1], 0.0
    for ef in args.ef_search:
        hnsw.hnsw.efSearch = ef
        _, found = hnsw.search(probes, 1)
        recall = float((found[:, 0] == exact[:, 0]).mean())
        print(f"  n={size}: efSearch {ef} recall@1 {recall:.4f}")
        if recall >= args.target:
            chosen = ef
            break
    hnsw.hnsw.efSearch = chosen

    def numpy_search(probe: np.ndarray) -> int:
        return int(np.argmin(norms - 2 * gallery @ probe[0]))

    numpy_probes = probes[: max(20, args.queries // (10 if size >= 1_000_000 else 1))]
    numpy_found = [numpy_search(p[None, :]) for p in numpy_probes]
    numpy_recall = float(np.mean(np.array(numpy_found) == exact[: len(numpy_probes), 0]))
    numpy_memory = gallery.nbytes / 2**20 * 1e6 / size
    flat_memory, hnsw_memory = mib_per_million(flat, size), mib_per_million(hnsw, size)
    methods: list[tuple[str, Callable[[np.ndarray], object], np.ndarray, float, float]] = [
        ("faiss flat (exact)", lambda q: flat.search(q, 1), probes, 1.0, flat_memory),
        (f"faiss hnsw ef={chosen}", lambda q: hnsw.search(q, 1), probes, recall, hnsw_memory),
        ("numpy brute force", numpy_search, numpy_probes, numpy_recall, numpy_memory),
    ]  # fmt: skip
    rows = []
    for name, search, sample, rec, memory in methods:
        times = latencies_ms(search, sample)
        rows.append(
            f"| {size:,} | {name} | {statistics.median(times):.3f} | {p99(times):.3f} "
            f"| {rec:.4f} | {memory:.0f} | {build if 'hnsw' in name else 0:.1f} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", type=int, default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--hnsw-m", type=int, default=32)
    parser.add_argument("--ef-search", nargs="+", type=int, default=[16, 32, 64, 128, 256])
    parser.add_argument("--target", type=float, default=0.99, help="recall@1 to reach")
    parser.add_argument("--build-threads", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    print(f"load average at start: {load_average()}")
    print(f"faiss {faiss.__version__}, nproc {os.cpu_count()}, search on 1 thread")
    rows = [row for size in args.sizes for row in bench_size(size, args)]
    print()
    print("| gallery | method | p50 ms | p99 ms | recall@1 | MiB per million | build s |")
    print("|---:|---|---:|---:|---:|---:|---:|")
    print("\n".join(rows))
    print(f"\nload average at end: {load_average()}")


if __name__ == "__main__":
    main()
