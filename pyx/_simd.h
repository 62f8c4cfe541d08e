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

MLAYERS_DEFINE_TAPS(float, f)
MLAYERS_DEFINE_TAPS(double, d)

#endif
