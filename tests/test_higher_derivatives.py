"""dlgradient(..., EnableHigherDerivatives=true): gradients that can be differentiated again.

Each operation's traced backward (its rule) is checked the same way: z = sum_i sum(W_i .*
dy/dx_i), with the gradients traced, and dz/dx_i by dlgradient, against central
differences of z, where z is computed with first-order gradients only (the operations'
NumPy backward passes, which the other autodiff tests check against finite differences
of the values).  Networks: a physics-informed loss (u_t + u u_x - nu u_xx) against
finite differences of the loss, and u_xx of a one-hidden-layer network against its
formula written out in NumPy.
"""
import numpy as np
import pytest

import mlayers as ml
from mlayers.functional import activations as A

from gradcheck import fd_noise, numeric_gradient, relative_error


def second_order_errors(inner, arrays, formats, seed=0):
    """Max relative error of d/dx_i sum_j sum(W_j .* d inner/d x_j) per x_i; the traced
    first derivatives themselves must equal the first-order ones (1e-12 relative)."""
    rng = np.random.default_rng(seed)
    weights = [rng.standard_normal(np.shape(a)) for a in arrays]

    def z_from(grads):
        grads = grads if isinstance(grads, tuple) else (grads,)
        total = 0
        for g, w in zip(grads, weights):
            total = total + ml.sum(g * w, "all")
        return total

    def traced(*X):
        first = ml.dlgradient(inner(*X), *X, EnableHigherDerivatives=True)
        g = ml.dlgradient(z_from(first), *X)
        return (g if isinstance(g, tuple) else (g,)), \
            (first if isinstance(first, tuple) else (first,))

    def first_order(*X):
        return ml.dlgradient(inner(*X), *X)

    def value(*arrs):
        X = [ml.dlarray(a, f) for a, f in zip(arrs, formats)]
        return float(ml.dlfeval(lambda *X: z_from(first_order(*X)), *X))

    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    X = [ml.dlarray(a, f) for a, f in zip(arrays, formats)]
    grads, traced_first = ml.dlfeval(traced, *X)
    plain_first = ml.dlfeval(first_order, *X)
    plain_first = plain_first if isinstance(plain_first, tuple) else (plain_first,)
    for a, b in zip(traced_first, plain_first):
        assert a.dims == b.dims and a.shape == b.shape
        assert relative_error(np.asarray(a.data), np.asarray(b.data)) < 1e-12
    noise = fd_noise(value(*arrays))
    return [relative_error(np.asarray(g.data), numeric_gradient(value, arrays, i), noise)
            for i, g in enumerate(grads)]


_T = np.random.default_rng(11).standard_normal((3, 4))
_ONE_HOT = np.eye(3)[:, [0, 1, 2, 0]]


def _pos(rng, shape):
    return rng.uniform(0.5, 1.5, shape)


