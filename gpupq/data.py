"""Loading, validating and splitting vectors.

A :class:`Dataset` wraps an (n, d) array that may be a read-only memory map of any numeric
dtype; every read goes through :meth:`Dataset.rows` or :meth:`Dataset.iter_base`, which
convert to float32 (and L2-normalise under ``cosine``) one chunk at a time, so memory stays
bounded whatever n is. Input files are opened read-only and never modified.

:meth:`Dataset.validate` checks the values the estimate computes on (float32, unit rows under
cosine), not only the file's: float64 data can overflow or vanish in float32, and float32 data
can be too large or too small for float32 squared distances.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import GpupqError

METRICS = ("l2", "ip", "cosine")

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


@dataclass
class Dataset:
    """Vectors to estimate on.

    array: (n, d) numeric array-like, never written: an ndarray, a read-only ``np.memmap``, or a
    reader's array-like (``formats.H5Array``, ``formats.LazyArray``) offering ``shape``,
    ``dtype``, ``[start:stop]`` and ``[int array]``.
    metric: ``l2``, ``ip`` or ``cosine`` (rows are normalised as they are read).
    """

    array: Any
    source: str
    metric: str = "l2"

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


def make_synthetic(n: int, d: int, seed: int = 0, metric: str = "l2") -> Dataset:
    """Clustered data as in ``pqtool.py``: ``max(n // 250, 2)`` centres of scale 5 plus unit noise.

    Row i belongs to centre ``i % ncentres``. Generated in float32 chunks, with no Python loop per
    vector. Returns a Dataset over an in-memory (n, d) float32 array.
    """
    if n < 2 or d < 1:
        raise GpupqError(f"--n must be at least 2 and --d at least 1 (got n={n}, d={d})")
    rng = np.random.default_rng(seed)
    ncentres = max(n // 250, 2)
    centres = rng.normal(scale=5.0, size=(ncentres, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    step = chunk_rows(d)
    for start in range(0, n, step):
        stop = min(n, start + step)
        out[start:stop] = rng.standard_normal(size=(stop - start, d), dtype=np.float32)
        out[start:stop] += centres[np.arange(start, stop) % ncentres]
    return Dataset(array=out, source="synthetic", metric=metric)


@dataclass
class Split:
    """Queries and base. Either queries held out of the dataset (the base is every other row),
    or a separate query set (``query_source``; the base is every row).

    query_ids: (nq,) int64, sorted row numbers of the held-out queries (empty for a query file).
    Base vectors keep their row numbers as ids, so results map back to the input file.
    """

    dataset: Dataset
    query_ids: np.ndarray
    _queries: np.ndarray | None = field(default=None, repr=False)
    query_source: str | None = None  # the query file, or None when held out

    @property
    def n_base(self) -> int:
        return self.dataset.n - len(self.query_ids)

    @property
    def n_queries(self) -> int:
        return len(self.query_ids) if self.query_source is None else len(self.queries)

    @property
    def queries(self) -> np.ndarray:
        """(nq, d) float32."""
        if self._queries is None:
            self._queries = self.dataset.rows(self.query_ids)
        return self._queries

    def base_ids(self) -> np.ndarray:
        """(n_base,) int64 row numbers of the base (allocates n_base ids)."""
        keep = np.ones(self.dataset.n, dtype=bool)
        keep[self.query_ids] = False
        return np.flatnonzero(keep).astype(np.int64)

    def iter_base(
        self, chunk: int | None = None, mark_queries: bool = False
    ) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids (b,) int64, x (b, d) float32) over the base, in row order, chunked.

        mark_queries: leave held-out rows in place with id -1 instead of copying the chunk
        without them (for a consumer that skips id -1, as the exact k-NN does).
        """
        chunk = chunk or chunk_rows(self.dataset.d)
        qids = self.query_ids
        for start in range(0, self.dataset.n, chunk):
            stop = min(self.dataset.n, start + chunk)
            x = self.dataset.chunk(start, stop)
            lo, hi = np.searchsorted(qids, [start, stop])
            ids = np.arange(start, stop, dtype=np.int64)
            if hi > lo:
                if mark_queries:
                    ids[qids[lo:hi] - start] = -1
                else:
                    keep = np.ones(stop - start, dtype=bool)
                    keep[qids[lo:hi] - start] = False
                    ids, x = ids[keep], x[keep]
            if len(ids):
                yield ids, x

    def sample_base(self, size: int, seed: int) -> np.ndarray:
        """(min(size, n_base),) int64 base row numbers, a uniform sample without replacement,
        in random order.

        Nested: the sample of any size is a prefix of every larger one drawn with the same seed,
        so an estimate at one nlist and a sweep over many train on the same points. Each base
        position gets a 64-bit hash of (seed, position) as its key and the sample is the
        ``size`` smallest keys, in key order (an independent uniform order, whatever the size).
        One chunked pass, memory O(size + chunk).
        """
        size = min(size, self.n_base)
        salt = _mix64(np.array([seed], dtype=np.uint64))[0]
        best_k = np.empty(0, dtype=np.uint64)
        best_p = np.empty(0, dtype=np.int64)
        for s in range(0, self.n_base, _SAMPLE_CHUNK):
            pos = np.arange(s, min(s + _SAMPLE_CHUNK, self.n_base), dtype=np.int64)
            keys = _mix64(pos.astype(np.uint64) ^ salt)
            best_k = np.concatenate([best_k, keys])
            best_p = np.concatenate([best_p, pos])
            if len(best_k) > size:
                keep = np.argpartition(best_k, size - 1)[:size] if size else np.empty(0, dtype=np.int64)
                best_k, best_p = best_k[keep], best_p[keep]
        pos = best_p[np.argsort(best_k, kind="stable")]
        # Map base positions to row numbers without building the full id list:
        # row = pos + number of query rows at or before it.
        qids = self.query_ids
        shifted = qids - np.arange(len(qids))  # base positions at which each query row sits
        return (pos + np.searchsorted(shifted, pos, side="right")).astype(np.int64)


_SAMPLE_CHUNK = 1 << 20


def _mix64(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finaliser: (n,) uint64 -> (n,) uint64 well-mixed hashes (wrapping arithmetic)."""
    x = x + np.uint64(0x9E3779B97F4A7C15)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


#: most rows a dataset may have: row numbers are the vectors' ids, and exact top-k packs an
#: id into 32 bits beside its score (0xFFFFFFFF stands for "none")
MAX_ROWS = 2**32 - 1


def _check_rows(dataset: Dataset) -> None:
    if dataset.n > MAX_ROWS:
        raise GpupqError(f"{dataset.source}: {dataset.n:,} vectors; gpupq handles at most {MAX_ROWS:,}")


def hold_out(dataset: Dataset, n_queries: int, seed: int) -> Split:
    """Draw ``n_queries`` rows as queries and remove them from the base."""
    _check_rows(dataset)
    if n_queries < 1:
        raise GpupqError(f"--queries must be at least 1 (got {n_queries})")
    if n_queries >= dataset.n:
        raise GpupqError(
            f"--queries {n_queries} leaves no base: the data has {dataset.n} vectors; "
            f"use at most {max(dataset.n // 10, 1)}"
        )
    rng = np.random.default_rng(seed)
    qids = np.sort(rng.choice(dataset.n, size=n_queries, replace=False)).astype(np.int64)
    return Split(dataset=dataset, query_ids=qids)


def with_query_file(dataset: Dataset, queries: Dataset, n_queries: int | None = None) -> Split:
    """Use the first ``n_queries`` rows of a separate query set (all by default); nothing is
    held out of the base. The queries are read like the base (normalised under cosine)."""
    _check_rows(dataset)
    if queries.d != dataset.d:
        raise GpupqError(f"{queries.source}: queries have d={queries.d} but the data has d={dataset.d}")
    count = queries.n if n_queries is None else n_queries
    if not 1 <= count <= queries.n:
        raise GpupqError(f"--queries {count}: the query file {queries.source} has {queries.n} rows")
    q = Dataset(array=queries.array[:count], source=queries.source, metric=dataset.metric)
    q.validate()
    return Split(
        dataset=dataset,
        query_ids=np.empty(0, dtype=np.int64),
        _queries=q.chunk(0, count),
        query_source=queries.source,
    )
