"""The CompreFace API within collections and the audit trail: a key bound to one
collection is one CompreFace service, with its own face collection. Two keys bound to
two collections, the same subject name in both (different people): listing, recognize,
verify against an example, rename and delete with one key never see nor touch the
other's. A key bound to none works in "default"; one bound to several is refused. Every
change made through /api/v1 is in GET /v1/audit with the key's prefix as actor. Real
photos, the real model, SQLite and PostgreSQL (the `api` fixture)."""

from __future__ import annotations

from typing import Any

import httpx

from app.core.store.repos.keys import create_key
from tests.support.factories import people, photo, upload
from tests.support.service import Api, MakeApi

SUBJECTS = "/api/v1/recognition/subjects"
FACES = "/api/v1/recognition/faces"
RECOGNIZE = "/api/v1/recognition/recognize"


def _prefix(key: str) -> str:
    return key.split("_")[1]


def _bound_key(api: Api, collections: list[str] | None) -> str:
    async def make() -> str:
        async with api.app.state.sessions() as session, session.begin():
            return (await create_key(session, "door", ["enroll", "delete", "verify"], collections))[
                1
            ]

    key: str = api.run(make)
    return key


def _call(api: Api, key: str, method: str, path: str, **kw: Any) -> httpx.Response:
    response: httpx.Response = api.client.request(method, path, headers={"x-api-key": key}, **kw)
    return response


def _ok(r: httpx.Response, status: int = 200) -> Any:
    assert r.status_code == status, r.text
    return r.json()


def _add_example(api: Api, key: str, subject: str, image: bytes) -> str:
    r = _call(api, key, "POST", FACES, params={"subject": subject}, files={"file": upload(image)})
    image_id: str = _ok(r, 201)["image_id"]
    return image_id


def _subjects(api: Api, key: str) -> list[str]:
    subjects: list[str] = _ok(_call(api, key, "GET", SUBJECTS))["subjects"]
    return subjects


def _examples(api: Api, key: str, **params: Any) -> dict[str, str]:
    page = _ok(_call(api, key, "GET", FACES, params={"size": 100, **params}))
    return {f["image_id"]: f["subject"] for f in page["faces"]}


def _recognized(api: Api, key: str, image: bytes) -> dict[str, float]:
    """Subject -> similarity, for the one face (a reading key: the nearest, any similarity)."""
    r = _call(
        api, key, "POST", RECOGNIZE, params={"prediction_count": 5}, files={"file": upload(image)}
    )
    (face,) = _ok(r)["result"]
    return {s["subject"]: s["similarity"] for s in face["subjects"]}


def _refused(r: httpx.Response, status: int, code: int) -> None:
    assert r.status_code == status, r.text
    assert r.json()["code"] == code, r.text


def test_keys_of_two_collections_are_two_services(api: Api) -> None:
    a, b, c = people(3)
    for name in ("north", "south"):
        _ok(api.post("/v1/collections", json={"name": name}), 201)
    north, south = _bound_key(api, ["north"]), _bound_key(api, ["south"])
    # "Pat" in both, different people; "Sam" in south only
    north_pat = _add_example(api, north, "Pat", photo(a))
    south_pat = _add_example(api, south, "Pat", photo(b))
    south_sam = _add_example(api, south, "Sam", photo(c))

    assert _subjects(api, north) == ["Pat"]
    assert _subjects(api, south) == ["Pat", "Sam"]
    assert _examples(api, north) == {north_pat: "Pat"}
    assert _examples(api, north, subject="Pat") == {north_pat: "Pat"}
    assert _examples(api, south) == {south_pat: "Pat", south_sam: "Sam"}
    assert _subjects(api, api.keys["enroll"]) == []  # unbound: the default collection

    # recognize searches the key's collection only
    assert _recognized(api, north, photo(a, 2))["Pat"] > 0.5
    assert set(_recognized(api, north, photo(c, 2))) == {"Pat"}  # south's Sam unseen
    in_south = _recognized(api, south, photo(a, 2))
    assert in_south.get("Pat", 0.0) < 0.5  # south's Pat is b, not a
    assert _recognized(api, south, photo(c, 2))["Sam"] > 0.5

    # another collection's example is not found: verify, delete by id or in bulk
    verify = f"{FACES}/{south_pat}/verify"
    _refused(_call(api, north, "POST", verify, files={"file": upload(photo(b, 2))}), 404, 11)
    r = _call(api, south, "POST", verify, files={"file": upload(photo(b, 2))})
    assert _ok(r)["result"][0]["similarity"] > 0.5
    _refused(_call(api, north, "DELETE", f"{FACES}/{south_pat}"), 404, 11)
    assert _ok(_call(api, north, "POST", f"{FACES}/delete", json=[south_pat, south_sam])) == []

    # rename, delete by subject, delete everything: only north's
    _ok(_call(api, north, "PUT", f"{SUBJECTS}/Pat", json={"subject": "Sam"}))
    assert _subjects(api, north) == ["Sam"]
    assert _subjects(api, south) == ["Pat", "Sam"]
    _refused(_call(api, north, "DELETE", f"{SUBJECTS}/Pat"), 404, 42)
    assert _ok(_call(api, north, "DELETE", FACES, params={"subject": "Sam"})) == {"deleted": 1}
    assert _ok(_call(api, north, "DELETE", FACES)) == {"deleted": 0}
    assert _ok(_call(api, north, "DELETE", SUBJECTS)) == {"deleted": 1}
    assert _subjects(api, north) == []
    assert _examples(api, south) == {south_pat: "Pat", south_sam: "Sam"}
    assert _recognized(api, south, photo(b, 2))["Pat"] > 0.5  # still indexed
    listed = _ok(api.get("/v1/identities", params={"collection": "south"}))["items"]
    assert sorted(i["name"] for i in listed) == ["Pat", "Sam"]
    assert _ok(api.get("/v1/identities", params={"collection": "north"}))["items"] == []

    # a key bound to both: which gallery would be a guess, so it is refused
    both = _bound_key(api, ["north", "south"])
    _refused(_call(api, both, "GET", SUBJECTS), 403, 0)
    _refused(_call(api, both, "POST", SUBJECTS, json={"subject": "X"}), 403, 0)


