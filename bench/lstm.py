"""Benchmark: lstmLayer(128) on 64 x 32 x 100 (CBT) float32 against PyTorch's nn.LSTM.

Two measurements per thread count (1 and 2 by default), minimum and median of repeated
runs (CPU time on one thread, wall time on more; the machine may be shared):

* forward: ``ml.predict(layer, X)`` against ``nn.LSTM`` under ``torch.no_grad()``;
* training iteration: forward plus gradients of every learnable (``dlfeval`` of the
  layer's forward and ``dlgradient`` of a sum-of-squares loss) against ``loss.backward()``
  (input not requiring a gradient in either).

Same data, same initial states (zeros), same thread count (``ml.set_num_threads`` /
``torch.set_num_threads``); the timed calls alternate between the two libraries.  Run it
on a quiet machine, without a pinned OpenBLAS core type or cache size::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/lstm.py [--threads 1,2]
"""
import argparse
import statistics
import time

import numpy as np

import mlayers as ml
from mlayers import _ops


def times(fns, reps, clock, warmup=3):
    """Minimum and median of ``reps`` timed calls of each function, the calls interleaved
    (one of each per round), so that a busy machine slows every contender alike."""
    for fn in fns:
        for _ in range(warmup):
            fn()
    runs = [[] for _ in fns]
    for _ in range(reps):
        for fn, ts in zip(fns, runs):
            t0 = clock()
            fn()
            ts.append(clock() - t0)
    return [(min(ts), statistics.median(ts)) for ts in runs]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", default="1,2")
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--C", type=int, default=64)
    ap.add_argument("--B", type=int, default=32)
    ap.add_argument("--T", type=int, default=100)
    ap.add_argument("--H", type=int, default=128)
    args = ap.parse_args()
    C, B, T, H = args.C, args.B, args.T, args.H

    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.standard_normal((C, B, T)).astype(np.float32))
    ml.rng(0)
    layer = ml.lstmLayer(H).initialize(C)
    X = ml.dlarray(x, "CBT")
    params = [ml.dlarray(getattr(layer, n)) for n in ("InputWeights", "RecurrentWeights",
                                                       "Bias")]

    def ml_forward():
        return layer.predict(X)

    def model(W, R, b):
        Y = ml.lstm(X, layer.HiddenState, layer.CellState, W, R, b)
        loss = ml.sum(Y * Y, "all")
        return ml.dlgradient(loss, W, R, b)

    def ml_train():
        return ml.dlfeval(model, *params)

    try:
        import torch
    except ImportError:
        torch = None
    if torch is not None:
        mod = torch.nn.LSTM(C, H)
        with torch.no_grad():            # the same numbers (MATLAB and PyTorch: i, f, g, o)
            mod.weight_ih_l0.copy_(torch.from_numpy(np.ascontiguousarray(layer.InputWeights)))
            mod.weight_hh_l0.copy_(torch.from_numpy(
                np.ascontiguousarray(layer.RecurrentWeights)))
            mod.bias_ih_l0.copy_(torch.from_numpy(layer.Bias.reshape(-1)))
            mod.bias_hh_l0.zero_()
        xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 1, 0)))   # T x B x C

        def torch_forward():
            with torch.no_grad():
                return mod(xt)[0]

        def torch_train():
            mod.zero_grad(set_to_none=True)
            y = mod(xt)[0]
            (y * y).sum().backward()

        yt = torch_forward().numpy().transpose(2, 1, 0)
        err = np.max(np.abs(ml_forward().data - yt))
        print(f"max |Y - Y_torch| = {err:.2e}")

    print(f"lstmLayer({H}) on {C}x{B}x{T} (CBT) float32, {args.reps} runs "
          f"(torch {torch.__version__ if torch else 'absent'}); ms min / median")
    print(f"{'threads':>7} {'case':>9} {'mlayers':>15} {'torch':>15} {'torch/ml':>15}")
    for n in (int(v) for v in args.threads.split(",")):
        ml.set_num_threads(n)
        if torch is not None:
            torch.set_num_threads(n)
        clock = time.process_time if n == 1 else time.perf_counter
        for name, f_ml, f_t in (("forward", ml_forward, torch and torch_forward),
                                ("training", ml_train, torch and torch_train)):
            fns = [f_ml, f_t] if torch is not None else [f_ml]
            res = times(fns, args.reps, clock) + [(float("nan"), float("nan"))]
            (m_ml, d_ml), (m_t, d_t) = res[0], res[1]
            print(f"{n:>7} {name:>9} {1e3 * m_ml:>7.2f} {1e3 * d_ml:>7.2f} "
                  f"{1e3 * m_t:>7.2f} {1e3 * d_t:>7.2f} {m_t / m_ml:>7.2f} {d_t / d_ml:>7.2f}",
                  flush=True)
    ml.set_num_threads(None)


if __name__ == "__main__":
    main()
