"""Scale curve: the trend fit, and nested subsamples whose trend predicts a size they did not
measure (or gives no extrapolation when there is no trend)."""

from __future__ import annotations

import numpy as np
import pytest

from gpupq.io import Dataset, make_synthetic
from gpupq.scalecurve import fit_trend
from gpupq.settings import Build


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


def _gaussian_split(n=64400, d=16, seed=0):
    from gpupq.io import hold_out

    x = np.random.default_rng(seed).standard_normal((n, d), dtype=np.float32)
    ds = Dataset(x, "gaussian")
    return ds, hold_out(ds, 400, seed)


def test_scale_curve_predicts_a_size_it_did_not_measure():
    """The answer is known: the recall at the full base, measured directly, lies in the band the
    trend of the nested subsamples at 1/16 to 1/2 of it predicts. (Gaussian data: no cluster count
    for nlist to cross, so the trend is steady; 4-bit codes: the PQ trains on its full 4,096-point
    sample at every size.)"""
    from gpupq.backends import NumpyBackend
    from gpupq.scalecurve import nested_bases, scale_curve
    from gpupq.settings import Setting

    ds, split = _gaussian_split()
    be = NumpyBackend()
    build = Build(nlist=512, m=8, nbits=4)
    sizes = [4000, 8000, 16000, 32000]
    a, b = nested_bases(split, [4000, 8000], 3)
    assert np.isin(a, b).all() and not np.isin(a, split.query_ids).any()  # nested, base rows only
    curve = scale_curve(ds, split, build, Setting(8), 10, be, sizes=sizes, n_total=split.n_base)
    assert [p.n for p in curve.points] == sizes
    # the one projection rule: nlist ∝ √n, nprobe ∝ nlist, so the share of codes scanned is kept
    assert [p.nlist for p in curve.points] == [128, 181, 256, 362]
    assert [p.nprobe for p in curve.points] == [2, 3, 4, 6]
    share = [p.scanned_per_query / p.n for p in curve.points]
    assert max(share) / min(share) < 1.3
    assert (curve.nlist_total, curve.nprobe_total) == (512, 8)  # what the memory bill and deploy strings use
    _, low, high = curve.prediction
    measured = scale_curve(ds, split, build, Setting(8), 10, be, sizes=[16000, split.n_base]).points[-1]
    assert low <= measured.recall.mean <= high, (curve.prediction, measured.recall.mean)
    assert high - low < 0.1


def test_scale_curve_never_answers_with_nothing_and_widens_its_band_when_points_scatter():
    from gpupq.backends import NumpyBackend
    from gpupq.io import hold_out
    from gpupq.scalecurve import scale_curve
    from gpupq.settings import Setting

    # 256 natural clusters: at the small sizes nlist is below the cluster count, and recall jumps
    ds = make_synthetic(64000, 32, 0)
    split = hold_out(ds, 400, 0)
    curve = scale_curve(ds, split, Build(512, 16, 4), Setting(4), 10, NumpyBackend(), sizes=[4000, 8000, 16000],
                        n_total=10**8)  # fmt: skip
    assert curve.trend.chi2_per_dof > 4
    mean, low, high = curve.prediction  # an answer, with a band as wide as the points allow
    assert low <= mean <= high and high - low > 0.1
    assert any("scatter about the trend more than their intervals explain" in note for note in curve.notes)


def test_trend_band_is_a_95_percent_band_per_doubling_in_log2():
    """The numbers the report prints, recomputed independently: the slope is per doubling (log2,
    not ln), the band is ±1.96 standard errors (not one, not the full width), and points that
    scatter more than their intervals explain widen it by √(χ²/dof)."""
    ns = np.array([1000, 2000, 4000, 8000, 16000])
    exact = [(int(n), 0.95 - 0.02 * np.log2(n / 1000), 0.01) for n in ns]
    trend = fit_trend(exact)
    assert trend.b == pytest.approx(-0.02, abs=1e-12) and trend.to_dict()["per_doubling"] == trend.b
    x = np.stack([np.ones(len(ns)), np.log2(ns)], axis=1)
    w = np.full(len(ns), (1.96 / 0.01) ** 2)  # σ = half-width / 1.96

    def half_width(cov: np.ndarray, n: int) -> float:
        g = np.array([1.0, np.log2(n)])
        return 1.96 * float(np.sqrt(g @ cov @ g))

    cov = np.linalg.inv(x.T @ (x * w[:, None]))
    mean, low, high = trend.predict(1_024_000)
    assert high - mean == pytest.approx(half_width(cov, 1_024_000), rel=1e-9)
    assert mean - low == pytest.approx(high - mean, rel=1e-9)
    # scatter: alternate ±0.02 about the line, twice the points' σ of 0.005
    noisy = [(n, r + (0.02 if i % 2 else -0.02), h) for i, (n, r, h) in enumerate(exact)]
    t2 = fit_trend(noisy)
    assert t2.chi2_per_dof > 1
    resid_cov = np.linalg.inv(x.T @ (x * w[:, None])) * t2.chi2_per_dof
    m2, _, hi2 = t2.predict(1_024_000)
    assert hi2 - m2 == pytest.approx(half_width(resid_cov, 1_024_000), rel=1e-6)


def test_the_flattening_form_is_chosen_when_it_predicts_the_largest_size_better():
    """Recall falling and flattening (as on real embeddings: 2–6 points from N/8 to N, less each
    doubling): the log-linear line overshoots the largest size, the 1/√N form predicts it, is
    chosen, and the band at N_total spans both forms."""
    from gpupq.scalecurve import fit_trends

    ns = [8000, 16000, 32000, 64000]
    flat = [(n, 0.90 + 3.0 / np.sqrt(n), 0.004) for n in ns]  # 0.934 → 0.912
    best, both = fit_trends(flat)
    assert best.form == "flat" and best.held_out_z < 0.5
    log = next(t for t in both if t.form == "log")
    assert log.held_out_z > best.held_out_z
    far = 64000 * 64
    assert best.predict(far)[0] == pytest.approx(0.90 + 3.0 / np.sqrt(far), abs=1e-6)
    assert log.predict(far)[0] < best.predict(far)[0] - 0.02  # the straight line keeps falling
    # a steady log-linear fall is still told from a flattening one
    steady = [(n, 0.95 - 0.02 * np.log2(n / 8000), 0.004) for n in ns]
    assert fit_trends(steady)[0].form == "log"


def test_band_keeps_a_change_of_regime_open():
    """The 20M measurement (benchmarks/RESULTS.md): recall on the sixteenth's subsamples fell
    steeply, then stopped once nlist passed the data's clusters. Both fitted forms put 20M near 0;
    0.1575 was measured. The band must cover it: it spans a trend that stops at the largest size
    measured. At a size measured, the band is the forms' alone."""
    from gpupq.scalecurve import fit_trends, prediction_band

    half = 0.0089
    measured = [(156_125, 0.678, half), (312_250, 0.4562, half), (624_500, 0.3078, half), (1_249_000, 0.2134, half)]
    trend, trends = fit_trends(measured)
    forms_high = max(t.predict(20_000_000)[2] for t in trends)
    assert forms_high < 0.1  # what the forms alone allowed: the miss
    mean, low, high = prediction_band(trend, trends, measured, 20_000_000)
    assert low <= 0.1575 <= high and high == pytest.approx(0.2134 + half)
    assert mean == trend.predict(20_000_000)[0]
    at_last = prediction_band(trend, trends, measured, 1_249_000)
    assert at_last[2] == max(t.predict(1_249_000)[2] for t in trends)
