/* Elementwise activations of pyx/_act.pyx: one pass per forward and per backward over a
 * contiguous run of n elements, float32 and float64.
 *
 * float32 uses the branch-free exponential, tanh and sigmoid of _rnn_simd.h (Cephes-based,
 * within ~2 ulp) plus, here, the normal distribution Phi(x) = (1 + erf(x/sqrt(2)))/2 and
 * its density (one rational formula, relative accuracy in GELU's negative tail too), expm1
 * for x <= 0 (Taylor polynomial below |x| = 0.35, exp(x) - 1 above) and log1p on [0, 1] (Cephes' logf of w = 1 + u, corrected as
 * log(w) * u / (w - 1)); every loop is selects only, so GCC vectorizes it, built for
 * AVX-512, x86-64-v3 and baseline (target_clones, picked at load time).  float64 calls libm.
 *
 * The formulas are the package's (mlayers/functional/activations.py): NaN propagates as in
 * the NumPy expressions they replace, including 0*Inf = NaN where those give it.
 */
#ifndef MLAYERS_ACT_ROWS_H
#define MLAYERS_ACT_ROWS_H
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
/* FP exception flags are never read here: without trapping-math GCC may evaluate both arms
 * of a select (a division included) and so vectorize the branch-free loops (values are
 * unchanged: this only drops the assumption that a raised flag is observable) */
#pragma GCC push_options
#pragma GCC optimize ("no-trapping-math")
#include "_rnn_simd.h"
#include "_stream.h"

enum { ACT_LEAKY = 0, ACT_CLIPPED = 1, ACT_ELU = 2, ACT_GELU = 3, ACT_GELU_TANH = 4,
       ACT_SIGMOID = 5, ACT_SWISH = 6, ACT_SOFTPLUS = 7 };

#define ACT_SQRT_2_PI 0.79788456080286535588      /* sqrt(2/pi) */
#define ACT_INV_SQRT_2PI 0.39894228040143267794   /* 1/sqrt(2*pi) */

/* expm1 for x <= 0 (NaN kept) */
static inline float act_expm1f(float x)
{
    float p = 1.0f / 5040.0f;
    p = p * x + 1.0f / 720.0f;
    p = p * x + 1.0f / 120.0f;
    p = p * x + 1.0f / 24.0f;
    p = p * x + 1.0f / 6.0f;
    p = p * x + 0.5f;
    float small = x + x * x * p;
    float big = rnn_expf(x) - 1.0f;
    float y = x > -0.35f ? small : big;
    return x != x ? x : y;
}

/* The normal distribution Phi(x) = (1 + erf(x/sqrt(2)))/2 and its density
 * pdf(x) = exp(-x^2/2)/sqrt(2 pi) of float x, one formula for every x (NaN propagates).
 *
 * For |x| <= 13.2: erfc(|x|/sqrt(2))/2 = exp(-x^2/2) N(|x|)/D(|x|), N/D a (4, 5) rational
 * fitted in float64 (linearized relative least squares, reweighted towards minimax) to
 * erfcx(|x|/sqrt(2))/2 within relative 5e-9.  Its coefficients are all positive, so the
 * float32 Horner sums do not cancel (within 4 ulp).  So the negative tail, where
 * Phi = erfc/2, keeps its relative accuracy without a second arm, and 1 - erfc/2 near 0
 * has only erfc's absolute error.
 * exp(-x^2/2): |x| = ah + al with ah its top 12 bits (ah^2 exact), x^2 = ah^2 + al (|x| + ah)
 * with only the small second part rounded; exp(-x^2/2) = 2^n P(s)/c, s = ah^2 + 2 n ln2
 * + al (|x| + ah) (ln2 in two parts, Cody-Waite: the first step exact), P(s)/c =
 * exp(-s/2) a degree-6 polynomial fitted on s in [-0.694, 0.8] (relative 4e-9), 2^n added
 * to the exponent bits.  So the rounding of x^2 is not amplified by the steep tail.
 * P and D are kept monic (their first Horner step an addition; the constants c, D's
 * leading coefficient and 1/sqrt(2 pi) moved into N and the pdf factor): the loop is bound
 * by multiply-adds, about 20 and one division per element.  The float32 coefficients were
 * then nudged by a few ulps each (coordinate search) to the smallest maximum relative
 * error with float64 arithmetic: Phi's tail 3e-8, pdf 5e-8.  Measured against SciPy, GELU
 * x Phi(x) is within 6.3 ulp (every float of |x| in [0, 2] and [6, 13.3], every 16th
 * elsewhere; the previous two-arm Cephes form: 12.3 on every 16th float).
 * Above |x| = 13.15 (erfc < 2^-129) pdf and erfc are 0, so x*pdf at Inf is NaN as in
 * NumPy's formula; below, 2^n P(s) is a normal number. */
