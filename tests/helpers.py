"""Helpers the tests import (conftest.py holds only fixtures and hooks): clustered test data,
comparing two searches, brute-force neighbours, PQ reconstruction error, a CLI runner, the CuPy
stand-in, the chunked numpy backend, a small synthetic session, and one-line refusals of the
readers."""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from gpupq.backends import CupyBackend, NumpyBackend, cupy_status
from gpupq.errors import GpupqError
from gpupq.gpukernels import KERNELS_ENV
from gpupq.io import Dataset, make_synthetic
from gpupq.session import RunConfig, open_session

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


def install_fake_cupy(monkeypatch: pytest.MonkeyPatch, kernels: str = "reference") -> CupyBackend:
    """Make ``import cupy`` / ``import cupyx`` give the stand-in for this test; returns the CuPy
    backend class running over it. Free device memory starts at the stand-in's 8 GiB.

    kernels: how its custom kernels run (gpupq/gpukernels.py): ``reference`` (their array-form
    twins, the default: the path a GPU with numba-cuda takes, at numpy's speed), ``simulator``
    (numba's CUDA simulator: the kernels' own code, slow, for tiny inputs) or ``off`` (the
    backend's array forms, as on a GPU without numba-cuda)."""
    cupy_status()  # cache the real answer first: the stand-in must not leak into later tests
    monkeypatch.setenv(KERNELS_ENV, kernels)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy)
    monkeypatch.setitem(sys.modules, "cupyx", fake_cupy.cupyx)
    fake_cupy.set_free_memory(None)
    be = CupyBackend()
    if be.kernels is not None:  # each custom kernel launch counts once, by name (fake_cupy.Tally)
        launch = be.kernels._launch

        def counted(name: str, *args: Any, **kwargs: Any) -> None:
            fake_cupy.count_kernel(name)
            launch(name, *args, **kwargs)

        be.kernels._launch = counted
    return be


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


def _brute(x, q, k, metric):
    """Positions of the k nearest rows of x for each query, by brute force (stable on ties)."""
    if metric == "l2":
        d = ((q[:, None] - x[None]) ** 2).sum(-1)
    else:
        d = -(q @ x.T)
    return np.argsort(d, axis=1, kind="stable")[:, :k]


def _mse(be, pq, x):
    """(mean squared reconstruction error, codes on the host) of a product quantizer on x."""
    codes = pq.encode(be, be.asarray(x))
    rec = be.to_numpy(pq.decode(be, codes))
    return float(((rec - x) ** 2).sum(1).mean()), be.to_numpy(codes)


def cli_runner() -> CliRunner:
    """A runner that keeps stderr apart from stdout (click before 8.2 mixes them by default)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:  # click 8.2+: always separate, and the argument is gone
        return CliRunner()


def run_cli(*args: str):
    """``gpupq ARGS`` through :func:`cli_runner` (stderr apart from stdout)."""
    from gpupq.cli import app

    return cli_runner().invoke(app, list(args))


def _session(backend="numpy", n=6000, d=32, queries=120, seed=0, metric="l2"):
    ds = make_synthetic(n, d, seed, metric)
    cfg = RunConfig(k=10, queries=queries, seed=seed, timing=False)
    return ds, cfg, open_session(ds, cfg, backend)


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert text and "\n" not in text and "\r" not in text, repr(text)
    return text


def refused(fn: Callable[..., object], *args: object, match: str | None = None, **kwargs: object) -> str:
    """The one-line message ``fn`` refuses with (any other exception fails the test)."""
    with pytest.raises(GpupqError) as info:
        fn(*args, **kwargs)
    text = one_line(info.value)
    if match is not None:
        assert re.search(match, text), text
    return text


def read_everything(ds: Dataset, step: int = 7) -> np.ndarray:
    """validate(), then every row through chunk() and rows(): the (n, d) float32 computed on."""
    ds.validate(chunk=step)
    out = np.concatenate([ds.chunk(s, min(ds.n, s + step)) for s in range(0, ds.n, step)])
    ids = np.arange(ds.n)[::-1]
    np.testing.assert_array_equal(ds.rows(ids), out[ids])
    assert out.dtype == np.float32 and out.shape == (ds.n, ds.d) and np.isfinite(out).all()
    return out
