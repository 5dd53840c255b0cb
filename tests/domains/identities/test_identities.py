"""Enrollment and gallery management (real pipeline and photos, SQLite and Postgres)."""

from __future__ import annotations

import base64

import pytest

from app.core.model.pipeline import FacePipeline
from tests.support.factories import TILE, people, photo, side_by_side, slot_of, upload
from tests.support.service import Api, MakeApi, new_uuid

IDENTITY_KEYS = {"id", "name", "external_id", "metadata", "created_at"}


def test_enroll_multipart_returns_identity_and_face(api: Api, pipeline: FacePipeline) -> None:
    (ada,) = people(1)
    r = api.enroll(photo(ada), "Ada", external_id="emp-1", metadata='{"team": "x"}')
    assert r.status_code == 201, r.text
    body = r.json()
    assert set(body["identity"]) == IDENTITY_KEYS
    assert body["identity"]["name"] == "Ada"
    assert body["identity"]["external_id"] == "emp-1"
    assert body["identity"]["metadata"] == {"team": "x"}
    # the face is the one the pipeline finds in that photo
    (expected,) = pipeline.detect(pipeline.decode(photo(ada)))
    assert body["face"]["box"] == pytest.approx(list(expected.box), abs=1e-3)
    assert body["face"]["detection_score"] == pytest.approx(expected.score, abs=1e-4)
    assert body["face"]["model"] == pipeline.backbone.name
    assert body["face"]["id"] in api.gallery
    assert len(api.gallery) == 1


def test_enroll_json_base64(api: Api) -> None:
    bo, bo2 = people(2)
    image = base64.b64encode(photo(bo)).decode()
    r = api.post(
        "/v1/identities",
        json={"image": image, "name": "Bo", "metadata": {"a": [1, 2]}, "largest_face": False},
    )
    assert r.status_code == 201, r.text
    assert r.json()["identity"]["metadata"] == {"a": [1, 2]}
    data_url = "data:image/jpeg;base64," + base64.b64encode(photo(bo2)).decode()
    r = api.post("/v1/identities", json={"image": data_url, "name": "Bo2"})
    assert r.status_code == 201, r.text
    assert len(api.gallery) == 2


def test_enroll_largest_face(api: Api) -> None:
    small, large = people(2)
    two = side_by_side(photo(small), photo(large), scales=[0.5, 1.0])
    r = api.enroll(two, "two")
    assert r.status_code == 422 and r.json()["error"] == "multiple_faces"
    r = api.enroll(two, "two", largest_face=True)
    assert r.status_code == 201, r.text
    box = r.json()["face"]["box"]
    assert slot_of(box) == 1 and box[2] - box[0] > TILE / 4  # the full-size face
    # and it is that person who was enrolled
    found = api.recognize(photo(large, 2)).json()["faces"][0]
    assert found["identity"]["name"] == "two"
    assert api.recognize(photo(small, 2)).json()["faces"][0]["identity"] is None


def test_external_id_conflict(api: Api) -> None:
    a, b = people(2)
    assert api.enroll(photo(a), "a", external_id="dup").status_code == 201
    r = api.enroll(photo(b), "b", external_id="dup")
    assert r.status_code == 409
    assert r.json() == {"error": "conflict", "detail": r.json()["detail"]}
    assert len(api.gallery) == 1


def test_get_patch_and_faces(api: Api) -> None:
    (ada,) = people(1)
    ident = api.enroll(photo(ada), "Ada").json()["identity"]
    r = api.add_face(ident["id"], photo(ada, 2))
    assert r.status_code == 201, r.text
    assert r.json()["identity"] == ident
    detail = api.get(f"/v1/identities/{ident['id']}").json()
    assert detail["identity"] == ident
    assert len(detail["faces"]) == 2
    assert {f["id"] for f in detail["faces"]} <= api.gallery.ids()
    r = api.client.patch(
        f"/v1/identities/{ident['id']}",
        json={"name": "Ada L.", "metadata": {"k": 1}},
        headers=api.headers("enroll"),
    )
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "Ada L." and r.json()["metadata"] == {"k": 1}
    assert r.json()["created_at"] == ident["created_at"]


def test_pagination_and_filter(api: Api) -> None:
    ids = [
        api.enroll(photo(person), f"p{i}", external_id=f"e{i}").json()["identity"]["id"]
        for i, person in enumerate(people(5))
    ]
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/identities", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert seen == ids and pages == 3  # creation order, no duplicates, nothing missing
    only = api.get("/v1/identities", params={"external_id": "e3"}).json()
    assert [i["id"] for i in only["items"]] == [ids[3]] and only["next_cursor"] is None
    bad = api.get("/v1/identities", params={"cursor": "!!!"})
    assert bad.status_code == 422 and bad.json()["error"] == "validation_error"


