"""MATLAB's ``lbfgsupdate`` and ``lbfgsState``: limited-memory BFGS for small problems in
one batch (a physics-informed network, a model function fitted to all its data).

``[net, state] = lbfgsupdate(net, lossFcn, state)`` takes one step: the direction
``-H·g`` from the two-loop recursion over the last ``HistorySize`` steps ``s`` and
gradient changes ``y`` (the base inverse Hessian ``λ·I``, ``λ = sᵀy / yᵀy`` of the latest
pair, ``InitialInverseHessianFactor`` before any), then a line search along it that calls
``lossFcn`` at trial points (documented, lbfgsupdate and lbfgsState reference pages).

Package defaults where MathWorks does not document the algorithm's details (inferred;
docs/custom_loops.md, "L-BFGS"): trial step 1; Armijo constant 1e-4, curvature constant
0.9; the weak Wolfe search brackets by bisection and doubles while the slope is too
steep (Lewis and Overton), the strong Wolfe one brackets the same way with the strong
condition, backtracking halves; a pair with ``sᵀy <= 0`` (which only backtracking
accepts) is not stored and the history restarts from the gradient; a search that
fails leaves the parameters where they were (``LineSearchStatus`` ``"failed"``: nothing is
lost) and a direction that does not descend restarts from the gradient.
"""
import copy
import math

import numpy as np

from .._display import layer_text
from .._options import parse_name_value, validatestring
from .. import _validate as V
from ..dlarray import dlarray
from .solvers import _flatten, _np, _wrap

__all__ = ["lbfgsupdate", "lbfgsState"]

_C1, _C2 = 1e-4, 0.9
_METHODS = ("weak-wolfe", "strong-wolfe", "backtracking")


class lbfgsState:
    """MATLAB's ``lbfgsState``: the L-BFGS solver's history between ``lbfgsupdate`` calls.

    Examples
    --------
    MATLAB::

        solverState = lbfgsState(HistorySize=10);
        [net, solverState] = lbfgsupdate(net, lossFcn, solverState);

    Python::

        solverState = ml.lbfgsState(HistorySize=10)
        net, solverState = ml.lbfgsupdate(net, loss_fcn, solverState)
    """

    def __init__(self, *args, **kwargs):
        fname = "lbfgsState"
        opts = parse_name_value(fname, args, kwargs, ("HistorySize",
                                                      "InitialInverseHessianFactor",
                                                      "InitialStepSize"))
        self._history_size = V.positive_int(opts.get("HistorySize", 10),
                                            V.Where(fname, "HistorySize"))
        self._factor = V.real_scalar(opts.get("InitialInverseHessianFactor", 1),
                                     V.Where(fname, "InitialInverseHessianFactor"),
                                     "a positive finite scalar",
                                     lambda v: 0 < v < math.inf)
        step = opts.get("InitialStepSize")
        if step is not None and not (isinstance(step, str) or np.size(step) == 0):
            step = V.real_scalar(step, V.Where(fname, "InitialStepSize"),
                                 "[], \"auto\" or a positive finite scalar",
                                 lambda v: 0 < v < math.inf)
        elif isinstance(step, str):
            step = validatestring(step, ("auto",), fname, "InitialStepSize")
        else:
            step = None
        self._initial_step = step
        self.Loss = None
        self.Gradients = None
        self.StepNorm = None
        self.GradientsNorm = None
        self.LineSearchStatus = ""
        self.LineSearchMethod = ""
        self.MaxNumLineSearchIterations = 0
        self.StepHistory = []
        self.GradientsDifferenceHistory = []
        self._lambda = self._factor

    HistorySize = property(lambda self: self._history_size)
    InitialInverseHessianFactor = property(lambda self: self._factor)
    InitialStepSize = property(lambda self: self._initial_step)

    @property
    def HistoryIndices(self):
        """1..n for the n stored pairs, oldest first."""
        return np.arange(1, len(self.StepHistory) + 1, dtype=np.float64)

    def __repr__(self):
        rows = [("InitialInverseHessianFactor", self._factor),
                ("InitialStepSize", self._initial_step), ("HistorySize", self._history_size),
                ("Loss", self.Loss), ("Gradients", _Shown(self.Gradients)),
                ("StepNorm", self.StepNorm), ("GradientsNorm", self.GradientsNorm),
                ("LineSearchStatus", self.LineSearchStatus),
                ("LineSearchMethod", self.LineSearchMethod),
                ("MaxNumLineSearchIterations", self.MaxNumLineSearchIterations),
                ("StepHistory", _Shown(f"{{1×{len(self.StepHistory)} cell}}")),
                ("GradientsDifferenceHistory",
                 _Shown(f"{{1×{len(self.GradientsDifferenceHistory)} cell}}")),
                ("HistoryIndices", self.HistoryIndices)]
        return layer_text("LBFGSState", [(None, rows)], footer=False).rstrip("\n")


