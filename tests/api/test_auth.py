"""API keys: 401 without or with a bad key, 403 with the wrong scope; open mode. The full
route-by-scope matrix and what answers contain per scope: test_scopes.py."""

from __future__ import annotations

import pytest

from tests.support.factories import people, photo, upload
from tests.support.service import Api, MakeApi

ENROLL_ROUTES = [
    ("POST", "/v1/identities"),
    ("GET", "/v1/identities"),
    ("GET", "/v1/identities/00000000-0000-0000-0000-000000000000"),
    ("PATCH", "/v1/identities/00000000-0000-0000-0000-000000000000"),
    ("DELETE", "/v1/identities/00000000-0000-0000-0000-000000000000"),
    ("POST", "/v1/identities/00000000-0000-0000-0000-000000000000/faces"),
    ("DELETE", "/v1/identities/00000000-0000-0000-0000-000000000000/faces/1"),
]
VERIFY_ROUTES = [
    ("POST", "/v1/verify"),
    ("POST", "/v1/compare"),
    ("POST", "/v1/recognize"),
    ("POST", "/v1/detect"),
    ("GET", "/v1/models"),
]


@pytest.mark.parametrize(("method", "path"), ENROLL_ROUTES + VERIFY_ROUTES)
def test_missing_and_bad_keys(api: Api, method: str, path: str) -> None:
    for headers in ({}, {"X-API-Key": "fsk_nope_nope"}, {"X-API-Key": "garbage"}):
        r = api.client.request(method, path, headers=headers)
        assert r.status_code == 401, (headers, r.text)
        assert r.json()["error"] == "unauthorized"


@pytest.mark.parametrize(("method", "path"), ENROLL_ROUTES)
def test_verify_key_cannot_enroll(api: Api, method: str, path: str) -> None:
    r = api.client.request(method, path, headers=api.headers("verify"))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


@pytest.mark.parametrize(("method", "path"), VERIFY_ROUTES)
def test_enroll_key_cannot_verify(api: Api, method: str, path: str) -> None:
    r = api.client.request(method, path, headers=api.headers("enroll"))
    assert r.status_code == 403 and r.json()["error"] == "forbidden"


def test_admin_and_scoped_keys_work(api: Api) -> None:
    a, b = people(2)
    assert api.enroll(photo(a), "x").status_code == 201  # admin
    r = api.post("/v1/identities", "enroll", files={"image": upload(photo(b))}, data={"name": "y"})
    assert r.status_code == 201
    found = api.recognize(photo(b, 2), "verify").json()["faces"][0]
    assert found["identity"]["name"] == "y"
    assert api.get("/v1/models", "verify").status_code == 200
    assert api.get("/v1/models", "admin").status_code == 200


def test_revoked_key_is_rejected(api: Api) -> None:
    from app.core.store.repos.keys import revoke_key

    prefix = api.keys["verify"].split("_")[1]

    async def revoke() -> None:
        async with api.app.state.sessions() as session, session.begin():
            await revoke_key(session, prefix)

    api.run(revoke)
    r = api.get("/v1/models", "verify")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    # a key with the right prefix but a wrong secret
    r = api.client.get("/v1/models", headers={"X-API-Key": api.keys["admin"][:-2] + "xx"})
    assert r.status_code == 401


def test_open_mode(make_api: MakeApi, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level("WARNING"):
        api = make_api(auth_mode="open")
    assert "NO API KEY IS CHECKED" in caplog.text
    assert api.client.get("/v1/models").status_code == 200


def test_public_endpoints(api: Api) -> None:
    assert api.client.get("/healthz").json() == {"status": "ok"}
    ready = api.client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["database"] and ready.json()["index"]
    assert api.enroll(photo(people(1)[0]), "x").status_code == 201
    text = api.get("/metrics").text  # FACESVC_METRICS=key by default (test_surfaces.py)
    assert "facesvc_index_size 1.0" in text
    assert 'facesvc_faces_embedded_total{operation="enroll"} 1.0' in text
    assert 'route="/v1/identities"' in text and 'status="201"' in text
