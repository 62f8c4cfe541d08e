"""Train Generative Adversarial Network (GAN) (MathWorks example), in mlayers.

Two ``dlnetwork`` objects trained together in one custom loop: a generator (project and
reshape, then transposed convolutions with batch normalization and ReLU, ending in tanh)
and a discriminator (dropout on the input, strided convolutions with leaky ReLU and batch
normalization, ending in a 4×4 convolution to one output and a sigmoid). One ``dlfeval``
of ``modelLoss`` gives both losses, and ``dlgradient`` each network's gradients;
``adamupdate`` updates each network with its own trailing averages, the real labels are
flipped with probability ``flipProb`` and the generator's batch-normalization state is
kept after every step.

What differs from the MathWorks example:

* Data: synthetic "flower" images (a coloured disk of petals on a background, uint8)
  instead of the Flowers data set read through an ``augmentedImageDatastore``; the images
  are 16×16×3 (``MLAYERS_EXAMPLE_SMALL=1``) or 32×32×3 instead of 64×64×3, and the
  network width is scaled down with them.  ``generator_layers`` and
  ``discriminator_layers`` build the example's networks for any power-of-two image size:
  with ``imageSize=64, numFilters=64`` they are exactly the layer arrays below.
* ``projectAndReshapeLayer``, the custom layer shipped with the example (learnable
  ``Weights``/``Bias``: ``fullyconnect``, then ``reshape`` to ``4×4×512×N`` and relabel as
  ``"SSCB"``), is the same class in Python, on ``ml.nnet.layer.Layer`` (its supporting
  ``initializeGlorot``/``initializeZeros`` written with ``ml.rand``).
* ``imtile``/``rescale`` and the score plot: small numpy stand-ins, and the scores and
  losses are printed instead of plotted.

MATLAB::

    projectionSize = [4 4 512];
    layersGenerator = [
        featureInputLayer(numLatentInputs)
        projectAndReshapeLayer(projectionSize)
        transposedConv2dLayer(filterSize,4*numFilters)
        batchNormalizationLayer
        reluLayer
        transposedConv2dLayer(filterSize,2*numFilters,Stride=2,Cropping="same")
        batchNormalizationLayer
        reluLayer
        transposedConv2dLayer(filterSize,numFilters,Stride=2,Cropping="same")
        batchNormalizationLayer
        reluLayer
        transposedConv2dLayer(filterSize,3,Stride=2,Cropping="same")
        tanhLayer];
    netG = dlnetwork(layersGenerator);

    layersDiscriminator = [
        imageInputLayer(inputSize,Normalization="none")
        dropoutLayer(dropoutProb)
        convolution2dLayer(filterSize,numFilters,Stride=2,Padding="same")
        leakyReluLayer(scale)
        convolution2dLayer(filterSize,2*numFilters,Stride=2,Padding="same")
        batchNormalizationLayer
        leakyReluLayer(scale)
        convolution2dLayer(filterSize,4*numFilters,Stride=2,Padding="same")
        batchNormalizationLayer
        leakyReluLayer(scale)
        convolution2dLayer(filterSize,8*numFilters,Stride=2,Padding="same")
        batchNormalizationLayer
        leakyReluLayer(scale)
        convolution2dLayer(4,1)
        sigmoidLayer];
    netD = dlnetwork(layersDiscriminator);

    mbq = minibatchqueue(augimds, MiniBatchSize=miniBatchSize, ...
        PartialMiniBatch="discard", MiniBatchFcn=@preprocessMiniBatch, ...
        MiniBatchFormat="SSCB");
    trailingAvgG = []; trailingAvgSqG = []; trailingAvg = []; trailingAvgSqD = [];
    ZValidation = dlarray(randn(numLatentInputs,numValidationImages,"single"),"CB");
    iteration = 0;
    for epoch = 1:numEpochs
        shuffle(mbq);
        while hasdata(mbq)
            iteration = iteration + 1;
            X = next(mbq);
            Z = dlarray(randn(numLatentInputs,miniBatchSize,"single"),"CB");
            [~,~,gradientsG,gradientsD,stateG,scoreG,scoreD] = ...
                dlfeval(@modelLoss,netG,netD,X,Z,flipProb);
            netG.State = stateG;
            [netD,trailingAvg,trailingAvgSqD] = adamupdate(netD, gradientsD, ...
                trailingAvg, trailingAvgSqD, iteration, ...
                learnRate, gradientDecayFactor, squaredGradientDecayFactor);
            [netG,trailingAvgG,trailingAvgSqG] = adamupdate(netG, gradientsG, ...
                trailingAvgG, trailingAvgSqG, iteration, ...
                learnRate, gradientDecayFactor, squaredGradientDecayFactor);
            if mod(iteration,validationFrequency) == 0 || iteration == 1
                XGeneratedValidation = predict(netG,ZValidation);
                I = rescale(imtile(extractdata(XGeneratedValidation)));
            end
        end
    end

    function [lossG,lossD,gradientsG,gradientsD,stateG,scoreG,scoreD] = ...
        modelLoss(netG,netD,X,Z,flipProb)
    YReal = forward(netD,X);
    [XGenerated,stateG] = forward(netG,Z);
    YGenerated = forward(netD,XGenerated);
    scoreD = (mean(YReal) + mean(1-YGenerated)) / 2;
    scoreG = mean(YGenerated);
    numObservations = size(YReal,4);
    idx = rand(1,numObservations) < flipProb;
    YReal(:,:,:,idx) = 1 - YReal(:,:,:,idx);
    [lossG, lossD] = ganLoss(YReal,YGenerated);
    gradientsG = dlgradient(lossG,netG.Learnables,RetainData=true);
    gradientsD = dlgradient(lossD,netD.Learnables);
    end

    function [lossG,lossD] = ganLoss(YReal,YGenerated)
    lossD = -mean(log(YReal)) - mean(log(1-YGenerated));
    lossG = -mean(log(YGenerated));
    end

    function X = preprocessMiniBatch(data)
    X = cat(4,data{:});
    X = rescale(X,-1,1,InputMin=0,InputMax=255);
    end

    classdef projectAndReshapeLayer < nnet.layer.Layer & nnet.layer.Formattable
        properties
            OutputSize
        end
        properties (Learnable)
            Weights
            Bias
        end
        methods
            function layer = projectAndReshapeLayer(outputSize,NameValueArgs)
                ...
                layer.Name = name;
                layer.Description = "Project and reshape to size " + ...
                    join(string(outputSize));
                layer.Type = "Project and Reshape";
                layer.OutputSize = outputSize;
            end
            function layer = initialize(layer,layout)
                outputSize = layer.OutputSize;
                if isempty(layer.Weights)
                    idx = finddim(layout,"C");
                    numChannels = layout.Size(idx);
                    sz = [prod(outputSize) numChannels];
                    numOut = prod(outputSize);
                    numIn = numChannels;
                    layer.Weights = initializeGlorot(sz,numOut,numIn);
                end
                if isempty(layer.Bias)
                    layer.Bias = initializeZeros([prod(outputSize) 1]);
                end
            end
            function Z = predict(layer, X)
                X = fullyconnect(X,layer.Weights,layer.Bias);
                outputSize = layer.OutputSize;
                Z = reshape(X,outputSize(1),outputSize(2),outputSize(3),[]);
                Z = dlarray(Z,"SSCB");
            end
        end
    end

``double(extractdata(scoreG))`` is ``float(scoreG)``; the rest reads as in MATLAB
(``size(YReal, 4)`` is ``ml.size(YReal, 4)``, the ``1×N`` logical ``idx`` indexes the
fourth dimension as MATLAB's does).

Run ``python examples/gan.py`` (``MLAYERS_EXAMPLE_SMALL=1`` for the seconds-long version).
"""
import os
import time

