"""Exact re-ranking of IVF-PQ candidates, and the storage it needs.

Re-ranking re-scores the best R candidates with stored vectors, as FAISS ``IndexRefine`` does
with a refine index. Those vectors cost memory, so the store's precision is a choice:

- ``fp32``: the vectors as they are, d·4 bytes each;
- ``fp16``: half precision, d·2 bytes (FAISS ``ScalarQuantizer.QT_fp16``);
- ``sq8``: 8 bits per dimension between a per-dimension min and max learnt from the training
  sample, d bytes plus 2·d·4 for the ranges (FAISS ``QT_8bit``: code ⌊255·(x − min)/(max − min)⌋,
  decoded to min + (code + ½)/255·(max − min)).

The estimate keeps the original vectors and applies the store's round trip as they are fetched,
which gives exactly the distances a store of that precision would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import GpupqError

if TYPE_CHECKING:
    import numpy as np  # noqa: TID251 - type hints only

    from .backends import Array, Backend

STORES = ("fp32", "fp16", "sq8")
_INF = float("inf")


class RerankStore:
    """How re-ranking vectors are stored. sq8 ranges: vmin, vdiff: (d,) float32 on the host."""

    def __init__(self, kind: str = "fp32") -> None:
        if kind not in STORES:
            raise GpupqError(f"--rerank-store {kind!r} is not one of {', '.join(STORES)}")
        self.kind = kind
        self.vmin: np.ndarray | None = None
        self.vdiff: np.ndarray | None = None

    def fit(self, x: np.ndarray) -> RerankStore:
        """Learn the sq8 ranges from a sample x: (n, d) float32 on the host (others need none)."""
        if self.kind == "sq8":
            self.vmin = x.min(axis=0)
            vdiff = x.max(axis=0) - self.vmin
            self.vdiff = vdiff + (vdiff == 0)  # a constant dimension: any non-zero range decodes it
        return self

    def round_trip(self, x: np.ndarray) -> np.ndarray:
        """What the store gives back for x: (n, d) float32 -> (n, d) float32 (host)."""
        if self.kind == "fp32":
            return x
        if self.kind == "fp16":
            return x.astype("float16").astype("float32")
        unit = ((x - self.vmin) / self.vdiff).clip(0.0, 1.0)
        codes = (unit * 255.0).astype("uint8")  # truncation, as FAISS's (int) cast
        return (self.vmin + (codes.astype("float32") + 0.5) / 255.0 * self.vdiff).astype("float32")

    def nbytes(self, n: int, d: int) -> int:
        """Bytes to store n vectors of d dimensions."""
        if self.kind == "fp32":
            return n * d * 4
        if self.kind == "fp16":
            return n * d * 2
        return n * d + 2 * d * 4


def rerank(
    be: Backend, q: Array, candidates: Array, fetch: Callable[[Any], Array], k: int, metric: str
) -> tuple[Array, Array]:
    """Exact re-ranking of candidate ids with stored vectors.

    q: (nq, d) float32; candidates: (nq, R) int64 with -1 for none; fetch(ids) returns the
    stored vectors (len(ids), d) float32 on the backend for host ids (r,) int64.
    Returns (scores (nq, k), ids (nq, k)) in FAISS's convention for ``metric`` (l2 or ip).
    """
    xp, host = be.xp, be.host
    nq, r = candidates.shape
    # Queries in chunks, so the fetched vectors and the (b, R, d) gather stay within budget.
    step = max(1, be.work_bytes() // max(1, r * q.shape[1] * 4 * 3))
    out_d, out_i = [], []
    for s in range(0, nq, step):
        cand = candidates[s : s + step]
        cand_h = be.to_numpy(cand)
        valid = cand_h >= 0
        if not valid.any():
            # No candidate in the whole chunk (every probed list empty, or R = 0): nothing to
            # fetch, and a gather from an empty store would fail (CuPy: "non-empty take from
            # an empty axes"). Same shapes as a chunk with candidates.
            width = min(k, r)
            out_d.append(xp.full((cand_h.shape[0], width), _INF, dtype=xp.float32))
            out_i.append(xp.full((cand_h.shape[0], width), -1, dtype=xp.int64))
            continue
        uniq, inverse = host.unique(cand_h[valid], return_inverse=True)
        vecs = fetch(uniq)  # (u, d)
        slot = host.full(cand_h.shape, -1, dtype="int64")
        slot[valid] = inverse
        sl = be.asarray(slot)
        x = vecs[xp.maximum(sl, 0)]  # (b, R, d)
        qs = q[s : s + step]
        if metric == "l2":
            diff = x - qs[:, None, :]
            score = xp.einsum("brd,brd->br", diff, diff)
        else:
            score = -xp.einsum("brd,bd->br", x, qs)
        score = xp.where(sl >= 0, score, _INF)
        vals, pos = be.topk(score, k)
        ids = xp.take_along_axis(cand, pos, axis=1)
        out_d.append(vals)
        out_i.append(xp.where(xp.isfinite(vals), ids, -1))
    d = xp.concatenate(out_d)
    i = xp.concatenate(out_i)
    if d.shape[1] < k:  # fewer candidates than k
        pad = k - d.shape[1]
        d = xp.concatenate([d, xp.full((nq, pad), _INF, dtype=xp.float32)], axis=1)
        i = xp.concatenate([i, xp.full((nq, pad), -1, dtype=xp.int64)], axis=1)
    return (-d if metric == "ip" else d), i
