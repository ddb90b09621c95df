import hashlib

import numpy as np
import pytest

from gpupq.data import Dataset, hold_out, make_synthetic
from gpupq.errors import GpupqError
from gpupq.formats import load_npy

from .conftest import clustered


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "int8", "uint8", "int32", "int64"])
def test_npy_dtypes_read_as_float32(tmp_path, dtype):
    x = (clustered(300, 8) * 4).astype(dtype)
    path = tmp_path / "x.npy"
    np.save(path, x)
    ds = load_npy(path)
    assert isinstance(ds.array, np.memmap)
    assert (ds.n, ds.d, ds.dtype) == (300, 8, dtype)
    rows = ds.rows(np.array([5, 0, 299]))
    assert rows.dtype == np.float32
    np.testing.assert_array_equal(rows, x[[5, 0, 299]].astype(np.float32))
    np.testing.assert_array_equal(ds.chunk(10, 20), x[10:20].astype(np.float32))


def test_fortran_order_npy(tmp_path):
    x = np.asfortranarray(clustered(100, 6))
    np.save(tmp_path / "f.npy", x)
    np.testing.assert_array_equal(load_npy(tmp_path / "f.npy").chunk(0, 100), x)


def test_cosine_rows_are_normalised():
    ds = Dataset(clustered(50, 8), "x", metric="cosine")
    np.testing.assert_allclose(np.linalg.norm(ds.rows(np.arange(50)), axis=1), 1.0, rtol=1e-6)


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
    import gpupq.data as data

    monkeypatch.setattr(data, "_SAMPLE_CHUNK", 1000)  # several chunks, so the running selection is exercised
    split = hold_out(make_synthetic(20000, 4), 100, seed=0)
    big = split.sample_base(5000, seed=3)
    # a smaller sample is a prefix of a larger one: an estimate and a sweep train on the same points
    np.testing.assert_array_equal(split.sample_base(700, seed=3), big[:700])
    assert not np.array_equal(split.sample_base(700, seed=4), big[:700])
    # uniform over the base: each tenth of the base gets about a tenth of the sample, in random order
    share = np.histogram(big, bins=10, range=(0, 20000))[0] / len(big)
    assert np.abs(share - 0.1).max() < 0.02
    assert not (np.diff(big) > 0).all()


def test_synthetic_is_clustered_and_seeded():
    a, b = make_synthetic(1000, 16, seed=3), make_synthetic(1000, 16, seed=3)
    np.testing.assert_array_equal(a.array, b.array)
    assert a.array.dtype == np.float32
    # rows of the same centre (i % 4) are much closer than rows of different centres
    x = a.array
    same = np.linalg.norm(x[0] - x[4])
    other = np.linalg.norm(x[0] - x[1])
    assert same < other


def test_input_file_is_not_modified(tmp_path):
    import gpupq

    path = tmp_path / "x.npy"
    np.save(path, clustered(3000, 16))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    gpupq.estimate(load_npy(path), gpupq.EstimateConfig(m=4, nlist=16, nprobe=4, nbits=4), "numpy")
    gpupq.estimate(load_npy(path), gpupq.EstimateConfig(m=4, nlist=16, nprobe=4, nbits=4, metric="cosine"), "numpy")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


def _save(tmp_path, arr, name="bad.npy", **kw):
    path = tmp_path / name
    np.save(path, arr, **kw)
    return path


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p / "missing.npy", "no such file"),
        (lambda p: p, "is a directory"),
        (lambda p: (p / "t.npy").write_text("hello world, not numpy") and p / "t.npy", "not an .npy file"),
        (lambda p: _save(p, np.array([{"a": 1}, None], dtype=object), allow_pickle=True), "pickled"),
        (lambda p: _save(p, np.zeros(10, np.float32)), "expected 2-D"),
        (lambda p: _save(p, np.zeros((2, 3, 4), np.float32)), "expected 2-D"),
        (lambda p: _save(p, np.zeros((4, 2), np.complex64)), "not a real number type"),
        (lambda p: _save(p, np.zeros((0, 8), np.float32)), "empty"),
    ],
)
def test_bad_files(tmp_path, make, message):
    with pytest.raises(GpupqError, match=message):
        load_npy(make(tmp_path))


def test_truncated_file(tmp_path):
    path = _save(tmp_path, np.zeros((100, 8), np.float32))
    data = path.read_bytes()
    path.write_bytes(data[:-100])
    with pytest.raises(GpupqError, match="truncated"):
        load_npy(path)


def test_nan_rows_are_counted(tmp_path):
    x = clustered(1000, 8)
    x[[3, 500, 501], 2] = np.nan
    x[700, 0] = np.inf
    with pytest.raises(GpupqError, match=r"4 of 1000 rows contain NaN or Inf \(first at row 3\)"):
        load_npy(_save(tmp_path, x)).validate(chunk=128)


