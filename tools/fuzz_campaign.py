#!/usr/bin/env python
"""Long fuzzing campaign over mlayers' public API (issue 21), minutes to hours.

Every case runs in a worker subprocess under a per-case timeout and a memory limit; a case
that hangs, kills the worker (segfault, abort) or exceeds the limit is recorded and the
worker restarted.  Case kinds (chosen at random, reproducible from the seed):

  construct   a layer constructor (every class in mlayers._props.LAYER_CLASSES) with one
              option or positional argument replaced by a hostile value
  assign      a property assignment of a hostile value (or an unknown property)
  predict     a layer's predict on its documented example input, perturbed (sizes, batch,
              dtype, NaN/Inf); each observation is compared with the layer's output on it
              alone (observations are independent in predict)
  functional  an ml.functional operation with random arguments
  api         any other callable of ml.__all__ with random arguments
  conv        dlconv / dltranspconv (and gradients) with random stride, dilation, padding
              and groups, compared with the sparse-matrix oracle mlayers.reference, and
              timed against outputs x taps
  network     a random chain of layers in a dlnetwork compared with the layers run one
              after another
  random      rand / randn sizes, rng states

Outcomes: ok, named-error (ValueError/TypeError, or AttributeError for properties, whose
message starts with the function's name) and, as defects: unnamed-error, crash (any other
exception, MemoryError included), warning (a NumPy RuntimeWarning on finite input), wrong
(disagrees with the reference), slow (cost out of proportion), hang (timeout), died (the
worker process ended).

Usage::

    python tools/fuzz_campaign.py --minutes 10 --seed 1 --out fuzz_results.json
    python tools/fuzz_campaign.py --replay KIND:SEED          # one case, in this process
"""
import argparse
import collections
import json
import math
import os
import random
import re
import select
import subprocess
import sys
import time
import traceback
import warnings

CASE_TIMEOUT = 30.0          # seconds per case (the worker is killed and restarted)
MEMORY_LIMIT = 6 << 30       # bytes of address space per worker
KINDS = ("construct", "assign", "predict", "functional", "api", "conv", "network",
         "random")
DEFECTS = ("unnamed-error", "crash", "warning", "wrong", "slow", "hang", "died")


# =========================================================================== worker

def _hostile(r):
    import numpy as np
    fixed = [0, -1, 1, 2, 3, 1.5, -0.5, 2**31 - 1, 2**31, 2**62, 2**63, 2**64 - 1, 2**64,
             np.uint64(2**63), np.int64(-2**63), 1e20, -1e20, 1e-300, float("nan"),
             float("inf"), -float("inf"), True, False, None, "", "abc", "same", "auto",
             "causal", "glorot", "zeros", "none", [], [1, 2], [1, 2, 3, 4, 5],
             [[1, 2], [3, 4]], np.zeros((2, 2, 2)), 1 + 2j, np.float32(3), np.int8(-3),
             {"a": 1}, (2, 2), np.array([np.nan, 1.0]), np.ones(3, np.float32),
             np.ones((3, 3, 1, 4)), [0, 0, 0, 0], [2**40, 1], b"x"]
    k = r.random()
    if k < 0.6:
        return r.choice(fixed)
    if k < 0.75:
        return r.randint(-2**70, 2**70)
    if k < 0.85:
        return r.choice([r.uniform(-1e6, 1e6), r.expovariate(1e-3), -r.expovariate(1)])
    if k < 0.95:
        return [r.randint(-3, 2**33) for _ in range(r.randint(0, 6))]
    return "".join(r.choice("abcXYZ _-'") for _ in range(r.randint(0, 8)))


def _named(exc, names):
    """The message starts with the function's name: "name: ..." (the package's form) or
    Python's own "name() missing 1 required positional argument: 'X'"."""
    msg = str(exc)
    return any(msg.startswith(n + ":") or msg.startswith(n + "()") for n in names)


def _finite_args(args):
    import numpy as np
    for a in args:
        d = getattr(a, "_data", a)
        if isinstance(d, (np.ndarray, float)):
            try:
                if not np.isfinite(np.asarray(d, dtype=float)).all():
                    return False
            except (TypeError, ValueError):
                return False
    return True


def _make(ml, cls):
    import numpy as np
    return eval("ml." + cls._example, {"ml": ml, "np": np})


