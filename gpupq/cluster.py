"""Work over a collection in shards, in this process or on Dask workers, with one result.

A :class:`ShardPlan` cuts the base into row ranges (a file each by default; ``shard_rows``
splits large files and groups small ones). An executor (:mod:`gpupq.executors`) runs one task
per range and the caller reduces the results: :class:`InProcess` runs them here;
:class:`DaskExecutor` on a ``dask.distributed`` cluster (``pip install 'gpupq[distributed]'``;
Dask is imported only when one is asked for). Both run the same task on the same ranges, so their results are equal
bit for bit; against one pass over a single file, products differ in shape, and so can round
differently in the last bit (BLAS), while no neighbour changes on data without ties.

Tasks are handed how to open the data (:class:`Source`: a path and the reader's options), not
its values: each worker opens the files itself and reads only its range. Queries and the
held-out ids are sent once per call (scattered to the workers once, by Dask, and shared by every
task). The stages: the exact ground truth, each shard's top-k on raw scores (‖x‖² − 2⟨q, x⟩,
or −⟨q, x⟩), merged by (score, id) and turned into distances only after the merge
(:func:`sharded_ground_truth`); each build's lists, encoded in shards where the memory planner
(:mod:`gpupq.placement`) puts them and held there; and their searches (:class:`ShardedIndex`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import GpupqError
from .executors import DaskExecutor, InProcess
from .io import Dataset, ShardedArray
from .placement import Placement, ShardMemory, place, quantizer_bytes, shard_memory
from .shardtasks import (
    Source,
    _gt_task,
    _held_out,
    _list_sizes,
    _lists_task,
    _mapped_row_bytes,
    _on_host,
    _own_scan_task,
    _scan_task,
)

if TYPE_CHECKING:
    from .ivf import IVFPQIndex


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


def sharded_ground_truth(
    executor: InProcess | DaskExecutor,
    data: Source | Dataset,
    plan: ShardPlan,
    queries: np.ndarray,
    query_ids: np.ndarray,
    k: int,
    metric: str,
    progress: Callable[[int], None] | None = None,
    backend: str = "numpy",
) -> tuple[np.ndarray, np.ndarray]:
    """Exact neighbours of ``queries`` (nq, d) float32 over the base (the dataset less the
    held-out rows ``query_ids``), shard by shard: each shard's top-k by raw score, merged by
    (score, id), then turned into FAISS's scores. metric: ``l2`` or ``ip`` (cosine is ip on the
    unit rows the dataset gives). Returns (scores (nq, k) float32, ids (nq, k) int64), -1 past
    the base. progress(rows): called with a shard's rows as each shard finishes."""
    from .backends import NumpyBackend
    from .knn import finish_scores

    query_ids = np.sort(np.asarray(query_ids, dtype=np.int64))
    shared = [executor.share(v) for v in (data, queries, query_ids)]
    ranges = list(plan)
    done = None if progress is None else (lambda i: progress(ranges[i][1] - ranges[i][0]))
    parts = executor.map(_gt_task, ranges, *shared, k, metric, backend, done=done, stage="ground truth")
    be = NumpyBackend()
    raw = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    be.allow_ids(int(ids.max(initial=-1)))
    best_d, best_i = be.topk_exact(raw, min(k, raw.shape[1]), ids)  # (score, id) order
    best_i = np.where(np.isfinite(best_d), best_i, -1)
    return finish_scores(be, queries, best_d, metric), best_i


