"""``--scale-curve``: how recall moves as the collection grows, measured on nested subsamples.

The method, kept simple so it can be stated in one paragraph of output:

1. Nested subsamples of the base: the base in one random order (a hash of the seed and row, as
   the training sample), and subsample s its first n_s rows, so each contains the smaller ones.
   Default sizes N/8, N/4, N/2 and N.
2. Each subsample is a base of its own: exact ground truth over it for the same queries, an index
   trained on it with nlist and nprobe scaled by the one projection rule every figure at N_total
   follows (:data:`gpupq.projection.RULE`: nlist ∝ √n, nprobe ∝ nlist, so the share of codes
   scanned is kept), the same m, nbits and re-ranking.
3. Two forms are fitted by weighted least squares (weights from each point's 95% interval):
   recall = a + b·log2(n), which keeps falling (or rising) at one rate, and
   recall = a + b/√n, which flattens as n grows; the form that better predicts the largest size
   from the smaller ones is the estimate (:func:`fit_trend`), and the band at ``--n-total``
   spans both forms' 95% bands and the largest size's own interval (a trend that stops there),
   so it covers what the points allow (:func:`prediction_band`).

Why the third: on 20M clustered vectors (benchmarks/RESULTS.md) recall fell steeply on the
subsamples of the sixteenth, while nlist was below the data's 8,000 clusters, then nearly
stopped; both fitted forms put 20M at about 0, and 0.158 was measured. No smooth form fitted
to the falling points sees such a change of regime, so the band keeps the possibility open.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .engine import Workbench
from .errors import GpupqError
from .io import Dataset, Split, with_query_file
from .metrics import Recall
from .projection import RULE, scale
from .settings import Build, Setting
from .threads import blas_threads

CAVEAT = (
    "extrapolated beyond the sizes measured: the band spans a trend that keeps its rate (linear in log2 N), "
    "one that flattens (linear in 1/√N) and one that stops at the largest size measured, for a deployment "
    "scaled by the one projection rule (nlist ∝ √N, nprobe ∝ nlist) with the same m, nbits and re-ranking"
)
DEFAULT_FRACTIONS = (1 / 8, 1 / 4, 1 / 2, 1.0)


#: the trend's two forms: x(n) in recall ≈ a + b·x(n)
FORMS = {
    "log": (lambda n: np.log2(n), "log2(N)"),  # keeps its rate per doubling
    "flat": (lambda n: 1.0 / np.sqrt(n), "1/√N"),  # flattens as N grows
}


@dataclass
class Trend:
    """recall ≈ a + b·x(N), x = log2(N) (form "log") or 1/√N (form "flat"), fitted by weighted
    least squares on measured points.

    predict(n) -> (mean, low, high): the curve and its 95% band, from the points' intervals,
    widened when the points scatter about the curve more than their intervals explain.
    """

    a: float
    b: float
    cov: np.ndarray  # (2, 2) covariance of (a, b)
    chi2_per_dof: float  # scatter about the curve in units of the points' own noise (≈1 when it fits)
    points: list[tuple[int, float, float]]  # (n, recall, half-width of its 95% interval)
    form: str = "log"
    held_out_z: float | None = None  # the largest size predicted from the others: |error| / its σ

    def predict(self, n: int) -> tuple[float, float, float]:
        x = float(FORMS[self.form][0](float(n)))
        mean = self.a + self.b * x
        g = np.array([1.0, x])
        sd = math.sqrt(max(float(g @ self.cov @ g), 0.0))
        lo, hi = mean - 1.96 * sd, mean + 1.96 * sd
        return float(np.clip(mean, 0, 1)), float(np.clip(lo, 0, 1)), float(np.clip(hi, 0, 1))

    @property
    def label(self) -> str:
        return f"recall = a + b·{FORMS[self.form][1]}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": f"{self.label}, weighted least squares (weights 1/σ², σ from each point's 95% interval)",
            "form": self.form,
            "a": self.a,
            "b": self.b,
            "per_doubling": self.b if self.form == "log" else None,
            "chi2_per_dof": self.chi2_per_dof,
            "held_out_z": self.held_out_z,
            "points": [{"n": n, "recall": r, "ci95_half_width": h} for n, r, h in self.points],
        }


#: above this χ²/dof the measured points scatter about the trend more than their intervals
#: explain (for one degree of freedom, 4 is beyond the 95th percentile of χ², 3.84): the band,
#: widened by it, is reported with a note
MAX_CHI2_PER_DOF = 4.0


def fit_trend(points: list[tuple[int, float, float]], form: str = "log") -> Trend:
    """Fit :class:`Trend` of ``form`` to (n, recall, 95% half-width) points, two or more of distinct n."""
    if len({n for n, _, _ in points}) < 2:
        raise ValueError("a trend needs points at two sizes or more")
    n = np.array([p[0] for p in points], dtype=np.float64)
    y = np.array([p[1] for p in points], dtype=np.float64)
    sigma = np.array([max(p[2] / 1.96, 1e-4) for p in points])  # a recall of exactly 1 has no spread
    x = np.stack([np.ones_like(n), FORMS[form][0](n)], axis=1)
    w = 1.0 / sigma**2
    xtwx = x.T @ (x * w[:, None])
    cov = np.linalg.pinv(xtwx)
    coef = cov @ (x.T @ (w * y))
    resid = y - x @ coef
    dof = len(points) - 2
    # scatter beyond what the intervals explain widens the band (chi² per degree of freedom > 1)
    chi2 = float((w * resid**2).sum() / dof) if dof > 0 else 1.0
    cov = cov * max(chi2, 1.0)
    pts = [(int(a), float(b), float(c)) for a, b, c in points]
    return Trend(float(coef[0]), float(coef[1]), cov, chi2, pts, form)


def held_out_z(points: list[tuple[int, float, float]], form: str) -> float | None:
    """How well ``form`` fitted to all sizes but the largest predicts the largest: |error| over the
    error's σ (the prediction's and the point's own); None with fewer than three sizes."""
    sizes = sorted({p[0] for p in points})
    if len(sizes) < 3:
        return None
    top = sizes[-1]
    trend = fit_trend([p for p in points if p[0] != top], form)
    mean, low, _ = trend.predict(top)
    for n, r, h in points:
        if n == top:
            sd = math.hypot((mean - low) / 1.96, max(h, 1e-4) / 1.96)
            return abs(mean - r) / sd
    return None


