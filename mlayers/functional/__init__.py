"""MATLAB's functional deep-learning operations and dlarray math, all differentiable.

Each submodule declares its operations with :func:`mlayers._autodiff.operation` (a forward
and its vector-Jacobian product, nothing else) and lists them in ``__all__``; this package
re-exports every one of them (and ``mlayers`` re-exports this package).
"""
import importlib

_MODULES = (
    "arith", "mathfun",                              # dlarray arithmetic and math
    "conv", "fc", "normalization", "activations",    # deep-learning operations
    "pooling", "resize", "recurrent",
    "losses", "onehot",
)

__all__ = []
for _name in _MODULES:
    _module = importlib.import_module(f".{_name}", __name__)
    for _public in _module.__all__:
        globals()[_public] = getattr(_module, _public)
    __all__ += _module.__all__
del _name, _module
