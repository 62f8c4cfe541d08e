"""User-defined layers: MATLAB's custom layers (``classdef myLayer < nnet.layer.Layer``).

A MATLAB custom layer is a class with its own properties, ``properties (Learnable)`` and
``properties (State)`` blocks, a ``predict`` method (and optionally ``forward`` for
training and ``initialize`` for the learnables' first values).  The Python port is a
subclass of :class:`CustomLayer` (``ml.nnet.layer.Layer``) that names its learnable and
state parameters in the class attributes ``Learnable`` and ``State`` and writes the same
methods with the package's differentiable operations (docs/layers/customLayer.md has a
MATLAB class and its port side by side).

The network treats such a layer like its own: its learnables and state are rows of
``net.Learnables`` / ``net.State``, ``dlfeval`` hands ``predict``/``forward`` traced
values through the same attributes, the solvers update them, and the layer displays in
MATLAB's custom-layer family (MATLAB_SEMANTICS §14.1).
"""
import numpy as np

from .._cache import LRUCache
from .._props import Layer, Prop
from .._validate import text
from ..dlarray import dlarray, networkDataLayout
from .reshape import _mathfun, layer_output

__all__ = ["CustomLayer"]

_LEARN = "Learnable Parameters"
_STATE = "State Parameters"


class Formattable:
    """MATLAB's ``nnet.layer.Formattable``: the layer's methods receive and return
    formatted dlarrays (without it they receive unformatted data in the inputs' order and
    the outputs take the first input's format)."""


class Acceleratable:
    """MATLAB's ``nnet.layer.Acceleratable`` (stored for compatibility: nothing to
    accelerate here)."""


def _ports(count, prefix, where):
    return [prefix] if count == 1 else [f"{prefix}{k}" for k in range(1, count + 1)]


def _count(value, where):
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)) \
            or value < 1:
        raise ValueError(f"{where.fname}: {where.name} must be a positive integer, got "
                         f"{value!r}")
    return int(value)


def _names(value, where):
    names = [value] if isinstance(value, str) else list(value)
    if not names or not all(isinstance(n, str) and n for n in names) \
            or len(set(names)) != len(names):
        raise ValueError(f"{where.fname}: {where.name} must be distinct nonempty names, got "
                         f"{value!r}")
    return names


def _set_count(kind):
    # NumInputs = 3 names the ports in1, in2, in3 (MATLAB's rule), InputNames sets both
    def set_(layer, value, where):
        layer._values[f"Num{kind}s"] = value
        layer._values[f"{kind}Names"] = _ports(value, "in" if kind == "Input" else "out",
                                               where)
    return set_


def _set_names(kind):
    def set_(layer, value, where):
        layer._values[f"{kind}Names"] = value
        layer._values[f"Num{kind}s"] = len(value)
    return set_


def _parameter(value, where):
    """A learnable or state value: empty (None, [] or an empty array) or real numbers
    (a dlarray is kept as it is, as MATLAB custom layers may hold dlarrays)."""
    if value is None or (isinstance(value, (list, tuple)) and len(value) == 0):
        return None
    if isinstance(value, dlarray):
        return value
    a = np.asarray(value)
    if a.dtype.kind in "iub":
        a = a.astype(np.float64)
    elif a.dtype not in (np.float32, np.float64):
        raise TypeError(f"{where.fname}: {where.name} must be a numeric array, got "
                        f"{type(value).__name__}" + (f" of dtype {a.dtype}" if a.dtype.kind
                                                     in "OUSc" else ""))
    return None if a.size == 0 else a


def _or_class_name(prop):
    # MATLAB shows the class name where Description or Type was never set
    def get(layer):
        v = layer._values[prop]
        return type(layer).__name__ if v is None else v

    def set_(layer, value, where):
        layer._values[prop] = value
    return {"get": get, "set": set_}


_GENERAL = (
    Prop("Name", "", text, doc="layer name"),
    Prop("Description", None, text, **_or_class_name("Description"),
         doc="one-line description (default: the class name)"),
    Prop("Type", None, text, **_or_class_name("Type"),
         doc="layer type (default: the class name)"),
    Prop("NumInputs", 1, _count, set=_set_count("Input"), doc="number of inputs"),
    Prop("InputNames", ["in"], _names, set=_set_names("Input"), doc="input names"),
    Prop("NumOutputs", 1, _count, set=_set_count("Output"), doc="number of outputs"),
    Prop("OutputNames", ["out"], _names, set=_set_names("Output"), doc="output names"),
)


