"""How CompreFace's terms map onto ours: a key's collection, CompreFace's errors with
their numeric codes, image ids (the UUID whose integer is our face id) and subjects
(identity names, bounded as ours are)."""

from __future__ import annotations

import uuid
from typing import ClassVar

from pydantic import TypeAdapter, ValidationError

from app.core.access import Principal
from app.core.errors import FacesvcError
from app.core.store.rows.collections import DEFAULT_COLLECTION
from app.domains.shared import Name

MAX_FACE_ID = 2**63 - 1  # BIGINT


def collection_for(principal: Principal) -> str:
    """The one place a key's collection is chosen (CompreFace: a key is one service, with
    one face collection): the one it is bound to; "default" for a key bound to none in
    particular (or open mode). A key bound to several is refused: which gallery a
    CompreFace client works in must not depend on a rule it cannot see."""
    if principal.collections is None:
        return DEFAULT_COLLECTION
    if len(principal.collections) == 1:
        (only,) = principal.collections
        return only
    raise AmbiguousCollection(
        "this API key is bound to several collections; the CompreFace API needs a key "
        "bound to one (or to none, for the default collection)"
    )


# ---------------------------------------------------------------- CompreFace's errors


class CompreFaceError(FacesvcError):
    """An error only this surface raises, with CompreFace's numeric code for it."""

    compreface_code: ClassVar[int]


class SubjectNotFound(CompreFaceError):
    status_code = 404
    code = "not_found"
    compreface_code = 42


class SubjectExists(CompreFaceError):
    status_code = 400
    code = "conflict"
    compreface_code = 43


class ImageNotFound(CompreFaceError):
    status_code = 404
    code = "not_found"
    compreface_code = 11


class BadArgument(CompreFaceError):
    status_code = 400
    code = "validation_error"
    compreface_code = 26


class MissingParameter(CompreFaceError):
    status_code = 400
    code = "validation_error"
    compreface_code = 33


class AmbiguousCollection(CompreFaceError):
    status_code = 403
    code = "forbidden"
    compreface_code = 0  # as a key without the scope (CompreFace has no such case)


def image_id_of(face_id: int) -> str:
    return str(uuid.UUID(int=face_id))


def face_id_of(image_id: str) -> int:
    """Our face id from an image_id; an id we never issued is not found."""
    try:
        value = uuid.UUID(image_id).int
    except ValueError as exc:
        raise BadArgument(f"image_id {image_id!r} is not a UUID") from exc
    if not 0 < value <= MAX_FACE_ID:
        raise ImageNotFound(f"Image with id {image_id} not found")
    return value


def subject_name(value: str | None) -> str:
    """A subject as our identity names are bounded (1-200 characters, no control ones)."""
    if value is None:
        raise MissingParameter("Required request parameter 'subject' is not present")
    try:
        return TypeAdapter(Name).validate_python(value)
    except ValidationError as exc:
        detail = "; ".join(e["msg"].removeprefix("Value error, ") for e in exc.errors())
        raise BadArgument(f"subject: {detail}") from exc
