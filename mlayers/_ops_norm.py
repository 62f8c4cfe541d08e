"""Seam of the normalization kernels (``pyx/_norm.pyx``): batch normalization, group
normalization (layer/group/instance), softmax over channels and ReLU, in MATLAB's layout,
and fullyconnect's gemm (numpy's BLAS held to ``ml.threads``).

Everything here takes numpy arrays in MATLAB's canonical dlarray order (``S.. x C x B T U..``)
and the index of the channel axis.  The kernels see a C-contiguous ``O x C x I`` block
(``I`` = product of the dimensions before C, ``O`` = product of those after it): for a
Fortran-ordered array that is ``x.reshape((I, C, O), order='F').T``, a view, so MATLAB-order
data from ``scipy.io.loadmat`` or from another kernel is never copied or transposed.
C-ordered input pays one copy into that layout.  Results come back in the input's MATLAB
shape, Fortran-ordered.

This module is the only importer of ``mlayers._norm``; the thread count comes from
``mlayers._ops`` (``ml.threads``).  Per-channel statistics are accumulated in double in a
fixed order by one thread each, so results do not depend on the thread count.
"""
import glob
import math

import numpy as np

from . import _norm
from . import _buffers, _ops

#: below this many elements the kernels run on one thread (thread start-up dominates)
_PARALLEL_MIN = 32768


def _threads(n):
    return 1 if n < _PARALLEL_MIN else _ops.get_num_threads()


def _last_level_cache_bytes(default=32 << 20):
    """The largest CPU cache Linux reports (sysfs), else ``default``."""
    sizes = []
    for path in glob.glob("/sys/devices/system/cpu/cpu0/cache/index*/size"):
        try:
            with open(path) as f:
                text = f.read().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20}.get(text[-1:], 1)
            sizes.append(int(text.rstrip("KM")) * scale)
        except (OSError, ValueError):
            pass
    return max(sizes, default=default)


#: a pass that reads and writes at least this many bytes stores its result with
#: non-temporal stores (``pyx/_stream.h``): its arrays do not fit in the last-level cache,
#: so the next layer would not find the result there anyway.  Same values either way.
STREAM_MIN_BYTES = _last_level_cache_bytes()


def _stream(*arrays):
    """Whether a pass over ``arrays`` (its inputs and its result) should stream its result."""
    return sum(a.nbytes for a in arrays) >= STREAM_MIN_BYTES


def _block_dims(shape, c):
    """(I, C, O) of a MATLAB-order shape: the elements before, along and after axis c."""
    return math.prod(shape[:c]), shape[c], math.prod(shape[c + 1:])


def _block(x, c, dims=None):
    """(O x C x I C-contiguous view or copy, (I, C, O)) of a MATLAB-order array
    (``dims``: :func:`_block_dims` of its shape, when the caller has them)."""
    dims = dims or _block_dims(x.shape, c)
    if x.flags.f_contiguous:
        return x.reshape(dims, order="F").T, dims
    return np.asfortranarray(x).reshape(dims, order="F").T, dims


def _new(shape, dims, dtype):
    """A Fortran-ordered result of MATLAB shape ``shape`` and its O x C x I kernel view."""
    y = _empty(shape, dtype, "F")
    return y, y.reshape(dims, order="F").T


# --------------------------------------------------------------------------- results
# (large results come from mlayers._buffers' pool: page faults, not the kernels, were the
# cost of fresh arrays inside a network)

_empty = _buffers.empty
_empty_like = _buffers.empty_like


def _vec(v, n):
    """A C-contiguous float64 vector of n elements (a scalar is repeated)."""
    v = np.asarray(v, dtype=np.float64).reshape(-1)
    if v.size == n:
        return v if v.flags.c_contiguous else v.copy()
    return np.full(n, v[0])


# --------------------------------------------------------------------------- batch norm

