"""What the lifespan builds lives on `app.state`; a route reaches it through an
`Annotated[T, Depends(from_state("name"))]` type."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request


def from_state(name: str) -> Callable[[Request], Any]:
    """A dependency returning `app.state.<name>` (set in the lifespan)."""

    def get(request: Request) -> Any:
        return getattr(request.app.state, name)

    get.__name__ = f"get_{name}"
    return get
