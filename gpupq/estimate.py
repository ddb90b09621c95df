"""One estimate: split, ground truth, train, add, search, measure — per backend.

``estimate(dataset, config)`` returns a plain :class:`EstimateResult` that the CLI renders and
a notebook can inspect; nothing here prints.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from . import __version__
from .backends import Backend
from .cluster import MODEL_NOTE, ClusterConfig, ShardedIndex
from .deploy import deploy_spec
from .engine import Workbench
from .errors import GpupqError
from .io import Dataset
from .ivf import IVFPQIndex
from .memory import Deployment, MemoryBill, deployment
from .metrics import RECALL_DEFINITION, GroundTruth, Recall
from .params import check
from .pq import check_pq_params
from .session import Progress, RunConfig, check_rerank, check_sizes, open_session, tie_warning
from .settings import STORE_TRAIN, Build, Setting, train_sizes
from .threads import blas_description, blas_threads
from .timing import MIN_TIMED_S, Latency, Runs, repeat
from .verify import FaissCheck, faiss_check, import_faiss, outside_interval


@dataclass
class EstimateConfig:
    """Index and evaluation settings. Defaults are ``pqtool.py``'s; nprobe 8 (FAISS's default
    is 1, which rarely gives useful recall).

    metric: None takes the dataset's (``load_vectors(path, metric="cosine")`` then estimates
    cosine). threads: the most host threads kept busy, None for every core this process may use.
    min_time: seconds of runs each timed phase covers (None: :data:`MIN_TIMED_S`; 0: one run).
    """

    m: int = 16
    nlist: int = 128
    nprobe: int = 8
    nbits: int = 8
    k: int = 10
    rerank: int = 100
    rerank_store: str = "fp32"
    opq: bool = False
    queries: int = 100
    metric: str | None = None
    seed: int = 0
    batch_size: int = 1024
    threads: int | None = None
    min_time: float | None = None

    def check(self) -> None:
        """Each setting by its rule in :data:`gpupq.params.PARAMS`, and how they relate."""
        self.run_config().check()
        for name in ("nlist", "m", "nbits", "nprobe", "rerank_store"):
            check(name, getattr(self, name))
        if self.nprobe > self.nlist:
            raise GpupqError(f"--nprobe {self.nprobe} must be between 1 and --nlist {self.nlist}")
        check_rerank(self.rerank, self.k)

    def run_config(self, n_total: int | None = None) -> RunConfig:
        """The settings every command shares, from this estimate's."""
        return RunConfig(
            k=self.k, queries=self.queries, metric=self.metric, seed=self.seed, batch_size=self.batch_size,
            threads=self.threads, min_time=_min_time(self), n_total=n_total,
        )  # fmt: skip

    @property
    def build(self) -> Build:
        return Build(self.nlist, self.m, self.nbits, self.opq)

    @property
    def setting(self) -> Setting:
        """How the index is searched; the store only when it re-ranks."""
        return Setting(self.nprobe, self.rerank, self.rerank_store if self.rerank else "")


@dataclass
class Timings:
    """Seconds per phase on one backend: the median of repeated runs (see :data:`MIN_TIMED_S`),
    and the rates they give; ``runs`` has each phase's run count, fastest and slowest run."""

    ground_truth_s: float | None  # None when the input file stored the ground truth
    train_s: float
    add_s: float
    search_s: float
    search_rerank_s: float | None
    add_vectors_per_s: float
    search_queries_per_s: float
    search_rerank_queries_per_s: float | None
    batch_size: int
    runs: dict[str, Runs] = field(default_factory=dict)
    #: one query at a time, as deployed (re-ranked when the estimate re-ranks): gpupq's own search
    latency: Latency | None = None
    #: work in shards: the phases as deployed with one machine per shard (:func:`_modelled`)
    modelled: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("runs", "latency", "modelled")}
        out["runs"] = {phase: r.to_dict() for phase, r in self.runs.items()}
        out["latency"] = self.latency.to_dict() if self.latency is not None else None
        if self.modelled is not None:
            out["modelled"] = self.modelled
        return out


