"""MATLAB's functional normalizations: ``batchnorm``, ``layernorm``, ``groupnorm``,
``instancenorm``, ``crosschannelnorm`` (MATLAB_SEMANTICS §11.1, §16.6).

All normalize ``xhat = (x - mu) ./ sqrt(sigma^2 + Epsilon)`` with the **biased** variance
(from MathWorks source), then ``y = scale.*xhat + offset`` per channel; they differ in the
dimensions the statistics run over:

=================  =============================================================
batchnorm          per channel, over S, B, T and U
layernorm          per observation (see ``OperationDimension``)
groupnorm          per observation and group of channels, over S, T, U
instancenorm       per channel and observation, over S, T and U
=================  =============================================================

``offset``, ``scale`` (and batchnorm's statistics) are per-channel vectors in any MATLAB
vector shape (``1×1×C``, ``C×1``, ``1×C``...), numpy arrays or dlarrays (traced ones get
gradients in their own shape).  Unformatted input takes ``DataFormat`` and gives an
unformatted result in that order.  Batch normalization, layer normalization over C alone
("channel-only", any layout), and layer/group/instance normalization whose statistics
are per observation and channel group over S (no T or U reduced), run on compiled
kernels (``mlayers._ops_norm``); the other cases are NumPy.
"""

import concurrent.futures
import os

import numpy as np

from .. import _defaults
from .. import _ops
from .. import _ops_norm
from .. import _validate as V
from .._autodiff import composite_gradients, operation, rule
from .._display import format_size
from .._options import parse_name_value, validatestring
from ..dlarray import dlarray
from .activations import _array, _dx, _dy, _grad_param, _in, _out, _scalar

__all__ = ["batchnorm", "layernorm", "groupnorm", "instancenorm", "crosschannelnorm"]


# --------------------------------------------------------------------------- helpers

def _channel_vector(p, nc, fname, argname):
    """A per-channel parameter as a 1-D array of ``nc`` elements."""
    a = _array(p, fname, argname)
    if a.size != nc or sum(s != 1 for s in a.shape) > 1:
        raise ValueError(f"{fname}: {argname} must be a vector with one element per channel "
                         f"({nc}), got size {format_size(_matlab_shape(a.shape))}")
    return a.reshape(-1)


def _matlab_shape(shape):
    """MATLAB's size of a numpy shape: at least two entries (a 1-D array is a column)."""
    return tuple(shape) + (1,) * (2 - len(shape)) if len(shape) < 2 else tuple(shape)


def _epsilon(opts, fname):
    eps = _scalar(opts.get("Epsilon", 1e-5), fname, "Epsilon",
                  lambda v: np.isfinite(v) and v > 0,
                  "a positive finite real scalar")
    return float(eps)


def _formatted(X, opts, fname):
    Xf, fmt = _in(X, opts.get("DataFormat"), fname)
    if "C" not in Xf._dims:
        raise ValueError(f"{fname}: X must have a channel (C) dimension, got '{Xf._dims}'")
    return Xf, fmt, Xf._dims.index("C")


def _split(args, nmax):
    """Leading non-text positional arguments (at most ``nmax``) and the name-value rest."""
    k = 0
    while k < len(args) and k < nmax and not isinstance(args[k], (str, np.str_)):
        k += 1
    return args[:k], args[k:]


def _cshape(ndim, c):
    s = [1] * ndim
    s[c] = -1
    return tuple(s)


def _param_out(v, like, dtype):
    """A returned statistic: the shape of ``like`` (offset), an unformatted dlarray."""
    shape = np.shape(like._data if isinstance(like, dlarray) else like)
    return dlarray._from_canonical(np.asarray(v, dtype=dtype).reshape(shape), "")


def _moments(x, axes):
    mu = x.mean(axis=axes, keepdims=True)
    d = x - mu
    var = (d * d).mean(axis=axes, keepdims=True)
    return mu, var


def _norm_backward(g, xhat, invstd, axes):
    """dL/dx of ``xhat = (x - mean(x)) * invstd`` over ``axes`` given ``g = dL/dxhat``."""
    return invstd * (g - g.mean(axis=axes, keepdims=True)
                     - xhat * (g * xhat).mean(axis=axes, keepdims=True))


# --------------------------------------------------------------------------- batchnorm

_BN_OPTIONS = ("Epsilon", "MeanDecay", "VarianceDecay", "DataFormat")


