"""MATLAB's ``trainingOptions`` for the ``sgdm``, ``adam`` and ``rmsprop`` solvers
(MATLAB_SEMANTICS §16.1).

Every option that applies to these solvers, with MATLAB's per-solver defaults, MATLAB's
name matching (case-insensitive, unique prefixes), validation and property display.

Eras (``ml.package_defaults(training_era=...)``):

* ``"E4"`` (default; R2023b+): E4's property list and order (``Metrics``,
  ``ObjectiveMetricName``, ``InputDataFormats``, ``TargetDataFormats``,
  ``PreprocessingEnvironment``, ``Acceleration``; no ``WorkerLoad``/``DispatchInBackground``),
  ``BatchNormalizationStatistics`` and ``OutputNetwork`` default to ``'auto'``.
* ``"E3"`` (R2020b-R2023a): the documented R2021b-R2022b display, verbatim, with
  ``'population'`` and ``'last-iteration'`` defaults.

``'auto'`` means ``'population'``/``'last-iteration'`` in ``trainNetwork``; in ``trainnet``
``'moving'`` and (with validation data) ``'best-validation'``.
"""
import math
import numbers

import numpy as np

from .. import _defaults, _display
from .._options import match_name, validatestring

__all__ = ["trainingOptions", "TrainingOptionsSGDM", "TrainingOptionsADAM",
           "TrainingOptionsRMSProp"]

_FNAME = "trainingOptions"


class _Raw:
    """A value whose display text is given (``format_value`` falls back to ``repr``)."""

    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


# --------------------------------------------------------------------------- validators

def _real(name, v, low=None, low_open=False, high=None, high_open=False, allow_inf=False,
          integer=False, what=""):
    x = v
    if isinstance(x, np.ndarray) and x.size == 1:
        x = x.reshape(())[()]
    ok = isinstance(x, (numbers.Real, np.number)) and not isinstance(x, (bool, np.bool_))
    if ok:
        x = float(x)
        ok = not math.isnan(x) and (allow_inf or math.isfinite(x))
        if ok and low is not None:
            ok = x > low if low_open else x >= low
        if ok and high is not None:
            ok = x < high if high_open else x <= high
        if ok and integer and math.isfinite(x):
            ok = x == int(x)
    if not ok:
        raise ValueError(f"{_FNAME}: {name} must be {what}, got {_display.format_for_error(v)}")
    return int(x) if integer and math.isfinite(x) else x


def _pos(name, v):
    return _real(name, v, low=0.0, low_open=True, what="a finite positive scalar")


def _nonneg(name, v):
    return _real(name, v, low=0.0, what="a finite nonnegative scalar")


def _decay(name, v):
    return _real(name, v, low=0.0, high=1.0, high_open=True,
                 what="a scalar in the range [0, 1)")


def _unit(name, v):
    return _real(name, v, low=0.0, high=1.0, what="a scalar in the range [0, 1]")


def _posint(name, v):
    return _real(name, v, low=1.0, integer=True, what="a positive integer")


def _posint_or_inf(name, v):
    return _real(name, v, low=1.0, integer=True, allow_inf=True,
                 what="a positive integer or Inf")


def _threshold(name, v):
    return _real(name, v, low=0.0, low_open=True, allow_inf=True,
                 what="a positive scalar or Inf")


def _logical(name, v):
    if isinstance(v, (bool, np.bool_)) or (isinstance(v, numbers.Real) and v in (0, 1)):
        return bool(v)
    raise ValueError(f"{_FNAME}: {name} must be true or false (or 1 or 0), got "
                     f"{_display.format_for_error(v)}")


def _choice(*choices):
    def conv(name, v):
        return validatestring(v, choices, _FNAME, name)
    return conv


def _text(name, v):
    if not isinstance(v, (str, np.str_)):
        raise TypeError(f"{_FNAME}: {name} must be text, got {_display.format_for_error(v)}")
    return str(v)


def _checkpoint_path(name, v):
    v = _text(name, v)
    if v:
        import os
        if not os.path.isdir(v):
            raise ValueError(f"{_FNAME}: {name} must be an existing folder (or ''), got "
                             f"'{v}'")
    return v


def _validation_data(name, v):
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return None
    if isinstance(v, (list, tuple)) and len(v) == 2:
        return tuple(v)
    if hasattr(v, "_columns"):          # a datastore
        return v
    raise ValueError(f"{_FNAME}: {name} must be [] or a pair (X, Y) of predictors and "
                     f"responses, got {type(v).__name__}")


def _output_fcn(name, v):
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return None
    if callable(v):
        return v
    if isinstance(v, (list, tuple)) and all(callable(f) for f in v):
        return list(v)
    raise TypeError(f"{_FNAME}: {name} must be a function or a list of functions, got "
                    f"{type(v).__name__}")


