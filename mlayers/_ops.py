"""Prepare arrays and launch the compiled kernels: the one seam between MATLAB and the engine.

This is the only module that imports the kernels and the only one that knows how MATLAB's
dimension order maps onto the engine's memory layout.  Everything here takes and returns
numpy arrays in MATLAB dimension order:

    x        S1 x ... x Sd x C x N          (N: every observation, e.g. B or B*T)
    conv w   F1 x ... x Fd x Cg x (Fg*G)    MATLAB's grouped F x Cg x Fg x G, last two merged
    tconv w  F1 x ... x Fd x Fg x (Cg*G)    MATLAB's grouped F x Fg x Cg x G, last two merged
    bias     any shape with Fg*G elements, or None

(An ungrouped MATLAB weight ``F x C x NF`` is the ``G = 1`` case as it stands.)

Layout: MATLAB arrays are column-major, so the Fortran-ordered ``S1 x .. x Sd x C x N``
array *is* a C-ordered ``N x C x Sd x .. x S1`` array, which is the engine's layout with the
spatial dimensions reversed.  ``a.T`` is therefore a free view; only C-ordered (row-major)
MATLAB-order input pays one copy.  Results are allocated in the engine layout and returned
as the ``.T`` view: Fortran-ordered arrays in MATLAB order.

Checks on shapes, sizes and dtypes happen here, before any ``nogil`` code runs; messages
name the calling MATLAB function (``fname``) and the argument.
"""
import contextlib
import ctypes
import functools
import math
import os
import threading
import weakref
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from . import _buffers, _conv, _conv_fallback, _defaults, _norm, _pool
from ._validate import check_allocation

_INT_MAX = 2**31 - 1

# --------------------------------------------------------------------------- threads

_state = {"threads": max(1, _conv.max_threads()), "blas": None, "winograd": True}


# ``with threads(n)`` is thread-local (issue 21): a block in one Python thread does not
# change the count that other threads see.  set_num_threads sets the process-wide count
# (or, inside a ``threads`` block, that block's count, restored when it ends).
class _Local(threading.local):
    threads = None      # (a class default: reading it outside a block raises nothing)


_local = _Local()


def get_num_threads():
    """Number of threads the kernels use (in this Python thread)."""
    return _local.threads or _state["threads"]


def _check_threads(n, fname):
    if n is None:
        n = _conv.max_threads()
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"{fname}: n must be a positive integer, got {n!r}")
    return int(n)


def set_num_threads(n):
    """Set the number of threads the kernels use (``None``: all the cores OpenMP sees).

    Process-wide, except inside a :func:`threads` block, where it changes that block's
    count (in this Python thread) until the block ends."""
    n = _check_threads(n, "set_num_threads")
    if _local.threads:
        _local.threads = n
    else:
        _state["threads"] = n


@contextlib.contextmanager
def threads(n):
    """Context manager: run the kernels with ``n`` threads inside the block.

    Thread-local: other Python threads keep their own count meanwhile."""
    n = _check_threads(n, "threads")
    old = _local.threads
    _local.threads = n
    try:
        yield
    finally:
        _local.threads = old


def get_winograd():
    """Whether convolutions may use Winograd's algorithm (set_winograd)."""
    return _state["winograd"]


def set_winograd(enabled):
    """Allow (True, the default) or forbid Winograd's algorithm where it is faster than
    direct sums of products:

    * 2-D 3 x 3 convolutions (stride and dilation 1, one group, padding at most 1) with at
      least 16 channels and filters: F(2 x 2, 3 x 3) over planes, 16 products per 2 x 2
      outputs instead of 36, for the convolution, dX and (larger batches) dW.  Its
      float32 errors are below PyTorch's (dX, 64-512 channels: RMS 1.7-2.0e-7 of the
      output's against 2.1-2.3e-7), near the direct sums' (1.7-1.8e-7);
    * filters three taps wide along the first dimension (stride and dilation 1 there),
      with enough channels and filters (3 x 3 convolutions from 11 of each), float32 and
      float64: F(2, 3) along that dimension, two thirds of the multiplications for a 3 x 3
      filter.  Its rounding errors are those of the direct sums or smaller (a product
      sums a third of the terms: float32, 64 channels, median 2.9e-7 against 3.4e-7);
    * float64 one-dimensional convolutions with filters of 3 to 7 taps and at least 64
      channels and filters: F(9 - K, K), 5 taps: 2.5 times fewer multiplications.  Its
      errors are 2-4 times the direct sums' (relative errors about 1e-15 against 5e-16).

    Either way the outputs differ from the direct sums' in the last bits.  Forbidden,
    every output is a direct sum of products, as for every other convolution.

    Examples
    --------
    >>> import mlayers as ml
    >>> ml.set_winograd(False)      # direct sums everywhere
    >>> ml.get_winograd()
    False
    >>> ml.set_winograd(True)
    """
    if not isinstance(enabled, (bool, np.bool_)):
        raise TypeError(f"set_winograd: enabled must be True or False, got {enabled!r}")
    _state["winograd"] = bool(enabled)


# Below this many multiply-adds a call runs on one thread: waking a thread team costs
# more than the work it would share (measured: tens to hundreds of microseconds).
_PARALLEL_MIN_MACS = 1 << 20


def _macs(geom, n_img, cout, cg):
    """Multiply-adds of a convolution: the work measure for threading and kernel choice."""
    return n_img * cout * cg * geom.out_total * geom.k_total


def _threads_for(macs):
    return 1 if macs < _PARALLEL_MIN_MACS else get_num_threads()


def blas_info():
    """The BLAS the kernels call: ``dict(name, version, corename, filepath, thread_hooks)``."""
    _ensure_blas_hooks()
    return dict(_state["blas"])


def _ensure_blas_hooks():
    """Find the BLAS behind scipy's cython_blas and hand its thread setters to the kernels.

    The kernels parallelise with OpenMP and call gemm from every thread; they hold BLAS to
    one thread meanwhile through these C functions.  Without them (another BLAS) the
    kernels still run, and show_config says the hooks are missing.
    """
    if _state["blas"] is not None:
        return
    info = {"name": "unknown", "version": "", "corename": "", "filepath": "",
            "thread_hooks": False}
    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads the library we must find)
        import threadpoolctl
        scipy_dir = os.path.dirname(os.path.dirname(scipy.linalg.__file__))
        ctrls = [c for c in threadpoolctl.ThreadpoolController().lib_controllers
                 if c.user_api == "blas"]
        # scipy bundles its own OpenBLAS next to the package (scipy.libs); numpy may load
        # another copy, which is not the one cython_blas calls.
        ctrls.sort(key=lambda c: not os.path.realpath(c.filepath).startswith(
            os.path.realpath(scipy_dir)))
        if ctrls:
            c = ctrls[0]
            info.update(name=c.internal_api, version=c.version or "",
                        filepath=c.filepath,
                        corename=getattr(c, "architecture", "") or "")
            lib = ctypes.CDLL(c.filepath)
            # threadpoolctl reports the file prefix (libscipy_openblas); symbols drop "lib"
            prefix = (getattr(c, "symbol_prefix", None) or getattr(c, "prefix", "") or "")
            prefixes = [prefix, prefix[3:] if prefix.startswith("lib") else prefix, "openblas"]
            setter = getter = None
            for p in prefixes:
                setter = getattr(lib, p + "_set_num_threads", None)
                getter = getattr(lib, p + "_get_num_threads", None)
                if setter is not None and getter is not None:
                    break
            if c.internal_api == "openblas" and setter is not None and getter is not None:
                # the addresses are kept for the other kernel modules (_ops_rnn)
                info["hook_addresses"] = (ctypes.cast(setter, ctypes.c_void_p).value,
                                          ctypes.cast(getter, ctypes.c_void_p).value)
                _conv.set_blas_thread_hooks(*info["hook_addresses"])
                info["thread_hooks"] = True
    except Exception as exc:  # an unknown BLAS must never stop the kernels from running
        info["error"] = repr(exc)
    _state["blas"] = info


def simd_name():
    """The instruction set of the SIMD kernels in use, e.g. ``'AVX-512 (64-byte vectors)'``."""
    level, _, vbytes = _conv.isa()
    return f"{_conv.ISA_NAMES[level]} ({vbytes}-byte vectors)"


def openmp_enabled():
    return bool(_conv.OPENMP)


# --------------------------------------------------------------------------- dtype and layout

def _describe(a):
    size = "×".join(str(s) for s in a.shape) if a.ndim else "scalar"
    return f"{size} {a.dtype}"


def _as_float_array(a, fname, argname):
    """numpy view of ``a``; TypeError unless real floating point (MATLAB single/double)."""
    if not isinstance(a, np.ndarray):
        try:
            a = np.asarray(a)
        except Exception:
            raise TypeError(f"{fname}: {argname} must be a real float32 or float64 array, "
                            f"got {type(a).__name__}") from None
    if a.dtype.kind == "f" and a.dtype.itemsize in (4, 8) and not a.dtype.isnative:
        a = a.astype(a.dtype.newbyteorder("="))  # e.g. big-endian data read from a file
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{fname}: {argname} must be a real float32 or float64 array "
                        f"(MATLAB single or double), got dtype {a.dtype}")
    return a


def compute_dtype(*arrays):
    """The precision of an operation on ``arrays``: single only when every operand is
    single (package default ``mixed_precision="double"``: the computation in the wider
    type), or MATLAB's rule, single when any operand is (``"single"``)."""
    if _defaults.get("mixed_precision") == "single":
        return np.float32 if any(a.dtype == np.float32 for a in arrays) else np.float64
    return np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64


#: a C-ordered operand of at least this many elements is reversed by _conv.reverse_axes
#: (numpy's element-by-element copy of a transpose: 32 x 32 x 3 x 32 float32 0.22 ms)
_REVERSE_MIN = 1 << 14


def _to_engine(a, d, dtype, shape=None):
    """MATLAB-order ``S1..Sd x C x N`` array -> C-contiguous ``N x C x 1.. x Sd..S1`` (3
    spatial; ``shape``, when the caller knows it)."""
    if a.flags.f_contiguous and a.dtype == dtype:
        e = a.T                                     # (what layers hand on: a view)
    elif a.flags.c_contiguous and a.dtype == dtype and a.size >= _REVERSE_MIN:
        e = np.empty(a.shape[::-1], dtype)
        _conv.reverse_axes(a.reshape(-1), e.reshape(-1), np.array(a.shape, dtype=np.intp))
    else:
        e = np.ascontiguousarray(a.T, dtype=dtype)  # a no-op for Fortran-ordered input
    return e.reshape(shape or e.shape[:2] + (1,) * (3 - d) + e.shape[2:])


def memory_order(a):
    """The axes of a dense array from the slowest to the fastest in memory (singletons
    first), in which ``a.transpose(order)`` is C-contiguous, or None when ``a`` is not
    dense."""
    order = sorted(range(a.ndim), key=lambda k: (a.shape[k] > 1, -a.strides[k]))
    return order if a.transpose(order).flags.c_contiguous else None


def _from_engine(e, spatial):
    """Engine array -> MATLAB-order view ``S1..Sd x C x N`` (Fortran-ordered, no copy)."""
    return e.reshape(e.shape[:2] + tuple(reversed(spatial))).T


def _engine_vec(v, d, fill):
    return np.array([fill] * (3 - d) + list(reversed(v)), dtype=np.intp)


# --------------------------------------------------------------------------- matmul

#: below this many multiply-adds one BLAS call on the calling thread
_MATMUL_SPLIT_MACS = 1 << 17
#: results up to this many elements with a long reduction are cut along the reduction,
#: in chunks of at least this many terms
_MATMUL_SMALL_RESULT = 1 << 12
_MATMUL_K_CHUNK = 4096


def _blas_operand(a):
    """(array, transposed, leading dimension) of a 2-D operand as column-major BLAS sees it."""
    if not a.flags.f_contiguous:
        if not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)
        return a, True, max(a.shape[1], 1)
    return a, False, max(a.shape[0], 1)


