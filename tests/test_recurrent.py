"""LSTM, BiLSTM and GRU: functional operations, gradients and layers.

Oracles (independent of the kernels):

* a NumPy reference written from MATLAB's formulas (MATLAB_SEMANTICS §17.1-17.2),
  in float64, step by step in MATLAB's C x B layout;
* central finite differences of that reference (float64) for the gradients, along
  random directions (relative error ~1e-7);
* PyTorch (``nn.LSTM``, ``nn.GRU``) in separate tests that skip when torch is absent, with
  the gate blocks mapped explicitly.
"""
import itertools

import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops
from mlayers.functional.recurrent import _bilstm_op

STATE = ("tanh", "softsign", "relu")
GATE = ("sigmoid", "hard-sigmoid")
MODES = ("after-multiplication", "before-multiplication",
         "recurrent-bias-after-multiplication")


# --------------------------------------------------------------------------- reference

def act_state(x, kind):
    if kind == "tanh":
        return np.tanh(x)
    if kind == "softsign":
        return x / (1 + np.abs(x))
    return np.maximum(x, 0)


def act_gate(x, kind):
    if kind == "sigmoid":
        return 1 / (1 + np.exp(-x))
    return np.maximum(0, np.minimum(1, 0.2 * x + 0.5))


def ref_lstm(x, h0, c0, W, R, b, sact="tanh", gact="sigmoid"):
    """MATLAB's LSTM: x C x B x T; gate rows i 1:H, f H+1:2H, g 2H+1:3H, o 3H+1:4H."""
    C, B, T = x.shape
    H = R.shape[1]
    h = np.broadcast_to(np.reshape(h0, (H, -1)), (H, B)).astype(np.float64)
    c = np.broadcast_to(np.reshape(c0, (H, -1)), (H, B)).astype(np.float64)
    b = np.reshape(b, (-1, 1))
    Y = []
    for t in range(T):
        z = W @ x[:, :, t] + R @ h + b
        i = act_gate(z[:H], gact)
        f = act_gate(z[H:2 * H], gact)
        g = act_state(z[2 * H:3 * H], sact)
        o = act_gate(z[3 * H:], gact)
        c = f * c + i * g
        h = o * act_state(c, sact)
        Y.append(h)
    return np.stack(Y, axis=2), h, c


def ref_bilstm(x, h0, c0, W, R, b, sact="tanh", gact="sigmoid"):
    H = R.shape[1]
    h0 = np.reshape(h0, (2 * H, -1))
    c0 = np.reshape(c0, (2 * H, -1))
    b = np.reshape(b, -1)
    yf, hf, cf = ref_lstm(x, h0[:H], c0[:H], W[:4 * H], R[:4 * H], b[:4 * H], sact, gact)
    yb, hb, cb = ref_lstm(x[:, :, ::-1], h0[H:], c0[H:], W[4 * H:], R[4 * H:], b[4 * H:],
                          sact, gact)
    return (np.concatenate([yf, yb[:, :, ::-1]]), np.concatenate([hf, hb]),
            np.concatenate([cf, cb]))


def ref_gru(x, h0, W, R, b, mode="after-multiplication", sact="tanh", gact="sigmoid"):
    """MATLAB's GRU: gate rows r 1:H, z H+1:2H, candidate 2H+1:3H (§17.2)."""
    C, B, T = x.shape
    H = R.shape[1]
    h = np.broadcast_to(np.reshape(h0, (H, -1)), (H, B)).astype(np.float64)
    b = np.reshape(b, -1)
    bx = b[:3 * H, None]
    rb = b[3 * H:, None] if mode == "recurrent-bias-after-multiplication" \
        else np.zeros((3 * H, 1))
    Y = []
    for t in range(T):
        gx = W @ x[:, :, t] + bx
        if mode == "before-multiplication":
            r = act_gate(gx[:H] + R[:H] @ h, gact)
            z = act_gate(gx[H:2 * H] + R[H:2 * H] @ h, gact)
            n = act_state(gx[2 * H:] + R[2 * H:] @ (r * h), sact)
        else:
            gh = R @ h + rb
            r = act_gate(gx[:H] + gh[:H], gact)
            z = act_gate(gx[H:2 * H] + gh[H:2 * H], gact)
            n = act_state(gx[2 * H:] + r * gh[2 * H:], sact)
        h = (1 - z) * n + z * h
        Y.append(h)
    return np.stack(Y, axis=2), h


# --------------------------------------------------------------------------- data

def lstm_params(rng, C, H, B, gates=4, bias_rows=None, shared_state=False, scale=0.5):
    x = rng.standard_normal((C, B, 5))
    W = scale * rng.standard_normal((gates * H, C))
    R = scale * rng.standard_normal((gates * H, H))
    b = scale * rng.standard_normal((bias_rows or gates * H, 1))
    nb = 1 if shared_state else B
    h0 = rng.standard_normal((H if gates != 8 else 2 * H, nb))
    c0 = rng.standard_normal(h0.shape)
    return x, h0, c0, W, R, b


def run_lstm(x, h0, c0, W, R, b, dtype, **opts):
    X = ml.dlarray(x.astype(dtype), "CBT")
    cast = lambda a: a.astype(dtype)
    Y, h, c = ml.lstm(X, cast(h0), cast(c0), cast(W), cast(R), cast(b), nargout=3, **opts)
    return Y, h, c


def tol(dtype):
    return 2e-5 if dtype == np.float32 else 1e-12


