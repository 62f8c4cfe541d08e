"""Whole networks end to end: BENCHMARKS.md Part 2, N1-N5.

mlayers through the public API (``ml.predict(net, X)``; one training iteration =
``ml.dlfeval`` of forward + crossentropy + ``ml.dlgradient``, then ``ml.sgdmupdate``) against
the same network in PyTorch (eval + ``inference_mode`` for predict; ``loss.backward()`` +
``SGD(momentum=0.9)`` step for training) and ONNX Runtime (predict; the PyTorch model
exported to ONNX).  ``N3tn`` is issue 18's criterion as a user meets it: one iteration of
``ml.trainNetwork`` (sgdm, MATLAB's defaults, L2 1e-4) on N1 + ``classificationLayer``, the
median interval between successive ``OutputFcn`` calls of one run (mini-batch extraction,
forward, loss, backward, L2, update, reporting), against the PyTorch step with
``weight_decay=1e-4``.  Same weights, same data, float32 (``--dtype float64``: the same
values in float64, PyTorch's modules made in float64; no ONNX Runtime, which has no float64
convolution, and no N3tn); outputs (and the first iteration's loss and gradients) are
checked to agree before anything is timed.  Timings are medians of
calls interleaved between the frameworks, in rounds; memory is the peak of Python-visible
allocations (tracemalloc: numpy arrays, which is where mlayers' activations live) per call,
plus the result buffers mlayers keeps for reuse (``mlayers._buffers``).

    python bench/networks.py                       # every case, 1 and 2 threads
    python bench/networks.py --cases N1,N2 --threads 2 --md
    python bench/networks.py --profile N1          # per layer type, ms (mlayers)

Run with ``env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE``.  ``--md`` writes
bench/results/networks.md, ``--plot`` a bar chart of peer time / mlayers time.
"""
import argparse
import io
import warnings
import json
import os
import statistics
import sys
import time
import tracemalloc

import numpy as np

import mlayers as ml

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")


# ----------------------------------------------------------------------- networks

#: the networks' weights and data (``--dtype``): the same random values, rounded to it
DTYPE = np.float32


def _glorot(rng, shape, fan_in, fan_out):
    lim = np.sqrt(6 / (fan_in + fan_out))
    return rng.uniform(-lim, lim, shape).astype(DTYPE)


class Net:
    """One network in both frameworks: mlayers layers/graph, the torch module, data."""

    def __init__(self, name, layers, torch_fn, x, fmt, classes, seq=False):
        self.name, self.layers, self.torch_fn = name, layers, torch_fn
        # the data in MATLAB's memory order (column-major, as scipy.io.loadmat returns it),
        # as the peers get theirs in their own order, made before anything is timed
        self.x = np.asfortranarray(x)
        self.fmt, self.classes, self.seq = fmt, classes, seq


def _conv_params(rng, k, c, f):
    if isinstance(k, int):
        k = (k, k)
    w = _glorot(rng, (*k, c, f), np.prod(k) * c, np.prod(k) * f)
    b = (0.1 * rng.standard_normal((1, 1, f) if len(k) == 2 else (1, f))).astype(DTYPE)
    return w, b


def _bn_params(rng, c):
    return dict(Offset=(0.1 * rng.standard_normal((1, 1, c))).astype(DTYPE),
                Scale=(1 + 0.1 * rng.standard_normal((1, 1, c))).astype(DTYPE),
                TrainedMean=(0.1 * rng.standard_normal((1, 1, c))).astype(DTYPE),
                TrainedVariance=(1 + 0.1 * rng.random((1, 1, c))).astype(DTYPE))


def _tdtype(torch):
    """PyTorch's dtype for DTYPE (modules made in it, so the weights copied in keep it)."""
    return torch.float64 if DTYPE == np.float64 else torch.float32


