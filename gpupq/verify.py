"""What to deploy, and a side-by-side check against the real thing (faiss-cpu).

:func:`deploy_spec` turns an estimate's settings into the FAISS ``index_factory`` string and the
cuVS IVF-PQ parameters that build the same index, so what was measured is what gets deployed.
:func:`faiss_check` builds that FAISS index on the same base, trains it on the same sample, runs
the same queries in the same batches, and measures recall, search speed and serialized size.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .errors import GpupqError
from .metrics import GroundTruth, Recall
from .timing import repeat

if TYPE_CHECKING:
    from .data import Dataset, Split
    from .estimate import EstimateConfig

_REFINE = {"fp32": "RFlat", "fp16": "Refine(SQfp16)", "sq8": "Refine(SQ8)"}


def _ivfpq_factory(config: EstimateConfig) -> str:
    """The IVF-PQ part of the factory string. "np": no polysemous training, which the factory
    otherwise adds (it permutes code numbers for Hamming filtering, costs training time and
    leaves ADC recall unchanged)."""
    opq = f"OPQ{config.m}," if config.opq else ""
    return f"{opq}IVF{config.nlist},PQ{config.m}x{config.nbits}np"


def factory_string(config: EstimateConfig) -> str:
    """The whole FAISS index_factory string: normalisation, OPQ, IVF-PQ, refinement."""
    prefix = "L2norm," if config.metric == "cosine" else ""
    refine = "," + _REFINE[config.rerank_store] if config.rerank else ""
    return prefix + _ivfpq_factory(config) + refine


def deploy_spec(config: EstimateConfig, n_base: int) -> dict[str, Any]:
    """The FAISS factory string and cuVS parameters for the index the estimate measured."""
    factory = factory_string(config)
    ip = config.metric != "l2"
    coarse_points = min(n_base, 256 * config.nlist)
    cuvs: dict[str, Any] = {
        "index_params": {
            "n_lists": config.nlist,
            "metric": "inner_product" if ip else "sqeuclidean",
            "pq_dim": config.m,
            "pq_bits": config.nbits,
            "codebook_kind": "subspace",
            "kmeans_n_iters": 10,  # FAISS's coarse iterations, as measured here
            "kmeans_trainset_fraction": round(coarse_points / n_base, 6),
        },
        "search_params": {"n_probes": config.nprobe},
    }
    notes = []
    if config.metric == "cosine":
        notes.append("normalise vectors and queries to unit length first (cosine = inner product of unit vectors)")
    if config.opq:
        notes.append("cuVS IVF-PQ has no OPQ; it applies its own random rotation, so expect recall to differ")
    if config.rerank:
        cuvs["refine"] = {"k": config.k, "candidates": config.rerank, "store": config.rerank_store}
        notes.append(f"re-rank: search {config.rerank} candidates, then cuvs.neighbors.refine to k={config.k}")
    return {
        "faiss_index_factory": factory,
        "faiss_metric": "METRIC_INNER_PRODUCT" if ip else "METRIC_L2",
        "faiss_nprobe": config.nprobe,
        "faiss_k_factor": config.rerank / config.k if config.rerank else None,
        "cuvs_ivf_pq": cuvs,
        "notes": notes,
    }


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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["recall"] = self.recall.to_dict()
        out["recall_rerank"] = self.recall_rerank.to_dict() if self.recall_rerank else None
        return out


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
    config: EstimateConfig,
    threads: int,
    min_time: float = 0.0,
) -> FaissCheck:
    """Build, train, fill and search the FAISS index the estimate describes.

    dataset/split: the same base and queries (rows already normalised under cosine);
    train_x: (n_train, d) float32, the estimate's training sample (FAISS subsamples it to the
    same caps); truth: the exact neighbours gpupq's recall was scored against, so both sides are
    scored by the same rule; threads: FAISS's OpenMP threads, gpupq's budget; min_time: each
    phase timed by the estimate's rule (repeated until its runs cover this long; the median run).
    """
    faiss = import_faiss()
    omp_before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        return _faiss_check(faiss, dataset, split, train_x, truth, config, min_time)
    finally:
        faiss.omp_set_num_threads(omp_before)


def _faiss_check(
    faiss: Any,
    dataset: Dataset,
    split: Split,
    train_x: np.ndarray,
    truth: GroundTruth,
    config: EstimateConfig,
    min_time: float,
) -> FaissCheck:
    d = dataset.d
    metric = faiss.METRIC_L2 if config.metric == "l2" else faiss.METRIC_INNER_PRODUCT

    def build() -> tuple[Any, Any, Any]:
        """(base IVF-PQ index, refine index or None, the index searched with re-ranking)."""
        # The rows are already normalised under cosine, so no L2norm stage is needed here.
        base = faiss.index_factory(d, _ivfpq_factory(config), metric)
        refine = None
        if config.rerank:
            refine = {
                "fp32": lambda: faiss.IndexFlat(d, metric),
                "fp16": lambda: faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_fp16, metric),
                "sq8": lambda: faiss.IndexScalarQuantizer(d, faiss.ScalarQuantizer.QT_8bit, metric),
            }[config.rerank_store]()
        index = faiss.IndexRefine(base, refine) if refine is not None else base
        index.train(train_x)  # IndexRefine trains both
        return base, refine, index

    out, runs = repeat({"train": build}, min_time)
    base, refine, index = out["train"]

    def add_all() -> None:
        index.reset()  # keeps what was trained: every run adds the whole base
        for _, x in split.iter_base():
            index.add(x)  # FAISS numbers them 0, 1, ...: positions in the base, mapped to rows below

    runs.update(repeat({"add": add_all}, min_time)[1])
    row_of = split.base_ids()
    faiss.extract_index_ivf(base).nprobe = config.nprobe
    queries = split.queries
    nq = len(queries)
    batches = range(0, nq, config.batch_size)

    def search(idx: Any) -> np.ndarray:
        pos = np.concatenate([idx.search(queries[s : s + config.batch_size], config.k)[1] for s in batches])
        return np.where(pos >= 0, row_of[np.maximum(pos, 0)], -1)

    fns = {"search": lambda: search(base)}
    if refine is not None:
        index.k_factor = config.rerank / config.k
        fns["search_rerank"] = lambda: search(index)
    found, search_runs = repeat(fns, min_time)  # interleaved, as gpupq's are
    runs.update(search_runs)
    recall = truth.recall(found["search"])
    recall_rr = truth.recall(found["search_rerank"]) if refine is not None else None
    search_s = runs["search"].median
    rr_s = runs["search_rerank"].median if refine is not None else None
    return FaissCheck(
        faiss_version=str(faiss.__version__),
        factory=factory_string(config),
        recall=recall,
        recall_rerank=recall_rr,
        search_queries_per_s=nq / search_s if search_s > 0 else float("inf"),
        search_rerank_queries_per_s=None if rr_s is None else (nq / rr_s if rr_s > 0 else float("inf")),
        index_serialized=len(faiss.serialize_index(base)),
        rerank_store=len(faiss.serialize_index(refine)) if refine is not None else 0,
        train_s=runs["train"].median,
        add_s=runs["add"].median,
        runs={phase: r.to_dict() for phase, r in runs.items()},
    )


def outside_interval(ours: Recall, theirs: Recall) -> bool:
    """Is FAISS's recall outside gpupq's 95% interval?"""
    return not ours.ci95_low <= theirs.mean <= ours.ci95_high
