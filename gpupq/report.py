"""Rendering results as rich tables (stdout), JSON or CSV: estimates, sweeps and recommendations."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .estimate import BackendResult, EstimateResult, Timings
from .memory import NLIST_RULE
from .metrics import RECALL_DEFINITION, Recall
from .scalecurve import CAVEAT, FORMS
from .sweep import PARETO_DEFINITION, TIMING_NOTE, SweepResult
from .tables import (
    Column,
    by_id_cell,
    by_id_differs,
    bytes_short,
    dropped_note,
    fitted_table,
    latency_cell,
    rate_short,
    recall_cell,
    recall_short,
    stored_ratio,
)
from .units import format_count, human_bytes, human_rate, stored_bytes
from .verify import outside_interval


def _seconds_cell(timings: Timings, phase: str, seconds: float | None) -> str:
    """The median run, with the fastest and slowest and how many runs it is the median of."""
    if seconds is None:
        return "-"
    runs = timings.runs.get(phase)
    if runs is None or len(runs.seconds) < 2:
        return f"{seconds:.3f} s (1 run)"
    return f"{seconds:.3f} s ({min(runs.seconds):.3f}–{max(runs.seconds):.3f}, {len(runs.seconds)} runs)"


def _rate_cell(timings: Timings, phase: str, rate: float | None, work: int, unit: str) -> str:
    """A rate from the median run, with the slowest and fastest run's rates."""
    if rate is None:
        return "-"
    runs = timings.runs.get(phase)
    if runs is None or len(runs.seconds) < 2:
        return f"{human_rate(rate, unit)} (1 run)"
    slow, fast = work / max(runs.seconds), work / max(min(runs.seconds), 1e-12)
    return f"{human_rate(rate, unit)} ({format_count(slow)}–{format_count(fast)}, {len(runs.seconds)} runs)"


def _ratio(full: int, part: int) -> str:
    if not part:
        return "-"
    return f"{full / part:.1f}x smaller" if part <= full else f"{part / full:.1f}x larger"


