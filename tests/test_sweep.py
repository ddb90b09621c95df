"""Sweep, recommend and sizing: shared work that equals separate runs, frontiers, the economical
search, and what users see (CSV, JSON, errors, Ctrl-C)."""

from __future__ import annotations

import csv
import io
import itertools
import json

import numpy as np
import pytest

from gpupq.data import Dataset, make_synthetic
from gpupq.engine import Build
from gpupq.errors import GpupqError
from gpupq.estimate import EstimateConfig, estimate
from gpupq.metrics import memory_bill
from gpupq.pareto import non_dominated
from gpupq.recommend import Target, more_queries_needed, recommend
from gpupq.refine import RerankStore, rerank
from gpupq.report import SWEEP_CSV_COLUMNS, sweep_csv
from gpupq.scale import deployment, fit_trend, scaled_nlist
from gpupq.sweep import Grid, RunConfig, default_m, default_nlist, open_session, parse_ints, sweep

from .conftest import cli_runner


def _session(backend="numpy", n=6000, d=32, queries=120, seed=0, metric="l2"):
    ds = make_synthetic(n, d, seed, metric)
    cfg = RunConfig(k=10, queries=queries, seed=seed, timing=False)
    return ds, cfg, open_session(ds, cfg, backend)


# ---------------------------------------------------------------------------------- frontier
def test_frontier_on_hand_made_points():
    # (recall, memory): larger recall better, smaller memory better
    pts = np.array(
        [
            [0.5, 10.0],  # 0: cheapest
            [0.7, 20.0],  # 1: frontier
            [0.6, 25.0],  # 2: dominated by 1 (worse recall, more memory)
            [0.7, 20.0],  # 3: equal to 1: both stay
            [0.9, 40.0],  # 4: frontier
            [0.9, 45.0],  # 5: dominated by 4 (same recall, more memory)
            [np.nan, 1.0],  # 6: not measured: never on it
        ]
    )
    keep = non_dominated(pts, [True, False])
    assert keep.tolist() == [True, True, False, True, True, False, False]
    # three axes: a point dominated on two can survive on the third
    three = np.array([[0.7, 20.0, 100.0], [0.6, 25.0, 500.0], [0.7, 20.0, 50.0]])
    assert non_dominated(three, [True, False, True]).tolist() == [True, True, False]


# ---------------------------------------------------------------------------------- shared work
def test_every_nprobe_and_depth_from_one_scan_equals_separate_searches(backend):
    """The one-scan prefix and the one-ranking re-rank give the ids a search at that nprobe and
    depth gives, on every backend's scan strategy, ties included (m=4 codes collide often)."""
    _ds, _cfg, session = _session(backend, n=4000, d=16)
    bench = session.bench
    build = Build(nlist=32, m=4)
    ps = [1, 3, 8, 32]
    curve = bench.curve(build, ps, depth=60)
    index = bench.built(build).index
    q = bench.queries
    fetch = bench.fetcher("sq8")
    for p in ps:
        _, ids, stats = index.search(q, 60, p)
        np.testing.assert_array_equal(backend.to_numpy(curve.ranked[p]), backend.to_numpy(ids))
        np.testing.assert_array_equal(curve.scanned[p], stats.scanned)
        _, raw_ids, _ = index.search(q, 10, p)  # a raw search keeps only k per list: same top-k
        np.testing.assert_array_equal(backend.to_numpy(curve.ranked[p][:, :10]), backend.to_numpy(raw_ids))
        truth = bench.truth(10)
        points = bench.points(build, curve, p, 10, [(20, "sq8"), (60, "sq8")], truth)
        for r in (20, 60):
            _, sep_cand, _ = index.search(q, r, p)
            _, sep = rerank(backend, q, sep_cand, fetch, 10, "l2")
            pt = next(x for x in points if x.setting.rerank == r)
            assert pt.recall == truth.recall(backend.to_numpy(sep))
    session.close()


