"""Elementwise and normalization operations against PyTorch (issue 16): a script, not a test.

Times, on the same data in the same run, mlayers' functional operations (MATLAB layout: a
Fortran-ordered ``H x W x C x N`` array, formatted ``SSCB``) and the PyTorch CPU
equivalents (the same memory seen as a C-ordered ``N x C x W x H`` tensor):

    batchnorm (training: batch statistics; inference: trained statistics), relu, softmax
    (over C), layernorm (over S and C per observation), groupnorm (8 groups:
    ``F.group_norm``), instancenorm (``F.instance_norm``), fullyconnect (to 10 outputs)

``fwd`` is the forward call; ``fwd+bwd`` is the forward plus the backward pass (mlayers: the
operation's ``backward`` closure, which is what ``dlgradient`` calls; PyTorch:
``y.backward(dy)``).  Medians of repetitions in alternating blocks (``--block`` timed calls
of one library, then of the other; the first call of a block is not timed: on 2 threads, right
after the other library's call, that library's OpenMP workers still spin on the cores,
which made mlayers' relu 6-8 % slower and PyTorch's 1-4 % faster in three runs); ratio =
PyTorch / mlayers (> 1: mlayers faster); the table also gives the ratio of the minimums,
steadier on a busy machine.  Run with ``OPENBLAS_CORETYPE`` unset::

    env -u OPENBLAS_CORETYPE python bench/layers.py                  # 56x56x64x32 float32
    env -u OPENBLAS_CORETYPE python bench/layers.py --threads 1,2 --dtype float32,float64
    python bench/layers.py --size 28,28,16,8 --min-time 0.2          # quick
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mlayers as ml  # noqa: E402


def _raw(op):
    """The (result, backward) form of an mlayers operation."""
    return op.__wrapped_operation__


def cases(x, dtype, torch):
    """(name, mlayers fwd, mlayers fwd+bwd, torch fwd, torch fwd+bwd) tuples."""
    F = torch.nn.functional
    h, w, c, n = x.shape
    X = ml.dlarray(x, "SSCB")
    rng = np.random.default_rng(1)
    off = rng.standard_normal(c).astype(dtype)
    sc = rng.standard_normal(c).astype(dtype)
    mu = rng.standard_normal(c).astype(dtype)
    var = rng.random(c).astype(dtype) + 0.5
    dy = np.asfortranarray(rng.standard_normal(x.shape).astype(dtype))
    # (the weights in MATLAB's column-major order, as loadmat returns them and mlayers'
    # initializers make them, like the data; PyTorch's in its own row-major order)
    wfc = np.asfortranarray(rng.standard_normal((10, h * w * c)).astype(dtype) * 1e-3)
    bfc = rng.standard_normal((10, 1)).astype(dtype)
    dyfc = rng.standard_normal((10, n)).astype(dtype)

    Xo = ml.dlarray(x, "SSCB")
    offd, scd = ml.dlarray(off), ml.dlarray(sc)
    wd, bd = ml.dlarray(wfc), ml.dlarray(bfc)

    tt = torch.from_numpy(x.T)                # N x C x W x H, no copy
    tdy = torch.from_numpy(dy.T)
    toff, tsc = torch.from_numpy(off), torch.from_numpy(sc)
    tmu, tvar = torch.from_numpy(mu), torch.from_numpy(var)
    twfc = torch.from_numpy(np.ascontiguousarray(
        wfc.reshape(10, h, w, c, order="F").transpose(0, 3, 2, 1).reshape(10, -1)))
    tbfc = torch.from_numpy(bfc.ravel())
    tdyfc = torch.from_numpy(np.ascontiguousarray(dyfc.T))

    def mfb(op, *args, dyv=dy, **kw):
        def run():
            y, back = _raw(op)(*args, **kw)
            back(dyv)
        return run

    def tfb(fn, *params, dyv=tdy):
        def run():
            xt = tt.detach().requires_grad_(True)
            ps = [p.detach().requires_grad_(True) for p in params]
            y = fn(xt, *ps)
            y.backward(dyv)
        return run

    return [
        ("batchnorm train", lambda: ml.batchnorm(X, off, sc),
         mfb(ml.batchnorm, Xo, offd, scd),
         lambda: F.batch_norm(tt, None, None, tsc, toff, training=True),
         tfb(lambda t, s, o: F.batch_norm(t, None, None, s, o, training=True), tsc, toff)),
        ("batchnorm infer", lambda: ml.batchnorm(X, off, sc, mu, var),
         mfb(ml.batchnorm, Xo, offd, scd, mu, var),
         lambda: F.batch_norm(tt, tmu, tvar, tsc, toff, training=False),
         tfb(lambda t, s, o: F.batch_norm(t, tmu, tvar, s, o, training=False), tsc, toff)),
        ("relu", lambda: ml.relu(X), mfb(ml.relu, Xo),
         lambda: F.relu(tt), tfb(F.relu)),
        ("softmax (C)", lambda: ml.softmax(X), mfb(ml.softmax, Xo),
         lambda: torch.softmax(tt, 1), tfb(lambda t: torch.softmax(t, 1))),
        ("layernorm", lambda: ml.layernorm(X, off, sc),
         mfb(ml.layernorm, Xo, offd, scd),
         lambda: F.layer_norm(tt, (c, w, h)) * tsc.view(1, -1, 1, 1) + toff.view(1, -1, 1, 1),
         tfb(lambda t, s, o: F.layer_norm(t, (c, w, h)) * s.view(1, -1, 1, 1)
             + o.view(1, -1, 1, 1), tsc, toff)),
        ("groupnorm (G=8)", lambda: ml.groupnorm(X, 8, off, sc),
         mfb(ml.groupnorm, Xo, 8, offd, scd),
         lambda: F.group_norm(tt, 8, tsc, toff),
         tfb(lambda t, s, o: F.group_norm(t, 8, s, o), tsc, toff)),
        ("instancenorm", lambda: ml.instancenorm(X, off, sc),
         mfb(ml.instancenorm, Xo, offd, scd),
         lambda: F.instance_norm(tt, weight=tsc, bias=toff),
         tfb(lambda t, s, o: F.instance_norm(t, weight=s, bias=o), tsc, toff)),
        ("fullyconnect", lambda: ml.fullyconnect(X, wfc, bfc),
         mfb(ml.fullyconnect, Xo, wd, bd, dyv=dyfc),
         lambda: F.linear(tt.reshape(n, -1), twfc, tbfc),
         tfb(lambda t, W, B: F.linear(t.reshape(n, -1), W, B), twfc, tbfc, dyv=tdyfc)),
    ]


def timeit(fns, min_time, min_reps, block):
    """(median, min) seconds of each function in ``fns``, in alternating blocks."""
    for f in fns:                             # warm-up
        f()
    times = [[] for _ in fns]
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times[0]) < min_reps:
        for i, f in enumerate(fns):
            f()         # (right after another library's call: not timed, module docstring)
            for _ in range(block):
                t0 = time.perf_counter()
                f()
                times[i].append(time.perf_counter() - t0)
    return [(statistics.median(t), min(t)) for t in times]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", default="56,56,64,32", help="H,W,C,N (MATLAB order)")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--threads", default="2")
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--min-reps", type=int, default=7)
    p.add_argument("--block", type=int, default=3,
                   help="timed calls in a row per library (module docstring)")
    p.add_argument("--only", default="", help="comma-separated case names (prefixes)")
    a = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: nothing to compare with")
        return 1
    size = tuple(int(s) for s in a.size.split(","))
    print(f"mlayers layers benchmark: size {'x'.join(map(str, size))} (SSCB, Fortran order)")
    print(f"OPENBLAS_CORETYPE={os.environ.get('OPENBLAS_CORETYPE', '<unset>')}  "
          f"torch {torch.__version__}  numpy {np.__version__}  "
          f"OpenMP {'on' if ml._ops.openmp_enabled() else 'OFF'}  "
          f"BLAS {ml._ops.blas_info().get('name')} {ml._ops.blas_info().get('corename')}")
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    rows = []
    for dname in a.dtype.split(","):
        dtype = np.dtype(dname).type
        x = np.asfortranarray(np.random.default_rng(0).standard_normal(size).astype(dtype))
        for nt in (int(t) for t in a.threads.split(",")):
            torch.set_num_threads(nt)
            with ml.threads(nt):
                for name, mf, mfb, tf, tfb in cases(x, dtype, torch):
                    if only and not any(name.startswith(o) for o in only):
                        continue
                    with torch.no_grad():
                        m_f, t_f = timeit([mf, tf], a.min_time, a.min_reps, a.block)
                    m_b, t_b = timeit([mfb, tfb], a.min_time, a.min_reps, a.block)
                    rows.append((dname, nt, name, m_f, t_f, m_b, t_b))
                    print(f"{dname:8s} {nt}t  {name:16s} fwd {m_f[0]*1e3:8.2f} ms vs torch "
                          f"{t_f[0]*1e3:8.2f} ms  ratio {t_f[0]/m_f[0]:5.2f}   fwd+bwd "
                          f"{m_b[0]*1e3:8.2f} ms vs {t_b[0]*1e3:8.2f} ms  ratio "
                          f"{t_b[0]/m_b[0]:5.2f}", flush=True)
    # medians are the result; minimums show what each side reaches when the machine
    # leaves it alone (on a shared machine the medians of short calls jump with load)
    print("\n| dtype | threads | op | mlayers fwd (ms) | torch fwd (ms) | ratio (min) | "
          "mlayers fwd+bwd (ms) | torch fwd+bwd (ms) | ratio (min) |")
    print("|---|---|---|---|---|---|---|---|---|")
    for d, nt, name, m_f, t_f, m_b, t_b in rows:
        print(f"| {d} | {nt} | {name} | {m_f[0]*1e3:.2f} | {t_f[0]*1e3:.2f} | "
              f"{t_f[0]/m_f[0]:.2f} ({t_f[1]/m_f[1]:.2f}) | {m_b[0]*1e3:.2f} | "
              f"{t_b[0]*1e3:.2f} | {t_b[0]/m_b[0]:.2f} ({t_b[1]/m_b[1]:.2f}) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
