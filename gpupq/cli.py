"""The ``gpupq`` command: parse, call the library, render. No algorithm lives here.

Options every command shares are declared once in :mod:`gpupq.cli_options` (typer declares options per command, so
each command names the same aliases); their help and defaults come from
:data:`gpupq.params.PARAMS`, where the library's checks find the same rules.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from . import __version__
from .backends import CupyBackend, NumpyBackend, cupy_status
from .cli_options import (
    _D,
    _K,
    _N,
    BackendChoice,
    RerankStoreChoice,
    VerifyChoice,
    _Backend,
    _Batch,
    _Cache,
    _cache,
    _cluster,
    _Column,
    _Data,
    _Fmt,
    _GpuWorkers,
    _Inflate,
    _Json,
    _Lists,
    _Metric,
    _Name,
    _Npy,
    _NTotal,
    _opt,
    _PointMinTime,
    _Queries,
    _QueriesFile,
    _Quiet,
    _Report,
    _Scheduler,
    _Seed,
    _ShardRows,
    _ShardTraining,
    _Synthetic,
    _Threads,
    _Workers,
    _Yes,
)
from .cluster import ClusterConfig
from .engines import DEFAULT_ENGINE, ENGINES
from .errors import GpupqError
from .estimate import MIN_TIMED_S, EstimateConfig, estimate
from .grid import grid_from_options
from .htmlreport import recommend_page, sweep_page
from .io import Inputs, is_collection, make_synthetic, open_inputs
from .outputs import check_outputs, write_output
from .params import PARAMS, check, help_for
from .plan import Plan
from .plot import render, require_matplotlib, terminal_plot
from .recommend import DEFAULT_STORES, RUNNERS_UP_WITHIN, Target, default_queries, recommend, recommend_plan
from .recommend_report import render_recommendation
from .report import print_result, render_sweep, sweep_csv, to_json
from .session import POINT_MIN_TIME, RunConfig, Session, open_session
from .sweep import sweep, sweep_plan
from .terminal import OneLineGroup, err, fail, out, progress_reporter, stdout_guard, user_errors
from .units import parse_count, parse_size
from .verify import faiss_version

app = typer.Typer(
    cls=OneLineGroup,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # click's plain help: flags show as flags (typer's rich help labels them "<bool>")
    rich_markup_mode=None,
    help="Estimate what IVF-PQ compression does to your vectors: memory, recall@k and speed.",
)


def _show_version(value: bool) -> None:
    if value:
        out.print(f"gpupq {__version__}", markup=False, highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_show_version, is_eager=True, help="print the version and exit"),
    ] = False,
) -> None:
    """Estimate what IVF-PQ compression does to your vectors: memory, recall@k and speed."""


def _open_inputs(
    npy: Path | None,
    data: Path | None,
    fmt: Any,
    name: str | None,
    column: str | None,
    inflate_limit: str | None,
    synthetic: bool,
    n: int,
    d: int,
    seed: int,
    metric: Any,
    queries_file: Path | None,
) -> Inputs:
    """The input options every command shares -> io.Inputs (notes printed on stderr)."""
    if sum((npy is not None, data is not None, synthetic)) != 1:
        fail("give exactly one of --data PATH, --npy PATH or --synthetic")
    fmt_name = fmt.value if fmt is not None else None
    if npy is not None:  # pqtool.py's flag: always one .npy file
        if is_collection(str(npy)):
            what = "is a directory" if npy.is_dir() else "no such file"
            fail(f"{npy}: {what}; --npy reads one .npy file (--data reads a folder or a pattern of files)")
        data, fmt_name = npy, "npy"
    metric_name = metric.value if metric is not None else None
    check("seed", seed)
    limit = None
    if inflate_limit is not None:
        try:
            limit = parse_size(inflate_limit)
        except GpupqError as exc:
            fail(f"--inflate-limit {exc}")
    source = data if data is not None else make_synthetic(n, d, seed, metric_name or "l2")
    inputs = open_inputs(source, fmt_name, name, column, metric_name, queries_file, inflate_limit=limit)
    for note in inputs.notes:
        err.print(note, markup=False, highlight=False, soft_wrap=True)
    return inputs


def _queries(queries: int | None, inputs: Inputs, held_out: int | None = None) -> int:
    """--queries, else every row of a query file, else ``held_out`` (default 100) held out."""
    if queries is not None:
        return queries
    return inputs.queries.n if inputs.queries is not None else (held_out or PARAMS["queries"].default)


def _run_config(
    inputs: Inputs, k: int, queries: int | None, seed: int, batch_size: int, threads: int | None, min_time: float,
    timing: bool, n_total: int | None, held_out: int | None = None, cluster: ClusterConfig | None = None,
    cache: str | None = None,
) -> RunConfig:  # fmt: skip
    """The run settings of sweep and recommend, the metric the inputs were opened with."""
    return RunConfig(
        k=k, queries=_queries(queries, inputs, held_out), metric=inputs.dataset.metric, seed=seed,
        batch_size=batch_size, threads=threads, min_time=min_time, timing=timing, n_total=n_total, cluster=cluster,
        cache=cache,
    )  # fmt: skip


def _count(text: str | None, option: str) -> int | None:
    """A count such as 50000000, 50M or 1.5B, or None when not given."""
    return None if text is None else parse_count(text, option)


def _warn(lines: list[str]) -> None:
    for w in lines:
        err.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)


@contextmanager
def _session(inputs: Inputs, cfg: RunConfig, backend: BackendChoice, progress: Any) -> Iterator[Session]:
    session = open_session(
        inputs.dataset, cfg, backend.value, progress, inputs.queries, inputs.ground_truth, inputs.ground_truth_source
    )
    try:
        yield session
    finally:
        session.close()


def _plan(plan: Plan, yes: bool, quiet: bool) -> None:
    """Say what is about to run (stderr), then refuse what does not fit or is not confirmed."""
    if not quiet:
        err.print(plan.describe(), markup=False, highlight=False, soft_wrap=True)
    plan.check(yes)


def _emit_json(obj: dict[str, Any]) -> None:
    with stdout_guard():
        sys.stdout.write(to_json(obj) + "\n")


# ---------------------------------------------------------------------------------- estimate
@app.command("estimate", short_help="Measure one IVF-PQ setting on your vectors: recall, memory, speed.")
def estimate_cmd(
    npy: _Npy = None,
    data: _Data = None,
    fmt: _Fmt = None,
    name: _Name = None,
    column: _Column = None,
    inflate_limit: _Inflate = None,
    synthetic: _Synthetic = False,
    n: _N = 10000,
    d: _D = 64,
    m: Annotated[int, _opt("--m", help=help_for("m"))] = PARAMS["m"].default,
    nbits: Annotated[int, _opt("--nbits", help=help_for("nbits"))] = PARAMS["nbits"].default,
    nlist: Annotated[int, _opt("--nlist", help=help_for("nlist"))] = PARAMS["nlist"].default,
    nprobe: Annotated[int, _opt("--nprobe", help=help_for("nprobe"))] = PARAMS["nprobe"].default,
    rerank: Annotated[int, _opt("--rerank", help=help_for("rerank"))] = PARAMS["rerank"].default,
    rerank_store: Annotated[
        RerankStoreChoice,
        _opt(
            "--rerank-store",
            case_sensitive=False,
            help="precision of the vectors kept for re-ranking (default fp32: "
            "the exact vectors, the recall re-ranking can reach; sweep and recommend weigh the cheaper stores)",
        ),
    ] = RerankStoreChoice.fp32,  # type: ignore[attr-defined]
    opq: Annotated[
        bool, _opt("--opq", help="rotate with OPQ before IVF-PQ, as FAISS's OPQ{m} prefix (one index: on or off)")
    ] = False,
    k: _K = 10,
    queries: _Queries = None,
    queries_file: _QueriesFile = None,
    metric: _Metric = None,
    backend: Annotated[
        BackendChoice,
        _opt(
            "--backend",
            case_sensitive=False,
            help="auto: CuPy when usable, else numpy; all: every usable backend side by side",
        ),
    ] = BackendChoice.auto,
    verify: Annotated[
        VerifyChoice | None,
        _opt("--verify", case_sensitive=False, help="also build the same index with faiss-cpu, side by side"),
    ] = None,
    seed: _Seed = 0,
    batch_size: _Batch = 1024,
    threads: _Threads = None,
    workers: _Workers = None,
    gpu_workers: _GpuWorkers = None,
    scheduler: _Scheduler = None,
    shard_rows: _ShardRows = None,
    shard_training: _ShardTraining = "global",
    cache: _Cache = None,
    min_time: Annotated[
        float | None,
        _opt(
            "--min-time",
            help=f"seconds of runs each timed phase covers, the median run reported (default {MIN_TIMED_S:g}: "
            "a few phases, each steady; sweep and recommend time many points and use less)",
        ),
    ] = None,
    n_total: _NTotal = None,
    scale_curve: Annotated[
        bool,
        _opt(
            "--scale-curve", help="also measure recall on nested subsamples (N/8..N) and extend the trend to --n-total"
        ),
    ] = False,
    json_out: _Json = False,
    quiet: _Quiet = False,
) -> None:
    """Build IVF-PQ over your vectors (or synthetic ones) and report recall, memory and speed."""
    with user_errors():
        total = _count(n_total, "--n-total")
        inputs = _open_inputs(npy, data, fmt, name, column, inflate_limit, synthetic, n, d, seed, metric, queries_file)
        config = EstimateConfig(
            m=m,
            nlist=nlist,
            nprobe=nprobe,
            nbits=nbits,
            k=k,
            rerank=rerank,
            rerank_store=rerank_store.value,
            opq=opq,
            queries=_queries(queries, inputs),
            metric=inputs.dataset.metric,
            seed=seed,
            batch_size=batch_size,
            threads=threads,
            min_time=min_time,
        )
        config.check()
        with progress_reporter(not quiet) as progress:
            result = estimate(
                inputs.dataset,
                config,
                backend.value,
                progress=progress,
                queries=inputs.queries,
                verify=verify.value if verify is not None else None,
                ground_truth=inputs.ground_truth,
                ground_truth_source=inputs.ground_truth_source,
                n_total=total,
                scale_curve=scale_curve,
                cluster=_cluster(workers, scheduler, shard_rows, shard_training, gpu_workers),
                cache=_cache(cache, npy, data, queries_file),
            )
    for backend_name, why in result.skipped.items():
        err.print(f"skipped backend {backend_name}: {why}", markup=False, highlight=False, soft_wrap=True)
    _warn(result.warnings)
    if json_out:
        _emit_json(result.to_dict())
    else:
        with stdout_guard():
            print_result(result, out)


# ---------------------------------------------------------------------------------- sweep
@app.command("sweep", short_help="Measure a grid of settings from shared work, with its Pareto frontiers.")
def sweep_cmd(
    npy: _Npy = None,
    data: _Data = None,
    fmt: _Fmt = None,
    name: _Name = None,
    column: _Column = None,
    inflate_limit: _Inflate = None,
    synthetic: _Synthetic = False,
    n: _N = 10000,
    d: _D = 64,
    m: Annotated[
        str | None, _opt("--m", help=f"PQ sub-quantizers: {_Lists} (default: code sizes 8 to d/2 bytes)")
    ] = None,
    nlist: Annotated[str | None, _opt("--nlist", help=f"IVF lists: {_Lists} (default: 4√N to 16√N)")] = None,
    nbits: Annotated[str | None, _opt("--nbits", help="bits per code: comma list (default 8)")] = None,
    nprobe: Annotated[
        str | None, _opt("--nprobe", help=f"lists probed: {_Lists} (default: doubling until recall stops rising)")
    ] = None,
    rerank: Annotated[str | None, _opt("--rerank", help="re-rank depths, 0 = none: comma list (default 0,100)")] = None,
    rerank_store: Annotated[
        str | None,
        _opt(
            "--rerank-store",
            help="stores for re-ranking: fp32,fp16,sq8 (default fp16: half fp32's memory, same ranking in practice)",
        ),
    ] = None,
    opq: Annotated[
        str | None, _opt("--opq", help="off, on or off,on: a list, as every axis of a grid (default off)")
    ] = None,
    k: _K = 10,
    queries: _Queries = None,
    queries_file: _QueriesFile = None,
    metric: _Metric = None,
    backend: _Backend = BackendChoice.auto,
    seed: _Seed = 0,
    batch_size: _Batch = 1024,
    threads: _Threads = None,
    workers: _Workers = None,
    gpu_workers: _GpuWorkers = None,
    scheduler: _Scheduler = None,
    shard_rows: _ShardRows = None,
    shard_training: _ShardTraining = "global",
    cache: _Cache = None,
    min_time: _PointMinTime = POINT_MIN_TIME,
    no_timing: Annotated[bool, _opt("--no-timing", help="measure recall and scanned only (fastest)")] = False,
    n_total: _NTotal = None,
    json_out: _Json = False,
    csv_out: Annotated[str | None, _opt("--csv", help="write every point to this CSV file")] = None,
    plot: Annotated[
        str | None, _opt("--plot", help="draw the frontiers to this .png, .pdf or .svg file (needs gpupq[plot])")
    ] = None,
    all_points: Annotated[bool, _opt("--all", help="table every point, not only the Pareto frontiers")] = False,
    report: _Report = None,
    yes: _Yes = False,
    quiet: _Quiet = False,
) -> None:
    """Every operating point of a grid from shared work: recall, memory, queries/s, Pareto frontiers."""
    with user_errors():
        grid = grid_from_options(m, nlist, nbits, nprobe, rerank if rerank is not None else "0,100", rerank_store, opq)
        total = _count(n_total, "--n-total")
        # every output checked against every input and the other outputs before any work
        outputs = check_outputs(
            [("--csv", csv_out, "csv"), ("--plot", plot, "plot"), ("--report", report, "html")],
            [npy, data, queries_file],
        )
        if plot is not None or report is not None:
            require_matplotlib()
        inputs = _open_inputs(npy, data, fmt, name, column, inflate_limit, synthetic, n, d, seed, metric, queries_file)
        cfg = _run_config(
            inputs, k, queries, seed, batch_size, threads, min_time, not no_timing, total,
            cluster=_cluster(workers, scheduler, shard_rows, shard_training, gpu_workers),
            cache=_cache(cache, npy, data, queries_file),
        )  # fmt: skip
        with progress_reporter(not quiet, eta=True) as progress, _session(inputs, cfg, backend, progress) as session:
            _plan(sweep_plan(session, grid, cfg), yes, quiet)
            result = sweep(session, grid, cfg, progress)
        for target in outputs:
            if result.interrupted:  # never over a complete earlier file: a name that says partial
                target = target.partial
            if target.fmt == "csv":
                data_out = sweep_csv(result).encode("utf-8")
            elif target.fmt == "html":
                data_out = sweep_page(result).encode("utf-8")
            else:
                data_out = render(result, target.fmt)
            write_output(target, data_out)
            if result.interrupted:
                err.print(f"partial results written to {target.path}", markup=False, highlight=False)
    _warn(result.warnings)
    if result.interrupted:
        err.print("interrupted: showing the points measured so far", markup=False)
    if json_out:
        _emit_json(result.to_dict())
    else:
        with stdout_guard():
            out.print(render_sweep(result, frontier_only=not all_points, width=out.width))
            if out.is_terminal and result.points:
                out.print(terminal_plot(result), markup=False, highlight=False)
    if result.interrupted:
        raise typer.Exit(130)


# ---------------------------------------------------------------------------------- recommend
@app.command("recommend", short_help="The cheapest setting in memory that meets a recall target.")
def recommend_cmd(
    target_recall: Annotated[float, _opt("--target-recall", help=PARAMS["target_recall"].help)],
    npy: _Npy = None,
    data: _Data = None,
    fmt: _Fmt = None,
    name: _Name = None,
    column: _Column = None,
    inflate_limit: _Inflate = None,
    synthetic: _Synthetic = False,
    n: _N = 10000,
    d: _D = 64,
    memory_budget: Annotated[
        str | None,
        _opt("--memory-budget", help="most memory the index (+ store) may take, e.g. 8GB (at --n-total when given)"),
    ] = None,
    min_qps: Annotated[float | None, _opt("--min-qps", help=PARAMS["min_qps"].help)] = None,
    no_rerank: Annotated[bool, _opt("--no-rerank", help="consider the index alone, no re-rank store")] = False,
    engine: Annotated[
        str, _opt("--engine", help=f"whose memory to bill: {', '.join(ENGINES)} (its layout, its options)")
    ] = DEFAULT_ENGINE,
    time_budget: Annotated[
        float | None, _opt("--time-budget", help="seconds after which no new build is trained (default: none)")
    ] = None,
    runners_up_within: Annotated[
        float, _opt("--runners-up-within", help="runners-up: at most this multiple of the answer's memory (inf: all)")
    ] = RUNNERS_UP_WITHIN,
    m: Annotated[str | None, _opt("--m", help=f"candidate m: {_Lists} (default: every m dividing d)")] = None,
    nlist: Annotated[str | None, _opt("--nlist", help=f"candidate nlist: {_Lists} (default: √N to 16√N)")] = None,
    nbits: Annotated[
        str | None, _opt("--nbits", help="candidate bits per code (default 4-8, codes 4 to d/2 bytes)")
    ] = None,
    rerank: Annotated[
        str | None, _opt("--rerank", help="candidate re-rank depths, 0 = none (default: 0, 5×k and 20×k)")
    ] = None,
    rerank_store: Annotated[
        str | None,
        _opt(
            "--rerank-store",
            help=f"candidate stores (default {','.join(DEFAULT_STORES)}: the search looks for the cheapest)",
        ),
    ] = None,
    opq: Annotated[str | None, _opt("--opq", help="off, on or off,on (default off)")] = None,
    k: _K = 10,
    queries: Annotated[
        int | None,
        _opt(
            "--queries",
            help="queries held out (default 1,000, fewer below 20,000 vectors: enough to decide); with "
            "--queries-file, its first N rows (default all)",
        ),
    ] = None,
    queries_file: _QueriesFile = None,
    metric: _Metric = None,
    backend: _Backend = BackendChoice.auto,
    seed: _Seed = 0,
    batch_size: _Batch = 1024,
    threads: _Threads = None,
    workers: _Workers = None,
    gpu_workers: _GpuWorkers = None,
    scheduler: _Scheduler = None,
    shard_rows: _ShardRows = None,
    shard_training: _ShardTraining = "global",
    cache: _Cache = None,
    min_time: _PointMinTime = POINT_MIN_TIME,
    n_total: _NTotal = None,
    scale_curve: Annotated[
        bool,
        _opt(
            "--scale-curve", help="also measure the recommendation's recall on nested subsamples, extended to --n-total"
        ),
    ] = False,
    json_out: _Json = False,
    report: _Report = None,
    yes: _Yes = False,
    quiet: _Quiet = False,
) -> None:
    """The cheapest configuration in memory that meets a recall target, with its evidence."""
    with user_errors():
        outputs = check_outputs([("--report", report, "html")], [npy, data, queries_file])
        if report is not None:
            require_matplotlib()
        if no_rerank and (rerank is not None or rerank_store is not None):
            fail("--no-rerank contradicts --rerank/--rerank-store; give one or the other")
        grid = grid_from_options(m, nlist, nbits, None, rerank, rerank_store, opq)
        try:
            budget = parse_size(memory_budget) if memory_budget is not None else None
        except GpupqError as exc:
            fail(f"--memory-budget {exc}")
        target = Target(
            target_recall, budget, min_qps, not no_rerank, engine, time_budget, runners_up_within=runners_up_within
        )
        target.check()
        total = _count(n_total, "--n-total")
        inputs = _open_inputs(npy, data, fmt, name, column, inflate_limit, synthetic, n, d, seed, metric, queries_file)
        held_out = default_queries(inputs.dataset.n)
        cfg = _run_config(
            inputs, k, queries, seed, batch_size, threads, min_time, True, total, held_out,
            _cluster(workers, scheduler, shard_rows, shard_training, gpu_workers),
            _cache(cache, npy, data, queries_file),
        )  # fmt: skip
        with progress_reporter(not quiet, eta=True) as progress, _session(inputs, cfg, backend, progress) as session:
            _plan(recommend_plan(session, target, cfg, grid), yes, quiet)
            rec = recommend(session, target, cfg, grid, progress, scale_curve=scale_curve)
        for target_out in outputs:
            write_output(target_out.partial if rec.interrupted else target_out, recommend_page(rec).encode("utf-8"))
    _warn(rec.warnings)
    if rec.interrupted:
        err.print("interrupted: showing the evidence gathered so far", markup=False)
    if json_out:
        _emit_json(rec.to_dict())
    else:
        with stdout_guard():
            out.print(render_recommendation(rec, width=out.width))
    if rec.interrupted:
        raise typer.Exit(130)


# ---------------------------------------------------------------------------------- info
@app.command("info", short_help="Backends usable here, their devices, and library versions.")
def info_cmd(json_out: Annotated[bool, _opt("--json", help="print one JSON object on stdout")] = False) -> None:
    """Backends usable here, their devices, and library versions."""
    import numpy
    import rich

    status = cupy_status()
    rows = [
        {
            "backend": "numpy",
            "usable": True,
            "device": NumpyBackend().device_description(),
            "version": numpy.__version__,
        },
        {
            "backend": "cupy",
            "usable": status.usable,
            "device": CupyBackend().device_description() if status.usable else status.reason,
            "version": status.version,
        },
    ]
    libs = {
        "gpupq": __version__,
        "python": platform.python_version(),
        "numpy": numpy.__version__,
        "typer": typer.__version__,
        "rich": _distribution_version("rich") or getattr(rich, "__version__", None),
        "cupy": status.version,
        "faiss": faiss_version(),
    }
    if json_out:
        _emit_json({"backends": rows, "libraries": libs})
        return
    table = Table(title="Backends", title_justify="left")
    for col in ("backend", "usable", "device / reason", "version"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["backend"], "yes" if r["usable"] else "no", escape(str(r["device"])), str(r["version"] or "-"))
    lib_table = Table(title="Libraries", title_justify="left")
    lib_table.add_column("library")
    lib_table.add_column("version")
    for lib, v in libs.items():
        lib_table.add_row(lib, v or "not installed")
    with stdout_guard():
        out.print(table)
        out.print(lib_table)


def _distribution_version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def main() -> None:
    app()


if __name__ == "__main__":
    main()
