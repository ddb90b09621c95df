"""Split: held-out queries, base samples, and query files."""

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.io import Dataset, hold_out, make_synthetic

from .helpers import clustered


def test_hold_out_removes_queries_from_base():
    ds = make_synthetic(5000, 8, seed=1)
    split = hold_out(ds, 123, seed=2)
    assert len(split.query_ids) == 123 and split.n_base == 5000 - 123
    seen_ids, seen_rows = [], []
    for ids, x in split.iter_base(chunk=777):
        seen_ids.append(ids)
        seen_rows.append(x)
    ids = np.concatenate(seen_ids)
    np.testing.assert_array_equal(ids, split.base_ids())
    assert not np.isin(split.query_ids, ids).any()
    np.testing.assert_array_equal(np.concatenate(seen_rows), ds.array[ids])
    np.testing.assert_array_equal(split.queries, ds.array[split.query_ids])


def test_sample_base_draws_only_base_rows():
    ds = make_synthetic(3000, 4)
    split = hold_out(ds, 500, seed=0)
    sample = split.sample_base(2000, seed=0)
    assert len(np.unique(sample)) == 2000
    assert np.isin(sample, split.base_ids()).all()
    everything = split.sample_base(10**6, seed=0)
    np.testing.assert_array_equal(np.sort(everything), split.base_ids())


def test_sample_base_is_nested_seeded_and_uniform(monkeypatch):
    import gpupq.io.split as split_module

    monkeypatch.setattr(split_module, "_SAMPLE_CHUNK", 1000)  # several chunks, so the running selection is exercised
    split = hold_out(make_synthetic(20000, 4), 100, seed=0)
    big = split.sample_base(5000, seed=3)
    # a smaller sample is a prefix of a larger one: an estimate and a sweep train on the same points
    np.testing.assert_array_equal(split.sample_base(700, seed=3), big[:700])
    assert not np.array_equal(split.sample_base(700, seed=4), big[:700])
    # uniform over the base: each tenth of the base gets about a tenth of the sample, in random order
    share = np.histogram(big, bins=10, range=(0, 20000))[0] / len(big)
    assert np.abs(share - 0.1).max() < 0.02
    assert not (np.diff(big) > 0).all()


def test_query_file_values_are_validated_too():
    from gpupq.io import with_query_file

    base = Dataset(clustered(500, 8), "base.npy")
    with pytest.raises(GpupqError, match=r"q\.npy: 5 of 5 rows are nonzero but become all zeros"):
        with_query_file(base, Dataset(np.full((5, 8), 1e-50), "q.npy"))
    with pytest.raises(GpupqError, match=r"q\.npy: 1 of 5 rows contain NaN"):
        with_query_file(base, Dataset(np.where(np.arange(40).reshape(5, 8) == 9, np.nan, 1.0), "q.npy"))