def test_sweep_points_equal_separate_estimates():
    """A sweep point's recall, scanned count and memory are those of `gpupq estimate` at the
    same settings and seed: the same nested sample, coarse quantizer, PQ and tie-breaks."""
    # 8-byte codes over tight clusters: many vectors share a code in a list, so equal PQ distances
    # straddle the cuts; without the id tie-break (per list and in the merge) this test fails
    ds = make_synthetic(20000, 64, 0)
    cfg = RunConfig(k=10, queries=200, timing=False)
    session = open_session(ds, cfg, "numpy")
    grid = Grid(nlist=[64], m=[8, 16], nprobe=[1, 4, 16], rerank=[0, 50, 100], stores=["fp16", "sq8"])
    result = sweep(session, grid, cfg)
    session.close()
    assert len(result.points) == 2 * 3 * (1 + 2 * 2)
    assert [b.coarse_shared for b in result.builds] == [False, True]
    for nlist, m, p, r, store in [(64, 8, 4, 50, "sq8"), (64, 16, 16, 100, "fp16"), (64, 8, 16, 50, "fp16")]:
        est = estimate(
            ds, EstimateConfig(m=m, nlist=nlist, nprobe=p, rerank=r, rerank_store=store, queries=200), "numpy"
        ).results[0]
        at = [x for x in result.points if (x.build.nlist, x.build.m, x.setting.nprobe) == (nlist, m, p)]
        raw = next(x for x in at if x.setting.rerank == 0)
        rr = next(x for x in at if (x.setting.rerank, x.setting.store) == (r, store))
        if p == 16:  # the sweep's one scan is at nprobe 16: the same products as the estimate's search
            assert raw.recall == est.recall
            assert rr.recall == est.recall_rerank
        else:
            # nprobe 4 is read from the scan at 16, whose batched products group the queries
            # differently; OpenBLAS rounds a row by the shape it is computed in (its Haswell
            # kernel on AMD: a last-bit change in 5-95% of a product's entries when the row count
            # changes), so equal PQ distances may split differently: a few of the 2,000 slots
            assert abs(raw.recall.mean - est.recall.mean) <= 5 / 2000
            assert abs(rr.recall.mean - est.recall_rerank.mean) <= 5 / 2000
        assert raw.scanned_per_query == est.vectors_scanned_per_query
        assert rr.memory_bytes == est.memory.with_rerank
        assert raw.memory_bytes == est.memory.index_in_memory


def test_sweep_times_each_point_at_its_own_setting(monkeypatch):
    _ds, cfg, session = _session()
    cfg.timing = True
    timed = []
    real = session.bench.search_fn

    def spy(build, setting, k):
        timed.append((build, setting))
        return real(build, setting, k)

    monkeypatch.setattr(session.bench, "search_fn", spy)
    result = sweep(session, Grid(nlist=[16], m=[8], nprobe=[1, 4], rerank=[0, 30]), cfg)
    assert [(b.nlist, s.nprobe, s.rerank) for b, s in timed] == [(16, 1, 0), (16, 1, 30), (16, 4, 0), (16, 4, 30)]
    assert all(p.queries_per_s and p.queries_per_s > 0 and len(p.runs.seconds) >= 1 for p in result.points)


def test_points_are_timed_interleaved_until_min_time(monkeypatch):
    """With --min-time each point runs until its runs cover it, the points of a build in turn."""
    _ds, _cfg, session = _session()
    order = []
    real = session.bench.search_fn

    def spy(build, setting, k):
        run = real(build, setting, k)

        def counted():
            order.append(setting.nprobe)
            return run()

        return counted

    monkeypatch.setattr(session.bench, "search_fn", spy)
    monkeypatch.setattr("gpupq.timing.MAX_RUNS", 3)
    pts = session.bench.points(Build(16, 8), session.bench.curve(Build(16, 8), [1, 4], 10), 1, 10, [],
                               session.bench.truth(10))  # fmt: skip
    pts += session.bench.points(Build(16, 8), session.bench.curve(Build(16, 8), [4], 10), 4, 10, [],
                                session.bench.truth(10))  # fmt: skip
    session.bench.time_points(pts, 10, min_time=60.0)  # never reached: MAX_RUNS ends it
    assert order == [1, 4, 1, 4, 1, 4]
    assert [len(p.runs.seconds) for p in pts] == [3, 3]


def test_default_nprobe_doubles_until_recall_stops_rising():
    _ds, cfg, session = _session()
    result = sweep(session, Grid(nlist=[64], m=[8]), cfg)
    ps = [p.setting.nprobe for p in result.points]
    assert ps[:3] == [1, 2, 4] and ps == sorted(ps)
    recalls = [p.recall.mean for p in result.points]
    # it stopped at the first doubling that gained less than half a point (or at nlist)
    assert ps[-1] == 64 or recalls[-1] - recalls[-2] < 0.005
    assert all(b - a >= 0.005 for a, b in itertools.pairwise(recalls[:-1]))


