"""Functional deep-learning operations (MATLAB_SEMANTICS §11.1-§11.2): fullyconnect, the
normalizations, the activations.  Each against a NumPy reference written from MATLAB's
formula (tests/nn_reference.py), finite differences in float64, and PyTorch autograd in the
tests that skip without torch."""
import numpy as np
import pytest
from conftest import assert_close

import mlayers as ml
import nn_reference as R
from mlayers.functional import activations as A

FD_TOL = 1e-7          # finite differences (float64) vs dlgradient, relative


def D(a, fmt):
    return ml.dlarray(a, fmt)


# --------------------------------------------------------------------------- activations

ELEMENTWISE = {
    "relu": (ml.relu, lambda x: np.maximum(x, 0)),
    "leakyrelu": (lambda X: ml.leakyrelu(X, 0.2), lambda x: np.maximum(0, x) + 0.2 * np.minimum(0, x)),
    "leakyrelu_default": (ml.leakyrelu, lambda x: np.maximum(0, x) + 0.01 * np.minimum(0, x)),
    "gelu": (ml.gelu, R.gelu),
    "gelu_tanh": (lambda X: ml.gelu(X, Approximation="tanh"), lambda x: R.gelu(x, "tanh")),
    "sigmoid": (ml.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "elu": (lambda X: A.elu(X, 0.7), lambda x: np.where(x > 0, x, 0.7 * (np.exp(x) - 1))),
    "swish": (A.swish, lambda x: x / (1 + np.exp(-x))),
    "softplus": (A.softplus, lambda x: np.log(1 + np.exp(x))),
    "clippedrelu": (lambda X: A.clippedrelu(X, 0.5), lambda x: np.minimum(np.maximum(x, 0), 0.5)),
}


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
@pytest.mark.parametrize("fmt, shape", [("SSCB", (4, 3, 2, 2)), ("CBT", (3, 2, 4)), ("", (5, 3))])
def test_elementwise_forward(name, fmt, shape, dtype, rng):
    op, ref = ELEMENTWISE[name]
    x = rng.standard_normal(shape).astype(dtype)
    Y = op(D(x, fmt))
    assert Y.dims == fmt and Y.dtype == dtype and Y.shape == x.shape
    assert_close(Y.data, ref(x.astype(np.float64)), dtype)


@pytest.mark.parametrize("name", sorted(ELEMENTWISE))
def test_elementwise_gradient(name, rng):
    op, _ = ELEMENTWISE[name]
    x = rng.standard_normal((3, 4, 2)) * 2
    x[np.abs(x) < 1e-3] = 0.3          # keep away from the kinks
    x[np.abs(x - 0.5) < 1e-3] = 0.3
    err, = R.gradcheck(op, [x], ["SCB"], rng)
    assert err < FD_TOL


def test_relu_nan_propagates_and_kinks():
    x = np.array([[np.nan, -1.0, 0.0, 2.0, np.inf, -np.inf]])
    y = ml.relu(D(x, "CB")).data
    assert np.isnan(y[0, 0]) and y[0, 1:].tolist() == [0, 0, 2, np.inf, 0]
    y = ml.leakyrelu(D(x, "CB"), 0.5).data
    assert np.isnan(y[0, 0]) and y[0, 1:].tolist() == [-0.5, 0, 2, np.inf, -np.inf]


def test_prelu_channelwise_alpha_and_gradient(rng):
    x = rng.standard_normal((3, 2, 4, 2))
    alpha = rng.random((1, 1, 4))
    Y = A.prelu(D(x, "SSCB"), alpha)
    ref = np.maximum(x, 0) + alpha.reshape(1, 1, 4, 1) * np.minimum(x, 0)
    assert_close(Y.data, ref, np.float64)
    errs = R.gradcheck(A.prelu, [x, alpha], ["SSCB", ""], rng)
    assert max(errs) < FD_TOL


def test_activation_errors():
    with pytest.raises(TypeError, match="relu: X must be a real single or double array"):
        ml.relu(np.array([True, False]))
    with pytest.raises(ValueError, match="leakyrelu: scaleFactor must be a finite real scalar"):
        ml.leakyrelu(D(np.ones((2, 2)), "CB"), np.nan)
    with pytest.raises(ValueError, match="gelu: Approximation"):
        ml.gelu(D(np.ones((2, 2)), "CB"), Approximation="erf")
    with pytest.raises(ValueError, match="softmax: X must have a channel"):
        ml.softmax(D(np.ones((2, 2)), "SB"))
    with pytest.raises(ValueError, match="softmax: X must be a formatted dlarray, or "
                                         "DataFormat"):
        ml.softmax(np.ones((2, 2)))


@pytest.mark.parametrize("fmt, shape", [("CB", (5, 3)), ("SSCB", (3, 4, 5, 2)),
                                        ("CBT", (4, 2, 3)), ("SCBT", (3, 4, 2, 2))])
def test_softmax_forward(fmt, shape, dtype, rng):
    x = (rng.standard_normal(shape) * 3).astype(dtype)
    Y = ml.softmax(D(x, fmt))
    assert Y.dims == fmt and Y.dtype == dtype
    assert_close(Y.data, R.softmax(x.astype(np.float64), fmt.index("C")), dtype)


def test_softmax_dataformat_and_gradient(rng):
    x = rng.standard_normal((2, 5, 3))           # B x C x T, unformatted
    Y = ml.softmax(x, DataFormat="BCT")
    assert Y.dims == "" and Y.shape == x.shape
    assert_close(Y.data, R.softmax(x, 1), np.float64)
    assert max(R.gradcheck(lambda X: ml.softmax(X, DataFormat="BCT"), [x], [""], rng)) < FD_TOL
    assert max(R.gradcheck(ml.softmax, [x.transpose(1, 0, 2)], ["CBT"], rng)) < FD_TOL


def test_softmax_large_values_do_not_overflow():
    Y = ml.softmax(D(np.array([[1000.0, 0.0], [1000.0, -1000.0]]), "CB"))
    assert np.allclose(Y.data, [[0.5, 1], [0.5, 0]])


# --------------------------------------------------------------------------- fullyconnect

def test_fullyconnect_matlab_example_and_column_major():
    X = D(np.random.default_rng(0).random((12, 12, 32, 1)), "SSCB")
    Y = ml.fullyconnect(X, np.ones((10, 12, 12, 32)), np.ones((10, 1)))
    assert Y.dims == "CB" and Y.shape == (10, 1)
    assert np.allclose(Y.data, X.data.sum() + 1)
    x = np.zeros((2, 2, 1, 1))
    x[:, :, 0, 0] = [[1, 2], [3, 4]]
    assert ml.fullyconnect(D(x, "SSCB"), np.array([[1, 10, 100, 1000]]), 0).data[0, 0] == 4231


@pytest.mark.parametrize("fmt, shape, wtail", [
    ("SSCB", (3, 2, 4, 5), (3, 2, 4)), ("SSCB", (3, 2, 4, 5), (24,)), ("CB", (6, 4), (6,)),
    ("CBT", (6, 3, 4), (6,)), ("SCB", (5, 2, 3), (10,)), ("SSSCB", (2, 2, 2, 3, 2), (24,))])
def test_fullyconnect_forward(fmt, shape, wtail, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((7,) + wtail).astype(dtype)
    b = rng.standard_normal((7, 1)).astype(dtype)
    Y = ml.fullyconnect(D(x, fmt), w, b)
    assert Y.dims == ("CBT" if "T" in fmt else "CB") and Y.dtype == dtype
    c = fmt.index("C")
    ref = R.fullyconnect(x.reshape(x.shape[:c + 2] + (-1,), order="F")
                         .reshape(x.shape[:c + 1] + (-1,), order="F"), w, b)
    assert_close(Y.data.reshape(7, -1, order="F"), ref, dtype, fan_in=int(np.prod(wtail)))


def test_fullyconnect_dataformat_and_gradients(rng):
    x = rng.standard_normal((3, 4, 2))           # B x C x T
    w = rng.standard_normal((5, 4))
    b = rng.standard_normal((5, 1))
    Y = ml.fullyconnect(x, w, b, DataFormat="BCT")
    assert Y.dims == "" and Y.shape == (5, 3, 2)
    errs = R.gradcheck(lambda X, W, B: ml.fullyconnect(X, W, B, DataFormat="BCT"),
                       [x, w, b], ["", "", ""], rng)
    assert max(errs) < FD_TOL
    errs = R.gradcheck(ml.fullyconnect, [rng.standard_normal((3, 2, 4, 2)),
                                         rng.standard_normal((5, 3, 2, 4)),
                                         rng.standard_normal((5, 1))],
                       ["SSCB", "", ""], rng)
    assert max(errs) < FD_TOL


def test_fullyconnect_errors():
    X = D(np.ones((2, 2, 3, 1)), "SSCB")
    with pytest.raises(ValueError, match=r"fullyconnect: weights must be OutputSize×12"):
        ml.fullyconnect(X, np.ones((4, 5)), 0)
    with pytest.raises(ValueError, match="fullyconnect: bias must have OutputSize"):
        ml.fullyconnect(X, np.ones((4, 12)), np.ones(3))
    with pytest.raises(ValueError, match="fullyconnect: X must be a formatted"):
        ml.fullyconnect(np.ones((4, 2)), np.ones((4, 4)), 0)


# --------------------------------------------------------------------------- batchnorm

BN_CASES = [("SSCB", (4, 3, 5, 2)), ("CB", (4, 6)), ("CBT", (3, 2, 4)), ("SCB", (5, 3, 2)),
            ("SSCBT", (2, 3, 2, 2, 2)), ("SSSCB", (2, 2, 3, 2, 2))]


def _pshape(fmt, c):
    ns = fmt.count("S")
    return (c, 1) if ns == 0 else (1,) * ns + (c,)


@pytest.mark.parametrize("fmt, shape", BN_CASES)
def test_batchnorm_training_forms(fmt, shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype) * 2 + 1
    c = fmt.index("C")
    nc = shape[c]
    off = rng.standard_normal(_pshape(fmt, nc)).astype(dtype)
    sc = rng.standard_normal(_pshape(fmt, nc)).astype(dtype)
    yref, mu, var = R.bn(x.astype(np.float64), c, off, sc)
    Y = ml.batchnorm(D(x, fmt), off, sc)
    assert Y.dims == fmt and Y.dtype == dtype
    assert_close(Y.data, yref, dtype, fan_in=x.size // nc)
    Y, m, v = ml.batchnorm(D(x, fmt), off, sc, nargout=3)
    assert m.shape == off.shape and v.shape == off.shape
    assert_close(m.data.ravel(), mu, dtype, fan_in=x.size // nc)
    assert_close(v.data.ravel(), var, dtype, fan_in=x.size // nc)
    run_m = rng.standard_normal(nc).astype(dtype)
    run_v = rng.random(nc).astype(dtype)
    Y2, m2, v2 = ml.batchnorm(D(x, fmt), off, sc, run_m, run_v, MeanDecay=0.3,
                              VarianceDecay=0.2, nargout=3)
    assert_close(Y2.data, yref, dtype, fan_in=x.size // nc)
    assert_close(m2.data.ravel(), 0.3 * mu + 0.7 * run_m, dtype, fan_in=x.size // nc)
    assert_close(v2.data.ravel(), 0.2 * var + 0.8 * run_v, dtype, fan_in=x.size // nc)
    with ml.package_defaults(batchnorm_variance="unbiased"):
        _, _, vu = ml.batchnorm(D(x, fmt), off, sc, nargout=3)
    n = x.size // nc
    assert_close(vu.data.ravel(), var * n / (n - 1), dtype, fan_in=n)


@pytest.mark.parametrize("fmt, shape", BN_CASES[:3])
def test_batchnorm_inference_form(fmt, shape, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    c = fmt.index("C")
    nc = shape[c]
    off, sc = rng.standard_normal(nc).astype(dtype), rng.standard_normal(nc).astype(dtype)
    mean, var = rng.standard_normal(nc).astype(dtype), rng.random(nc).astype(dtype) + 0.1
    Y = ml.batchnorm(D(x, fmt), off, sc, mean, var, Epsilon=1e-3)
    yref, _, _ = R.bn(x.astype(np.float64), c, off, sc, 1e-3, mean, var)
    assert Y.dims == fmt and Y.dtype == dtype
    assert_close(Y.data, yref, dtype, fan_in=4)


def test_batchnorm_dataformat(rng):
    x = rng.standard_normal((2, 3, 4, 5))        # B x C x S x S unformatted
    off, sc = rng.standard_normal(3), rng.standard_normal(3)
    Y = ml.batchnorm(x, off, sc, DataFormat="BCSS")
    assert Y.dims == "" and Y.shape == x.shape
    ref, _, _ = R.bn(x, 1, off, sc)
    assert_close(Y.data, ref, np.float64, fan_in=40)


def test_batchnorm_gradients(rng):
    x = rng.standard_normal((3, 2, 3, 2))
    off, sc = rng.standard_normal((1, 1, 3)), rng.standard_normal((1, 1, 3))
    mu, var = rng.standard_normal(3), rng.random(3) + 0.5
    f = ["SSCB", "", ""]
    assert max(R.gradcheck(ml.batchnorm, [x, off, sc], f, rng)) < FD_TOL
    assert max(R.gradcheck(lambda *a: ml.batchnorm(*a, nargout=3), [x, off, sc], f,
                           rng)) < FD_TOL
    assert max(R.gradcheck(ml.batchnorm, [x, off, sc, mu, var], f + ["", ""], rng)) < FD_TOL
    assert max(R.gradcheck(lambda *a: ml.batchnorm(*a, MeanDecay=0.3, nargout=3),
                           [x, off, sc, mu, var], f + ["", ""], rng)) < FD_TOL
    assert max(R.gradcheck(lambda X, o, s: ml.batchnorm(X, o, s, DataFormat="UUCB"),
                           [x, off, sc], ["", "", ""], rng)) < FD_TOL


def test_batchnorm_errors():
    X = D(np.ones((2, 2, 3, 2)), "SSCB")
    with pytest.raises(ValueError, match=r"batchnorm: offset must be a vector with one "
                                         r"element per channel \(3\)"):
        ml.batchnorm(X, np.zeros(4), np.ones(3))
    with pytest.raises(ValueError, match="batchnorm: Epsilon must be a positive"):
        ml.batchnorm(X, np.zeros(3), np.ones(3), Epsilon=0)
    with pytest.raises(ValueError, match=r"batchnorm: MeanDecay must be a real scalar in "
                                         r"the range \[0, 1\]"):
        ml.batchnorm(X, np.zeros(3), np.ones(3), np.zeros(3), np.ones(3), MeanDecay=2,
                     nargout=3)
    with pytest.raises(ValueError, match="batchnorm: X must have a channel"):
        ml.batchnorm(D(np.ones((2, 3)), "SB"), 0, 1)
    with pytest.raises(TypeError, match="batchnorm: the running variance must follow"):
        ml.batchnorm(X, np.zeros(3), np.ones(3), np.zeros(3))


def test_batchnorm_nan_propagates():
    x = np.ones((2, 2, 2, 2))
    x[0, 0, 0, 0] = np.nan
    Y = ml.batchnorm(D(x, "SSCB"), np.zeros(2), np.ones(2)).data
    assert np.isnan(Y[:, :, 0]).all() and np.isfinite(Y[:, :, 1]).all()


# --------------------------------------------------------------------------- other norms

@pytest.mark.parametrize("mode, fmt, shape, axes", [
    ("batch-excluded", "SSCB", (3, 2, 4, 2), (0, 1, 2)),
    ("auto", "SSCB", (3, 2, 4, 2), (0, 1, 2)),           # >= 2 S: spatial-channel
    ("spatial-channel", "SCBT", (3, 4, 2, 2), (0, 1)),
    ("auto", "SCBT", (3, 4, 2, 2), (1,)),                # one S: channel-only
    ("channel-only", "CBT", (4, 2, 3), (0,)),
    ("batch-excluded", "CBT", (4, 2, 3), (0, 2)),
])
def test_layernorm(mode, fmt, shape, axes, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    c = fmt.index("C")
    off, sc = rng.standard_normal(shape[c]).astype(dtype), rng.standard_normal(shape[c]).astype(dtype)
    Y = ml.layernorm(D(x, fmt), off, sc, OperationDimension=mode)
    assert Y.dims == fmt and Y.dtype == dtype
    assert_close(Y.data, R.normalize_over(x.astype(np.float64), axes, c, off, sc), dtype,
                 fan_in=64)
    errs = R.gradcheck(lambda X, o, s: ml.layernorm(X, o, s, OperationDimension=mode),
                       [x.astype(np.float64), off, sc], [fmt, "", ""], rng)
    assert max(errs) < FD_TOL


@pytest.mark.parametrize("groups, g", [(2, 2), ("all-channels", 1), ("channel-wise", 4),
                                       (4, 4), (1, 1)])
def test_groupnorm(groups, g, dtype, rng):
    x = rng.standard_normal((3, 2, 4, 2)).astype(dtype)
    off, sc = rng.standard_normal(4).astype(dtype), rng.standard_normal((1, 1, 4)).astype(dtype)
    Y = ml.groupnorm(D(x, "SSCB"), groups, off, sc)
    assert Y.dims == "SSCB" and Y.dtype == dtype
    assert_close(Y.data, R.groupnorm(x, 2, 3, g, off, sc), dtype, fan_in=24)
    errs = R.gradcheck(lambda X, o, s: ml.groupnorm(X, groups, o, s),
                       [x.astype(np.float64), off, sc], ["SSCB", "", ""], rng)
    assert max(errs) < FD_TOL


def test_groupnorm_sequence_and_errors(rng):
    x = rng.standard_normal((6, 2, 3))           # CBT: statistics over T and the group
    Y = ml.groupnorm(D(x, "CBT"), 3, np.zeros(6), np.ones(6))
    ref = R.groupnorm(x, 0, 1, 3, np.zeros(6), np.ones(6))
    assert_close(Y.data, ref, np.float64, fan_in=6)
    with pytest.raises(ValueError, match=r"groupnorm: numGroups must divide the number of "
                                         r"channels \(6\), got 4"):
        ml.groupnorm(D(x, "CBT"), 4, np.zeros(6), np.ones(6))
    with pytest.raises(ValueError, match="groupnorm: numGroups must be"):
        ml.groupnorm(D(x, "CBT"), "per-channel", np.zeros(6), np.ones(6))


@pytest.mark.parametrize("fmt, shape, axes", [("SSCB", (3, 4, 2, 2), (0, 1)),
                                              ("SCBT", (3, 2, 2, 4), (0, 3))])
def test_instancenorm(fmt, shape, axes, dtype, rng):
    x = rng.standard_normal(shape).astype(dtype)
    c = fmt.index("C")
    off, sc = rng.standard_normal(shape[c]).astype(dtype), rng.standard_normal(shape[c]).astype(dtype)
    Y = ml.instancenorm(D(x, fmt), off, sc)
    assert_close(Y.data, R.normalize_over(x.astype(np.float64), axes, c, off, sc), dtype,
                 fan_in=16)
    errs = R.gradcheck(ml.instancenorm, [x.astype(np.float64), off, sc], [fmt, "", ""], rng)
    assert max(errs) < FD_TOL


@pytest.mark.parametrize("w", [1, 2, 3, 4, 5, 8])
def test_crosschannelnorm(w, dtype, rng):
    x = (rng.standard_normal((3, 2, 6, 2)) * 10).astype(dtype)
    Y = ml.crosschannelnorm(D(x, "SSCB"), w, Alpha=0.05, Beta=0.6, K=1.5)
    assert Y.dims == "SSCB" and Y.dtype == dtype
    assert_close(Y.data, R.crosschannel(x, 2, w, 0.05, 0.6, 1.5), dtype, fan_in=w)
    Y = ml.crosschannelnorm(D(x, "SSCB"), w)
    assert_close(Y.data, R.crosschannel(x, 2, w), dtype, fan_in=w)
    errs = R.gradcheck(lambda X: ml.crosschannelnorm(X, w, Alpha=0.05, Beta=0.6, K=1.5),
                       [x.astype(np.float64) / 10], ["SSCB"], rng)
    assert max(errs) < FD_TOL


def test_normalization_dataformat(rng):
    x = rng.standard_normal((2, 4, 3))          # B x C x T
    for op in (lambda X, **k: ml.layernorm(X, np.zeros(4), np.ones(4), **k),
               lambda X, **k: ml.instancenorm(X, np.zeros(4), np.ones(4), **k),
               lambda X, **k: ml.groupnorm(X, 2, np.zeros(4), np.ones(4), **k),
               lambda X, **k: ml.crosschannelnorm(X, 3, **k)):
        Y = op(x, DataFormat="BCT")
        ref = op(D(x.transpose(1, 0, 2), "CBT"))
        assert Y.dims == "" and Y.shape == x.shape
        assert np.allclose(Y.data, ref.data.transpose(1, 0, 2))


# --------------------------------------------------------------------------- threads

@pytest.mark.parametrize("dtype_", [np.float32, np.float64])
def test_kernels_independent_of_thread_count(dtype_, rng):
    x = np.asfortranarray(rng.standard_normal((40, 30, 8, 6)).astype(dtype_))
    off, sc = rng.standard_normal(8).astype(dtype_), rng.standard_normal(8).astype(dtype_)
    R_ = rng.standard_normal(x.shape)

    def run():
        X = D(x, "SSCB")
        outs = [ml.batchnorm(X, off, sc, nargout=3), ml.softmax(X), ml.relu(X),
                ml.batchnorm(X, off, sc, np.zeros(8), np.ones(8)), ml.layernorm(X, off, sc),
                ml.groupnorm(X, 4, off, sc), ml.instancenorm(X, off, sc)]

        def grads(X):
            loss = ml.sum(ml.batchnorm(X, off, sc) * R_, "all") \
                + ml.sum(ml.softmax(X) * R_, "all") + ml.sum(ml.relu(X) * R_, "all") \
                + ml.sum(ml.layernorm(X, off, sc) * R_, "all") \
                + ml.sum(ml.groupnorm(X, 2, off, sc) * R_, "all") \
                + ml.sum(ml.batchnorm(X, off, sc, np.zeros(8), np.ones(8)) * R_, "all")
            return ml.dlgradient(loss, X)
        return [o.data for out in outs for o in (out if isinstance(out, tuple) else (out,))] \
            + [ml.dlfeval(grads, X).data]
    with ml.threads(1):
        one = run()
    with ml.threads(2):
        two = run()
    for a, b in zip(one, two):
        assert np.array_equal(a, b, equal_nan=True)


def test_c_ordered_input_gives_the_same_result(rng):
    x = rng.standard_normal((5, 4, 3, 2))
    xc, xf = np.ascontiguousarray(x), np.asfortranarray(x)
    for op in (lambda X: ml.batchnorm(X, np.zeros(3), np.ones(3)), ml.softmax, ml.relu):
        assert np.array_equal(op(D(xc, "SSCB")).data, op(D(xf, "SSCB")).data)


# --------------------------------------------------------------------------- torch

def _torch():
    return pytest.importorskip("torch")


def _torch_grads(torch, fn, arrays, dtype, seed=0):
    """(outputs, grads) of sum(fn(*tensors) * R) in torch."""
    ts = [torch.tensor(np.ascontiguousarray(a), dtype=torch.float32 if dtype == np.float32
                       else torch.float64, requires_grad=True) for a in arrays]
    y = fn(*ts)
    r = torch.tensor(np.random.default_rng(seed).standard_normal(tuple(y.shape)), dtype=y.dtype)
    (y * r).sum().backward()
    return y.detach().numpy(), [t.grad.numpy() for t in ts], r.numpy()


def _ml_grads(fn, arrays, fmts, r):
    def f(*xs):
        y = fn(*xs)
        loss = ml.sum(y * r, "all")
        return y, ml.dlgradient(loss, *[x for x, fm in zip(xs, fmts) if fm is not None])
    args = [D(a, fm) if fm is not None else a for a, fm in zip(arrays, fmts)]
    y, g = ml.dlfeval(f, *args)
    return y.data, [a.data for a in (g if isinstance(g, tuple) else (g,))]


TOL = {np.float32: 2e-4, np.float64: 1e-10}


def _nchw(x):          # MATLAB H x W x C x N  ->  torch N x C x H x W
    return x.transpose(3, 2, 0, 1)


@pytest.mark.parametrize("name", ["relu", "leakyrelu", "gelu", "gelu_tanh", "sigmoid", "elu",
                                  "swish", "softplus"])
def test_activations_vs_torch(name, dtype, rng):
    torch = _torch()
    F = torch.nn.functional
    tfn = {"relu": F.relu, "leakyrelu": lambda t: F.leaky_relu(t, 0.2), "gelu": F.gelu,
           "gelu_tanh": lambda t: F.gelu(t, approximate="tanh"), "sigmoid": torch.sigmoid,
           "elu": lambda t: F.elu(t, 0.7), "swish": F.silu, "softplus": F.softplus}[name]
    x = rng.standard_normal((4, 3, 2, 2)).astype(dtype)
    ty, (tg,), r = _torch_grads(torch, tfn, [x], dtype)
    y, (g,) = _ml_grads(ELEMENTWISE[name][0], [x], ["SSCB"], r)
    assert R.relative_error(y, ty) < TOL[dtype] and R.relative_error(g, tg) < TOL[dtype]


def test_softmax_vs_torch(dtype, rng):
    torch = _torch()
    x = rng.standard_normal((4, 3, 5, 2)).astype(dtype)
    ty, (tg,), r = _torch_grads(torch, lambda t: torch.softmax(t, 1), [_nchw(x)], dtype)
    y, (g,) = _ml_grads(ml.softmax, [x], ["SSCB"], _nchw(r).transpose(2, 3, 1, 0)
                        if False else r.transpose(2, 3, 1, 0))
    assert R.relative_error(y, ty.transpose(2, 3, 1, 0)) < TOL[dtype]
    assert R.relative_error(g, tg.transpose(2, 3, 1, 0)) < TOL[dtype]


def test_batchnorm_vs_torch(dtype, rng):
    torch = _torch()
    x = rng.standard_normal((5, 4, 3, 2)).astype(dtype)
    off, sc = rng.standard_normal(3).astype(dtype), rng.standard_normal(3).astype(dtype)

    def tbn(t, o, s):
        return torch.nn.functional.batch_norm(t, None, None, s, o, training=True, eps=1e-5)
    ty, tg, r = _torch_grads(torch, tbn, [_nchw(x), off, sc], dtype)
    y, g = _ml_grads(ml.batchnorm, [x, off, sc], ["SSCB", "", ""], r.transpose(2, 3, 1, 0))
    assert R.relative_error(y, ty.transpose(2, 3, 1, 0)) < TOL[dtype]
    assert R.relative_error(g[0], tg[0].transpose(2, 3, 1, 0)) < TOL[dtype]
    assert R.relative_error(g[1], tg[1]) < TOL[dtype]
    assert R.relative_error(g[2], tg[2]) < TOL[dtype]


def test_norms_vs_torch(dtype, rng):
    torch = _torch()
    F = torch.nn.functional
    x = rng.standard_normal((5, 4, 6, 2)).astype(dtype)
    off, sc = rng.standard_normal(6).astype(dtype), rng.standard_normal(6).astype(dtype)
    cases = [
        (lambda t, o, s: F.group_norm(t, 3, s, o, eps=1e-5),
         lambda X, o, s: ml.groupnorm(X, 3, o, s)),
        (lambda t, o, s: F.instance_norm(t, weight=s, bias=o, eps=1e-5),
         ml.instancenorm),
        (lambda t, o, s: F.layer_norm(t.permute(0, 2, 3, 1), (5, 4, 6), eps=1e-5).permute(
            0, 3, 1, 2) * s.reshape(1, -1, 1, 1) + o.reshape(1, -1, 1, 1),
         lambda X, o, s: ml.layernorm(X, o, s, OperationDimension="batch-excluded")),
    ]
    for tfn, mfn in cases:
        ty, tg, r = _torch_grads(torch, tfn, [_nchw(x), off, sc], dtype)
        y, g = _ml_grads(mfn, [x, off, sc], ["SSCB", "", ""], r.transpose(2, 3, 1, 0))
        assert R.relative_error(y, ty.transpose(2, 3, 1, 0)) < TOL[dtype]
        assert R.relative_error(g[0], tg[0].transpose(2, 3, 1, 0)) < TOL[dtype]
        assert R.relative_error(g[1], tg[1]) < TOL[dtype]
        assert R.relative_error(g[2], tg[2]) < TOL[dtype]


def test_crosschannelnorm_vs_torch(dtype, rng):
    torch = _torch()
    x = rng.standard_normal((4, 3, 7, 2)).astype(dtype)
    for w in (3, 5):
        ty, (tg,), r = _torch_grads(torch, lambda t: torch.nn.functional.local_response_norm(
            t, w, alpha=0.1, beta=0.75, k=2.0), [_nchw(x)], dtype)
        y, (g,) = _ml_grads(lambda X: ml.crosschannelnorm(X, w, Alpha=0.1), [x], ["SSCB"],
                            r.transpose(2, 3, 1, 0))
        assert R.relative_error(y, ty.transpose(2, 3, 1, 0)) < TOL[dtype]
        assert R.relative_error(g, tg.transpose(2, 3, 1, 0)) < TOL[dtype]


def test_fullyconnect_vs_torch(dtype, rng):
    torch = _torch()
    x = rng.standard_normal((6, 4)).astype(dtype)          # C x B
    w, b = rng.standard_normal((3, 6)).astype(dtype), rng.standard_normal(3).astype(dtype)
    ty, tg, r = _torch_grads(torch, lambda t, W, B: torch.nn.functional.linear(t, W, B),
                             [x.T, w, b], dtype)
    y, g = _ml_grads(ml.fullyconnect, [x, w, b], ["CB", "", ""], r.T)
    assert R.relative_error(y, ty.T) < TOL[dtype]
    assert R.relative_error(g[0], tg[0].T) < TOL[dtype]
    assert R.relative_error(g[1], tg[1]) < TOL[dtype]
    assert R.relative_error(g[2], tg[2]) < TOL[dtype]


# --------------------------------------------------------------------------- layers

def test_batchnorm_layer_forward_train_moving_statistics(rng):
    layer = ml.batchNormalizationLayer(MeanDecay=0.25, VarianceDecay=0.5)
    x = rng.standard_normal((4, 3, 2, 5)).astype(np.float32)
    X = D(x, "SSCB")
    Y, state = layer._forward_train(X, "forward")
    yref, mu, var = R.bn(x.astype(np.float64), 2, np.zeros(2), np.ones(2))
    assert_close(Y.data, yref, np.float32, fan_in=60)
    assert_close(np.ravel(ml.extractdata(state["TrainedMean"])), 0.25 * mu, np.float32, 60)
    assert_close(np.ravel(ml.extractdata(state["TrainedVariance"])), 0.5 * var + 0.5,
                 np.float32, 60)
    P = layer.predict(X)          # predict uses the (initial) trained statistics
    assert_close(P.data, x / np.sqrt(1 + 1e-5), np.float32)


def test_fc_layer_calls_fullyconnect(rng):
    layer = ml.fullyConnectedLayer(3)
    x = rng.standard_normal((2, 2, 3)).astype(np.float32)    # SSC: one observation
    Y = layer.predict(D(x, "SSC"))
    assert Y.dims == "C" and Y.shape == (3,)
    w, b = layer.Weights, layer.Bias
    assert_close(Y.data, w @ x.reshape(-1, order="F") + b.ravel(), np.float32, fan_in=12)


# --------------------------------------------------------------------------- properties

from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 9), c=st.integers(1, 9), n=st.integers(1, 5),
       scale=st.floats(0.01, 100), shift=st.floats(-100, 100), seed=st.integers(0, 2**16))
def test_batchnorm_and_softmax_properties(h, c, n, scale, shift, seed):
    """batchnorm output has per-channel mean offset and (biased) std |scale| (up to eps);
    softmax columns are probabilities summing to 1, invariant to a per-column shift;
    both match the NumPy references for any layout size (kernel edge cases: 1 row, 1
    channel, rows shorter than the 8-way partial sums)."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((h, 3, c, n)) * scale + shift
    off, sc = rng.standard_normal(c), rng.standard_normal(c)
    Y = ml.batchnorm(D(x, "SSCB"), off, sc).data
    ref, mu, var = R.bn(x, 2, off, sc)
    # Conditioning: any summation order rounds the mean by up to N*eps*max|x| (standard
    # bound), and the output amplifies that by |scale|/std: with a large shift and a small
    # spread this dominates both implementations' error, whichever is "exact".
    a = np.abs(sc) / np.sqrt(var.reshape(-1) + 1e-5)
    cond = (x.size // c) * np.finfo(np.float64).eps * np.abs(x).max() * a.max()
    np.testing.assert_allclose(Y, ref, rtol=1e-12, atol=1e-14 * x.size + cond)
    if h * 3 * n > 1:
        m = Y.mean(axis=(0, 1, 3))
        assert np.allclose(m, off, atol=1e-9 * (1 + np.abs(sc).max()))
    S = ml.softmax(D(x, "SSCB")).data
    assert np.allclose(S.sum(axis=2), 1) and (S >= 0).all()
    assert np.allclose(ml.softmax(D(x + rng.standard_normal((h, 3, 1, n)) * 5, "SSCB")).data, S)
    assert_close(S, R.softmax(x, 2), np.float64)


def test_network_gradients_match_finite_differences(rng):
    """conv -> batchnorm -> relu -> fullyconnect -> softmax -> crossentropy in training mode
    (batch statistics): dlgradient of every learnable against central differences of the
    whole network's loss (float64), at a few elements per learnable."""
    w = rng.standard_normal((3, 3, 3, 4)) * 0.5
    params = {"cw": w, "cb": rng.standard_normal((1, 1, 4)),
              "off": rng.standard_normal((1, 1, 4)), "sc": rng.random((1, 1, 4)) + 0.5,
              "fw": rng.standard_normal((5, 6 * 6 * 4)) * 0.2, "fb": rng.standard_normal((5, 1))}
    x = rng.standard_normal((6, 6, 3, 5))
    t = np.eye(5)[:, rng.integers(0, 5, 5)]

    def build(p):
        return ml.dlnetwork([
            ml.imageInputLayer([6, 6, 3], Normalization="none"),
            ml.convolution2dLayer(3, 4, Padding="same", Weights=p["cw"], Bias=p["cb"]),
            ml.batchNormalizationLayer(Offset=p["off"], Scale=p["sc"],
                                       TrainedMean=np.zeros((1, 1, 4)),
                                       TrainedVariance=np.ones((1, 1, 4))),
            ml.reluLayer(), ml.fullyConnectedLayer(5, Weights=p["fw"], Bias=p["fb"]),
            ml.softmaxLayer()])

    def loss_value(p):
        return float(ml.crossentropy(ml.forward(build(p), D(x, "SSCB")), t).data)

    def grads(net, X):
        loss = ml.crossentropy(ml.forward(net, X), t)
        return ml.dlgradient(loss, net.Learnables)
    g = ml.dlfeval(grads, build(params), D(x, "SSCB"))
    names = {("conv", "Weights"): "cw", ("conv", "Bias"): "cb", ("batchnorm", "Offset"): "off",
             ("batchnorm", "Scale"): "sc", ("fc", "Weights"): "fw", ("fc", "Bias"): "fb"}
    rows = list(zip(g.Layer, g.Parameter, g.Value))
    assert len(rows) == 6
    eps = 1e-6
    for layer, param, value in rows:
        key = names[(str(layer), str(param))]
        got = np.asarray(ml.extractdata(value), dtype=np.float64).reshape(params[key].shape)
        assert got.dtype == np.float64
        flat_idx = rng.choice(params[key].size, size=min(4, params[key].size), replace=False)
        for k in flat_idx:
            idx = np.unravel_index(k, params[key].shape)
            p_plus = {n: a.copy() for n, a in params.items()}
            p_minus = {n: a.copy() for n, a in params.items()}
            p_plus[key][idx] += eps
            p_minus[key][idx] -= eps
            num = (loss_value(p_plus) - loss_value(p_minus)) / (2 * eps)
            assert abs(got[idx] - num) < 1e-7 * max(1.0, abs(num)), (key, idx, got[idx], num)
    # batch normalization after a convolution cancels the convolution's bias
    cb = [v for lay, par, v in rows if (str(lay), str(par)) == ("conv", "Bias")][0]
    assert np.abs(ml.extractdata(cb)).max() < 1e-12


def test_empty_batch():
    X = D(np.zeros((4, 4, 3, 0), np.float32), "SSCB")
    off, sc = np.zeros(3, np.float32), np.ones(3, np.float32)
    Y, mu, var = ml.batchnorm(X, off, sc, nargout=3)
    assert Y.shape == (4, 4, 3, 0) and np.isnan(mu.data).all() and np.isnan(var.data).all()
    for op in (lambda X: ml.batchnorm(X, off, sc, off, sc), lambda X: ml.layernorm(X, off, sc),
               lambda X: ml.groupnorm(X, 3, off, sc), ml.softmax, ml.relu,
               lambda X: ml.crosschannelnorm(X, 3)):
        assert op(X).shape == (4, 4, 3, 0)
    assert ml.fullyconnect(X, np.ones((2, 48), np.float32), 0).shape == (2, 0)


@settings(max_examples=20, deadline=None)
@given(h=st.integers(1, 7), g=st.integers(1, 4), cg=st.integers(1, 4), n=st.integers(1, 4),
       seed=st.integers(0, 2**16))
def test_group_kernels_property(h, g, cg, n, seed):
    """The compiled per-(observation, group) normalization against the loop reference for
    any group count and row length (layernorm = 1 group, instancenorm = C groups)."""
    rng = np.random.default_rng(seed)
    c = g * cg
    x = rng.standard_normal((h, 2, c, n)) * 3 + 1
    off, sc = rng.standard_normal(c), rng.standard_normal(c)
    X = D(x, "SSCB")
    assert_close(ml.groupnorm(X, g, off, sc).data, R.groupnorm(x, 2, 3, g, off, sc),
                 np.float64, fan_in=x.size)
    assert_close(ml.layernorm(X, off, sc).data, R.groupnorm(x, 2, 3, 1, off, sc),
                 np.float64, fan_in=x.size)
    assert_close(ml.instancenorm(X, off, sc).data, R.groupnorm(x, 2, 3, c, off, sc),
                 np.float64, fan_in=x.size)


@pytest.mark.parametrize("form", ["training", "inference"])
def test_batchnorm_float32_large_mean_keeps_its_digits(form):
    """y = a*(x - mean) + offset, not the folded a*x + (offset - a*mean): with a mean of
    1000 and a spread of 1, the folded form cancels ~1000x more digits in float32 (its
    float32 offset term alone rounds at ~6e-5 of 1000*a)."""
    rng = np.random.default_rng(0)
    x = (1000.0 + rng.standard_normal((6, 5, 3, 4))).astype(np.float32)
    off, sc = np.zeros(3, np.float32), np.ones(3, np.float32)
    if form == "training":
        Y = ml.batchnorm(D(x, "SSCB"), off, sc).data
        ref, _, _ = R.bn(x.astype(np.float64), 2, off, sc)
    else:
        mu = x.astype(np.float64).mean(axis=(0, 1, 3)).astype(np.float32)
        var = x.astype(np.float64).var(axis=(0, 1, 3)).astype(np.float32)
        Y = ml.batchnorm(D(x, "SSCB"), off, sc, mu, var).data
        ref, _, _ = R.bn(x.astype(np.float64), 2, off, sc, mean=mu, var=var)
    assert Y.dtype == np.float32
    # x - mean is exact in float32 (Sterbenz); then one product and one sum round
    assert np.abs(Y - ref).max() <= 4 * np.finfo(np.float32).eps * np.abs(ref).max()
