"""Recognize's search filtered to one collection (app/core/store/vector_index.py).

    python bench/collection_search.py [--big 1000000] [--small 20] [--dim 128] [--queries 50]

One index holds a big collection and a small one (synthetic unit vectors). Per index
kind: the median time of a search of the whole index without a filter, and of one in
each collection after the first (which builds the flat index's ID selector, kept until
the index changes), and the first one alone. Also checks the small collection's answer
against exact numpy search over its members.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from app.core.store.vector_index import GalleryIndex


def timed(fn: object, *args: object) -> float:
    start = time.perf_counter()
    fn(*args)  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--big", type=int, default=1_000_000)
    parser.add_argument("--small", type=int, default=20)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--kinds", nargs="+", default=["flat", "hnsw"])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    big = rng.normal(size=(args.big, args.dim)).astype(np.float32)
    big /= np.linalg.norm(big, axis=1, keepdims=True)
    small = rng.normal(size=(args.small, args.dim)).astype(np.float32)
    small /= np.linalg.norm(small, axis=1, keepdims=True)
    probes = big[rng.choice(args.big, args.queries, replace=False)]
    for kind in args.kinds:
        index = GalleryIndex(args.dim, kind)  # type: ignore[arg-type]
        index.add(range(1, args.big + 1), big, collection=1)
        small_ids = list(range(args.big + 1, args.big + 1 + args.small))
        index.add(small_ids, small, collection=2)
        first = timed(index.search, probes[0], 5, 1)
        for name, collection in (("whole index (no filter)", None), ("big", 1), ("small", 2)):
            times = [timed(index.search, q, 5, collection) for q in probes]
            print(f"{kind:5} {name}: median {statistics.median(times) * 1000:.2f} ms")
        print(
            f"{kind:5} first search of the big collection (selector built): {first * 1000:.1f} ms"
        )
        for q in probes:  # the small collection's answer is exact, other faces never in it
            got = [face for face, _ in index.search(q, 3, 2)]
            want = np.argsort(((small - q) ** 2).sum(axis=1), kind="stable")[:3]
            assert got == [small_ids[i] for i in want], (kind, got)
        print(f"{kind:5} small collection: exact nearest members for all {len(probes)} probes")


if __name__ == "__main__":
    main()
