"""The process backend: each worker is a process owning one pipeline on one device.

    proxy thread (here)  --Pipe: (kind, payloads)-->  worker process: run_batch
                         <--Pipe: outcomes-----------

A proxy thread takes a batch from the scheduler, sends it to its process and waits for
the answer or for the process's death (its sentinel). A process that dies (kill -9, OOM)
fails the jobs it held at once with `InferenceFailed` (503, Retry-After) and is replaced;
a batch taken while its process was already dead goes back to the front of the queue.
Processes are started with 'spawn': torch and fork do not mix.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import signal
import threading
import time
from multiprocessing.connection import Connection, wait
from multiprocessing.context import SpawnProcess
from typing import TYPE_CHECKING, Any

from app.core.errors import ModelUnavailable, Overloaded
from app.core.serving.jobs import Job, Kind
from app.core.serving.pool import make_scheduler, warm_up, workers_per_device
from app.core.serving.scheduler import Scheduler
from app.core.serving.tasks import Faces, Outcome, run_batch
from app.core.serving.worker import begin, crashed, finish

if TYPE_CHECKING:
    import torch

    from app.core.config import Settings
    from app.core.telemetry import Metrics

log = logging.getLogger(__name__)
POLL = 0.5  # seconds between liveness checks of an idle worker process
HANG_GRACE = 30.0  # seconds past its batch's last deadline before a worker counts as hung


def worker_main(conn: Connection, settings: Settings, device: str) -> None:
    """A worker process: load, warm up, say "ready", then run batches until told to stop
    (None) or until the parent goes away (EOF)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C reaches the parent, who stops us
    # Below the API processes: on a CPU the workers would take every core and starve the
    # event loops that admit, reject and answer (their work per request is small).
    os.nice(settings.inference_worker_nice)
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(levelname)s %(name)s: %(message)s"
    )
    import torch

    from app.core.model.pipeline import FacePipeline

    # One thread per process on the CPU unless set: processes, not torch's threads, are
    # what scales MTCNN's many small kernels (docs/architecture.md, 1.93x for 2 vs 1).
    threads = settings.torch_threads or (1 if torch.device(device).type == "cpu" else 0)
    if threads > 0:
        torch.set_num_threads(threads)
    pipeline = FacePipeline.load(settings.model_copy(update={"device": device}))
    warm_up(pipeline)
    conn.send("ready")
    while True:
        try:
            message = conn.recv()
        except EOFError:
            return
        if message is None:
            return
        kind, payloads = message
        try:
            outcomes = run_batch(pipeline, kind, payloads)
        except Exception as exc:  # not a domain error: the batch fails, the process lives on
            log.exception("inference batch failed")
            conn.send(("failed", repr(exc)))
            continue
        conn.send(("ok", [(_export(value), error, t) for value, error, t in outcomes]))


def _export(value: Any) -> Any:
    return value.exported() if isinstance(value, Faces) else value


def _import(value: Any) -> Any:
    return value.imported() if isinstance(value, Faces) else value


