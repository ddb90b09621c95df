"""The plan of an IVF list scan, made on the host before any device work: which lists are
scanned for which queries, cut into items and chunks of similar shape.

:meth:`gpupq.ivf.IVFPQIndex.scan` scores each probed list once for all the queries that probe it,
many lists per batched product. A list probed by many queries is cut into items of at most
max(:data:`SCAN_WIDTH`, length / :data:`SCAN_DEPTH_PER_QUERY`) of them; items are sorted by list
length and cut into chunks of about a byte budget. A chunk of G items is one batched product
(G, width, d) × (G, d, depth), padded only to its own busiest item and longest list, so the work
is the vectors actually in the probed lists, not nprobe × the longest list.

Everything here is host numpy (the plan's shapes decide the device arrays' shapes).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

#: Most queries one item of the scan holds: 16, or one per 8 vectors of a longer list. Narrow
#: items pad little; wide ones decode a list fewer times and make larger products: 16 was best on
#: short lists (~95 vectors) and no cap on long ones (~980), and the rule matches both
#: (benchmarks/RESULTS.md, "Measurements behind constants").
SCAN_WIDTH = 16
SCAN_DEPTH_PER_QUERY = 8


@dataclass
class ChunkPlan:
    """One chunk's index arrays (host): pair (G, width) int64 (query, probe-rank) pair numbers,
    npairs for a padding slot; start, length (G,) int64 each item's first stored row and its
    number of rows; keep (s,) int64 the slots that are not padding, in (G·width) order; dest (s,)
    int64 their pair numbers. The per-code arrays :attr:`rows` and :attr:`valid` are made only
    when asked for (the GPU's table scan derives them from start and length on the device)."""

    pair: np.ndarray
    start: np.ndarray
    length: np.ndarray
    keep: np.ndarray
    dest: np.ndarray

    @property
    def shape(self) -> tuple[int, int, int]:
        """(G, width, depth)."""
        return self.pair.shape[0], self.pair.shape[1], int(self.length.max())

    @cached_property
    def valid(self) -> np.ndarray:
        """(G, depth) bool, False for padding."""
        return np.arange(self.shape[2]) < self.length[:, None]

    @cached_property
    def rows(self) -> np.ndarray:
        """(G, depth) int64 stored rows, 0 for padding."""
        return np.where(self.valid, self.start[:, None] + np.arange(self.shape[2]), 0)


@dataclass
class ScanPlan:
    """Items sorted by list length, each (I,) int64: ``first`` its first entry in ``order`` (the
    (query, probe-rank) pairs grouped by list), ``width`` its queries, ``depth`` its list's length,
    ``start`` the list's first stored row; ``chunks`` [start, stop) ranges of items."""

    npairs: int
    order: np.ndarray
    first: np.ndarray
    width: np.ndarray
    depth: np.ndarray
    start: np.ndarray
    chunks: list[tuple[int, int]]

    def chunk(self, bounds: tuple[int, int]) -> ChunkPlan:
        """The index arrays of the chunk of items ``bounds``."""
        sel = slice(*bounds)
        n_q = self.width[sel]
        slot = np.arange(int(n_q.max()))
        order_ext = np.r_[self.order, self.npairs]  # the last entry: the padding pair
        pair = order_ext[np.where(slot < n_q[:, None], self.first[sel][:, None] + slot, len(self.order))]
        keep = np.flatnonzero(pair.ravel() < self.npairs)
        return ChunkPlan(pair, self.start[sel], self.depth[sel], keep, pair.ravel()[keep])


def plan_scan(probes: np.ndarray, list_sizes: np.ndarray, offsets: np.ndarray, d: int, m: int, budget: int) -> ScanPlan:
    """The plan for probes: (nq, nprobe) int64 lists per query; list_sizes: (nlist,) int64;
    offsets: (nlist + 1,) int64 each list's first stored row; d, m: the index's dimension and
    sub-quantizers (a chunk's cost); budget: bytes a chunk may take."""
    nq, nprobe = probes.shape
    flat = probes.ravel()
    order = np.argsort(flat, kind="stable")  # pairs grouped by list, query order within
    counts = np.bincount(flat, minlength=len(list_sizes))
    first = np.cumsum(counts) - counts
    lists = np.flatnonzero((counts > 0) & (list_sizes > 0))
    first, counts = first[lists], counts[lists]
    # items sorted by list length: a chunk's items have similar shapes and pad little (about half
    # the padding of sorting whole lists, as queries per list vary from 1 to hundreds)
    cap = np.maximum(SCAN_WIDTH, list_sizes[lists] // SCAN_DEPTH_PER_QUERY)  # (L,)
    per_list = -(-counts // cap)
    item_list = np.repeat(np.arange(len(lists)), per_list)
    part = np.arange(len(item_list)) - np.repeat(np.cumsum(per_list) - per_list, per_list)
    item_cap = cap[item_list]
    item_first = first[item_list] + part * item_cap
    item_width = np.minimum(counts[item_list] - part * item_cap, item_cap)
    item_depth = list_sizes[lists][item_list]
    by_depth = np.argsort(item_depth, kind="stable")
    item_list, item_first, item_width, item_depth = (
        a[by_depth] for a in (item_list, item_first, item_width, item_depth)
    )
    item_start = offsets[lists][item_list]
    return ScanPlan(
        npairs=nq * nprobe,
        order=order,
        first=item_first,
        width=item_width,
        depth=item_depth,
        start=item_start,
        chunks=chunks_within(item_width, item_depth, d, m, budget),
    )


def chunks_within(queries: np.ndarray, lengths: np.ndarray, d: int, m: int, budget: int) -> list[tuple[int, int]]:
    """Cut items, sorted by length, into chunks.

    queries, lengths: (L,) int64 per item (queries in it, codes in its list), lengths ascending.
    A chunk of G items pads to its busiest item (width) and its longest list (depth); it costs
    about G · (width·depth·24 + depth·(d·4 + m·8) + width·d·4) bytes (scores, selection keys
    and positions; residuals and code indices; queries). Returns [start, stop) pairs, each
    under ``budget`` unless one item alone exceeds it.

    Greedy, as a loop over the items would cut them, but in array steps (a plan is made for
    every query batch, ahead of the device's work): from each chunk's start, the cost of ending
    at each later item (the running widest item, the length ascending) is computed over a window
    that doubles until the budget is passed; the cost only grows along it, so the first item
    past the budget ends the chunk.
    """
    n = len(lengths)
    queries = np.asarray(queries, dtype=np.int64)
    lengths = np.asarray(lengths, dtype=np.int64)
    out: list[tuple[int, int]] = []
    start, window = 0, 64
    while start < n:
        stop = n
        while True:
            end = min(n, start + window)
            w = np.maximum.accumulate(queries[start:end])
            depth = lengths[start:end]
            count = np.arange(1, end - start + 1, dtype=np.int64)
            cost = count * (w * depth * 24 + depth * (4 * d + 8 * m) + w * d * 4)
            over = np.flatnonzero(cost[1:] > budget)  # an item alone is a chunk, whatever it costs
            if over.size:
                stop = start + 1 + int(over[0])
                break
            if end == n:
                break
            window *= 2
        out.append((start, stop))
        window = max(64, 2 * (stop - start))
        start = stop
    return out