def _modelled(runs: dict[str, Runs], latency: Latency | None, nq: int, nb: int) -> dict[str, Any]:
    """The sharded phases' modelled medians (one machine per shard: each call its slowest shard
    plus the work here) and the rates they give; the wall-clock ones stay in Timings."""

    def rate(phase: str, n: int) -> float | None:
        t = runs[phase].modelled_median if phase in runs else None
        return None if t is None else (n / t if t > 0 else float("inf"))

    out: dict[str, Any] = {"note": MODEL_NOTE}
    for phase in ("ground_truth", "add", "search", "search_rerank"):
        if phase in runs and runs[phase].modelled is not None:
            out[f"{phase}_s"] = runs[phase].modelled_median
    out["add_vectors_per_s"] = rate("add", nb)
    out["search_queries_per_s"] = rate("search", nq)
    out["search_rerank_queries_per_s"] = rate("search_rerank", nq)
    out["latency"] = latency.modelled.to_dict() if latency is not None and latency.modelled is not None else None
    return out


@dataclass
class BackendResult:
    backend: str
    device: str
    library_version: str
    recall: Recall
    recall_rerank: Recall | None
    memory: MemoryBill
    lists_probed_fraction: float
    vectors_scanned_fraction: float
    vectors_scanned_per_query: float
    timings: Timings
    train_points_coarse: int
    train_points_pq: int
    train_points_opq: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "device": self.device,
            "library_version": self.library_version,
            "recall": self.recall.to_dict(),
            "recall_rerank": self.recall_rerank.to_dict() if self.recall_rerank else None,
            "memory": self.memory.to_dict(),
            "scanned": {
                "lists_probed_fraction": self.lists_probed_fraction,
                "vectors_scanned_fraction": self.vectors_scanned_fraction,
                "vectors_scanned_per_query": self.vectors_scanned_per_query,
            },
            "timings": self.timings.to_dict(),
            "train_points": {
                "coarse": self.train_points_coarse,
                "pq": self.train_points_pq,
                "opq": self.train_points_opq,
            },
        }


@dataclass
class EstimateResult:
    source: str
    n: int
    d: int
    dtype: str
    n_base: int
    n_queries: int
    queries_source: str | None  # a query file, or None for queries held out of the data
    ground_truth_source: str | None  # where stored neighbours came from, or None: computed here
    config: EstimateConfig
    results: list[BackendResult]
    deploy: dict[str, Any] = field(default_factory=dict)
    faiss: FaissCheck | None = None
    warnings: list[str] = field(default_factory=list)
    recall_definition: str = RECALL_DEFINITION
    #: queries whose k-th true neighbour is tied with the (k+1)-th (duplicates), or None when the
    #: stored ground truth holds only k neighbours and cannot tell
    tied_queries: int | None = None
    threads: int = 1  # host threads the estimate kept busy at most
    blas: str = ""  # numpy's BLAS library
    #: backends ``--backend all`` could not run here, and why
    skipped: dict[str, str] = field(default_factory=dict)
    #: the bill at --n-total (gpupq.scale.Deployment), or None
    deployment: Any = None
    #: recall on nested subsamples (gpupq.scalecurve.ScaleCurve), or None
    scale_curve: Any = None
    #: the data the results are about, as every report states it (Session.describe)
    dataset: dict[str, Any] = field(default_factory=dict)

    def _verify_dict(self) -> dict[str, Any] | None:
        """The faiss-cpu check beside the first backend's figures, or None without one."""
        check = self.faiss
        if check is None:
            return None
        ours = self.results[0]
        out = check.to_dict()
        out["compared_with"] = ours.backend
        out["recall_outside_interval"] = outside_interval(ours.recall, check.recall)
        out["recall_rerank_outside_interval"] = (
            outside_interval(ours.recall_rerank, check.recall_rerank)
            if ours.recall_rerank and check.recall_rerank
            else None
        )
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "gpupq_version": __version__,
            "dataset": dict(self.dataset),
            "params": asdict(self.config),
            "recall_definition": self.recall_definition,
            "tied_queries": self.tied_queries,
            "threads": self.threads,
            "blas": self.blas,
            "skipped_backends": dict(self.skipped),
            "results": [r.to_dict() for r in self.results],
            "deploy": self.deploy,
            "verify": self._verify_dict(),
            "warnings": list(self.warnings),
            "deployment": self.deployment.to_dict() if self.deployment is not None else None,
            "scale_curve": self.scale_curve.to_dict() if self.scale_curve is not None else None,
        }


