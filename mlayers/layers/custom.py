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
import copy
import keyword
import numbers

import numpy as np

from .._cache import LRUCache
from .._props import Layer, Prop, shallow_copy
from .._validate import Where, positive_int, text
from ..dlarray import dlarray, networkDataLayout
from .reshape import _mathfun, layer_output

__all__ = ["CustomLayer", "CustomClassificationLayer", "CustomRegressionLayer"]

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
    Prop("NumInputs", 1, positive_int, set=_set_count("Input"), doc="number of inputs"),
    Prop("InputNames", ["in"], _names, set=_set_names("Input"), doc="input names"),
    Prop("NumOutputs", 1, positive_int, set=_set_count("Output"), doc="number of outputs"),
    Prop("OutputNames", ["out"], _names, set=_set_names("Output"), doc="output names"),
)


def _user_call(who, method, *args):
    """A user's layer method: its ValueError and TypeError as they are; anything else
    as a ValueError naming the method and layer (the network adds which layer it is)."""
    try:
        return method(*args)
    except (ValueError, TypeError, NotImplementedError):
        raise
    except Exception as exc:
        raise ValueError(f"{who} raised {type(exc).__name__}: {exc}") from exc


def _declared(cls, kind):
    """The names a class declares as ``Learnable`` or ``State`` after its parents' (a
    bare string is one name), checked: identifiers, not private, each once."""
    own = cls.__dict__.get(kind, ())
    own = (own,) if isinstance(own, str) else own
    if not isinstance(own, (tuple, list)):
        raise TypeError(f"{cls.__name__}: {kind} must be a tuple of property names, got "
                        f"{type(own).__name__}")
    before = [n for b in cls.__mro__[1:] if issubclass(b, CustomLayer)
              for n in getattr(b, "_learnables" if kind == "Learnable"
                               else "_state_parameters", ())]
    names = list(dict.fromkeys(before))
    for n in own:
        if not isinstance(n, str) or not n.isidentifier() or keyword.iskeyword(n) \
                or n.startswith("_"):
            raise TypeError(f"{cls.__name__}: {kind} names must be public identifiers, "
                            f"got {n!r}")
        if n in names and n not in before:
            raise TypeError(f"{cls.__name__}: {kind} names {n!r} twice")
        if n not in names:
            names.append(n)
    return names


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

    _learnables = ()
    _state_parameters = ()
    _extra_props = ()          # (the output layers' Classes)

    def __init_subclass__(cls, **kwargs):
        parents = [b for b in cls.__bases__ if issubclass(b, CustomLayer)]
        inherited = {p.name: p for b in parents for p in b._props if p.name not in
                     {q.name for q in _GENERAL + cls._extra_props}}
        learn = _declared(cls, "Learnable")
        state = _declared(cls, "State")
        names = [p.name for p in _GENERAL + cls._extra_props]
        for n in learn + state:
            if n in names or n in dir(CustomLayer) or callable(getattr(cls, n, None)):
                raise TypeError(f"{cls.__name__}: Learnable and State must name new "
                                f"properties, got {n!r}, a layer property or method")
            names.append(n)
        if "backward" in cls.__dict__:
            raise TypeError(f"{cls.__name__}: custom backward functions are not supported: "
                            f"the gradient comes from predict/forward written with dlarray "
                            f"operations (MATLAB's rule when a layer has no backward)")
        props = []
        for n in learn + state:
            if n in inherited and n not in cls.__dict__:
                props.append(inherited[n])
            else:
                # (MATLAB's "properties (Learnable) Alpha = 0.25": a class-body value is
                # the property's default)
                default = cls.__dict__.get(n)
                props.append(Prop(n, _parameter(default, Where(cls.__name__, n)), _parameter))
        cls._props = _GENERAL + cls._extra_props + tuple(props)
        cls._learnables, cls._state_parameters = tuple(learn), tuple(state)
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

    def _value_copy(self, fname):
        """The copy the user's methods run on (MATLAB passes its methods the layer's
        value): assignments to it stay there; the parameters are dlarrays, as MATLAB's
        network layers hold them (the traced ones inside dlfeval)."""
        c = shallow_copy(self)
        values = dict(self._values)
        object.__setattr__(c, "_values", values)
        for n in self._learnables + self._state_parameters:
            v = values[n]
            if v is None:
                kind = "learnable" if n in self._learnables else "state"
                raise ValueError(f"{fname}: the {kind} parameter {n} of {self._label()} is "
                                 f"empty: set it, or fill it in the layer's initialize")
            if not isinstance(v, dlarray):
                values[n] = dlarray._from_canonical(v, "")
        return c

    def _call(self, name, inputs, fname):
        """Run the user's method ``name`` (predict or forward) on formatted inputs:
        (outputs, state)."""
        formattable = isinstance(self, Formattable)
        fmt = inputs[0].dims if inputs else ""
        # (unformatted copies that stay on the trace: the gradient flows through them)
        xs = inputs if formattable else [
            _mathfun().stripdims_op(x, "") if x.dims else x for x in inputs]
        who = f"{name} of {self._label()}"
        out = _user_call(who, getattr(self._value_copy(fname), name), *xs)
        n, names = self._values["NumOutputs"], self._state_parameters
        several = n + len(names) > 1
        outs = list(out) if isinstance(out, tuple) or (several and isinstance(out, list)) \
            else [out]
        if len(outs) != n + len(names):
            raise ValueError(f"{fname}: {who} must return {n} output(s)"
                             + (f" and the {len(names)} state value(s) ({', '.join(names)})"
                                if names else "")
                             + f"{', a tuple' if several else ''}, got {len(outs)}")
        ys = [layer_output(who, y, fmt, formattable, fname, inputs) for y in outs[:n]]
        state = None
        if names:
            state = {}
            for p, v in zip(names, outs[n:]):
                if not isinstance(v, dlarray) and np.asarray(v).dtype.kind not in "biuf":
                    raise TypeError(f"{fname}: {who} must return numeric new values of its "
                                    f"state parameters, got {type(v).__name__} for {p}")
                state[p] = v
        return ys, state

    def _run(self, inputs, training, fname):
        n = self._values["NumInputs"]
        if len(inputs) != n:
            raise ValueError(f"{fname}: {self._label()} has {n} input(s), got {len(inputs)}")
        name = "forward" if training and hasattr(self, "forward") else "predict"
        return self._call(name, inputs, fname)

    def _forward(self, X, fname):
        # (MATLAB's [Y1, Y2] = predict(layer, X) of a one-input layer: a tuple)
        if self._values["NumInputs"] != 1:
            raise ValueError(f"{fname}: {self._label()} has {self._values['NumInputs']} "
                             f"inputs; run it in a network")
        ys = self._run([X], False, fname)[0]
        return ys[0] if len(ys) == 1 else tuple(ys)

    def _reset_state(self):
        """resetState(net): the layer's own resetState, when the class defines one."""
        if hasattr(self, "resetState"):
            self._adopt(self.resetState(), "resetState")

    def _adopt(self, out, name):
        # (MATLAB's style, layer = f(layer, ...), returns the new layer; changing self in
        # place and returning it or nothing works too)
        if out is None or out is self:
            return
        if not isinstance(out, type(self)):
            raise TypeError(f"{name} of {self._label()} must return the layer (or None), "
                            f"got {type(out).__name__}")
        self.__dict__.update({k: v for k, v in out.__dict__.items() if k != "_memo"})
        object.__setattr__(self, "_values", dict(out._values))

    def _copy_own(self, c):
        """graph.clone's copy: the class's own properties are values too (a list changed
        in place in one copy must not change the others)."""
        for k, v in self.__dict__.items():
            if not k.startswith("_"):
                object.__setattr__(c, k, copy.deepcopy(v))

    # ------------------------------------------------------------- initialization

    def initialize(self, *layouts):
        """The learnables' first values from the inputs' layouts (override it)."""
        return self

    def _initialize_specs(self, specs, fname):
        """The network's initialization: ``initialize`` with one networkDataLayout per
        input (MATLAB's sizes; the batch and time sizes, not known, NaN)."""
        if type(self).initialize is not CustomLayer.initialize:
            layouts = [networkDataLayout([np.nan if d in "BT" else s
                                          for d, s in zip(dims, shape)], dims)
                       for dims, shape in specs]
            self._adopt(self.initialize(*layouts), "initialize")
        self._memo.clear()


