"""MATLAB property and layer-array displays, byte for byte (MATLAB_SEMANTICS §6)."""
import numpy as np
import pytest

import mlayers as ml
from mlayers import _display as D

# --------------------------------------------------------------------------- golden §6.2

HEADER = "layer = \n"        # MATLAB's "<var> = " line ends with a space

GOLDEN_TCONV1D = HEADER + """\

  TransposedConvolution1DLayer with properties:

            Name: ''

   Hyperparameters
      FilterSize: 11
     NumChannels: 'auto'
      NumFilters: 96
          Stride: 4
    CroppingMode: 'manual'
    CroppingSize: [0 0]

   Learnable Parameters
         Weights: []
            Bias: []

  Show all properties

"""

GOLDEN_GCONV = HEADER + """\

  GroupedConvolution2DLayer with properties:

                   Name: 'gconv1'

   Hyperparameters
             FilterSize: [11 11]
              NumGroups: 3
    NumChannelsPerGroup: 'auto'
     NumFiltersPerGroup: 10
                 Stride: [1 1]
         DilationFactor: [1 1]
            PaddingMode: 'manual'
            PaddingSize: [0 0 0 0]

   Learnable Parameters
                Weights: []
                   Bias: []

  Show all properties

"""

GOLDEN_TCONV3D = HEADER + """\

  TransposedConvolution3DLayer with properties:

            Name: ''

   Hyperparameters
      FilterSize: [11 11 11]
     NumChannels: 'auto'
      NumFilters: 32
          Stride: [4 4 2]
    CroppingMode: 'manual'
    CroppingSize: [2x3 double]

   Learnable Parameters
         Weights: []
            Bias: []

  Show all properties

"""

GOLDEN_DECONV5 = """\
Name: 'deconv5'

   Hyperparameters
      FilterSize: [4 4]
     NumChannels: 256
      NumFilters: 256
          Stride: [2 2]
    CroppingMode: 'manual'
    CroppingSize: [1 1 1 1]

   Learnable Parameters
         Weights: [4×4×256×256 single]
            Bias: [1×1×256 single]
"""


def shown(layer, capsys, name="layer"):
    layer.display(name)
    return capsys.readouterr().out


def test_golden_transposed_conv1d(capsys):
    layer = ml.transposedConv1dLayer(11, 96, Stride=4)
    assert shown(layer, capsys) == GOLDEN_TCONV1D
    # repr is MATLAB's disp: the display without "layer = " and its blank line
    assert repr(layer) == GOLDEN_TCONV1D[len("layer = \n\n"):-1]
    assert str(layer) == repr(layer)
    print(layer)
    assert capsys.readouterr().out == GOLDEN_TCONV1D[len("layer = \n\n"):]


def test_golden_grouped_conv(capsys):
    assert shown(ml.groupedConvolution2dLayer(11, 10, 3, "Name", "gconv1"), capsys) == GOLDEN_GCONV


def test_golden_channel_wise(capsys):
    expected = GOLDEN_GCONV.replace("'gconv1'", "'cwconv1'").replace(
        "NumGroups: 3", "NumGroups: 'channel-wise'")
    layer = ml.groupedConvolution2dLayer(11, 10, "channel-wise", "Name", "cwconv1")
    assert shown(layer, capsys) == expected
    layer = ml.groupedConvolution2dLayer(11, 10, "channel-wise", Name="cwconv1")  # API.md form
    assert shown(layer, capsys) == expected


def test_golden_transposed_conv3d(capsys):
    layer = ml.transposedConv3dLayer(11, 32, "Stride", [4, 4, 2])
    with ml.package_defaults(times="x"):            # the transcript's release prints "x"
        assert shown(layer, capsys) == GOLDEN_TCONV3D
    assert shown(layer, capsys) == GOLDEN_TCONV3D.replace("2x3", "2×3")   # package default


def test_golden_deconv5_fragment():
    layer = ml.transposedConv2dLayer(4, 256, Stride=2, Cropping=1, Name="deconv5",
                                     Weights=np.zeros((4, 4, 256, 256), np.float32),
                                     Bias=np.zeros((1, 1, 256), np.float32))
    text = repr(layer)
    assert GOLDEN_DECONV5 in text
    assert text.startswith("  TransposedConvolution2DLayer with properties:\n\n")


# --------------------------------------------------------------------------- candidates §6.3

CANDIDATE_CONV2D = """\
  Convolution2DLayer with properties:

              Name: ''

   Hyperparameters
        FilterSize: [11 11]
       NumChannels: 'auto'
        NumFilters: 96
            Stride: [4 4]
    DilationFactor: [1 1]
       PaddingMode: 'manual'
       PaddingSize: [1 1 1 1]
      PaddingValue: 0

   Learnable Parameters
           Weights: []
              Bias: []

  Show all properties
"""


