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
    # Score blocks of about block_bytes: cache-sized on a CPU, so the merge reads what the GEMM
    # just wrote; queries are split too when there are very many.
    q_step = max(1, be.work_bytes() // (4 * 4096))
    # at least one group of queries per thread: each group's rows of the running top-k are its
    # own, so the groups run on the thread budget without sharing anything they write
    q_step = min(q_step, -(-nq // be.threads))
    col_step = max(8 * _BLOCK, be.block_bytes() // (4 * min(nq, q_step)))
    for ids, x in base_chunks:
        targets = score_operands(be, be.asarray(x)[None], metric)[0].T  # (d + 1, b), a view
        ids_d = be.asarray(ids)

        def group(s: int, targets: Array = targets, ids_d: Array = ids_d) -> None:
            rows = slice(s, s + q_step)
            for c in range(0, targets.shape[1], col_step):
                score = q_aug[rows] @ targets[:, c : c + col_step]  # ‖x‖² − 2⟨q, x⟩, or −⟨q, x⟩
                _merge(be, best_d[rows], best_i[rows], score, ids_d[c : c + col_step], k)

        be.map(group, range(0, nq, q_step))
        if progress is not None:
            progress(len(ids))
    if metric == "l2":
        return xp.maximum(best_d + sq_norms(be, queries)[:, None], 0.0), best_i
    return -best_d, best_i


#: columns per group in the merge's filter: one min per group, then only the groups that can
#: still improve a row are read again
_BLOCK = 32


def _merge(be: Backend, best_d: Array, best_i: Array, score: Array, ids: Array, k: int) -> None:
    """Fold a score block into the running top-k (best_d/best_i: (b, k), sorted, updated in place).

    Once the first chunks are in, only a few scores per row beat the row's current k-th best.
    The columns are dealt into groups of 32 (column j goes to group j mod L/32, so the minimum
    is an element-wise min of 32 contiguous slices, which vectorises); a group whose minimum
    beats the threshold is gathered, the others are never read again.
    score: (b, L) float32; ids: (L,) int64.
    """
    xp = be.xp
    b, width = score.shape
    main = width - width % _BLOCK
    nblk = main // _BLOCK
    groups = score[:, :main].reshape(b, _BLOCK, nblk)  # group g = columns g, g + nblk, ...
    hit = groups.min(axis=1) < best_d[:, -1:]  # (b, nblk)
    counts = xp.count_nonzero(hit, axis=1)
    widest = int(counts.max()) if b else 0  # one scalar read per block
    if widest * _BLOCK * 4 > width:  # dense (the first chunks): select directly
        cand_d, pos = be.topk(score, k, sort=False)
        cand_i = ids[pos]
    else:  # sparse: pack each row's hit groups into a (b, widest·32) block, then the tail
        rows, blk = xp.nonzero(hit)
        slot = xp.arange(rows.shape[0]) - (xp.cumsum(counts) - counts)[rows]
        cand_d = xp.full((b, widest, _BLOCK), float("inf"), dtype=xp.float32)
        cand_i = xp.full((b, widest, _BLOCK), -1, dtype=xp.int64)
        cand_d[rows, slot] = groups[rows, :, blk]
        cand_i[rows, slot] = ids[:main].reshape(_BLOCK, nblk).T[blk]
        cand_d = xp.concatenate([cand_d.reshape(b, -1), score[:, main:]], axis=1)
        cand_i = xp.concatenate([cand_i.reshape(b, -1), xp.broadcast_to(ids[main:], (b, width - main))], axis=1)
        if cand_d.shape[1] == 0:
            return
    merged_d = xp.concatenate([best_d, cand_d], axis=1)
    merged_i = xp.concatenate([best_i, cand_i], axis=1)
    vals, pos = be.topk(merged_d, k)
    best_d[...] = vals
    best_i[...] = xp.take_along_axis(merged_i, pos, axis=1)
