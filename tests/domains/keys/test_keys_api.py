"""/v1/keys: an admin key bound to no collection creates a key (its secret once), lists
keys (never a secret or hash), and revokes them; the trail records who did it."""

from __future__ import annotations

from tests.support.service import Api


def _create(api: Api, body: dict[str, object], scope: str = "admin") -> object:
    return api.post("/v1/keys", scope, json=body)


def test_create_use_list_and_revoke(api: Api) -> None:
    assert api.post("/v1/collections", json={"name": "front-door"}).status_code == 201
    made = api.post(
        "/v1/keys",
        json={"name": "door tablet", "scopes": ["verify", "read"], "collections": ["front-door"]},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    secret, prefix = body["secret"], body["key"]["prefix"]
    assert secret.startswith(f"fsk_{prefix}_") and body["key"]["scopes"] == ["read", "verify"]
    assert body["key"]["collections"] == ["front-door"] and body["key"]["revoked_at"] is None

    me = api.client.get("/v1/whoami", headers={"X-API-Key": secret}).json()
    assert me["name"] == "door tablet" and me["collections"] == ["front-door"]

    listed = api.get("/v1/keys")
    assert listed.status_code == 200
    assert secret not in listed.text and "key_hash" not in listed.text
    mine = [k for k in listed.json()["items"] if k["prefix"] == prefix]
    assert mine and mine[0]["name"] == "door tablet"

    assert api.delete(f"/v1/keys/{prefix}").status_code == 204
    refused = api.client.get("/v1/whoami", headers={"X-API-Key": secret})
    assert refused.status_code == 401
    again = api.delete(f"/v1/keys/{prefix}")
    assert again.status_code == 204  # revoking a revoked key changes nothing
    revoked = [k for k in api.get("/v1/keys").json()["items"] if k["prefix"] == prefix]
    assert revoked[0]["revoked_at"] is not None

    admin_prefix = api.keys["admin"].split("_")[1]
    trail = api.get("/v1/audit", params={"actor": admin_prefix}).json()["items"]
    actions = [(e["action"], e["target"].get("key")) for e in trail]
    assert ("key.create", prefix) in actions and ("key.revoke", prefix) in actions


def test_a_key_may_be_made_to_delete(api: Api) -> None:
    """`delete` is a scope of its own (enroll does not delete); every scope of the core
    can be asked for here."""
    from typing import get_args

    from app.core.access import Scope
    from app.domains.keys.schemas import ScopeName

    assert set(get_args(ScopeName)) == {s.value for s in Scope}
    made = api.post("/v1/keys", json={"name": "cleaner", "scopes": ["delete", "enroll"]})
    assert made.status_code == 201, made.text
    secret = made.json()["secret"]
    assert made.json()["key"]["scopes"] == ["delete", "enroll"]
    me = api.client.get("/v1/whoami", headers={"X-API-Key": secret}).json()
    assert me["allows"] == ["enroll", "delete", "read"]


def test_bad_requests_are_clear_4xx(api: Api) -> None:
    bad_scope = api.post("/v1/keys", json={"name": "x", "scopes": ["root"]})
    assert bad_scope.status_code == 422 and bad_scope.json()["error"] == "validation_error"
    no_scope = api.post("/v1/keys", json={"name": "x", "scopes": []})
    assert no_scope.status_code == 422
    nowhere = api.post("/v1/keys", json={"name": "x", "scopes": ["read"], "collections": ["no"]})
    assert nowhere.status_code == 404 and nowhere.json()["error"] == "not_found"
    past = api.post(
        "/v1/keys", json={"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}
    )
    assert past.status_code == 422
    assert api.delete("/v1/keys/not-a-prefix").status_code == 422
    assert api.delete("/v1/keys/000000000000").status_code == 404


def test_only_an_unbound_admin_manages_keys(api: Api) -> None:
    from app.core.store.repos.keys import create_key

    assert api.post("/v1/collections", json={"name": "lab"}).status_code == 201

    async def make() -> str:
        async with api.app.state.sessions() as session, session.begin():
            _, secret = await create_key(session, "lab admin", ["admin"], ["lab"])
            return secret

    bound: str = api.run(make)
    headers = {"X-API-Key": bound}
    for method, path, kw in [
        ("GET", "/v1/keys", {}),
        ("POST", "/v1/keys", {"json": {"name": "x", "scopes": ["read"]}}),
        ("DELETE", "/v1/keys/000000000000", {}),
    ]:
        answer = api.client.request(method, path, headers=headers, **kw)
        assert answer.status_code == 403 and answer.json()["error"] == "forbidden", path
    for scope in ("enroll", "verify"):
        assert api.get("/v1/keys", scope).status_code == 403
