"""Normalization layers: layer, group, instance and cross-channel normalization (MATLAB
classes LayerNormalizationLayer, GroupNormalizationLayer, InstanceNormalizationLayer,
CrossChannelNormalizationLayer).

Each forward is one differentiable operation of :mod:`mlayers.functional.normalization`
(MATLAB_SEMANTICS §11.1, §14.2), the same in prediction and training (these layers keep
no running statistics)::

    layerNormalizationLayer         layernorm(X, Offset, Scale, Epsilon=, OperationDimension=)
    groupNormalizationLayer         groupnorm(X, NumGroups, Offset, Scale, Epsilon=)
    instanceNormalizationLayer      instancenorm(X, Offset, Scale, Epsilon=)
    crossChannelNormalizationLayer  crosschannelnorm(X, WindowChannelSize, Alpha=, Beta=, K=)

    y = Scale .* (x - mean) ./ sqrt(var + Epsilon) + Offset     (biased variance)

``Offset`` and ``Scale`` are per channel, with batch normalization's shapes (``1×1×C`` for
SSCB, ``C×1`` for CB/CBT, ...; inferred), drawn by ``OffsetInitializer`` ('zeros') and
``ScaleInitializer`` ('ones') when the input's channel count becomes known.

Displays (unknown in MATLAB; package default, §14.2): batch normalization's layout
without the decays and the State group, with the footer (they have learnables).
"""

__all__ = ["LayerNormalizationLayer", "GroupNormalizationLayer",
           "InstanceNormalizationLayer", "CrossChannelNormalizationLayer",
           "layerNormalizationLayer", "groupNormalizationLayer", "instanceNormalizationLayer",
           "crossChannelNormalizationLayer"]
import numpy as np

from .. import _validate as V
from .._display import format_size, times
from .._initializers import initialize
from .._options import validatestring
from .._props import REQUIRED, Layer, Prop, general_props, make_constructor
from ..functional import normalization as _norm
from ._conv_family import learnable_getter
# the per-channel parameters are declared as batch normalization declares them
from .batchnorm import (HYPER, LEARN, OFFSET_INITIALIZERS, SCALE_INITIALIZERS,
                        _positive_finite, parameter_shape)

OPERATION_DIMENSIONS = ("auto", "channel-only", "spatial-channel", "batch-excluded")


def _set(name):
    def set_(layer, a, where):
        if a is not None:
            c = layer._values["NumChannels"]
            if sum(s != 1 for s in a.shape) > 1 or (c != "auto" and a.size != c):
                want = "NumChannels" if c == "auto" else str(c)
                x = times()
                raise ValueError(f"{where.fname}: {name} must be a vector of {want} elements "
                                 f"(1{x}1{x}NumChannels for images, NumChannels{x}1 for "
                                 f"features and sequences), got {format_size(a.shape)}")
            if c == "auto":
                layer._values["NumChannels"] = int(a.size)
                layer._on_channels(int(a.size), where.fname)
        layer._values[name] = a
    return set_


def _parameter(name, doc):
    return Prop(name, None, V.learnable, get=learnable_getter(name), set=_set(name), doc=doc)


def _affine_props():
    """Initializers, learnables and their factors, then the general properties."""
    return (
        Prop("OffsetInitializer", "zeros", V.initializer(OFFSET_INITIALIZERS),
             doc="'zeros', 'ones', 'narrow-normal' or a callable f(sz)"),
        Prop("ScaleInitializer", "ones", V.initializer(SCALE_INITIALIZERS),
             doc="'ones', 'zeros', 'narrow-normal' or a callable f(sz)"),
        _parameter("Offset", "learnable per-channel offset (beta)"),
        _parameter("Scale", "learnable per-channel scale (gamma)"),
        Prop("OffsetLearnRateFactor", 1.0, V.nonneg_factor, doc="learning-rate factor"),
        Prop("ScaleLearnRateFactor", 1.0, V.nonneg_factor, doc="learning-rate factor"),
        Prop("OffsetL2Factor", 1.0, V.nonneg_factor, doc="L2 regularization factor"),
        Prop("ScaleL2Factor", 1.0, V.nonneg_factor, doc="L2 regularization factor"),
        *general_props(),
    )


def _num_channels_prop():
    return Prop("NumChannels", "auto", V.auto_or_positive_int, readonly=True, option=False,
                doc="number of channels, 'auto' until known")


