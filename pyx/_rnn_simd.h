/* Float32 building blocks of the recurrent kernels (pyx/_rnn.pyx): vectorized activations
 * and the small matrix product of one time step.
 *
 * Activations.
 *
 * libm's expf/tanhf are scalar calls (about 20 ns each here): an LSTM step evaluates five
 * of them per hidden unit and observation, which cost more than the step's gemm.  These
 * loops are branch-free (selects only), so GCC vectorizes them; target_clones builds an
 * AVX-512, an x86-64-v3 (AVX2 + FMA) and a baseline copy and picks one at load time.
 *
 * exp: Cephes' expf (range reduction by ln 2 in two parts, degree-6 polynomial), relative
 * error within 2 ulp of float32 on the clamped range [-88, 88].  tanh: Cephes' tanhf
 * (odd polynomial below |x| = 0.625, 1 - 2/(exp(2|x|) + 1) above).  sigmoid:
 * 1/(1 + exp(-x)).  NaN propagates (selected through explicitly).  Float64 uses libm.
 */
#ifndef MLAYERS_RNN_SIMD_H
#define MLAYERS_RNN_SIMD_H
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifndef RNN_CLONES    /* (defined empty by a test harness building one ISA at a time) */
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define RNN_CLONES __attribute__((target_clones("avx512f", "arch=x86-64-v3", "default")))
#else
#define RNN_CLONES
#endif
#endif

static inline float rnn_bits_float(int32_t b)
{
    float f;
    memcpy(&f, &b, 4);
    return f;
}

static inline int32_t rnn_float_bits(float f)
{
    int32_t b;
    memcpy(&b, &f, 4);
    return b;
}

/* 2^n p(r) (p = exp(r) - 1 when minus1) for v = n ln 2 + r, |v| <= 88 */
static inline float rnn_exp_parts(float v, float *scale, int minus1)
{
    const float magic = 12582912.0f;
    float t = v * 1.44269504088896341f + magic;
    float n = t - magic;
    float r = v - n * 0.693359375f;
    r = r - n * (-2.12194440e-4f);
    float r2 = r * r;
    float p = 1.9875691500E-4f;
    p = p * r + 1.3981999507E-3f;
    p = p * r + 8.3334519073E-3f;
    p = p * r + 4.1665795894E-2f;
    p = p * r + 1.6666665459E-1f;
    p = p * r + 5.0000001201E-1f;
    p = minus1 ? p * r2 + r : p * r2 + r + 1.0f;
    *scale = rnn_bits_float((rnn_float_bits(t) - 0x4B400000 + 127) << 23);
    return p;
}

static inline float rnn_expf(float x)
{
    const float hi = 88.0f, lo = -88.0f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    float scale;
    float y = rnn_exp_parts(xc, &scale, 0) * scale;
    return x != x ? x : y;
}

static inline float rnn_tanhf(float x)
{
    float ax = x < 0 ? -x : x;
    /* small: x + x^3 P(x^2) */
    float z = x * x;
    float p = -5.70498872745E-3f;
    p = p * z + 2.06390887954E-2f;
    p = p * z - 5.37397155531E-2f;
    p = p * z + 1.33314422036E-1f;
    p = p * z - 3.33332819422E-1f;
    float small = x + x * z * p;
    /* large: 1 - 2 / (exp(2|x|) + 1), sign of x */
    float e = rnn_expf(2.0f * (ax > 44.0f ? 44.0f : ax));
    float big = 1.0f - 2.0f / (e + 1.0f);
    big = x < 0 ? -big : big;
    float y = ax < 0.625f ? small : big;
    return x != x ? x : y;
}

static inline float rnn_sigmoidf(float x)
{
    float y = 1.0f / (1.0f + rnn_expf(-x));
    return x != x ? x : y;
}

