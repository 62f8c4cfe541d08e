"""convolution1dLayer (MATLAB R2021b+, class Convolution1DLayer)."""

__all__ = ["Convolution1DLayer", "convolution1dLayer"]
from .._props import make_constructor
from ._conv_family import ConvLayer, conv_display, conv_props, formats


class Convolution1DLayer(ConvLayer):
    """1-D convolution layer (MATLAB ``Convolution1DLayer``), incl. 'causal' padding."""

    _constructor = "convolution1dLayer"
    _summary = "1-D convolution layer over S (SCB) or T (CBT), with 'same'/'causal' padding."
    _nd = 1
    _positional = ("FilterSize", "NumFilters")
    _props = conv_props(1)
    _display = conv_display(1)
    _type_name = ("1-D Convolution", "1-D Convolution")
    _formats = formats(1, time_as_space=True)
    _example = "convolution1dLayer(3, 8, Padding='causal')"
    _example_input = ("CBT", (3, 2, 10))


convolution1dLayer = make_constructor(Convolution1DLayer)
