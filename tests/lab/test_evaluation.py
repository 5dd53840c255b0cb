"""Tests of app.lab.evaluation against small examples worked out by hand (see the comments)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.core.decision.cohort import Cohort
from app.core.decision.open_set_rule import OpenSetRule
from app.lab.evaluation import metrics
from app.lab.evaluation.cache import MISSING, EmbeddingCache, embed_face_set
from app.lab.evaluation.dataset import FaceSet, load_face_set, read_lfw_pairs
from app.lab.evaluation.metrics import OpenSetSearches, PairFold
from app.lab.evaluation.protocol import (
    enrolment_split,
    evaluate,
    genuine_pair_indices,
    impostor_pair_indices,
    open_set_design,
    open_set_searches,
    verification_distances,
)

SHARED_FACES = Path(__file__).resolve().parents[2].parent / "shared" / "faces"
BELOW = -math.inf  # direction for np.nextafter: the float just below a value


def make_set(
    root: Path, files: dict[str, list[str]], metadata: dict[str, str] | None = None
) -> Path:
    """A set folder with one small file per image (content = its own name)."""
    for identity, names in files.items():
        (root / identity).mkdir(parents=True)
        for name in names:
            (root / identity / name).write_bytes(name.encode())
    for name, text in (metadata or {}).items():
        (root / name).write_text(text)
    return root


def lfw_names(identity: str, count: int) -> list[str]:
    return [f"{identity}_{i:04d}.jpg" for i in range(1, count + 1)]


def embeddings_1d(face_set: FaceSet, values: Mapping[str, float | None]) -> dict[Path, Any]:
    """Map `identity/file` -> a 1-D embedding [value] (None = failed image)."""
    result: dict[Path, Any] = {}
    for path in face_set.images:
        value = values[face_set.relative(path)]
        result[path] = None if value is None else np.array([value], dtype=np.float32)
    return result


# --- dataset ----------------------------------------------------------------------------


def test_load_face_set_lists_sorted_identities_and_only_images(tmp_path: Path) -> None:
    root = make_set(
        tmp_path / "demo",
        {"bob": ["2.PNG", "10.pgm", "notes.txt"], "alice": ["b.jpg", "a.jpeg"], "carol": []},
        metadata={"README": "about", "pairs_demo.txt": "0\t0\n", "people.txt": "x"},
    )
    (root / ".hidden").mkdir()

    face_set = load_face_set(root)

    assert face_set.name == "demo"
    assert list(face_set.identities) == ["alice", "bob", "carol"]  # metadata is no identity
    assert [p.name for p in face_set.identities["alice"]] == ["a.jpeg", "b.jpg"]
    # String order: "10.pgm" < "2.PNG"; notes.txt is not an image.
    assert [p.name for p in face_set.identities["bob"]] == ["10.pgm", "2.PNG"]
    assert face_set.pairs_file == root / "pairs_demo.txt"
    assert face_set.identities_with_at_least(2) == ["alice", "bob"]
    assert face_set.relative(face_set.images[0]) == "alice/a.jpeg"


def test_load_face_set_without_pairs_file(tmp_path: Path) -> None:
    root = make_set(tmp_path / "orl_like", {"s1": ["1.pgm"]}, metadata={"README": "x"})
    assert load_face_set(root).pairs_file is None


def test_read_lfw_pairs_builds_folds_of_matched_then_mismatched(tmp_path: Path) -> None:
    root = make_set(tmp_path / "lfw", {"Ann": lfw_names("Ann", 2), "Bo_X": lfw_names("Bo_X", 1)})
    pairs = root / "pairs.txt"
    pairs.write_text("2\t1\nAnn\t1\t2\nAnn\t2\tBo_X\t1\nAnn\t2\t1\nBo_X\t1\tAnn\t1\n\n")

    folds = read_lfw_pairs(pairs, load_face_set(root))

    ann1, ann2, bo1 = (
        root / "Ann/Ann_0001.jpg",
        root / "Ann/Ann_0002.jpg",
        root / "Bo_X/Bo_X_0001.jpg",
    )
    assert [(f.matched, f.mismatched) for f in folds] == [
        ([(ann1, ann2)], [(ann2, bo1)]),
        ([(ann2, ann1)], [(bo1, ann1)]),
    ]


@pytest.mark.parametrize(
    ("body", "line"),
    [
        ("Ann 1 2\nAnn 1 Bo\n", 3),  # mismatched line with 3 fields
        ("Ann 1\nAnn 1 Bo 1\n", 2),  # matched line with 2 fields
        ("Ann 1 x\nAnn 1 Bo 1\n", 2),  # not a number
        ("Ann 1 3\nAnn 1 Bo 1\n", 2),  # Ann_0003.jpg does not exist
        ("Ann 1 2\nAnn 1 Cy 1\n", 3),  # no identity Cy
        ("Ann 1 2\n", 3),  # the header announces 2 pair lines, the file has 1
    ],
)
def test_read_lfw_pairs_names_the_bad_line(tmp_path: Path, body: str, line: int) -> None:
    root = make_set(tmp_path / "lfw", {"Ann": lfw_names("Ann", 2), "Bo": lfw_names("Bo", 1)})
    pairs = root / "pairs.txt"
    pairs.write_text("1\t1\n" + body)
    with pytest.raises(ValueError, match=f"line {line}:"):
        read_lfw_pairs(pairs, load_face_set(root))


def test_read_lfw_pairs_rejects_a_bad_header(tmp_path: Path) -> None:
    root = make_set(tmp_path / "lfw", {"Ann": lfw_names("Ann", 2)})
    pairs = root / "pairs.txt"
    pairs.write_text("one fold\nAnn 1 2\n")
    with pytest.raises(ValueError, match="line 1:"):
        read_lfw_pairs(pairs, load_face_set(root))


# --- section 1 --------------------------------------------------------------------------


def test_best_accuracy_threshold_searches_midpoints() -> None:
    # Sorted distances 1 2 3 4 -> midpoints 1.5, 2.5, 3.5 with accuracy 3/4, 4/4, 3/4.
    assert metrics.best_accuracy_threshold([3, 1, 4, 2], [False, True, False, True]) == 2.5


def test_lfw_tau_is_chosen_on_the_other_folds() -> None:
    def fold(genuine: float, impostor: float) -> PairFold:
        return PairFold(np.array([genuine, impostor]), np.array([True, False]))

    folds = [fold(1, 3), fold(1, 5), fold(4, 6)]
    # Fold A, trained on B+C = {1 T, 5 F, 4 T, 6 F}: midpoints 2.5, 4.5, 5.5 score
    #   3/4, 4/4, 3/4 -> tau 4.5; on A: 1 <= 4.5 right, 3 <= 4.5 wrong -> 0.5.
    # Fold B, trained on A+C = {1 T, 3 F, 4 T, 6 F}: midpoints 2, 3.5, 5 score
    #   3/4, 2/4, 3/4 -> the smallest best, tau 2; on B: both right -> 1.0.
    # Fold C, trained on A+B = {1 T, 3 F, 1 T, 5 F}: midpoints 1, 2, 4 score
    #   4/4, 4/4, 3/4 -> tau 1; on C: 4 > 1 wrong, 6 > 1 right -> 0.5.
    # (Fold C on its own would pick 5 and score 1.0, so this shows the hold-out.)
    results = metrics.lfw_fold_results(folds)
    assert [(r.tau, r.accuracy) for r in results] == [(4.5, 0.5), (2.0, 1.0), (1.0, 0.5)]
    mean, std = metrics.lfw_accuracy(folds)
    # mean 2/3; deviations -1/6, 1/3, -1/6 -> population variance (1+4+1)/36/3 = 1/18.
    assert mean == pytest.approx(2 / 3)
    assert std == pytest.approx(math.sqrt(1 / 18))


def test_failed_lfw_pair_is_wrong_at_every_tau() -> None:
    distances = np.array([1.0, np.nan, 3.0, np.nan])
    same = np.array([True, True, False, False])
    for tau in (-1.0, 0.0, 2.0, 1e300, math.inf):
        assert not metrics.pair_decisions_correct(distances, same, tau)[[1, 3]].any()
    # At tau 2 the two usable pairs are right, the two failed ones wrong.
    assert metrics.pair_accuracy(distances, same, 2.0) == 0.5
    # Failed pairs do not take part in the threshold search: the one midpoint of 1, 3.
    assert metrics.best_accuracy_threshold(distances, same) == 2.0


# --- section 2 --------------------------------------------------------------------------


def test_tar_at_far_takes_the_largest_tau_whose_far_is_within_target() -> None:
    genuine = [0.5, 1.5, 2.5]
    impostor = [3.0, 2.0, 1.0, 2.0]  # sorted: 1 2 2 3
    # FAR 0.25 allows one of 4 impostors: any tau in [1, 2) accepts only the 1; at 2 the
    # tie accepts three. Largest tau: the float just below 2. Genuine <= it: 0.5, 1.5.
    tar, tau = metrics.tar_at_far(genuine, impostor, 0.25)
    assert tau == np.nextafter(2.0, BELOW)
    assert tar == pytest.approx(2 / 3)
    assert metrics.far_at_threshold(impostor, tau) == 0.25
    assert metrics.far_at_threshold(impostor, np.nextafter(tau, math.inf)) == 0.75
    # FAR 0.2 allows none: tau just below the smallest impostor, 1; genuine 0.5 only.
    assert metrics.tar_at_far(genuine, impostor, 0.2) == (
        pytest.approx(1 / 3),
        np.nextafter(1.0, BELOW),
    )


def test_rate_count_survives_float_rounding() -> None:
    # 0.29 * 100 == 28.999999999999996 in floats, yet 29 / 100 == 0.29 is within target.
    assert metrics.largest_count_within(0.29, 100) == 29
    assert metrics.largest_count_within(1e-3, 3000) == 3
    assert metrics.largest_count_within(0.5, 3) == 1


def test_roc_auc_counts_ties_half() -> None:
    # (g, i) pairs: (1,2) (1,3) (2,3) impostor farther = 3 wins; (2,2) tie -> 3.5 / 4.
    assert metrics.roc_auc([1.0, 2.0], [2.0, 3.0]) == 0.875
    # Identical distributions: every pair a tie, or wins and losses balanced.
    assert metrics.roc_auc([1.0, 1.0], [1.0]) == 0.5


def test_failures_in_verification_are_non_matches_at_every_tau() -> None:
    genuine = [1.0, math.inf]  # the second genuine pair has a failed image
    impostor = [2.0, math.inf]
    # (1,2) win, (1,inf) win, (inf,2) loss, (inf,inf) tie -> 2.5 / 4.
    assert metrics.roc_auc(genuine, impostor) == 0.625
    # FAR 0.5 allows one impostor; sorted 2, inf -> tau just below inf: the largest float.
    tar, tau = metrics.tar_at_far(genuine, impostor, 0.5)
    assert tau == np.finfo(np.float64).max
    assert tar == 0.5  # the failed genuine pair stays a false non-match
    assert metrics.far_at_threshold(impostor, tau) == 0.5  # the failed impostor stays rejected


def test_equal_error_rate_where_far_meets_frr() -> None:
    # genuine 1 2 3 6, impostor 4 5 7 8: at tau 3 FAR 0, FRR 1/4; at tau 4 FAR = FRR = 1/4.
    assert metrics.equal_error_rate([1, 2, 3, 6], [4, 5, 7, 8]) == pytest.approx(0.25)
    # genuine 1 2 5, impostor 3 4: (FAR, FRR) at tau 2 = (0, 1/3), at tau 3 = (1/2, 1/3).
    # The straight segment between them meets FAR = FRR at FAR = 1/3.
    assert metrics.equal_error_rate([1, 2, 5], [3, 4]) == pytest.approx(1 / 3)
    # Perfect separation: FAR 0, FRR 0 at tau 1.
    assert metrics.equal_error_rate([1], [2]) == 0.0


def test_pair_indices_enumerate_and_sample_cross_identity_pairs() -> None:
    group_end = np.array([2, 2, 4, 4, 6, 6])  # identities {0,1} {2,3} {4,5}
    assert list(zip(*genuine_pair_indices(group_end), strict=True)) == [(0, 1), (2, 3), (4, 5)]
    everything = list(zip(*impostor_pair_indices(group_end), strict=True))
    # Row-major over i < j of different identities: 15 pairs - 3 genuine = 12.
    assert everything == [
        (0, 2), (0, 3), (0, 4), (0, 5), (1, 2), (1, 3), (1, 4), (1, 5),
        (2, 4), (2, 5), (3, 4), (3, 5),
    ]  # fmt: skip
    sampled = list(zip(*impostor_pair_indices(group_end, limit=5), strict=True))
    chosen = np.sort(np.random.default_rng(0).choice(12, size=5, replace=False, shuffle=False))
    assert sampled == [everything[k] for k in chosen]
    assert len(set(sampled)) == 5


def verification_set(tmp_path: Path) -> FaceSet:
    return load_face_set(
        make_set(tmp_path / "v", {"a": ["1.png", "2.png"], "b": ["1.png", "2.png"], "c": ["1.png"]})
    )


def test_verification_pairs_use_identities_with_two_images(tmp_path: Path) -> None:
    face_set = verification_set(tmp_path)
    values = {"a/1.png": 0.0, "a/2.png": 1.0, "b/1.png": 3.0, "b/2.png": 5.0, "c/1.png": 9.0}
    genuine, impostor = verification_distances(face_set, embeddings_1d(face_set, values), 1)
    # Genuine: a (0-1)^2 = 1, b (3-5)^2 = 4. Impostors a1b1 9, a1b2 25, a2b1 4, a2b2 16;
    # the singleton c takes no part.
    assert genuine.tolist() == [1.0, 4.0]
    assert impostor.tolist() == [9.0, 25.0, 4.0, 16.0]
    # Genuine 1 beats all 4 impostors; genuine 4 beats 9, 25, 16 and ties 4 -> 7.5 / 8.
    assert metrics.roc_auc(genuine, impostor) == 0.9375


def test_failed_image_makes_its_verification_pairs_infinite(tmp_path: Path) -> None:
    face_set = verification_set(tmp_path)
    values = {"a/1.png": 0.0, "a/2.png": 1.0, "b/1.png": 3.0, "b/2.png": None, "c/1.png": 9.0}
    genuine, impostor = verification_distances(face_set, embeddings_1d(face_set, values), 1)
    assert genuine.tolist() == [1.0, math.inf]
    assert impostor.tolist() == [9.0, math.inf, 4.0, math.inf]


# --- section 3 --------------------------------------------------------------------------


def test_enrolment_split_shuffles_sorted_names_and_enrols_the_first_half(tmp_path: Path) -> None:
    two = ["1.png", "2.png"]
    files = {"d": two, "a": two, "c": two, "b": two, "e": two, "z": ["1.png"]}
    face_set = load_face_set(make_set(tmp_path / "s", files))
    assert np.random.default_rng(0).permutation(5).tolist() == [2, 4, 3, 0, 1]
    # Sorted names with >= 2 images: a b c d e (z is a singleton) -> c e d a b.
    # floor(5 / 2) = 2 enrolled.
    split = enrolment_split(face_set)
    assert (split.enrolled, split.not_enrolled) == (["c", "e"], ["d", "a", "b"])


def open_set_face_set(tmp_path: Path) -> FaceSet:
    two = lfw_names
    files = {
        "a": two("a", 2),
        "b": two("b", 2),
        "c": two("c", 2),
        "d": two("d", 2),
        "e": two("e", 1),
    }
    pairs = "2\t1\na 1 2\na 1 b 1\nc 1 2\nc 1 d 1\n"
    return load_face_set(make_set(tmp_path / "tiny", files, metadata={"pairs.txt": pairs}))


# 1-D embeddings. permutation(4) = [2, 0, 1, 3]: a b c d -> c a b d, so c and a are
# enrolled (with their _0001 image) and b, d are not.
OPEN_SET_VALUES: dict[str, float | None] = {
    "a/a_0001.jpg": 0.0,
    "a/a_0002.jpg": 1.0,
    "b/b_0001.jpg": 3.0,
    "b/b_0002.jpg": 20.0,
    "c/c_0001.jpg": 10.0,
    "c/c_0002.jpg": 4.0,
    "d/d_0001.jpg": 7.0,
    "d/d_0002.jpg": 30.0,
    "e/e_0001.jpg": 100.0,
}


def test_open_set_searches_and_rates(tmp_path: Path) -> None:
    face_set = open_set_face_set(tmp_path)
    assert np.random.default_rng(0).permutation(4).tolist() == [2, 0, 1, 3]
    embeddings = embeddings_1d(face_set, OPEN_SET_VALUES)
    design = open_set_design(face_set, embeddings)
    assert [name for name, _ in design.gallery] == ["a", "c"]
    assert [face_set.relative(p) for _, p in design.mated] == ["a/a_0002.jpg", "c/c_0002.jpg"]
    searches = open_set_searches(face_set, embeddings, 1)
    assert searches is not None
    # Gallery a=0, c=10. Mated: a2=1 -> a at 1 (right); c2=4 -> a at 16 (wrong).
    assert searches.mated_distances.tolist() == [1.0, 16.0]
    assert searches.mated_correct.tolist() == [True, False]
    # Non-mated b1=3 -> 9, b2=20 -> 100, d1=7 -> 9, d2=30 -> 400.
    assert searches.non_mated_distances.tolist() == [9.0, 100.0, 9.0, 400.0]
    assert metrics.rank1_accuracy(searches) == 0.5
    # tau 10: non-mated 9, 9 accepted -> FPIR 2/4; mated: a2 hit, c2 wrong -> FNIR 1/2.
    assert metrics.fpir_at_threshold(searches.non_mated_distances, 10.0) == 0.5
    assert metrics.fnir_at_threshold(searches, 10.0) == 0.5
    # FPIR 0.1 of 4 allows none: tau just below 9; a2 (1) still a hit -> FNIR 1/2.
    assert metrics.fnir_at_fpir(searches, 0.1) == (0.5, np.nextafter(9.0, BELOW))
    # tau 0.5: a2 at distance 1 is now a miss too.
    assert metrics.fnir_at_threshold(searches, 0.5) == 1.0


def test_fnir_at_fpir_chooses_tau_on_non_mated_distances() -> None:
    searches = OpenSetSearches(
        mated_distances=np.array([0.5, 2.5, 4.5, 1.0]),
        mated_correct=np.array([True, True, True, False]),
        non_mated_distances=np.arange(1.0, 11.0),  # 1 .. 10
    )
    # FPIR 0.1 of 10 allows one: tau just below 2. Hits: 0.5 only (1.0 is the wrong id).
    assert metrics.fnir_at_fpir(searches, 0.1) == (0.75, np.nextafter(2.0, BELOW))
    # FPIR 0.5 allows five: tau just below 6. Hits: 0.5, 2.5, 4.5.
    assert metrics.fnir_at_fpir(searches, 0.5) == (0.25, np.nextafter(6.0, BELOW))


def test_failures_in_open_set_identification(tmp_path: Path) -> None:
    face_set = open_set_face_set(tmp_path)
    values = dict(OPEN_SET_VALUES)
    values["a/a_0001.jpg"] = None  # a's gallery image: a is not enrolled
    values["c/c_0002.jpg"] = None  # a mated probe
    values["d/d_0002.jpg"] = None  # a non-mated probe
    embeddings = embeddings_1d(face_set, values)
    design = open_set_design(face_set, embeddings)
    assert [name for name, _ in design.gallery] == ["c"]
    # a's other image becomes a non-mated search, before the not-enrolled b and d.
    assert [face_set.relative(p) for p in design.non_mated] == [
        "a/a_0002.jpg", "b/b_0001.jpg", "b/b_0002.jpg", "d/d_0001.jpg", "d/d_0002.jpg",
    ]  # fmt: skip
    searches = open_set_searches(face_set, embeddings, 1)
    assert searches is not None
    # The failed mated probe is a miss at every tau.
    assert (searches.mated_distances.tolist(), searches.mated_correct.tolist()) == (
        [math.inf],
        [False],
    )
    assert metrics.rank1_accuracy(searches) == 0.0
    assert metrics.fnir_at_threshold(searches, 1e300) == 1.0
    # Gallery c=10: a2=1 -> 81, b1=3 -> 49, b2=20 -> 100, d1=7 -> 9, d2 failed -> inf.
    assert searches.non_mated_distances.tolist() == [81.0, 49.0, 100.0, 9.0, math.inf]
    # The failed non-mated probe is a correct rejection even at a huge tau: FPIR 4/5.
    assert metrics.fpir_at_threshold(searches.non_mated_distances, 1e300) == 0.8


def test_open_set_without_gallery_is_none(tmp_path: Path) -> None:
    face_set = open_set_face_set(tmp_path)
    values = dict(OPEN_SET_VALUES, **{"a/a_0001.jpg": None, "c/c_0001.jpg": None})
    assert open_set_searches(face_set, embeddings_1d(face_set, values), 1) is None


# --- the report -------------------------------------------------------------------------

PROTOCOL_KEYS = {
    "lfw_accuracy_mean",
    "lfw_accuracy_std",
    "roc_auc",
    "eer",
    "tar_at_far",
    "rank1",
    "fnir_at_fpir",
    "default_tau",
    "fnir_at_default_tau",
    "fpir_at_default_tau",
    "images",
    "failed_images",
    "model",
}
THRESHOLD_KEYS = {
    "threshold",
    "far_at_threshold",
    "tar_at_threshold",
    "fpir_at_threshold",
    "fnir_at_threshold",
}


def assert_plain_json(value: object) -> None:
    """Only JSON's own Python types (no numpy scalars), and no NaN or infinity."""
    if isinstance(value, dict):
        assert all(type(key) is str for key in value)
        for item in value.values():
            assert_plain_json(item)
    elif isinstance(value, list):
        for item in value:
            assert_plain_json(item)
    else:
        assert value is None or type(value) in (str, int, float, bool), repr(value)
        assert not (type(value) is float and not math.isfinite(value)), value