CASES = {
    # arithmetic with implicit expansion, traced exponent
    "arith": (lambda x, y: ml.sum(ml.tanh(x * y + x / (1 + y * y) - y) ** 2
                                  + (x * x + 1) ** y - (-x) * 2, "all"),
              lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 1))], ["CB", "CB"]),
    # operands of different formats: matched by label
    "formats": (lambda x, y: ml.sum(ml.exp(0.3 * x * y) + x * y * y, "all"),
                lambda r: [r.standard_normal((2, 2, 3, 2)), r.standard_normal((3, 2))],
                ["SSCB", "CB"]),
    "mtimes": (lambda a, b, s: ml.sum(ml.tanh(a @ b) ** 2, "all")
               + ml.sum(ml.sqrt(s @ b * b * s + 3), "all"),
               lambda r: [r.standard_normal((3, 4)), r.standard_normal((4, 2)),
                          r.standard_normal((1, 1))], ["", "", ""]),
    "reductions": (lambda x: ml.sum(ml.sum(x, 1) ** 2, "all")
                   + ml.sum(ml.mean(x * x, [2, 3]) ** 3, "all")
                   + ml.mean(ml.log(x) * ml.abs(x - 1), "all"),
                   lambda r: [_pos(r, (3, 2, 4))], ["SSC"]),
    "shapes": (lambda x: ml.sum(ml.tanh(ml.reshape(x, 4, 6)) * ml.reshape(ml.permute(
        ml.reshape(x * x, 2, 3, 4), [3, 1, 2]), 4, 6), "all")
        + ml.sum(ml.squeeze(x[0:1, :, :]) ** 3, "all"),
               lambda r: [r.standard_normal((2, 3, 4))], [""]),
    "cat_index": (lambda x, y: ml.sum(ml.cat(1, x * x, y, x * y) ** 2, "all")
                  + ml.sum(x[1, :] * y[0, :] ** 3, "all"),
                  lambda r: [r.standard_normal((2, 3)), r.standard_normal((2, 3))],
                  ["CB", "CB"]),
    "activations": (lambda x: ml.sum(ml.sigmoid(x) * x * x + ml.relu(x) * x * x
                                     + ml.leakyrelu(x, 0.2) ** 3 + A.softplus(x) ** 2
                                     + A.swish(x) ** 2 + A.elu(x, 0.7) ** 2
                                     + A.clippedrelu(x, 0.5) * x, "all"),
                    lambda r: [r.standard_normal((4, 5))], ["CB"]),
    "trigonometric": (lambda x: ml.sum(ml.sin(x) * ml.cos(x * x) + ml.tan(0.3 * x) ** 2
                                       + ml.asin(0.4 * x) * ml.acos(0.3 * x)
                                       + ml.atan(x) ** 3 + ml.sinh(x) * ml.cosh(0.5 * x)
                                       + ml.erf(x) ** 2 + ml.round(x) * x * x, "all"),
                      lambda r: [r.uniform(-1.5, 1.5, (3, 4))], ["CB"]),
    "gelu_softmax": (lambda x: ml.sum(ml.gelu(x) ** 2
                                      + ml.gelu(x, Approximation="tanh") ** 3
                                      + ml.softmax(x) * x, "all")
                     + ml.sum(ml.softmax(ml.stripdims(x), DataFormat="CB") ** 2, "all"),
                     lambda r: [r.standard_normal((4, 3))], ["CB"]),
    "fullyconnect": (lambda x, w, b: ml.sum(ml.tanh(ml.fullyconnect(x, w, b)) ** 2, "all"),
                     lambda r: [r.standard_normal((2, 2, 3, 2)),
                                r.standard_normal((4, 2, 2, 3)), r.standard_normal((4, 1))],
                     ["SSCB", "", ""]),
    "dlconv": (lambda x, w, b: ml.sum(ml.tanh(ml.dlconv(x, w, b, Padding="same",
                                                        Stride=2)) ** 2, "all"),
               lambda r: [r.standard_normal((5, 4, 2, 2)), r.standard_normal((3, 3, 2, 3)),
                          r.standard_normal((3, 1))], ["SSCB", "", ""]),
    "dlconv_1d_dataformat": (lambda x, w, b: ml.sum(ml.sigmoid(ml.dlconv(
        x, w, b, DilationFactor=2, Padding=1, DataFormat="SCB")) ** 2, "all"),
        lambda r: [r.standard_normal((7, 2, 3)), r.standard_normal((3, 2, 4)),
                   r.standard_normal((1, 1))], ["", "", ""]),
    "dlconv_grouped": (lambda x, w: ml.sum(ml.tanh(ml.dlconv(x, w, 0)) ** 2, "all"),
                       lambda r: [r.standard_normal((5, 5, 4, 2)),
                                  r.standard_normal((2, 2, 2, 3, 2))], ["SSCB", ""]),
    "dltranspconv": (lambda x, w, b: ml.sum(ml.tanh(ml.dltranspconv(
        x, w, b, Stride=2, Cropping=1)) ** 2, "all"),
        lambda r: [r.standard_normal((3, 3, 2, 2)), r.standard_normal((4, 4, 3, 2)),
                   r.standard_normal((3, 1))], ["SSCB", "", ""]),
    "dltranspconv_same_offset": (lambda x, w, b: ml.sum(ml.sigmoid(ml.dltranspconv(
        x, w, b, Stride=3, Cropping="same")) ** 2, "all"),
        lambda r: [r.standard_normal((4, 2, 2)), r.standard_normal((2, 2, 2)),
                   r.standard_normal((2, 1))], ["SCB", "", ""]),
    "avgpool": (lambda x: ml.sum(ml.tanh(ml.avgpool(x, 2, Stride=1, Padding=1)) ** 2, "all")
                + ml.sum(ml.avgpool(x * x, "global") ** 2, "all"),
                lambda r: [r.standard_normal((4, 5, 2, 2))], ["SSCB"]),
    "avgpool_mean_dataformat": (lambda x: ml.sum(ml.tanh(ml.avgpool(
        x, 3, Padding="same", PaddingValue="mean", DataFormat="SCB")) ** 2, "all"),
        lambda r: [r.standard_normal((6, 2, 2))], [""]),
    "maxpool": (lambda x: ml.sum(ml.tanh(ml.maxpool(x * x, 2, Stride=2)) ** 2, "all")
                + ml.sum(ml.maxpool(x, "global") ** 3, "all"),
                lambda r: [r.standard_normal((4, 6, 2, 2))], ["SSCB"]),
    "maxpool_dataformat": (lambda x: ml.sum(ml.maxpool(x * x * x, [2, 1], Stride=1,
                                                       DataFormat="BSSC") ** 2, "all"),
                           lambda r: [r.standard_normal((2, 4, 3, 2))], [""]),
    "max_min": (lambda x: ml.sum(ml.max(x * x, [], 2) ** 2, "all")
                + ml.sum(ml.min(ml.tanh(x), [], "all") ** 3, "all")
                + ml.sum(ml.max(x, [], 1, nargout=2)[0] ** 2, "all"),
                lambda r: [r.standard_normal((3, 4, 2))], ["SCB"]),
    "max_min_elementwise": (lambda x, y: ml.sum(ml.max(x * x, y) ** 2
                                                + ml.min(x, y * 0.5) ** 3, "all"),
                            lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 1))],
                            ["CB", "CB"]),
    "mse_traced_targets": (lambda y, t: ml.mse(ml.tanh(y) * y, t) * 3,
                           lambda r: [r.standard_normal((3, 4)), r.standard_normal((3, 4))],
                           ["CB", "CB"]),
    "l2loss_masked": (lambda y: ml.l2loss(ml.tanh(y) * y, _T, Mask=(_T > 0).astype(float),
                                          NormalizationFactor="all-elements"),
                      lambda r: [r.standard_normal((3, 4))], ["CB"]),
    "l1loss_class_weights": (lambda y: ml.l1loss(y * y * y, _T, [1.0, 2.0, 3.0]),
                             lambda r: [r.standard_normal((3, 4))], ["CB"]),
    "huber": (lambda y: ml.huber(3 * y * y, _T, TransitionPoint=0.8),
              lambda r: [r.standard_normal((3, 4))], ["CB"]),
    "crossentropy": (lambda y: ml.crossentropy(ml.softmax(y), _ONE_HOT),
                     lambda r: [r.standard_normal((3, 4))], ["CB"]),
    "crossentropy_multilabel": (lambda y: ml.crossentropy(
        ml.sigmoid(y), _ONE_HOT, ClassificationMode="multilabel"),
        lambda r: [r.standard_normal((3, 4))], ["CB"]),
    "l2loss_elementwise_dataformat": (lambda y: ml.sum(ml.l2loss(
        y * y, _T.T, Reduction="none", DataFormat="BC") * _T.T, "all"),
        lambda r: [r.standard_normal((4, 3))], [""]),
    "layernorm": (lambda x, o, s: ml.sum(ml.tanh(ml.layernorm(x, o, s)) ** 2 * x, "all"),
                  lambda r: [r.standard_normal((3, 3, 4, 2)), r.standard_normal((4, 1)),
                             r.standard_normal((4, 1))], ["SSCB", "", ""]),
    "layernorm_sequence": (lambda x, o, s: ml.sum(ml.tanh(ml.layernorm(
        x, o, s, OperationDimension="batch-excluded")) ** 3, "all"),
        lambda r: [r.standard_normal((4, 3, 2)), r.standard_normal((4, 1)),
                   r.standard_normal((4, 1))], ["CBT", "", ""]),
    "groupnorm": (lambda x, o, s: ml.sum(ml.tanh(ml.groupnorm(x, 2, o, s)) ** 2 * x, "all"),
                  lambda r: [r.standard_normal((3, 2, 4, 2)), r.standard_normal((4, 1)),
                             r.standard_normal((4, 1))], ["SSCB", "", ""]),
    "instancenorm_dataformat": (lambda x, o, s: ml.sum(ml.sigmoid(ml.instancenorm(
        x, o, s, DataFormat="SCB")) ** 2, "all"),
        lambda r: [r.standard_normal((5, 3, 2)), r.standard_normal((3, 1)),
                   r.standard_normal((3, 1))], ["", "", ""]),
    "batchnorm": (lambda x, o, s: ml.sum(ml.tanh(ml.batchnorm(x, o, s)) ** 2 * x, "all"),
                  lambda r: [r.standard_normal((3, 3, 2, 3)), r.standard_normal((2, 1)),
                             r.standard_normal((2, 1))], ["SSCB", "", ""]),
    "batchnorm_inference": (lambda x, o, s, m, v: ml.sum(ml.tanh(ml.batchnorm(
        x, o, s, m, v)) ** 2 * x, "all"),
        lambda r: [r.standard_normal((3, 3, 2, 3)), r.standard_normal((2, 1)),
                   r.standard_normal((2, 1)), r.standard_normal((2, 1)),
                   r.uniform(0.5, 2, (2, 1))], ["SSCB", "", "", "", ""]),
    "fullyconnect_dataformat": (lambda x, w, b: ml.sum(ml.sigmoid(ml.fullyconnect(
        x, w, b, DataFormat="BC")) ** 2, "all"),
        lambda r: [r.standard_normal((5, 3)), r.standard_normal((2, 3)),
                   r.standard_normal((1, 1))], ["", "", ""]),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_operation_rules_against_finite_differences(name):
    inner, make, formats = CASES[name]
    arrays = make(np.random.default_rng(7))
    for err in second_order_errors(inner, arrays, formats):
        assert err < 1e-6


