"""Ids past 32 bits: a selection packs 32 bits of an id beside its score, so a backend with
``wide_ids`` ranks the ids first; every selection then gives what it gives with small ids.
(The (score, tie-break) keys and topk_exact themselves are tested in test_backends.py.)"""

import numpy as np
import pytest

from gpupq.backends import NARROW_IDS

OFFSET = 2**33 + 12_345  # ids shifted past 32 bits


def test_narrow_backend_refuses_ids_past_32_bits(backend):
    from gpupq.ivf import IVFPQIndex

    from .helpers import clustered

    x = clustered(600, 8, seed=3)
    index = IVFPQIndex(backend, 8, 4, 2, 4)
    index.train(backend.asarray(x), backend.asarray(x), np.random.default_rng(0))
    index.add(backend.asarray(x[:2]), backend.asarray(np.array([0, NARROW_IDS - 1])))  # the largest narrow id
    _, found, _ = index.search(backend.asarray(x[:1]), 3, 4)
    assert backend.to_numpy(found)[0].tolist() == [0, NARROW_IDS - 1, -1]  # given back whole
    for bad in (NARROW_IDS, -1):
        with pytest.raises(ValueError, match="ids must lie in"):
            index.add(backend.asarray(x[:2]), backend.asarray(np.array([5, bad])))


def test_allow_ids_turns_wide_at_32_bits(backend):
    backend.allow_ids(NARROW_IDS - 1)
    assert not backend.wide_ids
    backend.allow_ids(NARROW_IDS)
    assert backend.wide_ids
    backend.allow_ids(5)  # never narrowed again
    assert backend.wide_ids


def test_dataset_of_more_than_32_bit_rows_is_held_out():
    from gpupq.errors import GpupqError
    from gpupq.io import MAX_ROWS, Dataset, hold_out

    big = Dataset(np.broadcast_to(np.zeros((1, 4), np.float32), (2**32 + 10, 4)), "big.npy")
    split = hold_out(big, 10, 0)
    assert split.n_base == 2**32 and split.query_ids.max() < 2**32 + 10
    huge = Dataset(np.broadcast_to(np.zeros((1, 4), np.float32), (MAX_ROWS + 1, 4)), "huge.npy")
    with pytest.raises(GpupqError, match=f"at most {MAX_ROWS:,}"):
        hold_out(huge, 10, 0)


def test_wide_topk_is_the_lexicographic_order(backend):
    rng = np.random.default_rng(1)
    d = rng.integers(0, 4, size=(7, 40)).astype(np.float32)  # many ties
    ids = rng.choice(2**40, size=(7, 40), replace=False).astype(np.int64) + OFFSET
    ids[:, ::9] = -1  # padding, with its own scores: sorts after any id of the same score
    d[:, ::9] = 0.0
    backend.wide_ids = True
    vals, picked = backend.topk_exact(backend.asarray(d), 12, backend.asarray(ids))
    vals, picked = backend.to_numpy(vals), backend.to_numpy(picked)
    for r in range(7):
        key = np.where(ids[r] < 0, np.iinfo(np.int64).max, ids[r])
        order = np.lexsort((key, d[r]))[:12]
        np.testing.assert_array_equal(picked[r], ids[r][order])
        np.testing.assert_array_equal(vals[r], d[r][order])


def test_wide_ids_search_finds_the_same_neighbours(backend):
    """The same index with every id shifted past 32 bits: the same neighbours, in the same
    order (ties included: each row is stored twice), the ids shifted."""
    from gpupq.ivf import IVFPQIndex

    from .helpers import clustered

    half = clustered(800, 8, seed=4)
    x = np.concatenate([half, half])  # each row twice: equal codes, ties broken by id
    q = backend.asarray(half[:50] + 0.01)
    out = []
    for shift in (0, OFFSET):
        backend.wide_ids = bool(shift)
        index = IVFPQIndex(backend, 8, 16, 4, 4)
        index.train(backend.asarray(x), backend.asarray(x), np.random.default_rng(0))
        index.add(backend.asarray(x), backend.asarray(np.arange(len(x), dtype=np.int64) + shift))
        dist, found, _ = index.search(q, 10, 6)
        out.append((backend.to_numpy(dist), backend.to_numpy(found), shift))
    (d0, i0, _), (d1, i1, s1) = out
    np.testing.assert_array_equal(d1, d0)
    np.testing.assert_array_equal(i1, np.where(i0 >= 0, i0 + s1, -1))
    assert (i0[:, 0] % 800 == i0[:, 1] % 800).any()  # twins tied side by side, the smaller id first


@pytest.mark.parametrize("compiled", [True, False])
def test_wide_ids_ground_truth_and_rerank_scores(backend, compiled, monkeypatch):
    from gpupq.knn import exact_knn
    from gpupq.refine import candidate_scores, shared_candidate_scores

    from .helpers import clustered

    if not compiled:
        monkeypatch.setattr(type(backend), "merge_kernel", lambda self: None)
    half = clustered(1500, 12, seed=6)
    x = np.concatenate([half, half])
    q = backend.asarray(half[:30] + 0.02)

    def lift(ids):  # the second copy's ids past 32 bits, the first's small: order kept, span > 2^32
        return np.where(ids >= len(half), ids + OFFSET, ids)

    def chunks(wide):
        for s in range(0, len(x), 700):
            ids = np.arange(s, min(s + 700, len(x)), dtype=np.int64)
            yield (lift(ids) if wide else ids), x[s : s + 700]

    backend.wide_ids = False
    d0, i0 = (backend.to_numpy(a) for a in exact_knn(backend, q, chunks(False), 15, "l2"))
    backend.wide_ids = True
    d1, i1 = (backend.to_numpy(a) for a in exact_knn(backend, q, chunks(True), 15, "l2"))
    np.testing.assert_array_equal(d1, d0)
    np.testing.assert_array_equal(i1, lift(i0))
    assert (i1 < 2**32).any() and (i1 > 2**33).any()

    def fetch(ids):  # rows by id
        ids = backend.to_numpy(ids)
        return backend.asarray(x[np.where(ids >= OFFSET, ids - OFFSET, ids)])

    cands = [backend.asarray(i1[:, :5]), backend.asarray(i1[:, 3:12]), backend.asarray(i1)]
    shared = shared_candidate_scores(backend, q, cands, fetch, "l2")
    for c, s in zip(cands, shared, strict=True):
        np.testing.assert_array_equal(
            backend.to_numpy(s), backend.to_numpy(candidate_scores(backend, q, c, fetch, "l2"))
        )