def test_evaluate_report_keys_and_values(tmp_path: Path) -> None:
    face_set = open_set_face_set(tmp_path)
    values = dict(OPEN_SET_VALUES, **{"e/e_0001.jpg": None})
    report = evaluate(face_set, embeddings_1d(face_set, values), model="toy", default_tau=10.0)

    assert set(report) >= PROTOCOL_KEYS
    assert not THRESHOLD_KEYS & set(report)
    assert_plain_json(report)
    json.dumps(report, allow_nan=False)
    assert set(report["tar_at_far"]) == {"0.01", "0.001", "0.0001"}
    assert set(report["fnir_at_fpir"]) == {"0.1", "0.01", "0.001"}
    assert (report["model"], report["images"], report["failed_images"]) == ("toy", 9, 1)
    assert report["failed_files"] == ["e/e_0001.jpg"]
    # Pairs file, 2 folds. Fold 1: a1a2 = 1 (same), a1b1 = 9. Fold 2: c1c2 = 36, c1d1 = 9.
    # Fold 1 tested at tau 22.5 (fold 2's midpoint): 1 right, 9 wrong -> 0.5.
    # Fold 2 tested at tau 5 (fold 1's midpoint): 36 wrong, 9 right -> 0.5.
    assert (report["lfw_accuracy_mean"], report["lfw_accuracy_std"]) == (0.5, 0.0)
    # 8 images of a-d: 4 genuine pairs, C(8, 2) - 4 = 24 impostor pairs.
    assert (report["genuine_pairs"], report["impostor_pairs"]) == (4, 24)
    # Section 3 as in test_open_set_searches_and_rates (e is a singleton: not searched).
    assert report["rank1"] == 0.5
    assert report["fnir_at_fpir"]["0.1"] == {"fnir": 0.5, "tau": np.nextafter(9.0, BELOW)}
    assert (report["fnir_at_default_tau"], report["fpir_at_default_tau"]) == (0.5, 0.5)
    assert report["default_tau"] == 10.0