def test_default_grid_rules():
    values, _ = default_nlist(1_000_000)
    assert values == [4096, 8192]  # powers of two within 4√N = 4000 .. 16√N = 16000
    assert default_nlist(6000)[0] == [128]  # 4√N = 310..1239, but at most N/39 = 153
    assert default_m(128)[0] == [8, 16, 32, 64]
    assert default_m(96)[0] == [8, 16, 32]  # powers of two dividing d, up to d/2 bytes
    assert parse_ints("1-256", "--nprobe") == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert parse_ints("3-20,5", "--nprobe") == [3, 5, 6, 12, 20]
    with pytest.raises(GpupqError, match="--nprobe"):
        parse_ints("8-2", "--nprobe")


def test_ctrl_c_keeps_the_points_measured(monkeypatch):
    _ds, cfg, session = _session()
    cfg.timing = True
    calls = {"n": 0}
    real = session.bench.time_points

    def interrupt_second_build(points, k, min_time=None):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(points, k, min_time)

    monkeypatch.setattr(session.bench, "time_points", interrupt_second_build)
    result = sweep(session, Grid(nlist=[16, 32], m=[8], nprobe=[1, 2, 4], rerank=[0]), cfg)
    assert result.interrupted
    # the first build's three points, measured whole; none of the build being timed
    assert len(result.points) == 3 and all(p.queries_per_s for p in result.points)
    assert {p.build.nlist for p in result.points} == {16}
    assert len(result.frontiers["memory"]) == 3
    assert json.loads(json.dumps(result.to_dict()))["interrupted"] is True


def test_csv_and_json_round_trip():
    _ds, cfg, session = _session()
    result = sweep(session, Grid(nlist=[16], m=[4, 8], nprobe=[2, 8], rerank=[0, 40], stores=["sq8"]), cfg)
    rows = list(csv.DictReader(io.StringIO(sweep_csv(result))))
    data = json.loads(json.dumps(result.to_dict()))
    assert list(rows[0]) == list(SWEEP_CSV_COLUMNS)
    assert len(rows) == len(data["points"]) == len(result.points) == 2 * 2 * 2
    for row, point in zip(rows, data["points"], strict=True):
        assert row["build"] == point["build"]
        assert int(row["nprobe"]) == point["nprobe"] and int(row["rerank"]) == point["rerank"]
        assert float(row["recall"]) == point["recall"]["mean"]
        assert float(row["recall_ci95_low"]) == point["recall"]["ci95_low"]
        assert int(row["memory_bytes"]) == point["memory_bytes"]
        assert (row["pareto_memory"] == "True") == point["pareto"]["memory"]
        assert row["queries_per_s"] == ""  # not timed: empty, not a made-up figure


# ---------------------------------------------------------------------------------- recommend
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
    from gpupq.engine import PointResult, Setting
    from gpupq.metrics import Recall

    bill = memory_bill(1000, 8, 4, 2, 8, "l2")
    pt = PointResult(Build(4, 2), Setting(1), Recall(0.92, 0.88, 0.96, 100, 0.92), Recall(0.9, 0.8, 1, 100, 0.9),
                     bill, 10.0, 0.01)  # fmt: skip
    # half-width 0.04 over a margin of 0.02: four times the queries (the width shrinks as 1/√n)
    assert more_queries_needed(pt, 0.90) == 300
    assert more_queries_needed(pt, 0.95) is None  # the mean is below: more queries won't help


# ---------------------------------------------------------------------------------- sizing
def test_deployment_bill_is_exact_arithmetic():
    assert scaled_nlist(1024, 100_000, 100_000_000) == 32768  # ×√1000 ≈ 31.6 -> 32768
    assert scaled_nlist(256, 10_000, 10_000) == 256
    store = RerankStore("fp16")
    dep = deployment(Build(1024, 16), 16, store, 100_000, 50_000_000, 128, "l2")
    nlist = scaled_nlist(1024, 100_000, 50_000_000)
    bill = memory_bill(50_000_000, 128, nlist, 16, 8, "l2", 50_000_000 * 128 * 2)
    assert dep.memory_bytes == bill.with_rerank
    assert dep.nlist == nlist and dep.nprobe == 16 * nlist // 1024
    assert dep.memory.codes == 50_000_000 * 16 and dep.memory.ids == 50_000_000 * 8


