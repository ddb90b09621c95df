"""Draft builds: recommend's cheap first look at a costly build. A draft trains its PQ on a
smaller budget, settles a candidate short only by a margin, and never changes the answer."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from gpupq import engine
from gpupq import recommend as recommend_module
from gpupq.engine import DRAFT_NITER, DRAFT_POINTS_PER_CENTROID, Workbench
from gpupq.grid import Grid
from gpupq.io import make_synthetic
from gpupq.recommend import DRAFT_MARGIN, DRAFTED, Target, recommend
from gpupq.recommend_report import render_recommendation
from gpupq.session import RunConfig, open_session
from gpupq.settings import Build


def _pays(n_base: int, build: Build) -> bool:
    return Workbench.draft_pays(SimpleNamespace(split=SimpleNamespace(n_base=n_base)), build)  # type: ignore[arg-type]


def test_a_draft_pays_where_pq_training_outweighs_a_pass_over_the_base():
    assert _pays(60_000, Build(256, 96, 8)) and _pays(60_000, Build(256, 96, 6))
    assert not _pays(60_000, Build(256, 96, 4))  # 4,096 training points: the base costs more
    assert not _pays(2_000_000, Build(256, 96, 8))  # the base outweighs 65,536 training points
    assert not _pays(60_000, Build(256, 96, 8, opq=True))  # the rotation is most of the cost


def test_a_draft_trains_on_less_and_is_kept_apart_from_its_build():
    ds = make_synthetic(20_000, 32, 0)
    cfg = RunConfig(k=10, queries=200, timing=False)
    with open_session(ds, cfg, "numpy") as session:
        bench, build = session.bench, Build(32, 8, 8)
        draft = bench.built(build, draft=True).index.pq.train_result
        assert draft.n_points == DRAFT_POINTS_PER_CENTROID * 256
        assert max(draft.iterations) <= DRAFT_NITER
        assert not bench.has(build)  # the draft is not the build
        full = bench.built(build).index.pq.train_result
        assert full.n_points == min(session.split.n_base, 256 * 256) and max(full.iterations) > DRAFT_NITER
        bench.drop(build, draft=True)
        assert bench.has(build)
        assert bench.built(build, draft=True).index.pq.train_result is not full  # trained afresh


@pytest.fixture(scope="module")
def drafted_and_not():
    """The same recommendation with drafts and without (500 queries: enough to screen)."""
    ds = make_synthetic(10_500, 32, 3)
    cfg = RunConfig(k=10, queries=500, timing=False)
    grid = Grid(nlist=[64], m=[4, 8, 16], nbits=[6, 8])
    out = {}
    for drafts in (True, False):
        with open_session(ds, cfg, "numpy") as session:
            if not drafts:
                session.bench.draft_pays = lambda build: False  # type: ignore[method-assign]
            out[drafts] = recommend(session, Target(0.9, rerank=False), cfg, grid)
    return out


def test_drafts_settle_only_clear_shorts_and_leave_the_answer_unchanged(drafted_and_not):
    with_drafts, without = drafted_and_not[True], drafted_and_not[False]
    drafted = [f for f in with_drafts.findings if f.draft]
    assert drafted, "the space should hold a candidate a draft settles"
    for f in drafted:
        assert f.verdict == "short" and f.point is None
        assert f.best.recall.ci95_high + DRAFT_MARGIN < 0.9
    assert with_drafts.coverage[DRAFTED] == len(drafted)
    assert without.coverage[DRAFTED] == 0

    def answer(rec):
        return [(f.candidate.label, f.point.setting.label, f.point.recall.mean) for f in rec.answers]

    assert answer(with_drafts) == answer(without)
    # what the search concluded about each candidate is the same too
    verdicts = {f.candidate.label: f.verdict for f in without.findings}
    assert all(verdicts.get(f.candidate.label, "short") == "short" for f in drafted)
    assert {f.candidate.label: f.verdict for f in with_drafts.findings if not f.draft}.items() <= verdicts.items()


def test_a_draft_shown_as_such(drafted_and_not):
    rec = drafted_and_not[True]
    from rich.console import Console

    console = Console(width=200, record=True)
    console.print(render_recommendation(rec, width=200))
    text = console.export_text()
    assert "short (draft)" in text
    assert "found short on a draft build alone" in text
    data = rec.to_dict()
    assert any(f["draft"] for f in data["findings"]) and data["coverage"][DRAFTED] >= 1


def test_drafts_settle_nothing_until_one_is_calibrated_and_the_margin_widens(monkeypatch, drafted_and_not):
    """A draft far below its build on this data must not settle a candidate its build might meet:
    the first draft is checked against its build, and the margin grows to twice the shortfall."""
    ds = make_synthetic(10_500, 32, 3)
    cfg = RunConfig(k=10, queries=500, timing=False)
    grid = Grid(nlist=[64], m=[4, 8, 16], nbits=[6, 8])
    real = engine.Workbench.curve

    def poor_draft(self, build, nprobes, depth, head=None, draft=False):
        c = real(self, build, nprobes, depth, head, draft)
        if draft:  # a draft that ranks nothing right: recall 0, far below its build
            for p in c.ranked:
                c.ranked[p] = c.ranked[p] * 0 + self.split.n_base - 1
        return c

    monkeypatch.setattr(engine.Workbench, "curve", poor_draft)
    monkeypatch.setattr(recommend_module, "DRAFT_MARGIN", 0.0)
    with open_session(ds, cfg, "numpy") as session:
        rec = recommend(session, Target(0.9, rerank=False), cfg, grid)
    assert not any(f.draft for f in rec.findings)
    answers = [(f.candidate.label, f.point.setting.label) for f in rec.answers]
    assert answers == [(f.candidate.label, f.point.setting.label) for f in drafted_and_not[False].answers]
