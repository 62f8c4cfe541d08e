"""A 2-D convolution layer like AlexNet's first layer, and the same computation with dlconv.

Port of MATLAB's convolution2dLayer documentation example:

    layer = convolution2dLayer(11,96,'Stride',4,'Padding',1)

Set MLAYERS_EXAMPLE_SMALL=1 for a quick run.
"""
import os

import numpy as np

import mlayers as ml

small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
size, batch = (35, 2) if small else (227, 8)

layer = ml.convolution2dLayer(11, 96, "Stride", 4, "Padding", 1, Name="conv1")
layer.display("layer")

ml.rng(0)
X = ml.dlarray(ml.rand(size, size, 3, batch, "single"), "SSCB")
Y = ml.predict(layer, X)
print(f"input  size: {X.shape} ({X.dims})")
print(f"output size: {Y.shape}: floor(({size} + 2 - 11)/4) + 1 = {(size + 2 - 11) // 4 + 1}")

# The functional form with the layer's own learnables gives the same numbers.
Y2 = ml.dlconv(X, layer.Weights, layer.Bias, Stride=4, Padding=1)
print(f"dlconv agrees with the layer: {np.array_equal(Y.data, Y2.data)}")

# 'same' padding: the output is ceil(in/Stride); an odd total puts the extra at the end.
same = ml.convolution2dLayer(11, 96, Stride=4, Padding="same")
Y3 = same.predict(X)
print(f"'same' output size: {Y3.shape}, PaddingSize {same.PaddingSize.tolist()}")
