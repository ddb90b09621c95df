"""Parquet and Arrow (IPC file or stream) embedding columns, streamed through pyarrow (extra
``parquet``) into a :class:`~gpupq.io.lazy.LazyArray`. The only module that imports pyarrow,
and only when a file is read."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from ..errors import EmptyInput, GpupqError
from .lazy import LazyArray
from .limits import _COPY_BYTES
from .safety import _failing
from .shards import PiecewiseRows

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
    path: str, fmt: str, column: str | None, limit: int | None, query: bool = False, row_groups: bool = False
) -> tuple[LazyArray | RowGroupArray, str]:
    """An embedding column as a :class:`LazyArray` of shape (rows in the metadata, width of
    the list type or of the first row), converted batch by batch on the first read. ``query``:
    a query file, where ``column`` (the data's ``--column``) is used only when the file has it.
    ``row_groups``: a Parquet file read row group by row group on each read instead, with no
    temporary copy (:class:`RowGroupArray`: a collection's files)."""
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
            raise EmptyInput(f"{path}: column {column!r} is empty")
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
    if row_groups and fmt == "parquet":
        return RowGroupArray(path, column, (n, d), dtype, fixed), column

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


class RowGroupArray(PiecewiseRows):
    """An (n, d) Parquet column read where it is asked for: each read decodes only the row
    groups its rows are in (the last one kept, so a pass in chunks decodes each group once), and
    nothing is copied to disk. Rows as an ndarray's (:class:`~gpupq.io.shards.PiecewiseRows`).

    A group that holds other than the rows its metadata declares, or damaged values, is one
    :class:`GpupqError` naming the file, raised by the read that meets it."""

    def __init__(self, path: str, column: str, shape: tuple[int, int], dtype: np.dtype, fixed: bool) -> None:
        pa = _pyarrow()
        self.path, self.column, self.fixed = path, column, fixed
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.ndim = 2
        meta = pa.parquet.ParquetFile(path).metadata
        sizes = [meta.row_group(i).num_rows for i in range(meta.num_row_groups)]
        self.offsets = np.concatenate([[0], np.cumsum(sizes, dtype=np.int64)])  # (groups + 1,) where each begins
        self._file: Any = None
        self._last: tuple[int, np.ndarray] | None = None

    @property
    def nbytes(self) -> int:
        return self.shape[0] * self.shape[1] * self.dtype.itemsize

    def _piece(self, g: int) -> np.ndarray:
        """Row group g's values: (rows, d)."""
        if self._last is not None and self._last[0] == g:
            return self._last[1]
        pa = _pyarrow()
        where = f"{self.path}:{self.column}"
        with _failing(f"{where}: damaged data", _arrow_errors(pa)):
            if self._file is None:
                self._file = pa.parquet.ParquetFile(self.path)
            col = self._file.read_row_group(g, columns=[self.column]).column(0).combine_chunks()
            col.validate(full=True)
            want = int(self.offsets[g + 1] - self.offsets[g])
            if len(col) != want:
                raise GpupqError(f"{where}: row group {g} holds {len(col)} rows, its metadata declares {want}")
            first = int(self.offsets[g])
            values = _list_values(col, self.shape[1], self.dtype, first, self.path, self.column, self.fixed)
        self._last = (g, values)
        return values


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
