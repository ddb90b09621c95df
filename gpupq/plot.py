"""Pictures of a sweep: its Pareto frontiers as a PNG (matplotlib, optional) or as terminal text.

:func:`figure` draws two panels, recall@k against memory and recall@k against queries/s. Frontier
points are solid, joined by a step in recall order, carry their 95% recall interval and are
labelled with their settings (points at the same place share one label); dominated points are
faded grey. :func:`save` writes the figure as a PNG, PDF or SVG file, atomically. :func:`terminal_plot` is the
recall-vs-memory panel as plain text, with no dependency.

matplotlib is imported inside the functions that need it, so this module imports without it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import GpupqError
from .outputs import check_outputs, write_output
from .units import format_bytes, format_count

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

    from .engine import PointResult
    from .sweep import SweepResult

MISSING_MATPLOTLIB = "--plot needs matplotlib: pip install 'gpupq[plot]'"

#: gids of the artists :func:`figure` draws, for whoever inspects the figure (tests, callers)
GID_FRONTIER = "frontier"
GID_DOMINATED = "dominated"
GID_LABEL = "frontier-label"
GID_MARK = "answer"

FADED_ALPHA = 0.25
LABEL_FONTSIZE = 6.5
DPI = 130
#: at most this many settings are written beside one place (more coincide: "+n more")
LABEL_LINES = 3
#: at most this many places of a frontier are labelled (evenly along it, both ends included):
#: more crowd each other where recall nears 1; the CSV lists every point
MAX_LABELS = 14
#: what the labels and marks say, under the panels
KEY = (
    "labels: index (FAISS factory spelling: IVF<nlist>,PQ<m>[x<nbits>]), p = nprobe, R = re-rank depth and the "
    "store it reads; bars: recall's 95% interval; grey: dominated points"
)

# label offsets (points) tried in turn around a frontier point, the first that fits wins; a label
# right of its point (dx > 0) is left-aligned, one above it (dy > 0) bottom-aligned, and so on
_OFFSETS: tuple[tuple[float, float], ...] = (
    (6, 3),
    (6, -3),
    (-6, 3),
    (-6, -3),
    (6, 13),
    (-6, 13),
    (6, -13),
    (-6, -13),
    (6, 24),
    (-6, 24),
    (6, -24),
    (-6, -24),
)


# ---------------------------------------------------------------------------------- shared
def point_label(point: PointResult) -> str:
    """A point's setting in a few characters: ``IVF1024,PQ16 p=16 R=100 fp16``."""
    return group_label([point])


def group_label(points: Sequence[PointResult]) -> str:
    """The settings of points drawn at one place, a line per build and re-rank with its nprobes
    listed: ``IVF64,PQ8 p=2,4,8`` (at most :data:`LABEL_LINES` lines, the last ``+n more``)."""
    by_key: dict[tuple[str, int, str], list[int]] = {}
    for p in points:
        by_key.setdefault((p.build.label, p.setting.rerank, p.setting.store), []).append(p.setting.nprobe)
    lines = []
    for (build, rerank, store), nprobes in by_key.items():
        line = f"{build} p={','.join(str(n) for n in sorted(set(nprobes)))}"
        lines.append(line + (f" R={rerank} {store}" if rerank else ""))
    if len(lines) > LABEL_LINES:
        lines = [*lines[: LABEL_LINES - 1], f"+{len(lines) - LABEL_LINES + 1} more"]
    return "\n".join(lines)


def _masks(result: SweepResult) -> dict[str, list[bool]]:
    """The result's frontier masks; computed here when they were never marked (or are stale)."""
    n = len(result.points)
    if all(len(result.frontiers.get(name, ())) == n for name in ("memory", "qps")):
        return result.frontiers
    from .sweep import frontiers

    return frontiers(result.points)


