"""transposedConv2dLayer (MATLAB class TransposedConvolution2DLayer)."""

__all__ = ["TransposedConvolution2DLayer", "transposedConv2dLayer"]
from .._props import make_constructor
from ._conv_family import TRANSPOSED_DISPLAY, TransposedConvLayer, formats, transposed_props


class TransposedConvolution2DLayer(TransposedConvLayer):
    """2-D transposed convolution layer (MATLAB ``TransposedConvolution2DLayer``)."""

    _constructor = "transposedConv2dLayer"
    _summary = "2-D transposed convolution layer: up-samples SSCB images."
    _nd = 2
    _positional = ("FilterSize", "NumFilters")
    _props = transposed_props(2)
    _display = TRANSPOSED_DISPLAY
    _type_name = ("2-D Transposed Convolution", "Transposed Convolution")
    _formats = formats(2, time_as_space=False)
    _example = "transposedConv2dLayer(4, 8, Stride=2, Cropping='same')"
    _example_input = ("SSCB", (5, 6, 3, 2))


transposedConv2dLayer = make_constructor(TransposedConvolution2DLayer)
