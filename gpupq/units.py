"""Units: sizes, counts and rates, parsed and printed in one place.

Bytes are printed in decimal units (kB, MB, GB: 1 kB = 1,000 B, as disk and cloud prices are
quoted) and parsed in decimal or binary ones (``1.5GiB``). Counts and rates use k, M, G suffixes
(B for billions of vectors, as deployment sizes are spoken of).
"""

from __future__ import annotations

import re
from decimal import Decimal

import numpy as np

from .errors import GpupqError

_SIZE = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)\s*([a-z]*)\s*", re.IGNORECASE)
_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "k": 10**3,
    "kb": 10**3,
    "m": 10**6,
    "mb": 10**6,
    "g": 10**9,
    "gb": 10**9,
    "t": 10**12,
    "tb": 10**12,
    "kib": 2**10,
    "mib": 2**20,
    "gib": 2**30,
    "tib": 2**40,
}


def parse_size(text: str) -> int:
    """Bytes in a size such as ``500MB``, ``20GB`` (decimal), ``1.5GiB`` (binary) or ``12345``."""
    match = _SIZE.fullmatch(str(text))
    unit = match.group(2).lower() if match else ""
    if match is None or unit not in _SIZE_UNITS:
        raise GpupqError(f"{str(text)!r} is not a size; write e.g. 500MB, 20GB, 1.5GiB or a number of bytes")
    return int(Decimal(match.group(1)) * _SIZE_UNITS[unit])


_BYTE_UNITS = ("B", "kB", "MB", "GB", "TB", "PB")


def format_bytes(n: float, digits: int = 3, sep: str = " ") -> str:
    """A byte count for people, to ``digits`` significant figures: ``389 kB``, ``4.29 GB``,
    ``12 B``; sep="" gives the compact ``4.29GB`` of narrow table cells."""
    value = float(n)
    if abs(value) < 999.5:
        return f"{value:.0f}{sep}B"
    for unit in _BYTE_UNITS[1:]:
        value /= 1000.0
        # the next unit once this one would round to 1000
        if abs(value) < 1000 - 0.5 * 10.0 ** (3 - digits) or unit == _BYTE_UNITS[-1]:
            return f"{value:.{digits}g}{sep}{unit}"
    raise AssertionError("unreachable")


def format_size(nbytes: int) -> str:
    """A byte count in a message: ``389 kB``, ``4.29 GB``."""
    return format_bytes(nbytes)


def human_bytes(n: float) -> str:
    """A byte count in a report table, four significant figures: ``21.87 MB``."""
    return format_bytes(n, 4)


def stored_bytes(fp32_bytes: float, dtype: str) -> float:
    """The bytes of vectors as the input stores them (``float16``: half their float32 bytes)."""
    return fp32_bytes / 4 * np.dtype(dtype).itemsize


def format_count(x: float, digits: int = 3, billions: str = "G") -> str:
    """A count or rate with a k/M/G suffix to ``digits`` significant figures: ``25.1k``, ``3M``;
    billions: the suffix for 10^9 (``B`` for a number of vectors)."""
    if x != x:  # NaN
        return "nan"
    if abs(x) == float("inf"):
        return "inf"
    for scale, suffix in ((1e12, "T"), (1e9, billions), (1e6, "M"), (1e3, "k")):
        if abs(x) >= scale * (1 - 0.5 * 10.0**-digits):
            return f"{x / scale:.{digits}g}{suffix}"
    return f"{x:.{digits}g}"


def human_rate(x: float | None, unit: str) -> str:
    """A rate in a report table: ``12.35k q/s``; ``-`` when not measured; a run too fast for the
    clock is ``> 1e9``."""
    if x is None:
        return "-"
    if x == float("inf"):
        return f"> 1e9 {unit}"
    return f"{format_count(x, 4)} {unit}"


#: the largest --n-total taken: beyond this a figure is no longer a plan for one index
MAX_COUNT = 10**13
_COUNT = re.compile(r"\s*(\d+(?:\.\d*)?|\.\d+)(?:e(\d+))?\s*([kmbgt]?)\s*", re.IGNORECASE)
_COUNT_SCALE = {"": 1, "k": 10**3, "m": 10**6, "b": 10**9, "g": 10**9, "t": 10**12}


def parse_count(text: str, option: str, minimum: int = 1, maximum: int = MAX_COUNT) -> int:
    """A whole count such as ``50000000``, ``50M``, ``1.5B`` or ``2e9`` (underscores and commas
    between digits allowed), exactly (no float rounding), between minimum and maximum."""
    cleaned = str(text).replace("_", "").replace(",", "")
    match = _COUNT.fullmatch(cleaned)
    if match is None:
        raise GpupqError(f"{option} {text!r}: give a count such as 50000000, 50M or 2B")
    value = Decimal(match.group(1)) * (10 ** int(match.group(2) or 0)) * _COUNT_SCALE[match.group(3).lower()]
    if value != value.to_integral_value():
        raise GpupqError(f"{option} {text!r}: give a whole number")
    if not minimum <= value <= maximum:
        raise GpupqError(f"{option} {text!r}: must be between {minimum:,} and {format_count(maximum, billions='B')}")
    return int(value)
