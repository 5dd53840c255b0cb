"""Bad input gets a 4xx in CompreFace's error body `{"message", "code"}` (never a 500,
never our own body on this surface), and every /api/v1 route refuses keys without its
scope. SQLite and PostgreSQL, one live server per database (conftest.py)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from fastapi.routing import iter_route_contexts

from app.core.config import Settings
from app.main import create_app
from tests.domains.compreface.conftest import Live
from tests.support.factories import no_face, people, photo, side_by_side, upload

RECOGNIZE = "/api/v1/recognition/recognize"
FACES = "/api/v1/recognition/faces"
SUBJECTS = "/api/v1/recognition/subjects"


@pytest.fixture(scope="module")
def http(live: Live) -> Any:
    with httpx.Client(base_url=live.url, headers=live.headers(), timeout=60) as client:
        yield client


def assert_compreface_error(r: httpx.Response, status: int, code: int) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"message", "code"}, body
    assert body["code"] == code and body["message"], body


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"limit": "-1"}, 26),
        ({"limit": "many"}, 26),
        ({"prediction_count": "0"}, 26),
        ({"det_prob_threshold": "1.5"}, 26),
        ({"det_prob_threshold": "high"}, 26),
        ({"status": "perhaps"}, 26),
        ({"prediction_count": "100000"}, 26),  # over FACESVC_MAX_TOP_K
    ],
)
def test_bad_options(http: httpx.Client, params: dict[str, str], code: int) -> None:
    r = http.post(RECOGNIZE, params=params, files={"file": upload(photo(people(1)[0]))})
    assert_compreface_error(r, 400, code)


def test_bad_images_and_bodies(http: httpx.Client) -> None:
    person = people(1)[0]
    assert_compreface_error(http.post(RECOGNIZE, files={"file": upload(no_face())}), 400, 28)
    assert_compreface_error(
        http.post(RECOGNIZE, files={"file": upload(b"not an image at all")}), 400, 21
    )
    assert_compreface_error(http.post(RECOGNIZE, files={"other": upload(photo(person))}), 400, 26)
    assert_compreface_error(http.post(RECOGNIZE, json={"file": "%%% not base64"}), 400, 26)
    assert_compreface_error(http.post(RECOGNIZE, content=b"x"), 415, 0)
    # an example needs exactly one face, a subject, and a face sure enough of itself
    two = side_by_side(photo(person), photo(people(2)[1]))
    r = http.post(FACES, params={"subject": "two"}, files={"file": upload(two)})
    assert_compreface_error(r, 400, 31)
    assert_compreface_error(http.post(FACES, files={"file": upload(photo(person))}), 400, 33)
    r = http.post(FACES, params={"subject": " "}, files={"file": upload(photo(person))})
    assert_compreface_error(r, 400, 26)
    r = http.post(
        FACES,
        params={"subject": "strict", "det_prob_threshold": "1.0"},
        files={"file": upload(photo(person))},
    )
    assert_compreface_error(r, 400, 28)
    assert "strict" not in http.get(SUBJECTS).json()["subjects"]  # nothing half-made
    assert_compreface_error(http.post(SUBJECTS, json={"name": "x"}), 400, 26)
    assert_compreface_error(http.post(SUBJECTS, content=b"{"), 400, 26)
    assert_compreface_error(http.post(f"{FACES}/delete", json={"ids": []}), 400, 26)
    assert_compreface_error(http.get(FACES, params={"size": "0"}), 400, 26)


def test_unknown_subjects_and_images(http: httpx.Client) -> None:
    nobody = f"nobody-{uuid.uuid4()}"
    assert_compreface_error(http.delete(f"{SUBJECTS}/{nobody}"), 404, 42)
    assert_compreface_error(http.put(f"{SUBJECTS}/{nobody}", json={"subject": "x"}), 404, 42)
    assert_compreface_error(http.delete(f"{FACES}/{uuid.UUID(int=2**50)}"), 404, 11)
    assert_compreface_error(http.delete(f"{FACES}/{uuid.uuid4()}"), 404, 11)  # not one of ours
    assert_compreface_error(http.delete(f"{FACES}/not-a-uuid"), 400, 26)
    r = http.post(
        f"{FACES}/{uuid.UUID(int=2**50)}/verify", files={"file": upload(photo(people(1)[0]))}
    )
    assert_compreface_error(r, 404, 11)
    assert_compreface_error(http.get("/api/v1/no/such/route"), 404, 11)
    # a subject that exists cannot be added twice
    assert http.post(SUBJECTS, json={"subject": "twice"}).status_code == 201
    assert_compreface_error(http.post(SUBJECTS, json={"subject": "twice"}), 400, 43)
    assert http.delete(f"{SUBJECTS}/twice").status_code == 200


def test_our_own_api_keeps_its_error_body(live: Live) -> None:
    r = httpx.post(f"{live.url}/v1/recognize", headers=live.headers(), files={})
    assert r.status_code in (415, 422) and set(r.json()) == {"error", "detail"}


# ---------------------------------------------------------------- scopes

# every /api/v1 route -> the scopes a key needs (all of them)
NEEDS: dict[tuple[str, str], set[str]] = {
    ("POST", SUBJECTS): {"enroll"},
    ("PUT", SUBJECTS + "/{subject}"): {"enroll"},
    ("DELETE", SUBJECTS + "/{subject}"): {"delete"},
    ("DELETE", SUBJECTS): {"delete"},
    ("GET", SUBJECTS): {"read"},
    ("GET", SUBJECTS + "/"): {"read"},
    ("POST", FACES): {"enroll"},
    ("GET", FACES): {"read"},
    ("DELETE", FACES): {"delete"},
    ("POST", FACES + "/delete"): {"delete"},
    ("DELETE", FACES + "/{image_id}"): {"delete"},
    ("POST", FACES + "/{image_id}/verify"): {"verify", "read"},
    ("POST", RECOGNIZE): {"verify"},
    ("POST", "/api/v1/verification/verify"): {"verify"},
    ("POST", "/api/v1/detection/detect"): {"verify"},
}
GRANTS = {  # the conftest keys, with what enroll and delete imply
    "recognition": {"enroll", "delete", "read", "verify"},
    "verify": {"verify"},
    "enroll": {"enroll", "read"},
    "delete": {"delete", "read"},
    "read": {"read"},
}


def test_every_route_has_a_rule() -> None:
    app = create_app(Settings(_env_file=None))
    served = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        if route.path.startswith("/api/v1/")
        for method in route.methods or ()
        if method != "HEAD"
    }
    assert served == set(NEEDS)


def test_keys_without_the_scope_are_refused(live: Live) -> None:
    """No key, an unknown key, and every key lacking a scope the route needs: refused
    before any work, in CompreFace's body; nothing changes in the gallery."""
    image = upload(photo(people(1)[0]))
    failures = []
    for (method, path), needs in NEEDS.items():
        concrete = path.format(subject="someone", image_id=uuid.UUID(int=2**50))
        kw: dict[str, Any] = {}
        if method in ("POST", "PUT") and path.startswith(SUBJECTS):
            kw = {"json": {"subject": "someone"}}
        elif path.endswith("/delete"):
            kw = {"json": []}
        elif method == "POST":
            kw = {"files": {"file": image}, "params": {"subject": "someone"}}
        callers: list[tuple[dict[str, str], int, int]] = [
            ({}, 401, 20),
            ({"x-api-key": "fsk_0123456789ab_not-a-key"}, 401, 10),
        ]
        callers += [
            (live.headers(name), 403, 0) for name, grants in GRANTS.items() if not needs <= grants
        ]
        for headers, status, code in callers:
            r = httpx.request(method, live.url + concrete, headers=headers, timeout=60, **kw)
            body = r.json()
            if (
                r.status_code != status
                or body.get("code") != code
                or set(body)
                != {
                    "message",
                    "code",
                }
            ):
                failures.append(f"{method} {path} {headers}: {r.status_code} {r.text[:100]}")
    assert not failures, "\n".join(failures)
    r = httpx.get(f"{live.url}{SUBJECTS}", headers=live.headers("read"))
    assert "someone" not in r.json()["subjects"]