def _sequence_length(name, v):
    if isinstance(v, (str, np.str_)):
        return validatestring(v, ("longest", "shortest"), _FNAME, name)
    return _posint(name, v)


def _padding_value(name, v):
    return _real(name, v, allow_inf=True, what="a real scalar")


def _empty(name, v):
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return None
    return v


def _metrics(name, v):
    if v is None or (isinstance(v, (list, tuple)) and len(v) == 0):
        return None
    vals = [v] if isinstance(v, str) or callable(v) else list(v)
    for m in vals:
        if not (callable(m) or (isinstance(m, str) and m.lower() in (
                "accuracy", "rmse", "fscore", "precision", "recall", "auc", "mape",
                "index-crossentropy", "crossentropy"))):
            raise ValueError(f"{_FNAME}: {name} must be metric names ('accuracy', 'rmse', "
                             f"...) or functions, got {v!r}")
    return vals


def _execution(name, v):
    v = validatestring(v, ("auto", "cpu", "gpu", "multi-gpu", "parallel", "parallel-auto",
                           "parallel-cpu", "parallel-gpu"), _FNAME, name)
    if v not in ("auto", "cpu"):
        raise ValueError(f"{_FNAME}: {name} must be 'auto' or 'cpu' (mlayers trains on the "
                         f"CPU), got '{v}'")
    return v


def _formats(name, v):
    if isinstance(v, (str, np.str_)):
        return str(v)
    if isinstance(v, (list, tuple)) and all(isinstance(e, str) for e in v):
        return list(v)
    raise TypeError(f"{_FNAME}: {name} must be \"auto\" or dlarray formats, got {v!r}")


# --------------------------------------------------------------------------- option table
#   name -> (converter, default (callable of solver ok), solvers or None for all, eras)

_ALL = ("sgdm", "adam", "rmsprop")

_OPTIONS = {
    "Momentum": (_unit, 0.9, ("sgdm",)),
    "GradientDecayFactor": (_decay, 0.9, ("adam",)),
    "SquaredGradientDecayFactor": (_decay, lambda s: 0.999 if s == "adam" else 0.9,
                                   ("adam", "rmsprop")),
    "Epsilon": (_pos, 1e-8, ("adam", "rmsprop")),
    "InitialLearnRate": (_pos, lambda s: 0.01 if s == "sgdm" else 0.001, _ALL),
    "MaxEpochs": (_posint, 30, _ALL),
    "LearnRateSchedule": (_choice("none", "piecewise"), "none", _ALL),
    "LearnRateDropFactor": (_unit, 0.1, _ALL),
    "LearnRateDropPeriod": (_posint, 10, _ALL),
    "MiniBatchSize": (_posint, 128, _ALL),
    "Shuffle": (_choice("once", "never", "every-epoch"), "once", _ALL),
    "CheckpointFrequency": (_posint, 1, _ALL),
    "CheckpointFrequencyUnit": (_choice("epoch", "iteration"), "epoch", _ALL),
    "SequenceLength": (_sequence_length, "longest", _ALL),
    "PreprocessingEnvironment": (_choice("serial", "background", "parallel"), "serial", _ALL),
    "L2Regularization": (_nonneg, 1e-4, _ALL),
    "GradientThresholdMethod": (_choice("l2norm", "global-l2norm", "absolute-value"),
                                "l2norm", _ALL),
    "GradientThreshold": (_threshold, math.inf, _ALL),
    "Verbose": (_logical, True, _ALL),
    "VerboseFrequency": (_posint, 50, _ALL),
    "ValidationData": (_validation_data, None, _ALL),
    "ValidationFrequency": (_posint, 50, _ALL),
    "ValidationPatience": (_posint_or_inf, math.inf, _ALL),
    "ObjectiveMetricName": (_text, "loss", _ALL),
    "CheckpointPath": (_checkpoint_path, "", _ALL),
    "ExecutionEnvironment": (_execution, "auto", _ALL),
    "WorkerLoad": (_empty, None, _ALL),
    "OutputFcn": (_output_fcn, None, _ALL),
    "Metrics": (_metrics, None, _ALL),
    "Plots": (_choice("none", "training-progress"), "none", _ALL),
    "SequencePaddingValue": (_padding_value, 0.0, _ALL),
    "SequencePaddingDirection": (_choice("right", "left"), "right", _ALL),
    "InputDataFormats": (_formats, "auto", _ALL),
    "TargetDataFormats": (_formats, "auto", _ALL),
    "DispatchInBackground": (_logical, False, _ALL),
    "ResetInputNormalization": (_logical, True, _ALL),
    "BatchNormalizationStatistics": (_choice("population", "moving", "auto"),
                                     lambda s: "auto" if _era() == "E4" else "population",
                                     _ALL),
    "OutputNetwork": (_choice("last-iteration", "best-validation-loss", "best-validation",
                              "auto"),
                      lambda s: "auto" if _era() == "E4" else "last-iteration", _ALL),
    "Acceleration": (_choice("auto", "none"), "auto", _ALL),
}

