"""recommend's answers timed on faiss-cpu (gpupq.faiss_timing): FAISS is handed the very index
gpupq measured, so its recall of the same setting agrees, and its figures are labelled as its own."""

from __future__ import annotations

import pytest

from gpupq.engine import PointResult
from gpupq.faiss_timing import faiss_timing
from gpupq.grid import Grid
from gpupq.io import make_synthetic
from gpupq.recommend import Target, recommend
from gpupq.recommend_report import render_recommendation
from gpupq.session import RunConfig, open_session
from gpupq.settings import Build, Setting

faiss = pytest.importorskip("faiss")
pytestmark = pytest.mark.faiss


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("setting", [Setting(4), Setting(4, 40, "sq8"), Setting(8, 40, "fp16")])
def test_faiss_given_our_index_ranks_as_we_do(metric, setting):
    ds = make_synthetic(6000, 32, 1, metric)
    cfg = RunConfig(k=10, queries=300, metric=metric, timing=False)
    with open_session(ds, cfg, "numpy") as session:
        bench = session.bench
        build = Build(32, 8, 6)
        curve = bench.curve(build, [setting.nprobe], max(10, setting.rerank))
        truth = bench.truth(10)
        reranks = [(setting.rerank, setting.store)] if setting.rerank else []
        ours = next(p for p in bench.points(build, curve, setting.nprobe, 10, reranks, truth) if p.setting == setting)
        assert isinstance(ours, PointResult)
        got = faiss_timing(bench, ours, 10, 1, 0.0)
    assert got is not None and got.library.startswith("faiss-cpu ")
    assert got.queries_per_s > 0 and 0 < got.latency.p50 <= got.latency.p99
    # the same codebooks and lists: FAISS's recall is ours up to ties and float rounding
    assert abs(got.recall.mean - ours.recall.mean) <= 0.01, (got.recall.mean, ours.recall.mean)


def test_recommend_times_its_answers_on_faiss_and_says_whose_figure_it_is():
    ds = make_synthetic(8000, 32, 0)
    cfg = RunConfig(k=10, queries=200, min_time=0.0)
    with open_session(ds, cfg, "numpy") as session:
        rec = recommend(session, Target(0.85, rerank=False), cfg, Grid(nlist=[32, 64], m=[8, 16], nbits=[8]))
    assert rec.answers
    for f in rec.answers:
        t = f.engine_timing
        assert t is not None and abs(t.recall.mean - f.point.recall.mean) <= 0.02
        d = f.to_dict(rec.dataset["n_base"], 10, "l2")["faiss_cpu"]
        assert d["library"] == f"faiss-cpu {faiss.__version__}" and d["queries_per_s"] > 0
    from rich.console import Console

    console = Console(width=80, record=True)
    console.print(render_recommendation(rec, width=80))
    text = console.export_text()
    assert "faiss-cpu" in text and "on the same index" in text and "its own figures" in text
