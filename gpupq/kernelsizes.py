"""Sizes the GPU kernels are compiled with (shared-memory arrays need constants), apart from
:mod:`gpupq._cuda_kernels` so that reading them does not import numba."""

#: The largest k :meth:`gpupq.gpukernels.GpuKernels.select_k` takes (its shared-memory sort holds
#: this many keys): deeper selections keep the array form.
SELECT_K_MAX = 1024
#: Distance tables up to this size are staged in shared memory; larger ones are read through the
#: L1 cache (m > 32 at 8 bits).
LUT_SHARED_FLOATS = 8192
#: 32-bit words of codes the scan stages in shared memory at a time (12 KiB: with a 32 KiB table,
#: inside the 48 KiB a block may hold without opting in): a block reads its rows' codes into it
#: with consecutive threads on consecutive words, then each thread scores its row from there.
CODE_TILE_WORDS = 3072
