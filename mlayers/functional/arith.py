"""dlarray arithmetic, traced: ``+ - * / **``, unary minus and ``@`` (MATLAB ``*``).

Operands combine with MATLAB's implicit expansion: dimensions are matched from the
first (MATLAB's trailing singletons are implicit, so a ``5×5×3`` array expands against a
``5×5×3×2`` one; numpy would match from the last).  Format of the result
(MATLAB_SEMANTICS §10.1; inferred where MATLAB is silent):

* equal formats, or one operand unformatted or a plain number: the formatted operand's
  format; the data combine as stored (an unformatted array is taken in the formatted
  operand's canonical order, and may not have more dimensions than the format);
* two different formats: the dimensions are matched by label (each operand gets
  singleton dimensions for the labels it lacks) and the result has every label, in
  canonical order.  Repeated ``S``/``U`` labels match in order.

Precision: as in MATLAB, single wins (a float32 operand makes the result float32, also
with a double dlarray or numpy array); integer and logical data compute in double.
"""
import numpy as np

from .. import _ops, _ops_norm
from .._autodiff import data, input_needed, operation, rule, unbroadcast
from ..dlarray import _canonical_perm, dlarray

__all__ = ["plus", "minus", "times", "rdivide", "power", "uminus", "mtimes"]


def _dims(x):
    return x._dims if isinstance(x, dlarray) else ""


def _as_operand(x, fname):
    if isinstance(x, dlarray):
        return x._data
    a = np.asarray(x)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{fname}: operands must be real numeric arrays or dlarrays, got "
                        f"{type(x).__name__} of dtype {a.dtype}")
    return a


def _align(a, da, dims):
    """Data ``a`` labelled ``da`` (canonical) as an array with the labels ``dims``."""
    counts = {}
    index = []
    for lab in dims:
        k = counts.get(lab, 0)
        counts[lab] = k + 1
        pos = [i for i, c in enumerate(da) if c == lab]
        index.append(pos[k] if k < len(pos) else None)
    a = a.reshape(a.shape + (1,) * sum(i is None for i in index))
    extra = iter(range(len(da), a.ndim))
    return a.transpose([next(extra) if i is None else i for i in index])


def _union(da, db):
    labels = []
    for lab in "SCBTU":
        labels += [lab] * max(da.count(lab), db.count(lab))
    out = "".join(labels)
    return "".join(out[i] for i in _canonical_perm(out))


def _broadcastable(fname, a, b, da, db):
    try:
        np.broadcast_shapes(a.shape, b.shape)
    except ValueError:
        raise ValueError(f"{fname}: arrays have incompatible sizes for this operation: "
                         f"{da} {'×'.join(map(str, a.shape))} and {db} "
                         f"{'×'.join(map(str, b.shape))}".replace("  ", " ")) from None


def _padded(a, nd):
    """``a`` with MATLAB's implicit trailing singletons up to ``nd`` dimensions."""
    return a.reshape(a.shape + (1,) * (nd - a.ndim)) if a.ndim < nd else a


def _binary(fname, x, y):
    """(a, b, dims, back_a, back_b): aligned operands and the maps of gradients back."""
    a, b = _as_operand(x, fname), _as_operand(y, fname)
    da, db = _dims(x), _dims(y)
    if da == db or not da or not db:
        dims = da or db
        nd = max(a.ndim, b.ndim)
        if dims and nd > len(dims):
            raise ValueError(f"{fname}: an unformatted operand must not have more "
                             f"dimensions than the format '{dims}' of the other, got size "
                             f"{'×'.join(map(str, (a if not da else b).shape))}")
        a2, b2 = _padded(a, nd), _padded(b, nd)
        _broadcastable(fname, a2, b2, "", "")
        return a2, b2, dims, (lambda g: unbroadcast(g, a2.shape).reshape(a.shape)), \
            (lambda g: unbroadcast(g, b2.shape).reshape(b.shape))
    dims = _union(da, db)
    a2, b2 = _align(a, da, dims), _align(b, db, dims)
    _broadcastable(fname, a2, b2, da, db)

    def back(shape2, shape, d_from):
        def f(g):
            g = unbroadcast(g, shape2)
            # undo _align: labels of d_from, in order, then drop the added singletons
            counts, order = {}, []
            for lab in d_from:
                k = counts.get(lab, 0)
                counts[lab] = k + 1
                order.append([i for i, c in enumerate(dims) if c == lab][k])
            rest = [i for i in range(len(dims)) if i not in order]
            return g.transpose(order + rest).reshape(shape)
        return f
    return a2, b2, dims, back(a2.shape, a.shape, da), back(b2.shape, b.shape, db)


def _if_needed(k, back, g, of=None):
    """``back(of(g))``, the k-th operand's gradient, or None when the backward pass will
    not use it (a constant operand)."""
    if not input_needed(k):
        return None
    return back(of(g) if of is not None else g)


