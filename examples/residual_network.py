"""A residual network as a layer graph: MathWorks' "Train Residual Network for Image
Classification" structure (the CIFAR-10 ResNet), built, analyzed, plotted, run and
trained for one epoch on synthetic data.

MATLAB (the example's structure; netWidth = 16, 32×32×3 images, 10 classes)::

    layers = [
        imageInputLayer([32 32 3],'Name','input')
        convolution2dLayer(3,netWidth,'Padding','same','Name','convInp')
        batchNormalizationLayer('Name','BNInp')
        reluLayer('Name','reluInp')
        convolutionalUnit(netWidth,1,'S1U1')
        additionLayer(2,'Name','add11')
        reluLayer('Name','relu11')
        convolutionalUnit(netWidth,1,'S1U2')
        additionLayer(2,'Name','add12')
        reluLayer('Name','relu12')
        convolutionalUnit(2*netWidth,2,'S2U1')
        additionLayer(2,'Name','add21')
        ...                                       % S2U2, S3U1 (stride 2), S3U2
        averagePooling2dLayer(8,'Name','globalPool')
        fullyConnectedLayer(10,'Name','fcFinal')
        softmaxLayer('Name','softmax')
        classificationLayer('Name','classOutput')];
    lgraph = layerGraph(layers);
    lgraph = connectLayers(lgraph,'reluInp','add11/in2');
    lgraph = connectLayers(lgraph,'relu11','add12/in2');
    skip1 = [convolution2dLayer(1,2*netWidth,'Stride',2,'Name','skipConv1')
             batchNormalizationLayer('Name','skipBN1')];
    lgraph = addLayers(lgraph,skip1);
    lgraph = connectLayers(lgraph,'relu12','skipConv1');
    lgraph = connectLayers(lgraph,'skipBN1','add21/in2');
    ...                                           % add22/in2, skip2, add31/in2, add32/in2
    plot(lgraph); analyzeNetwork(lgraph)
    net = trainNetwork(XTrain,YTrain,lgraph,options);

where ``convolutionalUnit(numF,stride,tag)`` is conv(3, 'same', stride) - BN - ReLU -
conv(3, 'same') - BN.  Set MLAYERS_EXAMPLE_SMALL=1 for a quick run (netWidth 4, 16×16
images); MLAYERS_PLOT=path.png saves ``plot(lgraph)``.
"""
import os

import numpy as np

import mlayers as ml

small = os.environ.get("MLAYERS_EXAMPLE_SMALL") == "1"
net_width, image_size, num_classes, num_images = (4, 16, 10, 40) if small else (16, 32, 10, 256)


def convolutional_unit(num_f, stride, tag):
    return [ml.convolution2dLayer(3, num_f, Padding="same", Stride=stride, Name=tag + "conv1"),
            ml.batchNormalizationLayer(Name=tag + "BN1"),
            ml.reluLayer(Name=tag + "relu1"),
            ml.convolution2dLayer(3, num_f, Padding="same", Name=tag + "conv2"),
            ml.batchNormalizationLayer(Name=tag + "BN2")]


def residual_graph(w=net_width, size=image_size, classes=num_classes):
    layers = [ml.imageInputLayer([size, size, 3], Name="input"),
              ml.convolution2dLayer(3, w, Padding="same", Name="convInp"),
              ml.batchNormalizationLayer(Name="BNInp"),
              ml.reluLayer(Name="reluInp")]
    for stage, (f, s) in enumerate(((w, 1), (2 * w, 2), (4 * w, 2)), start=1):
        for unit, stride in ((1, s), (2, 1)):
            layers += convolutional_unit(f, stride, f"S{stage}U{unit}")
            layers += [ml.additionLayer(2, Name=f"add{stage}{unit}"),
                       ml.reluLayer(Name=f"relu{stage}{unit}")]
    layers += [ml.averagePooling2dLayer(size // 4, Name="globalPool"),
               ml.fullyConnectedLayer(classes, Name="fcFinal"),
               ml.softmaxLayer(Name="softmax"),
               ml.classificationLayer(Name="classOutput")]
    lgraph = ml.layerGraph(layers)
    lgraph = ml.connectLayers(lgraph, "reluInp", "add11/in2")
    lgraph = ml.connectLayers(lgraph, "relu11", "add12/in2")
    for k, (stage, f) in enumerate(((2, 2 * w), (3, 4 * w)), start=1):
        lgraph = ml.addLayers(lgraph, [
            ml.convolution2dLayer(1, f, Stride=2, Name=f"skipConv{k}"),
            ml.batchNormalizationLayer(Name=f"skipBN{k}")])
        lgraph = ml.connectLayers(lgraph, f"relu{stage - 1}2", f"skipConv{k}")
        lgraph = ml.connectLayers(lgraph, f"skipBN{k}", f"add{stage}1/in2")
        lgraph = ml.connectLayers(lgraph, f"relu{stage}1", f"add{stage}2/in2")
    return lgraph


if __name__ == "__main__":
    lgraph = residual_graph()
    lgraph.display("lgraph")
    print(lgraph.Connections[4], "...")

    fig = ml.plot(lgraph)                               # MATLAB's plot(lgraph)
    if os.environ.get("MLAYERS_PLOT"):
        fig.savefig(os.environ["MLAYERS_PLOT"], dpi=110, bbox_inches="tight")

    info = ml.analyzeNetwork(lgraph)                    # activations, learnables, issues
    assert info.NumErrors == 0

    # A dlnetwork for prediction (the output layer is dropped) and one forward pass.
    ml.rng(0)
    net = ml.dlnetwork(lgraph)
    rng = np.random.default_rng(0)
    X = rng.random((image_size, image_size, 3, num_images)).astype(np.float32)
    scores = ml.predict(net, ml.dlarray(X, "SSCB"))
    print(f"predict: output size {scores.shape} ({scores.dims}), "
          f"{info.TotalLearnables} learnables")

    # One epoch of training on synthetic labels (the training engineer's trainNetwork).
    if hasattr(ml, "trainNetwork"):
        labels = ml.categorical([str(k) for k in rng.integers(0, num_classes, num_images)])
        options = ml.trainingOptions("sgdm", InitialLearnRate=0.1, MaxEpochs=1,
                                     MiniBatchSize=min(128, num_images // 2), Verbose=False)
        trained = ml.trainNetwork(X, labels, lgraph, options)
        YPred = ml.classify(trained, X)
        print(f"trained 1 epoch: training accuracy {np.mean(YPred == labels):.2f}, "
              f"output size {len(YPred)} labels")
