import numpy as np
import pytest

import gpupq
from gpupq.backends import cupy_status, get_backends
from gpupq.data import Dataset
from gpupq.errors import GpupqError

from .conftest import clustered

SMALL = dict(m=8, nlist=32, nprobe=4, nbits=6, k=10, rerank=40, queries=60)


def test_result_is_complete_and_consistent(backend):
    ds = gpupq.make_synthetic(6000, 32, seed=1)
    res = gpupq.estimate(ds, gpupq.EstimateConfig(**SMALL), backends=[backend])
    assert (res.n, res.d, res.n_base, res.n_queries) == (6000, 32, 5940, 60)
    r = res.results[0]
    assert r.backend == backend.name
    for rec in (r.recall, r.recall_rerank):
        assert 0.0 <= rec.ci95_low <= rec.mean <= rec.ci95_high <= 1.0
        assert rec.queries == 60
    assert r.recall_rerank.mean >= r.recall.mean
    mem = r.memory
    assert mem.codes == 5940 * 6  # ceil(8 * 6 / 8) bytes per vector
    assert mem.vectors_fp32 == 5940 * 32 * 4
    assert mem.rerank_store == mem.vectors_fp32
    assert mem.index_in_memory == mem.index_serialized + mem.precomputed_table
    assert r.lists_probed_fraction == 4 / 32
    assert 0 < r.vectors_scanned_fraction < 1
    assert r.vectors_scanned_per_query == pytest.approx(r.vectors_scanned_fraction * 5940)
    t = r.timings
    assert min(t.ground_truth_s, t.train_s, t.add_s, t.search_s, t.search_rerank_s) > 0
    assert t.add_vectors_per_s == pytest.approx(5940 / t.add_s)
    assert t.search_queries_per_s == pytest.approx(60 / t.search_s)


def test_backends_agree_with_numpy(backend):
    """Every backend reaches the recall numpy reaches on the same data and split."""
    ds = gpupq.make_synthetic(8000, 32, seed=2)
    cfg = gpupq.EstimateConfig(**{**SMALL, "queries": 200})
    ours = gpupq.estimate(ds, cfg, backends=[backend]).results[0]
    ref = gpupq.estimate(ds, cfg, backends="numpy").results[0]
    assert abs(ours.recall.mean - ref.recall.mean) <= 0.03
    assert abs(ours.recall_rerank.mean - ref.recall_rerank.mean) <= 0.03
    assert ours.vectors_scanned_fraction == pytest.approx(ref.vectors_scanned_fraction, rel=0.05)


@pytest.mark.parametrize("metric", ["l2", "ip", "cosine"])
def test_everything_probed_and_reranked_is_exact(metric):
    x = clustered(2000, 16, seed=3)
    cfg = gpupq.EstimateConfig(m=4, nlist=8, nprobe=8, nbits=4, k=5, rerank=1950, queries=50, metric=metric)
    res = gpupq.estimate(Dataset(x, "x"), cfg, "numpy").results[0]
    assert res.recall_rerank.mean == 1.0
    assert res.vectors_scanned_fraction == 1.0


def test_all_runs_every_usable_backend():
    res = gpupq.estimate(gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(**{**SMALL, "m": 4}), "all")
    assert [r.backend for r in res.results] == [b.name for b in get_backends("all")]


def test_rerank_off():
    res = gpupq.estimate(
        gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(**{**SMALL, "m": 4, "rerank": 0}), "numpy"
    )
    r = res.results[0]
    assert r.recall_rerank is None and r.memory.rerank_store == 0 and r.timings.search_rerank_s is None
    assert res.to_dict()["results"][0]["recall_rerank"] is None


@pytest.mark.skipif(cupy_status().usable, reason="a GPU is present")
def test_cupy_without_gpu_says_why():
    with pytest.raises(GpupqError, match="--backend cupy is not usable here: "):
        get_backends("cupy")
    assert [b.name for b in get_backends("auto")] == ["numpy"]


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(nprobe=64), "--nprobe 64 must be between 1 and --nlist 32"),
        (dict(k=0), "-k must be at least 1"),
        (dict(rerank=5), "--rerank 5 must be 0"),
        (dict(nbits=9), "out of range"),
        (dict(m=7), "valid m: 1, 2, 4, 8, 16, 32"),
        (dict(queries=3000), "leaves no base"),
        (dict(k=2990, rerank=0, queries=20), "-k 2990 is larger than the base"),
        (dict(nlist=2990, nprobe=1, queries=20), "fewer than --nlist 2990"),
        (dict(metric="hamming"), "not one of l2, ip, cosine"),
    ],
)
def test_bad_settings(change, message):
    with pytest.raises(GpupqError, match=message):
        gpupq.estimate(gpupq.make_synthetic(3000, 32), gpupq.EstimateConfig(**{**SMALL, **change}), "numpy")


def test_too_few_points_for_pq():
    with pytest.raises(GpupqError, match="fewer than the 2\\^nbits=256 PQ centroids"):
        gpupq.estimate(gpupq.make_synthetic(200, 32), gpupq.EstimateConfig(m=4, nlist=4, nprobe=1, queries=10), "numpy")


def test_warning_below_39_points_per_centroid():
    res = gpupq.estimate(gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(m=4, nlist=16, nprobe=2), "numpy")
    assert any("PQ training" in w and "39 per centroid" in w for w in res.warnings)


def test_json_dict_is_plain():
    import json

    res = gpupq.estimate(gpupq.make_synthetic(3000, 16), gpupq.EstimateConfig(**{**SMALL, "m": 4}), "numpy")
    d = json.loads(json.dumps(res.to_dict()))
    assert d["results"][0]["memory"]["codes"] == res.results[0].memory.codes
    assert np.isclose(d["results"][0]["recall"]["mean"], res.results[0].recall.mean)


def test_chunk_size_does_not_change_the_estimate(tmp_path, monkeypatch):
    """Every pass over the base is chunked; many small chunks give the same answer as one."""
    import gpupq.data

    path = tmp_path / "x.npy"
    np.save(path, clustered(6000, 16, seed=5, centres=100))
    cfg = gpupq.EstimateConfig(m=4, nlist=32, nprobe=4, nbits=6, k=10, rerank=40, queries=80)
    whole = gpupq.estimate(gpupq.load_npy(path), cfg, "numpy").results[0]
    monkeypatch.setattr(gpupq.data, "DEFAULT_CHUNK_BYTES", 256 * 16 * 4)  # 256-row chunks
    chunked = gpupq.estimate(gpupq.load_npy(path), cfg, "numpy").results[0]
    assert chunked.recall.mean == whole.recall.mean
    assert chunked.recall_rerank.mean == whole.recall_rerank.mean
    assert chunked.vectors_scanned_per_query == whole.vectors_scanned_per_query
