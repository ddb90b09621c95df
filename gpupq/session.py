"""One run's setup, the same for every command: the run's settings checked, the metric agreed
with the dataset, queries split from the base, stored ground truth read, the thread budget,
and one :class:`~gpupq.engine.Workbench` per backend over that split.

``estimate``, ``sweep`` and ``recommend`` all open a :class:`Session` here (an estimate is a sweep
of one point, timed phase by phase), so a run option is added in one place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .backends import Backend, cupy_status, get_backends
from .cache import StageCache, check_cache_dir
from .cluster import ClusterConfig, ShardedRun
from .engine import Progress, Workbench
from .errors import GpupqError
from .io import Dataset, ShardedArray, Split, hold_out, read_ground_truth, with_query_file
from .metrics import TIE_EPS, GroundTruth
from .params import check
from .threads import ThreadBudget, resolve_threads
from .units import MAX_COUNT

#: seconds of runs each timed sweep or recommend point covers by default: a fast point (a few ms)
#: is repeated and its median taken, where one run says more about the machine's other load than
#: about the point; a slow one runs once (the choice: benchmarks/RESULTS.md, issue 7)
POINT_MIN_TIME = 0.025


@dataclass
class RunConfig:
    """What every command shares: the split, k, timing and threads.

    metric: None takes the dataset's. threads: the most host threads kept busy, None for every
    core this process may use. min_time: seconds of runs each timed point covers (0: one run).
    n_total: the deployment size memory is also billed at, or None.
    """

    k: int = 10
    queries: int = 100
    metric: str | None = None
    seed: int = 0
    batch_size: int = 1024
    threads: int | None = None
    min_time: float = POINT_MIN_TIME
    timing: bool = True
    n_total: int | None = None
    #: ``--cache``: a folder long stages (the ground truth) are kept in and resumed from
    cache: str | None = None
    #: the stages that run in shards (the ground truth, for now) and where: None for one pass here
    cluster: ClusterConfig | None = None

    def check(self) -> None:
        """Each setting by its rule in :data:`gpupq.params.PARAMS`."""
        for name in ("k", "queries", "seed", "batch_size", "min_time", "metric", "threads"):
            value = getattr(self, name)
            if value is not None or name not in ("metric", "threads"):
                check(name, value)
        if self.n_total is not None and not 1 <= self.n_total <= MAX_COUNT:
            raise GpupqError(f"--n-total must be between 1 and {MAX_COUNT:.0e} vectors (got {self.n_total})")
        if self.cluster is not None:
            self.cluster.check()


def agreed_metric(dataset: Dataset, metric: str | None) -> str:
    """The metric to run: the config's, else the dataset's; a dataset opened under ip or cosine
    and a config naming another metric is a contradiction, refused."""
    if metric is None:
        return dataset.metric
    if dataset.metric != "l2" and metric != dataset.metric:
        raise GpupqError(
            f"{dataset.source} was opened with metric {dataset.metric} but the run asks for {metric}; "
            "give one metric (metric=None takes the dataset's)"
        )
    return metric


def check_sizes(n_base: int, k: int, rerank: int = 0, nlist: int = 1, nbits: int = 1) -> None:
    """Settings the base is too small for, one clear error each: k and the re-rank depth (the
    largest asked), nlist and 2^nbits (the largest asked: each needs a training point a centroid)."""
    if k > n_base:
        raise GpupqError(f"-k {k} is larger than the base ({n_base} vectors)")
    if rerank > n_base:
        raise GpupqError(f"--rerank {rerank} is larger than the base ({n_base} vectors)")
    if n_base < nlist:
        raise GpupqError(f"{n_base} training vectors is fewer than --nlist {nlist}; lower --nlist or use more data")
    ksub = 1 << nbits
    if n_base < ksub:
        raise GpupqError(
            f"{n_base} training vectors is fewer than the 2^nbits={ksub} PQ centroids; lower --nbits or use more data"
        )


def check_rerank(rerank: int, k: int) -> None:
    """A re-rank depth must be 0 (off) or hold at least the k neighbours returned."""
    check("rerank", rerank)
    if 0 < rerank < k:
        raise GpupqError(
            f"--rerank {rerank} re-ranks fewer candidates than the {k} neighbours -k returns; "
            f"give --rerank 0 (off) or at least {k}, or a smaller -k"
        )


def tie_warning(truth: GroundTruth, by_id: str = "") -> str | None:
    """The warning when queries have ties at the k-th exact neighbour (duplicates), or None;
    by_id: what the recall would be matched by id, when the caller has it."""
    tied = truth.tied
    count = int(tied.sum()) if tied is not None else 0
    if not count:
        return None
    return (
        f"{count} of {truth.nq} queries have ties at the k-th exact neighbour (duplicate or equidistant vectors): "
        f"recall counts any neighbour within the k-th distance (tolerance {TIE_EPS:g})"
        + (f"; matched by id it would be {by_id}" if by_id else "")
    )


#: rows whose norms are all within this of 1 are taken for unit-length embeddings
UNIT_NORM_TOLERANCE = 1e-2


def metric_hint(dataset: Dataset, split: Split, seed: int) -> str | None:
    """A word when the vectors are unit length but measured under l2: cosine or ip is the usual
    choice for such embeddings (the same ranking, as ‖x − y‖² = 2 − 2⟨x, y⟩), and their index has
    no precomputed L2 table, which the l2 bill includes. Read from up to 1,000 base rows."""
    if dataset.metric != "l2" or split.n_base == 0:
        return None
    rows = dataset.rows(split.sample_base(min(1000, split.n_base), seed + 4))
    norms = np.linalg.norm(rows.astype(np.float64), axis=1)
    if not np.all(np.abs(norms - 1.0) <= UNIT_NORM_TOLERANCE):
        return None
    return (
        "the vectors are unit length, measured here under l2: --metric cosine (or ip) is the usual choice for such "
        "embeddings, ranks the same, and its index has no precomputed L2 table (which the l2 memory bill includes)"
    )


@dataclass
class Session:
    """The split and one workbench per backend, over one dataset; close it when done.

    benches: one :class:`Workbench` per backend, in the order asked (``bench`` is the first);
    stored_gt: (nq, K) int64 base row numbers from the input file, or None (computed);
    skipped: backends ``all`` could not run here, and why.
    """

    dataset: Dataset
    split: Split
    config: RunConfig
    benches: list[Workbench]
    threads: int
    budget: ThreadBudget
    ground_truth_source: str | None = None
    skipped: dict[str, str] = field(default_factory=dict)
    sharded: ShardedRun | None = None  # the executor the sharded stages run on, closed with the session
    _previous: list[Any] = field(default_factory=list, repr=False)
    closed: bool = False

    @property
    def bench(self) -> Workbench:
        self.check_open()
        return self.benches[0]

    @property
    def backend(self) -> Backend:
        return self.bench.be

    @property
    def backends(self) -> list[Backend]:
        return [b.be for b in self.benches]

    def check_open(self) -> None:
        if self.closed:
            raise GpupqError("this session is closed; open a new one with open_session")

    def close(self) -> None:
        """Give each backend back its previous thread budget and stop this one's threads."""
        if self.closed:
            return
        for be, old in zip(self.backends, self._previous, strict=True):
            be.budget = old
        self.budget.close()
        if self.sharded is not None:
            self.sharded.close()
        self.closed = True

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def metric_hint(self) -> str | None:
        """See :func:`metric_hint`."""
        return metric_hint(self.dataset, self.split, self.config.seed)

    def shard_note(self) -> str | None:
        """With per-shard training, what the figures are of (a word in every report)."""
        if self.sharded is None or self.sharded.train_seed is None:
            return None
        s = len(self.sharded.plan)
        return (
            f"--shard-training per-shard: these are {s} indexes, one a shard, each trained on a sample of its own "
            "rows and searched with its own coarse search at the nprobe given, their results merged; deploy one "
            f"index a shard (the memory bill counts {s} sets of quantizers)"
        )

    def ground_truth_said(self) -> str:
        """Where the ground truth came from: stored in the input, the cache, or computed."""
        cached = self.benches[0].ground_truth_cached if self.benches else None
        if self.ground_truth_source:
            return self.ground_truth_source
        return f"cached: {cached}" if cached else "computed (exact search)"

    def describe(self) -> dict[str, Any]:
        """The data the results are about, as every report states it."""
        ds, split = self.dataset, self.split
        return {
            "source": ds.source,
            "n": ds.n,
            "d": ds.d,
            "dtype": ds.dtype,
            "n_base": split.n_base,
            "n_queries": split.n_queries,
            "queries_source": split.query_source or "held out",
            "ground_truth": self.ground_truth_said(),
            "metric": ds.metric,
            **({"shards": ds.array.manifest()} if isinstance(ds.array, ShardedArray) else {}),
            **({"execution": self.sharded.describe()} if self.sharded is not None else {}),
        }


