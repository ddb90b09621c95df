"""Array backends: one small class per array library, in the style of thinc's ``Ops``.

The IVF-PQ code is written once against ``be.xp`` (numpy or cupy) plus the few methods below,
which hold only what differs between the two libraries. GPU detection lives in one place,
:func:`cupy_status`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from .errors import GpupqError
from .kernelsizes import SELECT_K_MAX
from .threads import ThreadBudget

try:  # the numpy backend's compiled kernel (gpupq/_native.c); optional, built where a C compiler is
    from . import _native
except ImportError:  # pragma: no cover - exercised only where the extension did not build
    _native = None

Array = Any  # numpy.ndarray or cupy.ndarray, documented by shape and dtype where used

#: ``GPUPQ_NATIVE=0`` turns the compiled kernel off (the array form runs instead), to compare them
NATIVE_ENV = "GPUPQ_NATIVE"
#: the widest sub-space each compiled kernel takes: past it a BLAS product and argmin were as fast
#: or the kernel's time unsteady (benchmarks/bench_kernels.py; the figures are in
#: benchmarks/RESULTS.md, "Measurements behind constants").
#: Below 64 targets a kernel has no full vector step.
NATIVE_MAX_D = {"avx512": 32, "avx2": 20}
NATIVE_MIN_K = 64


#: ids below this fit beside a score in one 64-bit selection key (Backend.order_key)
NARROW_IDS = 2**32 - 1


class Backend:
    """Base backend: numpy semantics. :class:`NumpyBackend` is this; :class:`CupyBackend`
    overrides only what differs."""

    name: str = "numpy"
    xp: Any = np
    #: numpy, for host-side bookkeeping (random draws, small tables) in algorithm modules
    host: Any = np
    #: whether re-rank stores live in this backend's memory (a GPU's), not read from the host
    resident_stores: bool = False
    #: host threads for :meth:`map` (the estimate sets it from ``--threads``)
    budget: ThreadBudget = ThreadBudget(1)
    #: ids may reach 2^32 - 1 (a base of that many rows, or more): :meth:`topk_exact` then ranks
    #: its tie-break ids first, since :meth:`order_key` packs 32 bits of them beside the score
    wide_ids: bool = False
    #: row length (in float32s) the ground truth pads its product operands to: 1 on a CPU;
    #: 32 (128 bytes) on a GPU, where 769 columns at d 768 misalign every row
    product_align: int = 1

    def allow_ids(self, largest: int) -> None:
        """Make ids up to ``largest`` exact in every selection (:attr:`wide_ids` past 32 bits)."""
        self.wide_ids = self.wide_ids or largest >= NARROW_IDS

    @property
    def threads(self) -> int:
        """How many pieces of independent work :meth:`map` runs at once."""
        return self.budget.threads

    def map(self, fn: Any, items: Any) -> list[Any]:
        """[fn(item) for item in items], on up to :attr:`threads` host threads, results in
        order. The pieces must write to disjoint outputs. The GPU backend runs them in turn:
        its kernels are queued asynchronously, host threads add nothing."""
        return self.budget.map(fn, items)

    def row_groups(self, n: int) -> list[slice]:
        """Slices cutting range(n) into one even group per thread (fewer when n is small): the
        pieces of a row-wise pass for :meth:`map`."""
        step = max(1, -(-n // max(self.threads, 1)))
        return [slice(s, min(n, s + step)) for s in range(0, n, step)]

    def device_description(self) -> str:
        raise NotImplementedError

    def library_version(self) -> str:
        return str(self.xp.__version__)

    def asarray(self, a: Any, dtype: Any = None) -> Array:
        """Host (or device) array -> array of this backend."""
        return self.xp.asarray(a, dtype=dtype)

    def to_numpy(self, a: Array) -> np.ndarray:
        """The one way back to the host."""
        return np.asarray(a)

    def synchronize(self) -> None:
        """Wait for queued work; call before reading a host clock."""

    #: the work sizes below are divided by this; :meth:`retrying` raises it after running out
    shrink: int = 1
    #: retries of one operation after running out of memory, each with chunks 4x smaller
    OOM_RETRIES = 3

    def out_of_memory_errors(self) -> tuple[type[BaseException], ...]:
        return (MemoryError,)

    def release_memory(self) -> None:
        """Give cached blocks back before a retry (CuPy's memory pool)."""

    def retrying(self, fn: Any, what: str) -> Any:
        """fn(), run again with chunks 4x smaller (up to :attr:`OOM_RETRIES` times) when it runs
        out of memory; then a one-line :class:`GpupqError`. fn must start from scratch each
        time (the phases pass a function that does). The smaller chunks are this phase's: the
        shrink is back where it was when the call returns, so later phases start full size."""
        entry = self.shrink
        try:
            for attempt in range(self.OOM_RETRIES + 1):
                try:
                    return fn()
                except self.out_of_memory_errors() as exc:
                    first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                # Freed here, past the except: while the exception lives, its traceback holds
                # the failed attempt's frames and their arrays, which the pool cannot give back.
                self.release_memory()
                if attempt == self.OOM_RETRIES:
                    raise GpupqError(
                        f"{what} ran out of memory on {self.name} even with work chunks 1/{self.shrink} "
                        f"of the usual size ({first}); free memory or use fewer queries, a smaller k or nprobe"
                    )
                self.shrink *= 4
            raise AssertionError("unreachable")
        finally:
            self.shrink = entry

    def free_memory(self) -> int:
        """Bytes of working memory this backend can reasonably use."""
        try:
            pages = os.sysconf("SC_AVPHYS_PAGES")
            return int(pages * os.sysconf("SC_PAGE_SIZE"))
        except (ValueError, OSError, AttributeError):
            return 4 << 30

    def nearest_kernel(self, d: int, k: int) -> Any:
        """A compiled kernel for assigning points of dimension d to the nearest of k targets, or
        None to use the array form (a product and an argmin) of :func:`gpupq.kmeans.assign`.
        The kernel's contract is ``_native.nearest``'s: kernel(x (n, d) float32 with contiguous
        rows, ops (d + 1, k) float32 C-contiguous, labels (n,) int64 out, best (n,) float32 out),
        the same labels and scores as the array form, never writing the (n, k) scores."""
        return None

    def merge_kernel(self) -> Any:
        """A compiled kernel folding a block of scores into a running top-k, or None to use the
        array form of :func:`gpupq.knn.exact_knn`'s merge. Contract: ``_native.topk_merge``'s:
        kernel(score (b, L) float32 with contiguous rows, ids (L,) int64, best_d (b, k) float32
        and best_i (b, k) int64 C-contiguous, updated in place, each row ascending by (score,
        id), bias (L,) float32 or None, added to each column's scores first)."""
        return None

    def kernel_description(self) -> str:
        """Which form of the assignment and top-k merge runs (compiled or array), for reports."""
        return "array form"

    def argsort_stable(self, a: Array) -> Array:
        """Stable argsort of a 1-D array: (n,) -> (n,) int64. ``cupy.argsort`` takes
        ``kind="stable"`` too (any other kind raises; its sort is always stable)."""
        return self.xp.argsort(a, kind="stable")

    # The three work sizes below are what a backend sets (the *_budget methods); callers read
    # them through work_bytes/block_bytes/scan_bytes, which apply the out-of-memory shrink once.
    def work_bytes(self) -> int:
        """Size to aim for with a chunk's temporary arrays (score matrices and the like)."""
        return self._work_budget() // self.shrink

    def block_bytes(self) -> int:
        """Size of one block of scores in k-means assignment."""
        return self._block_budget() // self.shrink

    def scan_bytes(self) -> int:
        """Size to aim for with one chunk of the inverted-list scan."""
        return self._scan_budget() // self.shrink

    def _work_budget(self) -> int:
        return int(min(128 << 20, self.free_memory() // 8))

    def _block_budget(self) -> int:
        # cache-sized on a CPU, so the argmin reads what the GEMM just wrote while it is in cache
        return 16 << 20

    def _scan_budget(self) -> int:
        # A few MB on a CPU, so a chunk's scores are still in the last-level cache when they are
        # selected, and few enough chunks that the pool's overhead stays small (16 MB was the
        # fastest of 4, 16 and 32 MB: benchmarks/RESULTS.md, "Measurements behind constants").
        return 16 << 20

    def order_key(self, values: Array, tiebreak: Array | None = None) -> Array:
        """Keys that order (score, tie-break) lexicographically: (n, L) uint64.

        values: (n, L) float32 scores, smaller is better; tiebreak: (n, L) integers in
        [-1, 2^32 - 1) (ids; -1 sorts last), default the column. The float's bits are mapped
        to an unsigned integer of the same order (negatives flipped whole, positives' sign
        bit set) and put above the tie-break, so one integer selection is exact on ties and
        the key alone gives back both halves (:meth:`key_values`, :meth:`key_tiebreak`).
        """
        xp = self.xp
        n, length = values.shape
        bits = xp.ascontiguousarray(values, dtype=xp.float32).view(xp.int32)
        mask = bits >> 31  # -1 for negatives, 0 otherwise
        mask |= xp.int32(-(2**31))
        keys = xp.empty((n, length), dtype=xp.uint64)
        # Written as two 32-bit halves in place (little-endian: low word first): a fifth of
        # the passes of building each half as 64-bit integers and shifting.
        halves = keys.view(xp.uint32).reshape(n, length, 2)
        xp.bitwise_xor(bits, mask, out=halves[:, :, 1].view(xp.int32))
        halves[:, :, 0] = xp.arange(length, dtype=xp.uint32)[None] if tiebreak is None else tiebreak
        return keys

    def key_values(self, keys: Array) -> Array:
        """The scores of :meth:`order_key` keys: (n, k) uint64 -> (n, k) float32, bit for bit."""
        xp = self.xp
        high = xp.ascontiguousarray(keys.view(xp.uint32).reshape(*keys.shape, 2)[..., 1]).view(xp.int32)
        mask = ~high >> 31  # keys with the top bit clear came from negative scores
        mask |= xp.int32(-(2**31))
        return (high ^ mask).view(xp.float32)

    def key_tiebreak(self, keys: Array) -> Array:
        """The tie-break half of :meth:`order_key` keys: (n, k) uint64 -> (n, k) int64, -1
        where it was -1."""
        xp = self.xp
        low = keys.view(xp.uint32).reshape(*keys.shape, 2)[..., 0].astype(xp.int64)
        return xp.where(low == 0xFFFFFFFF, -1, low)

    def select_keys(self, keys: Array, k: int, sort: bool = True) -> Array:
        """The k smallest keys of each row: (n, L) uint64 -> (n, min(k, L)) uint64, ascending
        when ``sort``. A partition of the keys themselves: no index array, and the key carries
        its position or id (about twice the speed of an argpartition on numpy)."""
        xp = self.xp
        k = min(k, keys.shape[1])
        if k < keys.shape[1]:
            keys = xp.partition(keys, k - 1, axis=1)[:, :k]
        return xp.sort(keys, axis=1) if sort and k > 1 else keys

    def topk_exact(self, d: Array, k: int, tiebreak: Array | None = None, sort: bool = True) -> tuple[Array, Array]:
        """The k smallest of each row of d: (n, L) float32, ties broken by ``tiebreak``
        (default the column), so the same candidates give the same selection whatever their
        layout: a search at nprobe p and the first p probe ranks of a deeper scan pick the
        same ids among equal PQ distances, which are common (vectors with one code in one
        list). Returns (scores (n, k') float32, tie-break of each pick (n, k') int64: the
        column when none was given, else the given ids), k' = min(k, L); ascending when
        ``sort``."""
        if tiebreak is not None and self.wide_ids:
            return self._topk_wide(d, k, tiebreak, sort)
        keys = self.select_keys(self.order_key(d, tiebreak), k, sort)
        return self.key_values(keys), self.key_tiebreak(keys)

    def _topk_wide(self, d: Array, k: int, tiebreak: Array, sort: bool) -> tuple[Array, Array]:
        """:meth:`topk_exact` with ids of any size: each id replaced by its rank among the call's
        ids (which keeps their order and fits 32 bits), selected, and mapped back. A sort of the
        ids per call: only for collections of 2^32 - 1 rows or more."""
        xp = self.xp
        tb = xp.broadcast_to(tiebreak, d.shape)
        uniq, inv = xp.unique(tb, return_inverse=True)  # ascending; -1 (padding) first when present
        ranks = xp.where(tb < 0, -1, inv.reshape(d.shape).astype(xp.int64))  # -1 still sorts last
        keys = self.select_keys(self.order_key(d, ranks), k, sort)
        picked = self.key_tiebreak(keys)
        return self.key_values(keys), xp.where(picked < 0, -1, xp.take(uniq, xp.maximum(picked, 0)))

    def label_sum_layout(self, x: Array) -> Array:
        """x: (n, d) float32 points -> the layout :meth:`sum_rows_by_label` reads, prepared once
        per k-means (not every iteration): here the transpose (d, n), so each column's sums are
        one contiguous bincount."""
        return self.xp.ascontiguousarray(x.T)

    def sum_rows_by_label(self, labels: Array, values: Array, nrows: int) -> Array:
        """Sum of the rows of each label: out[l] = sum of x[i] where labels[i] == l.

        labels: (n,) int64 in [0, nrows); values: x in :meth:`label_sum_layout`'s layout.
        Returns (nrows, d) float32.
        """
        # One unbuffered add per column: contiguous passes, float32 accumulation as FAISS's
        # centroid update, a fixed summation order (results repeat exactly). numpy 2's ufunc.at
        # fast path beats bincount, which converts every column to float64 first
        # (benchmarks/RESULTS.md, "Measurements behind constants").
        out = np.zeros((values.shape[0], nrows), dtype=np.float32)

        def column(j: int) -> None:
            np.add.at(out[j], labels, values[j])

        self.map(column, range(values.shape[0]))  # columns are independent: the thread budget
        return np.ascontiguousarray(out.T)

    def sq_norms(self, x: Array) -> Array:
        """Squared L2 norms along the last axis: (..., d) float32 -> (...) float32."""
        return self.xp.einsum("...d,...d->...", x, x)  # no (..., d) temporary

    def count_labels(self, labels: Array, nrows: int) -> Array:
        """How many of labels: (n,) int64 in [0, nrows) equal each value: (nrows,) int64."""
        return np.bincount(labels, minlength=nrows).astype(np.int64, copy=False)


def native_kernel() -> str | None:
    """Name of the compiled kernels the numpy backend uses (``avx512``, ``avx2``: nearest
    target, top-k merge, centroid sums), or None: extension not built, no kernel for this
    processor, or turned off with ``GPUPQ_NATIVE=0``."""
    if _native is None or not _native.KERNELS or os.environ.get(NATIVE_ENV, "1").strip() == "0":
        return None
    return str(_native.KERNELS[0])


class NumpyBackend(Backend):
    name = "numpy"

    def __init__(self) -> None:
        #: the compiled kernels' name, or None for the array forms; fixed for the backend's life,
        #: so a k-means never mixes the two layouts of :meth:`label_sum_layout`
        self.kernel = native_kernel()

    def nearest_kernel(self, d: int, k: int) -> Any:
        if self.kernel is None or d > NATIVE_MAX_D[self.kernel] or k < NATIVE_MIN_K:
            return None
        return _native.nearest

    def merge_kernel(self) -> Any:
        return None if self.kernel is None else _native.topk_merge

    def label_sum_layout(self, x: Array) -> Array:
        # the compiled sums read rows as they are: no transposed copy of the sample
        return super().label_sum_layout(x) if self.kernel is None else x

    def sum_rows_by_label(self, labels: Array, values: Array, nrows: int) -> Array:
        if self.kernel is None:
            return super().sum_rows_by_label(labels, values, nrows)
        # Row order and float32, as the column form and FAISS's update sum; the threads take
        # column ranges, so each sum still runs over the points in order.
        out = np.zeros((nrows, values.shape[1]), dtype=np.float32)
        labels = np.ascontiguousarray(labels, dtype=np.int64)
        width = values.shape[1]
        step = max(8, -(-width // self.threads))

        def columns(c: int) -> None:
            _native.sum_rows(labels, values[:, c : c + step], out[:, c : c + step])

        self.map(columns, range(0, width, step))
        return out

    def kernel_description(self) -> str:
        if self.kernel is not None:
            return f"compiled {self.kernel} kernels"
        if _native is None:
            return "array form (compiled kernel not built)"
        if not _native.KERNELS:
            return "array form (no compiled kernel for this processor)"
        if native_kernel() is not None:
            return "array form"
        return f"array form ({NATIVE_ENV}=0)"

    def device_description(self) -> str:
        import platform

        try:
            total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") / 2**30
            memory = f", {total:.0f} GiB"
        except (ValueError, OSError, AttributeError):
            memory = ""
        return f"CPU ({platform.machine()}, {os.cpu_count()} cores{memory}; {self.kernel_description()})"


class CupyBackend(Backend):
    """CuPy on one CUDA device. Constructed only when :func:`cupy_status` says it is usable."""

    name = "cupy"
    resident_stores = True
    product_align = 32

    def __init__(self) -> None:
        import cupy

        from .gpukernels import gpu_kernels

        self.xp = cupy
        self._cupy = cupy
        #: the custom kernels (gpupq/gpukernels.py), or None for the array forms
        self.kernels = gpu_kernels(cupy)

    def kernel_description(self) -> str:
        if self.kernels is None:
            from .gpukernels import unavailable_reason

            return f"array form ({unavailable_reason()})"
        return "numba CUDA kernels" + ("" if self.kernels.mode == "cuda" else f" ({self.kernels.mode})")

    @property
    def threads(self) -> int:
        return 1

    def map(self, fn: Any, items: Any) -> list[Any]:
        return [fn(item) for item in items]

    def device_description(self) -> str:
        cp = self._cupy
        dev = cp.cuda.Device()
        props = cp.cuda.runtime.getDeviceProperties(dev.id)
        name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
        total = props["totalGlobalMem"] / 2**30
        return f"GPU {dev.id}: {name} ({total:.0f} GiB; {self.kernel_description()})"

    def asarray(self, a: Any, dtype: Any = None) -> Array:
        return self._cupy.asarray(a, dtype=dtype)

    def to_numpy(self, a: Array) -> np.ndarray:
        return self._cupy.asnumpy(a)  # host arrays pass through

    def synchronize(self) -> None:
        self._cupy.cuda.Device().synchronize()

    def free_memory(self) -> int:
        free, _total = self._cupy.cuda.runtime.memGetInfo()
        # Memory held by CuPy's pool is reusable by us.
        pool = self._cupy.get_default_memory_pool()
        return int(free + pool.free_bytes())

    def _work_budget(self) -> int:
        return int(min(self.free_memory() // 8, 2 << 30))

    def out_of_memory_errors(self) -> tuple[type[BaseException], ...]:
        return (self._cupy.cuda.memory.OutOfMemoryError, MemoryError)

    def release_memory(self) -> None:
        self._cupy.get_default_memory_pool().free_all_blocks()

    def _block_budget(self) -> int:
        return self._work_budget() // 2

    def _scan_budget(self) -> int:
        return self._work_budget()  # large: each kernel has work enough to fill the device

    def label_sum_layout(self, x: Array) -> Array:
        return x  # both forms read rows: no transposed copy of the training sample

    def sum_rows_by_label(self, labels: Array, values: Array, nrows: int) -> Array:
        if self.kernels is not None:
            # rows in order, float32: the same bits every run, and numpy's bits
            return self.kernels.segment_sums(values, labels, nrows)
        import cupyx

        out = self.xp.zeros((nrows, values.shape[1]), dtype=self.xp.float32)
        # Atomics: the summation order, and so the last bits, vary run to run.
        cupyx.scatter_add(out, labels, values)
        return out

    def topk_exact(self, d: Array, k: int, tiebreak: Array | None = None, sort: bool = True) -> tuple[Array, Array]:
        # One launch per call, sorted either way; wide ids (2^32 - 1 or more) and selections
        # deeper than the kernel's shared-memory sort keep the array form.
        wide = tiebreak is not None and self.wide_ids
        if self.kernels is not None and not wide and min(k, d.shape[1]) <= SELECT_K_MAX:
            return self.kernels.select_k(d, k, tiebreak)
        return super().topk_exact(d, k, tiebreak, sort)

    def sq_norms(self, x: Array) -> Array:
        # CuPy's einsum makes '...d,...d->...' a batched product of 1×d by d×1 per row (millions
        # of tiny products): an elementwise square and one reduction kernel instead
        return self.xp.sum(x * x, axis=-1)

    def count_labels(self, labels: Array, nrows: int) -> Array:
        import cupyx

        # not cupy.bincount: it reads its input's minimum back to the host to check it
        out = self.xp.zeros(nrows, dtype=self.xp.int32)
        cupyx.scatter_add(out, labels, self.xp.ones(labels.shape[0], dtype=self.xp.int32))
        return out.astype(self.xp.int64)


@dataclass(frozen=True)
class CupyStatus:
    usable: bool
    reason: str  # why not, or the device when usable
    version: str | None


@lru_cache(maxsize=1)
def cupy_status() -> CupyStatus:
    """Can the CuPy backend run here? Imports CuPy and asks the CUDA runtime, once."""
    try:
        import cupy
    except ImportError as exc:
        return CupyStatus(False, f"CuPy is not installed ({exc}); pip install 'gpupq[gpu]'", None)
    except Exception as exc:  # a broken CUDA install can fail at import time
        return CupyStatus(False, f"CuPy failed to import: {exc}", None)
    version = str(cupy.__version__)
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return CupyStatus(False, f"CUDA driver error: {str(exc).splitlines()[0]}", version)
    if count < 1:
        return CupyStatus(False, "no CUDA device found", version)
    try:
        (cupy.arange(4, dtype=cupy.float32) * 2).sum().item()
    except Exception as exc:
        return CupyStatus(False, f"CUDA device did not answer: {str(exc).splitlines()[0]}", version)
    return CupyStatus(True, f"{count} CUDA device(s)", version)


BACKEND_NAMES = ("auto", "numpy", "cupy", "all")


def usable_backends() -> list[Backend]:
    """Every backend that can run here, numpy first."""
    out: list[Backend] = [NumpyBackend()]
    if cupy_status().usable:
        out.append(CupyBackend())
    return out


def get_backends(name: str) -> list[Backend]:
    """Backends for ``--backend NAME``: auto, numpy, cupy or all."""
    name = name.lower()
    if name == "numpy":
        return [NumpyBackend()]
    if name == "cupy":
        status = cupy_status()
        if not status.usable:
            raise GpupqError(f"--backend cupy is not usable here: {status.reason}")
        return [CupyBackend()]
    if name == "auto":
        return [CupyBackend()] if cupy_status().usable else [NumpyBackend()]
    if name == "all":
        return usable_backends()
    raise GpupqError(f"unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}")
