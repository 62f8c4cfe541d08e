"""The convolution layers through the public API: constructors, properties, learnables,
initializers, predict for every format (against the sparse oracle), and the §8 pitfalls."""
import numpy as np
import pytest
from conftest import assert_close

import mlayers as ml
from mlayers import _ops
from mlayers import reference as R
from mlayers._props import ReadOnlyPropertyError


def col(*v):
    return np.array(v, dtype=float).reshape(-1, 1, 1)


def run(layer, x, fmt):
    return ml.extractdata(ml.predict(layer, ml.dlarray(x, fmt)))


# --------------------------------------------------------------------------- API.md calls

def test_api_md_constructor_calls():
    layer = ml.transposedConv1dLayer(11, 96, Stride=4)
    assert (layer.FilterSize, layer.NumFilters, layer.Stride) == (11, 96, 4)
    layer = ml.transposedConv1dLayer(11, 96, "Stride", 4, "Cropping", "same")
    assert layer.CroppingMode == "same"
    assert layer.CroppingSize.tolist() == [3, 4]          # §3.6 row 14, concrete at once
    layer = ml.transposedConv1dLayer(11, 96, "stride", 4, Name="up1")
    assert layer.Name == "up1" and layer.Stride == 4
    layer = ml.groupedConvolution2dLayer(5, 128, 2, "Padding", "same")
    assert (layer.NumGroups, layer.NumFiltersPerGroup, layer.PaddingMode) == (2, 128, "same")
    assert layer.PaddingSize.shape == (0, 0)              # [] until resolved at run time
    layer = ml.groupedConvolution2dLayer(11, 10, "channel-wise", Name="cwconv1")
    assert layer.NumGroups == "channel-wise" and layer.NumChannelsPerGroup == "auto"
    from mlayers import groupedConvolution2dLayer, transposedConv1dLayer  # noqa: F401


def test_classes_and_defaults():
    layer = ml.convolution2dLayer(3, 8)
    assert isinstance(layer, ml.Convolution2DLayer) and isinstance(layer, ml.Layer)
    assert layer.Stride.tolist() == [1, 1] and layer.DilationFactor.tolist() == [1, 1]
    assert layer.PaddingValue == 0 and layer.PaddingMode == "manual"
    assert layer.WeightsInitializer == "glorot" and layer.BiasInitializer == "zeros"
    assert (layer.WeightLearnRateFactor, layer.BiasLearnRateFactor,
            layer.WeightL2Factor, layer.BiasL2Factor) == (1, 1, 1, 0)
    assert (layer.NumInputs, layer.InputNames, layer.NumOutputs, layer.OutputNames) == \
        (1, ["in"], 1, ["out"])
    assert layer.Weights.shape == (0, 0) and layer.Bias.shape == (0, 0)
    assert ml.convolution3dLayer(3, 8).PaddingSize.shape == (2, 3)


@pytest.mark.parametrize("ctor, args", [
    (ml.convolution1dLayer, (3, 4)), (ml.convolution2dLayer, (3, 4)),
    (ml.convolution3dLayer, (3, 4)), (ml.transposedConv1dLayer, (3, 4)),
    (ml.transposedConv2dLayer, (3, 4)), (ml.transposedConv3dLayer, (3, 4)),
    (ml.groupedConvolution2dLayer, (3, 4, 2)),
])
def test_every_option_is_accepted_and_stored(ctor, args):
    layer = ctor(*args, WeightLearnRateFactor=2, BiasLearnRateFactor=0.5, WeightL2Factor=0,
                 BiasL2Factor=3, Name="x", WeightsInitializer="he",
                 BiasInitializer="ones")
    assert (layer.WeightLearnRateFactor, layer.BiasLearnRateFactor, layer.WeightL2Factor,
            layer.BiasL2Factor, layer.Name) == (2, 0.5, 0, 3, "x")
    assert (layer.WeightsInitializer, layer.BiasInitializer) == ("he", "ones")


def test_conv_options():
    layer = ml.convolution2dLayer([3, 5], 4, Stride=[2, 1], DilationFactor=2,
                                  Padding=[1, 2], PaddingValue="replicate", NumChannels=6)
    assert layer.FilterSize.tolist() == [3, 5] and layer.Stride.tolist() == [2, 1]
    assert layer.DilationFactor.tolist() == [2, 2] and layer.PaddingSize.tolist() == [1, 1, 2, 2]
    assert layer.PaddingValue == "replicate" and layer.NumChannels == 6
    layer = ml.convolution1dLayer(3, 4, Padding=[1, 2], PaddingValue=-1.5)
    assert layer.PaddingSize.tolist() == [1, 2] and layer.PaddingValue == -1.5
    layer = ml.convolution1dLayer(3, 4, Padding="causal", DilationFactor=2)
    assert layer.PaddingMode == "causal" and layer.PaddingSize.tolist() == [4, 0]
    layer = ml.convolution3dLayer(3, 4, Padding=[[1, 2, 3], [4, 5, 6]])
    assert layer.PaddingSize.tolist() == [[1, 2, 3], [4, 5, 6]]
    layer = ml.groupedConvolution2dLayer(3, 4, 2, NumChannelsPerGroup=3, Stride=2,
                                         DilationFactor=[1, 2], Padding=[1, 2, 3, 4],
                                         PaddingValue=7)
    assert layer.NumChannelsPerGroup == 3 and layer.PaddingSize.tolist() == [1, 2, 3, 4]
    assert layer.PaddingValue == 7


