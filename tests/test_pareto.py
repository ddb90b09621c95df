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
