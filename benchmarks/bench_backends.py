"""Phase-by-phase speed of every gpupq backend against faiss-cpu, on the same data in one run.

    python benchmarks/bench_backends.py                       # the issue's floor setting
    python benchmarks/bench_backends.py --n 1000000 --json out.json

Each engine sees the same synthetic vectors, the same held-out queries and the same
parameters; each phase (ground truth, train, add, search) is timed ``--repeat`` times and the
median is reported with its ratio to faiss-cpu's (speed relative to FAISS: 2.0 means twice as
fast). The gpupq figures are the timings ``gpupq.estimate`` itself reports, so the benchmark
times exactly what users see. Recall is printed too, so a fast-but-wrong run is visible.
Shared machines are noisy: compare ratios from one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np
from rich.console import Console
from rich.table import Table

import gpupq
from gpupq.backends import usable_backends
from gpupq.data import Dataset, hold_out
from gpupq.metrics import GroundTruth
from gpupq.threads import available_cores, blas_description

PHASES = ("ground_truth", "train", "add", "search")


def blas_info() -> str:
    import threadpoolctl

    infos = threadpoolctl.threadpool_info()
    return "; ".join(
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} x{i.get('num_threads')}" for i in infos
    )


def run_gpupq(ds: gpupq.Dataset, cfg: gpupq.EstimateConfig, be: gpupq.Backend) -> dict[str, Any]:
    r = gpupq.estimate(ds, cfg, backends=[be]).results[0]
    t = r.timings
    return {
        "ground_truth": t.ground_truth_s,
        "train": t.train_s,
        "add": t.add_s,
        "search": t.search_s,
        "recall": r.recall.mean,
        "device": r.device,
    }


def run_faiss(ds: gpupq.Dataset, cfg: gpupq.EstimateConfig) -> dict[str, Any]:
    import faiss

    faiss.omp_set_num_threads(cfg.threads)  # the same thread budget as gpupq's
    split = hold_out(ds, cfg.queries, cfg.seed)
    ids = split.base_ids()
    xb = ds.rows(ids)
    xq = split.queries
    d = ds.d
    out: dict[str, Any] = {"device": f"faiss-cpu {faiss.__version__}, {faiss.omp_get_max_threads()} threads"}
    t0 = time.perf_counter()
    flat = faiss.IndexFlatL2(d)
    flat.add(xb)
    _, gt = flat.search(xq, cfg.k + 1)  # k + 1: ties at the k-th are scored as gpupq scores them
    out["ground_truth"] = time.perf_counter() - t0
    index = faiss.IndexIVFPQ(faiss.IndexFlatL2(d), d, cfg.nlist, cfg.m, cfg.nbits)
    t0 = time.perf_counter()
    index.train(xb)
    out["train"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    index.add_with_ids(xb, ids)
    out["add"] = time.perf_counter() - t0
    index.nprobe = cfg.nprobe
    t0 = time.perf_counter()
    found = [index.search(xq[s : s + cfg.batch_size], cfg.k)[1] for s in range(0, len(xq), cfg.batch_size)]
    out["search"] = time.perf_counter() - t0
    truth = GroundTruth(xq, ids[gt], cfg.k, "l2", Dataset(ds.array, ds.source).rows)
    out["recall"] = truth.recall(np.concatenate(found)).mean  # the rule gpupq's recall uses
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=100_000)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--m", type=int, default=16)
    p.add_argument("--nbits", type=int, default=8)
    p.add_argument("--nlist", type=int, default=1024)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=available_cores(), help="threads for gpupq and faiss alike")
    p.add_argument("--no-faiss", action="store_true")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)

    console = Console()
    ds = gpupq.make_synthetic(args.n, args.d, seed=0)
    cfg = gpupq.EstimateConfig(
        m=args.m,
        nlist=args.nlist,
        nprobe=args.nprobe,
        nbits=args.nbits,
        k=args.k,
        rerank=0,
        queries=args.queries,
        batch_size=args.batch_size,
        threads=args.threads,
        # one run per phase per repeat, as FAISS is timed: the repeats below give the median
        min_time=0.0,
    )
    engines: dict[str, Any] = {f"gpupq-{be.name}": (lambda be=be: run_gpupq(ds, cfg, be)) for be in usable_backends()}
    if not args.no_faiss:
        try:
            import faiss  # noqa: F401

            engines["faiss-cpu"] = lambda: run_faiss(ds, cfg)
        except ImportError:
            console.print("faiss-cpu not installed: pip install 'gpupq[faiss]' to compare", style="yellow")

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in engines}
    for rep in range(args.repeat):
        for name, fn in engines.items():  # interleaved, so drifting machine load hits all alike
            console.print(f"[dim]repeat {rep + 1}/{args.repeat}: {name}[/dim]", highlight=False)
            runs[name].append(fn())

    med = {
        name: {ph: statistics.median(r[ph] for r in rs) for ph in (*PHASES, "recall")} | {"device": rs[0]["device"]}
        for name, rs in runs.items()
    }
    ref = med.get("faiss-cpu")
    table = Table(
        title=f"synthetic {args.n:,} x {args.d}, IVF{args.nlist},PQ{args.m}x{args.nbits}, nprobe={args.nprobe}, "
        f"k={args.k}, {args.queries} queries (batch {args.batch_size}); median of {args.repeat}",
        title_justify="left",
    )
    table.add_column("engine")
    for ph in PHASES:
        table.add_column(f"{ph} s" + (" (speed vs faiss)" if ref else ""), justify="right")
    table.add_column(f"recall@{args.k}", justify="right")
    for name, m in med.items():
        cells = []
        for ph in PHASES:
            cell = f"{m[ph]:.3f}"
            if ref:
                cell += f" ({ref[ph] / m[ph]:.2f}x)"
            cells.append(cell)
        table.add_row(f"{name}\n[dim]{m['device']}[/dim]", *cells, f"{m['recall']:.3f}")
    console.print(table)
    rates = {
        name: {
            "add_vectors_per_s": (args.n - args.queries) / m["add"],
            "search_queries_per_s": args.queries / m["search"],
        }
        for name, m in med.items()
    }
    for name, r in rates.items():
        console.print(
            f"{name}: add {r['add_vectors_per_s']:,.0f} vectors/s, search {r['search_queries_per_s']:,.0f} queries/s"
        )
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "numpy_blas": blas_description(),
        "threads": args.threads,
        "args": vars(args),
    }
    console.print(f"[dim]{json.dumps(meta)}[/dim]", highlight=False)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "median": med, "runs": runs}, fh, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
