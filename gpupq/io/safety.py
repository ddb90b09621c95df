"""Error hygiene and file checks shared by every reader.

Every message leaving a public reader is one printable line (:func:`_one_line`), a library's
exceptions on a damaged file become one :class:`GpupqError` (:func:`_failing`), and a path is
checked before anything opens it (:func:`_check_readable`); declared shapes, types and sizes are
checked against the file (:func:`_check_matrix`, :func:`_check_size`).
"""

from __future__ import annotations

import functools
import os
import stat
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import IO, Any, TypeVar

import numpy as np

from ..errors import EmptyInput, GpupqError

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
    if d == 0:
        raise GpupqError(f"{path}: array of shape ({n}, {d}) is empty")
    if n == 0:
        raise EmptyInput(f"{path}: array of shape ({n}, {d}) is empty")
    return n, d


def _check_size(path: str, expected: int, exact: bool, what: str = "") -> None:
    actual = os.path.getsize(path)
    if actual < expected:
        raise GpupqError(f"{path}: truncated: {what or 'the header'} promises {expected} bytes, file has {actual}")
    if exact and actual > expected:
        raise GpupqError(f"{path}: {actual - expected} bytes past the {expected} that {what or 'the header'} promises")
