"""The index changing kind while the service runs (FACESVC_INDEX_KIND=auto, issue 16).

Vectors are drawn from the default model's shipped cohort mixture (unit 128-d vectors
distributed like real faces). A rebuild as another kind copies the vectors, builds
without the lock, then replays the changes made meanwhile and swaps under the lock:
driven here step by step (so changes certainly fall between the copy and the swap), by
the gallery's own thresholds in a background thread, and in the service over SQLite and
Postgres with thresholds set through Settings, the gallery grown and shrunk by SQL.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import sqlalchemy as sa

from app.core.decision.cohort import CohortMixture
from app.core.store.index_kinds import AutoKinds, Kind
from app.core.store.rows.identities import Face
from app.core.store.vector_index import GalleryIndex
from tests.core.store.test_index_feed import eventually
from tests.support.factories import people, photo
from tests.support.service import Api, MakeApi

MIXTURE = Path("app/core/model/backbones/dlib_resnet_l2_cohort.npz")
DIM = 128
SWITCH_S = 60.0  # a generous bound for a background build of a few thousand vectors


def faces_like(n: int, seed: int) -> np.ndarray:
    mixture = CohortMixture.load(MIXTURE)
    return dataclasses.replace(mixture, samples=n, seed=seed).draw()


def finds_itself(index: GalleryIndex, vectors: np.ndarray, face_ids: list[int]) -> bool:
    """Each face is the nearest answer to its own vector (face id i is vectors[i - 1])."""
    return all(index.search(vectors[i - 1], 1)[0][0] == i for i in face_ids)


@pytest.mark.parametrize(
    ("before", "after"),
    [("flat", "hnsw"), ("hnsw", "ivfpq"), ("ivfpq", "hnsw"), ("hnsw", "flat"), ("ivfpq", "flat")],
)
def test_changes_made_during_a_rebuild_are_replayed_before_the_swap(
    before: Kind, after: Kind
) -> None:
    vectors = faces_like(2600, seed=11)
    index = GalleryIndex(DIM, before, ivfpq_train_min=1000)
    index.add(range(1, 2001), vectors[:2000], collection=1)
    copied, copy = index.begin_switch(after)
    assert len(copied) == 2000 and index.switching
    # meanwhile: new faces in another collection, removed copied faces, and a face that
    # came after the copy and went again
    index.add(range(2001, 2601), vectors[2000:], collection=2)
    index.remove(range(1, 301))
    index.remove([2001])
    built = index.build(after, copied, copy)
    assert index.kind == before  # searches still answer from the old kind meanwhile
    assert finds_itself(index, vectors, [301, 1999, 2002])
    generation = index.generation
    index.finish_switch(built)

    held = set(range(301, 2601)) - {2001}
    assert index.kind == after and not index.switching and index.generation > generation
    assert index.ids() == held and (index.count(1), index.count(2)) == (1700, 599)
    assert set(index.begin_switch("flat")[0].tolist()) == held  # what the new kind holds
    sample = sorted(np.random.default_rng(0).choice(sorted(held), 200, replace=False))
    assert finds_itself(index, vectors, [int(i) for i in sample] + [2002, 2600])
    for gone in (1, 300, 2001):  # a removed face is never an answer, even to itself
        assert gone not in {face for face, _ in index.search(vectors[gone - 1], 10)}
    near_two = index.search(vectors[5], 5, collection=2)
    assert len(near_two) == 5 and {face for face, _ in near_two} <= set(range(2002, 2601))


def test_auto_thresholds_grow_and_shrink_the_index_in_the_background() -> None:
    vectors = faces_like(1600, seed=12)
    auto = AutoKinds(hnsw_from=100, ivfpq_from=1500)
    index = GalleryIndex(DIM, auto.for_size(0), auto=auto, ivfpq_train_min=1000)

    def reaches(kind: Kind) -> None:
        assert index.wait_for_switches(SWITCH_S)
        assert index.kind == kind
        assert finds_itself(index, vectors, sorted(index.ids())[::25])

    index.add(range(1, 100), vectors[:99])
    assert index.kind == "flat" and not index.switching
    index.add([100], vectors[99:100])  # the 100th face: HNSW, built in the background
    reaches("hnsw")
    index.add(range(101, 1501), vectors[100:1500])
    reaches("ivfpq")
    index.remove(range(751, 1501))  # 750 faces: half of 1500, not below it
    reaches("ivfpq")
    index.remove([750])  # 749
    reaches("hnsw")
    index.remove(range(51, 750))  # 50: half of 100
    reaches("hnsw")
    index.remove([50])  # 49
    reaches("flat")
    assert index.ids() == set(range(1, 50)) and index.switches == 4


def test_auto_keeps_a_gallery_at_a_threshold_on_one_kind() -> None:
    auto = AutoKinds(hnsw_from=200_000, ivfpq_from=5_000_000)
    assert [auto.for_size(n) for n in (0, 199_999, 200_000, 4_999_999, 5_000_000)] == [
        "flat",
        "flat",
        "hnsw",
        "hnsw",
        "ivfpq",
    ]
    assert auto.wanted(200_000, "flat") == "hnsw"
    assert auto.wanted(150_000, "hnsw") == "hnsw"  # shrunk, but not below half
    assert auto.wanted(99_999, "hnsw") == "flat"
    assert auto.wanted(2_600_000, "ivfpq") == "ivfpq"
    assert auto.wanted(2_499_999, "ivfpq") == "hnsw"
    assert auto.wanted(50_000, "ivfpq") == "flat"


# ---------------------------------------------------------------- in the service


def insert_faces(url: str, vectors: np.ndarray) -> list[int]:
    """Faces of the first enrolled face's identity and model, written by SQL (as another
    replica, a restore or an import would): the index learns of them by NOTIFY
    (Postgres) or the per-search catch-up (SQLite)."""
    faces = Face.__table__
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        first = conn.execute(
            sa.select(faces.c.identity_id, faces.c.model_name, faces.c.model_version)
            .order_by(faces.c.id)
            .limit(1)
        ).one()
        rows = [
            {
                "identity_id": first.identity_id,
                "model_name": first.model_name,
                "model_version": first.model_version,
                "dim": DIM,
                "embedding": np.asarray(v, dtype="<f4").tobytes(),
                "created_at": datetime.now(UTC),
            }
            for v in vectors
        ]
        for start in range(0, len(rows), 100):
            conn.execute(sa.insert(faces).values(rows[start : start + 100]))
        ids = conn.execute(sa.select(faces.c.id).order_by(faces.c.id)).scalars().all()
    engine.dispose()
    return list(ids[-len(vectors) :])


def delete_faces(url: str, face_ids: list[int]) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.delete(Face.__table__).where(Face.__table__.c.id.in_(face_ids)))
    engine.dispose()


def test_the_service_changes_index_kind_as_its_gallery_grows_and_shrinks(
    make_api: MakeApi, database_url: str
) -> None:
    api: Api = make_api(index_kind="auto", index_auto_hnsw_from=50, index_auto_ivfpq_from=300)
    person = people(1)[0]
    enrolled = api.enroll(photo(person), "p").json()
    assert api.gallery.kind == "flat"
    postgres = api.app.state.index_feed is not None

    def settles(kind: Kind) -> None:
        if postgres:  # the feed applies the changes by itself
            eventually(lambda: api.gallery.ids() == api.db_face_ids(), "feed applied", 20.0)
        found = api.recognize(photo(person, 2)).json()["faces"][0]["identity"]
        assert api.gallery.wait_for_switches(SWITCH_S)  # on SQLite the search caught up
        assert api.gallery.kind == kind
        assert api.gallery.ids() == api.db_face_ids()
        assert found["id"] == enrolled["identity"]["id"]
        again = api.recognize(photo(person, 2)).json()["faces"][0]["identity"]
        assert again["id"] == enrolled["identity"]["id"]  # and after the swap

    vectors = faces_like(400, seed=13)
    added = insert_faces(database_url, vectors[:60])  # 61 faces
    settles("hnsw")
    added += insert_faces(database_url, vectors[60:])  # 401
    settles("ivfpq")
    delete_faces(database_url, added[:300])  # 101: below half of 300
    settles("hnsw")
    delete_faces(database_url, added[300:390])  # 11: below half of 50
    settles("flat")
    assert api.gallery.switches == 4


def test_ivfpq_grown_by_small_adds_is_trained_and_retrained_in_the_background() -> None:
    """Training under the lock would stall every search: an IVF-PQ index that reaches
    its training size by enrolls, or four times the size it was trained at, is rebuilt
    (trained on all its vectors) by the background path instead."""
    vectors = faces_like(4200, seed=14)
    index = GalleryIndex(DIM, "ivfpq", ivfpq_train_min=1000)

    def grow(upto: int) -> None:
        for start in range(len(index), upto, 100):
            index.add(range(start + 1, start + 101), vectors[start : start + 100])

    grow(900)
    assert index.wait_for_switches(SWITCH_S) and index.switches == 0  # exact, untrained
    grow(1000)
    assert index.wait_for_switches(SWITCH_S) and index.switches == 1  # trained at 1000
    grow(4000)
    assert index.wait_for_switches(SWITCH_S) and index.switches == 1  # 4x: not yet
    grow(4100)
    assert index.wait_for_switches(SWITCH_S) and index.switches == 2  # retrained
    assert index.kind == "ivfpq" and index.ids() == set(range(1, 4101))
    assert finds_itself(index, vectors, list(range(1, 4101, 41)))
