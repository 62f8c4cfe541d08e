/* Inner loops of the direct (channel-wise) convolution kernels.
 *
 * They live in C rather than Cython for one reason: GCC's target_clones builds each of
 * them for AVX-512, AVX2+FMA and baseline x86-64 and picks one at load time, so a
 * portable build (no -march=native) still runs them at the machine's vector width.
 * Everything else stays in Cython.
 *
 * Each function works on rows that the caller has laid out contiguously (padded and
 * split into stride phases), so every inner loop is a unit-stride loop that vectorises.
 *
 * With row(t) = base + off[t], the row that filter tap t reads or writes:
 *   taps_row:     y[j] = b + sum_t w[t] * row(t)[j]             (forward)
 *   taps_scatter: row(t)[j] += w[t] * dy[j]   for every t       (adjoint)
 *   taps_dot:     acc[t] += sum_j dy[j] * row(t)[j]             (weight gradient)
 *
 * The dot products keep one vector of partial sums, combined in a fixed order: vectorised
 * without -ffast-math, and the same on every thread count.
 */
#ifndef MLAYERS_SIMD_H
#define MLAYERS_SIMD_H

#include <stddef.h>

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(MLAYERS_NO_CLONES)
#define MLAYERS_CLONES                                                                    \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MLAYERS_CLONES
#endif

/* GCC vector extensions: one 64-byte vector is an AVX-512 register, two AVX2 registers,
 * or four SSE registers, depending on the clone.  Plain loops were not enough: GCC
 * interchanged the tap and column loops and emitted scalar code. */
#define MLAYERS_VBYTES 64
/* filters per register block of the direct convolution */
#define MLAYERS_FB 6
/* an unaligned vector at p */
#define MLAYERS_AT(SUFFIX, p) (*(vec_##SUFFIX *)(p))

#define MLAYERS_DEFINE_TAPS(T, SUFFIX)                                                    \
typedef T vec_##SUFFIX                                                                    \
    __attribute__((vector_size(MLAYERS_VBYTES), aligned(sizeof(T)), may_alias));          \
enum { LANES_##SUFFIX = MLAYERS_VBYTES / sizeof(T) };                                     \
                                                                                          \
MLAYERS_CLONES                                                                            \
static void taps_row_##SUFFIX(T *y, ptrdiff_t n, const T *base, const ptrdiff_t *off,     \
                              const T *w, ptrdiff_t ntaps, T b)                           \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    ptrdiff_t j = 0, t, u;                                                                \
    /* four vectors of outputs stay in registers across all taps */                       \
    for (; j + 4 * L <= n; j += 4 * L) {                                                  \
        vec_##SUFFIX a0 = (vec_##SUFFIX){0} + b, a1 = a0, a2 = a0, a3 = a0;               \
        for (t = 0; t < ntaps; t++) {                                                     \
            const T wt = w[t];                                                            \
            const T *s = base + off[t] + j;                                               \
            a0 += wt * MLAYERS_AT(SUFFIX, s);                                             \
            a1 += wt * MLAYERS_AT(SUFFIX, s + L);                                         \
            a2 += wt * MLAYERS_AT(SUFFIX, s + 2 * L);                                     \
            a3 += wt * MLAYERS_AT(SUFFIX, s + 3 * L);                                     \
        }                                                                                 \
        MLAYERS_AT(SUFFIX, y + j) = a0;                                                   \
        MLAYERS_AT(SUFFIX, y + j + L) = a1;                                               \
        MLAYERS_AT(SUFFIX, y + j + 2 * L) = a2;                                           \
        MLAYERS_AT(SUFFIX, y + j + 3 * L) = a3;                                           \
    }                                                                                     \
    /* then single vectors; the last one overlaps the previous (y is assigned, not        \
       accumulated, so recomputing a few outputs is harmless) */                          \
    while (j < n && n >= L) {                                                             \
        if (j + L > n) j = n - L;                                                         \
        vec_##SUFFIX a0 = (vec_##SUFFIX){0} + b;                                          \
        for (t = 0; t < ntaps; t++)                                                       \
            a0 += w[t] * MLAYERS_AT(SUFFIX, base + off[t] + j);                           \
        MLAYERS_AT(SUFFIX, y + j) = a0;                                                   \
        j += L;                                                                           \
    }                                                                                     \
    for (u = j; u < n; u++) {                                                             \
        T a = b;                                                                          \
        for (t = 0; t < ntaps; t++) a += w[t] * base[off[t] + u];                         \
        y[u] = a;                                                                         \
    }                                                                                     \
}                                                                                         \
                                                                                          \
