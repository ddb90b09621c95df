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

``--memory NxD:S`` (default 1000000x128:8; ``none`` to skip) checks the memory planner
(:mod:`gpupq.placement`): one build (IVF1024, PQ d/4) is encoded in S shards on
``--memory-workers`` fresh Dask worker processes, and each worker's predicted peak (its process
when the lists were placed, plus its shards' lists and quantizers, plus its largest encoding
transient) is printed beside its measured peak RSS (``VmHWM``) and its RSS once built.
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
from gpupq.backends import NumpyBackend
from gpupq.cluster import DaskExecutor, InProcess, ShardedIndex, Source, plan_shards, sharded_ground_truth
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


def _peak_rss() -> tuple[int, int]:
    """This worker's peak and current resident bytes: VmHWM and VmRSS (Linux). Not ru_maxrss:
    it is kept across exec, so a worker started from a large parent inherits the parent's."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return tuple(int(fields[k].split()[0]) * 1024 for k in ("VmHWM", "VmRSS"))  # type: ignore[return-value]


def memory(n: int, d: int, shards: int, workers: int) -> list[str]:
    """Markdown rows: each worker's predicted peak against its measured peak RSS."""
    from gpupq.ivf import IVFPQIndex

    out = []
    with tempfile.TemporaryDirectory(prefix="gpupq-bench-dask-mem-") as tmp:
        folder = Path(tmp)
        _write_shards(folder, n, d, shards, seed=1)
        ds = load_vectors(folder)
        sample = ds.rows(np.arange(0, n, max(1, n // 40_000)))
        template = IVFPQIndex(NumpyBackend(), d, 1024, max(1, d // 4), 8, "l2")
        template.train(sample, sample, np.random.default_rng(0))
        with DaskExecutor(workers) as ex:
            ex.client.wait_for_workers(workers)
            index = ShardedIndex.build(ex, Source.of(ds), plan_shards(ds), template, np.arange(0, n, n // 100))
            measured = ex.client.run(_peak_rss)
            for w in index.placement.workers:
                peak, now = measured[w.name]
                mib = [v / 2**20 for v in (w.held, w.resident, w.transient, w.mapped, w.peak_rss, peak, now)]
                cells = " | ".join(f"{v:,.0f}" for v in mib)
                out.append(f"| {n:,} x {d} | {len(w.shards)} | {cells} | {peak / w.peak_rss:.2f} |")
            index.release()
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20000x128:4,100000x128:4,1000000x128:8", help="NxD:S, comma list")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--workers", default="1,2")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--memory", default="1000000x128:8", help="NxD:S for the planner's check, or none")
    p.add_argument("--memory-workers", type=int, default=2)
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
    if args.memory != "none":
        shape, _, s = args.memory.partition(":")
        n, d = (int(v) for v in shape.split("x"))
        what = f"IVF1024,PQ{max(1, d // 4)} in {s or 4} shards on {args.memory_workers} workers"
        print(f"\n# memory planner: {what} (MiB)")
        head = "held before | lists | transient | input mapped | predicted peak RSS | measured peak RSS | RSS built"
        print(f"| size | shards | {head} | measured / predicted |")
        print("| --- " * 10 + "|")
        for row in memory(n, d, int(s or 4), args.memory_workers):
            print(row, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
