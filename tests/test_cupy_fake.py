"""The CuPy backend's own code, run over a numpy stand-in for CuPy (tests/fake_cupy.py).

CI has no GPU, so the real CuPy cases (marked ``gpu``) are skipped there. These tests run the
CupyBackend class, its padded scan and every device-side path on a CPU, with a stand-in that
refuses what CuPy refuses (host arrays mixed into device operations, ``kind`` in argsort). They
say nothing about kernels or speed; a GPU run of ``pytest -m gpu`` does.
"""

from __future__ import annotations

import sys

import numpy as np
import pytest

import gpupq
from gpupq.backends import CupyBackend, cupy_status, get_backends
from gpupq.ivf import IVFPQIndex
from gpupq.kmeans import kmeans

from . import fake_cupy
from .conftest import clustered


@pytest.fixture
def fake_gpu(monkeypatch):
    if cupy_status().usable:
        pytest.skip("a real GPU is present; the gpu-marked tests cover it")
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "cupyx", fake_cupy.cupyx)
    cupy_status.cache_clear()
    yield CupyBackend()
    cupy_status.cache_clear()


def test_detected_and_described(fake_gpu):
    assert cupy_status().usable
    assert [b.name for b in get_backends("auto")] == ["cupy"]
    assert [b.name for b in get_backends("all")] == ["numpy", "cupy"]
    assert "fake GPU" in fake_gpu.device_description()
    assert fake_gpu.library_version() == "0.0-fake"


def test_stand_in_refuses_host_arrays(fake_gpu):
    with pytest.raises(TypeError, match="host numpy array"):
        fake_gpu.asarray(np.ones(3)) + np.ones(3)
    with pytest.raises(ValueError, match="no kind"):
        fake_gpu.xp.argsort(fake_gpu.asarray(np.ones(3)), kind="stable")


def test_kmeans_matches_numpy(fake_gpu, numpy_backend):
    x = clustered(3000, 8, seed=1)
    a = kmeans(fake_gpu, fake_gpu.asarray(x), 16, 8, np.random.default_rng(3))
    b = kmeans(numpy_backend, x, 16, 8, np.random.default_rng(3))
    assert isinstance(a.centroids, fake_cupy.DeviceArray)
    np.testing.assert_allclose(fake_gpu.to_numpy(a.centroids), b.centroids, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-5)


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_search_matches_numpy(fake_gpu, numpy_backend, metric):
    x = clustered(4000, 16, seed=2)
    q = clustered(40, 16, seed=3)
    found, scores = [], []
    for be in (fake_gpu, numpy_backend):
        index = IVFPQIndex(be, 16, 32, 4, 6, metric)
        xd = be.asarray(x)
        index.train(xd, xd, np.random.default_rng(0))
        index.add(xd, be.asarray(np.arange(4000, dtype=np.int64)))
        dist, ids, _ = index.search(be.asarray(q), 10, 5)
        found.append(be.to_numpy(ids))
        scores.append(be.to_numpy(dist))
    # Identical codes give tied scores (common under ip), and ties may come back in any order:
    # compare the scores, and the ids that strictly beat each row's k-th score.
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-4, atol=1e-3)
    sign = 1.0 if metric == "l2" else -1.0  # smaller is better
    for row in range(len(q)):
        sets = []
        for ids, sc in zip(found, scores, strict=True):
            s = sign * sc[row]
            sets.append(set(ids[row][s < s[-1] - 1e-3].tolist()))
        assert sets[0] == sets[1]


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_estimate_matches_numpy(fake_gpu, metric):
    ds = gpupq.make_synthetic(6000, 32, seed=4)
    cfg = gpupq.EstimateConfig(m=8, nlist=32, nprobe=4, nbits=6, k=10, rerank=40, queries=100, metric=metric)
    res = gpupq.estimate(ds, cfg, backends="all")
    numpy_r, cupy_r = res.results
    assert (numpy_r.backend, cupy_r.backend) == ("numpy", "cupy")
    assert abs(numpy_r.recall.mean - cupy_r.recall.mean) <= 0.02
    assert abs(numpy_r.recall_rerank.mean - cupy_r.recall_rerank.mean) <= 0.02
    assert numpy_r.memory == cupy_r.memory
    assert numpy_r.vectors_scanned_per_query == cupy_r.vectors_scanned_per_query
