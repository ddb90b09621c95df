"""The numba CUDA kernels behind :mod:`gpupq.gpukernels` (see its docstring for what each does).

Imported only when a kernel first runs: it imports numba. The kernels are module globals because
numba's simulator swaps this module's ``cuda`` for its own when it runs them on a CPU.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import cuda

from .kernelsizes import CODE_TILE_WORDS, LUT_SHARED_FLOATS, SELECT_K_MAX

i32, i64, f32, u32 = np.int32, np.int64, np.float32, np.uint32
_HIGH = 1 << 32  # a key half past every real one: padding of the sort


@cuda.jit
def segment_sums(x, order, starts, out):  # pragma: no cover - runs on the device or simulator
    # block (label, column tile), thread = column: the label's rows in order, float32
    seg = cuda.blockIdx.x
    col = cuda.blockIdx.y * cuda.blockDim.x + cuda.threadIdx.x
    if col < x.shape[1]:
        acc = f32(0.0)
        for i in range(starts[seg], starts[seg + 1]):
            acc += x[order[i], col]
        out[seg, col] = acc


@cuda.jit(device=True)
def _key(bits, tb, mode, pbits, ptb, npre, row, j):  # pragma: no cover
    # (high, low) halves of Backend.order_key, each in [0, 2^32) as int64, of entry j of the
    # row [pbits[:, :npre] | bits]: a kept top-k (scores' bits and ids) ahead of new scores
    if j < npre:
        b = i64(pbits[row, j])
        lo = i64(ptb[row, j]) & 0xFFFFFFFF
    else:
        j -= npre
        b = i64(bits[row, j])
        if mode == 0:
            lo = i64(j)
        elif mode == 1:
            lo = i64(tb[0, j]) & 0xFFFFFFFF
        else:
            lo = i64(tb[row, j]) & 0xFFFFFFFF
    hi = ((~b) & 0xFFFFFFFF) if b < 0 else (b | 0x80000000)
    return hi, lo


@cuda.jit
def select_k(bits, tb, mode, pbits, ptb, npre, k, out_bits, out_tb):  # pragma: no cover
    # One block per row: radix select of the k-th smallest (hi, lo) key, 8 bits a pass.
    row = cuda.blockIdx.x
    tid = cuda.threadIdx.x
    nt = cuda.blockDim.x
    length = npre + bits.shape[1]
    hist = cuda.shared.array(256, i32)
    st = cuda.shared.array(4, i64)  # prefix hi, prefix lo, still needed, done
    sh_hi = cuda.shared.array(SELECT_K_MAX, i64)
    sh_lo = cuda.shared.array(SELECT_K_MAX, i64)
    if tid == 0:
        st[0] = 0
        st[1] = 0
        st[2] = k
        st[3] = 0
    cuda.syncthreads()
    for p in range(8):
        shift = 24 - 8 * (p % 4)
        for b in range(tid, 256, nt):
            hist[b] = 0
        cuda.syncthreads()
        phi = st[0]
        plo = st[1]
        for j in range(tid, length, nt):
            hi, lo = _key(bits, tb, mode, pbits, ptb, npre, row, j)
            if p < 4:
                if (hi >> (shift + 8)) == (phi >> (shift + 8)):
                    cuda.atomic.add(hist, (hi >> shift) & 0xFF, 1)
            elif hi == phi and (lo >> (shift + 8)) == (plo >> (shift + 8)):
                cuda.atomic.add(hist, (lo >> shift) & 0xFF, 1)
        cuda.syncthreads()
        if tid == 0:
            need = st[2]
            below = 0
            b = 0
            while b < 255 and below + hist[b] < need:
                below += hist[b]
                b += 1
            ones = (i64(1) << shift) - 1  # the undecided bits below this digit
            if p < 4:
                st[0] = phi | (i64(b) << shift)
            else:
                st[1] = plo | (i64(b) << shift)
            st[2] = need - below
            if hist[b] == need - below:  # every key left in the bucket is taken: stop here
                st[3] = 1
                if p < 4:
                    st[0] = st[0] | ones
                    st[1] = 0xFFFFFFFF
                else:
                    st[1] = st[1] | ones
        cuda.syncthreads()
        if st[3] == 1:
            break
        cuda.syncthreads()
    # The threshold is the k-th key (or its bucket's top): gather the keys at or below it.
    thi = st[0]
    tlo = st[1]
    cuda.syncthreads()
    if tid == 0:
        st[2] = 0
    kk = min(k, length)
    width = 1
    while width < kk:
        width *= 2
    for j in range(tid, width, nt):
        sh_hi[j] = _HIGH
        sh_lo[j] = _HIGH
    cuda.syncthreads()
    # Keys below the threshold first (fewer than k of them), then copies of the threshold itself
    # while slots remain: equal keys are the same (score, tie-break), so any of them will do.
    for phase in range(2):
        for j in range(tid, length, nt):
            hi, lo = _key(bits, tb, mode, pbits, ptb, npre, row, j)
            below = hi < thi or (hi == thi and lo < tlo)
            if below if phase == 0 else (hi == thi and lo == tlo):
                slot = cuda.atomic.add(st, 2, 1)
                if slot < kk:
                    sh_hi[slot] = hi
                    sh_lo[slot] = lo
        cuda.syncthreads()
    # Bitonic sort of the picks (a total order: the output is the same whatever the slots).
    size = 2
    while size <= width:
        stride = size // 2
        while stride > 0:
            for i in range(tid, width, nt):
                o = i ^ stride
                if o > i:
                    a_hi = sh_hi[i]
                    a_lo = sh_lo[i]
                    b_hi = sh_hi[o]
                    b_lo = sh_lo[o]
                    greater = a_hi > b_hi or (a_hi == b_hi and a_lo > b_lo)
                    if greater == ((i & size) == 0):
                        sh_hi[i] = b_hi
                        sh_lo[i] = b_lo
                        sh_hi[o] = a_hi
                        sh_lo[o] = a_lo
            cuda.syncthreads()
            stride //= 2
        size *= 2
    for j in range(tid, kk, nt):
        hi = sh_hi[j]
        b = (hi - 0x80000000) if hi >= 0x80000000 else ((~hi) & 0xFFFFFFFF) - 0x100000000
        out_bits[row, j] = b
        lo = sh_lo[j]
        out_tb[row, j] = -1 if lo == 0xFFFFFFFF else lo


def make_scan(shared: bool) -> Any:
    size = LUT_SHARED_FLOATS if shared else 1  # a constant for the compiler

    @cuda.jit
    def lut_scan(lut, words, base, coarse, pair, first, length, nprobe, acc):  # pragma: no cover
        # block (chunk item g, query slot w): the item's codes are stored rows first[g] onwards,
        # length[g] of them, contiguous; columns past them are padding (inf).
        g = cuda.blockIdx.x
        w = cuda.blockIdx.y
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        m = lut.shape[1]
        ksub = lut.shape[2]
        pr = pair[g, w]
        qi = pr // nprobe
        table = cuda.shared.array(size, f32)
        if shared:
            for e in range(tid, m * ksub, nt):
                table[e] = lut[qi, e // ksub, e % ksub]
        tile = cuda.shared.array(CODE_TILE_WORDS, u32)
        start = coarse[pr]
        depth = acc.shape[2]
        nw = words.shape[1]
        per = min(nt, CODE_TILE_WORDS // nw)  # rows a tile: one a thread
        row0 = first[g]
        rows = length[g]
        for t0 in range(0, depth, per):  # the same trip count on every thread: barriers are safe
            cuda.syncthreads()  # the last tile is read (and, the first time, the table written)
            # the tile's words are contiguous in memory: thread i reads word i, coalesced
            for e in range(tid, max(0, min(per, rows - t0)) * nw, nt):
                tile[e] = words[row0 + t0 + e // nw, e % nw]
            cuda.syncthreads()
            t = t0 + tid
            if tid < per and t < depth:
                if t < rows:
                    s = start + base[row0 + t]
                    for wd in range(nw):
                        word = i64(tile[tid * nw + wd]) & 0xFFFFFFFF
                        for byte in range(4):
                            j = wd * 4 + byte
                            c = (word >> (8 * byte)) & 0xFF
                            if shared:
                                s += table[j * ksub + c]
                            else:
                                s += lut[qi, j, c]
                    acc[g, w, t] = s
                else:
                    acc[g, w, t] = math.inf

    return lut_scan


KERNELS = {"segment_sums": segment_sums, "select_k": select_k, "lut_scan": (make_scan(False), make_scan(True))}