def _torch_conv2d(torch, w, b, stride=1, padding=0):
    kh, kw, c, f = w.shape
    m = torch.nn.Conv2d(c, f, (kh, kw), stride=stride, padding=padding, dtype=_tdtype(torch))
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))))
        m.bias.copy_(torch.from_numpy(b.ravel()))
    return m


def _torch_bn(torch, p):
    c = p["Scale"].size
    m = torch.nn.BatchNorm2d(c, eps=1e-5, momentum=0.1, dtype=_tdtype(torch))
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(p["Scale"].ravel()))
        m.bias.copy_(torch.from_numpy(p["Offset"].ravel()))
        m.running_mean.copy_(torch.from_numpy(p["TrainedMean"].ravel()))
        m.running_var.copy_(torch.from_numpy(p["TrainedVariance"].ravel()))
    return m


def _torch_fc(torch, w, b, spatial=None):
    """MATLAB flattens H x W x C column-major; torch flattens C x H x W row-major."""
    out = w.shape[0]
    if spatial is not None:
        h, wd, c = spatial
        w = w.reshape(out, h, wd, c, order="F").transpose(0, 3, 1, 2).reshape(out, -1)
    m = torch.nn.Linear(w.shape[1], out, dtype=_tdtype(torch))
    with torch.no_grad():
        m.weight.copy_(torch.from_numpy(np.ascontiguousarray(w)))
        m.bias.copy_(torch.from_numpy(b.ravel()))
    return m


def n1(batch, rng):
    """The digit classifier (MATLAB's 'Create Simple Deep Learning Network')."""
    convs = [_conv_params(rng, 3, c, f) for c, f in ((1, 8), (8, 16), (16, 32))]
    bns = [_bn_params(rng, f) for f in (8, 16, 32)]
    fcw = _glorot(rng, (10, 7 * 7 * 32), 7 * 7 * 32, 10)
    fcb = (0.1 * rng.standard_normal((10, 1))).astype(DTYPE)
    layers = [ml.imageInputLayer([28, 28, 1], Normalization="none")]
    for i, ((w, b), p) in enumerate(zip(convs, bns)):
        layers += [ml.convolution2dLayer(3, w.shape[3], Padding="same", Weights=w, Bias=b),
                   ml.batchNormalizationLayer(**p), ml.reluLayer()]
        if i < 2:
            layers.append(ml.maxPooling2dLayer(2, Stride=2))
    layers += [ml.fullyConnectedLayer(10, Weights=fcw, Bias=fcb), ml.softmaxLayer()]

    def torch_fn(torch):
        mods = []
        for i, ((w, b), p) in enumerate(zip(convs, bns)):
            mods += [_torch_conv2d(torch, w, b, padding=1), _torch_bn(torch, p),
                     torch.nn.ReLU()]
            if i < 2:
                mods.append(torch.nn.MaxPool2d(2, 2))
        mods += [torch.nn.Flatten(), _torch_fc(torch, fcw, fcb, (7, 7, 32))]
        return torch.nn.Sequential(*mods)

    x = rng.random((28, 28, 1, batch)).astype(DTYPE)
    return Net("N1", layers, torch_fn, x, "SSCB", 10)