@operation
def batchnorm(X, offset, scaleFactor, *args, nargout=1, _rectify=False, **kwargs):
    """Batch normalization, MATLAB's ``batchnorm``.

    Forms (``nargout`` is MATLAB's number of outputs)::

        Y = batchnorm(X, offset, scale)                             batch statistics
        Y, mu, sigmaSq = batchnorm(X, offset, scale, nargout=3)     ... and returns them
        Y = batchnorm(X, offset, scale, trainedMu, trainedSigmaSq)  inference
        Y, runMu, runSigmaSq = batchnorm(X, offset, scale, runMu, runSigmaSq, nargout=3)

    The last form normalizes with the batch statistics and returns the updated running
    statistics ``s_new = decay*s_batch + (1 - decay)*s_old`` (documented).

    Per channel over S, B, T and U: ``y = scale.*(x - mu)./sqrt(sigmaSq + Epsilon) +
    offset``, biased ``sigmaSq``.  The returned (and averaged) variance is biased too, or
    unbiased with ``ml.package_defaults(batchnorm_variance="unbiased")``.

    Other Parameters
    ----------------
    Epsilon : float, default 1e-5
    MeanDecay, VarianceDecay : float in [0, 1], default 0.1
    DataFormat : str
        Labels of unformatted ``X``.

    Returns
    -------
    Y : dlarray
        ``X``'s format.  The statistics are unformatted dlarrays shaped like ``offset``.

    ``_rectify`` (not MATLAB's; the network executor's): with the batch statistics, Y is
    ``relu`` of the normalized output, in the same pass, and the backward applies relu's
    backward to dY inside the batch normalization's (a ``reluLayer`` that alone reads a
    ``batchNormalizationLayer`` in training: the numbers of the two operations).

    Examples
    --------
    MATLAB::

        [Y, mu, sigmaSq] = batchnorm(X, offset, scaleFactor);
        [Y, runMu, runVar] = batchnorm(X, offset, scaleFactor, runMu, runVar);

    Python::

        >>> X = ml.dlarray(np.random.rand(4, 4, 3, 2), "SSCB")
        >>> Y, mu, v = ml.batchnorm(X, np.zeros(3), np.ones(3), nargout=3)
        >>> Y, mu, v = ml.batchnorm(X, np.zeros(3), np.ones(3), mu, v, nargout=3)
    """
    fname = "batchnorm"
    stats, pairs = _split(args, 2)
    if len(stats) == 1:
        raise TypeError(f"{fname}: the running variance must follow the running mean, got "
                        f"only the mean")
    if nargout not in (1, 2, 3) or isinstance(nargout, bool):
        raise ValueError(f"{fname}: nargout must be 1, 2 or 3, got {nargout!r}")
    opts = parse_name_value(fname, pairs, kwargs, _BN_OPTIONS)
    eps = _epsilon(opts, fname)
    decays = [_scalar(opts[n], fname, n, lambda v: 0 <= v <= 1,
                      "a real scalar in the range [0, 1]") if n in opts else 0.1
              for n in ("MeanDecay", "VarianceDecay")]
    Xf, fmt, c = _formatted(X, opts, fname)
    x = Xf._data
    nc = x.shape[c]
    off = _channel_vector(offset, nc, fname, "offset")
    sc = _channel_vector(scaleFactor, nc, fname, "scaleFactor")
    st = [_channel_vector(s, nc, fname, n) for s, n in zip(stats, ("trainedMean",
                                                                  "trainedVariance"))]
    dtype = _ops.compute_dtype(x, off, sc, *st)
    x = x.astype(dtype, copy=False)
    dims = Xf._dims

    if stats and nargout == 1:
        # inference: y = a*x + b with a = scale/sqrt(var + eps), b = offset - mean*a
        mean = st[0].astype(np.float64)
        var = st[1].astype(np.float64)
        invstd = 1.0 / np.sqrt(var + eps)
        a = sc * invstd
        y = _ops_norm.channel_affine(x, c, mean, a, off)

        def backward(dy):
            g = np.asarray(_dy(dy, y.shape, fmt), dtype=dtype)
            dx, sg, sgx = _ops_norm.bn_infer_backward(x, g, c, mean, a)
            return (_dx(X, dx, dims, fmt), _grad_param(offset, sg),
                    _grad_param(scaleFactor, sgx * invstd),
                    _grad_param(stats[0], -sg * a),
                    _grad_param(stats[1], -0.5 * sgx * sc * invstd ** 3)) \
                + (None,) * len(pairs)
        return _out(y, dims, fmt), backward

    return _bn_batch(X, dims, fmt, c, x, dtype, offset, scaleFactor, stats, off, sc, st, eps,
                     decays, nargout, _rectify, len(pairs))


