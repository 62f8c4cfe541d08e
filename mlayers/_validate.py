"""Small reusable value converters with the package message format (MATLAB_SEMANTICS §7.3).

A converter takes ``(value, where)`` and returns the canonical value MATLAB would store,
or raises with the message ``<function>: <Argument> must be <constraint>, got <value>``.
``where`` says who is asking (the MATLAB function or class name, the argument, and the
layer for converters whose answer depends on other properties).

Type errors (text where a number belongs, ``bool``, ``None``) raise ``TypeError``; values
of the right type with a wrong size, range or format raise ``ValueError``.
"""
import math
import os

import numpy as np

from ._display import format_for_error, format_size, times
from ._options import validatestring

#: Largest integer a size, count, stride, dilation or padding may take: the kernels index
#: with 32-bit BLAS integers, and anything larger would wrap (2**63 stored in int64 is
#: negative) and surface later as an unrelated error.  One bound, checked here for every
#: integer property (MATLAB's own layers refuse such sizes when they allocate).
INT_LIMIT = 2**31 - 1

#: the most dimensions a numpy array can have (64 since NumPy 2, 32 before)
MAX_DIMS = 64 if int(np.__version__.split(".")[0]) >= 2 else 32


class Where:
    """Context of one conversion: the function (or class) name, the argument, the layer."""

    __slots__ = ("fname", "name", "layer")

    def __init__(self, fname, name, layer=None):
        self.fname, self.name, self.layer = fname, name, layer

    def error(self, constraint, value, exc=ValueError):
        return exc(f"{self.fname}: {self.name} must be {constraint}, "
                   f"got {format_for_error(value)}")


# --------------------------------------------------------------------------- numbers

def _is_text(v):
    return isinstance(v, (str, np.str_))


def real_array(value, where, constraint):
    """``value`` as a real numeric numpy array (a view when possible); TypeError otherwise.

    Accepts Python numbers, numpy scalars, (nested) lists and arrays.  Rejects ``bool``
    (MATLAB's logical is not a size), text, ``None``, complex and object arrays.
    """
    if value is None or _is_text(value) or isinstance(value, (bool, np.bool_)):
        raise where.error(constraint, value, TypeError)
    try:
        a = np.asarray(value)
    except Exception:
        raise where.error(constraint, value, TypeError) from None
    if a.dtype == object and a.size and all(isinstance(e, int) and not isinstance(e, bool)
                                             for e in a.reshape(-1)):
        # Python ints beyond int64/uint64: numbers of the right type, out of range
        raise where.error(f"{constraint} (at most {INT_LIMIT}, the kernels' 32-bit index "
                          "range)", value)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.integer)
                                   or np.issubdtype(a.dtype, np.floating)):
        raise where.error(constraint, value, TypeError)
    return a


def integers(a, where, constraint, value, minimum, maximum=INT_LIMIT):
    """Integer-valued, finite, ``minimum <= v <= maximum``, else ValueError; returns an
    int64 array.  ``maximum`` defaults to :data:`INT_LIMIT`, the kernels' index range, so
    no value can wrap when stored (``2**63``, ``1e20`` and ``2**64 - 1`` are refused here)."""
    if a.size and (not np.all(np.isfinite(a)) or np.any(a != np.round(a))
                   or np.any(a < minimum)):
        raise where.error(constraint, value)
    if a.size and np.any(a > maximum):
        raise where.error(f"{constraint} (at most {maximum}, the kernels' 32-bit index "
                          "range)", value)
    return a.astype(np.int64)


def memory_limit():
    """Bytes one array may take: the machine's physical memory, MATLAB's default "maximum
    array size preference" (100 % of RAM), or less under an address-space limit
    (``ulimit -v``); 2**63 - 1 where neither is known."""
    limit = 2**63 - 1
    try:
        limit = min(os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), limit)
    except (ValueError, OSError, AttributeError):
        pass
    try:                      # a process limited by ulimit -v cannot go beyond it either
        import resource
        soft = resource.getrlimit(resource.RLIMIT_AS)[0]
        if soft != resource.RLIM_INFINITY:
            limit = min(limit, soft)
    except (ImportError, ValueError, OSError):
        pass
    return limit


