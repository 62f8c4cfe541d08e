"""A channel-wise (depth-wise) separable convolution block.

Port of MATLAB's groupedConvolution2dLayer documentation example:

    cwlayer = groupedConvolution2dLayer(11,10,'channel-wise','Name','cwconv1')

followed by a 1x1 convolution that mixes the channels (the point-wise half of a
separable convolution).  Set MLAYERS_EXAMPLE_SMALL=1 for a quick run.
"""
import os

import mlayers as ml

small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
height, width, channels, batch = (20, 20, 3, 2) if small else (227, 227, 3, 4)

cwlayer = ml.groupedConvolution2dLayer(11, 10, "channel-wise", "Name", "cwconv1")
cwlayer.display("cwlayer")
pwlayer = ml.convolution2dLayer(1, 16, Name="pwconv1")

ml.rng(0)
X = ml.dlarray(ml.rand(height, width, channels, batch, "single"), "SSCB")
Y = ml.predict(cwlayer, X)
print(f"channel-wise output size: {Y.shape}  (10 filters per channel x {channels} channels)")
print(f"NumGroups is now {cwlayer.NumGroups}, NumChannelsPerGroup {cwlayer.NumChannelsPerGroup}")
Z = ml.predict(pwlayer, Y)
print(f"point-wise output size:   {Z.shape}")
print(ml.layer_array([cwlayer, pwlayer]))
