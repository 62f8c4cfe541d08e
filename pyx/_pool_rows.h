/* Row loops of the 2 x 2, stride 2 max pooling kernels (pyx/_pool.pyx).
 *
 * Plain C that GCC auto-vectorizes, built for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and
 * baseline x86-64 (target_clones, as _norm_rows.h): without them the module's loops run
 * at SSE2's width.  The selects take cells in MATLAB's column-major order and keep the
 * first of equal values (strict >); a NaN wins over anything (nothing is above it and it
 * is selected explicitly) and comes out as the canonical NaN.
 */
#ifndef MLAYERS_POOL_ROWS_H
#define MLAYERS_POOL_ROWS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>

#include "_clones.h"
#define POOL_CLONES MLAYERS_CLONES

/* (no trapping math for these functions only: _conv includes this header too) */
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC push_options
#pragma GCC optimize ("no-trapping-math")
#endif

/* elements of the horizontal maxima one block of pool_max22_exact holds (on the stack:
 * with the winners' offsets, 48 KiB in double, within small OpenMP thread stacks) */
#define POOL_PAIRS_BLOCK 2048

/* values per fixed-size copy of pool_run */
#define POOL_RUN 16

/* planes summed side by side by pool_sum_planes */
#define POOL_PL 16

/* outputs of a piece of a row of max pooling (q < nq: output q0 + q) whose window's tap at
   offset off (from the output's first cell, stride s) lies in the input row [0, n): the
   first one and one past the last, in span[0] and span[1] */
static inline void pool_span(ptrdiff_t *span, ptrdiff_t off, ptrdiff_t s, ptrdiff_t q0,
                             ptrdiff_t nq, ptrdiff_t n)
{
    const ptrdiff_t need = -off - q0 * s;            /* (q0 + q) * s + off >= 0 */
    const ptrdiff_t room = n - 1 - off - q0 * s;     /* (q0 + q) * s + off <= n - 1 */
    const ptrdiff_t lo = need <= 0 ? 0 : (need + s - 1) / s;
    const ptrdiff_t hi = room < 0 ? 0 : room / s + 1;
    span[0] = lo < nq ? lo : nq;
    span[1] = hi < nq ? hi : nq;
}
/* outputs of a row of max pooling's general kernel at a time (its stack arrays), and the
   taps along a row whose spans it works out once a piece (wider windows: each time) */
#define POOL_ROW_PIECE 256
#define POOL_ROW_TAPS 64
#define POOL_TAP_SPAN(k2)                                                                 \
    (k2 < POOL_ROW_TAPS ? spans + 2 * k2                                                  \
     : (pool_span(wide, k2 - p2, s2, q0, nq, i2n), wide))

#define POOL_SEL(a, b) (((b) > (a)) | ((b) != (b)) ? (b) : (a))

/* n values from s to d, where `room` values may be written from d (what lies past the n
 * is rewritten later): fixed-size copies, single vector moves, rather than a call per short
 * run.  s may be read up to POOL_RUN values past the run. */
#define POOL_DEFINE_RUN(T, S)                                                             \
static inline void pool_run_##S(T *restrict d, const T *restrict s, ptrdiff_t n,          \
                                ptrdiff_t room)                                           \
{                                                                                         \
    if (n >= POOL_RUN) {                                                                  \
        for (ptrdiff_t j = 0; j + POOL_RUN <= n; j += POOL_RUN)                           \
            memcpy(d + j, s + j, POOL_RUN * sizeof(T));                                   \
        memcpy(d + n - POOL_RUN, s + n - POOL_RUN, POOL_RUN * sizeof(T));                 \
    } else if (room >= POOL_RUN) {                                                        \
        memcpy(d, s, POOL_RUN * sizeof(T));                                               \
    } else {                                                                              \
        memcpy(d, s, n * sizeof(T));                                                      \
    }                                                                                     \
}
POOL_DEFINE_RUN(float, f)
POOL_DEFINE_RUN(double, d)
POOL_DEFINE_RUN(int32_t, i32)

