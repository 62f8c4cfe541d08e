"""A batch normalization or an addition and the ReLU that alone reads it, in training
(dlnetwork ``forward`` inside ``dlfeval``): one operation (``batchnorm(..., _rectify=True)``:
the ReLU in the normalization's output pass, relu's backward inside the normalization's;
``plus_relu``: the ReLU in the sum's pass). The outputs, the state and every gradient must
be the two operations' bit for bit; a layer whose result is an output or is read by
another layer too keeps its ReLU step."""
import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops_norm, network
from mlayers.functional import arith
from mlayers.layers import merge


def _net(dtype):
    lg = ml.layerGraph([
        ml.imageInputLayer([10, 10, 3], Normalization="none", Name="in"),
        ml.convolution2dLayer(3, 8, Padding="same", Name="c1"),
        ml.batchNormalizationLayer(Name="bn1"), ml.reluLayer(Name="r1"),
        ml.convolution2dLayer(3, 8, Padding="same", Name="c2"),
        ml.batchNormalizationLayer(Name="bn2"),
        ml.additionLayer(2, Name="add"), ml.reluLayer(Name="r2"),
        ml.maxPooling2dLayer(2, Stride=2, Name="mp"),
        ml.convolution2dLayer(3, 6, Name="c3"), ml.batchNormalizationLayer(Name="bn3"),
        ml.reluLayer(Name="r3"), ml.fullyConnectedLayer(4, Name="fc"),
        ml.softmaxLayer(Name="sm")])
    net = ml.dlnetwork(ml.connectLayers(lg, "r1", "add/in2"))
    rng = np.random.default_rng(5)
    x = rng.standard_normal((10, 10, 3, 6)).astype(dtype)
    t = np.zeros((4, 6), dtype)
    t[rng.integers(0, 4, 6), np.arange(6)] = 1
    return net, ml.dlarray(x, "SSCB"), ml.dlarray(t, "CB")


def _loss(net, X, T):
    Y, state = ml.forward(net, X, nargout=2)
    loss = ml.crossentropy(Y, T)
    return loss, ml.dlgradient(loss, net.Learnables), state, Y


def _run(net, X, T, monkeypatch=None, fuse=True):
    if not fuse:
        monkeypatch.setattr(network.dlnetwork, "_relu_fusions", lambda *a: {})
    if net._plan is not None:
        net._plan.relu_fusions.clear()       # (worked out once per plan: again, as patched)
    out = [ml.dlfeval(_loss, net, X, T) for _ in range(2)]     # (the second: checked)
    if not fuse:
        monkeypatch.undo()
    return out[1]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_training_equals_the_two_operations(monkeypatch, dtype):
    net, X, T = _net(dtype)
    calls = []
    bn_train = _ops_norm.bn_train

    def spy(*args):
        calls.append(len(args) > 5 and args[5])
        return bn_train(*args)
    monkeypatch.setattr(_ops_norm, "bn_train", spy)
    sums = []
    plus_relu = arith.plus_relu
    monkeypatch.setattr(merge, "plus_relu", lambda *a: sums.append(1) or plus_relu(*a))
    got = _run(net, X, T)
    assert calls[-3:] == [True, False, True]        # bn1 and bn3 with their ReLUs
    assert len(sums) == 1                           # the addition with r2
    want = _run(net, X, T, monkeypatch, fuse=False)
    assert not any(calls[-3:]) and len(sums) == 1
    for a, b in zip((got[0], got[3]), (want[0], want[3])):
        np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    for ta, tb in zip((got[1], got[2]), (want[1], want[2])):
        assert len(ta) == len(tb)
        for ra, rb in zip(ta, tb):
            assert (ra.Layer, ra.Parameter) == (rb.Layer, rb.Parameter)
            np.testing.assert_array_equal(np.asarray(ra.Value.data), np.asarray(rb.Value.data))
    # the gradients are not trivial (the convolutions' biases before a normalization are
    # ~0, which it takes away)
    assert all(np.any(np.asarray(r.Value.data) != 0) for r in got[1]
               if r.Parameter != "Bias" or r.Layer == "fc")


def test_output_or_shared_normalization_keeps_its_relu(monkeypatch):
    net, X, T = _net(np.float32)
    fused = []
    steps = network.dlnetwork._relu_fusions

    def spy(self, run, slots):
        f = steps(self, run, slots)
        fused.append(sorted(self._layers[i].Name for i, v in f.items() if v is not None))
        return f
    monkeypatch.setattr(network.dlnetwork, "_relu_fusions", spy)

    def outputs(net, X):
        Y, bn, state = ml.forward(net, X, Outputs=["sm", "bn3"], nargout=3)
        return Y, bn

    for _ in range(2):
        ml.dlfeval(outputs, net, X)
    assert fused[-1] == ["add", "bn1"]              # bn3's result is an output
    lg = ml.addLayers(ml.layerGraph(net), ml.globalAveragePooling2dLayer(Name="gap"))
    shared = ml.dlnetwork(ml.connectLayers(lg, "bn1", "gap"),
                          Initialize=False).initialize()
    fused.clear()
    for _ in range(2):
        ml.dlfeval(lambda n, x: ml.forward(n, x, Outputs=["sm", "gap"]), shared, X)
    assert fused[-1] == ["add", "bn3"]              # bn1's result is read by two layers


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape, c", [((9, 7, 5, 4), 2), ((5, 4, 33), 0), ((3, 1000), 0)])
@pytest.mark.parametrize("threads", [1, 2])
def test_kernels_equal_relu_after_and_before(dtype, shape, c, threads):
    """The kernels: bn_train with rectify is relu of bn_train; bn_train_backward with the
    mask is bn_train_backward of relu's backward of dy; NaN in dy kept where it passes."""
    rng = np.random.default_rng(sum(shape))
    x = np.asfortranarray(rng.standard_normal(shape).astype(dtype) + 0.3)
    nc = shape[c]
    off, sc = rng.standard_normal(nc), rng.standard_normal(nc)
    dy = np.asfortranarray(rng.standard_normal(shape).astype(dtype))
    dy.flat[::37] = np.nan
    with ml.threads(threads):
        y, mean, var, invstd = _ops_norm.bn_train(x, c, off, sc, 1e-5)
        yr, mean2, var2, invstd2 = _ops_norm.bn_train(x, c, off, sc, 1e-5, True)
        want = _ops_norm.bn_train_backward(x, _ops_norm.relu_backward(y, dy), c, mean,
                                           invstd, sc)
        got = _ops_norm.bn_train_backward(x, dy, c, mean, invstd, sc, yr)
    np.testing.assert_array_equal(yr, np.where(y <= 0, dtype(0), y))
    assert not np.signbit(yr).any() and (y < 0).any()
    for a, b in zip((mean2, var2, invstd2), (mean, var, invstd)):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
    assert np.isnan(got[0]).any()


