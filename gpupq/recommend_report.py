"""Rendering a recommendation as rich tables: the answer, its evidence and how the space was covered."""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.text import Text

from .engine import DRAFT_NITER, DRAFT_POINTS_PER_CENTROID
from .frontier import BEYOND
from .memory import NLIST_RULE, RECALL_CAVEAT
from .nprobe_search import SCREEN_QUERIES
from .projection import THROUGHPUT_NOTE
from .recommend import ANSWERS, DRAFT_MARGIN, DRAFTED, Recommendation, deploy_for
from .report import _deploy_text, render_scale_curve
from .tables import (
    Column,
    bytes_short,
    count_short,
    dropped_note,
    fitted_table,
    latency_cell,
    rate_short,
    recall_short,
)
from .units import human_bytes


def _coverage_line(rec: Recommendation) -> str:
    """How much of the space the search covered, and by which rule it left the rest."""
    cov = dict(rec.coverage)
    total, evaluated, left = cov.pop("candidates", rec.candidates), cov.pop("evaluated", 0), cov.pop("open", 0)
    drafted = cov.pop(DRAFTED, 0)
    parts = [f"{n:,} ruled out as {why}" for why, n in cov.items()]
    if rec.over_budget:
        parts.append(f"{rec.over_budget:,} over the memory budget")
    if left:
        parts.append(f"{left:,} left open" + (" when --time-budget ran out" if rec.timed_out else ""))
    return (
        f"space: {rec.candidates:,} candidates on {rec.engine}; {evaluated:,} of the {total:,} within budget evaluated"
        + (f" ({drafted:,} found short on a draft build alone)" if drafted else "")
        + (f", {', '.join(parts)}" if parts else "")
        + f"; {len(rec.evaluated):,} points measured, in {rec.wall_s:.1f} s"
    )


def _engine_line(rec: Recommendation) -> str | None:
    """The answers timed on faiss-cpu, labelled as its figures (gpupq.faiss_timing)."""
    timed = [(i, f.engine_timing) for i, f in enumerate(rec.answers) if f.engine_timing is not None]
    if not timed:
        return None
    cells = [
        f"{'best' if i == 0 else f'#{i + 1}'} {rate_short(t.queries_per_s)} q/s, one query "
        f"{latency_cell(t.latency)} p50/p95/p99, recall {t.recall.mean:.3f}"
        for i, t in timed
    ]
    head = f"{timed[0][1].library} on the same index, timed here (its own figures, not gpupq's scan): "
    return head + "; ".join(cells)


def _table_line(rec: Recommendation) -> str | None:
    """The precomputed-table choice of the answer, when the engine has one to make."""
    c = rec.answers[0].candidate if rec.answers else None
    if c is None or not c.table_bytes:
        return None
    return (
        f"{rec.engine}: billed without FAISS's precomputed L2 table (the deploy notes say how to skip it); "
        f"keeping it costs {human_bytes(c.table_bytes)} more and speeds up each probed list"
    )


