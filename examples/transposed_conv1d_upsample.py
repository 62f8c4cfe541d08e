"""Up-sample a signal with a 1-D transposed convolution layer.

Port of MATLAB's transposedConv1dLayer documentation example:

    layer = transposedConv1dLayer(11,96,Stride=4)

and of running it on a batch of multichannel signals (format "SCB": samples x channels x
observations).  Set MLAYERS_EXAMPLE_SMALL=1 for a quick run.
"""
import os

import mlayers as ml

small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
num_samples, num_channels, batch = (32, 3, 2) if small else (1024, 8, 16)

# MATLAB: layer = transposedConv1dLayer(11,96,Stride=4)
layer = ml.transposedConv1dLayer(11, 96, Stride=4)
layer.display("layer")

# MATLAB: X = dlarray(rand(numSamples,numChannels,batch),"SCB"); Y = predict(layer,X)
ml.rng(0)
X = ml.dlarray(ml.rand(num_samples, num_channels, batch, "single"), "SCB")
Y = ml.predict(layer, X)                # initializes the Glorot weights from the input
print(f"input  size: {X.shape} ({X.dims})")
print(f"output size: {Y.shape} ({Y.dims})  = Stride*(in-1) + FilterSize = "
      f"{4 * (num_samples - 1) + 11}")

# With Cropping="same" the output is exactly Stride times longer; MATLAB puts the odd
# crop at the end (CroppingSize [3 4] for FilterSize 11, Stride 4).
same = ml.transposedConv1dLayer(11, 96, Stride=4, Cropping="same", Name="up")
Y = same.predict(X)
print(f"'same' output size: {Y.shape}, CroppingSize {same.CroppingSize.tolist()}")
print(layer)                            # learnables are now [11×96×C single]
