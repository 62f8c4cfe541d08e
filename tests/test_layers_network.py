"""The network layers: input, batch normalization, ReLU, softmax, pooling, fully connected
and classification layers.  Hand-computed values (MATLAB_SEMANTICS §2.2 formulas, §8 items
7, 10, 11) in both dtypes, golden and candidate displays (§6.2, §6.3), layer-array rows
(§6.4) and error messages (§7.3).

The layers are imported from their modules, so the tests do not depend on the package
exports.
"""
import numpy as np
import pytest
from conftest import assert_close

import mlayers as ml
from mlayers import _rng
from mlayers._props import ReadOnlyPropertyError
from mlayers.layers.activation import ReLULayer, reluLayer, softmaxLayer
from mlayers.layers.batchnorm import batchNormalizationLayer
from mlayers.layers.classification import classificationLayer
from mlayers.layers.fully_connected import fullyConnectedLayer
from mlayers.layers.input import imageInputLayer, sequenceInputLayer
from mlayers.layers.pooling import averagePooling2dLayer, maxPooling2dLayer


def run(layer, x, fmt):
    return ml.extractdata(ml.predict(layer, ml.dlarray(x, fmt)))


def shown(layer, capsys, name="layer"):
    layer.display(name)
    return capsys.readouterr().out


def image(rows, dtype=np.float64):
    """A 2-D MATLAB matrix as a one-channel, one-observation SSCB array."""
    return np.array(rows, dtype=dtype)[:, :, None, None]


# --------------------------------------------------------------------------- displays

GOLDEN_IMAGE_INPUT = """\
imgLayer = 

  ImageInputLayer with properties:

                      Name: 'input_1'
                 InputSize: [1200 900 3]
        SplitComplexInputs: 0

   Hyperparameters
          DataAugmentation: 'none'
             Normalization: 'zerocenter'
    NormalizationDimension: 'auto'
                      Mean: []

"""

GOLDEN_SEQUENCE_INPUT = """\
  SequenceInputLayer with properties:

                      Name: ''
                 InputSize: 4
                 MinLength: 1
        SplitComplexInputs: 0

   Hyperparameters
             Normalization: 'rescale-symmetric'
    NormalizationDimension: 'auto'
                       Max: []
                       Min: []
"""

GOLDEN_FC = """\
ans = 

  FullyConnectedLayer with properties:

          Name: ''

   Hyperparameters
     InputSize: 'auto'
    OutputSize: 1

   Learnable Parameters
       Weights: []
          Bias: []

  Show all properties

"""

CANDIDATE_BATCHNORM = """\
  BatchNormalizationLayer with properties:

               Name: ''
        NumChannels: 'auto'

   Hyperparameters
          MeanDecay: 0.1000
      VarianceDecay: 0.1000
            Epsilon: 1.0000e-05

   Learnable Parameters
             Offset: []
              Scale: []

   State Parameters
        TrainedMean: []
    TrainedVariance: []

  Show all properties
"""

CANDIDATE_RELU = """\
  ReLULayer with properties:

    Name: ''

   Learnable Parameters
    No properties.

   State Parameters
    No properties.

  Show all properties
"""

CANDIDATE_MAXPOOL = """\
  MaxPooling2DLayer with properties:

                   Name: 'pool1'
    HasUnpoolingOutputs: 0
             NumOutputs: 1
            OutputNames: {'out'}

   Hyperparameters
               PoolSize: [3 3]
                 Stride: [2 2]
            PaddingMode: 'manual'
            PaddingSize: [0 0 0 0]
"""

CANDIDATE_AVGPOOL = """\
  AveragePooling2DLayer with properties:

            Name: ''

   Hyperparameters
        PoolSize: [2 2]
          Stride: [1 1]
     PaddingMode: 'same'
     PaddingSize: []
    PaddingValue: 'mean'
"""

CANDIDATE_CLASSIFICATION = """\
  ClassificationOutputLayer with properties:

            Name: ''
         Classes: 'auto'
    ClassWeights: 'none'
      OutputSize: 'auto'

   Hyperparameters
    LossFunction: 'crossentropyex'
"""


def test_golden_image_input(capsys):
    # The transcript omits the blank line after "imgLayer = " (§6.2); MATLAB prints it.
    assert shown(imageInputLayer([1200, 900, 3], "Name", "input_1"), capsys,
                 "imgLayer") == GOLDEN_IMAGE_INPUT


def test_golden_sequence_input():
    assert repr(sequenceInputLayer(4, Normalization="rescale-symmetric")).startswith(
        GOLDEN_SEQUENCE_INPUT)