static inline float act_normcdf_pdff(float x, float *pdf)
{
    float ax = fabsf(x);
    float axc = ax > 13.2f ? 13.2f : ax;
    int32_t ab;
    memcpy(&ab, &axc, 4);
    ab &= (int32_t)0xFFFFF000;
    float ah;
    memcpy(&ah, &ab, 4);
    float al = axc - ah;
    float hh = ah * ah;
    const float magic = 12582912.0f;                /* 1.5 * 2^23: round to integer */
    float tt = hh * -0.72134752044448170f + magic;  /* -log2(e)/2 */
    float n = tt - magic;
    int32_t bits;
    memcpy(&bits, &tt, 4);
    float s = hh + n * 1.38671875f;                 /* 2 ln2, high part: exact */
    s = s + n * -4.24388880e-4f;
    s = s + al * (axc + ah);
    float p = s - 1.242361164e+01f;
    p = p * s + 1.236400986e+02f;
    p = p * s - 9.889332886e+02f;
    p = p * s + 5.933676270e+03f;
    p = p * s - 2.373472070e+04f;
    p = p * s + 4.746944141e+04f;
    int32_t pb;
    memcpy(&pb, &p, 4);
    pb += bits << 23;                               /* p 2^n: n << 23 is tt's bits << 23 */
    float e;
    memcpy(&e, &pb, 4);
    e = ax > 13.15f ? 0.0f : e;
    float num = 8.404313121e-06f;
    num = num * axc + 8.365149552e-05f;
    num = num * axc + 3.795245138e-04f;
    num = num * axc + 9.124290664e-04f;
    num = num * axc + 1.047736383e-03f;
    float den = axc + 9.954287529e+00f;
    den = den * axc + 4.614236069e+01f;
    den = den * axc + 1.187377014e+02f;
    den = den * axc + 1.659913330e+02f;
    den = den * axc + 9.947092438e+01f;
    float h = e * (num / den);
    *pdf = e * 8.404191249e-06f;                    /* c / sqrt(2 pi) */
    return x < 0 ? h : 1.0f - h;
}

static inline float act_normcdff(float x)
{
    float pdf;
    return act_normcdf_pdff(x, &pdf);
}

/* d/dx of x Phi(x) */
static inline float act_gelu_df(float x)
{
    float pdf;
    float phi = act_normcdf_pdff(x, &pdf);
    return phi + x * pdf;
}

/* float64: libm, the tail as erfc */
static inline double act_normcdf(double x)
{
    double z = x / 1.41421356237309504880;     /* as NumPy's x / np.sqrt(2) */
    return 0.5 * (z < -1.0 ? erfc(-z) : 1.0 + erf(z));
}

static inline double act_gelu_d(double x)
{
    return act_normcdf(x) + x * exp(-0.5 * x * x) * ACT_INV_SQRT_2PI;
}

/* log1p(u) for u in [0, 1] (NaN kept) */
static inline float act_log1pf(float u)
{
    float w = 1.0f + u;
    int32_t bits;
    memcpy(&bits, &w, 4);
    float e = (float)((bits >> 23) - 126);
    int32_t mb = (bits & 0x007FFFFF) | 0x3F000000;
    float m;
    memcpy(&m, &mb, 4);                         /* w = m * 2^e, m in [0.5, 1) */
    int lowm = m < 0.707106781186547524f;
    e = lowm ? e - 1.0f : e;
    float t = lowm ? m + m - 1.0f : m - 1.0f;
    float z = t * t;
    float y = 7.0376836292E-2f;
    y = y * t - 1.1514610310E-1f;
    y = y * t + 1.1676998740E-1f;
    y = y * t - 1.2420140846E-1f;
    y = y * t + 1.4249322787E-1f;
    y = y * t - 1.6668057665E-1f;
    y = y * t + 2.0000714765E-1f;
    y = y * t - 2.4999993993E-1f;
    y = y * t + 3.3333331174E-1f;
    y = y * t * z;
    y += -2.12194440e-4f * e;
    y += -0.5f * z;
    float lw = t + y;
    lw += 0.693359375f * e;
    float d = w - 1.0f;
    float r = d == 0.0f ? u : lw * (u / d);
    return u != u ? u : r;
}

