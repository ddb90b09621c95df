"""The numpy backend's compiled kernels (gpupq/_native.c) against their array forms.

Each kernel this processor runs (AVX-512, AVX2) is tested by name, so a machine with AVX-512
tests the AVX2 one too. ``nearest`` (``Backend.nearest_kernel``): the same labels as a product
and an argmin (the first of equal scores), the same scores up to float rounding. ``topk_merge``
(``Backend.merge_kernel``): the same running top-k as a stable sort of everything seen.
"""

from __future__ import annotations

import itertools
import platform

import numpy as np
import pytest

from gpupq import backends
from gpupq.backends import NATIVE_ENV, NATIVE_MAX_D, NATIVE_MIN_K, NumpyBackend
from gpupq.kmeans import assign, score_operands

from .helpers import ChunkedNumpyBackend, clustered

native = backends._native
KERNELS = list(native.KERNELS) if native is not None else []


def test_the_kernel_is_built_on_x86() -> None:
    """An install that lost the extension (no compiler, a packaging slip) still runs, at a
    third of the speed: fail here rather than let CI measure the slow path unnoticed."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        pytest.skip("the compiled kernels are x86 only")
    assert native is not None, "gpupq._native did not build: install a C compiler and reinstall gpupq"
    assert KERNELS, "gpupq._native has no kernel for this processor (needs AVX2 and FMA)"


def _operands(c: np.ndarray, metric: str = "l2") -> np.ndarray:
    """targets (k, d) -> ops (d + 1, k) C-contiguous, as kmeans.assign hands the kernel."""
    return np.ascontiguousarray(score_operands(NumpyBackend(), c[None], metric)[0].T)


def _array_form(x: np.ndarray, ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The product-and-argmin form: labels (n,) int64, scores (n,) float32."""
    x1 = np.hstack([x, np.ones((len(x), 1), np.float32)])
    s = x1 @ ops
    lab = s.argmin(axis=1)
    return lab, s[np.arange(len(x)), lab]


