"""MATLAB's ``checkLayer``: check a custom layer (``ml.nnet.layer.Layer``) or a
``functionLayer`` on generated data.

Forms (documented, checkLayer reference page)::

    checkLayer(layer, layout1, ..., layoutN)                 networkDataLayout per input
    checkLayer(layer, validInputSize, ObservationDimension=d) sizes (a list for several
                                                             inputs); unformatted data

The tests carry MATLAB's names (``functionSyntaxesAreCorrect``, ``predictDoesNotError``,
``forwardDoesNotError``, ``forwardPredictAreConsistentInSize``,
``predictIsConsistentInType``, ``forwardIsConsistentInType``,
``backwardPropagationDoesNotError``, ``predictReturnsValidStates``), each run with one
observation and, where the data has an observation dimension, with two, and for single
and double data.  ``gradientsAreNumericallyCorrect`` (MATLAB runs it on layers with a
``backward``, which ports do not have) checks here what automatic differentiation gives:
the gradients of ``sum(Y .* R)`` (R random) with respect to the inputs and the
learnables, in double, against central finite differences.  MATLAB's GPU and
code-generation tests are skipped (no GPU; no code generation).

Package defaults (inferred where MATLAB's page does not say): the data is ``rand``-like
uniform in [0, 1) from a fixed NumPy seed; a NaN size is 1 (one observation) or 2 (several)
for B and 3 for T; the finite differences use steps of 1e-4 and pass within a relative
error of 1e-5 of the largest gradient (and 1e-8 absolute).  The report is printed in
MATLAB's layout; the returned :class:`CheckLayerResult` holds every test's outcome.
"""
import inspect
import time

import numpy as np

from .. import _validate as V
from .._props import shallow_copy
from ..dlarray import dlarray, networkDataLayout

__all__ = ["checkLayer", "CheckLayerResult"]

_SUITE = "nnet.checklayer.TestLayerWithoutBackward"


class CheckLayerResult(list):
    """The tests' outcomes: ``(name, outcome, diagnostic)`` with outcome ``"Passed"``,
    ``"Failed"`` or ``"Skipped"``; ``Passed`` / ``Failed`` / ``Skipped`` count them."""

    def _count(self, what):
        return sum(1 for _, outcome, _ in self if outcome == what)

    Passed = property(lambda self: self._count("Passed"))
    Failed = property(lambda self: self._count("Failed"))
    Skipped = property(lambda self: self._count("Skipped"))

    def __repr__(self):
        return (f"CheckLayerResult: {self.Passed} Passed, {self.Failed} Failed, "
                f"{self.Skipped} Skipped")


def _data_sets(specs, obs_dim):
    """[(label, [input arrays], formats)] for one observation and, when there is an
    observation dimension, two."""
    rng = np.random.default_rng(0)
    sets = []
    counts = [1, 2] if (obs_dim is not None or any(
        isinstance(s, networkDataLayout) and "B" in s.Format for s in specs)) else [1]
    for count in counts:
        xs, fmts = [], []
        for s in specs:
            if isinstance(s, networkDataLayout):
                size = [(count if d == "B" else 3 if d == "T" else 1) if v != v else int(v)
                        for d, v in zip(s.Format or "U" * len(s.Size), s.Size)]
                fmts.append(s.Format)
            else:
                size = [int(v) for v in np.asarray(s).reshape(-1)]
                if obs_dim is not None:
                    size += [1] * (obs_dim - len(size))
                    size[obs_dim - 1] = count
                fmts.append(_labels(len(size), obs_dim))
            xs.append(rng.random(size))
        sets.append(("one" if count == 1 else "multiple", xs, fmts))
    return sets


def _size_vector(fname, size):
    """A validInputSize: a vector of positive integers whose data fits in memory."""
    where = V.Where(fname, "validInputSize")
    constraint = "a vector of positive integers (one size per input dimension)"
    values = V.integers(V.real_array(size, where, constraint).reshape(-1), where,
                        constraint, size, 1)
    if values.size == 0:
        raise where.error(constraint, size)
    sizes = [int(v) for v in values]
    V.check_allocation(fname, "the generated data", sizes + [2], 8)
    return sizes


