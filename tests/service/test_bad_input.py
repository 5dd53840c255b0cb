"""Every bad input gets the one error body and changes nothing stored."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.service.conftest import Api, MakeApi
from tests.service.factories import blank_png, no_face, people, photo, side_by_side

A, B = people(2)


def _error(r: httpx.Response, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error", "detail"} and body["error"] == code, body
    assert isinstance(body["detail"], str) and body["detail"]


def _unchanged(api: Api) -> None:
    assert len(api.gallery) == 0 and api.db_face_ids() == set()
    assert api.get("/v1/identities").json()["items"] == []


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        (b"", 422, "invalid_image"),
        (b"this is not an image at all", 422, "invalid_image"),
        (photo(A)[:300], 422, "invalid_image"),  # a truncated JPEG
        (blank_png((20_000, 20_000)), 413, "image_too_large"),  # decompression bomb: tiny file
        (no_face(), 422, "no_face"),
        (side_by_side(photo(A), photo(B)), 422, "multiple_faces"),
    ],
    ids=["empty", "garbage", "truncated", "bomb", "no-face", "two-faces"],
)
def test_bad_images(api: Api, image: bytes, status: int, code: str) -> None:
    _error(api.enroll(image, "x"), status, code)
    _unchanged(api)


def test_huge_upload_rejected_while_reading(make_api: MakeApi) -> None:
    api = make_api(max_image_bytes=50_000)
    huge = b"\xff" * 200_000
    _error(api.enroll(huge, "x"), 413, "image_too_large")
    # an image over the per-image limit but under the body limit
    _error(api.enroll(b"\xff" * 60_000, "x"), 413, "image_too_large")

    def chunks() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 10_000

    # streamed without Content-Length: stopped once the counted bytes pass the limit
    r = api.client.post(
        "/v1/identities",
        content=chunks(),
        headers={**api.headers(), "Content-Type": "multipart/form-data; boundary=b"},
    )
    _error(r, 413, "image_too_large")
    _unchanged(api)


def test_wrong_content_types(api: Api) -> None:
    jpeg = photo(A)
    _error(
        api.post("/v1/identities", content=jpeg, headers={"Content-Type": "image/jpeg"}),
        415,
        "unsupported_media_type",
    )
    _error(api.post("/v1/recognize", content=b"image=1"), 415, "unsupported_media_type")
    _error(
        api.post("/v1/identities", data={"name": "x", "image": "abc"}),  # urlencoded
        415,
        "unsupported_media_type",
    )
    r = api.client.patch(
        "/v1/identities/00000000-0000-0000-0000-000000000000",
        content="name=x",
        headers={**api.headers(), "Content-Type": "text/plain"},
    )
    _error(r, 415, "unsupported_media_type")
    _unchanged(api)


@pytest.mark.parametrize(
    "fields",
    [
        {"name": "x", "metadata": "{not json"},
        {"name": "x", "metadata": "[1, 2]"},
        {"name": ""},
        {"name": "x" * 201},
        {},
        {"name": "x", "largest_face": "perhaps"},
        {"name": "x", "surprise": "field"},
    ],
    ids=["bad-json", "not-object", "empty-name", "long-name", "no-name", "bad-bool", "extra"],
)
def test_bad_fields(api: Api, fields: dict[str, str]) -> None:
    r = api.post("/v1/identities", files={"image": photo(A)}, data=fields)
    _error(r, 422, "validation_error")
    _unchanged(api)


def test_bad_json_bodies(api: Api) -> None:
    for content in (
        b"{",
        b"[1]",
        b'{"name": "x", "image": "@@notbase64@@"}',
        b'{"name": "x", "image": 5}',
    ):
        r = api.post(
            "/v1/identities", content=content, headers={"Content-Type": "application/json"}
        )
        _error(r, 422, "validation_error")
    r = api.post("/v1/identities", json={"name": "x"})
    _error(r, 422, "validation_error")
    _unchanged(api)


def test_multipart_shape_errors(api: Api) -> None:
    jpeg = photo(A)
    r = api.post("/v1/identities", files={"image": jpeg, "other": jpeg}, data={"name": "x"})
    _error(r, 422, "validation_error")
    r = api.post("/v1/identities", files={"photo": jpeg}, data={"name": "x"})
    _error(r, 422, "validation_error")
    r = api.post("/v1/identities", data={"name": "x", "image": "text"}, files={"dummy": b""})
    _error(r, 422, "validation_error")
    r = api.post(
        "/v1/identities",
        content=b"--b\r\nnonsense",
        headers={"Content-Type": "multipart/form-data; boundary=b"},
    )
    assert r.status_code in (400, 422) and "error" in r.json()
    _unchanged(api)


def test_unknown_routes_and_methods(api: Api) -> None:
    _error(api.get("/v1/nothing-here"), 404, "not_found")
    _error(api.client.put("/v1/identities", headers=api.headers()), 405, "method_not_allowed")
