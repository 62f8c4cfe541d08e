"""Elementwise activations against PyTorch (issue 16's speed criterion): a script, not a test.

Times mlayers' activation operations (``mlayers.functional.activations``: compiled one-pass
kernels, ``mlayers._ops_act``) on a Fortran-ordered ``H x W x C x N`` array (MATLAB's
layout, formatted ``SSCB``) and the PyTorch CPU equivalents on the same memory seen as a
C-ordered ``N x C x W x H`` tensor, in alternating blocks (a few calls of ours, then of
torch's, ...; the first call of a block is not timed: on 2 threads, right after the other
library's call, that library's OpenMP workers still spin on the cores, which made
mlayers' relu 6-8 % slower and PyTorch's 1-4 % faster in three runs).  ``fwd`` is the
forward call, ``bwd`` the backward (mlayers: the operation's backward closure, what
``dlgradient`` calls; PyTorch: the matching ``torch.ops.aten.*_backward`` kernel, which is
what autograd runs; crossChNorm5 = ``crosschannelnorm(X, 5)`` vs ``local_response_norm``,
a composite op in PyTorch, whose bwd column is forward + autograd backward).

With 1 thread the times are the calling thread's CPU time (``time.thread_time``: steadier on a
shared machine, and blind to other threads' idle spinning, which ``process_time`` counts);
with more threads wall time.  Minimum over repetitions; ratio = torch / mlayers (>= 1:
mlayers at least as fast)::

    python bench/activations.py                        # 56x56x64x32 float32, 1 and 2 threads
    python bench/activations.py --size 28,28,16,8 --reps 3
    python bench/activations.py --threads 1 --cases gelu,sigmoid
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mlayers as ml  # noqa: E402
from mlayers.functional import activations as A  # noqa: E402


def _raw(op):
    return op.__wrapped_operation__


def cases(x, torch):
    F = torch.nn.functional
    X = ml.dlarray(x, "SSCB")
    dy = np.asfortranarray(np.random.default_rng(1).standard_normal(x.shape).astype(x.dtype))
    t = torch.from_numpy(x.T)
    tdy = torch.from_numpy(dy.T)
    aten = torch.ops.aten
    tg = t.clone().requires_grad_(True)
    ty = torch.sigmoid(t)       # autograd's sigmoid backward reads the forward result

    def lrn_fwd_bwd():          # composite in PyTorch (no backward kernel): fwd + autograd
        tg.grad = None
        F.local_response_norm(tg, 5).backward(tdy)

    def ours(fn):
        def fwd():
            return fn(X)

        def bwd(state={}):
            if "b" not in state:
                state["b"] = fn(X)[1]
            return state["b"](dy)
        return fwd, bwd

    table = [
        ("leakyRelu", lambda X: _raw(A.leakyrelu)(X, 0.01), lambda: F.leaky_relu(t, 0.01),
         lambda: aten.leaky_relu_backward(tdy, t, 0.01, False)),
        ("clippedRelu", lambda X: _raw(A.clippedrelu)(X, 6.0), lambda: F.hardtanh(t, 0.0, 6.0),
         lambda: aten.hardtanh_backward(tdy, t, 0.0, 6.0)),
        ("elu", lambda X: _raw(A.elu)(X, 1.0), lambda: F.elu(t),
         lambda: aten.elu_backward(tdy, 1.0, 1, 1, False, t)),
        ("gelu", lambda X: _raw(A.gelu)(X), lambda: F.gelu(t),
         lambda: aten.gelu_backward(tdy, t)),
        ("gelu tanh", lambda X: _raw(A.gelu)(X, Approximation="tanh"),
         lambda: F.gelu(t, approximate="tanh"),
         lambda: aten.gelu_backward(tdy, t, approximate="tanh")),
        ("sigmoid", lambda X: _raw(A.sigmoid)(X), lambda: torch.sigmoid(t),
         lambda: aten.sigmoid_backward(tdy, ty)),
        ("swish", lambda X: _raw(A.swish)(X), lambda: F.silu(t),
         lambda: aten.silu_backward(tdy, t)),
        ("softplus", lambda X: _raw(A.softplus)(X), lambda: F.softplus(t),
         lambda: aten.softplus_backward(tdy, t, 1, 20)),
        ("crossChNorm5", lambda X: _raw(ml.crosschannelnorm)(X, 5),
         lambda: F.local_response_norm(t, 5), lrn_fwd_bwd),
    ]
    for name, fn, tf, tb in table:
        f, b = ours(fn)
        yield name, f, b, tf, tb


def run(args):
    import torch
    h, w, c, n = (int(v) for v in args.size.split(","))
    x = np.asfortranarray(np.random.default_rng(0).standard_normal((h, w, c, n))
                          .astype(args.dtype))
    print(f"{h}x{w}x{c}x{n} {args.dtype}; ms, min of {args.reps}; ratio = torch/mlayers")
    for nt in (int(v) for v in args.threads.split(",")):
        ml.set_num_threads(nt)
        torch.set_num_threads(nt)
        clock = time.thread_time if nt == 1 else time.perf_counter
        kind = "CPU" if nt == 1 else "wall"
        print(f"\n{nt} thread(s), {kind} time")
        print(f"{'':12s} {'fwd ours':>9s} {'torch':>8s} {'ratio':>6s}   "
              f"{'bwd ours':>9s} {'torch':>8s} {'ratio':>6s}")
        for name, f, b, tf, tb in cases(x, torch):
            if args.cases and name not in args.cases.split(","):
                continue
            best = [float("inf")] * 4
            for _ in range(args.reps):
                for k, fn in enumerate((f, tf, b, tb)):
                    fn()        # (right after the other library's call: not timed)
                    for _ in range(args.block):
                        t0 = clock()
                        fn()
                        best[k] = min(best[k], clock() - t0)
            mf, tfm, mb, tbm = (v * 1e3 for v in best)
            print(f"{name:12s} {mf:9.2f} {tfm:8.2f} {tfm / mf:6.2f}   "
                  f"{mb:9.2f} {tbm:8.2f} {tbm / mb:6.2f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="56,56,64,32")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", default="1,2")
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--block", type=int, default=3,
                   help="timed calls in a row per library and repetition")
    p.add_argument("--cases", default="", help="comma-separated names (default: all)")
    run(p.parse_args())
