"""A whole gallery read at once (the start of a replica on a large gallery): the same
faces, vectors and collections as the face-by-face path, on SQLite and on Postgres
(whose binary COPY is parsed by hand), and an index loaded from it that holds exactly
them, dropping what the database no longer has."""

from __future__ import annotations

import numpy as np

from app.core.store.repos import faces as repo
from app.core.store.vector_index import GalleryIndex
from tests.support.factories import people, photo
from tests.support.service import Api, MakeApi


def test_the_whole_gallery_at_once_equals_face_by_face(api: Api) -> None:
    a, b, c = people(3)
    assert api.post("/v1/collections", json={"name": "north"}).status_code == 201
    enrolled = [
        api.enroll(photo(a), "a").json(),
        api.enroll(photo(b), "b", collection="north").json(),
        api.enroll(photo(c), "c").json(),
    ]
    gone = enrolled[2]["identity"]["id"]
    assert api.delete(f"/v1/identities/{gone}").status_code == 204
    model = api.app.state.inference.model
    dim = api.gallery.dim

    async def read() -> tuple[object, ...]:
        async with api.app.state.sessions() as session:
            ids, vectors, collections = await repo.model_gallery(session, model, dim)
            by_face = await repo.face_collections_of_model(session, model)
            one_by_one = await repo.embeddings(session, sorted(by_face), dim)
            empty = await repo.model_gallery(session, ("no-such-model", "1"), dim)
        return ids, vectors, collections, by_face, one_by_one, empty

    ids, vectors, collections, by_face, one_by_one, empty = api.run(read)
    assert sorted(ids.tolist()) == sorted(by_face) == [e["face"]["id"] for e in enrolled[:2]]
    for i, face_id in enumerate(ids.tolist()):
        assert np.array_equal(vectors[i], one_by_one[face_id])
        assert collections[i] == by_face[face_id]
    assert vectors.dtype == np.float32 and vectors.shape == (2, dim)
    assert [len(part) for part in empty] == [0, 0, 0]

    index = GalleryIndex(dim)
    stale = np.zeros((1, dim), dtype=np.float32)
    index.add([999_999], stale)  # a face the database no longer holds
    assert index.load(ids, vectors, collections, index.generation)
    assert index.ids() == set(ids.tolist())
    assert index.collection_of(enrolled[1]["face"]["id"]) == by_face[enrolled[1]["face"]["id"]]
    assert not index.load(ids, vectors, collections, index.generation - 1)  # moved since


def test_the_auto_index_kind_follows_the_gallery_size(make_api: MakeApi) -> None:
    """FACESVC_INDEX_KIND=auto: exact search for a small gallery, HNSW once the gallery
    had FACESVC_INDEX_AUTO_HNSW_FROM faces at a start."""
    small = make_api(index_kind="auto", index_auto_hnsw_from=2)
    assert small.gallery.kind == "flat"
    a, b = people(2)
    enrolled = [small.enroll(photo(p), p).json() for p in (a, b)]
    large = make_api(index_kind="auto", index_auto_hnsw_from=2)
    assert large.gallery.kind == "hnsw"
    assert large.gallery.ids() == {e["face"]["id"] for e in enrolled}
    found = large.recognize(photo(b, 2)).json()["faces"][0]["identity"]
    assert found["id"] == enrolled[1]["identity"]["id"]
