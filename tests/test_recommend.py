"""Recommend: the cheapest configuration that meets the target (and still does with more
queries), the memory budget, and how many queries would decide an undecided point."""

from __future__ import annotations

import json

from gpupq.estimate import EstimateConfig, estimate
from gpupq.grid import Grid
from gpupq.io import make_synthetic
from gpupq.memory import memory_bill
from gpupq.recommend import Target, more_queries_needed, recommend
from gpupq.session import RunConfig, open_session
from gpupq.settings import Build

from .helpers import _session


def test_recommendation_meets_its_target_when_rerun_with_more_queries():
    ds = make_synthetic(8000, 32, 0)
    cfg = RunConfig(k=10, queries=200, timing=False)
    session = open_session(ds, cfg, "numpy")
    rec = recommend(session, Target(0.85, rerank=False), cfg, Grid(nlist=[32, 64], m=[8, 16]))
    session.close()
    assert rec.answers, rec.advice
    best = rec.answers[0]
    p = best.point
    assert p.recall.ci95_low >= 0.85
    # cheapest first, and nothing cheaper met it
    mems = [f.candidate.memory_bytes for f in rec.answers]
    assert mems == sorted(mems)
    evaluated = [f.candidate.memory_bytes for f in rec.findings]
    assert evaluated == sorted(evaluated)
    nb = rec.dataset["n_base"]
    cheapest = min(memory_bill(nb, 32, nl, m, 8, "l2").index_in_memory for nl in (32, 64) for m in (8, 16))
    assert evaluated[0] == cheapest
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
    grid = Grid(nlist=[32], m=[4, 8, 16])
    budget = memory_bill(5880, 32, 32, 8, 8, "l2").index_in_memory  # room for m <= 8 without re-ranking
    rec = recommend(session, Target(0.99, memory_budget=budget, rerank=False), cfg, grid)
    assert rec.over_budget == 1
    assert all(f.candidate.memory_bytes <= budget for f in rec.findings[:2])
    assert all(a.candidate.memory_bytes <= budget for a in rec.answers)
    if not rec.answers:
        assert any("--memory-budget" in tip or "closest" in tip for tip in rec.advice)
    data = json.loads(json.dumps(rec.to_dict()))
    assert data["target"]["memory_budget"] == budget


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
