"""Train Wasserstein GAN with Gradient Penalty (WGAN-GP) (MathWorks example), in mlayers.

https://www.mathworks.com/help/deeplearning/ug/trainwasserstein-gan-with-gradient-penalty-wgan-gp.html

Two ``dlnetwork`` objects trained in one custom loop, as in the GAN example, but with the
Wasserstein loss and a gradient penalty (Gulrajani et al., 2017): the discriminator (the
critic) is trained ``numIterationsDPerG`` times for each generator step, each time with
``modelLossD``, whose loss is ``mean(D(G(Z)) - D(X))`` plus ``lambda`` times the mean of
``(||dD/dXHat|| - 1)^2`` at random interpolations ``XHat`` of real and generated images.
The norm of ``dD/dXHat`` is a gradient taken inside the loss
(``dlgradient(..., EnableHigherDerivatives=true)``), so the discriminator's own gradients
differentiate through it a second time. The generator minimizes ``-mean(D(G(Z)))``
(``modelLossG``). Each network has its own Adam step count (``iterationD``,
``iterationG``), learning rate (2e-4 and 1e-3) and the decay factors 0 and 0.9.

What differs from the MathWorks example:

* Data: synthetic images of small coloured shapes (a disk, a square or a triangle in a
  random colour, size and place on a dark, shaded background; uint8) instead of the
  Flowers data set read through an ``augmentedImageDatastore`` with random reflections;
  16×16×3 (``MLAYERS_EXAMPLE_SMALL=1``) or 32×32×3 instead of 64×64×3, the network width
  scaled down with them, and a few generator iterations instead of 10000.
  ``generator_layers`` and ``discriminator_layers`` build the example's networks for any
  power-of-two size: ``imageSize=64, numFilters=64`` gives the layer arrays below.
* ``projectAndReshapeLayer`` (shipped with the example) is the custom layer of
  ``examples/gan.py``, loaded from there.
* The figures (the tiled validation images and the animated loss lines) are printed:
  each iteration's losses, and a summary line of the validation images.

MATLAB (the example's code; the plots shortened to ``...``)::

    numFilters = 64;
    scale = 0.2;
    inputSize = [64 64 3];
    filterSize = 5;
    layersD = [
        imageInputLayer(inputSize,Normalization="none")
        convolution2dLayer(filterSize,numFilters,Stride=2,Padding="same")
        leakyReluLayer(scale)
        convolution2dLayer(filterSize,2*numFilters,Stride=2,Padding="same")
        layerNormalizationLayer
        leakyReluLayer(scale)
        convolution2dLayer(filterSize,4*numFilters,Stride=2,Padding="same")
        layerNormalizationLayer
        leakyReluLayer(scale)
        convolution2dLayer(filterSize,8*numFilters,Stride=2,Padding="same")
        layerNormalizationLayer
        leakyReluLayer(scale)
        convolution2dLayer(4,1)
        sigmoidLayer];
    netD = dlnetwork(layersD);

    filterSize = 5;
    numFilters = 64;
    numLatentInputs = 100;
    projectionSize = [4 4 512];
    layersG = [
        featureInputLayer(numLatentInputs,Normalization="none")
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
    netG = dlnetwork(layersG);

    miniBatchSize = 64;
    numIterationsG = 10000;
    numIterationsDPerG = 5;
    lambda = 10;
    learnRateD = 2e-4;
    learnRateG = 1e-3;
    gradientDecayFactor = 0;
    squaredGradientDecayFactor = 0.9;
    validationFrequency = 20;

    augimds.MiniBatchSize = miniBatchSize;
    mbq = minibatchqueue(augimds, MiniBatchSize=miniBatchSize, ...
        PartialMiniBatch="discard", MiniBatchFcn=@preprocessMiniBatch, ...
        MiniBatchFormat="SSCB");
    trailingAvgD = []; trailingAvgSqD = []; trailingAvgG = []; trailingAvgSqG = [];
    numValidationImages = 25;
    ZValidation = randn(numLatentInputs,numValidationImages,"single");
    ZValidation = dlarray(ZValidation,"CB");

    iterationG = 0;
    iterationD = 0;
    start = tic;
    while iterationG < numIterationsG
        iterationG = iterationG + 1;
        % Train discriminator only
        for n = 1:numIterationsDPerG
            iterationD = iterationD + 1;
            % Reset and shuffle mini-batch queue when there is no more data.
            if ~hasdata(mbq)
                shuffle(mbq);
            end
            X = next(mbq);
            Z = randn([numLatentInputs size(X,4)],like=X);
            Z = dlarray(Z,"CB");
            [lossD, lossDUnregularized, gradientsD] = dlfeval(@modelLossD, netD, netG, X, Z, lambda);
            [netD,trailingAvgD,trailingAvgSqD] = adamupdate(netD, gradientsD, ...
                trailingAvgD, trailingAvgSqD, iterationD, ...
                learnRateD, gradientDecayFactor, squaredGradientDecayFactor);
        end
        Z = randn([numLatentInputs size(X,4)],like=X);
        Z = dlarray(Z,"CB");
        [~,gradientsG] = dlfeval(@modelLossG, netG, netD, Z);
        [netG,trailingAvgG,trailingAvgSqG] = adamupdate(netG, gradientsG, ...
            trailingAvgG, trailingAvgSqG, iterationG, ...
            learnRateG, gradientDecayFactor, squaredGradientDecayFactor);
        if mod(iterationG,validationFrequency) == 0 || iterationG == 1
            XGeneratedValidation = predict(netG,ZValidation);
            I = imtile(extractdata(XGeneratedValidation));
            I = rescale(I);
            ...
        end
        lossD = double(lossD);
        lossDUnregularized = double(lossDUnregularized);
        ...
    end

    ZNew = randn(numLatentInputs,25,"single");
    ZNew = dlarray(ZNew,"CB");
    XGeneratedNew = predict(netG,ZNew);
    I = imtile(extractdata(XGeneratedNew));
    I = rescale(I);

    function [lossD, lossDUnregularized, gradientsD] = modelLossD(netD, netG, X, Z, lambda)
    YPred = forward(netD, X);
    XGenerated = forward(netG,Z);
    YPredGenerated = forward(netD, XGenerated);
    lossDUnregularized = mean(YPredGenerated - YPred);
    % Calculate and add the gradient penalty.
    epsilon = rand([1 1 1 size(X,4)],like=X);
    XHat = epsilon.*X + (1-epsilon).*XGenerated;
    YHat = forward(netD, XHat);
    gradientsHat = dlgradient(sum(YHat),XHat,EnableHigherDerivatives=true);
    gradientsHatNorm = sqrt(sum(gradientsHat.^2,1:3) + 1e-10);
    gradientPenalty = lambda.*mean((gradientsHatNorm - 1).^2);
    lossD = lossDUnregularized + gradientPenalty;
    gradientsD = dlgradient(lossD, netD.Learnables);
    end

    function [lossG,gradientsG] = modelLossG(netG, netD, Z)
    XGenerated = forward(netG,Z);
    YPredGenerated = forward(netD, XGenerated);
    lossG = -mean(YPredGenerated);
    gradientsG = dlgradient(lossG, netG.Learnables);
    end

    function X = preprocessMiniBatch(data)
    X = cat(4,data{:});
    X = rescale(X,-1,1,InputMin=0,InputMax=255);
    end

Note that ``modelLossG`` does not return the generator's batch-normalization state, and the
loop does not set ``netG.State``: as in the MathWorks code, the generator's running
statistics stay at their initial values (``predict`` normalizes with mean 0, variance 1).

Run ``python wgan_gp.py`` (``MLAYERS_EXAMPLE_SMALL=1`` for the seconds-long version).
"""
import os
import pathlib
import runpy
import time

