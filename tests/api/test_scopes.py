"""The scope matrix: every route (read from the app, so a new route without a rule here
fails) against every kind of caller, on SQLite and PostgreSQL; and what each answer may
contain for keys that may not read the gallery (docs/service.md, "Scopes")."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import pytest
from fastapi.routing import iter_route_contexts

from tests.support.factories import people, photo, upload
from tests.support.service import Api, MakeApi, form

STYLE = Path(__file__).resolve().parents[1] / "data" / "styles" / "starry_night_96.png"
PUBLIC = "public"
ANY = "any key"

# route -> the scope it needs (PUBLIC: none; ANY: any valid key)
RULES: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/metrics"): "metrics",
    ("GET", "/openapi.json"): ANY,
    ("GET", "/docs"): ANY,
    ("GET", "/redoc"): ANY,
    ("GET", "/docs-assets/{asset}"): PUBLIC,  # Swagger UI's and ReDoc's own files
    ("GET", "/console"): PUBLIC,  # the console's pages; each of their API calls is keyed
    ("GET", "/console/{file}"): PUBLIC,
    ("GET", "/v1/whoami"): ANY,
    ("POST", "/v1/keys"): "admin",
    ("GET", "/v1/keys"): "admin",
    ("DELETE", "/v1/keys/{prefix}"): "admin",
    ("POST", "/v1/identities"): "enroll",
    ("POST", "/v1/identities/{identity_id}/faces"): "enroll",
    ("PATCH", "/v1/identities/{identity_id}"): "enroll",
    ("DELETE", "/v1/identities/{identity_id}"): "delete",
    ("DELETE", "/v1/identities/{identity_id}/faces/{face_id}"): "delete",
    ("GET", "/v1/identities"): "read",
    ("GET", "/v1/identities/{identity_id}"): "read",
    ("POST", "/v1/verify"): "verify",
    ("POST", "/v1/compare"): "verify",
    ("POST", "/v1/recognize"): "verify",
    ("POST", "/v1/detect"): "verify",
    ("GET", "/v1/models"): "verify",
    ("GET", "/v1/models/{name}/layers"): "verify",
    ("GET", "/v1/models/{name}/calibration"): "verify",
    ("POST", "/v1/stylize"): "verify",
    ("GET", "/v1/jobs/{job_id}"): "verify",  # and only the job's own key (or admin)
    ("GET", "/v1/jobs/{job_id}/result"): "verify",
    ("DELETE", "/v1/jobs/{job_id}"): "verify",
    ("POST", "/v1/collections"): "admin",
    ("GET", "/v1/collections"): "read",
    ("GET", "/v1/collections/{name}"): "read",
    ("DELETE", "/v1/collections/{name}"): "admin",
    ("GET", "/v1/audit"): "admin",
    ("GET", "/v1/decisions"): "admin",
}
OWNED = {"/v1/jobs/{job_id}", "/v1/jobs/{job_id}/result"}

# caller -> the scopes of its key (None: no key; "bad": a key that does not exist)
CALLERS: dict[str, list[str] | None] = {
    "none": None,
    "bad": None,
    "verify": ["verify"],
    "verify2": ["verify"],  # a second verify key: not the owner of the style jobs
    "enroll": ["enroll"],
    "delete": ["delete"],
    "read": ["read"],
    "metrics": ["metrics"],
    "admin": ["admin"],
}
GRANTS = {  # what each scope brings with it (app/core/access.py IMPLIED)
    "admin": set(RULES.values()) | {ANY},
    "enroll": {"enroll", "read", ANY},  # no delete since 0008
    "delete": {"delete", "read", ANY},
    "read": {"read", ANY},
    "verify": {"verify", ANY},
    "metrics": {"metrics", ANY},
}


def add_keys(api: Api, wanted: dict[str, list[str]]) -> None:
    from app.core.store.repos.keys import create_key

    async def make() -> None:
        async with api.app.state.sessions() as session, session.begin():
            for name, scopes in wanted.items():
                _, api.keys[name] = await create_key(session, f"test-{name}", scopes)

    api.run(make)


def headers(api: Api, caller: str) -> dict[str, str]:
    if caller == "none":
        return {}
    if caller == "bad":
        return {"X-API-Key": "fsk_0123456789ab_not-a-key"}
    return {"X-API-Key": api.keys[caller]}


def app_routes(api: Api) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, included routers' too; the
    CompreFace-compatible /api/v1/ has its own matrix (tests/domains/compreface)."""
    found = set()
    for route in iter_route_contexts(api.app.routes):
        if route.path.startswith("/api/v1/"):
            continue
        for method in route.methods or ():
            if method != "HEAD":
                found.add((method, route.path))
    return found


def stylize_files() -> dict[str, Any]:
    return {"content": upload(photo(people(1)[0])), "style": upload(STYLE.read_bytes(), "s.png")}