_SOLVER_HEAD = {"sgdm": ("Momentum",),
                "adam": ("GradientDecayFactor", "SquaredGradientDecayFactor", "Epsilon"),
                "rmsprop": ("SquaredGradientDecayFactor", "Epsilon")}

#: E3 display order (documented R2021b-R2022b transcript), after the solver's own lines
_E3_ORDER = ("InitialLearnRate", "LearnRateSchedule", "LearnRateDropFactor",
             "LearnRateDropPeriod", "L2Regularization", "GradientThresholdMethod",
             "GradientThreshold", "MaxEpochs", "MiniBatchSize", "Verbose", "VerboseFrequency",
             "ValidationData", "ValidationFrequency", "ValidationPatience", "Shuffle",
             "CheckpointPath", "CheckpointFrequency", "CheckpointFrequencyUnit",
             "ExecutionEnvironment", "WorkerLoad", "OutputFcn", "Plots", "SequenceLength",
             "SequencePaddingValue", "SequencePaddingDirection", "DispatchInBackground",
             "ResetInputNormalization", "BatchNormalizationStatistics", "OutputNetwork")

#: E4 display order (documented, trainingoptions reference page)
_E4_ORDER = ("InitialLearnRate", "MaxEpochs", "LearnRateSchedule", "LearnRateDropFactor",
             "LearnRateDropPeriod", "MiniBatchSize", "Shuffle", "CheckpointFrequency",
             "CheckpointFrequencyUnit", "SequenceLength", "PreprocessingEnvironment",
             "L2Regularization", "GradientThresholdMethod", "GradientThreshold", "Verbose",
             "VerboseFrequency", "ValidationData", "ValidationFrequency",
             "ValidationPatience", "ObjectiveMetricName", "CheckpointPath",
             "ExecutionEnvironment", "OutputFcn", "Metrics", "Plots", "SequencePaddingValue",
             "SequencePaddingDirection", "InputDataFormats", "TargetDataFormats",
             "ResetInputNormalization", "BatchNormalizationStatistics", "OutputNetwork",
             "Acceleration")

_CLASS = {"sgdm": "TrainingOptionsSGDM", "adam": "TrainingOptionsADAM",
          "rmsprop": "TrainingOptionsRMSProp"}


def _era():
    return _defaults.get("training_era")


def _names(solver):
    return [n for n, (_, _, solvers) in _OPTIONS.items() if solver in solvers]


class _TrainingOptions:
    """Training options (MATLAB's ``TrainingOptions<SOLVER>`` object)."""

    _solver = None

    def __init__(self, values):
        object.__setattr__(self, "_values", values)

    @property
    def SolverName(self):
        return self._solver

    def __getattr__(self, name):
        values = self.__dict__.get("_values")
        if values is not None and name in values:
            return values[name]
        raise AttributeError(f"{type(self).__name__}: unrecognized property '{name}'")

    def __setattr__(self, name, value):
        if name.startswith("_"):
            object.__setattr__(self, name, value)
            return
        try:
            canon = match_name(_FNAME, name, _names(self._solver))
        except TypeError:
            raise AttributeError(f"{type(self).__name__}: '{name}' is not an option for "
                                 f"solver '{self._solver}'.") from None
        self._values[canon] = _OPTIONS[canon][0](canon, value)

    def __dir__(self):
        return list(super().__dir__()) + list(self._values)

    def __eq__(self, other):
        return type(self) is type(other) and self._values.keys() == other._values.keys() \
            and all(_same(self._values[k], other._values[k]) for k in self._values)

    __hash__ = None

    def _display_names(self):
        order = _E4_ORDER if _era() == "E4" else _E3_ORDER
        head = list(_SOLVER_HEAD[self._solver])
        if _era() == "E4" and self._solver == "sgdm":
            return head + list(order)
        return head + list(order)

    def _display_value(self, name):
        v = self._values[name]
        if name == "ValidationData" and v is not None:
            if isinstance(v, tuple):
                return _Raw("{1" + _display.times() + "2 cell}")
            return _Raw(f"[1{_display.times()}1 {type(v).__name__}]")
        if name in ("OutputFcn", "Metrics") and v is not None:
            if isinstance(v, list):
                return _Raw("{1" + _display.times() + f"{len(v)} cell}}")
            if isinstance(v, str):
                return v
            return _Raw("@" + getattr(v, "__name__", "fcn"))
        if name in ("InputDataFormats", "TargetDataFormats", "Acceleration"):
            if isinstance(v, list):
                return _Raw("[" + " ".join(f'"{e}"' for e in v) + "]")
            return _Raw(f'"{v}"')
        return v

    def __repr__(self):
        rows = [(n, self._display_value(n)) for n in self._display_names()]
        return _display.layer_text(type(self).__name__, [(None, rows)], footer=False)

    __str__ = __repr__

    def display(self, name="options"):
        print(_display.named(name, repr(self)), end="")


