"""arcface-onnx: loading, preprocessing, batching, sidecar, errors, model tagging.

Every model here is a tiny torch net exported to ONNX by the test itself; real ArcFace
weights are used only when FACESVC_TEST_ARCFACE_ONNX points at a file.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from torch import nn

from app.cli import main
from app.core.config import Settings
from app.core.errors import ModelUnavailable
from app.core.model.backbones import load_backbone
from app.core.model.backbones.arcface import (
    LICENCE,
    UNCALIBRATED,
    ArcFaceOnnxBackbone,
    ModelConfig,
    load_arcface_onnx,
)
from app.core.model.backbones.dlib_resnet import CALIBRATION_L2
from app.core.model.options import BackboneOptions
from app.core.model.pipeline import FacePipeline
from app.core.model.templates import ARCFACE_112
from app.main import create_app

pytest.importorskip("onnxruntime")

FACES = Path(__file__).parents[2] / "data" / "faces"


class Reveal(nn.Module):
    """Outputs its input pixels (NCHW, flattened) and a constant 1: after L2
    normalisation the ratio pixel / 1 still shows the exact mean and std applied."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat([x.flatten(1), torch.ones_like(x[:, :1, 0, 0])], dim=1)


class Tiny(nn.Module):
    """A small convolutional embedder (random weights, fixed seed)."""

    def __init__(self, dim: int = 16) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.Sequential(
            nn.Conv2d(3, 8, 3, stride=2, padding=1),  # 112 -> 56, a multiple of 4
            nn.BatchNorm2d(8),
            nn.PReLU(8),
            nn.AdaptiveAvgPool2d(4),
            nn.Flatten(),
            nn.Linear(8 * 16, dim),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)


def export(net: nn.Module, path: Path, size: int = 112, dynamic_batch: bool = True) -> Path:
    dummy = torch.zeros(2 if dynamic_batch else 1, 3, size, size)
    axes = {"input": {0: "n"}, "output": {0: "n"}} if dynamic_batch else None
    torch.onnx.export(
        net.eval(),
        (dummy,),
        str(path),
        input_names=["input"],
        output_names=["output"],
        dynamic_axes=axes,
        dynamo=False,
    )
    return path


def backbone_for(path: Path) -> ArcFaceOnnxBackbone:
    return load_arcface_onnx(
        BackboneOptions.of(Settings(_env_file=None, arcface_onnx=path, device="cpu"))
    )


def chips(count: int, size: int = 112, seed: int = 7) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (count, size, size, 3), dtype=np.uint8)


@pytest.fixture(scope="module")
def tiny_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(Tiny(), tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="module")
def reveal_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return export(Reveal(), tmp_path_factory.mktemp("reveal") / "reveal.onnx")


def expected_reveal(batch: np.ndarray, mean: float, std: float, bgr: bool = False) -> np.ndarray:
    pixels = batch[..., ::-1] if bgr else batch
    x = (pixels.astype(np.float64) - mean) / std
    raw = np.concatenate([x.transpose(0, 3, 1, 2).reshape(len(x), -1), np.ones((len(x), 1))], 1)
    return raw / np.linalg.norm(raw, axis=1, keepdims=True)


# ---------------------------------------------------------------- loading


def test_loads_by_name_and_reads_the_embedding_size(tiny_file: Path) -> None:
    settings = Settings(_env_file=None, arcface_onnx=tiny_file, device="cpu")
    backbone = load_backbone("arcface-onnx", settings)
    assert backbone.name == "arcface-onnx"
    assert backbone.embedding_size == 16
    assert backbone.input_size == 112 and backbone.normalized
    assert backbone.licence == LICENCE and "non-commercial" in backbone.licence
    np.testing.assert_array_equal(backbone.alignment.template, ARCFACE_112.template)


def test_version_is_the_sha256_prefix(tiny_file: Path) -> None:
    import hashlib

    backbone = backbone_for(tiny_file)
    assert backbone.version == hashlib.sha256(tiny_file.read_bytes()).hexdigest()[:12]
    assert backbone.calibration == UNCALIBRATED
    assert backbone.calibration.source.startswith("not calibrated")


def test_unset_model_file_says_which_setting(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable, match="FACESVC_ARCFACE_ONNX"):
        load_backbone("arcface-onnx", Settings(_env_file=None, device="cpu"))