/* The recurrent kernels' own sigmoid and tanh.  rnn_sigmoidf and rnn_tanhf above clamp in
 * floating point; GCC threads those selects through the rest of the computation and, in
 * the AVX-512 loop, evaluates the division twice under masks (23 and 47 cycles per 16
 * floats measured on Zen 4).  Here the clamps act on the integer bits, so each vector
 * takes one straight sequence:
 *
 * rnn_sigmoid2f: the same operations as rnn_sigmoidf, so the same values bit for bit
 *   (17.6 cycles per 16 floats);
 * rnn_tanh2f: tanh|x| = -e / (2 + e) with e = exp(-2|x|) - 1 formed as 2^n (p(r) - 1) +
 *   (2^n - 1) from Cephes' reduction and polynomial, so small |x| keeps its relative
 *   accuracy without a second polynomial; the sign of x copied onto the result.  Within
 *   2.5 ulp of tanh on every float (rnn_tanhf: 1.3 ulp) in 19.5 cycles per 16 floats.
 * NaN propagates (selected through explicitly). */


static inline float rnn_sigmoid2f(float x)
{
    int32_t vb = rnn_float_bits(x) ^ (int32_t)0x80000000;            /* -x */
    int32_t mag = vb & 0x7fffffff;
    mag = mag < 0x42B00000 ? mag : 0x42B00000;                        /* |v| <= 88 */
    float scale;
    float p = rnn_exp_parts(rnn_bits_float((vb & (int32_t)0x80000000) | mag), &scale, 0);
    float y = 1.0f / (1.0f + p * scale);
    return x != x ? x : y;
}

static inline float rnn_tanh2f(float x)
{
    int32_t xb = rnn_float_bits(x);
    int32_t mag = xb & 0x7fffffff;
    mag = mag < 0x42300000 ? mag : 0x42300000;                        /* |x| <= 44 */
    float scale;
    float p = rnn_exp_parts(-2.0f * rnn_bits_float(mag), &scale, 1);
    float e = scale * p + (scale - 1.0f);                             /* exp(-2|x|) - 1 */
    float m = e / (2.0f + e);                                         /* -tanh|x| */
    float y = rnn_bits_float((rnn_float_bits(m) & 0x7fffffff) | (xb & (int32_t)0x80000000));
    return x != x ? x : y;
}

RNN_CLONES static void rnn_sigmoid2_f(float *a, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        a[i] = rnn_sigmoid2f(a[i]);
}

RNN_CLONES static void rnn_tanh2_f(float *a, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        a[i] = rnn_tanh2f(a[i]);
}

RNN_CLONES static void rnn_tanh2_to_f(const float *a, float *out, ptrdiff_t n)
{
    for (ptrdiff_t i = 0; i < n; i++)
        out[i] = rnn_tanh2f(a[i]);
}

/* Small and skinny products, row-major: C[M x N] (+)= A[M x K] B[K x N], element (m, k) of
 * A at A[m * sam + k * sak] (so A may be a transposed view: the weight gradients dg^T x).
 *
 * Each recurrence step is one such product with M a chunk of observations (at most 16),
 * N the gate columns (4H) and K = H: OpenBLAS runs these short, wide products at a
 * fraction of its speed (measured 90 us for 16 x 512 x 128 against about 15 us here).
 * Register blocks of 8 rows x 32 columns (16 accumulators of 16 floats); K in blocks of
 * RNN_KB rows (the block of B stays in cache), the partial sums stored in C between
 * blocks, so every element is one sum over k in order with one rounding per
 * multiply-add, whatever M, N and the blocking are: results do not depend on how rows
 * are split among threads or chunks.  Leftover columns (N not a multiple of 32) and rows
 * take the same order of operations in narrower loops.
 */
typedef float rnn_v16 __attribute__((vector_size(64), aligned(4), may_alias));
typedef float rnn_v8 __attribute__((vector_size(32), aligned(4), may_alias));
#define RNN_KB 256

