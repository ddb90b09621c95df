"""The plan said before a sweep or a recommendation starts: large grids confirmed, work that
cannot fit refused with the numbers, before any work."""

from __future__ import annotations

import pytest

import gpupq.plan as plan_mod
from gpupq.backends import NumpyBackend
from gpupq.cli import app
from gpupq.errors import GpupqError
from gpupq.grid import Grid
from gpupq.settings import Build
from gpupq.sweep import sweep, sweep_plan

from .helpers import _session, cli_runner

SMALL = ["--synthetic", "--n", "3000", "--d", "16", "--nlist", "16", "--nprobe", "1,4", "--no-timing"]


def test_the_plan_is_said_on_stderr_before_the_work():
    res = cli_runner().invoke(app, ["sweep", *SMALL, "--m", "4,8", "--json"])
    assert res.exit_code == 0, res.stderr
    first = res.stderr.splitlines()[0]
    assert first.startswith("plan: 2 builds (1 coarse quantizer, shared per nlist), 8 points; roughly ")
    quiet = cli_runner().invoke(app, ["sweep", *SMALL, "--m", "4", "--json", "-q"])
    assert "plan:" not in quiet.stderr


def test_a_large_grid_needs_yes(monkeypatch):
    monkeypatch.setattr(plan_mod, "MAX_BUILDS", 1)
    called = []

    def spy(*args, **kwargs):
        called.append(1)
        return sweep(*args, **kwargs)

    monkeypatch.setattr("gpupq.cli.sweep", spy)
    res = cli_runner().invoke(app, ["sweep", *SMALL, "--m", "4,8", "-q"])
    assert res.exit_code == 2 and not called
    assert "this grid has 2 builds" in res.stderr and "give --yes" in res.stderr
    res = cli_runner().invoke(app, ["sweep", *SMALL, "--m", "4,8", "-q", "--yes", "--json"])
    assert res.exit_code == 0, res.stderr
    assert called == [1]


def test_candidate_lists_that_cannot_fit_are_refused_with_the_numbers(monkeypatch):
    """--queries 1000 --rerank 100000 on a small file once took 3 GB unasked: refused before any
    work, naming what takes the memory and what to lower."""
    monkeypatch.setattr(NumpyBackend, "free_memory", lambda self: 64 << 20)
    _ds, cfg, session = _session(n=6000, d=16, queries=500)
    with session:
        grid = Grid(nlist=[16], m=[4], nprobe=[1, 2, 4, 8], rerank=[0, 2000])
        with pytest.raises(GpupqError) as info:
            sweep(session, grid, cfg)
        assert session.bench._gt_ids is None  # no ground truth computed: refused first
    message = str(info.value)
    assert "500 queries × 2,000 candidates × 4 nprobe values" in message
    assert "64 MB" in message or "67.1 MB" in message
    assert "lower --queries or the re-rank depth" in message
    assert plan_mod.candidate_bytes(500, 2000, 4) == 500 * 2000 * (8 * 4 + 12)


def test_plan_counts_builds_coarse_stages_and_points():
    _ds, cfg, session = _session(n=6000, d=16)
    with session:
        plan = sweep_plan(session, Grid(nlist=[16, 32], m=[4, 8], nprobe=[1, 4], rerank=[0, 40]), cfg)
    assert (plan.builds, plan.coarse, plan.points) == (4, 2, 4 * 2 * 2)
    assert plan.rate > 0 and plan.seconds > 0
    # the arithmetic: more lists cost more coarse training and encoding
    one = plan_mod.plan_work(NumpyBackend(), [Build(16, 4)], 6000, 100, 16, 10, [1], 1, 0.0, 1)
    two = plan_mod.plan_work(NumpyBackend(), [Build(64, 4)], 6000, 100, 16, 10, [1], 1, 0.0, 1)
    assert two.multiply_adds > one.multiply_adds
