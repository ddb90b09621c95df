"""Recommend: the cheapest configuration that meets the target (and still does with more
queries), the memory budget, and how many queries would decide an undecided point."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.estimate import EstimateConfig, estimate
from gpupq.grid import Grid
from gpupq.io import make_synthetic
from gpupq.memory import memory_bill
from gpupq.nprobe_search import more_queries_needed
from gpupq.recommend import Target, recommend
from gpupq.session import RunConfig, open_session
from gpupq.settings import Build

from .helpers import _session


def test_recommendation_meets_its_target_when_rerun_with_more_queries():
    ds = make_synthetic(8000, 32, 0)
    cfg = RunConfig(k=10, queries=200, timing=False)
    session = open_session(ds, cfg, "numpy")
    rec = recommend(session, Target(0.85, rerank=False), cfg, Grid(nlist=[32, 64], m=[8, 16], nbits=[8]))
    session.close()
    assert rec.answers, rec.advice
    best = rec.answers[0]
    p = best.point
    assert p.recall.ci95_low >= 0.85
    # cheapest first, and nothing cheaper met it
    mems = [f.candidate.memory_bytes for f in rec.answers]
    assert mems == sorted(mems)
    # every candidate is accounted for: evaluated, or ruled out by a stated rule
    cov = rec.coverage
    assert cov["open"] == 0 and sum(v for key, v in cov.items() if key not in ("candidates", "open")) == 4
    nb = rec.dataset["n_base"]
    bills = {(nl, m): memory_bill(nb, 32, nl, m, 8, "l2").index_serialized for nl in (32, 64) for m in (8, 16)}
    assert sorted(f.candidate.memory_bytes for f in rec.findings) == sorted(
        bills[(f.candidate.build.nlist, f.candidate.build.m)] for f in rec.findings
    )  # billed without FAISS's precomputed table, which the answer says to skip
    assert all(f.verdict != "meets" for f in rec.findings if f.candidate.memory_bytes < best.candidate.memory_bytes)
    # nprobe is the smallest that meets it: one less does not (by the interval's lower end)
    if p.setting.nprobe > 1:
        lower = [x for x in rec.evaluated if x.build == p.build and x.setting.nprobe == p.setting.nprobe - 1]
        assert lower and lower[0].recall.ci95_low < 0.85
    again = estimate(
        ds,
        EstimateConfig(m=p.build.m, nlist=p.build.nlist, nprobe=p.setting.nprobe, rerank=0, queries=600, seed=0),
        "numpy",
    ).results[0]
    assert again.recall.mean >= 0.85


def test_recommend_respects_the_memory_budget_and_says_what_to_relax():
    _ds, cfg, session = _session(n=6000, d=32)
    grid = Grid(nlist=[32], m=[4, 8, 16], nbits=[8])
    budget = memory_bill(5880, 32, 32, 8, 8, "l2").index_serialized  # room for m <= 8 without re-ranking
    rec = recommend(session, Target(0.99, memory_budget=budget, rerank=False), cfg, grid)
    assert rec.over_budget == 1
    assert all(f.candidate.memory_bytes <= budget for f in rec.findings[:2])
    assert all(a.candidate.memory_bytes <= budget for a in rec.answers)
    if not rec.answers:
        assert any("--memory-budget" in tip or "closest" in tip for tip in rec.advice)
    data = json.loads(json.dumps(rec.to_dict()))
    assert data["target"]["memory_budget"] == budget


# ---------------------------------------------------------------------------------- issue 15 fixes
def test_default_rerank_candidates_are_ordered_and_budgeted_with_their_store():
    """Without --n-total, a candidate that re-ranks costs its index plus the store: ordering or
    budgeting by the index alone would call a 20x dearer configuration cheap."""
    _ds, cfg, session = _session(n=6000, d=32)
    with session:
        grid = Grid(nlist=[32], m=[8], nbits=[8], rerank=[0, 50], stores=["fp16"])
        nb = session.split.n_base
        index = memory_bill(nb, 32, 32, 8, 8, "l2").index_serialized
        with_store = index + nb * 32 * 2  # fp16 store
        rec = recommend(session, Target(0.999), cfg, grid)
        mems = [f.candidate.memory_bytes for f in rec.findings]
        assert mems == [index, with_store]
        assert [f.candidate.store for f in rec.findings] == ["", "fp16"]
        rec = recommend(session, Target(0.999, memory_budget=with_store - 1), cfg, grid)
        assert rec.over_budget == 1 and [f.candidate.store for f in rec.findings if not f.over_budget] == [""]


def test_at_n_total_names_the_nprobe_that_is_deployed():
    """answers[].at_n_total.nprobe is the picked point's nprobe scaled to N_total, as the FAISS
    and cuVS strings say, not the nprobe 1 the candidate was billed with."""
    ds = make_synthetic(6000, 32, 0)
    cfg = RunConfig(k=10, queries=100, timing=False, n_total=10_000_000)
    with open_session(ds, cfg, "numpy") as session:
        rec = recommend(session, Target(0.8, rerank=False), cfg, Grid(nlist=[32], m=[8, 16], nbits=[8]))
    out = rec.to_dict()
    assert out["answers"]
    for answer in out["answers"]:
        assert answer["at_n_total"]["nprobe"] == answer["deploy"]["faiss_nprobe"]
        assert answer["deploy"]["faiss_nprobe"] == answer["deploy"]["cuvs_ivf_pq"]["search_params"]["n_probes"]
        scale = answer["at_n_total"]["nlist"] / answer["point"]["nlist"]
        assert answer["at_n_total"]["nprobe"] == max(1, round(answer["point"]["nprobe"] * scale))
        assert answer["at_n_total"]["nprobe"] > answer["point"]["nprobe"]


def test_few_perfect_queries_never_meet_a_target():
    """recommend --queries 10 on an easy set: every query perfect, yet ten queries cannot show a
    recall of 0.9 (the interval reaches 0.7), so the verdict is undecided, not meets."""
    ds = make_synthetic(6000, 32, 0)
    cfg = RunConfig(k=10, queries=10, timing=False)
    grid = Grid(nlist=[16], m=[16], nbits=[8], rerank=[200], stores=["fp32"])  # exact re-ranking: every query perfect
    with open_session(ds, cfg, "numpy") as session:
        rec = recommend(session, Target(0.9), cfg, grid)
    assert not rec.answers
    reranked = rec.findings[-1]
    assert reranked.candidate.store == "fp32" and reranked.verdict == "undecided"
    assert reranked.point.recall.mean >= 0.9 > reranked.point.recall.ci95_low
    assert reranked.best.recall.mean == 1.0 and reranked.best.recall.ci95_low == pytest.approx(0.7)
    assert reranked.more_queries >= 20  # 3·mean/(mean − 0.9) queries in all, 30 or more
    assert any("more queries" in tip for tip in rec.advice)


def test_interrupted_recommend_keeps_the_evidence_and_says_so(monkeypatch):
    import gpupq.recommend as rec_mod

    _ds, cfg, session = _session(n=6000, d=32)
    calls = []
    real = rec_mod._min_nprobe

    def stop_second(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(rec_mod, "_min_nprobe", stop_second)
    with session:
        rec = recommend(session, Target(0.999, rerank=False), cfg, Grid(nlist=[32], m=[4, 8, 16], nbits=[8]))
    assert rec.interrupted and rec.to_dict()["interrupted"] is True
    assert len(rec.findings) == 1  # the first candidate, whole; the second was cut short
    assert len(rec.advice) == 1 and rec.advice[0].startswith("interrupted")
    assert not any("--memory-budget" in tip for tip in rec.advice)  # none was given


def test_advice_never_contradicts_itself(monkeypatch):
    """Nothing within the budget meets the target, something over it does: the advice names the
    budget and does not also claim that nothing evaluated meets the target."""
    _ds, cfg, session = _session(n=6000, d=32)
    with session:
        nb = session.split.n_base
        budget = memory_bill(nb, 32, 32, 4, 8, "l2").index_serialized
        rec = recommend(
            session, Target(0.6, memory_budget=budget, rerank=False), cfg, Grid(nlist=[32], m=[4, 16], nbits=[8])
        )
    assert not rec.answers
    assert len(rec.advice) == 1 and "relax --memory-budget to at least" in rec.advice[0], rec.advice
    assert [f.over_budget for f in rec.findings] == [False, True]


def test_slow_advice_names_the_budget_only_when_one_binds():
    _ds, cfg, session = _session(n=6000, d=32)
    with session:
        rec = recommend(session, Target(0.5, min_qps=1e12, rerank=False), cfg, Grid(nlist=[32], m=[8], nbits=[8]))
    assert [f.verdict for f in rec.findings] == ["slow"]
    assert rec.advice[-1].endswith("relax --min-qps")


def test_a_scale_curve_that_cannot_be_measured_keeps_the_recommendation():
    """Too few vectors for two subsample sizes: a warning, and the answer still stands."""
    ds = make_synthetic(400, 16, 0)  # a base of 350: one subsample of 256 vectors or more
    cfg = RunConfig(k=10, queries=50, timing=False)
    with open_session(ds, cfg, "numpy") as session:
        rec = recommend(session, Target(0.3, rerank=False), cfg, Grid(nlist=[4], m=[8], nbits=[8]), scale_curve=True)
    assert rec.answers and rec.scale_curve is None
    assert any(w.startswith("--scale-curve not measured") for w in rec.warnings)


def test_a_cheaper_undecided_candidate_is_the_headline():
    """With 40 queries IVF16,PQ16 (no store) has recall 0.81 whose interval straddles 0.78, and
    the answer is a dearer re-ranking one: the report leads with the cheaper one and the queries
    that would decide it, so the answer does not silently depend on --queries."""
    from rich.console import Console

    from gpupq.recommend_report import render_recommendation

    ds = make_synthetic(6000, 32, 0)
    cfg = RunConfig(k=10, queries=40, timing=False)
    with open_session(ds, cfg, "numpy") as session:
        grid = Grid(nlist=[16], m=[4, 8, 16], nbits=[8], rerank=[0, 100], stores=["fp32"])
        rec = recommend(session, Target(0.78), cfg, grid)
    cheaper = rec.cheaper_undecided()
    assert rec.answers and cheaper and cheaper[0].candidate.label == "IVF16,PQ16"
    assert cheaper[0].candidate.memory_bytes < rec.answers[0].candidate.memory_bytes
    out = rec.to_dict()
    assert [f["candidate"] for f in out["cheaper_undecided"]] == ["IVF16,PQ16"]
    console = Console(width=100, record=True)
    console.print(render_recommendation(rec, width=100))
    lines = console.export_text().splitlines()
    headline = next(i for i, x in enumerate(lines) if x.startswith("Undecided, and cheaper than the answer"))
    table = next(i for i, x in enumerate(lines) if x.startswith("Cheapest configurations"))
    assert headline < table and "more queries" in " ".join(lines[headline : headline + 3])


def test_the_default_space_holds_the_cheap_corners():
    """Every m dividing d, 4 to 8 bits, nlist from √N: the corners (4-bit codes, m that are not
    powers of two, nlist near √N) that a narrow default misses are all candidates."""
    from gpupq.space import in_code_range, space_builds, space_codes, space_nlist

    assert space_nlist(59_000)[0] == [256, 512, 1024]  # √N = 243 … 16√N, at most N/39 = 1,512
    ms, nbits, _ = space_codes(384)
    assert {24, 48, 96, 192, 384} <= set(ms) and nbits == [4, 5, 6, 7, 8]
    grid = Grid(nlist=[256], m=ms, nbits=nbits, code_range=True)
    builds, left = space_builds(grid, 384, "faiss-cpu")
    assert Build(256, 192, 4) in builds and Build(256, 48, 8) in builds and Build(256, 96, 6) in builds
    assert Build(256, 384, 8) not in builds and not left  # 384 bytes is above d/2
    assert all(in_code_range(b, 384) for b in builds)
    cuvs, left = space_builds(grid, 384, "cuvs")
    assert Build(256, 3, 4) not in cuvs  # cuVS needs whole bytes: m·nbits a multiple of 8 (and 3·4 < 4·8 anyway)
    gpu, left = space_builds(grid, 384, "faiss-gpu")
    assert all(b.nbits != 7 for b in gpu) and any("nbits" in why for why in left)


def test_the_answer_is_billed_on_the_engine_and_says_to_skip_the_table():
    """Under L2 on faiss-cpu the answer is billed without FAISS's precomputed table, the JSON says
    so, and the deploy notes say how; on cuvs the bill is cuVS's padded lists."""
    from gpupq.engines import engine_bill

    ds = make_synthetic(6000, 32, 0)
    cfg = RunConfig(k=10, queries=100, timing=False)
    with open_session(ds, cfg, "numpy") as session:
        grid = Grid(nlist=[32], m=[8, 16], nbits=[8])
        cpu = recommend(session, Target(0.6, rerank=False), cfg, grid).to_dict()
        cuvs = recommend(session, Target(0.6, rerank=False, engine="cuvs"), cfg, grid).to_dict()
        nb = session.split.n_base
    answer = cpu["answers"][0]
    b = engine_bill("faiss-cpu", nb, 32, 32, answer["point"]["m"], 8, "l2")
    assert answer["engine"] == "faiss-cpu" and answer["precomputed_table"] is False
    assert answer["memory_bytes"] == b.total(table=False) and answer["memory_with_table_bytes"] == b.total(table=True)
    assert answer["deploy"]["faiss_precomputed_table"] is False
    assert any("IO_FLAG_SKIP_PRECOMPUTE_TABLE" in note for note in answer["deploy"]["notes"])
    c = cuvs["answers"][0]
    assert c["engine"] == "cuvs" and c["precomputed_table"] is None
    assert c["memory_bytes"] == engine_bill("cuvs", nb, 32, 32, c["point"]["m"], 8, "l2").index_bytes
    assert cpu["engine"] == "faiss-cpu" and cpu["coverage"]["open"] == 0


