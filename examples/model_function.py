"""Train Network Using Model Function (MathWorks example), in mlayers.

The model is not a ``dlnetwork`` but a function of a struct (here a nested dict) of
learnable dlarrays, ``parameters["conv1"]["Weights"]``, ..., with the batch-normalization
running statistics in a second struct, ``state``.  ``modelLoss`` calls the model in
training mode and ``dlgradient(loss, parameters)`` returns a struct of gradients of the
same shape, which ``adamupdate`` applies.  Synthetic digit-like images stand in for the
DigitsData set (see ``simple_classification.py`` for the generator).

Port notes: the initializers use ``math.sqrt``: a NumPy
float64 scalar times a single array is double in NumPy 2, where MATLAB's ``bound*Z`` stays
single (and ``dlconv``/``fullyconnect``/``batchnorm`` compute in double when any operand is).

MATLAB::

    filterSize = [5 5]; numChannels = 1; numFilters = 16;
    sz = [filterSize numChannels numFilters];
    numOut = prod(filterSize) * numFilters;
    numIn = prod(filterSize) * numFilters;
    parameters.conv1.Weights = initializeGlorot(sz,numOut,numIn);
    parameters.conv1.Bias = initializeZeros([numFilters 1]);
    parameters.batchnorm1.Offset = initializeZeros([numFilters 1]);
    parameters.batchnorm1.Scale = initializeOnes([numFilters 1]);
    state.batchnorm1.TrainedMean = initializeZeros([numFilters 1]);
    state.batchnorm1.TrainedVariance = initializeOnes([numFilters 1]);
    % ... conv2/batchnorm2 (3x3, 32), conv3/batchnorm3 (3x3, 32),
    %     convSkip/batchnormSkip (1x1, 32), fc (numClasses x 14*14*32)

    mbq = minibatchqueue(dsTrain, MiniBatchSize=miniBatchSize, ...
        MiniBatchFcn=@preprocessMiniBatch, MiniBatchFormat=["SSCB" ""]);
    trailingAvg = []; trailingAvgSq = [];
    iteration = 0;
    for epoch = 1:numEpochs
        shuffle(mbq);
        while hasdata(mbq)
            iteration = iteration + 1;
            [X,T] = next(mbq);
            [loss,gradients,state] = dlfeval(@modelLoss,parameters,X,T,state);
            [parameters,trailingAvg,trailingAvgSq] = adamupdate(parameters,gradients, ...
                trailingAvg,trailingAvgSq,iteration);
        end
    end
    YTest = modelPredictions(parameters,state,mbqTest,classNames);
    accuracy = mean(YTest == TTest)

    function [Y,state] = model(parameters,X,doTraining,state)
        Y = dlconv(X,parameters.conv1.Weights,parameters.conv1.Bias,Padding="same");
        if doTraining
            [Y,trainedMean,trainedVariance] = batchnorm(Y,offset,scale,trainedMean,trainedVariance);
            state.batchnorm1.TrainedMean = trainedMean;  % ...
        else
            Y = batchnorm(Y,offset,scale,trainedMean,trainedVariance);
        end
        Y = relu(Y);
        % ... main branch conv2 (Stride=2) / conv3, skip branch convSkip (Stride=2)
        Y = YSkip + YnoSkip;  Y = relu(Y);
        Y = fullyconnect(Y,parameters.fc.Weights,parameters.fc.Bias);
        Y = softmax(Y);
    end

    function [loss,gradients,state] = modelLoss(parameters,X,T,state)
        doTraining = true;
        [Y,state] = model(parameters,X,doTraining,state);
        loss = crossentropy(Y,T);
        gradients = dlgradient(loss,parameters);
    end

    function weights = initializeGlorot(sz,numOut,numIn,className)   % className = 'single'
        Z = 2*rand(sz,className) - 1;
        bound = sqrt(6 / (numIn + numOut));
        weights = dlarray(bound * Z);
    end
    function weights = initializeHe(sz,numIn,className)
        weights = dlarray(randn(sz,className) * sqrt(2/numIn));
    end
    % initializeZeros / initializeOnes: dlarray(zeros(sz,className)) / dlarray(ones(...))

Run ``python examples/model_function.py`` (``MLAYERS_EXAMPLE_SMALL=1`` for the small,
seconds-long version the tests run).
"""
import math
import os
import pathlib
import runpy
import time

