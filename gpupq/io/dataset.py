"""Datasets: reading and validating vectors.

A :class:`Dataset` wraps an (n, d) array that may be a read-only memory map of any numeric
dtype; every read goes through :meth:`Dataset.rows` or :meth:`Dataset.iter_base`, which
convert to float32 (and L2-normalise under ``cosine``) one chunk at a time, so memory stays
bounded whatever n is. Input files are opened read-only and never modified.

:meth:`Dataset.validate` checks the values the estimate computes on (float32, unit rows under
cosine), not only the file's: float64 data can overflow or vanish in float32, and float32 data
can be too large or too small for float32 squared distances.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GpupqError
from ..params import PARAMS

METRICS = PARAMS["metric"].choices

#: rows read per chunk on the host (about 64 MiB of float32 at d=128)
DEFAULT_CHUNK_BYTES = 64 << 20


def chunk_rows(d: int, budget_bytes: int | None = None) -> int:
    """Rows of d float32 values per chunk of a pass over the base (at least one row)."""
    budget = DEFAULT_CHUNK_BYTES if budget_bytes is None else budget_bytes
    return max(1, budget // (4 * max(d, 1)))


#: squared norms above this overflow float32 squared distances: ‖x − y‖² reaches 4·max‖x‖² and
#: the expanded form ‖x‖² − 2⟨x, y⟩ + ‖y‖² adds such terms (float32's max / 16, about 2e37,
#: values of about 1e19 and up)
MAX_SQUARED_NORM = float(np.finfo(np.float32).max) / 16
#: a largest squared norm below this leaves float32 distances among denormals and rounding
MIN_SQUARED_NORM = 1e-30


@dataclass(frozen=True)
class Origin:
    """How a dataset was opened from files: what :func:`gpupq.io.load_vectors` takes, so another
    process (a Dask worker) can open the same rows itself instead of being sent them."""

    path: str
    fmt: str | None = None
    name: str | None = None
    column: str | None = None
    inflate_limit: int | None = None


@dataclass
class Dataset:
    """Vectors to estimate on.

    array: (n, d) numeric array-like, never written: an ndarray, a read-only ``np.memmap``, or a
    reader's array-like (``hdf5.H5Array``, ``lazy.LazyArray``) offering ``shape``,
    ``dtype``, ``[start:stop]`` and ``[int array]``.
    metric: ``l2``, ``ip`` or ``cosine`` (rows are normalised as they are read).
    origin: the files it was opened from, or None (an array in memory).
    """

    array: Any
    source: str
    metric: str = "l2"
    origin: Origin | None = None

    def __post_init__(self) -> None:
        # what the Python API is handed is checked as the command line's options are: a metric
        # spelled otherwise would run inner product under its name, a complex array would lose
        # its imaginary part, a 1-D one would fail deep inside
        if self.metric not in METRICS:
            raise GpupqError(f"metric {self.metric!r} is not one of {', '.join(METRICS)}")
        shape = getattr(self.array, "shape", None)
        if shape is None or len(shape) != 2:
            raise GpupqError(f"{self.source}: the vectors must be a 2-D array (n, d), got shape {shape}")
        kind = np.dtype(self.array.dtype).kind
        if kind not in "fiub":
            raise GpupqError(f"{self.source}: {self.array.dtype} vectors are not real numbers; give float or integer")

    @property
    def n(self) -> int:
        return int(self.array.shape[0])

    @property
    def d(self) -> int:
        return int(self.array.shape[1])

    @property
    def dtype(self) -> str:
        return str(self.array.dtype)

    def _prepare(self, block: np.ndarray) -> np.ndarray:
        """(b, d) source values -> (b, d) float32, unit rows under cosine."""
        if self.metric != "cosine":
            return np.ascontiguousarray(block, dtype=np.float32)
        return _unit_rows(np.asarray(block))

    def rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` as float32. ids: (b,) int64 -> (b, d) float32."""
        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        out = np.empty((len(ids), self.d), dtype=np.float32)
        # Sorted reads keep a memory map's page accesses sequential.
        out[order] = self._prepare(self.array[ids[order]])
        return out

    def chunk(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop) as float32: (stop - start, d)."""
        return self._prepare(self.array[start:stop])

    def validate(self, chunk: int | None = None) -> None:
        """Refuse what the estimate cannot compute on, scanning in chunks (bounded memory).

        Checked on the values computed on, float32 (unit rows under cosine), not only on the
        source: NaN or Inf in the source; float64 values beyond float32's range, or nonzero rows
        that become all zeros in float32; under l2/ip, squared norms too large for float32
        squared distances, or a set of vectors so small (or all zero) that they vanish there;
        under cosine, zero rows (they have no direction). Under cosine the rows are normalised
        at the source's precision before the float32 cast, so their scale does not matter.
        """
        n = self.n
        if n == 0:
            raise GpupqError(f"{self.source}: has no vectors")
        chunk = chunk or chunk_rows(self.d)
        source_dtype = np.dtype(self.array.dtype)
        floating = source_dtype.kind == "f"
        wider = floating and source_dtype.itemsize > 4  # float64 or longer: float32 may lose values
        cosine = self.metric == "cosine"
        bad = _RowCount()  # NaN or Inf in the source
        zeros = _RowCount()  # all-zero rows in the source (cosine)
        beyond = _RowCount()  # finite in the source, Inf in float32
        vanished = _RowCount()  # nonzero in the source, all zeros in float32
        max_sq, max_row = 0.0, -1
        for start in range(0, n, chunk):
            block = np.asarray(self.array[start : start + chunk])
            if floating:
                bad.add(start, ~np.isfinite(block).all(axis=1))
            if bad.count:
                continue  # that is the error; count the rest of it only
            if cosine:
                zeros.add(start, ~block.any(axis=1))
                continue
            with np.errstate(over="ignore", under="ignore"):  # what float32 loses is what is checked
                x = np.asarray(block, dtype=np.float32)
            if wider:
                beyond.add(start, ~np.isfinite(x).all(axis=1))
                vanished.add(start, block.any(axis=1) & ~x.any(axis=1))
            sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)  # float64: no overflow for any float32 row
            top = int(np.argmax(sq))
            if sq[top] > max_sq:
                max_sq, max_row = float(sq[top]), start + top
        if bad.count:
            raise GpupqError(
                f"{self.source}: {bad.count} of {n} rows contain NaN or Inf "
                f"(first at row {bad.first}); clean or drop them first"
            )
        if zeros.count:
            raise GpupqError(
                f"{self.source}: {zeros.count} rows are all zeros and have no direction under "
                "--metric cosine; drop them or use --metric l2"
            )
        if cosine:
            return
        if beyond.count:
            raise GpupqError(
                f"{self.source}: {beyond.count} of {n} rows hold values beyond float32's range (about ±3.4e38; "
                f"first at row {beyond.first}), and gpupq computes in float32; scale the vectors down"
            )
        if vanished.count:
            raise GpupqError(
                f"{self.source}: {vanished.count} of {n} rows are nonzero but become all zeros in float32 (values "
                f"below about 1e-45; first at row {vanished.first}), and gpupq computes in float32; "
                "scale the vectors up"
            )
        if max_sq > MAX_SQUARED_NORM:
            raise GpupqError(
                f"{self.source}: the largest vector (row {max_row}) has squared norm {max_sq:.3g}, too large for "
                f"float32 squared distances (at most {MAX_SQUARED_NORM:.2g}); scale the vectors down"
            )
        if max_sq == 0:
            raise GpupqError(f"{self.source}: all vectors are zero; there is nothing to tell apart")
        if max_sq < MIN_SQUARED_NORM:
            raise GpupqError(
                f"{self.source}: the largest vector (row {max_row}) has squared norm {max_sq:.3g}, too small for "
                f"float32 squared distances (at least {MIN_SQUARED_NORM:g}); scale the vectors up"
            )


class _RowCount:
    """How many rows a check flagged, and the first of them."""

    def __init__(self) -> None:
        self.count = 0
        self.first = -1

    def add(self, start: int, flagged: np.ndarray) -> None:
        """flagged: (b,) bool over the rows from ``start``."""
        k = int(np.count_nonzero(flagged))
        if k and self.first < 0:
            self.first = start + int(np.argmax(flagged))
        self.count += k


def _unit_rows(block: np.ndarray) -> np.ndarray:
    """(b, d) rows -> (b, d) float32 unit rows, normalised before the float32 cast so that rows
    beyond float32's range (float64 values of 1e300 or 1e-300) keep their direction. Zero rows
    were refused by :meth:`Dataset.validate`."""
    if block.dtype.kind == "f" and block.dtype.itemsize > 4:
        # Scale by the largest value first: the squares of 1e300 overflow even float64.
        x = block / np.abs(block).max(axis=1, keepdims=True)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return np.ascontiguousarray(x, dtype=np.float32)
    x = np.array(block, dtype=np.float32, order="C")  # a copy: normalised in place below
    norms = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64))  # float64: no overflow, no underflow
    # float32 division is accurate while the norm is a normal float32 (almost always).
    usual = (norms > 1e-30) & (norms < 1e30)
    if usual.all():
        x /= norms.astype(np.float32)[:, None]
    else:
        x[usual] /= norms[usual].astype(np.float32)[:, None]
        x[~usual] = (x[~usual].astype(np.float64) / norms[~usual, None]).astype(np.float32)
    return x
