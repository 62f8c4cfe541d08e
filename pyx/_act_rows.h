/* Elementwise activations of pyx/_act.pyx: one pass per forward and per backward over a
 * contiguous run of n elements, float32 and float64.
 *
 * float32 uses the branch-free exponential, tanh and sigmoid of _rnn_simd.h (Cephes-based,
 * within ~2 ulp) plus, here, branch-free 1 + erf(z) (Cephes' erff below |z| = 1, erfcf
 * above, so GELU's negative tail keeps its relative accuracy), expm1 for x <= 0 (Taylor polynomial below |x| = 0.35,
 * exp(x) - 1 above) and log1p on [0, 1] (Cephes' logf of w = 1 + u, corrected as
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

enum { ACT_LEAKY = 0, ACT_CLIPPED = 1, ACT_ELU = 2, ACT_GELU = 3, ACT_GELU_TANH = 4,
       ACT_SIGMOID = 5, ACT_SWISH = 6, ACT_SOFTPLUS = 7 };

#define ACT_SQRT1_2 0.70710678118654752440
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

/* erfc(a) for a = |x|/sqrt(2) >= 1 (Cephes' erfcf: exp(-a^2)/a P(1/a^2) below 2, R(1/a^2)
 * above).  exp(-a^2) = exp(-x^2/2) is taken from x itself as exp(-xh^2/2) exp(-(x^2 - xh^2)/2)
 * with xh = x with 12 mantissa bits cleared (xh^2 exact; the small second factor by its
 * Taylor series), as Cephes' expx2f does, so neither
 * the rounding of x/sqrt(2) nor that of its square is amplified by the steep tail; 0 where
 * float32's erfc is subnormal (a > 9.3). */
static inline float act_erfc_bigf(float a, float ax)
{
    float axc = ax > 13.5f ? 13.5f : ax;
    int32_t ab;
    memcpy(&ab, &axc, 4);
    ab &= (int32_t)0xFFFFF000;
    float ah;
    memcpy(&ah, &ab, 4);
    float al = axc - ah;
    /* exp(-d) for the small d = (x^2 - xh^2)/2 (|d| < 0.03): Taylor to d^4 (error < 1e-10) */
    float d = 0.5f * ((ah + ah) * al + al * al);
    float ed = 1.0f / 24.0f;
    ed = ed * (-d) + 1.0f / 6.0f;
    ed = ed * (-d) + 0.5f;
    ed = ed * (-d) + 1.0f;
    ed = ed * (-d) + 1.0f;
    float e = rnn_expf(-0.5f * (ah * ah)) * ed;
    float ac = a > 9.5f ? 9.5f : a;
    float q = 1.0f / ac;
    float y = q * q;
    float p = 2.326819970068386E-2f;
    p = p * y - 1.387039388740657E-1f;
    p = p * y + 3.687424674597105E-1f;
    p = p * y - 5.824733027278666E-1f;
    p = p * y + 6.210004621745983E-1f;
    p = p * y - 4.944515323274145E-1f;
    p = p * y + 3.404879937665872E-1f;
    p = p * y - 2.741127028184656E-1f;
    p = p * y + 5.638259427386472E-1f;
    float r = -1.047766399936249E+1f;
    r = r * y + 1.297719955372516E+1f;
    r = r * y - 7.495518717768503E+0f;
    r = r * y + 2.921019019210786E+0f;
    r = r * y - 1.015265279202700E+0f;
    r = r * y + 4.218463358204948E-1f;
    r = r * y - 2.820767439740514E-1f;
    r = r * y + 5.641895067754075E-1f;
    float v = e * q * (ac < 2.0f ? p : r);
    return a > 9.3f ? 0.0f : v;
}

/* 1 + erf(x/sqrt(2)), without cancellation for x/sqrt(2) < -1 (there it is
 * erfc(|x|/sqrt(2))); NaN kept */
static inline float act_onepluserff(float x)
{
    float z = x * 0.70710678118654752440f;
    float ax = x < 0 ? -x : x;
    float a = z < 0 ? -z : z;
    float z2 = z * z;
    float t = 7.853861353153693E-5f;
    t = t * z2 - 8.010193625184903E-4f;
    t = t * z2 + 5.188327685732524E-3f;
    t = t * z2 - 2.685381193529856E-2f;
    t = t * z2 + 1.128358514861418E-1f;
    t = t * z2 - 3.761262582423300E-1f;
    t = t * z2 + 1.128379165726710E+0f;
    float small = 1.0f + z * t;
    float ec = act_erfc_bigf(a < 1.0f ? 1.0f : a, ax);
    float big = z < 0 ? ec : 2.0f - ec;
    float y = a < 1.0f ? small : big;
    return x != x ? x : y;
}

