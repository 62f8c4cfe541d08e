"""MATLAB's functional convolutions: ``dlconv`` and ``dltranspconv`` (MATLAB_SEMANTICS §4).

Both convolve over the ``S`` dimensions of ``X`` (and over ``T`` when the weights have a
``T`` dimension), fold any other ``T`` into the observations, and return ``X``'s format.
Grouping is read from the weights, as MATLAB does: one trailing dimension more than the
ungrouped layout means grouped weights.

    dlconv       weights  F.. x C x NF          grouped  F.. x Cg x Fg x G
    dltranspconv weights  F.. x NF x C          grouped  F.. x Fg x Cg x G   (filters first)
"""

__all__ = ["dlconv", "dltranspconv"]
import math

import numpy as np

from .. import _ops
from .._autodiff import input_needed, operation, rule
from .. import _validate as V
from .._display import format_size, times
from .._options import parse_name_value, validatestring
from ..dlarray import as_formatted, dlarray
from ._dataformat import finish, input_grad, output_grad
from .mathfun import scatter_back
from ..layers._conv_family import fold, same_cropping, same_padding

_DLCONV_OPTIONS = ("Stride", "DilationFactor", "Padding", "PaddingValue", "DataFormat",
                   "WeightsFormat")
_DLTRANSPCONV_OPTIONS = ("Stride", "DilationFactor", "Cropping", "DataFormat",
                         "WeightsFormat")


# --------------------------------------------------------------------------- weights

def _formatted_weights(weights, weights_format, fname):
    """(data, labels) of formatted weights, or (data, None) for unformatted ones."""
    if isinstance(weights, dlarray) and weights.dims:
        if weights_format is not None:
            raise ValueError(f"{fname}: WeightsFormat must not be given for formatted "
                             f"weights (dims '{weights.dims}'), got {weights_format!r}")
        return weights.data, weights.dims
    data = weights.data if isinstance(weights, dlarray) else weights
    if weights_format is None or weights_format == "":
        return _as_float(data, fname, "weights"), None
    try:
        w = dlarray(data, weights_format)
    except (TypeError, ValueError) as exc:
        msg = str(exc).split(": ", 1)[-1].replace("fmt", "WeightsFormat", 1)
        raise type(exc)(f"{fname}: {msg}") from None
    return w.data, w.dims


def _as_float(a, fname, argname):
    arr = V.real_array(a, V.Where(fname, argname),
                       "a real float32 or float64 array (MATLAB single or double)")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)        # MATLAB literals are double
    return arr


def _weights_layout(weights, weights_format, X, fname):
    """Weights as ``F1..Fd x A x B x G`` (d conv dims) and whether T is a conv dim.

    Formatted weights (``'SSCU'``, ``'SSCUU'``, ``'TCU'``): the S and T dims are the
    filter dims, C and the U dims the rest in order.  Weights with fewer S dims than X get
    singleton S dims.  Unformatted weights have one dim per S dim of X.
    """
    data, labels = _formatted_weights(weights, weights_format, fname)
    ns = X.dims.count("S")
    if labels is None:
        if ns == 0:
            raise ValueError(f"{fname}: X must have a spatial (S) dimension, or the weights "
                             f"a T dimension (WeightsFormat), to convolve over, got "
                             f"'{X.dims}'")
        shape = data.shape
        while len(shape) > ns + 3 and shape[-1] == 1:
            shape = shape[:-1]
        if len(shape) > ns + 3:
            raise ValueError(f"{fname}: weights must have {ns} filter dimensions (one per S "
                             f"dimension of X) and 2 or 3 more, got size "
                             f"{format_size(data.shape)}")
        shape = shape + (1,) * (ns + 3 - len(shape))
        return data.reshape(shape, order="A"), False
    if "B" in labels or labels.count("C") != 1 or labels.count("T") > 1 \
            or labels.count("U") > 2:
        raise ValueError(f"{fname}: the weights format must have S or T filter dimensions, "
                         f"one C and at most two U dimensions, got '{labels}'")
    ws, has_t = labels.count("S"), "T" in labels
    if ws > ns:
        raise ValueError(f"{fname}: the weights have {ws} S dimensions but X has {ns} "
                         f"('{X.dims}')")
    if has_t and "T" not in X.dims:
        raise ValueError(f"{fname}: the weights have a T dimension but X ('{X.dims}') has "
                         f"none to convolve over")
    if ns + has_t == 0:
        raise ValueError(f"{fname}: X must have an S or T dimension to convolve over, got "
                         f"'{X.dims}'")
    # canonical order S.., C, T, U..  ->  S.., (singleton S..), T, C, U..
    pos = {lab: [i for i, c in enumerate(labels) if c == lab] for lab in "SCTU"}
    perm = pos["S"] + pos["T"] + pos["C"] + pos["U"]
    w = data.transpose(perm)
    shape = w.shape[:ws] + (1,) * (ns - ws) + w.shape[ws:]
    d = ns + has_t
    shape = shape + (1,) * (d + 3 - len(shape))
    return w.reshape(shape, order="A"), has_t


