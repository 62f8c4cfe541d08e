/* Row loops of the normalization kernels (pyx/_norm.pyx).
 *
 * They live in C for one reason: GCC builds each function for AVX-512 (x86-64-v4),
 * AVX2+FMA (x86-64-v3) and baseline x86-64 (target_clones) and the loader picks one, so a
 * portable build still runs them at the machine's vector width.  Every loop is plain
 * scalar C over unit-stride rows that GCC auto-vectorizes per clone; no -ffast-math:
 * reductions keep explicit partial sums (NRM_W, or eight) combined in a fixed tree, so
 * results are the same on every thread count and every clone (the clones differ only in width of
 * the same independent lanes, never in the summation order).
 *
 * Layout: a channel's data is `no` rows of `ni` contiguous elements, `stride` elements
 * apart (x[o, c, i] of a C-ordered O x C x I block: stride = C*I).
 *
 * Selects (x > 0 ? a : b, NaN tests) become vector blends only without trapping math;
 * the module never reads floating-point exception flags.
 */
#ifndef MLAYERS_NORM_ROWS_H
#define MLAYERS_NORM_ROWS_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include "_stream.h"

#include "_clones.h"
#define NRM_CLONES MLAYERS_CLONES

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize ("no-trapping-math")
#endif

/* exp for x <= 0 (softmax arguments), branch-free so loops calling it vectorize.
   x = n*ln2 + r, |r| <= ln2/2, n by the 1.5*2^k rounding trick, exp(r) by Taylor
   (degree 13 in double: truncation < 1e-17 relative; degree 7 in float: < 1e-8), then
   scaled by 2^n through the exponent bits.  Below the underflow limit the result is 0;
   NaN propagates. */
static inline double nrm_exp_neg_f64(double x) {
    const double shift = 6755399441055744.0;            /* 1.5 * 2^52 */
    const double log2e = 1.4426950408889634;
    const double ln2_hi = 0.6931471803691238, ln2_lo = 1.9082149292705877e-10;
    double xc = x < -708.0 ? -708.0 : x;
    double t = xc * log2e + shift;
    double n = t - shift;
    double r = (xc - n * ln2_hi) - n * ln2_lo;
    double p = 1.0 / 6227020800.0;
    p = p * r + 1.0 / 479001600.0;
    p = p * r + 1.0 / 39916800.0;
    p = p * r + 1.0 / 3628800.0;
    p = p * r + 1.0 / 362880.0;
    p = p * r + 1.0 / 40320.0;
    p = p * r + 1.0 / 5040.0;
    p = p * r + 1.0 / 720.0;
    p = p * r + 1.0 / 120.0;
    p = p * r + 1.0 / 24.0;
    p = p * r + 1.0 / 6.0;
    p = p * r + 0.5;
    p = p * r + 1.0;
    p = p * r + 1.0;
    int64_t tb, sb;
    double s;
    memcpy(&tb, &t, 8);
    sb = (int64_t)((uint64_t)(tb - (int64_t)0x4338000000000000LL + 1023) << 52);
    memcpy(&s, &sb, 8);
    double res = p * s;
    res = x < -708.0 ? 0.0 : res;
    return x != x ? x : res;
}

static inline float nrm_exp_neg_f32(float x) {
    const float shift = 12582912.0f;                     /* 1.5 * 2^23 */
    const float log2e = 1.44269504f;
    const float ln2_hi = 0.693145752f, ln2_lo = 1.42860677e-06f;
    float xc = x < -87.0f ? -87.0f : x;
    float t = xc * log2e + shift;
    float n = t - shift;
    float r = (xc - n * ln2_hi) - n * ln2_lo;
    float p = 1.0f / 5040.0f;
    p = p * r + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    int32_t tb, sb;
    float s;
    memcpy(&tb, &t, 4);
    sb = (int32_t)((uint32_t)(tb - 0x4B400000 + 127) << 23);
    memcpy(&s, &sb, 4);
    float res = p * s;
    res = x < -87.0f ? 0.0f : res;
    return x != x ? x : res;
}

#define NRM_TREE(a) (((a[0] + a[1]) + (a[2] + a[3])) + ((a[4] + a[5]) + (a[6] + a[7])))

/* Long reductions keep NRM_W partial sums (lane k adds elements k, k + NRM_W, ...): 32
   doubles are four AVX-512 (eight AVX2) accumulators, enough independent additions to
   hide their latency (eight, one vector, ran a sum at a third of its throughput).  They
   are combined by halving, a fixed tree, so the result is the same on every clone. */
#define NRM_W 32
/* positions per register block of the column forms' channel sums */
#define NRM_CB 32
/* channels whose batch sums a block keeps at a time (nrm_blk_*) */
#define NRM_CHB 64
static inline double nrm_tree(double *a) {
    for (int w = NRM_W / 2; w > 0; w /= 2)
        for (int k = 0; k < w; k++) a[k] += a[k + w];
    return a[0];
}

