"""Per-layer profile of whole networks (issue 20, network side; BENCHMARKS.md Part 2).

Builds N1-N5 in mlayers, then for each: ``predict`` per-layer medians (the executor's
schedule walked by hand, one layer at a time), ``predict`` end to end with BN folding on
and off, and one training iteration (``dlfeval`` of forward + crossentropy + dlgradient,
then ``sgdmupdate``) end to end and under cProfile.  With ``--torch`` the same networks
run in PyTorch (eval + inference_mode; loss.backward + SGD(momentum=0.9)), interleaved
with mlayers, and the ratios are printed.  Timings are medians of interleaved repeats.
``--split`` times a training step's phases (the network's forward, the backward pass,
the solver), each as the time inside the compiled kernels (every call into
``mlayers._conv``, ``_norm``, ``_pool``, ``_act``) and the time outside them: Python, NumPy
and the arrays' handling around the kernels; ``--ops`` adds that split per differentiable
operation (every ``@operation`` of the package) and per operation's backward.

Run (the machine is shared; quote medians and ratios from one run)::

    env -u OPENBLAS_CORETYPE -u OPENBLAS_L2_SIZE python bench/netperf.py [--threads 1]
        [--cases N1,N2,N3] [--torch] [--profile] [--layers] [--split [--ops]] [--passive]
        [--reps 30]
"""
import argparse
import cProfile
import io
import os
import pstats
import sys
import time

if "--passive" in sys.argv:
    # OpenMP's idle threads sleep instead of spinning (read when libgomp loads, so before
    # mlayers and torch are imported); on a loaded machine this decides the 2-thread runs
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"

import numpy as np

import mlayers as ml
from mlayers import _defaults


def n1_layers():
    L = [ml.imageInputLayer([28, 28, 1], Normalization="none")]
    for k, f in enumerate((8, 16, 32)):
        L += [ml.convolution2dLayer(3, f, Padding="same"), ml.batchNormalizationLayer(),
              ml.reluLayer()]
        if k < 2:
            L.append(ml.maxPooling2dLayer(2, Stride=2))
    return L + [ml.fullyConnectedLayer(10), ml.softmaxLayer()]


def n4_graph():
    L = [ml.imageInputLayer([32, 32, 3], Normalization="none", Name="in"),
         ml.convolution2dLayer(3, 16, Name="conv0"), ml.batchNormalizationLayer(Name="bn0"),
         ml.reluLayer(Name="relu0")]
    g = ml.layerGraph(L)
    prev = "relu0"
    for s, f in enumerate((16, 32, 64)):
        for b in range(2):
            stride = 2 if (s > 0 and b == 0) else 1
            p = f"s{s}b{b}"
            g = ml.addLayers(g, [
                ml.convolution2dLayer(3, f, Padding="same", Stride=stride, Name=p + "c1"),
                ml.batchNormalizationLayer(Name=p + "bn1"), ml.reluLayer(Name=p + "r1"),
                ml.convolution2dLayer(3, f, Padding="same", Name=p + "c2"),
                ml.batchNormalizationLayer(Name=p + "bn2"),
                ml.additionLayer(2, Name=p + "add"), ml.reluLayer(Name=p + "r2")])
            g = ml.connectLayers(g, prev, p + "c1")
            if stride == 2:
                g = ml.addLayers(g, ml.convolution2dLayer(1, f, Stride=2, Name=p + "sc"))
                g = ml.connectLayers(g, prev, p + "sc")
                g = ml.connectLayers(g, p + "sc", p + "add/in2")
            else:
                g = ml.connectLayers(g, prev, p + "add/in2")
            prev = p + "r2"
    g = ml.addLayers(g, [ml.globalAveragePooling2dLayer(Name="gap"),
                         ml.fullyConnectedLayer(10, Name="fc"), ml.softmaxLayer(Name="sm")])
    return ml.connectLayers(g, prev, "gap")


def n5_layers():
    L = [ml.sequenceInputLayer(12, Normalization="none")]
    for d in (1, 2):
        L += [ml.convolution1dLayer(3, 64, Padding="causal", DilationFactor=d),
              ml.reluLayer(), ml.layerNormalizationLayer()]
    return L + [ml.globalAveragePooling1dLayer(), ml.fullyConnectedLayer(10 - 1),
                ml.softmaxLayer()]


