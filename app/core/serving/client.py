"""`RemotePool`: the jobs of this API process go to the machine's pool server
(`app.core.serving.server`), so one device's batches fill from every API process.

One connection per process: `submit` sends under a lock, a receiver thread resolves the
jobs as answers arrive and follows the server's readiness. If the connection drops (the
server restarts), the jobs it held fail at once with 503 inference_failed and the
client reconnects.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from multiprocessing.connection import Client, Connection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.core.errors import InferenceFailed, Overloaded
from app.core.serving.jobs import Job, Kind
from app.core.serving.tasks import Faces

if TYPE_CHECKING:
    from app.core.telemetry import Metrics

log = logging.getLogger(__name__)
RECONNECT = 0.2  # seconds between connection attempts


class RemotePool:
    def __init__(self, path: Path, metrics: Metrics, *, connect_timeout: float = 60.0) -> None:
        self.path = path
        self.metrics = metrics
        self.connect_timeout = connect_timeout
        self.pending: dict[int, Job] = {}
        self._ids = itertools.count()
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._server_ready = False
        self._stopping = False
        self._receiver: threading.Thread | None = None

    @property
    def ready(self) -> bool:
        return self._conn is not None and self._server_ready and not self._stopping

    def start(self) -> None:
        """Connect (waiting for the server to listen); readiness follows the server."""
        give_up = time.monotonic() + self.connect_timeout
        while (conn := self._connect()) is None:
            if time.monotonic() > give_up:
                raise InferenceFailed(f"no inference pool server at {self.path}")
            time.sleep(RECONNECT)
        self._conn = conn
        self._receiver = threading.Thread(target=self._receive, name="pool-client", daemon=True)
        self._receiver.start()

    def stop(self) -> None:
        self._stopping = True
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()
        self._fail_pending(Overloaded("the service is shutting down"))

    def submit(self, kind: Kind, job: Job) -> None:
        job_id = next(self._ids)
        with self._lock:
            conn = self._conn
            if conn is None or self._stopping:
                raise InferenceFailed("the inference pool server is not connected")
            self.pending[job_id] = job
            try:
                conn.send(("job", job_id, kind, job.payload, job.deadline))
            except (OSError, ValueError):
                del self.pending[job_id]
                raise InferenceFailed("the inference pool server went away") from None

    def cancel(self, job: Job) -> None:
        """The caller gave up (disconnected, cancelled): the server drops the job unrun."""
        with self._lock:
            ids = [i for i, j in self.pending.items() if j is job]
            conn = self._conn
            if not ids or conn is None:
                return
            with contextlib.suppress(OSError, ValueError):
                conn.send(("cancel", ids[0]))

    def _connect(self) -> Connection | None:
        try:
            return Client(str(self.path), family="AF_UNIX")
        except (FileNotFoundError, ConnectionRefusedError):
            return None

    def _receive(self) -> None:
        while not self._stopping:
            conn = self._conn
            try:
                if conn is None:
                    raise EOFError
                message = conn.recv()
            except (EOFError, OSError, TypeError):  # TypeError: closed under us by stop()
                self._lost()
                continue
            if message[0] == "status":
                self._server_ready = bool(message[1])
            else:
                self._resolve(*message[1:])

    def _resolve(self, job_id: int, value: Any, error: BaseException | None, t: Any) -> None:
        with self._lock:
            job = self.pending.pop(job_id, None)
        if isinstance(value, Faces):
            value = value.imported()  # always: this frees the shared memory
        if job is None:
            return
        job.timings.update(t)
        if error is not None:
            job.fail(error)
        else:
            job.resolve(value)

    def _lost(self) -> None:
        """The server went away: fail what it held, then reconnect."""
        if self._stopping:
            return
        self._server_ready = False
        with self._lock:
            self._conn = None
        log.error("lost the inference pool server at %s; reconnecting", self.path)
        self._fail_pending(InferenceFailed("the inference pool server restarted; retry"))
        while not self._stopping and (conn := self._connect()) is None:
            time.sleep(RECONNECT)
        if not self._stopping:
            with self._lock:
                self._conn = conn

    def _fail_pending(self, error: BaseException) -> None:
        with self._lock:
            jobs = list(self.pending.values())
            self.pending.clear()
        for job in jobs:
            job.fail(error)