def test_evaluate_with_threshold_and_without_pairs_file(tmp_path: Path) -> None:
    face_set = open_set_face_set(tmp_path)
    face_set = FaceSet(face_set.root, face_set.name, face_set.identities, pairs_file=None)
    embeddings = embeddings_1d(face_set, OPEN_SET_VALUES)
    report = evaluate(face_set, embeddings, model="toy", default_tau=10.0, threshold=10.0)

    assert (report["lfw_accuracy_mean"], report["lfw_accuracy_std"]) == (None, None)
    assert set(report) >= THRESHOLD_KEYS
    assert_plain_json(report)
    # Genuine a 1, b 289, c 36, d 529: only a's is <= 10 -> TAR 1/4.
    assert report["tar_at_threshold"] == 0.25
    # Impostor pairs <= 10 (a1 0, a2 1, b1 3, b2 20, c1 10, c2 4, d1 7, d2 30):
    # a1b1 9, a2b1 4, a2c2 9, b1c2 1, c1d1 9, c2d1 9. All others are >= 16 (b2 and d2
    # are at least 10 away from every other identity's image) -> 6 of 24.
    assert report["far_at_threshold"] == 0.25
    assert (report["fpir_at_threshold"], report["fnir_at_threshold"]) == (0.5, 0.5)