def test_transposed_options():
    layer = ml.transposedConv2dLayer([4, 3], 8, Stride=[2, 3], Cropping=[1, 0], NumChannels=5)
    assert layer.CroppingSize.tolist() == [1, 1, 0, 0] and layer.NumChannels == 5
    layer = ml.transposedConv3dLayer(3, 2, Cropping=[1, 2, 3])
    assert layer.CroppingSize.tolist() == [[1, 2, 3], [1, 2, 3]]
    layer = ml.transposedConv1dLayer(2, 1, Stride=3, Cropping="same")     # F < S
    assert layer.CroppingSize.tolist() == [0, 0]


# --------------------------------------------------------------------------- properties

def test_read_only_properties():
    layer = ml.transposedConv1dLayer(11, 96)
    for name in ("NumFilters", "NumChannels", "CroppingMode", "NumInputs", "InputNames",
                 "NumOutputs", "OutputNames"):
        with pytest.raises(ReadOnlyPropertyError) as e:
            setattr(layer, name, 1)
        assert str(e.value) == f"TransposedConvolution1DLayer: {name} is read-only"
        assert isinstance(e.value, TypeError) and isinstance(e.value, AttributeError)
    g = ml.groupedConvolution2dLayer(3, 4, 2)
    for name in ("NumGroups", "NumChannelsPerGroup", "NumFiltersPerGroup", "PaddingMode"):
        with pytest.raises(TypeError, match=f"GroupedConvolution2DLayer: {name} is read-only"):
            setattr(g, name, 1)


def test_unknown_attribute():
    layer = ml.convolution2dLayer(3, 4)
    with pytest.raises(AttributeError, match="Convolution2DLayer: unrecognized property 'Strid'"):
        layer.Strid = 2
    with pytest.raises(AttributeError):
        layer.Padding            # a constructor option, not a property (MATLAB)


def test_settable_properties_are_validated_with_class_name():
    layer = ml.transposedConv1dLayer(11, 96)
    layer.Stride = 2.0
    assert layer.Stride == 2 and type(layer.Stride) is int
    with pytest.raises(ValueError) as e:
        layer.Stride = 0
    assert str(e.value) == ("TransposedConvolution1DLayer: Stride must be a positive integer "
                            "scalar, got 0")
    layer.Name = "up"
    layer.WeightsInitializer = "narrow"
    assert layer.WeightsInitializer == "narrow-normal"
    with pytest.raises(TypeError, match="TransposedConvolution1DLayer: Name must be"):
        layer.Name = 3
    layer.CroppingSize = [1, 2]
    assert layer.CroppingSize.tolist() == [1, 2]
    with pytest.raises(ValueError):
        layer.WeightL2Factor = -1


def test_padding_size_only_in_manual_mode():
    layer = ml.convolution2dLayer(3, 4, Padding="same")
    with pytest.raises(ValueError, match="Convolution2DLayer: PaddingSize can only be set when "
                                         "PaddingMode is 'manual', got PaddingMode 'same'"):
        layer.PaddingSize = 1
    layer = ml.convolution2dLayer(3, 4)
    layer.PaddingSize = [1, 2]
    assert layer.PaddingSize.tolist() == [1, 1, 2, 2]
    t = ml.transposedConv2dLayer(3, 4, Cropping="same")
    with pytest.raises(ValueError, match="CroppingSize can only be set"):
        t.CroppingSize = 0


def test_stored_arrays_are_read_only():
    layer = ml.convolution2dLayer(3, 4)
    with pytest.raises(ValueError):
        layer.Stride[0] = 5          # would bypass validation


# --------------------------------------------------------------------------- learnables

def test_weights_size_message_and_wildcard():
    layer = ml.transposedConv1dLayer(11, 96, NumChannels=3)
    with pytest.raises(ValueError) as e:
        layer.Weights = np.zeros((11, 96, 4), np.float32)
    assert str(e.value) == ("TransposedConvolution1DLayer: Weights must be of size 11×96×3 "
                            "(FilterSize×NumFilters×NumChannels), got 11×96×4")
    layer = ml.transposedConv1dLayer(11, 96)
    layer.Weights = np.zeros((11, 96, 4), np.float32)      # channel dim is a wildcard
    assert layer.NumChannels == 4                           # and Weights fix it
    with pytest.raises(ValueError, match="Weights must be of size 11×96×4"):
        layer.Weights = np.zeros((11, 96, 5), np.float32)
    with pytest.raises(ValueError, match="Bias must be of size 1×96 \\(1×NumFilters\\), got 96×1"):
        layer.Bias = np.zeros((96, 1))
    with pytest.raises(ValueError, match="transposedConv1dLayer: Weights must be of size 3×4×any"):
        ml.transposedConv1dLayer(3, 4, Weights=np.zeros((3, 5, 2)))


