/*
 * gpupq._native: the numpy backend's compiled kernels (the CuPy backend and any processor
 * without AVX2 run the array forms of the same steps; see Backend.nearest_kernel and
 * Backend.merge_kernel in backends.py).
 *
 * nearest: assigning points to the nearest of k targets in a low dimension (a PQ sub-space: d 4
 * to 32, k 256) is most of the time of PQ training and encoding. Through numpy it is a product
 * with an inner dimension of d + 1 that writes k scores per point to memory, then an argmin that
 * reads them back. This kernel never writes the scores: it keeps them in registers and folds
 * each one into a running minimum as it is made. Semantics, the same as the array form in
 * kmeans.assign: the score of point i and target j is ops[d][j] + sum_t x[i][t] * ops[t][j], and
 * labels[i] is the FIRST j with the smallest score (as numpy's argmin and FAISS's search pick).
 * Only the float rounding of the sum differs from a BLAS product (both use fused multiply-adds,
 * each in its own order).
 *
 * topk_merge: the ground truth's running top-k, one vector compare per score (knn._merge is the
 * array form). sum_rows: k-means centroid sums in row order and float32, as FAISS sums them.
 *
 * x86 only (AVX-512 or AVX2 with FMA, picked at import). No numpy headers: arrays come in
 * through the buffer protocol, so building needs only a C compiler and Python's headers. The GIL
 * is released while a kernel runs, so the backend's thread pool runs several calls at once.
 * benchmarks/bench_kernels.py times each against its array form.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <string.h>

#if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
#define GPUPQ_X86 1
#include <immintrin.h>
#endif

#ifdef GPUPQ_X86
/* Targets [j0, k) of one point, the remainder after the vector steps, continuing from the
 * running minimum (*m, *mi); strict < keeps the first of equal scores. */
static void nearest_tail(const float *xi, const float *ops, Py_ssize_t d, Py_ssize_t k, Py_ssize_t j0, float *m,
                         int64_t *mi) {
    for (Py_ssize_t j = j0; j < k; j++) {
        float s = ops[d * k + j];
        for (Py_ssize_t t = 0; t < d; t++) s += xi[t] * ops[t * k + j];
        if (s < *m) {
            *m = s;
            *mi = j;
        }
    }
}