#define NRM_DEFINE(T, S)                                                                   \
/* sum over the channel's rows of x, in double */                                          \
NRM_CLONES double nrm_sum_##S(const T *x, ptrdiff_t no, ptrdiff_t stride, ptrdiff_t ni) {  \
    double total = 0;                                                                      \
    for (ptrdiff_t o = 0; o < no; o++) {                                                   \
        const T *p = x + o * stride;                                                       \
        double a[NRM_W] = {0};                                                             \
        ptrdiff_t i = 0;                                                                   \
        for (; i + NRM_W <= ni; i += NRM_W)                                                \
            for (int k = 0; k < NRM_W; k++) a[k] += p[i + k];                              \
        for (; i < ni; i++) a[0] += p[i];                                                  \
        total += nrm_tree(a);                                                              \
    }                                                                                      \
    return total;                                                                          \
}                                                                                          \
/* sum of (x - m)^2 over the channel's rows, in double */                                  \
NRM_CLONES double nrm_sumsq_##S(const T *x, ptrdiff_t no, ptrdiff_t stride, ptrdiff_t ni,  \
                                double m) {                                                \
    double total = 0;                                                                      \
    for (ptrdiff_t o = 0; o < no; o++) {                                                   \
        const T *p = x + o * stride;                                                       \
        double a[NRM_W] = {0};                                                             \
        ptrdiff_t i = 0;                                                                   \
        for (; i + NRM_W <= ni; i += NRM_W)                                                \
            for (int k = 0; k < NRM_W; k++) {                                              \
                double d = (double)p[i + k] - m;                                           \
                a[k] += d * d;                                                             \
            }                                                                              \
        for (; i < ni; i++) {                                                              \
            double d = (double)p[i] - m;                                                   \
            a[0] += d * d;                                                                 \
        }                                                                                  \
        total += nrm_tree(a);                                                              \
    }                                                                                      \
    return total;                                                                          \
}                                                                                          \
/* sum(g) and sum(g .* (x - m)) over the channel's rows, in double (one loop: each g is     \
   loaded and widened once for both sums; as two loops, a sum each, batchnorm's backward   \
   took 1.03-1.15x as long in float32, the same bits); masked                              \
   (a constant, two copies): g where the ReLU output y > 0, else 0 (relu's backward, the   \
   same values, without their array: a batch normalization and its ReLU in training) */    \
static inline __attribute__((always_inline)) void                                          \
nrm_dotdev_body_##S(const T *g, const T *y, const T *x, ptrdiff_t no, ptrdiff_t stride,    \
                    ptrdiff_t ni, double m, double *sg, double *sgx, const int masked) {   \
    double t1 = 0, t2 = 0;                                                                 \
    for (ptrdiff_t o = 0; o < no; o++) {                                                   \
        const T *restrict pg = g + o * stride, *restrict px = x + o * stride;              \
        const T *restrict py = masked ? y + o * stride : pg;                               \
        double a[NRM_W] = {0}, b[NRM_W] = {0};                                             \
        ptrdiff_t i = 0, ie = ni - ni % NRM_W;                                             \
        for (i = 0; i < ie; i += NRM_W)                                                    \
            for (int k = 0; k < NRM_W; k++) {                                              \
                const double ge = masked ? (py[i + k] > 0 ? pg[i + k] : (T)0) : pg[i + k]; \
                a[k] += ge;                                                                \
                b[k] += ge * ((double)px[i + k] - m);                                      \
            }                                                                              \
        for (i = ie; i < ni; i++) {                                                        \
            const T ge = masked ? (py[i] > 0 ? pg[i] : (T)0) : pg[i];                      \
            a[0] += ge;                                                                    \
            b[0] += (double)ge * ((double)px[i] - m);                                      \
        }                                                                                  \
        t1 += nrm_tree(a);                                                                 \
        t2 += nrm_tree(b);                                                                 \
    }                                                                                      \
    *sg = t1;                                                                              \
    *sgx = t2;                                                                             \
}                                                                                          \
NRM_CLONES void nrm_dotdev_##S(const T *g, const T *x, ptrdiff_t no, ptrdiff_t stride,     \
                               ptrdiff_t ni, double m, double *sg, double *sgx) {          \
    nrm_dotdev_body_##S(g, NULL, x, no, stride, ni, m, sg, sgx, 0);                        \
}                                                                                          \
/* y = a*(x - m) + b over the channel's rows (relu's values of it with rect, a constant:   \
   x <= 0 gives +0, NaN kept; a batch normalization and its ReLU in one pass).  The shift  \
   m (the mean) is subtracted before scaling: the folded a*x + (b - a*m) would cancel      \
   |m|/std times more digits when the mean is large against the spread (and the float32 b  \
   would round them).  The double m is split into T parts, m = mh + ml, so that x - mh is  \
   exact for x near the mean (Sterbenz) and float32 data lose nothing to the rounding of   \
   the mean. */                                                                            \
