"""transposedConv3dLayer (MATLAB R2019a+, class TransposedConvolution3DLayer)."""

__all__ = ["TransposedConvolution3DLayer", "transposedConv3dLayer"]
from .._props import make_constructor
from ._conv_family import TRANSPOSED_DISPLAY, TransposedConvLayer, formats, transposed_props


class TransposedConvolution3DLayer(TransposedConvLayer):
    """3-D transposed convolution layer (MATLAB ``TransposedConvolution3DLayer``)."""

    _constructor = "transposedConv3dLayer"
    _summary = "3-D transposed convolution layer: up-samples SSSCB volumes."
    _nd = 3
    _positional = ("FilterSize", "NumFilters")
    _props = transposed_props(3)
    _display = TRANSPOSED_DISPLAY
    _type_name = ("3-D Transposed Convolution", "Transposed Convolution")
    _formats = formats(3, time_as_space=False)
    _example = "transposedConv3dLayer(3, 4, Stride=[2, 2, 1])"
    _example_input = ("SSSCB", (3, 4, 2, 2, 1))


transposedConv3dLayer = make_constructor(TransposedConvolution3DLayer)