def _run(kernel: str, x: np.ndarray, ops: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    lab = np.full(len(x), -1, np.int64)
    best = np.full(len(x), np.nan, np.float32)
    native.nearest(x, ops, lab, best, kernel)
    return lab, best


def _read_only(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    out.setflags(write=False)
    return out


def _each_raises(fn: object, calls: list[tuple[object, ...]]) -> None:
    """Every argument tuple is refused with one ValueError (never a read or write past an array)."""
    for args in calls:
        with pytest.raises(ValueError):
            fn(*args)  # type: ignore[operator]


needs_kernels = pytest.mark.skipif(not KERNELS, reason="no compiled kernel on this machine")


@needs_kernels
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("d", [1, 4, 8, 13, 16, 24, 32])
@pytest.mark.parametrize("k", [64, 100, 256, 1000])
def test_kernel_matches_product_and_argmin(kernel: str, d: int, k: int) -> None:
    """Every lane, accumulator and the scalar remainder (k 100 and 1000 are not multiples of the
    vector step) find the same target as the array form, with the same score."""
    rng = np.random.default_rng(d * 1000 + k)
    c = rng.standard_normal((k, d), dtype=np.float32)
    x = rng.standard_normal((3000, d), dtype=np.float32)
    ops = _operands(c)
    lab, best = _run(kernel, x, ops)
    ref_lab, ref_best = _array_form(x, ops)
    np.testing.assert_allclose(best, ref_best, rtol=1e-5, atol=1e-4)
    # the two sums round differently: a label may differ only where two scores tie within that
    differ = lab != ref_lab
    assert differ.mean() < 0.01
    xd = x[differ].astype(np.float64)
    mine, theirs = (((xd - c[labels[differ]]) ** 2).sum(1) for labels in (lab, ref_lab))
    np.testing.assert_allclose(mine, theirs, rtol=1e-5, atol=1e-4)
    # the labels were all written, and the score is the score of the label found
    x1 = np.hstack([x, np.ones((len(x), 1), np.float32)])
    np.testing.assert_allclose(best, (x1 * ops[:, lab].T).sum(1), rtol=1e-5, atol=1e-4)


@needs_kernels
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("first", [3, 17, 40, 63, 70, 130])
def test_equal_scores_give_the_first_target(kernel: str, first: int) -> None:
    """A target repeated in other lanes, accumulators, steps and the scalar remainder: the
    first copy wins, as numpy's argmin and FAISS pick."""
    rng = np.random.default_rng(first)
    k, d = 200, 8  # 200: three vector steps of 64 (avx512) or six of 32 (avx2), then a remainder
    c = rng.standard_normal((k, d), dtype=np.float32) * 10
    target = np.full(d, 0.25, np.float32)
    # first + 32 and + 64: the same lane of the same accumulator one step on (avx2, avx512)
    for j in (first, first + 1, first + 16, first + 32, first + 33, first + 64, 150, 199):
        c[min(j, k - 1)] = target
    x = np.tile(target, (5, 1))
    lab, best = _run(kernel, x, _operands(c))
    assert (lab == first).all(), lab
    ref_lab, ref_best = _array_form(x, _operands(c))
    assert (ref_lab == first).all()
    np.testing.assert_allclose(best, ref_best, atol=1e-6)


@needs_kernels
@pytest.mark.parametrize("kernel", KERNELS)
def test_inner_product_scores_and_strided_rows(kernel: str) -> None:
    """ip scores (−⟨x, c⟩) and rows read at a stride (a sub-space of wider vectors, as PQ
    encoding passes them), never copied."""
    rng = np.random.default_rng(5)
    wide = rng.standard_normal((500, 4 * 8), dtype=np.float32)
    c = rng.standard_normal((256, 8), dtype=np.float32)
    view = wide.reshape(500, 4, 8)[:, 2]  # (500, 8), rows 128 bytes apart
    assert not view.flags.c_contiguous
    ops = _operands(c, "ip")
    lab, best = _run(kernel, view, ops)
    ref = (view @ c.T).argmax(axis=1)
    assert (lab == ref).mean() > 0.998
    np.testing.assert_allclose(best, -(view * c[lab]).sum(1), rtol=1e-5, atol=1e-5)


@needs_kernels
@pytest.mark.parametrize("kernel", KERNELS)
def test_all_infinite_scores_keep_target_zero(kernel: str) -> None:
    ops = np.zeros((3, 128), np.float32)
    ops[2] = np.inf
    lab, best = _run(kernel, np.ones((4, 2), np.float32), ops)
    assert (lab == 0).all() and np.isinf(best).all()


@needs_kernels
def test_bad_arguments_raise_instead_of_reading_past_arrays() -> None:
    x = np.zeros((10, 8), np.float32)
    ops = np.zeros((9, 64), np.float32)
    lab, best = np.zeros(10, np.int64), np.zeros(10, np.float32)
    bad = [
        (x.astype(np.float64), ops, lab, best),  # dtype
        (x, ops[:8], lab, best),  # ops rows != d + 1
        (x, ops, lab[:9], best),  # too few labels
        (x, ops, lab.astype(np.int32), best),
        (x[:, ::2], np.zeros((5, 64), np.float32), lab, best),  # rows not contiguous
        (x, np.asfortranarray(np.zeros((9, 64), np.float32)), lab, best),
    ]
    _each_raises(native.nearest, [*bad, (x, ops, _read_only(lab), best)])
    with pytest.raises(ValueError, match="no kernel"):
        native.nearest(x, ops, lab, best, "sse1")


def test_which_sizes_take_the_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    be = NumpyBackend()
    monkeypatch.delenv(NATIVE_ENV, raising=False)
    if not KERNELS:
        assert be.nearest_kernel(8, 256) is None
        assert "array form" in be.kernel_description()
        return
    widest = NATIVE_MAX_D[KERNELS[0]]
    assert be.nearest_kernel(8, 256) is native.nearest
    assert be.nearest_kernel(widest, NATIVE_MIN_K) is native.nearest
    assert be.nearest_kernel(widest + 1, 256) is None  # a BLAS product is as fast there
    assert be.nearest_kernel(8, NATIVE_MIN_K - 1) is None
    assert be.merge_kernel() is native.topk_merge
    assert KERNELS[0] in be.device_description()
    monkeypatch.setenv(NATIVE_ENV, "0")
    assert be.nearest_kernel(8, 256) is native.nearest  # chosen once, when the backend is made
    off = NumpyBackend()
    assert off.nearest_kernel(8, 256) is None and off.merge_kernel() is None
    assert f"{NATIVE_ENV}=0" in off.kernel_description()
    x = np.arange(12, dtype=np.float32).reshape(4, 3)
    assert off.label_sum_layout(x).shape == (3, 4)  # the array form's column layout
    assert be.label_sum_layout(x) is x


@needs_kernels
@pytest.mark.parametrize("metric", ["l2", "ip"])
@pytest.mark.parametrize("threads", [1, 2])
def test_assign_through_the_kernel_equals_the_array_form(metric: str, threads: int) -> None:
    """kmeans.assign on many sets at once (a PQ encoding's shape, strided sub-vectors), with
    the squared distances it returns for the k-means objective."""
    from gpupq.threads import ThreadBudget

    x = clustered(4000, 64, seed=3)
    view = x.reshape(4000, 8, 8).transpose(1, 0, 2)  # (8 sets, 4000, 8), strided
    rng = np.random.default_rng(4)
    cent = rng.standard_normal((8, 256, 8), dtype=np.float32) * 3
    fast, slow = NumpyBackend(), ChunkedNumpyBackend()
    fast.budget = slow.budget = ThreadBudget(threads)
    assert fast.nearest_kernel(8, 256) is not None
    lab, score = assign(fast, view, cent, metric)
    ref_lab, ref_score = assign(slow, view, cent, metric)
    assert (lab == ref_lab).mean() > 0.999
    np.testing.assert_allclose(score, ref_score, rtol=1e-4, atol=1e-3)
    if metric == "l2":
        exact = ((view - np.take_along_axis(cent, lab[..., None], axis=1)) ** 2).sum(-1)
        np.testing.assert_allclose(score, exact, rtol=1e-4, atol=1e-3)
    lab_only, none = assign(fast, view, cent, metric, with_score=False)
    assert none is None and (lab_only == lab).all()


def _merge_all(
    kernel: str, blocks: list[np.ndarray], ids: list[np.ndarray], k: int, bias: list[np.ndarray] | None = None
) -> tuple[np.ndarray, np.ndarray]:
    rows = blocks[0].shape[0]
    best_d = np.full((rows, k), np.inf, np.float32)
    best_i = np.full((rows, k), -1, np.int64)
    for j, (sc, ii) in enumerate(zip(blocks, ids, strict=True)):
        native.topk_merge(sc, ii, best_d, best_i, None if bias is None else bias[j], kernel)
    return best_d, best_i


@needs_kernels
@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("k", [1, 10, 100])
def test_topk_merge_equals_a_stable_sort_of_all_blocks(kernel: str, k: int) -> None:
    """Integer-valued scores tie often: of equal scores the first seen (earlier block, then
    earlier column) comes first, as a stable sort of the row in the order seen. Widths that
    are not multiples of the vector step exercise the scalar remainder."""
    rng = np.random.default_rng(k)
    widths = [37, 16, 300, 1, 1000, 129]
    blocks = [rng.integers(0, 200, (50, w)).astype(np.float32) for w in widths]
    start = np.cumsum([0, *widths])
    ids = [np.arange(a, b, dtype=np.int64) * 3 + 7 for a, b in itertools.pairwise(start)]
    best_d, best_i = _merge_all(kernel, blocks, ids, k)
    allv = np.hstack(blocks)
    alli = np.hstack(ids)
    order = np.argsort(allv, axis=1, kind="stable")[:, :k]
    np.testing.assert_array_equal(best_d, np.take_along_axis(allv, order, axis=1))
    np.testing.assert_array_equal(best_i, alli[order])


@needs_kernels
@pytest.mark.parametrize("kernel", KERNELS)
def test_topk_merge_skips_held_out_rows_and_reads_strided_rows(kernel: str) -> None:
    """Held-out base rows (id -1, scored +inf) never enter: rows with fewer other scores than k
    keep inf and id -1 at the end. A block may be a column slice of a wider buffer."""
    rng = np.random.default_rng(9)
    buf = rng.standard_normal((20, 64), dtype=np.float32)
    buf[:, 1::3] = np.inf
    block = buf[:, 10:50]  # rows 256 bytes apart, 40 wide
    ids = np.arange(100, 140, dtype=np.int64)
    ids[np.isinf(block[0])] = -1
    best_d, best_i = _merge_all(kernel, [block], [ids], 30)
    finite = np.isfinite(block)
    assert finite.sum(1).max() < 30
    for r in range(20):
        want = np.sort(block[r][finite[r]])
        np.testing.assert_array_equal(best_d[r, : len(want)], want)
        assert np.isinf(best_d[r, len(want) :]).all() and (best_i[r, len(want) :] == -1).all()
        np.testing.assert_array_equal(block[r, best_i[r, : len(want)] - 100], want)


@needs_kernels
@pytest.mark.parametrize("kernel", KERNELS)
def test_topk_merge_breaks_ties_by_id_whatever_the_order_seen(kernel: str) -> None:
    """Equal scores: the smaller id first, even when it comes later (ids need not ascend), and
    a later equal score with a smaller id displaces the k-th."""
    rng = np.random.default_rng(2)
    blocks = [rng.integers(0, 5, (40, w)).astype(np.float32) for w in (50, 33, 70)]
    ids = [rng.permutation(1000)[:w].astype(np.int64) for w in (50, 33, 70)]
    best_d, best_i = _merge_all(kernel, blocks, ids, 12)
    allv, alli = np.hstack(blocks), np.hstack(ids)
    for r in range(40):
        order = np.lexsort((alli, allv[r]))[:12]  # by score, then id
        np.testing.assert_array_equal(best_d[r], allv[r, order])
        np.testing.assert_array_equal(best_i[r], alli[order])


@needs_kernels
@pytest.mark.parametrize("kernel", KERNELS)
def test_topk_merge_adds_each_columns_bias(kernel: str) -> None:
    """A per-column bias (the ground truth passes each base row's squared norm, so its product
    needs no extra column) merges exactly as the block with the bias added first."""
    rng = np.random.default_rng(4)
    widths = (70, 33, 129)
    blocks = [rng.integers(-50, 50, (30, w)).astype(np.float32) for w in widths]
    bias = [rng.integers(0, 20, w).astype(np.float32) for w in widths]
    ids = [np.arange(w, dtype=np.int64) + 1000 * i for i, w in enumerate(widths)]
    got = _merge_all(kernel, blocks, ids, 7, bias)
    want = _merge_all(kernel, [b + c[None] for b, c in zip(blocks, bias, strict=True)], ids, 7)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])
    allv = np.hstack([b + c[None] for b, c in zip(blocks, bias, strict=True)])
    alli = np.hstack(ids)
    order = np.lexsort((np.broadcast_to(alli, allv.shape), allv), axis=1)[:, :7]
    np.testing.assert_array_equal(got[0], np.take_along_axis(allv, order, axis=1))


