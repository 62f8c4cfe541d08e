"""MATLAB's ``dlresize``: resize the spatial dimensions of a dlarray (nearest or linear).

Sampling (MATLAB_SEMANTICS §14.2, resize2dLayer's rules, from MathWorks source), per S
dimension with input size ``N``, output size ``M`` and scale ``s`` (``Scale``, or
``M / N`` when ``OutputSize`` is given), for ``x = 1..M`` (1-based):

    'half-pixel'  u = x/s + 0.5*(1 - 1/s)
    'asymmetric'  u = 1 + (x - 1)/s
    u is clamped to [1, N]

* ``'nearest'``: ``NearestRoundingMode`` ``'round'`` rounds ``u`` (half up), ``'floor'``
  floors it, ``'onnx-10'`` takes ``ceil(u)`` when ``s < 1`` and ``fix(u)`` otherwise.
* ``'linear'``: ``(1 - f)*X(i) + f*X(i + 1)`` with ``i = floor(u)``, ``f = u - i``
  (``X(N)`` alone at the end), one S dimension after the other, first to last.

Output sizes: ``floor(Scale .* inputSize)``; ``OutputSize`` as given, where one NaN
entry keeps the aspect ratio (package default: that dimension is
``floor(in * s)`` with the scale ``s`` of the given entries, which must agree).

The backward pass is the transpose of each dimension's sampling matrix: every output's
gradient goes back to the cell(s) it was read from, with the same weights.
"""

__all__ = ["dlresize"]
import math

import numpy as np

from .. import _validate as V
from .._autodiff import operation
from .._options import parse_name_value, validatestring
from ..dlarray import as_formatted, dlarray
from ._dataformat import finish, input_grad, output_grad

_OPTIONS = ("Scale", "OutputSize", "Method", "GeometricTransformMode",
            "NearestRoundingMode", "DataFormat")
METHODS = ("nearest", "linear")
TRANSFORMS = ("half-pixel", "asymmetric")
ROUNDINGS = ("round", "floor", "onnx-10")


def sample_points(n, m, s, transform, method, rounding):
    """0-based ``(i0, i1, w1)`` of one dimension: output k reads
    ``(1 - w1)*x[i0] + w1*x[i1]`` (nearest: ``w1 = 0``, ``i1 = i0``)."""
    x = np.arange(1, m + 1, dtype=np.float64)
    if transform == "half-pixel":
        u = x / s + 0.5 * (1 - 1 / s)
    else:
        u = 1 + (x - 1) / s
    u = np.clip(u, 1, n)
    if method == "nearest":
        if rounding == "round":
            i = np.floor(u + 0.5)            # MATLAB round, u >= 1: half away from zero
        elif rounding == "floor":
            i = np.floor(u)
        else:                                # 'onnx-10'
            i = np.ceil(u) if s < 1 else np.trunc(u)
        i0 = np.clip(i, 1, n).astype(np.int64) - 1
        return i0, i0, np.zeros(m)
    i0 = np.floor(u).astype(np.int64)
    f = u - i0
    i1 = np.minimum(i0 + 1, n)
    return i0 - 1, i1 - 1, f


def _apply(x, axis, i0, i1, w1):
    a = np.take(x, i0, axis=axis)
    if not np.any(w1):
        return a
    b = np.take(x, i1, axis=axis)
    shape = [1] * x.ndim
    shape[axis] = -1
    w = w1.reshape(shape).astype(x.dtype)
    y = (1 - w) * a + w * b
    return np.where(w == 0, a, y)        # exact samples stay exact (also Inf)


def _adjoint(dy, axis, n, i0, i1, w1):
    """Transpose of _apply along ``axis``: the ``M x N`` sampling matrix, dense when it is
    small (one matrix product), else scattered with ``np.add.at``."""
    m = i0.size
    w0 = (1 - w1).astype(dy.dtype)
    w1 = w1.astype(dy.dtype)
    if m * n <= 1 << 22:
        mat = np.zeros((m, n), dtype=dy.dtype)
        np.add.at(mat, (np.arange(m), i0), w0)
        np.add.at(mat, (np.arange(m), i1), w1)
        g = np.moveaxis(dy, axis, -1) @ mat
        return np.moveaxis(g, -1, axis)
    d = np.moveaxis(dy, axis, 0)
    g = np.zeros((n,) + d.shape[1:], dtype=dy.dtype)
    shape = (-1,) + (1,) * (d.ndim - 1)
    np.add.at(g, i0, d * w0.reshape(shape))
    np.add.at(g, i1, d * w1.reshape(shape))
    return np.moveaxis(g, 0, axis)