def result_dtype(*operands):
    """MATLAB's precision rule: single if any operand is single, else double."""
    kinds = [np.asarray(data(v)).dtype for v in operands]
    return np.dtype(np.float32) if any(k == np.float32 for k in kinds) \
        else np.dtype(np.float64)


def _result(x, y, z, dims):
    z = np.asarray(z)
    dtype = result_dtype(x, y)
    if z.dtype != dtype:
        # single result of a double computation: beyond single's range is Inf, quietly
        # (MATLAB: single(1) / 1e-300 is Inf)
        with np.errstate(over="ignore"):
            z = z.astype(dtype)
    return dlarray._from_canonical(z, dims)


@operation
def plus(x, y):
    """``x + y`` with implicit expansion (MATLAB ``plus``)."""
    a, b, dims, ba, bb = _binary("plus", x, y)
    return _result(x, y, _ops_norm.add(a, b), dims), lambda g: (ba(g), bb(g))


@operation
def plus_relu(x, y):
    """``relu(x + y)`` as one operation (not exported: a network's residual addition and
    the ReLU that alone reads it, in training): the ReLU in the sum's pass, and relu's
    backward (dZ where the result is positive) the only pass back; the numbers and
    gradients of ``plus`` then ``relu``."""
    a, b, dims, ba, bb = _binary("plus", x, y)
    if a.dtype == b.dtype and a.dtype.kind == "f":
        z = _ops_norm.add(a, b, rectify=True)
    else:   # (rectified after the cast to the result's precision, as relu(plus))
        z = _ops_norm.relu(_result(x, y, _ops_norm.add(a, b), dims)._data)
    Z = _result(x, y, z, dims)

    def backward(g):
        d = _ops_norm.relu_backward(Z._data, g)
        return ba(d), bb(d)
    return Z, backward


@operation
def minus(x, y):
    """``x - y`` with implicit expansion (MATLAB ``minus``)."""
    a, b, dims, ba, bb = _binary("minus", x, y)
    return _result(x, y, a - b, dims), \
        lambda g: (_if_needed(0, ba, g), _if_needed(1, bb, g, lambda g: -g))


@operation
def times(x, y):
    """``x .* y`` with implicit expansion (MATLAB ``times``; Python ``*``)."""
    a, b, dims, ba, bb = _binary("times", x, y)
    # (a constant operand, a mask or a scale, gets no gradient computed)
    return _result(x, y, a * b, dims), \
        lambda g: (_if_needed(0, ba, g, lambda g: g * b), _if_needed(1, bb, g, lambda g: g * a))


@operation
def rdivide(x, y):
    """``x ./ y`` with implicit expansion (MATLAB ``rdivide``; Python ``/``)."""
    a, b, dims, ba, bb = _binary("rdivide", x, y)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = a / b
    return _result(x, y, z, dims), \
        lambda g: (_if_needed(0, ba, g, lambda g: g / b),
                   _if_needed(1, bb, g, lambda g: -g * z / b))


@operation
def power(x, y):
    """``x .^ y`` with implicit expansion (MATLAB ``power``; Python ``**``).

    The gradient with respect to the exponent is ``log(x) .* x.^y``, defined where
    ``x > 0`` (MATLAB's real power); elsewhere it is taken as 0 where ``x.^y`` is 0.
    """
    a, b, dims, ba, bb = _binary("power", x, y)
    # overflow gives Inf, quietly (MATLAB: 2^63 .^ 20 is Inf)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        z = np.power(a, b)

    def backward(g):
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            ga = g * b * np.power(a, b - 1)
            ga = np.where(b == 0, 0, ga)
            gb = None
            if isinstance(y, dlarray):
                gb = g * z * np.log(np.where(a > 0, a, 1))
                gb = bb(np.where((a <= 0) & (z == 0), 0, gb))
        return ba(ga), gb
    return _result(x, y, z, dims), backward


@operation
def uminus(x):
    """``-x`` (MATLAB ``uminus``).

    A plain number or numeric array gives an unformatted dlarray (``uminus(3.0)`` is a
    dlarray holding ``-3``); integer and logical data negate in double, as MATLAB
    computes on them here.
    """
    a = _as_operand(x, "uminus")
    if a.dtype.kind not in "f":
        a = a.astype(np.float64)
    return dlarray._from_canonical(-a, _dims(x)), lambda g: (-g,)