def test_missing_model_file_is_model_unavailable(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.onnx"
    with pytest.raises(ModelUnavailable, match=r"model file not found: .*nowhere\.onnx"):
        backbone_for(missing)


def test_an_input_size_the_config_does_not_match_is_refused(tmp_path: Path) -> None:
    model = export(Reveal(), tmp_path / "small.onnx", size=64)
    with pytest.raises(ModelUnavailable, match=r"not NCHW \[3, 112, 112\].*small\.json"):
        backbone_for(model)


def test_a_file_that_is_not_onnx_is_model_unavailable(tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.onnx"
    bogus.write_bytes(b"not a model")
    with pytest.raises(ModelUnavailable, match="not a loadable ONNX model"):
        backbone_for(bogus)


# ---------------------------------------------------------------- preprocessing


def test_standard_preprocessing_is_rgb_nchw_minus_127_5_over_127_5(reveal_file: Path) -> None:
    backbone = backbone_for(reveal_file)
    assert backbone.embedding_size == 3 * 112 * 112 + 1
    batch = chips(2)
    np.testing.assert_allclose(
        backbone.embed(batch), expected_reveal(batch, 127.5, 127.5), atol=1e-6
    )


def test_sidecar_sets_preprocessing_and_changes_the_version(tmp_path: Path) -> None:
    model = export(Reveal(), tmp_path / "reveal64.onnx", size=64)
    config = {"mean": [120, 110, 100], "std": 64, "input_size": 64, "color_order": "BGR"}
    (tmp_path / "reveal64.json").write_text(json.dumps(config))
    backbone = backbone_for(model)
    assert backbone.input_size == 64 and backbone.alignment.size == 64
    np.testing.assert_allclose(
        backbone.alignment.template, ARCFACE_112.template * 64 / 112, atol=1e-9
    )
    batch = chips(3, size=64)
    bgr = batch[..., ::-1]
    x = (bgr.astype(np.float64) - np.array([120, 110, 100])) / 64
    raw = np.concatenate([x.transpose(0, 3, 1, 2).reshape(3, -1), np.ones((3, 1))], 1)
    expected = raw / np.linalg.norm(raw, axis=1, keepdims=True)
    np.testing.assert_allclose(backbone.embed(batch), expected, atol=1e-6)
    assert backbone.version.count("+") == 1  # sha prefix + preprocessing digest


def test_sidecar_carries_measured_thresholds(tiny_file: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    model.write_bytes(tiny_file.read_bytes())
    plain_version = backbone_for(model).version
    (tmp_path / "tiny.json").write_text(
        json.dumps({"tau_verify": 1.3, "far_verify": 1e-3, "tau_identify": 1.1})
    )
    backbone = backbone_for(model)
    assert backbone.version == plain_version  # thresholds do not change embeddings
    cal = backbone.calibration
    assert (cal.tau_verify, cal.far_verify, cal.tau_identify) == (1.3, 1e-3, 1.1)
    assert np.isnan(cal.fpir_identify)
    assert "tiny.json" in cal.source


def test_a_misspelt_sidecar_key_is_refused(tiny_file: Path, tmp_path: Path) -> None:
    model = tmp_path / "tiny.onnx"
    model.write_bytes(tiny_file.read_bytes())
    (tmp_path / "tiny.json").write_text(json.dumps({"colour_order": "BGR"}))
    with pytest.raises(ModelUnavailable, match="invalid arcface-onnx sidecar"):
        backbone_for(model)


def test_default_config_is_the_standard_one() -> None:
    config = ModelConfig()
    assert (config.mean, config.std, config.input_size, config.color_order) == (
        127.5,
        127.5,
        112,
        "RGB",
    )


# ---------------------------------------------------------------- batching, normalisation


def test_batch_equals_singles_and_outputs_are_unit_vectors(tiny_file: Path) -> None:
    backbone = backbone_for(tiny_file)
    batch = chips(5)
    together = backbone.embed(batch)
    one_by_one = np.concatenate([backbone.embed(batch[i : i + 1]) for i in range(5)])
    assert together.shape == (5, 16) and together.dtype == np.float32
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-6)
    assert backbone.embed([]).shape == (0, 16)


def test_an_export_with_a_fixed_batch_of_one_still_takes_batches(
    tiny_file: Path, tmp_path: Path
) -> None:
    fixed = backbone_for(export(Tiny(), tmp_path / "fixed.onnx", dynamic_batch=False))
    batch = chips(3)
    np.testing.assert_allclose(fixed.embed(batch), backbone_for(tiny_file).embed(batch), atol=1e-5)


def test_wrong_chip_size_is_refused(tiny_file: Path) -> None:
    with pytest.raises(ValueError, match=r"expected \(n, 112, 112, 3\)"):
        backbone_for(tiny_file).embed(chips(1, size=150))


# ---------------------------------------------------------------- command line


def test_cli_model_file_selects_arcface(
    tiny_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(
        [
            "embed",
            str(FACES / "Aaron_Sorkin_0001.jpg"),
            "--model-file",
            str(tiny_file),
            "--device",
            "cpu",
            "--json",
        ]
    )
    rows = json.loads(capsys.readouterr().out)
    assert code == 0 and len(rows[0]["embedding"]) == 16


# ---------------------------------------------------------------- the service


@pytest.fixture(scope="module")
def dlib_pipeline() -> FacePipeline:
    return FacePipeline.load(Settings(_env_file=None, device="cpu"))


def test_a_dlib_gallery_is_never_searched_with_arcface(
    tiny_file: Path, tmp_path: Path, dlib_pipeline: FacePipeline
) -> None:
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite:///{tmp_path / 'facesvc.db'}",
        auto_migrate=True,
        auth_mode="open",
        arcface_onnx=tiny_file,
        device="cpu",
    )
    photo = (FACES / "Aaron_Sorkin_0001.jpg").read_bytes()
    probe = (FACES / "Aaron_Sorkin_0002.jpg").read_bytes()
    with TestClient(create_app(settings, pipeline=dlib_pipeline)) as client:
        r = client.post(
            "/v1/identities",
            files={"image": ("a.jpg", photo, "image/jpeg")},
            data={"name": "Aaron", "external_id": "aaron"},
        )
        assert r.status_code == 201, r.text

    arcface = FacePipeline(settings, dlib_pipeline.detector, backbone_for(tiny_file))
    with TestClient(create_app(settings, pipeline=arcface)) as client:
        r = client.post("/v1/recognize", files={"image": ("p.jpg", probe, "image/jpeg")})
        assert r.status_code == 409 and r.json()["error"] == "model_mismatch", r.text
        r = client.post(
            "/v1/verify",
            files={"image": ("p.jpg", probe, "image/jpeg")},
            data={"external_id": "aaron"},
        )
        assert r.status_code == 409 and r.json()["error"] == "model_mismatch", r.text
        assert "dlib-resnet-v1" in r.json()["detail"]

        models = client.get("/v1/models").json()
        assert models["active"]["name"] == "arcface-onnx"
        assert models["active"]["licence"] == LICENCE
        assert models["active"]["embedding_size"] == 16
        assert models["active"]["calibration_source"].startswith("not calibrated")
        by_name = {m["name"]: m for m in models["configured"]}
        assert set(by_name) == {"arcface-onnx", "dlib-resnet-v1"}
        dlib = by_name["dlib-resnet-v1"]
        assert dlib["licence"] == "public domain weights (dlib)"
        assert dlib["embedding_size"] == 128
        assert dlib["verify"]["default"] > 0 and dlib["identify"]["default"] > 0
        # the thresholds dlib would serve with these settings: its L2-normalised version's
        assert dlib["verify"]["default"] == CALIBRATION_L2.tau_verify
        (other,) = models["active"]["other_models"]
        assert (other["name"], other["faces"]) == ("dlib-resnet-v1", 1)
        assert other["action"].startswith("`facesvc reembed` re-embeds them")


# ---------------------------------------------------------------- real weights


@pytest.fixture(scope="module")
def real_model() -> Path:
    value = os.environ.get("FACESVC_TEST_ARCFACE_ONNX")
    if not value or not Path(value).is_file():
        pytest.skip("FACESVC_TEST_ARCFACE_ONNX does not point at an ArcFace ONNX file")
    return Path(value)


def test_real_weights_separate_people(real_model: Path, dlib_pipeline: FacePipeline) -> None:
    settings = Settings(_env_file=None, arcface_onnx=real_model, device="cpu")
    pipeline = FacePipeline(
        settings, dlib_pipeline.detector, load_arcface_onnx(BackboneOptions.of(settings))
    )
    assert pipeline.backbone.embedding_size >= 128

    def embed(name: str) -> np.ndarray:
        return pipeline.analyze((FACES / name).read_bytes(), faces="largest")[0].embedding

    a1, a2 = embed("Aaron_Sorkin_0001.jpg"), embed("Aaron_Sorkin_0002.jpg")
    b1 = embed("LeAnn_Rimes_0001.jpg")
    same = float(((a1 - a2) ** 2).sum())
    different = float(((a1 - b1) ** 2).sum())
    assert same < 1.0 < different, (same, different)