@needs_kernels
def test_topk_merge_bad_arguments_raise() -> None:
    sc = np.zeros((4, 32), np.float32)
    ids = np.arange(32, dtype=np.int64)
    bd, bi = np.full((4, 5), np.inf, np.float32), np.full((4, 5), -1, np.int64)
    bad = [
        (sc.astype(np.float64), ids, bd, bi),
        (sc, ids[:31], bd, bi),
        (sc, ids, bd[:3], bi),
        (sc, ids, bd, bi[:, :4]),
        (sc, ids.astype(np.int32), bd, bi),
        (sc[:, ::2], ids[:16], bd, bi),
        (sc, ids, np.asfortranarray(bd), bi),
        (sc, ids, bd, bi, np.zeros(31, np.float32)),  # bias too short
        (sc, ids, bd, bi, np.zeros(32, np.float64)),
    ]
    _each_raises(native.topk_merge, [*bad, (sc, ids, _read_only(bd), bi)])


@needs_kernels
@pytest.mark.parametrize("threads", [1, 2])
@pytest.mark.parametrize("width", [1, 8, 13, 128])
def test_centroid_sums_equal_the_column_form_bit_for_bit(threads: int, width: int) -> None:
    """Both sum each label's rows in row order in float32 (FAISS's order), so the sums are
    equal to the last bit, column ranges on threads included."""
    from gpupq.threads import ThreadBudget

    rng = np.random.default_rng(width)
    x = (rng.standard_normal((5000, width)) * 1e3).astype(np.float32)
    labels = rng.integers(0, 301, 5000)
    labels[:7] = 300  # the last row
    fast, slow = NumpyBackend(), ChunkedNumpyBackend()
    fast.budget = slow.budget = ThreadBudget(threads)
    got = fast.sum_rows_by_label(labels, fast.label_sum_layout(x), 302)
    want = slow.sum_rows_by_label(labels, slow.label_sum_layout(x), 302)
    assert got.shape == (302, width) and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)
    assert (got[301] == 0).all()
    np.testing.assert_allclose(got.sum(0), x.astype(np.float64).sum(0), rtol=1e-4)


@needs_kernels
def test_centroid_sums_reject_bad_labels_before_writing() -> None:
    x = np.ones((6, 4), np.float32)
    out = np.zeros((3, 4), np.float32)
    for bad in (np.array([0, 1, 2, 3, 0, 0]), np.array([0, -1, 0, 0, 0, 0])):
        with pytest.raises(ValueError, match="outside"):
            native.sum_rows(bad, x, out)
        assert (out == 0).all()
    calls = [
        (np.zeros(5, np.int64), x, out),  # too few labels
        (np.zeros(6, np.int32), x, out),
        (np.zeros(6, np.int64), x, np.zeros((3, 5), np.float32)),
        (np.zeros(6, np.int64), x[:, ::2], out[:, :2]),  # rows not contiguous
    ]
    _each_raises(native.sum_rows, calls)
