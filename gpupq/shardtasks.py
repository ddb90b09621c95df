"""The tasks a shard runs, wherever it runs (this process, a Dask worker, a GPU worker), and how
a task opens its data (:class:`Source`): the exact ground truth of its rows (:func:`_gt_task`),
its inverted lists (:func:`_lists_task`: encoded with the quantizers sent to it, or with its own
under per-shard training; kept in and read from ``--cache``), and its part of a search
(:func:`_scan_task`, :func:`_own_scan_task`). :mod:`gpupq.cluster` hands them out and merges
what they return. Every task computes single-threaded on its backend, so its products have the
same shapes, and its results the same bits, on any worker."""

from __future__ import annotations

import copy
import functools
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import GpupqError
from .io import Dataset, ShardedArray, Split, is_collection, load_collection, load_vectors
from .io.dataset import Origin
from .placement import MAPPED_FORMATS

if TYPE_CHECKING:
    from .ivf import IVFPQIndex


@dataclass(frozen=True)
class Source:
    """How a worker opens the data: the files (:class:`~gpupq.io.dataset.Origin`), the metric
    they are read under (cosine normalises rows), and each file's path, rows and modification
    time as read here, so a worker opens only the files its rows are in (no header of every
    file per task) and a file rewritten since is a new source. Hashable: each process opens a
    source once and keeps it."""

    origin: Origin
    metric: str
    files: tuple[tuple[str, int, int], ...]  # (path, rows, mtime_ns) in order
    d: int
    dtype: str

    @classmethod
    def of(cls, dataset: Dataset) -> Source | Dataset:
        """The source of a dataset opened from files; else the dataset itself (sent whole)."""
        if dataset.origin is None:
            return dataset
        arr = dataset.array
        pairs = (
            zip(arr.paths, arr.rows.tolist(), strict=True)
            if isinstance(arr, ShardedArray)
            else [(dataset.origin.path, dataset.n)]
        )
        files = tuple((p, int(r), os.stat(p).st_mtime_ns) for p, r in pairs)
        return cls(dataset.origin, dataset.metric, files, dataset.d, dataset.dtype)

    def open(self) -> Dataset:
        return _open_source(self)


@functools.lru_cache(maxsize=4)
def _open_source(source: Source) -> Dataset:
    o = source.origin
    if not is_collection(o.path):
        return load_vectors(o.path, o.fmt, o.name, source.metric, o.column, inflate_limit=o.inflate_limit)
    paths = [f[0] for f in source.files]
    rows = [f[1] for f in source.files]
    return load_collection(
        o.path, o.fmt, o.name, source.metric, o.column, inflate_limit=o.inflate_limit,
        known=(paths, rows, source.d, source.dtype),
    )  # fmt: skip


def _dataset(data: Source | Dataset) -> Dataset:
    return data.open() if isinstance(data, Source) else data


def _task_backend(name: str) -> Any:
    """The backend a task computes on: the session's kind (``numpy``, or ``cupy`` on a GPU
    worker), with its default budget (one thread on a CPU): the same products, and so the same
    bits, wherever the task runs."""
    from .backends import CupyBackend, NumpyBackend

    return CupyBackend() if name == "cupy" else NumpyBackend()


def _on_host(template: IVFPQIndex) -> IVFPQIndex:
    """``template`` as sent to the tasks: its parameters and quantizers on the numpy backend (a
    device array, or a backend holding its array module, does not travel)."""
    from .backends import NumpyBackend
    from .ivf import IVFPQIndex

    if template.be.name == "numpy":
        return template
    t = template
    out = IVFPQIndex(NumpyBackend(), t.d, t.nlist, t.pq.m, t.pq.nbits, t.metric, t.opq is not None)
    out.warnings = list(t.warnings)
    return out.restore(t.state(lists=False)) if t.coarse is not None else out


