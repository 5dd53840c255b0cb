"""A unit of work handed from the event loop to a worker thread, and back."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["detect", "embed"]


def _settle(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():  # the caller gave up (deadline, disconnect) in the meantime
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


@dataclass(eq=False)
class Job:
    """`payload` is what the worker needs; the result comes back through `future`, which
    belongs to `loop`, so workers only ever touch it via `call_soon_threadsafe`."""

    payload: Any
    deadline: float  # time.monotonic() after which nobody waits for the result
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]
    enqueued: float = field(default_factory=time.monotonic)

    @property
    def abandoned(self) -> bool:
        """The caller no longer waits: its deadline passed or it was cancelled."""
        return self.future.done() or time.monotonic() > self.deadline

    def resolve(self, value: Any) -> None:
        self._settle(value, None)

    def fail(self, error: BaseException) -> None:
        self._settle(None, error)

    def _settle(self, value: Any, error: BaseException | None) -> None:
        # A closed loop means the app shut down: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            self.loop.call_soon_threadsafe(_settle, self.future, value, error)