def test_a_time_budget_stops_training_and_says_what_is_left_open():
    ds = make_synthetic(6000, 32, 0)
    cfg = RunConfig(k=10, queries=100, timing=False)
    with open_session(ds, cfg, "numpy") as session:
        grid = Grid(nlist=[32, 64], m=[4, 8, 16], nbits=[4, 6, 8])
        full = recommend(session, Target(0.9, rerank=False), cfg, grid)
        cut = recommend(session, Target(0.9, rerank=False, time_budget=1e-9), cfg, grid)
    assert not full.timed_out and full.coverage["open"] == 0
    # one build is trained before the budget is first looked at; then it stops
    assert cut.timed_out and len({f.candidate.build for f in cut.findings}) == 1
    assert cut.coverage["open"] > 0 and cut.to_dict()["timed_out"] is True
    assert any(tip.startswith("--time-budget") and "cheaper answer may be among them" in tip for tip in cut.advice)
    with pytest.raises(GpupqError, match="--time-budget"):
        Target(0.9, time_budget=0).check()
    with pytest.raises(GpupqError, match="--engine"):
        Target(0.9, engine="milvus").check()


def test_an_undecided_point_whose_mean_is_the_target_is_reported_without_a_query_count():
    """more_queries_needed is None when the mean sits on the target: the advice and the headline
    say so instead of printing "None more queries" (or failing to format it)."""
    from rich.console import Console

    from gpupq.advice import advice
    from gpupq.engine import PointResult
    from gpupq.metrics import Recall
    from gpupq.recommend import Finding, Recommendation
    from gpupq.recommend_report import render_recommendation
    from gpupq.settings import Setting
    from gpupq.space import Candidate

    bill = memory_bill(1000, 8, 4, 2, 8, "l2")
    pt = PointResult(Build(4, 2), Setting(1), Recall(0.8, 0.78, 0.82, 100, 0.8), Recall(0.8, 0.78, 0.82, 100, 0.8),
                     bill, 10.0, 0.01)  # fmt: skip
    assert more_queries_needed(pt, 0.8) is None
    cheap = Finding(Candidate(Build(4, 2), "", 100, None), "undecided", pt, more_queries=None, best=pt)
    answer = Finding(Candidate(Build(4, 4), "", 200, None), "meets", pt, best=pt)
    ds = {"n_base": 1000, "metric": "l2", "source": "test", "d": 8, "n_queries": 100}
    rec = Recommendation(Target(0.8), 10, ds, "numpy", "cpu", [answer], [cheap, answer], [pt], 0, 2)
    console = Console(width=120, record=True)
    console.print(render_recommendation(rec, width=120))
    assert "more queries alone may not decide it" in console.export_text()
    rec.answers = []
    tips = advice(rec, Target(0.8), None)
    assert tips and "None" not in " ".join(tips) and "more queries alone may not decide it" in tips[0]


