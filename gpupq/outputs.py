"""Where gpupq writes files: every output path checked before any work starts, and written so
that nothing the user had is lost.

- An output that is an input (the same file, through any link or spelling) or the same as another
  output is refused before the work starts; so is one whose folder is missing or read-only, a
  directory, a read-only file, an empty name or ``-``, and a plot whose extension names no format
  matplotlib writes (``.png``, ``.pdf``, ``.svg``).
- A regular file is written to a temporary file beside it, flushed to disk and renamed over it:
  a full disk, a crash or Ctrl-C leaves the earlier file whole. A new file's permissions follow
  the umask; a replaced file keeps its own.
- A character device or a FIFO (``/dev/null``, ``/dev/stdout``, a named pipe) is written through,
  never replaced by a regular file.
- The results of an interrupted run go to a name that says so (``sweep.partial.csv``), never over
  a complete earlier file.
"""

from __future__ import annotations

import os
import stat
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import GpupqError
from .io.shards import every_file, is_collection

#: plot formats, by extension: what matplotlib's Agg canvas writes
PLOT_FORMATS = {".png": "png", ".pdf": "pdf", ".svg": "svg"}


@dataclass(frozen=True)
class Output:
    """A checked output: the option that named it, its path, and how it is written.

    fmt: ``csv``, or the plot format (``png``, ``pdf``, ``svg``); through: a device or FIFO,
    written through rather than replaced.
    """

    option: str
    path: Path
    fmt: str = ""
    through: bool = False

    @property
    def partial(self) -> Output:
        """Where an interrupted run's results go: ``name.partial.ext`` beside the path (a device
        or FIFO is written through as asked: a reader of it sees the run end)."""
        if self.through:
            return self
        return Output(self.option, self.path.with_name(f"{self.path.stem}.partial{self.path.suffix}"), self.fmt)


def _same(a: Path, b: Path) -> bool:
    """One file under two names: the same inode when both exist, else the same absolute path."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.abspath(a) == os.path.abspath(b)


def _check_target(option: str, path: Path) -> bool:
    """Refuse what cannot be written; True when it is written through (a device or FIFO)."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        st = None
    except OSError as exc:
        raise GpupqError(f"{option} {str(path)!r}: {exc.strerror or exc}") from None
    if st is not None:
        if stat.S_ISDIR(st.st_mode):
            raise GpupqError(f"{option} {str(path)!r} is a directory; give a file name")
        if stat.S_ISCHR(st.st_mode) or stat.S_ISFIFO(st.st_mode):
            if not os.access(path, os.W_OK):
                raise GpupqError(f"{option} {str(path)!r} cannot be written")
            return True
        if not stat.S_ISREG(st.st_mode):
            raise GpupqError(f"{option} {str(path)!r} is not a regular file, a character device or a FIFO")
        # no write bit: the owner protected it (root's access() would say writable)
        if not st.st_mode & 0o222 or not os.access(path, os.W_OK):
            raise GpupqError(f"{option} {str(path)!r} is read-only; remove it or give another name")
    folder = path.parent
    if not folder.is_dir():
        raise GpupqError(f"{option} {str(path)!r}: the folder {str(folder)!r} does not exist")
    # the real test of a folder: create a file there (access() is wrong on read-only mounts)
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=f".{path.name}.", suffix=".probe")
    except OSError as exc:
        raise GpupqError(f"{option} {str(path)!r}: cannot write in {str(folder)!r} ({exc.strerror or exc})") from None
    os.close(fd)
    os.unlink(probe)
    return False


def check_outputs(
    outputs: Sequence[tuple[str, str | os.PathLike[str] | None, str]], inputs: Sequence[object]
) -> list[Output]:
    """Check every output before any work: ``outputs`` are (option, path or None, kind) with kind
    ``csv``, ``plot`` or ``html``; ``inputs`` the paths the run reads (None and non-paths are skipped).
    Returns the outputs given, checked; refuses with one line what could destroy an input or
    another output, or cannot be written."""
    in_paths = []
    for p in inputs:
        if isinstance(p, (str, os.PathLike)):
            text = os.fspath(p)
            in_paths += [Path(f) for f in every_file(text)] if is_collection(text) else [Path(text)]
    checked: list[Output] = []
    for option, given, kind in outputs:
        if given is None:
            continue
        text = os.fspath(given)
        if text.strip() in ("", "-"):
            raise GpupqError(f"{option} {text!r}: give a file name")
        path = Path(text)
        partial = Output(option, path).partial.path
        for name in (path, partial):
            for source in in_paths:
                if _same(name, source):
                    raise GpupqError(f"{option} {text!r} is an input of this run; give another name")
            for other in checked:
                if _same(name, other.path) or _same(name, other.partial.path):
                    raise GpupqError(f"{option} {text!r} is also {other.option}'s output; give each its own file")
        if kind == "plot":
            fmt = PLOT_FORMATS.get(path.suffix.lower())
            if fmt is None:
                raise GpupqError(f"{option} {text!r}: give a file ending in {', '.join(PLOT_FORMATS)} (the format)")
        elif kind == "html" and path.suffix.lower() not in (".html", ".htm"):
            raise GpupqError(f"{option} {text!r}: give a file ending in .html")
        else:
            fmt = kind
        candidate = Output(option, path, fmt, _check_target(option, path))
        checked.append(candidate)
    return checked


def write_output(out: Output, data: bytes) -> None:
    """Write ``data`` to the checked output: through a device or FIFO, else atomically (a
    temporary file beside it, flushed to disk, renamed over it). One line on failure."""
    path = out.path
    try:
        if out.through:
            with open(path, "wb") as fh:
                fh.write(data)
            return
        mode = None
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)  # a replaced file keeps its permissions
        except FileNotFoundError:
            pass
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        # 0o666 less the umask, as any new file: mkstemp's 0600 would ignore the umask
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            if mode is not None:
                os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise GpupqError(f"cannot write {out.option} {str(path)!r}: {exc.strerror or exc}") from None
