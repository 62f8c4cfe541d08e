"""resize2dLayer (MATLAB class Resize2DLayer, Image Processing Toolbox, R2020b).

MATLAB_SEMANTICS §14.2 (documented,
https://ww2.mathworks.cn/help/images/ref/nnet.cnn.layer.resize2dlayer.html; sampling from
MathWorks source): exactly one of ``Scale`` (scalar or 1×2), ``OutputSize`` (1×2, one NaN
keeps the aspect ratio) and ``EnableReferenceInput=true`` (inputs ``in`` and ``ref``; the
output takes ``ref``'s two S sizes).  ``Method`` ``'nearest'`` (default) or ``'bilinear'``,
``GeometricTransformMode`` ``'half-pixel'`` (default) or ``'asymmetric'``,
``NearestRoundingMode`` ``'round'`` (default), ``'floor'`` or ``'onnx-10'``.  The
arithmetic is :func:`mlayers.functional.resize.dlresize` (``'bilinear'`` is its
``'linear'``).

Display: Family B (the custom-layer base class): ``Name`` and the other properties
untitled, empty Learnable/State groups, the footer.  Package defaults (unknown in
MATLAB): every property but ``Name`` is read-only after construction; the layer-array
row is ``Resize`` / ``resize with scale [2 2]`` (``output size [64 64]``,
``reference input``).
"""

__all__ = ["Resize2DLayer", "resize2dLayer"]
import numpy as np

from .. import _validate as V
from .._display import format_size
from .._props import Layer, Prop, general_props, make_constructor, replace
from ..functional.resize import dlresize, output_geometry
from .input import logical

_FORMATS = ("SSCB", "SSCBT", "SSC", "SSCT")


def _scale(value, where):
    constraint = "a positive number or a 1×2 vector of positive numbers"
    a = V.real_array(value, where, constraint).astype(np.float64)
    is_row = a.ndim <= 1 or (a.ndim == 2 and a.shape[0] == 1)
    if a.size == 1:
        a = np.repeat(a.reshape(-1), 2)
    elif not (is_row and a.size == 2):
        raise where.error(constraint, value)
    a = a.reshape(-1)
    if not np.all(np.isfinite(a)) or np.any(a <= 0):
        raise where.error(constraint, value)
    a.flags.writeable = False
    return a


def _output_size(value, where):
    constraint = "a 1×2 vector of positive integers (one may be NaN)"
    a = V.real_array(value, where, constraint).astype(np.float64)
    is_row = a.ndim <= 1 or (a.ndim == 2 and a.shape[0] == 1)
    a = a.reshape(-1)
    nan = np.isnan(a)
    if not is_row or a.size != 2 or nan.all() or \
            np.any(~nan & ((a < 1) | (a != np.round(a)) | ~np.isfinite(a))):
        raise where.error(constraint, value)
    a.flags.writeable = False
    return a


def _choice(choices):
    return V.choice(choices)


def _num_inputs(layer):
    return 2 if layer._values.get("EnableReferenceInput") else 1


def _input_names(layer):
    return ["in", "ref"] if layer._values.get("EnableReferenceInput") else ["in"]


def _empty_or(name):
    def get(layer):
        v = layer._values[name]
        return np.zeros((0, 0)) if v is None else v
    return get


