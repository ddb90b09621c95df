"""Pareto frontiers of operating points.

A point is dominated when another is at least as good on every axis and strictly better on one.
Recall enters by its mean over queries (the interval is shown beside it, and ``recommend`` uses
its lower end); two points whose recall differs by less than the interval are both kept unless
one is also worse on cost.
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


def non_dominated(values: np.ndarray, larger_is_better: Sequence[bool]) -> np.ndarray:
    """values: (n, a) float64, one row per point -> (n,) bool, True where no other point dominates.

    Rows holding NaN (an axis not measured for that point) are never on the frontier and never
    dominate. Equal rows do not dominate each other: both stay.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != len(larger_is_better):
        raise ValueError("values must be (n, axes) with one direction per axis")
    v = v * np.where(np.asarray(larger_is_better), 1.0, -1.0)  # larger is better on every axis now
    ok = ~np.isnan(v).any(axis=1)
    keep = ok.copy()
    cand = v[ok]
    idx = np.flatnonzero(ok)
    # blocks of rows against all candidates: memory O(block · n · axes), whatever n is
    block = max(1, 4_000_000 // max(1, len(cand) * v.shape[1]))
    for s in range(0, len(cand), block):
        rows = cand[s : s + block, None, :]  # (b, 1, a)
        ge = (cand[None] >= rows).all(axis=2)  # (b, n): candidate j at least as good as row i
        gt = (cand[None] > rows).any(axis=2)
        keep[idx[s : s + block]] = ~(ge & gt).any(axis=1)
    return keep
