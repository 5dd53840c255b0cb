"""Which tau decides a request: the request's own threshold if it gives one (within the
allowed range), else the default of the calibration in use, for verify (1:1) or for
identify (1:N, stricter). The calibration in use is the newest stored one of the active
model, its 1:N tau re-derived for the live gallery size when it follows the gallery,
else the backbone's built-in one (`calibration.py`). Which score 1:N decides on, and its
default tau, is `open_set_rule.py`'s choice.

The service, the style jobs' identity check and `facesvc compare` all choose here; the
command line has no database, so its calibration is always the built-in one.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.core.errors import ValidationFailed
from app.core.model.backbones.base import Calibration


@dataclass(frozen=True)
class Thresholds:
    """`allowed`: the range a request's own threshold must lie in (None: any, as on the
    command line)."""

    allowed: tuple[float, float] | None = None

    def check(self, requested: float | None) -> None:
        """A request's own threshold must lie in the allowed range (checked before any
        inference is spent on the request)."""
        if requested is None or self.allowed is None:
            return
        low, high = self.allowed
        if not low <= requested <= high:
            raise ValidationFailed(
                f"threshold: {requested} is outside the allowed range [{low}, {high}]"
            )

    def verify(self, calibration: Calibration, requested: float | None = None) -> float:
        """The 1:1 tau (verify, compare, the style jobs' identity check)."""
        return self._chosen(requested, calibration.tau_verify)

    def identify(self, default: float, requested: float | None = None) -> float:
        """The 1:N tau, on the scale the open-set rule decides on (`OpenSetRule.tau`)."""
        return self._chosen(requested, default)

    def _chosen(self, requested: float | None, default: float) -> float:
        if requested is None:
            return float(default)
        self.check(requested)
        return float(requested)
