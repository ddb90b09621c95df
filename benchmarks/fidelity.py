"""gpupq against faiss-cpu on one vector file, at several settings: recall and memory agreement.

    python benchmarks/fidelity.py --data minilm.npy --metric cosine --queries 1000

For each setting, ``gpupq.estimate(..., verify="faiss")`` builds gpupq's index and the same FAISS
index (same base, training sample, queries and batches) and this prints one markdown row:
recall raw and re-ranked for both, their difference, gpupq's memory bill against
``faiss.serialize_index``, and whether the row is within ``--tolerance`` (recall) and 1%
(memory). The exit status is 1 if any row is not.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import sys
import time

import numpy as np

import gpupq

# (label, EstimateConfig fields): spanning m, nlist, nprobe, nbits, OPQ and the re-rank store
SETTINGS = [
    ("IVF256,PQ16 nprobe=8", dict(nlist=256, m=16, nprobe=8)),
    ("IVF256,PQ32 nprobe=16", dict(nlist=256, m=32, nprobe=16)),
    ("IVF1024,PQ48 nprobe=32", dict(nlist=1024, m=48, nprobe=32)),
    ("IVF512,PQ64 nprobe=8", dict(nlist=512, m=64, nprobe=8)),
    ("IVF1024,PQ96 nprobe=64", dict(nlist=1024, m=96, nprobe=64)),
    ("IVF256,PQ32x4 nprobe=16 sq8", dict(nlist=256, m=32, nbits=4, nprobe=16, rerank_store="sq8")),
    ("OPQ32,IVF256,PQ32 nprobe=16", dict(nlist=256, m=32, nprobe=16, opq=True)),
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", required=True, help="vectors in any format gpupq reads")
    p.add_argument("--metric", default="cosine")
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("-k", type=int, default=10)
    p.add_argument("--rerank", type=int, default=100)
    p.add_argument("--tolerance", type=float, default=0.02)
    p.add_argument("--only", help="run only the settings whose label contains this")
    args = p.parse_args(argv)

    data = gpupq.load_vectors(args.data, metric=args.metric)
    print(f"{args.data}: {data.n:,} x {data.d} {data.dtype}, metric {args.metric}, {args.queries} held-out queries,")
    print(f"k={args.k}, re-rank {args.rerank}; {datetime.date.today()}, {platform.machine()}, numpy {np.__version__}")
    print()
    print("| setting | recall raw gpupq / faiss (Δ) | re-ranked gpupq / faiss (Δ) | bill / serialized (Δ) | ok |")
    print("| --- | --- | --- | --- | --- |")
    failures = 0
    for label, fields in SETTINGS:
        if args.only and args.only not in label:
            continue
        cfg = gpupq.EstimateConfig(k=args.k, rerank=args.rerank, queries=args.queries, metric=args.metric, **fields)
        t0 = time.perf_counter()
        res = gpupq.estimate(data, cfg, backends="numpy", verify="faiss")
        ours, check = res.results[0], res.faiss
        d_raw = ours.recall.mean - check.recall.mean
        d_rr = ours.recall_rerank.mean - check.recall_rerank.mean
        bill, size = ours.memory.index_serialized, check.index_serialized
        d_mem = (bill - size) / size
        ok = abs(d_raw) <= args.tolerance and abs(d_rr) <= args.tolerance and abs(d_mem) < 0.01
        failures += not ok
        print(
            f"| {label} | {ours.recall.mean:.3f} / {check.recall.mean:.3f} ({d_raw:+.3f}) "
            f"| {ours.recall_rerank.mean:.3f} / {check.recall_rerank.mean:.3f} ({d_rr:+.3f}) "
            f"| {bill:,} / {size:,} ({100 * d_mem:+.2f}%) | {'yes' if ok else 'NO'} |",
            flush=True,
        )
        print(f"<!-- {label}: {time.perf_counter() - t0:.0f} s -->", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
