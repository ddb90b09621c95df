"""Exact k-NN (gpupq/knn.py): the ground truth every recall is measured against, on every
backend, ties broken by id."""

import numpy as np
import pytest

from gpupq.knn import exact_knn
from gpupq.metrics import recall_at_k

from .helpers import _brute, clustered


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_exact_knn_matches_brute_force(backend, metric):
    """Catches a wrong ground truth on any backend: a bad score formula, merge or id mapping."""
    x = clustered(3000, 16, seed=1)
    q = clustered(40, 16, seed=2)
    ids = np.arange(3000, dtype=np.int64) + 100
    chunks = [(ids[s : s + 512], x[s : s + 512]) for s in range(0, 3000, 512)]
    dist, found = exact_knn(backend, backend.asarray(q), chunks, 10, metric)
    expect = _brute(x, q, 10, metric) + 100
    assert recall_at_k(backend.to_numpy(found), expect, 10).mean == 1.0
    d = backend.to_numpy(dist)
    assert (np.diff(d, axis=1) >= -1e-4).all() if metric == "l2" else (np.diff(d, axis=1) <= 1e-4).all()


@pytest.mark.parametrize(("vectors", "copies", "chunk", "k"), [(60, 25, 200, 10), (100, 12, 410, 3)])
def test_exact_knn_breaks_ties_by_id_in_any_order(backend, vectors, copies, chunk, k):
    """Duplicated base vectors give tied distances: every backend (compiled merge, array form,
    CuPy class) lists the same neighbours, the smallest ids among equal distances, even when
    ids do not ascend through the base and a tie for the k-th arrives after it (the second
    case: a few copies per chunk, so the merge's sparse path meets those ties)."""
    rng = np.random.default_rng(6)
    # small integers: every product and sum is exact in float32 whatever order the BLAS kernel
    # sums in (OpenBLAS's edge tiles sum differently, so copies of a real-valued row at different
    # columns can differ by an ulp and would not tie)
    x = rng.permutation(np.repeat(np.round(clustered(vectors, 8, seed=5)), copies, axis=0)).astype(np.float32)
    q = x[::97] + 1
    ids = rng.permutation(10_000)[: len(x)].astype(np.int64)
    chunks = [(ids[s : s + chunk], x[s : s + chunk]) for s in range(0, len(x), chunk)]
    dist, found = exact_knn(backend, backend.asarray(q), chunks, k, "l2")
    exact = ((q[:, None, :].astype(np.float64) - x[None]) ** 2).sum(-1)
    for r in range(len(q)):
        # copies tie exactly (identical rows, exact integer scores)
        order = np.lexsort((ids, exact[r]))[:k]
        np.testing.assert_array_equal(backend.to_numpy(found)[r], ids[order])
    assert backend.to_numpy(dist).shape == (len(q), k)
