"""The pooling seam: prepare arrays and launch the ``_pool`` kernels (the only importer).

Everything here takes and returns numpy arrays in MATLAB dimension order,
``x: S1 x .. x Sd x C x N`` (d = 1..3, N every observation), exactly as :mod:`mlayers._ops`
does for convolutions, whose layout helpers and geometry (``conv_geometry`` with the pool
size as the filter and dilation 1) it reuses.  Checks happen before any ``nogil`` code.

Max pooling's winners are kept as plane-local int32 offsets (:class:`Winners`); their
``linear_indices()`` are MATLAB's 0-based column-major linear indices into the whole
``x`` (the offset plus the plane's start), so ``x.ravel(order='F')[idx]`` is the max; the
public ``maxpool`` adds 1.
"""
import math

import numpy as np

from . import _buffers, _defaults, _ops, _pool
from ._cache import LRUCache

_MODES = {"max": _pool.MAX, "average": _pool.AVERAGE, "average-real": _pool.AVERAGE_REAL}


#: (shape, pool size, stride, padding) -> (d, geometry) of float arrays already checked
_SETUPS = LRUCache(64)


def _setup(x, pool_size, stride, padding, fname):
    key = None
    if type(x) is np.ndarray and (x.dtype == np.float32 or x.dtype == np.float64):
        key = (x.shape, pool_size, stride, padding)
        try:
            hit = _SETUPS.get(key)
        except (TypeError, KeyError):   # options as lists or arrays: checked every call
            # (KeyError: another thread evicted the entry between lookup and reuse)
            hit = key = None
        if hit is not None:
            return (x,) + hit
    x, d, geom = _check(x, pool_size, stride, padding, fname)
    if key is not None:
        _SETUPS[key] = (d, geom)
    return x, d, geom


def _check(x, pool_size, stride, padding, fname):
    x = _ops._as_float_array(x, fname, "X")
    d = x.ndim - 2
    if not 1 <= d <= 3:
        raise ValueError(f"{fname}: X must have 1 to 3 spatial dimensions, a channel and an "
                         f"observation dimension, got size {_ops._describe(x)}")
    if min(x.shape[:d]) == 0:
        # no observations or channels: an empty result of the right size (the package's
        # empty-batch rule, docs/robustness.md); an empty spatial extent has no windows
        raise ValueError(f"{fname}: X must not have an empty spatial dimension, got size "
                         f"{_ops._describe(x)}")
    pool_size = _ops.int_vector(pool_size, d, fname, "PoolSize", 1)
    stride = _ops.int_vector(stride, d, fname, "Stride", 1)
    before, after = _ops._pads(padding, d, fname, "Padding")
    if any(max(b, a) >= k for b, a, k in zip(before, after, pool_size)):
        raise ValueError(f"{fname}: Padding must be smaller than PoolSize "
                         f"{list(pool_size)}, got {[list(before), list(after)]}")
    geom = _ops.conv_geometry(fname, x.shape[:d], pool_size, stride, (1,) * d, before, after)
    return x, d, geom


def _engine_in(x, d, geom):
    n, c = x.shape[d + 1], x.shape[d]
    return _ops._to_engine(x, d, x.dtype).reshape((n * c,) + geom.in_engine), n, c


_REALMAX = {np.dtype(np.float32): float(np.finfo(np.float32).max),
            np.dtype(np.float64): float(np.finfo(np.float64).max)}


def _pad_floor(dtype):
    """What padded cells hold in max pooling: ``-realmax`` of the class (MathWorks codegen
    source, MATLAB_SEMANTICS §11.2; package default) or ``-Inf`` (never win)."""
    if _defaults.get("maxpool_padding") == "-Inf":
        return -np.inf
    return -_REALMAX[np.dtype(dtype)]


#: pooling moves memory more than it computes: a thread team pays from this many
#: elements read and written (28x28x8x128, N1's first pooling, 1.0e6 elements: 0.79 ms
#: on one thread, stayed on one below the convolutions' threshold of 2^20 window terms)
_POOL_PARALLEL_MIN = 1 << 16


def _work(geom, planes):
    """Elements read and written (window terms) by pooling ``planes`` planes."""
    return planes * (geom.in_total + geom.out_total * geom.k_total)


def _threads(geom, planes):
    return _threads_elements(_work(geom, planes))


def _threads_elements(work):
    return 1 if work < _POOL_PARALLEL_MIN else _ops.get_num_threads()


