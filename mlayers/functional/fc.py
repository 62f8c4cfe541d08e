"""MATLAB's ``fullyconnect`` (MATLAB_SEMANTICS §11.1).

``Y = weights * X(:, n) + bias`` per observation (and time step): the S, C and U dimensions
of ``X`` are flattened **column-major** (``X(:,:,:,n)(:)``, §8 item 7) and summed against each
row of the weights; the B and T dimensions are kept, so the result is ``CB`` or ``CBT``
(documented, https://in.mathworks.com/help/deeplearning/ref/dlarray.fullyconnect.html).

Layout: ``X``'s stored (canonical) order is ``S.. C B T U..``, so for data without U the
``features x observations`` matrix is a free Fortran-order reshape of the data, and the
forward and both gradients are single gemms on views (numpy ``@`` hands the transposed
contiguous operands to BLAS without copies).
"""

__all__ = ["fullyconnect"]

import math

import numpy as np

from .. import _ops
from .._autodiff import input_needed, operation, rule
from .._display import format_size
from .._options import parse_name_value
from ..dlarray import dlarray
from .activations import _array, _dx, _in, _out


def _weights_matrix(weights, fname):
    """The weights as ``out x features`` (a view when possible) and a function mapping a
    gradient of that matrix back to the weights' stored shape."""
    w = _array(weights, fname, "weights")
    if isinstance(weights, dlarray) and weights._dims:
        dims = weights._dims
        if dims.count("U") != 1 or "B" in dims or "T" in dims:
            raise ValueError(f"{fname}: formatted weights must have one U dimension (the "
                             f"outputs) and S/C dimensions, got '{dims}'")
        u = dims.index("U")
        perm = (u,) + tuple(i for i in range(w.ndim) if i != u)
        wp = w.transpose(perm)
        inv = np.argsort(perm)
        # explicit column count: a -1 cannot be inferred when there are no outputs
        m = wp.reshape((wp.shape[0], math.prod(wp.shape[1:])), order="F")
        return m, lambda g: g.reshape(wp.shape, order="F").transpose(inv)
    if w.ndim < 2:
        w = w.reshape(-1, 1) if w.ndim == 1 else w.reshape(1, 1)
    m = w.reshape((w.shape[0], math.prod(w.shape[1:])), order="F")
    shape = np.shape(weights._data if isinstance(weights, dlarray) else w)
    return m, lambda g: g.reshape(shape, order="F")


@operation
def fullyconnect(X, weights, bias, *args, **kwargs):
    """Fully connect operation, MATLAB's ``fullyconnect``.

    Parameters
    ----------
    X : dlarray
        Formatted input (or unformatted with ``DataFormat``).
    weights : array_like or dlarray
        ``OutputSize x prod(sizes of S, C, U)`` or ``OutputSize x H x W x C`` (any shape
        whose first dimension is the output size; the rest is flattened column-major).
        Formatted weights: the U dimension holds the outputs.
    bias : array_like or dlarray
        ``OutputSize`` elements (any vector shape) or a scalar.

    Other Parameters
    ----------------
    DataFormat : str
        Labels of unformatted ``X``; the result is then unformatted.

    Returns
    -------
    dlarray
        ``'CB'`` (``'CBT'`` for sequences; a missing B is a singleton B).

    Examples
    --------
    MATLAB::

        X = dlarray(rand(12,12,32,1),'SSCB');
        Y = fullyconnect(X, ones(10,12,12,32), ones(10,1));      % 10(C) x 1(B)

    Python::

        >>> X = ml.dlarray(np.random.rand(12, 12, 32, 1), "SSCB")
        >>> Y = ml.fullyconnect(X, np.ones((10, 12, 12, 32)), np.ones((10, 1)))
        >>> Y.dims, Y.shape
        ('CB', (10, 1))
    """
    fname = "fullyconnect"
    opts = parse_name_value(fname, args, kwargs, ("DataFormat",))
    Xf, fmt = _in(X, opts.get("DataFormat"), fname)
    if "C" not in Xf._dims:
        raise ValueError(f"{fname}: X must have a channel (C) dimension, got '{Xf._dims}'")
    w2, w_back = _weights_matrix(weights, fname)
    return _fc(X, Xf._dims, fmt, Xf._data, weights, bias, w2, w_back,
               _array(bias, fname, "bias").reshape(-1), len(args), fname)


