/* Inner loops of the direct (channel-wise) convolution kernels.
 *
 * They live in C rather than Cython for one reason: GCC builds each of them for AVX-512,
 * AVX2+FMA and baseline x86-64 and one is picked at load time, so a portable build (no
 * -march=native) still runs them at the machine's vector width.  Everything else stays
 * in Cython.
 *
 * Each function works on rows that the caller has laid out contiguously (padded and
 * split into stride phases), so every inner loop is a unit-stride loop that vectorises.
 *
 * With row(t) = base + off[t], the row that filter tap t reads or writes:
 *   taps_row:     y[j] = b + sum_t w[t] * row(t)[j]             (forward)
 *   taps_scatter: row(t)[j] += w[t] * dy[j]   for every t       (adjoint)
 *   taps_dot:     acc[t] += sum_j dy[j] * row(t)[j]             (weight gradient)
 *
 * The dot products keep vectors of partial sums (one per tap), combined in a fixed order:
 * vectorised without -ffast-math, and the same on every thread count.
 */
#ifndef MLAYERS_SIMD_H
#define MLAYERS_SIMD_H

#include <stddef.h>
#include <stdint.h>
#include "_clones.h"

/* Each kernel is compiled once per instruction set, with vectors of that set's width:
 * AVX-512 (x86-64-v4, 64 bytes), AVX2+FMA (x86-64-v3, 32 bytes) and the baseline (16
 * bytes), and mlayers_level picks one when the module loads.  The width must match the
 * set: GCC lowers 64-byte vectors in AVX2 code to slow element-wise code (the direct
 * kernel ran 25x slower than on AVX-512), so target_clones of one 64-byte body would not
 * do.  MLAYERS_NO_CLONES (or a compiler other than GCC on x86-64 Linux) keeps only the
 * baseline build, as wide as the compiler's own target (-march). */
#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(MLAYERS_NO_CLONES)
#define MLAYERS_MULTI 1
#include <immintrin.h>
#define MLAYERS_BASE_VBYTES 16
#elif defined(__AVX512F__)
#define MLAYERS_BASE_VBYTES 64
#elif defined(__AVX2__)
#define MLAYERS_BASE_VBYTES 32
#else
#define MLAYERS_BASE_VBYTES 16
#endif

/* an unaligned vector at p */
#define MLAYERS_AT(SUFFIX, p) (*(vec_##SUFFIX *)(p))

/* a + w x in a scalar tail as the vector loops compute it: fused where the instruction
 * set has FMA (GCC contracts the vectors' a += w * v there), else rounded twice.  Written
 * out because GCC may vectorize a tail's taps as products, then sums in order, which
 * rounds the products that the vector loops fuse (outputs in a row shorter than a vector
 * then differed from the same outputs in a longer one by an ulp).  MLAYERS_FMA is set
 * where the kernels are expanded for each instruction set. */
#define MLAYERS_MADD(a, w, x)                                                            \
    (MLAYERS_FMA ? _Generic((a), float: __builtin_fmaf, default: __builtin_fma)((w), (x), (a)) \
                 : (a) + (w) * (x))

#define MLAYERS_DEFINE_TAPS(T, SUFFIX)                                                    \
typedef T vec_##SUFFIX                                                                    \
    __attribute__((vector_size(MLAYERS_VBYTES), aligned(sizeof(T)), may_alias));          \
