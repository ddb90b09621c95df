"""Hostile inputs: every file a user can hand gpupq ends in a result or in one GpupqError whose
message is one line; never another exception, a hang, memory the file alone decides, or a
silently wrong figure.

By the classes of the review that found them: ordinary files that crashed, corrupt files, files
that are not regular files, sizes promised by the file, stored neighbours taken on trust,
messages that lie; then a seeded mutation fuzz of every format. (Values that go bad only in
float32 are in test_io_dataset.py.)
"""

from __future__ import annotations

import io
import os
import re
import struct
import subprocess
import sys
import textwrap
import tracemalloc
import warnings
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

import gpupq
import gpupq.io.lazy
import gpupq.io.limits
from gpupq.errors import GpupqError
from gpupq.io import LazyArray, load_vectors, open_inputs, read_ground_truth

from .helpers import clustered, one_line, read_everything, refused
from .io_writers import write_ann, write_arrow, write_bin, write_vecs

X = clustered(60, 6, seed=11)  # (60, 6) float32: the valid content most cases start from


def outcome(path: Path, **kwargs: object) -> np.ndarray | str:
    """The rows of a file as the estimate reads them, or the one line it is refused with."""
    try:
        return read_everything(load_vectors(path, **kwargs))
    except GpupqError as exc:
        return one_line(exc)


def check(result: np.ndarray | str, expect: np.ndarray | str) -> None:
    """expect: the float32 rows, or a regex of the message."""
    if isinstance(expect, str):
        assert isinstance(result, str), f"loaded, expected refusal matching {expect!r}"
        assert re.search(expect, result), result
    else:
        assert not isinstance(result, str), result
        np.testing.assert_array_equal(result, expect)


# ---------------------------------------------------------------------------- file makers


def npy_bytes(header: dict | str, payload: bytes = b"", version: tuple[int, int] = (1, 0)) -> bytes:
    """An .npy file with any header text at all."""
    text = (header if isinstance(header, str) else repr(header)).encode("latin1")
    fmt = "<H" if version[0] == 1 else "<I"
    pad = -(8 + struct.calcsize(fmt) + len(text) + 1) % 64
    text += b" " * pad + b"\n"
    return b"\x93NUMPY" + bytes(version) + struct.pack(fmt, len(text)) + text + payload


def hdr(descr: object = "<f4", shape: object = (4, 3), fortran: object = False) -> dict:
    return {"descr": descr, "fortran_order": fortran, "shape": shape}


def put(data: bytes) -> Callable[[Path], None]:
    return lambda p: p.write_bytes(data)


def save(arr: np.ndarray, **kw: object) -> Callable[[Path], None]:
    return lambda p: np.save(p, arr, **kw)


def npz_member(p: Path, name: str, data: bytes, method: int = zipfile.ZIP_DEFLATED, **kw: object) -> None:
    with zipfile.ZipFile(p, "w", method) as zf, zf.open(name, "w", **kw) as fh:
        fh.write(data)


def npy_of(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def patch(p: Path, edit: Callable[[bytearray], None]) -> None:
    raw = bytearray(p.read_bytes())
    edit(raw)
    p.write_bytes(bytes(raw))


def central_entry(raw: bytearray) -> int:
    """Offset of the first zip central directory entry."""
    return raw.index(b"PK\x01\x02")


def local_data(raw: bytearray) -> tuple[int, int]:
    """(start, size) of the first zip member's (compressed) data."""
    name_len, extra_len = struct.unpack_from("<HH", raw, 26)
    csize = struct.unpack_from("<I", raw, central_entry(raw) + 20)[0]
    return 30 + name_len + extra_len, csize


def method(raw: bytearray, value: int) -> None:
    """Set the compression method of the first member, in both headers."""
    struct.pack_into("<H", raw, 8, value)
    struct.pack_into("<H", raw, central_entry(raw) + 10, value)


def deflated_npz(path: Path, shape: tuple[int, int], descr: str = "<f4") -> int:
    """A valid compressed .npz whose one member declares ``shape`` of zeros, written in a blink
    however big (under 4 GB): after a full flush, deflate's output for the same input repeats.
    Returns the member's uncompressed size."""
    header = npy_bytes(hdr(descr, shape))
    nbytes = int(np.prod(shape)) * np.dtype(descr).itemsize
    block = 8 * 10**6
    repeats, rest = divmod(nbytes, block)
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    data = co.compress(header) + co.flush(zlib.Z_FULL_FLUSH)
    data += (co.compress(bytes(block)) + co.flush(zlib.Z_FULL_FLUSH)) * repeats
    data += co.compress(bytes(rest)) + co.flush()
    crc = zlib.crc32(header)
    for size in [block] * repeats + [rest]:
        crc = zlib.crc32(bytes(size), crc)
    usize = len(header) + nbytes
    name = b"emb.npy"
    local = struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, 0, 8, 0, 33, crc, len(data), usize, len(name), 0)
    central = struct.pack(
        "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 20, 20, 0, 8, 0, 33, crc, len(data), usize, len(name), 0, 0, 0, 0, 0, 0
    )
    end = struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, 1, 1, len(central) + len(name), len(local) + len(name) + len(data), 0
    )
    path.write_bytes(local + name + data + central + name + end)
    return usize


def h5(path: Path, build: Callable[[object], None], train: bool = True) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "w") as f:
        if train:
            f.create_dataset("train", data=X)
        build(f)


def arrow_table(path: Path, table: object, fmt: str, **kw: object) -> None:
    pa = pytest.importorskip("pyarrow")
    import pyarrow.ipc
    import pyarrow.parquet

    if fmt == "parquet":
        pyarrow.parquet.write_table(table, path, **kw)
    elif fmt == "stream":
        with pyarrow.ipc.new_stream(path, table.schema) as w:
            w.write_table(table, max_chunksize=16)
    else:
        with pa.ipc.new_file(path, table.schema) as w:
            w.write_table(table, max_chunksize=16)


def lists(values: list | np.ndarray, type_: object = None) -> object:
    pa = pytest.importorskip("pyarrow")
    return pa.array(values if not isinstance(values, np.ndarray) else list(values), type=type_)


# ---------------------------------------------------------------------------- ordinary files that crashed


# The local header's name and extra lengths were read as numpy uint16: past 64 KiB they overflowed
# (OverflowError) and near it the sum wrapped (a false "truncated").
@pytest.mark.parametrize("extra", [-3, -1, 0, 1, 2, 5, 100_000])
def test_stored_npz_near_and_past_64_kib(tmp_path, extra):
    rows = 65536 - 30 - len("emb.npy") - 128 + extra  # member data ends near byte 65536
    x = (np.arange(rows) % 251).astype(np.uint8).reshape(rows, 1)
    path = tmp_path / "x.npz"
    np.savez(path, emb=x)
    ds = load_vectors(path)
    assert isinstance(ds.array, np.memmap)
    np.testing.assert_array_equal(ds.chunk(0, rows), x.astype(np.float32))