def matmul(a, b, bias=None):
    """``a @ b`` of 2-D float32/float64 arrays of one dtype, as a Fortran-ordered array;
    with ``bias`` (a contiguous vector of a's rows, its dtype), ``a @ b + bias`` with the
    bits of adding it afterwards (the kernel adds it to each chunk while it is cached).

    Large products are cut into chunks of rows or columns of the result (by shape alone,
    so results do not depend on the thread count), one single-threaded BLAS call each on
    the kernels' threads (``ml.threads``).  numpy's ``@`` would use its BLAS's own thread
    pool instead, whose workers spin for about 0.1 s after every threaded call and so take
    a core from the OpenMP kernels that run next (a training step alternates the two).
    """
    m, k = a.shape
    n = b.shape[1]
    if b.shape[0] != k:
        raise ValueError(f"matmul: inner dimensions must agree, got {m}×{k} and "
                         f"{b.shape[0]}×{n}")
    if bias is not None:
        if not (bias.dtype == a.dtype == b.dtype and bias.ndim == 1
                and bias.flags.c_contiguous):
            bias = np.ascontiguousarray(bias, dtype=np.result_type(a, b)).reshape(-1)
        if bias.size != m:
            raise ValueError(f"matmul: bias must have {m} elements, got {bias.size}")
    if (a.dtype != b.dtype or a.dtype not in (np.float32, np.float64)
            or max(m, n, k) > _INT_MAX or 0 in (m, n, k)):
        c = np.asfortranarray(a @ b)
        if bias is not None:
            c += bias.reshape(-1, 1)
        return c
    c = _buffers.empty((m, n), a.dtype, "F")     # (large ones: no page faults)
    _ensure_blas_hooks()
    a, ta, lda = _blas_operand(a)
    b, tb, ldb = _blas_operand(b)
    split, chunk, pieces = _matmul_split(m, n, k, _MATMUL_SPLIT_MACS, _MATMUL_SMALL_RESULT,
                                         _MATMUL_K_CHUNK)
    threads = min(get_num_threads(), pieces)
    _conv.matmul(a.reshape(-1, order="A"), b.reshape(-1, order="A"), c.reshape(-1, order="F"),
                 m, n, k, ta, tb, lda, ldb, split, chunk, threads, bias)
    return c


def matmul_fn(a, n, bias=None):
    """:func:`matmul` ``(a, b, bias)`` as a function of b, for b of ``a.shape[1] x n``
    elements of a's dtype (any shape, read in Fortran order), its checks and chunks worked
    out now: the inference program's step of a fully connected layer.  None where
    :func:`matmul` would not call the kernel."""
    m, k = a.shape
    if (a.dtype not in (np.float32, np.float64) or max(m, n, k) > _INT_MAX
            or 0 in (m, n, k) or (bias is not None and (
                bias.dtype != a.dtype or bias.shape != (m,) or not bias.flags.c_contiguous))):
        return None
    _ensure_blas_hooks()
    a, ta, lda = _blas_operand(a)
    a = a.reshape(-1, order="A")
    split, chunk, pieces = _matmul_split(m, n, k, _MATMUL_SPLIT_MACS, _MATMUL_SMALL_RESULT,
                                         _MATMUL_K_CHUNK)
    kernel, dtype = _conv.matmul, a.dtype

    def run(b):
        c = np.empty((m, n), dtype=dtype, order="F")
        kernel(a, b.reshape(-1, order="F"), c.reshape(-1, order="F"), m, n, k, ta, False,
               lda, k, split, chunk, 1 if pieces == 1 else min(get_num_threads(), pieces),
               bias)
        return c
    run.program = program_step("matmul", dtype, (
        _address(a), 0 if bias is None else _address(bias), m, n, k, ta, lda, split, chunk,
        pieces))
    return run