class _Shown:
    """A display value shown as its text (a cell's size, a container's class)."""

    def __init__(self, value):
        self.text = (value if isinstance(value, str) else "[]" if value is None else
                     f"[{'×'.join(map(str, value.shape))} dlarray]"
                     if isinstance(value, dlarray) else f"[1×1 {type(value).__name__}]")

    def __repr__(self):
        return self.text


def _evaluate(fname, loss_fcn, params):
    """``lossFcn(params)`` -> (loss as float, gradients container, state or None)."""
    out = loss_fcn(params)
    if not isinstance(out, tuple) or len(out) not in (2, 3):
        raise TypeError(f"{fname}: lossFcn must return (loss, gradients) or (loss, "
                        f"gradients, state), got {type(out).__name__}")
    loss = out[0]
    value = np.asarray(_np(loss), dtype=np.float64)
    if value.size != 1:
        raise ValueError(f"{fname}: the loss lossFcn returns must be a scalar, got size "
                         f"{'×'.join(map(str, value.shape))}")
    return float(value.reshape(())), out[1], (out[2] if len(out) == 3 else None)


def _vector(fname, params, grads):
    """(parameter vector, gradient vector, rebuild(vector) -> container) in float64."""
    pleaves, gleaves, _, _, rebuild = _flatten(fname, params, grads, [])
    shapes = [np.shape(_np(p)) for p in pleaves]
    dtypes = [_np(p).dtype if _np(p).dtype.kind == "f" else np.dtype(np.float64)
              for p in pleaves]
    x = np.concatenate([np.asarray(_np(p), np.float64).reshape(-1, order="F")
                        for p in pleaves]) if pleaves else np.zeros(0)
    g = np.concatenate([np.asarray(_np(q), np.float64).reshape(-1, order="F")
                        for q in gleaves]) if gleaves else np.zeros(0)
    if g.size != x.size:
        raise ValueError(f"{fname}: the gradients lossFcn returns must have the "
                         f"parameters' sizes ({x.size} values), got {g.size}")

    def build(v):
        leaves, k = [], 0
        for p, shape, dt in zip(pleaves, shapes, dtypes):
            n = math.prod(shape)
            leaves.append(_wrap(p, v[k:k + n].reshape(shape, order="F").astype(dt)))
            k += n
        return rebuild(leaves, [])[0]
    return x, g, build


def _direction(state, g):
    """-H g by the two-loop recursion over the stored pairs."""
    q = g.copy()
    alphas = []
    for s, y in zip(reversed(state.StepHistory), reversed(state.GradientsDifferenceHistory)):
        a = (s @ q) / (y @ s)
        alphas.append(a)
        q -= a * y
    r = state._lambda * q
    for (s, y), a in zip(zip(state.StepHistory, state.GradientsDifferenceHistory),
                         reversed(alphas)):
        b = (y @ r) / (y @ s)
        r += (a - b) * s
    return -r


def _line_search(method, maxit, phi, f0, slope0):
    """A step length along the direction by ``method`` -> (alpha, trial) or (None, None);
    ``phi(alpha)`` -> (loss, slope, trial)."""
    lo, hi, alpha = 0.0, math.inf, 1.0
    for _ in range(maxit):
        f, slope, trial = phi(alpha)
        decrease = math.isfinite(f) and f <= f0 + _C1 * alpha * slope0
        if method == "backtracking":
            if decrease:
                return alpha, trial
            alpha *= 0.5
            continue
        if not decrease or not math.isfinite(slope):
            hi = alpha
        elif slope < _C2 * slope0:
            lo = alpha                              # still descending steeply: go further
        elif method == "strong-wolfe" and slope > -_C2 * slope0:
            hi = alpha                              # overshot the minimum along the line
        else:
            return alpha, trial
        alpha = 2 * lo if hi == math.inf else 0.5 * (lo + hi)
    return None, None