import numpy as np

import mlayers as ml

HERE = pathlib.Path(__file__).resolve().parent


def shape_images(n, size, seed):
    """n synthetic ``size×size×3`` uint8 images (H×W×C×N, MATLAB order): one disk, square
    or triangle in a random bright colour, size and place, on a dark shaded background."""
    rs = np.random.default_rng(seed)
    v, u = np.meshgrid(np.arange(size) + 0.5, np.arange(size) + 0.5)   # u: rows, v: cols
    images = np.empty((size, size, 3, n), np.uint8)
    for k in range(n):
        background = rs.uniform(0.0, 0.25, 3) * (0.6 + 0.4 * u[..., None] / size)
        cu, cv = rs.uniform(0.3, 0.7, 2) * size
        r = rs.uniform(0.18, 0.32) * size
        kind = rs.integers(3)
        if kind == 0:                                   # disk
            d = r - np.hypot(u - cu, v - cv)
        elif kind == 1:                                 # square
            d = r - np.maximum(np.abs(u - cu), np.abs(v - cv))
        else:                                           # triangle (apex up)
            d = np.minimum((u - (cu - r)) * 0.6 - np.abs(v - cv), (cu + 0.7 * r) - u)
        inside = np.clip(d + 0.5, 0, 1)[..., None]      # one pixel of anti-aliasing
        colour = rs.uniform(0.35, 1.0, 3)
        img = background * (1 - inside) + colour * inside
        img += rs.normal(0, 0.015, img.shape)
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


# the GAN example's projectAndReshapeLayer (the same supporting file in both examples)
projectAndReshapeLayer = runpy.run_path(str(HERE / "gan.py"))["projectAndReshapeLayer"]