/* sigmoid with exact 0 far below (so x * sigmoid(x) at -Inf is NaN, as NumPy's); the
 * integer-clamped form of _rnn_simd.h (rnn_sigmoidf's values bit for bit, fewer cycles) */
static inline float act_sigmoidf(float x)
{
    float s = rnn_sigmoid2f(x);
    return x < -104.0f ? 0.0f : s;
}

static inline double act_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* ----------------------------------------------------------------- drivers
 * Every element goes through the same code: the loops run in blocks of ACT_B elements (a
 * fixed-count inner loop, vectorized whole), and the last partial block is copied into a
 * padded local block and run through the same loop.  So a value does not depend on its
 * position in memory (layout, chunk, thread count) even where the compiler contracts
 * multiply-adds differently in vector and scalar code.  The output never overlaps an input
 * (restrict): without it GCC checks the overlap per block and reloads every constant in the
 * target_clones builds (gelu ~10% slower). */
#define ACT_B 16

/* The plain path asks for the lines of its inputs and result STREAM_AHEAD bytes ahead
 * (_stream.h's STREAM_PREFETCH): a store that misses waits for its line, and the hardware
 * prefetchers did not run far enough ahead (GELU's forward over 6.4 M floats, 1 / 2
 * threads: prefetching x alone 1.04-1.07x, x and y 1.18-1.19x).  The bodies that compute
 * for long ask with each block (PF 1), spread among their operations: asked in chunks of
 * 1 KiB, GELU gained nothing.  The cheap bodies, which only move memory, ask once per
 * STREAM_CHUNK bytes in a loop of their own (PF 0, ACT_*_PLAIN): asked inside a block, GCC
 * stopped vectorizing their selects (leaky ReLU 3-16x slower); in chunks the leaky ReLU
 * gained 1.45-1.9x and the clipped ReLU's and ELU's backward 1.2-1.5x (1 thread). */
#define ACT_PREFETCH(T, P, I) STREAM_PREFETCH((P) + (I), ACT_B * sizeof(T))

/* y[0, n) = f(x[0, n)) in ACT_B blocks, the last one padded (IN, OUT: prefetch x, y) */
#define ACT_FWD_RUN(T, BODY, X, Y, N, IN, OUT)                                          \
    do {                                                                                \
        const T *restrict ar_x = (X);                                                   \
        T *restrict ar_y = (Y);                                                         \
        ptrdiff_t ar_n = (N), ar_nb = ar_n - ar_n % ACT_B;                              \
        for (ptrdiff_t i = 0; i < ar_nb; i += ACT_B) {                                  \
            if (IN) ACT_PREFETCH(T, ar_x, i);                                           \
            if (OUT) ACT_PREFETCH(T, ar_y, i);                                          \
            for (int j = 0; j < ACT_B; j++) {                                           \
                T v = ar_x[i + j]; T r; BODY; ar_y[i + j] = r; }                        \
        }                                                                               \
        if (ar_nb < ar_n) {                                                             \
            T ar_xb[ACT_B], ar_yb[ACT_B];                                               \
            for (int j = 0; j < ACT_B; j++)                                             \
                ar_xb[j] = ar_nb + j < ar_n ? ar_x[ar_nb + j] : (T)0;                   \
            for (int j = 0; j < ACT_B; j++) { T v = ar_xb[j]; T r; BODY; ar_yb[j] = r; } \
            for (ptrdiff_t j = 0; j < ar_n - ar_nb; j++) ar_y[ar_nb + j] = ar_yb[j];   \
        }                                                                               \
    } while (0)