def test_golden_fully_connected(capsys):
    assert shown(fullyConnectedLayer(1), capsys, "ans") == GOLDEN_FC


@pytest.mark.parametrize("layer, expected", [
    (batchNormalizationLayer, CANDIDATE_BATCHNORM),
    (reluLayer, CANDIDATE_RELU),
    (lambda: maxPooling2dLayer(3, "Stride", 2, Name="pool1"), CANDIDATE_MAXPOOL),
    (lambda: averagePooling2dLayer(2, Padding="same", PaddingValue="mean"), CANDIDATE_AVGPOOL),
    (classificationLayer, CANDIDATE_CLASSIFICATION),
], ids=["batchnorm", "relu", "maxpool", "avgpool", "classification"])
def test_candidate_displays(layer, expected):
    assert repr(layer()) == expected


def test_softmax_display_is_relu_display():
    assert repr(softmaxLayer()) == CANDIDATE_RELU.replace("ReLULayer", "SoftmaxLayer")


def test_input_display_shows_the_modes_statistics():
    text = repr(imageInputLayer([2, 2], Normalization="zscore"))
    assert "InputSize: [2 2 1]" in text
    assert "                      Mean: []\n         StandardDeviation: []\n" in text
    text = repr(imageInputLayer([2, 2], Normalization="rescale-zero-one"))
    # input layers print no "Show all properties" footer (§14.1)
    assert text.endswith("                       Max: []\n                       Min: []\n")
    text = repr(imageInputLayer([2, 2], Normalization="none"))
    assert "Normalization: 'none'" in text and "Mean" not in text
    text = repr(imageInputLayer([2, 2], Normalization=np.tanh))
    assert "Normalization: @tanh" in text
    # "Show all properties" lists every statistic whatever the mode.
    assert "StandardDeviation: []" in imageInputLayer([2, 2])._all_properties_text()


def test_batchnorm_display_with_parameters():
    layer = batchNormalizationLayer(TrainedMean=np.zeros((1, 1, 64), np.float32),
                                    TrainedVariance=np.ones((1, 1, 64), np.float32),
                                    Epsilon=1e-4, Name="bn")
    text = repr(layer)
    assert "               Name: 'bn'\n        NumChannels: 64\n" in text
    assert "Epsilon: 1.0000e-04" in text
    assert "        TrainedMean: [1×1×64 single]\n" in text


def test_max_pooling_unpooling_outputs():
    layer = maxPooling2dLayer(2, HasUnpoolingOutputs=True)
    assert layer.NumOutputs == 3 and layer.OutputNames == ["out", "indices", "size"]
    assert "OutputNames: {'out'  'indices'  'size'}" in repr(layer)
    # predict returns the first output; the three outputs: tests/test_pooling_layers.py
    x = np.arange(16.0).reshape(4, 4, 1, 1)
    assert layer.predict(ml.dlarray(x, "SSCB")).shape == (3, 3, 1, 1)


def test_layer_array_rows():
    layers = ml.layer_array([
        imageInputLayer([227, 227, 3], Name="data"),
        imageInputLayer([8192, 1], Normalization="none", Name="in"),
        sequenceInputLayer(12),
        batchNormalizationLayer(),
        batchNormalizationLayer(Offset=np.zeros((1, 1, 64))),
        reluLayer(Name="relu1"),
        maxPooling2dLayer(3, Stride=2, Name="pool1"),
        averagePooling2dLayer(2, Stride=2),
        maxPooling2dLayer(2, Padding="same"),
        fullyConnectedLayer(4096, Name="fc6"),
        softmaxLayer(Name="prob"),
        classificationLayer(),
        classificationLayer(Classes=["tench"] + [f"c{i}" for i in range(999)]),
    ])
    assert repr(layers) == """\
  13×1 Layer array with layers:

     1   'data'    Image Input             227×227×3 images with 'zerocenter' normalization
     2   'in'      Image Input             8192×1×1 images
     3   ''        Sequence Input          Sequence input with 12 dimensions
     4   ''        Batch Normalization     Batch normalization
     5   ''        Batch Normalization     Batch normalization with 64 channels
     6   'relu1'   ReLU                    ReLU
     7   'pool1'   2-D Max Pooling         3×3 max pooling with stride [2  2] and padding [0  0  0  0]
     8   ''        2-D Average Pooling     2×2 average pooling with stride [2  2] and padding [0  0  0  0]
     9   ''        2-D Max Pooling         2×2 max pooling with stride [1  1] and padding 'same'
    10   'fc6'     Fully Connected         4096 fully connected layer
    11   'prob'    Softmax                 softmax
    12   ''        Classification Output   crossentropyex
    13   ''        Classification Output   crossentropyex with 'tench' and 999 other classes
"""
    with ml.package_defaults(type_names="legacy"):
        assert "'pool1'   Max Pooling " in repr(layers)


