"""The collection the user will deploy, not only the sample they measured.

- :func:`deployment` bills a configuration at N_total vectors, exactly, with nlist scaled by
  :data:`NLIST_RULE`; recall stays what was measured at the sample size, and says so.
- :func:`fit_trend` fits recall against log2 N on nested subsamples (:func:`gpupq.sweep.scale_curve`
  measures them) and extends the line to N_total with an uncertainty band.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .engine import Build
from .metrics import MemoryBill, memory_bill
from .refine import RerankStore

NLIST_RULE = (
    "nlist scaled by √(N_total / N_sample), rounded to a power of two (FAISS's guideline puts nlist at "
    "4√N to 16√N, so its ratio to √N is kept); nprobe scaled by the same factor, so the share of lists probed "
    "is kept"
)
RECALL_CAVEAT = "recall was measured at the sample size, not at N_total"


def scaled_nlist(nlist: int, n_sample: int, n_total: int) -> int:
    """nlist for n_total vectors by :data:`NLIST_RULE` (at least 1, at most n_total)."""
    raw = nlist * math.sqrt(n_total / max(n_sample, 1))
    out = 1 << max(0, round(math.log2(max(raw, 1.0))))
    return int(max(1, min(out, n_total)))


@dataclass
class Deployment:
    """A configuration billed at the deployment size."""

    n_total: int
    nlist: int
    nprobe: int
    memory: MemoryBill
    memory_bytes: int  # the index, plus the re-rank store when it re-ranks

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_total": self.n_total,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "memory_bytes": self.memory_bytes,
            "memory": self.memory.to_dict(),
            "rule": NLIST_RULE,
            "recall_note": RECALL_CAVEAT,
        }


def deployment(
    build: Build, nprobe: int, store: RerankStore | None, n_sample: int, n_total: int, d: int, metric: str
) -> Deployment:
    """The exact bill of ``build`` holding n_total vectors (with ``store`` when it re-ranks)."""
    nlist = scaled_nlist(build.nlist, n_sample, n_total)
    nprobe_t = max(1, min(nlist, round(nprobe * nlist / build.nlist)))
    store_bytes = store.nbytes(n_total, d) if store is not None else 0
    bill = memory_bill(n_total, d, nlist, build.m, build.nbits, metric, store_bytes, build.opq)
    total = bill.with_rerank if store is not None else bill.index_in_memory
    return Deployment(n_total, nlist, nprobe_t, bill, total)


@dataclass
class Trend:
    """recall ≈ a + b·log2(N), fitted by weighted least squares on measured points.

    predict(n) -> (mean, low, high): the line and its 95% band, from the points' intervals,
    widened when the points scatter about the line more than their intervals explain.
    """

    a: float
    b: float
    cov: np.ndarray  # (2, 2) covariance of (a, b)
    chi2_per_dof: float  # scatter about the line in units of the points' own noise (≈1 when the line fits)
    points: list[tuple[int, float, float]]  # (n, recall, half-width of its 95% interval)

    def predict(self, n: int) -> tuple[float, float, float]:
        x = math.log2(n)
        mean = self.a + self.b * x
        g = np.array([1.0, x])
        sd = math.sqrt(max(float(g @ self.cov @ g), 0.0))
        lo, hi = mean - 1.96 * sd, mean + 1.96 * sd
        return float(np.clip(mean, 0, 1)), float(np.clip(lo, 0, 1)), float(np.clip(hi, 0, 1))

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": "recall = a + b·log2(N), weighted least squares (weights 1/σ², σ from each point's 95% interval)",
            "a": self.a,
            "b": self.b,
            "per_doubling": self.b,
            "chi2_per_dof": self.chi2_per_dof,
            "points": [{"n": n, "recall": r, "ci95_half_width": h} for n, r, h in self.points],
        }


#: above this χ²/dof the measured points do not follow one log-linear trend, and no extrapolation
#: is given (for one degree of freedom, 4 is beyond the 95th percentile of χ², 3.84)
MAX_CHI2_PER_DOF = 4.0


def fit_trend(points: list[tuple[int, float, float]]) -> Trend:
    """Fit :class:`Trend` to (n, recall, 95% half-width) points, two or more of distinct n."""
    if len({n for n, _, _ in points}) < 2:
        raise ValueError("a trend needs points at two sizes or more")
    n = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    sigma = np.array([max(p[2] / 1.96, 1e-4) for p in points])  # a recall of exactly 1 has no spread
    x = np.stack([np.ones_like(n), np.log2(n)], axis=1)
    w = 1.0 / sigma**2
    xtwx = x.T @ (x * w[:, None])
    cov = np.linalg.pinv(xtwx)
    coef = cov @ (x.T @ (w * y))
    resid = y - x @ coef
    dof = len(points) - 2
    # scatter beyond what the intervals explain widens the band (chi² per degree of freedom > 1)
    chi2 = float((w * resid**2).sum() / dof) if dof > 0 else 1.0
    cov = cov * max(chi2, 1.0)
    return Trend(float(coef[0]), float(coef[1]), cov, chi2, [(int(a), float(b), float(c)) for a, b, c in points])