def estimate(
    dataset: Dataset,
    config: EstimateConfig | None = None,
    backends: str | Sequence[Backend] = "auto",
    progress: Progress | None = None,
    queries: Dataset | None = None,
    verify: str | None = None,
    ground_truth: Any = None,
    ground_truth_source: str | None = None,
    n_total: int | None = None,
    scale_curve: bool = False,
    cluster: ClusterConfig | None = None,
    cache: str | None = None,
) -> EstimateResult:
    """Build IVF-PQ over ``dataset`` on each backend and measure recall, memory and speed.

    Queries are ``config.queries`` rows held out of the dataset, or, given ``queries``, the first
    ``config.queries`` rows of that separate set (then the whole dataset is the base).
    ``verify="faiss"`` also builds the same index with faiss-cpu and measures it side by side.
    ``ground_truth`` (nq, K) integer array-like (an HDF5 dataset is read only as far as used):
    the queries' exact neighbours as base row numbers (as an ann-benchmarks file stores them),
    used instead of computing them. ``n_total``: also bill the index at that many vectors
    (:mod:`gpupq.scale`); ``scale_curve``: also measure recall on nested subsamples of the base
    and extend the trend to ``n_total`` (:mod:`gpupq.scalecurve`). ``cluster``: where the
    ground truth runs in shards (:class:`gpupq.cluster.ClusterConfig`), None for one pass here;
    ``cache``: a folder the ground truth is kept in and read from (:mod:`gpupq.cache`).
    """
    if verify not in (None, "faiss"):
        raise GpupqError(f"--verify {verify!r}: only faiss is supported")
    if verify == "faiss":
        import_faiss()  # fail before the long part, not after it
    config = config or EstimateConfig()
    config.check()
    if cluster is not None and cluster.per_shard:
        _check_per_shard(verify, n_total, scale_curve)
    run = replace(config.run_config(n_total), cluster=cluster, cache=cache)
    session = open_session(
        dataset, run, backends, progress, queries, ground_truth, ground_truth_source, several=True,
    )  # fmt: skip
    try:
        return _estimate(session, config, progress, verify, n_total, scale_curve)
    finally:
        session.close()


def _check_per_shard(verify: str | None, n_total: int | None, scale_curve: bool) -> None:
    """What per-shard training cannot be combined with, yet: each is of one global index."""
    what = (
        "--verify faiss (FAISS builds one global index)" if verify else
        "--n-total (the bill at N of per-shard indexes depends on the shards at N)" if n_total else
        "--scale-curve (its subsamples are not sharded)" if scale_curve else None
    )  # fmt: skip
    if what is not None:
        raise GpupqError(f"--shard-training per-shard does not combine with {what} yet")