# --------------------------------------------------------------------------- input layers

def test_image_input_normalizations(dtype):
    # One channel, 2×2 image [1 2; 3 4], statistics by hand.
    x = image([[1, 2], [3, 4]], dtype)
    mean = np.array([[1, 1], [2, 2]], dtype)[:, :, None]           # per element h×w×c
    cases = {
        "zerocenter": ({"Mean": mean}, [[0, 1], [1, 2]]),
        "zscore": ({"Mean": 2.5, "StandardDeviation": 0.5}, [[-3, -1], [1, 3]]),
        "rescale-zero-one": ({"Min": 1, "Max": 5}, [[0, 0.25], [0.5, 0.75]]),
        "rescale-symmetric": ({"Min": 1, "Max": 5}, [[-1, -0.5], [0, 0.5]]),
        "none": ({}, [[1, 2], [3, 4]]),
    }
    for mode, (stats, expected) in cases.items():
        stats = {k: np.asarray(v, dtype) for k, v in stats.items()}
        layer = imageInputLayer([2, 2], Normalization=mode, **stats)
        y = ml.predict(layer, ml.dlarray(x, "SSCB"))
        assert y.dims == "SSCB" and y.dtype == dtype, mode
        assert_close(ml.extractdata(y)[:, :, 0, 0], np.array(expected, float), dtype,
                     err_msg=mode)


def test_image_input_per_channel_statistics_broadcast(rng, dtype):
    x = rng.standard_normal((3, 2, 3, 4)).astype(dtype)
    mean = rng.standard_normal((1, 1, 3)).astype(dtype)
    std = (1 + rng.random((1, 1, 3))).astype(dtype)
    layer = imageInputLayer([3, 2, 3], Normalization="zscore", Mean=mean,
                            StandardDeviation=std)
    expected = (x.astype(float) - mean[..., None]) / std[..., None]
    assert_close(run(layer, x, "SSCB"), expected, dtype)
    # Statistics of MATLAB's full size h×w×c apply per element.
    full = rng.standard_normal((3, 2, 3)).astype(dtype)
    layer = imageInputLayer([3, 2, 3], Mean=full)
    assert_close(run(layer, x, "SSCB"), x.astype(float) - full[..., None], dtype)


def test_image_input_callable_normalization_and_split_complex():
    x = image([[1, -2], [3, -4]])
    assert run(imageInputLayer([2, 2], Normalization=np.abs), x, "SSCB")[:, :, 0, 0].tolist() \
        == [[1, 2], [3, 4]]
    y = run(imageInputLayer([2, 2], Normalization="none", SplitComplexInputs=True), x, "SSCB")
    assert y.shape == (2, 2, 2, 1)                       # real parts, then imaginary parts
    assert y[:, :, 0, 0].tolist() == [[1, -2], [3, -4]] and not y[:, :, 1, 0].any()
    bad = imageInputLayer([2, 2], Normalization=lambda x: x[:1])
    with pytest.raises(ValueError, match="Normalization function of ImageInputLayer must "
                                         "return a real array of the input's size 2×2×1×1"):
        bad.predict(ml.dlarray(x, "SSCB"))


def test_image_input_errors():
    x = ml.dlarray(image([[1, 2], [3, 4]]), "SSCB")
    with pytest.raises(ValueError, match=r"^predict: Mean of ImageInputLayer 'in' must be set "
                                         r"for 'zerocenter' normalization, got \[\]$"):
        imageInputLayer([2, 2], Name="in").predict(x)
    with pytest.raises(ValueError, match=r"^predict: StandardDeviation of ImageInputLayer must "
                                         r"be set for 'zscore'"):
        imageInputLayer([2, 2], Normalization="zscore", Mean=1).predict(x)
    with pytest.raises(ValueError, match=r"^predict: the input of ImageInputLayer must be of "
                                         r"size 3×2×1 \(InputSize\) per observation, got 2×2×1"):
        imageInputLayer([3, 2], Normalization="none").predict(x)
    with pytest.raises(ValueError, match="^predict: the input format of ImageInputLayer must "
                                         "be one of 'SSCB', 'SSC', got 'SCB'"):
        imageInputLayer([3, 2], Normalization="none").predict(ml.dlarray(np.zeros((3, 2, 1)),
                                                                         "SCB"))
    with pytest.raises(ValueError, match=r"^imageInputLayer: Mean must be of size 1×1, "
                                         r"1×1×3, 4×4×3 \(a scalar, per channel or per element "
                                         r"of InputSize\), got 1×3$"):
        imageInputLayer([4, 4, 3], Mean=np.zeros((1, 3)))
    with pytest.raises(ValueError, match=r"^imageInputLayer: InputSize must be a 1×2 or 1×3 "
                                         r"vector of positive integers, got \[1 2 3 4\]$"):
        imageInputLayer([1, 2, 3, 4])
    with pytest.raises(ValueError, match="^imageInputLayer: Normalization must be one of "
                                         ".* got 'z', which is ambiguous"):
        imageInputLayer([2, 2], Normalization="z")
    with pytest.raises(TypeError, match="^imageInputLayer: SplitComplexInputs must be a "
                                        "logical scalar"):
        imageInputLayer([2, 2], SplitComplexInputs="yes")
    with pytest.raises(ReadOnlyPropertyError, match="^ImageInputLayer: InputSize is read-only$"):
        imageInputLayer([2, 2]).InputSize = [3, 3]


