"""``gpupq sweep``: every operating point of a grid, from shared work, with its Pareto frontiers.

The grid is builds (nlist × m × nbits × OPQ) times search settings (nprobe × re-rank depth ×
store). Each build is trained and filled once (its coarse quantizer shared with every other build
of its nlist), scanned once at its largest nprobe, and every point read from that scan
(:mod:`gpupq.engine`); then each point is timed at its own setting unless timing is off.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import __version__
from .engine import PointResult, Workbench
from .grid import NPROBE_FLAT, Grid, check_grid, fill_defaults
from .memory import NLIST_RULE, RECALL_CAVEAT, deployment
from .metrics import RECALL_DEFINITION
from .pareto import FRONTIERS, non_dominated
from .plan import Plan, check_memory, plan_work, widest_curve
from .session import POINT_MIN_TIME, Progress, RunConfig, Session, tie_warning
from .settings import Build, sample_size
from .threads import blas_description, blas_threads
from .units import stored_bytes

#: queries/s within this share of each other are not told apart on a frontier
QPS_NOISE = 0.10
#: the automatic doubling's first scan covers nprobe 1..this
NPROBE_FIRST_SCAN = 16


# ---------------------------------------------------------------------------------- sweep
@dataclass
class BuildCost:
    build: Build
    coarse_train_s: float
    coarse_shared: bool
    pq_train_s: float
    add_s: float
    cached: str | None = None  # what --cache gave instead of training or adding (their times: 0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "build": self.build.label,
            "coarse_train_s": self.coarse_train_s,
            "coarse_shared": self.coarse_shared,
            "pq_train_s": self.pq_train_s,
            "add_s": self.add_s,
            **({"cached": self.cached} if self.cached else {}),
        }


@dataclass
class SweepResult:
    dataset: dict[str, Any]
    grid: Grid
    k: int
    backend: str
    device: str
    points: list[PointResult]
    builds: list[BuildCost]
    frontiers: dict[str, list[bool]] = field(default_factory=dict)
    ground_truth_s: float | None = None
    wall_s: float = 0.0
    timed: bool = True
    min_time: float = POINT_MIN_TIME
    threads: int = 1
    blas: str = ""
    interrupted: bool = False
    warnings: list[str] = field(default_factory=list)
    deployment: dict[str, Any] | None = None  # the bill at --n-total, see gpupq.memory.deployment

    def mark_frontiers(self) -> None:
        self.frontiers = frontiers(self.points)

    def to_dict(self) -> dict[str, Any]:
        pts = []
        for i, p in enumerate(self.points):
            d = p.to_dict()
            d["memory_ratio_fp32"] = p.memory.vectors_fp32 / p.memory_bytes if p.memory_bytes else None
            d["memory_ratio_stored"] = stored_bytes(p.memory.vectors_fp32, self.dataset["dtype"]) / p.memory_bytes
            d["pareto"] = {name: bool(mask[i]) for name, mask in self.frontiers.items()}
            pts.append(d)
        return {
            "gpupq_version": __version__,
            "command": "sweep",
            "dataset": self.dataset,
            "k": self.k,
            "grid": self.grid.to_dict(),
            "backend": self.backend,
            "device": self.device,
            "recall_definition": RECALL_DEFINITION,
            "pareto_definition": PARETO_DEFINITION,
            "timing": TIMING_NOTE if self.timed else "not timed (--no-timing): queries_per_s is null",
            "min_time": self.min_time,
            "threads": self.threads,
            "blas": self.blas,
            "ground_truth_s": self.ground_truth_s,
            "wall_s": self.wall_s,
            "interrupted": self.interrupted,
            "builds": [b.to_dict() for b in self.builds],
            "points": pts,
            "deployment": self.deployment,
            "warnings": list(self.warnings),
        }


PARETO_DEFINITION = (
    "a point is dominated when another is at least as good on every axis and better on one; "
    "recall by its mean over queries; queries/s by the range of its runs, at least ±10%: better only "
    "beyond both ranges; frontiers: memory (recall vs memory), qps (recall vs queries/s), all (recall, "
    "memory and queries/s together); untimed points are on no frontier that uses queries/s"
)
TIMING_NOTE = (
    "each point timed at its own setting (search at its nprobe, re-rank at its depth), "
    "the median of its runs; recall of every nprobe and depth read from one scan per build"
)


def frontiers(points: Sequence[PointResult]) -> dict[str, list[bool]]:
    """Each of :data:`FRONTIERS`' masks over ``points``."""
    if not points:
        return {name: [] for name in FRONTIERS}
    axes = {
        "recall": np.array([p.recall.mean for p in points]),
        "memory": np.array([float(p.memory_bytes) for p in points]),
        "qps": np.array([np.nan if p.queries_per_s is None else p.queries_per_s for p in points]),
    }
    lows, highs = dict(axes), dict(axes)
    lows["qps"], highs["qps"] = qps_range(points)
    out = {}
    for name, (names, better) in FRONTIERS.items():
        pick = [axes, lows, highs]
        values, low, high = (np.stack([d[a] for a in names], axis=1) for d in pick)
        out[name] = non_dominated(values, better, low, high).tolist()
    return out