def fit_trends(points: list[tuple[int, float, float]]) -> tuple[Trend, list[Trend]]:
    """Both forms fitted to every point, and the one whose held-out prediction of the largest size
    erred least (the log form when there are only two sizes to fit)."""
    trends = []
    for form in FORMS:
        t = fit_trend(points, form)
        t.held_out_z = held_out_z(points, form)
        trends.append(t)
    scored = [t for t in trends if t.held_out_z is not None]
    best = min(scored, key=lambda t: t.held_out_z or 0.0) if scored else trends[0]
    return best, trends


class _Rows:
    """The rows ``rows`` (sorted ascending) of an (n, d) array-like, as an (len(rows), d) array-like."""

    def __init__(self, array: Any, rows: np.ndarray) -> None:
        self._array = array
        self._rows = rows
        self.shape = (len(rows), int(array.shape[1]))
        self.dtype = np.dtype(array.dtype)
        self.ndim = 2

    def __getitem__(self, key: Any) -> np.ndarray:
        if isinstance(key, slice):
            return np.asarray(self._array[self._rows[key]])
        return np.asarray(self._array[self._rows[np.asarray(key, dtype=np.int64)]])


@dataclass
class CurvePoint:
    n: int
    nlist: int
    recall: Recall  # of what the configuration returns (re-ranked when it re-ranks)
    recall_raw: Recall
    scanned_per_query: float
    nprobe: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "recall": self.recall.to_dict(),
            "recall_raw": self.recall_raw.to_dict(),
            "vectors_scanned_per_query": self.scanned_per_query,
        }


@dataclass
class ScaleCurve:
    build: Build
    setting: Setting
    k: int
    points: list[CurvePoint]
    trend: Trend
    n_total: int | None = None
    prediction: tuple[float, float, float] | None = None  # (mean, low, high) at n_total
    nlist_total: int | None = None
    nprobe_total: int | None = None
    notes: list[str] = field(default_factory=list)
    trends: list[Trend] = field(default_factory=list)  # every form fitted; ``trend`` is the chosen one

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "build": self.build.label,
            "nprobe": self.setting.nprobe,
            "rerank": self.setting.rerank,
            "rerank_store": self.setting.store or None,
            "k": self.k,
            "method": __doc__.split("\n\n")[1].strip() if __doc__ else "",
            "points": [p.to_dict() for p in self.points],
            "trend": self.trend.to_dict(),
            "trends": [t.to_dict() for t in self.trends],
            "caveat": CAVEAT,
            "notes": self.notes,
        }
        if self.prediction is not None:
            mean, low, high = self.prediction
            out["prediction"] = {
                "n_total": self.n_total,
                "nlist": self.nlist_total,
                "nprobe": self.nprobe_total,
                "rule": RULE,
                "recall": mean,
                "band95_low": low,
                "band95_high": high,
            }
        return out