def _same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    try:
        return bool(a == b)
    except Exception:      # noqa: BLE001  (arrays)
        return a is b


class TrainingOptionsSGDM(_TrainingOptions):
    """Options for stochastic gradient descent with momentum (``trainingOptions("sgdm")``)."""
    _solver = "sgdm"


class TrainingOptionsADAM(_TrainingOptions):
    """Options for Adam (``trainingOptions("adam")``)."""
    _solver = "adam"


class TrainingOptionsRMSProp(_TrainingOptions):
    """Options for RMSProp (``trainingOptions("rmsprop")``)."""
    _solver = "rmsprop"


_BY_SOLVER = {"sgdm": TrainingOptionsSGDM, "adam": TrainingOptionsADAM,
              "rmsprop": TrainingOptionsRMSProp}


def trainingOptions(solverName, *args, **kwargs):
    """Options for training a neural network (MATLAB ``trainingOptions``).

    Parameters
    ----------
    solverName : {"sgdm", "adam", "rmsprop"}
    **options
        Any MATLAB option that applies to the solver (``'Name', value`` pairs or
        ``Name=value`` keywords, case-insensitive, unique prefixes accepted):
        InitialLearnRate (sgdm 0.01, else 0.001), Momentum (0.9, sgdm),
        GradientDecayFactor (0.9, adam), SquaredGradientDecayFactor (adam 0.999,
        rmsprop 0.9), Epsilon (1e-8), MaxEpochs (30), MiniBatchSize (128),
        Shuffle ('once' | 'never' | 'every-epoch'), LearnRateSchedule ('none' |
        'piecewise'), LearnRateDropFactor (0.1), LearnRateDropPeriod (10),
        L2Regularization (1e-4), GradientThresholdMethod ('l2norm' | 'global-l2norm' |
        'absolute-value'), GradientThreshold (Inf), Verbose (true), VerboseFrequency (50),
        ValidationData ((X, Y)), ValidationFrequency (50), ValidationPatience (Inf),
        OutputFcn (function(s) of the info dict; returning True stops), Plots ('none' |
        'training-progress'), CheckpointPath, CheckpointFrequency,
        CheckpointFrequencyUnit, ExecutionEnvironment ('auto' | 'cpu'),
        SequenceLength, SequencePaddingValue, SequencePaddingDirection,
        ResetInputNormalization, BatchNormalizationStatistics ('population' | 'moving' |
        'auto'), OutputNetwork ('last-iteration' | 'best-validation-loss' | 'auto'),
        Metrics, ObjectiveMetricName, InputDataFormats, TargetDataFormats,
        PreprocessingEnvironment, Acceleration, WorkerLoad, DispatchInBackground.

    Returns
    -------
    TrainingOptionsSGDM, TrainingOptionsADAM or TrainingOptionsRMSProp

    Examples
    --------
    MATLAB::

        options = trainingOptions('sgdm', InitialLearnRate=0.01, MaxEpochs=4, ...
                                  Shuffle='every-epoch', Verbose=false);

    Python::

        options = ml.trainingOptions("sgdm", InitialLearnRate=0.01, MaxEpochs=4,
                                     Shuffle="every-epoch", Verbose=False)
    """
    solver = validatestring(solverName, _ALL, _FNAME, "solverName")
    valid = _names(solver)
    pairs = list(args)
    if len(pairs) % 2:
        raise TypeError(f"{_FNAME}: name '{pairs[-1]}' has no value; name-value arguments "
                        f"must come in pairs")
    given = {}
    items = [(pairs[i], pairs[i + 1]) for i in range(0, len(pairs), 2)] + list(kwargs.items())
    for name, value in items:
        try:
            canon = match_name(_FNAME, name, valid)
        except TypeError as exc:
            if "ambiguous" in str(exc):
                raise
            raise TypeError(f"{_FNAME}: '{name}' is not an option for solver "
                            f"'{solver}'.") from None
        given[canon] = value
    values = {}
    for name in valid:
        conv, default, _ = _OPTIONS[name]
        if name in given:
            values[name] = conv(name, given[name])
        else:
            values[name] = default(solver) if callable(default) else default
    return _BY_SOLVER[solver](values)