#define POOL_DEFINE_ROWS(T, S)                                                            \
/* One row of windows: y[j] = max of r0[2j], r0[2j+1], r1[2j], r1[2j+1]. */               \
POOL_CLONES void pool_max22_##S(const T *restrict r0, const T *restrict r1,               \
                                T *restrict y, ptrdiff_t n)                               \
{                                                                                         \
    for (ptrdiff_t j = 0; j < n; j++) {                                                   \
        T m = POOL_SEL(r0[2 * j], r0[2 * j + 1]);                                         \
        m = POOL_SEL(m, r1[2 * j]);                                                       \
        m = POOL_SEL(m, r1[2 * j + 1]);                                                   \
        y[j] = (m != m) ? (T)NAN : m;                                                     \
    }                                                                                     \
}                                                                                         \
/* The same with the winner's plane-local offset: the first maximum, or the first NaN. */ \
POOL_CLONES void pool_max22_idx_##S(const T *restrict r0, const T *restrict r1,           \
                                    T *restrict y, int32_t *restrict ip, ptrdiff_t n,     \
                                    int32_t off, int32_t width)                           \
{                                                                                         \
    for (ptrdiff_t j = 0; j < n; j++) {                                                   \
        T a = r0[2 * j], b = r0[2 * j + 1], c = r1[2 * j], d = r1[2 * j + 1];             \
        int32_t base = off + 2 * (int32_t)j, k = base, kn;                                \
        T m = a;                                                                          \
        k = (b > m) ? base + 1 : k;  m = (b > m) ? b : m;                                 \
        k = (c > m) ? base + width : k;  m = (c > m) ? c : m;                             \
        k = (d > m) ? base + width + 1 : k;  m = (d > m) ? d : m;                         \
        kn = (c != c) ? base + width : base + width + 1;                                  \
        kn = (b != b) ? base + 1 : kn;                                                    \
        kn = (a != a) ? base : kn;                                                        \
        int nan = (a != a) | (b != b) | (c != c) | (d != d);                              \
        y[j] = nan ? (T)NAN : m;                                                          \
        ip[j] = nan ? kn : k;                                                             \
    }                                                                                     \
}                                                                                         \
/* Windows that tile `pairs` pairs of rows of 2n values exactly, y being pairs x n (with   \
   `idx`, a constant: one plane, and the winners' plane-local offsets at ip, the first     \
   maximum in MATLAB's column-major order or the first NaN, as pool_max22_idx; without,    \
   the planes after planes of the caller's whole share at once).  Rows of 7 or 14 windows  \
   leave a loop over one row scalar, so three passes over blocks of rows, each over whole  \
   runs: h = each horizontal pair's first NaN or else first maximum, g[k] = the top h[k]   \
   unless the bottom h[k + n] is NaN (and the top not) or larger, kept for the first row of \
   each pair.  That is the four cells' rule (the first NaN lies in the first pair holding  \
   one; without NaN the first maximum in the first pair attaining it), so the values and   \
   winners of pool_max22 and pool_max22_idx.  The rows of x are 2 hn >= 2n values apart \
   (the windows use their first 2n); with `rect`, a constant, the results are relu's      \
   values of those maxima (x <= 0 gives +0, NaN kept), which are the maxima of relu's     \
   values. */                                                                              \