def _random_array(ml, r, formats=("SSCB", "CB", "SCB", "CBT", "SSSCB", "SSC", "C", "")):
    import numpy as np
    k = r.random()
    if k < 0.08:
        return r.choice(["", "same", "all", "abc", None])
    if k < 0.16:
        return r.choice([-1, 0, 1, 2, 3, 2**63, 1.5, 0.0, float("nan"), float("inf")])
    fmt = r.choice(formats)
    nd = len(fmt) if fmt else r.randint(1, 4)
    shape = [r.randint(0, 5) for _ in range(nd)]
    dtype = r.choice([np.float32, np.float64])
    a = np.random.default_rng(r.randint(0, 2**31)).standard_normal(shape).astype(dtype)
    if a.size and r.random() < 0.2:
        a.reshape(-1)[0] = r.choice([np.nan, np.inf, -np.inf, 1e30])
    if k < 0.35:
        return a
    return ml.dlarray._from_canonical(a, fmt) if fmt else ml.dlarray(a)


def case_construct(ml, r):
    from mlayers._props import LAYER_CLASSES
    cls = r.choice(LAYER_CLASSES)
    ex = _make(ml, cls)
    names = list(cls._option_names) + list(cls._positional)
    name, value = r.choice(names), _hostile(r)
    pos = [getattr(ex, p) for p in cls._positional]
    target = f"{cls._constructor}({name}={value!r:.40})"
    try:
        if name in cls._positional:
            cls(*[value if p == name else v for p, v in zip(cls._positional, pos)])
        else:
            cls(*pos, **{name: value})
    except (ValueError, TypeError) as exc:
        return ("named-error" if _named(exc, [cls._constructor]) else "unnamed-error",
                target, exc)
    return "ok", target, None


def case_assign(ml, r):
    from mlayers._props import LAYER_CLASSES
    cls = r.choice(LAYER_CLASSES)
    layer = _make(ml, cls)
    names = [p.name for p in cls._props if p.attribute] + ["NoSuchProperty"]
    name, value = r.choice(names), _hostile(r)
    target = f"{cls.__name__}.{name} = {value!r:.40}"
    try:
        setattr(layer, name, value)
    except AttributeError as exc:
        return ("named-error" if _named(exc, [cls.__name__]) else "unnamed-error",
                target, exc)
    except (ValueError, TypeError) as exc:
        return ("named-error" if _named(exc, [cls.__name__, cls._constructor])
                else "unnamed-error", target, exc)
    return "ok", target, None


def case_predict(ml, r):
    import numpy as np
    from mlayers._props import LAYER_CLASSES
    cls = r.choice([c for c in LAYER_CLASSES if c._example_input is not None])
    fmt, shape = cls._example_input
    shape = list(shape)
    for i, c in enumerate(fmt):
        if c == "B":
            shape[i] = r.randint(0, 3)
        elif r.random() < 0.4:
            shape[i] = max(0, shape[i] + r.randint(-4, 4))
    dtype = r.choice([np.float32, np.float64])
    x = np.random.default_rng(r.randint(0, 2**31)).standard_normal(shape).astype(dtype)
    special = r.choice([None, None, np.nan, np.inf, -np.inf, 1e30])
    if special is not None and x.size:
        x.reshape(-1)[r.randrange(x.size)] = special
    layer = _make(ml, cls)
    target = f"predict({cls._constructor}, {fmt} {'x'.join(map(str, shape))} " \
             f"{np.dtype(dtype).name}{'' if special is None else ' with ' + str(special)})"
    try:
        y = layer.predict(ml.dlarray._from_canonical(x, fmt))
    except (ValueError, TypeError) as exc:
        ok = re.match(r"^[A-Za-z][\w.]*: \S", str(exc))
        return ("named-error" if ok else "unnamed-error"), target, exc
    if "B" in y.dims and x.size and y._data.size:
        bx, by = fmt.index("B"), y.dims.index("B")
        tol = 1e-4 if dtype == np.float32 else 1e-10
        for b in range(x.shape[bx]):
            yb = layer.predict(ml.dlarray._from_canonical(np.take(x, [b], axis=bx), fmt))
            if not np.allclose(np.take(y._data, [b], axis=by), yb._data, rtol=tol,
                               atol=tol, equal_nan=True):
                return "wrong", target, AssertionError(
                    f"observation {b} differs from the layer's output on it alone")
    return "ok", target, None


