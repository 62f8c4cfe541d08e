"""A whole network's gradients: ``dlgradient(loss, net.Learnables)`` through ``forward``
(training mode: batch statistics) against (1) the same loss written as a composition of
the functional operations (``dlconv``, ``batchnorm``, ``relu``, ``fullyconnect``, ``+``)
on the network's parameters — the sum of its parts — and (2) central finite differences
in float64 (10 entries of every learnable), for a conv-BN-ReLU-FC chain and a residual graph;
and the residual graph against PyTorch autograd (skipped without torch)."""
import numpy as np
import pytest

import mlayers as ml
from mlayers._table import Table


def chain():
    return [ml.imageInputLayer([5, 5, 2], Normalization="none", Name="in"),
            ml.convolution2dLayer(3, 3, Padding="same", Name="c1"),
            ml.batchNormalizationLayer(Name="bn1"), ml.reluLayer(Name="r1"),
            ml.fullyConnectedLayer(4, Name="fc")]


def residual():
    g = ml.layerGraph([ml.imageInputLayer([5, 5, 2], Normalization="none", Name="in"),
                       ml.convolution2dLayer(3, 3, Padding="same", Name="c1"),
                       ml.batchNormalizationLayer(Name="bn1"), ml.reluLayer(Name="r1"),
                       ml.convolution2dLayer(3, 3, Padding="same", Name="c2"),
                       ml.additionLayer(2, Name="add"), ml.reluLayer(Name="r2"),
                       ml.fullyConnectedLayer(4, Name="fc")])
    g = ml.addLayers(g, ml.convolution2dLayer(1, 3, Name="skip"))
    g = ml.connectLayers(g, "in", "skip")
    return ml.connectLayers(g, "skip", "add/in2")


def parts_chain(p, X):
    h = ml.dlconv(X, p["c1", "Weights"], p["c1", "Bias"], Padding="same")
    h = ml.batchnorm(h, p["bn1", "Offset"], p["bn1", "Scale"])
    h = ml.relu(h)
    return ml.fullyconnect(h, p["fc", "Weights"], p["fc", "Bias"])


def parts_residual(p, X):
    h = ml.dlconv(X, p["c1", "Weights"], p["c1", "Bias"], Padding="same")
    h = ml.relu(ml.batchnorm(h, p["bn1", "Offset"], p["bn1", "Scale"]))
    h = ml.dlconv(h, p["c2", "Weights"], p["c2", "Bias"], Padding="same")
    s = ml.dlconv(X, p["skip", "Weights"], p["skip", "Bias"])
    return ml.fullyconnect(ml.relu(h + s), p["fc", "Weights"], p["fc", "Bias"])


CASES = {"chain": (chain, parts_chain), "residual": (residual, parts_residual)}


def _double_network(make, rng):
    ml.rng(3)
    net = ml.dlnetwork(make())
    t = net.Learnables
    # float64 learnables, random BN offsets/scales (not the 0/1 initial values)
    net.Learnables = Table(t.VariableNames, [
        (r.Layer, r.Parameter, ml.dlarray(
            (rng.standard_normal(r.Value.shape) if r.Layer.startswith("bn")
             else r.Value.data).astype(np.float64))) for r in t])
    return net


