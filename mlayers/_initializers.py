"""Learnable-parameter initializers (MATLAB_SEMANTICS §5.1).

Every random initializer draws from MATLAB's default stream (:mod:`mlayers._rng`), so
``ml.rng(0)`` before building layers makes the weights reproducible.  Values are drawn in
double, evaluated in float64 and cast to float32, MATLAB's network precision (single);
bit-identity with MATLAB-initialized weights is not promised (§5.1).

    'glorot'         sqrt(6/(numIn+numOut)) * (2*rand(sz) - 1)
    'he'             sqrt(2/numIn) * randn(sz)
    'narrow-normal'  0.01 * randn(sz)
    'zeros', 'ones'  constants (draw nothing)
    callable         func(sz), sz the learnable's MATLAB size as a tuple of ints
"""
import numpy as np

import sys

from . import _rng
from ._display import format_size, trim_shape
from ._validate import check_allocation


def _caller_layer():
    """The layer whose learnable is being initialized (the calling method's ``self``),
    for error messages; the layers call :func:`initialize` from their own methods."""
    frame = sys._getframe(2)
    while frame is not None:
        obj = frame.f_locals.get("self")
        if obj is not None and hasattr(obj, "_label"):
            try:
                return obj._label()
            except Exception:
                break
        frame = frame.f_back
    return "the layer"

WEIGHTS_INITIALIZERS = ("glorot", "he", "narrow-normal", "zeros", "ones")
BIAS_INITIALIZERS = ("zeros", "narrow-normal", "ones")


def initialize(init, sz, num_in, num_out, fname, name):
    """A float32 Fortran-ordered array of MATLAB size ``sz`` from initializer ``init``.

    ``num_in``/``num_out`` are the layer's fan-in and fan-out (§2.3); ``fname`` and
    ``name`` (e.g. ``"predict"``, ``"WeightsInitializer"``) name a failing callable.
    """
    sz = tuple(int(s) for s in sz)
    # Refuse a size that cannot be allocated before drawing it (numpy would raise a bare
    # MemoryError naming nothing): the random initializers draw doubles, so 8 bytes each.
    learnable = name[:-len("Initializer")] if name.endswith("Initializer") else name
    check_allocation(fname, f"{learnable} of {_caller_layer()}", sz,
                     4 if init in ("zeros", "ones") else 8)
    if callable(init):
        try:
            w = init(sz)
        except Exception as exc:
            raise ValueError(f"{fname}: {name} failed for size {format_size(sz)}: "
                             f"{type(exc).__name__}: {exc}") from exc
        w = np.asarray(w)
        if w.dtype == np.bool_ or not (np.issubdtype(w.dtype, np.floating)
                                       or np.issubdtype(w.dtype, np.integer)):
            raise TypeError(f"{fname}: {name} must return a real numeric array, got dtype "
                            f"{w.dtype}")
        # MATLAB drops trailing singletons, so a function may return 11×96 for 11×96×1.
        if trim_shape(w.shape) != trim_shape(sz):
            raise ValueError(f"{fname}: {name} must return an array of size "
                             f"{format_size(sz)}, got {format_size(w.shape)}")
        return np.asfortranarray(w.reshape(sz, order="A"), dtype=np.float32)
    if init == "zeros":
        return np.zeros(sz, dtype=np.float32, order="F")
    if init == "ones":
        return np.ones(sz, dtype=np.float32, order="F")
    if init == "glorot":
        w = np.sqrt(6.0 / (num_in + num_out)) * (2.0 * _rng.rand(*sz) - 1.0)
    elif init == "he":
        w = np.sqrt(2.0 / num_in) * _rng.randn(*sz)
    elif init == "narrow-normal":
        w = 0.01 * _rng.randn(*sz)
    else:  # the converters canonicalise names, so this is a programming error
        raise ValueError(f"{fname}: unknown initializer {init!r}")
    return np.asfortranarray(w, dtype=np.float32)