# --------------------------------------------------------------------------- forward

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("sact,gact", list(itertools.product(STATE, GATE)))
def test_lstm_forward_matches_reference(dtype, sact, gact):
    rng = np.random.default_rng(1)
    x, h0, c0, W, R, b = lstm_params(rng, 5, 7, 37)
    Y, h, c = run_lstm(x, h0, c0, W, R, b, dtype, StateActivationFunction=sact,
                       GateActivationFunction=gact)
    Yr, hr, cr = ref_lstm(x.astype(dtype).astype(np.float64), h0.astype(dtype),
                          c0.astype(dtype), W.astype(dtype).astype(np.float64),
                          R.astype(dtype).astype(np.float64), b.astype(dtype), sact, gact)
    assert Y.dims == "CBT" and Y.shape == (7, 37, 5) and Y.dtype == dtype
    assert h.dims == "CB" and h.shape == (7, 37)
    for got, want in ((Y, Yr), (h, hr), (c, cr)):
        err = np.max(np.abs(got.data - want)) / max(1.0, np.max(np.abs(want)))
        assert err < tol(dtype), err


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sact,gact", [("tanh", "sigmoid"), ("softsign", "hard-sigmoid"),
                                       ("relu", "sigmoid")])
def test_gru_forward_matches_reference(dtype, mode, sact, gact):
    rng = np.random.default_rng(2)
    H = 6
    rows = 6 * H if mode.startswith("recurrent") else 3 * H
    x, h0, _, W, R, b = lstm_params(rng, 4, H, 19, gates=3, bias_rows=rows)
    c = lambda a: a.astype(dtype)
    Y, h = ml.gru(ml.dlarray(c(x), "CBT"), c(h0), c(W), c(R), c(b), ResetGateMode=mode,
                  StateActivationFunction=sact, GateActivationFunction=gact, nargout=2)
    f64 = lambda a: c(a).astype(np.float64)
    Yr, hr = ref_gru(f64(x), f64(h0), f64(W), f64(R), f64(b), mode, sact, gact)
    assert Y.dims == "CBT" and Y.dtype == dtype
    assert np.max(np.abs(Y.data - Yr)) < tol(dtype)
    assert np.max(np.abs(h.data - hr)) < tol(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bilstm_forward_matches_reference(dtype):
    rng = np.random.default_rng(3)
    x, h0, c0, W, R, b = lstm_params(rng, 4, 5, 9, gates=8)
    c = lambda a: a.astype(dtype)
    Y, h, cc = _bilstm_op(ml.dlarray(c(x), "CBT"), c(h0), c(c0), c(W), c(R), c(b),
                          sact="tanh", gact="sigmoid", fname="bilstm")
    f64 = lambda a: c(a).astype(np.float64)
    Yr, hr, cr = ref_bilstm(f64(x), f64(h0), f64(c0), f64(W), f64(R), f64(b))
    assert Y.shape == (10, 9, 5)
    for got, want in ((Y, Yr), (h, hr), (cc, cr)):
        assert np.max(np.abs(got.data - want)) < tol(dtype)


def test_formats_and_dataformat():
    rng = np.random.default_rng(4)
    x, h0, c0, W, R, b = lstm_params(rng, 6, 3, 4, shared_state=True)
    Yr, hr, _ = ref_lstm(x, h0, c0, W, R, b)
    # SCBT: S and C flattened column-major (S fastest)
    xs = x.reshape((2, 3, 4, 5), order="F")
    Y = ml.lstm(ml.dlarray(xs, "SCBT"), h0, c0, W, R, b)
    assert Y.dims == "CBT" and np.allclose(Y.data, Yr, atol=1e-13)
    # unformatted with DataFormat in another label order comes back unformatted, same order
    Yu = ml.lstm(np.transpose(x, (2, 0, 1)), h0, c0, W, R, b, DataFormat="TCB")
    assert Yu.dims == "" and np.allclose(Yu.data, np.transpose(Yr, (2, 0, 1)), atol=1e-13)
    # CT (one observation) and CB (one time step)
    Y1 = ml.lstm(ml.dlarray(x[:, 0, :], "CT"), h0, c0, W, R, b)
    assert Y1.dims == "CT" and np.allclose(Y1.data, ref_lstm(x[:, :1], h0, c0, W, R, b)[0][:, 0])
    Y2 = ml.lstm(ml.dlarray(x[:, :, 0], "CB"), h0, c0, W, R, b)
    assert Y2.dims == "CB" and np.allclose(Y2.data, ref_lstm(x[:, :, :1], h0, c0, W, R, b)[0][:, :, 0])


def test_functional_errors():
    rng = np.random.default_rng(5)
    x, h0, c0, W, R, b = lstm_params(rng, 4, 3, 2)
    X = ml.dlarray(x, "CBT")
    with pytest.raises(ValueError, match="lstm: weights must be a 12×4 matrix"):
        ml.lstm(X, h0, c0, W[:, :3], R, b)
    with pytest.raises(ValueError, match="lstm: recurrentWeights must be"):
        ml.lstm(X, h0, c0, W, R[:, :2], b)
    with pytest.raises(ValueError, match="lstm: bias must be a 12×1 vector"):
        ml.lstm(X, h0, c0, W, R, b[:5])
    with pytest.raises(ValueError, match="lstm: H0 must have NumHiddenUnits"):
        ml.lstm(X, np.zeros((3, 5)), c0, W, R, b)
    with pytest.raises(ValueError, match="lstm: StateActivationFunction must be one of"):
        ml.lstm(X, h0, c0, W, R, b, StateActivationFunction="elu")
    with pytest.raises(ValueError, match="gru: ResetGateMode must be one of"):
        ml.gru(X, h0, W[:9], R[:9], b[:9], ResetGateMode="never")
    with pytest.raises(ValueError, match="lstm: X must be a formatted dlarray"):
        ml.lstm(x, h0, c0, W, R, b)


def test_nan_propagates():
    rng = np.random.default_rng(6)
    x, h0, c0, W, R, b = lstm_params(rng, 3, 2, 2)
    x[0, 0, 1] = np.nan
    Y = ml.lstm(ml.dlarray(x, "CBT"), h0, c0, W, R, b)
    assert np.isnan(Y.data[:, 0, 1:]).all() and np.isfinite(Y.data[:, 1]).all()


# --------------------------------------------------------------------------- gradients

def fd_check(loss_ref, params, grads, rng, n_dirs=3, eps=1e-6):
    """Directional central differences of loss_ref(*params) against sum(grad * v)."""
    worst = 0.0
    for k, (p, g) in enumerate(zip(params, grads)):
        assert g.shape == np.shape(p), (k, g.shape, np.shape(p))
        for _ in range(n_dirs):
            v = rng.standard_normal(np.shape(p))
            plus = list(params)
            minus = list(params)
            plus[k] = p + eps * v
            minus[k] = p - eps * v
            num = (loss_ref(*plus) - loss_ref(*minus)) / (2 * eps)
            ana = float(np.sum(g * v))
            worst = max(worst, abs(num - ana) / max(1.0, abs(ana)))
    return worst


def _weights(shape, rng):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("sact,gact,shared", [("tanh", "sigmoid", False),
                                              ("softsign", "hard-sigmoid", True),
                                              ("relu", "sigmoid", False)])
def test_lstm_gradients_finite_differences(sact, gact, shared):
    rng = np.random.default_rng(7)
    x, h0, c0, W, R, b = lstm_params(rng, 4, 3, 5, shared_state=shared)
    gy = rng.standard_normal((3, 5, 5))
    gh = rng.standard_normal((3, 5))
    gc = rng.standard_normal((3, 5))

    def loss_ref(x, h0, c0, W, R, b):
        Y, h, c = ref_lstm(x, h0, c0, W, R, b, sact, gact)
        return np.sum(Y * gy) + np.sum(h * gh) + np.sum(c * gc)

    def model(X, H0, C0, W, R, b):
        Y, h, c = ml.lstm(X, H0, C0, W, R, b, StateActivationFunction=sact,
                          GateActivationFunction=gact, nargout=3)
        loss = ml.sum(Y * gy, "all") + ml.sum(h * gh, "all") + ml.sum(c * gc, "all")
        return ml.dlgradient(loss, X, H0, C0, W, R, b)

    args = (ml.dlarray(x, "CBT"),) + tuple(ml.dlarray(a) for a in (h0, c0, W, R, b))
    grads = [g.data for g in ml.dlfeval(model, *args)]
    assert fd_check(loss_ref, [x, h0, c0, W, R, b], grads, rng) < 1e-6


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("sact,gact", [("tanh", "sigmoid"), ("softsign", "hard-sigmoid")])
def test_gru_gradients_finite_differences(mode, sact, gact):
    rng = np.random.default_rng(8)
    H = 3
    rows = 6 * H if mode.startswith("recurrent") else 3 * H
    x, h0, _, W, R, b = lstm_params(rng, 4, H, 5, gates=3, bias_rows=rows)
    gy = rng.standard_normal((H, 5, 5))
    gh = rng.standard_normal((H, 5))

    def loss_ref(x, h0, W, R, b):
        Y, h = ref_gru(x, h0, W, R, b, mode, sact, gact)
        return np.sum(Y * gy) + np.sum(h * gh)

    def model(X, H0, W, R, b):
        Y, h = ml.gru(X, H0, W, R, b, ResetGateMode=mode, StateActivationFunction=sact,
                      GateActivationFunction=gact, nargout=2)
        loss = ml.sum(Y * gy, "all") + ml.sum(h * gh, "all")
        return ml.dlgradient(loss, X, H0, W, R, b)

    args = (ml.dlarray(x, "CBT"),) + tuple(ml.dlarray(a) for a in (h0, W, R, b))
    grads = [g.data for g in ml.dlfeval(model, *args)]
    assert fd_check(loss_ref, [x, h0, W, R, b], grads, rng) < 1e-6


def test_bilstm_gradients_finite_differences():
    rng = np.random.default_rng(9)
    x, h0, c0, W, R, b = lstm_params(rng, 3, 2, 4, gates=8)
    gy = rng.standard_normal((4, 4, 5))
    gh = rng.standard_normal((4, 4))

    def loss_ref(x, h0, c0, W, R, b):
        Y, h, c = ref_bilstm(x, h0, c0, W, R, b)
        return np.sum(Y * gy) + np.sum(h * gh)

    def model(X, H0, C0, W, R, b):
        Y, h, c = _bilstm_op(X, H0, C0, W, R, b, sact="tanh", gact="sigmoid", fname="t")
        loss = ml.sum(Y * gy, "all") + ml.sum(h * gh, "all")
        return ml.dlgradient(loss, X, H0, C0, W, R, b)

    args = (ml.dlarray(x, "CBT"),) + tuple(ml.dlarray(a) for a in (h0, c0, W, R, b))
    grads = [g.data for g in ml.dlfeval(model, *args)]
    assert fd_check(loss_ref, [x, h0, c0, W, R, b], grads, rng) < 1e-6


def test_last_output_only_gradient():
    """A loss of the final hidden state only: the backward gets None for Y."""
    rng = np.random.default_rng(10)
    x, h0, c0, W, R, b = lstm_params(rng, 3, 4, 2)

    def loss_ref(W):
        return np.sum(ref_lstm(x, h0, c0, W, R, b)[1] ** 2)

    def model(W):
        _, h = ml.lstm(ml.dlarray(x, "CBT"), h0, c0, W, R, b, nargout=2)
        return ml.dlgradient(ml.sum(h * h, "all"), W)

    g = ml.dlfeval(model, ml.dlarray(W)).data
    assert fd_check(loss_ref, [W], [g], rng) < 1e-6


# --------------------------------------------------------------------------- threads, chunks

@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("cell", ["lstm", "before-multiplication"])
def test_threads_bitwise_equal(dtype, cell):
    """Results and gradients do not depend on the number of threads."""
    rng = np.random.default_rng(11)
    C, H, B, T = 16, 32, 40, 30
    g = 4 if cell == "lstm" else 3
    x = rng.standard_normal((C, B, T)).astype(dtype)
    W = (0.3 * rng.standard_normal((g * H, C))).astype(dtype)
    R = (0.3 * rng.standard_normal((g * H, H))).astype(dtype)
    b = rng.standard_normal((g * H, 1)).astype(dtype)
    h0 = np.zeros((H, 1), dtype)

    def model(X, W, R, b):
        Y = ml.lstm(X, h0, h0, W, R, b) if cell == "lstm" else \
            ml.gru(X, h0, W, R, b, ResetGateMode=cell)
        return ml.dlgradient(ml.sum(Y * Y, "all"), X, W, R, b), Y

    out = []
    for n in (1, 2, 3):
        with _ops.threads(n):
            g, Y = ml.dlfeval(model, ml.dlarray(x, "CBT"), ml.dlarray(W), ml.dlarray(R),
                              ml.dlarray(b))
        out.append([Y.data] + [a.data for a in g])
    for other in out[1:]:
        for a, c in zip(out[0], other):
            assert np.array_equal(a, c)


@pytest.mark.parametrize("cls", ["lstm", "gru"])
def test_chunked_calls_with_state_equal_one_call(cls):
    rng = np.random.default_rng(12)
    x, h0, c0, W, R, b = lstm_params(rng, 3, 4, 6, gates=4 if cls == "lstm" else 3)
    X = ml.dlarray(np.concatenate([x, x[:, :, ::-1]], axis=2), "CBT")
    if cls == "lstm":
        Y, h, c = ml.lstm(X, h0, c0, W, R, b, nargout=3)
        Y1, h1, c1 = ml.lstm(ml.dlarray(X.data[:, :, :4], "CBT"), h0, c0, W, R, b, nargout=3)
        Y2, h2, c2 = ml.lstm(ml.dlarray(X.data[:, :, 4:], "CBT"), h1, c1, W, R, b, nargout=3)
        assert np.allclose(c.data, c2.data, rtol=0, atol=1e-14)
    else:
        Y, h = ml.gru(X, h0, W, R, b, nargout=2)
        Y1, h1 = ml.gru(ml.dlarray(X.data[:, :, :4], "CBT"), h0, W, R, b, nargout=2)
        Y2, h2 = ml.gru(ml.dlarray(X.data[:, :, 4:], "CBT"), h1, W, R, b, nargout=2)
    assert np.allclose(np.concatenate([Y1.data, Y2.data], axis=2), Y.data, rtol=0, atol=1e-14)
    assert np.allclose(h.data, h2.data, rtol=0, atol=1e-14)


# --------------------------------------------------------------------------- PyTorch

def _torch_lstm_params(mod, W, R, b, suffix=""):
    """MATLAB gate blocks (i, f, g, o) -> PyTorch's (i, f, g, o), mapped block by block."""
    import torch
    H = R.shape[1]
    order = {"i": 0, "f": 1, "g": 2, "o": 3}           # MATLAB block index per gate
    torch_order = ("i", "f", "g", "o")                  # PyTorch's block order
    perm = np.concatenate([np.arange(order[k] * H, (order[k] + 1) * H) for k in torch_order])
    with torch.no_grad():
        getattr(mod, "weight_ih_l0" + suffix).copy_(torch.from_numpy(W[perm]))
        getattr(mod, "weight_hh_l0" + suffix).copy_(torch.from_numpy(R[perm]))
        getattr(mod, "bias_ih_l0" + suffix).copy_(torch.from_numpy(b.reshape(-1)[perm]))
        getattr(mod, "bias_hh_l0" + suffix).zero_()
    return perm


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bidirectional", [False, True])
def test_lstm_matches_pytorch(dtype, bidirectional):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(13)
    C, H, B, T = 5, 6, 7, 8
    D = 2 if bidirectional else 1
    x = rng.standard_normal((C, B, T)).astype(dtype)
    W = (0.5 * rng.standard_normal((4 * D * H, C))).astype(dtype)
    R = (0.5 * rng.standard_normal((4 * D * H, H))).astype(dtype)
    b = rng.standard_normal((4 * D * H, 1)).astype(dtype)
    h0 = rng.standard_normal((D * H, B)).astype(dtype)
    c0 = rng.standard_normal((D * H, B)).astype(dtype)
    gy = rng.standard_normal((D * H, B, T)).astype(dtype)

    tdt = torch.float32 if dtype == np.float32 else torch.float64
    mod = torch.nn.LSTM(C, H, bidirectional=bidirectional).to(tdt)
    perms = [_torch_lstm_params(mod, W[:4 * H], R[:4 * H], b[:4 * H])]
    if bidirectional:
        perms.append(_torch_lstm_params(mod, W[4 * H:], R[4 * H:], b[4 * H:], "_reverse"))
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 1, 0))).requires_grad_()
    ht = torch.from_numpy(np.ascontiguousarray(h0.T.reshape(B, D, H).transpose(1, 0, 2)))
    ct = torch.from_numpy(np.ascontiguousarray(c0.T.reshape(B, D, H).transpose(1, 0, 2)))
    yt, _ = mod(xt, (ht, ct))                          # T x B x D*H
    (yt * torch.from_numpy(np.ascontiguousarray(gy.transpose(2, 1, 0)))).sum().backward()

    def model(X, W, R, b):
        if bidirectional:
            Y, _, _ = _bilstm_op(X, h0, c0, W, R, b, sact="tanh", gact="sigmoid", fname="t")
        else:
            Y = ml.lstm(X, h0, c0, W, R, b)
        return Y, ml.dlgradient(ml.sum(Y * gy, "all"), X, W, R, b)

    Y, (gX, gW, gR, gb) = ml.dlfeval(model, ml.dlarray(x, "CBT"), ml.dlarray(W),
                                     ml.dlarray(R), ml.dlarray(b))
    t = 3e-5 if dtype == np.float32 else 1e-11
    assert np.max(np.abs(Y.data - yt.detach().numpy().transpose(2, 1, 0))) < t
    assert np.max(np.abs(gX.data - xt.grad.numpy().transpose(2, 1, 0))) < t * 10
    for d, perm in enumerate(perms):
        sfx = "_reverse" if d else ""
        inv = np.argsort(perm)                          # PyTorch rows -> MATLAB rows
        rows = slice(4 * H * d, 4 * H * (d + 1))
        tw = getattr(mod, "weight_ih_l0" + sfx).grad.numpy()[inv]
        tr = getattr(mod, "weight_hh_l0" + sfx).grad.numpy()[inv]
        tb = getattr(mod, "bias_ih_l0" + sfx).grad.numpy()[inv]
        scale = max(1.0, np.max(np.abs(tw)))
        assert np.max(np.abs(gW.data[rows] - tw)) / scale < t * 10
        assert np.max(np.abs(gR.data[rows] - tr)) / max(1.0, np.max(np.abs(tr))) < t * 10
        assert np.max(np.abs(gb.data.reshape(-1)[rows] - tb)) / max(1.0, np.max(np.abs(tb))) \
            < t * 10


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("mode", ["after-multiplication", "recurrent-bias-after-multiplication"])
def test_gru_matches_pytorch(dtype, mode):
    """PyTorch's nn.GRU (r, z, n) is the recurrent-bias mode; with bias_hh = 0 the default
    mode ('before-multiplication' has no PyTorch equivalent)."""
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(14)
    C, H, B, T = 4, 5, 6, 7
    x = rng.standard_normal((C, B, T)).astype(dtype)
    W = (0.5 * rng.standard_normal((3 * H, C))).astype(dtype)
    R = (0.5 * rng.standard_normal((3 * H, H))).astype(dtype)
    rb = mode.startswith("recurrent")
    b = rng.standard_normal(((6 if rb else 3) * H, 1)).astype(dtype)
    h0 = rng.standard_normal((H, B)).astype(dtype)
    gy = rng.standard_normal((H, B, T)).astype(dtype)
    order = {"r": 0, "z": 1, "n": 2}                    # MATLAB block per gate
    perm = np.concatenate([np.arange(order[k] * H, (order[k] + 1) * H) for k in "rzn"])
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    mod = torch.nn.GRU(C, H).to(tdt)
    with torch.no_grad():
        mod.weight_ih_l0.copy_(torch.from_numpy(W[perm]))
        mod.weight_hh_l0.copy_(torch.from_numpy(R[perm]))
        mod.bias_ih_l0.copy_(torch.from_numpy(b.reshape(-1)[:3 * H][perm]))
        if rb:
            mod.bias_hh_l0.copy_(torch.from_numpy(b.reshape(-1)[3 * H:][perm]))
        else:
            mod.bias_hh_l0.zero_()
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(2, 1, 0))).requires_grad_()
    yt, _ = mod(xt, torch.from_numpy(np.ascontiguousarray(h0.T))[None])
    (yt * torch.from_numpy(np.ascontiguousarray(gy.transpose(2, 1, 0)))).sum().backward()

    def model(X, W, R, b):
        Y = ml.gru(X, h0, W, R, b, ResetGateMode=mode)
        return Y, ml.dlgradient(ml.sum(Y * gy, "all"), X, W, R, b)

    Y, (gX, gW, gR, gb) = ml.dlfeval(model, ml.dlarray(x, "CBT"), ml.dlarray(W),
                                     ml.dlarray(R), ml.dlarray(b))
    t = 3e-5 if dtype == np.float32 else 1e-11
    inv = np.argsort(perm)
    assert np.max(np.abs(Y.data - yt.detach().numpy().transpose(2, 1, 0))) < t
    assert np.max(np.abs(gX.data - xt.grad.numpy().transpose(2, 1, 0))) < t * 10
    assert np.max(np.abs(gW.data - mod.weight_ih_l0.grad.numpy()[inv])) < t * 10
    assert np.max(np.abs(gR.data - mod.weight_hh_l0.grad.numpy()[inv])) < t * 10
    gbt = mod.bias_ih_l0.grad.numpy()[inv]
    if rb:
        gbt = np.concatenate([gbt, mod.bias_hh_l0.grad.numpy()[inv]])
    assert np.max(np.abs(gb.data.reshape(-1) - gbt)) < t * 10


