"""Splitting a dataset into queries and base: queries held out of it (:func:`hold_out`) or read
from a separate file (:func:`with_query_file`), and uniform nested samples of the base."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import GpupqError
from .dataset import Dataset, chunk_rows


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
        self,
        chunk: int | None = None,
        mark_queries: bool = False,
        rows: tuple[int, int] | None = None,
        read: Callable[[int, int], Any] | None = None,
    ) -> Iterator[tuple[np.ndarray, Any]]:
        """Yield (ids (b,) int64, x (b, d) float32) over the base, in row order, chunked.

        mark_queries: leave held-out rows in place with id -1 instead of copying the chunk
        without them (for a consumer that skips id -1, as the exact k-NN does).
        rows: only the dataset rows [first, end) (a shard), chunked from ``first``.
        read: where rows [start, stop) are read, default the dataset (a copy of it held on a
        GPU: :class:`gpupq.resident.ResidentBase`); ids stay host arrays either way.
        """
        chunk = chunk or chunk_rows(self.dataset.d)
        qids = self.query_ids
        first, end = rows if rows is not None else (0, self.dataset.n)
        for start in range(first, end, chunk):
            stop = min(end, start + chunk)
            x = self.dataset.chunk(start, stop) if read is None else read(start, stop)
            lo, hi = np.searchsorted(qids, [start, stop])
            ids = np.arange(start, stop, dtype=np.int64)
            if hi > lo:
                if mark_queries:
                    ids[qids[lo:hi] - start] = -1
                else:
                    keep = np.ones(stop - start, dtype=bool)
                    keep[qids[lo:hi] - start] = False
                    # row numbers, not the mask: a mask on device rows costs CuPy a read-back
                    rows_kept = np.flatnonzero(keep)
                    ids, x = ids[rows_kept], x[rows_kept]
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


#: most rows a dataset may have: row numbers are the vectors' ids (int64). A selection packs an
#: id into 32 bits beside its score, so from 2^32 - 1 rows on it ranks the ids first
#: (Backend.wide_ids); this bound is only a sanity check, far beyond any disk
MAX_ROWS = 2**48


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
