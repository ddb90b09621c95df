"""Pareto frontiers of operating points."""

from __future__ import annotations

import numpy as np

from gpupq.pareto import non_dominated


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


def test_a_difference_within_the_noise_decides_nothing():
    """Queries/s measured with a spread: one point beats another only beyond both ranges, so two
    runs of the same sweep keep the same frontier (56 points one run, 51 the next, before)."""
    values = np.array([[0.9, 1000.0], [0.8, 1040.0], [0.8, 1500.0]])  # (recall, qps)
    low = values.copy()
    high = values.copy()
    low[:, 1], high[:, 1] = values[:, 1] * 0.9, values[:, 1] * 1.1
    # without ranges, 1 is beaten by 2 (same recall, more queries/s) and stays only against 0
    assert non_dominated(values, [True, True]).tolist() == [True, False, True]
    # with ±10%: 1's range overlaps 0's on queries/s, and 0 is better on recall: 0 still beats it;
    # 2's range is clear of 1's: 2 beats it beyond doubt
    assert non_dominated(values, [True, True], low, high).tolist() == [True, False, True]
    # 1 at 1,040 against 0 at 1,000 and recall equal: a 4% difference, within the noise: both stay
    even = np.array([[0.9, 1000.0], [0.9, 1040.0]])
    assert non_dominated(even, [True, True]).tolist() == [False, True]
    assert non_dominated(even, [True, True], even * [1, 0.9], even * [1, 1.1]).tolist() == [True, True]


def test_sweep_ranges_come_from_the_runs():
    from gpupq.sweep import QPS_NOISE, qps_range
    from gpupq.timing import Runs

    from .test_plot import _point

    timed = _point(64, 4, 1, 0.5, 1000.0)
    timed.runs = Runs([0.1, 0.08, 0.2])  # median 0.1 s: 1,000 q/s; its runs 500 to 1,250
    one_run = _point(64, 4, 4, 0.6, 2000.0)
    untimed = _point(64, 4, 16, 0.7, None)
    low, high = qps_range([timed, one_run, untimed])
    assert (low[0], high[0]) == (500.0, 1250.0)
    assert (low[1], high[1]) == (2000 * (1 - QPS_NOISE), 2000 * (1 + QPS_NOISE))
    assert np.isnan(low[2]) and np.isnan(high[2])
