"""The one projection to --n-total (gpupq.projection): nlist ∝ √N, nprobe ∝ nlist, codes scanned
in proportion to N; the throughput model fitted at two nprobe; and one rule in every figure a
recommendation reports at N."""

from __future__ import annotations

import pytest

from gpupq.projection import fit_speed, projected_qps, scale, scanned_at


def test_scale_keeps_the_share_of_lists_probed():
    assert scale(1024, 16, 100_000, 100_000_000) == (32382, 506)  # ×√1000 = 31.62
    assert scale(256, 8, 10_000, 10_000) == (256, 8)
    assert scale(64, 64, 1000, 4000) == (128, 128)  # every list stays every list
    assert scale(4, 1, 100, 101) == (4, 1)
    assert scale(1000, 10, 10**6, 10) == (3, 1)  # never nprobe 0
    assert scale(100, 1, 100, 50) == (50, 1)  # never more lists than vectors
    assert scanned_at(500.0, 10_000, 1_000_000) == 50_000.0


def test_fit_speed_separates_the_fixed_cost_from_the_cost_of_a_code():
    fixed, per_code = fit_speed([(1000.0, 1e-4 + 1000 * 2e-8), (2000.0, 1e-4 + 2000 * 2e-8)])
    assert fixed == pytest.approx(1e-4) and per_code == pytest.approx(2e-8)
    # one timing, or noise that makes the slope non-positive: all per code (the projection errs slow)
    assert fit_speed([(1000.0, 1e-3)]) == (0.0, pytest.approx(1e-6))
    assert fit_speed([(1000.0, 2e-3), (2000.0, 1e-3)]) == (0.0, pytest.approx(5e-7))
    assert fit_speed([(1000.0, 1e-4), (2000.0, 3e-4)])[0] == 0.0  # a negative intercept is clipped


def test_projected_qps_adds_the_codes_and_the_coarse_search_at_n():
    # 1,000 codes a query at 10k vectors: 100,000 at 1M; nlist 100 → 1,000 lists: 900·d more
    # multiply-adds a query at 1e9/s
    qps = projected_qps(1e-4, 1e-8, 1000.0, 10_000, 1_000_000, 100, 64, 1e9)
    assert qps == pytest.approx(1 / (1e-4 + 1e-8 * 100_000 + 900 * 64 / 1e9))
    assert projected_qps(1e-4, 1e-8, 1000.0, 10_000, 10_000, 100, 64, 1e9) == pytest.approx(1 / (1e-4 + 1e-5))


def test_a_recommendation_at_n_total_follows_one_rule_everywhere():
    """The bill, the deploy strings and the scale curve's projection name the same nlist and
    nprobe at N_total, and --min-qps is checked against the projected queries/s."""
    from gpupq.grid import Grid
    from gpupq.io import make_synthetic
    from gpupq.recommend import Target, recommend
    from gpupq.session import RunConfig, open_session

    ds = make_synthetic(8000, 32, 0)
    cfg = RunConfig(k=10, queries=200, n_total=10_000_000, min_time=0)
    with open_session(ds, cfg, "numpy") as session:
        grid = Grid(nlist=[32], m=[8, 16], nbits=[8])
        rec = recommend(session, Target(0.7, rerank=False), cfg, grid, scale_curve=True)
        out = rec.to_dict()
        answer = out["answers"][0]
        at = answer["at_n_total"]
        assert (at["nlist"], at["nprobe"]) == scale(32, answer["point"]["nprobe"], out["dataset"]["n_base"], 10**7)
        assert answer["deploy"]["faiss_nprobe"] == at["nprobe"]
        assert f"IVF{at['nlist']}," in answer["deploy"]["faiss_index_factory"]
        pred = out["scale_curve"]["prediction"]
        assert (pred["nlist"], pred["nprobe"]) == (at["nlist"], at["nprobe"])
        assert out["verdict_at_n_total"].startswith("meets the target at the sample")
        projected = answer["projected_queries_per_s"]
        assert 0 < projected < answer["point"]["queries_per_s"]  # 1,250× the codes a query at N
        # --min-qps between the projection and the rate measured here: judged at N, it is too slow
        between = (projected * answer["point"]["queries_per_s"]) ** 0.5
        slow = recommend(session, Target(0.7, rerank=False, min_qps=between), cfg, grid)
    again = next(f for f in slow.findings if f.candidate.label == answer["candidate"])
    assert again.verdict == "slow" and again.point.queries_per_s > between > again.projected_qps


def test_at_n_total_names_the_same_memory_as_the_answer():
    """The answer's memory_bytes and its at_n_total.memory_bytes are one figure: the engine's
    bill at N without FAISS's precomputed table, not FAISS CPU's bill with it."""
    from gpupq.grid import Grid
    from gpupq.io import make_synthetic
    from gpupq.recommend import Target, recommend
    from gpupq.session import RunConfig, open_session

    cfg = RunConfig(k=10, queries=100, n_total=10_000_000, timing=False)
    with open_session(make_synthetic(6000, 32, 0), cfg, "numpy") as session:
        out = recommend(session, Target(0.6, rerank=False), cfg, Grid(nlist=[32], m=[8, 16], nbits=[8])).to_dict()
    for f in out["findings"]:
        assert f["at_n_total"]["memory_bytes"] == f["memory_bytes"] and f["at_n_total"]["engine"] == "faiss-cpu"
        assert f["at_n_total"]["memory"]["precomputed_table"] > 0  # FAISS CPU's terms, for reference