def _gt_task(
    rows: tuple[int, int],
    data: Source | Dataset,
    queries: np.ndarray,
    query_ids: np.ndarray,
    k: int,
    metric: str,
    backend: str = "numpy",
) -> tuple[np.ndarray, np.ndarray]:
    """One shard's exact top-k on raw scores: (nq, k) float32, (nq, k) int64 (ids global), on
    the host. Held-out rows (query_ids, sorted) are skipped. Single-threaded wherever it runs
    (on a CPU), so its products have the same shapes, and its scores the same bits, here and on
    any worker."""
    from .knn import exact_knn

    be = _task_backend(backend)
    be.allow_ids(rows[1] - 1)
    chunks = Split(_dataset(data), query_ids).iter_base(mark_queries=True, rows=rows)
    d, i = exact_knn(be, be.asarray(queries), chunks, k, metric, raw=True)
    return be.to_numpy(d), be.to_numpy(i)


def _lists_task(
    rows: tuple[int, int],
    data: Source | Dataset,
    template: IVFPQIndex,
    query_ids: np.ndarray,
    train_seed: int | None = None,
    kept: tuple[str, str] | None = None,
    backend: str = "numpy",
) -> Any:
    """One shard's inverted lists: its rows (less the held-out ones) encoded with the trained
    quantizers of ``template`` into an index of their own, single-threaded (see _gt_task);
    the seconds it took kept with it (``add_s``, and ``train_s``). train_seed: train the shard's
    own quantizers first, on a sample of its rows (``template`` untrained: only its parameters
    are read), the shard's generator seeded by (train_seed, its first row). kept: (--cache
    folder, key): the shard's lists (and own quantizers) read from there, or kept there.
    backend: what the shard computes on and holds its lists in (``template`` is on the host)."""
    t0 = time.perf_counter()
    ds = _dataset(data)
    if kept is not None and (hit := _kept_shard(kept, rows, template, train_seed is not None, backend)) is not None:
        return hit
    index = _shard_index(template, backend, trained=train_seed is None)
    if train_seed is not None:
        _train_shard(index, ds, rows, query_ids, train_seed, rows[0])
    index.train_s = time.perf_counter() - t0
    index.be.allow_ids(rows[1] - 1)
    index.reset()
    ids = x = None
    for ids, x in Split(ds, query_ids).iter_base(rows=rows):  # held-out rows dropped
        index.add(index.be.asarray(x), index.be.asarray(ids))
    del ids, x  # the last chunk: not held through the build (gpupq.placement counts it so)
    index.build()
    index.add_s = time.perf_counter() - t0 - index.train_s
    index.kept = False
    if kept is not None:
        from .cache import StageCache

        state = index.state(lists=True) if train_seed is not None else _lists_only(index.state())
        about = {"stage": "shard lists", "rows": list(rows), "own quantizers": train_seed is not None}
        StageCache(Path(kept[0])).save_arrays("lists", f"{kept[1]}-{rows[0]}-{rows[1]}", state, about)
    return index


def _lists_only(state: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: state[k] for k in ("codes", "ids", "list_sizes")}


def _shard_index(template: IVFPQIndex, backend: str, trained: bool = True) -> IVFPQIndex:
    """An empty index of ``template``'s parameters on the task's backend, with its quantizers
    (trained: shared on the host, copied to a device) or none (per-shard training)."""
    from .ivf import IVFPQIndex

    t, be = template, _task_backend(backend)
    if trained and be.name == "numpy":
        index = copy.copy(template)  # the quantizers shared, not copied
        index.be, index.warnings = be, list(template.warnings)
        index.reset()
        return index
    index = IVFPQIndex(be, t.d, t.nlist, t.pq.m, t.pq.nbits, t.metric, t.opq is not None)
    if trained:
        index.restore(template.state(lists=False))
        index.warnings = list(template.warnings)
    return index


def _kept_shard(kept: tuple[str, str], rows: tuple[int, int], template: IVFPQIndex, own: bool, backend: str) -> Any:
    """A shard's index read from --cache (its lists, and its own quantizers when it trains
    them; else ``template``'s, shared), or None when not kept (or unreadable: encoded again)."""
    from .cache import StageCache

    names = ("codes", "ids", "list_sizes") + (("coarse", "codebooks") if own else ())
    state = StageCache(Path(kept[0])).load_arrays("lists", f"{kept[1]}-{rows[0]}-{rows[1]}", names)
    if state is None:
        return None
    index = _shard_index(template, backend, trained=not own)
    if not own:
        state = {**template.state(lists=False), **_lists_only(state)}
    index.be.allow_ids(rows[1] - 1)
    try:
        index.restore(state)
    except (ValueError, KeyError):
        return None
    index.train_s = index.add_s = 0.0
    index.kept = True
    return index


