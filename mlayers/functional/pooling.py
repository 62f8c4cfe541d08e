"""MATLAB's functional pooling: ``avgpool``, ``maxpool`` and ``maxunpool``.

Pooling runs over the ``S`` dimensions of ``X`` (1 to 3 of them), or over the dimensions
``PoolFormat`` names (``'T'``: T only; ``'SST'``: both S and T); every other dimension
(C, B, an unpooled S or T) is pooled independently.  Arithmetic (MATLAB_SEMANTICS §3.1, §3.3-3.4, §11.2)::

    out    = floor((in + padBefore + padAfter - poolSize) / Stride) + 1
    'same' : out = ceil(in / Stride), the extra padding at the end

* ``Stride`` defaults to 1 (not to the pool size; package default, as the layers).
* Max pooling pads with ``-realmax`` (MathWorks codegen source; switchable with
  ``package_defaults(maxpool_padding="-Inf")``), so padded cells win only over a window
  of ``-Inf`` values.  Ties go to the first cell in MATLAB's column-major
  order; a NaN in a window gives NaN (its index is the first NaN's).  The gradient goes to
  the winner of each window (added up where windows overlap).
* Average pooling: ``PaddingValue`` 0 (default) counts padded cells as zeros (divides by
  ``prod(poolSize)``, as MathWorks' codegen source does); ``'mean'`` leaves them out.
* ``[Y, indx, inputSize] = maxpool(...)`` (``nargout=3``): ``indx`` holds MATLAB's
  1-based column-major linear indices into the whole input (all of ``H x W x C x B``, in
  the stored order of ``X``: for unformatted ``X`` the order it was given in, so that
  ``X(indx) == Y``), as doubles, with ``Y``'s size and format; ``inputSize`` is ``size(X)``
  (a 1-D int64 array, one entry per stored dimension).
* ``maxunpool(Y, indx, inputSize)`` writes each ``Y`` value at its index into zeros of
  size ``inputSize`` (MathWorks source); a repeated index keeps the last value written,
  which gets that cell's gradient.

All kernels are in ``pyx/_pool.pyx`` behind :mod:`mlayers._ops_pool`.
"""

__all__ = ["avgpool", "maxpool", "maxunpool"]
import math

import numpy as np

from .. import _ops, _ops_pool
from .. import _validate as V
from .._autodiff import rule, operation, recording
from .._display import format_size
from .._options import parse_name_value, validatestring
from ..dlarray import as_formatted, dlarray
from ._dataformat import finish, input_grad, output_grad

_AVG_OPTIONS = ("Stride", "Padding", "PaddingValue", "DataFormat", "PoolFormat")
_MAX_OPTIONS = ("Stride", "Padding", "DataFormat", "PoolFormat")
_UNPOOL_OPTIONS = ("DataFormat",)


# --------------------------------------------------------------------------- layout

