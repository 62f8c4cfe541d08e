"""Activation layers: ReLU, leaky and clipped ReLU, ELU, GELU, tanh, sigmoid, swish,
softplus, PReLU and softmax (MATLAB classes ReLULayer, LeakyReLULayer, ClippedReLULayer,
ELULayer, GELULayer, TanhLayer, SigmoidLayer, SwishLayer, SoftplusLayer, PReLULayer,
SoftmaxLayer).

Every layer keeps the input's format and size, accepts any format (softmax needs a
``C`` dimension), and its forward is one call of a differentiable operation of
:mod:`mlayers.functional` (MATLAB_SEMANTICS §11.2, §14.2)::

    reluLayer         relu(X)                  max(x, 0)
    leakyReluLayer    leakyrelu(X, Scale)      max(0,x) + Scale*min(0,x)
    clippedReluLayer  clippedrelu(X, Ceiling)  min(max(0,x), Ceiling)
    eluLayer          elu(X, Alpha)            x > 0 ? x : Alpha*(exp(x) - 1)
    geluLayer         gelu(X, Approximation=)  x/2*(1 + erf(x/sqrt(2)))  (or the tanh form)
    tanhLayer         tanh(X)
    sigmoidLayer      sigmoid(X)               1/(1 + exp(-x))
    swishLayer        swish(X)                 x/(1 + exp(-x))
    softplusLayer     softplus(X)              log(1 + exp(x))
    preluLayer        prelu(X, Alpha)          x > 0 ? x : Alpha.*x  (Alpha learnable)
    softmaxLayer      softmax(X)               over C

Display families (§14.1): leaky/clipped ReLU and GELU are classic layers (Family A: a
``Hyperparameters`` group, no footer); ELU, tanh, sigmoid, swish, softplus, PReLU, and
ReLU/softmax of newer releases are built on MATLAB's custom-layer base (Family B: the
non-learnable properties untitled, then the Learnable and State groups, then the footer).
"""

__all__ = ["ReLULayer", "LeakyReLULayer", "ClippedReLULayer", "ELULayer", "GELULayer",
           "TanhLayer", "SigmoidLayer", "SwishLayer", "SoftplusLayer", "PReLULayer",
           "SoftmaxLayer",
           "reluLayer", "leakyReluLayer", "clippedReluLayer", "eluLayer", "geluLayer",
           "tanhLayer", "sigmoidLayer", "swishLayer", "softplusLayer", "preluLayer",
           "softmaxLayer"]
import numpy as np

from .. import _ops_norm, _validate as V
from .._display import num2str
from .._props import REQUIRED, Layer, Prop, general_props, make_constructor
from ..functional import activations as _act

HYPER = "Hyperparameters"
LEARN = "Learnable Parameters"
STATE = "State Parameters"

#: Family-B display of a layer whose only public property is Name (§14.1)
_DISPLAY = ((None, ("Name",)), (LEARN, ()), (STATE, ()))


def _finite(value, where):
    return V.real_scalar(value, where, "a finite real scalar", np.isfinite)


def _positive_finite(value, where):
    return V.real_scalar(value, where, "a positive finite real scalar",
                         lambda x: np.isfinite(x) and x > 0)


def _tanh(X):
    from ..functional.mathfun import tanh
    return tanh(X)


class _Elementwise(Layer):
    """A layer whose output has the input's format and size."""

    _positional = ()
    _props = general_props()
    _display = _DISPLAY
    _family = "B"
    _example_input = ("SSCB", (4, 5, 3, 2))

    def _output_shape(self, dims, shape, fname):
        return dims, shape


class ReLULayer(_Elementwise):
    """ReLU layer (MATLAB ``ReLULayer``): max(x, 0)."""

    _constructor = "reluLayer"
    _summary = "Rectified linear unit layer: max(x, 0), format unchanged."
    _type_name = ("ReLU", "ReLU")
    _default_name = "relu"
    _example = "reluLayer(Name='relu1')"

    def _description(self):
        return "ReLU"

    def _forward(self, X, fname):
        return _act.relu(X)

    def _predict_fn(self, specs, fname):
        return _ops_norm.relu


