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
    sample = split.sample_base(2000, np.random.default_rng(0))
    assert len(np.unique(sample)) == 2000
    assert np.isin(sample, split.base_ids()).all()
    everything = split.sample_base(10**6, np.random.default_rng(0))
    np.testing.assert_array_equal(np.sort(everything), split.base_ids())


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