class _Layout:
    """How a formatted input maps onto the kernels' ``P1..Pd x C x N`` array and back.

    Pooled dims (the S dims, then T when pooled) come first, then C (a singleton when X
    has none), then everything else merged into N.  ``perm`` is the permutation of the
    canonical dims; when it is the identity the mapping is a free reshape.
    """

    def __init__(self, X, pool_t, fname, pool_s=True):
        dims, shape = X.dims, X.data.shape
        if "U" in dims:
            raise ValueError(f"{fname}: X must not have U dimensions, got '{dims}'")
        pooled = [i for i, c in enumerate(dims) if c == "S"] if pool_s else []
        if pool_t:
            if "T" not in dims:
                raise ValueError(f"{fname}: PoolFormat has a T dimension but X ('{dims}') "
                                 f"has none")
            pooled.append(dims.index("T"))
        if not pooled:
            raise ValueError(f"{fname}: X must have a spatial (S) dimension to pool over "
                             f"(or a T dimension with PoolFormat 'T'), got '{dims}'")
        if len(pooled) > 3:
            raise ValueError(f"{fname}: at most 3 dimensions can be pooled, got "
                             f"{len(pooled)} ('{dims}')")
        c = [dims.index("C")] if "C" in dims else []
        rest = [i for i in range(len(dims)) if i not in pooled and i not in c]
        self.dims, self.shape, self.d = dims, shape, len(pooled)
        self.perm = pooled + c + rest
        self.has_c = bool(c)
        self.rest_shape = tuple(shape[i] for i in rest)
        self.identity = self.perm == list(range(len(dims)))

    def to_kernel(self, data):
        x = data.transpose(self.perm) if not self.identity else data
        d = self.d
        csize = x.shape[d] if self.has_c else 1
        return x.reshape(x.shape[:d] + (csize, math.prod(self.rest_shape)), order="F")

    def from_kernel(self, y):
        """Kernel-layout output ``O1..Od x C x N`` -> canonical data."""
        d = self.d
        shape = y.shape[:d] + ((y.shape[d],) if self.has_c else ()) + self.rest_shape
        y = y.reshape(shape, order="F")
        if self.identity:
            return y
        return y.transpose(np.argsort(self.perm))

    def out_shape(self, pooled_out):
        shape = list(self.shape)
        for k, i in enumerate(self.perm[:self.d]):
            shape[i] = pooled_out[k]
        return tuple(shape)

    def linear_index(self, idx):
        """0-based linear indices into the kernel array -> into the canonical data."""
        if self.identity:
            return idx
        kshape = tuple(self.shape[i] for i in self.perm)
        sub = np.unravel_index(idx, kshape, order="F")
        canon = [None] * len(self.perm)
        for k, i in enumerate(self.perm):
            canon[i] = sub[k]
        return np.ravel_multi_index(canon, self.shape, order="F")


# --------------------------------------------------------------------------- options

def _setup(fname, X, poolSize, args, kwargs, options):
    # imported here: mlayers.layers (which imports this module) imports functional.conv
    from ..layers._conv_family import same_padding
    from .conv import _pad_pairs
    opts = parse_name_value(fname, args, kwargs, options)
    opts["DataFormat"] = opts.get("DataFormat") or None     # "" is no DataFormat
    Xf = as_formatted(X, opts["DataFormat"], fname)
    pool_t, pool_s = False, True
    if opts.get("PoolFormat") is not None:
        pf = opts["PoolFormat"]
        if not isinstance(pf, str) or not pf or set(pf.upper()) - {"S", "T"} \
                or pf.upper().count("T") > 1:
            raise ValueError(f"{fname}: PoolFormat must be a format of 'S' and at most one "
                             f"'T' label, got {pf!r}")
        pf = pf.upper()
        pool_t, pool_s = "T" in pf, "S" in pf
        if pf.count("S") not in (0, Xf.dims.count("S")):
            raise ValueError(f"{fname}: PoolFormat must have no S or as many S labels as "
                             f"X ('{Xf.dims}'), got '{pf}'")
    lay = _Layout(Xf, pool_t, fname, pool_s)
    d = lay.d
    x = lay.to_kernel(Xf.data)
    x = _float(x, fname)
    in_size = x.shape[:d]
    glob = isinstance(poolSize, (str, np.str_))
    if glob:
        validatestring(poolSize, ("global",), fname, "poolSize")
        pool = tuple(int(n) for n in in_size)
    else:
        pool = _ops.int_vector(poolSize, d, fname, "poolSize", 1)
    stride = _ops.int_vector(opts.get("Stride", 1), d, fname, "Stride", 1)
    pads = opts.get("Padding", 0)
    if not (type(pads) is tuple and len(pads) == 2 and all(
            type(p) is tuple and len(p) == d and all(type(v) is int and v >= 0 for v in p)
            for p in pads)):           # (before, after) tuples: what the layers pass
        pads = _pad_pairs(pads, d, fname, "Padding", ("same",))
    if pads == "same":
        before, after = same_padding(in_size, stride, pool)
    else:
        before, after = pads
        for i, (b, a, p) in enumerate(zip(before, after, pool)):
            if max(b, a) >= p:
                raise ValueError(f"{fname}: Padding must be smaller than the pool size "
                                 f"({p}) along dimension {i + 1}, got {max(b, a)}")
    for i, (n, b, a, p) in enumerate(zip(in_size, before, after, pool)):
        if n + b + a < p:
            raise ValueError(f"{fname}: the padded input ({n} + {b} + {a}) must be at least "
                             f"the pool size {p} along pooled dimension {i + 1}")
    return opts, Xf, lay, x, pool, stride, (tuple(before), tuple(after))


