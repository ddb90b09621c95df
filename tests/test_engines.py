"""Each engine's bill for one index (gpupq.engines): the formulas of their sources, worked by
hand on small cases, and what each engine refuses."""

from __future__ import annotations

import pytest

from gpupq.engines import ENGINES, engine_bill, unsupported
from gpupq.memory import index_memory_terms


def test_faiss_cpu_is_the_checked_bill_with_the_table_apart():
    terms = index_memory_terms(10_000, 64, 64, 16, 8, "l2")
    bill = engine_bill("faiss-cpu", 10_000, 64, 64, 16, 8, "l2")
    assert bill.table == terms["precomputed_table"] == 64 * 16 * 256 * 4
    assert bill.total(table=True) == sum(terms.values())
    assert bill.total(table=False) == sum(terms.values()) - bill.table
    assert engine_bill("faiss-cpu", 10_000, 64, 64, 16, 8, "ip").table == 0  # none under inner product


def test_cuvs_pads_lists_and_chunks_codes():
    # 1,000 vectors in 10 lists of 100: capacity 128 each (the next power of two); d=48, m=12,
    # 5 bits: 25 codes a 16-byte chunk, so one chunk (16 bytes) a vector
    bill = engine_bill("cuvs", 1000, 48, 10, 12, 5, "l2")
    assert bill.terms["codes"] == 10 * 128 * 16
    assert bill.terms["ids"] == 10 * 128 * 8
    assert bill.terms["pq_codebooks"] == 256 * ((12 * 4 * 32 * 4 + 255) // 256)  # m·(d/m)·2^5·4, 256-aligned
    assert bill.terms["rotation_matrix"] == 48 * 48 * 4
    # centers 10·roundup(49, 8)·4 = 2,240 → 2,304 aligned; rotated centers 10·48·4 = 1,920 → 2,048
    assert bill.terms["coarse_centroids"] == 2304 + 2048
    assert bill.table == 0
    # above 1,024 vectors a list is a multiple of 1,024; below 32, 32 slots
    assert engine_bill("cuvs", 2000, 48, 1, 12, 8, "l2").terms["ids"] == 2048 * 8
    assert engine_bill("cuvs", 100, 48, 10, 12, 8, "l2").terms["ids"] == 10 * 256  # 32 slots, 256-byte aligned


def test_faiss_gpu_layouts_and_table():
    # classic layout: m bytes a vector at 8 bits, each list 256-byte aligned
    bill = engine_bill("faiss-gpu", 1000, 64, 10, 16, 8, "l2")
    assert bill.terms["codes"] == 10 * 1792  # 100·16 = 1,600 bytes, aligned to 1,792
    assert bill.terms["pq_codebooks"] == 2 * 256 * 64 * 4  # two transposed copies
    assert bill.table == 10 * 16 * 256 * 4 and not bill.lut_fp16
    # interleaved layout at 4 bits: ⌈100/32⌉ groups of 4·nbits·m bytes
    assert engine_bill("faiss-gpu", 1000, 64, 10, 16, 4, "l2").terms["codes"] == 10 * 256 * 4
    # m=64 at 8 bits: a 64 KiB float32 lookup table does not fit 48 KiB, the float16 one does
    big = engine_bill("faiss-gpu", 1000, 128, 10, 64, 8, "l2")
    assert big.lut_fp16 and big.table == 10 * 64 * 256 * 2
    assert engine_bill("faiss-gpu", 1000, 64, 10, 16, 8, "ip").table == 0


@pytest.mark.parametrize(
    ("engine", "d", "m", "nbits", "opq", "refused"),
    [
        ("cuvs", 64, 16, 8, True, "OPQ"),
        ("cuvs", 64, 3, 5, False, "multiple of 8"),
        ("faiss-gpu", 64, 16, 7, False, "nbits"),
        ("faiss-gpu", 384, 192, 8, False, "48 KiB"),
        ("faiss-gpu", 384, 96, 8, False, None),
        ("faiss-cpu", 384, 192, 7, True, None),
    ],
)
def test_what_each_engine_refuses(engine, d, m, nbits, opq, refused):
    why = unsupported(engine, d, m, nbits, opq)
    assert (why is None) if refused is None else (refused in why)


def test_every_engine_bills_every_term_positive_and_grows_with_n():
    for engine in ENGINES:
        small = engine_bill(engine, 10_000, 64, 32, 16, 8, "l2")
        large = engine_bill(engine, 100_000, 64, 32, 16, 8, "l2")
        assert large.index_bytes > small.index_bytes > 10_000 * (16 + 8)
