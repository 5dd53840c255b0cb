"""1:N with cohort score normalisation: the decision is on d1 / c, c the probe's mean
distance to its k nearest faces of never-enrolled people; the built-in cohort (default)
and an operator's file (FACESVC_IDENTIFY_SCORE=cohort).
Real model, real photos, SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from app.core.decision.cohort import BuiltInCohort, Cohort
from app.core.errors import ModelUnavailable
from app.core.model.backbones.dlib_resnet import CALIBRATION_L2
from app.core.model.pipeline import FacePipeline
from tests.support.factories import people, photo
from tests.support.service import MakeApi

ENROLLED, STRANGERS = people()[:4], people()[4:]
BUILT_IN = BuiltInCohort.of(CALIBRATION_L2.cohort or {}, 128)


@pytest.fixture
def cohort_file(pipeline: FacePipeline, tmp_path: Path) -> Path:
    vectors = [pipeline.analyze(photo(person))[0].embedding for person in STRANGERS]
    path = tmp_path / "cohort.npy"
    np.save(path, np.stack(vectors).astype(np.float32))
    return path


def test_recognize_decides_on_the_cohort_normalised_score(
    make_api: MakeApi, pipeline: FacePipeline, cohort_file: Path
) -> None:
    api = make_api(identify_score="cohort", cohort_file=cohort_file, cohort_k=3, cohort_tau=0.5)
    for person in ENROLLED:
        assert api.enroll(photo(person), person, external_id=person).status_code == 201
    probe = photo(ENROLLED[0], 2)
    body = api.recognize(probe).json()
    (face,) = body["faces"]
    # the score, recomputed here from the pipeline's embedding and the cohort file
    embedding = pipeline.analyze(probe)[0].embedding
    cohort = np.load(cohort_file)
    c = np.sort(((cohort - embedding) ** 2).sum(axis=1))[:3].mean()
    assert face["cohort_score"] == pytest.approx(face["distance"] / c, rel=1e-4)
    assert face["score"] == face["cohort_score"]  # the deprecated name, until 0.3
    assert body["threshold"] == 0.5
    assert (face["identity"] is not None) == (face["cohort_score"] <= 0.5)
    assert face["identity"]["external_id"] == ENROLLED[0]  # the same person, well inside
    # the margin is on the same score: the nearest other person's distance, over c
    others = [pipeline.analyze(photo(p))[0].embedding for p in ENROLLED[1:]]
    runner_up = min(float(((embedding - other) ** 2).sum()) for other in others)
    assert face["margin"] == pytest.approx((runner_up - face["distance"]) / c, rel=1e-3)
    shown = api.get("/v1/models").json()["identify_score"]
    assert shown == {
        "mode": "cohort",
        "cohort_k": 3,
        "cohort_tau": 0.5,
        "cohort_size": len(STRANGERS),
        "min_gallery": None,
        "active": None,
    }
    # a request threshold is on the same score: just under it, the person is unknown
    stricter = api.recognize(
        probe, threshold=face["cohort_score"] * 0.99, include_rejected=True
    ).json()["faces"][0]
    assert stricter["identity"] is None
    assert stricter["cohort_score"] == pytest.approx(face["cohort_score"])


def test_distance_mode_reports_no_score(make_api: MakeApi) -> None:
    api = make_api(identify_score="distance")
    for person in people(BUILT_IN.min_gallery):
        api.enroll(photo(person), person)
    (face,) = api.recognize(photo(ENROLLED[0], 2)).json()["faces"]
    assert face["cohort_score"] is None and face["identity"] is not None
    assert api.get("/v1/models").json()["identify_score"] == {
        "mode": "distance",
        "cohort_k": None,
        "cohort_tau": None,
        "cohort_size": None,
        "min_gallery": None,
        "active": None,
    }


def test_the_built_in_cohort_decides_by_default_from_its_min_gallery(
    make_api: MakeApi, pipeline: FacePipeline
) -> None:
    """A fresh install (no setting, no file): below min_gallery people 1:N decides on the
    distance; from it on d1 / c with the shipped cohort, against the tau its score model
    gives for the gallery size."""
    api = make_api()
    enrolled = people(BUILT_IN.min_gallery)
    for person in enrolled[:-1]:
        assert api.enroll(photo(person), person).status_code == 201
    probe = photo(enrolled[0], 2)
    (small,) = api.recognize(probe).json()["faces"]
    assert small["cohort_score"] is None and small["identity"]["name"] == enrolled[0]
    assert api.get("/v1/models").json()["identify_score"]["active"] is False

    assert api.enroll(photo(enrolled[-1]), enrolled[-1]).status_code == 201
    body = api.recognize(probe).json()
    (face,) = body["faces"]
    size = len(enrolled)
    assert body["threshold"] == pytest.approx(BUILT_IN.tau(size))
    c = BUILT_IN.cohort.scale(pipeline.analyze(probe)[0].embedding)
    assert face["cohort_score"] == pytest.approx(face["distance"] / c, rel=1e-4)
    assert face["identity"]["name"] == enrolled[0] and face["cohort_score"] <= body["threshold"]
    # confidence: the share of strangers the score model says would score worse
    assert face["confidence"] == pytest.approx(
        BUILT_IN.model.stranger_rarity(face["cohort_score"], size), rel=1e-6
    )
    stranger = people()[size]
    (unknown,) = api.recognize(photo(stranger)).json()["faces"]
    assert unknown["identity"] is None
    shown = api.get("/v1/models").json()["identify_score"]
    assert shown["mode"] == "built_in_cohort" and shown["active"] is True
    assert shown["cohort_tau"] == pytest.approx(BUILT_IN.tau(size))
    assert (shown["cohort_k"], shown["cohort_size"]) == (BUILT_IN.cohort.k, 10_000)


def test_cohort_mode_without_its_file_or_tau_does_not_start(
    make_api: MakeApi, cohort_file: Path
) -> None:
    with pytest.raises(ModelUnavailable, match="FACESVC_COHORT_TAU"):
        make_api(identify_score="cohort", cohort_file=cohort_file)
    with pytest.raises(ModelUnavailable, match="128-d"):
        Cohort.load(_saved(cohort_file.parent / "wrong.npy", np.zeros((9, 64))), k=3, dim=128)
    with pytest.raises(ModelUnavailable, match="k is 20"):
        Cohort.load(cohort_file, k=20, dim=128)


def _saved(path: Path, array: np.ndarray) -> Path:
    np.save(path, array)
    return path


def test_cohort_scale_is_the_mean_of_the_k_nearest() -> None:
    cohort = Cohort(np.array([[0, 0], [1, 0], [0, 3], [5, 5]], np.float32), k=2)
    probe = np.array([0, 1], np.float32)
    # squared distances 1, 2, 4, 41: the two nearest average 1.5
    assert cohort.scale(probe) == pytest.approx(1.5)
    assert cohort.score(0.3, probe) == pytest.approx(0.2)
