"""The two job queues (detect, embed) and the batching policy, under one lock.

Every worker serves both queues, so a worker never idles while work is waiting. A worker
asking for its next batch gets, in this order:

1. the waiting embedding jobs (up to `max_batch`) once there are `max_batch` of them or
   the oldest has waited `max_wait` seconds: finishing started requests first;
2. otherwise the waiting detection jobs, at most `max_detect_batch` and no more than
   this worker's share of them (the queue split evenly over the workers, so that one
   worker does not take the lot while another idles); meanwhile the embedding jobs
   accumulate, which is where batching comes from under load;
3. otherwise the embedding jobs after waiting for more until the oldest is `max_wait` old.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque

from app.errors import Overloaded
from app.inference.jobs import Job, Kind


class Scheduler:
    def __init__(
        self, capacity: int, max_batch: int, max_wait: float, *, max_detect_batch: int = 1
    ) -> None:
        self.capacity = capacity
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_detect_batch = min(max_detect_batch, max_batch)
        self.workers = 1  # set by the pool: how many workers share the queues
        self._queues: dict[Kind, deque[Job]] = {"detect": deque(), "embed": deque()}
        self._changed = threading.Condition()
        self._closed = False

    def depth(self, kind: Kind) -> int:
        return len(self._queues[kind])

    def submit(self, kind: Kind, job: Job) -> None:
        with self._changed:
            queue = self._queues[kind]
            if self._closed:
                raise Overloaded("the inference pool is shutting down")
            if len(queue) >= self.capacity:
                raise Overloaded(f"the {kind} queue is full ({self.capacity} jobs)")
            queue.append(job)
            self._changed.notify()

    def next_batch(self) -> tuple[Kind, list[Job]] | None:
        """Block until there is a batch to run; None once the scheduler is closed."""
        detect, embed = self._queues["detect"], self._queues["embed"]
        with self._changed:
            while not self._closed:
                if embed:
                    waited = time.monotonic() - embed[0].enqueued
                    if len(embed) >= self.max_batch or waited >= self.max_wait:
                        return "embed", self._take(embed, self.max_batch)
                    if not detect:
                        self._changed.wait(self.max_wait - waited)
                        continue
                if detect:
                    share = math.ceil(len(detect) / max(1, self.workers))
                    return "detect", self._take(detect, min(share, self.max_detect_batch))
                self._changed.wait()
            return None

    @staticmethod
    def _take(queue: deque[Job], count: int) -> list[Job]:
        return [queue.popleft() for _ in range(min(count, len(queue)))]

    def close(self) -> list[Job]:
        """Stop handing out work; return the jobs that were still waiting."""
        with self._changed:
            self._closed = True
            left = [job for queue in self._queues.values() for job in queue]
            for queue in self._queues.values():
                queue.clear()
            self._changed.notify_all()
            return left
