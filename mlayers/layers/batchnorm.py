"""batchNormalizationLayer (MATLAB class BatchNormalizationLayer).

Per channel (MATLAB_SEMANTICS §2.2, §8 item 11)::

    y = Scale .* (x - TrainedMean) ./ sqrt(TrainedVariance + Epsilon) + Offset

The four parameters hold one value per channel.  Their MATLAB shape follows the input
format: ``1×1×C`` for 2-D images (SSCB), ``1×1×1×C`` for 3-D images, ``1×C`` for 1-D
images (SCB), ``C×1`` for features and sequences (CB, CBT) (documented).  Assigned arrays
are accepted in any of these vector shapes (only the element count is checked against
NumChannels); initialized ones get the shape of the input format.

``predict`` is ``batchnorm``'s inference form; ``forward`` (training) normalizes with the
batch statistics and returns the moving-average update of TrainedMean/TrainedVariance
(``mlayers.functional.normalization.batchnorm``, which also holds the gradients).
"""

__all__ = ["BatchNormalizationLayer", "batchNormalizationLayer"]
import numpy as np

from .. import _validate as V
from .._display import format_size, times
from .._initializers import initialize
from .._props import Layer, Prop, general_props, make_constructor
from ..functional.normalization import batchnorm, batchnorm_layer
from ._conv_family import learnable_getter

HYPER = "Hyperparameters"
LEARN = "Learnable Parameters"
STATE = "State Parameters"

OFFSET_INITIALIZERS = ("zeros", "ones", "narrow-normal")
SCALE_INITIALIZERS = ("ones", "zeros", "narrow-normal")

#: parameters in initialization order (learnables, then state) and their initial values
PARAMETERS = ("Offset", "Scale", "TrainedMean", "TrainedVariance")


def _positive_finite(value, where):
    return V.real_scalar(value, where, "a positive finite real scalar",
                         lambda x: np.isfinite(x) and x > 0)


def _decay(value, where):
    return V.real_scalar(value, where, "a real scalar in the range [0, 1]",
                         lambda x: 0 <= x <= 1)


def parameter_shape(dims, c):
    """MATLAB shape of a per-channel parameter for input format ``dims`` (§2.2)."""
    ns = dims.count("S")
    return (c, 1) if ns == 0 else (1,) * ns + (c,)


def _set(name):
    def set_(layer, a, where):
        if a is not None:
            nonsingleton = [s for s in a.shape if s != 1]
            c = layer._values["NumChannels"]
            if len(nonsingleton) > 1 or (c != "auto" and a.size != c):
                want = "NumChannels" if c == "auto" else str(c)
                x = times()
                raise ValueError(f"{where.fname}: {name} must be a vector of {want} elements "
                                 f"(1{x}1{x}NumChannels for images, NumChannels{x}1 for "
                                 f"features and sequences), got {format_size(a.shape)}")
            if name == "TrainedVariance" and np.any(a < 0):
                raise ValueError(f"{where.fname}: TrainedVariance must be nonnegative, got "
                                 f"a minimum of {a.min():g}")
            if c == "auto":
                layer._values["NumChannels"] = int(a.size)
        layer._values[name] = a
    return set_


def _parameter(name, doc):
    return Prop(name, None, V.learnable, get=learnable_getter(name), set=_set(name), doc=doc)


