"""Compile gpupq's numba CUDA kernels to PTX for a Hopper GPU, without a GPU.

    python benchmarks/compile_kernels.py          # exit 0: all compiled; 3: no CUDA compiler here

numba's simulator (the tests' way to run the kernels on a CPU) runs them as Python, so it cannot
see a typing mistake that only the real compiler makes: a float64 promotion in a float32 sum, an
integer cast, an unsupported call. This compiles each kernel for the argument types the CuPy
backend passes, with numba-cuda's real pipeline (NVVM), and checks the PTX holds no float64
arithmetic. The argument types are those the backend passes when it starts (``GpuKernels.warm``
launches each kernel for them), recorded rather than written out here, so they cannot drift.
It needs the CUDA compiler libraries, not a device: on a GPU machine they are there;
elsewhere ``pip install numba-cuda nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12``.
"""

from __future__ import annotations

import os
import sys
import types

os.environ.pop("NUMBA_ENABLE_CUDASIM", None)  # the real compiler, not the simulator

try:
    from numba import cuda
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"numba missing: {exc}")
    sys.exit(3)

import numba.cuda.dispatcher as dispatcher

# Device functions are compiled for the current device's compute capability: with no device,
# name the one we target (the kernels themselves take cc below).
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))

from gpupq import _cuda_kernels as kernels  # noqa: E402


def launches() -> list[tuple[str, object, tuple]]:
    """What the CuPy backend launches when it starts (``GpuKernels.warm``: every kernel, for the
    argument types the backend passes): (name, kernel, numba argument types) per launch, recorded
    rather than run."""
    import numba
    import numpy as np

    from gpupq.gpukernels import GpuKernels

    seen: list[tuple[str, object, tuple]] = []

    def record(name: str, grid: tuple, args: tuple, variant: int | None = None) -> None:
        kernel = kernels.KERNELS[name] if variant is None else kernels.KERNELS[name][variant]
        sig = tuple(numba.typeof(a) for a in args)
        label = name if variant is None else f"{name} ({'table in shared memory' if variant else 'table in L1'})"
        if all(label != s[0] or sig != s[2] for s in seen):
            seen.append((label, kernel, sig))

    gk = GpuKernels("reference", np)
    gk._launch = record  # type: ignore[method-assign]
    gk.warm()
    return seen


def main() -> int:
    failed = False
    for name, kernel, sig in launches():
        try:
            ptx, _ = cuda.compile_ptx(kernel.py_func, sig, cc=(9, 0))
        except Exception as exc:  # report every kernel, then the verdict
            text = f"{type(exc).__name__}: {exc}"
            if "nvrtc" in text.lower() or "nvvm" in text.lower() or "driver" in text.lower():
                print(f"no CUDA compiler here ({text.splitlines()[0]})")
                return 3
            print(f"{name}: FAILED {text[:2000]}")
            failed = True
            continue
        f64 = ptx.count(".f64")
        print(f"{name}: {len(ptx.splitlines())} PTX lines, float64 instructions {f64}")
        failed |= f64 > 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
