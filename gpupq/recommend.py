"""``gpupq recommend``: the cheapest configuration in memory that meets a recall target.

The search is economical rather than the whole grid:

1. Every candidate (build × re-rank store, or no re-rank) has a memory bill known before anything
   is trained, so candidates are ordered by memory (at ``--n-total`` when given) and those over
   the budget are never trained.
2. Candidates are evaluated cheapest first; the first three that meet every constraint are the
   answer and its runners-up, and nothing dearer is trained (a dearer one cannot be cheaper:
   FAISS's ``OperatingPoints`` prunes the same way).
3. For each candidate and re-rank depth, the smallest nprobe that meets the target is found by
   doubling (1, 2, 4, …) and then bisection between the last two doublings, to within 1/16
   (:data:`gpupq.nprobe_search.NPROBE_RESOLUTION`; exact below 32). Recall is not always
   monotone in nprobe with PQ (FAISS issues #514, #2096): the answer is the smallest nprobe this
   search found, and every point it evaluated is in the evidence.
4. A point meets the target when its 95% interval's lower end does. A point whose mean meets it
   but whose interval straddles it is undecided: the answer says how many queries would decide
   it, rather than guess.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import __version__
from .advice import advice
from .deploy import deploy_at
from .engine import Curve, PointResult
from .engines import DEFAULT_ENGINE, ENGINES
from .errors import GpupqError
from .faiss_timing import faiss_timing
from .frontier import Frontier, Option
from .grid import Grid, check_grid, fill_defaults
from .memory import NLIST_RULE, RECALL_CAVEAT
from .metrics import RECALL_DEFINITION
from .nprobe_search import _doublings, _min_nprobe, companion, project_point_qps, screen_queries
from .params import check
from .plan import Plan, check_memory, measured_rate, plan_work
from .projection import THROUGHPUT_NOTE
from .session import Progress, RunConfig, Session
from .settings import Build, Setting
from .space import Candidate, candidates, space_builds, space_codes, space_nlist
from .threads import blas_threads
from .units import human_bytes

#: re-rank depths tried by default, as multiples of k
DEFAULT_DEPTH_FACTORS = (5, 20)
#: re-rank stores tried by default: fp32 gives the same recall as fp16 in practice at twice the memory
DEFAULT_STORES = ("fp16", "sq8")
ANSWERS = 3  # the recommendation and two runners-up
#: runners-up are sought only up to this multiple of the answer's memory: alternatives a
#: memory-minded deployer would weigh, without training every dearer family to find them (on
#: MiniLM at 0.95 the next builds to meet cost 1.9x the answer, and finding them took 11 of 45 builds)
RUNNERS_UP_WITHIN = 1.25
#: a draft build settles a candidate short only when its best recall's 95% upper end on the
#: screening queries is this far below the target (or twice the largest shortfall a draft has
#: shown against its build in the same run, if more): drafts measured 0.2 to 1.1 points below
DRAFT_MARGIN = 0.02
#: the coverage key counting candidates found short on a draft build alone
DRAFTED = "short on a draft build"
#: queries recommend holds out by default: at recall 0.9 the 95% interval is about ±0.6 points with
#: 1,000 (±2 with 100, where a cheaper candidate is often left undecided and the answer flips
#: with --queries); fewer on a small set, so the base keeps 95% of it
DEFAULT_QUERIES = 1000


def default_queries(n: int) -> int:
    """Queries recommend holds out of n vectors when --queries is not given."""
    return max(1, min(DEFAULT_QUERIES, max(100, n // 20), n // 2))


@dataclass
class Target:
    """What the recommendation must meet: recall@k by its 95% interval's lower end, memory at the
    deployment size (``RunConfig.n_total`` when given, else the sample's), queries per second
    measured here; rerank False: the index alone, no re-rank store."""

    recall: float
    memory_budget: int | None = None  # bytes, at the deployment size
    min_qps: float | None = None
    rerank: bool = True
    engine: str = DEFAULT_ENGINE  # whose memory is billed: faiss-cpu, faiss-gpu or cuvs
    time_budget: float | None = None  # seconds: no new build is trained after it
    runners_up_within: float = RUNNERS_UP_WITHIN  # runners-up up to this multiple of the answer's memory

    def check(self) -> None:
        check("target_recall", self.recall)
        if self.engine not in ENGINES:
            raise GpupqError(f"--engine {self.engine!r}: give one of {', '.join(ENGINES)}")
        if self.time_budget is not None and not self.time_budget > 0:
            raise GpupqError("--time-budget must be a positive number of seconds")
        if not self.runners_up_within >= 1.0:
            raise GpupqError("--runners-up-within must be at least 1 (a multiple of the answer's memory; inf for all)")
        if self.memory_budget is not None and self.memory_budget <= 0:
            raise GpupqError("--memory-budget must be positive")
        if self.min_qps is not None:
            check("min_qps", self.min_qps)


@dataclass
class Finding:
    """What the search learnt about one candidate."""

    candidate: Candidate
    verdict: str  # meets | undecided | short | slow
    point: PointResult | None  # the chosen point: meets (or undecided: the best guess)
    more_queries: int | None = None  # queries that would decide an undecided point
    best: PointResult | None = None  # the highest recall seen (for "closest")
    over_budget: bool = False  # evaluated to say what the budget costs, not a candidate within it
    projected_qps: float | None = None  # queries/s projected to --n-total (gpupq.projection)
    draft: bool = False  # short on a draft build alone (best: the draft's), never built faithfully
    engine_timing: Any = None  # the point timed on faiss-cpu when installed (gpupq.faiss_timing)

    def to_dict(self, n_base: int, k: int, metric: str) -> dict[str, Any]:
        out: dict[str, Any] = {
            "candidate": self.candidate.label,
            "verdict": self.verdict,
            "memory_bytes": self.candidate.memory_bytes,
            "point": self.point.to_dict() if self.point else None,
            "more_queries": self.more_queries,
            "best": self.best.to_dict() if self.best else None,
            "over_budget": self.over_budget,
            "draft": self.draft,
        }
        if self.engine_timing is not None:
            out["faiss_cpu"] = self.engine_timing.to_dict()
        out["projected_queries_per_s"] = self.projected_qps
        out["engine"] = self.candidate.engine
        out["precomputed_table"] = False if self.candidate.table_bytes else None
        out["memory_with_table_bytes"] = (
            self.candidate.memory_bytes + self.candidate.table_bytes if self.candidate.table_bytes else None
        )
        if self.point is not None:
            out["deploy"] = deploy_for(self.point, self.candidate, n_base, k, metric)
        at = self.candidate.at(self.point.setting.nprobe if self.point else 1)
        if at is not None:
            # one figure for the deployment: the engine's bill (the candidate's), not FAISS CPU's
            # with its table; "memory" keeps FAISS CPU's terms for reference
            out["at_n_total"] = {
                **at.to_dict(),
                "memory_bytes": self.candidate.memory_bytes,
                "engine": self.candidate.engine,
            }
        return out


def deploy_for(point: PointResult, cand: Candidate, n_base: int, k: int, metric: str) -> dict[str, Any]:
    """FAISS factory string and cuVS parameters; at --n-total, with nlist and nprobe scaled; and,
    where the bill left FAISS's precomputed table out, how to leave it out."""
    out = deploy_at(point.build, point.setting, metric, k, n_base, cand.at(point.setting.nprobe))
    if cand.table_bytes:
        out["faiss_precomputed_table"] = False
        out["notes"].append(
            "billed without FAISS's precomputed L2 table: load with faiss.read_index(path, "
            "faiss.IO_FLAG_SKIP_PRECOMPUTE_TABLE), or set use_precomputed_table = -1 on the IndexIVFPQ before "
            f"training; keeping it adds {human_bytes(cand.table_bytes)} and makes each probed list cheaper to scan"
        )
    return out


@dataclass
class Recommendation:
    target: Target
    k: int
    dataset: dict[str, Any]
    backend: str
    device: str
    answers: list[Finding]  # cheapest first: the recommendation, then runners-up
    findings: list[Finding]  # every candidate evaluated, in the order evaluated
    evaluated: list[PointResult]  # every point measured
    over_budget: int  # candidates never trained: over the memory budget
    candidates: int
    advice: list[str] = field(default_factory=list)
    n_total: int | None = None
    wall_s: float = 0.0
    rules: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    scale_curve: Any = None  # the recommendation's recall on nested subsamples (gpupq.scalecurve)
    interrupted: bool = False  # Ctrl-C: the evidence so far, no verdict on what was not evaluated
    engine: str = DEFAULT_ENGINE  # whose memory the candidates are billed at
    timed_out: bool = False  # --time-budget ran out before the search settled the answers
    coverage: dict[str, int] = field(default_factory=dict)  # the space: evaluated, pruned by rule, open

    def verdict_at_n(self) -> str | None:
        """The answer's verdict at --n-total from its scale curve's projection (None without one):
        the sample and the projection can disagree, and then the report says so."""
        curve = self.scale_curve
        if curve is None or curve.prediction is None or not self.answers:
            return None
        mean, low, high = curve.prediction
        band = f"projected recall {mean:.3f}, 95% band {low:.3f}–{high:.3f}, at N={curve.n_total:,}"
        if mean < self.target.recall:
            return f"meets the target at the sample, projected short at N ({band})"
        if low < self.target.recall:
            return f"meets the target at the sample; at N the band straddles it ({band})"
        return f"meets the target at the sample and, projected, at N ({band})"

    def cheaper_undecided(self) -> list[Finding]:
        """Candidates cheaper than the answer whose interval straddles the target: with more
        queries one of them may be the answer. (Candidates are evaluated cheapest first, so these
        came before it.)"""
        if not self.answers:
            return []
        cap = self.answers[0].candidate.memory_bytes
        return [f for f in self.findings if f.verdict == "undecided" and f.candidate.memory_bytes < cap]

    def to_dict(self) -> dict[str, Any]:
        nb, metric = self.dataset["n_base"], self.dataset["metric"]
        return {
            "gpupq_version": __version__,
            "command": "recommend",
            "dataset": self.dataset,
            "target": {
                "recall": self.target.recall,
                "k": self.k,
                "memory_budget": self.target.memory_budget,
                "min_qps": self.target.min_qps,
                "rerank": self.target.rerank,
                "n_total": self.n_total,
                "rule": "meets the target when the 95% interval's lower end does",
            },
            "backend": self.backend,
            "device": self.device,
            "recall_definition": RECALL_DEFINITION,
            "n_total_rule": NLIST_RULE if self.n_total else None,
            "throughput_note": THROUGHPUT_NOTE if self.n_total else None,
            "recall_note": RECALL_CAVEAT if self.n_total else None,
            "answers": [f.to_dict(nb, self.k, metric) for f in self.answers],
            "cheaper_undecided": [f.to_dict(nb, self.k, metric) for f in self.cheaper_undecided()],
            "findings": [f.to_dict(nb, self.k, metric) for f in self.findings],
            "evaluated_points": [p.to_dict() for p in self.evaluated],
            "candidates": self.candidates,
            "engine": self.engine,
            "coverage": self.coverage,
            "timed_out": self.timed_out,
            "over_budget": self.over_budget,
            "advice": self.advice,
            "grid_rules": self.rules,
            "wall_s": self.wall_s,
            "interrupted": self.interrupted,
            "warnings": self.warnings,
            "scale_curve": self.scale_curve.to_dict() if self.scale_curve is not None else None,
            "verdict_at_n_total": self.verdict_at_n(),
        }


def candidate_grid(session: Session, target: Target, config: RunConfig, grid: Grid | None = None) -> Grid:
    """The grid the recommendation searches: the one given, its empty axes filled by the
    recommender's space (:func:`space_nlist`, :func:`space_codes`: wider than the sweep's), with
    the re-rank depths and stores to weigh, checked; the caller's grid is not changed."""
    k, nb, d = config.k, session.split.n_base, session.dataset.d
    grid = copy.deepcopy(grid) if grid is not None else Grid(nlist=[], m=[])
    if not target.rerank:
        grid.rerank = [0]
    elif not grid.rerank:  # not given: the default depths
        grid.rerank = [0] + [f * k for f in DEFAULT_DEPTH_FACTORS if f * k <= nb]
        grid.rules.append(f"re-rank depths: 0, {', '.join(f'{f}·k' for f in DEFAULT_DEPTH_FACTORS)}")
    if not grid.stores:
        grid.stores = list(DEFAULT_STORES)
        grid.rules.append(f"re-rank stores: {', '.join(DEFAULT_STORES)} (fp32 costs twice fp16 for the same ranking)")
    if not grid.nlist:
        grid.nlist, rule = space_nlist(nb)
        grid.rules.append(rule)
    if not grid.m or not grid.nbits:
        ms, nbits, rule = space_codes(d)
        if not grid.m:
            grid.m = ms
        if not grid.nbits:
            # 2^nbits centroids need a training point each (FAISS warns below 39 a centroid)
            grid.nbits = [b for b in nbits if (1 << b) <= nb] or [min(nbits)]
        grid.rules.append(rule)
        grid.code_range = True
    if math.isfinite(target.runners_up_within):
        grid.rules.append(
            f"runners-up: other builds meeting the target within {target.runners_up_within:g}× the answer's memory "
            "(--runners-up-within)"
        )
    if grid.opq == [False]:
        grid.rules.append("OPQ: off (its training costs about ten PQ trainings a build here; --opq off,on weighs it)")
    grid = fill_defaults(grid, nb, d)
    grid.rules = [r for r in grid.rules if not r.startswith("nprobe:")]  # the sweep's rule; not used here
    grid.rules.append(
        "nprobe: the smallest meeting the target, by doubling (1, 2, 4, …) then bisection, to within 1/16 above 32"
    )
    check_grid(grid, d, nb, k)
    return grid


def _no_per_shard(config: RunConfig) -> None:
    # its drafts and shared coarse quantizers are of one set of quantizers; per-shard: a sweep
    if config.cluster is not None and config.cluster.per_shard:
        raise GpupqError("--shard-training per-shard runs with estimate and sweep for now, not recommend")


def recommend_plan(session: Session, target: Target, config: RunConfig, grid: Grid | None = None) -> Plan:
    """What :func:`recommend` is about to do, roughly: the search bisects each family row over m,
    so about ⌈log2(values of m + 1)⌉ builds of each (nlist, nbits, OPQ) row (:mod:`gpupq.frontier`);
    pruning across rows usually makes it fewer."""
    target.check()
    _no_per_shard(config)
    grid = candidate_grid(session, target, config, grid)
    builds, _ = space_builds(grid, session.dataset.d, target.engine)
    rows: dict[tuple[int, int, bool], list[Build]] = {}
    for b in builds:
        rows.setdefault((b.nlist, b.nbits, b.opq), []).append(b)
    likely = []
    for row in rows.values():
        row.sort()
        steps = math.ceil(math.log2(len(row) + 1))
        likely += [row[(i * len(row)) // steps] for i in range(steps)]
    plan = plan_work(
        session.backend, likely, session.split.n_base, session.split.n_queries, session.dataset.d,
        max([config.k, *grid.rerank]), None, None, config.min_time, 1,
        ground_truth=session.bench.stored_gt is None, settings=len(grid.rerank) * max(1, len(grid.stores)),
    )  # fmt: skip
    plan.bound = "at most about"  # bisection in every row: pruning across rows usually stops far sooner
    if grid.code_range:  # the default space, not a range typed by hand: its size is by design
        plan.max_builds = 1 << 62
    return plan


def recommend(
    session: Session,
    target: Target,
    config: RunConfig,
    grid: Grid | None = None,
    progress: Progress | None = None,
    scale_curve: bool = False,
) -> Recommendation:
    """The cheapest configurations (in memory) of ``grid`` that meet ``target`` on the session's
    backend. See the module docstring for the search. ``scale_curve``: also measure the
    recommendation's recall on nested subsamples and extend it to ``config.n_total``."""
    target.check()
    _no_per_shard(config)
    bench, be = session.bench, session.backend
    k, nb, d = config.k, session.split.n_base, session.dataset.d
    grid = candidate_grid(session, target, config, grid)
    check_memory(be, session.split.n_queries, max([k, *grid.rerank]), 1)  # one nprobe a scan
    metric = bench.index_metric
    n_total = config.n_total
    stores = [""] + (sorted(set(grid.stores)) if any(r > 0 for r in grid.rerank) else [])
    builds, left_out = space_builds(grid, d, target.engine)
    cands = candidates(builds, stores, nb, n_total, d, metric, target.engine)
    affordable = [c for c in cands if target.memory_budget is None or c.memory_bytes <= target.memory_budget]
    over = sorted((c for c in cands if c not in affordable), key=lambda c: (c.memory_bytes, c.build, c.store))
    depths_for = {
        "": [0],
        **{s: sorted({r for r in grid.rerank if r > 0}) for s in stores if s},
    }
    out = Recommendation(
        target=target,
        k=k,
        dataset=session.describe(),
        backend=be.name,
        device=be.device_description(),
        answers=[],
        findings=[],
        evaluated=[],
        over_budget=len(over),
        candidates=len(cands),
        n_total=n_total,
        rules=list(grid.rules) + [f"left out, {why}: {count} builds" for why, count in left_out.items()],
        engine=target.engine,
    )
    t0 = time.perf_counter()
    rate = measured_rate(be) if n_total else 1.0  # the coarse search's cost at N_total
    session.dataset.validate()
    cache: dict[tuple[Build, int, int, str], PointResult] = {}
    budget_pick: Finding | None = None
    # recommend reports no add times: each vector's list is assigned once per coarse quantizer
    share_lists, bench.share_lists = bench.share_lists, True
    try:
        with blas_threads(1):
            truth = bench.truth(k)
            out.dataset["ground_truth"] = session.ground_truth_said()

            curves: dict[tuple[Build, int], Curve] = {}  # the build's scans on every query, by nprobe

            def point(build: Build, p: int, r: int, store: str, also: Sequence[int] = ()) -> PointResult:
                """``build`` at nprobe p, re-ranked to depth r from ``store`` (r 0: none), on every
                query. A scan at p to depth ≥ r already made serves it (its ranking's prefix is the
                shallower ranking, for any store); otherwise one scan at p also reads the nprobes
                ``also`` below it, for the bisection to come (:func:`gpupq.nprobe_search._min_nprobe`)."""
                key = (build, p, r, store)
                if key not in cache:
                    depth = max(k, r)
                    curve = curves.get((build, p))
                    if curve is None or curve.depth < depth:
                        ps = sorted({p, *(x for x in also if x < p)})
                        curve = bench.curve(build, ps, depth)
                        for x in ps:
                            if (build, x) not in curves or curves[(build, x)].depth < depth:
                                curves[(build, x)] = curve
                    pts = bench.points(build, curve, p, k, [(r, store)] if r else [], truth)
                    for pt in pts:
                        cache[(build, p, pt.setting.rerank, pt.setting.store)] = pt
                        out.evaluated.append(pt)
                return cache[key]

            screened: dict[tuple[Build, int, str], list[PointResult]] = {}
            head = screen_queries(session.split.n_queries)

            def screen(build: Build, r: int, store: str) -> list[PointResult] | None:
                """Recall on the first ``head`` queries at nprobe 1, 2, 4, … nlist (None when the
                screening subset would be every query), from :func:`prime`'s scan."""
                if head is None:
                    return None
                if (build, r, store) not in screened:
                    prime(build, [store])
                return screened[(build, r, store)]

            def scan_head(build: Build, stores: list[str], draft: bool = False) -> dict[tuple[int, str], list[Any]]:
                """``build`` (or its draft) on the screening queries for every store asked at
                once: one scan at nlist, read at every doubling nprobe, re-ranked at every depth
                of every store; the points by (depth, store)."""
                assert head is not None
                ps = _doublings(build.nlist)
                reranks = [(r, s) for s in stores for r in depths_for[s] if r]
                curve = bench.curve(build, ps, max([k] + [r for r, _ in reranks]), head=head, draft=draft)
                found: dict[tuple[int, str], list[PointResult]] = {}
                for pts in bench.points_at(build, curve, ps, k, reranks, truth.head(head)).values():
                    for pt in pts:
                        found.setdefault((pt.setting.rerank, pt.setting.store), []).append(pt)
                return found

            def top(found: dict[tuple[int, str], list[PointResult]], store: str) -> PointResult:
                """The best point of ``store``'s depths (no store: the raw ranking)."""
                return max((p for (r, s), pts in found.items() if s == store and (r > 0) == bool(store) for p in pts),
                           key=lambda p: p.recall.mean)  # fmt: skip

            def prime(build: Build, stores: list[str]) -> None:
                """Screen ``build`` for every store asked (:func:`scan_head`), and measure what
                its draft, where it had one, fell short of it."""
                if head is None or not stores:
                    return
                found = scan_head(build, stores)
                for (r, s), pts in found.items():
                    screened[(build, r, s)] = pts
                for s in stores:
                    if (build, s) in draft_tops:
                        gaps.append(top(found, s).recall.mean - draft_tops[(build, s)])

            draft_tops: dict[tuple[Build, str], float] = {}
            gaps: list[float] = []

            def draft_screen(build: Build, stores: list[str]) -> dict[str, Finding]:
                """The stores of ``build`` that its draft (:meth:`Workbench.draft_pays`) settles
                short: best recall's 95% upper end on the screening queries below the target by
                more than the draft's margin (:data:`DRAFT_MARGIN`). The rest go on to the build.
                Nothing is settled until one build has shown what its draft fell short of it on
                this data (that first draft is a calibration)."""
                if head is None or not bench.draft_pays(build):
                    return {}
                found = scan_head(build, stores, draft=True)
                bench.drop(build, draft=True)
                margin = max([DRAFT_MARGIN] + [2 * g for g in gaps])
                settled = {}
                for s in stores:
                    best = top(found, s)
                    draft_tops[(build, s)] = best.recall.mean
                    if gaps and best.recall.ci95_high + margin < target.recall:
                        settled[s] = Finding(by_key[(build, s)], "short", None, best=best, draft=True)
                return settled

            def evaluate(cand: Candidate) -> Finding:
                found: list[tuple[PointResult, str, int | None]] = []
                best: PointResult | None = None
                for r in depths_for[cand.store]:
                    pt, verdict, more, top = _min_nprobe(
                        cand.build, r, cand.store, target.recall, point, screen(cand.build, r, cand.store)
                    )
                    best = top if best is None or top.recall.mean > best.recall.mean else best
                    if pt is not None:
                        found.append((pt, verdict, more))
                meets = [f for f in found if f[1] == "meets"]
                if meets:
                    projected: dict[int, float] = {}
                    if config.timing or target.min_qps is not None:
                        # each at its own setting, the candidate's depths interleaved: the fastest wins
                        pts = [f[0] for f in meets]
                        pairs = [(pt, companion(pt, point)) for pt in pts] if n_total else []
                        bench.time_points(pts + [c for _, c in pairs if c is not None], k, config.min_time)
                        for pt, comp in pairs:
                            projected[id(pt)] = project_point_qps(pt, comp, nb, n_total or nb, d, rate)

                    def qps(f: tuple[PointResult, str, int | None]) -> float:
                        """What --min-qps is checked against: at --n-total the projection, else as measured."""
                        return projected.get(id(f[0]), f[0].queries_per_s or 0.0)

                    fast = [f for f in meets if target.min_qps is None or qps(f) >= target.min_qps]
                    pick = max(fast or meets, key=qps)
                    return Finding(
                        cand, "meets" if fast else "slow", pick[0], best=best, projected_qps=projected.get(id(pick[0]))
                    )
                if found:  # undecided: the shallowest nprobe whose mean meets the target
                    pt, _, more = min(found, key=lambda f: (f[0].setting.nprobe, f[0].setting.rerank))
                    return Finding(cand, "undecided", pt, more_queries=more, best=best)
                return Finding(cand, "short", None, best=best)

            by_key = {(c.build, c.store): c for c in cands}
            within = target.runners_up_within if math.isfinite(target.runners_up_within) else None
            search = Frontier([Option(c.build, c.store, c.memory_bytes) for c in affordable], ANSWERS, within)
            while (step := search.next_build()) is not None:
                # the budget counts from the start (ground truth included); one build is always trained
                if target.time_budget is not None and search.verdicts and time.perf_counter() - t0 > target.time_budget:
                    out.timed_out = True
                    break
                if progress is not None:
                    progress("recommend: builds (cheapest open first)", len(search.verdicts), len(affordable))
                build, build_stores = step
                drafted = draft_screen(build, build_stores)
                prime(build, [s for s in build_stores if s not in drafted])
                for store in build_stores:
                    finding = drafted.get(store) or evaluate(by_key[(build, store)])
                    out.findings.append(finding)
                    search.record(build, store, finding.verdict)
                if bench.has(build):
                    _keep_warnings(out, bench.built(build).index.warnings)
                    bench.drop(build)  # memory stays bounded by one build's codes, whatever the space
                for key in [key for key in curves if key[0] == build]:
                    del curves[key]
            out.coverage = {**search.summary(), DRAFTED: sum(f.draft for f in out.findings)}
            met = sorted(
                (f for f in out.findings if f.verdict == "meets"),
                key=lambda f: (f.candidate.memory_bytes, f.candidate.build),
            )
            seen: set[Build] = set()
            reach = met[0].candidate.memory_bytes * target.runners_up_within if met else 0.0
            for f in met:  # one answer a build: a dearer store on the same build is no runner-up
                if f.candidate.build not in seen and len(out.answers) < ANSWERS and f.candidate.memory_bytes <= reach:
                    seen.add(f.candidate.build)
                    out.answers.append(f)
            if progress is not None:
                progress("recommend: builds (cheapest open first)", len(search.verdicts), len(affordable))
            if config.timing:  # the figures a deployer acts on: the engine's own, where it is here
                for i, f in enumerate(out.answers):
                    if progress is not None:
                        progress("recommend: answers timed on faiss-cpu", i, len(out.answers))
                    assert f.point is not None
                    f.engine_timing = faiss_timing(bench, f.point, k, session.threads, config.min_time)
            if not out.answers and over and not any(f.verdict == "undecided" for f in out.findings):
                # what the budget costs: the cheapest over it that meets the target
                over_search = Frontier([Option(c.build, c.store, c.memory_bytes) for c in over], 1)
                while (step := over_search.next_build()) is not None:
                    build, build_stores = step
                    for store in build_stores:
                        finding = evaluate(by_key[(build, store)])
                        finding.over_budget = True
                        out.findings.append(finding)
                        over_search.record(build, store, finding.verdict)
                        if finding.verdict == "meets" and (
                            budget_pick is None or finding.candidate.memory_bytes < budget_pick.candidate.memory_bytes
                        ):
                            budget_pick = finding
    except KeyboardInterrupt:
        out.interrupted = True
    finally:
        bench.share_lists = share_lists
    if out.interrupted:
        out.advice.append(
            "interrupted: the evidence below is what was evaluated before Ctrl-C; candidates not evaluated have no "
            "verdict, so a cheaper answer may exist"
        )
    else:
        if out.timed_out:
            out.advice.append(
                f"--time-budget {target.time_budget:g} s ran out with {out.coverage.get('open', 0):,} candidates "
                "neither evaluated nor ruled out: a cheaper answer may be among them; a larger budget settles it"
            )
        out.advice.extend(advice(out, target, budget_pick))
    if scale_curve and not out.interrupted and out.answers and out.answers[0].point is not None:
        from .scalecurve import scale_curve as measure_curve

        p = out.answers[0].point
        try:
            out.scale_curve = measure_curve(
                session.dataset, session.split, p.build, p.setting, k, be, config.seed, None, n_total,
                config.batch_size, progress,
            )  # fmt: skip
        except GpupqError as exc:  # the recommendation stands without its curve
            out.warnings.append(f"--scale-curve not measured: {exc}")
        except KeyboardInterrupt:
            out.interrupted = True
            out.warnings.append("--scale-curve interrupted: the recommendation stands without it")
    hint = session.metric_hint()
    if hint:
        out.warnings.append(hint)
    out.wall_s = time.perf_counter() - t0
    for b in {f.candidate.build for f in out.findings}:
        if bench.has(b):  # an interrupted run leaves some untrained: never train one for its warnings
            _keep_warnings(out, bench.built(b).index.warnings)
    return out


def _keep_warnings(out: Recommendation, warnings: list[str]) -> None:
    for w in warnings:
        if w not in out.warnings:
            out.warnings.append(w)


__all__ = ["Recommendation", "Setting", "Target", "recommend"]