class BatchNormalizationLayer(Layer):
    """Batch normalization layer (MATLAB ``BatchNormalizationLayer``), with trained
    statistics: normalizes each channel, then scales and shifts it."""

    _constructor = "batchNormalizationLayer"
    _summary = "Batch normalization layer (inference with TrainedMean and TrainedVariance)."
    _positional = ()
    _props = (
        Prop("NumChannels", "auto", V.auto_or_positive_int, readonly=True, option=False,
             doc="number of channels, 'auto' until known"),
        _parameter("TrainedMean", "per-channel mean used at prediction"),
        _parameter("TrainedVariance", "per-channel variance used at prediction"),
        Prop("MeanDecay", 0.1, _decay, doc="decay of the moving mean (training)"),
        Prop("VarianceDecay", 0.1, _decay, doc="decay of the moving variance (training)"),
        Prop("Epsilon", 1e-5, _positive_finite, doc="constant added to the variance"),
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
    _display = ((None, ("Name", "NumChannels")),
                (HYPER, ("MeanDecay", "VarianceDecay", "Epsilon")),
                (LEARN, ("Offset", "Scale")),
                (STATE, ("TrainedMean", "TrainedVariance")))
    _type_name = ("Batch Normalization", "Batch Normalization")
    _default_name = "batchnorm"
    _example = "batchNormalizationLayer(Name='bn1', Epsilon=1e-3)"
    _example_input = ("SSCB", (5, 4, 3, 2))

    #: learnables (Layer, Parameter rows of dlnetwork.Learnables) and state parameters
    _learnables = ("Offset", "Scale")
    _state_parameters = ("TrainedMean", "TrainedVariance")

    def _description(self):
        c = self._values["NumChannels"]
        return "Batch normalization" if c == "auto" else f"Batch normalization with {c} channels"

    def _check_format(self, X, fname):
        if "C" not in X.dims:
            raise ValueError(f"{fname}: the input format of {self._label()} must have a "
                             f"channel dimension 'C', got '{X.dims}'")

    def _initialize_for(self, dims, shape, fname):
        """Fix NumChannels from an input of format ``dims`` and fill empty parameters:
        Offset and Scale by their initializers (Offset first), TrainedMean 0 and
        TrainedVariance 1 (MATLAB's initial state)."""
        c = int(shape[dims.index("C")])
        known = self._values["NumChannels"]
        if known != "auto" and known != c:
            raise ValueError(f"{fname}: the number of input channels must be {known} "
                             f"(NumChannels of {self._label()}), got {c}")
        self._values["NumChannels"] = c
        sz = parameter_shape(dims, c)
        for name in PARAMETERS:
            if self._values[name] is not None:
                continue
            if name in ("Offset", "Scale"):
                init = self._values[name + "Initializer"]
                # numIn = numOut = C is what a callable or 'narrow-normal' sees; neither
                # uses the fans (inferred).
                self._values[name] = initialize(init, sz, c, c, fname, name + "Initializer")
            else:
                fill = 0.0 if name == "TrainedMean" else 1.0
                self._values[name] = np.full(sz, fill, dtype=np.float32, order="F")
        return self

    def _output_shape(self, dims, shape, fname):
        return dims, shape

    def _forward(self, X, fname):
        """Prediction: the inference form of ``batchnorm`` with the trained statistics."""
        self._initialize_for(X.dims, X.shape, fname)
        v = self._values
        return batchnorm(X, v["Offset"], v["Scale"], v["TrainedMean"], v["TrainedVariance"],
                         Epsilon=v["Epsilon"])

    def _forward_train(self, X, fname, rectify=False):
        """MATLAB's dlnetwork ``forward``: normalize with the batch statistics and return
        the running statistics moved towards them (``'moving'``, §16.6)::

            TrainedMean     <- MeanDecay*mu_B + (1 - MeanDecay)*TrainedMean
            TrainedVariance <- VarianceDecay*var_B + (1 - VarianceDecay)*TrainedVariance

        ``rectify``: Y is relu's of that too (the network's ReLU that alone reads this
        layer, run in the same operation; the same numbers and gradients).
        """
        self._initialize_for(X.dims, X.shape, fname)
        v = self._values
        # (the parameters and format are checked: batchnorm without its parsing)
        Y, mean, var = batchnorm_layer(X, v["Offset"], v["Scale"], v["TrainedMean"],
                                       v["TrainedVariance"], float(v["Epsilon"]),
                                       float(v["MeanDecay"]), float(v["VarianceDecay"]),
                                       rectify)
        return Y, {"TrainedMean": mean, "TrainedVariance": var}

    def _run_rectified(self, inputs, fname):
        """Training output and state with the ReLU that alone reads it (the network's
        fusion, ``dlnetwork._relu_fusions``)."""
        return self._forward_train(inputs[0], fname, rectify=True)


batchNormalizationLayer = make_constructor(BatchNormalizationLayer)
