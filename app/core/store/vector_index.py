"""The FAISS gallery: face id -> embedding, searched by squared L2 distance.

The database is the source of truth. The index is built from it at start and changed only
after a database commit succeeded (see `app.core.store.index_sync`), under one lock, so concurrent
enrolls, deletes and searches are safe. Adds and removes are idempotent, which lets a
late hook and a catch-up from the database meet without duplicates. Every change bumps
`generation`, so a catch-up can tell that the index moved while it read the database.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from typing import Literal

import faiss
import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]


class GalleryIndex:
    def __init__(
        self,
        dim: int,
        kind: Literal["flat", "hnsw"] = "flat",
        hnsw_m: int = 32,
        hnsw_ef_search: int = 384,
    ) -> None:
        self.dim = dim
        self.kind = kind
        self._hnsw_m = hnsw_m
        self._hnsw_ef_search = hnsw_ef_search
        self._lock = threading.Lock()
        self._ids: set[int] = set()
        self.id_sum = 0  # sum of the ids held: a cheap fingerprint to compare with the DB
        self.generation = 0  # bumped by every change; see `reconcile`
        # HNSW cannot remove vectors: removed ids become tombstones, filtered from results
        # and dropped at the next rebuild.
        self._tombstones: set[int] = set()
        self._vectors: dict[int, Vectors] = {}  # kept only for HNSW rebuilds
        self._index = self._new_index()
        self.ready = False

    def _new_index(self) -> faiss.IndexIDMap2:
        if self.kind != "hnsw":
            return faiss.IndexIDMap2(faiss.IndexFlatL2(self.dim))
        hnsw = faiss.IndexHNSWFlat(self.dim, self._hnsw_m)
        # FAISS's default efSearch (16) gives recall@1 0.41 at 1M (bench/index.py)
        hnsw.hnsw.efSearch = self._hnsw_ef_search
        return faiss.IndexIDMap2(hnsw)

    def __len__(self) -> int:
        with self._lock:
            return len(self._ids)

    def __contains__(self, face_id: int) -> bool:
        with self._lock:
            return face_id in self._ids

    def ids(self) -> set[int]:
        with self._lock:
            return set(self._ids)

    def add(self, ids: Iterable[int], vectors: Vectors) -> None:
        with self._lock:
            self._add_locked(ids, vectors)

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._remove_locked(ids)

    def reconcile(
        self, db_ids: set[int], new_vectors: dict[int, Vectors], seen_generation: int
    ) -> bool:
        """Make the index hold exactly `db_ids` (read from the database after `generation`
        was `seen_generation`), adding `new_vectors` for ids it lacks. Refused (False) when
        the index changed since then: a commit hook ran meanwhile, and the database read
        may predate that commit, so applying it would undo the hook's add or remove."""
        with self._lock:
            if self.generation != seen_generation:
                return False
            self._remove_locked(self._ids - db_ids)
            missing = [face_id for face_id in new_vectors if face_id in db_ids]
            if missing:
                self._add_locked(missing, np.stack([new_vectors[i] for i in missing]))
            return True

    def _add_locked(self, ids: Iterable[int], vectors: Vectors) -> None:
        ids = list(ids)
        vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))
        keep = [i for i, face_id in enumerate(ids) if face_id not in self._ids]
        if not keep:
            return
        new_ids = np.asarray([ids[i] for i in keep], dtype=np.int64)
        new_vectors = vectors[keep]
        revived = self._tombstones.intersection(new_ids.tolist())
        if revived:  # an HNSW id that comes back: rebuild without its old vector
            self._tombstones -= revived
            self._rebuild_locked()
        self._index.add_with_ids(new_vectors, new_ids)
        self._ids.update(new_ids.tolist())
        self.id_sum += int(new_ids.sum())
        self.generation += 1
        if self.kind == "hnsw":
            self._vectors.update(zip(new_ids.tolist(), new_vectors, strict=True))

    def _remove_locked(self, ids: Iterable[int]) -> None:
        gone = self._ids.intersection(ids)
        if not gone:
            return
        self._ids -= gone
        self.id_sum -= sum(gone)
        self.generation += 1
        if self.kind == "flat":
            ids = np.asarray(sorted(gone), dtype=np.int64)
            self._index.remove_ids(ids)  # type: ignore[arg-type]  # faiss wraps arrays
            return
        for face_id in gone:
            self._vectors.pop(face_id, None)
        self._tombstones |= gone
        if len(self._tombstones) > max(1000, len(self._ids) // 4):
            self._rebuild_locked()

    def _rebuild_locked(self) -> None:
        self._index = self._new_index()
        self._tombstones.clear()
        if self._vectors:
            ids = np.fromiter(self._vectors, dtype=np.int64, count=len(self._vectors))
            self._index.add_with_ids(np.stack(list(self._vectors.values())), ids)

    def search(self, vector: Vectors, k: int) -> list[tuple[int, float]]:
        """The k nearest faces as (face_id, squared L2 distance), nearest first."""
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, self.dim))
        with self._lock:
            k = min(k, len(self._ids))
            if k <= 0:
                return []
            distances, labels = self._index.search(query, k + len(self._tombstones))
            tombstones = set(self._tombstones)
        hits = [
            (int(label), max(0.0, float(dist)))
            for label, dist in zip(labels[0], distances[0], strict=True)
            if label >= 0 and int(label) not in tombstones
        ]
        return hits[:k]