def test_weights_types():
    layer = ml.convolution1dLayer(2, 1)
    layer.Weights = [[[1]], [[2]]]                     # a list is MATLAB double
    assert layer.Weights.dtype == np.float64 and layer.Weights.shape == (2, 1, 1)
    with pytest.raises(TypeError, match="Weights must be a real single or double array"):
        layer.Weights = np.ones((2, 1, 1), dtype=np.int32)
    with pytest.raises(TypeError):
        layer.Weights = "abc"
    layer.Weights = []                                 # back to empty
    assert layer.Weights.size == 0


def test_trailing_singletons_accepted():
    # §8.13: (3,1) is 3×1×1 for C = 1, and (3,3,16) is a conv2d weight with NF = 1
    layer = ml.transposedConv1dLayer(3, 1, Weights=np.ones((3, 1)))
    assert layer.Weights.shape == (3, 1, 1) and layer.NumChannels == 1
    layer = ml.convolution2dLayer(3, 1, Weights=np.ones((3, 3, 16)))
    assert layer.Weights.shape == (3, 3, 16, 1) and layer.NumChannels == 16
    w = np.asfortranarray(np.ones((3, 3, 16)))
    layer.Weights = w
    assert np.shares_memory(layer.Weights, w)


def test_weights_before_options_in_any_order():
    w = np.zeros((3, 3, 2, 4))
    layer = ml.convolution2dLayer(3, 4, Weights=w, NumChannels=2)
    assert layer.NumChannels == 2
    with pytest.raises(ValueError, match="3×3×5×4"):
        ml.convolution2dLayer(3, 4, "Weights", w, "NumChannels", 5)


def test_filter_size_change_with_weights():
    layer = ml.convolution2dLayer(3, 4, Weights=np.zeros((3, 3, 2, 4)))
    with pytest.raises(ValueError, match="FilterSize must match the Weights"):
        layer.FilterSize = 5
    layer.Weights = []
    layer.FilterSize = 5
    assert layer.FilterSize.tolist() == [5, 5]


def test_grouped_learnables():
    g = ml.groupedConvolution2dLayer(3, 4, 2)
    g.Weights = np.zeros((3, 3, 5, 4, 2), np.float32)
    assert (g.NumChannelsPerGroup, g.NumGroups) == (5, 2)
    with pytest.raises(ValueError, match="Weights must be of size 3×3×5×4×2 "
                                         "\\(FilterSize×NumChannelsPerGroup×NumFiltersPerGroup"
                                         "×NumGroups\\), got 3×3×5×4×3"):
        g.Weights = np.zeros((3, 3, 5, 4, 3))
    cw = ml.groupedConvolution2dLayer(3, 4, "channel-wise")
    with pytest.raises(ValueError, match="3×3×1×4×any"):
        cw.Weights = np.zeros((3, 3, 2, 4, 6))          # channel-wise: Cg = 1
    cw.Weights = np.zeros((3, 3, 1, 4, 6))
    assert (cw.NumGroups, cw.NumChannelsPerGroup) == (6, 1)
    cw = ml.groupedConvolution2dLayer(3, 4, "channel-wise")
    cw.Bias = np.zeros((1, 1, 4, 7))
    assert cw.NumGroups == 7
    with pytest.raises(ValueError, match="NumChannelsPerGroup must be 'auto' or 1"):
        ml.groupedConvolution2dLayer(3, 4, "channel-wise", NumChannelsPerGroup=2)
    with pytest.raises(ValueError, match="NumGroups must be a positive integer scalar or "
                                         "'channel-wise', got 0"):
        ml.groupedConvolution2dLayer(3, 4, 0)
    with pytest.raises(ValueError, match="got 'depthwise'"):
        ml.groupedConvolution2dLayer(3, 4, "depthwise")


# --------------------------------------------------------------------------- initializers

def test_glorot_package_example():
    # §5.2: after seed 0, Glorot on 2×1×1 weights (numIn = numOut = 2)
    ml.rng(0)
    layer = ml.transposedConv1dLayer(2, 1).initialize(1)
    assert layer.Weights.dtype == np.float32 and layer.Weights.shape == (2, 1, 1)
    np.testing.assert_allclose(layer.Weights.ravel(), [0.770912, 0.993983], atol=1e-6)
    assert layer.Bias.tolist() == [[0.0]]


def test_glorot_fans_and_reproducibility():
    ml.rng(3)
    a = ml.convolution2dLayer([3, 2], 5).initialize(4).Weights
    ml.rng(3)
    u = ml.rand(3, 2, 4, 5)
    np.testing.assert_allclose(a, (np.sqrt(6 / (24 + 30)) * (2 * u - 1)).astype(np.float32))
    ml.rng(3)
    g = ml.groupedConvolution2dLayer(3, 2, 3).initialize(6).Weights     # Cg = 2, Fg = 2
    ml.rng(3)
    np.testing.assert_allclose(g, (np.sqrt(6 / (18 + 18)) * (2 * ml.rand(3, 3, 2, 2, 3) - 1))
                               .astype(np.float32))


