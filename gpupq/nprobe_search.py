"""The smallest nprobe at which a build meets a recall target, and how many queries would decide
a point whose interval straddles it (``recommend``'s inner search).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from .engine import PointResult
from .metrics import t975
from .projection import fit_speed, projected_qps
from .settings import Build

#: the bisection for the smallest nprobe stops once the bracket is within 1/16 of its lower end:
#: between 512 and 1,024 that is 4 scans of every query rather than 9, and an nprobe at most 6%
#: above the smallest (whose recall and speed differ by less than the points' own noise)
NPROBE_RESOLUTION = 16
#: queries that screen each candidate before it is searched on all of them (see _min_nprobe)
SCREEN_QUERIES = 250


def more_queries_needed(point: PointResult, target: float) -> int | None:
    """Queries to add so the 95% interval's lower end clears ``target``, if the mean and spread
    stay put; None when the mean itself is below the target. The interval
    (:func:`gpupq.metrics._interval`) must clear it on both counts: the t interval's half-width
    t·sd/√n, and the rule of three's reach mean·3/n."""
    r = point.recall
    margin = r.mean - target
    if margin <= 0:
        return None
    need = 3.0 * r.mean / margin
    if r.sd is not None:
        need = max(need, (t975(max(1, math.ceil(need) - 1)) * r.sd / margin) ** 2)
    else:  # a Recall made without its spread: read the half-width off the interval
        need = max(need, r.queries * ((r.mean - r.ci95_low) / margin) ** 2)
    return max(1, math.ceil(need - r.queries))


def _doublings(nlist: int) -> list[int]:
    """1, 2, 4, … up to nlist, and nlist."""
    out = [1 << e for e in range(nlist.bit_length()) if 1 << e < nlist]
    return [*out, nlist]


def bisection_points(lo: int, hi: int) -> list[int]:
    """Every nprobe the bisection of :func:`_min_nprobe` can visit between ``lo`` (fails, or 0)
    and ``hi`` (meets), ascending: about 15 at most. A scan at ``hi`` reads them all (each is
    a prefix of its probe ranks), so the bisection scans once rather than once a step."""
    out, stack = set(), [(lo, hi)]
    while stack:
        a, b = stack.pop()
        if b - a > max(1, a // NPROBE_RESOLUTION):
            mid = (a + b) // 2
            out.add(mid)
            stack += [(a, mid), (mid, b)]
    return sorted(out)


def screen_queries(n_queries: int) -> int | None:
    """How many of the queries screen a candidate (:data:`SCREEN_QUERIES`), or None when that
    would be nearly all of them (screening would save nothing)."""
    return SCREEN_QUERIES if n_queries >= 2 * SCREEN_QUERIES else None


def _min_nprobe(
    build: Build,
    r: int,
    store: str,
    target: float,
    point: Callable[..., PointResult],
    screened: list[PointResult] | None = None,
) -> tuple[PointResult | None, str, int | None, PointResult]:
    """The smallest nprobe of ``build`` at depth r meeting ``target`` by its interval's lower end.

    screened: the candidate's recall on a subset of the queries at nprobe 1, 2, 4, … nlist (one
    scan). When even its best has an interval wholly below the target, the candidate falls short
    and nothing more is scanned; otherwise the search on every query starts at the first
    nprobe whose subset mean met the target. Without it, it starts at 1. From the start: halving
    while it meets, or doubling until it does, then bisection between the last two, to within
    1/:data:`NPROBE_RESOLUTION` of the failing end (exact below 32).

    ``point(build, p, r, store, also)`` measures nprobe p; ``also``: the nprobes a bisection
    below p could visit (:func:`bisection_points`), which the same scan can read for later.

    Returns (point or None, "meets" | "undecided" | "short", queries to decide, best seen).
    """
    nlist = build.nlist
    start = 1
    if screened:
        top = max(screened, key=lambda x: x.recall.mean)
        if top.recall.ci95_high < target:
            return None, "short", None, top
        start = next((x.setting.nprobe for x in screened if x.recall.mean >= target), nlist)
    best: PointResult | None = None
    undecided: PointResult | None = None

    def look(p: int, below: int) -> bool:
        """Does nprobe p meet the target? ``below``: the other end of the bracket a bisection
        would search if it does."""
        nonlocal best, undecided
        pt = point(build, p, r, store, bisection_points(below, p))
        best = pt if best is None or pt.recall.mean > best.recall.mean else best
        if pt.recall.ci95_low >= target:
            return True
        if pt.recall.mean >= target and (undecided is None or p < undecided.setting.nprobe):
            undecided = pt
        return False

    if look(start, start // 2):
        lo, hi = start // 2, start  # lo: not yet known to fail (0: nothing below)
        while lo >= 1 and look(lo, lo // 2):
            hi, lo = lo, lo // 2
    else:
        lo, p = start, start
        while True:
            if p >= nlist:
                assert best is not None
                if undecided is not None:
                    return undecided, "undecided", more_queries_needed(undecided, target), best
                return None, "short", None, best
            lo, p = p, min(2 * p, nlist)
            if look(p, lo):
                break
        hi = p
    while hi - lo > max(1, lo // NPROBE_RESOLUTION):  # lo fails (or is 0), hi meets
        mid = (lo + hi) // 2
        if look(mid, lo):
            hi = mid
        else:
            lo = mid
    chosen = point(build, hi, r, store)
    assert best is not None
    return chosen, "meets", None, best


def companion(pt: PointResult, point: Callable[[Build, int, int, str], PointResult]) -> PointResult | None:
    """The same build and depth at another nprobe (twice, or half at the last list), timed beside
    ``pt`` so the cost of a code scanned can be told from the fixed cost of a query."""
    p, nlist = pt.setting.nprobe, pt.build.nlist
    other = 2 * p if 2 * p <= nlist else p // 2
    if other < 1 or other == p:
        return None
    return point(pt.build, other, pt.setting.rerank, pt.setting.store)


def project_point_qps(
    pt: PointResult, comp: PointResult | None, n: int, n_total: int, d: int, rate: float
) -> float | None:
    """Queries/s of ``pt`` at n_total from its timing and its companion's (:func:`gpupq.projection.fit_speed`)."""
    timed = [(x.scanned_per_query, 1.0 / x.queries_per_s) for x in (pt, comp) if x is not None and x.queries_per_s]
    if not timed:
        return None
    fixed, per_code = fit_speed(timed)
    return projected_qps(fixed, per_code, pt.scanned_per_query, n, n_total, pt.build.nlist, d, rate)
