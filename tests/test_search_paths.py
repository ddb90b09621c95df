"""Search paths the usual settings never take: queries split into batches, batches with no
candidates at all, re-ranking of empty chunks. Each runs on every backend, the CuPy backend
class over the strict stand-in included (where a wrapped-around index gives wrong ids rather
than an error, so the results are checked, not just the absence of an exception)."""

from __future__ import annotations

import numpy as np
import pytest

import gpupq
from gpupq.ivf import IVFPQIndex
from gpupq.refine import rerank

from .helpers import clustered, same_neighbours


def _index(be, x, nlist=16, m=4, nbits=6, metric="l2", add=True):
    index = IVFPQIndex(be, x.shape[1], nlist, m, nbits, metric)
    xd = be.asarray(x)
    index.train(xd, xd, np.random.default_rng(0))
    if add:
        index.add(xd, be.asarray(np.arange(len(x), dtype=np.int64)))
    return index


def _count_calls(monkeypatch, owner, name):
    calls = []
    real = getattr(owner, name)

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


# ------------------------------------------------------------------ more queries than a batch
def test_search_split_into_query_batches_matches_one_batch(backend, monkeypatch):
    """IVFPQIndex.search splits the queries when its candidate buffers outgrow the work budget:
    catches parts concatenated out of order or a part's rows mixed up with another's."""
    x = clustered(3000, 16, seed=31)
    q = backend.asarray(clustered(45, 16, seed=32))
    index = _index(backend, x)
    d_one, i_one, s_one = index.search(q, 10, 4)
    calls = _count_calls(monkeypatch, IVFPQIndex, "search")
    monkeypatch.setattr(backend, "work_bytes", lambda: 4 * 10 * 12 * 8)  # 8 queries a part
    d_split, i_split, s_split = index.search(q, 10, 4)
    assert len(calls) == 1 + 6  # the call, then one per part of 8 queries
    host = backend.to_numpy
    same_neighbours(host(d_one), host(i_one), host(d_split), host(i_split))
    np.testing.assert_array_equal(s_one.scanned, s_split.scanned)


def test_estimate_batch_size_below_query_count(backend, monkeypatch):
    """--batch-size smaller than the number of queries (search and re-rank batch by batch)
    gives the estimate of one batch: catches batches dropped, repeated or misaligned with the
    ground truth."""
    ds = gpupq.make_synthetic(4000, 16, seed=33)
    base = dict(m=4, nlist=16, nprobe=3, nbits=6, k=10, rerank=30, queries=50)
    one = gpupq.estimate(ds, gpupq.EstimateConfig(**base), backends=[backend]).results[0]
    calls = _count_calls(monkeypatch, IVFPQIndex, "search")
    many = gpupq.estimate(ds, gpupq.EstimateConfig(**base, batch_size=7), backends=[backend]).results[0]
    assert sum(1 for c in calls if c[1].shape[0] <= 7) >= 2 * 8  # search and search+rerank, 8 batches each
    assert many.recall.mean == pytest.approx(one.recall.mean, abs=1e-9)
    assert many.recall_rerank.mean == pytest.approx(one.recall_rerank.mean, abs=1e-9)
    assert many.vectors_scanned_per_query == one.vectors_scanned_per_query


# ------------------------------------------------------------------ batches with no candidates
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


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_every_probed_list_empty(backend, metric):
    """Queries whose probed lists are all empty find nothing, and re-ranking that batch gives
    -1 ids instead of crashing on an empty gather (or, on CuPy, reading a wrapped-around row);
    the other queries of the batch keep their answers."""
    x = clustered(3000, 16, seed=37)
    index = _index(backend, x, metric=metric, add=False)
    labels = backend.to_numpy(index.coarse_assign(backend.asarray(x)))
    empty = [0, 5]  # lists left empty: nothing assigned to them is added
    keep = ~np.isin(labels, empty)
    index.add(backend.asarray(x[keep]), backend.asarray(np.flatnonzero(keep).astype(np.int64)))
    coarse = backend.to_numpy(index.coarse)
    # the centroids of the empty lists probe themselves first (under ip too: the centroids are
    # unit vectors); two ordinary queries beside them
    q = np.concatenate([coarse[empty], x[keep][:2]])
    _, cand, stats = index.search(backend.asarray(q), 20, nprobe=1)
    cand = backend.to_numpy(cand)
    assert (stats.scanned[:2] == 0).all() and (cand[:2] == -1).all()
    assert (cand[2:] >= 0).all()

    def fetch(u):
        return backend.asarray(x[u])

    dist, found = rerank(backend, backend.asarray(q), backend.asarray(cand), fetch, 5, metric)
    dist, found = backend.to_numpy(dist), backend.to_numpy(found)
    assert (found[:2] == -1).all() and np.isinf(dist[:2]).all()
    assert (found[2:] >= 0).all() and keep[found[2:]].all()
    if metric == "l2":
        assert (found[2:, 0] == np.flatnonzero(keep)[:2]).all()  # each finds itself first
    # one batch of queries that all probe empty lists: the whole re-rank has nothing to fetch
    dist, found = rerank(backend, backend.asarray(q[:2]), backend.asarray(cand[:2]), fetch, 5, metric)
    assert (backend.to_numpy(found) == -1).all()


