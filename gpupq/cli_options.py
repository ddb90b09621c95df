"""The options the ``gpupq`` commands share, declared once (typer declares options per command, so
each command names the same aliases); their help and defaults come from
:data:`gpupq.params.PARAMS`, where the library's checks find the same rules."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Any

import typer

from .cache import check_cache_dir
from .cluster import ClusterConfig
from .io import FORMATS, INFLATE_LIMIT_ENV
from .params import PARAMS, help_for
from .plan import MAX_BUILDS
from .session import POINT_MIN_TIME

Metric = Enum("Metric", {m: m for m in PARAMS["metric"].choices}, type=str)  # type: ignore[misc]
RerankStoreChoice = Enum("RerankStoreChoice", {s: s for s in PARAMS["rerank_store"].choices}, type=str)  # type: ignore[misc]
FormatChoice = Enum("FormatChoice", {f: f for f in FORMATS}, type=str)  # type: ignore[misc]


class VerifyChoice(str, Enum):
    faiss = "faiss"


class BackendChoice(str, Enum):
    auto = "auto"
    numpy = "numpy"
    cupy = "cupy"
    all = "all"


def _opt(*flags: str, **kw: Any) -> Any:
    return typer.Option(*flags, **kw)


# ---------------------------------------------------------------------------------- shared options
_Npy = Annotated[Path | None, _opt("--npy", help="an .npy array of shape (n, d), memory-mapped")]
_Data = Annotated[
    Path | None,
    _opt(
        "--data",
        help=f"vectors in any supported format, by extension: {', '.join(FORMATS)}; or a folder or a pattern "
        "('shards/*.npy') of such files, read as one",
    ),
]
_Fmt = Annotated[
    FormatChoice | None, _opt("--format", case_sensitive=False, help="the format, when the extension does not say")
]
_Name = Annotated[str | None, _opt("--name", help="the array in an .npz, or dataset in an HDF5 file")]
_Column = Annotated[str | None, _opt("--column", help="the embedding column of a Parquet/Arrow file")]
_Inflate = Annotated[
    str | None,
    _opt(
        "--inflate-limit",
        help="most a compressed .npz array or a Parquet/Arrow column may inflate to in a temporary file, e.g. 50GB "
        f"(default ${INFLATE_LIMIT_ENV}, else 16GB; never past the free space)",
    ),
]
_Synthetic = Annotated[bool, _opt("--synthetic", help="use generated clustered data")]
_N = Annotated[int, _opt("--n", help="synthetic: number of vectors")]
_D = Annotated[int, _opt("--d", help="synthetic: dimensions")]
_K = Annotated[int, _opt("-k", "--k", help=help_for("k"))]
_Queries = Annotated[
    int | None,
    _opt(
        "--queries",
        help="queries held out of the data (default 100); with --queries-file, its first N rows (default all)",
    ),
]
_QueriesFile = Annotated[
    Path | None, _opt("--queries-file", help="your own queries (any supported format); nothing is then held out")
]
_Metric = Annotated[
    Metric | None,
    _opt(
        "--metric",
        case_sensitive=False,
        help="distance: l2, ip or cosine (default l2, or what an ann-benchmarks file declares)",
    ),
]
_Backend = Annotated[BackendChoice, _opt("--backend", case_sensitive=False, help="auto: CuPy when usable, else numpy")]
_Seed = Annotated[int, _opt("--seed", help=help_for("seed"))]
_Batch = Annotated[int, _opt("--batch-size", help=help_for("batch_size"))]
_Threads = Annotated[int | None, _opt("--threads", help=PARAMS["threads"].help)]
_NTotal = Annotated[
    str | None, _opt("--n-total", help="also bill memory at the size you will deploy, e.g. 50000000, 50M or 2B")
]
_Workers = Annotated[
    int | None,
    _opt(
        "--workers",
        help="run in shards on N local Dask workers (needs gpupq[distributed]): the exact ground truth, and each "
        "build's lists, encoded and searched where they are; training stays here",
    ),
]
_GpuWorkers = Annotated[
    int | None,
    _opt("--gpu-workers", help="as --workers, one worker a GPU (dask-cuda, --backend cupy): N of this machine's GPUs"),
]
_Scheduler = Annotated[
    str | None,
    _opt("--scheduler", help="as --workers, on the running Dask cluster at this address (tcp://host:8786)"),
]
_ShardRows = Annotated[
    int | None,
    _opt(
        "--shard-rows",
        help="rows a shard: longer files split, shorter ones grouped (default a file a shard); alone, the shards "
        "run in this process",
    ),
]
_ShardTraining = Annotated[
    str,
    _opt(
        "--shard-training",
        help="global: one set of quantizers trained here for every shard (FAISS IndexShardsIVF); per-shard: each "
        "shard trains its own and searches with its own coarse search (per-segment indexes, cuVS sharded)",
    ),
]
_Cache = Annotated[
    str | None,
    _opt(
        "--cache",
        help="a folder the exact ground truth is kept in, by what it depends on (the files, their size and time, "
        "the queries): a repeated or interrupted run reads it instead of computing it again",
    ),
]
_Json = Annotated[bool, _opt("--json", help="print one JSON object on stdout, nothing else")]
_Quiet = Annotated[bool, _opt("--quiet", "-q", help="no progress (nor the plan) on stderr")]
_Yes = Annotated[bool, _opt("--yes", help=f"run a grid of more than {MAX_BUILDS} builds")]
_Report = Annotated[
    str | None,
    _opt("--report", help="write one self-contained HTML page: tables, deploy strings, plots (needs gpupq[plot])"),
]
_Lists = "comma list or range A-B (A, 2A, 4A, … up to B)"
# sweep and recommend time many points, each repeated only while it is fast; estimate times a few
# phases and wants each one steady: two purposes, two defaults
_PointMinTime = Annotated[
    float,
    _opt(
        "--min-time",
        help=f"seconds of runs each timed point covers, the median reported (default {POINT_MIN_TIME:g}; 0: one run)",
    ),
]


def _cache(cache: str | None, *inputs: Path | None) -> str | None:
    """--cache, checked against the inputs (and created) before any work."""
    return None if cache is None else str(check_cache_dir(cache, list(inputs)))


def _cluster(
    workers: int | None,
    scheduler: str | None,
    shard_rows: int | None,
    training: str = "global",
    gpu_workers: int | None = None,
) -> ClusterConfig | None:
    """--workers, --gpu-workers, --scheduler, --shard-rows and --shard-training: None when none
    is given (one pass here)."""
    if workers is None and scheduler is None and shard_rows is None and training == "global" and gpu_workers is None:
        return None
    cluster = ClusterConfig(workers, scheduler, shard_rows, training, gpu_workers)
    cluster.check()
    return cluster