static inline __attribute__((always_inline)) void                                          \
pool_max22_exact_body_##S(const T *restrict x, T *restrict y, int32_t *restrict ip,        \
                          ptrdiff_t pairs, ptrdiff_t n, ptrdiff_t hn, const int idx,       \
                          const int rect)                                                  \
{                                                                                          \
    T h[POOL_PAIRS_BLOCK], g[POOL_PAIRS_BLOCK + POOL_RUN];                                 \
    int32_t hi[POOL_PAIRS_BLOCK], gi[POOL_PAIRS_BLOCK + POOL_RUN];                             \
    const ptrdiff_t per = POOL_PAIRS_BLOCK / (2 * hn);                                     \
    for (ptrdiff_t r = 0; r < pairs; r += per) {                                           \
        const ptrdiff_t cnt = pairs - r < per ? pairs - r : per, m = 2 * hn * cnt;         \
        const int32_t off = (int32_t)(4 * hn * r);                                         \
        const T *restrict xb = x + 4 * hn * r;                                             \
        for (ptrdiff_t k = 0; k < m; k++) {                                                \
            const T a = xb[2 * k], b = xb[2 * k + 1];                                      \
            const int bw = (a == a) & ((b != b) | (b > a));                                \
            h[k] = bw ? b : a;                                                             \
            if (idx) hi[k] = (int32_t)(2 * k) + bw;                                        \
        }                                                                                  \
        for (ptrdiff_t k = 0; k < m - hn; k++) {                                           \
            const T t = h[k], u = h[k + hn];                                               \
            const int bw = (t == t) & ((u != u) | (u > t));                                \
            const T v = bw ? u : t;                                                        \
            g[k] = (v != v) ? (T)NAN : (rect && !(v > 0)) ? (T)0 : v;                      \
            if (idx) gi[k] = (bw ? hi[k + hn] : hi[k]) + off;                              \
        }                                                                                  \
        for (ptrdiff_t q = 0; q < cnt; q++) {                                              \
            pool_run_##S(y + n * (r + q), g + 2 * q * hn, n, (cnt - q) * n);               \
            if (idx) pool_run_i32(ip + n * (r + q), gi + 2 * q * hn, n, (cnt - q) * n);    \
        }                                                                                  \
    }                                                                                      \
}                                                                                          \
POOL_CLONES void pool_max22_exact_##S(const T *restrict x, T *restrict y, ptrdiff_t pairs, \
                                      ptrdiff_t n)                                         \
{                                                                                          \
    pool_max22_exact_body_##S(x, y, NULL, pairs, n, n, 0, 0);                              \
}                                                                                          \
POOL_CLONES void pool_max22_exact_idx_##S(const T *restrict x, T *restrict y,              \
                                          int32_t *restrict ip, ptrdiff_t pairs,           \
                                          ptrdiff_t n)                                     \
{                                                                                          \
    pool_max22_exact_body_##S(x, y, ip, pairs, n, n, 1, 0);                                \
}                                                                                          \
/* pool_max22_exact of rows 2 hn apart (2 hn <= POOL_PAIRS_BLOCK), rectified with        \
   `rect`: a convolution's output rows as its kernel wrote them, and its ReLU */          \
POOL_CLONES void pool_max22_rows_##S(const T *restrict x, T *restrict y, ptrdiff_t pairs,  \
                                     ptrdiff_t n, ptrdiff_t hn, int rect)                  \
{                                                                                          \
    if (rect) pool_max22_exact_body_##S(x, y, NULL, pairs, n, hn, 0, 1);                   \
    else pool_max22_exact_body_##S(x, y, NULL, pairs, n, hn, 0, 0);                        \
}                                                                                          \
/* y[j] = (sum over r < rows of x[r*stride + j], in double, in order of r) / div for       \
   j < ncols (acc: ncols doubles): a global average over the outer dimension, rows added   \
   as vectors of columns (built for the machine's width: the .pyx loop was SSE2's two      \
   doubles, and a mean over T of 64 x 32 x 256 values took 4x ONNX Runtime's time) */       \
POOL_CLONES void pool_sum_rows_##S(const T *restrict x, T *restrict y, ptrdiff_t rows,     \
                                   ptrdiff_t stride, ptrdiff_t ncols, double div,          \
                                   double *restrict acc)                                   \
{                                                                                          \
    for (ptrdiff_t j = 0; j < ncols; j++) acc[j] = 0;                                      \
    for (ptrdiff_t r = 0; r < rows; r++) {                                                 \
        const T *restrict row = x + r * stride;                                            \
        for (ptrdiff_t j = 0; j < ncols; j++) acc[j] += row[j];                            \
    }                                                                                      \
    for (ptrdiff_t j = 0; j < ncols; j++) y[j] = (T)(acc[j] / div);                        \
}                                                                                          \
/* y[q] = (sum of x[q*len + i] over i, in double, in order of i) / div for q < nplanes      \
   (contiguous planes len apart: a global average over the leading dimensions).  One sum   \
   is a chain of dependent additions; POOL_PL planes run side by side in the lanes of one  \
   vector of doubles: a block of POOL_PL values of each plane is loaded as a vector and    \
   the block turned around in the registers (MLAYERS_TRANSPOSE), so every lane adds its    \
   plane's values in memory order: the scalar loop's sums, bit for bit.  (Scalar, eight   \
   planes at a time, a mean over T of 64 x 32 x 256 values took a tenth of N5's           \
   predict.) */                                                                            \