def render(result: EstimateResult) -> Group:
    cfg = result.config
    backends = result.results
    title = Text.assemble(
        (f"{result.source}", "bold"),
        f": {result.n:,} x {result.d} {result.dtype}, metric {cfg.metric}; "
        f"base {result.n_base:,} vectors, {result.n_queries:,} "
        + (f"queries from {result.queries_source}\n" if result.queries_source else "held-out queries\n"),
        (f"{'OPQ' + str(cfg.m) + ',' if cfg.opq else ''}IVF{cfg.nlist},PQ{cfg.m}x{cfg.nbits}", "bold"),
        f"  nprobe={cfg.nprobe}  k={cfg.k}  rerank={cfg.rerank}"
        + (f" ({cfg.rerank_store} store)" if cfg.rerank else "")
        + f"  seed={cfg.seed}",
    )

    recall = Table(title=f"Recall@{cfg.k} (mean [95% interval])", title_justify="left")
    recall.add_column("")
    for r in backends:
        recall.add_column(escape(r.backend), justify="right")
    recall.add_row(f"raw (PQ distances, top {cfg.k})", *[recall_cell(r.recall) for r in backends])
    if by_id_differs([r.recall for r in backends]):
        recall.add_row("  matched by id", *[by_id_cell(r.recall) for r in backends])
    if cfg.rerank:
        recall.add_row(
            f"+ re-rank of top {cfg.rerank} ({cfg.rerank_store} vectors)",
            *[recall_cell(r.recall_rerank) for r in backends],
        )
        if by_id_differs([r.recall_rerank for r in backends]):
            recall.add_row("  matched by id", *[by_id_cell(r.recall_rerank) for r in backends])

    mem = backends[0].memory  # the same index layout on every backend
    memory = Table(title="Memory", title_justify="left")
    memory.add_column("")
    memory.add_column("bytes", justify="right")
    full = mem.vectors_fp32
    # the ratio a user cares about is against the file they hold: a float16 file is half float32
    stored = stored_bytes(full, result.dtype) if result.dtype != "float32" else None
    memory.add_column("vs float32\nvectors", justify="right")
    if stored is not None:
        memory.add_column(f"vs {result.dtype}\nas stored", justify="right")

    def row(label: str, nbytes: int, ratio: bool = False) -> None:
        cells = [label, human_bytes(nbytes), _ratio(full, nbytes) if ratio else ""]
        if stored is not None:
            cells.append(_ratio(stored, nbytes) if ratio else "")
        memory.add_row(*cells)

    memory.add_row(
        "float32 vectors (uncompressed)", human_bytes(full), "1.0x", *([_ratio(stored, full)] if stored else [])
    )
    if stored is not None:
        memory.add_row(f"{result.dtype} vectors (as stored)", human_bytes(stored), _ratio(full, stored), "1.0x")
    row(f"PQ codes ({mem.code_size} B/vector)", mem.codes, ratio=True)
    row("ids (int64)", mem.ids)
    each = f" ({mem.quantizer_copies} shards' own)" if mem.quantizer_copies > 1 else ""
    row(f"coarse centroids{each}", mem.coarse_centroids)
    row(f"PQ codebooks{each}", mem.pq_codebooks)
    row(f"inverted-list sizes{each}", mem.list_sizes)
    if mem.opq_matrix:
        row(f"OPQ rotation{each}", mem.opq_matrix)
    row("[bold]index, serialized[/bold]", mem.index_serialized, ratio=True)
    if mem.precomputed_table:
        row(f"precomputed L2 table (search){each}", mem.precomputed_table)
    row("[bold]index in memory[/bold]", mem.index_in_memory, ratio=True)
    if mem.rerank_store:
        row(f"re-rank store ({cfg.rerank_store} vectors)", mem.rerank_store)
        row("[bold]index + re-rank store[/bold]", mem.with_rerank, ratio=True)

    speed = Table(title="Work and speed", title_justify="left")
    speed.add_column("")
    for r in backends:
        speed.add_column(escape(f"{r.backend}\n{r.device}"), justify="right")
    speed.add_row("lists probed", *[f"{r.lists_probed_fraction:.2%}" for r in backends])
    speed.add_row(
        "vectors scanned / query",
        *[f"{r.vectors_scanned_fraction:.2%} ({r.vectors_scanned_per_query:,.0f})" for r in backends],
    )
    speed.add_row(
        "ground truth",
        *[
            _seconds_cell(r.timings, "ground_truth", r.timings.ground_truth_s)
            if r.timings.ground_truth_s is not None
            else "from file"
            for r in backends
        ],
    )
    execution = result.dataset.get("execution", {})
    per_shard = execution.get("training") == "per-shard"
    points = f"{backends[0].train_points_coarse:,} + {backends[0].train_points_pq:,} pts"
    speed.add_row(
        f"train, in each of {execution.get('shards')} shards: the slowest ({points} at most)"
        if per_shard
        else f"train ({points})",
        *[_seconds_cell(r.timings, "train", r.timings.train_s) for r in backends],
    )
    speed.add_row(
        "add (each shard trains first)" if per_shard else "add",
        *[_seconds_cell(r.timings, "add", r.timings.add_s) for r in backends],
    )
    speed.add_row(
        "add rate",
        *[_rate_cell(r.timings, "add", r.timings.add_vectors_per_s, result.n_base, "vec/s") for r in backends],
    )
    speed.add_row(
        f"search (batch {backends[0].timings.batch_size})",
        *[_rate_cell(r.timings, "search", r.timings.search_queries_per_s, result.n_queries, "q/s") for r in backends],
    )
    if cfg.rerank:
        speed.add_row(
            f"search + re-rank {cfg.rerank}",
            *[
                _rate_cell(r.timings, "search_rerank", r.timings.search_rerank_queries_per_s, result.n_queries, "q/s")
                for r in backends
            ],
        )
    if any(r.timings.latency is not None for r in backends):
        speed.add_row(
            "latency of one query alone (gpupq's own search"
            + (", re-ranked" if cfg.rerank else "")
            + "): p50 / p95 / p99",
            *[latency_cell(r.timings.latency) for r in backends],
        )
    if any(r.timings.modelled is not None for r in backends):
        _modelled_rows(speed, backends, cfg.rerank)
    speed.caption = (
        f"median run of each phase; host: up to {result.threads} thread{'s' if result.threads != 1 else ''}, "
        f"numpy BLAS {result.blas}"
    )
    note = result.dataset.get("execution", {}).get("timing_note")
    if note:
        speed.caption += f". In shards: {note}"
    speed.caption_justify = "left"
    parts: list[Any] = [title, recall, memory, speed]
    if result.faiss is not None:
        parts.append(_faiss_table(result))
    parts.append(_deploy_text(result.deploy))
    if result.deployment is not None:
        parts.append(_n_total_text(result.deployment.to_dict(), result))
    if result.scale_curve is not None:
        parts.append(render_scale_curve(result.scale_curve))
    if result.warnings:
        parts.append(Text("Warnings\n" + "\n".join(f"- {w}" for w in result.warnings), style="yellow"))
    parts.append(Text(f"recall: {result.recall_definition}", style="dim"))
    return Group(*parts)


