"""Training: solver updates, mini-batch queues, categorical labels, trainingOptions,
trainNetwork/trainnet and the trained networks (MATLAB_SEMANTICS §12, §13, §16).

Each module lists its public names in ``__all__``; this package re-exports them (and
``mlayers`` re-exports this package).  ``sequences`` (sequence padding) belongs to the
recurrent layers and is collected when it exists.
"""
import importlib

_MODULES = ("solvers", "categorical", "minibatch", "options", "sequences", "trainer")

__all__ = []
for _name in _MODULES:
    try:
        _module = importlib.import_module(f".{_name}", __name__)
    except ModuleNotFoundError as _exc:        # a module not written yet
        if _exc.name != f"{__name__}.{_name}":
            raise
        continue
    for _public in getattr(_module, "__all__", ()):
        globals()[_public] = getattr(_module, _public)
    __all__ += list(getattr(_module, "__all__", ()))
del _name
globals().pop("_module", None)
globals().pop("_exc", None)
