"""The float32 building blocks of the recurrent kernels (pyx/_rnn_simd.h) built for each
x86-64 level (baseline SSE2, v3 = AVX2 + FMA, v4 = AVX-512): the extension carries all
three as target_clones but runs only the best one this CPU has, so each level is compiled
here on its own and checked against double-precision references (products with plain and
transposed A, K past one block of 256, tail rows and columns; sigmoid and tanh over
[-30, 30]; NaN propagation).  Skips without a C compiler or on other architectures."""
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
  rnn_sigmoid_f(y,2001); rnn_tanh_f(z,2001); double ws=0,wt=0;
  for(int i=0;i<2001;i++){double s=1/(1+exp(-(double)x[i])), t=tanh((double)x[i]); if(fabs(y[i]-s)>ws)ws=fabs(y[i]-s); if(fabs(z[i]-t)>wt)wt=fabs(z[i]-t);}
  float nanv=NAN; rnn_tanh_f(&nanv,1);
  printf("gemm %.2e gemmT %.2e sigmoid %.2e tanh %.2e nan %d\n",worst,worst2,ws,wt,isnan(nanv));
  return !(worst<1e-4 && worst2<1e-4 && ws<2e-7 && wt<2e-7 && isnan(nanv));
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


@pytest.mark.parametrize("level", list(LEVELS))
def test_rnn_simd_each_isa_level(level, tmp_path):
    cc = shutil.which(os.environ.get("CC", "cc")) or shutil.which("gcc")
    if cc is None or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("needs a C compiler on x86-64")
    if not LEVELS[level] <= _cpu_flags():
        pytest.skip(f"this CPU cannot run {level}")
    c = tmp_path / "harness.c"
    c.write_text(HARNESS)
    exe = tmp_path / "harness"
    build = subprocess.run([cc, "-O3", f"-march={level}", f"-I{PYX}", str(c), "-o", str(exe),
                            "-lm"], capture_output=True, text=True)
    if build.returncode != 0:
        pytest.skip(f"the compiler rejected -march={level}: {build.stderr[:200]}")
    run = subprocess.run([str(exe)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout + run.stderr
