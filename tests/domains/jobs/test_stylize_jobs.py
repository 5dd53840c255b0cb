"""/v1/stylize jobs end to end on SQLite and PostgreSQL: run, cancel, quota, bad input,
restart (queued jobs run; interrupted ones are re-run or failed), retention."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from sqlalchemy import update

from app.core.store.base import utcnow
from app.core.store.rows.jobs import StyleJob
from tests.support.factories import photo, upload
from tests.support.service import Api, MakeApi, form

STYLE = Path(__file__).resolve().parents[2] / "data" / "styles" / "starry_night_96.png"
# The face network: small, loads fast; 48 px keeps a step well under a second.
FAST: dict[str, Any] = {"network": "dlib-resnet", "max_side": 48, "seed": 1}


@pytest.fixture(autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)


@pytest.fixture(autouse=True)
def no_jobs_left(database_url: str) -> Iterator[None]:
    """Jobs left queued here must not run in the next test's app (the PostgreSQL
    database is shared by the whole session)."""
    yield
    if database_url.startswith("postgresql"):
        import psycopg
        from sqlalchemy.engine import make_url

        plain = make_url(database_url).set(drivername="postgresql")
        with psycopg.connect(plain.render_as_string(hide_password=False)) as conn:
            conn.execute("DELETE FROM stylize_jobs")


@pytest.fixture
def start(make_api: MakeApi, tmp_path: Path) -> Callable[..., Api]:
    def run(**overrides: Any) -> Api:
        settings = {"stylize_results_dir": tmp_path / "results", **overrides}
        return make_api(**settings)

    return run


def submit(api: Api, content: bytes | None = None, **fields: Any) -> Any:
    files = {
        "content": upload(content or photo("Aaron_Sorkin")),
        "style": upload(STYLE.read_bytes(), "style.png"),
    }
    return api.post("/v1/stylize", "verify", files=files, data=form({**FAST, **fields}))


def wait_for(api: Api, job_id: str, done: Callable[[dict[str, Any]], bool], limit: float = 180):
    deadline = time.monotonic() + limit
    while True:
        body: dict[str, Any] = api.get(f"/v1/jobs/{job_id}", "verify").json()
        if done(body):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def finished(body: dict[str, Any]) -> bool:
    return body["status"] in ("succeeded", "failed", "cancelled")


def set_row(api: Api, job_id: str, **values: Any) -> None:
    async def change() -> None:
        async with api.app.state.sessions() as session, session.begin():
            await session.execute(
                update(StyleJob).where(StyleJob.id == uuid.UUID(job_id)).values(**values)
            )

    api.run(change)


@pytest.mark.parametrize("storage", ["disk", "database"])
def test_a_job_runs_to_a_png(start: Callable[..., Api], storage: str, tmp_path: Path) -> None:
    api = start(stylize_storage=storage)
    response = submit(api, steps=4)
    assert response.status_code == 202, response.text
    job_id = response.json()["job_id"]
    assert response.headers["location"] == f"/v1/jobs/{job_id}"
    assert response.json()["status"] == "queued"

    body = wait_for(api, job_id, finished)
    assert body["status"] == "succeeded", body
    assert body["progress"] == {"step": 4, "steps": 4}
    assert body["J"] > 0 and body["J_content"] >= 0 and body["J_style"] > 0
    assert body["params"]["network"] == "dlib-resnet" and body["params"]["pyramid_levels"] == 4
    assert body["started_at"] and body["finished_at"] and body["attempts"] == 1
    result = api.get(body["result_url"], "verify")
    assert result.status_code == 200 and result.headers["content-type"] == "image/png"
    assert Image.open(io.BytesIO(result.content)).size == (48, 48)
    on_disk = list((tmp_path / "results").glob("*.png")) if storage == "disk" else []
    assert len(on_disk) == (1 if storage == "disk" else 0)


def test_identity_is_reported_for_a_face(start: Callable[..., Api]) -> None:
    """Two steps from the content image keep the face: it still verifies."""
    api = start()
    job_id = submit(api, steps=2, max_side=160, init="content").json()["job_id"]
    body = wait_for(api, job_id, finished)
    assert body["status"] == "succeeded", body
    tau = api.app.state.inference.backbone.calibration.tau_verify
    assert body["identity_distance"] is not None and body["identity_distance"] < tau
    assert body["identity_verified"] is True


def test_cancel_stops_within_one_step(start: Callable[..., Api]) -> None:
    api = start()
    job_id = submit(api, steps=400).json()["job_id"]
    wait_for(api, job_id, lambda b: b["progress"]["step"] >= 2)
    cancelled = api.delete(f"/v1/jobs/{job_id}", "verify")
    assert cancelled.status_code == 200, cancelled.text
    step_at_cancel = cancelled.json()["progress"]["step"]
    assert cancelled.json()["status"] == "cancelled"
    runner = api.app.state.jobs.runner
    deadline = time.monotonic() + 30
    while runner.running and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not runner.running
    body = api.get(f"/v1/jobs/{job_id}", "verify").json()
    assert body["status"] == "cancelled"
    assert body["progress"]["step"] <= step_at_cancel + 1
    assert api.get(f"/v1/jobs/{job_id}/result", "verify").status_code == 409
    assert api.delete(f"/v1/jobs/{job_id}", "verify").json()["error"] == "conflict"


def test_queued_jobs_run_after_a_restart(start: Callable[..., Api]) -> None:
    first = start(stylize_workers=0)  # accepts jobs, runs none: a process about to die
    job_id = submit(first, steps=2).json()["job_id"]
    time.sleep(0.5)
    assert first.get(f"/v1/jobs/{job_id}", "verify").json()["status"] == "queued"
    second = start()  # the restarted process
    body = wait_for(second, job_id, finished)
    assert body["status"] == "succeeded" and body["attempts"] == 1


@pytest.mark.parametrize("policy", ["rerun", "fail"])
def test_interrupted_jobs_after_a_restart(start: Callable[..., Api], policy: str) -> None:
    first = start(stylize_workers=0)
    job_id = submit(first, steps=2).json()["job_id"]
    # What a process killed at step 1 leaves behind: running, its heartbeat stopped.
    set_row(
        first,
        job_id,
        status="running",
        runner="a-dead-process",
        attempts=1,
        step=1,
        heartbeat_at=utcnow() - timedelta(minutes=5),
    )
    second = start(stylize_on_restart=policy, stylize_stale_after_s=60)
    body = wait_for(second, job_id, finished)
    if policy == "rerun":
        assert body["status"] == "succeeded" and body["attempts"] == 2, body
        assert body["progress"] == {"step": 2, "steps": 2}
    else:
        assert body["status"] == "failed", body
        assert "interrupted at step 1 of 2" in body["error"]
        assert api_result_status(second, job_id) == 409


def api_result_status(api: Api, job_id: str) -> int:
    return int(api.get(f"/v1/jobs/{job_id}/result", "verify").status_code)


def test_a_clean_shutdown_puts_running_jobs_back(start: Callable[..., Api]) -> None:
    first = start()
    job_id = submit(first, steps=400).json()["job_id"]
    wait_for(first, job_id, lambda b: b["progress"]["step"] >= 1)
    first.run(first.app.state.jobs.runner.stop)  # what the lifespan does on shutdown
    body = first.get(f"/v1/jobs/{job_id}", "verify").json()
    assert body["status"] == "queued" and body["attempts"] == 0, body
    second = start()
    second.delete(f"/v1/jobs/{job_id}", "verify")  # it would run; 400 steps are too many
    assert wait_for(second, job_id, finished)["status"] == "cancelled"


def test_a_live_runner_keeps_its_job(start: Callable[..., Api]) -> None:
    """Another process's sweep must not take a job whose runner is beating."""
    api = start(stylize_stale_after_s=60)
    job_id = submit(api, steps=400).json()["job_id"]
    wait_for(api, job_id, lambda b: b["progress"]["step"] >= 1)
    other = start(stylize_workers=0, stylize_stale_after_s=60)
    api.run(other.app.state.jobs.runner.sweep)
    assert api.get(f"/v1/jobs/{job_id}", "verify").json()["status"] == "running"
    api.delete(f"/v1/jobs/{job_id}", "verify")