def bn_train(x, c, offset, scale, eps, rectify=False):
    """Training batchnorm: ``(y, mean, var, invstd)``; mean/var/invstd per channel, float64,
    the variance biased (divided by the element count).  ``rectify``: y is relu's values of
    the normalized output (the ReLU after it in the same pass)."""
    xb, dims = _block(x, c)
    nc = dims[1]
    y, yb = _new(x.shape, dims, x.dtype)
    # an empty batch leaves the statistics NaN (MATLAB's mean of nothing)
    mean, var, invstd = np.full(nc, np.nan), np.full(nc, np.nan), np.full(nc, np.nan)
    _norm.bn_train_forward(xb, _vec(offset, nc), _vec(scale, nc), float(eps), yb, mean, var,
                           invstd, np.empty(nc), _threads(x.size), _stream(x, y),
                           rect=rectify)
    return y, mean, var, invstd


def bn_train_backward(x, dy, c, mean, invstd, scale, mask=None):
    """``(dx, dscale, doffset)`` of training batchnorm (dscale, doffset per channel, float64).
    ``mask``: the output of :func:`bn_train` with ``rectify`` (x's shape and layout), whose
    ReLU's backward applies to dy first (dy where mask > 0, else 0; no array of it)."""
    xb, dims = _block(x, c)
    dyb, _ = _block(np.asarray(dy, dtype=x.dtype), c)
    nc = dims[1]
    dx, dxb = _new(x.shape, dims, x.dtype)
    dscale, doffset = np.empty(nc), np.empty(nc)
    _norm.bn_train_backward(xb, dyb, mean, invstd, _vec(scale, nc), dxb, dscale, doffset,
                            np.empty(nc), np.empty(nc), np.empty(nc), _threads(x.size),
                            _stream(x, dyb, dx),
                            mask=None if mask is None else _block(mask, c)[0])
    return dx, dscale, doffset


def bn_infer_backward(x, dy, c, mean, a):
    """``(dx, sum(dy), sum(dy .* (x - mean)))`` per channel of inference batchnorm
    (``dx = a[c]*dy``), one sweep."""
    xb, dims = _block(x, c)
    dyb, _ = _block(np.asarray(dy, dtype=x.dtype), c)
    nc = dims[1]
    dx, dxb = _new(x.shape, dims, x.dtype)
    sg, sgx = np.empty(nc), np.empty(nc)
    _norm.bn_infer_backward(xb, dyb, _vec(mean, nc), _vec(a, nc), dxb, sg, sgx,
                            _threads(x.size), _stream(x, dyb, dx))
    return dx, sg, sgx


def channel_affine(x, c, m, a, b):
    """``y = a[c]*(x - m[c]) + b[c]`` per channel (batchnorm's inference form)."""
    xb, dims = _block(x, c)
    y, yb = _new(x.shape, dims, x.dtype)
    _norm.channel_affine(xb, _vec(m, dims[1]), _vec(a, dims[1]), _vec(b, dims[1]), yb,
                         _threads(x.size), _stream(x, y))
    return y


# --------------------------------------------------------------------------- group norm

def gn(x, c, groups, offset, scale, eps):
    """Normalization per (observation, group of consecutive channels) over the group's
    channels and every dimension before C; the dimensions after C are observations.
    Returns ``(y, mean, invstd)`` (statistics float64, O*G)."""
    xb, dims = _block(x, c)
    no = dims[2]
    y, yb = _new(x.shape, dims, x.dtype)
    mean, invstd = np.empty(no * groups), np.empty(no * groups)
    _norm.gn_forward(xb, groups, _vec(offset, dims[1]), _vec(scale, dims[1]), float(eps),
                     yb, mean, invstd, _threads(x.size), _stream(x, y))
    return y, mean, invstd