def _bytes_text(n):
    for unit, scale in (("PiB", 2**50), ("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20),
                        ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


def check_allocation(fname, what, shape, itemsize):
    """Refuse before allocating an array MATLAB would refuse too (ValueError).

    ``what`` names the array (e.g. ``"Weights of TransposedConvolution3DLayer 'tc'"``).
    MATLAB: "Requested 1e+05x1e+05 (74.5GB) array exceeds maximum array size preference";
    numpy would raise a bare ``MemoryError`` (or a reshape error once the element count
    overflows int64).  Sizes are multiplied in Python integers, so nothing wraps.
    """
    shape = tuple(int(s) for s in shape)
    n = math.prod(shape)
    nbytes = n * int(itemsize)
    limit = memory_limit()
    if nbytes > limit:
        raise ValueError(f"{fname}: {what} of size {format_size(shape)} would need "
                         f"{nbytes} bytes ({_bytes_text(nbytes)}), more than the maximum "
                         f"array size ({limit} bytes, the machine's memory or the process limit)")
    return n


def scalar(value, where, constraint):
    """The one element of a real numeric scalar, as a 1-element array; TypeError for a
    non-numeric value, ValueError for any other size."""
    a = real_array(value, where, constraint)
    if a.size != 1:
        raise where.error(constraint, value)
    return a.reshape(-1)


def real_scalar(value, where, constraint, ok):
    """A real scalar ``x`` with ``ok(x)`` -> ``float``; ValueError naming ``constraint``
    otherwise."""
    x = float(scalar(value, where, constraint)[0])
    if not ok(x):
        raise where.error(constraint, value)
    return x


def positive_int(value, where, constraint="a positive integer scalar"):
    """A positive integer scalar -> ``int`` (FilterSize in 1-D, NumFilters, ...)."""
    return int(integers(scalar(value, where, constraint), where, constraint, value, 1)[0])


def size_vector(d, minimum=1):
    """Converter for a size parameter of a d-D layer (§1.5).

    d = 1: a scalar -> ``int``.  d = 2, 3: a scalar ``v`` -> ``[v v (v)]``, a 1×d row is
    kept; stored as a read-only int64 array of length d.
    """
    what = "positive" if minimum == 1 else "nonnegative"
    if d == 1:
        constraint = f"a {what} integer scalar"
    else:
        constraint = f"a {what} integer scalar or 1{times()}{d} vector"

    def convert(value, where):
        a = real_array(value, where, constraint)
        is_row = a.ndim <= 1 or (a.ndim == 2 and a.shape[0] == 1)
        if a.size == 1:
            flat = np.repeat(a.reshape(-1), d)
        elif d > 1 and is_row and a.size == d:
            flat = a.reshape(-1)
        else:
            raise where.error(constraint, value)
        v = integers(flat, where, constraint, value, minimum)
        if d == 1:
            return int(v[0])
        v.flags.writeable = False
        return v

    convert.constraint = constraint
    return convert


def nonneg_factor(value, where):
    """A real, finite, nonnegative scalar -> ``float`` (learn-rate and L2 factors)."""
    return real_scalar(value, where, "a nonnegative finite real scalar",
                       lambda x: np.isfinite(x) and x >= 0)


def text(value, where):
    """A character vector or string scalar -> ``str`` (Name)."""
    if not _is_text(value):
        raise where.error("a character vector or string scalar", value, TypeError)
    return str(value)


def auto_or_positive_int(value, where):
    """``'auto'`` or a positive integer scalar (NumChannels, NumChannelsPerGroup)."""
    if _is_text(value):
        return validatestring(value, ("auto",), where.fname, where.name)
    return positive_int(value, where, "'auto' or a positive integer scalar")


def choice(choices):
    """Converter for an enumerated text value, canonicalised by ``validatestring``."""
    def convert(value, where):
        return validatestring(value, choices, where.fname, where.name)
    convert.constraint = "one of " + ", ".join(repr(c) for c in choices)
    return convert


def initializer(choices):
    """Converter for WeightsInitializer/BiasInitializer: one of ``choices`` or a callable."""
    def convert(value, where):
        if callable(value) and not _is_text(value):
            return value
        if not _is_text(value):
            raise where.error("one of " + ", ".join(repr(c) for c in choices)
                              + " or a function handle (callable)", value, TypeError)
        return validatestring(value, choices, where.fname, where.name)
    return convert


PADDING_VALUE_MODES = ("symmetric-include-edge", "symmetric-exclude-edge", "replicate")


def padding_value(value, where):
    """PaddingValue: a real scalar (stored as float) or one of MATLAB's three modes."""
    if _is_text(value):
        return validatestring(value, PADDING_VALUE_MODES, where.fname, where.name)
    return real_scalar(value, where, "a real scalar, 'symmetric-include-edge', "
                       "'symmetric-exclude-edge' or 'replicate'", lambda x: not np.isnan(x))


# --------------------------------------------------------------------------- padding forms

def padding_forms(d, modes):
    """Converter for Padding/Cropping of a d-D layer (§3.3).

    Returns a mode string from ``modes`` (e.g. ``'same'``, ``'causal'``) or the stored
    numeric form: 1-D ``[l r]``, 2-D ``[t b l r]`` (length-4 int arrays), 3-D a 2×3
    ``[t l f; b r k]`` array.  The arrays are read-only.
    """
    forms = {1: f"a nonnegative integer scalar or 1{times()}2 vector [l r]",
             2: f"a nonnegative integer scalar, 1{times()}2 vector [a b] or "
                f"1{times()}4 vector [t b l r]",
             3: f"a nonnegative integer scalar, 1{times()}3 vector [a b c] or "
                f"2{times()}3 matrix [t l f; b r k]"}[d]
    constraint = " or ".join(repr(m) for m in modes) + ", or " + forms if modes else forms

    def convert(value, where):
        if _is_text(value):
            if not modes:
                raise where.error(constraint, value, TypeError)
            return validatestring(value, modes, where.fname, where.name)
        a = real_array(value, where, constraint)
        flat = integers(a.reshape(-1), where, constraint, value, 0)
        if a.ndim > 2 or (a.ndim == 2 and a.shape[0] != 1 and not (d == 3 and a.shape == (2, 3))):
            raise where.error(constraint, value)
        n = a.size
        if d == 1 and n in (1, 2):
            out = np.repeat(flat, 2) if n == 1 else flat
        elif d == 2 and n in (1, 2, 4):
            out = {1: np.repeat(flat, 4), 2: np.repeat(flat, 2), 4: flat}[n]
        elif d == 3 and n in (1, 3) and a.ndim <= 2 and (a.ndim < 2 or a.shape[0] == 1):
            out = np.tile(np.repeat(flat, 3) if n == 1 else flat, (2, 1))
        elif d == 3 and a.shape == (2, 3):
            out = flat.reshape(2, 3)    # flat is row-major, the rows are before / after
        else:
            raise where.error(constraint, value)
        out = np.array(out, dtype=np.int64)
        out.flags.writeable = False
        return out

    return convert


def before_after(stored, d):
    """Stored padding/cropping form -> ``(before, after)`` tuples in MATLAB dim order."""
    a = np.asarray(stored)
    if d == 1:
        return (int(a[0]),), (int(a[1]),)
    if d == 2:
        return (int(a[0]), int(a[2])), (int(a[1]), int(a[3]))
    return tuple(int(v) for v in a[0]), tuple(int(v) for v in a[1])


def stored_form(before, after):
    """``(before, after)`` tuples -> the stored layer form (inverse of ``before_after``)."""
    d = len(before)
    if d == 1:
        out = np.array([before[0], after[0]], dtype=np.int64)
    elif d == 2:
        out = np.array([before[0], after[0], before[1], after[1]], dtype=np.int64)
    else:
        out = np.array([before, after], dtype=np.int64)
    out.flags.writeable = False
    return out


# --------------------------------------------------------------------------- arrays

def learnable(value, where):
    """A learnable parameter: real single/double array (lists become double), or ``None``.

    ``[]`` and other empty arrays mean "not set" (the initializer will fill it); the size
    check belongs to the layer, which knows the expected size.
    """
    if value is None:
        return None
    if isinstance(value, (list, tuple)) and len(value) == 0:
        return None
    constraint = "a real single or double array (float32 or float64)"
    if _is_text(value) or isinstance(value, (bool, np.bool_)):
        raise where.error(constraint, value, TypeError)
    a = value if isinstance(value, np.ndarray) else None
    if a is None:
        try:
            a = np.asarray(value)
        except Exception:
            raise where.error(constraint, value, TypeError) from None
        if a.dtype != object and (np.issubdtype(a.dtype, np.integer)
                                  or np.issubdtype(a.dtype, np.floating)) \
                and a.dtype != np.bool_:
            a = a.astype(np.float64)          # a Python list of numbers is MATLAB double
    if a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where.fname}: {where.name} must be {constraint}, got "
                        f"{'a ' + a.dtype.name + ' array' if a.dtype != object else repr(value)}")
    if a.size == 0:
        return None
    return a


def check_size(a, expected, where, legend):
    """Return ``a`` viewed with ``len(expected)`` dims if its size matches ``expected``.

    ``expected`` holds ints and ``None`` wildcards (a channel count still ``'auto'``).
    Missing trailing dimensions count as 1 (MATLAB drops trailing singletons, so
    ``loadmat`` returns ``3×1`` for a ``3×1×1`` array); extra trailing singletons are
    accepted too.  ``legend`` names the dimensions, e.g. ``FilterSize×NumFilters×NumChannels``.
    """
    n = len(expected)
    shape = a.shape
    if len(shape) > n and all(s == 1 for s in shape[n:]):
        shape = shape[:n]
    shape = shape + (1,) * (n - len(shape))
    ok = len(shape) == n and all(e is None or e == s for e, s in zip(expected, shape))
    if not ok:
        want = times().join("any" if e is None else str(e) for e in expected)
        got = format_size(a.shape) if a.ndim else f"a scalar ({format_for_error(a)})"
        raise ValueError(f"{where.fname}: {where.name} must be of size {want} ({legend}), "
                         f"got {got}")
    if a.shape != shape:
        a = a.reshape(shape, order="A")   # only size-1 dims change: a view either way
    return a

