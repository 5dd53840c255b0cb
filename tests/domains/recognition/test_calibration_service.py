"""Stored calibrations decide the service's default thresholds and show in /v1/models;
GET /v1/models/{name}/layers. Real pipeline, photos and databases (SQLite, Postgres)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest
from PIL import Image
from PIL.ImageFilter import GaussianBlur

from app.core.errors import FacesvcError
from app.core.model.pipeline import FacePipeline
from app.core.store.repos import calibrations as repository
from app.core.store.rows.calibrations import StoredCalibration
from app.lab.calibration.calibrate import Request, calibrate
from app.lab.calibration.gallery import GalleryModel
from app.lab.evaluation.dataset import load_face_set
from tests.support.factories import people, photo, upload
from tests.support.service import Api, MakeApi


@pytest.fixture(scope="module")
def report(small_set: Path, pipeline: FacePipeline) -> dict[str, Any]:
    """A real calibration of the active model on the small set (FAR 1e-2)."""
    face_set = load_face_set(small_set)
    embeddings = {
        path: pipeline.analyze(path.read_bytes(), faces="largest")[0].embedding
        for path in face_set.images
    }
    return calibrate(face_set, embeddings, Request(far=1e-2))


def _store(api: Api, report: dict[str, Any], **overrides: Any) -> int:
    model_name, model_version = api.app.state.inference.model
    fields: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "source": "facesvc calibrate --data small --far 0.01",
        "tau_verify": report["tau"],
        "far_target": report["far_target"],
        "tau_identify": report["tau_identify"],
        "fpir_target": report["fpir_target"],
        "gallery_size": report["gallery_size"],
        "follow_gallery": True,
        "report": json.loads(json.dumps(report)),
        **overrides,
    }

    async def add() -> int:
        async with api.app.state.sessions() as session, session.begin():
            return (await repository.add(session, StoredCalibration(**fields))).id

    identifier: int = api.run(add)
    return identifier


def _compare(api: Api, a: bytes, b: bytes) -> dict[str, Any]:
    files = {"image_a": upload(a), "image_b": upload(b)}
    response = api.post("/v1/compare", "verify", files=files)
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def _active(api: Api) -> dict[str, Any]:
    response = api.get("/v1/models")  # admin: gallery_faces is null without `read`
    assert response.status_code == 200, response.text
    active: dict[str, Any] = response.json()["active"]
    return active


def test_stored_calibration_sets_the_default_thresholds(
    api: Api, pipeline: FacePipeline, report: dict[str, Any]
) -> None:
    built_in = pipeline.backbone.calibration
    before = _active(api)
    assert before["calibration"] is None and before["calibration_source"] == built_in.source
    a = people(1)[0]
    assert _compare(api, photo(a, 1), photo(a, 2))["threshold"] == built_in.tau_verify

    first = _store(api, report)
    same = _compare(api, photo(a, 1), photo(a, 2))
    assert same["threshold"] == report["tau"] != built_in.tau_verify
    active = _active(api)
    assert active["verify"]["default"] == report["tau"]
    assert active["verify"]["far"] == report["far"] and active["verify"]["tar"] == report["tar"]
    assert active["calibration_source"].startswith(f"database: calibration {first} of ")
    stored = active["calibration"]
    assert stored["id"] == first and stored["far_target"] == 0.01
    assert stored["far_interval"][0] <= report["far"] <= stored["far_interval"][1]
    assert stored["follow_gallery"] is True and stored["gallery_model"] == "independent"

    # the newest calibration wins, and it decides: tau below the pair's distance rejects it
    second = _store(api, report, tau_verify=same["distance"] / 2)
    assert _compare(api, photo(a, 1), photo(a, 2))["match"] is False
    assert _active(api)["calibration"]["id"] == second
    enrolled = api.enroll(photo(a, 1), "a").json()["identity"]["id"]
    verify = api.verify(photo(a, 2), identity_id=enrolled)
    assert verify.json()["threshold"] == same["distance"] / 2


def borderline_probe(pipeline: FacePipeline, low: float, high: float) -> tuple[str, bytes, float]:
    """A blurred second photo of someone whose distance to their first photo lies
    inside (low, high) with a margin: a probe that one tau accepts and the other rejects."""
    margin = 0.1 * (high - low)
    for person in people():
        enrolled = pipeline.analyze(photo(person, 1))[0].embedding
        for radius in (3.0, 3.5, 4.0, 4.5, 5.0, 5.5, 6.0, 6.5, 7.0, 7.5, 8.0):
            image = Image.open(io.BytesIO(photo(person, 2))).filter(GaussianBlur(radius))
            buffer = io.BytesIO()
            image.save(buffer, "JPEG", quality=95)
            try:
                probe = pipeline.analyze(buffer.getvalue())[0].embedding
            except FacesvcError:
                break  # blurred past detection
            distance = float(((probe - enrolled) ** 2).sum())
            if low + margin < distance < high - margin:
                return person, buffer.getvalue(), distance
    raise AssertionError(f"no probe between {low} and {high}")


def test_identify_threshold_is_the_gallery_models_value_for_n(
    api: Api, pipeline: FacePipeline, report: dict[str, Any]
) -> None:
    """At every gallery size N the served 1:N tau is the stored gallery model's tau for
    the target FPIR at N, and a probe accepted at N = 1 is rejected at N = 23."""
    _store(api, report)
    model = GalleryModel.from_dict(report["gallery_model"])
    fpir = report["fpir_target"]
    largest = 2 * len(people()) - 1
    person, probe, distance = borderline_probe(
        pipeline, model.tau_for_fpir(fpir, largest), model.tau_for_fpir(fpir, 1)
    )

    def served(n: int) -> float:
        active = _active(api)
        assert active["gallery_faces"] == active["identify"]["gallery_size"] == n
        assert active["identify"]["fpir"] == fpir
        tau = float(active["identify"]["default"])
        assert tau == pytest.approx(model.tau_for_fpir(fpir, n), rel=1e-9)
        assert float(model.fpir(tau, n)) == pytest.approx(fpir, rel=1e-6)  # forward check
        return tau

    identity = api.enroll(photo(person, 1), person).json()["identity"]["id"]
    tau_one = served(1)
    accepted = api.recognize(probe).json()
    assert accepted["threshold"] == tau_one
    assert accepted["faces"][0]["identity"]["id"] == identity
    assert accepted["faces"][0]["distance"] == pytest.approx(distance, abs=1e-4)

    thresholds = [tau_one]
    for other in (p for p in people() if p != person):
        for n in (1, 2):
            assert api.enroll(photo(other, n), f"{other}-{n}").status_code == 201
            thresholds.append(served(len(thresholds) + 1))
    assert len(thresholds) == largest
    # each enrolled face is one more chance for a stranger: a stricter tau holds the FPIR
    assert thresholds == sorted(thresholds, reverse=True) and thresholds[0] > thresholds[-1]
    rejected = api.recognize(probe, include_rejected=True).json()  # admin: may read them
    assert rejected["threshold"] == thresholds[-1] < distance
    face = rejected["faces"][0]
    assert face["identity"] is None, face
    assert face["candidates"][0]["identity"]["id"] == identity


def test_recognize_confidence_is_one_minus_the_models_fpir(
    api: Api, report: dict[str, Any]
) -> None:
    """confidence = 1 - FPIR(distance, N) of the stored gallery model at the live gallery
    size: it falls as the distance grows, and an acceptance at the default tau (the
    model's tau for the target FPIR at N) has at least 1 - the target."""
    _store(api, report)
    model = GalleryModel.from_dict(report["gallery_model"])
    enrolled, strangers = people()[:6], people()[6:]
    for person in enrolled:
        api.enroll(photo(person), person)
    size = len(api.gallery)
    answers = [
        api.recognize(photo(person, n), include_rejected=True).json()
        for person in (*enrolled, *strangers)
        for n in (1, 2)
    ]
    faces = sorted((a["faces"][0] for a in answers), key=lambda face: face["distance"])
    confidences = [face["confidence"] for face in faces]
    for face in faces:
        expected = 1.0 - float(model.fpir(face["distance"], size))
        assert face["confidence"] == pytest.approx(expected, abs=1e-9)
    assert confidences == sorted(confidences, reverse=True)
    assert all(0.0 <= c <= 1.0 for c in confidences) and confidences[0] > confidences[-1]
    tau = answers[0]["threshold"]
    accepted = [face["confidence"] for face in faces if face["identity"] is not None]
    assert accepted and min(accepted) >= 1.0 - report["fpir_target"] - 1e-9
    assert float(model.fpir(tau, size)) == pytest.approx(report["fpir_target"], rel=1e-6)
    # a key without `read` sees no confidence of an unknown face (it tells the distance)
    unknown = api.recognize(photo(strangers[0]), "verify").json()["faces"][0]
    assert unknown["identity"] is None and unknown["confidence"] is None


def test_fixed_and_other_version_calibrations(
    api: Api, pipeline: FacePipeline, report: dict[str, Any]
) -> None:
    _store(api, report, follow_gallery=False, tau_identify=0.123)
    api.enroll(photo(people(1)[0]), "someone")
    active = _active(api)
    assert active["identify"]["default"] == 0.123
    assert active["identify"]["gallery_size"] == report["gallery_size"]
    # a calibration of another version of the model is not used (its distances differ)
    _store(api, report, model_version="0+other", tau_verify=0.5)
    assert _active(api)["verify"]["default"] == report["tau"]


def test_calibrate_command_reaches_the_service(
    make_api: MakeApi,
    database_url: str,
    small_set: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    from app.cli import main

    monkeypatch.setenv("FACESVC_DATABASE_URL", database_url)
    argv = ["calibrate", "--data", str(small_set), "--far", "0.01", "--cache", str(tmp_path)]
    assert main([*argv, "--json"]) == 0
    saved = json.loads(capsys.readouterr().out)
    api = make_api()
    active = _active(api)
    assert active["calibration"]["id"] == saved["saved_id"]
    assert active["verify"]["default"] == saved["tau"]
    assert "facesvc calibrate --data small --far 0.01" in active["calibration"]["source"]


def test_layers_endpoint(api: Api) -> None:
    response = api.get("/v1/models/dlib-resnet-v1/layers", "verify")
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == "dlib-resnet-v1" and body["input_size"] == 150
    layers = {layer["name"]: layer for layer in body["layers"]}
    names = [layer["name"] for layer in body["layers"]]
    assert len(layers) == 17 and names[0] == "stem" and names[-1] == "embedding"
    assert layers["block3"] == {
        "name": "block3",
        "description": "downsampling residual block",
        "units": 64,
        "side": 17,
        "receptive_field": 83,
        "stride": 8,
    }
    fields = [layer["receptive_field"] for layer in body["layers"][:-1]]
    assert fields == sorted(fields)
    missing = api.get("/v1/models/no-such-model/layers", "verify")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    other = api.get("/v1/models/facenet-vggface2/layers", "verify")
    assert other.status_code == 404 and "dlib-resnet-v1 only" in other.json()["detail"]
    assert api.client.get("/v1/models/dlib-resnet-v1/layers").status_code == 401
