#!/usr/bin/env python
"""Benchmark mlayers' convolutions against PyTorch CPU and ONNX Runtime CPU.

A script, never a timed test: timings on a shared machine are noisy, so every peer runs
in the same process on the same data, interleaved round-robin, and the table reports
medians and the ratio peer/mlayers (above 1: mlayers is faster).

The cases are those of ``shared/BENCHMARKS.md``.  Each case is declared once, as the
MATLAB layer call it benchmarks (constructor, positional arguments, name-value
arguments, input size in MATLAB order); the geometry, the FLOP count, the weights of every
peer and the public-API layer are all derived from that declaration.

Data are made in MATLAB order (Fortran-ordered ``S.. x C x N`` arrays) and the peers
receive the same numbers permuted to true ``N x C x S1 x .. x Sd`` (C-contiguous), with
the weights mapped as in MATLAB_SEMANTICS.md §4.3.  The first calls of every measurement
are checked against mlayers (max relative error), so the benchmark also validates
correctness.

    python bench/bench.py [--cases T1,G2] [--dtype float32|float64|both] [--threads 1,2]
                          [--quick] [--api auto|ops|public] [--json [PATH]] [--md [PATH]]
                          [--plot PATH]
"""
import argparse
import contextlib
import datetime
import json
import math
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(HERE, "results")
if __package__ in (None, "") and os.path.dirname(HERE) not in sys.path:
    sys.path.insert(0, os.path.dirname(HERE))  # run from a source checkout

import mlayers
from mlayers import _ops


# =========================================================================== cases

