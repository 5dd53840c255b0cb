"""A cap on the pixels being decoded at once in one process.

Decoding makes every pixel of an image before anything can be thrown away, several
bytes per pixel at once; a flood of large images decoded side by side by several
inference threads would take memory in proportion. Each decode holds its pixel count
here while it runs; a decode that does not fit waits until others finish. A single
image larger than the whole budget still runs, alone, so nothing under the pixel cap
is ever refused for it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class PixelBudget:
    def __init__(self, capacity: int) -> None:
        if capacity <= 0:
            raise ValueError("the pixel budget must be positive")
        self.capacity = capacity
        self._used = 0
        self._peak = 0
        self._changed = threading.Condition()

    @property
    def used(self) -> int:
        return self._used

    @property
    def peak(self) -> int:
        """Most pixels ever held at once (for tests and metrics)."""
        return self._peak

    @contextmanager
    def hold(self, pixels: int) -> Iterator[None]:
        pixels = min(max(pixels, 0), self.capacity)  # over the budget: runs alone
        with self._changed:
            self._changed.wait_for(lambda: self._used + pixels <= self.capacity)
            self._used += pixels
            self._peak = max(self._peak, self._used)
        try:
            yield
        finally:
            with self._changed:
                self._used -= pixels
                self._changed.notify_all()