def test_stored_npz_later_member_long_name_zip64(tmp_path):
    big = clustered(20_000, 4, seed=1)  # 320 KB, so the next member starts past 64 KiB
    long_name = "v" * 300
    path = tmp_path / "x.npz"
    np.savez(path, big=big, **{long_name: X})
    np.testing.assert_array_equal(read_everything(load_vectors(path, name=long_name)), X)
    np.testing.assert_array_equal(load_vectors(path, name="big").chunk(0, 20_000), big)
    z64 = tmp_path / "z64.npz"
    npz_member(z64, "emb.npy", npy_of(X), zipfile.ZIP_STORED, force_zip64=True)  # an extra field
    np.testing.assert_array_equal(read_everything(load_vectors(z64)), X)


# ---------------------------------------------------------------------------- per-reader tables

XB = X.astype(">f4")
NPY_CASES = {
    # corrupt or absurd headers
    "negative shape": (put(npy_bytes(hdr(shape=(-1, 3)), bytes(48))), "negative shape"),
    "negative both": (put(npy_bytes(hdr(shape=(-4, -3)))), "negative shape"),
    "absurd shape": (put(npy_bytes(hdr(shape=(2**62, 2**62)), bytes(48))), "truncated"),
    "byte count past int64": (put(npy_bytes(hdr("<f8", (2**40, 2**40)))), "truncated"),
    "more rows than bytes": (put(npy_bytes(hdr(shape=(10**9, 3)), bytes(48))), "truncated"),
    "1-D": (put(npy_bytes(hdr(shape=(12,)), bytes(48))), "expected 2-D"),
    "3-D": (put(npy_bytes(hdr(shape=(2, 2, 3)), bytes(48))), "expected 2-D"),
    "0-D": (put(npy_bytes(hdr(shape=()), bytes(4))), "expected 2-D"),
    "no columns": (put(npy_bytes(hdr(shape=(4, 0)))), "empty"),
    "no rows": (put(npy_bytes(hdr(shape=(0, 3)))), "empty"),
    "shape a list": (put(npy_bytes(hdr(shape=[4, 3]), bytes(48))), "not a valid .npy header"),
    "shape of floats": (put(npy_bytes(hdr(shape=(4.0, 3)), bytes(48))), "not a valid .npy header"),
    "missing key": (put(npy_bytes({"descr": "<f4", "shape": (4, 3)}, bytes(48))), "not a valid .npy header"),
    "extra key": (put(npy_bytes({**hdr(), "x": 1}, bytes(48))), "not a valid .npy header"),
    "header not a dict": (put(npy_bytes("[1, 2]", bytes(48))), "not a valid .npy header"),
    "header not Python": (put(npy_bytes("{'descr': <f4, ", bytes(48))), "not a valid .npy header"),
    "deep nesting": (put(npy_bytes("(" * 3000 + ")" * 3000)), "not a valid .npy header"),
    "unknown descr": (put(npy_bytes(hdr("nope"), bytes(48))), "not a valid .npy header"),
    "fortran not bool": (put(npy_bytes(hdr(fortran="yes"), bytes(48))), "not a valid .npy header"),
    "version 9": (put(b"\x93NUMPY\x09\x00" + bytes(200)), "version 9.0"),
    "4 GB header length": (put(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b"{"), "not a valid .npy header"),
    "header past the end": (put(b"\x93NUMPY\x01\x00" + struct.pack("<H", 60000) + b"{'descr'"), "not a valid"),
    "magic only": (put(b"\x93NUMPY"), "not a valid .npy header"),
    "empty file": (put(b""), "not an .npy file"),
    "truncated data": (put(npy_of(X)[:-5]), "truncated"),
    # dtypes: real numbers in any byte order and layout are read; the rest refused
    "big-endian f4": (save(XB), X),
    "big-endian f8": (save(X.astype(">f8")), X),
    "big-endian i4": (save((X * 10).astype(">i4")), (X * 10).astype(np.int32).astype(np.float32)),
    "big-endian f2": (save(X.astype(">f2")), X.astype(np.float16).astype(np.float32)),
    "fortran big-endian": (save(np.asfortranarray(XB)), X),
    "fortran order": (save(np.asfortranarray(X)), X),
    "longdouble": (save(X.astype(np.longdouble)), X),
    "uint64": (save(np.abs(X * 10).astype(np.uint64)), np.abs(X * 10).astype(np.uint64).astype(np.float32)),
    "object": (save(np.array([[1, "a"]], dtype=object), allow_pickle=True), "pickled"),
    "structured": (put(npy_bytes(hdr([("a", "<f4"), ("b", "<f4")]), bytes(96))), "not a real number type"),
    "subarray": (put(npy_bytes(hdr(("<f4", (3,))), bytes(144))), "not a real number type"),
    "complex": (save(X.astype(np.complex64)), "not a real number type"),
    "bool": (save(X > 0), "not a real number type"),
    "datetime": (save(np.zeros((4, 3), "datetime64[s]")), "not a real number type"),
    "str": (save(np.zeros((4, 3), "U3")), "not a real number type"),
    "bytes": (save(np.zeros((4, 3), "S3")), "not a real number type"),
    "void": (save(np.zeros((4, 3), "V8")), "not a real number type"),
    # values that only go bad in float32
    "float64 past float32": (save(np.full((4, 3), 1e39)), "beyond float32's range"),
    "float64 below float32": (save(np.vstack([X[:3].astype(np.float64), np.full((1, 6), 1e-50)])), "all zeros"),
}


@pytest.mark.parametrize("case", list(NPY_CASES))
def test_npy(tmp_path, case):
    make, expect = NPY_CASES[case]
    path = tmp_path / "x.npy"
    make(path)
    check(outcome(path), expect)


def _npz_shift_offset(p: Path) -> None:
    patch(p, lambda r: struct.pack_into("<I", r, central_entry(r) + 42, 2**31))


def _npz_shift_directory(p: Path) -> None:
    """zipfile then takes the archive for one with 100 bytes prepended: member offsets go negative."""

    def edit(raw: bytearray) -> None:
        end = raw.rindex(b"PK\x05\x06")
        struct.pack_into("<I", raw, end + 16, struct.unpack_from("<I", raw, end + 16)[0] + 100)

    patch(p, edit)