def nested_bases(split: Split, sizes: list[int], seed: int) -> list[np.ndarray]:
    """Row numbers of each nested subsample of the base: (n_s,) int64 sorted, one per size."""
    order = split.sample_base(max(sizes), seed)
    return [np.sort(order[:s]) for s in sizes]


def scale_curve(
    dataset: Dataset,
    split: Split,
    build: Build,
    setting: Setting,
    k: int,
    be: Any,
    seed: int = 0,
    sizes: list[int] | None = None,
    n_total: int | None = None,
    batch_size: int = 1024,
    progress: Any = None,
) -> ScaleCurve:
    """Measure ``build`` at ``setting`` on nested subsamples of the base (``sizes``, default
    N/8..N) with the split's queries, fit the trend and extend it to ``n_total``."""
    nb = split.n_base
    notes: list[str] = []
    if sizes is None:
        sizes = sorted({max(1, int(nb * f)) for f in DEFAULT_FRACTIONS})
    need = max(k, setting.rerank, 1 << build.nbits)
    kept = [s for s in sizes if s >= need and s <= nb]
    if len(kept) < len(sizes):
        notes.append(f"sizes below {need} vectors (k, the re-rank depth or 2^nbits) skipped")
    if len(kept) < 2:
        raise GpupqError(f"--scale-curve needs at least two subsample sizes of {need} vectors or more; use more data")
    queries = Dataset(split.queries, split.query_source or f"{dataset.source} (held-out queries)", dataset.metric)
    points = []
    with blas_threads(1):
        for i, (n, rows) in enumerate(zip(kept, nested_bases(split, kept, seed + 3), strict=True)):
            if progress is not None:
                progress("scale curve: subsamples", i, len(kept))
            # rows: dataset row numbers of base vectors only (sample_base never draws a held-out query)
            sub = Dataset(_Rows(dataset.array, rows), f"{dataset.source}[{n} rows]", dataset.metric)
            sub_split = with_query_file(sub, queries)
            nlist, p = scale(build.nlist, setting.nprobe, nb, n)
            sub_build = Build(nlist, build.m, build.nbits, build.opq)
            bench = Workbench(be, sub, sub_split, seed=seed, batch_size=batch_size)
            truth = bench.truth(k)
            curve = bench.curve(sub_build, [p], max(k, setting.rerank))
            reranks = [(setting.rerank, setting.store)] if setting.rerank else []
            pts = bench.points(sub_build, curve, p, k, reranks, truth)
            pt = pts[-1]
            points.append(CurvePoint(n, nlist, pt.recall, pt.recall_raw, pt.scanned_per_query, p))
        if progress is not None:
            progress("scale curve: subsamples", len(kept), len(kept))
    # A recall of exactly 1 (or 0) has a zero-width interval; the rule of three bounds its error at
    # 3/queries instead, so a saturated point does not pin the line.
    floor = 3.0 / split.n_queries
    measured = [(p.n, p.recall.mean, max((p.recall.ci95_high - p.recall.ci95_low) / 2, floor)) for p in points]
    trend, trends = fit_trends(measured)
    out = ScaleCurve(build, setting, k, points, trend, notes=notes, trends=trends)
    if trend.chi2_per_dof > MAX_CHI2_PER_DOF:
        out.notes.append(
            f"the measured recalls scatter about the trend more than their intervals explain (χ²/dof "
            f"{trend.chi2_per_dof:.1f}); the band is widened by it (the lists' structure may change across these "
            "sizes, e.g. fewer lists than natural clusters at the small ones): measure nearer N_total to narrow it"
        )
    if n_total is not None:
        out.n_total = n_total
        out.nlist_total, out.nprobe_total = scale(build.nlist, setting.nprobe, nb, n_total)
        out.prediction = prediction_band(trend, trends, measured, n_total)
    return out


def prediction_band(
    trend: Trend, trends: list[Trend], measured: list[tuple[int, float, float]], n_total: int
) -> tuple[float, float, float]:
    """(mean, low, high) at n_total: the chosen trend's mean; a band spanning every form's 95%
    band and, beyond the largest size measured, that size's own interval (a trend that stops
    there: a change of regime the fitted forms cannot see). measured: (n, recall, half-width)."""
    mean, _, _ = trend.predict(n_total)
    bands = [t.predict(n_total) for t in trends]
    n_last, r_last, half = max(measured)
    if n_total > n_last:
        bands.append((r_last, max(0.0, r_last - half), min(1.0, r_last + half)))
    return mean, min(b[1] for b in bands), max(b[2] for b in bands)