def log_ticks(lo: float, hi: float) -> list[float]:
    """Round tick values inside [lo, hi] for a log axis: powers of ten when they give three or
    more, else 1-2-5 steps, else finer steps, never more than about eight."""
    if not (lo > 0 and hi > 0 and math.isfinite(lo) and math.isfinite(hi)):
        return []
    lo, hi = min(lo, hi), max(lo, hi)
    e0, e1 = math.floor(math.log10(lo)) - 1, math.ceil(math.log10(hi)) + 1
    levels = ((1.0,), (1.0, 2.0, 5.0), (1.0, 1.5, 2.0, 3.0, 5.0, 7.0), (1.0, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 7, 8, 9))
    coarser: list[float] = []
    for want, subs in zip((3, 4, 4, 3), levels, strict=True):
        vals = [v for e in range(e0, e1 + 1) for s in subs if lo * (1 - 1e-9) <= (v := s * 10.0**e) <= hi * (1 + 1e-9)]
        if len(vals) > 8:  # too many: the coarser set when it has two, else every n-th
            return coarser if len(coarser) >= 2 else vals[:: math.ceil(len(vals) / 8)]
        if len(vals) >= want:
            return vals
        coarser = vals
    if len(coarser) >= 2:
        return coarser
    # narrower than one step of the finest round values: the ends, to two significant figures
    return sorted({float(f"{v:.2g}") for v in (lo, hi)})


# ---------------------------------------------------------------------------------- matplotlib
def require_matplotlib() -> None:
    try:
        import matplotlib
        import matplotlib.figure  # noqa: F401
    except ImportError:
        raise GpupqError(MISSING_MATPLOTLIB) from None


def _title(result: SweepResult, command: str = "sweep") -> str:
    parts = [f"gpupq {command}: recall@{result.k}"]
    ds = result.dataset or {}
    if ds.get("n_base"):
        size = f"{int(ds['n_base']):,} base vectors"
        if ds.get("d"):
            size += f", d={ds['d']}"
        parts.append(size)
    if ds.get("n_queries"):
        parts.append(f"{int(ds['n_queries']):,} queries")
    if ds.get("metric"):
        parts.append(str(ds["metric"]))
    if result.backend:
        parts.append(f"{result.backend} backend")
    title = " · ".join(parts)
    if result.interrupted:
        title += " (interrupted: partial grid)"
    return title


@dataclass
class _Panel:
    mask: str  # which frontier of the result
    value: Callable[[PointResult], float | None]
    fmt: Callable[[float], str]
    color: str
    ylabel: str
    title: str
    empty: str  # said in the panel when no point has a value


def _set_log_axis(ax: Axes, values: Sequence[float], fmt: Callable[[float], str]) -> None:
    """A log y axis over ``values``: round major ticks labelled by ``fmt``, unlabelled minor ones."""
    from matplotlib.ticker import FixedLocator, FuncFormatter, NullFormatter

    lo, hi = min(values), max(values)
    if hi <= lo * 1.0001:  # one value: a window around it
        lo, hi = lo / 1.5, hi * 1.5
    pad = (hi / lo) ** 0.08
    ax.set_yscale("log")
    ax.set_ylim(lo / pad, hi * pad)
    ticks = log_ticks(lo / pad, hi * pad)
    if ticks:
        ax.yaxis.set_major_locator(FixedLocator(ticks))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: fmt(v)))
    ax.yaxis.set_minor_formatter(NullFormatter())


def _set_recall_axis(ax: Axes, recalls: Sequence[float]) -> None:
    lo, hi = min(recalls), max(recalls)
    span = max(hi - lo, 0.02)
    ax.set_xlim(max(0.0, lo - 0.06 * span), min(1.0 + 0.02 * span, hi + 0.06 * span))


