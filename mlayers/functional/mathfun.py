"""dlarray math, traced: reductions, elementwise functions, shape functions, indexing.

MATLAB signatures with MATLAB's 1-based dimension arguments, counted in the stored
(canonical) order of the dlarray (API.md porting rule 3)::

    sum(X)  sum(X, dim)  sum(X, [d1 d2])  sum(X, "all")        likewise mean
    max(X)  max(X, [], dim)  max(X, [], "all")  max(A, B)      likewise min; nargout=2: indices
    abs exp log sqrt tanh sin cos tan asin acos atan sinh cosh erf
    sign floor ceil fix round (gradient 0)
    reshape(X, sz)  reshape(X, m, n, ...)  (one [] or None: inferred)   column-major, as MATLAB
    permute(X, order)  squeeze(X)  cat(dim, A, B, ...)
    X[index]  X[index] = value     (Python indexing, 0-based; see _index)

Format rules (MATLAB_SEMANTICS §10.1; package defaults where MATLAB is silent, inferred):
a reduction over some dimensions keeps the labels (the reduced dimensions get size 1); a
reduction over every dimension (``"all"``) gives an unformatted scalar; ``reshape`` and
``permute`` of formatted data give unformatted data (the labels no longer describe the
dimensions); ``squeeze`` keeps the labels of the dimensions it keeps; ``cat`` needs equal
formats and keeps them.
"""
import numbers

import numpy as np

from .._autodiff import data, every_input_needed, operation, rule
from .._validate import MAX_DIMS as _MAXDIMS
from ..dlarray import dlarray

__all__ = ["sum", "mean", "max", "min", "abs", "exp", "log", "sqrt", "tanh", "sin", "cos",
           "tan", "asin", "acos", "atan", "sinh", "cosh", "erf", "sign", "floor", "ceil",
           "fix", "round", "reshape", "permute", "squeeze", "cat"]

_builtin_sum, _builtin_max, _builtin_abs = sum, max, abs


def _check(X, fname):
    if not isinstance(X, dlarray):
        raise TypeError(f"{fname}: X must be a dlarray or a numeric array, got "
                        f"{type(X).__name__}")
    return X._data


def _first_nonsingleton(shape):
    for i, s in enumerate(shape):
        if s != 1:
            return i
    return 0


def _axes(x, dim, fname):
    """MATLAB dim argument -> (numpy axes, all?) over the stored data."""
    if dim is None:
        if x.ndim == 0:
            return (), True
        return (_first_nonsingleton(x.shape),), False
    if isinstance(dim, str):
        if dim.lower() != "all":
            raise ValueError(f"{fname}: dim must be a positive integer, a vector of positive "
                             f"integers or 'all', got {dim!r}")
        return tuple(range(x.ndim)), True
    d = np.asarray(dim)
    if d.dtype.kind not in "iuf" or d.ndim > 1 or d.size == 0 or \
            not np.all(np.isfinite(d)) or np.any(d != np.round(d)) or np.any(d < 1):
        raise ValueError(f"{fname}: dim must be a positive integer, a vector of positive "
                         f"integers or 'all', got {dim!r}")
    dims = sorted({int(v) - 1 for v in d.reshape(-1)})
    if len(dims) != d.size:
        raise ValueError(f"{fname}: dim must not repeat a dimension, got {dim!r}")
    # dimensions past the data are singletons: reducing over them changes nothing
    return tuple(a for a in dims if a < x.ndim), False


def _reduced(X, y, everything):
    if everything:
        return dlarray._from_canonical(np.asarray(y).reshape(()), "")
    return dlarray._from_canonical(y, X._dims)


def _flt(x):
    return x if x.dtype.kind == "f" else x.astype(np.float64)


# --------------------------------------------------------------------------- reductions

@operation
def sum(X, dim=None):
    """Sum of elements (MATLAB ``sum(X)``, ``sum(X, dim)``, ``sum(X, "all")``).

    Examples
    --------
    MATLAB::

        loss = sum(s.*x.^2, 'all');

    Python::

        loss = ml.sum(s * x ** 2, "all")
    """
    x = _check(X, "sum")
    axes, everything = _axes(x, dim, "sum")
    y = x.sum(axis=axes, keepdims=True)

    def backward(g):
        return (np.broadcast_to(np.reshape(g, y.shape), x.shape), None)
    return _reduced(X, y, everything), backward


@operation
def mean(X, dim=None):
    """Mean of elements (MATLAB ``mean(X)``, ``mean(X, dim)``, ``mean(X, "all")``)."""
    x = _check(X, "mean")
    axes, everything = _axes(x, dim, "mean")
    n = int(np.prod([x.shape[a] for a in axes])) if axes else 1
    if n == 0:      # the mean of nothing is NaN (MATLAB), without NumPy's warning
        y = np.full([1 if a in axes else s for a, s in enumerate(x.shape)], np.nan,
                    dtype=_flt(x).dtype)
    else:
        y = x.mean(axis=axes, keepdims=True) if axes else x.copy()

    def backward(g):
        if n == 0:
            return (np.zeros(x.shape, dtype=y.dtype), None)
        return (np.broadcast_to(np.reshape(g, y.shape) / n, x.shape), None)
    return _reduced(X, y, everything), backward


