"""Re-ranking (gpupq/refine.py): the re-rank store's round trips and size, and exact re-ranking
of candidate lists, empty chunks and rows without any candidate included. (Recall against FAISS
IndexRefine is in test_faiss.py.)"""

from __future__ import annotations

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.memory import store_bytes
from gpupq.refine import RerankStore, rerank

from .helpers import clustered


def test_rerank_chunk_without_any_candidate(backend, monkeypatch):
    """A re-rank chunk whose candidates are all -1 returns inf / -1 rows of the usual shape,
    never fetches an empty id list, and leaves the other chunks' answers right."""
    x = clustered(500, 8, seed=34)
    q = clustered(6, 8, seed=35)
    rng = np.random.default_rng(0)
    cand = np.stack([rng.choice(500, 12, replace=False) for _ in range(6)]).astype(np.int64)
    cand[2:4] = -1  # the second chunk of two queries has nothing
    cand[4, 5:] = -1  # fewer than k in one row
    monkeypatch.setattr(backend, "work_bytes", lambda: 12 * 8 * 4 * 3 * 2)  # 2 queries a chunk
    fetched = []

    def fetch(ids):
        fetched.append(len(ids))
        return backend.asarray(x[ids])

    dist, found = rerank(backend, backend.asarray(q), backend.asarray(cand), fetch, 8, "l2")
    dist, found = backend.to_numpy(dist), backend.to_numpy(found)
    assert len(fetched) == 2 and min(fetched) > 0  # chunks 1 and 3; chunk 2 fetches nothing
    assert dist.shape == found.shape == (6, 8)
    assert (found[2:4] == -1).all() and np.isinf(dist[2:4]).all()
    assert (found[4, 5:] == -1).all() and np.isinf(dist[4, 5:]).all()
    for row in (0, 1, 4, 5):
        c = cand[row][cand[row] >= 0]
        exact = ((x[c] - q[row]) ** 2).sum(1)
        order = np.argsort(exact, kind="stable")[:8]
        np.testing.assert_allclose(dist[row, : len(order)], exact[order], rtol=1e-5)
        assert set(found[row, : len(order)].tolist()) == set(c[order].tolist())


@pytest.mark.parametrize("r", [0, 5])
def test_rerank_without_any_candidate_at_all(backend, r):
    """No candidate anywhere (R of them all -1, or R = 0): inf / -1, no fetch at all."""
    q = backend.asarray(clustered(3, 8, seed=36))
    cand = backend.asarray(np.full((3, r), -1, dtype=np.int64))

    def fetch(ids):
        raise AssertionError(f"fetched {len(ids)} ids with no candidate to score")

    for metric, empty in (("l2", np.inf), ("ip", -np.inf)):
        dist, found = rerank(backend, q, cand, fetch, 4, metric)
        assert backend.to_numpy(found).tolist() == [[-1] * 4] * 3
        assert (backend.to_numpy(dist) == empty).all()


def test_fp32_store_round_trips_exactly():
    x = clustered(200, 12, seed=40)
    store = RerankStore("fp32").fit(x)
    np.testing.assert_array_equal(store.round_trip(x), x)
    assert store.encode(x).dtype == np.float32


def test_fp16_store_round_trips_within_half_precision():
    """Every value comes back as its nearest float16: within half a float16 step of it."""
    x = clustered(200, 12, seed=41)
    store = RerankStore("fp16").fit(x)
    assert store.encode(x).dtype == np.float16
    back = store.round_trip(x)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, x.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(back, x, rtol=2.0**-11, atol=0)
    assert not np.array_equal(back, x)  # it does lose precision


def test_sq8_store_round_trips_within_half_a_step_of_its_range():
    """sq8 learns a per-dimension min and range from the sample: a value inside it comes back
    within half a step (range / 255) of itself; one outside is clipped to the range's ends."""
    x = clustered(500, 12, seed=42)
    store = RerankStore("sq8").fit(x)
    np.testing.assert_array_equal(store.vmin, x.min(axis=0))
    np.testing.assert_allclose(store.vdiff, x.max(axis=0) - x.min(axis=0))
    codes = store.encode(x)
    assert codes.dtype == np.uint8
    step = store.vdiff / 255.0
    back = store.round_trip(x)
    assert back.dtype == np.float32
    assert (np.abs(back - x) <= step / 2 + 1e-5).all()
    outside = np.stack([x.min(axis=0) - 100, x.max(axis=0) + 100]).astype(np.float32)
    clipped = store.round_trip(outside)
    np.testing.assert_allclose(clipped[0], store.vmin + step / 2, rtol=1e-5)
    np.testing.assert_allclose(clipped[1], store.vmin + 255.5 * step, rtol=1e-5)


def test_sq8_constant_dimension_round_trips():
    """A dimension with one value everywhere has no range: it still decodes to that value."""
    x = clustered(100, 4, seed=43)
    x[:, 2] = 3.25
    back = RerankStore("sq8").fit(x).round_trip(x)
    assert np.isfinite(back).all()
    np.testing.assert_allclose(back[:, 2], 3.25, atol=0.5 / 255)


@pytest.mark.parametrize("kind", ["fp32", "fp16", "sq8"])
def test_store_nbytes_is_the_memory_bill(kind):
    store = RerankStore(kind)
    for n, d in ((1, 1), (1000, 96), (12345, 17)):
        assert store.nbytes(n, d) == store_bytes(kind, n, d)
    assert store.nbytes(1000, 96) == {"fp32": 384_000, "fp16": 192_000, "sq8": 96_000 + 768}[kind]


def test_unknown_store_is_refused():
    with pytest.raises(GpupqError, match=r"--rerank-store 'fp8' is not one of fp32, fp16, sq8"):
        RerankStore("fp8")


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_shared_scores_are_each_arrays_own_scores(backend, metric):
    """Scoring several candidate arrays together (each pair once) gives every array exactly the
    scores it gets alone: shared ids, -1 slots, a row with no candidate, arrays of other widths."""
    from gpupq.refine import candidate_scores, shared_candidate_scores

    rng = np.random.default_rng(2)
    x = clustered(300, 12, seed=1)
    q = backend.asarray(clustered(9, 12, seed=2))
    store = RerankStore("sq8").fit(x)

    def fetch(ids):
        return backend.asarray(store.round_trip(x[ids]))

    cands = []
    for width in (5, 20, 20, 40):
        c = np.stack([rng.choice(300, size=width, replace=False) for _ in range(9)]).astype(np.int64)
        c[rng.random(c.shape) < 0.2] = -1
        c[4] = -1  # a query with no candidate at all
        cands.append(backend.asarray(c))
    shared = shared_candidate_scores(backend, q, cands, fetch, metric)
    for c, s in zip(cands, shared, strict=True):
        alone = backend.to_numpy(candidate_scores(backend, q, c, fetch, metric))
        assert np.array_equal(backend.to_numpy(s), alone)
        assert np.isinf(alone[4]).all()