@pytest.fixture
def world(make_api: MakeApi) -> tuple[Api, dict[str, str]]:
    """One app with a key per caller, an enrolled person and a style job of `verify`."""
    api = make_api(stylize_workers=0, stylize_max_queued_per_key=100)
    add_keys(api, {c: s for c, s in CALLERS.items() if s and c not in api.keys})
    a = people(1)[0]
    ident = api.enroll(photo(a), "Gallery Person", external_id="gp-1").json()["identity"]
    job = api.post("/v1/stylize", "verify", files=stylize_files(), data=form({"steps": 1}))
    assert job.status_code == 202, job.text
    return api, {"identity_id": ident["id"], "job_id": job.json()["job_id"]}


def call(api: Api, caller: str, method: str, path: str, ids: dict[str, str]) -> Any:
    """A request that succeeds for a caller that may make it."""
    a, b = people(2)
    h = headers(api, caller)
    nobody = str(uuid.uuid4())
    concrete = path.format(
        identity_id=nobody if method == "DELETE" else ids["identity_id"],
        face_id=2**40,
        name="dlib-resnet-v1",
        job_id=ids["job_id"],
        asset="swagger-ui.css",
        file="app.js",
        prefix="000000000000",  # no such key: a revoke past auth is a 404
    )
    kw: dict[str, Any] = {}
    if path.startswith("/v1/collections"):
        # an unknown collection to delete: past auth
        concrete = path.format(name="nowhere" if method == "DELETE" else "default")
        kw = {"json": {"name": f"by-{caller}"}} if method == "POST" else {}
    elif path == "/v1/keys" and method == "POST":
        kw = {"json": {"name": f"by-{caller}", "scopes": ["verify"]}}
    elif path == "/v1/identities" and method == "POST":
        kw = {"files": {"image": upload(photo(b))}, "data": {"name": f"by {caller}"}}
    elif path.endswith("/faces") and method == "POST":
        kw = {"files": {"image": upload(photo(a, 2))}}
    elif method == "PATCH":
        kw = {"json": {"name": "Gallery Person"}}
    elif path == "/v1/verify":
        kw = {"files": {"image": upload(photo(a, 2))}, "data": {"external_id": "gp-1"}}
    elif path == "/v1/compare":
        kw = {"files": {"image_a": upload(photo(a)), "image_b": upload(photo(a, 2))}}
    elif path in ("/v1/recognize", "/v1/detect"):
        kw = {"files": {"image": upload(photo(a, 2))}}
    elif path == "/v1/stylize":
        kw = {"files": stylize_files(), "data": {"steps": "1"}}
    elif path == "/v1/jobs/{job_id}" and method == "DELETE":
        # its own job per caller, so that each cancel finds one queued
        job = api.post("/v1/stylize", "verify", files=stylize_files(), data={"steps": "1"})
        concrete = f"/v1/jobs/{job.json()['job_id']}"
    return api.client.request(method, concrete, headers=h, **kw)


SUCCESS = {  # the answer to `call` for a caller that may make it
    ("POST", "/v1/identities"): 201,
    ("POST", "/v1/identities/{identity_id}/faces"): 201,
    ("DELETE", "/v1/identities/{identity_id}"): 404,  # an unknown id: past auth
    ("DELETE", "/v1/identities/{identity_id}/faces/{face_id}"): 404,
    ("POST", "/v1/stylize"): 202,
    ("POST", "/v1/collections"): 201,
    ("DELETE", "/v1/collections/{name}"): 404,
    ("POST", "/v1/keys"): 201,
    ("DELETE", "/v1/keys/{prefix}"): 404,
    ("GET", "/v1/jobs/{job_id}/result"): 409,  # queued: no result yet
}


def expected(route: tuple[str, str], caller: str) -> int:
    need = RULES[route]
    if need == PUBLIC:
        return 200
    scopes = CALLERS[caller]
    if scopes is None:
        return 401
    granted = set().union(*(GRANTS[s] for s in scopes))
    if need not in granted:
        return 403
    if route[1] in OWNED and caller not in ("verify", "admin"):
        return 404  # another key's job does not exist for it
    return SUCCESS.get(route, 200)


def test_every_route_against_every_caller(world: tuple[Api, dict[str, str]]) -> None:
    api, ids = world
    routes = app_routes(api)
    assert routes == set(RULES), f"routes without a rule: {routes - set(RULES)}"
    failures = []
    for route in sorted(RULES):
        for caller in CALLERS:
            r = call(api, caller, *route, ids)
            want = expected(route, caller)
            if r.status_code != want:
                failures.append(f"{route} {caller}: {r.status_code} != {want} {r.text[:120]}")
            elif r.status_code >= 400:
                assert r.json()["error"], r.text  # the one error body
    assert not failures, "\n".join(failures)


# ---------------------------------------------------------------- what answers contain


@pytest.fixture
def gallery(api: Api) -> Api:
    add_keys(api, {"read": ["read"], "verify_read": ["verify", "read"]})
    a, b = people(2)
    for person in (a, b):
        assert api.enroll(photo(person), person, external_id=person).status_code == 201
    return api


