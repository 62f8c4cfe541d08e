"""dlnetwork: building (validation, automatic names, size inference, initialization),
Learnables/State tables, predict end to end against a hand composition with the sparse
oracle (``mlayers.reference``) and numpy, analyzeNetwork and the displays."""
import numpy as np
import pytest
from conftest import assert_close

import mlayers as ml
from mlayers import _rng
from mlayers import reference as R
from mlayers.layers.activation import reluLayer, softmaxLayer
from mlayers.layers.batchnorm import batchNormalizationLayer
from mlayers.layers.classification import classificationLayer
from mlayers.layers.fully_connected import fullyConnectedLayer
from mlayers.layers.input import imageInputLayer, sequenceInputLayer
from mlayers.layers.pooling import averagePooling2dLayer, maxPooling2dLayer
from mlayers.network import Table, analyzeNetwork, dlnetwork, summary


def small_layers(**input_options):
    """imageInput -> conv -> bn -> relu -> maxpool -> fc -> softmax (-> classification)."""
    c = 4
    rng = np.random.default_rng(7)
    return [
        imageInputLayer([6, 5, 2], **input_options),
        ml.convolution2dLayer(3, c, Padding="same"),
        batchNormalizationLayer(
            TrainedMean=rng.standard_normal((1, 1, c)), TrainedVariance=0.5 + rng.random((1, 1, c)),
            Offset=rng.standard_normal((1, 1, c)), Scale=rng.standard_normal((1, 1, c))),
        reluLayer(),
        maxPooling2dLayer(2, Stride=2),
        fullyConnectedLayer(3),
        softmaxLayer(),
        classificationLayer(),
    ]


# --------------------------------------------------------------------------- end to end

def test_end_to_end_against_hand_composition(rng, dtype):
    mean = rng.standard_normal((1, 1, 2))
    std = 1 + rng.random((1, 1, 2))
    ml.rng(0)
    net = dlnetwork(small_layers(Normalization="zscore", Mean=mean, StandardDeviation=std))
    x = rng.standard_normal((6, 5, 2, 3)).astype(dtype)
    Y = ml.predict(net, ml.dlarray(x, "SSCB"))
    assert Y.dims == "CB" and Y.shape == (3, 3)
    assert Y.dtype == np.float64 if dtype == np.float64 else np.float32

    L = net.Layers
    h = (x.astype(float) - mean[..., None]) / std[..., None]                    # zscore
    w = L[1].Weights.astype(float)
    h = R.conv(h, w, L[1].Bias.ravel(), stride=1, dilation=1,
               padding=[[1, 1], [1, 1]])                                        # 'same', 3×3
    bn = L[2]
    p = {n: getattr(bn, n).astype(float).reshape(-1, 1)
         for n in ("TrainedMean", "TrainedVariance", "Offset", "Scale")}
    h = p["Scale"] * (h - p["TrainedMean"]) / np.sqrt(p["TrainedVariance"] + 1e-5) + p["Offset"]
    h = np.maximum(h, 0)
    pooled = np.empty((3, 2) + h.shape[2:])
    for i in range(3):
        for j in range(2):
            pooled[i, j] = h[2 * i:2 * i + 2, 2 * j:2 * j + 2].max(axis=(0, 1))
    z = L[5].Weights.astype(float) @ pooled.reshape(-1, 3, order="F") + L[5].Bias
    e = np.exp(z - z.max(axis=0))
    assert_close(ml.extractdata(Y), e / e.sum(axis=0), dtype, fan_in=200)
    # The same through the method and through unformatted data with DataFormat.
    np.testing.assert_array_equal(net.predict(ml.dlarray(x, "SSCB")).data, Y.data)
    U = ml.predict(net, x.transpose(3, 2, 0, 1), DataFormat="BCSS")
    assert U.dims == "" and U.shape == (3, 3)
    np.testing.assert_allclose(ml.extractdata(U), Y.data, rtol=1e-6)


def test_outputs_option_returns_intermediate_activations():
    net = dlnetwork(small_layers(Normalization="none"))
    x = ml.dlarray(np.ones((6, 5, 2, 1)), "SSCB")
    relu = net.predict(x, Outputs="relu")
    assert relu.dims == "SSCB" and relu.shape == (6, 5, 4, 1) and np.all(relu.data >= 0)
    pool, fc = ml.predict(net, x, "Outputs", ["maxpool", "fc"])
    assert pool.shape == (3, 2, 4, 1) and fc.shape == (3, 1)
    with pytest.raises(ValueError, match="^predict: Outputs must name layers of the network"):
        net.predict(x, Outputs="nope")