def test_candidate_conv2d():
    assert repr(ml.convolution2dLayer(11, 96, "Stride", 4, "Padding", 1)) == CANDIDATE_CONV2D


def test_candidate_conv1d():
    expected = (CANDIDATE_CONV2D.replace("Convolution2DLayer", "Convolution1DLayer")
                .replace("[11 11]", "11").replace("Stride: [4 4]", "Stride: 1")
                .replace("DilationFactor: [1 1]", "DilationFactor: 1")
                .replace("[1 1 1 1]", "[1 1]"))
    assert repr(ml.convolution1dLayer(11, 96, Padding=1)) == expected


def test_candidate_transposed_conv2d():
    expected = (GOLDEN_TCONV1D[len("layer = \n\n"):-1]
                .replace("1DLayer", "2DLayer").replace("FilterSize: 11", "FilterSize: [11 11]")
                .replace("Stride: 4", "Stride: [4 4]").replace("[0 0]", "[0 0 0 0]"))
    assert repr(ml.transposedConv2dLayer(11, 96, "Stride", 4)) == expected


def test_show_all_properties(capsys):
    ml.transposedConv1dLayer(11, 96, Stride=4).show_all_properties()
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "  TransposedConvolution1DLayer with properties:"
    names = [ln.split(":")[0].strip() for ln in lines[2:] if ln.strip()]
    assert names == ml.properties(ml.transposedConv1dLayer(11, 96))
    assert names[:6] == ["FilterSize", "NumFilters", "Stride", "CroppingMode", "CroppingSize",
                         "NumChannels"]
    assert "              OutputNames: {'out'}" in lines
    assert "    WeightLearnRateFactor: 1" in lines
    assert "Show all properties" not in out


def test_display_after_initialization():
    ml.rng(0)
    layer = ml.groupedConvolution2dLayer(3, 4, "channel-wise", Padding="same")
    layer.predict(ml.dlarray(np.zeros((5, 6, 3, 1), np.float32), "SSCB"))
    text = repr(layer)
    assert "              NumGroups: 3\n" in text
    assert "    NumChannelsPerGroup: 1\n" in text
    assert "            PaddingSize: [1 1 1 1]\n" in text      # resolved at run time
    assert "                Weights: [3×3×1×4×3 single]\n" in text
    assert "                   Bias: [1×1×4×3 single]\n" in text


# --------------------------------------------------------------------------- values §6.1

@pytest.mark.parametrize("value, text", [
    ("auto", "'auto'"), ("", "''"), (96, "96"), (0, "0"), (-3, "-3"), (0.1, "0.1000"),
    (11.1, "11.1000"), (1e-5, "1.0000e-05"), (1.1811e10, "1.1811e+10"),
    (2147483647, "2.1475e+09"), (np.float32(0.5), "0.5000"), (True, "1"), (False, "0"),
    (float("nan"), "NaN"), (float("-inf"), "-Inf"),
    (np.array([11, 11]), "[11 11]"), (np.array([0, 0, 0, 0]), "[0 0 0 0]"),
    (np.array([1024, 1024, 64]), "[1024 1024 64]"),
    (np.array([2147483647, 65535, 65535]), "[2.1475e+09 65535 65535]"),
    (np.zeros((4, 4, 256, 256), np.float32), "[4×4×256×256 single]"),
    (np.zeros((1, 1, 256), np.float32), "[1×1×256 single]"),
    (np.zeros((2, 3)), "[2×3 double]"), (np.zeros((0, 0)), "[]"), (None, "[]"),
    (np.zeros((11, 96, 1), np.float32), "[11×96 single]"),     # trailing singleton dropped
    (np.zeros((3, 1)), "[3×1 double]"), (np.array([[7.0]]), "7"),
    (["in"], "{'in'}"), (["out", "indices", "size"], "{'out'  'indices'  'size'}"),
])
def test_format_value(value, text):
    assert D.format_value(value) == text


def test_format_value_callable_and_long_rows():
    def myInit(sz):
        return np.zeros(sz)
    assert D.format_value(myInit) == "@myInit"
    row = np.arange(1, 40)
    assert D.format_value(row, room=200).startswith("[1 2 3")
    assert D.format_value(row, room=20) == "[1×39 double]"


def test_long_row_in_display_is_summarised():
    layer = ml.convolution1dLayer(3, 2)
    layer.Name = "x" * 10
    assert "Name: 'xxxxxxxxxx'" in repr(layer)


