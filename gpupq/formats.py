"""Readers for the formats people keep embeddings in.

Every file a user hands gpupq ends in a :class:`~gpupq.data.Dataset` or in one
:class:`GpupqError` whose message is one line and names the file: never a traceback, a hang or
memory the file alone decides. So each reader

- refuses what is not a regular file before opening it (a FIFO blocks forever, ``/dev/zero``
  never ends);
- trusts no size a file declares: a header's promise is checked against the bytes there, and
  what is inflated or converted is bounded by an inflation limit (:func:`inflate_limit`);
- reads nothing at load time beyond headers and metadata, so that the estimate checks every
  parameter against the declared shape before the first value is read;
- memory-maps its file read-only (input files are never modified) or reads it in chunks.

Formats:

- ``.npy``: NumPy, memory-mapped (never unpickled; any byte order, C or Fortran order).
- ``.npz``: the named array (``--name``; optional when there is one). Stored members are mapped
  in place; a compressed member is a :class:`LazyArray`: inflated, on the first read, in chunks
  into an anonymous temporary file that is mapped (and vanishes when the dataset does).
- ``.fvecs`` / ``.ivecs`` / ``.bvecs`` (TEXMEX: SIFT1M, GIST1M): each row is a little-endian
  int32 dimension followed by d float32 / int32 / uint8 values.
- ``.fbin`` / ``.u8bin`` / ``.i8bin`` / ``.ibin`` (big-ann-benchmarks): uint32 n, uint32 d, then
  n·d float32 / uint8 / int8 / int32 values, row-major.
- ``.hdf5`` / ``.h5`` (ann-benchmarks): ``train`` is the base (``--name`` picks another dataset);
  :func:`load_ann_benchmarks` also gives its ``test`` queries, ``neighbors`` ground truth (read
  only as far as used, see :func:`read_ground_truth`) and declared ``distance``. Read through
  h5py, slice by slice (extra ``hdf5``).
- ``.parquet`` / ``.arrow`` / ``.feather``: an embedding column (``--column``; list or
  fixed-size list of numbers), a :class:`LazyArray` whose shape comes from the metadata; on the
  first read it is streamed in record batches through pyarrow (extra ``parquet``) into an
  anonymous temporary file (in the column's own number type) that is mapped. Arrow IPC files
  and streams (as Hugging Face datasets writes them) are both read.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import stat
import struct
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import IO, Any, TypeVar

import numpy as np

from .data import Dataset, chunk_rows
from .errors import GpupqError

#: format name -> file extension that selects it
EXTENSIONS = {
    ".npy": "npy",
    ".npz": "npz",
    ".fvecs": "fvecs",
    ".ivecs": "ivecs",
    ".bvecs": "bvecs",
    ".fbin": "fbin",
    ".u8bin": "u8bin",
    ".i8bin": "i8bin",
    ".ibin": "ibin",
    ".hdf5": "hdf5",
    ".h5": "hdf5",
    ".parquet": "parquet",
    ".arrow": "arrow",
    ".feather": "arrow",
}
FORMATS = tuple(dict.fromkeys(EXTENSIONS.values()))
_VECS_DTYPE = {"fvecs": np.dtype("<f4"), "ivecs": np.dtype("<i4"), "bvecs": np.dtype("u1")}
_BIN_DTYPE = {"fbin": np.dtype("<f4"), "u8bin": np.dtype("u1"), "i8bin": np.dtype("i1"), "ibin": np.dtype("<i4")}
_NPY_MAGIC = b"\x93NUMPY"
#: numpy's own limit on an .npy header (``max_header_size``), checked before reading one
_NPY_MAX_HEADER = 10000

#: bytes an inflation or conversion may write to the temporary directory, unless raised
DEFAULT_INFLATE_LIMIT = 16 * 10**9
INFLATE_LIMIT_ENV = "GPUPQ_INFLATE_LIMIT"
_RAISE_LIMIT = f"set --inflate-limit or {INFLATE_LIMIT_ENV}, point TMPDIR at a larger disk"
#: bytes read and written per step while inflating or converting
_COPY_BYTES = 16 << 20

_F = TypeVar("_F", bound=Callable[..., Any])


def _one_line(fn: _F) -> _F:
    """Every message leaving a public reader is one printable line, whatever the file is called
    (a name may hold a newline or bytes that are not UTF-8)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with _printable_errors():
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


@contextmanager
def _printable_errors() -> Iterator[None]:
    """Re-raise a GpupqError whose message is not one printable line as one that is."""
    try:
        yield
    except GpupqError as exc:
        text = str(exc)
        if text != _printable(text):
            raise GpupqError(_printable(text)) from None
        raise