def _extreme(fname, X, B, dim, nargout):
    if B is not None and not (isinstance(B, (list, tuple, np.ndarray)) and np.size(B) == 0):
        if dim is not None:
            raise ValueError(f"{fname}: dim is not allowed with two input arrays, got "
                             f"{dim!r}")
        if nargout != 1:
            raise ValueError(f"{fname}: nargout must be 1 with two input arrays, got "
                             f"{nargout}")
        return _EXTREME2[fname](X, B)
    return _EXTREME1[fname](X, dim, nargout)


def _make_extreme1(fname, pick):
    @operation
    def extreme1(X, dim, nargout):
        x = _check(X, fname)
        axes, everything = _axes(x, dim, fname)
        if x.size == 0:
            raise ValueError(f"{fname}: X must not be empty")
        # move the reduced axes last and flatten them: one argmax per output element
        keep = [a for a in range(x.ndim) if a not in axes]
        moved = np.transpose(x, keep + list(axes))
        flat = moved.reshape(moved.shape[:len(keep)] + (-1,))
        # NaN wins only when every value is NaN (MATLAB's max/min omit NaN)
        filled = np.where(np.isnan(flat), -np.inf if pick == "max" else np.inf, flat)
        k = np.argmax(filled, axis=-1) if pick == "max" else np.argmin(filled, axis=-1)
        vals = np.take_along_axis(flat, k[..., None], axis=-1)[..., 0]
        allnan = np.all(np.isnan(flat), axis=-1)
        vals = np.where(allnan, np.nan, vals)
        out_shape = tuple(1 if a in axes else x.shape[a] for a in range(x.ndim))
        y = vals.reshape(out_shape)
        Y = _reduced(X, y, everything)

        def backward(g, gi=None):
            if g is None:
                return (None, None, None)
            gx = np.zeros(flat.shape, dtype=x.dtype)
            np.put_along_axis(gx, k[..., None], np.reshape(g, k.shape)[..., None], axis=-1)
            gx = gx.reshape(moved.shape)
            return (np.transpose(gx, np.argsort(keep + list(axes))), None, None)
        if nargout == 1:
            return Y, backward
        # 1-based linear index within the reduced dimensions, column-major (MATLAB)
        red_shape = [x.shape[a] for a in axes]
        sub = np.unravel_index(k, red_shape) if red_shape else ()
        lin = np.zeros(k.shape, dtype=np.int64)
        stride = 1
        for s_idx, size in zip(sub, red_shape):
            lin += s_idx * stride
            stride *= size
        idx = (lin + 1).astype(np.float64).reshape(out_shape)
        return (Y, _reduced(X, idx, everything)), backward
    return extreme1


def _make_extreme2(fname, pick):
    @operation
    def extreme2(A, B):
        from .arith import _binary, _result
        a, b, dims, ba, bb = _binary(fname, A, B)
        fa, fb = np.broadcast_arrays(_flt(np.asarray(a)), _flt(np.asarray(b)))
        take_a = _take_a(fa, fb, pick)
        z = np.where(take_a, fa, fb)

        def backward(g):
            return ba(np.where(take_a, g, 0)), bb(np.where(take_a, 0, g))
        return _result(A, B, z, dims), backward
    return extreme2


def _take_a(fa, fb, pick):
    """Where max(A, B) (min) takes A: NaN is ignored unless both are NaN."""
    better = fa >= fb if pick == "max" else fa <= fb
    return np.where(np.isnan(fb), True, np.where(np.isnan(fa), False, better))


_EXTREME1 = {p: _make_extreme1(p, p) for p in ("max", "min")}
_EXTREME2 = {p: _make_extreme2(p, p) for p in ("max", "min")}
for _table in (_EXTREME1, _EXTREME2):
    for _p, _op in _table.items():
        _op.__name__ = _p           # (what errors name)


def max(X, B=None, dim=None, *, nargout=1):
    """Largest elements (MATLAB ``max``), NaN omitted as in MATLAB.

    ``max(X)`` along the first non-singleton dimension, ``max(X, [], dim)``,
    ``max(X, [], "all")``, ``max(A, B)`` elementwise with implicit expansion.
    ``M, I = max(X, [], dim, nargout=2)`` also returns 1-based (column-major) indices.
    The gradient flows to the first maximum.
    """
    return _extreme("max", X, B, dim, nargout)


def min(X, B=None, dim=None, *, nargout=1):
    """Smallest elements (MATLAB ``min``); the same forms as :func:`max`."""
    return _extreme("min", X, B, dim, nargout)


# --------------------------------------------------------------------------- elementwise

def _unary(name, f, df, doc):
    def op(X):
        x = _check(X, name)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            y = f(_flt(x))

        def backward(g):
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                return (g * df(x, y),)
        return dlarray._from_canonical(y, X._dims), backward
    op.__name__ = op.__qualname__ = name
    op.__doc__ = doc
    return operation(op)


abs = _unary("abs", np.abs, lambda x, y: np.sign(x),
             "Absolute value (MATLAB ``abs``); the gradient at 0 is 0.")
exp = _unary("exp", np.exp, lambda x, y: y, "Exponential (MATLAB ``exp``).")
log = _unary("log", np.log, lambda x, y: 1 / x,
             "Natural logarithm (MATLAB ``log``); negative input gives NaN (MATLAB would "
             "return complex values, which dlarray does not support).")
