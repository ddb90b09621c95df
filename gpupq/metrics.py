"""Recall with its uncertainty.

Recall is k-recall@k counted the way ann-benchmarks counts it: a returned neighbour is right when
its exact distance is within the k-th true distance (ties included, with a small tolerance), so
duplicate vectors in a corpus do not punish a correct answer. The id-intersection figure
(``faiss.contrib.evaluation.knn_intersection_measure``) is kept beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

#: A returned neighbour is right when its exact distance is within the k-th true distance
#: times (1 + TIE_EPS) (under ip and cosine: within TIE_EPS of the k-th's gap to a perfect match,
#: the same thing for unit vectors). ann-benchmarks uses a distance threshold too, with 1e-3
#: absolute; measured on synthetic and real MiniLM vectors (400 queries, k = 10), 1e-3 relative
#: counted neighbours at genuinely different distances as ties for 84–98 queries, 1e-5 for at
#: most 2, while still covering duplicates, float noise and the rounding of a float32 GEMM
#: ground truth (about 1e-6 relative).
TIE_EPS = 1e-5

RECALL_DEFINITION = (
    "k-recall@k: share of the returned top-k whose exact distance is within the k-th true distance "
    f"(ties count, to a relative {TIE_EPS:g}; as ann-benchmarks counts), "
    "95% interval over per-query recall: Student's t interval of the mean, widened where needed to the "
    "rule of three (a kind of query absent from n queries may still be 3/n of them: the interval covers it "
    "scoring 0 or 1), clipped to [0, 1]; "
    "'by id' is the intersection |returned top-k ∩ exact top-k| / (queries·k)"
)


@dataclass
class Recall:
    """Mean k-recall@k over queries with a 95% interval (:func:`_interval`).

    by_id: the id-intersection recall of the same results, or None where only ids were scored.
    """

    mean: float
    ci95_low: float
    ci95_high: float
    queries: int
    by_id: float | None = None
    sd: float | None = None  # the standard deviation of per-query recall (how fast more queries help)

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


#: Student's t quantile t(0.975, df) for df = 1..30; past 30 an expansion in 1/df is exact to 1e-4
_T975 = (
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131,
    2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
)  # fmt: skip
_Z975 = 1.959964


def t975(df: int) -> float:
    """Student's t quantile at 0.975 for df degrees of freedom (df >= 1)."""
    if df <= len(_T975):
        return _T975[df - 1]
    z = _Z975  # Cornish-Fisher expansion of the t quantile (Abramowitz & Stegun 26.7.5)
    return z + (z**3 + z) / (4 * df) + (5 * z**5 + 16 * z**3 + 3 * z) / (96 * df**2)


def _interval(per_query: np.ndarray) -> tuple[float, float, float, float]:
    """(mean, low, high, sd): the mean of per-query values in [0, 1], a 95% interval for it, and
    their standard deviation.

    Student's t interval, widened to the rule of three where it is narrower: a kind of query
    absent from n queries can still make up 3/n of them (95%), and scoring 0 (or 1) it would move
    the mean to mean·(1 − 3/n) (or mean + (1 − mean)·3/n). A normal interval has zero width when
    every query agrees, so ten perfect queries would claim recall 1.000±.000; this one gives
    [0.7, 1] and takes about 3/(1 − target) queries before any mean can clear a target.
    """
    nq = len(per_query)
    if nq == 0:
        return 0.0, 0.0, 1.0, 0.0
    mean = float(per_query.mean())
    sd = float(per_query.std(ddof=1)) if nq > 1 else 0.0
    half = t975(nq - 1) * sd / np.sqrt(nq) if nq > 1 else 1.0
    share = min(1.0, 3.0 / nq)  # rule of three: the share of queries a sample this size can miss
    low = min(mean - half, mean * (1.0 - share))
    high = max(mean + half, mean + (1.0 - mean) * share)
    return mean, float(max(0.0, low)), float(min(1.0, high)), sd


