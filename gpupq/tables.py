"""Cells and tables that read whole at the width they are printed at: recall with its interval,
bytes, counts and rates in a few characters, and :func:`fitted_table`, which leaves out the least
important columns before it would cut a cell that must be read (80 columns, a pipe, a file)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from rich import box
from rich.markup import escape
from rich.table import Table

from .metrics import Recall
from .units import format_bytes, format_count


def recall_cell(r: Recall | None) -> str:
    if r is None:
        return "-"
    return f"{r.mean:.3f}  [{r.ci95_low:.3f}, {r.ci95_high:.3f}]"


def by_id_differs(recalls: list[Recall | None]) -> bool:
    """Is the id-intersection figure worth showing beside any of these (it differs when ties
    make the exact top-k ambiguous)?"""
    return any(r is not None and r.by_id is not None and abs(r.by_id - r.mean) >= 5e-4 for r in recalls)


def by_id_cell(r: Recall | None) -> str:
    return "-" if r is None or r.by_id is None else f"{r.by_id:.3f}"


def latency_cell(latency: Any) -> str:
    """``0.41 / 0.62 / 0.93 ms``: a :class:`gpupq.timing.Latency`'s percentiles, or ``-``."""
    if latency is None:
        return "-"
    return " / ".join(f"{v * 1e3:.3g}" for v in (latency.p50, latency.p95, latency.p99)) + " ms"


def recall_short(r: Recall) -> str:
    """mean ± the 95% interval's half-width (the interval is symmetric unless clipped at 0 or 1)."""
    return f"{r.mean:.3f}±{(r.ci95_high - r.ci95_low) / 2:.3f}".replace("±0.", "±.")


def bytes_short(n: float) -> str:
    """Three significant figures, no space: 924kB, 2.19MB."""
    return format_bytes(n, 3, sep="")


def count_short(n: int | None) -> str:
    return "-" if n is None else format_count(n, billions="B")


def rate_short(x: float | None) -> str:
    if x is None:
        return "-"
    return ">1e9" if math.isinf(x) else format_count(x)


#: (header, justify, priority): priority 0 is never dropped; at a narrow width the columns with the
#: largest priority go first, so what must be read is never cut
Column = tuple[str, str, int]


def fitted_table(title: str, columns: list[Column], rows: list[list[str]], width: int) -> tuple[Table, list[str]]:
    """A table of ``rows`` that fits ``width`` columns of text: optional columns are left out,
    least important first, until the rest fits; a column kept is never truncated (a cell wider
    than the whole width folds onto a second line instead). Returns the table and the headers
    left out, for a note that says so."""
    widths = [max([len(x) for x in h.split("\n")] + [len(r[i]) for r in rows]) for i, (h, _, _) in enumerate(columns)]
    keep = list(range(len(columns)))

    def needed(cols: list[int]) -> int:
        # a gap of two between columns, and the box's edge on either side
        return sum(widths[i] for i in cols) + 2 * max(0, len(cols) - 1) + 2

    by_priority = sorted((i for i in keep if columns[i][2] > 0), key=lambda i: (-columns[i][2], -i))
    dropped = []
    for i in by_priority:
        if needed(keep) <= width:
            break
        keep.remove(i)
        dropped.append(columns[i][0])
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True)
    for i in keep:
        header, justify, _ = columns[i]
        table.add_column(header, justify=justify, overflow="fold")  # type: ignore[arg-type]
    for r in rows:
        table.add_row(*[escape(r[i]) for i in keep])
    return table, dropped


def dropped_note(dropped: list[str]) -> list[str]:
    if not dropped:
        return []
    return [f"left out at this width: {', '.join(dropped)} (a wider terminal, --csv or --json shows them)"]


def stored_ratio(dtype: str) -> tuple[str, float]:
    """(column header, bytes per value) of the vectors as the input stores them."""

    dt = np.dtype(dtype)
    short = {"f": "f", "i": "i", "u": "u"}.get(dt.kind, "") + str(dt.itemsize * 8)
    return f"÷{short}", float(dt.itemsize)