# --------------------------------------------------------------------------- layers

LSTM_DISPLAY = """\
  LSTMLayer with properties:

                       Name: ''
                 InputNames: {'in'}
                OutputNames: {'out'}
                  NumInputs: 1
                 NumOutputs: 1
             HasStateInputs: 0
            HasStateOutputs: 0

   Hyperparameters
                  InputSize: 'auto'
             NumHiddenUnits: 150
                 OutputMode: 'last'
    StateActivationFunction: 'tanh'
     GateActivationFunction: 'sigmoid'

   Learnable Parameters
               InputWeights: []
           RecurrentWeights: []
                       Bias: []

   State Parameters
                HiddenState: []
                  CellState: []

  Show all properties
"""


def test_lstm_layer_display_verbatim():
    assert repr(ml.lstmLayer(150, OutputMode="last")).rstrip("\n") == LSTM_DISPLAY.rstrip("\n")


def test_layer_array_rows_and_defaults():
    text = repr(ml.layer_array([ml.lstmLayer(100), ml.bilstmLayer(100), ml.gruLayer(100)]))
    rows = [line.split()[2:] for line in text.splitlines()[2:] if line.strip()]
    assert rows == [["LSTM", "LSTM", "with", "100", "hidden", "units"],
                    ["BiLSTM", "BiLSTM", "with", "100", "hidden", "units"],
                    ["GRU", "GRU", "with", "100", "hidden", "units"]]
    layer = ml.lstmLayer(8)
    assert (layer.InputWeightsInitializer, layer.RecurrentWeightsInitializer,
            layer.BiasInitializer) == ("glorot", "orthogonal", "unit-forget-gate")
    assert layer.BiasL2Factor == 0 and layer.InputWeightsL2Factor == 1
    assert ml.gruLayer(3).BiasInitializer == "zeros"
    assert ml.lstmLayer(3)._default_name == "lstm" and ml.gruLayer(3)._default_name == "gru"
    f = ml.lstmLayer(3, InputWeightsLearnRateFactor=[1, 2, 3, 4]).InputWeightsLearnRateFactor
    assert f.shape == (1, 4)
    with pytest.raises(ValueError, match="lstmLayer: BiasL2Factor must be"):
        ml.lstmLayer(3, BiasL2Factor=[1, 2])
    with pytest.raises(ValueError, match="lstmLayer: OutputMode must be one of"):
        ml.lstmLayer(3, OutputMode="all")


