"""dlconv and dltranspconv (MATLAB_SEMANTICS §4.1, §4.2; API.md padding forms)."""
import numpy as np
import pytest
from conftest import assert_close

import mlayers as ml
from mlayers import reference as R


def col(*v):
    return np.array(v, dtype=float).reshape(-1, 1, 1)


def X(a, fmt):
    return ml.dlarray(a, fmt)


# --------------------------------------------------------------------------- dlconv

def test_api_md_calls(rng):
    x = X(rng.standard_normal((9, 8, 3, 2)), "SSCB")
    w = rng.standard_normal((3, 3, 3, 4))
    Y = ml.dlconv(x, w, rng.standard_normal(4), Stride=2, Padding="same", DilationFactor=1)
    assert Y.dims == "SSCB" and Y.shape == (5, 4, 4, 2)
    Y = ml.dltranspconv(x, rng.standard_normal((3, 3, 5, 3)), 0, Stride=2, Cropping=1)
    assert Y.dims == "SSCB" and Y.shape == (17, 15, 5, 2)


@pytest.mark.parametrize("padding, before, after", [
    (0, [0, 0], [0, 0]), (1, [1, 1], [1, 1]), ([1, 2], [1, 2], [1, 2]),
    ([[1, 0], [2, 1]], [1, 0], [2, 1]),                 # 2×d [before; after]: [[t, l], [b, r]]
    (np.array([[1, 0], [2, 1]]), [1, 0], [2, 1]),
    ([1, 2, 0, 1], [1, 0], [2, 1]),                     # layer form [t b l r]
    ("same", [1, 1], [1, 1]),
])
def test_dlconv_padding_forms(padding, before, after, dtype, rng):
    x = rng.standard_normal((6, 5, 2, 3)).astype(dtype)
    w = rng.standard_normal((3, 3, 2, 4)).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    Y = ml.dlconv(X(x, "SSCB"), w, b, Padding=padding)
    assert Y.dtype == dtype
    assert_close(Y.data, R.conv(x, w, b, 1, 1, [before, after]), dtype, fan_in=18)


def test_dlconv_1d_forms_and_causal():
    w = col(1, 2, 3)
    assert ml.dlconv(X(col(1, 2, 3, 4, 5), "SCB"), w, 0, Padding="causal").data.ravel().tolist() \
        == [3, 8, 14, 20, 26]
    assert ml.dlconv(X(col(1, 2, 3, 4, 5), "SCB"), w, 0, Padding="causal",
                     DilationFactor=2).data.ravel().tolist() == [3, 6, 11, 16, 22]
    assert ml.dlconv(X(col(0, 0, 1, 0, 0), "SCB"), w, 0, Padding=[1, 1]).data.ravel().tolist() \
        == [0, 3, 2, 1, 0]
    assert ml.dlconv(X(col(1, 2, 3, 4, 5, 6), "SCB"), np.ones((3, 1, 1)), 0, Stride=2,
                     Padding="same").data.ravel().tolist() == [6, 12, 11]
    assert ml.dlconv(X(col(1, 2, 3), "SCB"), w, 0, Padding=[2, 0]).data.ravel().tolist() \
        == [3, 8, 14]
    with pytest.raises(ValueError, match="dlconv: Padding 'causal' needs exactly one"):
        ml.dlconv(X(np.zeros((4, 4, 1, 1)), "SSCB"), np.ones((2, 2, 1, 1)), 0, Padding="causal")


def test_dlconv_padding_must_be_smaller_than_filter():
    with pytest.raises(ValueError, match="dlconv: Padding must be smaller than the filter "
                                         "size \\(3 with dilation\\) along dimension 1, got 3"):
        ml.dlconv(X(col(1, 2, 3), "SCB"), col(1, 2, 3), 0, Padding=3)
    ml.dlconv(X(col(1, 2, 3), "SCB"), col(1, 2, 3), 0, Padding=3, DilationFactor=2)


