"""A network with channel-wise separable convolution, from input to class scores.

Port of the network in MATLAB's groupedConvolution2dLayer documentation ("Create Layers
for Channel-Wise Separable Convolution"; layer list reconstructed from the
documentation, see docs/networks.md):

    layers = [
        imageInputLayer([227 227 3])

        convolution2dLayer(3,32,'Padding','same')
        batchNormalizationLayer
        reluLayer

        groupedConvolution2dLayer(3,1,'channel-wise','Stride',2,'Padding','same')
        batchNormalizationLayer
        reluLayer
        convolution2dLayer(1,16,'Padding','same')
        batchNormalizationLayer
        reluLayer

        maxPooling2dLayer(2,'Stride',2)

        fullyConnectedLayer(5)
        softmaxLayer
        classificationLayer];

    net = dlnetwork(layers(1:end-1));   % MATLAB's dlnetwork takes no output layer
    Y = predict(net, dlarray(rand(227,227,3,8,'single'),'SSCB'));

``ml.dlnetwork`` drops the trailing classificationLayer itself.  The input layer
normalizes with 'zerocenter'; its Mean, computed by MATLAB while training, is given
here (a per-channel mean of the data).  Set MLAYERS_EXAMPLE_SMALL=1 for a quick run.
"""
import os

import numpy as np

import mlayers as ml

small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
size, batch = (24, 2) if small else (227, 8)

ml.rng(0)
data = ml.rand(size, size, 3, batch, "single")
mean = data.mean(axis=(0, 1, 3), keepdims=True)[..., 0]     # 1×1×3, as MATLAB stores it

layers = ml.layer_array([
    ml.imageInputLayer([size, size, 3], Mean=mean),
    ml.convolution2dLayer(3, 32, "Padding", "same"),
    ml.batchNormalizationLayer(),
    ml.reluLayer(),
    ml.groupedConvolution2dLayer(3, 1, "channel-wise", "Stride", 2, "Padding", "same"),
    ml.batchNormalizationLayer(),
    ml.reluLayer(),
    ml.convolution2dLayer(1, 16, "Padding", "same"),
    ml.batchNormalizationLayer(),
    ml.reluLayer(),
    ml.maxPooling2dLayer(2, "Stride", 2),
    ml.fullyConnectedLayer(5),
    ml.softmaxLayer(),
    ml.classificationLayer(),
])
layers.display("layers")
layers[0].display("inputLayer")

net = ml.dlnetwork(layers)
net.display("net")
ml.analyzeNetwork(net)

Y = ml.predict(net, ml.dlarray(data, "SSCB"))
print(f"output size: {Y.shape} ({Y.dims}); class scores sum to "
      f"{np.round(ml.extractdata(Y).sum(axis=0), 5)}")
