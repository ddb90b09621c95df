"""Reports: a sweep's CSV, row for row its JSON."""

from __future__ import annotations

import csv
import io
import json

from gpupq.grid import Grid
from gpupq.report import SWEEP_CSV_COLUMNS, sweep_csv
from gpupq.sweep import sweep

from .helpers import _session


def test_csv_and_json_round_trip():
    _ds, cfg, session = _session()
    result = sweep(session, Grid(nlist=[16], m=[4, 8], nprobe=[2, 8], rerank=[0, 40], stores=["sq8"]), cfg)
    rows = list(csv.DictReader(io.StringIO(sweep_csv(result))))
    data = json.loads(json.dumps(result.to_dict()))
    assert list(rows[0]) == list(SWEEP_CSV_COLUMNS)
    assert len(rows) == len(data["points"]) == len(result.points) == 2 * 2 * 2
    for row, point in zip(rows, data["points"], strict=True):
        assert row["build"] == point["build"]
        assert int(row["nprobe"]) == point["nprobe"] and int(row["rerank"]) == point["rerank"]
        assert float(row["recall"]) == point["recall"]["mean"]
        assert float(row["recall_ci95_low"]) == point["recall"]["ci95_low"]
        assert int(row["memory_bytes"]) == point["memory_bytes"]
        assert (row["pareto_memory"] == "True") == point["pareto"]["memory"]
        assert row["queries_per_s"] == ""  # not timed: empty, not a made-up figure


def test_every_csv_column_is_the_json_figure():
    """All 27 columns, not a sample: a raw recall replaced by the re-ranked one, or a memory ratio
    turned upside down, shows here."""
    _ds, cfg, session = _session()
    result = sweep(session, Grid(nlist=[16], m=[4], nprobe=[2, 8], rerank=[0, 40], stores=["sq8"]), cfg)
    session.close()
    rows = list(csv.DictReader(io.StringIO(sweep_csv(result))))
    data = json.loads(json.dumps(result.to_dict()))["points"]
    for row, p in zip(rows, data, strict=True):
        want = {
            "build": p["build"], "nlist": p["nlist"], "m": p["m"], "nbits": p["nbits"], "opq": p["opq"],
            "nprobe": p["nprobe"], "rerank": p["rerank"], "rerank_store": p["rerank_store"] or "",
            "recall": p["recall"]["mean"], "recall_ci95_low": p["recall"]["ci95_low"],
            "recall_ci95_high": p["recall"]["ci95_high"], "recall_by_id": p["recall"]["by_id"],
            "recall_raw": p["recall_raw"]["mean"], "recall_raw_ci95_low": p["recall_raw"]["ci95_low"],
            "recall_raw_ci95_high": p["recall_raw"]["ci95_high"], "memory_bytes": p["memory_bytes"],
            "memory_ratio_fp32": p["memory_ratio_fp32"], "memory_ratio_stored": p["memory_ratio_stored"],
            "index_bytes": p["memory"]["index_in_memory"],
            "rerank_store_bytes": p["memory"]["rerank_store"] if p["rerank"] else 0,
            "queries_per_s": "", "timed_runs": 0,
            "vectors_scanned_per_query": p["vectors_scanned_per_query"],
            "vectors_scanned_fraction": p["vectors_scanned_fraction"],
            "pareto_memory": p["pareto"]["memory"], "pareto_qps": p["pareto"]["qps"], "pareto_all": p["pareto"]["all"],
        }  # fmt: skip
        assert set(want) == set(SWEEP_CSV_COLUMNS)
        for col, value in want.items():
            assert row[col] == str(value), col
        assert p["memory_ratio_fp32"] == p["memory"]["vectors_fp32"] / p["memory_bytes"] > 0
    by_setting = {(p["nprobe"], p["rerank"]): p for p in data}
    for (nprobe, rerank), p in by_setting.items():  # a re-ranked point's raw recall is its nprobe's PQ ranking
        assert p["recall_raw"] == by_setting[(nprobe, 0)]["recall"]
        if rerank:
            assert p["recall"]["mean"] > p["recall_raw"]["mean"]


def test_the_sweep_table_shows_what_each_point_returns():
    """The recall@k column of a re-ranked point is its re-ranked recall; raw is beside it."""
    from rich.console import Console

    from gpupq.report import render_sweep
    from gpupq.tables import recall_short

    _ds, cfg, session = _session()
    result = sweep(session, Grid(nlist=[16], m=[4], nprobe=[8], rerank=[0, 40], stores=["fp32"]), cfg)
    session.close()
    console = Console(width=140, record=True)
    console.print(render_sweep(result, width=140))
    text = console.export_text()
    rr = next(p for p in result.points if p.setting.rerank)
    line = next(x for x in text.splitlines() if "40 fp32" in x)
    cells = line.split()
    assert cells[cells.index("fp32") + 1] == recall_short(rr.recall)
    assert cells[cells.index("fp32") + 2] == recall_short(rr.recall_raw)


def test_recommend_tables_at_80_columns_and_in_a_pipe_cut_nothing_that_must_be_read():
    """At 80 columns (a terminal, or any pipe or file) every recall interval, nprobe, verdict and
    the memory at --n-total is whole; less important columns are left out and said to be."""
    import re

    from gpupq.cli import app

    from .helpers import cli_runner

    args = ["recommend", "--synthetic", "--n", "6000", "--d", "32", "--target-recall", "0.8", "--nlist", "32"]
    # long labels (OPQ16,IVF32,PQ16x4) and re-ranking: the columns do not all fit in 80
    more = ["--m", "8,16", "--nbits", "4", "--opq", "on", "--rerank", "0,200", "--rerank-store", "fp16"]
    res = cli_runner().invoke(app, [*args, *more, "--n-total", "10M", "-q"])
    assert res.exit_code == 0, res.stderr
    lines = res.stdout.splitlines()
    assert all(len(x) <= 80 for x in lines)
    assert "…" not in " ".join(res.stdout.split()).replace("(1, 2, 4, …)", "")  # rich's ellipsis: a cut cell
    assert "at N=10M" in res.stdout and "left out at this width" in res.stdout
    assert all(re.search(r"OPQ\d+,IVF32,PQ\d+x4\s", x) for x in lines if "IVF32" in x and "factory" not in x)
    answers = [x for x in lines if re.match(r"\s*(best|#\d)\s", x)]
    assert answers and all(
        re.search(r"\d\.\d{3}±\.\d{3}", x) and re.search(r"\s\d+(\.\d+)?[kMG]B(\s|$)", x) for x in answers
    )