def _bn_batch(X, dims, fmt, c, x, dtype, offset, scaleFactor, stats, off, sc, st, eps,
              decays, nargout, rectify, nextra):
    """``batchnorm`` with the batch statistics for checked operands (x: X's data in the
    computing dtype; off, sc, st: the parameters as vectors; nextra: positional arguments
    after the parameters, whose gradients are None): (outputs, backward)."""
    count = x.size // max(x.shape[c], 1)
    npos = 3 + len(stats)
    y, mu, var, invstd = _ops_norm.bn_train(x, c, off, sc, eps, rectify)
    unbiased = _defaults.get("batchnorm_variance") == "unbiased"
    vfac = count / (count - 1) if unbiased and count > 1 else 1.0
    if stats:
        md, vd = decays
        mu_out = md * mu + (1 - md) * st[0]
        var_out = vd * var * vfac + (1 - vd) * st[1]
    else:
        md = vd = 1.0
        mu_out, var_out = mu, var * vfac
    Y = _out(y, dims, fmt)
    outs = (Y, _param_out(mu_out, offset, dtype), _param_out(var_out, offset, dtype))

    def backward(dy, dmu=None, dvar=None):
        if dy is None:
            g = np.zeros(y.shape, dtype=dtype)
        else:
            g = _dy(dy, y.shape, fmt)
        dx, dscale, doffset = _ops_norm.bn_train_backward(x, g, c, mu, invstd, sc,
                                                          y if rectify else None)
        extra = None
        cs = _cshape(x.ndim, c)
        if dmu is not None:
            extra = np.asarray(dmu, np.float64).reshape(-1) * md / count
            extra = np.broadcast_to(extra.reshape(cs), x.shape)
        if dvar is not None:
            dv = np.asarray(dvar, np.float64).reshape(-1) * vd * vfac
            e2 = (2.0 / count) * dv.reshape(cs) * (x - mu.reshape(cs))
            extra = e2 if extra is None else extra + e2
        if extra is not None:
            dx = (dx + extra).astype(dtype)
        grads = [_dx(X, dx, dims, fmt), _grad_param(offset, doffset),
                 _grad_param(scaleFactor, dscale)]
        if stats:
            grads.append(_grad_param_none(stats[0], None if dmu is None
                                          else (1 - md) * np.asarray(dmu).reshape(-1)))
            grads.append(_grad_param_none(stats[1], None if dvar is None
                                          else (1 - vd) * np.asarray(dvar).reshape(-1)))
        return tuple(grads[:npos]) + (None,) * nextra

    if nargout == 1:
        return Y, lambda dy: backward(dy)
    return outs[:nargout], backward


def _grad_param_none(p, g):
    return None if g is None else _grad_param(p, g)


@operation
def batchnorm_layer(X, offset, scale, mean, var, eps, mean_decay, var_decay, rectify):
    """A ``batchNormalizationLayer``'s training forward (not exported): ``batchnorm(X,
    offset, scale, mean, var, Epsilon=eps, MeanDecay=mean_decay, VarianceDecay=var_decay,
    nargout=3)`` for the layer's parameters (checked when they were set, of its channel
    count) and a formatted X that has a channel dimension (the layer checked it), without
    the option parsing; ``rectify`` as ``batchnorm``'s ``_rectify``.  Data that is not
    float32 computes in float64, as ``batchnorm`` converts it."""
    x, dims = X._data, X._dims
    vec = [(p._data if isinstance(p, dlarray) else p).reshape(-1)
           for p in (offset, scale, mean, var)]
    dtype = _ops.compute_dtype(x, *vec)
    return _bn_batch(X, dims, None, dims.index("C"), x.astype(dtype, copy=False), dtype,
                     offset, scale, (mean, var), vec[0], vec[1], vec[2:], eps,
                     (mean_decay, var_decay), 3, rectify, 4)


# --------------------------------------------------------------------------- per-observation

