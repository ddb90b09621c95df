"""ann-benchmarks HDF5 files, read through h5py slice by slice (extra ``hdf5``), and the stored
ground truth they carry (:func:`read_ground_truth`). The only module that imports h5py, and
only when a file is read."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import GpupqError
from .dataset import Dataset
from .safety import _check_matrix, _check_readable, _failing, _one_line, _printable, _printable_errors

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