def render_recommendation(rec: Recommendation, width: int = 80) -> Group:
    t = rec.target
    ds = rec.dataset
    cons = [f"recall@{rec.k} ≥ {t.recall} (95% interval's lower end)"]
    if t.memory_budget is not None:
        cons.append(f"memory ≤ {human_bytes(t.memory_budget)}" + (f" at N={rec.n_total:,}" if rec.n_total else ""))
    if t.min_qps is not None:
        cons.append(f"≥ {t.min_qps:,.0f} queries/s")
    if not t.rerank:
        cons.append("no re-ranking")
    parts: list[Any] = [
        Text(
            f"{ds['source']}: {ds['n_base']:,} base vectors × {ds['d']} ({ds['metric']}), {ds['n_queries']:,} queries; "
            f"{rec.backend} on {rec.device}\nTarget: " + ", ".join(cons)
        )
    ]
    at_n = f" at N={count_short(rec.n_total)}" if rec.n_total else ""
    dropped: list[str] = []
    for f in rec.cheaper_undecided()[:1]:  # the headline: the answer may not be the cheapest
        assert f.point is not None
        r = f.point.recall
        parts.append(
            Text(
                f"Undecided, and cheaper than the answer: {f.candidate.label} ({bytes_short(f.candidate.memory_bytes)}"
                f"{at_n}) at {f.point.setting.label}, recall {r.mean:.3f} (95% interval {r.ci95_low:.3f}–"
                f"{r.ci95_high:.3f}); "
                + (
                    f"about {f.more_queries:,} more queries (--queries {r.queries + f.more_queries:,}) would "
                    "decide whether it meets the target"
                    if f.more_queries is not None
                    else "its mean is at the target, so more queries alone may not decide it"
                ),
                style="bold",
            )
        )
    if verdict_n := rec.verdict_at_n():
        parts.append(Text(f"{rec.answers[0].candidate.label}: {verdict_n}", style="bold"))
    if rec.answers:
        columns: list[Column] = [
            ("", "left", 0), ("index", "left", 0), ("nprobe", "right", 0), ("rerank", "left", 0),
            (f"recall@{rec.k}", "right", 0), (f"memory\n{at_n.strip()}" if at_n else "memory", "right", 0),
            ("q/s", "right", 1), ("scanned", "right", 2),
        ]  # fmt: skip
        if rec.n_total:
            columns.insert(7, (f"q/s {at_n.strip()}\nprojected", "right", 1))
        rows = []
        for i, f in enumerate(rec.answers):
            p = f.point
            assert p is not None
            s = p.setting
            rows.append([
                "best" if i == 0 else f"#{i + 1}", p.build.label, str(s.nprobe),
                f"{s.rerank} {s.store}" if s.rerank else "-",
                recall_short(p.recall), bytes_short(f.candidate.memory_bytes), rate_short(p.queries_per_s),
                f"{p.scanned_per_query:,.0f}",
            ])  # fmt: skip
            if rec.n_total:
                rows[-1].insert(7, rate_short(f.projected_qps))
        table, dropped = fitted_table("Cheapest configurations that meet the target", columns, rows, width)
        parts.append(table)
        if len(rec.answers) < ANSWERS and rec.coverage.get(BEYOND):
            parts.append(
                Text(
                    f"No other build within {rec.target.runners_up_within:g}× the best's memory meets the target "
                    "(runners-up are sought that far; --runners-up-within inf looks further)"
                )
            )
        best = rec.answers[0]
        assert best.point is not None
        dep = deploy_for(best.point, best.candidate, ds["n_base"], rec.k, ds["metric"])
        parts.append(_deploy_text(dep))
        if table_line := _table_line(rec):
            parts.append(Text(table_line))
        if engine_line := _engine_line(rec):
            parts.append(Text(engine_line))
    else:
        parts.append(Text("No configuration evaluated meets every constraint.", style="bold"))
    for tip in rec.advice:
        parts.append(Text(tip))
    columns = [
        ("index", "left", 0), ("store", "left", 0), (f"memory\n{at_n.strip()}" if at_n else "memory", "right", 0),
        ("verdict", "left", 0),
        ("nprobe", "right", 0), ("rerank", "right", 0), (f"recall@{rec.k}", "right", 0), ("q/s", "right", 1),
    ]  # fmt: skip
    rows = []
    nq = ds["n_queries"]
    for f in sorted(rec.findings, key=lambda f: (f.over_budget, f.candidate.memory_bytes)):
        p = f.point or f.best
        rows.append([
            f.candidate.build.label,
            f.candidate.store or "-",
            bytes_short(f.candidate.memory_bytes),
            f.verdict
            + (" (draft)" if f.draft else "")
            + (" (screened)" if p and f.verdict == "short" and not f.draft and p.recall.queries < nq else "")
            + (f" (+{f.more_queries}q)" if f.more_queries else "")
            + (" (over budget)" if f.over_budget else ""),
            str(p.setting.nprobe) if p else "-",
            str(p.setting.rerank or "-") if p else "-",
            recall_short(p.recall) if p else "-",
            rate_short(p.queries_per_s) if p else "-",
        ])  # fmt: skip
    evaluated, more = fitted_table("Evidence: every candidate evaluated, cheapest first", columns, rows, width)
    dropped += [c for c in more if c not in dropped]
    parts.append(evaluated)
    if rec.scale_curve is not None:
        parts.append(render_scale_curve(rec.scale_curve))
    notes = [
        f"recall@{rec.k}: mean ± half its 95% interval; memory: the index as {rec.engine} holds it (+ re-rank "
        + (f"store) at N={rec.n_total:,}" if rec.n_total else "store)")
        + "; q/s: queries per second, timed at the point's own setting; scanned: codes per query",
        *dropped_note(dropped),
        "verdict: meets (lower end ≥ target), undecided (interval straddles it; +q: queries that would decide), "
        f"short (the best seen is shown; screened: its interval on the first {SCREEN_QUERIES} queries is wholly below "
        f"the target at every nprobe; draft: that interval, on a build whose PQ trained on {DRAFT_POINTS_PER_CENTROID} "
        f"points a centroid for {DRAFT_NITER} iterations, is at least {DRAFT_MARGIN} below it), slow (meets recall, "
        "below --min-qps)",
        _coverage_line(rec),
    ]
    if rec.n_total:
        notes.append(f"memory at N={rec.n_total:,}: {NLIST_RULE}; {RECALL_CAVEAT}")
        notes.append(f"q/s at N: {THROUGHPUT_NOTE}")
    notes += [f"grid: {rule}" for rule in rec.rules]
    parts.append(Text("\n".join(notes), style="dim"))
    return Group(*parts)