def verify_as(api: Api, caller: str, image: bytes, **fields: Any) -> Any:
    return api.verify(image, caller, **fields)


def test_verify_without_read_says_only_yes_or_no(gallery: Api) -> None:
    a = people(1)[0]
    stranger = photo(people(3)[2])
    match = verify_as(gallery, "verify", photo(a, 2), external_id=a)
    body = match.json()
    assert match.status_code == 200 and body["match"] is True
    assert body["identity"]["external_id"] == a and body["distance"] <= body["threshold"]
    assert body["matched_face_id"] is not None

    no = verify_as(gallery, "verify", stranger, external_id=a).json()
    assert no["match"] is False and no["threshold"] == body["threshold"]
    assert no["identity"] is None and no["distance"] is None
    assert no["matched_face_id"] is None and no["probability"] is None
    # an unknown person answers exactly like an enrolled one who did not match
    for target in ({"external_id": "nobody-here"}, {"identity_id": str(uuid.uuid4())}):
        unknown = verify_as(gallery, "verify", stranger, **target)
        assert unknown.status_code == 200 and unknown.json() == no


@pytest.mark.parametrize("caller", ["verify_read", "admin"])
def test_verify_with_read_keeps_the_full_answer(gallery: Api, caller: str) -> None:
    a = people(1)[0]
    stranger = photo(people(3)[2])
    no = verify_as(gallery, caller, stranger, external_id=a).json()
    assert no["match"] is False and no["identity"]["external_id"] == a
    assert no["distance"] > no["threshold"] and no["matched_face_id"] is not None
    unknown = verify_as(gallery, caller, stranger, external_id="nobody-here")
    assert unknown.status_code == 404 and unknown.json()["error"] == "not_found"


def test_verify_of_a_person_without_faces_is_a_non_match(gallery: Api) -> None:
    """No 409 for a key without read: that too would tell that the id exists."""
    a = people(1)[0]
    ident = gallery.get("/v1/identities", params={"external_id": a}).json()["items"][0]
    face = gallery.get(f"/v1/identities/{ident['id']}").json()["faces"][0]["id"]
    assert gallery.delete(f"/v1/identities/{ident['id']}/faces/{face}").status_code == 204
    no = verify_as(gallery, "verify", photo(a, 2), external_id=a)
    assert no.status_code == 200 and no.json()["identity"] is None
    assert verify_as(gallery, "admin", photo(a, 2), external_id=a).status_code == 409


def test_recognize_lists_only_candidates_within_the_threshold(gallery: Api) -> None:
    a = people(1)[0]
    stranger = photo(people(3)[2])
    for caller in ("verify", "verify_read", "admin"):
        unknown = gallery.recognize(stranger, caller, top_k=5).json()["faces"][0]
        assert unknown["identity"] is None and unknown["candidates"] == []
        assert unknown["distance"] is None
        known = gallery.recognize(photo(a, 2), caller, top_k=5).json()["faces"][0]
        assert known["identity"]["external_id"] == a
        assert [c["identity"]["external_id"] for c in known["candidates"]] == [a]
        assert known["distance"] == known["candidates"][0]["distance"]


def test_rejected_candidates_need_read_and_asking(gallery: Api) -> None:
    stranger = photo(people(3)[2])
    refused = gallery.recognize(stranger, "verify", top_k=5, include_rejected=True)
    assert refused.status_code == 403 and refused.json()["error"] == "forbidden"
    for caller in ("verify_read", "admin"):
        r = gallery.recognize(stranger, caller, top_k=5, include_rejected=True)
        face = r.json()["faces"][0]
        assert face["identity"] is None and len(face["candidates"]) == 2
        assert face["distance"] == face["candidates"][0]["distance"] > r.json()["threshold"]


def test_models_hide_the_gallery_size_without_read(gallery: Api) -> None:
    assert gallery.get("/v1/models", "verify").json()["active"]["gallery_faces"] is None
    assert gallery.get("/v1/models", "admin").json()["active"]["gallery_faces"] == 2


def test_a_read_key_reads_but_does_not_write(gallery: Api) -> None:
    items = gallery.get("/v1/identities", "read").json()["items"]
    assert sorted(i["external_id"] for i in items) == sorted(people(2))
    r = gallery.request("PATCH", f"/v1/identities/{items[0]['id']}", "read", json={"name": "x"})
    assert r.status_code == 403


def test_keys_create_read_scope(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from app.cli import main

    monkeypatch.setenv("FACESVC_DATABASE_URL", database_url)
    monkeypatch.setenv("FACESVC_AUTO_MIGRATE", "true")
    assert main(["keys", "create", "--name", "auditor", "--scope", "read"]) == 0
    out = capsys.readouterr().out
    assert "with scopes read" in out and out.strip().splitlines()[-1].startswith("fsk_")