def test_dlconv_grouped_inferred(dtype, rng):
    x = rng.standard_normal((5, 6, 6, 2)).astype(dtype)
    w = rng.standard_normal((3, 2, 2, 4, 3)).astype(dtype)          # Cg=2, Fg=4, G=3
    b = rng.standard_normal((1, 1, 4, 3)).astype(dtype)
    Y = ml.dlconv(X(x, "SSCB"), w, b, Padding=1, Stride=[1, 2])
    expected = R.conv(x, w.reshape(3, 2, 2, 12, order="F"), b, [1, 2], 1, 1, 3)
    assert Y.shape == (5, 4, 12, 2)
    assert_close(Y.data, expected, dtype, fan_in=12)
    # pitfall 8 through dlconv
    w8 = np.zeros((1, 1, 2, 2, 2))
    w8[0, 0, :, 0, 0], w8[0, 0, :, 1, 0] = [1, 0], [0, 1]
    w8[0, 0, :, 0, 1], w8[0, 0, :, 1, 1] = [1, 1], [1, -1]
    y = ml.dlconv(X(np.arange(1.0, 5).reshape(1, 1, 4, 1), "SSCB"), w8, 0)
    assert y.data.ravel().tolist() == [1, 2, 7, -1]


@pytest.mark.parametrize("mode", ["symmetric-include-edge", "symmetric-exclude-edge",
                                  "replicate", -3])
def test_dlconv_padding_value(mode, rng):
    x = rng.standard_normal((6, 5, 2, 1))
    w = rng.standard_normal((3, 3, 2, 2))
    Y = ml.dlconv(X(x, "SSCB"), w, 0, Padding=2, PaddingValue=mode)
    np.testing.assert_allclose(Y.data, R.conv(x, w, None, 1, 1, 2, 1, mode), atol=1e-12)


def test_dlconv_data_format_and_weights_format(rng):
    x = rng.standard_normal((3, 10, 2))                   # C x T x B
    w = rng.standard_normal((4, 3, 5))                    # T x C x F
    Y = ml.dlconv(x, w, 0, DataFormat="CTB", WeightsFormat="TCU", Padding="causal")
    assert Y.dims == "" and Y.shape == (5, 10, 2)         # unformatted, in CTB order
    expected = R.conv(x.transpose(1, 0, 2), w, None, 1, 1, [[3], [0]])
    np.testing.assert_allclose(Y.data, expected.transpose(1, 0, 2), atol=1e-12)
    Yf = ml.dlconv(X(x, "CTB"), X(w, "TCU"), 0, Padding="causal")
    assert Yf.dims == "CBT"
    np.testing.assert_allclose(ml.stripdims(Yf, "CTB").data, Y.data)


def test_dlconv_formatted_weights(rng):
    x = rng.standard_normal((5, 6, 3, 2))
    w = rng.standard_normal((2, 3, 3, 4))
    Y = ml.dlconv(X(x, "SSCB"), X(w, "SSCU"), 0)
    np.testing.assert_allclose(Y.data, R.conv(x, w), atol=1e-12)
    wg = rng.standard_normal((2, 3, 1, 2, 3))             # channel-wise: Cg=1, Fg=2, G=3
    Y = ml.dlconv(X(x, "SSCB"), X(wg, "SSCUU"), 0)
    np.testing.assert_allclose(Y.data, R.conv(x, wg.reshape(2, 3, 1, 6, order="F"), groups=3),
                               atol=1e-12)
    w1 = rng.standard_normal((2, 3, 4))                   # one S: the second gets a singleton
    Y = ml.dlconv(X(x, "SSCB"), X(w1, "SCU"), 0)
    np.testing.assert_allclose(Y.data, R.conv(x, w1.reshape(2, 1, 3, 4)), atol=1e-12)


def test_dlconv_sequence_time_folded(rng):
    x = rng.standard_normal((7, 2, 3, 4))                 # SCBT: S conv, T independent
    w = rng.standard_normal((3, 2, 5))
    Y = ml.dlconv(X(x, "SCBT"), w, 0)
    for t in range(4):
        np.testing.assert_allclose(Y.data[..., t], R.conv(x[..., t], w), atol=1e-12)


