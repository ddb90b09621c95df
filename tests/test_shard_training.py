"""--shard-training per-shard: each shard trains its own quantizers on its own rows and makes its
own coarse search (a vector database's per-segment indexes, cuVS's sharded mode). Searched as one,
the result must be the shards' own searches merged by (score, id), at every nprobe; the same here
and on Dask; and billed with one set of quantizers a shard."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpupq.backends import NumpyBackend
from gpupq.cluster import InProcess, ShardedIndex, Source, plan_shards
from gpupq.io import load_vectors
from gpupq.ivf import IVFPQIndex

from .helpers import cli_runner, clustered, refused


def _data(tmp_path, n=6000, d=16, seed=21):
    x = clustered(n, d, seed=seed)
    folder = tmp_path / "s"
    folder.mkdir()
    for i, (a, b) in enumerate(((0, 1500), (1500, 3100), (3100, 6000))):
        np.save(folder / f"s{i}.npy", x[a:b])
    return load_vectors(str(folder)), x


def _merged(parts, k, metric):
    """The shards' own searches (scores in FAISS's convention, ids) merged by (score, id), the
    best first (the largest inner product, the smallest distance): (nq, k) each."""
    d = np.concatenate([p[0] for p in parts], axis=1)
    i = np.concatenate([p[1] for p in parts], axis=1)
    key = -d if metric == "ip" else d
    order = np.array([np.lexsort((ii, dd)) for dd, ii in zip(key, i, strict=True)])
    return np.take_along_axis(d, order, 1)[:, :k], np.take_along_axis(i, order, 1)[:, :k]


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_per_shard_search_is_the_shards_own_searches_merged(tmp_path, metric):
    ds, _ = _data(tmp_path)
    qids = np.array([5, 1500, 4000])
    template = IVFPQIndex(NumpyBackend(), 16, 32, 4, 8, metric)  # parameters only: nothing trained here
    index = ShardedIndex.build(InProcess(2), ds, plan_shards(ds), template, qids, train_seed=7)
    shards = index.handles  # in this process, a handle is the shard's own index
    assert len(shards) == 3 and index.own and template.coarse is None
    # each trained on its own rows: different centroids, and its lists hold only its rows
    assert not np.array_equal(shards[0].coarse, shards[1].coarse)
    for shard, (a, b) in zip(shards, plan_shards(ds), strict=True):
        assert shard.ids.min() >= a and shard.ids.max() < b
    assert index.ntotal == 6000 - 3
    q = clustered(40, 16, seed=3)
    for nprobe in (1, 3, 32):
        got_d, got_i, stats = index.search(q, 10, nprobe)
        own = [s.search(q, 10, nprobe) for s in shards]
        want_d, want_i = _merged(own, 10, metric)
        np.testing.assert_array_equal(got_i, want_i)
        np.testing.assert_allclose(got_d, want_d, rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(stats.scanned, sum(s[2].scanned for s in own))
    # every nprobe read from one scan, as with one set of quantizers
    out_d, out_i, sizes = index.scan(q, 10, 8)
    for p, ids in zip((2, 8), index.merge_prefixes(out_d, out_i, (2, 8), 10), strict=True):
        np.testing.assert_array_equal(ids, index.search(q, 10, p)[1])
    np.testing.assert_array_equal(index.probed_sizes(sizes).sum(axis=1), index.search(q, 10, 8)[2].scanned)
    again = ShardedIndex.build(InProcess(), ds, plan_shards(ds), template, qids, train_seed=7)
    np.testing.assert_array_equal(again.search(q, 10, 3)[1], index.search(q, 10, 3)[1])  # the seed decides
    other = ShardedIndex.build(InProcess(), ds, plan_shards(ds), template, qids, train_seed=8)
    assert not np.array_equal(other.handles[0].coarse, shards[0].coarse)


def test_per_shard_on_dask_equals_in_process(tmp_path):
    pytest.importorskip("distributed")
    from gpupq.cluster import DaskExecutor

    ds, _ = _data(tmp_path)
    qids = np.array([1, 2])
    template = IVFPQIndex(NumpyBackend(), 16, 16, 8, 8, "l2", opq=True)
    q = clustered(30, 16, seed=4)
    here = ShardedIndex.build(InProcess(), ds, plan_shards(ds, 2000), template, qids, train_seed=3)
    with DaskExecutor(2, processes=False) as ex:
        there = ShardedIndex.build(ex, Source.of(ds), plan_shards(ds, 2000), template, qids, train_seed=3)
        for a, b in zip(here.scan(q, 10, 4), there.scan(q, 10, 4), strict=True):
            np.testing.assert_array_equal(a, b)
        # a shard's own quantizers are kept with its lists: the planner counts them per shard
        assert all(s.resident > s.rows * (8 + 8 + 4) for s in there.needs)
        there.release()


def test_a_shard_smaller_than_its_lists_is_refused_naming_it(tmp_path):
    ds, _ = _data(tmp_path)
    template = IVFPQIndex(NumpyBackend(), 16, 1536, 4, 8, "l2")
    text = refused(ShardedIndex.build, InProcess(), ds, plan_shards(ds), template, np.array([0]), 1)
    assert text.startswith("shard 1 of 3 (rows 0-1,500): --shard-training per-shard: 1,499 rows to train 1,536")


def test_cli_per_shard_estimate_bills_each_shards_quantizers_and_says_so(tmp_path):
    from gpupq.cli import app

    _data(tmp_path)
    base = ["estimate", "--data", str(tmp_path / "s"), "--m", "4", "--nlist", "16", "--nprobe", "4", "--json", "-q"]
    res = {t: cli_runner().invoke(app, [*base, "--shard-training", t]) for t in ("global", "per-shard")}
    assert all(r.exit_code == 0 for r in res.values()), res["per-shard"].stderr
    one, own = (json.loads(res[t].stdout) for t in ("global", "per-shard"))
    assert "execution" not in one["dataset"]  # global alone: one pass, as before
    ex = own["dataset"]["execution"]
    assert (ex["training"], ex["shards"]) == ("per-shard", 3) and "training" in ex["shard_seconds"]
    m1, m3 = one["results"][0]["memory"], own["results"][0]["memory"]
    assert m3["quantizer_copies"] == 3 and "quantizer_copies" not in m1
    for term in ("coarse_centroids", "pq_codebooks", "list_sizes", "precomputed_table"):
        assert m3[term] == 3 * m1[term], term
    assert (m3["codes"], m3["ids"]) == (m1["codes"], m1["ids"])
    assert any("these are 3 indexes, one a shard" in w for w in own["warnings"])
    assert own["results"][0]["recall"]["mean"] != one["results"][0]["recall"]["mean"]  # other quantizers
    for extra, what in ((["--verify", "faiss"], "--verify faiss"), (["--n-total", "1M"], "--n-total")):
        bad = cli_runner().invoke(app, [*base, "--shard-training", "per-shard", *extra])
        assert bad.exit_code == 2 and what in bad.stderr and "per-shard does not combine" in bad.stderr
    bad = cli_runner().invoke(app, [*base, "--shard-training", "sharded"])
    assert bad.exit_code == 2 and "--shard-training must be one of global, per-shard" in bad.stderr
    rec = ["recommend", "--data", str(tmp_path / "s"), "--target-recall", "0.5", "--shard-training", "per-shard"]
    bad = cli_runner().invoke(app, [*rec, "--json", "-q"])
    assert bad.exit_code == 2 and "not recommend" in bad.stderr


def test_cli_per_shard_sweep_points_are_billed_per_shard(tmp_path):
    from gpupq.cli import app

    _data(tmp_path)
    args = ["sweep", "--data", str(tmp_path / "s"), "--m", "4,8", "--nlist", "16", "--no-timing", "--json", "-q"]
    res = cli_runner().invoke(app, [*args, "--shard-training", "per-shard"])
    assert res.exit_code == 0, res.stderr
    out = json.loads(res.stdout)
    assert out["dataset"]["execution"]["training"] == "per-shard"
    assert {p["memory"]["quantizer_copies"] for p in out["points"]} == {3}
    assert any("one a shard" in w for w in out["warnings"])
