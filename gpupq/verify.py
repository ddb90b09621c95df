"""A side-by-side check against the real thing (faiss-cpu).

:func:`faiss_check` builds the FAISS index that :func:`gpupq.deploy.factory_string` names on the
same base, trains it on the same sample, runs the same queries in the same batches, and measures
recall, search speed and serialized size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .deploy import factory_string, ivfpq_factory
from .errors import GpupqError
from .metrics import GroundTruth, Recall
from .settings import Build, Setting
from .timing import LATENCY_QUERIES, Latency, one_at_a_time, repeat

if TYPE_CHECKING:
    from .io import Dataset, Split


@dataclass
class FaissCheck:
    """faiss-cpu's figures for the same index, data, split and queries. Its add time includes
    filling the refine index (the stored vectors), which gpupq's add does not do."""

    faiss_version: str
    factory: str
    recall: Recall
    recall_rerank: Recall | None
    search_queries_per_s: float
    search_rerank_queries_per_s: float | None
    index_serialized: int
    rerank_store: int
    train_s: float
    add_s: float
    #: per phase: runs, median_s, min_s, max_s (train_s etc. are the medians)
    runs: dict[str, dict[str, float | int]] = field(default_factory=dict)
    #: one query at a time on FAISS, as deployed (re-ranked when the estimate re-ranks)
    latency: Latency | None = None

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["recall"] = self.recall.to_dict()
        out["recall_rerank"] = self.recall_rerank.to_dict() if self.recall_rerank else None
        out["latency"] = self.latency.to_dict() if self.latency is not None else None
        return out


def faiss_version() -> str | None:
    """faiss-cpu's version, or None when it is not installed."""
    try:
        import faiss
    except ImportError:
        return None
    return str(faiss.__version__)


def import_faiss() -> Any:
    try:
        import faiss
    except ImportError as exc:
        raise GpupqError(f"--verify faiss needs faiss-cpu: pip install 'gpupq[faiss]' ({exc})") from None
    return faiss


def faiss_check(
    dataset: Dataset,
    split: Split,
    train_x: np.ndarray,
    truth: GroundTruth,
    build: Build,
    setting: Setting,
    k: int,
    batch_size: int,
    threads: int,
    min_time: float = 0.0,
) -> FaissCheck:
    """Build, train, fill and search the FAISS index the estimate describes.

    dataset/split: the same base and queries (rows already normalised under cosine);
    train_x: (n_train, d) float32, the estimate's training sample (FAISS subsamples it to the
    same caps); truth: the exact neighbours gpupq's recall was scored against, so both sides are
    scored by the same rule; build, setting, k, batch_size: the index, how it is searched (re-ranked
    when ``setting.rerank``), neighbours asked and queries per search call; threads: FAISS's
    OpenMP threads, gpupq's budget; min_time: each phase timed by the estimate's rule (repeated
    until its runs cover this long; the median run).
    """
    faiss = import_faiss()
    omp_before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        return _faiss_check(faiss, dataset, split, train_x, truth, build, setting, k, batch_size, min_time)
    finally:
        faiss.omp_set_num_threads(omp_before)


def _faiss_check(
    faiss: Any,
    dataset: Dataset,
    split: Split,
    train_x: np.ndarray,
    truth: GroundTruth,
    build: Build,
    setting: Setting,
    k: int,
    batch_size: int,
    min_time: float,
) -> FaissCheck:
    d = dataset.d
    metric = faiss.METRIC_L2 if dataset.metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def make() -> tuple[Any, Any, Any]:
        """(base IVF-PQ index, refine index or None, the index searched with re-ranking)."""
        # The rows are already normalised under cosine, so no L2norm stage is needed here.
        base = faiss.index_factory(d, ivfpq_factory(build), metric)
        refine = None
        if setting.rerank:
            refine = {
                "fp32": lambda: faiss.IndexFlat(d, metric),
                "fp16": lambda: faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, metric),
                "sq8": lambda: faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, metric),
            }[setting.store]()
        index = faiss.IndexRefine(base, refine) if refine is not None else base
        index.train(train_x)  # IndexRefine trains both
        return base, refine, index

    out, runs = repeat({"train": make}, min_time)
    base, refine, index = out["train"]

    def add_all() -> None:
        index.reset()  # keeps what was trained: every run adds the whole base
        for _, x in split.iter_base():
            index.add(x)  # FAISS numbers them 0, 1, ...: positions in the base, mapped to rows below

    runs.update(repeat({"add": add_all}, min_time)[1])
    row_of = split.base_ids()
    faiss.extract_index_ivf(base).nprobe = setting.nprobe
    queries = split.queries
    nq = len(queries)
    batches = range(0, nq, batch_size)

    def search(idx: Any) -> np.ndarray:
        pos = np.concatenate([idx.search(queries[s : s + batch_size], k)[1] for s in batches])
        return np.where(pos >= 0, row_of[np.maximum(pos, 0)], -1)

    fns = {"search": lambda: search(base)}
    if refine is not None:
        index.k_factor = setting.rerank / k
        fns["search_rerank"] = lambda: search(index)
    found, search_runs = repeat(fns, min_time)  # interleaved, as gpupq's are
    runs.update(search_runs)
    recall = truth.recall(found["search"])
    recall_rr = truth.recall(found["search_rerank"]) if refine is not None else None
    deployed = index if refine is not None else base
    latency = one_at_a_time(lambda i: deployed.search(queries[i : i + 1], k), min(LATENCY_QUERIES, nq))
    search_s = runs["search"].median
    rr_s = runs["search_rerank"].median if refine is not None else None
    return FaissCheck(
        faiss_version=str(faiss.__version__),
        factory=factory_string(build, setting, dataset.metric),
        recall=recall,
        recall_rerank=recall_rr,
        search_queries_per_s=nq / search_s if search_s > 0 else float("inf"),
        search_rerank_queries_per_s=None if rr_s is None else (nq / rr_s if rr_s > 0 else float("inf")),
        index_serialized=len(faiss.serialize_index(base)),
        rerank_store=len(faiss.serialize_index(refine)) if refine is not None else 0,
        train_s=runs["train"].median,
        add_s=runs["add"].median,
        runs={phase: r.to_dict() for phase, r in runs.items()},
        latency=latency,
    )


def outside_interval(ours: Recall, theirs: Recall) -> bool:
    """Is FAISS's recall outside gpupq's 95% interval?"""
    return not ours.ci95_low <= theirs.mean <= ours.ci95_high
