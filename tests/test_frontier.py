"""The recommender's search (gpupq.frontier): it finds the same cheapest answers as evaluating
every candidate, trains far fewer, and each pruning rule rules out what it says and no more."""

from __future__ import annotations

import itertools

from gpupq.frontier import (
    BELOW_SHORT,
    BELOW_UNDECIDED,
    BEYOND,
    DEARER,
    FEWER_LISTS_SHORT,
    FEWER_LISTS_UNDECIDED,
    Frontier,
    Option,
)
from gpupq.settings import Build

MS = [4, 6, 8, 12, 16, 24, 32, 48, 64, 96]
NBITS = [4, 5, 6, 7, 8]
STORES = {"": 0, "sq8": 400}


def _memory(b: Build, store: str) -> int:
    return b.m * b.nbits // 8 * 10 + 8 * 10 + b.nlist // 16 + STORES[store] * 10


def _options() -> list[Option]:
    return [
        Option(Build(nl, m, nb), s, _memory(Build(nl, m, nb), s))
        for nl, m, nb, s in itertools.product([64, 256], MS, NBITS, STORES)
    ]


def _recall(b: Build, store: str) -> float:
    """Monotone in m and in nbits within a family; a store lifts it; more lists lift it a little
    (finer residuals: the rule ``fewer lists, no larger code than one that fell short``)."""
    bits = b.m * b.nbits
    return min(1.0, bits / 500 + (0.35 if store else 0) + (0.03 if b.nlist == 256 else 0))


def _run(target: float, within: float | None = None) -> tuple[Frontier, int]:
    search = Frontier(_options(), answers=3, within=within)
    trained = 0
    while (step := search.next_build()) is not None:
        build, stores = step
        trained += 1
        for s in stores:
            search.record(build, s, "meets" if _recall(build, s) >= target else "short")
    return search, trained


def _cheapest(target: float) -> list[int]:
    """The three cheapest builds that meet, each at its cheapest option: by brute force."""
    best: dict[Build, int] = {}
    for o in _options():
        if _recall(o.build, o.store) >= target:
            best[o.build] = min(best.get(o.build, o.memory_bytes), o.memory_bytes)
    return sorted(best.values())[:3]


def test_search_finds_what_evaluating_everything_finds_with_far_fewer_builds():
    for target in (0.3, 0.6, 0.9, 0.99):
        search, trained = _run(target)
        met: dict[Build, int] = {}
        for o in search.options:
            if search.verdicts.get((o.build, o.store)) == "meets":
                met[o.build] = min(met.get(o.build, o.memory_bytes), o.memory_bytes)
        assert sorted(met.values())[:3] == _cheapest(target), target
        builds = len({o.build for o in search.options})
        assert trained <= builds // 3, (target, trained, builds)
        summary = search.summary()
        assert summary["open"] == 0
        assert summary["evaluated"] + sum(search.pruned.values()) == summary["candidates"]


def test_a_short_build_rules_out_smaller_codes_of_its_family_only():
    opts = _options()
    search = Frontier(opts, answers=3)
    search.record(Build(64, 24, 6), "", "short")
    search._prune()
    open_ = {(o.build, o.store) for o in search.open_options()}
    for b, s in [(Build(64, 16, 6), ""), (Build(64, 24, 4), ""), (Build(64, 4, 4), "")]:
        assert (b, s) not in open_
    for b, s in [
        (Build(64, 32, 4), ""),  # more sub-quantizers, fewer bits: not comparable
        (Build(64, 16, 7), ""),  # more bits: not comparable
        (Build(64, 16, 6), "sq8"),  # another store
        (Build(256, 16, 6), ""),  # another nlist
    ]:
        assert (b, s) in open_, b
    assert search.pruned[BELOW_SHORT] == len(opts) - 1 - len(open_)


