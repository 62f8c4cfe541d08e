"""A grouped convolution layer: 3 groups of 10 filters of size 11x11.

Port of MATLAB's groupedConvolution2dLayer documentation example:

    layer = groupedConvolution2dLayer(11,10,3,'Name','gconv1')

The input channel count must be a multiple of the number of groups; each group of
NumFiltersPerGroup filters sees NumChannelsPerGroup consecutive channels.
Set MLAYERS_EXAMPLE_SMALL=1 for a quick run.
"""
import os

import mlayers as ml

small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
height, width, channels, batch = (24, 24, 6, 2) if small else (227, 227, 6, 8)

layer = ml.groupedConvolution2dLayer(11, 10, 3, "Name", "gconv1")
layer.display("layer")

ml.rng(0)
X = ml.dlarray(ml.rand(height, width, channels, batch, "single"), "SSCB")
Y = ml.predict(layer, X)
print(f"input  size: {X.shape} ({X.dims})")
print(f"output size: {Y.shape}: NumGroups*NumFiltersPerGroup = "
      f"{layer.NumGroups * layer.NumFiltersPerGroup} channels")
print(f"NumChannelsPerGroup inferred from the input: {layer.NumChannelsPerGroup}")
print(ml.layer_array([layer]))
