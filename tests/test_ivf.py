import numpy as np
import pytest

from gpupq.ivf import IVFPQIndex
from gpupq.knn import exact_knn
from gpupq.metrics import recall_at_k
from gpupq.refine import rerank

from .conftest import clustered


def _build(be, x, nlist=16, m=4, nbits=8, metric="l2", seed=0):
    index = IVFPQIndex(be, x.shape[1], nlist, m, nbits, metric)
    xd = be.asarray(x)
    index.train(xd, xd, np.random.default_rng(seed))
    ids = np.arange(len(x), dtype=np.int64) * 3 + 7  # ids are carried, not positions
    for s in range(0, len(x), 700):  # several adds: the lists are merged on first search
        index.add(xd[s : s + 700], be.asarray(ids[s : s + 700]))
    return index, ids


def _brute(x, q, k, metric):
    if metric == "l2":
        d = ((q[:, None] - x[None]) ** 2).sum(-1)
    else:
        d = -(q @ x.T)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_exact_knn_matches_brute_force(backend, metric):
    x = clustered(3000, 16, seed=1)
    q = clustered(40, 16, seed=2)
    ids = np.arange(3000, dtype=np.int64) + 100
    chunks = [(ids[s : s + 512], x[s : s + 512]) for s in range(0, 3000, 512)]
    dist, found = exact_knn(backend, backend.asarray(q), chunks, 10, metric)
    expect = _brute(x, q, 10, metric) + 100
    assert recall_at_k(backend.to_numpy(found), expect, 10).mean == 1.0
    d = backend.to_numpy(dist)
    assert (np.diff(d, axis=1) >= -1e-4).all() if metric == "l2" else (np.diff(d, axis=1) <= 1e-4).all()


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_full_probe_and_full_rerank_is_exact(backend, metric):
    """nprobe = nlist with re-ranking of every candidate returns the exact neighbours."""
    x = clustered(2000, 16, seed=3)
    q = clustered(30, 16, seed=4)
    index, ids = _build(backend, x, metric=metric)
    _, cand, stats = index.search(backend.asarray(q), len(x), nprobe=16)
    assert (stats.scanned == len(x)).all()
    _, found = rerank(backend, backend.asarray(q), cand, lambda u: backend.asarray(x[(u - 7) // 3]), 10, metric)
    expect = ids[_brute(x, q, 10, metric)]
    assert recall_at_k(backend.to_numpy(found), expect, 10).mean == 1.0


def test_search_scores_are_adc_distances(backend):
    """Returned l2 scores equal ‖q − c − r‖² of the decoded vectors, in ascending order."""
    x = clustered(2000, 16, seed=5)
    q = clustered(20, 16, seed=6)
    index, _ids = _build(backend, x, nlist=8, m=4, nbits=6)
    dist, found, _ = index.search(backend.asarray(q), 10, nprobe=3)
    dist, found = backend.to_numpy(dist), backend.to_numpy(found)
    pos = {int(i): p for p, i in enumerate(backend.to_numpy(index.ids))}
    codes = backend.to_numpy(index.codes)
    labels = np.repeat(np.arange(8), index.list_sizes)
    coarse = backend.to_numpy(index.coarse)
    for qi in range(len(q)):
        rows = [pos[int(i)] for i in found[qi]]
        rec = backend.to_numpy(index.pq.decode(backend, backend.asarray(codes[rows]))) + coarse[labels[rows]]
        np.testing.assert_allclose(dist[qi], ((rec - q[qi]) ** 2).sum(1), rtol=1e-3, atol=1e-2)
    assert (np.diff(dist, axis=1) >= 0).all()


def test_strategies_agree(numpy_backend):
    """The CPU (lists) and GPU (padded) scans return the same neighbours."""
    from .conftest import PaddedNumpyBackend

    x = clustered(5000, 32, seed=7)
    q = clustered(50, 32, seed=8)
    a, _ = _build(numpy_backend, x, nlist=32, m=8)
    pb = PaddedNumpyBackend()
    b, _ = _build(pb, x, nlist=32, m=8)
    da, ia, _ = a.search(q, 20, nprobe=5)
    db, ib, _ = b.search(q, 20, nprobe=5)
    assert (ia == ib).mean() > 0.98
    np.testing.assert_allclose(da, db, rtol=1e-3, atol=1e-2)


def test_fewer_candidates_than_k_pads_with_minus_one(backend):
    x = clustered(600, 8, seed=9)
    index, _ = _build(backend, x, nlist=64, m=2, nbits=4)
    dist, found, stats = index.search(backend.asarray(x[:5]), 500, nprobe=1)
    found, dist = backend.to_numpy(found), backend.to_numpy(dist)
    for row, n in zip(found, stats.scanned, strict=True):
        assert (row[:n] >= 0).all() and (row[n:] == -1).all()
    assert np.isinf(dist[found == -1]).all()


def test_ip_scores_descend(backend):
    x = clustered(2000, 16, seed=10)
    index, _ = _build(backend, x, metric="ip")
    dist, _, _ = index.search(backend.asarray(x[:10]), 10, nprobe=4)
    assert (np.diff(backend.to_numpy(dist), axis=1) <= 1e-5).all()


def test_add_after_search_merges_lists(numpy_backend):
    x = clustered(3000, 16, seed=11)
    index, _ = _build(numpy_backend, x[:2000])
    index.search(x[:3], 5, 2)
    index.add(x[2000:], np.arange(2000, 3000, dtype=np.int64))
    assert index.ntotal == 3000
    index.search(x[:3], 5, 2)
    assert index.list_sizes.sum() == 3000
    assert sorted(index.ids.tolist()) == sorted([i * 3 + 7 for i in range(2000)] + list(range(2000, 3000)))


def test_without_precomputed_table_same_results(backend, monkeypatch):
    """Above FAISS's 2 GiB limit the table is not kept; search must give the same answers."""
    import gpupq.ivf

    x = clustered(3000, 16, seed=12)
    q = clustered(20, 16, seed=13)
    with_table, _ = _build(backend, x)
    monkeypatch.setattr(gpupq.ivf, "PRECOMPUTED_TABLE_MAX_BYTES", 0)
    without, _ = _build(backend, x)
    assert with_table.term2 is not None and without.term2 is None
    da, ia, _ = with_table.search(backend.asarray(q), 10, 4)
    db, ib, _ = without.search(backend.asarray(q), 10, 4)
    assert (backend.to_numpy(ia) == backend.to_numpy(ib)).mean() > 0.98
    np.testing.assert_allclose(backend.to_numpy(da), backend.to_numpy(db), rtol=1e-3, atol=1e-2)