def _labels(n, obs_dim):
    """Labels in canonical order for sizes without a format (S.. C, B at the observation
    dimension, T after it): the layer's machinery carries them, and a layer that is not
    Formattable sees its data unformatted, in the order given, as MATLAB hands it over."""
    before = n if obs_dim is None else obs_dim - 1
    head = "S" * max(before - 1, 0) + "C" * min(before, 1)
    if obs_dim is None:
        return head
    return head + "B" + "T" * (n - obs_dim)


def _run(layer, xs, fmts, dtype, training, params=None):
    """The layer's outputs (and state) for numpy inputs ``xs`` cast to ``dtype``;
    ``params``: values of its learnables to use (traced, for the gradient test)."""
    c = layer
    if params:
        c = shallow_copy(layer)
        object.__setattr__(c, "_values", {**layer._values, **params})
    inputs = [x if isinstance(x, dlarray) else
              dlarray(np.asarray(x, dtype=dtype), f) if f else
              dlarray._from_canonical(np.asarray(x, dtype=dtype), "") for x, f in zip(xs, fmts)]
    ys, state = c._run(inputs, training, "checkLayer")
    return ys, state


def _learnables(layer):
    return [n for n in getattr(layer, "_learnables", ()) if layer._values.get(n) is not None]


def _gradient_check(layer, xs, fmts, training):
    """'' when automatic differentiation's gradients of sum(Y .* R) match central finite
    differences (float64), else the worst mismatch."""
    from .._autodiff import dlfeval, dlgradient
    from ..functional.mathfun import sum as dlsum
    names = _learnables(layer)
    xs = [np.asarray(x, dtype=np.float64) for x in xs]
    params = {n: np.asarray(layer._values[n]._data if isinstance(layer._values[n], dlarray)
                            else layer._values[n], dtype=np.float64) for n in names}
    ys, _ = _run(layer, xs, fmts, np.float64, training)
    rng = np.random.default_rng(1)
    weights = [rng.standard_normal(y._data.shape) for y in ys]

    def value(xs_, params_):
        ys_, _ = _run(layer, xs_, fmts, np.float64, training,
                      {n: dlarray._from_canonical(v, "") for n, v in params_.items()})
        return sum(float(np.sum(y._data * w)) for y, w in zip(ys_, weights))

    def traced(X, P):
        ys_, _ = _run(layer, X, fmts, np.float64, training, P)
        loss = 0
        for y, w in zip(ys_, weights):
            loss = loss + dlsum(y * w, "all")
        return dlgradient(loss, list(X) + [P[n] for n in names])
    X = [dlarray(x, f) if f else dlarray._from_canonical(x, "") for x, f in zip(xs, fmts)]
    P = {n: dlarray._from_canonical(v, "") for n, v in params.items()}
    grads = dlfeval(traced, X, P)
    grads = grads if isinstance(grads, (list, tuple)) else [grads]
    arrays = xs + [params[n] for n in names]
    labels = [f"input {k + 1}" for k in range(len(xs))] + names
    worst = ""

    def numeric(k, i, h):
        flat = arrays[k].reshape(-1)
        old = flat[i]
        vals = []
        for step in (2, 1, -1, -2):
            flat[i] = old + step * h
            vals.append(value(arrays[:len(xs)], dict(zip(names, arrays[len(xs):]))))
        flat[i] = old
        return (-vals[0] + 8 * vals[1] - 8 * vals[2] + vals[3]) / (12 * h)
    for k, g in enumerate(grads):
        a = arrays[k]
        got = np.asarray(g._data if isinstance(g, dlarray) else g,
                         dtype=np.float64).reshape(-1)
        num = np.array([numeric(k, i, 1e-4) for i in range(a.size)])
        tol = 1e-5 * np.abs(num).max(initial=0.0) + 1e-8
        for i in np.flatnonzero(np.abs(got - num) > tol):
            # (a point within a few steps of a kink, as ReLU's at 0: smaller steps decide)
            num[i] = numeric(k, i, 1e-7)
        err = np.abs(got - num).max(initial=0.0)
        if err > tol:
            worst = (f"The derivative of the loss with respect to {labels[k]} is "
                     f"inconsistent with its numerical gradient: largest difference {err:.3g} "
                     f"(numerical gradient's largest value "
                     f"{np.abs(num).max(initial=0.0):.3g})")
            break
    return worst


