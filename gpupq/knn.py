"""Exact k nearest neighbours (the ground truth), in one chunked pass over the base."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .kmeans import sq_norms

if TYPE_CHECKING:
    from .backends import Array, Backend


def exact_knn(
    be: Backend,
    queries: Array,
    base_chunks: Iterable[tuple[Any, Any]],
    k: int,
    metric: str,
    progress: Callable[[int], None] | None = None,
) -> tuple[Array, Array]:
    """Exact top-k of each query over the base, by matrix products and a running top-k merge.

    queries: (nq, d) float32 on the backend (normalised already under cosine).
    base_chunks: iterable of (ids (b,) int64, x (b, d) float32) host arrays; the base is read
    once, whatever its size, and only (nq, b) scores exist at a time.
    metric: ``l2`` (squared distances, ascending) or ``ip`` (similarities, descending).
    Returns (scores (nq, k) float32, ids (nq, k) int64) on the backend, FAISS's convention.
    """
    xp = be.xp
    nq = queries.shape[0]
    best_d = xp.full((nq, 0), float("inf"), dtype=xp.float32)
    best_i = xp.full((nq, 0), -1, dtype=xp.int64)
    q_norms = sq_norms(be, queries)[:, None] if metric == "l2" else None
    # Split the queries when even a thin base chunk would make too large a score matrix.
    q_step = max(1, be.work_bytes() // (4 * 4096))
    for ids, x in base_chunks:
        xd = be.asarray(x)
        ids_d = be.asarray(ids)
        x_norms = sq_norms(be, xd)[None] if metric == "l2" else None
        parts_d, parts_i = [], []
        for s in range(0, nq, q_step):
            dots = xp.matmul(queries[s : s + q_step], xd.T)  # (b_q, b)
            if metric == "l2":
                score = q_norms[s : s + q_step] - 2.0 * dots + x_norms
            else:
                score = -dots
            vals, pos = be.topk(score, k)
            parts_d.append(vals)
            parts_i.append(ids_d[pos])
        cand_d = xp.concatenate([best_d, xp.concatenate(parts_d)], axis=1)
        cand_i = xp.concatenate([best_i, xp.concatenate(parts_i)], axis=1)
        best_d, pos = be.topk(cand_d, k)
        best_i = xp.take_along_axis(cand_i, pos, axis=1)
        if progress is not None:
            progress(len(ids))
    if metric == "l2":
        best_d = xp.maximum(best_d, 0.0)
    else:
        best_d = -best_d
    return best_d, best_i
