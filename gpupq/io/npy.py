"""NumPy files: ``.npy`` memory-mapped (never unpickled), ``.npz`` members mapped in place when
stored, or inflated on the first read (a :class:`~gpupq.io.lazy.LazyArray`) when compressed."""

from __future__ import annotations

import os
import struct
import zipfile
import zlib
from collections.abc import Callable
from typing import IO, Any

import numpy as np

from ..errors import GpupqError
from .dataset import Dataset
from .lazy import LazyArray
from .limits import _COPY_BYTES
from .safety import _check_matrix, _check_readable, _check_size, _failing, _first_line, _one_line, _open, _printable

_NPY_MAGIC = b"\x93NUMPY"
#: numpy's own limit on an .npy header (``max_header_size``), checked before reading one
_NPY_MAX_HEADER = 10000


@_one_line
def load_npy(path: str | os.PathLike[str], metric: str = "l2") -> Dataset:
    """Memory-map an ``.npy`` file of shape (n, d), checking it before any use."""
    path = os.fspath(path)
    _check_readable(path)
    with _open(path) as fh:
        shape, fortran, dtype, header_end = _npy_header(fh, path)
    n, d = _check_matrix(path, shape, dtype)
    _check_size(path, header_end + n * d * dtype.itemsize, exact=False, what=f"the header ({n} x {d} {dtype})")
    array = np.memmap(path, dtype=dtype, mode="r", offset=header_end, shape=(n, d), order="F" if fortran else "C")
    return Dataset(array=array, source=_printable(path), metric=metric)


def _npy_header(fh: IO[bytes], path: str) -> tuple[tuple[int, ...], bool, np.dtype, int]:
    """Shape, Fortran order, dtype and the offset of the data, from an .npy header at fh's position."""
    start = fh.tell()
    prefix = fh.read(len(_NPY_MAGIC) + 6)
    if prefix[: len(_NPY_MAGIC)] != _NPY_MAGIC:
        raise GpupqError(f"{path}: not an .npy file (no NumPy header)")
    # The header's length, before numpy reads that many bytes (a 4-byte length may say 4 GB).
    if len(prefix) == 12 and prefix[6] in (2, 3):
        header_len = struct.unpack_from("<I", prefix, 8)[0]
        if header_len > _NPY_MAX_HEADER:
            raise GpupqError(f"{path}: not a valid .npy header (it declares {header_len} bytes of header)")
    fh.seek(start)
    try:
        version = np.lib.format.read_magic(fh)
        if version not in ((1, 0), (2, 0), (3, 0)):
            raise GpupqError(f"{path}: .npy format version {version[0]}.{version[1]} is not one gpupq reads")
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
        dtype = np.dtype(dtype)
    except GpupqError:
        raise
    except Exception as exc:  # numpy parses the (at most 10 kB) text with tokenize and ast: anything goes
        raise GpupqError(f"{path}: not a valid .npy header ({_first_line(exc)})") from None
    return tuple(int(s) for s in shape), bool(fortran), dtype, fh.tell()


def _zip_errors() -> tuple[type[BaseException], ...]:
    """What zipfile and its decompressors raise on a damaged archive."""
    errors: list[type[BaseException]] = [
        zipfile.BadZipFile,  # also a CRC mismatch
        zipfile.LargeZipFile,
        zlib.error,
        EOFError,  # compressed data that ends early
        OSError,  # bz2's "Invalid data stream"
        ValueError,
        struct.error,
        NotImplementedError,  # a compression method zipfile lacks
        RuntimeError,  # an encrypted member
        OverflowError,
        IndexError,
        KeyError,
    ]
    try:
        import lzma

        errors.append(lzma.LZMAError)
    except ImportError:  # Python built without lzma: zipfile then refuses LZMA members itself
        pass
    return tuple(errors)


