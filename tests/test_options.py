"""Name-value parsing, validatestring and value converters (MATLAB_SEMANTICS §1.4, §1.5, §7)."""
import numpy as np
import pytest

import mlayers as ml
from mlayers import _validate as V
from mlayers._options import match_name, parse_name_value, validatestring

NAMES = ("Stride", "Weights", "WeightsInitializer", "WeightLearnRateFactor", "WeightL2Factor",
         "Bias", "BiasInitializer", "Name")


# --------------------------------------------------------------------------- names

@pytest.mark.parametrize("given, canonical", [
    ("Stride", "Stride"), ("stride", "Stride"), ("STR", "Stride"), ("s", "Stride"),
    ("Bias", "Bias"), ("BIAS", "Bias"),             # exact match beats prefix of BiasInit..
    ("biasi", "BiasInitializer"), ("Weights", "Weights"), ("weightsi", "WeightsInitializer"),
    ("WeightL", "WeightLearnRateFactor") if False else ("WeightLe", "WeightLearnRateFactor"),
    ("n", "Name"),
])
def test_match_name(given, canonical):
    assert match_name("f", given, NAMES) == canonical


def test_ambiguous_name_lists_candidates():
    with pytest.raises(TypeError) as e:
        match_name("convolution1dLayer", "Weight", NAMES)
    assert str(e.value) == ("convolution1dLayer: name 'Weight' is ambiguous: Weights, "
                            "WeightsInitializer, WeightLearnRateFactor, WeightL2Factor")


def test_unknown_name_lists_valid_names():
    with pytest.raises(TypeError, match=r"f: unknown name 'Foo'; valid names are: Stride, "):
        match_name("f", "Foo", NAMES)


def test_empty_and_non_text_names():
    with pytest.raises(TypeError, match="unknown name ''"):
        match_name("f", "", NAMES)
    with pytest.raises(TypeError, match="option names must be text, got 3"):
        match_name("f", 3, NAMES)


def test_pairs_then_keywords_last_value_wins():
    out = parse_name_value("f", ["Stride", 2, "stride", 3], {"STRIDE": 4, "Name": "a"}, NAMES)
    assert out == {"Stride": 4, "Name": "a"}


def test_name_without_value():
    with pytest.raises(TypeError, match="f: name 'Stride' has no value"):
        parse_name_value("f", ["Name", "x", "Stride"], {}, NAMES)
    with pytest.raises(TypeError, match="unpaired value 4"):
        parse_name_value("f", [4], {}, NAMES)


def test_constructor_name_rules():
    # MATLAB_SEMANTICS §8.15 through a layer constructor
    assert np.array_equal(ml.convolution2dLayer(3, 4, "str", 2).Stride, [2, 2])
    assert ml.convolution1dLayer(3, 4, BIAS=np.zeros((1, 4))).Bias.shape == (1, 4)
    with pytest.raises(TypeError, match="ambiguous: Weights, WeightsInitializer, "
                                        "WeightLearnRateFactor, WeightL2Factor"):
        ml.convolution1dLayer(3, 4, "Weight", 1)
    with pytest.raises(TypeError, match="transposedConv1dLayer: unknown name 'DilationFactor'"):
        ml.transposedConv1dLayer(3, 4, DilationFactor=2)   # layers have no dilation (§2.1)
    with pytest.raises(TypeError, match="missing required argument"):
        ml.transposedConv1dLayer(3)
    with pytest.raises(TypeError, match="unknown name 'NumFilters'"):
        ml.transposedConv1dLayer(3, 4, NumFilters=5)      # positional, not an option
    with pytest.raises(TypeError, match="groupedConvolution2dLayer: missing required "
                                        "argument.*numGroups"):
        ml.groupedConvolution2dLayer(3, 4)


# --------------------------------------------------------------------------- validatestring

MODES = ("symmetric-include-edge", "symmetric-exclude-edge", "replicate")


@pytest.mark.parametrize("given, canonical", [
    ("replicate", "replicate"), ("REP", "replicate"), ("symmetric-i", "symmetric-include-edge"),
    ("Symmetric-Exclude-Edge", "symmetric-exclude-edge"),
])
def test_validatestring(given, canonical):
    assert validatestring(given, MODES, "f", "PaddingValue") == canonical


def test_validatestring_shortest_prefix_of_all_wins():
    assert validatestring("a", ("ab", "abc", "abcd"), "f", "X") == "ab"
    assert validatestring("Glo", ("glorot", "he"), "f", "X") == "glorot"


def test_validatestring_ambiguous_and_unknown():
    with pytest.raises(ValueError, match="got 'symmetric', which is ambiguous"):
        validatestring("symmetric", MODES, "f", "PaddingValue")
    with pytest.raises(ValueError, match="f: PaddingValue must be one of 'symmetric-include-"
                                         "edge', 'symmetric-exclude-edge', 'replicate', got "
                                         "'mirror'"):
        validatestring("mirror", MODES, "f", "PaddingValue")
    with pytest.raises(TypeError):
        validatestring(3, MODES, "f", "PaddingValue")


def test_initializer_names_canonical():
    layer = ml.convolution2dLayer(3, 4, WeightsInitializer="Glo", BiasInitializer="narrow")
    assert layer.WeightsInitializer == "glorot"
    assert layer.BiasInitializer == "narrow-normal"
    with pytest.raises(ValueError, match="WeightsInitializer must be one of"):
        ml.convolution2dLayer(3, 4, WeightsInitializer="orthogonal")   # not a conv init
    with pytest.raises(ValueError, match="BiasInitializer must be one of"):
        ml.convolution2dLayer(3, 4, BiasInitializer="glorot")