def _bias(bias, cout, fname):
    b = bias.data if isinstance(bias, dlarray) else bias
    b = _as_float(b, fname, "bias")
    if b.size == 1:
        return np.full(cout, b.reshape(-1)[0], dtype=b.dtype)
    return b                               # _ops checks that it has cout elements


# --------------------------------------------------------------------------- padding

def _pad_pairs(value, d, fname, argname, modes):
    """A mode string, or (before, after) tuples from MATLAB's numeric forms.

    dlconv's forms (a scalar, a per-dimension vector, a 2×d ``[before; after]`` matrix)
    and, as API.md asks, the layers' forms (1-D ``[l r]``, 2-D ``[t b l r]``).
    """
    where = V.Where(fname, argname)
    if isinstance(value, (str, np.str_)):
        return validatestring(value, modes, fname, argname)
    constraint = (" or ".join(f"'{m}'" for m in modes) + ", a nonnegative integer, a "
                  f"vector of {d} nonnegative integers or a 2{times()}{d} matrix "
                  "[before; after]")
    a = V.real_array(value, where, constraint)
    flat = V.integers(a.reshape(-1), where, constraint, value, 0)
    if a.ndim == 2 and a.shape == (2, d):
        return tuple(int(v) for v in flat[:d]), tuple(int(v) for v in flat[d:])
    if a.ndim > 2 or (a.ndim == 2 and a.shape[0] != 1):
        raise where.error(constraint, value)
    if a.size == 1:
        return (int(flat[0]),) * d, (int(flat[0]),) * d
    if a.size == d:
        return tuple(int(v) for v in flat), tuple(int(v) for v in flat)
    if a.size == 2 * d and d in (1, 2):
        return V.before_after(flat, d)
    raise where.error(constraint, value)


def _setup(fname, X, weights, args, kwargs, options):
    """What dlconv and dltranspconv share: options, input, weights and geometry.

    Returns (opts, formatted X, weights, d, stride, dilation, feff, x for _ops, restore(y)).
    """
    opts = parse_name_value(fname, args, kwargs, options)
    Xf = as_formatted(X, opts.get("DataFormat"), fname)
    if "C" not in Xf.dims or "U" in Xf.dims:
        raise ValueError(f"{fname}: X must have a C dimension and no U dimension, got "
                         f"'{Xf.dims}'")
    w, t_conv = _weights_layout(weights, opts.get("WeightsFormat"), Xf, fname)
    d = Xf.dims.count("S") + t_conv
    stride, dil, feff = _geometry(w, d, opts, fname)
    x, restore = fold(Xf, d)
    return opts, Xf, w, d, stride, dil, feff, x, restore


def _geometry(w, d, opts, fname):
    f = w.shape[:d]
    stride = _ops.int_vector(opts.get("Stride", 1), d, fname, "Stride", 1)
    dil = _ops.int_vector(opts.get("DilationFactor", 1), d, fname, "DilationFactor", 1)
    feff = tuple((fi - 1) * di + 1 for fi, di in zip(f, dil))
    return stride, dil, feff


