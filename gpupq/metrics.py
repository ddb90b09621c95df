"""Recall with its uncertainty, and the memory bill of an IVF-PQ index.

Recall is k-recall@k counted the way ann-benchmarks counts it: a returned neighbour is right when
its exact distance is within the k-th true distance (ties included, with a small tolerance), so
duplicate vectors in a corpus do not punish a correct answer. The id-intersection figure
(``faiss.contrib.evaluation.knn_intersection_measure``) is kept beside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field

import numpy as np

from .ivf import index_memory_terms
from .pq import packed_code_size

#: A returned neighbour is right when its exact distance is within the k-th true distance
#: times (1 + TIE_EPS) (under ip and cosine: within TIE_EPS of the k-th's gap to a perfect match,
#: the same thing for unit vectors). ann-benchmarks uses a distance threshold too, with 1e-3
#: absolute; measured on synthetic and real MiniLM vectors (400 queries, k = 10), 1e-3 relative
#: counted neighbours at genuinely different distances as ties for 84–98 queries, 1e-5 for at
#: most 2, while still covering duplicates, float noise and the rounding of a float32 GEMM
#: ground truth (about 1e-6 relative).
TIE_EPS = 1e-5

RECALL_DEFINITION = (
    "k-recall@k: share of the returned top-k whose exact distance is within the k-th true distance "
    f"(ties count, to a relative {TIE_EPS:g}; as ann-benchmarks counts), "
    "95% interval = mean ± 1.96·sd/√queries over per-query recall, clipped to [0, 1]; "
    "'by id' is the intersection |returned top-k ∩ exact top-k| / (queries·k)"
)


@dataclass
class Recall:
    """Mean k-recall@k over queries with a 95% normal-approximation interval.

    by_id: the id-intersection recall of the same results, or None where only ids were scored.
    """

    mean: float
    ci95_low: float
    ci95_high: float
    queries: int
    by_id: float | None = None

    def to_dict(self) -> dict[str, float | int | None]:
        return asdict(self)


def _interval(per_query: np.ndarray) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-query values and its clipped 95% normal interval."""
    nq = len(per_query)
    mean = float(per_query.mean()) if nq else 0.0
    half = 1.96 * float(per_query.std(ddof=1)) / np.sqrt(nq) if nq > 1 else 0.0
    return mean, max(0.0, mean - half), min(1.0, mean + half)


