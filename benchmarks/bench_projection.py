"""Is the queries/s projected to --n-total what a collection of that size gives? Measured, not assumed.

    python benchmarks/bench_projection.py [--n 64000] [--d 64] [--data FILE --metric cosine]

For each setting: on a quarter of the base, time the index at its nprobe and at twice that, fit
the projection (:mod:`gpupq.projection`) and project queries/s to the whole base; then build the
whole base's index with nlist and nprobe scaled by the same rule and time it. Both sides use the
same held-out queries and gpupq's own scan on numpy, one after the other in one process. Prints
one markdown row per setting: projected, measured, and their ratio.
"""

from __future__ import annotations

import argparse
import datetime
import platform

import numpy as np

import gpupq
from gpupq.io import Dataset
from gpupq.plan import measured_rate
from gpupq.projection import fit_speed, projected_qps, scale
from gpupq.session import RunConfig, open_session
from gpupq.settings import Build

SETTINGS = [(64, 16, 8, 4), (128, 16, 8, 8), (64, 32, 4, 2), (256, 16, 8, 16)]  # nlist, m, nbits, nprobe


def _timed(session, build: Build, nprobes: list[int], k: int) -> list[tuple[float, float]]:
    """(codes scanned a query, seconds a query) of ``build`` at each nprobe, timed as deployed."""
    bench = session.bench
    truth = bench.truth(k)
    pts = []
    for p in nprobes:
        curve = bench.curve(build, [p], k)
        pts.append(bench.points(build, curve, p, k, [], truth)[0])
    bench.time_points(pts, k, 0.5)
    return [(pt.scanned_per_query, 1.0 / pt.queries_per_s) for pt in pts]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=64000)
    p.add_argument("--d", type=int, default=64)
    p.add_argument("--data", help="vectors in any format gpupq reads (default: synthetic)")
    p.add_argument("--metric", default=None)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("-k", type=int, default=10)
    args = p.parse_args(argv)
    if args.data:
        data = gpupq.load_vectors(args.data, metric=args.metric)
        x = np.asarray(data.array[:], dtype=np.float32)
    else:
        x = np.asarray(gpupq.make_synthetic(args.n, args.d, 0).array, dtype=np.float32)
    metric = args.metric or "l2"
    rng = np.random.default_rng(0)
    x = x[rng.permutation(len(x))]
    queries = Dataset(x[: args.queries], "queries", metric)
    whole = x[args.queries :]
    quarter = whole[: len(whole) // 4]
    cfg = RunConfig(k=args.k, metric=metric, min_time=0.5)
    where = f"{datetime.date.today()}, {platform.processor() or platform.machine()}"
    print(f"{len(whole):,} × {x.shape[1]} base ({args.data or 'synthetic'}), projected from its first quarter "
          f"({len(quarter):,}); {args.queries} queries; {where}")  # fmt: skip
    print()
    print("| setting (at the quarter → whole) | projected q/s | measured q/s | projected / measured |")
    print("| --- | --- | --- | --- |")
    for nlist, m, nbits, nprobe in SETTINGS:
        with open_session(quarter, cfg, "numpy", queries=queries) as s:
            build = Build(nlist, m, nbits)
            timed = _timed(s, build, [nprobe, 2 * nprobe], args.k)
            fixed, per_code = fit_speed(timed)
            proj = projected_qps(
                fixed, per_code, timed[0][0], s.split.n_base, len(whole), nlist, x.shape[1], measured_rate(s.backend)
            )
        nl, npr = scale(nlist, nprobe, len(quarter), len(whole))
        with open_session(whole, cfg, "numpy", queries=queries) as s:
            ((_, sec),) = _timed(s, Build(nl, m, nbits), [npr], args.k)
        got = 1.0 / sec
        label = f"IVF{nlist},PQ{m}x{nbits} nprobe {nprobe} → IVF{nl} nprobe {npr}"
        print(f"| {label} | {proj:,.0f} | {got:,.0f} | {proj / got:.2f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
