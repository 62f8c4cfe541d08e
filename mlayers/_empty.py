"""Empty batches: one rule for every layer (issue 21, defect 7; docs/robustness.md).

A layer run on a formatted input whose batch dimension ``B`` has size 0 returns an output
of the size it would have for any number of observations, with 0 observations, and no
state update.  MATLAB documents that empty arrays "flow through algorithms without special
handling" (https://uk.mathworks.com/help/matlab/math/empty-arrays.html); what its layers do
with zero observations is not documented, so this is inferred (package default
``empty_batch="empty"``; ``"error"`` refuses such inputs with a message naming the layer).

How: the layer runs on one observation of zeros in place of the empty one (so learnables
are initialized and every format and size check happens exactly as for real data), and the
output keeps 0 observations of it through a traced slice.  :class:`mlayers._props.Layer`
wraps every subclass's ``_forward``, ``_forward_train`` and ``_run`` with :func:`guard`
when the class is created, so ``Layer.predict``, ``dlnetwork`` (both of its execution
paths) and every layer added later behave the same without code of their own.
"""
import functools

import numpy as np

from . import _defaults


def _empty_batch(x):
    """Whether ``x`` is a formatted dlarray whose B dimension has size 0."""
    dims = getattr(x, "_dims", None)
    if not dims or "B" not in dims:
        return False
    return x._data.shape[dims.index("B")] == 0


def _one_observation(x):
    dims = x._dims
    shape = list(x._data.shape)
    shape[dims.index("B")] = 1
    one = type(x)._from_canonical(np.zeros(shape, dtype=x._data.dtype), dims)
    if getattr(x, "_node", None) is not None:
        # inside dlfeval: keep the output connected to X (sum over no elements is 0), so
        # dlgradient of a loss of an empty batch is zeros rather than "not traced"
        from .functional.mathfun import sum as _sum
        one = one + _sum(x, "all")
    return one


def _no_observations(y):
    dims = getattr(y, "_dims", None)
    if not dims or "B" not in dims:
        return y
    b = dims.index("B")
    return y[tuple(slice(0, 0) if i == b else slice(None) for i in range(y.ndim))]


def _refuse(layer, fname):
    label = layer._label() if hasattr(layer, "_label") else type(layer).__name__
    raise ValueError(f"{fname}: the input of {label} must have at least one observation "
                     "(package_defaults empty_batch='error'), got an empty batch")


def guard(method, kind):
    """Wrap a layer method so that an empty batch gets the package's empty-batch rule.

    ``kind``: ``"forward"`` (``_forward(X, fname)`` -> Y), ``"train"``
    (``_forward_train(X, fname)`` -> (Y, state)) or ``"run"`` (``_run(inputs, training,
    fname)`` -> (outputs, state)).  Non-empty inputs cost one size test.
    """
    if getattr(method, "_empty_guard", False):
        return method

    if kind == "run":
        @functools.wraps(method)
        def run(self, inputs, training, fname, *args, **kwargs):
            if not any(_empty_batch(x) for x in inputs):
                return method(self, inputs, training, fname, *args, **kwargs)
            batched = [x for x in inputs if getattr(x, "_dims", None) and "B" in x._dims]
            if not all(_empty_batch(x) for x in batched):   # mixed sizes: the layer decides
                return method(self, inputs, training, fname, *args, **kwargs)
            if _defaults.get("empty_batch") == "error":
                _refuse(self, fname)
            ones = [_one_observation(x) if _empty_batch(x) else x for x in inputs]
            ys, _ = method(self, ones, training, fname, *args, **kwargs)
            return [_no_observations(y) for y in ys], None
        wrapper = run
    else:
        @functools.wraps(method)
        def forward(self, X, fname, *args, **kwargs):
            if not _empty_batch(X):
                return method(self, X, fname, *args, **kwargs)
            if _defaults.get("empty_batch") == "error":
                _refuse(self, fname)
            out = method(self, _one_observation(X), fname, *args, **kwargs)
            if kind == "train":
                return _no_observations(out[0]), None
            return _no_observations(out)
        wrapper = forward
    wrapper._empty_guard = True
    return wrapper


_KINDS = {"_forward": "forward", "_forward_train": "train", "_run": "run"}


def install(cls):
    """Guard the execution methods that ``cls`` itself defines (see :func:`guard`)."""
    for name, kind in _KINDS.items():
        method = cls.__dict__.get(name)
        if method is not None and callable(method):
            setattr(cls, name, guard(method, kind))
