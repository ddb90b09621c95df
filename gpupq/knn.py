"""Exact k nearest neighbours (the ground truth), in one chunked pass over the base."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .kmeans import score_operands, sq_norms, with_ones

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
    Returns (scores (nq, k) float32, ids (nq, k) int64) on the backend, FAISS's convention; rows
    with fewer than k base vectors are padded with id -1.
    """
    xp = be.xp
    nq = queries.shape[0]
    best_d = xp.full((nq, k), float("inf"), dtype=xp.float32)
    best_i = xp.full((nq, k), -1, dtype=xp.int64)
    q_aug = with_ones(be, queries)
    # Split the queries when even a thin base chunk would make too large a score matrix.
    q_step = max(1, be.work_bytes() // (4 * 4096))
    for ids, x in base_chunks:
        targets = score_operands(be, be.asarray(x)[None], metric)[0]  # (d + 1, b)
        ids_d = be.asarray(ids)
        for s in range(0, nq, q_step):
            score = q_aug[s : s + q_step] @ targets  # (b_q, b): distance less ‖q‖², or −⟨q, x⟩
            _merge(be, best_d[s : s + q_step], best_i[s : s + q_step], score, ids_d, k)
        if progress is not None:
            progress(len(ids))
    if metric == "l2":
        return xp.maximum(best_d + sq_norms(be, queries)[:, None], 0.0), best_i
    return -best_d, best_i


def _merge(be: Backend, best_d: Array, best_i: Array, score: Array, ids: Array, k: int) -> None:
    """Fold a score block into the running top-k (best_d/best_i: (b, k), sorted, updated in place).

    Only scores below a row's current k-th best can enter, and once the first chunks are in
    those are few: one comparison pass replaces a selection over the whole block.
    score: (b, L) float32; ids: (L,) int64.
    """
    xp = be.xp
    better = score < best_d[:, -1:]
    counts = better.sum(axis=1)
    widest = int(counts.max()) if counts.shape[0] else 0  # one scalar read per block
    if widest == 0:
        return
    if widest * 4 > score.shape[1]:  # dense (the first blocks): select directly
        cand_d, pos = be.topk(score, k, sort=False)
        cand_i = ids[pos]
    else:  # sparse: pack each row's few survivors into a (b, widest) block
        rows, cols = xp.nonzero(better)
        slot = xp.arange(rows.shape[0]) - (xp.cumsum(counts) - counts)[rows]
        cand_d = xp.full((score.shape[0], widest), float("inf"), dtype=xp.float32)
        cand_i = xp.full((score.shape[0], widest), -1, dtype=xp.int64)
        cand_d[rows, slot] = score[rows, cols]
        cand_i[rows, slot] = ids[cols]
    merged_d = xp.concatenate([best_d, cand_d], axis=1)
    merged_i = xp.concatenate([best_i, cand_i], axis=1)
    vals, pos = be.topk(merged_d, k)
    best_d[...] = vals
    best_i[...] = xp.take_along_axis(merged_i, pos, axis=1)