sqrt = _unary("sqrt", np.sqrt, lambda x, y: 0.5 / y,
              "Square root (MATLAB ``sqrt``); negative input gives NaN.")
tanh = _unary("tanh", np.tanh, lambda x, y: 1 - y * y, "Hyperbolic tangent (MATLAB ``tanh``).")
sin = _unary("sin", np.sin, lambda x, y: np.cos(x), "Sine (MATLAB ``sin``).")
cos = _unary("cos", np.cos, lambda x, y: -np.sin(x), "Cosine (MATLAB ``cos``).")
tan = _unary("tan", np.tan, lambda x, y: 1 + y * y, "Tangent (MATLAB ``tan``).")
asin = _unary("asin", np.arcsin, lambda x, y: 1 / np.sqrt(1 - x * x),
              "Inverse sine (MATLAB ``asin``); outside [-1, 1] NaN (MATLAB: complex).")
acos = _unary("acos", np.arccos, lambda x, y: -1 / np.sqrt(1 - x * x),
              "Inverse cosine (MATLAB ``acos``); outside [-1, 1] NaN (MATLAB: complex).")
atan = _unary("atan", np.arctan, lambda x, y: 1 / (1 + x * x), "Inverse tangent (MATLAB ``atan``).")
sinh = _unary("sinh", np.sinh, lambda x, y: np.cosh(x), "Hyperbolic sine (MATLAB ``sinh``).")
cosh = _unary("cosh", np.cosh, lambda x, y: np.sinh(x), "Hyperbolic cosine (MATLAB ``cosh``).")
erf = _unary("erf", lambda x: _special().erf(x),
             lambda x, y: (2 / np.sqrt(np.pi)) * np.exp(-x * x), "Error function (MATLAB ``erf``).")
sign = _unary("sign", np.sign, lambda x, y: np.zeros_like(y),
              "Sign (MATLAB ``sign``); its gradient is 0.")
floor = _unary("floor", np.floor, lambda x, y: np.zeros_like(y),
               "Round toward -Inf (MATLAB ``floor``); its gradient is 0.")
ceil = _unary("ceil", np.ceil, lambda x, y: np.zeros_like(y),
              "Round toward +Inf (MATLAB ``ceil``); its gradient is 0.")
fix = _unary("fix", np.trunc, lambda x, y: np.zeros_like(y),
             "Round toward zero (MATLAB ``fix``); its gradient is 0.")
round = _unary("round", lambda x: np.where(np.abs(x - np.trunc(x)) == 0.5,
                                          np.trunc(x) + np.sign(x), np.round(x)),
               lambda x, y: np.zeros_like(y),
               "Round to the nearest integer, halves away from zero (MATLAB ``round``; "
               "numpy rounds halves to even); its gradient is 0.")


def _special():
    import scipy.special
    return scipy.special


# --------------------------------------------------------------------------- shape

def _size_args(fname, x, args):
    if len(args) == 1 and not isinstance(args[0], numbers.Number) and args[0] is not None:
        sz = [None if np.size(v) == 0 else v for v in np.asarray(args[0], dtype=object).ravel()]
    else:
        sz = [None if (v is None or (not isinstance(v, numbers.Number) and np.size(v) == 0))
              else v for v in args]
    if len(sz) < 2:
        raise ValueError(f"{fname}: size must have at least two elements, got {list(sz)}")
    if _builtin_sum(v is None for v in sz) > 1:
        raise ValueError(f"{fname}: size may leave at most one dimension unknown ([]), got "
                         f"{list(sz)}")
    out = []
    for v in sz:
        if v is None:
            out.append(-1)
            continue
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, (numbers.Integral, float,
                                                                 np.floating)) \
                or not (isinstance(v, numbers.Integral) or np.isfinite(v)) \
                or v != int(v) or v < 0:
            raise ValueError(f"{fname}: size must contain nonnegative integers, got {v!r}")
        if v > np.iinfo(np.intp).max:
            raise ValueError(f"{fname}: size must contain integers of at most "
                             f"{np.iinfo(np.intp).max}, got {v!r}")
        out.append(int(v))
    if len(out) > _MAXDIMS:
        raise ValueError(f"{fname}: size must have at most {_MAXDIMS} elements (the most "
                         f"dimensions an array can have), got {len(out)}")
    known = int(np.prod([v for v in out if v >= 0]))
    if -1 in out:
        if known == 0 or x.size % known:
            raise ValueError(f"{fname}: the size {sz} cannot hold {x.size} elements")
    elif known != x.size:
        raise ValueError(f"{fname}: the number of elements must not change: size "
                         f"{'×'.join(map(str, out))} holds {known}, X has {x.size}")
    return out


@operation
def reshape(X, *sz):
    """Reshape in MATLAB's column-major order (MATLAB ``reshape``); unformatted output.

    ``reshape(X, [m, n, p])``, ``reshape(X, m, n, p)``; one size may be ``[]``/``None``.
    """
    x = _check(X, "reshape")
    shape = _size_args("reshape", x, sz)
    try:
        y = x.reshape(shape, order="F")
    except ValueError:      # an empty array with sizes whose product overflows the bytes
        raise ValueError(f"reshape: size must describe an array NumPy can index (at most "
                         f"{np.iinfo(np.intp).max} bytes), got {shape}") from None
    return dlarray._from_canonical(y, ""), \
        lambda g: (np.reshape(g, x.shape, order="F"),) + (None,) * len(sz)


