"""Readers for the formats people keep embeddings in.

Every reader memory-maps its file (read-only; input files are never modified) and checks it
before any use: a header that promises more rows than the file holds, mixed dimensions in a
TEXMEX file, or a non-numeric array is one clear :class:`GpupqError`. The result is a
:class:`~gpupq.data.Dataset` over an (n, d) array-like that the estimate reads in chunks.

- ``.npy``: NumPy, memory-mapped (never unpickled).
- ``.npz``: the named array (``--name``; optional when there is one). Stored members are mapped
  in place; a compressed member is inflated once, in chunks, into an anonymous temporary file
  that is mapped (and vanishes when the dataset does).
- ``.fvecs`` / ``.ivecs`` / ``.bvecs`` (TEXMEX: SIFT1M, GIST1M): each row is a little-endian
  int32 dimension followed by d float32 / int32 / uint8 values.
- ``.fbin`` / ``.u8bin`` / ``.i8bin`` / ``.ibin`` (big-ann-benchmarks): uint32 n, uint32 d, then
  n·d float32 / uint8 / int8 / int32 values, row-major.
- ``.hdf5`` / ``.h5`` (ann-benchmarks): ``train`` is the base (``--name`` picks another dataset);
  :func:`load_ann_benchmarks` also gives its ``test`` queries, ``neighbors`` ground truth and
  declared ``distance``. Read through h5py, slice by slice (extra ``hdf5``).
- ``.parquet`` / ``.arrow`` / ``.feather``: an embedding column (``--column``; list or
  fixed-size list of numbers), read in record batches through pyarrow (extra ``parquet``) into
  an anonymous temporary float32 file that is mapped.
"""

from __future__ import annotations

import os
import tempfile
import zipfile
from dataclasses import dataclass, field
from typing import IO, Any

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


def load_vectors(
    path: str | os.PathLike[str],
    fmt: str | None = None,
    name: str | None = None,
    metric: str = "l2",
    column: str | None = None,
) -> Dataset:
    """Open ``path`` as an (n, d) dataset, by extension or ``fmt``; ``name`` picks an .npz array
    or an HDF5 dataset, ``column`` a Parquet/Arrow column."""
    path = os.fspath(path)
    _check_readable(path)
    fmt = detect_format(path, fmt)
    if name is not None and fmt not in ("npz", "hdf5"):
        raise GpupqError(f"--name picks an array inside an .npz or HDF5 file; {path} is {fmt}")
    if column is not None and fmt not in ("parquet", "arrow"):
        raise GpupqError(f"--column picks a column of a Parquet or Arrow file; {path} is {fmt}")
    if fmt == "hdf5":
        return Dataset(array=_h5_dataset(path, name or "train"), source=f"{path}:{name or 'train'}", metric=metric)
    if fmt in ("parquet", "arrow"):
        array, col = _arrow_column(path, fmt, column)
        return Dataset(array=array, source=f"{path}:{col}", metric=metric)
    if fmt == "npy":
        return load_npy(path, metric)
    if fmt == "npz":
        return Dataset(array=_npz_array(path, name), source=f"{path}:{name}" if name else path, metric=metric)
    if fmt in _VECS_DTYPE:
        return Dataset(array=_vecs_array(path, _VECS_DTYPE[fmt]), source=path, metric=metric)
    return Dataset(array=_bin_array(path, _BIN_DTYPE[fmt]), source=path, metric=metric)


def load_npy(path: str | os.PathLike[str], metric: str = "l2") -> Dataset:
    """Memory-map an ``.npy`` file of shape (n, d), checking it before any use."""
    path = os.fspath(path)
    _check_readable(path)
    with _open(path) as fh:
        shape, fortran, dtype, header_end = _npy_header(fh, path)
    n, d = _check_matrix(path, shape, dtype)
    _check_size(path, header_end + n * d * dtype.itemsize, exact=False)
    array = np.memmap(path, dtype=dtype, mode="r", offset=header_end, shape=(n, d), order="F" if fortran else "C")
    return Dataset(array=array, source=path, metric=metric)


# ---------------------------------------------------------------------------- checks


def _check_readable(path: str) -> None:
    if not os.path.exists(path):
        raise GpupqError(f"{path}: no such file")
    if os.path.isdir(path):
        raise GpupqError(f"{path}: is a directory, not a vector file")


