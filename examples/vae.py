"""Train Variational Autoencoder (VAE) to Generate Images (MathWorks example), in mlayers.

An encoder ``dlnetwork`` whose last layer has three outputs (the sampled latent code ``Z``,
its mean ``mu`` and log-variance ``logSigmaSq``), a decoder ``dlnetwork`` that maps a latent
code back to an image, a custom loop with ``dlfeval`` of a model-loss function that calls
``forward`` on both networks, the ELBO loss (``mse`` reconstruction plus a KL term written
with dlarray arithmetic), one ``dlgradient`` call for the learnables of both networks and
an ``adamupdate`` of each.  MATLAB's example trains on its 28×28 digit images
(``digitTrain4DArrayData``); here the synthetic digit-like images of
``simple_classification.py`` stand in for them.

MATLAB::

    numLatentChannels = 16;
    imageSize = [28 28 1];
    layersE = [
        imageInputLayer(imageSize,Normalization="none")
        convolution2dLayer(3,32,Padding="same",Stride=2)
        reluLayer
        convolution2dLayer(3,64,Padding="same",Stride=2)
        reluLayer
        fullyConnectedLayer(2*numLatentChannels)
        samplingLayer];
    projectionSize = [7 7 64];
    numInputChannels = imageSize(3);
    layersD = [
        featureInputLayer(numLatentChannels)
        projectAndReshapeLayer(projectionSize)
        transposedConv2dLayer(3,64,Cropping="same",Stride=2)
        reluLayer
        transposedConv2dLayer(3,32,Cropping="same",Stride=2)
        reluLayer
        transposedConv2dLayer(3,numInputChannels,Cropping="same")
        sigmoidLayer];
    netE = dlnetwork(layersE);
    netD = dlnetwork(layersD);

    numEpochs = 30;  miniBatchSize = 128;  learnRate = 1e-3;
    dsTrain = arrayDatastore(XTrain,IterationDimension=4);
    numOutputs = 1;
    mbq = minibatchqueue(dsTrain,numOutputs, MiniBatchSize = miniBatchSize, ...
        MiniBatchFcn=@preprocessMiniBatch, MiniBatchFormat="SSCB", ...
        PartialMiniBatch="discard");
    trailingAvgE = []; trailingAvgSqE = []; trailingAvgD = []; trailingAvgSqD = [];
    epoch = 0;  iteration = 0;
    while epoch < numEpochs && ~monitor.Stop
        epoch = epoch + 1;
        shuffle(mbq);
        while hasdata(mbq) && ~monitor.Stop
            iteration = iteration + 1;
            X = next(mbq);
            [loss,gradientsE,gradientsD] = dlfeval(@modelLoss,netE,netD,X);
            [netE,trailingAvgE,trailingAvgSqE] = adamupdate(netE, ...
                gradientsE,trailingAvgE,trailingAvgSqE,iteration,learnRate);
            [netD, trailingAvgD, trailingAvgSqD] = adamupdate(netD, ...
                gradientsD,trailingAvgD,trailingAvgSqD,iteration,learnRate);
            recordMetrics(monitor,iteration,Loss=loss);
        end
    end

    YTest = modelPredictions(netE,netD,mbqTest);
    err = mean((XTest-YTest).^2,[1 2 3]);
    ZNew = randn(numLatentChannels,numImages);
    ZNew = dlarray(ZNew,"CB");
    YNew = predict(netD,ZNew);
    YNew = extractdata(YNew);

    function [loss,gradientsE,gradientsD] = modelLoss(netE,netD,X)
        [Z,mu,logSigmaSq] = forward(netE,X);
        Y = forward(netD,Z);
        loss = elboLoss(Y,X,mu,logSigmaSq);
        [gradientsE,gradientsD] = dlgradient(loss,netE.Learnables,netD.Learnables);
    end

    function loss = elboLoss(Y,T,mu,logSigmaSq)
        reconstructionLoss = mse(Y,T);
        KL = -0.5 * sum(1 + logSigmaSq - mu.^2 - exp(logSigmaSq),1);
        KL = mean(KL);
        loss = reconstructionLoss + KL;
    end

    function Y = modelPredictions(netE,netD,mbq)
        Y = [];
        while hasdata(mbq)
            X = next(mbq);
            Z = predict(netE,X);
            XGenerated = predict(netD,Z);
            Y = cat(4,Y,extractdata(XGenerated));
        end
    end

    function X = preprocessMiniBatch(dataX)
        X = cat(4,dataX{:});
    end

    % samplingLayer (supporting file, custom layer with 3 outputs), its predict:
    function [Z,mu,logSigmaSq] = predict(~,X)
        numLatentChannels = size(X,1)/2;
        miniBatchSize = size(X,2);
        mu = X(1:numLatentChannels,:);
        logSigmaSq = X(numLatentChannels+1:end,:);
        epsilon = randn(numLatentChannels,miniBatchSize,"like",X);
        sigma = exp(.5 * logSigmaSq);
        Z = epsilon .* sigma + mu;
    end

    % projectAndReshapeLayer: the GAN example's supporting file (examples/gan.py)

The two custom layers are the same classes in Python, on ``ml.nnet.layer.Layer``:
``samplingLayer`` (three outputs, no learnables; MATLAB's non-Formattable layer gets the
unformatted ``2K x B`` data and its outputs take the input's ``"CB"`` format) and
``projectAndReshapeLayer`` (learnable ``Weights``/``Bias``, initialized from the input's
``networkDataLayout`` in ``initialize``).

Porting notes: ``[Z,mu,logSigmaSq] = forward(netE,X)`` is
``ml.forward(netE, X, nargout=3)``, and MATLAB's ``Z = predict(netE,X)`` (the first
output) ``ml.predict(netE, X, nargout=1)``.  The loss is a 1(C)×1(B) dlarray (the KL term
keeps the format, as in MATLAB): ``double(extractdata(loss))`` is ``float(loss)``.
The loop prints the loss of every iteration (``ml.trainingProgressMonitor`` would
record it, with no window); ``histogram``/``imtile`` become a text histogram and summary
numbers.

Run ``python examples/vae.py`` (``MLAYERS_EXAMPLE_SMALL=1`` for a quicker run).
"""
import os
import pathlib
import runpy
import time