def _estimate(
    session: Any, config: EstimateConfig, progress: Progress | None, verify: str | None, n_total: int | None,
    scale_curve: bool,
) -> EstimateResult:  # fmt: skip
    dataset, split = session.dataset, session.split
    config = replace(config, metric=dataset.metric)
    check_pq_params(dataset.d, config.m, config.nbits)
    check_sizes(split.n_base, config.k, config.rerank, config.nlist, config.nbits)
    dataset.validate()  # the first read of the data: every setting was checked against its shape

    build, setting = config.build, config.setting
    sizes = train_sizes(split.n_base, build)  # FAISS's sample caps
    # One random sample serves every training; each takes a prefix, itself a uniform sample.
    # The nested sample a sweep trains on too (Workbench.sample): the same points, so an
    # estimate and the matching point of a sweep give the same index.
    first = session.benches[0]
    train_x = first.sample(max(*sizes, min(split.n_base, STORE_TRAIN)))
    store = first.store(config.rerank_store)
    with blas_threads(1):
        runs = []
        for bench in session.benches:
            bench.use_sample(train_x, store)  # drawn once for every backend (and FAISS): the same rows
            runs.append(_run_backend(bench, sizes, config))
        curve = None
        if scale_curve:  # on the first backend, with the same split and queries
            from .scalecurve import scale_curve as measure_curve

            curve = measure_curve(
                dataset, split, build, setting, config.k, first.be, config.seed, None, n_total,
                config.batch_size, progress,
            )  # fmt: skip
    truth = runs[0].truth
    check = None
    if verify == "faiss":  # FAISS as it runs by default, on the session's threads (OpenMP)
        if progress is not None:
            progress("[faiss-cpu] verify", 0, 1)
        # FAISS trains on exactly the points our index trains on (not the store's longer prefix)
        check = faiss_check(
            dataset, split, train_x[: max(sizes)], truth, build, setting, config.k, config.batch_size,
            session.threads, _min_time(config),
        )  # fmt: skip
        if progress is not None:
            progress("[faiss-cpu] verify", 1, 1)
    warnings = list(dict.fromkeys(w for r in runs for w in r.warnings))
    tied = truth.tied
    first_result = runs[0].result
    by_id = f"{first_result.recall.by_id:.3f} raw" + (
        f", {first_result.recall_rerank.by_id:.3f} re-ranked" if first_result.recall_rerank is not None else ""
    )
    warning = tie_warning(truth, by_id)
    if warning:
        warnings.append(warning)
    for hint in (session.metric_hint(), session.shard_note()):
        if hint:
            warnings.append(hint)
    desc = session.describe()
    return EstimateResult(
        source=desc["source"],
        n=desc["n"],
        d=desc["d"],
        dtype=desc["dtype"],
        n_base=split.n_base,
        n_queries=split.n_queries,
        queries_source=split.query_source,
        ground_truth_source=session.ground_truth_source,
        config=config,
        results=[r.result for r in runs],
        deploy=deploy_spec(build, setting, config.metric, config.k, split.n_base),
        faiss=check,
        warnings=warnings,
        tied_queries=int(tied.sum()) if tied is not None else None,
        threads=session.threads,
        blas=blas_description(),
        skipped=dict(session.skipped),
        deployment=_deployment(config, split.n_base, dataset.d, n_total) if n_total else None,
        scale_curve=curve,
        dataset=desc,
    )


def _deployment(config: EstimateConfig, n_base: int, d: int, n_total: int) -> Deployment:
    """The estimate's configuration billed at n_total vectors (:func:`gpupq.memory.deployment`)."""
    index_metric = "l2" if config.metric == "l2" else "ip"
    return deployment(config.build, config.nprobe, config.setting.store, n_base, n_total, d, index_metric)


def _min_time(config: EstimateConfig) -> float:
    """Seconds of runs each timed phase covers (read at run time: tests set it to 0)."""
    return MIN_TIMED_S if config.min_time is None else config.min_time


@dataclass
class _BackendRun:
    result: BackendResult
    warnings: list[str]
    truth: GroundTruth