# --------------------------------------------------------------------------- gradients
# The backward passes are the engine's adjoint and weight gradient (_ops.conv_backward,
# _ops.conv_transpose_backward); what remains here is undoing the relabelling that
# dlconv did on the way in: folding T, the weights' layout, the bias's shape.

def _grad_weights(weights, opts, Xf, fname, dw, w_shape):
    """dL/dweights in the weights' own shape and order.

    The weights reach the engine through a pure relabelling (_weights_layout: trailing
    singletons, a permutation for formatted weights, merged group dimensions), so the
    gradient goes back through the same relabelling (scatter_back).
    """
    if not isinstance(weights, dlarray):
        return None
    src = weights.data

    def layout(a):
        w, _ = _weights_layout(dlarray._from_canonical(a, weights.dims),
                               opts.get("WeightsFormat"), Xf, fname)
        return w.reshape(w_shape, order="F")
    return scatter_back(np.asarray(dw).reshape(w_shape, order="F"), src.shape,
                        layout).astype(src.dtype, copy=False)


def _grad_bias(bias, db):
    if not isinstance(bias, dlarray):
        return None
    b = bias.data
    if b.size == 1:
        return np.full(b.shape, db.sum(), dtype=b.dtype)
    return db.astype(b.dtype).reshape(b.shape, order="F")


def _pad_adjoint(g, shape, before, after, padding_value):
    """Adjoint of _ops._padded: each padded cell's gradient goes back to its source."""
    mode = {"symmetric-include-edge": "symmetric", "symmetric-exclude-edge": "reflect",
            "replicate": "edge"}.get(padding_value) if isinstance(padding_value, str) else None
    for i, (b, a) in enumerate(zip(before, after)):
        n = shape[i]
        if mode is None:
            g = np.take(g, np.arange(b, b + n), axis=i)
            continue
        src = np.pad(np.arange(n), (b, a), mode=mode)
        out = np.zeros(g.shape[:i] + (n,) + g.shape[i + 1:], dtype=g.dtype)
        np.add.at(out, (slice(None),) * i + (src,), g)
        g = out
    return g


# --------------------------------------------------------------------------- public

