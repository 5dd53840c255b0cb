"""The FAISS structures behind `GalleryIndex`, one per index kind, and `auto`'s choice.

`GalleryIndex` keeps what every kind shares (the ids, their collections, the lock and the
generation) and hands the vectors to one of these: exact `FlatKind`, graph `HnswKind`,
or compressed `IvfPqKind` (`app.core.store.ivfpq`). Each is called under the gallery's
lock, with ids it does not hold (add) or holds (remove), so none checks again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import faiss
import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
Ids = npt.NDArray[np.int64]
Hits = list[tuple[int, float]]
Kind = Literal["flat", "hnsw", "ivfpq"]
KINDS: tuple[Kind, ...] = ("flat", "hnsw", "ivfpq")  # smallest gallery first

# A filtered search over a collection this small (or smaller than an eighth of the index)
# compares the probe with each of its vectors instead: exact, and cheaper than a graph walk
# or an inverted-list scan that must pass over the other collections' faces to reach its few.
EXACT_SEARCH_MAX = 4096


class KindIndex(Protocol):
    kind: Kind

    def add(self, ids: Ids, vectors: Vectors) -> None: ...
    def remove(self, ids: set[int]) -> None: ...
    def search(self, query: Vectors, k: int) -> Hits: ...
    def search_among(
        self, query: Vectors, k: int, members: set[int], selector: Callable[[], Any]
    ) -> Hits: ...
    def vectors_of(self, ids: Ids) -> Vectors: ...
    def export(self) -> tuple[Ids, Vectors]: ...


def hits_of(labels: npt.NDArray[Any], distances: npt.NDArray[Any], keep: Any = None) -> Hits:
    """FAISS's result row as (face id, squared distance); -1 (no result) and ids not in
    `keep` (when given) left out."""
    return [
        (int(label), max(0.0, float(dist)))
        for label, dist in zip(labels, distances, strict=True)
        if label >= 0 and (keep is None or int(label) in keep)
    ]


def exact(query: Vectors, k: int, ids: Ids, vectors: Vectors) -> Hits:
    distances = ((vectors - query) ** 2).sum(axis=1)
    order = np.argsort(distances, kind="stable")[:k]
    return [(int(ids[i]), max(0.0, float(distances[i]))) for i in order]


def small_collection(members: set[int], total: int) -> bool:
    return len(members) <= EXACT_SEARCH_MAX or len(members) * 8 < total


class FlatKind:
    """Exact L2 over every vector."""

    kind: Kind = "flat"

    def __init__(self, dim: int) -> None:
        self.dim = dim
        self._index = faiss.IndexIDMap2(faiss.IndexFlatL2(dim))

    def add(self, ids: Ids, vectors: Vectors) -> None:
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: set[int]) -> None:
        gone = np.asarray(sorted(ids), dtype=np.int64)
        self._index.remove_ids(gone)  # type: ignore[arg-type]  # faiss wraps arrays

    def search(self, query: Vectors, k: int) -> Hits:
        distances, labels = self._index.search(query, k)
        return hits_of(labels[0], distances[0])

    def search_among(
        self, query: Vectors, k: int, members: set[int], selector: Callable[[], Any]
    ) -> Hits:
        api: Any = faiss  # its type stubs lack the search parameters' selector
        distances, labels = self._index.search(
            query, k, params=api.SearchParameters(sel=selector())
        )
        return hits_of(labels[0], distances[0], members)

    def vectors_of(self, ids: Ids) -> Vectors:
        return np.asarray(self._index.reconstruct_batch(ids), dtype=np.float32)

    def export(self) -> tuple[Ids, Vectors]:
        ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        inner = self._index.index
        return ids, np.asarray(inner.reconstruct_n(0, inner.ntotal), dtype=np.float32)


class HnswKind:
    """HNSW graph. It cannot remove vectors: removed ids become tombstones, filtered from
    results and dropped at the next rebuild; the vectors are kept for those rebuilds."""

    kind: Kind = "hnsw"

    def __init__(self, dim: int, m: int = 32, ef_search: int = 384) -> None:
        self.dim = dim
        self._m = m
        self._ef_search = ef_search
        self._tombstones: set[int] = set()
        self._vectors: dict[int, Vectors] = {}
        self._index = self._new()

    def _new(self) -> faiss.IndexIDMap2:
        hnsw = faiss.IndexHNSWFlat(self.dim, self._m)
        # FAISS's default efSearch (16) gives recall@1 0.41 at 1M (bench/index.py)
        hnsw.hnsw.efSearch = self._ef_search
        return faiss.IndexIDMap2(hnsw)

    def add(self, ids: Ids, vectors: Vectors) -> None:
        revived = self._tombstones.intersection(ids.tolist())
        if revived:  # an id that comes back: rebuild without its old vector
            self._tombstones -= revived
            self._rebuild()
        self._index.add_with_ids(vectors, ids)
        self._vectors.update(zip(ids.tolist(), vectors, strict=True))

    def remove(self, ids: set[int]) -> None:
        for face_id in ids:
            self._vectors.pop(face_id, None)
        self._tombstones |= ids
        if len(self._tombstones) > max(1000, len(self._vectors) // 4):
            self._rebuild()

    def _rebuild(self) -> None:
        self._index = self._new()
        self._tombstones.clear()
        if self._vectors:
            ids, vectors = self.export()
            self._index.add_with_ids(vectors, ids)

    def search(self, query: Vectors, k: int) -> Hits:
        distances, labels = self._index.search(query, k + len(self._tombstones))
        return [hit for hit in hits_of(labels[0], distances[0]) if hit[0] not in self._tombstones][
            :k
        ]

    def search_among(
        self, query: Vectors, k: int, members: set[int], selector: Callable[[], Any]
    ) -> Hits:
        if small_collection(members, len(self._vectors)):
            ids = np.fromiter(members, dtype=np.int64, count=len(members))
            return exact(query, k, ids, self.vectors_of(ids))
        api: Any = faiss
        params = api.SearchParametersHNSW(sel=selector(), efSearch=max(self._ef_search, k))
        distances, labels = self._index.search(query, k, params=params)
        return hits_of(labels[0], distances[0], members)

    def vectors_of(self, ids: Ids) -> Vectors:
        return np.stack([self._vectors[int(i)] for i in ids])

    def export(self) -> tuple[Ids, Vectors]:
        ids = np.fromiter(self._vectors, dtype=np.int64, count=len(self._vectors))
        if not len(ids):
            return ids, np.zeros((0, self.dim), dtype=np.float32)
        return ids, np.stack(list(self._vectors.values()))


@dataclass(frozen=True)
class AutoKinds:
    """FACESVC_INDEX_KIND=auto: exact below `hnsw_from` faces, HNSW below `ivfpq_from`,
    IVF-PQ from there. A gallery grows into the next kind at its threshold and shrinks
    back only below half of it, so one that hovers at a threshold is not rebuilt at
    every enroll and delete."""

    hnsw_from: int
    ivfpq_from: int

    def for_size(self, faces: int) -> Kind:
        return "flat" if faces < self.hnsw_from else "hnsw" if faces < self.ivfpq_from else "ivfpq"

    def wanted(self, faces: int, current: Kind) -> Kind:
        grown = self.for_size(faces)
        if KINDS.index(grown) > KINDS.index(current):
            return grown
        shrunk = self.for_size(faces * 2)
        if KINDS.index(shrunk) < KINDS.index(current):
            return shrunk
        return current