import numpy as np

import mlayers as ml


def flower_images(n, size, seed):
    """n synthetic ``size×size×3`` uint8 "flowers" (H×W×C×N, MATLAB order): a disk of
    five to eight petals in a random colour, at a random place, on a darker background."""
    rs = np.random.default_rng(seed)
    v, u = np.meshgrid(np.arange(size), np.arange(size))          # u: rows, v: columns
    images = np.empty((size, size, 3, n), np.uint8)
    for k in range(n):
        background = rs.uniform(0, 0.35, 3) * (0.7 + 0.3 * u[..., None] / size)
        cu, cv = rs.uniform(0.35, 0.65, 2) * size
        radius = rs.uniform(0.25, 0.45) * size
        petals, phase = rs.integers(5, 9), rs.uniform(0, 2 * np.pi)
        r = np.hypot(u - cu, v - cv)
        theta = np.arctan2(u - cu, v - cv)
        edge = radius * (0.65 + 0.35 * np.cos(petals * theta + phase))
        inside = np.clip((edge - r) / 1.5, 0, 1)[..., None]
        centre = np.clip((0.25 * radius - r) / 1.5, 0, 1)[..., None]
        colour = rs.uniform(0.4, 1.0, 3)
        img = background * (1 - inside) + colour * inside
        img = img * (1 - centre) + np.array([0.9, 0.8, 0.1]) * centre
        img += rs.normal(0, 0.02, img.shape)
        images[..., k] = np.round(255 * np.clip(img, 0, 1))
    return images


