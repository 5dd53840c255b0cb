"""facenet-vggface2's loading path, with a state dict written by the test itself."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from facenet_pytorch import InceptionResnetV1

from app.core.config import Settings
from app.core.errors import ModelUnavailable
from app.core.model.backbones import load_backbone
from app.core.model.backbones.facenet import WEIGHTS_FILE


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A random InceptionResnetV1 saved as the published file is: with its classifier."""
    torch.manual_seed(0)
    model = InceptionResnetV1(pretrained=None, classify=True, num_classes=7)
    path = tmp_path_factory.mktemp("facenet") / WEIGHTS_FILE
    torch.save(model.state_dict(), path)
    return path


def test_loads_a_state_dict_and_embeds_unit_vectors(weights_file: Path) -> None:
    settings = Settings(facenet_weights=weights_file, device="cpu")
    backbone = load_backbone("facenet-vggface2", settings)
    assert (backbone.embedding_size, backbone.input_size, backbone.normalized) == (512, 160, True)
    chips = np.random.default_rng(0).integers(0, 256, size=(3, 160, 160, 3), dtype=np.uint8)
    embeddings = backbone.embed(chips)
    assert embeddings.shape == (3, 512) and embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-5)
    # batching is the caller's: one batch gives what single chips give
    single = np.concatenate([backbone.embed(chips[i : i + 1]) for i in range(3)])
    np.testing.assert_allclose(embeddings, single, atol=1e-5)


def test_the_weights_define_the_output(weights_file: Path, tmp_path: Path) -> None:
    """The file's weights are really used: other weights give other embeddings."""
    torch.manual_seed(1)
    other = tmp_path / WEIGHTS_FILE
    torch.save(InceptionResnetV1(pretrained=None).state_dict(), other)
    chips = np.full((1, 160, 160, 3), 90, dtype=np.uint8)
    first = load_backbone("facenet-vggface2", Settings(facenet_weights=weights_file, device="cpu"))
    second = load_backbone("facenet-vggface2", Settings(facenet_weights=other, device="cpu"))
    assert first.version != second.version
    assert np.abs(first.embed(chips) - second.embed(chips)).max() > 1e-3


def test_missing_weights_name_the_file_and_how_to_get_it(tmp_path: Path) -> None:
    settings = Settings(facenet_weights=tmp_path / "absent.pt")
    with pytest.raises(ModelUnavailable) as error:
        load_backbone("facenet-vggface2", settings)
    assert WEIGHTS_FILE in error.value.detail and "FACESVC_FACENET_WEIGHTS" in error.value.detail


def test_a_file_of_another_network_is_refused(tmp_path: Path) -> None:
    wrong = tmp_path / "wrong.pt"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    with pytest.raises(ModelUnavailable, match="not an InceptionResnetV1"):
        load_backbone("facenet-vggface2", Settings(facenet_weights=wrong))


def test_unknown_model_name() -> None:
    with pytest.raises(ModelUnavailable, match="known models"):
        load_backbone("no-such-model", Settings())