import numpy as np

import mlayers as ml

HERE = pathlib.Path(__file__).resolve().parent


def digit_data(n, size, seed):
    """``size×size×1×n`` single images in [0, 1] (labels are not needed here)."""
    X, _ = runpy.run_path(str(HERE / "simple_classification.py"))["digit_data"](n, size, seed)
    return X


# ----------------------------------------------------------------- the custom layers

class samplingLayer(ml.nnet.layer.Layer):
    """The example's sampling layer: Z = epsilon .* exp(logSigmaSq/2) + mu."""

    def __init__(self, Name="sampling"):
        self.Name = Name
        self.Type = "Sampling"
        self.Description = "Mean and log-variance sampling"
        self.OutputNames = ["out", "mean", "log-variance"]

    def predict(self, X):
        numLatentChannels = ml.size(X, 1) // 2
        miniBatchSize = ml.size(X, 2)
        mu = X[:numLatentChannels, :]                    # X(1:numLatentChannels,:)
        logSigmaSq = X[numLatentChannels:, :]            # X(numLatentChannels+1:end,:)
        epsilon = ml.randn(numLatentChannels, miniBatchSize, "like", X)
        sigma = ml.exp(.5 * logSigmaSq)
        Z = epsilon * sigma + mu
        return Z, mu, logSigmaSq


# the GAN example's projectAndReshapeLayer, the same supporting file in both examples
projectAndReshapeLayer = runpy.run_path(str(HERE / "gan.py"))["projectAndReshapeLayer"]