# --------------------------------------------------------------------------- building

def test_build_infers_sizes_names_and_copies():
    layers = small_layers()
    net = dlnetwork(layers)
    # The caller's layers are untouched (MATLAB layers are values).
    assert layers[1].NumChannels == "auto" and layers[1].Weights.size == 0
    assert layers[1].Name == ""
    L = net.Layers
    assert isinstance(L, ml.LayerArray) and len(L) == 7         # classification dropped
    assert [layer.Name for layer in L] == ["imageinput", "conv", "batchnorm", "relu",
                                           "maxpool", "fc", "softmax"]
    assert L[1].NumChannels == 2 and L[1].Weights.shape == (3, 3, 2, 4)
    assert L[2].NumChannels == 4
    assert L[5].InputSize == 3 * 2 * 4 and L[5].Weights.shape == (3, 24)
    assert L[0].Mean.shape == (1, 1, 2) and not L[0].Mean.any()   # neutral statistics
    assert net.InputNames == ["imageinput"] and net.OutputNames == ["softmax"]
    assert net.Initialized is True
    assert net.Connections.Source == ["imageinput", "conv", "batchnorm", "relu", "maxpool",
                                      "fc"]


def test_automatic_names():
    layers = [imageInputLayer([8, 8, 1], Normalization="none"),
              ml.convolution2dLayer(3, 2), reluLayer(),
              ml.convolution2dLayer(3, 2, Name="conv_1"), reluLayer(Name="act"),
              ml.convolution2dLayer(1, 2), batchNormalizationLayer(),
              ml.groupedConvolution2dLayer(1, 1, "channel-wise"), reluLayer(),
              averagePooling2dLayer(2)]
    names = [layer.Name for layer in dlnetwork(layers).Layers]
    # Duplicated default names are numbered in order, skipping names already given.
    assert names == ["imageinput", "conv_2", "relu_1", "conv_1", "act", "conv_3", "batchnorm",
                     "groupedconv", "relu_2", "avgpool"]


def test_learnables_and_state_tables():
    ml.rng(0)
    net = dlnetwork(small_layers())
    t = net.Learnables
    assert isinstance(t, Table) and t.size == (6, 3)
    assert t.VariableNames == ["Layer", "Parameter", "Value"]
    assert list(zip(t.Layer, t.Parameter)) == [
        ("conv", "Weights"), ("conv", "Bias"), ("batchnorm", "Offset"), ("batchnorm", "Scale"),
        ("fc", "Weights"), ("fc", "Bias")]
    L = net.Layers
    assert isinstance(t[0].Value, ml.dlarray) and t[0].Value.dims == ""
    np.testing.assert_array_equal(ml.extractdata(t[0].Value), L[1].Weights)
    np.testing.assert_array_equal(ml.extractdata(t[4].Value), L[5].Weights)
    s = net.State
    assert list(zip(s.Layer, s.Parameter)) == [("batchnorm", "TrainedMean"),
                                               ("batchnorm", "TrainedVariance")]
    text = repr(t)
    assert text.startswith("  6×3 table\n\n")
    assert '    "conv"         "Weights"    {3×3×2×4 dlarray}' in text
    assert "    ___________    _________    _________________\n" in text


def test_initialization_order_and_initializers():
    # Layer order, Weights before Bias, from MATLAB's stream: conv glorot (numIn = 3·3·2,
    # numOut = 3·3·4) then fc glorot (numIn = 24, numOut = 3); biases and bn draw nothing.
    ml.rng(0)
    net = dlnetwork(small_layers())
    ml.rng(0)
    w1 = np.sqrt(6 / (18 + 36)) * (2 * _rng.rand(3, 3, 2, 4) - 1)
    w2 = np.sqrt(6 / (24 + 3)) * (2 * _rng.rand(3, 24) - 1)
    L = net.Layers
    np.testing.assert_allclose(L[1].Weights, w1, rtol=1e-6)
    np.testing.assert_allclose(L[5].Weights, w2, rtol=1e-6)
    assert L[1].Weights.dtype == np.float32 and not L[1].Bias.any()


def test_given_learnables_are_kept():
    layers = small_layers()
    w = np.full((3, 3, 2, 4), 0.5, np.float32)
    layers[1] = ml.convolution2dLayer(3, 4, Padding="same", Weights=w)
    net = dlnetwork(layers)
    np.testing.assert_array_equal(net.Layers[1].Weights, w)


