"""Create Simple Deep Learning Network for Classification (MathWorks example), in mlayers.

MATLAB's example trains a small CNN on its 28×28 DigitDataset with ``trainNetwork`` and
scores it with ``classify``.  The data set is not shipped here: ``digit_data`` draws a
synthetic digit-like set instead (seven-segment digits with random position, stroke width,
slant and noise), 10 classes, generated in a fraction of a second.

MATLAB::

    layers = [
        imageInputLayer([28 28 1])
        convolution2dLayer(3,8,'Padding','same')
        batchNormalizationLayer
        reluLayer
        maxPooling2dLayer(2,'Stride',2)
        convolution2dLayer(3,16,'Padding','same')
        batchNormalizationLayer
        reluLayer
        maxPooling2dLayer(2,'Stride',2)
        convolution2dLayer(3,32,'Padding','same')
        batchNormalizationLayer
        reluLayer
        fullyConnectedLayer(10)
        softmaxLayer
        classificationLayer];
    options = trainingOptions('sgdm', 'InitialLearnRate',0.01, 'MaxEpochs',4, ...
        'Shuffle','every-epoch', 'ValidationData',{XValidation,YValidation}, ...
        'ValidationFrequency',30, 'Verbose',false, 'Plots','training-progress');
    net = trainNetwork(XTrain,YTrain,layers,options);
    YPred = classify(net,XValidation);
    accuracy = sum(YPred == YValidation)/numel(YValidation)

Run ``python examples/simple_classification.py`` (``MLAYERS_EXAMPLE_SMALL=1`` for the
small, seconds-long version the tests run).
"""
import os
import time

import numpy as np

import mlayers as ml

SEGMENTS = {0: "abcdef", 1: "bc", 2: "abged", 3: "abgcd", 4: "fgbc", 5: "afgcd",
            6: "afgedc", 7: "abc", 8: "abcdefg", 9: "abcdfg"}


def digit_data(n, size=28, seed=0):
    """``n`` synthetic digit images (``size×size×1×n`` single, values in [0, 1]) and
    their labels (a categorical with categories '0'..'9')."""
    rs = np.random.RandomState(seed)
    X = np.zeros((size, size, 1, n), dtype=np.float32, order="F")
    digits = rs.randint(0, 10, n)
    rows, cols = np.mgrid[0:size, 0:size]
    for i, d in enumerate(digits):
        h = size * rs.uniform(0.5, 0.7)              # digit height
        w = h * rs.uniform(0.45, 0.6)
        top = rs.uniform(0.1, 0.9 * size - h)
        left = rs.uniform(0.15 * size, 0.85 * size - w)
        t = size * rs.uniform(0.06, 0.1)             # stroke width
        slant = rs.uniform(-0.25, 0.25)
        c = cols - slant * (rows - top - h / 2)
        img = np.zeros((size, size))
        mid = top + h / 2
        horiz = {"a": top, "g": mid, "d": top + h}
        vert = {"f": (left, top, mid), "b": (left + w, top, mid),
                "e": (left, mid, top + h), "c": (left + w, mid, top + h)}
        for s in SEGMENTS[int(d)]:
            if s in horiz:
                y = horiz[s]
                on = (np.abs(rows - y) <= t / 2) & (c >= left - t / 2) & (c <= left + w + t / 2)
            else:
                x, y0, y1 = vert[s]
                on = (np.abs(c - x) <= t / 2) & (rows >= y0 - t / 2) & (rows <= y1 + t / 2)
            img[on] = 1.0
        img += rs.normal(0, 0.08, img.shape)
        X[:, :, 0, i] = np.clip(img, 0, 1)
    labels = ml.categorical([str(d) for d in digits])
    return X, labels


def main():
    small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    # small: fewer, smaller images and mini-batches of 50 (the tests run this version)
    size, n_train, n_val, epochs, batch, rate = ((16, 500, 200, 4, 50, 0.05) if small
                                                 else (28, 5000, 1000, 4, 128, 0.01))
    XTrain, YTrain = digit_data(n_train, size, seed=1)
    XValidation, YValidation = digit_data(n_val, size, seed=2)

    layers = [
        ml.imageInputLayer([size, size, 1]),
        ml.convolution2dLayer(3, 8, Padding="same"),
        ml.batchNormalizationLayer(),
        ml.reluLayer(),
        ml.maxPooling2dLayer(2, Stride=2),
        ml.convolution2dLayer(3, 16, Padding="same"),
        ml.batchNormalizationLayer(),
        ml.reluLayer(),
        ml.maxPooling2dLayer(2, Stride=2),
        ml.convolution2dLayer(3, 32, Padding="same"),
        ml.batchNormalizationLayer(),
        ml.reluLayer(),
        ml.fullyConnectedLayer(10),
        ml.softmaxLayer(),
        ml.classificationLayer()]
    options = ml.trainingOptions("sgdm", InitialLearnRate=rate, MaxEpochs=epochs,
                                 MiniBatchSize=batch,
                                 Shuffle="every-epoch",
                                 ValidationData=(XValidation, YValidation),
                                 ValidationFrequency=30, Verbose=not small,
                                 Plots="none" if small else "training-progress")
    print(options)
    ml.rng(0)
    start = time.perf_counter()
    net = ml.trainNetwork(XTrain, YTrain, layers, options)
    seconds = time.perf_counter() - start
    print(net)
    YPred, scores = ml.classify(net, XValidation, nargout=2)
    accuracy = np.sum(YPred == YValidation) / YValidation.size
    print(f"scores output size: {scores.shape[0]}×{scores.shape[1]}")
    print(f"validation accuracy: {100 * accuracy:.2f}% after {seconds:.1f} s of training")
    return accuracy, seconds


if __name__ == "__main__":
    main()
