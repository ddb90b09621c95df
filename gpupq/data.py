"""Loading, validating and splitting vectors.

A :class:`Dataset` wraps an (n, d) array that may be a read-only memory map of any numeric
dtype; every read goes through :meth:`Dataset.rows` or :meth:`Dataset.iter_base`, which
convert to float32 (and L2-normalise under ``cosine``) one chunk at a time, so memory stays
bounded whatever n is. Input files are opened read-only and never modified.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np

from .errors import GpupqError

METRICS = ("l2", "ip", "cosine")

#: rows read per chunk on the host (about 64 MiB of float32 at d=128)
DEFAULT_CHUNK_BYTES = 64 << 20


def chunk_rows(d: int, budget_bytes: int | None = None) -> int:
    """Rows of d float32 values per chunk of a pass over the base."""
    budget = DEFAULT_CHUNK_BYTES if budget_bytes is None else budget_bytes
    return max(256, budget // (4 * max(d, 1)))


@dataclass
class Dataset:
    """Vectors to estimate on.

    array: (n, d) numeric, possibly a read-only ``np.memmap``; never written.
    metric: ``l2``, ``ip`` or ``cosine`` (rows are normalised as they are read).
    """

    array: np.ndarray
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
        x = np.ascontiguousarray(block, dtype=np.float32)
        if self.metric == "cosine":
            norms = np.linalg.norm(x, axis=1, keepdims=True)
            x = x / norms  # zero rows were rejected by validate()
        return x

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
        """Reject NaN/Inf rows, and zero rows under cosine, scanning in chunks."""
        chunk = chunk or chunk_rows(self.d)
        bad_rows = 0
        zero_rows = 0
        first_bad = -1
        floating = np.issubdtype(self.array.dtype, np.floating)
        for start in range(0, self.n, chunk):
            block = np.asarray(self.array[start : start + chunk])
            if floating:
                finite = np.isfinite(block).all(axis=1)
                nbad = int(len(finite) - np.count_nonzero(finite))
                if nbad and first_bad < 0:
                    first_bad = start + int(np.argmin(finite))
                bad_rows += nbad
            if self.metric == "cosine":
                zero_rows += int(np.count_nonzero(~block.any(axis=1)))
        if bad_rows:
            raise GpupqError(
                f"{self.source}: {bad_rows} of {self.n} rows contain NaN or Inf "
                f"(first at row {first_bad}); clean or drop them first"
            )
        if zero_rows:
            raise GpupqError(
                f"{self.source}: {zero_rows} rows are all zeros and have no direction under "
                "--metric cosine; drop them or use --metric l2"
            )


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

    def iter_base(self, chunk: int | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Yield (ids (b,) int64, x (b, d) float32) over the base, in row order, chunked."""
        chunk = chunk or chunk_rows(self.dataset.d)
        qids = self.query_ids
        for start in range(0, self.dataset.n, chunk):
            stop = min(self.dataset.n, start + chunk)
            x = self.dataset.chunk(start, stop)
            lo, hi = np.searchsorted(qids, [start, stop])
            ids = np.arange(start, stop, dtype=np.int64)
            if hi > lo:
                keep = np.ones(stop - start, dtype=bool)
                keep[qids[lo:hi] - start] = False
                ids, x = ids[keep], x[keep]
            if len(ids):
                yield ids, x

    def sample_base(self, size: int, rng: np.random.Generator) -> np.ndarray:
        """(min(size, n_base),) int64 base row numbers, a uniform sample without replacement,
        in random order (so any prefix is itself a uniform sample)."""
        size = min(size, self.n_base)
        # Draw positions among base rows, then map positions to row numbers without building
        # the full id list: row = pos + number of query rows at or before it.
        pos = rng.choice(self.n_base, size=size, replace=False)
        qids = self.query_ids
        shifted = qids - np.arange(len(qids))  # base positions at which each query row sits
        return (pos + np.searchsorted(shifted, pos, side="right")).astype(np.int64)


def hold_out(dataset: Dataset, n_queries: int, seed: int) -> Split:
    """Draw ``n_queries`` rows as queries and remove them from the base."""
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