def _float(x, fname):
    if not isinstance(x, np.ndarray) or x.dtype not in (np.float32, np.float64):
        x = V.real_array(x, V.Where(fname, "X"), "a real float32 or float64 array")
        if x.dtype not in (np.float32, np.float64):
            x = x.astype(np.float64)
    return x


def pool_padding_value(value, where):
    """Average pooling's PaddingValue, 0 or 'mean' (avgpool and the layers)."""
    if isinstance(value, (str, np.str_)):
        return validatestring(value, ("mean",), where.fname, where.name)
    return V.real_scalar(value, where, "0 or 'mean'", lambda x: x == 0)


# --------------------------------------------------------------------------- public

@operation
def avgpool(X, poolSize, *args, **kwargs):
    """Pool data to average values over spatial dimensions, MATLAB's ``avgpool``.

    Parameters
    ----------
    X : dlarray
        Formatted input (``'SCB'``, ``'SSCB'``, ``'SSSCB'``, with T folded into the
        observations...), or unformatted data with ``DataFormat``.
    poolSize : int, sequence or ``'global'``
        Pool size per pooled dimension; ``'global'`` averages each whole spatial extent
        (singleton pooled dimensions are kept).

    Other Parameters
    ----------------
    Stride : int or sequence, default 1
    Padding : default 0
        ``'same'``, a nonnegative integer, a per-dimension vector, a 2-by-d
        ``[before; after]`` matrix, or the layer forms ``[l r]`` / ``[t b l r]``; smaller
        than the pool size.
    PaddingValue : 0 (default) or ``'mean'``
        0 counts padded cells as zeros (divisor ``prod(poolSize)``); ``'mean'`` leaves
        them out of the average.
    DataFormat : str
        Labels of unformatted ``X``; the output is then unformatted in the same order.
    PoolFormat : str
        The labels of the pooled dimensions, in order: ``'T'`` pools only the T
        dimension, ``'SST'`` the two S dimensions and T (no S: the S dimensions are not
        pooled; otherwise as many S labels as ``X`` has).

    Returns
    -------
    dlarray
        ``X``'s format.

    Examples
    --------
    MATLAB::

        Y = avgpool(X, 2, 'Stride', 2);
        G = avgpool(X, 'global');

    Python::

        >>> X = ml.dlarray(np.random.rand(6, 6, 3, 2), "SSCB")
        >>> ml.avgpool(X, 2, Stride=2).shape
        (3, 3, 3, 2)
        >>> ml.avgpool(X, "global").shape
        (1, 1, 3, 2)
    """
    fname = "avgpool"
    if type(X) is dlarray and not args and isinstance(poolSize, str) \
            and poolSize.lower() == "global" and set(kwargs) <= {"PoolFormat"}:
        # the global pooling layers' call: skip the general option handling when it can
        axes = _global_axes(X.dims, kwargs.get("PoolFormat"))
        r = _global_average(X, axes, {}, X, args, fname) if axes else None
        if r is not None:
            return r
    opts, Xf, lay, x, pool, stride, pads = _setup(fname, X, poolSize, args, kwargs,
                                                  _AVG_OPTIONS)
    pv = pool_padding_value(opts.get("PaddingValue", 0), V.Where(fname, "PaddingValue"))
    mode = "average-real" if pv == "mean" else "average"
    if tuple(pool) == tuple(x.shape[:lay.d]) and not any(pads[0]) and not any(pads[1]):
        # global: a straight reduction on X's own memory (no transpose), when it applies
        y = _global_average(Xf, sorted(lay.perm[:lay.d]), opts, X, args, fname)
        if y is not None:
            return y
    y = _ops_pool.pool(x, pool, stride, pads, mode, fname)
    Y = dlarray._from_canonical(lay.from_kernel(y), Xf.dims)
    x_shape, dtype = x.shape, x.dtype

    def backward(dy):
        dyk = lay.to_kernel(output_grad(dy, Y.shape, opts.get("DataFormat"), fname))
        dx = _ops_pool.avgpool_backward(dyk, x_shape, dtype, pool, stride, pads, mode,
                                        fname)
        return (input_grad(X, lay.from_kernel(dx), Xf.dims, opts.get("DataFormat")),) \
            + (None,) * (1 + len(args))
    return finish(Y, opts.get("DataFormat")), backward


