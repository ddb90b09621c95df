"""Sizes the GPU kernels are compiled with (shared-memory arrays need constants), apart from
:mod:`gpupq._cuda_kernels` so that reading them does not import numba."""

#: The largest k :meth:`gpupq.gpukernels.GpuKernels.select_k` takes (its shared-memory sort holds
#: this many keys): deeper selections keep the array form.
SELECT_K_MAX = 1024
#: Distance tables up to this size are staged in shared memory; larger ones are read through the
#: L1 cache (m > 32 at 8 bits).
LUT_SHARED_FLOATS = 8192