@operation
def dlconv(X, weights, bias, *args, **kwargs):
    """Deep learning convolution, MATLAB's ``dlconv``.

    Parameters
    ----------
    X : dlarray
        Formatted input (or unformatted data with ``DataFormat``), e.g. ``'SSCB'``.
    weights : array_like or dlarray
        ``F.. x C x NF`` (ungrouped) or ``F.. x Cg x Fg x G`` (grouped), MATLAB order; or a
        formatted dlarray / ``WeightsFormat`` (``'SSCU'``, ``'SSCUU'``, ``'TCU'``).
    bias : scalar or array_like
        ``0``, a scalar for every channel, or one value per output channel (``Fg*G``).

    Other Parameters
    ----------------
    Stride, DilationFactor : int or sequence, default 1
        Per convolution dimension.
    Padding : default 0
        ``'same'``, ``'causal'`` (one convolution dimension only), a nonnegative integer,
        a vector with one value per dimension (symmetric), a 2-by-d ``[before; after]``
        matrix, or the layer forms ``[l r]`` (1-D) / ``[t b l r]`` (2-D).  Numeric
        padding must be smaller than the (dilated) filter size.
    PaddingValue : default 0
        A scalar, ``'symmetric-include-edge'``, ``'symmetric-exclude-edge'`` or
        ``'replicate'``.
    DataFormat, WeightsFormat : str
        Labels of unformatted ``X`` / weights.

    Returns
    -------
    dlarray
        ``X``'s format (unformatted, in ``DataFormat`` order, for unformatted ``X``).

    Examples
    --------
    MATLAB::

        Y = dlconv(X, weights, bias, 'Stride', 2, 'Padding', 'same');

    Python::

        >>> X = ml.dlarray(np.random.rand(28, 28, 3, 16), "SSCB")
        >>> Y = ml.dlconv(X, np.random.rand(3, 3, 3, 8), 0, Stride=2, Padding="same")
        >>> Y.dims, Y.shape
        ('SSCB', (14, 14, 8, 16))
    """
    fname = "dlconv"
    opts, Xf, w, d, stride, dil, feff, x, restore = _setup(fname, X, weights, args, kwargs,
                                                           _DLCONV_OPTIONS)
    pads = _pad_pairs(opts.get("Padding", 0), d, fname, "Padding", ("same", "causal"))
    if pads == "same":
        before, after = same_padding(x.shape[:d], stride, feff)
    elif pads == "causal":
        if d != 1:
            raise ValueError(f"{fname}: Padding 'causal' needs exactly one convolution "
                             f"dimension, got {d}")
        before, after = [feff[0] - 1], [0]
    else:
        before, after = pads
        for i, (b, a, fe) in enumerate(zip(before, after, feff)):
            if max(b, a) >= fe:
                raise ValueError(f"{fname}: Padding must be smaller than the filter size "
                                 f"({fe} with dilation) along dimension {i + 1}, got "
                                 f"{max(b, a)}")
    pv = V.padding_value(opts.get("PaddingValue", 0), V.Where(fname, "PaddingValue"))
    df = opts.get("DataFormat") or None
    g = w.shape[d + 2]
    cout = w.shape[d + 1] * g
    w_ops = w.reshape(w.shape[:d + 1] + (cout,), order="F")      # Cg x (Fg*G), free
    b = _bias(bias, cout, fname)
    y = _ops.conv(x, w_ops, b, stride=stride, dilation=dil,
                  padding=np.array([before, after]), groups=g, padding_value=pv,
                  fname=fname)

    def backward(dy):
        Y = restore(y)
        dy = fold(dlarray._from_canonical(output_grad(dy, Y.shape, df, fname), Y.dims), d)[0]
        need = input_needed(0)      # (not for a network's data: its first convolution)
        if isinstance(pv, str) or pv != 0:
            # constant or mirrored padding: differentiate through the explicit pad
            xp = _ops._padded(x, d, before, after, pv, fname)
            dxp, dw, db = _ops.conv_backward(xp, w_ops, dy, stride, dil, 0, g, fname, need)
            dx = _pad_adjoint(dxp, x.shape, before, after, pv) if need else None
        else:
            dx, dw, db = _ops.conv_backward(x, w_ops, dy, stride, dil,
                                            np.array([before, after]), g, fname, need)
        return (None if dx is None else input_grad(X, restore(dx).data, Xf.dims, df),
                _grad_weights(weights, opts, Xf, fname, dw, w.shape),
                _grad_bias(bias, db)) + (None,) * len(args)
    return finish(restore(y), df), backward


@operation
def conv_layer(X, weights, bias, plan, nd, stride, dilation, padding, groups):
    """``dlconv`` as a convolution layer runs it inside ``dlfeval`` (not exported): X
    formatted with ``nd`` S dimensions (T, if any, folded with B), the layer's weights
    (``F.. x Cg x Fg [x G]``, traced or not) and bias, and the geometry the layer checked
    when it made ``plan`` (an ``_ops.Plan`` for the folded input, or None): no options to
    parse, the same numbers and gradients as ``dlconv``."""
    fname = "dlconv"
    x, restore = fold(X, nd)
    w = weights.data if isinstance(weights, dlarray) else weights
    b = bias.data if isinstance(bias, dlarray) else bias
    w_ops = w.reshape(w.shape[:nd + 1] + (-1,), order="F")        # Cg x (Fg*G), free
    y = plan(x, w_ops, b) if plan is not None else None
    if y is None:
        y = _ops.conv(x, w_ops, b, stride, dilation, padding, groups, fname=fname)
    Y = restore(y)

    def backward(dy):
        dy = fold(dlarray._from_canonical(output_grad(dy, Y.shape, None, fname), Y.dims),
                  nd)[0]
        need = input_needed(0)
        grads = plan.backward(x, w_ops, dy, need) if plan is not None else None
        dx, dw, db = grads or _ops.conv_backward(x, w_ops, dy, stride, dilation, padding,
                                                 groups, fname, need)
        return (None if dx is None else input_grad(X, restore(dx).data, X.dims, None),
                None if not isinstance(weights, dlarray)
                else dw.reshape(w.shape, order="F").astype(w.dtype, copy=False),
                _grad_bias(bias, db)) + (None,) * 6
    return Y, backward


