"""LazyArray (gpupq/io/lazy.py): values written once, on the first read, into a temporary file,
never more or fewer bytes than declared, and the shape and dtype known before."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

import gpupq.io.lazy
from gpupq.io import LazyArray, load_vectors

from .helpers import clustered, refused

X = clustered(60, 6, seed=11)  # (60, 6) float32


def test_lazy_array_writes_no_more_and_no_less_than_declared():
    def fill(n: int) -> Callable[[Callable[[object], None]], None]:
        return lambda write: write(np.zeros(n, np.float32))

    for n, message in ((13, "more values than"), (11, "truncated")):
        lazy = LazyArray((3, 4), np.dtype(np.float32), "x.npz:emb", fill(n), "help")
        refused(lazy.__getitem__, slice(0, 1), match=message)
    ok = LazyArray((3, 4), np.dtype(np.float32), "x.npz:emb", fill(12), "help")
    assert np.asarray(ok).shape == (3, 4) and ok[[2, 0]].shape == (2, 4) and ok.materialised


def test_write_errors_are_one_line(tmp_path, monkeypatch):
    path = tmp_path / "x.npz"
    np.savez_compressed(path, emb=X)

    class Full:
        def __enter__(self) -> Full:
            return self

        def __exit__(self, *exc: object) -> None:
            pass

        def write(self, data: object) -> None:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(gpupq.io.lazy.tempfile, "TemporaryFile", Full)
    refused(load_vectors(path).validate, match="cannot write its temporary copy .*No space left on device.*TMPDIR")

    def unwritable() -> None:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(gpupq.io.lazy.tempfile, "TemporaryFile", unwritable)
    refused(load_vectors(path).validate, match="cannot create a temporary file .*Permission denied")


def _counting_fill(values: np.ndarray, calls: list[int]):
    def fill(write):
        calls.append(1)
        for s in range(0, len(values), 2):  # in chunks, as the readers write
            write(np.ascontiguousarray(values[s : s + 2]))

    return fill


def test_lazy_array_reports_its_shape_before_reading_and_materialises_once(monkeypatch):
    """shape, dtype, len and nbytes come from the declaration, with nothing written; the first
    read writes the values once, and every later read is from the same map."""
    x = clustered(9, 4, seed=3)
    calls: list[int] = []
    made: list[int] = []
    real = gpupq.io.lazy.tempfile.TemporaryFile

    def counted(*a, **kw):
        made.append(1)
        return real(*a, **kw)

    monkeypatch.setattr(gpupq.io.lazy.tempfile, "TemporaryFile", counted)
    lazy = LazyArray((9, 4), np.dtype(np.float32), "x.npz:emb", _counting_fill(x, calls), "help")
    assert lazy.shape == (9, 4) and lazy.dtype == np.float32 and lazy.ndim == 2
    assert len(lazy) == 9 and lazy.nbytes == 9 * 4 * 4
    assert not lazy.materialised and calls == [] and made == []
    assert "not read yet" in repr(lazy)
    np.testing.assert_array_equal(lazy[2:5], x[2:5])
    assert lazy.materialised and calls == [1] and made == [1]
    np.testing.assert_array_equal(lazy[[8, 0]], x[[8, 0]])
    np.testing.assert_array_equal(np.asarray(lazy), x)
    assert lazy.values() is lazy.values()
    assert calls == [1] and made == [1] and repr(lazy).endswith(", read)")


def test_lazy_array_fortran_order_and_read_only():
    """Values written column by column (order="F") read back as the same (n, d) array, read-only."""
    x = clustered(5, 3, seed=4)
    lazy = LazyArray((5, 3), np.dtype(np.float32), "x.npz:emb", lambda write: write(x.T.copy()), "help", order="F")
    np.testing.assert_array_equal(np.asarray(lazy), x)
    assert not lazy.values().flags.writeable


def test_lazy_array_checks_the_limit_before_writing():
    """The inflation limit is checked before the first byte is written: fill is never called."""
    calls: list[int] = []
    fill = _counting_fill(np.zeros((10, 10), np.float32), calls)
    lazy = LazyArray((10, 10), np.dtype(np.float32), "x.npz:emb", fill, "help", limit=100)
    refused(lazy.values, match="needs 400 B of temporary disk space, more than the inflation limit of 100 B")
    assert calls == [] and not lazy.materialised
