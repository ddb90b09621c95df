"""The same estimate alone and beside busy processes: does the slowdown follow the share of the
cores left, or multiply?

    python benchmarks/bench_load.py                    # the README's first command's setting
    python benchmarks/bench_load.py --busy 0,1,3 --repeat 3 --json load.json

For each number of busy neighbours (processes spinning a pure-Python loop, one core each), the
script runs ``gpupq.estimate`` under each thread policy and records each phase's time:

- ``gpupq --threads C`` (C = the cores this process may use, the default): BLAS threads set
  per phase, coarse-grained work on C pool threads, each with single-threaded BLAS;
- ``gpupq --threads 1``: everything on one thread;
- ``numpy default``: how gpupq ran before it owned its threads: no pool, and numpy's BLAS with
  its default of one thread per core for every product (reproduced here by replacing the
  budget with a no-op; the product has no switch for it).

The slowdown of each phase is its median time beside b busy processes over its median time
alone, under the same policy; ``fair share`` is what a perfectly fair scheduler would give a
process keeping T threads busy beside b single-threaded ones on C cores, max(1, (T + b) / C).
Timings are medians of ``--repeat`` interleaved runs; shared machines are noisy, so read the
ratios, not the seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import multiprocessing as mp
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import gpupq
from gpupq.threads import ThreadBudget, available_cores, blas_description

PHASES = ("ground_truth", "train", "add", "search")


def _spin() -> None:
    while True:
        pass


@contextlib.contextmanager
def busy(n: int) -> Iterator[None]:
    """n processes each keeping one core busy for the duration of the block."""
    procs = [mp.Process(target=_spin, daemon=True) for _ in range(n)]
    for p in procs:
        p.start()
    try:
        time.sleep(0.3 if n else 0.0)  # let the scheduler see them
        yield
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.join()


@contextlib.contextmanager
def numpy_default() -> Iterator[None]:
    """gpupq without its thread budget: BLAS left at numpy's default, no pool."""
    est = importlib.import_module("gpupq.estimate")
    saved = est.blas_threads, est.ThreadBudget
    est.blas_threads = lambda threads: contextlib.nullcontext()  # type: ignore[assignment]
    est.ThreadBudget = lambda threads: ThreadBudget(1)  # type: ignore[assignment]
    try:
        yield
    finally:
        est.blas_threads, est.ThreadBudget = saved


def run(ds: gpupq.Dataset, cfg: gpupq.EstimateConfig) -> dict[str, float]:
    t = gpupq.estimate(ds, cfg, backends="numpy").results[0].timings
    return {"ground_truth": t.ground_truth_s or 0.0, "train": t.train_s, "add": t.add_s, "search": t.search_s}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--nlist", type=int, default=128)
    p.add_argument("--nprobe", type=int, default=8)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--busy", default="0,1,3", help="numbers of busy neighbour processes")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)

    cores = available_cores()
    ds = gpupq.make_synthetic(args.n, args.d, seed=0)
    base = dict(m=args.m, nlist=args.nlist, nprobe=args.nprobe, rerank=0, queries=args.queries, min_time=0.0)
    policies: dict[str, tuple[int, Callable[[], Any]]] = {
        f"gpupq --threads {cores}": (cores, contextlib.nullcontext),
        "gpupq --threads 1": (1, contextlib.nullcontext),
        "numpy default": (cores, numpy_default),
    }
    loads = [int(b) for b in args.busy.split(",")]
    med: dict[str, dict[int, dict[str, float]]] = {name: {} for name in policies}
    for b in loads:
        runs: dict[str, list[dict[str, float]]] = {name: [] for name in policies}
        with busy(b):
            for rep in range(args.repeat):
                for name, (threads, ctx) in policies.items():  # interleaved: drifting load hits all alike
                    print(f"busy {b}, repeat {rep + 1}/{args.repeat}: {name}", file=sys.stderr, flush=True)
                    with ctx():
                        runs[name].append(run(ds, gpupq.EstimateConfig(**base, threads=threads)))
        for name, rs in runs.items():
            med[name][b] = {ph: statistics.median(r[ph] for r in rs) for ph in PHASES}

    print(
        f"synthetic {args.n:,} x {args.d}, IVF{args.nlist},PQ{args.m}, nprobe {args.nprobe}, {args.queries} queries; "
        f"{cores} cores; median of {args.repeat}; slowdown = time beside b busy processes / time alone"
    )
    print()
    print("| policy | busy | " + " | ".join(f"{ph} s (slowdown)" for ph in PHASES) + " | fair share |")
    print("| --- | --- | " + " | ".join("---" for _ in PHASES) + " | --- |")
    for name, (threads, _) in policies.items():
        alone = med[name][loads[0]]
        for b in loads:
            cells = [f"{med[name][b][ph]:.3f} ({med[name][b][ph] / alone[ph]:.2f}x)" for ph in PHASES]
            fair = max(1.0, (threads + b) / cores) / max(1.0, (threads + loads[0]) / cores)
            print(f"| {name} | {b} | " + " | ".join(cells) + f" | {fair:.2f}x |")
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()}, {cores} cores",
        "numpy_blas": blas_description(),
        "args": vars(args),
    }
    print()
    print(json.dumps(meta))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "median": med}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
