"""Cells and tables that read whole at the width they are printed at."""

from __future__ import annotations

from rich.console import Console

from gpupq.metrics import Recall
from gpupq.tables import bytes_short, count_short, fitted_table, rate_short, recall_short, stored_ratio


def _render(table, width: int) -> list[str]:
    console = Console(width=width, record=True)
    console.print(table)
    return console.export_text().splitlines()


def test_optional_columns_go_first_and_nothing_is_cut():
    columns = [("index", "left", 0), ("scanned", "right", 3), ("q/s", "right", 1), ("recall@10", "right", 0)]
    rows = [["OPQ16,IVF1024,PQ16x4", "1,234,567", "12.3k", "0.912±.021"]] * 3
    table, dropped = fitted_table("t", columns, rows, 42)
    assert dropped == ["scanned"]  # priority 3 before 1, and no more than needed
    lines = _render(table, 42)
    assert all(len(x) <= 42 for x in lines)
    assert sum("OPQ16,IVF1024,PQ16x4" in x and "0.912±.021" in x and "12.3k" in x for x in lines) == 3
    wide, none = fitted_table("t", columns, rows, 120)
    assert none == [] and any("1,234,567" in x for x in _render(wide, 120))


def test_essential_columns_fold_rather_than_vanish_when_even_they_do_not_fit():
    columns = [("index", "left", 0), ("recall@10", "right", 0)]
    table, dropped = fitted_table("t", columns, [["OPQ16,IVF1024,PQ16x4", "0.912±.021"]], 20)
    text = "".join(x.strip() for x in _render(table, 20))
    assert (dropped == [] and "0.912±.021" in text.replace(" ", "")) or "0.912" in text


def test_short_cells():
    assert recall_short(Recall(0.9123, 0.89, 0.93, 100)) == "0.912±.020"
    assert bytes_short(2_190_000) == "2.19MB" and bytes_short(999) == "999B"
    assert count_short(10_000_000) == "10M" and count_short(2 * 10**9) == "2B" and count_short(None) == "-"
    assert rate_short(12_345.0) == "12.3k" and rate_short(float("inf")) == ">1e9" and rate_short(None) == "-"
    assert stored_ratio("float16") == ("÷f16", 2.0) and stored_ratio("uint8") == ("÷u8", 1.0)
