"""The inference worker pool: batching, backpressure, deadlines, crashes, readiness.

Real model, real photos. The engine tests drive `FaceInference` directly; the HTTP
tests run the app on SQLite (the pool does not depend on the database).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import torch

from app.core.config import Settings
from app.core.errors import (
    DeadlineExceeded,
    InferenceFailed,
    InvalidImage,
    MultipleFaces,
    NoFaceFound,
    Overloaded,
)
from app.core.model.pipeline import FacePipeline
from app.core.serving.deadline import request_deadline
from app.core.serving.inference import FaceInference, batch_limits
from app.core.serving.jobs import Job
from app.core.serving.scheduler import Scheduler
from app.core.telemetry import Metrics
from app.main import create_app
from tests.support.factories import no_face, people, photo, side_by_side, upload

# One worker and a long batching window: concurrent requests reliably share a batch.
BATCHING = {"inference_workers_per_device": 1, "inference_max_wait_ms": 300.0}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@asynccontextmanager
async def running_engine(
    pipeline: FacePipeline, **overrides: Any
) -> AsyncIterator[tuple[FaceInference, Metrics]]:
    settings = Settings(_env_file=None).model_copy(update=overrides)
    metrics = Metrics()
    engine = FaceInference([pipeline], settings, metrics)
    await engine.start()
    try:
        yield engine, metrics
    finally:
        await engine.stop()


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# ---------------------------------------------------------------- scheduler


def _job(deadline: float, answers: list[BaseException | None] | None = None) -> Job:
    def settle(value: object, error: BaseException | None, timings: object) -> None:
        if answers is not None:
            answers.append(error)

    return Job(None, deadline, settle)


def test_expired_jobs_leave_the_queue_and_do_not_count_against_its_capacity() -> None:
    dropped: list[Job] = []
    scheduler = Scheduler(2, 8, 0.0, max_detect_batch=8, on_drop=lambda _, j: dropped.extend(j))
    now = time.monotonic()
    answers: list[BaseException | None] = []
    stale = [_job(now + 0.05, answers), _job(now + 0.05, answers)]
    for job in stale:
        scheduler.submit("detect", job)
    with pytest.raises(Overloaded):  # full, and nothing has expired yet
        scheduler.submit("detect", _job(now + 60))
    time.sleep(0.06)
    fresh = _job(now + 60)
    scheduler.submit("detect", fresh)  # the expired two make room
    assert dropped == stale
    assert [type(a) for a in answers] == [DeadlineExceeded] * 2  # answered, never run
    assert scheduler.next_batch(0.1) == ("detect", [fresh])
    scheduler.submit("detect", _job(time.monotonic() + 0.01))
    time.sleep(0.02)
    assert scheduler.next_batch(0.05) is None  # taken only to be dropped: never run
    assert len(dropped) == 3


# ---------------------------------------------------------------- engine


def test_batch_limits_default_by_device_and_settings_win() -> None:
    defaults = Settings(_env_file=None)
    assert batch_limits(defaults, torch.device("cpu")) == (32, 8)
    assert batch_limits(defaults, torch.device("cuda", 0)) == (256, 32)
    off = defaults.model_copy(update={"inference_max_batch": 1, "inference_max_detect_batch": 1})
    assert batch_limits(off, torch.device("cuda", 0)) == (1, 1)


@pytest.mark.anyio
async def test_concurrent_faces_are_batched_and_match_unbatched(pipeline: FacePipeline) -> None:
    photos = [photo(person) for person in people(8)]
    async with running_engine(pipeline, **BATCHING) as (engine, metrics):
        batched = await asyncio.gather(*(engine.analyze(p) for p in photos))
    # An image is one job: decode, detect, align and embed run together on a worker.
    batches = sample(metrics, "facesvc_inference_batch_size_count", kind="detect")
    jobs = sample(metrics, "facesvc_inference_batch_size_sum", kind="detect")
    assert jobs == 8 and batches < 8, (jobs, batches)  # some batch held several requests
    for data, (result,) in zip(photos, batched, strict=True):
        (alone,) = pipeline.analyze(data)  # one image, one forward pass, no pool
        # Same-size photos also share MTCNN's passes, which moves landmarks by < 1e-3 px
        # (float summation order): embeddings then agree to 1e-4, not to the last bit.
        np.testing.assert_allclose(result.embedding, alone.embedding, rtol=0, atol=1e-4)
        assert result.detection is not None and alone.detection is not None
        np.testing.assert_allclose(result.detection.box, alone.detection.box, atol=1e-3)


@pytest.mark.anyio
async def test_max_batch_one_switches_batching_off(pipeline: FacePipeline) -> None:
    async with running_engine(pipeline, inference_max_batch=1, **BATCHING) as (engine, metrics):
        await asyncio.gather(*(engine.analyze(photo(p)) for p in people(4)))
    assert sample(metrics, "facesvc_inference_batch_size_count", kind="detect") == 4
    assert sample(metrics, "facesvc_inference_batch_size_sum", kind="detect") == 4


@pytest.mark.anyio
async def test_a_full_pool_turns_requests_away(pipeline: FacePipeline) -> None:
    async with running_engine(pipeline, inference_queue_size=2, **BATCHING) as (engine, metrics):
        calls = (engine.analyze(photo(p)) for p in people(6))
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
    rejected = [o for o in outcomes if isinstance(o, Overloaded)]
    served = [o for o in outcomes if isinstance(o, list)]
    assert len(rejected) == 4 and len(served) == 2, outcomes
    assert sample(metrics, "facesvc_inference_rejected_total") == 4


@pytest.mark.anyio
async def test_waiting_detections_share_a_batch_and_each_gets_its_own_answer(
    pipeline: FacePipeline,
) -> None:
    crowd = side_by_side(*(photo(p) for p in people(3)))
    photos = [photo(person, 2) for person in people(5)]  # all 250x250: one MTCNN pass
    async with running_engine(pipeline, **BATCHING) as (engine, metrics):
        first = asyncio.create_task(engine.analyze(crowd, faces="all"))
        await asyncio.sleep(0.05)  # the worker is busy with it while the rest queue up
        outcomes = await asyncio.gather(
            *(engine.analyze(p) for p in photos),
            engine.analyze(b"not an image"),
            engine.analyze(no_face()),
            engine.analyze(crowd),  # several faces where one was asked for
            return_exceptions=True,
        )
        assert len(await first) == 3
    *found, undecodable, faceless, several = outcomes
    assert isinstance(undecodable, InvalidImage), undecodable
    assert isinstance(faceless, NoFaceFound), faceless
    assert isinstance(several, MultipleFaces), several
    batches = sample(metrics, "facesvc_inference_batch_size_count", kind="detect")
    jobs = sample(metrics, "facesvc_inference_batch_size_sum", kind="detect")
    assert jobs == 9 and batches <= 3, (jobs, batches)  # the 8 waiting ones shared batches
    for data, result in zip(photos, found, strict=True):
        assert isinstance(result, list), result
        (alone,) = pipeline.analyze(data)
        assert result[0].detection is not None and alone.detection is not None
        np.testing.assert_allclose(result[0].detection.box, alone.detection.box, atol=1e-3)
        np.testing.assert_allclose(result[0].embedding, alone.embedding, rtol=0, atol=1e-4)


@pytest.mark.anyio
async def test_work_past_its_deadline_is_dropped_not_run(pipeline: FacePipeline) -> None:
    crowd = side_by_side(*(photo(p) for p in people(6)))  # a slow job ahead in the queue
    unbatched = {"inference_max_detect_batch": 1, **BATCHING}  # the slow job runs alone
    async with running_engine(pipeline, **unbatched) as (engine, metrics):
        slow = asyncio.create_task(engine.analyze(crowd, faces="all"))
        await asyncio.sleep(0)  # the slow job is queued first
        with pytest.raises(DeadlineExceeded):
            await engine.analyze(photo(people(1)[0]), timeout=0.05)
        assert len(await slow) == 6
        for _ in range(2000):  # the worker meets the expired job right after the slow one
            if sample(metrics, "facesvc_inference_jobs_total", kind="detect", outcome="expired"):
                break
            await asyncio.sleep(0.01)
    assert sample(metrics, "facesvc_inference_jobs_total", kind="detect", outcome="expired") == 1
    assert sample(metrics, "facesvc_inference_jobs_total", kind="detect", outcome="done") == 1


@pytest.mark.anyio
async def test_the_deadline_is_absolute_and_read_from_the_request(pipeline: FacePipeline) -> None:
    crowd = side_by_side(*(photo(p) for p in people(6)))  # a slow job ahead in the queue
    unbatched = {"inference_max_detect_batch": 1, **BATCHING}
    async with running_engine(pipeline, **unbatched) as (engine, _):
        slow = asyncio.create_task(engine.analyze(crowd, faces="all"))
        await asyncio.sleep(0)
        token = request_deadline.set(time.monotonic() + 0.05)  # set at request arrival
        try:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded):
                await engine.analyze(photo(people(1)[0]))
            assert time.monotonic() - started < 1.0
        finally:
            request_deadline.reset(token)
        with pytest.raises(DeadlineExceeded):  # an explicit deadline wins
            await engine.detect(photo(people(1)[0]), deadline=time.monotonic() - 1)
        await slow


@pytest.mark.anyio
async def test_a_crashed_worker_is_replaced(pipeline: FacePipeline) -> None:
    poisoned = [np.zeros((3, 3, 3), np.uint8)]  # not a face chip: the forward pass raises
    async with running_engine(pipeline, inference_workers_per_device=1) as (engine, metrics):
        (first,) = engine.pool.workers
        with pytest.raises(InferenceFailed):
            await engine.embed(poisoned)
        for _ in range(2000):  # generous: CI hosts are busy
            if engine.pool.workers and engine.pool.workers[0] is not first:
                break
            await asyncio.sleep(0.01)
        first.join(5)  # it hands over to its replacement, then ends
        assert not first.is_alive()
        assert len(engine.pool.workers) == 1 and engine.ready
        assert sample(metrics, "facesvc_inference_worker_restarts_total") == 1
        (result,) = await engine.analyze(photo(people(1)[0]))  # the pool keeps serving
    assert result.embedding.shape == (pipeline.backbone.embedding_size,)


# ---------------------------------------------------------------- HTTP


@asynccontextmanager
async def running_app(
    pipeline: FacePipeline, tmp_path: Path, **overrides: Any
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'facesvc.db'}",
        auth_mode="open",
    ).model_copy(update=overrides)
    app = create_app(settings, pipeline=pipeline)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as http:
            http.app = app  # type: ignore[attr-defined]
            yield http


async def recognize(http: httpx.AsyncClient, person: str) -> httpx.Response:
    return await http.post("/v1/recognize", files={"image": upload(photo(person))})


def metric(text: str, line_start: str) -> float:
    (value,) = [line.split()[-1] for line in text.splitlines() if line.startswith(line_start)]
    return float(value)


@pytest.mark.anyio
async def test_concurrent_requests_share_batches(pipeline: FacePipeline, tmp_path: Path) -> None:
    async with running_app(pipeline, tmp_path, **BATCHING) as http:
        responses = await asyncio.gather(*(recognize(http, p) for p in people(8)))
        assert [r.status_code for r in responses] == [200] * 8
        text = (await http.get("/metrics")).text
    jobs = metric(text, 'facesvc_inference_batch_size_sum{kind="detect"}')
    batches = metric(text, 'facesvc_inference_batch_size_count{kind="detect"}')
    assert jobs == 8 and batches < 8, text
    assert "facesvc_inference_queue_seconds_bucket" in text
    assert "facesvc_inference_model_seconds_bucket" in text
    assert 'facesvc_inference_queue_depth{kind="detect"} 0.0' in text


@pytest.mark.anyio
async def test_queue_full_answers_503_with_retry_after(
    pipeline: FacePipeline, tmp_path: Path
) -> None:
    async with running_app(pipeline, tmp_path, inference_queue_size=1, **BATCHING) as http:
        responses = await asyncio.gather(*(recognize(http, p) for p in people(4)))
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 503, 503, 503], statuses
    for r in responses:
        if r.status_code == 503:
            assert r.json()["error"] == "overloaded"
            assert int(r.headers["Retry-After"]) >= 1


@pytest.mark.anyio
async def test_deadline_answers_503_with_retry_after(
    pipeline: FacePipeline, tmp_path: Path
) -> None:
    async with running_app(pipeline, tmp_path, inference_deadline_ms=1.0) as http:
        r = await recognize(http, people(1)[0])
    assert r.status_code == 503 and r.json()["error"] == "timeout", r.text
    assert r.headers["Retry-After"].isdigit()


@pytest.mark.anyio
async def test_readyz_reflects_the_pool(pipeline: FacePipeline, tmp_path: Path) -> None:
    async with running_app(pipeline, tmp_path) as http:
        ready = await http.get("/readyz")
        assert ready.status_code == 200 and ready.json()["model"] is True
        await http.app.state.inference.stop()  # type: ignore[attr-defined]
        stopped = await http.get("/readyz")
        assert stopped.status_code == 503 and stopped.json()["model"] is False
        r = await recognize(http, people(1)[0])
        assert r.status_code == 503 and r.json()["error"] == "overloaded"


# ---------------------------------------------------------------- metrics


def test_stage_helper_times_a_block() -> None:
    metrics = Metrics()
    with metrics.stage("database"):
        time.sleep(0.01)
    metrics.observe_stages({"queue": 0.002, "detect": 0.05})
    assert sample(metrics, "facesvc_stage_seconds_count", stage="database") == 1
    assert sample(metrics, "facesvc_stage_seconds_sum", stage="database") >= 0.01
    assert sample(metrics, "facesvc_stage_seconds_count", stage="detect") == 1


def test_metrics_add_up_every_process(tmp_path: Path) -> None:
    """Multiprocess mode (as under `facesvc serve`): two processes record, a third
    renders both."""
    import os
    import subprocess
    import sys

    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    record = (
        "from app.core.telemetry import Metrics; m = Metrics(); "
        "m.stage_time.labels('database').observe(0.01); m.jobs.labels('detect', 'done').inc(); "
        "m.queue_depth.labels('detect').set({depth})"
    )
    for depth in (3, 5):  # the later write wins: the pool server is one process
        subprocess.run([sys.executable, "-c", record.format(depth=depth)], env=env, check=True)
    render = "from app.core.telemetry import Metrics; print(Metrics().render().decode())"
    text = subprocess.run(
        [sys.executable, "-c", render], env=env, check=True, capture_output=True, text=True
    ).stdout
    assert 'facesvc_stage_seconds_count{stage="database"} 2.0' in text, text
    assert 'facesvc_inference_jobs_total{kind="detect",outcome="done"} 2.0' in text, text
    assert 'facesvc_inference_queue_depth{kind="detect"} 5.0' in text, text