def _open(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")
    except PermissionError:
        raise GpupqError(f"{path}: permission denied") from None
    except OSError as exc:
        raise GpupqError(f"{path}: cannot read ({exc.strerror or exc})") from None


def _check_matrix(path: str, shape: tuple[int, ...], dtype: np.dtype) -> tuple[int, int]:
    if dtype.hasobject:
        raise GpupqError(f"{path}: holds Python objects (a pickled array); gpupq reads numeric arrays only")
    if dtype.fields is not None or dtype.kind not in "fiu":
        raise GpupqError(f"{path}: dtype {dtype} is not a real number type (float16/32/64 or integer)")
    if len(shape) != 2:
        raise GpupqError(f"{path}: array has shape {tuple(shape)}; expected 2-D (n, d)")
    n, d = (int(s) for s in shape)
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
    if fh.read(len(_NPY_MAGIC)) != _NPY_MAGIC:
        raise GpupqError(f"{path}: not an .npy file (no NumPy header)")
    fh.seek(start)
    try:
        version = np.lib.format.read_magic(fh)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(fh)
        else:
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(fh)
    except ValueError as exc:  # a broken header
        raise GpupqError(f"{path}: not a valid .npy header ({str(exc).splitlines()[0]})") from None
    return tuple(shape), bool(fortran), np.dtype(dtype), fh.tell()


# ---------------------------------------------------------------------------- readers


def _vecs_array(path: str, dtype: np.dtype) -> np.ndarray:
    """TEXMEX rows of [int32 d][d values]: a strided (n, d) view of the memory-mapped file."""
    size = os.path.getsize(path)
    if size < 4:
        raise GpupqError(f"{path}: too short to hold a vector ({size} bytes)")
    with _open(path) as fh:
        d = int(np.frombuffer(fh.read(4), dtype="<i4")[0])
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
        n, d = (int(v) for v in np.frombuffer(fh.read(8), dtype="<u4"))
    if n == 0 or d == 0:
        raise GpupqError(f"{path}: header declares an empty array ({n} x {d})")
    _check_size(path, 8 + n * d * dtype.itemsize, exact=True, what=f"the header ({n} x {d} {dtype})")
    return np.memmap(path, dtype=dtype, mode="r", offset=8, shape=(n, d))


def _npz_array(path: str, name: str | None) -> np.ndarray:
    """The named member of an .npz, mapped in place when stored, else inflated into an anonymous
    temporary file in chunks and mapped (the map keeps the file until the array is gone)."""
    try:
        zf = zipfile.ZipFile(path)
    except zipfile.BadZipFile:
        raise GpupqError(f"{path}: not an .npz file (not a zip archive)") from None
    except PermissionError:
        raise GpupqError(f"{path}: permission denied") from None
    with zf:
        members = {os.path.splitext(i.filename)[0]: i for i in zf.infolist() if i.filename.endswith(".npy")}
        if not members:
            raise GpupqError(f"{path}: holds no arrays")
        if name is None:
            if len(members) > 1:
                raise GpupqError(f"{path}: holds arrays {', '.join(sorted(members))}; pick one with --name")
            name = next(iter(members))
        if name not in members:
            raise GpupqError(f"{path}: has no array {name!r}; it holds {', '.join(sorted(members))}")
        info = members[name]
        where = f"{path}:{name}"
        if info.compress_type == zipfile.ZIP_STORED:
            with _open(path) as fh:
                fh.seek(info.header_offset)
                local = fh.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise GpupqError(f"{where}: broken zip entry")
                name_len, extra_len = np.frombuffer(local[26:30], dtype="<u2")
                fh.seek(info.header_offset + 30 + int(name_len) + int(extra_len))
                shape, fortran, dtype, data_start = _npy_header(fh, where)
            n, d = _check_matrix(where, shape, dtype)
            if data_start + n * d * dtype.itemsize > info.header_offset + 30 + name_len + extra_len + info.file_size:
                raise GpupqError(f"{where}: truncated: its header promises {n}x{d} {dtype}")
            order = "F" if fortran else "C"
            return np.memmap(path, dtype=dtype, mode="r", offset=data_start, shape=(n, d), order=order)
        # Compressed: inflate once, chunk by chunk, into an anonymous temporary file.
        with zf.open(info) as member, tempfile.TemporaryFile() as tmp:
            shape, fortran, dtype, _ = _npy_header(member, where)
            n, d = _check_matrix(where, shape, dtype)
            total = n * d * dtype.itemsize
            copied = 0
            while copied < total:
                block = member.read(min(64 << 20, total - copied))
                if not block:
                    raise GpupqError(f"{where}: truncated: its header promises {n}x{d} {dtype}")
                tmp.write(block)
                copied += len(block)
            tmp.flush()
            # The map holds its own descriptor, so the unlinked file outlives this block.
            return np.memmap(tmp, dtype=dtype, mode="r", shape=(n, d), order="F" if fortran else "C")


# ---------------------------------------------------------------------------- HDF5, Arrow

ANN_DISTANCES = {"euclidean": "l2", "angular": "cosine", "dot": "ip", "ip": "ip"}


def _h5py() -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise GpupqError(f"reading HDF5 needs h5py: pip install 'gpupq[hdf5]' ({exc})") from None
    return h5py


def _h5_file(path: str) -> Any:
    h5py = _h5py()
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise GpupqError(f"{path}: not a readable HDF5 file ({str(exc).splitlines()[0]})") from None


def _h5_dataset(path: str, name: str) -> Any:
    """An HDF5 dataset of shape (n, d), read slice by slice (h5py reads only what is asked)."""
    f = _h5_file(path)
    if name not in f:
        names = ", ".join(sorted(k for k in f if hasattr(f[k], "shape"))) or "none"
        raise GpupqError(f"{path}: has no dataset {name!r}; it holds {names} (pick one with --name)")
    ds = f[name]
    _check_matrix(f"{path}:{name}", tuple(ds.shape), np.dtype(ds.dtype))
    return ds


@dataclass
class AnnBenchmarks:
    """An ann-benchmarks HDF5 file: base, its test queries, and what it declares."""

    base: Dataset
    queries: Dataset | None
    neighbors: np.ndarray | None  # (nq, K) int64 exact neighbours of the queries in the base
    metric: str | None  # the metric its "distance" attribute names, in gpupq's terms
    distance: str | None  # the attribute as written


def load_ann_benchmarks(path: str | os.PathLike[str], metric: str | None = None) -> AnnBenchmarks:
    """Open an ann-benchmarks file: ``train``, ``test``, ``neighbors``, ``distance``.

    The declared distance sets the metric unless ``metric`` is given; the stored neighbours are
    returned only when they were computed for the metric in use.
    """
    path = os.fspath(path)
    _check_readable(path)
    f = _h5_file(path)
    distance = f.attrs.get("distance")
    distance = distance.decode() if isinstance(distance, bytes) else distance
    declared = ANN_DISTANCES.get(str(distance).lower()) if distance is not None else None
    if distance is not None and declared is None:
        raise GpupqError(f"{path}: distance {distance!r} is not one gpupq measures (euclidean, angular, dot)")
    use = metric or declared or "l2"
    base = Dataset(array=_h5_dataset(path, "train"), source=f"{path}:train", metric=use)
    queries = Dataset(array=_h5_dataset(path, "test"), source=f"{path}:test", metric=use) if "test" in f else None
    neighbors = None
    if queries is not None and "neighbors" in f and (declared is None or declared == use):
        nb = f["neighbors"]
        if nb.shape[0] != queries.n:
            raise GpupqError(f"{path}: neighbors has {nb.shape[0]} rows but test has {queries.n}")
        neighbors = np.asarray(nb[:], dtype=np.int64)
    return AnnBenchmarks(base=base, queries=queries, neighbors=neighbors, metric=declared, distance=distance)


def _pyarrow() -> Any:
    try:
        import pyarrow
        import pyarrow.ipc
        import pyarrow.parquet
    except ImportError as exc:
        raise GpupqError(f"reading Parquet or Arrow needs pyarrow: pip install 'gpupq[parquet]' ({exc})") from None
    return pyarrow


def _arrow_column(path: str, fmt: str, column: str | None) -> tuple[np.ndarray, str]:
    """Stream an embedding column, batch by batch, into a mapped anonymous float32 file."""
    pa = _pyarrow()
    try:
        if fmt == "parquet":
            pf = pa.parquet.ParquetFile(path)
            schema = pf.schema_arrow
        else:
            reader = pa.ipc.open_file(pa.memory_map(path, "r"))
            schema = reader.schema
    except (pa.ArrowInvalid, OSError) as exc:
        raise GpupqError(f"{path}: not a readable {fmt} file ({str(exc).splitlines()[0]})") from None

    def is_vector(t: Any) -> bool:
        listy = pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t)
        return listy and (pa.types.is_floating(t.value_type) or pa.types.is_integer(t.value_type))

    candidates = [f.name for f in schema if is_vector(f.type)]
    if column is None:
        if len(candidates) != 1:
            found = ", ".join(candidates) or "none"
            raise GpupqError(f"{path}: name the embedding column with --column (list columns: {found})")
        column = candidates[0]
    if column not in schema.names:
        raise GpupqError(f"{path}: no column {column!r}; it has {', '.join(schema.names)}")
    if column not in candidates:
        raise GpupqError(f"{path}: column {column!r} is {schema.field(column).type}, not a list of numbers")
    if fmt == "parquet":
        batches = pf.iter_batches(columns=[column], batch_size=65536)
    else:
        batches = (reader.get_batch(i).select([column]) for i in range(reader.num_record_batches))

    tmp = tempfile.TemporaryFile()
    d = None
    row = 0
    with tmp:
        for batch in batches:
            col = batch.column(0)
            if col.null_count:
                raise GpupqError(f"{path}: column {column!r} has {col.null_count} empty (null) rows in a batch")
            if pa.types.is_fixed_size_list(col.type):
                width = col.type.list_size
                values = col.flatten().to_numpy(zero_copy_only=False)
            else:
                offsets = col.offsets.to_numpy()
                lengths = np.diff(offsets)
                width = int(lengths[0]) if len(lengths) else 0
                if len(lengths) and (lengths != width).any():
                    bad = int(np.argmax(lengths != width))
                    raise GpupqError(
                        f"{path}: row {row + bad} of {column!r} has {int(lengths[bad])} values, row {row} has {width}"
                    )
                values = col.flatten().to_numpy(zero_copy_only=False)
            if d is None:
                d = width
            elif width != d and len(col):
                raise GpupqError(f"{path}: column {column!r} changes from {d} to {width} values at row {row}")
            tmp.write(np.ascontiguousarray(values, dtype=np.float32).tobytes())
            row += len(col)
        if not row or not d:
            raise GpupqError(f"{path}: column {column!r} is empty")
        tmp.flush()
        # The map holds its own descriptor, so the unlinked file outlives this block.
        return np.memmap(tmp, dtype=np.float32, mode="r", shape=(row, d)), column


