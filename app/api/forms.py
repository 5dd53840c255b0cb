"""Request bodies with images: multipart/form-data, or JSON with base64 images.

Both carry the same field names. Images are size-checked here, before decoding; the
whole body is already bounded by `app.api.limits.BodyLimitMiddleware`.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException as StarletteHTTPException

from app.api.errors import describe
from app.api.limits import BodyTooLarge
from app.core import bounds
from app.core.errors import ImageTooLarge, UnsupportedMediaType, ValidationFailed

M = TypeVar("M", bound=BaseModel)

MULTIPART = "multipart/form-data"
JSON = "application/json"
MAX_FIELDS = 32
MAX_PART_BYTES = 1 << 20  # a non-file multipart field


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def require_json(request: Request) -> None:
    """Dependency of the routes that read a JSON body: any other media type is a 415
    before the body is read."""
    if media_type(request) != JSON:
        raise UnsupportedMediaType(f"send {JSON}")


def is_json(kind: str) -> bool:
    return kind == JSON or (kind.startswith("application/") and kind.endswith("+json"))


def validation_detail(exc: ValidationError) -> str:
    return describe(exc.errors())


def _check_size(field: str, data: bytes, limit: int) -> bytes:
    if len(data) > limit:
        raise ImageTooLarge(f"{field} is larger than the limit of {limit} bytes")
    return data


def _b64(field: str, value: Any, limit: int) -> bytes:
    if not isinstance(value, str):
        raise ValidationFailed(f"{field}: expected a base64-encoded image string")
    if value.startswith("data:") and "," in value:  # data URL
        value = value.split(",", 1)[1]
    if len(value) > limit * 4 // 3 + 4:
        raise ImageTooLarge(f"{field} is larger than the limit of {limit} bytes")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ValidationFailed(f"{field}: not valid base64") from exc


async def _from_multipart(
    request: Request, image_fields: tuple[str, ...], limit: int
) -> dict[str, Any]:
    try:
        form = await request.form(
            max_files=len(image_fields), max_fields=MAX_FIELDS, max_part_size=MAX_PART_BYTES
        )
    except BodyTooLarge:
        raise
    except StarletteHTTPException as exc:  # malformed multipart, too many parts
        raise ValidationFailed(
            f"the multipart body could not be read: it is malformed, or has more than "
            f"{MAX_FIELDS} fields, more than {len(image_fields)} file(s) or a field over "
            f"{MAX_PART_BYTES} bytes"
        ) from exc
    data: dict[str, Any] = {}
    try:
        for key, value in form.multi_items():
            if key in data:
                raise ValidationFailed(f"{key}: given more than once")
            if isinstance(value, UploadFile):
                if key not in image_fields:
                    raise ValidationFailed(f"{key}: unexpected file")
                data[key] = _check_size(key, await value.read(limit + 1), limit)
            elif key in image_fields:
                raise ValidationFailed(f"{key}: expected a file upload")
            else:
                data[key] = value
    finally:
        await form.close()
    return data


async def _json_object(request: Request) -> dict[str, Any]:
    """The body as a JSON object, bounded in depth (`app.core.bounds`); the body limit
    bounds its size."""
    try:
        body = bounds.load_json(await request.body(), "the body")
    except ValueError as exc:
        raise ValidationFailed(str(exc)) from exc
    if not isinstance(body, dict):
        raise ValidationFailed("the JSON body must be an object")
    return body


async def _from_json(request: Request, image_fields: tuple[str, ...], limit: int) -> dict[str, Any]:
    body = await _json_object(request)
    for field in image_fields:
        if field in body and body[field] is not None:
            body[field] = _b64(field, body[field], limit)
    return body


async def parse_form(
    request: Request, model: type[M], image_fields: tuple[str, ...], max_image_bytes: int
) -> M:
    kind = media_type(request)
    if kind == MULTIPART:
        data = await _from_multipart(request, image_fields, max_image_bytes)
    elif is_json(kind):
        data = await _from_json(request, image_fields, max_image_bytes)
    else:
        raise UnsupportedMediaType(
            f"content type {kind or '(none)'!r} is not supported; "
            f"send {MULTIPART} or {JSON} with base64 images"
        )
    return _validate(model, data)


async def parse_json(request: Request, model: type[M]) -> M:
    """A JSON-only body (PATCH), parsed with the same bounds as the forms."""
    return _validate(model, await _json_object(request))


def _validate(model: type[M], data: dict[str, Any]) -> M:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise ValidationFailed(validation_detail(exc)) from exc


def _examples(schema: dict[str, Any], encode: Any = None) -> dict[str, Any]:
    """The model's own examples (json_schema_extra), as a media type's `examples`."""
    found = schema.get("examples") or []
    return {
        f"example{i + 1}" if i else "example": {"value": encode(v) if encode else v}
        for i, v in enumerate(found)
    }


def openapi_json_body(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a JSON body read by `parse_json`."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    examples = _examples(schema)
    return {
        "requestBody": {
            "required": True,
            "content": {JSON: {"schema": schema, "examples": examples}},
        }
    }


def _form_fields(image_fields: tuple[str, ...]) -> Any:
    """A JSON example as multipart form fields: files named, objects as JSON text."""

    def encode(value: dict[str, Any]) -> dict[str, Any]:
        return {
            k: "(a JPEG or PNG file)"
            if k in image_fields
            else json.dumps(v)
            if isinstance(v, dict)
            else v
            for k, v in value.items()
        }

    return encode


def openapi_body(model: type[BaseModel], image_fields: tuple[str, ...]) -> dict[str, Any]:
    """`openapi_extra` documenting both encodings of a form model, with its examples."""
    schema = model.model_json_schema()
    schema.pop("title", None)
    multipart = copy.deepcopy(schema)
    as_json = copy.deepcopy(schema)
    for name, prop in schema["properties"].items():
        if name in image_fields:
            text = prop.get("description", "")
            multipart["properties"][name] = {
                "type": "string",
                "format": "binary",
                "description": text,
            }
            as_json["properties"][name] = {
                "type": "string",
                "contentEncoding": "base64",
                "description": f"{text} (base64)",
            }
        elif name == "metadata":
            multipart["properties"][name] = {
                "type": "string",
                "description": "A JSON object, as a string.",
            }
    multipart.pop("examples", None)  # a file field has no JSON example value
    return {
        "requestBody": {
            "required": True,
            "content": {
                MULTIPART: {
                    "schema": multipart,
                    "examples": _examples(schema, _form_fields(image_fields)),
                },
                JSON: {"schema": as_json, "examples": _examples(schema)},
            },
        }
    }