RNN_CLONES static void rnn_sgemm(ptrdiff_t M, ptrdiff_t N, ptrdiff_t K,
                                 const float *A, ptrdiff_t sam, ptrdiff_t sak,
                                 const float *B, ptrdiff_t ldb,
                                 float *C, ptrdiff_t ldc, int accumulate)
{
    for (ptrdiff_t k0 = 0; k0 < K || (K == 0 && k0 == 0); k0 += RNN_KB) {
        ptrdiff_t k1 = k0 + RNN_KB < K ? k0 + RNN_KB : K;
        int acc_in = accumulate || k0 > 0;
        ptrdiff_t n0 = 0;
        for (; n0 + 32 <= N; n0 += 32) {
            ptrdiff_t m0 = 0;
            for (; m0 + 8 <= M; m0 += 8) {
                rnn_v16 acc[8][2];
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++) {
                    if (acc_in) {
                        acc[r][0] = *(const rnn_v16 *)(C + (m0 + r) * ldc + n0);
                        acc[r][1] = *(const rnn_v16 *)(C + (m0 + r) * ldc + n0 + 16);
                    } else {
                        acc[r][0] = (rnn_v16){0};
                        acc[r][1] = (rnn_v16){0};
                    }
                }
                const float *a = A + m0 * sam;
                for (ptrdiff_t k = k0; k < k1; k++) {
                    rnn_v16 b0 = *(const rnn_v16 *)(B + k * ldb + n0);
                    rnn_v16 b1 = *(const rnn_v16 *)(B + k * ldb + n0 + 16);
                    const float *ak = a + k * sak;
#pragma GCC unroll 8
                    for (int r = 0; r < 8; r++) {
                        float s = ak[r * sam];
                        acc[r][0] += s * b0;
                        acc[r][1] += s * b1;
                    }
                }
#pragma GCC unroll 8
                for (int r = 0; r < 8; r++) {
                    *(rnn_v16 *)(C + (m0 + r) * ldc + n0) = acc[r][0];
                    *(rnn_v16 *)(C + (m0 + r) * ldc + n0 + 16) = acc[r][1];
                }
            }
            for (; m0 < M; m0++) {
                rnn_v16 c0, c1;
                if (acc_in) {
                    c0 = *(const rnn_v16 *)(C + m0 * ldc + n0);
                    c1 = *(const rnn_v16 *)(C + m0 * ldc + n0 + 16);
                } else {
                    c0 = (rnn_v16){0};
                    c1 = (rnn_v16){0};
                }
                for (ptrdiff_t k = k0; k < k1; k++) {
                    float s = A[m0 * sam + k * sak];
                    c0 += s * *(const rnn_v16 *)(B + k * ldb + n0);
                    c1 += s * *(const rnn_v16 *)(B + k * ldb + n0 + 16);
                }
                *(rnn_v16 *)(C + m0 * ldc + n0) = c0;
                *(rnn_v16 *)(C + m0 * ldc + n0 + 16) = c1;
            }
        }
        for (ptrdiff_t m = 0; m < M && n0 < N; m++) {
            for (ptrdiff_t n = n0; n < N; n++) {
                float s = acc_in ? C[m * ldc + n] : 0.0f;
                for (ptrdiff_t k = k0; k < k1; k++)
                    s += A[m * sam + k * sak] * B[k * ldb + n];
                C[m * ldc + n] = s;
            }
        }
        if (K == 0)
            break;
    }
}

/* One forward step's gate pre-activations, row-major: C[M x N] = bias + A1[M x K1] B1[K1 x N]
 * + A2[M x K2] B2[K2 x N] (A rows contiguous, stride lda).  The LSTM takes the input
 * projection (x_t, W^T) and the recurrent product (h_(t-1), R^T) of a step in one pass,
 * into a step-sized block that stays in cache, instead of projecting all steps into a
 * T x B x 4H array read back step by step (at 64 x 32 x 100, H = 128: 6.5 MB, beyond L2;
 * the products took 6.3-7.0 ms that way, 5.6 ms this way, on one Zen 4 core).  Every
 * element is bias, then the K1 products in order, then the K2 products in order: the sum
 * rnn_sgemm forms over the concatenated K, in the same register blocks (leftover rows
 * and columns in narrower loops), so no value depends on how the rows are split. */
