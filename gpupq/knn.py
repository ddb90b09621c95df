"""Exact k nearest neighbours (the ground truth), in one chunked pass over the base."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from .kmeans import score_operands, sq_norms, with_ones
from .transfer import device_chunks

if TYPE_CHECKING:
    from .backends import Array, Backend


def exact_knn(
    be: Backend,
    queries: Array,
    base_chunks: Iterable[tuple[Any, Any]],
    k: int,
    metric: str,
    progress: Callable[[int], None] | None = None,
    raw: bool = False,
) -> tuple[Array, Array]:
    """Exact top-k of each query over the base, by matrix products and a running top-k merge.

    queries: (nq, d) float32 on the backend (normalised already under cosine).
    base_chunks: iterable of (ids (b,) int64, x (b, d) float32) host arrays; the base is read
    once, whatever its size, and only (nq, b) scores exist at a time. Rows with id -1 are
    skipped (scored inf), so a chunk need not be copied to drop held-out rows.
    metric: ``l2`` (squared distances, ascending) or ``ip`` (similarities, descending).
    Returns (scores (nq, k) float32, ids (nq, k) int64) on the backend, FAISS's convention; rows
    with fewer than k base vectors are padded with id -1. raw: the scores as ranked instead
    (‖x‖² − 2⟨q, x⟩, or −⟨q, x⟩; ascending, inf past the base), for a merge of several passes
    that :func:`finish_scores` turns into FAISS's afterwards (transformed first, equal raw
    scores could tie or reorder).
    """
    xp = be.xp
    nq = queries.shape[0]
    best_d = xp.full((nq, k), float("inf"), dtype=xp.float32)
    best_i = xp.full((nq, k), -1, dtype=xp.int64)
    kernel = be.merge_kernel()
    # the CuPy backend's select kernel merges in one launch (ids packed in 32 bits: not wide ones)
    gpu = None if be.wide_ids else getattr(be, "kernels", None)
    # Operands [−2x, ‖x‖²] padded with zero columns to the backend's alignment (on a GPU, 769
    # columns at d 768 leave every row of the product misaligned).
    width = -(-(queries.shape[1] + 1) // be.product_align) * be.product_align
    # With the compiled merge, the product reads each base chunk as it is and the merge adds
    # the chunk's ‖x‖² per column; the array form builds [−2x, ‖x‖²] per chunk instead, so one
    # product gives whole scores (that copy was a fifth of the ground truth at d 768).
    if kernel is None:
        q_aug = xp.zeros((nq, width), dtype=xp.float32)
        q_aug[:, : queries.shape[1] + 1] = with_ones(be, queries)
    else:
        q_aug = queries * xp.float32(-2.0 if metric == "l2" else -1.0)
    # Score blocks of about block_bytes: cache-sized on a CPU, so the merge reads what the GEMM
    # just wrote; queries are split too when there are very many.
    q_step = max(1, be.work_bytes() // (4 * 4096))
    # at least one group of queries per thread: each group's rows of the running top-k are its
    # own, so the groups run on the thread budget without sharing anything they write
    q_step = min(q_step, -(-nq // be.threads))
    # Bytes a score costs: its own 4; with the array-form merge on a GPU, about 24 more while
    # the first blocks are selected densely (keys, partition, index copies). On a CPU the block
    # is cache-sized, and both kernels select in place.
    per_score = 28 if gpu is None and kernel is None and be.resident_stores else 4
    col_step = max(8 * _BLOCK, be.block_bytes() // (per_score * min(nq, q_step)))
    for ids, x in device_chunks(be, base_chunks):  # on a GPU: pinned copies, the next while this computes
        x_d, ids_d = be.asarray(x), be.asarray(ids)
        b, d = x_d.shape
        if kernel is None:
            operands = xp.empty((b, width), dtype=xp.float32)
            if width > d + 1:
                operands[:, d + 1 :] = 0.0  # the alignment's columns

            def fill(rows: slice, x_d: Array = x_d, operands: Array = operands) -> None:
                operands[rows, : x_d.shape[1] + 1] = score_operands(be, x_d[None, rows], metric)[0]

            be.map(fill, be.row_groups(b))  # a pass over the chunk: on the thread budget too
            # rows with id -1 (held-out queries left in the chunk) score inf: never picked over a row
            operands[:, d] = xp.where(ids_d < 0, xp.float32(float("inf")), operands[:, d])
            targets, bias = operands.T, None  # (width, b), a view BLAS takes as it is
        else:
            ids_d = xp.ascontiguousarray(ids_d, dtype=xp.int64)  # the kernel's contract, no copy when so
            bias = xp.zeros(b, dtype=xp.float32)
            if metric == "l2":

                def norms(rows: slice, x_d: Array = x_d, bias: Array = bias) -> None:
                    bias[rows] = sq_norms(be, x_d[rows])

                be.map(norms, be.row_groups(b))
            bias[ids_d < 0] = float("inf")
            targets = x_d.T  # (d, b)

        def group(s: int, targets: Array = targets, ids_d: Array = ids_d, bias: Array | None = bias) -> None:
            rows = slice(s, s + q_step)
            qs = q_aug[rows]
            # one score buffer per group and chunk, filled block after block: a fresh block
            # each time costs a page fault per 4 KiB
            buf = xp.empty((qs.shape[0], min(col_step, targets.shape[1])), dtype=xp.float32)
            for c in range(0, targets.shape[1], col_step):
                cols = targets[:, c : c + col_step]
                full = cols.shape[1] == buf.shape[1]
                # ‖x‖² − 2⟨q, x⟩, or −⟨q, x⟩ (less the bias, with the compiled merge)
                score = xp.matmul(qs, cols, out=buf) if full else xp.matmul(qs, cols)
                if gpu is not None:  # one launch, no reads back: nothing waits on the device
                    gpu.merge_into(best_d[rows], best_i[rows], score, ids_d[c : c + col_step])
                elif kernel is None:
                    _merge(be, best_d[rows], best_i[rows], score, ids_d[c : c + col_step], k)
                else:  # the same merge, compiled: one compare per score, no passes over the block
                    kernel(score, ids_d[c : c + col_step], best_d[rows], best_i[rows], bias[c : c + col_step])

        be.map(group, range(0, nq, q_step))
        if progress is not None:
            progress(int((ids >= 0).sum()))  # held-out rows (id -1) are not base rows
    return (best_d if raw else finish_scores(be, queries, best_d, metric)), best_i


def finish_scores(be: Backend, queries: Array, raw: Array, metric: str) -> Array:
    """Raw ranking scores (nq, k) float32 -> FAISS's: squared distances ‖q‖² + ‖x‖² − 2⟨q, x⟩
    clipped at 0 (l2), or similarities (ip)."""
    if metric == "l2":
        return be.xp.maximum(raw + sq_norms(be, queries)[:, None], 0.0)
    return -raw


#: columns per group in the merge's filter: one min per group, then only the groups that can
#: still improve a row are read again (16: the min's inner loop stays long; faster than 8 or 32,
#: benchmarks/RESULTS.md, "Measurements behind constants")
_BLOCK = 16


def _merge(be: Backend, best_d: Array, best_i: Array, score: Array, ids: Array, k: int) -> None:
    """Fold a score block into the running top-k (best_d/best_i: (b, k), sorted, updated in place):
    the array form of ``Backend.merge_kernel``.

    Order: (score, id), the smaller id first among equal scores, -1 (padding) last: exact on
    ties, so every backend and both forms list the same neighbours (FAISS's flat search keeps
    the same ones: its heaps compare (score, id) too, and the base is read in id order).

    Once the first chunks are in, only a few scores per row can displace the row's current k-th
    best. The columns are dealt into groups of 16 (column j goes to group j mod L/16, so the
    minimum is an element-wise min of 16 contiguous slices, which vectorises); only a group
    whose minimum reaches the threshold is read again, and only its scores that reach it are
    merged: the top-k selection then runs over each row's few real hits, not over whole groups.
    score: (b, L) float32; ids: (L,) int64.
    """
    xp = be.xp
    b, width = score.shape
    main = width - width % _BLOCK
    nblk = main // _BLOCK
    thr = best_d[:, -1:]  # (b, 1) the k-th best so far
    groups = score[:, :main].reshape(b, _BLOCK, nblk)  # group g = columns g, g + nblk, ...
    hit = groups.min(axis=1) <= thr  # (b, nblk); equal to the k-th may still win on its id
    counts = xp.count_nonzero(hit, axis=1)
    widest = int(counts.max()) if b else 0  # one scalar read per block
    if widest * _BLOCK * 4 > width:  # dense (the first chunks): select directly
        cand_d, cand_i = be.topk_exact(score, k, xp.broadcast_to(ids, score.shape), sort=False)
        rows_with = None
    else:  # sparse: the scores of the hit groups that beat the threshold, and the tail's
        rows, blk = xp.nonzero(hit)
        vals = groups[rows, :, blk]  # (h, _BLOCK)
        r2, c2 = xp.nonzero(vals <= thr[rows])
        hit_rows = rows[r2]
        hit_vals = vals[r2, c2]
        hit_cols = blk[r2] + c2 * nblk
        if main < width:
            tr, tc = xp.nonzero(score[:, main:] <= thr)
            hit_rows = xp.concatenate([hit_rows, tr])
            hit_vals = xp.concatenate([hit_vals, score[tr, main + tc]])
            hit_cols = xp.concatenate([hit_cols, main + tc])
        if hit_rows.shape[0] == 0:
            return
        per_row = be.count_labels(hit_rows, b)  # (b,) hits of each row
        rows_with = xp.flatnonzero(per_row)
        deepest = int(per_row.max())
        # each hit's slot in its row: rank among the row's hits (rows need not be sorted)
        order = be.argsort_stable(hit_rows)
        first = xp.cumsum(per_row) - per_row
        slot = xp.empty_like(order)
        slot[order] = xp.arange(order.shape[0]) - first[hit_rows[order]]
        row_pos = xp.cumsum(per_row > 0) - 1  # row -> its place among rows_with
        cand_d = xp.full((rows_with.shape[0], deepest), float("inf"), dtype=xp.float32)
        cand_i = xp.full((rows_with.shape[0], deepest), -1, dtype=xp.int64)
        cand_d[row_pos[hit_rows], slot] = hit_vals
        cand_i[row_pos[hit_rows], slot] = ids[hit_cols]
    old_d = best_d if rows_with is None else best_d[rows_with]
    old_i = best_i if rows_with is None else best_i[rows_with]
    merged_d = xp.concatenate([old_d, cand_d], axis=1)
    merged_i = xp.concatenate([old_i, cand_i], axis=1)
    vals, picked = be.topk_exact(merged_d, k, merged_i)
    if rows_with is None:
        best_d[...] = vals
        best_i[...] = picked
    else:
        best_d[rows_with] = vals
        best_i[rows_with] = picked
