import itertools

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.kmeans import assign, converged, kmeans

from .helpers import clustered


def test_objective_decreases(backend):
    """Catches a broken Lloyd step (assignment, centroid sums or counts) on any backend."""
    x = backend.asarray(clustered(4000, 16, seed=1))
    res = kmeans(backend, x, 32, 10, np.random.default_rng(0))
    obj = res.objective
    assert len(obj) == 10
    assert obj[-1] < obj[0]
    # Lloyd iterations never increase the objective (up to float32 rounding).
    assert all(b <= a * (1 + 1e-5) for a, b in itertools.pairwise(obj))
    assert res.centroids.shape == (1, 32, 16)
    assert res.centroids.dtype == np.float32


def test_final_objective_matches_assignment(backend, monkeypatch):
    """Catches wrong labels or scores from the blocked assignment, against brute force (in
    blocks of 500 points, so a slip between blocks shows on every backend)."""
    xh = clustered(3000, 8, seed=2)
    x = backend.asarray(xh)
    res = kmeans(backend, x, 16, 8, np.random.default_rng(0))
    c = backend.to_numpy(res.centroids[0])
    d2 = ((xh[:, None, :] - c[None]) ** 2).sum(-1)
    monkeypatch.setattr(backend, "block_bytes", lambda: 4 * 16 * 500)
    labels, score = assign(backend, x[None], res.centroids)
    np.testing.assert_array_equal(backend.to_numpy(labels[0]), d2.argmin(1))
    np.testing.assert_allclose(backend.to_numpy(score[0]), d2.min(1), rtol=1e-4, atol=1e-3)


def test_batched_matches_separate(backend):
    """Clustering B sub-problems at once equals clustering each alone from the same init:
    catches sub-problems leaking into each other (label offsets, batched sums) on any backend."""
    xh = clustered(2000, 12, seed=3).reshape(2000, 3, 4).transpose(1, 0, 2).copy()  # (3, 2000, 4)
    both = kmeans(backend, backend.asarray(xh), 8, 5, np.random.default_rng(7))
    for b in range(3):
        alone = kmeans(backend, backend.asarray(xh[b]), 8, 5, np.random.default_rng(7))
        np.testing.assert_allclose(
            backend.to_numpy(both.centroids[b]), backend.to_numpy(alone.centroids[0]), rtol=1e-4, atol=1e-4
        )


def test_same_start_on_every_backend(other_backend, numpy_backend):
    """Every other backend starts from numpy's centroids and ends at them: catches an
    initialisation or update that differs between backends."""
    backend = other_backend
    xh = clustered(3000, 8, seed=4)
    a = kmeans(backend, backend.asarray(xh), 16, 10, np.random.default_rng(5))
    b = kmeans(numpy_backend, xh, 16, 10, np.random.default_rng(5))
    np.testing.assert_allclose(backend.to_numpy(a.centroids), b.centroids, rtol=1e-3, atol=1e-3)


def test_empty_clusters_are_reseeded(backend):
    """Catches empty clusters left as NaN or duplicates (the host-side split) on any backend."""
    # 20 distinct points repeated: with 30 centroids drawn from the points, duplicates in the
    # init leave clusters empty; every centroid must still end up a finite, used vector.
    base = clustered(20, 4, seed=6)
    xh = np.repeat(base, 50, axis=0)
    res = kmeans(backend, backend.asarray(xh), 30, 5, np.random.default_rng(0))
    c = backend.to_numpy(res.centroids[0])
    assert np.isfinite(c).all()
    assert len(np.unique(c.round(5), axis=0)) == 30  # no two centroids left identical


def test_spherical_centroids_are_unit(backend):
    """Catches a missing re-normalisation of spherical (inner-product) centroids."""
    xh = clustered(2000, 8, seed=8)
    res = kmeans(backend, backend.asarray(xh), 16, 5, np.random.default_rng(0), metric="ip", spherical=True)
    norms = np.linalg.norm(backend.to_numpy(res.centroids[0]), axis=1)
    np.testing.assert_allclose(norms, 1.0, rtol=1e-5)


def test_too_few_points(numpy_backend):
    with pytest.raises(GpupqError, match="fewer than the 64 centroids"):
        kmeans(numpy_backend, clustered(50, 4), 64, 5, np.random.default_rng(0))


def test_warns_below_39_per_centroid(numpy_backend):
    res = kmeans(numpy_backend, clustered(100, 4), 10, 2, np.random.default_rng(0))
    assert any("39 per centroid" in w for w in res.warnings)
    res = kmeans(numpy_backend, clustered(400, 4), 10, 2, np.random.default_rng(0))
    assert res.warnings == []


def test_subsamples_to_256_per_centroid(numpy_backend):
    res = kmeans(numpy_backend, clustered(5000, 4), 4, 2, np.random.default_rng(0))
    assert res.n_points == 1024


def test_stopping_rule_is_faiss_float32_equality():
    """FAISS keeps the objective in a float: a change below float32 resolution counts as none,
    and a previous objective of 0 never stops (its relative change is undefined)."""
    prev = np.array([1e7, 1e7, 1e7, 0.0, 5.0])
    now = np.array([1e7 + 0.25, 1e7 + 2.0, 1e7, 0.0, 4.0])
    assert converged(now, prev).tolist() == [True, False, True, False, False]
