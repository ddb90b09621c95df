"""Ids that exact top-k could not pack beside a score (32 bits) are refused where they come in.
(The (score, tie-break) keys and topk_exact themselves are tested in test_backends.py.)"""

import numpy as np
import pytest


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
