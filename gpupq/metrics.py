"""Recall with its uncertainty, and the memory bill of an IVF-PQ index."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from .ivf import index_memory_terms
from .pq import packed_code_size

RECALL_DEFINITION = (
    "k-recall@k (intersection): |returned top-k ∩ exact top-k| / (queries·k), "
    "95% interval = mean ± 1.96·sd/√queries over per-query recall, clipped to [0, 1]"
)


@dataclass
class Recall:
    """Mean k-recall@k over queries with a 95% normal-approximation interval."""

    mean: float
    ci95_low: float
    ci95_high: float
    queries: int

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> Recall:
    """found: (nq, >=k) int64 ids (-1 = none); exact: (nq, >=k) int64 true neighbours.

    Per query, the share of the exact top-k found among the returned top-k ("intersection"
    measure, faiss.contrib.evaluation.knn_intersection_measure).
    """
    found = np.asarray(found)[:, :k]
    exact = np.asarray(exact)[:, :k]
    nq = found.shape[0]
    hits = np.zeros(nq, dtype=np.int64)
    step = max(1, (1 << 24) // (k * k))  # bound the (step, k, k) comparison
    for s in range(0, nq, step):
        f, e = found[s : s + step], exact[s : s + step]
        hits[s : s + step] = ((f[:, :, None] == e[:, None, :]).any(axis=2) & (f >= 0)).sum(axis=1)
    per_query = hits / k
    mean = float(per_query.mean()) if nq else 0.0
    half = 1.96 * float(per_query.std(ddof=1)) / np.sqrt(nq) if nq > 1 else 0.0
    return Recall(mean=mean, ci95_low=max(0.0, mean - half), ci95_high=min(1.0, mean + half), queries=nq)


@dataclass
class MemoryBill:
    """Bytes of everything an IVF-PQ deployment of n vectors holds, and the ratios that matter.

    ``index_serialized`` (codes, ids, coarse centroids, codebooks, list sizes, OPQ matrix) is what
    ``faiss.serialize_index`` writes, to within its few hundred bytes of headers;
    ``index_in_memory`` adds the precomputed L2 table FAISS builds when it loads the index.
    Re-ranking needs stored vectors: ``rerank_store`` is their size at the store's precision
    (fp32, fp16 or sq8) when re-ranking is used, else 0.
    """

    n: int
    d: int
    vectors_fp32: int
    codes: int
    ids: int
    coarse_centroids: int
    pq_codebooks: int
    list_sizes: int
    opq_matrix: int
    precomputed_table: int
    rerank_store: int
    code_size: int

    @property
    def index_serialized(self) -> int:
        return self.codes + self.ids + self.coarse_centroids + self.pq_codebooks + self.list_sizes + self.opq_matrix

    @property
    def index_in_memory(self) -> int:
        return self.index_serialized + self.precomputed_table

    @property
    def with_rerank(self) -> int:
        return self.index_in_memory + self.rerank_store

    def to_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = asdict(self)
        out.update(
            index_serialized=self.index_serialized,
            index_in_memory=self.index_in_memory,
            with_rerank=self.with_rerank,
            ratio_codes=self.vectors_fp32 / self.codes,
            ratio_index=self.vectors_fp32 / self.index_in_memory,
            ratio_with_rerank=self.vectors_fp32 / self.with_rerank,
        )
        return out


def memory_bill(
    n: int, d: int, nlist: int, m: int, nbits: int, metric: str, rerank_store: int = 0, opq: bool = False
) -> MemoryBill:
    """The bill for n vectors; rerank_store: bytes of the re-ranking vectors (0 without re-ranking)."""
    terms = index_memory_terms(n, d, nlist, m, nbits, metric, opq)
    return MemoryBill(
        n=n,
        d=d,
        vectors_fp32=n * d * 4,
        rerank_store=rerank_store,
        code_size=packed_code_size(m, nbits),
        **terms,
    )