def gn_backward(x, dy, c, groups, mean, invstd, scale):
    """``(dx, dscale, doffset)`` of :func:`gn` (dscale, doffset float64 per channel)."""
    xb, dims = _block(x, c)
    dyb, _ = _block(np.asarray(dy, dtype=x.dtype), c)
    nc, no = dims[1], dims[2]
    dx, dxb = _new(x.shape, dims, x.dtype)
    sg, sgx = np.zeros((no, nc)), np.zeros((no, nc))
    _norm.gn_backward(xb, dyb, groups, mean, invstd, _vec(scale, nc), dxb, sg, sgx,
                      _threads(x.size), _stream(x, dyb, dx))
    r = np.repeat(invstd.reshape(no, groups), nc // groups, axis=1)
    return dx, (sgx * r).sum(axis=0), sg.sum(axis=0)


# --------------------------------------------------------------------------- channel norm
# Normalization over C alone (layer normalization "channel-only"): every other dimension
# indexes positions, so any dense memory order works as an O x C x I block (O, I: the
# dimensions stored slower / faster than C), without a copy: a Fortran C x B x T array is
# O = B*T rows of C contiguous values; the B x C x T memory of a convolution output is
# O = B, I = T.  Results take the input's strides.

def _cperm(x, c):
    """Axis order (slowest first) in which x is C-contiguous with ``c`` placed by its
    stride, or None when x is not dense."""
    if x.shape[c] > 1:
        return _ops.memory_order(x)
    # a size-1 C may sit anywhere: last (I = 1)
    perm = sorted((k for k in range(x.ndim) if k != c), key=lambda k: -x.strides[k])
    perm.append(c)
    return perm if x.transpose(perm).flags.c_contiguous else None


def _cblock(x, c):
    """(x or a Fortran copy, axis permutation, (O, C, I)) for the channel-norm kernels."""
    perm = _cperm(x, c)
    if perm is None:
        x = np.asfortranarray(x)
        perm = _cperm(x, c)
    j = perm.index(c)
    o = math.prod(x.shape[k] for k in perm[:j])
    i = math.prod(x.shape[k] for k in perm[j + 1:])
    return x, perm, (o, x.shape[c], i)


def _cview(a, perm, dims):
    """The O x C x I view of ``a`` (C-contiguous in ``perm`` order: a view, never a copy)."""
    return a.transpose(perm).reshape(dims)


def cnorm(x, c, offset, scale, eps):
    """Normalization over axis ``c`` alone per position: ``(y, stats)``, ``y`` in x's
    memory layout; ``stats`` is for :func:`cnorm_backward`."""
    x, perm, dims = _cblock(x, c)
    no, nc, ni = dims
    y = _empty_like(x)            # x's strides (x is dense)
    mean, invstd = np.empty((no, ni)), np.empty((no, ni))
    _norm.cnorm_forward(_cview(x, perm, dims), _vec(offset, nc), _vec(scale, nc),
                        float(eps), _cview(y, perm, dims), mean, invstd, _threads(x.size))
    return y, (x, perm, dims, mean, invstd)


def cnorm_backward(stats, dy, scale):
    """``(dx, dscale, doffset)`` of :func:`cnorm` (dscale, doffset float64 per channel)."""
    x, perm, dims, mean, invstd = stats
    nc = dims[1]
    dy = _like_layout(dy, x)
    dx = _empty_like(x)
    k = _norm.cnorm_chunks(dims[0], dims[2])
    psg, psgx = np.zeros((k, nc)), np.zeros((k, nc))
    _norm.cnorm_backward(_cview(x, perm, dims), _cview(dy, perm, dims), mean, invstd,
                         _vec(scale, nc), _cview(dx, perm, dims), psg, psgx,
                         _threads(x.size))
    return dx, psgx.sum(axis=0), psg.sum(axis=0)


# --------------------------------------------------------------------------- softmax

def softmax(x, c, dims=None):
    """Softmax over axis ``c`` of a MATLAB-order array (``dims``: as :func:`_block`)."""
    xb, dims = _block(x, c, dims)
    y, yb = _new(x.shape, dims, x.dtype)
    if x.size:
        _norm.softmax_forward(xb, yb, _threads(x.size))
    return y


def softmax_fn(shape, c):
    """:func:`softmax` over axis ``c`` for arrays of ``shape`` (the inference program's
    step), its block shape worked out once."""
    dims = _block_dims(shape, c)
    run = lambda x: softmax(x, c, dims)     # noqa: E731
    run.program = _ops.program_step("softmax", None, (
        dims[2], dims[1], dims[0], math.prod(shape) < _PARALLEL_MIN))
    return run


def softmax_backward(y, dy, c):
    yb, dims = _block(y, c)
    dyb, _ = _block(np.asarray(dy, dtype=y.dtype), c)
    dx, dxb = _new(y.shape, dims, y.dtype)
    if y.size:
        _norm.softmax_backward(yb, dyb, dxb, _threads(y.size))
    return dx


# --------------------------------------------------------------------------- relu
# Elementwise kernels run on the raw buffer whatever the axis order of a dense array
# (C, Fortran, or a permutation of either, such as the B x C x T memory of a CBT
# convolution output): the result gets the input's strides (numpy's ``empty_like`` keeps
# a dense layout), so nothing is copied.

def _flat(x):
    """A 1-D view of the memory of a dense (permuted-contiguous) array, or None."""
    if x.flags.c_contiguous:
        return x.reshape(-1)
    if x.flags.f_contiguous:
        return x.reshape(-1, order="F")
    perm = sorted(range(x.ndim), key=lambda k: -abs(x.strides[k]))
    t = x.transpose(perm)
    return t.reshape(-1) if t.flags.c_contiguous else None


def _like_layout(a, x):
    """``a`` (broadcastable to x) as an array with x's dtype and strides."""
    a = np.asarray(a, dtype=x.dtype)
    if a.strides != x.strides or a.shape != x.shape:
        d = _empty_like(x)
        d[...] = a                  # one strided copy into x's layout
        a = d
    return a


def _dense(x):
    """(x or a C-ordered copy, its 1-D memory view)."""
    f = _flat(x)
    if f is None:
        x = np.ascontiguousarray(x)
        f = x.reshape(-1)
    return x, f


def relu(x):
    """``max(x, 0)`` with NaN kept, in x's memory layout (no copy of a dense array)."""
    x, xf = _dense(x)
    y = _empty_like(x)
    _norm.relu_forward(xf, _flat(y), _threads(x.size), _stream(x, y))
    return y


def relu_in_place(x):
    """``x = max(x, 0)`` (NaN kept) in x's own memory; False (x untouched) unless x is
    dense."""
    f = _flat(x)
    if f is None:
        return False
    _norm.relu_forward(f, f, _threads(x.size))
    return True


def add(a, b, rectify=False, into_a=False):
    """``a + b`` (``max(a + b, 0)`` with NaN kept when ``rectify``) for arrays of one shape,
    dtype and dense memory layout, in that layout; numpy's sum (and the ReLU kernel) for
    anything else.  The same bits either way.  ``into_a``: the result overwrites ``a`` (a
    dense float array no one else holds) and is returned."""
    if (type(a) is np.ndarray and type(b) is np.ndarray and a.shape == b.shape
            and a.dtype == b.dtype and a.dtype in (np.float32, np.float64)
            and a.strides == b.strides):
        af, bf = _flat(a), _flat(b)
        if af is not None and bf is not None:
            y = a if into_a else _empty_like(a)
            _norm.add(af, bf, _flat(y), rectify, _threads(a.size), _stream(a, b, y))
            return y
    y = np.add(a, b, out=a) if into_a else _buffers.add(a, b)
    return relu_in_place_or_new(y) if rectify else y


def relu_in_place_or_new(x):
    """x rectified in place when it is dense, else a new rectified array."""
    return x if relu_in_place(x) else relu(x)


def relu_backward(x, dy):
    """``dy`` where ``x > 0``, else 0, in x's memory layout."""
    x, xf = _dense(x)
    dy = _like_layout(dy, x)
    dx = _empty_like(x)
    _norm.relu_backward(xf, _flat(dy), _flat(dx), _threads(x.size), _stream(x, dy, dx))
    return dx
