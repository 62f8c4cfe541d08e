"""A channel-wise separable convolution block: convolution + batch normalization + ReLU.

Port of the block in MATLAB's groupedConvolution2dLayer documentation ("Create Layers
for Channel-Wise Separable Convolution"): a channel-wise (depth-wise) 3x3 convolution
with stride 2 and a point-wise 1x1 convolution with 16 filters, each followed by batch
normalization and ReLU (layer list reconstructed from the documentation, see docs/networks.md):

    layers = [
        groupedConvolution2dLayer(3,1,'channel-wise','Stride',2,'Padding','same')
        batchNormalizationLayer
        reluLayer
        convolution2dLayer(1,16,'Padding','same')
        batchNormalizationLayer
        reluLayer];
    net = dlnetwork(layers, X);          % no input layer: an example input fixes the sizes
    Y = predict(net, X);

Set MLAYERS_EXAMPLE_SMALL=1 for a quick run.
"""
import os

import mlayers as ml

small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
height, width, channels, batch = (16, 16, 3, 2) if small else (227, 227, 3, 8)

layers = ml.layer_array([
    ml.groupedConvolution2dLayer(3, 1, "channel-wise", "Stride", 2, "Padding", "same"),
    ml.batchNormalizationLayer(),
    ml.reluLayer(),
    ml.convolution2dLayer(1, 16, "Padding", "same"),
    ml.batchNormalizationLayer(),
    ml.reluLayer(),
])
layers.display("layers")
layers[1].display("bnLayer")                 # before the network infers NumChannels

ml.rng(0)
X = ml.dlarray(ml.rand(height, width, channels, batch, "single"), "SSCB")
net = ml.dlnetwork(layers, X)                # copies, names and initializes the layers
net.display("net")
print(net.Layers)
print(net.Learnables)

Y = ml.predict(net, X)
print(f"input  size: {X.shape} ({X.dims})")
print(f"output size: {Y.shape} ({Y.dims}): ceil({height}/2) x ceil({width}/2) x 16 "
      f"channels x {batch} observations")
