"""The convolutions of the small networks (N1, N4) against PyTorch: a script, not a test.

3 x 3 convolutions with 'same' padding (the first N4 layer: none) on the planes where
mlayers' kernels change from the position-vectorized direct kernel to ``conv_cv``
(docs/engine.md, "Small planes"): ``_ops.conv`` and ``_ops.conv_backward`` (dX, dW, db)
against ``torch.nn.functional.conv2d`` and ``aten.convolution_backward`` on the same data,
float32, minimum over repetitions of the calling thread's CPU time on 1 thread (wall
time on more).  ratio = torch / mlayers (> 1: mlayers faster)::

    env -u OPENBLAS_CORETYPE python bench/small_conv.py
    env -u OPENBLAS_CORETYPE python bench/small_conv.py --threads 2
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mlayers as ml  # noqa: E402
from mlayers import _ops  # noqa: E402

# (plane, channels, filters, batch, padding)
CASES = [(28, 1, 8, 128, 1), (14, 8, 16, 128, 1), (7, 16, 32, 128, 1),
         (32, 3, 16, 32, 0), (30, 16, 16, 32, 1), (16, 32, 32, 32, 1), (8, 64, 64, 32, 1)]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=30)
    args = p.parse_args(argv)
    import torch
    ml.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter

    def best(f, n):
        f()
        ts = []
        for _ in range(n):
            t = clock()
            f()
            ts.append(clock() - t)
        return min(ts) * 1e3
    rng = np.random.default_rng(0)
    print(f"float32, {args.threads} thread(s); ms, ratio = torch / mlayers")
    for s, c, f, n, pad in CASES:
        o = s + 2 * pad - 2
        x = np.asfortranarray(rng.standard_normal((s, s, c, n)).astype(np.float32))
        w = np.asfortranarray(rng.standard_normal((3, 3, c, f)).astype(np.float32))
        b = np.zeros(f, np.float32)
        dy = np.asfortranarray(rng.standard_normal((o, o, f, n)).astype(np.float32))
        xt, dyt = torch.from_numpy(x.T.copy()), torch.from_numpy(dy.T.copy())
        wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 1, 0)))
        fwd = best(lambda: _ops.conv(x, w, b, padding=pad), args.reps)
        tfwd = best(lambda: torch.nn.functional.conv2d(xt, wt, padding=pad), args.reps)
        bwd = best(lambda: _ops.conv_backward(x, w, dy, padding=pad), args.reps // 3)
        tbwd = best(lambda: torch.ops.aten.convolution_backward(
            dyt, xt, wt, [f], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1,
            [True, True, True]), args.reps // 3)
        print(f"{s}x{s}x{c}->{f} batch {n:3d}: forward {fwd:.3f} vs {tfwd:.3f} "
              f"({tfwd / fwd:.2f})   backward {bwd:.3f} vs {tbwd:.3f} ({tbwd / bwd:.2f})",
              flush=True)


if __name__ == "__main__":
    main()
