"""The pieces of the one pipeline path (app/core/model/stages.py) and the narrow
options the model and style code read instead of the whole Settings."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from app.core.config import Settings
from app.core.errors import MultipleFaces, NoFaceFound
from app.core.model.options import BackboneOptions, DetectorOptions, ModelOptions
from app.core.model.stages import choose_faces, face_results
from app.core.model.types import Detection
from app.core.style.config import StyleConfig


def _face(side: float) -> Detection:
    return Detection((0.0, 0.0, side, side), 0.99, np.zeros((5, 2), np.float32))


def test_the_face_selection_decides_which_faces_go_on() -> None:
    big, small = _face(40), _face(20)
    with pytest.raises(NoFaceFound):
        choose_faces([], "all")
    with pytest.raises(MultipleFaces, match="2 faces were found"):
        choose_faces([big, small], "single")
    assert choose_faces([big], "single") == [big]
    assert choose_faces([big, small], "largest") == [big]
    assert choose_faces([big, small], "all") == [big, small]


def test_face_results_are_one_row_per_face() -> None:
    chips = np.arange(2 * 4 * 4 * 3, dtype=np.uint8).reshape(2, 4, 4, 3)
    embeddings = np.eye(2, 3, dtype=np.float32)
    detections = [_face(40), None]
    results = face_results(detections, embeddings, chips)
    assert [r.detection for r in results] == detections
    assert [r.aligned.detection for r in results] == detections
    np.testing.assert_array_equal(results[1].embedding, embeddings[1])
    np.testing.assert_array_equal(results[1].aligned.chip, chips[1])


def test_the_options_are_the_settings_fields_of_the_same_name(tmp_path: Path) -> None:
    settings = Settings(
        _env_file=None,
        device="cpu",
        flip_fusion=False,
        detection_threshold=0.95,
        facenet_weights=tmp_path / "w.pt",
        stylize_max_steps=7,
    )
    options = ModelOptions.of(settings)
    assert ModelOptions.of(options) is options
    for narrow in (options, options.backbone, options.detector, StyleConfig.of(settings)):
        for field in fields(narrow):
            if field.name not in ("backbone", "detector"):
                assert getattr(narrow, field.name) == getattr(settings, field.name), field.name
    assert options.backbone == BackboneOptions.of(settings)
    assert options.detector == DetectorOptions.of(settings)
    assert options.device == "cpu" and options.cache_dir == settings.cache_dir