def n4(batch, rng):
    """A small ResNet as a layer graph: conv 3x3 (no padding), three stages of two residual
    blocks (16, 32, 64 channels), global average pooling, fully connected, softmax."""
    conv0, bn0 = _conv_params(rng, 3, 3, 16), _bn_params(rng, 16)
    main = [ml.imageInputLayer([32, 32, 3], Normalization="none", Name="in"),
            ml.convolution2dLayer(3, 16, Weights=conv0[0], Bias=conv0[1], Name="conv0"),
            ml.batchNormalizationLayer(Name="bn0", **bn0), ml.reluLayer(Name="relu0")]
    blocks, skips = [], []
    prev, cin = "relu0", 16
    for stage, cout in enumerate((16, 32, 64)):
        for blk in range(2):
            stride = 2 if stage > 0 and blk == 0 else 1
            nm = f"s{stage}b{blk}"
            c1, c2 = _conv_params(rng, 3, cin, cout), _conv_params(rng, 3, cout, cout)
            b1, b2 = _bn_params(rng, cout), _bn_params(rng, cout)
            sc = _conv_params(rng, 1, cin, cout) if stride == 2 else None
            main += [ml.convolution2dLayer(3, cout, Padding="same", Stride=stride,
                                           Weights=c1[0], Bias=c1[1], Name=nm + "c1"),
                     ml.batchNormalizationLayer(Name=nm + "bn1", **b1),
                     ml.reluLayer(Name=nm + "r1"),
                     ml.convolution2dLayer(3, cout, Padding="same", Weights=c2[0],
                                           Bias=c2[1], Name=nm + "c2"),
                     ml.batchNormalizationLayer(Name=nm + "bn2", **b2),
                     ml.additionLayer(2, Name=nm + "add"), ml.reluLayer(Name=nm + "r2")]
            skips.append((prev, nm, sc))
            blocks.append((stride, c1, b1, c2, b2, sc))
            prev, cin = nm + "r2", cout
    fcw = _glorot(rng, (10, 64), 64, 10)
    fcb = (0.1 * rng.standard_normal((10, 1))).astype(DTYPE)
    main += [ml.globalAveragePooling2dLayer(Name="gap"),
             ml.fullyConnectedLayer(10, Weights=fcw, Bias=fcb, Name="fc"),
             ml.softmaxLayer(Name="sm")]
    lg = ml.layerGraph(main)
    for src, nm, sc in skips:
        if sc is None:
            lg = ml.connectLayers(lg, src, nm + "add/in2")
        else:
            lg = ml.addLayers(lg, ml.convolution2dLayer(1, sc[0].shape[3], Stride=2,
                                                        Weights=sc[0], Bias=sc[1],
                                                        Name=nm + "sc"))
            lg = ml.connectLayers(lg, src, nm + "sc")
            lg = ml.connectLayers(lg, nm + "sc", nm + "add/in2")

    def torch_fn(torch):
        class Block(torch.nn.Module):
            def __init__(self, stride, c1, b1, c2, b2, sc):
                super().__init__()
                # MATLAB's 'same' with stride 2 pads (total) // 2 before, the rest after
                self.stride = stride
                self.c1 = _torch_conv2d(torch, *c1, stride=stride,
                                        padding=1 if stride == 1 else 0)
                self.b1, self.c2 = _torch_bn(torch, b1), _torch_conv2d(torch, *c2, padding=1)
                self.b2 = _torch_bn(torch, b2)
                self.sc = None if sc is None else _torch_conv2d(torch, *sc, stride=2)

            def forward(self, x):
                h = x
                if self.stride > 1:
                    pads = []
                    for n in (int(x.shape[3]), int(x.shape[2])):
                        total = max((-(-n // 2) - 1) * 2 + 3 - n, 0)
                        pads += [total // 2, total - total // 2]
                    h = torch.nn.functional.pad(x, pads)
                y = self.b2(self.c2(torch.relu(self.b1(self.c1(h)))))
                return torch.relu(y + (x if self.sc is None else self.sc(x)))

        class Gap(torch.nn.Module):
            def forward(self, x):
                return x.mean(dim=(2, 3))

        return torch.nn.Sequential(_torch_conv2d(torch, *conv0), _torch_bn(torch, bn0),
                                   torch.nn.ReLU(), *(Block(*b) for b in blocks), Gap(),
                                   _torch_fc(torch, fcw, fcb))

    x = rng.random((32, 32, 3, batch)).astype(DTYPE)
    return Net("N4", lg, torch_fn, x, "SSCB", 10)


def n5(batch, rng, t=256):
    """1-D causal convolutions over sequences, layer normalization, global average."""
    c1, c2 = _conv_params(rng, (3,), 12, 64), _conv_params(rng, (3,), 64, 64)
    ln = [dict(Offset=(0.1 * rng.standard_normal((64, 1))).astype(DTYPE),
               Scale=(1 + 0.1 * rng.standard_normal((64, 1))).astype(DTYPE))
          for _ in range(2)]
    fcw = _glorot(rng, (9, 64), 64, 9)
    fcb = (0.1 * rng.standard_normal((9, 1))).astype(DTYPE)
    layers = [ml.sequenceInputLayer(12)]
    for (w, b), dil, p in zip((c1, c2), (1, 2), ln):
        layers += [ml.convolution1dLayer(3, 64, Padding="causal", DilationFactor=dil,
                                         Weights=w, Bias=b.reshape(1, -1)),
                   ml.reluLayer(), ml.layerNormalizationLayer(**p)]
    layers += [ml.globalAveragePooling1dLayer(),
               ml.fullyConnectedLayer(9, Weights=fcw, Bias=fcb), ml.softmaxLayer()]

    def torch_fn(torch):
        class Causal(torch.nn.Module):
            def __init__(self, w, b, dil):
                super().__init__()
                self.pad = 2 * dil
                self.conv = torch.nn.Conv1d(w.shape[1], w.shape[2], 3, dilation=dil,
                                            dtype=_tdtype(torch))
                with torch.no_grad():
                    self.conv.weight.copy_(torch.from_numpy(
                        np.ascontiguousarray(w.transpose(2, 1, 0))))
                    self.conv.bias.copy_(torch.from_numpy(b.ravel()))

            def forward(self, x):
                return self.conv(torch.nn.functional.pad(x, (self.pad, 0)))

        class LN(torch.nn.Module):         # over channels, per observation and time step
            def __init__(self, p):
                super().__init__()
                self.ln = torch.nn.LayerNorm(64, eps=1e-5, dtype=_tdtype(torch))
                with torch.no_grad():
                    self.ln.weight.copy_(torch.from_numpy(p["Scale"].ravel()))
                    self.ln.bias.copy_(torch.from_numpy(p["Offset"].ravel()))

            def forward(self, x):
                return self.ln(x.transpose(1, 2)).transpose(1, 2)

        class Mean(torch.nn.Module):
            def forward(self, x):
                return x.mean(dim=2)

        mods = []
        for (w, b), dil, p in zip((c1, c2), (1, 2), ln):
            mods += [Causal(w, b, dil), torch.nn.ReLU(), LN(p)]
        mods += [Mean(), _torch_fc(torch, fcw, fcb)]
        return torch.nn.Sequential(*mods)

    x = rng.standard_normal((12, batch, t)).astype(DTYPE)
    return Net("N5", layers, torch_fn, x, "CBT", 9, seq=True)


# ------------------------------------------------------------------------ frameworks

def _to_torch_layout(net, x):
    if net.fmt == "SSCB":
        return np.ascontiguousarray(x.transpose(3, 2, 0, 1))
    return np.ascontiguousarray(x.transpose(1, 0, 2))          # CBT -> N C T


def _onehot(net, rng, n):
    labels = rng.integers(0, net.classes, n)
    t = np.zeros((net.classes, n), DTYPE)
    t[labels, np.arange(n)] = 1
    return labels, t


class Case:
    def __init__(self, cid, net, mode, torch, ort, threads):
        self.id, self.net, self.mode = cid, net, mode
        rng = np.random.default_rng(7)
        self.dlnet = ml.dlnetwork(net.layers)
        self.X = ml.dlarray(net.x, net.fmt)
        n = net.x.shape[3] if net.fmt == "SSCB" else net.x.shape[1]
        self.labels, self.T = _onehot(net, rng, n)
        self.Tdl = ml.dlarray(self.T, "CB")
        self.fns = {"mlayers": self._trainnetwork_fn() if mode == "trainNetwork"
                    else self._ml_fn()}
        self.tmodel = None
        if torch is not None:
            self.tmodel = net.torch_fn(torch)
            self.xt = torch.from_numpy(_to_torch_layout(net, net.x))
            self.yt = torch.from_numpy(self.labels)
            self.fns["torch"] = self._torch_fn(torch)
            # (ONNX Runtime has no float64 convolution kernel)
            if ort is not None and mode == "predict" and DTYPE == np.float32:
                self.fns["ort"] = self._ort_fn(torch, ort, threads)

    # mlayers
    def _ml_fn(self):
        if self.mode == "predict":
            return lambda: ml.predict(self.dlnet, self.X)

        def model_loss(net, X, T):
            Y, state = ml.forward(net, X, nargout=2)
            loss = ml.crossentropy(Y, T)
            return loss, ml.dlgradient(loss, net.Learnables), state

        self.velocity = []

        def step():
            loss, grads, state = ml.dlfeval(model_loss, self.dlnet, self.X, self.Tdl)
            self.dlnet.State = state
            self.dlnet, self.velocity = ml.sgdmupdate(self.dlnet, grads, self.velocity,
                                                      0.01, 0.9)
            return loss
        self.ml_model_loss = model_loss
        return step

    def _trainnetwork_fn(self, iterations=6):
        """One trainNetwork run of ``iterations`` mini-batches; returns its median
        per-iteration time (read by _time through ``per_iteration``)."""
        net = self.net
        B = net.x.shape[3]
        X = np.concatenate([net.x] * iterations, axis=3)
        Y = ml.categorical(np.tile(self.labels, iterations))
        layers = list(net.layers) + [ml.classificationLayer()]

        def run():
            stamps = []

            def out(info):
                if info["State"] == "iteration":
                    stamps.append(run.clock())
                return False
            opts = ml.trainingOptions("sgdm", MaxEpochs=1, MiniBatchSize=B, Shuffle="never",
                                      Verbose=False, OutputFcn=out)
            ml.trainNetwork(X, Y, layers, opts)
            return statistics.median(np.diff(stamps))
        run.per_iteration = True
        run.clock = time.perf_counter
        return run

    # torch
    def _torch_fn(self, torch):
        m = self.tmodel
        if self.mode == "predict":
            m.eval()

            def run():
                with torch.inference_mode():
                    return torch.softmax(m(self.xt), dim=1)
            return run
        m.train()
        opt = torch.optim.SGD(m.parameters(), lr=0.01, momentum=0.9,
                              weight_decay=1e-4 if self.mode == "trainNetwork" else 0)
        lossf = torch.nn.CrossEntropyLoss()

        def step():
            opt.zero_grad(set_to_none=True)
            loss = lossf(m(self.xt), self.yt)
            loss.backward()
            opt.step()
            return loss
        return step

    def _ort_fn(self, torch, ort, threads):
        import copy
        # (export from a copy: the exporter runs the module and may touch its state)
        m = copy.deepcopy(self.tmodel).eval()
        wrapped = torch.nn.Sequential(m, torch.nn.Softmax(dim=1))
        f = io.BytesIO()
        torch.onnx.export(wrapped, self.xt, f, dynamo=False, input_names=["x"],
                          output_names=["y"], opset_version=17)
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(f.getvalue(), so, providers=["CPUExecutionProvider"])
        xn = self.xt.numpy()
        return lambda: sess.run(None, {"x": xn})[0]

    # agreement before timing
    def check(self, torch):
        if self.mode == "predict":
            y = np.asarray(ml.extractdata(self.fns["mlayers"]()))
            out = {}
            for k in ("torch", "ort"):
                if k in self.fns:
                    yp = self.fns[k]()
                    yp = yp.numpy() if hasattr(yp, "numpy") else yp
                    out[k] = float(np.abs(yp.T - y).max() / np.abs(y).max())
            return out
        if torch is None or self.mode == "trainNetwork":
            return {}
        # first iteration's loss and the first layer's weight gradient agree
        loss, grads, _ = ml.dlfeval(self.ml_model_loss, self.dlnet, self.X, self.Tdl)
        g0 = np.asarray(ml.extractdata(grads.Value[0]))
        m = self.tmodel.train()
        m.zero_grad()
        lt = torch.nn.CrossEntropyLoss()(m(self.xt), self.yt)
        lt.backward()
        first = next(m.parameters()).grad.numpy()
        g0t = first.transpose(2, 3, 1, 0) if first.ndim == 4 else first.transpose(2, 1, 0)
        m.zero_grad()
        lt = float(lt.detach())
        return {"loss": abs(float(ml.extractdata(loss)) - lt) / abs(lt),
                "grad": float(np.abs(g0t - g0).max() / np.abs(g0).max())}


def _time(fns, rounds, min_time, clock=time.perf_counter):
    """Medians of per-call times, frameworks interleaved in rounds.  ``clock`` may be
    time.thread_time on 1 thread: the calling thread's CPU time, which a loaded machine
    inflates far less than the wall clock (every framework computes in the calling
    thread when it has one thread)."""
    times = {k: [] for k in fns}
    for f in fns.values():
        if getattr(f, "per_iteration", False):
            f.clock = clock
        f()
    for _ in range(rounds):
        for k, f in fns.items():
            t_end = time.perf_counter() + min_time / rounds
            while True:
                t = clock()
                r = f()
                times[k].append(r if getattr(f, "per_iteration", False) else clock() - t)
                if time.perf_counter() >= t_end and len(times[k]) >= 3:
                    break
    return {k: statistics.median(v) for k, v in times.items()}


def _memory(fn):
    """Peak tracemalloc'd bytes of one call (numpy arrays and Python objects), plus the
    result buffers mlayers keeps for reuse (mlayers._buffers: allocated once, they no
    longer show in a later call's peak)."""
    from mlayers import _buffers
    _buffers.trim()                    # (free buffers of the cases timed before)
    fn()
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return peak + sum(n * len(bufs) for n, bufs in _buffers._pool.items())


CASES = {"N1": ("N1", 128, "predict"), "N2": ("N1", 1, "predict"),
         "N3": ("N1", 128, "train"), "N4": ("N4", 32, "predict"),
         "N4t": ("N4", 32, "train"), "N5": ("N5", 32, "predict"), "N5t": ("N5", 32, "train"),
         "N3tn": ("N1", 128, "trainNetwork")}
BUILDERS = {"N1": n1, "N4": n4, "N5": n5}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--threads", default="1,2")
    p.add_argument("--min-time", type=float, default=2.0)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--md", nargs="?", const=os.path.join(RESULTS, "networks.md"))
    p.add_argument("--json", nargs="?", const=os.path.join(RESULTS, "networks.json"))
    p.add_argument("--plot")
    p.add_argument("--profile", help="per-layer-type ms of mlayers for one case")
    p.add_argument("--dtype", default="float32", choices=["float32", "float64"],
                   help="the networks' weights and data (N3tn runs in float32 only)")
    p.add_argument("--cpu-time", action="store_true",
                   help="time 1-thread runs by the calling thread's CPU time (loaded machine)")
    args = p.parse_args(argv)
    global DTYPE
    DTYPE = np.dtype(args.dtype).type
    warnings.filterwarnings("ignore")
    try:
        import torch
    except ImportError:
        torch = None
    try:
        import onnxruntime as ort
        ort.set_default_logger_severity(3)
    except ImportError:
        ort = None
    if args.profile:
        return profile(args.profile, torch)
    rows = []
    for cid in args.cases.split(","):
        base, batch, mode = CASES[cid]
        if mode == "trainNetwork" and DTYPE != np.float32:
            continue
        if base not in BUILDERS:
            print(f"{cid}: not built yet (network {base})", file=sys.stderr)
            continue
        for nt in (int(t) for t in args.threads.split(",")):
            ml.set_num_threads(nt)
            if torch is not None:
                torch.set_num_threads(nt)
            try:
                case = Case(cid, BUILDERS[base](batch, np.random.default_rng(1)), mode,
                            torch, ort, nt)
                agree = case.check(torch)
            except Exception as exc:             # a piece of mlayers not there yet
                print(f"{cid}: {type(exc).__name__}: {exc}", file=sys.stderr)
                break
            clock = time.thread_time if args.cpu_time and nt == 1 else time.perf_counter
            med = _time(case.fns, args.rounds, args.min_time, clock)
            mem = _memory(case.fns["mlayers"])
            row = {"case": cid, "mode": mode, "batch": batch, "threads": nt,
                   "dtype": np.dtype(DTYPE).name,
                   "clock": "cpu" if clock is time.thread_time else "wall",
                   "ms": {k: v * 1e3 for k, v in med.items()}, "agree": agree,
                   "ml_peak_mib": mem / 2 ** 20}
            rows.append(row)
            peers = "  ".join(f"{k} {v * 1e3:.3f} ms ({v / med['mlayers']:.2f})"
                              for k, v in med.items() if k != "mlayers")
            print(f"{cid:4s} {mode:7s} thr {nt}: mlayers {med['mlayers'] * 1e3:.3f} ms  "
                  f"{peers}  peak {mem / 2 ** 20:.1f} MiB  agree {agree}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=1)
    if args.md:
        with open(args.md, "w") as f:
            f.write(table(rows))
    if args.plot:
        plot(rows, args.plot)
    return rows


def table(rows):
    out = ["| case | timed | dtype | batch | threads | mlayers ms | torch ms | torch/ml | ORT ms | "
           "ORT/ml | mlayers peak MiB | agreement |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        ms = r["ms"]
        base = ms["mlayers"]

        def cell(k):
            return (f"{ms[k]:.3f} | {ms[k] / base:.2f}") if k in ms else "- | -"
        ag = ", ".join(f"{k} {v:.0e}" for k, v in r["agree"].items())
        out.append(f"| {r['case']} | {r['mode']} | {r.get('dtype', 'float32')} | {r['batch']} | "
                   f"{r['threads']} | "
                   f"{base:.3f} | {cell('torch')} | {cell('ort')} | "
                   f"{r['ml_peak_mib']:.1f} | {ag} |")
    return "\n".join(out) + "\n"


def plot(rows, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels = [f"{r['case']} {r['mode']} {r['threads']}t" for r in rows]
    fig, ax = plt.subplots(figsize=(max(6, len(rows) * 0.8), 4))
    xs = np.arange(len(rows))
    for i, peer in enumerate(("torch", "ort")):
        vals = [r["ms"].get(peer, np.nan) / r["ms"]["mlayers"] for r in rows]
        ax.bar(xs + (i - 0.5) * 0.4, vals, 0.4, label=f"{peer} / mlayers")
    ax.axhline(1, color="k", lw=0.8)
    ax.set_xticks(xs, labels, rotation=45, ha="right")
    ax.set_ylabel("peer time / mlayers time (>1: mlayers faster)")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def profile(cid, torch):
    """mlayers' time per layer type for one case (predict: layer by layer through the
    network's own per-layer calls, timed with a wrapper)."""
    import collections
    import cProfile
    import pstats
    base, batch, mode = CASES[cid]
    case = Case(cid, BUILDERS[base](batch, np.random.default_rng(1)), mode, None, None, 2)
    fn = case.fns["mlayers"]
    for _ in range(3):
        fn()
    pr = cProfile.Profile()
    n = 20
    pr.enable()
    for _ in range(n):
        fn()
    pr.disable()
    st = pstats.Stats(pr)
    st.sort_stats("cumulative").print_stats(40)
    return st


if __name__ == "__main__":
    main()