@pytest.mark.parametrize("kind", ["fp32", "fp16", "sq8"])
def test_resident_store_scores_equal_host_fetch(monkeypatch, numpy_backend, kind):
    """On a GPU the re-rank store is encoded once into device memory and candidates are
    gathered there: its scores equal the host path's (rows read from the input, round-tripped)
    bit for bit, -1 candidates included; with no room on the device it falls back to the host
    path. Runs the CuPy backend class over the stand-in."""
    from gpupq.engine import Workbench
    from gpupq.io import hold_out, make_synthetic
    from gpupq.refine import DeviceRows, candidate_scores

    from . import fake_cupy
    from .helpers import install_fake_cupy

    be = install_fake_cupy(monkeypatch)
    ds = make_synthetic(3000, 16, seed=0)
    split = hold_out(ds, 40, 0)
    rng = np.random.default_rng(0)
    cand = rng.choice(split.base_ids(), size=(40, 30))
    cand[:, -3:] = -1
    dev, host = Workbench(be, ds, split), Workbench(numpy_backend, ds, split)
    rows = dev.fetcher(kind)
    assert isinstance(rows, DeviceRows)
    got = candidate_scores(be, be.asarray(split.queries), be.asarray(cand), rows, "l2")
    want = candidate_scores(numpy_backend, split.queries, cand, host.fetcher(kind), "l2")
    np.testing.assert_array_equal(be.to_numpy(got), want)
    assert np.isinf(want[:, -3:]).all()
    fake_cupy.set_free_memory(1 << 10)  # no room: rows are read on the host as asked
    assert not isinstance(Workbench(be, ds, split).fetcher(kind), DeviceRows)
    fake_cupy.set_free_memory(None)
    real_empty = fake_cupy.empty

    def no_room(*a, **kw):
        raise fake_cupy.OutOfMemoryError("out of memory allocating the store")

    monkeypatch.setattr(fake_cupy, "empty", no_room)  # room on paper, none in fact: same fallback
    fetch = Workbench(be, ds, split).fetcher(kind)
    monkeypatch.setattr(fake_cupy, "empty", real_empty)
    assert not isinstance(fetch, DeviceRows)
    got = candidate_scores(be, be.asarray(split.queries), be.asarray(cand), fetch, "l2")
    np.testing.assert_array_equal(be.to_numpy(got), want)


def test_out_of_memory_retries_with_smaller_chunks(backend, monkeypatch):
    """A phase that runs out of memory is run again from scratch with work chunks 4x smaller
    (the estimate then completes, with the same answer); one that keeps failing ends in a
    one-line GpupqError, not a traceback. Each backend raises its own out-of-memory error
    (CuPy's OutOfMemoryError on the stand-in)."""
    import gpupq.engine as engine_mod
    from gpupq.engine import Workbench
    from gpupq.errors import GpupqError
    from gpupq.io import hold_out, make_synthetic

    ds = make_synthetic(2000, 16, seed=0)
    split = hold_out(ds, 20, 0)
    want = Workbench(backend, ds, split).truth(10).ids.copy()
    oom = backend.out_of_memory_errors()[0]
    full = backend.work_bytes()
    real = engine_mod.exact_knn
    calls = []

    def flaky(be, *a, **kw):
        calls.append(be.work_bytes())
        if be.work_bytes() >= full:  # fails until the chunks shrink
            raise oom("out of memory allocating 1,073,741,824 bytes")
        return real(be, *a, **kw)

    monkeypatch.setattr(engine_mod, "exact_knn", flaky)
    got = Workbench(backend, ds, split).truth(10).ids
    np.testing.assert_array_equal(got, want)
    assert len(calls) == 2 and calls[1] * 4 <= calls[0] and backend.shrink == 4

    def always(be, *a, **kw):
        raise oom("out of memory")

    monkeypatch.setattr(engine_mod, "exact_knn", always)
    with pytest.raises(GpupqError, match="ground truth ran out of memory") as err:
        Workbench(backend, ds, split).truth(10)
    assert "\n" not in str(err.value)
