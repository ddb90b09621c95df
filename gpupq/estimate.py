"""One estimate: split, ground truth, train, add, search, measure — per backend.

``estimate(dataset, config)`` returns a plain :class:`EstimateResult` that the CLI renders and
a notebook can inspect; nothing here prints.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .backends import Backend, get_backends
from .data import Dataset, Split, hold_out, with_query_file
from .errors import GpupqError
from .ivf import IVFPQIndex
from .kmeans import MAX_POINTS_PER_CENTROID
from .knn import exact_knn
from .metrics import RECALL_DEFINITION, MemoryBill, Recall, memory_bill, recall_at_k
from .opq import OPQ_MAX_TRAIN
from .pq import check_pq_params
from .refine import STORES, RerankStore, rerank
from .verify import FaissCheck, deploy_spec, faiss_check, import_faiss, outside_interval

#: progress(phase, done, total): called as long phases advance.
Progress = Callable[[str, int, int], None]


@dataclass
class EstimateConfig:
    """Index and evaluation settings. Defaults are ``pqtool.py``'s; nprobe 8 (FAISS's default
    is 1, which rarely gives useful recall)."""

    m: int = 16
    nlist: int = 128
    nprobe: int = 8
    nbits: int = 8
    k: int = 10
    rerank: int = 100
    rerank_store: str = "fp32"
    opq: bool = False
    queries: int = 100
    metric: str = "l2"
    seed: int = 0
    batch_size: int = 1024

    def check(self) -> None:
        if self.metric not in ("l2", "ip", "cosine"):
            raise GpupqError(f"--metric {self.metric!r} is not one of l2, ip, cosine")
        if self.nlist < 1:
            raise GpupqError(f"--nlist must be at least 1 (got {self.nlist})")
        if not 1 <= self.nprobe <= self.nlist:
            raise GpupqError(f"--nprobe {self.nprobe} must be between 1 and --nlist {self.nlist}")
        if self.k < 1:
            raise GpupqError(f"-k must be at least 1 (got {self.k})")
        if self.rerank < 0 or 0 < self.rerank < self.k:
            raise GpupqError(f"--rerank {self.rerank} must be 0 (off) or at least k={self.k}")
        if self.rerank_store not in STORES:
            raise GpupqError(f"--rerank-store {self.rerank_store!r} is not one of {', '.join(STORES)}")
        if self.batch_size < 1:
            raise GpupqError(f"--batch-size must be at least 1 (got {self.batch_size})")


@dataclass
class Timings:
    """Wall-clock seconds per phase on one backend (device synchronised before each clock read)."""

    ground_truth_s: float | None  # None when the input file stored the ground truth
    train_s: float
    add_s: float
    search_s: float
    search_rerank_s: float | None
    add_vectors_per_s: float
    search_queries_per_s: float
    search_rerank_queries_per_s: float | None
    batch_size: int


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
            "timings": asdict(self.timings),
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
            "dataset": {
                "source": self.source,
                "n": self.n,
                "d": self.d,
                "dtype": self.dtype,
                "n_base": self.n_base,
                "n_queries": self.n_queries,
                "queries_source": self.queries_source or "held out",
                "ground_truth": self.ground_truth_source or "computed (exact search)",
                "metric": self.config.metric,
            },
            "params": asdict(self.config),
            "recall_definition": self.recall_definition,
            "results": [r.to_dict() for r in self.results],
            "deploy": self.deploy,
            "verify": self._verify_dict(),
            "warnings": list(self.warnings),
        }


def check_sizes(config: EstimateConfig, n_base: int) -> None:
    """Settings the base is too small for: one clear error each."""
    ksub = 1 << config.nbits
    if config.k > n_base:
        raise GpupqError(f"-k {config.k} is larger than the base ({n_base} vectors)")
    if config.rerank > n_base:
        raise GpupqError(f"--rerank {config.rerank} is larger than the base ({n_base} vectors)")
    if n_base < config.nlist:
        raise GpupqError(
            f"{n_base} training vectors is fewer than --nlist {config.nlist}; lower --nlist or use more data"
        )
    if n_base < ksub:
        raise GpupqError(
            f"{n_base} training vectors is fewer than the 2^nbits={ksub} PQ centroids; lower --nbits or use more data"
        )


def estimate(
    dataset: Dataset,
    config: EstimateConfig | None = None,
    backends: str | Sequence[Backend] = "auto",
    progress: Progress | None = None,
    queries: Dataset | None = None,
    verify: str | None = None,
    ground_truth: np.ndarray | None = None,
    ground_truth_source: str | None = None,
) -> EstimateResult:
    """Build IVF-PQ over ``dataset`` on each backend and measure recall, memory and speed.

    Queries are ``config.queries`` rows held out of the dataset, or, given ``queries``, the first
    ``config.queries`` rows of that separate set (then the whole dataset is the base).
    ``verify="faiss"`` also builds the same index with faiss-cpu and measures it side by side.
    ``ground_truth`` (nq, K) int64: the queries' exact neighbours as base row numbers (as an
    ann-benchmarks file stores them), used instead of computing them.
    """
    if verify not in (None, "faiss"):
        raise GpupqError(f"--verify {verify!r}: only faiss is supported")
    if verify == "faiss":
        import_faiss()  # fail before the long part, not after it
    config = config or EstimateConfig()
    config.check()
    check_pq_params(dataset.d, config.m, config.nbits)
    if isinstance(backends, str):
        backends = get_backends(backends)
    # The metric decides how rows are read (cosine normalises); the caller's object is untouched.
    dataset = Dataset(array=dataset.array, source=dataset.source, metric=config.metric)
    if queries is not None:
        split = with_query_file(dataset, queries, config.queries)
    else:
        split = hold_out(dataset, config.queries, config.seed)
    check_sizes(config, split.n_base)
    dataset.validate()
    gt = None
    if ground_truth is not None:
        if queries is None:
            raise GpupqError("stored ground truth needs the queries it was computed for")
        gt = np.asarray(ground_truth, dtype=np.int64)[: split.n_queries]
        if gt.shape[1] < config.k:
            raise GpupqError(f"-k {config.k} is more than the {gt.shape[1]} neighbours stored per query")
        gt = gt[:, : config.k]

    ksub = 1 << config.nbits
    n_coarse = min(split.n_base, MAX_POINTS_PER_CENTROID * config.nlist)
    n_pq = min(split.n_base, MAX_POINTS_PER_CENTROID * ksub)
    n_opq = min(split.n_base, OPQ_MAX_TRAIN) if config.opq else 0
    # One random sample serves every training; each takes a prefix, itself a uniform sample.
    sample_ids = split.sample_base(max(n_coarse, n_pq, n_opq), np.random.default_rng(config.seed + 1))
    train_x = dataset.rows(sample_ids)
    store = RerankStore(config.rerank_store).fit(train_x)

    sizes = (n_coarse, n_pq, n_opq)
    results = [_run_backend(be, dataset, split, train_x, sizes, store, config, progress, gt) for be in backends]
    warnings = list(dict.fromkeys(w for r in results for w in r[1]))
    check = None
    if verify == "faiss":
        if progress is not None:
            progress("[faiss-cpu] verify", 0, 1)
        check = faiss_check(dataset, split, train_x, results[0][2], config)
        if progress is not None:
            progress("[faiss-cpu] verify", 1, 1)
    return EstimateResult(
        source=dataset.source,
        n=dataset.n,
        d=dataset.d,
        dtype=dataset.dtype,
        n_base=split.n_base,
        n_queries=split.n_queries,
        queries_source=split.query_source,
        ground_truth_source=ground_truth_source if gt is not None else None,
        config=config,
        results=[r[0] for r in results],
        deploy=deploy_spec(config, split.n_base),
        faiss=check,
        warnings=warnings,
    )


def _timed(be: Backend, fn: Callable[[], Any]) -> tuple[Any, float]:
    be.synchronize()
    t0 = time.perf_counter()
    out = fn()
    be.synchronize()
    return out, time.perf_counter() - t0


def _run_backend(
    be: Backend,
    dataset: Dataset,
    split: Split,
    train_x: np.ndarray,
    sizes: tuple[int, int, int],
    store: RerankStore,
    config: EstimateConfig,
    progress: Progress | None,
    stored_gt: np.ndarray | None,
) -> tuple[BackendResult, list[str], np.ndarray]:
    xp = be.xp
    index_metric = "l2" if config.metric == "l2" else "ip"
    nb = split.n_base
    tag = f"[{be.name}] "

    def report(phase: str, total: int) -> Callable[[int], None]:
        done = [0]

        def step(n: int) -> None:
            done[0] += n
            if progress is not None:
                progress(tag + phase, done[0], total)

        step(0)
        return step

    queries = be.asarray(split.queries)
    nq = queries.shape[0]

    # Ground truth: one pass over the base, unless the input file stores it.
    t_gt: float | None = None
    if stored_gt is not None:
        gt_ids = stored_gt
    else:
        gt_step = report("ground truth", nb)
        (_, gt_found), t_gt = _timed(
            be, lambda: exact_knn(be, queries, split.iter_base(), config.k, index_metric, gt_step)
        )
        gt_ids = be.to_numpy(gt_found)

    # Train from the same host sample and the same seed on every backend.
    index = IVFPQIndex(be, dataset.d, config.nlist, config.m, config.nbits, index_metric, opq=config.opq)
    rng = np.random.default_rng(config.seed + 2)
    train_step = report("train", 1)
    n_coarse, n_pq, n_opq = sizes

    def train() -> None:
        x_opq = be.asarray(train_x[:n_opq]) if n_opq else None
        index.train(be.asarray(train_x[:n_coarse]), be.asarray(train_x[:n_pq]), rng, x_opq)

    _, t_train = _timed(be, train)
    train_step(1)

    add_step = report("add", nb)

    def add_all() -> None:
        for ids, x in split.iter_base():
            index.add(be.asarray(x), be.asarray(ids))
            add_step(len(ids))
        index.build()

    _, t_add = _timed(be, add_all)

    def fetch(ids: np.ndarray) -> Any:
        """The stored vectors of ids, at the re-rank store's precision."""
        return be.asarray(store.round_trip(dataset.rows(ids)))

    def search_all(want: int, with_rerank: bool) -> tuple[Any, Any]:
        found, scanned = [], []
        for s in range(0, nq, config.batch_size):
            q = queries[s : s + config.batch_size]
            _, ids, stats = index.search(q, want, config.nprobe)
            if with_rerank:
                _, ids = rerank(be, q, ids, fetch, config.k, index_metric)
            found.append(ids)
            scanned.append(stats.scanned)
        return xp.concatenate(found), np.concatenate(scanned)

    # One untimed call on a few queries first: the timings are of a warm index, as deployed.
    index.search(queries[: min(nq, 8)], config.k, config.nprobe)
    search_step = report("search", 2 if config.rerank else 1)
    (found, scanned), t_search = _timed(be, lambda: search_all(config.k, False))
    search_step(1)
    recall = recall_at_k(be.to_numpy(found), gt_ids, config.k)
    recall_rr: Recall | None = None
    t_rr: float | None = None
    if config.rerank:
        (found_rr, _), t_rr = _timed(be, lambda: search_all(config.rerank, True))
        search_step(1)
        recall_rr = recall_at_k(be.to_numpy(found_rr), gt_ids, config.k)

    timings = Timings(
        ground_truth_s=t_gt,
        train_s=t_train,
        add_s=t_add,
        search_s=t_search,
        search_rerank_s=t_rr,
        add_vectors_per_s=nb / t_add if t_add > 0 else float("inf"),
        search_queries_per_s=nq / t_search if t_search > 0 else float("inf"),
        search_rerank_queries_per_s=(nq / t_rr if t_rr else None),
        batch_size=min(config.batch_size, nq),
    )
    rerank_bytes = store.nbytes(nb, dataset.d) if config.rerank else 0
    bill = memory_bill(nb, dataset.d, config.nlist, config.m, config.nbits, index_metric, rerank_bytes, config.opq)
    result = BackendResult(
        backend=be.name,
        device=be.device_description(),
        library_version=be.library_version(),
        recall=recall,
        recall_rerank=recall_rr,
        memory=bill,
        lists_probed_fraction=config.nprobe / config.nlist,
        vectors_scanned_fraction=float(scanned.mean()) / nb,
        vectors_scanned_per_query=float(scanned.mean()),
        timings=timings,
        train_points_coarse=n_coarse,
        train_points_pq=n_pq,
        train_points_opq=n_opq,
    )
    return result, index.warnings, gt_ids
