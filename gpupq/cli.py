"""The ``gpupq`` command: parse, call the library, render. No algorithm lives here."""

from __future__ import annotations

import os
import platform
import sys
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskID, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table
from typer.core import TyperGroup

from . import __version__
from .backends import CupyBackend, NumpyBackend, cupy_status
from .errors import GpupqError
from .estimate import MIN_TIMED_S, EstimateConfig, estimate
from .grid import grid_from_options
from .io import FORMATS, INFLATE_LIMIT_ENV, make_synthetic, open_inputs
from .outputs import check_outputs, write_output
from .report import print_result, to_json
from .session import POINT_MIN_TIME, RunConfig, check_seed, open_session
from .units import parse_count, parse_size

try:  # typer 0.2x vendors its own click; older typer uses click itself
    from typer import _click as click
except ImportError:  # pragma: no cover - depends on the typer version installed
    import click  # type: ignore[no-redef]


#: click 8.2+ signals "no arguments: show the help" with a UsageError subclass; that one must
#: keep printing the help (click 8.1 prints it without an exception: nothing to catch)
_NO_ARGS_IS_HELP: Any = getattr(click.exceptions, "NoArgsIsHelpError", ())


class _OneLineError(click.exceptions.ClickException):
    """A usage error shown as gpupq shows every error: one line on stderr, exit code 2."""

    exit_code = 2

    def show(self, file: Any = None) -> None:
        err.print(f"error: {self.message}", markup=False, highlight=False, soft_wrap=True)


class _Group(TyperGroup):
    """typer's group, with click's usage errors (a bad choice, a missing value, an unknown
    option) turned into one line instead of a usage box."""

    def _one_line(self, exc: Any, ctx: Any) -> _OneLineError:
        message = exc.format_message().replace("Value error, ", "")
        if getattr(exc, "ctx", None) is not None:
            where = exc.ctx.command_path
        else:  # click 8.1 leaves ctx unset on some parse errors: name the subcommand being parsed
            sub = getattr(ctx, "invoked_subcommand", None)
            where = f"{ctx.command_path} {sub}" if sub else ctx.command_path
        return _OneLineError(f"{message} (see {where} --help)")

    def make_context(self, info_name: Any, args: Any, parent: Any = None, **extra: Any) -> Any:
        try:
            return super().make_context(info_name, args, parent, **extra)
        except _NO_ARGS_IS_HELP:
            raise  # prints the help
        except click.exceptions.UsageError as exc:
            raise self._one_line(exc, click.Context(self, info_name=info_name)) from None

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except _NO_ARGS_IS_HELP:
            raise
        except click.exceptions.UsageError as exc:
            raise self._one_line(exc, ctx) from None


app = typer.Typer(
    cls=_Group,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    # click's plain help: flags show as flags (typer's rich help labels them "<bool>")
    rich_markup_mode=None,
    help="Estimate what IVF-PQ compression does to your vectors: memory, recall@k and speed.",
)
# emoji=False: paths and messages are printed as they are (":x:" in a file name stays ":x:")
out = Console(emoji=False)
err = Console(stderr=True, emoji=False)


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


class Metric(str, Enum):
    l2 = "l2"
    ip = "ip"
    cosine = "cosine"


class RerankStoreChoice(str, Enum):
    fp32 = "fp32"
    fp16 = "fp16"
    sq8 = "sq8"


class VerifyChoice(str, Enum):
    faiss = "faiss"


class BackendChoice(str, Enum):
    auto = "auto"
    numpy = "numpy"
    cupy = "cupy"
    all = "all"


FormatChoice = Enum("FormatChoice", {f: f for f in FORMATS}, type=str)  # type: ignore[misc]


@contextmanager
def _stdout() -> Iterator[None]:
    """Writing results to stdout: a full disk (``> /dev/full``) or a closed pipe is one line and
    exit code 2, never a traceback; fd 1 is then pointed at /dev/null, so that the interpreter's
    last flush at exit does not fail again."""
    try:
        yield
        sys.stdout.flush()
    except OSError as exc:
        with suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        if isinstance(exc, BrokenPipeError):  # the reader went away (| head): nothing to say
            raise typer.Exit(2) from None
        fail(f"cannot write to standard output: {exc.strerror or exc}")