def case_functional(ml, r):
    import inspect
    name = r.choice(ml.functional.__all__)
    f = getattr(ml.functional, name)
    params = [p for p in inspect.signature(f).parameters.values()
              if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = sum(p.default is p.empty for p in params)
    args = [_random_array(ml, r) for _ in range(r.randint(required, len(params)))]
    target = f"{name}({', '.join(_describe(a) for a in args)})"
    return _call(f, args, [name, "dlarray"], target)


_API_SKIP = re.compile(r"train|^threads$|^show_config$|^plot|^analyzeNetwork$|^summary$|"
                       r"Layer$|^Layer|^layer_array$|^set_num_threads$|^set_winograd$|save|"
                       r"load|^rng$|^rand|^package_defaults$")


def case_api(ml, r):
    names = [n for n in ml.__all__ if callable(getattr(ml, n, None))
             and not _API_SKIP.search(n) and not isinstance(getattr(ml, n), type)]
    name = r.choice(names)
    args = [r.choice([_random_array(ml, r), _hostile(r)]) for _ in range(r.randint(0, 3))]
    target = f"{name}({', '.join(_describe(a) for a in args)})"
    return _call(getattr(ml, name), args, [name, "dlarray"], target)


def _describe(a):
    d = getattr(a, "_data", None)
    if d is not None:
        return f"dlarray {a.dims or 'U'} {'x'.join(map(str, d.shape))}"
    shape = getattr(a, "shape", None)
    if shape is not None:
        return f"array {'x'.join(map(str, shape))}"
    return repr(a)[:30]


def _call(f, args, names, target):
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        try:
            f(*args)
        except RuntimeWarning as w:
            return ("warning" if _finite_args(args) else "ok"), target, w
        except (ValueError, TypeError) as exc:
            return ("named-error" if _named(exc, names) else "unnamed-error"), target, exc
    return "ok", target, None


def case_conv(ml, r):
    import numpy as np
    from mlayers import _ops, reference as ref
    d = r.randint(1, 3)
    transposed = r.random() < 0.4
    groups = r.choice([1, 1, 2, 3])
    cg, fg, n = r.randint(1, 3), r.randint(1, 3), r.randint(1, 2)
    size = [r.randint(1, 7) for _ in range(d)]
    k = [r.randint(1, 4) for _ in range(d)]
    s = [r.choice([1, 1, 2, 3, 5, 64, 2**12, 2**20]) for _ in range(d)]
    dl = [r.choice([1, 1, 2, 3, 7, 2**12, 2**20]) for _ in range(d)]
    pads = [[r.choice([0, 0, 1, 2, 5, 2**11, 2**19]) for _ in range(d)] for _ in range(2)]
    dtype = r.choice([np.float32, np.float64])
    rng = np.random.default_rng(r.randint(0, 2**31))
    target = (f"{'dltranspconv' if transposed else 'dlconv'} d={d} size={size} k={k} "
              f"s={s} dl={dl} pads={pads} groups={groups} {np.dtype(dtype).name}")
    cin = cg * groups if not transposed else fg * groups
    x = rng.standard_normal(size + [cin, n]).astype(dtype)
    w = rng.standard_normal(k + [cg, fg * groups]).astype(dtype)
    if transposed:      # F x Fg x Cg*G: this w's Cg is the output channels per group
        w = rng.standard_normal(k + [cg, fg * groups]).astype(dtype)
    pads = np.array(pads)
    t0 = time.perf_counter()
    try:
        if transposed:
            y = _ops.conv_transpose(x, w, None, s, dl, pads, groups)
        else:
            y = _ops.conv(x, w, None, s, dl, pads, groups)
    except (ValueError, TypeError) as exc:
        name = "dltranspconv" if transposed else "dlconv"
        return ("named-error" if _named(exc, [name]) else "unnamed-error"), target, exc
    dt = time.perf_counter() - t0
    out, taps = math.prod(y.shape[:d]), math.prod(k)
    insz = math.prod(size)
    work = n * cg * fg * groups * ((insz if transposed else out) * taps + insz + out)
    if dt > 0.5 + 5e-8 * work:
        return "slow", target, AssertionError(f"{dt:.2f} s for {work} multiply-adds")
    if y.size <= 200000:
        e = (ref.conv_transpose(x, w, None, s, dl, pads, groups) if transposed
             else ref.conv(x, w, None, s, dl, pads, groups))
        fan = cg * taps if not transposed else fg * taps
        tol = (1e-5, 1e-6 * fan) if dtype == np.float32 else (1e-12, 1e-14 * fan)
        if e.shape != y.shape or not np.allclose(y, e, rtol=tol[0], atol=tol[1] * 10):
            return "wrong", target, AssertionError(
                f"max error {np.abs(y - e).max() if e.shape == y.shape else 'shape'}")
    return "ok", target, None


_CHAIN = {"SSCB": ["convolution2dLayer(3, 4, Padding='same')", "reluLayer()",
                   "batchNormalizationLayer()", "maxPooling2dLayer(2, Padding='same')",
                   "groupedConvolution2dLayer(3, 1, 'channel-wise', Padding='same')",
                   "transposedConv2dLayer(2, 3)", "layerNormalizationLayer()",
                   "dropoutLayer()", "tanhLayer()", "averagePooling2dLayer(2)",
                   "convolution2dLayer(2, 3, Stride=2)", "globalAveragePooling2dLayer()",
                   "fullyConnectedLayer(3)", "softmaxLayer()"],
          "CB": ["fullyConnectedLayer(5)", "reluLayer()", "sigmoidLayer()",
                 "layerNormalizationLayer()", "geluLayer()", "softmaxLayer()",
                 "batchNormalizationLayer()"]}
_HEAD = {"SSCB": "imageInputLayer([{0}, {1}, {2}], Normalization='none')",
         "CB": "featureInputLayer({2})"}


def case_network(ml, r):
    import numpy as np
    fmt = r.choice(["SSCB", "CB"])
    h, w, c, b = r.randint(1, 8), r.randint(1, 8), r.randint(1, 4), r.randint(0, 3)
    body = [r.choice(_CHAIN[fmt]) for _ in range(r.randint(1, 5))]
    target = f"dlnetwork({fmt} {h}x{w}x{c}x{b}: {', '.join(body)})"
    layers = [eval("ml." + _HEAD[fmt].format(h, w, c), {"ml": ml})] + \
        [eval("ml." + e, {"ml": ml}) for e in body]
    shape = (h, w, c, b) if fmt == "SSCB" else (c, b)
    x = ml.dlarray(np.random.default_rng(r.randint(0, 2**31)).standard_normal(shape)
                   .astype(np.float32), fmt)
    try:
        net = ml.dlnetwork(layers)
        y = net.predict(x)
    except (ValueError, TypeError) as exc:
        ok = _named(exc, ["dlnetwork", "predict", "initialize"])
        return ("named-error" if ok else "unnamed-error"), target, exc
    z = x
    for layer in net.Layers[1:]:
        z = layer.predict(z)
    if y.dims != z.dims or not np.allclose(y._data, z._data, rtol=1e-5, atol=1e-5):
        return "wrong", target, AssertionError("network != its layers in sequence")
    return "ok", target, None


def case_random(ml, r):
    import numpy as np
    if r.random() < 0.5:
        fname = r.choice(["rand", "randn"])
        args = [r.choice([r.randint(-3, 6), 2**40, 2**62, 2**63, 1.5, float("nan"),
                          "single", "double", "int8", None, [2, 3], [], True])
                for _ in range(r.randint(0, 3))]
        target = f"{fname}({', '.join(map(repr, args))})"
        try:
            a = getattr(ml, fname)(*args)
        except (ValueError, TypeError) as exc:
            return ("named-error" if _named(exc, [fname]) else "unnamed-error"), target, exc
        if fname == "rand" and a.size and not (a.min() >= 0 and a.max() < 1):
            return "wrong", target, AssertionError("rand outside [0, 1)")
        return "ok", target, None
    state = np.array(ml.rng().State, dtype=np.float64)
    for _ in range(r.randint(1, 3)):
        state[r.randrange(625)] = r.choice([0, -1, 2**32, 2**32 - 1, 0.5, np.nan, 625, 7])
    if r.random() < 0.3:
        state[:624] = 0
    target = "rng(State with edited words)"
    try:
        ml.rng({"Type": "twister", "Seed": 0, "State": state})
    except (ValueError, TypeError) as exc:
        return ("named-error" if _named(exc, ["rng"]) else "unnamed-error"), target, exc
    u, z = ml.rand(1, 100), ml.randn(1, 100)
    if not (0 <= u.min() and u.max() < 1 and np.isfinite(z).all()):
        return "wrong", target, AssertionError("bad draws")
    return "ok", target, None


CASES = {k: globals()["case_" + k] for k in KINDS}


def run_case(ml, kind, seed):
    r = random.Random(f"{kind}:{seed}")
    try:
        outcome, target, exc = CASES[kind](ml, r)
    except MemoryError as exc:
        # out of memory for a size within the limits: acceptable when it says who and how
        # much; a bare numpy MemoryError is a crash
        if re.match(r"^[A-Za-z]\w*: .*\d+ bytes", str(exc)):
            return {"outcome": "named-error", "target": f"{kind}:{seed}",
                    "error": f"MemoryError: {str(exc)[:200]}"}
        return {"outcome": "crash", "target": f"{kind}:{seed}",
                "error": f"MemoryError: {str(exc)[:200]}"}
    except Exception as exc:   # noqa: BLE001  (anything else is a crash)
        tb = traceback.extract_tb(exc.__traceback__)
        where = f"{os.path.basename(tb[-1].filename)}:{tb[-1].lineno}" if tb else ""
        return {"outcome": "crash", "target": f"{kind}:{seed}",
                "error": f"{type(exc).__name__}: {str(exc)[:200]} [{where}]"}
    return {"outcome": outcome, "target": target,
            "error": None if exc is None else f"{type(exc).__name__}: {str(exc)[:200]}"}


def worker():
    import resource
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    import mlayers as ml
    warnings.simplefilter("ignore", DeprecationWarning)
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    for line in sys.stdin:
        kind, seed = line.split()
        ml.rng(int(seed) % 2**32)
        res = run_case(ml, kind, int(seed))
        res.update(kind=kind, seed=int(seed))
        sys.stdout.write(json.dumps(res) + "\n")
        sys.stdout.flush()


# =========================================================================== parent

class Worker:
    def __init__(self):
        self.p = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker"],
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.DEVNULL, text=True, bufsize=1)
        self._readline(120)

    def _readline(self, timeout):
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not ready:
            return None
        return self.p.stdout.readline()

    def run(self, kind, seed, timeout):
        self.p.stdin.write(f"{kind} {seed}\n")
        self.p.stdin.flush()
        t0 = time.perf_counter()
        line = self._readline(timeout)
        dt = time.perf_counter() - t0
        if line is None:
            self.kill()
            return {"kind": kind, "seed": seed, "outcome": "hang", "target": f"{kind}:{seed}",
                    "error": f"no answer in {timeout:.0f} s"}, dt
        if not line:
            code = self.p.wait()
            return {"kind": kind, "seed": seed, "outcome": "died", "target": f"{kind}:{seed}",
                    "error": f"worker ended with code {code}"}, dt
        return json.loads(line), dt

    def kill(self):
        try:
            self.p.kill()          # our own worker, by its process object
            self.p.wait(10)
        except Exception:          # noqa: BLE001
            pass

    def alive(self):
        return self.p.poll() is None