MLAYERS_CLONES                                                                            \
static void taps_scatter_##SUFFIX(T *base, const ptrdiff_t *off, ptrdiff_t n, const T *dy, \
                                  const T *w, ptrdiff_t ntaps)                            \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    ptrdiff_t t, j;                                                                       \
    for (t = 0; t < ntaps; t++) {                                                         \
        const T wt = w[t];                                                                \
        T *d = base + off[t];                                                             \
        for (j = 0; j + L <= n; j += L)                                                   \
            MLAYERS_AT(SUFFIX, d + j) = MLAYERS_AT(SUFFIX, d + j) + wt * MLAYERS_AT(SUFFIX, dy + j); \
        for (; j < n; j++) d[j] += wt * dy[j];                                            \
    }                                                                                     \
}                                                                                         \
                                                                                          \
MLAYERS_CLONES                                                                            \
static void taps_dot_##SUFFIX(T *acc, ptrdiff_t n, const T *dy, const T *base,            \
                              const ptrdiff_t *off, ptrdiff_t ntaps)                      \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    ptrdiff_t t, j, l;                                                                    \
    for (t = 0; t < ntaps; t++) {                                                         \
        const T *s = base + off[t];                                                       \
        vec_##SUFFIX part = (vec_##SUFFIX){0};                                            \
        T total = 0;                                                                      \
        for (j = 0; j + L <= n; j += L)                                                   \
            part += MLAYERS_AT(SUFFIX, dy + j) * MLAYERS_AT(SUFFIX, s + j);               \
        for (; j < n; j++) total += dy[j] * s[j];                                         \
        for (l = 0; l < L; l++) total += part[l];                                         \
        acc[t] += total;                                                                  \
    }                                                                                     \
}                                                                                         \

/* Direct convolution, register-blocked over MLAYERS_FB filters x 4 vectors of outputs:
 *   out[f][u] = b[f] + sum_{c < nch, t < ntaps} w[c][t][f] * plane[c*cstride + off[t] + u]
 * w is packed [c][t][MLAYERS_FB], so one tap's weights are adjacent; each input vector
 * loaded feeds MLAYERS_FB fused multiply-adds. */
