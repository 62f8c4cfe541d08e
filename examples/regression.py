"""Train Convolutional Neural Network for Regression (MathWorks example), in mlayers.

MATLAB's example predicts the rotation angle of handwritten digits with a CNN that ends
in ``regressionLayer``.  Here the images are synthetic: a bar through the image centre,
rotated by an angle in [-45, 45] degrees (random length, width, offset and noise), and
the network predicts the angle.

MATLAB::

    layers = [
        imageInputLayer([28 28 1])
        convolution2dLayer(3,8,'Padding','same')
        batchNormalizationLayer
        reluLayer
        averagePooling2dLayer(2,'Stride',2)
        convolution2dLayer(3,16,'Padding','same')
        batchNormalizationLayer
        reluLayer
        averagePooling2dLayer(2,'Stride',2)
        convolution2dLayer(3,32,'Padding','same')
        batchNormalizationLayer
        reluLayer
        dropoutLayer(0.2)
        fullyConnectedLayer(1)
        regressionLayer];
    options = trainingOptions('sgdm', 'MiniBatchSize',128, 'MaxEpochs',30, ...
        'InitialLearnRate',1e-3, 'LearnRateSchedule','piecewise', ...
        'LearnRateDropFactor',0.1, 'LearnRateDropPeriod',20, 'Shuffle','every-epoch', ...
        'ValidationData',{XValidation,YValidation}, 'Verbose',false);
    net = trainNetwork(XTrain,YTrain,layers,options);
    YPred = predict(net,XValidation);
    rmse = sqrt(mean((YValidation - YPred).^2))
"""
import os
import time

import numpy as np

import mlayers as ml


def bar_data(n, size=28, seed=0):
    """``size×size×1×n`` images of rotated bars and their angles (``n×1``, degrees)."""
    rs = np.random.RandomState(seed)
    angles = rs.uniform(-45, 45, n)
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    X = np.zeros((size, size, 1, n), dtype=np.float32, order="F")
    for i, a in enumerate(np.deg2rad(angles)):
        cy, cx = size / 2 + rs.uniform(-1.5, 1.5, 2)
        u = (cols - cx) * np.cos(a) - (rows - cy) * np.sin(a)     # along the bar
        v = (cols - cx) * np.sin(a) + (rows - cy) * np.cos(a)     # across it
        half = size * rs.uniform(0.3, 0.45)
        width = size * rs.uniform(0.05, 0.1)
        img = ((np.abs(u) <= half) & (np.abs(v) <= width)).astype(np.float64)
        X[:, :, 0, i] = np.clip(img + rs.normal(0, 0.05, img.shape), 0, 1)
    return X, angles.reshape(-1, 1).astype(np.float32)


def main():
    small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    # small (what the tests run): 8 epochs of 300 images with Adam, which converges on
    # raw angles in that budget (SGDM's result there depends on the random stream);
    # full size: the MathWorks settings
    solver, size, n_train, n_val, epochs, batch, rate, drop = (
        ("adam", 16, 300, 100, 8, 30, 0.01, 6) if small else
        ("sgdm", 28, 5000, 500, 30, 128, 1e-3, 20))
    XTrain, YTrain = bar_data(n_train, size, 1)
    XValidation, YValidation = bar_data(n_val, size, 2)
    layers = [
        ml.imageInputLayer([size, size, 1]),
        ml.convolution2dLayer(3, 8, Padding="same"),
        ml.batchNormalizationLayer(),
        ml.reluLayer(),
        ml.averagePooling2dLayer(2, Stride=2),
        ml.convolution2dLayer(3, 16, Padding="same"),
        ml.batchNormalizationLayer(),
        ml.reluLayer(),
        ml.averagePooling2dLayer(2, Stride=2),
        ml.convolution2dLayer(3, 32, Padding="same"),
        ml.batchNormalizationLayer(),
        ml.reluLayer(),
        ml.dropoutLayer(0.2),
        ml.fullyConnectedLayer(1),
        ml.regressionLayer()]
    options = ml.trainingOptions(solver, MiniBatchSize=batch, MaxEpochs=epochs,
                                 InitialLearnRate=rate, LearnRateSchedule="piecewise",
                                 LearnRateDropFactor=0.1, LearnRateDropPeriod=drop,
                                 Shuffle="every-epoch",
                                 ValidationData=(XValidation, YValidation),
                                 Verbose=not small)
    print(options)
    ml.rng(0)
    start = time.perf_counter()
    net = ml.trainNetwork(XTrain, YTrain, layers, options)
    seconds = time.perf_counter() - start
    print(net)
    YPred = ml.predict(net, XValidation)
    rmse = float(np.sqrt(np.mean((YValidation - YPred) ** 2)))
    baseline = float(np.sqrt(np.mean((YValidation - YTrain.mean()) ** 2)))
    print(f"predictions output size: {YPred.shape[0]}×{YPred.shape[1]}")
    print(f"validation RMSE: {rmse:.2f} degrees (predicting the mean: {baseline:.2f}) after "
          f"{seconds:.1f} s of training")
    return rmse, baseline


if __name__ == "__main__":
    main()
