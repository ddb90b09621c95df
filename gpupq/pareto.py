"""Pareto frontiers of operating points.

A point is dominated when another is at least as good on every axis and strictly better on one.
Recall enters by its mean over queries (the interval is shown beside it, and ``recommend`` uses
its lower end); two points whose recall differs by less than the interval are both kept unless
one is also worse on cost. A measured axis with noise (queries/s) can carry a range per point:
then one point is better than another only when its whole range is (the worse end of one beats
the better end of the other), so a frontier does not move with the noise between two runs.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: the frontiers every sweep marks: name -> (axes, larger-is-better per axis)
FRONTIERS: dict[str, tuple[tuple[str, ...], tuple[bool, ...]]] = {
    "memory": (("recall", "memory"), (True, False)),
    "qps": (("recall", "qps"), (True, True)),
    "all": (("recall", "memory", "qps"), (True, False, True)),
}


def non_dominated(
    values: np.ndarray,
    larger_is_better: Sequence[bool],
    low: np.ndarray | None = None,
    high: np.ndarray | None = None,
) -> np.ndarray:
    """values: (n, a) float64, one row per point -> (n,) bool, True where no other point dominates.

    low, high: (n, a) float64 ranges around ``values`` (default: the values themselves). Point j
    dominates point i when j's better end reaches i's worse end on every axis and j's worse end
    beats i's better end on one. Rows holding NaN (an axis not measured for that point) are never
    on the frontier and never dominate. Equal rows do not dominate each other: both stay.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(larger_is_better):
        raise ValueError("values must be (n, axes) with one direction per axis")
    lo = v if low is None else np.minimum(np.asarray(low, dtype=np.float64), v)
    hi = v if high is None else np.maximum(np.asarray(high, dtype=np.float64), v)
    sign = np.where(np.asarray(larger_is_better), 1.0, -1.0)  # larger is better on every axis now
    worst = np.where(sign > 0, lo, -hi)  # each point's worse end, in "larger is better" terms
    best = np.where(sign > 0, hi, -lo)
    ok = ~np.isnan(v).any(axis=1)
    keep = ok.copy()
    idx = np.flatnonzero(ok)
    w, b = worst[ok], best[ok]
    # blocks of rows against all candidates: memory O(block · n · axes), whatever n is
    block = max(1, 4_000_000 // max(1, len(w) * v.shape[1]))
    for s in range(0, len(w), block):
        w_i, b_i = w[s : s + block, None, :], b[s : s + block, None, :]  # (blk, 1, a)
        ge = (b[None] >= w_i).all(axis=2)  # (blk, n): candidate j at least as good as row i
        gt = (w[None] > b_i).any(axis=2)  # and beyond doubt better on one axis
        keep[idx[s : s + block]] = ~(ge & gt).any(axis=1)
    return keep