static inline __attribute__((always_inline)) void rnn_blk8x32(rnn_v16 acc[8][2], ptrdiff_t K,
        const float *A, ptrdiff_t sak, const float *B, ptrdiff_t ldb, ptrdiff_t sam)
{
    /* acc[r] += sum over k of A[r * sam + k * sak] B[k, 0:32], k in order */
    for (ptrdiff_t k = 0; k < K; k++) {
        rnn_v16 b0 = *(const rnn_v16 *)(B + k * ldb);
        rnn_v16 b1 = *(const rnn_v16 *)(B + k * ldb + 16);
#pragma GCC unroll 8
        for (int r = 0; r < 8; r++) {
            float s = A[r * sam + k * sak];
            acc[r][0] += s * b0;
            acc[r][1] += s * b1;
        }
    }
}

static inline __attribute__((always_inline)) void rnn_blk1x32(rnn_v16 acc[2], ptrdiff_t K,
        const float *A, const float *B, ptrdiff_t ldb)
{
    for (ptrdiff_t k = 0; k < K; k++) {
        acc[0] += A[k] * *(const rnn_v16 *)(B + k * ldb);
        acc[1] += A[k] * *(const rnn_v16 *)(B + k * ldb + 16);
    }
}

RNN_CLONES static void rnn_sgemm_bias2(ptrdiff_t M, ptrdiff_t N, const float *bias,
        ptrdiff_t K1, const float *A1, ptrdiff_t lda1, const float *B1, ptrdiff_t ldb1,
        ptrdiff_t K2, const float *A2, ptrdiff_t lda2, const float *B2, ptrdiff_t ldb2,
        float *C, ptrdiff_t ldc)
{
    ptrdiff_t n0 = 0;
    for (; n0 + 32 <= N; n0 += 32) {
        rnn_v16 bv0 = *(const rnn_v16 *)(bias + n0), bv1 = *(const rnn_v16 *)(bias + n0 + 16);
        ptrdiff_t m0 = 0;
        for (; m0 + 8 <= M; m0 += 8) {
            rnn_v16 acc[8][2];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                acc[r][0] = bv0;
                acc[r][1] = bv1;
            }
            rnn_blk8x32(acc, K1, A1 + m0 * lda1, 1, B1 + n0, ldb1, lda1);
            rnn_blk8x32(acc, K2, A2 + m0 * lda2, 1, B2 + n0, ldb2, lda2);
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                *(rnn_v16 *)(C + (m0 + r) * ldc + n0) = acc[r][0];
                *(rnn_v16 *)(C + (m0 + r) * ldc + n0 + 16) = acc[r][1];
            }
        }
        for (; m0 < M; m0++) {
            rnn_v16 acc[2] = {bv0, bv1};
            rnn_blk1x32(acc, K1, A1 + m0 * lda1, B1 + n0, ldb1);
            rnn_blk1x32(acc, K2, A2 + m0 * lda2, B2 + n0, ldb2);
            *(rnn_v16 *)(C + m0 * ldc + n0) = acc[0];
            *(rnn_v16 *)(C + m0 * ldc + n0 + 16) = acc[1];
        }
    }
    for (ptrdiff_t m = 0; m < M && n0 < N; m++) {
        for (ptrdiff_t n = n0; n < N; n++) {
            float s = bias[n];
            for (ptrdiff_t k = 0; k < K1; k++)
                s += A1[m * lda1 + k] * B1[k * ldb1 + n];
            for (ptrdiff_t k = 0; k < K2; k++)
                s += A2[m * lda2 + k] * B2[k * ldb2 + n];
            C[m * ldc + n] = s;
        }
    }
}