class ProcessWorker(threading.Thread):
    """The proxy thread of one worker process; relaunches the process when it dies.
    `import_chips`: take returned chips out of shared memory here (False in the pool
    server, which passes them on to the API process that asked)."""

    def __init__(
        self,
        name: str,
        device: torch.device,
        settings: Settings,
        scheduler: Scheduler,
        metrics: Metrics,
        *,
        import_chips: bool = True,
    ) -> None:
        super().__init__(name=name, daemon=True)
        self.device = device
        self.settings = settings
        self.scheduler = scheduler
        self.metrics = metrics
        self.import_chips = import_chips
        self.context = multiprocessing.get_context("spawn")
        self.process: SpawnProcess | None = None
        self.conn: Connection | None = None
        self.ready = False  # its process is loaded, warm and alive
        self.launched = threading.Event()  # the first launch ended (see `failed`)
        self.failed = False
        self.launches = 0

    def run(self) -> None:
        try:
            while not self.scheduler.closed:
                try:
                    if self._launch():
                        self._serve()
                        continue
                except Exception:  # a bug here must not cost the pool a worker for good
                    log.exception("inference proxy %s failed; starting over", self.name)
                    self.failed = self.failed or self.launches == 1
                    self.launched.set()
                self.ready = False
                self._end_process()
                if not self.scheduler.closed:
                    time.sleep(1.0)  # a process that cannot load: do not spin
        finally:
            self.ready = False
            self._end_process()
            self.launched.set()

    def _launch(self) -> bool:
        self.launches += 1
        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=worker_main,
            args=(child, self.settings, str(self.device)),
            name=f"{self.name}.{self.launches}",
            daemon=True,
        )
        process.start()
        child.close()
        self.process, self.conn = process, parent
        while not self.scheduler.closed:
            if wait([parent, process.sentinel], POLL):
                break
        ok = False
        if parent.poll():
            try:
                ok = parent.recv() == "ready"
            except EOFError:
                ok = False
        if ok:
            log.info("inference worker process %s (pid %s) ready", process.name, process.pid)
        elif not self.scheduler.closed:
            log.error("inference worker process %s exited while loading", process.name)
            self.failed = self.launches == 1
        self.ready = ok
        self.launched.set()
        return ok

    def _serve(self) -> None:
        """Run batches until the scheduler closes or the process dies."""
        assert self.process is not None and self.conn is not None
        process, conn = self.process, self.conn
        while True:
            batch = self.scheduler.next_batch(POLL)
            if batch is None:
                if self.scheduler.closed:
                    return
                if process.is_alive():
                    continue
                self._died([], "detect")
                return
            kind, jobs = batch
            try:
                if not process.is_alive():
                    raise BrokenPipeError
                conn.send((kind, [job.payload for job in jobs]))
            except OSError:  # dead before it got the batch: another worker can run it
                self.scheduler.requeue(kind, jobs)
                self._died([], kind)
                return
            begin(self.metrics, kind, jobs)
            with self.metrics.model_time.labels(kind).time():
                # A process that hangs well past every deadline of its batch is killed
                # (and replaced) rather than holding its device forever.
                hang = max(job.deadline for job in jobs) - time.monotonic() + HANG_GRACE
                if not wait([conn, process.sentinel], max(hang, HANG_GRACE)):
                    log.error("inference worker process %s hangs; killing it", process.name)
                    process.kill()
                    process.join(5)
                reply = self._reply(conn)
            if reply is None:
                self._died(jobs, kind)
                return
            if reply[0] == "ok":
                outcomes: list[Outcome] = reply[1]
                if self.import_chips:
                    outcomes = [(_import(v), e, t) for v, e, t in outcomes]
                finish(self.metrics, kind, jobs, outcomes)
            else:
                crashed(self.metrics, kind, jobs, f"failed ({reply[1]})")

    @staticmethod
    def _reply(conn: Connection) -> Any:
        try:
            return conn.recv() if conn.poll() else None
        except (EOFError, OSError):
            return None

    def _died(self, jobs: list[Job], kind: Kind) -> None:
        self.ready = False
        code = self.process.exitcode if self.process is not None else None
        log.error("inference worker process %s died (exit code %s); replacing it", self.name, code)
        crashed(self.metrics, kind, jobs, f"process died (exit code {code})")
        self.metrics.worker_restarts.inc()
        self._end_process()

    def _end_process(self) -> None:
        process, conn = self.process, self.conn
        self.process = self.conn = None
        if conn is not None:
            with contextlib.suppress(OSError):
                conn.send(None)
            conn.close()
        if process is not None:
            process.join(5)
            if process.is_alive():
                process.kill()
                process.join(5)
            process.close()


class ProcessPool:
    """Worker processes on every device of `settings.device`, fed by one scheduler."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        *,
        import_chips: bool = True,
        start_timeout: float = 600.0,
    ) -> None:
        from app.core.model.device import resolve_devices

        self.devices = resolve_devices(settings.device)
        self.metrics = metrics
        self.scheduler = make_scheduler(settings, self.devices[0], metrics)
        self.start_timeout = start_timeout
        self.workers: list[ProcessWorker] = []
        for device in self.devices:
            n = workers_per_device(
                device, settings.inference_workers_per_device, settings.torch_threads or 1
            )
            for k in range(n):
                self.workers.append(
                    ProcessWorker(
                        f"inference-{device}-{k + 1}",
                        device,
                        settings,
                        self.scheduler,
                        metrics,
                        import_chips=import_chips,
                    )
                )
        self.scheduler.workers = len(self.workers)
        self._started = False

    @property
    def ready(self) -> bool:
        """Started, not stopping, and every device has a warm, live worker process."""
        if not self._started or self.scheduler.closed:
            return False
        serving = {w.device for w in self.workers if w.ready}
        return all(device in serving for device in self.devices)

    def submit(self, kind: Kind, job: Job) -> None:
        self.scheduler.submit(kind, job)

    def start(self) -> None:
        """Launch every worker process and wait until each has loaded and warmed up
        (blocking: call off the event loop)."""
        for worker in self.workers:
            worker.start()
        give_up = time.monotonic() + self.start_timeout
        for worker in self.workers:
            worker.launched.wait(max(0.0, give_up - time.monotonic()))
        broken = [w.name for w in self.workers if w.failed or not w.launched.is_set()]
        self._started = True
        if broken:
            self.stop()
            raise ModelUnavailable(f"inference worker processes did not start: {broken}")
        log.info(
            "inference pool: %d worker processes on %s",
            len(self.workers),
            ", ".join(str(d) for d in self.devices),
        )

    def stop(self, timeout: float = 10.0) -> None:
        for job in self.scheduler.close():
            job.fail(Overloaded("the service is shutting down"))
        for worker in self.workers:
            if worker.is_alive():
                worker.join(timeout)