static inline __attribute__((always_inline)) void                                          \
nrm_affine_body_##S(const T *x, T *y, ptrdiff_t no, ptrdiff_t stride, ptrdiff_t ni,        \
                    double m, T a, T b, int stream, const int rect) {                      \
    const T mh = (T)m, ml = (T)(m - (double)mh);                                           \
    for (ptrdiff_t o = 0; o < no; o++) {                                                   \
        const T *restrict px = x + o * stride;                                             \
        STREAM_FOR(T, stream, y + o * stride, ni, i,                                       \
                   rect && ((px[i] - mh) - ml) * a + b <= 0 ? (T)0                         \
                   : ((px[i] - mh) - ml) * a + b);                                         \
    }                                                                                      \
}                                                                                          \
NRM_CLONES void nrm_affine_##S(const T *x, T *y, ptrdiff_t no, ptrdiff_t stride,           \
                               ptrdiff_t ni, double m, T a, T b, int stream) {             \
    nrm_affine_body_##S(x, y, no, stride, ni, m, a, b, stream, 0);                         \
}                                                                                          \
/* y = k*g + a*(x - m) + b over the channel's rows (m: as above; g masked as in            \
   nrm_dotdev_body when masked, a constant) */                                             \
static inline __attribute__((always_inline)) void                                          \
nrm_affine2_body_##S(const T *g, const T *msk, const T *x, T *y, ptrdiff_t no,             \
                     ptrdiff_t stride, ptrdiff_t ni, T k, double m, T a, T b, int stream,  \
                     const int masked) {                                                   \
    const T mh = (T)m, ml = (T)(m - (double)mh);                                           \
    for (ptrdiff_t o = 0; o < no; o++) {                                                   \
        const T *restrict pg = g + o * stride, *restrict px = x + o * stride;              \
        const T *restrict pm = masked ? msk + o * stride : pg;                             \
        STREAM_FOR(T, stream, y + o * stride, ni, i,                                       \
                   k * (masked ? (pm[i] > 0 ? pg[i] : (T)0) : pg[i])                       \
                   + a * ((px[i] - mh) - ml) + b);                                         \
    }                                                                                      \
}                                                                                          \
NRM_CLONES void nrm_affine2_##S(const T *g, const T *x, T *y, ptrdiff_t no,                \
                                ptrdiff_t stride, ptrdiff_t ni, T k, double m, T a, T b,   \
                                int stream) {                                              \
    nrm_affine2_body_##S(g, NULL, x, y, no, stride, ni, k, m, a, b, stream, 0);            \
}                                                                                          \
/* Channel blocks [c0, c1) of an O x C x I block, observation-major: for each o the rows  \
   c0..c1-1 are contiguous, so two or three streams run sequentially through memory     \
   (channel-major order, rows C*I apart, thrashes the caches when two arrays are read). \
   Each channel still sums its rows in o order with the per-row tree: the same numbers  \
   as the per-channel functions above, whatever the blocks. */                          \
/* The channel sums of a block of channels [c0, c1) accumulate in a local array, each      \
   channel's rows in observation order, up to NRM_CHB channels at a time, and are stored  \
   once: the statistics of neighbouring blocks share cache lines, and sums kept in them   \
   (stored after every row) bounced those lines between the threads of two blocks, which \
   made 2 threads slower than one on small planes (7 x 7 x 32 x 128: 0.30 -> 0.32 ms).   \
   The rows are still read observation by observation (a block's channels of one         \
   observation are contiguous): channel by channel, 56 x 56 x 64 x 32 took 1.5x longer. */ \
NRM_CLONES void nrm_blk_mean_##S(const T *x, ptrdiff_t no, ptrdiff_t nc, ptrdiff_t ni,     \
                                 ptrdiff_t c0, ptrdiff_t c1, double *mean) {               \
    for (ptrdiff_t b0 = c0; b0 < c1; b0 += NRM_CHB) {                                      \
        const ptrdiff_t b1 = b0 + NRM_CHB < c1 ? b0 + NRM_CHB : c1;                        \
        double t[NRM_CHB] = {0};                                                           \
        for (ptrdiff_t o = 0; o < no; o++)                                                 \
            for (ptrdiff_t c = b0; c < b1; c++)                                            \
                t[c - b0] += nrm_sum_##S(x + (o * nc + c) * ni, 1, ni, ni);                \
        for (ptrdiff_t c = b0; c < b1; c++) mean[c] = t[c - b0] / (double)(no * ni);       \
    }                                                                                      \
}                                                                                          \
NRM_CLONES void nrm_blk_var_##S(const T *x, ptrdiff_t no, ptrdiff_t nc, ptrdiff_t ni,      \
                                ptrdiff_t c0, ptrdiff_t c1, const double *mean,            \
                                double *var) {                                             \
    for (ptrdiff_t b0 = c0; b0 < c1; b0 += NRM_CHB) {                                      \
        const ptrdiff_t b1 = b0 + NRM_CHB < c1 ? b0 + NRM_CHB : c1;                        \
        double t[NRM_CHB] = {0};                                                           \
        for (ptrdiff_t o = 0; o < no; o++)                                                 \
            for (ptrdiff_t c = b0; c < b1; c++)                                            \
                t[c - b0] += nrm_sumsq_##S(x + (o * nc + c) * ni, 1, ni, ni, mean[c]);     \
        for (ptrdiff_t c = b0; c < b1; c++) var[c] = t[c - b0] / (double)(no * ni);        \
    }                                                                                      \
}                                                                                          \
/* (msk, when not NULL: g masked by a ReLU's output, nrm_dotdev_body; dx, when not NULL:  \
   dx = a[c]*g as well, while the row is in L1 - batchnorm inference's backward in one   \
   sweep) */                                                                              \
