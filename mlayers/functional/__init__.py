"""MATLAB's functional deep-learning operations and dlarray math, all differentiable.

Each submodule declares its operations with :func:`mlayers._autodiff.operation` (a forward
and its vector-Jacobian product, nothing else) and lists them in ``__all__``; this package
re-exports every one of them (and ``mlayers`` re-exports this package).
"""
from .._collect import collect

_MODULES = (
    "arith", "mathfun",                              # dlarray arithmetic and math
    "conv", "fc", "normalization", "activations",    # deep-learning operations
    "pooling", "resize", "recurrent",
    "losses", "onehot",
)

__all__ = collect(__name__, _MODULES, globals())
