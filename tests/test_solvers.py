"""Solver updates (MATLAB_SEMANTICS §12): formulas against NumPy written from MATLAB's
steps, the Adam golden, [] state, containers, learn-rate factors, zero rate, validation."""
import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

import mlayers as ml
from mlayers._table import Table


def _adam_ref(p, g, m, v, t, lr=0.001, b1=0.9, b2=0.999, eps=1e-8):
    m = b1 * m + (1 - b1) * g
    v = b2 * v + (1 - b2) * g ** 2
    return p - lr * math.sqrt(1 - b2 ** t) / (1 - b1 ** t) * m / (np.sqrt(v) + eps), m, v


def test_adam_pitfall_golden():
    p, m, v = ml.adamupdate(np.array(1.0), np.array(1e-6), [], [], 1)
    assert abs(float(p) - 0.99924025) < 5e-9
    # PyTorch's Adam (eps added after bias correction) would give 0.99900990
    assert abs(float(p) - 0.99900990) > 1e-4


@settings(max_examples=25, deadline=None)
@given(st.integers(1, 6), st.sampled_from([np.float32, np.float64]),
       st.floats(0.0, 0.99), st.floats(1e-4, 0.1))
def test_sgdm_rmsprop_adam_formulas(t, dtype, decay, lr):
    rs = np.random.RandomState(t)
    p = rs.randn(3, 4).astype(dtype)
    g = rs.randn(3, 4).astype(dtype)
    vel0 = rs.randn(3, 4).astype(dtype)
    p1, vel = ml.sgdmupdate(p, g, vel0, lr, decay)
    vref = decay * vel0.astype(np.float64) - lr * g
    tol = 1e-6 if dtype == np.float32 else 1e-13
    np.testing.assert_allclose(vel, vref, rtol=tol, atol=tol)
    np.testing.assert_allclose(p1, p + vref, rtol=tol, atol=tol)
    assert p1.dtype == dtype and vel.dtype == dtype
    s0 = np.abs(rs.randn(3, 4)).astype(dtype)
    p2, s = ml.rmspropupdate(p, g, s0, lr, decay, 1e-6)
    sref = decay * s0.astype(np.float64) + (1 - decay) * g.astype(np.float64) ** 2
    np.testing.assert_allclose(s, sref, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(p2, p - lr * g / (np.sqrt(sref) + 1e-6), rtol=tol * 10,
                               atol=tol * 10)
    m0 = rs.randn(3, 4).astype(dtype)
    p3, m, v = ml.adamupdate(p, g, m0, s0, t, lr, decay, 0.999)
    pr, mr, vr = _adam_ref(p.astype(np.float64), g.astype(np.float64), m0, s0, t, lr,
                           decay, 0.999)
    np.testing.assert_allclose(m, mr, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(v, vr, rtol=tol * 10, atol=tol)
    np.testing.assert_allclose(p3, pr, rtol=tol * 100, atol=tol * 100)


def test_empty_state_is_scalar_zero():
    p = np.array([1.0, 2.0])
    g = np.array([0.5, -1.0])
    for empty in ([], None):
        p1, vel = ml.sgdmupdate(p, g, empty)
        np.testing.assert_allclose(vel, -0.01 * g)
        np.testing.assert_allclose(p1, p - 0.01 * g)


def test_containers_kept():
    p = {"w": ml.dlarray(np.ones((2, 2), np.float32)), "b": np.zeros(2, np.float32)}
    g = {"w": ml.dlarray(np.ones((2, 2), np.float32)), "b": np.ones(2, np.float32)}
    p1, m, v = ml.adamupdate(p, g, [], [], 1)
    assert isinstance(p1, dict) and isinstance(p1["w"], ml.dlarray)
    assert isinstance(p1["b"], np.ndarray) and isinstance(m, dict)
    lst, vel = ml.sgdmupdate([np.ones(3)], [np.ones(3)], [])
    assert isinstance(lst, list) and isinstance(vel, list)
    x = ml.dlarray(np.ones((3, 2), np.float32), "CB")
    x1, s = ml.rmspropupdate(x, x, None)
    assert isinstance(x1, ml.dlarray) and x1.dims == "CB"
    t = Table(("Layer", "Parameter", "Value"),
              [("fc", "Weights", ml.dlarray(np.ones((2, 3), np.float32))),
               ("fc", "Bias", ml.dlarray(np.zeros((2, 1), np.float32)))])
    t1, vel = ml.sgdmupdate(t, t, [])
    assert isinstance(t1, Table) and isinstance(vel, Table)
    np.testing.assert_allclose(t1[0].Value._data, 1 - 0.01)


def test_struct_of_structs_as_model_functions_hold_parameters():
    # MATLAB: [parameters,avg,avgSq] = adamupdate(parameters,gradients,avg,avgSq,t) with
    # parameters.conv1.Weights ...; the states come back with the same nesting
    rng = np.random.default_rng(4)
    shapes = {"conv1": {"Weights": (3, 3, 1, 2), "Bias": (2, 1)}, "fc": {"Weights": (4, 5)}}
    P = {k: {n: rng.standard_normal(s) for n, s in v.items()} for k, v in shapes.items()}
    G = {k: {n: rng.standard_normal(s) for n, s in v.items()} for k, v in shapes.items()}
    params = {k: {n: ml.dlarray(a) for n, a in v.items()} for k, v in P.items()}
    grads = {k: {n: ml.dlarray(a) for n, a in v.items()} for k, v in G.items()}
    p1, m, v = ml.adamupdate(params, grads, [], [], 1, 0.01)
    p2, m, v = ml.adamupdate(p1, grads, m, v, 2, 0.01)
    for k, sub in shapes.items():
        for n in sub:
            g, w = G[k][n], P[k][n]
            m1, v1 = 0.1 * g, 0.001 * g * g
            w1 = w - 0.01 * np.sqrt(1 - 0.999) / (1 - 0.9) * m1 / (np.sqrt(v1) + 1e-8)
            m2, v2 = 0.9 * m1 + 0.1 * g, 0.999 * v1 + 0.001 * g * g
            w2 = w1 - 0.01 * np.sqrt(1 - 0.999 ** 2) / (1 - 0.9 ** 2) * m2 / (np.sqrt(v2) + 1e-8)
            assert isinstance(p2[k][n], ml.dlarray) and isinstance(m[k][n], ml.dlarray)
            np.testing.assert_allclose(p2[k][n].data, w2, rtol=1e-12)
            np.testing.assert_allclose(v[k][n].data, v2, rtol=1e-12)
    q = ml.dlupdate(lambda w, g: w - 0.5 * g, params, grads)
    np.testing.assert_allclose(q["fc"]["Weights"].data, P["fc"]["Weights"] - 0.5 * G["fc"]["Weights"])
    bad = {"conv1": {"Weights": grads["conv1"]["Weights"]}, "fc": grads["fc"]}
    with pytest.raises(ValueError, match="^adamupdate: the gradients must have the "
                                         "parameters' structure \\(a dict of 2\\), got a dict "
                                         "of 2: missing \\['conv1'\\]\\['Bias'\\]"):
        ml.adamupdate(params, bad, [], [], 1)
    with pytest.raises(ValueError, match="^dlupdate: argument 3 must have the parameters'"):
        ml.dlupdate(lambda w, g: w - g, params, bad)


def _net():
    ml.rng(0)
    return ml.dlnetwork([ml.imageInputLayer([2, 2, 1], Normalization="none"),
                         ml.fullyConnectedLayer(3)])


def test_learn_rate_factor_only_for_networks():
    net = ml.setLearnRateFactor(_net(), "fc", "Weights", 0.5)
    grads = net.Learnables._traced_copy(lambda v: ml.dlarray(np.ones(v.shape, np.float32)))
    W0 = net.Learnables[0].Value._data.copy()
    net1, vel = ml.sgdmupdate(net, grads, [], 0.1, 0.9)
    np.testing.assert_allclose(net1.Learnables[0].Value._data, W0 - 0.05, rtol=1e-6)
    # the Learnables table uses the global rate (MATLAB's rule)
    t1, _ = ml.sgdmupdate(net.Learnables, grads, [], 0.1, 0.9)
    np.testing.assert_allclose(t1[0].Value._data, W0 - 0.1, rtol=1e-6)
    # value semantics: the input network is unchanged
    np.testing.assert_array_equal(net.Learnables[0].Value._data, W0)
    assert isinstance(vel, Table) and len(vel) == 2


def test_zero_rate_leaves_parameter_and_state():
    net = ml.setLearnRateFactor(_net(), "fc", "Weights", 0)
    grads = net.Learnables._traced_copy(lambda v: ml.dlarray(np.ones(v.shape, np.float32)))
    W0 = net.Learnables[0].Value._data.copy()
    net1, m, v = ml.adamupdate(net, grads, [], [], 1)
    np.testing.assert_array_equal(net1.Learnables[0].Value._data, W0)
    assert float(np.max(np.abs(m[0].Value._data))) == 0
    assert float(np.max(np.abs(m[1].Value._data))) > 0
    p, vel = ml.sgdmupdate(np.ones(2), np.ones(2), np.full(2, 3.0), 0.0)
    np.testing.assert_array_equal(p, 1)
    np.testing.assert_array_equal(vel, 3)


def test_dlupdate():
    net = _net()
    grads = net.Learnables._traced_copy(lambda v: ml.dlarray(np.ones(v.shape, np.float32)))
    W0 = net.Learnables[0].Value._data.copy()
    net1 = ml.dlupdate(lambda w, g: w - 0.5 * g, net, grads)
    np.testing.assert_allclose(net1.Learnables[0].Value._data, W0 - 0.5)
    d, s = ml.dlupdate(lambda w: (w * 2, w.sum()), {"a": np.ones(2)})
    np.testing.assert_allclose(d["a"], 2)
    assert s["a"] == 2


@pytest.mark.parametrize("call,msg", [
    (lambda: ml.sgdmupdate(np.ones(2), np.ones(2), [], -1), "learnRate"),
    (lambda: ml.sgdmupdate(np.ones(2), np.ones(2), [], 0.1, 1.0), "momentum"),
    (lambda: ml.adamupdate(np.ones(2), np.ones(2), [], [], 0), "iteration"),
    (lambda: ml.adamupdate(np.ones(2), np.ones(2), [], [], 1.5), "iteration"),
    (lambda: ml.adamupdate(np.ones(2), np.ones(2), [], [], 1, 0.1, 0.9, 0.9, 0), "epsilon"),
    (lambda: ml.rmspropupdate(np.ones(2), np.ones(3), []), "size"),
    (lambda: ml.sgdmupdate(np.ones(2), np.ones(2), [], math.nan), "learnRate"),
])
def test_validation(call, msg):
    with pytest.raises(ValueError, match=msg):
        call()


def test_solvers_match_torch_sgd_momentum_form():
    """SGDM folds the rate into the velocity; with a constant rate this equals PyTorch's
    SGD(momentum, dampening=0) after the first step."""
    torch = pytest.importorskip("torch")
    rs = np.random.RandomState(0)
    p = rs.randn(5).astype(np.float32)
    w = torch.tensor(p.copy(), requires_grad=True)
    opt = torch.optim.SGD([w], lr=0.1, momentum=0.9)
    vel = []
    for _ in range(4):
        g = rs.randn(5).astype(np.float32)
        p, vel = ml.sgdmupdate(p, g, vel, 0.1, 0.9)
        w.grad = torch.tensor(g)
        opt.step()
    np.testing.assert_allclose(p, w.detach().numpy(), rtol=1e-6, atol=1e-6)


def test_network_update_mixed_memory_orders_and_copy_on_write():
    """A network whose weights are C-ordered (numpy's default), gradients in the kernels'
    Fortran order and a velocity in C order: the values are the formula's whatever the
    orders (the rules compute in one order, solvers._same_order), the input network and a
    network sharing its layers keep theirs, and a gradient table with a subset of the rows
    updates only those."""
    ml.rng(3)
    net = ml.dlnetwork([ml.imageInputLayer([5, 5, 3], Normalization="none"),
                        ml.convolution2dLayer(3, 4, Name="conv"),
                        ml.fullyConnectedLayer(2, Name="fc")])
    rs = np.random.RandomState(1)
    w = np.ascontiguousarray(rs.randn(3, 3, 3, 4).astype(np.float32))
    net = ml.setLearnRateFactor(net, "conv", "Bias", 2.0)
    net.Learnables = Table(("Layer", "Parameter", "Value"),
                           [("conv", "Weights", ml.dlarray(w))])
    twin = net._copy()                      # shares the layer objects
    before = {(r.Layer, r.Parameter): r.Value._data.copy() for r in net.Learnables}
    assert net.Layers[1].Weights.flags.c_contiguous
    rows, vrows = [], []
    for r in net.Learnables:
        shape = r.Value._data.shape
        rows.append((r.Layer, r.Parameter,
                     ml.dlarray(np.asfortranarray(rs.randn(*shape).astype(np.float32)))))
        vrows.append((r.Layer, r.Parameter,
                      ml.dlarray(np.ascontiguousarray(rs.randn(*shape).astype(np.float32)))))
    grads = Table(("Layer", "Parameter", "Value"), rows)
    vel0 = Table(("Layer", "Parameter", "Value"), vrows)
    net1, vel = ml.sgdmupdate(net, grads, vel0, 0.1, 0.8)
    for r, g, v0, v in zip(net1.Learnables, grads, vel0, vel):
        f = 2.0 if (r.Layer, r.Parameter) == ("conv", "Bias") else 1.0
        vref = 0.8 * v0.Value._data.astype(np.float64) - 0.1 * f * g.Value._data
        np.testing.assert_allclose(v.Value._data, vref, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(r.Value._data, before[(r.Layer, r.Parameter)] + vref,
                                   rtol=1e-6, atol=1e-6)
        assert r.Value._data.dtype == np.float32
        assert r.Value._data.shape == before[(r.Layer, r.Parameter)].shape
    for n in (net, twin):
        for r in n.Learnables:
            np.testing.assert_array_equal(r.Value._data, before[(r.Layer, r.Parameter)])
    # a subset of the rows: the others keep their values (and their layer objects)
    part = Table(("Layer", "Parameter", "Value"), [rows[2]])
    net2, _ = ml.sgdmupdate(net, part, [], 0.1, 0.8)
    assert net2.Layers[1] is net.Layers[1]
    np.testing.assert_allclose(net2.Layers[2].Weights,
                               before[("fc", "Weights")] - 0.1 * rows[2][2]._data, rtol=1e-6)
    np.testing.assert_array_equal(net2.Layers[2].Bias, before[("fc", "Bias")])