def fail(message: str) -> None:
    """One line on stderr, exit code 2."""
    err.print(f"error: {message}", markup=False, highlight=False, soft_wrap=True)
    raise typer.Exit(2)


@contextmanager
def progress_reporter(enabled: bool, eta: bool = False) -> Iterator[Any]:
    """A progress(phase, done, total) callback drawing rich bars on stderr (a terminal), or
    printing each phase once as it starts (a pipe or log). eta: bars show the time remaining
    (sweep and recommend, whose phases repeat: builds, candidates)."""
    if not enabled:
        yield None
        return
    if err.is_terminal:
        bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            TextColumn("{task.completed:,}/{task.total:,}"),
            TimeElapsedColumn(),
            *([TextColumn("ETA"), TimeRemainingColumn()] if eta else []),
            console=err,
            transient=True,
        )
        tasks: dict[str, TaskID] = {}

        def update(phase: str, done: int, total: int) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(escape(phase), total=total)
            bars.update(tasks[phase], completed=done)

        with bars:
            yield update
    else:
        seen: set[str] = set()

        def update(phase: str, done: int, total: int) -> None:
            if phase not in seen:
                seen.add(phase)
                err.print(f"{phase} ...", markup=False, highlight=False)

        yield update


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
) -> Any:
    """The input options every command shares -> io.Inputs (notes printed on stderr)."""
    if sum((npy is not None, data is not None, synthetic)) != 1:
        fail("give exactly one of --data PATH, --npy PATH or --synthetic")
    fmt_name = fmt.value if fmt is not None else None
    if npy is not None:  # pqtool.py's flag: always an .npy file
        data, fmt_name = npy, "npy"
    metric_name = metric.value if metric is not None else None
    check_seed(seed)
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


@contextmanager
def _user_errors() -> Iterator[None]:
    """What a command reports in one line instead of a traceback: gpupq's errors and running out
    of memory (exit 2), Ctrl-C (exit 130)."""
    try:
        yield
    except GpupqError as exc:
        fail(str(exc))
    except MemoryError:
        fail("out of memory; lower --n, --queries or --batch-size")
    except KeyboardInterrupt:
        err.print("interrupted", markup=False)
        raise typer.Exit(130) from None


