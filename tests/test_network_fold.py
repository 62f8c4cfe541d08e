"""predict's inference program: batch normalization folded into the convolution before it
(``package_defaults(network_fold_batchnorm=...)``) equals the layer-by-layer path to float
round-off (float64: 1e-12 of max|y|; float32: a few ulps of max|y|), is used only where the
convolution's output has no other reader, and follows changes of the parameters."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlayers as ml
from mlayers._table import Table

COLS = ("Layer", "Parameter", "Value")


def tol(dtype):
    return 1e-12 if dtype == np.float64 else 8 * np.finfo(np.float32).eps


def digit_layers():
    layers = [ml.imageInputLayer([12, 12, 2], Normalization="none")]
    for k, f in enumerate((4, 6, 8)):
        layers += [ml.convolution2dLayer(3, f, Padding="same"), ml.batchNormalizationLayer(),
                   ml.reluLayer()]
        if k < 2:
            layers.append(ml.maxPooling2dLayer(2, Stride=2))
    return layers + [ml.fullyConnectedLayer(5), ml.softmaxLayer()]


def with_params(net, rng, dtype, bn_scale=1.0):
    """Every learnable and state value random (batch norm: trained-looking statistics) in
    ``dtype``."""
    learn, state = [], []
    for r in net.Learnables:
        v = np.asarray(r.Value.data)
        if r.Parameter == "Scale":
            new = bn_scale * (0.5 + rng.random(v.shape))
        else:
            new = 0.5 * rng.standard_normal(v.shape)
        learn.append((r.Layer, r.Parameter, ml.dlarray(new.astype(dtype))))
    for r in net.State:
        v = np.asarray(r.Value.data)
        new = 0.3 + rng.random(v.shape) if r.Parameter == "TrainedVariance" \
            else 0.5 * rng.standard_normal(v.shape)
        state.append((r.Layer, r.Parameter, ml.dlarray(new.astype(dtype))))
    net.Learnables = Table(COLS, learn)
    net.State = Table(COLS, state)
    return net


def both(net, X, **kwargs):
    """(folded, layer by layer) predictions."""
    with ml.package_defaults(network_fold_batchnorm=False):
        ref = ml.predict(net, X, **kwargs)
    return ml.predict(net, X, **kwargs), ref


def folded_steps(net):
    """How many conv + batchnorm pairs the last inference programs fold."""
    return max((len(g[0]) for _, g, _, _ in net._plan.programs.values()), default=0)


def assert_roundoff(y, ref, dtype):
    y = np.asarray(y.data, np.float64)
    r = np.asarray(ref.data, np.float64)
    assert y.shape == r.shape
    err = np.abs(y - r).max() / np.abs(r).max()
    assert err <= tol(dtype), err
    return err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_digit_network_folded_equals_layer_by_layer(dtype):
    rng = np.random.default_rng(0)
    ml.rng(0)
    net = with_params(ml.dlnetwork(digit_layers()), rng, dtype)
    X = ml.dlarray(rng.random((12, 12, 2, 7)).astype(dtype), "SSCB")
    Y1 = ml.predict(net, X)                     # the first call checks formats too
    Y, ref = both(net, X)
    assert folded_steps(net) == 3
    assert Y.dtype == ref.dtype == dtype and Y.dims == ref.dims
    np.testing.assert_array_equal(Y1.data, Y.data)      # deterministic from the first call
    assert_roundoff(Y, ref, dtype)
    # the activations before the softmax, where the scale is not squashed
    Yfc, reffc = both(net, X, Outputs="fc")
    assert_roundoff(Yfc, reffc, dtype)


def test_float32_network_float64_input_folds_in_float64():
    rng = np.random.default_rng(1)
    ml.rng(0)
    net = with_params(ml.dlnetwork(digit_layers()), rng, np.float32)
    X = ml.dlarray(rng.random((12, 12, 2, 3)), "SSCB")
    Y, ref = both(net, X, Outputs="fc")
    assert Y.dtype == ref.dtype == np.float64
    assert_roundoff(Y, ref, np.float64)


def test_parameter_changes_refold():
    rng = np.random.default_rng(2)
    ml.rng(0)
    net = with_params(ml.dlnetwork(digit_layers()), rng, np.float64)
    X = ml.dlarray(rng.random((12, 12, 2, 4)), "SSCB")
    before, _ = both(net, X, Outputs="fc")
    # Learnables (batchnorm Scale/Offset, conv Weights) and State assigned
    net = with_params(net, rng, np.float64, bn_scale=3.0)
    Y, ref = both(net, X, Outputs="fc")
    assert np.abs(Y.data - before.data).max() > 1e-3
    assert_roundoff(Y, ref, np.float64)
    # a property of a layer inside the network
    net.Layers[2].Epsilon = 0.25
    Y, ref = both(net, X, Outputs="fc")
    assert_roundoff(Y, ref, np.float64)


def test_requested_or_shared_conv_output_is_not_folded():
    rng = np.random.default_rng(3)
    ml.rng(0)
    net = with_params(ml.dlnetwork(digit_layers()), rng, np.float32)
    X = ml.dlarray(rng.random((12, 12, 2, 2)).astype(np.float32), "SSCB")
    conv, bn = net.Layers[1], net.Layers[2]
    yc, ybn = ml.predict(net, X, Outputs=[conv.Name, bn.Name])
    hc = conv._forward(net.Layers[0]._forward(X, "predict"), "predict")
    np.testing.assert_array_equal(yc.data, hc.data)
    np.testing.assert_array_equal(ybn.data, bn._forward(hc, "predict").data)
    # a residual branch reads the convolution's output: layer by layer there
    g = ml.layerGraph([ml.imageInputLayer([6, 6, 3], Normalization="none", Name="in"),
                       ml.convolution2dLayer(3, 3, Padding="same", Name="c"),
                       ml.batchNormalizationLayer(Name="bn"),
                       ml.additionLayer(2, Name="add"), ml.reluLayer(Name="r")])
    g = ml.connectLayers(g, "c", "add/in2")
    ml.rng(1)
    net = with_params(ml.dlnetwork(g), rng, np.float32)
    X = ml.dlarray(rng.random((6, 6, 3, 2)).astype(np.float32), "SSCB")
    Y, ref = both(net, X)
    assert folded_steps(net) == 0
    np.testing.assert_array_equal(Y.data, ref.data)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv1d_and_conv3d_with_batchnorm(dtype):
    rng = np.random.default_rng(4)
    ml.rng(0)
    net = with_params(ml.dlnetwork([
        ml.sequenceInputLayer(5, Normalization="none"),
        ml.convolution1dLayer(3, 6, Padding="causal", DilationFactor=2),
        ml.batchNormalizationLayer(), ml.reluLayer(),
        ml.convolution1dLayer(2, 4, Stride=2, Padding="same"),
        ml.batchNormalizationLayer()]), rng, dtype)
    X = ml.dlarray(rng.standard_normal((5, 3, 11)).astype(dtype), "CBT")
    Y, ref = both(net, X)
    assert folded_steps(net) == 2
    assert_roundoff(Y, ref, dtype)
    ml.rng(0)
    net = with_params(ml.dlnetwork([
        ml.image3dInputLayer([5, 4, 3, 2], Normalization="none"),
        ml.convolution3dLayer(2, 3, Padding="same"), ml.batchNormalizationLayer()]),
        rng, dtype)
    X = ml.dlarray(rng.standard_normal((5, 4, 3, 2, 2)).astype(dtype), "SSSCB")
    Y, ref = both(net, X)
    assert folded_steps(net) == 1
    assert_roundoff(Y, ref, dtype)


def test_grouped_and_transposed_convolutions_run_layer_by_layer():
    rng = np.random.default_rng(5)
    ml.rng(0)
    net = with_params(ml.dlnetwork([
        ml.imageInputLayer([6, 6, 4], Normalization="none"),
        ml.groupedConvolution2dLayer(3, 2, 2, Padding="same"), ml.batchNormalizationLayer(),
        ml.transposedConv2dLayer(2, 3, Stride=2), ml.batchNormalizationLayer()]),
        rng, np.float32)
    X = ml.dlarray(rng.random((6, 6, 4, 2)).astype(np.float32), "SSCB")
    Y, ref = both(net, X)
    assert folded_steps(net) == 0
    np.testing.assert_array_equal(Y.data, ref.data)


def test_errors_name_the_layer_as_before():
    ml.rng(0)
    net = ml.dlnetwork(digit_layers())
    X = ml.dlarray(np.random.default_rng(6).random((12, 12, 2, 2)).astype(np.float32),
                   "SSCB")
    ml.predict(net, X)
    bad = ml.dlarray(np.zeros((12, 12, 3, 2), np.float32), "SSCB")
    msgs = []
    for fold in (True, False):
        with ml.package_defaults(network_fold_batchnorm=fold), \
                pytest.raises(ValueError) as e:
            ml.predict(net, bad)
        msgs.append(str(e.value))
    assert msgs[0] == msgs[1] and "imageinput" in msgs[0]


def test_gradients_through_predict_inside_dlfeval_are_unfolded():
    rng = np.random.default_rng(7)
    ml.rng(0)
    net = with_params(ml.dlnetwork(digit_layers()), rng, np.float64)
    X = ml.dlarray(rng.random((12, 12, 2, 2)), "SSCB")

    def loss_fn(net, X):
        y = ml.predict(net, X, Outputs="fc")
        loss = ml.sum(y * y, "all")
        return loss, ml.dlgradient(loss, net.Learnables)

    gs = []
    for fold in (True, False):
        with ml.package_defaults(network_fold_batchnorm=fold):
            _, g = ml.dlfeval(loss_fn, net, X)
        gs.append([np.asarray(v.data) for v in g.Value])
    for a, b in zip(*gs):
        np.testing.assert_array_equal(a, b)


@settings(max_examples=15, deadline=None)
@given(c=st.integers(1, 4), f=st.integers(1, 5), k=st.integers(1, 3),
       stride=st.integers(1, 2), eps=st.sampled_from([1e-5, 1e-3, 0.5]),
       seed=st.integers(0, 2**16))
def test_fold_property(c, f, k, stride, eps, seed):
    rng = np.random.default_rng(seed)
    ml.rng(seed)
    net = with_params(ml.dlnetwork([
        ml.imageInputLayer([7, 6, c], Normalization="none"),
        ml.convolution2dLayer(k, f, Stride=stride, Padding="same"),
        ml.batchNormalizationLayer(Epsilon=eps)]), rng, np.float64)
    X = ml.dlarray(rng.standard_normal((7, 6, c, 3)), "SSCB")
    Y, ref = both(net, X)
    assert folded_steps(net) == 1
    assert_roundoff(Y, ref, np.float64)