@pytest.mark.parametrize("da, db", [(np.float32, np.float32), (np.float64, np.float64),
                                    (np.float32, np.float64)])
def test_plus_relu_is_relu_of_plus(da, db):
    """The fused operation against NumPy: max(a + b, 0) in the result's precision (NaN
    kept), and dZ where that is positive back to both operands."""
    rng = np.random.default_rng(3)
    a = rng.standard_normal((6, 5, 4, 3)).astype(da)
    b = rng.standard_normal((6, 5, 4, 3)).astype(db)
    a.flat[::29] = np.nan
    b.flat[5] = -a.flat[5]                          # a zero sum: no gradient
    g = rng.standard_normal(a.shape)
    out = np.float32 if np.float32 in (da, db) else np.float64
    s = (a + b).astype(out)
    want = np.where(s > 0, s, np.where(np.isnan(s), s, 0)).astype(out)
    want_g = np.where(s > 0, g, 0).astype(out)

    def f(x, y):
        z = arith.plus_relu(x, y)
        return z, ml.dlgradient(ml.sum(z * ml.dlarray(g.astype(out), "SSCB"), "all"), x, y)
    Z, (gx, gy) = ml.dlfeval(f, ml.dlarray(a, "SSCB"), ml.dlarray(b, "SSCB"))
    assert Z.data.dtype == out and Z.dims == "SSCB"
    np.testing.assert_array_equal(Z.data, want)
    for gr in (gx, gy):
        np.testing.assert_allclose(np.asarray(gr.data, np.float64), want_g, rtol=1e-6)


@pytest.mark.parametrize("dtype, pdtype", [(np.float32, np.float32), (np.float64, np.float64),
                                           (np.float32, np.float64)])
@pytest.mark.parametrize("fmt, shape", [("SSCB", (5, 4, 3, 6)), ("CBT", (3, 4, 7)),
                                        ("SCB", (9, 3, 2))])
def test_layer_training_equals_functional_batchnorm(dtype, pdtype, fmt, shape, monkeypatch):
    """A batchNormalizationLayer in training (``batchnorm_layer``: no option parsing) gives
    ``batchnorm(X, offset, scale, mean, var, ..., nargout=3)``'s outputs and gradients bit
    for bit, the running statistics' gradients included."""
    rng = np.random.default_rng(len(fmt) + shape[0])
    c = shape[fmt.index("C")]
    layer = ml.batchNormalizationLayer(Name="bn", Epsilon=1e-3, MeanDecay=0.3,
                                       VarianceDecay=0.2)
    x = ml.dlarray((rng.standard_normal(shape) * 3 + 1).astype(dtype), fmt)
    net = ml.dlnetwork(layer, x)
    size = (1,) * (len(fmt) - 2) + (c,)
    vals = [rng.standard_normal(size).astype(pdtype) for _ in range(3)] + [
        rng.uniform(0.5, 2, size).astype(pdtype)]
    rows = [("bn", p, ml.dlarray(v)) for p, v in zip(
        ("Offset", "Scale", "TrainedMean", "TrainedVariance"), vals)]
    net.Learnables = ml.Table(("Layer", "Parameter", "Value"), rows[:2])
    net.State = ml.Table(("Layer", "Parameter", "Value"), rows[2:])
    w = rng.standard_normal(shape)

    def through_layer(net, X):
        Y, state = ml.forward(net, X, nargout=2)
        L = ml.sum(Y * w, "all") + ml.sum(state.Value[0] * 2.0, "all")
        return (Y, state.Value[0], state.Value[1]) + tuple(
            ml.dlgradient(L, [X, net.Learnables.Value[0], net.Learnables.Value[1]]))

    def through_functional(X, off, sc):
        Y, mu, var = ml.batchnorm(X, off, sc, vals[2], vals[3], Epsilon=1e-3,
                                  MeanDecay=0.3, VarianceDecay=0.2, nargout=3)
        L = ml.sum(Y * w, "all") + ml.sum(mu * 2.0, "all")
        return (Y, mu, var) + tuple(ml.dlgradient(L, [X, off, sc]))

    from mlayers.layers import batchnorm as bn_module
    lean = []
    layer_op = bn_module.batchnorm_layer
    monkeypatch.setattr(bn_module, "batchnorm_layer", lambda *a: lean.append(1) or layer_op(*a))
    got = ml.dlfeval(through_layer, net, x)
    assert lean
    want = ml.dlfeval(through_functional, x, ml.dlarray(vals[0]), ml.dlarray(vals[1]))
    for a, b in zip(got, want):
        a, b = np.asarray(a.data), np.asarray(b.data)
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a.reshape(b.shape), b)
