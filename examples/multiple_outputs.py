"""Train Network with Multiple Outputs (MathWorks example), in mlayers.

One image input, two outputs: a digit classification branch (``fc`` - ``softmax``) and a
rotation-angle regression branch (``fc_2``, one response), both reading a residual
block (``additionLayer`` with a 1×1 strided skip convolution).  The network is built with
``layerGraph``, ``addLayers`` and ``connectLayers`` and trained with a custom loop:
``dlfeval`` of a model-loss function that calls ``forward`` with ``Outputs=``, adds the
cross-entropy of the labels to 0.1 times the half mean squared error of the angles,
``dlgradient`` and ``adamupdate``.  A ``minibatchqueue`` with three outputs feeds it;
``modelPredictions`` runs ``predict`` with ``Outputs=`` and ``onehotdecode``, and the
script reports the accuracy and the angle RMSE.

MathWorks uses ``digitTrain4DArrayData`` (28×28 digits with their rotation angles, -45°
to 45°).  Here ``rotated_digit_data`` draws the synthetic digits of
``simple_classification.py`` and rotates each by a known random angle (bilinear, numpy).

MATLAB::

    [XTrain,T1Train,T2Train] = digitTrain4DArrayData;
    dsTrain = combine(arrayDatastore(XTrain,IterationDimension=4), ...
        arrayDatastore(T1Train),arrayDatastore(T2Train));
    classNames = categories(T1Train);
    numClasses = numel(classNames);
    numObservations = numel(T1Train);

    layers = [
        imageInputLayer([28 28 1],Normalization="none")
        convolution2dLayer(5,16,Padding="same")
        batchNormalizationLayer
        reluLayer(Name="relu_1")
        convolution2dLayer(3,32,Padding="same",Stride=2)
        batchNormalizationLayer
        reluLayer
        convolution2dLayer(3,32,Padding="same")
        batchNormalizationLayer
        reluLayer
        additionLayer(2,Name="add")
        fullyConnectedLayer(numClasses)
        softmaxLayer(Name="softmax")];
    lgraph = layerGraph(layers);
    layers = [
        convolution2dLayer(1,32,Stride=2,Name="conv_skip")
        batchNormalizationLayer
        reluLayer(Name="relu_skip")];
    lgraph = addLayers(lgraph,layers);
    lgraph = connectLayers(lgraph,"relu_1","conv_skip");
    lgraph = connectLayers(lgraph,"relu_skip","add/in2");
    numResponses = 1;
    layers = fullyConnectedLayer(numResponses,Name="fc_2");
    lgraph = addLayers(lgraph,layers);
    lgraph = connectLayers(lgraph,"add","fc_2");
    net = dlnetwork(lgraph)

    numEpochs = 30;
    miniBatchSize = 128;
    mbq = minibatchqueue(dsTrain,MiniBatchSize=miniBatchSize, ...
        MiniBatchFcn=@preprocessMiniBatch,MiniBatchFormat=["SSCB" "" ""]);
    trailingAvg = [];
    trailingAvgSq = [];
    epoch = 0;
    iteration = 0;
    while epoch < numEpochs
        epoch = epoch + 1;
        shuffle(mbq);
        while hasdata(mbq)
            iteration = iteration + 1;
            [X,T1,T2] = next(mbq);
            [loss,gradients,state] = dlfeval(@modelLoss,net,X,T1,T2);
            net.State = state;
            [net,trailingAvg,trailingAvgSq] = adamupdate(net,gradients, ...
                trailingAvg,trailingAvgSq,iteration);
        end
    end                     % (MathWorks also drives a trainingProgressMonitor here)

    [XTest,T1Test,T2Test] = digitTest4DArrayData;
    ...                     % dsTest and mbqTest built as dsTrain and mbq
    [Y1Test,Y2Test] = modelPredictions(net,mbqTest,classNames);
    accuracy = mean(Y1Test==T1Test)
    err = Y2Test - T2Test;
    angleRMSE = sqrt(mean(err.^2))

    function [loss,gradients,state] = modelLoss(net,X,T1,T2)
        [Y1,Y2,state] = forward(net,X,Outputs=["softmax" "fc_2"]);
        lossLabels = crossentropy(Y1,T1);
        lossAngles = mse(Y2,T2);
        loss = lossLabels + 0.1*lossAngles;
        gradients = dlgradient(loss,net.Learnables);
    end

    function [Y1,Y2] = modelPredictions(net,mbq,classNames)
        Y1 = [];
        Y2 = [];
        while hasdata(mbq)
            X = next(mbq);
            [Y1Pred,Y2Pred] = predict(net,X,Outputs=["softmax" "fc_2"]);
            Y1Pred = onehotdecode(Y1Pred,classNames,1)';
            Y1 = [Y1; Y1Pred];
            Y2 = [Y2; Y2Pred'];
        end
    end

    function [X,T1,T2] = preprocessMiniBatch(dataX,dataT1,dataT2)
        X = cat(4,dataX{:});
        T1 = cat(2,dataT1{:});
        T1 = onehotencode(T1,1);
        T2 = cat(2,dataT2{:});
    end

Porting notes:

* ``[Y1,Y2,state] = forward(...)`` needs ``nargout=3`` in Python (without it the two
  outputs come back and unpacking three values fails);
* ``X = next(mbq)`` (the first output of a queue of three) is ``mbq.next(nargout=1)``;
* ``Y2Pred'`` is ``Y2Pred.T``;
* the loop prints its progress (``ml.trainingProgressMonitor`` would record it, with no
  window);
* the small run holds the kernels to one thread (``ml.threads(1)``): with the default
  threads, a second busy process on a 2-core host made it about 40 times slower.

Run ``python examples/multiple_outputs.py`` (``MLAYERS_EXAMPLE_SMALL=1`` for the small,
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


def digit_data(n, size, seed):
    return runpy.run_path(str(HERE / "simple_classification.py"))["digit_data"](n, size, seed)


def rotate(img, degrees):
    """``img`` (H×W) rotated counterclockwise by ``degrees`` about its centre (bilinear,
    zeros outside), like ``imrotate(img, degrees, "bilinear", "crop")``."""
    h, w = img.shape
    t = np.deg2rad(degrees)
    r, c = np.mgrid[0:h, 0:w].astype(np.float64)
    y, x = r - (h - 1) / 2, c - (w - 1) / 2           # output pixel, centred (y down)
    # the input pixel that lands there: rotate back (clockwise on screen)
    xs = np.cos(t) * x - np.sin(t) * y + (w - 1) / 2
    ys = np.sin(t) * x + np.cos(t) * y + (h - 1) / 2
    x0, y0 = np.floor(xs).astype(int), np.floor(ys).astype(int)
    fx, fy = xs - x0, ys - y0
    out = np.zeros((h, w))
    for dy, dx, wgt in ((0, 0, (1 - fy) * (1 - fx)), (0, 1, (1 - fy) * fx),
                        (1, 0, fy * (1 - fx)), (1, 1, fy * fx)):
        yy, xx = y0 + dy, x0 + dx
        ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
        out[ok] += wgt[ok] * img[yy[ok], xx[ok]]
    return out


def rotated_digit_data(n, size, seed):
    """``digitTrain4DArrayData`` stand-in: images (size×size×1×n single), digit labels
    (n×1 categorical) and rotation angles in degrees (n×1 double, -45..45)."""
    X, labels = digit_data(n, size, seed)
    angles = np.random.RandomState(seed + 100).uniform(-45, 45, n)
    for i in range(n):
        X[:, :, 0, i] = np.clip(rotate(X[:, :, 0, i], angles[i]), 0, 1)
    T1 = ml.categorical(np.asarray(labels, dtype=object).reshape(-1, 1),
                        [str(d) for d in range(10)])      # all ten classes, N×1
    T2 = angles.reshape(-1, 1)
    return X, T1, T2


def multiple_output_graph(size, numClasses, numResponses=1, width=(16, 32)):
    """The example's layer graph: main branch to ``softmax``, skip branch into
    ``add/in2``, regression head ``fc_2`` on ``add``."""
    f1, f2 = width
    layers = [
        ml.imageInputLayer([size, size, 1], Normalization="none"),
        ml.convolution2dLayer(5, f1, Padding="same"),
        ml.batchNormalizationLayer(),
        ml.reluLayer(Name="relu_1"),
        ml.convolution2dLayer(3, f2, Padding="same", Stride=2),
        ml.batchNormalizationLayer(),
        ml.reluLayer(),
        ml.convolution2dLayer(3, f2, Padding="same"),
        ml.batchNormalizationLayer(),
        ml.reluLayer(),
        ml.additionLayer(2, Name="add"),
        ml.fullyConnectedLayer(numClasses),
        ml.softmaxLayer(Name="softmax")]
    lgraph = ml.layerGraph(layers)
    layers = [
        ml.convolution2dLayer(1, f2, Stride=2, Name="conv_skip"),
        ml.batchNormalizationLayer(),
        ml.reluLayer(Name="relu_skip")]
    lgraph = ml.addLayers(lgraph, layers)
    lgraph = ml.connectLayers(lgraph, "relu_1", "conv_skip")
    lgraph = ml.connectLayers(lgraph, "relu_skip", "add/in2")
    layers = ml.fullyConnectedLayer(numResponses, Name="fc_2")
    lgraph = ml.addLayers(lgraph, layers)
    lgraph = ml.connectLayers(lgraph, "add", "fc_2")
    return lgraph


def preprocessMiniBatch(dataX, dataT1, dataT2):
    X = ml.cat(4, *dataX)                 # cat(4, dataX{:})
    T1 = ml.cat(2, *dataT1)               # cat(2, dataT1{:})  (categorical, 1×B)
    T1 = ml.onehotencode(T1, 1)
    T2 = ml.cat(2, *dataT2)               # cat(2, dataT2{:})  (1×B)
    return X, T1, T2


def modelLoss(net, X, T1, T2):
    # [Y1,Y2,state] = forward(net,X,Outputs=["softmax" "fc_2"])
    Y1, Y2, state = ml.forward(net, X, Outputs=["softmax", "fc_2"], nargout=3)
    lossLabels = ml.crossentropy(Y1, T1)
    lossAngles = ml.mse(Y2, T2)
    loss = lossLabels + 0.1 * lossAngles
    gradients = ml.dlgradient(loss, net.Learnables)
    return loss, gradients, state


def modelPredictions(net, mbq, classNames):
    Y1 = []
    Y2 = []
    while ml.hasdata(mbq):
        X = mbq.next(nargout=1)           # X = next(mbq): the first output
        Y1Pred, Y2Pred = ml.predict(net, X, Outputs=["softmax", "fc_2"])
        Y1Pred = ml.onehotdecode(Y1Pred, classNames, 1).T
        Y1 = ml.cat(1, Y1, Y1Pred)        # Y1 = [Y1; Y1Pred]
        Y2 = ml.cat(1, Y2, Y2Pred.T)      # Y2 = [Y2; Y2Pred']
    return Y1, Y2


def train(net, dsTrain, numObservations, numEpochs, miniBatchSize, verbose=True):
    mbq = ml.minibatchqueue(dsTrain, MiniBatchSize=miniBatchSize,
                            MiniBatchFcn=preprocessMiniBatch,
                            MiniBatchFormat=["SSCB", "", ""])
    trailingAvg = []
    trailingAvgSq = []
    numIterations = numEpochs * int(np.ceil(numObservations / miniBatchSize))
    losses = []
    epoch = 0
    iteration = 0
    while epoch < numEpochs:
        epoch += 1
        ml.shuffle(mbq)
        while ml.hasdata(mbq):
            iteration += 1
            X, T1, T2 = next(mbq)
            loss, gradients, state = ml.dlfeval(modelLoss, net, X, T1, T2)
            net.State = state
            net, trailingAvg, trailingAvgSq = ml.adamupdate(net, gradients, trailingAvg,
                                                            trailingAvgSq, iteration)
            losses.append(float(loss))
        if verbose:
            print(f"epoch {epoch}: iteration {iteration}/{numIterations}, "
                  f"loss {losses[-1]:.4f}")
    return net, losses


def main():
    small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    # The small run's tensors are tiny, so one kernel thread loses nothing; it also keeps
    # the run in seconds when another process holds one of the cores (the default
    # multi-threaded kernels were measured 40x slower then).
    with ml.threads(1) if small else contextlib.nullcontext():
        return run(small)


def run(small):
    size, n_train, n_test, numEpochs, miniBatchSize, width = (
        (16, 2000, 300, 10, 50, (8, 16)) if small else (28, 5000, 1000, 30, 128, (16, 32)))
    XTrain, T1Train, T2Train = rotated_digit_data(n_train, size, 1)
    XTest, T1Test, T2Test = rotated_digit_data(n_test, size, 2)

    dsTrain = ml.combine(ml.arrayDatastore(XTrain, IterationDimension=4),
                         ml.arrayDatastore(T1Train), ml.arrayDatastore(T2Train))
    classNames = ml.categories(T1Train)
    numClasses = len(classNames)
    numObservations = T1Train.size

    lgraph = multiple_output_graph(size, numClasses, 1, width)
    lgraph.display("lgraph")
    ml.rng(0)
    net = ml.dlnetwork(lgraph)
    net.display("net")
    print("net.OutputNames:", net.OutputNames)
    if os.environ.get("MLAYERS_PLOT"):
        ml.plot(lgraph).savefig(os.environ["MLAYERS_PLOT"])

    start = time.perf_counter()
    net, losses = train(net, dsTrain, numObservations, numEpochs, miniBatchSize)
    seconds = time.perf_counter() - start

    dsTest = ml.combine(ml.arrayDatastore(XTest, IterationDimension=4),
                        ml.arrayDatastore(T1Test), ml.arrayDatastore(T2Test))
    mbqTest = ml.minibatchqueue(dsTest, MiniBatchSize=miniBatchSize,
                                MiniBatchFcn=preprocessMiniBatch,
                                MiniBatchFormat=["SSCB", "", ""])
    Y1Test, Y2Test = modelPredictions(net, mbqTest, classNames)
    print(f"labels output size: {Y1Test.shape[0]}×{Y1Test.shape[1]} categorical, "
          f"angles output size: {Y2Test.shape[0]}×{Y2Test.shape[1]} dlarray")
    accuracy = float(np.mean(Y1Test == T1Test))
    err = Y2Test - T2Test
    angleRMSE = ml.sqrt(ml.mean(err ** 2))
    print(f"accuracy = {accuracy:.4f}")
    print(f"angleRMSE = \n\n{angleRMSE}")
    print(f"({len(losses)} iterations in {seconds:.1f} s, final loss {losses[-1]:.4f}; "
          f"predicting the mean angle would give an RMSE of "
          f"{float(np.sqrt(np.mean((T2Test - T2Train.mean()) ** 2))):.2f})")
    return accuracy, float(angleRMSE), losses


if __name__ == "__main__":
    main()