import numpy as np

import mlayers as ml

HERE = pathlib.Path(__file__).resolve().parent


def digit_data(n, size, seed):
    return runpy.run_path(str(HERE / "simple_classification.py"))["digit_data"](n, size, seed)


# --- initializers (MathWorks "Initialize Learnable Parameters for Model Function") ---------
# math.sqrt, not np.sqrt: a NumPy float64 scalar times a single array is double in NumPy 2,
# where MATLAB's bound*Z stays single.

def initializeGlorot(sz, numOut, numIn, className="single"):
    Z = 2 * ml.rand(sz, className) - 1
    bound = math.sqrt(6 / (numIn + numOut))
    weights = bound * Z
    return ml.dlarray(weights)


def initializeHe(sz, numIn, className="single"):
    weights = ml.randn(sz, className) * math.sqrt(2 / numIn)
    return ml.dlarray(weights)


def initializeZeros(sz, className="single"):
    return ml.dlarray(np.zeros(sz, dtype=className, order="F"))     # zeros(sz,className)


def initializeOnes(sz, className="single"):
    return ml.dlarray(np.ones(sz, dtype=className, order="F"))      # ones(sz,className)


# --- parameters and state: parameters.conv1.Weights -> parameters["conv1"]["Weights"] ---------

def initialize_model(inputSize, numClasses, numFilters1, numFilters2, weightsInit="glorot"):
    parameters, state = {}, {}

    def conv_and_batchnorm(conv, bn, filterSize, numChannels, numFilters):
        sz = [*filterSize, numChannels, numFilters]
        numOut = math.prod(filterSize) * numFilters
        numIn = math.prod(filterSize) * numFilters
        weights = (initializeGlorot(sz, numOut, numIn) if weightsInit == "glorot"
                   else initializeHe(sz, math.prod(filterSize) * numChannels))
        parameters[conv] = {"Weights": weights, "Bias": initializeZeros([numFilters, 1])}
        parameters[bn] = {"Offset": initializeZeros([numFilters, 1]),
                          "Scale": initializeOnes([numFilters, 1])}
        state[bn] = {"TrainedMean": initializeZeros([numFilters, 1]),
                     "TrainedVariance": initializeOnes([numFilters, 1])}

    conv_and_batchnorm("conv1", "batchnorm1", [5, 5], 1, numFilters1)
    conv_and_batchnorm("conv2", "batchnorm2", [3, 3], numFilters1, numFilters2)
    conv_and_batchnorm("conv3", "batchnorm3", [3, 3], numFilters2, numFilters2)
    conv_and_batchnorm("convSkip", "batchnormSkip", [1, 1], numFilters1, numFilters2)
    outputSize = math.ceil(inputSize / 2)          # after the stride-2 convolutions
    numIn = outputSize * outputSize * numFilters2
    parameters["fc"] = {"Weights": initializeGlorot([numClasses, numIn], numClasses, numIn),
                        "Bias": initializeZeros([numClasses, 1])}
    return parameters, state


def display_struct(name, s, indent=4):
    """MATLAB's display of a struct (nested structs as [1×1 struct])."""
    def value(v):
        if isinstance(v, dict):
            return "[1×1 struct]"
        return f"[{'×'.join(map(str, v.shape))} {type(v).__name__}]"
    width = max(len(k) for k in s) + indent
    print(f"{name} = \n\n  struct with fields:\n")
    for k, v in s.items():
        print(f"{k:>{width}}: {value(v)}")
    print()


# --- the model, the loss, the predictions ----------------------------------------------------

def batchnorm_with_state(Y, parameters, state, name, doTraining):
    offset = parameters[name]["Offset"]
    scale = parameters[name]["Scale"]
    trainedMean = state[name]["TrainedMean"]
    trainedVariance = state[name]["TrainedVariance"]
    if doTraining:
        Y, trainedMean, trainedVariance = ml.batchnorm(Y, offset, scale, trainedMean,
                                                       trainedVariance, nargout=3)
        # Update state (dlfeval hands the function copies of its containers, so this
        # does not change the caller's dict: MATLAB's value semantics)
        state[name]["TrainedMean"] = trainedMean
        state[name]["TrainedVariance"] = trainedVariance
    else:
        Y = ml.batchnorm(Y, offset, scale, trainedMean, trainedVariance)
    return Y