def campaign(minutes, seed, out, timeout):
    rng = random.Random(seed)
    deadline = time.time() + 60 * minutes
    counts = collections.Counter()
    by_kind = collections.defaultdict(collections.Counter)
    defects = {}
    w = Worker()
    n = 0
    started = time.time()
    while time.time() < deadline:
        kind = rng.choice(KINDS)
        case_seed = rng.randrange(2**40)
        res, dt = w.run(kind, case_seed, timeout)
        n += 1
        counts[res["outcome"]] += 1
        by_kind[kind][res["outcome"]] += 1
        if res["outcome"] in DEFECTS:
            sig = (res["outcome"], kind, re.sub(r"\d+", "N", (res.get("error") or "")[:80]))
            d = defects.setdefault(sig, {"outcome": res["outcome"], "kind": kind, "count": 0,
                                         "example": res["target"], "error": res["error"],
                                         "replay": f"{kind}:{case_seed}"})
            d["count"] += 1
            if not w.alive():
                w = Worker()
        if n % 200 == 0:
            print(f"{n} cases, {dict(counts)}", flush=True)
    w.kill()
    summary = {"cases": n, "seconds": round(time.time() - started), "seed": seed,
               "timeout": timeout, "outcomes": dict(counts),
               "by_kind": {k: dict(v) for k, v in by_kind.items()},
               "defects": sorted(defects.values(), key=lambda d: -d["count"])}
    with open(out, "w") as f:
        json.dump(summary, f, indent=1, default=str)
    print(json.dumps({k: summary[k] for k in ("cases", "seconds", "outcomes")}))
    for d in summary["defects"]:
        print(f"  {d['count']:5d} {d['outcome']:14s} {d['kind']:10s} {d['example'][:70]}"
              f"\n        {d['error']}  (replay {d['replay']})")
    return summary


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=CASE_TIMEOUT)
    ap.add_argument("--out", default="fuzz_results.json")
    ap.add_argument("--replay", help="KIND:SEED: run one case here and print it")
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        return worker()
    if a.replay:
        import mlayers as ml
        kind, seed = a.replay.split(":")
        ml.rng(int(seed) % 2**32)
        print(json.dumps(run_case(ml, kind, int(seed)), indent=1))
        return
    campaign(a.minutes, a.seed, a.out, a.timeout)


if __name__ == "__main__":
    main()