def _randomize_bn(net, rs):
    """Trained-looking batch-norm statistics and affine parameters (so folding matters)."""
    rows = []
    for t, what in ((net.Learnables, "L"), (net.State, "S")):
        for r in t:
            if r.Parameter in ("Offset", "Scale", "TrainedMean", "TrainedVariance"):
                v = np.asarray(r.Value._data if hasattr(r.Value, "_data") else r.Value)
                if r.Parameter == "TrainedVariance":
                    new = (0.5 + rs.rand(*v.shape)).astype(v.dtype)
                elif r.Parameter == "Scale":
                    new = (0.5 + rs.rand(*v.shape)).astype(v.dtype)
                else:
                    new = (rs.randn(*v.shape) * 0.1).astype(v.dtype)
                rows.append((what, r.Layer, r.Parameter, new))
    for what in ("L", "S"):
        sel = [(a, b, ml.dlarray(c)) for w, a, b, c in rows if w == what]
        if sel:
            t = ml.Table(("Layer", "Parameter", "Value"), sel) if hasattr(ml, "Table") \
                else None
            if t is None:
                from mlayers._table import Table
                t = Table(("Layer", "Parameter", "Value"), sel)
            if what == "L":
                net.Learnables = t
            else:
                net.State = t


def build(case, rs):
    ml.rng(0)
    if case in ("N1", "N2", "N3"):
        net = ml.dlnetwork(n1_layers())
        B = 1 if case == "N2" else 128
        X = rs.rand(28, 28, 1, B).astype(np.float32)
        fmt, ncls = "SSCB", 10
    elif case == "N4":
        net = ml.dlnetwork(n4_graph())
        X = rs.rand(32, 32, 3, 32).astype(np.float32)
        fmt, ncls = "SSCB", 10
    else:
        net = ml.dlnetwork(n5_layers())
        X = rs.rand(12, 32, 256).astype(np.float32)
        fmt, ncls = "CBT", 9
    _randomize_bn(net, rs)
    B = X.shape[-1] if fmt == "SSCB" else X.shape[1]
    T = np.zeros((ncls, B), np.float32)
    T[rs.randint(0, ncls, B), np.arange(B)] = 1
    return net, ml.dlarray(X, fmt), ml.dlarray(T, "CB")


def model_loss(net, X, T):
    Y, state = ml.forward(net, X, nargout=2)
    loss = ml.crossentropy(Y, T)
    g = ml.dlgradient(loss, net.Learnables)
    return loss, g, state


class Trainer:
    def __init__(self, net):
        self.net, self.vel = net, []

    def step(self, X, T):
        loss, g, state = ml.dlfeval(model_loss, self.net, X, T)
        self.net.State = state
        self.net, self.vel = ml.sgdmupdate(self.net, g, self.vel, 0.01, 0.9)
        return loss


def median_time(fn, reps):
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return float(np.median(ts))


def per_layer_predict(net, X, reps):
    """Median time of each schedule step in predict (the executor's own walk,
    with the same inputs it would give)."""
    p = net._plan
    layers = net.Layers
    times = {i: [] for i, *_ in p.steps}
    for _ in range(reps):
        vals = [None] * p.nslots
        vals[0] = X
        for i, ins, outs, fast in p.steps:
            L = layers[i]
            t = time.perf_counter()
            ys, _ = L._run([vals[k] for k in ins], False, "predict")
            times[i].append(time.perf_counter() - t)
            for k, y in zip(outs, ys):
                vals[k] = y
    return [(layers[i].Name, type(layers[i]).__name__, float(np.median(v)))
            for i, v in times.items()]


