"""Collections kept as many files: a directory or a glob of shards read as one (n, d) base.

``--data 'shards/*.npy'`` or ``--data shards/`` opens every matching vector file, in sorted
path order, as one :class:`ShardedArray`: row r of file i is global row (id) ``offsets[i] + r``,
so ids do not depend on how the files are grouped for work. Only headers and metadata are read
when the collection is opened (row counts, d, dtype), every file through the same reader, and so
with the same checks, as a single file (:func:`~gpupq.io.inputs.load_vectors`).

A file is opened when a read first reaches it and closed again when more than
:data:`OPEN_SHARDS` others have been opened since (a memory map holds a descriptor, and a
collection may hold more files than a process may open).
"""

from __future__ import annotations

import glob
import os
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import EmptyInput, GpupqError
from .safety import _printable

#: files kept open at once (least recently read closed first)
OPEN_SHARDS = 64
#: characters that make a --data path a glob pattern
GLOB_CHARS = "*?["


def is_collection(path: str) -> bool:
    """Whether ``path`` names a collection: a directory, or a pattern that is not itself a file."""
    if os.path.isdir(path):
        return True
    return any(c in path for c in GLOB_CHARS) and not os.path.lexists(path)


def shard_paths(spec: str, extensions: dict[str, str], fmt: str | None = None) -> list[str]:
    """The files of a collection, sorted: a directory's vector files (not its subdirectories, not
    hidden files), or the regular files a glob pattern matches (``**`` descends). With ``fmt``
    a directory gives every file; otherwise only those whose extension names a format."""
    shown = _printable(spec)
    if os.path.isdir(spec):
        names = sorted(n for n in os.listdir(spec) if not n.startswith("."))
        files = [os.path.join(spec, n) for n in names if os.path.isfile(os.path.join(spec, n))]
        if fmt is None:
            files = [f for f in files if os.path.splitext(f)[1].lower() in extensions]
        if not files:
            known = ", ".join(sorted(set(extensions)))
            raise GpupqError(f"{shown}: holds no vector files ({known}); name the files with a pattern or --format")
        return files
    files = sorted(f for f in glob.glob(spec, recursive=True) if os.path.isfile(f))
    if not files:
        raise GpupqError(f"{shown}: matches no files")
    return files


def every_file(spec: str) -> list[str]:
    """Every regular file a collection could read, whatever its extension (outputs are checked
    against these); empty when nothing matches."""
    if os.path.isdir(spec):
        return [os.path.join(spec, n) for n in os.listdir(spec) if os.path.isfile(os.path.join(spec, n))]
    return [f for f in glob.glob(spec, recursive=True) if os.path.isfile(f)]