def test_image_input_options_are_canonicalised():
    layer = imageInputLayer([28, 28], "normalization", "rescale-z", "DataAug",
                            ["randfliplr", "RANDCROP"], NormalizationDimension="chan")
    assert layer.Normalization == "rescale-zero-one"
    assert layer.DataAugmentation == ["randfliplr", "randcrop"]
    assert layer.NormalizationDimension == "channel"
    assert layer.InputSize.tolist() == [28, 28, 1]
    assert layer.NumInputs == 0 and layer.InputNames == [] and layer.OutputNames == ["out"]
    layer.Mean = np.full((1, 1), 0.5)          # settable statistics, size-checked
    assert layer.Mean.shape == (1, 1)


def test_image_input_initialize_fills_neutral_statistics():
    for mode, names in (("zerocenter", ("Mean",)), ("zscore", ("Mean", "StandardDeviation")),
                        ("rescale-symmetric", ("Max", "Min")),
                        ("rescale-zero-one", ("Max", "Min"))):
        layer = imageInputLayer([2, 2, 3], Normalization=mode).initialize()
        for n in names:
            assert getattr(layer, n).shape == (1, 1, 3)
            assert getattr(layer, n).dtype == np.float32
        x = np.arange(12, dtype=np.float32).reshape(2, 2, 3, 1)
        np.testing.assert_allclose(run(layer, x, "SSCB"), x)      # the identity


def test_sequence_input(rng, dtype):
    layer = sequenceInputLayer(3, Normalization="zscore",
                               Mean=np.array([[1.], [2.], [3.]], dtype),
                               StandardDeviation=np.array([2.], dtype), MinLength=2)
    x = rng.standard_normal((3, 2, 4)).astype(dtype)              # C×B×T
    y = ml.predict(layer, ml.dlarray(x, "CBT"))
    assert y.dims == "CBT" and y.dtype == dtype
    assert_close(ml.extractdata(y), (x.astype(float) - np.array([1., 2, 3])[:, None, None]) / 2,
                 dtype)
    with pytest.raises(ValueError, match=r"^predict: the sequences given to SequenceInputLayer "
                                         r"must have at least MinLength \(2\) time steps, got 1$"):
        layer.predict(ml.dlarray(x[:, :, :1], "CBT"))
    with pytest.raises(ValueError, match="^predict: the input format of SequenceInputLayer "
                                         "must be one of 'CBT', 'CB', 'CT', 'C', got 'SCBT'"):
        layer.predict(ml.dlarray(x[None], "SCBT"))


def test_sequence_input_image_sequences():
    layer = sequenceInputLayer([5, 2], Normalization="zerocenter", Mean=np.array([[1., 2.]]))
    assert layer.InputSize.tolist() == [5, 2]
    assert layer._description() == "Sequence input with 5×2 dimensions"
    x = np.ones((5, 2, 1, 3))
    y = run(layer, x, "SCBT")
    assert y.shape == (5, 2, 1, 3)
    assert np.all(y[:, 0] == 0) and np.all(y[:, 1] == -1)
    assert sequenceInputLayer([4, 4, 3])._formats[0] == "SSCBT"


# --------------------------------------------------------------------------- batch norm