def checkLayer(layer, *specs, ObservationDimension=None, CheckCodegenCompatibility=False,
               verbose=True):
    """Check the validity of a custom or function layer (MATLAB ``checkLayer``).

    Examples
    --------
    MATLAB::

        layer = preluLayer(20,'prelu');            % a custom layer
        checkLayer(layer,[5 5 20],ObservationDimension=4)
        layout = networkDataLayout([24 24 20 NaN],"SSCB");
        checkLayer(layer,layout)

    Python::

        checkLayer(layer, [5, 5, 20], ObservationDimension=4)
        checkLayer(layer, ml.networkDataLayout([24, 24, 20, np.nan], "SSCB"))
    """
    from .custom import CustomLayer, Formattable
    from .reshape import FunctionLayer
    fname = "checkLayer"
    if not isinstance(layer, (CustomLayer, FunctionLayer)):
        raise TypeError(f"{fname}: layer must be a custom layer (a subclass of "
                        f"ml.nnet.layer.Layer) or a functionLayer, got "
                        f"{type(layer).__name__}")
    if len(specs) == 1 and isinstance(specs[0], (list, tuple)) and specs[0] and all(
            isinstance(s, (list, tuple, np.ndarray)) for s in specs[0]):
        specs = tuple(specs[0])             # MATLAB's cell of sizes, one per input
    n_in = layer._values["NumInputs"]
    if len(specs) != n_in:
        raise ValueError(f"{fname}: the layer has {n_in} input(s); give one "
                         f"networkDataLayout or size per input, got {len(specs)}")
    layouts = [isinstance(s, networkDataLayout) for s in specs]
    if any(layouts) and not all(layouts):
        raise TypeError(f"{fname}: give either networkDataLayout objects or sizes, not both")
    formattable = isinstance(layer, Formattable) or (
        isinstance(layer, FunctionLayer) and layer._values["Formattable"])
    if formattable and not all(layouts):
        raise ValueError(f"{fname}: a Formattable layer is checked with networkDataLayout "
                         f"objects (formatted data), not with sizes")
    if all(layouts) and any(not s.Format for s in specs):
        raise ValueError(f"{fname}: the networkDataLayout objects must have a format")
    if not all(layouts):
        specs = tuple(_size_vector(fname, s) for s in specs)
    if ObservationDimension is not None:
        if all(layouts):
            raise ValueError(f"{fname}: ObservationDimension is for sizes; a "
                             f"networkDataLayout says where the observations are (B)")
        ObservationDimension = V.positive_int(ObservationDimension,
                                              V.Where(fname, "ObservationDimension"))
    if all(layouts) and type(layer).initialize is not CustomLayer.initialize \
            and isinstance(layer, CustomLayer):
        layer = shallow_copy(layer)
        object.__setattr__(layer, "_values", dict(layer._values))
        layer._adopt(layer.initialize(*specs), "initialize")
    start = time.perf_counter()
    results = CheckLayerResult()
    has_forward = isinstance(layer, CustomLayer) and hasattr(layer, "forward")
    has_state = bool(getattr(layer, "_state_parameters", ()))

    def record(name, fn):
        try:
            message = fn()
        except Exception as exc:  # a test's failure, reported, not raised
            message = f"{type(exc).__name__}: {exc}"
        results.append((name, "Failed" if message else "Passed", message or ""))

    def syntax():
        if isinstance(layer, FunctionLayer):
            return ""
        if type(layer).predict is CustomLayer.predict:
            return "The layer must define predict."
        for method in ("predict", "forward") if has_forward else ("predict",):
            sig = inspect.signature(getattr(layer, method))
            params = [p for p in sig.parameters.values()
                      if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
            varargs = any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values())
            if not varargs and len(params) != n_in:
                return (f"The layer's {method} must take {n_in} input(s) after the layer, "
                        f"got {len(params)}.")
        return ""
    record("functionSyntaxesAreCorrect", syntax)
    for label, xs, fmts in _data_sets(specs, ObservationDimension):
        tag = f"Observations={label}"
        outs = {}

        def runs(training, key):
            outs[key] = _run(layer, xs, fmts, np.float32, training)
            return ""
        record(f"predictDoesNotError({tag})", lambda: runs(False, "predict"))
        if has_forward:
            record(f"forwardDoesNotError({tag})", lambda: runs(True, "forward"))

            def consistent():
                if "predict" not in outs or "forward" not in outs:
                    return "predict or forward errored."
                for k, (a, b) in enumerate(zip(outs["predict"][0], outs["forward"][0])):
                    if a.shape != b.shape:
                        return (f"Output {k + 1}: forward and predict outputs differ in "
                                f"size ({a.shape} and {b.shape}).")
                return ""
            record(f"forwardPredictAreConsistentInSize({tag})", consistent)
        for precision, dtype in (("single", np.float32), ("double", np.float64)):
            def typed(training, dtype=dtype):
                ys, state = _run(layer, xs, fmts, dtype, training)
                for k, y in enumerate(ys):
                    if not isinstance(y, dlarray) or y._data.dtype != dtype:
                        got = y._data.dtype if isinstance(y, dlarray) else type(y).__name__
                        return (f"Incorrect type of output {k + 1}: expected a {precision} "
                                f"dlarray, got {got}.")
                return ""
            name = f"(Precision={precision},Device=cpu,{tag})"
            record("predictIsConsistentInType" + name, lambda: typed(False))
            if has_forward:
                record("forwardIsConsistentInType" + name, lambda: typed(True))
            results.append(("predictIsConsistentInType" + name.replace("cpu", "gpu"),
                            "Skipped", "No compatible GPU device found."))
        if has_state:
            def states():
                _, state = _run(layer, xs, fmts, np.float32, False)
                for n in layer._state_parameters:
                    v = state.get(n) if state else None
                    if v is None:
                        return f"predict must return a new value of the state {n}."
                return ""
            record(f"predictReturnsValidStates({tag})", states)

        def backprop():
            from .._autodiff import dlfeval, dlgradient
            from ..functional.mathfun import sum as dlsum

            def f(*X):
                ys, _ = _run(layer, X, fmts, np.float32, has_forward)
                loss = 0
                for y in ys:
                    loss = loss + dlsum(y, "all")
                return dlgradient(loss, list(X))
            dlfeval(f, *[dlarray(np.asarray(x, np.float32), fm) if fm else
                         dlarray._from_canonical(np.asarray(x, np.float32), "")
                         for x, fm in zip(xs, fmts)])
            return ""
        record(f"backwardPropagationDoesNotError({tag})", backprop)
        record(f"gradientsAreNumericallyCorrect({tag})",
               lambda: _gradient_check(layer, xs, fmts, has_forward))
    if CheckCodegenCompatibility:
        results.append(("codegenPragmaDefinedInClassDef", "Skipped",
                        "Code generation is not part of mlayers."))
    elapsed = time.perf_counter() - start
    if verbose:
        _print_report(results, elapsed, CheckCodegenCompatibility)
    return results


