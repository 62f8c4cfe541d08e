"""Train Network Using Custom Training Loop (MathWorks example), in mlayers.

A ``dlnetwork``, a ``minibatchqueue``, ``dlfeval`` of a model-loss function that calls
``forward``, ``crossentropy`` and ``dlgradient``, and ``sgdmupdate`` with a time-based
decaying learning rate, on synthetic digit-like images (the MathWorks example uses its
DigitDataset; see ``simple_classification.py`` for the generator).

MATLAB::

    net = dlnetwork(layers);
    mbq = minibatchqueue(ds, MiniBatchSize=miniBatchSize, ...
        MiniBatchFcn=@preprocessMiniBatch, MiniBatchFormat=["SSCB" ""]);
    velocity = [];
    iteration = 0;
    for epoch = 1:numEpochs
        shuffle(mbq);
        while hasdata(mbq)
            iteration = iteration + 1;
            [X,T] = next(mbq);
            [loss,gradients,state] = dlfeval(@modelLoss,net,X,T);
            net.State = state;
            learnRate = initialLearnRate/(1 + decay*iteration);
            [net,velocity] = sgdmupdate(net,gradients,velocity,learnRate,momentum);
        end
    end

    function [loss,gradients,state] = modelLoss(net,X,T)
        [Y,state] = forward(net,X);
        loss = crossentropy(Y,T);
        gradients = dlgradient(loss,net.Learnables);
    end

    function [X,T] = preprocessMiniBatch(dataX,dataT)
        X = cat(4,dataX{:});
        T = cat(2,dataT{:});
        T = onehotencode(T,1);
    end
"""
import os
import pathlib
import runpy
import time

import numpy as np

import mlayers as ml

HERE = pathlib.Path(__file__).resolve().parent


def digit_data(n, size, seed):
    return runpy.run_path(str(HERE / "simple_classification.py"))["digit_data"](n, size, seed)


def model_loss(net, X, T):
    Y, state = ml.forward(net, X, nargout=2)
    loss = ml.crossentropy(Y, T)
    gradients = ml.dlgradient(loss, net.Learnables)
    return loss, gradients, state


def make_preprocess(classes):
    def preprocessMiniBatch(dataX, dataT):
        X = np.stack(dataX, axis=3)                       # cat(4, dataX{:})
        T = ml.categorical(np.concatenate([np.asarray(t).reshape(1, -1) for t in dataT],
                                          axis=1), classes)          # cat(2, dataT{:})
        T = ml.onehotencode(T, 1)
        return X, T
    return preprocessMiniBatch


def make_layers(size, filters):
    return [ml.imageInputLayer([size, size, 1], Normalization="none"),
            ml.convolution2dLayer(5, filters, Padding="same"),
            ml.batchNormalizationLayer(),
            ml.reluLayer(),
            ml.convolution2dLayer(3, filters, Padding="same"),
            ml.batchNormalizationLayer(),
            ml.reluLayer(),
            ml.fullyConnectedLayer(10),
            ml.softmaxLayer()]


def train(XTrain, YTrain, layers, numEpochs, miniBatchSize, initialLearnRate=0.01,
          decay=0.01, momentum=0.9, verbose=True):
    """The custom loop; returns the network and the loss of every iteration."""
    net = ml.dlnetwork(layers)
    classes = ml.categories(YTrain)
    ds = ml.combine(ml.arrayDatastore(XTrain, IterationDimension=4),
                    ml.arrayDatastore(YTrain))
    mbq = ml.minibatchqueue(ds, MiniBatchSize=miniBatchSize,
                            MiniBatchFcn=make_preprocess(classes),
                            MiniBatchFormat=["SSCB", ""])
    velocity = []
    iteration = 0
    losses = []
    for epoch in range(1, numEpochs + 1):
        ml.shuffle(mbq)
        while ml.hasdata(mbq):
            iteration += 1
            X, T = next(mbq)
            loss, gradients, state = ml.dlfeval(model_loss, net, X, T)
            net.State = state
            learnRate = initialLearnRate / (1 + decay * iteration)
            net, velocity = ml.sgdmupdate(net, gradients, velocity, learnRate, momentum)
            losses.append(float(ml.extractdata(loss)))
        if verbose:
            print(f"epoch {epoch}: iteration {iteration}, loss {losses[-1]:.4f}")
    return net, losses


def main():
    small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    size, n_train, n_test, epochs, batch, filters = ((16, 400, 200, 3, 40, 8) if small
                                                     else (28, 5000, 1000, 10, 128, 20))
    XTrain, YTrain = digit_data(n_train, size, 1)
    XTest, YTest = digit_data(n_test, size, 2)
    ml.rng(0)
    start = time.perf_counter()
    net, losses = train(XTrain, YTrain, make_layers(size, filters), epochs, batch)
    seconds = time.perf_counter() - start
    print(net)
    # modelPredictions: predict in mini-batches, onehotdecode to labels
    Y = ml.predict(net, ml.dlarray(XTest, "SSCB"))
    YPred = ml.onehotdecode(Y, ml.categories(YTrain), 1)
    print(f"scores output size: {Y.shape[0]}×{Y.shape[1]}")
    accuracy = np.mean(np.asarray(YPred).reshape(-1) == np.asarray(YTest).reshape(-1))
    print(f"test accuracy: {100 * accuracy:.2f}% after {seconds:.1f} s "
          f"({len(losses)} iterations, final loss {losses[-1]:.4f})")
    return accuracy, losses


if __name__ == "__main__":
    main()