@operation
def permute(X, order):
    """Rearrange dimensions (MATLAB ``permute``, 1-based ``order``); unformatted output.

    ``order`` must hold every dimension of the data once (more may be given: trailing
    singleton dimensions).
    """
    x = _check(X, "permute")
    try:
        d = np.asarray(order)
        if d.dtype.kind not in "iuf" or d.ndim > 1 or (d.size and not (
                np.all(np.isfinite(d)) and np.all(d == np.round(d)))):
            raise TypeError
        o = [int(v) - 1 for v in d.reshape(-1)]
    except (TypeError, ValueError, OverflowError):
        raise TypeError(f"permute: order must be a vector of positive integers, got "
                        f"{order!r:.60}") from None
    n = _builtin_max(len(o), x.ndim)
    if n > _MAXDIMS:
        raise ValueError(f"permute: order must have at most {_MAXDIMS} elements (the most "
                         f"dimensions an array can have), got {len(o)}")
    if len(o) < x.ndim or sorted(o) != list(range(n)):
        raise ValueError(f"permute: order must be a permutation of 1..{n} (one per "
                         f"dimension), got {[i + 1 for i in o]}")
    xx = x.reshape(x.shape + (1,) * (n - x.ndim))
    y = np.transpose(xx, o)
    inv = np.argsort(o)
    return dlarray._from_canonical(y, ""), \
        lambda g: (np.transpose(g, inv).reshape(x.shape), None)


@operation
def squeeze(X):
    """Remove singleton dimensions (MATLAB ``squeeze``): at least two dimensions remain, as in
    MATLAB; a formatted array keeps the labels of the dimensions it keeps."""
    x = _check(X, "squeeze")
    keep = [i for i, s in enumerate(x.shape) if s != 1]
    while len(keep) < 2 and len(keep) < x.ndim:
        keep = sorted(set(keep) | {next(i for i in range(x.ndim) if i not in keep)})
    y = x.reshape([x.shape[i] for i in keep])
    dims = "".join(X._dims[i] for i in keep) if X._dims else ""
    return dlarray._from_canonical(y, dims), lambda g: (np.reshape(g, x.shape),)


def cat(dim, *arrays):
    """Concatenate along dimension ``dim`` (1-based, stored order; MATLAB ``cat``).

    ``cat(dim, A, B, ...)``; a MATLAB ``cat(dim, C{:})`` is ``cat(dim, *C)`` (a single
    list or tuple of arrays is accepted too).  Formatted arrays must share one format,
    which the result keeps; single wins over double as in MATLAB.
    """
    if len(arrays) == 1 and isinstance(arrays[0], (list, tuple)):
        arrays = tuple(arrays[0])
    from ..training.categorical import categorical
    if any(isinstance(a, categorical) for a in arrays):
        return _cat_categorical(dim, arrays)
    for k, a in enumerate(arrays, start=1):
        if not isinstance(a, dlarray):
            kind = np.asarray(a).dtype.kind if not isinstance(a, (list, tuple)) or a else "f"
            if kind not in "biuf":
                raise TypeError(f"cat: array {k} must be a numeric array or dlarray, got "
                                f"{type(a).__name__}")
    return _cat(dim, *arrays)


def _cat_categorical(dim, arrays):
    """MATLAB's cat of categorical arrays (``T = cat(2, dataT{:})``): the codes joined as
    numbers are (the same size rules), the categories those of the first array followed
    by the others' new ones."""
    from ..training.categorical import categorical
    items = [a for a in arrays if not (isinstance(a, (list, tuple)) and len(a) == 0)]
    if not all(isinstance(a, categorical) for a in items):
        k = next(i for i, a in enumerate(items, start=1) if not isinstance(a, categorical))
        raise TypeError(f"cat: array {k} must be categorical like the others, got "
                        f"{type(items[k - 1]).__name__}")
    cats = []
    for a in items:
        cats += [c for c in a._cats if c not in cats]
    index = {c: i for i, c in enumerate(cats)}
    codes = []
    for a in items:
        remap = np.array([index[c] for c in a._cats] + [-1], dtype=np.float64)
        codes.append(remap[a.codes])              # (-1, undefined, stays -1)
    joined = _cat(dim, *codes)._data
    return categorical._from_codes(joined.astype(np.int64), cats)