def _npz_damaged(p: Path) -> None:
    npz_member(p, "emb.npy", npy_of(clustered(300, 6)))

    def edit(raw: bytearray) -> None:
        start, size = local_data(raw)
        raw[start + size // 2 : start + size // 2 + 64] = b"\xff" * 64

    patch(p, edit)


def _npz_bad_crc(p: Path, how: int) -> None:
    npz_member(p, "emb.npy", npy_of(X), how)
    patch(p, lambda r: struct.pack_into("<I", r, central_entry(r) + 16, 12345))


NPZ_CASES = {
    "not a zip": (put(b"PK not really a zip"), r"not an \.npz file"),
    "empty zip": (lambda p: zipfile.ZipFile(p, "w").close(), "holds no arrays"),
    "no .npy members": (lambda p: npz_member(p, "a.txt", b"hello"), "holds no arrays"),
    "zip cut short": (lambda p: (np.savez(p, emb=X), patch(p, lambda r: r.__delitem__(slice(-30, None)))), "npz"),
    "stored 1-D": (lambda p: np.savez(p, emb=np.zeros(10)), "expected 2-D"),
    "stored object": (lambda p: np.savez(p, emb=np.array([[None]], dtype=object)), "pickled"),
    "stored not npy": (lambda p: npz_member(p, "emb.npy", b"hello" * 20, zipfile.ZIP_STORED), "not an .npy file"),
    "stored short": (lambda p: npz_member(p, "emb.npy", npy_of(X)[:-8], zipfile.ZIP_STORED), "truncated"),
    "stored bad offset": (lambda p: (np.savez(p, emb=X), _npz_shift_offset(p)), "broken zip entry"),
    "directory offset too large": (lambda p: (np.savez(p, emb=X), _npz_shift_directory(p)), "broken zip entry"),
    "stored bad crc": (lambda p: _npz_bad_crc(p, zipfile.ZIP_STORED), X),  # mapped in place, never checked
    "compressed short": (lambda p: npz_member(p, "emb.npy", npy_of(X)[:-8]), "truncated"),
    "compressed not npy": (lambda p: npz_member(p, "emb.npy", b"hello" * 20), "not an .npy file"),
    "compressed damaged": (_npz_damaged, "damaged compressed data"),
    "compressed bad crc": (lambda p: _npz_bad_crc(p, zipfile.ZIP_DEFLATED), "damaged compressed data.*CRC"),
    "compressed bzip2": (lambda p: npz_member(p, "emb.npy", npy_of(X), zipfile.ZIP_BZIP2), X),
    "compressed lzma": (lambda p: npz_member(p, "emb.npy", npy_of(X), zipfile.ZIP_LZMA), X),
    "compressed fortran": (lambda p: np.savez_compressed(p, emb=np.asfortranarray(XB)), X),
    "unknown method": (lambda p: (np.savez(p, emb=X), patch(p, lambda r: method(r, 99))), "zip method 99"),
    "encrypted": (
        lambda p: (np.savez(p, emb=X), patch(p, lambda r: r.__setitem__(central_entry(r) + 8, 1))),
        "encrypted",
    ),
    "member in a folder": (lambda p: npz_member(p, "a/emb.npy", npy_of(X)), X),
}


@pytest.mark.parametrize("case", list(NPZ_CASES))
def test_npz(tmp_path, case):
    make, expect = NPZ_CASES[case]
    path = tmp_path / "x.npz"
    make(path)
    check(outcome(path), expect)


def _vecs(d: int, payload: bytes = b"") -> Callable[[Path], None]:
    return put(struct.pack("<i", d) + payload)


VECS_CASES = {
    "empty": (put(b""), "too short"),
    "dimension 0": (_vecs(0, bytes(40)), "declares dimension 0"),
    "dimension negative": (_vecs(-5, bytes(40)), "declares dimension -5"),
    "dimension huge": (_vecs(2**31 - 1, bytes(40)), "not a whole number of rows"),
    "only a dimension": (_vecs(1), "not a whole number of rows"),
    "truncated": (lambda p: (write_vecs(p, X, "<f4"), patch(p, lambda r: r.__delitem__(slice(-3, None)))), "whole"),
    "mixed dimensions": (
        lambda p: (write_vecs(p, X, "<f4"), patch(p, lambda r: struct.pack_into("<i", r, 28 * 3, 7))),
        "row 3 declares dimension 7",
    ),
    "NaN": (lambda p: write_vecs(p, np.where(X > 4, np.nan, X), "<f4"), "NaN or Inf"),
    "too large for float32 distances": (lambda p: write_vecs(p, X * 1e19, "<f4"), "scale the vectors down"),
    "all zeros": (lambda p: write_vecs(p, X * 0, "<f4"), "all vectors are zero"),
    "fine": (lambda p: write_vecs(p, X, "<f4"), X),
}


@pytest.mark.parametrize("case", list(VECS_CASES))
def test_fvecs(tmp_path, case):
    make, expect = VECS_CASES[case]
    path = tmp_path / "x.fvecs"
    make(path)
    check(outcome(path), expect)


@pytest.mark.parametrize("fmt,dtype", [("bvecs", "u1"), ("ivecs", "<i4")])
def test_bvecs_ivecs(tmp_path, fmt, dtype):
    x = np.abs(X * 10).astype(dtype)
    path = tmp_path / f"x.{fmt}"
    write_vecs(path, x, dtype)
    check(outcome(path), x.astype(np.float32))
    patch(path, lambda r: struct.pack_into("<i", r, 0, 0))
    check(outcome(path), "declares dimension 0")
    path.write_bytes(b"\x01\x00")
    check(outcome(path), "too short")


BIN_CASES = {
    "short header": (put(b"\x01\x00\x00"), "too short"),
    "no rows": (put(struct.pack("<II", 0, 6)), "empty"),
    "no columns": (put(struct.pack("<II", 6, 0) + bytes(24)), "empty"),
    "absurd header": (put(struct.pack("<II", 2**32 - 1, 2**32 - 1) + bytes(24)), "truncated"),
    "bytes past": (lambda p: (write_bin(p, X, "<f4"), patch(p, lambda r: r.extend(b"\0" * 4))), "bytes past"),
    "truncated": (lambda p: (write_bin(p, X, "<f4"), patch(p, lambda r: r.__delitem__(slice(-4, None)))), "truncated"),
    "Inf": (lambda p: write_bin(p, np.where(X > 4, np.inf, X), "<f4"), "NaN or Inf"),
    "fine": (lambda p: write_bin(p, X, "<f4"), X),
}


@pytest.mark.parametrize("case", list(BIN_CASES))
def test_fbin(tmp_path, case):
    make, expect = BIN_CASES[case]
    path = tmp_path / "x.fbin"
    make(path)
    check(outcome(path), expect)


@pytest.mark.parametrize("fmt,dtype", [("u8bin", "u1"), ("i8bin", "i1"), ("ibin", "<i4")])
def test_other_bins(tmp_path, fmt, dtype):
    x = np.abs(X * 10).astype(dtype)
    path = tmp_path / f"x.{fmt}"
    write_bin(path, x, dtype)
    check(outcome(path), x.astype(np.float32))
    write_bin(path, x * 0, dtype)
    check(outcome(path), "all vectors are zero")
    path.write_bytes(struct.pack("<II", 5, 5) + bytes(3))
    check(outcome(path), "truncated")


def _h5_damaged_chunks(p: Path) -> None:
    h5py = pytest.importorskip("h5py")
    with h5py.File(p, "w") as f:
        ds = f.create_dataset("train", data=clustered(400, 6), chunks=(100, 6), compression="gzip")
        info = ds.id.get_chunk_info(1)
    patch(p, lambda r: r.__setitem__(slice(info.byte_offset + 8, info.byte_offset + 40), b"\xff" * 32))


def _h5_partly_written(p: Path) -> None:
    """A preallocated dataset, filled only at its start: the rest reads as zeros."""
    h5py = pytest.importorskip("h5py")
    with h5py.File(p, "w") as f:
        f.create_dataset("train", shape=(1000, 6), dtype="f4", chunks=(10, 6))[:10] = X[:10]


def _h5_cases() -> dict[str, tuple[Callable[[Path], None], object]]:
    def ds(**kw: object) -> Callable[[Path], None]:
        return lambda p: h5(p, lambda f: f.create_dataset("train", **kw), train=False)

    def empty(p: Path) -> None:
        h5py = pytest.importorskip("h5py")
        h5(p, lambda f: f.create_dataset("train", data=h5py.Empty("f4")), train=False)

    def vlen(p: Path) -> None:
        h5py = pytest.importorskip("h5py")
        h5(p, lambda f: f.create_dataset("train", data=[["a", "b"]], dtype=h5py.string_dtype()), train=False)

    def link(target: str) -> Callable[[Path], None]:
        def make(p: Path) -> None:
            h5py = pytest.importorskip("h5py")
            value = h5py.SoftLink("/missing") if target == "soft" else h5py.ExternalLink("/nowhere.h5", "/x")
            h5(p, lambda f: f.__setitem__("train", value), train=False)

        return make

    return {
        "train a group": (lambda p: h5(p, lambda f: f.create_group("train"), train=False), "train: is a group"),
        "train no shape": (empty, "has no shape"),
        "train scalar": (ds(data=1.0), "expected 2-D"),
        "train 1-D": (ds(data=np.arange(5.0)), "expected 2-D"),
        "train 3-D": (ds(data=np.zeros((2, 2, 2))), "expected 2-D"),
        "train empty": (ds(shape=(0, 4), dtype="f4"), "empty"),
        "train strings": (vlen, "variable-length"),
        "train bytes": (ds(data=np.zeros((4, 3), "S3")), "not a real number type"),
        "train compound": (ds(data=np.zeros((4, 3), [("a", "f4"), ("b", "i4")])), "not a real number type"),
        "train bool": (ds(data=np.zeros((4, 3), bool)), "not a real number type"),
        "train complex": (ds(data=np.zeros((4, 3), np.complex64)), "not a real number type"),
        "train a datatype": (
            lambda p: h5(p, lambda f: f.__setitem__("train", np.dtype("f4")), train=False),
            "not a dataset",
        ),
        "train dangling link": (link("soft"), "has no dataset 'train'"),
        "train external link": (link("external"), "no dataset 'train'|cannot open"),
        "train big-endian": (ds(data=XB), X),
        "train float64 past float32": (ds(data=np.full((4, 3), 1e39)), "beyond float32's range"),
        "damaged chunk": (_h5_damaged_chunks, r"train: cannot read"),
        "never written": (ds(shape=(10**6, 4), dtype="f4"), r"declares shape \(1000000, 4\) but only 0 of its"),
        "partly written": (_h5_partly_written, r"only 1 of its 100 chunks are written; the rest would read as zeros"),
        "not HDF5": (put(b"\x89HDF\r\n\x1a\n" + bytes(100)), "not a readable HDF5 file"),
        "fine": (lambda p: h5(p, lambda f: None), X),
    }


H5_CASES = _h5_cases()


@pytest.mark.parametrize("case", list(H5_CASES))
def test_hdf5(tmp_path, case):
    make, expect = H5_CASES[case]
    path = tmp_path / "x.hdf5"
    make(path)
    check(outcome(path), expect)


def _ann(p: Path, neighbors: object = None, test: object = "default", distance: object = "euclidean") -> None:
    def build(f: object) -> None:
        if distance is not None:
            f.attrs["distance"] = distance
        if isinstance(test, str) and test == "default":
            f.create_dataset("test", data=X[:5])
        elif callable(test):
            test(f)
        if callable(neighbors):
            neighbors(f)
        elif neighbors is not None:
            f.create_dataset("neighbors", data=neighbors)

    h5(p, build)


def _empty_test(f: object) -> None:
    h5py = pytest.importorskip("h5py")
    f.create_dataset("test", data=h5py.Empty("f4"))


GOOD_NB = np.tile(np.arange(10, dtype=np.int32), (5, 1))
ANN_CASES = {
    "test a group": (lambda p: _ann(p, test=lambda f: f.create_group("test")), "test: is a group"),
    "test no shape": (lambda p: _ann(p, test=_empty_test), "test: has no shape"),
    "neighbors a group": (lambda p: _ann(p, lambda f: f.create_group("neighbors")), "neighbors: is a group"),
    "neighbors 1-D": (lambda p: _ann(p, np.arange(5)), "neighbors: has shape .5,.; expected 2-D"),
    "neighbors float": (lambda p: _ann(p, GOOD_NB.astype(np.float32)), "float32 values; expected integer"),
    "neighbors fewer rows": (lambda p: _ann(p, GOOD_NB[:3]), "neighbors has 3 rows but test has 5"),
    "neighbors no columns": (lambda p: _ann(p, np.zeros((5, 0), np.int32)), "holds no neighbours"),
    "distance unknown": (lambda p: _ann(p, GOOD_NB, distance="hamming"), "'hamming' is not one gpupq measures"),
    "distance a number": (lambda p: _ann(p, GOOD_NB, distance=3), "'3' is not one gpupq measures"),
    "distance bytes": (lambda p: _ann(p, GOOD_NB, distance=np.bytes_(b"angular")), "cosine"),
    "distance an array": (lambda p: _ann(p, GOOD_NB, distance=np.array([b"euclidean"])), "l2"),
}


@pytest.mark.parametrize("case", list(ANN_CASES))
def test_ann_benchmarks_structure(tmp_path, case):
    make, expect = ANN_CASES[case]
    path = tmp_path / "a.hdf5"
    make(path)
    try:
        got = open_inputs(path).dataset.metric
    except GpupqError as exc:
        got = one_line(exc)
    assert re.search(expect, got), got


@pytest.mark.parametrize(
    "ids,message",
    [
        (
            lambda nb: np.where(nb == 3, -1, nb),
            r"5 of 55 stored neighbour ids .* \(e\.g\. -1 for query 0, neighbour 3\)",
        ),
        (lambda nb: nb + 55, r"not row numbers of the 60-vector base \(e\.g\. 60 for query 0"),
        (lambda nb: nb.astype(np.uint64) + np.uint64(2**63), "not row numbers"),
        (lambda nb: nb.astype(np.float64), "float64 values; expected integer"),
        (lambda nb: nb[:, 0], "expected 2-D"),
        (lambda nb: nb[:3], "holds neighbours for 3 queries, fewer than the 5 used"),
        (lambda nb: nb[:, :9], "-k 10 is more than the 9 neighbours stored per query"),
    ],
)
def test_read_ground_truth_refuses(ids, message):
    nb = np.tile(np.arange(12, dtype=np.int32), (5, 1))
    refused(read_ground_truth, ids(nb), 5, 10, 60, "a.hdf5:neighbors", match=message)


def test_read_ground_truth_reads_only_what_is_used(tmp_path):
    nb = np.tile(np.arange(12, dtype=np.int32), (8, 1))
    got = read_ground_truth(nb, 5, 10, 60, "x")
    assert got.dtype == np.int64 and got.shape == (5, 11)  # k + 1 columns to tell ties
    assert read_ground_truth(nb[:, :10], 5, 10, 60, "x").shape == (5, 10)
    # ids past what is used (rows past n_queries, columns past k + 1) are not read, so not judged
    nb[6:, :] = -1
    nb[:, 11] = 10**6
    assert read_ground_truth(nb, 5, 10, 60, "x").shape == (5, 11)
    # A 50 x 10^6 neighbours dataset, almost all unwritten: reading what is used stays small.
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "huge.hdf5"
    with h5py.File(path, "w") as f:
        f.attrs["distance"] = "euclidean"
        f.create_dataset("train", data=X)
        f.create_dataset("test", data=clustered(50, 6, seed=3))
        big = f.create_dataset("neighbors", shape=(50, 10**6), dtype="i4", chunks=(50, 1000))
        big[:, :20] = np.tile(np.arange(20, dtype=np.int32), (50, 1))
    assert path.stat().st_size < 300_000
    tracemalloc.start()
    try:
        inputs = open_inputs(path)
        got = read_ground_truth(inputs.ground_truth, 50, 10, 60, inputs.ground_truth_source)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert got.shape == (50, 11) and peak < 20 << 20, peak  # the whole dataset is 200 MB
    # where the ids used were never written, they would read as 0: refused
    refused(read_ground_truth, inputs.ground_truth, 50, 1500, 60, "h:neighbors", match="chunk at row 0, column 1000")


def test_stored_neighbors_out_of_range_refused_by_the_estimate(tmp_path):
    path = tmp_path / "a.hdf5"
    nb = write_ann(path, clustered(2000, 16), clustered(20, 16, seed=2), "euclidean", k=12)
    h5py = pytest.importorskip("h5py")
    with h5py.File(path, "r+") as f:
        f["neighbors"][4, 2] = -1
    inputs = open_inputs(path)
    cfg = gpupq.EstimateConfig(m=4, nlist=16, nbits=6, queries=20, rerank=0, min_time=0)
    refused(
        gpupq.estimate,
        inputs.dataset,
        cfg,
        "numpy",
        queries=inputs.queries,
        ground_truth=inputs.ground_truth,
        ground_truth_source=inputs.ground_truth_source,
        match=r"a\.hdf5:neighbors: 1 of 220 stored neighbour ids .*e\.g\. -1 for query 4, neighbour 2",
    )
    assert nb.shape == (20, 12)


def _pa() -> object:
    return pytest.importorskip("pyarrow")


def _emb(values: object, type_: object = None, **other: object) -> Callable[[Path, str], None]:
    def make(p: Path, fmt: str) -> None:
        pa = _pa()
        cols = {"emb": pa.array(values, type=type_) if not hasattr(values, "type") else values, **other}
        arrow_table(p, pa.table(cols), fmt)

    return make


def _fixed(x: np.ndarray, value_type: object = None) -> object:
    pa = _pa()
    return pa.FixedSizeListArray.from_arrays(pa.array(x.ravel(), type=value_type), x.shape[1])


def _not_utf8_name(p: Path, fmt: str) -> None:
    pa = _pa()
    arrow_table(p, pa.table({"emb": _fixed(X), "zzzz": pa.array(range(60))}), fmt)
    patch(p, lambda raw: raw.__setitem__(slice(None), raw.replace(b"zzzz", b"\xff\xfe\xfd\xfc")))


def _negative_child_length(p: Path, fmt: str) -> None:
    """An IPC record batch whose list values declare -2^63 + 32 of them: unless every batch is
    validated before use, pyarrow aborts the process (found by the fuzz below)."""
    pa = _pa()
    arrow_table(p, pa.table({"emb": _fixed(clustered(24, 4, seed=5))}), fmt)  # batches of 16 and 8 rows
    nodes = struct.pack("<qqqq", 8, 0, 32, 0)  # FieldNode (length, null count) of the list, then of its values

    def edit(raw: bytearray) -> None:
        at = raw.rindex(nodes) + 16 + 7
        raw[at] = 0x80

    patch(p, edit)


def _arrow_cases() -> dict[str, tuple[Callable[[Path, str], None], object]]:
    pa = _pa()
    rows = [list(map(float, r)) for r in X]
    ragged = [*rows[:40], rows[40][:5], *rows[41:]]  # the bad row lies in a later batch
    return {
        "strings only": (_emb(["a", "b"]), r"list columns: none"),
        "nested lists": (_emb([[[1.0], [2.0]]], pa.list_(pa.list_(pa.float32()))), "list columns: none"),
        "list of strings": (_emb([["a"]]), "list columns: none"),
        "struct": (_emb([{"a": 1.0}]), "list columns: none"),
        "no rows": (_emb([], pa.list_(pa.float32())), "is empty"),
        "zero-width fixed": (_emb([[], []], pa.list_(pa.float32(), 0)), "is empty"),
        "zero-width lists": (_emb([[], []], pa.list_(pa.float32())), "is empty"),
        "first row null": (_emb([None, [1.0]], pa.list_(pa.float32())), "row 0 is null|null"),
        "null row": (_emb([*rows[:30], None, *rows[31:]], pa.list_(pa.float32())), r"null\) rows.*first at row 30"),
        "null value": (_emb([*rows[:30], [None] * 6, *rows[31:]], pa.list_(pa.float32())), "null values inside"),
        "ragged": (_emb(ragged, pa.list_(pa.float32())), "row 40 of 'emb' has 5 values, row 0 has 6"),
        "duplicate names": (
            lambda p, fmt: arrow_table(p, pa.Table.from_arrays([_fixed(X), _fixed(X)], ["emb", "emb"]), fmt),
            "2 columns named 'emb'",
        ),
        "float64 lists": (_emb(rows, pa.list_(pa.float64())), X),
        "float16 fixed": (_emb(_fixed(X.astype(np.float16))), X.astype(np.float16).astype(np.float32)),
        "int8 large lists": (
            _emb((X * 10).astype(np.int8).tolist(), pa.large_list(pa.int8())),
            (X * 10).astype(np.int8).astype(np.float32),
        ),
        "uint64 fixed": (
            _emb(_fixed(np.abs(X * 10).astype(np.uint64))),
            np.abs(X * 10).astype(np.uint64).astype(np.float32),
        ),
        "float64 past float32": (_emb(_fixed(np.full((4, 3), 1e39))), "beyond float32's range"),
        "other columns": (_emb(_fixed(X), title=pa.array(["x"] * 60), id=pa.array(range(60))), X),
        "name not UTF-8": (_not_utf8_name, "not a readable"),
    }


try:
    import pyarrow  # noqa: F401

    ARROW_CASES = _arrow_cases()
except ImportError:  # the parquet extra is not installed: nothing to read them with
    ARROW_CASES = {}


@pytest.mark.parametrize("fmt", ["parquet", "arrow", "stream"])
@pytest.mark.parametrize("case", list(ARROW_CASES))
def test_parquet_arrow(tmp_path, case, fmt):
    make, expect = ARROW_CASES[case]
    path = tmp_path / ("x.parquet" if fmt == "parquet" else "x.arrow")
    make(path, fmt)
    check(outcome(path), expect)


@pytest.mark.parametrize("fmt", ["arrow", "stream"])
def test_arrow_batches_are_validated_before_use(tmp_path, fmt):
    """In a subprocess: without validation pyarrow aborts the process on this file."""
    path = tmp_path / "x.arrow"
    _negative_child_length(path, fmt)
    script = (
        "import sys; from gpupq.errors import GpupqError; from gpupq.io import load_vectors\n"
        "try:\n    load_vectors(sys.argv[1]).validate()\n    print('LOADED')\n"
        "except GpupqError as exc:\n    print('REFUSED', exc)\n"
    )
    res = subprocess.run([sys.executable, "-c", script, str(path)], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert re.match(r"REFUSED .*x\.arrow:emb: (damaged data|cannot read)", res.stdout), res.stdout


def test_parquet_arrow_damaged(tmp_path):
    pa = _pa()
    import pyarrow.feather

    table = pa.table({"emb": pa.array([list(map(float, r)) for r in clustered(500, 6)], pa.list_(pa.float32()))})
    for fmt in ("parquet", "arrow"):
        path = tmp_path / f"x.{fmt}"
        arrow_table(path, table, fmt)
        size = path.stat().st_size
        patch(path, lambda r, s=size: r.__setitem__(slice(s // 4, s // 2), b"\xff" * (s // 2 - s // 4)))
        check(outcome(path), "damaged data|cannot read|not a readable|NaN")  # damage found, or its garbage
        path.write_bytes(b"neither parquet nor arrow")
        check(outcome(path), f"not a readable {fmt} file")
    v1 = tmp_path / "v1.feather"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # Feather V1: still written by old tools
        pyarrow.feather.write_feather(pa.table({"a": [1.0]}), v1, version=1)
    check(outcome(v1), "not a readable arrow file")


# ---------------------------------------------------------------------------- not regular files

_NOT_REGULAR = textwrap.dedent(
    """
    import os, socket, sys
    from gpupq.errors import GpupqError
    from gpupq.io import load_ann_benchmarks, load_npy, load_vectors, open_inputs
    base, good = sys.argv[1], sys.argv[2]
    fifo = os.path.join(base, "pipe")
    os.mkfifo(fifo)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(os.path.join(base, "sock"))
    for ext in ("npy", "npz", "hdf5", "parquet", "arrow", "fvecs", "fbin"):
        os.symlink(fifo, os.path.join(base, "via_link." + ext))
    os.symlink("/dev/zero", os.path.join(base, "zero.npz"))
    calls = [(load_vectors, (os.path.join(base, "via_link." + e),), {}) for e in
             ("npy", "npz", "hdf5", "parquet", "arrow", "fvecs", "fbin")]
    calls += [
        (load_vectors, (fifo,), {"fmt": "npy"}),
        (load_vectors, (os.path.join(base, "zero.npz"),), {}),
        (load_vectors, ("/dev/zero",), {"fmt": "npz"}),
        (load_vectors, ("/dev/null",), {"fmt": "hdf5"}),
        (load_npy, ("/dev/zero",), {}),
        (load_vectors, (os.path.join(base, "sock"),), {"fmt": "npy"}),
        (load_ann_benchmarks, (os.path.join(base, "via_link.hdf5"),), {}),
        (open_inputs, (os.path.join(base, "via_link.parquet"),), {}),
        (open_inputs, (good,), {"queries_file": os.path.join(base, "via_link.npy")}),
        (open_inputs, (good,), {"queries_file": os.path.join(base, "via_link.hdf5")}),
    ]
    for fn, args, kwargs in calls:
        try:
            fn(*args, **kwargs)
            print("LOADED", args)
        except GpupqError as exc:
            print("REFUSED", str(exc).replace(chr(10), "<newline>"))
    """
)


def test_not_regular_files_refused_without_hanging(tmp_path):
    """FIFOs, devices and sockets, by name or through links, in every reader: one line each, in
    a subprocess so that a regression hangs nothing but it."""
    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    good = tmp_path / "good.npy"
    np.save(good, X)
    base = Path("/tmp") / f"gpupq-nr-{os.getpid()}"  # short: a socket path has ~100 bytes at most
    base.mkdir(exist_ok=True)
    try:
        res = subprocess.run(
            [sys.executable, "-c", _NOT_REGULAR, str(base), str(good)],
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        for entry in base.iterdir():
            entry.unlink()
        base.rmdir()
    assert res.returncode == 0, res.stderr
    lines = res.stdout.splitlines()
    assert len(lines) == 17, res.stdout
    for line in lines:
        assert line.startswith("REFUSED ") and "<newline>" not in line, line
        assert re.search(r"is a (named pipe \(FIFO\)|character device|socket), not a regular file", line), line
    assert sum("a link to" in line for line in lines) >= 7  # says where a link leads


# ---------------------------------------------------------------------------- sizes promised by the file


def test_compressed_npz_is_not_inflated_before_the_parameters_are_checked(tmp_path, monkeypatch):
    """389 kB declaring 400 MB: an impossible --m fails at once, without writing anything."""
    path = tmp_path / "bomb.npz"
    usize = deflated_npz(path, (2_000_000, 50))
    assert path.stat().st_size < 500_000 and usize > 400_000_000
    made: list[object] = []
    monkeypatch.setattr(gpupq.io.lazy.tempfile, "TemporaryFile", lambda *a, **k: made.append(a) or 1 / 0)
    ds = load_vectors(path)
    assert (ds.n, ds.d, ds.dtype) == (2_000_000, 50, "float32")
    assert isinstance(ds.array, LazyArray) and not ds.array.materialised
    cfg = gpupq.EstimateConfig(m=7)
    refused(gpupq.estimate, ds, cfg, "numpy", match="dimension 50 is not divisible by --m 7")
    refused(gpupq.estimate, ds, gpupq.EstimateConfig(m=5, nlist=3_000_000), "numpy", match="fewer than --nlist")
    assert made == [] and not ds.array.materialised


def test_inflate_limit(tmp_path, monkeypatch):
    path = tmp_path / "x.npz"
    np.savez_compressed(path, emb=X)  # 1,440 bytes of float32
    monkeypatch.setattr(gpupq.io.lazy.tempfile, "TemporaryFile", lambda *a, **k: 1 / 0)  # never reached
    msg = refused(load_vectors(path, inflate_limit=1000).chunk, 0, 1)
    for part in (
        "needs 1.44 kB",
        "inflation limit of 1 kB (--inflate-limit)",
        "GPUPQ_INFLATE_LIMIT",
        "TMPDIR",
        "np.save",
    ):
        assert part in msg, msg
    monkeypatch.setenv("GPUPQ_INFLATE_LIMIT", "1kB")
    refused(load_vectors(path).validate, match=r"limit of 1 kB \(GPUPQ_INFLATE_LIMIT\)")
    monkeypatch.setenv("GPUPQ_INFLATE_LIMIT", "lots")
    refused(load_vectors(path).validate, match="GPUPQ_INFLATE_LIMIT='lots' is not a size")
    refused(load_vectors(path, inflate_limit=-1).validate, match="--inflate-limit must be 0 or more")
    # the free space of the temporary directory bounds it too
    monkeypatch.delenv("GPUPQ_INFLATE_LIMIT")
    monkeypatch.setattr(gpupq.io.limits.shutil, "disk_usage", lambda _: (10**12, 0, 10**9 + 2 * 10**8))
    big = tmp_path / "big.npz"
    deflated_npz(big, (2_000_000, 50))  # 400 MB
    msg = refused(load_vectors(big).validate, match=r"needs 400 MB of temporary disk space but .* has 1.2 GB free")
    assert "leaves 1 GB spare" in msg and "TMPDIR" in msg
    # parquet converts into the same kind of file, under the same limit
    pq = tmp_path / "x.parquet"
    arrow_table(pq, _pa().table({"emb": _fixed(X)}), "parquet")
    refused(load_vectors(pq, inflate_limit=100).validate, match=r"x\.parquet:emb: .*limit of 100 B.*as \.npy")


def test_npz_header_is_checked_against_the_member_size_at_load(tmp_path, monkeypatch):
    """A member shorter than its .npy header promises is refused before anything is inflated."""
    monkeypatch.setattr(gpupq.io.lazy.tempfile, "TemporaryFile", lambda *a, **k: 1 / 0)  # never reached
    path = tmp_path / "x.npz"
    npz_member(path, "emb.npy", npy_bytes(hdr("<f4", (10**6, 100))) + bytes(4000))
    refused(load_vectors, path, match=r"truncated: its header promises 1000000x100 float32 .*the member holds 4000")


def test_npy_header_length_is_checked_before_it_is_read(tmp_path):
    """A 4-byte header length of 4 GB: numpy would allocate that much to read it."""
    path = tmp_path / "x.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + struct.pack("<I", 2**32 - 1) + b"{" * 100)
    tracemalloc.start()
    try:
        refused(load_vectors, path, match="declares 4294967295 bytes of header")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 10 << 20, peak


# ---------------------------------------------------------------------------- messages


def test_queries_file_from_an_ann_benchmarks_file_uses_its_test_set(tmp_path):
    h5py = pytest.importorskip("h5py")
    base = tmp_path / "base.npy"
    np.save(base, clustered(200, 6))
    ann = tmp_path / "q.hdf5"
    _ann(ann, GOOD_NB)
    inputs = open_inputs(base, queries_file=ann)
    assert inputs.queries.source == f"{ann}:test" and inputs.queries.n == 5
    assert f"queries: {ann}:test (its test set)" in inputs.notes
    only_train = tmp_path / "t.hdf5"
    h5(only_train, lambda f: None)
    inputs = open_inputs(base, queries_file=only_train)
    assert (
        inputs.queries.source.endswith(":train") and f"queries: {only_train}:train (it has no test set)" in inputs.notes
    )
    other = tmp_path / "o.h5"
    with h5py.File(other, "w") as f:
        f.create_dataset("q", data=X[:4])
    assert open_inputs(base, queries_file=other).queries.n == 4
    with h5py.File(other, "a") as f:
        f.create_dataset("r", data=X[:4])
    refused(
        open_inputs, base, queries_file=other, match="no dataset 'test' or 'train' to use as queries; it holds q, r"
    )


def test_queries_file_npz_and_parquet_pick_as_the_data_does(tmp_path):
    """--name and --column are the data's: a query file uses them when it has such an array or
    column, else its only one, and never says "pick one with --name" of itself."""
    base = tmp_path / "b.npz"
    np.savez(base, emb=X, other=X[:5])
    q = tmp_path / "q.npz"
    np.savez_compressed(q, emb=X[:7], ids=np.arange(7.0).reshape(7, 1))
    inputs = open_inputs(base, name="emb", queries_file=q)
    assert inputs.queries.n == 7 and inputs.queries.source == f"{q}:emb"
    refused(open_inputs, base, name="other", queries_file=q, match="holds arrays emb, ids; a query file must hold one")
    single = tmp_path / "s.npz"
    np.savez(single, anything=X[:3])
    assert open_inputs(base, name="emb", queries_file=single).queries.n == 3
    pa = _pa()
    pbase = tmp_path / "b.parquet"
    arrow_table(pbase, pa.table({"a": _fixed(X), "b": _fixed(X)}), "parquet")
    pq = tmp_path / "q.parquet"
    arrow_table(pq, pa.table({"a": _fixed(X[:4]), "c": _fixed(X[:4] * 2)}), "parquet")
    assert open_inputs(pbase, column="a", queries_file=pq).queries.n == 4
    refused(open_inputs, pbase, column="b", queries_file=pq, match="a query file is read by --column, or by its only")
    only = tmp_path / "o.arrow"
    arrow_table(only, pa.table({"v": _fixed(X[:2])}), "arrow")
    assert open_inputs(pbase, column="b", queries_file=only).queries.source == f"{only}:v"


def test_metric_notes_say_who_chose(tmp_path):
    path = tmp_path / "a.hdf5"
    write_ann(path, clustered(300, 8), clustered(5, 8, seed=2), "euclidean")
    notes = open_inputs(path, metric="ip").notes
    assert f"{path} declares distance 'euclidean'; using --metric ip as given" in notes
    assert "ground truth: computed, as its neighbors are for euclidean" in notes
    assert not any("so metric" in n for n in notes)
    write_ann(path, clustered(300, 8), clustered(5, 8, seed=2), "angular")
    assert f"{path} declares distance 'angular': metric cosine" in open_inputs(path).notes


# ---------------------------------------------------------------------------- mutation fuzz


def _fuzz_targets() -> dict[str, tuple[str, Callable[[Path], None], list[tuple[int, int]] | None]]:
    """format -> (file name, writer of a valid small file, byte regions to mutate or None: all).

    HDF5 is mutated only by truncation and in its data: libhdf5 itself can hang or crash on
    damaged metadata (found while writing this test), which no Python code can catch.
    """
    x = clustered(24, 4, seed=5)
    xs = np.abs(x * 8)

    def h5_chunked(p: Path) -> None:
        h5py = pytest.importorskip("h5py")
        with h5py.File(p, "w") as f:
            f.create_dataset("train", data=x, chunks=(8, 4), compression="gzip")

    return {
        "npy": ("x.npy", lambda p: np.save(p, x), None),
        "npz-stored": ("x.npz", lambda p: np.savez(p, emb=x), None),
        "npz-compressed": ("x.npz", lambda p: np.savez_compressed(p, emb=x), None),
        "fvecs": ("x.fvecs", lambda p: write_vecs(p, x, "<f4"), None),
        "ivecs": ("x.ivecs", lambda p: write_vecs(p, xs, "<i4"), None),
        "bvecs": ("x.bvecs", lambda p: write_vecs(p, xs, "u1"), None),
        "fbin": ("x.fbin", lambda p: write_bin(p, x, "<f4"), None),
        "u8bin": ("x.u8bin", lambda p: write_bin(p, xs, "u1"), None),
        "i8bin": ("x.i8bin", lambda p: write_bin(p, xs, "i1"), None),
        "ibin": ("x.ibin", lambda p: write_bin(p, xs, "<i4"), None),
        "hdf5": ("x.hdf5", lambda p: write_ann(p, x, x[:3], "euclidean", k=5), []),
        "hdf5-gzip": ("x.h5", h5_chunked, []),
        "parquet": ("x.parquet", lambda p: write_arrow(p, x, "parquet", fixed=False), None),
        "arrow": ("x.arrow", lambda p: write_arrow(p, x, "arrow", fixed=True), None),
        "arrow-stream": ("x.arrow", lambda p: arrow_table(p, _pa().table({"emb": _fixed(x)}), "stream"), None),
    }


def _h5_data_regions(path: Path) -> list[tuple[int, int]]:
    """(offset, size) of the raw data of every dataset in an HDF5 file."""
    h5py = pytest.importorskip("h5py")
    regions = []
    with h5py.File(path, "r") as f:
        for name in f:
            ds = f[name].id
            if ds.get_create_plist().get_layout() == h5py.h5d.CHUNKED:
                for i in range(ds.get_num_chunks()):
                    info = ds.get_chunk_info(i)
                    regions.append((info.byte_offset, info.size))
            else:
                regions.append((ds.get_offset(), ds.get_storage_size()))
    return regions


def _mutate(raw: bytes, rng: np.random.Generator, regions: list[tuple[int, int]] | None) -> bytes:
    b = bytearray(raw)
    kind = rng.integers(0, 6)
    if kind == 0:  # truncate
        return bytes(b[: rng.integers(0, len(b))])
    if regions:  # only inside the data
        off, size = regions[rng.integers(0, len(regions))]
        for _ in range(rng.integers(1, 6)):
            b[off + rng.integers(0, size)] = rng.integers(0, 256)
        return bytes(b)
    if kind == 1:  # flip a few bits anywhere
        for _ in range(rng.integers(1, 5)):
            b[rng.integers(0, len(b))] ^= 1 << rng.integers(0, 8)
    elif kind == 2:  # overwrite bytes of the header
        for _ in range(rng.integers(1, 5)):
            b[rng.integers(0, min(len(b), 160))] = rng.integers(0, 256)
    elif kind == 3:  # overwrite bytes of a footer (zip directory, Parquet and Arrow metadata)
        for _ in range(rng.integers(1, 5)):
            b[len(b) - 1 - rng.integers(0, min(len(b), 400))] = rng.integers(0, 256)
    elif kind == 4:  # an extreme 4-byte field: lengths, counts, offsets
        at = rng.integers(0, max(1, len(b) - 4))
        value = [0, 1, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF, 0xFFFF][rng.integers(0, 6)]
        b[at : at + 4] = struct.pack("<I", value)
    else:  # cut out or insert a few bytes
        at = rng.integers(0, len(b))
        if rng.integers(0, 2):
            del b[at : at + rng.integers(1, 9)]
        else:
            b[at:at] = rng.bytes(int(rng.integers(1, 9)))
    return bytes(b)


MUTATIONS_PER_FORMAT = 40


@pytest.mark.parametrize("target", list(_fuzz_targets()))
def test_mutation_fuzz(tmp_path, target):
    """Seeded mutations of a valid file: each loads and reads (finite float32 values) or is
    refused with one line; no other exception."""
    name, write, regions = _fuzz_targets()[target]
    if target.startswith(("parquet", "arrow")):
        _pa()
    good = tmp_path / f"good{os.path.splitext(name)[1]}"
    write(good)
    raw = good.read_bytes()
    if regions is not None:
        regions = _h5_data_regions(good)
    rng = np.random.default_rng(zlib.crc32(target.encode()))
    path = tmp_path / name
    refusals = 0
    for _ in range(MUTATIONS_PER_FORMAT):
        path.write_bytes(_mutate(raw, rng, regions))
        result = outcome(path, inflate_limit=1 << 20)  # nothing a mutation declares is written past 1 MB
        refusals += isinstance(result, str)
    assert refusals  # the mutations do reach the checks