def test_queued_jobs_per_key_are_limited(start: Callable[..., Api]) -> None:
    api = start(stylize_workers=0, stylize_max_queued_per_key=2)
    assert submit(api).status_code == 202
    assert submit(api).status_code == 202
    third = submit(api)
    assert third.status_code == 429 and third.json()["error"] == "too_many_jobs"
    other_key = api.post(
        "/v1/stylize",
        "admin",
        files={"content": upload(photo("Abdullah_Gul")), "style": upload(STYLE.read_bytes())},
        data=form(FAST),
    )
    assert other_key.status_code == 202  # the limit is per key


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"steps": 100_000}, "validation_error"),
        ({"max_side": 100_000}, "validation_error"),
        ({"style_layers": '{"nope": 1}'}, "validation_error"),
        ({"style_layers": "not json"}, "validation_error"),
        ({"content_layer": "block4_relu2"}, "validation_error"),  # a VGG layer, face network
        ({"network": "alexnet"}, "validation_error"),
        ({"optimiser": "sgd"}, "validation_error"),
        ({"init": "photo"}, "validation_error"),
    ],
)
def test_bad_options_are_refused(
    start: Callable[..., Api], fields: dict[str, Any], code: str
) -> None:
    api = start(stylize_workers=0)
    response = submit(api, **fields)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == code


def test_bad_images_and_unknown_jobs(start: Callable[..., Api]) -> None:
    api = start(stylize_workers=0)
    response = submit(api, content=b"not an image")
    assert response.status_code == 422 and response.json()["error"] == "invalid_image"
    missing = f"/v1/jobs/{uuid.uuid4()}"
    assert api.get(missing, "verify").json()["error"] == "not_found"
    assert api.delete(missing, "verify").status_code == 404
    queued = submit(api).json()["job_id"]
    assert api.get(f"/v1/jobs/{queued}/result", "verify").status_code == 409
    assert api.get(f"/v1/jobs/{queued}", "enroll").status_code == 403  # scope verify


def test_retention_removes_record_and_result(start: Callable[..., Api], tmp_path: Path) -> None:
    api = start()
    job_id = submit(api, steps=1).json()["job_id"]
    assert wait_for(api, job_id, finished)["status"] == "succeeded"
    assert len(list((tmp_path / "results").glob("*.png"))) == 1
    set_row(api, job_id, finished_at=utcnow() - timedelta(days=2))
    api.run(api.app.state.jobs.runner.sweep)
    assert api.get(f"/v1/jobs/{job_id}", "verify").status_code == 404
    assert list((tmp_path / "results").glob("*.png")) == []
