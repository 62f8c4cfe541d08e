"""dlgradient computes only the gradients that lead to the variables asked for
(mlayers/_autodiff.py ``_backward``): the values are those of the full reverse pass, and
a convolution whose input needs no gradient skips its adjoint."""

import numpy as np

import mlayers as ml
from mlayers import _ops


def conv_loss(X, W, B):
    Y = ml.dlconv(X, W, B, Padding="same")
    return ml.sum(ml.relu(Y) * Y, "all")


def arrays():
    rng = np.random.default_rng(11)
    X = ml.dlarray(rng.standard_normal((7, 6, 3, 2)), "SSCB")
    W = ml.dlarray(rng.standard_normal((3, 3, 3, 4)))
    B = ml.dlarray(rng.standard_normal((4, 1)))
    return X, W, B


def count_adjoints(monkeypatch):
    calls = []
    real = _ops._adjoint_engine

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(_ops, "_adjoint_engine", spy)
    return calls


def test_unwanted_input_gradient_is_skipped_and_the_rest_unchanged(monkeypatch):
    X, W, B = arrays()
    calls = count_adjoints(monkeypatch)

    def only_w(X, W, B):
        return ml.dlgradient(conv_loss(X, W, B), W, B)

    def all_three(X, W, B):
        return ml.dlgradient(conv_loss(X, W, B), X, W, B)
    gw, gb = ml.dlfeval(only_w, X, W, B)
    assert calls == []                       # dL/dX was not computed
    gx, gw2, gb2 = ml.dlfeval(all_three, X, W, B)
    assert calls == [1]
    np.testing.assert_array_equal(np.asarray(gw.data), np.asarray(gw2.data))
    np.testing.assert_array_equal(np.asarray(gb.data), np.asarray(gb2.data))
    # dL/dX against central differences of the loss along a random direction
    rng = np.random.default_rng(2)
    v = rng.standard_normal(X.shape)
    h = 1e-6
    f = lambda x: float(np.asarray(conv_loss(ml.dlarray(x, "SSCB"), W, B).data))
    fd = (f(X.data + h * v) - f(X.data - h * v)) / (2 * h)
    assert abs(fd - float(np.sum(np.asarray(gx.data) * v))) <= 1e-6 * max(1.0, abs(fd))


def test_intermediate_variable_and_two_calls_in_one_dlfeval():
    X, W, B = arrays()

    def fn(X, W, B):
        Z = X * 3.0                          # an intermediate: d(sum Z^2)/dZ = 2 Z
        loss = ml.sum(Z * Z, "all") + conv_loss(X, W, B)
        gz = ml.dlgradient(loss, Z)
        gw = ml.dlgradient(loss, W)
        gx = ml.dlgradient(loss, X)
        return gz, gw, gx
    gz, gw, gx = ml.dlfeval(fn, X, W, B)
    np.testing.assert_allclose(np.asarray(gz.data), 2 * 3.0 * np.asarray(X.data), rtol=1e-12)
    gw_ref = ml.dlfeval(lambda X, W, B: ml.dlgradient(conv_loss(X, W, B), W), X, W, B)
    np.testing.assert_array_equal(np.asarray(gw.data), np.asarray(gw_ref.data))
    gx_conv = ml.dlfeval(lambda X, W, B: ml.dlgradient(conv_loss(X, W, B), X), X, W, B)
    np.testing.assert_allclose(np.asarray(gx.data),
                               np.asarray(gx_conv.data) + 18.0 * np.asarray(X.data),
                               rtol=1e-12, atol=1e-12)


def test_network_learnables_skip_the_data_gradient(monkeypatch):
    rng = np.random.default_rng(5)
    net = ml.dlnetwork([ml.imageInputLayer([8, 8, 1], Normalization="none"),
                        ml.convolution2dLayer(3, 4, Padding="same"), ml.reluLayer(),
                        ml.convolution2dLayer(3, 2, Padding="same"),
                        ml.fullyConnectedLayer(3), ml.softmaxLayer()])
    X = ml.dlarray(rng.random((8, 8, 1, 5)), "SSCB")
    T = ml.dlarray(np.eye(3)[:, rng.integers(0, 3, 5)], "CB")
    calls = count_adjoints(monkeypatch)

    def model_loss(net, X, T):
        return ml.dlgradient(ml.crossentropy(ml.forward(net, X), T), net.Learnables)
    g = ml.dlfeval(model_loss, net, X, T)
    assert len(calls) == 1                   # the second convolution's dX only
    assert all(np.isfinite(np.asarray(v.data)).all() for v in g.Value)