def test_indexed_assignment_rule():
    def inner(x, v):
        y = x * x
        y[0, 1:3] = v * v * v
        return ml.sum(ml.tanh(y) * y, "all")
    r = np.random.default_rng(3)
    for err in second_order_errors(inner, [r.standard_normal((2, 4)),
                                           r.standard_normal((1, 2))], ["", ""]):
        assert err < 1e-6


def _learnables_against_finite_differences(net, loss_and_gradients, *data, expect_nonzero=0):
    """``loss_and_gradients(net, *data) -> (loss, dloss/dLearnables)`` (in dlfeval): every
    learnable's gradient against central differences of the loss."""
    loss, grads = ml.dlfeval(loss_and_gradients, net, *data)
    values = [np.asarray(v.data) for v in net.Learnables.Value]

    def loss_at(*arrays):
        n = ml.dlupdate(lambda p: p, net)
        table = n.Learnables
        for k, a in enumerate(arrays):
            table.Value[k] = ml.dlarray(a)
        n.Learnables = table
        return float(ml.dlfeval(loss_and_gradients, n, *data)[0])
    nonzero = 0
    for k, g in enumerate(grads.Value):
        num = numeric_gradient(loss_at, values, k)
        nonzero += np.abs(num).max() > 1e-6
        assert relative_error(np.asarray(g.data), num, fd_noise(float(loss))) < 1e-6
    assert nonzero >= expect_nonzero


