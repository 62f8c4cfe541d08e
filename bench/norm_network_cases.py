"""Normalization and activation kernels on the shapes of the network cases (issue 20).

The layers of BENCHMARKS.md Part 2 that issue 20 singles out, timed alone through the
functional operations (forward: the op; backward: the op's own backward closure, i.e. what
``dlgradient`` runs), against PyTorch's equivalents on the same data in PyTorch's layout,
interleaved (one mlayers call, one torch call, ...), median of the rounds.

- N5 (predict and training): ``relu`` and ``layernorm`` (channel-only: over C per (B, T)
  position) on the 64 x 32 x 256 CBT float32 output of a 1-D convolution, whose memory is
  B x C x T (the convolution engine's layout); PyTorch: ``relu`` on (32, 64, 256) and
  ``layer_norm`` over the channels of the transposed tensor (as ``bench/networks.py``'s
  N5 module does).
- N3 (training, digit CNN, batch 128): ``relu`` and training ``batchnorm`` on
  28x28x8x128, 14x14x16x128, 7x7x32x128 SSCB float32 (Fortran order = PyTorch's NCHW).

1 thread: CPU time of the process (the machine is shared and loaded); 2 threads: wall
time.  Run as::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/norm_network_cases.py

The timed loop keeps the last three results of each function alive, as a network keeps
its activations, so neither side gets the same warm buffer back every call (``--warm``:
each result dies at once).  mlayers' seam takes large results from a pool of buffers it
reuses only when nothing references them (``mlayers._ops_norm``); inside a whole network
that is what avoids a page fault per 4 KiB of every fresh result.
"""
import argparse
import time

import numpy as np

import mlayers as ml


def _data(rng, shape, order="F"):
    x = rng.standard_normal(shape).astype(np.float32)
    return np.asfortranarray(x) if order == "F" else x


def _cases(rng, torch):
    return _n5(rng, torch) + _n3(rng, torch)


def _n5(rng, torch):
    F = torch.nn.functional
    # ---- N5: CBT 64 x 32 x 256, memory B x C x T (a conv1d output)
    c, b, t = 64, 32, 256
    bct = rng.standard_normal((b, c, t)).astype(np.float32)
    x = bct.transpose(1, 0, 2)                            # CBT view of B x C x T memory
    X = ml.dlarray._from_canonical(x, "CBT")
    xt = torch.from_numpy(bct)
    g = np.ascontiguousarray(rng.standard_normal((b, c, t)).astype(np.float32)).transpose(
        1, 0, 2)
    gt = torch.from_numpy(np.ascontiguousarray(g.transpose(1, 0, 2)))
    off = (0.1 * rng.standard_normal((c, 1))).astype(np.float32)
    sc = (1 + 0.1 * rng.standard_normal((c, 1))).astype(np.float32)
    wt, bt = torch.from_numpy(sc.ravel()), torch.from_numpy(off.ravel())

    _, relu_back = ml.relu.__wrapped__(X)
    _, ln_back = ml.layernorm.__wrapped__(X, off, sc)

    xr = xt.clone().requires_grad_(True)
    yr = torch.relu(xr)
    xl = xt.clone().requires_grad_(True)
    wl, bl = wt.clone().requires_grad_(True), bt.clone().requires_grad_(True)
    yl = F.layer_norm(xl.transpose(1, 2), (c,), wl, bl, 1e-5).transpose(1, 2)

    return [
        ("N5 relu fwd", lambda: ml.relu(X), lambda: torch.relu(xt)),
        ("N5 layernorm fwd", lambda: ml.layernorm(X, off, sc),
         lambda: F.layer_norm(xt.transpose(1, 2), (c,), wt, bt, 1e-5).transpose(1, 2)),
        ("N5 relu bwd", lambda: relu_back(g),
         lambda: torch.autograd.grad(yr, xr, gt, retain_graph=True)),
        ("N5 layernorm bwd", lambda: ln_back(g),
         lambda: torch.autograd.grad(yl, (xl, wl, bl), gt, retain_graph=True)),
    ]