def test_batchnorm_epsilon_pitfall(dtype):
    # §8 item 11: 2*(3-1)/sqrt(4+1e-5) + 1 = 2.9999975 (Keras' 1e-3 would give 2.99975).
    p = {k: np.array([[[v]]], dtype) for k, v in
         (("TrainedMean", 1), ("TrainedVariance", 4), ("Scale", 2), ("Offset", 1))}
    layer = batchNormalizationLayer(**p)
    assert layer.Epsilon == 1e-5 and layer.NumChannels == 1
    y = ml.predict(layer, ml.dlarray(np.full((1, 1, 1, 1), 3, dtype), "SSCB"))
    assert y.dtype == dtype
    assert_close(ml.extractdata(y).ravel(), [2 * 2 / np.sqrt(4 + 1e-5) + 1], dtype)
    assert abs(float(ml.extractdata(y).ravel()[0]) - 2.9999975) < 1e-6


def test_batchnorm_per_channel(rng, dtype):
    c = 3
    mean, var = rng.standard_normal(c), 0.5 + rng.random(c)
    scale, offset = rng.standard_normal(c), rng.standard_normal(c)
    layer = batchNormalizationLayer(
        TrainedMean=mean.reshape(1, 1, c).astype(dtype),
        TrainedVariance=var.reshape(1, 1, c).astype(dtype),
        Scale=scale.reshape(1, 1, c).astype(dtype), Offset=offset.reshape(1, 1, c).astype(dtype),
        Epsilon=0.01)
    x = rng.standard_normal((4, 3, c, 2)).astype(dtype)
    # A C vector of shape (C, 1) broadcasts over the channel axis of S×S×C×B data.
    expected = (scale[:, None] * (x.astype(float) - mean[:, None]) /
                np.sqrt(var[:, None] + 0.01) + offset[:, None])
    assert_close(run(layer, x, "SSCB"), expected, dtype)
    # The same parameters, as C×1 vectors, on CB features.
    layer2 = batchNormalizationLayer(TrainedMean=mean[:, None], TrainedVariance=var[:, None],
                                     Scale=scale[:, None], Offset=offset[:, None], Epsilon=0.01)
    f = rng.standard_normal((c, 5))
    assert_close(run(layer2, f, "CB"),
                 scale[:, None] * (f - mean[:, None]) / np.sqrt(var[:, None] + 0.01)
                 + offset[:, None], np.float64)


@pytest.mark.parametrize("fmt, shape, pshape", [
    ("SSCB", (3, 3, 4, 2), (1, 1, 4)), ("CB", (4, 2), (4, 1)), ("SCB", (5, 4, 2), (1, 4)),
    ("SSSCB", (2, 2, 2, 4, 1), (1, 1, 1, 4)), ("CBT", (4, 2, 3), (4, 1)),
])
def test_batchnorm_initialized_parameter_shapes(fmt, shape, pshape):
    layer = batchNormalizationLayer()
    x = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    y = run(layer, x, fmt)
    assert layer.NumChannels == 4
    for name, fill in (("Offset", 0), ("Scale", 1), ("TrainedMean", 0), ("TrainedVariance", 1)):
        a = getattr(layer, name)
        assert a.shape == pshape and a.dtype == np.float32 and np.all(a == fill), name
    np.testing.assert_allclose(y, x / np.sqrt(np.float32(1 + 1e-5)), rtol=1e-6)


def test_batchnorm_errors():
    with pytest.raises(ValueError, match=r"^batchNormalizationLayer: Scale must be a vector of "
                                         r"2 elements .*, got 1×1×3$"):
        batchNormalizationLayer(Offset=np.zeros((1, 1, 2)), Scale=np.ones((1, 1, 3)))
    with pytest.raises(ValueError, match=r"^batchNormalizationLayer: Offset must be a vector "
                                         r"of NumChannels elements .*, got 2×2$"):
        batchNormalizationLayer(Offset=np.zeros((2, 2)))
    with pytest.raises(ValueError, match="^batchNormalizationLayer: Epsilon must be a positive "
                                         "finite real scalar, got 0$"):
        batchNormalizationLayer(Epsilon=0)
    with pytest.raises(ValueError, match="^BatchNormalizationLayer: MeanDecay must be a real "
                                         "scalar in the range"):
        batchNormalizationLayer().MeanDecay = 2
    with pytest.raises(ValueError, match="^batchNormalizationLayer: TrainedVariance must be "
                                         "nonnegative"):
        batchNormalizationLayer(TrainedVariance=-np.ones((1, 1, 2)))
    layer = batchNormalizationLayer(Offset=np.zeros((1, 1, 2)), Name="bn")
    with pytest.raises(ValueError, match=r"^predict: the number of input channels must be 2 "
                                         r"\(NumChannels of BatchNormalizationLayer 'bn'\), got 3"):
        layer.predict(ml.dlarray(np.zeros((2, 2, 3, 1)), "SSCB"))
    with pytest.raises(ValueError, match="must have a channel dimension 'C', got 'SB'"):
        layer.predict(ml.dlarray(np.zeros((2, 1)), "SB"))