def _tanh_network(nhidden=6, seed=0):
    layers = [ml.featureInputLayer(2, Normalization="none"), ml.fullyConnectedLayer(nhidden),
              ml.tanhLayer(), ml.fullyConnectedLayer(nhidden), ml.sigmoidLayer(),
              ml.fullyConnectedLayer(1)]
    net = ml.dlnetwork(layers)
    rng = np.random.default_rng(seed)
    return ml.dlupdate(lambda p: ml.dlarray(rng.standard_normal(p.shape)), net)


def _pinn_loss(net, X, T):
    """MathWorks' Burgers' equation residual: u_t + u u_x - (0.01/pi) u_xx."""
    U = ml.forward(net, ml.cat(1, X, T))
    Ux, Ut = ml.dlgradient(ml.sum(U, "all"), X, T, EnableHigherDerivatives=True)
    Uxx = ml.dlgradient(ml.sum(Ux, "all"), X, EnableHigherDerivatives=True)
    f = Ut + U * Ux - (0.01 / np.pi) * Uxx
    loss = ml.mse(f, ml.zeros(f.shape, "like", f))
    return loss, ml.dlgradient(loss, net.Learnables)


def test_physics_informed_loss_gradients_against_finite_differences():
    net = _tanh_network()
    rng = np.random.default_rng(1)
    X = ml.dlarray(rng.uniform(-1, 1, (1, 7)), "CB")
    T = ml.dlarray(rng.uniform(0, 1, (1, 7)), "CB")
    _learnables_against_finite_differences(net, _pinn_loss, X, T, expect_nonzero=6)


