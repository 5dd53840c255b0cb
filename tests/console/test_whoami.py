"""/v1/whoami, which the console signs in with: a key learns its own name, scopes, what
they grant and its collections; no key or a bad one is refused."""

from __future__ import annotations

from tests.support.service import Api


def _key(api: Api, name: str, scopes: list[str], collections: list[str] | None = None) -> str:
    from app.core.store.repos.keys import create_key

    async def make() -> str:
        async with api.app.state.sessions() as session, session.begin():
            _, secret = await create_key(session, name, scopes, collections)
            return secret

    made: str = api.run(make)
    return made


def test_a_key_sees_its_own_scopes_and_what_they_grant(api: Api) -> None:
    me = api.get("/v1/whoami", "enroll").json()
    assert me["name"] == "test-enroll" and me["scopes"] == ["enroll"]
    assert me["allows"] == ["enroll", "read"] and me["collections"] is None
    assert me["prefix"] and api.keys["enroll"].startswith(f"fsk_{me['prefix']}_")
    admin = api.get("/v1/whoami", "admin").json()
    assert admin["allows"] == ["admin", "enroll", "delete", "read", "verify", "metrics"]
    assert api.get("/v1/whoami", "verify").json()["allows"] == ["verify"]
    # deleting is a scope of its own: enroll does not grant it (the console's delete
    # buttons follow `allows`)
    cleaner = _key(api, "cleaner", ["delete"])
    me = api.client.get("/v1/whoami", headers={"X-API-Key": cleaner}).json()
    assert me["scopes"] == ["delete"] and me["allows"] == ["delete", "read"]


def test_a_bound_key_sees_its_collections(api: Api) -> None:
    assert api.post("/v1/collections", json={"name": "front-door"}).status_code == 201
    key = _key(api, "door", ["verify"], ["front-door"])
    me = api.client.get("/v1/whoami", headers={"X-API-Key": key}).json()
    assert me["collections"] == ["front-door"] and me["allows"] == ["verify"]


def test_no_key_or_a_bad_one_is_refused(api: Api) -> None:
    assert api.client.get("/v1/whoami").json()["error"] == "unauthorized"
    bad = api.client.get("/v1/whoami", headers={"X-API-Key": "fsk_0123456789ab_nope"})
    assert bad.status_code == 401 and bad.json()["error"] == "unauthorized"
