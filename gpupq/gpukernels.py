"""Custom kernels of the CuPy backend, written for numba's CUDA target.

Why numba rather than CuPy ``RawKernel`` source: the same Python kernel body runs on a GPU
(numba-cuda launches on CuPy arrays through ``__cuda_array_interface__``, no copies) and, unchanged,
under numba's CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) on a CPU, so CI executes every kernel's
logic on tiny inputs and checks it against the array form; CUDA C in a ``RawKernel`` would run
only where a GPU is. numba-cuda is in the GPU machines' image and in the ``gpu`` extras; where it
is missing, the CuPy backend keeps its array forms (and says so in its kernel description).

Three kernels (``gpupq/_cuda_kernels.py``), each with an array-form twin here (:data:`REFERENCE`)
that computes the same output:

- ``segment_sums`` (k-means centroid sums, :meth:`GpuKernels.segment_sums`): rows grouped by
  label in a fixed order and summed in float32 from the first row to the last, one thread per
  (label, column). No atomics, so the sums repeat bit for bit run to run, and equal numpy's
  ``add.at`` in row order.
- ``select_k`` (every top-k, :meth:`GpuKernels.select_k`, and the ground truth's running merge,
  :meth:`GpuKernels.merge_into`): per row, a radix select on 64-bit keys (the score's ordered bits
  above a 32-bit tie-break, as :meth:`Backend.order_key` packs them) built in registers, 8 bits a
  pass with early exit, then the chosen k sorted in shared memory. One launch whatever the row
  length; no (score, index) pairs in memory, no merge sort.
- ``lut_scan`` (the IVF-PQ scan, :meth:`GpuKernels.lut_scan`): per (list segment, query) block,
  m lookups per code in the query's distance table, reading the codes (4 per 32-bit word), not
  decoded floats.

Modes: ``cuda`` (a real GPU), ``simulator`` (numba's simulator: arrays are host memory) and
``reference`` (the array-form twin run on the host views: what CI's stand-in CuPy uses for whole
estimates, as the simulator runs one Python thread per GPU thread). ``GPUPQ_GPU_KERNELS=off``
turns the kernels off on a GPU. What CI checks and what it cannot: the simulator runs each
kernel's logic (tests/test_gpukernels.py); numba-cuda's real compiler types and compiles each one
without a device (benchmarks/compile_kernels.py); races in shared memory need a GPU
(``compute-sanitizer --tool racecheck`` in benchmarks/gpu_check.sh).
"""

from __future__ import annotations

import os
from types import SimpleNamespace
from typing import Any

import numpy as np

from .kernelsizes import LUT_SHARED_FLOATS

KERNELS_ENV = "GPUPQ_GPU_KERNELS"
_THREADS = 128


# ---------------------------------------------------------------------------- array-form twins
def _ref_segment_sums(x: np.ndarray, order: np.ndarray, starts: np.ndarray, out: np.ndarray) -> None:
    labels = np.repeat(np.arange(out.shape[0]), np.diff(starts))
    out[:] = 0
    for j in range(x.shape[1]):
        np.add.at(out[:, j], labels, x[order, j])


def _ref_select_k(
    bits: np.ndarray,
    tb: np.ndarray,
    mode: int,
    pbits: np.ndarray,
    ptb: np.ndarray,
    npre: int,
    k: int,
    out_bits: np.ndarray,
    out_tb: np.ndarray,
) -> None:
    n, length = bits.shape
    pbits = np.broadcast_to(pbits[:, :npre], (n, npre))  # (1, 1) stand-ins when nothing is kept
    ptb = np.broadcast_to(ptb[:, :npre], (n, npre))
    lo = {0: lambda: np.broadcast_to(np.arange(length), (n, length)), 1: lambda: np.broadcast_to(tb[0], (n, length))}
    low = np.concatenate([ptb, lo[mode]() if mode in lo else tb], axis=1).astype(np.int64) & 0xFFFFFFFF
    b = np.concatenate([pbits, bits], axis=1).astype(np.int64)
    hi = np.where(b < 0, (~b) & 0xFFFFFFFF, b | 0x80000000)
    order = np.lexsort((low, hi), axis=1)[:, :k] if n else np.empty((0, k), dtype=np.int64)
    hi_k, lo_k = np.take_along_axis(hi, order, 1), np.take_along_axis(low, order, 1)
    out_bits[:] = np.where(hi_k >= 0x80000000, hi_k - 0x80000000, ((~hi_k) & 0xFFFFFFFF) - 0x100000000)
    out_tb[:] = np.where(lo_k == 0xFFFFFFFF, -1, lo_k)


def _ref_lut_scan(
    lut: np.ndarray,
    words: np.ndarray,
    base: np.ndarray,
    coarse: np.ndarray,
    pair: np.ndarray,
    first: np.ndarray,
    length: np.ndarray,
    nprobe: int,
    acc: np.ndarray,
) -> None:
    m = lut.shape[1]
    col = np.arange(acc.shape[2])
    valid = col < length[:, None]
    rows = np.where(valid, first[:, None] + col, 0)
    codes = words.view(np.uint8)[:, :m][rows]  # (G, depth, m)
    q = pair // nprobe  # (G, width)
    # as the kernel adds: coarse + base first, then the lookups in j order, all in float32
    total = coarse[pair][:, :, None] + base[rows][:, None, :]
    for j in range(m):
        total += lut[q[:, :, None], j, codes[:, None, :, j]]
    acc[:] = np.where(valid[:, None, :], total, np.float32(np.inf))