NRM_CLONES void nrm_blk_dot_##S(const T *g, const T *x, ptrdiff_t no, ptrdiff_t nc,        \
                                ptrdiff_t ni, ptrdiff_t c0, ptrdiff_t c1,                  \
                                const double *mean, double *sg, double *sgx,               \
                                const T *msk, T *dx, const double *a, int stream) {       \
    for (ptrdiff_t b0 = c0; b0 < c1; b0 += NRM_CHB) {                                      \
        const ptrdiff_t b1 = b0 + NRM_CHB < c1 ? b0 + NRM_CHB : c1;                        \
        double t1[NRM_CHB] = {0}, t2[NRM_CHB] = {0};                                       \
        for (ptrdiff_t o = 0; o < no; o++)                                                 \
            for (ptrdiff_t c = b0; c < b1; c++) {                                          \
                double u, v;                                                               \
                ptrdiff_t off = (o * nc + c) * ni;                                         \
                if (msk)                                                                   \
                    nrm_dotdev_body_##S(g + off, msk + off, x + off, 1, ni, ni, mean[c],   \
                                        &u, &v, 1);                                        \
                else                                                                       \
                    nrm_dotdev_body_##S(g + off, NULL, x + off, 1, ni, ni, mean[c], &u,    \
                                        &v, 0);                                            \
                t1[c - b0] += u;                                                           \
                t2[c - b0] += v;                                                           \
                if (dx)                                                                    \
                    nrm_affine_##S(g + off, dx + off, 1, ni, ni, 0.0, (T)a[c], (T)0,       \
                                   stream);                                                \
            }                                                                              \
        for (ptrdiff_t c = b0; c < b1; c++) { sg[c] = t1[c - b0]; sgx[c] = t2[c - b0]; }   \
    }                                                                                      \
}                                                                                          \
/* (rect: relu's values of the results, nrm_affine_body) */                                \
NRM_CLONES void nrm_blk_affine_##S(const T *x, T *y, ptrdiff_t no, ptrdiff_t nc,           \
                                   ptrdiff_t ni, ptrdiff_t c0, ptrdiff_t c1,               \
                                   const double *m, const double *a, const double *b,     \
                                   int stream, int rect) {                                 \
    for (ptrdiff_t o = 0; o < no; o++)                                                     \
        for (ptrdiff_t c = c0; c < c1; c++) {                                              \
            ptrdiff_t off = (o * nc + c) * ni;                                             \
            if (rect)                                                                      \
                nrm_affine_body_##S(x + off, y + off, 1, ni, ni, m[c], (T)a[c], (T)b[c],   \
                                    stream, 1);                                            \
            else                                                                           \
                nrm_affine_body_##S(x + off, y + off, 1, ni, ni, m[c], (T)a[c], (T)b[c],   \
                                    stream, 0);                                            \
        }                                                                                  \
}                                                                                          \
NRM_CLONES void nrm_blk_affine2_##S(const T *g, const T *x, T *y, ptrdiff_t no,            \
                                    ptrdiff_t nc, ptrdiff_t ni, ptrdiff_t c0, ptrdiff_t c1, \
                                    const double *k, const double *m, const double *a,     \
                                    const double *b, int stream, const T *msk) {           \
    for (ptrdiff_t o = 0; o < no; o++)                                                     \
        for (ptrdiff_t c = c0; c < c1; c++) {                                              \
            ptrdiff_t off = (o * nc + c) * ni;                                             \
            if (msk)                                                                       \
                nrm_affine2_body_##S(g + off, msk + off, x + off, y + off, 1, ni, ni,      \
                                     (T)k[c], m[c], (T)a[c], (T)b[c], stream, 1);          \
            else                                                                           \
                nrm_affine2_body_##S(g + off, NULL, x + off, y + off, 1, ni, ni, (T)k[c],  \
                                     m[c], (T)a[c], (T)b[c], stream, 0);                   \
        }                                                                                  \
}                                                                                          \
/* softmax over the nc rows (ni apart) of one observation; sm, mx: ni scratch each */      \
NRM_CLONES void nrm_softmax_##S(const T *x, T *y, double *sm, T *mx, ptrdiff_t nc,         \
                                ptrdiff_t ni) {                                            \
    for (ptrdiff_t i = 0; i < ni; i++) { mx[i] = x[i]; sm[i] = 0; }                        \
    for (ptrdiff_t c = 1; c < nc; c++) {                                                   \
        const T *xr = x + c * ni;                                                          \
        for (ptrdiff_t i = 0; i < ni; i++) {                                               \
            T v = xr[i], m = mx[i];                                                        \
            mx[i] = (v > m) | (v != v) ? v : m;                                            \
        }                                                                                  \
    }                                                                                      \
    for (ptrdiff_t c = 0; c < nc; c++) {                                                   \
        const T *xr = x + c * ni;                                                          \
        T *yr = y + c * ni;                                                                \
        for (ptrdiff_t i = 0; i < ni; i++) {                                               \
            T e = nrm_exp_neg_##S(xr[i] - mx[i]);                                          \
            yr[i] = e;                                                                     \
            sm[i] += e;                                                                    \
        }                                                                                  \
    }                                                                                      \
    for (ptrdiff_t i = 0; i < ni; i++) mx[i] = (T)(1.0 / sm[i]);                           \
    for (ptrdiff_t c = 0; c < nc; c++) {                                                   \
        T *yr = y + c * ni;                                                                \
        for (ptrdiff_t i = 0; i < ni; i++) yr[i] *= mx[i];                                 \
    }                                                                                      \
}                                                                                          \
/* dx = y .* (g - sum_c(g .* y)) for one observation; sm: ni scratch */                    \
NRM_CLONES void nrm_softmax_back_##S(const T *y, const T *g, T *dx, double *sm,            \
                                     ptrdiff_t nc, ptrdiff_t ni) {                         \
    for (ptrdiff_t i = 0; i < ni; i++) sm[i] = 0;                                          \
    for (ptrdiff_t c = 0; c < nc; c++) {                                                   \
        const T *yr = y + c * ni, *gr = g + c * ni;                                        \
        for (ptrdiff_t i = 0; i < ni; i++) sm[i] += (double)gr[i] * yr[i];                 \
    }                                                                                      \
    for (ptrdiff_t c = 0; c < nc; c++) {                                                   \
        const T *yr = y + c * ni, *gr = g + c * ni;                                        \
        T *dr = dx + c * ni;                                                               \
        for (ptrdiff_t i = 0; i < ni; i++) dr[i] = (T)(yr[i] * (gr[i] - sm[i]));           \
    }                                                                                      \
}                                                                                          \
/* Normalization over C alone per position (layer normalization "channel-only"): an     \
   O x C x I block, statistics per (o, i) over the C values x[o, :, i] in double.         \
   Rows (I = 1, a Fortran C x B x T array): each position's C values are contiguous;    \
   the sums are nrm_sum/nrm_sumsq's (NRM_W partial sums, fixed tree).  Columns (I > 1):\
   the C rows of one o are added lane by lane in c order (vectorized over i).           \
   y = a*(x - m) + offset[c], a = scale[c]*invstd, m split in two T parts as above.   */ \