def output_geometry(in_size, scale, output_size, fname):
    """``(out sizes, scales)`` for the S dims from ``Scale`` or ``OutputSize``."""
    d = len(in_size)
    if scale is not None:
        s = V.real_array(scale, V.Where(fname, "Scale"), "a positive number or a vector of "
                         "positive numbers").astype(np.float64).reshape(-1)
        if s.size == 1:
            s = np.repeat(s, d)
        if s.size != d or not np.all(np.isfinite(s)) or np.any(s <= 0):
            raise ValueError(f"{fname}: Scale must be a positive number or a vector of {d} "
                             f"positive numbers (one per S dimension), got {scale!r}")
        out = [int(math.floor(si * n)) for si, n in zip(s, in_size)]   # as MATLAB's floor
        for o, si, n in zip(out, s, in_size):
            if o < 1:
                raise ValueError(f"{fname}: Scale {si:g} gives an empty output for an input "
                                 f"of size {n}")
        return tuple(out), tuple(float(v) for v in s)
    o = V.real_array(output_size, V.Where(fname, "OutputSize"), "a vector of positive "
                     "integers").astype(np.float64).reshape(-1)
    constraint = f"a vector of {d} positive integers (one NaN keeps the aspect ratio)"
    nan = np.isnan(o)
    if o.size != d or nan.sum() > 1 or (d == 1 and nan.any()) or \
            np.any(~nan & ((o < 1) | (o != np.round(o)) | ~np.isfinite(o) | (o > V.INT_LIMIT))):
        raise ValueError(f"{fname}: OutputSize must be {constraint}, got {output_size!r}")
    s = [o[i] / in_size[i] if not nan[i] else None for i in range(d)]
    if nan.any():
        known = [v for v in s if v is not None]
        if any(abs(v - known[0]) > 1e-12 * known[0] for v in known):
            raise ValueError(f"{fname}: OutputSize with a NaN entry keeps the aspect ratio, "
                             f"so its other entries must scale the input equally, got "
                             f"{output_size!r}")
        k = int(np.flatnonzero(nan)[0])
        s[k] = known[0]
        o[k] = max(1, math.floor(in_size[k] * known[0]))
    return tuple(int(v) for v in o), tuple(float(v) for v in s)


def resize_data(x, d, out, scales, method, transform, rounding):
    """Resize the first ``d`` axes of numpy ``x``; returns (y, per-axis samples)."""
    samples = []
    y = x
    for axis in range(d):
        smp = sample_points(x.shape[axis], out[axis], scales[axis], transform, method,
                            rounding)
        samples.append(smp)
        y = _apply(y, axis, *smp)
    return y, samples


def resize_adjoint(dy, d, in_size, samples):
    g = dy
    for axis in reversed(range(d)):
        g = _adjoint(g, axis, in_size[axis], *samples[axis])
    return g


@operation
def dlresize(X, *args, **kwargs):
    """Resize the spatial dimensions of a dlarray, MATLAB's ``dlresize``.

    Parameters
    ----------
    X : dlarray
        Formatted data with 1 to 3 ``S`` dimensions (or unformatted with ``DataFormat``).

    Other Parameters
    ----------------
    Scale : positive number or vector
        Output size ``floor(Scale .* size)`` per S dimension.  Exactly one of ``Scale``
        and ``OutputSize``.
    OutputSize : vector of positive integers
        One entry per S dimension; one NaN keeps the aspect ratio.
    Method : ``'nearest'`` (default) or ``'linear'``
    GeometricTransformMode : ``'half-pixel'`` (default) or ``'asymmetric'``
    NearestRoundingMode : ``'round'`` (default), ``'floor'`` or ``'onnx-10'``
    DataFormat : str

    Returns
    -------
    dlarray
        ``X``'s format with resized S dimensions.

    Examples
    --------
    MATLAB::

        Y = dlresize(X, 'Scale', [1.5 1]);
        Y = dlresize(X, 'OutputSize', [64 NaN], 'Method', 'linear');

    Python::

        >>> X = ml.dlarray(np.random.rand(4, 6, 3), "SSC")
        >>> ml.dlresize(X, Scale=[1.5, 1]).shape
        (6, 6, 3)
    """
    fname = "dlresize"
    opts = parse_name_value(fname, args, kwargs, _OPTIONS)
    Xf = as_formatted(X, opts.get("DataFormat"), fname)
    d = Xf.dims.count("S")
    if d == 0:
        raise ValueError(f"{fname}: X must have a spatial (S) dimension, got '{Xf.dims}'")
    if ("Scale" in opts) == ("OutputSize" in opts):
        raise ValueError(f"{fname}: exactly one of Scale and OutputSize must be given, got "
                         f"{'both' if 'Scale' in opts else 'neither'}")
    method = validatestring(opts.get("Method", "nearest"), METHODS, fname, "Method")
    transform = validatestring(opts.get("GeometricTransformMode", "half-pixel"), TRANSFORMS,
                               fname, "GeometricTransformMode")
    rounding = validatestring(opts.get("NearestRoundingMode", "round"), ROUNDINGS, fname,
                              "NearestRoundingMode")
    x = Xf.data
    if x.dtype not in (np.float32, np.float64):
        x = x.astype(np.float64)
    in_size = x.shape[:d]
    out, scales = output_geometry(in_size, opts.get("Scale"), opts.get("OutputSize"), fname)
    V.check_allocation(fname, "the output", tuple(out) + x.shape[d:], x.dtype.itemsize)
    y, samples = resize_data(x, d, out, scales, method, transform, rounding)
    Y = dlarray._from_canonical(y, Xf.dims)
    df = opts.get("DataFormat") or None

    def backward(dy):
        if not isinstance(X, dlarray):
            return (None,) * (1 + len(args))
        g = resize_adjoint(output_grad(dy, y.shape, df, fname), d, in_size, samples)
        return (input_grad(X, g, Xf.dims, df),) + (None,) * len(args)
    return finish(Y, df), backward


# the rule of EnableHigherDerivatives: resizing is linear in X, with fixed sampling weights
from .mathfun import linear_rule  # noqa: E402
linear_rule(dlresize)
