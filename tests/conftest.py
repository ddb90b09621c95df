"""Shared fixtures: every test that takes ``backend`` runs on each usable backend.

The CuPy case is marked ``gpu`` and skipped where no CUDA device answers. ``numpy-padded`` is the
numpy backend driven through the GPU's scan strategy, so CI (no GPU) still executes the code the
CuPy backend runs for search.
"""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from gpupq.backends import Backend, CupyBackend, NumpyBackend, cupy_status


class PaddedNumpyBackend(NumpyBackend):
    name = "numpy-padded"
    scan_strategy = "padded"

    def block_bytes(self) -> int:
        return 1 << 20  # small blocks: exercise the chunk loops on small test data

    def work_bytes(self) -> int:
        return 1 << 20


def _cupy_param() -> object:
    status = cupy_status()
    return pytest.param(
        "cupy",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not status.usable, reason=f"CuPy backend: {status.reason}")],
    )


@pytest.fixture(params=["numpy", "numpy-padded", _cupy_param()])
def backend(request: pytest.FixtureRequest) -> Backend:
    if request.param == "numpy":
        return NumpyBackend()
    if request.param == "numpy-padded":
        return PaddedNumpyBackend()
    return CupyBackend()


@pytest.fixture
def numpy_backend() -> NumpyBackend:
    return NumpyBackend()


def clustered(n: int, d: int, seed: int = 0, centres: int = 20, scale: float = 5.0) -> np.ndarray:
    """(n, d) float32 clustered data (uniform random data gives useless IVF-PQ recall)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(scale=scale, size=(centres, d)).astype(np.float32)
    return (c[rng.integers(0, centres, n)] + rng.standard_normal((n, d), dtype=np.float32)).astype(np.float32)


def cli_runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (click before 8.2 mixes them by default)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click 8.2+: always separate, and the argument is gone
        return CliRunner()
