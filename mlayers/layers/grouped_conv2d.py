"""groupedConvolution2dLayer (MATLAB class GroupedConvolution2DLayer)."""

__all__ = ["GroupedConvolution2DLayer", "groupedConvolution2dLayer"]
from .._props import make_constructor
from ._conv_family import GROUPED_DISPLAY, GroupedConvLayer, formats, grouped_props


class GroupedConvolution2DLayer(GroupedConvLayer):
    """2-D grouped (or channel-wise) convolution layer (MATLAB ``GroupedConvolution2DLayer``)."""

    _constructor = "groupedConvolution2dLayer"
    _summary = ("2-D grouped convolution layer: numGroups groups of numFiltersPerGroup "
                "filters, or 'channel-wise' (depth-wise) convolution.")
    _nd = 2
    _positional = ("FilterSize", "NumFiltersPerGroup", "NumGroups")
    _props = grouped_props()
    _display = GROUPED_DISPLAY
    _type_name = ("2-D Grouped Convolution", "Grouped Convolution")
    _formats = formats(2, time_as_space=False)
    _example = "groupedConvolution2dLayer(3, 2, 2, Padding='same')"
    _example_input = ("SSCB", (6, 5, 4, 2))


groupedConvolution2dLayer = make_constructor(GroupedConvolution2DLayer)
