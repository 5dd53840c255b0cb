"""The service with learned parts (issue 7): `probability` from a configured verifier,
and a projection head served as a model of its own, never mixed with the base model."""

from __future__ import annotations

from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.errors import ModelUnavailable
from app.core.model.pipeline import FacePipeline
from app.core.model.verifier import load_verifier
from app.lab.learning.training import TripletConfig
from app.lab.learning.triplet_run import TripletRun, run_train_triplet
from app.lab.learning.verifier_fit import VerifierConfig
from app.lab.learning.verifier_run import VerifierRun, run_train_verifier
from app.main import create_app
from tests.lab.learning.sets import make_photo_set
from tests.support.factories import people, photo, upload
from tests.support.service import Api, MakeApi


@pytest.fixture(scope="module")
def photo_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_photo_set(tmp_path_factory.mktemp("sets") / "photos")


@pytest.fixture(scope="module")
def verifier_file(tmp_path_factory: pytest.TempPathFactory, photo_set: Path) -> Path:
    """A verifier trained (with the real model) on 10 of the 12 people's photos."""
    folder = tmp_path_factory.mktemp("verifier")
    run = VerifierRun(
        photo_set,
        folder / "verifier.safetensors",
        VerifierConfig(),
        held_out=0.2,
        cache_dir=folder / "cache",
    )
    run_train_verifier(run, Settings(_env_file=None, torch_threads=1))
    return run.out


def compare(api: Api, a: bytes, b: bytes) -> dict[str, object]:
    response = api.post("/v1/compare", "verify", files={"image_a": upload(a), "image_b": upload(b)})
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_probability_appears_when_a_verifier_is_configured(
    make_api: MakeApi, pipeline: FacePipeline, verifier_file: Path
) -> None:
    a, b = people(2)
    plain = compare(make_api(), photo(a), photo(a, 2))
    assert plain["probability"] is None

    api = make_api(verifier=verifier_file)
    same = compare(api, photo(a), photo(a, 2))
    other = compare(api, photo(a), photo(b))
    assert isinstance(same["probability"], float) and isinstance(other["probability"], float)
    assert 0.0 <= other["probability"] < 0.5 < same["probability"] <= 1.0
    # exactly the verifier's output on the pipeline's embeddings
    verifier = load_verifier(verifier_file, pipeline.model)
    expected = verifier.probability(
        pipeline.analyze(photo(a))[0].embedding, pipeline.analyze(photo(a, 2))[0].embedding
    )
    assert same["probability"] == pytest.approx(expected, rel=1e-5)

    identity = api.enroll(photo(a), name=a).json()["identity"]
    verified = api.verify(photo(a, 2), identity_id=identity["id"]).json()
    assert verified["match"] and verified["probability"] == pytest.approx(expected, rel=1e-5)
    rejected = api.verify(photo(b), identity_id=identity["id"]).json()
    assert rejected["probability"] < 0.5


def test_a_verifier_of_another_model_is_refused_at_start(
    make_api: MakeApi, verifier_file: Path, tmp_path: Path
) -> None:
    from app.core.model.checkpoint import load_checkpoint
    from app.core.model.verifier import KIND
    from app.lab.learning.model_files import save_checkpoint

    checkpoint = load_checkpoint(verifier_file, KIND)
    header = {**checkpoint.header, "model": ["dlib-resnet-v1", "0+another"]}
    save_checkpoint(tmp_path / "other.safetensors", KIND, header, checkpoint.tensors)
    with pytest.raises(ModelUnavailable, match="trained on dlib-resnet-v1 0\\+another"):
        make_api(verifier=tmp_path / "other.safetensors")


def test_a_head_is_a_model_of_its_own(
    make_api: MakeApi, settings: Settings, photo_set: Path, tmp_path: Path
) -> None:
    """A gallery enrolled with the base model is not searched with the head (409), and
    the head's own enrolments work."""
    config = TripletConfig(identities_per_batch=4, images_per_identity=2, epochs=2)
    run = TripletRun(photo_set, tmp_path / "head.safetensors", config, cache_dir=tmp_path / "c")
    run_train_triplet(run, Settings(_env_file=None, torch_threads=1))
    base_api = make_api()
    (a,) = people(1)
    enrolled = base_api.enroll(photo(a), name=a).json()["identity"]

    head_settings = settings.model_copy(update={"projection_head": run.out})
    variant = FacePipeline.load(head_settings)
    with TestClient(create_app(head_settings, pipeline=variant)) as client:
        headers = base_api.headers()
        models = client.get("/v1/models", headers=headers).json()
        assert models["active"]["name"] == "dlib-resnet-v1+head"
        assert models["active"]["version"] == variant.model[1]
        response = client.post(
            "/v1/recognize", headers=headers, files={"image": upload(photo(a, 2))}
        )
        assert response.status_code == 409 and response.json()["error"] == "model_mismatch"
        response = client.post(
            "/v1/verify",
            headers=headers,
            files={"image": upload(photo(a, 2))},
            data={"identity_id": enrolled["id"]},
        )
        assert response.status_code == 409 and response.json()["error"] == "model_mismatch"
