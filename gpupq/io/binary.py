"""Raw binary vector files: TEXMEX ``.fvecs`` / ``.ivecs`` / ``.bvecs`` and big-ann-benchmarks
``.fbin`` / ``.u8bin`` / ``.i8bin`` / ``.ibin``, memory-mapped read-only."""

from __future__ import annotations

import os
import struct

import numpy as np

from ..errors import EmptyInput, GpupqError
from .dataset import chunk_rows
from .safety import _check_size, _open

_VECS_DTYPE = {"fvecs": np.dtype("<f4"), "ivecs": np.dtype("<i4"), "bvecs": np.dtype("u1")}
_BIN_DTYPE = {"fbin": np.dtype("<f4"), "u8bin": np.dtype("u1"), "i8bin": np.dtype("i1"), "ibin": np.dtype("<i4")}


def _vecs_array(path: str, dtype: np.dtype) -> np.ndarray:
    """TEXMEX rows of [int32 d][d values]: a strided (n, d) view of the memory-mapped file."""
    size = os.path.getsize(path)
    if size == 0:
        raise EmptyInput(f"{path}: is empty (0 bytes), too short to hold a vector")
    if size < 4:
        raise GpupqError(f"{path}: too short to hold a vector ({size} bytes)")
    with _open(path) as fh:
        (d,) = struct.unpack("<i", fh.read(4))
    if d <= 0:
        raise GpupqError(f"{path}: first row declares dimension {d}; not a {dtype.kind}vecs file?")
    row = 4 + d * dtype.itemsize
    if size % row:
        raise GpupqError(
            f"{path}: {size} bytes is not a whole number of rows of {row} bytes (d={d}): "
            "the file is truncated or its rows have different dimensions"
        )
    n = size // row
    raw = np.memmap(path, dtype=np.uint8, mode="r", shape=(n, row))
    # Every row must declare the same d: read the 4-byte prefixes in chunks.
    step = chunk_rows(row // 4)
    for start in range(0, n, step):
        dims = np.ascontiguousarray(raw[start : start + step, :4]).view("<i4")[:, 0]
        bad = np.flatnonzero(dims != d)
        if len(bad):
            at = start + int(bad[0])
            raise GpupqError(f"{path}: row {at} declares dimension {int(dims[bad[0]])}, row 0 declares {d}")
    if dtype.itemsize == 1:
        return raw[:, 4:]
    return np.memmap(path, dtype=dtype, mode="r", shape=(n, d + 1))[:, 1:]


def _bin_array(path: str, dtype: np.dtype) -> np.ndarray:
    """big-ann-benchmarks: uint32 n, uint32 d, then n·d values."""
    size = os.path.getsize(path)
    if size < 8:
        raise GpupqError(f"{path}: too short to hold the 8-byte header ({size} bytes)")
    with _open(path) as fh:
        n, d = struct.unpack("<II", fh.read(8))
    if d == 0:
        raise GpupqError(f"{path}: header declares an empty array ({n} x {d})")
    if n == 0:
        _check_size(path, 8, exact=True, what=f"the header ({n} x {d} {dtype})")
        raise EmptyInput(f"{path}: header declares an empty array ({n} x {d})")
    _check_size(path, 8 + n * d * dtype.itemsize, exact=True, what=f"the header ({n} x {d} {dtype})")
    return np.memmap(path, dtype=dtype, mode="r", offset=8, shape=(n, d))