/* the plain path: ACT_FWD_RUN asking with each block (PF), or in chunks asking first */
#define ACT_FWD_PLAIN(T, PF, BODY, X, Y, N)                                             \
    do {                                                                                \
        if (PF) {                                                                       \
            ACT_FWD_RUN(T, BODY, X, Y, N, 1, 1);                                        \
            break;                                                                      \
        }                                                                               \
        const T *ap_x = (X);                                                            \
        T *ap_y = (Y);                                                                  \
        const ptrdiff_t ap_n = (N), ap_c = STREAM_CHUNK / (ptrdiff_t)sizeof(T);         \
        for (ptrdiff_t ap_i = 0; ap_i < ap_n; ap_i += ap_c) {                           \
            STREAM_PREFETCH(ap_x + ap_i, STREAM_CHUNK);                                 \
            STREAM_PREFETCH(ap_y + ap_i, STREAM_CHUNK);                                 \
            ACT_FWD_RUN(T, BODY, ap_x + ap_i, ap_y + ap_i,                              \
                        ap_n - ap_i < ap_c ? ap_n - ap_i : ap_c, 0, 0);                 \
        }                                                                               \
    } while (0)

/* With `stream`, the whole aligned blocks [s0, s1) of _stream.h are computed by the same
 * loop into local blocks and stored non-temporally (STREAM_BLOCKS; the caller fences);
 * the elements before and after them go straight to y (ACT_FWD_PLAIN; PF 1 for the
 * bodies that compute for long, 0 for the cheap select bodies). */
#define ACT_FWD_DRIVER(NAME, T, PF, BODY)                                               \
RNN_CLONES static void NAME(const T *restrict x, T *restrict y, ptrdiff_t n, T p,       \
                            int stream)                                                 \
{                                                                                       \
    ptrdiff_t s0 = 0, s1 = 0;                                                           \
    if (stream) stream_span(y, sizeof(T), n, &s0, &s1);                                 \
    ACT_FWD_PLAIN(T, PF, BODY, x, y, s0);                                               \
    STREAM_BLOCKS(T, y, s0, s1, i, blk,                                                 \
                  ACT_FWD_RUN(T, BODY, x + i, blk, STREAM_N(T), PF, 0));                \
    ACT_FWD_PLAIN(T, PF, BODY, x + s1, y + s1, n - s1);                                 \
    (void)p;                                                                            \
}

/* backward: v = x (or y for sigmoid), g = dy */
#define ACT_BWD_RUN(T, BODY, X, DY, D, N, IN, OUT)                                      \
    do {                                                                                \
        const T *restrict ar_x = (X), *restrict ar_g = (DY);                            \
        T *restrict ar_d = (D);                                                         \
        ptrdiff_t ar_n = (N), ar_nb = ar_n - ar_n % ACT_B;                              \
        for (ptrdiff_t i = 0; i < ar_nb; i += ACT_B) {                                  \
            if (IN) { ACT_PREFETCH(T, ar_x, i); ACT_PREFETCH(T, ar_g, i); }             \
            if (OUT) ACT_PREFETCH(T, ar_d, i);                                          \
            for (int j = 0; j < ACT_B; j++) {                                           \
                T v = ar_x[i + j], g = ar_g[i + j]; T r; BODY; ar_d[i + j] = r; }       \
        }                                                                               \
        if (ar_nb < ar_n) {                                                             \
            T ar_xb[ACT_B], ar_gb[ACT_B], ar_db[ACT_B];                                 \
            for (int j = 0; j < ACT_B; j++) {                                           \
                ar_xb[j] = ar_nb + j < ar_n ? ar_x[ar_nb + j] : (T)0;                   \
                ar_gb[j] = ar_nb + j < ar_n ? ar_g[ar_nb + j] : (T)0; }                 \
            for (int j = 0; j < ACT_B; j++) {                                           \
                T v = ar_xb[j], g = ar_gb[j]; T r; BODY; ar_db[j] = r; }                \
            for (ptrdiff_t j = 0; j < ar_n - ar_nb; j++) ar_d[ar_nb + j] = ar_db[j];   \
        }                                                                               \
    } while (0)

