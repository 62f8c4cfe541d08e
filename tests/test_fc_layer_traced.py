"""Fully connected layers inside dlfeval run ``functional.fc.fc_layer`` (the weights and
bias the layer checked, no option parsing).  Their outputs and gradients must be
fullyconnect's, bit for bit (the same products on the same arrays), for every input
format the layer takes and both precisions; and match central differences."""

import numpy as np
import pytest

import mlayers as ml
from mlayers.functional import fc

from gradcheck import check_layer_gradients, layer_against

# (input format, size)
CASES = [("CB", (7, 5)), ("SSCB", (3, 4, 2, 3)), ("CBT", (4, 3, 5)), ("SCB", (6, 2, 3)),
         ("SSSCB", (2, 3, 2, 2, 2))]


def _run(fmt, size, dtype, out=4):
    rng = np.random.default_rng(len(fmt) + size[0])
    X = ml.dlarray(rng.standard_normal(size).astype(dtype), fmt)
    dims = ml.predict(ml.dlnetwork(ml.fullyConnectedLayer(out), X), X).dims

    def reference(X, W, B):
        Y = ml.fullyconnect(X, W, B)
        return Y if Y.dims == dims else fc._relabel(Y, dims)   # 'C' for 'SSC': relabelled
    got, ref, net, ct = layer_against(ml.fullyConnectedLayer(out), X, dtype, rng, reference)
    return got, ref, net, X, ct


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
    check_layer_gradients(net, X, ct, (dX, dW, dB))