def _run_backend(bench: Workbench, sizes: tuple[int, int, int], config: EstimateConfig) -> _BackendRun:
    """One backend's estimate, through the engine's stages (an estimate is a sweep of one point):
    the same ground truth, training sequence, fill and search runs, each phase timed by the
    timing rule (repeated runs, median) instead of once."""
    be, split = bench.be, bench.split
    nb = split.n_base
    min_time = _min_time(config)
    build, setting = config.build, config.setting
    runs: dict[str, Runs] = {}

    # Ground truth: one pass over the base, unless the input file stores it; k + 1 neighbours,
    # the (k+1)-th tells whether the k-th is tied.
    bench.base_on_device()  # on a GPU, the dataset copied once, here, outside the timed phases
    truth = bench.truth(config.k)
    if bench.ground_truth_runs is not None:
        runs["ground_truth"] = bench.ground_truth_runs

    # Train from the same host sample and the same seed on every backend (and in every run).
    def train() -> IVFPQIndex:
        bench.report("train", 0, 1)
        index = bench.train_index(build)
        bench.report("train", 1, 1)
        return index

    out, phase_runs = repeat({"train": train}, min_time, be.synchronize)
    runs.update(phase_runs)
    index = out["train"]

    filled: list[Any] = []

    def add_all() -> None:
        if filled and isinstance(filled[-1], ShardedIndex):
            filled.pop().release()  # the previous run's shards
        filled.append(bench.fill(index))  # every run adds the whole base to empty lists

    runs.update(repeat({"add": add_all}, min_time, be.synchronize, bench.overhead)[1])
    if bench.train_in_shards:  # trained in each shard's task, before its adding: its own clock
        shard_s = filled[-1].train_shard_s
        runs["train"] = Runs([float(shard_s.max())], [float(shard_s.max())])
        sizes = train_sizes(max(s.rows for s in filled[-1].needs), build)  # the largest shard's
    bench.adopt(build, filled[-1], runs["train"].median, runs["add"].median)
    index = filled[-1]  # the lists searched: this index, or the shards'

    # One untimed call on a few queries first: the timings are of a warm index, as deployed.
    index.search(bench.queries[: min(split.n_queries, 8)], config.k, config.nprobe)
    bench.report("search", 0, 1)
    fns = {"search": bench.search_fn(build, Setting(config.nprobe), config.k)}
    if config.rerank:
        fns["search_rerank"] = bench.search_fn(build, setting, config.k)
    out, phase_runs = repeat(fns, min_time, be.synchronize, bench.overhead)  # interleaved: drift hits both alike
    runs.update(phase_runs)
    latency = bench.latency(build, setting, config.k)
    bench.report("search", 1, 1)
    found, scanned = out["search"]
    recall = truth.recall(be.to_numpy(found))
    recall_rr = truth.recall(be.to_numpy(out["search_rerank"][0])) if config.rerank else None

    nq = split.n_queries
    med = {phase: r.median for phase, r in runs.items()}
    t_add, t_search, t_rr = med["add"], med["search"], med.get("search_rerank")
    timings = Timings(
        ground_truth_s=med.get("ground_truth"),
        train_s=med["train"],
        add_s=t_add,
        search_s=t_search,
        search_rerank_s=t_rr,
        add_vectors_per_s=nb / t_add if t_add > 0 else float("inf"),
        search_queries_per_s=nq / t_search if t_search > 0 else float("inf"),
        search_rerank_queries_per_s=(nq / t_rr if t_rr else None),
        batch_size=min(config.batch_size, nq),
        runs=runs,
        latency=latency,
        modelled=_modelled(runs, latency, nq, nb) if bench.overhead is not None else None,
    )
    point = bench.point(build, setting, recall_rr or recall, recall, float(scanned.mean()), nb)
    n_coarse, n_pq, n_opq = sizes
    result = BackendResult(
        backend=be.name,
        device=be.device_description(),
        library_version=be.library_version(),
        recall=recall,
        recall_rerank=recall_rr,
        memory=point.memory,
        lists_probed_fraction=config.nprobe / config.nlist,
        vectors_scanned_fraction=point.scanned_fraction,
        vectors_scanned_per_query=point.scanned_per_query,
        timings=timings,
        train_points_coarse=n_coarse,
        train_points_pq=n_pq,
        train_points_opq=n_opq,
    )
    return _BackendRun(result=result, warnings=list(dict.fromkeys(index.warnings)), truth=truth)