#define ACT_BWD_PLAIN(T, PF, BODY, X, DY, D, N)                                         \
    do {                                                                                \
        if (PF) {                                                                       \
            ACT_BWD_RUN(T, BODY, X, DY, D, N, 1, 1);                                    \
            break;                                                                      \
        }                                                                               \
        const T *ap_x = (X), *ap_g = (DY);                                              \
        T *ap_d = (D);                                                                  \
        const ptrdiff_t ap_n = (N), ap_c = STREAM_CHUNK / (ptrdiff_t)sizeof(T);         \
        for (ptrdiff_t ap_i = 0; ap_i < ap_n; ap_i += ap_c) {                           \
            STREAM_PREFETCH(ap_x + ap_i, STREAM_CHUNK);                                 \
            STREAM_PREFETCH(ap_g + ap_i, STREAM_CHUNK);                                 \
            STREAM_PREFETCH(ap_d + ap_i, STREAM_CHUNK);                                 \
            ACT_BWD_RUN(T, BODY, ap_x + ap_i, ap_g + ap_i, ap_d + ap_i,                 \
                        ap_n - ap_i < ap_c ? ap_n - ap_i : ap_c, 0, 0);                 \
        }                                                                               \
    } while (0)

#define ACT_BWD_DRIVER(NAME, T, PF, BODY)                                               \
RNN_CLONES static void NAME(const T *restrict x, const T *restrict dy, T *restrict d,   \
                             ptrdiff_t n, T p, int stream)                              \
{                                                                                       \
    ptrdiff_t s0 = 0, s1 = 0;                                                           \
    if (stream) stream_span(d, sizeof(T), n, &s0, &s1);                                 \
    ACT_BWD_PLAIN(T, PF, BODY, x, dy, d, s0);                                           \
    STREAM_BLOCKS(T, d, s0, s1, i, blk,                                                 \
                  ACT_BWD_RUN(T, BODY, x + i, dy + i, blk, STREAM_N(T), PF, 0));        \
    ACT_BWD_PLAIN(T, PF, BODY, x + s1, dy + s1, d + s1, n - s1);                        \
    (void)p;                                                                            \
}

/* ----------------------------------------------------------------- forward */