/* The weight gradients of a recurrent layer, one block of gate rows: C1[M x N1] = A^T B1,
 * C2[M x N2] = A^T B2 and (colsum not NULL) colsum[M] = the column sums of A, where A is
 * K x M with row stride lda (the pre-activation gate gradients of every step and
 * observation, M of the gate columns), B1 and B2 the inputs and the previous hidden
 * states (K rows each).  rnn_sgemm reads A^T in place: 8 floats of each 2 KB row of A,
 * rows that fall in a few L1 sets, so every register block fetched its A panel from L2 or
 * L3 again, for each 32 columns of each product (dW and dR at 64 x 32 x 100, H = 128:
 * 7.1 ms).  Here each RNN_KB rows of A are packed once (8 columns x RNN_KB rows together
 * per register block, zero past M; 16 columns per pass, so each 64-byte line of A is
 * read once) and serve both products and the sums from cache (6.1-6.4 ms).  The sums are
 * rnn_sgemm's: k in order within blocks of RNN_KB, the partial sums kept in C between
 * blocks; the column sums in k order.  buf: ceil(M / 8) * 8 * RNN_KB floats. */
static inline __attribute__((always_inline)) void rnn_at_part(ptrdiff_t M, ptrdiff_t N,
                        ptrdiff_t kn, const float *Ap,
                        const float *B, ptrdiff_t ldb, float *C, ptrdiff_t ldc, int acc_in)
{
    ptrdiff_t n0 = 0;
    for (; n0 + 32 <= N; n0 += 32) {
        for (ptrdiff_t m0 = 0; m0 < M; m0 += 8) {
            ptrdiff_t nr = M - m0 < 8 ? M - m0 : 8;
            const float *ap = Ap + m0 * kn;
            rnn_v16 acc[8][2];
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                if (acc_in && r < nr) {
                    acc[r][0] = *(const rnn_v16 *)(C + (m0 + r) * ldc + n0);
                    acc[r][1] = *(const rnn_v16 *)(C + (m0 + r) * ldc + n0 + 16);
                } else {
                    acc[r][0] = (rnn_v16){0};
                    acc[r][1] = (rnn_v16){0};
                }
            }
            rnn_blk8x32(acc, kn, ap, 8, B + n0, ldb, 1);
#pragma GCC unroll 8
            for (int r = 0; r < 8; r++) {
                if (r < nr) {
                    *(rnn_v16 *)(C + (m0 + r) * ldc + n0) = acc[r][0];
                    *(rnn_v16 *)(C + (m0 + r) * ldc + n0 + 16) = acc[r][1];
                }
            }
        }
    }
    for (ptrdiff_t m = 0; m < M && n0 < N; m++) {
        const float *ap = Ap + (m / 8) * 8 * kn + m % 8;
        for (ptrdiff_t n = n0; n < N; n++) {
            float s = acc_in ? C[m * ldc + n] : 0.0f;
            for (ptrdiff_t k = 0; k < kn; k++)
                s += ap[k * 8] * B[k * ldb + n];
            C[m * ldc + n] = s;
        }
    }
}