def test_example_input_and_uninitialized_networks():
    block = [ml.convolution2dLayer(3, 4, Padding="same"), batchNormalizationLayer(),
             reluLayer()]
    X = ml.dlarray(np.ones((5, 5, 3, 2), np.float32), "SSCB")
    net = dlnetwork(block, X)
    assert net.Layers[0].NumChannels == 3 and net.InputNames == ["conv"]
    assert ml.predict(net, X).shape == (5, 5, 4, 2)
    net = dlnetwork(block, Initialize=False)
    assert net.Initialized is False and net.Layers[0].Weights.size == 0
    assert "    Initialized: 0\n" in repr(net)
    with pytest.raises(ValueError, match="^predict: the network must be initialized"):
        net.predict(X)
    assert net.initialize(X) is net and net.Initialized
    assert net.predict(X).shape == (5, 5, 4, 2)


def test_sequence_network():
    net = dlnetwork([sequenceInputLayer(3, Name="seq"), fullyConnectedLayer(4),
                     reluLayer(), fullyConnectedLayer(2), softmaxLayer()])
    assert net.Layers[1].InputSize == 3 and net.Layers[3].InputSize == 4
    Y = net.predict(ml.dlarray(np.ones((3, 2, 7)), "CBT"))
    assert Y.dims == "CBT" and Y.shape == (2, 2, 7)
    np.testing.assert_allclose(Y.data.sum(axis=0), 1)


# --------------------------------------------------------------------------- validation

@pytest.mark.parametrize("layers, message", [
    (lambda: [ml.convolution2dLayer(3, 2), reluLayer()],
     (r"^dlnetwork: the first layer must be an input layer \(imageInputLayer or "
      r"sequenceInputLayer\), got layer 1 'conv' \(2-D Convolution\); give example inputs")),
    (lambda: [imageInputLayer([4, 4, 1]), reluLayer(), imageInputLayer([4, 4, 1], Name="x")],
     (r"^dlnetwork: layer 3 'x' \(Image Input\) is an input layer; an input layer must be the "
      r"first layer$")),
    (lambda: [imageInputLayer([4, 4, 1]), classificationLayer(), reluLayer()],
     (r"^dlnetwork: layer 2 '' \(Classification Output\) is an output layer; output layers may "
      r"only be the last layer")),
    (lambda: [imageInputLayer([4, 4, 1], Name="a"), reluLayer(Name="a")],
     (r"^dlnetwork: layer names must be unique, got 'a' for layers 1 and 2$")),
    (lambda: [imageInputLayer([8, 8, 2], Name="in"),
              ml.convolution2dLayer(3, 4, Weights=np.zeros((3, 3, 3, 4)), Name="c1")],
     (r"^dlnetwork: layer 2 'c1' \(2-D Convolution\): the number of input channels must be 3 "
      r"\(NumChannels of Convolution2DLayer 'c1'\), got 2$")),
    (lambda: [imageInputLayer([8, 8, 2]), batchNormalizationLayer(Scale=np.ones((1, 1, 3)))],
     (r"^dlnetwork: layer 2 'batchnorm' \(Batch Normalization\): the number of input channels "
      r"must be 3")),
    (lambda: [imageInputLayer([3, 3, 1]), maxPooling2dLayer(2, Stride=2), maxPooling2dLayer(2)],
     (r"^dlnetwork: layer 3 'maxpool_2' \(2-D Max Pooling\): the padded input of "
      r"MaxPooling2DLayer 'maxpool_2' \(1×1 plus padding\) must be at least PoolSize 2×2")),
    (lambda: [imageInputLayer([4, 4, 1]), ml.convolution2dLayer(5, 2)],
     (r"^dlnetwork: layer 2 'conv' \(2-D Convolution\): along spatial dimension 1 the padded "
      r"input \(4 \+ 0 \+ 0\) is smaller than the filter")),
    (lambda: [imageInputLayer([4, 4, 1]), fullyConnectedLayer(2, Weights=np.zeros((2, 5)))],
     (r"^dlnetwork: layer 2 'fc' \(Fully Connected\): the input of FullyConnectedLayer 'fc' "
      r"must have InputSize \(5\) elements per observation, got 16$")),
    (lambda: [sequenceInputLayer(3), ml.convolution2dLayer(3, 2)],
     (r"^dlnetwork: layer 2 'conv' \(2-D Convolution\): the input format of Convolution2DLayer "
      r"'conv' must be one of .*, got 'CBT'$")),
    (list, r"^dlnetwork: layers must contain at least one layer"),
])
def test_validation_errors_name_the_layer(layers, message):
    with pytest.raises(ValueError, match=message):
        dlnetwork(layers())