def intersection_hits(found: np.ndarray, exact: np.ndarray, k: int) -> np.ndarray:
    """Per query, how many of the exact top-k ids are among the returned top-k.

    found: (nq, >=k) int64 ids (-1 = none); exact: (nq, >=k) int64. Returns (nq,) int64.
    """
    found = np.asarray(found)[:, :k]
    exact = np.asarray(exact)[:, :k]
    nq = found.shape[0]
    hits = np.zeros(nq, dtype=np.int64)
    step = max(1, (1 << 24) // (k * k))  # bound the (step, k, k) comparison
    for s in range(0, nq, step):
        f, e = found[s : s + step], exact[s : s + step]
        hits[s : s + step] = ((f[:, :, None] == e[:, None, :]).any(axis=2) & (f >= 0)).sum(axis=1)
    return hits


def recall_at_k(found: np.ndarray, exact: np.ndarray, k: int) -> Recall:
    """The id-intersection measure alone (faiss.contrib.evaluation.knn_intersection_measure):
    per query, the share of the exact top-k ids found among the returned top-k.

    found: (nq, >=k) int64 ids (-1 = none); exact: (nq, >=k) int64 true neighbours. Blind to
    ties: use :meth:`GroundTruth.recall` for the figure gpupq reports.
    """
    per_query = intersection_hits(found, exact, k) / k
    mean, low, high = _interval(per_query)
    return Recall(mean=mean, ci95_low=low, ci95_high=high, queries=len(per_query))


def exact_scores(
    rows: Callable[[np.ndarray], np.ndarray], queries: np.ndarray, ids: np.ndarray, metric: str
) -> np.ndarray:
    """Exact scores of candidate ids, computed directly (not through ‖q‖² − 2⟨q, x⟩ + ‖x‖², whose
    rounding would split exact duplicates), in float64.

    rows(ids) -> (len(ids), d) float32 vectors as the index sees them (normalised under cosine);
    queries: (nq, d) float32; ids: (nq, r) int64, -1 = none. Returns (nq, r) float64: squared
    L2 distances for ``l2``, inner products for ``ip``; NaN where the id is -1.
    """
    ids = np.asarray(ids, dtype=np.int64)
    nq, r = ids.shape
    out = np.full((nq, r), np.nan, dtype=np.float64)
    d = queries.shape[1]
    step = max(1, (32 << 20) // max(1, r * d * 8))  # queries per chunk: ~32 MiB of float64 rows
    for s in range(0, nq, step):
        block = ids[s : s + step]
        valid = block >= 0
        if not valid.any():
            continue
        uniq, inverse = np.unique(block[valid], return_inverse=True)
        vecs = rows(uniq).astype(np.float64)[inverse]  # (v, d)
        q = np.repeat(queries[s : s + step].astype(np.float64), valid.sum(axis=1), axis=0)  # (v, d)
        if metric == "l2":
            diff = vecs - q
            score = np.einsum("vd,vd->v", diff, diff)
        else:
            score = np.einsum("vd,vd->v", vecs, q)
        sub = out[s : s + step]
        sub[valid] = score
    return out


@dataclass
class GroundTruth:
    """The queries' exact neighbours, and the scores that decide when a returned one is right.

    queries: (nq, d) float32 on the host, as the index sees them (normalised under cosine);
    ids: (nq, K) int64 exact neighbours, best first, K >= k; with K > k the (k+1)-th tells
    whether the k-th is tied (duplicates); rows(ids) -> (len(ids), d) float32 fetches vectors;
    metric: ``l2`` or ``ip`` (cosine is ip on normalised rows).
    """

    queries: np.ndarray
    ids: np.ndarray
    k: int
    metric: str
    rows: Callable[[np.ndarray], np.ndarray] = field(repr=False)
    #: (nq, min(K, k + 1)) float64 exact scores of ``ids``
    scores: np.ndarray = field(init=False, repr=False)
    #: (nq,) float64: a returned neighbour scoring at or inside this is right
    threshold: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if self.ids.ndim != 2 or self.ids.shape[1] < self.k:
            raise ValueError(f"ground truth ids {self.ids.shape} hold fewer than k={self.k} neighbours per query")
        self.scores = exact_scores(self.rows, self.queries, self.ids[:, : self.k + 1], self.metric)
        top = self.scores[:, : self.k]
        nq = len(top)
        worst = np.nanargmax(top, axis=1) if self.metric == "l2" else np.nanargmin(top, axis=1)
        # the worst of the true top-k, not the k-th as listed: stored lists may be out of order
        kth = top[np.arange(nq), worst]
        if self.metric == "l2":
            self.threshold = kth * (1.0 + TIE_EPS) ** 2
        else:
            # Inner products have no scale of their own; ‖q‖·‖x‖ − ⟨q, x⟩ ≥ 0 (Cauchy–Schwarz) is
            # the gap to a perfect match, half the squared distance for unit vectors, so ε of it
            # is the same tolerance as under l2.
            x_norm = np.linalg.norm(self.rows(self.ids[np.arange(nq), worst]).astype(np.float64), axis=1)
            q_norm = np.linalg.norm(self.queries.astype(np.float64), axis=1)
            self.threshold = kth - 2.0 * TIE_EPS * np.maximum(q_norm * x_norm - kth, 0.0)

    @property
    def nq(self) -> int:
        return int(self.ids.shape[0])

    def is_right(self, scores: np.ndarray) -> np.ndarray:
        """scores: (nq, r) float64 exact scores (NaN = no neighbour) -> (nq, r) bool."""
        with np.errstate(invalid="ignore"):  # NaN compares False: a missing neighbour is wrong
            if self.metric == "l2":
                return scores <= self.threshold[:, None]
            return scores >= self.threshold[:, None]

    @property
    def tied(self) -> np.ndarray | None:
        """(nq,) bool: the (k+1)-th true neighbour is as near as the k-th, so which ids make
        the exact top-k is ambiguous; None when the (k+1)-th is not known."""
        if self.scores.shape[1] <= self.k:
            return None
        return self.is_right(self.scores[:, self.k : self.k + 1])[:, 0]

    def recall(self, found: np.ndarray) -> Recall:
        """k-recall@k of found: (nq, >=k) int64 ids on the host (-1 = none), by exact distance,
        with the id-intersection figure in ``by_id``."""
        found = np.asarray(found, dtype=np.int64)[:, : self.k]
        right = self.is_right(exact_scores(self.rows, self.queries, found, self.metric))
        per_query = right.sum(axis=1) / self.k
        mean, low, high = _interval(per_query)
        by_id = float(intersection_hits(found, self.ids, self.k).mean() / self.k)
        return Recall(mean=mean, ci95_low=low, ci95_high=high, queries=self.nq, by_id=by_id)


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