RNN_CLONES static void rnn_sgemm_at2(ptrdiff_t M, ptrdiff_t K, const float *A, ptrdiff_t lda,
        ptrdiff_t N1, const float *B1, ptrdiff_t ldb1, float *C1, ptrdiff_t ldc1,
        ptrdiff_t N2, const float *B2, ptrdiff_t ldb2, float *C2, ptrdiff_t ldc2,
        float *colsum, float *buf)
{
    ptrdiff_t M8 = (M + 7) / 8 * 8;
    for (ptrdiff_t k0 = 0; k0 < K || (K == 0 && k0 == 0); k0 += RNN_KB) {
        ptrdiff_t kn = K - k0 < RNN_KB ? K - k0 : RNN_KB;
        /* two blocks of 8 columns at a time: each 64-byte line of A read once */
        for (ptrdiff_t m0 = 0; m0 < M8; m0 += 16) {
            ptrdiff_t nr = M - m0 < 16 ? M - m0 : 16;
            rnn_v8 s0 = {0}, s1 = {0};
            for (ptrdiff_t r = 0; r < nr && k0 > 0 && colsum; r++) {
                if (r < 8)
                    s0[r] = colsum[m0 + r];
                else
                    s1[r - 8] = colsum[m0 + r];
            }
            float *b0 = buf + m0 * kn, *b1 = b0 + 8 * kn;
            for (ptrdiff_t k = 0; k < kn; k++) {
                const float *a = A + (k0 + k) * lda + m0;
                rnn_v8 v0 = {0}, v1 = {0};
                if (nr == 16) {
                    v0 = *(const rnn_v8 *)a;
                    v1 = *(const rnn_v8 *)(a + 8);
                } else {
                    for (ptrdiff_t r = 0; r < nr; r++) {
                        if (r < 8)
                            v0[r] = a[r];
                        else
                            v1[r - 8] = a[r];
                    }
                }
                *(rnn_v8 *)(b0 + k * 8) = v0;
                s0 += v0;
                if (nr > 8) {
                    *(rnn_v8 *)(b1 + k * 8) = v1;
                    s1 += v1;
                }
            }
            for (ptrdiff_t r = 0; r < nr && colsum; r++)
                colsum[m0 + r] = r < 8 ? s0[r] : s1[r - 8];
        }
        if (N1)
            rnn_at_part(M, N1, kn, buf, B1 + k0 * ldb1, ldb1, C1, ldc1, k0 > 0);
        if (N2)
            rnn_at_part(M, N2, kn, buf, B2 + k0 * ldb2, ldb2, C2, ldc2, k0 > 0);
        if (K == 0)
            break;
    }
}

/* The LSTM cell of one forward step for nb rows, tanh state and sigmoid gate activations
 * (the defaults): activates the pre-activations g (i, f, g, o blocks, row stride 4H) in
 * place, c = f .* c_prev + i .* g, h = o .* tanh(c), in one vectorized pass per row. */
RNN_CLONES static void rnn_lstm_cell_f(ptrdiff_t nb, ptrdiff_t H, float *restrict g,
        const float *restrict cp, float *restrict cn, float *restrict hn)
{
    for (ptrdiff_t i = 0; i < nb; i++) {
        float *gr = g + i * 4 * H;
        const float *cpr = cp + i * H;
        float *cnr = cn + i * H, *hnr = hn + i * H;
        for (ptrdiff_t j = 0; j < H; j++) {
            float gi = rnn_sigmoid2f(gr[j]), gf = rnn_sigmoid2f(gr[H + j]);
            float gg = rnn_tanh2f(gr[2 * H + j]), go = rnn_sigmoid2f(gr[3 * H + j]);
            float c = gf * cpr[j] + gi * gg;
            gr[j] = gi; gr[H + j] = gf; gr[2 * H + j] = gg; gr[3 * H + j] = go;
            cnr[j] = c;
            hnr[j] = go * rnn_tanh2f(c);
        }
    }
}

/* One LSTM backward step for a chunk of nb observations (rows), float32 and float64:
 * from the activated gates g (i, f, g, o blocks, row stride 4H), the state activation
 * of the cell state sc = act(c_t) and c_{t-1}, the running gradients dh (plus dy_t when
 * dy is not NULL) and dc, writes the pre-activation gate gradients dg and updates dc to
 * dc_{t-1}.  Derivatives from the outputs, as selects (vectorizable for every kind):
 * state tanh 1 - y^2, softsign (1 - |y|)^2, relu y > 0; gate sigmoid y (1 - y),
 * hard-sigmoid 0.2 inside (0, 1). */
