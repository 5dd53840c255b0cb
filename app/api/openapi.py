"""How the OpenAPI document names operations and shows examples.

- Operation ids: the route function's name in camelCase (`enroll_identity` ->
  `enrollIdentity`), so a function name is an API name: pick a verb and a noun. A route
  may still pass its own `operation_id=`.
- Examples: a body or response model carries them in its own schema
  (`json_schema_extra={"examples": [...]}`); `document()` copies the first one next to
  every request body and 2xx answer that uses the model, where Swagger UI and ReDoc show
  them as the example value.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.routing import APIRoute

REF = "#/components/schemas/"


def operation_id(route: APIRoute) -> str:
    """`generate_unique_id_function` of the app: camelCase of the function's name."""
    head, *rest = route.name.strip("_").split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest if part)


def _first_example(schema: dict[str, Any], components: dict[str, Any]) -> Any | None:
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith(REF):
        schema = components.get(ref.removeprefix(REF), {})
    examples = schema.get("examples")
    return examples[0] if isinstance(examples, list) and examples else None


def _with_examples(spec: dict[str, Any]) -> dict[str, Any]:
    components = spec.get("components", {}).get("schemas", {})
    for item in spec.get("paths", {}).values():
        for operation in item.values():
            if not isinstance(operation, dict):
                continue
            media = list(operation.get("requestBody", {}).get("content", {}).values())
            for status, response in operation.get("responses", {}).items():
                if str(status).startswith("2"):
                    media += list(response.get("content", {}).values())
            for entry in media:
                if "example" in entry or "examples" in entry:
                    continue
                value = _first_example(entry.get("schema", {}), components)
                if value is not None:
                    entry["examples"] = {"example": {"value": value}}
    return spec


def document(app: FastAPI) -> Callable[[], dict[str, Any]]:
    """The app's `openapi()`: FastAPI's document (built once) with the examples placed."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        return _with_examples(build())

    return openapi
