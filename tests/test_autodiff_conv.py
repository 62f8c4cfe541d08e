"""Gradients of dlconv / dltranspconv and of the convolution layers inside dlfeval.

References: central finite differences (float64) and PyTorch autograd (skipped without
torch).  The forward values themselves are checked against scipy.sparse matrices in
test_reference.py; here only the backward passes are new.
"""
import copy

import numpy as np
import pytest

import mlayers as ml

from gradcheck import check, numeric_gradient, relative_error

TOL = 1e-7

DLCONV_CASES = [
    # (X shape, fmt, weights shape, options)
    ((7, 6, 3, 2), "SSCB", (3, 2, 3, 4), dict(Padding="same", Stride=[2, 1])),
    ((7, 6, 3, 2), "SSCB", (3, 3, 3, 4), dict(Padding=1, DilationFactor=2)),
    ((7, 6, 4, 2), "SSCB", (3, 3, 2, 3, 2), dict(Padding=[[1, 0], [2, 1]])),      # grouped
    ((9, 2, 3), "SCB", (3, 2, 4), dict(Padding="causal", DilationFactor=2)),
    ((6, 5, 3, 2), "SSCB", (3, 3, 3, 2), dict(Padding=2, PaddingValue="replicate")),
    ((6, 5, 3, 2), "SSCB", (3, 3, 3, 2), dict(Padding=1, PaddingValue=0.5)),
    ((6, 5, 3, 2), "SSCB", (2, 3, 3, 2),
     dict(Padding="same", PaddingValue="symmetric-include-edge")),
    ((5, 4, 3, 2, 2), "SSSCB", (2, 2, 2, 2, 3), dict(Stride=2, Padding="same")),
]


@pytest.mark.parametrize("xs,fmt,ws,opts", DLCONV_CASES)
def test_dlconv_gradients(xs, fmt, ws, opts, rng):
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    cout = ws[-1] * (ws[-2] if len(ws) == len(xs) + 1 else 1)
    b = rng.standard_normal((cout, 1))
    y = ml.dlconv(ml.dlarray(x, fmt), w, b, **opts)
    g = rng.standard_normal(y.shape)

    def f(X, W, B):
        return ml.sum(ml.dlconv(X, W, B, **opts) * g, "all")
    assert max(check(f, [x, w, b], [fmt, "", ""])) < TOL


@pytest.mark.parametrize("xs,fmt,ws,opts", [
    ((5, 4, 3, 2), "SSCB", (3, 3, 2, 3), dict(Stride=2, Cropping="same")),
    ((5, 4, 3, 2), "SSCB", (4, 3, 2, 3), dict(Stride=[2, 3], Cropping=[[1, 0], [0, 1]])),
    ((5, 4, 4, 2), "SSCB", (3, 3, 2, 2, 2), dict(Stride=2)),                      # grouped
    ((6, 3, 2), "SCB", (3, 4, 3), dict(Stride=3, DilationFactor=2)),
    ((3, 2, 2), "SCB", (2, 2, 2), dict(Stride=4, Cropping="same")),   # F < S: bias-only tail
])
def test_dltranspconv_gradients(xs, fmt, ws, opts, rng):
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    fg = ws[len(xs) - 2]
    cout = fg * (ws[-1] if len(ws) == len(xs) + 1 else 1)
    b = rng.standard_normal((1, cout))
    y = ml.dltranspconv(ml.dlarray(x, fmt), w, b, **opts)
    g = rng.standard_normal(y.shape)

    def f(X, W, B):
        return ml.sum(ml.dltranspconv(X, W, B, **opts) * g, "all")
    assert max(check(f, [x, w, b], [fmt, "", ""])) < TOL


def test_formatted_weights_data_format_and_scalar_bias(rng):
    # unformatted X with DataFormat, weights in 'TCU' convolving over T, scalar bias
    x = rng.standard_normal((3, 2, 8))          # C x B x T
    w = rng.standard_normal((3, 3, 4))          # T x C x U(filters)
    b = rng.standard_normal(())
    y = ml.dlconv(ml.dlarray(x), w, b, DataFormat="CBT", WeightsFormat="TCU")
    g = rng.standard_normal(y.shape)

    def f(X, W, B):
        Y = ml.dlconv(X, W, B, DataFormat="CBT", WeightsFormat="TCU")
        assert Y.dims == ""
        return ml.sum(Y * g, "all")
    assert max(check(f, [x, w, b], ["", "", ""])) < TOL