class Case:
    """One benchmark case, declared as the MATLAB layer call it times.

    ``ctor``/``args``/``kwargs`` are the MATLAB constructor call (``kwargs`` in MATLAB's
    Name=Value spelling), ``x`` the input size in MATLAB order (S.., C, B).  ``grads``:
    also time dL/dX and dL/dW (given dL/dY).  ``quick`` holds (args, x) for the smoke run.
    """

    def __init__(self, cid, ctor, args, kwargs, x, grads=False, quick=None, note=""):
        self.id, self.ctor, self.args, self.kwargs = cid, ctor, tuple(args), dict(kwargs)
        self.x, self.grads, self.note = tuple(x), grads, note
        self.quick = quick

    def shrunk(self):
        """The --quick version of this case (same call, small sizes)."""
        if not self.quick:
            return self
        args, x = self.quick
        return Case(self.id, self.ctor, args, self.kwargs, x, self.grads, None, self.note)

    # ----------------------------------------------------------- derived geometry
    @property
    def transposed(self):
        return self.ctor.startswith("transposedConv")

    @property
    def grouped(self):
        return self.ctor.startswith("groupedConvolution")

    @property
    def d(self):
        return len(self.x) - 2

    @property
    def channels(self):
        return self.x[self.d]

    @property
    def batch(self):
        return self.x[self.d + 1]

    @property
    def kernel(self):
        k = self.args[0]
        return tuple(k) if isinstance(k, (tuple, list)) else (k,) * self.d

    @property
    def groups(self):
        if not self.grouped:
            return 1
        g = self.args[2]
        return self.channels if g == "channel-wise" else int(g)

    @property
    def filters_per_group(self):
        return int(self.args[1])

    @property
    def out_channels(self):
        return self.filters_per_group * self.groups

    def _vec(self, name, default):
        v = self.kwargs.get(name, default)
        return tuple(v) if isinstance(v, (tuple, list)) else (v,) * self.d

    @property
    def stride(self):
        return self._vec("Stride", 1)

    @property
    def dilation(self):
        return self._vec("DilationFactor", 1)

    def pads(self):
        """(before, after) per spatial dim: conv padding, or transposed cropping (§3.3-3.5)."""
        d = self.d
        if self.transposed:
            c = self.kwargs.get("Cropping", 0)
            if c == "same":  # §3.5: total F - S, extra crop at the end (F >= S here)
                tot = [max(k - s, 0) for k, s in zip(self.kernel, self.stride)]
                return tuple(t // 2 for t in tot), tuple(t - t // 2 for t in tot)
            return (c,) * d, (c,) * d
        p = self.kwargs.get("Padding", 0)
        if p == "same":  # §3.4: out = ceil(in/S), the extra row/column at the end
            before, after = [], []
            for n, k, s, dl in zip(self.x[:d], self.kernel, self.stride, self.dilation):
                feff = (k - 1) * dl + 1
                tot = max((-(-n // s) - 1) * s + feff - n, 0)
                before.append(tot // 2)
                after.append(tot - tot // 2)
            return tuple(before), tuple(after)
        return (p,) * d, (p,) * d

    def out_size(self):
        before, after = self.pads()
        out = []
        for n, k, s, dl, b, a in zip(self.x[:self.d], self.kernel, self.stride,
                                     self.dilation, before, after):
            feff = (k - 1) * dl + 1
            out.append(s * (n - 1) + feff - b - a if self.transposed
                       else (n + b + a - feff) // s + 1)
        return tuple(out)

    def gflop(self):
        """2 x multiply-adds of the forward pass (a transposed conv: over its input)."""
        macs_per_pos = math.prod(self.kernel) * self.channels // self.groups * self.out_channels
        positions = math.prod(self.x[:self.d] if self.transposed else self.out_size())
        return 2 * positions * self.batch * macs_per_pos / 1e9

    # ----------------------------------------------------------- MATLAB shapes
    def weight_shape_ops(self):
        """_ops layout: conv F.. x Cg x (Fg*G); tconv F.. x Fg x (Cg*G) (G = 1 here)."""
        if self.transposed:
            return self.kernel + (self.filters_per_group, self.channels)
        return self.kernel + (self.channels // self.groups, self.out_channels)

    def weight_shape_layer(self):
        """The layer's Weights property: grouped F.. x Cg x Fg x G, else as _ops."""
        if self.grouped:
            return self.kernel + (self.channels // self.groups, self.filters_per_group,
                                  self.groups)
        return self.weight_shape_ops()

    def bias_shape_layer(self):
        if self.grouped:
            return (1,) * self.d + (self.filters_per_group, self.groups)
        return (1,) * self.d + (self.out_channels,)

    def matlab_call(self):
        def fmt(v):
            return f'"{v}"' if isinstance(v, str) else (
                "[" + " ".join(map(str, v)) + "]" if isinstance(v, (tuple, list)) else str(v))
        parts = [fmt(a) for a in self.args] + [f"{k}={fmt(v)}" for k, v in self.kwargs.items()]
        return f"{self.ctor}({','.join(parts)})"


CASES = [
    Case("T1", "transposedConv1dLayer", (11, 96), {"Stride": 4}, (1024, 64, 16), grads=True,
         quick=((11, 12), (64, 8, 2))),
    Case("T2", "transposedConv1dLayer", (4, 32), {"Stride": 2}, (4096, 32, 8),
         quick=((4, 8), (128, 8, 2))),
    Case("G1", "groupedConvolution2dLayer", (3, 64, 2), {"Padding": "same"}, (56, 56, 128, 8),
         quick=((3, 4, 2), (10, 9, 8, 2))),
    Case("G2", "groupedConvolution2dLayer", (3, 1, "channel-wise"),
         {"Stride": 2, "Padding": "same"}, (56, 56, 128, 8), grads=True,
         quick=((3, 1, "channel-wise"), (12, 11, 8, 2))),
    Case("G3", "groupedConvolution2dLayer", (11, 10, "channel-wise"), {}, (227, 227, 3, 4),
         quick=((5, 2, "channel-wise"), (20, 19, 3, 2))),
    Case("C1", "convolution2dLayer", (3, 64), {"Padding": 1}, (56, 56, 64, 8), grads=True,
         quick=((3, 8), (10, 9, 8, 2))),
    Case("C2", "convolution1dLayer", (5, 128), {"DilationFactor": 2}, (2048, 64, 16),
         quick=((5, 8), (64, 8, 2))),
    Case("C3", "convolution3dLayer", (3, 32), {"Padding": 1}, (32, 32, 32, 16, 2),
         quick=((3, 4), (6, 5, 4, 4, 2))),
    Case("U1", "transposedConv2dLayer", (4, 32), {"Stride": 2, "Cropping": 1}, (28, 28, 64, 16),
         quick=((4, 4), (7, 6, 8, 2))),
    Case("S1", "convolution2dLayer", (3, 8), {"Padding": "same"}, (8, 8, 3, 1),
         note="per-call overhead"),
]
CASE_IDS = [c.id for c in CASES]
SUMMARY_IDS = ["T1", "T2", "G1", "G2", "G3", "C1", "C2", "C3", "U1"]  # S1 is overhead only


# =========================================================================== data

class Data:
    """One case's operands in MATLAB order, and the same numbers in the peers' layout."""

    def __init__(self, case, dtype, seed=0):
        rng = np.random.default_rng(seed)

        def fortran(shape, scale=1.0):
            # standard_normal of the reversed shape, transposed: Fortran-ordered, no copy
            return (rng.standard_normal(tuple(reversed(shape))) * scale).astype(dtype).T

        d = case.d
        fan_in = math.prod(case.kernel) * (case.filters_per_group if case.transposed
                                           else case.channels // case.groups)
        self.x = fortran(case.x)
        self.w = fortran(case.weight_shape_ops(), 1 / math.sqrt(fan_in))  # _ops layout
        self.b = fortran((case.out_channels,), 0.1)
        out = case.out_size() + (case.out_channels, case.batch)
        self.dy = fortran(out) if case.grads else None
        # The layer's Weights/Bias: grouped F.. x Cg x Fg x G is the _ops array reshaped
        # column-major (the merged last dimension is group-major, like MATLAB's).
        self.w_layer = np.reshape(self.w, case.weight_shape_layer(), order="F")
        self.b_layer = np.reshape(self.b, case.bias_shape_layer(), order="F")
        # Peers: N x C x S1..Sd C-contiguous (H, W, D in MATLAB order), §4.3
        self.xt = to_nchw(self.x, d)
        self.wt = to_nchw(self.w, d)  # conv (F, Cg, k..); tconv (C, Fg, k..)
        self.bt = np.ascontiguousarray(self.b)
        self.dyt = to_nchw(self.dy, d) if case.grads else None


def to_nchw(a, d):
    """MATLAB S1..Sd x A x B -> C-contiguous B x A x S1..Sd (weights: the §4.3 mapping)."""
    return np.ascontiguousarray(a.transpose((d + 1, d) + tuple(range(d))))


def from_nchw(a, d):
    """Inverse of :func:`to_nchw`: B x A x S1..Sd -> MATLAB S1..Sd x A x B."""
    return a.transpose(tuple(range(2, d + 2)) + (1, 0))


def rel_err(a, ref):
    a = np.asarray(a, dtype=np.float64)
    ref = np.asarray(ref, dtype=np.float64)
    if a.shape != ref.shape:
        return float("inf")
    scale = np.max(np.abs(ref)) or 1.0
    return float(np.max(np.abs(a - ref)) / scale)


# =========================================================================== mlayers

def public_api_available():
    try:
        import mlayers as ml
    except Exception:  # noqa: BLE001
        return False
    return callable(getattr(ml, "predict", None)) and callable(getattr(ml, "dlarray", None))


def mlayers_ops_forward(case, data):
    """Callable running the forward pass through ``mlayers._ops`` (MATLAB layout)."""
    before, after = case.pads()
    pads = np.array([before, after])
    x, w, b = data.x, data.w, data.b
    if case.transposed:
        return lambda: _ops.conv_transpose(x, w, b, stride=case.stride, cropping=pads)
    return lambda: _ops.conv(x, w, b, stride=case.stride, dilation=case.dilation,
                             padding=pads, groups=case.groups)


def mlayers_public_forward(case, data):
    """Callable running ``ml.predict(layer, X)`` on the layer of the MATLAB-call column."""
    import mlayers as ml
    layer = getattr(ml, case.ctor)(*case.args, **case.kwargs)
    layer.Weights = data.w_layer
    layer.Bias = data.b_layer
    X = ml.dlarray(data.x, "S" * case.d + "CB")
    fn = lambda: ml.predict(layer, X)  
    extract = getattr(ml, "extractdata", None)
    if extract is None:
        return fn, lambda y: np.asarray(getattr(y, "data", y))
    return fn, extract


def mlayers_forward(case, data, api):
    """(callable, output-to-numpy, path used).  ``api``: 'ops' or 'public'."""
    if api == "public":
        try:
            fn, extract = mlayers_public_forward(case, data)
            extract(fn())  # build errors show here, not inside the timing loop
            return fn, extract, "public"
        # the public API is under construction: fall back to _ops for this case
        except Exception as exc:  # noqa: BLE001
            print(f"  [{case.id}] public API failed ({type(exc).__name__}: {exc}); "
                  f"using _ops", file=sys.stderr)
    return mlayers_ops_forward(case, data), (lambda y: y), "ops"


def mlayers_backward(case, data):
    """Callable returning (dX, dW, db) through ``_ops`` (the public API has no gradients yet)."""
    before, after = case.pads()
    pads = np.array([before, after])
    x, w, dy = data.x, data.w, data.dy
    if case.transposed:
        return lambda: _ops.conv_transpose_backward(x, w, dy, stride=case.stride,
                                                    cropping=pads)
    return lambda: _ops.conv_backward(x, w, dy, stride=case.stride, dilation=case.dilation,
                                      padding=pads, groups=case.groups)


# =========================================================================== PyTorch

def torch_forward(case, data, torch):
    """F.conv{d}d / F.conv_transpose{d}d on NCHW data; explicit F.pad when asymmetric."""
    F = torch.nn.functional
    d = case.d
    x, w, b = (torch.from_numpy(a) for a in (data.xt, data.wt, data.bt))
    before, after = case.pads()
    if case.transposed:
        if any(bb < aa for bb, aa in zip(before, after)):
            raise ValueError("crop [p, p-o] needs before >= after")
        op = getattr(F, f"conv_transpose{d}d")
        outpad = tuple(bb - aa for bb, aa in zip(before, after))
        return lambda: op(x, w, b, stride=case.stride, padding=before,
                          output_padding=outpad)
    op = getattr(F, f"conv{d}d")
    if before == after:
        return lambda: op(x, w, b, stride=case.stride, padding=before,
                          dilation=case.dilation, groups=case.groups)
    # F.pad lists the last dimension first: [left right top bottom ...]
    pad = [p for bb, aa in zip(reversed(before), reversed(after)) for p in (bb, aa)]
    return lambda: op(F.pad(x, pad), w, b, stride=case.stride, dilation=case.dilation,
                      groups=case.groups)


def torch_backward(case, data, torch):
    """aten.convolution_backward, the kernel autograd calls: (dX, dW, db) from dY.

    For an asymmetric padding the input is padded once (the forward's saved input) and
    dX is the interior view of the padded gradient, as F.pad's backward would take it.
    """
    d = case.d
    x, w, dy = (torch.from_numpy(a) for a in (data.xt, data.wt, data.dyt))
    before, after = case.pads()
    bwd = torch.ops.aten.convolution_backward
    mask = [True, True, True]
    if case.transposed:
        outpad = [bb - aa for bb, aa in zip(before, after)]
        return lambda: bwd(dy, x, w, [w.shape[1]], list(case.stride), list(before),
                           [1] * d, True, outpad, 1, mask)
    if before == after:
        return lambda: bwd(dy, x, w, [w.shape[0]], list(case.stride), list(before),
                           list(case.dilation), False, [0] * d, case.groups, mask)
    pad = [p for bb, aa in zip(reversed(before), reversed(after)) for p in (bb, aa)]
    xp = torch.nn.functional.pad(x, pad)
    crop = (slice(None), slice(None)) + tuple(
        slice(bb, bb + n) for bb, n in zip(before, case.x[:d]))

    def fn():
        dx, dw, db = bwd(dy, xp, w, [w.shape[0]], list(case.stride), [0] * d,
                         list(case.dilation), False, [0] * d, case.groups, mask)
        return dx[crop], dw, db
    return fn


# =========================================================================== ONNX Runtime

# ORT's idle intra-op workers spin by default; interleaved with other peers, a 2-thread
# session's spinning workers then steal a core from whoever runs next (measured here:
# torch S1 went from 11 us to 20-270 us per call after an ORT run, despite the pause).
# So spinning is off unless --ort-spin on (use that with --peers ort, or a long --pause).
ORT_SPIN = {"value": False}


def ort_session(case, data, ort, onnx, threads):
    """A one-node Conv/ConvTranspose model (weights as initializers) and its session."""
    from onnx import TensorProto, helper, numpy_helper
    elem = {np.dtype(np.float32): TensorProto.FLOAT,
            np.dtype(np.float64): TensorProto.DOUBLE}[data.xt.dtype]
    before, after = case.pads()
    attrs = dict(kernel_shape=list(case.kernel), strides=list(case.stride),
                 pads=list(before) + list(after))
    if case.transposed:
        node = helper.make_node("ConvTranspose", ["X", "W", "B"], ["Y"], **attrs)
    else:
        node = helper.make_node("Conv", ["X", "W", "B"], ["Y"], dilations=list(case.dilation),
                                group=case.groups, **attrs)
    graph = helper.make_graph(
        [node], case.id, [helper.make_tensor_value_info("X", elem, list(data.xt.shape))],
        [helper.make_tensor_value_info("Y", elem, None)],
        initializer=[numpy_helper.from_array(data.wt, "W"),
                     numpy_helper.from_array(data.bt, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not ORT_SPIN["value"]:
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
    sess = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])
    feed = {"X": data.xt}
    return lambda: sess.run(["Y"], feed)[0]


# =========================================================================== timing

class Timer:
    """Interleaved timing of several callables.

    Each callable is warmed up, its per-call time estimated, and a block size chosen so a
    timed block lasts >= ``block`` s (tiny calls such as S1 are timed in tight loops of
    many calls, per-call time = block time / calls).  Then rounds run every callable's
    block in turn (round-robin, the starting callable rotating), until each has at least
    ``min_reps`` blocks and ``min_time`` s of timed calls.  A short pause between
    callables lets the previous library's spinning worker threads go idle.
    """

    def __init__(self, min_reps=5, min_time=0.5, block=0.01, max_reps=400, pause=0.002):
        self.min_reps, self.min_time, self.block = min_reps, min_time, block
        self.max_reps, self.pause = max_reps, pause

    def run(self, fns):
        """fns: dict name -> callable.  Returns (stats per name, first outputs per name)."""
        outputs, inner, est = {}, {}, {}
        for name, fn in fns.items():
            outputs[name] = fn()  # first call: allocation, caches, prepacking
            t0 = time.perf_counter()
            fn()
            t = time.perf_counter() - t0
            if t < self.block:  # refine with a short loop
                n = max(1, int(self.block / max(t, 1e-7)))
                t0 = time.perf_counter()
                for _ in range(n):
                    fn()
                t = (time.perf_counter() - t0) / n
            est[name] = max(t, 1e-8)
            inner[name] = max(1, int(round(self.block / est[name])))
        reps = {name: min(self.max_reps, max(self.min_reps,
                                             math.ceil(self.min_time / (inner[name] * est[name]))))
                for name in fns}
        samples = {name: [] for name in fns}
        names = list(fns)
        total_rounds = max(reps.values())
        for r in range(total_rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                if len(samples[name]) >= reps[name]:
                    continue
                fn, k = fns[name], inner[name]
                if self.pause:
                    time.sleep(self.pause)
                t0 = time.perf_counter()
                for _ in range(k):
                    fn()
                samples[name].append((time.perf_counter() - t0) / k)
        stats = {}
        for name, s in samples.items():
            q = statistics.quantiles(s, n=4) if len(s) >= 2 else [s[0]] * 3
            stats[name] = dict(median=statistics.median(s), min=min(s), q1=q[0], q3=q[2],
                               reps=len(s), calls_per_rep=inner[name])
        return stats, outputs


# =========================================================================== environment

class LoadMeter:
    """Cores kept busy by *other* processes while a block runs (a noise indicator).

    Machine-wide busy time from /proc/stat minus this process's CPU time, over wall time.
    None where /proc/stat is missing.
    """

    def __enter__(self):
        self.t0, self.busy0, self.own0 = time.perf_counter(), self._busy(), self._own()
        self.others = None
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.t0
        busy = self._busy()
        if busy is not None and self.busy0 is not None and wall > 0:
            self.others = max(0.0, (busy - self.busy0 - (self._own() - self.own0)) / wall)
        return False

    @staticmethod
    def _busy():
        try:
            with open("/proc/stat") as f:
                fields = [int(v) for v in f.readline().split()[1:]]
        except (OSError, ValueError):
            return None
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
        busy = sum(fields[:8]) - idle  # user nice system idle iowait irq softirq steal
        return busy / os.sysconf("SC_CLK_TCK")

    @staticmethod
    def _own():
        t = os.times()
        return t.user + t.system


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = next((ln.split(":", 1)[1].strip() for ln in info.splitlines()
                      if ln.startswith("model name")), platform.processor())
        flags = next((ln.split(":", 1)[1].split() for ln in info.splitlines()
                      if ln.startswith("flags")), [])
        simd = [f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni") if f in flags]
        return model, simd
    except OSError:
        return platform.processor(), []


def available_cores():
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def blas_limits(n):
    """Limit the BLAS libraries loaded in this process to n threads (threadpoolctl)."""
    try:
        from threadpoolctl import threadpool_limits
        return threadpool_limits(limits=n, user_api="blas")
    except Exception:  # noqa: BLE001
        return contextlib.nullcontext()


def gemm_rate(dtype, threads, n, timer):
    """Square gemm GFLOP/s through scipy.linalg.blas (the BLAS the kernels call)."""
    from scipy.linalg import blas
    rng = np.random.default_rng(1)
    a = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    b = np.asfortranarray(rng.standard_normal((n, n)).astype(dtype))
    c = np.zeros((n, n), dtype=dtype, order="F")
    gemm = blas.sgemm if dtype == np.float32 else blas.dgemm
    with blas_limits(threads):
        stats, _ = timer.run({"gemm": lambda: gemm(1.0, a, b, 0.0, c, overwrite_c=1)})
    return 2 * n ** 3 / stats["gemm"]["median"] / 1e9


def environment(peers, thread_list, quick):
    import scipy
    model, simd = cpu_model()
    env = {
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S"),
        "host": platform.node(), "python": platform.python_version(),
        "cpu": model, "simd": simd, "cores": available_cores(), "os_cpu_count": os.cpu_count(),
        "mlayers_threads": _ops.get_num_threads(), "openmp": _ops.openmp_enabled(),
        "mlayers_simd": _ops.simd_name(), "blas": _ops.blas_info(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "numpy": np.__version__, "scipy": scipy.__version__,
        "mlayers": getattr(mlayers, "__version__", "?"),
        "loadavg_start": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    for name, mod in peers.items():
        env[name] = getattr(mod, "__version__", "?") if mod is not None else None
    env["gemm_n"] = 256 if quick else 2048
    env["gemm_gflops"] = {}
    for dt in (np.float32, np.float64):
        for t in thread_list:
            update_gemm(env, dt, t, quick)
    return env


def update_gemm(env, dtype, threads, quick):
    """Measure the gemm rate again and keep the best seen: the ceiling, not a noisy sample.

    Called at start-up and again before each (dtype, threads) mode, so a busy moment at
    start-up does not leave a ceiling below what the kernels then reach.
    """
    timer = Timer(min_reps=3, min_time=0.02 if quick else 0.4, block=0.0, pause=0)
    key = f"{np.dtype(dtype).name}/{threads}"
    rate = gemm_rate(dtype, threads, env["gemm_n"], timer)
    env["gemm_gflops"][key] = max(rate, env["gemm_gflops"].get(key, 0.0))
    return rate


def print_environment(env, api_line):
    b = env["blas"]
    print("== environment " + "=" * 60)
    print(f"date (UTC)        {env['date_utc']}   host {env['host']}   python {env['python']}")
    print(f"cpu               {env['cpu']}  [{' '.join(env['simd'])}]")
    print(f"cores             {env['cores']} available ({env['os_cpu_count']} in the machine)")
    print(f"mlayers           threads {env['mlayers_threads']}, OpenMP "
          f"{'on' if env['openmp'] else 'OFF'}, SIMD kernels {env['mlayers_simd']}, "
          f"API path: {api_line}")
    print(f"BLAS (kernels)    {b.get('name')} {b.get('version')} core {b.get('corename') or '?'}"
          f", thread hooks {b.get('thread_hooks')}  {b.get('filepath', '')}")
    print(f"OPENBLAS_CORETYPE {env['OPENBLAS_CORETYPE'] or '(unset)'}"
          f"   OMP_NUM_THREADS {env['OMP_NUM_THREADS'] or '(unset)'}")
    print(f"versions          numpy {env['numpy']}, scipy {env['scipy']}, "
          f"torch {env.get('torch') or 'not timed'}, "
          f"onnxruntime {env.get('onnxruntime') or 'not timed'}")
    rates = ", ".join(f"{k.replace('float32', 'sgemm').replace('float64', 'dgemm')} thr: "
                      f"{v:.0f}" for k, v in env["gemm_gflops"].items())
    print(f"gemm GFLOP/s      n={env['gemm_n']}: {rates}  (measured again before each mode;"
          " tables use the best)")
    if env.get("loadavg_start"):
        print("load average      " + " ".join(f"{v:.2f}" for v in env["loadavg_start"])
              + "  (1/5/15 min, before the run; the 'others' column: cores other processes"
              " kept busy during each measurement)")
    if env["OPENBLAS_CORETYPE"]:
        print("NOTE: OPENBLAS_CORETYPE is set; OpenBLAS gemm may run well below its AVX-512 "
              "rate. Take numbers for comparison with it unset.")
    print()


# =========================================================================== the run

def import_peers(want):
    peers = {"torch": None, "onnxruntime": None, "onnx": None}
    if "torch" in want:
        try:
            import torch
            torch.set_grad_enabled(False)
            peers["torch"] = torch
        except Exception as exc:  # noqa: BLE001 (a failing peer is reported, not fatal)
            print(f"torch not importable: {exc}", file=sys.stderr)
    if "ort" in want:
        try:
            import onnx
            import onnxruntime
            onnxruntime.set_default_logger_severity(3)
            peers["onnxruntime"], peers["onnx"] = onnxruntime, onnx
        except Exception as exc:  # noqa: BLE001 (a failing peer is reported, not fatal)
            print(f"onnxruntime/onnx not importable: {exc}", file=sys.stderr)
    return peers


def tolerance(dtype):
    return 1e-4 if dtype == np.float32 else 1e-10


def wait_quiet(max_wait, log, threshold=0.3, probe=0.5):
    """Wait (at most ``max_wait`` s) until other processes keep < ``threshold`` cores busy."""
    if max_wait <= 0:
        return None
    t0 = time.perf_counter()
    while True:
        with LoadMeter() as load:
            time.sleep(probe)
        if load.others is None or load.others < threshold:
            return load.others
        if time.perf_counter() - t0 > max_wait:
            log(f"  (machine still busy: others {load.others:.1f} cores; timing anyway)")
            return load.others
        time.sleep(1.0)


def run_mode(cases, dtype, threads, peers, api, timer, log, quiet_wait=0):
    """Time every case for one (dtype, threads); returns rows (dicts)."""
    torch, ort, onnx = peers["torch"], peers["onnxruntime"], peers["onnx"]
    if torch is not None:
        torch.set_num_threads(threads)
    rows = []
    with _ops.threads(threads), blas_limits(threads):
        for case in cases:
            wait_quiet(quiet_wait, log)
            data = Data(case, dtype)
            d = case.d
            fns, convert, notes = {}, {}, {}
            fn, extract, path = mlayers_forward(case, data, api)
            fns["mlayers"], convert["mlayers"] = fn, extract
            if torch is not None:
                try:
                    fns["torch"] = torch_forward(case, data, torch)
                    convert["torch"] = lambda y, d=d: from_nchw(y.numpy(), d)
                except Exception as exc:  # noqa: BLE001 (a failing peer is reported, not fatal)
                    notes["torch"] = f"{type(exc).__name__}: {exc}"
            if ort is not None:
                try:
                    fns["ort"] = ort_session(case, data, ort, onnx, threads)
                    convert["ort"] = lambda y, d=d: from_nchw(y, d)
                except Exception as exc:  # noqa: BLE001 (a failing peer is reported, not fatal)
                    msg = str(exc)
                    notes["ort"] = ("no CPU kernel for this dtype" if "NOT_IMPLEMENTED" in msg
                                    else f"{type(exc).__name__}: {msg[:120]}")
            rows.append(measure(case, "fwd", case.gflop(), fns, convert, notes, path,
                                dtype, threads, timer, log))
            if case.grads:
                fns, convert = {"mlayers": mlayers_backward(case, data)}, {}
                convert["mlayers"] = lambda g: g[:2]
                if torch is not None:
                    fns["torch"] = torch_backward(case, data, torch)
                    convert["torch"] = lambda g, d=d: (from_nchw(g[0].numpy(), d),
                                                       from_nchw(g[1].numpy(), d))
                rows.append(measure(case, "grad", 2 * case.gflop(), fns, convert,
                                    {"ort": "no gradients (inference runtime)"}, "ops",
                                    dtype, threads, timer, log))
            del data
    return rows


def measure(case, kind, gflop, fns, convert, notes, path, dtype, threads, timer, log):
    with LoadMeter() as load:
        stats, outs = timer.run(fns)
    ref = convert["mlayers"](outs["mlayers"])
    errs = {}
    for name in fns:
        if name == "mlayers":
            continue
        got = convert[name](outs[name])
        if kind == "grad":  # (dX, dW): the worse of the two
            errs[name] = max(rel_err(g, r) for g, r in zip(got, ref))
        else:
            errs[name] = rel_err(got, ref)
    row = dict(case=case.id, kind=kind, call=case.matlab_call(), x=list(case.x),
               dtype=np.dtype(dtype).name, threads=threads, gflop=gflop, api=path,
               times={k: v for k, v in stats.items()}, rel_err=errs, notes=notes,
               tol=tolerance(dtype), others_busy=load.others)
    bad = [f"{k} {v:.1e}" for k, v in errs.items() if not v <= tolerance(dtype)]
    row["mismatch"] = bad
    t = stats["mlayers"]["median"] * 1e3
    peers = "  ".join(f"{k} {stats[k]['median'] * 1e3:.3f} ms (err {errs[k]:.1e})"
                      for k in fns if k != "mlayers")
    busy = "" if load.others is None else f"  [others busy {load.others:.1f} cores]"
    log(f"  {case.id:<3}{' grad' if kind == 'grad' else '     '} mlayers[{path}] {t:.3f} ms  "
        f"{peers}" + (f"  MISMATCH: {', '.join(bad)}" if bad else "") + busy)
    return row


# =========================================================================== report

def ms(row, peer):
    t = row["times"].get(peer)
    return None if t is None else t["median"] * 1e3


def ratio(row, peer):
    a, b = ms(row, peer), ms(row, "mlayers")
    return None if a is None or b is None else a / b


def best_peer_ratio(row):
    rs = [r for r in (ratio(row, "torch"), ratio(row, "ort")) if r is not None]
    return min(rs) if rs else None


def geomean(vals):
    vals = [v for v in vals if v is not None and v > 0]
    return math.exp(sum(map(math.log, vals)) / len(vals)) if vals else None


def fmt_ms(t):
    if t is None:
        return "-"
    return f"{t * 1e3:.1f} us" if t < 0.1 else f"{t:.3f}" if t < 10 else f"{t:.1f}"


def fmt_r(r):
    return "-" if r is None else f"{r:.2f}"


def table(rows, env, dtype, threads, markdown=False):
    """Lines of the table for one (dtype, threads)."""
    gemm = env["gemm_gflops"].get(f"{dtype}/{threads}")
    head = ["case", "GFLOP", "mlayers ms", "GFLOP/s", "%gemm", "torch ms", "torch/ml",
            "ORT ms", "ORT/ml", "max rel err", "api", "others"]
    body = []
    for r in rows:
        t = ms(r, "mlayers")
        rate = r["gflop"] / (t / 1e3) if t and r["gflop"] > 1e-6 else None
        errs = ", ".join(f"{k} {v:.0e}" for k, v in r["rel_err"].items()) or "-"
        if r["mismatch"]:
            errs += " MISMATCH"
        body.append([
            r["case"] + (" dX,dW" if r["kind"] == "grad" else ""),
            f"{r['gflop']:.4g}" if r["gflop"] > 1e-3 else f"{r['gflop']:.1e}",
            fmt_ms(t), "-" if rate is None else f"{rate:.1f}",
            "-" if rate is None or not gemm else f"{100 * rate / gemm:.0f}%",
            fmt_ms(ms(r, "torch")), fmt_r(ratio(r, "torch")),
            fmt_ms(ms(r, "ort")) if "ort" in r["times"] else "n/a",
            fmt_r(ratio(r, "ort")), errs, r["api"],
            "-" if r.get("others_busy") is None else f"{r['others_busy']:.1f}"])
    fwd = [best_peer_ratio(r) for r in rows if r["kind"] == "fwd" and r["case"] in SUMMARY_IDS]
    grd = [best_peer_ratio(r) for r in rows if r["kind"] == "grad"]
    gf, gg = geomean(fwd), geomean(grd)
    title = (f"{dtype}, {threads} thread{'s' if threads > 1 else ''}"
             + (f" (gemm {gemm:.0f} GFLOP/s)" if gemm else ""))
    summary = (f"geomean(faster peer / mlayers) over T1..U1 forward: {fmt_r(gf)} "
               f"({len([v for v in fwd if v])} cases)"
               + (f"; gradients: {fmt_r(gg)} ({len([v for v in grd if v])} cases)" if grd else "")
               + "   (>1: mlayers faster)")
    if markdown:
        lines = [f"### {title}", "", "| " + " | ".join(head) + " |",
                 "|" + "---|" * len(head)]
        lines += ["| " + " | ".join(row) + " |" for row in body]
        return lines + ["", summary, ""]
    widths = [max(len(h), *(len(b[i]) for b in body)) for i, h in enumerate(head)]
    line = lambda cells: "  ".join(c.rjust(w) if i in range(1, 9) else c.ljust(w)  
                                   for i, (c, w) in enumerate(zip(cells, widths)))
    return ([f"== {title} " + "=" * max(0, 70 - len(title)), line(head),
             line(["-" * w for w in widths])] + [line(b) for b in body] + [summary, ""])


def markdown_report(results):
    env = results["env"]
    b = env["blas"]
    out = ["# mlayers benchmark", "",
           f"{env['date_utc']} UTC, {env['cpu']} ({env['cores']} cores), "
           f"mlayers threads {env['mlayers_threads']}, OpenMP {'on' if env['openmp'] else 'off'}, "
           f"BLAS {b.get('name')} {b.get('version')} ({b.get('corename')}), "
           f"OPENBLAS_CORETYPE {env['OPENBLAS_CORETYPE'] or 'unset'}; numpy {env['numpy']}, "
           f"scipy {env['scipy']}, torch {env.get('torch')}, onnxruntime {env.get('onnxruntime')}; "
           f"API path {results['api']}.", "",
           f"gemm GFLOP/s (n={env['gemm_n']}): "
           + ", ".join(f"{k}: {v:.0f}" for k, v in env["gemm_gflops"].items()), "",
           "Times are medians in ms (us where marked); ratios are peer time / mlayers time "
           "(above 1: mlayers faster). 'others': cores kept busy by other processes during "
           "the measurement (noise indicator).", ""]
    for (dtype, threads), rows in group_rows(results["rows"]):
        out += table(rows, env, dtype, threads, markdown=True)
    return "\n".join(out) + "\n"


def group_rows(rows):
    keys = []
    for r in rows:
        k = (r["dtype"], r["threads"])
        if k not in keys:
            keys.append(k)
    return [(k, [r for r in rows if (r["dtype"], r["threads"]) == k]) for k in keys]


def plot(results, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    groups = group_rows(results["rows"])
    fig, axes = plt.subplots(len(groups), 1, figsize=(10, 3 * len(groups)), squeeze=False)
    for ax, ((dtype, threads), rows) in zip(axes[:, 0], groups):
        labels = [r["case"] + (" grad" if r["kind"] == "grad" else "") for r in rows]
        xs = np.arange(len(rows))
        for off, peer, color in ((-0.2, "torch", "tab:orange"), (0.2, "ort", "tab:blue")):
            vals = [ratio(r, peer) or np.nan for r in rows]
            ax.bar(xs + off, vals, 0.4, label=f"{peer} / mlayers", color=color)
        ax.axhline(1.0, color="k", lw=0.8)
        ax.set_yscale("log")
        ax.set_xticks(xs)
        ax.set_xticklabels(labels)
        ax.set_title(f"{dtype}, {threads} thread(s): peer time / mlayers time (>1: mlayers faster)")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    print(f"plot written to {path}")


# =========================================================================== main

def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(CASE_IDS),
                   help="comma-separated case ids (default: all): " + ",".join(CASE_IDS))
    p.add_argument("--dtype", default="both", choices=["float32", "float64", "both"])
    p.add_argument("--threads", default=None,
                   help="comma-separated thread counts (default: 1 and all cores)")
    p.add_argument("--quick", action="store_true",
                   help="smoke run at small sizes, a few seconds")
    p.add_argument("--api", default="auto", choices=["auto", "ops", "public"],
                   help="mlayers entry point: _ops functions or ml.predict(layer, X) "
                        "(auto: public when ml.predict exists)")
    p.add_argument("--peers", default="torch,ort", help="peers to time (torch,ort or none)")
    p.add_argument("--json", nargs="?", const=os.path.join(RESULTS, "latest.json"),
                   help="write the results as JSON (default path bench/results/latest.json)")
    p.add_argument("--md", nargs="?", const=os.path.join(RESULTS, "latest.md"),
                   help="write markdown tables (default path bench/results/latest.md)")
    p.add_argument("--plot", help="write a bar chart of the ratios (needs matplotlib)")
    p.add_argument("--min-time", type=float, default=None,
                   help="seconds of timed calls per measurement (default 0.5; quick 0.003)")
    p.add_argument("--wait-quiet", type=float, default=0, metavar="SECONDS",
                   help="before each case wait up to SECONDS for other processes to leave "
                        "the cores idle (shared machines; default 0: do not wait)")
    p.add_argument("--pause", type=float, default=None,
                   help="seconds between two peers' blocks (default 0.002; quick 0.001)")
    p.add_argument("--ort-spin", choices=["on", "off"], default="off",
                   help="ORT session.intra_op.allow_spinning (default off: ORT's spinning "
                        "workers would slow the peer timed after it; ORT's own default is on)")
    p.add_argument("--min-reps", type=int, default=None, help="repetitions (default 5; quick 3)")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    ids = [c.strip().upper() for c in args.cases.split(",") if c.strip()]
    unknown = [c for c in ids if c not in CASE_IDS]
    if unknown:
        sys.exit(f"unknown case(s) {unknown}; known: {CASE_IDS}")
    cases = [c.shrunk() if args.quick else c for c in CASES if c.id in ids]
    dtypes = {"float32": [np.float32], "float64": [np.float64],
              "both": [np.float32, np.float64]}[args.dtype]
    ncores = available_cores()
    if args.threads:
        thread_list = [int(t) for t in args.threads.split(",")]
    else:
        thread_list = sorted({1, ncores})
    if args.api == "ops":
        api = "ops"
    else:
        api = "public" if public_api_available() else "ops"
        if args.api == "public" and api == "ops":
            print("--api public: mlayers has no predict/dlarray yet, falling back to _ops",
                  file=sys.stderr)
    api_line = ("public  ml.predict(layer, ml.dlarray(x, fmt))" if api == "public"
                else "ops     mlayers._ops.conv / conv_transpose"
                + ("" if args.api == "ops" else "  (ml.predict not available)"))
    api_line += "; gradients via _ops.conv_backward / conv_transpose_backward"
    peers = import_peers(args.peers)
    env = environment(peers, thread_list, args.quick)
    print_environment(env, api_line)
    min_time = args.min_time if args.min_time is not None else (0.003 if args.quick else 0.5)
    min_reps = args.min_reps if args.min_reps is not None else (3 if args.quick else 5)
    timer = Timer(min_reps=min_reps, min_time=min_time,
                  block=0.001 if args.quick else 0.01,
                  pause=args.pause if args.pause is not None else (0.001 if args.quick else 0.002))
    ORT_SPIN["value"] = args.ort_spin == "on"

    rows, t_start = [], time.perf_counter()
    for dtype in dtypes:
        for threads in thread_list:
            print(f"-- {np.dtype(dtype).name}, {threads} thread(s)", flush=True)
            wait_quiet(args.wait_quiet, lambda s: print(s, flush=True))
            update_gemm(env, dtype, threads, args.quick)
            mode_rows = run_mode(cases, dtype, threads, peers, api, timer,
                                 lambda s: print(s, flush=True), args.wait_quiet)
            rows += mode_rows
            print()
            print("\n".join(table(mode_rows, env, np.dtype(dtype).name, threads)), flush=True)
    results = dict(env=env, api=api, quick=args.quick, argv=sys.argv[1:] if argv is None
                   else list(argv), rows=rows, seconds=time.perf_counter() - t_start,
                   loadavg_end=list(os.getloadavg()) if hasattr(os, "getloadavg") else None)
    mismatches = [(r["case"], r["kind"], r["dtype"], r["threads"], r["mismatch"])
                  for r in rows if r["mismatch"]]
    print(f"total {results['seconds']:.1f} s; "
          + ("all peer outputs match mlayers" if not mismatches
             else f"MISMATCHES: {mismatches}"))
    for path, write in ((args.json, lambda f: json.dump(results, f, indent=1, default=str)),
                        (args.md, lambda f: f.write(markdown_report(results)))):
        if path:
            os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
            with open(path, "w") as f:
                write(f)
            print(f"written {path}")
    if args.plot:
        plot(results, args.plot)
    return 1 if mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
