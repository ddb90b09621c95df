"""Compile gpupq's numba CUDA kernels to PTX for a Hopper GPU, without a GPU.

    python benchmarks/compile_kernels.py          # exit 0: all compiled; 3: no CUDA compiler here

numba's simulator (the tests' way to run the kernels on a CPU) runs them as Python, so it cannot
see a typing mistake that only the real compiler makes: a float64 promotion in a float32 sum, an
integer cast, an unsupported call. This compiles each kernel for the argument types the CuPy
backend passes, with numba-cuda's real pipeline (NVVM), and checks the PTX holds no float64
arithmetic. It needs the CUDA compiler libraries, not a device: on a GPU machine they are there;
elsewhere ``pip install numba-cuda nvidia-cuda-nvcc-cu12 nvidia-cuda-nvrtc-cu12``.
"""

from __future__ import annotations

import os
import sys
import types

os.environ.pop("NUMBA_ENABLE_CUDASIM", None)  # the real compiler, not the simulator

try:
    from numba import cuda
    from numba import types as nt
except ImportError as exc:  # pragma: no cover - depends on the machine
    print(f"numba missing: {exc}")
    sys.exit(3)

import numba.cuda.dispatcher as dispatcher

# Device functions are compiled for the current device's compute capability: with no device,
# name the one we target (the kernels themselves take cc below).
dispatcher.get_current_device = lambda: types.SimpleNamespace(compute_capability=(9, 0))

from gpupq import _cuda_kernels as kernels  # noqa: E402


def _arr(dtype: object, ndim: int) -> object:
    return nt.Array(dtype, ndim, "C")


f32, i32, i64 = nt.float32, nt.int32, nt.int64
#: lut, words, base, coarse, pair, rows, valid, nprobe, acc
SCAN = (_arr(f32, 3), _arr(nt.uint32, 2), _arr(f32, 1), _arr(f32, 1), _arr(i64, 2), _arr(i64, 2))
SCAN += (_arr(nt.boolean, 2), i64, _arr(f32, 3))
SIGNATURES = {
    "segment_sums": (kernels.segment_sums, (_arr(f32, 2), _arr(i64, 1), _arr(i64, 1), _arr(f32, 2))),
    "select_k": (
        kernels.select_k,
        (_arr(i32, 2), _arr(i64, 2), i64, _arr(i32, 2), _arr(i64, 2), i64, _arr(i32, 2), _arr(i64, 2)),
    ),
    "lut_scan (table in L1)": (kernels.KERNELS["lut_scan"][0], SCAN),
    "lut_scan (table in shared memory)": (kernels.KERNELS["lut_scan"][1], SCAN),
}


def main() -> int:
    failed = False
    for name, (kernel, sig) in SIGNATURES.items():
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