def test_the_default_space_needs_no_yes_however_large():
    """--yes guards a range typed by hand. The default space of a large set (at N = 1M, nlist
    1,024 to 16,384 and more: here seven values) runs without it, and a hand-typed
    grid of as many builds still asks."""
    from gpupq.plan import MAX_BUILDS
    from gpupq.recommend import recommend_plan

    x = np.random.default_rng(0).standard_normal((4000, 384), dtype=np.float32)
    cfg = RunConfig(k=10, queries=100)
    with open_session(x, cfg, "numpy") as session:
        plan = recommend_plan(session, Target(0.9), cfg)
        plan.builds = 3 * MAX_BUILDS  # as a large N's default space gives
        hand = recommend_plan(session, Target(0.9), cfg, Grid(nlist=[4, 8], m=[16, 32], nbits=[4, 8]))
    assert plan.max_builds >= plan.builds  # the default space: its size is by design
    plan.check(yes=False)
    hand.builds = MAX_BUILDS + 1
    with pytest.raises(GpupqError, match="--yes"):
        hand.check(yes=False)


def test_runners_up_are_sought_only_within_their_reach_of_the_answer():
    """The default reach (1.25× the answer's memory) keeps the answer, names only runners-up
    within it, trains fewer builds and counts what it left; inf restores the whole search."""
    import math

    from gpupq.frontier import BEYOND
    from gpupq.recommend import RUNNERS_UP_WITHIN

    ds = make_synthetic(6000, 32, 0)
    cfg = RunConfig(k=10, queries=100, timing=False)
    grid = Grid(nlist=[32, 64], m=[4, 8, 16], nbits=[4, 6, 8], rerank=[0, 50], stores=["sq8", "fp16"])
    with open_session(ds, cfg, "numpy") as session:
        full = recommend(session, Target(0.8, runners_up_within=math.inf), cfg, grid)
        near = recommend(session, Target(0.8), cfg, grid)
    assert near.answers[0].candidate == full.answers[0].candidate
    first = near.answers[0].candidate.memory_bytes
    assert all(f.candidate.memory_bytes <= RUNNERS_UP_WITHIN * first for f in near.answers)
    assert any(f.candidate.memory_bytes > RUNNERS_UP_WITHIN * first for f in full.answers)  # the case bites
    assert [f.candidate for f in full.answers if f.candidate.memory_bytes <= RUNNERS_UP_WITHIN * first] == [
        f.candidate for f in near.answers
    ]
    assert near.coverage[BEYOND] > 0 and BEYOND not in full.coverage
    assert len({f.candidate.build for f in near.findings}) < len({f.candidate.build for f in full.findings})
    assert any("within 1.25× the answer's memory" in rule for rule in near.to_dict()["grid_rules"])
    with pytest.raises(GpupqError, match="--runners-up-within"):
        Target(0.9, runners_up_within=0.5).check()
    from rich.console import Console

    from gpupq.recommend_report import render_recommendation

    console = Console(width=80, record=True)
    console.print(render_recommendation(near, width=80))
    assert "No other build within 1.25× the best's memory meets the target" in console.export_text()
    console = Console(width=80, record=True)
    console.print(render_recommendation(full, width=80))
    assert "No other build within" not in console.export_text()
