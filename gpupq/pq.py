"""Product quantization: m sub-quantizers of ksub = 2**nbits centroids each.

Names follow Jégou et al. and nanopq: ``m`` sub-vectors of ``dsub = d / m`` dimensions, each
quantized to one of ``ksub`` codewords; ``codebooks: (m, ksub, dsub) float32``. Codes are held
one byte per sub-quantizer for fast lookups; a real index packs them into
``ceil(m * nbits / 8)`` bytes, which is what :attr:`code_size` reports.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import GpupqError
from .kmeans import assign, kmeans
from .params import PARAMS, check

if TYPE_CHECKING:
    import numpy as np  # noqa: TID251 - type hints only

    from .backends import Array, Backend

NBITS_RANGE = (int(PARAMS["nbits"].low or 4), int(PARAMS["nbits"].high or 8))
#: FAISS ProductQuantizer's k-means iterations.
PQ_NITER = 25


def packed_code_size(m: int, nbits: int) -> int:
    """Bytes per vector of m codes of nbits bits, packed as a real index stores them."""
    return (m * nbits + 7) // 8


def valid_m(d: int) -> list[int]:
    """Values of m that divide d (the usable sub-quantizer counts), ascending."""
    return [m for m in range(1, d + 1) if d % m == 0]


def check_pq_params(d: int, m: int, nbits: int) -> None:
    """m and nbits by their rules (:data:`gpupq.params.PARAMS`), and m dividing d."""
    check("nbits", nbits)
    check("m", m)
    if d % m != 0:
        options = [v for v in valid_m(d) if v <= 256]
        raise GpupqError(f"dimension {d} is not divisible by --m {m}; valid m: {', '.join(map(str, options))}")


class ProductQuantizer:
    """m sub-quantizers of 2**nbits codewords over d-dimensional vectors."""

    def __init__(self, d: int, m: int, nbits: int = 8) -> None:
        check_pq_params(d, m, nbits)
        self.d = d
        self.m = m
        self.nbits = nbits
        self.ksub = 1 << nbits
        self.dsub = d // m
        self.codebooks: Array | None = None  # (m, ksub, dsub) float32

    @property
    def code_size(self) -> int:
        """Bytes per packed code, as a real index stores it."""
        return packed_code_size(self.m, self.nbits)

    def _split(self, be: Backend, x: Array) -> Array:
        """(n, d) -> (m, n, dsub), the batched layout of the sub-problems."""
        return be.xp.ascontiguousarray(x.reshape(x.shape[0], self.m, self.dsub).transpose(1, 0, 2))

    def fit(
        self,
        be: Backend,
        x: Array,
        rng: np.random.Generator,
        niter: int = PQ_NITER,
        max_points_per_centroid: int = 256,
        hot_start: bool = False,
    ) -> ProductQuantizer:
        """Train the codebooks on x: (n, d) float32 (residuals, for IVF-PQ). Returns self.

        hot_start continues from the current codebooks (FAISS ``Train_hot_start``).
        """
        res = kmeans(
            be,
            self._split(be, x),
            self.ksub,
            niter,
            rng,
            max_points_per_centroid=max_points_per_centroid,
            what="PQ training",
            init=self.codebooks if hot_start and self.codebooks is not None else None,
        )
        self.codebooks = res.centroids
        self.train_result = res
        return self

    def encode(self, be: Backend, x: Array) -> Array:
        """x: (n, d) float32 -> codes (n, m) uint8, the nearest codeword per sub-vector."""
        # A strided view, not :meth:`_split`'s copy: assign copies each small block anyway
        # (with its column of ones), so a whole transposed copy first was pure cost (11% of
        # adding at d 768, m 96).
        view = x.reshape(x.shape[0], self.m, self.dsub).transpose(1, 0, 2)
        labels, _ = assign(be, view, self.codebooks, with_score=False)
        return labels.T.astype(be.xp.uint8)

    def decode(self, be: Backend, codes: Array) -> Array:
        """codes: (n, m) uint8 -> reconstructions (n, d) float32."""
        xp = be.xp
        parts = [self.codebooks[j][codes[:, j].astype(xp.int64)] for j in range(self.m)]
        return xp.concatenate(parts, axis=1)

    def inner_tables(self, be: Backend, q: Array) -> Array:
        """Inner products of query sub-vectors with every codeword.

        q: (nq, d) float32 -> (nq, m, ksub) float32, table[i, j, c] = <q_i[j], codebooks[j, c]>.
        """
        xp = be.xp
        prod = xp.matmul(self._split(be, q), xp.transpose(self.codebooks, (0, 2, 1)))  # (m, nq, ksub)
        return xp.ascontiguousarray(xp.transpose(prod, (1, 0, 2)))
