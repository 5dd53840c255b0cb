"""The pair verifier: features, training, calibration (reliability per decile on pairs of
held-out identities), its versioned file, and the protocol with a learned score."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from app.core.config import Settings
from app.core.errors import ModelUnavailable
from app.core.model.verifier import load_verifier, pair_features
from app.lab.evaluation.dataset import load_face_set
from app.lab.evaluation.protocol import evaluate, pairwise_squared_distances
from app.lab.learning.data import LabelledVectors, cached_embeddings
from app.lab.learning.model_files import save_verifier
from app.lab.learning.pairs import balanced_pairs
from app.lab.learning.scores import expected_calibration_error, reliability, score_protocol
from app.lab.learning.verifier_fit import VerifierConfig, fit_platt, train_classifier
from app.lab.learning.verifier_run import VerifierRun, features_of, run_train_verifier
from tests.lab.learning.conftest import SHARED_FACES

LFW_DEV = SHARED_FACES / "lfw_dev"


def synthetic_people(
    identities: int, images: int, rng: np.random.Generator, dim: int = 16
) -> LabelledVectors:
    """Gaussian identity centres, images = centre + Gaussian noise. Then the log-likelihood
    ratio of genuine vs impostor is linear in sum((a - b)^2), so the logistic unit is
    well specified and its calibrated output should match the observed rates."""
    centres = rng.normal(scale=0.3, size=(identities, dim))
    labels = np.repeat(np.arange(identities), images)
    noise = rng.normal(scale=0.25, size=(labels.size, dim))
    vectors = (centres[labels] + noise).astype(np.float32)
    return LabelledVectors(vectors, labels.astype(np.int64), [])


def test_pair_features_are_symmetric_and_as_defined() -> None:
    a = torch.tensor([[1.0, -2.0]])
    b = torch.tensor([[0.5, 1.0]])
    torch.testing.assert_close(pair_features(a, b), torch.tensor([[0.5, 3.0, 0.25, 9.0]]))
    torch.testing.assert_close(pair_features(a, b), pair_features(b, a))


def test_balanced_pairs() -> None:
    labels = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)
    data = LabelledVectors(np.zeros((6, 2), np.float32), labels, [])
    pairs = balanced_pairs(data, 1.0, seed=0)
    rows = list(zip(pairs.first.tolist(), pairs.second.tolist(), pairs.same.tolist(), strict=True))
    genuine = {(a, b) for a, b, s in rows if s}
    assert genuine == {(0, 1), (0, 2), (1, 2), (3, 4)}
    impostor = [(a, b) for a, b, s in rows if not s]
    assert len(impostor) == 4 and all(labels[a] != labels[b] for a, b in impostor)


def test_reliability_bins_are_deciles_of_the_prediction() -> None:
    p = np.linspace(0.0, 1.0, 100)
    same = np.arange(100) >= 50
    table = reliability(p, same)
    assert [b.count for b in table] == [10] * 10
    assert table[0].observed == 0.0 and table[-1].observed == 1.0
    assert expected_calibration_error(table) == pytest.approx(
        np.mean([abs(b.mean_probability - b.observed) for b in table])
    )


@pytest.mark.parametrize("hidden", [0, 8])
def test_synthetic_probability_is_calibrated_on_held_out_identities(hidden: int) -> None:
    rng = np.random.default_rng(0)
    # Pairs share identities, so the sets are large: 30,000 held-out pairs, 3,000 per
    # decile, keep the sampling error of each decile's observed rate near 0.01.
    fit = synthetic_people(1000, 6, rng)
    platt = synthetic_people(500, 6, rng)
    test = synthetic_people(1000, 6, rng)
    fit_pairs = balanced_pairs(fit, 1.0, 0)
    model = train_classifier(
        features_of(fit, fit_pairs), torch.from_numpy(fit_pairs.same), VerifierConfig(hidden=hidden)
    )
    platt_pairs = balanced_pairs(platt, 1.0, 1)
    fit_platt(model, features_of(platt, platt_pairs), torch.from_numpy(platt_pairs.same))
    test_pairs = balanced_pairs(test, 1.0, 2)
    with torch.no_grad():
        p = torch.sigmoid(model(features_of(test, test_pairs))).numpy()
    table = reliability(p, test_pairs.same)
    gaps = [round(b.gap, 3) for b in table]
    assert max(gaps) <= 0.05, gaps
    # Informative, not a constant 0.5: the extreme deciles are confident.
    assert table[0].mean_probability < 0.1 and table[-1].mean_probability > 0.9


def test_verifier_file_round_trip_and_model_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    data = synthetic_people(40, 4, rng)
    pairs = balanced_pairs(data, 1.0, 0)
    model = train_classifier(
        features_of(data, pairs), torch.from_numpy(pairs.same), VerifierConfig()
    )
    version = save_verifier(tmp_path / "v.safetensors", model, {"model": ["m", "1"]})
    verifier = load_verifier(tmp_path / "v.safetensors", ("m", "1"))
    assert verifier.version == version
    a, b = data.vectors[:3], data.vectors[3:6]
    with torch.no_grad():
        expected = torch.sigmoid(model(pair_features(torch.from_numpy(a), torch.from_numpy(b))))
    np.testing.assert_allclose(verifier.probabilities(a, b), expected.numpy(), rtol=1e-6)
    assert verifier.probability(a[0], b[0]) == pytest.approx(float(expected[0]), rel=1e-6)
    with pytest.raises(ModelUnavailable, match="trained on m 1"):
        load_verifier(tmp_path / "v.safetensors", ("m", "2"))


def test_score_protocol_with_the_distance_is_the_shared_protocol(
    settings: Settings, base_pipeline: object, tiny_set: Path, tiny_cache: Path
) -> None:
    from app.core.model.pipeline import FacePipeline

    assert isinstance(base_pipeline, FacePipeline)
    face_set = load_face_set(tiny_set)
    embeddings = cached_embeddings(base_pipeline, face_set, tiny_cache)
    ours = score_protocol(face_set, embeddings, pairwise_squared_distances, 0.2)
    shared = evaluate(face_set, embeddings, model="m", default_tau=0.2)
    for key in ("roc_auc", "eer", "tar_at_far", "rank1", "fnir_at_fpir", "fnir_at_default_tau"):
        assert ours[key] == shared[key], key
    assert (ours["genuine_pairs"], ours["impostor_pairs"]) == (12, 264)


def test_train_verifier_on_the_tiny_set(
    tmp_path: Path, settings: Settings, tiny_set: Path, tiny_cache: Path
) -> None:
    run = VerifierRun(tiny_set, tmp_path / "v.safetensors", VerifierConfig(), cache_dir=tiny_cache)
    report = run_train_verifier(run, settings)
    assert report["identities"] == {"fit": 6, "platt": 0, "held_out": 6}
    assert report["platt"] == [1.0, 0.0]
    with_platt = VerifierRun(
        tiny_set, tmp_path / "p.safetensors", VerifierConfig(), 0.5, 0.34, cache_dir=tiny_cache
    )
    platt_report = run_train_verifier(with_platt, settings)
    assert platt_report["identities"] == {"fit": 4, "platt": 2, "held_out": 6}
    assert platt_report["platt"] != [1.0, 0.0]
    verifier = load_verifier(run.out, tuple(report["model"]))  # type: ignore[arg-type]
    assert verifier.version == report["version"]
    for key in ("verifier", "distance"):
        assert 0.0 <= report[key]["roc_auc"] <= 1.0
        assert report[key]["genuine_pairs"] == 6


@pytest.mark.skipif(not LFW_DEV.is_dir(), reason=f"{LFW_DEV} is absent")
def test_verifier_is_calibrated_on_held_out_lfw_identities(
    tmp_path: Path, settings: Settings
) -> None:
    """Real data: reliability within 0.05 in every decile of the predicted probability, on
    balanced pairs of identities the verifier never saw (embeddings from eval's cache)."""
    run = VerifierRun(
        LFW_DEV, tmp_path / "v.safetensors", VerifierConfig(), cache_dir=settings.cache_dir / "eval"
    )
    report = run_train_verifier(run, settings)
    gaps = [round(abs(b["mean_probability"] - b["observed"]), 3) for b in report["reliability"]]
    assert report["held_out_pairs"] > 2000
    assert max(gaps) <= 0.05, gaps
    # and it separates people at least as a plain distance threshold does, give or take
    assert report["verifier"]["roc_auc"] > report["distance"]["roc_auc"] - 0.005