def test_random_initializers_statistics():
    ml.rng(1)
    w = ml.convolution2dLayer(5, 64, WeightsInitializer="he").initialize(32).Weights
    assert abs(w.std() - np.sqrt(2 / (25 * 32))) < 0.01 * np.sqrt(2 / (25 * 32)) * 5
    w = ml.convolution1dLayer(5, 64, WeightsInitializer="narrow-normal",
                              BiasInitializer="narrow-normal").initialize(32)
    assert abs(w.Weights.std() - 0.01) < 1e-3 and w.Bias.std() > 0
    t = ml.transposedConv2dLayer(3, 64, WeightsInitializer="he").initialize(8).Weights
    assert abs(t.std() - np.sqrt(2 / (9 * 8))) < 0.05 * np.sqrt(2 / (9 * 8))
    with ml.package_defaults(transposed_he_fan_in="filters"):
        t = ml.transposedConv2dLayer(3, 64, WeightsInitializer="he").initialize(8).Weights
    assert abs(t.std() - np.sqrt(2 / (9 * 64))) < 0.05 * np.sqrt(2 / (9 * 64))


def test_constant_and_callable_initializers():
    layer = ml.convolution2dLayer(3, 2, WeightsInitializer="ones", BiasInitializer="ones")
    layer.initialize(2)
    assert np.all(layer.Weights == 1) and np.all(layer.Bias == 1)
    seen = []

    def init(sz):
        seen.append(sz)
        return np.full(sz, 0.5)
    layer = ml.transposedConv1dLayer(3, 2, WeightsInitializer=init, BiasInitializer=init)
    layer.initialize(4)
    assert seen == [(3, 2, 4), (1, 2)]
    assert layer.Weights.dtype == np.float32 and np.all(layer.Weights == 0.5)
    assert "WeightsInitializer: @init" in layer._all_properties_text()
    bad = ml.convolution1dLayer(3, 2, WeightsInitializer=lambda sz: np.zeros((2, 2)))
    with pytest.raises(ValueError, match="initialize: WeightsInitializer must return an array "
                                         "of size 3×4×2, got 2×2"):
        bad.initialize(4)


def test_initializers_only_fill_empty_learnables():
    w = np.full((3, 2, 2), 7.0)
    layer = ml.convolution1dLayer(3, 2, Weights=w).initialize()
    assert layer.Weights is w and layer.Bias.shape == (1, 2)
    with pytest.raises(ValueError, match="num_channels must be given"):
        ml.convolution1dLayer(3, 2).initialize()
    with pytest.raises(ValueError, match="the number of input channels must be 2"):
        ml.convolution1dLayer(3, 2, NumChannels=2).initialize(3)


# --------------------------------------------------------------------------- predict: formats

SPECS = {  # ctor, kwargs, canonical formats: (shape, convolution dims after folding)
    "conv1d": (ml.convolution1dLayer, (3, 4), dict(Stride=2, DilationFactor=2, Padding=[1, 2])),
    "tconv1d": (ml.transposedConv1dLayer, (3, 4), dict(Stride=2, Cropping=[1, 0])),
    "conv2d": (ml.convolution2dLayer, ([3, 2], 4), dict(Stride=[1, 2], Padding=[1, 0, 1, 1])),
    "conv3d": (ml.convolution3dLayer, (2, 3), dict(Stride=[1, 2, 1], Padding=[1, 0, 1])),
    "tconv2d": (ml.transposedConv2dLayer, ([3, 2], 4), dict(Stride=[2, 1], Cropping=[1, 0, 0, 1])),
    "tconv3d": (ml.transposedConv3dLayer, (2, 3), dict(Stride=[2, 1, 1], Cropping=[1, 0, 0])),
    "gconv2d": (ml.groupedConvolution2dLayer, (3, 2, 2), dict(Padding=1, Stride=2)),
}

FORMATS = {
    "conv1d": ["SCB", "SCBT", "CBT", "SC", "SCT", "CT"],
    "tconv1d": ["SCB", "SCBT", "CBT", "SC", "SCT", "CT"],
    "conv2d": ["SSCB", "SSCBT", "SCBT", "SSC", "SSCT", "SCT"],
    "conv3d": ["SSSCB", "SSSCBT", "SSCBT", "SSSC", "SSSCT", "SSCT"],
    "tconv2d": ["SSCB", "SSCBT", "SSC", "SSCT"],
    "tconv3d": ["SSSCB", "SSSCBT", "SSSC", "SSSCT"],
    "gconv2d": ["SSCB", "SSCBT", "SSC", "SSCT"],
}

CASES = [(k, f) for k, fs in FORMATS.items() for f in fs]


def _oracle(name, layer, x, nd):
    """Oracle on S1..Sd x C x N data with the layer's learnables."""
    w = layer.Weights.astype(np.float64)
    b = layer.Bias.astype(np.float64)
    if name.startswith("tconv"):
        crop = np.asarray(layer.CroppingSize)
        before, after = _split(crop, nd)
        return R.conv_transpose(x, w, b, _vec(layer.Stride, nd), 1, [before, after])
    before, after = _split(np.asarray(layer.PaddingSize), nd)
    g = 1
    if name == "gconv2d":
        g = w.shape[4]
        w = w.reshape(w.shape[:3] + (-1,), order="F")
    return R.conv(x, w, b, _vec(layer.Stride, nd), _vec(layer.DilationFactor, nd),
                  [before, after], g, layer.PaddingValue)


