"""Synthetic clustered data, for trying gpupq without a file."""

from __future__ import annotations

import numpy as np

from ..errors import GpupqError
from .dataset import Dataset, chunk_rows


def make_synthetic(n: int, d: int, seed: int = 0, metric: str = "l2") -> Dataset:
    """Clustered data as in ``pqtool.py``: ``max(n // 250, 2)`` centres of scale 5 plus unit noise.

    Row i belongs to centre ``i % ncentres``. Generated in float32 chunks, with no Python loop per
    vector. Returns a Dataset over an in-memory (n, d) float32 array.
    """
    if n < 2 or d < 1:
        raise GpupqError(f"--n must be at least 2 and --d at least 1 (got n={n}, d={d})")
    rng = np.random.default_rng(seed)
    ncentres = max(n // 250, 2)
    centres = rng.normal(scale=5.0, size=(ncentres, d)).astype(np.float32)
    out = np.empty((n, d), dtype=np.float32)
    step = chunk_rows(d)
    for start in range(0, n, step):
        stop = min(n, start + step)
        out[start:stop] = rng.standard_normal(size=(stop - start, d), dtype=np.float32)
        out[start:stop] += centres[np.arange(start, stop) % ncentres]
    return Dataset(array=out, source="synthetic", metric=metric)
