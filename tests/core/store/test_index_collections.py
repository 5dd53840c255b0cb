"""The search index filtered by collection (app/core/store/vector_index.py): another
collection's face is never an answer, even when it is far nearer, and a small
collection's nearest members are found exactly, in a flat, an HNSW and an IVF-PQ
index (trained from 1000 faces here, so the larger gallery is searched by its lists)."""

from __future__ import annotations

import numpy as np
import pytest

from app.core.store.index_kinds import EXACT_SEARCH_MAX
from app.core.store.vector_index import GalleryIndex

DIM = 8


def _unit(rng: np.random.Generator, n: int) -> np.ndarray:
    v = rng.normal(size=(n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _exact(vectors: np.ndarray, ids: list[int], probe: np.ndarray, k: int) -> list[int]:
    order = np.argsort(((vectors - probe) ** 2).sum(axis=1), kind="stable")[:k]
    return [ids[i] for i in order]


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
@pytest.mark.parametrize("big_size", [200, EXACT_SEARCH_MAX + 2000])
def test_search_stays_in_its_collection(kind: str, big_size: int) -> None:
    rng = np.random.default_rng(7)
    index = GalleryIndex(DIM, kind, ivfpq_train_min=1000)  # type: ignore[arg-type]
    big, small = _unit(rng, big_size), _unit(rng, 5)
    big_ids = list(range(1, big_size + 1))
    small_ids = list(range(10**6, 10**6 + 5))
    index.add(big_ids, big, collection=1)
    index.add(small_ids, small, collection=2)
    assert (index.count(1), index.count(2), index.count(3)) == (big_size, 5, 0)
    for probe in big[:20]:  # each probe is a big collection's face itself: distance 0
        got = [face for face, _ in index.search(probe, 3, 2)]
        assert got == _exact(small, small_ids, probe, 3)
        near = index.search(probe, 1, 1)[0]
        assert near[0] in big_ids and near[1] == pytest.approx(0.0, abs=1e-5)
    assert index.search(big[0], 5, 3) == []  # an empty collection answers nothing
    # the big collection, searched with the selector (or HNSW's walk), never answers small
    for probe in small:
        assert {face for face, _ in index.search(probe, 10, 1)} <= set(big_ids)


@pytest.mark.parametrize("kind", ["flat", "hnsw", "ivfpq"])
def test_removes_and_reconcile_keep_the_collections(kind: str) -> None:
    rng = np.random.default_rng(3)
    index = GalleryIndex(DIM, kind, ivfpq_train_min=1000)  # type: ignore[arg-type]
    vectors = _unit(rng, 6)
    index.add([1, 2, 3], vectors[:3], collection=1)
    index.add([4, 5], vectors[3:5], collection=2)
    index.remove([4])
    assert index.count(2) == 1 and [f for f, _ in index.search(vectors[3], 5, 2)] == [5]
    # a catch-up from the database adds face 6 to collection 2 and drops face 1
    assert index.reconcile({2, 3, 5, 6}, {6: vectors[5]}, index.generation, {6: 2})
    assert (index.count(1), index.count(2)) == (2, 2)
    assert index.collection_of(6) == 2 and index.collection_of(1) is None
    assert {f for f, _ in index.search(vectors[5], 5, 2)} == {5, 6}
    index.remove([5, 6])
    assert index.search(vectors[5], 5, 2) == [] and index.count(2) == 0
