"""predict's inference program rectifies in place the array a ReLU alone reads when a
convolution or a 2+-input addition made it (mlayers/network.py): the same numbers as
max(x, 0) of that layer's output, and no array anyone else holds is touched."""

import numpy as np
import pytest

import mlayers as ml


def relu_ref(a):
    a = np.asarray(a)
    return np.where(np.isnan(a), a, np.maximum(a, 0))


def chain(dtype):
    rng = np.random.default_rng(3)
    layers = [ml.imageInputLayer([9, 8, 2], Normalization="none", Name="in"),
              ml.convolution2dLayer(3, 5, Padding="same", Name="conv"),
              ml.batchNormalizationLayer(Name="bn"), ml.reluLayer(Name="relu"),
              ml.convolution2dLayer(1, 4, Name="conv2"), ml.reluLayer(Name="relu2"),
              ml.fullyConnectedLayer(3, Name="fc")]
    net = ml.dlnetwork(layers)
    X = ml.dlarray(rng.standard_normal((9, 8, 2, 4)).astype(dtype), "SSCB")
    return net, X


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_chain_matches_rectified_producer_outputs(dtype):
    net, X = chain(dtype)
    X.data.flat[5] = np.nan              # NaN propagates through the in-place kernel
    y = ml.predict(net, X, Outputs="relu2")
    # asking for the producers' outputs keeps those ReLUs out of place
    bn, r, c2, r2 = ml.predict(net, X, Outputs=["bn", "relu", "conv2", "relu2"])
    np.testing.assert_array_equal(np.asarray(r.data), relu_ref(bn.data))
    np.testing.assert_array_equal(np.asarray(r2.data), relu_ref(c2.data))
    assert (np.asarray(bn.data) < 0).any() and (np.asarray(c2.data) < 0).any()
    np.testing.assert_array_equal(np.asarray(y.data), np.asarray(r2.data))
    assert np.isnan(np.asarray(y.data)).any()


def test_input_and_shared_arrays_are_not_touched():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((6, 5, 3, 2)).astype(np.float32)
    # a ReLU straight after the input layer (which passes X through) and after a dropout
    # (the identity in predict): both must leave the caller's array alone
    for mid in ([], [ml.dropoutLayer(0.5)]):
        net = ml.dlnetwork([ml.imageInputLayer([6, 5, 3], Normalization="none"), *mid,
                            ml.reluLayer()])
        X = ml.dlarray(x.copy(), "SSCB")
        y = ml.predict(net, X)
        np.testing.assert_array_equal(np.asarray(X.data), x)
        np.testing.assert_array_equal(np.asarray(y.data), relu_ref(x))
    # a convolution output read by a ReLU and by an addition: not rectified in place
    lg = ml.layerGraph([ml.imageInputLayer([6, 5, 3], Normalization="none", Name="in"),
                        ml.convolution2dLayer(3, 3, Padding="same", Name="conv"),
                        ml.reluLayer(Name="relu"), ml.additionLayer(2, Name="add")])
    lg = ml.connectLayers(lg, "conv", "add/in2")
    net = ml.dlnetwork(lg)
    X = ml.dlarray(x, "SSCB")
    c, y = ml.predict(net, X, Outputs=["conv", "add"])
    np.testing.assert_allclose(np.asarray(y.data),
                               relu_ref(c.data) + np.asarray(c.data), rtol=1e-6)


def test_residual_addition_then_relu():
    rng = np.random.default_rng(5)
    lg = ml.layerGraph([ml.imageInputLayer([7, 7, 4], Normalization="none", Name="in"),
                        ml.convolution2dLayer(3, 4, Padding="same", Name="conv"),
                        ml.additionLayer(2, Name="add"), ml.reluLayer(Name="relu")])
    lg = ml.connectLayers(lg, "in", "add/in2")
    net = ml.dlnetwork(lg)
    x = rng.standard_normal((7, 7, 4, 3))
    X = ml.dlarray(x.copy(), "SSCB")
    y = ml.predict(net, X)
    a, y2 = ml.predict(net, X, Outputs=["add", "relu"])
    np.testing.assert_array_equal(np.asarray(y.data), relu_ref(a.data))
    np.testing.assert_array_equal(np.asarray(y2.data), np.asarray(y.data))
    assert (np.asarray(a.data) < 0).any()
    np.testing.assert_array_equal(np.asarray(X.data), x)
