"""MATLAB's functional activations: ``relu``, ``leakyrelu``, ``gelu``, ``sigmoid``, ``softmax``
(MATLAB_SEMANTICS §11.2), and the layer-only activations ``elu``, ``swish``, ``softplus``,
``clippedrelu`` and ``prelu`` (not exported: MATLAB has no such functions; the layers call them).

Elementwise activations keep the input's format (an unformatted input gives an unformatted
output in the same order) and dtype.  ``softmax`` works over the C dimension and takes
``DataFormat`` for unformatted input (documented).

NaN: MATLAB's ``max(X, 0)`` would turn NaN into 0, but the package propagates NaN through
every activation (``relu(NaN)`` is NaN; numpy's ``maximum`` propagates NaN), as
MATLAB_SEMANTICS §11.2 records for leakyrelu and as the package's rule "NaN/Inf propagate"
asks.  The derivative at a NaN input is 0 for relu (the mask ``x > 0`` is false).

Speed: leakyrelu, gelu, sigmoid, elu, swish, softplus and clippedrelu run as one compiled
pass per forward and per backward (``mlayers._ops_act``, ``pyx/_act.pyx``) in the input's
memory layout; float32 uses vectorized exp/tanh/erf/log1p within a few ulp (gelu's
``(1 + erf(x/sqrt(2)))/2`` comes from one formula for ``erfc(|x|/sqrt(2))``, so its negative
tail keeps its relative accuracy), float64 uses libm.  elu's backward (alpha > 0) is
``dY .* (Y + alpha)`` from the forward result, as ``alpha*exp(X)`` up to round-off of order
``eps*alpha`` (absolute: far below 0, where exp(X) < eps, it is 0 or a few eps*alpha).

The helpers ``_in``/``_out``/``_dy``/``_dx`` (DataFormat handling) are shared by the other
nnops modules (fc, normalization, losses).
"""

__all__ = ["relu", "leakyrelu", "gelu", "sigmoid", "softmax"]
import numpy as np

from .._autodiff import composite_gradients, operation, rule, unbroadcast
from .._options import parse_name_value, validatestring
from .. import _validate as V
from .. import _ops_act
from ._dataformat import finish, input_grad, output_grad
from ..dlarray import _apply_format, _as_data, _describe, as_formatted, dlarray, stripdims


# --------------------------------------------------------------------------- shared helpers

def _array(X, fname, argname="X"):
    """numpy data of X (a dlarray or an array); logical input raises (MATLAB's
    deep:dlarray:LogicalsNotSupported)."""
    if isinstance(X, dlarray):
        return X._data
    if isinstance(X, (bool, np.bool_)) or (isinstance(X, np.ndarray) and X.dtype == bool):
        raise TypeError(f"{fname}: {argname} must be a real single or double array; "
                        f"logical input is not supported, got {_describe(X)}")
    return _as_data(X, fname, argname)


def _like(X, y):
    """Elementwise result: X's format (unformatted for numpy input)."""
    return dlarray._from_canonical(y, X._dims if isinstance(X, dlarray) else "")


def _in(X, data_format, fname):
    """(formatted dlarray in canonical order, DataFormat or None) for a DataFormat op."""
    if isinstance(X, (np.ndarray, bool, np.bool_)) and np.asarray(X).dtype == bool:
        _array(X, fname)
    if data_format is not None and isinstance(data_format, str) and data_format == "":
        data_format = None
    Xf = as_formatted(X, data_format, fname)
    if Xf._data.dtype not in (np.float32, np.float64):
        Xf = dlarray._from_canonical(Xf._data.astype(np.float64), Xf._dims)
    return Xf, data_format


def _out(y, dims, data_format):
    """Result of a DataFormat op: formatted (None), or unformatted in DataFormat order
    ("": in canonical order)."""
    return finish(dlarray._from_canonical(y, dims), data_format)


def _dy(dy, shape, data_format):
    """An output gradient (stored order of the result) in canonical order."""
    return dy if data_format is None else output_grad(dy, shape, data_format, "backward")


def _dx(X, dx, dims, data_format):
    """dL/dX in X's stored order (None when X is not a dlarray)."""
    return input_grad(X, dx, dims, data_format)