def _draw_panel(
    ax: Axes, points: Sequence[PointResult], mask: Sequence[bool], spec: _Panel, k: int
) -> list[tuple[tuple[float, float], str]]:
    """One panel's points and frontier. Returns the labels to place once the layout is settled:
    ((recall, value), text), one per distinct place of the frontier."""
    ax.set_xlabel(f"recall@{k} (mean over queries; bars: 95% interval, frontier only)")
    ax.set_ylabel(spec.ylabel)
    ax.set_title(spec.title, fontsize=10, pad=16)
    ax.grid(True, which="major", alpha=0.3, linewidth=0.6)
    rows = []
    for p, on in zip(points, mask, strict=True):
        v = spec.value(p)
        if v is not None and math.isfinite(v) and v > 0:
            rows.append((p, float(v), bool(on)))
    if not rows:
        ax.text(0.5, 0.5, spec.empty, transform=ax.transAxes, ha="center", va="center", fontsize=14, color="0.4")
        ax.set_xlim(0, 1)
        ax.set_yticks([])
        return []
    dominated = [(p.recall.mean, v) for p, v, on in rows if not on]
    front = sorted(((p, v) for p, v, on in rows if on), key=lambda pv: (pv[0].recall.mean, pv[1]))
    if dominated:
        ax.scatter(
            [x for x, _ in dominated],
            [y for _, y in dominated],
            s=14,
            color="grey",
            alpha=FADED_ALPHA,
            linewidths=0,
            gid=GID_DOMINATED,
            label=f"dominated ({len(dominated)})",
            zorder=2,
        )
    labels: list[tuple[tuple[float, float], str]] = []
    if front:
        xs = [p.recall.mean for p, _ in front]
        ys = [v for _, v in front]
        # the best value reachable at recall >= x is the next frontier point's: a step drawn "pre"
        ax.plot(xs, ys, drawstyle="steps-pre", color=spec.color, linewidth=1.0, alpha=0.7, zorder=3)
        ax.errorbar(
            xs,
            ys,
            xerr=[
                [max(0.0, p.recall.mean - p.recall.ci95_low) for p, _ in front],
                [max(0.0, p.recall.ci95_high - p.recall.mean) for p, _ in front],
            ],
            fmt="none",
            ecolor=spec.color,
            elinewidth=0.8,
            capsize=2,
            alpha=0.8,
            zorder=3,
        )
        ax.scatter(
            xs,
            ys,
            s=26,
            color=spec.color,
            edgecolors="white",
            linewidths=0.5,
            gid=GID_FRONTIER,
            zorder=4,
            label=f"Pareto frontier ({len(front)})",
        )
        places: dict[tuple[float, float], list[PointResult]] = {}
        for p, v in front:
            places.setdefault((p.recall.mean, v), []).append(p)
        labels = [(xy, group_label(ps)) for xy, ps in places.items()]
        if len(labels) > MAX_LABELS:  # evenly along the frontier, both ends kept
            keep = sorted({round(i * (len(labels) - 1) / (MAX_LABELS - 1)) for i in range(MAX_LABELS)})
            ax.text(
                1.0, -0.1, f"{len(keep)} of {len(labels)} frontier places labelled", transform=ax.transAxes,
                ha="right", va="top", fontsize=7, color="0.4",
            )  # fmt: skip
            labels = [labels[i] for i in keep]
    _set_recall_axis(ax, [p.recall.mean for p, _, _ in rows])
    _set_log_axis(ax, [v for _, v, _ in rows], spec.fmt)
    # above the axes, under the title: never over a point or a label
    ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=2, fontsize=8, frameon=False, borderaxespad=0.2)
    return labels


def _overlap_area(a: Any, b: Any) -> float:
    """Pixels² two display boxes share."""
    return max(0.0, min(a.x1, b.x1) - max(a.x0, b.x0)) * max(0.0, min(a.y1, b.y1) - max(a.y0, b.y0))


def _annotate(ax: Axes, xy: tuple[float, float], text: str, offset: tuple[float, float], color: str, leader: bool):
    dx, dy = offset
    ann = ax.annotate(
        text,
        xy,
        xytext=offset,
        textcoords="offset points",
        ha="left" if dx > 0 else "right",
        va="bottom" if dy > 0 else "top",
        fontsize=LABEL_FONTSIZE,
        color=color,
        gid=GID_LABEL,
        annotation_clip=False,
        zorder=3.5,  # over the lines and error bars, under the markers
        bbox={"boxstyle": "square,pad=0.1", "facecolor": "white", "edgecolor": "none", "alpha": 0.75},
        arrowprops={"arrowstyle": "-", "color": color, "linewidth": 0.5, "alpha": 0.6, "shrinkA": 0, "shrinkB": 3}
        if leader
        else None,
    )
    ann.set_in_layout(False)
    return ann


