"""The memory bill of an IVF-PQ deployment, in one place: every byte formula gpupq reports.

An index with a flat coarse quantizer holds (FAISS ``IndexIVFPQ``; ``faiss.serialize_index``
writes the first six to within a few hundred bytes of headers):

- codes N·⌈m·nbits/8⌉, ids N·8 (int64), coarse centroids nlist·d·4, PQ codebooks 2^nbits·d·4,
  inverted-list sizes nlist·8, an OPQ rotation d·d·4 when used;
- the precomputed L2 table nlist·m·2^nbits·4, which FAISS builds when it loads an L2 index and
  the table is at most 2 GiB (:data:`PRECOMPUTED_TABLE_MAX_BYTES`);
- re-ranking needs the vectors themselves (:func:`store_bytes`): the codes alone cannot re-rank.

:func:`deployment` bills the same configuration at the size the user will deploy, with nlist
and nprobe scaled by :data:`NLIST_RULE`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from .pq import packed_code_size
from .projection import RULE, scale
from .settings import Build

#: FAISS builds the precomputed table (``use_precomputed_table``) only up to this size.
PRECOMPUTED_TABLE_MAX_BYTES = 2 << 30

NLIST_RULE = RULE  # the one projection to N_total (gpupq.projection)
RECALL_CAVEAT = "recall was measured at the sample size, not at N_total"


def store_bytes(kind: str, n: int, d: int) -> int:
    """Bytes of a re-rank store of n vectors of d dimensions: fp32 d·4, fp16 d·2, sq8 d each plus
    the per-dimension min and range (2·d·4)."""
    if kind == "fp32":
        return n * d * 4
    if kind == "fp16":
        return n * d * 2
    if kind == "sq8":
        return n * d + 2 * d * 4
    raise ValueError(f"unknown re-rank store {kind!r}")


def index_memory_terms(
    n: int, d: int, nlist: int, m: int, nbits: int, metric: str, opq: bool = False, copies: int = 1
) -> dict[str, int]:
    """Bytes of each part of an IVF-PQ index with a flat coarse quantizer. copies: indexes the n
    vectors are split over, each with its own quantizers (``--shard-training per-shard``): every
    term but the codes and ids is each one's."""
    ksub = 1 << nbits
    table = nlist * m * ksub * 4
    return {
        "codes": n * packed_code_size(m, nbits),
        "ids": n * 8,
        "coarse_centroids": copies * nlist * d * 4,
        "pq_codebooks": copies * ksub * d * 4,
        "list_sizes": copies * nlist * 8,
        "opq_matrix": copies * d * d * 4 if opq else 0,
        "precomputed_table": copies * table if metric == "l2" and table <= PRECOMPUTED_TABLE_MAX_BYTES else 0,
    }


@dataclass
class MemoryBill:
    """Bytes of everything an IVF-PQ deployment of n vectors holds, and the ratios that matter.

    ``index_serialized`` (codes, ids, coarse centroids, codebooks, list sizes, OPQ matrix) is what
    ``faiss.serialize_index`` writes, to within its few hundred bytes of headers;
    ``index_in_memory`` adds the precomputed L2 table FAISS builds when it loads the index.
    Re-ranking needs stored vectors: ``rerank_store`` is their size at the store's precision
    (fp32, fp16 or sq8) when re-ranking is used, else 0.
    """

    n: int
    d: int
    vectors_fp32: int
    codes: int
    ids: int
    coarse_centroids: int
    pq_codebooks: int
    list_sizes: int
    opq_matrix: int
    precomputed_table: int
    rerank_store: int
    code_size: int
    #: indexes the vectors are split over, each with its own quantizers (per-shard training)
    quantizer_copies: int = 1

    @property
    def index_serialized(self) -> int:
        return self.codes + self.ids + self.coarse_centroids + self.pq_codebooks + self.list_sizes + self.opq_matrix

    @property
    def index_in_memory(self) -> int:
        return self.index_serialized + self.precomputed_table

    @property
    def with_rerank(self) -> int:
        return self.index_in_memory + self.rerank_store

    def to_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = asdict(self)
        if self.quantizer_copies == 1:
            del out["quantizer_copies"]
        out.update(
            index_serialized=self.index_serialized,
            index_in_memory=self.index_in_memory,
            with_rerank=self.with_rerank,
            ratio_codes=self.vectors_fp32 / self.codes,
            ratio_index=self.vectors_fp32 / self.index_in_memory,
            ratio_with_rerank=self.vectors_fp32 / self.with_rerank,
        )
        return out


def memory_bill(
    n: int,
    d: int,
    nlist: int,
    m: int,
    nbits: int,
    metric: str,
    rerank_store: int = 0,
    opq: bool = False,
    copies: int = 1,
) -> MemoryBill:
    """The bill for n vectors; rerank_store: bytes of the re-ranking vectors (0 without re-ranking);
    copies: per-shard indexes with their own quantizers (:func:`index_memory_terms`)."""
    terms = index_memory_terms(n, d, nlist, m, nbits, metric, opq, copies)
    return MemoryBill(
        n=n,
        d=d,
        vectors_fp32=n * d * 4,
        rerank_store=rerank_store,
        code_size=packed_code_size(m, nbits),
        quantizer_copies=copies,
        **terms,
    )


# ---------------------------------------------------------------------------------- at N_total
def scaled_nlist(nlist: int, n_sample: int, n_total: int) -> int:
    """nlist for n_total vectors by :data:`NLIST_RULE` (at least 1, at most n_total)."""
    return scale(nlist, 1, n_sample, n_total)[0]


@dataclass
class Deployment:
    """A configuration billed at the deployment size."""

    n_total: int
    nlist: int
    nprobe: int
    memory: MemoryBill
    memory_bytes: int  # the index, plus the re-rank store when it re-ranks

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_total": self.n_total,
            "nlist": self.nlist,
            "nprobe": self.nprobe,
            "memory_bytes": self.memory_bytes,
            "memory": self.memory.to_dict(),
            "rule": NLIST_RULE,
            "recall_note": RECALL_CAVEAT,
        }


def deployment(build: Build, nprobe: int, store: str, n_sample: int, n_total: int, d: int, metric: str) -> Deployment:
    """The exact bill of ``build`` holding n_total vectors, with a ``store`` ("" for none) when it
    re-ranks; metric: the index's, ``l2`` or ``ip``."""
    nlist, nprobe_t = scale(build.nlist, nprobe, n_sample, n_total)
    rerank = store_bytes(store, n_total, d) if store else 0
    bill = memory_bill(n_total, d, nlist, build.m, build.nbits, metric, rerank, build.opq)
    total = bill.with_rerank if store else bill.index_in_memory
    return Deployment(n_total, nlist, nprobe_t, bill, total)