def make_layers(numLatentChannels, imageSize, filters):
    f1, f2 = filters
    layersE = [ml.imageInputLayer(imageSize, Normalization="none"),
               ml.convolution2dLayer(3, f1, Padding="same", Stride=2),
               ml.reluLayer(),
               ml.convolution2dLayer(3, f2, Padding="same", Stride=2),
               ml.reluLayer(),
               ml.fullyConnectedLayer(2 * numLatentChannels),
               samplingLayer()]
    projectionSize = [imageSize[0] // 4, imageSize[1] // 4, f2]
    numInputChannels = imageSize[2]
    layersD = [ml.featureInputLayer(numLatentChannels),
               projectAndReshapeLayer(projectionSize, Name="proj"),
               ml.transposedConv2dLayer(3, f2, Cropping="same", Stride=2),
               ml.reluLayer(),
               ml.transposedConv2dLayer(3, f1, Cropping="same", Stride=2),
               ml.reluLayer(),
               ml.transposedConv2dLayer(3, numInputChannels, Cropping="same"),
               ml.sigmoidLayer()]
    return layersE, layersD


# ----------------------------------------------------------------- loss and helpers

def elboLoss(Y, T, mu, logSigmaSq):
    reconstructionLoss = ml.mse(Y, T)
    KL = -0.5 * ml.sum(1 + logSigmaSq - mu ** 2 - ml.exp(logSigmaSq), 1)
    KL = ml.mean(KL)
    return reconstructionLoss + KL


def modelLoss(netE, netD, X):
    Z, mu, logSigmaSq = ml.forward(netE, X, nargout=3)   # [Z,mu,logSigmaSq] = forward(netE,X)
    Y = ml.forward(netD, Z)
    loss = elboLoss(Y, X, mu, logSigmaSq)
    gradientsE, gradientsD = ml.dlgradient(loss, netE.Learnables, netD.Learnables)
    return loss, gradientsE, gradientsD


def modelPredictions(netE, netD, mbq):
    Y = []
    while ml.hasdata(mbq):
        X = next(mbq)
        Z = ml.predict(netE, X, nargout=1)               # Z = predict(netE,X)
        XGenerated = ml.predict(netD, Z)
        Y = ml.cat(4, Y, ml.extractdata(XGenerated))     # cat(4,Y,extractdata(XGenerated))
    return Y


def preprocessMiniBatch(dataX):
    return ml.cat(4, *dataX)                             # cat(4,dataX{:})


# ----------------------------------------------------------------- training

def train(XTrain, layersE, layersD, numEpochs, miniBatchSize, learnRate=1e-3,
          verbose=True):
    """The custom loop; returns both networks and the loss of every iteration."""
    netE = ml.dlnetwork(layersE)
    netD = ml.dlnetwork(layersD)
    dsTrain = ml.arrayDatastore(XTrain, IterationDimension=4)
    numOutputs = 1
    mbq = ml.minibatchqueue(dsTrain, numOutputs, MiniBatchSize=miniBatchSize,
                            MiniBatchFcn=preprocessMiniBatch, MiniBatchFormat="SSCB",
                            PartialMiniBatch="discard")
    trailingAvgE, trailingAvgSqE, trailingAvgD, trailingAvgSqD = [], [], [], []
    losses = []
    epoch = 0
    iteration = 0
    while epoch < numEpochs:
        epoch += 1
        ml.shuffle(mbq)
        epoch_losses = []
        while ml.hasdata(mbq):
            iteration += 1
            X = next(mbq)
            loss, gradientsE, gradientsD = ml.dlfeval(modelLoss, netE, netD, X)
            netE, trailingAvgE, trailingAvgSqE = ml.adamupdate(
                netE, gradientsE, trailingAvgE, trailingAvgSqE, iteration, learnRate)
            netD, trailingAvgD, trailingAvgSqD = ml.adamupdate(
                netD, gradientsD, trailingAvgD, trailingAvgSqD, iteration, learnRate)
            value = float(loss)                          # double(extractdata(loss))
            if not np.isfinite(value):
                raise FloatingPointError(f"iteration {iteration}: loss is {value}")
            epoch_losses.append(value)
        losses.extend(epoch_losses)
        if verbose:
            first = iteration - len(epoch_losses) + 1
            print(f"epoch {epoch:2d}/{numEpochs}  iterations {first:3d}-{iteration:3d}  "
                  f"loss " + " ".join(f"{v:.3f}" for v in epoch_losses)
                  + f"  (mean {np.mean(epoch_losses):.3f})")
    return netE, netD, losses


def text_histogram(err, bins=8, width=40):
    counts, edges = np.histogram(err, bins=bins)
    for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
        print(f"    {lo:.4f}-{hi:.4f} | {'#' * int(round(width * c / max(counts.max(), 1)))} {c}")


def main():
    small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    imageSize = [28, 28, 1]
    numLatentChannels = 16
    # small: fewer images, filters and epochs; full: MATLAB's architecture (32/64
    # filters, mini-batches of 128), fewer images and epochs than its 30 epochs
    n_train, n_test, numEpochs, miniBatchSize, filters = (
        (256, 64, 8, 32, (16, 32)) if small else (1024, 256, 8, 128, (32, 64)))
    XTrain = digit_data(n_train, imageSize[0], 1)
    XTest = digit_data(n_test, imageSize[0], 2)

    ml.rng(0)
    layersE, layersD = make_layers(numLatentChannels, imageSize, filters)
    print(ml.layer_array(layersE))
    print(layersE[-1])                                   # the custom sampling layer
    print(ml.layer_array(layersD))
    start = time.perf_counter()
    netE, netD, losses = train(XTrain, layersE, layersD, numEpochs, miniBatchSize)
    seconds = time.perf_counter() - start

    # Test: reconstruct the test images and look at the mean squared error per image
    dsTest = ml.arrayDatastore(XTest, IterationDimension=4)
    mbqTest = ml.minibatchqueue(dsTest, 1, MiniBatchSize=miniBatchSize,
                                MiniBatchFcn=preprocessMiniBatch, MiniBatchFormat="SSCB")
    YTest = modelPredictions(netE, netD, mbqTest)
    err = np.mean((XTest - YTest) ** 2, axis=(0, 1, 2))  # mean((XTest-YTest).^2,[1 2 3])
    print(f"test reconstruction error per image: mean {err.mean():.4f}, "
          f"median {np.median(err):.4f} ({err.size} images); histogram:")
    text_histogram(err)

    # Generate new images from random latent codes
    numImages = 64
    ZNew = ml.randn(numLatentChannels, numImages, "single")
    ZNew = ml.dlarray(ZNew, "CB")
    YNew = ml.predict(netD, ZNew)
    YNew = ml.extractdata(YNew)
    print(f"generated images, decoder output size: {'×'.join(map(str, YNew.shape))} "
          f"{YNew.dtype}, "
          f"values in [{YNew.min():.3f}, {YNew.max():.3f}], mean {YNew.mean():.3f} "
          f"(training images: mean {XTrain.mean():.3f})")

    k = max(1, len(losses) // 4)
    print(f"{len(losses)} iterations in {seconds:.1f} s; mean loss of the first {k}: "
          f"{np.mean(losses[:k]):.3f}, of the last {k}: {np.mean(losses[-k:]):.3f}")
    return losses, err, YNew


if __name__ == "__main__":
    main()
