"""Shape layers: flattenLayer, crop2dLayer, scalingLayer and functionLayer (MATLAB classes
FlattenLayer, Crop2DLayer, ScalingLayer, FunctionLayer).

Every forward is a few differentiable operations (MATLAB_SEMANTICS §14.2):

* ``flattenLayer``: the S and C dimensions merge into C, column-major (SSCB: channel
  ``h + H(w-1) + HW(c-1)``), ``S*C[B][T]`` -> ``CB``/``CBT``; inputs without S pass
  unchanged (from MathWorks codegen source).  ``reshape`` + ``relabel``.
* ``crop2dLayer``: two inputs ``in`` and ``ref``; ``X(R:R+H-1, C:C+W-1, :, :)`` with
  ``[H W]`` the spatial size of ``ref``, ``[C R] = Location``, or the centred window for
  ``'centercrop'``: ``floor(size(X,1:2)/2 + 1) - floor([H W]/2 + 1) + 1`` (from
  MathWorks source).  Indexing (``subsref``).
* ``scalingLayer``: ``Scale .* X + Offset`` with MATLAB's implicit expansion (Scale and
  Offset align with X's dimensions from the first, as MATLAB's arrays do).
* ``functionLayer``: ``[Y1,...,YM] = PredictFcn(X1,...,XN)`` with a Python callable.
"""

__all__ = ["FlattenLayer", "Crop2DLayer", "ScalingLayer", "FunctionLayer",
           "flattenLayer", "crop2dLayer", "scalingLayer", "functionLayer"]
import math

import numpy as np

from .. import _validate as V
from .._display import format_size, format_value
from .._options import validatestring
from .._props import REQUIRED, Layer, Prop, general_props, make_constructor
from ..dlarray import dlarray

HYPER = "Hyperparameters"
LEARN = "Learnable Parameters"
STATE = "State Parameters"


def _mathfun():
    from ..functional import mathfun
    return mathfun


# --------------------------------------------------------------------------- flatten

class FlattenLayer(Layer):
    """Flatten layer (MATLAB ``FlattenLayer``): S and C dimensions into C."""

    _constructor = "flattenLayer"
    _summary = ("Flatten layer: merges the spatial and channel dimensions into the channel "
                "dimension (column-major), keeping B and T.")
    _props = general_props()
    _display = ((None, ("Name",)),)
    _type_name = ("Flatten", "Flatten")
    _default_name = "flatten"
    _example = "flattenLayer(Name='flatten1')"
    _example_input = ("SSCB", (3, 4, 2, 5))

    def _description(self):
        return "Flatten"

    @staticmethod
    def _split(dims, shape):
        """(number of leading S and C dims, their product, the rest's labels and sizes)."""
        k = sum(1 for d in dims if d in "SC")
        return k, math.prod(shape[:k]), dims[k:], tuple(shape[k:])

    def _output_shape(self, dims, shape, fname):
        self._check_format(_Spec(dims, shape), fname)
        if "S" not in dims:
            return dims, shape
        _, n, rest, rest_shape = self._split(dims, shape)
        return "C" + rest, (n,) + rest_shape

    def _check_format(self, X, fname):
        if "S" in X.dims and "C" not in X.dims:
            raise ValueError(f"{fname}: the input format of {self._label()} must have a "
                             f"channel dimension 'C', got '{X.dims}'")

    def _forward(self, X, fname):
        if "S" not in X.dims:
            return X
        m = _mathfun()
        dims, shape = self._output_shape(X.dims, X.shape, fname)
        return m.relabel(m.reshape(X, *(shape + (1,) * (2 - len(shape)))), dims)


# --------------------------------------------------------------------------- crop2d

def _location(value, where):
    """'centercrop' or a 1×2 vector [X Y] of positive integers."""
    if isinstance(value, (str, np.str_)):
        return validatestring(value, ("centercrop",), where.fname, where.name)
    constraint = "'centercrop' or a 1×2 vector [X Y] of positive integers"
    a = V.real_array(value, where, constraint)
    if a.size != 2:
        raise where.error(constraint, value)
    v = V.integers(a.reshape(-1), where, constraint, value, 1)
    v.flags.writeable = False
    return v


def _crop_mode(layer):
    return "centercrop" if isinstance(layer._values["Location"], str) else "custom"


def _crop_location(layer):
    loc = layer._values["Location"]
    return "auto" if isinstance(loc, str) else loc