@functools.lru_cache(maxsize=256)
def _matmul_split(m, n, k, split_macs, small_result, k_chunk):
    """(split, chunk, pieces) of :func:`_conv.matmul` for an m x n x k product (the
    module's thresholds passed in, so the cache follows them): cut the result's longer
    side, or, for a small result of a long reduction (a fully connected layer's forward:
    OutputSize x batch over every feature), the reduction."""
    split = 2 if m * n <= small_result and k >= 16 * max(m, n) else int(n >= m)
    length = (m, n, k)[split]
    unit = k_chunk if split == 2 else 32
    pieces = 1 if m * n * k < split_macs else min(8, max(1, length // unit))
    if pieces == 1:
        split, length = 0, m    # one call straight into c (no partial sums to add up)
    chunk = -(-length // pieces)
    return split, chunk, -(-length // chunk)


# --------------------------------------------------------------------------- geometry

class Geometry:
    """Sizes of one convolution in MATLAB order, and the packed engine form of them.

    ``in_size``/``out_size`` are the convolution's input/output spatial sizes; for a
    transposed convolution the roles swap (its input is the convolution's output).
    """

    __slots__ = ("in_size", "out_size", "kernel", "stride", "dilation", "pad_before",
                 "packed", "key", "in_engine", "out_engine", "in_total", "out_total",
                 "k_total")

    def __init__(self, in_size, out_size, kernel, stride, dilation, pad_before):
        self.in_size, self.out_size, self.kernel = tuple(in_size), tuple(out_size), tuple(kernel)
        self.stride, self.dilation, self.pad_before = tuple(stride), tuple(dilation), tuple(pad_before)
        d = len(self.kernel)
        self.packed = np.concatenate([
            _engine_vec(self.in_size, d, 1), _engine_vec(self.out_size, d, 1),
            _engine_vec(self.kernel, d, 1), _engine_vec(self.stride, d, 1),
            _engine_vec(self.dilation, d, 1), _engine_vec(self.pad_before, d, 0)])
        self.key = tuple(int(v) for v in self.packed)   # hashable: plan caches use it
        self.in_engine = tuple(int(v) for v in self.packed[0:3])
        self.out_engine = tuple(int(v) for v in self.packed[3:6])
        self.in_total = math.prod(self.in_size)
        self.out_total = math.prod(self.out_size)
        self.k_total = math.prod(self.kernel)


def int_vector(v, d, fname, argname, minimum):
    """Scalar or length-d sequence of integers >= minimum -> tuple of d Python ints."""
    # Fast path for what the layers pass (already canonical); it keeps per-call overhead low.
    if type(v) is int and minimum <= v <= _INT_MAX:
        return (v,) * d
    if type(v) is tuple and len(v) == d and all(
            type(a) is int and minimum <= a <= _INT_MAX for a in v):
        return v
    if type(v) is np.ndarray and v.dtype.kind in "iu" and v.size in (1, d):
        # (what the functional operations pass on: integer arrays, checked in Python ints)
        vals = v.ravel().tolist()
        vals = vals * d if len(vals) == 1 else vals
        if all(minimum <= a <= _INT_MAX for a in vals):
            return tuple(vals)
    arr = np.asarray(v)
    if arr.dtype == bool or not np.issubdtype(arr.dtype, np.number) or np.iscomplexobj(arr):
        raise TypeError(f"{fname}: {argname} must be integer-valued, got {v!r}")
    arr = arr.ravel()
    if arr.size == 1:
        arr = np.repeat(arr, d)
    if arr.size != d or not np.all(np.isfinite(arr)) or np.any(arr != np.round(arr)) \
            or np.any(arr < minimum) or np.any(arr > _INT_MAX):
        what = "positive" if minimum == 1 else "nonnegative"
        raise ValueError(f"{fname}: {argname} must be a {what} integer scalar or a vector of "
                         f"{d} {what} integers (at most {_INT_MAX}), got {v!r}")
    return tuple(int(a) for a in arr)


def _pads(p, d, fname, argname):
    """0, scalar, length-d vector (symmetric), 2 x d [before; after] array, or a pair of
    tuples (before, after) -> (before, after)."""
    if type(p) is int and 0 <= p <= _INT_MAX:
        return (p,) * d, (p,) * d
    if type(p) is tuple and len(p) == 2 and type(p[0]) is tuple and type(p[1]) is tuple:
        return int_vector(p[0], d, fname, argname, 0), int_vector(p[1], d, fname, argname, 0)
    arr = np.asarray(p)
    if arr.shape == (2, d):
        return (int_vector(arr[0], d, fname, argname, 0),
                int_vector(arr[1], d, fname, argname, 0))
    v = int_vector(p, d, fname, argname, 0)
    return v, v


def _check_gemm_sizes(fname, geom, channels):
    """BLAS takes 32-bit sizes and leading dimensions: refuse what would overflow them."""
    for name, value in (("input elements per channel", geom.in_total),
                        ("output elements per channel", geom.out_total),
                        ("filter taps x channels", geom.k_total * channels)):
        if value > _INT_MAX:
            raise ValueError(f"{fname}: the problem is too large for 32-bit BLAS indexing "
                             f"({name} = {value} > {_INT_MAX})")


def _prepare(fname, x, w, bias, groups, transposed):
    """Validate operands; return (x, w, bias, d, n_in_channels, n_out_channels, dtype)."""
    x = _as_float_array(x, fname, "X")
    w = _as_float_array(w, fname, "weights")
    if isinstance(groups, bool) or not isinstance(groups, (int, np.integer)) or groups < 1:
        raise ValueError(f"{fname}: number of groups must be a positive integer, got {groups!r}")
    d = w.ndim - 2
    if not 1 <= d <= 3:
        raise ValueError(f"{fname}: weights must have 1 to 3 spatial dimensions plus two "
                         f"channel dimensions, got size {_describe(w)}")
    if x.ndim != d + 2:
        raise ValueError(f"{fname}: X must have {d} spatial dimensions, a channel and an "
                         f"observation dimension to match the weights, got size {_describe(x)}")
    cin = x.shape[d]
    if transposed:  # w: F x Fg x (Cg*G)
        cout, wt_in = w.shape[d] * groups, w.shape[d + 1]
        if wt_in % groups:
            raise ValueError(f"{fname}: weights have {wt_in} input channels, which "
                             f"{groups} groups do not divide")
        if cin != wt_in:
            raise ValueError(f"{fname}: X has {cin} channels but the weights expect {wt_in}")
    else:  # w: F x Cg x (Fg*G)
        cg, cout = w.shape[d], w.shape[d + 1]
        if cout % groups:
            raise ValueError(f"{fname}: weights have {cout} filters, which {groups} groups "
                             f"do not divide")
        if cin != cg * groups:
            raise ValueError(f"{fname}: X has {cin} channels but the weights expect "
                             f"{cg * groups} ({cg} per group x {groups} groups)")
    if min(w.shape) == 0:
        raise ValueError(f"{fname}: weights must not be empty, got size {_describe(w)}")
    if min(x.shape[:d + 1]) == 0:
        raise ValueError(f"{fname}: X must not be empty, got size {_describe(x)}")
    dtype = compute_dtype(x, w)
    if bias is not None:
        b = _as_float_array(bias, fname, "bias")
        if b.size != cout:
            raise ValueError(f"{fname}: bias must have {cout} elements (one per output "
                             f"channel), got size {_describe(b)}")
        bias = np.ascontiguousarray(b.ravel(order="F"), dtype=dtype)
    else:
        bias = np.empty(0, dtype=dtype)
    return x, w, bias, d, cin, cout, dtype


PADDING_MODES = ("symmetric-include-edge", "symmetric-exclude-edge", "replicate")


def _padding_value(v, fname):
    """A real scalar or one of MATLAB's mode names (canonical spelling); returns it."""
    if isinstance(v, str):
        if v not in PADDING_MODES:
            raise ValueError(f"{fname}: PaddingValue must be a real scalar or one of "
                             f"{', '.join(repr(m) for m in PADDING_MODES)}, got {v!r}")
        return v
    if isinstance(v, (bool, np.bool_)) or not isinstance(v, (int, float, np.integer,
                                                             np.floating)):
        raise TypeError(f"{fname}: PaddingValue must be a real scalar or a mode name, "
                        f"got {type(v).__name__} {v!r}")
    return v


def _padded(x, d, before, after, padding_value, fname):
    """Explicitly pad the spatial dims for PaddingValue other than 0 (MATLAB's modes)."""
    widths = [(b, a) for b, a in zip(before, after)] + [(0, 0), (0, 0)]
    if isinstance(padding_value, str):
        mode = {"symmetric-include-edge": "symmetric", "symmetric-exclude-edge": "reflect",
                "replicate": "edge"}[padding_value]
        # mirrors cannot reach further than the input; 'replicate' repeats the edge forever
        limit = {"reflect": 1, "symmetric": 0, "edge": None}[mode]
        for i, (b, a) in enumerate(zip(before, after)):
            if limit is not None and max(b, a) > x.shape[i] - limit:
                raise ValueError(f"{fname}: padding {max(b, a)} is longer than the "
                                 f"{x.shape[i]} elements '{padding_value}' can mirror along "
                                 f"spatial dimension {i + 1}")
        return np.pad(x, widths, mode=mode)
    return np.pad(x, widths, mode="constant", constant_values=padding_value)


@functools.lru_cache(maxsize=256)
def _conv_geometry(in_size, kernel, stride, dilation, before, after):
    out = []
    for i, (n, k, s, dl, b, a) in enumerate(zip(in_size, kernel, stride, dilation, before, after)):
        feff = (k - 1) * dl + 1
        o = (n + b + a - feff) // s + 1
        if n + b + a < feff or o < 1:
            return f"along spatial dimension {i + 1} the padded input ({n} + {b} + {a}) is " \
                   f"smaller than the filter ({feff} with dilation), so the output would be empty"
        out.append(o)
    return Geometry(in_size, out, kernel, stride, dilation, before)


@functools.lru_cache(maxsize=256)
def _transposed_geometry(in_size, kernel, stride, dilation, crop_before, crop_after, offset):
    out = []
    for i, (n, k, s, dl, b, a, o) in enumerate(
            zip(in_size, kernel, stride, dilation, crop_before, crop_after, offset)):
        full = s * (n - 1) + (k - 1) * dl + 1
        m = full - b - a + o
        if m < 1:
            return f"along spatial dimension {i + 1} the cropping ({b} + {a}) leaves no " \
                   f"output of the {full} computed"
        out.append(m)
    # The transposed convolution is the adjoint of a convolution from its output (size
    # ``out``) to its input, padded before by the crop.
    return Geometry(out, in_size, kernel, stride, dilation, crop_before)


def conv_geometry(fname, *args):
    """Geometry of a convolution (cached); ValueError naming ``fname`` if the output is empty."""
    g = _conv_geometry(*(tuple(a) for a in args))
    if isinstance(g, str):
        raise ValueError(f"{fname}: {g}")
    return g


def transposed_geometry(fname, *args):
    """Geometry of a transposed convolution, as the adjoint convolution's (cached)."""
    g = _transposed_geometry(*(tuple(a) for a in args))
    if isinstance(g, str):
        raise ValueError(f"{fname}: {g}")
    return g


# --------------------------------------------------------------------------- operations

class Plan:
    """One checked (transposed) convolution, for arrays of the shapes and dtypes it was made for.

    ``conv_plan``/``conv_transpose_plan`` run every check once; calling the plan with new
    values of the same shapes and dtypes then skips them.  Layers keep a plan per input
    size, so a repeated ``predict`` does little Python work.  Nothing derived from the
    values is cached: arrays changed in place give new results.
    """

    __slots__ = ("_key", "_engine", "_gemm", "_geom", "_groups", "_d", "_dtype", "_shape",
                 "_macs", "_fname", "_pooled", "_xe_shape", "_we_shape", "_ye_view",
                 "can_pool")

    def __init__(self, transposed, geom, groups, w, x_shape, cout, dtype, fname="dlconv"):
        n = x_shape[-1]
        self._key = None        # set by conv_plan / conv_transpose_plan
        self._fname = fname
        self._engine = _adjoint_engine if transposed else _forward_engine
        # filters and channels per group of the kernel that runs (the adjoint swaps them)
        fg, cg = w.shape[-1] // groups, w.shape[-2]
        if _fallback(geom, cg, dtype):
            # cost out of proportion in every kernel (_conv_fallback): the gather path
            self._gemm = _conv_fallback.adjoint if transposed else _conv_fallback.forward
        elif not _use_direct(geom, n, *((fg, cg) if transposed else (cg, fg)), groups,
                             adjoint=transposed):
            # the gemm kernels take the geometry as it is: call them directly
            self._gemm = _conv.conv_adjoint if transposed else _conv.conv_forward
            _ensure_blas_hooks()
        else:
            self._gemm = None
        self._geom, self._groups, self._d, self._dtype = geom, groups, w.ndim - 2, dtype
        self._shape = (n, cout) + (geom.in_engine if transposed else geom.out_engine)
        # the engine shapes of X, W and the MATLAB-order view of Y (_to_engine/_from_engine)
        d = self._d
        pad = (1,) * (3 - d)
        self._xe_shape = x_shape[::-1][:2] + pad + x_shape[::-1][2:]
        self._we_shape = (w.shape[-1], w.shape[-2]) + pad + tuple(reversed(w.shape[:d]))
        self._ye_view = self._shape[:2] + self._shape[2:][3 - d:]
        # (a small output skips the result pool's bookkeeping: S1's per-call cost)
        self._pooled = _buffers.pooled(math.prod(self._shape) * np.dtype(dtype).itemsize)
        # conv: filters x channels per group; transposed: input channels x filters per group
        self._macs = _macs(geom, n, w.shape[-1], w.shape[-2])
        #: whether launcher(..., pool=True) applies: the channel-wise kernel's 2-D
        #: planes of even sizes
        o = self._shape[2:]
        self.can_pool = (self._gemm is _conv.conv_forward and cg == 1 and self._d == 2
                         and o[0] == 1 and o[1] % 2 == 0 and o[2] % 2 == 0 and min(o) > 0)

    def __call__(self, x, w, bias):
        """Y for X, weights and bias, or None unless they fit the plan (check them then)."""
        if _plan_key(x, w, bias) != self._key:
            return None
        return self.run(x, w, bias)

    def backward(self, x, w, dy, need_dx=True):
        """:func:`conv_backward` of this plan's convolution for X, weights and dL/dY
        (MATLAB order) without its checks, or None unless they fit the plan: the arrays
        the plan was made for, dY of the plan's output size and dtype, some observations
        (then conv_backward checks them)."""
        key, given = self._key, _plan_key(x, w, None)
        if (key is None or given is None or given[:4] != key[:4]
                or self._engine is not _forward_engine or self._shape[0] == 0
                or type(dy) is not np.ndarray or dy.dtype != self._dtype
                or dy.shape != self._geom.out_size + self._shape[1::-1]):
            return None
        return _grads_run(x, w, dy, self._geom, self._groups, self._dtype, False,
                          (0,) * self._d, need_dx)

    def operands(self, w, bias):
        """``(weights, bias, views)``: the weights and bias in the kernels' layout, and
        whether both are views of the arrays given (Fortran-ordered weights, a contiguous
        bias of the plan's dtype), which then see any change made to them in place."""
        we, b = self._engine_operands(w, bias)
        return we, b, (np.may_share_memory(we, w)
                       and (bias is None or np.may_share_memory(b, bias)))

    def _engine_operands(self, w, bias):
        dtype = self._dtype
        b = (np.empty(0, dtype) if bias is None
             else np.ascontiguousarray(bias.reshape(-1, order="F"), dtype=dtype))
        return _to_engine(w, self._d, dtype, self._we_shape), b

    def run(self, x, w, bias):
        """``conv`` of x with these weights and bias."""
        xe = _to_engine(x, self._d, self._dtype, self._xe_shape)
        return self._launch(xe, *self._engine_operands(w, bias))

    def run_operands(self, x, we, b, rectify=False, residual=None):
        """``conv`` of x with weights and bias from :meth:`operands`; ``residual``: an
        array of the result's size and dtype added to it (a residual block's addition: its
        sums); ``rectify``: the ReLU of that too (relu's values).  Both in the kernel where
        it can (the gemm, channel-wise, conv_cv and F(2 x 2, 3 x 3) kernels rectify their
        results as they write them, F(2 x 2, 3 x 3) adds the residual first), else in a
        pass after."""
        return self._launch(_to_engine(x, self._d, self._dtype, self._xe_shape), we, b,
                            rectify, residual)

    def launcher(self, we, b, rest, rectify=False, pool=False):
        """:meth:`run_operands` ``(x, we, b, rectify)`` as a function of x, its shapes and
        thread count worked out now, for the im2col / channel-wise kernel (the one small
        problems take; None for the others, whose choice of kernel depends on the values):
        the inference program's step, where a batch-1 layer's Python work is a large part
        of its time.  ``rest``: x's sizes after the channels (MATLAB order; the plan's
        batch is their product), which the result keeps.  ``pool`` (where
        :attr:`can_pool`): the result is the 2 x 2, stride-2 max pooling of that, each
        plane pooled as the kernel makes it."""
        if self._gemm is not _conv.conv_forward or self._shape[0] == 0:
            return None
        d, dtype, xe_shape, packed, groups = (self._d, self._dtype, self._xe_shape,
                                              self._geom.packed, self._groups)
        shape = self._shape
        if pool:
            shape = shape[:3] + (shape[3] // 2, shape[4] // 2)
        rev = tuple(rest[::-1]) + shape[1:2] + shape[2:][3 - d:]
        output, pooled = self._output, self._pooled and not pool
        threads = 1 if self._macs < _PARALLEL_MIN_MACS else None
        kernel = _conv.conv_forward

        def launch(x):
            ye = output(shape, pooled)
            kernel(_to_engine(x, d, dtype, xe_shape), we, b, ye, packed, groups,
                   threads or get_num_threads(), rectify, pool)
            return ye.reshape(rev).T
        if we.flags.c_contiguous and b.flags.c_contiguous:
            launch.program = program_step("conv", dtype, (
                _address(we), _address(b) if b.size else 0, shape[0], we.shape[0],
                we.shape[1], groups, threads == 1, rectify, pool, *packed))
        return launch

    def _output(self, shape, pooled=False):
        """A C-ordered result of ``shape``, from the result pool when ``pooled``; without
        the memory, a MemoryError that says who needs how much."""
        try:
            return (_buffers.empty(shape, self._dtype, "C") if pooled
                    else np.empty(shape, dtype=self._dtype))
        except MemoryError:     # within the size limit, but not free now
            raise MemoryError(f"{self._fname}: out of memory for the output Y of "
                              f"{math.prod(shape) * np.dtype(self._dtype).itemsize} "
                              "bytes") from None

    def _launch(self, xe, we, b, rectify=False, residual=None):
        dtype = self._dtype
        ye = self._output(self._shape, self._pooled)
        threads, rectified, added = _threads_for(self._macs), False, False
        # (the residual in the engine layout: a view of a Fortran-ordered one)
        re = (residual.T.reshape(self._shape) if residual is not None
              and residual.flags.f_contiguous and residual.dtype == dtype else None)
        if ye.shape[0] == 0:
            pass    # no observations (an empty batch): an empty result, no kernel runs
        elif self._gemm is _conv.conv_forward:
            rectified = rectify and residual is None
            self._gemm(xe, we, b, ye, self._geom.packed, self._groups, threads, rectified)
        elif self._gemm is not None:
            self._gemm(xe, we, b, ye, self._geom.packed, self._groups, threads)
        elif self._engine is _forward_engine:
            rectified, added = _forward_engine(xe, we, b, ye, self._geom, self._groups,
                                               threads, rectify, re)
        else:
            self._engine(xe, we, b, ye, self._geom, self._groups, threads)
        y = ye.reshape(self._ye_view).T
        if (residual is not None and not added) or (rectify and not rectified):
            from . import _ops_norm     # (it imports this module: loaded by now)
            if residual is not None and not added:
                # (the sum and its ReLU in one pass over y)
                _ops_norm.add(y, residual, rectify and not rectified, into_a=True)
            else:
                _ops_norm.relu_in_place(y)
        return y


def _plan_key(x, w, bias):
    """What a plan depends on: the arrays' shapes and dtypes (None unless numpy arrays)."""
    if type(x) is not np.ndarray or type(w) is not np.ndarray or not (
            bias is None or type(bias) is np.ndarray):
        return None
    return (x.shape, x.dtype, w.shape, w.dtype,
            None if bias is None else (bias.shape, bias.dtype))


def _keyed(plan, key):
    if plan is None or key is None:
        return None
    plan._key = key
    return plan


def conv(x, w, bias=None, stride=1, dilation=1, padding=0, groups=1, padding_value=0,
         fname="dlconv"):
    """Grouped convolution (cross-correlation) in MATLAB layout; returns Y (O.. x Fg*G x N)."""
    plan, x, w, bias = _conv_plan(x, w, bias, stride, dilation, padding, groups, padding_value,
                                  fname)
    return plan.run(x, w, bias)


def conv_plan(x, w, bias=None, stride=1, dilation=1, padding=0, groups=1, padding_value=0,
              fname="dlconv"):
    """A :class:`Plan` for :func:`conv` with these arguments (None with a PaddingValue, or
    unless the operands are numpy arrays)."""
    if _padding_value(padding_value, fname) != 0:
        return None
    return _keyed(_conv_plan(x, w, bias, stride, dilation, padding, groups, 0, fname)[0],
                  _plan_key(x, w, bias))


def _conv_plan(x, w, bias, stride, dilation, padding, groups, padding_value, fname):
    x, w, bias, d, cin, cout, dtype = _prepare(fname, x, w, bias, groups, transposed=False)
    stride = int_vector(stride, d, fname, "Stride", 1)
    dilation = int_vector(dilation, d, fname, "DilationFactor", 1)
    before, after = _pads(padding, d, fname, "Padding")
    if _padding_value(padding_value, fname) != 0:
        x = _padded(x, d, before, after, padding_value, fname)
        before = after = (0,) * d
    geom = conv_geometry(fname, x.shape[:d], w.shape[:d], stride, dilation, before, after)
    check_allocation(fname, "the output Y", geom.out_size + (cout, x.shape[-1]),
                     np.dtype(dtype).itemsize)
    _check_gemm_sizes(fname, geom, max(w.shape[d], w.shape[d + 1]))
    return Plan(False, geom, groups, w, x.shape, cout, dtype, fname), x, w, bias


def _forward_engine(xe, we, b, ye, geom, groups, nthreads, rectify=False, residual=None):
    """ye = conv(xe) + b in engine layout, by the direct kernel where it applies.  With
    ``rectify``, the kernels that can also apply the ReLU (conv_cv, Winograd F(2 x 2,
    3 x 3), the gemm and channel-wise ones); with ``residual`` (ye's shape), the kernel
    that can also add it before the ReLU (F(2 x 2, 3 x 3)).  Returns whether ye is
    rectified and whether the residual is in it."""
    fg, cg = we.shape[0] // groups, we.shape[1]
    if _fallback(geom, cg, ye.dtype):
        _conv_fallback.forward(xe, we, b, ye, geom.packed, groups)
        return False, False
    if _use_direct(geom, xe.shape[0], cg, fg, groups):
        w = we.reshape(groups, fg, cg, -1)
        if _use_winograd(geom, xe.dtype, cg, fg) and _run_winograd(xe, w, b, ye, geom,
                                                                   nthreads):
            return False, False
        if (_use_winograd2d(geom, xe.shape[0], cg, fg, groups, ye.itemsize)
                and _run_winograd2d(xe, w[0].reshape(fg, cg, 3, 3), b, ye, geom, nthreads,
                                    rectify, residual)):
            return rectify, residual is not None
        # (the other kernels rectify only results without a residual still to add)
        rectify = rectify and residual is None
        if not _gemm_reduction(geom, cg, groups):
            vectors = _cv_vectors(geom, xe.shape[0], cg, fg, groups, ye.dtype, forward=True)
            if vectors:
                _run_cv(xe, we, b, ye, geom, vectors, nthreads, rectify)
                return rectify, False
            if _use_winograd_rows(geom, cg, fg) and _run_winograd_rows(xe, w, b, ye, geom,
                                                                       nthreads):
                return False, False
            plan = _direct_plan(geom, adjoint=False)
            wpk, bpk, _ = _pack_direct(plan, w, b)
            _run_direct(plan, xe, wpk, bpk, ye, nthreads)
            return False, False
    rectify = rectify and residual is None
    _ensure_blas_hooks()
    _conv.conv_forward(xe, we, b, ye, geom.packed, groups, nthreads, rectify)
    return rectify, False


def _adjoint_engine(dye, we, b, dxe, geom, groups, nthreads):
    """dxe = conv^T(dye) + b in engine layout (the transposed convolution).

    The direct kernels (channel-wise: depthwise_adjoint) compute each stride phase of dxe
    as a stride-1 convolution of dye with that phase's taps; otherwise gemm and col2im
    (channel-wise: a padded plane) scatter-add every tap.  The direct kernels read dye
    padded with zeros, so a non-finite weight would put 0 * Inf = NaN where no term
    exists: such weights take the scatter, which adds only real terms.  With stride 1 the
    adjoint is a forward convolution (_adjoint_as_forward), which may take Winograd F(2, 3)
    along rows (a non-finite weight makes it give up, its outputs not being finite).
    """
    fg, cg = we.shape[0] // groups, we.shape[1]
    if _fallback(geom, cg, dxe.dtype):
        _conv_fallback.adjoint(dye, we, b, dxe, geom.packed, groups)
        return
    # the dense (direct) adjoints only where they cost about the scatter (not for a
    # transposed convolution whose filter is much larger than its input)
    dense_ok = _conv_fallback.dense_adjoint_ok(geom)
    fwd = _adjoint_as_forward(geom) if dense_ok and math.prod(geom.stride) == 1 else None
    if (fwd is not None and _use_winograd2d(fwd, dye.shape[0], fg, cg, groups, dxe.itemsize)
            and _use_direct(fwd, dye.shape[0], fg, cg, groups)
            and _run_winograd2d(dye, we.reshape(fg, cg, 3, 3).transpose(1, 0, 2, 3)
                                [:, :, ::-1, ::-1], b, dxe, fwd, nthreads)):
        return
    # (a long reduction over a small plane: gemm's, at the end)
    gemm = _gemm_reduction(geom, fg, groups)
    vectors = (fwd is not None and not gemm
               and _cv_vectors(fwd, dye.shape[0], fg, cg, groups, dxe.dtype))
    # (its padded volumes would give 0 * Inf = NaN where the adjoint has no term)
    if vectors and np.isfinite(we).all():
        _run_cv(dye, we.reshape(fg, cg, -1).transpose(1, 0, 2)[..., ::-1], b, dxe, fwd,
                vectors, nthreads)
        return
    if (fwd is not None and not gemm and _use_winograd_rows(fwd, fg, cg)
            and _use_direct(fwd, dye.shape[0], fg, cg, groups)
            and _run_winograd_rows(dye, we.reshape(groups, fg, cg, -1).transpose(0, 2, 1, 3)
                                   [..., ::-1], b, dxe, fwd, nthreads)):
        return
    if dense_ok and cg == 1 and math.prod(geom.stride) <= _DIRECT_MAX_PHASES \
            and np.isfinite(we).all():
        plan = _direct_plan(geom, adjoint=True)
        passes = plan.passes
        wa = we.reshape(groups, fg, -1)[:, :, plan.order]
        wpk = np.ascontiguousarray(np.concatenate(
            [wa[:, :, t0:t0 + n].reshape(groups, -1) for n, t0 in passes[:, :2]], axis=1))
        _conv.depthwise_adjoint(dye, wpk, b, dxe, plan.vol, passes, plan.off, nthreads)
        return
    if not gemm and _use_direct(geom, dye.shape[0], fg, cg, groups, adjoint=True):
        plan = _direct_plan(geom, adjoint=True)
        wa = we.reshape(groups, fg, cg, -1).transpose(0, 2, 1, 3)
        wpk, bpk, finite = _pack_direct(plan, wa, b)
        if finite:
            _run_direct(plan, dye, wpk, bpk, dxe, nthreads)
            return
    _ensure_blas_hooks()
    _conv.conv_adjoint(dye, we, b, dxe, geom.packed, groups, nthreads)


def _weight_grad_engine(xe, dye, dwe, geom, groups, nthreads):
    """dwe = the weight gradient of conv(xe) for output gradient dye, in engine layout.

    The grid kernels multiply the zeros between dye's rows with input values; a NaN in
    their result may be 0 * Inf rather than arithmetic on real terms, so it is recomputed
    by gemm, which sums only real terms (NaN needs a non-finite input, so this is rare).
    """
    fg, cg = dwe.shape[0] // groups, dwe.shape[1]
    if _fallback(geom, cg, dwe.dtype):
        _conv_fallback.weight_grad(xe, dye, dwe, geom.packed, groups)
        return
    if (_use_winograd2d(geom, xe.shape[0], cg, fg, groups, dwe.itemsize, weight_grad=True)
            and _use_direct(geom, xe.shape[0], cg, fg, groups)
            and _conv.conv_weight_grad_winograd2d(
                xe, dye, dwe, int(geom.packed[16]), int(geom.packed[17]),
                _w22_dw_tiles(cg, fg, dwe.itemsize), _WINOGRAD2D_KBLOCK_DW, nthreads)):
        return
    # (with one vector of filters its broadcasts outnumber its multiply-adds' other
    # operands 24 to 1, and the grid kernel is faster: 14x14x8->16, 128 images, 1.1 against
    # 2.1 ms; it holds every image's padded volume at once)
    if _gemm_reduction(geom, cg, groups):
        _conv.conv_weight_grad(xe, dye, dwe, geom.packed, groups, nthreads)
        return
    vectors = cg > 1 and _cv_vectors(geom, xe.shape[0], cg, fg, groups, dwe.dtype,
                                     weight_grad=True)
    packed = _cv_packed(geom) if vectors > 1 else None
    if vectors > 1 and _cv_volume_bytes(packed, xe) <= _CVW_MAX_INPUT:
        # (no NaN check: its only zeros are the padding's, real terms as in gemm's columns)
        _conv.conv_weight_grad_cv(xe, dye, dwe, packed,
                                  vectors * _conv.cv_shape(dwe.dtype == np.float64, 1)[0],
                                  nthreads)
        return
    if cg == 1 or _use_direct(geom, xe.shape[0], cg, fg, groups):
        plan = _direct_plan(geom, adjoint=False)
        vol, off = plan.vol, plan.off
        if cg == 1:
            _conv.depthwise_weight_grad(xe, dye, dwe, vol, off, nthreads)
        else:
            # the image's phase volumes and its output gradient on their grid (about the
            # size of a volume's phase), filters rounded up to whole register blocks
            grid = int(vol[9:12].prod())
            fb = _conv.dw_filter_block(fg)
            per_image = (xe.shape[1] * (plan.volume + 64)
                         + groups * -(-fg // fb) * fb * grid) * xe.itemsize
            _conv.conv_weight_grad_direct(xe, dye, dwe, vol, off,
                                          _batch(per_image, xe.shape[0], nthreads), nthreads)
        if not np.isnan(dwe).any():
            return
    _conv.conv_weight_grad(xe, dye, dwe, geom.packed, groups, nthreads)


# Bytes of padded input volumes the direct kernel builds at once (at least one image's):
# about one core's L2, so the volumes are still cached when the kernel reads them (the
# weight gradient: this much per thread, _batch).
_VOLUME_BUDGET = 1 << 20
# The direct kernel's adjoint runs one pass per output stride phase: beyond this many
# phases (large strides) gemm + col2im is the better tool.
_DIRECT_MAX_PHASES = 64
# The direct kernel's register blocks (24 vector sums) fit AVX-512's 32 registers; with
# AVX2's 16 they spill and gemm is faster (C1 on one thread: 29 ms against 26), so the
# direct kernel needs this instruction set level (_conv.ISA_NAMES) or better.
_DIRECT_MIN_ISA = 2


#: an ungrouped 1 x 1 convolution is a matrix product (strided: of a subsampled input),
#: which gemm runs 1.1-2x faster than the direct kernel's volumes (1 thread: N4's stride-2
#: shortcuts 0.40 -> 0.21 ms; 1024 -> 256 channels on 14 x 14 x 8, 11.1 -> 9.5 ms)
_POINTWISE_GEMM = True


def _use_direct(geom, n_img, cg, fg, groups, adjoint=False):
    """The direct kernel for problems big enough to amortise packing.

    ``cg``/``fg`` are the kernel's input/output channels per group (for the adjoint, the
    convolution's filters and channels).  It needs several input channels (one is the
    channel-wise kernel's) and enough outputs to fill its register block; the adjoint
    also needs every stride phase to have taps.  A function of the geometry only, so
    every thread count takes the same path and gets the same bits (and of the machine's
    instruction set, which is fixed).
    """
    if _conv.isa()[0] < _DIRECT_MIN_ISA:
        return False
    if _POINTWISE_GEMM and not adjoint and groups == 1 and geom.k_total == 1:
        return False
    if adjoint and (math.prod(geom.stride) > _DIRECT_MAX_PHASES or any(
            s > (k - 1) * dl + 1 for s, k, dl in zip(geom.stride, geom.kernel, geom.dilation))
            or not _conv_fallback.dense_adjoint_ok(geom)):
        return False
    return (cg >= 2 and fg >= min(_conv.FILTER_BLOCKS) // 2
            and _macs(geom, n_img, groups * fg, cg) >= _PARALLEL_MIN_MACS)


#: conv_cv (vectorized over output channels) for output planes up to this many positions
_CV_MAX_PLANE = 196
#: ... and, forward and dX of filters whose rows are not three taps (no Winograd F(2, 3)
#: along rows to keep), up to this many: 1 thread, interleaved against the direct kernel,
#: 5 x 5 filters: 15 x 15 x 32 -> 32 (128 images) forward / dX 1.21 / 1.23x, 15 x 15 x 64
#: -> 64 1.40 / 1.36x, 16 x 16 x 32 -> 32 1.08 / 1.15x, 20 x 20 x 32 -> 32 1.11 / 1.12x,
#: 7 x 7 filters 15 x 15 x 16 -> 32 1.26 / 1.27x; 24 x 24 1.02, 28 x 28 0.92-1.05, 32 x 32
#: about even
_CV_MAX_PLANE_WIDE = 400
#: ... and, forward with a stride, up to this many: the direct kernel then runs a pass per
#: stride phase, and conv_cv measured 1.07-1.19x as fast from 16 x 16 to 28 x 28 outputs
#: (3 x 3 and 5 x 5 filters, stride 2, 16-64 channels; 32 x 32: 1.01-1.08, 56 x 56: 0.93)
_CV_MAX_PLANE_STRIDED = 784
#: ... and, for the weight gradient of planes whose rows are at most _CVW_MAX_ROW outputs
#: long, up to this many (1 / 2 threads, 32 images, against the direct kernel, whose
#: vector blocks short rows leave part empty: 15 x 15 x 32 -> 32 1.16 / 1.21x, 15 x 15 x 64
#: -> 64 1.16x, 16 x 16 x 32 -> 32 1.11 / 1.32x, 30 x 30 x 16 -> 32 stride 2 1.15 / 1.37x,
#: float64 15 x 15 x 32 -> 32 1.14 / 1.14x; beyond: 18 x 18 1.06, 20 x 20 1.04, 22 x 22
#: 0.94, 28 x 28 0.85; one row of 256, N5's 1-D layers, 0.65-0.93x on 1 thread)
_CVW_MAX_PLANE = 256
_CVW_MAX_ROW = 32
#: ... and, forward and dX, reductions up to this many terms: its sums have two levels
#: (chunks of CHUNK_TAPS terms from zero, added in order), whose error model (docs/engine.md,
#: "Accuracy") at 3072 terms, 32 chunks, is sqrt((96 + 32)/6) u = 4.6 u against the
#: direct kernel's three levels' 4.2 u.  (The weight gradient's sums run over positions,
#: chunks and segments of them, whatever the channels and taps.)  Raised from 768, where
#: 5 x 5 filters over 32 channels fell to the direct kernel, whose position blocks small
#: planes leave part empty: 1 thread, 7 x 7 x 32 -> 64 with 128 images, forward 7.6 ->
#: 4.0 ms, dX 8.3 -> 5.0, dW 10.3 -> 5.4 (PyTorch 3.4, 3.1, 4.2)
_CV_MAX_TERMS = 3072
#: conv_weight_grad_cv while its padded volumes (every image's at once) take at most this
_CVW_MAX_INPUT = 64 << 20


#: im2col + gemm for a reduction of at least this many (channel, tap) terms over an output
#: plane of at most _GEMM_MAX_PLANE positions (an image's), where BLAS runs the long
#: products near its peak and the direct kernels' blocks of positions or filters have
#: little to fill them: 1 thread, 8 images, forward / dX / dW, ms: 4 x 4 x 512 -> 512
#: 25.6 / 24.3 / 22.6 -> 8.0 / 12.7 / 6.5, 7 x 7 x 512 -> 512 17.1 / 23.8 / 31.2 -> 17.3 /
#: 22.4 / 13.4, 14 x 14 x 256 -> 512 stride 2 11.9 / 12.6 / 15.0 -> 9.5 / 10.8 / 6.9
#: (Winograd F(2 x 2, 3 x 3), where it applies, stays ahead of it)
_GEMM_MIN_TERMS = 2048
_GEMM_MAX_PLANE = 64


def _gemm_reduction(geom, c, groups):
    """Whether a convolution (or its adjoint or weight gradient) of this geometry, summing
    ``c`` channels per group (the adjoint: filters) over its taps, is im2col + gemm's."""
    return (groups == 1 and geom.out_total <= _GEMM_MAX_PLANE
            and c * geom.k_total >= _GEMM_MIN_TERMS)


def _cv_vectors(geom, n_img, cg, fg, groups, dtype, forward=False, weight_grad=False):
    """Vectors of output channels per register block of conv_cv, or 0 where it does not
    apply: one group, a multiple of the vector width of filters, small output planes (rows
    too short for the direct kernel's blocks; for a ``forward`` convolution with a stride,
    and for the ``weight_grad`` of planes of rows up to _CVW_MAX_ROW long, larger ones
    too), and short enough reductions.  A function of the geometry and the machine's
    instruction set only."""
    if _conv.isa()[0] < _DIRECT_MIN_ISA or groups != 1:
        return 0
    plane = (_CV_MAX_PLANE_STRIDED if forward and max(geom.stride) > 1
             else _CVW_MAX_PLANE if weight_grad and geom.out_engine[2] <= _CVW_MAX_ROW
             else _CV_MAX_PLANE if geom.kernel[0] == 3 or weight_grad
             else _CV_MAX_PLANE_WIDE)
    if not (geom.out_total <= plane and (weight_grad or cg * geom.k_total <= _CV_MAX_TERMS)
            and _macs(geom, n_img, fg, cg) >= _PARALLEL_MIN_MACS):
        return 0
    lanes = _conv.cv_shape(dtype == np.float64, 1)[0]
    for v in (4, 2, 1):
        if fg % (v * lanes) == 0:
            return v
    return 0


def _run_cv(xe, we, b, ye, geom, vectors, nthreads, rectify=False):
    """ye = conv(xe) + b by conv_cv (one group; ``vectors`` from _cv_vectors), its ReLU
    too with ``rectify``."""
    fg = we.shape[0]
    ntaps = geom.k_total
    lanes = _conv.cv_shape(xe.dtype == np.float64, vectors)[0]
    width = vectors * lanes
    # wpk[fb, c*ntaps + t, j] = w[fb*width + j, c, t]
    wpk = np.ascontiguousarray(we.reshape(fg // width, width, -1).transpose(0, 2, 1))
    bias = np.zeros(fg, xe.dtype) if b.size == 0 else np.ascontiguousarray(b, xe.dtype)
    _conv.conv_cv(xe, wpk, bias, ye, _cv_packed(geom), max(1, _conv.CHUNK_TERMS // ntaps),
                  nthreads, rectify)


def _cv_volume_bytes(packed, xe):
    """Bytes of the padded volumes of every image of ``xe`` (conv_weight_grad_cv's;
    ``packed``: _cv_packed's)."""
    return xe.shape[0] * xe.shape[1] * math.prod(packed[18:21]) * xe.itemsize


@functools.lru_cache(maxsize=64)
def _cv_packed(geom):
    """The packed geometry and the extent of the padded volume the taps read (conv_cv;
    once per geometry, read-only)."""
    o, k, s, dl = (geom.packed[j:j + 3] for j in (3, 6, 9, 12))
    packed = np.concatenate([geom.packed, (o - 1) * s + (k - 1) * dl + 1])
    packed.setflags(write=False)
    return packed


def _fallback(geom, cg, dtype):
    """Whether every kernel would cost out of proportion to the work for this geometry
    (padded extent >> input + outputs x taps, or a gemm column buffer beyond its budget):
    then the gather path of :mod:`mlayers._conv_fallback` computes it (issue 21)."""
    return _conv_fallback.needed(geom, cg * geom.k_total, np.dtype(dtype).itemsize,
                                 get_num_threads())


class DirectPlan(NamedTuple):
    """conv_direct's geometry: phase volume, passes, tap offsets, tap order (_direct_plan),
    and the elements of one channel's volume."""
    vol: np.ndarray
    passes: np.ndarray
    off: np.ndarray
    order: np.ndarray
    volume: int


@functools.lru_cache(maxsize=256)
def _direct_plan_cached(packed, adjoint):
    i, o, k, s, dl, p = (np.array(packed[j:j + 3]) for j in range(0, 18, 3))
    span = (k - 1) * dl                      # the filter's reach beyond its first tap
    taps = np.stack(np.meshgrid(*(np.arange(n) for n in k), indexing="ij"), -1).reshape(-1, 3)
    phase, shift = taps * dl % s, taps * dl // s
    if not adjoint:
        # one pass over phase volumes of x: tap t reads phase(t) at grid + shift(t)
        nph = np.minimum(s, span + 1)
        m = o + span // s
        vol = np.concatenate([s, p, nph, m, m[2:]])
        vol[11] = _row_stride(i[2], s[2], p[2], nph[2], m[2], o[2])
        m = vol[9:12]
        pidx = (phase[:, 0] * nph[1] + phase[:, 1]) * nph[2] + phase[:, 2]
        off = pidx * m.prod() + (shift[:, 0] * m[1] + shift[:, 1]) * m[2] + shift[:, 2]
        passes = [[len(taps), 0, 1, 1, 1, 0, 0, 0, 0, 0, 0, *o]]
        order = np.arange(len(taps))
    else:
        # dx[S*g + r - P] = sum over the taps of phase r of w * dy[g - shift]: one
        # stride-1 pass per phase r over dy padded by q = span // S on both sides
        q = span // s
        passes, order, offs, hi_max = [], [], [], o + q
        for r in np.ndindex(*s):
            sel = np.flatnonzero((phase == r).all(axis=1))
            lo = np.maximum(0, -((np.array(r) - p) // s))
            hi = np.maximum(lo, -((np.array(r) - p - i) // s))
            hi_max = np.maximum(hi_max, hi + q)
            passes.append([len(sel), len(order), *s, *(np.array(r) - p), *lo, *hi])
            order.extend(sel)
            offs.append(q - shift[sel])
        # The innermost dimension's S2 phases (consecutive passes) share one grid, the
        # union of theirs, so that conv_direct stores them together, interleaved.
        passes = np.array(passes, dtype=np.intp)
        lo2, hi2 = passes[:, 10], passes[:, 13]     # the fields LO[2] and HI[2]
        lo2[:] = lo2.reshape(-1, s[2]).min(axis=1).repeat(s[2])
        hi2[:] = hi2.reshape(-1, s[2]).max(axis=1).repeat(s[2])
        vol = np.concatenate([np.ones(3, int), q, np.ones(3, int), hi_max, hi_max[2:]])
        vol[11] = _row_stride(o[2], 1, q[2], 1, hi_max[2], hi_max[2] - q[2])
        m = vol[9:12]
        rel = np.concatenate(offs)
        off = (rel[:, 0] * m[1] + rel[:, 1]) * m[2] + rel[:, 2]
        order = np.array(order, dtype=np.intp)
    return DirectPlan(vol.astype(np.intp), np.array(passes, dtype=np.intp),
                      off.astype(np.intp), order, int(vol[6:12].prod()))


def _row_stride(n, s, p, nph, length, grid):
    """Row stride of a phase volume whose rows (``length`` long) share their padding.

    A row of the innermost dimension holds ``x[s*m + r - p]`` with zeros on both sides,
    and the first ``grid`` positions of a row are its grid (the taps read up to the row's
    end from there).  Rows may overlap by the zeros that both sides have, and still every
    grid position reads only its own row's values or zeros: lo leading and length - hi
    trailing zeros per phase (the bounds of _phase_bounds) let rows start ``length -
    min(lo, length - hi)`` apart, or ``grid`` if that is more.  So fewer grid positions
    fall in the padding (C1: 57 per row for 56 outputs, not 58)."""
    r = np.arange(nph)
    lo = np.minimum(np.maximum(0, -((r - p) // s)), length)
    hi = np.clip(-((r - p - n) // s), lo, length)
    return max(grid, length - min(lo.min(), (length - hi).min()))


def _direct_plan(geom, adjoint):
    """Volume, passes, tap offsets and tap order of conv_direct for a geometry (cached)."""
    return _direct_plan_cached(geom.key, adjoint)


def _filter_block(nout):
    """The register block (output channels) that leaves the fewest slots empty."""
    return min(_conv.FILTER_BLOCKS, key=lambda fb: (-(-nout // fb) * fb, -fb))


def _pack_direct(plan, w, b, gm=None, spread=None):
    """conv_direct's packed weights and bias for ``w`` (G x outputs x inputs x taps per
    group) and ``b``, and whether every weight is finite.

    Weights go in blocks of 6 or 8 outputs (zero-padded), taps in the plan's pass order,
    each pass laid out [input channel, tap, output] as the register block reads; with
    ``gm``, transformed by Winograd's G along the innermost dimension's taps (and then,
    given ``spread``, a 1-element float64 array, the filters' largest spread there: see
    _conv.pack_direct_weights).
    """
    g, nout, nin, _ = w.shape
    fb = _filter_block(nout)
    nfb = -(-nout // fb)
    wpk = np.empty((g, nfb, nin * len(plan.order) * fb), dtype=w.dtype)
    bpk = np.empty((g, nfb, fb), dtype=w.dtype)
    finite = _conv.pack_direct_weights(w, b, plan.order, plan.passes, wpk, bpk, gm, spread)
    return wpk, bpk, finite


def _run_direct(plan, src, wpk, bpk, dst, nthreads, wino=False):
    """conv_direct on packed weights (_pack_direct); whether every output is finite
    (always, unless ``wino``)."""
    per_image = src.shape[1] * (plan.volume + 64) * src.itemsize
    return _conv.conv_direct(src, wpk, bpk, dst, plan.vol, plan.passes, plan.off,
                             _batch(per_image, src.shape[0]), nthreads, wino)


# Winograd's minimal filtering for one-dimensional float64 convolutions (_use_winograd):
# the interpolation points of F(m, K), m + K - 1 = 8 (the last is the point at infinity).
_WINOGRAD_POINTS = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2))
# Where Winograd pays (measured on 2 threads, C = Cg = Fg, lengths of 4096, against the
# direct kernel): C = 16 is 0.54-0.95 times as fast, C = 32 0.76-1.28, C = 64 with dilation
# up to 4 1.05-1.62 (K = 3 gains least); larger dilations hold a larger block of
# transformed inputs per job (dilation 64: 0.53-0.89).  The tiles of a block past the end
# of a short row are computed for nothing: up to half again the tiles needed still
# measured faster (C = 64: K = 5 1.2-1.5, K = 3 0.97-1.17; the direct kernel's blocks
# overrun short rows too), twice as many did not (0.66-0.89).
_WINOGRAD_MIN_CHANNELS = 64
_WINOGRAD_MAX_DILATION = 4
_WINOGRAD_MAX_WASTE = 1.5


def _use_winograd(geom, dtype, cg, fg):
    """Winograd F(9 - K, K) for float64 one-dimensional convolutions with stride 1 and
    3 <= K <= 7 where it is faster than the direct kernel: it needs 8 multiplications per
    9 - K outputs instead of (9 - K)*K (C2, K = 5: 2.5 times fewer), at the cost of
    transforms that are small beside the products only with many channels and filters.

    Measured against exact sums (64 channels, K = 3..7), its error is 2-4 times the
    direct sums': a median of 1.2e-15 relative per output against 5e-16, at most 2.5e-15
    of the largest output against 9e-16.  float32 keeps the direct sums, as it would be
    6 times theirs there (1.3e-6 against 2e-7); ``set_winograd(False)`` keeps them for
    float64 too."""
    if not (_state["winograd"] and dtype == np.float64 and len(geom.kernel) == 1
            and geom.stride[0] == 1 and 3 <= geom.kernel[0] <= 7
            and min(cg, fg) >= _WINOGRAD_MIN_CHANNELS
            and geom.dilation[0] <= _WINOGRAD_MAX_DILATION):
        return False
    # tiles of one residue, and the blocks of them conv_winograd computes
    tiles = -(-geom.out_size[0] // (geom.dilation[0] * (9 - geom.kernel[0])))
    block = (4 if _filter_block(fg) == 6 else 3) * _conv.isa()[2] // 8
    return -(-tiles // block) * block <= _WINOGRAD_MAX_WASTE * tiles


@functools.lru_cache(maxsize=8)
def _winograd_matrices(k):
    """(Bᵀ 8 x 8, G 8 x k, Aᵀ m x 8) of F(m, k), m = 9 - k, for the correlation
    y[j] = sum_t g[t] d[j + t]: y = Aᵀ((G g) ⊙ (Bᵀ d)) for 8 inputs d.

    With E_n the 8 x n matrix that evaluates a polynomial of degree n - 1 at the points
    (its last row picks the leading coefficient, the point at infinity), the product of
    polynomials of degrees k - 1 and m - 1 is C⁻¹((E_k g) ⊙ (E_m h)), C = E_8, and the
    correlation is its transpose in h: Aᵀ = E_mᵀ, G = E_k, Bᵀ = C⁻ᵀ.  The rows of C⁻ᵀ
    are the coefficients of the Lagrange polynomials of the finite points and of their
    product.  Computed in exact fractions, rounded once."""
    m, pts = 9 - k, [Fraction(p) for p in _WINOGRAD_POINTS]

    def poly(roots):
        c = [Fraction(1)]
        for r in roots:
            c = [a - r * b for a, b in zip([Fraction(0)] + c, c + [Fraction(0)])]
        return c

    def evaluate(n):
        return [[p ** t for t in range(n)] for p in pts] + [[0] * (n - 1) + [1]]

    bt = [[a / math.prod(p - q for q in pts if q != p) for a in poly(q for q in pts if q != p)]
          + [0] for p in pts] + [poly(pts)]
    mats = bt, evaluate(k), [list(col) for col in zip(*evaluate(m))]
    return tuple(np.array(a, dtype=np.float64) for a in mats)


# Winograd F(2, 3) along rows saves multiplications in proportion to the channels and
# filters and to the other dimensions' taps T (each of its four products has T taps),
# while its transforms cost per input and per output value; so it needs min(Cg, Fg) * T
# at least this.  Measured against the direct kernel, 2 threads, float32 / float64:
# 1-D (T = 1) C = F = 16 1.00 / 0.83, 24 1.01 / 0.94, 32 1.04 / 1.03, 48 1.15 / 1.11;
# 3 x 3 (T = 3) C = F = 8 0.98 / 1.03, 16 1.28 / 1.21, 64 1.38 / 1.36; 3 x 3 x 3 (T = 9)
# C = F = 4 1.28 / 1.16, 16 -> 32 1.39 / 1.40.
_WINOGRAD_ROWS_MIN_WORK = 32
# F(2, 3) rounds the transformed weights times the transformed inputs, the direct sums
# the terms themselves.  An output next to the padding does not see the taps on the
# padding's side, but F(2, 3) mixes them into every product: with one huge tap in a row
# its rounding error is in proportion to that tap, the direct sums' to the taps the
# output sees (issue 21: a 1e6 tap in float32 gave 0.25 where the sum is 0.2874).
# _conv.pack_direct_weights measures each filter's ratio of the two bounds' weight
# sums, sum |G w| / min(sum of the taps either edge sees); F(2, 3) runs while the largest
# is at most this.  Measured (float32, 3 x 3, 16 -> 16, the row's last taps scaled): the
# per-output error of F(2, 3) relative to the direct sums' grows with the spread, 0.9-1.4x
# at 2.2 (ordinary weights: 1.8-2.5 normal or uniform, up to 3.1 Laplace), 1.3-2.6x at
# 3.9, 7-12x at 21, 1.5e4x at 2.5e4 (the 1e6 tap); the error relative to the
# largest output stays at the direct sums' throughout.  docs/engine.md.
_WINOGRAD_ROWS_MAX_SPREAD = 4.0
# Bᵀ, G and Aᵀ of F(2, 3) (points 0, 1, -1 and infinity): u = Bᵀd for 4 inputs d, v = Gg
# for 3 taps g, and (y0, y1) = Aᵀ(u ⊙ v).  conv_direct applies Bᵀ and Aᵀ (wino_rows and its
# stores), _run_winograd_rows G.
_F23_G = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])


# Winograd F(2 x 2, 3 x 3) (conv_winograd2d): 16 products per 2 x 2 outputs instead of 36,
# the sums over channels by gemm.  It takes 2-D 3 x 3 convolutions (stride and dilation 1,
# one group, padding at most 1 on each side) with at least _WINOGRAD2D_MIN_CHANNELS
# channels and filters; on planes under 64 outputs (7 x 7: an odd side computes a row of
# tiles' outputs in vain) _WINOGRAD2D_MIN_SMALL; and while an image's 16 transformed
# matrices and products fit _WINOGRAD2D_MAX_BYTES (beyond, the gemms stream from memory).
# Measured against the kernels it replaces, float32, 1 / 2 threads, forward (32 images
# unless said; docs/engine.md): 30 x 30 x 16 -> 16 1.31 / 1.37x, 15 x 15 x 32 -> 32 1.62 /
# 1.69x, 8 x 8 x 64 -> 64 1.59 / 1.50x, 14 x 14 x 16 -> 16 (128 images) 1.03 / 1.40x,
# 4 x 4 x 128 -> 128 4.8 / 3.5x; left out: 14 x 14 x 8 -> 16 (128) 0.90 / 1.09x (conv_cv),
# 7 x 7 x 16 -> 16 (128) 0.96 / 1.00x, 56 x 56 x 64 -> 64 (8) 1.01 / 1.00x, 112 x 112 x
# 16 -> 16 (8) 0.96 / 1.01x.  (Measured with channel blocks of 32 and a float output
# transform; the kept, more accurate form is 5-15 % slower a call: 8 x 8 x 64 -> 64 0.83
# -> 0.95 ms against conv_cv's 1.55.)
_WINOGRAD2D_MIN_CHANNELS = 16
_WINOGRAD2D_MIN_SMALL = 32
# The weight gradient (conv_weight_grad_winograd2d) needs at least this many tiles over
# the batch: its sums over tiles are its gemms' reductions (14 x 14 x 128 -> 128, 2 images,
# 98 tiles: 0.67-0.74x on 2 threads).  Against the kernels it replaces, 1 thread, 32
# images: 30 x 30 x 16 -> 16 1.07x, 15 x 15 x 32 -> 32 1.04x, 8 x 8 x 64 -> 64 1.22x
# (with blocks of 32 tiles, _WINOGRAD2D_KBLOCK_DW, 0.69x, 0.84x, 1.18x: its gemm calls
# were too small).
_WINOGRAD2D_MIN_TILES_DW = 256
# ... and at least this many channels and filters: at 16 the kernels it would replace
# (conv_cv's weight gradient, the direct one) were faster on 1 thread and level on 2, 32
# images, interleaved: 30 x 30 x 16 -> 16 2.56 against 2.13 ms | 1.28 against 1.27,
# 28 x 28 2.47 / 1.38 | 1.14 / 1.15, 32 x 32 2.57 / 2.24 | 1.32 / 1.36 (the fifteenth
# session's build; from 32 channels F(2 x 2) stays ahead: 15 x 15 x 32 1.41 against 1.51,
# 8 x 8 x 64 1.02 against 1.16)
_WINOGRAD2D_MIN_CHANNELS_DW = 32
# The forward and dX need this many tiles over the batch, or an image of half as many (a
# job's worth): with fewer, a job's gemms are narrow and the threads lack jobs (8 x 8 x
# 64 -> 64, 16 tiles an image, 1 / 2 threads: 1 image 0.68 / 0.57x, 4 images 0.99 / 0.67x,
# 8 images 1.23 / 0.98-1.26x; 15 x 15 x 32 -> 32, 64 tiles, 1 image 1.30 / 1.28x).
_WINOGRAD2D_MIN_TILES = 128
_WINOGRAD2D_MAX_BYTES = 4 << 20
# ... images per job: about this many 2 x 2 tiles (their 16 transformed matrices and products
# stay in L2 while the 16 gemms run)
_WINOGRAD2D_TILES = 64
_WINOGRAD2D_KBLOCK = 16
_WINOGRAD2D_KBLOCK_DW = 128
# The weight gradient's jobs where its products are BLAS calls (under W22_DW_OWN_CHANNELS
# channels): as many tiles as keep a job's 16 V and dM matrices within this many bytes, at
# most _WINOGRAD2D_TILES_DW, so each call sums more tiles (interleaved, 1 / 2 threads, 32
# images, against 64-tile jobs: 15 x 15 x 32 -> 32 1.38 / 1.18x, 16 x 16 x 32 -> 32
# 1.21 / 1.13x, 30 x 30 x 16 -> 16 (an image a job either way) 1.00 / 1.12x; RMS error
# 1.7-1.8e-7 either way).  With w22_gemm's products larger jobs were slower (8 x 8 x 64 ->
# 64 0.87-0.89x): they keep _WINOGRAD2D_TILES.
_WINOGRAD2D_DW_BYTES = 1 << 20
_WINOGRAD2D_TILES_DW = 256


def _w22_dw_tiles(cg, fg, itemsize):
    """Tiles a job of conv_weight_grad_winograd2d is made of (about: whole images)."""
    if cg >= _conv.W22_DW_OWN_CHANNELS:
        return _WINOGRAD2D_TILES
    fit = _WINOGRAD2D_DW_BYTES // (16 * (cg + fg) * itemsize)
    return max(_WINOGRAD2D_TILES, min(_WINOGRAD2D_TILES_DW, fit))
# ... and the spread of a filter (as for F(2, 3) along rows, over the 2 x 2 corner of its
# taps that an output in a corner of a padded plane sees): at most this, twice that of a
# filter of equal taps (16 / 4).
_WINOGRAD2D_MAX_SPREAD = 8.0


def _use_winograd2d(geom, n_img, cg, fg, groups, itemsize, weight_grad=False):
    """Winograd F(2 x 2, 3 x 3) for this convolution of ``n_img`` images (``cg``/``fg``:
    the kernel's channels and filters; ``weight_grad``: for its weight gradient): see
    _WINOGRAD2D_MIN_CHANNELS.  A function of the problem's sizes only (not of the thread
    count)."""
    if not (_state["winograd"] and groups == 1 and geom.kernel == (3, 3)
            and geom.stride == (1, 1) and geom.dilation == (1, 1)
            and max(geom.pad_before) <= 1
            and all(o + 2 - i - p <= 1 for i, p, o in zip(geom.in_size, geom.pad_before,
                                                          geom.out_size))):
        return False
    tiles = math.prod(-(-o // 2) for o in geom.out_size)
    if weight_grad:
        return (n_img * tiles >= _WINOGRAD2D_MIN_TILES_DW
                and min(cg, fg) >= _WINOGRAD2D_MIN_CHANNELS_DW
                and _use_winograd2d(geom, n_img, cg, fg, groups, itemsize))
    return (min(cg, fg) >= (_WINOGRAD2D_MIN_CHANNELS if geom.out_total >= 64
                            else _WINOGRAD2D_MIN_SMALL)
            and max(2 * tiles, n_img * tiles) >= _WINOGRAD2D_MIN_TILES
            and 16 * (cg + fg) * tiles * itemsize <= _WINOGRAD2D_MAX_BYTES)


#: F(2 x 2, 3 x 3) weights packed from read-only weight arrays, which cannot change in
#: place (the inference program's folded convolutions, whose weights only the program
#: holds): id of the array owning the memory -> (weak reference to it, the view's
#: address, shape, strides and dtype, the packed weights or None).  Packing 64 x 64
#: filters took 75 us a call, 8 % of N4's last stage on one thread; writeable weights are
#: packed every call (arrays changed in place give new results).
_W22_PACKED = {}


def _w22_weights(w, dtype):
    """conv_winograd2d's packed weights for ``w`` (pack_winograd2d_weights), or None where
    a filter's spread is too large or a weight not finite."""
    root = w
    while isinstance(root.base, np.ndarray):
        root = root.base
    # (the memory's owner read-only: no view of it can write)
    cacheable = not root.flags.writeable
    if cacheable:
        key = (_address(w), w.shape, w.strides, w.dtype, dtype)
        entry = _W22_PACKED.get(id(root))
        if entry is not None and entry[0]() is root and entry[1] == key:
            return entry[2]
    u = np.empty((16, w.shape[0] * w.shape[1] + 64 // np.dtype(dtype).itemsize), dtype=dtype)
    # (NaN for a weight not finite: not all its outputs would be, so no need to try)
    if not _conv.pack_winograd2d_weights(w, u) <= _WINOGRAD2D_MAX_SPREAD:
        u = None
    if cacheable:
        if u is not None:
            u.setflags(write=False)
        k = id(root)

        def forget(ref, k=k):
            if _W22_PACKED.get(k, (None,))[0] is ref:
                del _W22_PACKED[k]
        _W22_PACKED[k] = (weakref.ref(root, forget), key, u)
    return u


def _run_winograd2d(xe, w, b, ye, geom, nthreads, rectify=False, residual=None):
    """ye = conv(xe) + b (+ ``residual``, ye's shape; ``rectify``: relu's values) by
    conv_winograd2d, for ``w`` (F x C x 3 x 3 in engine order, any strides); False (ye
    incomplete) where a filter's spread is too large or an output is not finite."""
    u = _w22_weights(w, ye.dtype)
    if u is None:
        return False
    return _conv.conv_winograd2d(xe, u, b, ye, int(geom.packed[16]), int(geom.packed[17]),
                                 _WINOGRAD2D_TILES, _WINOGRAD2D_KBLOCK, nthreads, rectify,
                                 residual)


@functools.lru_cache(maxsize=256)
def _adjoint_as_forward(geom):
    """The forward convolution that is the adjoint of a stride-1 convolution: from its
    output, padded by the filter's reach less the convolution's padding on either side,
    with the filter reversed; None where the padding exceeds the filter's reach.  So the
    adjoint (the transposed convolution, dX) can take Winograd F(2, 3) along rows.  Cached
    per Geometry (those are cached themselves), as it is on the per-call path."""
    span = [(k - 1) * dl for k, dl in zip(geom.kernel, geom.dilation)]
    before = tuple(r - p for r, p in zip(span, geom.pad_before))
    after = tuple(i + p - o for i, p, o in zip(geom.in_size, geom.pad_before, geom.out_size))
    if min(before + after) < 0:
        return None
    fwd = _conv_geometry(geom.out_size, geom.kernel, (1,) * len(span), geom.dilation,
                         before, after)
    # (its output is the adjoint's by construction; the kernel trusts that it is)
    return fwd if not isinstance(fwd, str) and fwd.out_size == geom.in_size else None


def _use_winograd_rows(geom, cg, fg):
    """Winograd F(2, 3) along rows for filters three taps wide (innermost dimension,
    stride and dilation 1), float32 and float64, within the direct kernel's domain: four
    products per two outputs instead of six, so two thirds of the multiplications for a
    3 x 3 or 3 x 3 x 3 filter, and no grid positions in the rows' padding.

    Its rounding is that of the direct sums or better (a product sums a third of the
    terms; measured against exact sums, 64 channels, 3 x 3: a median relative error of
    2.9e-7 against 3.4e-7 in float32; docs/engine.md has more).  The output transform
    adds, and one Inf can make Inf - Inf = NaN where the direct sums give Inf, so
    conv_direct reports non-finite outputs and the call is then recomputed by the direct
    sums."""
    # (MATLAB's first dimension is the engine's innermost)
    return (_state["winograd"] and geom.kernel[0] == 3 and geom.stride[0] == 1
            and geom.dilation[0] == 1
            and min(cg, fg) * geom.k_total // 3 >= _WINOGRAD_ROWS_MIN_WORK)


@functools.lru_cache(maxsize=64)
def _winograd_rows_plan(packed):
    """conv_direct's volume, passes, tap offsets and volume size for F(2, 3) along rows
    (_use_winograd_rows): the outer dimensions' taps as in the forward plan, four times,
    pass k reading the input transform's phase k, on a grid of tiles of two outputs."""
    i, o, k, s, dl, p = (np.array(packed[j:j + 3]) for j in range(0, 18, 3))
    span = (k - 1) * dl
    taps = np.stack(np.meshgrid(*(np.arange(n) for n in k[:2]), indexing="ij"),
                    -1).reshape(-1, 2)
    phase, shift = taps * dl[:2] % s[:2], taps * dl[:2] // s[:2]
    nph = np.minimum(s[:2], span[:2] + 1)
    m = o[:2] + span[:2] // s[:2]
    tiles = -(-o[2] // 2)
    vol = np.array([*s[:2], 2, *p, *nph, 4, *m, tiles, tiles], dtype=np.intp)
    plane = m.prod() * tiles
    pidx = (phase[:, 0] * nph[1] + phase[:, 1]) * 4
    off = np.concatenate([(pidx + r) * plane + (shift[:, 0] * m[1] + shift[:, 1]) * tiles
                          for r in range(4)])
    passes = [[len(taps), r * len(taps), 1, 1, 2, 0, 0, 0, 0, 0, 0, o[0], o[1], tiles]
              for r in range(4)]
    return DirectPlan(vol, np.array(passes, dtype=np.intp), off.astype(np.intp),
                      np.tile(np.arange(len(taps)), 4), int(vol[6:12].prod()))


def _run_winograd_rows(xe, w, b, ye, geom, nthreads):
    """ye = conv(xe) + b by conv_direct with F(2, 3) along rows, for ``w`` (G x Fg x Cg x
    taps); False (ye incomplete) if an output is not finite."""
    plan = _winograd_rows_plan(geom.key)
    spread = np.zeros(1)
    wpk, bpk, finite = _pack_direct(plan, w, b, _F23_G, spread)
    # (with a weight not finite, neither are all its outputs: no need to compute them;
    # with a filter whose rows' range is extreme, the transforms' rounding would swamp
    # the terms that outputs next to the padding see)
    return (finite and spread[0] <= _WINOGRAD_ROWS_MAX_SPREAD
            and _run_direct(plan, xe, wpk, bpk, ye, nthreads, wino=True))


# F(9 - K, K) next to an extreme weight: as for F(2, 3) along rows, an output next to the
# padding misses the taps on the padding's side, which the transforms mix into every
# product.  Each filter's spread, sum over points p of |(G w)_p| times the sum of |Aᵀ|'s
# column p, over the smaller of the sums of |w| without the first or without the last tap,
# is compared with that of a filter of equal taps (330 for K = 3 .. 89 for K = 7); normal,
# uniform and Laplace weights (64 -> 64) measured 1.0-1.35 times it.  Beyond 4 times it the
# call keeps the direct sums.  Measured (64 -> 64, the last tap scaled, per-output error
# against the direct sums'): 2.5-7.6x up to 4 times (F(9 - K, K)'s usual 2-4x), 16-45x at
# 30 times, 5e5-1.6e6x at 1e6 (a 1e6 tap).
_WINOGRAD_MAX_SPREAD = 4.0


@functools.lru_cache(maxsize=8)
def _winograd_equal_spread(k):
    bt, gm, at = _winograd_matrices(k)
    return float((np.abs(gm.sum(axis=1)) * np.abs(at).sum(axis=0)).sum() / (k - 1))


def _run_winograd(xe, w, b, ye, geom, nthreads):
    """ye = conv(xe) + b by conv_winograd for ``w`` (G x Fg x Cg x K); False (ye
    incomplete) if an output is not finite."""
    bt, gm, at = _winograd_matrices(geom.kernel[-1])
    g, fg, cg, _ = w.shape
    fbs = _filter_block(fg)
    upk = np.empty((g, -(-fg // fbs), 8, cg, fbs), dtype=w.dtype)
    spread = np.zeros(1)
    _conv.pack_winograd_weights(w, gm, upk, np.abs(at).sum(axis=0), spread)
    if spread[0] > _WINOGRAD_MAX_SPREAD * _winograd_equal_spread(geom.kernel[-1]):
        return False
    n, c, f = xe.shape[0], xe.shape[1], ye.shape[1]
    return _conv.conv_winograd(xe.reshape(n, c, -1), upk, b, ye.reshape(n, f, -1),
                               geom.dilation[-1], geom.pad_before[-1], bt, at, nthreads)


def _batch(per_image, n_img, shares=1):
    """Images whose volumes the direct kernels build at once: the budget's worth, or one.

    The weight gradient takes a budget per thread (``shares``): each batch costs it three
    parallel passes and their barriers, and its threads' jobs split the batch's channels
    (2 threads, 32 images, interleaved medians: 30x30x16->16 1.36 -> 1.25 ms, 15x15x32->32
    1.42 -> 1.28; 1 thread unchanged)."""
    return min(max(_VOLUME_BUDGET * shares // per_image, 1), n_img)


def conv_transpose(x, w, bias=None, stride=1, dilation=1, cropping=0, groups=1, offset=0,
                   fname="dltranspconv"):
    """Grouped transposed convolution in MATLAB layout; returns Y (O.. x Fg*G x N).

    ``cropping``: as ``padding`` in :func:`conv`; ``offset``: trailing bias-only positions
    per spatial dimension (MATLAB's OutputSizeOffset, used by 'same' with F < S).
    """
    plan, x, w, bias, tail, empty_core = _transposed_plan(
        x, w, bias, stride, dilation, cropping, groups, offset, fname)
    cout, n, dtype = w.shape[-2] * groups, x.shape[-1], compute_dtype(x, w)
    if empty_core:  # everything computed was cropped away: only the bias positions remain
        return np.broadcast_to(_bias_column(bias, cout, dtype),
                               empty_core + (cout, n)).copy(order="F")
    y = plan.run(x, w, bias)
    if any(tail):
        full = np.empty(tuple(s + t for s, t in zip(y.shape, tail)) + (cout, n),
                        dtype=dtype, order="F")
        full[...] = _bias_column(bias, cout, dtype)
        full[tuple(slice(0, s) for s in y.shape[:-2])] = y
        y = full
    return y


def conv_transpose_plan(x, w, bias=None, stride=1, dilation=1, cropping=0, groups=1, offset=0,
                        fname="dltranspconv"):
    """A :class:`Plan` for :func:`conv_transpose` (None where bias-only positions are
    appended, or unless the operands are numpy arrays)."""
    plan, _, _, _, tail, empty_core = _transposed_plan(x, w, bias, stride, dilation, cropping,
                                                       groups, offset, fname)
    return None if empty_core or any(tail) else _keyed(plan, _plan_key(x, w, bias))


def _transposed_plan(x, w, bias, stride, dilation, cropping, groups, offset, fname):
    x, w, bias, d, cin, cout, dtype = _prepare(fname, x, w, bias, groups, transposed=True)
    stride = int_vector(stride, d, fname, "Stride", 1)
    dilation = int_vector(dilation, d, fname, "DilationFactor", 1)
    before, after = _pads(cropping, d, fname, "Cropping")
    offset = int_vector(offset, d, fname, "offset", 0)
    empty_core = _empty_core(fname, x.shape[:d], w.shape[:d], stride, dilation, before, after,
                             offset)
    full = [s * (n - 1) + (k - 1) * dl + 1 - b - a + o for n, k, s, dl, b, a, o in
            zip(x.shape[:d], w.shape[:d], stride, dilation, before, after, offset)]
    check_allocation(fname, "the output Y", tuple(max(f, 0) for f in full)
                     + (cout, x.shape[-1]), np.dtype(dtype).itemsize)
    if empty_core:
        return None, x, w, bias, (0,) * d, empty_core
    core, tail = _split_offset(after, offset)
    geom = transposed_geometry(fname, x.shape[:d], w.shape[:d], stride, dilation,
                               before, after, core)
    _check_gemm_sizes(fname, geom, max(w.shape[d], w.shape[d + 1]))
    return (Plan(True, geom, groups, w, x.shape, cout, dtype, fname), x, w, bias, tail,
            empty_core)


def _bias_column(b, cout, dtype):
    """The bias as a cout x 1 column (zeros without bias), to broadcast over C x N."""
    return (b if b.size else np.zeros(cout, dtype)).reshape(cout, 1)


def _empty_core(fname, in_size, kernel, stride, dilation, before, after, offset):
    """Output size when cropping leaves nothing of the computed result, else ().

    MATLAB (§3.2): with an OutputSizeOffset, a crop that consumes the whole result still
    leaves the offset's bias-only positions.
    """
    sizes, empty = [], False
    for i, (n, k, s, dl, b, a, o) in enumerate(
            zip(in_size, kernel, stride, dilation, before, after, offset)):
        full = s * (n - 1) + (k - 1) * dl + 1
        if full - b - a + o < 1 and full - b - a < 1:
            raise ValueError(f"{fname}: along spatial dimension {i + 1} the cropping "
                             f"({b} + {a}) leaves no output of the {full} computed")
        empty = empty or full - b - a < 1
        sizes.append(full - b - a + o)  # MATLAB's formula, even where the crop overshoots
    return tuple(sizes) if empty else ()


def _split_offset(crop_after, offset):
    """Split OutputSizeOffset into what the kernel appends and what _ops appends.

    MATLAB crops the full result first, then appends the offset positions, which receive
    only the bias.  The kernel appends untouched positions only where nothing is cropped
    at the end (its scatter would otherwise reach them), so there _ops appends them.
    """
    core = tuple(0 if a else o for a, o in zip(crop_after, offset))
    tail = tuple(o if a else 0 for a, o in zip(crop_after, offset))
    return core, tail


def _grads(fname, x, w, dy, stride, dilation, pads, groups, offset, transposed,
           need_dx=True):
    x, w, _, d, cin, cout, dtype = _prepare(fname, x, w, None, groups, transposed)
    dy = _as_float_array(dy, fname, "dLdY")
    dtype = compute_dtype(x, w, dy)
    stride = int_vector(stride, d, fname, "Stride", 1)
    dilation = int_vector(dilation, d, fname, "DilationFactor", 1)
    before, after = _pads(pads, d, fname, "Cropping" if transposed else "Padding")
    tail = (0,) * d
    if transposed:
        offset = int_vector(offset, d, fname, "offset", 0)
        empty_core = _empty_core(fname, x.shape[:d], w.shape[:d], stride, dilation, before,
                                 after, offset)
        if empty_core:  # the output is bias only: nothing flows back to X or the weights
            dy = np.asarray(dy, dtype=dtype)
            return (np.zeros(x.shape, dtype, order="F"), np.zeros(w.shape, dtype, order="F"),
                    dy.reshape(-1, cout, dy.shape[-1], order="F").sum(axis=(0, 2)))
        core, tail = _split_offset(after, offset)
        geom = transposed_geometry(fname, x.shape[:d], w.shape[:d], stride, dilation,
                                   before, after, core)
        y_size = tuple(s + t for s, t in zip(geom.in_size, tail))
    else:
        geom = conv_geometry(fname, x.shape[:d], w.shape[:d], stride, dilation, before, after)
        y_size = geom.out_size
    _check_gemm_sizes(fname, geom, max(w.shape[d], w.shape[d + 1]))
    expect = tuple(y_size) + (cout, x.shape[d + 1])
    if dy.shape != expect:
        raise ValueError(f"{fname}: dLdY must have the output's size "
                         f"{'×'.join(map(str, expect))}, got {'×'.join(map(str, dy.shape))}")
    if x.shape[d + 1] == 0:     # no observations (an empty batch): nothing flows back
        return (np.zeros(x.shape, dtype, order="F"), np.zeros(w.shape, dtype, order="F"),
                np.zeros(cout, dtype))
    return _grads_run(x, w, dy, geom, groups, dtype, transposed, tail, need_dx)


def _grads_run(x, w, dy, geom, groups, dtype, transposed, tail, need_dx):
    """:func:`_grads` for checked operands (``Plan.backward`` calls it as well)."""
    d = w.ndim - 2
    xe, we, dye = _to_engine(x, d, dtype), _to_engine(w, d, dtype), _to_engine(dy, d, dtype)
    nt = _threads_for(_macs(geom, x.shape[d + 1], we.shape[0], we.shape[1]))
    # summed in the engine layout so the result does not depend on dy's memory order
    db = np.empty(dye.shape[1], dtype=dtype)
    _conv.channel_sums(dye, db, nt)
    if any(tail):  # the appended bias-only positions depend on neither X nor the weights
        dye = np.ascontiguousarray(dye[(Ellipsis,) + tuple(slice(0, s) for s in geom.in_engine)])
    dxe = _buffers.empty(xe.shape, dtype, "C") if need_dx else None
    dwe = np.empty(we.shape, dtype=dtype)
    none = np.empty(0, dtype=dtype)
    _ensure_blas_hooks()
    if transposed:
        # y = A^T x  =>  dx = A dy,  dW = weight-gradient of A with input dy, output-grad x
        if need_dx:
            _forward_engine(dye, we, none, dxe, geom, groups, nt)
        _weight_grad_engine(dye, xe, dwe, geom, groups, nt)
    else:
        if need_dx:
            _adjoint_engine(dye, we, none, dxe, geom, groups, nt)
        _weight_grad_engine(xe, dye, dwe, geom, groups, nt)
    dx = _from_engine(dxe, x.shape[:d]) if need_dx else None
    dw = dwe.reshape(dwe.shape[:2] + tuple(reversed(w.shape[:d]))).T
    return dx, dw, db


def conv_backward(x, w, dy, stride=1, dilation=1, padding=0, groups=1, fname="dlconv",
                  need_dx=True):
    """Gradients of :func:`conv` (zero PaddingValue): returns (dLdX, dLdW, dLdB).

    dLdX has X's size (None with ``need_dx`` False: not computed), dLdW the weights'
    size, dLdB one value per output channel.
    """
    return _grads(fname, x, w, dy, stride, dilation, padding, groups, 0, transposed=False,
                  need_dx=need_dx)


def conv_transpose_backward(x, w, dy, stride=1, dilation=1, cropping=0, groups=1, offset=0,
                            fname="dltranspconv", need_dx=True):
    """Gradients of :func:`conv_transpose`: returns (dLdX, dLdW, dLdB) (dLdX None with
    ``need_dx`` False)."""
    return _grads(fname, x, w, dy, stride, dilation, cropping, groups, offset, transposed=True,
                  need_dx=need_dx)


def pool(x, pool_size, stride=1, padding=0, mode="max", fname="predict"):
    """Max or average pooling; the pooling kernels' seam is :mod:`mlayers._ops_pool`."""
    from ._ops_pool import pool as _pool_impl
    return _pool_impl(x, pool_size, stride, padding, mode, fname)


# --------------------------------------------------------------------------- programs
# A chain of the inference program's steps run as one call of compiled kernels
# (_conv.run_program): a step function that can be part of one carries ``program``, the
# kernel it calls and that call's arguments (program_step), and the network joins a chain
# of them (dlnetwork._bind).

class ProgramStep(NamedTuple):
    """A bound step as a kernel call of a compiled program: the kernel ('conv', 'matmul',
    'pool', 'softmax', or 'same': no call, the result is the input), the dtype it computes
    in (None: its input's), its integer arguments after the input and output slots, and
    ``(dict, values)`` updates to make after a call (a layer's displayed state)."""
    kernel: str
    dtype: object
    args: tuple
    updates: tuple = ()


def program_step(kernel, dtype, args, updates=()):
    return ProgramStep(kernel, None if dtype is None else np.dtype(dtype),
                       tuple(int(a) for a in args), tuple(updates))


def _address(a):
    return a.__array_interface__["data"][0]


@functools.cache
def _program_kernels():
    kernels = {}
    for module in (_conv, _norm, _pool):
        kernels.update(module.program_steps())
    return kernels


def program(steps, shapes, dtype, keep=()):
    """One function of x for the chain ``steps`` (:class:`ProgramStep`, each reading the
    previous one's result; ``shapes``: the MATLAB shapes of the input and of each step's
    result, every array of ``dtype``): its results in a work area of two halves used in
    turn, the last one in a new Fortran-ordered array.  ``keep``: what holds the memory
    whose addresses the steps' arguments carry."""
    dtype = np.dtype(dtype)
    kernels = _program_kernels()
    sizes = [math.prod(s) * dtype.itemsize for s in shapes]
    calls = [s for s in steps if s.kernel != "same"]
    # (the intermediate results in 64-byte lines, every step's in the half it writes)
    half = max((-(-n // 64) * 64 for n in sizes[1:-1]), default=0)
    table = [len(calls), sizes[0], sizes[-1], half]
    n = 0
    for step in calls:
        src = 0 if n == 0 else 2 + (n - 1) % 2
        dst = 1 if n == len(calls) - 1 else 2 + n % 2
        table += [kernels[step.kernel][dtype == np.float64], 2 + len(step.args), src, dst,
                  *step.args]
        n += 1
    table = np.array(table, dtype=np.intp)
    updates = [u for s in steps for u in s.updates]
    out = shapes[-1]
    run_program = _conv.run_program

    def run(x):
        if not (x.flags.f_contiguous and x.dtype == dtype):
            x = np.asfortranarray(x, dtype=dtype)
        y = np.empty(out, dtype, order="F")
        run_program(table, x, y, get_num_threads())
        for d, values in updates:
            d.update(values)
        return y
    run.keep = keep
    return run


def with_state(fn, d, values):
    """``fn`` that also sets ``values`` in the dict ``d`` (a layer's displayed state, as a
    run of the layer would), carrying fn's kernel call (``program``) with that update."""
    if not values:
        return fn

    def run(x):
        d.update(values)
        return fn(x)
    step = getattr(fn, "program", None)
    if step is not None:
        run.program = step._replace(updates=step.updates + ((d, values),))
    return run
