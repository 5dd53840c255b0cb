"""The process backend: worker processes behind one pool server, shared by API processes.

One pool server (one worker process, one torch thread) is started for the whole module:
loading the model in a fresh process takes seconds, so every test shares it. The
clients are `RemotePool`s, as in each API process of `facesvc serve`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from app.core.config import Settings
from app.core.errors import NoFaceFound
from app.core.model.pipeline import FacePipeline
from app.core.serving.inference import FaceInference
from app.core.serving.process import ProcessPool
from app.core.serving.server import PoolServer
from app.core.telemetry import Metrics
from app.main import create_app
from tests.support.factories import no_face, people, photo, side_by_side, upload

POOL = {"inference_workers_per_device": 1, "torch_threads": 1, "device": "cpu"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Server:
    def __init__(self, server: PoolServer, metrics: Metrics, ready_before_warm: list[bool]):
        self.server = server
        self.metrics = metrics
        self.path = server.path
        self.ready_before_warm = ready_before_warm


@pytest.fixture(scope="module")
def pool_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    settings = Settings(_env_file=None, **POOL)
    metrics = Metrics()
    path = tmp_path_factory.mktemp("pool") / "pool.sock"
    server = PoolServer(ProcessPool(settings, metrics, import_chips=False), path)
    starting = threading.Thread(target=server.start)
    starting.start()
    # A client connected while the worker loads is told "not ready".
    early = client_engine(path, pipeline=None)
    early.pool.start()
    seen = []
    while starting.is_alive():
        seen.append(early.ready)
        time.sleep(0.05)
    starting.join()
    early.pool.stop()
    try:
        yield Server(server, metrics, seen)
    finally:
        server.stop()


def client_engine(path: Path, pipeline: FacePipeline | None, **overrides: Any) -> FaceInference:
    settings = Settings(_env_file=None, inference_pool_socket=path, **POOL)
    settings = settings.model_copy(update=overrides)
    return FaceInference([pipeline] if pipeline else [], settings, Metrics(), backend="process")


@asynccontextmanager
async def connected(
    path: Path, pipeline: FacePipeline, **overrides: Any
) -> AsyncIterator[FaceInference]:
    engine = client_engine(path, pipeline, **overrides)
    await engine.start()
    try:
        for _ in range(400):  # the server's status arrives right after connecting
            if engine.ready:
                break
            await asyncio.sleep(0.01)
        yield engine
    finally:
        await engine.stop()


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


def test_readiness_is_false_until_the_worker_is_warm(pool_server: Server) -> None:
    seen = pool_server.ready_before_warm  # sampled while the worker process loaded
    assert len(seen) > 10 and not any(seen[:-3]), seen
    assert pool_server.server.pool.ready


@pytest.mark.anyio
async def test_results_equal_the_thread_backend(
    pool_server: Server, pipeline: FacePipeline
) -> None:
    data = photo(people(1)[0])
    async with connected(pool_server.path, pipeline) as engine:
        assert engine.ready
        (remote,) = await engine.analyze(data)
        crowd = await engine.analyze(
            side_by_side(photo(people(3)[1]), None, photo(people(3)[2])), faces="all"
        )
        chips = np.stack([face.aligned.chip for face in crowd])
        embedded = await engine.embed(chips)  # the chips travel in shared memory
        with pytest.raises(NoFaceFound):
            await engine.analyze(no_face())
    (local,) = pipeline.analyze(data)
    np.testing.assert_allclose(remote.embedding, local.embedding, rtol=0, atol=1e-5)
    assert remote.detection is not None and local.detection is not None
    np.testing.assert_allclose(remote.detection.box, local.detection.box, atol=1e-4)
    np.testing.assert_array_equal(remote.aligned.chip, local.aligned.chip)  # thumbnails
    assert len(crowd) == 2
    np.testing.assert_allclose(embedded, [f.embedding for f in crowd], rtol=0, atol=1e-5)


@pytest.mark.anyio
async def test_two_api_processes_fill_one_batch(
    pool_server: Server, pipeline: FacePipeline
) -> None:
    metrics = pool_server.metrics
    before = (
        sample(metrics, "facesvc_inference_batch_size_count", kind="detect"),
        sample(metrics, "facesvc_inference_batch_size_sum", kind="detect"),
    )
    slow = side_by_side(*(photo(p) for p in people(12)))  # keeps the worker busy
    photos = [photo(p, 2) for p in people(8)]
    async with (
        connected(pool_server.path, pipeline) as first,
        connected(pool_server.path, pipeline) as second,
    ):
        busy = asyncio.create_task(first.analyze(slow, faces="all"))
        while sample(metrics, "facesvc_inference_batch_size_count", kind="detect") == before[0]:
            await asyncio.sleep(0.005)  # the worker has the slow job: the rest queue up
        results = await asyncio.gather(
            *(first.analyze(p) for p in photos[:4]), *(second.analyze(p) for p in photos[4:])
        )
        assert len(await busy) == 12
        stages = first.metrics.stage_time
    batches = sample(metrics, "facesvc_inference_batch_size_count", kind="detect") - before[0]
    jobs = sample(metrics, "facesvc_inference_batch_size_sum", kind="detect") - before[1]
    assert jobs == 9 and batches <= 3, (jobs, batches)  # the 8 waiting ones shared batches
    for data, (result,) in zip(photos, results, strict=True):
        (alone,) = pipeline.analyze(data)
        np.testing.assert_allclose(result.embedding, alone.embedding, rtol=0, atol=1e-4)
    registry = first.metrics.registry
    for stage in ("queue", "decode", "detect", "align", "embed"):
        count = registry.get_sample_value("facesvc_stage_seconds_count", {"stage": stage})
        assert count == 5, (stage, count)  # observed in the API process, per request
    assert stages is first.metrics.stage_time


@pytest.mark.anyio
async def test_a_killed_worker_process_fails_its_requests_at_once_and_is_replaced(
    pool_server: Server, pipeline: FacePipeline, tmp_path: Path
) -> None:
    pool = pool_server.server.pool
    (worker,) = pool.workers
    assert worker.process is not None
    pid = worker.process.pid
    assert pid is not None
    metrics = pool_server.metrics
    restarts = sample(metrics, "facesvc_inference_worker_restarts_total")
    taken = sample(metrics, "facesvc_inference_batch_size_count", kind="detect")
    crowd = side_by_side(*(photo(p) for p in people(8)))
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'facesvc.db'}",
        auth_mode="open",
        inference_backend="process",
        inference_pool_socket=pool_server.path,
        inference_deadline_ms=120_000,
    )
    app = create_app(settings, pipeline=pipeline)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            for _ in range(400):
                if (await http.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.01)
            assert (await http.get("/readyz")).status_code == 200
            request = asyncio.create_task(http.post("/v1/detect", files={"image": upload(crowd)}))
            while sample(metrics, "facesvc_inference_batch_size_count", kind="detect") == taken:
                await asyncio.sleep(0.005)  # the worker process has the job
            os.kill(pid, signal.SIGKILL)
            killed = time.monotonic()
            response = await request
            took = time.monotonic() - killed
            assert response.status_code == 503, response.text
            assert response.json()["error"] == "inference_failed"
            assert int(response.headers["Retry-After"]) >= 1
            assert took < 3.0, took  # at once, not at the deadline
            for _ in range(200):  # the server pushes its status within 0.1 s
                not_ready = await http.get("/readyz")
                if not_ready.status_code == 503:
                    break
                await asyncio.sleep(0.01)
            assert not_ready.status_code == 503 and not_ready.json()["model"] is False
            for _ in range(3000):  # the replacement loads the model: seconds on a busy host
                if (await http.get("/readyz")).status_code == 200:
                    break
                await asyncio.sleep(0.05)
            assert worker.process is not None and worker.process.pid != pid
            r = await http.post("/v1/detect", files={"image": upload(photo(people(1)[0]))})
            assert r.status_code == 200, r.text
            text = (await http.get("/metrics")).text
    assert sample(metrics, "facesvc_inference_worker_restarts_total") == restarts + 1
    assert sample(metrics, "facesvc_inference_jobs_total", kind="detect", outcome="crashed") >= 1
    assert 'facesvc_stage_seconds_count{stage="detect"}' in text


@pytest.mark.anyio
async def test_a_caller_that_gives_up_has_its_job_dropped_unrun(
    pool_server: Server, pipeline: FacePipeline
) -> None:
    metrics = pool_server.metrics

    def jobs(outcome: str) -> float:
        return sample(metrics, "facesvc_inference_jobs_total", kind="detect", outcome=outcome)

    expired, done = jobs("expired"), jobs("done")
    taken = sample(metrics, "facesvc_inference_batch_size_count", kind="detect")
    slow = side_by_side(*(photo(p) for p in people(12)))
    async with connected(pool_server.path, pipeline) as engine:
        busy = asyncio.create_task(engine.analyze(slow, faces="all"))
        while sample(metrics, "facesvc_inference_batch_size_count", kind="detect") == taken:
            await asyncio.sleep(0.005)
        waiting = asyncio.create_task(engine.analyze(photo(people(1)[0])))
        await asyncio.sleep(0.05)  # sent, queued behind the slow job
        waiting.cancel()  # as a disconnecting client's request is
        await busy
        for _ in range(500):
            if jobs("expired") > expired and not engine.pool.pending:  # type: ignore[attr-defined]
                break
            await asyncio.sleep(0.01)
        assert not engine.pool.pending  # type: ignore[attr-defined]  # answered, forgotten
    assert jobs("expired") == expired + 1
    assert jobs("done") == done + 1  # only the slow job ran