def test_format_for_error():
    assert D.format_for_error(0) == "0"
    assert D.format_for_error([3, 3, 3]) == "[3 3 3]"
    assert D.format_for_error(np.array([[1, 2], [3, 4]])) == "[1 2; 3 4]"
    assert D.format_for_error(np.zeros((11, 96, 4))) == "11×96×4 double array"
    assert D.format_for_error("x") == "'x'"
    assert D.format_for_error(True) == "True"
    assert D.format_for_error(None) == "None"


# --------------------------------------------------------------------------- layer arrays §6.4

def test_layer_array_golden_rows_r2021a(capsys):
    """The R2021a transcript rows (legacy type names) for the three conv layers it shows."""
    layers = ml.layer_array([
        ml.convolution2dLayer([32, 1], 128, Stride=[2, 1], Padding="same", Name="incon1"),
        ml.convolution2dLayer([33, 1], 1, Name="dummy1"),
        ml.transposedConv2dLayer(1, 340, Cropping="same", Name="outcon0"),
    ])
    golden = [
        "     4   'incon1'    Convolution              128 32×1 convolutions with stride [2  1] and padding 'same'",  # noqa: E501
        "    16   'dummy1'    Convolution              1 33×1 convolutions with stride [1  1] and padding [0  0  0  0]",  # noqa: E501
        "    19   'outcon0'   Transposed Convolution   340 1×1 transposed convolutions with stride [1  1] and cropping 'same'",  # noqa: E501
    ]
    with ml.package_defaults(type_names="legacy"):
        text = repr(layers)
    lines = text.split("\n")
    assert lines[:2] == ["  3×1 Layer array with layers:", ""]
    for i, (got, want) in enumerate(zip(lines[2:5], golden), start=1):
        assert got == "    %2i" % i + want[6:]
    assert text.endswith("cropping 'same'\n")
    layers.display("layers")
    out = capsys.readouterr().out
    assert out.startswith("layers = \n\n  3×1 Layer array with layers:\n\n     1   'incon1'")
    assert out.endswith("'same'\n\n")


def test_layer_array_descriptions_alexnet():
    conv1 = ml.convolution2dLayer(11, 96, Stride=4, Name="conv1", NumChannels=3)
    assert conv1._layer_array_row() == (
        "conv1", "2-D Convolution",
        "96 11×11×3 convolutions with stride [4  4] and padding [0  0  0  0]")
    conv2 = ml.groupedConvolution2dLayer(5, 128, 2, Padding=2, Name="conv2")
    conv2.initialize(96)
    assert conv2._layer_array_row() == (
        "conv2", "2-D Grouped Convolution",
        "2 groups of 128 5×5×48 convolutions with stride [1  1] and padding [2  2  2  2]")


@pytest.mark.parametrize("layer, row", [
    (lambda: ml.convolution1dLayer(3, 8, Padding="causal"),
     ("", "1-D Convolution", "8 3 convolutions with stride 1 and padding 'causal'")),
    (lambda: ml.transposedConv1dLayer(11, 96, Stride=4),
     ("", "1-D Transposed Convolution",
      "96 11 transposed convolutions with stride 4 and cropping [0  0]")),
    (lambda: ml.convolution2dLayer(3, 8, DilationFactor=2, Name="d"),
     ("d", "2-D Convolution",
      "8 3×3 convolutions with stride [1  1], dilation factor [2  2], and padding [0  0  0  0]")),
    (lambda: ml.groupedConvolution2dLayer(11, 10, "channel-wise", Name="cwconv1"),
     ("cwconv1", "2-D Grouped Convolution",
      "channel-wise 10 11×11 convolutions with stride [1  1] and padding [0  0  0  0]")),
    (lambda: ml.convolution3dLayer(3, 4, NumChannels=2),
     ("", "3-D Convolution",
      "4 3×3×3×2 convolutions with stride [1  1  1] and padding [0  0  0; 0  0  0]")),
    (lambda: ml.transposedConv3dLayer(2, 4, Cropping="same"),
     ("", "3-D Transposed Convolution",
      "4 2×2×2 transposed convolutions with stride [1  1  1] and cropping 'same'")),
])
def test_layer_array_rows(layer, row):
    assert layer()._layer_array_row() == row


def test_layer_array_is_a_list():
    a = ml.layer_array([ml.convolution2dLayer(3, 4), ml.convolution2dLayer(3, 5)])
    assert len(a) == 2 and isinstance(a, list)
    assert isinstance(a[0:1], ml.LayerArray) and a[1].NumFilters == 5
    assert repr(a[0:1]).startswith("  1×1 Layer array with layers:")
    assert repr(ml.layer_array([])) == "  0×1 Layer array with layers:\n\n"
    with pytest.raises(TypeError, match="layer_array: element 2 must be a layer, got int"):
        ml.layer_array([ml.convolution2dLayer(3, 4), 3])