def _modelled_rows(speed: Table, backends: Sequence[BackendResult], rerank: int | None) -> None:
    """The sharded phases as deployed with one machine per shard (see the caption)."""
    speed.add_row("[bold]in shards, modelled[/bold]", *["one machine a shard" for _ in backends])

    def cell(r: BackendResult, key: str, unit: str | None = None) -> str:
        m = r.timings.modelled or {}
        v = m.get(key)
        return "-" if v is None else (human_rate(v, unit) if unit else f"{v:.3f} s")

    if any(r.timings.ground_truth_s is not None for r in backends):
        speed.add_row("  ground truth", *[cell(r, "ground_truth_s") for r in backends])
    speed.add_row("  add", *[cell(r, "add_s") for r in backends])
    speed.add_row("  search", *[cell(r, "search_queries_per_s", "q/s") for r in backends])
    if rerank:
        speed.add_row(
            f"  search + re-rank {rerank}", *[cell(r, "search_rerank_queries_per_s", "q/s") for r in backends]
        )
    if any(r.timings.latency is not None for r in backends):
        speed.add_row(
            "  latency p50 / p95 / p99",
            *[latency_cell(r.timings.latency.modelled if r.timings.latency else None) for r in backends],
        )


def _faiss_table(result: EstimateResult) -> Table:
    """gpupq's first backend beside faiss-cpu on the same index, data and queries."""
    check = result.faiss
    ours = result.results[0]
    table = Table(title=f"Check against faiss-cpu {check.faiss_version}", title_justify="left")
    table.add_column("")
    table.add_column(f"gpupq ({escape(ours.backend)})", justify="right")
    table.add_column("faiss-cpu", justify="right")
    table.add_column("", justify="left")

    def verdict(a: Recall | None, b: Recall | None) -> str:
        if a is None or b is None:
            return ""
        return "[bold red]outside gpupq's 95% interval[/]" if outside_interval(a, b) else "within the interval"

    table.add_row(
        "recall raw", recall_cell(ours.recall), f"{check.recall.mean:.3f}", verdict(ours.recall, check.recall)
    )
    if check.recall_rerank is not None:
        table.add_row(
            "recall re-ranked",
            recall_cell(ours.recall_rerank),
            f"{check.recall_rerank.mean:.3f}",
            verdict(ours.recall_rerank, check.recall_rerank),
        )
    table.add_row(
        "search",
        human_rate(ours.timings.search_queries_per_s, "q/s"),
        human_rate(check.search_queries_per_s, "q/s"),
        "",
    )
    if check.search_rerank_queries_per_s is not None:
        table.add_row(
            "search + re-rank",
            human_rate(ours.timings.search_rerank_queries_per_s, "q/s"),
            human_rate(check.search_rerank_queries_per_s, "q/s"),
            "",
        )
    mem = ours.memory
    for label, bill, actual in (
        ("index, serialized", mem.index_serialized, check.index_serialized),
        ("re-rank store, serialized", mem.rerank_store, check.rerank_store),
    ):
        if actual:
            table.add_row(label, human_bytes(bill), human_bytes(actual), f"bill {100 * (bill - actual) / actual:+.2f}%")
    if check.latency is not None:
        table.add_row(
            "latency p50/p95/p99", latency_cell(ours.timings.latency), latency_cell(check.latency), "one query alone"
        )
    table.add_row("train", f"{ours.timings.train_s:.3f} s", f"{check.train_s:.3f} s", "")
    table.add_row("add", f"{ours.timings.add_s:.3f} s", f"{check.add_s:.3f} s", "")
    return table


