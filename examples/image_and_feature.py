"""Train Network on Image and Feature Data (MathWorks example), in mlayers.

MATLAB's example classifies handwritten digits with a two-input network: the image goes
through a convolution / batch normalization / ReLU block and a fully connected layer, the
digit's clockwise rotation angle comes in through a ``featureInputLayer``, and a
``concatenationLayer`` joins the two before the classifier.  The DigitsData MAT-files are
not shipped here: the images are the synthetic digits of ``simple_classification.py``,
each rotated clockwise by a random angle in [-45, 45] degrees, and the angle is the feature.

MATLAB (R2024a, ``trainnet``)::

    load DigitsDataTrain                      % XTrain, labelsTrain, anglesTrain
    dsX1Train = arrayDatastore(XTrain,IterationDimension=4);
    dsX2Train = arrayDatastore(anglesTrain);
    dsTTrain = arrayDatastore(labelsTrain);
    dsTrain = combine(dsX1Train,dsX2Train,dsTTrain);

    [h,w,numChannels,numObservations] = size(XTrain);
    numFeatures = 1;
    numClasses = numel(categories(labelsTrain));
    imageInputSize = [h w numChannels];
    filterSize = 5;
    numFilters = 16;

    net = dlnetwork;
    layers = [
        imageInputLayer(imageInputSize,Normalization="none")
        convolution2dLayer(filterSize,numFilters)
        batchNormalizationLayer
        reluLayer
        fullyConnectedLayer(50)
        flattenLayer
        concatenationLayer(1,2,Name="cat")
        fullyConnectedLayer(numClasses)
        softmaxLayer];
    net = addLayers(net,layers);
    featInput = featureInputLayer(numFeatures,Name="features");
    net = addLayers(net,featInput);
    net = connectLayers(net,"features","cat/in2");

    options = trainingOptions("sgdm", MaxEpochs=15, InitialLearnRate=0.01, ...
        Plots="training-progress", Metrics="accuracy", Verbose=0);
    net = trainnet(dsTrain,net,"crossentropy",options);

    load DigitsDataTest                       % XTest, labelsTest, anglesTest
    scores = minibatchpredict(net,XTest,anglesTest);
    classNames = categories(labelsTest);
    YTest = scores2label(scores,classNames);
    accuracy = mean(YTest == labelsTest)

Older releases build the same graph with ``lgraph = layerGraph(layers)``,
``addLayers``/``connectLayers``, end it in ``classificationLayer``, train with
``net = trainNetwork(dsTrain,lgraph,options)`` and score with ``classify(net,dsTest)``.

The port is line by line: ``trainnet`` reads the three-column datastore as the network's
two inputs (in ``net.InputNames`` order) and its targets, and ``minibatchpredict(net,
X1, X2)`` scores the test set.

Run ``python examples/image_and_feature.py`` (``MLAYERS_EXAMPLE_SMALL=1`` for the small,
seconds-long version the tests run).
"""
import contextlib
import os
import pathlib
import runpy
import time

import numpy as np

import mlayers as ml

HERE = pathlib.Path(__file__).resolve().parent


def rotated_digit_data(n, size, seed):
    """``size×size×1×n`` synthetic digits rotated clockwise by ``angles`` (``n×1``
    degrees in [-45, 45]), and their labels: MATLAB's DigitsData layout."""
    digit_data = runpy.run_path(str(HERE / "simple_classification.py"))["digit_data"]
    X, labels = digit_data(n, size, seed)
    rs = np.random.RandomState(seed + 100)
    angles = rs.uniform(-45, 45, (n, 1)).astype(np.float32)
    c = (size - 1) / 2
    rows, cols = np.mgrid[0:size, 0:size].astype(np.float64)
    for i in range(n):
        a = np.deg2rad(angles[i, 0])
        # the source pixel of each output pixel (a clockwise rotation on screen, rows down)
        r = c + (rows - c) * np.cos(a) - (cols - c) * np.sin(a)
        q = c + (rows - c) * np.sin(a) + (cols - c) * np.cos(a)
        ri, qi = np.rint(r).astype(int), np.rint(q).astype(int)
        inside = (ri >= 0) & (ri < size) & (qi >= 0) & (qi < size)
        img = np.zeros((size, size), dtype=np.float32)
        img[inside] = X[ri[inside], qi[inside], 0, i]
        X[:, :, 0, i] = img
    return X, labels, angles


def build_network(h, w, numChannels, numFeatures, numClasses, numFilters):
    """MATLAB's R2024a form: an empty dlnetwork, addLayers twice, connectLayers."""
    filterSize = 5
    net = ml.dlnetwork()
    layers = [
        ml.imageInputLayer([h, w, numChannels], Normalization="none"),
        ml.convolution2dLayer(filterSize, numFilters),
        ml.batchNormalizationLayer(),
        ml.reluLayer(),
        ml.fullyConnectedLayer(50),
        ml.flattenLayer(),
        ml.concatenationLayer(1, 2, Name="cat"),
        ml.fullyConnectedLayer(numClasses),
        ml.softmaxLayer()]
    net = ml.addLayers(net, layers)
    featInput = ml.featureInputLayer(numFeatures, Name="features")
    net = ml.addLayers(net, featInput)
    net = ml.connectLayers(net, "features", "cat/in2")
    return net


def main():
    small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    # The small run's tensors are tiny: one kernel thread loses nothing and keeps the run
    # in seconds when another process holds a core (each multi-threaded kernel call then
    # waits for the busy core: measured 50x slower per iteration on this 2-core machine).
    with ml.threads(1) if small else contextlib.nullcontext():
        return run(small)


def run(small):
    # small (what the tests run): 16×16 images, 6 epochs of 3000 images in mini-batches
    # of 64; full size: MathWorks' 28×28 images, 5000 of them, 15 epochs, batches of 128
    size, n_train, n_test, epochs, batch, filters = (
        (16, 3000, 500, 6, 64, 16) if small else (28, 5000, 1000, 15, 128, 16))
    XTrain, labelsTrain, anglesTrain = rotated_digit_data(n_train, size, 1)
    XTest, labelsTest, anglesTest = rotated_digit_data(n_test, size, 2)

    dsX1Train = ml.arrayDatastore(XTrain, IterationDimension=4)
    dsX2Train = ml.arrayDatastore(anglesTrain)
    dsTTrain = ml.arrayDatastore(labelsTrain)
    dsTrain = ml.combine(dsX1Train, dsX2Train, dsTTrain)

    h, w, numChannels, numObservations = XTrain.shape
    numFeatures = 1
    classNames = ml.categories(labelsTrain)
    numClasses = len(classNames)
    ml.rng(0)
    net = build_network(h, w, numChannels, numFeatures, numClasses, filters)
    net.display("net")

    options = ml.trainingOptions("sgdm", MaxEpochs=epochs, InitialLearnRate=0.01,
                                 MiniBatchSize=batch, Metrics="accuracy",
                                 Plots="none" if small else "training-progress",
                                 Verbose=not small)
    start = time.perf_counter()
    net = ml.trainnet(dsTrain, net, "crossentropy", options)
    seconds = time.perf_counter() - start
    print(net)
    ml.analyzeNetwork(net)

    scores = ml.minibatchpredict(net, XTest, anglesTest)
    YTest = ml.scores2label(scores, ml.categories(labelsTest))
    accuracy = np.mean(YTest == labelsTest)
    print(f"scores output size: {scores.shape[0]}×{scores.shape[1]}")
    print(f"test accuracy: {100 * accuracy:.2f}% after {seconds:.1f} s of training")
    return accuracy, seconds


if __name__ == "__main__":
    main()