def test_fullyconnect_and_lstm_skip_an_unwanted_input_gradient(monkeypatch):
    from mlayers import _ops_rnn
    rng = np.random.default_rng(9)
    X = ml.dlarray(rng.standard_normal((6, 4)), "CB")
    W = ml.dlarray(rng.standard_normal((3, 6)))
    B = ml.dlarray(rng.standard_normal((3, 1)))
    products = []
    real_matmul = _ops.matmul
    monkeypatch.setattr(_ops, "matmul",
                        lambda *a: products.append(1) or real_matmul(*a))

    def fc(X, W, B, *wrt):
        loss = ml.sum(ml.fullyconnect(X, W, B) ** 2, "all")
        return ml.dlgradient(loss, *(dict(X=X, W=W, B=B)[v] for v in wrt))
    gw = ml.dlfeval(lambda X, W, B: fc(X, W, B, "W"), X, W, B)
    assert len(products) == 2                    # the forward and dW, no dX
    gx, gw2 = ml.dlfeval(lambda X, W, B: fc(X, W, B, "X", "W"), X, W, B)
    assert len(products) == 5
    np.testing.assert_array_equal(np.asarray(gw.data), np.asarray(gw2.data))
    np.testing.assert_allclose(np.asarray(gx.data),
                               np.asarray(W.data).T @ (2 * (np.asarray(W.data) @ X.data
                                                            + np.asarray(B.data))),
                               rtol=1e-12)

    flags = []
    real_back = _ops_rnn.lstm_backward
    monkeypatch.setattr(_ops_rnn, "lstm_backward",
                        lambda *a: flags.append(a[-1]) or real_back(*a))
    H = 2
    Xs = ml.dlarray(rng.standard_normal((3, 2, 5)), "CBT")
    Wl = ml.dlarray(rng.standard_normal((4 * H, 3)))
    R = ml.dlarray(rng.standard_normal((4 * H, H)))
    b = ml.dlarray(rng.standard_normal((4 * H, 1)))
    h0 = np.zeros((H, 2))

    def lstm_loss(Xs, Wl, R, b, *wrt):
        Y = ml.lstm(Xs, h0, h0, Wl, R, b)
        return ml.dlgradient(ml.sum(Y * Y, "all"), *wrt)
    g1 = ml.dlfeval(lambda Xs, Wl, R, b: lstm_loss(Xs, Wl, R, b, Wl), Xs, Wl, R, b)
    g2, gx2 = ml.dlfeval(lambda Xs, Wl, R, b: lstm_loss(Xs, Wl, R, b, Wl, Xs), Xs, Wl, R, b)
    assert flags == [False, True]
    np.testing.assert_array_equal(np.asarray(g1.data), np.asarray(g2.data))
    assert gx2.shape == Xs.shape


def test_consumed_gradients_are_released_during_the_reverse_pass():
    # A chain of 40 elementwise operations on a 1 MiB array: holding every intermediate
    # gradient until the end of the pass would peak at 40 MiB of gradients; releasing
    # each once its operation's backward has read it keeps a few alive.  The gradient
    # itself: d/dx of sum((x*c)^...) along the chain, against its closed form.
    import tracemalloc
    n, c = 40, 1.01
    x0 = np.random.default_rng(3).standard_normal(1 << 17)

    def chain(x):
        y = x
        for _ in range(n):
            y = y * c
        return ml.dlgradient(ml.sum(y, "all"), x)
    tracemalloc.start()
    g = ml.dlfeval(chain, ml.dlarray(x0))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    np.testing.assert_allclose(ml.extractdata(g), np.full(x0.shape, c ** n), rtol=1e-12)
    # the forward's 40 products (kept for the trace) plus at most a handful of gradients
    assert peak < (n + 8) * x0.nbytes, peak / x0.nbytes
