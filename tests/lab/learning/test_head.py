"""The projection head, its versioned file, and the model variant the service loads."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.config import Settings
from app.core.errors import ModelUnavailable
from app.core.model.backbones.base import Calibration
from app.core.model.backbones.projected import KIND, ProjectionHead
from app.core.model.checkpoint import load_checkpoint
from app.core.model.pipeline import FacePipeline
from app.lab.evaluation.dataset import load_face_set
from app.lab.learning import model_files
from app.lab.learning.data import split_identities
from app.lab.learning.training import TripletConfig
from app.lab.learning.triplet_run import TripletRun, run_train_triplet
from tests.support.factories import photo

CALIBRATION = Calibration(0.2, 1e-3, 0.9, 0.1, 1e-2, 0.3, 6, "test")


def save_head(path: Path, head: ProjectionHead, model: tuple[str, str]) -> str:
    header = {
        "model": list(model),
        "dim": head.dim,
        "hidden": head.hidden,
        "calibration": model_files.calibration_header(CALIBRATION),
    }
    return model_files.save_head(path, head, header, {})


def perturbed_head(seed: int, hidden: int = 0) -> ProjectionHead:
    head = ProjectionHead(128, hidden)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        head.linear.weight.add_(0.1 * torch.randn(128, 128, generator=generator))
    return head


def test_the_head_starts_as_normalisation() -> None:
    x = np.random.default_rng(0).normal(size=(5, 128)).astype(np.float32)
    for hidden in (0, 16):
        out = ProjectionHead(128, hidden).project(x)
        np.testing.assert_allclose(out, x / np.linalg.norm(x, axis=1, keepdims=True), atol=1e-6)


def test_file_version_is_its_sha256_and_differs_per_training(tmp_path: Path) -> None:
    import hashlib

    model = ("m", "1")
    first = save_head(tmp_path / "a.safetensors", perturbed_head(1), model)
    second = save_head(tmp_path / "b.safetensors", perturbed_head(2), model)
    assert first != second
    digest = hashlib.sha256((tmp_path / "a.safetensors").read_bytes()).hexdigest()
    assert first == digest[:12]
    loaded = load_checkpoint(tmp_path / "a.safetensors", KIND)
    assert loaded.version == first and loaded.header["model"] == ["m", "1"]
    with pytest.raises(ModelUnavailable, match="not a verifier file"):
        load_checkpoint(tmp_path / "a.safetensors", "verifier")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(ModelUnavailable, match="cannot read"):
        load_checkpoint(tmp_path / "junk.safetensors", KIND)


def test_the_service_loads_a_head_as_a_model_of_its_own(
    tmp_path: Path, settings: Settings, base_pipeline: FacePipeline
) -> None:
    base = base_pipeline.backbone
    head = perturbed_head(3)
    version = save_head(tmp_path / "head.safetensors", head, (base.name, base.version))
    plain = settings.model_copy(update={"flip_fusion": False})
    variant = FacePipeline.load(
        plain.model_copy(update={"projection_head": tmp_path / "head.safetensors"})
    )
    name, stored_version = variant.model
    assert name == "dlib-resnet-v1+head"
    assert stored_version.startswith(f"{base.version}+head.{version}.")
    assert variant.model != base_pipeline.model
    assert variant.backbone.calibration == CALIBRATION
    # The variant's embedding is the head applied to the base model's.
    image = photo("Aaron_Sorkin")
    got = variant.analyze(image)[0].embedding
    base_plain = FacePipeline(plain, base_pipeline.detector, base)
    expected = head.project(base_plain.analyze(image)[0].embedding[None])[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)
    assert np.linalg.norm(got) == pytest.approx(1.0, abs=1e-5)


def test_a_head_trained_on_another_model_is_refused(tmp_path: Path, settings: Settings) -> None:
    save_head(tmp_path / "head.safetensors", perturbed_head(4), ("dlib-resnet-v1", "0+other"))
    with pytest.raises(ModelUnavailable, match="was trained on dlib-resnet-v1 0\\+other"):
        FacePipeline.load(
            settings.model_copy(update={"projection_head": tmp_path / "head.safetensors"})
        )


@pytest.fixture(scope="module")
def held_out_auc(tiny_set: Path, base_pipeline: FacePipeline) -> float:
    """ROC AUC of the base model on the held-out people of the default split, apart from
    the evaluation code: P(a genuine distance < an impostor distance), ties counting half."""
    split = split_identities(load_face_set(tiny_set), 0.5, 0)
    people = [
        (name, base_pipeline.analyze(path.read_bytes(), faces="largest")[0].embedding)
        for name in split.held_out
        for path in sorted((tiny_set / name).iterdir())
    ]
    genuine, impostor = [], []
    for i, (name_a, a) in enumerate(people):
        for name_b, b in people[i + 1 :]:
            (genuine if name_a == name_b else impostor).append(float(((a - b) ** 2).sum()))
    g, n = np.array(genuine)[:, None], np.array(impostor)[None, :]
    assert g.size == 6 and n.size == 60
    return float((g < n).mean() + 0.5 * (g == n).mean())


@pytest.mark.parametrize("mining", ["batch-hard", "semi-hard", "random"])
def test_train_triplet_on_a_tiny_set(
    tmp_path: Path,
    settings: Settings,
    tiny_set: Path,
    tiny_cache: Path,
    mining: str,
    held_out_auc: float,
) -> None:
    config = TripletConfig(mining=mining, identities_per_batch=3, images_per_identity=2, epochs=3)  # type: ignore[arg-type]
    run = TripletRun(tiny_set, tmp_path / "head.safetensors", config, cache_dir=tiny_cache)
    report = run_train_triplet(run, settings)
    assert [stats["epoch"] for stats in report["history"]] == [1, 2, 3]
    assert all(0.0 <= stats["active_fraction"] <= 1.0 for stats in report["history"])
    assert report["split"]["held_out_identities"] == 6
    for key in ("before", "identity_head", "after"):
        assert report[key]["images"] == 12  # the held-out identities only
    # "before" is the base model on the held-out people: the AUC computed here by hand.
    assert report["before"]["roc_auc"] == pytest.approx(held_out_auc, abs=1e-9)
    checkpoint = load_checkpoint(run.out, KIND)
    assert checkpoint.version == report["version"]
    assert checkpoint.header["training"]["config"]["mining"] == mining
    variant = FacePipeline.load(settings.model_copy(update={"projection_head": run.out}))
    assert variant.model[0] == "dlib-resnet-v1+head"


def test_train_the_last_blocks_on_a_tiny_set(
    tmp_path: Path,
    settings: Settings,
    tiny_set: Path,
    tiny_cache: Path,
    base_pipeline: FacePipeline,
) -> None:
    """The GPU path, run on the CPU with the same code: two epochs, two blocks."""
    config = TripletConfig(
        identities_per_batch=3, images_per_identity=2, epochs=2, learning_rate=1e-2
    )
    run = TripletRun(
        tiny_set,
        tmp_path / "blocks.safetensors",
        config,
        target="blocks",
        blocks=2,
        cache_dir=tiny_cache,
    )
    report = run_train_triplet(run, settings)
    assert len(report["history"]) == 2
    checkpoint = load_checkpoint(run.out, KIND)
    tuned = {k for k in checkpoint.tensors if k.startswith("backbone.")}
    assert "backbone.fc.weight" in tuned and "backbone.blocks.13.conv2.weight" in tuned
    assert not any(k.startswith("backbone.blocks.11.") for k in tuned)  # frozen
    variant = FacePipeline.load(settings.model_copy(update={"projection_head": run.out}))
    network = variant.backbone.base.model  # type: ignore[attr-defined]
    base_network = base_pipeline.backbone.model  # type: ignore[attr-defined]
    assert not torch.equal(network.fc.weight, base_network.fc.weight)
    assert torch.equal(network.blocks[0].conv1.weight, base_network.blocks[0].conv1.weight)
    assert report["after"]["images"] == 12