def test_zero_rows_under_cosine(tmp_path):
    x = clustered(1000, 8)
    x[[10, 20]] = 0
    ds = load_npy(_save(tmp_path, x), metric="cosine")
    with pytest.raises(GpupqError, match="2 rows are all zeros"):
        ds.validate(chunk=100)
    load_npy(_save(tmp_path, x)).validate()  # fine under l2


def test_unreadable_file(tmp_path, monkeypatch):
    """Permission errors (not reproducible as root with chmod) get their own message."""
    import builtins

    path = _save(tmp_path, np.zeros((10, 4), np.float32))
    real_open = builtins.open

    def deny(file, *args, **kwargs):
        if str(file) == str(path):
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", deny)
    with pytest.raises(GpupqError, match="permission denied"):
        load_npy(path)


# Values that only go bad in float32: validation runs on what is computed on.
@pytest.mark.parametrize(
    "make,metric,message",
    [
        (lambda: np.full((50, 4), 1e39), "l2", r"50 of 50 rows hold values beyond float32's range .*first at row 0"),
        (
            lambda: np.vstack([clustered(49, 4).astype(np.float64), np.full((1, 4), 1e-50)]),
            "l2",
            r"1 of 50 rows are nonzero but become all zeros in float32 .*first at row 49.*scale the vectors up",
        ),
        (lambda: np.full((50, 4), 1e-300), "ip", "50 of 50 rows are nonzero but become all zeros in float32"),
        (
            lambda: clustered(50, 4) * np.float32(1e19),
            "l2",
            r"squared norm .*too large for float32 .*scale the vectors down",
        ),
        (lambda: clustered(50, 4) * np.float32(1e19), "ip", "scale the vectors down"),
        (lambda: (clustered(50, 4) * 1e18).clip(-9e18, 9e18).astype(np.int64), "l2", "scale the vectors down"),
        (lambda: clustered(50, 4) * np.float32(1e-20), "l2", r"too small for float32 .*scale the vectors up"),
        (lambda: np.zeros((50, 4), np.float32), "l2", "all vectors are zero"),
        (lambda: np.zeros((50, 4), np.uint8), "ip", "all vectors are zero"),
    ],
)
def test_validate_checks_the_float32_values_computed_on(tmp_path, make, metric, message):
    ds = load_npy(_save(tmp_path, make()), metric=metric)
    with pytest.raises(GpupqError, match=message) as info:
        ds.validate(chunk=16)
    assert "\n" not in str(info.value)


def test_what_float32_holds_is_fine(tmp_path):
    x = clustered(100, 4).astype(np.float64)
    x[[3, 70]] = 0  # a few zero rows under l2
    load_npy(_save(tmp_path, x)).validate(chunk=16)
    load_npy(_save(tmp_path, x * 1e17)).validate(chunk=16)  # squared norms about 1e36
    load_npy(_save(tmp_path, x * 1e-14)).validate(chunk=16)  # squared norms about 1e-26
    load_npy(_save(tmp_path, x[:3] * 1e-60), metric="cosine").validate()  # direction is all cosine needs


def test_cosine_normalises_before_the_float32_cast(tmp_path):
    """Cosine is scale-invariant: float64 rows of 1e300 or 1e-300, and float32 rows whose squares
    overflow float32, give the same unit rows."""
    base = clustered(60, 5, seed=4).astype(np.float64)
    unit = (base / np.linalg.norm(base, axis=1, keepdims=True)).astype(np.float32)
    scales = 10.0 ** np.random.default_rng(0).integers(-300, 300, size=(60, 1))
    for x in (base * 1e300, base * 1e-300, base * scales, (base * 1e30).astype(np.float32), base * 1e-40):
        ds = load_npy(_save(tmp_path, x), metric="cosine")
        ds.validate(chunk=16)
        np.testing.assert_allclose(ds.chunk(0, 60), unit, rtol=2e-6, atol=1e-6)
        np.testing.assert_allclose(ds.rows(np.array([59, 2, 30])), unit[[59, 2, 30]], rtol=2e-6, atol=1e-6)


def test_estimate_refuses_data_that_vanishes_in_float32(tmp_path):
    """float64 values of 1e-50 became zeros: recall 1.0 raw and 0.0 re-ranked, without a word."""
    import gpupq

    ds = load_npy(_save(tmp_path, clustered(2000, 8).astype(np.float64) * 1e-50))
    cfg = gpupq.EstimateConfig(m=4, nlist=16, nbits=4, min_time=0)
    with pytest.raises(GpupqError, match="become all zeros in float32"):
        gpupq.estimate(ds, cfg, "numpy")


def test_query_file_values_are_validated_too():
    from gpupq.data import with_query_file

    base = Dataset(clustered(500, 8), "base.npy")
    with pytest.raises(GpupqError, match=r"q\.npy: 5 of 5 rows are nonzero but become all zeros"):
        with_query_file(base, Dataset(np.full((5, 8), 1e-50), "q.npy"))
    with pytest.raises(GpupqError, match=r"q\.npy: 1 of 5 rows contain NaN"):
        with_query_file(base, Dataset(np.where(np.arange(40).reshape(5, 8) == 9, np.nan, 1.0), "q.npy"))