@operation
def dltranspconv(X, weights, bias, *args, **kwargs):
    """Deep learning transposed convolution, MATLAB's ``dltranspconv``.

    Parameters
    ----------
    X : dlarray
        Formatted input (or unformatted data with ``DataFormat``).
    weights : array_like or dlarray
        ``F.. x NF x C`` (ungrouped; filters **before** channels) or ``F.. x Fg x Cg x G``
        (grouped); or formatted (``'SSCU'`` with the filters in the C dimension).
    bias : scalar or array_like
        ``0``, a scalar, or one value per output channel.

    Other Parameters
    ----------------
    Stride, DilationFactor : int or sequence, default 1
    Cropping : default 0
        ``'same'`` (output ``Stride*in``; the extra crop at the end, and trailing
        bias-only outputs when the filter is shorter than the stride), a nonnegative
        integer, a per-dimension vector, a 2-by-d ``[before; after]`` matrix, or the layer
        forms ``[l r]`` / ``[t b l r]``.
    DataFormat, WeightsFormat : str

    Examples
    --------
    MATLAB::

        Y = dltranspconv(X, weights, bias, 'Stride', 2, 'Cropping', 1);

    Python::

        >>> X = ml.dlarray(np.random.rand(7, 7, 8, 2), "SSCB")
        >>> Y = ml.dltranspconv(X, np.random.rand(4, 4, 3, 8), 0, Stride=2, Cropping=1)
        >>> Y.shape
        (14, 14, 3, 2)
    """
    fname = "dltranspconv"
    opts, Xf, w, d, stride, dil, feff, x, restore = _setup(fname, X, weights, args, kwargs,
                                                           _DLTRANSPCONV_OPTIONS)
    crops = _pad_pairs(opts.get("Cropping", 0), d, fname, "Cropping", ("same",))
    df = opts.get("DataFormat") or None
    offset = (0,) * d
    if crops == "same":
        # §3.5 with the dilated filter (inferred): crop Feff - S, or S - Feff bias-only.
        before, after, offset = same_cropping(feff, stride)
    else:
        before, after = crops
    g = w.shape[d + 2]
    fg = w.shape[d]
    cout = fg * g
    w_ops = w.reshape(w.shape[:d + 1] + (w.shape[d + 1] * g,), order="F")   # Fg x (Cg*G)
    crop = np.array([before, after])
    y = _ops.conv_transpose(x, w_ops, _bias(bias, cout, fname), stride=stride,
                            dilation=dil, cropping=crop, groups=g, offset=offset, fname=fname)

    def backward(dy):
        Y = restore(y)
        dy = fold(dlarray._from_canonical(output_grad(dy, Y.shape, df, fname), Y.dims), d)[0]
        dx, dw, db = _ops.conv_transpose_backward(x, w_ops, dy, stride, dil, crop, g, offset,
                                                  fname, input_needed(0))
        return (None if dx is None else input_grad(X, restore(dx).data, Xf.dims, df),
                _grad_weights(weights, opts, Xf, fname, dw, w.shape),
                _grad_bias(bias, db)) + (None,) * len(args)
    return finish(restore(y), df), backward


# --------------------------------------------------------------------------- traced backward
# The rules of EnableHigherDerivatives (``_autodiff.rule``).  A convolution is bilinear in
# X and the weights, so its derivatives are three operations on the folded data (X as
# ``S.. x C x N``, weights as ``F.. x Cg x (Fg*G)``, unformatted dlarrays): the convolution,
# its adjoint in X (dL/dX from dL/dY) and its weight gradient, each of which has the other
# two as its derivatives.  The relabelling between a layer's data and the folded arrays
# moves elements only (mathfun.take / put of element positions).