def _vec(v, nd):
    return [int(v)] * nd if np.ndim(v) == 0 else [int(e) for e in v]


def _split(stored, nd):
    if nd == 1:
        return [stored[0]], [stored[1]]
    if nd == 2:
        return [stored[0], stored[2]], [stored[1], stored[3]]
    return list(stored[0]), list(stored[1])


@pytest.mark.parametrize("name, fmt", CASES, ids=[f"{k}-{f}" for k, f in CASES])
def test_predict_every_format_against_oracle(name, fmt, dtype, rng):
    ctor, args, kwargs = SPECS[name]
    nd = {"1": 1, "2": 2, "3": 3}[name[-2]]
    sizes = {"S": [5, 4, 3], "C": 4, "B": 2, "T": 3}
    shape, s_i = [], 0
    for lab in fmt:
        if lab == "S":
            shape.append(sizes["S"][s_i])
            s_i += 1
        else:
            shape.append(sizes[lab])
    x = rng.standard_normal(shape).astype(dtype)
    layer = ctor(*args, BiasInitializer="narrow-normal", **kwargs)
    Y = ml.predict(layer, ml.dlarray(x, fmt))
    assert Y.dims == fmt and Y.dtype == dtype
    # The oracle sees S1..Sd x C x N: T is a conv dim when the input has one S fewer,
    # else folded with B into the observations.
    ns = fmt.count("S")
    xt = x.astype(np.float64)
    if ns == nd:
        xo = xt.reshape(xt.shape[:nd + 1] + (-1,), order="F")
        yo = _oracle(name, layer, xo, nd)
        expected = yo.reshape(yo.shape[:nd + 1] + x.shape[nd + 1:], order="F")
    else:
        t, c = fmt.index("T"), fmt.index("C")
        b = [fmt.index("B")] if "B" in fmt else []
        xo = xt.transpose(list(range(ns)) + [t, c] + b)
        if not b:
            xo = xo[..., None]
        yo = _oracle(name, layer, xo, nd)
        if not b:
            yo = yo[..., 0]
        expected = yo.transpose(list(range(ns)) + [ns + 1] + ([ns + 2] if b else []) + [ns])
    assert Y.shape == expected.shape
    assert_close(ml.extractdata(Y), expected, dtype, fan_in=layer.Weights.size)


def test_unsupported_format():
    layer = ml.groupedConvolution2dLayer(3, 2, 2, Name="g1")
    with pytest.raises(ValueError) as e:
        ml.predict(layer, ml.dlarray(np.zeros((5, 4, 2)), "SCB"))
    assert str(e.value) == ("predict: the input format of GroupedConvolution2DLayer 'g1' must "
                            "be one of 'SSCB', 'SSCBT', 'SSC', 'SSCT', got 'SCB'")
    with pytest.raises(ValueError, match="must be one of 'SCB'"):
        ml.transposedConv1dLayer(3, 2).predict(ml.dlarray(np.zeros((5, 4, 2, 2)), "SSCB"))


def test_unformatted_input_with_data_format():
    layer = ml.convolution1dLayer(3, 2, WeightsInitializer="ones")
    x = np.random.rand(4, 6, 3)                       # C x T x B, MATLAB order "CTB"
    Y = layer.predict(x, DataFormat="CTB")
    assert Y.dims == "" and Y.shape == (2, 4, 3)      # unformatted, in CTB order
    Yf = layer.predict(ml.dlarray(x, "CTB"))
    np.testing.assert_array_equal(ml.stripdims(Yf, "CTB").data, Y.data)
    with pytest.raises(ValueError, match="predict: X must be a formatted dlarray"):
        layer.predict(x)


def test_predict_dispatch():
    with pytest.raises(TypeError, match="predict: the first argument must be a layer"):
        ml.predict(3, None)


# --------------------------------------------------------------------------- predict: values

def test_lazy_initialization_and_dtype():
    ml.rng(0)
    layer = ml.transposedConv1dLayer(11, 96, Stride=4)
    Y = ml.predict(layer, ml.dlarray(np.random.rand(100, 3, 2).astype(np.float32), "SCB"))
    assert Y.shape == (407, 96, 2) and Y.dtype == np.float32
    assert layer.NumChannels == 3 and layer.Weights.shape == (11, 96, 3)
    assert layer.Weights.dtype == np.float32
    Y64 = layer.predict(ml.dlarray(np.random.rand(10, 3, 1), "SCB"))
    assert Y64.dtype == np.float64                      # mixed single/double -> double
    with pytest.raises(ValueError, match="X has 4 channels but the weights expect 3"):
        layer.predict(ml.dlarray(np.random.rand(10, 4, 1), "SCB"))


def test_explicit_num_channels_mismatch_at_first_run():
    layer = ml.convolution2dLayer(3, 2, NumChannels=3, Name="c")
    with pytest.raises(ValueError, match="predict: the number of input channels must be 3 "
                                         "\\(NumChannels of Convolution2DLayer 'c'\\), got 4"):
        layer.predict(ml.dlarray(np.zeros((5, 5, 4)), "SSC"))