def test_find_by_part_of_the_name(api: Api) -> None:
    """`name`: a substring in any case (every letter folded, on SQLite too), `%` and `_`
    matching themselves, paged like the list, with `external_id` and per collection."""
    names = ["Zoë Ñandú", "ZOË Smith", "Zoe Plain", "Bob 50%_off", "Bob 50 off"]
    ids = [
        api.enroll(photo(person), name, external_id=f"n{i}").json()["identity"]["id"]
        for i, (person, name) in enumerate(zip(people(5), names, strict=True))
    ]

    def found(scope: str = "admin", **params: object) -> list[str]:
        r = api.get("/v1/identities", scope, params=params)
        assert r.status_code == 200, r.text
        return [item["name"] for item in r.json()["items"]]

    assert found(name="zoë") == ["Zoë Ñandú", "ZOË Smith"]
    assert found(name="ZOE") == ["Zoe Plain"]  # ë is not e
    assert found("enroll", name="ñANDÚ") == ["Zoë Ñandú"]  # a key that may read
    assert found(name="  smith ") == ["ZOË Smith"]  # trimmed, as every label
    assert found(name="50%_") == found(name="%") == found(name="_") == ["Bob 50%_off"]
    assert found(name="nobody") == []
    assert found(name="zoë", external_id="n1") == ["ZOË Smith"]
    assert found(name="zoë", external_id="n2") == []
    seen, cursor, pages = [], None, 0
    while True:
        params = {"name": "O", "limit": 2, **({"cursor": cursor} if cursor else {})}
        page = api.get("/v1/identities", params=params).json()
        seen += [item["id"] for item in page["items"]]
        cursor, pages = page["next_cursor"], pages + 1
        if cursor is None:
            break
    assert seen == ids and pages == 3
    assert api.post("/v1/collections", json={"name": "elsewhere"}).status_code == 201
    assert found(name="zoë", collection="elsewhere") == []
    for bad in (" ", "x" * 201, "a\x00b"):
        r = api.get("/v1/identities", params={"name": bad})
        assert r.status_code == 422 and r.json()["error"] == "validation_error", bad


def test_delete_identity_removes_everywhere(api: Api) -> None:
    gone_person, kept_person = people(2)
    body = api.enroll(photo(gone_person), "gone").json()
    ident, face_id = body["identity"]["id"], body["face"]["id"]
    keep = api.enroll(photo(kept_person), "kept").json()["face"]["id"]
    assert api.delete(f"/v1/identities/{ident}").status_code == 204
    assert face_id not in api.gallery and face_id not in api.db_face_ids()
    assert keep in api.gallery
    assert api.get(f"/v1/identities/{ident}").status_code == 404
    assert api.delete(f"/v1/identities/{ident}").status_code == 404
    r = api.recognize(photo(gone_person, 2), top_k=5, include_rejected=True).json()
    candidates = r["faces"][0]["candidates"]
    assert [c["identity"]["name"] for c in candidates] == ["kept"]
    assert r["faces"][0]["identity"] is None


def test_delete_face(api: Api) -> None:
    x, y = people(2)
    body = api.enroll(photo(x), "x").json()
    ident, face_id = body["identity"]["id"], body["face"]["id"]
    assert api.delete(f"/v1/identities/{ident}/faces/{face_id + 99}").status_code == 404
    other = api.enroll(photo(y), "y").json()["identity"]["id"]
    assert api.delete(f"/v1/identities/{other}/faces/{face_id}").status_code == 404
    assert api.delete(f"/v1/identities/{ident}/faces/{face_id}").status_code == 204
    assert face_id not in api.gallery and face_id not in api.db_face_ids()
    assert api.get(f"/v1/identities/{ident}").json()["faces"] == []
    r = api.verify(photo(x, 2), identity_id=ident)
    assert r.status_code == 409 and r.json()["error"] == "conflict"


def test_unknown_ids(api: Api) -> None:
    for method, path in [
        ("GET", f"/v1/identities/{new_uuid()}"),
        ("DELETE", f"/v1/identities/{new_uuid()}"),
        ("DELETE", f"/v1/identities/{new_uuid()}/faces/1"),
    ]:
        r = api.client.request(method, path, headers=api.headers())
        assert r.status_code == 404 and r.json()["error"] == "not_found", (method, path)
    r = api.post(f"/v1/identities/{new_uuid()}/faces", files={"image": upload(photo(people()[0]))})
    assert r.status_code == 404
    r = api.client.patch(f"/v1/identities/{new_uuid()}", json={"name": "x"}, headers=api.headers())
    assert r.status_code == 404
    r = api.get("/v1/identities/not-a-uuid")
    assert r.status_code == 422 and r.json()["error"] == "validation_error"


def test_restart_rebuilds_index_and_keeps_deletes(api: Api, make_api: MakeApi) -> None:
    group = people(3)
    faces = [api.enroll(photo(person), f"p{i}").json() for i, person in enumerate(group)]
    gone = faces[1]
    assert api.delete(f"/v1/identities/{gone['identity']['id']}").status_code == 204
    before = [api.recognize(photo(person, 2)).json() for person in group]
    assert [f["faces"][0]["identity"] and f["faces"][0]["identity"]["name"] for f in before] == [
        "p0",
        None,
        "p2",
    ]
    restarted = make_api()
    assert restarted.gallery.ids() == {f["face"]["id"] for f in faces} - {gone["face"]["id"]}
    after = [restarted.recognize(photo(person, 2)).json() for person in group]
    assert after == before