class _Geometry:
    """A convolution's geometry (a transposed one's: ``offset`` its trailing bias-only
    positions), for the three operations below."""

    def __init__(self, stride, dilation, before, after, groups, transposed=False,
                 offset=None):
        self.stride, self.dilation, self.groups = stride, dilation, groups
        self.padding = np.array([before, after])
        self.transposed, self.offset = transposed, offset

    def conv(self, x, w):
        if self.transposed:
            return _ops.conv_transpose(x, w, None, self.stride, self.dilation, self.padding,
                                       self.groups, self.offset)
        return _ops.conv(x, w, None, self.stride, self.dilation, self.padding, self.groups)

    def grads(self, x, w, dy, need_dx):
        if self.transposed:
            return _ops.conv_transpose_backward(x, w, dy, self.stride, self.dilation,
                                                self.padding, self.groups, self.offset,
                                                need_dx=need_dx)
        return _ops.conv_backward(x, w, dy, self.stride, self.dilation, self.padding,
                                  self.groups, need_dx=need_dx)

    def adjoint(self, dy, w, x_shape):
        return self.grads(np.zeros(x_shape, dy.dtype), w, dy, True)[0]

    def weight_grad(self, x, dy, w_shape):
        return self.grads(x, np.zeros(w_shape, x.dtype), dy, False)[1]


def _plain(a):
    return dlarray._from_canonical(np.asarray(a), "")


@operation
def _conv_plain(X, W, geo):
    y = geo.conv(X._data, W._data)
    return _plain(y), lambda g: geo.grads(X._data, W._data, np.asarray(g), True)[:2] + (None,)


@operation
def _conv_adjoint(G, W, geo, x_shape):
    def backward(h):
        h = np.asarray(h)
        return geo.conv(h, W._data), geo.weight_grad(h, G._data, W._data.shape), None, None
    return _plain(geo.adjoint(G._data, W._data, x_shape)), backward


@operation
def _conv_weight_grad(X, G, geo, w_shape):
    def backward(h):
        h = np.asarray(h)
        return (geo.adjoint(G._data, h, X._data.shape), geo.conv(X._data, h), None, None)
    return _plain(geo.weight_grad(X._data, G._data, w_shape)), backward


rule(_conv_plain)(lambda g, Y, X, W, geo: (
    _conv_adjoint(g, W, geo, X._data.shape), _conv_weight_grad(X, g, geo, W._data.shape),
    None))
rule(_conv_adjoint)(lambda h, Y, G, W, geo, x_shape: (
    _conv_plain(h, W, geo), _conv_weight_grad(h, G, geo, W._data.shape), None, None))
rule(_conv_weight_grad)(lambda h, Y, X, G, geo, w_shape: (
    _conv_adjoint(G, h, geo, X._data.shape), _conv_plain(X, h, geo), None, None))


def _positions(shape):
    return np.arange(math.prod(shape), dtype=np.float64).reshape(shape)


def _conv_rule(g, X, weights, bias, geo, x_pos, w_pos, g_pos):
    """dL/dX, dL/dW, dL/db (traced) of a convolution whose folded operands are X's
    elements at ``x_pos`` and the weights' at ``w_pos`` (position arrays of the folded
    shapes) and whose folded dL/dY is g's elements at ``g_pos``."""
    from .mathfun import put, sum as dlsum, take

    def folded(a, pos):
        index = pos.reshape(-1).astype(np.intp)
        if isinstance(a, dlarray):
            return take(a, index, pos.shape, "")
        return _plain(np.asarray(a).reshape(-1)[index].reshape(pos.shape))
    Xf, Wf = folded(X, x_pos), folded(weights, w_pos)
    Gf = take(g, g_pos.reshape(-1).astype(np.intp), g_pos.shape, "")
    dX = dW = dB = None
    if isinstance(X, dlarray) and input_needed(0):
        dX = put(_conv_adjoint(Gf, Wf, geo, x_pos.shape),
                 x_pos.reshape(-1).astype(np.intp), X._data.shape, X._dims)
    if isinstance(weights, dlarray) and input_needed(1):
        dW = put(_conv_weight_grad(Xf, Gf, geo, w_pos.shape),
                 w_pos.reshape(-1).astype(np.intp), weights._data.shape, weights._dims)
    if isinstance(bias, dlarray) and input_needed(2):
        nd = x_pos.ndim - 2
        per_channel = dlsum(Gf, [k + 1 for k in range(nd)] + [nd + 2])
        n = bias._data.size
        s = per_channel if n > 1 else dlsum(per_channel, "all")
        dB = take(s, np.arange(n), bias._data.shape, bias._dims)
    return dX, dW, dB


