"""A unit of work handed to the pool, and back.

A job does not know who waits for it: `settle` is how its result leaves (an asyncio
future in this process, or a message to an API process over the pool server's socket),
called exactly once from whichever thread finishes the job.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

# "detect": an image (decode, detect; with faces chosen also align and embed);
# "embed": aligned chips sent by the caller.
Kind = Literal["detect", "embed"]
Timings = dict[str, float]  # stage -> seconds, measured where the stage ran
Settle = Callable[[Any, BaseException | None, Timings], None]


@dataclass(eq=False)
class Job:
    payload: Any
    deadline: float  # absolute time.monotonic() after which nobody waits for the result
    settle: Settle
    gone: Callable[[], bool] = lambda: False  # the caller no longer waits (cancelled)
    enqueued: float = field(default_factory=time.monotonic)
    timings: Timings = field(default_factory=dict)
    _settled: threading.Lock = field(default_factory=threading.Lock)

    @property
    def abandoned(self) -> bool:
        return self.gone() or time.monotonic() > self.deadline

    def resolve(self, value: Any) -> None:
        self._finish(value, None)

    def fail(self, error: BaseException) -> None:
        self._finish(None, error)
        self.release()

    def release(self) -> None:
        """Free what the payload holds outside this process (shared memory)."""
        release = getattr(self.payload, "release", None)
        if release is not None:
            release()

    def _finish(self, value: Any, error: BaseException | None) -> None:
        if not self._settled.acquire(blocking=False):
            return  # settled already (a crash racing a result)
        self.settle(value, error, self.timings)


def future_job(
    payload: Any, deadline: float, loop: asyncio.AbstractEventLoop
) -> tuple[Job, asyncio.Future[Any]]:
    """A job whose result lands in an asyncio future of `loop` as (value, timings)."""
    future: asyncio.Future[Any] = loop.create_future()

    def settle(value: Any, error: BaseException | None, timings: Timings) -> None:
        # A closed loop means the app shut down: nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_set, future, value, error, dict(timings))

    return Job(payload, deadline, settle, future.done), future


def _set(future: asyncio.Future[Any], value: Any, error: BaseException | None, t: Timings) -> None:
    if future.done():  # the caller gave up (deadline, disconnect) in the meantime
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result((value, t))
