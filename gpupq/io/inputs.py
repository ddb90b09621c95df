"""What an estimate reads: the format of a file (:func:`detect_format`), one file as a dataset
(:func:`load_vectors`), and the base with the queries and ground truth that come with it
(:func:`open_inputs`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

from ..errors import GpupqError
from .arrow import _arrow_column
from .binary import _BIN_DTYPE, _VECS_DTYPE, _bin_array, _vecs_array
from .dataset import Dataset, Origin
from .hdf5 import _h5_dataset, _h5_file, _h5_names, load_ann_benchmarks
from .npy import _npz_array, load_npy
from .safety import _check_readable, _one_line, _printable
from .shards import ShardedArray, is_collection, shard_paths

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
    row_groups: bool = False,
) -> Dataset:
    """Open ``path`` as an (n, d) dataset, by extension or ``fmt``; ``name`` picks an .npz array
    or an HDF5 dataset, ``column`` a Parquet/Arrow column. ``inflate_limit``: the most bytes a
    compressed .npz member or a Parquet/Arrow column may write to the temporary directory when
    first read (None: ``$GPUPQ_INFLATE_LIMIT``, else 16 GB; see :func:`resolve_inflate_limit`).

    A directory or a glob pattern opens a collection of files, in sorted order, as one dataset
    (:mod:`gpupq.io.shards`): each file read as a single one would be, with the same options,
    but a Parquet file row group by row group, never copied to disk (``row_groups``)."""
    path = os.fspath(path)
    if is_collection(path):
        ds = load_collection(path, fmt, name, metric, column, inflate_limit=inflate_limit)
    else:
        ds = _load_file(path, fmt, name, metric, column, inflate_limit, row_groups)
    ds.origin = Origin(os.path.abspath(path), fmt, name, column, inflate_limit)  # a worker may run elsewhere
    return ds


def _load_file(
    path: str,
    fmt: str | None,
    name: str | None,
    metric: str,
    column: str | None,
    inflate_limit: int | None,
    row_groups: bool = False,
) -> Dataset:
    """One file as a dataset (see :func:`load_vectors`)."""
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
        array, col = _arrow_column(path, fmt, column, inflate_limit, row_groups=row_groups)
        return Dataset(array=array, source=_printable(f"{path}:{col}"), metric=metric)
    if fmt == "npy":
        return load_npy(path, metric)
    if fmt == "npz":
        array, member = _npz_array(path, name, inflate_limit)
        return Dataset(array=array, source=_printable(f"{path}:{member}") if name else shown, metric=metric)
    if fmt in _VECS_DTYPE:
        return Dataset(array=_vecs_array(path, _VECS_DTYPE[fmt]), source=shown, metric=metric)
    return Dataset(array=_bin_array(path, _BIN_DTYPE[fmt]), source=shown, metric=metric)


def load_collection(
    spec: str,
    fmt: str | None = None,
    name: str | None = None,
    metric: str = "l2",
    column: str | None = None,
    *,
    inflate_limit: int | None = None,
    known: tuple[list[str], list[int], int, Any] | None = None,
) -> Dataset:
    """A directory or glob of vector files as one dataset over a :class:`ShardedArray` (global
    id = the file's offset + row). The files must share one format, d and dtype. known: (paths,
    rows of each, d, dtype) as read before (a worker's copy): no file is listed or opened here."""
    paths = shard_paths(spec, EXTENSIONS, fmt) if known is None else list(known[0])
    formats = {detect_format(p, fmt) for p in paths}
    if len(formats) > 1:
        raise GpupqError(
            f"{_printable(spec)}: mixes formats ({', '.join(sorted(formats))}); "
            "give a pattern that matches one kind of file"
        )

    def opener(path: str) -> Any:
        return load_vectors(path, fmt, name, metric, column, inflate_limit=inflate_limit, row_groups=True).array

    files = "file" if len(paths) == 1 else "files"
    source = _printable(f"{spec} ({len(paths):,} {files})")
    layout = None if known is None else (list(known[1]), int(known[2]), known[3])
    return Dataset(array=ShardedArray(paths, opener, source, layout), source=source, metric=metric)


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
        collection = is_collection(path)
        if not collection:
            _check_readable(path)
        shown = _printable(path)
        if not collection and detect_format(path, fmt) == "hdf5" and name in (None, "train"):
            ann = load_ann_benchmarks(path, metric)
            ann.base.origin = Origin(os.path.abspath(path), "hdf5", "train", None, inflate_limit)
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
