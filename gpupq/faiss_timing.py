"""The answer's speed as a deployed engine runs it: faiss-cpu, when it is installed.

gpupq's own scan (a decode and a matrix product per probed list) is not FAISS's (a lookup table
per list): their speeds differ, and the figure a deployer acts on is the engine's. For each
answer, :func:`faiss_timing` hands FAISS the very index gpupq measured (its coarse centroids, PQ
codebooks and re-rank store ranges, so no training is repeated and the ranking is the same up to
ties), fills it with the same base, and times the answer's setting as deployed: search at its
nprobe without the precomputed table (as billed), re-ranked from a store of its precision to its
depth (``IndexRefine``), in gpupq's query batches, interleaved runs, and single queries for the
latency. FAISS's recall of the same queries, scored by gpupq's rule, comes with it as a check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from .metrics import Recall
from .timing import LATENCY_QUERIES, Latency, one_at_a_time, repeat

if TYPE_CHECKING:
    from .engine import PointResult, Workbench

#: FAISS's scalar quantizer for each re-rank store
_SQ = {"fp16": "QT_fp16", "sq8": "QT_8bit"}


@dataclass
class EngineTiming:
    """One answer timed on an engine's library: whose figure it is, queries/s in batches,
    single-query latency, and the library's recall of the same queries (gpupq's rule)."""

    library: str  # e.g. "faiss-cpu 1.15.1"
    queries_per_s: float
    latency: Latency
    recall: Recall

    def to_dict(self) -> dict[str, Any]:
        return {
            "library": self.library,
            "queries_per_s": self.queries_per_s,
            "latency": self.latency.to_dict(),
            "recall": self.recall.to_dict(),
        }


def faiss_or_none() -> Any:
    try:
        import faiss
    except ImportError:
        return None
    return faiss


def faiss_timing(bench: Workbench, point: PointResult, k: int, threads: int, min_time: float) -> EngineTiming | None:
    """``point`` (an answer: a build gpupq trained, at its setting) timed on faiss-cpu, or None
    when faiss-cpu is not installed or the build uses OPQ (not handed over)."""
    faiss = faiss_or_none()
    if faiss is None or point.build.opq:
        return None
    omp_before = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        return _timing(faiss, bench, point, k, min_time)
    finally:
        faiss.omp_set_num_threads(omp_before)


def handed_over(faiss: Any, bench: Workbench, point: PointResult) -> tuple[Any, Any]:
    """FAISS's IVF-PQ index (and refine index, or None) holding gpupq's trained quantizers and
    the whole base, numbered by position in the base."""
    be, b, s = bench.be, point.build, point.setting
    index = bench.built(b).index
    d = bench.dataset.d
    metric = faiss.METRIC_L2 if bench.index_metric == "l2" else faiss.METRIC_INNER_PRODUCT
    quantizer = faiss.IndexFlat(d, metric)
    quantizer.add(np.ascontiguousarray(be.to_numpy(index.coarse), dtype=np.float32))
    ivf = faiss.IndexIVFPQ(quantizer, d, b.nlist, b.m, b.nbits, metric)
    faiss.copy_array_to_vector(np.ascontiguousarray(be.to_numpy(index.pq.codebooks), dtype=np.float32).ravel(),
                               ivf.pq.centroids)  # fmt: skip
    ivf.is_trained = True
    ivf.use_precomputed_table = -1  # deployed without the table, as the answer is billed
    refine = None
    if s.rerank:
        if s.store == "fp32":
            refine = faiss.IndexFlat(d, metric)
        else:
            refine = faiss.IndexScalarQuantizer(d, getattr(faiss.ScalarQuantizer, _SQ[s.store]), metric)
            store = bench.store(s.store)
            if store.vmin is not None:  # sq8: gpupq's ranges (FAISS's trained = [vmin..., vdiff...])
                faiss.copy_array_to_vector(np.concatenate([store.vmin, store.vdiff]).astype(np.float32),
                                           refine.sq.trained)  # fmt: skip
            refine.is_trained = True
    for _, x in bench.split.iter_base():
        x = np.ascontiguousarray(x, dtype=np.float32)
        ivf.add(x)
        if refine is not None:
            refine.add(x)
    return ivf, refine


def _timing(faiss: Any, bench: Workbench, point: PointResult, k: int, min_time: float) -> EngineTiming:
    ivf, refine = handed_over(faiss, bench, point)
    s = point.setting
    ivf.nprobe = s.nprobe
    index = ivf
    if refine is not None:
        index = faiss.IndexRefine(ivf, refine)
        index.k_factor = s.rerank / k
    queries = np.ascontiguousarray(bench.be.to_numpy(bench.queries), dtype=np.float32)
    row_of = bench.split.base_ids()
    nq, batch = len(queries), bench.batch_size

    def search() -> np.ndarray:
        return np.concatenate([index.search(queries[i : i + batch], k)[1] for i in range(0, nq, batch)])

    found, runs = repeat({"search": search}, min_time)
    pos = found["search"]
    recall = bench.truth(k).recall(np.where(pos >= 0, row_of[np.maximum(pos, 0)], -1))
    latency = one_at_a_time(lambda i: index.search(queries[i : i + 1], k), min(LATENCY_QUERIES, nq))
    t = runs["search"].median
    return EngineTiming(
        library=f"faiss-cpu {faiss.__version__}",
        queries_per_s=nq / t if t > 0 else float("inf"),
        latency=latency,
        recall=recall,
    )