def model(parameters, X, doTraining, state):
    # Convolution, batch normalization, ReLU - conv1, batchnorm1, relu1
    weights = parameters["conv1"]["Weights"]
    bias = parameters["conv1"]["Bias"]
    Y = ml.dlconv(X, weights, bias, Padding="same")
    Y = batchnorm_with_state(Y, parameters, state, "batchnorm1", doTraining)
    Y = ml.relu(Y)

    # Main branch - conv2, batchnorm2, relu2, conv3, batchnorm3
    weights = parameters["conv2"]["Weights"]
    bias = parameters["conv2"]["Bias"]
    YnoSkip = ml.dlconv(Y, weights, bias, Padding="same", Stride=2)
    YnoSkip = batchnorm_with_state(YnoSkip, parameters, state, "batchnorm2", doTraining)
    YnoSkip = ml.relu(YnoSkip)
    weights = parameters["conv3"]["Weights"]
    bias = parameters["conv3"]["Bias"]
    YnoSkip = ml.dlconv(YnoSkip, weights, bias, Padding="same")
    YnoSkip = batchnorm_with_state(YnoSkip, parameters, state, "batchnorm3", doTraining)

    # Skip connection - convSkip, batchnormSkip
    weights = parameters["convSkip"]["Weights"]
    bias = parameters["convSkip"]["Bias"]
    YSkip = ml.dlconv(Y, weights, bias, Stride=2)
    YSkip = batchnorm_with_state(YSkip, parameters, state, "batchnormSkip", doTraining)

    # Addition, ReLU - addition, relu4
    Y = YSkip + YnoSkip
    Y = ml.relu(Y)

    # Fully connect, softmax - fc, softmax
    weights = parameters["fc"]["Weights"]
    bias = parameters["fc"]["Bias"]
    Y = ml.fullyconnect(Y, weights, bias)
    Y = ml.softmax(Y)
    return Y, state


def modelLoss(parameters, X, T, state):
    doTraining = True
    Y, state = model(parameters, X, doTraining, state)
    loss = ml.crossentropy(Y, T)
    gradients = ml.dlgradient(loss, parameters)
    return loss, gradients, state


def modelPredictions(parameters, state, mbq, classes):
    doTraining = False
    Y = []
    while ml.hasdata(mbq):
        X = next(mbq)
        YPred, _ = model(parameters, X, doTraining, state)
        YPred = ml.onehotdecode(YPred, classes, 1)
        Y = ml.cat(1, Y, YPred.T)                    # Y = [Y; YPred']
    return Y


def network_from_parameters(parameters, state, inputSize, numClasses):
    """Cross-check (not in the MathWorks example): the same model as a layer graph whose
    learnables and state are the trained struct's, as a ``dlnetwork``."""
    E = ml.extractdata

    def conv(name, filterSize, **options):
        W = E(parameters[name]["Weights"])
        return ml.convolution2dLayer(filterSize, W.shape[3], Name=name, Weights=W,
                                     Bias=E(parameters[name]["Bias"]).reshape(1, 1, -1),
                                     **options)

    def bn(name):
        c = (1, 1, -1)
        return ml.batchNormalizationLayer(
            Name=name, Offset=E(parameters[name]["Offset"]).reshape(c),
            Scale=E(parameters[name]["Scale"]).reshape(c),
            TrainedMean=E(state[name]["TrainedMean"]).reshape(c),
            TrainedVariance=E(state[name]["TrainedVariance"]).reshape(c))

    layers = [ml.imageInputLayer([inputSize, inputSize, 1], Normalization="none", Name="input"),
              conv("conv1", 5, Padding="same"), bn("batchnorm1"), ml.reluLayer(Name="relu1"),
              conv("conv2", 3, Padding="same", Stride=2), bn("batchnorm2"),
              ml.reluLayer(Name="relu2"),
              conv("conv3", 3, Padding="same"), bn("batchnorm3"),
              ml.additionLayer(2, Name="addition"), ml.reluLayer(Name="relu4"),
              ml.fullyConnectedLayer(numClasses, Name="fc",
                                     Weights=E(parameters["fc"]["Weights"]),
                                     Bias=E(parameters["fc"]["Bias"])),
              ml.softmaxLayer(Name="softmax")]
    lgraph = ml.layerGraph(layers)
    lgraph = ml.addLayers(lgraph, [conv("convSkip", 1, Stride=2), bn("batchnormSkip")])
    lgraph = ml.connectLayers(lgraph, "relu1", "convSkip")
    lgraph = ml.connectLayers(lgraph, "batchnormSkip", "addition/in2")
    return ml.dlnetwork(lgraph)