def _place_labels(ax: Axes, labels: Sequence[tuple[tuple[float, float], str]], color: str) -> None:
    """One annotation per label, each at the first offset around its point whose box stays inside
    the axes and overlaps neither the labels placed before it nor a marker; where none does, the
    offset inside the axes that covers least. Labels set away from their point get a leader line."""
    fig = ax.figure
    renderer = fig.canvas.get_renderer()  # type: ignore[attr-defined]
    box = ax.get_window_extent(renderer)
    pad = 4.0 * fig.dpi / 72.0  # about a marker's radius, in pixels
    marks = [ax.transData.transform(xy) for xy, _ in labels]
    placed: list[Any] = []
    for xy, text in labels:
        best = None
        for offset in _OFFSETS:
            ann = _annotate(ax, xy, text, offset, color, leader=False)  # measured without its leader
            ext = ann.get_window_extent(renderer)
            ann.remove()
            inside = box.x0 <= ext.x0 and ext.x1 <= box.x1 and box.y0 <= ext.y0 and ext.y1 <= box.y1
            # how much it covers: other labels (pixels²), and markers (each as a marker's area)
            covered = sum(_overlap_area(ext, other) for other in placed) + sum(
                4 * pad * pad
                for mx, my in marks
                if ext.x0 - pad <= mx <= ext.x1 + pad and ext.y0 - pad <= my <= ext.y1 + pad
            )
            score = (not inside, covered)
            if best is None or score < best[2]:
                best = (offset, ext, score)
                if score == (False, 0):
                    break
        assert best is not None
        _annotate(ax, xy, text, best[0], color, leader=abs(best[0][1]) > 3)
        placed.append(best[1])