/* 4 accumulators of 16 lanes: 64 targets a step, 4 independent compare-and-keep chains. */
#define STEP512 64
#define FMA512(q, c) a##q = _mm512_fmadd_ps(xt, _mm512_loadu_ps(row + 16 * c), a##q)
#define KEEP512(q)                                                                      \
    do {                                                                                \
        __mmask16 lt = _mm512_cmp_ps_mask(a##q, bv##q, _CMP_LT_OQ);                     \
        bv##q = _mm512_mask_mov_ps(bv##q, lt, a##q);                                    \
        bi##q = _mm512_mask_mov_epi32(bi##q, lt, _mm512_add_epi32(base, off##q));       \
    } while (0)
/* lanes of B replace lanes of A where B is smaller, or equal with a smaller index */
#define MERGE512(A, B)                                                                          \
    do {                                                                                        \
        __mmask16 take = _mm512_cmp_ps_mask(bv##B, bv##A, _CMP_LT_OQ) |                         \
                         (_mm512_cmp_ps_mask(bv##B, bv##A, _CMP_EQ_OQ) &                        \
                          _mm512_cmp_epi32_mask(bi##B, bi##A, _MM_CMPINT_LT));                  \
        bv##A = _mm512_mask_mov_ps(bv##A, take, bv##B);                                         \
        bi##A = _mm512_mask_mov_epi32(bi##A, take, bi##B);                                      \
    } while (0)

__attribute__((target("avx512f"))) static void nearest_avx512(const float *x, Py_ssize_t stride, Py_ssize_t n,
                                                              const float *ops, Py_ssize_t d, Py_ssize_t k,
                                                              int64_t *labels, float *best) {
    const Py_ssize_t kv = k / STEP512 * STEP512;
    const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
    const __m512i off0 = lane, off1 = _mm512_add_epi32(lane, _mm512_set1_epi32(16));
    const __m512i off2 = _mm512_add_epi32(lane, _mm512_set1_epi32(32));
    const __m512i off3 = _mm512_add_epi32(lane, _mm512_set1_epi32(48));
    const float *cterm = ops + d * k;
    for (Py_ssize_t i = 0; i < n; i++) {
        const float *xi = x + i * stride;
        float m = INFINITY;
        int64_t mi = 0;
        if (kv) {
            const __m512 inf = _mm512_set1_ps(INFINITY);
            __m512 bv0 = inf, bv1 = inf, bv2 = inf, bv3 = inf;
            __m512i bi0 = off0, bi1 = off1, bi2 = off2, bi3 = off3;
            for (Py_ssize_t j = 0; j < kv; j += STEP512) {
                __m512 a0 = _mm512_loadu_ps(cterm + j), a1 = _mm512_loadu_ps(cterm + j + 16);
                __m512 a2 = _mm512_loadu_ps(cterm + j + 32), a3 = _mm512_loadu_ps(cterm + j + 48);
                /* odd dimensions into a second set of sums: 8 independent chains of multiply-adds
                 * hide their latency (with 4: 0.24 rather than 0.20 ns a score at d 8, 0.59 rather
                 * than 0.40 at d 24) */
                __m512 a4 = _mm512_setzero_ps(), a5 = a4, a6 = a4, a7 = a4;
                Py_ssize_t t = 0;
                for (; t + 1 < d; t += 2) {
                    __m512 xt = _mm512_set1_ps(xi[t]);
                    const float *row = ops + t * k + j;
                    FMA512(0, 0);
                    FMA512(1, 1);
                    FMA512(2, 2);
                    FMA512(3, 3);
                    xt = _mm512_set1_ps(xi[t + 1]);
                    row += k;
                    FMA512(4, 0);
                    FMA512(5, 1);
                    FMA512(6, 2);
                    FMA512(7, 3);
                }
                if (t < d) {
                    const __m512 xt = _mm512_set1_ps(xi[t]);
                    const float *row = ops + t * k + j;
                    FMA512(0, 0);
                    FMA512(1, 1);
                    FMA512(2, 2);
                    FMA512(3, 3);
                }
                a0 = _mm512_add_ps(a0, a4);
                a1 = _mm512_add_ps(a1, a5);
                a2 = _mm512_add_ps(a2, a6);
                a3 = _mm512_add_ps(a3, a7);
                const __m512i base = _mm512_set1_epi32((int)j);
                KEEP512(0);
                KEEP512(1);
                KEEP512(2);
                KEEP512(3);
            }
            MERGE512(0, 1);
            MERGE512(2, 3);
            MERGE512(0, 2);
            m = _mm512_reduce_min_ps(bv0);
            __mmask16 at = _mm512_cmp_ps_mask(bv0, _mm512_set1_ps(m), _CMP_EQ_OQ);
            /* every score NaN or +inf: no lane compared smaller, keep target 0 as the scalar path does */
            mi = at && m < INFINITY ? _mm512_mask_reduce_min_epi32(at, bi0) : 0;
        }
        nearest_tail(xi, ops, d, k, kv, &m, &mi);
        labels[i] = mi;
        best[i] = m;
    }
}

/* 4 accumulators of 8 lanes: 32 targets a step. */
#define STEP256 32
#define FMA256(q, c) a##q = _mm256_fmadd_ps(xt, _mm256_loadu_ps(row + 8 * c), a##q)
#define KEEP256(q)                                                                                   \
    do {                                                                                             \
        __m256 lt = _mm256_cmp_ps(a##q, bv##q, _CMP_LT_OQ);                                          \
        bv##q = _mm256_blendv_ps(bv##q, a##q, lt);                                                   \
        bi##q = _mm256_blendv_ps(bi##q, _mm256_castsi256_ps(_mm256_add_epi32(base, off##q)), lt);    \
    } while (0)
#define MERGE256(A, B)                                                                                           \
    do {                                                                                                         \
        __m256 take = _mm256_or_ps(                                                                              \
            _mm256_cmp_ps(bv##B, bv##A, _CMP_LT_OQ),                                                             \
            _mm256_and_ps(_mm256_cmp_ps(bv##B, bv##A, _CMP_EQ_OQ),                                               \
                          _mm256_castsi256_ps(_mm256_cmpgt_epi32(_mm256_castps_si256(bi##A),                     \
                                                                 _mm256_castps_si256(bi##B)))));                 \
        bv##A = _mm256_blendv_ps(bv##A, bv##B, take);                                                            \
        bi##A = _mm256_blendv_ps(bi##A, bi##B, take);                                                            \
    } while (0)

__attribute__((target("avx2,fma"))) static void nearest_avx2(const float *x, Py_ssize_t stride, Py_ssize_t n,
                                                             const float *ops, Py_ssize_t d, Py_ssize_t k,
                                                             int64_t *labels, float *best) {
    const Py_ssize_t kv = k / STEP256 * STEP256;
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i off0 = lane, off1 = _mm256_add_epi32(lane, _mm256_set1_epi32(8));
    const __m256i off2 = _mm256_add_epi32(lane, _mm256_set1_epi32(16));
    const __m256i off3 = _mm256_add_epi32(lane, _mm256_set1_epi32(24));
    const float *cterm = ops + d * k;
    for (Py_ssize_t i = 0; i < n; i++) {
        const float *xi = x + i * stride;
        float m = INFINITY;
        int64_t mi = 0;
        if (kv) {
            const __m256 inf = _mm256_set1_ps(INFINITY);
            __m256 bv0 = inf, bv1 = inf, bv2 = inf, bv3 = inf;
            /* indices ride in float registers as raw bits (blendv moves bits, never converts) */
            __m256 bi0 = _mm256_castsi256_ps(off0), bi1 = _mm256_castsi256_ps(off1);
            __m256 bi2 = _mm256_castsi256_ps(off2), bi3 = _mm256_castsi256_ps(off3);
            for (Py_ssize_t j = 0; j < kv; j += STEP256) {
                __m256 a0 = _mm256_loadu_ps(cterm + j), a1 = _mm256_loadu_ps(cterm + j + 8);
                __m256 a2 = _mm256_loadu_ps(cterm + j + 16), a3 = _mm256_loadu_ps(cterm + j + 24);
                __m256 a4 = _mm256_setzero_ps(), a5 = a4, a6 = a4, a7 = a4; /* as in nearest_avx512 */
                Py_ssize_t t = 0;
                for (; t + 1 < d; t += 2) {
                    __m256 xt = _mm256_set1_ps(xi[t]);
                    const float *row = ops + t * k + j;
                    FMA256(0, 0);
                    FMA256(1, 1);
                    FMA256(2, 2);
                    FMA256(3, 3);
                    xt = _mm256_set1_ps(xi[t + 1]);
                    row += k;
                    FMA256(4, 0);
                    FMA256(5, 1);
                    FMA256(6, 2);
                    FMA256(7, 3);
                }
                if (t < d) {
                    const __m256 xt = _mm256_set1_ps(xi[t]);
                    const float *row = ops + t * k + j;
                    FMA256(0, 0);
                    FMA256(1, 1);
                    FMA256(2, 2);
                    FMA256(3, 3);
                }
                a0 = _mm256_add_ps(a0, a4);
                a1 = _mm256_add_ps(a1, a5);
                a2 = _mm256_add_ps(a2, a6);
                a3 = _mm256_add_ps(a3, a7);
                const __m256i base = _mm256_set1_epi32((int)j);
                KEEP256(0);
                KEEP256(1);
                KEEP256(2);
                KEEP256(3);
            }
            MERGE256(0, 1);
            MERGE256(2, 3);
            MERGE256(0, 2);
            float v[8];
            int32_t idx[8];
            _mm256_storeu_ps(v, bv0);
            _mm256_storeu_si256((__m256i *)idx, _mm256_castps_si256(bi0));
            for (int l = 0; l < 8; l++) {
                if (v[l] < m || (v[l] == m && idx[l] < mi)) {
                    m = v[l];
                    mi = idx[l];
                }
            }
        }
        nearest_tail(xi, ops, d, k, kv, &m, &mi);
        labels[i] = mi;
        best[i] = m;
    }
}
/* ---- running top-k merge (the ground truth) ---------------------------------------------- */

/* Score order with the id as tie-break, the smaller first; an id of -1 (padding) compares as
 * the largest. The same order as the array form's (score, id) keys and FAISS's heaps. */
static inline int topk_before(float v, int64_t id, float bv, int64_t bid) {
    return v < bv || (v == bv && (uint64_t)id < (uint64_t)bid);
}

/* Put (v, id) into a row's k best, kept in topk_before order. The caller has checked that it
 * goes before the row's k-th. */
static inline void topk_insert(float *bd, int64_t *bi, Py_ssize_t k, float v, int64_t id) {
    Py_ssize_t p = k - 1;
    while (p > 0 && topk_before(v, id, bd[p - 1], bi[p - 1])) {
        bd[p] = bd[p - 1];
        bi[p] = bi[p - 1];
        p--;
    }
    bd[p] = v;
    bi[p] = id;
}

/* score j of a row, plus its column's bias when there is one */
#define SCORE(j) (bias ? row[j] + bias[j] : row[j])

static void topk_tail(const float *row, const float *bias, const int64_t *ids, Py_ssize_t j0, Py_ssize_t len,
                      float *bd, int64_t *bi, Py_ssize_t k) {
    for (Py_ssize_t j = j0; j < len; j++) {
        const float v = SCORE(j);
        if (topk_before(v, ids[j], bd[k - 1], bi[k - 1])) topk_insert(bd, bi, k, v, ids[j]);
    }
}

/* the lanes set in hit, in column order, tried against the row's k-th */
static inline void topk_hits(unsigned hit, const float *row, const float *bias, const int64_t *ids, Py_ssize_t j,
                             float *bd, int64_t *bi, Py_ssize_t k) {
    while (hit) {
        const Py_ssize_t c = j + __builtin_ctz(hit);
        hit &= hit - 1;
        const float v = SCORE(c);
        if (topk_before(v, ids[c], bd[k - 1], bi[k - 1])) topk_insert(bd, bi, k, v, ids[c]);
    }
}

/* Most scores of a block lose to the row's k-th best once the first blocks are in: compare 16
 * at once with it (<=: an equal score may still win on its id), and touch the row's list only
 * for the lanes that pass. */
__attribute__((target("avx512f"))) static void merge_avx512(const float *score, Py_ssize_t stride, Py_ssize_t rows,
                                                            Py_ssize_t len, const float *bias, const int64_t *ids,
                                                            float *best_d, int64_t *best_i, Py_ssize_t k) {
    const Py_ssize_t lv = len / 16 * 16;
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float *row = score + r * stride;
        float *bd = best_d + r * k;
        int64_t *bi = best_i + r * k;
        __m512 thr = _mm512_set1_ps(bd[k - 1]);
        for (Py_ssize_t j = 0; j < lv; j += 16) {
            __m512 v = _mm512_loadu_ps(row + j);
            if (bias) v = _mm512_add_ps(v, _mm512_loadu_ps(bias + j));
            const __mmask16 hit = _mm512_cmp_ps_mask(v, thr, _CMP_LE_OQ);
            if (hit) {
                topk_hits(hit, row, bias, ids, j, bd, bi, k);
                thr = _mm512_set1_ps(bd[k - 1]);
            }
        }
        topk_tail(row, bias, ids, lv, len, bd, bi, k);
    }
}

__attribute__((target("avx2"))) static void merge_avx2(const float *score, Py_ssize_t stride, Py_ssize_t rows,
                                                       Py_ssize_t len, const float *bias, const int64_t *ids,
                                                       float *best_d, int64_t *best_i, Py_ssize_t k) {
    const Py_ssize_t lv = len / 16 * 16;
    for (Py_ssize_t r = 0; r < rows; r++) {
        const float *row = score + r * stride;
        float *bd = best_d + r * k;
        int64_t *bi = best_i + r * k;
        __m256 thr = _mm256_set1_ps(bd[k - 1]);
        for (Py_ssize_t j = 0; j < lv; j += 16) {
            /* two vectors a step: one branch for 16 scores */
            __m256 v0 = _mm256_loadu_ps(row + j), v1 = _mm256_loadu_ps(row + j + 8);
            if (bias) {
                v0 = _mm256_add_ps(v0, _mm256_loadu_ps(bias + j));
                v1 = _mm256_add_ps(v1, _mm256_loadu_ps(bias + j + 8));
            }
            const unsigned hit = (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v0, thr, _CMP_LE_OQ)) |
                                 (unsigned)_mm256_movemask_ps(_mm256_cmp_ps(v1, thr, _CMP_LE_OQ)) << 8;
            if (hit) {
                topk_hits(hit, row, bias, ids, j, bd, bi, k);
                thr = _mm256_set1_ps(bd[k - 1]);
            }
        }
        topk_tail(row, bias, ids, lv, len, bd, bi, k);
    }
}
#undef SCORE
#endif

typedef void (*kernel_fn)(const float *, Py_ssize_t, Py_ssize_t, const float *, Py_ssize_t, Py_ssize_t, int64_t *,
                          float *);
typedef void (*merge_fn)(const float *, Py_ssize_t, Py_ssize_t, Py_ssize_t, const float *, const int64_t *, float *,
                         int64_t *, Py_ssize_t);

/* The kernels this processor can run, fastest first; the first is the default. None on a
 * processor without AVX2 and FMA: portable C measured slower than numpy's product and argmin
 * there (2.1 ns a score at d 8), so the backend keeps the array form. */
static struct {
    const char *name;
    kernel_fn fn;
    merge_fn merge;
} kernels[2];
static int n_kernels;

static void find_kernels(void) {
    n_kernels = 0;
#ifdef GPUPQ_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        kernels[n_kernels].name = "avx512";
        kernels[n_kernels].merge = merge_avx512;
        kernels[n_kernels++].fn = nearest_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        kernels[n_kernels].name = "avx2";
        kernels[n_kernels].merge = merge_avx2;
        kernels[n_kernels++].fn = nearest_avx2;
    }
#endif
}

static int get(PyObject *obj, Py_buffer *view, int flags, const char *what) {
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
        PyErr_Format(PyExc_ValueError, "%s must be a %scontiguous array", what,
                     (flags & PyBUF_WRITABLE) ? "writable " : "");
        return -1;
    }
    return 0;
}

static int is_float32(const Py_buffer *v) {
    const char *f = v->format;
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    return v->itemsize == 4 && f[0] == 'f' && f[1] == '\0';
}

static int is_int64(const Py_buffer *v) {
    const char *f = v->format;
    if (f[0] == '<' || f[0] == '=' || f[0] == '@') f++;
    return v->itemsize == 8 && (f[0] == 'l' || f[0] == 'q') && f[1] == '\0';
}

/* the kernel named kname (NULL: the default), or NULL with an exception set */
static int kernel_index(const char *what, const char *kname) {
    if (n_kernels == 0) {
        PyErr_Format(PyExc_RuntimeError, "%s: this processor has no kernel (KERNELS is empty)", what);
        return -1;
    }
    if (kname == NULL) return 0;
    for (int q = 0; q < n_kernels; q++)
        if (strcmp(kernels[q].name, kname) == 0) return q;
    PyErr_Format(PyExc_ValueError, "%s: no kernel \"%s\" on this processor", what, kname);
    return -1;
}

PyDoc_STRVAR(nearest_doc,
             "nearest(x, ops, labels, best, kernel=KERNELS[0]) -> None\n\n"
             "x: (n, d) float32, rows at any stride, each row contiguous; ops: (d + 1, k) float32 C-contiguous;\n"
             "labels: (n,) int64 and best: (n,) float32, writable and contiguous (filled in).\n"
             "score(i, j) = ops[d, j] + sum_t x[i, t] * ops[t, j]; labels[i] is the first j of the\n"
             "smallest score and best[i] that score. kernel: one of KERNELS, to test or time each.");

static PyObject *nearest(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *ox, *oops, *olab, *obest;
    const char *kname = NULL;
    if (!PyArg_ParseTuple(args, "OOOO|s:nearest", &ox, &oops, &olab, &obest, &kname)) return NULL;
    int q = kernel_index("nearest", kname);
    if (q < 0) return NULL;
    kernel_fn fn = kernels[q].fn;
    Py_buffer x, ops, lab, best;
    if (get(ox, &x, PyBUF_STRIDES | PyBUF_FORMAT, "nearest: x") != 0) return NULL;
    if (get(oops, &ops, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT, "nearest: ops") != 0) goto fail_x;
    if (get(olab, &lab, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE, "nearest: labels") != 0) goto fail_ops;
    if (get(obest, &best, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE, "nearest: best") != 0) goto fail_lab;
    if (x.ndim != 2 || ops.ndim != 2 || lab.ndim != 1 || best.ndim != 1 || !is_float32(&x) || !is_float32(&ops) ||
        !is_int64(&lab) || !is_float32(&best)) {
        PyErr_SetString(PyExc_ValueError, "nearest: expected x (n, d) float32, ops (d + 1, k) float32, "
                                          "labels (n,) int64, best (n,) float32");
        goto fail;
    }
    Py_ssize_t n = x.shape[0], d = x.shape[1], k = ops.shape[1];
    if (ops.shape[0] != d + 1 || lab.shape[0] != n || best.shape[0] != n || k < 1 || k > INT32_MAX) {
        PyErr_SetString(PyExc_ValueError, "nearest: shapes disagree (x (n, d), ops (d + 1, k >= 1), labels and "
                                          "best (n,))");
        goto fail;
    }
    if ((d > 1 && x.strides[1] != 4) || x.strides[0] % 4 != 0 || (n > 1 && x.strides[0] < 0)) {
        PyErr_SetString(PyExc_ValueError, "nearest: each row of x must be contiguous, rows at a positive stride");
        goto fail;
    }
    {
        const float *px = (const float *)x.buf;
        const float *pops = (const float *)ops.buf;
        int64_t *pl = (int64_t *)lab.buf;
        float *pb = (float *)best.buf;
        Py_ssize_t stride = x.strides[0] / 4;
        Py_BEGIN_ALLOW_THREADS
        fn(px, stride, n, pops, d, k, pl, pb);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&best);
    PyBuffer_Release(&lab);
    PyBuffer_Release(&ops);
    PyBuffer_Release(&x);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&best);
fail_lab:
    PyBuffer_Release(&lab);
fail_ops:
    PyBuffer_Release(&ops);
fail_x:
    PyBuffer_Release(&x);
    return NULL;
}

PyDoc_STRVAR(topk_merge_doc,
             "topk_merge(score, ids, best_d, best_i, bias=None, kernel=KERNELS[0]) -> None\n\n"
             "score: (b, L) float32, rows at any stride, each row contiguous; ids: (L,) int64; bias: None\n"
             "or (L,) float32, added to every row's scores (a column's own term, such as its squared norm,\n"
             "so the product need not carry it); best_d: (b, k) float32 and best_i: (b, k) int64,\n"
             "C-contiguous and writable: each row's k best so far and their ids, ascending by (score, id),\n"
             "id -1 (padding) last. Folds the block in: each row keeps the k smallest (score, id) pairs\n"
             "of all it has seen.");

static PyObject *topk_merge(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *osc, *oids, *obd, *obi, *obias = Py_None;
    const char *kname = NULL;
    if (!PyArg_ParseTuple(args, "OOOO|Oz:topk_merge", &osc, &oids, &obd, &obi, &obias, &kname)) return NULL;
    int q = kernel_index("topk_merge", kname);
    if (q < 0) return NULL;
    Py_buffer sc, ids, bd, bi, bs;
    const int has_bias = obias != Py_None;
    if (get(osc, &sc, PyBUF_STRIDES | PyBUF_FORMAT, "topk_merge: score") != 0) return NULL;
    if (get(oids, &ids, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT, "topk_merge: ids") != 0) goto fail_sc;
    if (get(obd, &bd, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE, "topk_merge: best_d") != 0) goto fail_ids;
    if (get(obi, &bi, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE, "topk_merge: best_i") != 0) goto fail_bd;
    if (has_bias && get(obias, &bs, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT, "topk_merge: bias") != 0) goto fail_bi;
    if (sc.ndim != 2 || ids.ndim != 1 || bd.ndim != 2 || bi.ndim != 2 || !is_float32(&sc) || !is_int64(&ids) ||
        !is_float32(&bd) || !is_int64(&bi) || (has_bias && (bs.ndim != 1 || !is_float32(&bs)))) {
        PyErr_SetString(PyExc_ValueError, "topk_merge: expected score (b, L) float32, ids (L,) int64, "
                                          "best_d (b, k) float32, best_i (b, k) int64, bias (L,) float32");
        goto fail;
    }
    Py_ssize_t rows = sc.shape[0], len = sc.shape[1], k = bd.shape[1];
    if (ids.shape[0] != len || bd.shape[0] != rows || bi.shape[0] != rows || bi.shape[1] != k || k < 1 ||
        (has_bias && bs.shape[0] != len)) {
        PyErr_SetString(PyExc_ValueError, "topk_merge: shapes disagree (score (b, L), ids and bias (L,), best_d "
                                          "and best_i (b, k >= 1))");
        goto fail;
    }
    if ((len > 1 && sc.strides[1] != 4) || sc.strides[0] % 4 != 0 || (rows > 1 && sc.strides[0] < 0)) {
        PyErr_SetString(PyExc_ValueError, "topk_merge: each row of score must be contiguous, rows at a positive "
                                          "stride");
        goto fail;
    }
    {
        merge_fn fn = kernels[q].merge;
        const float *psc = (const float *)sc.buf;
        const float *pbs = has_bias ? (const float *)bs.buf : NULL;
        const int64_t *pids = (const int64_t *)ids.buf;
        float *pbd = (float *)bd.buf;
        int64_t *pbi = (int64_t *)bi.buf;
        Py_ssize_t stride = sc.strides[0] / 4;
        Py_BEGIN_ALLOW_THREADS
        fn(psc, stride, rows, len, pbs, pids, pbd, pbi, k);
        Py_END_ALLOW_THREADS
    }
    if (has_bias) PyBuffer_Release(&bs);
    PyBuffer_Release(&bi);
    PyBuffer_Release(&bd);
    PyBuffer_Release(&ids);
    PyBuffer_Release(&sc);
    Py_RETURN_NONE;
fail:
    if (has_bias) PyBuffer_Release(&bs);
fail_bi:
    PyBuffer_Release(&bi);
fail_bd:
    PyBuffer_Release(&bd);
fail_ids:
    PyBuffer_Release(&ids);
fail_sc:
    PyBuffer_Release(&sc);
    return NULL;
}

/* ---- k-means centroid sums --------------------------------------------------------------- */

/* 1 (and nothing written) if a label is outside [0, nrows) */
static int sum_rows_work(const int64_t *labels, const float *x, Py_ssize_t sx, Py_ssize_t n, Py_ssize_t w, float *out,
                         Py_ssize_t so, Py_ssize_t nrows) {
    int bad = 0;
    for (Py_ssize_t i = 0; i < n; i++) bad |= labels[i] < 0 || labels[i] >= nrows;
    if (bad) return 1;
    for (Py_ssize_t i = 0; i < n; i++) {
        float *o = out + labels[i] * so;
        const float *xi = x + i * sx;
        for (Py_ssize_t c = 0; c < w; c++) o[c] += xi[c];
    }
    return 0;
}

PyDoc_STRVAR(sum_rows_doc,
             "sum_rows(labels, x, out) -> None\n\n"
             "labels: (n,) int64 in [0, nrows); x: (n, w) float32 and out: (nrows, w) float32 (writable),\n"
             "rows at any stride, each row contiguous. Adds each row of x to out[labels[i]], in row order\n"
             "and in float32, as FAISS's centroid update sums; checks every label before writing.");

static PyObject *sum_rows(PyObject *Py_UNUSED(self), PyObject *args) {
    PyObject *olab, *ox, *oout;
    if (!PyArg_ParseTuple(args, "OOO:sum_rows", &olab, &ox, &oout)) return NULL;
    Py_buffer lab, x, out;
    if (get(olab, &lab, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT, "sum_rows: labels") != 0) return NULL;
    if (get(ox, &x, PyBUF_STRIDES | PyBUF_FORMAT, "sum_rows: x") != 0) goto fail_lab;
    if (get(oout, &out, PyBUF_STRIDES | PyBUF_FORMAT | PyBUF_WRITABLE, "sum_rows: out") != 0) goto fail_x;
    if (lab.ndim != 1 || x.ndim != 2 || out.ndim != 2 || !is_int64(&lab) || !is_float32(&x) || !is_float32(&out) ||
        x.shape[0] != lab.shape[0] || out.shape[1] != x.shape[1]) {
        PyErr_SetString(PyExc_ValueError, "sum_rows: expected labels (n,) int64, x (n, w) float32, "
                                          "out (nrows, w) float32");
        goto fail;
    }
    Py_ssize_t n = x.shape[0], w = x.shape[1], nrows = out.shape[0];
    if ((w > 1 && (x.strides[1] != 4 || out.strides[1] != 4)) || x.strides[0] % 4 != 0 || out.strides[0] % 4 != 0 ||
        (n > 1 && x.strides[0] < 0) || (nrows > 1 && out.strides[0] < 0)) {
        PyErr_SetString(PyExc_ValueError, "sum_rows: each row of x and out must be contiguous, rows at a positive "
                                          "stride");
        goto fail;
    }
    {
        const int64_t *pl = (const int64_t *)lab.buf;
        const float *px = (const float *)x.buf;
        float *po = (float *)out.buf;
        Py_ssize_t sx = x.strides[0] / 4, so = out.strides[0] / 4;
        int bad;
        Py_BEGIN_ALLOW_THREADS
        bad = sum_rows_work(pl, px, sx, n, w, po, so, nrows);
        Py_END_ALLOW_THREADS
        if (bad) {
            PyErr_SetString(PyExc_ValueError, "sum_rows: a label is outside [0, nrows)");
            goto fail;
        }
    }
    PyBuffer_Release(&out);
    PyBuffer_Release(&x);
    PyBuffer_Release(&lab);
    Py_RETURN_NONE;
fail:
    PyBuffer_Release(&out);
fail_x:
    PyBuffer_Release(&x);
fail_lab:
    PyBuffer_Release(&lab);
    return NULL;
}

static PyMethodDef methods[] = {
    {"nearest", nearest, METH_VARARGS, nearest_doc},
    {"topk_merge", topk_merge, METH_VARARGS, topk_merge_doc},
    {"sum_rows", sum_rows, METH_VARARGS, sum_rows_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gpupq._native", "Compiled kernels of the numpy backend (see _native.c).", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) {
    find_kernels();
    PyObject *mod = PyModule_Create(&module);
    if (mod == NULL) return NULL;
    PyObject *names = PyTuple_New(n_kernels);
    if (names == NULL) goto fail;
    for (int q = 0; q < n_kernels; q++) {
        PyObject *name = PyUnicode_FromString(kernels[q].name);
        if (name == NULL) {
            Py_DECREF(names);
            goto fail;
        }
        PyTuple_SET_ITEM(names, q, name);
    }
    if (PyModule_AddObject(mod, "KERNELS", names) != 0) {
        Py_DECREF(names);
        goto fail;
    }
    return mod;
fail:
    Py_DECREF(mod);
    return NULL;
}