enum { LANES_##SUFFIX = MLAYERS_VBYTES / sizeof(T) };                                     \
/* integers as wide as T, one per lane: a comparison's result type (shuffle indices) */   \
typedef __typeof__((vec_##SUFFIX){0} < (vec_##SUFFIX){0}) vec_##SUFFIX##_index;           \
/* shuffle indices zipping two vectors element by element: their first halves (half 0)    \
 * or their second halves (half 1) */                                                     \
MLAYERS_TARGET                                                                            \
static inline vec_##SUFFIX##_index zip_index_##SUFFIX(ptrdiff_t half)                     \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    vec_##SUFFIX##_index v;                                                               \
    for (ptrdiff_t u = 0; u < L; u++) v[u] = (u % 2 ? L : 0) + u / 2 + half * L / 2;      \
    return v;                                                                             \
}                                                                                         \
                                                                                          \
/* the first m < L lanes of v at d, as pieces of L/2, L/4, ... lanes: fixed-size copies, \
 * one store each (v goes through a local copy: its address taken, an array of vectors   \
 * would leave the registers) */                                                          \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
store_lanes_##SUFFIX(T *d, vec_##SUFFIX v, ptrdiff_t m)                                   \
{                                                                                         \
    T src[LANES_##SUFFIX];                                                                \
    memcpy(src, &v, sizeof src);                                                          \
    ptrdiff_t k = 0;                                                                      \
    _Pragma("GCC unroll 4") for (int piece = LANES_##SUFFIX / 2; piece >= 1; piece /= 2)  \
        if (m & piece) {                                                                  \
            memcpy(d + k, src + k, piece * sizeof(T));                                    \
            k += piece;                                                                   \
        }                                                                                 \
}                                                                                         \
                                                                                          \
/* shuffle indices unzipping two vectors: their even elements (half 0) or their odd       \
 * elements (half 1), the first vector's before the second's */                           \
MLAYERS_TARGET                                                                            \
static inline vec_##SUFFIX##_index unzip_index_##SUFFIX(ptrdiff_t half)                   \
{                                                                                         \
    vec_##SUFFIX##_index v;                                                               \
    for (ptrdiff_t u = 0; u < LANES_##SUFFIX; u++) v[u] = 2 * u + half;                   \
    return v;                                                                             \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
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
        T a = (T)0 + b;                                                                   \
        for (t = 0; t < ntaps; t++) a = MLAYERS_MADD(a, w[t], base[off[t] + u]);          \
        y[u] = a;                                                                         \
    }                                                                                     \
}                                                                                         \
                                                                                          \
/* taps_row of four filters that read the same rows (a single-channel input's filters): \
 * y + f ys gets b[f] + sum_t w[f ws + t] row(t) for f < 4.  Each input vector is loaded  \
 * once for the four (taps_row loads one per multiply-add, and its unaligned loads, not   \
 * its multiply-adds, set its pace); every output is summed as taps_row sums it, so the   \
 * bits are taps_row's.  Blocks of 2 vectors x 4 filters: 8 sums in registers on AVX2.    \
 */                                                                                       \
MLAYERS_TARGET                                                                            \
static void taps_rows4_##SUFFIX(T *y, ptrdiff_t ys, ptrdiff_t n, const T *base,           \
                                const ptrdiff_t *off, const T *w, ptrdiff_t ws,           \
                                ptrdiff_t ntaps, const T *b)                              \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    const T *w1 = w + ws, *w2 = w + 2 * ws, *w3 = w + 3 * ws;                             \
    ptrdiff_t j = 0, t, u;                                                                \
    for (; j + 2 * L <= n; j += 2 * L) {                                                  \
        vec_##SUFFIX a0 = (vec_##SUFFIX){0} + b[0], b0 = (vec_##SUFFIX){0} + b[1];        \
        vec_##SUFFIX c0 = (vec_##SUFFIX){0} + b[2], d0 = (vec_##SUFFIX){0} + b[3];        \
        vec_##SUFFIX a1 = a0, b1 = b0, c1 = c0, d1 = d0;                                  \
        for (t = 0; t < ntaps; t++) {                                                     \
            const T *s = base + off[t] + j;                                               \
            const vec_##SUFFIX x0 = MLAYERS_AT(SUFFIX, s), x1 = MLAYERS_AT(SUFFIX, s + L); \
            a0 += w[t] * x0;  a1 += w[t] * x1;                                            \
            b0 += w1[t] * x0; b1 += w1[t] * x1;                                           \
            c0 += w2[t] * x0; c1 += w2[t] * x1;                                           \
            d0 += w3[t] * x0; d1 += w3[t] * x1;                                           \
        }                                                                                 \
        MLAYERS_AT(SUFFIX, y + j) = a0;           MLAYERS_AT(SUFFIX, y + j + L) = a1;     \
        MLAYERS_AT(SUFFIX, y + ys + j) = b0;      MLAYERS_AT(SUFFIX, y + ys + j + L) = b1; \
        MLAYERS_AT(SUFFIX, y + 2 * ys + j) = c0;  MLAYERS_AT(SUFFIX, y + 2 * ys + j + L) = c1; \
        MLAYERS_AT(SUFFIX, y + 3 * ys + j) = d0;  MLAYERS_AT(SUFFIX, y + 3 * ys + j + L) = d1; \
    }                                                                                     \
    /* single vectors, the last overlapping the one before (as taps_row) */               \
    while (j < n && n >= L) {                                                             \
        if (j + L > n) j = n - L;                                                         \
        vec_##SUFFIX a0 = (vec_##SUFFIX){0} + b[0], b0 = (vec_##SUFFIX){0} + b[1];        \
        vec_##SUFFIX c0 = (vec_##SUFFIX){0} + b[2], d0 = (vec_##SUFFIX){0} + b[3];        \
        for (t = 0; t < ntaps; t++) {                                                     \
            const vec_##SUFFIX x0 = MLAYERS_AT(SUFFIX, base + off[t] + j);                \
            a0 += w[t] * x0; b0 += w1[t] * x0; c0 += w2[t] * x0; d0 += w3[t] * x0;        \
        }                                                                                 \
        MLAYERS_AT(SUFFIX, y + j) = a0;          MLAYERS_AT(SUFFIX, y + ys + j) = b0;     \
        MLAYERS_AT(SUFFIX, y + 2 * ys + j) = c0; MLAYERS_AT(SUFFIX, y + 3 * ys + j) = d0; \
        j += L;                                                                           \
    }                                                                                     \
    for (u = j; u < n; u++)                                                               \
        for (int f = 0; f < 4; f++) {                                                     \
            T a = (T)0 + b[f];                                                            \
            for (t = 0; t < ntaps; t++) a = MLAYERS_MADD(a, w[f * ws + t], base[off[t] + u]); \
            y[f * ys + u] = a;                                                            \
        }                                                                                 \
}                                                                                         \
                                                                                          \
/* rows of n values, ss apart at s, to rows ds apart at d (relu's values with rectify:    \
 * x <= 0 gives +0, NaN kept): whole vectors, the last one overlapping the one before,    \
 * rather than a memcpy call per row (N1's first layer: 28 values a row, 3584 rows an     \
 * image); with a, the rows as apart at a added first; nothing outside the rows' n values \
 * is read or written */                                                                  \
MLAYERS_TARGET                                                                            \
static void copy_rows_##SUFFIX(T *restrict d, ptrdiff_t ds, const T *restrict s,         \
                               ptrdiff_t ss, ptrdiff_t rows, ptrdiff_t n, int rectify,    \
                               const T *restrict a, ptrdiff_t as)                         \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    typedef T half __attribute__((vector_size(MLAYERS_VBYTES / 2), aligned(sizeof(T)),    \
                                  may_alias));                                            \
    typedef __typeof__((half){0} < (half){0}) half_index;                                 \
    for (ptrdiff_t i = 0; i < rows; i++, d += ds, s += ss, a += a ? as : 0) {             \
        if (n >= L) {                                                                     \
            for (ptrdiff_t j = 0; j < n; j += L) {                                        \
                const ptrdiff_t k = j + L <= n ? j : n - L;                               \
                vec_##SUFFIX v = MLAYERS_AT(SUFFIX, s + k);                               \
                if (a) v += MLAYERS_AT(SUFFIX, a + k);                                    \
                if (rectify) v = (vec_##SUFFIX)((vec_##SUFFIX##_index)v & ~(v <= 0));     \
                MLAYERS_AT(SUFFIX, d + k) = v;                                            \
            }                                                                             \
        } else if (2 * n >= L && L >= 4) {                                                \
            /* (14 values on 16 lanes: two overlapping half vectors) */                   \
            half u = *(const half *)s, v = *(const half *)(s + n - L / 2);                \
            if (a) {                                                                      \
                u += *(const half *)a;                                                    \
                v += *(const half *)(a + n - L / 2);                                      \
            }                                                                             \
            if (rectify) {                                                                \
                u = (half)((half_index)u & ~(u <= 0));                                    \
                v = (half)((half_index)v & ~(v <= 0));                                    \
            }                                                                             \
            *(half *)d = u;                                                               \
            *(half *)(d + n - L / 2) = v;                                                 \
        } else {                                                                          \
            for (ptrdiff_t j = 0; j < n; j++) {                                           \
                const T v = a ? s[j] + a[j] : s[j];                                       \
                d[j] = rectify && v <= 0 ? 0 : v;                                         \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
                                                                                          \
/* the lanes a <= u < b of the vector at p, zero elsewhere: p + u is read only there */   \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) vec_##SUFFIX                                 \
load_range_##SUFFIX(const T *p, ptrdiff_t a, ptrdiff_t b)                                 \
{                                                                                         \
    if (a >= b || a >= LANES_##SUFFIX || b <= 0) return (vec_##SUFFIX){0};                \
    return MLAYERS_LOAD_RANGE(T, SUFFIX, p, a, b);                                        \
}                                                                                         \
                                                                                          \
/* rows of n values at d, n apart, from rows ss apart at s: s[j] for lo <= j < hi, zero   \
 * elsewhere (im2col's rows of a filter tap, _conv.pyx _im2col_wide: N1's 7- and 14-value \
 * rows took a memcpy, memsets and scalar edge stores each); s + j is read only for       \
 * lo <= j < hi */                                                                        \
MLAYERS_TARGET                                                                            \
static void shift_rows_##SUFFIX(T *restrict d, ptrdiff_t n, const T *restrict s,         \
                                ptrdiff_t ss, ptrdiff_t rows, ptrdiff_t lo, ptrdiff_t hi) \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    /* a vector's place in every row at once: its lanes, and so its masks, are the same   \
     * in each */                                                                         \
    for (ptrdiff_t j = 0; j < n; j += L) {                                                \
        const ptrdiff_t m = n - j < L ? n - j : L;       /* lanes stored */               \
        const ptrdiff_t a = lo - j, b = (hi < j + m ? hi : j + m) - j;  /* lanes read */  \
        T *dj = d + j;                                                                    \
        const T *sj = s + j;                                                              \
        if (m == L && a <= 0 && b >= L)                                                   \
            for (ptrdiff_t i = 0; i < rows; i++)                                          \
                MLAYERS_AT(SUFFIX, dj + i * n) = MLAYERS_AT(SUFFIX, sj + i * ss);         \
        else if (m == L)                                                                  \
            for (ptrdiff_t i = 0; i < rows; i++)                                          \
                MLAYERS_AT(SUFFIX, dj + i * n) = load_range_##SUFFIX(sj + i * ss, a, b);  \
        else                                                                              \
            for (ptrdiff_t i = 0; i < rows; i++)                                          \
                MLAYERS_STORE_FIRST(T, SUFFIX, dj + i * n,                                \
                                    load_range_##SUFFIX(sj + i * ss, a, b), m);           \
    }                                                                                     \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
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
MLAYERS_TARGET                                                                            \
static void taps_dot_##SUFFIX(T *acc, ptrdiff_t n, const T *dy, const T *base,            \
                              const ptrdiff_t *off, ptrdiff_t ntaps)                      \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    ptrdiff_t t = 0, j, l, k;                                                             \
    /* four taps at a time: each dy vector loaded feeds four independent sums (one sum    \
       alone waits on its own multiply-add latency: 3x slower) */                         \
    for (; t + 4 <= ntaps; t += 4) {                                                      \
        const T *s0 = base + off[t], *s1 = base + off[t + 1], *s2 = base + off[t + 2],    \
                *s3 = base + off[t + 3];                                                  \
        vec_##SUFFIX p0 = (vec_##SUFFIX){0}, p1 = p0, p2 = p0, p3 = p0;                   \
        T total[4] = {0, 0, 0, 0};                                                        \
        for (j = 0; j + L <= n; j += L) {                                                 \
            const vec_##SUFFIX d = MLAYERS_AT(SUFFIX, dy + j);                            \
            p0 += d * MLAYERS_AT(SUFFIX, s0 + j);                                         \
            p1 += d * MLAYERS_AT(SUFFIX, s1 + j);                                         \
            p2 += d * MLAYERS_AT(SUFFIX, s2 + j);                                         \
            p3 += d * MLAYERS_AT(SUFFIX, s3 + j);                                         \
        }                                                                                 \
        for (; j < n; j++) {                                                              \
            total[0] += dy[j] * s0[j];                                                    \
            total[1] += dy[j] * s1[j];                                                    \
            total[2] += dy[j] * s2[j];                                                    \
            total[3] += dy[j] * s3[j];                                                    \
        }                                                                                 \
        for (l = 0; l < L; l++) {                                                         \
            total[0] += p0[l];                                                            \
            total[1] += p1[l];                                                            \
            total[2] += p2[l];                                                            \
            total[3] += p3[l];                                                            \
        }                                                                                 \
        for (k = 0; k < 4; k++) acc[t + k] += total[k];                                   \
    }                                                                                     \
    for (; t < ntaps; t++) {                                                              \
        const T *s = base + off[t];                                                       \
        vec_##SUFFIX part = (vec_##SUFFIX){0};                                            \
        T total = 0;                                                                      \
        for (j = 0; j + L <= n; j += L)                                                   \
            part += MLAYERS_AT(SUFFIX, dy + j) * MLAYERS_AT(SUFFIX, s + j);               \
        for (; j < n; j++) total += dy[j] * s[j];                                         \
        for (l = 0; l < L; l++) total += part[l];                                         \
        acc[t] += total;                                                                  \
    }                                                                                     \
}

/* One input row into its stride phases: dst[r*dstride + m] = x[s*m + r - p] for m in
 * [bounds[2r], bounds[2r+1]) and zero elsewhere below len (x == NULL: all zeros).  The
 * bounds are the same for every row, so the caller computes them once; strides 2, 3 and 4
 * get their own loops, which GCC turns into vector permutes (a variable stride stays
 * scalar: the volumes of T1's stride-4 gradient took 10 % of its time), and strides 4
 * and 8 split into all their phases are rounds of vector unzips. */
#define MLAYERS_DEFINE_SPLIT(T, SUFFIX)                                                   \
/* one vector of each of 4 phases, dst + r*dstride, from 4 consecutive vectors at src:    \
 * two rounds of unzips */                                                                \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
unzip4_##SUFFIX(T *dst, ptrdiff_t dstride, const T *src)                                  \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    const vec_##SUFFIX##_index even = unzip_index_##SUFFIX(0);                            \
    const vec_##SUFFIX##_index odd = unzip_index_##SUFFIX(1);                             \
    const vec_##SUFFIX a0 = MLAYERS_AT(SUFFIX, src);                                      \
    const vec_##SUFFIX a1 = MLAYERS_AT(SUFFIX, src + L);                                  \
    const vec_##SUFFIX a2 = MLAYERS_AT(SUFFIX, src + 2 * L);                              \
    const vec_##SUFFIX a3 = MLAYERS_AT(SUFFIX, src + 3 * L);                              \
    const vec_##SUFFIX e0 = __builtin_shuffle(a0, a1, even);                              \
    const vec_##SUFFIX o0 = __builtin_shuffle(a0, a1, odd);                               \
    const vec_##SUFFIX e1 = __builtin_shuffle(a2, a3, even);                              \
    const vec_##SUFFIX o1 = __builtin_shuffle(a2, a3, odd);                               \
    MLAYERS_AT(SUFFIX, dst) = __builtin_shuffle(e0, e1, even);                            \
    MLAYERS_AT(SUFFIX, dst + dstride) = __builtin_shuffle(o0, o1, even);                  \
    MLAYERS_AT(SUFFIX, dst + 2 * dstride) = __builtin_shuffle(e0, e1, odd);               \
    MLAYERS_AT(SUFFIX, dst + 3 * dstride) = __builtin_shuffle(o0, o1, odd);               \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static void split_row_##SUFFIX(T *restrict dst, ptrdiff_t dstride, ptrdiff_t nph,         \
                               ptrdiff_t len, const T *restrict x, ptrdiff_t s,           \
                               ptrdiff_t p, const ptrdiff_t *bounds)                      \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    ptrdiff_t r, m, lo4 = 0, hi4 = 0;                                                     \
    /* the row 2 KiB ahead: when rows are short, the hardware prefetchers would not reach \
       that far ahead (channel-wise G2 weight gradient: 1.25x faster); long rows they do  \
       reach, and prefetching all of them took a fifth of this function in T1 */          \
    if (x && s * len * (ptrdiff_t)sizeof(T) <= 2048)                                      \
        for (m = 0; m < s * len; m += 64 / sizeof(T))                                     \
            __builtin_prefetch(x + 2048 / sizeof(T) + m);                                 \
    if (x && (s == 4 || s == 8) && nph == s) {                                            \
        /* where every phase is in range, s vectors of x make one of each phase: rounds   \
           of unzips (even and odd elements of a pair), each x loaded once */             \
        const vec_##SUFFIX##_index even = unzip_index_##SUFFIX(0);                        \
        const vec_##SUFFIX##_index odd = unzip_index_##SUFFIX(1);                         \
        lo4 = bounds[0]; hi4 = bounds[1];                                                 \
        for (r = 1; r < s; r++) {                                                         \
            lo4 = bounds[2 * r] > lo4 ? bounds[2 * r] : lo4;                              \
            hi4 = bounds[2 * r + 1] < hi4 ? bounds[2 * r + 1] : hi4;                      \
        }                                                                                 \
        if (hi4 - lo4 < L) hi4 = lo4;                                                     \
        for (m = lo4; m < hi4; m += L) {                                                  \
            if (m + L > hi4) m = hi4 - L;                                                 \
            const T *b = x + s * m - p;                                                   \
            if (s == 4) {                                                                 \
                unzip4_##SUFFIX(dst + m, dstride, b);                                     \
            } else {                                                                      \
                /* the even and the odd elements are phases 0 2 4 6 and 1 3 5 7, each as  \
                   4 phases to unzip */                                                   \
                vec_##SUFFIX e[4], o[4];                                                  \
                for (r = 0; r < 4; r++) {                                                 \
                    const vec_##SUFFIX a0 = MLAYERS_AT(SUFFIX, b + 2 * r * L);            \
                    const vec_##SUFFIX a1 = MLAYERS_AT(SUFFIX, b + (2 * r + 1) * L);      \
                    e[r] = __builtin_shuffle(a0, a1, even);                               \
                    o[r] = __builtin_shuffle(a0, a1, odd);                                \
                }                                                                         \
                unzip4_##SUFFIX(dst + m, 2 * dstride, (const T *)e);                      \
                unzip4_##SUFFIX(dst + dstride + m, 2 * dstride, (const T *)o);            \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    for (r = 0; r < nph; r++) {                                                           \
        T *restrict d = dst + r * dstride;                                                \
        const ptrdiff_t lo = x ? bounds[2 * r] : len, hi = x ? bounds[2 * r + 1] : len;   \
        const T *restrict src = x ? x + (r - p) : x;                                      \
        for (m = 0; m < lo; m++) d[m] = 0;                                                \
        if (hi4 > lo4) {                                                                  \
            /* around the range done above */                                             \
            for (m = lo; m < lo4; m++) d[m] = src[s * m];                                 \
            for (m = hi4; m < hi; m++) d[m] = src[s * m];                                 \
        } else if (s == 1)                                                                \
            for (m = lo; m < hi; m++) d[m] = src[m];                                      \
        else if (s == 2)                                                                  \
            for (m = lo; m < hi; m++) d[m] = src[2 * m];                                  \
        else if (s == 3)                                                                  \
            for (m = lo; m < hi; m++) d[m] = src[3 * m];                                  \
        else if (s == 4)                                                                  \
            for (m = lo; m < hi; m++) d[m] = src[4 * m];                                  \
        else                                                                              \
            for (m = lo; m < hi; m++) d[m] = src[s * m];                                  \
        for (m = hi; m < len; m++) d[m] = 0;                                              \
    }                                                                                     \
}                                                                                         \
                                                                                          \
/* y[0 .. n-1] rectified in place as the ReLU kernel does (x <= 0 gives +0, NaN kept): a \
 * convolution's output fused with the ReLU that alone reads it */                       \
MLAYERS_TARGET                                                                            \
static void rectify_row_##SUFFIX(T *y, ptrdiff_t n)                                       \
{                                                                                         \
    for (ptrdiff_t i = 0; i < n; i++)                                                     \
        y[i] = y[i] <= 0 ? (T)0 : y[i];                                                   \
}                                                                                         \
                                                                                          \
/* The sum of x[0 .. n-1] in double: two vectors of partial sums, added in a fixed order  \
 * (so the same bits for any thread count), each value widened first, as float32 sums of  \
 * long rows would lose digits. */                                                        \
typedef double vec_##SUFFIX##_wide __attribute__((vector_size(LANES_##SUFFIX * 8)));      \
MLAYERS_TARGET                                                                            \
static double row_sum_##SUFFIX(const T *x, ptrdiff_t n)                                   \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    vec_##SUFFIX##_wide s0 = {0}, s1 = {0};                                               \
    double s = 0;                                                                         \
    ptrdiff_t i = 0, j;                                                                   \
    for (; i + 2 * L <= n; i += 2 * L) {                                                  \
        s0 += __builtin_convertvector(MLAYERS_AT(SUFFIX, x + i), vec_##SUFFIX##_wide);    \
        s1 += __builtin_convertvector(MLAYERS_AT(SUFFIX, x + i + L), vec_##SUFFIX##_wide); \
    }                                                                                     \
    s0 += s1;                                                                             \
    for (j = 0; j < L; j++) s += s0[j];                                                   \
    for (; i < n; i++) s += x[i];                                                         \
    return s;                                                                             \
}                                                                                         \
                                                                                          \
/* The adjoint of split_row, plus a constant: x[s*m + r - p] = b + src[r*dstride + m] for \
 * m in [bounds[2r], bounds[2r+1]), and b at the n - (those) other positions of x (all of \
 * them if src == NULL).  Stride 2 interleaves both phases where both are in range,       \
 * straight into x, in whole vectors (the last one overlapping the one before, as x is    \
 * assigned there): a scalar tail would cost as much as the rest of a short row. */       \
MLAYERS_TARGET                                                                            \
static void merge_row_##SUFFIX(T *restrict x, ptrdiff_t n, const T *restrict src,         \
                               ptrdiff_t dstride, ptrdiff_t nph, ptrdiff_t s, ptrdiff_t p, \
                               const ptrdiff_t *bounds, T b)                              \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    ptrdiff_t r, m, lo = 0, hi = 0;                                                       \
    if (src && s == 2 && nph == 2) {                                                      \
        const T *restrict s0 = src, *restrict s1 = src + dstride;                         \
        lo = bounds[0] > bounds[2] ? bounds[0] : bounds[2];                               \
        hi = bounds[1] < bounds[3] ? bounds[1] : bounds[3];                               \
        if (hi < lo) hi = lo;                                                             \
        for (m = 0; m < 2 * lo - p; m++) x[m] = b;                                        \
        for (m = 2 * hi - p; m < n; m++) x[m] = b;                                        \
        for (m = lo; m < hi && hi - lo < L; m++) {                                        \
            x[2 * m - p] = b + s0[m];                                                     \
            x[2 * m + 1 - p] = b + s1[m];                                                 \
        }                                                                                 \
        /* a vector of each phase makes two of x: their first halves, then their second   \
           halves, element by element */                                                  \
        const vec_##SUFFIX##_index first = zip_index_##SUFFIX(0);                         \
        const vec_##SUFFIX##_index second = zip_index_##SUFFIX(1);                        \
        for (m = lo; m < hi && hi - lo >= L; m += L) {                                    \
            if (m + L > hi) m = hi - L;                                                   \
            const vec_##SUFFIX e = b + MLAYERS_AT(SUFFIX, s0 + m);                        \
            const vec_##SUFFIX o = b + MLAYERS_AT(SUFFIX, s1 + m);                        \
            MLAYERS_AT(SUFFIX, x + 2 * m - p) = __builtin_shuffle(e, o, first);           \
            MLAYERS_AT(SUFFIX, x + 2 * m - p + L) = __builtin_shuffle(e, o, second);      \
        }                                                                                 \
    } else {                                                                              \
        for (m = 0; m < n; m++) x[m] = b;                                                 \
    }                                                                                     \
    if (!src) return;                                                                     \
    if (s == 1) {                                                                         \
        for (m = bounds[0]; m < bounds[1]; m++) x[m - p] += src[m];                       \
        return;                                                                           \
    }                                                                                     \
    /* the rest: every phase outside the common range [lo, hi) */                         \
    for (r = 0; r < nph; r++) {                                                           \
        const T *restrict sr = src + r * dstride;                                         \
        const ptrdiff_t a = bounds[2 * r], e = bounds[2 * r + 1];                         \
        for (m = a; m < e && m < lo; m++) x[s * m + r - p] += sr[m];                      \
        for (m = a > hi ? a : hi; m < e; m++) x[s * m + r - p] += sr[m];                  \
    }                                                                                     \
}

/* Finished outputs of a register block, to be copied to y while the next block computes
 * (the copies need the load and store ports, which its multiply-adds leave idle).  The
 * block holds s stride phases of the innermost output dimension (s = 1: one), pstride
 * apart, which the copies interleave: for filters f < nf, runs i < nseg, j < seg[4i+2],
 *   y[f*yplane + seg[4i+1] + j] = src[(u % s)*pstride + f*ld + seg[4i] + u / s],
 * with u = seg[4i+3] + j.  With wino set, the block holds the four products of
 * Winograd's F(2, 3) along rows instead (s = 2), and the copies apply its output transform:
 * phase 0 is (m0 + m1) + m2 and phase 1 (m1 - m2) - m3, m_k = src[k*pstride + ...]; they
 * add z*0 over every output z to the vector at bad (of their type), which stays 0 unless
 * one is Inf or NaN. */
typedef struct {
    const void *src;
    void *y;
    ptrdiff_t ld, nf, yplane, s, pstride, nseg;
    const ptrdiff_t *seg;
    int wino;
    void *bad;
} mlayers_runs;

/* Direct convolution, register-blocked over FB filters x NV vectors of outputs:
 *   out[f][u] = b[f] + sum_{c < nch, t < ntaps} w[c][t][f] * plane[c*cstride + off[t] + u]
 * w is packed [c][t][FB], so one tap's weights are adjacent; each input vector loaded
 * feeds FB fused multiply-adds.  The sums start from zero in the registers and are added
 * to out (acc != 0) or b at the end, so a caller can split the channels into chunks whose
 * inputs stay in L1 and whose partial sums it adds up (a blocked sum: float32 rounds like
 * a sum of a chunk's length, not the reduction's; docs/engine.md, "Accuracy").  Meanwhile it
 * copies out the runs `cp` (may be NULL), one filter per channel.  Two shapes of 24
 * accumulators: 6 x 4 and 8 x 3; the caller picks the one that wastes fewer filter slots.
 * The accumulators are written out by hand because GCC keeps arrays of vectors in
 * memory, not in registers. */
#define MLAYERS_ACC4(SUFFIX, i) vec_##SUFFIX a##i##0 = (vec_##SUFFIX){0},                   \
    a##i##1 = a##i##0, a##i##2 = a##i##0, a##i##3 = a##i##0
#define MLAYERS_FMA4(i) a##i##0 += wt[i] * x0; a##i##1 += wt[i] * x1;                     \
    a##i##2 += wt[i] * x2; a##i##3 += wt[i] * x3
/* out = (out or b) + a */
#define MLAYERS_OUT1(SUFFIX, j, i, a) do {                                                \
        vec_##SUFFIX o_ = (vec_##SUFFIX){0} + b[i];                                       \
        if (acc) o_ = MLAYERS_AT(SUFFIX, out + (j) * L);                                  \
        MLAYERS_AT(SUFFIX, out + (j) * L) = o_ + a;                                          \
    } while (0)
#define MLAYERS_OUT4(SUFFIX, i) MLAYERS_OUT1(SUFFIX, 4 * i, i, a##i##0);                  \
    MLAYERS_OUT1(SUFFIX, 4 * i + 1, i, a##i##1); MLAYERS_OUT1(SUFFIX, 4 * i + 2, i, a##i##2); \
    MLAYERS_OUT1(SUFFIX, 4 * i + 3, i, a##i##3)
#define MLAYERS_ACC3(SUFFIX, i) vec_##SUFFIX a##i##0 = (vec_##SUFFIX){0},                   \
    a##i##1 = a##i##0, a##i##2 = a##i##0
#define MLAYERS_FMA3(i) a##i##0 += wt[i] * x0; a##i##1 += wt[i] * x1; a##i##2 += wt[i] * x2
#define MLAYERS_OUT3(SUFFIX, i) MLAYERS_OUT1(SUFFIX, 3 * i, i, a##i##0);                  \
    MLAYERS_OUT1(SUFFIX, 3 * i + 1, i, a##i##1); MLAYERS_OUT1(SUFFIX, 3 * i + 2, i, a##i##2)

#define MLAYERS_DEFINE_DIRECT(T, SUFFIX)                                                  \
/* 4 consecutive vectors of y from one of each of 4 phases, src + r*ps: two rounds of     \
 * zips */                                                                                \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
zip4_##SUFFIX(T *dst, const T *src, ptrdiff_t ps)                                         \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    const vec_##SUFFIX##_index first = zip_index_##SUFFIX(0);                             \
    const vec_##SUFFIX##_index second = zip_index_##SUFFIX(1);                            \
    const vec_##SUFFIX p0 = MLAYERS_AT(SUFFIX, src);                                      \
    const vec_##SUFFIX p1 = MLAYERS_AT(SUFFIX, src + ps);                                 \
    const vec_##SUFFIX p2 = MLAYERS_AT(SUFFIX, src + 2 * ps);                             \
    const vec_##SUFFIX p3 = MLAYERS_AT(SUFFIX, src + 3 * ps);                             \
    const vec_##SUFFIX e0 = __builtin_shuffle(p0, p2, first);                             \
    const vec_##SUFFIX e1 = __builtin_shuffle(p0, p2, second);                            \
    const vec_##SUFFIX o0 = __builtin_shuffle(p1, p3, first);                             \
    const vec_##SUFFIX o1 = __builtin_shuffle(p1, p3, second);                            \
    MLAYERS_AT(SUFFIX, dst) = __builtin_shuffle(e0, o0, first);                           \
    MLAYERS_AT(SUFFIX, dst + L) = __builtin_shuffle(e0, o0, second);                      \
    MLAYERS_AT(SUFFIX, dst + 2 * L) = __builtin_shuffle(e1, o1, first);                   \
    MLAYERS_AT(SUFFIX, dst + 3 * L) = __builtin_shuffle(e1, o1, second);                  \
}                                                                                         \
                                                                                          \
/* Winograd F(2, 3)'s output transform of L tiles from their four products at src, ps  \
 * apart: e the tiles' first outputs, (m0 + m1) + m2, and o their second, (m1 - m2) - m3 */ \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
wino_pair_##SUFFIX(const T *src, ptrdiff_t ps, vec_##SUFFIX *e, vec_##SUFFIX *o)          \
{                                                                                         \
    const vec_##SUFFIX m1 = MLAYERS_AT(SUFFIX, src + ps);                                 \
    const vec_##SUFFIX m2 = MLAYERS_AT(SUFFIX, src + 2 * ps);                             \
    *e = (MLAYERS_AT(SUFFIX, src) + m1) + m2;                                             \
    *o = (m1 - m2) - MLAYERS_AT(SUFFIX, src + 3 * ps);                                    \
}                                                                                         \
                                                                                          \
/* output u of a run whose phases (of position u / s) are pstride apart from a; under \
 * Winograd (s = 2), the output transform of its four products, adding z*0 to *bad */    \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) T                                            \
run_at_##SUFFIX(const T *a, ptrdiff_t u, ptrdiff_t s, ptrdiff_t ps, const int wino, T *bad) \
{                                                                                         \
    if (!wino) return a[u % s * ps + u / s];                                              \
    const T *m = a + u / 2;                                                               \
    const T z = u % 2 ? (m[ps] - m[2 * ps]) - m[3 * ps] : (m[0] + m[ps]) + m[2 * ps];     \
    *bad += z * 0;                                                                        \
    return z;                                                                             \
}                                                                                         \
                                                                                          \
/* filter f of the runs r.  Whole vectors, the last one overlapping the one before rather \
 * than a scalar tail; with 2, 4 or 8 phases, a vector of each makes 2, 4 or 8 of y (zips \
 * of pairs: a b c d -> (a c)(b d) -> a b c d, element by element). */                    \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
store_run_body_##SUFFIX(const mlayers_runs *r, ptrdiff_t f, const int eight, const int wino) \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX, s = r->s, ps = r->pstride;                        \
    const T *a0 = (const T *)r->src + f * r->ld;                                          \
    T *y0 = (T *)r->y + f * r->yplane;                                                    \
    const vec_##SUFFIX##_index first = zip_index_##SUFFIX(0);                             \
    const vec_##SUFFIX##_index second = zip_index_##SUFFIX(1);                            \
    vec_##SUFFIX bad = {0};                                                               \
    T bad1 = 0;                                                                           \
    ptrdiff_t i, j, k;                                                                    \
    for (i = 0; i < r->nseg; i++) {                                                       \
        const ptrdiff_t *sg = r->seg + 4 * i, n = sg[2], u0 = sg[3];                      \
        const T *a = a0 + sg[0];                                                          \
        T *d = y0 + sg[1];                                                                \
        const ptrdiff_t w = s == 1 || s == 2 || s == 4 || (eight && s == 8) ? s * L : 0;  \
        /* (s - 1 bounds the outputs before the first phase-0 position without a division, \
           which cost T2 and U1 2-3 %; Winograd's runs are often exactly one group long) */ \
        const ptrdiff_t lead = wino ? u0 & 1 : s - 1;                                     \
        if (wino && w && n - lead < w && n - lead >= 4) {                                 \
            /* a run shorter than a group (30 outputs a row against 2L = 32): one group   \
               from its first even position, stored in pieces; the lanes past the run's   \
               pairs read the block's next values (inside the thread's buffer), which are \
               neither stored nor checked */                                              \
            const ptrdiff_t m = n - lead;                                                 \
            if (lead) d[0] = run_at_##SUFFIX(a, u0, s, ps, 1, &bad1);                     \
            vec_##SUFFIX e, o;                                                            \
            wino_pair_##SUFFIX(a + (u0 + lead) / 2, ps, &e, &o);                          \
            /* only the outputs stored: (m + 1) / 2 first ones, m / 2 second ones */      \
            vec_##SUFFIX##_index lane, firsts, seconds;                                   \
            for (k = 0; k < L; k++) {                                                     \
                lane[k] = k;                                                              \
                firsts[k] = (m + 1) / 2;                                                  \
                seconds[k] = m / 2;                                                       \
            }                                                                             \
            bad += (vec_##SUFFIX)(((vec_##SUFFIX##_index)(e * 0) & (lane < firsts))       \
                                  | ((vec_##SUFFIX##_index)(o * 0) & (lane < seconds)));  \
            const vec_##SUFFIX lo = __builtin_shuffle(e, o, first);                       \
            const vec_##SUFFIX hi = __builtin_shuffle(e, o, second);                      \
            if (m >= L) {                                                                 \
                MLAYERS_AT(SUFFIX, d + lead) = lo;                                        \
                if (m > L) MLAYERS_STORE_FIRST(T, SUFFIX, d + lead + L, hi, m - L);       \
            } else {                                                                      \
                MLAYERS_STORE_FIRST(T, SUFFIX, d + lead, lo, m);                          \
            }                                                                             \
            continue;                                                                     \
        }                                                                                 \
        if (!w || n - lead < w) {                                                         \
            /* one value at a time: other strides, and runs too short for a whole group   \
               of vectors after the first phase-0 position */                             \
            if (wino) {                                                                   \
                for (j = 0; j < n; j++) d[j] = run_at_##SUFFIX(a, u0 + j, s, ps, 1, &bad1); \
                continue;                                                                 \
            }                                                                             \
            ptrdiff_t ph = u0 % s, m = u0 / s;                                            \
            for (j = 0; j < n; j++) {                                                     \
                d[j] = a[ph * ps + m];                                                    \
                if (++ph == s) { ph = 0; m++; }                                           \
            }                                                                             \
            continue;                                                                     \
        }                                                                                 \
        for (j = 0; (u0 + j) % s; j++) d[j] = run_at_##SUFFIX(a, u0 + j, s, ps, wino, &bad1); \
        for (k = j; k < n; k += w) {                                                      \
            if (k + w > n) {                                                              \
                k = n - w;                                                                \
                k -= (u0 + k) % s;                                                        \
            }                                                                             \
            const T *src = a + (u0 + k) / s;                                              \
            T *dst = d + k;                                                               \
            if (s == 1) {                                                                 \
                MLAYERS_AT(SUFFIX, dst) = MLAYERS_AT(SUFFIX, src);                        \
            } else if (wino) {                                                            \
                vec_##SUFFIX e, o;                                                        \
                wino_pair_##SUFFIX(src, ps, &e, &o);                                      \
                bad += e * 0 + o * 0;                                                     \
                MLAYERS_AT(SUFFIX, dst) = __builtin_shuffle(e, o, first);                 \
                MLAYERS_AT(SUFFIX, dst + L) = __builtin_shuffle(e, o, second);            \
            } else if (s == 2) {                                                          \
                const vec_##SUFFIX e = MLAYERS_AT(SUFFIX, src);                           \
                const vec_##SUFFIX o = MLAYERS_AT(SUFFIX, src + ps);                      \
                MLAYERS_AT(SUFFIX, dst) = __builtin_shuffle(e, o, first);                 \
                MLAYERS_AT(SUFFIX, dst + L) = __builtin_shuffle(e, o, second);            \
            } else if (!eight || s == 4) {                                                \
                zip4_##SUFFIX(dst, src, ps);                                              \
            } else {                                                                      \
                /* 8 phases: the even ones and the odd ones zipped as 4, then together */ \
                vec_##SUFFIX e[4], o[4];                                                  \
                zip4_##SUFFIX((T *)e, src, 2 * ps);                                       \
                zip4_##SUFFIX((T *)o, src + ps, 2 * ps);                                  \
                for (j = 0; j < 4; j++) {                                                 \
                    MLAYERS_AT(SUFFIX, dst + 2 * j * L) = __builtin_shuffle(e[j], o[j], first); \
                    MLAYERS_AT(SUFFIX, dst + (2 * j + 1) * L) =                           \
                        __builtin_shuffle(e[j], o[j], second);                            \
                }                                                                         \
            }                                                                             \
            if (k + w >= n - s + 1) {                                                     \
                /* the last group may stop short of n by less than s (moved back to a     \
                   phase-0 position) */                                                   \
                for (j = k + w; j < n; j++)                                               \
                    d[j] = run_at_##SUFFIX(a, u0 + j, s, ps, wino, &bad1);                \
                break;                                                                    \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    if (wino) {                                                                           \
        MLAYERS_AT(SUFFIX, r->bad) += bad;                                                \
        ((T *)r->bad)[0] += bad1;                                                         \
    }                                                                                     \
    /* the outputs of this filter's next block (which follow these) into the cache ahead  \
       of their stores: their lines come from memory (C1 and G1 about 2 % faster) */      \
    if (r->nseg) {                                                                        \
        const ptrdiff_t *last = r->seg + 4 * (r->nseg - 1);                               \
        const T *e = y0 + last[1] + last[2];                                              \
        for (j = 0; j < r->ld * s; j += 64 / sizeof(T)) __builtin_prefetch(e + j, 1, 3);  \
    }                                                                                     \
}                                                                                         \
                                                                                          \
/* 8 phases and Winograd in copies of their own: compiled into store_run's loop, the 8   \
 * phases' code slowed the other strides' stores (T2 by 5 %) */                           \
MLAYERS_TARGET                                                                            \
static __attribute__((noinline)) void store_run8_##SUFFIX(const mlayers_runs *r, ptrdiff_t f) \
{                                                                                         \
    store_run_body_##SUFFIX(r, f, 1, 0);                                                  \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static __attribute__((noinline)) void store_run_wino_##SUFFIX(const mlayers_runs *r,     \
                                                              ptrdiff_t f)               \
{                                                                                         \
    store_run_body_##SUFFIX(r, f, 0, 1);                                                  \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
store_run_##SUFFIX(const mlayers_runs *r, ptrdiff_t f)                                    \
{                                                                                         \
    if (r->wino)                                                                          \
        store_run_wino_##SUFFIX(r, f);                                                    \
    else if (r->s == 8)                                                                   \
        store_run8_##SUFFIX(r, f);                                                        \
    else                                                                                  \
        store_run_body_##SUFFIX(r, f, 0, 0);                                              \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static void store_runs_##SUFFIX(const mlayers_runs *r)                                    \
{                                                                                         \
    for (ptrdiff_t f = 0; f < r->nf; f++) store_run_##SUFFIX(r, f);                       \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static void direct_block6_##SUFFIX(T *out, const T *plane, ptrdiff_t cstride,             \
                                   ptrdiff_t nch, const ptrdiff_t *off, ptrdiff_t ntaps,  \
                                   const T *w, const T *b, int acc,                       \
                                   const mlayers_runs *cp)                                \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX, ncp = cp ? cp->nf : 0;                            \
    ptrdiff_t c, t;                                                                       \
    MLAYERS_ACC4(SUFFIX, 0); MLAYERS_ACC4(SUFFIX, 1); MLAYERS_ACC4(SUFFIX, 2);            \
    MLAYERS_ACC4(SUFFIX, 3); MLAYERS_ACC4(SUFFIX, 4); MLAYERS_ACC4(SUFFIX, 5);            \
    for (c = 0; c < nch; c++) {                                                           \
        const T *pc = plane + c * cstride;                                                \
        const T *wc = w + c * ntaps * 6;                                                  \
        if (c < ncp) store_run_##SUFFIX(cp, c);                                           \
        for (t = 0; t < ntaps; t++) {                                                     \
            const T *s = pc + off[t];                                                     \
            const T *wt = wc + t * 6;                                                     \
            const vec_##SUFFIX x0 = MLAYERS_AT(SUFFIX, s), x1 = MLAYERS_AT(SUFFIX, s + L); \
            const vec_##SUFFIX x2 = MLAYERS_AT(SUFFIX, s + 2 * L);                        \
            const vec_##SUFFIX x3 = MLAYERS_AT(SUFFIX, s + 3 * L);                        \
            MLAYERS_FMA4(0); MLAYERS_FMA4(1); MLAYERS_FMA4(2);                            \
            MLAYERS_FMA4(3); MLAYERS_FMA4(4); MLAYERS_FMA4(5);                            \
        }                                                                                 \
    }                                                                                     \
    MLAYERS_OUT4(SUFFIX, 0); MLAYERS_OUT4(SUFFIX, 1); MLAYERS_OUT4(SUFFIX, 2);            \
    MLAYERS_OUT4(SUFFIX, 3); MLAYERS_OUT4(SUFFIX, 4); MLAYERS_OUT4(SUFFIX, 5);            \
    for (c = nch; c < ncp; c++) store_run_##SUFFIX(cp, c);                                \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static void direct_block8_##SUFFIX(T *out, const T *plane, ptrdiff_t cstride,             \
                                   ptrdiff_t nch, const ptrdiff_t *off, ptrdiff_t ntaps,  \
                                   const T *w, const T *b, int acc,                       \
                                   const mlayers_runs *cp)                                \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX, ncp = cp ? cp->nf : 0;                            \
    ptrdiff_t c, t;                                                                       \
    MLAYERS_ACC3(SUFFIX, 0); MLAYERS_ACC3(SUFFIX, 1); MLAYERS_ACC3(SUFFIX, 2);            \
    MLAYERS_ACC3(SUFFIX, 3); MLAYERS_ACC3(SUFFIX, 4); MLAYERS_ACC3(SUFFIX, 5);            \
    MLAYERS_ACC3(SUFFIX, 6); MLAYERS_ACC3(SUFFIX, 7);                                     \
    for (c = 0; c < nch; c++) {                                                           \
        const T *pc = plane + c * cstride;                                                \
        const T *wc = w + c * ntaps * 8;                                                  \
        if (c < ncp) store_run_##SUFFIX(cp, c);                                           \
        for (t = 0; t < ntaps; t++) {                                                     \
            const T *s = pc + off[t];                                                     \
            const T *wt = wc + t * 8;                                                     \
            const vec_##SUFFIX x0 = MLAYERS_AT(SUFFIX, s), x1 = MLAYERS_AT(SUFFIX, s + L); \
            const vec_##SUFFIX x2 = MLAYERS_AT(SUFFIX, s + 2 * L);                        \
            MLAYERS_FMA3(0); MLAYERS_FMA3(1); MLAYERS_FMA3(2); MLAYERS_FMA3(3);           \
            MLAYERS_FMA3(4); MLAYERS_FMA3(5); MLAYERS_FMA3(6); MLAYERS_FMA3(7);           \
        }                                                                                 \
    }                                                                                     \
    MLAYERS_OUT3(SUFFIX, 0); MLAYERS_OUT3(SUFFIX, 1); MLAYERS_OUT3(SUFFIX, 2);            \
    MLAYERS_OUT3(SUFFIX, 3); MLAYERS_OUT3(SUFFIX, 4); MLAYERS_OUT3(SUFFIX, 5);            \
    MLAYERS_OUT3(SUFFIX, 6); MLAYERS_OUT3(SUFFIX, 7);                                     \
    for (c = nch; c < ncp; c++) store_run_##SUFFIX(cp, c);                                \
}                                                                                         \
                                                                                          \
static inline void direct_block_##SUFFIX(ptrdiff_t fb, T *out, const T *plane,            \
                                         ptrdiff_t cstride, ptrdiff_t nch,                \
                                         const ptrdiff_t *off, ptrdiff_t ntaps,           \
                                         const T *w, const T *b, int acc,                 \
                                         const mlayers_runs *cp)                          \
{                                                                                         \
    if (fb == 6)                                                                          \
        direct_block6_##SUFFIX(out, plane, cstride, nch, off, ntaps, w, b, acc, cp);      \
    else                                                                                  \
        direct_block8_##SUFFIX(out, plane, cstride, nch, off, ntaps, w, b, acc, cp);      \
}

/* Weight gradient of the direct convolution, register-blocked over F filters x R rows
 * (6 x 4 or 8 x 3: 24 sums), with row(c, t) = base + c*cstride + off[t]:
 *   acc[f*lda + c*ntaps + t] += sum_{q < n} dy[f*ldy + q] * row(c, t)[q]
 * for f < F, c < nch, t < ntaps, and n a multiple of the vector width (the caller pads dy
 * with zeros).  No alignment is assumed; acc must not overlap the inputs.  Each of the 24
 * sums keeps one vector of partial sums over q, so each dy vector loaded feeds R and each
 * row vector F fused multiply-adds.  Both shapes give the same bits (each sum's vector and
 * the fold of its lanes are the same); the caller picks one by cost (_conv.pyx
 * dw_filter_block: 16 and 32 filters, for example, fill 8 x 3 blocks, where 6 x 4 leaves
 * 2 of 18 and 4 of 36 slots empty).  The order depends only on the arguments. */

/* v stays in a register from here (an empty asm that may change it): GCC otherwise folds
 * a load used three times into each multiply-add, and 8 x 3 ran load-bound, 1.6x slower */
#if defined(__AVX512F__) || defined(MLAYERS_MULTI)
#define MLAYERS_IN_REGISTER(v) __asm__ volatile("" : "+v"(v))
#elif defined(__SSE2__)
#define MLAYERS_IN_REGISTER(v) __asm__ volatile("" : "+x"(v))
#else
#define MLAYERS_IN_REGISTER(v) ((void)0)
#endif

/* x and y are made of B = L/(2w) blocks of width 2w; returns 2B blocks of width w, block
 * b being lo + hi half of x's block b (b < B) or of y's block b - B.  The index loops fold
 * to constants, so this is two permutes and an add. */
#define MLAYERS_DW_FOLD(L, x, y, w)                                                       \
    __extension__({                                                                       \
        __typeof__((x) < (x)) m1_, m2_;                                                   \
        for (int i_ = 0; i_ < (L); i_++) {                                                \
            const int b_ = i_ / (w), B_ = (L) / (2 * (w));                                \
            m1_[i_] = (b_ < B_ ? 0 : (L)) + (b_ % B_) * 2 * (w) + i_ % (w);               \
            m2_[i_] = m1_[i_] + (w);                                                      \
        }                                                                                 \
        __builtin_shuffle((x), (y), m1_) + __builtin_shuffle((x), (y), m2_);              \
    })

/* dw_block's R sums of filter f (from zero), their multiply-adds with the filter's output
 * gradient vector (loaded once and kept in a register), and the list of them */
#define MLAYERS_DW_ACC3(SUFFIX, f) vec_##SUFFIX a##f##0 = (vec_##SUFFIX){0},                \
    a##f##1 = a##f##0, a##f##2 = a##f##0
#define MLAYERS_DW_ACC4(SUFFIX, f) MLAYERS_DW_ACC3(SUFFIX, f), a##f##3 = a##f##0
#define MLAYERS_DW_FMA3(SUFFIX, f) vec_##SUFFIX d##f = MLAYERS_AT(SUFFIX, dy + (f) * ldy + q); \
    MLAYERS_IN_REGISTER(d##f); a##f##0 += d##f * y0; a##f##1 += d##f * y1; a##f##2 += d##f * y2
#define MLAYERS_DW_FMA4(SUFFIX, f) MLAYERS_DW_FMA3(SUFFIX, f); a##f##3 += d##f * y3
#define MLAYERS_DW_ALL3(f) a##f##0, a##f##1, a##f##2
#define MLAYERS_DW_ALL4(f) a##f##0, a##f##1, a##f##2, a##f##3
/* the statements (or list items) M(..., f) for the F filters of a block */
#define MLAYERS_DW_FOR6(M, SUFFIX) M(SUFFIX, 0); M(SUFFIX, 1); M(SUFFIX, 2); M(SUFFIX, 3);   \
    M(SUFFIX, 4); M(SUFFIX, 5)
#define MLAYERS_DW_FOR8(M, SUFFIX) MLAYERS_DW_FOR6(M, SUFFIX); M(SUFFIX, 6); M(SUFFIX, 7)
#define MLAYERS_DW_LIST6(M) M(0), M(1), M(2), M(3), M(4), M(5)
#define MLAYERS_DW_LIST8(M) MLAYERS_DW_LIST6(M), M(6), M(7)
/* the R rows' vectors at q */
#define MLAYERS_DW_Y3(SUFFIX) const vec_##SUFFIX y0 = MLAYERS_AT(SUFFIX, x[0] + q),          \
    y1 = MLAYERS_AT(SUFFIX, x[1] + q), y2 = MLAYERS_AT(SUFFIX, x[2] + q)
#define MLAYERS_DW_Y4(SUFFIX) MLAYERS_DW_Y3(SUFFIX), y3 = MLAYERS_AT(SUFFIX, x[3] + q)
/* dw_block##F: the weight gradient's register block of F filters x R rows (above) */
#define MLAYERS_DEFINE_DW_BLOCK(T, SUFFIX, F, R)                                          \
MLAYERS_TARGET                                                                            \
static void dw_block##F##_##SUFFIX(T *acc, ptrdiff_t lda, const T *dy, ptrdiff_t ldy,     \
                                   const T *base, ptrdiff_t cstride, ptrdiff_t nch,       \
                                   const ptrdiff_t *off, ptrdiff_t ntaps, ptrdiff_t n)    \
{                                                                                         \
    /* 2 KiB ahead: the hardware prefetcher alone lost ~10% when rows come from L3 */     \
    const ptrdiff_t L = LANES_##SUFFIX, nrows = nch * ntaps, PD = 2048 / sizeof(T);       \
    ptrdiff_t r0, c = 0, t = 0, q;                                                        \
    for (r0 = 0; r0 < nrows; r0 += R) {                                                   \
        const T *x[R];                                                                    \
        dw_rows_##SUFFIX(x, R, r0, nrows, base, cstride, off, ntaps, &c, &t);             \
        MLAYERS_DW_FOR##F(MLAYERS_DW_ACC##R, SUFFIX);                                     \
        for (q = 0; q < n; q += L) {                                                      \
            MLAYERS_DW_Y##R(SUFFIX);                                                      \
            __builtin_prefetch(x[0] + q + PD);                                            \
            __builtin_prefetch(x[R - 1] + q + PD);                                        \
            MLAYERS_DW_FOR##F(MLAYERS_DW_FMA##R, SUFFIX);                                 \
        }                                                                                 \
        vec_##SUFFIX a[24] = {MLAYERS_DW_LIST##F(MLAYERS_DW_ALL##R)};                     \
        dw_reduce_##SUFFIX(acc + r0, lda, a, R, nrows - r0 < R ? nrows - r0 : R);         \
    }                                                                                     \
}

#define MLAYERS_DEFINE_DW(T, SUFFIX)                                                      \
/* acc[f*lda + r] += sum of the lanes of a[R*f + r], for f < 24/R and r < nr; the 24      \
   vectors are folded together in order (sharing the permutes): out[k] sums a[k] */       \
static inline __attribute__((always_inline)) void                                         \
dw_reduce_##SUFFIX(T *acc, ptrdiff_t lda, const vec_##SUFFIX *a, const int R, ptrdiff_t nr)\
{                                                                                         \
    const int L = LANES_##SUFFIX;                                                         \
    vec_##SUFFIX p[6], g[3], h[2];                                                        \
    T out[32];                                                                            \
    int k, f, r;                                                                          \
    if (L < 8) {               /* narrow vectors: lane by lane */                         \
        for (k = 0; k < 24; k++) {                                                        \
            T sum = 0;                                                                    \
            for (int l = 0; l < L; l++) sum += a[k][l];                                   \
            out[k] = sum;                                                                 \
        }                                                                                 \
    } else {                                                                              \
        /* (the widths below are never 0; the max only keeps the narrow builds compiling) */ \
        for (k = 0; k < 6; k++)                                                           \
            p[k] = MLAYERS_DW_FOLD(L, MLAYERS_DW_FOLD(L, a[4 * k], a[4 * k + 1], L / 2),  \
                                   MLAYERS_DW_FOLD(L, a[4 * k + 2], a[4 * k + 3], L / 2), \
                                   L / 4 ? L / 4 : 1);                                    \
        for (k = 0; k < 3; k++)                                                           \
            g[k] = MLAYERS_DW_FOLD(L, p[2 * k], p[2 * k + 1], L / 8 ? L / 8 : 1);         \
        if (L == 16) {                                                                    \
            h[0] = MLAYERS_DW_FOLD(L, g[0], g[1], 1);                                     \
            h[1] = MLAYERS_DW_FOLD(L, g[2], g[2], 1);                                     \
            __builtin_memcpy(out, h, 24 * sizeof(T));                                     \
        } else                                                                            \
            __builtin_memcpy(out, g, 24 * sizeof(T));                                     \
    }                                                                                     \
    for (f = 0; f < 24 / R; f++)                                                          \
        for (r = 0; r < nr; r++) acc[f * lda + r] += out[R * f + r];                      \
}                                                                                         \
                                                                                          \
/* the next R rows from the (channel, tap) pair (*c, *t) on; rows past the last one (nrows\
   in all) repeat it, and their sums are dropped */                                       \
static inline __attribute__((always_inline)) void                                         \
dw_rows_##SUFFIX(const T **x, int R, ptrdiff_t r0, ptrdiff_t nrows, const T *base,        \
                 ptrdiff_t cstride, const ptrdiff_t *off, ptrdiff_t ntaps, ptrdiff_t *c,  \
                 ptrdiff_t *t)                                                            \
{                                                                                         \
    for (int r = 0; r < R; r++) {                                                         \
        x[r] = base + *c * cstride + off[*t];                                             \
        if (r0 + r + 1 < nrows && ++*t == ntaps) { *t = 0; ++*c; }                        \
    }                                                                                     \
}                                                                                         \
                                                                                          \
MLAYERS_DEFINE_DW_BLOCK(T, SUFFIX, 6, 4)                                                  \
MLAYERS_DEFINE_DW_BLOCK(T, SUFFIX, 8, 3)                                                  \
                                                                                          \
MLAYERS_TARGET                                                                            \
static inline void dw_block_##SUFFIX(ptrdiff_t fb, T *acc, ptrdiff_t lda, const T *dy,    \
                                     ptrdiff_t ldy, const T *base, ptrdiff_t cstride,     \
                                     ptrdiff_t nch, const ptrdiff_t *off, ptrdiff_t ntaps,\
                                     ptrdiff_t n)                                         \
{                                                                                         \
    if (fb == 6)                                                                          \
        dw_block6_##SUFFIX(acc, lda, dy, ldy, base, cstride, nch, off, ntaps, n);         \
    else                                                                                  \
        dw_block8_##SUFFIX(acc, lda, dy, ldy, base, cstride, nch, off, ntaps, n);         \
}

/* Winograd's minimal filtering F(m, K) on 8 points (m + K - 1 = 8), vectorized over n
 * tiles (n a multiple of L).  wino_in: the input transform of one channel,
 *   v[k*vstride + u] = sum_{i < 8} bt[8k + i] * rows[i][u],   k < 8,
 * where rows[i][u] is input i of tile u (the caller lays the tiles' inputs out so that
 * these are contiguous).  wino_out: the output transform of one filter,
 *   z[j*zstride + u] = b + sum_{k < 8} at[8j + k] * mm[k*mstride + u],   j < m,
 * returning 0 if every z is finite and NaN otherwise (the caller then recomputes with the
 * direct kernel: the transforms mix inputs, so Inf - Inf can make NaN where the direct
 * sums give Inf, and they could overflow where the direct sums do not).  The loops over
 * the 8 points are unrolled so that the 8 vectors stay in registers. */
#define MLAYERS_DEFINE_WINO(T, SUFFIX)                                                    \
MLAYERS_TARGET                                                                            \
static void wino_in_##SUFFIX(T *restrict v, ptrdiff_t vstride, const T *const *rows,      \
                             const T *bt, ptrdiff_t n)                                    \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    for (ptrdiff_t u = 0; u < n; u += L) {                                                \
        vec_##SUFFIX x[8];                                                                \
        _Pragma("GCC unroll 8")                                                           \
        for (int i = 0; i < 8; i++) x[i] = MLAYERS_AT(SUFFIX, rows[i] + u);               \
        _Pragma("GCC unroll 8")                                                           \
        for (int k = 0; k < 8; k++) {                                                     \
            vec_##SUFFIX a = bt[8 * k] * x[0];                                            \
            _Pragma("GCC unroll 8")                                                       \
            for (int i = 1; i < 8; i++) a += bt[8 * k + i] * x[i];                        \
            MLAYERS_AT(SUFFIX, v + k * vstride + u) = a;                                  \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
                                                                                          \
/* Winograd's F(2, 3) input transform of a padded row d (2n + 2 values): u[k*ustride + j], \
 * k < 4, j < n, is (d0 - d2, d1 + d2, d2 - d1, d1 - d3) of d[2j .. 2j+3].  Vectors of the  \
 * even and the odd elements by unzips, at 2j and (shifted by a tile) 2j + 2. */          \
MLAYERS_TARGET                                                                            \
static void wino_rows_##SUFFIX(T *restrict u, ptrdiff_t ustride, ptrdiff_t n,             \
                               const T *restrict d)                                       \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    const vec_##SUFFIX##_index even = unzip_index_##SUFFIX(0);                            \
    const vec_##SUFFIX##_index odd = unzip_index_##SUFFIX(1);                             \
    ptrdiff_t j;                                                                          \
    for (j = 0; j < n && n >= L; j += L) {                                                \
        if (j + L > n) j = n - L;    /* the last vector overlaps the one before */        \
        const vec_##SUFFIX a0 = MLAYERS_AT(SUFFIX, d + 2 * j);                            \
        const vec_##SUFFIX a1 = MLAYERS_AT(SUFFIX, d + 2 * j + L);                        \
        const vec_##SUFFIX b0 = MLAYERS_AT(SUFFIX, d + 2 * j + 2);                        \
        const vec_##SUFFIX b1 = MLAYERS_AT(SUFFIX, d + 2 * j + 2 + L);                    \
        const vec_##SUFFIX e0 = __builtin_shuffle(a0, a1, even);                          \
        const vec_##SUFFIX o0 = __builtin_shuffle(a0, a1, odd);                           \
        const vec_##SUFFIX e1 = __builtin_shuffle(b0, b1, even);                          \
        const vec_##SUFFIX o1 = __builtin_shuffle(b0, b1, odd);                           \
        MLAYERS_AT(SUFFIX, u + j) = e0 - e1;                                              \
        MLAYERS_AT(SUFFIX, u + ustride + j) = o0 + e1;                                    \
        MLAYERS_AT(SUFFIX, u + 2 * ustride + j) = e1 - o0;                                \
        MLAYERS_AT(SUFFIX, u + 3 * ustride + j) = o0 - o1;                                \
    }                                                                                     \
    for (j = 0; j < n && n < L; j++) {                                                    \
        u[j] = d[2 * j] - d[2 * j + 2];                                                   \
        u[ustride + j] = d[2 * j + 1] + d[2 * j + 2];                                     \
        u[2 * ustride + j] = d[2 * j + 2] - d[2 * j + 1];                                 \
        u[3 * ustride + j] = d[2 * j + 1] - d[2 * j + 3];                                 \
    }                                                                                     \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static T wino_out_##SUFFIX(T *restrict z, ptrdiff_t zstride, const T *mm,                 \
                           ptrdiff_t mstride, const T *at, ptrdiff_t m, T b, ptrdiff_t n) \
{                                                                                         \
    const ptrdiff_t L = LANES_##SUFFIX;                                                   \
    vec_##SUFFIX bad = {0};                                                               \
    T sum = 0;                                                                            \
    for (ptrdiff_t u = 0; u < n; u += L) {                                                \
        vec_##SUFFIX x[8];                                                                \
        _Pragma("GCC unroll 8")                                                           \
        for (int k = 0; k < 8; k++) x[k] = MLAYERS_AT(SUFFIX, mm + k * mstride + u);      \
        for (ptrdiff_t j = 0; j < m; j++) {                                               \
            vec_##SUFFIX a = b + at[8 * j] * x[0];                                        \
            _Pragma("GCC unroll 8")                                                       \
            for (int k = 1; k < 8; k++) a += at[8 * j + k] * x[k];                        \
            MLAYERS_AT(SUFFIX, z + j * zstride + u) = a;                                  \
            bad += a * 0;                                                                 \
        }                                                                                 \
    }                                                                                     \
    for (ptrdiff_t u = 0; u < L; u++) sum += bad[u];                                      \
    return sum;                                                                           \
}


/* Direct convolution vectorized over output channels, for small planes, where rows of
 * outputs are too short for the position-vectorized blocks above (7 x 7 outputs fill half
 * of a 48-wide block).  R output positions x V vectors of output channels stay in
 * registers; each multiply-add takes one input value, broadcast, times a vector of weights
 * of V*L consecutive output channels.  q[r] points at position r's input (channel 0, tap
 * 0); channel c is at cbase + c*cstride from it and tap t at off[t] further:
 *   tot[(r*V + v)*L + u] += sum_{c < nch, t < ntaps} q[r][cbase + c*cstride + off[t]]
 *                                                    * w[((c*ntaps + t)*V + v)*L + u]
 * The sums start from zero in the registers and are added to tot at the end (the caller
 * calls this per chunk of channels, for accuracy, as the blocks above are used); for the
 * first chunk, `b0` (the block's V*L biases) is the value they are added to: tot = b0 +
 * sums, the bits of a tot filled with the biases first.  NULL: tot += sums. */
#define MLAYERS_CV_ACC (MLAYERS_VBYTES == 64 ? 24 : 12)
/* vectors of tiles per register block of w22_gemm (4 rows: 24 sums in AVX-512's 32
 * registers, 8 in the 16 of the others) */
#define W22_NR (MLAYERS_VBYTES == 64 ? 6 : 2)
#define MLAYERS_DEFINE_CV1(T, SUFFIX, V)                                                  \
MLAYERS_TARGET                                                                            \
static void cv_block##V##_##SUFFIX(T *tot, const T *const *q, ptrdiff_t cbase,            \
                                   ptrdiff_t cstride, ptrdiff_t nch, const ptrdiff_t *off, \
                                   ptrdiff_t ntaps, const T *w, const T *b0)              \
{                                                                                         \
    enum { L = LANES_##SUFFIX, R = MLAYERS_CV_ACC / V };                                  \
    vec_##SUFFIX acc[R][V];                                                               \
    _Pragma("GCC unroll 24") for (int r = 0; r < R; r++)                                  \
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[r][v] = (vec_##SUFFIX){0}; \
    for (ptrdiff_t c = 0; c < nch; c++) {                                                 \
        const ptrdiff_t oc = cbase + c * cstride;                                         \
        const T *wc = w + c * ntaps * V * L;                                              \
        for (ptrdiff_t t = 0; t < ntaps; t++) {                                           \
            const ptrdiff_t o = oc + off[t];                                              \
            vec_##SUFFIX wv[V];                                                           \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                           \
                wv[v] = MLAYERS_AT(SUFFIX, wc + (t * V + v) * L);                         \
            _Pragma("GCC unroll 24") for (int r = 0; r < R; r++) {                        \
                const T xs = q[r][o];                                                     \
                _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[r][v] += xs * wv[v]; \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
    if (b0) {                                                                             \
        vec_##SUFFIX bv[V];                                                               \
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                               \
            bv[v] = MLAYERS_AT(SUFFIX, b0 + v * L);                                       \
        _Pragma("GCC unroll 24") for (int r = 0; r < R; r++)                              \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                           \
                MLAYERS_AT(SUFFIX, tot + (r * V + v) * L) = bv[v] + acc[r][v];            \
        return;                                                                           \
    }                                                                                     \
    _Pragma("GCC unroll 24") for (int r = 0; r < R; r++)                                  \
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                               \
            MLAYERS_AT(SUFFIX, tot + (r * V + v) * L) += acc[r][v];                       \
}
/* The weight gradient's block: R (channel, tap) pairs x V vectors of filters, summed over
 * np positions j, each at qpos[j] in the volumes (pair r at roff[r] from there), with the
 * output gradients of the block's filters at dyt[j*V*L ..] (positions x filters):
 *   tot[(r*V + v)*L + u] += sum_j base[qpos[j] + roff[r]] * dyt[(j*V + v)*L + u]
 * from zero in the registers, as cv_block. */
#define MLAYERS_DEFINE_CVW1(T, SUFFIX, V)                                                 \
MLAYERS_TARGET                                                                            \
static void cvw_block##V##_##SUFFIX(T *tot, const T *base, const ptrdiff_t *qpos,         \
                                    const ptrdiff_t *roff, ptrdiff_t np, const T *dyt)    \
{                                                                                         \
    enum { L = LANES_##SUFFIX, R = MLAYERS_CV_ACC / V };                                  \
    vec_##SUFFIX acc[R][V];                                                               \
    ptrdiff_t ro[R];                                                                      \
    _Pragma("GCC unroll 24") for (int r = 0; r < R; r++) {                                \
        ro[r] = roff[r];                                                                  \
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[r][v] = (vec_##SUFFIX){0}; \
    }                                                                                     \
    for (ptrdiff_t j = 0; j < np; j++) {                                                  \
        const T *qp = base + qpos[j];                                                     \
        vec_##SUFFIX dv[V];                                                               \
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                               \
            dv[v] = MLAYERS_AT(SUFFIX, dyt + (j * V + v) * L);                            \
        _Pragma("GCC unroll 24") for (int r = 0; r < R; r++) {                            \
            const T xs = qp[ro[r]];                                                       \
            _Pragma("GCC unroll 4") for (int v = 0; v < V; v++) acc[r][v] += xs * dv[v];  \
        }                                                                                 \
    }                                                                                     \
    _Pragma("GCC unroll 24") for (int r = 0; r < R; r++)                                  \
        _Pragma("GCC unroll 4") for (int v = 0; v < V; v++)                               \
            MLAYERS_AT(SUFFIX, tot + (r * V + v) * L) += acc[r][v];                       \
}
/* cv_block's sums to the output: tot holds n positions x W filters (W a multiple of L),
 * position r of filter f goes to y[f*ot + yoff[r]] (relu's values with `rectify`: x <= 0
 * gives +0, NaN kept).  Each run of up to L consecutive positions that are consecutive in
 * the output (one image's plane) is transposed by zips: K = the run's length rounded up
 * to a power of two vectors of L filters (rows past the run zero) become K vectors of
 * L/K filters of K positions each, in log2(K) rounds of K shuffles (a run of 7 takes 24
 * shuffles, not a whole L x L tile's 64); each filter's m values go out in one masked
 * store (AVX-512) or as whole vectors' pieces (MLAYERS_STORE_FIRST).  Runs of fewer than two
 * positions (or than L, when L < 4) go one value at a time. */
#define CV_STORE_RUN(T, SUFFIX, K)                                                         \
    for (ptrdiff_t f0 = 0; f0 < W; f0 += L) {                                             \
        vec_##SUFFIX a[K], b[K];                                                          \
        _Pragma("GCC unroll 16") for (int u = 0; u < K; u++) {                            \
            a[u] = u < m ? MLAYERS_AT(SUFFIX, tot + (r0 + u) * W + f0) : (vec_##SUFFIX){0}; \
            if (rectify)                                                                  \
                a[u] = (vec_##SUFFIX)((vec_##SUFFIX##_index)a[u] & ~(a[u] <= 0));         \
        }                                                                                 \
        _Pragma("GCC unroll 4") for (int s = 1; s < K; s *= 2) {                          \
            _Pragma("GCC unroll 8") for (int k = 0; k < K / 2; k++) {                     \
                b[2 * k] = __builtin_shuffle(a[k], a[k + K / 2], lo);                     \
                b[2 * k + 1] = __builtin_shuffle(a[k], a[k + K / 2], hi);                 \
            }                                                                             \
            _Pragma("GCC unroll 16") for (int u = 0; u < K; u++) a[u] = b[u];             \
        }                                                                                 \
        /* a[j]: filters f0 + j*L/K + i at lanes i*K .. i*K + K - 1 */                    \
        _Pragma("GCC unroll 16") for (int j = 0; j < K; j++)                              \
            _Pragma("GCC unroll 8") for (int i = 0; i < L / K; i++) {                     \
                T *d = y + (f0 + j * (L / K) + i) * ot + yoff[r0];                        \
                if (m == L) MLAYERS_AT(SUFFIX, d) = a[j];                                 \
                else MLAYERS_STORE_FIRST(T, SUFFIX, d, i ? __builtin_shuffle(a[j],        \
                                         shift_index_##SUFFIX(i * K)) : a[j], m);         \
            }                                                                             \
    }
#define MLAYERS_DEFINE_CV_STORE(T, SUFFIX)                                                \
/* shuffle indices moving lanes s .. L - 1 of a vector to lanes 0 .. L - 1 - s */         \
MLAYERS_TARGET                                                                            \
static inline vec_##SUFFIX##_index shift_index_##SUFFIX(ptrdiff_t s)                      \
{                                                                                         \
    vec_##SUFFIX##_index v;                                                               \
    for (ptrdiff_t u = 0; u < LANES_##SUFFIX; u++) v[u] = (u + s) % LANES_##SUFFIX;       \
    return v;                                                                             \
}                                                                                         \
MLAYERS_TARGET                                                                            \
static void cv_store_##SUFFIX(const T *tot, ptrdiff_t W, ptrdiff_t n,                     \
                              const ptrdiff_t *yoff, T *y, ptrdiff_t ot, int rectify)     \
{                                                                                         \
    enum { L = LANES_##SUFFIX };                                                          \
    const vec_##SUFFIX##_index lo = zip_index_##SUFFIX(0), hi = zip_index_##SUFFIX(1);    \
    ptrdiff_t r0 = 0;                                                                     \
    while (r0 < n) {                                                                      \
        ptrdiff_t m = 1;                                                                  \
        while (m < L && r0 + m < n && yoff[r0 + m] - yoff[r0] == m) m++;                  \
        if (m < 2 || L < 4) {                                                             \
            for (ptrdiff_t f = 0; f < W; f++)                                             \
                for (ptrdiff_t r = r0; r < r0 + m; r++) {                                 \
                    const T v = tot[r * W + f];                                           \
                    y[f * ot + yoff[r]] = rectify && v <= 0 ? 0 : v;                      \
                }                                                                         \
        } else if (m <= 2) {                                                              \
            CV_STORE_RUN(T, SUFFIX, 2)                                                       \
        } else if (m <= 4) {                                                              \
            CV_STORE_RUN(T, SUFFIX, 4)                                                       \
        } else if (m <= 8 && L >= 8) {                                                    \
            CV_STORE_RUN(T, SUFFIX, (L >= 8 ? 8 : 4))                                        \
        } else if (L >= 16) {                                                             \
            CV_STORE_RUN(T, SUFFIX, (L >= 16 ? 16 : 4))                                      \
        }                                                                                 \
        r0 += m;                                                                          \
    }                                                                                     \
}
#define MLAYERS_DEFINE_CV(T, SUFFIX)                                                      \
MLAYERS_DEFINE_CV1(T, SUFFIX, 1) MLAYERS_DEFINE_CV1(T, SUFFIX, 2)                         \
MLAYERS_DEFINE_CV1(T, SUFFIX, 4) MLAYERS_DEFINE_CVW1(T, SUFFIX, 1)                        \
MLAYERS_DEFINE_CVW1(T, SUFFIX, 2) MLAYERS_DEFINE_CVW1(T, SUFFIX, 4)                       \
MLAYERS_DEFINE_CV_STORE(T, SUFFIX)                                                        \
/* positions per block for V vectors of channels (0: V unsupported) */                    \
static inline ptrdiff_t cv_rows_##SUFFIX(ptrdiff_t V)                                     \
{                                                                                         \
    return V == 1 || V == 2 || V == 4 ? MLAYERS_CV_ACC / V : 0;                           \
}                                                                                         \
static inline ptrdiff_t cv_lanes_##SUFFIX(void) { return LANES_##SUFFIX; }                \
static inline void cv_block_##SUFFIX(ptrdiff_t V, T *tot, const T *const *q,              \
                                     ptrdiff_t cbase, ptrdiff_t cstride, ptrdiff_t nch,   \
                                     const ptrdiff_t *off, ptrdiff_t ntaps, const T *w,   \
                                     const T *b0)                                         \
{                                                                                         \
    if (V == 1) cv_block1_##SUFFIX(tot, q, cbase, cstride, nch, off, ntaps, w, b0);       \
    else if (V == 2) cv_block2_##SUFFIX(tot, q, cbase, cstride, nch, off, ntaps, w, b0);  \
    else cv_block4_##SUFFIX(tot, q, cbase, cstride, nch, off, ntaps, w, b0);              \
}                                                                                         \
static inline void cvw_block_##SUFFIX(ptrdiff_t V, T *tot, const T *base,                 \
                                      const ptrdiff_t *qpos, const ptrdiff_t *roff,       \
                                      ptrdiff_t np, const T *dyt)                         \
{                                                                                         \
    if (V == 1) cvw_block1_##SUFFIX(tot, base, qpos, roff, np, dyt);                      \
    else if (V == 2) cvw_block2_##SUFFIX(tot, base, qpos, roff, np, dyt);                 \
    else cvw_block4_##SUFFIX(tot, base, qpos, roff, np, dyt);                             \
}

/* Winograd F(2 x 2, 3 x 3) over planes, its input and output transforms (conv_winograd2d).
 * d is a zero-padded input plane, rows of ld values, at least 2*tp + 2 rows of 2*tq + 2;
 * tile t = i*tq + j is the 4 x 4 block at (2i, 2j).  w22_in writes its 16 transformed
 * values (B^T D B)[a][b], B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], to
 * v[(4a + b)*vstride + t].  w22_out reads the 16 products' sums m[(4a + b)*mstride + t]
 * and writes the tile's 2 x 2 outputs b + (A^T M A), A^T = [1 1 1 0; 0 1 -1 -1], to rows
 * 2i, 2i + 1 and columns 2j, 2j + 1 of z (rows of ldz; relu's values with rectify), by way
 * of tmp (4*tp*tq values: the plane's outputs computed in vectors over all its tiles,
 * then interleaved into rows); it returns whether every output is finite. */

/* w22_in's body for N tiles j .. j + N - 1 of a row as vectors VT of N lanes: the columns
 * 2j + s of the four rows r[q], unzipped from loads at 2j, 2j + N (even, odd) and 2j + 2,
 * 2j + 2 + N (their shifts by one tile) */
#define W22_IN_TILES(VT, N, EVEN, ODD)                                                    \
    do {                                                                                  \
        VT x[4][4], t[4][4];                                                              \
        _Pragma("GCC unroll 4")                                                           \
        for (int q = 0; q < 4; q++) {                                                     \
            const VT a = *(const VT *)(r[q] + 2 * j), b = *(const VT *)(r[q] + 2 * j + N); \
            const VT c = *(const VT *)(r[q] + 2 * j + 2);                                 \
            const VT e = *(const VT *)(r[q] + 2 * j + 2 + N);                             \
            x[q][0] = __builtin_shuffle(a, b, EVEN);                                      \
            x[q][1] = __builtin_shuffle(a, b, ODD);                                       \
            x[q][2] = __builtin_shuffle(c, e, EVEN);                                      \
            x[q][3] = __builtin_shuffle(c, e, ODD);                                       \
        }                                                                                 \
        _Pragma("GCC unroll 4")                                                           \
        for (int s = 0; s < 4; s++) {                                                     \
            t[0][s] = x[0][s] - x[2][s]; t[1][s] = x[1][s] + x[2][s];                     \
            t[2][s] = x[2][s] - x[1][s]; t[3][s] = x[1][s] - x[3][s];                     \
        }                                                                                 \
        _Pragma("GCC unroll 4")                                                           \
        for (int a = 0; a < 4; a++) {                                                     \
            *(VT *)(vi + (4 * a) * vstride + j) = t[a][0] - t[a][2];                      \
            *(VT *)(vi + (4 * a + 1) * vstride + j) = t[a][1] + t[a][2];                  \
            *(VT *)(vi + (4 * a + 2) * vstride + j) = t[a][2] - t[a][1];                  \
            *(VT *)(vi + (4 * a + 3) * vstride + j) = t[a][1] - t[a][3];                  \
        }                                                                                 \
    } while (0)

#define MLAYERS_DEFINE_WINO2(T, IT, SUFFIX)                                               \
typedef T w4_##SUFFIX __attribute__((vector_size(4 * sizeof(T)), aligned(sizeof(T)),     \
                                     may_alias));                                         \
typedef T w8_##SUFFIX __attribute__((vector_size(8 * sizeof(T)), aligned(sizeof(T)),     \
                                     may_alias));                                         \
/* the 16 transformed values of tiles j .. j + k of a row of tiles: t[a][s] the row       \
 * combinations of column 2j + s, then the column combinations (k = 8 or 4 as vectors of  \
 * tiles, W22_IN_TILES; rows of fewer than 4 tiles one by one) */                         \
MLAYERS_TARGET                                                                            \
static void w22_in_##SUFFIX(T *restrict v, ptrdiff_t vstride, const T *restrict d,        \
                            ptrdiff_t ld, ptrdiff_t tp, ptrdiff_t tq)                     \
{                                                                                         \
    typedef IT idx4 __attribute__((vector_size(4 * sizeof(IT))));                         \
    typedef IT idx8 __attribute__((vector_size(8 * sizeof(IT))));                         \
    const idx4 even4 = {0, 2, 4, 6}, odd4 = {1, 3, 5, 7};                                 \
    const idx8 even8 = {0, 2, 4, 6, 8, 10, 12, 14}, odd8 = {1, 3, 5, 7, 9, 11, 13, 15};   \
    for (ptrdiff_t i = 0; i < tp; i++) {                                                  \
        const T *r[4] = {d + 2 * i * ld, d + (2 * i + 1) * ld, d + (2 * i + 2) * ld,      \
                         d + (2 * i + 3) * ld};                                           \
        T *vi = v + i * tq;                                                               \
        ptrdiff_t j = 0;                                                                  \
        for (; j + 8 <= tq; j += 8) W22_IN_TILES(w8_##SUFFIX, 8, even8, odd8);            \
        for (; j + 4 <= tq; j += 4) W22_IN_TILES(w4_##SUFFIX, 4, even4, odd4);            \
        /* the last tiles: four again, overlapping (the same values twice) */             \
        if (j < tq && tq >= 4) { j = tq - 4; W22_IN_TILES(w4_##SUFFIX, 4, even4, odd4); j = tq; } \
        for (; j < tq; j++) {                                                             \
            T t[4][4];                                                                    \
            _Pragma("GCC unroll 4")                                                       \
            for (int c = 0; c < 4; c++) {                                                 \
                const T x0 = r[0][2 * j + c], x1 = r[1][2 * j + c];                       \
                const T x2 = r[2][2 * j + c], x3 = r[3][2 * j + c];                       \
                t[0][c] = x0 - x2; t[1][c] = x1 + x2; t[2][c] = x2 - x1; t[3][c] = x1 - x3; \
            }                                                                             \
            _Pragma("GCC unroll 4")                                                       \
            for (int a = 0; a < 4; a++) {                                                 \
                vi[(4 * a) * vstride + j] = t[a][0] - t[a][2];                            \
                vi[(4 * a + 1) * vstride + j] = t[a][1] + t[a][2];                        \
                vi[(4 * a + 2) * vstride + j] = t[a][2] - t[a][1];                        \
                vi[(4 * a + 3) * vstride + j] = t[a][1] - t[a][3];                        \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
                                                                                          \
/* (A dY A^T)[a][b] of each 2 x 2 block of a plane of output gradients (the weight        \
 * gradient's transform, A = [1 0; 1 1; 1 -1; 0 -1]): d has rows of ld >= 2*tq values, at  \
 * least 2*tp rows; v[(4a + b)*vstride + i*tq + j] for the block at (2i, 2j) */            \
MLAYERS_TARGET                                                                            \
static void w22_dy_##SUFFIX(T *restrict v, ptrdiff_t vstride, const T *restrict d,        \
                            ptrdiff_t ld, ptrdiff_t tp, ptrdiff_t tq)                     \
{                                                                                         \
    typedef IT idx __attribute__((vector_size(4 * sizeof(IT))));                          \
    const idx even = {0, 2, 4, 6}, odd = {1, 3, 5, 7};                                    \
    for (ptrdiff_t i = 0; i < tp; i++) {                                                  \
        const T *r0 = d + 2 * i * ld, *r1 = r0 + ld;                                      \
        T *vi = v + i * tq;                                                               \
        ptrdiff_t j = 0;                                                                  \
        for (; j + 4 <= tq; j += 4) {                                                     \
            const w4_##SUFFIX a0 = *(const w4_##SUFFIX *)(r0 + 2 * j);                   \
            const w4_##SUFFIX b0 = *(const w4_##SUFFIX *)(r0 + 2 * j + 4);               \
            const w4_##SUFFIX a1 = *(const w4_##SUFFIX *)(r1 + 2 * j);                   \
            const w4_##SUFFIX b1 = *(const w4_##SUFFIX *)(r1 + 2 * j + 4);               \
            const w4_##SUFFIX e[2][2] = {{__builtin_shuffle(a0, b0, even),                \
                                          __builtin_shuffle(a0, b0, odd)},                \
                                         {__builtin_shuffle(a1, b1, even),                \
                                          __builtin_shuffle(a1, b1, odd)}};               \
            w4_##SUFFIX t[4][2];                                                          \
            _Pragma("GCC unroll 2")                                                       \
            for (int c = 0; c < 2; c++) {                                                 \
                t[0][c] = e[0][c]; t[1][c] = e[0][c] + e[1][c];                           \
                t[2][c] = e[0][c] - e[1][c]; t[3][c] = -e[1][c];                          \
            }                                                                             \
            _Pragma("GCC unroll 4")                                                       \
            for (int a = 0; a < 4; a++) {                                                 \
                *(w4_##SUFFIX *)(vi + (4 * a) * vstride + j) = t[a][0];                   \
                *(w4_##SUFFIX *)(vi + (4 * a + 1) * vstride + j) = t[a][0] + t[a][1];     \
                *(w4_##SUFFIX *)(vi + (4 * a + 2) * vstride + j) = t[a][0] - t[a][1];     \
                *(w4_##SUFFIX *)(vi + (4 * a + 3) * vstride + j) = -t[a][1];              \
            }                                                                             \
        }                                                                                 \
        for (; j < tq; j++) {                                                             \
            T t[4][2];                                                                    \
            _Pragma("GCC unroll 2")                                                       \
            for (int c = 0; c < 2; c++) {                                                 \
                const T e0 = r0[2 * j + c], e1 = r1[2 * j + c];                           \
                t[0][c] = e0; t[1][c] = e0 + e1; t[2][c] = e0 - e1; t[3][c] = -e1;        \
            }                                                                             \
            _Pragma("GCC unroll 4")                                                       \
            for (int a = 0; a < 4; a++) {                                                 \
                vi[(4 * a) * vstride + j] = t[a][0];                                      \
                vi[(4 * a + 1) * vstride + j] = t[a][0] + t[a][1];                        \
                vi[(4 * a + 2) * vstride + j] = t[a][0] - t[a][1];                        \
                vi[(4 * a + 3) * vstride + j] = -t[a][1];                                 \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) int                                          \
w22_out_body_##SUFFIX(T *restrict z, ptrdiff_t ldz, const T *restrict m,                  \
                      ptrdiff_t mstride, T b, int rectify, ptrdiff_t tp, ptrdiff_t tq,    \
                      T *restrict tmp, const T *restrict res)                             \
{                                                                                         \
    const ptrdiff_t n = tp * tq;                                                          \
    int ok = 1;                                                                           \
    for (ptrdiff_t t = 0; t < n; t++) {                                                   \
        T s[4][2];                                                                        \
        _Pragma("GCC unroll 4")                                                           \
        for (int a = 0; a < 4; a++) {                                                     \
            const T m0 = m[(4 * a) * mstride + t], m1 = m[(4 * a + 1) * mstride + t];    \
            const T m2 = m[(4 * a + 2) * mstride + t];                                    \
            const T m3 = m[(4 * a + 3) * mstride + t];                                    \
            s[a][0] = m0 + m1 + m2;                                                       \
            s[a][1] = m1 - m2 - m3;                                                       \
        }                                                                                 \
        _Pragma("GCC unroll 2")                                                           \
        for (int c = 0; c < 2; c++) {                                                     \
            T y0 = (T)(b + (s[0][c] + s[1][c] + s[2][c]));                                \
            T y1 = (T)(b + (s[1][c] - s[2][c] - s[3][c]));                                \
            ok &= (y0 - y0 == 0) & (y1 - y1 == 0);                                        \
            if (rectify && !res) { y0 = y0 <= 0 ? 0 : y0; y1 = y1 <= 0 ? 0 : y1; }       \
            tmp[c * n + t] = y0;                                                          \
            tmp[(2 + c) * n + t] = y1;                                                    \
        }                                                                                 \
    }                                                                                     \
    typedef IT idx __attribute__((vector_size(4 * sizeof(IT))));                          \
    const idx lo = {0, 4, 1, 5}, hi = {2, 6, 3, 7};                                       \
    for (ptrdiff_t i = 0; i < tp; i++) {                                                  \
        T *z0 = z + 2 * i * ldz, *z1 = z0 + ldz;                                          \
        const T *q = tmp + i * tq;                                                        \
        ptrdiff_t j = 0;                                                                  \
        /* four tiles at a time, the last four overlapping the ones before (the same     \
         * values stored twice); with res, the residual added to each output (then its   \
         * ReLU with rectify): the sums of a separate addition */                         \
        for (ptrdiff_t e = 0; tq >= 4 && e < tq; e += 4) {                                \
            j = e + 4 <= tq ? e : tq - 4;                                                 \
            _Pragma("GCC unroll 2")                                                       \
            for (int u = 0; u < 2; u++) {                                                 \
                const w4_##SUFFIX a = *(const w4_##SUFFIX *)(q + 2 * u * n + j);         \
                const w4_##SUFFIX b = *(const w4_##SUFFIX *)(q + (2 * u + 1) * n + j);   \
                T *zu = u ? z1 : z0;                                                      \
                w4_##SUFFIX v0 = __builtin_shuffle(a, b, lo);                             \
                w4_##SUFFIX v1 = __builtin_shuffle(a, b, hi);                             \
                if (res) {                                                                \
                    const T *ru = res + (2 * i + u) * ldz + 2 * j;                        \
                    v0 += *(const w4_##SUFFIX *)ru;                                       \
                    v1 += *(const w4_##SUFFIX *)(ru + 4);                                 \
                    if (rectify) {                                                        \
                        v0 = (w4_##SUFFIX)((idx)v0 & ~(v0 <= 0));                         \
                        v1 = (w4_##SUFFIX)((idx)v1 & ~(v1 <= 0));                         \
                    }                                                                     \
                }                                                                         \
                *(w4_##SUFFIX *)(zu + 2 * j) = v0;                                        \
                *(w4_##SUFFIX *)(zu + 2 * j + 4) = v1;                                    \
            }                                                                             \
            j = tq;                                                                       \
        }                                                                                 \
        for (; j < tq; j++) {                                                             \
            T v[4] = {q[j], q[n + j], q[2 * n + j], q[3 * n + j]};                        \
            if (res) {                                                                    \
                const T *r0 = res + 2 * i * ldz + 2 * j, *r1 = r0 + ldz;                  \
                v[0] += r0[0]; v[1] += r0[1]; v[2] += r1[0]; v[3] += r1[1];              \
                if (rectify)                                                              \
                    for (int k = 0; k < 4; k++) v[k] = v[k] <= 0 ? 0 : v[k];              \
            }                                                                             \
            z0[2 * j] = v[0]; z0[2 * j + 1] = v[1];                                       \
            z1[2 * j] = v[2]; z1[2 * j + 1] = v[3];                                       \
        }                                                                                 \
    }                                                                                     \
    return ok;                                                                            \
}                                                                                          \
/* (two copies: res a constant NULL in one, so the outputs without a residual keep the     \
 * loop they had before there was one) */                                                 \
MLAYERS_TARGET                                                                            \
static int w22_out_##SUFFIX(T *restrict z, ptrdiff_t ldz, const T *restrict m,            \
                            ptrdiff_t mstride, T b, int rectify, ptrdiff_t tp,            \
                            ptrdiff_t tq, T *restrict tmp, const T *restrict res)         \
{                                                                                         \
    if (res)                                                                              \
        return w22_out_body_##SUFFIX(z, ldz, m, mstride, b, rectify, tp, tq, tmp, res);   \
    return w22_out_body_##SUFFIX(z, ldz, m, mstride, b, rectify, tp, tq, tmp, NULL);      \
}                                                                                          \
/* The products' sums of one block of channels: row-major c (m x n) = a (m x k) b (k x n),  \
 * or c += a b with `beta` (the rows ldc, lda, ldb apart).  Each sum starts from zero in a  \
 * register and takes its k terms in order (a chain of multiply-adds), then is stored or   \
 * added to c; c's columns are the job's tiles, as vectors, 4 rows x up to W22_NR vectors  \
 * at a time (tiles past the last whole vector one by one, the same multiply-adds).  It    \
 * replaces a BLAS call per block: these products (16 x 64 x 16 to 64 x 64 x 16) are       \
 * small enough that the call costs as much as the arithmetic. */                          \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
w22_mk_##SUFFIX(const int MR, const int NR, ptrdiff_t k, const T *restrict a,             \
                ptrdiff_t lda, const T *restrict b, ptrdiff_t ldb, T *restrict c,         \
                ptrdiff_t ldc, int beta)                                                  \
{                                                                                         \
    enum { L = LANES_##SUFFIX };                                                          \
    vec_##SUFFIX acc[4][6];                                                               \
    _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++)                                  \
        _Pragma("GCC unroll 6") for (int v = 0; v < NR; v++) acc[r][v] = (vec_##SUFFIX){0}; \
    for (ptrdiff_t q = 0; q < k; q++) {                                                   \
        vec_##SUFFIX bv[6];                                                               \
        _Pragma("GCC unroll 6") for (int v = 0; v < NR; v++)                              \
            bv[v] = MLAYERS_AT(SUFFIX, b + q * ldb + v * L);                              \
        _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++) {                            \
            const T av = a[r * lda + q];                                                  \
            _Pragma("GCC unroll 6") for (int v = 0; v < NR; v++) acc[r][v] += av * bv[v]; \
        }                                                                                 \
    }                                                                                     \
    _Pragma("GCC unroll 4") for (int r = 0; r < MR; r++)                                  \
        _Pragma("GCC unroll 6") for (int v = 0; v < NR; v++) {                            \
            T *d = c + r * ldc + v * L;                                                   \
            if (beta) MLAYERS_AT(SUFFIX, d) += acc[r][v];                                 \
            else MLAYERS_AT(SUFFIX, d) = acc[r][v];                                       \
        }                                                                                 \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
w22_rows_##SUFFIX(const int NR, ptrdiff_t m, ptrdiff_t k, const T *a, ptrdiff_t lda,      \
                  const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc, int beta)               \
{                                                                                         \
    ptrdiff_t i = 0;                                                                      \
    for (; i + 4 <= m; i += 4)                                                            \
        w22_mk_##SUFFIX(4, NR, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, beta);      \
    if (m - i == 3) w22_mk_##SUFFIX(3, NR, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, beta); \
    if (m - i == 2) w22_mk_##SUFFIX(2, NR, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, beta); \
    if (m - i == 1) w22_mk_##SUFFIX(1, NR, k, a + i * lda, lda, b, ldb, c + i * ldc, ldc, beta); \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static void w22_gemm_##SUFFIX(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *a,          \
                              ptrdiff_t lda, const T *b, ptrdiff_t ldb, T *c,             \
                              ptrdiff_t ldc, int beta)                                    \
{                                                                                         \
    enum { L = LANES_##SUFFIX };                                                          \
    ptrdiff_t j = 0;                                                                      \
    while (n - j >= L) {                                                                  \
        /* the whole vectors left in blocks as even as W22_NR allows (14: 5, 5, 4) */     \
        const ptrdiff_t left = (n - j) / L, blocks = (left + W22_NR - 1) / W22_NR;        \
        const ptrdiff_t nv = (left + blocks - 1) / blocks;                                \
        switch (nv) {                                                                     \
        case 1: w22_rows_##SUFFIX(1, m, k, a, lda, b + j, ldb, c + j, ldc, beta); break;  \
        case 2: w22_rows_##SUFFIX(2, m, k, a, lda, b + j, ldb, c + j, ldc, beta); break;  \
        case 3: w22_rows_##SUFFIX(3, m, k, a, lda, b + j, ldb, c + j, ldc, beta); break;  \
        case 4: w22_rows_##SUFFIX(4, m, k, a, lda, b + j, ldb, c + j, ldc, beta); break;  \
        case 5: w22_rows_##SUFFIX(5, m, k, a, lda, b + j, ldb, c + j, ldc, beta); break;  \
        default: w22_rows_##SUFFIX(6, m, k, a, lda, b + j, ldb, c + j, ldc, beta); break; \
        }                                                                                 \
        j += nv * L;                                                                      \
    }                                                                                     \
    for (ptrdiff_t i = 0; i < m; i++)                                                     \
        for (ptrdiff_t t = j; t < n; t++) {                                               \
            T acc = 0;                                                                    \
            for (ptrdiff_t q = 0; q < k; q++) acc += a[i * lda + q] * b[q * ldb + t];     \
            c[i * ldc + t] = beta ? c[i * ldc + t] + acc : acc;                           \
        }                                                                                 \
}

/* The product of a few rows by a long reduction (matmul's chunks of the reduction: a
 * fully connected layer's forward, OutputSize x batch over every feature):
 * C[m x n] = A[m x k] B[k x n], all column-major (leading dimensions lda, ldb, ldc), for m
 * up to two vectors.  Each column of A is one or two vectors (the lanes past m read the
 * next column's values and are never stored; a chunk's last columns, whose vectors would
 * read past it, come from a zero-padded copy), multiplied by SKINNY_NB columns' values of
 * B at a time (BLAS would pack both operands for each call, a third more memory traffic
 * for a product this thin).  Sums: blocks of SKINNY_KB terms in T from zero, added in
 * order to double sums (each rounded once at the end). */
#define SKINNY_KB 256
#define SKINNY_NB 8
#define MLAYERS_DEFINE_SKINNY(T, SUFFIX)                                                  \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
skinny_cols_##SUFFIX(const int MV, const int NB, ptrdiff_t m, ptrdiff_t k, const T *a,    \
                     ptrdiff_t lda, const T *const *bc, double *tot)                      \
{                                                                                         \
    enum { L = LANES_##SUFFIX };                                                          \
    /* columns q < safe read whole vectors inside the chunk; the rest a padded copy */    \
    const ptrdiff_t span = (ptrdiff_t)MV * L;                                             \
    ptrdiff_t safe = lda * (k - 1) + m >= span ? (lda * (k - 1) + m - span) / lda + 1 : 0; \
    safe = safe < k ? safe : k;                                                           \
    for (ptrdiff_t q0 = 0; q0 < k; q0 += SKINNY_KB) {                                     \
        const ptrdiff_t qe = k - q0 > SKINNY_KB ? q0 + SKINNY_KB : k;                     \
        vec_##SUFFIX acc[SKINNY_NB][2];                                                   \
        _Pragma("GCC unroll 8")                                                           \
        for (int j = 0; j < NB; j++) acc[j][0] = acc[j][1] = (vec_##SUFFIX){0};           \
        for (ptrdiff_t q = q0; q < qe; q++) {                                             \
            vec_##SUFFIX w0, w1 = {0};                                                    \
            if (q < safe) {                                                               \
                w0 = *(const vec_##SUFFIX *)(a + q * lda);                                \
                if (MV == 2) w1 = *(const vec_##SUFFIX *)(a + q * lda + L);               \
            } else {                                                                      \
                T pad[2 * L];                                                             \
                for (int i = 0; i < 2 * L; i++) pad[i] = i < m ? a[q * lda + i] : (T)0;   \
                w0 = *(const vec_##SUFFIX *)pad;                                          \
                if (MV == 2) w1 = *(const vec_##SUFFIX *)(pad + L);                       \
            }                                                                             \
            _Pragma("GCC unroll 8")                                                       \
            for (int j = 0; j < NB; j++) {                                                \
                const T x = bc[j][q];                                                     \
                acc[j][0] += w0 * x;                                                      \
                if (MV == 2) acc[j][1] += w1 * x;                                         \
            }                                                                             \
        }                                                                                 \
        for (int j = 0; j < NB; j++)                                                      \
            for (int v = 0; v < MV; v++)                                                  \
                for (int i = 0; i < L; i++)                                               \
                    tot[(j * 2 + v) * L + i] += (double)acc[j][v][i];                     \
    }                                                                                     \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static void skinny_##SUFFIX(ptrdiff_t m, ptrdiff_t n, ptrdiff_t k, const T *a,            \
                            ptrdiff_t lda, const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc) \
{                                                                                         \
    enum { L = LANES_##SUFFIX };                                                          \
    double tot[SKINNY_NB * 2 * L];                                                        \
    const T *bc[SKINNY_NB];                                                               \
    for (ptrdiff_t j0 = 0; j0 < n; j0 += SKINNY_NB) {                                     \
        const ptrdiff_t nb = n - j0 < SKINNY_NB ? n - j0 : SKINNY_NB;                     \
        /* (a block past n repeats its last column: the same work, not stored) */        \
        for (int j = 0; j < SKINNY_NB; j++)                                               \
            bc[j] = b + (j0 + (j < nb ? j : nb - 1)) * ldb;                               \
        for (int i = 0; i < SKINNY_NB * 2 * L; i++) tot[i] = 0;                           \
        /* (as few columns as the block has, rounded up to 1, 2, 4 or 8: a batch of one   \
           predicted alone must not pay for eight) */                                     \
        const int one = m <= L;                                                           \
        if (nb > 4 && one)                                                                \
            skinny_cols_##SUFFIX(1, 8, m, k, a, lda, bc, tot);                            \
        else if (nb > 4)                                                                  \
            skinny_cols_##SUFFIX(2, 4, m, k, a, lda, bc, tot),                            \
            skinny_cols_##SUFFIX(2, 4, m, k, a, lda, bc + 4, tot + 4 * 2 * L);            \
        else if (nb > 2)                                                                  \
            one ? skinny_cols_##SUFFIX(1, 4, m, k, a, lda, bc, tot)                       \
                : skinny_cols_##SUFFIX(2, 4, m, k, a, lda, bc, tot);                      \
        else if (nb > 1)                                                                  \
            one ? skinny_cols_##SUFFIX(1, 2, m, k, a, lda, bc, tot)                       \
                : skinny_cols_##SUFFIX(2, 2, m, k, a, lda, bc, tot);                      \
        else                                                                              \
            one ? skinny_cols_##SUFFIX(1, 1, m, k, a, lda, bc, tot)                       \
                : skinny_cols_##SUFFIX(2, 1, m, k, a, lda, bc, tot);                      \
        for (ptrdiff_t j = 0; j < nb; j++)                                                \
            for (ptrdiff_t i = 0; i < m; i++)                                             \
                c[(j0 + j) * ldc + i] = (T)tot[j * 2 * L + i];                            \
    }                                                                                     \
}

/* The two products of a fully connected layer's backward with few outputs, where BLAS
 * spends more on packing than on multiply-adds (a reduction of OutputSize terms, or a
 * result of OutputSize rows): all operands column-major.
 *
 * fanout: C[M x n] = A^T B, A k x M (the weights), B k x n (the output gradient), for
 * k <= FAN_MAX_K: the input gradient.  A block of FAN_R vectors of C's rows has A's
 * columns transposed into a local block once; then FAN_NJ columns of C at a time take k
 * multiply-adds per vector, broadcasting B's columns (FAN_NJ x FAN_R independent sums).
 * fanin: C[m x N] = A B^T, A m x k (the output gradient), B N x k (the input), for
 * m <= FAN_MAX_M: the weight gradient.  A block of FAN_R vectors of B's rows (features)
 * times up to FAN_ROWS of A's rows at once (1, 2, 4 or 8: as many as are left), sums of
 * FAN_KB terms in T from zero, added to double sums where k is longer (as skinny_).
 * Every output goes through the same vector arithmetic wherever it lies (a partial
 * block's operands come from a zero-padded copy), so the bits do not depend on the
 * chunks or the thread count.
 * Both turn a block around between memory and the registers (fanout: A's columns into the
 * local block; fanin: the sums out to C's columns of OutputSize values).  Element by
 * element that took as many instructions as the multiply-adds (with 32 observations and
 * 10 outputs); whole blocks go through transpose_ instead: L x L in log2(L) rounds of
 * shuffles.  fanout's sums are stored by constant indices only: indexed by the column
 * count, they lived on the stack, and the second thread gained almost nothing (stores to
 * the stack and to C's columns, 4 KiB apart in address bits, wait on each other).
 * A fully connected layer's backward at 56 x 56 x 64 -> 10, batch 32, float32, AVX-512,
 * 1 | 2 threads: fanout 2.35 -> 1.56 | 1.73 -> 0.89 ms, fanin 1.78 -> 1.64 | 1.13 ->
 * 1.04 ms (PyTorch's MKL: 1.4 | 0.9 and 1.3-1.5 | 0.8). */
#define FAN_R 2
#define FAN_NJ 4
#define FAN_MAX_K 16
#define FAN_MAX_M 16
#define FAN_ROWS 8
#define FAN_KB 256
#define MLAYERS_DEFINE_FAN(T, SUFFIX)                                                     \
/* v[0 .. L) <- their transpose (v[r] the L x L block's row r: MLAYERS_TRANSPOSE) */    \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void transpose_##SUFFIX(vec_##SUFFIX *v)     \
{                                                                                         \
    MLAYERS_TRANSPOSE(vec_##SUFFIX, LANES_##SUFFIX, v);                                   \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static void fanout_##SUFFIX(ptrdiff_t M, ptrdiff_t n, ptrdiff_t k, const T *a,            \
                            ptrdiff_t lda, const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc) \
{                                                                                         \
    enum { L = LANES_##SUFFIX, W = FAN_R * L };                                           \
    T at[FAN_MAX_K * W], out[FAN_NJ * W];                                                 \
    /* (whole vectors of A's columns are read: up to kv past a column's start) */         \
    const ptrdiff_t kv = (k + L - 1) / L * L, end = (M - 1) * lda + k;                    \
    for (ptrdiff_t i0 = 0; i0 < M; i0 += W) {                                             \
        const ptrdiff_t rows = M - i0 < W ? M - i0 : W;                                   \
        if (rows == W && (i0 + W - 1) * lda + kv <= end) {                                \
            for (int v = 0; v < FAN_R; v++)                                               \
                for (ptrdiff_t q0 = 0; q0 < k; q0 += L) {                                 \
                    vec_##SUFFIX t[L];                                                    \
                    for (int r = 0; r < L; r++)                                           \
                        t[r] = MLAYERS_AT(SUFFIX, a + (i0 + v * L + r) * lda + q0);       \
                    transpose_##SUFFIX(t);                                                \
                    for (int u = 0; u < L && q0 + u < k; u++)                             \
                        MLAYERS_AT(SUFFIX, at + (q0 + u) * W + v * L) = t[u];             \
                }                                                                         \
        } else {                                                                          \
            for (ptrdiff_t r = 0; r < W; r++)                                             \
                for (ptrdiff_t q = 0; q < k; q++)                                         \
                    at[q * W + r] = r < rows ? a[(i0 + r) * lda + q] : (T)0;              \
        }                                                                                 \
        for (ptrdiff_t j0 = 0; j0 < n; j0 += FAN_NJ) {                                    \
            const ptrdiff_t nj = n - j0 < FAN_NJ ? n - j0 : FAN_NJ;                       \
            const T *bj[FAN_NJ];                                                          \
            /* (columns past n repeat the last: computed, not stored) */                 \
            for (int j = 0; j < FAN_NJ; j++) bj[j] = b + (j0 + (j < nj ? j : nj - 1)) * ldb; \
            vec_##SUFFIX acc[FAN_NJ][FAN_R];                                              \
            for (int j = 0; j < FAN_NJ; j++)                                              \
                for (int v = 0; v < FAN_R; v++) acc[j][v] = (vec_##SUFFIX){0};            \
            for (ptrdiff_t q = 0; q < k; q++) {                                           \
                vec_##SUFFIX w[FAN_R];                                                    \
                for (int v = 0; v < FAN_R; v++) w[v] = MLAYERS_AT(SUFFIX, at + q * W + v * L); \
                for (int j = 0; j < FAN_NJ; j++) {                                        \
                    const T x = bj[j][q];                                                 \
                    for (int v = 0; v < FAN_R; v++) acc[j][v] += w[v] * x;                \
                }                                                                         \
            }                                                                             \
            /* (acc indexed by constants only: so it stays in registers) */              \
            if (nj == FAN_NJ && rows == W) {                                              \
                for (int j = 0; j < FAN_NJ; j++)                                          \
                    for (int v = 0; v < FAN_R; v++)                                       \
                        MLAYERS_AT(SUFFIX, c + (j0 + j) * ldc + i0 + v * L) = acc[j][v];  \
            } else {                                                                      \
                for (int j = 0; j < FAN_NJ; j++)                                          \
                    for (int v = 0; v < FAN_R; v++)                                       \
                        MLAYERS_AT(SUFFIX, out + j * W + v * L) = acc[j][v];              \
                for (ptrdiff_t j = 0; j < nj; j++)                                        \
                    for (ptrdiff_t r = 0; r < rows; r++)                                  \
                        c[(j0 + j) * ldc + i0 + r] = out[j * W + r];                      \
            }                                                                             \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
                                                                                          \
/* fanin_'s rows o0 .. o0 + mo of C for the features f0 .. f0 + cols, ROWS of them at     \
 * once (mo <= ROWS; the rows past mo repeat the last: computed, not stored) */           \
MLAYERS_TARGET                                                                            \
static inline __attribute__((always_inline)) void                                         \
fanin_rows_##SUFFIX(const int ROWS, ptrdiff_t mo, ptrdiff_t cols, ptrdiff_t k,            \
                    const T *a, ptrdiff_t lda, const T *b, ptrdiff_t ldb, T *c,           \
                    ptrdiff_t ldc)                                                        \
{                                                                                         \
    enum { L = LANES_##SUFFIX, W = FAN_R * L };                                           \
    double tot[FAN_ROWS * W];                                                             \
    T out[FAN_ROWS * W];                                                                  \
    const T *ar[FAN_ROWS];                                                                \
    for (int o = 0; o < ROWS; o++) ar[o] = a + (o < mo ? o : mo - 1);                     \
    for (ptrdiff_t q0 = 0; q0 < k; q0 += FAN_KB) {                                        \
        const ptrdiff_t qe = k - q0 > FAN_KB ? q0 + FAN_KB : k;                           \
        vec_##SUFFIX acc[FAN_ROWS][FAN_R];                                                \
        for (int o = 0; o < ROWS; o++)                                                    \
            for (int v = 0; v < FAN_R; v++) acc[o][v] = (vec_##SUFFIX){0};                \
        for (ptrdiff_t q = q0; q < qe; q++) {                                             \
            const T *bq = b + q * ldb;                                                    \
            vec_##SUFFIX x[FAN_R];                                                        \
            if (cols == W) {                                                              \
                for (int v = 0; v < FAN_R; v++) x[v] = MLAYERS_AT(SUFFIX, bq + v * L);    \
            } else {                                                                      \
                T pad[W];                                                                 \
                for (int r = 0; r < W; r++) pad[r] = r < cols ? bq[r] : (T)0;             \
                for (int v = 0; v < FAN_R; v++) x[v] = MLAYERS_AT(SUFFIX, pad + v * L);   \
            }                                                                             \
            _Pragma("GCC unroll 8")                                                       \
            for (int o = 0; o < ROWS; o++) {                                              \
                const T w = ar[o][q * lda];                                               \
                for (int v = 0; v < FAN_R; v++) acc[o][v] += x[v] * w;                    \
            }                                                                             \
        }                                                                                 \
        for (int o = 0; o < ROWS; o++)                                                    \
            for (int v = 0; v < FAN_R; v++)                                               \
                MLAYERS_AT(SUFFIX, out + o * W + v * L) = acc[o][v];                      \
        if (k > FAN_KB)     /* (one block: its sums are the result as they are) */       \
            for (int i = 0; i < ROWS * W; i++)                                            \
                tot[i] = (q0 ? tot[i] : 0.0) + (double)out[i];                            \
    }                                                                                     \
    if (k > FAN_KB)                                                                       \
        for (int i = 0; i < ROWS * W; i++) out[i] = (T)tot[i];                            \
    if (2 * ROWS < L) {          /* (mostly zeros to turn around: element by element) */  \
        for (ptrdiff_t r = 0; r < cols; r++)                                              \
            for (ptrdiff_t o = 0; o < mo; o++) c[r * ldc + o] = out[o * W + r];           \
        return;                                                                           \
    }                                                                                     \
    for (int v = 0; v < FAN_R; v++)                                                       \
        for (int og = 0; og < mo; og += L) {                                              \
            const ptrdiff_t nm = mo - og < L ? mo - og : L;                               \
            vec_##SUFFIX t[L];                                                            \
            for (int u = 0; u < L; u++)                                                   \
                t[u] = og + u < ROWS ? MLAYERS_AT(SUFFIX, out + (og + u) * W + v * L)     \
                                     : (vec_##SUFFIX){0};                                 \
            transpose_##SUFFIX(t);                                                        \
            for (int r = 0; r < L && v * L + r < cols; r++) {                             \
                T *d = c + (v * L + r) * ldc + og;                                        \
                if (nm == L)                                                              \
                    MLAYERS_AT(SUFFIX, d) = t[r];                                         \
                else                                                                      \
                    MLAYERS_STORE_FIRST(T, SUFFIX, d, t[r], nm);                          \
            }                                                                             \
        }                                                                                 \
}                                                                                         \
                                                                                          \
MLAYERS_TARGET                                                                            \
static void fanin_##SUFFIX(ptrdiff_t m, ptrdiff_t N, ptrdiff_t k, const T *a,             \
                           ptrdiff_t lda, const T *b, ptrdiff_t ldb, T *c, ptrdiff_t ldc) \
{                                                                                         \
    enum { L = LANES_##SUFFIX, W = FAN_R * L };                                           \
    for (ptrdiff_t f0 = 0; f0 < N; f0 += W) {                                             \
        const ptrdiff_t cols = N - f0 < W ? N - f0 : W;                                   \
        for (ptrdiff_t o0 = 0; o0 < m; o0 += FAN_ROWS) {                                  \
            const ptrdiff_t mo = m - o0 < FAN_ROWS ? m - o0 : FAN_ROWS;                   \
            const T *ao = a + o0;                                                         \
            T *co = c + f0 * ldc + o0;                                                    \
            if (mo > 4)                                                                   \
                fanin_rows_##SUFFIX(8, mo, cols, k, ao, lda, b + f0, ldb, co, ldc);       \
            else if (mo > 2)                                                              \
                fanin_rows_##SUFFIX(4, mo, cols, k, ao, lda, b + f0, ldb, co, ldc);       \
            else if (mo > 1)                                                              \
                fanin_rows_##SUFFIX(2, mo, cols, k, ao, lda, b + f0, ldb, co, ldc);       \
            else                                                                          \
                fanin_rows_##SUFFIX(1, mo, cols, k, ao, lda, b + f0, ldb, co, ldc);       \
        }                                                                                 \
    }                                                                                     \
}

#define MLAYERS_DEFINE_ALL(ISA)                                                           \
    MLAYERS_DEFINE_TAPS(float, f_##ISA) MLAYERS_DEFINE_TAPS(double, d_##ISA)              \
    MLAYERS_DEFINE_DIRECT(float, f_##ISA) MLAYERS_DEFINE_DIRECT(double, d_##ISA)          \
    MLAYERS_DEFINE_DW(float, f_##ISA) MLAYERS_DEFINE_DW(double, d_##ISA)                  \
    MLAYERS_DEFINE_SPLIT(float, f_##ISA) MLAYERS_DEFINE_SPLIT(double, d_##ISA)            \
    MLAYERS_DEFINE_WINO(float, f_##ISA) MLAYERS_DEFINE_WINO(double, d_##ISA)             \
    MLAYERS_DEFINE_WINO2(float, int32_t, f_##ISA)                                        \
    MLAYERS_DEFINE_WINO2(double, int64_t, d_##ISA)                                       \
    MLAYERS_DEFINE_CV(float, f_##ISA) MLAYERS_DEFINE_CV(double, d_##ISA)                  \
    MLAYERS_DEFINE_SKINNY(float, f_##ISA) MLAYERS_DEFINE_SKINNY(double, d_##ISA)          \
    MLAYERS_DEFINE_FAN(float, f_##ISA) MLAYERS_DEFINE_FAN(double, d_##ISA)

/* (the macros above read MLAYERS_TARGET, MLAYERS_VBYTES and MLAYERS_STORE_FIRST where they
 * are expanded) */
/* the first m < L lanes of v (a vector of T) at d: one masked store on AVX-512, pieces
 * (store_lanes) elsewhere */
#define MLAYERS_STORE_PIECES(T, SUFFIX, d, v, m) store_lanes_##SUFFIX(d, v, m)
/* the lanes a..b-1 (within the vector) of the vector at p, zero elsewhere: one masked load
 * on AVX-512, lane by lane elsewhere */
#define MLAYERS_LOAD_LANES(T, SUFFIX, p, a, b) __extension__({                            \
    vec_##SUFFIX v_ = {0};                                                                \
    const ptrdiff_t b_ = (b) < LANES_##SUFFIX ? (b) : LANES_##SUFFIX;                     \
    for (ptrdiff_t u_ = (a) > 0 ? (a) : 0; u_ < b_; u_++) v_[u_] = (p)[u_];               \
    v_; })
#define MLAYERS_RANGE_MASK(a, b, L)                                                       \
    (((b) >= (L) ? ~0u : (1u << (b)) - 1) & ~((a) <= 0 ? 0u : (1u << (a)) - 1))
#ifdef MLAYERS_MULTI
#define MLAYERS_FMA 1
#define MLAYERS_TARGET __attribute__((target("arch=x86-64-v4")))
#define MLAYERS_VBYTES 64
#define MLAYERS_STORE_FIRST(T, SUFFIX, d, v, m)                                           \
    (sizeof(T) == 4                                                                       \
     ? _mm512_mask_storeu_ps((void *)(d), (__mmask16)((1u << (m)) - 1), (__m512)(v))      \
     : _mm512_mask_storeu_pd((void *)(d), (__mmask8)((1u << (m)) - 1), (__m512d)(v)))
#define MLAYERS_LOAD_RANGE(T, SUFFIX, p, a, b)                                            \
    (sizeof(T) == 4                                                                       \
     ? (vec_##SUFFIX)_mm512_maskz_loadu_ps((__mmask16)MLAYERS_RANGE_MASK(a, b, 16), (p))  \
     : (vec_##SUFFIX)_mm512_maskz_loadu_pd((__mmask8)MLAYERS_RANGE_MASK(a, b, 8), (p)))
MLAYERS_DEFINE_ALL(v4)
#undef MLAYERS_TARGET
#undef MLAYERS_VBYTES
#undef MLAYERS_STORE_FIRST
#undef MLAYERS_LOAD_RANGE
#define MLAYERS_STORE_FIRST MLAYERS_STORE_PIECES
#define MLAYERS_LOAD_RANGE MLAYERS_LOAD_LANES
#define MLAYERS_TARGET __attribute__((target("arch=x86-64-v3")))
#define MLAYERS_VBYTES 32
MLAYERS_DEFINE_ALL(v3)
#undef MLAYERS_TARGET
#undef MLAYERS_VBYTES
#else
#define MLAYERS_STORE_FIRST MLAYERS_STORE_PIECES
#define MLAYERS_LOAD_RANGE MLAYERS_LOAD_LANES
#endif
#undef MLAYERS_FMA
#ifdef __FMA__
#define MLAYERS_FMA 1
#else
#define MLAYERS_FMA 0
#endif
#define MLAYERS_TARGET
#define MLAYERS_VBYTES MLAYERS_BASE_VBYTES
MLAYERS_DEFINE_ALL(base)
#undef MLAYERS_TARGET
#undef MLAYERS_VBYTES
#undef MLAYERS_FMA

/* The instruction set in use: 2 AVX-512, 1 AVX2+FMA, 0 baseline. */
static int mlayers_level = 0;

static int mlayers_max_level(void)
{
#ifdef MLAYERS_MULTI
    __builtin_cpu_init();
    if (__builtin_cpu_supports("x86-64-v4")) return 2;
    if (__builtin_cpu_supports("x86-64-v3")) return 1;
#endif
    return 0;
}

/* Use instruction set `level` (at most what the CPU has); returns the level in use. */
static int mlayers_set_level(int level)
{
    const int top = mlayers_max_level();
    mlayers_level = level < 0 ? 0 : (level > top ? top : level);
    return mlayers_level;
}

/* Bytes per vector of the kernels in use: a block of the direct kernel covers a whole
 * number of these, and the weight-gradient grid is padded to one. */
static int mlayers_vbytes(void)
{
    return mlayers_level == 2 ? 64 : (mlayers_level ? 32 : MLAYERS_BASE_VBYTES);
}

#ifdef MLAYERS_MULTI
#define MLAYERS_PICK(NAME, ...) (mlayers_level == 2 ? NAME##_v4(__VA_ARGS__)              \
    : mlayers_level == 1 ? NAME##_v3(__VA_ARGS__) : NAME##_base(__VA_ARGS__))
#else
#define MLAYERS_PICK(NAME, ...) NAME##_base(__VA_ARGS__)
#endif
#define skinny_f(...) MLAYERS_PICK(skinny_f, __VA_ARGS__)
#define skinny_d(...) MLAYERS_PICK(skinny_d, __VA_ARGS__)
#define fanout_f(...) MLAYERS_PICK(fanout_f, __VA_ARGS__)
#define fanout_d(...) MLAYERS_PICK(fanout_d, __VA_ARGS__)
#define fanin_f(...) MLAYERS_PICK(fanin_f, __VA_ARGS__)
#define fanin_d(...) MLAYERS_PICK(fanin_d, __VA_ARGS__)
#define copy_rows_f(...) MLAYERS_PICK(copy_rows_f, __VA_ARGS__)
#define shift_rows_f(...) MLAYERS_PICK(shift_rows_f, __VA_ARGS__)
#define shift_rows_d(...) MLAYERS_PICK(shift_rows_d, __VA_ARGS__)
#define copy_rows_d(...) MLAYERS_PICK(copy_rows_d, __VA_ARGS__)
#define taps_row_f(...) MLAYERS_PICK(taps_row_f, __VA_ARGS__)
#define taps_row_d(...) MLAYERS_PICK(taps_row_d, __VA_ARGS__)
#define taps_rows4_f(...) MLAYERS_PICK(taps_rows4_f, __VA_ARGS__)
#define taps_rows4_d(...) MLAYERS_PICK(taps_rows4_d, __VA_ARGS__)
#define taps_scatter_f(...) MLAYERS_PICK(taps_scatter_f, __VA_ARGS__)
#define taps_scatter_d(...) MLAYERS_PICK(taps_scatter_d, __VA_ARGS__)
#define taps_dot_f(...) MLAYERS_PICK(taps_dot_f, __VA_ARGS__)
#define taps_dot_d(...) MLAYERS_PICK(taps_dot_d, __VA_ARGS__)
#define direct_block_f(...) MLAYERS_PICK(direct_block_f, __VA_ARGS__)
#define direct_block_d(...) MLAYERS_PICK(direct_block_d, __VA_ARGS__)
#define store_runs_f(...) MLAYERS_PICK(store_runs_f, __VA_ARGS__)
#define store_runs_d(...) MLAYERS_PICK(store_runs_d, __VA_ARGS__)
#define dw_block_f(...) MLAYERS_PICK(dw_block_f, __VA_ARGS__)
#define dw_block_d(...) MLAYERS_PICK(dw_block_d, __VA_ARGS__)
#define split_row_f(...) MLAYERS_PICK(split_row_f, __VA_ARGS__)
#define split_row_d(...) MLAYERS_PICK(split_row_d, __VA_ARGS__)
#define merge_row_f(...) MLAYERS_PICK(merge_row_f, __VA_ARGS__)
#define merge_row_d(...) MLAYERS_PICK(merge_row_d, __VA_ARGS__)
#define rectify_row_f(...) MLAYERS_PICK(rectify_row_f, __VA_ARGS__)
#define rectify_row_d(...) MLAYERS_PICK(rectify_row_d, __VA_ARGS__)
#define row_sum_f(...) MLAYERS_PICK(row_sum_f, __VA_ARGS__)
#define row_sum_d(...) MLAYERS_PICK(row_sum_d, __VA_ARGS__)
#define wino_in_f(...) MLAYERS_PICK(wino_in_f, __VA_ARGS__)
#define wino_in_d(...) MLAYERS_PICK(wino_in_d, __VA_ARGS__)
#define wino_out_f(...) MLAYERS_PICK(wino_out_f, __VA_ARGS__)
#define wino_out_d(...) MLAYERS_PICK(wino_out_d, __VA_ARGS__)
#define wino_rows_f(...) MLAYERS_PICK(wino_rows_f, __VA_ARGS__)
#define wino_rows_d(...) MLAYERS_PICK(wino_rows_d, __VA_ARGS__)
#define w22_in_f(...) MLAYERS_PICK(w22_in_f, __VA_ARGS__)
#define w22_in_d(...) MLAYERS_PICK(w22_in_d, __VA_ARGS__)
#define w22_out_f(...) MLAYERS_PICK(w22_out_f, __VA_ARGS__)
#define w22_gemm_f(...) MLAYERS_PICK(w22_gemm_f, __VA_ARGS__)
#define w22_gemm_d(...) MLAYERS_PICK(w22_gemm_d, __VA_ARGS__)
#define w22_dy_f(...) MLAYERS_PICK(w22_dy_f, __VA_ARGS__)
#define w22_dy_d(...) MLAYERS_PICK(w22_dy_d, __VA_ARGS__)
#define w22_out_d(...) MLAYERS_PICK(w22_out_d, __VA_ARGS__)
#define cv_block_f(...) MLAYERS_PICK(cv_block_f, __VA_ARGS__)
#define cv_block_d(...) MLAYERS_PICK(cv_block_d, __VA_ARGS__)
#define cvw_block_f(...) MLAYERS_PICK(cvw_block_f, __VA_ARGS__)
#define cvw_block_d(...) MLAYERS_PICK(cvw_block_d, __VA_ARGS__)
#define cv_store_f(...) MLAYERS_PICK(cv_store_f, __VA_ARGS__)
#define cv_store_d(...) MLAYERS_PICK(cv_store_d, __VA_ARGS__)
#define cv_rows_f(...) MLAYERS_PICK(cv_rows_f, __VA_ARGS__)
#define cv_rows_d(...) MLAYERS_PICK(cv_rows_d, __VA_ARGS__)
#define cv_lanes_f() MLAYERS_PICK(cv_lanes_f)
#define cv_lanes_d() MLAYERS_PICK(cv_lanes_d)

#endif