@dataclass
class Inputs:
    """What an estimate reads: the base, and the queries and exact neighbours that come with it.

    ground_truth: (nq, K) int64 row numbers of each query's exact neighbours in the base, or
    None to compute them. notes: what was taken from where, to tell the user.
    """

    dataset: Dataset
    queries: Dataset | None = None
    ground_truth: np.ndarray | None = None
    ground_truth_source: str | None = None
    notes: list[str] = field(default_factory=list)


def open_inputs(
    data: str | os.PathLike[str] | Dataset,
    fmt: str | None = None,
    name: str | None = None,
    column: str | None = None,
    metric: str | None = None,
    queries_file: str | os.PathLike[str] | None = None,
) -> Inputs:
    """Open the base (a file, or a dataset already made, such as synthetic data) and, for an
    ann-benchmarks file, its test queries and stored neighbours (when they were computed for the
    metric in use); ``queries_file`` replaces the queries."""
    if isinstance(data, Dataset):
        inputs = Inputs(dataset=data)
        if queries_file is not None:
            inputs.queries = load_vectors(queries_file, metric=data.metric)
        return inputs
    path = os.fspath(data)
    _check_readable(path)
    if detect_format(path, fmt) == "hdf5" and name in (None, "train"):
        ann = load_ann_benchmarks(path, metric)
        inputs = Inputs(dataset=ann.base)
        if ann.distance is not None:
            inputs.notes.append(f"{path}: distance {ann.distance!r}, so metric {ann.base.metric}")
        if queries_file is None and ann.queries is not None:
            inputs.queries = ann.queries
            inputs.notes.append(f"queries: its test set ({ann.queries.n:,} rows)")
            if ann.neighbors is not None:
                inputs.ground_truth = ann.neighbors
                inputs.ground_truth_source = f"{path}:neighbors"
                inputs.notes.append(f"ground truth: its stored neighbors ({ann.neighbors.shape[1]} per query)")
            elif ann.metric is not None:
                inputs.notes.append(f"ground truth: computed, as its neighbors are for {ann.distance}")
    else:
        inputs = Inputs(dataset=load_vectors(path, fmt, name, metric or "l2", column))
    if queries_file is not None:
        inputs.queries = load_vectors(queries_file, metric=inputs.dataset.metric)
    return inputs
