"""Seam of the elementwise activation kernels (``pyx/_act.pyx``): leaky and clipped ReLU,
ELU, GELU (erf and tanh forms), sigmoid, swish and softplus, forward and backward.

Each call is one pass over the memory of a dense array in any layout (C, Fortran, or a
permutation of either): the result gets the input's strides, large results come from the
result pool of ``mlayers._buffers`` (value semantics kept), and a non-dense input pays one
C-ordered copy.  This module is the only importer of ``mlayers._act``; threads as
``ml.threads`` (one thread below ``_ops_norm._PARALLEL_MIN`` elements); results do not depend
on the thread count (fixed chunks, elementwise).

float32 uses vectorized exp/tanh/sigmoid (``pyx/_rnn_simd.h``, within ~2 ulp), erf, expm1
and log1p (``pyx/_act_rows.h``); float64 uses libm.  ``x`` must be float32 or float64.
"""
import numpy as np

from . import _act
from ._buffers import empty_like
from ._ops_norm import _dense, _flat, _like_layout, _stream, _threads

#: kernel codes (pyx/_act_rows.h)
KINDS = {"leakyrelu": 0, "clippedrelu": 1, "elu": 2, "gelu": 3, "gelu_tanh": 4,
         "sigmoid": 5, "swish": 6, "softplus": 7}


#: passes bound by memory traffic, whose large results are stored non-temporally
#: (``_ops_norm._stream``); the others compute long enough per element that streaming
#: stores only cost (GELU forward on 6.4 M floats: 2.96 ms plain, 3.16 ms streamed)
STREAMED_FORWARD = ("leakyrelu", "clippedrelu")
STREAMED_BACKWARD = ("leakyrelu", "clippedrelu", "sigmoid", "elu")


def forward(kind, x, p=0.0):
    """``f(x)`` of activation ``kind`` (parameter ``p``: scale, ceiling or alpha), in x's
    memory layout."""
    x, xf = _dense(x)
    y = empty_like(x)
    _act.forward(KINDS[kind], xf, _flat(y), float(p), _threads(x.size),
                 kind in STREAMED_FORWARD and _stream(x, y))
    return y


#: kinds whose backward reads the forward result y (sigmoid: y (1 - y); elu with alpha > 0:
#: y + alpha instead of alpha exp(x))
USES_Y = ("sigmoid", "elu")


def backward(kind, x, dy, p=0.0, y=None):
    """``dy .* f'(x)`` in x's memory layout; ``y``: the forward result (recomputed when
    None for the kinds of ``USES_Y``)."""
    x, xf = _dense(x)
    dy = _like_layout(dy, x)
    if y is None and kind in USES_Y:
        y = forward(kind, x, p)
    yf = xf if y is None else _flat(_like_layout(y, x))
    dx = empty_like(x)
    _act.backward(KINDS[kind], xf, yf, _flat(dy), _flat(dx), float(p), _threads(x.size),
                  kind in STREAMED_BACKWARD and _stream(x, dy, dx))
    return dx