def qps_range(points: Sequence[PointResult]) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) (n,) float64 queries/s of each point: from its slowest and fastest run, and at
    least :data:`QPS_NOISE` either side of its median (points of different builds are timed
    minutes apart, and one run says nothing of its spread); NaN where not timed."""
    low = np.full(len(points), np.nan)
    high = np.full(len(points), np.nan)
    for i, p in enumerate(points):
        if p.queries_per_s is None:
            continue
        q = p.queries_per_s
        low[i], high[i] = q * (1 - QPS_NOISE), q * (1 + QPS_NOISE)
        if p.runs is not None and len(p.runs.seconds) > 1:
            per_run = q * p.runs.median / np.array(p.runs.seconds)  # each run's queries/s
            low[i], high[i] = min(low[i], per_run.min()), max(high[i], per_run.max())
    return low, high


def _filled(session: Session, grid: Grid, k: int) -> Grid:
    """The grid with its empty axes filled by the stated rules, and checked."""
    grid = fill_defaults(copy.deepcopy(grid), session.split.n_base, session.dataset.d)
    check_grid(grid, session.dataset.d, session.split.n_base, k)
    return grid


def sweep_plan(session: Session, grid: Grid, config: RunConfig) -> Plan:
    """What :func:`sweep` of ``grid`` is about to do (:mod:`gpupq.plan`): say it before starting."""
    grid = _filled(session, grid, config.k)
    builds = grid.builds()
    depth = max([config.k] + [r for r, _ in grid.reranks()])
    per_build = None if grid.nprobe is None else len(grid.nprobe) * (1 + len(grid.reranks()))
    return plan_work(
        session.backend, builds, session.split.n_base, session.split.n_queries, session.dataset.d, depth,
        grid.nprobe, None if per_build is None else per_build * len(builds),
        config.min_time if config.timing else 0.0, widest_curve(builds, grid.nprobe, NPROBE_FIRST_SCAN),
        ground_truth=session.bench.stored_gt is None, settings=1 + len(grid.reranks()),
    )  # fmt: skip


def sweep(
    session: Session,
    grid: Grid,
    config: RunConfig,
    progress: Progress | None = None,
) -> SweepResult:
    """Every point of ``grid`` on the session's backend. Ctrl-C (KeyboardInterrupt) stops it and
    returns the points measured so far, marked ``interrupted``. Candidate lists that would not fit
    in memory are refused before any work (:func:`gpupq.plan.check_memory`)."""
    bench, split, be = session.bench, session.split, session.backend
    k = config.k
    grid = _filled(session, grid, k)
    builds = grid.builds()
    depth = max([k] + [r for r, _ in grid.reranks()])
    check_memory(be, split.n_queries, depth, widest_curve(builds, grid.nprobe, NPROBE_FIRST_SCAN))
    result = SweepResult(
        dataset=session.describe(),
        grid=grid,
        k=k,
        backend=be.name,
        device=be.device_description(),
        points=[],
        builds=[],
        timed=config.timing,
        min_time=config.min_time,
        threads=session.threads,
        blas=blas_description(),
    )
    t_start = time.perf_counter()
    session.dataset.validate()
    truth = None
    try:
        with blas_threads(1):
            truth = bench.truth(k)
            result.ground_truth_s = bench.ground_truth_s
            result.dataset["ground_truth"] = session.ground_truth_said()
            bench.sample(sample_size(split.n_base, builds))  # one read of the training rows
            reranks = grid.reranks()
            depth = max([k] + [r for r, _ in reranks])
            for i, build in enumerate(builds):
                if progress is not None:
                    progress("sweep: builds", i, len(builds))
                pts = _sweep_build(bench, build, grid, reranks, depth, k, truth)
                built = bench.built(build)
                cost = (built.coarse_s, built.shared_coarse, built.train_s, built.add_s, built.cached)
                result.builds.append(BuildCost(build, *cost))
                if config.timing:  # the build's points together, runs interleaved
                    if progress is not None:
                        progress(f"time {len(pts)} points of {build.label}", 0, 1)
                    bench.time_points(pts, k, config.min_time)
                    if progress is not None:
                        progress(f"time {len(pts)} points of {build.label}", 1, 1)
                result.points.extend(pts)  # complete: kept if Ctrl-C comes next
                result.warnings.extend(w for w in built.index.warnings if w not in result.warnings)
                bench.drop(build)
                if progress is not None:
                    progress("sweep: builds", i + 1, len(builds))
    except KeyboardInterrupt:
        result.interrupted = True  # the builds measured so far are whole; one half-timed was not kept
    result.wall_s = time.perf_counter() - t_start
    for warning in (tie_warning(truth) if truth is not None else None, session.metric_hint(), session.shard_note()):
        if warning:
            result.warnings.append(warning)
    result.mark_frontiers()
    if config.n_total:
        result.deployment = deployment_table(result, config.n_total)
    return result


def deployment_table(
    result: SweepResult, n_total: int, memory_of: Callable[[PointResult], int | None] | None = None
) -> dict[str, Any]:
    """Every point billed at n_total (see :func:`gpupq.memory.deployment`), and the memory frontier's
    rows; ``memory_of`` bills a point otherwise where it returns bytes (recommend: on its engine,
    without FAISS's precomputed table)."""
    ds = result.dataset
    nb, d, metric = ds["n_base"], ds["d"], "l2" if ds["metric"] == "l2" else "ip"
    rows = []
    for p in result.points:
        store = p.setting.store if p.setting.rerank else ""
        dep = deployment(p.build, p.setting.nprobe, store, nb, n_total, d, metric)
        rows.append(
            {
                "build": p.build.label,
                "nprobe": p.setting.nprobe,
                "rerank": p.setting.rerank,
                "rerank_store": p.setting.store or None,
                "nlist_total": dep.nlist,
                "nprobe_total": dep.nprobe,
                "memory_bytes_total": (memory_of(p) if memory_of else None) or dep.memory_bytes,
                "recall": p.recall.mean,
            }
        )
    # the frontier at the deployed size, on its own memory axis (nlist and the table scale with N)
    at_total = np.array([[r["recall"], float(r["memory_bytes_total"])] for r in rows]).reshape(-1, 2)
    front = non_dominated(at_total, (True, False)) if rows else np.zeros(0, dtype=bool)
    for row, on in zip(rows, front, strict=True):
        row["pareto_memory"] = bool(on)
    return {
        "n_total": n_total,
        "rule": NLIST_RULE,
        "recall_note": RECALL_CAVEAT,
        "points": rows,
        "frontier": [r for r in rows if r["pareto_memory"]],
    }


def _sweep_build(
    bench: Workbench,
    build: Build,
    grid: Grid,
    reranks: list[tuple[int, str]],
    depth: int,
    k: int,
    truth: Any,
) -> list[PointResult]:
    """The untimed points of one build at every nprobe of the grid (or of the doubling rule)."""
    if grid.nprobe is not None:
        ps = sorted({min(p, build.nlist) for p in grid.nprobe})
        curve = bench.curve(build, ps, depth)
        return [pt for p in ps for pt in bench.points(build, curve, p, k, reranks, truth)]
    # Doubling until recall stops rising: scan to 16 first, then 4× further per round (re-scanning
    # from rank 0 costs at most a third more than one scan at the final nprobe).
    out: list[PointResult] = []
    done: list[int] = []
    top = min(NPROBE_FIRST_SCAN, build.nlist)
    while True:
        ps = [p for p in _doublings(top, build.nlist) if p not in done]
        curve = bench.curve(build, ps, depth)
        for p in ps:
            out.extend(bench.points(build, curve, p, k, reranks, truth))
            done.append(p)
            if len(done) >= 2 and _flat(out, done[-2], done[-1]):
                return out
        if top >= build.nlist:
            return out
        top = min(top * 4, build.nlist)


def _doublings(top: int, nlist: int) -> list[int]:
    out, p = [], 1
    while p < top:
        out.append(p)
        p *= 2
    out.append(min(top, nlist))
    return sorted(set(out))


def _flat(points: list[PointResult], before: int, after: int) -> bool:
    """Recall rose by less than NPROBE_FLAT from nprobe ``before`` to ``after``, on the raw
    ranking and on the deepest re-rank (the best a point at that nprobe gets)."""

    def best(p: int) -> tuple[float, float]:
        at = [pt for pt in points if pt.setting.nprobe == p]
        return at[0].recall_raw.mean, max(pt.recall.mean for pt in at)

    (raw0, top0), (raw1, top1) = best(before), best(after)
    return raw1 - raw0 < NPROBE_FLAT and top1 - top0 < NPROBE_FLAT