class Crop2DLayer(Layer):
    """2-D crop layer (MATLAB ``Crop2DLayer``): crops input ``in`` to the spatial size of
    input ``ref``."""

    _constructor = "crop2dLayer"
    _summary = ("2-D crop layer: crops the first input (in) to the height and width of the "
                "second (ref), at Location [X Y] or centred ('centercrop').")
    _positional = ("Location",)
    _props = (
        Prop("Mode", None, get=_crop_mode, option=False,
             doc="'custom' or 'centercrop'"),
        Prop("Location", REQUIRED, _location, readonly=True, get=_crop_location,
             doc="[X Y] upper-left corner (column, row), or 'centercrop' ('auto' shown)"),
        *general_props(input_names=("in", "ref")),
    )
    _display = ((None, ("Name",)), (HYPER, ("Mode", "Location")))
    _type_name = ("Crop 2D", "Crop 2D")
    _default_name = "crop"
    _example = "crop2dLayer([1, 33], Name='crop1')"
    _example_input = None
    _formats = ("SSCB", "SSC")

    def _description(self):
        loc = self._values["Location"]
        if isinstance(loc, str):
            return "center crop"
        return f"upper-left corner of cropping rectangle at [{loc[0]} {loc[1]}]"

    def _window(self, xshape, rshape, fname):
        """0-based (row start, column start, H, W) of the crop."""
        h, w = int(rshape[0]), int(rshape[1])
        loc = self._values["Location"]
        if isinstance(loc, str):
            r = math.floor(xshape[0] / 2 + 1) - math.floor(h / 2 + 1) + 1
            c = math.floor(xshape[1] / 2 + 1) - math.floor(w / 2 + 1) + 1
        else:
            c, r = int(loc[0]), int(loc[1])
        if r < 1 or c < 1 or r + h - 1 > xshape[0] or c + w - 1 > xshape[1]:
            raise ValueError(f"{fname}: the cropping window of {self._label()} (rows {r} to "
                             f"{r + h - 1}, columns {c} to {c + w - 1}) must lie inside "
                             f"the input of size {format_size(xshape[:2])}")
        return r - 1, c - 1, h, w

    def _output_shapes(self, specs, fname):
        if len(specs) != 2:
            raise ValueError(f"{fname}: {self._label()} has 2 inputs (in, ref), got "
                             f"{len(specs)}")
        (dx, sx), (dr, sr) = specs
        for name, d in (("in", dx), ("ref", dr)):
            if d not in self._formats:
                raise ValueError(f"{fname}: the format of input '{name}' of {self._label()} "
                                 f"must be one of 'SSCB', 'SSC', got '{d}'")
        _, _, h, w = self._window(tuple(sx), tuple(sr), fname)
        return [(dx, (h, w) + tuple(sx[2:]))]

    def _run(self, inputs, training, fname):
        X, R = inputs
        self._output_shapes([(X.dims, X.shape), (R.dims, R.shape)], fname)
        r, c, h, w = self._window(X.shape, R.shape, fname)
        return [_mathfun().subsref(X, (slice(r, r + h), slice(c, c + w), Ellipsis))], None

    def _forward(self, X, fname):
        raise ValueError(f"{fname}: {self._label()} has 2 inputs (in, ref); run it in a "
                         f"network")


# --------------------------------------------------------------------------- scaling

def _numeric(value, where):
    constraint = "a real numeric array"
    a = V.real_array(value, where, constraint)
    if a.dtype.kind not in "fiu" or not np.all(np.isfinite(a)):
        raise where.error("a finite real numeric array", value)
    return a.astype(np.float64) if a.dtype.kind in "iu" else a


