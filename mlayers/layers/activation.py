"""reluLayer and softmaxLayer (MATLAB classes ReLULayer, SoftmaxLayer).

Both keep the input format (MATLAB_SEMANTICS §2.2): ``max(x, 0)`` elementwise, and the
softmax over the channel dimension ``C`` at every other position (S..., B, T).
"""

__all__ = ["ReLULayer", "SoftmaxLayer", "reluLayer", "softmaxLayer"]
import numpy as np

from .._props import Layer, general_props, make_constructor
from ..dlarray import dlarray

#: reluLayer/softmaxLayer display: Name, then the two empty parameter groups (§6.3)
_DISPLAY = ((None, ("Name",)), ("Learnable Parameters", ()), ("State Parameters", ()))


class _Elementwise(Layer):
    """A parameter-free layer whose output has the input's format and size."""

    _positional = ()
    _props = general_props()
    _display = _DISPLAY

    def _output_shape(self, dims, shape, fname):
        return dims, shape


class ReLULayer(_Elementwise):
    """ReLU layer (MATLAB ``ReLULayer``): max(x, 0)."""

    _constructor = "reluLayer"
    _summary = "Rectified linear unit layer: max(x, 0), format unchanged."
    _type_name = ("ReLU", "ReLU")
    _default_name = "relu"
    _example = "reluLayer(Name='relu1')"
    _example_input = ("SSCB", (4, 4, 3, 2))

    def _description(self):
        return "ReLU"

    def _forward(self, X, fname):
        return dlarray._from_canonical(np.maximum(X.data, 0), X.dims)


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

    def _forward(self, X, fname):
        c = X.dims.index("C")
        # Subtracting the channel maximum keeps exp() finite; the result is unchanged.
        z = X.data - np.max(X.data, axis=c, keepdims=True)
        e = np.exp(z)
        return dlarray._from_canonical(e / np.sum(e, axis=c, keepdims=True), X.dims)


reluLayer = make_constructor(ReLULayer)
softmaxLayer = make_constructor(SoftmaxLayer)