def _deploy_text(deploy: dict[str, Any]) -> Text:
    """How to build what was measured, in FAISS and in cuVS."""
    if not deploy:
        return Text("")
    cuvs = deploy["cuvs_ivf_pq"]
    ip = cuvs["index_params"]
    lines = [
        f'FAISS: index_factory(d, "{deploy["faiss_index_factory"]}", faiss.{deploy["faiss_metric"]}); '
        f"nprobe={deploy['faiss_nprobe']}"
        + (f"; k_factor={deploy['faiss_k_factor']:g}" if deploy["faiss_k_factor"] else ""),
        "cuVS:  ivf_pq.IndexParams(" + ", ".join(f"{k}={v!r}" for k, v in ip.items()) + "), "
        f"SearchParams(n_probes={cuvs['search_params']['n_probes']})",
    ]
    lines += [f"       {note}" for note in deploy["notes"]]
    return Text("Deploy what was measured\n" + "\n".join(lines))


def _n_total_text(dep: dict[str, Any], result: EstimateResult) -> Text:
    bill = dep["memory"]
    rr = result.config.rerank
    lines = [
        f"At deployment size N_total = {dep['n_total']:,}: nlist {dep['nlist']}, nprobe {dep['nprobe']}",
        f"  codes {human_bytes(bill['codes'])}, ids {human_bytes(bill['ids'])}, index in memory "
        f"{human_bytes(bill['index_in_memory'])}"
        + (f", + re-rank store {human_bytes(bill['rerank_store'])} = {human_bytes(bill['with_rerank'])}" if rr else "")
        + f" (float32 vectors: {human_bytes(bill['vectors_fp32'])})",
        f"  {dep['rule']}; {dep['recall_note']}",
    ]
    return Text("\n".join(lines))


def render_scale_curve(curve: Any) -> Group:
    """The recall measured on nested subsamples, the fitted trend and its extrapolation."""
    table = Table(
        title=f"Recall as the collection grows ({curve.build.label}, nprobe={curve.setting.nprobe}"
        + (f", rerank {curve.setting.rerank} {curve.setting.store}" if curve.setting.rerank else "")
        + ")",
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
    )
    for col in ("vectors", "nlist", "nprobe", f"recall@{curve.k}", "raw", "scanned/query"):
        table.add_column(col, justify="right")
    for p in curve.points:
        scanned = f"{p.scanned_per_query:,.0f}"
        table.add_row(
            f"{p.n:,}", str(p.nlist), str(p.nprobe), recall_short(p.recall), recall_short(p.recall_raw), scanned
        )
    t = curve.trend
    shape = f"{t.b:+.3f} per doubling" if t.form == "log" else "flattening as N grows"
    lines = [
        f"trend: recall ≈ {t.a:.3f} {'+' if t.b >= 0 else '−'} {abs(t.b):.3g}·{FORMS[t.form][1]}, {shape} "
        f"(weighted least squares; χ²/dof {t.chi2_per_dof:.2f}"
        + (
            f"; it predicted the largest size from the others within {t.held_out_z:.1f}σ"
            if t.held_out_z is not None
            else ""
        )
        + ")"
    ]
    if curve.prediction is not None:
        mean, low, high = curve.prediction
        lines.append(
            f"at N_total = {curve.n_total:,}: recall ≈ {mean:.3f}, 95% band [{low:.3f}, {high:.3f}] (both forms), "
            f"for nlist {curve.nlist_total:,}, nprobe {curve.nprobe_total:,}"
        )
        lines.append(f"caveat: {CAVEAT}")
    elif curve.n_total is None:
        lines.append("give --n-total to extend the trend to the collection you will deploy")
    lines += curve.notes
    lines.append("method: nested random subsamples of the base, each with exact ground truth for the same queries and "
                 f"its own index; {NLIST_RULE}")  # fmt: skip
    return Group(table, Text("\n".join(lines)))


