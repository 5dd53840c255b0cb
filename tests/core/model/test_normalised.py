"""The L2-normalised version of the default model (FACESVC_NORMALISE_EMBEDDINGS, on by
default) and the un-normalised one the setting serves when off."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.core.config import Settings
from app.core.model.backbones import load_backbone
from app.core.model.backbones.dlib_resnet import CALIBRATION, CALIBRATION_L2
from app.core.model.backbones.normalised import NormalisedBackbone, with_normalisation
from app.core.model.pipeline import FacePipeline
from tests.support.factories import people, photo


@pytest.fixture(scope="module")
def normalised() -> FacePipeline:
    return FacePipeline.load(Settings(_env_file=None, device="cpu"))


@pytest.fixture(scope="module")
def plain(normalised: FacePipeline) -> FacePipeline:
    """Setting off, built from a freshly loaded backbone as a process of today would."""
    options = replace(normalised.options, normalise_embeddings=False)
    return FacePipeline(
        options, normalised.detector, load_backbone("dlib-resnet-v1", options.backbone)
    )


def test_the_default_is_the_normalised_version_with_its_own_thresholds(
    normalised: FacePipeline, plain: FacePipeline
) -> None:
    assert Settings(_env_file=None).normalise_embeddings
    assert isinstance(normalised.backbone, NormalisedBackbone) and normalised.backbone.normalized
    assert not plain.backbone.normalized
    name, version = normalised.model
    assert name == plain.model[0] == "dlib-resnet-v1"  # same network, same name
    assert version == with_normalisation(plain.model[1]) != plain.model[1]
    assert "+l2." in version and "+l2" not in plain.model[1]
    assert normalised.backbone.calibration == CALIBRATION_L2
    assert plain.backbone.calibration == CALIBRATION
    assert normalised.fingerprint() != plain.fingerprint()  # evaluation caches do not mix
    # squared distances between unit vectors: the thresholds are on that scale
    assert 0 < CALIBRATION_L2.tau_identify < CALIBRATION_L2.tau_verify < 4


def test_setting_off_is_the_version_of_before(plain: FacePipeline) -> None:
    """The un-normalised version string is the backbone's own version plus the settings
    digest, as before the option existed; its embedding is the raw flip-fused mean."""
    raw = plain.backbone
    assert plain.model[1].startswith(f"{raw.version}.") and raw.version.count("+") == 1
    (face,) = plain.analyze(photo(people(1)[0]))
    chip = face.aligned.chip
    straight = raw.embed(chip[None])[0]
    mirrored = raw.embed(np.ascontiguousarray(chip[:, ::-1])[None])[0]
    np.testing.assert_allclose(face.embedding, (straight + mirrored) / 2, atol=1e-6)
    assert not np.isclose(np.linalg.norm(face.embedding), 1.0, atol=1e-2)


def test_normalised_embeddings_have_unit_norm(
    normalised: FacePipeline, plain: FacePipeline
) -> None:
    for person in people(3):
        (face,) = normalised.analyze(photo(person))
        (before,) = plain.analyze(photo(person))
        assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-6)
        # the final (flip-fused) embedding normalised, once
        expected = before.embedding / np.linalg.norm(before.embedding)
        np.testing.assert_allclose(face.embedding, expected, atol=1e-6)
    no_flip = FacePipeline(
        replace(normalised.options, flip_fusion=False), normalised.detector, normalised.backbone
    )
    (face,) = no_flip.analyze(photo(people(1)[0]))
    assert np.linalg.norm(face.embedding) == pytest.approx(1.0, abs=1e-6)
    assert no_flip.model[1] not in (normalised.model[1], plain.model[1])


def test_switching_back_unwraps_and_a_normalising_backbone_is_not_wrapped(
    normalised: FacePipeline, plain: FacePipeline, tmp_path: Path
) -> None:
    off = replace(normalised.options, normalise_embeddings=False)
    again = FacePipeline(off, normalised.detector, normalised.backbone)
    assert again.model == plain.model and not isinstance(again.backbone, NormalisedBackbone)
    wrapped_twice = FacePipeline(normalised.options, normalised.detector, normalised.backbone)
    assert wrapped_twice.model == normalised.model
    pytest.importorskip("onnxruntime")
    from tests.core.model.test_arcface import Tiny, export

    model_file = export(Tiny(), tmp_path / "tiny.onnx")
    arcface = FacePipeline.load(Settings(_env_file=None, arcface_onnx=model_file), "arcface-onnx")
    assert arcface.backbone.normalized and not isinstance(arcface.backbone, NormalisedBackbone)
    assert "+l2" not in arcface.model[1]
