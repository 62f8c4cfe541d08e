"""The float32 building blocks of the recurrent kernels (pyx/_rnn_simd.h) built for each
x86-64 level (baseline SSE2, v3 = AVX2 + FMA, v4 = AVX-512): the extension carries all
three as target_clones but runs only the best one this CPU has, so each level is compiled
here on its own and checked against double-precision references (products with plain and
transposed A, K past one block of 256, tail rows and columns; sigmoid and tanh over
[-30, 30]; NaN propagation).  The blocks of the fused LSTM step too: the two-part product
with a bias (against double precision, the same bits however the rows are split, and
rnn_sgemm's bits over the concatenated K), the integer-clamped sigmoid (rnn_sigmoidf's
bits), the expm1-based tanh (within 2.5 ulp), the cell and its backward (against double-
precision formulas), the packed weight-gradient products and column sums (rnn_sgemm's
bits outside its leftover columns, a sequential sum's bits, double precision).  Skips
without a C compiler or on other architectures."""
import os
import pathlib
import platform
import shutil
import subprocess

import pytest

PYX = pathlib.Path(__file__).resolve().parent.parent / "pyx"

HARNESS = r"""
#define RNN_CLONES
#include "_rnn_simd.h"
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
int main(void){
  int M=21,N=77,K=300; float *A=malloc(4*M*K),*B=malloc(4*K*N),*C=malloc(4*M*N);
  srand(1); for(int i=0;i<M*K;i++)A[i]=rand()/(float)RAND_MAX-0.5f; for(int i=0;i<K*N;i++)B[i]=rand()/(float)RAND_MAX-0.5f;
  for(int i=0;i<M*N;i++)C[i]=0.25f;
  rnn_sgemm(M,N,K,A,K,1,B,N,C,N,1);
  double worst=0; for(int m=0;m<M;m++)for(int n=0;n<N;n++){double s=0.25;for(int k=0;k<K;k++)s+=(double)A[m*K+k]*B[k*N+n]; double e=fabs(s-C[m*N+n]); if(e>worst)worst=e;}
  /* transposed A (sam=1, sak=M) */
  float *At=malloc(4*M*K); for(int m=0;m<M;m++)for(int k=0;k<K;k++)At[k*M+m]=A[m*K+k];
  rnn_sgemm(M,N,K,At,1,M,B,N,C,N,0);
  double worst2=0; for(int m=0;m<M;m++)for(int n=0;n<N;n++){double s=0;for(int k=0;k<K;k++)s+=(double)A[m*K+k]*B[k*N+n]; double e=fabs(s-C[m*N+n]); if(e>worst2)worst2=e;}
  float x[2001],y[2001],z[2001]; for(int i=0;i<2001;i++){x[i]=-30+0.03f*i;y[i]=x[i];z[i]=x[i];}
  for(int i=0;i<2001;i++){y[i]=rnn_sigmoidf(y[i]); z[i]=rnn_tanhf(z[i]);} double ws=0,wt=0;
  for(int i=0;i<2001;i++){double s=1/(1+exp(-(double)x[i])), t=tanh((double)x[i]); if(fabs(y[i]-s)>ws)ws=fabs(y[i]-s); if(fabs(z[i]-t)>wt)wt=fabs(z[i]-t);}
  float nanv=rnn_tanhf(NAN);
  printf("gemm %.2e gemmT %.2e sigmoid %.2e tanh %.2e nan %d\n",worst,worst2,ws,wt,isnan(nanv));
  return !(worst<1e-4 && worst2<1e-4 && ws<2e-7 && wt<2e-7 && isnan(nanv));
}
"""