@operation
def _cat(dim, *arrays):
    if isinstance(dim, (bool, np.bool_)) or not isinstance(dim, numbers.Integral) or dim < 1:
        raise ValueError(f"cat: dim must be a positive integer, got {dim!r}")
    if dim > _MAXDIMS:
        raise ValueError(f"cat: dim must be at most {_MAXDIMS} (the most dimensions an "
                         f"array can have), got {dim!r}")
    # (MATLAB's cat skips [], the 0 x 0 array: an empty list or a 0 x 0 array here)
    skipped = [(isinstance(a, (list, tuple)) and len(a) == 0)
               or (isinstance(a, (np.ndarray, dlarray)) and np.shape(a) == (0, 0))
               for a in arrays]
    items = [a for a, skip in zip(arrays, skipped) if not skip]
    if not items:
        raise ValueError("cat: at least one array is required")
    fmts = {a._dims for a in items if isinstance(a, dlarray) and a._dims}
    if len(fmts) > 1:
        raise ValueError(f"cat: formatted arrays must have the same format, got "
                         f"{', '.join(sorted(fmts))}")
    dims = fmts.pop() if fmts else ""
    from .arith import result_dtype
    dtype = result_dtype(*items)
    datas = [np.asarray(data(a)).astype(dtype, copy=False) for a in items]
    nd = _builtin_max(_builtin_max(d.ndim for d in datas), dim, 2 if not dims else 0)
    datas = [d.reshape(d.shape + (1,) * (nd - d.ndim)) for d in datas]
    ax = dim - 1
    for k, d in enumerate(datas[1:], start=2):
        if d.shape[:ax] + d.shape[ax + 1:] != datas[0].shape[:ax] + datas[0].shape[ax + 1:]:
            raise ValueError(f"cat: dimensions of arrays being concatenated are not "
                             f"consistent: array {k} has size {'×'.join(map(str, d.shape))}, "
                             f"array 1 {'×'.join(map(str, datas[0].shape))} (dim {dim})")
    y = np.concatenate(datas, axis=ax)
    if dims and y.ndim != len(dims):
        raise ValueError(f"cat: dim {dim} is beyond the {len(dims)} dimensions of format "
                         f"'{dims}'")
    bounds = np.cumsum([0] + [d.shape[ax] for d in datas])
    shapes = [np.shape(data(a)) for a in items]

    def backward(g):
        parts = iter(np.take(g, np.arange(lo, hi), axis=ax).reshape(s)
                     for lo, hi, s in zip(bounds[:-1], bounds[1:], shapes))
        return (None,) + tuple(None if skip else next(parts) for skip in skipped)
    return dlarray._from_canonical(y, dims), backward


# --------------------------------------------------------------------------- indexing

def _normalize_index(X, index):
    """Python index for the stored data; integers keep their dimension on formatted data
    (MATLAB's ``X(1,:,:,:)`` keeps four dimensions), so the format survives.  A logical
    vector of MATLAB's shape (``rand(1,N) < p``: 1 x N) in one position of several
    selects along that one dimension, as MATLAB's ``X(:,:,:,idx)`` does, where numpy
    would read it as a mask over two dimensions that do not have its shape."""
    idx = index if isinstance(index, tuple) else (index,)
    if len(idx) > 1:
        idx = _vector_masks(X._data.shape, idx)
    if not X._dims or any(i is Ellipsis or i is None for i in idx):
        return (idx if isinstance(index, tuple) or len(idx) > 1 else idx[0]), True
    out = []
    axis = 0
    for i in idx:
        if isinstance(i, (numbers.Integral, np.integer)) and not isinstance(i, (bool, np.bool_)):
            n = X._data.shape[axis] if axis < X._data.ndim else 1
            if not -n <= int(i) < n:
                raise IndexError(f"dlarray indexing: index {int(i)} is out of bounds for "
                                 f"dimension {axis + 1} with size {n}")
            i = int(i) % n
            out.append(slice(i, i + 1))
        else:
            out.append(i)
        axis += np.ndim(i) if isinstance(i, np.ndarray) and i.dtype == bool else 1
    return tuple(out), False


def _vector_masks(shape, idx):
    """``idx`` with each logical array that has one non-singleton dimension, and not the
    shape of the dimensions numpy would mask with it, flattened to a vector."""
    out, axis = [], 0
    for i in idx:
        if isinstance(i, np.ndarray) and i.dtype == bool and i.ndim > 1:
            if (tuple(shape[axis:axis + i.ndim]) != i.shape
                    and len([n for n in i.shape if n != 1]) <= 1):
                i = i.reshape(-1)
            axis += i.ndim
        elif i is not None:
            axis += 1
        out.append(i)
    return tuple(out)


@operation
def subsref(X, index):
    """``X[index]`` (MATLAB ``X(...)`` with 0-based Python indices), traced."""
    x = X._data
    idx, _ = _normalize_index(X, index)
    try:
        y = x[idx]
    except (IndexError, TypeError) as exc:
        raise type(exc)(f"dlarray indexing: {exc}") from None
    y = np.array(y, dtype=x.dtype, copy=True) if np.ndim(y) == 0 else y
    dims = X._dims if X._dims and y.ndim == x.ndim else ""

    def backward(g):
        gx = np.zeros(x.shape, dtype=x.dtype)
        np.add.at(gx, idx, np.reshape(g, np.shape(y)))
        return (gx, None)
    return dlarray._from_canonical(y, dims), backward


