"""The settings a sweep or a recommendation explores: a :class:`Grid` of builds (nlist × m ×
nbits × OPQ) and search settings (nprobe × re-rank depth × store), how its lists are parsed
from the command line, the rules that fill the axes left empty, and its checks.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .errors import GpupqError
from .params import check
from .pq import check_pq_params, valid_m
from .refine import STORES
from .session import check_rerank, check_sizes
from .settings import Build

#: the automatic nprobe doubling stops when recall rose by less than this over the last doubling
#: (both the raw and the deepest re-ranked recall): half a point, about what 100 queries resolve
NPROBE_FLAT = 0.005


def parse_ints(text: str, option: str) -> list[int]:
    """``"16,32,48"`` or a range ``"1-256"`` (A, 2A, 4A, … up to B, and B) or a mix of both:
    the sorted distinct values."""
    values: set[int] = set()
    for part in text.split(","):
        part = part.strip()
        try:
            if "-" in part[1:]:
                a_text, b_text = part.split("-", 1)
                a, b = int(a_text), int(b_text)
                if a < 1 or b < a:
                    raise ValueError
                v = a
                while v < b:
                    values.add(v)
                    v *= 2
                values.add(b)
            else:
                values.add(int(part))
        except ValueError:
            raise GpupqError(
                f"{option} {text!r}: give numbers separated by commas, or a range A-B (A, 2A, 4A, … up to B)"
            ) from None
    return sorted(values)


def parse_choices(text: str, option: str, choices: Sequence[str]) -> list[str]:
    out = []
    for part in text.split(","):
        part = part.strip().lower()
        if part not in choices:
            raise GpupqError(f"{option} {text!r}: each value must be one of {', '.join(choices)}")
        if part not in out:
            out.append(part)
    return out


def parse_onoff(text: str, option: str) -> list[bool]:
    values = parse_choices(text, option, ("off", "on", "false", "true", "no", "yes"))
    return list(dict.fromkeys(v in ("on", "true", "yes") for v in values))


@dataclass
class Grid:
    """The settings to evaluate. nprobe None: doubling from 1 until recall stops rising
    (:data:`NPROBE_FLAT`). rerank holds 0 for "no re-rank"; stores apply to depths > 0."""

    nlist: list[int]
    m: list[int]
    nbits: list[int] = field(default_factory=list)  # empty: the command's default
    opq: list[bool] = field(default_factory=lambda: [False])
    nprobe: list[int] | None = None
    rerank: list[int] = field(default_factory=list)  # empty: the command's default
    stores: list[str] = field(default_factory=list)  # empty: the command's default
    rules: list[str] = field(default_factory=list)  # how defaulted axes were chosen
    code_range: bool = False  # recommend's space: only builds whose code is in its byte range

    def __post_init__(self) -> None:
        """Each axis a list of plain values of its type: numpy integers become ints (they would
        break JSON), and what is not a value of the axis is refused (``opq=["off"]`` would
        otherwise be a true value and build OPQ)."""
        for name in ("nlist", "m", "nbits", "rerank"):
            setattr(self, name, _ints(getattr(self, name), name))
        if self.nprobe is not None:
            self.nprobe = _ints(self.nprobe, "nprobe")
            if not self.nprobe:
                raise GpupqError("Grid(nprobe=[]) has no value; give nprobe values, or None for the doubling rule")
        if not self.opq or any(not isinstance(v, bool) for v in self.opq):
            raise GpupqError(f"Grid(opq={self.opq!r}): give a list of True/False")
        self.opq = list(self.opq)
        if any(not isinstance(v, str) for v in self.stores):
            raise GpupqError(f"Grid(stores={self.stores!r}): give store names ({', '.join(STORES)})")
        self.stores = list(self.stores)

    def builds(self) -> list[Build]:
        return [Build(nl, m, nb, o) for nl in self.nlist for m in self.m for nb in self.nbits for o in self.opq]

    def reranks(self) -> list[tuple[int, str]]:
        return [(r, s) for r in self.rerank if r > 0 for s in self.stores]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def grid_from_options(
    m: str | None = None,
    nlist: str | None = None,
    nbits: str | None = None,
    nprobe: str | None = None,
    rerank: str | None = None,
    stores: str | None = None,
    opq: str | None = None,
) -> Grid:
    """A grid from the command line's lists; an option not given (None) takes the command's
    default, and one given empty is an error, not a silent default."""
    grid = Grid(
        nlist=parse_ints(nlist, "--nlist") if nlist is not None else [],
        m=parse_ints(m, "--m") if m is not None else [],
    )
    if nbits is not None:
        grid.nbits = parse_ints(nbits, "--nbits")
    if opq is not None:
        grid.opq = parse_onoff(opq, "--opq")
    if nprobe is not None:
        grid.nprobe = parse_ints(nprobe, "--nprobe")
    if rerank is not None:
        grid.rerank = parse_ints(rerank.lower().replace("off", "0"), "--rerank")
    if stores is not None:
        grid.stores = parse_choices(stores, "--rerank-store", STORES)
    return grid


def _ints(values: Any, name: str) -> list[int]:
    """A grid axis as a list of ints (numpy integers accepted); anything else refused."""
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise GpupqError(f"Grid({name}={values!r}): give a list of whole numbers")
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Integral):
            raise GpupqError(f"Grid({name}={values!r}): {v!r} is not a whole number")
        out.append(int(v))
    return out


def default_nlist(n_base: int) -> tuple[list[int], str]:
    """Powers of two from 4√N to 16√N, FAISS's guideline, at most N/39 (FAISS warns when a
    centroid has fewer than 39 training points)."""
    lo, hi = 4 * math.sqrt(n_base), 16 * math.sqrt(n_base)
    cap = max(1, n_base // 39)
    values = [1 << e for e in range(0, 31) if lo <= (1 << e) <= hi and (1 << e) <= cap]
    if not values:
        values = [1 << int(math.log2(cap))]
    return values, f"nlist: powers of two from 4√N to 16√N (N={n_base:,}), at most N/39"


def default_m(d: int) -> tuple[list[int], str]:
    """Code sizes from 8 bytes to d/2 bytes (8-bit codes: m bytes), powers of two dividing d."""
    values = [m for m in valid_m(d) if 8 <= m <= d // 2 and m & (m - 1) == 0]
    if not values:
        below = [m for m in valid_m(d) if m <= max(1, d // 2)]
        values = [below[-1] if below else 1]
    return values, f"m: code sizes 8 to d/2 bytes in powers of two (d={d})"


def fill_defaults(grid: Grid, n_base: int, d: int) -> Grid:
    """A grid with its empty axes chosen by the stated rules."""
    rules = list(grid.rules)
    if not grid.nlist:
        grid.nlist, rule = default_nlist(n_base)
        rules.append(rule)
    if not grid.m:
        grid.m, rule = default_m(d)
        rules.append(rule)
    if not grid.nbits:
        grid.nbits = [8]
    if not grid.rerank:
        grid.rerank = [0]
    if not grid.stores:
        grid.stores = ["fp16"]
    if grid.nprobe is None:
        rules.append(f"nprobe: 1, 2, 4, … doubling until recall rises by less than {NPROBE_FLAT} (or nprobe = nlist)")
    elif grid.nlist and max(grid.nprobe) > min(grid.nlist):
        rules.append("nprobe: values above a build's nlist are measured at nprobe = nlist (every list probed)")
    grid.rules = rules
    return grid


def check_grid(grid: Grid, d: int, n_base: int, k: int) -> None:
    """Every value of every axis valid for d dimensions and n_base vectors; one error each."""
    for m in grid.m:
        for nbits in grid.nbits:
            check_pq_params(d, m, nbits)
    for name, values in (("nlist", grid.nlist), ("nprobe", grid.nprobe or []), ("rerank_store", grid.stores)):
        for v in values:
            check(name, v)
    for r in grid.rerank:
        check_rerank(r, k)
    check_sizes(n_base, k, max(grid.rerank, default=0), max(grid.nlist), max(grid.nbits))
