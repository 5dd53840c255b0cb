"""Fill the evaluation cache of the L2-normalised default model from the un-normalised
one's: its embeddings are the same flip-fused vectors divided by their norms, so a set
embedded once need not be embedded again (lfw_dev takes about 45 minutes on a busy CPU).
A sample of images is embedded by the pipeline itself and must agree to 1e-6.

    python tools/seed_l2_eval_cache.py ../shared/faces/lfw_dev ../shared/faces/orl
    facesvc eval --data ../shared/faces/lfw_dev --json     # now reads the seeded cache
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.lab.evaluation.cache import MISSING, EmbeddingCache
from app.lab.evaluation.dataset import load_face_set
from app.lab.evaluation.embedding import _cache_key

SAMPLE = 12


def seed(data: Path, normalised: FacePipeline, plain: FacePipeline) -> None:
    face_set = load_face_set(data)
    folder = normalised.options.cache_dir / "eval"
    source = EmbeddingCache(folder, _cache_key(plain, face_set.name))
    target = EmbeddingCache(folder, _cache_key(normalised, face_set.name))
    paths = face_set.images
    copied = 0
    for path in paths:
        vector = source.get(path)
        if vector is MISSING:
            continue
        target.put(path, None if vector is None else vector / np.linalg.norm(vector))
        copied += 1
    checked = worst = 0.0
    for path in paths[:: max(1, len(paths) // SAMPLE)][:SAMPLE]:
        cached = target.get(path)
        if cached is MISSING or cached is None:
            continue
        fresh = normalised.analyze(path.read_bytes(), faces="largest")[0].embedding
        worst = max(worst, float(np.abs(fresh - cached).max()))
        checked += 1
    if worst > 1e-6:
        raise SystemExit(f"{face_set.name}: the pipeline differs from the seed by {worst}")
    target.save()
    print(
        f"{face_set.name}: {copied} of {len(paths)} seeded, {checked:.0f} re-embedded, "
        f"max difference {worst:.1e}"
    )


def main() -> None:
    normalised = FacePipeline.load(Settings(normalise_embeddings=True))
    plain = FacePipeline(
        replace(normalised.options, normalise_embeddings=False),
        normalised.detector,
        normalised.backbone,
    )
    for data in sys.argv[1:]:
        seed(Path(data), normalised, plain)


if __name__ == "__main__":
    main()
