"""Pooling against PyTorch on the BENCHMARKS.md network cases (issue 20): a script, not a test.

Times, on the same data in the same run, mlayers' functional pooling (MATLAB layout: a
Fortran-ordered ``H x W x C x N`` array, formatted ``SSCB``; ``C x B x T`` for ``CBT``) and the
PyTorch CPU equivalent on the same memory (a C-ordered ``N x C x W x H`` tensor; ``T x B x C``),
and (predict rows, when ``onnx`` and ``onnxruntime`` are installed) a one-node ONNX Runtime
session (MaxPool, GlobalAveragePool, ReduceMean) on a C-ordered copy:

    N1 predict   maxpool 2, Stride 2 on 28x28x8x128 and 14x14x16x128 float32 (no indices)
    N3 training  the same with the winners kept (forward) and the backward pass (fwd+bwd)
    N4           global average pooling 2-D of 8x8x64x32 (avgpool(X, 'global'))
    N5           global average pooling 1-D over T of 64x32x256 CBT (PoolFormat 'T')

The training rows run the operation as ``dlfeval`` does (recording on: the forward keeps the
winners) and then its backward closure (what ``dlgradient`` calls); PyTorch: ``max_pool2d``
with ``return_indices`` and ``y.backward(dy)``.  CPU time (``time.process_time``) per call,
medians of interleaved repetitions; ratio = other / mlayers (> 1: mlayers faster).  The
machine may be shared and loaded: read the 1-thread rows for comparisons.  Run::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/pooling.py
    python bench/pooling.py --threads 1 --min-time 0.3 --only N1     # quick
"""
import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import mlayers as ml  # noqa: E402
from mlayers import _autodiff  # noqa: E402


def _raw(op):
    return op.__wrapped_operation__


def _recorded(op, *args, **kw):
    """Run the raw operation with recording on (as inside dlfeval): (result, backward)."""
    _autodiff._local.stack.append(_autodiff.Tape())
    try:
        return _raw(op)(*args, **kw)
    finally:
        _autodiff._local.stack.pop()


def _ort_session(op, shape, nthreads, **attrs):
    """An ONNX Runtime session of one node ``op`` on a float32 input of ``shape``, or None
    (onnx / onnxruntime missing)."""
    try:
        import onnx
        import onnxruntime as ort
        from onnx import TensorProto, helper
    except ImportError:
        return None
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, list(shape))], [helper.make_tensor_value_info(
            "y", TensorProto.FLOAT, None)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    so = ort.SessionOptions()
    so.intra_op_num_threads = nthreads
    so.inter_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def _ort_fn(sess, x):
    if sess is None:
        return None
    feed = {"x": x}
    return lambda: sess.run(None, feed)


def cases(torch, nthreads=1, dtype=np.float32):
    """(name, mlayers, torch, onnxruntime or None) callables."""
    F = torch.nn.functional
    rng = np.random.default_rng(0)
    out = []

    def fortran(shape):
        return np.asfortranarray(rng.standard_normal(shape).astype(dtype))

    for tag, shape in (("N1 28x28x8x128", (28, 28, 8, 128)), ("N1 14x14x16x128", (14, 14, 16, 128))):
        x = fortran(shape)
        X = ml.dlarray(x, "SSCB")
        tt = torch.from_numpy(x.T)
        yshape = (shape[0] // 2, shape[1] // 2) + shape[2:]
        dy = fortran(yshape)
        tdy = torch.from_numpy(dy.T)

        def m_fwd(X=X):
            ml.maxpool(X, 2, Stride=2)

        def m_train(X=X, dy=dy):
            y, back = _recorded(ml.maxpool, X, 2, Stride=2)
            back(dy)

        def t_train(tt=tt, tdy=tdy):
            xt = tt.detach().requires_grad_(True)
            y = F.max_pool2d(xt, 2, 2)
            y.backward(tdy)

        xo = np.ascontiguousarray(x.T)
        out.append((tag + " predict", m_fwd, lambda tt=tt: F.max_pool2d(tt, 2, 2),
                    _ort_fn(_ort_session("MaxPool", xo.shape, nthreads, kernel_shape=[2, 2],
                                         strides=[2, 2]), xo)))
        out.append((tag.replace("N1", "N3") + " fwd(idx)",
                    lambda X=X: _recorded(ml.maxpool, X, 2, Stride=2),
                    lambda tt=tt: F.max_pool2d_with_indices(tt, 2, 2), None))
        out.append((tag.replace("N1", "N3") + " fwd+bwd", m_train, t_train, None))

    x = fortran((8, 8, 64, 32))
    X = ml.dlarray(x, "SSCB")
    tt = torch.from_numpy(x.T)
    out.append(("N4 GAP2d 8x8x64x32", lambda X=X: ml.avgpool(X, "global"),
                lambda tt=tt: F.adaptive_avg_pool2d(tt, 1),
                _ort_fn(_ort_session("GlobalAveragePool", tt.shape, nthreads),
                        np.ascontiguousarray(x.T))))
    x = fortran((64, 32, 256))
    X = ml.dlarray(x, "CBT")
    tt = torch.from_numpy(x.T)                # T x B x C
    out.append(("N5 GAP1d 64x32x256 CBT", lambda X=X: ml.avgpool(X, "global", PoolFormat="T"),
                lambda tt=tt: tt.mean(0),
                _ort_fn(_ort_session("ReduceMean", tt.shape, nthreads, axes=[0]),
                        np.ascontiguousarray(x.T))))
    return out


def timeit(fns, min_time, min_reps):
    """Interleaved median CPU seconds (process_time) of each function in ``fns``."""
    for f in fns:
        f()
    times = [[] for _ in fns]
    start = time.perf_counter()
    while time.perf_counter() - start < min_time or len(times[0]) < min_reps:
        for i, f in enumerate(fns):
            t0 = time.process_time()
            f()
            times[i].append(time.process_time() - t0)
    return [statistics.median(t) for t in times]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", default="1,2")
    p.add_argument("--min-time", type=float, default=1.0)
    p.add_argument("--min-reps", type=int, default=15)
    p.add_argument("--only", default="", help="comma-separated case name prefixes")
    a = p.parse_args(argv)
    try:
        import torch
    except ImportError:
        print("PyTorch is not installed: nothing to compare with")
        return 1
    print(f"mlayers pooling benchmark (float32, CPU time, medians)  torch {torch.__version__}  "
          f"OpenMP {'on' if ml._ops.openmp_enabled() else 'OFF'}")
    only = [s.strip() for s in a.only.split(",") if s.strip()]
    print(f"{'case':34s} {'thr':>3s} {'mlayers ms':>11s} {'torch ms':>9s} {'ratio':>6s} "
          f"{'ORT ms':>8s} {'ratio':>6s}")
    for nt in (int(s) for s in a.threads.split(",")):
        torch.set_num_threads(nt)
        with ml.threads(nt):
            for name, mf, tf, of in cases(torch, nt):
                if only and not any(name.startswith(o) for o in only):
                    continue
                ts = timeit([mf, tf] + ([of] if of else []), a.min_time, a.min_reps)
                tm, tt = ts[0], ts[1]
                ort = (f" {ts[2] * 1e3:8.3f} {ts[2] / tm if tm else float('inf'):6.2f}"
                       if of else "")
                print(f"{name:34s} {nt:3d} {tm * 1e3:11.3f} {tt * 1e3:9.3f} "
                      f"{tt / tm if tm else float('inf'):6.2f}{ort}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