def intersection_hits(found: np.ndarray, exact: np.ndarray, k: int) -> np.ndarray:
    """Per query, how many of the exact top-k ids are among the returned top-k.

    found: (nq, >=k) int64 ids (-1 = none); exact: (nq, >=k) int64. Returns (nq,) int64.
    """
    found = np.asarray(found)[:, :k]
    exact = np.asarray(exact)[:, :k]
    nq = found.shape[0]
    hits = np.zeros(nq, dtype=np.int64)
    step = max(1, (1 << 24) // (k * k))  # bound the (step, k, k) comparison
    for s in range(0, nq, step):
        f, e = found[s : s + step], exact[s : s + step]
        hits[s : s + step] = ((f[:, :, None] == e[:, None, :]).any(axis=2) & (f >= 0)).sum(axis=1)
    return hits


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> Recall:
    """The id-intersection measure alone (faiss.contrib.evaluation.knn_intersection_measure):
    per query, the share of the exact top-k ids found among the returned top-k.

    found: (nq, >=k) int64 ids (-1 = none); exact: (nq, >=k) int64 true neighbours. Blind to
    ties: use :meth:`GroundTruth.recall` for the figure gpupq reports.
    """
    per_query = intersection_hits(found, exact, k) / k
    mean, low, high, sd = _interval(per_query)
    return Recall(mean=mean, ci95_low=low, ci95_high=high, queries=len(per_query), sd=sd)


def exact_scores(
    rows: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, ids: np.ndarray, metric: str
) -> np.ndarray:
    """Exact scores of candidate ids, computed directly (not through ‖q‖² − 2⟨q, x⟩ + ‖x‖², whose
    rounding would split exact duplicates), in float64.

    rows(ids) -> (len(ids), d) float32 vectors as the index sees them (normalised under cosine);
    queries: (nq, d) float32; ids: (nq, r) int64, -1 = none. Returns (nq, r) float64: squared
    L2 distances for ``l2``, inner products for ``ip``; NaN where the id is -1.
    """
    ids = np.asarray(ids, dtype=np.int64)
    nq, r = ids.shape
    out = np.full((nq, r), np.nan, dtype=np.float64)
    d = queries.shape[1]
    step = max(1, (32 << 20) // max(1, r * d * 8))  # queries per chunk: ~32 MiB of float64 rows
    for s in range(0, nq, step):
        block = ids[s : s + step]
        valid = block >= 0
        if not valid.any():
            continue
        uniq, inverse = np.unique(block[valid], return_inverse=True)
        vecs = rows(uniq).astype(np.float64)[inverse]  # (v, d)
        q = np.repeat(queries[s : s + step].astype(np.float64), valid.sum(axis=1), axis=0)  # (v, d)
        if metric == "l2":
            diff = vecs - q
            score = np.einsum("vd,vd->v", diff, diff)
        else:
            score = np.einsum("vd,vd->v", vecs, q)
        sub = out[s : s + step]
        sub[valid] = score
    return out


@dataclass
class GroundTruth:
    """The queries' exact neighbours, and the scores that decide when a returned one is right.

    queries: (nq, d) float32 on the host, as the index sees them (normalised under cosine);
    ids: (nq, K) int64 exact neighbours, best first, K >= k; with K > k the (k+1)-th tells
    whether the k-th is tied (duplicates); rows(ids) -> (len(ids), d) float32 fetches vectors;
    metric: ``l2`` or ``ip`` (cosine is ip on normalised rows).
    """

    queries: np.ndarray
    ids: np.ndarray
    k: int
    metric: str
    rows: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    #: (nq, min(K, k + 1)) float64 exact scores of ``ids``
    scores: np.ndarray = field(init=False, repr=False)
    #: (nq,) float64: a returned neighbour scoring at or inside this is right
    threshold: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if self.ids.ndim != 2 or self.ids.shape[1] < self.k:
            raise ValueError(f"ground truth ids {self.ids.shape} hold fewer than k={self.k} neighbours per query")
        self.scores = exact_scores(self.rows, self.queries, self.ids[:, : self.k + 1], self.metric)
        top = self.scores[:, : self.k]
        nq = len(top)
        worst = np.nanargmax(top, axis=1) if self.metric == "l2" else np.nanargmin(top, axis=1)
        # the worst of the true top-k, not the k-th as listed: stored lists may be out of order
        kth = top[np.arange(nq), worst]
        if self.metric == "l2":
            self.threshold = kth * (1.0 + TIE_EPS) ** 2
        else:
            # Inner products have no scale of their own; ‖q‖·‖x‖ − ⟨q, x⟩ ≥ 0 (Cauchy–Schwarz) is
            # the gap to a perfect match, half the squared distance for unit vectors, so ε of it
            # is the same tolerance as under l2.
            x_norm = np.linalg.norm(self.rows(self.ids[np.arange(nq), worst]).astype(np.float64), axis=1)
            q_norm = np.linalg.norm(self.queries.astype(np.float64), axis=1)
            self.threshold = kth - 2.0 * TIE_EPS * np.maximum(q_norm * x_norm - kth, 0.0)

    @property
    def nq(self) -> int:
        return int(self.ids.shape[0])

    def head(self, n: int) -> GroundTruth:
        """The ground truth of the first n queries (a screening subset)."""
        if n >= self.nq:
            return self
        return GroundTruth(self.queries[:n], self.ids[:n], self.k, self.metric, self.rows)

    def is_right(self, scores: np.ndarray) -> np.ndarray:
        """scores: (nq, r) float64 exact scores (NaN = no neighbour) -> (nq, r) bool."""
        with np.errstate(invalid="ignore"):  # NaN compares False: a missing neighbour is wrong
            if self.metric == "l2":
                return scores <= self.threshold[:, None]
            return scores >= self.threshold[:, None]

    @property
    def tied(self) -> np.ndarray | None:
        """(nq,) bool: the (k+1)-th true neighbour is as near as the k-th, so which ids make
        the exact top-k is ambiguous; None when the (k+1)-th is not known."""
        if self.scores.shape[1] <= self.k:
            return None
        return self.is_right(self.scores[:, self.k : self.k + 1])[:, 0]

    def recall(self, found: np.ndarray) -> Recall:
        """k-recall@k of found: (nq, >=k) int64 ids on the host (-1 = none), by exact distance,
        with the id-intersection figure in ``by_id``."""
        found = np.asarray(found, dtype=np.int64)[:, : self.k]
        right = self.is_right(exact_scores(self.rows, self.queries, found, self.metric))
        per_query = right.sum(axis=1) / self.k
        mean, low, high, sd = _interval(per_query)
        by_id = float(intersection_hits(found, self.ids, self.k).mean() / self.k)
        return Recall(mean=mean, ci95_low=low, ci95_high=high, queries=self.nq, by_id=by_id, sd=sd)