def pool(x, pool_size, stride=1, padding=0, mode="max", fname="predict"):
    """Max or average pooling of X (``S1..Sd x C x N``) -> ``O1..Od x C x N``.

    ``mode``: ``"max"``; ``"average"`` (padded cells count as zeros, MATLAB's default);
    ``"average-real"`` (padded cells left out, MATLAB's PaddingValue ``'mean'``).
    ``padding``: a scalar, a length-d vector, a ``2 x d`` ``[before; after]`` array or a
    pair of tuples.  Padding must be smaller than the pool size, as in MATLAB.
    """
    x, d, geom = _setup(x, pool_size, stride, padding, fname)
    return _pool_run(x, d, geom, _MODES[mode], *_pool_shapes(x.shape, d, geom))


def pool_fn(shape, dtype, pool_size, stride=1, padding=0, mode="max", fname="predict"):
    """:func:`pool` for float arrays of ``shape`` and ``dtype``, checked now: a function
    of x alone (the inference program's step), its shapes worked out once."""
    _, d, geom = _setup(np.broadcast_to(np.zeros((), dtype), shape), pool_size, stride,
                        padding, fname)
    m = _MODES[mode]
    shapes, work = _pool_shapes(shape, d, geom)
    run = lambda x: _pool_run(x, d, geom, m, shapes, work)     # noqa: E731
    # (in a compiled program when what padded cells hold cannot matter: max pooling reads
    # the package default on every call)
    if m != _MODES["max"] or not _padded(geom):
        run.program = _ops.program_step("pool", None, (
            shapes[0][0], m, work < _POOL_PARALLEL_MIN,
            np.float64(_pad_floor(dtype)).view(np.int64), *geom.packed))
    return run


def _padded(geom):
    """Whether a window has padded cells (before or after the input, dimension k's
    sizes at k, 3 + k (output), 6 + k (window), 9 + k (stride), 15 + k (padding))."""
    g = geom.packed
    return any(g[15 + k] or (g[3 + k] - 1) * g[9 + k] - g[15 + k] + g[6 + k] > g[k]
               for k in range(3))


def _pool_shapes(shape, d, geom):
    """(the engine shapes of X and Y and Y's MATLAB-order view, the work for the thread
    count) of pooling an array of ``shape``."""
    n, c = shape[d + 1], shape[d]
    return (((n * c,) + geom.in_engine,
             (n * c,) + geom.out_engine, (n, c) + geom.out_size[::-1]),
            _work(geom, n * c))


def _pool_run(x, d, geom, mode, shapes, work):
    xe = _ops._to_engine(x, d, x.dtype, shapes[0])
    ye = _buffers.empty(shapes[1], x.dtype, "C")
    _pool.pool(xe, ye, geom.packed, mode, _threads_elements(work), _pad_floor(x.dtype))
    return ye.reshape(shapes[2]).T


class Winners:
    """The winners of a max pooling: plane-local int32 offsets in the engine layout
    (``planes x O0 x O1 x O2``), what :func:`maxpool_backward` needs."""

    __slots__ = ("offsets", "geom", "n", "c")

    def __init__(self, offsets, geom, n, c):
        self.offsets, self.geom, self.n, self.c = offsets, geom, n, c

    def linear_indices(self):
        """MATLAB's 0-based column-major linear indices into the whole input (int64, the
        output's size, MATLAB order)."""
        planes = self.n * self.c
        g = self.offsets.astype(np.int64)
        g += (np.arange(planes, dtype=np.int64) * self.geom.in_total).reshape(-1, 1, 1, 1)
        return _ops._from_engine(g.reshape((self.n, self.c) + self.geom.out_engine),
                                 self.geom.out_size)


def maxpool_indices(x, pool_size, stride=1, padding=0, fname="maxpool"):
    """Max pooling that keeps the winners: returns ``(y, winners)`` (:class:`Winners`)."""
    x, d, geom = _setup(x, pool_size, stride, padding, fname)
    if geom.in_total >= 2**31:
        raise ValueError(f"{fname}: X has {geom.in_total} elements per channel and "
                         f"observation; max pooling indices hold fewer than 2^31")
    xe, n, c = _engine_in(x, d, geom)
    ye = _buffers.empty((n * c,) + geom.out_engine, x.dtype, "C")
    ie = _buffers.empty((n * c,) + geom.out_engine, np.int32, "C")
    _pool.maxpool_argmax(xe, ye, ie, geom.packed, _threads(geom, n * c), _pad_floor(x.dtype))
    y = _ops._from_engine(ye.reshape((n, c) + geom.out_engine), geom.out_size)
    return y, Winners(ie, geom, n, c)


def maxpool_backward(dy, winners, dtype, fname="maxpool"):
    """Gradient of max pooling: ``dy`` (y's size, MATLAB order) added at the winners
    into zeros of the input's size.  Parallel over planes: every winner lies in its
    output's own (observation, channel) plane."""
    geom, n, c = winners.geom, winners.n, winners.c
    d = len(geom.in_size)
    planes = n * c
    dye = _ops._to_engine(np.asarray(dy), d, dtype).reshape((planes,) + geom.out_engine)
    dxe = _buffers.empty((planes, geom.in_total), dtype, "C")
    _pool.maxpool_backward(dye, winners.offsets, dxe,
                           _threads(geom, planes))
    return _ops._from_engine(dxe.reshape((n, c) + geom.in_engine), geom.in_size)