def _grad_param(p, g):
    """Gradient of a parameter argument in its own shape (None unless a dlarray)."""
    if not isinstance(p, dlarray):
        return None
    return np.asarray(g, dtype=p._data.dtype).reshape(p._data.shape)


def _scalar(value, fname, argname, ok, constraint):
    if type(value) is float or (type(value) is int and abs(value) < 2**53):
        if ok(value):                # the common case, no conversions
            return float(value)
    return V.real_scalar(value, V.Where(fname, argname), constraint, ok)


# --------------------------------------------------------------------------- exported

@operation
def relu(X):
    """Rectified linear unit, MATLAB's ``relu``: ``max(X, 0)``, format kept.

    NaN propagates (``relu(NaN)`` is NaN; see the module notes).

    Examples
    --------
    MATLAB::

        Y = relu(X);

    Python::

        >>> Y = ml.relu(ml.dlarray(np.array([[-1.0, 2.0]]), "CB"))
        >>> Y.data.tolist()
        [[0.0, 2.0]]
    """
    from .. import _ops_norm
    x = _array(X, "relu")
    y = _ops_norm.relu(x)       # compiled, parallel; NaN kept

    def backward(dy):
        return (_ops_norm.relu_backward(x, dy),)
    return _like(X, y), backward


@operation
def leakyrelu(X, scaleFactor=0.01):
    """Leaky ReLU, MATLAB's ``leakyrelu``: ``max(0,X) + scaleFactor*min(0,X)``.

    Examples
    --------
    MATLAB::

        Y = leakyrelu(X, 0.05);

    Python::

        >>> Y = ml.leakyrelu(ml.dlarray(np.array([[-2.0, 2.0]]), "CB"), 0.05)
        >>> Y.data.tolist()
        [[-0.1, 2.0]]
    """
    fname = "leakyrelu"
    x = _array(X, fname)
    s = _scalar(scaleFactor, fname, "scaleFactor", np.isfinite, "a finite real scalar")
    y = _ops_act.forward("leakyrelu", x, s)        # compiled, one pass, any layout

    def backward(dy):
        return (_ops_act.backward("leakyrelu", x, dy, s), None)
    return _like(X, y), backward


@operation
def gelu(X, *args, **kwargs):
    """Gaussian error linear unit, MATLAB's ``gelu``.

    ``Approximation="none"`` (default): ``X/2 .* (1 + erf(X/sqrt(2)))``;
    ``"tanh"``: ``X/2 .* (1 + tanh(sqrt(2/pi)*(X + 0.044715*X.^3)))``.

    Examples
    --------
    MATLAB::

        Y = gelu(X, Approximation="tanh");

    Python::

        >>> Y = ml.gelu(ml.dlarray(np.zeros((2, 3)), "CB"), Approximation="tanh")
    """
    fname = "gelu"
    opts = parse_name_value(fname, args, kwargs, ("Approximation",))
    approx = validatestring(opts.get("Approximation", "none"), ("none", "tanh"), fname,
                            "Approximation")
    x = _array(X, fname)
    kind = "gelu" if approx == "none" else "gelu_tanh"
    y = _ops_act.forward(kind, x)       # compiled; 1 + erf(x/sqrt(2)) as erfc in the tail

    def backward(dy):
        return (_ops_act.backward(kind, x, dy),) + (None,) * len(args)
    return _like(X, y), backward


@operation
def sigmoid(X):
    """Sigmoid, MATLAB's ``sigmoid``: ``1 ./ (1 + exp(-X))``, format kept.

    Examples
    --------
    MATLAB::

        Y = sigmoid(X);

    Python::

        >>> ml.sigmoid(ml.dlarray(np.zeros((1, 1)), "CB")).data.tolist()
        [[0.5]]
    """
    x = _array(X, "sigmoid")
    y = _ops_act.forward("sigmoid", x)

    def backward(dy):
        return (_ops_act.backward("sigmoid", x, dy, y=y),)      # dy .* y .* (1 - y)
    return _like(X, y), backward