def _print_report(results, elapsed, codegen):
    print("Skipping GPU tests. No compatible GPU device found.")
    print(" ")
    if not codegen:
        print("Skipping code generation compatibility tests. To check validity of the "
              "layer for code generation, specify the CheckCodegenCompatibility and "
              "ObservationDimension options.")
        print(" ")
    print(f"Running {_SUITE}")
    ran = [r for r in results if r[1] != "Skipped"]
    dots = "".join("." for _ in ran)
    print(" ".join(dots[i:i + 10] for i in range(0, len(dots), 10)))
    for name, outcome, message in results:
        if outcome == "Failed":
            print("=" * 80)
            print(f"Verification failed in {_SUITE}/{name}.")
            print("    ----------------")
            print("    Test Diagnostic:")
            print("    ----------------")
            print("    " + message)
            print("=" * 80)
    print(f"Done {_SUITE}")
    print("__________")
    print()
    if results.Failed:
        print("Failure Summary:")
        print()
        print("     Name" + " " * 57 + "Failed  Incomplete  Reason(s)")
        print("    " + "=" * 100)
        for name, outcome, _ in results:
            if outcome == "Failed":
                print(f"     {_SUITE}/{name}    X                 Failed by verification.")
        print()
    print("Test Summary:")
    print(f"\t {results.Passed} Passed, {results.Failed} Failed, 0 Incomplete, "
          f"{results.Skipped} Skipped.")
    print(f"\t Time elapsed: {elapsed:.4g} seconds.")
