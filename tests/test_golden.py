"""Behaviour unchanged: estimate, sweep and recommend give the recorded JSON on fixed seeds
(everything but timings and machine names; see ``tests/golden.py``)."""

from __future__ import annotations

from typing import Any

import pytest

from . import golden


def _differences(a: Any, b: Any, where: str = "") -> list[str]:
    """Paths where two JSON values differ, for a message that says what moved."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b)):
            if key not in a or key not in b:
                out.append(f"{where}.{key}: only in {'the output' if key in a else 'the record'}")
            else:
                out += _differences(a[key], b[key], f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} items, recorded {len(b)}"]
        return [d for i, (x, y) in enumerate(zip(a, b, strict=True)) for d in _differences(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {a!r}, recorded {b!r}"]


@pytest.mark.parametrize("case", list(golden.CASES))
def test_output_matches_the_record(case):
    kernel = golden.blas_kernel()
    diffs = _differences(golden.run(case), golden.stored(case, kernel))
    assert not diffs, (
        f"{case}: {len(diffs)} differences from {golden.record_path(case, kernel).name} under OpenBLAS's "
        f"{kernel} kernel (regenerate with python -m tests.golden --update only for a change meant to alter "
        "them):\n" + "\n".join(diffs[:30])
    )


def test_a_kernel_without_its_own_record_is_held_to_the_reference():
    """A kernel's own record is used only where one was written; otherwise Haswell's holds."""
    case = next(iter(golden.CASES))
    assert golden.record_path(case, golden.REFERENCE_KERNEL).name == f"{case}.json"
    assert golden.record_path(case, "NoSuchKernel").name == f"{case}.json"
    assert golden.blas_kernel()  # never empty: 'unknown' where numpy's BLAS is not its OpenBLAS


def test_stable_drops_only_what_the_clock_decides():
    """The comparison must not be blind: recall, memory and ids survive stabilising."""
    obj = {
        "points": [
            {
                "recall": {"mean": 0.5},
                "queries_per_s": 10.0,
                "memory_bytes": 7,
                "pareto": {"memory": True, "qps": False},
            }
        ],
        "wall_s": 3.0,
    }
    assert golden.stable(obj) == {"points": [{"recall": {"mean": 0.5}, "memory_bytes": 7, "pareto": {"memory": True}}]}