def test_batchnorm_initializers():
    layer = batchNormalizationLayer(OffsetInitializer="ones", ScaleInitializer=lambda sz:
                                    np.full(sz, 3.0))
    run(layer, np.zeros((2, 2, 2, 1)), "SSCB")
    assert layer.Offset.tolist() == [[[1, 1]]] and layer.Scale.tolist() == [[[3, 3]]]


# --------------------------------------------------------------------------- relu / softmax

def test_relu(dtype):
    x = np.array([[-1, 0], [2, -3]], dtype)[:, :, None, None]
    y = ml.predict(reluLayer(), ml.dlarray(x, "SSCB"))
    assert y.dims == "SSCB" and y.dtype == dtype
    assert ml.extractdata(y)[:, :, 0, 0].tolist() == [[0, 0], [2, 0]]
    assert isinstance(reluLayer(Name="r"), ReLULayer)


def test_softmax_over_channels(rng, dtype):
    x = rng.standard_normal((2, 3, 4, 2)).astype(dtype)                 # SSCB, C = 4
    y = run(softmaxLayer(), x, "SSCB")
    e = np.exp(x.astype(float))
    assert_close(y, e / e.sum(axis=2, keepdims=True), dtype)
    # Hand value: softmax([1 2 3]) and numerical stability for large inputs.
    v = run(softmaxLayer(), np.array([[1.], [2.], [3.]], dtype), "CB").ravel()
    e = np.exp([1., 2., 3.])
    assert_close(v, e / e.sum(), dtype, fan_in=10)
    np.testing.assert_allclose(v, [0.09003057, 0.24472847, 0.66524096], atol=1e-8)
    big = run(softmaxLayer(), np.array([[1000.], [1001.]], dtype), "CB").ravel()
    assert np.all(np.isfinite(big))
    assert_close(big, [1 / (1 + np.e), np.e / (1 + np.e)], dtype, fan_in=10)
    with pytest.raises(ValueError, match="^predict: the input format of SoftmaxLayer must have "
                                         "a channel dimension 'C', got 'SB'"):
        softmaxLayer().predict(ml.dlarray(np.zeros((3, 2)), "SB"))


# --------------------------------------------------------------------------- pooling

def test_pooling_stride_defaults_to_one():
    # §8 item 10: maxPooling2dLayer(2) on 4×4 gives 3×3 (PyTorch MaxPool2d(2) gives 2×2).
    layer = maxPooling2dLayer(2)
    assert layer.Stride.tolist() == [1, 1] and layer.PoolSize.tolist() == [2, 2]
    x = np.arange(16.).reshape(4, 4, order="F")[:, :, None, None]
    y = run(layer, x, "SSCB")[:, :, 0, 0]
    assert y.tolist() == [[5, 9, 13], [6, 10, 14], [7, 11, 15]]


def test_pooling_same_pitfalls(dtype):
    # §8 item 10: 'same' pads the bottom and right.
    x = image([[1, 2], [3, 4]], dtype)
    avg = averagePooling2dLayer(2, Padding="same")
    y = ml.predict(avg, ml.dlarray(x, "SSCB"))
    assert y.dtype == dtype
    assert_close(ml.extractdata(y)[:, :, 0, 0], [[2.5, 1.5], [1.75, 1]], dtype)
    assert avg.PaddingSize.tolist() == [0, 1, 0, 1]        # resolved by the run
    mean = averagePooling2dLayer(2, Padding="same", PaddingValue="mean")
    assert_close(run(mean, x, "SSCB")[:, :, 0, 0], [[2.5, 3], [3.5, 4]], dtype)
    mx = maxPooling2dLayer(2, Padding="same")
    assert_close(run(mx, -x, "SSCB")[:, :, 0, 0], [[-1, -2], [-3, -4]], dtype)


def test_pooling_manual_padding_and_stride(rng, dtype):
    x = rng.standard_normal((5, 6, 2, 3)).astype(dtype)
    layer = averagePooling2dLayer([2, 3], Stride=[2, 1], Padding=[1, 0, 2, 1])
    y = run(layer, x, "SSCB")
    xp = np.pad(x.astype(float), ((1, 0), (2, 1), (0, 0), (0, 0)))
    oh, ow = (5 + 1 - 2) // 2 + 1, (6 + 3 - 3) // 1 + 1
    expected = np.empty((oh, ow, 2, 3))
    for i in range(oh):
        for j in range(ow):
            expected[i, j] = xp[2 * i:2 * i + 2, j:j + 3].mean(axis=(0, 1))
    assert y.shape == expected.shape
    assert_close(y, expected, dtype, fan_in=6)
    mx = run(maxPooling2dLayer([2, 3], Stride=[2, 1], Padding=[1, 0, 2, 1]), x, "SSCB")
    xm = np.pad(x.astype(float), ((1, 0), (2, 1), (0, 0), (0, 0)), constant_values=-np.inf)
    for i in range(oh):
        for j in range(ow):
            expected[i, j] = xm[2 * i:2 * i + 2, j:j + 3].max(axis=(0, 1))
    assert_close(mx, expected, dtype)


