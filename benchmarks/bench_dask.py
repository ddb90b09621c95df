"""The exact ground truth over a sharded collection: one pass in this process against the same
shards in this process and on Dask workers, timed in one run and checked to agree.

    python benchmarks/bench_dask.py                          # 20k and 100k x 128; 1M x 128 in 8 shards
    python benchmarks/bench_dask.py --sizes 100000x128:4 --queries 1000 --workers 1,2

For each size (``NxD:S``: N vectors of d dimensions in S ``.npy`` shards, written to a temporary
folder, clustered synthetic data), the ground truth of ``--queries`` held-out queries (k=10) is
computed:

- ``one pass``: today's default, ``Workbench.truth`` reading the collection in chunks that cross
  the files, on every core (the thread budget);
- ``shards here``: the sharded path in this process over the shard plan (``--shard-rows`` alone);
- ``dask W``: the same tasks on a local Dask cluster of W worker processes, one thread each; the
  cluster's start is timed apart (``start``) and not counted in the task time.

Each figure is the median of ``--repeat`` runs, with its ratio to ``one pass`` (above 1: slower).
The ids of every path are compared with ``one pass`` (equal on this tie-free data) and the
sharded ones with each other bit for bit (scores included). Shared machines are noisy: compare
ratios from one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import gpupq
from gpupq.cluster import DaskExecutor, InProcess, Source, plan_shards, sharded_ground_truth
from gpupq.io import load_vectors
from gpupq.session import RunConfig, open_session

K = 10


def _write_shards(folder: Path, n: int, d: int, shards: int, seed: int) -> None:
    """Clustered float32 vectors in ``shards`` files of near-equal rows, written in pieces."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((max(n // 250, 2), d)).astype(np.float32) * 5
    cuts = np.linspace(0, n, shards + 1).astype(np.int64)
    for i in range(shards):
        rows = int(cuts[i + 1] - cuts[i])
        x = centres[rng.integers(0, len(centres), rows)] + rng.standard_normal((rows, d)).astype(np.float32)
        np.save(folder / f"part-{i:04d}.npy", x)


def _median(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def run(n: int, d: int, shards: int, queries: int, workers: list[int], repeat: int) -> list[tuple[str, float, str]]:
    rows: list[tuple[str, float, str]] = []
    with tempfile.TemporaryDirectory(prefix="gpupq-bench-dask-") as tmp:
        folder = Path(tmp)
        _write_shards(folder, n, d, shards, seed=0)
        ds = load_vectors(folder)
        cfg = RunConfig(k=K, queries=queries, timing=False, min_time=0.0)  # one run a call: timed here
        with open_session(ds, cfg, "numpy") as session:
            bench, split = session.bench, session.split

            def one_pass():
                bench._gt_ids = None  # computed again each run
                return bench.truth(K).ids

            t_one, want = _median(one_pass, repeat)
            rows.append(("one pass", t_one, "1.00"))
            q, qids, metric = split.queries, split.query_ids, bench.index_metric
            plan = plan_shards(ds)
            src = Source.of(ds)
            here_t, here = _median(
                lambda: sharded_ground_truth(InProcess(session.threads), src, plan, q, qids, K + 1, metric), repeat
            )
            assert np.array_equal(here[1], want), "sharded ids differ from one pass"
            rows.append(("shards here", here_t, f"{here_t / t_one:.2f}"))
            for w in workers:
                t0 = time.perf_counter()
                with DaskExecutor(w) as ex:
                    ex.client.wait_for_workers(w)
                    start = time.perf_counter() - t0
                    t, there = _median(
                        lambda ex=ex: sharded_ground_truth(ex, src, plan, q, qids, K + 1, metric), repeat
                    )
                assert np.array_equal(there[0], here[0]) and np.array_equal(there[1], here[1]), "dask != in-process"
                rows.append((f"dask {w} (start {start:.1f} s)", t, f"{t / t_one:.2f}"))
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20000x128:4,100000x128:4,1000000x128:8", help="NxD:S, comma list")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args(argv)
    workers = [int(w) for w in args.workers.split(",")]
    print(
        f"# gpupq {gpupq.__version__}, {datetime.date.today()}, {platform.machine()}, Python {sys.version.split()[0]}"
    )
    print(f"# ground truth of {args.queries} held-out queries, k={K}; median of {args.repeat}")
    print("| size | shards | path | seconds | vs one pass |")
    print("| --- | --- | --- | --- | --- |")
    for size in args.sizes.split(","):
        shape, _, s = size.partition(":")
        n, d = (int(v) for v in shape.split("x"))
        shards = int(s or 4)
        for label, t, ratio in run(n, d, shards, args.queries, workers, args.repeat):
            print(f"| {n:,} x {d} | {shards} | {label} | {t:.2f} | {ratio} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