def test_initializers():
    ml.rng(0)
    layer = ml.bilstmLayer(4).initialize(3)
    b = layer.Bias.reshape(-1)
    H = 4
    want = np.zeros(8 * H)
    want[H:2 * H] = 1
    want[5 * H:6 * H] = 1
    assert np.array_equal(b, want) and layer.Bias.shape == (32, 1)
    Rw = layer.RecurrentWeights.astype(np.float64)
    assert Rw.shape == (32, 4) and np.allclose(Rw.T @ Rw, np.eye(4), atol=1e-6)
    assert layer.InputWeights.shape == (32, 3) and layer.InputWeights.dtype == np.float32
    lim = np.sqrt(6 / (3 + 32))                         # glorot: numIn 3, numOut 8H
    assert np.abs(layer.InputWeights).max() <= lim
    assert layer.HiddenState.shape == (8, 1) and not layer.HiddenState.any()
    g = ml.gruLayer(2, ResetGateMode="recurrent-bias-after-multiplication").initialize(5)
    assert g.Bias.shape == (12, 1) and g.InputWeights.shape == (6, 5)


@pytest.mark.parametrize("mode", ["sequence", "last"])
def test_layer_forward_matches_functional(mode):
    rng = np.random.default_rng(15)
    X = ml.dlarray(rng.standard_normal((3, 4, 6)).astype(np.float32), "CBT")
    for ctor in (ml.lstmLayer, ml.gruLayer, ml.bilstmLayer):
        layer = ctor(5, OutputMode=mode)
        Y = layer.predict(X)
        assert (Y.dims, Y.shape) == layer._output_shape(X.dims, X.shape, "t")
        if ctor is ml.lstmLayer:
            Yf, h, c = ml.lstm(X, layer.HiddenState, layer.CellState, layer.InputWeights,
                               layer.RecurrentWeights, layer.Bias, nargout=3)
            assert np.array_equal(Y.data, Yf.data if mode == "sequence" else h.data)