def print_result(result: EstimateResult, console: Console) -> None:
    console.print(render(result))


def to_json(obj: dict[str, Any]) -> str:
    def clean(v: Any) -> Any:
        # JSON has no Infinity; a rate too fast to time is reported as null.
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(obj), indent=2)


# ---------------------------------------------------------------------------------- sweep
#: the CSV's columns, one row per operating point (stable: scripts read them by name)
SWEEP_CSV_COLUMNS = (
    "build", "nlist", "m", "nbits", "opq", "nprobe", "rerank", "rerank_store",
    "recall", "recall_ci95_low", "recall_ci95_high", "recall_by_id",
    "recall_raw", "recall_raw_ci95_low", "recall_raw_ci95_high",
    "memory_bytes", "memory_ratio_fp32", "memory_ratio_stored", "index_bytes", "rerank_store_bytes",
    "queries_per_s", "timed_runs", "vectors_scanned_per_query", "vectors_scanned_fraction",
    "pareto_memory", "pareto_qps", "pareto_all",
)  # fmt: skip


def sweep_rows(result: SweepResult) -> list[dict[str, Any]]:
    """One flat dict per point, keyed by :data:`SWEEP_CSV_COLUMNS`."""
    rows = []
    for i, p in enumerate(result.points):
        b, s = p.build, p.setting
        rows.append(
            {
                "build": b.label, "nlist": b.nlist, "m": b.m, "nbits": b.nbits, "opq": b.opq,
                "nprobe": s.nprobe, "rerank": s.rerank, "rerank_store": s.store,
                "recall": p.recall.mean, "recall_ci95_low": p.recall.ci95_low,
                "recall_ci95_high": p.recall.ci95_high, "recall_by_id": p.recall.by_id,
                "recall_raw": p.recall_raw.mean, "recall_raw_ci95_low": p.recall_raw.ci95_low,
                "recall_raw_ci95_high": p.recall_raw.ci95_high,
                "memory_bytes": p.memory_bytes, "memory_ratio_fp32": p.memory.vectors_fp32 / p.memory_bytes,
                "memory_ratio_stored": stored_bytes(p.memory.vectors_fp32, result.dataset["dtype"]) / p.memory_bytes,
                "index_bytes": p.memory.index_in_memory, "rerank_store_bytes": p.memory.rerank_store if s.rerank else 0,
                "queries_per_s": p.queries_per_s, "timed_runs": len(p.runs.seconds) if p.runs else 0,
                "vectors_scanned_per_query": p.scanned_per_query,
                "vectors_scanned_fraction": p.scanned_fraction,
                **{f"pareto_{name}": bool(mask[i]) for name, mask in result.frontiers.items()},
            }
        )  # fmt: skip
    return rows


def sweep_csv(result: SweepResult) -> str:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=SWEEP_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in sweep_rows(result):
        writer.writerow({k: ("" if v is None else v) for k, v in row.items()})
    return buf.getvalue()


def _marks(result: SweepResult, i: int) -> str:
    f = result.frontiers
    return "".join(mark for name, mark in (("memory", "M"), ("qps", "Q"), ("all", "*")) if f.get(name) and f[name][i])


