/*
 * gpupq._native: the nearest-target kernel of the numpy backend.
 *
 * Assigning points to the nearest of k targets in a low dimension (a PQ sub-space: d 4 to 32,
 * k 256) is most of the time of PQ training and encoding. Through numpy it is a product with an
 * inner dimension of d + 1 that writes k scores per point to memory, then an argmin that reads
 * them back. This kernel never writes the scores: it keeps them in registers and folds each
 * one into a running minimum as it is made (see benchmarks/RESULTS.md for what that measures).
 *
 * Semantics, the same as the array form in kmeans.assign: the score of point i and target j is
 * ops[d][j] + sum_t x[i][t] * ops[t][j], and labels[i] is the FIRST j with the smallest score
 * (as numpy's argmin and FAISS's search pick). Only the float rounding of the sum differs from a
 * BLAS product (both use fused multiply-adds, each in its own order).
 *
 * x86 only (AVX-512 or AVX2 with FMA, picked at import). No numpy headers: arrays come in
 * through the buffer protocol, so building needs only a C compiler and Python's headers. The GIL
 * is released while a kernel runs, so the backend's thread pool runs several calls at once.
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
#define FMA512(q) a##q = _mm512_fmadd_ps(xt, _mm512_loadu_ps(row + 16 * q), a##q)
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
                for (Py_ssize_t t = 0; t < d; t++) {
                    const __m512 xt = _mm512_set1_ps(xi[t]);
                    const float *row = ops + t * k + j;
                    FMA512(0);
                    FMA512(1);
                    FMA512(2);
                    FMA512(3);
                }
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
#define FMA256(q) a##q = _mm256_fmadd_ps(xt, _mm256_loadu_ps(row + 8 * q), a##q)
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
                for (Py_ssize_t t = 0; t < d; t++) {
                    const __m256 xt = _mm256_set1_ps(xi[t]);
                    const float *row = ops + t * k + j;
                    FMA256(0);
                    FMA256(1);
                    FMA256(2);
                    FMA256(3);
                }
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
#endif

typedef void (*kernel_fn)(const float *, Py_ssize_t, Py_ssize_t, const float *, Py_ssize_t, Py_ssize_t, int64_t *,
                          float *);

/* The kernels this processor can run, fastest first; the first is the default. None on a
 * processor without AVX2 and FMA: portable C measured slower than numpy's product and argmin
 * there (2.1 ns a score at d 8), so the backend keeps the array form. */
static struct {
    const char *name;
    kernel_fn fn;
} kernels[2];
static int n_kernels;

static void find_kernels(void) {
    n_kernels = 0;
#ifdef GPUPQ_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f")) {
        kernels[n_kernels].name = "avx512";
        kernels[n_kernels++].fn = nearest_avx512;
    }
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
        kernels[n_kernels].name = "avx2";
        kernels[n_kernels++].fn = nearest_avx2;
    }
#endif
}

static int get(PyObject *obj, Py_buffer *view, int flags, const char *what) {
    if (PyObject_GetBuffer(obj, view, flags) != 0) {
        PyErr_Format(PyExc_ValueError, "nearest: %s must be a %scontiguous array", what,
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
    kernel_fn fn = n_kernels ? kernels[0].fn : NULL;
    if (kname != NULL) {
        fn = NULL;
        for (int q = 0; q < n_kernels; q++)
            if (strcmp(kernels[q].name, kname) == 0) fn = kernels[q].fn;
        if (fn == NULL) return PyErr_Format(PyExc_ValueError, "nearest: no kernel \"%s\" on this processor", kname);
    }
    if (fn == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "nearest: this processor has no kernel (KERNELS is empty)");
        return NULL;
    }
    Py_buffer x, ops, lab, best;
    if (get(ox, &x, PyBUF_STRIDES | PyBUF_FORMAT, "x") != 0) return NULL;
    if (get(oops, &ops, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT, "ops") != 0) goto fail_x;
    if (get(olab, &lab, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE, "labels") != 0) goto fail_ops;
    if (get(obest, &best, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | PyBUF_WRITABLE, "best") != 0) goto fail_lab;
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
        Py_BEGIN_ALLOW_THREADS fn(px, stride, n, pops, d, k, pl, pb);
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

static PyMethodDef methods[] = {
    {"nearest", nearest, METH_VARARGS, nearest_doc},
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