def _global_axes(dims, pf):
    """The canonical axes a global pooling of a formatted X (``dims``) with PoolFormat
    ``pf`` reduces, or None when anything is unusual (then the general path checks)."""
    if not dims or "U" in dims:
        return None
    pool_s, pool_t = True, False
    if pf is not None:
        if not isinstance(pf, str) or not pf:
            return None
        pf = pf.upper()
        if set(pf) - {"S", "T"} or pf.count("T") > 1 \
                or pf.count("S") not in (0, dims.count("S")):
            return None
        pool_s, pool_t = "S" in pf, "T" in pf
        if pool_t and "T" not in dims:
            return None
    axes = [i for i, c in enumerate(dims) if (c == "S" and pool_s) or (c == "T" and pool_t)]
    return axes if 1 <= len(axes) <= 3 else None


def _global_average(Xf, axes, opts, X, args, fname):
    """avgpool's (result, backward) over whole pooled dimensions (canonical ``axes``)
    through :func:`mlayers._ops_pool.global_average`, or None when that does not apply."""
    data = Xf.data
    if not isinstance(data, np.ndarray):
        return None
    y = _ops_pool.global_average(data, axes)
    if y is None:
        return None
    Y = dlarray._from_canonical(y, Xf.dims)
    x_shape, dtype, order = data.shape, data.dtype, _ops.memory_order(data)

    def backward(dy):
        g = output_grad(dy, Y.shape, opts.get("DataFormat"), fname)
        dx = _ops_pool.global_average_backward(g, x_shape, dtype, order)
        return (input_grad(X, dx, Xf.dims, opts.get("DataFormat")),) \
            + (None,) * (1 + len(args))
    return finish(Y, opts.get("DataFormat")), backward


