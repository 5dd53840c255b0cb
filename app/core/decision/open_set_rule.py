"""Which score and which default tau decide one 1:N search, and what its confidence is
computed from. Three rules, chosen per request from the calibration in use, the live
gallery size and FACESVC_IDENTIFY_SCORE (docs/open-set.md says why each):

- the built-in cohort (`auto`, the default, when the model version ships one, no stored
  calibration overrides it, and the gallery holds at least its `min_gallery` people):
  d1 / c against the tau its score model gives for the gallery size, and never a
  candidate further than the 1:1 tau (a 1:N accept is never looser than a verify: on a
  set unlike the cohort's, ORL, this halves the strangers let in; on lfw_dev it changes
  nothing, docs/open-set.md);
- an operator's cohort file (`cohort`): d1 / c against FACESVC_COHORT_TAU;
- otherwise the nearest distance d1 against the calibration's 1:N tau (re-derived for
  the gallery size when the calibration carries a gallery model).
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.decision.calibration import ActiveCalibration, gallery_model_of
from app.core.decision.cohort import BuiltInCohort, Cohort
from app.core.decision.open_set import GalleryModel


@dataclass(frozen=True)
class OpenSetRule:
    cohort: Cohort | None  # None: decide on d1
    tau: float  # the default tau, on the scale decided on
    model: GalleryModel | None  # FPIR against gallery size of `confidence_on`
    confidence_on: str  # "score" (d1 / c) or "distance" (d1)
    name: str  # "built_in_cohort", "cohort_file" or "distance", as /v1/models says
    distance_cap: float | None = None  # no candidate further than this is accepted

    def confidence(self, distance: float, score: float, gallery_size: int) -> float | None:
        """1 - FPIR at the answer's own value for a gallery of this size: the share of
        strangers who would have scored worse. None without a model."""
        if self.model is None:
            return None
        value = score if self.confidence_on == "score" else distance
        return self.model.stranger_rarity(value, max(gallery_size, 1))


def rule_for(
    active: ActiveCalibration,
    gallery_size: int,
    built_in: BuiltInCohort | None,
    operator: tuple[Cohort, float] | None,
) -> OpenSetRule:
    if operator is not None:
        cohort, tau = operator
        return OpenSetRule(cohort, tau, gallery_model_of(active), "distance", "cohort_file")
    if built_in is not None and active.stored is None and built_in.applies(gallery_size):
        return OpenSetRule(
            built_in.cohort,
            built_in.tau(gallery_size),
            built_in.model,
            "score",
            "built_in_cohort",
            distance_cap=active.calibration.tau_verify,
        )
    return OpenSetRule(
        None, active.calibration.tau_identify, gallery_model_of(active), "distance", "distance"
    )