@operation
def mtimes(x, y):
    """Matrix product ``x @ y`` (MATLAB ``*``) of 2-D operands.

    Formatted operands raise (package default, MATLAB_SEMANTICS §10.1): strip the format
    with ``stripdims`` first.  The result is unformatted.
    """
    for v in (x, y):
        if _dims(v):
            raise ValueError(f"mtimes: operands must be unformatted (use stripdims), got "
                             f"format '{_dims(v)}'")
    a, b = _as_operand(x, "mtimes"), _as_operand(y, "mtimes")
    if a.ndim > 2 or b.ndim > 2:
        raise ValueError(f"mtimes: operands must be 2-D matrices, got sizes "
                         f"{'×'.join(map(str, a.shape))} and {'×'.join(map(str, b.shape))}")
    a2, b2 = np.atleast_2d(a), np.atleast_2d(b)
    if a.ndim == 1:
        a2 = a.reshape(-1, 1)
    if b.ndim == 1:
        b2 = b.reshape(-1, 1)
    if a2.size == 1 or b2.size == 1:
        z = a2 * b2
    elif a2.shape[1] != b2.shape[0]:
        raise ValueError(f"mtimes: inner matrix dimensions must agree, got "
                         f"{a2.shape[0]}×{a2.shape[1]} and {b2.shape[0]}×{b2.shape[1]}")
    else:
        z = _ops.matmul(a2, b2)

    def backward(g):
        if a2.size == 1 or b2.size == 1:
            ga, gb = unbroadcast(g * b2, a2.shape), unbroadcast(g * a2, b2.shape)
        else:
            ga, gb = _ops.matmul(g, b2.T), _ops.matmul(a2.T, g)
        return ga.reshape(a.shape), gb.reshape(b.shape)
    return _result(x, y, z, ""), backward


# --------------------------------------------------------------------------- traced backward
# The rules of EnableHigherDerivatives (``_autodiff.rule``): the same gradients as the
# backward passes above, computed with dlarray operations.

def _operand_grad(g, x, y, k):
    """dL/d(operand k) from dL/d(result) ``g`` (or a function giving it) of a binary
    operation on ``x`` and ``y`` (traced): each operand element collects the result
    elements it was expanded into; None when it is not needed."""
    v = (x, y)[k]
    if not isinstance(v, dlarray) or not input_needed(k):
        return None
    if callable(g):          # (the gradient computed only now that it is needed)
        g = g()
    if v._data.shape == g._data.shape and v._dims == g._dims:
        return g
    from .mathfun import put

    def positions(u):
        p = np.arange(np.size(data(u))).reshape(np.shape(data(u)))
        return dlarray._from_canonical(p, u._dims) if isinstance(u, dlarray) else p
    aligned = _binary("plus", positions(x), positions(y))[k]
    src = np.broadcast_to(aligned, g._data.shape).reshape(-1)
    return put(g, src, v._data.shape, v._dims)


rule(plus)(lambda g, Z, x, y: (_operand_grad(g, x, y, 0), _operand_grad(g, x, y, 1)))
rule(minus)(lambda g, Z, x, y: (_operand_grad(g, x, y, 0),
                                _operand_grad(lambda: -g, x, y, 1)))
rule(times)(lambda g, Z, x, y: (_operand_grad(lambda: g * y, x, y, 0),
                                _operand_grad(lambda: g * x, x, y, 1)))
rule(rdivide)(lambda g, Z, x, y: (_operand_grad(lambda: g / y, x, y, 0),
                                  _operand_grad(lambda: -(g * Z) / y, x, y, 1)))
rule(uminus)(lambda g, Z, x: (-g,))


@rule(plus_relu)
def _(g, Z, x, y):
    d = g * (Z._data > 0)
    return _operand_grad(d, x, y, 0), _operand_grad(d, x, y, 1)


@rule(power)
def _(g, Z, x, y):
    b = np.asarray(data(y))
    # x.^(y-1) with y = 0 read as x.^0 (y .* that is 0 there, also at x = 0, as above)
    gx = _operand_grad(lambda: g * y * power(x, y - 1 + (b == 0)), x, y, 0)
    gy = None
    if isinstance(y, dlarray) and input_needed(1):
        a = np.asarray(data(x))
        positive = a > 0        # log(x) where x > 0, 0 elsewhere (power's backward)
        from .mathfun import log
        gy = _operand_grad(g * Z * log(x * positive + ~positive), x, y, 1)
    return gx, gy


@rule(mtimes)
def _(g, Z, x, y):
    from .mathfun import sum as dlsum, take
    a, b = np.shape(data(x)), np.shape(data(y))

    def matrix(v, shape):       # v as the 2-D operand mtimes multiplied
        m = shape if len(shape) == 2 else ((shape[0], 1) if len(shape) == 1 else (1, 1))
        if not isinstance(v, dlarray):
            return np.reshape(v, m)
        return v if v._data.shape == m else take(v, np.arange(v._data.size), m, "")

    def back(d, v):             # d as v's gradient
        if not isinstance(v, dlarray):
            return None
        if d._data.shape == v._data.shape:
            return d
        return take(d, np.arange(d._data.size), v._data.shape, "")
    xm, ym = matrix(x, a), matrix(y, b)
    if np.size(data(xm)) == 1 or np.size(data(ym)) == 1:
        gx, gy = g * ym, g * xm
        if np.size(data(xm)) == 1:
            gx = dlsum(gx, "all")
        if np.size(data(ym)) == 1:
            gy = dlsum(gy, "all")
        return back(gx, x), back(gy, y)
    return back(mtimes(g, ym.T), x), back(mtimes(xm.T, g), y)
