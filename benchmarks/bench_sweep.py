"""A sweep against its builds alone and against the same points run as separate estimates, in one run.

    python benchmarks/bench_sweep.py                  # the issue's setting: 3 nlist x 4 m x 8 nprobe x 5 depths
    python benchmarks/bench_sweep.py --quick          # a fast smoke run (20,000 x 64)
    python benchmarks/bench_sweep.py --json sweep.json

The issue's target: a sweep over 3 nlist x 4 m x 8 nprobe x 5 re-rank depths (0 among them) on
100,000 x 128 takes at most 1.5x the time of its 12 builds alone. On the same data, in one run:

1. builds alone (T_builds): each build trained from scratch and filled with the base, in a fresh
   session of its own (nothing shared: its coarse quantizer is trained again for every m), with
   single-threaded BLAS as the sweep runs; only ``Workbench.built`` is timed. T_builds is the sum.
2. the sweep (T_sweep): ``gpupq.sweep`` over the whole grid, one re-rank store, timing on (each
   point run at its own setting until its runs cover ``--min-time``, by default the sweep's own);
   the wall clock of the ``sweep`` call.
3. separate estimates: running every point as its own ``gpupq.estimate`` would take far too long,
   so a seeded random subset (``--subset``, one per build first) is run, each estimate at one
   (build, nprobe, depth) giving the raw and one re-ranked result. Their mean wall time times the
   number of estimates covering the grid (builds x nprobes x positive depths) is the separate
   total, EXTRAPOLATED from the subset, not measured. The subset's recalls are checked against
   the sweep's matching points: they must be equal exactly (the sweep trains the same indexes).

The ratio T_sweep / T_builds is the figure the issue bounds; the table also splits the sweep's
time by phase (ground truth, coarse and PQ training, add, the shared scans and recall of every
point, timing the points) beside the same phases of the builds alone. Shared machines are noisy:
read the ratios from one run, not the seconds across runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from typing import Any

import numpy as np

from gpupq.estimate import EstimateConfig, estimate
from gpupq.grid import Grid
from gpupq.io import make_synthetic
from gpupq.session import POINT_MIN_TIME, RunConfig, open_session
from gpupq.settings import Build
from gpupq.sweep import sweep
from gpupq.threads import available_cores, blas_description, blas_threads

FULL = {"n": 100_000, "d": 128, "nlist": "256,512,1024", "m": "8,16,32,64"}
QUICK = {"n": 20_000, "d": 64, "nlist": "64,128,256", "m": "4,8,16,32"}
TARGET = 1.5


def ints(text: str) -> list[int]:
    return sorted({int(v) for v in text.split(",") if v.strip()})


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def builds_alone(ds: Any, cfg: RunConfig, builds: list[Build], backend: str) -> list[dict[str, float]]:
    """Each build trained and filled in a fresh session: seconds of the ``built`` call, and its phases."""
    out = []
    for i, b in enumerate(builds):
        log(f"build alone {i + 1}/{len(builds)}: {b.label}")
        session = open_session(ds, cfg, backend)
        try:
            with blas_threads(1):  # as the sweep runs its builds
                t0 = time.perf_counter()
                built = session.bench.built(b)
                wall = time.perf_counter() - t0
        finally:
            session.close()
        out.append({"wall": wall, "coarse": built.coarse_s, "pq": built.train_s, "add": built.add_s})
    return out


def subset_points(
    builds: list[Build], nprobes: dict[Build, list[int]], depths: list[int], size: int, seed: int
) -> list[tuple[Build, int, int]]:
    """``size`` distinct (build, nprobe, depth) estimates, seeded: one per build first (builds drawn
    at random when size is smaller), then drawn from the rest of the grid."""
    rng = np.random.default_rng(seed)
    depths = depths or [0]
    every = [(b, p, r) for b in builds for p in nprobes[b] for r in depths]
    chosen: list[tuple[Build, int, int]] = []
    order = rng.permutation(len(builds))[: min(size, len(builds))]
    for i in sorted(order):
        b = builds[i]
        chosen.append((b, int(rng.choice(nprobes[b])), int(rng.choice(depths))))
    rest = [e for e in every if e not in chosen]
    extra = min(size - len(chosen), len(rest))
    if extra > 0:
        chosen += [rest[i] for i in sorted(rng.choice(len(rest), extra, replace=False))]
    return chosen


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help=f"a fast smoke run: {QUICK}")
    p.add_argument("--n", type=int, help=f"vectors (default {FULL['n']:,})")
    p.add_argument("--d", type=int, help=f"dimension (default {FULL['d']})")
    p.add_argument("--nlist", help=f"comma-separated (default {FULL['nlist']})")
    p.add_argument("--m", help=f"comma-separated (default {FULL['m']})")
    p.add_argument("--nprobe", default="1,2,4,8,16,32,64,128")
    p.add_argument("--rerank", default="0,20,50,100,200", help="re-rank depths, 0 = none")
    p.add_argument("--store", default="fp16", help="the re-rank store")
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--queries", type=int, default=100)
    p.add_argument("--subset", type=int, default=12, help="points run as separate estimates")
    p.add_argument("--seed", type=int, default=0, help="data, split and subset")
    p.add_argument("--threads", type=int, default=None, help="default: every core this process may use")
    p.add_argument("--backend", default="numpy")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--min-time", type=float, default=POINT_MIN_TIME, help=f"per timed point (default {POINT_MIN_TIME})")
    args = p.parse_args(argv)
    for key, value in (QUICK if args.quick else FULL).items():
        if getattr(args, key) is None:
            setattr(args, key, value)

    nlists, ms, nprobe_list, depth_list = ints(args.nlist), ints(args.m), ints(args.nprobe), ints(args.rerank)
    positive = [r for r in depth_list if r > 0]
    grid = Grid(nlist=nlists, m=ms, nprobe=nprobe_list, rerank=depth_list, stores=[args.store])
    builds = grid.builds()
    nprobes = {b: sorted({min(q, b.nlist) for q in nprobe_list}) for b in builds}
    n_points = sum(len(nprobes[b]) * (1 + len(positive)) for b in builds)
    n_estimates = sum(len(nprobes[b]) * max(1, len(positive)) for b in builds)  # raw + one depth each

    log(f"data: synthetic {args.n:,} x {args.d}, seed {args.seed}")
    ds = make_synthetic(args.n, args.d, seed=args.seed)
    cfg = RunConfig(k=args.k, queries=args.queries, seed=args.seed, threads=args.threads, min_time=args.min_time)

    # 1. builds alone
    alone = builds_alone(ds, cfg, builds, args.backend)
    t_builds = sum(a["wall"] for a in alone)

    # 2. the sweep
    log(f"sweep: {len(builds)} builds, {n_points} points")
    session = open_session(ds, cfg, args.backend)
    try:
        t0 = time.perf_counter()
        result = sweep(session, grid, cfg)
        t_sweep = time.perf_counter() - t0
    finally:
        session.close()
    assert len(result.points) == n_points, (len(result.points), n_points)
    gt_s = result.ground_truth_s or 0.0
    coarse_s = sum(c.coarse_train_s for c in result.builds if not c.coarse_shared)
    pq_s = sum(c.pq_train_s for c in result.builds)
    add_s = sum(c.add_s for c in result.builds)
    timing_s = sum(sum(pt.runs.seconds) for pt in result.points if pt.runs is not None)
    n_runs = sum(len(pt.runs.seconds) for pt in result.points if pt.runs is not None)
    other_s = result.wall_s - gt_s - coarse_s - pq_s - add_s - timing_s
    by_key = {(pt.build, pt.setting.nprobe, pt.setting.rerank): pt for pt in result.points}

    # 3. separate estimates of a subset
    chosen = subset_points(builds, nprobes, positive, args.subset, args.seed)
    est_rows = []
    for i, (b, nprobe, r) in enumerate(chosen):
        log(f"estimate {i + 1}/{len(chosen)}: {b.label}, nprobe {nprobe}, rerank {r}")
        ec = EstimateConfig(
            m=b.m,
            nlist=b.nlist,
            nprobe=nprobe,
            nbits=b.nbits,
            k=args.k,
            rerank=r,
            rerank_store=args.store,
            queries=args.queries,
            seed=args.seed,
            threads=args.threads,
            min_time=0.0,
        )
        t0 = time.perf_counter()
        res = estimate(ds, ec, args.backend).results[0]
        wall = time.perf_counter() - t0
        raw_pt, rr_pt = by_key[(b, nprobe, 0)], by_key.get((b, nprobe, r)) if r else None
        match = res.recall == raw_pt.recall and (rr_pt is None or res.recall_rerank == rr_pt.recall)
        t = res.timings
        est_rows.append(
            {
                "build": b.label,
                "nprobe": nprobe,
                "rerank": r,
                "wall_s": wall,
                "ground_truth_s": t.ground_truth_s,
                "train_s": t.train_s,
                "add_s": t.add_s,
                "search_s": t.search_s,
                "search_rerank_s": t.search_rerank_s,
                "recall": res.recall.mean,
                "recall_rerank": res.recall_rerank.mean if res.recall_rerank else None,
                "sweep_recall": raw_pt.recall.mean,
                "sweep_recall_rerank": rr_pt.recall.mean if rr_pt else None,
                "match": match,
            }
        )
    mean_est = statistics.mean(e["wall_s"] for e in est_rows)
    t_separate = mean_est * n_estimates
    all_match = all(e["match"] for e in est_rows)

    # 4. report
    ratio = t_sweep / t_builds
    a_coarse, a_pq, a_add = (sum(a[k] for a in alone) for k in ("coarse", "pq", "add"))
    a_other = t_builds - a_coarse - a_pq - a_add
    print(
        f"synthetic {args.n:,} x {args.d} (seed {args.seed}), {args.queries} queries, k={args.k}; "
        f"nlist {nlists} x m {ms} = {len(builds)} builds; nprobe {nprobe_list}; re-rank depths {depth_list} "
        f"({args.store}); {n_points} points; backend {args.backend}, threads {result.threads}; "
        f"every point timed at its own setting (runs covering min_time {args.min_time:g} s)"
    )
    print()
    print("| measure | seconds | note |")
    print("| --- | ---: | --- |")
    rows = [
        ("T_builds: the builds alone", t_builds, f"{len(builds)} fresh sessions, `built()` timed"),
        ("  coarse k-means", a_coarse, f"{len(builds)} trainings (none shared)"),
        ("  PQ training", a_pq, ""),
        ("  add", a_add, ""),
        ("  training-sample reads", a_other, "inside `built()`, outside its phase clocks"),
        ("T_sweep: the sweep, wall clock", t_sweep, f"result.wall_s {result.wall_s:.2f} s"),
        ("  ground truth", gt_s, "once for all points"),
        ("  coarse k-means", coarse_s, f"{len(nlists)} trainings (shared per nlist)"),
        ("  PQ training", pq_s, ""),
        ("  add", add_s, ""),
        ("  timing the points", timing_s, f"sum of every point's run seconds ({n_points} points, {n_runs} runs)"),
        ("  scans, re-rank scoring, recall, rest", other_s, "wall_s less the phases above"),
        ("**T_sweep / T_builds**", ratio, f"target <= {TARGET}: {'MET' if ratio <= TARGET else 'NOT MET'}"),
        (
            f"mean separate estimate ({len(est_rows)} measured)",
            mean_est,
            "ground truth + train + add + search + search with re-rank",
        ),
        (
            "separate estimates, EXTRAPOLATED",
            t_separate,
            f"{n_estimates} estimates x the measured mean (each gives raw + one depth)",
        ),
        ("**separate (extrapolated) / T_sweep**", t_separate / t_sweep, ""),
    ]
    for name, value, note in rows:
        print(f"| {name} | {value:.2f}{'x' if name.startswith('**') else ''} | {note} |")
    print()
    print(f"subset estimates against the sweep's points (recall equal exactly: {'yes' if all_match else 'NO'})")
    print()
    print("| build | nprobe | rerank | estimate s | recall raw (est / sweep) | re-ranked (est / sweep) | match |")
    print("| --- | ---: | ---: | ---: | --- | --- | --- |")
    for e in est_rows:
        rr = f"{e['recall_rerank']:.4f} / {e['sweep_recall_rerank']:.4f}" if e["rerank"] else "-"
        print(
            f"| {e['build']} | {e['nprobe']} | {e['rerank']} | {e['wall_s']:.2f} | "
            f"{e['recall']:.4f} / {e['sweep_recall']:.4f} | {rr} | {'yes' if e['match'] else 'NO'} |"
        )
    meta = {
        "date": datetime.datetime.now().isoformat(timespec="seconds"),
        "machine": f"{platform.platform()}, {platform.machine()} {platform.processor()}".strip(),
        "cpu_count": os.cpu_count(),
        "available_cores": available_cores(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numpy_blas": blas_description(),
        "device": result.device,
        "args": vars(args),
    }
    print()
    print(json.dumps(meta))
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "meta": meta,
                    "t_builds_s": t_builds,
                    "t_sweep_s": t_sweep,
                    "sweep_wall_s": result.wall_s,
                    "ratio": ratio,
                    "sweep_phases_s": {
                        "ground_truth": gt_s,
                        "coarse": coarse_s,
                        "pq_train": pq_s,
                        "add": add_s,
                        "timing": timing_s,
                        "other": other_s,
                    },
                    "builds_alone": [{"build": b.label, **a} for b, a in zip(builds, alone, strict=True)],
                    "sweep_builds": [c.to_dict() for c in result.builds],
                    "estimates": est_rows,
                    "estimates_needed": n_estimates,
                    "separate_extrapolated_s": t_separate,
                    "recall_match": all_match,
                },
                fh,
                indent=2,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