def test_pooling_sequences_fold_time():
    x = np.arange(2 * 2 * 1 * 2 * 3, dtype=float).reshape(2, 2, 1, 2, 3)
    y = ml.predict(maxPooling2dLayer(2), ml.dlarray(x, "SSCBT"))
    assert y.dims == "SSCBT" and y.shape == (1, 1, 1, 2, 3)
    assert ml.extractdata(y).ravel(order="F").tolist() == x.max(axis=(0, 1)).ravel(
        order="F").tolist()


def test_pooling_errors():
    with pytest.raises(ValueError, match=r"^maxPooling2dLayer: Padding must be smaller than "
                                         r"PoolSize \[2 2\] in each dimension, got \[0 2 0 0\]$"):
        maxPooling2dLayer(2, Padding=[0, 2, 0, 0])
    layer = maxPooling2dLayer(3, Padding=2)
    with pytest.raises(ValueError, match="^MaxPooling2DLayer: Padding must be smaller than "
                                         "PoolSize"):
        layer.PoolSize = 2
    assert layer.PoolSize.tolist() == [3, 3]              # the failed assignment left no trace
    with pytest.raises(ValueError, match="^averagePooling2dLayer: PaddingValue must be 0 or "
                                         "'mean', got 1$"):
        averagePooling2dLayer(2, PaddingValue=1)
    with pytest.raises(TypeError, match="^maxPooling2dLayer: unknown name 'PaddingValue'"):
        maxPooling2dLayer(2, PaddingValue=0)
    with pytest.raises(ValueError, match=r"^predict: the padded input of MaxPooling2DLayer 'p' "
                                         r"\(2×2 plus padding\) must be at least PoolSize 3×3"):
        maxPooling2dLayer(3, Name="p").predict(ml.dlarray(np.zeros((2, 2, 1, 1)), "SSCB"))
    with pytest.raises(ValueError, match="^predict: the input format of AveragePooling2DLayer "
                                         "must be one of"):
        averagePooling2dLayer(2).predict(ml.dlarray(np.zeros((4, 1, 1)), "SCB"))
    with pytest.raises(ValueError, match="^MaxPooling2DLayer: PaddingSize can only be set when "
                                         "PaddingMode is 'manual'"):
        maxPooling2dLayer(2, Padding="same").PaddingSize = 1
    with pytest.raises(ReadOnlyPropertyError, match="^MaxPooling2DLayer: NumOutputs is "
                                                    "read-only$"):
        maxPooling2dLayer(2).NumOutputs = 3


# --------------------------------------------------------------------------- fully connected

def test_fully_connected_column_major_flatten(dtype):
    # §8 item 7: X(:,:,1,1) = [1 2; 3 4], Weights = [1 10 100 1000] -> 4231 (row-major: 4321).
    layer = fullyConnectedLayer(1, Weights=np.array([[1, 10, 100, 1000]], dtype),
                                Bias=np.zeros((1, 1), dtype))
    assert layer.InputSize == 4
    y = ml.predict(layer, ml.dlarray(image([[1, 2], [3, 4]], dtype), "SSCB"))
    assert y.dims == "CB" and y.shape == (1, 1) and y.dtype == dtype
    assert ml.extractdata(y).item() == 4231


def test_fully_connected_formats(rng, dtype):
    w = rng.standard_normal((3, 12)).astype(dtype)
    b = rng.standard_normal((3, 1)).astype(dtype)
    layer = fullyConnectedLayer(3, Weights=w, Bias=b)
    for fmt, shape in (("SSCB", (2, 3, 2, 4)), ("SCB", (6, 2, 4)), ("SSSCB", (2, 3, 1, 2, 4)),
                       ("CB", (12, 4))):
        x = rng.standard_normal(shape).astype(dtype)
        y = ml.predict(layer, ml.dlarray(x, fmt))
        assert y.dims == "CB" and y.dtype == dtype
        assert_close(ml.extractdata(y), w.astype(float) @ x.reshape(12, 4, order="F") + b,
                     dtype, fan_in=12)
    x = rng.standard_normal((12, 2, 5)).astype(dtype)                 # CBT: per time step
    y = ml.predict(layer, ml.dlarray(x, "CBT"))
    assert y.dims == "CBT" and y.shape == (3, 2, 5)
    assert_close(ml.extractdata(y), np.einsum("oc,cbt->obt", w.astype(float), x) + b[:, :, None],
                 dtype, fan_in=12)