class _AffineNorm(Layer):
    """A normalization with learnable per-channel Offset and Scale."""

    _learnables = ("Offset", "Scale")
    _example_input = ("SSCB", (5, 4, 6, 2))
    _kind = ""

    def _description(self):
        c = self._values["NumChannels"]
        return self._kind if c == "auto" else f"{self._kind} with {c} channels"

    def _check_format(self, X, fname):
        if "C" not in X.dims:
            raise ValueError(f"{fname}: the input format of {self._label()} must have a "
                             f"channel dimension 'C', got '{X.dims}'")

    def _on_channels(self, c, fname):
        """Hook: the channel count became known (group normalization checks NumGroups)."""

    def _initialize_for(self, dims, shape, fname):
        """Fix NumChannels from an input of format ``dims`` and fill empty Offset and Scale
        with their initializers (Offset first, as batch normalization)."""
        c = int(shape[dims.index("C")])
        known = self._values["NumChannels"]
        if known != "auto" and known != c:
            raise ValueError(f"{fname}: the number of input channels must be {known} "
                             f"(NumChannels of {self._label()}), got {c}")
        self._on_channels(c, fname)
        self._values["NumChannels"] = c
        sz = parameter_shape(dims, c)
        for name in ("Offset", "Scale"):
            if self._values[name] is None:
                init = self._values[name + "Initializer"]
                self._values[name] = initialize(init, sz, c, c, fname, name + "Initializer")
        return self

    def initialize(self, num_channels=None, *, fname="initialize"):
        """Fill empty Offset/Scale for ``num_channels`` channels (``C×1`` shapes when no
        input format is known).  Returns the layer."""
        if num_channels is None:
            num_channels = self._values["NumChannels"]
            if num_channels == "auto":
                raise ValueError(f"{fname}: num_channels must be given to initialize "
                                 f"{self._label()}, whose channel count is 'auto', got None")
        c = V.positive_int(num_channels, V.Where(fname, "num_channels"))
        return self._initialize_for("CB", (c, 1), fname)

    def _output_shape(self, dims, shape, fname):
        self._check_format(_Dims(dims), fname)
        return dims, shape

    def _forward(self, X, fname):
        self._initialize_for(X.dims, X.shape, fname)     # checks the channel count
        return self._normalize(X, self._values["Offset"], self._values["Scale"])


class LayerNormalizationLayer(_AffineNorm):
    """Layer normalization layer (MATLAB ``LayerNormalizationLayer``, R2021a)."""

    _constructor = "layerNormalizationLayer"
    _summary = ("Layer normalization layer: normalizes each observation over the "
                "OperationDimension dimensions, then scales and shifts each channel.")
    _props = (
        Prop("Epsilon", 1e-5, _positive_finite, doc="constant added to the variance"),
        Prop("OperationDimension", "auto", V.choice(OPERATION_DIMENSIONS),
             doc="'auto', 'channel-only', 'spatial-channel' or 'batch-excluded'"),
        _num_channels_prop(),
        *_affine_props(),
    )
    _display = ((None, ("Name", "NumChannels")),
                (HYPER, ("Epsilon", "OperationDimension")),
                (LEARN, ("Offset", "Scale")))
    _type_name = ("Layer Normalization", "Layer Normalization")
    _default_name = "layernorm"
    _kind = "Layer normalization"
    _example = "layerNormalizationLayer(Name='ln1', Epsilon=1e-4)"

    def _normalize(self, X, offset, scale):
        return _norm.layernorm(X, offset, scale, Epsilon=self._values["Epsilon"],
                               OperationDimension=self._values["OperationDimension"])


def _num_groups(value, where):
    """A positive integer, 'all-channels' or 'channel-wise'."""
    if isinstance(value, (str, np.str_)):
        return validatestring(value, ("all-channels", "channel-wise"), where.fname,
                              where.name)
    return V.positive_int(value, where,
                          "a positive integer, 'all-channels' or 'channel-wise'")


class GroupNormalizationLayer(_AffineNorm):
    """Group normalization layer (MATLAB ``GroupNormalizationLayer``, R2020b)."""

    _constructor = "groupNormalizationLayer"
    _summary = ("Group normalization layer: normalizes each observation over groups of "
                "channels (and S, T), then scales and shifts each channel.")
    _positional = ("NumGroups",)
    _props = (
        Prop("NumGroups", REQUIRED, _num_groups, readonly=True,
             doc="number of channel groups, 'all-channels' or 'channel-wise'"),
        Prop("Epsilon", 1e-5, _positive_finite, doc="constant added to the variance"),
        _num_channels_prop(),
        *_affine_props(),
    )
    _display = ((None, ("Name", "NumChannels")),
                (HYPER, ("NumGroups", "Epsilon")),
                (LEARN, ("Offset", "Scale")))
    _type_name = ("Group Normalization", "Group Normalization")
    _default_name = "groupnorm"
    _kind = "Group normalization"
    _example = "groupNormalizationLayer(3, Name='gn1')"

    def _on_channels(self, c, fname):
        g = self._values["NumGroups"]
        if not isinstance(g, str) and c % g:
            raise ValueError(f"{fname}: the number of input channels must be divisible by "
                             f"NumGroups ({g}) of {self._label()}, got {c}")

    def _normalize(self, X, offset, scale):
        return _norm.groupnorm(X, self._values["NumGroups"], offset, scale,
                               Epsilon=self._values["Epsilon"])


