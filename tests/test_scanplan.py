"""The scan plan: every probed (query, list) pair scanned once, in chunks within the budget."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from gpupq.scanplan import SCAN_WIDTH, chunks_within, plan_scan


def test_scan_chunks_cover_every_item_once_within_budget():
    """The plan cuts items (sorted by length) into consecutive chunks that cover each item once,
    each within the byte budget unless a single item exceeds it."""
    rng = np.random.default_rng(1)
    width = rng.integers(1, 17, size=500)
    depth = np.sort(rng.integers(1, 3000, size=500))
    d, m, budget = 64, 8, 2 << 20
    chunks = chunks_within(width, depth, d, m, budget)
    assert chunks[0][0] == 0 and chunks[-1][1] == 500
    assert all(a[1] == b[0] for a, b in itertools.pairwise(chunks))
    for a, b in chunks:
        w, dp = int(width[a:b].max()), int(depth[a:b].max())
        cost = (b - a) * (w * dp * 24 + dp * (4 * d + 8 * m) + w * d * 4)
        assert cost <= budget or b - a == 1
    assert chunks_within(width[:0], depth[:0], d, m, budget) == []


def test_plan_scans_every_probed_pair_once_over_its_own_list():
    """Each (query, probe rank) pair whose list is not empty lands in exactly one chunk slot,
    reading exactly its list's rows; padding never reaches a real pair."""
    rng = np.random.default_rng(3)
    nlist, nq, nprobe = 40, 120, 6
    sizes = rng.integers(0, 300, size=nlist)
    sizes[:3] = [0, 1, 2000]  # an empty list, a tiny one, one long enough for several items a query group
    offsets = np.r_[0, np.cumsum(sizes)]
    probes = np.stack([rng.choice(nlist, nprobe, replace=False) for _ in range(nq)])
    probes[:50, 0] = 2  # many queries on the long list: cut into items of at most its cap
    plan = plan_scan(probes, sizes, offsets, d=32, m=8, budget=256 << 10)
    seen = np.zeros(nq * nprobe, dtype=int)
    for bounds in plan.chunks:
        part = plan.chunk(bounds)
        g, width, _ = part.shape
        assert width <= max(SCAN_WIDTH, sizes.max() // 8)
        pairs = part.pair.ravel()[part.keep]
        np.testing.assert_array_equal(pairs, part.dest)
        seen[pairs] += 1
        for i in range(g):
            for p in part.pair[i][part.pair[i] < plan.npairs]:
                lst = probes.ravel()[p]
                rows = part.rows[i][part.valid[i]]
                np.testing.assert_array_equal(rows, np.arange(offsets[lst], offsets[lst + 1]))
    expect = (sizes[probes.ravel()] > 0).astype(int)
    np.testing.assert_array_equal(seen, expect)
    assert len(plan.chunks) > 1


def _chunks_by_loop(queries, lengths, d, m, budget):
    """The greedy cut item by item: what chunks_within's array steps must give."""
    out, start, width = [], 0, 0
    for i in range(len(lengths)):
        w = max(width, int(queries[i]))
        depth = int(lengths[i])
        if (i + 1 - start) * (w * depth * 24 + depth * (4 * d + 8 * m) + w * d * 4) > budget and i > start:
            out.append((start, i))
            start, w = i, int(queries[i])
        width = w
    if len(lengths) > start:
        out.append((start, len(lengths)))
    return out


@pytest.mark.parametrize("budget", [1 << 10, 64 << 10, 2 << 20, 16 << 20, 2 << 30])
def test_chunks_within_cuts_where_the_greedy_loop_cuts(budget):
    """Chunks of one item each (a tiny budget), a few hundred, or one: the same as item by item."""
    rng = np.random.default_rng(budget % 97)
    for n in (1, 5, 63, 64, 65, 700, 4096):
        width = rng.integers(1, 40, size=n)
        depth = np.sort(rng.integers(1, 5000, size=n))
        assert chunks_within(width, depth, 96, 12, budget) == _chunks_by_loop(width, depth, 96, 12, budget), n
