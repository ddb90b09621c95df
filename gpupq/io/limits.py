"""The inflation limit: how many bytes an inflation or conversion may write to the temporary
directory (:func:`resolve_inflate_limit`), checked with its free space before the first byte."""

from __future__ import annotations

import os
import shutil
import tempfile

from ..errors import GpupqError
from ..units import format_size, parse_size

#: bytes an inflation or conversion may write to the temporary directory, unless raised
DEFAULT_INFLATE_LIMIT = 16 * 10**9
INFLATE_LIMIT_ENV = "GPUPQ_INFLATE_LIMIT"
_RAISE_LIMIT = f"set --inflate-limit or {INFLATE_LIMIT_ENV}, point TMPDIR at a larger disk"
#: bytes read and written per step while inflating or converting
_COPY_BYTES = 16 << 20


def resolve_inflate_limit(limit: int | None = None) -> tuple[int, str]:
    """The most bytes one inflation or conversion may write, and who set it: ``limit`` when
    given, else ``$GPUPQ_INFLATE_LIMIT`` (a size, see :func:`parse_size`), else 16 GB."""
    if limit is not None:
        if limit < 0:
            raise GpupqError(f"--inflate-limit must be 0 or more bytes (got {limit})")
        return int(limit), "--inflate-limit"
    text = os.environ.get(INFLATE_LIMIT_ENV, "").strip()
    if text:
        try:
            return parse_size(text), INFLATE_LIMIT_ENV
        except GpupqError:
            raise GpupqError(
                f"{INFLATE_LIMIT_ENV}={text!r} is not a size; write e.g. 500MB, 20GB, 1.5GiB or a number of bytes"
            ) from None
    return DEFAULT_INFLATE_LIMIT, "the default"


def _check_room(need: int, where: str, limit: int | None, alternative: str) -> None:
    """Refuse to write ``need`` bytes to the temporary directory past the inflation limit or the
    free space there (less a margin, so a full disk is not what stops us)."""
    cap, origin = resolve_inflate_limit(limit)
    if need > cap:
        raise GpupqError(
            f"{where}: reading it needs {format_size(need)} of temporary disk space, more than the "
            f"inflation limit of {format_size(cap)} ({origin}); {_RAISE_LIMIT}, or {alternative}"
        )
    tmpdir = tempfile.gettempdir()
    try:
        total, _, free = shutil.disk_usage(tmpdir)
    except OSError:
        return  # cannot tell: a failed write is still one clear error
    margin = min(10**9, total // 20)
    if need > free - margin:
        raise GpupqError(
            f"{where}: reading it needs {format_size(need)} of temporary disk space but {tmpdir} has "
            f"{format_size(free)} free (gpupq leaves {format_size(margin)} spare); point TMPDIR at a "
            f"larger disk, or {alternative}"
        )
