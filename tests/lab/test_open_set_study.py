"""The open-set study (docs/open-set.md) on small synthetic sets: gallery-based scores,
the gallery-size measurements and one- vs three-photo enrolment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.core.decision.cohort import CohortMixture
from app.lab.calibration import (
    enrolment_study,
    gallery,
    gallery_size_study,
    open_set_report,
    open_set_study,
    synthetic_cohort,
)
from app.lab.calibration.data import search_matrix, split_identities
from app.lab.calibration.gallery_scores import GalleryStats, l2_normalised, score, usable
from app.lab.evaluation.dataset import FaceSet


def _synthetic_set(
    root: Path, people: int = 60, singles: int = 30, most: int = 6, seed: int = 0
) -> tuple[FaceSet, dict[Path, Any]]:
    """People as noisy clusters around random directions, each at its own length (so L2
    normalisation changes distances); `singles` people have one image (the cohort)."""
    rng = np.random.default_rng(seed)
    identities: dict[str, list[Path]] = {}
    embeddings: dict[Path, Any] = {}
    for index in range(people + singles):
        name = f"p{index:03d}"
        count = 1 if index >= people else int(rng.integers(2, most + 1))
        centre = rng.normal(size=8)
        centre /= np.linalg.norm(centre)
        files = [root / name / f"{name}_{j}.jpg" for j in range(count)]
        for path in files:
            embeddings[path] = rng.uniform(0.6, 1.6) * (centre + 0.35 * rng.normal(size=8) / 3)
        identities[name] = files
    return FaceSet(root=root, name="synthetic", identities=identities), embeddings


# --- scores -------------------------------------------------------------------------------


def test_gallery_scores_by_hand() -> None:
    # entries 0 and 1 are close to each other (a crowded region), entry 2 is alone
    entries = np.array([[0.0, 0.2, 2.0], [0.2, 0.0, 2.0], [2.0, 2.0, 0.0]])
    stats = GalleryStats.of(entries)
    assert stats.nearest(1)[:, 0].tolist() == [0.2, 0.2, 2.0]
    probes = np.array([[0.1, 0.3, 1.5], [0.5, 0.6, 0.6], [np.inf, np.inf, np.inf]])
    raw, candidate = score("raw", 0, probes, stats)
    assert raw[:2].tolist() == [0.1, 0.5] and candidate[:2].tolist() == [0, 0]
    assert np.isinf(raw[2])  # a failed probe is never accepted
    gcohort, _ = score("gcohort", 1, probes, stats)
    assert gcohort[:2] == pytest.approx([0.1 / 0.3, 0.5 / 0.6])
    # gallery side: entry 0 sits in a crowd (c = 0.2), entry 2 alone (c = 2.0), so the
    # second probe's candidate becomes entry 2 although entry 0 is nearer
    gside, chosen = score("gside", 1, probes, stats)
    assert chosen[:2].tolist() == [0, 2] and gside[:2] == pytest.approx([0.5, 0.3])
    gsym, _ = score("gsym", 1, probes, stats)
    assert gsym[0] == pytest.approx(0.1 / np.sqrt(0.3 * 0.2))
    cohort, _ = score("cohort", 2, probes, stats, cohort=np.array([[0.2, 0.6]] * 3))
    assert cohort[:2] == pytest.approx([0.25, 1.25])


def test_gallery_scores_need_k_other_entries() -> None:
    assert usable("raw", 0, 1) and not usable("margin", 0.5, 1)
    assert not usable("gsym", 5, 5) and usable("gsym", 5, 6)
    stats = GalleryStats.of(np.zeros((3, 3)))
    with pytest.raises(ValueError, match="larger gallery"):
        score("gcohort", 5, np.ones((2, 3)), stats)


def test_l2_normalised_leaves_failed_rows_at_zero() -> None:
    rows = l2_normalised(np.array([[3.0, 4.0], [0.0, 0.0]]))
    assert rows.tolist() == [[0.6, 0.8], [0.0, 0.0]]


# --- the study ------------------------------------------------------------------------------


def test_study_reports_every_score_on_raw_and_l2(tmp_path: Path) -> None:
    face_set, embeddings = _synthetic_set(tmp_path)
    calibration, held = split_identities(face_set, 0.5, 0)
    result = open_set_study.study(calibration, held, embeddings, splits=2, fpir=0.05)
    assert set(result["embeddings"]) == {"raw", "l2"}
    for figures in result["embeddings"].values():
        assert figures["cohort_size"] > 0
        for method, s in figures["scores"].items():
            assert s["parameter"] in open_set_study.GRIDS[method]
            assert 0.0 <= s["fnir_held_out_own_tau"] <= 1.0
            assert len(s["fpir_per_split"]) == 2
        assert 0.0 <= figures["raw_gallery_model"]["fpir_held_out"] <= 1.0
    # lengths vary per image here, so dividing them out helps 1:1 a lot
    tar = {v: f["verification"]["tar_held_out"] for v, f in result["embeddings"].items()}
    assert tar["l2"] > max(tar["raw"], 0.8)
    # the calibration tau is the pooled one: FPIR over the calibration splits <= target
    l2 = open_set_study.l2_embeddings(embeddings)
    cohort = open_set_study.cohort_vectors(calibration, l2)
    designs = [open_set_study.design(calibration, l2, cohort, s) for s in range(2)]
    tau = open_set_study.pooled_tau(designs, "gsym", 3, 0.05)
    pooled = np.concatenate([d.searches("gsym", 3).non_mated_distances for d in designs])
    assert np.mean(pooled <= tau) <= 0.05


def test_l2_changes_nothing_for_unit_embeddings(tmp_path: Path) -> None:
    face_set, embeddings = _synthetic_set(tmp_path, people=30, singles=10)
    unit = open_set_study.l2_embeddings(embeddings)
    calibration, held = split_identities(face_set, 0.5, 0)
    result = open_set_study.study(calibration, held, unit, splits=1, methods=("raw", "gside"))
    raw, l2 = result["embeddings"]["raw"]["scores"], result["embeddings"]["l2"]["scores"]
    assert raw["gside"]["fnir_held_out_own_tau"] == pytest.approx(
        l2["gside"]["fnir_held_out_own_tau"]
    )


# --- gallery size ---------------------------------------------------------------------------


def test_largest_gallery_is_leave_one_person_out(tmp_path: Path) -> None:
    face_set, embeddings = _synthetic_set(tmp_path, people=40, singles=0)
    pool = gallery_size_study.pool(face_set, embeddings, np.zeros((1, 8)))
    search = search_matrix(face_set, embeddings)
    tau = float(np.quantile(search.distances[search.impostor_mask()], 0.01))
    tally = gallery_size_study.tally_largest(pool, "raw", 0.0)
    fpir = np.mean(np.concatenate(tally.non_mated) <= tau)
    # every probe against all other people: the hypergeometric average at N = all of them
    assert fpir == pytest.approx(gallery.measured_fpir(search, [tau], 39)[0])
    random = gallery_size_study.tally_random(pool, "raw", 0.0, 10, draws=300, seed=0)
    measured = np.mean(np.concatenate(random.non_mated) <= tau)
    assert measured == pytest.approx(gallery.measured_fpir(search, [tau], 10)[0], abs=0.02)


def test_small_galleries_fall_back_to_raw_with_the_model_tau(tmp_path: Path) -> None:
    face_set, embeddings = _synthetic_set(tmp_path, people=40, singles=10)
    model = gallery.fit_gallery_model(search_matrix(face_set, embeddings), "independent")
    pool = gallery_size_study.pool(face_set, embeddings, np.zeros((1, 8)))
    policy = gallery_size_study.Policy("gsym", "gsym", 5, 0.7)
    rows = gallery_size_study.study(pool, model, [policy], [3, 10], fpir=0.05, draws=5)
    assert [r["gallery_size"] for r in rows] == [3, 10, 49]
    assert rows[0]["score"] == "raw" and rows[0]["fallback"]
    assert rows[0]["tau"] == model.tau_for_fpir(0.05, 3)
    assert rows[0]["model_fpir"] == pytest.approx(0.05)
    assert rows[1]["score"] == "gsym" and not rows[1]["fallback"] and rows[1]["tau"] == 0.7
    assert rows[1]["model_fpir"] is None


# --- enrolment ------------------------------------------------------------------------------


def test_template_is_the_renormalised_mean() -> None:
    faces = [l2_normalised(np.array([[1.0, 0.0], [0.0, 1.0]]))]
    probe = np.array([[np.sqrt(0.5), np.sqrt(0.5)]])
    assert enrolment_study.person_distances(probe, faces, "template")[0, 0] == pytest.approx(0)
    best = enrolment_study.person_distances(probe, faces, "best_face")[0, 0]
    assert best == pytest.approx(2 - 2 * np.sqrt(0.5))
    both = enrolment_study.person_distances(probe, faces, "both")[0, 0]
    assert both == pytest.approx(best / 2)


def test_three_photos_miss_fewer_people_than_one(tmp_path: Path) -> None:
    face_set, embeddings = _synthetic_set(tmp_path, people=80, singles=20, most=7, seed=1)
    calibration, held = split_identities(face_set, 0.5, 0)
    result = enrolment_study.study(calibration, held, embeddings, splits=2, fpir=0.05)
    rows = {(r["photos"], r["mode"]): r for r in result["rows"]}
    assert set(rows) == {(1, "best_face"), (3, "best_face"), (3, "template"), (3, "both")}
    assert rows[(1, "best_face")]["mated_searches"] == rows[(3, "template")]["mated_searches"]
    assert rows[(3, "template")]["fnir_own_tau"] <= rows[(1, "best_face")]["fnir_own_tau"]


def test_report_renders_every_table(tmp_path: Path) -> None:
    face_set, embeddings = _synthetic_set(tmp_path, people=80, singles=30, most=7)
    calibration, held = split_identities(face_set, 0.5, 0)
    report = open_set_report.run(calibration, held, embeddings, splits=1, fpir=0.05, draws=3)
    lines = open_set_report.tables(report)
    assert sum(line.startswith("|---") for line in lines) == 4
    policies = {r["policy"] for r in report["gallery_sizes"]["rows"]}
    assert len(policies) == 5 and any("weibull" in p for p in policies)
    assert any("built-in cohort" in p for p in policies)
    assert any("built-in cohort (the default)" in line for line in lines)


# --- the built-in cohort ----------------------------------------------------------------------


def test_the_mixture_is_fitted_to_people_and_draws_unit_vectors_the_same_every_time(
    tmp_path: Path,
) -> None:
    face_set, embeddings = _synthetic_set(tmp_path, people=10, singles=200)
    l2 = open_set_study.l2_embeddings(embeddings)
    people = open_set_study.cohort_vectors(face_set, l2)
    mixture = synthetic_cohort.fit_mixture(people, components=4, samples=500)
    assert mixture.weights.sum() == len(people) and mixture.means.shape == (4, 8)
    drawn = mixture.draw()
    assert drawn.shape == (500, 8) and np.allclose(np.linalg.norm(drawn, axis=1), 1, atol=1e-6)
    mixture.save(tmp_path / "m.npz")
    assert np.array_equal(CohortMixture.load(tmp_path / "m.npz").draw(), drawn)
    # no drawn vector is one of the people's: the cohort ships no one's embedding
    nearest = ((drawn[:, None, :] - people[None, :, :]) ** 2).sum(axis=2).min(axis=1)
    assert nearest.min() > 1e-6


def test_the_study_measures_the_built_in_cohort_with_the_service_rule(tmp_path: Path) -> None:
    face_set, embeddings = _synthetic_set(tmp_path, people=60, singles=60)
    calibration, held = split_identities(face_set, 0.5, 0)
    l2 = open_set_study.l2_embeddings(embeddings)
    result = open_set_study.built_in_cohort(calibration, held, l2, 2, 0.05, distance_cap=0.5)
    assert result["synthetic_cohort"]["parameter"] in open_set_study.GRIDS["cohort"]
    row = result["synthetic_cohort_model"]
    assert 0.0 <= row["fpir_held_out"] <= 1.0 and 0.0 <= row["fnir_held_out"] <= 1.0
    # the cap only ever rejects more
    uncapped = open_set_study.built_in_cohort(calibration, held, l2, 2, 0.05)
    assert row["fnir_held_out"] >= uncapped["synthetic_cohort_model"]["fnir_held_out"]
    assert row["fpir_held_out"] <= uncapped["synthetic_cohort_model"]["fpir_held_out"]
