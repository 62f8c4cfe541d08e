"""The custom-training-loop example (examples/custom_training_loop.py) against the same
loop written in PyTorch: same initial weights, data and mini-batch order, MATLAB's SGDM
rule and time-based decay; the loss curves agree to float32 round-off."""
import math
import os
import pathlib
import runpy

import numpy as np
import pytest

import mlayers as ml

EXAMPLE = pathlib.Path(__file__).parent.parent / "examples" / "custom_training_loop.py"
SIZE, N, BATCH, EPOCHS, FILTERS = 12, 60, 20, 2, 4


def _example():
    os.environ.setdefault("MLAYERS_EXAMPLE_SMALL", "1")
    return runpy.run_path(str(EXAMPLE))


def test_custom_loop_loss_curve_matches_torch():
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    ex = _example()
    X, Y = ex["digit_data"](N, SIZE, 5)
    layers = ex["make_layers"](SIZE, FILTERS)
    ml.rng(0)
    net, losses = ex["train"](X, Y, layers, EPOCHS, BATCH, verbose=False)

    # the same draws: initializers, then one randperm (shuffle) per epoch
    ml.rng(0)
    net0 = ml.dlnetwork(layers)
    init = {(r.Layer, r.Parameter): np.array(r.Value._data) for r in net0.Learnables}
    perms = [np.argsort(ml.rand(1, N).ravel(), kind="stable") for _ in range(EPOCHS)]
    names = [r.Layer for r in net0.Learnables]
    conv1, conv2 = [n for n in dict.fromkeys(names) if n.startswith("conv")]
    bn1, bn2 = [n for n in dict.fromkeys(names) if n.startswith("batchnorm")]
    P = {}
    for (layer, param), a in init.items():
        if layer.startswith("conv") and param == "Weights":
            a = a.transpose(3, 2, 0, 1)
        elif param != "Weights":
            a = a.reshape(-1)
        P[(layer, param)] = torch.tensor(np.ascontiguousarray(a), requires_grad=True)
    classes = ml.categories(Y)
    codes = np.array([classes.index(v) for v in np.asarray(Y).reshape(-1)])
    Xt = torch.from_numpy(np.ascontiguousarray(X.transpose(3, 2, 0, 1)))
    Tt = torch.zeros(N, 10)
    Tt[torch.arange(N), torch.from_numpy(codes)] = 1

    def bn(a, name):
        mu = a.mean(dim=(0, 2, 3), keepdim=True)
        var = ((a - mu) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        a = (a - mu) / torch.sqrt(var + 1e-5)
        return a * P[(name, "Scale")].view(1, -1, 1, 1) + P[(name, "Offset")].view(1, -1, 1, 1)

    def forward(x):
        a = torch.relu(bn(F.conv2d(x, P[(conv1, "Weights")], P[(conv1, "Bias")], padding=2),
                          bn1))
        a = torch.relu(bn(F.conv2d(a, P[(conv2, "Weights")], P[(conv2, "Bias")], padding=1),
                          bn2))
        flat = a.permute(0, 1, 3, 2).reshape(a.shape[0], -1)
        return torch.softmax(flat @ P[("fc", "Weights")].T + P[("fc", "Bias")], dim=1)

    vel = {k: torch.zeros(()) for k in P}
    ref = []
    it = 0
    for epoch in range(EPOCHS):
        for s in range(0, N, BATCH):
            it += 1
            idx = torch.from_numpy(perms[epoch][s:s + BATCH].copy())
            Yb = forward(Xt[idx])
            loss = -(Tt[idx] * torch.log(torch.clamp(Yb, min=float(np.finfo(np.float32).eps)))
                     ).sum() / BATCH
            grads = torch.autograd.grad(loss, list(P.values()))
            rate = 0.01 / (1 + 0.01 * it)
            with torch.no_grad():
                for (k, p), g in zip(P.items(), grads):
                    vel[k] = np.float32(0.9) * vel[k] - np.float32(rate) * g
                    p += vel[k]
            ref.append(float(loss.detach()))
    rel = np.max(np.abs(np.array(losses) - np.array(ref)) / np.abs(ref))
    print(f"loss curve: mlayers {np.round(losses, 4).tolist()}")
    print(f"loss curve: torch   {np.round(ref, 4).tolist()}  max rel diff {rel:.2e}")
    np.testing.assert_allclose(losses, ref, rtol=1e-5)
    assert losses[-1] < losses[0]
    assert not any(math.isnan(v) for v in losses)


def test_assigning_traced_learnables_keeps_the_trace():
    """MATLAB's model function of a learnables table: net.Learnables = L inside dlfeval,
    then forward(net, X); dlgradient(loss, L) is the gradient through the network (before,
    the assignment dropped the trace and the gradient was silently zero; found by the
    review)."""
    ml.rng(0)
    net = ml.dlnetwork([ml.featureInputLayer(2), ml.fullyConnectedLayer(3), ml.tanhLayer(),
                        ml.fullyConnectedLayer(1)])
    net = ml.dlupdate(lambda p: ml.dlarray(np.asarray(p.data, np.float64)), net)
    X = ml.dlarray(np.random.default_rng(0).random((2, 4)), "CB")

    def through_table(L, net, X):
        net.Learnables = L
        y = ml.sum(ml.forward(net, X) ** 2, "all")
        return ml.dlgradient(y, L), net

    def through_network(net, X):
        y = ml.sum(ml.forward(net, X) ** 2, "all")
        return ml.dlgradient(y, net.Learnables)
    g, returned = ml.dlfeval(through_table, net.Learnables, net, X)
    ref = ml.dlfeval(through_network, net, X)
    for a, b in zip(g.Value, ref.Value):
        assert np.abs(np.asarray(b.data)).max() > 0
        np.testing.assert_allclose(np.asarray(a.data), np.asarray(b.data), rtol=1e-12)
    # the network dlfeval returns holds plain values again (MATLAB: outputs untraced)
    assert all(getattr(v, "_node", None) is None for v in returned.Learnables.Value)
