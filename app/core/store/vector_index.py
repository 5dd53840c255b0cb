"""The FAISS gallery: face id -> embedding, searched by squared L2 distance.

The database is the source of truth. The index is built from it at start and changed only
after a database commit succeeded (see `app.core.store.index_sync`), under one lock, so concurrent
enrolls, deletes and searches are safe. Adds and removes are idempotent, which lets a
late hook and a catch-up from the database meet without duplicates. Every change bumps
`generation`, so a catch-up can tell that the index moved while it read the database.

Each face belongs to one collection, and a search names the collection it may answer
from: one index for all collections, searched with a FAISS ID selector of the
collection's faces (docs/architecture.md, "One index, filtered by collection").
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from typing import Any, Literal

import faiss
import numpy as np
import numpy.typing as npt

from app.core.store.rows.collections import DEFAULT_COLLECTION_ID

Vectors = npt.NDArray[np.float32]

# An HNSW search filtered to a collection this small (or smaller than an eighth of the
# index) compares the probe with each of its vectors instead: exact, and cheaper than a
# graph walk that must pass over the other collections' nodes to reach its few.
EXACT_SEARCH_MAX = 4096


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
        self._collection_of: dict[int, int] = {}  # face id -> collection id
        self._members: dict[int, set[int]] = {}  # collection id -> its face ids
        self._selectors: dict[int, tuple[int, faiss.IDSelectorBatch, npt.NDArray[np.int64]]] = {}
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

    def count(self, collection: int) -> int:
        """Faces of one collection in the index (its gallery size N for 1:N)."""
        with self._lock:
            return len(self._members.get(collection, ()))

    def collection_of(self, face_id: int) -> int | None:
        with self._lock:
            return self._collection_of.get(face_id)

    def add(
        self, ids: Iterable[int], vectors: Vectors, collection: int = DEFAULT_COLLECTION_ID
    ) -> None:
        ids = list(ids)
        with self._lock:
            self._add_locked(ids, vectors, [collection] * len(ids))

    def remove(self, ids: Iterable[int]) -> None:
        with self._lock:
            self._remove_locked(ids)

    def reconcile(
        self,
        db_ids: Iterable[int],
        new_vectors: dict[int, Vectors],
        seen_generation: int,
        collections: Mapping[int, int] | None = None,
    ) -> bool:
        """Make the index hold exactly `db_ids` (read from the database after `generation`
        was `seen_generation`), adding `new_vectors` for ids it lacks, each in its
        collection from `collections` (face id -> collection id; the default one when
        absent). Refused (False) when the index changed since then: a commit hook ran
        meanwhile, and the database read may predate that commit, so applying it would
        undo the hook's add or remove."""
        db_ids = set(db_ids)
        collections = collections or {}
        with self._lock:
            if self.generation != seen_generation:
                return False
            self._remove_locked(self._ids - db_ids)
            missing = [face_id for face_id in new_vectors if face_id in db_ids]
            if missing:
                self._add_locked(
                    missing,
                    np.stack([new_vectors[i] for i in missing]),
                    [collections.get(i, DEFAULT_COLLECTION_ID) for i in missing],
                )
            return True

    def load(
        self,
        ids: npt.NDArray[np.int64],
        vectors: Vectors,
        collections: npt.NDArray[np.int64],
        seen_generation: int,
    ) -> bool:
        """`reconcile` for a whole gallery read at once (arrays, row i for ids[i]): the
        index holds exactly `ids` afterwards. Refused (False) as `reconcile` is."""
        with self._lock:
            if self.generation != seen_generation:
                return False
            self._remove_locked(self._ids - set(ids.tolist()))
            missing = ~np.isin(ids, np.fromiter(self._ids, dtype=np.int64, count=len(self._ids)))
            if missing.any():
                self._add_locked(
                    ids[missing].tolist(), vectors[missing], collections[missing].tolist()
                )
            return True

    def refresh(
        self,
        face_ids: Iterable[int],
        vectors: Mapping[int, Vectors],
        collections: Mapping[int, int],
        seen_generation: int,
    ) -> bool:
        """Bring these faces to their stored state, read from the database while
        `generation` was `seen_generation`: those in `vectors` are added (in their
        collection), the others (deleted, or re-embedded with another model) removed.
        Refused (False) as `reconcile` is, when the index changed since."""
        face_ids = set(face_ids)
        with self._lock:
            if self.generation != seen_generation:
                return False
            self._remove_locked(face_ids - vectors.keys())
            new = [face_id for face_id in sorted(vectors.keys() & face_ids)]
            if new:
                self._add_locked(
                    new, np.stack([vectors[i] for i in new]), [collections[i] for i in new]
                )
            return True

    def _add_locked(self, ids: list[int], vectors: Vectors, collections: list[int]) -> None:
        vectors = np.ascontiguousarray(np.asarray(vectors, dtype=np.float32).reshape(-1, self.dim))
        keep = [i for i, face_id in enumerate(ids) if face_id not in self._ids]
        if not keep:
            return
        new_ids = np.asarray([ids[i] for i in keep], dtype=np.int64)
        new_vectors = vectors[keep]
        for i in keep:
            self._collection_of[ids[i]] = collections[i]
            self._members.setdefault(collections[i], set()).add(ids[i])
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
        for face_id in gone:
            collection = self._collection_of.pop(face_id)
            members = self._members[collection]
            members.discard(face_id)
            if not members:
                del self._members[collection]
                self._selectors.pop(collection, None)
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

    def search(
        self, vector: Vectors, k: int, collection: int | None = None
    ) -> list[tuple[int, float]]:
        """The k nearest faces as (face_id, squared L2 distance), nearest first; only
        `collection`'s faces when one is given (None: every face, for tools)."""
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, self.dim))
        with self._lock:
            if collection is not None and len(self._members.get(collection, ())) < len(self._ids):
                return self._search_collection_locked(query, k, collection)
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

    def _search_collection_locked(
        self, query: Vectors, k: int, collection: int
    ) -> list[tuple[int, float]]:
        """A search that cannot answer with another collection's face: FAISS skips every
        id the selector does not hold (the flat index stays exact); a small collection
        in an HNSW index is compared face by face."""
        members = self._members.get(collection, set())
        k = min(k, len(members))
        if k <= 0:
            return []
        exact = self.kind == "hnsw" and (
            len(members) <= EXACT_SEARCH_MAX or len(members) * 8 < len(self._ids)
        )
        if exact:
            return self._exact_locked(query, k, members)
        selector, _ = self._selector_locked(collection)
        api: Any = faiss  # its type stubs lack the search parameters' selector
        params = (
            api.SearchParametersHNSW(sel=selector, efSearch=max(self._hnsw_ef_search, k))
            if self.kind == "hnsw"
            else api.SearchParameters(sel=selector)
        )
        distances, labels = self._index.search(query, k, params=params)
        hits = [
            (int(label), max(0.0, float(dist)))
            for label, dist in zip(labels[0], distances[0], strict=True)
            if label >= 0 and int(label) in members
        ]
        if len(hits) < k:  # a filtered graph walk that fell short: answer exactly
            return self._exact_locked(query, k, members)
        return hits

    def _selector_locked(
        self, collection: int
    ) -> tuple[faiss.IDSelectorBatch, npt.NDArray[np.int64]]:
        """The collection's ID selector, rebuilt only after the index changed (the ids
        array is kept with it: FAISS copies it, but the pair stays together)."""
        cached = self._selectors.get(collection)
        if cached is not None and cached[0] == self.generation:
            return cached[1], cached[2]
        ids = np.fromiter(self._members[collection], dtype=np.int64)
        selector = faiss.IDSelectorBatch(ids)
        self._selectors[collection] = (self.generation, selector, ids)
        return selector, ids

    def _exact_locked(self, query: Vectors, k: int, members: set[int]) -> list[tuple[int, float]]:
        ids = np.fromiter(members, dtype=np.int64, count=len(members))
        vectors = np.stack([self._vector_locked(int(i)) for i in ids])
        distances = ((vectors - query) ** 2).sum(axis=1)
        order = np.argsort(distances, kind="stable")[:k]
        return [(int(ids[i]), max(0.0, float(distances[i]))) for i in order]

    def _vector_locked(self, face_id: int) -> Vectors:
        if self.kind == "hnsw":
            return self._vectors[face_id]
        return np.asarray(self._index.reconstruct(face_id), dtype=np.float32)