def figure(result: SweepResult, mark: PointResult | None = None, command: str = "sweep") -> Figure:
    """The sweep's frontiers side by side: recall@k vs memory (left, the "memory" frontier) and
    recall@k vs queries/s (right, the "qps" frontier, timed points only). A Figure on an Agg
    canvas of its own: no pyplot, no global state. ``mark``: a point to circle on both panels
    (a recommendation's answer); command: the title's first word."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    k = result.k
    timed = any(p.queries_per_s is not None for p in result.points)
    specs = (
        _Panel(
            "memory",
            lambda p: float(p.memory_bytes),
            format_bytes,
            "C0",
            "memory (bytes, log scale): index + re-rank store",
            f"recall@{k} vs memory",
            "no points",
        ),
        _Panel(
            "qps",
            lambda p: p.queries_per_s,
            format_count,
            "C3",
            "queries/s (log scale)",
            f"recall@{k} vs queries/s",
            "not timed" if result.points and not timed else "no points",
        ),
    )
    fig = Figure(figsize=(15, 7), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, 2)
    fig.suptitle(_title(result, command), fontsize=11)
    fig.supxlabel(KEY, fontsize=8, color="0.3")
    masks = dict(_masks(result))
    dep = result.deployment
    if dep and len(dep.get("points", [])) == len(result.points):
        # the memory panel at the deployed size, and its frontier there (gpupq.sweep.deployment_table)
        at = {id(p): row["memory_bytes_total"] for p, row in zip(result.points, dep["points"], strict=True)}
        masks["memory"] = [row["pareto_memory"] for row in dep["points"]]
        specs = (
            _Panel(
                "memory", lambda p: float(at[id(p)]), format_bytes, "C0",
                f"memory at N={dep['n_total']:,} (bytes, log scale): index + re-rank store",
                f"recall@{k} (measured on the sample) vs memory at N={format_count(dep['n_total'], billions='B')}",
                "no points",
            ),
            specs[1],
        )  # fmt: skip
    pending = []
    for ax, spec in zip(axes, specs, strict=True):
        pending.append((ax, spec, _draw_panel(ax, result.points, masks[spec.mask], spec, k)))
        value = spec.value(mark) if mark is not None else None
        if value is not None and value > 0:
            ax.scatter(
                [mark.recall.mean], [value], s=180, facecolors="none", edgecolors="black", linewidths=1.6,
                zorder=5, gid=GID_MARK, label="the answer",
            )  # fmt: skip
            ax.legend(loc="lower center", bbox_to_anchor=(0.5, 1.0), ncols=3, fontsize=8, frameon=False)
    fig.draw_without_rendering()  # settle the layout, so labels are placed where they will be drawn
    for ax, spec, labels in pending:
        _place_labels(ax, labels, spec.color)
    return fig


def render(result: SweepResult, fmt: str = "png", mark: PointResult | None = None, command: str = "sweep") -> bytes:
    """:func:`figure` as the bytes of a ``png``, ``pdf`` or ``svg`` file."""
    buf = BytesIO()
    figure(result, mark, command).savefig(buf, format=fmt, dpi=DPI)
    return buf.getvalue()


def save(result: SweepResult, path: str | Path) -> None:
    """Write :func:`figure` at ``path`` in the format its extension names (.png, .pdf, .svg),
    through :mod:`gpupq.outputs`: checked first, then written atomically (a device or FIFO is
    written through); nothing is left half-written."""
    out = check_outputs([("--plot", path, "plot")], [])[0]
    write_output(out, render(result, out.fmt))


# ---------------------------------------------------------------------------------- terminal
def terminal_plot(result: SweepResult, width: int = 72, height: int = 18) -> str:
    """Recall@k (x) against memory (y, log scale) as text: ``*`` a point on the memory frontier,
    ``.`` a dominated one (a cell holding both shows ``*``). No line is wider than ``width``;
    the plot has ``height`` rows, with a title line above and two axis lines below."""
    points = result.points
    if not points:
        return "no points to plot"
    mask = _masks(result)["memory"]
    recalls = [p.recall.mean for p in points]
    mems = [max(1.0, float(p.memory_bytes)) for p in points]
    x_lo, x_hi = min(recalls), max(recalls)
    y_lo, y_hi = math.log10(min(mems)), math.log10(max(mems))
    top_label, bottom_label = format_bytes(max(mems)), format_bytes(min(mems))
    label_w = max(len(top_label), len(bottom_label))
    cols = max(8, width - label_w - 2)  # "label |" then the plot's columns
    rows = max(3, height)

    def cell(x: float, y: float) -> tuple[int, int]:
        c = round((x - x_lo) / (x_hi - x_lo) * (cols - 1)) if x_hi > x_lo else (cols - 1) // 2
        r = round((y_hi - y) / (y_hi - y_lo) * (rows - 1)) if y_hi > y_lo else (rows - 1) // 2
        return r, c

    grid = [[" "] * cols for _ in range(rows)]
    for x, m, on in zip(recalls, mems, mask, strict=True):
        r, c = cell(x, math.log10(m))
        if on:
            grid[r][c] = "*"
        elif grid[r][c] == " ":
            grid[r][c] = "."
    titles = (
        f"recall@{result.k} (x) vs memory (y, log scale): * frontier, . dominated",
        f"recall@{result.k} vs memory (log): * frontier . dominated",
        f"recall@{result.k} vs memory",
    )
    lines = [next((t for t in titles if len(t) <= width), titles[-1])]
    for i, row in enumerate(grid):
        label = top_label if i == 0 else bottom_label if i == rows - 1 else ""
        lines.append(f"{label:>{label_w}} |" + "".join(row).rstrip())
    lines.append(" " * label_w + " +" + "-" * cols)
    left, right = f"{x_lo:.3f}", f"{x_hi:.3f}"
    lines.append(" " * (label_w + 2) + left + " " * max(1, cols - len(left) - len(right)) + right)
    return "\n".join(line[:width].rstrip() for line in lines)