def _n3(rng, torch):
    F = torch.nn.functional
    out = []
    # ---- N3: SSCB batch 128
    for h, ch in ((28, 8), (14, 16), (7, 32)):
        shape = (h, h, ch, 128)
        x = _data(rng, shape)
        X = ml.dlarray._from_canonical(x, "SSCB")
        xt = torch.from_numpy(x.transpose(3, 2, 1, 0).copy())      # NCHW, same values
        g = _data(rng, shape)
        gt = torch.from_numpy(g.transpose(3, 2, 1, 0).copy())
        off = np.zeros((1, 1, ch), np.float32)
        sc = np.ones((1, 1, ch), np.float32)
        wt, bt = torch.ones(ch), torch.zeros(ch)
        _, relu_back = ml.relu.__wrapped__(X)
        _, bn_back = ml.batchnorm.__wrapped__(X, off, sc)
        xr = xt.clone().requires_grad_(True)
        yr = torch.relu(xr)
        xb = xt.clone().requires_grad_(True)
        wb, bb = wt.clone().requires_grad_(True), bt.clone().requires_grad_(True)
        yb = F.batch_norm(xb, None, None, wb, bb, training=True, eps=1e-5)
        tag = f"N3 {h}x{h}x{ch}x128"
        out += [
            (f"{tag} relu fwd", lambda X=X: ml.relu(X), lambda xt=xt: torch.relu(xt)),
            (f"{tag} relu bwd", lambda f=relu_back, g=g: f(g),
             lambda yr=yr, xr=xr, gt=gt: torch.autograd.grad(yr, xr, gt, retain_graph=True)),
            (f"{tag} batchnorm fwd", lambda X=X, off=off, sc=sc: ml.batchnorm(X, off, sc),
             lambda xt=xt, wt=wt, bt=bt: F.batch_norm(xt, None, None, wt, bt, training=True,
                                                     eps=1e-5)),
            (f"{tag} batchnorm bwd", lambda f=bn_back, g=g: f(g),
             lambda yb=yb, xb=xb, wb=wb, bb=bb, gt=gt: torch.autograd.grad(
                 yb, (xb, wb, bb), gt, retain_graph=True)),
        ]
    return out


def _time(fns, rounds, clock, keep):
    """Median seconds per call of each function, interleaved round by round."""
    ts = [[] for _ in fns]
    held = [[] for _ in fns]
    for f in fns:                      # warm-up
        f()
    for _ in range(rounds):
        for k, f in enumerate(fns):
            t = clock()
            r = f()
            ts[k].append(clock() - t)
            if keep:                   # keep results alive: no warm page reuse
                held[k].append(r)
                if len(held[k]) > keep:
                    held[k].pop(0)
    return [float(np.median(t)) for t in ts]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--rounds", type=int, default=40)
    p.add_argument("--warm", action="store_true",
                   help="let results die at once (warm, already-mapped output pages)")
    args = p.parse_args(argv)
    import torch
    rng = np.random.default_rng(0)
    cases = _cases(rng, torch)
    print(f"mlayers {ml.__version__ if hasattr(ml, '__version__') else ''} torch "
          f"{torch.__version__}; median of {args.rounds} interleaved rounds; "
          f"{'warm' if args.warm else 'fresh'} output pages")
    print(f"| case | threads | clock | mlayers ms | torch ms | torch/ml |")
    print("|---|---|---|---|---|---|")
    for nt in (int(t) for t in args.threads.split(",")):
        ml.set_num_threads(nt)
        torch.set_num_threads(nt)
        clock, cname = (time.process_time, "cpu") if nt == 1 else (time.perf_counter, "wall")
        for name, fm, ft in cases:
            tm, tt = _time([fm, ft], args.rounds, clock, 0 if args.warm else 3)
            print(f"| {name} | {nt} | {cname} | {tm * 1e3:.3f} | {tt * 1e3:.3f} | "
                  f"{tt / tm:.2f} |", flush=True)


if __name__ == "__main__":
    main()