class ShardedIndex:
    """An IVF-PQ index whose inverted lists are held in shards, each where it was encoded (a
    Dask worker, or here), and searched as one: the coarse search is made once here and handed
    to every shard, each shard returns its best k of every (query, probed list), and those are
    merged by (score, id) into the one index's: :meth:`scan` gives what
    :meth:`gpupq.ivf.IVFPQIndex.scan` gives, so every nprobe is still read from one scan
    (:meth:`merge`, :meth:`merge_prefixes`).

    With per-shard training (``own``), each shard trained its own quantizers on its own rows and
    makes its own coarse search: its best k of each probe *rank* are merged with the other
    shards' of the same rank, so a prefix of p ranks is every shard searched at nprobe p, merged.

    template: the trained quantizers (an IVFPQIndex on the numpy backend, its lists empty); per
    shard, its parameters only.
    """

    def __init__(
        self,
        executor: InProcess | DaskExecutor,
        template: IVFPQIndex,
        handles: list[Any],
        t0: float | None = None,
        own: bool = False,
    ) -> None:
        """t0: when the shards' encoding started (perf_counter), to record the adding's times.
        own: each shard trained its own quantizers (and makes its own coarse search)."""
        self.executor = executor
        self.template = template
        self.handles = handles
        self.own = own
        self._lent: list[Any] = []
        self.placement: Placement | None = None  # where the planner put the shards (build sets it)
        self.needs: list[ShardMemory] = []
        parts = executor.on(_list_sizes, handles)
        # (nlist,): the lists' sizes; with shards' own quantizers, list j of each shard summed
        self.list_sizes = np.sum([p[0] for p in parts], axis=0).astype(np.int64)
        #: each shard's seconds to train its quantizers (0: trained elsewhere) and encode its rows
        self.train_shard_s = np.array([p[2] for p in parts], dtype=np.float64)
        self.add_shard_s = np.array([p[1] for p in parts], dtype=np.float64)
        self.kept_shards = sum(bool(p[3]) for p in parts)  # read from --cache, not encoded
        if t0 is not None:
            if own:
                executor.clock.record("training", 0.0, self.train_shard_s)
            executor.clock.record("adding", time.perf_counter() - t0, self.add_shard_s)

    @classmethod
    def build(
        cls,
        executor: InProcess | DaskExecutor,
        data: Source | Dataset,
        plan: ShardPlan,
        template: IVFPQIndex,
        query_ids: np.ndarray,
        train_seed: int | None = None,
        kept: tuple[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ShardedIndex:
        """Encode each shard's rows (the dataset less ``query_ids``) where its task runs.
        train_seed: each shard trains its own quantizers first (``--shard-training per-shard``;
        ``template`` untrained, its parameters only), from a generator of (seed, first row).
        kept: (--cache folder, the build's key): each task reads its shard's lists from there
        when they were kept, else keeps them there once encoded. progress(rows): called with a
        shard's rows as each shard's lists are made. The shards compute on, and hold their lists
        in, ``template``'s kind of backend (a GPU worker's memory under CuPy)."""
        t0 = time.perf_counter()
        query_ids = np.sort(np.asarray(query_ids, dtype=np.int64))
        own = train_seed is not None
        backend = template.be.name
        # the memory planner: every shard placed, or a refusal with the numbers, before any work
        row_bytes = _mapped_row_bytes(data)
        needs = [shard_memory(b - a - _held_out(query_ids, a, b), template, row_bytes, own) for a, b in plan]
        what = f"IVF{template.nlist},PQ{template.pq.m}x{template.pq.nbits}" + (",OPQ" if template.opq else "")
        placement = place(needs, executor.workers(backend), 0 if own else quantizer_bytes(template), what)
        shared = [executor.share(v) for v in (data, query_ids)]  # the run's: the same for every build
        quantizers = executor.lend(_on_host(template))  # this build's: dropped with its lists
        ranges = list(plan)
        done = None if progress is None else (lambda i: progress(ranges[i][1] - ranges[i][0]))
        handles = executor.place(
            _lists_task,
            ranges,
            shared[0],
            quantizers,
            shared[1],
            train_seed,
            kept,
            backend,
            where=placement.where,
            done=done,
        )
        executor.hold(placement, needs)
        out = cls(executor, template, handles, t0, own)
        out._lent = [quantizers]  # kept while the lists live: a lost shard is encoded again from it
        out.placement, out.needs = placement, needs
        return out

    @property
    def ntotal(self) -> int:
        return int(self.list_sizes.sum())

    def scan(self, q: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`gpupq.ivf.IVFPQIndex.scan`: (nq, nprobe, k) scores and ids, and the probes
        (with the shards' own quantizers: the vectors scanned at each probe rank, summed over the
        shards, (nq, nprobe) int64, which :meth:`probed_sizes` gives back as they are)."""
        t0 = time.perf_counter()
        be = self.template.be
        if self.own:  # each shard its own coarse search: the queries alone are sent
            lent = [self.executor.lend(np.ascontiguousarray(be.to_numpy(q), dtype=np.float32))]
            args: tuple[Any, ...] = (k, min(nprobe, self.template.nlist))
            task: Callable[..., Any] = _own_scan_task
        else:
            qq, coarse_score, probes = self.template.probe(q, nprobe)
            t0 = time.perf_counter()
            lent = [self.executor.lend(v) for v in (be.to_numpy(qq), be.to_numpy(coarse_score), probes)]
            args, task = (k,), _scan_task
        # sending the queries to the shards is transport too: outside the modelled time
        self.executor.clock.overhead_s += time.perf_counter() - t0
        parts = self.executor.on(task, self.handles, *lent, *args, stage="search")
        del lent  # each search's own: dropped here, not kept for the run's length
        if self.own:
            probes = np.sum([s for _, _, s in parts], axis=0).astype(np.int64)
        nq, p = probes.shape
        cand_d = np.concatenate([part[0] for part in parts], axis=2).reshape(nq * p, -1)
        cand_i = np.concatenate([part[1] for part in parts], axis=2).reshape(nq * p, -1)
        be.allow_ids(int(cand_i.max(initial=-1)))
        # each slot: its best k by (score, id), on the session's backend as an unsharded scan's
        best_d, best_i = be.topk_exact(be.asarray(cand_d), k, be.asarray(cand_i), sort=False)
        best_i = be.xp.where(be.xp.isfinite(best_d), best_i, -1)
        kk = best_d.shape[1]
        return best_d.reshape(nq, p, kk), best_i.reshape(nq, p, kk), probes

    def search(self, q: np.ndarray, k: int, nprobe: int) -> tuple[np.ndarray, np.ndarray, Any]:
        """As :meth:`gpupq.ivf.IVFPQIndex.search`: (scores (nq, k) float32, ids (nq, k) int64,
        stats), the shards' candidates merged."""
        from .ivf import SearchStats

        out_d, out_i, probes = self.scan(q, k, nprobe)
        dist, found = self.template.merge(out_d, out_i, k)
        return dist, found, SearchStats(scanned=self.probed_sizes(probes).sum(axis=1))

    def probed_sizes(self, probes: np.ndarray) -> np.ndarray:
        """Vectors scanned at each probe rank (nq, nprobe) int64, from :meth:`scan`'s probes."""
        return probes if self.own else self.list_sizes[probes]

    def __getattr__(self, name: str) -> Any:
        # what was trained (coarse, pq, opq, nlist, metric, warnings, …) is the template's
        if name in (
            "template", "executor", "handles", "list_sizes", "_lent", "placement", "needs", "own",
            "train_shard_s", "add_shard_s", "kept_shards",
        ):  # fmt: skip
            raise AttributeError(name)
        return getattr(self.template, name)

    def merge(self, out_d: np.ndarray, out_i: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.template.merge(out_d, out_i, k)

    def merge_prefixes(self, out_d: np.ndarray, out_i: np.ndarray, ps: Sequence[int], k: int) -> list[np.ndarray]:
        return self.template.merge_prefixes(out_d, out_i, ps, k)

    def release(self) -> None:
        self.executor.release(self.handles)
        if self.placement is not None and self.handles:
            self.executor.hold(self.placement, self.needs, -1)
        self.handles = []
        self._lent = []


#: how the shards' quantizers are trained (ClusterConfig.training)
SHARD_TRAINING = ("global", "per-shard")
#: what the memory plan's figures are
MEMORY_NOTE = (
    "predicted by gpupq.placement: each worker's lists (codes, ids, L2 terms, offsets) and quantizers, "
    "plus its largest encoding transient, on top of what it held before (its process, other builds)"
)
#: what the modelled timings are (JSON and the table say it)
MODEL_NOTE = (
    "modelled: one machine per shard, each call as long as its slowest shard plus the work here "
    "(coarse search, merges, re-rank)"
)


@dataclass(frozen=True)
class ClusterConfig:
    """Where sharded work runs: ``workers`` local Dask workers (processes), the Dask scheduler
    at ``scheduler``, or (neither) this process; ``shard_rows`` as :func:`plan_shards` takes it.
    training: ``global`` (one set of quantizers, trained here: FAISS IndexShardsIVF, autofaiss)
    or ``per-shard`` (each shard trains its own on its rows and makes its own coarse search: a
    vector database's per-segment indexes, cuVS's sharded multi-GPU mode)."""

    workers: int | None = None
    scheduler: str | None = None
    shard_rows: int | None = None
    training: str = "global"
    gpu_workers: int | None = None  # a dask-cuda LocalCUDACluster: one worker a GPU

    def check(self) -> None:
        given = [o for o, v in (("--workers", self.workers), ("--gpu-workers", self.gpu_workers),
                                ("--scheduler", self.scheduler)) if v is not None]  # fmt: skip
        if len(given) > 1:
            raise GpupqError(f"give one of {' or '.join(given)} (a cluster started here, or one running), not both")
        for option, count in (("--workers", self.workers), ("--gpu-workers", self.gpu_workers)):
            if count is not None and count < 1:
                raise GpupqError(f"{option} must be at least 1, got {count}")
        if self.shard_rows is not None and self.shard_rows < 1:
            raise GpupqError(f"--shard-rows must be at least 1, got {self.shard_rows}")
        if self.training not in SHARD_TRAINING:
            raise GpupqError(f"--shard-training must be one of {', '.join(SHARD_TRAINING)}, got {self.training!r}")

    @property
    def per_shard(self) -> bool:
        return self.training == "per-shard"

    def start(self, dataset: Dataset, threads: int, seed: int = 0, backend: str = "numpy") -> ShardedRun:
        """The executor and shard plan for ``dataset`` (opened under the run's metric); seed:
        the run's, from which per-shard training seeds each shard's; backend: the session's,
        which the tasks compute on (``cupy``: each worker's GPU)."""
        self.check()
        if self.gpu_workers is not None and backend != "cupy":
            raise GpupqError("--gpu-workers runs the CuPy backend on each GPU; add --backend cupy")
        plan = plan_shards(dataset, self.shard_rows)
        opts = {"train_seed": seed if self.per_shard else None, "backend": backend}
        if self.workers is None and self.scheduler is None and self.gpu_workers is None:
            # here the tasks read the dataset already open; workers open it from its source
            return ShardedRun(InProcess(threads), plan, dataset, **opts)
        workers = self.gpu_workers if self.gpu_workers is not None else self.workers
        executor = DaskExecutor(workers, self.scheduler, cuda=self.gpu_workers is not None)
        return ShardedRun(executor, plan, Source.of(dataset), **opts)


@dataclass
class ShardedRun:
    """An executor with the plan and the data's source, for the stages that run in shards."""

    executor: InProcess | DaskExecutor
    plan: ShardPlan
    data: Source | Dataset
    #: per-shard training: each shard's quantizers trained in its task, from this seed
    train_seed: int | None = None
    #: what the tasks compute on: ``numpy``, or ``cupy`` (a GPU worker's, the session's backend)
    backend: str = "numpy"
    #: the memory planner's placement of the build with the highest predicted peak so far
    memory_plan: dict[str, Any] | None = None

    def ground_truth(
        self,
        queries: np.ndarray,
        query_ids: np.ndarray,
        k: int,
        metric: str,
        progress: Callable[[int], None] | None = None,
    ) -> np.ndarray:
        """Ids (nq, k) int64 of the queries' exact neighbours (see :func:`sharded_ground_truth`)."""
        return sharded_ground_truth(
            self.executor, self.data, self.plan, queries, query_ids, k, metric, progress, self.backend
        )[1]

    def lists(
        self,
        template: IVFPQIndex,
        query_ids: np.ndarray,
        kept: tuple[str, str] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> ShardedIndex:
        """The shards' inverted lists, encoded with the quantizers ``template`` trained (or,
        with per-shard training, each with the quantizers it trains itself); kept: (--cache
        folder, the build's key) where each shard's task reads its lists, or keeps them;
        progress(rows) as each shard's are made."""
        out = ShardedIndex.build(
            self.executor, self.data, self.plan, template, query_ids, self.train_seed, kept, progress
        )
        if out.placement is not None:
            peak = max(w.peak for w in out.placement.workers)
            if self.memory_plan is None or peak > self.memory_plan["predicted_peak_bytes"]:
                self.memory_plan = {
                    "build": out.placement.what,
                    "predicted_peak_bytes": peak,
                    "workers": out.placement.describe(),
                    "model": MEMORY_NOTE,
                }
        return out

    def describe(self) -> dict[str, Any]:
        ex = self.executor
        stages = ["ground truth", *(["training"] if self.train_seed is not None else []), "adding", "search"]
        out: dict[str, Any] = {"executor": ex.name, "shards": len(self.plan), "stages": stages}
        out["training"] = "per-shard" if self.train_seed is not None else "global"
        if isinstance(ex, DaskExecutor):
            out["workers"] = len(ex.client.scheduler_info().get("workers", {}))
            out["scheduler"] = ex.client.scheduler.address
            out["dashboard"] = ex.client.dashboard_link
        out["shard_seconds"] = ex.clock.describe()
        if self.memory_plan is not None:
            out["memory_plan"] = self.memory_plan
        out["timing_note"] = MODEL_NOTE + (
            "; the wall-clock figures include Dask's round trips to the shards (tens of ms a call)"
            if isinstance(ex, DaskExecutor)
            else "; the wall-clock figures ran the shards one after another in this process"
        )
        return out

    def overhead(self) -> float:
        """The executor's seconds beyond each call's slowest shard, a running total (ShardClock)."""
        return self.executor.clock.overhead()

    def close(self) -> None:
        self.executor.close()