def per_step_program(net, X, reps):
    """Median time of each step of predict's inference program (batch normalization
    folded into the convolutions: one step for the pair)."""
    ml.predict(net, X)
    p = net._plan
    prog = next(v[0] for k, v in p.programs.items() if k[:2] == (tuple(p.out_slots), True))
    layers = net.Layers
    times = [[] for _ in prog]
    for _ in range(reps):
        vals = [None] * p.nslots
        vals[0] = X
        for n, (i, fn, src, dst, _, j) in enumerate(prog):
            t = time.perf_counter()
            if src is not None:
                vals[dst] = fn(vals[src], "predict")
            else:
                layer, ins, outs = fn
                ys, _ = layer._run([vals[k] for k in ins], False, "predict")
                for k, y in zip(outs, ys):
                    vals[k] = y
            times[n].append(time.perf_counter() - t)
    return [(layers[i].Name + ("+" + layers[j].Name if j is not None else ""),
             type(layers[i]).__name__, float(np.median(v)))
            for (i, _, _, _, _, j), v in zip(prog, times)]


def profile_text(fn, n=3, top=25):
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(n):
        fn()
    pr.disable()
    s = io.StringIO()
    pstats.Stats(pr, stream=s).sort_stats("tottime").print_stats(top)
    return s.getvalue()


class KernelClock:
    """Wall time spent inside the compiled kernel modules' functions (wrapped in place,
    so every caller goes through the clock; a wrapper costs well under a microsecond a
    call) and, per phase, the time of wrapped Python functions with the kernels' share."""

    MODULES = ("_conv", "_norm", "_pool", "_act")

    def __init__(self):
        import importlib
        self.inside = 0.0
        self.phases = {}
        for name in self.MODULES:
            mod = importlib.import_module("mlayers." + name)
            for attr in dir(mod):
                f = getattr(mod, attr)
                if not attr.startswith("_") and callable(f) and not isinstance(f, type):
                    setattr(mod, attr, self._kernel(f))

    def _kernel(self, f):
        def timed(*args, **kwargs):
            t = time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                self.inside += time.perf_counter() - t
        return timed

    def phase(self, owner, attr, key):
        """Time ``owner.attr`` (a function or method) as phase ``key``."""
        f = getattr(owner, attr)

        def timed(*args, **kwargs):
            k0, t = self.inside, time.perf_counter()
            try:
                return f(*args, **kwargs)
            finally:
                tot = self.phases.setdefault(key, [0.0, 0.0])
                tot[0] += time.perf_counter() - t
                tot[1] += self.inside - k0
        setattr(owner, attr, timed)


class OperationClock:
    """Per differentiable operation (every ``@operation`` of the package, found in its
    modules' namespaces and wrapped there) and per backward it records on the tape: calls,
    wall time and the kernels' share (``KernelClock``'s), outermost calls only."""

    def __init__(self, kernels):
        from mlayers import _autodiff
        self.kernels, self.stats, self._depth = kernels, {}, 0
        self._tape = _autodiff._tape
        wrapped = {}
        for mname, mod in list(sys.modules.items()):
            if not mname.startswith("mlayers"):
                continue
            for attr, f in list(vars(mod).items()):
                if callable(f) and hasattr(f, "__wrapped_operation__"):
                    if id(f) not in wrapped:
                        wrapped[id(f)] = self._wrap(f.__name__, f)
                    setattr(mod, attr, wrapped[id(f)])

    def _add(self, key, t, k0):
        s = self.stats.setdefault(key, [0, 0.0, 0.0])
        s[0] += 1
        s[1] += time.perf_counter() - t
        s[2] += self.kernels.inside - k0

    def _wrap(self, name, op):
        def timed(*args, **kwargs):
            tape = self._tape()
            n0 = len(tape.records) if tape is not None else 0
            k0, t = self.kernels.inside, time.perf_counter()
            self._depth += 1
            try:
                return op(*args, **kwargs)
            finally:
                self._depth -= 1
                if self._depth == 0:
                    self._add(name, t, k0)
                if tape is not None and len(tape.records) > n0:
                    backward, *rest = tape.records[-1]

                    def timed_backward(*g, _b=backward):
                        k0, t = self.kernels.inside, time.perf_counter()
                        try:
                            return _b(*g)
                        finally:
                            self._add(name + ".bwd", t, k0)
                    tape.records[-1] = (timed_backward, *rest)
        timed.__wrapped_operation__ = op.__wrapped_operation__
        return timed


_CLOCK = None
_OPS = None


