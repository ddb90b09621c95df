"""Exact top-k by (score, tie-break) keys, and the scan's chunk plan."""

import numpy as np
import pytest


def test_order_keys_round_trip_bit_for_bit(backend):
    """key_values and key_tiebreak give back exactly what order_key packed: catches a wrong
    float-to-integer map (negatives, -0.0, infinities) or a lost id bit."""
    v = np.array([[-np.inf, -3.5, -1e-30, -0.0, 0.0, 1e-30, 2.25, np.float32(3.4e38), np.inf]], np.float32)
    ids = np.array([[0, 1, 2**31, 2**32 - 2, -1, 5, 7, 9, 11]], np.int64)
    keys = backend.order_key(backend.asarray(v), backend.asarray(ids))
    np.testing.assert_array_equal(backend.to_numpy(backend.key_values(keys)).view(np.int32), v.view(np.int32))
    np.testing.assert_array_equal(backend.to_numpy(backend.key_tiebreak(keys)), ids)
    # the keys order as the scores do (-0.0 just below 0.0)
    order = np.argsort(backend.to_numpy(keys)[0], kind="stable")
    np.testing.assert_array_equal(order, np.arange(v.shape[1]))


@pytest.mark.parametrize("tiebreak", [False, True])
def test_topk_exact_breaks_ties_by_tiebreak(backend, tiebreak):
    """topk_exact picks the k smallest by (score, tie-break), as a lexicographic sort does, on
    rows full of ties; k above the row length is clipped. Catches a selection that keeps an
    arbitrary one of equal scores (the layout then changes the answer)."""
    rng = np.random.default_rng(0)
    d = rng.integers(0, 4, size=(50, 40)).astype(np.float32) - 1.5  # few distinct values
    tb = rng.permutation(50 * 40).reshape(50, 40).astype(np.int64) if tiebreak else None
    for k, sort in ((7, True), (7, False), (40, True), (60, True)):
        vals, picks = backend.topk_exact(backend.asarray(d), k, None if tb is None else backend.asarray(tb), sort)
        vals, picks = backend.to_numpy(vals), backend.to_numpy(picks)
        cols = np.broadcast_to(np.arange(40), d.shape) if tb is None else tb
        order = np.lexsort((cols, d), axis=1)[:, : min(k, 40)]
        want_v, want_t = np.take_along_axis(d, order, 1), np.take_along_axis(cols, order, 1)
        if not sort:
            o = np.lexsort((picks, vals), axis=1)
            vals, picks = np.take_along_axis(vals, o, 1), np.take_along_axis(picks, o, 1)
        np.testing.assert_array_equal(vals, want_v)
        np.testing.assert_array_equal(picks, want_t)


def test_ids_beyond_32_bits_are_refused(backend):
    """Exact top-k packs an id into 32 bits beside its score: an index refuses ids it could not
    give back, and a dataset with more rows than that is refused in one line."""
    from gpupq.errors import GpupqError
    from gpupq.io import MAX_ROWS, Dataset, hold_out
    from gpupq.ivf import IVFPQIndex

    from .helpers import clustered

    x = clustered(600, 8, seed=3)
    index = IVFPQIndex(backend, 8, 4, 2, 4)
    index.train(backend.asarray(x), backend.asarray(x), np.random.default_rng(0))
    index.add(backend.asarray(x[:2]), backend.asarray(np.array([0, 2**32 - 2])))  # the largest allowed
    _, found, _ = index.search(backend.asarray(x[:1]), 3, 4)
    assert backend.to_numpy(found)[0].tolist() == [0, 2**32 - 2, -1]  # given back whole
    for bad in (2**32 - 1, -1):
        with pytest.raises(ValueError, match="ids must lie in"):
            index.add(backend.asarray(x[:2]), backend.asarray(np.array([5, bad])))
    huge = Dataset(np.broadcast_to(np.zeros((1, 4), np.float32), (MAX_ROWS + 1, 4)), "huge.npy")
    with pytest.raises(GpupqError, match="at most 4,294,967,295"):
        hold_out(huge, 10, 0)
