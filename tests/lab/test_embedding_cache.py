"""The evaluation cache serves the L2 model version from the un-normalised one's vectors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from app.core.model.backbones.normalised import unnormalised
from app.core.model.pipeline import FacePipeline
from app.lab.evaluation.cache import cache_file_name
from app.lab.evaluation.dataset import load_face_set
from app.lab.evaluation.embedding import _cache_key, embed_set
from tests.lab.learning.sets import make_photo_set


def test_the_l2_version_is_the_cached_base_version_divided_by_its_norm(
    tmp_path: Path, pipeline: FacePipeline
) -> None:
    assert pipeline.backbone is not unnormalised(pipeline.backbone)  # the default is L2
    face_set = load_face_set(make_photo_set(tmp_path / "set"))
    cache = tmp_path / "cache"

    embeddings = embed_set(pipeline, face_set, cache)

    plain = FacePipeline(
        replace(pipeline.options, normalise_embeddings=False),
        pipeline.detector,
        unnormalised(pipeline.backbone),
    )
    # One cache file, the base version's: a set is embedded once for both versions.
    assert [f.name for f in cache.iterdir()] == [cache_file_name(_cache_key(plain, face_set.name))]
    again = embed_set(pipeline, face_set, cache)  # read back from the file
    for path in face_set.images[:6]:
        fresh = pipeline.analyze(path.read_bytes(), faces="largest")[0].embedding
        np.testing.assert_allclose(embeddings[path], fresh, atol=1e-6)
        np.testing.assert_array_equal(again[path], embeddings[path])
        assert abs(float(np.linalg.norm(embeddings[path])) - 1.0) < 1e-6