POOL_CLONES void pool_sum_planes_##S(const T *restrict x, T *restrict y, ptrdiff_t nplanes, \
                                     ptrdiff_t len, double div)                            \
{                                                                                          \
    typedef T vt __attribute__((vector_size(POOL_PL * sizeof(T)), aligned(sizeof(T))));    \
    typedef double vd __attribute__((vector_size(POOL_PL * sizeof(double))));              \
    ptrdiff_t q0 = 0;                                                                      \
    for (; q0 + POOL_PL <= nplanes; q0 += POOL_PL) {                                       \
        const T *xq = x + q0 * len;                                                        \
        vd acc = {0};                                                                      \
        ptrdiff_t i0 = 0;                                                                  \
        for (; i0 + POOL_PL <= len; i0 += POOL_PL) {                                       \
            vt t[POOL_PL];                                                                 \
            for (int r = 0; r < POOL_PL; r++) t[r] = *(const vt *)(xq + r * len + i0);     \
            MLAYERS_TRANSPOSE(vt, POOL_PL, t);                                             \
            for (int u = 0; u < POOL_PL; u++) acc += __builtin_convertvector(t[u], vd);    \
        }                                                                                  \
        for (; i0 < len; i0++) {                                                           \
            vd v;                                                                          \
            for (int r = 0; r < POOL_PL; r++) v[r] = xq[r * len + i0];                     \
            acc += v;                                                                      \
        }                                                                                  \
        for (int r = 0; r < POOL_PL; r++) y[q0 + r] = (T)(acc[r] / div);                   \
    }                                                                                      \
    for (; q0 < nplanes; q0++) {                                                           \
        double t = 0;                                                                      \
        for (ptrdiff_t i = 0; i < len; i++) t += x[q0 * len + i];                          \
        y[q0] = (T)(t / div);                                                              \
    }                                                                                      \
}                                                                                          \
/* Max pooling of one plane of any window, stride and padding (g: _pool.pyx's geometry):
   y at yp, with ip the winners' plane-local offsets (NULL: none).  The winner is the
   first cell equal to the window's maximum (the first cell for a window of -Inf) or,
   where the window has a NaN, its first NaN; a window with padded cells outputs at least
   pad_floor.  A row of outputs at a time, in pieces of POOL_ROW_PIECE: for each cell of
   the window (row by row, tap by tap, the window's own order) every output of the piece
   whose window holds that cell takes it into its maximum (a select) and its NaN flag, a
   loop over the outputs that the compiler vectorizes (stride-s loads); then, with
   winners, the cells again in reverse order, each output keeping the last cell that
   equals its maximum (or is NaN), which is the first in the window's order.  (One window
   at a time, the .pyx loop before it branched on every compare, a coin toss on ordinary
   data, and kept its locals on the stack inside the OpenMP region.) */                    \