@app.command("estimate")
def estimate_cmd(
    npy: Annotated[Path | None, typer.Option("--npy", help="an .npy array of shape (n, d), memory-mapped")] = None,
    data: Annotated[
        Path | None,
        typer.Option("--data", help=f"vectors in any supported format, by extension: {', '.join(FORMATS)}"),
    ] = None,
    fmt: Annotated[
        FormatChoice | None,
        typer.Option("--format", case_sensitive=False, help="the format, when the extension does not say"),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", help="the array in an .npz, or dataset in an HDF5 file")] = None,
    column: Annotated[str | None, typer.Option("--column", help="the embedding column of a Parquet/Arrow file")] = None,
    inflate_limit: Annotated[
        str | None,
        typer.Option(
            "--inflate-limit",
            help="most a compressed .npz array or a Parquet/Arrow column may inflate to in a temporary file, "
            f"e.g. 50GB (default ${INFLATE_LIMIT_ENV}, else 16GB; never past the free space)",
        ),
    ] = None,
    synthetic: Annotated[bool, typer.Option("--synthetic", help="use generated clustered data")] = False,
    n: Annotated[int, typer.Option("--n", help="synthetic: number of vectors")] = 10000,
    d: Annotated[int, typer.Option("--d", help="synthetic: dimensions")] = 64,
    m: Annotated[int, typer.Option("--m", help="PQ sub-quantizers (sub-vectors per code)")] = 16,
    nbits: Annotated[int, typer.Option("--nbits", help="bits per sub-quantizer code, 4 to 8")] = 8,
    nlist: Annotated[int, typer.Option("--nlist", help="IVF lists (coarse centroids)")] = 128,
    nprobe: Annotated[int, typer.Option("--nprobe", help="lists probed per query (FAISS's default is 1)")] = 8,
    rerank: Annotated[int, typer.Option("--rerank", help="candidates re-ranked exactly (0 = no re-rank)")] = 100,
    opq: Annotated[bool, typer.Option("--opq", help="rotate with OPQ before IVF-PQ, as FAISS's OPQ{m} prefix")] = False,
    rerank_store: Annotated[
        RerankStoreChoice,
        typer.Option("--rerank-store", case_sensitive=False, help="precision of the vectors kept for re-ranking"),
    ] = RerankStoreChoice.fp32,
    k: Annotated[int, typer.Option("-k", "--k", help="neighbours returned; recall@k")] = 10,
    queries: Annotated[
        int | None,
        typer.Option(
            "--queries",
            help="queries held out of the data (default 100); with --queries-file, its first N rows (default all)",
        ),
    ] = None,
    queries_file: Annotated[
        Path | None,
        typer.Option("--queries-file", help="your own queries (any supported format); nothing is then held out"),
    ] = None,
    metric: Annotated[
        Metric | None,
        typer.Option(
            "--metric", case_sensitive=False, help="distance (default l2, or what an ann-benchmarks file declares)"
        ),
    ] = None,
    backend: Annotated[
        BackendChoice, typer.Option("--backend", case_sensitive=False, help="auto: CuPy when usable, else numpy")
    ] = BackendChoice.auto,
    verify: Annotated[
        VerifyChoice | None,
        typer.Option("--verify", case_sensitive=False, help="also build the same index with faiss-cpu, side by side"),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", help="seed for data, split and training (0 or more)")] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", help="queries per search call")] = 1024,
    threads: Annotated[
        int | None,
        typer.Option("--threads", help="most host threads kept busy (default: the cores this process may use)"),
    ] = None,
    min_time: Annotated[
        float | None,
        typer.Option(
            "--min-time",
            help=f"seconds of runs each timed phase covers, the median run reported (default {MIN_TIMED_S:g})",
        ),
    ] = None,
    n_total: Annotated[
        str | None, typer.Option("--n-total", help="also bill memory at this deployment size, e.g. 50M")
    ] = None,
    scale_curve: Annotated[
        bool,
        typer.Option(
            "--scale-curve", help="also measure recall on nested subsamples (N/8..N) and extend the trend to --n-total"
        ),
    ] = False,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout, nothing else")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")] = False,
) -> None:
    """Build IVF-PQ over your vectors (or synthetic ones) and report recall, memory and speed."""
    with _user_errors():
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
            queries=queries if queries is not None else (inputs.queries.n if inputs.queries is not None else 100),
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
            )
    for backend_name, why in result.skipped.items():
        err.print(f"skipped backend {backend_name}: {why}", markup=False, highlight=False, soft_wrap=True)
    for w in result.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)
    if json_out:
        with _stdout():
            sys.stdout.write(to_json(result.to_dict()) + "\n")
    else:
        with _stdout():
            print_result(result, out)