class PiecewiseRows:
    """An (n, d) array-like stored in consecutive pieces (a collection's files, a Parquet file's
    row groups): ``offsets`` (pieces + 1,) int64 where each begins, and :meth:`_piece` (i) the
    piece's own (n_i, d) array-like. Reads are an ndarray's (``[start:stop]``, ``[int array]``,
    ``[int]``), each reading a piece once, with its rows in ascending order."""

    shape: tuple[int, int]
    dtype: np.dtype
    offsets: np.ndarray

    def _piece(self, i: int) -> Any:
        raise NotImplementedError

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, key: Any) -> np.ndarray:
        n = self.shape[0]
        if isinstance(key, slice):
            start, stop, step = key.indices(n)
            if step != 1:
                return self._take(np.arange(start, stop, step, dtype=np.int64))
            return self._range(start, max(start, stop))
        if isinstance(key, (int, np.integer)):
            i = int(key) + n if key < 0 else int(key)
            if not 0 <= i < n:
                raise IndexError(f"row {key} is out of range for {n} rows")
            return self._range(i, i + 1)[0]
        ids = np.asarray(key)
        if ids.dtype.kind not in "iu" or ids.ndim != 1:
            raise TypeError(
                f"{type(self).__name__} reads rows by a slice, an int or a 1-D int array, not {type(key).__name__}"
            )
        return self._take(ids.astype(np.int64))

    def _range(self, start: int, stop: int) -> np.ndarray:
        """Rows [start, stop): (stop - start, d), one piece of it from each piece it spans."""
        first = int(np.searchsorted(self.offsets, start, side="right")) - 1
        pieces = []
        i = max(first, 0)
        while start < stop and i < len(self.offsets) - 1:
            lo, hi = int(self.offsets[i]), int(self.offsets[i + 1])
            if hi > start:
                take_to = min(stop, hi)
                pieces.append(np.asarray(self._piece(i)[start - lo : take_to - lo]))
                start = take_to
            i += 1
        if not pieces:
            return np.empty((0, self.shape[1]), dtype=self.dtype)
        return pieces[0] if len(pieces) == 1 else np.concatenate(pieces)

    def _take(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` in the order given: (b,) int64 -> (b, d), each piece read once with its
        rows in ascending order."""
        n = self.shape[0]
        ids = np.where(ids < 0, ids + n, ids)
        if ids.size and (ids.min() < 0 or ids.max() >= n):
            raise IndexError(f"row ids must lie in [-{n}, {n})")
        out = np.empty((ids.size, self.shape[1]), dtype=self.dtype)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        cuts = np.searchsorted(sorted_ids, self.offsets)  # (pieces + 1,) where each piece's ids begin
        for i in np.flatnonzero(cuts[1:] > cuts[:-1]):
            a, b = int(cuts[i]), int(cuts[i + 1])
            out[order[a:b]] = np.asarray(self._piece(int(i))[sorted_ids[a:b] - self.offsets[i]])
        return out


class ShardedArray(PiecewiseRows):
    """An (n, d) array-like over the files of a collection, in order: the reads a
    :class:`~gpupq.io.dataset.Dataset` makes (``[start:stop]``, ``[int array]``, ``[int]``)
    give exactly what the same reads of the files' rows stacked into one array would.

    opener(path) -> the file's (n_i, d) array-like (a memory map, or a reader's array-like);
    called once per file to read its shape (then dropped) and again whenever a read reaches a
    file that is not open. known: (rows of each file, d, dtype) when already read (a worker
    given the manifest): then no file is opened until a read reaches it.
    """

    def __init__(
        self,
        paths: list[str],
        opener: Callable[[str], Any],
        source: str,
        known: tuple[list[int], int, np.dtype] | None = None,
    ) -> None:
        self.paths = list(paths)
        self.source = source
        self._opener = opener
        self._open: OrderedDict[int, Any] = OrderedDict()
        if known is not None:
            self._layout(known[0], known[1], np.dtype(known[2]))
            return
        rows, d, dtype, first = [], None, None, ""
        for i, path in enumerate(self.paths):
            try:
                arr = opener(path)
            except EmptyInput:  # a file with no rows (a writer's empty part): nothing to read
                rows.append(0)
                continue
            shape, this = tuple(arr.shape), np.dtype(arr.dtype)
            if d is None:
                d, dtype, first = int(shape[1]), this, path
            elif shape[1] != d:
                raise GpupqError(
                    f"{_printable(path)}: has {shape[1]} dimensions where {_printable(first)} has {d}; "
                    "the files of one collection hold vectors of one size"
                )
            elif this != dtype:
                raise GpupqError(
                    f"{_printable(path)}: holds {this} values where {_printable(first)} holds {dtype}; "
                    "convert the files to one type"
                )
            rows.append(int(shape[0]))
            self._keep(i, arr)
        if d is None or dtype is None:
            raise GpupqError(f"{source}: every file is empty; there are no vectors")
        self._layout(rows, d, dtype)

    def _layout(self, rows: list[int], d: int, dtype: np.dtype) -> None:
        self.rows = np.asarray(rows, dtype=np.int64)  # (files,) rows in each file
        self.offsets = np.concatenate([[0], np.cumsum(self.rows)]).astype(np.int64)  # (files + 1,)
        self.shape = (int(self.offsets[-1]), d)
        self.dtype = dtype
        self.ndim = 2

    def __repr__(self) -> str:
        return f"ShardedArray({self.source}, {len(self.paths)} files, shape={self.shape}, dtype={self.dtype})"

    def manifest(self) -> list[dict[str, Any]]:
        """Each file with its rows and the global id of its first row, in order."""
        return [
            {"path": p, "rows": int(r), "offset": int(o)}
            for p, r, o in zip(self.paths, self.rows, self.offsets[:-1], strict=True)
        ]

    def _keep(self, i: int, arr: Any) -> Any:
        self._open[i] = arr
        self._open.move_to_end(i)
        while len(self._open) > OPEN_SHARDS:
            self._open.popitem(last=False)
        return arr

    def _piece(self, i: int) -> Any:
        return self._file(i)

    def _file(self, i: int) -> Any:
        arr = self._open.get(i)
        if arr is None:
            arr = self._opener(self.paths[i])
            if tuple(arr.shape) != (int(self.rows[i]), self.shape[1]) or np.dtype(arr.dtype) != self.dtype:
                raise GpupqError(
                    f"{_printable(self.paths[i])}: now holds {tuple(arr.shape)} {arr.dtype}, not the "
                    f"({self.rows[i]}, {self.shape[1]}) {self.dtype} it held when the collection was opened; "
                    "leave the files unchanged during a run"
                )
            return self._keep(i, arr)
        self._open.move_to_end(i)
        return arr