def test_fully_connected_glorot_initialization():
    # Weights OutputSize×InputSize from glorot (numIn = InputSize, numOut = OutputSize),
    # drawn first, then the zero bias.
    ml.rng(0)
    layer = fullyConnectedLayer(2)
    run(layer, np.ones((3, 1)), "CB")
    ml.rng(0)
    expected = np.sqrt(6 / (3 + 2)) * (2 * _rng.rand(2, 3) - 1)
    assert layer.Weights.shape == (2, 3) and layer.Weights.dtype == np.float32
    np.testing.assert_allclose(layer.Weights, expected, rtol=1e-6)
    assert layer.Bias.shape == (2, 1) and not layer.Bias.any()
    assert layer.InputSize == 3


def test_fully_connected_errors():
    with pytest.raises(ValueError, match=r"^fullyConnectedLayer: Weights must be of size "
                                         r"10×any \(OutputSize×InputSize\), got 3×4$"):
        fullyConnectedLayer(10, Weights=np.zeros((3, 4)))
    layer = fullyConnectedLayer(2, Weights=np.zeros((2, 4)), Name="fc")
    with pytest.raises(ValueError, match=r"^FullyConnectedLayer: Bias must be of size 2×1 "
                                         r"\(OutputSize×1\), got 1×3$"):
        layer.Bias = np.zeros((1, 3))
    with pytest.raises(ValueError, match=r"^predict: the input of FullyConnectedLayer 'fc' must "
                                         r"have InputSize \(4\) elements per observation, got 6"):
        layer.predict(ml.dlarray(np.zeros((6, 1)), "CB"))
    with pytest.raises(ReadOnlyPropertyError, match="^FullyConnectedLayer: OutputSize is "
                                                    "read-only$"):
        layer.OutputSize = 3
    with pytest.raises(ValueError, match="^fullyConnectedLayer: OutputSize must be a positive "
                                         "integer scalar, got 0$"):
        fullyConnectedLayer(0)


# --------------------------------------------------------------------------- classification

def test_classification_layer():
    layer = classificationLayer(Classes=["cat", "dog"], ClassWeights=[1, 3], Name="out")
    assert layer.OutputSize == 2 and list(layer.Classes) == ["cat", "dog"]
    assert "Classes: [2×1 categorical]" in repr(layer)
    assert "ClassWeights: [2×1 double]" in repr(layer)
    assert layer.NumOutputs == 0 and layer.OutputNames == []
    assert layer._description() == "crossentropyex with 'cat' and 1 other classes"
    x = np.random.default_rng(0).random((2, 3)).astype(np.float32)
    y = ml.predict(layer, ml.dlarray(x, "CB"))            # the identity (package default)
    assert y.dims == "CB" and np.array_equal(ml.extractdata(y), x)
    with pytest.raises(ValueError, match=r"^classificationLayer: ClassWeights must have one "
                                         r"weight per class \(2\), got \[1 2 3\]$"):
        classificationLayer(Classes=["a", "b"], ClassWeights=[1, 2, 3])
    with pytest.raises(ValueError, match="^classificationLayer: Classes must be 'auto' or a "
                                         "list of unique class names"):
        classificationLayer(Classes=["a", "a"])
    with pytest.raises(ReadOnlyPropertyError, match="^ClassificationOutputLayer: LossFunction "
                                                    "is read-only$"):
        layer.LossFunction = "mse"


def test_fully_connected_pytorch_flatten_mapping(rng):
    # docs/layers/fullyConnectedLayer.md: a PyTorch Linear after Flatten (NCHW, row-major)
    # maps to MATLAB weights by W.reshape(O, C, H, W).transpose(0, 1, 3, 2).reshape(O, -1).
    o, c, h, w = 2, 3, 4, 5
    w_pt = rng.standard_normal((o, c * h * w))
    x_nchw = rng.standard_normal((2, c, h, w))
    y_pt = x_nchw.reshape(2, -1) @ w_pt.T
    layer = fullyConnectedLayer(o, Weights=w_pt.reshape(o, c, h, w).transpose(0, 1, 3, 2)
                                .reshape(o, -1), Bias=np.zeros((o, 1)))
    y = run(layer, x_nchw.transpose(2, 3, 1, 0), "SSCB")
    np.testing.assert_allclose(y, y_pt.T, rtol=1e-12)