def test_layer_state_ports_and_update():
    rng = np.random.default_rng(16)
    X = ml.dlarray(rng.standard_normal((3, 2, 4)), "CBT")
    layer = ml.lstmLayer(5, HasStateInputs=True, HasStateOutputs=True, OutputMode="last")
    assert layer.InputNames == ["in", "hidden", "cell"]
    assert layer.OutputNames == ["out", "hidden", "cell"] and layer.NumOutputs == 3
    h0 = ml.dlarray(rng.standard_normal((5, 2)), "CB")
    c0 = ml.dlarray(rng.standard_normal((5, 2)), "CB")
    outs, state = layer._run([X, h0, c0], False, "predict")
    assert state is None and len(outs) == 3
    ref = ref_lstm(X.data, h0.data, c0.data, layer.InputWeights.astype(np.float64),
                   layer.RecurrentWeights.astype(np.float64), layer.Bias.astype(np.float64))
    assert np.allclose(outs[0].data, ref[1], atol=1e-5)
    assert np.allclose(outs[2].data, ref[2], atol=1e-5)
    with pytest.raises(ValueError, match="HiddenState must be empty"):
        ml.lstmLayer(5, HasStateInputs=True, HiddenState=np.zeros((5, 1)))
    # the state update after the last step, H x B
    plain = ml.gruLayer(5)
    outs, state = plain._run([X], True, "forward")
    assert set(state) == {"HiddenState"} and state["HiddenState"].shape == (5, 2)
    assert np.array_equal(state["HiddenState"].data, outs[0].data[:, :, -1])