# ---------------------------------------------------------------------------------- sweep, recommend
# The input options sweep and recommend share with estimate (typer declares options per command).
_Npy = Annotated[Path | None, typer.Option("--npy", help="an .npy array of shape (n, d), memory-mapped")]
_Data = Annotated[Path | None, typer.Option("--data", help=f"vectors in any supported format: {', '.join(FORMATS)}")]
_Fmt = Annotated[
    FormatChoice | None,
    typer.Option("--format", case_sensitive=False, help="the format, when the extension does not say"),
]
_Name = Annotated[str | None, typer.Option("--name", help="the array in an .npz, or dataset in an HDF5 file")]
_Column = Annotated[str | None, typer.Option("--column", help="the embedding column of a Parquet/Arrow file")]
_Inflate = Annotated[
    str | None, typer.Option("--inflate-limit", help="most a compressed input may inflate to (default 16GB)")
]
_Synthetic = Annotated[bool, typer.Option("--synthetic", help="use generated clustered data")]
_N = Annotated[int, typer.Option("--n", help="synthetic: number of vectors")]
_D = Annotated[int, typer.Option("--d", help="synthetic: dimensions")]
_K = Annotated[int, typer.Option("-k", "--k", help="neighbours returned; recall@k")]
_Queries = Annotated[
    int | None, typer.Option("--queries", help="queries held out (default 100); with --queries-file, its first N rows")
]
_QueriesFile = Annotated[Path | None, typer.Option("--queries-file", help="your own queries; nothing is then held out")]
_Metric = Annotated[Metric | None, typer.Option("--metric", case_sensitive=False, help="distance (default l2)")]
_Backend = Annotated[
    BackendChoice, typer.Option("--backend", case_sensitive=False, help="auto: CuPy when usable, else numpy")
]
_Seed = Annotated[int, typer.Option("--seed", help="seed for data, split and training (0 or more)")]
_Batch = Annotated[int, typer.Option("--batch-size", help="queries per search call")]
_Threads = Annotated[int | None, typer.Option("--threads", help="most host threads kept busy (default: every core)")]
_MinTime = Annotated[
    float, typer.Option("--min-time", help="seconds of runs each timed point covers, the median reported (0: one run)")
]
_Json = Annotated[bool, typer.Option("--json", help="print one JSON object on stdout, nothing else")]
_Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="no progress on stderr")]
_NTotal = Annotated[
    str | None, typer.Option("--n-total", help="bill memory at this deployment size, e.g. 50000000 or 50M")
]
_Lists = "comma list or range A-B (A, 2A, 4A, … up to B)"


def _count(text: str | None, option: str) -> int | None:
    """A count such as 50000000, 50M or 1.5B, or None when not given."""
    return None if text is None else parse_count(text, option)


def _run_config(
    k: int,
    queries: int | None,
    inputs: Any,
    seed: int,
    batch_size: int,
    threads: int | None,
    min_time: float,
    timing: bool,
    n_total: int | None,
) -> Any:
    nq = queries if queries is not None else (inputs.queries.n if inputs.queries is not None else 100)
    cfg = RunConfig(
        k=k,
        queries=nq,
        metric=inputs.dataset.metric,
        seed=seed,
        batch_size=batch_size,
        threads=threads,
        min_time=min_time,
        timing=timing,
        n_total=n_total,
    )
    cfg.check()
    return cfg


@contextmanager
def _session(inputs: Any, cfg: Any, backend: BackendChoice, progress: Any) -> Iterator[Any]:
    session = open_session(
        inputs.dataset, cfg, backend.value, progress, inputs.queries, inputs.ground_truth, inputs.ground_truth_source
    )
    try:
        yield session
    finally:
        session.close()