POOL_CLONES void pool_max_plane_##S(const T *restrict xp, T *restrict yp,                  \
                                    int32_t *restrict ip, const ptrdiff_t *g, T pad_floor) \
{                                                                                          \
    const ptrdiff_t i0n = g[0], i1n = g[1], i2n = g[2], o0n = g[3], o1n = g[4], o2n = g[5]; \
    const ptrdiff_t k0n = g[6], k1n = g[7], k2n = g[8], s0 = g[9], s1 = g[10], s2 = g[11]; \
    const ptrdiff_t p0 = g[15], p1 = g[16], p2 = g[17], area = k0n * k1n * k2n;            \
    T m[POOL_ROW_PIECE];                                                                   \
    int nan[POOL_ROW_PIECE];                                                               \
    int32_t best[POOL_ROW_PIECE];                                                          \
    ptrdiff_t spans[2 * POOL_ROW_TAPS], wide[2];                                           \
    for (ptrdiff_t q0 = 0; q0 < o2n; q0 += POOL_ROW_PIECE) {                               \
        const ptrdiff_t nq = o2n - q0 < POOL_ROW_PIECE ? o2n - q0 : POOL_ROW_PIECE;        \
        for (ptrdiff_t k2 = 0; k2 < k2n && k2 < POOL_ROW_TAPS; k2++)                       \
            pool_span(spans + 2 * k2, k2 - p2, s2, q0, nq, i2n);                           \
        for (ptrdiff_t o0 = 0; o0 < o0n; o0++)                                             \
        for (ptrdiff_t o1 = 0; o1 < o1n; o1++) {                                           \
            const ptrdiff_t out = (o0 * o1n + o1) * o2n + q0;                              \
            const ptrdiff_t a0 = o0 * s0 - p0 > 0 ? o0 * s0 - p0 : 0;                      \
            const ptrdiff_t b0 = o0 * s0 - p0 + k0n < i0n ? o0 * s0 - p0 + k0n : i0n;      \
            const ptrdiff_t a1 = o1 * s1 - p1 > 0 ? o1 * s1 - p1 : 0;                      \
            const ptrdiff_t b1 = o1 * s1 - p1 + k1n < i1n ? o1 * s1 - p1 + k1n : i1n;      \
            for (ptrdiff_t q = 0; q < nq; q++) { m[q] = -INFINITY; nan[q] = 0; }           \
            for (ptrdiff_t i0 = a0; i0 < b0; i0++)                                         \
                for (ptrdiff_t i1 = a1; i1 < b1; i1++)                                     \
                    for (ptrdiff_t k2 = 0; k2 < k2n; k2++) {                               \
                        const ptrdiff_t *sp = POOL_TAP_SPAN(k2);                           \
                        const T *restrict r =                                              \
                            xp + (i0 * i1n + i1) * i2n + k2 - p2 + q0 * s2;                \
                        for (ptrdiff_t q = sp[0]; q < sp[1]; q++) {                        \
                            const T v = r[q * s2];                                         \
                            m[q] = v > m[q] ? v : m[q];                                    \
                            nan[q] |= v != v;                                              \
                        }                                                                  \
                    }                                                                      \
            if (ip) {                                                                      \
                for (ptrdiff_t q = 0; q < nq; q++) {                                       \
                    const ptrdiff_t a2 = (q0 + q) * s2 - p2;                               \
                    best[q] = (int32_t)((a0 * i1n + a1) * i2n + (a2 > 0 ? a2 : 0));        \
                }                                                                          \
                for (ptrdiff_t i0 = b0 - 1; i0 >= a0; i0--)                                \
                    for (ptrdiff_t i1 = b1 - 1; i1 >= a1; i1--)                            \
                        for (ptrdiff_t k2 = k2n - 1; k2 >= 0; k2--) {                      \
                            const ptrdiff_t *sp = POOL_TAP_SPAN(k2);                       \
                            const ptrdiff_t c0 =                                           \
                                (i0 * i1n + i1) * i2n + k2 - p2 + q0 * s2;                 \
                            for (ptrdiff_t q = sp[0]; q < sp[1]; q++) {                    \
                                const T v = xp[c0 + q * s2];                               \
                                const int hit = nan[q] ? v != v : v == m[q];               \
                                best[q] = hit ? (int32_t)(c0 + q * s2) : best[q];          \
                            }                                                              \
                        }                                                                  \
                for (ptrdiff_t q = 0; q < nq; q++) ip[out + q] = best[q];                  \
            }                                                                              \
            for (ptrdiff_t q = 0; q < nq; q++) {                                           \
                const ptrdiff_t lo2 = (q0 + q) * s2 - p2;                                  \
                const ptrdiff_t a2 = lo2 > 0 ? lo2 : 0;                                    \
                const ptrdiff_t b2 = lo2 + k2n < i2n ? lo2 + k2n : i2n;                    \
                T v = m[q];                                                                \
                if (!nan[q] && v < pad_floor                                               \
                        && (b0 - a0) * (b1 - a1) * (b2 - a2) < area)                       \
                    v = pad_floor;                                                         \
                yp[out + q] = nan[q] ? (T)NAN : v;                                         \
            }                                                                              \
        }                                                                                  \
    }                                                                                      \
}

POOL_DEFINE_ROWS(float, f)
POOL_DEFINE_ROWS(double, d)

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC pop_options
#endif

#endif
