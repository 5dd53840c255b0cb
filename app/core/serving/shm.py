"""Arrays handed between processes in POSIX shared memory, not through pickles.

The sender `put`s an array and sends the small `ShmArray` reference; the one receiver
`take`s it (copy out, unlink). A job dropped before it ran is `discard`ed by whoever
drops it. The sender unregisters the segment from multiprocessing's resource tracker:
ownership passes to the receiver, whose attach registers it and whose unlink
unregisters it again (Python 3.11's SharedMemory has no `track=False`).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.shared_memory import SharedMemory

import numpy as np


@dataclass(frozen=True)
class ShmArray:
    name: str
    shape: tuple[int, ...]
    dtype: str

    @classmethod
    def put(cls, array: np.ndarray) -> ShmArray:
        array = np.ascontiguousarray(array)
        segment = SharedMemory(create=True, size=max(1, array.nbytes))
        try:
            np.ndarray(array.shape, array.dtype, buffer=segment.buf)[...] = array
        finally:
            segment.close()
        resource_tracker.unregister(segment._name, "shared_memory")  # type: ignore[attr-defined]
        return cls(segment.name, array.shape, array.dtype.str)

    def take(self) -> np.ndarray:
        segment = SharedMemory(name=self.name)
        try:
            return np.ndarray(self.shape, np.dtype(self.dtype), buffer=segment.buf).copy()
        finally:
            segment.close()
            segment.unlink()

    def discard(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            segment = SharedMemory(name=self.name)
            segment.close()
            segment.unlink()


def materialize(array: np.ndarray | ShmArray) -> np.ndarray:
    return array.take() if isinstance(array, ShmArray) else array