# --------------------------------------------------------------------------- output layers

def _classes(value, where):
    if isinstance(value, str) and value.lower() == "auto":
        return "auto"
    names = [str(c) for c in (value.categories() if hasattr(value, "categories")
                              else np.ravel(np.asarray(value, dtype=object)))]
    if not names or len(set(names)) != len(names):
        raise ValueError(f"{where.fname}: {where.name} must be 'auto' or distinct class "
                         f"names, got {value!r}")
    return names


class _CustomOutputLayer(CustomLayer):
    """MATLAB's custom output layers for trainNetwork: ``loss = forwardLoss(layer, Y, T)``
    on the predictions and targets in the layout MATLAB documents for them (images
    1-by-1-by-K-by-N, sequences K-by-N-by-S, features K-by-N), unformatted dlarrays."""

    _is_output_layer = True
    _output_kind = None
    #: spatial dimensions of the network's input (images: 2, volumes: 3), set by
    #: trainNetwork: a fully connected output of images is 1 x 1 x K x N there
    _input_spatial = 0

    def predict(self, X):
        return X            # (an output layer hands the predictions on in predict)

    def forwardLoss(self, Y, T):
        raise NotImplementedError(f"{type(self).__name__}: a custom output layer must "
                                  f"define forwardLoss(self, Y, T)")

    def _loss(self, Y, T):
        from .. import functional as F
        data = _mathfun().stripdims_op(Y, "") if Y.dims else Y
        lead = (1,) * self._input_spatial if Y.dims == "CB" else ()
        shape = lead + tuple(data.shape)
        Yc = F.reshape(data, *shape) if lead else data
        Tc = np.reshape(np.asarray(T), shape, order="F")
        who = f"forwardLoss of {self._label()}"
        loss = _user_call(who, self._value_copy("trainNetwork").forwardLoss, Yc, Tc)
        if not isinstance(loss, dlarray) or loss.data.size != 1:
            got = (f"size {'x'.join(map(str, loss.shape))}" if isinstance(loss, dlarray)
                   else type(loss).__name__)
            raise TypeError(f"trainNetwork: {who} must return a scalar dlarray computed "
                            f"from Y (dlarray operations), got {got}")
        return F.sum(loss, "all")       # (its one value, whatever its singleton dimensions)


class CustomClassificationLayer(_CustomOutputLayer):
    """MATLAB's ``nnet.layer.ClassificationLayer`` (``ml.nnet.layer.ClassificationLayer``):
    a custom classification output layer with ``forwardLoss``; ``Classes`` as the built-in
    layer's ('auto': from the training labels)."""

    _output_kind = "classification"
    _extra_props = (Prop("Classes", "auto", _classes, doc="class names ('auto': from the "
                                                            "training labels)"),)


class CustomRegressionLayer(_CustomOutputLayer):
    """MATLAB's ``nnet.layer.RegressionLayer`` (``ml.nnet.layer.RegressionLayer``): a
    custom regression output layer with ``forwardLoss``."""

    _output_kind = "regression"