@operation
def maxpool(X, poolSize, *args, nargout=1, **kwargs):
    """Pool data to maximum value, MATLAB's ``maxpool``.

    ``Y = maxpool(X, poolSize, ...)``; ``Y, indx, inputSize = maxpool(..., nargout=3)``.

    Parameters
    ----------
    X : dlarray
        Formatted input, or unformatted data with ``DataFormat``.
    poolSize : int, sequence or ``'global'``

    Other Parameters
    ----------------
    Stride : int or sequence, default 1
    Padding : default 0
        As :func:`avgpool`; padded cells hold ``-realmax``.
    DataFormat, PoolFormat : str
        As :func:`avgpool`.
    nargout : 1 or 3
        3 also returns the indices and the input size for :func:`maxunpool`.

    Returns
    -------
    Y : dlarray
        ``X``'s format.
    indx : dlarray
        (``nargout=3``) 1-based column-major linear indices of the maxima into the whole
        input, ``Y``'s size and format, float64 (MATLAB double).
    inputSize : numpy.ndarray
        (``nargout=3``) ``size(X)``, int64.

    Examples
    --------
    MATLAB::

        [Y, indx, inputSize] = maxpool(X, 2, 'Stride', 2);
        Z = maxunpool(Y, indx, inputSize);

    Python::

        >>> X = ml.dlarray(np.random.rand(4, 4, 1, 1), "SSCB")
        >>> Y, indx, inputSize = ml.maxpool(X, 2, Stride=2, nargout=3)
        >>> Z = ml.maxunpool(Y, indx, inputSize)
    """
    fname = "maxpool"
    if nargout not in (1, 2, 3) or isinstance(nargout, bool):
        raise ValueError(f"{fname}: nargout must be 1, 2 or 3, got {nargout!r}")
    opts, Xf, lay, x, pool, stride, pads = _setup(fname, X, poolSize, args, kwargs,
                                                  _MAX_OPTIONS)
    if nargout == 1 and not recording():
        # predict: no indices needed (nothing will run backward)
        y = _ops_pool.pool(x, pool, stride, pads, "max", fname)
        return finish(dlarray._from_canonical(lay.from_kernel(y), Xf.dims),
                       opts.get("DataFormat")), None
    y, winners = _ops_pool.maxpool_indices(x, pool, stride, pads, fname)
    Y = dlarray._from_canonical(lay.from_kernel(y), Xf.dims)
    dtype = x.dtype

    def backward(dy, *unused):
        if dy is None:
            return (None,) * (2 + len(args))
        dyk = lay.to_kernel(output_grad(dy, Y.shape, opts.get("DataFormat"), fname))
        dx = _ops_pool.maxpool_backward(dyk, winners, dtype, fname)
        return (input_grad(X, lay.from_kernel(dx), Xf.dims, opts.get("DataFormat")),) \
            + (None,) * (1 + len(args))
    Yout = finish(Y, opts.get("DataFormat"))
    if nargout == 1:
        return Yout, backward
    lin = lay.linear_index(lay.from_kernel(winners.linear_indices()))
    df = opts.get("DataFormat")
    if df:
        # unformatted X: indices into X as given (its own dimension order), size(X)
        xs = np.shape(X.data if isinstance(X, dlarray) else X)
        where = as_formatted(np.arange(math.prod(xs), dtype=np.float64).reshape(
            xs, order="F"), df, fname).data.reshape(-1, order="F")
        lin = where[lin].astype(np.int64)
        size = np.array(xs, dtype=np.int64)
    else:
        size = np.array(Xf.data.shape, dtype=np.int64)
    I = finish(dlarray._from_canonical((lin + 1).astype(np.float64), Xf.dims), df)
    return ((Yout, I) if nargout == 2 else (Yout, I, size)), backward