def generator_layers(imageSize, numLatentInputs, numFilters, filterSize=5):
    """The example's generator for imageSize = 8·2^k (64: the MATLAB array above)."""
    projectionSize = [4, 4, 8 * numFilters]
    layers = [ml.featureInputLayer(numLatentInputs, Normalization="none"),
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


def discriminator_layers(imageSize, numFilters, filterSize=5, scale=0.2):
    """The example's critic for imageSize = 8·2^k (64: the MATLAB array above): layer
    normalization (per observation) where the GAN example has batch normalization, and
    no dropout."""
    layers = [ml.imageInputLayer([imageSize, imageSize, 3], Normalization="none"),
              ml.convolution2dLayer(filterSize, numFilters, Stride=2, Padding="same"),
              ml.leakyReluLayer(scale)]
    f = numFilters
    for _ in range(int(np.log2(imageSize // 4)) - 1):  # 64: three stages, 32 -> 16 -> 8 -> 4
        f *= 2
        layers += [ml.convolution2dLayer(filterSize, f, Stride=2, Padding="same"),
                   ml.layerNormalizationLayer(),
                   ml.leakyReluLayer(scale)]
    layers += [ml.convolution2dLayer(4, 1),             # 4×4 -> 1×1
               ml.sigmoidLayer()]
    return layers


def modelLossD(netD, netG, X, Z, lambda_):
    # Calculate the predictions for real data with the discriminator network.
    YPred = ml.forward(netD, X)                        # YPred = forward(netD, X);

    # Calculate the predictions for generated data with the discriminator network.
    XGenerated = ml.forward(netG, Z)                   # XGenerated = forward(netG,Z);
    YPredGenerated = ml.forward(netD, XGenerated)

    # Calculate the loss.
    lossDUnregularized = ml.mean(YPredGenerated - YPred)

    # Calculate and add the gradient penalty.
    epsilon = ml.rand([1, 1, 1, ml.size(X, 4)], like=X)     # rand([1 1 1 size(X,4)],like=X)
    XHat = epsilon * X + (1 - epsilon) * XGenerated    # epsilon.*X + (1-epsilon).*XGenerated
    YHat = ml.forward(netD, XHat)

    # Calculate gradients. To enable computing higher-order derivatives, set
    # EnableHigherDerivatives to true.
    gradientsHat = ml.dlgradient(ml.sum(YHat), XHat, EnableHigherDerivatives=True)
    gradientsHatNorm = ml.sqrt(ml.sum(gradientsHat ** 2, [1, 2, 3]) + 1e-10)   # 1:3
    gradientPenalty = lambda_ * ml.mean((gradientsHatNorm - 1) ** 2)

    # Penalize loss.
    lossD = lossDUnregularized + gradientPenalty

    # Calculate the gradients of the penalized loss with respect to the learnables.
    gradientsD = ml.dlgradient(lossD, netD.Learnables)
    return lossD, lossDUnregularized, gradientsD


def modelLossG(netG, netD, Z):
    # Calculate the predictions for generated data with the discriminator network.
    XGenerated = ml.forward(netG, Z)
    YPredGenerated = ml.forward(netD, XGenerated)

    # Calculate the loss.
    lossG = -ml.mean(YPredGenerated)                   # lossG = -mean(YPredGenerated);

    # Calculate the gradients of the loss with respect to the learnable parameters.
    gradientsG = ml.dlgradient(lossG, netG.Learnables)
    return lossG, gradientsG


def preprocessMiniBatch(data):
    X = np.stack(data, axis=3)                         # cat(4, data{:})
    return rescale(X, -1, 1, InputMin=0, InputMax=255)


def train(images, netG, netD, numLatentInputs, numIterationsG, miniBatchSize,
          numIterationsDPerG=5, lambda_=10, learnRateD=2e-4, learnRateG=1e-3,
          gradientDecayFactor=0, squaredGradientDecayFactor=0.9, validationFrequency=20,
          numValidationImages=25, verbose=True):
    """The example's loop; returns both networks and the per-generator-iteration history."""
    mbq = ml.minibatchqueue(ml.arrayDatastore(images, IterationDimension=4),
                            MiniBatchSize=miniBatchSize,
                            PartialMiniBatch="discard",
                            MiniBatchFcn=preprocessMiniBatch,
                            MiniBatchFormat="SSCB")
    trailingAvgD, trailingAvgSqD = [], []
    trailingAvgG, trailingAvgSqG = [], []

    ZValidation = ml.randn(numLatentInputs, numValidationImages, "single")
    ZValidation = ml.dlarray(ZValidation, "CB")

    history = []
    iterationG = 0
    iterationD = 0
    start = time.perf_counter()                        # start = tic;
    while iterationG < numIterationsG:
        iterationG += 1

        # Train discriminator only.
        for n in range(1, numIterationsDPerG + 1):
            iterationD += 1

            # Reset and shuffle mini-batch queue when there is no more data.
            if not ml.hasdata(mbq):
                ml.shuffle(mbq)

            X = next(mbq)                              # X = next(mbq);
            Z = ml.randn([numLatentInputs, ml.size(X, 4)], like=X)
            Z = ml.dlarray(Z, "CB")

            lossD, lossDUnregularized, gradientsD = ml.dlfeval(
                modelLossD, netD, netG, X, Z, lambda_)

            netD, trailingAvgD, trailingAvgSqD = ml.adamupdate(
                netD, gradientsD, trailingAvgD, trailingAvgSqD, iterationD,
                learnRateD, gradientDecayFactor, squaredGradientDecayFactor)

        # Generate latent inputs for the generator network.
        Z = ml.randn([numLatentInputs, ml.size(X, 4)], like=X)
        Z = ml.dlarray(Z, "CB")

        lossG, gradientsG = ml.dlfeval(modelLossG, netG, netD, Z)   # [~,gradientsG] = ...

        netG, trailingAvgG, trailingAvgSqG = ml.adamupdate(
            netG, gradientsG, trailingAvgG, trailingAvgSqG, iterationG,
            learnRateG, gradientDecayFactor, squaredGradientDecayFactor)

        row = dict(iterationG=iterationG, iterationD=iterationD,
                   lossD=float(lossD),                 # lossD = double(lossD);
                   lossDUnregularized=float(lossDUnregularized),
                   lossG=float(lossG))
        history.append(row)
        if verbose:
            print(f"iteration {iterationG:3d} (discriminator {iterationD:3d}): "
                  f"lossD {row['lossD']:9.4f}  unregularized {row['lossDUnregularized']:8.4f}"
                  f"  lossG {row['lossG']:8.4f}  elapsed {time.perf_counter() - start:5.1f} s")

        # Every validationFrequency generator iterations, display a batch of generated
        # images using the held-out generator input.
        if iterationG % validationFrequency == 0 or iterationG == 1:
            XGeneratedValidation = ml.predict(netG, ZValidation)
            I = imtile(ml.extractdata(XGeneratedValidation))
            I = rescale(I)
            if verbose:
                x = ml.extractdata(XGeneratedValidation)
                print(f"  validation: {I.shape[0]}×{I.shape[1]}×{I.shape[2]} tile of "
                      f"{x.shape[3]} generated images, values in "
                      f"[{x.min():.3f}, {x.max():.3f}], spread across images "
                      f"{x.std(axis=3).mean():.4f}")
    return netG, netD, history


def main():
    small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
    # imageSize, numFilters, numImages, numIterationsG, miniBatchSize, validationFrequency
    imageSize, numFilters, numImages, numIterationsG, miniBatchSize, validationFrequency = (
        (16, 8, 64, 10, 16, 5) if small else (32, 16, 256, 20, 32, 5))
    numLatentInputs = 100

    images = shape_images(numImages, imageSize, seed=1)
    ml.rng(0)
    netD = ml.dlnetwork(discriminator_layers(imageSize, numFilters))
    netG = ml.dlnetwork(generator_layers(imageSize, numLatentInputs, numFilters))
    print(ml.layer_array(netD.Layers))
    print(ml.layer_array(netG.Layers))
    print(netD.Layers[4])                              # a layerNormalizationLayer
    print(netG)

    start = time.perf_counter()
    netG, netD, history = train(images, netG, netD, numLatentInputs, numIterationsG,
                                miniBatchSize, validationFrequency=validationFrequency)
    seconds = time.perf_counter() - start

    # Generate new images.
    ZNew = ml.randn(numLatentInputs, 25, "single")
    ZNew = ml.dlarray(ZNew, "CB")
    XGeneratedNew = ml.predict(netG, ZNew)
    I = rescale(imtile(ml.extractdata(XGeneratedNew)))
    x = ml.extractdata(XGeneratedNew)
    print(f"generator output size: "
          f"{' × '.join(f'{s}({d})' for s, d in zip(x.shape, XGeneratedNew.dims))} "
          f"{x.dtype}, values in [{x.min():.3f}, {x.max():.3f}]; tile {I.shape}")
    YNew = ml.predict(netD, XGeneratedNew)
    print(f"discriminator output size: "
          f"{' × '.join(f'{s}({d})' for s, d in zip(YNew.shape, YNew.dims))}")

    values = np.array([[h[k] for k in ("lossD", "lossDUnregularized", "lossG")]
                       for h in history])
    finite = bool(np.all(np.isfinite(values))) and bool(np.all(np.isfinite(x)))
    print(f"{len(history)} generator iterations ({history[-1]['iterationD']} discriminator "
          f"iterations) in {seconds:.1f} s; every loss and generated pixel finite: {finite}")
    if not finite:
        raise SystemExit("non-finite values in training")
    return history


if __name__ == "__main__":
    main()
