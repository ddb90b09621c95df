"""Exact re-ranking of IVF-PQ candidates, and the storage it needs.

Re-ranking re-scores the best R candidates with stored vectors, as FAISS ``IndexRefine`` does
with a refine index. Those vectors cost memory, so the store's precision is a choice:

- ``fp32``: the vectors as they are, d·4 bytes each;
- ``fp16``: half precision, d·2 bytes (FAISS ``ScalarQuantizer.QT_fp16``);
- ``sq8``: 8 bits per dimension between a per-dimension min and max learnt from the training
  sample, d bytes plus 2·d·4 for the ranges (FAISS ``QT_8bit``: code ⌊255·(x − min)/(max − min)⌋,
  decoded to min + (code + ½)/255·(max − min)).

On the CPU the estimate keeps the original vectors (the memory-mapped input) and applies the
store's round trip as they are fetched, which gives exactly the distances a store of that
precision would. On a GPU the store is encoded once into device memory
(:class:`DeviceRows`), as a GPU deployment holds it, so a timed re-rank is a gather and a decode
on the device, with no trip through the host.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import GpupqError
from .memory import store_bytes
from .params import PARAMS

if TYPE_CHECKING:
    import numpy as np  # noqa: TID251 - type hints only

    from .backends import Array, Backend

STORES = PARAMS["rerank_store"].choices
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
        return self.decode(self.encode(x))

    def encode(self, x: np.ndarray) -> np.ndarray:
        """x: (n, d) float32 on the host -> what the store holds: (n, d) float32, float16 or uint8."""
        if self.kind == "fp32":
            return x
        if self.kind == "fp16":
            return x.astype("float16")
        unit = ((x - self.vmin) / self.vdiff).clip(0.0, 1.0)
        return (unit * 255.0).astype("uint8")  # truncation, as FAISS's (int) cast

    def decode(self, codes: Any, xp: Any = None) -> Any:
        """What the store holds (any leading shape, d last) -> float32 vectors of that shape,
        the same bits on every backend. ``xp``: the array module of ``codes`` when it is not
        host numpy (the sq8 ranges are copied there)."""
        if self.kind == "fp32":
            return codes
        if self.kind == "fp16":
            return codes.astype("float32")
        vmin, vdiff = (self.vmin, self.vdiff) if xp is None else (xp.asarray(self.vmin), xp.asarray(self.vdiff))
        # FAISS's vmin + (code + ½)/255·vdiff, step by step in one buffer (the same bits as the
        # expression, without its four temporaries: re-ranking decodes R·d values a query)
        out = codes.astype("float32")
        out += 0.5
        out /= 255.0
        out *= vdiff
        out += vmin
        return out

    def nbytes(self, n: int, d: int) -> int:
        """Bytes to store n vectors of d dimensions (:func:`gpupq.memory.store_bytes`)."""
        return store_bytes(self.kind, n, d)


@dataclass
class DeviceRows:
    """A re-rank store resident on the backend: codes (N, d) in the store's dtype (float32,
    float16 or uint8), row i holding the dataset's row i. Candidates are gathered and decoded
    where they are, with no copy to the host."""

    codes: Array
    store: RerankStore

    def vectors(self, be: Backend, ids: Array) -> Array:
        """ids: (b, R) int64 on the backend, -1 for none -> (b, R, d) float32 (row 0's vector
        where the id is -1: the caller masks those)."""
        return self.store.decode(be.xp.take(self.codes, be.xp.maximum(ids, 0), axis=0), be.xp)


#: how re-ranking reads stored vectors: a host fetch (fetch(ids) for host ids (r,) int64 ->
#: (r, d) float32 on the backend), or a store resident on the backend
Rows = Callable[[Any], Any] | DeviceRows


def rerank(be: Backend, q: Array, candidates: Array, fetch: Rows, k: int, metric: str) -> tuple[Array, Array]:
    """Exact re-ranking of candidate ids with stored vectors.

    q: (nq, d) float32; candidates: (nq, R) int64 with -1 for none; fetch(ids) returns the
    stored vectors (len(ids), d) float32 on the backend for host ids (r,) int64.
    Returns (scores (nq, k), ids (nq, k)) in FAISS's convention for ``metric`` (l2 or ip).
    """
    return best_of(be, candidates, candidate_scores(be, q, candidates, fetch, metric), k, metric)


def candidate_scores(be: Backend, q: Array, candidates: Array, fetch: Rows, metric: str) -> Array:
    """Exact scores of candidate ids with stored vectors: (nq, R) float32, smaller is better
    (squared L2, or the negated inner product), inf where the id is -1.

    Each score depends only on its (query, id) pair, so the scores of the first R' columns are
    those a re-rank of depth R' computes: a sweep scores its deepest candidate lists once and
    reads every shallower depth from the prefix (:func:`best_of` on ``scores[:, :R']``).
    """
    xp, host = be.xp, be.host
    nq, r = candidates.shape
    # Queries in chunks, so the fetched vectors and the (b, R, d) gather stay within budget.
    step = max(1, be.work_bytes() // max(1, r * q.shape[1] * 4 * 3))
    out = []
    for s in range(0, nq, step):
        cand = candidates[s : s + step]
        if isinstance(fetch, DeviceRows):
            x, sl = fetch.vectors(be, cand), cand  # (b, R, d), gathered on the backend
        else:
            cand_h = be.to_numpy(cand)
            valid = cand_h >= 0
            if not valid.any():
                # No candidate in the whole chunk (every probed list empty, or R = 0): nothing
                # to fetch, and a gather from an empty store would fail (CuPy: "non-empty take
                # from an empty axes").
                out.append(xp.full(cand_h.shape, _INF, dtype=xp.float32))
                continue
            # each stored row read once, however many queries hold it
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
        out.append(xp.where(sl >= 0, score, _INF).astype(xp.float32))
    return xp.concatenate(out) if out else xp.full((0, r), _INF, dtype=xp.float32)


def shared_candidate_scores(be: Backend, q: Array, cands: Sequence[Array], fetch: Rows, metric: str) -> list[Array]:
    """:func:`candidate_scores` of several candidate arrays of the same queries (a curve's
    nprobes: each (nq, R_i) int64, -1 for none), each (query, id) pair scored once. The
    rankings at successive nprobes share most of their candidates, so this reads and decodes
    a fraction of the rows; the scores are the same numbers (one depends only on its pair)."""
    xp = be.xp
    if len(cands) == 1:
        return [candidate_scores(be, q, cands[0], fetch, metric)]
    nq = q.shape[0]
    ids = xp.sort(xp.concatenate(cands, axis=1), axis=1)  # (nq, ΣR_i)
    first = xp.ones(ids.shape, dtype=bool)
    first[:, 1:] = ids[:, 1:] != ids[:, :-1]
    first &= ids >= 0
    width = max(1, int(first.sum(axis=1).max())) if nq else 1
    uniq = xp.full((nq, width), -1, dtype=xp.int64)  # each row's distinct ids, ascending, then -1
    rows, cols = xp.nonzero(first)
    uniq[rows, (xp.cumsum(first, axis=1) - 1)[rows, cols]] = ids[rows, cols]
    scores = candidate_scores(be, q, uniq, fetch, metric).ravel()
    if be.wide_ids:  # ids of any size: their ranks among these ids instead (the same order)
        every = xp.unique(ids[ids >= 0])
        uniq = xp.where(uniq >= 0, xp.searchsorted(every, uniq), -1)
        cands = [xp.where(c >= 0, xp.searchsorted(every, c), -1) for c in cands]
    # one sorted key per (row, id), the -1 padding last in its row: ids are below 2^32 - 1
    # (Backend.order_key's bound, or ranked above), so row·2^32 + id orders rows, then ids
    span = 1 << 32
    base = xp.arange(nq, dtype=xp.int64)[:, None] * span
    keys = (base + xp.where(uniq >= 0, uniq, span - 1)).ravel()
    out = []
    for c in cands:
        at = xp.searchsorted(keys, (base + xp.where(c >= 0, c, span - 1)).ravel()).reshape(c.shape)
        s = xp.take(scores, xp.minimum(at, keys.size - 1))
        out.append(xp.where(c >= 0, s, _INF).astype(xp.float32))
    return out


def best_of(be: Backend, candidates: Array, scores: Array, k: int, metric: str) -> tuple[Array, Array]:
    """The k best of candidates (nq, R) int64 by scores (nq, R) float32 (smaller is better):
    (scores (nq, k), ids (nq, k)) in FAISS's convention, -1 and inf/−inf past the candidates."""
    xp = be.xp
    nq = candidates.shape[0]
    if candidates.shape[1] == 0:
        d = xp.full((nq, k), _INF, dtype=xp.float32)
        i = xp.full((nq, k), -1, dtype=xp.int64)
        return (-d if metric == "ip" else d), i
    vals, ids = be.topk_exact(scores, min(k, candidates.shape[1]), tiebreak=candidates)
    ids = xp.where(xp.isfinite(vals), ids, -1)
    if vals.shape[1] < k:  # fewer candidates than k
        pad = k - vals.shape[1]
        vals = xp.concatenate([vals, xp.full((nq, pad), _INF, dtype=xp.float32)], axis=1)
        ids = xp.concatenate([ids, xp.full((nq, pad), -1, dtype=xp.int64)], axis=1)
    return (-vals if metric == "ip" else vals), ids
