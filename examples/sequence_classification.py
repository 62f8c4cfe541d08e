"""Sequence Classification Using Deep Learning (MathWorks example), in mlayers.

An LSTM network classifies variable-length sequences: ``sequenceInputLayer`` ->
``lstmLayer(..., OutputMode="last")`` -> ``fullyConnectedLayer`` -> ``softmaxLayer`` ->
``classificationLayer``, trained with ``trainNetwork`` on a Python list of ``C x T_i``
sequences (MATLAB's cell array), mini-batches padded by ``SequenceLength``.  The
MathWorks example uses the Japanese Vowels data (12 channels, 9 speakers); here the
sequences are synthetic: each class is a characteristic pair of frequencies in two
channels, with random phase, length (10 to 30 steps) and noise.

MATLAB::

    layers = [ ...
        sequenceInputLayer(inputSize)
        lstmLayer(numHiddenUnits,OutputMode="last")
        fullyConnectedLayer(numClasses)
        softmaxLayer
        classificationLayer];
    options = trainingOptions("adam", MaxEpochs=maxEpochs, MiniBatchSize=miniBatchSize, ...
        SequenceLength="longest", Shuffle="never", Verbose=0);
    net = trainNetwork(XTrain,TTrain,layers,options);
    YPred = classify(net,XTest,MiniBatchSize=miniBatchSize,SequenceLength="longest");
    acc = mean(YPred == TTest)

The MathWorks example sorts the training sequences by length first, so that each
mini-batch pads little (there is no masking: the layers run over the padding, and with
``OutputMode="last"`` right padding changes the last step a short sequence reports).
This port does the same.

Run ``python examples/sequence_classification.py`` (``--small`` or
``MLAYERS_EXAMPLE_SMALL=1`` for a quick run).
"""
import argparse
import os

import numpy as np

import mlayers as ml

FREQUENCIES = ((0.05, 0.11), (0.09, 0.04), (0.14, 0.20), (0.20, 0.07))


def make_sequences(n, num_classes=4, seed=0):
    """``n`` sequences (2 x T_i float32, T_i in 10..30) and their labels (categorical)."""
    rng = np.random.default_rng(seed)
    X, labels = [], []
    for i in range(n):
        k = int(rng.integers(num_classes))
        T = int(rng.integers(10, 31))
        t = np.arange(T)
        f = FREQUENCIES[k]
        x = np.stack([np.sin(2 * np.pi * f[0] * t + rng.uniform(0, 2 * np.pi)),
                      np.sin(2 * np.pi * f[1] * t + rng.uniform(0, 2 * np.pi))])
        X.append((x + 0.3 * rng.standard_normal(x.shape)).astype(np.float32))
        labels.append(f"class{k + 1}")
    return X, labels


def main(num_train=270, num_test=370, num_hidden=100, max_epochs=30, mini_batch=27,
         seed=0, verbose=True):
    """Train and classify; returns a dict with the test accuracy."""
    ml.rng(seed)
    XTrain, labels = make_sequences(num_train, seed=seed)
    order = np.argsort([x.shape[1] for x in XTrain], kind="stable")  # sort by length
    XTrain = [XTrain[i] for i in order]
    TTrain = ml.categorical([labels[i] for i in order])
    XTest, test_labels = make_sequences(num_test, seed=seed + 1)
    TTest = ml.categorical(test_labels)

    layers = [ml.sequenceInputLayer(2),
              ml.lstmLayer(num_hidden, OutputMode="last"),
              ml.fullyConnectedLayer(len(ml.categories(TTrain))),
              ml.softmaxLayer(),
              ml.classificationLayer()]
    options = ml.trainingOptions("adam", MaxEpochs=max_epochs, MiniBatchSize=mini_batch,
                                 InitialLearnRate=0.01, GradientThreshold=1,
                                 SequenceLength="longest",
                                 Shuffle="never", Verbose=False)
    net = ml.trainNetwork(XTrain, TTrain, layers, options)
    YPred, scores = ml.classify(net, XTest, MiniBatchSize=mini_batch,
                                SequenceLength="longest", nargout=2)
    acc = float(np.mean(YPred == TTest))
    if verbose:
        print(net.Layers)
        print(net.Layers[1])                    # the trained LSTM layer's display
        print(f"scores output size: {scores.shape[0]}×{scores.shape[1]}")
        print(f"test accuracy: {acc:.4f} ({num_test} sequences of 10 to 30 steps)")
    return dict(accuracy=acc)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--small", action="store_true", help="a quick run at small size")
    args = ap.parse_args([] if os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1" else None)
    if args.small or os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1":
        main(num_train=120, num_test=80, num_hidden=24, max_epochs=12, mini_batch=20)
    else:
        main()
