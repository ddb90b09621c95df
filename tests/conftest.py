"""Shared fixtures: every test that takes ``backend`` runs on each backend this machine can run.

- ``numpy``: the CPU backend as shipped (the "lists" scan).
- ``numpy-chunked``: numpy with tiny work chunks (1 MiB, 64 KiB for the scan), so CI runs every
  chunk loop: many scan chunks, query batches and k-means blocks on small test data; and with
  the array forms of codeword assignment (a product and an argmin), the ground truth's top-k
  merge and the centroid sums, where ``numpy`` runs the compiled kernels, so every backend test
  runs both forms.
- ``fake-cupy``: the :class:`CupyBackend` class itself over ``tests/fake_cupy.py``, a strict numpy
  stand-in for CuPy (not a GPU: not marked ``gpu``, runs everywhere). It runs the CuPy backend's
  own methods and fails where CuPy fails on host/device mix-ups, implicit conversions and
  index wrap-around; it says nothing about kernels or speed.
- ``cupy``: the real thing, marked ``gpu`` and skipped where no CUDA device answers.

``other_backend`` is every backend but plain numpy, for tests that compare a backend with
numpy: comparing numpy with itself catches nothing.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator

import numpy as np
import pytest
from typer.testing import CliRunner

from gpupq.backends import Backend, CupyBackend, NumpyBackend, cupy_status

from . import fake_cupy


class ChunkedNumpyBackend(NumpyBackend):
    name = "numpy-chunked"

    def _block_budget(self) -> int:
        return 1 << 20  # small blocks: exercise the chunk loops on small test data

    def _work_budget(self) -> int:
        return 1 << 20

    def _scan_budget(self) -> int:
        return 64 << 10

    def __init__(self) -> None:
        super().__init__()
        self.kernel = None  # the array forms (in blocks): what plain numpy runs without the extension


def _cupy_param() -> object:
    status = cupy_status()
    return pytest.param(
        "cupy",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not status.usable, reason=f"CuPy backend: {status.reason}")],
    )


def install_fake_cupy(monkeypatch: pytest.MonkeyPatch) -> CupyBackend:
    """Make ``import cupy`` / ``import cupyx`` give the stand-in for this test; returns the CuPy
    backend class running over it. Free device memory starts at the stand-in's 8 GiB."""
    cupy_status()  # cache the real answer first: the stand-in must not leak into later tests
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "cupyx", fake_cupy.cupyx)
    fake_cupy.set_free_memory(None)
    return CupyBackend()


def _make(name: str, monkeypatch: pytest.MonkeyPatch) -> Backend:
    if name == "numpy":
        return NumpyBackend()
    if name == "numpy-chunked":
        return ChunkedNumpyBackend()
    if name == "fake-cupy":
        return install_fake_cupy(monkeypatch)
    return CupyBackend()


@pytest.fixture(params=["numpy", "numpy-chunked", "fake-cupy", _cupy_param()])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    yield _make(request.param, monkeypatch)
    fake_cupy.set_free_memory(None)


@pytest.fixture(params=["numpy-chunked", "fake-cupy", _cupy_param()])
def other_backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Backend]:
    """Every backend except plain numpy, for "agrees with numpy" tests."""
    yield _make(request.param, monkeypatch)
    fake_cupy.set_free_memory(None)


@pytest.fixture
def numpy_backend() -> NumpyBackend:
    return NumpyBackend()


@pytest.fixture(autouse=True)
def _one_timed_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each timed phase runs once unless a test asks for more (EstimateConfig.min_time): tests
    check figures, not timings, and need not repeat phases for a steady clock."""
    monkeypatch.setattr(importlib.import_module("gpupq.estimate"), "MIN_TIMED_S", 0.0)


def clustered(n: int, d: int, seed: int = 0, centres: int = 20, scale: float = 5.0) -> np.ndarray:
    """(n, d) float32 clustered data (uniform random data gives useless IVF-PQ recall)."""
    rng = np.random.default_rng(seed)
    c = rng.normal(scale=scale, size=(centres, d)).astype(np.float32)
    return (c[rng.integers(0, centres, n)] + rng.standard_normal((n, d), dtype=np.float32)).astype(np.float32)


def same_neighbours(d_a: np.ndarray, i_a: np.ndarray, d_b: np.ndarray, i_b: np.ndarray, metric: str = "l2") -> None:
    """Assert two searches found the same neighbours: equal scores (float32 tolerance) and, per
    row, the same ids among those strictly better than the row's k-th score. Tied scores
    (identical codes) may come back in any order, so their ids are not compared."""
    np.testing.assert_allclose(d_a, d_b, rtol=1e-4, atol=1e-3)
    sign = 1.0 if metric == "l2" else -1.0  # smaller is better
    for row in range(len(d_a)):
        sets = []
        for ids, sc in ((i_a[row], d_a[row]), (i_b[row], d_b[row])):
            s = sign * sc
            sets.append(set(ids[s < s[-1] - 1e-3].tolist()))
        assert sets[0] == sets[1], f"row {row}: {sorted(sets[0] ^ sets[1])} differ"


def cli_runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (click before 8.2 mixes them by default)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click 8.2+: always separate, and the argument is gone
        return CliRunner()