def preprocessMiniBatchPredictors(dataX):
    return np.stack(dataX, axis=3)                          # cat(4, dataX{:})


def make_preprocess(classes):
    def preprocessMiniBatch(dataX, dataT):
        X = preprocessMiniBatchPredictors(dataX)
        T = ml.cat(2, *dataT)                        # cat(2, dataT{:})
        T = ml.onehotencode(T, 1)
        return X, T
    return preprocessMiniBatch


def main():
    small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    # small: 16×16 images, 8/16 filters (the tests run this version); else 28×28, 16/32
    # filters as in the MathWorks example, fewer epochs
    size, numTrain, numTest, numEpochs, miniBatchSize, numFilters1, numFilters2 = (
        (16, 2000, 300, 4, 64, 8, 16) if small else (28, 5000, 1000, 6, 128, 16, 32))
    XTrain, TTrain = digit_data(numTrain, size, 1)
    XTest, TTest = digit_data(numTest, size, 2)
    classNames = ml.categories(TTrain)
    numClasses = len(classNames)

    ml.rng(0)
    parameters, state = initialize_model(size, numClasses, numFilters1, numFilters2)
    display_struct("parameters", parameters)
    display_struct("parameters.conv1", parameters["conv1"])
    display_struct("state.batchnorm1", state["batchnorm1"])

    dsTrain = ml.combine(ml.arrayDatastore(XTrain, IterationDimension=4),
                         ml.arrayDatastore(TTrain))
    mbq = ml.minibatchqueue(dsTrain, MiniBatchSize=miniBatchSize,
                            MiniBatchFcn=make_preprocess(classNames),
                            MiniBatchFormat=["SSCB", ""])
    print(mbq)

    trailingAvg = []
    trailingAvgSq = []
    iteration = 0
    losses = []
    start = time.perf_counter()
    for epoch in range(1, numEpochs + 1):
        ml.shuffle(mbq)
        while ml.hasdata(mbq):
            iteration += 1
            X, T = next(mbq)
            loss, gradients, state = ml.dlfeval(modelLoss, parameters, X, T, state)
            parameters, trailingAvg, trailingAvgSq = ml.adamupdate(
                parameters, gradients, trailingAvg, trailingAvgSq, iteration)
            losses.append(float(loss))
            print(f"epoch {epoch}, iteration {iteration}: loss {losses[-1]:.4f}")
    seconds = time.perf_counter() - start

    X = ml.dlarray(XTest[:, :, :, :miniBatchSize], "SSCB")
    Y, _ = model(parameters, X, False, state)
    print(f"model output size: {Y.shape[0]}×{Y.shape[1]} ({Y.dims}, {Y.dtype})")
    net = network_from_parameters(parameters, state, size, numClasses)
    print(net)
    difference = np.max(np.abs(ml.extractdata(ml.predict(net, X)) - ml.extractdata(Y)))
    print(f"model function vs dlnetwork of the same parameters: max difference {difference:.2e}")

    mbqTest = ml.minibatchqueue(ml.arrayDatastore(XTest, IterationDimension=4), 1,
                                MiniBatchSize=miniBatchSize,
                                MiniBatchFcn=preprocessMiniBatchPredictors,
                                MiniBatchFormat="SSCB")
    YTest = modelPredictions(parameters, state, mbqTest, classNames)
    accuracy = np.mean(YTest == TTest)
    print(f"test accuracy: {100 * accuracy:.2f}% after {seconds:.1f} s of training "
          f"({iteration} iterations, final loss {losses[-1]:.4f})")
    return accuracy, losses


if __name__ == "__main__":
    main()