#define MLAYERS_DEFINE_DIRECT(T, SUFFIX)                                                  \
MLAYERS_CLONES                                                                            \
static void direct_block_##SUFFIX(T *out, const T *plane, ptrdiff_t cstride, ptrdiff_t nch, \
                                  const ptrdiff_t *off, ptrdiff_t ntaps, const T *w,      \
                                  const T *b)                                             \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    ptrdiff_t c, t;                                                                       \
    vec_##SUFFIX a00 = (vec_##SUFFIX){0} + b[0], a01 = a00, a02 = a00, a03 = a00;         \
    vec_##SUFFIX a10 = (vec_##SUFFIX){0} + b[1], a11 = a10, a12 = a10, a13 = a10;         \
    vec_##SUFFIX a20 = (vec_##SUFFIX){0} + b[2], a21 = a20, a22 = a20, a23 = a20;         \
    vec_##SUFFIX a30 = (vec_##SUFFIX){0} + b[3], a31 = a30, a32 = a30, a33 = a30;         \
    vec_##SUFFIX a40 = (vec_##SUFFIX){0} + b[4], a41 = a40, a42 = a40, a43 = a40;         \
    vec_##SUFFIX a50 = (vec_##SUFFIX){0} + b[5], a51 = a50, a52 = a50, a53 = a50;         \
    for (c = 0; c < nch; c++) {                                                           \
        const T *pc = plane + c * cstride;                                                \
        const T *wc = w + c * ntaps * MLAYERS_FB;                                         \
        for (t = 0; t < ntaps; t++) {                                                     \
            const T *s = pc + off[t];                                                     \
            const T *wt = wc + t * MLAYERS_FB;                                            \
            const vec_##SUFFIX x0 = MLAYERS_AT(SUFFIX, s), x1 = MLAYERS_AT(SUFFIX, s + L); \
            const vec_##SUFFIX x2 = MLAYERS_AT(SUFFIX, s + 2 * L);                        \
            const vec_##SUFFIX x3 = MLAYERS_AT(SUFFIX, s + 3 * L);                        \
            a00 += wt[0] * x0; a01 += wt[0] * x1; a02 += wt[0] * x2; a03 += wt[0] * x3;   \
            a10 += wt[1] * x0; a11 += wt[1] * x1; a12 += wt[1] * x2; a13 += wt[1] * x3;   \
            a20 += wt[2] * x0; a21 += wt[2] * x1; a22 += wt[2] * x2; a23 += wt[2] * x3;   \
            a30 += wt[3] * x0; a31 += wt[3] * x1; a32 += wt[3] * x2; a33 += wt[3] * x3;   \
            a40 += wt[4] * x0; a41 += wt[4] * x1; a42 += wt[4] * x2; a43 += wt[4] * x3;   \
            a50 += wt[5] * x0; a51 += wt[5] * x1; a52 += wt[5] * x2; a53 += wt[5] * x3;   \
        }                                                                                 \
    }                                                                                     \
    MLAYERS_AT(SUFFIX, out) = a00; MLAYERS_AT(SUFFIX, out + L) = a01;                     \
    MLAYERS_AT(SUFFIX, out + 2 * L) = a02; MLAYERS_AT(SUFFIX, out + 3 * L) = a03;         \
    out += 4 * L;                                                                         \
    MLAYERS_AT(SUFFIX, out) = a10; MLAYERS_AT(SUFFIX, out + L) = a11;                     \
    MLAYERS_AT(SUFFIX, out + 2 * L) = a12; MLAYERS_AT(SUFFIX, out + 3 * L) = a13;         \
    out += 4 * L;                                                                         \
    MLAYERS_AT(SUFFIX, out) = a20; MLAYERS_AT(SUFFIX, out + L) = a21;                     \
    MLAYERS_AT(SUFFIX, out + 2 * L) = a22; MLAYERS_AT(SUFFIX, out + 3 * L) = a23;         \
    out += 4 * L;                                                                         \
    MLAYERS_AT(SUFFIX, out) = a30; MLAYERS_AT(SUFFIX, out + L) = a31;                     \
    MLAYERS_AT(SUFFIX, out + 2 * L) = a32; MLAYERS_AT(SUFFIX, out + 3 * L) = a33;         \
    out += 4 * L;                                                                         \
    MLAYERS_AT(SUFFIX, out) = a40; MLAYERS_AT(SUFFIX, out + L) = a41;                     \
    MLAYERS_AT(SUFFIX, out + 2 * L) = a42; MLAYERS_AT(SUFFIX, out + 3 * L) = a43;         \
    out += 4 * L;                                                                         \
    MLAYERS_AT(SUFFIX, out) = a50; MLAYERS_AT(SUFFIX, out + L) = a51;                     \
    MLAYERS_AT(SUFFIX, out + 2 * L) = a52; MLAYERS_AT(SUFFIX, out + 3 * L) = a53;         \
}

MLAYERS_DEFINE_TAPS(float, f)
MLAYERS_DEFINE_TAPS(double, d)
MLAYERS_DEFINE_DIRECT(float, f)
MLAYERS_DEFINE_DIRECT(double, d)

#endif