@app.command("sweep")
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
        str | None, typer.Option("--m", help=f"PQ sub-quantizers: {_Lists} (default: code sizes 8 to d/2 bytes)")
    ] = None,
    nlist: Annotated[str | None, typer.Option("--nlist", help=f"IVF lists: {_Lists} (default: 4√N to 16√N)")] = None,
    nbits: Annotated[str | None, typer.Option("--nbits", help="bits per code: comma list (default 8)")] = None,
    nprobe: Annotated[
        str | None,
        typer.Option("--nprobe", help=f"lists probed: {_Lists} (default: doubling until recall stops rising)"),
    ] = None,
    rerank: Annotated[
        str | None, typer.Option("--rerank", help="re-rank depths, 0 = none: comma list (default 0,100)")
    ] = None,
    rerank_store: Annotated[
        str | None, typer.Option("--rerank-store", help="stores for re-ranking: fp32,fp16,sq8 (default fp16)")
    ] = None,
    opq: Annotated[str | None, typer.Option("--opq", help="off, on or off,on (default off)")] = None,
    k: _K = 10,
    queries: _Queries = None,
    queries_file: _QueriesFile = None,
    metric: _Metric = None,
    backend: _Backend = BackendChoice.auto,
    seed: _Seed = 0,
    batch_size: _Batch = 1024,
    threads: _Threads = None,
    min_time: _MinTime = POINT_MIN_TIME,
    no_timing: Annotated[bool, typer.Option("--no-timing", help="measure recall and scanned only (fastest)")] = False,
    n_total: _NTotal = None,
    json_out: _Json = False,
    csv_out: Annotated[str | None, typer.Option("--csv", help="write every point to this CSV file")] = None,
    plot: Annotated[
        str | None,
        typer.Option("--plot", help="draw the frontiers to this .png, .pdf or .svg file (needs gpupq[plot])"),
    ] = None,
    all_points: Annotated[bool, typer.Option("--all", help="table every point, not only the Pareto frontiers")] = False,
    quiet: _Quiet = False,
) -> None:
    """Every operating point of a grid from shared work: recall, memory, queries/s, Pareto frontiers."""
    from .sweep import sweep

    with _user_errors():
        grid = grid_from_options(m, nlist, nbits, nprobe, rerank if rerank is not None else "0,100", rerank_store, opq)
        total = _count(n_total, "--n-total")
        # every output checked against every input and the other outputs before any work
        outputs = check_outputs([("--csv", csv_out, "csv"), ("--plot", plot, "plot")], [npy, data, queries_file])
        if plot is not None:
            from .plot import require_matplotlib

            require_matplotlib()
        inputs = _open_inputs(npy, data, fmt, name, column, inflate_limit, synthetic, n, d, seed, metric, queries_file)
        cfg = _run_config(k, queries, inputs, seed, batch_size, threads, min_time, not no_timing, total)
        with progress_reporter(not quiet, eta=True) as progress, _session(inputs, cfg, backend, progress) as session:
            result = sweep(session, grid, cfg, progress)
        for target in outputs:
            if result.interrupted:  # never over a complete earlier file: a name that says partial
                target = target.partial
            if target.fmt == "csv":
                from .report import sweep_csv

                write_output(target, sweep_csv(result).encode("utf-8"))
            else:
                from .plot import render

                write_output(target, render(result, target.fmt))
            if result.interrupted:
                err.print(f"partial results written to {target.path}", markup=False, highlight=False)
    for w in result.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)
    if result.interrupted:
        err.print("interrupted: showing the points measured so far", markup=False)
    if json_out:
        with _stdout():
            sys.stdout.write(to_json(result.to_dict()) + "\n")
    else:
        from .plot import terminal_plot
        from .report import render_sweep

        with _stdout():
            out.print(render_sweep(result, frontier_only=not all_points, width=out.width))
            if out.is_terminal and result.points:
                out.print(terminal_plot(result), markup=False, highlight=False)
    if result.interrupted:
        raise typer.Exit(130)


