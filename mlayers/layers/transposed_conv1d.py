"""transposedConv1dLayer (MATLAB R2022a+, class TransposedConvolution1DLayer)."""

__all__ = ["TransposedConvolution1DLayer", "transposedConv1dLayer"]
from .._props import make_constructor
from ._conv_family import TRANSPOSED_DISPLAY, TransposedConvLayer, formats, transposed_props


class TransposedConvolution1DLayer(TransposedConvLayer):
    """1-D transposed convolution layer (MATLAB ``TransposedConvolution1DLayer``)."""

    _constructor = "transposedConv1dLayer"
    _summary = "1-D transposed convolution layer: up-samples SCB/CBT data."
    _nd = 1
    _positional = ("FilterSize", "NumFilters")
    _props = transposed_props(1)
    _display = TRANSPOSED_DISPLAY
    _type_name = ("1-D Transposed Convolution", "1-D Transposed Convolution")
    _formats = formats(1, time_as_space=True)
    _example = "transposedConv1dLayer(11, 96, Stride=4)"
    _example_input = ("SCB", (8, 3, 2))


transposedConv1dLayer = make_constructor(TransposedConvolution1DLayer)