def test_layer_gradient_through_traced_parameters():
    """A layer's forward passes its (traced) learnables to the operation."""
    rng = np.random.default_rng(17)
    layer = ml.lstmLayer(3, OutputMode="last").initialize(2)
    X = ml.dlarray(rng.standard_normal((2, 3, 4)), "CBT")

    def model(W):
        layer._values["InputWeights"] = W
        Y = layer._forward(X, "forward")
        return ml.dlgradient(ml.sum(Y * Y, "all"), W)

    W0 = layer.InputWeights.astype(np.float64)
    g = ml.dlfeval(model, ml.dlarray(W0)).data
    layer._values["InputWeights"] = W0

    def loss_ref(W):
        z = np.zeros((3, 1))
        return np.sum(ref_lstm(X.data, z, z, W, layer.RecurrentWeights.astype(np.float64),
                               layer.Bias.astype(np.float64))[1] ** 2)
    assert fd_check(loss_ref, [W0], [g], rng) < 1e-6


# --------------------------------------------------------------------------- networks

def _seq_net(ctor, **kw):
    ml.rng(0)
    return ml.dlnetwork([ml.sequenceInputLayer(3), ctor(4, **kw), ml.fullyConnectedLayer(2)])


def _projected(n, **kw):
    return ml.lstmProjectedLayer(n, 2, 2, **kw)