#define ACT_FWD_LOOPS(T, SUF, EXPM1, PHI, TANH, SIG, LOG1P, EXP)                         \
ACT_FWD_DRIVER(act_leaky_##SUF, T, 0, r = v > 0 ? v : v * p)                            \
ACT_FWD_DRIVER(act_clipped_##SUF, T, 1,                                                 \
    T c = v > 0 ? (v < p ? v : p) : (T)0; r = v != v ? v : c)                           \
ACT_FWD_DRIVER(act_elu_##SUF, T, 1, T m = v < 0 ? v : (T)0; m = v != v ? v : m;         \
    T e = EXPM1(m); r = v > 0 ? v : p * e)                                              \
ACT_FWD_DRIVER(act_gelu_##SUF, T, 1, r = v * PHI(v))                                    \
ACT_FWD_DRIVER(act_gelu_tanh_##SUF, T, 1,                                               \
    T t = TANH((T)ACT_SQRT_2_PI * (v + (T)0.044715 * (v * v * v)));                     \
    r = (T)0.5 * v * ((T)1 + t))                                                        \
ACT_FWD_DRIVER(act_sigmoid_##SUF, T, 1, r = SIG(v))                                     \
ACT_FWD_DRIVER(act_swish_##SUF, T, 1, r = v * SIG(v))                                   \
ACT_FWD_DRIVER(act_softplus_##SUF, T, 1, T av = v < 0 ? -v : v; T u = EXP(-av);         \
    r = (v > 0 ? v : (T)0) + LOG1P(u))                                                  \
static void act_forward_##SUF(int kind, const T *x, T *y, ptrdiff_t n, double p,         \
                              int stream)                                               \
{                                                                                       \
    switch (kind) {                                                                     \
    case ACT_LEAKY: act_leaky_##SUF(x, y, n, (T)p, stream); break;                              \
    case ACT_CLIPPED: act_clipped_##SUF(x, y, n, (T)p, stream); break;                          \
    case ACT_ELU: act_elu_##SUF(x, y, n, (T)p, stream); break;                                  \
    case ACT_GELU: act_gelu_##SUF(x, y, n, 0, stream); break;                                   \
    case ACT_GELU_TANH: act_gelu_tanh_##SUF(x, y, n, 0, stream); break;                         \
    case ACT_SIGMOID: act_sigmoid_##SUF(x, y, n, 0, stream); break;                             \
    case ACT_SWISH: act_swish_##SUF(x, y, n, 0, stream); break;                                 \
    default: act_softplus_##SUF(x, y, n, 0, stream); break;                                     \
    }                                                                                   \
}

/* ----------------------------------------------------------------- backward
 * dx from x (or the forward result y: sigmoid, and elu with alpha > 0, no exponential) and
 * dy, the formulas of activations.py's backward closures */

#define ACT_BWD_LOOPS(T, SUF, EXPM1, GELU_D, TANH, SIG)                               \
ACT_BWD_DRIVER(act_leaky_b_##SUF, T, 0, r = v > 0 ? g : g * p)                          \
ACT_BWD_DRIVER(act_clipped_b_##SUF, T, 0, r = (v > 0 && v < p) ? g : (T)0)              \
ACT_BWD_DRIVER(act_elu_b_##SUF, T, 0, T m = v < 0 ? v : (T)0; m = v != v ? v : m;       \
    T e = EXPM1(m); r = v > 0 ? g : g * p * (e + (T)1))                                 \
ACT_BWD_DRIVER(act_elu_by_##SUF, T, 0, r = v > 0 ? g : g * (v + p))                     \
ACT_BWD_DRIVER(act_gelu_b_##SUF, T, 1, r = g * GELU_D(v))                               \
ACT_BWD_DRIVER(act_gelu_tanh_b_##SUF, T, 1,                                             \
    T t = TANH((T)ACT_SQRT_2_PI * (v + (T)0.044715 * (v * v * v)));                     \
    T q = (T)0.5 * ((T)1 + t) + (T)0.5 * v * ((T)1 - t * t) * (T)ACT_SQRT_2_PI          \
          * ((T)1 + (T)(3 * 0.044715) * v * v);                                         \
    r = g * q)                                                                          \
ACT_BWD_DRIVER(act_sigmoid_b_##SUF, T, 1, r = g * v * ((T)1 - v))                       \
ACT_BWD_DRIVER(act_swish_b_##SUF, T, 1, T s = SIG(v); r = g * (s + v * s * ((T)1 - s))) \
ACT_BWD_DRIVER(act_softplus_b_##SUF, T, 1, r = g * SIG(v))                              \
static void act_backward_##SUF(int kind, const T *x, const T *y, const T *g, T *d,      \
                               ptrdiff_t n, double p, int stream)                       \
{                                                                                       \
    switch (kind) {                                                                     \
    case ACT_LEAKY: act_leaky_b_##SUF(x, g, d, n, (T)p, stream); break;                         \
    case ACT_CLIPPED: act_clipped_b_##SUF(x, g, d, n, (T)p, stream); break;                     \
    case ACT_ELU:   /* alpha > 0: y > 0 exactly where x > 0, and alpha exp(x) = y + alpha */ \
        if (p > 0) act_elu_by_##SUF(y, g, d, n, (T)p, stream);                                  \
        else act_elu_b_##SUF(x, g, d, n, (T)p, stream);                                         \
        break;                                                                          \
    case ACT_GELU: act_gelu_b_##SUF(x, g, d, n, 0, stream); break;                              \
    case ACT_GELU_TANH: act_gelu_tanh_b_##SUF(x, g, d, n, 0, stream); break;                    \
    case ACT_SIGMOID: act_sigmoid_b_##SUF(y, g, d, n, 0, stream); break;                        \
    case ACT_SWISH: act_swish_b_##SUF(x, g, d, n, 0, stream); break;                            \
    default: act_softplus_b_##SUF(x, g, d, n, 0, stream); break;                                \
    }                                                                                   \
}

ACT_FWD_LOOPS(float, f32, act_expm1f, act_normcdff, rnn_tanhf, act_sigmoidf, act_log1pf, rnn_expf)
ACT_FWD_LOOPS(double, f64, expm1, act_normcdf, tanh, act_sigmoid, log1p, exp)
ACT_BWD_LOOPS(float, f32, act_expm1f, act_gelu_df, rnn_tanhf, act_sigmoidf)
ACT_BWD_LOOPS(double, f64, expm1, act_gelu_d, tanh, act_sigmoid)

#pragma GCC pop_options
#endif