def _printable(text: str) -> str:
    """text with control characters and undecodable bytes escaped (``\\n``, ``\\udcff``)."""
    out = []
    for ch in text:
        if ch.isprintable() or ch == " ":
            try:
                ch.encode("utf-8")
            except UnicodeEncodeError:  # a lone surrogate: a file name byte that is not UTF-8
                ch = ch.encode("unicode_escape").decode("ascii")
            out.append(ch)
        else:
            out.append(ch.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def _first_line(exc: BaseException) -> str:
    """The first line of an exception's message, for a one-line error."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


@contextmanager
def _failing(prefix: str, errors: tuple[type[BaseException], ...]) -> Iterator[None]:
    """Turn a library's exceptions (a damaged file) into one GpupqError: "prefix (reason)"."""
    try:
        yield
    except GpupqError:
        raise
    except errors as exc:
        raise GpupqError(f"{prefix} ({_first_line(exc)})") from None


def detect_format(path: str, fmt: str | None = None) -> str:
    """The format named by ``fmt`` (``--format``), else by the file extension."""
    if fmt:
        fmt = fmt.lower().lstrip(".")
        if fmt not in FORMATS:
            raise GpupqError(f"--format {fmt!r} is not one of {', '.join(FORMATS)}")
        return fmt
    ext = os.path.splitext(path)[1].lower()
    if ext not in EXTENSIONS:
        raise GpupqError(
            f"{path}: cannot tell the format from {ext or 'a missing extension'!r}; "
            f"name it with --format ({', '.join(FORMATS)})"
        )
    return EXTENSIONS[ext]


@_one_line
def load_vectors(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    name: str | None = None,
    metric: str = "l2",
    column: str | None = None,
    *,
    inflate_limit: int | None = None,
) -> Dataset:
    """Open ``path`` as an (n, d) dataset, by extension or ``fmt``; ``name`` picks an .npz array
    or an HDF5 dataset, ``column`` a Parquet/Arrow column. ``inflate_limit``: the most bytes a
    compressed .npz member or a Parquet/Arrow column may write to the temporary directory when
    first read (None: ``$GPUPQ_INFLATE_LIMIT``, else 16 GB; see :func:`resolve_inflate_limit`)."""
    path = os.fspath(path)
    _check_readable(path)
    fmt = detect_format(path, fmt)
    if name is not None and fmt not in ("npz", "hdf5"):
        raise GpupqError(f"--name picks an array inside an .npz or HDF5 file; {path} is {fmt}")
    if column is not None and fmt not in ("parquet", "arrow"):
        raise GpupqError(f"--column picks a column of a Parquet or Arrow file; {path} is {fmt}")
    shown = _printable(path)
    if fmt == "hdf5":
        source = _printable(f"{path}:{name or 'train'}")
        return Dataset(array=_h5_dataset(path, name or "train"), source=source, metric=metric)
    if fmt in ("parquet", "arrow"):
        array, col = _arrow_column(path, fmt, column, inflate_limit)
        return Dataset(array=array, source=_printable(f"{path}:{col}"), metric=metric)
    if fmt == "npy":
        return load_npy(path, metric)
    if fmt == "npz":
        array, member = _npz_array(path, name, inflate_limit)
        return Dataset(array=array, source=_printable(f"{path}:{member}") if name else shown, metric=metric)
    if fmt in _VECS_DTYPE:
        return Dataset(array=_vecs_array(path, _VECS_DTYPE[fmt]), source=shown, metric=metric)
    return Dataset(array=_bin_array(path, _BIN_DTYPE[fmt]), source=shown, metric=metric)


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


# ---------------------------------------------------------------------------- sizes


_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``500MB``, ``20GB`` (decimal), ``1.5GiB`` (binary) or ``12345``."""
    match = _SIZE.fullmatch(str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise GpupqError(f"{str(text)!r} is not a size; write e.g. 500MB, 20GB, 1.5GiB or a number of bytes")
    return int(Decimal(match.group(1)) * _SIZE_UNITS[unit])


def format_size(nbytes: int) -> str:
    """A byte count for people: ``389 kB``, ``4.29 GB`` (decimal units)."""
    if nbytes < 1000:
        return f"{nbytes} bytes"
    value = float(nbytes)
    for unit in ("kB", "MB", "GB", "TB", "PB"):
        value /= 1000
        if value < 999.5 or unit == "PB":
            return f"{value:.3g} {unit}"
    raise AssertionError("unreachable")


def resolve_inflate_limit(limit: int | None = None) -> tuple[int, str]:
    """The most bytes one inflation or conversion may write, and who set it: ``limit`` when
    given, else ``$GPUPQ_INFLATE_LIMIT`` (a size, see :func:`parse_size`), else 16 GB."""
    if limit is not None:
        if limit < 0:
            raise GpupqError(f"--inflate-limit must be 0 or more bytes (got {limit})")
        return int(limit), "--inflate-limit"
    text = os.environ.get(INFLATE_LIMIT_ENV, "").strip()
    if text:
        try:
            return parse_size(text), INFLATE_LIMIT_ENV
        except GpupqError:
            raise GpupqError(
                f"{INFLATE_LIMIT_ENV}={text!r} is not a size; write e.g. 500MB, 20GB, 1.5GiB or a number of bytes"
            ) from None
    return DEFAULT_INFLATE_LIMIT, "the default"


def _check_room(need: int, where: str, limit: int | None, alternative: str) -> None:
    """Refuse to write ``need`` bytes to the temporary directory past the inflation limit or the
    free space there (less a margin, so a full disk is not what stops us)."""
    cap, origin = resolve_inflate_limit(limit)
    if need > cap:
        raise GpupqError(
            f"{where}: reading it needs {format_size(need)} of temporary disk space, more than the "
            f"inflation limit of {format_size(cap)} ({origin}); {_RAISE_LIMIT}, or {alternative}"
        )
    tmpdir = tempfile.gettempdir()
    try:
        total, _, free = shutil.disk_usage(tmpdir)
    except OSError:
        return  # cannot tell: a failed write is still one clear error
    margin = min(10**9, total // 20)
    if need > free - margin:
        raise GpupqError(
            f"{where}: reading it needs {format_size(need)} of temporary disk space but {tmpdir} has "
            f"{format_size(free)} free (gpupq leaves {format_size(margin)} spare); point TMPDIR at a "
            f"larger disk, or {alternative}"
        )


class LazyArray:
    """An (n, d) array-like whose values are written once, in chunks, into an anonymous temporary
    file on the first read, then read from that file's memory map.

    ``shape`` and ``dtype`` come from the file's header or metadata, so everything that checks
    parameters against the shape runs before a byte is inflated or converted, and the bytes to
    write are checked against the inflation limit before the first is written. Reads are those
    of an ndarray (``[start:stop]``, ``[int array]``); a damaged file found while filling is one
    :class:`GpupqError`, raised by that first read.

    fill(write): writes exactly ``nbytes`` bytes, C- or Fortran-ordered as ``order``, through
    ``write``; raises GpupqError for a damaged file.
    """

    def __init__(
        self,
        shape: tuple[int, int],
        dtype: np.dtype,
        where: str,
        fill: Callable[[Callable[[Any], None]], None],
        alternative: str,
        limit: int | None = None,
        order: str = "C",
    ) -> None:
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.ndim = 2
        self.where = where
        self._fill = fill
        self._alternative = alternative  # how else to avoid the temporary copy, for messages
        self._limit = limit
        self._order = order
        self._map: np.memmap | None = None

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    @property
    def materialised(self) -> bool:
        return self._map is not None

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        state = "read" if self._map is not None else "not read yet"
        return f"LazyArray({self.where}, shape={self.shape}, dtype={self.dtype}, {state})"

    def __getitem__(self, key: Any) -> np.ndarray:
        return self.values()[key]

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self.values(), dtype=dtype)

    def values(self) -> np.memmap:
        """The (n, d) values, read-only; written to the temporary file on the first call."""
        if self._map is None:
            with _printable_errors():  # raised in the middle of an estimate, not by a reader
                self._map = self._materialise()
        return self._map

    def _materialise(self) -> np.memmap:
        need = self.nbytes
        _check_room(need, self.where, self._limit, self._alternative)
        tmpdir = tempfile.gettempdir()
        try:
            tmp = tempfile.TemporaryFile()
        except OSError as exc:
            raise GpupqError(
                f"{self.where}: cannot create a temporary file in {tmpdir} ({exc.strerror or exc}); "
                "point TMPDIR at a writable directory"
            ) from None
        with tmp:
            written = 0

            def write(data: Any) -> None:
                nonlocal written
                view = memoryview(data).cast("B")
                # Never past what was checked against the limit, whatever the file holds.
                if written + len(view) > need:
                    raise GpupqError(f"{self.where}: holds more values than its {self.shape} {self.dtype} header")
                try:
                    tmp.write(view)
                except OSError as exc:
                    raise GpupqError(
                        f"{self.where}: cannot write its temporary copy to {tmpdir} ({exc.strerror or exc}); "
                        f"point TMPDIR at a larger disk, or {self._alternative}"
                    ) from None
                written += len(view)

            self._fill(write)
            if written != need:  # a reader that stopped early without saying so
                raise GpupqError(f"{self.where}: truncated: holds {written} of the {need} bytes its header promises")
            try:
                tmp.flush()
            except OSError as exc:
                raise GpupqError(f"{self.where}: cannot write its temporary copy to {tmpdir} ({exc})") from None
            # The map holds its own descriptor, so the unlinked file outlives this block.
            return np.memmap(tmp, dtype=self.dtype, mode="r", shape=self.shape, order=self._order)


# ---------------------------------------------------------------------------- checks

_FILE_KINDS = (
    (stat.S_ISFIFO, "a named pipe (FIFO)"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


def _check_readable(path: str) -> None:
    """Refuse, before anything opens it, a path that is missing, a directory, or (after
    following links) not a regular file: a FIFO blocks its reader forever and a device such as
    /dev/zero never ends."""
    try:
        mode = os.stat(path).st_mode  # follows links
    except FileNotFoundError:  # also a link to nothing
        raise GpupqError(f"{path}: no such file") from None
    except PermissionError:
        raise GpupqError(f"{path}: permission denied") from None
    except (OSError, ValueError) as exc:  # a loop of links, a name too long, a NUL byte in it
        raise GpupqError(f"{path}: cannot read ({getattr(exc, 'strerror', None) or exc})") from None
    if stat.S_ISDIR(mode):
        raise GpupqError(f"{path}: is a directory, not a vector file")
    if not stat.S_ISREG(mode):
        real = os.path.realpath(path)
        kind = next((what for test, what in _FILE_KINDS if test(mode)), "a special file")
        shown = path if real == os.path.abspath(path) else f"{path} (a link to {real})"
        raise GpupqError(f"{shown}: is {kind}, not a regular file; gpupq reads vector files only")


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except PermissionError:
        raise GpupqError(f"{path}: permission denied") from None
    except OSError as exc:
        raise GpupqError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _check_dtype(path: str, dtype: np.dtype) -> None:
    if dtype.hasobject:
        raise GpupqError(f"{path}: holds Python objects (a pickled array); gpupq reads numeric arrays only")
    if dtype.fields is not None or dtype.subdtype is not None or dtype.kind not in "fiu":
        raise GpupqError(f"{path}: dtype {dtype} is not a real number type (float16/32/64 or integer)")


def _check_matrix(path: str, shape: tuple[int, ...] | None, dtype: np.dtype) -> tuple[int, int]:
    """(n, d) of a declared 2-D numeric shape, or one GpupqError."""
    _check_dtype(path, dtype)
    if shape is None or len(shape) != 2:
        raise GpupqError(f"{path}: array has shape {shape if shape is None else tuple(shape)}; expected 2-D (n, d)")
    n, d = (int(s) for s in shape)
    if n < 0 or d < 0:
        raise GpupqError(f"{path}: header declares a negative shape ({n}, {d})")
    if n == 0 or d == 0:
        raise GpupqError(f"{path}: array of shape ({n}, {d}) is empty")
    return n, d


def _check_size(path: str, expected: int, exact: bool, what: str = "") -> None:
    actual = os.path.getsize(path)
    if actual < expected:
        raise GpupqError(f"{path}: truncated: {what or 'the header'} promises {expected} bytes, file has {actual}")
    if exact and actual > expected:
        raise GpupqError(f"{path}: {actual - expected} bytes past the {expected} that {what or 'the header'} promises")


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


# ---------------------------------------------------------------------------- readers


def _vecs_array(path: str, dtype: np.dtype) -> np.ndarray:
    """TEXMEX rows of [int32 d][d values]: a strided (n, d) view of the memory-mapped file."""
    size = os.path.getsize(path)
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
    if n == 0 or d == 0:
        raise GpupqError(f"{path}: header declares an empty array ({n} x {d})")
    _check_size(path, 8 + n * d * dtype.itemsize, exact=True, what=f"the header ({n} x {d} {dtype})")
    return np.memmap(path, dtype=dtype, mode="r", offset=8, shape=(n, d))


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


# ---------------------------------------------------------------------------- HDF5

ANN_DISTANCES = {"euclidean": "l2", "angular": "cosine", "dot": "ip", "ip": "ip"}
#: what h5py raises on a damaged file, a dangling link, an unregistered filter or odd types
_H5_ERRORS = (OSError, RuntimeError, KeyError, ValueError, TypeError, IndexError, AttributeError, NotImplementedError)


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise GpupqError(f"reading HDF5 needs h5py: pip install 'gpupq[hdf5]' ({exc})") from None
    return h5py


def _h5_file(path: str) -> Any:
    h5py = _h5py()
    with _failing(f"{path}: not a readable HDF5 file", _H5_ERRORS):
        return h5py.File(path, "r")


class H5Array:
    """An (n, d) HDF5 dataset read slice by slice (h5py reads only what is asked): a read that
    fails (a damaged chunk, a compression filter not installed) is one GpupqError naming it.
    Integer-array reads may be in any order, as on an ndarray."""

    def __init__(self, ds: Any, where: str) -> None:
        self._ds = ds
        self.where = where
        self.shape = tuple(int(s) for s in ds.shape)
        self.dtype = np.dtype(ds.dtype)
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"H5Array({self.where}, shape={self.shape}, dtype={self.dtype})"

    def unwritten(self, rows: int | None = None, cols: int | None = None) -> str | None:
        """Why part of [:rows, :cols] (all by default) would read as the fill value, never having
        been written (a preallocated dataset, or a small file declaring a huge one), or None.
        Virtual and external datasets, and any that cannot tell, say None."""
        ds = self._ds
        try:
            dsid = ds.id
            layout = dsid.get_create_plist().get_layout()
            if layout == _h5py().h5d.CONTIGUOUS and not ds.external:
                need = int(np.prod(self.shape)) * self.dtype.itemsize
                have = int(dsid.get_storage_size())
                return f"only {have} of its {need} bytes are written" if have < need else None
            if layout != _h5py().h5d.CHUNKED:
                return None
            chunks = tuple(int(c) for c in ds.chunks)
            if rows is None and cols is None:
                expected = int(np.prod([-(-s // c) for s, c in zip(self.shape, chunks, strict=True)]))
                have = int(dsid.get_num_chunks())
                return f"only {have} of its {expected} chunks are written" if have < expected else None
            # Only the chunks that the read covers (when they are few enough to ask one by one).
            if len(chunks) != 2:
                return None
            spans = [range(0, rows or self.shape[0], chunks[0]), range(0, cols or self.shape[1], chunks[1])]
            if len(spans[0]) * len(spans[1]) > 4096:
                return None
            for r in spans[0]:
                for c in spans[1]:
                    if dsid.get_chunk_info_by_coord((r, c)).byte_offset is None:
                        return f"its chunk at row {r}, column {c} was never written"
        except (*_H5_ERRORS, AttributeError):  # an older HDF5 without these calls: cannot tell
            return None
        return None

    def __getitem__(self, key: Any) -> np.ndarray:
        with _printable_errors(), _failing(f"{self.where}: cannot read", _H5_ERRORS):
            if isinstance(key, np.ndarray) and key.ndim == 1 and key.dtype.kind in "iu":
                # h5py reads a list of rows only in increasing order, without repeats.
                rows, back = np.unique(key, return_inverse=True)
                if len(rows) and (rows[0] < 0 or rows[-1] >= self.shape[0]):
                    raise IndexError(f"row {int(rows[0] if rows[0] < 0 else rows[-1])} is out of range")
                return np.asarray(self._ds[rows])[back] if len(rows) else np.empty((0, *self.shape[1:]), self.dtype)
            return np.asarray(self._ds[key])

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        return np.asarray(self[()], dtype=dtype)


def _h5_names(f: Any, path: str) -> list[str]:
    """Names of the datasets at the top of an HDF5 file."""
    h5py = _h5py()
    with _failing(f"{path}: not a readable HDF5 file", _H5_ERRORS):
        return sorted(k for k in f if isinstance(f.get(k), h5py.Dataset))


def _h5_object(f: Any, path: str, name: str) -> Any:
    """f[name], or None when missing (a dangling link is missing too)."""
    with _failing(f"{path}: cannot open {name!r} in the HDF5 file", _H5_ERRORS):
        return f.get(name) if name else None


def _h5_checked(obj: Any, where: str) -> tuple[tuple[int, ...] | None, np.dtype]:
    """Shape and dtype of an HDF5 object that must be a dataset of numbers."""
    h5py = _h5py()
    if not isinstance(obj, h5py.Dataset):
        kind = "a group" if isinstance(obj, h5py.Group) else "not a dataset"
        raise GpupqError(f"{where}: is {kind}, not an array of numbers")
    with _failing(f"{where}: cannot read its type", _H5_ERRORS):
        shape, dtype = obj.shape, np.dtype(obj.dtype)
    if shape is None:
        raise GpupqError(f"{where}: has no shape (an empty HDF5 dataspace)")
    if dtype.kind == "O":
        raise GpupqError(f"{where}: holds variable-length data (strings or references), not numbers")
    return tuple(int(s) for s in shape), dtype


def _h5_dataset(path: str, name: str, f: Any = None) -> H5Array:
    """An HDF5 dataset of shape (n, d), read slice by slice."""
    f = f if f is not None else _h5_file(path)
    obj = _h5_object(f, path, name)
    if obj is None:
        names = ", ".join(_h5_names(f, path)) or "none"
        raise GpupqError(f"{path}: has no dataset {name!r}; it holds {names} (pick one with --name)")
    where = f"{path}:{name}"
    shape, dtype = _h5_checked(obj, where)
    _check_matrix(where, shape, dtype)
    array = H5Array(obj, where)
    why = array.unwritten()
    if why is not None:
        raise GpupqError(f"{where}: declares shape {shape} but {why}; the rest would read as zeros (its fill value)")
    return array


def _h5_distance(f: Any, path: str) -> str | None:
    """The ``distance`` attribute as text, or None."""
    with _failing(f"{path}: cannot read its 'distance' attribute", _H5_ERRORS):
        distance = f.attrs.get("distance")
    if distance is None:
        return None
    if isinstance(distance, np.ndarray) and distance.size == 1:
        distance = distance.reshape(-1)[0]
    if isinstance(distance, bytes):
        return distance.decode("utf-8", "replace")
    return str(distance)


def _h5_neighbors(f: Any, path: str, n_test: int) -> H5Array | None:
    """The ``neighbors`` dataset, checked for shape and type but not read (see
    :func:`read_ground_truth`); None when there is none."""
    obj = _h5_object(f, path, "neighbors")
    if obj is None:
        return None
    where = f"{path}:neighbors"
    shape, dtype = _h5_checked(obj, where)
    if len(shape) != 2:
        raise GpupqError(f"{where}: has shape {shape}; expected 2-D (one row of neighbour ids per test query)")
    if dtype.kind not in "iu":
        raise GpupqError(f"{where}: holds {dtype} values; expected integer row numbers of train")
    if shape[0] != n_test:
        raise GpupqError(f"{path}: neighbors has {shape[0]} rows but test has {n_test}")
    if shape[1] == 0:
        raise GpupqError(f"{where}: holds no neighbours (shape {shape})")
    return H5Array(obj, where)


@dataclass
class AnnBenchmarks:
    """An ann-benchmarks HDF5 file: base, its test queries, and what it declares.

    neighbors: (nq, K) integer array-like (an :class:`H5Array`, read only as far as used by
    :func:`read_ground_truth`): row numbers in the base of each test query's exact neighbours.
    """

    base: Dataset
    queries: Dataset | None
    neighbors: Any | None
    metric: str | None  # the metric its "distance" attribute names, in gpupq's terms
    distance: str | None  # the attribute as written


@_one_line
def load_ann_benchmarks(path: str | os.PathLike[str], metric: str | None = None) -> AnnBenchmarks:
    """Open an ann-benchmarks file: ``train``, ``test``, ``neighbors``, ``distance``.

    The declared distance sets the metric unless ``metric`` is given; the stored neighbours are
    returned only when they were computed for the metric in use.
    """
    path = os.fspath(path)
    _check_readable(path)
    f = _h5_file(path)
    shown = _printable(path)
    distance = _h5_distance(f, path)
    declared = ANN_DISTANCES.get(distance.lower()) if distance is not None else None
    if distance is not None and declared is None:
        raise GpupqError(f"{path}: distance {distance!r} is not one gpupq measures (euclidean, angular, dot)")
    use = metric or declared or "l2"
    base = Dataset(array=_h5_dataset(path, "train", f), source=f"{shown}:train", metric=use)
    queries = None
    if _h5_object(f, path, "test") is not None:
        queries = Dataset(array=_h5_dataset(path, "test", f), source=f"{shown}:test", metric=use)
    neighbors = None
    if queries is not None and (declared is None or declared == use):
        neighbors = _h5_neighbors(f, path, queries.n)
    return AnnBenchmarks(base=base, queries=queries, neighbors=neighbors, metric=declared, distance=distance)


@_one_line
def read_ground_truth(gt: Any, n_queries: int, k: int, n_base: int, where: str) -> np.ndarray:
    """The stored exact neighbours an estimate uses, checked: (n_queries, min(K, k + 1)) int64.

    gt: (nq, K) integer array-like (an ndarray, or an HDF5 dataset read only as far as used):
    row numbers in the base of each query's exact neighbours, nearest first. Returns the first
    n_queries rows and the first k + 1 columns when the file stores more than k (the caller can
    then tell ties at the k-th neighbour). Refused, with one line naming ``where``: not 2-D, not
    integers, fewer rows than queries, fewer than k columns, or any id outside [0, n_base).
    """
    shape = getattr(gt, "shape", None)
    if shape is None:
        gt = np.asarray(gt)
        shape = gt.shape
    dtype = np.dtype(getattr(gt, "dtype", np.float64))
    if len(shape) != 2:
        raise GpupqError(f"{where}: has shape {tuple(shape)}; expected 2-D (one row of neighbour ids per query)")
    if dtype.kind not in "iu":
        raise GpupqError(f"{where}: holds {dtype} values; expected integer row numbers of the base")
    nq, K = (int(s) for s in shape)
    if nq < n_queries:
        raise GpupqError(f"{where}: holds neighbours for {nq} queries, fewer than the {n_queries} used")
    if K < k:
        raise GpupqError(f"-k {k} is more than the {K} neighbours stored per query")
    cols = min(K, k + 1)
    why = gt.unwritten(n_queries, cols) if isinstance(gt, H5Array) else None
    if why is not None:  # it would read as id 0, the fill value
        raise GpupqError(f"{where}: {why}; its neighbour ids there would read as 0 (the fill value)")
    with _failing(f"{where}: cannot read", _H5_ERRORS):
        block = np.asarray(gt[:n_queries, :cols])
    ids = block.astype(np.int64)  # uint64 past int64's range turns negative: out of range below
    bad = (ids < 0) | (ids >= n_base)
    if bad.any():
        count = int(np.count_nonzero(bad))
        q, j = (int(v) for v in np.argwhere(bad)[0])
        raise GpupqError(
            f"{where}: {count} of {ids.size} stored neighbour ids used are not row numbers of the "
            f"{n_base}-vector base (e.g. {block[q, j]} for query {q}, neighbour {j}); "
            "they were not computed for this base"
        )
    return ids


# ---------------------------------------------------------------------------- Parquet, Arrow

_ARROW_ALTERNATIVE = "save the column as .npy"


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError as exc:
        raise GpupqError(f"reading Parquet or Arrow needs pyarrow: pip install 'gpupq[parquet]' ({exc})") from None
    return pyarrow


def _arrow_errors(pa: Any) -> tuple[type[BaseException], ...]:
    """What pyarrow raises on a damaged file (bad pages, bad offsets, unknown encodings)."""
    return (pa.ArrowException, OSError, ValueError, IndexError, KeyError, TypeError, EOFError, StopIteration)


def _ipc_reader(pa: Any, path: str, kind: str | None, fields: list[int] | None = None) -> tuple[Any, str]:
    """An Arrow IPC file reader, or a stream reader when the file is a stream (Hugging Face
    datasets writes those), over a read-only memory map; ``fields`` limits the columns read."""
    options = pa.ipc.IpcReadOptions(included_fields=fields) if fields is not None else None
    if kind in (None, "file"):
        try:
            return pa.ipc.open_file(pa.memory_map(path, "r"), options=options), "file"
        except pa.ArrowInvalid:
            if kind == "file":
                raise
    return pa.ipc.open_stream(pa.memory_map(path, "r"), options=options), "stream"


def _arrow_batches(pa: Any, path: str, fmt: str, kind: str, index: int, name: str, rows: int) -> Iterator[Any]:
    """Record batches of one column (index in the schema, name) of at most ``rows`` rows."""
    if fmt == "parquet":
        yield from pa.parquet.ParquetFile(path).iter_batches(columns=[name], batch_size=rows)
        return
    reader, _ = _ipc_reader(pa, path, kind, [index])
    batches = (reader.get_batch(i) for i in range(reader.num_record_batches)) if kind == "file" else reader
    for batch in batches:
        # An IPC batch is what its writer made it: slice it (zero-copy) to bound each copy.
        for start in range(0, batch.num_rows, rows):
            yield batch.slice(start, rows)


def _arrow_column(
    path: str, fmt: str, column: str | None, limit: int | None, query: bool = False
) -> tuple[LazyArray, str]:
    """An embedding column as a :class:`LazyArray` of shape (rows in the metadata, width of
    the list type or of the first row), converted batch by batch on the first read. ``query``:
    a query file, where ``column`` (the data's ``--column``) is used only when the file has it."""
    pa = _pyarrow()
    errors = _arrow_errors(pa)
    kind = "parquet"

    def is_vector(t: Any) -> bool:
        listy = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        return listy and (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type))

    # Names and types come from the file's metadata: a damaged one fails here (e.g. not UTF-8).
    with _failing(f"{path}: not a readable {fmt} file", errors):
        if fmt == "parquet":
            pf = pa.parquet.ParquetFile(path)
            schema = pf.schema_arrow
            declared_rows: int | None = int(pf.metadata.num_rows)
        else:
            reader, kind = _ipc_reader(pa, path, None)
            schema = reader.schema
            declared_rows = None
        names = list(schema.names)
        candidates = list(dict.fromkeys(f.name for f in schema if is_vector(f.type)))
        if query and column not in names:
            column = None
        if column is None:
            if len(candidates) != 1:
                found = ", ".join(candidates) or "none"
                if query:
                    raise GpupqError(
                        f"{path}: a query file is read by --column, or by its only list column (list columns: {found})"
                    )
                raise GpupqError(f"{path}: name the embedding column with --column (list columns: {found})")
            column = candidates[0]
        if column not in names:
            raise GpupqError(f"{path}: no column {column!r}; it has {', '.join(names)}")
        indices = schema.get_all_field_indices(column)
        if len(indices) > 1:
            raise GpupqError(f"{path}: has {len(indices)} columns named {column!r}; gpupq cannot tell them apart")
        index = indices[0]
        ctype = schema.field(index).type
        if column not in candidates:
            raise GpupqError(f"{path}: column {column!r} is {ctype}, not a list of numbers")
        # the numpy type of the values, without to_pandas_dtype (which needs pandas before pyarrow 17)
        dtype = pa.array([], type=ctype.value_type).to_numpy(zero_copy_only=False).dtype
        fixed = pa.types.is_fixed_size_list(ctype)
        list_size = int(ctype.list_size) if fixed else None
    where = f"{path}:{column}"

    with _failing(f"{where}: cannot read", errors):
        if declared_rows is None:  # IPC: each batch's length is in its message; nothing is copied
            reader, _ = _ipc_reader(pa, path, kind, [index])
            if kind == "file":
                declared_rows = sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches))
            else:
                declared_rows = sum(batch.num_rows for batch in reader)
        if declared_rows < 0:
            raise GpupqError(f"{path}: its metadata declares {declared_rows} rows")
        if not declared_rows:
            raise GpupqError(f"{path}: column {column!r} is empty")
        if list_size is not None:
            d = list_size
        else:  # the first row's length; every other row is checked against it as it is read
            first = next(_arrow_batches(pa, path, fmt, kind, index, column, 1))
            first.validate(full=True)
            if first.column(0).null_count:
                raise GpupqError(f"{where}: row 0 is null")
            d = len(first.column(0)[0])
    if d <= 0:
        raise GpupqError(f"{path}: column {column!r} is empty (its lists hold {d} values)")
    n = declared_rows

    def fill(write: Callable[[Any], None]) -> None:
        step = max(1, _COPY_BYTES // (d * dtype.itemsize))
        row = 0
        with _failing(f"{where}: damaged data", errors):
            for batch in _arrow_batches(pa, path, fmt, kind, index, column, step):
                batch.validate(full=True)  # offsets and lengths before any value is copied
                col = batch.column(0)
                if row + len(col) > n:
                    raise GpupqError(f"{where}: holds more than the {n} rows its metadata declares")
                write(_list_values(col, d, dtype, row, path, column, fixed))
                row += len(col)
        if row != n:
            raise GpupqError(f"{where}: truncated: its metadata declares {n} rows, the column holds {row}")

    return LazyArray((n, d), dtype, where, fill, _ARROW_ALTERNATIVE, limit), column


def _list_values(col: Any, d: int, dtype: np.dtype, row: int, path: str, column: str, fixed: bool) -> np.ndarray:
    """(len(col), d) values of a chunk of a list column starting at ``row``, checked."""
    if col.null_count:
        first = next(i for i in range(len(col)) if not col[i].is_valid)
        raise GpupqError(
            f"{path}: column {column!r} has {col.null_count} empty (null) rows in a batch (first at row {row + first})"
        )
    if not fixed:
        lengths = np.diff(col.offsets.to_numpy())
        if len(lengths) and (lengths != d).any():
            bad = int(np.argmax(lengths != d))
            raise GpupqError(f"{path}: row {row + bad} of {column!r} has {int(lengths[bad])} values, row 0 has {d}")
    elif col.type.list_size != d:
        raise GpupqError(f"{path}: column {column!r} changes from {d} to {col.type.list_size} values at row {row}")
    values = col.flatten()
    if values.null_count:
        raise GpupqError(f"{path}: column {column!r} has {values.null_count} null values inside its lists")
    if len(values) != len(col) * d:
        raise GpupqError(f"{path}: column {column!r} holds {len(values)} values for {len(col)} rows of {d}")
    out = np.ascontiguousarray(values.to_numpy(zero_copy_only=False), dtype=dtype)
    return out.reshape(len(col), d)


# ---------------------------------------------------------------------------- inputs


@dataclass
class Inputs:
    """What an estimate reads: the base, and the queries and exact neighbours that come with it.

    ground_truth: (nq, K) integer array-like (an HDF5 dataset, read only as far as used by
    :func:`read_ground_truth`): row numbers of each query's exact neighbours in the base, or
    None to compute them. notes: what was taken from where, to tell the user.
    """

    dataset: Dataset
    queries: Dataset | None = None
    ground_truth: Any | None = None
    ground_truth_source: str | None = None
    notes: list[str] = field(default_factory=list)


@_one_line
def open_inputs(
    data: str | os.PathLike[str] | Dataset,
    fmt: str | None = None,
    name: str | None = None,
    column: str | None = None,
    metric: str | None = None,
    queries_file: str | os.PathLike[str] | None = None,
    *,
    inflate_limit: int | None = None,
) -> Inputs:
    """Open the base (a file, or a dataset already made, such as synthetic data) and, for an
    ann-benchmarks file, its test queries and stored neighbours (when they were computed for the
    metric in use); ``queries_file`` replaces the queries (an ann-benchmarks file gives its
    ``test`` set). ``inflate_limit``: see :func:`load_vectors`."""
    if isinstance(data, Dataset):
        inputs = Inputs(dataset=data)
    else:
        path = os.fspath(data)
        _check_readable(path)
        shown = _printable(path)
        if detect_format(path, fmt) == "hdf5" and name in (None, "train"):
            ann = load_ann_benchmarks(path, metric)
            inputs = Inputs(dataset=ann.base)
            if ann.distance is not None:
                if metric is None or metric == ann.metric:
                    inputs.notes.append(f"{shown} declares distance {ann.distance!r}: metric {ann.base.metric}")
                else:
                    inputs.notes.append(f"{shown} declares distance {ann.distance!r}; using --metric {metric} as given")
            if queries_file is None and ann.queries is not None:
                inputs.queries = ann.queries
                inputs.notes.append(f"queries: its test set ({ann.queries.n:,} rows)")
                if ann.neighbors is not None:
                    inputs.ground_truth = ann.neighbors
                    inputs.ground_truth_source = f"{shown}:neighbors"
                    inputs.notes.append(f"ground truth: its stored neighbors ({ann.neighbors.shape[1]} per query)")
                elif ann.metric is not None and ann.metric != ann.base.metric:
                    inputs.notes.append(f"ground truth: computed, as its neighbors are for {ann.distance}")
                else:
                    inputs.notes.append("ground truth: computed, as it stores no neighbors")
            elif queries_file is not None and ann.queries is not None:
                inputs.notes.append("ground truth: computed, as its stored neighbors are for its own test set")
        else:
            inputs = Inputs(dataset=load_vectors(path, fmt, name, metric or "l2", column, inflate_limit=inflate_limit))
    if queries_file is not None:
        inputs.queries = _load_queries(queries_file, inputs, name, column, inflate_limit)
    return inputs


def _load_queries(
    queries_file: str | os.PathLike[str], inputs: Inputs, name: str | None, column: str | None, limit: int | None
) -> Dataset:
    """A query file, read like the base (by extension). An HDF5 file gives its ``test`` set
    (ann-benchmarks queries), else its ``train``, else its only dataset, and says which; an .npz
    its only array or the one named as the data's ``--name``; Parquet/Arrow the data's
    ``--column`` when it has one, else its only list column."""
    path = os.fspath(queries_file)
    metric = inputs.dataset.metric
    _check_readable(path)
    fmt = detect_format(path)
    if fmt == "npz":
        array, member = _npz_array(path, name, limit, query=True)
        return Dataset(array=array, source=_printable(f"{path}:{member}" if member == name else path), metric=metric)
    if fmt in ("parquet", "arrow"):
        array, col = _arrow_column(path, fmt, column, limit, query=True)
        return Dataset(array=array, source=_printable(f"{path}:{col}"), metric=metric)
    if fmt != "hdf5":
        return load_vectors(path, metric=metric, inflate_limit=limit)
    f = _h5_file(path)
    names = _h5_names(f, path)
    if "test" in names:
        pick, why = "test", "its test set"
    elif "train" in names:
        pick, why = "train", "it has no test set"
    elif len(names) == 1:
        pick, why = names[0], "its only dataset"
    else:
        raise GpupqError(
            f"{path}: has no dataset 'test' or 'train' to use as queries; it holds {', '.join(names) or 'none'}"
        )
    source = _printable(f"{path}:{pick}")
    queries = Dataset(array=_h5_dataset(path, pick, f), source=source, metric=metric)
    inputs.notes.append(f"queries: {source} ({why})")
    return queries
