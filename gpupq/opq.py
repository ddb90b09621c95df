"""OPQ: an orthogonal rotation learnt so that product quantization loses less (Ge et al. 2013).

Trained as FAISS ``OPQMatrix`` does (the ``OPQ{m}`` of an index factory string): at most
256·256 training points, centred for training only; a random orthogonal start (QR of a Gaussian
matrix, drawn on the host); then 50 rounds of: rotate, train an 8-bit PQ with m sub-quantizers
(40 k-means iterations the first round, 4 from then on, each round continuing from the last
codebooks, up to 1000 points per centroid), encode and decode, and solve the orthogonal
Procrustes problem for the rotation that best maps the data onto its reconstructions.

The rotation is applied as ``y = x @ rotation.T``; being orthogonal, it keeps L2 distances and
inner products, so exact neighbours are unchanged and only the quantization improves.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .pq import ProductQuantizer

if TYPE_CHECKING:
    import numpy as np  # noqa: TID251 - type hints only

    from .backends import Array, Backend

OPQ_NITER = 50
OPQ_NITER_PQ = 4
OPQ_NITER_PQ_FIRST = 40
OPQ_MAX_TRAIN = 256 * 256


class OPQ:
    """rotation: (d, d) float32 on the backend; objective: PQ reconstruction error per round."""

    def __init__(self, d: int, m: int) -> None:
        self.d = d
        self.m = m
        self.rotation: Array | None = None
        self.objective: list[float] = []

    def fit(self, be: Backend, x: Array, rng: np.random.Generator, niter: int = OPQ_NITER) -> OPQ:
        """Learn the rotation from x: (n, d) float32 on the backend. Returns self."""
        xp = be.xp
        if x.shape[0] > OPQ_MAX_TRAIN:
            x = x[be.asarray(rng.permutation(x.shape[0])[:OPQ_MAX_TRAIN])]
        xc = x - x.mean(axis=0, keepdims=True)
        q, _ = be.host.linalg.qr(rng.standard_normal((self.d, self.d)))
        rotation = be.asarray(q.astype("float32"))
        pq = ProductQuantizer(self.d, self.m, nbits=8)
        errors = []
        for it in range(niter):
            proj = xc @ rotation.T
            pq.fit(
                be,
                proj,
                rng,
                niter=OPQ_NITER_PQ_FIRST if it == 0 else OPQ_NITER_PQ,
                max_points_per_centroid=1000,
                hot_start=it > 0,
            )
            recon = pq.decode(be, pq.encode(be, proj))
            errors.append(((recon - proj) ** 2).sum() / proj.shape[0])
            # Procrustes: the orthogonal A minimising ‖xc Aᵀ − recon‖ is V Uᵀ for xcᵀ recon = U S Vᵀ.
            u, _, vt = xp.linalg.svd(xc.T @ recon)
            rotation = xp.ascontiguousarray((u @ vt).T).astype(xp.float32)
        self.rotation = rotation
        self.objective = [float(e) for e in be.to_numpy(xp.stack(errors))] if errors else []
        return self

    def apply(self, x: Array) -> Array:
        """x: (n, d) float32 -> rotated (n, d) float32."""
        return x @ self.rotation.T
