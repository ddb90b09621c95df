"""The CuPy backend's custom kernels (gpupq/gpukernels.py, gpupq/_cuda_kernels.py), each checked
against the array form on tiny inputs.

Without a GPU the kernels' own code runs under numba's CUDA simulator (conftest sets
``NUMBA_ENABLE_CUDASIM=1``): one Python thread per GPU thread, with real shared memory, barriers
and atomics, so a wrong index, a missing barrier's race or an off-by-one in the radix select
shows here. On a GPU machine the same tests run the compiled kernels on CuPy arrays (``cuda``,
marked ``gpu``). The array-form twins (``reference``, what CI's stand-in CuPy runs through whole
estimates) are held to the same outputs.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gpupq
from gpupq.backends import CupyBackend, NumpyBackend, cupy_status
from gpupq.gpukernels import GpuKernels, _host_view, gpu_kernels
from gpupq.ivf import IVFPQIndex
from gpupq.kernelsizes import SELECT_K_MAX
from gpupq.scanplan import plan_scan

from .helpers import clustered, install_fake_cupy, same_neighbours

numba = pytest.importorskip("numba", reason="numba runs the kernels (simulated without a GPU): pip install numba")

# The simulator runs one Python thread per GPU thread: blocks of 8 keep these tests to seconds,
# and still put several threads on every loop, barrier and atomic.
SIM_THREADS = 8


def _cuda_param() -> object:
    status = cupy_status()
    return pytest.param(
        "cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not status.usable, reason=f"CuPy backend: {status.reason}")],
    )


@pytest.fixture(params=["simulator", "reference", _cuda_param()])
def kern(request: pytest.FixtureRequest) -> GpuKernels:
    if request.param == "cuda":
        import cupy

        k = gpu_kernels(cupy)
        if k is None or k.mode != "cuda":
            pytest.skip("numba-cuda cannot launch here")
        return k
    return GpuKernels(request.param, np, threads=SIM_THREADS)


def _dev(kern: GpuKernels, a: np.ndarray):
    return kern.xp.asarray(a)


def _host(kern: GpuKernels, a) -> np.ndarray:
    return a.get() if hasattr(a, "get") else np.asarray(a)


def test_segment_sums_add_rows_in_order_in_float32(kern):
    """Bit for bit numpy's add.at in row order (and FAISS's update), whatever the labels' order;
    a label with no rows sums to zero."""
    rng = np.random.default_rng(0)
    x = (rng.standard_normal((61, 11)) * 10 ** rng.uniform(-3, 3, (61, 1))).astype(np.float32)
    labels = rng.integers(0, 7, 61)
    labels[labels == 3] = 4  # label 3 empty
    want = np.zeros((7, 11), dtype=np.float32)
    for i in range(61):
        want[labels[i]] += x[i]
    got = _host(kern, kern.segment_sums(_dev(kern, x), _dev(kern, labels), 7))
    assert got.dtype == np.float32 and got.shape == (7, 11)
    assert np.array_equal(got, want)
    assert not got[3].any()


def _scores(rng: np.random.Generator) -> np.ndarray:
    """(4, 37) float32 with the hard cases: equal scores, inf padding, -0.0 and 0.0, negatives."""
    d = rng.standard_normal((4, 37)).astype(np.float32)
    d[0, :20] = d[0, 5]  # a tie across the k-th
    d[1, 10:] = np.inf  # padding past 10
    d[2, :9], d[2, 9:18] = -0.0, 0.0
    d[3] = -np.abs(d[3]) * 1e30
    return d


@pytest.mark.parametrize("k", [1, 17, 50])
@pytest.mark.parametrize("ties", ["column", "ids per row", "one id row"])
def test_select_k_picks_what_the_array_form_picks(kern, k, ties):
    """The same (score, tie-break) picks as Backend.topk_exact's array form, in ascending order,
    bit for bit: ties by column or by ids (-1 ids last), k past the row's length clipped."""
    rng = np.random.default_rng(k)
    d = _scores(rng)
    if ties == "column":
        tb = None
    elif ties == "ids per row":
        tb = np.stack([rng.permutation(37) for _ in range(4)]).astype(np.int64)
        tb[1, 10:] = -1  # padding ids sort last among equal scores
    else:
        tb = np.broadcast_to(rng.permutation(np.arange(1000, 1037)), d.shape)
    want_d, want_i = NumpyBackend().topk_exact(d, k, None if tb is None else np.ascontiguousarray(tb))
    tb_dev = None if tb is None else _dev(kern, np.ascontiguousarray(tb))
    if ties == "one id row" and tb_dev is not None:
        tb_dev = kern.xp.broadcast_to(tb_dev[0], d.shape)
    got_d, got_i = kern.select_k(_dev(kern, d), k, tb_dev)
    got_d, got_i = _host(kern, got_d), _host(kern, got_i)
    assert got_d.shape == want_d.shape == (4, min(k, 37))
    assert np.array_equal(got_d.view(np.int32), want_d.view(np.int32))  # -0.0 before 0.0, bits kept
    assert np.array_equal(got_i, want_i)