HARNESS_STEP = r"""
#define RNN_CLONES
#include "_rnn_simd.h"
#include <stdio.h>
#include <math.h>
#include <stdlib.h>
static float rnd(void){ return rand() / (float)RAND_MAX - 0.5f; }
int main(void){
  int ok = 1;
  /* C = bias + A1 B1 + A2 B2 (tail rows and columns) against double precision, the rows
   * at once, split 8 + 13 and one by one (bit for bit); without a column tail (N = 64)
   * against rnn_sgemm over [A1 A2] (bit for bit) */
  int M = 21, N = 77, K1 = 70, K2 = 300, K = K1 + K2;
  float *A1 = malloc(4*M*K1), *A2 = malloc(4*M*K2), *B1 = malloc(4*K1*N), *B2 = malloc(4*K2*N);
  float *bias = malloc(4*N), *A = malloc(4*M*K), *B = malloc(4*K*N);
  float *C = malloc(4*M*N), *D = malloc(4*M*N), *E = malloc(4*M*N);
  srand(3);
  for (int i = 0; i < M*K1; i++) A1[i] = rnd();
  for (int i = 0; i < M*K2; i++) A2[i] = rnd();
  for (int i = 0; i < K1*N; i++) B1[i] = rnd();
  for (int i = 0; i < K2*N; i++) B2[i] = rnd();
  for (int i = 0; i < N; i++) bias[i] = rnd();
  for (int m = 0; m < M; m++) for (int k = 0; k < K; k++)
    A[m*K + k] = k < K1 ? A1[m*K1 + k] : A2[m*K2 + k - K1];
  for (int k = 0; k < K; k++) for (int n = 0; n < N; n++)
    B[k*N + n] = k < K1 ? B1[k*N + n] : B2[(k - K1)*N + n];
  rnn_sgemm_bias2(M, N, bias, K1, A1, K1, B1, N, K2, A2, K2, B2, N, C, N);
  rnn_sgemm_bias2(8, N, bias, K1, A1, K1, B1, N, K2, A2, K2, B2, N, D, N);
  rnn_sgemm_bias2(M - 8, N, bias, K1, A1 + 8*K1, K1, B1, N, K2, A2 + 8*K2, K2, B2, N,
                  D + 8*N, N);
  for (int m = 0; m < M; m++)
    rnn_sgemm_bias2(1, N, bias, K1, A1 + m*K1, K1, B1, N, K2, A2 + m*K2, K2, B2, N,
                    E + m*N, N);
  double worst = 0; int same = 1;
  for (int m = 0; m < M; m++) for (int n = 0; n < N; n++) {
    double s = bias[n];
    for (int k = 0; k < K; k++) s += (double)A[m*K + k] * B[k*N + n];
    if (fabs(s - C[m*N + n]) > worst) worst = fabs(s - C[m*N + n]);
    same &= C[m*N + n] == D[m*N + n] && C[m*N + n] == E[m*N + n];
  }
  int N2 = 64;
  for (int m = 0; m < M; m++) for (int n = 0; n < N2; n++) D[m*N2 + n] = bias[n];
  rnn_sgemm(M, N2, K, A, K, 1, B, N, D, N2, 1);
  rnn_sgemm_bias2(M, N2, bias, K1, A1, K1, B1, N, K2, A2, K2, B2, N, C, N2);
  for (int i = 0; i < M*N2; i++) same &= C[i] == D[i];
  ok &= worst < 1e-4 && same;
  /* sigmoid2 = sigmoidf bit for bit; tanh2 within 2.5 ulp (and 2e-7) of tanh */
  enum { NX = 24007 };
  static float x[NX], y1[NX], y2[NX];
  for (int i = 0; i < NX - 10; i++) x[i] = -60.0f + 0.005f * i;
  float specials[10] = {NAN, -NAN, INFINITY, -INFINITY, 0.0f, -0.0f, 1e-30f, -1e-30f,
                        1e-40f, 95.0f};
  for (int i = 0; i < 10; i++) x[NX - 10 + i] = specials[i];
  for (int i = 0; i < NX; i++) y1[i] = y2[i] = x[i];
  for (int i = 0; i < NX; i++) y1[i] = rnn_sigmoidf(y1[i]);
  rnn_sigmoid2_f(y2, NX);
  int sig_same = 1;
  for (int i = 0; i < NX; i++)
    sig_same &= (y1[i] == y2[i]) || (isnan(y1[i]) && isnan(y2[i]));
  ok &= sig_same;
  for (int i = 0; i < NX; i++) y2[i] = x[i];
  rnn_tanh2_f(y2, NX);
  double tabs = 0, tulp = 0;
  for (int i = 0; i < NX - 10; i++) {
    double t = tanh((double)x[i]), e = fabs(y2[i] - t);
    float at = fabsf((float)t);
    double u = e / (nextafterf(at, INFINITY) - at);
    if (e > tabs) tabs = e;
    if (u > tulp) tulp = u;
  }
  float *sp = y2 + NX - 10;
  int tspec = isnan(sp[0]) && isnan(sp[1]) && sp[2] == 1 && sp[3] == -1 && sp[4] == 0
      && !signbit(sp[4]) && sp[5] == 0 && signbit(sp[5]) && sp[6] == 1e-30f
      && sp[7] == -1e-30f && sp[8] > 0 && sp[9] == 1;
  ok &= tabs < 2e-7 && tulp <= 2.5 && tspec;
  /* the LSTM cell (rows of 4H pre-activations) against double precision */
  int nb = 5, H = 37;
  float *g = malloc(4*nb*4*H), *g0 = malloc(4*nb*4*H), *cp = malloc(4*nb*H);
  float *cn = malloc(4*nb*H), *hn = malloc(4*nb*H);
  for (int i = 0; i < nb*4*H; i++) g[i] = g0[i] = 8 * rnd();
  for (int i = 0; i < nb*H; i++) cp[i] = 4 * rnd();
  rnn_lstm_cell_f(nb, H, g, cp, cn, hn);
  double cell = 0;
  for (int i = 0; i < nb; i++) for (int j = 0; j < H; j++) {
    const float *q = g0 + i*4*H;
    double gi = 1 / (1 + exp(-(double)q[j])), gf = 1 / (1 + exp(-(double)q[H + j]));
    double gg = tanh((double)q[2*H + j]), go = 1 / (1 + exp(-(double)q[3*H + j]));
    double c = gf * cp[i*H + j] + gi * gg, h = go * tanh(c);
    double e[6] = {g[i*4*H + j] - gi, g[i*4*H + H + j] - gf, g[i*4*H + 2*H + j] - gg,
                   g[i*4*H + 3*H + j] - go, cn[i*H + j] - c, hn[i*H + j] - h};
    for (int k = 0; k < 6; k++) if (fabs(e[k]) > cell) cell = fabs(e[k]);
  }
  ok &= cell < 1e-6;
  /* its backward (tanh(c) formed in the pass) against double precision */
  float *c1 = malloc(4*nb*H), *dy = malloc(4*nb*H), *dh = malloc(4*nb*H), *dc = malloc(4*nb*H);
  float *dg = malloc(4*nb*4*H), *dh0 = malloc(4*nb*H), *dc0 = malloc(4*nb*H);
  for (int i = 0; i < nb*H; i++) {
    c1[i] = 4 * rnd(); dy[i] = rnd(); dh[i] = dh0[i] = rnd(); dc[i] = dc0[i] = rnd();
  }
  rnn_lstm_bwd_cell_f(nb, H, g, c1, cp, dy, dh, dc, dg);
  double bwd = 0;
  for (int i = 0; i < nb; i++) for (int j = 0; j < H; j++) {
    const float *q = g + i*4*H;
    double gi = q[j], gf = q[H + j], gg = q[2*H + j], go = q[3*H + j];
    double s = tanh((double)c1[i*H + j]), dhc = (double)dh0[i*H + j] + dy[i*H + j];
    double dcc = dc0[i*H + j] + dhc * go * (1 - s * s);
    double e[6] = {dg[i*4*H + j] - dcc * gg * gi * (1 - gi),
                   dg[i*4*H + H + j] - dcc * cp[i*H + j] * gf * (1 - gf),
                   dg[i*4*H + 2*H + j] - dcc * gi * (1 - gg * gg),
                   dg[i*4*H + 3*H + j] - dhc * s * go * (1 - go),
                   dc[i*H + j] - dcc * gf, dh[i*H + j] - dh0[i*H + j]};
    for (int k = 0; k < 6; k++) if (fabs(e[k]) > bwd) bwd = fabs(e[k]);
  }
  ok &= bwd < 1e-6;
  /* weight gradients C1 = A^T B1, C2 = A^T B2 and the column sums of A (K past two blocks
   * of 256, rows and columns with tails) against rnn_sgemm on the transposed view (bit
   * for bit but in its leftover columns), a sequential sum (bit for bit) and double */
  int WM = 21, WK = 600, lda = 29, WN1 = 77, WN2 = 40;
  float *WA = malloc(4*WK*lda), *WB1 = malloc(4*WK*WN1), *WB2 = malloc(4*WK*WN2);
  float *W1 = malloc(4*WM*WN1), *W2 = malloc(4*WM*WN2), *R1 = malloc(4*WM*WN1);
  float *R2 = malloc(4*WM*WN2), *cs = malloc(4*WM), *buf = malloc(4*24*256);
  for (int i = 0; i < WK*lda; i++) WA[i] = rnd();
  for (int i = 0; i < WK*WN1; i++) WB1[i] = rnd();
  for (int i = 0; i < WK*WN2; i++) WB2[i] = rnd();
  rnn_sgemm_at2(WM, WK, WA + 3, lda, WN1, WB1, WN1, W1, WN1, WN2, WB2, WN2, W2, WN2, cs, buf);
  rnn_sgemm(WM, WN1, WK, WA + 3, 1, lda, WB1, WN1, R1, WN1, 0);
  rnn_sgemm(WM, WN2, WK, WA + 3, 1, lda, WB2, WN2, R2, WN2, 0);
  int wsame = 1; double werr = 0;
  for (int m = 0; m < WM; m++) {
    float sum = 0;
    for (int k = 0; k < WK; k++) sum += WA[k*lda + 3 + m];
    wsame &= cs[m] == sum;
    for (int n = 0; n < WN1 + WN2; n++) {
      int first = n < WN1, nn = first ? n : n - WN1, ld = first ? WN1 : WN2;
      const float *Bm = first ? WB1 : WB2;
      float got = first ? W1[m*WN1 + nn] : W2[m*WN2 + nn];
      float ref = first ? R1[m*WN1 + nn] : R2[m*WN2 + nn];
      double d = 0;
      for (int k = 0; k < WK; k++) d += (double)WA[k*lda + 3 + m] * Bm[k*ld + nn];
      if (fabs(d - got) > werr) werr = fabs(d - got);
      if (nn < ld / 32 * 32) wsame &= got == ref;
    }
  }
  ok &= wsame && werr < 1e-4;
  printf("bias2 %.2e same %d sigmoid2 same %d tanh2 %.2e %.2f ulp specials %d cell %.2e "
         "bwd %.2e at2 %.2e same %d\n", worst, same, sig_same, tabs, tulp, tspec, cell, bwd,
         werr, wsame);
  return !ok;
}
"""

LEVELS = {"x86-64": set(), "x86-64-v3": {"avx2", "fma"}, "x86-64-v4": {"avx512f"}}


def _cpu_flags():
    try:
        text = pathlib.Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def _run_harness(source, level, tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs a C compiler on x86-64")
    if not LEVELS[level] <= _cpu_flags():
        pytest.skip(f"this CPU cannot run {level}")
    c = tmp_path / "harness.c"
    c.write_text(source)
    exe = tmp_path / "harness"
    build = subprocess.run([cc, "-O3", f"-march={level}", f"-I{PYX}", str(c), "-o", str(exe),
                            "-lm"], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"the compiler rejected -march={level}: {build.stderr[:200]}")
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.mark.parametrize("level", list(LEVELS))
def test_rnn_simd_each_isa_level(level, tmp_path):
    _run_harness(HARNESS, level, tmp_path)


@pytest.mark.parametrize("level", list(LEVELS))
def test_lstm_step_blocks_each_isa_level(level, tmp_path):
    _run_harness(HARNESS_STEP, level, tmp_path)
