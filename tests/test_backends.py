"""The backend classes (gpupq/backends.py): exact top-k by (score, tie-break) keys, which backends
``--backend`` gives, row groups per thread and the work budgets' out-of-memory shrink. (The
compiled kernels are in test_native.py, the CuPy class over its stand-in in test_cupy_fake.py.)"""

import numpy as np
import pytest

from gpupq.backends import NumpyBackend, cupy_status, get_backends, usable_backends
from gpupq.errors import GpupqError
from gpupq.threads import ThreadBudget


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


@pytest.mark.skipif(cupy_status().usable, reason="a GPU is present")
def test_cupy_without_gpu_says_why():
    with pytest.raises(GpupqError, match="--backend cupy is not usable here: "):
        get_backends("cupy")
    assert [b.name for b in get_backends("auto")] == ["numpy"]


def test_unknown_backend_name_is_refused_and_names_are_case_blind():
    with pytest.raises(GpupqError, match="unknown backend 'gpu'; choose one of auto, numpy, cupy, all"):
        get_backends("gpu")
    assert [b.name for b in get_backends("NumPy")] == ["numpy"]


def test_usable_backends_put_numpy_first():
    names = [b.name for b in usable_backends()]
    assert names[0] == "numpy"
    assert names == (["numpy", "cupy"] if cupy_status().usable else ["numpy"])
    assert [b.name for b in get_backends("all")] == names


@pytest.mark.parametrize(("threads", "n"), [(1, 10), (3, 10), (4, 8), (8, 3), (3, 0), (5, 1)])
def test_row_groups_cut_the_rows_once_each(threads, n):
    """One even group per thread (fewer when n is small), together covering range(n) once, in order."""
    be = NumpyBackend()
    be.budget = ThreadBudget(threads)
    groups = be.row_groups(n)
    assert len(groups) <= max(threads, 1)
    assert [i for g in groups for i in range(n)[g]] == list(range(n))
    sizes = [g.stop - g.start for g in groups]
    assert all(size > 0 for size in sizes)
    assert all(size == -(-n // threads) for size in sizes[:-1])  # the last takes what is left


def test_out_of_memory_shrinks_every_budget_then_says_so_in_one_line(monkeypatch):
    """retrying runs fn again with each work size 4x smaller after each MemoryError, up to
    OOM_RETRIES times; then one GpupqError naming the phase and the shrink reached. The shrink
    is the phase's: the next phase starts at full size. The pool is released once the failed
    attempt's arrays are gone (not while the exception's traceback still holds them)."""
    import weakref

    be = NumpyBackend()
    full = (be.work_bytes(), be.block_bytes(), be.scan_bytes())
    seen, held, alive_at_release = [], [], []
    monkeypatch.setattr(be, "release_memory", lambda: alive_at_release.append(held[-1]() is not None))

    def fails_twice():
        seen.append((be.work_bytes(), be.block_bytes(), be.scan_bytes()))
        scratch = np.empty(1000, dtype=np.float32)  # what a failed attempt had allocated
        held.append(weakref.ref(scratch))
        if len(seen) < 3:
            raise MemoryError("out of memory")
        return "done"

    assert be.retrying(fails_twice, "the test phase") == "done"
    assert seen == [tuple(s // f for s in full) for f in (1, 4, 16)]
    assert alive_at_release == [False, False]
    assert be.shrink == 1 and (be.work_bytes(), be.block_bytes(), be.scan_bytes()) == full

    def always():
        raise MemoryError("no room\nat all")

    with pytest.raises(GpupqError) as err:
        NumpyBackend().retrying(always, "the test phase")
    text = str(err.value)
    assert "\n" not in text
    assert text.startswith("the test phase ran out of memory on numpy even with work chunks 1/64 ")
    assert "(no room)" in text