@pytest.mark.parametrize("k", [1, 9])
def test_merge_into_folds_a_block_into_the_running_top_k(kern, k):
    """In place, the same as selecting over [kept | block] by (score, id): the ground truth's
    merge, held-out rows (id -1, inf) never picked over a real one."""
    rng = np.random.default_rng(k)
    kept_d, kept_i = NumpyBackend().topk_exact(_scores(rng)[:, :20], k, np.tile(np.arange(20) + 500, (4, 1)))
    score = _scores(rng)
    ids = rng.permutation(37).astype(np.int64)
    ids[[3, 30]] = -1
    score[:, [3, 30]] = np.inf
    score[0, :4] = kept_d[0, 0]  # ties with a kept score: the smaller id wins
    want_d, want_i = NumpyBackend().topk_exact(
        np.concatenate([kept_d, score], 1), k, np.concatenate([kept_i, np.tile(ids, (4, 1))], 1)
    )
    best_d, best_i = _dev(kern, kept_d), _dev(kern, kept_i)
    kern.merge_into(best_d, best_i, _dev(kern, score), _dev(kern, ids))
    assert np.array_equal(_host(kern, best_d).view(np.int32), want_d.view(np.int32))
    assert np.array_equal(_host(kern, best_i), want_i)


def _tiny_index(be, metric: str = "l2") -> tuple[IVFPQIndex, np.ndarray]:
    x = clustered(300, 16, seed=3)
    rng = np.random.default_rng(0)
    xd = be.asarray(x)
    index = IVFPQIndex(be, 16, 4, 8, nbits=4, metric=metric).train(xd, xd, rng)
    index.add(xd, be.asarray(np.arange(300, dtype=np.int64)))
    index.build()
    return index, x


