"""trainNetwork's arithmetic against independent implementations (issue 18).

* A small CNN (conv + batch norm + relu + fc + softmax; zero-center input normalization,
  L2, learn-rate and L2 factors including a frozen parameter, clipping, a piecewise
  schedule, a mini-batch size that does not divide N, shuffling every epoch) is trained
  for a few epochs by ``trainNetwork`` and by a PyTorch loop written here from MATLAB's
  documented formulas (MATLAB_SEMANTICS §12, §16.2-§16.6); the final weights and the
  batch-norm population statistics agree to float32 round-off, for each solver.
* A NumPy-only check of one SGDM iteration of a softmax classifier (the gradient written
  by hand), for CI without torch.
"""
import math

import numpy as np
import pytest

import mlayers as ml

N, H, W, C, K = 22, 6, 6, 2, 3
B = 5                      # 22 = 4*5 + 2: the partial mini-batch is discarded
EPOCHS = 3
L2 = 1e-3
EPS_SINGLE = float(np.finfo(np.float32).eps)


def _data():
    rs = np.random.RandomState(7)
    labels = np.array(["cat", "dog", "bird"])[rs.randint(0, 3, N)]
    X = rs.rand(H, W, C, N).astype(np.float32)
    X[:3, :, 0, labels == "cat"] += 0.8
    X[:, :3, 1, labels == "dog"] -= 0.7
    return X, labels


def _layers():
    return [ml.imageInputLayer([H, W, C]),
            ml.convolution2dLayer(3, 4, Padding="same", BiasLearnRateFactor=0),
            ml.batchNormalizationLayer(ScaleLearnRateFactor=0.5),
            ml.reluLayer(),
            ml.fullyConnectedLayer(K, WeightL2Factor=2, BiasLearnRateFactor=2),
            ml.softmaxLayer(),
            ml.classificationLayer()]


# learn-rate and L2 factors of the layers above (MATLAB's defaults otherwise).  The
# convolution's bias is frozen: before batch normalization its gradient is zero up to
# round-off, which Adam and RMSProp would amplify into noise-driven steps.
LRF = {("conv", "Weights"): 1, ("conv", "Bias"): 0, ("batchnorm", "Offset"): 1,
       ("batchnorm", "Scale"): 0.5, ("fc", "Weights"): 1, ("fc", "Bias"): 2}
L2F = {("conv", "Weights"): 1, ("conv", "Bias"): 0, ("batchnorm", "Offset"): 1,
       ("batchnorm", "Scale"): 1, ("fc", "Weights"): 2, ("fc", "Bias"): 0}

CASES = [("sgdm", "l2norm", 0.05), ("adam", "global-l2norm", 0.3),
         ("rmsprop", "absolute-value", 0.02)]


def _options(solver, clip, thr, bn="population"):
    kw = {"sgdm": dict(InitialLearnRate=0.05, Momentum=0.8),
          "adam": dict(InitialLearnRate=0.01, GradientDecayFactor=0.85,
                       SquaredGradientDecayFactor=0.99, Epsilon=1e-6),
          "rmsprop": dict(InitialLearnRate=0.005, SquaredGradientDecayFactor=0.95,
                          Epsilon=1e-6)}[solver]
    return ml.trainingOptions(solver, MaxEpochs=EPOCHS, MiniBatchSize=B,
                              Shuffle="every-epoch", L2Regularization=L2,
                              GradientThresholdMethod=clip, GradientThreshold=thr,
                              LearnRateSchedule="piecewise", LearnRateDropFactor=0.5,
                              LearnRateDropPeriod=2, Verbose=False,
                              BatchNormalizationStatistics=bn, **kw)


def _initial_state():
    """Initial learnables and the epoch permutations, drawn as trainNetwork draws them:
    the network's initializers first, then one randperm (stable sort of rand) per epoch."""
    ml.rng(0)
    net0 = ml.dlnetwork(_layers()[:-1])
    init = {(r.Layer, r.Parameter): np.array(r.Value._data) for r in net0.Learnables}
    perms = [np.argsort(ml.rand(1, N).ravel(), kind="stable") for _ in range(EPOCHS)]
    return init, perms


def _trained(solver, clip, thr, bn="population"):
    X, labels = _data()
    ml.rng(0)
    net = ml.trainNetwork(X, labels, _layers(), _options(solver, clip, thr, bn))
    dn = net._net
    learn = {(r.Layer, r.Parameter): np.array(r.Value._data) for r in dn.Learnables}
    state = {(r.Layer, r.Parameter): np.array(r.Value._data) for r in dn.State}
    return learn, state


# --------------------------------------------------------------------------- torch