@app.command("recommend")
def recommend_cmd(
    target_recall: Annotated[float, typer.Option("--target-recall", help="recall@k to reach, e.g. 0.9")],
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
        typer.Option(
            "--memory-budget", help="most memory the index (+ store) may take, e.g. 8GB (at --n-total when given)"
        ),
    ] = None,
    min_qps: Annotated[
        float | None, typer.Option("--min-qps", help="fewest queries/s acceptable (measured here)")
    ] = None,
    no_rerank: Annotated[bool, typer.Option("--no-rerank", help="consider the index alone, no re-rank store")] = False,
    m: Annotated[str | None, typer.Option("--m", help=f"candidate m: {_Lists} (default: 8 to d/2 bytes)")] = None,
    nlist: Annotated[
        str | None, typer.Option("--nlist", help=f"candidate nlist: {_Lists} (default: 4√N to 16√N)")
    ] = None,
    nbits: Annotated[str | None, typer.Option("--nbits", help="candidate bits per code (default 8)")] = None,
    rerank: Annotated[
        str | None,
        typer.Option("--rerank", help="candidate re-rank depths, 0 = none (default: 0, 5×k and 20×k)"),
    ] = None,
    rerank_store: Annotated[
        str | None, typer.Option("--rerank-store", help="candidate stores (default fp16,sq8)")
    ] = None,
    opq: Annotated[str | None, typer.Option("--opq", help="off, on or off,on (default off)")] = None,
    k: _K = 10,
    queries: _Queries = None,
    queries_file: _QueriesFile = None,
    metric: _Metric = None,
    backend: _Backend = BackendChoice.auto,
    seed: _Seed = 0,
    batch_size: _Batch = 1024,
    threads: _Threads = None,
    min_time: _MinTime = POINT_MIN_TIME,
    n_total: _NTotal = None,
    scale_curve: Annotated[
        bool,
        typer.Option(
            "--scale-curve", help="also measure the recommendation's recall on nested subsamples, extended to --n-total"
        ),
    ] = False,
    json_out: _Json = False,
    quiet: _Quiet = False,
) -> None:
    """The cheapest configuration in memory that meets a recall target, with its evidence."""
    from .recommend import Target, recommend

    with _user_errors():
        if no_rerank and (rerank is not None or rerank_store is not None):
            fail("--no-rerank contradicts --rerank/--rerank-store; give one or the other")
        grid = grid_from_options(m, nlist, nbits, None, rerank, rerank_store, opq)
        try:
            budget = parse_size(memory_budget) if memory_budget is not None else None
        except GpupqError as exc:
            fail(f"--memory-budget {exc}")
            return
        target = Target(target_recall, budget, min_qps, rerank=not no_rerank)
        target.check()
        total = _count(n_total, "--n-total")
        inputs = _open_inputs(npy, data, fmt, name, column, inflate_limit, synthetic, n, d, seed, metric, queries_file)
        cfg = _run_config(k, queries, inputs, seed, batch_size, threads, min_time, True, total)
        with progress_reporter(not quiet, eta=True) as progress, _session(inputs, cfg, backend, progress) as session:
            rec = recommend(session, target, cfg, grid, progress, scale_curve=scale_curve)
    for w in rec.warnings:
        err.print(f"warning: {w}", markup=False, highlight=False, soft_wrap=True)
    if rec.interrupted:
        err.print("interrupted: showing the evidence gathered so far", markup=False)
    if json_out:
        with _stdout():
            sys.stdout.write(to_json(rec.to_dict()) + "\n")
    else:
        from .report import render_recommendation

        with _stdout():
            out.print(render_recommendation(rec))
    if rec.interrupted:
        raise typer.Exit(130)


@app.command("info")
def info_cmd(
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object on stdout")] = False,
) -> None:
    """Backends usable here, their devices, and library versions."""
    import numpy
    import rich

    status = cupy_status()
    numpy_be = NumpyBackend()
    rows = [
        {"backend": "numpy", "usable": True, "device": numpy_be.device_description(), "version": numpy.__version__},
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
        "rich": _version("rich", rich),
        "cupy": status.version,
        "faiss": _faiss_version(),
    }
    if json_out:
        with _stdout():
            sys.stdout.write(to_json({"backends": rows, "libraries": libs}) + "\n")
        return
    table = Table(title="Backends", title_justify="left")
    for col in ("backend", "usable", "device / reason", "version"):
        table.add_column(col)
    for r in rows:
        table.add_row(r["backend"], "yes" if r["usable"] else "no", escape(str(r["device"])), str(r["version"] or "-"))
    out.print(table)
    lib_table = Table(title="Libraries", title_justify="left")
    lib_table.add_column("library")
    lib_table.add_column("version")
    for name, v in libs.items():
        lib_table.add_row(name, v or "not installed")
    out.print(lib_table)


def _version(dist: str, module: Any) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return getattr(module, "__version__", None)


def _faiss_version() -> str | None:
    try:
        import faiss
    except ImportError:
        return None
    return str(faiss.__version__)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