def lbfgsupdate(net, lossFcn, solverState, *args, **kwargs):
    """Update parameters by one L-BFGS step (MATLAB ``lbfgsupdate``).

    Parameters
    ----------
    net : dlnetwork, Learnables table, dict, list or dlarray
        The parameters.
    lossFcn : callable
        ``lossFcn(net) -> (loss, gradients)`` (or ``(loss, gradients, state)`` for a
        ``dlnetwork``, whose State is then updated); usually
        ``lambda net: ml.dlfeval(model_loss, net, X, T)``.  The line search calls it at
        trial points.
    solverState : lbfgsState
    LineSearchMethod : {"weak-wolfe", "strong-wolfe", "backtracking"}
    MaxNumLineSearchIterations : positive integer, default 20

    Returns
    -------
    (net, solverState): both updated (a failed line search leaves the parameters as they
    were and sets ``solverState.LineSearchStatus`` to ``"failed"``).

    Examples
    --------
    MATLAB::

        lossFcn = @(net) dlfeval(@modelLoss, net, X, T);
        solverState = lbfgsState;
        for i = 1:maxIterations
            [net, solverState] = lbfgsupdate(net, lossFcn, solverState);
        end

    Python::

        loss_fcn = lambda net: ml.dlfeval(model_loss, net, X, T)
        solverState = ml.lbfgsState()
        for i in range(max_iterations):
            net, solverState = ml.lbfgsupdate(net, loss_fcn, solverState)
    """
    fname = "lbfgsupdate"
    if not callable(lossFcn):
        raise TypeError(f"{fname}: lossFcn must be a function, got {type(lossFcn).__name__}")
    if isinstance(net, (str, bytes, bool)) or not (
            isinstance(net, (dict, list, tuple, dlarray, np.ndarray))
            or hasattr(net, "Learnables") or hasattr(net, "VariableNames")):
        raise TypeError(f"{fname}: the parameters must be a dlnetwork, a table of "
                        f"learnables, a dict, a list or a dlarray, got {type(net).__name__}")
    if not isinstance(solverState, lbfgsState):
        raise TypeError(f"{fname}: solverState must be an lbfgsState, got "
                        f"{type(solverState).__name__}")
    opts = parse_name_value(fname, args, kwargs, ("LineSearchMethod",
                                                  "MaxNumLineSearchIterations"))
    method = validatestring(opts.get("LineSearchMethod", "weak-wolfe"), _METHODS, fname,
                            "LineSearchMethod")
    maxit = V.positive_int(opts.get("MaxNumLineSearchIterations", 20),
                           V.Where(fname, "MaxNumLineSearchIterations"))
    # (MATLAB objects are values: the state given is left as it was)
    state = copy.copy(solverState)
    state.StepHistory = list(solverState.StepHistory)
    state.GradientsDifferenceHistory = list(solverState.GradientsDifferenceHistory)
    state.LineSearchMethod, state.MaxNumLineSearchIterations = method, maxit
    if state.Loss is None:       # the first call: the loss and gradients at the start
        state.Loss, state.Gradients, _ = _evaluate(fname, lossFcn, net)
        x, g, _ = _vector(fname, net, state.Gradients)
        if state._initial_step is not None and np.abs(g).max(initial=0) > 0:
            s0 = (0.5 * np.abs(x).max(initial=0) + 0.1 if state._initial_step == "auto"
                  else state._initial_step)
            state._lambda = s0 / np.abs(g).max()
    x, g, build = _vector(fname, net, state.Gradients)
    d = _direction(state, g)
    slope0 = float(d @ g)
    if not slope0 < 0:          # not a descent direction (or NaN): restart from -g
        state.StepHistory, state.GradientsDifferenceHistory = [], []
        d = -state._lambda * g
        slope0 = float(d @ g)

    def phi(alpha):
        trial = build(x + alpha * d)
        f, grads, net_state = _evaluate(fname, lossFcn, trial)
        gt = _vector(fname, trial, grads)[1]
        return f, float(gt @ d), (trial, grads, gt, f, net_state)

    alpha, found = (None, None) if not slope0 < 0 else _line_search(method, maxit, phi,
                                                                     state.Loss, slope0)
    if alpha is None:
        state.LineSearchStatus = "failed"
        state.StepNorm = 0.0
        state.GradientsNorm = float(np.linalg.norm(g))
        return net, state
    trial, grads, g_new, f_new, net_state = found
    if net_state is not None and hasattr(trial, "State"):
        trial.State = net_state
    s, y = alpha * d, g_new - g
    if s @ y > 0:
        state.StepHistory.append(s)
        state.GradientsDifferenceHistory.append(y)
        del state.StepHistory[:-state._history_size]
        del state.GradientsDifferenceHistory[:-state._history_size]
        state._lambda = float((s @ y) / (y @ y))
    else:
        # (a curvature the Wolfe searches exclude, which backtracking allows: the stale
        # pairs would keep the steps tiny, so the history starts again from -g)
        state.StepHistory, state.GradientsDifferenceHistory = [], []
        state._lambda = state._factor
    state.Loss, state.Gradients = f_new, grads
    state.StepNorm = float(np.linalg.norm(s))
    state.GradientsNorm = float(np.linalg.norm(g_new))
    state.LineSearchStatus = "completed"
    return trial, state
