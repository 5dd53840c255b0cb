"""A tiny labelled set (12 people x 2 real photos from tests/data/faces) and the real
pipeline, shared by the learning tests."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from tests.lab.learning.sets import make_photo_set

SHARED_FACES = Path(__file__).resolve().parents[3].parent / "shared" / "faces"


@pytest.fixture(scope="session", autouse=True)
def one_thread() -> None:
    torch.set_num_threads(1)  # the CPU is shared


@pytest.fixture(scope="session")
def settings(tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(_env_file=None, torch_threads=1)


@pytest.fixture(scope="session")
def base_pipeline(settings: Settings) -> FacePipeline:
    """The base model heads are trained on: un-normalised (triplet_run.base_pipeline)."""
    return FacePipeline.load(settings.model_copy(update={"normalise_embeddings": False}))


@pytest.fixture(scope="session")
def tiny_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """<set>/<person>/<photo> with two photos of each of the 12 people."""
    return make_photo_set(tmp_path_factory.mktemp("sets") / "tiny")


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the tiny set, so its photos are embedded once per session."""
    return tmp_path_factory.mktemp("cache")