_ZIP_ERRORS = _zip_errors()
_ZIP_METHODS = (zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
_NPZ_ALTERNATIVE = "store the array uncompressed (np.save or np.savez)"


def _npz_array(
    path: str, name: str | None, limit: int | None, query: bool = False
) -> tuple[np.ndarray | LazyArray, str]:
    """The named member of an .npz (and its name): mapped in place when stored, else a
    :class:`LazyArray` that inflates it on the first read. ``query``: a query file, where
    ``name`` (the data's ``--name``) is used only when the file has such a member."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise GpupqError(f"{path}: not an .npz file (not a zip archive)") from None
    except PermissionError:
        raise GpupqError(f"{path}: permission denied") from None
    except _ZIP_ERRORS as exc:
        raise GpupqError(f"{path}: not a readable .npz file ({_first_line(exc)})") from None
    with zf:
        members = {os.path.splitext(i.filename)[0]: i for i in zf.infolist() if i.filename.endswith(".npy")}
        if not members:
            raise GpupqError(f"{path}: holds no arrays")
        if query and name not in members:
            name = None
        if name is None:
            if len(members) > 1:
                held = ", ".join(sorted(members))
                if query:
                    raise GpupqError(
                        f"{path}: holds arrays {held}; a query file must hold one (or one named as --name)"
                    )
                raise GpupqError(f"{path}: holds arrays {held}; pick one with --name")
            name = next(iter(members))
        if name not in members:
            raise GpupqError(f"{path}: has no array {name!r}; it holds {', '.join(sorted(members))}")
        info = members[name]
        where = f"{path}:{name}"
        if info.flag_bits & 0x1:
            raise GpupqError(f"{where}: is encrypted; gpupq reads plain .npz files")
        if info.compress_type == zipfile.ZIP_STORED:
            return _npz_stored(path, info, where), name
        if info.compress_type not in _ZIP_METHODS:
            raise GpupqError(
                f"{where}: compressed with zip method {info.compress_type}, which gpupq cannot inflate "
                "(it reads stored, deflate, bzip2 and lzma members)"
            )
        with _failing(f"{where}: damaged compressed data", _ZIP_ERRORS), zf.open(info) as member:
            shape, fortran, dtype, header_len = _npy_header(member, where)
    n, d = _check_matrix(where, shape, dtype)
    nbytes = n * d * dtype.itemsize
    # The zip's declared size bounds what inflating can ever produce: check it first.
    if header_len + nbytes > info.file_size:
        raise GpupqError(
            f"{where}: truncated: its header promises {n}x{d} {dtype} ({nbytes} bytes), "
            f"the member holds {max(info.file_size - header_len, 0)}"
        )

    def fill(write: Callable[[Any], None]) -> None:
        with _failing(f"{where}: damaged compressed data", _ZIP_ERRORS):
            with zipfile.ZipFile(path) as again, again.open(info) as member:
                _npy_header(member, where)
                left = nbytes
                while left:
                    block = member.read(min(_COPY_BYTES, left))
                    if not block:
                        raise GpupqError(
                            f"{where}: truncated: the compressed data ends {left} bytes short of the "
                            f"{n}x{d} {dtype} its header promises"
                        )
                    write(block)
                    left -= len(block)
                member.read(1)  # reaching the end of the member checks its CRC

    return LazyArray((n, d), dtype, where, fill, _NPZ_ALTERNATIVE, limit, "F" if fortran else "C"), name


def _npz_stored(path: str, info: zipfile.ZipInfo, where: str) -> np.ndarray:
    """A stored (uncompressed) member, mapped in place."""
    if not 0 <= info.header_offset <= os.path.getsize(path) - 30:
        raise GpupqError(f"{where}: broken zip entry (its local header would be at byte {info.header_offset})")
    with _open(path) as fh:
        fh.seek(info.header_offset)
        local = fh.read(30)
        if len(local) < 30 or local[:4] != b"PK\x03\x04":
            raise GpupqError(f"{where}: broken zip entry (no local header at byte {info.header_offset})")
        # Python ints: as numpy uint16 these overflowed for members past 64 KiB.
        name_len, extra_len = struct.unpack_from("<HH", local, 26)
        member_start = info.header_offset + 30 + name_len + extra_len
        member_end = member_start + info.file_size
        _check_size(path, member_end, exact=False, what=f"the zip entry of {os.path.basename(where)}")
        fh.seek(member_start)
        shape, fortran, dtype, data_start = _npy_header(fh, where)
    n, d = _check_matrix(where, shape, dtype)
    nbytes = n * d * dtype.itemsize
    if data_start + nbytes > member_end:
        raise GpupqError(
            f"{where}: truncated: its header promises {n}x{d} {dtype} ({nbytes} bytes), "
            f"the member holds {max(member_end - data_start, 0)}"
        )
    order = "F" if fortran else "C"
    return np.memmap(path, dtype=dtype, mode="r", offset=data_start, shape=(n, d), order=order)