NRM_CLONES void nrm_cnorm_rows_##S(const T *x, T *y, ptrdiff_t no, ptrdiff_t nc,           \
                                   const double *off, const double *scale, double eps,     \
                                   double *mean, double *invstd) {                         \
    for (ptrdiff_t o = 0; o < no; o++) {                                                   \
        const T *restrict px = x + o * nc;                                                 \
        T *restrict py = y + o * nc;                                                       \
        double m = nrm_sum_##S(px, 1, nc, nc) / (double)nc;                                \
        double r = 1.0 / sqrt(nrm_sumsq_##S(px, 1, nc, nc, m) / (double)nc + eps);         \
        const T mh = (T)m, ml = (T)(m - (double)mh);                                       \
        mean[o] = m;                                                                       \
        invstd[o] = r;                                                                     \
        for (ptrdiff_t c = 0; c < nc; c++)                                                 \
            py[c] = ((px[c] - mh) - ml) * (T)(scale[c] * r) + (T)off[c];                   \
    }                                                                                      \
}                                                                                          \
/* one o of the column form; mean, invstd: ni each (filled); mh, ml: ni T scratch */      \
NRM_CLONES void nrm_cnorm_cols_##S(const T *x, T *y, ptrdiff_t nc, ptrdiff_t ni,           \
                                   const double *off, const double *scale, double eps,     \
                                   double *mean, double *invstd, T *mh, T *ml) {           \
    /* Blocks of NRM_CB positions, each through all three passes while its C rows are in  \
       L1, its sums and statistics in registers; then the last positions with whole-row   \
       loops.  Every value is the same expression on the same terms in the same c order. */\
    ptrdiff_t i0 = 0;                                                                      \
    for (; i0 + NRM_CB <= ni; i0 += NRM_CB) {                                              \
        double s[NRM_CB] = {0}, q[NRM_CB] = {0};                                           \
        T h[NRM_CB], l[NRM_CB];                                                            \
        for (ptrdiff_t c = 0; c < nc; c++)                                                 \
            for (int k = 0; k < NRM_CB; k++) s[k] += x[c * ni + i0 + k];                   \
        for (int k = 0; k < NRM_CB; k++) s[k] /= (double)nc;                               \
        for (ptrdiff_t c = 0; c < nc; c++)                                                 \
            for (int k = 0; k < NRM_CB; k++) {                                             \
                double d = (double)x[c * ni + i0 + k] - s[k];                              \
                q[k] += d * d;                                                             \
            }                                                                              \
        for (int k = 0; k < NRM_CB; k++) {                                                 \
            q[k] = 1.0 / sqrt(q[k] / (double)nc + eps);                                    \
            h[k] = (T)s[k];                                                                \
            l[k] = (T)(s[k] - (double)h[k]);                                               \
            mean[i0 + k] = s[k];                                                           \
            invstd[i0 + k] = q[k];                                                         \
        }                                                                                  \
        for (ptrdiff_t c = 0; c < nc; c++) {                                               \
            const T *restrict xr = x + c * ni + i0;                                        \
            T *restrict yr = y + c * ni + i0;                                              \
            const double sc = scale[c];                                                    \
            const T b = (T)off[c];                                                         \
            for (int k = 0; k < NRM_CB; k++)                                               \
                yr[k] = ((xr[k] - h[k]) - l[k]) * (T)(sc * q[k]) + b;                      \
        }                                                                                  \
    }                                                                                      \
    if (i0 == ni)                                                                          \
        return;                                                                            \
    for (ptrdiff_t i = i0; i < ni; i++) { mean[i] = 0; invstd[i] = 0; }                    \
    for (ptrdiff_t c = 0; c < nc; c++) {                                                   \
        const T *xr = x + c * ni;                                                          \
        for (ptrdiff_t i = i0; i < ni; i++) mean[i] += xr[i];                              \
    }                                                                                      \
    for (ptrdiff_t i = i0; i < ni; i++) mean[i] /= (double)nc;                             \
    for (ptrdiff_t c = 0; c < nc; c++) {                                                   \
        const T *xr = x + c * ni;                                                          \
        for (ptrdiff_t i = i0; i < ni; i++) {                                              \
            double d = (double)xr[i] - mean[i];                                            \
            invstd[i] += d * d;                                                            \
        }                                                                                  \
    }                                                                                      \
    for (ptrdiff_t i = i0; i < ni; i++) {                                                  \
        invstd[i] = 1.0 / sqrt(invstd[i] / (double)nc + eps);                              \
        mh[i] = (T)mean[i];                                                                \
        ml[i] = (T)(mean[i] - (double)mh[i]);                                              \
    }                                                                                      \
    for (ptrdiff_t c = 0; c < nc; c++) {                                                   \
        const T *restrict xr = x + c * ni;                                                 \
        T *restrict yr = y + c * ni;                                                       \
        const double sc = scale[c];                                                        \
        const T b = (T)off[c];                                                             \
        for (ptrdiff_t i = i0; i < ni; i++)                                                \
            yr[i] = ((xr[i] - mh[i]) - ml[i]) * (T)(sc * invstd[i]) + b;                   \
    }                                                                                      \
}                                                                                          \
/* Backward of the row form for positions [o0, o1): dx, and per channel sum(dy) and     \
   sum(dy .* (x - m))*invstd added (in o order) to sg[c], sgx[c]. */                      \
