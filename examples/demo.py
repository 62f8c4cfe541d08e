"""mlayers in one page: MATLAB's layers, display and numbers from Python.

    python examples/demo.py

The MATLAB lines this ports are quoted above each step.  Set MLAYERS_EXAMPLE_SMALL=1 for
a quick run.
"""
import os
import time

import numpy as np

import mlayers as ml
from mlayers import reference

small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
ml.show_config()
print()

# MATLAB: layer = transposedConv1dLayer(11,96,Stride=4,Name="up1")
layer = ml.transposedConv1dLayer(11, 96, Stride=4, Name="up1")
layer.display("layer")

# MATLAB: rng(0); X = dlarray(rand(1024,64,16,"single"),"SCB"); Y = predict(layer,X);
ml.rng(0)
n_samples, n_channels, batch = (64, 8, 2) if small else (1024, 64, 16)
X = ml.dlarray(ml.rand(n_samples, n_channels, batch, "single"), "SCB")
t = time.perf_counter()
Y = ml.predict(layer, X)              # Glorot weights drawn from MATLAB's default stream
print(f"output size: {Y.shape} ({Y.dims}), single stays {Y.dtype}, "
      f"{(time.perf_counter() - t) * 1e3:.1f} ms (first call)")
layer.display("layer")                # NumChannels and the learnables are now known
t = time.perf_counter()
reps = 3 if small else 5
for _ in range(reps):
    ml.predict(layer, X)
print(f"transposed convolution predict: {(time.perf_counter() - t) / reps * 1e3:.2f} ms "
      f"per call on {ml.get_num_threads()} threads")

# The same numbers from the independent scipy.sparse convolution matrix (float64), on a
# slice of X: the matrix grows with the square of the input (at full size it took 11 s
# and 3.9 GB to build), the check does not need the whole batch.
Xs = X[:64, :, :2]
expected = reference.conv_transpose(ml.extractdata(Xs), layer.Weights,
                                    layer.Bias.ravel(order="F"), stride=4)
err = np.abs(ml.extractdata(ml.predict(layer, Xs)) - expected).max() / np.abs(expected).max()
print(f"max relative difference from the sparse reference (64 samples, 2 observations): "
      f"{err:.1e}")

# MATLAB: layer = groupedConvolution2dLayer(3,1,'channel-wise','Padding','same','Stride',2)
cw = ml.groupedConvolution2dLayer(3, 1, "channel-wise", "Padding", "same", "Stride", 2,
                                  Name="cwconv1")
h = 16 if small else 56
Xi = ml.dlarray(ml.rand(h, h, 32, 2 if small else 8, "single"), "SSCB")
Yi = cw.predict(Xi)
cw.display("cw")
print(f"output size: {Yi.shape} ({Yi.dims})")

# Weights arrive from MATLAB (scipy.io.loadmat) as Fortran-ordered arrays in MATLAB's
# dimension order; they are used as they are.
W = np.asfortranarray(np.random.default_rng(0).standard_normal((3, 3, 1, 1, 32)),
                      dtype=np.float32)
cw.Weights = W
reps = 5 if small else 50
t = time.perf_counter()
for _ in range(reps):
    cw.predict(Xi)
print(f"channel-wise predict: {(time.perf_counter() - t) / reps * 1e3:.2f} ms per call "
      f"on {ml.get_num_threads()} threads")

# A layer array, as MATLAB displays it.
print(ml.layer_array([
    ml.convolution2dLayer(3, 16, Padding="same", Name="conv1"),
    ml.groupedConvolution2dLayer(3, 1, "channel-wise", Padding="same", Name="cwconv1"),
    ml.transposedConv2dLayer(4, 8, Stride=2, Cropping=1, Name="up1"),
]))
