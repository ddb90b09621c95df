"""The timing rule: repeat until the runs cover min_time, interleave compared phases, report the
median; and the verify path times FAISS by the same rule."""

from __future__ import annotations

import time

import pytest

import gpupq
from gpupq.timing import MAX_RUNS, Runs, repeat


def test_one_run_each_with_no_min_time():
    calls: list[str] = []
    out, runs = repeat({"a": lambda: calls.append("a") or 1, "b": lambda: calls.append("b") or 2}, 0.0)
    assert out == {"a": 1, "b": 2} and calls == ["a", "b"]
    assert [len(r.seconds) for r in runs.values()] == [1, 1]


def test_runs_interleave_until_each_covers_min_time():
    """A fast and a slow phase alternate while both need runs; each stops once its runs cover
    min_time, and the result kept is the first run's."""
    calls: list[str] = []
    counter = iter(range(1000))

    def slow() -> int:
        calls.append("slow")
        time.sleep(0.01)
        return next(counter)

    out, runs = repeat({"fast": lambda: calls.append("fast"), "slow": slow}, 0.03)
    assert calls[:4] == ["fast", "slow", "fast", "slow"]
    assert sum(runs["slow"].seconds) >= 0.03 and 3 <= len(runs["slow"].seconds) <= 5
    assert len(runs["fast"].seconds) == MAX_RUNS  # a phase too fast to cover min_time stops at the cap
    assert out["slow"] == 0


def test_runs_report_the_median():
    r = Runs([0.3, 0.1, 0.2, 10.0])
    assert r.median == pytest.approx(0.25)
    assert r.to_dict() == {"runs": 4, "median_s": pytest.approx(0.25), "min_s": 0.1, "max_s": 10.0}


def test_verify_times_faiss_by_the_same_rule():
    pytest.importorskip("faiss")
    cfg = gpupq.EstimateConfig(m=4, nlist=16, nprobe=4, nbits=6, k=10, rerank=20, queries=50, min_time=0.05)
    res = gpupq.estimate(gpupq.make_synthetic(3000, 16), cfg, "numpy", verify="faiss")
    runs = res.faiss.runs
    assert set(runs) == {"train", "add", "search", "search_rerank"}
    assert runs["search"]["runs"] > 1
    assert runs["search"]["min_s"] <= runs["search"]["median_s"] <= runs["search"]["max_s"]
    assert res.faiss.add_s == pytest.approx(runs["add"]["median_s"])


def test_latency_percentiles_are_times_some_query_took():
    from gpupq.timing import Latency, one_at_a_time

    lat = Latency.of([i / 1000 for i in range(100, 0, -1)])  # 1..100 ms, in any order
    assert (lat.p50, lat.p95, lat.p99, lat.queries) == (0.05, 0.095, 0.099, 100)
    assert Latency.of([0.2]).to_dict() == {"p50_s": 0.2, "p95_s": 0.2, "p99_s": 0.2, "queries": 1}
    calls = []
    out = one_at_a_time(calls.append, 5)
    assert calls == [0, 0, 1, 2, 3, 4] and out.queries == 5  # one warm-up, then each query once


def test_modelled_seconds_are_the_wall_less_the_overhead_each_run_added():
    """Work in shards: each run's modelled seconds are its wall less what the executor's running
    overhead total grew by during that run (and never below zero); without it, no model."""
    from gpupq.timing import one_at_a_time

    total = [0.0]

    def run() -> None:
        time.sleep(0.02)
        total[0] += 0.015  # 15 ms of the run were the executor's, beyond its slowest shard

    _, runs = repeat({"s": run}, 0.05, overhead=lambda: total[0])
    r = runs["s"]
    assert r.modelled is not None and len(r.modelled) == len(r.seconds) >= 2
    for wall, model in zip(r.seconds, r.modelled, strict=True):
        assert model == pytest.approx(wall - 0.015, abs=1e-9)
    assert r.to_dict()["modelled_median_s"] == pytest.approx(r.median - 0.015, abs=2e-3)
    assert repeat({"s": lambda: None}, 0.0)[1]["s"].modelled is None

    def query(i: int) -> None:
        time.sleep(0.002)
        total[0] += 1.0  # more than the query's wall: clipped at zero

    lat = one_at_a_time(query, 3, overhead=lambda: total[0])
    assert lat.modelled is not None and lat.modelled.p99 == 0.0 and lat.p50 > 0
    assert one_at_a_time(lambda i: None, 2).modelled is None