@pytest.mark.parametrize("ctor", [ml.lstmLayer, ml.gruLayer, ml.bilstmLayer, _projected])
def test_network_gradients_finite_differences(ctor):
    """Gradients of a dlnetwork (sequence input, recurrent layer, FC) with respect to every
    learnable, against central differences of the network's own float64 prediction."""
    net = _seq_net(ctor)
    rng = np.random.default_rng(18)
    X = ml.dlarray(rng.standard_normal((3, 2, 5)), "CBT")
    gy = rng.standard_normal((2, 2, 5))

    def model(net):
        Y = ml.forward(net, X)
        return ml.dlgradient(ml.sum(Y * gy, "all"), net.Learnables)

    grads = ml.dlfeval(model, net)
    values = [np.asarray(v.data, dtype=np.float64) for v in net.Learnables.Value]

    def loss(*vals):
        t = net.Learnables
        t.Value = [ml.dlarray(v) for v in vals]
        n2 = net._copy() if hasattr(net, "_copy") else net
        n2.Learnables = t
        return float(np.sum(ml.predict(n2, X).data * gy))

    assert fd_check(loss, values, [g.data for g in grads.Value], rng, n_dirs=2) < 1e-6


@pytest.mark.parametrize("ctor", [ml.lstmLayer, ml.gruLayer])
def test_stateful_predict_chunks_equal_one_call(ctor):
    net = _seq_net(ctor)
    rng = np.random.default_rng(19)
    x = rng.standard_normal((3, 2, 9)).astype(np.float32)
    Y = ml.predict(net, ml.dlarray(x, "CBT"))
    parts = []
    for s in (slice(0, 4), slice(4, 5), slice(5, 9)):
        Yp, state = ml.predict(net, ml.dlarray(x[:, :, s], "CBT"), nargout=2)
        net.State = state
        parts.append(Yp.data)
    assert np.allclose(np.concatenate(parts, axis=2), Y.data, rtol=0, atol=1e-6)
    # predict alone changes nothing; resetState restores the zeros
    net = ml.resetState(net)
    assert np.array_equal(ml.predict(net, ml.dlarray(x, "CBT")).data, Y.data)


def test_state_ports_in_a_layer_graph():
    """Encoder-decoder: the decoder's hidden/cell inputs are the encoder's state outputs."""
    ml.rng(0)
    lg = ml.layerGraph([ml.sequenceInputLayer(3, Name="in"),
                        ml.lstmLayer(4, HasStateOutputs=True, Name="enc")])
    lg = ml.addLayers(lg, [ml.lstmLayer(4, HasStateInputs=True, Name="dec"),
                           ml.fullyConnectedLayer(2, Name="fc")])
    lg = ml.connectLayers(lg, "in", "dec/in")
    lg = ml.connectLayers(lg, "enc/hidden", "dec/hidden")
    lg = ml.connectLayers(lg, "enc/cell", "dec/cell")
    net = ml.dlnetwork(lg)
    X = ml.dlarray(np.random.default_rng(20).standard_normal((3, 2, 5)), "CBT")
    outs = ml.predict(net, X, Outputs=["enc/out", "dec"])
    enc, dec = (net.Layers[i] for i in (1, 2))
    w = lambda layer: [getattr(layer, n).astype(np.float64)
                       for n in ("InputWeights", "RecurrentWeights", "Bias")]
    Ye, he, ce = ref_lstm(X.data, np.zeros((4, 1)), np.zeros((4, 1)), *w(enc))
    Yd, _, _ = ref_lstm(X.data, he, ce, *w(dec))
    assert np.allclose(outs[0].data, Ye, atol=1e-5) and np.allclose(outs[1].data, Yd, atol=1e-5)
    assert [r.Layer for r in net.State] == ["enc", "enc"]      # the decoder has no state


# --------------------------------------------------------------------------- float32 kernels

from hypothesis import given, settings, strategies as st  # noqa: E402


def _grads(fn, dtype, x, states, params, opts):
    c = lambda a: a.astype(dtype)

    def model(X, *ps):
        outs = fn(X, *[c(s) for s in states], *ps, nargout=2, **opts)
        loss = ml.sum(outs[0] * outs[0], "all") + ml.sum(outs[1], "all")
        return (outs[0],) + tuple(ml.dlgradient(loss, X, *ps))

    out = ml.dlfeval(model, ml.dlarray(c(x), "CBT"), *[ml.dlarray(c(p)) for p in params])
    return [o.data.astype(np.float64) for o in out]


@settings(max_examples=12, deadline=None)
@given(C=st.integers(1, 40), H=st.integers(1, 90), B=st.integers(1, 40),
       T=st.integers(1, 16), cell=st.sampled_from(["lstm"] + list(MODES)),
       seed=st.integers(0, 2**16))
def test_float32_kernels_match_float64(C, H, B, T, cell, seed):
    """The float32 path (register-blocked products with K blocks of 256, tail rows and
    columns, vectorized activations) against the float64 path (BLAS, libm; itself checked
    against finite differences above), outputs and every gradient, on random sizes."""
    rng = np.random.default_rng(seed)
    gates = 4 if cell == "lstm" else 3
    x = rng.standard_normal((C, B, T))
    W = rng.standard_normal((gates * H, C)) / np.sqrt(C)
    R = rng.standard_normal((gates * H, H)) / np.sqrt(H)
    rows = 6 * H if cell.startswith("recurrent") else gates * H
    b = rng.standard_normal((rows, 1))
    h0 = rng.standard_normal((H, B))
    if cell == "lstm":
        fn, states, opts = ml.lstm, [h0, rng.standard_normal((H, 1))], {}
    else:
        fn, states, opts = ml.gru, [h0], {"ResetGateMode": cell}
    g32 = _grads(fn, np.float32, x, states, [W, R, b], opts)
    g64 = _grads(fn, np.float64, x, states, [W, R, b], opts)
    for a, e in zip(g32, g64):
        scale = max(1.0, np.max(np.abs(e)))
        assert np.max(np.abs(a - e)) / scale < 2e-4