@operation
def subsasgn(X, index, value):
    """A copy of ``X`` with ``X[index] = value``; the gradient of each overwritten element
    goes to the element of ``value`` that was written last there (summed where ``value``
    was expanded), the rest to ``X``."""
    x = X._data
    idx, _ = _normalize_index(X, index)
    v = data(value)
    y = x.copy()
    try:
        y[idx] = v
    except (IndexError, ValueError, TypeError) as exc:
        raise type(exc)(f"dlarray indexed assignment: {exc}") from None
    vshape = np.shape(v)

    def backward(g):
        # which element of value each cell received: assign element numbers the same way
        owner = np.full(x.shape, -1, dtype=np.int64)
        owner[idx] = np.arange(int(np.prod(vshape)), dtype=np.int64).reshape(vshape)
        written = owner >= 0
        gv = None
        if isinstance(value, dlarray):
            gv = np.zeros(int(np.prod(vshape)), dtype=np.asarray(g).dtype)
            np.add.at(gv, owner[written], np.asarray(g)[written])
            gv = gv.reshape(vshape)
        return (np.where(written, 0, g), None, gv)
    return dlarray._from_canonical(y, X._dims), backward


def scatter_back(g, src_shape, relabel):
    """The gradient of a pure relabelling (a permutation, reshape or singleton change of
    the data, ``relabel(array) -> array``): the element indices are pushed through the
    same relabelling, and each gradient entry goes back to its source element."""
    idx = relabel(np.arange(int(np.prod(src_shape)), dtype=np.float64).reshape(src_shape))
    out = np.zeros(int(np.prod(src_shape)), dtype=np.asarray(g).dtype)
    out[idx.reshape(-1).astype(np.int64)] = np.reshape(g, idx.shape).reshape(-1)
    return out.reshape(src_shape)


@operation
def relabel(X, fmt):
    """``dlarray(X, fmt)`` of a traced dlarray: new labels on the same data, traced."""
    src = X._data
    return dlarray(src, fmt), \
        lambda g: (scatter_back(g, src.shape, lambda a: dlarray(a, fmt)._data), None)


@operation
def stripdims_op(X, fmt):
    """``stripdims(X, fmt)`` of a traced dlarray, traced."""
    from ..dlarray import stripdims

    def strip(a):
        return stripdims(dlarray._from_canonical(a, X._dims), fmt)._data
    src = X._data
    return dlarray._from_canonical(strip(src), ""), \
        lambda g: (scatter_back(g, src.shape, strip), None)


# --------------------------------------------------------------------------- traced backward
# The rules (EnableHigherDerivatives, ``_autodiff.rule``) of this module's operations.  The
# shape functions and indexing only move elements, so their gradients are ``take``/``put``
# of element positions: each such operation is run once more on the positions themselves
# (``source_positions``), which gives, for every element of its result, the element of X
# it came from.

def take(G, index, shape, dims):
    """The elements of ``G`` at flat (C-order) positions ``index``, as an array of
    ``shape`` labelled ``dims`` (not exported: the traced gradients of element moves);
    ``G`` itself when that changes nothing."""
    if _unmoved(G, index, shape, dims):
        return G
    return _take(G, index, shape, dims)


def put(H, index, shape, dims):
    """Zeros of ``shape`` labelled ``dims`` with the elements of ``H`` added at flat
    (C-order) positions ``index`` (repeated positions add up): :func:`take`'s adjoint;
    ``H`` itself when that changes nothing."""
    if _unmoved(H, index, shape, dims):
        return H
    return _put(H, index, shape, dims)


def cast(X, dtype):
    """``X`` in ``dtype`` (single or double), traced (not exported: rules computing in an
    operation's precision, gradients in their variable's); X itself when it is already."""
    if not isinstance(X, dlarray) or X._data.dtype == dtype:
        return X
    return _cast(X, np.dtype(dtype))


@operation
def _cast(X, dtype):
    x = X._data
    return dlarray._from_canonical(x.astype(dtype), X._dims), \
        lambda g: (np.asarray(g).astype(x.dtype), None)


def relabeled(A, dims):
    """A's data under the labels ``dims``, the same layout (both canonical), traced; A
    itself when they are its labels (not exported: the fully connected rule's matrices)."""
    if not isinstance(A, dlarray) or A._dims == dims:
        return A
    return _relabeled(A, dims)


@operation
def _relabeled(A, dims):
    return dlarray._from_canonical(A._data, dims), lambda g: (g, None)


def _unmoved(A, index, shape, dims):
    return (isinstance(A, dlarray) and A._dims == dims and A._data.shape == tuple(shape)
            and _in_order(index, A._data.size))


@operation
def _take(G, index, shape, dims):
    g = G._data.reshape(-1)
    same = _in_order(index, g.size)

    def backward(h):
        return (_scatter_add(np.reshape(h, -1), index, g.size, g.dtype, same).reshape(
            G._data.shape), None, None, None)
    return dlarray._from_canonical((g.copy() if same else g[index]).reshape(shape),
                                   dims), backward


@operation
def _put(H, index, shape, dims):
    h = H._data.reshape(-1)
    n = int(np.prod(shape))
    same = _in_order(index, n)

    def backward(g):
        g = np.reshape(g, -1)
        return ((g.copy() if same else g[index]).reshape(H._data.shape), None, None, None)
    return dlarray._from_canonical(_scatter_add(h, index, n, h.dtype, same).reshape(shape),
                                   dims), backward


def _in_order(index, n):
    """Whether ``index`` is 0, 1, ..., n-1 (a move that moves nothing: the fully connected
    layer's data, most relabellings), which then costs a copy instead of a gather."""
    return index.size == n and (n == 0 or (index[0] == 0 and index[-1] == n - 1 and
                                           bool(np.all(np.diff(index) == 1))))