REFERENCE = {"segment_sums": _ref_segment_sums, "select_k": _ref_select_k, "lut_scan": _ref_lut_scan}


# ---------------------------------------------------------------------------- launching
def _host_view(a: Any) -> Any:
    """A device array as numpy sees it, under the simulator or the reference twins, where device
    memory is host memory (the CI stand-in CuPy's arrays publish their host pointer in
    ``__cuda_array_interface__``, as CuPy publishes a device pointer)."""
    if isinstance(a, np.ndarray) or not hasattr(a, "__cuda_array_interface__"):
        return a
    cai = dict(a.__cuda_array_interface__)

    interface = {
        "data": cai["data"],
        "shape": tuple(cai["shape"]),
        "typestr": cai["typestr"],
        "strides": cai.get("strides"),
        "version": 3,
    }
    return np.asarray(SimpleNamespace(__array_interface__=interface))


class GpuKernels:
    """The kernels of one mode, launched on a backend's arrays (see the module docstring)."""

    def __init__(self, mode: str, xp: Any, threads: int = _THREADS) -> None:
        self.mode = mode
        self.xp = xp
        self.threads = threads
        self._compiled: dict[str, Any] | None = None

    def _launch(self, name: str, grid: tuple[int, ...], args: tuple[Any, ...], variant: int | None = None) -> None:
        """One kernel launch: ``grid`` blocks of :attr:`threads` threads."""
        if 0 in grid:
            return
        if self.mode == "reference":
            REFERENCE[name](*[_host_view(a) for a in args])
            return
        if self._compiled is None:
            from . import _cuda_kernels  # imports numba: only when a kernel first runs

            self._compiled = _cuda_kernels.KERNELS
        kernel = self._compiled[name]
        if variant is not None:
            kernel = kernel[variant]
        if self.mode == "simulator":  # it copies every array back: a read-only input needs a copy
            args = tuple(_host_view(a) for a in args)
            args = tuple(a.copy() if isinstance(a, np.ndarray) and not a.flags.writeable else a for a in args)
        kernel[grid, self.threads](*args)

    def warm(self) -> None:
        """Compile every kernel for the argument types the backend passes, on tiny inputs: numba
        compiles at a kernel's first launch, which would otherwise land in a timed phase."""
        xp = self.xp
        f32, i64 = xp.float32, xp.int64
        self.segment_sums(xp.zeros((4, 2), dtype=f32), xp.zeros(4, dtype=i64), 2)
        d = xp.zeros((2, 8), dtype=f32)
        ids = xp.arange(8, dtype=i64)
        self.select_k(d, 3)
        self.select_k(d, 3, xp.broadcast_to(ids, d.shape))
        self.select_k(d, 3, xp.ascontiguousarray(xp.broadcast_to(ids, d.shape)))
        self.merge_into(xp.zeros((2, 3), dtype=f32), xp.zeros((2, 3), dtype=i64), d, ids)
        for m in (4, 36):  # the shared-memory table (m·ksub <= LUT_SHARED_FLOATS) and the cached one
            lut = xp.zeros((2, m, 256), dtype=f32)
            words = xp.zeros((4, m // 4), dtype=xp.uint32)
            pair = xp.zeros((1, 1), dtype=i64)  # C-contiguous, as the scan plan's arrays are
            first, length = xp.zeros(1, dtype=i64), xp.ones(1, dtype=i64)
            self.lut_scan(lut, words, xp.zeros(4, dtype=f32), xp.zeros(2, dtype=f32), pair, first, length, 2, 1)

    def segment_sums(self, x: Any, labels: Any, nrows: int) -> Any:
        """Rows of x: (n, d) float32 summed by labels: (n,) int64 in [0, nrows) ->
        (nrows, d) float32, each sum in row order in float32 (numpy's ``add.at``, bit for bit)."""
        xp = self.xp
        if x.shape[0] == 0:
            return xp.zeros((nrows, x.shape[1]), dtype=xp.float32)
        order = xp.argsort(labels, kind="stable")
        starts = xp.searchsorted(xp.take(labels, order), xp.arange(nrows + 1, dtype=xp.int64))
        out = xp.empty((nrows, x.shape[1]), dtype=xp.float32)
        x = xp.ascontiguousarray(x, dtype=xp.float32)
        self._launch("segment_sums", (nrows, -(-x.shape[1] // self.threads)), (x, order, starts, out))
        return out

    def select_k(self, d: Any, k: int, tiebreak: Any | None = None) -> tuple[Any, Any]:
        """The k smallest of each row of d: (n, L) float32 by (score, tie-break) as
        :meth:`Backend.topk_exact`: ties by ``tiebreak`` (ids in [-1, 2^32 - 1), (n, L) or
        broadcast from one row) or else by column. Returns ascending (scores (n, k') float32,
        tie-breaks or columns (n, k') int64), k' = min(k, L) <= :data:`SELECT_K_MAX`."""
        xp = self.xp
        n, length = d.shape
        kk = min(k, length)
        bits = xp.ascontiguousarray(d, dtype=xp.float32).view(xp.int32)
        if tiebreak is None:
            mode, tb = 0, xp.empty((1, 1), dtype=xp.int64)  # never read: ties by column
        elif tiebreak.ndim == 1 or tiebreak.strides[0] == 0:  # one row of ids for every row
            mode, tb = 1, xp.ascontiguousarray(tiebreak.reshape(-1, length)[:1], dtype=xp.int64)
        else:
            mode, tb = 2, xp.ascontiguousarray(tiebreak, dtype=xp.int64)
        out_bits = xp.empty((n, kk), dtype=xp.int32)
        out_tb = xp.empty((n, kk), dtype=xp.int64)
        # no kept top-k: one-element stand-ins (a zero-size array may have no device pointer)
        none_kept = (xp.empty((1, 1), dtype=xp.int32), xp.empty((1, 1), dtype=xp.int64), 0)  # never read
        self._launch("select_k", (n,), (bits, tb, mode, *none_kept, kk, out_bits, out_tb))
        return out_bits.view(xp.float32), out_tb

    def merge_into(self, best_d: Any, best_i: Any, score: Any, ids: Any) -> None:
        """Fold a score block into a running top-k, in place and in one launch, with no copy of
        the block and nothing read back: the ground truth's merge.

        best_d: (n, k) float32 and best_i: (n, k) int64 C-contiguous, each row ascending by
        (score, id), -1 ids last; score: (n, L) float32; ids: (L,) int64 in [-1, 2^32 - 1).
        """
        xp = self.xp
        n, k = best_d.shape
        bits = xp.ascontiguousarray(score, dtype=xp.float32).view(xp.int32)
        tb = xp.ascontiguousarray(ids, dtype=xp.int64).reshape(1, -1)
        kept = best_d.view(xp.int32)
        self._launch("select_k", (n,), (bits, tb, 1, kept, best_i, k, k, kept, best_i))

    def lut_scan(
        self, lut: Any, words: Any, base: Any, coarse: Any, pair: Any, first: Any, length: Any, depth: int, nprobe: int
    ) -> Any:
        """Scores of one scan chunk: ``coarse[pair] + base[r] + Σ_j lut[pair // nprobe, j,
        code_j of r]`` for the stored rows r = first[g] + t, t < length[g] (inf past it).

        lut: (nq + 1, m, ksub) float32 per-query tables; words: (N, m/4) uint32, the codes four
        to a word; base: (N,) float32 per-code terms; coarse: (npairs + 1,) float32; pair:
        (G, width) int64 query-pair slots; first, length: (G,) int64 each item's rows; depth:
        the longest item's length. Only these per-item arrays cross from the host, not a row
        number per code. Returns (G, width, depth) float32.
        """
        xp = self.xp
        g, width = pair.shape
        acc = xp.empty((g, width, depth), dtype=xp.float32)
        shared = int(lut.shape[1] * lut.shape[2] <= LUT_SHARED_FLOATS)
        args = (lut, words, base, coarse, pair, first, length, nprobe, acc)
        self._launch("lut_scan", (g, width), args, variant=shared)
        return acc


def gpu_kernels(xp: Any) -> GpuKernels | None:
    """The kernels the CuPy backend on ``xp`` runs, or None for its array forms: off by
    ``GPUPQ_GPU_KERNELS=off``, or numba's CUDA target missing or seeing no device.
    ``GPUPQ_GPU_KERNELS=reference`` or ``simulator`` force those modes (CI's stand-in CuPy)."""
    want = os.environ.get(KERNELS_ENV, "auto").strip().lower()
    if want in ("off", "0", "none"):
        return None
    if want in ("reference", "simulator"):
        return GpuKernels(want, xp)
    # numba would otherwise synchronise on the stream a CuPy array names in its
    # __cuda_array_interface__ at every launch (a host sync per kernel); both launch on the
    # default stream, in order, so nothing needs waiting for.
    os.environ.setdefault("NUMBA_CUDA_ARRAY_INTERFACE_SYNC", "0")
    try:
        from numba import cuda
    except ImportError:
        return None
    try:
        simulated = bool(getattr(cuda, "simulator", None)) and os.environ.get("NUMBA_ENABLE_CUDASIM") == "1"
        if simulated or not cuda.is_available():
            return None
    except Exception:
        return None
    kernels = GpuKernels("cuda", xp)
    try:
        kernels.warm()
    except Exception as exc:  # numba-cuda that cannot compile or launch here
        global _failure
        _failure = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        return None
    return kernels


_failure: str | None = None


def unavailable_reason() -> str:
    """Why :func:`gpu_kernels` last gave None, for reports."""
    return _failure or "numba-cuda missing or GPUPQ_GPU_KERNELS=off"
