"""Recorded ``--json`` output of estimate, sweep and recommend on fixed seeds: what a refactor
must leave unchanged.

Each case is a command line; its JSON is stored in ``tests/data/golden/<case>.json`` with what
depends on the machine or the clock taken out (timings, queries/s, frontiers that use queries/s,
device and BLAS names). ``tests/test_golden.py`` reruns every case and compares the rest exactly.

A change that is meant to alter these outputs regenerates them and says which fields moved and
why in its commit::

    python -m tests.golden --update          # every case
    python -m tests.golden --update sweep_synthetic

The outputs hold to the last bit only for one BLAS kernel: OpenBLAS picks its kernels by CPU, and
an AVX-512 machine (``SkylakeX``) rounds products differently from an AVX2 one (``Haswell``),
which moves a k-means assignment and then a recall. So a case may have a record per kernel:
``<case>.json`` for ``Haswell`` and ``<case>.<kernel>.json`` where another kernel gives a
different output. ``--update`` runs each case under every kernel this CPU can run (setting
``OPENBLAS_CORETYPE`` in a child process: the tests never set it) and writes a kernel's record
only where it differs from Haswell's.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "data" / "golden"
MINILM = "tests/data/minilm_4k.npy"  # relative to ROOT: the JSON names the file as given

# --threads 2: results must not depend on the cores of the machine that checks them
_COMMON = ["--json", "-q", "--threads", "2"]
CASES: dict[str, list[str]] = {
    "estimate_synthetic": [
        "estimate", "--synthetic", "--n", "4000", "--d", "32", "--m", "8", "--nlist", "32", "--nprobe", "4",
        "--rerank", "40", "--rerank-store", "sq8", "--queries", "50", "--seed", "3", "--min-time", "0",
        "--n-total", "1M",
    ],
    "estimate_minilm": [
        "estimate", "--npy", MINILM, "--metric", "cosine", "--m", "48", "--nlist", "32", "--nprobe", "4",
        "--rerank", "50", "--rerank-store", "fp16", "--queries", "50", "--min-time", "0",
    ],
    "sweep_synthetic": [
        "sweep", "--synthetic", "--n", "4000", "--d", "32", "--m", "4,8", "--nlist", "16,32", "--nprobe", "1,4,16",
        "--rerank", "0,40", "--rerank-store", "fp16,sq8", "--no-timing", "--queries", "50", "--n-total", "10M",
    ],
    "sweep_minilm": [
        "sweep", "--npy", MINILM, "--metric", "cosine", "--m", "24,48", "--nlist", "32", "--no-timing",
        "--queries", "50",
    ],
    "recommend_synthetic": [
        "recommend", "--synthetic", "--n", "4000", "--d", "32", "--target-recall", "0.8", "--no-rerank",
        "--m", "4,8,16", "--nlist", "16,32", "--queries", "100", "--min-time", "0",
    ],
    "recommend_minilm": [
        "recommend", "--npy", MINILM, "--metric", "cosine", "--target-recall", "0.9", "--rerank", "50",
        "--rerank-store", "sq8", "--m", "16,32", "--nlist", "32", "--queries", "100", "--min-time", "0",
        "--n-total", "5M",
    ],
}  # fmt: skip

#: the kernel ``<case>.json`` is recorded with; others get ``<case>.<kernel>.json`` where they differ
REFERENCE_KERNEL = "Haswell"
#: the kernels an x86-64 CPU with these flags can run, by /proc/cpuinfo flag
_KERNEL_FLAGS = {"Haswell": "avx2", "SkylakeX": "avx512f"}


def blas_kernel() -> str:
    """The OpenBLAS kernel numpy runs here (``Haswell``, ``SkylakeX``, …; ``unknown`` when its
    BLAS is not the OpenBLAS that numpy's wheels bundle)."""
    import numpy as np

    libs = glob.glob(os.path.join(os.path.dirname(np.__file__), os.pardir, "numpy.libs", "*openblas*"))
    for path in libs:
        lib = ctypes.CDLL(path)
        for name in ("scipy_openblas_get_corename64_", "scipy_openblas_get_corename"):
            fn = getattr(lib, name, None)
            if fn is not None:
                fn.restype = ctypes.c_char_p
                return fn().decode()
    return "unknown"


def record_path(case: str, kernel: str) -> Path:
    """Where ``case``'s record for ``kernel`` is (its own if it has one, else the reference)."""
    own = GOLDEN / f"{case}.{kernel}.json"
    return own if kernel != REFERENCE_KERNEL and own.exists() else GOLDEN / f"{case}.json"


#: keys whose values depend on the clock or the machine, dropped wherever they appear
VOLATILE = {
    "timings", "runs", "timed_runs", "wall_s", "ground_truth_s", "train_s", "add_s", "coarse_train_s", "pq_train_s",
    "queries_per_s", "device", "blas", "library_version", "gpupq_version",
    # faiss-cpu's figures for the answers: present only where it is installed, and its version's
    "faiss_cpu", "latency",
}  # fmt: skip
#: frontiers that use queries/s move with the clock
VOLATILE_FRONTIERS = {"qps", "all"}


def stable(obj: Any) -> Any:
    """``obj`` without :data:`VOLATILE` keys (and queries/s frontiers), recursively."""
    if isinstance(obj, dict):
        out = {}
        for key, value in obj.items():
            if key in VOLATILE:
                continue
            if key == "pareto" and isinstance(value, dict):
                value = {k: v for k, v in value.items() if k not in VOLATILE_FRONTIERS}
            out[key] = stable(value)
        return out
    if isinstance(obj, list):
        return [stable(v) for v in obj]
    return obj


def run(case: str) -> dict[str, Any]:
    """The case's JSON output, run in-process from the repository root, stabilised."""
    import os

    from typer.testing import CliRunner

    from gpupq.cli import app

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        result = CliRunner().invoke(app, CASES[case] + _COMMON)
    finally:
        os.chdir(cwd)
    if result.exit_code != 0:
        raise RuntimeError(f"{case}: exit {result.exit_code}: {result.output[-2000:]}")
    return stable(json.loads(result.stdout))


def stored(case: str, kernel: str | None = None) -> dict[str, Any]:
    """``case``'s record for ``kernel`` (default: the kernel running here)."""
    return json.loads(record_path(case, kernel or blas_kernel()).read_text(encoding="utf-8"))


def _kernels() -> list[str]:
    """The OpenBLAS kernels this CPU can run, the reference first (just this one's off x86-64)."""
    if platform.machine() not in ("x86_64", "AMD64"):
        return [blas_kernel()]
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return [blas_kernel()]
    return [k for k, flag in _KERNEL_FLAGS.items() if flag in flags]


def _run_under(case: str, kernel: str) -> dict[str, Any]:
    """``case`` run in a child process with OpenBLAS held to ``kernel``."""
    code = f"import json; from tests import golden; print(json.dumps(golden.run({case!r})))"
    env = {**os.environ, "OPENBLAS_CORETYPE": kernel}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True)
    return json.loads(done.stdout)


def _update(case: str) -> None:
    kernels = _kernels()
    outputs = {k: _run_under(case, k) for k in kernels} if len(kernels) > 1 else {kernels[0]: run(case)}
    reference = outputs.get(REFERENCE_KERNEL)
    for kernel, got in outputs.items():
        path = GOLDEN / (f"{case}.json" if kernel == REFERENCE_KERNEL else f"{case}.{kernel}.json")
        if kernel != REFERENCE_KERNEL and got == reference:
            path.unlink(missing_ok=True)  # the reference's record holds for this kernel too
            continue
        path.write_text(json.dumps(got, indent=1, sort_keys=True) + "\n", encoding="utf-8")
        print(f"wrote {path.relative_to(ROOT)} ({kernel})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--update", action="store_true", help="rewrite the stored outputs")
    parser.add_argument("cases", nargs="*", help=f"cases (default all): {', '.join(CASES)}")
    args = parser.parse_args(argv)
    bad = 0
    for case in args.cases or list(CASES):
        if args.update:
            _update(case)
            continue
        got = run(case)
        path = record_path(case, blas_kernel())
        if got != stored(case):
            bad += 1
            print(f"{case}: differs from {path.relative_to(ROOT)}")
        else:
            print(f"{case}: unchanged")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
