"""convolution2dLayer (MATLAB class Convolution2DLayer)."""

__all__ = ["Convolution2DLayer", "convolution2dLayer"]
from .._props import make_constructor
from ._conv_family import ConvLayer, conv_display, conv_props, formats


class Convolution2DLayer(ConvLayer):
    """2-D convolution layer (MATLAB ``Convolution2DLayer``)."""

    _constructor = "convolution2dLayer"
    _summary = "2-D convolution layer over SSCB images (or S and T of SCBT sequences)."
    _nd = 2
    _positional = ("FilterSize", "NumFilters")
    _props = conv_props(2)
    _display = conv_display(2)
    _type_name = ("2-D Convolution", "Convolution")
    _formats = formats(2, time_as_space=True)
    _example = "convolution2dLayer(11, 96, Stride=4, Padding=1)"
    _example_input = ("SSCB", (20, 19, 3, 2))


convolution2dLayer = make_constructor(Convolution2DLayer)
