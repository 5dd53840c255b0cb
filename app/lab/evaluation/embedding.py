"""A labelled set's embeddings through the evaluation cache, as `facesvc eval`,
`facesvc calibrate` and the learning commands take them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np

from app.core.errors import FacesvcError
from app.core.model.backbones.normalised import unnormalised
from app.core.model.pipeline import FacePipeline
from app.lab.evaluation.dataset import FaceSet


def embed_set(
    pipeline: FacePipeline,
    face_set: FaceSet,
    cache_folder: Path | None,
    use_cache: bool = True,
    progress: bool = True,
) -> dict[Path, np.ndarray | None]:
    """Every image's embedding (None: no face), through the evaluation cache that
    `facesvc eval` fills (default folder: <cache_dir>/eval). `progress`: a bar on
    stderr when it is a terminal (the commands' --quiet turns it off)."""
    from app.lab.evaluation.cache import EmbeddingCache, embed_face_set

    network = unnormalised(pipeline.backbone)
    if network is not pipeline.backbone:
        # The L2 version's embeddings are the base version's divided by their norms, so
        # one cache (the base's) serves both versions and a set is embedded only once.
        options = replace(pipeline.options, normalise_embeddings=False)
        plain = FacePipeline(options, pipeline.detector, network)
        raw = embed_set(plain, face_set, cache_folder, use_cache, progress)
        return {path: None if v is None else v / np.linalg.norm(v) for path, v in raw.items()}

    cache = None
    if use_cache:
        folder = cache_folder or pipeline.options.cache_dir / "eval"
        cache = EmbeddingCache(folder, _cache_key(pipeline, face_set.name))

    def embed_one(path: Path) -> np.ndarray | None:
        try:
            return pipeline.analyze(path.read_bytes(), faces="largest")[0].embedding
        except FacesvcError:
            return None  # the protocol counts it as a failed image

    return embed_face_set(face_set, embed_one, cache, progress=progress)


def _cache_key(pipeline: FacePipeline, set_name: str) -> str:
    return f"{set_name}-{pipeline.backbone.name}-{pipeline.fingerprint()}"
