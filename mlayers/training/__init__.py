"""Training: solver updates, mini-batch queues, categorical labels, trainingOptions,
trainNetwork/trainnet and the trained networks (MATLAB_SEMANTICS §12, §13, §16).

Each module lists its public names in ``__all__``; this package re-exports them (and
``mlayers`` re-exports this package).  ``sequences`` (sequence padding) belongs to the
recurrent layers and is collected when it exists.
"""
import importlib

from .. import _defaults

# Switchable package defaults of training (registered here, read with _defaults.get):
#   training_era: trainingOptions' property list and 'auto' defaults, "E4" (R2023b+) or
#     "E3" (R2020b-R2023a, the documented R2021b-R2022b display) (MATLAB_SEMANTICS §16.1);
#   bn_population_variance: batch-norm 'population' statistics after trainNetwork,
#     "plus_epsilon" (E2 source: TrainedVariance = population variance + Epsilon) or
#     "exact" (§16.6).
for _key, _value, _allowed in (("training_era", "E4", ("E4", "E3")),
                               ("bn_population_variance", "plus_epsilon",
                                ("plus_epsilon", "exact"))):
    _defaults._DEFAULTS.setdefault(_key, _value)
    _defaults._ALLOWED.setdefault(_key, _allowed)
del _key, _value, _allowed

_MODULES = ("solvers", "lbfgs", "categorical", "minibatch", "options", "sequences", "trainer",
            "monitor")

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