@operation
def fc_layer(X, weights, bias):
    """``fullyconnect`` as a fully connected layer runs it inside ``dlfeval`` (not
    exported): a formatted X with a C dimension and the layer's unformatted weights and
    bias (traced or not), which the layer checked; no options to parse, the same numbers
    and gradients."""
    w = data_of(weights)
    shape = w.shape
    w2 = w.reshape((shape[0], math.prod(shape[1:])), order="F")
    return _fc(X, X._dims, None, X._data, weights, bias, w2,
               lambda g: g.reshape(shape, order="F"), data_of(bias).reshape(-1), 0,
               "fullyconnect")


def _fc(X, dims, fmt, x, weights, bias, w2, w_back, b, nargs, fname):
    """fullyconnect's product and backward for X's data ``x`` labelled ``dims`` (``fmt``:
    the DataFormat of unformatted X, else None), the weights as ``out x features``
    (``w_back`` maps that matrix's gradient to the weights' shape) and the bias ``b``;
    ``nargs`` more inputs get no gradient."""
    nout = w2.shape[0]
    # features (S.., C, U..) first, observations (B, T) last: a free permutation unless U
    feat = [i for i, d in enumerate(dims) if d in "SCU"]
    obs = [i for i, d in enumerate(dims) if d in "BT"]
    perm = feat + obs
    identity = perm == list(range(x.ndim))
    xp = x if identity else x.transpose(perm)
    nfeat = math.prod(x.shape[i] for i in feat)
    obs_shape = tuple(x.shape[i] for i in obs)
    x2 = xp.reshape((nfeat, math.prod(obs_shape)), order="F")
    if w2.shape[1] != nfeat:
        raise ValueError(f"{fname}: weights must be OutputSize×{nfeat} (the S, C and U "
                         f"elements of one observation of X, size {format_size(x.shape)}), "
                         f"got size {format_size(np.shape(data_of(weights)))}")
    if b.size not in (1, nout):
        raise ValueError(f"{fname}: bias must have OutputSize ({nout}) elements, got "
                         f"{b.size}")
    dtype = _ops.compute_dtype(x2, w2, b)
    x2c = x2.astype(dtype, copy=False)
    w2c = w2.astype(dtype, copy=False)
    y = _ops.matmul(w2c, x2c, np.broadcast_to(b.astype(dtype, copy=False).reshape(-1),
                                              (nout,)))
    out_dims = "C" + "".join(dims[i] for i in obs)
    if not obs:
        out_dims = "CB"
        obs_shape = (1,)
    y = y.reshape((nout,) + obs_shape, order="F")

    def backward(dy):
        # (OutputSize x observations, small: in column-major order, which the products
        # with few outputs take without BLAS, _conv.matmul)
        g = np.asfortranarray(np.asarray(dy).reshape((nout, -1), order="F"), dtype=dtype)
        dX = dW = dB = None
        if isinstance(X, dlarray) and input_needed(0):     # (not for a network's data)
            dx2 = _ops.matmul(w2c.T, g)
            dxp = dx2.reshape(xp.shape, order="F")
            dX = _dx(X, dxp if identity else dxp.transpose(np.argsort(perm)), dims, fmt)
        if isinstance(weights, dlarray):
            dW = w_back(_ops.matmul(g, x2c.T)).astype(weights._data.dtype, copy=False)
        if isinstance(bias, dlarray):
            s = g.sum(axis=1)
            dB = (np.full(bias._data.shape, s.sum()) if bias._data.size == 1 and nout > 1
                  else s.reshape(bias._data.shape)).astype(bias._data.dtype, copy=False)
        return (dX, dW, dB) + (None,) * nargs
    # unformatted input: an unformatted result in MATLAB's C, B, T order
    return _out(y, out_dims, None if fmt is None else ""), backward


@operation
def _relabel(Y, dims):
    """``Y``'s data (same elements, column-major) under the labels ``dims``, dropping or
    adding singleton dimensions (for layers whose output format differs from
    fullyconnect's by singletons)."""
    y = Y._data
    shape = y.shape[:len(dims)] + (1,) * max(0, len(dims) - y.ndim)
    out = y.reshape(shape)

    def backward(dy):
        return (np.asarray(dy).reshape(y.shape), None)
    return dlarray._from_canonical(out, dims), backward


def data_of(a):
    return a._data if isinstance(a, dlarray) else a


# --------------------------------------------------------------------------- traced backward
# The rules of EnableHigherDerivatives (``_autodiff.rule``): the products of the backward
# pass above as traced ``mtimes`` on X, the weights and dL/dY rearranged as matrices (by
# element positions, mathfun.take / put).