class Resize2DLayer(Layer):
    """2-D resize layer (MATLAB ``Resize2DLayer``)."""

    _constructor = "resize2dLayer"
    _summary = "2-D resize layer (Scale, OutputSize or a reference input)."
    _props = replace(
        (
            Prop("Name", "", V.text, doc="layer name"),
            Prop("Scale", None, _scale, readonly=True, get=_empty_or("Scale"),
                 doc="scale factor, scalar or [sh sw] ([] when not used)"),
            Prop("OutputSize", None, _output_size, readonly=True,
                 get=_empty_or("OutputSize"),
                 doc="output size [h w], one entry may be NaN ([] when not used)"),
            Prop("EnableReferenceInput", False, logical, readonly=True,
                 doc="take the output size from a second input 'ref'"),
            Prop("Method", "nearest", _choice(("nearest", "bilinear")), readonly=True,
                 doc="'nearest' or 'bilinear'"),
            Prop("GeometricTransformMode", "half-pixel",
                 _choice(("half-pixel", "asymmetric")), readonly=True,
                 doc="'half-pixel' or 'asymmetric'"),
            Prop("NearestRoundingMode", "round", _choice(("round", "floor", "onnx-10")),
                 readonly=True, doc="'round', 'floor' or 'onnx-10'"),
            *general_props()[1:],
        ),
        Prop("NumInputs", None, get=_num_inputs, option=False, doc="number of inputs"),
        Prop("InputNames", None, get=_input_names, option=False, doc="input names"),
    )
    _display = ((None, ("Name", "Scale", "OutputSize", "EnableReferenceInput", "Method",
                        "GeometricTransformMode", "NearestRoundingMode")),
                ("Learnable Parameters", ()), ("State Parameters", ()))
    _type_name = ("Resize", "Resize")
    _default_name = "resize"
    _family = "B"
    _formats = _FORMATS
    _example = "resize2dLayer(Scale=2, Name='up')"
    _example_input = ("SSCB", (3, 4, 2, 2))

    def _check(self, fname):
        given = [self._values["Scale"] is not None, self._values["OutputSize"] is not None,
                 bool(self._values["EnableReferenceInput"])]
        if sum(given) != 1:
            raise ValueError(f"{fname}: exactly one of Scale, OutputSize and "
                             f"EnableReferenceInput=true must be given, got "
                             f"{sum(given)}")

    def _options(self):
        return dict(Method="linear" if self._values["Method"] == "bilinear" else "nearest",
                    GeometricTransformMode=self._values["GeometricTransformMode"],
                    NearestRoundingMode=self._values["NearestRoundingMode"])

    def _size_kw(self):
        if self._values["Scale"] is not None:
            return dict(Scale=self._values["Scale"])
        return dict(OutputSize=self._values["OutputSize"])

    def _output_shape(self, dims, shape, fname):
        if self._values["EnableReferenceInput"]:
            raise ValueError(f"{fname}: {self._label()} has a reference input; it needs "
                             f"two inputs (in, ref)")
        spatial = tuple(n for c, n in zip(dims, shape) if c == "S")
        kw = self._size_kw()
        out, _ = output_geometry(spatial, kw.get("Scale"), kw.get("OutputSize"), fname)
        return dims, tuple(out) + tuple(shape[2:])

    def _output_shapes(self, in_specs, fname):
        if not self._values["EnableReferenceInput"]:
            return [self._output_shape(in_specs[0][0], tuple(in_specs[0][1]), fname)]
        (dims, shape), (rdims, rshape) = in_specs
        if rdims.count("S") != 2:
            raise ValueError(f"{fname}: the 'ref' input of {self._label()} must have two "
                             f"S dimensions, got '{rdims}'")
        return [(dims, tuple(rshape[:2]) + tuple(shape[2:]))]

    def _forward(self, X, fname):
        if self._values["EnableReferenceInput"]:
            raise ValueError(f"{fname}: {self._label()} has a reference input; run it in a "
                             f"network with its 'ref' input connected")
        return dlresize(X, **self._size_kw(), **self._options())

    def _run(self, inputs, training, fname):
        if not self._values["EnableReferenceInput"]:
            return super()._run(inputs, training, fname)
        if len(inputs) != 2:
            raise ValueError(f"{fname}: {self._label()} needs 2 inputs (in, ref), got "
                             f"{len(inputs)}")
        X, ref = inputs
        self._check_format(X, fname)
        if ref.dims.count("S") != 2:
            raise ValueError(f"{fname}: the 'ref' input of {self._label()} must have two "
                             f"S dimensions, got '{ref.dims}' of size "
                             f"{format_size(ref.shape)}")
        return [dlresize(X, OutputSize=list(ref.shape[:2]), **self._options())], None

    def _description(self):
        if self._values["EnableReferenceInput"]:
            return "resize with reference input"
        if self._values["Scale"] is not None:
            return "resize with scale " + _row(self._values["Scale"])
        return "resize with output size " + _row(self._values["OutputSize"])


def _row(v):
    return "[" + " ".join("NaN" if np.isnan(e) else f"{e:g}" for e in v) + "]"


resize2dLayer = make_constructor(Resize2DLayer)
