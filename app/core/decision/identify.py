"""The 1:N decision: rank the gallery by identity, score the nearest, accept it or not.

A person with several enrolled faces is one candidate, at their nearest face. The score
is the nearest distance d1, or with cohort scoring d1 / c (`cohort.py`); the answer is
that candidate if the score is within tau, else unknown. Every candidate is judged on
the same scale, so the ones within tau are the ones the answer may show. The margin is
how far the decision is from flipping to the runner-up person: their score minus the
best one, on that same scale.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar

from app.core.decision.cohort import Cohort
from app.core.decision.distance import is_match
from app.core.model.types import Embedding

Person = TypeVar("Person", bound=Hashable)


def nearest_per_identity(
    hits: Sequence[tuple[int, float]], identity_of: Mapping[int, Person]
) -> dict[Person, tuple[int, float]]:
    """Each identity's nearest (face id, distance) among `hits` (nearest first), nearest
    identity first. A face missing from `identity_of` (deleted since the search) is
    skipped."""
    best: dict[Person, tuple[int, float]] = {}
    for face_id, distance in hits:
        person = identity_of.get(face_id)
        if person is None or person in best:
            continue
        best[person] = (face_id, distance)
    return best


@dataclass(frozen=True)
class OpenSetDecision:
    score: float | None  # what tau decided on: d1, or d1 / c; None: nobody to rank
    known: bool  # the nearest candidate is accepted
    within: list[bool]  # per candidate: within tau on the same scale
    margin: float | None = None  # runner-up's score minus the best; None: no runner-up


def decide(
    distances: Sequence[float],
    tau: float,
    probe: Embedding,
    cohort: Cohort | None,
    distance_cap: float | None = None,
) -> OpenSetDecision:
    """`distances`: the candidates' (one per person), nearest first. The cohort scale is
    only computed when there is a candidate to score. `distance_cap`: with a cohort, a
    candidate further than it is never accepted, whatever its score."""
    if not distances:
        return OpenSetDecision(score=None, known=False, within=[])
    scale = 1.0 if cohort is None else cohort.scale(probe)
    score = distances[0] / scale
    within = [
        is_match(distance / scale, tau)
        and (distance_cap is None or is_match(distance, distance_cap))
        for distance in distances
    ]
    margin = distances[1] / scale - score if len(distances) > 1 else None
    return OpenSetDecision(score=score, known=within[0], within=within, margin=margin)
