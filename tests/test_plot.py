"""The sweep's pictures: the matplotlib figure (two panels, frontier labels, faded dominated
points), its atomic PNG file, the error without matplotlib, and the terminal scatter.

Most tests draw a hand-made SweepResult whose frontiers are known by eye; one draws a real tiny
sweep end to end.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpupq import plot
from gpupq.engine import PointResult
from gpupq.errors import GpupqError
from gpupq.grid import Grid
from gpupq.memory import memory_bill
from gpupq.metrics import Recall
from gpupq.settings import Build, Setting
from gpupq.sweep import SweepResult

N, D = 10_000, 32
STORE_FP16 = N * D * 2


def _point(nlist: int, m: int, nprobe: int, recall: float, qps: float | None, rerank: int = 0) -> PointResult:
    store = "fp16" if rerank else ""
    bill = memory_bill(N, D, nlist, m, 8, "l2", STORE_FP16 if rerank else 0)
    rec = Recall(recall, max(0.0, recall - 0.03), min(1.0, recall + 0.03), 100, recall)
    return PointResult(Build(nlist, m), Setting(nprobe, rerank, store), rec, rec, bill, 100.0 * nprobe, 0.01, qps)


def _result(points: list[PointResult]) -> SweepResult:
    result = SweepResult(
        dataset={"source": "hand-made", "n": N + 100, "d": D, "n_base": N, "n_queries": 100, "metric": "l2"},
        grid=Grid(nlist=[64], m=[4, 8]),
        k=10,
        backend="numpy",
        device="cpu",
        points=points,
        builds=[],
    )
    result.mark_frontiers()
    return result


@pytest.fixture
def hand_made() -> SweepResult:
    """Memory rises with m and with re-ranking; recall with nprobe, m and re-ranking; queries/s
    falls with nprobe. Some points are dominated on each panel, one is untimed."""
    return _result(
        [
            _point(64, 4, 1, 0.30, 50_000),
            _point(64, 4, 4, 0.45, 30_000),
            _point(64, 4, 16, 0.50, 12_000),
            _point(64, 8, 1, 0.40, 45_000),
            _point(64, 8, 4, 0.62, 25_000),
            _point(64, 8, 16, 0.70, 9_000),
            _point(64, 8, 4, 0.90, 15_000, rerank=50),
            _point(64, 8, 16, 0.97, 6_000, rerank=50),
            _point(64, 4, 2, 0.35, 5_000),  # worse on every axis than (64, 4, 4): dominated
            _point(64, 8, 8, 0.66, None),  # untimed: on no queries/s frontier
        ]
    )


def _places(result: SweepResult, mask: str, value) -> set[tuple[float, float]]:
    out = set()
    for p, on in zip(result.points, result.frontiers[mask], strict=True):
        v = value(p)
        if on and v is not None:
            out.add((p.recall.mean, float(v)))
    return out


def _labels(ax) -> list[str]:
    return [t.get_text() for t in ax.texts if t.get_gid() == plot.GID_LABEL]


# ---------------------------------------------------------------------------------- figure
def test_figure_has_two_labelled_log_panels(hand_made):
    pytest.importorskip("matplotlib")
    fig = plot.figure(hand_made)
    assert len(fig.axes) == 2
    left, right = fig.axes
    assert left.get_yscale() == "log"
    assert right.get_yscale() == "log"
    for ax in (left, right):
        assert "recall" in ax.get_xlabel()
    assert "memory" in left.get_ylabel()
    assert "queries/s" in right.get_ylabel()
    title = fig.get_suptitle()
    assert "recall@10" in title
    assert "10,000" in title  # the base size
    # memory ticks read as sizes, not as bare numbers of bytes
    ticks = [t.get_text() for t in left.get_yticklabels() if t.get_text()]
    assert ticks
    assert all(t.endswith("B") for t in ticks)


def test_every_frontier_point_is_labelled_once(hand_made):
    pytest.importorskip("matplotlib")
    fig = plot.figure(hand_made)
    left, right = fig.axes
    mem = hand_made.frontiers["memory"]
    qps = hand_made.frontiers["qps"]
    # no two frontier points share a place here, so one label per frontier point
    assert len(_labels(left)) == sum(mem) == len(_places(hand_made, "memory", lambda p: p.memory_bytes))
    assert len(_labels(right)) == sum(qps) == len(_places(hand_made, "qps", lambda p: p.queries_per_s))
    for ax, mask in ((left, mem), (right, qps)):
        texts = _labels(ax)
        for p, on in zip(hand_made.points, mask, strict=True):
            assert (plot.point_label(p) in texts) == on
    assert "IVF64,PQ8 p=16 R=50 fp16" in _labels(left)


def test_dominated_points_are_faded(hand_made):
    pytest.importorskip("matplotlib")
    fig = plot.figure(hand_made)
    for ax, name in zip(fig.axes, ("memory", "qps"), strict=True):
        faded = [c for c in ax.collections if c.get_gid() == plot.GID_DOMINATED]
        assert len(faded) == 1
        assert faded[0].get_alpha() == pytest.approx(plot.FADED_ALPHA)
        timed = [p.queries_per_s is not None or name == "memory" for p in hand_made.points]
        dominated = sum(t and not on for t, on in zip(timed, hand_made.frontiers[name], strict=True))
        assert dominated > 0
        assert len(faded[0].get_offsets()) == dominated
        solid = [c for c in ax.collections if c.get_gid() == plot.GID_FRONTIER]
        assert len(solid) == 1
        assert solid[0].get_alpha() is None


def test_labels_do_not_overlap_and_stay_inside(hand_made):
    pytest.importorskip("matplotlib")
    fig = plot.figure(hand_made)
    renderer = fig.canvas.get_renderer()
    for ax in fig.axes:
        box = ax.get_window_extent(renderer)
        boxes = [t.get_window_extent(renderer) for t in ax.texts if t.get_gid() == plot.GID_LABEL]
        for i, a in enumerate(boxes):
            assert box.x0 <= a.x0 and a.x1 <= box.x1
            assert not any(a.overlaps(b) for b in boxes[i + 1 :])


def test_points_at_one_place_share_a_label():
    """nprobe past the point where recall saturates: same recall, same memory, all on the memory
    frontier (equal points do not dominate each other); one label lists their nprobes."""
    pytest.importorskip("matplotlib")
    result = _result([_point(64, 4, p, 0.5, 40_000 / p) for p in (2, 4, 8)] + [_point(64, 8, 4, 0.7, 9_000)])
    assert sum(result.frontiers["memory"]) == 4
    left, right = plot.figure(result).axes
    assert sorted(_labels(left)) == ["IVF64,PQ4 p=2,4,8", "IVF64,PQ8 p=4"]
    assert sorted(_labels(right)) == ["IVF64,PQ4 p=2", "IVF64,PQ8 p=4"]


def test_untimed_sweep_says_not_timed(hand_made):
    pytest.importorskip("matplotlib")
    for p in hand_made.points:
        p.queries_per_s = None
    hand_made.mark_frontiers()
    left, right = plot.figure(hand_made).axes
    assert "not timed" in [t.get_text() for t in right.texts]
    assert _labels(right) == []
    assert len(_labels(left)) == sum(hand_made.frontiers["memory"])


def test_empty_and_single_point_results_draw():
    pytest.importorskip("matplotlib")
    fig = plot.figure(_result([]))
    assert "no points" in [t.get_text() for t in fig.axes[0].texts]
    fig = plot.figure(_result([_point(64, 4, 1, 0.5, 1000.0)]))
    assert _labels(fig.axes[0]) == ["IVF64,PQ4 p=1"]


def test_frontiers_are_computed_when_not_marked(hand_made):
    pytest.importorskip("matplotlib")
    marked = dict(hand_made.frontiers)
    hand_made.frontiers = {}
    left, _ = plot.figure(hand_made).axes
    assert len(_labels(left)) == sum(marked["memory"])


# ---------------------------------------------------------------------------------- save
def test_save_writes_a_png_atomically(hand_made, tmp_path):
    pytest.importorskip("matplotlib")
    target = tmp_path / "sweep.png"
    target.write_bytes(b"old")
    plot.save(hand_made, target)
    assert target.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert os.listdir(tmp_path) == ["sweep.png"]  # no temporary file left beside it
    plot.save(hand_made, str(target))  # a str path too
    assert os.listdir(tmp_path) == ["sweep.png"]


def test_save_into_a_missing_folder_is_a_gpupq_error(hand_made, tmp_path):
    pytest.importorskip("matplotlib")
    with pytest.raises(GpupqError, match=r"the folder .*missing.* does not exist"):
        plot.save(hand_made, tmp_path / "missing" / "sweep.png")
    assert os.listdir(tmp_path) == []


def test_save_leaves_nothing_when_rendering_fails(hand_made, tmp_path, monkeypatch):
    def boom(_result, _fmt="png"):
        raise RuntimeError("renderer broke")

    monkeypatch.setattr(plot, "render", boom)
    with pytest.raises(RuntimeError):
        plot.save(hand_made, tmp_path / "sweep.png")
    assert os.listdir(tmp_path) == []


def test_without_matplotlib_a_gpupq_error_says_how_to_install(hand_made, tmp_path, monkeypatch):
    for name in [n for n in sys.modules if n == "matplotlib" or n.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(GpupqError, match=r"--plot needs matplotlib: pip install 'gpupq\[plot\]'"):
        plot.figure(hand_made)
    with pytest.raises(GpupqError, match="needs matplotlib"):
        plot.save(hand_made, tmp_path / "sweep.png")
    assert os.listdir(tmp_path) == []
    assert plot.terminal_plot(hand_made)  # the terminal picture needs nothing


def test_module_imports_without_matplotlib():
    code = "import sys; sys.modules['matplotlib'] = None; import gpupq.plot; print('ok')"
    root = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------------------------- terminal
def _plot_rows(text: str) -> list[str]:
    return [line for line in text.splitlines() if "|" in line]


def test_terminal_plot_marks_frontier_and_dominated(hand_made):
    text = plot.terminal_plot(hand_made)
    lines = text.splitlines()
    assert all(len(line) <= 72 for line in lines)
    rows = _plot_rows(text)
    assert len(rows) == 18
    stars = sum(row.count("*") for row in rows)
    assert 1 <= stars <= sum(hand_made.frontiers["memory"])
    assert sum(row.count(".") for row in rows) >= 1
    # axis ends: the memory range on the left, the recall range below
    assert rows[0].lstrip().startswith(plot.format_bytes(max(p.memory_bytes for p in hand_made.points)))
    assert rows[-1].lstrip().startswith(plot.format_bytes(min(p.memory_bytes for p in hand_made.points)))
    assert "0.300" in lines[-1]
    assert "0.970" in lines[-1]


@pytest.mark.parametrize(("width", "height"), [(40, 6), (100, 30), (20, 3)])
def test_terminal_plot_fits_its_size(hand_made, width, height):
    text = plot.terminal_plot(hand_made, width=width, height=height)
    assert all(len(line) <= width for line in text.splitlines())
    assert len(_plot_rows(text)) == height
    assert sum(row.count("*") for row in _plot_rows(text)) >= 1


def test_terminal_plot_of_nothing_and_of_one_point():
    assert plot.terminal_plot(_result([])) == "no points to plot"
    text = plot.terminal_plot(_result([_point(64, 4, 1, 0.5, None)]))
    assert sum(row.count("*") for row in _plot_rows(text)) == 1


# ---------------------------------------------------------------------------------- helpers
@pytest.mark.parametrize(("lo", "hi"), [(9e5, 5.5e6), (1.2e3, 3e9), (2.05e6, 2.1e6), (1500, 60_000), (7.0, 7.5)])
def test_log_ticks_are_round_and_inside(lo, hi):
    ticks = plot.log_ticks(lo, hi)
    assert 2 <= len(ticks) <= 9
    assert ticks == sorted(ticks)
    if hi / lo > 1.5:
        assert all(lo <= t <= hi for t in ticks)


def test_sizes_and_rates_read_as_people_write_them():
    assert plot.format_bytes(3.2e6) == "3.2 MB"
    assert plot.format_bytes(750e3) == "750 kB"
    assert plot.format_bytes(12) == "12 B"
    assert plot.format_count(1200) == "1.2k"
    assert plot.format_count(350) == "350"


# ---------------------------------------------------------------------------------- real sweep
def test_real_tiny_sweep_plots(tmp_path):
    pytest.importorskip("matplotlib")
    from gpupq.io import make_synthetic
    from gpupq.session import RunConfig, open_session
    from gpupq.sweep import sweep

    cfg = RunConfig(k=5, queries=50)
    session = open_session(make_synthetic(3000, 16, 0), cfg, "numpy")
    try:
        grid = Grid(nlist=[16], m=[4], nprobe=[1, 4, 16], rerank=[0, 20], stores=["fp16"])
        result = sweep(session, grid, cfg)
    finally:
        session.close()
    assert len(result.points) == 6
    fig = plot.figure(result)
    left, right = fig.axes
    assert "recall@5" in fig.get_suptitle()
    assert len(_labels(left)) == len(_places(result, "memory", lambda p: p.memory_bytes))
    assert len(_labels(right)) == len(_places(result, "qps", lambda p: p.queries_per_s))
    assert all(label.startswith("IVF16,PQ4 p=") for label in _labels(left) + _labels(right))
    target = tmp_path / "real.png"
    plot.save(result, target)
    assert target.read_bytes()[:4] == b"\x89PNG"
    text = plot.terminal_plot(result)
    assert 1 <= sum(row.count("*") for row in _plot_rows(text)) <= sum(result.frontiers["memory"])


def test_terminal_plot_puts_more_memory_up_and_more_recall_right(hand_made):
    """The orientation the labels promise: the dearest point in the top row, the cheapest in the
    bottom one, the best recall in the last column (a plot drawn upside down keeps its labels)."""
    rows = [row.split("|", 1)[1] for row in _plot_rows(plot.terminal_plot(hand_made))]
    marks = [(r, c) for r, row in enumerate(rows) for c, ch in enumerate(row) if ch in "*."]
    top, bottom = min(r for r, _ in marks), max(r for r, _ in marks)
    assert (top, bottom) == (0, len(rows) - 1)
    right = max(c for _, c in marks)
    best = max(hand_made.points, key=lambda p: p.recall.mean)
    assert best.memory_bytes == max(p.memory_bytes for p in hand_made.points)  # re-ranked, nprobe 16: top right
    assert rows[0].rstrip().endswith("*") and len(rows[0].rstrip()) - 1 == right


def test_with_n_total_the_memory_panel_is_at_the_deployed_size(hand_made):
    """--n-total: the memory axis shows the bill at N_total (not the sample's), its frontier is the
    one computed there, and the key says what p= and R= mean."""
    pytest.importorskip("matplotlib")
    totals = [p.memory_bytes * 1000 + (7 if i == 0 else 0) for i, p in enumerate(hand_made.points)]
    front = [i % 2 == 0 for i in range(len(totals))]
    hand_made.deployment = {
        "n_total": 50_000_000,
        "points": [{"memory_bytes_total": t, "pareto_memory": f} for t, f in zip(totals, front, strict=True)],
    }
    fig = plot.figure(hand_made)
    ax = fig.axes[0]
    solid = next(c for c in ax.collections if c.get_gid() == plot.GID_FRONTIER)
    ys = sorted(float(y) for _, y in solid.get_offsets())
    assert ys == sorted(float(t) for t, f in zip(totals, front, strict=True) if f)
    assert "N=50,000,000" in ax.get_ylabel()
    assert "p = nprobe, R = re-rank depth" in fig._supxlabel.get_text()


def test_a_crowded_frontier_labels_at_most_max_labels_places():
    pytest.importorskip("matplotlib")
    points = [_point(16 * i, 8, 1, 0.5 + 0.02 * i, None) for i in range(1, 25)]  # dearer and better: all on it
    result = _result(points)
    fig = plot.figure(result)
    labels = [t for t in fig.axes[0].texts if t.get_gid() == plot.GID_LABEL]
    assert sum(result.frontiers["memory"]) > plot.MAX_LABELS
    assert len(labels) == plot.MAX_LABELS
