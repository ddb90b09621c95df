import numpy as np
import pytest

from gpupq.ivf import IVFPQIndex
from gpupq.metrics import recall_at_k
from gpupq.refine import rerank

from .helpers import _brute, clustered, same_neighbours


def _build(be, x, nlist=16, m=4, nbits=8, metric="l2", seed=0):
    index = IVFPQIndex(be, x.shape[1], nlist, m, nbits, metric)
    xd = be.asarray(x)
    index.train(xd, xd, np.random.default_rng(seed))
    ids = np.arange(len(x), dtype=np.int64) * 3 + 7  # ids are carried, not positions
    for s in range(0, len(x), 700):  # several adds: the lists are merged on first search
        index.add(xd[s : s + 700], be.asarray(ids[s : s + 700]))
    return index, ids


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_full_probe_and_full_rerank_is_exact(backend, metric):
    """nprobe = nlist with re-ranking of every candidate returns the exact neighbours: catches
    lost or duplicated list entries, wrong ids, and re-ranking errors, on any backend."""
    x = clustered(2000, 16, seed=3)
    q = clustered(30, 16, seed=4)
    index, ids = _build(backend, x, metric=metric)
    _, cand, stats = index.search(backend.asarray(q), len(x), nprobe=16)
    assert (stats.scanned == len(x)).all()
    _, found = rerank(backend, backend.asarray(q), cand, lambda u: backend.asarray(x[(u - 7) // 3]), 10, metric)
    expect = ids[_brute(x, q, 10, metric)]
    assert recall_at_k(backend.to_numpy(found), expect, 10).mean == 1.0


def test_search_scores_are_adc_distances(backend):
    """Returned l2 scores equal ‖q − c − r‖² of the decoded vectors, in ascending order:
    catches a wrong table, list term or scan on any backend, independently of numpy's."""
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


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_search_agrees_with_numpy(other_backend, numpy_backend, metric):
    """Every other backend (numpy in tiny chunks, the CuPy backend class) returns the neighbours and
    scores of numpy's lists scan, from the same training: catches a scan, table or top-k that
    differs between backends. Tied scores may come back in any order, so ties are not compared."""
    x = clustered(5000, 32, seed=7)
    q = clustered(50, 32, seed=8)
    be = other_backend
    a, ids = _build(numpy_backend, x, nlist=32, m=8, nbits=6, metric=metric)
    # numpy's trained state on the other backend: training itself may drift apart in the last
    # bits (CuPy sums centroids with float32 atomics, numpy in float64), and k-means amplifies
    # that; training is compared in test_kmeans, the scan here.
    b = IVFPQIndex(be, 32, 32, 8, 6, metric)
    b.coarse, b.pq.codebooks = be.asarray(a.coarse), be.asarray(a.pq.codebooks)
    b.term2 = None if a.term2 is None else be.asarray(a.term2)
    for s in range(0, len(x), 700):
        b.add(be.asarray(x[s : s + 700]), be.asarray(ids[s : s + 700]))
    da, ia, sa = a.search(q, 20, nprobe=5)
    db, ib, sb = b.search(be.asarray(q), 20, nprobe=5)
    same_neighbours(da, ia, be.to_numpy(db), be.to_numpy(ib), metric)
    np.testing.assert_array_equal(sa.scanned, sb.scanned)


def test_fewer_candidates_than_k_pads_with_minus_one(backend):
    """Catches garbage ids or finite scores in the slots no scanned vector fills."""
    x = clustered(600, 8, seed=9)
    index, _ = _build(backend, x, nlist=64, m=2, nbits=4)
    dist, found, stats = index.search(backend.asarray(x[:5]), 500, nprobe=1)
    found, dist = backend.to_numpy(found), backend.to_numpy(dist)
    for row, n in zip(found, stats.scanned, strict=True):
        assert (row[:n] >= 0).all() and (row[n:] == -1).all()
    assert np.isinf(dist[found == -1]).all()


def test_ip_scores_descend(backend):
    """Catches a sign slip in the inner-product convention (similarities, descending)."""
    x = clustered(2000, 16, seed=10)
    index, _ = _build(backend, x, metric="ip")
    dist, _, _ = index.search(backend.asarray(x[:10]), 10, nprobe=4)
    assert (np.diff(backend.to_numpy(dist), axis=1) <= 1e-5).all()


def test_add_after_search_merges_lists(backend):
    """Adding after a search rebuilds the lists from the stored rows: catches rows lost,
    duplicated or put in the wrong list by the rebuild, on every backend (tiny chunks
    and the CuPy class included): the result equals adding everything before the first search."""
    x = clustered(3000, 16, seed=11)
    q = backend.asarray(x[:40])
    index, _ = _build(backend, x[:2000])
    index.search(q, 5, 2)
    index.add(backend.asarray(x[2000:]), backend.asarray(np.arange(2000, 3000, dtype=np.int64)))
    assert index.ntotal == 3000
    d_after, i_after, _ = index.search(q, 10, 3)
    assert index.list_sizes.sum() == 3000
    ids = backend.to_numpy(index.ids)
    assert sorted(ids.tolist()) == sorted([i * 3 + 7 for i in range(2000)] + list(range(2000, 3000)))

    once, _ = _build(backend, x[:2000])  # same training; everything added before any search
    once.add(backend.asarray(x[2000:]), backend.asarray(np.arange(2000, 3000, dtype=np.int64)))
    d_once, i_once, _ = once.search(q, 10, 3)
    np.testing.assert_array_equal(ids, backend.to_numpy(once.ids))
    np.testing.assert_array_equal(backend.to_numpy(index.codes), backend.to_numpy(once.codes))
    np.testing.assert_array_equal(backend.to_numpy(i_after), backend.to_numpy(i_once))
    np.testing.assert_array_equal(backend.to_numpy(d_after), backend.to_numpy(d_once))


def test_without_precomputed_table_same_results(backend, monkeypatch):
    """Above FAISS's 2 GiB limit the table is not kept; search must give the same answers:
    catches a wrong on-the-fly list term (the path large indexes take) on any backend."""
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


def test_reset_empties_the_lists_and_keeps_the_training(backend):
    """The estimate times adding several times on one trained index, resetting between runs:
    catches a reset that leaves rows behind (a second add would hold them twice) or a stale
    per-vector term (wrong scores after the re-add)."""
    x = clustered(2000, 16, seed=21)
    q = backend.asarray(clustered(20, 16, seed=22))
    index, ids = _build(backend, x)
    d1, i1, _ = index.search(q, 10, 4)
    coarse = backend.to_numpy(index.coarse).copy()
    index.reset()
    assert index.ntotal == 0
    xd = backend.asarray(x)
    index.add(xd, backend.asarray(ids))
    assert index.ntotal == 2000
    d2, i2, _ = index.search(q, 10, 4)
    np.testing.assert_array_equal(backend.to_numpy(index.coarse), coarse)
    np.testing.assert_allclose(backend.to_numpy(d1), backend.to_numpy(d2), rtol=1e-5, atol=1e-4)
    assert (backend.to_numpy(i1) == backend.to_numpy(i2)).mean() > 0.98


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_search_matches_brute_force_over_probed_lists(backend, metric):
    """The scan returns the k best ADC scores among every vector in each query's probed lists,
    checked against a brute-force scoring of the decoded vectors: 300 queries over 8 lists, so
    each list (about 250 vectors) is probed by far more queries than one scan item holds
    (max(16, 250 / 8)) and is cut into several items; on numpy-chunked the plan also spans
    many chunks. Catches a query or list dropped or scored twice by the plan, a wrong padding
    mask, or a misplaced result."""
    x = clustered(2000, 16, seed=21)
    q = clustered(300, 16, seed=22)
    index, _ids = _build(backend, x, nlist=8, m=4, nbits=6, metric=metric)
    dist, found, _ = index.search(backend.asarray(q), 10, nprobe=3)
    dist, found = backend.to_numpy(dist), backend.to_numpy(found)
    codes = backend.to_numpy(index.codes)
    stored_ids = backend.to_numpy(index.ids)
    labels = np.repeat(np.arange(8), index.list_sizes)
    coarse = backend.to_numpy(index.coarse)
    rec = backend.to_numpy(index.pq.decode(backend, backend.asarray(codes))) + coarse[labels]  # (N, d)
    cscore = ((q[:, None] - coarse[None]) ** 2).sum(-1) if metric == "l2" else -(q @ coarse.T)
    probes = np.argsort(cscore, axis=1, kind="stable")[:, :3]
    for qi in range(len(q)):
        rows = np.flatnonzero(np.isin(labels, probes[qi]))
        score = ((rec[rows] - q[qi]) ** 2).sum(1) if metric == "l2" else -(rec[rows] @ q[qi])
        best = np.argsort(score, kind="stable")[:10]
        want_d = score[best] if metric == "l2" else -score[best]
        same_neighbours(dist[qi : qi + 1], found[qi : qi + 1], want_d[None], stored_ids[rows][best][None], metric)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_merge_prefixes_picks_what_each_merge_picks(backend, metric):
    """The incremental merge of a curve gives, at every nprobe, the ids of a merge of that
    prefix alone, on tie-heavy data (integer-valued vectors, many with one code in one list)."""
    rng = np.random.default_rng(5)
    x = rng.integers(0, 3, size=(1500, 8)).astype(np.float32)
    q = rng.integers(0, 3, size=(40, 8)).astype(np.float32)
    index, _ = _build(backend, x, nlist=16, m=2, nbits=4, metric=metric)
    out_d, out_i, _ = index.scan(backend.asarray(q), 30, 16)
    ps = [1, 2, 3, 5, 8, 9, 16]
    merged = index.merge_prefixes(out_d, out_i, ps, 30)
    assert len(merged) == len(ps)
    for p, ids in zip(ps, merged, strict=True):
        expect = index.merge(out_d[:, :p], out_i[:, :p], 30)[1]
        assert np.array_equal(backend.to_numpy(ids), backend.to_numpy(expect)), p