def render_sweep(result: SweepResult, frontier_only: bool = False, width: int = 80) -> Group:
    ds = result.dataset
    head = Text(
        f"{ds['source']}: {ds['n_base']:,} base vectors × {ds['d']} ({ds['metric']}), "
        f"{ds['n_queries']:,} queries ({ds['queries_source']}); recall@{result.k}; "
        f"{result.backend} on {result.device}"
    )
    ratio_header, itemsize = stored_ratio(ds["dtype"])
    columns: list[Column] = [
        ("index", "left", 0), ("nprobe", "right", 0), ("rerank", "left", 0), (f"recall@{result.k}", "right", 0),
        ("raw", "right", 4), ("memory", "right", 0), (ratio_header, "right", 2), ("q/s", "right", 1),
        ("scanned", "right", 3), ("P", "left", 0),
    ]  # fmt: skip
    rows = []
    for i, p in enumerate(result.points):
        marks = _marks(result, i)
        if frontier_only and not marks:
            continue
        s = p.setting
        stored = p.memory.vectors_fp32 / 4 * itemsize
        rows.append([
            p.build.label, str(s.nprobe), f"{s.rerank} {s.store}" if s.rerank else "-", recall_short(p.recall),
            recall_short(p.recall_raw) if s.rerank else "", bytes_short(p.memory_bytes),
            f"{stored / p.memory_bytes:.1f}x", rate_short(p.queries_per_s), f"{p.scanned_per_query:,.0f}", marks,
        ])  # fmt: skip
    shown = len(rows)
    title = "Operating points" + (" on a Pareto frontier" if frontier_only else "")
    table, dropped = fitted_table(title, columns, rows, width)
    per_shard = ds.get("execution", {}).get("training") == "per-shard"
    title = (
        "Builds (each shard trains its own quantizers as it adds: train is the slowest shard's)"
        if per_shard
        else "Builds (coarse quantizer trained once per nlist, shared)"
    )
    builds = Table(title=title, title_justify="left")
    for col in ("index", "coarse train", "PQ train" if not per_shard else "train", "add"):
        builds.add_column(col, justify="left" if col == "index" else "right")
    for b in result.builds:
        said = b.cached or ""
        whole = said.startswith("build cached")  # one pass: all of it read back
        quantizers = whole or "quantizers cached" in said
        shards = next((s for s in said.split("; ") if "shards' lists" in s), "")
        builds.add_row(
            escape(b.build.label),
            "cached"
            if quantizers
            else "in shards"
            if per_shard
            else "shared"
            if b.coarse_shared
            else f"{b.coarse_train_s:.2f} s",
            "cached" if quantizers else f"{b.pq_train_s:.2f} s",
            "cached" if whole else f"{b.add_s:.2f} s" + (f" ({shards})" if shards else ""),
        )
    raw = human_bytes(result.points[0].memory.vectors_fp32 / 4 * itemsize) if result.points else "-"
    notes = [
        f"recall@{result.k}: mean ± half its 95% interval; raw: the PQ ranking before re-ranking; "
        f"{ratio_header}: the vectors as stored ({ds['dtype']}) over the point's memory; q/s: queries per "
        "second; scanned: codes scanned per query.",
        *dropped_note(dropped),
        f"P (Pareto): M = recall vs memory, Q = recall vs queries/s, * = all three; {PARETO_DEFINITION}.",
        (
            "queries/s: "
            + TIMING_NOTE
            + (f", runs covering at least {result.min_time:g} s" if result.min_time else ", one run")
            if result.timed
            else "queries/s not measured (--no-timing); scanned/query is the hardware-independent cost"
        ),
        "memory: the index in memory (codes, ids, centroids, codebooks, precomputed table) plus the re-rank "
        f"store when the point re-ranks; {ratio_header} compares with the {raw} of the vectors as stored.",
        f"recall: {RECALL_DEFINITION}",
    ]
    notes += [f"grid: {rule}" for rule in result.grid.rules]
    gt = f"ground truth {result.ground_truth_s:.2f} s, " if result.ground_truth_s is not None else ""
    notes.append(
        f"{len(result.points)} points ({shown} shown) from {len(result.builds)} builds in {result.wall_s:.1f} s "
        f"({gt}{result.threads} threads, {result.blas})"
    )
    if result.interrupted:
        notes.insert(0, "INTERRUPTED: the points measured before Ctrl-C; the grid is incomplete.")
    parts: list[Any] = [head, table, builds, Text("\n".join(notes), style="dim")]
    if result.deployment:
        parts.append(_deployment_text(result.deployment))
    return Group(*parts)


def _deployment_text(dep: dict[str, Any]) -> Text:
    lines = [f"At deployment size N_total = {dep['n_total']:,} ({dep['rule']}; {dep['recall_note']}):"]
    for row in dep["frontier"]:
        lines.append(
            f"  {row['build']} nprobe={row['nprobe']}"
            + (f" rerank {row['rerank']} ({row['rerank_store']})" if row["rerank"] else "")
            + f"  ->  nlist={row['nlist_total']} nprobe={row['nprobe_total']}: {human_bytes(row['memory_bytes_total'])}"
            f" (measured recall {row['recall']:.3f})"
        )
    return Text("\n".join(lines))