class InstanceNormalizationLayer(_AffineNorm):
    """Instance normalization layer (MATLAB ``InstanceNormalizationLayer``, R2021a)."""

    _constructor = "instanceNormalizationLayer"
    _summary = ("Instance normalization layer: normalizes each channel of each observation "
                "over S and T, then scales and shifts it.")
    _props = (
        Prop("Epsilon", 1e-5, _positive_finite, doc="constant added to the variance"),
        _num_channels_prop(),
        *_affine_props(),
    )
    _display = ((None, ("Name", "NumChannels")),
                (HYPER, ("Epsilon",)),
                (LEARN, ("Offset", "Scale")))
    _type_name = ("Instance Normalization", "Instance Normalization")
    _default_name = "instancenorm"
    _kind = "Instance normalization"
    _example = "instanceNormalizationLayer(Name='in1')"

    def _normalize(self, X, offset, scale):
        return _norm.instancenorm(X, offset, scale, Epsilon=self._values["Epsilon"])


def _window(value, where):
    c = "an integer from 1 to 16"
    return int(V.real_scalar(value, where, c,
                             lambda x: np.isfinite(x) and x == int(x) and 1 <= x <= 16))


def _beta(value, where):
    return V.real_scalar(value, where, "a finite real scalar >= 0.01",
                         lambda x: np.isfinite(x) and x >= 0.01)


def _k(value, where):
    return V.real_scalar(value, where, "a finite real scalar >= 1e-5",
                         lambda x: np.isfinite(x) and x >= 1e-5)


def _alpha(value, where):
    return V.real_scalar(value, where, "a finite real scalar", np.isfinite)


class CrossChannelNormalizationLayer(Layer):
    """Cross-channel (local response) normalization layer (MATLAB
    ``CrossChannelNormalizationLayer``)."""

    _constructor = "crossChannelNormalizationLayer"
    _summary = ("Channel-wise local response normalization: "
                "x ./ (K + Alpha*ss/WindowChannelSize).^Beta, ss the sum of squares over "
                "WindowChannelSize neighbouring channels.")
    _positional = ("WindowChannelSize",)
    _props = (
        Prop("WindowChannelSize", REQUIRED, _window, readonly=True,
             doc="number of channels in each window (1 to 16)"),
        Prop("Alpha", 1e-4, _alpha, doc="multiplier of the sum of squares"),
        Prop("Beta", 0.75, _beta, doc="exponent (>= 0.01)"),
        Prop("K", 2.0, _k, doc="additive constant (>= 1e-5)"),
        *general_props(),
    )
    _display = ((None, ("Name",)), (HYPER, ("WindowChannelSize", "Alpha", "Beta", "K")))
    _type_name = ("Cross Channel Normalization", "Cross Channel Normalization")
    _default_name = "crossnorm"
    _example = "crossChannelNormalizationLayer(5, Name='norm1')"
    _example_input = ("SSCB", (4, 5, 7, 2))

    def _description(self):
        return (f"cross channel normalization with {self._values['WindowChannelSize']} "
                f"channels per element")

    def _check_format(self, X, fname):
        if "C" not in X.dims:
            raise ValueError(f"{fname}: the input format of {self._label()} must have a "
                             f"channel dimension 'C', got '{X.dims}'")

    def _output_shape(self, dims, shape, fname):
        self._check_format(_Dims(dims), fname)
        return dims, shape

    def _forward(self, X, fname):
        v = self._values
        return _norm.crosschannelnorm(X, v["WindowChannelSize"], Alpha=v["Alpha"],
                                      Beta=v["Beta"], K=v["K"])


class _Dims:
    """What a format check needs of an activation: its format."""

    __slots__ = ("dims",)

    def __init__(self, dims):
        self.dims = dims


layerNormalizationLayer = make_constructor(LayerNormalizationLayer)
groupNormalizationLayer = make_constructor(GroupNormalizationLayer)
instanceNormalizationLayer = make_constructor(InstanceNormalizationLayer)
crossChannelNormalizationLayer = make_constructor(CrossChannelNormalizationLayer)
