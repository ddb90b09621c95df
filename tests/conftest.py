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

This file holds only fixtures and hooks; the helpers tests import (``clustered``,
``same_neighbours``, ``cli_runner``, ``install_fake_cupy``, ...) are in ``tests/helpers.py``.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator

import pytest

from gpupq.backends import Backend, CupyBackend, NumpyBackend, cupy_status

from . import fake_cupy
from .helpers import ChunkedNumpyBackend, install_fake_cupy

# Without a GPU, numba's CUDA target is its simulator: the custom kernels' own code runs on the
# CPU (tests/test_gpukernels.py). It is chosen when numba.cuda is first imported, so here.
if not cupy_status().usable:
    os.environ.setdefault("NUMBA_ENABLE_CUDASIM", "1")


def _cupy_param() -> object:
    status = cupy_status()
    return pytest.param(
        "cupy",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not status.usable, reason=f"CuPy backend: {status.reason}")],
    )


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