@operation
def maxunpool(Y, indx, inputSize, *args, **kwargs):
    """Unpool the output of a maximum pooling operation, MATLAB's ``maxunpool``.

    Parameters
    ----------
    Y : dlarray
        Pooled data (formatted, or unformatted with ``DataFormat``).
    indx : dlarray or array_like
        The 1-based linear indices from ``maxpool`` (``Y``'s size).
    inputSize : sequence of int
        The size of the input to ``maxpool``.

    Other Parameters
    ----------------
    DataFormat : str

    Returns
    -------
    dlarray
        Zeros of size ``inputSize`` with each ``Y`` value at its index; ``Y``'s format.

    Examples
    --------
    MATLAB::

        Z = maxunpool(Y, indx, inputSize);

    Python::

        >>> X = ml.dlarray(np.random.rand(4, 4, 1, 1), "SSCB")
        >>> Y, indx, inputSize = ml.maxpool(X, 2, Stride=2, nargout=3)
        >>> ml.maxunpool(Y, indx, inputSize).shape
        (4, 4, 1, 1)
    """
    fname = "maxunpool"
    opts = parse_name_value(fname, args, kwargs, _UNPOOL_OPTIONS)
    opts["DataFormat"] = opts.get("DataFormat") or None
    df = opts.get("DataFormat")
    Yf = as_formatted(Y, df, fname)          # checks the format (and DataFormat)
    if df:
        # unformatted: indices and inputSize refer to the caller's dimension order, and
        # so does the (unformatted) output; the data are used as given
        Yf = dlarray._from_canonical(np.asarray(Y.data if isinstance(Y, dlarray) else Y),
                                     "")
    y = _float(Yf.data, fname)
    ind = indx.data if isinstance(indx, dlarray) else indx
    where = V.Where(fname, "indx")
    ind = V.real_array(ind, where, "positive integer linear indices (from maxpool)")
    if isinstance(indx, dlarray) and indx.dims and indx.dims != Yf.dims:
        raise ValueError(f"{fname}: indx must have the format of Y ('{Yf.dims}'), got "
                         f"'{indx.dims}'")
    if ind.size != y.size:
        raise ValueError(f"{fname}: indx must have as many elements as Y "
                         f"({format_size(y.shape)}), got {format_size(ind.shape)}")
    constraint = "a vector of positive integers (0 only for the observations)"
    size_arr = V.real_array(inputSize, V.Where(fname, "inputSize"), constraint)
    sizes = [int(s) for s in V.integers(size_arr.reshape(-1), V.Where(fname, "inputSize"),
                                        constraint, inputSize, 0)]
    # an empty batch pools to an empty batch and unpools back: 0 only where B is
    b = Yf.dims.index("B") if "B" in Yf.dims else None
    if any(s == 0 and i != b for i, s in enumerate(sizes)):
        raise V.Where(fname, "inputSize").error(constraint, inputSize)
    nd = len(Yf.dims) if Yf.dims else y.ndim
    while len(sizes) > nd and sizes[-1] == 1:
        sizes.pop()
    if len(sizes) > nd:
        raise ValueError(f"{fname}: inputSize must have at most {nd} dimensions (those of "
                         f"Y), got {list(int(s) for s in sizes)}")
    sizes += [1] * (nd - len(sizes))
    total = V.check_allocation(fname, "the output", sizes, y.dtype.itemsize)
    flat_ind = ind.reshape(-1, order="F") if ind.ndim else ind.reshape(1)
    lin = V.integers(flat_ind, where, "positive integer linear indices (from maxpool)",
                     indx, 1, total).astype(np.int64) - 1
    yflat = y.reshape(-1, order="F")
    out = np.zeros(total, dtype=y.dtype)
    out[lin] = yflat               # a repeated index keeps the last value (numpy, MATLAB)
    Z = dlarray._from_canonical(out.reshape(sizes, order="F"), Yf.dims)

    def backward(dz):
        if not isinstance(Y, dlarray):
            return (None,) * (3 + len(args))
        dzf = np.asarray(dz).reshape(-1, order="F")
        winner = np.full(total, -1, dtype=np.int64)
        winner[lin] = np.arange(lin.size)
        keep = winner[lin] == np.arange(lin.size)
        dy = np.where(keep, dzf[lin], 0).astype(y.dtype).reshape(y.shape, order="F")
        return (dy.reshape(Y.shape),) + (None,) * (2 + len(args))
    return Z, backward


# --------------------------------------------------------------------------- traced backward

from .mathfun import linear_rule, put  # noqa: E402  (the rules below use them)

# The rules of EnableHigherDerivatives (``_autodiff.rule``).  Average pooling is linear
# in X: its derivative is its adjoint (avgpool's backward pass, which depends only on the
# sizes), an operation whose derivative is average pooling again (mathfun.linear_rule).
# Max pooling passes each gradient to the window's maximum: a scatter of dL/dY to the
# positions of the maxima (mathfun.put), found by running maxpool for its indices.

linear_rule(avgpool)


@rule(maxpool)
def _(g, Y, X, poolSize, *args, nargout=1, **kwargs):
    if nargout != 1:
        if any(v is not None for v in g[1:]):
            raise ValueError("dlgradient: EnableHigherDerivatives is not supported through "
                             "maxpool's indices")
        g = g[0]
    (_, indx, _), _ = maxpool.__wrapped_operation__(X, poolSize, *args, nargout=3, **kwargs)
    shape = np.shape(X._data)
    first = (indx._data.reshape(-1) - 1).astype(np.intp)     # 1-based, column-major
    where = np.ravel_multi_index(np.unravel_index(first, shape, order="F"), shape)
    return (put(g, where.reshape(-1), shape, X._dims), None) + (None,) * len(args)
