"""The convolutions of the small networks (N1, N4) against PyTorch: a script, not a test.

3 x 3 convolutions with 'same' padding (the first N4 layer: none) on the planes where
mlayers' kernels change from the position-vectorized direct kernel to ``conv_cv``
(docs/engine.md, "Small planes"): ``_ops.conv`` and ``_ops.conv_backward`` (dX, dW, db)
against ``torch.nn.functional.conv2d`` and ``aten.convolution_backward`` on the same data,
float32, minimum over repetitions of the calling thread's CPU time on 1 thread (wall
time on more).  ratio = torch / mlayers (> 1: mlayers faster).

``--wider`` times the same way convolutions of networks beyond N1-N5, where the direct
kernels' blocks once had little to fill: the 5 x 5 layers of MathWorks' CIFAR-10 example
network (32 and 64 filters on 32 x 32 to 7 x 7 planes, 128 images) and late stages of
ResNet / VGG-style networks (128 to 512 channels on 14 x 14 to 4 x 4 planes, 8 or 32
images), each once.

``--n4`` times instead every convolution of N4's training step (BENCHMARKS.md Part 2),
each as many times as the network has it: the stride-2 3 x 3 and 1 x 1 shortcut layers
too, and the backward as dX and dW (+ db) apart (mlayers' dX is the whole backward's
time less that of ``need_dx=False``; PyTorch's two ``output_mask`` calls).  The calls of
one convolution alternate, one of each per round, so a slow phase of the shared machine
falls on both libraries alike; the totals weigh each row by its count::

    env -u OPENBLAS_CORETYPE python bench/small_conv.py
    env -u OPENBLAS_CORETYPE python bench/small_conv.py --threads 2
    env -u OPENBLAS_CORETYPE python bench/small_conv.py --n4 [--threads 2]
    env -u OPENBLAS_CORETYPE python bench/small_conv.py --wider [--threads 2]
"""
import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mlayers as ml  # noqa: E402
from lstm import times  # noqa: E402  (bench/, this script's directory)
from mlayers import _ops  # noqa: E402

# (plane, channels, filters, batch, padding)
CASES = [(28, 1, 8, 128, 1), (14, 8, 16, 128, 1), (7, 16, 32, 128, 1),
         (32, 3, 16, 32, 0), (30, 16, 16, 32, 1), (16, 32, 32, 32, 1), (8, 64, 64, 32, 1)]

# N4's convolutions, batch 32: (plane, channels, filters, kernel, stride, padding, count)
N4 = [(32, 3, 16, 3, 1, 0, 1), (30, 16, 16, 3, 1, 1, 4), (30, 16, 32, 3, 2, 1, 1),
      (30, 16, 32, 1, 2, 0, 1), (15, 32, 32, 3, 1, 1, 3), (15, 32, 64, 3, 2, 1, 1),
      (15, 32, 64, 1, 2, 0, 1), (8, 64, 64, 3, 1, 1, 3)]
# beyond N1-N5 (``--wider``): (plane, channels, filters, kernel, stride, padding, batch)
WIDER = [(32, 3, 32, 5, 1, 2, 128), (15, 32, 32, 5, 1, 2, 128), (7, 32, 64, 5, 1, 2, 128),
         (14, 32, 64, 5, 1, 2, 32), (12, 48, 64, 5, 1, 2, 64), (28, 64, 128, 3, 2, 1, 32),
         (14, 128, 256, 3, 2, 1, 32), (14, 256, 512, 3, 2, 1, 8), (7, 256, 256, 3, 1, 1, 8),
         (4, 512, 512, 3, 1, 1, 8)]