@operation
def softmax(X, *args, **kwargs):
    """Softmax over the channel dimension, MATLAB's ``softmax``.

    ``Y = exp(X) ./ sum(exp(X), C)`` per observation (and spatial position, time step),
    computed as ``exp(X - max(X, [], C))`` so it cannot overflow.

    Other Parameters
    ----------------
    DataFormat : str
        Labels of unformatted ``X``; the result is then unformatted, in that order.

    Examples
    --------
    MATLAB::

        Y = softmax(X);                          % X: 'CB'
        Y = softmax(X, 'DataFormat', 'CB');      % unformatted X

    Python::

        >>> Y = ml.softmax(ml.dlarray(np.zeros((4, 2)), "CB"))
        >>> Y.data[:, 0].tolist()
        [0.25, 0.25, 0.25, 0.25]
    """
    fname = "softmax"
    opts = parse_name_value(fname, args, kwargs, ("DataFormat",))
    Xf, fmt = _in(X, opts.get("DataFormat"), fname)
    if "C" not in Xf._dims:
        raise ValueError(f"{fname}: X must have a channel (C) dimension, got "
                         f"'{Xf._dims}'")
    c = Xf._dims.index("C")
    from .. import _ops_norm
    x = Xf._data
    y = _ops_norm.softmax(x, c)

    def backward(dy):
        g = _ops_norm.softmax_backward(y, _dy(dy, y.shape, fmt), c)
        return (_dx(X, g, Xf._dims, fmt),) + (None,) * len(args)
    return _out(y, Xf._dims, fmt), backward


# --------------------------------------------------------------------------- layer-only
# Not exported (MATLAB has no functions of these names); the activation layers call them.

@operation
def elu(X, alpha=1.0):
    """ELU (eluLayer): ``X`` for ``X > 0``, else ``alpha*(exp(X) - 1)``."""
    fname = "elu"
    x = _array(X, fname)
    a = x.dtype.type(_scalar(alpha, fname, "alpha", np.isfinite, "a finite real scalar"))
    y = _ops_act.forward("elu", x, a)

    def backward(dy):      # dy .* alpha .* exp(x) below 0, as dy .* (y + alpha) for alpha > 0
        return (_ops_act.backward("elu", x, dy, a, y=y), None)
    return _like(X, y), backward


@operation
def swish(X):
    """Swish (swishLayer): ``X .* sigmoid(X)``."""
    x = _array(X, "swish")
    y = _ops_act.forward("swish", x)

    def backward(dy):
        return (_ops_act.backward("swish", x, dy),)    # dy .* (s + x.*s.*(1-s)), s from x
    return _like(X, y), backward


@operation
def softplus(X):
    """Softplus (softplusLayer): ``log(1 + exp(X))``, computed without overflow."""
    x = _array(X, "softplus")
    y = _ops_act.forward("softplus", x)     # max(x, 0) + log1p(exp(-|x|))

    def backward(dy):
        return (_ops_act.backward("softplus", x, dy),)     # dy .* sigmoid(x)
    return _like(X, y), backward


@operation
def clippedrelu(X, ceiling):
    """Clipped ReLU (clippedReluLayer): ``min(max(X, 0), ceiling)``; NaN propagates."""
    fname = "clippedrelu"
    x = _array(X, fname)
    c = x.dtype.type(_scalar(ceiling, fname, "ceiling", lambda v: np.isfinite(v) and v > 0,
                             "a positive finite real scalar"))
    y = _ops_act.forward("clippedrelu", x, c)

    def backward(dy):
        return (_ops_act.backward("clippedrelu", x, dy, c), None)  # dy where 0 < x < c
    return _like(X, y), backward