def test_dlconv_errors():
    x = X(np.zeros((5, 5, 3, 1)), "SSCB")
    with pytest.raises(TypeError, match="dlconv: unknown name 'Cropping'"):
        ml.dlconv(x, np.zeros((3, 3, 3, 2)), 0, Cropping=1)
    with pytest.raises(ValueError, match="dlconv: X has 3 channels but the weights expect 4"):
        ml.dlconv(x, np.zeros((3, 3, 4, 2)), 0)
    with pytest.raises(ValueError, match="dlconv: bias must have 2 elements"):
        ml.dlconv(x, np.zeros((3, 3, 3, 2)), [1, 2, 3])
    with pytest.raises(ValueError, match="dlconv: weights must have 2 filter dimensions"):
        ml.dlconv(x, np.zeros((3, 3, 3, 2, 2, 2)), 0)
    with pytest.raises(ValueError, match="dlconv: DataFormat must not be given"):
        ml.dlconv(x, np.zeros((3, 3, 3, 2)), 0, DataFormat="SSCB")
    with pytest.raises(ValueError, match="dlconv: X must be a formatted dlarray"):
        ml.dlconv(np.zeros((5, 5, 3, 1)), np.zeros((3, 3, 3, 2)), 0)
    with pytest.raises(ValueError, match="dlconv: Stride must be a positive integer"):
        ml.dlconv(x, np.zeros((3, 3, 3, 2)), 0, Stride=0)
    with pytest.raises(ValueError, match="dlconv: Padding must be 'same' or 'causal', a "
                                         "nonnegative integer"):
        ml.dlconv(x, np.zeros((3, 3, 3, 2)), 0, Padding=[1, 2, 3])
    with pytest.raises(ValueError, match="dlconv: Padding must be one of 'same', 'causal'"):
        ml.dlconv(x, np.zeros((3, 3, 3, 2)), 0, Padding="valid")
    with pytest.raises(TypeError, match="dlconv: bias must be a real"):
        ml.dlconv(x, np.zeros((3, 3, 3, 2)), "zero")
    with pytest.raises(ValueError, match="dlconv: the weights have a T dimension"):
        ml.dlconv(x, X(np.zeros((3, 3, 2)), "TCU"), 0)
    with pytest.raises(ValueError, match="dlconv: X must have a C dimension"):
        ml.dlconv(X(np.zeros((5, 2)), "SB"), np.zeros((3, 1, 1)), 0)


# --------------------------------------------------------------------------- dltranspconv

@pytest.mark.parametrize("cropping, before, after", [
    (0, [0, 0], [0, 0]), (1, [1, 1], [1, 1]), ([1, 2], [1, 2], [1, 2]),
    ([[1, 0], [0, 1]], [1, 0], [0, 1]), ([1, 0, 0, 1], [1, 0], [0, 1]),
])
def test_dltranspconv_cropping_forms(cropping, before, after, dtype, rng):
    x = rng.standard_normal((4, 3, 2, 2)).astype(dtype)
    w = rng.standard_normal((3, 4, 5, 2)).astype(dtype)      # F x F x NF x C
    b = rng.standard_normal(5).astype(dtype)
    Y = ml.dltranspconv(X(x, "SSCB"), w, b, Stride=[2, 3], Cropping=cropping)
    assert Y.dtype == dtype
    assert_close(Y.data, R.conv_transpose(x, w, b, [2, 3], 1, [before, after]), dtype,
                 fan_in=24)


def test_dltranspconv_pitfalls():
    assert ml.dltranspconv(X(col(1, 2, 3), "SCB"), col(1, 2, 3), 0, Stride=2,
                           Cropping=[1, 0]).data.ravel().tolist() == [2, 5, 4, 9, 6, 9]
    assert ml.dltranspconv(X(col(1, 2, 3), "SCB"), np.ones((3, 1, 1)), 0, Stride=2,
                           Cropping="same").data.ravel().tolist() == [1, 1, 3, 2, 5, 3]
    assert ml.dltranspconv(X(col(1, 2), "SCB"), col(1, 2), 0.5, Stride=3,
                           Cropping="same").data.ravel().tolist() == [1.5, 2.5, 0.5, 2.5, 4.5, 0.5]
    assert ml.dltranspconv(X(col(0, 1, 0), "SCB"), col(1, 2, 3), 0).data.ravel().tolist() \
        == [0, 1, 2, 3, 0]
    # 2-by-d [before; after] in 1-D is a column
    assert ml.dltranspconv(X(col(1, 2, 3), "SCB"), col(1, 2, 3), 0, Stride=2,
                           Cropping=[[1], [0]]).data.ravel().tolist() == [2, 5, 4, 9, 6, 9]


