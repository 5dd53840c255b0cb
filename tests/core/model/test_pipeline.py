"""The pipeline's model tag: what is stored with every embedding."""

from __future__ import annotations

from dataclasses import replace

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline


def test_settings_that_change_embeddings_change_the_stored_version() -> None:
    base = FacePipeline.load(Settings(flip_fusion=True, device="cpu"))
    name, version = base.model
    assert name == "dlib-resnet-v1" and version.startswith(base.backbone.version + ".")
    no_flip = FacePipeline(replace(base.options, flip_fusion=False), base.detector, base.backbone)
    assert no_flip.model[0] == name and no_flip.model[1] != version
    # detection settings change which face is found, not how a face is embedded
    detector = replace(base.options.detector, detection_threshold=0.99)
    stricter = FacePipeline(replace(base.options, detector=detector), base.detector, base.backbone)
    assert stricter.model == base.model
    assert stricter.fingerprint() != base.fingerprint()  # but eval caches must not mix them