def _positions(a):
    return dlarray._from_canonical(
        np.arange(a._data.size, dtype=np.float64).reshape(a._data.shape), a._dims)


def _fc_rule(g, X, weights, bias, fmt, fname):
    from .arith import mtimes
    from .mathfun import cast, relabeled, sum as dlsum, take
    # (in the precision fullyconnect computes in, as its backward pass does)
    dtype = _ops.compute_dtype(*(np.asarray(data_of(a)) for a in (X, weights, bias)))

    def typed(a):
        return cast(a, dtype) if isinstance(a, dlarray) else np.asarray(a, dtype)
    wd = np.asarray(data_of(weights))
    if (fmt is None and X._dims == "CB" and g._dims == "CB" and wd.ndim == 2
            and not getattr(weights, "_dims", "")):
        # features x observations already (a feature network's layers): relabelled only
        X2, W2, G2 = relabeled(X, ""), weights, relabeled(g, "")

        def back_x(m):
            return relabeled(m, "CB")

        def back_w(m):
            return m
    else:
        X2, W2, G2, back_x, back_w = _fc_matrices(g, X, weights, fmt, fname)
    X2, W2, G2 = typed(X2), typed(W2), typed(G2)
    nout = W2.shape[0]
    dX = back_x(mtimes(W2.T, G2)) if isinstance(X, dlarray) and input_needed(0) else None
    dW = back_w(mtimes(G2, X2.T)) if isinstance(weights, dlarray) and input_needed(1) \
        else None
    dB = None
    if isinstance(bias, dlarray) and input_needed(2):
        s = dlsum(G2, 2) if bias._data.size == nout else dlsum(G2, "all")
        dB = take(s, np.arange(bias._data.size) % s._data.size, bias._data.shape,
                  bias._dims)
    return dX, dW, dB


def _fc_matrices(g, X, weights, fmt, fname):
    """(X, weights, dL/dY as matrices, the maps of the matrices' gradients back to X's and
    the weights' layouts): moves of element positions (mathfun.take / put)."""
    from .mathfun import put, take
    if not isinstance(X, dlarray):          # (numeric X with DataFormat: a constant)
        X = dlarray._from_canonical(np.asarray(X), "")
    pos = _in(_positions(X), fmt, fname)[0] if fmt else _positions(X)
    dims = pos._dims
    feat = [i for i, d in enumerate(dims) if d in "SCU"]
    obs = [i for i, d in enumerate(dims) if d in "BT"]
    p = pos._data.transpose(feat + obs)
    nfeat = math.prod(p.shape[:len(feat)])
    obs_shape = p.shape[len(feat):] or (1,)
    x2 = p.reshape((nfeat, -1), order="F").astype(np.intp)
    w2 = (_weights_matrix(_positions(weights), fname)[0].astype(np.intp)
          if isinstance(weights, dlarray) else None)
    W2 = (take(weights, w2.reshape(-1), w2.shape, "") if w2 is not None
          else _weights_matrix(weights, fname)[0])
    nout = W2.shape[0]
    # dL/dY as nout x observations: Y's elements numbered in that matrix, laid out as Y is
    ynum = np.arange(nout * x2.shape[1], dtype=np.float64).reshape(
        (nout, x2.shape[1])).reshape((nout,) + obs_shape, order="F")
    out_dims = "C" + "".join(dims[i] for i in obs) if obs else "CB"
    ypos = _out(ynum, out_dims, None if fmt is None else "")._data
    G2 = put(g, ypos.reshape(-1).astype(np.intp), (nout, x2.shape[1]), "")
    X2 = take(X, x2.reshape(-1), x2.shape, "")

    def back_x(m):
        return put(m, x2.reshape(-1), X._data.shape, X._dims)

    def back_w(m):
        return put(m, w2.reshape(-1), weights._data.shape, weights._dims)
    return X2, W2, G2, back_x, back_w


@rule(fullyconnect)
def _(g, Y, X, weights, bias, *args, **kwargs):
    fmt = parse_name_value("fullyconnect", args, kwargs, ("DataFormat",)).get("DataFormat")
    return _fc_rule(g, X, weights, bias, fmt, "fullyconnect") + (None,) * len(args)


rule(fc_layer)(lambda g, Y, X, weights, bias: _fc_rule(g, X, weights, bias, None,
                                                       "fullyconnect"))


@rule(_relabel)
def _(g, Y, X, dims):
    from .mathfun import moved_back
    return moved_back(g, _relabel, X, dims), None
