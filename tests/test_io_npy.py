"""NumPy readers: .npy (any dtype, Fortran order, broken files) and .npz (named, compressed,
broken)."""

import hashlib

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.io import load_npy, load_vectors

from .helpers import clustered
from .io_writers import X, _save


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


def test_input_file_is_not_modified(tmp_path):
    import gpupq

    path = tmp_path / "x.npy"
    np.save(path, clustered(3000, 16))
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    gpupq.estimate(load_npy(path), gpupq.EstimateConfig(m=4, nlist=16, nprobe=4, nbits=4), "numpy")
    gpupq.estimate(load_npy(path), gpupq.EstimateConfig(m=4, nlist=16, nprobe=4, nbits=4, metric="cosine"), "numpy")
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before


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


def test_npz_compressed_and_named(tmp_path):
    path = tmp_path / "two.npz"
    np.savez_compressed(path, base=X, extra=X[:10])
    with pytest.raises(GpupqError, match="holds arrays base, extra; pick one with --name"):
        load_vectors(path)
    with pytest.raises(GpupqError, match="has no array 'nope'"):
        load_vectors(path, name="nope")
    ds = load_vectors(path, name="base")
    assert ds.source.endswith("two.npz:base")
    np.testing.assert_array_equal(ds.chunk(0, 500), X.astype(np.float32))
    np.testing.assert_array_equal(load_vectors(path, name="extra").chunk(0, 10), X[:10].astype(np.float32))


def test_npz_pickled_member_refused(tmp_path):
    path = tmp_path / "obj.npz"
    np.savez(path, emb=np.array([{"a": 1}, None], dtype=object))
    with pytest.raises(GpupqError, match="pickled"):
        load_vectors(path)


def test_not_a_zip(tmp_path):
    path = tmp_path / "x.npz"
    path.write_bytes(b"not a zip at all")
    with pytest.raises(GpupqError, match=r"not an \.npz file"):
        load_vectors(path)
