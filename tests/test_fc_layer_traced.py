"""Fully connected layers inside dlfeval run ``functional.fc.fc_layer`` (the weights and
bias the layer checked, no option parsing).  Their outputs and gradients must be
fullyconnect's, bit for bit (the same products on the same arrays), for every input
format the layer takes and both precisions; and match central differences."""

import numpy as np
import pytest

import mlayers as ml
from mlayers.functional import fc

from gradcheck import numeric_gradient, relative_error

# (input format, size)
CASES = [("CB", (7, 5)), ("SSCB", (3, 4, 2, 3)), ("CBT", (4, 3, 5)), ("SCB", (6, 2, 3)),
         ("SSSCB", (2, 3, 2, 2, 2))]


def _run(fmt, size, dtype, out=4):
    rng = np.random.default_rng(len(fmt) + size[0])
    X = ml.dlarray(rng.standard_normal(size).astype(dtype), fmt)
    net = ml.dlnetwork(ml.fullyConnectedLayer(out), X)
    name = net.Layers[0].Name
    W, B = (ml.dlarray(np.asarray(v.data, dtype)) for v in net.Learnables.Value)
    net.Learnables = ml.Table(("Layer", "Parameter", "Value"),
                              [(name, "Weights", W), (name, "Bias", B)])
    ct = rng.standard_normal(ml.predict(net, X).shape).astype(dtype)

    def through_layer(net, X):
        Y = ml.forward(net, X)
        L = ml.sum(Y * ct, "all")
        return (Y, L) + tuple(ml.dlgradient(L, [X, net.Learnables.Value[0],
                                                net.Learnables.Value[1]]))

    def through_fullyconnect(X, W, B):
        Y = ml.fullyconnect(X, W, B)
        if Y.dims != ml.predict(net, X).dims:      # 'C' for 'SSC'-style: the layer relabels
            Y = fc._relabel(Y, ml.predict(net, X).dims)
        L = ml.sum(Y * ct, "all")
        return (Y, L) + tuple(ml.dlgradient(L, [X, W, B]))

    return (ml.dlfeval(through_layer, net, X), ml.dlfeval(through_fullyconnect, X, W, B),
            net, X, ct)


@pytest.mark.parametrize("fmt,size", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_equals_fullyconnect(fmt, size, dtype, monkeypatch):
    calls = []
    original = fc.fc_layer
    monkeypatch.setattr(fc, "fc_layer", lambda *a: calls.append(1) or original(*a))
    import mlayers.layers.fully_connected as fcl
    monkeypatch.setattr(fcl, "fc_layer", fc.fc_layer)
    got, ref, _, _, _ = _run(fmt, size, dtype)
    assert calls                                     # the layer took the lean operation
    for a, b in zip(got, ref):
        a, b = np.asarray(getattr(a, "data", a)), np.asarray(getattr(b, "data", b))
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


def test_layer_gradients_against_central_differences():
    (Y, L, dX, dW, dB), _, net, X, ct = _run("SSCB", (3, 4, 2, 3), np.float64)
    arrays = [np.asarray(X.data), np.asarray(net.Learnables.Value[0].data),
              np.asarray(net.Learnables.Value[1].data)]
    name = net.Layers[0].Name

    def loss(x, w, b):
        net.Learnables = ml.Table(("Layer", "Parameter", "Value"),
                                  [(name, "Weights", ml.dlarray(w)),
                                   (name, "Bias", ml.dlarray(b))])
        return float(np.sum(np.asarray(ml.predict(net, ml.dlarray(x, X.dims)).data) * ct))

    for i, g in enumerate((dX, dW, dB)):
        assert relative_error(np.asarray(g.data), numeric_gradient(loss, arrays, i)) < 1e-7