@rule(conv_layer)
def _(g, Y, X, weights, bias, plan, nd, stride, dilation, padding, groups):
    x_pos, _ = fold(dlarray._from_canonical(_positions(X._data.shape), X._dims), nd)
    wd = weights._data if isinstance(weights, dlarray) else np.asarray(weights)
    w_pos = _positions(wd.shape).reshape(wd.shape[:nd + 1] + (-1,), order="F")
    g_pos, _ = fold(dlarray._from_canonical(_positions(Y._data.shape), Y._dims), nd)
    pads = np.asarray(padding).reshape(2, -1)
    geo = _Geometry(stride, dilation, tuple(pads[0]), tuple(pads[1]), groups)
    return _conv_rule(g, X, weights, bias, geo, x_pos, w_pos, g_pos) + (None,) * 6


def _functional_rule(fname, options, g, Y, X, weights, bias, args, kwargs):
    """dlconv's or dltranspconv's rule: their geometry parsed again, on element positions."""
    pos_X = dlarray._from_canonical(_positions(np.shape(X._data if isinstance(X, dlarray)
                                                        else X)), getattr(X, "_dims", ""))
    wd = weights._data if isinstance(weights, dlarray) else np.asarray(weights)
    pos_W = dlarray._from_canonical(_positions(wd.shape), getattr(weights, "_dims", ""))
    opts, Xf, w, d, stride, dil, feff, x_pos, restore = _setup(fname, pos_X, pos_W, args,
                                                               kwargs, options)
    groups = w.shape[d + 2]
    w_pos = w.reshape(w.shape[:d + 1] + (w.shape[d + 1] * groups,), order="F")
    if fname == "dlconv":
        pv = V.padding_value(opts.get("PaddingValue", 0), V.Where(fname, "PaddingValue"))
        if isinstance(pv, str) or pv != 0:
            raise ValueError("dlgradient: EnableHigherDerivatives is not supported through "
                             "'dlconv' with a nonzero PaddingValue")
        pads = _pad_pairs(opts.get("Padding", 0), d, fname, "Padding", ("same", "causal"))
        if pads == "same":
            before, after = same_padding(x_pos.shape[:d], stride, feff)
        elif pads == "causal":
            before, after = [feff[0] - 1], [0]
        else:
            before, after = pads
        geo = _Geometry(stride, dil, tuple(before), tuple(after), groups)
    else:
        crops = _pad_pairs(opts.get("Cropping", 0), d, fname, "Cropping", ("same",))
        offset = (0,) * d
        if crops == "same":
            before, after, offset = same_cropping(feff, stride)
        else:
            before, after = crops
        geo = _Geometry(stride, dil, tuple(before), tuple(after), groups, True, offset)
    # dL/dY's elements as the backward pass folds them: Y's stored positions, in
    # canonical order (DataFormat data is stored in that format's order), folded
    df = opts.get("DataFormat") or None
    y_pos = _positions(np.shape(Y._data))
    canon = as_formatted(y_pos, df, fname).data if df else y_pos
    g_pos = fold(dlarray._from_canonical(canon, Xf._dims), d)[0]
    return _conv_rule(g, X, weights, bias, geo, x_pos, w_pos, g_pos) + (None,) * len(args)


rule(dlconv)(lambda g, Y, X, weights, bias, *args, **kwargs: _functional_rule(
    "dlconv", _DLCONV_OPTIONS, g, Y, X, weights, bias, args, kwargs))
rule(dltranspconv)(lambda g, Y, X, weights, bias, *args, **kwargs: _functional_rule(
    "dltranspconv", _DLTRANSPCONV_OPTIONS, g, Y, X, weights, bias, args, kwargs))