def test_type_errors():
    with pytest.raises(TypeError, match="^layer_array: element 2 must be a layer, got int"):
        dlnetwork([reluLayer(), 3])
    with pytest.raises(TypeError, match="^dlnetwork: unknown name 'Initialise'"):
        dlnetwork([reluLayer()], Initialise=False)
    with pytest.raises(ValueError, match="^dlnetwork: example inputs are only for networks "
                                         "without an input layer"):
        dlnetwork([imageInputLayer([2, 2])], ml.dlarray(np.zeros((2, 2, 1, 1)), "SSCB"))


def test_predict_errors_name_the_layer():
    net = dlnetwork(small_layers(Normalization="none"))
    with pytest.raises(ValueError, match=r"^predict: layer 1 'imageinput' \(Image Input\): the "
                                         r"input of ImageInputLayer 'imageinput' must be of size "
                                         r"6×5×2 \(InputSize\) per observation, got 5×5×2"):
        net.predict(ml.dlarray(np.zeros((5, 5, 2, 1)), "SSCB"))
    with pytest.raises(TypeError, match="^predict: the first argument must be a layer or a "
                                        "network"):
        ml.predict(object(), np.zeros(2))


# --------------------------------------------------------------------------- displays

def test_network_display(capsys):
    net = dlnetwork(small_layers())
    net.display("net")
    assert capsys.readouterr().out == """\
net = 

  dlnetwork with properties:

         Layers: [7×1 nnet.cnn.layer.Layer]
    Connections: [6×2 table]
     Learnables: [6×3 table]
          State: [2×3 table]
     InputNames: {'imageinput'}
    OutputNames: {'softmax'}
    Initialized: 1

  View summary with summary.

"""


def test_analyze_network_and_summary(capsys):
    net = dlnetwork(small_layers())
    info = analyzeNetwork(net)
    text = capsys.readouterr().out
    expected_total = (3 * 3 * 2 * 4 + 4) + (4 + 4) + (3 * 24 + 3)
    assert info.TotalLearnables == expected_total
    assert f"  Total learnables: {expected_total}\n" in text
    rows = list(info.LayerInfo)
    assert rows[1].Name == "conv" and rows[1].Type == "2-D Convolution"
    assert rows[1].Activations == "6(S) × 5(S) × 4(C) × 1(B)"
    assert rows[1].LearnableSizes == "Weights 3×3×2×4, Bias 1×1×4"
    assert rows[1].NumLearnables == 76
    assert rows[4].Activations == "3(S) × 2(S) × 4(C) × 1(B)"
    assert rows[5].Activations == "3(C) × 1(B)"
    assert rows[5].LearnableSizes == "Weights 3×24, Bias 3×1"
    assert "    2   'conv'         2-D Convolution" in text
    # A layer array is built first.
    assert analyzeNetwork(small_layers()).TotalLearnables == expected_total
    capsys.readouterr()
    summary(net)
    assert capsys.readouterr().out == (
        "   Initialized: true\n\n   Number of learnables: 159\n\n   Inputs:\n"
        "      1   'imageinput'   6×5×2 images with 'zerocenter' normalization\n\n")


def test_inputs_without_batch_and_split_complex():
    net = dlnetwork(small_layers(Normalization="none"))
    Y = net.predict(ml.dlarray(np.ones((6, 5, 2)), "SSC"))           # one observation, no B
    assert Y.dims == "C" and Y.shape == (3,)
    net = dlnetwork([imageInputLayer([4, 4, 2], Normalization="none", SplitComplexInputs=True),
                     ml.convolution2dLayer(1, 3)])
    assert net.Layers[1].NumChannels == 4                    # real and imaginary channels
    assert net.predict(ml.dlarray(np.ones((4, 4, 2, 1)), "SSCB")).shape == (4, 4, 3, 1)


def test_table_and_counts():
    from mlayers.network import _count
    t = Table(("A", "B"), [("x", 1), ("y", 2)])
    assert t.A == ["x", "y"] and t[1].B == 2 and len(t) == 2 and next(iter(t)).A == "x"
    with pytest.raises(AttributeError, match="^Table: unrecognized variable 'C'; variables "
                                             "are: A, B$"):
        t.C  # noqa: B018
    assert [_count(n) for n in (159, 1234, 261829, 2_500_000)] == ["159", "1.2k", "261.8k",
                                                                  "2.5M"]
