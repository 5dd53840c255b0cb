"""The OpenAPI document as a reader of /docs meets it, checked for every operation (new
routes included): a written summary, an operation id of our scheme, examples that are
valid values on every request body and 2xx answer, and error statuses only where they
can happen (app/api/errors.py, app/api/openapi.py)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import jsonschema_rs
import pytest

from app.core.config import Settings
from app.domains.health.docs import ASSET_FILES
from app.main import create_app
from tests.support.service import Api, MakeApi

METHODS = ("get", "post", "put", "patch", "delete")
CAMEL = re.compile(r"[a-z][a-zA-Z0-9]*")
BINARY = ("image/", "application/octet-stream")


def _app(**overrides: Any) -> Any:
    return create_app(Settings(_env_file=None, **overrides))


@pytest.fixture(scope="module", params=["key", "public"])
def app(request: pytest.FixtureRequest) -> Any:
    # metrics "key" and "public" declare /metrics differently: both are walked
    return _app(metrics=request.param)


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield f"{method.upper()} {path}", operation


def _examples(media: dict[str, Any]) -> list[Any]:
    if "example" in media:
        return [media["example"]]
    return [entry["value"] for entry in media.get("examples", {}).values()]


def _validate(value: Any, schema: dict[str, Any], spec: dict[str, Any], where: str) -> None:
    root = {**schema, "components": spec.get("components", {})}
    errors = list(jsonschema_rs.Draft202012Validator(root).iter_errors(value))
    assert not errors, f"{where}: example does not fit its schema: {errors[0].message}"


def _snake(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def test_every_operation_has_a_written_summary_and_our_id(app: Any) -> None:
    spec = app.openapi()
    ids = [op["operationId"] for _, op in _operations(spec)]
    assert ids and len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for label, operation in _operations(spec):
        op_id = operation["operationId"]
        # FastAPI's own ids are snake_case with the path and method in them
        assert CAMEL.fullmatch(op_id), f"{label}: {op_id!r} is not camelCase"
        summary = operation.get("summary", "")
        auto = _snake(op_id).replace("_", " ").title()  # what FastAPI writes for none
        assert summary and summary != auto, f"{label}: no written summary"


def test_bodies_and_answers_carry_examples_that_fit(app: Any) -> None:
    spec = app.openapi()
    for label, operation in _operations(spec):
        for kind, media in operation.get("requestBody", {}).get("content", {}).items():
            examples = _examples(media)
            assert examples, f"{label}: no example for its {kind} body"
            if kind == "application/json":
                for value in examples:
                    _validate(value, media["schema"], spec, f"{label} body")
        for status, response in operation["responses"].items():
            for kind, media in response.get("content", {}).items():
                examples = _examples(media)
                if status.startswith("2") and not kind.startswith(BINARY):
                    assert examples, f"{label}: no example for its {status} answer"
                if kind == "application/json" and "schema" in media:
                    for value in examples:
                        _validate(value, media["schema"], spec, f"{label} {status}")


def test_error_statuses_only_where_they_can_happen(app: Any) -> None:
    spec = app.openapi()
    for label, operation in _operations(spec):
        statuses = set(operation["responses"])
        has_body = "requestBody" in operation
        if not has_body:
            assert not statuses & {"413", "415"}, f"{label} reads no body: {sorted(statuses)}"
        else:
            assert "413" in statuses, f"{label}: the body limit applies to it"
        if not has_body and not operation.get("parameters"):
            assert "422" not in statuses, f"{label} has nothing to validate"
        for status, response in operation["responses"].items():
            if status.startswith(("4", "5")):
                # a documented body; ours is ErrorBody, a compatibility API may have its own
                (media,) = response["content"].values()
                assert media["schema"], (label, status)
                assert _examples(media), f"{label}: no example of its {status} body"
    # FastAPI's own 422 body is never answered (app/api/errors.py), so never documented
    assert "HTTPValidationError" not in spec["components"]["schemas"]


def test_keyed_routes_document_the_key(app: Any) -> None:
    """401 and 403 are listed exactly where a key is asked for."""
    spec = app.openapi()
    for label, operation in _operations(spec):
        keyed = bool(operation.get("security"))
        assert ("401" in operation["responses"]) == keyed, label
        assert ("403" in operation["responses"]) == keyed, label


@pytest.mark.parametrize("docs", ["key", "public"])
def test_docs_pages_load_nothing_from_elsewhere(make_api: MakeApi, docs: str) -> None:
    """The pages name only the service's own URLs; the assets need no key (public library
    code) and only the four files are served."""
    api = make_api(docs=docs)
    for page in ("/docs", "/redoc"):
        html = api.get(page, "verify").text
        urls = re.findall(r"""(?:src|href|url)\s*[:=(]\s*['"]([^'"]+)['"]""", html)
        assert urls and all(u.startswith("/") for u in urls), (page, urls)
    for name, kind in ASSET_FILES.items():
        r = api.client.get(f"/docs-assets/{name}")
        assert r.status_code == 200 and r.headers["content-type"].startswith(kind), name
        assert len(r.content) > 1000
    for name in ("consts.py", "..%2F__init__.py", "nothing.js"):
        r = api.client.get(f"/docs-assets/{name}")
        assert r.status_code == 404 and r.json()["error"] == "not_found"


def test_validation_details_have_one_style(api: Api) -> None:
    """A parameter FastAPI checks and a form field we check read alike: `field: message`."""
    r = api.get("/v1/identities", params={"limit": 0})
    assert r.status_code == 422
    assert r.json() == {
        "error": "validation_error",
        "detail": "limit: input should be greater than or equal to 1",
    }
    r = api.recognize(b"not used", top_k=0)
    assert r.status_code == 422
    assert r.json()["detail"] == "top_k: input should be greater than or equal to 1"