def test_evaluate_needs_every_image(tmp_path: Path) -> None:
    face_set = open_set_face_set(tmp_path)
    embeddings = embeddings_1d(face_set, OPEN_SET_VALUES)
    del embeddings[face_set.images[0]]
    with pytest.raises(ValueError, match="no embedding entry"):
        evaluate(face_set, embeddings, model="toy", default_tau=1.0)


# --- cache ------------------------------------------------------------------------------


def test_cache_round_trip_and_invalidation(tmp_path: Path) -> None:
    face = make_set(tmp_path / "set", {"a": ["1.png", "2.png", "3.png"]}) / "a"
    cache = EmbeddingCache(tmp_path / "cache", "model-v1-abc")
    cache.put(face / "1.png", np.array([1.0, 2.0], dtype=np.float32))
    cache.put(face / "2.png", None)
    cache.save()
    assert os.listdir(tmp_path / "cache") == [cache.path.name]  # no temp file left behind

    reloaded = EmbeddingCache(tmp_path / "cache", "model-v1-abc")
    first = reloaded.get(face / "1.png")
    assert isinstance(first, np.ndarray)
    assert first.tolist() == [1.0, 2.0]
    assert first.dtype == np.float32
    assert reloaded.get(face / "2.png") is None  # a cached "no face"
    assert reloaded.get(face / "3.png") is MISSING
    assert EmbeddingCache(tmp_path / "cache", "model-v2-abc").get(face / "1.png") is MISSING

    (face / "1.png").write_bytes(b"another image")  # new content and size
    assert reloaded.get(face / "1.png") is MISSING
    stat = (face / "2.png").stat()
    os.utime(face / "2.png", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert reloaded.get(face / "2.png") is MISSING  # same size, newer mtime


def test_cache_ignores_a_damaged_file(tmp_path: Path) -> None:
    cache = EmbeddingCache(tmp_path, "key")
    cache.path.write_bytes(b"not an npz")
    assert len(EmbeddingCache(tmp_path, "key")) == 0


def test_embed_face_set_reuses_and_periodically_saves_the_cache(tmp_path: Path) -> None:
    face_set = load_face_set(make_set(tmp_path / "set", {"a": ["1.png", "2.png"], "b": ["1.png"]}))
    calls: list[Path] = []
    cache_dir = tmp_path / "cache"

    def interrupted_after_two(path: Path) -> np.ndarray | None:
        if len(calls) == 2:
            # The first two were saved already (save_every=2), before the interruption.
            assert len(EmbeddingCache(cache_dir, "k")) == 2
            raise KeyboardInterrupt
        calls.append(path)
        return None if path.parent.name == "b" else np.array([float(len(calls))])

    with pytest.raises(KeyboardInterrupt):
        embed_face_set(face_set, interrupted_after_two, EmbeddingCache(cache_dir, "k"), False, 2)

    def resumed(path: Path) -> np.ndarray | None:
        calls.append(path)
        return None

    result = embed_face_set(face_set, resumed, EmbeddingCache(cache_dir, "k"), progress=False)
    assert calls == face_set.images  # each image embedded once over both runs
    assert [None if v is None else v.tolist() for v in result.values()] == [[1.0], [2.0], None]
    again = embed_face_set(face_set, resumed, EmbeddingCache(cache_dir, "k"), progress=False)
    assert len(calls) == 3  # everything came from the cache
    assert list(again) == face_set.images


# --- the shared development sets --------------------------------------------------------


def test_shared_face_sets_match_their_readme() -> None:
    if not SHARED_FACES.is_dir():
        pytest.skip(f"shared face sets not present at {SHARED_FACES}")
    lfw = load_face_set(SHARED_FACES / "lfw_dev")
    assert (len(lfw.identities), len(lfw.images)) == (1708, 3825)
    with_two = lfw.identities_with_at_least(2)
    assert (len(with_two), sum(len(lfw.identities[n]) for n in with_two)) == (494, 2611)
    assert lfw.pairs_file is not None
    folds = read_lfw_pairs(lfw.pairs_file, lfw)
    assert [(len(f.matched), len(f.mismatched)) for f in folds] == [(300, 300)] * 3

    orl = load_face_set(SHARED_FACES / "orl")
    assert (len(orl.identities), len(orl.images), orl.pairs_file) == (40, 400, None)
    assert "README" not in orl.identities


def test_evaluate_scores_section_3_the_way_the_service_rule_says(tmp_path: Path) -> None:
    """With a rule (what `facesvc eval` passes by default) section 3's distances become
    the service's cohort scores d1 / c, capped, and its default tau the rule's for this
    gallery size. Cohort: one face at 5, k = 1, so c = (probe - 5)^2."""
    face_set = open_set_face_set(tmp_path)
    embeddings = embeddings_1d(face_set, OPEN_SET_VALUES)
    cohort = Cohort(np.array([[5.0]], dtype=np.float32), 1)
    sizes: list[int] = []

    def rule(gallery_size: int) -> OpenSetRule:
        sizes.append(gallery_size)
        return OpenSetRule(cohort, 1.0, None, "score", "built_in_cohort", distance_cap=50.0)

    report = evaluate(face_set, embeddings, model="toy", default_tau=10.0, open_set_rule=rule)
    assert sizes == [2] and report["gallery_size"] == 2
    assert (report["open_set_score"], report["default_tau"]) == ("built_in_cohort", 1.0)
    # Mated: a2 = 1 -> 1 / 16 (right); c2 = 4 -> 16 / 1 (wrong person). Non-mated: b1 3 ->
    # 9 / 4, d1 7 -> 9 / 4; b2 20 (100) and d2 30 (400) are beyond the cap: never accepted.
    assert (report["fpir_at_default_tau"], report["fnir_at_default_tau"]) == (0.0, 0.5)
    assert report["fnir_at_fpir"]["0.1"] == {"fnir": 0.5, "tau": np.nextafter(2.25, BELOW)}
    plain = evaluate(face_set, embeddings, model="toy", default_tau=10.0)
    assert (plain["open_set_score"], plain["fpir_at_default_tau"]) == ("distance", 0.5)