NRM_CLONES void nrm_cnorm_rows_back_##S(const T *x, const T *g, T *dx, ptrdiff_t o0,       \
                                        ptrdiff_t o1, ptrdiff_t nc, const double *mean,    \
                                        const double *invstd, const double *scale,         \
                                        double *sg, double *sgx) {                         \
    for (ptrdiff_t o = o0; o < o1; o++) {                                                  \
        const T *restrict px = x + o * nc, *restrict pg = g + o * nc;                      \
        T *restrict pd = dx + o * nc;                                                      \
        const double m = mean[o], r = invstd[o];                                           \
        double a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, b[8] = {0, 0, 0, 0, 0, 0, 0, 0};          \
        ptrdiff_t c, ce = nc - nc % 8;                                                     \
        for (c = 0; c < ce; c += 8)                                                        \
            for (int k = 0; k < 8; k++) {                                                  \
                double gv = pg[c + k], d = (double)px[c + k] - m;                          \
                a[k] += scale[c + k] * gv;                                                 \
                b[k] += scale[c + k] * gv * d;                                             \
                sg[c + k] += gv;                                                           \
                sgx[c + k] += gv * d * r;                                                  \
            }                                                                              \
        for (c = ce; c < nc; c++) {                                                        \
            double gv = pg[c], d = (double)px[c] - m;                                      \
            a[0] += scale[c] * gv;                                                         \
            b[0] += scale[c] * gv * d;                                                     \
            sg[c] += gv;                                                                   \
            sgx[c] += gv * d * r;                                                          \
        }                                                                                  \
        const double A = NRM_TREE(a) / (double)nc, B = NRM_TREE(b) * r / (double)nc;       \
        const T mh = (T)m, ml = (T)(m - (double)mh);                                       \
        const T ta = (T)(-r * r * B), tb = (T)(-r * A);                                    \
        for (c = 0; c < nc; c++)                                                           \
            pd[c] = (T)(r * scale[c]) * pg[c] + ta * ((px[c] - mh) - ml) + tb;             \
    }                                                                                      \
}                                                                                          \
/* Backward of the column form for one o: sg[c], sgx[c] = sums over i (set, not added); \
   sa, sb: ni double scratch; mh, ml: ni T scratch */                                     \