def avgpool_backward(dy, x_shape, dtype, pool_size, stride=1, padding=0, mode="average",
                     fname="avgpool"):
    """Adjoint of average pooling (``mode`` as in :func:`pool`): ``dLdX`` of ``x_shape``."""
    d = len(x_shape) - 2
    pool_size = _ops.int_vector(pool_size, d, fname, "PoolSize", 1)
    stride = _ops.int_vector(stride, d, fname, "Stride", 1)
    before, after = _ops._pads(padding, d, fname, "Padding")
    geom = _ops.conv_geometry(fname, tuple(x_shape[:d]), pool_size, stride, (1,) * d,
                              before, after)
    n, c = x_shape[d + 1], x_shape[d]
    dye = _ops._to_engine(np.asarray(dy, dtype=dtype), d, dtype).reshape(
        (n * c,) + geom.out_engine)
    dxe = _buffers.empty((n * c,) + geom.in_engine, dtype, "C")
    _pool.avgpool_backward(dye, dxe, geom.packed, _MODES[mode], _threads(geom, n * c))
    return _ops._from_engine(dxe.reshape((n, c) + geom.in_engine), geom.in_size)


def global_average(data, axes):
    """Global average pooling of ``data`` (float32/64, Fortran-ordered) over ``axes`` (sorted
    axis numbers; pooled axes become singletons), without a transpose, or None when the
    shortcut does not apply (then :func:`pool` does it).

    The pooled axes must be the leading ones (e.g. S S of ``SSCB``: each (channel,
    observation) plane is contiguous) or the trailing ones (T of ``CBT``: a C-order
    ``T x (B*C)`` array whose contiguous rows are added up); data in another dense order,
    pooled over one axis that is contiguous, is reduced as its Fortran-ordered view.  Sums are in double in
    memory order, exactly as :func:`pool` computes them; thread-count independent."""
    if data.dtype not in (np.float32, np.float64) or data.ndim < 2 or not axes \
            or data.size == 0:
        return None
    if not data.flags.f_contiguous:
        # another dense order (a C-ordered array, a layer's permuted output) pooled over
        # its contiguous axis: the same reduction on the Fortran-ordered view with that
        # axis first, its terms still added in pool's order (one axis)
        if len(axes) != 1 or data.strides[axes[0]] != data.itemsize:
            return None
        # the pooled axis last (a singleton may have any stride: it must not take its place)
        order = sorted((i for i in range(data.ndim) if i != axes[0]),
                       key=lambda i: -data.strides[i]) + [axes[0]]
        v = data.transpose(order)
        if not v.flags.c_contiguous:
            return None
        return global_average(v.T, [0]).T.transpose(np.argsort(order))
    nd, k = data.ndim, len(axes)
    shape = data.shape
    out_shape = tuple(1 if i in axes else n for i, n in enumerate(shape))
    inner = 1
    for i in axes:
        inner *= shape[i]
    outer = data.size // inner
    y = np.empty(out_shape, dtype=data.dtype, order="F")
    flat = data.reshape(-1, order="F")           # a view: data is Fortran-ordered
    yflat = y.reshape(-1, order="F")
    if list(axes) == list(range(k)):             # leading axes: contiguous planes
        _pool.mean_planes(flat.reshape(outer, inner), yflat, float(inner),
                          _threads_elements(data.size))
    elif list(axes) == list(range(nd - k, nd)):  # trailing axes: contiguous rows
        _pool.mean_rows(flat.reshape(inner, outer), yflat, float(inner),
                        _threads_elements(data.size))
    else:
        return None
    return y


def global_average_backward(dy, x_shape, dtype, order=None):
    """Adjoint of :func:`global_average`: ``dy / area`` (in ``dtype``, as
    :func:`avgpool_backward` computes it) spread over every pooled cell, in the memory
    ``order`` of the input (:func:`mlayers._ops.memory_order`; Fortran order when None), so the layer
    before gets its gradient in its own layout (no copy into it)."""
    dy = np.asarray(dy, dtype=dtype)
    area = math.prod(x_shape) // max(dy.size, 1)
    if order is None:
        dx = _buffers.empty(x_shape, dtype, "F")
    else:
        dx = _buffers.empty(tuple(x_shape[k] for k in order), dtype, "C").transpose(
            np.argsort(order))
    dx[...] = dy / dy.dtype.type(area)
    return dx
