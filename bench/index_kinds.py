"""Index kinds on face-like vectors: recall, open-set agreement, build, latency, memory.

    python -m bench.index_kinds --faces 1000000 --kind ivfpq [--nprobe 8 16 32 64]
        [--rerank 0 16 64] [--queries 1000] [--build-threads 2]

The gallery is drawn from the default model's shipped cohort mixture
(app/core/model/backbones/dlib_resnet_l2_cohort.npz: unit 128-d vectors distributed like
lfw_dev's embeddings), in chunks of 500,000 with their own seeds. Half the queries are
genuine: an enrolled vector moved to a squared distance drawn from the model's mated
distance quantiles (another photo of an enrolled person); half are strangers, fresh
draws from the mixture. Each is searched through `GalleryIndex` (the service's path), one
query per call on one thread, and compared with exact search (FAISS flat, batch):
recall@1 (same nearest face) over the genuine queries, and the open-set decision
(accept when the nearest distance <= tau, the model's tau for this gallery size at FPIR
1e-2, as the service computes it; an accept must name the same face) over all of them.
Memory: resident set growth while the index is built (VmRSS, one kind per process: run
the kinds as separate commands), and the bytes of the FAISS structures (serialised).
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import statistics
import time
from pathlib import Path
from typing import Any

import faiss
import numpy as np
import numpy.typing as npt

from app.core.decision.cohort import CohortMixture
from app.core.decision.open_set import GalleryModel
from app.core.model.backbones.dlib_resnet import CALIBRATION_L2
from app.core.store.ivfpq import IvfPqKind
from app.core.store.vector_index import GalleryIndex

MIXTURE = Path("app/core/model/backbones/dlib_resnet_l2_cohort.npz")
CHUNK = 500_000
F32 = npt.NDArray[np.float32]


def memory_mib(field: str = "VmRSS") -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field}")


def draw(mixture: CohortMixture, n: int, seed: int) -> F32:
    out = np.empty((n, mixture.means.shape[1]), dtype=np.float32)
    for i, start in enumerate(range(0, n, CHUNK)):
        size = min(CHUNK, n - start)
        part = dataclasses.replace(mixture, samples=size, seed=seed + i)
        out[start : start + size] = part.draw()
    return out


def genuine(gallery: F32, n: int, mated: list[float], rng: np.random.Generator) -> Any:
    """n probes, each at a mated squared distance d from an enrolled vector: on the
    great circle towards a random direction orthogonal to it (|q - v|^2 = 2 - 2 cos)."""
    rows = rng.choice(len(gallery), n, replace=False)
    v = gallery[rows].astype(np.float64)
    u = rng.standard_normal(v.shape)
    u -= (u * v).sum(axis=1, keepdims=True) * v
    u /= np.linalg.norm(u, axis=1, keepdims=True)
    d = np.interp(rng.random(n), np.linspace(0, 1, len(mated)), mated)
    cos = 1 - d / 2
    probes = cos[:, None] * v + np.sqrt(1 - cos**2)[:, None] * u
    return probes.astype(np.float32), rows


def faiss_bytes(index: GalleryIndex) -> int:
    kind: Any = index._vectors  # the bench looks inside on purpose
    parts = [kind._index] if index.kind != "ivfpq" else [kind._store, kind._ivf]
    return sum(len(faiss.serialize_index(p)) for p in parts if p is not None)


def measure(index: GalleryIndex, queries: F32, truth: Any, n_genuine: int, tau: float) -> str:
    faiss.omp_set_num_threads(1)
    times, top, dist = [], [], []
    for q in queries:
        started = time.perf_counter()
        hits = index.search(q, 1)
        times.append(time.perf_counter() - started)
        top.append(hits[0][0] if hits else -1)
        dist.append(hits[0][1] if hits else np.inf)
    top_a, dist_a = np.array(top), np.array(dist)
    exact_id, exact_d = truth
    recall = float((top_a[:n_genuine] == exact_id[:n_genuine]).mean())
    accept, accept_exact = dist_a <= tau, exact_d <= tau
    agree = (accept == accept_exact) & (~accept | (top_a == exact_id))
    g, s = agree[:n_genuine], agree[n_genuine:]
    return (
        f"recall@1 {recall:.4f}; decision agrees: genuine {g.mean():.4f} "
        f"(exact accepts {accept_exact[:n_genuine].mean():.3f}, "
        f"this {accept[:n_genuine].mean():.3f}), "
        f"strangers {s.mean():.4f} (exact accepts {accept_exact[n_genuine:].mean():.4f}); "
        f"p50 {statistics.median(times) * 1e3:.3f} ms, "
        f"p99 {float(np.quantile(times, 0.99)) * 1e3:.3f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--faces", type=int, default=1_000_000)
    parser.add_argument("--kind", choices=["flat", "hnsw", "ivfpq"], default="flat")
    parser.add_argument("--queries", type=int, default=1000, help="genuine; as many strangers")
    parser.add_argument("--nprobe", type=int, nargs="*", default=[8, 16, 32, 64])
    parser.add_argument("--rerank", type=int, nargs="*", default=[0, 16, 64])
    parser.add_argument("--build-threads", type=int, default=2)
    args = parser.parse_args()
    print(f"load average {os.getloadavg()}, faiss {faiss.__version__}, nproc {os.cpu_count()}")
    mixture = CohortMixture.load(MIXTURE)
    tau = GalleryModel.from_dict(CALIBRATION_L2.gallery_model or {}).tau_for_fpir(1e-2, args.faces)
    started = time.perf_counter()
    gallery = draw(mixture, args.faces, seed=1000)
    rng = np.random.default_rng(5)
    probes, _ = genuine(gallery, args.queries, CALIBRATION_L2.gallery_model["genuine"], rng)  # type: ignore[index]
    strangers = draw(mixture, args.queries, seed=999_000)
    queries = np.ascontiguousarray(np.concatenate([probes, strangers]))
    took = time.perf_counter() - started
    print(f"drew {args.faces:,} faces and {len(queries)} queries in {took:.1f} s; tau {tau:.4f}")

    ids = np.arange(1, args.faces + 1, dtype=np.int64)
    faiss.omp_set_num_threads(args.build_threads)
    gc.collect()
    before = memory_mib()
    index = GalleryIndex(gallery.shape[1], args.kind)
    started = time.perf_counter()
    index.load(ids, gallery, np.ones(args.faces, dtype=np.int64), index.generation)
    built = time.perf_counter() - started
    gc.collect()
    grown = memory_mib() - before
    print(
        f"{args.kind}: built {args.faces:,} in {built:.1f} s on {args.build_threads} threads; "
        f"resident +{grown:.0f} MiB ({grown / args.faces * 1e6:.0f} MiB per million), "
        f"FAISS {faiss_bytes(index) / 2**20:.0f} MiB, peak {memory_mib('VmHWM'):.0f} MiB"
    )

    flat = faiss.IndexFlatL2(gallery.shape[1])
    flat.add(gallery)
    exact_d, exact_i = flat.search(queries, 1)
    truth = (ids[exact_i[:, 0]], exact_d[:, 0])
    del flat
    if args.kind != "ivfpq":
        print(f"  {measure(index, queries, truth, args.queries, tau)}")
        return
    kind: IvfPqKind = index._vectors  # type: ignore[assignment]
    for rerank in args.rerank:
        for nprobe in args.nprobe:
            kind.rerank, kind.nprobe = rerank, nprobe
            line = measure(index, queries, truth, args.queries, tau)
            print(f"  nprobe {nprobe:3d} rerank {rerank:3d}: {line}")


if __name__ == "__main__":
    main()
