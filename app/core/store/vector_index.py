"""The FAISS gallery: face id -> embedding, searched by squared L2 distance.

The database is the source of truth. The index is built from it at start and changed only
after a database commit succeeded (see `app.core.store.index_sync`), under one lock, so concurrent
enrolls, deletes and searches are safe. Adds and removes are idempotent, which lets a
late hook and a catch-up from the database meet without duplicates. Every change bumps
`generation`, so a catch-up can tell that the index moved while it read the database.

Each face belongs to one collection, and a search names the collection it may answer
from: one index for all collections, searched with a FAISS ID selector of the
collection's faces (docs/architecture.md, "One index, filtered by collection").

The vectors themselves live in one structure of the chosen kind (`app.core.store.index_kinds`:
exact, HNSW or IVF-PQ). Under FACESVC_INDEX_KIND=auto a gallery that grows past a kind's
threshold (or shrinks well below it) gets the other kind built by a background thread from
a copy of the vectors, without holding the lock; the changes made meanwhile are journaled,
replayed onto the new structure, and it is swapped in under the lock with a new generation.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from typing import Literal

import faiss
import numpy as np
import numpy.typing as npt

from app.core.store.index_kinds import (
    AutoKinds,
    FlatKind,
    Hits,
    HnswKind,
    Kind,
    KindIndex,
    Vectors,
    exact,
)
from app.core.store.ivfpq import TRAIN_MIN, IvfPqKind
from app.core.store.rows.collections import DEFAULT_COLLECTION_ID

__all__ = ["AutoKinds", "GalleryIndex", "Kind", "Vectors"]

log = logging.getLogger(__name__)


class GalleryIndex:
    def __init__(
        self,
        dim: int,
        kind: Kind = "flat",
        hnsw_m: int = 32,
        hnsw_ef_search: int = 384,
        *,
        ivfpq_nprobe: int = 32,
        ivfpq_train_min: int = TRAIN_MIN,
        auto: AutoKinds | None = None,
    ) -> None:
        self.dim = dim
        self._hnsw_m = hnsw_m
        self._hnsw_ef_search = hnsw_ef_search
        self._ivfpq_nprobe = ivfpq_nprobe
        self._ivfpq_train_min = ivfpq_train_min
        self._auto = auto  # None: the kind stays as given
        self._background = True  # rebuilds in the background; off after one failed
        self._lock = threading.Lock()
        self._ids: set[int] = set()
        self.id_sum = 0  # sum of the ids held: a cheap fingerprint to compare with the DB
        self.generation = 0  # bumped by every change; see `reconcile`
        self._collection_of: dict[int, int] = {}  # face id -> collection id
        self._members: dict[int, set[int]] = {}  # collection id -> its face ids
        self._selectors: dict[int, tuple[int, faiss.IDSelectorBatch, npt.NDArray[np.int64]]] = {}
        self._vectors: KindIndex = self._new_kind(kind)
        # while another kind is built: which, and the changes made since its copy was taken
        self._building: Kind | None = None
        self._journal: list[tuple[Literal["add", "remove"], npt.NDArray[np.int64], Vectors]] | None
        self._journal = None
        self._switched = threading.Condition(self._lock)
        self.switches = 0  # kind changes (and retrainings) swapped in since start
        self.ready = False

    @property
    def kind(self) -> Kind:
        return self._vectors.kind

    def _new_kind(self, kind: Kind) -> KindIndex:
        if kind == "hnsw":
            return HnswKind(self.dim, self._hnsw_m, self._hnsw_ef_search)
        if kind == "ivfpq":
            return IvfPqKind(self.dim, self._ivfpq_nprobe, train_min=self._ivfpq_train_min)
        return FlatKind(self.dim)

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
        new_vectors = np.ascontiguousarray(vectors[keep])
        for i in keep:
            self._collection_of[ids[i]] = collections[i]
            self._members.setdefault(collections[i], set()).add(ids[i])
        self._vectors.add(new_ids, new_vectors)
        self._ids.update(new_ids.tolist())
        self.id_sum += int(new_ids.sum())
        self.generation += 1
        if self._journal is not None:
            self._journal.append(("add", new_ids, new_vectors))
        self._consider_switch_locked()

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
        self._vectors.remove(gone)
        if self._journal is not None:
            self._journal.append(("remove", np.fromiter(gone, dtype=np.int64), _NO_VECTORS))
        self._consider_switch_locked()

    # ------------------------------------------------------------ auto: another kind

    def _consider_switch_locked(self) -> None:
        if not self._background or self._building is not None:
            return  # off after a failure, or a rebuild already runs (it looks again when done)
        wanted = self.kind if self._auto is None else self._auto.wanted(len(self._ids), self.kind)
        current = self._vectors
        if wanted == self.kind and not (isinstance(current, IvfPqKind) and current.needs_training):
            return
        self._building = wanted
        threading.Thread(
            target=self._switch, args=(wanted,), name=f"index-{wanted}", daemon=True
        ).start()

    def _switch(self, kind: Kind) -> None:
        try:
            copy = self.begin_switch(kind)
            log.info("index: building %s for %d faces in the background", kind, len(copy[0]))
            self.finish_switch(self.build(kind, *copy))
        except Exception:  # stay on the kind in use; a bug must not stop the service
            log.exception("index: building %s failed; keeping %s", kind, self.kind)
            with self._lock:
                self._journal = self._building = None
                self._background = False
                self._switched.notify_all()

    def begin_switch(self, kind: Kind) -> tuple[npt.NDArray[np.int64], Vectors]:
        """A rebuild as `kind`, step 1 of 3: a copy of every vector, and from now on a
        journal of the changes made after it. Step 2, `build`, runs without the lock
        (searches and changes go on meanwhile); step 3, `finish_switch`, swaps it in."""
        with self._lock:
            self._building = kind
            self._journal = []
            return self._vectors.export()

    def build(self, kind: Kind, ids: npt.NDArray[np.int64], vectors: Vectors) -> KindIndex:
        built = self._new_kind(kind)
        if len(ids):
            built.add(ids, vectors)
        return built

    def finish_switch(self, built: KindIndex) -> None:
        """Replay the changes made since `begin_switch` onto `built` and make it the index,
        in one step under the lock; the generation moves, as for any change."""
        with self._lock:
            assert self._journal is not None, "finish_switch without begin_switch"
            for op, changed, added in self._journal:
                if op == "add":
                    built.add(changed, added)
                else:
                    built.remove(set(changed.tolist()))
            previous, replayed = self.kind, len(self._journal)
            self._vectors = built
            self._journal = self._building = None
            self.generation += 1
            self.switches += 1
            self._switched.notify_all()
            log.info(
                "index: %s -> %s at %d faces (%d changes replayed)",
                previous,
                built.kind,
                len(self._ids),
                replayed,
            )
            self._consider_switch_locked()  # it may have grown past the next one meanwhile

    @property
    def switching(self) -> bool:
        """A rebuild as another kind runs in the background."""
        with self._lock:
            return self._building is not None

    def wait_for_switches(self, timeout: float) -> bool:
        """True once no rebuild of another kind runs (for tools and tests)."""
        with self._lock:
            return self._switched.wait_for(lambda: self._building is None, timeout)

    # ------------------------------------------------------------ search

    def search(self, vector: Vectors, k: int, collection: int | None = None) -> Hits:
        """The k nearest faces as (face_id, squared L2 distance), nearest first; only
        `collection`'s faces when one is given (None: every face, for tools)."""
        query = np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(1, self.dim))
        with self._lock:
            if collection is not None and len(self._members.get(collection, ())) < len(self._ids):
                return self._search_collection_locked(query, k, collection)
            k = min(k, len(self._ids))
            if k <= 0:
                return []
            return self._vectors.search(query, k)

    def _search_collection_locked(self, query: Vectors, k: int, collection: int) -> Hits:
        """A search that cannot answer with another collection's face: FAISS skips every
        id the selector does not hold (the flat index stays exact); a small collection
        in an approximate index is compared face by face."""
        members = self._members.get(collection, set())
        k = min(k, len(members))
        if k <= 0:
            return []
        hits = self._vectors.search_among(
            query, k, members, lambda: self._selector_locked(collection)[0]
        )
        if len(hits) < k:  # a filtered graph walk or list scan that fell short: exactly
            ids = np.fromiter(members, dtype=np.int64, count=len(members))
            return exact(query, k, ids, self._vectors.vectors_of(ids))
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


_NO_VECTORS: Vectors = np.zeros((0, 0), dtype=np.float32)