def test_grouped_channel_errors():
    g = ml.groupedConvolution2dLayer(3, 2, 3)
    with pytest.raises(ValueError, match="must be divisible by NumGroups \\(3\\)"):
        g.predict(ml.dlarray(np.zeros((5, 5, 4, 1)), "SSCB"))
    g = ml.groupedConvolution2dLayer(3, 2, 2, NumChannelsPerGroup=2)
    with pytest.raises(ValueError, match="must be 4 \\(NumChannelsPerGroup × NumGroups"):
        g.predict(ml.dlarray(np.zeros((5, 5, 6, 1)), "SSCB"))


def test_input_too_small():
    layer = ml.convolution2dLayer(5, 2)
    with pytest.raises(ValueError, match="predict: along spatial dimension 1 the padded input"):
        layer.predict(ml.dlarray(np.zeros((3, 8, 1, 1)), "SSCB"))
    t = ml.transposedConv1dLayer(2, 1, Stride=2, Cropping=[3, 3])
    with pytest.raises(ValueError, match="the cropping of TransposedConvolution1DLayer must "
                                         "leave at least one output"):
        t.predict(ml.dlarray(np.zeros((2, 1, 1)), "SCB"))


def test_channel_wise_runs_and_infers(dtype, rng):
    layer = ml.groupedConvolution2dLayer(3, 2, "channel-wise", Padding="same",
                                         BiasInitializer="narrow-normal")
    x = rng.standard_normal((6, 7, 3, 2)).astype(dtype)
    y = run(layer, x, "SSCB")
    assert (layer.NumGroups, layer.NumChannelsPerGroup) == (3, 1)
    w = layer.Weights.reshape(3, 3, 1, 6, order="F").astype(np.float64)
    expected = R.conv(x.astype(np.float64), w, layer.Bias.astype(np.float64), 1, 1,
                      [[1, 1], [1, 1]], 3)
    assert_close(y, expected, dtype, fan_in=9)


@pytest.mark.parametrize("mode", ["symmetric-include-edge", "symmetric-exclude-edge",
                                  "replicate", 2.5])
def test_padding_value_modes(mode, dtype, rng):
    layer = ml.convolution2dLayer([3, 2], 2, Padding=[2, 1], PaddingValue=mode,
                                  BiasInitializer="ones")
    x = rng.standard_normal((5, 4, 3, 2)).astype(dtype)
    y = run(layer, x, "SSCB")
    expected = R.conv(x.astype(np.float64), layer.Weights.astype(np.float64),
                      layer.Bias.astype(np.float64), 1, 1, [[2, 1], [2, 1]], 1, mode)
    assert_close(y, expected, dtype, fan_in=18)


def test_padding_value_table_3_7():
    w = np.zeros((5, 1, 1))
    for mode, row in [(0, [0, 0, 1, 2, 3, 4, 5, 0, 0]), (7, [7, 7, 1, 2, 3, 4, 5, 7, 7]),
                      ("symmetric-include-edge", [2, 1, 1, 2, 3, 4, 5, 5, 4]),
                      ("symmetric-exclude-edge", [3, 2, 1, 2, 3, 4, 5, 4, 3]),
                      ("replicate", [1, 1, 1, 2, 3, 4, 5, 5, 5])]:
        # a one-hot filter at tap k reads padded element j + k: the padded row itself
        out = []
        for k in range(5):
            wk = w.copy()
            wk[k] = 1
            layer = ml.convolution1dLayer(5, 1, Padding=2, PaddingValue=mode, Weights=wk,
                                          Bias=np.zeros((1, 1)))
            out.append(run(layer, col(1, 2, 3, 4, 5), "SCB").ravel())
        got = [out[0][0], out[1][0], out[2][0], out[3][0], out[4][0]] + list(out[4][1:])
        assert got == row


def test_same_padding_resolved_from_input():
    # §8.14
    layer = ml.convolution1dLayer(3, 1, Stride=2, Padding="same", WeightsInitializer="ones")
    run(layer, col(*range(6)), "SCB")
    assert layer.PaddingSize.tolist() == [0, 1]
    run(layer, col(*range(5)), "SCB")
    assert layer.PaddingSize.tolist() == [1, 1]
    layer = ml.convolution1dLayer(3, 1, DilationFactor=2, Padding="same", WeightsInitializer="ones")
    assert run(layer, col(*range(5)), "SCB").shape == (5, 1, 1)
    assert layer.PaddingSize.tolist() == [2, 2]
    layer = ml.convolution1dLayer(2, 1, DilationFactor=3, Padding="same", WeightsInitializer="ones")
    run(layer, col(*range(6)), "SCB")
    assert layer.PaddingSize.tolist() == [1, 2]


@pytest.mark.parametrize("in_, f, s, d, before, after, out", [
    (5, 3, 1, 1, 1, 1, 5), (5, 4, 1, 1, 1, 2, 5), (6, 2, 1, 1, 0, 1, 6), (6, 3, 2, 1, 0, 1, 3),
    (5, 3, 2, 1, 1, 1, 3), (10, 3, 4, 1, 0, 1, 3), (8, 2, 4, 1, 0, 0, 2), (5, 3, 1, 2, 2, 2, 5),
    (6, 2, 1, 3, 1, 2, 6), (227, 11, 4, 1, 4, 4, 57),
])
def test_worked_examples_conv_same(in_, f, s, d, before, after, out):
    layer = ml.convolution2dLayer([f, 1], 1, Stride=[s, 1], DilationFactor=[d, 1],
                                  Padding="same", WeightsInitializer="ones")
    y = run(layer, np.ones((in_, 1, 1, 1)), "SSCB")
    assert y.shape[0] == out
    assert layer.PaddingSize.tolist() == [before, after, 0, 0]


