"""`facesvc train-verifier`: fit the pair verifier on some training identities, calibrate
it (Platt) on the others, and compare it with the plain distance on held-out identities."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.core.config import Settings
from app.core.model.pipeline import FacePipeline
from app.core.model.verifier import PairClassifier, load_verifier, pair_features
from app.lab.evaluation.dataset import FaceSet, load_face_set
from app.lab.evaluation.protocol import pairwise_squared_distances
from app.lab.learning.data import (
    EmbeddingMap,
    LabelledVectors,
    cached_embeddings,
    labelled_vectors,
    split_identities,
    subset,
)
from app.lab.learning.model_files import save_verifier
from app.lab.learning.pairs import Pairs, balanced_pairs
from app.lab.learning.scores import (
    FloatArray,
    expected_calibration_error,
    reliability,
    score_protocol,
)
from app.lab.learning.verifier_fit import VerifierConfig, fit_platt, train_classifier


@dataclass(frozen=True)
class VerifierRun:
    data: Path
    out: Path
    config: VerifierConfig
    held_out: float = 0.5
    # Share of the training identities set aside for Platt scaling; 0 (the default): the
    # maximum-likelihood fit is the calibration (Platt on a set of other identities was
    # measured to make it worse on lfw_dev, docs/learning.md).
    calibration_share: float = 0.0
    impostor_ratio: float = 1.0
    split_seed: int = 0
    cache_dir: Path | None = None
    progress: bool = True  # a bar on stderr (when a terminal) while embedding


def features_of(data: LabelledVectors, pairs: Pairs) -> torch.Tensor:
    vectors = torch.from_numpy(data.vectors)
    return pair_features(vectors[pairs.first], vectors[pairs.second])


def _pairs(face_set: FaceSet, embeddings: EmbeddingMap, ratio: float, seed: int) -> Any:
    data = labelled_vectors(face_set, embeddings)
    pairs = balanced_pairs(data, ratio, seed)
    return features_of(data, pairs), torch.from_numpy(pairs.same)


def run_train_verifier(run: VerifierRun, settings: Settings) -> dict[str, Any]:
    pipeline = FacePipeline.load(settings)  # the active model, with its head if one is set
    face_set = load_face_set(run.data)
    split = split_identities(face_set, run.held_out, run.split_seed)
    fit_names, platt_names = split.train, []
    if run.calibration_share > 0:
        train_all = subset(face_set, split.train, "train")
        inner = split_identities(train_all, run.calibration_share, run.split_seed)
        fit_names, platt_names = inner.train, inner.held_out
    fit_set = subset(face_set, fit_names, "fit")
    platt_set = subset(face_set, platt_names, "platt")
    test_set = subset(face_set, split.held_out, "held-out")
    embeddings = cached_embeddings(pipeline, face_set, run.cache_dir, run.progress)

    features, same = _pairs(fit_set, embeddings, run.impostor_ratio, run.split_seed)
    model = train_classifier(features, same, run.config)
    platt_pairs = 0
    if platt_names:
        platt_features, platt_same = _pairs(platt_set, embeddings, 1.0, run.split_seed)
        fit_platt(model, platt_features, platt_same)
        platt_pairs = int(platt_same.numel())

    header = {
        "model": list(pipeline.model),
        "prior": "even odds (as many impostor as genuine pairs)",
        "training": {
            "data": face_set.name,
            "split": {"held_out": run.held_out, "seed": run.split_seed},
            "calibration_share": run.calibration_share,
            "impostor_ratio": run.impostor_ratio,
            "config": asdict(run.config),
            "fit_pairs": int(same.numel()),
            "platt_pairs": platt_pairs,
        },
    }
    version = save_verifier(run.out, model, header)
    verifier = load_verifier(run.out)  # measured as the service will use it
    report = held_out_figures(verifier.model, test_set, embeddings, run.split_seed)
    report["distance"] = score_protocol(
        test_set, embeddings, pairwise_squared_distances, pipeline.backbone.calibration.tau_verify
    )
    report.update(
        file=str(run.out),
        version=version,
        model=list(pipeline.model),
        training=header["training"],
        identities={
            "fit": len(fit_set.identities),
            "platt": len(platt_set.identities),
            "held_out": len(test_set.identities),
        },
        platt=model.platt.tolist(),
    )
    return report


def held_out_figures(
    model: PairClassifier, test_set: FaceSet, embeddings: EmbeddingMap, seed: int
) -> dict[str, Any]:
    """Reliability on balanced held-out pairs, and the protocol with score = -logit."""
    features, same = _pairs(test_set, embeddings, 1.0, seed)
    with torch.inference_mode():
        probabilities = torch.sigmoid(model(features)).double().numpy()
    table = reliability(probabilities, same.numpy())

    def score(a: FloatArray, b: FloatArray) -> FloatArray:
        ta, tb = torch.from_numpy(a).float(), torch.from_numpy(b).float()
        features = pair_features(ta[:, None, :], tb[None, :, :])
        with torch.inference_mode():
            return -model(features).double().numpy()

    decided = probabilities >= 0.5
    return {
        "reliability": [
            {"count": b.count, "mean_probability": b.mean_probability, "observed": b.observed}
            for b in table
        ],
        "max_decile_gap": max(b.gap for b in table),
        "ece": expected_calibration_error(table),
        "brier": float(np.mean((probabilities - same.numpy()) ** 2)),
        "accuracy_at_half": float(np.mean(decided == same.numpy())),
        "held_out_pairs": int(same.numel()),
        "verifier": score_protocol(test_set, embeddings, score, 0.0),
    }
