"""The two job queues (detect, embed) and the batching policy, under one lock.

Every worker serves both queues, so a worker never idles while work is waiting. A worker
asking for its next batch gets, in this order:

1. the waiting embedding jobs (up to `max_batch`) once there are `max_batch` of them or
   the oldest has waited `max_wait` seconds;
2. otherwise the waiting detection jobs (each decodes, detects, aligns and embeds: a
   whole request), at most `max_detect_batch` and no more than this worker's share of
   them (the queue split evenly over the workers, so that one worker does not take the
   lot while another idles);
3. otherwise the embedding jobs after waiting for more until the oldest is `max_wait` old.

A job whose deadline has passed (or whose caller left) leaves the queue without running:
when a batch is taken, and before a full queue turns a new job away, so that expired
jobs never count against the capacity. `on_drop(kind, jobs)` hears about them.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Callable

from app.core.errors import DeadlineExceeded, Overloaded
from app.core.serving.jobs import Job, Kind

Batch = tuple[Kind, list[Job]]


class Scheduler:
    def __init__(
        self,
        capacity: int,
        max_batch: int,
        max_wait: float,
        *,
        max_detect_batch: int = 1,
        on_drop: Callable[[Kind, list[Job]], None] | None = None,
        on_depth: Callable[[Kind, int], None] | None = None,
    ) -> None:
        self.capacity = capacity
        self.max_batch = max_batch
        self.max_wait = max_wait
        self.max_detect_batch = min(max_detect_batch, max_batch)
        self.on_drop = on_drop
        self.on_depth = on_depth  # a queue's length changed (a gauge)
        self.workers = 1  # set by the pool: how many workers share the queues
        self._queues: dict[Kind, deque[Job]] = {"detect": deque(), "embed": deque()}
        self._changed = threading.Condition()
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def depth(self, kind: Kind) -> int:
        return len(self._queues[kind])

    def submit(self, kind: Kind, job: Job) -> None:
        dropped: list[Job] = []
        try:
            with self._changed:
                queue = self._queues[kind]
                if self._closed:
                    raise Overloaded("the inference pool is shutting down")
                if len(queue) >= self.capacity:
                    dropped = self._purge(queue)
                if len(queue) >= self.capacity:
                    raise Overloaded(f"the {kind} queue is full ({self.capacity} jobs)")
                queue.append(job)
                self._changed.notify()
        finally:
            self._dropped(kind, dropped)
            self._depth(kind)

    def requeue(self, kind: Kind, jobs: list[Job]) -> None:
        """Put a taken batch back at the front (its worker turned out to be dead)."""
        with self._changed:
            self._queues[kind].extendleft(reversed(jobs))
            self._changed.notify_all()
        self._depth(kind)

    def next_batch(self, timeout: float | None = None) -> Batch | None:
        """Block until there is a batch to run; None once closed or after `timeout`."""
        detect, embed = self._queues["detect"], self._queues["embed"]
        give_up = None if timeout is None else time.monotonic() + timeout
        while True:
            dropped: list[Job] = []
            batch: Batch | None = None
            with self._changed:
                while not self._closed and batch is None:
                    now = time.monotonic()
                    if give_up is not None and now >= give_up:
                        break
                    left = None if give_up is None else give_up - now
                    if embed:
                        waited = now - embed[0].enqueued
                        if len(embed) >= self.max_batch or waited >= self.max_wait:
                            batch = "embed", self._take(embed, self.max_batch, dropped)
                            break
                        if not detect:
                            wait = self.max_wait - waited
                            self._changed.wait(wait if left is None else min(wait, left))
                            continue
                    if detect:
                        share = math.ceil(len(detect) / max(1, self.workers))
                        count = min(share, self.max_detect_batch)
                        batch = "detect", self._take(detect, count, dropped)
                        break
                    self._changed.wait(left)
            if batch is None:
                return None
            self._dropped(batch[0], dropped)
            self._depth(batch[0])
            if batch[1]:
                return batch
            # every job taken had expired: look again

    def _take(self, queue: deque[Job], count: int, dropped: list[Job]) -> list[Job]:
        taken: list[Job] = []
        while queue and len(taken) < count:
            job = queue.popleft()
            (dropped if job.abandoned else taken).append(job)
        return taken

    @staticmethod
    def _purge(queue: deque[Job]) -> list[Job]:
        expired = [job for job in queue if job.abandoned]
        if expired:
            live = [job for job in queue if not job.abandoned]
            queue.clear()
            queue.extend(live)
        return expired

    def _dropped(self, kind: Kind, jobs: list[Job]) -> None:
        # Answered all the same: a remote caller forgets the job only once it hears back.
        expired = DeadlineExceeded("the request's deadline passed before inference started")
        for job in jobs:
            job.fail(expired)
        if jobs and self.on_drop is not None:
            self.on_drop(kind, jobs)

    def _depth(self, kind: Kind) -> None:
        if self.on_depth is not None:
            self.on_depth(kind, len(self._queues[kind]))

    def close(self) -> list[Job]:
        """Stop handing out work; return the jobs that were still waiting."""
        with self._changed:
            self._closed = True
            left = [job for queue in self._queues.values() for job in queue]
            for queue in self._queues.values():
                queue.clear()
            self._changed.notify_all()
        self._depth("detect")
        self._depth("embed")
        return left