@pytest.mark.parametrize("in_, f, s, before, after, out", [
    (3, 3, 2, 0, 1, 6), (3, 4, 2, 1, 1, 6), (3, 5, 2, 1, 2, 6), (4, 11, 4, 3, 4, 16),
    (3, 2, 4, 0, 0, 12),
])
def test_worked_examples_transposed_same(in_, f, s, before, after, out, rng):
    layer = ml.transposedConv1dLayer(f, 1, Stride=s, Cropping="same",
                                     BiasInitializer="narrow-normal")
    x = rng.standard_normal((in_, 1, 1))
    y = run(layer, x, "SCB")
    assert y.shape[0] == out == s * in_
    assert layer.CroppingSize.tolist() == [before, after]
    expected = R.conv_transpose(x, layer.Weights.astype(float), layer.Bias.astype(float), s, 1,
                                [[before], [after]], 1, max(0, s - f))
    np.testing.assert_allclose(y, expected, rtol=1e-12)


def test_transposed_same_split_option():
    x = col(1, 2, 3)
    layer = ml.transposedConv1dLayer(3, 1, Stride=2, Cropping="same", Weights=np.ones((3, 1, 1)),
                                     Bias=np.zeros((1, 1)))
    assert run(layer, x, "SCB").ravel().tolist() == [1, 1, 3, 2, 5, 3]
    with ml.package_defaults(same_crop_extra="start"):
        assert layer.CroppingSize.tolist() == [1, 0]
        assert run(layer, x, "SCB").ravel().tolist() == [1, 3, 2, 5, 3, 3]


# --------------------------------------------------------------------------- §8 pitfalls

def test_pitfall_1_conv_same_with_stride_pads_the_end():
    layer = ml.convolution1dLayer(3, 1, Stride=2, Padding="same", Weights=np.ones((3, 1, 1)),
                                  Bias=np.zeros((1, 1)))
    assert run(layer, col(1, 2, 3, 4, 5, 6), "SCB").ravel().tolist() == [6, 12, 11]


def test_pitfall_2_transposed_same_odd_crop():
    layer = ml.transposedConv1dLayer(3, 1, Stride=2, Cropping="same",
                                     Weights=np.ones((3, 1, 1)), Bias=np.zeros((1, 1)))
    assert run(layer, col(1, 2, 3), "SCB").ravel().tolist() == [1, 1, 3, 2, 5, 3]


def test_pitfall_3_transposed_same_f_less_than_s():
    layer = ml.transposedConv1dLayer(2, 1, Stride=3, Cropping="same",
                                     Weights=np.array([1.0, 2.0]).reshape(2, 1, 1),
                                     Bias=np.array([[0.5]]))
    assert run(layer, col(1, 2), "SCB").ravel().tolist() == [1.5, 2.5, 0.5, 2.5, 4.5, 0.5]


def test_pitfall_4_pytorch_output_padding_is_cropping():
    layer = ml.transposedConv1dLayer(3, 1, Stride=2, Weights=col(1, 2, 3), Bias=np.zeros((1, 1)))
    assert run(layer, col(1, 2, 3), "SCB").ravel().tolist() == [1, 2, 5, 4, 9, 6, 9]
    layer = ml.transposedConv1dLayer(3, 1, Stride=2, Cropping=[1, 0], Weights=col(1, 2, 3),
                                     Bias=np.zeros((1, 1)))
    assert run(layer, col(1, 2, 3), "SCB").ravel().tolist() == [2, 5, 4, 9, 6, 9]


def test_pitfall_5_no_kernel_flip():
    layer = ml.convolution1dLayer(3, 1, Padding=[1, 1], Weights=col(1, 2, 3), Bias=np.zeros((1, 1)))
    assert run(layer, col(0, 0, 1, 0, 0), "SCB").ravel().tolist() == [0, 3, 2, 1, 0]
    layer = ml.transposedConv1dLayer(3, 1, Weights=col(1, 2, 3), Bias=np.zeros((1, 1)))
    assert run(layer, col(0, 1, 0), "SCB").ravel().tolist() == [0, 1, 2, 3, 0]