def _dataset(data: Any) -> Dataset:
    """A Dataset as given, or an (n, d) array wrapped in one (the first thing a Python user tries)."""
    if isinstance(data, Dataset):
        return data
    if isinstance(data, np.ndarray) or hasattr(data, "__array__"):
        array = np.asarray(data)
        if array.ndim != 2:
            raise GpupqError(f"the vectors must be a 2-D array (n, d); got shape {array.shape}")
        return Dataset(array=array, source=f"array {array.shape[0]}x{array.shape[1]} {array.dtype}")
    raise GpupqError(f"expected a gpupq Dataset or an (n, d) array, got {type(data).__name__}")


def open_session(
    dataset: Dataset | np.ndarray,
    config: RunConfig,
    backend: str | Backend | Sequence[Backend] = "auto",
    progress: Progress | None = None,
    queries: Dataset | None = None,
    ground_truth: Any = None,
    ground_truth_source: str | None = None,
    several: bool = False,
) -> Session:
    """Split the data and set up a workbench on each backend.

    backend: ``auto``, ``numpy`` or ``cupy`` (one backend), ``all`` (every usable one; only with
    ``several``, as ``estimate`` runs them side by side), a Backend, or a list of them.
    queries: a separate query set (then nothing is held out and the whole dataset is the base).
    ground_truth: (nq, K) integer array-like of the queries' exact neighbours as base row
    numbers (an HDF5 dataset is read only as far as used), used instead of computing them.
    """
    config.check()
    dataset = _dataset(dataset)
    metric = agreed_metric(dataset, config.metric)
    skipped: dict[str, str] = {}
    if isinstance(backend, str):
        if backend.lower() == "all" and not several:
            raise GpupqError("--backend all is for estimate; sweep and recommend run on one: auto, numpy or cupy")
        if backend.lower() == "all" and not cupy_status().usable:
            skipped["cupy"] = cupy_status().reason
        backends = get_backends(backend)
    elif isinstance(backend, Backend):
        backends = [backend]
    else:
        backends = list(backend)
    if not backends:
        raise GpupqError("no backend to run on")
    if not several:
        backends = backends[:1]
    # The metric decides how rows are read (cosine normalises); the caller's object is untouched.
    dataset = Dataset(array=dataset.array, source=dataset.source, metric=metric, origin=dataset.origin)
    if queries is not None:
        split = with_query_file(dataset, queries, config.queries)
    else:
        split = hold_out(dataset, config.queries, config.seed)
    if config.n_total is not None and config.n_total < split.n_base:
        raise GpupqError(
            f"--n-total {config.n_total:,} is smaller than the {split.n_base:,} vectors measured; give the size you "
            "will deploy (at least the base measured here)"
        )
    gt = None
    if ground_truth is not None:
        if queries is None:
            raise GpupqError("stored ground truth needs the queries it was computed for")
        where = ground_truth_source or "the stored ground truth"
        gt = read_ground_truth(ground_truth, split.n_queries, config.k, split.n_base, where)
    threads = resolve_threads(config.threads)
    # The thread budget: the backends' coarse-grained work (k-means blocks, groups of queries)
    # runs on `threads` pool threads, and every BLAS call is single-threaded, so no more than
    # `threads` threads are ever busy: as fast alone as numpy's own BLAS threads, and beside busy
    # processes the slowdown follows the share of the cores left (benchmarks/bench_load.py).
    budget = ThreadBudget(threads)
    previous = [be.budget for be in backends]
    for be in backends:
        be.budget = budget
        be.allow_ids(dataset.n - 1)  # ids are row numbers
    common = {"seed": config.seed, "batch_size": config.batch_size, "min_time": config.min_time}
    if config.cluster is not None and len(backends) > 1:
        raise GpupqError("work in shards runs on one backend at a time; give --backend numpy or --backend cupy")
    gt_cache = StageCache(check_cache_dir(config.cache, [])) if config.cache is not None else None
    # the shards: the ground truth (unless the input stores it), every build's lists and searches,
    # computed on the session's backend (a GPU worker's under CuPy)
    sharded = (
        config.cluster.start(dataset, threads, config.seed, backends[0].name) if config.cluster is not None else None
    )
    gt_fn = sharded.ground_truth if sharded is not None and gt is None else None
    lists_fn = sharded.lists if sharded is not None else None
    benches = [
        Workbench(
            be, dataset, split, progress=progress, stored_gt=gt, ground_truth_fn=gt_fn, shard_lists=lists_fn,
            gt_cache=gt_cache, overhead=sharded.overhead if sharded is not None else None,
            train_in_shards=len(sharded.plan) if sharded is not None and sharded.train_seed is not None else 0,
            shard_plan=sharded.plan.ranges.tolist() if sharded is not None else None,
            **common,
        )
        for be in backends
    ]  # fmt: skip
    return Session(
        dataset=dataset,
        split=split,
        config=config,
        benches=benches,
        threads=threads,
        budget=budget,
        ground_truth_source=ground_truth_source if gt is not None else None,
        skipped=skipped,
        sharded=sharded,
        _previous=previous,
    )
