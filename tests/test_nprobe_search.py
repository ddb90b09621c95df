"""The inner search of recommend (gpupq.nprobe_search): the smallest nprobe meeting a target,
screening on a subset of the queries, and the queries that would decide an undecided point."""

from __future__ import annotations

from dataclasses import replace

from gpupq.memory import memory_bill
from gpupq.nprobe_search import _min_nprobe, more_queries_needed
from gpupq.settings import Build


def test_more_queries_needed():
    from gpupq.engine import PointResult
    from gpupq.metrics import Recall
    from gpupq.settings import Setting

    bill = memory_bill(1000, 8, 4, 2, 8, "l2")
    pt = PointResult(Build(4, 2), Setting(1), Recall(0.92, 0.88, 0.96, 100, 0.92), Recall(0.9, 0.8, 1, 100, 0.9),
                     bill, 10.0, 0.01)  # fmt: skip
    # half-width 0.04 over a margin of 0.02: four times the queries (the width shrinks as 1/√n)
    assert more_queries_needed(pt, 0.90) == 300
    assert more_queries_needed(pt, 0.95) is None  # the mean is below: more queries won't help


def _fake_points(recall_at, queries=1000, half=0.01, scans=None):
    """point(build, p, r, store, also) -> a PointResult whose recall at nprobe p is recall_at(p),
    with an interval of ±half; and the nprobes it was asked for. ``scans``: a list to which each
    nprobe that a scan had to be made for is appended (one not read by an earlier scan's ``also``)."""
    from gpupq.engine import PointResult
    from gpupq.metrics import Recall
    from gpupq.settings import Setting

    asked: list[int] = []
    bill = memory_bill(1000, 8, 64, 2, 8, "l2")

    read: set[int] = set()

    def point(build, p, r, store, also=(), n=queries):
        if n == queries:
            asked.append(p)
            if scans is not None and p not in read:
                scans.append(p)
                read.update(x for x in also if x < p)
            read.add(p)
        m = recall_at(p)
        rec = Recall(m, m - half, m + half, n, m)
        return PointResult(build, Setting(p, r, store), rec, rec, bill, float(p), p / 64)

    return point, asked


def test_nprobe_search_with_screening_finds_the_same_smallest_nprobe_and_skips_the_short():
    from gpupq.nprobe_search import _doublings, _min_nprobe

    build = Build(64, 2)
    recall_at = lambda p: min(0.99, 0.5 + 0.01 * p)  # noqa: E731  meets 0.8 (±0.01) from p=31 on
    point, asked = _fake_points(recall_at)
    plain = _min_nprobe(build, 0, "", 0.8, point)
    assert plain[1] == "meets" and plain[0].setting.nprobe == 31
    n_plain = len(set(asked))
    point, asked = _fake_points(recall_at)
    screened = [point(build, p, 0, "", n=250) for p in _doublings(64)]
    found = _min_nprobe(build, 0, "", 0.8, point, screened)
    assert found[1] == "meets" and found[0].setting.nprobe == 31  # the same answer
    assert len(set(asked)) <= n_plain and min(asked) >= 16  # started near it, not at 1
    # a candidate whose best on the subset is wholly below the target: nothing more is scanned
    point, asked = _fake_points(lambda p: 0.6)
    screened = [point(build, p, 0, "", n=250) for p in _doublings(64)]
    short = _min_nprobe(build, 0, "", 0.8, point, screened)
    assert short[1] == "short" and short[0] is None and asked == [] and short[3].recall.queries == 250
    # the subset said it might reach the target, all the queries say it does not: still short
    point, asked = _fake_points(lambda p: 0.79, half=0.005)
    screened = [point(build, p, 0, "", n=250) for p in _doublings(64)]
    screened = [replace(x, recall=replace(x.recall, ci95_high=0.81)) for x in screened]
    assert _min_nprobe(build, 0, "", 0.8, point, screened)[1] == "short"
    assert _doublings(64) == [1, 2, 4, 8, 16, 32, 64] and _doublings(48) == [1, 2, 4, 8, 16, 32, 48]


def test_bisection_stops_within_a_sixteenth_above_32_and_is_exact_below():
    from gpupq.nprobe_search import NPROBE_RESOLUTION, _min_nprobe

    for smallest, nlist in [(700, 1024), (300, 512), (29, 64), (5, 64)]:
        # meets 0.8 (±0.001) from `smallest` on; below it, well short
        point, asked = _fake_points(lambda p, s=smallest: 0.9 if p >= s else 0.5, half=0.001)
        found = _min_nprobe(Build(nlist, 2), 0, "", 0.8, point)
        assert found[1] == "meets"
        got = found[0].setting.nprobe
        failing = max(p for p in asked if p < smallest)
        assert smallest <= got and got - failing <= max(1, failing // NPROBE_RESOLUTION)
        if smallest < 32:
            assert got == smallest
        assert got <= smallest * (1 + 1 / NPROBE_RESOLUTION)
    # 512 to 1,024: four steps after the doublings, not nine
    scans: list[int] = []
    point, asked = _fake_points(lambda p: 0.9 if p >= 700 else 0.5, half=0.001, scans=scans)
    _min_nprobe(Build(1024, 2), 0, "", 0.8, point)
    assert len([p for p in set(asked) if 512 < p < 1024]) <= 4
    # and no scan of their own: the scan at 1,024 read them (the doublings' scans only)
    assert scans == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]


def test_bisection_points_are_every_step_a_bisection_can_take():
    """Whatever the recall curve, every nprobe the bisection visits between the doubling that
    failed and the one that met is among bisection_points: the scan at the upper end read it."""
    from gpupq.nprobe_search import bisection_points

    assert bisection_points(1, 2) == [] and bisection_points(0, 1) == []
    assert bisection_points(16, 32) == list(range(17, 32))  # exact below 32: every nprobe
    assert len(bisection_points(512, 1024)) == 15  # to within 1/16: four levels
    for smallest in range(257, 513, 7):
        scans: list[int] = []
        point, asked = _fake_points(lambda p, s=smallest: 0.9 if p >= s else 0.5, half=0.001, scans=scans)
        found = _min_nprobe(Build(512, 2), 0, "", 0.8, point)
        assert found[1] == "meets"
        inside = [p for p in asked if 256 < p < 512]
        assert set(inside) <= set(bisection_points(256, 512)), smallest
        assert scans == [1, 2, 4, 8, 16, 32, 64, 128, 256, 512], smallest
