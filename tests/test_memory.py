"""Memory: the deployment bill at --n-total, and nlist scaled to it."""

from __future__ import annotations

from gpupq.memory import deployment, memory_bill, scaled_nlist
from gpupq.settings import Build


def test_deployment_bill_is_exact_arithmetic():
    assert scaled_nlist(1024, 100_000, 100_000_000) == 32768  # ×√1000 ≈ 31.6 -> 32768
    assert scaled_nlist(256, 10_000, 10_000) == 256
    dep = deployment(Build(1024, 16), 16, "fp16", 100_000, 50_000_000, 128, "l2")
    nlist = scaled_nlist(1024, 100_000, 50_000_000)
    bill = memory_bill(50_000_000, 128, nlist, 16, 8, "l2", 50_000_000 * 128 * 2)
    assert dep.memory_bytes == bill.with_rerank
    assert dep.nlist == nlist and dep.nprobe == 16 * nlist // 1024
    assert dep.memory.codes == 50_000_000 * 16 and dep.memory.ids == 50_000_000 * 8
