"""The thread budget: --threads N keeps at most N threads busy, and the work split across them
gives the answer one thread gives."""

from __future__ import annotations

import threading

import numpy as np
import pytest

import gpupq
from gpupq.backends import NumpyBackend
from gpupq.errors import GpupqError
from gpupq.kmeans import kmeans
from gpupq.knn import exact_knn
from gpupq.threads import ThreadBudget, available_cores, blas_description, resolve_threads

from .helpers import clustered


def _blas_threads() -> int:
    """Threads of numpy's BLAS (the one gpupq's work runs on; faiss-cpu may bring another)."""
    from threadpoolctl import threadpool_info

    infos = [i for i in threadpool_info() if i["user_api"] == "blas"]
    return max(i["num_threads"] for i in infos if "numpy" in i["filepath"])


def test_map_keeps_order_uses_the_pool_and_pins_blas():
    """Results come back in order; pieces run on the pool's threads (no more than asked for),
    each with single-threaded BLAS, so the budget is never exceeded."""
    budget = ThreadBudget(3)
    seen: list[tuple[str, int]] = []
    lock = threading.Lock()

    def piece(i: int) -> int:
        with lock:
            seen.append((threading.current_thread().name, _blas_threads()))
        return i * i

    try:
        assert budget.map(piece, range(20)) == [i * i for i in range(20)]
    finally:
        budget.close()
    names = {name for name, _ in seen}
    assert names and all(n.startswith("gpupq") for n in names) and len(names) <= 3
    assert {b for _, b in seen} == {1}


def test_one_thread_runs_in_the_caller():
    budget = ThreadBudget(1)
    assert budget.map(lambda _: threading.current_thread().name, range(3)) == [threading.current_thread().name] * 3


def test_a_map_inside_a_map_runs_in_its_worker():
    """A nested map must not queue onto the pool its own workers occupy (that could deadlock)
    nor start more threads than the budget."""
    budget = ThreadBudget(2)
    try:
        out = budget.map(lambda i: budget.map(lambda j: (threading.current_thread().name, i + j), range(3)), range(4))
    finally:
        budget.close()
    for row in out:
        assert len({name for name, _ in row}) == 1  # the inner pieces ran in one thread
    assert [[v for _, v in row] for row in out] == [[i + j for j in range(3)] for i in range(4)]


def test_resolve_threads():
    assert resolve_threads(None) == available_cores() >= 1
    assert resolve_threads(3) == 3
    with pytest.raises(GpupqError, match="--threads must be at least 1"):
        resolve_threads(0)
    assert "unknown" not in blas_description()


def _with_threads(n: int) -> NumpyBackend:
    be = NumpyBackend()
    be.budget = ThreadBudget(n)
    return be


def test_exact_knn_on_threads_matches_one_thread():
    """Queries split into groups on 3 threads give the neighbours one thread gives."""
    x = clustered(5000, 16, seed=1)
    q = clustered(37, 16, seed=2)
    ids = np.arange(5000, dtype=np.int64)
    chunks = [(ids[s : s + 1500], x[s : s + 1500]) for s in range(0, 5000, 1500)]
    one = exact_knn(NumpyBackend(), q, chunks, 10, "l2")
    three_be = _with_threads(3)
    try:
        three = exact_knn(three_be, q, chunks, 10, "l2")
    finally:
        three_be.budget.close()
    np.testing.assert_allclose(one[0], three[0], rtol=1e-5, atol=1e-4)
    assert (one[1] == three[1]).mean() > 0.99  # float32 ties may swap


def test_kmeans_on_threads_matches_one_thread():
    x = clustered(6000, 8, seed=3)
    one = kmeans(NumpyBackend(), x, 32, 6, np.random.default_rng(0))
    be = _with_threads(3)
    try:
        three = kmeans(be, x, 32, 6, np.random.default_rng(0))
    finally:
        be.budget.close()
    np.testing.assert_allclose(one.objective, three.objective, rtol=1e-5)
    np.testing.assert_allclose(one.centroids, three.centroids, rtol=1e-4, atol=1e-4)


def test_estimate_on_one_and_two_threads_agree():
    ds = gpupq.make_synthetic(6000, 32, seed=1)
    cfg = dict(m=8, nlist=32, nprobe=4, nbits=6, k=10, rerank=40, queries=60)
    one = gpupq.estimate(ds, gpupq.EstimateConfig(**cfg, threads=1), "numpy")
    two = gpupq.estimate(ds, gpupq.EstimateConfig(**cfg, threads=2), "numpy")
    assert (one.threads, two.threads) == (1, 2)
    assert abs(one.results[0].recall.mean - two.results[0].recall.mean) <= 0.02
    assert one.results[0].recall_rerank.mean == pytest.approx(two.results[0].recall_rerank.mean, abs=0.02)