def test_pitfall_6_filters_before_channels(rng):
    # PyTorch ConvTranspose2d(3, 4, (3, 2)): weight (3, 4, 3, 2) -> MATLAB 3×2×4×3
    wt = rng.standard_normal((3, 4, 3, 2))
    layer = ml.transposedConv2dLayer([3, 2], 4, Weights=wt.transpose(2, 3, 1, 0),
                                     Bias=np.zeros((1, 1, 4)))
    assert layer.NumChannels == 3
    x = rng.standard_normal((2, 3, 3, 1))             # H×W×C×B
    y = run(layer, x, "SSCB")
    full = np.zeros((4, 4, 4))                        # scatter form, per definition
    for i in range(2):
        for j in range(3):
            for c in range(3):
                full[i:i + 3, j:j + 2, :] += x[i, j, c, 0] * wt[c].transpose(1, 2, 0)
    np.testing.assert_allclose(y[..., 0], full, atol=1e-12)
    # Conv2d(3, 4, (3, 2)): weight (4, 3, 3, 2) -> MATLAB 3×2×3×4
    wc = rng.standard_normal((4, 3, 3, 2))
    conv = ml.convolution2dLayer([3, 2], 4, Weights=wc.transpose(2, 3, 1, 0),
                                 Bias=np.zeros((1, 1, 4)))
    x = rng.standard_normal((5, 4, 3, 1))
    y = run(conv, x, "SSCB")
    ref = np.array([[[np.sum(x[i:i + 3, j:j + 2, :, 0] * wc[f].transpose(1, 2, 0))
                      for f in range(4)] for j in range(3)] for i in range(3)])
    np.testing.assert_allclose(y[..., 0], ref, atol=1e-12)


def test_pitfall_8_grouped_channel_order():
    w = np.zeros((1, 1, 2, 2, 2))
    w[0, 0, :, 0, 0] = [1, 0]
    w[0, 0, :, 1, 0] = [0, 1]
    w[0, 0, :, 0, 1] = [1, 1]
    w[0, 0, :, 1, 1] = [1, -1]
    layer = ml.groupedConvolution2dLayer(1, 2, 2, Weights=w, Bias=np.zeros((1, 1, 2, 2)))
    y = run(layer, np.arange(1.0, 5).reshape(1, 1, 4, 1), "SSCB")
    assert y.ravel().tolist() == [1, 2, 7, -1]


@pytest.mark.parametrize("d, expected", [(1, [3, 8, 14, 20, 26]), (2, [3, 6, 11, 16, 22])])
def test_pitfall_9_causal(d, expected):
    layer = ml.convolution1dLayer(3, 1, Padding="causal", DilationFactor=d, Weights=col(1, 2, 3),
                                  Bias=np.zeros((1, 1)))
    assert run(layer, col(1, 2, 3, 4, 5), "SCB").ravel().tolist() == expected
    # CBT: causal over time, as MATLAB's sequence use
    assert run(layer, np.arange(1.0, 6).reshape(1, 1, 5), "CBT").ravel().tolist() == expected


def test_pitfall_13_memory_order(monkeypatch, rng):
    layer = ml.convolution2dLayer(3, 4, Padding="same", BiasInitializer="narrow-normal")
    xc = rng.standard_normal((6, 5, 3, 2))
    xf = np.asfortranarray(xc)
    seen = []
    original = _ops._to_engine

    def spy(a, *args):
        e = original(a, *args)
        seen.append(np.shares_memory(e, a))
        return e
    monkeypatch.setattr(_ops, "_to_engine", spy)
    yf = run(layer, xf, "SSCB")
    assert seen[0] is True                           # F-ordered input reaches the engine uncopied
    yc = run(layer, xc, "SSCB")
    np.testing.assert_array_equal(yf, yc)


def test_time_dimension_equivalences(rng):
    # SCBT over S, T independent == SCB for each time step
    layer = ml.convolution1dLayer(3, 2, Padding="same", BiasInitializer="ones")
    x = rng.standard_normal((6, 3, 2, 4))
    y = run(layer, x, "SCBT")
    for t in range(4):
        np.testing.assert_allclose(y[..., t], run(layer, x[..., t], "SCB"), atol=1e-12)
    # CBT over T == SCB with T as S
    xt = rng.standard_normal((3, 2, 7))
    np.testing.assert_allclose(run(layer, xt, "CBT"),
                               run(layer, xt.transpose(2, 0, 1), "SCB").transpose(1, 2, 0),
                               atol=1e-12)
    # conv2d on SCBT convolves over S and T
    conv = ml.convolution2dLayer(3, 2, BiasInitializer="ones")
    xs = rng.standard_normal((5, 3, 2, 6))
    np.testing.assert_allclose(run(conv, xs, "SCBT"),
                               run(conv, xs.transpose(0, 3, 1, 2), "SSCB").transpose(0, 2, 3, 1),
                               atol=1e-12)


def test_transposed_crop_that_leaves_nothing_gives_bias_only_output():
    # §3.2 / §9.7: full output 2, crop 1 + 1 -> OutputSizeOffset 1 (< Stride): one output
    # that receives only the bias; a crop that needs an offset >= Stride is an error
    layer = ml.transposedConv1dLayer(2, 1, Stride=3, Cropping=[1, 1],
                                     Weights=np.ones((2, 1, 1)), Bias=np.full((1, 1), 0.5))
    assert run(layer, col(7.0), "SCB").ravel().tolist() == [0.5]
    bad = ml.transposedConv1dLayer(2, 1, Stride=3, Cropping=[2, 2],
                                   Weights=np.ones((2, 1, 1)), Bias=np.full((1, 1), 0.5))
    with pytest.raises(ValueError, match="must leave at least one output"):
        run(bad, col(7.0), "SCB")
