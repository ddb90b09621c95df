"""File checks and error hygiene shared by every reader (gpupq/io/safety.py): paths refused
before anything opens them, and every message one printable line whatever the file is called.
(FIFOs, devices and sockets in every reader, in a subprocess: test_hostile_inputs.py.)"""

from __future__ import annotations

import builtins
import os

import numpy as np
import pytest

from gpupq.errors import GpupqError
from gpupq.io import load_vectors
from gpupq.io.safety import _check_readable, _one_line

from .helpers import clustered, read_everything, refused

X = clustered(60, 6, seed=11)  # (60, 6) float32


def test_paths_that_cannot_be_opened(tmp_path):
    loop = tmp_path / "loop.npy"
    loop.symlink_to(loop)
    refused(load_vectors, loop, match=r"loop\.npy: cannot read \(Too many levels of symbolic links\)")
    refused(load_vectors, tmp_path / "nul\0byte.npy", match="cannot read .*null")
    refused(load_vectors, tmp_path / ("x" * 300 + ".npy"), match=r"cannot read \(File name too long\)")
    dangling = tmp_path / "dangling.npy"
    dangling.symlink_to(tmp_path / "gone.npy")
    refused(load_vectors, dangling, match="dangling.npy: no such file")
    good = tmp_path / "good.npy"
    np.save(good, X)
    link = tmp_path / "link.npy"
    link.symlink_to(good)
    np.testing.assert_array_equal(read_everything(load_vectors(link)), X)


def test_odd_file_names_stay_one_line(tmp_path):
    for name in ("two\nlines.npy", "carriage\rreturn.npy", "bell\x07.npy"):
        text = refused(load_vectors, tmp_path / name, match="no such file")
        assert name.encode("unicode_escape").decode() in text
    bad = tmp_path / "new\nline.npy"
    np.save(bad, np.zeros(3))
    refused(load_vectors, bad, match=r"new\\nline\.npy: array has shape")
    nan = tmp_path / "nan\nrows.npy"
    np.save(nan, np.full((4, 3), np.nan))
    refused(load_vectors(nan).validate, match=r"nan\\nrows\.npy: 4 of 4 rows contain NaN")


def _no_open(monkeypatch, where):
    """Make any open() of a path under ``where`` fail the test: a check must refuse without opening."""
    real_open, real_os_open = builtins.open, os.open

    def refuse(file: object) -> None:
        if isinstance(file, (str, bytes, os.PathLike)) and os.fsdecode(file).startswith(str(where)):
            raise AssertionError(f"opened {file!r}")

    def guarded_open(file, *a, **kw):
        refuse(file)
        return real_open(file, *a, **kw)

    def guarded_os_open(path, *a, **kw):
        refuse(path)
        return real_os_open(path, *a, **kw)

    monkeypatch.setattr(builtins, "open", guarded_open)
    monkeypatch.setattr(os, "open", guarded_os_open)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_fifo_is_refused_before_it_is_opened(tmp_path, monkeypatch):
    """Opening a FIFO with no writer blocks forever: it must be refused from its stat alone,
    by name and through a link."""
    fifo = tmp_path / "pipe.npy"
    os.mkfifo(fifo)
    link = tmp_path / "via_link.npy"
    link.symlink_to(fifo)
    _no_open(monkeypatch, tmp_path)
    refused(_check_readable, str(fifo), match=r"pipe\.npy: is a named pipe \(FIFO\), not a regular file")
    refused(_check_readable, str(link), match=rf"via_link\.npy \(a link to {fifo}\): is a named pipe")


def test_directory_is_refused_before_it_is_opened(tmp_path, monkeypatch):
    _no_open(monkeypatch, tmp_path)
    refused(_check_readable, str(tmp_path), match=f"^{tmp_path}: is a directory, not a vector file$")


def test_regular_file_and_missing_path(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, X)
    assert _check_readable(str(good)) is None
    refused(_check_readable, str(tmp_path / "nope.npy"), match=r"nope\.npy: no such file$")


def test_one_line_escapes_what_is_not_printable():
    """A message with a newline, a control character or an undecodable byte leaves a public
    reader as one printable line; a plain one is unchanged."""

    @_one_line
    def reader(name: str) -> None:
        raise GpupqError(f"{name}: no such file")

    assert refused(reader, "a\nb\x07.npy") == "a\\nb\\x07.npy: no such file"
    bad = os.fsdecode(b"caf\xe9.npy")  # a Latin-1 name: a lone surrogate in Python
    assert refused(reader, bad) == "caf\\udce9.npy: no such file"
    assert refused(reader, "plain name.npy") == "plain name.npy: no such file"
