"""``gpupq sweep``: every operating point of a grid, from shared work, with its Pareto frontiers.

The grid is builds (nlist × m × nbits × OPQ) times search settings (nprobe × re-rank depth ×
store). Each build is trained and filled once (its coarse quantizer shared with every other build
of its nlist), scanned once at its largest nprobe, and every point read from that scan
(:mod:`gpupq.engine`); then each point is timed at its own setting unless timing is off.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from . import __version__, formats
from .backends import Backend, get_backends
from .data import Dataset, Split, hold_out, with_query_file
from .engine import Build, PointResult, Workbench, sample_size
from .errors import GpupqError
from .metrics import RECALL_DEFINITION
from .pareto import FRONTIERS, non_dominated
from .pq import check_pq_params, valid_m
from .refine import STORES
from .threads import ThreadBudget, blas_description, blas_threads, resolve_threads

Progress = Callable[[str, int, int], None]

#: the automatic nprobe doubling stops when recall rose by less than this over the last doubling
#: (both the raw and the deepest re-ranked recall): half a point, about what 100 queries resolve
NPROBE_FLAT = 0.005
#: the automatic doubling's first scan covers nprobe 1..this
NPROBE_FIRST_SCAN = 16
#: seconds of runs each timed point covers by default: a fast point (a few ms) is repeated and its
#: median taken, where one run says more about the machine's other load than about the point; a
#: slow one runs once. Chosen against the issue's 480-point grid on 100,000 x 128, which must stay
#: within 1.5x its builds alone: 0 gave 1.20x, 0.05 gave 1.43x (benchmarks/RESULTS.md)
POINT_MIN_TIME = 0.025


# ---------------------------------------------------------------------------------- grid
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
    nbits: list[int] = field(default_factory=lambda: [8])
    opq: list[bool] = field(default_factory=lambda: [False])
    nprobe: list[int] | None = None
    rerank: list[int] = field(default_factory=list)  # empty: the command's default
    stores: list[str] = field(default_factory=list)  # empty: the command's default
    rules: list[str] = field(default_factory=list)  # how defaulted axes were chosen

    def builds(self) -> list[Build]:
        return [Build(nl, m, nb, o) for nl in self.nlist for m in self.m for nb in self.nbits for o in self.opq]

    def reranks(self) -> list[tuple[int, str]]:
        return [(r, s) for r in self.rerank if r > 0 for s in self.stores]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


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
    if not grid.rerank:
        grid.rerank = [0]
    if not grid.stores:
        grid.stores = ["fp16"]
    if grid.nprobe is None:
        rules.append(f"nprobe: 1, 2, 4, … doubling until recall rises by less than {NPROBE_FLAT} (or nprobe = nlist)")
    grid.rules = rules
    return grid


def check_grid(grid: Grid, d: int, n_base: int, k: int) -> None:
    for m in grid.m:
        for nbits in grid.nbits:
            check_pq_params(d, m, nbits)
    for nl in grid.nlist:
        if nl < 1 or nl > n_base:
            raise GpupqError(f"--nlist {nl}: must be between 1 and the base size {n_base}")
    for nbits in grid.nbits:
        if n_base < (1 << nbits):
            raise GpupqError(f"{n_base} training vectors is fewer than the 2^nbits={1 << nbits} PQ centroids")
    if grid.nprobe is not None and min(grid.nprobe) < 1:
        raise GpupqError("--nprobe values must be at least 1")
    for r in grid.rerank:
        if r < 0 or 0 < r < k:
            raise GpupqError(f"--rerank {r} must be 0 (off) or at least k={k}")
        if r > n_base:
            raise GpupqError(f"--rerank {r} is larger than the base ({n_base} vectors)")
    for s in grid.stores:
        if s not in STORES:
            raise GpupqError(f"--rerank-store {s!r} is not one of {', '.join(STORES)}")
    if k > n_base:
        raise GpupqError(f"-k {k} is larger than the base ({n_base} vectors)")


# ---------------------------------------------------------------------------------- session
@dataclass
class RunConfig:
    """What every chooser shares: the split, k, timing and threads."""

    k: int = 10
    queries: int = 100
    metric: str | None = None
    seed: int = 0
    batch_size: int = 1024
    threads: int | None = None
    min_time: float = POINT_MIN_TIME  # seconds of runs per timed point; 0: one run each
    timing: bool = True
    n_total: int | None = None

    def check(self) -> None:
        if self.k < 1:
            raise GpupqError(f"-k must be at least 1 (got {self.k})")
        if self.seed < 0:
            raise GpupqError(f"--seed must be 0 or more (got {self.seed})")
        if self.batch_size < 1:
            raise GpupqError(f"--batch-size must be at least 1 (got {self.batch_size})")
        if self.threads is not None and self.threads < 1:
            raise GpupqError(f"--threads must be at least 1 (got {self.threads})")
        if not 0 <= self.min_time <= 600:
            raise GpupqError(f"--min-time must be between 0 and 600 seconds (got {self.min_time})")


@dataclass
class Session:
    """One backend's workbench over one split, and what the report says about the data."""

    bench: Workbench
    dataset: Dataset
    split: Split
    backend: Backend
    threads: int
    ground_truth_source: str | None
    budget: ThreadBudget

    def close(self) -> None:
        self.backend.budget = None
        self.budget.close()

    def describe(self) -> dict[str, Any]:
        ds, split = self.dataset, self.split
        return {
            "source": ds.source,
            "n": ds.n,
            "d": ds.d,
            "dtype": ds.dtype,
            "n_base": split.n_base,
            "n_queries": split.n_queries,
            "queries_source": split.query_source or "held out",
            "ground_truth": self.ground_truth_source or "computed (exact search)",
            "metric": ds.metric,
        }