def rescale(A, l=0.0, u=1.0, InputMin=None, InputMax=None):
    """MATLAB's ``rescale``: values clipped to [InputMin, InputMax] (default: A's range),
    mapped linearly onto [l, u]."""
    A = np.asarray(A, dtype=np.float64)
    inmin = A.min() if InputMin is None else InputMin
    inmax = A.max() if InputMax is None else InputMax
    if inmax == inmin:
        return np.full(A.shape, l)
    return l + (np.clip(A, inmin, inmax) - inmin) / (inmax - inmin) * (u - l)


def imtile(X):
    """``imtile`` of an H×W×3×N batch: a near-square grid of the images."""
    h, w, c, n = X.shape
    cols = int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    out = np.zeros((rows * h, cols * w, c), X.dtype)
    for k in range(n):
        i, j = divmod(k, cols)
        out[i * h:(i + 1) * h, j * w:(j + 1) * w] = X[..., k]
    return out


def initializeGlorot(sz, numOut, numIn):
    """The example's supporting function: uniform on ±sqrt(6/(numIn + numOut))."""
    bound = float(np.sqrt(6 / (numIn + numOut)))     # (a Python float keeps single)
    return ml.dlarray(bound * (2 * ml.rand(*sz, "single") - 1))


def initializeZeros(sz):
    return ml.dlarray(np.zeros(sz, np.float32))


class projectAndReshapeLayer(ml.nnet.layer.Layer, ml.nnet.layer.Formattable):
    """The example's custom layer: fully connect, then reshape to OutputSize x N."""
    Learnable = ("Weights", "Bias")

    def __init__(self, outputSize, Name=""):
        self.Name = Name
        self.Description = ("Project and reshape to size "
                            + " ".join(str(s) for s in outputSize))
        self.Type = "Project and Reshape"
        self.OutputSize = list(outputSize)

    def initialize(self, layout):
        outputSize = self.OutputSize
        if self.Weights is None:                       # isempty(layer.Weights)
            idx = ml.finddim(layout, "C")
            numChannels = layout.Size[idx[0] - 1]
            sz = [int(np.prod(outputSize)), numChannels]
            self.Weights = initializeGlorot(sz, int(np.prod(outputSize)), numChannels)
        if self.Bias is None:
            self.Bias = initializeZeros([int(np.prod(outputSize)), 1])
        return self

    def predict(self, X):
        X = ml.fullyconnect(X, self.Weights, self.Bias)
        outputSize = self.OutputSize
        Z = ml.reshape(X, outputSize[0], outputSize[1], outputSize[2], [])
        return ml.dlarray(Z, "SSCB")