def _scatter_add(values, index, n, dtype, in_order=False):
    if in_order:
        return values.astype(dtype, copy=True)
    if values.dtype.kind != "f":
        values = values.astype(np.float64)
    return np.bincount(index, weights=values, minlength=n).astype(dtype, copy=False)


rule(_cast)(lambda g, Y, X, dtype: (cast(g, X._data.dtype), None))
rule(_relabeled)(lambda g, Y, A, dims: (relabeled(g, A._dims), None))


@rule(_take)
def _(g, Y, G, index, shape, dims):
    return put(g, index, G._data.shape, G._dims), None, None, None


@rule(_put)
def _(g, Y, H, index, shape, dims):
    return take(g, index, H._data.shape, H._dims), None, None, None


def linear_rule(op):
    """Declare the rule of ``op(X, *rest, **kwargs)``, an operation linear in X whose
    backward pass depends on X's size and format only (pooling by averages, resizing):
    its derivative is its adjoint, an operation whose derivative is ``op`` again."""
    @operation
    def adjoint(G, X, rest, kwargs):
        # (X: a constant of X's size and format; the adjoint is op's own backward pass)
        with every_input_needed():
            _, back = op.__wrapped_operation__(X, *rest, **kwargs)
            value = np.asarray(back(G._data)[0])

        def backward(h):
            y = op.__wrapped_operation__(dlarray._from_canonical(np.asarray(h), X._dims),
                                         *rest, **kwargs)[0]
            return y._data, None, None, None
        return dlarray._from_canonical(value, X._dims), backward
    adjoint.__name__ = op.__name__ + " adjoint"
    rule(adjoint)(lambda h, Y, G, X, rest, kwargs: (op(h, *rest, **kwargs), None, None,
                                                    None))

    def op_rule(g, Y, X, *rest, **kwargs):
        d = X._data if isinstance(X, dlarray) else np.asarray(X)
        shape_only = dlarray._from_canonical(
            np.zeros(d.shape, d.dtype if d.dtype.kind == "f" else np.float64),
            getattr(X, "_dims", ""))
        return (adjoint(g, shape_only, rest, kwargs),) + (None,) * len(rest)
    rule(op)(op_rule)


def source_positions(op, X, *rest, **kwargs):
    """For an operation that only moves (or repeats) the elements of its first input:
    the flat position in ``X`` of each element of its result, found by running it on
    the positions."""
    n = X._data.size
    pos = dlarray._from_canonical(np.arange(n, dtype=np.float64).reshape(X._data.shape),
                                  X._dims)
    out = op.__wrapped_operation__(pos, *rest, **kwargs)[0]
    return np.asarray(out._data if isinstance(out, dlarray) else out).reshape(-1).astype(np.intp)


def moved_back(g, op, X, *rest, **kwargs):
    """dL/dX (traced) of an element move ``op(X, *rest)`` from its result's gradient."""
    return put(g, source_positions(op, X, *rest, **kwargs), X._data.shape, X._dims)


def _expanded(g, X, Y):
    """``g`` (of a reduction's result ``Y``) spread back over the positions of ``X``."""
    y = Y._data
    dst = np.broadcast_to(np.arange(y.size).reshape(
        y.shape + (1,) * (X._data.ndim - y.ndim) if y.ndim else (1,) * X._data.ndim),
        X._data.shape)
    return take(g, dst.reshape(-1), X._data.shape, X._dims)


@rule(sum)
def _(g, Y, X, dim=None):
    return _expanded(g, X, Y), None


@rule(mean)
def _(g, Y, X, dim=None):
    axes, _ = _axes(X._data, dim, "mean")
    n = int(np.prod([X._data.shape[a] for a in axes])) if axes else 1
    return _expanded(g, X, Y) / n if n else _expanded(g * 0, X, Y), None


rule(abs)(lambda g, Y, X: (g * np.sign(X._data),))
rule(exp)(lambda g, Y, X: (g * Y,))
rule(log)(lambda g, Y, X: (g / X,))
rule(sqrt)(lambda g, Y, X: ((g * 0.5) / Y,))
rule(tanh)(lambda g, Y, X: (g * (1 - Y * Y),))
def _extreme_rules(pick):
    def reduced(g, Y, X, dim, nargout):
        # each result's gradient goes to its winner: the winners are found by running the
        # backward pass on the result numbers 1..n (each lands where its winner is)
        if nargout != 1:
            if any(v is not None for v in g[1:]):
                raise ValueError(f"dlgradient: EnableHigherDerivatives is not supported "
                                 f"through {pick}'s indices")
            g, Y = g[0], Y[0]
        n = Y._data.size
        if n >= 1 << 24 and X._data.dtype != np.float64:   # (exact in float32 below)
            raise ValueError(f"dlgradient: EnableHigherDerivatives through {pick} supports "
                             f"fewer than 2^24 results, got {n}")
        with every_input_needed():
            _, backward = _EXTREME1[pick].__wrapped_operation__(X, dim, 1)
            routed = np.asarray(backward(np.arange(1, n + 1, dtype=np.float64).reshape(
                Y._data.shape))[0]).reshape(-1)
        at = np.flatnonzero(routed)
        where = np.empty(n, dtype=np.intp)
        where[routed[at].astype(np.intp) - 1] = at
        return put(g, where, X._data.shape, X._dims), None, None

    def elementwise(g, Y, A, B):
        from .arith import _binary, _operand_grad
        a, b = _binary(pick, A, B)[:2]
        take = _take_a(*np.broadcast_arrays(_flt(np.asarray(a)), _flt(np.asarray(b))), pick)
        return _operand_grad(g * take, A, B, 0), _operand_grad(g * ~take, A, B, 1)
    rule(_EXTREME1[pick])(reduced)
    rule(_EXTREME2[pick])(elementwise)


