"""IVF-PQ, the index kind for tens of millions of faces (docs/deploy.md, "Index kinds").

Each vector is kept twice: as a 64-byte product-quantised code in the inverted lists of
a FAISS IndexIVFPQ (the search), and in float16 (256 bytes at 128-d) for an exact
re-rank of the `rerank` candidates the codes propose. At 1M face-like vectors
(bench/index_kinds.py, docs/deploy.md) recall@1 is set by `nprobe` (0.975 at 32, 0.992
at 64, re-ranked or not), but PQ distances alone are off by enough to flip 5 in 1000
genuine open-set decisions at tau; re-ranked, every decision agreed with exact search.
The float16 copies also answer small collections exactly, and rebuild the index as
another kind (float16 moves a squared distance near tau, about 0.05, by 1e-4 at most).

The coarse quantiser and the codebooks are trained on the gallery's own vectors, once it
holds `train_min` of them (below, searches are exact over the float16 copies): nlist
about 4 sqrt(N) lists, each probe scanning `nprobe` of them. A bulk load trains at once;
a gallery that grows to `train_min` by enrolls, or far past the size it was trained at,
is (re)trained by `GalleryIndex`'s background rebuild, not under its lock.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import faiss
import numpy as np

from app.core.store.index_kinds import Hits, Ids, Kind, Vectors, exact, hits_of, small_collection

TRAIN_MIN = 10_000  # fewer: exact search over the float16 copies, cheap at that size
TRAIN_PER_LIST = 64  # training sample: this many vectors per inverted list (FAISS: 39-256)
RETRAIN_GROWTH = 4  # retrained at this many times its training size: nlist ~ 4 sqrt(N) again


class IvfPqKind:
    kind: Kind = "ivfpq"

    def __init__(
        self,
        dim: int,
        nprobe: int = 32,
        rerank: int = 64,
        pq_m: int | None = None,
        train_min: int = TRAIN_MIN,
    ) -> None:
        self.dim = dim
        self.nprobe = nprobe
        self.rerank = rerank  # candidates re-ranked exactly per search (at least k; 0: none)
        self._pq_m = pq_m or max(1, dim // 2)  # 64 codes of 8 bits at 128-d
        self._train_min = max(train_min, 256)  # 8-bit PQ needs 256 vectors per codebook
        self.trained_at = 0  # the gallery size the lists were trained on (0: not yet)
        # float16 copies by id: the re-rank, exact search before training, and rebuilds
        self._store = faiss.IndexIDMap2(
            faiss.IndexScalarQuantizer(dim, faiss.ScalarQuantizer.QT_fp16)
        )
        self._ivf: faiss.IndexIVFPQ | None = None

    @property
    def ntotal(self) -> int:
        return int(self._store.ntotal)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        self._store.add_with_ids(vectors, ids)
        if self._ivf is not None:
            self._ivf.add_with_ids(vectors, ids)
        elif len(ids) >= self._train_min:  # a bulk load (a start, a rebuild): train now
            self._train()

    @property
    def needs_training(self) -> bool:
        """Grown by small adds to `train_min` untrained, or to RETRAIN_GROWTH times the
        size it was trained at (nlist then too small): `GalleryIndex` rebuilds it in the
        background rather than train under its lock."""
        if not self.trained_at:
            return self.ntotal >= self._train_min
        return self.ntotal > RETRAIN_GROWTH * self.trained_at

    def remove(self, ids: set[int]) -> None:
        gone = np.asarray(sorted(ids), dtype=np.int64)
        self._store.remove_ids(gone)  # type: ignore[arg-type]  # faiss wraps arrays
        if self._ivf is not None:
            self._ivf.remove_ids(gone)  # type: ignore[arg-type]

    def _train(self) -> None:
        ids, vectors = self.export()
        n = len(ids)
        nlist = max(1, min(int(4 * math.sqrt(n)), n // 39))
        quantizer = faiss.IndexFlatL2(self.dim)
        ivf = faiss.IndexIVFPQ(quantizer, self.dim, nlist, self._pq_m, 8)
        # 10 k-means rounds, not FAISS's 25, and PQ codebooks from 64 vectors per
        # centroid, not 256: 64 codebooks of 2-d took 100 s to train on 2 cores, 12 s so
        ivf.cp.niter = ivf.pq.cp.niter = 10
        ivf.pq.cp.max_points_per_centroid = 64
        sample = min(n, max(nlist * TRAIN_PER_LIST, 256 * 64))
        rows = np.random.default_rng(0).choice(n, sample, replace=False) if sample < n else None
        ivf.train(vectors if rows is None else vectors[np.sort(rows)])
        ivf.nprobe = self.nprobe
        ivf.add_with_ids(vectors, ids)
        self._quantizer = quantizer  # FAISS holds it by pointer: keep it alive
        self._ivf = ivf
        self.trained_at = n

    def search(self, query: Vectors, k: int) -> Hits:
        return self._search(query, k, None)

    def search_among(
        self, query: Vectors, k: int, members: set[int], selector: Callable[[], Any]
    ) -> Hits:
        if small_collection(members, self.ntotal):
            ids = np.fromiter(members, dtype=np.int64, count=len(members))
            return exact(query, k, ids, self.vectors_of(ids))
        return self._search(query, k, selector())

    def _search(self, query: Vectors, k: int, selector: Any) -> Hits:
        api: Any = faiss  # its type stubs lack the search parameters
        if self._ivf is None:
            params = None if selector is None else api.SearchParameters(sel=selector)
            distances, labels = self._store.search(query, k, params=params)
            return hits_of(labels[0], distances[0])
        params = api.SearchParametersIVF(sel=selector, nprobe=self.nprobe)
        if selector is None:
            params = api.SearchParametersIVF(nprobe=self.nprobe)
        distances, labels = self._ivf.search(query, max(k, self.rerank), params=params)
        if not self.rerank:  # PQ distances as they are (bench/index_kinds.py)
            return hits_of(labels[0], distances[0])
        candidates = labels[0][labels[0] >= 0]
        if not len(candidates):
            return []
        return exact(query, k, candidates, self.vectors_of(candidates))

    def vectors_of(self, ids: Ids) -> Vectors:
        return np.asarray(self._store.reconstruct_batch(ids), dtype=np.float32)

    def export(self) -> tuple[Ids, Vectors]:
        ids = faiss.vector_to_array(self._store.id_map).astype(np.int64)
        inner = self._store.index
        return ids, np.asarray(inner.reconstruct_n(0, inner.ntotal), dtype=np.float32)
