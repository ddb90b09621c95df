"""Search paths the usual settings never take: queries split into batches, batches with no
candidates at all (re-ranking of empty chunks alone: test_refine.py). Each runs on every backend, the CuPy backend
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