def operands(rng, s, c, f, k, stride, pad, n):
    """MATLAB-layout x, w, b, dY and the same values as PyTorch tensors."""
    import torch
    o = (s + 2 * pad - k) // stride + 1
    x = np.asfortranarray(rng.standard_normal((s, s, c, n)).astype(np.float32))
    w = np.asfortranarray(rng.standard_normal((k, k, c, f)).astype(np.float32))
    dy = np.asfortranarray(rng.standard_normal((o, o, f, n)).astype(np.float32))
    b = np.zeros(f, np.float32)
    xt, dyt = torch.from_numpy(x.T.copy()), torch.from_numpy(dy.T.copy())
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 1, 0)))
    return x, w, b, dy, xt, wt, dyt


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--reps", type=int, default=30)
    p.add_argument("--n4", action="store_true", help="N4's training convolutions")
    p.add_argument("--wider", action="store_true", help="convolutions beyond N1-N5")
    args = p.parse_args(argv)
    import torch
    ml.set_num_threads(args.threads)
    torch.set_num_threads(args.threads)
    clock = time.thread_time if args.threads == 1 else time.perf_counter

    def best(*fns, n):
        """Minimum time of each function (ms), their calls alternating (lstm.times)."""
        return [lo * 1e3 for lo, _ in times(fns, n, clock, warmup=1)]
    rng = np.random.default_rng(0)
    print(f"float32, {args.threads} thread(s); ms, ratio = torch / mlayers")
    if args.n4:
        return passes(args, rng, best, [case + (32,) for case in N4], "N4's step (x count)")
    if args.wider:
        return passes(args, rng, best, [case[:6] + (1, case[6]) for case in WIDER], "total")
    aten = torch.ops.aten
    for s, c, f, n, pad in CASES:
        x, w, b, dy, xt, wt, dyt = operands(rng, s, c, f, 3, 1, pad, n)
        fwd, tfwd = best(lambda: _ops.conv(x, w, b, padding=pad),
                         lambda: torch.nn.functional.conv2d(xt, wt, padding=pad), n=args.reps)
        bwd, tbwd = best(lambda: _ops.conv_backward(x, w, dy, padding=pad),
                         lambda: aten.convolution_backward(
                             dyt, xt, wt, [f], [1, 1], [pad, pad], [1, 1], False, [0, 0], 1,
                             [True, True, True]), n=args.reps // 3)
        print(f"{s}x{s}x{c}->{f} batch {n:3d}: forward {fwd:.3f} vs {tfwd:.3f} "
              f"({tfwd / fwd:.2f})   backward {bwd:.3f} vs {tbwd:.3f} ({tbwd / bwd:.2f})",
              flush=True)


def passes(args, rng, best, cases, total_name):
    """Forward, dX and dW of each (plane, channels, filters, kernel, stride, padding,
    count, batch), and their totals weighted by the counts."""
    import torch
    aten = torch.ops.aten
    print("convolution (count)         forward ml  torch ratio |  dX ml  torch ratio |"
          "  dW ml  torch ratio")
    total = np.zeros(6)
    for i, (s, c, f, k, st, pad, count, n) in enumerate(cases):
        x, w, b, dy, xt, wt, dyt = operands(rng, s, c, f, k, st, pad, n)

        def torch_bwd(mask):
            return lambda: aten.convolution_backward(dyt, xt, wt, [f], [st, st], [pad, pad],
                                                     [1, 1], False, [0, 0], 1, mask)
        fwd, tfwd = best(lambda: _ops.conv(x, w, b, stride=st, padding=pad),
                         lambda: torch.nn.functional.conv2d(xt, wt, stride=st, padding=pad),
                         n=args.reps)
        dw, full, tdw, tdx = best(
            lambda: _ops.conv_backward(x, w, dy, stride=st, padding=pad, need_dx=False),
            lambda: _ops.conv_backward(x, w, dy, stride=st, padding=pad),
            torch_bwd([False, True, True]), torch_bwd([True, False, False]),
            n=args.reps)
        row = np.array([fwd, tfwd, full - dw, tdx, dw, tdw])
        # (a network's first layer (3 channels) has no dX in a training step)
        total += count * row * [1, 1, c > 3, c > 3, 1, 1]
        print(f"{s}x{s}x{c}->{f} {k}x{k} stride {st} ({count}, {n})".ljust(30)
              + " | ".join(f"{a:6.3f} {t:6.3f} {t / a:5.2f}" for a, t in row.reshape(3, 2)),
              flush=True)
    print(total_name.ljust(30)
          + " | ".join(f"{a:6.2f} {t:6.2f} {t / a:5.2f}" for a, t in total.reshape(3, 2)))
    print("(the totals leave out the 3-channel first layers' dX: not computed in a step)")


if __name__ == "__main__":
    main()
