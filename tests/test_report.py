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
