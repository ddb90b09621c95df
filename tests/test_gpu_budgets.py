"""What each phase would cost a GPU, counted by the stand-in CuPy (tests/fake_cupy.py ``counting``):
kernel launches, host synchronisations, bytes moved each way and the largest buffer. The CuPy
backend runs here as on a GPU with numba-cuda (its custom kernels as their array-form twins, each
launch counted once). A change that adds a read-back in a loop, or launches per list, per probe
or per sub-quantizer, fails these budgets.
"""

from __future__ import annotations

import numpy as np
import pytest

import gpupq
from gpupq.ivf import COARSE_NITER, IVFPQIndex
from gpupq.knn import exact_knn
from gpupq.pq import PQ_NITER
from gpupq.resident import ResidentBase

from . import fake_cupy
from .helpers import clustered, install_fake_cupy
from .test_estimate import _without_timings


@pytest.fixture
def gpu(monkeypatch):
    yield install_fake_cupy(monkeypatch)
    fake_cupy.set_free_memory(None)


def _index(be, m: int, n: int = 6000) -> IVFPQIndex:
    x = be.asarray(clustered(n, 32, seed=1))
    index = IVFPQIndex(be, 32, 64, m).train(x, x, np.random.default_rng(0))
    index.add(x, be.asarray(np.arange(n, dtype=np.int64)))
    index.build()
    return index


def test_a_1024_query_search_batch_launches_a_fixed_number_of_kernels_and_syncs_once(gpu):
    """Whatever nprobe and m: the same launches (the coarse selection, one table scan and one
    selection per chunk, the merge), one read back (the probes, which the scan plan needs on the
    host), the plan sent over in a few dozen bytes a (query, probe) pair, and the largest buffer
    the distance tables (nq + 1, m, ksub) float32."""
    q = gpu.asarray(clustered(1024, 32, seed=2))
    seen = {}
    for m in (8, 16):
        index = _index(gpu, m)
        for nprobe in (4, 16):
            with fake_cupy.counting() as t:
                _, ids, _ = index.search(q, 10, nprobe)
            assert t.syncs == 1
            assert t.d2h_bytes == 1024 * nprobe * 8  # the probes, and nothing else
            # the plan crosses per (query, probe) pair and per item, not per code scanned
            assert t.h2d_bytes <= 48 * 1024 * nprobe
            assert t.kernels == {"lut_scan": 1, "select_k": 3}
            assert t.largest <= 1025 * m * 256 * 4
            seen[m, nprobe] = t.launches
    assert len(set(seen.values())) == 1, seen
    assert next(iter(seen.values())) <= 42
    assert ids.shape == (1024, 10)


def test_the_ground_truth_never_reads_back_and_launches_a_fixed_number_per_block(gpu):
    """The merge is one kernel per score block, in place: no synchronisation in the whole pass,
    and the launches grow by the same few per base chunk."""
    x = clustered(6000, 32, seed=1)
    q = gpu.asarray(clustered(256, 32, seed=2))
    launches = {}
    for nchunks in (3, 6):
        step = 6000 // nchunks
        chunks = [(np.arange(s, s + step), x[s : s + step]) for s in range(0, 6000, step)]
        with fake_cupy.counting() as t:
            exact_knn(gpu, q, chunks, 10, "l2")
        assert t.syncs == 0 and t.d2h_bytes == 0
        assert t.largest <= gpu.block_bytes()  # score blocks sized to the budget, keys kept in registers
        assert t.kernels["select_k"] == nchunks  # one merge per block: each chunk is one block here
        launches[nchunks] = t.launches
    per_chunk = (launches[6] - launches[3]) / 3
    assert per_chunk == int(per_chunk) and per_chunk <= 16


def test_k_means_reads_back_once_per_iteration(gpu):
    """One read back per iteration (the objective, for the early stop), and the centroid sums one
    kernel per iteration: the coarse k-means and the PQ's 25 iterations."""
    x = gpu.asarray(clustered(6000, 32, seed=1))
    with fake_cupy.counting() as t:
        IVFPQIndex(gpu, 32, 64, 8).train(x, x, np.random.default_rng(0))
    iterations = t.kernels["segment_sums"]
    assert 0 < iterations <= COARSE_NITER + PQ_NITER
    assert t.syncs <= iterations


@pytest.mark.parametrize("free", [None, 4 << 20])
def test_adding_syncs_a_fixed_number_of_times_whatever_the_chunks(gpu, free):
    """Encoding in one chunk or in many (4 MiB free: chunks of 512 KiB) reads back the same few
    times: the list sizes and offsets when the lists are built, not once per chunk."""
    index = _index(gpu, 8)
    fake_cupy.set_free_memory(free)
    x = gpu.asarray(clustered(6000, 32, seed=3))
    index.reset()
    with fake_cupy.counting() as t:
        index.add(x, gpu.asarray(np.arange(6000, dtype=np.int64)))
        index.build()
    assert t.syncs <= 3
    assert index.ntotal == 6000


def test_the_dataset_goes_to_the_gpu_once_for_ground_truth_adding_and_the_fp32_store(gpu, monkeypatch):
    """With room on the device the base is copied once, outside the timed phases, and the ground
    truth, the adding and the fp32 re-rank store read it there: the estimate moves at least two
    copies of the dataset fewer to the device than reading the host each pass, and every figure
    but the timings is the same."""
    ds = gpupq.make_synthetic(6000, 32, seed=1)
    cfg = gpupq.EstimateConfig(m=8, nlist=32, nprobe=4, k=10, rerank=40, rerank_store="fp32", queries=60)
    with fake_cupy.counting() as resident:
        kept = gpupq.estimate(ds, cfg, backends=[gpu]).to_dict()
    monkeypatch.setattr(ResidentBase, "load", classmethod(lambda cls, be, split: None))
    with fake_cupy.counting() as host:
        read = gpupq.estimate(ds, cfg, backends=[gpu]).to_dict()
    dataset_bytes = 6000 * 32 * 4
    # the ground truth's and the store's copies (the adding's, less the held-out rows' index)
    assert host.h2d_bytes - resident.h2d_bytes >= 1.9 * dataset_bytes
    assert _without_timings(kept) == _without_timings(read)
    assert resident.syncs <= host.syncs  # held-out rows dropped by row numbers, not a device mask
