"""A :class:`LazyArray`: values written once, on the first read, into an anonymous temporary file
that is then memory-mapped (a compressed .npz member, a Parquet/Arrow column)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from ..errors import GpupqError
from .limits import _check_room
from .safety import _printable_errors


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
