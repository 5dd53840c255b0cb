"""`facesvc reembed`: re-embedding the gallery with another model from the stored crops.

The other model is arcface-onnx with a tiny random ONNX network (tests/core/model/test_arcface.py):
a different model name and version, so the tags show what was re-embedded.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from sqlalchemy import select
from sqlalchemy.orm import undefer

from app.cli import main
from app.core.config import Settings
from app.core.model.align import align_face
from app.core.model.backbones.normalised import with_normalisation
from app.core.model.pipeline import FacePipeline
from app.core.store.rows.identities import Face
from tests.support.factories import people, photo
from tests.support.service import Api, MakeApi

pytest.importorskip("onnxruntime")
from tests.core.model.test_arcface import Tiny, export


@pytest.fixture(scope="module")
def model_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(Tiny(), tmp_path_factory.mktemp("reembed") / "tiny.onnx")


@pytest.fixture(scope="module")
def target(model_file: Path) -> FacePipeline:
    return FacePipeline.load(Settings(_env_file=None, arcface_onnx=model_file), "arcface-onnx")


@pytest.fixture
def cli_env(database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FACESVC_DATABASE_URL", database_url)
    monkeypatch.setenv("FACESVC_AUTO_MIGRATE", "true")


def independent_embedding(target: FacePipeline, crop: bytes) -> np.ndarray:
    """The crop's embedding computed apart from the command's code path: Pillow decodes,
    the face is aligned by hand, and the torch network the ONNX file was exported from
    embeds the chip and its mirror image; each is L2-normalised, then their mean (flip
    fusion by hand)."""
    image = np.asarray(Image.open(io.BytesIO(crop)).convert("RGB"))
    detection = target.detector.detect(image)[0]  # largest first
    chip = align_face(image, detection, target.backbone.alignment).chip
    both = np.stack([chip, chip[:, ::-1]]).astype(np.float32)
    x = torch.from_numpy((both - 127.5) / 127.5).permute(0, 3, 1, 2)
    with torch.no_grad():
        out = Tiny().eval()(x).numpy()
    fused = (out / np.linalg.norm(out, axis=1, keepdims=True)).mean(axis=0)
    return fused / np.linalg.norm(fused)


def faces(api: Api) -> list[dict[str, Any]]:
    async def query() -> list[dict[str, Any]]:
        async with api.app.state.sessions() as session:
            rows = await session.scalars(
                select(Face).options(undefer(Face.thumbnail)).order_by(Face.id)
            )
            return [
                {
                    "id": f.id,
                    "identity_id": str(f.identity_id),
                    "model": (f.model_name, f.model_version),
                    "dim": f.dim,
                    "embedding": f.embedding,
                    "thumbnail": f.thumbnail,
                }
                for f in rows.all()
            ]

    result: list[dict[str, Any]] = api.run(query)
    return result


def enroll(api: Api, count: int) -> list[str]:
    ids = []
    for person in people(count):
        r = api.enroll(photo(person), name=person)
        assert r.status_code == 201, r.text
        ids.append(r.json()["identity"]["id"])
    return ids


@pytest.mark.usefixtures("cli_env")
def test_photos_not_kept_changes_nothing(
    api: Api, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    ids = enroll(api, 2)
    before = faces(api)
    assert all(f["thumbnail"] is None for f in before)
    capsys.readouterr()

    assert main(["reembed", "--model-file", str(model_file)]) == 2
    out, err = capsys.readouterr()
    assert "2 faces of 2 identities cannot be re-embedded" in err
    assert "photos were not kept" in err and "FACESVC_KEEP_THUMBNAILS" in err
    assert all(identity in err for identity in ids)
    assert "nothing changed" in err
    assert faces(api) == before

    # --skip-missing re-embeds what can be: here nothing, and says so
    assert main(["reembed", "--model-file", str(model_file), "--skip-missing"]) == 0
    out, _ = capsys.readouterr()
    assert "re-embedded 0 faces" in out and "2 left without a stored photo" in out
    assert faces(api) == before


@pytest.mark.usefixtures("cli_env")
def test_reembeds_from_the_stored_crops(
    make_api: MakeApi,
    model_file: Path,
    target: FacePipeline,
    pipeline: FacePipeline,
    capsys: pytest.CaptureFixture[str],
) -> None:
    api = make_api(keep_thumbnails=True)
    enroll(api, 2)
    before = faces(api)
    source = pipeline.model
    assert [f["model"] for f in before] == [source, source]
    capsys.readouterr()

    assert main(["reembed", "--model-file", str(model_file)]) == 0
    out, _ = capsys.readouterr()
    assert "2 with a stored crop, 0 without" in out
    assert "re-embedded 2 faces with arcface-onnx" in out

    after = faces(api)
    model = target.model
    assert [f["id"] for f in after] == [f["id"] for f in before]
    for face in after:
        assert face["model"] == model and face["dim"] == 16
        stored = np.frombuffer(face["embedding"], dtype="<f4")
        np.testing.assert_allclose(
            stored, independent_embedding(target, face["thumbnail"]), atol=1e-4
        )

    # the service still on the old model refuses to search the re-embedded gallery
    r = api.recognize(photo(people(1)[0], 2))
    assert r.status_code == 409 and r.json()["error"] == "model_mismatch"

    # nothing left to do
    assert main(["reembed", "--model-file", str(model_file)]) == 0
    assert "0 faces are embedded with another model" in capsys.readouterr().out


@pytest.mark.usefixtures("cli_env")
def test_dry_run_changes_nothing(
    make_api: MakeApi, model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    api = make_api(keep_thumbnails=True)
    enroll(api, 2)
    before = faces(api)
    capsys.readouterr()
    assert main(["reembed", "--model-file", str(model_file), "--dry-run"]) == 0
    out, _ = capsys.readouterr()
    assert "2 faces are embedded with another model" in out
    assert "2 with a stored crop, 0 without" in out and "dry run" in out
    assert faces(api) == before


@pytest.mark.usefixtures("cli_env")
def test_a_gallery_of_the_unnormalised_version_until_and_after_reembed(
    make_api: MakeApi, pipeline: FacePipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """A gallery enrolled before normalisation was the default: the new default refuses to
    search it (409) and /v1/models says what to do; the setting off keeps serving it;
    `facesvc reembed` moves it to the normalised version, which then finds its people."""
    old_api = make_api(keep_thumbnails=True, normalise_embeddings=False)
    ids = enroll(api=old_api, count=2)
    enrolled = faces(old_api)
    old_model = enrolled[0]["model"]
    assert old_model[0] == pipeline.model[0] and old_model[1] != pipeline.model[1]
    assert with_normalisation(old_model[1]) == pipeline.model[1]
    probe = photo(people(1)[0], 2)
    r = old_api.recognize(probe)
    assert r.status_code == 200 and r.json()["faces"][0]["identity"]["id"] == ids[0]

    new_api = make_api(keep_thumbnails=True)
    r = new_api.recognize(probe)
    assert r.status_code == 409 and r.json()["error"] == "model_mismatch"
    assert "facesvc reembed" in r.json()["detail"]
    active = new_api.get("/v1/models").json()["active"]
    assert (active["version"], active["normalized"]) == (pipeline.model[1], True)
    assert active["gallery_faces"] == 0
    (other,) = active["other_models"]
    assert (other["name"], other["version"], other["faces"]) == (*old_model, 2)
    assert "facesvc reembed" in other["action"]
    assert "FACESVC_NORMALISE_EMBEDDINGS=false" in other["action"]
    assert new_api.get("/v1/models", "verify").json()["active"]["other_models"] is None
    capsys.readouterr()

    assert main(["reembed"]) == 0  # the default settings: the normalised version
    out, _ = capsys.readouterr()
    assert f"re-embedded 2 faces with {pipeline.model[0]} {pipeline.model[1]}" in out
    before = {f["id"]: np.frombuffer(f["embedding"], dtype="<f4") for f in enrolled}
    for face in faces(new_api):
        assert face["model"] == pipeline.model
        stored = np.frombuffer(face["embedding"], dtype="<f4")
        assert np.linalg.norm(stored) == pytest.approx(1.0, abs=1e-5)
        # the stored chip embedded as it is: only its JPEG separates it from the original
        old = before[face["id"]] / np.linalg.norm(before[face["id"]])
        assert float(((stored - old) ** 2).sum()) < 0.002

    restarted = make_api(keep_thumbnails=True)
    r = restarted.recognize(probe)
    assert r.status_code == 200 and r.json()["faces"][0]["identity"]["id"] == ids[0]
    active = restarted.get("/v1/models").json()["active"]
    assert active["gallery_faces"] == 2 and active["other_models"] == []
    # the setting off now meets the normalised gallery: refused, and told how to serve it
    r = make_api(normalise_embeddings=False).get("/v1/models").json()["active"]
    assert "FACESVC_NORMALISE_EMBEDDINGS=true" in r["other_models"][0]["action"]
