"""The CuPy backend's own code, run over a strict numpy stand-in for CuPy (tests/fake_cupy.py). CI
has no GPU, so the real CuPy cases (marked ``gpu``) are skipped there. The ``fake-cupy`` case of
the ``backend`` fixture runs every backend test through the CupyBackend class; this file checks
the stand-in itself (each ``test_stand_in_refuses_*`` pins one rule where CuPy is strict, so the
stand-in cannot quietly become lax again), GPU detection, and every chunk loop under a tiny free-
memory figure. None of it says anything about kernels or speed; a GPU run of ``pytest -m gpu``
does.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpupq
from gpupq import kmeans as kmeans_mod
from gpupq import knn, scanplan
from gpupq.backends import cupy_status, get_backends
from gpupq.ivf import IVFPQIndex
from gpupq.knn import exact_knn
from gpupq.opq import OPQ
from gpupq.refine import rerank

from . import fake_cupy
from .helpers import clustered, install_fake_cupy, same_neighbours


@pytest.fixture
def fake_gpu(monkeypatch):
    """The CuPy backend over the stand-in, with GPU detection (cupy_status) seeing it too."""
    be = install_fake_cupy(monkeypatch)
    cupy_status.cache_clear()
    yield be
    cupy_status.cache_clear()
    fake_cupy.set_free_memory(None)


@pytest.fixture
def dev(fake_gpu):
    """Host array -> stand-in device array."""
    return fake_gpu.asarray


# ------------------------------------------------------------------ the stand-in's rules
def test_stand_in_is_not_a_numpy_array(dev):
    a = dev(np.arange(6.0))
    assert not isinstance(a, np.ndarray)
    assert isinstance(a.sum(), fake_cupy.ndarray) and a.sum().ndim == 0  # no numpy scalars
    assert float(a.sum()) == 15.0 and int(a[2]) == 2 and a.tolist() == list(range(6))


def test_stand_in_refuses_implicit_conversion_to_host(dev):
    a = dev(np.arange(6.0))
    with pytest.raises(TypeError, match="Implicit conversion to a NumPy array is not allowed"):
        np.asarray(a)
    with pytest.raises(TypeError):
        np.arange(6)[dev(np.array([1, 2]))]  # host indexing with a device array
    with pytest.raises(TypeError):
        [0, 1, 2][a[1:2].sum()]  # no __index__: not a Python index


def test_stand_in_refuses_numpy_functions_on_device_arrays(dev):
    """Stricter than CuPy (which dispatches them to cupy functions): gpupq uses be.xp."""
    a = dev(np.arange(6.0))
    with pytest.raises(TypeError, match=r"numpy\.concatenate was called on a device array"):
        np.concatenate([a, a])
    with pytest.raises(TypeError):
        np.exp(a)
    with pytest.raises(TypeError):
        np.testing.assert_allclose(a, np.arange(6.0))


@pytest.mark.parametrize("host", [np.ones(6), np.array(1.0)], ids=["1-d", "0-d"])
def test_stand_in_refuses_host_arrays_in_device_operations(dev, host):
    """CuPy: TypeError "Unsupported type <class 'numpy.ndarray'>", a 0-d array included."""
    a = dev(np.arange(6.0))
    for op in (
        lambda: a + host,
        lambda: host * a,
        lambda: fake_cupy.where(a > 2, a, host),
        lambda: fake_cupy.maximum(a, host),
        lambda: fake_cupy.concatenate([a, host.reshape(-1)]),
        lambda: a.clip(host, 9.0),
    ):
        with pytest.raises(TypeError, match=r"Unsupported type|host numpy array"):
            op()
    # what CuPy accepts: Python scalars, numpy scalar types, and 0-d host arrays in comparisons
    assert float((a + np.float32(1) + 2).sum()) == 33.0
    assert float((np.float32(2) * a).sum()) == 30.0
    assert int((a < np.array(3.0)).sum()) == 3


def test_stand_in_refuses_host_arrays_assigned_through_basic_indices(dev):
    """CuPy falls back to fill() there: ValueError for a non-scalar host array; with an index
    array in the key it copies the host value over, and so does the stand-in."""
    a = dev(np.zeros(4))
    with pytest.raises(ValueError, match=r"non-scalar numpy\.ndarray cannot be used for fill"):
        a[1:3] = np.ones(2)
    a[1:3] = np.array(5.0)
    a[np.array([0, 3])] = np.array([1.0, 2.0])
    assert a.tolist() == [1.0, 5.0, 5.0, 2.0]


def test_stand_in_accepts_host_index_arrays(dev):
    """CuPy copies host integer/boolean index arrays to the device (_prepare_slice_list)."""
    a = dev(np.arange(10.0))
    assert a[np.array([1, 2])].tolist() == [1.0, 2.0]
    assert a[np.arange(10) > 7].tolist() == [8.0, 9.0]
    assert fake_cupy.take(a, np.array([3])).tolist() == [3.0]


def test_stand_in_wraps_out_of_range_indices(dev):
    """CuPy wraps integer-array indices around (indices % size) instead of raising."""
    a = dev(np.arange(5.0))
    assert a[dev(np.array([5, 7, -1]))].tolist() == [0.0, 2.0, 4.0]
    assert fake_cupy.take(a, dev(np.array([6]))).tolist() == [1.0]
    assert fake_cupy.take_along_axis(a[None], dev(np.array([[9]])), axis=1).tolist() == [[4.0]]
    b = dev(np.zeros(3))
    b[dev(np.array([4]))] = 1.0
    assert b.tolist() == [0.0, 1.0, 0.0]
    with pytest.raises(IndexError):
        a[7]  # a scalar index is still checked
    with pytest.raises(IndexError, match="non-empty take from an empty axes"):
        dev(np.zeros((0, 3)))[dev(np.array([0]))]


def test_stand_in_sorts_as_cupy(dev):
    a = dev(np.array([3.0, 1.0, 3.0, 0.0]))
    assert fake_cupy.argsort(a, kind="stable").tolist() == [3, 1, 0, 2]  # CuPy 13+ takes "stable"
    assert a.argsort().tolist() == [3, 1, 0, 2]
    with pytest.raises(ValueError, match="kind can only be None or 'stable'"):
        fake_cupy.argsort(a, kind="quicksort")
    assert sorted(fake_cupy.argpartition(a, 1)[:2].tolist()) == [1, 3]
    with pytest.raises(TypeError):
        fake_cupy.argpartition(a, np.int64(1))  # CuPy iterates a kth that is not a Python int


def test_stand_in_free_memory_can_be_set(fake_gpu):
    fake_cupy.set_free_memory(1 << 20)
    assert fake_gpu.free_memory() == 1 << 20
    assert fake_gpu.work_bytes() == 1 << 17 and fake_gpu.block_bytes() == 1 << 16
    fake_cupy.set_free_memory(None)
    assert fake_gpu.work_bytes() == 1 << 30


# ------------------------------------------------------------------ detection, estimate
def test_detected_and_described(fake_gpu):
    assert cupy_status().usable
    assert [b.name for b in get_backends("auto")] == ["cupy"]
    assert [b.name for b in get_backends("all")] == ["numpy", "cupy"]
    assert "fake GPU" in fake_gpu.device_description()
    assert fake_gpu.library_version() == "0.0-fake"


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_estimate_all_matches_numpy(fake_gpu, metric):
    """--backend all finds the CuPy backend and it reaches numpy's recall and scanned share.
    (The memory bill is a formula of the settings on both sides, so it is not compared.)"""
    ds = gpupq.make_synthetic(6000, 32, seed=4)
    cfg = gpupq.EstimateConfig(m=8, nlist=32, nprobe=4, nbits=6, k=10, rerank=40, queries=100, metric=metric)
    res = gpupq.estimate(ds, cfg, backends="all")
    numpy_r, cupy_r = res.results
    assert (numpy_r.backend, cupy_r.backend) == ("numpy", "cupy")
    assert "fake GPU" in cupy_r.device
    assert abs(numpy_r.recall.mean - cupy_r.recall.mean) <= 0.02
    assert abs(numpy_r.recall_rerank.mean - cupy_r.recall_rerank.mean) <= 0.02
    assert numpy_r.vectors_scanned_per_query == cupy_r.vectors_scanned_per_query


# ------------------------------------------------------------------ every chunk loop
def _spy(monkeypatch, owner, name, only=None):
    """Record the calls of owner.name (their positional arguments); with ``only``, just those
    whose first argument is it (the backend or index under test, not numpy's reference)."""
    calls = []
    real = getattr(owner, name)

    def spy(*args, **kwargs):
        if only is None or (args and args[0] is only):
            calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


@pytest.mark.parametrize("kernels", ["reference", "off"])
def test_every_chunk_loop_runs_under_the_cupy_backend(kernels, numpy_backend, monkeypatch):
    """With 1 MiB of free device memory (work chunks of 128 KiB, score blocks of 64 KiB) every
    chunk loop of the CuPy backend class runs several times, and the answers match numpy's
    unchunked ones. Each loop's repeat count is checked, so this cannot pass by not chunking.
    With the custom kernels (as on a GPU with numba-cuda) and with the array forms."""
    be = install_fake_cupy(monkeypatch, kernels=kernels)
    fake_cupy.set_free_memory(1 << 20)
    x = clustered(3000, 16, seed=21)
    q = clustered(50, 16, seed=22)
    ids = np.arange(3000, dtype=np.int64) + 5
    chunks = [(ids[s : s + 512], x[s : s + 512]) for s in range(0, 3000, 512)]

    # exact k-NN: blocks of 8 queries (work // 16 KiB); the merge's sparse path (the only
    # nonzero call) once the running top-k is tight
    if be.kernels is None:
        merges, best = _spy(monkeypatch, knn, "_merge", only=be), 1
    else:  # the kernel's merge: (best_d, best_i, score, ids), no reads back, no sparse path
        merges, best = _spy(monkeypatch, be.kernels, "merge_into"), 0
    sparse = _spy(monkeypatch, fake_cupy, "nonzero")
    got = exact_knn(be, be.asarray(q), chunks, 10, "l2")
    want = exact_knn(numpy_backend, q, chunks, 10, "l2")
    same_neighbours(be.to_numpy(got[0]), be.to_numpy(got[1]), want[0], want[1])
    # the array-form merge budgets 28 bytes a score (its dense top-k's copies): two blocks a chunk
    blocks = 1 if be.kernels is not None else 2
    assert len(merges) == 7 * len(chunks) * blocks and max(m[best].shape[0] for m in merges) == 8
    assert (len(sparse) > 0) == (be.kernels is None)

    # training: k-means assignment in blocks of 64 KiB of scores
    blocks = _spy(monkeypatch, kmeans_mod, "with_ones", only=be)
    assigns = _spy(monkeypatch, kmeans_mod, "assign", only=be)
    index = IVFPQIndex(be, 16, 16, 4, 6)
    ref = IVFPQIndex(numpy_backend, 16, 16, 4, 6)
    index.train(be.asarray(x), be.asarray(x), np.random.default_rng(0))
    ref.train(x, x, np.random.default_rng(0))
    # every k-means iteration, of either training, assigns in 3 blocks or more (coarse: 1024 rows
    # a block, 3,000 points; PQ: 64 rows a block for 4 sub-spaces of 64 centroids, 3,000 points)
    assert len(assigns) >= 10 and len(blocks) >= 3 * len(assigns)
    assert index.pq.train_result.iterations == ref.pq.train_result.iterations
    np.testing.assert_allclose(be.to_numpy(index.coarse), ref.coarse, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(index.pq.train_result.objective, ref.pq.train_result.objective, rtol=1e-3)
    # From here on, numpy's trained state on both: k-means may drift apart in the last bits
    # (float32 atomics vs float64 sums), and the steps below are compared, not the training.
    index.coarse, index.pq.codebooks, index.term2 = (be.asarray(a) for a in (ref.coarse, ref.pq.codebooks, ref.term2))

    # adding in chunks, searching, adding more: the lists are rebuilt from the stored rows
    rebuilds = _spy(monkeypatch, IVFPQIndex, "_row_lists", only=index)
    for idx, to_be in ((index, be.asarray), (ref, np.asarray)):
        for s in range(0, 2000, 700):
            idx.add(to_be(x[s : s + 700]), to_be(ids[s : s + 700]))
        idx.search(to_be(q[:4]), 5, 2)
        idx.add(to_be(x[2000:]), to_be(ids[2000:]))
        idx.build()
    assert len(rebuilds) == 1
    np.testing.assert_array_equal(index.list_sizes, ref.list_sizes)

    # search: the probed lists scanned in chunks of the work budget
    plans = []
    real_chunks = scanplan.chunks_within
    monkeypatch.setattr(scanplan, "chunks_within", lambda *a: plans.append(real_chunks(*a)) or plans[-1])
    searches = _spy(monkeypatch, IVFPQIndex, "search", only=index)
    got = index.search(be.asarray(q), 10, 4)
    want = ref.search(q, 10, 4)
    same_neighbours(be.to_numpy(got[0]), be.to_numpy(got[1]), want[0], want[1])
    assert len(searches) == 1 and len(plans[0]) > 4
    # search: the queries split when nq·nprobe·k candidates outgrow the work budget
    searches.clear()
    got = index.search(be.asarray(q), 100, 8)
    want = ref.search(q, 100, 8)
    same_neighbours(be.to_numpy(got[0]), be.to_numpy(got[1]), want[0], want[1])
    assert len(searches) > 2

    # re-ranking in query chunks (work // (R·d·12 bytes))
    fetched = []

    def fetch(u):
        fetched.append(len(u))
        return be.asarray(x[u - 5])

    out = rerank(be, be.asarray(q), got[1], fetch, 10, "l2")
    ref_out = rerank(numpy_backend, q, want[1], lambda u: x[u - 5], 10, "l2")
    same_neighbours(be.to_numpy(out[0]), be.to_numpy(out[1]), ref_out[0], ref_out[1])
    assert len(fetched) > 2

    # OPQ: its PQ's k-means in blocks, and the Procrustes SVD, on the device
    blocks.clear()
    xo = clustered(600, 8, seed=23)
    a = OPQ(8, 2).fit(be, be.asarray(xo), np.random.default_rng(1), niter=2)
    b = OPQ(8, 2).fit(numpy_backend, xo, np.random.default_rng(1), niter=2)
    assert len(blocks) > 2 * (40 + 4)
    assert isinstance(a.rotation, fake_cupy.ndarray)
    rot = be.to_numpy(a.rotation)
    np.testing.assert_allclose(rot @ rot.T, np.eye(8), atol=1e-4)
    np.testing.assert_allclose(a.objective, b.objective, rtol=1e-2)  # k-means may drift in last bits


def test_norms_on_cupy_are_a_reduction_not_einsum(monkeypatch):
    """CuPy's einsum turns '...d,...d->...' into one 1×d×d×1 product per row: training, adding,
    the ground truth and the search must take norms by a reduction instead (issue 18, item 7);
    the numpy backend keeps einsum (no temporary), and both give the same norms."""
    from gpupq.backends import NumpyBackend

    be = install_fake_cupy(monkeypatch)
    x = clustered(3000, 16, seed=4)
    np.testing.assert_allclose(be.to_numpy(be.sq_norms(be.asarray(x))), NumpyBackend().sq_norms(x), rtol=1e-6)
    monkeypatch.setattr(fake_cupy, "einsum", lambda *a, **k: pytest.fail("einsum on the device"))
    cfg = gpupq.EstimateConfig(nlist=16, m=4, nprobe=4, rerank=0, queries=30, min_time=0.0)
    out = gpupq.estimate(gpupq.Dataset(x, "x"), cfg, backends=[be]).results[0]
    assert out.backend == "cupy" and 0 < out.recall.mean <= 1
