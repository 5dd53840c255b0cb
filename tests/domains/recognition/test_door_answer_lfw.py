"""recognize's `confidence` and `margin` measured on lfw_dev's held-out people: the
figures of docs/service.md ("The answer for a door").

Half of lfw_dev's people (seeded) calibrate, as `facesvc calibrate --holdout 0.5`; the
other half, never seen by the calibration, search. Confidence: a stranger reaches
confidence >= 1 - p as often as the gallery model says (p), or less often. Margin: a
thin one marks the wrong accepts (strangers let in, people taken for someone else) and
almost none of the right ones. Skips when ../shared/faces is absent.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest

from app.core.decision.identify import decide
from app.core.decision.open_set import GalleryModel
from app.core.model.pipeline import FacePipeline
from app.lab.calibration import gallery
from app.lab.calibration.calibrate import Request, calibrate
from app.lab.calibration.data import SearchMatrix, search_matrix, split_identities
from app.lab.evaluation.dataset import load_face_set
from app.lab.evaluation.embedding import embed_set
from tests.support.service import SHARED_FACES

LFW = SHARED_FACES / "lfw_dev"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not LFW.is_dir(), reason=f"{LFW} is missing (shared face sets)"),
]
SEEDS = range(5)
FPIR = 1e-2  # the default target of `facesvc calibrate`
THIN = 0.2  # a margin below THIN x tau asks for a second look


@dataclass
class Door:
    """Accepted searches at the model's tau for the whole held-out gallery."""

    right: list[float] = field(default_factory=list)  # margin / tau of right accepts
    wrong: list[float] = field(default_factory=list)  # ... of strangers and mix-ups

    def add(self, search: SearchMatrix, tau: float) -> None:
        for row in np.flatnonzero(~search.probe_failed):
            mate = search.gallery_identity == search.probe_identity[row]
            distances = search.distances[row]
            self._one(distances, tau, right=bool(mate[np.argmin(distances)]))
            self._one(distances[~mate], tau, right=False)  # the same face as a stranger

    def _one(self, distances: np.ndarray, tau: float, *, right: bool) -> None:
        ranked = sorted(float(d) for d in distances)  # one entry per person
        decision = decide(ranked, tau, np.zeros(1, dtype=np.float32), None)
        if decision.known and decision.margin is not None:
            (self.right if right else self.wrong).append(decision.margin / tau)


@pytest.fixture(scope="module")
def measured(pipeline: FacePipeline) -> tuple[dict[tuple[int | str, float], list[float]], Door]:
    face_set = load_face_set(LFW)
    embeddings = embed_set(pipeline, face_set, None)
    reached: dict[tuple[int | str, float], list[float]] = {}
    door = Door()
    for seed in SEEDS:
        part, held = split_identities(face_set, 0.5, seed)
        report = calibrate(part, embeddings, Request(far=1e-3, seed=seed))
        model = GalleryModel.from_dict(report["gallery_model"])
        search = search_matrix(held, embeddings)
        largest = gallery.largest_gallery(search)
        for size in (10, 100, largest):
            for p in (0.1, 0.01):
                # confidence >= 1 - p  <=>  distance <= the model's tau for FPIR p at N
                tau = model.tau_for_fpir(p, size)
                assert model.stranger_rarity(tau, size) == pytest.approx(1 - p)
                share = float(gallery.measured_fpir(search, [tau], size)[0])
                reached.setdefault((size if size != largest else "all", p), []).append(share)
        door.add(search, model.tau_for_fpir(FPIR, search.distances.shape[1]))
    return reached, door


def test_strangers_reach_a_confidence_no_more_often_than_it_says(
    measured: tuple[dict[tuple[int | str, float], list[float]], Door],
) -> None:
    reached, _ = measured
    for (size, p), shares in sorted(reached.items(), key=str):
        mean = float(np.mean(shares))
        print(f"N {size}: strangers with confidence >= {1 - p}: {mean:.4f} (says {p})")
        assert 0.3 * p <= mean <= 1.2 * p, (size, p, shares)


def test_a_thin_margin_marks_the_wrong_accepts(
    measured: tuple[dict[tuple[int | str, float], list[float]], Door],
) -> None:
    _, door = measured
    right, wrong = np.array(door.right), np.array(door.wrong)
    second_look_right, caught = float(np.mean(right < THIN)), float(np.mean(wrong < THIN))
    print(f"{right.size} right and {wrong.size} wrong accepts; margin < {THIN} x tau:")
    print(f"  second look for {second_look_right:.4f} of right, {caught:.3f} of wrong accepts")
    assert wrong.size >= 20 and second_look_right < 0.02 and caught > 0.3
