"""Work in shards on the CuPy backend (a GPU worker each, ``--gpu-workers``): the tasks compute
on the session's kind of backend, and the result is the same here and on Dask, bit for bit, with
the one-pass neighbours on tie-free data. Run over the stand-in CuPy (a strict numpy underneath),
so CI runs the device path's logic; dask-cuda itself needs GPUs."""

from __future__ import annotations

import numpy as np
import pytest

from gpupq.cluster import ClusterConfig, InProcess, ShardedIndex, Source, plan_shards, sharded_ground_truth
from gpupq.estimate import EstimateConfig, estimate
from gpupq.io import Split, load_vectors
from gpupq.ivf import IVFPQIndex
from gpupq.knn import exact_knn

from .helpers import clustered, install_fake_cupy, refused


def _files(tmp_path, n=4000, d=16):
    x = clustered(n, d, seed=13)
    folder = tmp_path / "s"
    folder.mkdir()
    for i, (a, b) in enumerate(((0, 1300), (1300, 2600), (2600, n))):
        np.save(folder / f"p{i}.npy", x[a:b])
    return load_vectors(str(folder)), x


def test_cupy_shards_equal_here_and_on_dask_and_find_the_one_pass_neighbours(tmp_path, monkeypatch):
    pytest.importorskip("distributed")
    from gpupq.cluster import DaskExecutor

    be = install_fake_cupy(monkeypatch)
    ds, x = _files(tmp_path)
    qids = np.array([4, 1300, 3999])
    q = clustered(50, 16, seed=2)
    template = IVFPQIndex(be, 16, 16, 4, 8, "l2")
    template.train(be.asarray(x[:3000]), be.asarray(x[:3000]), np.random.default_rng(0))
    here = ShardedIndex.build(InProcess(), ds, plan_shards(ds), template, qids)
    assert all(h.be.name == "cupy" for h in here.handles)  # each shard's lists on the device
    with DaskExecutor(2, processes=False) as ex:
        there = ShardedIndex.build(ex, Source.of(ds), plan_shards(ds), template, qids)
        for a, b in zip(here.scan(be.asarray(q), 10, 8), there.scan(be.asarray(q), 10, 8), strict=True):
            np.testing.assert_array_equal(be.to_numpy(a), be.to_numpy(b))
        gt_here = sharded_ground_truth(InProcess(), ds, plan_shards(ds), q, qids, 10, "l2", backend="cupy")
        gt_there = sharded_ground_truth(ex, Source.of(ds), plan_shards(ds), q, qids, 10, "l2", backend="cupy")
        for a, b in zip(gt_here, gt_there, strict=True):
            np.testing.assert_array_equal(a, b)
        there.release()
    one = IVFPQIndex(be, 16, 16, 4, 8, "l2").restore(template.state(lists=False))
    for ids, xb in Split(ds, qids).iter_base():
        one.add(be.asarray(xb), be.asarray(ids))
    _, want, _ = one.search(be.asarray(q), 10, 8)
    _, got, _ = here.search(be.asarray(q), 10, 8)
    np.testing.assert_array_equal(be.to_numpy(got), be.to_numpy(want))
    from gpupq.backends import NumpyBackend

    cpu = NumpyBackend()
    _, exact = exact_knn(cpu, q, Split(ds, qids).iter_base(mark_queries=True), 10, "l2")
    np.testing.assert_array_equal(gt_here[1], exact)


def test_an_estimate_in_shards_on_cupy_is_the_one_pass_estimate(tmp_path, monkeypatch):
    be = install_fake_cupy(monkeypatch)
    ds, _ = _files(tmp_path)
    cfg = EstimateConfig(nlist=16, m=4, nprobe=4, rerank=20, queries=40, min_time=0.0)
    one = estimate(ds, cfg, backends=[be])
    shards = estimate(load_vectors(str(tmp_path / "s")), cfg, backends=[be], cluster=ClusterConfig(shard_rows=900))
    a, b = one.results[0], shards.results[0]
    assert (a.backend, b.backend) == ("cupy", "cupy")
    assert (b.recall.mean, b.recall_rerank.mean) == (a.recall.mean, a.recall_rerank.mean)
    assert b.vectors_scanned_per_query == a.vectors_scanned_per_query
    assert shards.dataset["execution"]["shards"] == 6  # 900-row pieces of 1,300, 1,300 and 1,400
    own = estimate(ds, cfg, backends=[be], cluster=ClusterConfig(training="per-shard"))  # trained on the device
    assert own.results[0].memory.quantizer_copies == 3 and 0 < own.results[0].recall.mean <= 1


def test_shards_run_on_one_backend_and_gpu_workers_need_cupy_and_dask_cuda(tmp_path):
    from gpupq.backends import NumpyBackend

    ds, _ = _files(tmp_path)
    cfg = EstimateConfig(nlist=16, m=4, queries=20, min_time=0.0)
    two = [NumpyBackend(), NumpyBackend()]
    assert "one backend at a time" in refused(estimate, ds, cfg, backends=two, cluster=ClusterConfig(shard_rows=900))
    text = refused(estimate, ds, cfg, backends=[NumpyBackend()], cluster=ClusterConfig(gpu_workers=1))
    assert text == "--gpu-workers runs the CuPy backend on each GPU; add --backend cupy"
    both = ClusterConfig(workers=1, gpu_workers=1)
    assert "not both" in refused(both.check)