@pytest.mark.parametrize("case", sorted(CASES))
def test_network_gradients_equal_parts_and_finite_differences(case, rng):
    make, parts = CASES[case]
    net = _double_network(make, rng)
    X = ml.dlarray(rng.standard_normal((5, 5, 2, 3)), "SSCB")
    W = ml.dlarray(rng.standard_normal((4, 3)), "CB")

    def model(net, X):
        Y = ml.forward(net, X)
        L = ml.sum(Y * W, "all")
        return L, ml.dlgradient(L, net.Learnables)

    L, grads = ml.dlfeval(model, net, X)
    keys = list(zip(grads.Layer, grads.Parameter))

    # (1) the sum of its parts: the same loss from the functional operations
    values = {k: r.Value for k, r in zip(keys, net.Learnables)}

    def model_parts(values, X):
        L = ml.sum(parts(values, X) * W, "all")
        return L, ml.dlgradient(L, values)

    L2, g2 = ml.dlfeval(model_parts, values, X)
    np.testing.assert_allclose(L.data, L2.data, rtol=1e-12)
    worst = 0.0
    for k, g in zip(keys, grads.Value):
        ref = g2[k].data.reshape(g.shape)
        np.testing.assert_allclose(g.data, ref, rtol=1e-10, atol=1e-12, err_msg=str(k))
        worst = max(worst, float(np.max(np.abs(g.data - ref))))
    print(f"{case}: network vs parts max abs difference {worst:.3g}")

    # (2) central finite differences of the training-mode loss, every learnable
    def loss_at(k, value):
        t = Table(("Layer", "Parameter", "Value"), [(k[0], k[1], ml.dlarray(value))])
        m = net._copy()                 # a copy; the assignment copies the layer it changes
        m.Learnables = t
        return float(ml.sum(ml.forward(m, X) * W, "all").data)

    eps = 1e-6
    rel = 0.0
    for k, g in zip(keys, grads.Value):
        v = np.asarray(net.Learnables.Value[keys.index(k)].data, np.float64)
        num = np.full_like(v, np.nan)
        every = list(np.ndindex(v.shape))
        pick = rng.choice(len(every), size=min(len(every), 10), replace=False)
        for idx in (every[j] for j in pick):
            a, b = v.copy(), v.copy()
            a[idx] += eps
            b[idx] -= eps
            num[idx] = (loss_at(k, a) - loss_at(k, b)) / (2 * eps)
        m = ~np.isnan(num)
        scale = max(np.max(np.abs(num[m])), 1e-3)
        rel = max(rel, float(np.max(np.abs(g.data[m] - num[m])) / scale))
    print(f"{case}: network vs finite differences max relative error {rel:.3g}")
    assert rel < 1e-6


def test_network_gradients_match_pytorch_autograd(rng):
    """The residual graph's loss and gradients (training-mode batch norm) against the same
    network written in PyTorch, float64."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    net = _double_network(residual, rng)
    x = rng.standard_normal((5, 5, 2, 3))
    w_loss = rng.standard_normal((4, 3))
    X, W = ml.dlarray(x, "SSCB"), ml.dlarray(w_loss, "CB")

    def model(net, X):
        L = ml.sum(ml.forward(net, X) * W, "all")
        return L, ml.dlgradient(L, net.Learnables)

    L, grads = ml.dlfeval(model, net, X)
    P = {(r.Layer, r.Parameter): torch.tensor(np.asarray(r.Value.data, np.float64),
                                              requires_grad=True) for r in net.Learnables}

    def conv(h, name, pad):
        w = P[name, "Weights"].permute(3, 2, 0, 1)           # kH×kW×C×F -> F×C×kH×kW
        return F.conv2d(h, w, P[name, "Bias"].reshape(-1), padding=pad)

    xt = torch.tensor(x.transpose(3, 2, 0, 1))               # H×W×C×N -> N×C×H×W
    h = conv(xt, "c1", 1)
    h = F.batch_norm(h, None, None, P["bn1", "Scale"].reshape(-1),
                     P["bn1", "Offset"].reshape(-1), training=True, eps=1e-5)
    h = conv(F.relu(h), "c2", 1) + conv(xt, "skip", 0)
    h = F.relu(h)
    flat = h.permute(0, 1, 3, 2).reshape(h.shape[0], -1)     # MATLAB's column-major flatten
    y = F.linear(flat, P["fc", "Weights"], P["fc", "Bias"].reshape(-1))
    loss = (y.T * torch.tensor(w_loss)).sum()
    loss.backward()
    np.testing.assert_allclose(float(L.data), loss.item(), rtol=1e-12)
    worst = 0.0
    for r, g in zip(net.Learnables, grads.Value):
        ref = P[r.Layer, r.Parameter].grad.numpy()
        np.testing.assert_allclose(g.data, ref, rtol=1e-9, atol=1e-11,
                                   err_msg=f"{r.Layer}/{r.Parameter}")
        worst = max(worst, float(np.max(np.abs(g.data - ref))))
    print(f"residual: network vs PyTorch autograd max abs difference {worst:.3g}")
