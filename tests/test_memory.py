"""Memory: the deployment bill at --n-total, and nlist scaled to it."""

from __future__ import annotations

from gpupq.memory import deployment, memory_bill, scaled_nlist
from gpupq.settings import Build


def test_deployment_bill_is_exact_arithmetic():
    assert scaled_nlist(1024, 100_000, 100_000_000) == 32382  # ×√1000 ≈ 31.62
    assert scaled_nlist(256, 10_000, 10_000) == 256
    dep = deployment(Build(1024, 16), 16, "fp16", 100_000, 50_000_000, 128, "l2")
    nlist = scaled_nlist(1024, 100_000, 50_000_000)
    bill = memory_bill(50_000_000, 128, nlist, 16, 8, "l2", 50_000_000 * 128 * 2)
    assert dep.memory_bytes == bill.with_rerank
    assert dep.nlist == nlist and dep.nprobe == round(16 * nlist / 1024)
    assert dep.memory.codes == 50_000_000 * 16 and dep.memory.ids == 50_000_000 * 8


def test_the_n_total_frontier_is_on_the_deployed_memory_axis():
    """Scaled to N_total, nlist and the precomputed table grow by other factors than the codes:
    the frontier at N_total is computed on its own memory, not carried over from the sample."""
    import numpy as np

    from gpupq.grid import Grid
    from gpupq.pareto import non_dominated
    from gpupq.sweep import sweep

    from .helpers import _session

    _ds, cfg, session = _session()
    cfg.n_total = 50_000_000
    with session:
        result = sweep(session, Grid(nlist=[16, 64], m=[4, 8], nprobe=[1, 4, 16], rerank=[0, 40]), cfg)
    rows = result.deployment["points"]
    values = np.array([[r["recall"], r["memory_bytes_total"]] for r in rows], dtype=float)
    assert [r["pareto_memory"] for r in rows] == non_dominated(values, (True, False)).tolist()
    assert result.deployment["frontier"] == [r for r in rows if r["pareto_memory"]]