class ScalingLayer(Layer):
    """Scaling layer (MATLAB ``ScalingLayer``): Scale .* X + Offset."""

    _constructor = "scalingLayer"
    _summary = "Scaling layer: Scale .* X + Offset with implicit expansion."
    _props = (
        Prop("Scale", 1.0, _numeric, doc="multiplier (scalar or array compatible with X)"),
        Prop("Offset", 0.0, _numeric, doc="addend (scalar or array compatible with X)"),
        *general_props(),
    )
    _display = ((None, ("Name", "Scale", "Offset")), (LEARN, ()), (STATE, ()))
    _family = "B"
    _type_name = ("Scaling", "Scaling")
    _default_name = "scaling"
    _example = "scalingLayer(Scale=2, Offset=0.5, Name='scale1')"
    _example_input = ("SSCB", (4, 5, 3, 2))

    def _description(self):
        return "Scaling"

    @staticmethod
    def _expanded(a, X, fname, name):
        """``a`` shaped for numpy broadcasting against X's data the MATLAB way (aligned
        from the first dimension), in single when X is single (MATLAB's class rule)."""
        a = np.asarray(a)
        nd = max(X.ndim, 1)
        if a.ndim > nd and any(s != 1 for s in a.shape[nd:]):
            raise ValueError(f"{fname}: {name} (size {format_size(a.shape)}) must be "
                             f"compatible with the input (size {format_size(X.shape)})")
        a = a.reshape(a.shape[:nd] + (1,) * (nd - min(a.ndim, nd)))
        if any(s not in (1, t) for s, t in zip(a.shape, X.shape)):
            raise ValueError(f"{fname}: {name} (size {format_size(a.shape)}) must be "
                             f"compatible with the input (size {format_size(X.shape)})")
        return a.astype(X.dtype) if X.dtype == np.float32 else a

    def _output_shape(self, dims, shape, fname):
        x = _Spec(dims, shape)
        for name in ("Scale", "Offset"):
            self._expanded(self._values[name], x, fname, name)
        return dims, shape

    def _forward(self, X, fname):
        s = self._expanded(self._values["Scale"], X, fname, "Scale")
        o = self._expanded(self._values["Offset"], X, fname, "Offset")
        return X * s + o


class _Spec:
    __slots__ = ("dims", "shape", "ndim", "dtype")

    def __init__(self, dims, shape):
        self.dims, self.shape, self.ndim, self.dtype = dims, tuple(shape), len(shape), None


# --------------------------------------------------------------------------- function

def _callable(value, where):
    if not callable(value) or isinstance(value, type):
        raise where.error("a function (callable)", value, TypeError)
    return value


def _logical(value, where):
    constraint = "a logical scalar (True/False or 0/1)"
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return bool(V.real_scalar(value, where, constraint, lambda x: x in (0, 1)))


def _names(prefix):
    def get(layer):
        n = layer._values["NumInputs" if prefix == "in" else "NumOutputs"]
        given = layer._values["_" + prefix + "_names"]
        if given is not None:
            return list(given)
        return [prefix] if n == 1 else [f"{prefix}{k}" for k in range(1, n + 1)]
    return get


def _name_list(value, where):
    if isinstance(value, (str, np.str_)):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value or \
            not all(isinstance(v, (str, np.str_)) and v for v in value) or \
            len(set(value)) != len(value):
        raise where.error("a list of unique nonempty names", value, TypeError)
    return tuple(str(v) for v in value)


def _fun_text(fun):
    name = getattr(fun, "__name__", None) or type(fun).__name__
    return name