def _affine_norm(X, offset, scale, axes_of, fname, opts, npairs, group=None,
                 kernel_groups=None):
    """Shared body of layernorm/groupnorm/instancenorm: normalize over ``axes_of(dims)``
    (of the array with the channel axis split into (G, Cg) when ``group`` is given).

    ``kernel_groups(dims, C)`` returns the number of channel groups when the statistics
    are exactly "per observation (every dimension after C) and group of consecutive
    channels, over the group and the S dimensions": then the compiled kernel
    (``_ops_norm.gn``) runs; ``"C"`` when they are over C alone per position (any
    dimensions): ``_ops_norm.cnorm``, in any dense memory order without a copy;
    otherwise (T or U reduced) NumPy."""
    eps = _epsilon(opts, fname)
    Xf, fmt, c = _formatted(X, opts, fname)
    x = Xf._data
    nc = x.shape[c]
    off = _channel_vector(offset, nc, fname, "offset")
    sc = _channel_vector(scale, nc, fname, "scale")
    dtype = _ops.compute_dtype(x, off, sc)
    x = x.astype(dtype, copy=False)
    dims = Xf._dims
    _after_x = (None,) if group is not None else ()
    g = group(nc) if group is not None else None
    kg = kernel_groups(dims, nc, g) if kernel_groups is not None else None
    if kg is not None and x.size:
        if kg == "C":               # over C alone, per position: any memory order
            y, stats = _ops_norm.cnorm(x, c, off, sc, eps)
            kernel_backward = lambda gy: _ops_norm.cnorm_backward(stats, gy, sc)
        else:
            y, mean, invstd = _ops_norm.gn(x, c, kg, off, sc, eps)
            kernel_backward = lambda gy: _ops_norm.gn_backward(x, gy, c, kg, mean, invstd, sc)

        def backward(dy):
            dx, dscale, doffset = kernel_backward(_dy(dy, y.shape, fmt))
            return (_dx(X, dx, dims, fmt),) + _after_x + (
                _grad_param(offset, doffset), _grad_param(scale, dscale)) + (None,) * npairs
        return _out(y, dims, fmt), backward

    if g is not None:
        xs = x.reshape(x.shape[:c] + (g, nc // g) + x.shape[c + 1:])
        sdims = dims[:c] + "GC" + dims[c + 1:]
    else:
        xs, sdims = x, dims
    axes = axes_of(sdims)
    mu, var = _moments(xs, axes)
    invstd = (1.0 / np.sqrt(var + dtype(eps))).astype(dtype)
    xhat = ((xs - mu) * invstd).reshape(x.shape)
    cs = _cshape(x.ndim, c)
    y = (xhat * sc.astype(dtype).reshape(cs) + off.astype(dtype).reshape(cs)).astype(dtype)
    caxes = tuple(i for i in range(x.ndim) if i != c)

    def backward(dy):
        gy = _dy(dy, y.shape, fmt)
        gh = (gy * sc.astype(dtype).reshape(cs)).reshape(xs.shape)
        dx = _norm_backward(gh, xhat.reshape(xs.shape), invstd, axes).reshape(x.shape)
        return (_dx(X, dx.astype(dtype, copy=False), dims, fmt),) + _after_x + (
            _grad_param(offset, gy.sum(axis=caxes, dtype=np.float64)),
            _grad_param(scale, (gy * xhat).sum(axis=caxes, dtype=np.float64))) \
            + (None,) * npairs
    return _out(y, dims, fmt), backward


def _only_batch_after_c(dims):
    return set(dims[dims.index("C") + 1:]) <= {"B"}


_LN_MODES = ("auto", "channel-only", "spatial-channel", "batch-excluded")


@operation
def layernorm(X, offset, scaleFactor, *args, **kwargs):
    """Layer normalization, MATLAB's ``layernorm`` (R2021a; OperationDimension R2023a).

    Statistics per observation, over the dimensions ``OperationDimension`` names:
    ``"channel-only"`` (C, per S position and time step), ``"spatial-channel"`` (S and C,
    per time step), ``"batch-excluded"`` (every dimension but B, the R2021a-R2022b
    behaviour), ``"auto"`` (default: spatial-channel for two or more S dimensions, else
    channel-only) (from MathWorks source).  ``offset``/``scaleFactor`` per channel.

    Other Parameters
    ----------------
    Epsilon : float, default 1e-5
    OperationDimension : str, default "auto"
    DataFormat : str

    Examples
    --------
    MATLAB::

        Y = layernorm(X, offset, scaleFactor, OperationDimension="batch-excluded");

    Python::

        >>> X = ml.dlarray(np.random.rand(3, 4, 2), "CBT")
        >>> Y = ml.layernorm(X, np.zeros(3), np.ones(3))
    """
    fname = "layernorm"
    opts = parse_name_value(fname, args, kwargs, ("Epsilon", "OperationDimension",
                                                  "DataFormat"))
    mode = validatestring(opts.get("OperationDimension", "auto"), _LN_MODES, fname,
                          "OperationDimension")

    def resolved(dims):
        if mode == "auto":
            return "spatial-channel" if dims.count("S") >= 2 else "channel-only"
        return mode

    def axes_of(dims):
        keep = {"channel-only": "SBTU", "spatial-channel": "BTU",
                "batch-excluded": "B"}[resolved(dims)]
        return tuple(i for i, d in enumerate(dims) if d not in keep)

    def kernel_groups(dims, nc, g):
        m = resolved(dims)
        if m == "channel-only":
            return "C"
        ok = m == "spatial-channel" or (m == "batch-excluded" and _only_batch_after_c(dims))
        return 1 if ok else None
    return _affine_norm(X, offset, scaleFactor, axes_of, fname, opts, len(args),
                        kernel_groups=kernel_groups)


@operation
def groupnorm(X, numGroups, offset, scaleFactor, *args, **kwargs):
    """Group normalization, MATLAB's ``groupnorm``.

    Group ``g`` holds channels ``(g-1)*C/G+1 ... g*C/G``; statistics per observation over
    S, T, U and the group's channels (from MathWorks codegen source).  ``numGroups`` is a
    positive integer dividing C, ``"all-channels"`` (one group: layer normalization over
    S, C, T) or ``"channel-wise"`` (C groups: instance normalization).

    Examples
    --------
    MATLAB::

        Y = groupnorm(X, 4, offset, scaleFactor);

    Python::

        >>> X = ml.dlarray(np.random.rand(5, 5, 8, 2), "SSCB")
        >>> Y = ml.groupnorm(X, 4, np.zeros(8), np.ones(8))
    """
    fname = "groupnorm"
    opts = parse_name_value(fname, args, kwargs, ("Epsilon", "DataFormat"))
    if isinstance(numGroups, (str, np.str_)):
        mode = validatestring(numGroups, ("all-channels", "channel-wise"), fname,
                              "numGroups")
        ng = None
    else:
        mode = None
        ng = V.positive_int(numGroups, V.Where(fname, "numGroups"),
                            "a positive integer, 'all-channels' or 'channel-wise'")

    def group(nc):
        if mode == "all-channels":
            return 1
        if mode == "channel-wise":
            return nc
        if nc % ng:
            raise ValueError(f"{fname}: numGroups must divide the number of channels "
                             f"({nc}), got {ng}")
        return ng

    def axes_of(dims):          # dims with the channel axis split into G (groups), C
        return tuple(i for i, d in enumerate(dims) if d not in "GB")

    def kernel_groups(dims, nc, g):
        return g if _only_batch_after_c(dims) else None
    return _affine_norm(X, offset, scaleFactor, axes_of, fname, opts, len(args), group=group,
                        kernel_groups=kernel_groups)


@operation
def instancenorm(X, offset, scaleFactor, *args, **kwargs):
    """Instance normalization, MATLAB's ``instancenorm``: per channel and observation, over
    S, T and U.

    Examples
    --------
    MATLAB::

        Y = instancenorm(X, offset, scaleFactor);

    Python::

        >>> X = ml.dlarray(np.random.rand(5, 5, 3, 2), "SSCB")
        >>> Y = ml.instancenorm(X, np.zeros(3), np.ones(3))
    """
    fname = "instancenorm"
    opts = parse_name_value(fname, args, kwargs, ("Epsilon", "DataFormat"))

    def axes_of(dims):
        return tuple(i for i, d in enumerate(dims) if d not in "CB")

    def kernel_groups(dims, nc, g):
        return nc if _only_batch_after_c(dims) else None
    return _affine_norm(X, offset, scaleFactor, axes_of, fname, opts, len(args),
                        kernel_groups=kernel_groups)


# --------------------------------------------------------------------------- cross-channel

def _window_sum(v, axis, lo, hi):
    """``out[c] = sum(v[max(c-lo,0) : min(c+hi,C-1)+1])`` along ``axis``."""
    n = v.shape[axis]
    cs = np.cumsum(v, axis=axis, dtype=np.float64)
    zero = np.zeros_like(np.take(cs, [0], axis=axis))
    cs = np.concatenate([zero, cs], axis=axis)           # cs[k] = sum v[:k]
    idx = np.arange(n)
    top = np.minimum(idx + hi, n - 1) + 1
    bot = np.maximum(idx - lo, 0)
    return np.take(cs, top, axis=axis) - np.take(cs, bot, axis=axis)


@operation
def crosschannelnorm(X, windowSize, *args, **kwargs):
    """Cross-channel (local response) normalization, MATLAB's ``crosschannelnorm``.

    ``y = x ./ (K + Alpha*ss/windowSize).^Beta`` with ``ss`` the sum of ``x.^2`` over
    channels ``max(c-floor((w-1)/2), 1) ... min(c+ceil((w-1)/2), C)``; the divisor stays
    ``windowSize`` at the edges (from MathWorks source).

    Other Parameters
    ----------------
    Alpha : float, default 1e-4
    Beta : float, default 0.75
    K : float, default 2
    DataFormat : str

    Examples
    --------
    MATLAB::

        Y = crosschannelnorm(X, 5, Alpha=1e-4, Beta=0.75, K=2);

    Python::

        >>> X = ml.dlarray(np.random.rand(4, 4, 8, 2), "SSCB")
        >>> Y = ml.crosschannelnorm(X, 5)
    """
    fname = "crosschannelnorm"
    opts = parse_name_value(fname, args, kwargs, ("Alpha", "Beta", "K", "DataFormat"))
    w = V.positive_int(windowSize, V.Where(fname, "windowSize"))
    alpha = _scalar(opts.get("Alpha", 1e-4), fname, "Alpha", np.isfinite,
                    "a finite real scalar")
    beta = _scalar(opts.get("Beta", 0.75), fname, "Beta", np.isfinite, "a finite real scalar")
    k = _scalar(opts.get("K", 2.0), fname, "K", np.isfinite, "a finite real scalar")
    Xf, fmt, c = _formatted(X, opts, fname)
    x = Xf._data
    dtype = x.dtype
    lo, hi = (w - 1) // 2, w // 2            # floor((w-1)/2), ceil((w-1)/2)
    nc = x.shape[c]

    def wsum(v, before, after, out=None):
        """Window sums along C: ``v[c-before] + ... + v[c+after]`` (clipped); small windows
        as shifted slice additions in place (no cumsum, no gather), in float64 (into
        ``out`` when given).  Wide windows take differences of a running sum, unless v
        has an Inf or NaN, which would reach every later difference (Inf - Inf)."""
        if before + after + 1 > 16 and np.isfinite(v).all():
            r = _window_sum(v, c, before, after)
            if out is None:
                return r
            out[...] = r
            return out
        if out is None:
            out = np.array(v, dtype=np.float64, order="K")
        else:
            out[...] = v

        def sl(a, b):
            return (slice(None),) * c + (slice(a, b),)
        for off in range(1, min(before, nc - 1) + 1):     # out[c] += v[c - off]
            out[sl(off, None)] += v[sl(0, nc - off)]
        for off in range(1, min(after, nc - 1) + 1):      # out[c] += v[c + off]
            out[sl(0, nc - off)] += v[sl(off, None)]
        return out

    # computed in float64, in slabs of the last dimension when it is not C (each output
    # depends on its own position's channels only, so slabs give the same bits), one
    # per thread: numpy's ufuncs release the GIL
    d = np.empty_like(x, dtype=np.float64)
    p = np.empty_like(x, dtype=np.float64)
    y = np.empty_like(x)

    def forward_slab(sl):
        xs = x[sl]
        xd = xs.astype(np.float64)
        ds = wsum(np.square(xd, out=xd), lo, hi, out=d[sl])
        ds *= alpha / w
        ds += k                                  # k + alpha*ss/w
        np.power(ds, -beta, out=p[sl])
        np.multiply(xs, p[sl], out=y[sl], casting="same_kind")
    _in_slabs(forward_slab, x, c)
    dims = Xf._dims

    def backward(dy):
        g = _dy(dy, y.shape, fmt)
        dx = np.empty_like(x)

        def backward_slab(sl):
            gs, xs, ps = g[sl].astype(np.float64), x[sl], p[sl]
            u = gs * xs * (-beta) * ps / d[sl] * (alpha / w)   # dL/dss per channel c
            dx[sl] = gs * ps + 2 * xs * wsum(u, hi, lo)        # adjoint window: lo, hi swapped
        _in_slabs(backward_slab, x, c)
        return (_dx(X, dx, dims, fmt), None) + (None,) * len(args)
    return _out(y, dims, fmt), backward


_executor = {}                  # process id -> its ThreadPoolExecutor


def _in_slabs(fn, x, c):
    """``fn(index)`` over slabs of x's last dimension (unless it is ``c``), on up to
    ``ml.threads`` Python threads for large x; NaN and Inf propagate as the arithmetic
    says (Inf * 0 is NaN), without warnings (errstate is per thread)."""
    def run(sl):
        with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
            fn(sl)
    ax = x.ndim - 1
    n = x.shape[ax] if ax != c else 1
    parts = min(_ops.get_num_threads(), n) if x.size >= _PARALLEL_SLABS else 1
    if parts <= 1:
        return run(Ellipsis)
    cuts = [n * i // parts for i in range(parts + 1)]
    slabs = [(slice(None),) * ax + (slice(a, b),) for a, b in zip(cuts[:-1], cuts[1:])]
    # (keyed by process: a forked child inherits the executor but not its threads)
    pid = os.getpid()
    if pid not in _executor:
        _executor.clear()
        _executor[pid] = concurrent.futures.ThreadPoolExecutor(os.cpu_count() or 1)
    list(_executor[pid].map(run, slabs))


#: elements from which crosschannelnorm computes in slabs on several threads
_PARALLEL_SLABS = 1 << 16


# --------------------------------------------------------------------------- traced backward
# The rules of EnableHigherDerivatives (``_autodiff.rule``): each normalization recomputed
# with dlarray operations (on unformatted copies of the data in canonical order, moved by
# element positions) and differentiated in the direction of dL/dY
# (``_autodiff.composite_gradients``).

def _canonical(X, opts, fname):
    """(positions of X's elements in canonical order, its dims, DataFormat or None)."""
    pos = dlarray._from_canonical(np.arange(np.size(X._data), dtype=np.float64).reshape(
        np.shape(X._data)), X._dims)
    Xf, fmt, _ = _formatted(pos, opts, fname)
    return Xf._data.astype(np.intp), Xf._dims, fmt


def _vector_of(p, shape):
    """A per-channel parameter as an unformatted array of ``shape`` (traced if p is)."""
    from .mathfun import take
    if isinstance(p, dlarray):
        return take(p, np.arange(p._data.size), shape, "")
    return np.asarray(p, dtype=np.float64).reshape(shape)


def _normalized(X, offset, scale, opts, fname, axes_of, groups=None, stats=None,
                Y=None):
    """``scale .* (x - mu) ./ sqrt(var + Epsilon) + offset`` of X's data in dlarray
    operations, laid out as ``Y``'s data: ``mu``/``var`` over ``axes_of(dims)`` (of the
    channel axis split into ``groups`` groups when given), or ``stats`` = (mean,
    variance) per channel."""
    from .mathfun import cast, mean, sqrt, take
    eps = _epsilon(opts, fname)
    pos, dims, fmt = _canonical(X, opts, fname)
    c = dims.index("C")
    nc = pos.shape[c]
    cs = _cshape(pos.ndim, c)
    cs = tuple(nc if v == -1 else v for v in cs)
    # (in the precision the operation computes in: mixed single and double data in double)
    dtype = _ops.compute_dtype(*(np.asarray(p._data if isinstance(p, dlarray) else p)
                                 for p in (X, offset, scale) + tuple(stats or ())))

    def vector(p):
        v = _vector_of(p, cs)
        return cast(v, dtype) if isinstance(v, dlarray) else v.astype(dtype)
    x = cast(take(X, pos.reshape(-1), pos.shape, ""), dtype)
    if stats is not None:
        mu, var = (vector(v) for v in stats)
        xs = x
    else:
        sdims = dims
        if groups is not None:
            g = groups(nc)
            sshape = pos.shape[:c] + (g, nc // g) + pos.shape[c + 1:]
            xs = take(x, np.arange(pos.size), sshape, "")
            sdims = dims[:c] + "GC" + dims[c + 1:]
        else:
            xs = x
        axes = [a + 1 for a in axes_of(sdims)]
        mu = mean(xs, axes)
        d = xs - mu
        var = mean(d * d, axes)
    xhat = (xs - mu) / sqrt(var + eps)
    if xs is not x:
        xhat = take(xhat, np.arange(pos.size), pos.shape, "")
    y = xhat * vector(scale) + vector(offset)
    # Y's stored elements: canonical positions laid out as the operation returns them
    ypos = _out(np.arange(pos.size, dtype=np.float64).reshape(pos.shape), dims,
                None if fmt is None else fmt)._data.astype(np.intp)
    return take(y, ypos.reshape(-1), Y._data.shape, Y._dims)


def _norm_rule(fname, axes_of, groups=None, leading=0):
    """The rule of layernorm / groupnorm / instancenorm (``leading`` inputs before
    offset and scale after X: groupnorm's numGroups)."""
    def norm_rule(g, Y, X, *rest, **kwargs):
        lead, (offset, scale), args = rest[:leading], rest[leading:leading + 2], \
            rest[leading + 2:]
        opts = parse_name_value(fname, args, kwargs, _NORM_OPTIONS[fname])
        grads = composite_gradients(
            lambda X, offset, scale: _normalized(
                X, offset, scale, opts, fname, axes_of(opts, lead),
                None if groups is None else groups(lead), Y=Y), (X, offset, scale), g)
        return (grads[0],) + (None,) * leading + grads[1:] + (None,) * len(args)
    return norm_rule


_NORM_OPTIONS = {"layernorm": ("Epsilon", "OperationDimension", "DataFormat"),
                 "groupnorm": ("Epsilon", "DataFormat"),
                 "instancenorm": ("Epsilon", "DataFormat")}


def _layernorm_axes(opts, lead):
    mode = validatestring(opts.get("OperationDimension", "auto"), _LN_MODES, "layernorm",
                          "OperationDimension")

    def axes_of(dims):
        m = mode if mode != "auto" else ("spatial-channel" if dims.count("S") >= 2
                                         else "channel-only")
        keep = {"channel-only": "SBTU", "spatial-channel": "BTU", "batch-excluded": "B"}[m]
        return tuple(i for i, d in enumerate(dims) if d not in keep)
    return axes_of


def _groups_of(lead):
    numGroups = lead[0]

    def groups(nc):
        if isinstance(numGroups, (str, np.str_)):
            return 1 if numGroups.lower().startswith("a") else nc
        return int(numGroups)
    return groups


rule(layernorm)(_norm_rule("layernorm", _layernorm_axes))
rule(groupnorm)(_norm_rule(
    "groupnorm", lambda opts, lead: lambda dims: tuple(
        i for i, d in enumerate(dims) if d not in "GB"), groups=_groups_of, leading=1))
rule(instancenorm)(_norm_rule(
    "instancenorm", lambda opts, lead: lambda dims: tuple(
        i for i, d in enumerate(dims) if d not in "CB")))


def _batch_axes(dims):
    return tuple(i for i, d in enumerate(dims) if d != "C")


@rule(batchnorm)
def _(g, Y, X, offset, scaleFactor, *args, nargout=1, _rectify=False, **kwargs):
    stats, pairs = _split(args, 2)
    opts = parse_name_value("batchnorm", pairs, kwargs, _BN_OPTIONS)
    if nargout != 1:
        if any(v is not None for v in g[1:]):
            raise ValueError("dlgradient: EnableHigherDerivatives is not supported through "
                             "batchnorm's returned statistics")
        g, Y = g[0], Y[0]
    infer = bool(stats) and nargout == 1
    grads = _bn_rule(g, Y, X, offset, scaleFactor, opts, tuple(stats) if infer else (),
                     _rectify)
    return grads + (None,) * (3 + len(args) - len(grads))


@rule(batchnorm_layer)
def _(g, Y, X, offset, scale, mean, var, eps, mean_decay, var_decay, rectify):
    if any(v is not None for v in g[1:]):
        raise ValueError("dlgradient: EnableHigherDerivatives is not supported through "
                         "a batch normalization layer's running statistics")
    return _bn_rule(g[0], Y[0], X, offset, scale, {"Epsilon": eps}, (), rectify) \
        + (None,) * 6


def _bn_rule(g, Y, X, offset, scale, opts, stats, rectify):
    """dL/dX, dL/doffset, dL/dscale (and dL/d``stats``, the given mean and variance of
    inference) (traced) of a batch normalization; ``rectify``: the ReLU after it (its
    mask, from the result)."""
    if rectify:
        g = g * (Y._data > 0)
    return composite_gradients(
        lambda X, offset, scale, *st: _normalized(X, offset, scale, opts, "batchnorm",
                                                  _batch_axes, stats=st or None, Y=Y),
        (X, offset, scale) + tuple(stats), g)


@rule(crosschannelnorm)
def _(g, Y, X, windowSize, *args, **kwargs):
    from .mathfun import put, take
    fname = "crosschannelnorm"
    opts = parse_name_value(fname, args, kwargs, ("Alpha", "Beta", "K", "DataFormat"))
    w = int(windowSize)
    alpha, beta, k = (float(opts.get(n, v)) for n, v in (("Alpha", 1e-4), ("Beta", 0.75),
                                                         ("K", 2.0)))
    pos, dims, fmt = _canonical(X, opts, fname)
    c = dims.index("C")
    lo, hi = (w - 1) // 2, w // 2
    # the window sums as a gather and scatter-add of element positions: every pair
    # (channel, channel of its window) at every other index
    idx = np.arange(pos.size).reshape(pos.shape)
    src, dst = [], []
    for off in range(-lo, hi + 1):
        n = pos.shape[c] - abs(off)
        if n <= 0:
            continue
        a = np.take(idx, np.arange(max(0, -off), max(0, -off) + n), axis=c)  # outputs
        b = np.take(idx, np.arange(max(0, off), max(0, off) + n), axis=c)    # window
        dst.append(a.reshape(-1))
        src.append(b.reshape(-1))
    src, dst = np.concatenate(src), np.concatenate(dst)
    ypos = _out(np.arange(pos.size, dtype=np.float64).reshape(pos.shape), dims,
                fmt)._data.astype(np.intp)

    def recomputed(X):
        x = take(X, pos.reshape(-1), pos.shape, "")
        ss = put(take(x * x, src, (src.size,), ""), dst, pos.shape, "")
        y = x / (k + (alpha / w) * ss) ** beta
        return take(y, ypos.reshape(-1), Y._data.shape, Y._dims)
    return composite_gradients(recomputed, (X,), g) + (None,) * (1 + len(args))
