"""Phase-by-phase speed of every gpupq backend against faiss-cpu, on the same data in one run.

    python benchmarks/bench_backends.py                       # 100k x 128, 100k x 768, 1M x 128
    python benchmarks/bench_backends.py --sizes 100000x128 --threads 1 --json out.json

For each size (``NxD``, or ``NxD:m``; m defaults to d/8), every engine sees the same synthetic
vectors, the same held-out queries and the same parameters; each phase (ground truth, train,
add, search) is timed ``--repeat`` times, interleaved across engines, and the median is
reported with its spread (min-max) and its ratio to faiss-cpu's median (speed relative to
FAISS: 2.0 means twice as fast). The gpupq figures are the timings ``gpupq.estimate`` itself
reports, so the benchmark times exactly what users see. Recall is printed too, so a
fast-but-wrong run is visible.

Memory: the peak of each engine's run above what the process held before it (``RssAnon`` from
``/proc``, sampled every 20 ms: arrays and the index, not the page cache), and on a GPU the
most device memory CuPy's pool held.

Rates: in the same run the script measures what the machine can do, the fp32 matrix-product
rate (a large square product) and the memory bandwidth (a large copy), on the host and on the
GPU when one is usable, and gives each phase as a fraction of them: ground truth and training
against the product rate (2·nq·N·d and 2·n·k·d per k-means iteration), the search scan
against the bandwidth (the codes of every vector scanned, ⌈m·nbits/8⌉ bytes each).
Shared machines are noisy: compare ratios from one run, not seconds across runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import platform
import statistics
import sys
import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from bench_memory import status_kib  # this folder is on the path when a script here runs
from rich.console import Console
from rich.table import Table

import gpupq
from gpupq.backends import Backend, usable_backends
from gpupq.io import Dataset, hold_out
from gpupq.metrics import GroundTruth
from gpupq.threads import ThreadBudget, available_cores, blas_description, blas_threads

PHASES = ("ground_truth", "train", "add", "search")
DEFAULT_SIZES = "100000x128,100000x768,1000000x128"


def blas_info() -> str:
    import threadpoolctl

    infos = threadpoolctl.threadpool_info()
    return "; ".join(
        f"{i.get('internal_api')} {i.get('version')} {i.get('architecture')} x{i.get('num_threads')}" for i in infos
    )


def parse_size(text: str) -> tuple[int, int, int]:
    """``NxD`` or ``NxD:m`` -> (n, d, m); m defaults to d/8 (8-dimensional sub-vectors)."""
    shape, _, m = text.partition(":")
    n, d = (int(v) for v in shape.lower().split("x"))
    return n, d, int(m) if m else d // 8


class PeakMemory:
    """Peak anonymous memory (``RssAnon``) of this process while the block runs, above what it
    held when it started, sampled every 20 ms (Linux; None elsewhere)."""

    def __enter__(self) -> PeakMemory:
        self.start = self._anon()
        self.peak = self.start
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(0.02):
            now = self._anon()
            if now is not None and self.peak is not None:
                self.peak = max(self.peak, now)

    @staticmethod
    def _anon() -> int | None:
        kib = status_kib("self").get("RssAnon")
        return None if kib is None else kib * 1024

    @property
    def extra_bytes(self) -> int | None:
        return None if self.start is None or self.peak is None else self.peak - self.start


def machine_rates(be: Backend, threads: int) -> dict[str, float]:
    """What this backend's device can do, measured now: fp32 product rate (FLOP/s) of a square
    product and memory bandwidth (bytes/s read + written) of a large copy; best of 3."""
    xp = be.xp
    n = 4096 if be.name == "cupy" else 2048
    a = xp.asarray(np.random.default_rng(0).standard_normal((n, n), dtype=np.float32))
    big = xp.zeros((256 << 20) // 4 if be.name != "cupy" else (2 << 30) // 4, dtype=xp.float32)
    out = xp.empty_like(big)

    def best(fn: Callable[[], Any]) -> float:
        fn()
        be.synchronize()
        times = []
        for _ in range(3):
            t0 = time.perf_counter()
            fn()
            be.synchronize()
            times.append(time.perf_counter() - t0)
        return min(times)

    with blas_threads(threads):
        gemm_s = best(lambda: xp.matmul(a, a))
    copy_s = best(lambda: xp.copyto(out, big))
    return {"gemm_flops": 2.0 * n**3 / gemm_s, "bandwidth_bytes": 2.0 * big.nbytes / copy_s}


def phase_work(n_base: int, nq: int, d: int, m: int, nbits: int, nlist: int, scanned_per_query: float) -> dict:
    """What each phase must do at the least: flops (products) and bytes (the scan's codes)."""
    ksub = 1 << nbits
    n_coarse = min(n_base, 256 * nlist)
    n_pq = min(n_base, 256 * ksub)
    return {
        "ground_truth_flops": 2.0 * nq * n_base * d,
        "train_flops": 2.0 * n_coarse * nlist * d * 10 + 2.0 * n_pq * ksub * d * 25,
        "add_flops": 2.0 * n_base * nlist * d + 2.0 * n_base * ksub * d,
        "search_bytes": nq * scanned_per_query * -(-m * nbits // 8),
    }


def run_gpupq(ds: gpupq.Dataset, cfg: gpupq.EstimateConfig, be: Backend) -> dict[str, Any]:
    pool = None
    if be.name == "cupy":
        import cupy

        pool = cupy.get_default_memory_pool()
        pool.free_all_blocks()
    with PeakMemory() as mem:
        r = gpupq.estimate(ds, cfg, backends=[be]).results[0]
    t = r.timings
    return {
        "ground_truth": t.ground_truth_s,
        "train": t.train_s,
        "add": t.add_s,
        "search": t.search_s,
        "recall": r.recall.mean,
        "scanned_per_query": r.vectors_scanned_per_query,
        "device": r.device,
        "peak_host_bytes": mem.extra_bytes,
        "peak_device_bytes": pool.total_bytes() if pool is not None else None,
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
    with PeakMemory() as mem:
        t0 = time.perf_counter()
        flat = faiss.IndexFlatL2(d)
        flat.add(xb)
        _, gt = flat.search(xq, cfg.k + 1)  # k + 1: ties at the k-th are scored as gpupq scores them
        out["ground_truth"] = time.perf_counter() - t0
        del flat
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
    # xb, the base copy FAISS needs as one array, is made before the window: not counted
    out["peak_host_bytes"] = mem.extra_bytes
    out["peak_device_bytes"] = None
    truth = GroundTruth(xq, ids[gt], cfg.k, "l2", Dataset(ds.array, ds.source).rows)
    out["recall"] = truth.recall(np.concatenate(found)).mean  # the rule gpupq's recall uses
    out["scanned_per_query"] = float("nan")  # not read for FAISS: the rates are gpupq's
    return out


def bench_size(args: argparse.Namespace, n: int, d: int, m: int, console: Console) -> dict[str, Any]:
    ds = gpupq.make_synthetic(n, d, seed=0)
    cfg = gpupq.EstimateConfig(
        m=m,
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
    engines: dict[str, Callable[[], dict[str, Any]]] = {
        f"gpupq-{be.name}": (lambda be=be: run_gpupq(ds, cfg, be)) for be in usable_backends()
    }
    if not args.no_faiss:
        try:
            import faiss  # noqa: F401

            engines["faiss-cpu"] = lambda: run_faiss(ds, cfg)
        except ImportError:
            console.print("faiss-cpu not installed: pip install 'gpupq[faiss]' to compare", style="yellow")

    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in engines}
    for rep in range(args.repeat):
        for name, fn in engines.items():  # interleaved, so drifting machine load hits all alike
            console.print(f"[dim]{n:,} x {d}: repeat {rep + 1}/{args.repeat}: {name}[/dim]", highlight=False)
            # idle BLAS/OpenMP workers of the engine before spin a while after their last job:
            # a pause keeps them off the cores while the next engine's first phase runs
            time.sleep(args.pause)
            runs[name].append(fn())

    def summary(rs: list[dict[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {"device": rs[0]["device"]}
        for ph in PHASES:
            vals = [r[ph] for r in rs]
            out[ph] = statistics.median(vals)
            out[f"{ph}_spread"] = (min(vals), max(vals))
        for key in ("recall", "scanned_per_query"):
            out[key] = statistics.median(r[key] for r in rs)
        for key in ("peak_host_bytes", "peak_device_bytes"):
            vals = [r[key] for r in rs if r[key] is not None]
            out[key] = max(vals) if vals else None
        return out

    med = {name: summary(rs) for name, rs in runs.items()}
    ref = med.get("faiss-cpu")
    title = (
        f"synthetic {n:,} x {d}, IVF{args.nlist},PQ{m}x{args.nbits}, nprobe={args.nprobe}, k={args.k}, "
        f"{args.queries} queries (batch {args.batch_size}), {args.threads} thread(s); median of {args.repeat} "
        "[min-max]"
    )
    table = Table(title=title, title_justify="left")
    table.add_column("engine")
    for ph in PHASES:
        table.add_column(f"{ph} s" + (" (speed vs faiss)" if ref else ""), justify="right")
    table.add_column(f"recall@{args.k}", justify="right")
    table.add_column("peak memory", justify="right")
    for name, r in med.items():
        cells = []
        for ph in PHASES:
            lo, hi = r[f"{ph}_spread"]
            cell = f"{r[ph]:.3f} [{lo:.3f}-{hi:.3f}]"
            if ref:
                cell += f"\n({ref[ph] / r[ph]:.2f}x)"
            cells.append(cell)
        mem = "" if r["peak_host_bytes"] is None else f"host {r['peak_host_bytes'] / 2**20:,.0f} MiB"
        if r["peak_device_bytes"] is not None:
            mem += f"\ndevice {r['peak_device_bytes'] / 2**20:,.0f} MiB"
        table.add_row(f"{name}\n[dim]{r['device']}[/dim]", *cells, f"{r['recall']:.3f}", mem)
    console.print(table)

    # each gpupq phase as a fraction of what its device measured it can do, in this run
    fractions: dict[str, dict[str, float]] = {}
    n_base = n - args.queries
    for be in usable_backends():
        name = f"gpupq-{be.name}"
        if name not in med:
            continue
        be.budget = ThreadBudget(args.threads)
        rates = machine_rates(be, args.threads)
        r = med[name]
        work = phase_work(n_base, args.queries, d, m, args.nbits, args.nlist, r["scanned_per_query"])
        fractions[name] = {
            "gemm_tflops": rates["gemm_flops"] / 1e12,
            "bandwidth_gbps": rates["bandwidth_bytes"] / 1e9,
            "ground_truth_of_gemm": work["ground_truth_flops"] / r["ground_truth"] / rates["gemm_flops"],
            "train_of_gemm": work["train_flops"] / r["train"] / rates["gemm_flops"],
            "add_of_gemm": work["add_flops"] / r["add"] / rates["gemm_flops"],
            "search_of_bandwidth": work["search_bytes"] / r["search"] / rates["bandwidth_bytes"],
        }
        f = fractions[name]
        console.print(
            f"{name}: measured {f['gemm_tflops']:.2f} TFLOP/s fp32 product, {f['bandwidth_gbps']:.1f} GB/s copy; "
            f"ground truth at {f['ground_truth_of_gemm']:.0%} of the product rate, training {f['train_of_gemm']:.0%}, "
            f"adding {f['add_of_gemm']:.0%}; the search reads its codes at {f['search_of_bandwidth']:.1%} of the "
            "bandwidth",
            highlight=False,
        )
    return {"size": {"n": n, "d": d, "m": m}, "median": med, "runs": runs, "rates": fractions}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default=DEFAULT_SIZES, help="comma list of NxD or NxD:m (m default d/8)")
    p.add_argument("--nbits", type=int, default=8)
    p.add_argument("--nlist", type=int, default=1024)
    p.add_argument("--nprobe", type=int, default=16)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--queries", type=int, default=2000)
    p.add_argument("--batch-size", type=int, default=1024)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--threads", type=int, default=available_cores(), help="threads for gpupq and faiss alike")
    p.add_argument("--pause", type=float, default=1.0, help="seconds idle before each engine's run")
    p.add_argument("--no-faiss", action="store_true")
    p.add_argument("--json", help="also write the figures to this file")
    args = p.parse_args(argv)

    console = Console(width=160)
    results = [bench_size(args, *parse_size(s), console) for s in args.sizes.split(",")]
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.node()} {platform.machine()} {platform.processor() or ''}".strip(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "numpy_blas": blas_description(),
        "threads": args.threads,
        "command": " ".join(sys.argv),
        "args": vars(args),
    }
    console.print(f"[dim]{json.dumps(meta)}[/dim]", highlight=False)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"meta": meta, "sizes": results}, fh, indent=2, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main())
