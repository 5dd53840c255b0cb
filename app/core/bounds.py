"""Bounds on what clients send, written once: JSON depth and size, and text free of
control characters. Forms, schemas and routers use these; each raises `ValueError` in
our own words (pydantic turns it into a 422 `validation_error`).
"""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator, StringConstraints
from pydantic_core import from_json, to_json

# Deepest nesting of any JSON we accept, counting the outermost object or array.
MAX_JSON_DEPTH = 32
# Largest `metadata` object, as compact UTF-8 JSON.
MAX_METADATA_BYTES = 16 * 1024

# C0 and C1 control characters (NUL included) and lone surrogates (Python lets JSON
# escapes make them; neither PostgreSQL nor UTF-8 can store them).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
# Free text (metadata values) may keep tabs and line breaks.
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\ud800-\udfff]")
_POSITION = re.compile(r"line (\d+) column (\d+)")


def plain_text(value: str) -> str:
    """Names, ids, keys, query values: no control character at all."""
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (such as NUL)")
    return value


def free_text(value: str) -> str:
    """Free text: tab, line feed and carriage return allowed, other controls not."""
    if _CONTROL_IN_TEXT.search(value):
        raise ValueError("must not contain control characters other than tab and newline")
    return value


def _plain_if_text(value: Any) -> Any:
    return plain_text(value) if isinstance(value, str) else value


PlainText = Annotated[str, AfterValidator(plain_text)]
# A name or an id: no control characters (checked before trimming, which would drop
# some, such as U+0085, at the ends), then trimmed, 1-200 characters.
Label = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    BeforeValidator(_plain_if_text),
]


def load_json(raw: bytes | str, what: str) -> Any:
    """Parse JSON without recursion in Python (pydantic-core's parser stops at 200
    levels by itself), then refuse more than MAX_JSON_DEPTH levels, NaN and infinities."""
    try:
        value = from_json(raw, allow_inf_nan=False)
    except ValueError as exc:
        message = str(exc)
        if "recursion limit" in message:
            raise ValueError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels") from exc
        at = _POSITION.search(message)
        where = f" (line {at[1]}, column {at[2]})" if at else ""
        raise ValueError(f"{what} is not valid JSON{where}") from exc
    check_json(value, what)
    return value


def check_json(value: Any, what: str, *, text: bool = False) -> None:
    """Depth at most MAX_JSON_DEPTH and finite numbers, walked without recursion; with
    `text`, also keys as plain text and string values as free text."""
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict | list):
            if depth > MAX_JSON_DEPTH:
                raise ValueError(f"{what} is nested deeper than {MAX_JSON_DEPTH} levels")
            if isinstance(node, dict):
                if text:
                    for key in node:
                        _text(key, what, plain_text, "key")
                stack.extend((item, depth + 1) for item in node.values())
            else:
                stack.extend((item, depth + 1) for item in node)
        elif isinstance(node, float) and not math.isfinite(node):
            raise ValueError(f"{what} holds a number out of range")
        elif text and isinstance(node, str):
            _text(node, what, free_text, "value")


def _text(value: Any, what: str, check: Any, kind: str) -> None:
    try:
        check(value)
    except ValueError as exc:
        raise ValueError(f"{what}: a {kind} {exc}") from exc


def metadata(value: Any) -> dict[str, Any] | None:
    """`metadata`: a JSON object (multipart sends it as a string), bounded in depth
    and size, keys and strings without control characters."""
    if value is None:
        return None
    if isinstance(value, str | bytes):
        if len(value) > 4 * MAX_METADATA_BYTES:  # before parsing; exact size below
            raise ValueError(f"larger than {MAX_METADATA_BYTES} bytes")
        value = load_json(value, "the JSON")
    if not isinstance(value, dict):
        raise ValueError("must be a JSON object")
    check_json(value, "the JSON", text=True)
    if len(to_json(value)) > MAX_METADATA_BYTES:
        raise ValueError(f"larger than {MAX_METADATA_BYTES} bytes")
    return value
