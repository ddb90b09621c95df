"""k-means through matrix products, batched over independent sub-problems.

One call clusters B independent point sets at once, ``x: (B, n, d)``: the coarse quantizer is
B = 1, and product quantization clusters its m sub-spaces as B = m in the same kernels.
Semantics follow FAISS ``Clustering``: initial centroids are a random subset of the points
(drawn on the host, so every backend starts from the same ones), at most
``max_points_per_centroid * k`` points are used, empty clusters are re-seeded by splitting a
large cluster, ``spherical`` re-normalises centroids (FAISS does so for inner-product IVF), and
a point set stops iterating once its objective, as a float32, is the same as the iteration
before (FAISS 1.15's ``early_stop_threshold`` of 0; product quantization clusters each
sub-space on its own, so each of the B sets stops on its own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .errors import GpupqError

if TYPE_CHECKING:
    import numpy as np  # noqa: TID251 - type hints only

    from .backends import Array, Backend

#: FAISS's symmetric perturbation when an empty cluster takes half of another.
_SPLIT_EPS = 1.0 / 1024.0
#: FAISS warns below this many training points per centroid.
MIN_POINTS_PER_CENTROID = 39
MAX_POINTS_PER_CENTROID = 256


@dataclass
class KMeansResult:
    """centroids: (B, k, d) float32 on the backend; objective: per iteration, summed over B
    (sum of squared distances for l2, minus the sum of inner products for ip), a set that has
    stopped counting with its last value; iterations: (B,) how many each set ran."""

    centroids: Array
    objective: list[float] = field(default_factory=list)
    n_points: int = 0
    warnings: list[str] = field(default_factory=list)
    iterations: list[int] = field(default_factory=list)


def sq_norms(be: Backend, x: Array) -> Array:
    """Squared L2 norms along the last axis: (..., d) float32 -> (...) float32."""
    return be.sq_norms(x)


def score_operands(be: Backend, y: Array, metric: str) -> Array:
    """Targets y: (B, k, d) float32 -> (B, k, d + 1) float32 such that ``[x, 1] @ result.T`` is
    the score of every x against every target, smaller is better: ‖y‖² − 2⟨x, y⟩ for l2 (the
    squared distance less ‖x‖²), −⟨x, y⟩ for ip. One GEMM (BLAS takes the transposed view as
    is) then gives the whole score block, with no extra passes over it."""
    xp = be.xp
    nb, k, d = y.shape
    out = xp.empty((nb, k, d + 1), dtype=xp.float32)
    out[:, :, :d] = y * (-2.0 if metric == "l2" else -1.0)
    out[:, :, d] = sq_norms(be, y) if metric == "l2" else 0.0
    return out


def with_ones(be: Backend, x: Array) -> Array:
    """x: (..., n, d) float32 -> (..., n, d + 1) float32 with a last column of ones."""
    xp = be.xp
    out = xp.ones((*x.shape[:-1], x.shape[-1] + 1), dtype=xp.float32)
    out[..., :-1] = x
    return out


def assign(
    be: Backend,
    x: Array,
    centroids: Array,
    metric: str = "l2",
    with_score: bool = True,
    x_norms: Array | None = None,
) -> tuple[Array, Array | None]:
    """Nearest centroid of each point: through the backend's compiled kernel where it has one
    for this d and k (``Backend.nearest_kernel``), else as a product and an argmin in blocks of
    about ``be.block_bytes()`` of scores (the array form, also CuPy's).

    x: (B, n, d) float32; centroids: (B, k, d) float32; x_norms: (B, n) float32 squared norms of
    x when the caller has them (k-means computes them once, not every iteration).
    Returns (labels (B, n) int64, score (B, n) float32 or None unless ``with_score``) where score
    is the squared distance (l2) or minus the inner product (ip): smaller is better for both.
    """
    xp = be.xp
    nb, n, d = x.shape
    k = centroids.shape[1]
    targets_t = xp.transpose(score_operands(be, centroids, metric), (0, 2, 1))  # (B, d + 1, k)
    kernel = be.nearest_kernel(d, k)
    if kernel is not None:
        return _assign_compiled(be, kernel, x, xp.ascontiguousarray(targets_t), metric, with_score, x_norms)
    step = max(1, be.block_bytes() // (4 * nb * max(k, 1)))
    # at least one block per thread: the blocks are independent and run on the thread budget
    step = min(step, -(-n // be.threads)) if n else step
    labels = xp.empty((nb, n), dtype=xp.int64)
    score = xp.empty((nb, n), dtype=xp.float32) if with_score else None

    def block(start: int) -> None:
        stop = min(n, start + step)
        dots = xp.matmul(with_ones(be, x[:, start:stop]), targets_t)  # (B, s, k)
        lab = xp.argmin(dots, axis=2)
        labels[:, start:stop] = lab
        if score is not None:
            # a flat take: much less overhead than take_along_axis on a 3-D block
            best = xp.take(dots, lab + xp.arange(lab.size).reshape(lab.shape) * k)
            if metric == "l2":
                norms = x_norms[:, start:stop] if x_norms is not None else sq_norms(be, x[:, start:stop])
                best = xp.maximum(best + norms, 0.0)
            score[:, start:stop] = best

    be.map(block, range(0, n, step))
    return labels, score


def _assign_compiled(
    be: Backend,
    kernel: Any,
    x: Array,
    targets_t: Array,
    metric: str,
    with_score: bool,
    x_norms: Array | None,
) -> tuple[Array, Array | None]:
    """:func:`assign` through the backend's compiled kernel (contract: ``Backend.nearest_kernel``).

    x: (B, n, d) float32, each point's row contiguous (a strided view is fine); targets_t:
    (B, d + 1, k) float32 C-contiguous. Same returns as :func:`assign`. The kernel keeps no score
    matrix, so the pieces are simply one per set and thread.
    """
    xp = be.xp
    nb, n, _ = x.shape
    labels = xp.empty((nb, n), dtype=xp.int64)
    best = xp.empty((nb, n), dtype=xp.float32)
    pieces = [(b, rows) for b in range(nb) for rows in be.row_groups(n)]

    def piece(item: tuple[int, slice]) -> None:
        b, rows = item
        kernel(x[b, rows], targets_t[b], labels[b, rows], best[b, rows])
        if with_score and metric == "l2":
            norms = x_norms[b, rows] if x_norms is not None else sq_norms(be, x[b, rows])
            # best is ‖c‖² − 2⟨x, c⟩: the distance less ‖x‖², which can round below 0
            xp.maximum(best[b, rows] + norms, 0.0, out=best[b, rows])

    be.map(piece, pieces)
    return labels, best if with_score else None


def kmeans(
    be: Backend,
    x: Array,
    k: int,
    niter: int,
    rng: np.random.Generator,
    metric: str = "l2",
    spherical: bool = False,
    max_points_per_centroid: int = MAX_POINTS_PER_CENTROID,
    what: str = "k-means",
    init: Array | None = None,
) -> KMeansResult:
    """Cluster each of B point sets into k centroids.

    x: (B, n, d) or (n, d) float32 on the backend. Returns centroids (B, k, d) float32.
    init: (B, k, d) float32 starting centroids (a "hot start", as OPQ's inner PQ uses), else
    k of the points drawn at random.
    Raises GpupqError with fewer than k points; warns (in the result) below 39 points per
    centroid, as FAISS does.
    """
    xp = be.xp
    if x.ndim == 2:
        x = x[None]
    nb, n, d = x.shape
    warnings: list[str] = []
    if n < k:
        raise GpupqError(f"{what}: {n} training points is fewer than the {k} centroids to train")
    if n < MIN_POINTS_PER_CENTROID * k:
        warnings.append(
            f"{what}: {n} training points for {k} centroids; FAISS advises at least "
            f"{MIN_POINTS_PER_CENTROID * k} ({MIN_POINTS_PER_CENTROID} per centroid)"
        )
    if n > max_points_per_centroid * k:
        keep = be.asarray(rng.permutation(n)[: max_points_per_centroid * k])
        x = x[:, keep]
        n = x.shape[1]
    if init is None:
        centroids = xp.ascontiguousarray(x[:, be.asarray(rng.permutation(n)[:k])])
    else:
        centroids = xp.array(init, dtype=xp.float32)
    if spherical:
        centroids = _normalise(be, centroids)
    # Laid out once for the centroid update, which sums the same points every iteration.
    x_sums = be.label_sum_layout(x.reshape(nb * n, d))
    x_norms = sq_norms(be, x) if metric == "l2" else None
    host = be.host
    active = host.ones(nb, dtype=bool)  # the sets still iterating
    last = host.zeros(nb)  # each set's latest objective (float64)
    iterations = host.zeros(nb, dtype=int)
    objective: list[float] = []
    # The batch assigned each iteration: every set at first; once stopped sets are an eighth of
    # it, the sets still iterating are gathered into a smaller one (a copy of their points, so
    # not redone for each set that stops).
    batch = host.arange(nb)
    pick = None  # batch on the backend, once it is not every set
    xa, na = x, x_norms
    for it in range(niter):
        live = host.flatnonzero(active)
        if len(live) <= len(batch) * 7 // 8:
            batch = live
            pick = be.asarray(batch)
            xa = x[pick]
            na = x_norms[pick] if x_norms is not None else None
        in_batch = active[batch]  # (len(batch),) which of the batch still iterate
        ca = centroids if pick is None else centroids[pick]
        labels, score = assign(be, xa, ca, metric, x_norms=na)
        # label b·k + j for set b's centroid j; a stopped set's points go to a spare row nb·k
        offset = be.asarray(host.where(in_batch, batch * k, -1)[:, None])
        labels = labels + offset if in_batch.all() else xp.where(offset >= 0, labels + offset, nb * k)
        if pick is None:
            flat_labels = labels.reshape(-1)
        else:
            full = xp.full((nb, n), nb * k, dtype=xp.int64)
            full[pick] = labels
            flat_labels = full.reshape(-1)
        sums = be.sum_rows_by_label(flat_labels, x_sums, nb * k + 1)[: nb * k]
        counts = be.count_labels(flat_labels, nb * k + 1)[: nb * k].astype(xp.float32)
        new = (sums / xp.maximum(counts, 1.0)[:, None]).reshape(nb, k, d)
        # the one read per iteration (a synchronisation on a GPU): the counts, to split empty
        # clusters now, and each set's objective, to stop it
        read = be.to_numpy(xp.concatenate([counts.astype(xp.float64), score.sum(axis=1, dtype=xp.float64)]))
        counts_host = read[: nb * k].reshape(nb, k)
        counts_host[~active] = 1.0  # a stopped set has no points this time, and nothing to split
        if (counts_host == 0).any():
            new = _split_empty(be, new, counts_host, rng)
        if spherical:
            new = _normalise(be, new)
        centroids = new if active.all() else xp.where(be.asarray(active)[:, None, None], new, centroids)
        obj = read[nb * k :][in_batch]
        # FAISS compares float32 objectives: unchanged (and not 0) means converged
        if it:
            active[live[converged(obj, last[live])]] = False
        last[live] = obj
        iterations[live] += 1
        objective.append(float(last.sum()))
        if not active.any():
            break
    return KMeansResult(
        centroids=centroids,
        objective=objective,
        n_points=n,
        warnings=warnings,
        iterations=[int(v) for v in iterations],
    )


def converged(objective: Any, previous: Any) -> Any:
    """FAISS 1.15's stopping rule with ``early_stop_threshold`` 0: (B,) float64 host objectives
    of this iteration and the last -> (B,) bool, True where the two are equal as float32 (FAISS
    keeps its objective in a float) and the last is not 0 (FAISS's relative change is then
    undefined, and it goes on)."""
    return (objective.astype("float32") == previous.astype("float32")) & (previous != 0)


def _normalise(be: Backend, c: Array) -> Array:
    norms = be.xp.sqrt(sq_norms(be, c))[..., None]
    return c / be.xp.maximum(norms, 1e-30)


def _split_empty(be: Backend, centroids: Array, counts: Any, rng: np.random.Generator) -> Array:
    """Give each empty cluster half of a populous one, as FAISS ``split_clusters`` does.

    centroids: (B, k, d) on the backend; counts: (B, k) host array (modified copy).
    The donor is drawn with probability proportional to (size - 1); the two centroids are
    pushed apart by a symmetric relative perturbation of 1/1024.
    """
    nb, k, d = centroids.shape
    host = be.to_numpy(centroids).copy()
    counts = counts.astype("float64").copy()
    sign = 1.0 - 2.0 * (be.host.arange(d) % 2)  # +1, -1, +1, ...
    for b in range(nb):
        for ci in (counts[b] == 0).nonzero()[0]:
            weights = (counts[b] - 1.0).clip(min=0.0)
            if weights.sum() <= 0:
                break
            cj = int(rng.choice(k, p=weights / weights.sum()))
            host[b, ci] = host[b, cj] * (1.0 + _SPLIT_EPS * sign)
            host[b, cj] = host[b, cj] * (1.0 - _SPLIT_EPS * sign)
            counts[b, ci] = counts[b, cj] // 2
            counts[b, cj] -= counts[b, ci]
    return be.asarray(host)