def _train_shard(
    index: IVFPQIndex, ds: Dataset, rows: tuple[int, int], query_ids: np.ndarray, seed: int, shard: int
) -> None:
    """Train ``index``'s quantizers on this shard's rows (held-out ones excluded), as gpupq trains
    one index: FAISS's sample caps for the shard's size (:func:`gpupq.settings.train_sizes`),
    nested samples (the coarse one a prefix of the PQ's or the other way round), drawn by a
    generator of (seed, shard) so each shard's sample is its own and every run's the same."""
    from .settings import Build, train_sizes

    a, b = rows
    held = query_ids[np.searchsorted(query_ids, a) : np.searchsorted(query_ids, b)]
    candidates = np.setdiff1d(np.arange(a, b, dtype=np.int64), held, assume_unique=True)
    if candidates.size < index.nlist:
        raise GpupqError(
            f"--shard-training per-shard: {candidates.size:,} rows to train {index.nlist:,} lists on; "
            "use a larger --shard-rows or fewer lists"
        )
    build = Build(index.nlist, index.pq.m, index.pq.nbits, index.opq is not None)
    n_coarse, n_pq, n_opq = train_sizes(int(candidates.size), build)
    pick = candidates[np.random.default_rng([seed, shard]).permutation(candidates.size)[: max(n_coarse, n_pq, n_opq)]]
    x = index.be.asarray(ds.rows(pick))  # (need, d) float32, in the sample's order, on the task's backend
    index.train(x[:n_coarse], x[:n_pq], np.random.default_rng(seed + 2), x[:n_opq] if n_opq else None)


def _mapped_row_bytes(data: Source | Dataset) -> int:
    """Bytes of a row in the input file when it is read through a memory map, else 0."""
    from .io.inputs import detect_format

    origin = data.origin
    if origin is None:
        return 0
    first = data.files[0][0] if isinstance(data, Source) else getattr(data.array, "paths", [origin.path])[0]
    if detect_format(first, origin.fmt) not in MAPPED_FORMATS:
        return 0
    return data.d * np.dtype(data.dtype).itemsize


def _held_out(query_ids: np.ndarray, a: int, b: int) -> int:
    """How many of the sorted ``query_ids`` lie in rows [a, b)."""
    return int(np.searchsorted(query_ids, b) - np.searchsorted(query_ids, a))


def _list_sizes(index: Any) -> tuple[np.ndarray, float, float, bool]:
    """A shard's list sizes (nlist,) int64, and the seconds its lists took to encode and its
    quantizers to train (0 when they were trained elsewhere), and whether they were read from
    --cache instead."""
    sizes = np.zeros(index.nlist, dtype=np.int64) if index.list_sizes is None else index.list_sizes
    return sizes, index.add_s, index.train_s, index.kept


def _scan_task(
    index: Any, q: np.ndarray, coarse_score: np.ndarray, probes: np.ndarray, k: int
) -> tuple[np.ndarray, np.ndarray]:
    """A shard's best k of each (query, probed list): (nq, nprobe, k) scores and ids, host."""
    if index.ntotal == 0:  # a shard of held-out rows only
        nq, nprobe = probes.shape
        return np.full((nq, nprobe, k), np.inf, dtype=np.float32), np.full((nq, nprobe, k), -1, dtype=np.int64)
    be = index.be
    d, i = index.scan_probed(be.asarray(q), be.asarray(coarse_score), probes, k)
    return be.to_numpy(d), be.to_numpy(i)


def _own_scan_task(index: Any, q: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A shard with its own quantizers: its own coarse search, then its scan. Returns its
    candidates (nq, nprobe, k) and the vectors each probe rank scanned (nq, nprobe) int64."""
    qq, coarse_score, probes = index.probe(index.be.asarray(q), nprobe)
    d, i = _scan_task(index, qq, coarse_score, probes, k)
    return d, i, _list_sizes(index)[0][probes]  # type: ignore[index]