def test_changes_through_the_compreface_api_are_audited(api: Api) -> None:
    (a,) = people(1)
    _ok(api.post("/v1/collections", json={"name": "north"}), 201)
    key = _bound_key(api, ["north"])
    actor = _prefix(key)

    def trail() -> list[tuple[str, str, dict[str, Any]]]:
        items = _ok(api.get("/v1/audit", params={"actor": actor}))["items"]
        return [(e["action"], e["outcome"], e["target"]) for e in reversed(items)]

    assert _ok(_call(api, key, "POST", SUBJECTS, json={"subject": "Lee"}), 201) == {
        "subject": "Lee"
    }
    ((action, outcome, target),) = trail()
    assert (action, outcome) == ("identity.create", "ok")
    identity_id = target["identity_id"]
    detail = _ok(api.get(f"/v1/identities/{identity_id}", params={"collection": "north"}))
    assert detail["identity"]["name"] == "Lee"  # the row is in the key's collection

    _refused(_call(api, key, "POST", SUBJECTS, json={"subject": "Lee"}), 400, 43)
    image_id = _add_example(api, key, "Lee", photo(a))
    _ok(_call(api, key, "DELETE", f"{FACES}/{image_id}"))
    _ok(_call(api, key, "DELETE", f"{SUBJECTS}/Lee"))
    _refused(_call(api, key, "DELETE", f"{SUBJECTS}/Lee"), 404, 42)

    face_id = int(image_id.replace("-", ""), 16)
    assert trail() == [
        ("identity.create", "ok", {"identity_id": identity_id}),
        ("identity.create", "conflict", {}),
        ("face.create", "ok", {"identity_id": identity_id, "face_id": face_id}),
        ("face.delete", "ok", {"identity_id": identity_id, "face_id": face_id}),
        ("identity.delete", "ok", {"identity_id": identity_id}),
        ("identity.delete", "not_found", {}),
    ]


def test_answers_go_to_the_decision_log(make_api: MakeApi) -> None:
    """With FACESVC_RECORD_DECISIONS, /api/v1's recognize and verify are recorded as
    /v1's are: the key, the result, the identity, the key's collection."""
    api = make_api(record_decisions=True)
    a, stranger = people(2)
    _ok(api.post("/v1/collections", json={"name": "north"}), 201)
    key = _bound_key(api, ["north"])
    image_id = _add_example(api, key, "Ada", photo(a))
    (ada,) = _ok(api.get("/v1/identities", params={"collection": "north"}))["items"]

    known = _ok(_call(api, key, "POST", RECOGNIZE, files={"file": upload(photo(a, 2))}))
    _ok(_call(api, key, "POST", RECOGNIZE, files={"file": upload(photo(stranger))}))
    verify = f"{FACES}/{image_id}/verify"
    _ok(_call(api, key, "POST", verify, files={"file": upload(photo(a, 2))}))
    _ok(_call(api, key, "POST", verify, files={"file": upload(photo(stranger))}))

    items = _ok(api.get("/v1/decisions", params={"actor": _prefix(key)}))["items"]
    rows = [(d["action"], d["result"], d["identity_id"], d["collection"]) for d in items[::-1]]
    assert rows == [
        ("recognize", "known", ada["id"], "north"),
        ("recognize", "unknown", None, "north"),
        ("verify", "match", ada["id"], "north"),
        ("verify", "no_match", ada["id"], "north"),
    ]
    assert known["result"][0]["subjects"][0]["subject"] == "Ada"