class FunctionLayer(Layer):
    """Function layer (MATLAB ``FunctionLayer``, R2021b): applies a Python callable."""

    _constructor = "functionLayer"
    _summary = ("Function layer: [Y1,...,YM] = PredictFcn(X1,...,XN) with a Python "
                "callable on dlarrays (no learnables, no state).")
    _positional = ("PredictFcn",)
    _props = (
        Prop("PredictFcn", REQUIRED, _callable, readonly=True,
             doc="the function applied to the inputs"),
        Prop("Formattable", False, _logical, readonly=True,
             doc="False: the function receives unformatted dlarrays (canonical order)"),
        Prop("Acceleratable", False, _logical, readonly=True,
             doc="stored for MATLAB compatibility (no caching of traces here)"),
        Prop("Description", None, V.text, doc="layer-array description (default: the "
                                               "function's name)"),
        Prop("Name", "", V.text, doc="layer name"),
        Prop("NumInputs", 1, V.positive_int, readonly=True, doc="number of inputs"),
        Prop("InputNames", None, _name_list, get=_names("in"), readonly=True,
             set=lambda layer, v, where: layer._set_names("in", v, where),
             doc="input names"),
        Prop("NumOutputs", 1, V.positive_int, readonly=True, doc="number of outputs"),
        Prop("OutputNames", None, _name_list, get=_names("out"), readonly=True,
             set=lambda layer, v, where: layer._set_names("out", v, where),
             doc="output names"),
        Prop("_in_names", None, option=False, attribute=False),
        Prop("_out_names", None, option=False, attribute=False),
    )
    _display = ((None, ("Name", "PredictFcn", "Formattable", "Acceleratable")),
                (LEARN, ()), (STATE, ()))
    _family = "B"
    _type_name = ("Function", "Function")
    _default_name = "function"
    _example = "functionLayer(ml.tanh, Name='fun1')"
    _example_input = ("SSCB", (4, 5, 3, 2))

    def _set_names(self, prefix, names, where):
        count = "NumInputs" if prefix == "in" else "NumOutputs"
        n = self._values[count]
        if len(names) != n:
            raise ValueError(f"{where.fname}: {where.name} must have {count} ({n}) names, "
                             f"got {len(names)}")
        self._values["_" + prefix + "_names"] = names

    def _check(self, fname):
        for prefix, count in (("in", "NumInputs"), ("out", "NumOutputs")):
            given = self._values["_" + prefix + "_names"]
            if given is not None and len(given) != self._values[count]:
                raise ValueError(f"{fname}: {'InputNames' if prefix == 'in' else 'OutputNames'}"
                                 f" must have {count} ({self._values[count]}) names, got "
                                 f"{len(given)}")

    def _description(self):
        d = self._values["Description"]
        return d if d is not None else _fun_text(self._values["PredictFcn"])

    def _call(self, inputs, fname):
        fun = self._values["PredictFcn"]
        fmt = inputs[0].dims if inputs else ""
        if self._values["Formattable"]:
            xs = inputs
        else:
            m = _mathfun()
            xs = [m.stripdims_op(x, "") if x.dims else x for x in inputs]
        out = fun(*xs)
        n = self._values["NumOutputs"]
        # (MATLAB asks the function for NumOutputs outputs and takes those: of a Python
        # function's tuple of outputs, the first NumOutputs)
        outs = list(out) if isinstance(out, tuple) or (n > 1 and isinstance(out, list)) \
            else [out]
        if len(outs) < n:
            raise ValueError(f"{fname}: the PredictFcn of {self._label()} must return "
                             f"NumOutputs ({n}) outputs, got "
                             f"{'a tuple of ' + str(len(outs)) if isinstance(out, tuple) else 'one'}")
        who = f"the PredictFcn of {self._label()}"
        return [layer_output(who, y, fmt, self._values["Formattable"], fname)
                for y in outs[:n]]

    def _run(self, inputs, training, fname):
        n = self._values["NumInputs"]
        if len(inputs) != n:
            raise ValueError(f"{fname}: {self._label()} has {n} inputs, got {len(inputs)}")
        return self._call(inputs, fname), None

    def _forward(self, X, fname):
        if self._values["NumInputs"] != 1 or self._values["NumOutputs"] != 1:
            raise ValueError(f"{fname}: {self._label()} has {self._values['NumInputs']} "
                             f"inputs and {self._values['NumOutputs']} outputs; run it in a "
                             f"network")
        return self._call([X], fname)[0]


def layer_output(who, y, fmt, formattable, fname, inputs=()):
    """An output of the user's function ``who`` (functionLayer's PredictFcn, a custom
    layer's predict) as a formatted dlarray: numeric results wrapped; a ``formattable`` layer must return
    formatted dlarrays, any other's unformatted outputs take the first input's format
    ``fmt`` (package default; MATLAB applies the input format to such layers' outputs)."""
    if not isinstance(y, dlarray):
        a = np.asarray(y)
        if a.dtype.kind not in "fiub":
            raise TypeError(f"{fname}: {who} must return numeric arrays or "
                            f"dlarrays, got {type(y).__name__}")
        y = dlarray._from_canonical(a if a.dtype.kind == "f" else a.astype(np.float64), "")
    if y.dims:
        return y
    if formattable:
        raise ValueError(f"{fname}: {who} (Formattable) must return formatted "
                         f"dlarrays, got an unformatted {format_size(y.shape)} array")
    if y.ndim > len(fmt) and any(s != 1 for s in y.shape[len(fmt):]):
        raise ValueError(f"{fname}: the output of {who} (size "
                         f"{format_size(y.shape)}) has more dimensions than the input "
                         f"format '{fmt}'")
    Y = _mathfun().relabel(y, fmt)
    if "B" in fmt and inputs and Y.shape[fmt.index("B")] != inputs[0].shape[fmt.index("B")]:
        # (the input's format put on data of another layout: observations folded into
        # other dimensions; a layer that changes the layout must be Formattable)
        raise ValueError(f"{fname}: the output of {who} (size {format_size(y.shape)}) "
                         f"does not keep the input's {inputs[0].shape[fmt.index('B')]} "
                         f"observations in dimension {fmt.index('B') + 1} of its format "
                         f"'{fmt}'; a layer whose output has another layout must be "
                         f"Formattable and return formatted dlarrays")
    return Y


flattenLayer = make_constructor(FlattenLayer)
crop2dLayer = make_constructor(Crop2DLayer)
scalingLayer = make_constructor(ScalingLayer)
functionLayer = make_constructor(FunctionLayer)