for _pick in ("max", "min"):
    _extreme_rules(_pick)


rule(sin)(lambda g, Y, X: (g * cos(X),))
rule(cos)(lambda g, Y, X: (-g * sin(X),))
rule(tan)(lambda g, Y, X: (g * (1 + Y * Y),))
rule(asin)(lambda g, Y, X: (g / sqrt(1 - X * X),))
rule(acos)(lambda g, Y, X: (-g / sqrt(1 - X * X),))
rule(atan)(lambda g, Y, X: (g / (1 + X * X),))
rule(sinh)(lambda g, Y, X: (g * cosh(X),))
rule(cosh)(lambda g, Y, X: (g * sinh(X),))
rule(erf)(lambda g, Y, X: (g * (2 / np.sqrt(np.pi)) * exp(-X * X),))
for _op in (sign, floor, ceil, fix, round):
    rule(_op)(lambda g, Y, X: (g * 0,))


for _op in (reshape, permute, squeeze, subsref, relabel, stripdims_op):
    rule(_op)(lambda g, Y, X, *rest, _op=_op: (moved_back(g, _op, X, *rest),)
              + (None,) * len(rest))


@rule(_cat)
def _(g, Y, dim, *arrays):
    # every input's elements numbered after the previous ones', run through cat
    nums, start = [], 0
    for a in arrays:
        n = int(np.size(data(a)))
        nums.append(np.arange(start, start + n, dtype=np.float64).reshape(np.shape(data(a))))
        start += n
    src = _cat.__wrapped_operation__(dim, *nums)[0]._data.reshape(-1).astype(np.intp)
    out, start = [None], 0
    for a, num in zip(arrays, nums):
        n = num.size
        if isinstance(a, dlarray):
            where = np.empty(n, dtype=np.intp)
            inside = (src >= start) & (src < start + n)
            where[src[inside] - start] = np.flatnonzero(inside)
            out.append(take(g, where, a._data.shape, a._dims))
        else:
            out.append(None)
        start += n
    return tuple(out)


@rule(subsasgn)
def _(g, Y, X, index, value):
    # X's elements numbered 0.., value's -1, -2, ...: who owns each result element
    v = data(value)
    nv = int(np.size(v))
    pos = dlarray._from_canonical(np.arange(X._data.size, dtype=np.float64).reshape(
        X._data.shape), X._dims)
    owner = subsasgn.__wrapped_operation__(
        pos, index, -1 - np.arange(nv, dtype=np.float64).reshape(np.shape(v)))[0]._data
    owner = owner.reshape(-1)
    kept = owner >= 0
    gx = g * kept.reshape(X._data.shape)
    gv = None
    if isinstance(value, dlarray):
        written = np.flatnonzero(~kept)
        gv = put(take(g, written, (written.size,), ""),
                 (-1 - owner[written]).astype(np.intp), value._data.shape, value._dims)
    return gx, None, gv


def _numeric_too(fn):
    """``fn`` on plain numeric data as well, as MATLAB's functions of the same names work
    on numeric arrays: ``mean((XTest - YTest).^2, [1 2 3])`` on numpy arrays gives a numpy
    array (computed as the dlarray method, so the numbers are the same)."""
    shape_only = fn.__name__ in ("reshape", "permute", "squeeze")

    def plain(X, *args, **kwargs):
        if isinstance(X, dlarray) or any(isinstance(a, dlarray) for a in args) or \
                not isinstance(X, (np.ndarray, numbers.Number, np.generic, list, tuple)) or \
                np.asarray(X).dtype.kind not in "biuf":
            return fn(X, *args, **kwargs)
        x = np.asarray(X)
        out = fn(dlarray._from_canonical(x if x.dtype.kind == "f" else x.astype(np.float64),
                                         ""), *args, **kwargs)
        if isinstance(out, tuple):
            return tuple(o._data if isinstance(o, dlarray) else o for o in out)
        out = out._data if isinstance(out, dlarray) else out
        # (a rearrangement keeps the class, logical and integer too, and is a copy: MATLAB
        # values, not views of the caller's array)
        return np.array(out, dtype=x.dtype) if shape_only else out
    plain.__name__, plain.__qualname__, plain.__doc__ = fn.__name__, fn.__qualname__, fn.__doc__
    plain.__wrapped__ = fn
    return plain


for _name in ("sum", "mean", "max", "min", "abs", "exp", "log", "sqrt", "tanh", "sin", "cos",
              "tan", "asin", "acos", "atan", "sinh", "cosh", "erf", "sign", "floor", "ceil",
              "fix", "round", "reshape", "permute", "squeeze"):
    globals()[_name] = _numeric_too(globals()[_name])
del _name