def open_session(
    dataset: Dataset,
    config: RunConfig,
    backend: str | Backend = "auto",
    progress: Progress | None = None,
    queries: Dataset | None = None,
    ground_truth: Any = None,
    ground_truth_source: str | None = None,
) -> Session:
    """Split the data and set up the workbench on one backend (``all`` is for ``estimate``)."""
    from .estimate import _agreed_metric

    config.check()
    metric = _agreed_metric(dataset, config.metric)
    if isinstance(backend, str):
        if backend.lower() == "all":
            raise GpupqError("--backend all is for estimate; sweep and recommend run on one: auto, numpy or cupy")
        backend = get_backends(backend)[0]
    dataset = Dataset(array=dataset.array, source=dataset.source, metric=metric)
    if queries is not None:
        split = with_query_file(dataset, queries, config.queries)
    else:
        split = hold_out(dataset, config.queries, config.seed)
    gt = None
    if ground_truth is not None:
        if queries is None:
            raise GpupqError("stored ground truth needs the queries it was computed for")
        where = ground_truth_source or "the stored ground truth"
        gt = formats.read_ground_truth(ground_truth, split.n_queries, config.k, split.n_base, where)
    threads = resolve_threads(config.threads)
    budget = ThreadBudget(threads)
    backend.budget = budget
    bench = Workbench(
        backend,
        dataset,
        split,
        seed=config.seed,
        batch_size=config.batch_size,
        min_time=config.min_time,
        progress=progress,
        stored_gt=gt,
    )
    return Session(bench, dataset, split, backend, threads, ground_truth_source if gt is not None else None, budget)


# ---------------------------------------------------------------------------------- sweep
@dataclass
class BuildCost:
    build: Build
    coarse_train_s: float
    coarse_shared: bool
    pq_train_s: float
    add_s: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "build": self.build.label,
            "coarse_train_s": self.coarse_train_s,
            "coarse_shared": self.coarse_shared,
            "pq_train_s": self.pq_train_s,
            "add_s": self.add_s,
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
    deployment: dict[str, Any] | None = None  # the bill at --n-total, see gpupq.scale

    def mark_frontiers(self) -> None:
        self.frontiers = frontiers(self.points)

    def to_dict(self) -> dict[str, Any]:
        pts = []
        for i, p in enumerate(self.points):
            d = p.to_dict()
            d["memory_ratio_fp32"] = p.memory.vectors_fp32 / p.memory_bytes if p.memory_bytes else None
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
    "recall by its mean over queries; frontiers: memory (recall vs memory), qps (recall vs queries/s), "
    "all (recall, memory and queries/s together); untimed points are on no frontier that uses queries/s"
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
    out = {}
    for name, (names, better) in FRONTIERS.items():
        values = np.stack([axes[a] for a in names], axis=1)
        out[name] = non_dominated(values, better).tolist()
    return out


def sweep(
    session: Session,
    grid: Grid,
    config: RunConfig,
    progress: Progress | None = None,
) -> SweepResult:
    """Every point of ``grid`` on the session's backend. Ctrl-C (KeyboardInterrupt) stops it and
    returns the points measured so far, marked ``interrupted``."""
    bench, split, be = session.bench, session.split, session.backend
    k = config.k
    grid = fill_defaults(grid, split.n_base, session.dataset.d)
    check_grid(grid, session.dataset.d, split.n_base, k)
    builds = grid.builds()
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
            bench.sample(sample_size(split.n_base, builds))  # one read of the training rows
            reranks = grid.reranks()
            depth = max([k] + [r for r, _ in reranks])
            for i, build in enumerate(builds):
                if progress is not None:
                    progress("sweep: builds", i, len(builds))
                pts = _sweep_build(bench, build, grid, reranks, depth, k, truth)
                built = bench.built(build)
                result.builds.append(
                    BuildCost(build, built.coarse_s, built.shared_coarse, built.train_s, built.add_s)
                )
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
    tied = truth.tied if truth is not None else None
    if tied is not None and int(tied.sum()):
        result.warnings.append(
            f"{int(tied.sum())} of {split.n_queries} queries have ties at the k-th exact neighbour; "
            "recall counts any neighbour within the k-th distance"
        )
    result.mark_frontiers()
    if config.n_total:
        result.deployment = deployment_table(result, session, config.n_total)
    return result


def deployment_table(result: SweepResult, session: Session, n_total: int) -> dict[str, Any]:
    """Every point billed at n_total (see :mod:`gpupq.scale`), and the memory frontier's rows."""
    from .scale import NLIST_RULE, RECALL_CAVEAT, deployment

    bench, nb, d = session.bench, session.split.n_base, session.dataset.d
    rows = []
    for i, p in enumerate(result.points):
        store = bench.store(p.setting.store) if p.setting.rerank else None
        dep = deployment(p.build, p.setting.nprobe, store, nb, n_total, d, bench.index_metric)
        rows.append(
            {
                "build": p.build.label,
                "nprobe": p.setting.nprobe,
                "rerank": p.setting.rerank,
                "rerank_store": p.setting.store or None,
                "nlist_total": dep.nlist,
                "nprobe_total": dep.nprobe,
                "memory_bytes_total": dep.memory_bytes,
                "recall": p.recall.mean,
                "pareto_memory": bool(result.frontiers["memory"][i]),
            }
        )
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