def test_trend_fit_recovers_a_known_line():
    # recall falling 0.02 per doubling of N, measured exactly: the fit extends it exactly
    pts = [(n, 0.95 - 0.02 * np.log2(n / 1000), 0.01) for n in (1000, 2000, 4000, 8000)]
    trend = fit_trend(pts)
    mean, low, high = trend.predict(1000 * 2**10)
    assert mean == pytest.approx(0.95 - 0.2, abs=1e-9)
    assert low < mean < high
    # noisier points give a wider band at the same extrapolation
    wide = fit_trend([(n, r, 0.05) for n, r, _ in pts]).predict(1000 * 2**10)
    assert wide[2] - wide[1] > high - low


# ---------------------------------------------------------------------------------- CLI
def test_sweep_cli_writes_csv_and_json(tmp_path):
    out_csv = tmp_path / "points.csv"
    args = ["sweep", "--synthetic", "--n", "4000", "--d", "16", "--nlist", "16", "--m", "4,8", "--nprobe", "1-8"]
    from gpupq.cli import app

    res = cli_runner().invoke(app, [*args, "--rerank", "0,30", "--csv", str(out_csv), "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["command"] == "sweep" and len(data["points"]) == 2 * 4 * 2
    assert all(p["queries_per_s"] > 0 for p in data["points"])
    assert len(out_csv.read_text().splitlines()) == 1 + len(data["points"])
    assert not list(tmp_path.glob(".*tmp"))


def test_recommend_cli_prints_the_answer_and_deploy_strings():
    from gpupq.cli import app

    args = ["recommend", "--synthetic", "--n", "6000", "--d", "32", "--target-recall", "0.8", "--nlist", "32"]
    res = cli_runner().invoke(app, [*args, "--m", "8,16", "--n-total", "10M", "--scale-curve", "-q"])
    assert res.exit_code == 0, res.stderr
    for text in ("best", "#2", "index_factory", "cuVS", "Evidence", "at N=10M", "Recall as the collection grows"):
        assert text in res.stdout, text


@pytest.mark.parametrize(
    "args,message",
    [
        (["sweep", "--synthetic", "--nprobe", "8-2"], "--nprobe '8-2'"),
        (["sweep", "--synthetic", "--m", "7"], "--m 7"),
        (["sweep", "--synthetic", "--rerank-store", "fp8"], "--rerank-store"),
        (["sweep", "--synthetic", "--backend", "all"], "one: auto, numpy or cupy"),
        (["sweep", "--synthetic", "--n-total", "lots"], "--n-total"),
        (["sweep", "--synthetic", "--csv", "/no/such/dir/x.csv"], "does not exist"),
        (["recommend", "--synthetic", "--target-recall", "1.5"], "--target-recall"),
        (["recommend", "--synthetic", "--target-recall", "0.9", "--memory-budget", "lots"], "memory"),
    ],
)
def test_bad_sweep_and_recommend_input_is_one_line(args, message):
    from gpupq.cli import app

    res = cli_runner().invoke(app, [*args, "-q"])
    assert res.exit_code == 2, (res.stdout, res.stderr)
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], res.stderr


def test_cosine_sweep_runs_on_normalised_rows():
    ds = Dataset(make_synthetic(3000, 16, 0).array * 7.0, "scaled", "cosine")
    cfg = RunConfig(k=5, queries=50, timing=False)
    session = open_session(ds, cfg, "numpy")
    result = sweep(session, Grid(nlist=[16], m=[4], nprobe=[16], rerank=[0, 2950], stores=["fp32"]), cfg)
    # every list probed and the whole base re-ranked from fp32 vectors: exact search
    assert result.points[-1].recall.mean == pytest.approx(1.0)


# ---------------------------------------------------------------------------------- scale curve
def _gaussian_split(n=64400, d=16, seed=0):
    from gpupq.data import hold_out

    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    ds = Dataset(x, "gaussian")
    return ds, hold_out(ds, 400, seed)


def test_scale_curve_predicts_a_size_it_did_not_measure():
    """The answer is known: the recall at the full base, measured directly, lies in the band the
    trend of the nested subsamples at 1/16 to 1/2 of it predicts. (Gaussian data: no cluster count
    for nlist to cross, so the trend is steady; 4-bit codes: the PQ trains on its full 4,096-point
    sample at every size.)"""
    from gpupq.backends import NumpyBackend
    from gpupq.engine import Setting
    from gpupq.scalecurve import nested_bases, scale_curve

    ds, split = _gaussian_split()
    be = NumpyBackend()
    build = Build(nlist=512, m=8, nbits=4)
    sizes = [4000, 8000, 16000, 32000]
    a, b = nested_bases(split, [4000, 8000], 3)
    assert np.isin(a, b).all() and not np.isin(a, split.query_ids).any()  # nested, base rows only
    curve = scale_curve(ds, split, build, Setting(8), 10, be, sizes=sizes, n_total=split.n_base)
    assert [p.n for p in curve.points] == sizes
    assert [p.nlist for p in curve.points] == [32, 64, 128, 256]  # nlist ∝ n: vectors per list constant
    scanned = [p.scanned_per_query for p in curve.points]
    assert max(scanned) / min(scanned) < 1.1
    assert curve.trend.b < 0  # more vectors near each query, same scan: recall falls
    _, low, high = curve.prediction
    measured = scale_curve(ds, split, build, Setting(8), 10, be, sizes=[16000, split.n_base]).points[-1]
    assert low <= measured.recall.mean <= high, (curve.prediction, measured.recall.mean)
    assert high - low < 0.1


def test_scale_curve_gives_no_extrapolation_when_the_points_do_not_follow_a_trend():
    from gpupq.backends import NumpyBackend
    from gpupq.data import hold_out
    from gpupq.engine import Setting
    from gpupq.scalecurve import scale_curve

    # 256 natural clusters: at the small sizes nlist is below the cluster count, and recall jumps
    ds = make_synthetic(64000, 32, 0)
    split = hold_out(ds, 400, 0)
    curve = scale_curve(ds, split, Build(512, 16, 4), Setting(4), 10, NumpyBackend(), sizes=[4000, 8000, 16000],
                        n_total=10**8)  # fmt: skip
    assert curve.trend.chi2_per_dof > 4
    assert curve.prediction is None
    assert any("no extrapolation" in note for note in curve.notes)


def test_estimate_n_total_and_scale_curve_through_the_cli():
    from gpupq.cli import app

    args = ["estimate", "--synthetic", "--n", "8000", "--d", "32", "--m", "8", "--nlist", "64", "--rerank", "40"]
    res = cli_runner().invoke(app, [*args, "--rerank-store", "sq8", "--n-total", "2B", "--scale-curve", "--json", "-q"])
    assert res.exit_code == 0, res.stderr
    data = json.loads(res.stdout)
    dep = data["deployment"]
    nlist = scaled_nlist(64, data["dataset"]["n_base"], 2 * 10**9)
    bill = memory_bill(2 * 10**9, 32, nlist, 8, 8, "l2", 2 * 10**9 * 32 + 2 * 32 * 4)
    assert dep["n_total"] == 2 * 10**9 and dep["nlist"] == nlist
    assert dep["memory_bytes"] == bill.with_rerank
    curve = data["scale_curve"]
    nb = data["dataset"]["n_base"]
    assert [p["n"] for p in curve["points"]] == [nb // 8, nb // 4, nb // 2, nb]
    assert "prediction" in curve or any("no extrapolation" in n for n in curve["notes"])
    assert "extrapolated" in curve["caveat"]


def test_opq_builds_train_their_own_rotation_and_coarse_and_equal_estimates():
    """Under OPQ the coarse quantizer is trained on rotated vectors, and the rotation depends on m:
    the stage is keyed by (nlist, m), and each point still equals its estimate."""
    ds = make_synthetic(4000, 16, 0)
    cfg = RunConfig(k=10, queries=100, timing=False)
    session = open_session(ds, cfg, "numpy")
    result = sweep(session, Grid(nlist=[16], m=[4, 8], opq=[False, True], nprobe=[4]), cfg)
    session.close()
    shared = {(b.build.m, b.build.opq): b.coarse_shared for b in result.builds}
    assert shared == {(4, False): False, (4, True): False, (8, False): True, (8, True): False}
    for m in (4, 8):
        est = estimate(ds, EstimateConfig(m=m, nlist=16, nprobe=4, rerank=0, queries=100, opq=True), "numpy")
        pt = next(p for p in result.points if p.build.m == m and p.build.opq)
        assert pt.recall == est.results[0].recall
        assert pt.memory_bytes == est.results[0].memory.index_in_memory