class LeakyReLULayer(_Elementwise):
    """Leaky ReLU layer (MATLAB ``LeakyReLULayer``): max(0,x) + Scale*min(0,x)."""

    _constructor = "leakyReluLayer"
    _summary = "Leaky ReLU layer: max(0,x) + Scale*min(0,x), format unchanged."
    _optional_positional = ("Scale",)
    _props = (Prop("Scale", 0.01, _finite, doc="multiplier of the negative inputs"),
              *general_props())
    _display = ((None, ("Name",)), (HYPER, ("Scale",)))
    _family = "A"
    _type_name = ("Leaky ReLU", "Leaky ReLU")
    _default_name = "leakyrelu"
    _example = "leakyReluLayer(0.1, Name='leaky1')"

    def _description(self):
        return f"Leaky ReLU with scale {num2str(self._values['Scale'])}"

    def _forward(self, X, fname):
        return _act.leakyrelu(X, self._values["Scale"])


class ClippedReLULayer(_Elementwise):
    """Clipped ReLU layer (MATLAB ``ClippedReLULayer``): min(max(0,x), Ceiling)."""

    _constructor = "clippedReluLayer"
    _summary = "Clipped ReLU layer: min(max(0,x), Ceiling), format unchanged."
    _positional = ("Ceiling",)
    _props = (Prop("Ceiling", REQUIRED, _positive_finite, doc="upper bound of the output"),
              *general_props())
    _display = ((None, ("Name",)), (HYPER, ("Ceiling",)))
    _family = "A"
    _type_name = ("Clipped ReLU", "Clipped ReLU")
    _default_name = "clippedrelu"
    _example = "clippedReluLayer(10, Name='clip1')"

    def _description(self):
        return f"Clipped ReLU with ceiling {num2str(self._values['Ceiling'])}"

    def _forward(self, X, fname):
        return _act.clippedrelu(X, self._values["Ceiling"])


class ELULayer(_Elementwise):
    """ELU layer (MATLAB ``ELULayer``): x for x > 0, Alpha*(exp(x) - 1) otherwise."""

    _constructor = "eluLayer"
    _summary = "Exponential linear unit layer: x > 0 ? x : Alpha*(exp(x)-1)."
    _optional_positional = ("Alpha",)
    _props = (Prop("Alpha", 1.0, _finite, doc="nonlinearity parameter"), *general_props())
    _display = ((None, ("Name", "Alpha")), (LEARN, ()), (STATE, ()))
    _type_name = ("ELU", "ELU")
    _default_name = "elu"
    _example = "eluLayer(Name='elu1')"

    def _description(self):
        return f"ELU with alpha {num2str(self._values['Alpha'])}"

    def _forward(self, X, fname):
        return _act.elu(X, self._values["Alpha"])


class GELULayer(_Elementwise):
    """GELU layer (MATLAB ``GELULayer``): x/2*(1 + erf(x/sqrt(2))) or its tanh form."""

    _constructor = "geluLayer"
    _summary = "Gaussian error linear unit layer (Approximation 'none' or 'tanh')."
    _props = (Prop("Approximation", "none", V.choice(("none", "tanh")),
                   doc="'none' (erf) or 'tanh'"),
              *general_props())
    _display = ((None, ("Name",)), (HYPER, ("Approximation",)))
    _family = "A"
    _type_name = ("GELU", "GELU")
    _default_name = "gelu"
    _example = "geluLayer(Approximation='tanh', Name='gelu1')"

    def _description(self):
        return "GELU"

    def _forward(self, X, fname):
        return _act.gelu(X, Approximation=self._values["Approximation"])


class TanhLayer(_Elementwise):
    """Hyperbolic tangent layer (MATLAB ``TanhLayer``)."""

    _constructor = "tanhLayer"
    _summary = "Hyperbolic tangent layer: tanh(x), format unchanged."
    _type_name = ("Tanh", "Tanh")
    _default_name = "tanh"
    _example = "tanhLayer(Name='tanh1')"

    def _description(self):
        return "Hyperbolic tangent"

    def _forward(self, X, fname):
        return _tanh(X)


class SigmoidLayer(_Elementwise):
    """Sigmoid layer (MATLAB ``SigmoidLayer``): 1/(1 + exp(-x))."""

    _constructor = "sigmoidLayer"
    _summary = "Sigmoid layer: 1/(1 + exp(-x)), format unchanged."
    _type_name = ("Sigmoid", "Sigmoid")
    _default_name = "sigmoid"
    _example = "sigmoidLayer(Name='sig1')"

    def _description(self):
        return "Sigmoid activation function"

    def _forward(self, X, fname):
        return _act.sigmoid(X)