def _torch_reference(solver, clip, thr, moving=None):
    torch = pytest.importorskip("torch")
    import torch.nn.functional as F
    X, labels = _data()
    init, perms = _initial_state()
    classes = sorted(set(labels.tolist()))                 # MATLAB's categories order
    T_all = np.zeros((N, K), np.float32)
    T_all[np.arange(N), [classes.index(v) for v in labels]] = 1
    # zero-center normalization: per-channel mean of the training data (float64 -> single)
    mean = X.astype(np.float64).mean(axis=(0, 1, 3)).astype(np.float32)
    Xt = torch.from_numpy(np.ascontiguousarray(X.transpose(3, 2, 0, 1)))   # N C H W
    Xt = Xt - torch.from_numpy(mean).view(1, C, 1, 1)
    Tt = torch.from_numpy(T_all)

    # MATLAB layout -> torch layout, and back
    to_t = {("conv", "Weights"): lambda a: a.transpose(3, 2, 0, 1),
            ("conv", "Bias"): lambda a: a.reshape(-1),
            ("batchnorm", "Offset"): lambda a: a.reshape(-1),
            ("batchnorm", "Scale"): lambda a: a.reshape(-1),
            ("fc", "Weights"): lambda a: a, ("fc", "Bias"): lambda a: a.reshape(-1)}
    keys = list(init)
    P = {k: torch.tensor(np.ascontiguousarray(to_t[k](init[k])), requires_grad=True)
         for k in keys}
    eps_bn = 1e-5

    def net_forward(x, stats=None):
        a = F.conv2d(x, P[("conv", "Weights")], P[("conv", "Bias")], padding=1)
        mu = a.mean(dim=(0, 2, 3), keepdim=True)
        var = ((a - mu) ** 2).mean(dim=(0, 2, 3), keepdim=True)
        if stats is not None:
            stats.append((a.detach(), mu.detach(), var.detach()))
        a = (a - mu) / torch.sqrt(var + eps_bn)
        a = a * P[("batchnorm", "Scale")].view(1, -1, 1, 1) + \
            P[("batchnorm", "Offset")].view(1, -1, 1, 1)
        a = torch.relu(a)
        flat = a.permute(0, 1, 3, 2).reshape(a.shape[0], -1)     # column-major H, W, C
        z = flat @ P[("fc", "Weights")].T + P[("fc", "Bias")]
        return torch.softmax(z, dim=1)

    state = {k: [torch.zeros(()), torch.zeros(())] for k in keys}
    lr = {"sgdm": 0.05, "adam": 0.01, "rmsprop": 0.005}[solver]
    t = 0
    for epoch in range(1, EPOCHS + 1):
        order = perms[epoch - 1]
        for it in range(N // B):
            t += 1
            idx = torch.from_numpy(order[it * B:(it + 1) * B].copy())
            stats = []
            Y = net_forward(Xt[idx], stats)
            if moving is not None:      # 'moving': λ·batch + (1 − λ)·running, biased var
                _, mu_b, var_b = stats[0]
                moving[0] = np.float32(0.1) * mu_b.reshape(-1) + np.float32(0.9) * moving[0]
                moving[1] = np.float32(0.1) * var_b.reshape(-1) + np.float32(0.9) * moving[1]
            T = Tt[idx]
            loss = -(T * torch.log(torch.clamp(Y, min=EPS_SINGLE))).sum() / B
            grads = torch.autograd.grad(loss, [P[k] for k in keys])
            g = {}
            with torch.no_grad():
                for k, gk in zip(keys, grads):
                    if LRF[k] != 0 and L2 * L2F[k] != 0:
                        gk = gk + np.float32(L2 * L2F[k]) * P[k]
                    g[k] = gk
                if clip == "l2norm":
                    for k in keys:
                        n = float(torch.sqrt((g[k] ** 2).sum()))
                        if n > thr:
                            g[k] = g[k] * np.float32(thr / n)
                elif clip == "global-l2norm":
                    L = math.sqrt(sum(float((g[k] ** 2).sum()) for k in keys))
                    if L > thr:
                        for k in keys:
                            g[k] = g[k] * np.float32(thr / L)
                else:
                    for k in keys:
                        g[k] = torch.clamp(g[k], -thr, thr)
                for k in keys:
                    rate = lr * LRF[k]
                    if rate == 0:
                        continue
                    s = state[k]
                    if solver == "sgdm":
                        s[0] = np.float32(0.8) * s[0] - np.float32(rate) * g[k]
                        P[k] += s[0]
                    elif solver == "adam":
                        b1, b2 = 0.85, 0.99
                        s[0] = np.float32(b1) * s[0] + np.float32(1 - b1) * g[k]
                        s[1] = np.float32(b2) * s[1] + np.float32(1 - b2) * g[k] ** 2
                        eff = rate * math.sqrt(1 - b2 ** t) / (1 - b1 ** t)
                        P[k] -= np.float32(eff) * (s[0] / (torch.sqrt(s[1]) +
                                                           np.float32(1e-6)))
                    else:
                        rho = 0.95
                        s[0] = np.float32(rho) * s[0] + np.float32(1 - rho) * g[k] ** 2
                        P[k] -= np.float32(rate) * g[k] / (torch.sqrt(s[0]) +
                                                           np.float32(1e-6))
        if epoch % 2 == 0:
            lr *= 0.5
    # population statistics: one pass in data order, partial batch kept, merged exactly
    n_acc = None
    with torch.no_grad():
        for s in range(0, N, B):
            stats = []
            net_forward(Xt[s:s + B], stats)
            a, mu2, var2 = stats[0]
            mu2 = mu2.double().reshape(-1)
            var2 = ((a.double() - a.mean(dim=(0, 2, 3), keepdim=True).double()) ** 2
                    ).mean(dim=(0, 2, 3))
            n2 = a.numel() // a.shape[1]
            if n_acc is None:
                n_acc, mu, var = n2, mu2, var2
            else:
                r = n2 / (n_acc + n2)
                mu_new = (1 - r) * mu + r * mu2
                var = (1 - r) * (var + mu ** 2) + r * (var2 + mu2 ** 2) - mu_new ** 2
                mu = mu_new
                n_acc += n2
    back = {("conv", "Weights"): lambda a: a.transpose(2, 3, 1, 0)}
    out = {k: back.get(k, lambda a: a)(P[k].detach().numpy()) for k in keys}
    return out, mu.numpy().astype(np.float32), (var.numpy() + eps_bn).astype(np.float32)


def test_moving_statistics_match_torch_loop():
    torch = pytest.importorskip("torch")
    moving = [torch.zeros(4), torch.ones(4)]
    ref, _, _ = _torch_reference("sgdm", "l2norm", 0.05, moving)
    learn, state = _trained("sgdm", "l2norm", 0.05, bn="moving")
    for k, r in ref.items():
        np.testing.assert_allclose(learn[k].reshape(r.shape), r, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state[("batchnorm", "TrainedMean")].ravel(),
                               moving[0].numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state[("batchnorm", "TrainedVariance")].ravel(),
                               moving[1].numpy(), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("solver,clip,thr", CASES)
def test_trainNetwork_matches_torch_loop(solver, clip, thr):
    ref, mu, var = _torch_reference(solver, clip, thr)
    learn, state = _trained(solver, clip, thr)
    worst = 0.0
    for k, r in ref.items():
        got = learn[k].reshape(r.shape) if learn[k].size == r.size else learn[k]
        np.testing.assert_allclose(got.reshape(r.shape), r, rtol=1e-5, atol=1e-6,
                                   err_msg=f"{solver} {k}")
        worst = max(worst, float(np.max(np.abs(got.reshape(r.shape) - r))))
    np.testing.assert_allclose(state[("batchnorm", "TrainedMean")].ravel(), mu,
                               rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(state[("batchnorm", "TrainedVariance")].ravel(), var,
                               rtol=1e-5, atol=1e-6)
    # the frozen offset did not move
    init, _ = _initial_state()
    np.testing.assert_array_equal(learn[("conv", "Bias")], init[("conv", "Bias")])
    print(f"{solver}: max |weight difference| vs torch = {worst:.3g}")


# --------------------------------------------------------------------------- numpy

def test_one_sgdm_iteration_numpy():
    """softmax(W·x + b) with crossentropyex: the gradient by hand is (Y − T)·xᵀ/N;
    one SGDM step with L2 (weights only) and l2norm clipping of each parameter."""
    rs = np.random.RandomState(3)
    n, f, k = 8, 3, 4                       # images 1×1×3, one mini-batch of 8
    X = rs.randn(1, 1, f, n).astype(np.float32)
    labels = np.array(list("wxyz"))[rs.randint(0, k, n)]
    labels[:4] = list("wxyz")               # every class present
    layers = [ml.imageInputLayer([1, 1, f], Normalization="none"),
              ml.fullyConnectedLayer(k), ml.softmaxLayer(), ml.classificationLayer()]
    lr, mom, lam, thr = 0.1, 0.9, 0.01, 0.3
    opts = ml.trainingOptions("sgdm", InitialLearnRate=lr, Momentum=mom, MaxEpochs=1,
                              MiniBatchSize=n, L2Regularization=lam, Shuffle="never",
                              GradientThreshold=thr, Verbose=False)
    ml.rng(0)
    net0 = ml.dlnetwork(layers[:-1])
    W0 = np.array(net0.Learnables[0].Value._data, dtype=np.float64)
    b0 = np.array(net0.Learnables[1].Value._data, dtype=np.float64).reshape(-1, 1)
    ml.rng(0)
    net = ml.trainNetwork(X, labels, layers, opts)
    # reference in float64
    x = X.reshape(f, n).astype(np.float64)
    z = W0 @ x + b0
    Y = np.exp(z - z.max(axis=0))
    Y /= Y.sum(axis=0)
    T = np.zeros((k, n))
    T[[sorted(set(labels)).index(v) for v in labels], np.arange(n)] = 1
    gW = (Y - T) @ x.T / n + lam * W0
    gb = (Y - T).sum(axis=1, keepdims=True) / n          # BiasL2Factor 0
    for name in ("gW", "gb"):
        g = locals()[name]
        nrm = np.sqrt(np.sum(g ** 2))
        if nrm > thr:
            g *= thr / nrm
    W1 = W0 - lr * gW                                   # vel = 0*mom - lr*g
    b1 = b0 - lr * gb
    got = {r.Parameter: r.Value._data for r in net._net.Learnables}
    np.testing.assert_allclose(got["Weights"], W1, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["Bias"].reshape(-1, 1), b1, rtol=1e-5, atol=1e-6)