def test_dltranspconv_onnx_pads_shape():
    # §8.16: ONNX test_convtranspose_pads (strides [3,2], pads [1,2,1,2]) = Cropping [1 2]
    Y = ml.dltranspconv(X(np.zeros((3, 3, 1, 1)), "SSCB"), np.ones((3, 3, 2, 1)), 0,
                        Stride=[3, 2], Cropping=[1, 2])
    assert Y.shape == (7, 3, 2, 1)
    Y = ml.dltranspconv(X(np.zeros((3, 3, 1, 1)), "SSCB"), np.ones((3, 3, 2, 1)), 0,
                        Stride=2, Cropping="same")
    assert Y.shape == (6, 6, 2, 1)


def test_dltranspconv_dilation_and_same(rng):
    x = rng.standard_normal((4, 2, 1))
    w = rng.standard_normal((3, 2, 2))
    Y = ml.dltranspconv(X(x, "SCB"), w, 0, Stride=2, DilationFactor=2)
    np.testing.assert_allclose(Y.data, R.conv_transpose(x, w, None, 2, 2), atol=1e-12)
    Y = ml.dltranspconv(X(x, "SCB"), w, 0, Stride=2, DilationFactor=2, Cropping="same")
    assert Y.shape[0] == 8                                 # Feff = 5, crop 3 = [1 2]
    np.testing.assert_allclose(Y.data, R.conv_transpose(x, w, None, 2, 2, [[1], [2]]),
                               atol=1e-12)


def test_dltranspconv_grouped(dtype, rng):
    x = rng.standard_normal((3, 4, 6, 2)).astype(dtype)        # C = 6 = Cg 2 x G 3
    w = rng.standard_normal((2, 3, 4, 2, 3)).astype(dtype)     # F x Fg x Cg x G
    Y = ml.dltranspconv(X(x, "SSCB"), w, 0, Stride=2)
    expected = R.conv_transpose(x, w.reshape(2, 3, 4, 6, order="F"), None, 2, groups=3)
    assert Y.shape == (6, 9, 12, 2)
    assert_close(Y.data, expected, dtype, fan_in=12)
    Yf = ml.dltranspconv(X(x, "SSCB"), X(w, "SSCUU"), 0, Stride=2)
    np.testing.assert_array_equal(Yf.data, Y.data)


def test_dltranspconv_errors():
    x = X(np.zeros((3, 3, 2, 1)), "SSCB")
    with pytest.raises(TypeError, match="dltranspconv: unknown name 'PaddingValue'"):
        ml.dltranspconv(x, np.zeros((2, 2, 3, 2)), 0, PaddingValue=1)
    with pytest.raises(ValueError, match="dltranspconv: X has 2 channels but the weights "
                                         "expect 3"):
        ml.dltranspconv(x, np.zeros((2, 2, 2, 3)), 0)
    with pytest.raises(ValueError, match="dltranspconv: along spatial dimension 1 the cropping"):
        ml.dltranspconv(x, np.zeros((2, 2, 3, 2)), 0, Cropping=[[2, 0], [2, 0]])


def test_mixed_precision_is_the_wider_type_or_matlabs_single_when_switched(rng):
    # package default: single and double operands compute in double; MATLAB's rule for
    # mixed classes (single wins) with package_defaults(mixed_precision="single")
    x = rng.standard_normal((6, 6, 2, 3)).astype(np.float32)
    w = rng.standard_normal((3, 3, 2, 4))
    X = ml.dlarray(x, "SSCB")
    assert ml.dlconv(X, w, 0).data.dtype == np.float64
    np.testing.assert_allclose(ml.dlconv(X, w, 0).data,
                               ml.dlconv(ml.dlarray(x.astype(np.float64), "SSCB"), w, 0).data,
                               rtol=1e-12)
    with ml.package_defaults(mixed_precision="single"):
        Y = ml.dlconv(X, w, 0)
        F = ml.fullyconnect(X, rng.standard_normal((5, 72)), 0)
    assert Y.data.dtype == np.float32 and F.data.dtype == np.float32
    np.testing.assert_array_equal(Y.data, ml.dlconv(X, w.astype(np.float32), 0).data)
