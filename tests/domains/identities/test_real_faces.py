"""The photo set the service tests rely on, and the service's numbers against the pipeline's."""

from __future__ import annotations

import itertools

import pytest

from app.core.decision.distance import squared_distance
from app.core.model.pipeline import FacePipeline
from tests.support.factories import (
    DATA_FACES,
    PHOTOS_PER_PERSON,
    no_face,
    people,
    photo,
    side_by_side,
    upload,
)
from tests.support.service import Api


def test_the_photo_set(pipeline: FacePipeline) -> None:
    """One face per photo; same person within, different people beyond both thresholds.

    Every other service test assumes this of tests/support/factories.py.
    """
    cal = pipeline.backbone.calibration
    embeddings = {}
    for person in people():
        for n in range(1, PHOTOS_PER_PERSON + 1):
            faces = pipeline.analyze(photo(person, n), faces="all")
            assert len(faces) == 1, (person, n, len(faces))
            embeddings[person, n] = faces[0].embedding
    strictest = min(cal.tau_verify, cal.tau_identify)
    loosest = max(cal.tau_verify, cal.tau_identify)
    for (p, n), (q, m) in itertools.combinations(embeddings, 2):
        d = squared_distance(embeddings[p, n], embeddings[q, m])
        if p == q:
            assert d < strictest, (p, n, m, d)
        else:
            assert d > loosest, (p, n, q, m, d)


def test_service_distances_are_the_pipelines(api: Api, pipeline: FacePipeline) -> None:
    """Verify, recognize and compare report the pipeline's own squared distances."""
    a, b = people(2)
    r = api.enroll(photo(a), a, external_id="a")
    assert r.status_code == 201, r.text
    face = r.json()["face"]
    assert face["model"] == pipeline.backbone.name and face["detection_score"] > 0.9

    embedding = {
        key: pipeline.analyze(photo(*key))[0].embedding for key in [(a, 1), (a, 2), (b, 1)]
    }
    same = api.verify(photo(a, 2), external_id="a").json()
    other = api.verify(photo(b), external_id="a").json()
    assert same["match"] is True and other["match"] is False
    assert same["distance"] == pytest.approx(
        squared_distance(embedding[a, 1], embedding[a, 2]), abs=1e-5
    )
    assert other["distance"] == pytest.approx(
        squared_distance(embedding[a, 1], embedding[b, 1]), abs=1e-5
    )
    assert same["threshold"] == other["threshold"] == pipeline.backbone.calibration.tau_verify

    found = api.recognize(photo(a, 2)).json()["faces"][0]
    assert found["identity"]["external_id"] == "a"
    assert found["distance"] == pytest.approx(same["distance"], abs=1e-4)  # FAISS, float32
    stranger = api.recognize(photo(b), include_rejected=True).json()["faces"][0]
    assert stranger["identity"] is None
    assert stranger["distance"] == pytest.approx(other["distance"], abs=1e-4)

    cmp = api.post(
        "/v1/compare", files={"image_a": upload(photo(a)), "image_b": upload(photo(a, 2))}
    ).json()
    assert cmp["match"] and cmp["distance"] == pytest.approx(same["distance"], abs=1e-5)


def test_no_face_and_multiple_faces(api: Api) -> None:
    a, b = people(2)
    r = api.enroll(no_face(), "nobody")
    assert r.status_code == 422 and r.json()["error"] == "no_face"
    two = side_by_side(photo(a), photo(b))
    r = api.enroll(two, "two")
    assert r.status_code == 422 and r.json()["error"] == "multiple_faces"
    assert len(api.gallery) == 0
    detected = api.post("/v1/detect", files={"image": upload(two)}).json()["faces"]
    assert len(detected) == 2 and all(len(f["landmarks"]) == 5 for f in detected)
    r = api.enroll(two, "largest", largest_face=True)
    assert r.status_code == 201
    group = api.recognize(two, all_faces=True, top_k=2).json()
    assert len(group["faces"]) == 2
    assert sum(f["identity"] is not None for f in group["faces"]) == 1  # the enrolled one


def test_greyscale_pgm(api: Api) -> None:
    pgm = (DATA_FACES / "orl_s1_1.pgm").read_bytes()
    r = api.post("/v1/detect", files={"image": ("s1.pgm", pgm, "image/x-portable-graymap")})
    assert r.status_code == 200, r.text
    assert len(r.json()["faces"]) == 1