#define RNN_LSTM_BWD(T, SUF)                                                              \
static inline T rnn_sgrad_##SUF(T y, int kind)                                            \
{                                                                                         \
    T a = 1 - (y < 0 ? -y : y);                                                           \
    return kind == 0 ? 1 - y * y : (kind == 1 ? a * a : (y > 0 ? (T)1 : (T)0));            \
}                                                                                         \
static inline T rnn_ggrad_##SUF(T y, int kind)                                            \
{                                                                                         \
    return kind == 0 ? y * (1 - y) : ((y > 0 && y < 1) ? (T)0.2 : (T)0);                  \
}                                                                                         \
RNN_CLONES static void rnn_lstm_bwd_##SUF(ptrdiff_t nb, ptrdiff_t H,                     \
        const T *restrict g, const T *restrict sc, const T *restrict cprev,               \
        const T *restrict dy, T *restrict dh, T *restrict dc, T *restrict dg,             \
        int sact, int gact)                                                               \
{                                                                                         \
    for (ptrdiff_t i = 0; i < nb; i++) {                                                  \
        const T *gr = g + i * 4 * H;                                                      \
        T *dgr = dg + i * 4 * H;                                                          \
        const T *scr = sc + i * H, *cpr = cprev + i * H;                                  \
        T *dhr = dh + i * H, *dcr = dc + i * H;                                           \
        const T *dyr = dy ? dy + i * H : NULL;                                            \
        for (ptrdiff_t j = 0; j < H; j++) {                                               \
            T gi = gr[j], gf = gr[H + j], gg = gr[2 * H + j], go = gr[3 * H + j];         \
            T s = scr[j];                                                                 \
            T dhc = dyr ? dhr[j] + dyr[j] : dhr[j];                                       \
            T dcc = dcr[j] + dhc * go * rnn_sgrad_##SUF(s, sact);                         \
            dgr[j] = dcc * gg * rnn_ggrad_##SUF(gi, gact);                                \
            dgr[H + j] = dcc * cpr[j] * rnn_ggrad_##SUF(gf, gact);                        \
            dgr[2 * H + j] = dcc * gi * rnn_sgrad_##SUF(gg, sact);                        \
            dgr[3 * H + j] = dhc * s * rnn_ggrad_##SUF(go, gact);                         \
            dcr[j] = dcc * gf;                                                            \
        }                                                                                 \
    }                                                                                     \
}

RNN_LSTM_BWD(float, f)
RNN_LSTM_BWD(double, d)

/* rnn_lstm_bwd_f for the default activations (tanh state, sigmoid gates), float32, with
 * the state activation tanh(c_t) formed in the same pass from the cell states c (the
 * forward's rnn_tanh2f) instead of a separate pass into a buffer. */
RNN_CLONES static void rnn_lstm_bwd_cell_f(ptrdiff_t nb, ptrdiff_t H, const float *restrict g,
        const float *restrict c, const float *restrict cprev, const float *restrict dy,
        float *restrict dh, float *restrict dc, float *restrict dg)
{
    for (ptrdiff_t i = 0; i < nb; i++) {
        const float *gr = g + i * 4 * H, *cr = c + i * H, *cpr = cprev + i * H;
        float *dgr = dg + i * 4 * H, *dhr = dh + i * H, *dcr = dc + i * H;
        const float *dyr = dy ? dy + i * H : NULL;
        for (ptrdiff_t j = 0; j < H; j++) {
            float gi = gr[j], gf = gr[H + j], gg = gr[2 * H + j], go = gr[3 * H + j];
            float s = rnn_tanh2f(cr[j]);
            float dhc = dyr ? dhr[j] + dyr[j] : dhr[j];
            float dcc = dcr[j] + dhc * go * (1 - s * s);
            dgr[j] = dcc * gg * (gi * (1 - gi));
            dgr[H + j] = dcc * cpr[j] * (gf * (1 - gf));
            dgr[2 * H + j] = dcc * gi * (1 - gg * gg);
            dgr[3 * H + j] = dhc * s * (go * (1 - go));
            dcr[j] = dcc * gf;
        }
    }
}

/* GRU backward step for a chunk of nb observations (gates r, z, n activated, row stride
 * 3H; hp = h_(t-1); hn = R_n h + Rb_n, or r .* h in 'before-multiplication' mode).
 * after: the input and recurrent pre-activation gradients ax, ah and dh <- dh_t .* z.
 * before1/before2: the two passes around the product d(r .* h) = dpre_n R_n. */