# --------------------------------------------------------------------------- §14.1 families

# (documented; the doc pages omit the blank line after "layer = ", MATLAB prints it)
GOLDEN_DROPOUT = HEADER + """\

  DropoutLayer with properties:

           Name: 'drop1'

   Hyperparameters
    Probability: 0.5000

"""

GOLDEN_ELU = HEADER + """\

  ELULayer with properties:

     Name: 'elu1'
    Alpha: 1

   Learnable Parameters
    No properties.

   State Parameters
    No properties.

  Show all properties

"""


def test_golden_dropout(capsys):
    """Family A without learnables: no footer (§14.1 golden)."""
    assert shown(ml.dropoutLayer(Name="drop1"), capsys) == GOLDEN_DROPOUT
    assert shown(ml.dropoutLayer(0.5, "Name", "drop1"), capsys) == GOLDEN_DROPOUT
    assert shown(ml.dropoutLayer("name", "drop1"), capsys) == GOLDEN_DROPOUT


def test_golden_elu(capsys):
    """Family B: Name and Alpha untitled, the two empty groups, the footer (§14.1 golden)."""
    assert shown(ml.eluLayer(Name="elu1"), capsys) == GOLDEN_ELU
    assert shown(ml.eluLayer(1, "Name", "elu1"), capsys) == GOLDEN_ELU


@pytest.mark.parametrize("ctor, cls_name", [
    (lambda: ml.tanhLayer(Name="elu1"), "TanhLayer"),
    (lambda: ml.sigmoidLayer(Name="elu1"), "SigmoidLayer"),
    (lambda: ml.swishLayer(Name="elu1"), "SwishLayer"),
    (lambda: ml.softplusLayer(Name="elu1"), "SoftplusLayer"),
])
def test_family_b_without_alpha_is_the_elu_block(ctor, cls_name, capsys):
    """§14.1: tanh, sigmoid, swish and softplus print the ELU block without Alpha
    (documented); Name aligns to 4 spaces then."""
    expected = (GOLDEN_ELU.replace("ELULayer", cls_name).replace("    Alpha: 1\n", "")
                .replace("     Name: 'elu1'", "    Name: 'elu1'"))
    assert shown(ctor(), capsys) == expected


def test_footer_rule_for_every_layer():
    """§14.1: the footer only for Family B and for layers with learnable parameters."""
    footer = "\n  Show all properties\n"
    with_footer = [ml.convolution2dLayer(3, 4), ml.fullyConnectedLayer(3),
                   ml.batchNormalizationLayer(), ml.reluLayer(), ml.softmaxLayer(),
                   ml.eluLayer(), ml.preluLayer(), ml.layerNormalizationLayer(),
                   ml.groupNormalizationLayer(2), ml.instanceNormalizationLayer(),
                   ml.scalingLayer(), ml.functionLayer(ml.tanh)]
    without = [ml.imageInputLayer([4, 4, 1]), ml.sequenceInputLayer(3),
               ml.featureInputLayer(3), ml.image3dInputLayer([4, 4, 4, 1]),
               ml.dropoutLayer(), ml.spatialDropoutLayer(), ml.leakyReluLayer(),
               ml.clippedReluLayer(5), ml.geluLayer(), ml.crossChannelNormalizationLayer(5),
               ml.crop2dLayer([1, 1]), ml.flattenLayer(), ml.maxPooling2dLayer(2),
               ml.averagePooling2dLayer(2), ml.classificationLayer(), ml.regressionLayer()]
    for layer in with_footer:
        assert repr(layer).endswith(footer), type(layer).__name__
    for layer in without:
        assert not repr(layer).endswith(footer), type(layer).__name__
        assert "Show all properties" not in repr(layer)


def test_unrun_same_convolution_shows_empty_padding_size():
    """§14.1 (documented R2024a): 'same' PaddingSize is [] until the layer has run."""
    layer = ml.convolution2dLayer(3, 4, Padding="same")
    assert "    PaddingSize: []\n" in repr(layer)
    assert layer.PaddingSize.shape == (0, 0)
    layer.predict(ml.dlarray(np.zeros((5, 6, 2, 1), np.float32), "SSCB"))
    assert "    PaddingSize: [1 1 1 1]\n" in repr(layer)
    assert "PaddingSize: []" in repr(ml.convolution1dLayer(3, 4, Padding="same"))


