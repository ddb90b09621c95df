"""Rendering an :class:`EstimateResult` as rich tables (stdout) or JSON."""

from __future__ import annotations

import json
import math
from typing import Any

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .estimate import EstimateResult, Timings
from .metrics import Recall
from .verify import outside_interval


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000.0
    return f"{n:.2f} TB"


def _scaled(x: float) -> tuple[float, str]:
    """x in units of G, M or k where it reaches them: (value, suffix)."""
    for scale, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if x >= scale:
            return x / scale, suffix
    return x, ""


def human_rate(x: float | None, unit: str) -> str:
    if x is None:
        return "-"
    if math.isinf(x):
        return f"> 1e9 {unit}"
    value, suffix = _scaled(x)
    return f"{value:.2f} {suffix}{unit}" if suffix else f"{x:.1f} {unit}"


def _recall_cell(r: Recall | None) -> str:
    if r is None:
        return "-"
    return f"{r.mean:.3f}  [{r.ci95_low:.3f}, {r.ci95_high:.3f}]"


def _by_id_differs(recalls: list[Recall | None]) -> bool:
    """Is the id-intersection figure worth showing beside any of these (it differs when ties
    make the exact top-k ambiguous)?"""
    return any(r is not None and r.by_id is not None and abs(r.by_id - r.mean) >= 5e-4 for r in recalls)


def _by_id_cell(r: Recall | None) -> str:
    return "-" if r is None or r.by_id is None else f"{r.by_id:.3f}"


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
    return f"{human_rate(rate, unit)} ({_compact(slow)}–{_compact(fast)}, {len(runs.seconds)} runs)"


def _compact(x: float) -> str:
    """3 significant figures with a k/M/G suffix: 25.1k."""
    value, suffix = _scaled(x)
    return f"{value:.3g}{suffix}"


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
    recall.add_row(f"raw (PQ distances, top {cfg.k})", *[_recall_cell(r.recall) for r in backends])
    if _by_id_differs([r.recall for r in backends]):
        recall.add_row("  matched by id", *[_by_id_cell(r.recall) for r in backends])
    if cfg.rerank:
        recall.add_row(
            f"+ re-rank of top {cfg.rerank} ({cfg.rerank_store} vectors)",
            *[_recall_cell(r.recall_rerank) for r in backends],
        )
        if _by_id_differs([r.recall_rerank for r in backends]):
            recall.add_row("  matched by id", *[_by_id_cell(r.recall_rerank) for r in backends])

    mem = backends[0].memory  # the same index layout on every backend
    memory = Table(title="Memory", title_justify="left")
    memory.add_column("")
    memory.add_column("bytes", justify="right")
    memory.add_column("vs float32 vectors", justify="right")
    full = mem.vectors_fp32
    memory.add_row("float32 vectors (uncompressed)", human_bytes(full), "1.0x")
    memory.add_row(f"PQ codes ({mem.code_size} B/vector)", human_bytes(mem.codes), _ratio(full, mem.codes))
    memory.add_row("ids (int64)", human_bytes(mem.ids), "")
    memory.add_row("coarse centroids", human_bytes(mem.coarse_centroids), "")
    memory.add_row("PQ codebooks", human_bytes(mem.pq_codebooks), "")
    memory.add_row("inverted-list sizes", human_bytes(mem.list_sizes), "")
    if mem.opq_matrix:
        memory.add_row("OPQ rotation", human_bytes(mem.opq_matrix), "")
    memory.add_row(
        "[bold]index, serialized[/bold]", human_bytes(mem.index_serialized), _ratio(full, mem.index_serialized)
    )
    if mem.precomputed_table:
        memory.add_row("precomputed L2 table (search)", human_bytes(mem.precomputed_table), "")
    memory.add_row("[bold]index in memory[/bold]", human_bytes(mem.index_in_memory), _ratio(full, mem.index_in_memory))
    if mem.rerank_store:
        memory.add_row(f"re-rank store ({cfg.rerank_store} vectors)", human_bytes(mem.rerank_store), "")
        memory.add_row(
            "[bold]index + re-rank store[/bold]", human_bytes(mem.with_rerank), _ratio(full, mem.with_rerank)
        )

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
    speed.add_row(
        f"train ({backends[0].train_points_coarse:,} + {backends[0].train_points_pq:,} pts)",
        *[_seconds_cell(r.timings, "train", r.timings.train_s) for r in backends],
    )
    speed.add_row("add", *[_seconds_cell(r.timings, "add", r.timings.add_s) for r in backends])
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
    speed.caption = (
        f"median run of each phase; host: up to {result.threads} thread{'s' if result.threads != 1 else ''}, "
        f"numpy BLAS {result.blas}"
    )
    speed.caption_justify = "left"
    parts: list[Any] = [title, recall, memory, speed]
    if result.faiss is not None:
        parts.append(_faiss_table(result))
    parts.append(_deploy_text(result.deploy))
    if result.warnings:
        parts.append(Text("Warnings\n" + "\n".join(f"- {w}" for w in result.warnings), style="yellow"))
    parts.append(Text(f"recall: {result.recall_definition}", style="dim"))
    return Group(*parts)


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
        "recall raw", _recall_cell(ours.recall), f"{check.recall.mean:.3f}", verdict(ours.recall, check.recall)
    )
    if check.recall_rerank is not None:
        table.add_row(
            "recall re-ranked",
            _recall_cell(ours.recall_rerank),
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