def test_second_derivative_of_a_network_against_its_formula():
    net = ml.dlnetwork([ml.featureInputLayer(1, Normalization="none"),
                        ml.fullyConnectedLayer(5), ml.tanhLayer(), ml.fullyConnectedLayer(1)])
    rng = np.random.default_rng(2)
    net = ml.dlupdate(lambda p: ml.dlarray(rng.standard_normal(p.shape)), net)
    x = rng.uniform(-2, 2, (1, 9))

    def derivatives(net, X):
        U = ml.forward(net, X)
        Ux = ml.dlgradient(ml.sum(U, "all"), X, EnableHigherDerivatives=True)
        Uxx = ml.dlgradient(ml.sum(Ux, "all"), X, EnableHigherDerivatives=True)
        Uxxx = ml.dlgradient(ml.sum(Uxx, "all"), X)
        return Ux, Uxx, Uxxx
    Ux, Uxx, Uxxx = ml.dlfeval(derivatives, net, ml.dlarray(x, "CB"))
    W1, b1, W2, _ = (np.asarray(v.data) for v in net.Learnables.Value)
    t = np.tanh(W1 @ x + b1)                          # 5 x 9
    d1 = 1 - t * t                                    # tanh', tanh'', tanh'''
    d2 = -2 * t * d1
    d3 = d1 * (6 * t * t - 2)
    np.testing.assert_allclose(Ux.data, W2 @ (W1 * d1), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Uxx.data, W2 @ (W1 ** 2 * d2), rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(Uxxx.data, W2 @ (W1 ** 3 * d3), rtol=1e-11, atol=1e-11)


def test_traced_gradients_only_with_the_option():
    def twice(x, higher):
        g = ml.dlgradient(ml.sum(3 * x + x * x, "all"), x, EnableHigherDerivatives=higher)
        return ml.dlgradient(ml.sum(g * g, "all"), x)
    x = ml.dlarray(np.array([1.0, -2.0]))
    # d/dx sum((3 + 2x)^2) = 4 (3 + 2x)
    np.testing.assert_allclose(ml.dlfeval(twice, x, True).data, [20.0, -4.0])
    with pytest.raises(ValueError, match="not traced"):
        ml.dlfeval(twice, x, False)

    def constant_slope(x):
        g = ml.dlgradient(ml.sum(3 * x, "all"), x, EnableHigherDerivatives=True)
        return g, ml.dlgradient(ml.sum(g, "all"), x)
    g, h = ml.dlfeval(constant_slope, x)
    np.testing.assert_array_equal(g.data, [3.0, 3.0])
    np.testing.assert_array_equal(h.data, [0.0, 0.0])


def test_operation_without_a_rule_is_named():
    def through_unpooling(x):
        Y, indx, size = ml.maxpool(x, 2, Stride=2, nargout=3)
        Z = ml.maxunpool(Y * Y, indx, size)
        return ml.dlgradient(ml.sum(Z, "all"), x, EnableHigherDerivatives=True)
    with pytest.raises(ValueError, match="EnableHigherDerivatives is not supported "
                                         "through 'maxunpool'"):
        ml.dlfeval(through_unpooling, ml.dlarray(np.random.rand(4, 4, 1, 1), "SSCB"))

    def through_lstm(x):     # (MATLAB does not support it either: gru, lstm, embed, ...)
        y = ml.lstm(x, np.zeros((2, 1)), np.zeros((2, 1)), np.ones((8, 3)), np.ones((8, 2)),
                    np.zeros((8, 1)))
        return ml.dlgradient(ml.sum(y, "all"), x, EnableHigherDerivatives=True)
    with pytest.raises(ValueError, match="'lstm"):
        ml.dlfeval(through_lstm, ml.dlarray(np.ones((3, 1, 4)), "CBT"))


@pytest.mark.parametrize("activation", [
    ml.reluLayer, ml.leakyReluLayer, lambda: ml.clippedReluLayer(0.8), ml.eluLayer,
    ml.geluLayer, lambda: ml.geluLayer(Approximation="tanh"), ml.swishLayer,
    ml.softplusLayer, ml.sigmoidLayer, ml.tanhLayer, ml.softmaxLayer])
def test_layers_of_a_network_twice_differentiated(activation):
    """A gradient penalty, sum((dU/dX)^2), through each activation layer (and a z-score
    feature input): its gradients with respect to the learnables against finite
    differences."""
    net = ml.dlnetwork([ml.featureInputLayer(2, Normalization="zscore",
                                             Mean=np.array([[0.1], [0.2]]),
                                             StandardDeviation=np.array([[2.0], [3.0]])),
                        ml.fullyConnectedLayer(4), activation(), ml.fullyConnectedLayer(1)])
    rng = np.random.default_rng(4)
    net = ml.dlupdate(lambda p: ml.dlarray(rng.standard_normal(p.shape)), net)
    X = ml.dlarray(rng.standard_normal((2, 3)), "CB")

    def penalty(net, X):
        U = ml.forward(net, X)
        g = ml.dlgradient(ml.sum(U, "all"), X, EnableHigherDerivatives=True)
        loss = ml.sum(g * g, "all")
        return loss, ml.dlgradient(loss, net.Learnables)
    _learnables_against_finite_differences(net, penalty, X)


def test_gradient_penalty_through_a_convolutional_discriminator():
    """WGAN-GP's penalty, mean((||dD/dX|| - 1).^2), through convolution, batch and layer
    normalization, (leaky) ReLU and fully connected layers in training mode: its gradients
    with respect to every learnable against finite differences."""
    layers = [ml.imageInputLayer([6, 6, 2], Normalization="none"),
              ml.convolution2dLayer(3, 4, Stride=2, Padding="same"),
              ml.batchNormalizationLayer(), ml.reluLayer(),
              ml.convolution2dLayer(3, 3, Padding=1), ml.layerNormalizationLayer(),
              ml.leakyReluLayer(0.2), ml.fullyConnectedLayer(1)]
    net = ml.dlnetwork(layers)
    rng = np.random.default_rng(5)
    net = ml.dlupdate(lambda p: ml.dlarray(rng.standard_normal(p.shape) * 0.7), net)
    X = ml.dlarray(rng.standard_normal((6, 6, 2, 3)), "SSCB")

    def penalty(net, X):
        Y = ml.sum(ml.forward(net, X), "all")
        g = ml.dlgradient(Y, X, EnableHigherDerivatives=True)
        norms = ml.sqrt(ml.sum(g * g, [1, 2, 3]) + 1e-10)
        loss = ml.mean((norms - 1) ** 2, "all")
        return loss, ml.dlgradient(loss, net.Learnables)
    # (weights, scales and offsets reach the penalty)
    _learnables_against_finite_differences(net, penalty, X, expect_nonzero=6)


def _single_input_layers():
    from mlayers._props import LAYER_CLASSES
    for cls in LAYER_CLASSES:
        if (cls.__module__.startswith("mlayers.") and cls._example_input is not None
                and not cls._constructor.endswith(("InputLayer", "OutputLayer"))
                and cls._constructor not in ("classificationLayer", "regressionLayer")):
            yield cls


@pytest.mark.parametrize("cls", list(_single_input_layers()), ids=lambda c: c._constructor)
def test_every_layer_in_training_mode(cls):
    """Every layer (its documentation example, in a network's forward pass, so in training
    mode): d/dX of sum(W .* dL/dX) for L = sum(Y .* C), against finite differences of the
    first-order gradient; the recurrent layers are refused by name, as in MATLAB."""
    layer = eval("ml." + cls._example, {"ml": ml, "np": np})
    fmt, shape = cls._example_input
    rng = np.random.default_rng(6)
    x = rng.standard_normal(shape)
    net = ml.dlnetwork(layer, ml.dlarray(x, fmt))
    net = ml.dlupdate(lambda p: ml.dlarray(rng.standard_normal(p.shape) * 0.8), net)
    Y0 = ml.forward(net, ml.dlarray(x, fmt))
    C = rng.standard_normal((Y0[0] if isinstance(Y0, tuple) else Y0).shape)

    def inner(X):
        ml.rng(3)                            # (dropout: the same mask every evaluation)
        Y = ml.forward(net, X)
        Y = Y[0] if isinstance(Y, tuple) else Y
        return ml.sum(Y * C, "all")
    if cls._constructor in ("lstmLayer", "bilstmLayer", "gruLayer", "lstmProjectedLayer"):
        with pytest.raises(ValueError, match="EnableHigherDerivatives is not supported "
                                             "through '(lstm|bilstm|gru)'"):
            second_order_errors(inner, [x], [fmt])
        return
    for err in second_order_errors(inner, [x], [fmt]):
        assert err < 1e-6
    if not len(net.Learnables.Value):
        return
    # and with respect to the learnables (the mixed derivatives: for a layer linear in X,
    # such as a convolution, the only nonzero ones), at a few elements of each
    W = rng.standard_normal(x.shape)

    def z(net, X):
        Y = ml.forward(net, X)
        Y = Y[0] if isinstance(Y, tuple) else Y
        g = ml.dlgradient(ml.sum(Y * C, "all"), X, EnableHigherDerivatives=True)
        return ml.sum(g * W, "all")

    def z_and_gradients(net, X):
        ml.rng(3)
        value = z(net, X)
        return value, ml.dlgradient(value, net.Learnables)
    value, grads = ml.dlfeval(z_and_gradients, net, ml.dlarray(x, fmt))
    values = [np.array(v.data, dtype=np.float64) for v in net.Learnables.Value]

    def z_at(k, index, step):
        arrays = [v.copy() for v in values]
        arrays[k][index] += step
        n = ml.dlupdate(lambda p: p, net)
        table = n.Learnables
        table.Value[k] = ml.dlarray(arrays[k])
        n.Learnables = table
        return float(ml.dlfeval(z_and_gradients, n, ml.dlarray(x, fmt))[0])
    h = 1e-4
    for k, g in enumerate(grads.Value):
        picks = rng.choice(values[k].size, min(4, values[k].size), replace=False)
        for flat in picks:
            index = np.unravel_index(flat, values[k].shape)
            num = (-z_at(k, index, 2 * h) + 8 * z_at(k, index, h) - 8 * z_at(k, index, -h)
                   + z_at(k, index, -2 * h)) / (12 * h)
            scale = max(abs(num), fd_noise(float(value)) / 1e-7)
            assert abs(float(np.asarray(g.data)[index]) - num) / scale < 1e-6


def third_order_errors(inner, arrays, formats, seed=1):
    """Max relative error of d/dx of sum(V .* d/dx sum(W .* d inner/dx)) (both inner
    derivatives traced, so the rules' own operations are differentiated again) against
    central differences of the same with the last derivative first-order."""
    rng = np.random.default_rng(seed)
    W = [rng.standard_normal(np.shape(a)) for a in arrays]
    V = [rng.standard_normal(np.shape(a)) for a in arrays]

    def dot(grads, weights):
        grads = grads if isinstance(grads, tuple) else (grads,)
        total = 0
        for g, w in zip(grads, weights):
            total = total + ml.sum(g * w, "all")
        return total

    def z2(X, last_traced):
        z1 = dot(ml.dlgradient(inner(*X), *X, EnableHigherDerivatives=True), W)
        return dot(ml.dlgradient(z1, *X, EnableHigherDerivatives=last_traced), V)

    def third(*X):
        g = ml.dlgradient(z2(X, True), *X)
        return g if isinstance(g, tuple) else (g,)

    def value(*arrs):
        X = [ml.dlarray(a, f) for a, f in zip(arrs, formats)]
        return float(ml.dlfeval(lambda *X: z2(X, False), *X))

    arrays = [np.asarray(a, dtype=np.float64) for a in arrays]
    grads = ml.dlfeval(third, *[ml.dlarray(a, f) for a, f in zip(arrays, formats)])
    noise = fd_noise(value(*arrays))
    return [relative_error(np.asarray(g.data), numeric_gradient(value, arrays, i), noise)
            for i, g in enumerate(grads)]


THIRD = ["arith", "formats", "mtimes", "shapes", "cat_index", "trigonometric",
         "gelu_softmax", "fullyconnect", "dlconv", "dltranspconv_same_offset",
         "dlconv_grouped", "avgpool", "maxpool", "max_min", "layernorm", "batchnorm",
         "crossentropy", "huber"]


@pytest.mark.parametrize("name", THIRD)
def test_third_derivatives(name):
    """The rules' own operations (the convolution's adjoint and weight gradient, take and
    put, the linear operations' adjoints, the recomputations) differentiated again."""
    inner, make, formats = CASES[name]
    for err in third_order_errors(inner, make(np.random.default_rng(8)), formats):
        assert err < 1e-6


def test_traced_gradients_are_values():
    """(found by the review) An indexed assignment after an operation used X does not
    change what its rule sees; each variable's gradient is an object of its own; traced
    gradients come in their variable's class, computed in the operations' precision."""
    x = ml.dlarray(np.array([[1.0, 2.0], [3.0, 4.0]]))

    def assigned(x, higher):
        H = x * 1.0
        s = ml.sum(H * H, "all")
        H[0, :] = 0.0                    # MATLAB: H(1,:) = 0 makes a new value of H
        s = s + ml.sum(H, "all")
        return ml.dlgradient(s, x, EnableHigherDerivatives=higher)
    np.testing.assert_array_equal(ml.dlfeval(assigned, x, True).data, [[2, 4], [7, 9]])
    np.testing.assert_array_equal(ml.dlfeval(assigned, x, False).data, [[2, 4], [7, 9]])

    def shared(x, y):
        gx, gy = ml.dlgradient(ml.sum(ml.tanh(x + y), "all"), x, y,
                               EnableHigherDerivatives=True)
        before = gy.data.copy()
        gx[0, 0] = 100.0
        return gx is gy, np.array_equal(gy.data, before)
    a, b = (ml.dlarray(np.array([[0.1, 0.2, 0.3]]), "CB") for _ in range(2))
    assert ml.dlfeval(shared, a, b) == (False, True)

    ml.rng(0)       # a single-precision network on double data (MATLAB's defaults)
    net = ml.dlnetwork([ml.featureInputLayer(2), ml.fullyConnectedLayer(6), ml.tanhLayer(),
                        ml.layerNormalizationLayer(), ml.fullyConnectedLayer(1)])
    X = ml.dlarray(np.random.default_rng(0).random((2, 5)), "CB")

    def both(net, X):
        U = ml.forward(net, X)
        return (ml.dlgradient(ml.sum(U, "all"), X),
                ml.dlgradient(ml.sum(U, "all"), X, EnableHigherDerivatives=True))
    g1, g2 = ml.dlfeval(both, net, X)
    assert g1.dtype == g2.dtype == np.float64
    np.testing.assert_allclose(g2.data, g1.data, rtol=1e-12)

    w = ml.dlarray(np.array([1.0, 2.0, 3.0]))        # constant (untraced) class weights

    def weighted(Y, higher):
        return ml.dlgradient(ml.crossentropy(Y, _ONE_HOT, w), Y,
                             EnableHigherDerivatives=higher)
    Y = ml.dlarray(np.random.default_rng(1).uniform(0.1, 0.9, (3, 4)), "CB")
    np.testing.assert_allclose(ml.dlfeval(weighted, Y, True).data,
                               ml.dlfeval(weighted, Y, False).data, rtol=1e-14)


def test_fullyconnect_of_numeric_data():
    # (found by the review) numeric X with DataFormat, differentiated in the weights
    x = np.random.default_rng(3).random((3, 4))

    def inner(w):
        return ml.sum(ml.tanh(ml.fullyconnect(x, w, 0, DataFormat="CB")) ** 2, "all")
    for err in second_order_errors(inner, [np.random.default_rng(4).random((2, 3))], [""]):
        assert err < 1e-6