@operation
def prelu(X, alpha):
    """Parametric ReLU (preluLayer): ``max(X,0) + alpha.*min(X,0)``.

    ``alpha`` (learnable) is implicitly expanded MATLAB's way against ``X``'s stored
    (canonical) order: its dimensions align from the first (a ``1×1×C`` alpha against
    ``SSCB`` data is per channel); a scalar is shared.
    """
    fname = "prelu"
    x = _array(X, fname)
    a = _array(alpha, fname, "alpha")
    if a.ndim > x.ndim and any(s != 1 for s in a.shape[x.ndim:]):
        raise ValueError(f"{fname}: alpha must be compatible with X (size "
                         f"{'×'.join(map(str, x.shape))}), got size "
                         f"{'×'.join(map(str, a.shape))}")
    ab = a.reshape(a.shape[:x.ndim] + (1,) * (x.ndim - min(a.ndim, x.ndim)))
    if any(s not in (1, t) for s, t in zip(ab.shape, x.shape)):
        raise ValueError(f"{fname}: alpha must be compatible with X (size "
                         f"{'×'.join(map(str, x.shape))}), got size "
                         f"{'×'.join(map(str, a.shape))}")
    dtype = x.dtype             # MATLAB: single .* double is single; X decides
    ab = ab.astype(dtype, copy=False)
    neg = np.minimum(x, 0)
    y = (np.maximum(x, 0) + ab * neg).astype(dtype, copy=False)

    def backward(dy):
        dx = np.where(x > 0, dy, dy * ab).astype(x.dtype, copy=False)
        da = unbroadcast(dy * neg, ab.shape) if isinstance(alpha, dlarray) else None
        return (dx, _grad_param(alpha, da) if da is not None else None)
    return _like(X, y), backward


# --------------------------------------------------------------------------- traced backward
# The rules of EnableHigherDerivatives (``_autodiff.rule``): the derivatives above as
# dlarray operations on X and Y (masks of X's values are constants).

_SQRT_2PI = float(np.sqrt(2 * np.pi))

rule(relu)(lambda g, Y, X: (g * (X._data > 0),))
rule(leakyrelu)(lambda g, Y, X, scaleFactor=0.01: (
    g * np.where(X._data > 0, 1.0, float(scaleFactor)).astype(X._data.dtype), None))
rule(clippedrelu)(lambda g, Y, X, ceiling: (
    g * ((X._data > 0) & (X._data < ceiling)), None))
rule(sigmoid)(lambda g, Y, X: (g * Y * (1 - Y),))
rule(softplus)(lambda g, Y, X: (g * sigmoid(X),))


@rule(swish)
def _(g, Y, X):
    s = sigmoid(X)
    return (g * (s + X * s * (1 - s)),)


@rule(elu)
def _(g, Y, X, alpha=1.0):
    above = X._data > 0
    return g * (above + ~above * (Y + float(alpha))), None


@operation
def _normcdf(X):
    """The normal distribution Phi(X) (gelu's traced derivative)."""
    from scipy.special import ndtr
    x = X._data

    def backward(dy):
        return (dy * np.exp(-0.5 * x * x) / _SQRT_2PI,)
    return _like(X, ndtr(x).astype(x.dtype, copy=False)), backward


@rule(_normcdf)
def _(g, Y, X):
    from .mathfun import exp
    return (g * exp(-0.5 * X * X) / _SQRT_2PI,)


@rule(gelu)
def _(g, Y, X, *args, **kwargs):
    opts = parse_name_value("gelu", args, kwargs, ("Approximation",))
    from .mathfun import exp
    if validatestring(opts.get("Approximation", "none"), ("none", "tanh"), "gelu",
                      "Approximation") == "none":
        d = _normcdf(X) + X * exp(-0.5 * X * X) / _SQRT_2PI
    else:
        from .mathfun import tanh
        k = float(np.sqrt(2 / np.pi))
        t = tanh(k * (X + 0.044715 * X * X * X))
        d = 0.5 * (1 + t) + 0.5 * X * (1 - t * t) * k * (1 + 3 * 0.044715 * X * X)
    return (g * d,) + (None,) * len(args)


@rule(softmax)
def _(g, Y, X, *args, **kwargs):
    from .mathfun import sum as dlsum
    fmt = parse_name_value("softmax", args, kwargs, ("DataFormat",)).get("DataFormat")
    c = (fmt or X._dims).index("C") + 1
    return (Y * (g - dlsum(g * Y, c)),) + (None,) * len(args)


@rule(prelu)
def _(g, Y, X, alpha):
    from .mathfun import take
    x = X._data
    a = np.asarray(alpha._data if isinstance(alpha, dlarray) else alpha)
    shape = a.shape[:x.ndim] + (1,) * (x.ndim - min(a.ndim, x.ndim))   # as prelu aligns
    positive = x > 0

    def recomputed(X, alpha):
        al = take(alpha, np.arange(a.size), shape, "") if isinstance(alpha, dlarray) \
            else a.reshape(shape)
        return X * positive + al * (X * ~positive)
    return composite_gradients(recomputed, (X, alpha), g)