def test_a_short_build_rules_out_no_larger_codes_at_fewer_lists_and_not_at_more():
    opts = _options()
    search = Frontier(opts, answers=3)
    search.record(Build(256, 24, 6), "", "short")
    search._prune()
    open_ = {(o.build, o.store) for o in search.open_options()}
    for b in [Build(64, 24, 6), Build(64, 16, 6), Build(64, 24, 4), Build(256, 16, 6)]:
        assert (b, "") not in open_, b
    for b, s in [(Build(64, 32, 6), ""), (Build(64, 24, 7), ""), (Build(64, 16, 6), "sq8")]:
        assert (b, s) in open_, b
    fewer = sum(1 for o in opts if o.build.nlist == 64 and o.build.m <= 24 and o.build.nbits <= 6 and not o.store)
    assert search.pruned[FEWER_LISTS_SHORT] == fewer
    # the other way: short at 64 lists says nothing of 256
    search = Frontier(opts, answers=3)
    search.record(Build(64, 24, 6), "", "short")
    search._prune()
    assert (Build(256, 24, 6), "") in {(o.build, o.store) for o in search.open_options()}
    assert FEWER_LISTS_SHORT not in search.pruned
    search = Frontier(opts, answers=3)
    search.record(Build(256, 24, 6), "", "undecided")
    search._prune()
    assert search.pruned[FEWER_LISTS_UNDECIDED] == fewer


def test_an_undecided_build_rules_out_smaller_codes_as_such():
    search = Frontier(_options(), answers=3)
    search.record(Build(64, 24, 6), "", "undecided")
    search._prune()
    assert search.pruned[BELOW_UNDECIDED] > 0 and BELOW_SHORT not in search.pruned


def test_dearer_than_three_answers_and_dearer_stores_of_an_answer_are_never_trained():
    opts = _options()
    search = Frontier(opts, answers=3)
    met = [Build(64, 16, 8), Build(64, 24, 6), Build(256, 32, 4)]
    for b in met:
        search.record(b, "", "meets")
    bound = sorted(_memory(b, "") for b in met)[2]
    assert search.bound == bound
    search._prune()
    assert all(o.memory_bytes < bound for o in search.open_options())
    assert search.pruned[DEARER] == sum(1 for o in opts if o.memory_bytes >= bound and (o.build, o.store) not in
                                        {(b, "") for b in met})  # fmt: skip


def test_runners_up_are_sought_within_their_reach_and_the_answer_is_unchanged():
    """With ``within``, the search finds the same cheapest answer, the runners-up it finds are
    the cheapest within that multiple of it, and it trains fewer builds."""
    for target in (0.3, 0.6, 0.9):
        _, trained_full = _run(target)
        near, trained_near = _run(target, within=1.25)
        cheapest = _cheapest(target)
        best: dict[Build, int] = {}
        for o in near.options:
            if near.verdicts.get((o.build, o.store)) == "meets":
                best[o.build] = min(best.get(o.build, o.memory_bytes), o.memory_bytes)
        met = sorted(best.values())
        assert met[0] == cheapest[0], target
        reach = 1.25 * cheapest[0]
        assert [m for m in met if m <= reach][:3] == [m for m in cheapest if m <= reach], target
        assert trained_near <= trained_full and near.summary()["open"] == 0
        if near.pruned[BEYOND]:
            assert trained_near < trained_full, target
    assert any(_run(t, within=1.25)[0].pruned[BEYOND] for t in (0.3, 0.6, 0.9))


def test_next_build_bisects_the_cheapest_row_and_names_its_open_stores():
    search = Frontier(_options(), answers=3)
    build, stores = search.next_build()
    # the cheapest open candidate is IVF64 m=4 at 4 bits: its row (nlist 64, 4 bits, no store)
    # has ten m values, and the median is tried first, at the largest nlist (256)
    assert (build.nlist, build.nbits) == (256, 4) and build.m == MS[len(MS) // 2]
    assert sorted(stores) == ["", "sq8"]
