"""Work over a collection in shards, in this process or on Dask workers, with one result.

A :class:`ShardPlan` cuts the base into row ranges (a file each by default; ``shard_rows``
splits large files and groups small ones). An executor runs one task per range and the caller
reduces the results: :class:`InProcess` runs them here, one after another; :class:`DaskExecutor`
on a ``dask.distributed`` cluster (``pip install 'gpupq[distributed]'``; Dask is imported only
when one is asked for). Both run the same task on the same ranges, so their results are equal
bit for bit; against one pass over a single file, products differ in shape, and so can round
differently in the last bit (BLAS), while no neighbour changes on data without ties.

Tasks are handed how to open the data (:class:`Source`: a path and the reader's options), not
its values: each worker opens the files itself and reads only its range. Queries and the
held-out ids are sent once per call (scattered to the workers once, by Dask, and shared by every
task). The first stage here is the exact ground truth: each shard's top-k on raw scores
(‖x‖² − 2⟨q, x⟩, or −⟨q, x⟩), merged by (score, id), and turned into distances only after the
merge (:func:`sharded_ground_truth`).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .errors import GpupqError
from .io import Dataset, ShardedArray, load_vectors
from .io.dataset import chunk_rows


@dataclass(frozen=True)
class Source:
    """How a worker opens the data: what :func:`gpupq.io.load_vectors` takes (a file, a
    directory or a pattern). Hashable: each process opens a source once and keeps it."""

    path: str
    fmt: str | None = None
    name: str | None = None
    column: str | None = None
    metric: str = "l2"
    inflate_limit: int | None = None

    def open(self) -> Dataset:
        return _open_source(self)


@functools.lru_cache(maxsize=4)
def _open_source(source: Source) -> Dataset:
    return load_vectors(
        source.path, source.fmt, source.name, source.metric, source.column, inflate_limit=source.inflate_limit
    )


def _dataset(data: Source | Dataset) -> Dataset:
    return data.open() if isinstance(data, Source) else data


@dataclass(frozen=True)
class ShardPlan:
    """Row ranges [start, stop) covering the dataset in order: ranges (s, 2) int64."""

    ranges: np.ndarray

    def __len__(self) -> int:
        return int(self.ranges.shape[0])

    def __iter__(self) -> Any:
        return iter((int(a), int(b)) for a, b in self.ranges)


def plan_shards(dataset: Dataset, shard_rows: int | None = None) -> ShardPlan:
    """One range a file (a single file: one range); with ``shard_rows``, a file longer than
    that is split into ranges of at most ``shard_rows`` rows, and consecutive files shorter than
    that are grouped while the group stays within it."""
    if shard_rows is not None and shard_rows < 1:
        raise GpupqError(f"--shard-rows must be at least 1, got {shard_rows}")
    arr = dataset.array
    files = arr.rows.tolist() if isinstance(arr, ShardedArray) else [dataset.n]
    ranges: list[tuple[int, int]] = []
    start = 0
    group: tuple[int, int] | None = None  # small files gathered so far
    for rows in files:
        stop = start + rows
        if shard_rows is None:
            ranges.append((start, stop))
        elif rows > shard_rows:
            if group is not None:
                ranges.append(group)
                group = None
            ranges += [(a, min(a + shard_rows, stop)) for a in range(start, stop, shard_rows)]
        elif group is not None and stop - group[0] <= shard_rows:
            group = (group[0], stop)
        else:
            if group is not None:
                ranges.append(group)
            group = (start, stop)
        start = stop
    if group is not None:
        ranges.append(group)
    return ShardPlan(np.asarray([r for r in ranges if r[1] > r[0]], dtype=np.int64).reshape(-1, 2))


class InProcess:
    """Tasks run here, in order (the default: nothing to start, nothing imported)."""

    name = "in-process"

    def share(self, value: Any) -> Any:
        return value

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *args: Any) -> list[Any]:
        return [fn(item, *args) for item in items]

    def close(self) -> None:
        pass


class DaskExecutor:
    """Tasks on a ``dask.distributed`` cluster: a LocalCluster of ``workers`` (processes, or
    threads with ``processes=False``), or the scheduler at ``address``. Values shared by every
    task are scattered once (broadcast) and their futures held until the executor closes."""

    name = "dask"

    def __init__(
        self,
        workers: int | None = None,
        address: str | None = None,
        processes: bool = True,
        threads_per_worker: int = 1,
    ) -> None:
        try:
            from dask.distributed import Client, LocalCluster
        except ImportError:
            raise GpupqError("Dask is not installed; pip install 'gpupq[distributed]'") from None
        self._cluster = None
        if address is not None:
            self.client = Client(address)
        else:
            self._cluster = LocalCluster(
                n_workers=workers or 1,
                threads_per_worker=threads_per_worker,
                processes=processes,
                dashboard_address=":0",  # a free port: never the default 8787 another cluster holds
            )
            self.client = Client(self._cluster)
        self._held: list[Any] = []

    def share(self, value: Any) -> Any:
        future = self.client.scatter(value, broadcast=True)
        self._held.append(future)
        return future

    def map(self, fn: Callable[..., Any], items: Sequence[Any], *args: Any) -> list[Any]:
        # pure=False: a task is not skipped for one of the same key computed earlier
        futures = [self.client.submit(fn, item, *args, pure=False) for item in items]
        return self.client.gather(futures)

    def close(self) -> None:
        self._held.clear()
        self.client.close()
        if self._cluster is not None:
            self._cluster.close()

    def __enter__(self) -> DaskExecutor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _gt_task(
    rows: tuple[int, int],
    data: Source | Dataset,
    queries: np.ndarray,
    query_ids: np.ndarray,
    k: int,
    metric: str,
    threads: int,
) -> tuple[np.ndarray, np.ndarray]:
    """One shard's exact top-k on raw scores: (nq, k) float32, (nq, k) int64 (ids global).
    Held-out rows (query_ids, sorted) are skipped."""
    from .backends import NumpyBackend
    from .knn import exact_knn
    from .threads import ThreadBudget

    ds = _dataset(data)
    be = NumpyBackend()
    be.budget = ThreadBudget(threads)
    start, stop = rows
    step = chunk_rows(ds.d)

    def chunks() -> Any:
        for a in range(start, stop, step):
            b = min(stop, a + step)
            ids = np.arange(a, b, dtype=np.int64)
            lo, hi = np.searchsorted(query_ids, [a, b])
            ids[query_ids[lo:hi] - a] = -1
            yield ids, ds.chunk(a, b)

    return exact_knn(be, queries, chunks(), k, metric, raw=True)


def sharded_ground_truth(
    executor: InProcess | DaskExecutor,
    data: Source | Dataset,
    plan: ShardPlan,
    queries: np.ndarray,
    query_ids: np.ndarray,
    k: int,
    metric: str,
    threads: int = 1,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbours of ``queries`` (nq, d) float32 over the base (the dataset less the
    held-out rows ``query_ids``), shard by shard: each shard's top-k by raw score, merged by
    (score, id), then turned into FAISS's scores. metric: ``l2`` or ``ip`` (cosine is ip on the
    unit rows the dataset gives). Returns (scores (nq, k) float32, ids (nq, k) int64), -1 past
    the base."""
    from .backends import NumpyBackend
    from .knn import finish_scores

    query_ids = np.sort(np.asarray(query_ids, dtype=np.int64))
    shared = [executor.share(v) for v in (data, queries, query_ids)]
    parts = executor.map(_gt_task, list(plan), *shared, k, metric, threads)
    be = NumpyBackend()
    raw = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    best_d, best_i = be.topk_exact(raw, min(k, raw.shape[1]), ids)  # (score, id) order
    best_i = np.where(np.isfinite(best_d), best_i, -1)
    return finish_scores(be, queries, best_d, metric), best_i


def default_workers() -> int:
    """Workers for ``--workers`` left at 0: the cores this process may use."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
