"""convolution3dLayer (MATLAB class Convolution3DLayer)."""

__all__ = ["Convolution3DLayer", "convolution3dLayer"]
from .._props import make_constructor
from ._conv_family import ConvLayer, conv_display, conv_props, formats


class Convolution3DLayer(ConvLayer):
    """3-D convolution layer (MATLAB ``Convolution3DLayer``)."""

    _constructor = "convolution3dLayer"
    _summary = "3-D convolution layer over SSSCB volumes (or S, S and T of SSCBT)."
    _nd = 3
    _positional = ("FilterSize", "NumFilters")
    _props = conv_props(3)
    _display = conv_display(3)
    _type_name = ("3-D Convolution", "3-D Convolution")
    _formats = formats(3, time_as_space=True)
    _example = "convolution3dLayer(3, 4, Padding='same')"
    _example_input = ("SSSCB", (5, 4, 3, 2, 2))


convolution3dLayer = make_constructor(Convolution3DLayer)