NRM_CLONES void nrm_cnorm_cols_back_##S(const T *x, const T *g, T *dx, ptrdiff_t nc,       \
                                        ptrdiff_t ni, const double *restrict mean,         \
                                        const double *restrict invstd,                     \
                                        const double *scale, double *sg, double *sgx,      \
                                        double *restrict sa, double *restrict sb,          \
                                        T *mh, T *ml) {                                    \
    for (ptrdiff_t i = 0; i < ni; i++) { sa[i] = 0; sb[i] = 0; }                           \
    for (ptrdiff_t c = 0; c < nc; c++) {                                                   \
        const T *restrict xr = x + c * ni, *restrict gr = g + c * ni;                      \
        const double sc = scale[c];                                                        \
        double t1[8] = {0, 0, 0, 0, 0, 0, 0, 0}, t2[8] = {0, 0, 0, 0, 0, 0, 0, 0};        \
        ptrdiff_t i, ie = ni - ni % 8;                                                     \
        for (i = 0; i < ie; i += 8)                                                        \
            for (int k = 0; k < 8; k++) {                                                  \
                double gv = gr[i + k], d = (double)xr[i + k] - mean[i + k];                \
                sa[i + k] += sc * gv;                                                      \
                sb[i + k] += sc * gv * d;                                                  \
                t1[k] += gv;                                                               \
                t2[k] += gv * d * invstd[i + k];                                           \
            }                                                                              \
        for (i = ie; i < ni; i++) {                                                        \
            double gv = gr[i], d = (double)xr[i] - mean[i];                                \
            sa[i] += sc * gv;                                                              \
            sb[i] += sc * gv * d;                                                          \
            t1[0] += gv;                                                                   \
            t2[0] += gv * d * invstd[i];                                                   \
        }                                                                                  \
        sg[c] = NRM_TREE(t1);                                                              \
        sgx[c] = NRM_TREE(t2);                                                             \
    }                                                                                      \
    for (ptrdiff_t i = 0; i < ni; i++) {                                                   \
        const double r = invstd[i];                                                        \
        const double A = sa[i] / (double)nc, B = sb[i] * r / (double)nc;                   \
        mh[i] = (T)mean[i];                                                                \
        ml[i] = (T)(mean[i] - (double)mh[i]);                                              \
        sa[i] = -r * r * B;                                                                \
        sb[i] = -r * A;                                                                    \
    }                                                                                      \
    for (ptrdiff_t c = 0; c < nc; c++) {                                                   \
        const T *restrict xr = x + c * ni, *restrict gr = g + c * ni;                      \
        T *restrict dr = dx + c * ni;                                                      \
        const double sc = scale[c];                                                        \
        for (ptrdiff_t i = 0; i < ni; i++)                                                 \
            dr[i] = (T)(invstd[i] * sc) * gr[i] + (T)sa[i] * ((xr[i] - mh[i]) - ml[i])     \
                    + (T)sb[i];                                                            \
    }                                                                                      \
}                                                                                          \
/* relu forward (NaN kept: x <= 0 is false for NaN) and backward over n elements */       \
NRM_CLONES void nrm_relu_##S(const T *x, T *y, ptrdiff_t n, int stream) {                  \
    STREAM_FOR(T, stream, y, n, i, x[i] <= 0 ? (T)0 : x[i]);                               \
}                                                                                          \
NRM_CLONES void nrm_relu_back_##S(const T *x, const T *g, T *dx, ptrdiff_t n, int stream) {\
    STREAM_FOR(T, stream, dx, n, i, x[i] > 0 ? g[i] : (T)0);                               \
}                                                                                          \
/* y = a + b, rectified as relu when asked (one pass: a residual sum and its ReLU) */      \
NRM_CLONES void nrm_add_##S(const T *a, const T *b, T *y, ptrdiff_t n, int rect,           \
                            int stream) {                                                  \
    if (rect)                                                                              \
        STREAM_FOR(T, stream, y, n, i, a[i] + b[i] <= 0 ? (T)0 : a[i] + b[i]);             \
    else                                                                                   \
        STREAM_FOR(T, stream, y, n, i, a[i] + b[i]);                                       \
}

NRM_DEFINE(float, f32)
NRM_DEFINE(double, f64)