def generator_layers(imageSize, numLatentInputs, numFilters, filterSize=5):
    """The example's generator for imageSize = 8·2^k (64: the MATLAB array above)."""
    projectionSize = [4, 4, 8 * numFilters]
    layers = [ml.featureInputLayer(numLatentInputs),
              projectAndReshapeLayer(projectionSize),
              ml.transposedConv2dLayer(filterSize, 4 * numFilters),      # 4×4 -> 8×8
              ml.batchNormalizationLayer(),
              ml.reluLayer()]
    f = 4 * numFilters
    for _ in range(int(np.log2(imageSize // 8)) - 1):  # 64: two stages, 8 -> 16 -> 32
        f //= 2
        layers += [ml.transposedConv2dLayer(filterSize, f, Stride=2, Cropping="same"),
                   ml.batchNormalizationLayer(),
                   ml.reluLayer()]
    layers += [ml.transposedConv2dLayer(filterSize, 3, Stride=2, Cropping="same"),
               ml.tanhLayer()]
    return layers


def discriminator_layers(imageSize, numFilters, filterSize=5, dropoutProb=0.5, scale=0.2):
    """The example's discriminator for imageSize = 4·2^k (64: the MATLAB array above)."""
    layers = [ml.imageInputLayer([imageSize, imageSize, 3], Normalization="none"),
              ml.dropoutLayer(dropoutProb),
              ml.convolution2dLayer(filterSize, numFilters, Stride=2, Padding="same"),
              ml.leakyReluLayer(scale)]
    f = numFilters
    for _ in range(int(np.log2(imageSize // 4)) - 1):  # 64: three stages, 32 -> 16 -> 8 -> 4
        f *= 2
        layers += [ml.convolution2dLayer(filterSize, f, Stride=2, Padding="same"),
                   ml.batchNormalizationLayer(),
                   ml.leakyReluLayer(scale)]
    layers += [ml.convolution2dLayer(4, 1),             # 4×4 -> 1×1
               ml.sigmoidLayer()]
    return layers


def modelLoss(netG, netD, X, Z, flipProb):
    YReal = ml.forward(netD, X)
    XGenerated, stateG = ml.forward(netG, Z, nargout=2)
    YGenerated = ml.forward(netD, XGenerated)

    scoreD = (ml.mean(YReal) + ml.mean(1 - YGenerated)) / 2
    scoreG = ml.mean(YGenerated)

    # Flip the labels of the real images with probability flipProb.
    numObservations = ml.size(YReal, 4)
    idx = ml.rand(1, numObservations) < flipProb       # 1×N logical, as in MATLAB
    YReal[:, :, :, idx] = 1 - YReal[:, :, :, idx]

    lossG, lossD = ganLoss(YReal, YGenerated)

    gradientsG = ml.dlgradient(lossG, netG.Learnables, RetainData=True)
    gradientsD = ml.dlgradient(lossD, netD.Learnables)
    return lossG, lossD, gradientsG, gradientsD, stateG, scoreG, scoreD


def ganLoss(YReal, YGenerated):
    lossD = -ml.mean(ml.log(YReal)) - ml.mean(ml.log(1 - YGenerated))
    lossG = -ml.mean(ml.log(YGenerated))
    return lossG, lossD


def preprocessMiniBatch(data):
    X = np.stack(data, axis=3)                         # cat(4, data{:})
    return rescale(X, -1, 1, InputMin=0, InputMax=255)


def train(images, netG, netD, numLatentInputs, numEpochs, miniBatchSize,
          learnRate=0.0002, gradientDecayFactor=0.5, squaredGradientDecayFactor=0.999,
          flipProb=0.35, validationFrequency=100, numValidationImages=25, verbose=True):
    """The custom loop; returns both networks and the per-iteration history."""
    mbq = ml.minibatchqueue(ml.arrayDatastore(images, IterationDimension=4),
                            MiniBatchSize=miniBatchSize,
                            PartialMiniBatch="discard",
                            MiniBatchFcn=preprocessMiniBatch,
                            MiniBatchFormat="SSCB")
    trailingAvgG, trailingAvgSqG = [], []
    trailingAvg, trailingAvgSqD = [], []

    ZValidation = ml.dlarray(ml.randn(numLatentInputs, numValidationImages, "single"), "CB")

    history = []
    iteration = 0
    for epoch in range(1, numEpochs + 1):
        ml.shuffle(mbq)
        while ml.hasdata(mbq):
            iteration += 1
            X = next(mbq)
            Z = ml.dlarray(ml.randn(numLatentInputs, miniBatchSize, "single"), "CB")

            lossG, lossD, gradientsG, gradientsD, stateG, scoreG, scoreD = \
                ml.dlfeval(modelLoss, netG, netD, X, Z, flipProb)
            netG.State = stateG

            netD, trailingAvg, trailingAvgSqD = ml.adamupdate(
                netD, gradientsD, trailingAvg, trailingAvgSqD, iteration,
                learnRate, gradientDecayFactor, squaredGradientDecayFactor)
            netG, trailingAvgG, trailingAvgSqG = ml.adamupdate(
                netG, gradientsG, trailingAvgG, trailingAvgSqG, iteration,
                learnRate, gradientDecayFactor, squaredGradientDecayFactor)

            row = dict(epoch=epoch, iteration=iteration, lossG=float(lossG),
                       lossD=float(lossD), scoreG=float(scoreG), scoreD=float(scoreD))
            history.append(row)
            if verbose:
                print(f"epoch {epoch}, iteration {iteration:3d}: "
                      f"lossG {row['lossG']:.4f}  lossD {row['lossD']:.4f}  "
                      f"scoreG {row['scoreG']:.4f}  scoreD {row['scoreD']:.4f}")

            if iteration % validationFrequency == 0 or iteration == 1:
                XGeneratedValidation = ml.predict(netG, ZValidation)
                I = rescale(imtile(ml.extractdata(XGeneratedValidation)))
                if verbose:
                    x = ml.extractdata(XGeneratedValidation)
                    print(f"  validation: {I.shape[0]}×{I.shape[1]}×{I.shape[2]} tile of "
                          f"{x.shape[3]} generated images, values in "
                          f"[{x.min():.3f}, {x.max():.3f}], spread across images "
                          f"{x.std(axis=3).mean():.4f}")
    return netG, netD, history


def main():
    small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    # imageSize, numFilters, numImages, numEpochs, miniBatchSize, validationFrequency
    imageSize, numFilters, numImages, numEpochs, miniBatchSize, validationFrequency = (
        (16, 8, 64, 2, 16, 4) if small else (32, 16, 256, 2, 32, 8))
    numLatentInputs = 100

    images = flower_images(numImages, imageSize, seed=1)
    ml.rng(0)
    netG = ml.dlnetwork(generator_layers(imageSize, numLatentInputs, numFilters))
    netD = ml.dlnetwork(discriminator_layers(imageSize, numFilters))
    print(ml.layer_array(netG.Layers))
    print(netG.Layers[1])                              # the custom layer, initialized
    print(ml.layer_array(netD.Layers))

    start = time.perf_counter()
    netG, netD, history = train(images, netG, netD, numLatentInputs, numEpochs,
                                miniBatchSize, validationFrequency=validationFrequency)
    seconds = time.perf_counter() - start

    # Generate new images.
    ZNew = ml.dlarray(ml.randn(numLatentInputs, 25, "single"), "CB")
    XGeneratedNew = ml.predict(netG, ZNew)
    x = ml.extractdata(XGeneratedNew)
    print(f"generator output size: "
          f"{' × '.join(f'{s}({d})' for s, d in zip(x.shape, XGeneratedNew.dims))} "
          f"{x.dtype}, values in [{x.min():.3f}, {x.max():.3f}]")

    values = np.array([[h[k] for k in ("lossG", "lossD", "scoreG", "scoreD")] for h in history])
    finite = bool(np.all(np.isfinite(values))) and bool(np.all(np.isfinite(x)))
    print(f"{len(history)} iterations in {seconds:.1f} s; every loss, score and generated "
          f"pixel finite: {finite}")
    if not finite:
        raise SystemExit("non-finite values in training")
    return history


if __name__ == "__main__":
    main()
