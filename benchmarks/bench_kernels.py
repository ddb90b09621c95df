"""The numpy backend's compiled kernels against their array forms, step by step, in one run.

For each sub-space width d, the nearest of k targets per point (PQ training and encoding's
step) through every compiled kernel this processor runs and through the array form (a product
with an inner dimension of d + 1, then an argmin, in the same 16 MB blocks kmeans.assign uses);
then the ground truth's top-k merge and the k-means centroid sums. One thread (BLAS pinned),
best of --repeat, in ns per score (per point-and-target, per score merged, per summed value).

    python benchmarks/bench_kernels.py [--dims 4,8,16,24,32,48] [--k 256] [--points 65536]
"""

from __future__ import annotations

import argparse
import platform
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from gpupq import backends
from gpupq.backends import NumpyBackend
from gpupq.kmeans import score_operands
from gpupq.knn import _merge


def best_of(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm: page faults, first-touch
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def nearest_row(d: int, k: int, n: int, kernels: list[str], repeat: int, rng: np.random.Generator) -> list[float]:
    """ns per score of each compiled kernel, then of the array form, at width d."""
    native = backends._native
    x = rng.standard_normal((n, d), dtype=np.float32)
    c = rng.standard_normal((k, d), dtype=np.float32)
    ops_t = np.ascontiguousarray(score_operands(NumpyBackend(), c[None], "l2")[0].T)  # (d + 1, k)
    lab, best = np.empty(n, np.int64), np.empty(n, np.float32)
    cells = []
    for name in kernels:
        t = best_of(lambda name=name: native.nearest(x, ops_t, lab, best, name), repeat)
        cells.append(t / (n * k) * 1e9)
    x1 = np.hstack([x, np.ones((n, 1), np.float32)])
    step = max(1, (16 << 20) // (4 * k))  # kmeans.assign's block

    def array_form() -> None:
        for s in range(0, n, step):
            lab[s : s + step] = np.argmin(x1[s : s + step] @ ops_t, axis=1)

    cells.append(best_of(array_form, repeat) / (n * k) * 1e9)
    return cells


def merge_ns(be: NumpyBackend, rows: int, width: int, nblocks: int, k: int, repeat: int) -> float:
    """ns per score of folding nblocks (rows, width) score blocks into a running top-k."""
    rng = np.random.default_rng(1)
    blocks = [rng.standard_normal((rows, width), dtype=np.float32) for _ in range(nblocks)]
    ids = [np.arange(i * width, (i + 1) * width, dtype=np.int64) for i in range(nblocks)]

    kernel = be.merge_kernel()

    def run() -> None:
        bd = np.full((rows, k), np.inf, np.float32)
        bi = np.full((rows, k), -1, np.int64)
        for sc, ii in zip(blocks, ids, strict=True):
            if kernel is None:
                _merge(be, bd, bi, sc, ii, k)
            else:
                kernel(sc, ii, bd, bi)

    return best_of(run, repeat) / (rows * width * nblocks) * 1e9


def main() -> None:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("--dims", default="4,8,16,24,32,48")
    ap.add_argument("--k", type=int, default=256)
    ap.add_argument("--points", type=int, default=65536)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    native = backends._native
    kernels = list(native.KERNELS) if native is not None else []
    print(f"{platform.machine()}, numpy {np.__version__}, compiled kernels: {kernels or 'none'}; 1 thread")
    rng = np.random.default_rng(0)
    compiled = NumpyBackend()
    array_be = NumpyBackend()
    array_be.kernel = None  # the array forms
    engines = [("compiled", compiled)] if compiled.kernel else []
    engines.append(("array form", array_be))
    with threadpool_limits(1):
        print(f"\nnearest of {args.k} targets, ns per score (n = {args.points:,})")
        print(f"{'d':>4} " + " ".join(f"{name:>9}" for name in [*kernels, "array"]))
        for d in (int(v) for v in args.dims.split(",")):
            cells = nearest_row(d, args.k, args.points, kernels, args.repeat, rng)
            print(f"{d:>4} " + " ".join(f"{v:9.3f}" for v in cells))

        print("\ntop-10 merge of 8 blocks of 2,000 x 2,048 (the ground truth's), ns per score")
        for name, be in engines:
            print(f"  {name:>10}: {merge_ns(be, 2000, 2048, 8, 10, args.repeat):.3f}")

        # PQ training's shape: 16 sub-spaces x 65,536 points of 8, into 16 x 256 labels
        x = rng.standard_normal((16 * 65536, 8), dtype=np.float32)
        labels = rng.integers(0, 16 * 256, len(x))
        print("\ncentroid sums, 1,048,576 rows of 8 into 4,096 labels, ns per value")
        for name, be in engines:
            layout = be.label_sum_layout(x)
            t = best_of(lambda be=be, layout=layout: be.sum_rows_by_label(labels, layout, 4096), args.repeat)
            t_layout = best_of(lambda be=be: be.label_sum_layout(x), 1)
            print(f"  {name:>10}: {t / x.size * 1e9:.3f}, plus {t_layout * 1e3:.1f} ms once for its layout")


if __name__ == "__main__":
    main()