def install_clock(ops=False):
    """Wrap the kernel modules and the step's phases, before any network is built: the
    engine's plans keep references to kernel functions, which must be the wrapped ones."""
    global _CLOCK
    from mlayers import _autodiff, network
    from mlayers.training import solvers
    global _OPS
    _CLOCK = KernelClock()
    _CLOCK.phase(network.dlnetwork, "_execute", "forward")
    _CLOCK.phase(_autodiff, "_backward", "backward")
    _CLOCK.phase(solvers, "_apply", "solver")
    if ops:
        _OPS = OperationClock(_CLOCK)


def split_step(step, reps):
    """Per phase of ``step`` (a training iteration): total, inside the kernels, outside
    (ms a step, means over ``reps`` steps after the wrapping)."""
    clock = _CLOCK
    step()
    clock.inside, clock.phases = 0.0, {}
    t = time.perf_counter()
    for _ in range(reps):
        step()
    total = (time.perf_counter() - t) / reps
    rows = [(k, v[0] / reps, v[1] / reps) for k, v in clock.phases.items()]
    inside = clock.inside / reps
    return rows + [("step", total, inside)]


def torch_model(case):
    import torch
    from torch import nn
    if case in ("N1", "N2", "N3"):
        m = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(),
                          nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1),
                          nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
                          nn.Conv2d(16, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(),
                          nn.Flatten(), nn.Linear(32 * 7 * 7, 10))
        B = 1 if case == "N2" else 128
        x = torch.rand(B, 1, 28, 28)
    elif case == "N4":
        class Block(nn.Module):
            def __init__(self, cin, f, s):
                super().__init__()
                self.c1 = nn.Conv2d(cin, f, 3, s, 1)
                self.b1 = nn.BatchNorm2d(f)
                self.c2 = nn.Conv2d(f, f, 3, 1, 1)
                self.b2 = nn.BatchNorm2d(f)
                self.sc = nn.Conv2d(cin, f, 1, s) if s == 2 else None

            def forward(self, x):
                y = self.b2(self.c2(torch.relu(self.b1(self.c1(x)))))
                return torch.relu(y + (self.sc(x) if self.sc is not None else x))
        blocks = [nn.Conv2d(3, 16, 3), nn.BatchNorm2d(16), nn.ReLU()]
        cin = 16
        for s, f in enumerate((16, 32, 64)):
            for b in range(2):
                blocks.append(Block(cin, f, 2 if (s > 0 and b == 0) else 1))
                cin = f
        blocks += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10)]
        m = nn.Sequential(*blocks)
        x = torch.rand(32, 3, 32, 32)
    else:
        class Causal(nn.Module):
            def __init__(self, cin, d):
                super().__init__()
                self.d = d
                self.c = nn.Conv1d(cin, 64, 3, dilation=d)
                self.ln = nn.LayerNorm(64)

            def forward(self, x):
                y = torch.relu(self.c(nn.functional.pad(x, (2 * self.d, 0))))
                return self.ln(y.transpose(1, 2)).transpose(1, 2)
        m = nn.Sequential(Causal(12, 1), Causal(64, 2), nn.AdaptiveAvgPool1d(1),
                          nn.Flatten(), nn.Linear(64, 9))
        x = torch.rand(32, 12, 256)
    return m, x


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cases", default="N1,N2,N3,N4,N5")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--reps", type=int, default=30)
    ap.add_argument("--torch", action="store_true")
    ap.add_argument("--profile", action="store_true")
    ap.add_argument("--layers", action="store_true")
    ap.add_argument("--split", action="store_true",
                    help="a training step's time inside and outside the kernels (the kernel "
                         "modules are wrapped for the whole run: its other timings include "
                         "the wrappers, well under a microsecond a call)")
    ap.add_argument("--ops", action="store_true",
                    help="with --split: the time outside the kernels per operation and per "
                         "operation's backward (every @operation wrapped, a microsecond or "
                         "two a call)")
    ap.add_argument("--passive", action="store_true",
                    help="OMP_WAIT_POLICY=PASSIVE for mlayers' and torch's OpenMP")
    a = ap.parse_args()
    if a.threads:
        from threadpoolctl import threadpool_limits
        threadpool_limits(a.threads)
        ml.set_num_threads(a.threads)     # the kernels' own OpenMP count
        if a.torch:
            import torch
            torch.set_num_threads(a.threads)
    if a.split:
        install_clock(ops=a.ops)
    rs = np.random.RandomState(0)
    for case in a.cases.split(","):
        net, X, T = build(case, rs)
        train = case in ("N3", "N4", "N5")
        pred = case in ("N1", "N2", "N4", "N5")
        ml.predict(net, X)
        print(f"== {case}  X {X.shape}  threads={a.threads or 'default'}")
        if a.layers and pred:
            for title, fn in (("layer by layer", per_layer_predict),
                              ("inference program (folded)", per_step_program)):
                rows = fn(net, X, a.reps)
                tot = sum(r[2] for r in rows)
                print(f"   -- {title}")
                for name, typ, t in rows:
                    print(f"   {name:24s} {typ:28s} {t * 1e3:8.3f} ms")
                print(f"   {'sum':53s} {tot * 1e3:8.3f} ms")
        tm = None
        if a.torch:
            import torch
            tm, tx = torch_model(case)
            tt = torch.zeros(tx.shape[0], dtype=torch.long)
            opt = torch.optim.SGD(tm.parameters(), lr=0.01, momentum=0.9)

            def t_pred():
                tm.eval()
                with torch.inference_mode():
                    tm(tx)

            def t_train():
                tm.train()
                opt.zero_grad()
                loss = nn_loss(tm(tx), tt)
                loss.backward()
                opt.step()
            nn_loss = torch.nn.functional.cross_entropy
        res = {}
        tr = Trainer(net) if train else None
        fns = {}
        if pred:
            def p_fold():
                with _defaults.package_defaults(network_fold_batchnorm=True):
                    ml.predict(net, X)

            def p_nofold():
                with _defaults.package_defaults(network_fold_batchnorm=False):
                    ml.predict(net, X)
            fns["predict"] = p_fold
            fns["predict(nofold)"] = p_nofold
            if tm is not None:
                fns["torch predict"] = t_pred
        if train:
            fns["train"] = lambda: tr.step(X, T)
            if tm is not None:
                fns["torch train"] = t_train
        for f in fns.values():
            f()
        samples = {k: [] for k in fns}
        keys = list(fns)
        for r in range(a.reps):
            # rotate the order: what runs right after torch meets its OpenMP threads
            # still spinning (default OMP_WAIT_POLICY), which would bias a fixed order
            for k in keys[r % len(keys):] + keys[:r % len(keys)]:
                f = fns[k]
                t = time.perf_counter()
                f()
                samples[k].append(time.perf_counter() - t)
        for k, v in samples.items():
            res[k] = float(np.median(v))
            print(f"   {k:18s} {res[k] * 1e3:9.3f} ms")
        if "torch predict" in res:
            print(f"   ratio predict mlayers/torch = {res['predict'] / res['torch predict']:.2f}")
        if "torch train" in res:
            print(f"   ratio train mlayers/torch = {res['train'] / res['torch train']:.2f}")
        if a.profile and train:
            print(profile_text(lambda: tr.step(X, T)))
        if a.profile and pred and not train:
            print(profile_text(lambda: ml.predict(net, X), n=50))
        if a.split and train:
            print("   -- a training step, ms: total, inside the kernels, outside")
            if _OPS is not None:
                _OPS.stats.clear()
            for name, tot, inside in split_step(lambda: tr.step(X, T), a.reps):
                print(f"   {name:18s} {tot * 1e3:9.3f} {inside * 1e3:9.3f} "
                      f"{(tot - inside) * 1e3:9.3f}")
            if _OPS is not None:
                steps = a.reps + 1      # (split_step's first, untimed step included)
                print("   -- per operation, a step: calls, ms total, inside the kernels, "
                      "outside, us outside a call")
                for name, (n, tot, inside) in sorted(_OPS.stats.items(),
                                                     key=lambda kv: kv[1][2] - kv[1][1]):
                    print(f"   {name:22s} {n / steps:5.0f} {tot / steps * 1e3:9.3f} "
                          f"{inside / steps * 1e3:9.3f} {(tot - inside) / steps * 1e3:9.3f} "
                          f"{(tot - inside) / n * 1e6:8.1f}")


if __name__ == "__main__":
    main()
