"""The stored model of how FPIR grows with the gallery size, as the service reads it:
FPIR(tau, N), the tau for a target FPIR at N, and the FNIR expected there. It is fitted
offline (`app/lab/calibration/gallery.py`, `facesvc calibrate`) and stored with the
calibration; this module only evaluates it."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
ModelKind = Literal["independent", "weibull"]


@dataclass(frozen=True)
class GalleryModel:
    """FPIR(tau, N) and the expected FNIR at tau for a gallery of N, from stored numbers.

    `impostor_cdf`: (tau, F) knots of the pooled impostor distance CDF, increasing; below
    the first knot F = tail_c * tau^tail_k. `weibull`: (log a, b, k). `genuine`: quantiles
    of the mated distance (probe to its own enrolled photo); `genuine_failed`: share of
    mated searches that fail outright (no face).
    """

    kind: ModelKind
    impostor_cdf: list[tuple[float, float]]
    tail_c: float
    tail_k: float
    weibull: tuple[float, float, float]
    genuine: list[float]
    genuine_failed: float

    # --- FPIR --------------------------------------------------------------------------

    def pair_far(self, tau: FloatArray) -> FloatArray:
        taus = np.asarray(tau, dtype=np.float64)
        knots = np.array(self.impostor_cdf)
        inside = np.interp(taus, knots[:, 0], knots[:, 1])
        tail = self.tail_c * np.power(np.maximum(taus, 0.0), self.tail_k)
        return np.where(taus < knots[0, 0], np.minimum(tail, knots[0, 1]), inside)

    def fpir(self, tau: npt.ArrayLike, gallery_size: float) -> FloatArray:
        taus = np.asarray(tau, dtype=np.float64)
        n = max(float(gallery_size), 1.0)
        if self.kind == "independent":
            return -np.expm1(n * np.log1p(-np.minimum(self.pair_far(taus), 1.0 - 1e-15)))
        log_a, b, k = self.weibull
        with np.errstate(divide="ignore"):
            exponent = log_a + b * math.log(n) + k * np.log(np.maximum(taus, 0.0))
        return -np.expm1(-np.exp(exponent))

    def tau_for_fpir(self, fpir: float, gallery_size: float) -> float:
        """The tau at which the model's FPIR for a gallery of N is `fpir`."""
        n = max(float(gallery_size), 1.0)
        if self.kind == "weibull":
            log_a, b, k = self.weibull
            return float(math.exp((math.log(-math.log1p(-fpir)) - log_a - b * math.log(n)) / k))
        per_pair = -math.expm1(math.log1p(-fpir) / n)  # F(tau) = 1 - (1 - FPIR)^(1/N)
        knots = np.array(self.impostor_cdf)
        if per_pair < knots[0, 1]:
            return float((per_pair / self.tail_c) ** (1.0 / self.tail_k))
        return float(np.interp(per_pair, knots[:, 1], knots[:, 0]))

    def stranger_rarity(self, distance: float, gallery_size: float) -> float:
        """1 - FPIR(distance, N): the share of strangers searching a gallery of N whose
        nearest distance would be above `distance`. It grows as the distance shrinks; it
        is not the probability that the nearest person is the right one."""
        return float(1.0 - self.fpir(np.array([distance]), gallery_size)[0])

    # --- FNIR --------------------------------------------------------------------------

    def expected_fnir(self, tau: float, gallery_size: float) -> float:
        """A mated search succeeds when its own distance g <= tau and none of the other
        N - 1 entries is nearer: 1 - E[1{g <= tau} (1 - FPIR(g, N - 1))]."""
        genuine = np.asarray(self.genuine)
        others = max(float(gallery_size) - 1.0, 0.0)
        beaten = self.fpir(genuine, others) if others >= 1.0 else np.zeros(genuine.size)
        success = np.where(genuine <= tau, 1.0 - beaten, 0.0)
        return float(1.0 - (1.0 - self.genuine_failed) * success.mean())

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "impostor_cdf": [list(knot) for knot in self.impostor_cdf],
            "tail_c": self.tail_c,
            "tail_k": self.tail_k,
            "weibull": list(self.weibull),
            "genuine": self.genuine,
            "genuine_failed": self.genuine_failed,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GalleryModel:
        a, b, k = data["weibull"]
        return cls(
            kind=data["kind"],
            impostor_cdf=[(float(t), float(f)) for t, f in data["impostor_cdf"]],
            tail_c=float(data["tail_c"]),
            tail_k=float(data["tail_k"]),
            weibull=(float(a), float(b), float(k)),
            genuine=[float(g) for g in data["genuine"]],
            genuine_failed=float(data["genuine_failed"]),
        )