class SwishLayer(_Elementwise):
    """Swish layer (MATLAB ``SwishLayer``): x/(1 + exp(-x))."""

    _constructor = "swishLayer"
    _summary = "Swish layer: x/(1 + exp(-x)), format unchanged."
    _type_name = ("Swish", "Swish")
    _default_name = "swish"
    _example = "swishLayer(Name='swish1')"

    def _description(self):
        return "Swish"

    def _forward(self, X, fname):
        return _act.swish(X)


class SoftplusLayer(_Elementwise):
    """Softplus layer (MATLAB ``SoftplusLayer``): log(1 + exp(x))."""

    _constructor = "softplusLayer"
    _summary = "Softplus layer: log(1 + exp(x)), format unchanged."
    _type_name = ("Softplus", "Softplus")
    _default_name = "softplus"
    _example = "softplusLayer(Name='softplus1')"

    def _description(self):
        return "Softplus"

    def _forward(self, X, fname):
        return _act.softplus(X)


def _alpha(value, where):
    a = V.learnable(value, where)
    if a is None or a.size == 0:
        raise where.error("a nonempty real single or double array", value)
    if not np.all(np.isfinite(a)):
        raise where.error("a finite real array", value)
    return a


class PReLULayer(_Elementwise):
    """PReLU layer (MATLAB ``PReLULayer``, R2024a): x > 0 ? x : Alpha.*x, Alpha learnable
    and implicitly expanded against the input."""

    _constructor = "preluLayer"
    _summary = ("Parametrized ReLU layer: x > 0 ? x : Alpha.*x, Alpha learnable "
                "(implicit expansion against the input).")
    _props = (Prop("Alpha", np.full((1, 1), 0.25, dtype=np.float32), _alpha,
                   doc="learnable multiplier of the negative inputs (scalar or array "
                       "compatible with the input, e.g. 1×1×C)"),
              *general_props())
    _display = ((None, ("Name",)), (LEARN, ("Alpha",)), (STATE, ()))
    _type_name = ("PReLU", "PReLU")
    _default_name = "prelu"
    _example = "preluLayer(Alpha=np.float32(0.4), Name='prelu1')"
    _learnables = ("Alpha",)

    def _description(self):
        return "PReLU"

    def _forward(self, X, fname):
        return _act.prelu(X, self._values["Alpha"])


class SoftmaxLayer(_Elementwise):
    """Softmax layer (MATLAB ``SoftmaxLayer``): exp(x)/sum(exp(x)) over the channels."""

    _constructor = "softmaxLayer"
    _summary = "Softmax layer: softmax over the channel dimension C, format unchanged."
    _type_name = ("Softmax", "Softmax")
    _default_name = "softmax"
    _example = "softmaxLayer(Name='prob')"
    _example_input = ("CB", (5, 3))

    def _description(self):
        return "softmax"

    def _check_format(self, X, fname):
        if "C" not in X.dims:
            raise ValueError(f"{fname}: the input format of {self._label()} must have a "
                             f"channel dimension 'C', got '{X.dims}'")

    def _output_shape(self, dims, shape, fname):
        self._check_format(_Dims(dims), fname)
        return dims, shape

    def _forward(self, X, fname):
        return _act.softmax(X)

    def _predict_fn(self, specs, fname):
        (dims, shape, _), = specs
        return _ops_norm.softmax_fn(shape, dims.index("C"))


class _Dims:
    """What a format check needs of an activation: its format."""

    __slots__ = ("dims",)

    def __init__(self, dims):
        self.dims = dims


reluLayer = make_constructor(ReLULayer)
leakyReluLayer = make_constructor(LeakyReLULayer)
clippedReluLayer = make_constructor(ClippedReLULayer)
eluLayer = make_constructor(ELULayer)
geluLayer = make_constructor(GELULayer)
tanhLayer = make_constructor(TanhLayer)
sigmoidLayer = make_constructor(SigmoidLayer)
swishLayer = make_constructor(SwishLayer)
softplusLayer = make_constructor(SoftplusLayer)
preluLayer = make_constructor(PReLULayer)
softmaxLayer = make_constructor(SoftmaxLayer)