static inline double act_onepluserf(double x)
{
    double z = x / 1.41421356237309504880;     /* as NumPy's x / np.sqrt(2) */
    return z < -1.0 ? erfc(-z) : 1.0 + erf(z);
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

/* sigmoid with exact 0 far below (so x * sigmoid(x) at -Inf is NaN, as NumPy's) */
static inline float act_sigmoidf(float x)
{
    float s = rnn_sigmoidf(x);
    return x < -104.0f ? 0.0f : s;
}

static inline double act_sigmoid(double x) { return 1.0 / (1.0 + exp(-x)); }

/* ----------------------------------------------------------------- drivers
 * Every element goes through the same code: the loops run in blocks of ACT_B elements (a
 * fixed-count inner loop, vectorized whole), and the last partial block is copied into a
 * padded local block and run through the same loop.  So a value does not depend on its
 * position in memory (layout, chunk, thread count) even where the compiler contracts
 * multiply-adds differently in vector and scalar code. */
#define ACT_B 16

#define ACT_FWD_DRIVER(NAME, T, BODY)                                                   \
RNN_CLONES static void NAME(const T *x, T *y, ptrdiff_t n, T p)                         \
{                                                                                       \
    ptrdiff_t nb = n - n % ACT_B;                                                       \
    for (ptrdiff_t i = 0; i < nb; i += ACT_B)                                           \
        for (int j = 0; j < ACT_B; j++) { T v = x[i + j]; T r; BODY; y[i + j] = r; }   \
    if (nb < n) {                                                                       \
        T xb[ACT_B], yb[ACT_B];                                                         \
        for (int j = 0; j < ACT_B; j++) xb[j] = nb + j < n ? x[nb + j] : (T)0;         \
        for (int j = 0; j < ACT_B; j++) { T v = xb[j]; T r; BODY; yb[j] = r; }         \
        for (ptrdiff_t j = 0; j < n - nb; j++) y[nb + j] = yb[j];                      \
    }                                                                                   \
    (void)p;                                                                            \
}

/* backward: v = x (or y for sigmoid), g = dy */
#define ACT_BWD_DRIVER(NAME, T, BODY)                                                   \
RNN_CLONES static void NAME(const T *x, const T *dy, T *d, ptrdiff_t n, T p)            \
{                                                                                       \
    ptrdiff_t nb = n - n % ACT_B;                                                       \
    for (ptrdiff_t i = 0; i < nb; i += ACT_B)                                           \
        for (int j = 0; j < ACT_B; j++) {                                               \
            T v = x[i + j], g = dy[i + j]; T r; BODY; d[i + j] = r; }                   \
    if (nb < n) {                                                                       \
        T xb[ACT_B], gb[ACT_B], db[ACT_B];                                              \
        for (int j = 0; j < ACT_B; j++) {                                               \
            xb[j] = nb + j < n ? x[nb + j] : (T)0;                                      \
            gb[j] = nb + j < n ? dy[nb + j] : (T)0; }                                   \
        for (int j = 0; j < ACT_B; j++) { T v = xb[j], g = gb[j]; T r; BODY; db[j] = r; } \
        for (ptrdiff_t j = 0; j < n - nb; j++) d[nb + j] = db[j];                      \
    }                                                                                   \
    (void)p;                                                                            \
}

/* ----------------------------------------------------------------- forward */

#define ACT_FWD_LOOPS(T, SUF, EXPM1, ERF, TANH, SIG, LOG1P, EXP)                         \
ACT_FWD_DRIVER(act_leaky_##SUF, T, r = v > 0 ? v : v * p)                              \
ACT_FWD_DRIVER(act_clipped_##SUF, T,                                                    \
    T c = v > 0 ? (v < p ? v : p) : (T)0; r = v != v ? v : c)                           \
ACT_FWD_DRIVER(act_elu_##SUF, T, T m = v < 0 ? v : (T)0; m = v != v ? v : m;            \
    T e = EXPM1(m); r = v > 0 ? v : p * e)                                              \
ACT_FWD_DRIVER(act_gelu_##SUF, T, r = (T)0.5 * v * ERF(v))                              \
ACT_FWD_DRIVER(act_gelu_tanh_##SUF, T,                                                  \
    T t = TANH((T)ACT_SQRT_2_PI * (v + (T)0.044715 * (v * v * v)));                     \
    r = (T)0.5 * v * ((T)1 + t))                                                        \
ACT_FWD_DRIVER(act_sigmoid_##SUF, T, r = SIG(v))                                        \
ACT_FWD_DRIVER(act_swish_##SUF, T, r = v * SIG(v))                                      \
ACT_FWD_DRIVER(act_softplus_##SUF, T, T av = v < 0 ? -v : v; T u = EXP(-av);           \
    r = (v > 0 ? v : (T)0) + LOG1P(u))                                                  \
static void act_forward_##SUF(int kind, const T *x, T *y, ptrdiff_t n, double p)        \
{                                                                                       \
    switch (kind) {                                                                     \
    case ACT_LEAKY: act_leaky_##SUF(x, y, n, (T)p); break;                              \
    case ACT_CLIPPED: act_clipped_##SUF(x, y, n, (T)p); break;                          \
    case ACT_ELU: act_elu_##SUF(x, y, n, (T)p); break;                                  \
    case ACT_GELU: act_gelu_##SUF(x, y, n, 0); break;                                   \
    case ACT_GELU_TANH: act_gelu_tanh_##SUF(x, y, n, 0); break;                         \
    case ACT_SIGMOID: act_sigmoid_##SUF(x, y, n, 0); break;                             \
    case ACT_SWISH: act_swish_##SUF(x, y, n, 0); break;                                 \
    default: act_softplus_##SUF(x, y, n, 0); break;                                     \
    }                                                                                   \
}

/* ----------------------------------------------------------------- backward
 * dx from x (or y for sigmoid) and dy, the formulas of activations.py's backward closures */

#define ACT_BWD_LOOPS(T, SUF, EXPM1, ERF, TANH, SIG, EXP)                               \
ACT_BWD_DRIVER(act_leaky_b_##SUF, T, r = v > 0 ? g : g * p)                            \
ACT_BWD_DRIVER(act_clipped_b_##SUF, T, r = (v > 0 && v < p) ? g : (T)0)                \
ACT_BWD_DRIVER(act_elu_b_##SUF, T, T m = v < 0 ? v : (T)0; m = v != v ? v : m;          \
    T e = EXPM1(m); r = v > 0 ? g : g * p * (e + (T)1))                                 \
ACT_BWD_DRIVER(act_gelu_b_##SUF, T,                                                     \
    T q = (T)0.5 * ERF(v) + v * EXP((T)-0.5 * v * v) * (T)ACT_INV_SQRT_2PI;             \
    r = g * q)                                                                          \
ACT_BWD_DRIVER(act_gelu_tanh_b_##SUF, T,                                                \
    T t = TANH((T)ACT_SQRT_2_PI * (v + (T)0.044715 * (v * v * v)));                     \
    T q = (T)0.5 * ((T)1 + t) + (T)0.5 * v * ((T)1 - t * t) * (T)ACT_SQRT_2_PI          \
          * ((T)1 + (T)(3 * 0.044715) * v * v);                                         \
    r = g * q)                                                                          \
ACT_BWD_DRIVER(act_sigmoid_b_##SUF, T, r = g * v * ((T)1 - v))                          \
ACT_BWD_DRIVER(act_swish_b_##SUF, T, T s = SIG(v); r = g * (s + v * s * ((T)1 - s)))    \
ACT_BWD_DRIVER(act_softplus_b_##SUF, T, r = g * SIG(v))                                 \
static void act_backward_##SUF(int kind, const T *x, const T *y, const T *g, T *d,      \
                               ptrdiff_t n, double p)                                   \
{                                                                                       \
    switch (kind) {                                                                     \
    case ACT_LEAKY: act_leaky_b_##SUF(x, g, d, n, (T)p); break;                         \
    case ACT_CLIPPED: act_clipped_b_##SUF(x, g, d, n, (T)p); break;                     \
    case ACT_ELU: act_elu_b_##SUF(x, g, d, n, (T)p); break;                             \
    case ACT_GELU: act_gelu_b_##SUF(x, g, d, n, 0); break;                              \
    case ACT_GELU_TANH: act_gelu_tanh_b_##SUF(x, g, d, n, 0); break;                    \
    case ACT_SIGMOID: act_sigmoid_b_##SUF(y, g, d, n, 0); break;                        \
    case ACT_SWISH: act_swish_b_##SUF(x, g, d, n, 0); break;                            \
    default: act_softplus_b_##SUF(x, g, d, n, 0); break;                                \
    }                                                                                   \
}

ACT_FWD_LOOPS(float, f32, act_expm1f, act_onepluserff, rnn_tanhf, act_sigmoidf, act_log1pf, rnn_expf)
ACT_FWD_LOOPS(double, f64, expm1, act_onepluserf, tanh, act_sigmoid, log1p, exp)
ACT_BWD_LOOPS(float, f32, act_expm1f, act_onepluserff, rnn_tanhf, act_sigmoidf, rnn_expf)
ACT_BWD_LOOPS(double, f64, expm1, act_onepluserf, tanh, act_sigmoid, exp)

#pragma GCC pop_options
#endif