class CustomLayer(Layer):
    """Base class of user-defined layers, MATLAB's ``nnet.layer.Layer`` (also
    ``ml.nnet.layer.Layer``); see the module docstring and docs/layers/customLayer.md.

    Class attributes: ``Learnable`` and ``State`` (names of the learnable and state
    parameters, MATLAB's ``properties (Learnable)`` / ``(State)``).  Methods to write:
    ``predict(self, X1, ..., Xn)`` returning the outputs (a tuple for several; with state
    parameters, their new values follow the outputs), optionally ``forward`` (training,
    same returns) and ``initialize(self, layout1, ..., layoutn)`` (networkDataLayout of
    each input; fill empty learnables, return the layer).  Any other attribute is a
    plain property of the layer.
    """

    _family = "B"
    _props = _GENERAL
    Learnable = ()
    State = ()

    def __init_subclass__(cls, **kwargs):
        learn, state = tuple(cls.Learnable), tuple(cls.State)
        clash = set(learn) & ({p.name for p in _GENERAL} | set(state))
        if clash:
            raise TypeError(f"{cls.__name__}: Learnable and State must name new "
                            f"properties, got {', '.join(sorted(clash))} twice or as a "
                            f"layer property")
        cls._props = _GENERAL + tuple(Prop(n, None, _parameter) for n in learn + state)
        cls._learnables = learn
        cls._state_parameters = state
        super().__init_subclass__(**kwargs)

    def __new__(cls, *args, **kwargs):
        # (the base's storage before the subclass's __init__ runs, which need not call
        # the base's: MATLAB constructors only assign properties)
        self = super().__new__(cls)
        for name, value in (("_values", {}), ("_state", {}), ("_memo", LRUCache())):
            object.__setattr__(self, name, value)
        for p in cls._props:
            self._values[p.name] = list(p.default) if isinstance(p.default, list) \
                else p.default
        return self

    def __init__(self, *args, **kwargs):
        """Name=..., Description=..., Type=... may be given here by subclasses calling
        ``super().__init__(Name=name)``."""
        for name, value in kwargs.items():
            setattr(self, name, value)
        if args:
            raise TypeError(f"{type(self).__name__}: the base constructor takes "
                            f"name-value properties only, got {len(args)} positional")

    def __setattr__(self, name, value):
        # declared properties are validated; anything else is the layer's own property
        if name.startswith("_") or name not in type(self)._by_name:
            object.__setattr__(self, name, value)
            return
        self._assign(type(self)._by_name[name], value, type(self).__name__,
                     constructing=False)

    # ------------------------------------------------------------- display

    def _own_properties(self):
        return [n for n in self.__dict__ if not n.startswith("_")]

    @classmethod
    def _property_names(cls):
        return [p.name for p in cls._props]

    def _display_rows(self):
        own = [(n, getattr(self, n)) for n in ("Name", *self._own_properties())]
        return [(None, own),
                (_LEARN, [(n, self._values[n]) for n in self._learnables]),
                (_STATE, [(n, self._values[n]) for n in self._state_parameters])]

    def _all_properties_text(self):
        from .. import _display
        rows = ([(p.name, getattr(self, p.name)) for p in _GENERAL]
                + [(n, getattr(self, n)) for n in self._own_properties()]
                + [(n, self._values[n]) for n in self._learnables + self._state_parameters])
        return _display.layer_text(type(self).__name__, [(None, rows)], footer=False)

    def _layer_array_row(self):
        return (self.Name, self.Type, self.Description)

    def _description(self):
        return self.Description

    # ------------------------------------------------------------- running

    def predict(self, *X):
        raise NotImplementedError(f"{type(self).__name__}: a custom layer must define "
                                  f"predict(self, X1, ..., Xn)")

    def _call(self, method, inputs, fname):
        """Run ``method`` (predict or forward) on formatted inputs: (outputs, state)."""
        formattable = isinstance(self, Formattable)
        fmt = inputs[0].dims if inputs else ""
        # (unformatted copies that stay on the trace: the gradient flows through them)
        xs = inputs if formattable else [
            _mathfun().stripdims_op(x, "") if x.dims else x for x in inputs]
        out = method(*xs)
        n, names = self._values["NumOutputs"], self._state_parameters
        outs = list(out) if isinstance(out, tuple) else [out]
        if len(outs) != n + len(names):
            raise ValueError(f"{fname}: {method.__name__} of {self._label()} must return "
                             f"{n} output(s)" + (f" and the {len(names)} state value(s) "
                                                 f"({', '.join(names)})" if names else "")
                             + f", got {len(outs)}")
        who = f"{method.__name__} of {self._label()}"
        ys = [layer_output(who, y, fmt, formattable, fname) for y in outs[:n]]
        state = {p: v for p, v in zip(names, outs[n:])} if names else None
        return ys, state

    def _run(self, inputs, training, fname):
        n = self._values["NumInputs"]
        if len(inputs) != n:
            raise ValueError(f"{fname}: {self._label()} has {n} inputs, got {len(inputs)}")
        forward = getattr(self, "forward", None) if training else None
        return self._call(forward or self.predict, inputs, fname)

    def _forward(self, X, fname):
        if self._values["NumInputs"] != 1 or self._values["NumOutputs"] != 1:
            raise ValueError(f"{fname}: {self._label()} has {self._values['NumInputs']} "
                             f"inputs and {self._values['NumOutputs']} outputs; run it in a "
                             f"network")
        return self._run([X], False, fname)[0][0]

    # ------------------------------------------------------------- initialization

    def initialize(self, *layouts):
        """The learnables' first values from the inputs' layouts (override it)."""
        return self

    def _initialize_specs(self, specs, fname):
        """The network's initialization: ``initialize`` with one networkDataLayout per
        input (MATLAB's sizes, the batch size NaN)."""
        if type(self).initialize is CustomLayer.initialize:
            return
        layouts = [networkDataLayout([np.nan if d == "B" else s for d, s in zip(dims, shape)],
                                     dims) for dims, shape in specs]
        out = self.initialize(*layouts)
        if isinstance(out, CustomLayer) and out is not self:
            # (MATLAB's style: layer = initialize(layer, layout) returns the new layer)
            self.__dict__.update({k: v for k, v in out.__dict__.items() if k != "_memo"})
            object.__setattr__(self, "_values", dict(out._values))
        self._memo.clear()