#define RNN_GRU_BWD(T, SUF)                                                               \
RNN_CLONES static void rnn_gru_bwd_after_##SUF(ptrdiff_t nb, ptrdiff_t H,                 \
        const T *restrict g, const T *restrict hp, const T *restrict hn,                  \
        const T *restrict dy, T *restrict dh, T *restrict ax, T *restrict ah,             \
        int sact, int gact)                                                               \
{                                                                                         \
    for (ptrdiff_t i = 0; i < nb; i++) {                                                  \
        const T *gr = g + i * 3 * H, *hpr = hp + i * H, *hnr = hn + i * H;                \
        const T *dyr = dy ? dy + i * H : NULL;                                            \
        T *dhr = dh + i * H, *axr = ax + i * 3 * H, *ahr = ah + i * 3 * H;                \
        for (ptrdiff_t j = 0; j < H; j++) {                                               \
            T rr = gr[j], z = gr[H + j], n = gr[2 * H + j];                               \
            T dhc = dyr ? dhr[j] + dyr[j] : dhr[j];                                       \
            T dpn = dhc * (1 - z) * rnn_sgrad_##SUF(n, sact);                             \
            T dpz = dhc * (hpr[j] - n) * rnn_ggrad_##SUF(z, gact);                        \
            T dpr = dpn * hnr[j] * rnn_ggrad_##SUF(rr, gact);                             \
            axr[j] = dpr; axr[H + j] = dpz; axr[2 * H + j] = dpn;                         \
            ahr[j] = dpr; ahr[H + j] = dpz; ahr[2 * H + j] = dpn * rr;                    \
            dhr[j] = dhc * z;                                                             \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
RNN_CLONES static void rnn_gru_bwd_before1_##SUF(ptrdiff_t nb, ptrdiff_t H,               \
        const T *restrict g, const T *restrict hp, const T *restrict dy,                  \
        T *restrict dh, T *restrict ax, int sact, int gact)                               \
{                                                                                         \
    for (ptrdiff_t i = 0; i < nb; i++) {                                                  \
        const T *gr = g + i * 3 * H, *hpr = hp + i * H;                                   \
        const T *dyr = dy ? dy + i * H : NULL;                                            \
        T *dhr = dh + i * H, *axr = ax + i * 3 * H;                                       \
        for (ptrdiff_t j = 0; j < H; j++) {                                               \
            T z = gr[H + j], n = gr[2 * H + j];                                           \
            T dhc = dyr ? dhr[j] + dyr[j] : dhr[j];                                       \
            axr[2 * H + j] = dhc * (1 - z) * rnn_sgrad_##SUF(n, sact);                    \
            axr[H + j] = dhc * (hpr[j] - n) * rnn_ggrad_##SUF(z, gact);                   \
            dhr[j] = dhc * z;                                                             \
        }                                                                                 \
    }                                                                                     \
}                                                                                         \
RNN_CLONES static void rnn_gru_bwd_before2_##SUF(ptrdiff_t nb, ptrdiff_t H,               \
        const T *restrict g, const T *restrict hp, const T *restrict drh,                 \
        T *restrict dh, T *restrict ax, int gact)                                         \
{                                                                                         \
    for (ptrdiff_t i = 0; i < nb; i++) {                                                  \
        const T *gr = g + i * 3 * H, *hpr = hp + i * H, *drr = drh + i * H;               \
        T *dhr = dh + i * H, *axr = ax + i * 3 * H;                                       \
        for (ptrdiff_t j = 0; j < H; j++) {                                               \
            T rr = gr[j];                                                                 \
            axr[j] = drr[j] * hpr[j] * rnn_ggrad_##SUF(rr, gact);                         \
            dhr[j] = dhr[j] + drr[j] * rr;                                                \
        }                                                                                 \
    }                                                                                     \
}

RNN_GRU_BWD(float, f)
RNN_GRU_BWD(double, d)

#endif
