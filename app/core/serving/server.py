"""The pool server: one inference pool per machine, fed by every API process.

    python -m app.core.serving.server --socket PATH      (started by `facesvc serve`)

It runs a `ProcessPool` (scheduler, proxy threads, worker processes) and listens on a
Unix socket (multiprocessing.connection: length-prefixed pickles). Each API process
(`app.core.serving.client.RemotePool`) keeps one connection and sends
("job", id, kind, payload, deadline), and ("cancel", id) when its caller gave up; the
server answers ("result", id, value, error, timings) and pushes ("status", ready)
whenever readiness changes. Chips returned by the
workers stay in shared memory until the API process that asked takes them.

The socket lives in a directory only its user can enter (`facesvc serve` makes it 0700):
pickles must only ever come from our own processes.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import logging
import os
import signal
import threading
from functools import partial
from multiprocessing.connection import Connection, Listener
from pathlib import Path
from typing import Any

from app.core.errors import FacesvcError
from app.core.serving.jobs import Job, Timings
from app.core.serving.process import ProcessPool
from app.core.serving.tasks import Faces

log = logging.getLogger(__name__)
STATUS_POLL = 0.1  # seconds between readiness checks pushed to the clients


class ClientLink:
    """One connected API process."""

    def __init__(self, conn: Connection, serial: int) -> None:
        self.conn = conn
        self.name = f"client-{serial}"
        self.closed = False
        self.live: set[int] = set()  # job ids not answered yet
        self.cancelled: set[int] = set()  # ... of which the caller gave up
        self._send = threading.Lock()

    def send(self, message: Any) -> bool:
        with self._send:
            if self.closed:
                return False
            try:
                self.conn.send(message)
                return True
            except (OSError, ValueError):
                self.closed = True
                return False

    def gone(self, job_id: int) -> bool:
        return self.closed or job_id in self.cancelled

    def reply(self, job_id: int, value: Any, error: BaseException | None, t: Timings) -> None:
        self.live.discard(job_id)
        self.cancelled.discard(job_id)
        if not self.send(("result", job_id, value, error, t)) and isinstance(value, Faces):
            value.release()  # nobody will take the chips any more


class PoolServer:
    def __init__(self, pool: ProcessPool, path: Path) -> None:
        self.pool = pool
        self.path = path
        self.listener = Listener(str(path), family="AF_UNIX")
        self.links: set[ClientLink] = set()
        self._lock = threading.Lock()
        self._serial = itertools.count(1)
        self._stopping = threading.Event()
        self._ready = False

    def start(self) -> None:
        """Accept clients at once (they see "not ready"), then warm the pool up."""
        threading.Thread(target=self._accept, name="pool-accept", daemon=True).start()
        threading.Thread(target=self._watch, name="pool-status", daemon=True).start()
        self.pool.start()

    def stop(self) -> None:
        self._stopping.set()
        self.listener.close()
        self.pool.stop()
        with self._lock:
            links = list(self.links)
        for link in links:
            link.closed = True
            with contextlib.suppress(OSError):
                link.conn.close()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn = self.listener.accept()
            except OSError:
                return  # closed
            link = ClientLink(conn, next(self._serial))
            with self._lock:
                self.links.add(link)
            link.send(("status", self._ready))
            threading.Thread(target=self._read, args=(link,), name=link.name, daemon=True).start()

    def _read(self, link: ClientLink) -> None:
        while True:
            try:
                message = link.conn.recv()
            except (EOFError, OSError):
                break
            if message[0] == "cancel":
                if message[1] in link.live:  # not answered in the meantime
                    link.cancelled.add(message[1])
                continue
            _, job_id, kind, payload, deadline = message
            link.live.add(job_id)
            job = Job(payload, deadline, _replier(link, job_id), partial(link.gone, job_id))
            try:
                self.pool.submit(kind, job)
            except FacesvcError as exc:  # full, shutting down: answered at once
                self.pool.metrics.rejected.inc()
                job.fail(exc)
        link.closed = True  # its queued jobs are now abandoned: dropped, never run
        with self._lock:
            self.links.discard(link)

    def _watch(self) -> None:
        while not self._stopping.wait(STATUS_POLL):
            ready = self.pool.ready
            if ready == self._ready:
                continue
            self._ready = ready
            log.info("inference pool %s", "ready" if ready else "NOT ready")
            with self._lock:
                links = list(self.links)
            for link in links:
                link.send(("status", ready))


def _replier(link: ClientLink, job_id: int) -> Any:
    def settle(value: Any, error: BaseException | None, timings: Timings) -> None:
        link.reply(job_id, value, error, timings)

    return settle


def main(argv: list[str] | None = None) -> int:
    from app.core import logs
    from app.core.config import Settings
    from app.core.telemetry import Metrics

    parser = argparse.ArgumentParser(description="facesvc inference pool server")
    parser.add_argument("--socket", required=True, type=Path)
    args = parser.parse_args(argv)
    settings = Settings()
    logs.configure(settings.log_level, settings.log_format)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with contextlib.suppress(FileNotFoundError):
        args.socket.unlink()  # left by a predecessor that was killed
    server = PoolServer(ProcessPool(settings, Metrics(), import_chips=False), args.socket)
    try:
        server.start()
        log.info("inference pool server on %s (pid %d)", args.socket, os.getpid())
        stop.wait()
    except FacesvcError as exc:
        log.error("inference pool server: %s", exc)
        return 1
    finally:
        server.stop()
        with contextlib.suppress(FileNotFoundError):
            args.socket.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