@pytest.mark.parametrize("metric", ["l2", "ip"])
def test_lut_scan_scores_a_chunk_as_the_decoded_product_does(kern, metric):
    """Table lookups over the codes give the decoded residuals' scores (float32 rounding apart),
    inf in padding columns; the array-form twin equals the kernel bit for bit."""
    be = NumpyBackend()
    index, x = _tiny_index(be, metric)
    q = x[:3] + 0.1
    nprobe = 2
    qr, coarse, probes = index.probe(q, nprobe)
    plan = plan_scan(probes, index.list_sizes, index._offsets_host, 16, 8, 1 << 20)
    part = plan.chunk(plan.chunks[0])
    m, dsub = index.pq.m, index.pq.dsub
    q_ext = np.zeros((4, 16), dtype=np.float32)
    q_ext[:3] = qr * (-2.0 if metric == "l2" else -1.0)
    lut = np.ascontiguousarray(
        np.transpose(
            np.matmul(q_ext.reshape(4, m, dsub).transpose(1, 0, 2), index.pq.codebooks.transpose(0, 2, 1)), (1, 0, 2)
        )
    )
    coarse_ext = np.r_[coarse.ravel(), 0].astype(np.float32)
    base = index._base_terms() if metric == "l2" else np.zeros(300, dtype=np.float32)
    words = index.codes.view(np.uint32)
    args = (lut, words, base, coarse_ext, part.pair, part.start, part.length)
    depth = part.shape[2]
    got = _host(kern, kern.lut_scan(*[_dev(kern, np.ascontiguousarray(a)) for a in args], depth, nprobe))
    twin = GpuKernels("reference", np).lut_scan(*args, depth, nprobe)
    assert np.array_equal(got, twin)
    # the decoded form, as the array scan computes it
    r = index.pq.decode(be, index.codes[part.rows.ravel()]).reshape(*part.rows.shape, 16)
    want = np.einsum("gwd,gtd->gwt", q_ext[part.pair // nprobe], r) + coarse_ext[part.pair][:, :, None]
    want = want + np.where(part.valid, base[part.rows], np.inf)[:, None, :]
    assert (~part.valid).any() and np.isinf(np.moveaxis(got, 1, 2)[~part.valid]).all()  # padding never wins
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)


def test_kernel_search_on_the_stand_in_finds_numpy_s_neighbours(monkeypatch):
    """A whole search through the kernels' own code (simulated) on the stand-in CuPy: probe
    selection, table scan, per-chunk and final selections find what the numpy backend finds."""
    be = install_fake_cupy(monkeypatch)
    nb = NumpyBackend()
    ref, x = _tiny_index(nb)
    dev, _ = _tiny_index(be)  # trained with the twins: the simulator's k-means would take long
    be.kernels.mode, be.kernels.threads = "simulator", SIM_THREADS
    q = x[:3] + 0.1
    d_ref, i_ref, _ = ref.search(q, 5, 2)
    d_dev, i_dev, _ = dev.search(be.asarray(q), 5, 2)
    same_neighbours(d_ref, i_ref, be.to_numpy(d_dev), be.to_numpy(i_dev))


def test_the_backend_keeps_array_forms_past_the_kernels_reach(monkeypatch):
    """k past SELECT_K_MAX, and ids of 2^32 - 1 or more, take the array form (the kernel sorts
    k keys in shared memory and packs 32-bit ids): same picks as numpy."""
    be = install_fake_cupy(monkeypatch)
    calls = []
    real = be.kernels.select_k
    monkeypatch.setattr(be.kernels, "select_k", lambda *a, **kw: calls.append(1) or real(*a, **kw))
    rng = np.random.default_rng(1)
    d = rng.standard_normal((2, SELECT_K_MAX + 40)).astype(np.float32)
    got_d, got_i = be.topk_exact(be.asarray(d), SELECT_K_MAX + 1)
    want_d, want_i = NumpyBackend().topk_exact(d, SELECT_K_MAX + 1)
    assert np.array_equal(be.to_numpy(got_d), want_d) and np.array_equal(be.to_numpy(got_i), want_i)
    assert not calls
    be.topk_exact(be.asarray(d), 10)
    assert calls == [1]
    be.allow_ids(2**32)
    ids = be.asarray(np.arange(d.shape[1], dtype=np.int64) + 2**33)
    be.topk_exact(be.asarray(d), 10, tiebreak=be.xp.broadcast_to(ids, d.shape))
    assert calls == [1]


def test_warm_compiles_every_kernel(kern, monkeypatch):
    """The backend launches each kernel once on tiny inputs when it starts, so numba's compile
    lands outside the timed phases: every kernel, both table-scan variants."""
    launched = []
    real = kern._launch
    monkeypatch.setattr(
        kern, "_launch", lambda name, *a, **kw: launched.append((name, kw.get("variant"))) or real(name, *a, **kw)
    )
    kern.warm()
    assert {n for n, _ in launched} == {"segment_sums", "select_k", "lut_scan"}
    assert {v for n, v in launched if n == "lut_scan"} == {0, 1}


def _signatures(kernels: GpuKernels, monkeypatch, run) -> set:
    """(kernel, variant, numba argument types) of every launch ``run()`` makes."""
    seen = set()
    real = kernels._launch

    def record(name, grid, args, variant=None):
        seen.add((name, variant, tuple(numba.typeof(_host_view(a)) for a in args)))
        real(name, grid, args, variant)

    monkeypatch.setattr(kernels, "_launch", record)
    run()
    return seen


def test_warm_compiles_every_type_an_estimate_launches(monkeypatch):
    """The kernels compiled when the backend starts cover every (kernel, argument types) a whole
    estimate launches, re-ranking and the ground truth included: no compile lands in a timed phase,
    and benchmarks/compile_kernels.py (which compiles warm's types) checks what really runs."""
    be = install_fake_cupy(monkeypatch)
    ds = gpupq.make_synthetic(3000, 32, seed=2)
    cfg = gpupq.EstimateConfig(m=8, nlist=16, nprobe=4, k=10, rerank=20, queries=30)
    used = _signatures(be.kernels, monkeypatch, lambda: gpupq.estimate(ds, cfg, backends=[be]))
    fresh = GpuKernels("reference", np)
    warm = _signatures(fresh, monkeypatch, fresh.warm)
    assert {u[0] for u in used} == {"segment_sums", "select_k", "lut_scan"}
    assert used <= warm, used - warm


def test_the_kernels_compile_with_the_real_cuda_compiler():
    """numba-cuda's real pipeline (no device needed) compiles every kernel for the types the
    backend passes, with no float64 arithmetic in the PTX: the simulator runs kernels as Python
    and cannot see a float64 promotion or a type the compiler refuses."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(root)}
    env.pop("NUMBA_ENABLE_CUDASIM", None)
    done = subprocess.run(
        [sys.executable, str(root / "benchmarks" / "compile_kernels.py")], capture_output=True, text=True, env=env
    )
    if done.returncode == 3:
        pytest.skip(done.stdout.strip())
    assert done.returncode == 0, done.stdout + done.stderr
    compiled = [line for line in done.stdout.splitlines() if "PTX lines" in line]
    assert {line.split(":")[0] for line in compiled} >= {"segment_sums", "select_k", "lut_scan (table in L1)"}
    assert all(line.endswith("float64 instructions 0") for line in compiled)


def test_no_kernels_when_turned_off_or_without_numba_cuda(monkeypatch):
    be = install_fake_cupy(monkeypatch, kernels="off")
    assert be.kernels is None and "array form" in be.kernel_description()
    monkeypatch.setenv("GPUPQ_GPU_KERNELS", "auto")
    # the stand-in is not a device numba can launch on: auto keeps the array forms
    assert CupyBackend().kernels is None