# --------------------------------------------------------------------------- converters

W = V.Where("f", "Stride")


@pytest.mark.parametrize("value", [4, 4.0, np.int32(4), np.float32(4.0), [4], np.array([[4]])])
def test_positive_int_accepts_matlab_numbers(value):
    out = V.positive_int(value, W)
    assert out == 4 and type(out) is int


@pytest.mark.parametrize("value, exc", [
    (0, ValueError), (-1, ValueError), (2.5, ValueError), (float("nan"), ValueError),
    (float("inf"), ValueError), (True, TypeError), (np.bool_(True), TypeError),
    ("4", TypeError), (None, TypeError), ([1, 2], ValueError), (1 + 2j, TypeError),
    ([True], TypeError),
])
def test_positive_int_rejects(value, exc):
    with pytest.raises(exc, match="^f: Stride must be a positive integer scalar, got "):
        V.positive_int(value, W)


@pytest.mark.parametrize("d, value, expected", [
    (2, 3, [3, 3]), (2, [3, 5], [3, 5]), (2, np.array([[3, 5]]), [3, 5]), (2, (3.0, 5), [3, 5]),
    (3, 2, [2, 2, 2]), (3, [4, 4, 2], [4, 4, 2]),
])
def test_size_vector(d, value, expected):
    out = V.size_vector(d)(value, W)
    assert out.dtype == np.int64 and out.tolist() == expected
    assert not out.flags.writeable


def test_size_vector_messages():
    with pytest.raises(ValueError) as e:
        ml.transposedConv2dLayer([3, 3, 3], 4)
    assert str(e.value) == ("transposedConv2dLayer: FilterSize must be a positive integer "
                            "scalar or 1×2 vector, got [3 3 3]")
    with pytest.raises(ValueError) as e:
        ml.transposedConv1dLayer(3, 4, Stride=0)
    assert str(e.value) == "transposedConv1dLayer: Stride must be a positive integer scalar, got 0"
    with pytest.raises(ValueError, match="1×3 vector, got \\[1; 2; 3\\]"):
        ml.convolution3dLayer(3, 4, Stride=np.array([[1], [2], [3]]))
    with pytest.raises(ValueError):
        ml.transposedConv1dLayer([3, 3], 4)            # 1-D sizes are scalars


@pytest.mark.parametrize("d, value, expected", [
    (1, 1, [1, 1]), (1, [1, 2], [1, 2]),
    (2, 1, [1, 1, 1, 1]), (2, [1, 2], [1, 1, 2, 2]), (2, [1, 2, 3, 4], [1, 2, 3, 4]),
    (3, 1, [[1, 1, 1], [1, 1, 1]]), (3, [1, 2, 3], [[1, 2, 3], [1, 2, 3]]),
    (3, [[1, 2, 3], [4, 5, 6]], [[1, 2, 3], [4, 5, 6]]),
])
def test_padding_forms(d, value, expected):
    assert V.padding_forms(d, ("same",))(value, W).tolist() == expected


@pytest.mark.parametrize("d, value", [(1, [1, 2, 3]), (2, [1, 2, 3]), (3, [1, 2]), (2, -1),
                                      (2, 1.5), (3, [[1, 2], [3, 4]])])
def test_padding_forms_reject(d, value):
    with pytest.raises(ValueError, match="must be 'same', or a nonnegative integer"):
        V.padding_forms(d, ("same",))(value, V.Where("f", "Padding"))


def test_padding_modes():
    conv1 = V.padding_forms(1, ("same", "causal"))
    assert conv1("CAUS", W) == "causal"
    assert conv1("s", W) == "same"
    with pytest.raises(ValueError, match="got 'causal'"):
        ml.convolution2dLayer(3, 4, Padding="causal")   # causal is 1-D only
    with pytest.raises(TypeError):
        V.padding_forms(2, ())("same", W)                # PaddingSize takes numbers only


def test_factors_and_text():
    assert V.nonneg_factor(0, W) == 0.0
    assert V.nonneg_factor(np.float32(2.5), W) == 2.5
    for bad in (-1, float("inf"), float("nan"), [1, 2]):
        with pytest.raises(ValueError, match="nonnegative finite real scalar"):
            V.nonneg_factor(bad, W)
    with pytest.raises(TypeError):
        V.nonneg_factor(True, W)
    assert V.text(np.str_("a"), W) == "a" and type(V.text(np.str_("a"), W)) is str
    with pytest.raises(TypeError, match="character vector or string scalar, got 3"):
        V.text(3, W)


def test_padding_value():
    pv = V.padding_value
    assert pv(0, W) == 0.0 and pv(-7, W) == -7.0
    assert pv("symmetric-e", W) == "symmetric-exclude-edge"
    with pytest.raises(ValueError):
        pv(float("nan"), W)
    with pytest.raises(ValueError):
        pv([1, 2], W)
    with pytest.raises(TypeError):
        pv(None, W)


def test_auto_or_positive_int():
    assert V.auto_or_positive_int("AUTO", W) == "auto"
    assert V.auto_or_positive_int(3.0, W) == 3
    with pytest.raises(ValueError, match="'auto' or a positive integer scalar, got 0"):
        V.auto_or_positive_int(0, W)
    with pytest.raises(ValueError):
        V.auto_or_positive_int("manual", W)
