"""Write a large clustered collection as .npy shards, in pieces (memory: one shard at a time).

    python benchmarks/make_clustered_shards.py OUT_DIR --n 20000000 --shard 1000000

Rows are i.i.d.: one of ``--centres`` centres (scale 3) plus Gaussian noise in a random
``--intrinsic``-dimensional subspace (and 0.05 of isotropic noise), so PQ has structure to
exploit, as with real embeddings. ``--sixteenth FILE`` also writes the first n/16 rows as one
``.npy`` (a uniform sample, the rows being i.i.d.) to predict the whole from with --scale-curve.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("out")
    p.add_argument("--n", type=int, default=20_000_000)
    p.add_argument("--d", type=int, default=128)
    p.add_argument("--shard", type=int, default=1_000_000)
    p.add_argument("--centres", type=int, default=8000)
    p.add_argument("--intrinsic", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sixteenth", help="also write the first n/16 rows to this .npy")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(args.seed)
    centres = rng.standard_normal((args.centres, args.d)).astype(np.float32) * 3
    basis = np.linalg.qr(rng.standard_normal((args.d, args.intrinsic)))[0].T.astype(np.float32)
    for i, start in enumerate(range(0, args.n, args.shard)):
        rows = min(args.shard, args.n - start)
        x = centres[rng.integers(0, len(centres), rows)]
        x += rng.standard_normal((rows, args.intrinsic)).astype(np.float32) @ basis
        x += 0.05 * rng.standard_normal((rows, args.d)).astype(np.float32)
        np.save(out / f"part-{i:04d}.npy", x)
    if args.sixteenth:
        want, parts = args.n // 16, []
        for f in sorted(out.glob("part-*.npy")):
            parts.append(np.load(f, mmap_mode="r")[: want - sum(len(q) for q in parts)])
            if sum(len(q) for q in parts) >= want:
                break
        np.save(args.sixteenth, np.concatenate(parts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
