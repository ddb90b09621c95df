"""What each deployment engine holds in memory for the same IVF-PQ index, and what it supports.

The same trained index (nlist, m, nbits, OPQ) is held differently by each engine:

- ``faiss-cpu`` (``IndexIVFPQ``): :func:`gpupq.memory.index_memory_terms`, checked against FAISS
  in the test suite. Its precomputed L2 table (nlist·m·2^nbits·4 bytes, built by default under L2
  up to 2 GiB) is optional: a deployer skips it (``use_precomputed_table = -1`` before training,
  or ``faiss.read_index(path, faiss.IO_FLAG_SKIP_PRECOMPUTE_TABLE)``) and FAISS then computes each
  probed list's table at search time, with the same results and a slower search.
- ``faiss-gpu`` (``GpuIndexIVFPQ``, the classic kernels, an index copied from the CPU, which sizes
  its lists exactly): faiss/gpu/GpuIndexIVFPQ.cu and faiss/gpu/impl/IVFPQ.cu (commit 02dbb4e4).
  Codes n·m bytes per list (nbits 8, ``IVFPQ::getGpuVectorsEncodingSize_``), or in the
  interleaved layout (nbits 4, 5, 6, or an m without a classic kernel) ⌈n/32⌉·4·nbits·m bytes; ids 8 bytes each
  (``INDICES_64_BIT``); every allocation rounded up to 256 bytes
  (``StandardGpuResources::allocMemory``); two transposed copies of the PQ centroids
  (``IVFPQ::setPQCentroids_``: 2·2^nbits·d·4); flat coarse centroids and their norms; three
  per-list pointer vectors of 8·nextpow2(nlist) bytes. The precomputed table is off by default
  (``usePrecomputedTables``), 2 or 4 bytes an entry (``useFloat16LookupTables``), and L2 only.
  The lookup table of a query must fit 48 KiB of shared memory (``IVFPQ::isSupportedPQCodeLength``
  and the m list of ``isSupportedNoPrecomputedSubDimSize``), so m·2^nbits·4 ≤ 48 KiB in float32,
  twice that in float16: a float16 lookup table is what admits m > 48 at 8 bits.
- ``cuvs`` (``ivf_pq``, defaults): cpp/src/neighbors/ivf_pq_index.cu, ivf_list.cuh and
  cpp/include/cuvs/neighbors/ivf_pq.hpp (commit ff0c8076). Codes interleaved in groups of 32
  vectors, 16-byte chunks holding ⌊128/nbits⌋ codes each (so nbits 5–7 waste space); each list's
  capacity padded (``conservative_memory_allocation = false``: below 1,024 vectors the next power
  of two of at least 32, above it a multiple of 1,024), ids int64 for every slot; a rotation
  matrix rot_dim·d·4 (rot_dim = m·⌈d/m⌉), centers nlist·roundup(d+1, 8)·4 and rotated centers
  nlist·rot_dim·4, PQ centers m·⌈d/m⌉·2^nbits·4, list sizes and pointers 20·nlist. cuVS builds
  no precomputed table and has no OPQ (its own rotation takes that place).

Lists are taken as balanced (N/nlist vectors each) where an engine pads lists: the padding of
real, uneven lists differs by a few percent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .memory import index_memory_terms

ENGINES = ("faiss-cpu", "faiss-gpu", "cuvs")
DEFAULT_ENGINE = "faiss-cpu"

#: FAISS GPU's classic (non-interleaved) layout: the sub-quantizer counts it has kernels for
#: (faiss/gpu/impl/IVFPQ.cu, ``isSupportedNoPrecomputedSubDimSize`` / code lengths)
FAISS_GPU_M = frozenset({1, 2, 3, 4, 8, 12, 16, 20, 24, 28, 32, 40, 48, 56, 64, 96})
#: bits per code FAISS GPU supports (8 in either layout, 4–6 in the interleaved one)
FAISS_GPU_BITS = frozenset({4, 5, 6, 8})
#: shared memory a query's lookup table must fit on FAISS GPU
FAISS_GPU_LUT_BYTES = 48 << 10
GPU_ALIGN = 256  # bytes every GPU allocation is rounded up to (FAISS and RMM alike)


def _align(nbytes: int) -> int:
    return -(-nbytes // GPU_ALIGN) * GPU_ALIGN


def _balanced(n: int, nlist: int) -> list[tuple[int, int]]:
    """(list size, how many lists have it) for n vectors spread evenly over nlist lists."""
    base, extra = divmod(n, nlist)
    return [(s, c) for s, c in ((base + 1, extra), (base, nlist - extra)) if c]


def _next_pow2(x: int) -> int:
    return 1 << max(0, (x - 1).bit_length())


@dataclass(frozen=True)
class EngineBill:
    """The bytes ``engine`` holds for one index: ``terms`` (name → bytes) without the optional
    precomputed table, and ``table``, its bytes when kept (0 where the engine has none)."""

    engine: str
    terms: dict[str, int]
    table: int
    lut_fp16: bool = False  # FAISS GPU: the float16 lookup table the index needs

    @property
    def index_bytes(self) -> int:
        return sum(self.terms.values())

    def total(self, table: bool) -> int:
        return self.index_bytes + (self.table if table else 0)


def unsupported(engine: str, d: int, m: int, nbits: int, opq: bool) -> str | None:
    """Why ``engine`` cannot serve the index, or None when it can."""
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}")
    if engine == "cuvs":
        if opq:
            return "cuVS has no OPQ (its ivf_pq applies its own rotation)"
        if not 4 <= nbits <= 8 or (m * nbits) % 8:
            return "cuVS needs pq_bits 4–8 and pq_dim·pq_bits a multiple of 8"
        return None
    if engine == "faiss-gpu":
        if d % m:
            return "FAISS GPU needs m to divide d"
        if nbits not in FAISS_GPU_BITS:
            return f"FAISS GPU supports nbits 4, 5, 6 and 8, not {nbits}"
        if m * (1 << nbits) * 2 > FAISS_GPU_LUT_BYTES:
            return f"FAISS GPU's lookup table for m={m}, nbits={nbits} exceeds 48 KiB of shared memory even in float16"
    return None


def engine_bill(
    engine: str, n: int, d: int, nlist: int, m: int, nbits: int, metric: str, opq: bool = False
) -> EngineBill:
    """The bytes ``engine`` holds for an index of n vectors (metric: the index's, l2 or ip)."""
    ksub = 1 << nbits
    if engine == "faiss-cpu":
        terms = index_memory_terms(n, d, nlist, m, nbits, metric, opq)
        table = terms.pop("precomputed_table")
        return EngineBill(engine, terms, table)
    if engine == "faiss-gpu":
        lists = _balanced(n, nlist)
        interleaved = nbits != 8 or m not in FAISS_GPU_M  # the classic layout: 8 bits, listed m only
        if interleaved:
            codes = sum(c * _align(math.ceil(s / 32) * 4 * nbits * m) for s, c in lists if s)
        else:
            codes = sum(c * _align(s * m) for s, c in lists if s)
        lut_fp16 = m * ksub * 4 > FAISS_GPU_LUT_BYTES
        terms = {
            "codes": codes,
            "ids": sum(c * _align(s * 8) for s, c in lists if s),
            "coarse_centroids": _align(nlist * d * 4) + _align(nlist * 4),
            "pq_codebooks": 2 * _align(ksub * d * 4),
            "list_pointers": 3 * _align(8 * _next_pow2(nlist)),
            "opq_matrix": d * d * 4 if opq else 0,  # applied on the host (IndexPreTransform)
        }
        table = _align(nlist * m * ksub * (2 if lut_fp16 else 4)) if metric == "l2" else 0
        return EngineBill(engine, terms, table, lut_fp16)
    if engine == "cuvs":
        pq_len = math.ceil(d / m)
        rot_dim = pq_len * m
        slot = 16 * math.ceil(m / (128 // nbits))

        def capacity(s: int) -> int:
            if s >= 1024:
                return -(-s // 1024) * 1024
            return min(_next_pow2(max(s, 32)), 1024)

        lists = _balanced(n, nlist)
        terms = {
            "codes": sum(c * _align(capacity(s) * slot) for s, c in lists),
            "ids": sum(c * _align(capacity(s) * 8) for s, c in lists),
            "coarse_centroids": _align(nlist * (-(-(d + 1) // 8) * 8) * 4) + _align(nlist * rot_dim * 4),
            "pq_codebooks": _align(m * pq_len * ksub * 4),
            "rotation_matrix": _align(rot_dim * d * 4),
            "list_pointers": _align(4 * nlist) + 2 * _align(8 * nlist),
        }
        return EngineBill(engine, terms, 0)
    raise ValueError(f"unknown engine {engine!r}")


def table_skippable(engine: str) -> bool:
    """Can a deployment on ``engine`` leave the precomputed table out? (FAISS CPU builds it by
    default and can be told not to; FAISS GPU builds it only when asked.)"""
    return engine in ("faiss-cpu", "faiss-gpu")