def test_projected_layer_is_an_lstm_with_factored_weights():
    """lstmProjectedLayer = LSTM with InputWeights*InputProjector' and
    RecurrentWeights*OutputProjector' (layouts inferred from MATLAB's W*Q*Q'*x)."""
    ml.rng(1)
    layer = ml.lstmProjectedLayer(5, 2, 3, OutputMode="last").initialize(4)
    assert layer.InputProjector.shape == (4, 3) and layer.OutputProjector.shape == (5, 2)
    assert layer.InputWeights.shape == (20, 3) and layer.RecurrentWeights.shape == (20, 2)
    P = layer.InputProjector.astype(np.float64)
    assert np.allclose(P.T @ P, np.eye(3), atol=1e-6)           # 'orthogonal' default
    X = ml.dlarray(np.random.default_rng(21).standard_normal((4, 3, 6)), "CBT")
    f = lambda n: getattr(layer, n).astype(np.float64)
    W = f("InputWeights") @ f("InputProjector").T
    R = f("RecurrentWeights") @ f("OutputProjector").T
    _, h, _ = ref_lstm(X.data, np.zeros((5, 1)), np.zeros((5, 1)), W, R, f("Bias"))
    assert np.allclose(layer.predict(X).data, h, atol=1e-12)
    with pytest.raises(ValueError, match="InputProjector must be of size"):
        layer.InputProjector = np.zeros((4, 2))


def test_no_time_steps():
    """T = 0: Y is H x B x 0, the states stay the initial ones, the weight gradients are
    zeros (never uninitialized memory)."""
    X = ml.dlarray(np.zeros((3, 2, 0)), "CBT")
    W, R, b = np.ones((8, 3)), np.ones((8, 2)), np.ones((8, 1))
    h0 = np.full((2, 1), 0.5)

    def model(W, R, b):
        Y, h = ml.lstm(X, h0, np.zeros((2, 1)), W, R, b, nargout=2)
        return Y, h, ml.dlgradient(ml.sum(h, "all"), W, R, b)

    Y, h, grads = ml.dlfeval(model, ml.dlarray(W), ml.dlarray(R), ml.dlarray(b))
    assert Y.shape == (2, 2, 0) and np.array_equal(h.data, np.full((2, 2), 0.5))
    assert all(not g.data.any() for g in grads)


def test_predict_and_update_state_of_a_trained_network():
    """SeriesNetwork from trainNetwork: predictAndUpdateState over two chunks of a
    sequence equals predict over the whole (sequence-to-one LSTM)."""
    ml.rng(0)
    rng = np.random.default_rng(22)
    X = [rng.standard_normal((2, int(rng.integers(5, 9)))).astype(np.float32)
         for _ in range(12)]
    Y = ml.categorical([str(i % 2) for i in range(12)])
    layers = [ml.sequenceInputLayer(2), ml.lstmLayer(5, OutputMode="last"),
              ml.fullyConnectedLayer(2), ml.softmaxLayer(), ml.classificationLayer()]
    net = ml.trainNetwork(X, Y, layers, ml.trainingOptions("adam", MaxEpochs=1,
                                                            Verbose=False))
    x = rng.standard_normal((2, 10)).astype(np.float32)
    whole = ml.predict(net, [x])
    net2, _ = ml.predictAndUpdateState(ml.resetState(net), [x[:, :6]])
    net2, last = ml.predictAndUpdateState(net2, [x[:, 6:]])
    assert np.allclose(last, whole, rtol=0, atol=1e-6)
    assert np.array_equal(ml.predict(net, [x]), whole)       # net itself unchanged


def test_per_gate_factors_expand_to_rows():
    layer = ml.bilstmLayer(2, InputWeightsLearnRateFactor=[1, 2, 3, 4], BiasL2Factor=0.5)
    col = layer._factor_for("InputWeights", "LearnRateFactor")
    assert col.shape == (16, 1)
    assert col.ravel().tolist() == [1, 1, 2, 2, 3, 3, 4, 4] * 2
    assert layer._factor_for("Bias", "L2Factor") == 0.5
    g = ml.gruLayer(3, RecurrentWeightsL2Factor=[0, 1, 2])._factor_for("RecurrentWeights",
                                                                        "L2Factor")
    assert g.ravel().tolist() == [0] * 3 + [1] * 3 + [2] * 3


def test_bilstm_state_update_keeps_only_the_forward_half():
    layer = ml.bilstmLayer(3).initialize(2)
    X = ml.dlarray(np.random.default_rng(23).standard_normal((2, 4, 5)), "CBT")
    outs, state = layer._run([X], False, "predict")
    Y = outs[0].data
    h = state["HiddenState"].data
    assert h.shape == (6, 4)
    assert np.array_equal(h[:3], Y[:3, :, -1])                 # forward: after the last step
    assert not h[3:].any() and not state["CellState"].data[3:].any()   # backward restarts


def test_per_gate_learn_rate_factors_train():
    """A 1x4 InputWeightsLearnRateFactor scales each gate's rows of the update: with
    factor 0 on the forget gate its input weights stay as initialized, the others move."""
    ml.rng(0)
    X = [np.random.default_rng(k).random((3, 4 + k)) for k in range(6)]
    Y = ml.categorical(np.array([0, 1, 0, 1, 1, 0]))
    layers = [ml.sequenceInputLayer(3),
              ml.lstmLayer(5, OutputMode="last", InputWeightsLearnRateFactor=[1, 0, 1, 1]),
              ml.fullyConnectedLayer(2), ml.softmaxLayer(), ml.classificationLayer()]
    ml.rng(1)
    net0 = ml.dlnetwork(layers[:-1])
    w0 = np.asarray(net0.Layers[1].InputWeights).copy()
    ml.rng(1)
    net = ml.trainNetwork(X, Y, layers, ml.trainingOptions(
        "sgdm", MaxEpochs=2, MiniBatchSize=3, Verbose=False, L2Regularization=0))
    w = np.asarray(net.Layers[1].InputWeights)
    H = 5
    np.testing.assert_array_equal(w[H:2 * H], w0[H:2 * H])        # forget gate frozen
    assert np.abs(w[:H] - w0[:H]).max() > 0 and np.abs(w[2 * H:] - w0[2 * H:]).max() > 0