/* float32 statistics in one pass: the sums of d and d^2, d = x - s in double, over n
 * contiguous elements.  d and d^2 round at most once each at double precision (exactly
 * for values of similar magnitude), so the error is the sums' (NRM_W partial sums each,
 * combined by the fixed tree); the caller checks that the mean of d is small beside the
 * spread (s is one of the values) and otherwise takes the two-pass sums.
 *
 * nrm_sum2_part adds the elements [i0, i1) of such a group (n long) to the partial sums a,
 * b: element i to lane i % NRM_W, or to lane 0 among the last n % NRM_W.  Each lane adds
 * its elements in order whatever the parts, so the sums of a group taken in parts (the
 * rows of nrm_affine_sum2_f32) have the bits of the whole. */
static inline __attribute__((always_inline)) void
nrm_sum2_part(const float *restrict x, ptrdiff_t i0, ptrdiff_t i1, ptrdiff_t n, double s,
              double *restrict a, double *restrict b)
{
    ptrdiff_t ie = n - n % NRM_W, i = i0;
    /* (the part of a lane block first and last: a run of lanes, which vectorizes) */
    while (i < i1 && i < ie) {
        ptrdiff_t base = i - i % NRM_W, k0 = i - base;
        ptrdiff_t k1 = (i1 < base + NRM_W ? i1 : base + NRM_W) - base;
        for (ptrdiff_t k = k0; k < k1; k++) {
            double d = (double)x[base + k] - s;
            a[k] += d;
            b[k] += d * d;
        }
        i = base + k1;
        for (; i + NRM_W <= i1 && i < ie; i += NRM_W)
            for (int k = 0; k < NRM_W; k++) {
                double d = (double)x[i + k] - s;
                a[k] += d;
                b[k] += d * d;
            }
    }
    for (; i < i1; i++) {
        double d = (double)x[i] - s;
        a[0] += d;
        b[0] += d * d;
    }
}

NRM_CLONES void nrm_sum2_f32(const float *x, ptrdiff_t n, double s, double *sd, double *sdd)
{
    double a[NRM_W] = {0}, b[NRM_W] = {0};
    ptrdiff_t i = 0;
    /* (nrm_sum2_part's sums in its own loop: for whole groups the parts' loop was 2-8 %
       slower, rows of 49 to 784) */
    for (; i + NRM_W <= n; i += NRM_W)
        for (int k = 0; k < NRM_W; k++) {
            double d = (double)x[i + k] - s;
            a[k] += d;
            b[k] += d * d;
        }
    for (; i < n; i++) {
        double d = (double)x[i] - s;
        a[0] += d;
        b[0] += d * d;
    }
    *sd = nrm_tree(a);
    *sdd = nrm_tree(b);
}

/* One row of a group normalization's result, y[0, ni) = a*(x - m) + b (nrm_affine_f32's
 * values), while nrm_sum2_part adds the next group's elements [p, p + ni) (nx, n long,
 * shift s; none when nx is NULL) to its partial sums sa, sb: the next group's statistics
 * are read from memory while this group's result is written, where two passes over the
 * data left the statistics' reads and the result's writes each waiting on memory in turn
 * (1.1-1.6x on 56 x 56 x 64 x 32, 1-64 groups, 1 thread).  The whole lane blocks of the
 * row take both in one loop; the elements before and after them, the two loops of the
 * parts. */
NRM_CLONES void nrm_affine_sum2_f32(const float *restrict x, float *restrict y, ptrdiff_t ni,
                                    double m, float a, float b, const float *restrict nx,
                                    ptrdiff_t p, ptrdiff_t n, double s,
                                    double *restrict sa, double *restrict sb)
{
    if (nx == NULL) {                   /* (the last group of a run) */
        nrm_affine_body_f32(x, y, 1, 0, ni, m, a, b, 0, 0);
        return;
    }
    ptrdiff_t ie = n - n % NRM_W;
    ptrdiff_t q0 = (p + NRM_W - 1) / NRM_W * NRM_W, q1 = (p + ni) / NRM_W * NRM_W;
    if (q1 > ie) q1 = ie;
    if (q1 < q0) q0 = q1 = p;           /* (no whole block: all in parts) */
    nrm_affine_body_f32(x, y, 1, 0, q0 - p, m, a, b, 0, 0);
    nrm_sum2_part(nx, p, q0, n, s, sa, sb);
    const float mh = (float)m, ml = (float)(m - (double)mh);
    for (ptrdiff_t i = q0; i < q1; i += NRM_W) {
        const float *restrict xi = x + (i - p), *restrict ni_ = nx + i;
        float *restrict yi = y + (i - p);
        for (int k = 0; k < NRM_W; k++) {
            double d = (double)ni_[k] - s;
            sa[k] += d;
            sb[k] += d * d;
            yi[k] = ((xi[k] - mh) - ml) * a + b;
        }
    }
    nrm_affine_body_f32(x + (q1 - p), y + (q1 - p), 1, 0, p + ni - q1, m, a, b, 0, 0);
    nrm_sum2_part(nx, q1, p + ni, n, s, sa, sb);
}

#endif