@pytest.mark.parametrize("layer, text", [
    (lambda: ml.leakyReluLayer(), """\
  LeakyReLULayer with properties:

     Name: ''

   Hyperparameters
    Scale: 0.0100
"""),
    (lambda: ml.clippedReluLayer(10, Name="clip"), """\
  ClippedReLULayer with properties:

       Name: 'clip'

   Hyperparameters
    Ceiling: 10
"""),
    (lambda: ml.crossChannelNormalizationLayer(5, Name="norm1"), """\
  CrossChannelNormalizationLayer with properties:

                 Name: 'norm1'

   Hyperparameters
    WindowChannelSize: 5
                Alpha: 1.0000e-04
                 Beta: 0.7500
                    K: 2
"""),
    (lambda: ml.preluLayer(Name="prelu1"), """\
  PReLULayer with properties:

     Name: 'prelu1'

   Learnable Parameters
    Alpha: 0.2500

   State Parameters
    No properties.

  Show all properties
"""),
    (lambda: ml.regressionLayer(), """\
  RegressionOutputLayer with properties:

             Name: ''
    ResponseNames: {}

   Hyperparameters
     LossFunction: 'mean-squared-error'
"""),
    (lambda: ml.featureInputLayer(2, Normalization="zscore"), """\
  FeatureInputLayer with properties:

                      Name: ''
                 InputSize: 2
        SplitComplexInputs: 0

   Hyperparameters
             Normalization: 'zscore'
    NormalizationDimension: 'auto'
                      Mean: []
         StandardDeviation: []
"""),
    (lambda: ml.groupNormalizationLayer("channel-wise"), """\
  GroupNormalizationLayer with properties:

           Name: ''
    NumChannels: 'auto'

   Hyperparameters
      NumGroups: 'channel-wise'
        Epsilon: 1.0000e-05

   Learnable Parameters
         Offset: []
          Scale: []

  Show all properties
"""),
], ids=["leakyrelu", "clippedrelu", "crossnorm", "prelu", "regression", "featureinput",
        "groupnorm"])
def test_candidate_displays_new_layers(layer, text):
    """Candidates built with the §6.1 rules from the §14.2 property lists (not golden)."""
    assert repr(layer()) == text


@pytest.mark.parametrize("layer, row", [
    (lambda: ml.dropoutLayer(Name="drop6"), ("drop6", "Dropout", "50% dropout")),
    (lambda: ml.dropoutLayer(0.125), ("", "Dropout", "13% dropout")),
    (lambda: ml.crossChannelNormalizationLayer(5, Name="norm1"),
     ("norm1", "Cross Channel Normalization",
      "cross channel normalization with 5 channels per element")),
    (lambda: ml.leakyReluLayer(), ("", "Leaky ReLU", "Leaky ReLU with scale 0.01")),
    (lambda: ml.clippedReluLayer(10), ("", "Clipped ReLU", "Clipped ReLU with ceiling 10")),
    (lambda: ml.eluLayer(), ("", "ELU", "ELU with alpha 1")),
    (lambda: ml.tanhLayer(), ("", "Tanh", "Hyperbolic tangent")),
    (lambda: ml.swishLayer(), ("", "Swish", "Swish")),
    (lambda: ml.softplusLayer(), ("", "Softplus", "Softplus")),
    (lambda: ml.flattenLayer(), ("", "Flatten", "Flatten")),
    (lambda: ml.featureInputLayer(2), ("", "Feature Input", "2 features")),
    (lambda: ml.regressionLayer(), ("", "Regression Output", "mean-squared-error")),
    (lambda: ml.crop2dLayer([1, 33]),
     ("", "Crop 2D", "upper-left corner of cropping rectangle at [1 33]")),
    (lambda: ml.layerNormalizationLayer(), ("", "Layer Normalization",
                                            "Layer normalization")),
], ids=lambda v: v[1] if isinstance(v, tuple) else "")
def test_layer_array_rows_new_layers(layer, row):
    """§6.4/§14.2 rows (documented: dropout, cross-channel, leaky/clipped, tanh, swish,
    softplus, flatten, feature input, regression, crop 2D; the rest package defaults)."""
    assert layer()._layer_array_row() == row


def test_num2str_and_int2str():
    assert [D.num2str(v) for v in (0.01, 10, 3.14159265, 0.0123456, 123.456, 1e-5)] == \
        ["0.01", "10", "3.1416", "0.012346", "123.456", "1e-05"]
    assert [D.int2str(v) for v in (12.5, 50.0, 0.4, -2.5)] == ["13", "50", "0", "-3"]