def test_against_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((8, 7, 4, 2))        # H W C N
    w = rng.standard_normal((3, 2, 2, 3, 2))     # grouped: FH FW Cg Fg G
    b = rng.standard_normal(6)

    def f(X, W, B):
        Y = ml.dlconv(X, W, B, Stride=2, Padding=1, DilationFactor=[1, 2])
        return ml.sum(Y * Y, "all"), Y
    loss, gX, gW, gB = ml.dlfeval(
        lambda X, W, B: (lambda l, Y: (l, *ml.dlgradient(l, X, W, B)))(*f(X, W, B)),
        ml.dlarray(x, "SSCB"), ml.dlarray(w), ml.dlarray(b))
    tx = torch.tensor(x.transpose(3, 2, 0, 1).copy(), requires_grad=True)
    # grouped MATLAB FH FW Cg Fg G -> torch (G*Fg, Cg, FH, FW)
    tw = torch.tensor(w.transpose(4, 3, 2, 0, 1).reshape(6, 2, 3, 2).copy(),
                      requires_grad=True)
    tb = torch.tensor(b, requires_grad=True)
    ty = torch.nn.functional.conv2d(tx, tw, tb, stride=2, padding=1, dilation=(1, 2),
                                    groups=2)
    (ty * ty).sum().backward()
    np.testing.assert_allclose(float(ml.extractdata(loss)), float((ty * ty).sum().detach()),
                               rtol=1e-12)
    np.testing.assert_allclose(ml.extractdata(gX), tx.grad.numpy().transpose(2, 3, 1, 0),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ml.extractdata(gW),
                               tw.grad.numpy().reshape(2, 3, 2, 3, 2).transpose(3, 4, 2, 1, 0),
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(ml.extractdata(gB), tb.grad.numpy(), rtol=1e-10)


# --------------------------------------------------------------------------- layers

LAYER_CASES = [
    (lambda: ml.convolution2dLayer([3, 2], 4, Padding="same", Stride=2), "SSCB", (6, 5, 3, 2)),
    (lambda: ml.convolution2dLayer(3, 2, Padding=1, PaddingValue="symmetric-exclude-edge"),
     "SSCB", (5, 5, 2, 2)),
    (lambda: ml.convolution2dLayer(3, 2, Padding="same"), "SCBT", (6, 2, 2, 5)),   # over S, T
    (lambda: ml.convolution1dLayer(3, 4, Padding="causal", DilationFactor=2), "CBT",
     (3, 2, 9)),                                                                  # over T
    (lambda: ml.convolution1dLayer(2, 3, Stride=2), "SCBT", (7, 2, 2, 3)),       # T folded
    (lambda: ml.convolution3dLayer(2, 2, Padding="same"), "SSSCB", (4, 3, 3, 2, 2)),
    (lambda: ml.groupedConvolution2dLayer(3, 2, 2, Padding="same"), "SSCB", (5, 4, 4, 2)),
    (lambda: ml.groupedConvolution2dLayer(3, 1, "channel-wise", Stride=2), "SSCB",
     (6, 6, 3, 2)),
    (lambda: ml.transposedConv2dLayer(3, 2, Stride=2, Cropping="same"), "SSCB", (3, 4, 3, 2)),
    (lambda: ml.transposedConv2dLayer([2, 3], 3, Stride=[2, 1], Cropping=[1, 0, 0, 1]), "SSCB",
     (3, 4, 2, 2)),
    (lambda: ml.transposedConv1dLayer(4, 2, Stride=3), "CBT", (2, 2, 4)),
    (lambda: ml.transposedConv3dLayer(2, 2, Stride=2), "SSSCB", (2, 3, 2, 2, 1)),
]


@pytest.mark.parametrize("make,fmt,shape", LAYER_CASES)
def test_conv_layers_differentiate(make, fmt, shape, rng):
    """A layer's forward inside dlfeval gives gradients for its input and learnables equal
    to finite differences of its (untraced, compiled) prediction."""
    layer = make()
    x = rng.standard_normal(shape)
    y_pred = layer.predict(ml.dlarray(x, fmt))                 # initializes the learnables
    layer.Weights = layer.Weights.astype(np.float64)
    layer.Bias = rng.standard_normal(layer.Bias.shape)
    y_pred = ml.extractdata(layer.predict(ml.dlarray(x, fmt)))
    g = rng.standard_normal(y_pred.shape)
    w0, b0 = layer.Weights.copy(), layer.Bias.copy()

    def traced(X, W, B):
        L = copy.copy(layer)
        object.__setattr__(L, "_values", dict(layer._values, Weights=W, Bias=B))
        Y = L._forward(X, "predict")
        assert Y.dims == fmt
        np.testing.assert_allclose(ml.extractdata(Y), y_pred, rtol=1e-12, atol=1e-12)
        return ml.dlgradient(ml.sum(Y * g, "all"), X, W, B)
    grads = ml.dlfeval(traced, ml.dlarray(x, fmt), ml.dlarray(w0), ml.dlarray(b0))

    def value(x_, w_, b_):
        L = copy.deepcopy(layer)
        L.Weights, L.Bias = w_, b_
        return float((ml.extractdata(L.predict(ml.dlarray(x_, fmt))) * g).sum())
    for i, got in enumerate(grads):
        num = numeric_gradient(value, [x, w0, b0], i)
        assert relative_error(ml.extractdata(got), num) < TOL, i


@pytest.mark.parametrize("fn,fmt,xs,ws", [
    (ml.dlconv, "CSSB", (3, 5, 4, 2), (3, 3, 3, 2)),
    (ml.dltranspconv, "SSBC", (4, 3, 2, 3), (2, 2, 2, 3)),
])
def test_data_format_in_any_order(fn, fmt, xs, ws, rng):
    # DataFormat labels the caller's order; the gradient comes back in that order
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    y = fn(ml.dlarray(x), w, 0, DataFormat=fmt)
    g = rng.standard_normal(y.shape)
    assert max(check(lambda X, W: ml.sum(fn(X, W, 0, DataFormat=fmt) * g, "all"),
                     [x, w], ["", ""])) < TOL
