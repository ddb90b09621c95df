"""Synthetic data."""

import numpy as np

from gpupq.io import make_synthetic


def test_synthetic_is_clustered_and_seeded():
    a, b = make_synthetic(1000, 16, seed=3), make_synthetic(1000, 16, seed=3)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.array.dtype == np.float32
    # rows of the same centre (i % 4) are much closer than rows of different centres
    x = a.array
    same = np.linalg.norm(x[0] - x[4])
    other = np.linalg.norm(x[0] - x[1])
    assert same < other
