"""Numbers of the issue-16 layers: forward and backward against NumPy references written
here from the MATLAB formulas (MATLAB_SEMANTICS §11, §14.2, §16.5), in float32 and float64,
random sizes and options, every accepted format; PyTorch references in the ``torch``
tests at the end (skipped when torch is absent).

The backward is the gradient of ``sum(Y .* R)`` (R random) computed by ``dlfeval`` /
``dlgradient`` through the layer's forward, the network's traced contract: a copy of the
layer whose learnables are traced dlarrays.
"""
import copy

import numpy as np
import pytest
from scipy import special

import mlayers as ml
from mlayers import _rng

FORMATS = ("SSCB", "SCB", "CB", "CBT", "SSCBT", "SSSCB", "SCBT")
EPS1 = float(np.finfo(np.float32).eps)


def tol(dtype):
    return dict(rtol=2e-5, atol=2e-6) if dtype == np.float32 else dict(rtol=1e-11, atol=1e-13)


def random_shape(fmt, gen):
    return tuple(int(gen.integers(1, 5)) if d in "SBT" else int(gen.integers(2, 7))
                 for d in fmt)


def traced(layer, params):
    clone = copy.copy(layer)
    object.__setattr__(clone, "_values", {**layer._values, **params})
    object.__setattr__(clone, "_state", dict(layer._state))
    object.__setattr__(clone, "_memo", {})
    return clone


def run(layer, x, fmt, r=None, learnables=(), training=False, seed=None, extra=()):
    """(Y, dL/dX, {name: dL/dP}) for L = sum(Y .* r) through the layer's traced forward."""
    X = ml.dlarray._from_canonical(x, fmt)
    params = {n: ml.dlarray(np.asarray(layer._values[n])) for n in learnables}

    def model(X, P):
        if seed is not None:
            ml.rng(seed)
        Y = traced(layer, P)._run([X, *extra], training, "forward")[0][0]
        rr = r if r is not None else np.ones(Y.shape)
        loss = ml.sum(Y * rr.astype(Y.dtype), "all")
        gx, gp = ml.dlgradient(loss, X, P)
        return Y, gx, gp

    Y, gx, gp = ml.dlfeval(model, X, params)
    return Y, ml.extractdata(gx), {k: ml.extractdata(v) for k, v in gp.items()}


def check(layer, fmt, dtype, gen, f, df, shape=None, learnables=(), dparams=None,
          out_dims=None, x=None, grad_scale=1.0):
    """Forward f(x) and backward df(x, r) (float64 references) against the layer."""
    shape = shape or random_shape(fmt, gen)
    x = gen.standard_normal(shape).astype(dtype) * 2 if x is None else x
    y_ref = f(x.astype(np.float64))
    r = gen.standard_normal(y_ref.shape)
    Y, gx, gp = run(layer, x, fmt, r, learnables)
    assert Y.dims == (out_dims or fmt) and Y.dtype == dtype
    np.testing.assert_allclose(ml.extractdata(Y), y_ref, **tol(dtype))
    assert gx.dtype == dtype
    # grad_scale: the size of the gradient's terms before cancellation (a normalization's
    # 1/sqrt(var + Epsilon)); rounding errors scale with it
    t = tol(dtype)
    np.testing.assert_allclose(gx, df(x.astype(np.float64), r), rtol=t["rtol"],
                               atol=t["atol"] * grad_scale)
    for name, ref in (dparams or {}).items():
        # a parameter's gradient has the parameter's class (float32 PReLU Alpha by default)
        np.testing.assert_allclose(gp[name], ref(x.astype(np.float64), r),
                                   **tol(np.float32 if np.float32 in (dtype, gp[name].dtype)
                                         else np.float64))
    # predict outside dlfeval gives the same numbers
    P = layer.predict(ml.dlarray._from_canonical(x, fmt))
    np.testing.assert_array_equal(ml.extractdata(P), ml.extractdata(Y))
    return x


# --------------------------------------------------------------------------- activations

def _sig(x):
    return special.expit(x)


def _gelu_tanh(x):
    return np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3))


ELEMENTWISE = {
    "relu": (lambda o: ml.reluLayer(), lambda x, o: np.maximum(x, 0),
             lambda x, o: (x > 0) * 1.0),
    "leakyrelu": (lambda o: ml.leakyReluLayer(o), lambda x, o: np.where(x > 0, x, o * x),
                  lambda x, o: np.where(x > 0, 1.0, o)),
    "clippedrelu": (lambda o: ml.clippedReluLayer(abs(o) + 0.5),
                    lambda x, o: np.minimum(np.maximum(x, 0), abs(o) + 0.5),
                    lambda x, o: ((x > 0) & (x < abs(o) + 0.5)) * 1.0),
    "elu": (lambda o: ml.eluLayer(o), lambda x, o: np.where(x > 0, x, o * np.expm1(x)),
            lambda x, o: np.where(x > 0, 1.0, o * np.exp(x))),
    "gelu": (lambda o: ml.geluLayer(), lambda x, o: x / 2 * (1 + special.erf(x / np.sqrt(2))),
             lambda x, o: 0.5 * (1 + special.erf(x / np.sqrt(2)))
             + x * np.exp(-x * x / 2) / np.sqrt(2 * np.pi)),
    "gelu-tanh": (lambda o: ml.geluLayer(Approximation="tanh"),
                  lambda x, o: x / 2 * (1 + _gelu_tanh(x)),
                  lambda x, o: 0.5 * (1 + _gelu_tanh(x)) + 0.5 * x * (1 - _gelu_tanh(x) ** 2)
                  * np.sqrt(2 / np.pi) * (1 + 3 * 0.044715 * x * x)),
    "tanh": (lambda o: ml.tanhLayer(), lambda x, o: np.tanh(x),
             lambda x, o: 1 - np.tanh(x) ** 2),
    "sigmoid": (lambda o: ml.sigmoidLayer(), lambda x, o: 1 / (1 + np.exp(-x)),
                lambda x, o: _sig(x) * (1 - _sig(x))),
    "swish": (lambda o: ml.swishLayer(), lambda x, o: x / (1 + np.exp(-x)),
              lambda x, o: _sig(x) + x * _sig(x) * (1 - _sig(x))),
    "softplus": (lambda o: ml.softplusLayer(), lambda x, o: np.log1p(np.exp(x)),
                 lambda x, o: _sig(x)),
}


@pytest.mark.parametrize("fmt", FORMATS)
@pytest.mark.parametrize("name", list(ELEMENTWISE))
def test_elementwise_activation(name, fmt, dtype, rng):
    make, f, df = ELEMENTWISE[name]
    option = float(rng.uniform(0.05, 2.0))
    check(make(option), fmt, dtype, rng, lambda x: f(x, option),
          lambda x, r: r * df(x, option))


def test_activation_nan_and_inf_propagate():
    x = ml.dlarray(np.array([[np.nan, np.inf, -np.inf, 1.0]]), "BC")
    for layer in (ml.reluLayer(), ml.leakyReluLayer(), ml.eluLayer(), ml.tanhLayer(),
                  ml.sigmoidLayer(), ml.swishLayer(), ml.softplusLayer(), ml.geluLayer()):
        y = ml.extractdata(layer.predict(x)).reshape(-1)
        assert np.isnan(y[0]), type(layer).__name__


@pytest.mark.parametrize("fmt", ("SSCB", "CB", "SCBT", "CBT"))
def test_prelu_per_channel_alpha(fmt, dtype, rng):
    shape = random_shape(fmt, rng)
    c = shape[fmt.index("C")]
    ns = fmt.count("S")
    ashape = (c, 1) if ns == 0 else (1,) * ns + (c,)
    alpha = rng.uniform(-0.5, 0.8, ashape)
    layer = ml.preluLayer(Alpha=alpha)
    bshape = [1] * len(fmt)
    bshape[fmt.index("C")] = c
    a = alpha.reshape(bshape)
    caxis = fmt.index("C")
    check(layer, fmt, dtype, rng, lambda x: np.where(x > 0, x, a * x),
          lambda x, r: r * np.where(x > 0, 1.0, a), shape=shape, learnables=("Alpha",),
          dparams={"Alpha": lambda x, r: np.sum(r * np.minimum(x, 0), axis=tuple(
              i for i in range(x.ndim) if i != caxis)).reshape(ashape)})


def test_prelu_scalar_alpha(dtype, rng):
    layer = ml.preluLayer()
    check(layer, "SSCB", dtype, rng, lambda x: np.where(x > 0, x, 0.25 * x),
          lambda x, r: r * np.where(x > 0, 1.0, 0.25), learnables=("Alpha",),
          dparams={"Alpha": lambda x, r: np.sum(r * np.minimum(x, 0)).reshape(1, 1)})


@pytest.mark.parametrize("fmt", ("CB", "SSCB", "CBT", "SCBT", "SSSCB"))
def test_softmax_layer(fmt, dtype, rng):
    c = fmt.index("C")

    def f(x):
        e = np.exp(x - x.max(axis=c, keepdims=True))
        return e / e.sum(axis=c, keepdims=True)
    check(ml.softmaxLayer(), fmt, dtype, rng, f,
          lambda x, r: f(x) * (r - np.sum(r * f(x), axis=c, keepdims=True)))


def test_activation_constructor_forms():
    assert ml.leakyReluLayer().Scale == 0.01 and ml.leakyReluLayer(0.2).Scale == 0.2
    assert ml.leakyReluLayer("Scale", 0.3, "Name", "l").Scale == 0.3
    assert ml.leakyReluLayer(sc=0.4).Scale == 0.4                        # prefix
    assert ml.leakyReluLayer(0.2, "name", "a").Name == "a"
    assert ml.clippedReluLayer(6, Name="c").Ceiling == 6
    assert ml.eluLayer(2).Alpha == 2 and ml.eluLayer(ALPHA=3).Alpha == 3
    assert ml.geluLayer("Approximation", "TA").Approximation == "tanh"  # validatestring
    with pytest.raises(TypeError, match="^leakyReluLayer: Scale must be given once"):
        ml.leakyReluLayer(0.2, Scale=0.3)
    with pytest.raises(TypeError, match="^clippedReluLayer: missing required argument"):
        ml.clippedReluLayer()
    with pytest.raises(ValueError, match="^clippedReluLayer: Ceiling must be a positive"):
        ml.clippedReluLayer(-1)
    with pytest.raises(ValueError, match="^eluLayer: Alpha must be a finite real scalar"):
        ml.eluLayer(np.inf)
    with pytest.raises(ValueError, match="^geluLayer: Approximation"):
        ml.geluLayer(Approximation="erf")
    layer = ml.eluLayer()
    layer.Alpha = 0.5
    assert layer.Alpha == 0.5
    with pytest.raises(ValueError, match="^ELULayer: Alpha must be"):
        layer.Alpha = np.nan
    with pytest.raises(ValueError, match="predict: the input format of SoftmaxLayer "
                                         "must have a channel dimension 'C', got 'SB'"):
        ml.softmaxLayer().predict(ml.dlarray(np.zeros((3, 2)), "SB"))


# --------------------------------------------------------------------------- dropout

@pytest.mark.parametrize("fmt", ("SSCB", "CB", "CBT", "SSCBT", "SSSCB"))
def test_dropout_training_mask_from_matlab_stream(fmt, dtype, rng):
    p = float(rng.choice([0.1, 0.5, 0.75]))
    layer = ml.dropoutLayer(p)
    shape = random_shape(fmt, rng)
    x = rng.standard_normal(shape).astype(dtype)
    r = rng.standard_normal(shape)
    Y, gx, _ = run(layer, x, fmt, r, training=True, seed=7)
    ml.rng(7)
    u = ml.rand(*shape, 1).reshape(shape, order="F")      # rand(size(X)), column-major
    keep = u.astype(np.float32) > np.float32(p)
    np.testing.assert_allclose(ml.extractdata(Y), x * keep / (1 - p), **tol(dtype))
    np.testing.assert_allclose(gx, r * keep / (1 - p), **tol(dtype))
    assert Y.dtype == dtype and Y.dims == fmt
    # prediction is the identity
    np.testing.assert_array_equal(ml.extractdata(layer.predict(ml.dlarray(x, fmt))),
                                  ml.extractdata(ml.dlarray(x, fmt)))


def test_dropout_matches_matlab_first_draws():
    """rng(0); rand(1,4) = 0.8147 0.9058 0.1270 0.9134 (MATLAB): with p = 0.5 the third
    element is dropped and the rest doubled."""
    layer = ml.dropoutLayer()
    Y, _, _ = run(layer, np.ones((4, 1)), "CB", training=True, seed=0)
    np.testing.assert_array_equal(ml.extractdata(Y).reshape(-1), [2, 2, 0, 2])


def test_dropout_mask_precision_switch():
    """package_defaults(dropout_mask="double") compares MATLAB's doubles with p itself."""
    x = ml.dlarray(np.ones((500, 1)), "CB")
    p = 0.3
    ml.rng(5)
    u = ml.rand(500, 1)
    for mode, keep in (("single", u.astype(np.float32) > np.float32(p)), ("double", u > p)):
        with ml.package_defaults(dropout_mask=mode):
            ml.rng(5)
            y, _ = ml.dropoutLayer(p)._forward_train(x, "f")
        np.testing.assert_array_equal(ml.extractdata(y).reshape(-1) != 0, keep.reshape(-1))


def test_dropout_rate_and_zero_probability(rng):
    layer = ml.dropoutLayer(0.3)
    ml.rng(3)
    y, _ = layer._forward_train(ml.dlarray(np.ones((100, 100), np.float32), "CB"), "f")
    frac = np.mean(ml.extractdata(y) == 0)
    assert abs(frac - 0.3) < 0.02
    x = ml.dlarray(rng.standard_normal((3, 4)), "CB")
    y0, _ = ml.dropoutLayer(0)._forward_train(x, "f")
    np.testing.assert_array_equal(ml.extractdata(y0), ml.extractdata(x))


@pytest.mark.parametrize("fmt", ("SSCB", "SCBT", "SSCBT", "CB"))
def test_spatial_dropout_drops_whole_channels(fmt, dtype, rng):
    p = 0.5
    layer = ml.spatialDropoutLayer(Probability=p)
    shape = random_shape(fmt, rng)
    x = rng.standard_normal(shape).astype(dtype)
    r = rng.standard_normal(shape)
    Y, gx, _ = run(layer, x, fmt, r, training=True, seed=11)
    ml.rng(11)
    mshape = tuple(n if d in "CB" else 1 for d, n in zip(fmt, shape))
    u = ml.rand(*mshape, 1).reshape(mshape, order="F")    # rand([1..C B..1]) (documented)
    keep = u.astype(np.float32) > np.float32(p)
    np.testing.assert_allclose(ml.extractdata(Y), x * keep / (1 - p), **tol(dtype))
    np.testing.assert_allclose(gx, r * keep / (1 - p), **tol(dtype))


def test_dropout_constructor_forms_and_validation():
    assert ml.dropoutLayer().Probability == 0.5
    assert ml.dropoutLayer(0.4, "Name", "d").Probability == 0.4
    assert ml.dropoutLayer(Probability=0.2).Probability == 0.2
    assert ml.dropoutLayer("prob", 0.1).Probability == 0.1
    assert ml.spatialDropoutLayer(Probability=0.25, Name="spat1").Name == "spat1"
    for bad in (1, -0.1, 1.5, np.nan):
        with pytest.raises(ValueError, match="^dropoutLayer: Probability must be a "
                                             "nonnegative number less than 1"):
            ml.dropoutLayer(bad)
    with pytest.raises(TypeError, match="spatialDropoutLayer: unknown name|spatialDropout"):
        ml.spatialDropoutLayer(0.3)


# --------------------------------------------------------------------------- normalization

def norm_ref(x, axes, scale, offset, eps):
    """y = scale .* (x - mean) ./ sqrt(var + eps) + offset (biased variance over axes)."""
    mu = x.mean(axis=axes, keepdims=True)
    var = x.var(axis=axes, keepdims=True)
    inv = 1 / np.sqrt(var + eps)
    xhat = (x - mu) * inv

    def back(dy):
        dxhat = dy * scale
        return inv * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                      - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True)), xhat
    return scale * xhat + offset, back


def _cparam(fmt, c, gen):
    ns = fmt.count("S")
    shape = (c, 1) if ns == 0 else (1,) * ns + (c,)
    return gen.standard_normal(shape), gen.standard_normal(shape), shape


def _bcast(p, fmt):
    shape = [1] * len(fmt)
    shape[fmt.index("C")] = -1
    return p.reshape(shape)


def _sum_but_c(g, fmt, pshape):
    c = fmt.index("C")
    return g.sum(axis=tuple(i for i in range(g.ndim) if i != c)).reshape(pshape)


def _check_affine(layer, fmt, dtype, rng, axes_of, group=None):
    shape = random_shape(fmt, rng)
    c = shape[fmt.index("C")]
    if group:
        c = group * int(rng.integers(1, 4))
        shape = tuple(c if d == "C" else n for d, n in zip(fmt, shape))
    off, sc, pshape = _cparam(fmt, c, rng)
    off, sc = off.astype(dtype).astype(np.float64), sc.astype(dtype).astype(np.float64)
    layer.Offset, layer.Scale = off.astype(dtype), sc.astype(dtype)
    eps = layer.Epsilon
    ca = fmt.index("C")

    def grouped(x):
        if not group:
            return x, lambda a: a
        g = layer.NumGroups if not isinstance(layer.NumGroups, str) else \
            (1 if layer.NumGroups == "all-channels" else c)
        gs = x.shape[:ca] + (g, c // g) + x.shape[ca + 1:]
        return x.reshape(gs), lambda a: a.reshape(x.shape)

    def f(x):
        xg, back = grouped(x)
        axes = axes_of(xg.ndim)
        mu = xg.mean(axis=axes, keepdims=True)
        var = xg.var(axis=axes, keepdims=True)
        return _bcast(sc, fmt) * back((xg - mu) / np.sqrt(var + eps)) + _bcast(off, fmt)

    def grads(x, r):
        xg, back = grouped(x)
        axes = axes_of(xg.ndim)
        mu = xg.mean(axis=axes, keepdims=True)
        var = xg.var(axis=axes, keepdims=True)
        inv = 1 / np.sqrt(var + eps)
        xhat = (xg - mu) * inv
        dxhat, _ = grouped(r * _bcast(sc, fmt))
        dx = inv * (dxhat - dxhat.mean(axis=axes, keepdims=True)
                    - xhat * (dxhat * xhat).mean(axis=axes, keepdims=True))
        return back(dx), back(xhat)

    # Inputs whose normalization groups are well conditioned (standard deviation >= 0.3;
    # a group of two nearly equal values makes any float32 result ill-conditioned).
    while True:
        x = (rng.standard_normal(shape) * 2).astype(dtype)
        xg, _ = grouped(x.astype(np.float64))
        axes = axes_of(xg.ndim)
        if int(np.prod([xg.shape[a] for a in axes])) == 1 or \
                xg.std(axis=axes).min() >= 0.3:          # one-element groups are exact
            break
    xg, _ = grouped(x.astype(np.float64))
    scale = float(np.max(1 / np.sqrt(xg.var(axis=axes_of(xg.ndim)) + eps)))
    check(layer, fmt, dtype, rng, f, lambda x, r: grads(x, r)[0], shape=shape, x=x,
          grad_scale=scale,
          learnables=("Offset", "Scale"),
          dparams={"Offset": lambda x, r: _sum_but_c(r, fmt, pshape),
                   "Scale": lambda x, r: _sum_but_c(r * grads(x, r)[1], fmt, pshape)})


@pytest.mark.parametrize("mode", ("auto", "channel-only", "spatial-channel", "batch-excluded"))
@pytest.mark.parametrize("fmt", ("SSCB", "CB", "CBT", "SCBT", "SSCBT"))
def test_layer_normalization(fmt, mode, dtype, rng):
    eps = float(rng.choice([1e-5, 1e-3]))
    layer = ml.layerNormalizationLayer(Epsilon=eps, OperationDimension=mode)
    m = mode if mode != "auto" else ("spatial-channel" if fmt.count("S") >= 2
                                     else "channel-only")
    keep = {"channel-only": "SBT", "spatial-channel": "BT", "batch-excluded": "B"}[m]
    axes = tuple(i for i, d in enumerate(fmt) if d not in keep)
    _check_affine(layer, fmt, dtype, rng, lambda nd: axes)


@pytest.mark.parametrize("groups", (1, 2, 3, "all-channels", "channel-wise"))
@pytest.mark.parametrize("fmt", ("SSCB", "SCBT", "CBT", "SSSCB"))
def test_group_normalization(fmt, groups, dtype, rng):
    layer = ml.groupNormalizationLayer(groups)
    ca = fmt.index("C")
    b = fmt.index("B")
    # axes of the grouped array: everything but the group axis (ca) and B (shifted by one)
    g = groups if isinstance(groups, int) else 2
    _check_affine(layer, fmt, dtype, rng,
                  lambda nd: tuple(i for i in range(nd) if i not in (ca, b + 1)), group=g)


@pytest.mark.parametrize("fmt", ("SSCB", "SCB", "SCBT", "CBT", "SSSCB"))
def test_instance_normalization(fmt, dtype, rng):
    layer = ml.instanceNormalizationLayer(Epsilon=1e-4)
    axes = tuple(i for i, d in enumerate(fmt) if d not in "CB")
    _check_affine(layer, fmt, dtype, rng, lambda nd: axes)


def lrn_ref(x, c_axis, w, alpha, beta, k):
    """MATLAB's cross-channel normalization (§11.1) and its backward, by channel loops."""
    x = np.moveaxis(x, c_axis, 0)
    n = x.shape[0]
    lo, hi = (w - 1) // 2, w - 1 - (w - 1) // 2
    win = [range(max(ch - lo, 0), min(ch + hi, n - 1) + 1) for ch in range(n)]
    ss = np.stack([sum(x[j] ** 2 for j in win[ch]) for ch in range(n)])
    d = k + alpha * ss / w
    y = x * d ** -beta

    def back(r):
        r = np.moveaxis(r, c_axis, 0)
        u = r * x * (-beta) * d ** (-beta - 1) * alpha / w
        dx = r * d ** -beta
        for ch in range(n):
            for j in win[ch]:
                dx[j] = dx[j] + 2 * x[j] * u[ch]
        return np.moveaxis(dx, 0, c_axis)
    return np.moveaxis(y, 0, c_axis), back


@pytest.mark.parametrize("w", (1, 2, 3, 4, 5))
@pytest.mark.parametrize("fmt", ("SSCB", "CB", "SCBT"))
def test_cross_channel_normalization(fmt, w, dtype, rng):
    alpha, beta, k = float(rng.uniform(0.1, 1)), float(rng.uniform(0.5, 1)), \
        float(rng.uniform(1, 3))
    layer = ml.crossChannelNormalizationLayer(w, Alpha=alpha, Beta=beta, K=k)
    ca = fmt.index("C")
    check(layer, fmt, dtype, rng, lambda x: lrn_ref(x, ca, w, alpha, beta, k)[0],
          lambda x, r: lrn_ref(x, ca, w, alpha, beta, k)[1](r))


def test_normalization_constructor_forms_and_validation():
    assert ml.groupNormalizationLayer(4, "Name", "gn", "Epsilon", 1e-3).Epsilon == 1e-3
    assert ml.groupNormalizationLayer("all").NumGroups == "all-channels"
    assert ml.layerNormalizationLayer(OperationDimension="batch").OperationDimension == \
        "batch-excluded"
    layer = ml.crossChannelNormalizationLayer(5, "Alpha", 1e-3, "beta", 0.5, K=1)
    assert (layer.WindowChannelSize, layer.Alpha, layer.Beta, layer.K) == (5, 1e-3, 0.5, 1)
    for bad in (0, 17, 2.5):
        with pytest.raises(ValueError, match="^crossChannelNormalizationLayer: "
                                             "WindowChannelSize must be an integer from 1 "
                                             "to 16"):
            ml.crossChannelNormalizationLayer(bad)
    with pytest.raises(ValueError, match="Beta must be a finite real scalar >= 0.01"):
        ml.crossChannelNormalizationLayer(5, Beta=0.001)
    with pytest.raises(ValueError, match="K must be a finite real scalar >= 1e-5"):
        ml.crossChannelNormalizationLayer(5, K=0)
    with pytest.raises(ValueError, match="^groupNormalizationLayer: NumGroups must be"):
        ml.groupNormalizationLayer(0)
    layer = ml.groupNormalizationLayer(4)
    with pytest.raises(ValueError, match="must be divisible by NumGroups \\(4\\)"):
        layer.predict(ml.dlarray(np.zeros((2, 2, 6, 1)), "SSCB"))
    layer = ml.layerNormalizationLayer()
    layer.predict(ml.dlarray(np.zeros((2, 2, 6, 1), np.float32), "SSCB"))
    assert layer.NumChannels == 6 and layer.Offset.shape == (1, 1, 6)
    assert layer.Scale.dtype == np.float32 and np.all(layer.Scale == 1)
    with pytest.raises(ValueError, match="number of input channels must be 6"):
        layer.predict(ml.dlarray(np.zeros((2, 2, 5, 1)), "SSCB"))
    with pytest.raises(ValueError, match="^instanceNormalizationLayer: Scale must be a "
                                         "vector of 3 elements"):
        ml.instanceNormalizationLayer(Offset=np.zeros(3), Scale=np.ones(4))


# --------------------------------------------------------------------------- shape layers

@pytest.mark.parametrize("fmt, out", [("SSCB", "CB"), ("SCB", "CB"), ("SSSCB", "CB"),
                                      ("SSCBT", "CBT"), ("SCBT", "CBT"), ("CBT", "CBT"),
                                      ("CB", "CB")])
def test_flatten(fmt, out, dtype, rng):
    shape = random_shape(fmt, rng)
    k = sum(d in "SC" for d in fmt)
    new = (int(np.prod(shape[:k])),) + shape[k:]
    check(ml.flattenLayer(), fmt, dtype, rng, lambda x: x.reshape(new, order="F"),
          lambda x, r: r.reshape(x.shape, order="F"), shape=shape, out_dims=out)


def test_flatten_channel_order_is_column_major():
    """SSCB channel h + H(w-1) + HW(c-1) (1-based), §14.2."""
    x = np.arange(2 * 3 * 4, dtype=np.float64).reshape((2, 3, 4, 1), order="F")
    y = ml.extractdata(ml.flattenLayer().predict(ml.dlarray(x, "SSCB")))
    H, W = 2, 3
    for h, w, c in [(1, 1, 1), (2, 3, 4), (1, 2, 3)]:
        assert y[h + H * (w - 1) + H * W * (c - 1) - 1, 0] == x[h - 1, w - 1, c - 1, 0]


@pytest.mark.parametrize("location", ("centercrop", (1, 1), (2, 3)))
def test_crop2d(location, dtype, rng):
    H, W, h, w = 7, 8, 3, 4
    x = rng.standard_normal((H, W, 2, 3)).astype(dtype)
    ref = ml.dlarray(np.zeros((h, w, 5, 3), dtype), "SSCB")
    layer = ml.crop2dLayer(location if isinstance(location, str) else list(location))
    if location == "centercrop":
        r0 = int(np.floor(H / 2 + 1) - np.floor(h / 2 + 1))
        c0 = int(np.floor(W / 2 + 1) - np.floor(w / 2 + 1))
    else:
        c0, r0 = location[0] - 1, location[1] - 1           # Location = [X Y]
    r = rng.standard_normal((h, w, 2, 3))
    Y, gx, _ = run(layer, x, "SSCB", r, extra=(ref,))
    np.testing.assert_array_equal(ml.extractdata(Y), x[r0:r0 + h, c0:c0 + w])
    g = np.zeros(x.shape)
    g[r0:r0 + h, c0:c0 + w] = r
    np.testing.assert_allclose(gx, g, **tol(dtype))
    assert layer._output_shapes([("SSCB", x.shape), ("SSCB", ref.shape)], "f") == \
        [("SSCB", (h, w, 2, 3))]
    with pytest.raises(ValueError, match="cropping window of Crop2DLayer .* must lie inside"):
        layer._run([ml.dlarray(np.zeros((2, 2, 1, 1)), "SSCB"), ref], False, "predict")


def test_crop2d_properties():
    layer = ml.crop2dLayer("centercrop", Name="crop")
    assert (layer.Mode, layer.Location, layer.InputNames) == ("centercrop", "auto",
                                                              ["in", "ref"])
    layer = ml.crop2dLayer([1, 33])
    assert layer.Mode == "custom" and layer.Location.tolist() == [1, 33]
    with pytest.raises(ValueError, match="^crop2dLayer: Location must be 'centercrop' or"):
        ml.crop2dLayer([0, 1])


@pytest.mark.parametrize("fmt", ("SSCB", "CB", "SCBT"))
def test_scaling(fmt, dtype, rng):
    shape = random_shape(fmt, rng)
    c = shape[fmt.index("C")]
    ns = fmt.count("S")
    s = rng.standard_normal((c, 1) if ns == 0 else (1,) * ns + (c,))
    o = float(rng.standard_normal())
    layer = ml.scalingLayer(Scale=s, Offset=o)
    check(layer, fmt, dtype, rng, lambda x: _bcast(s, fmt) * x + o,
          lambda x, r: r * _bcast(s, fmt), shape=shape)


def test_function_layer(dtype, rng):
    layer = ml.functionLayer(lambda X: ml.tanh(X) * 2, Description="twice tanh")
    check(layer, "SSCB", dtype, rng, lambda x: 2 * np.tanh(x),
          lambda x, r: r * 2 * (1 - np.tanh(x) ** 2))
    assert layer._layer_array_row() == ("", "Function", "twice tanh")
    seen = []
    ml.functionLayer(lambda X: seen.append(X.dims) or X).predict(
        ml.dlarray(np.zeros((2, 3)), "CB"))
    ml.functionLayer(lambda X: seen.append(X.dims) or X, Formattable=True).predict(
        ml.dlarray(np.zeros((2, 3)), "CB"))
    assert seen == ["", "CB"]                 # Formattable false: unformatted inputs
    two = ml.functionLayer(lambda a, b: (a + b, a * b), NumInputs=2, NumOutputs=2,
                           OutputNames=["s", "p"])
    assert (two.InputNames, two.OutputNames) == (["in1", "in2"], ["s", "p"])
    a, b = (ml.dlarray(rng.standard_normal((3, 2)), "CB") for _ in range(2))
    (s, p), _ = two._run([a, b], False, "predict")
    np.testing.assert_allclose(s.data, a.data + b.data)
    assert s.dims == "CB" and p.dims == "CB"
    # MATLAB asks the function for NumOutputs outputs: of a tuple, the first ones
    first = ml.functionLayer(lambda X: (X * 2, X * 3, X * 4))
    np.testing.assert_array_equal(first.predict(a).data, a.data * 2)
    (s2, p2), _ = ml.functionLayer(lambda X: (X, X * 2, X * 3), NumOutputs=2)._run(
        [a], False, "predict")
    np.testing.assert_array_equal(p2.data, a.data * 2)
    with pytest.raises(ValueError, match="must return NumOutputs \\(3\\) outputs, got one$"):
        ml.functionLayer(lambda X: X, NumOutputs=3)._run([a], False, "predict")
    with pytest.raises(ValueError, match="NumOutputs \\(3\\) outputs, got a tuple of 2$"):
        ml.functionLayer(lambda X: (X, X), NumOutputs=3)._run([a], False, "predict")
    net = ml.dlnetwork([ml.featureInputLayer(3, Name="in"),
                        ml.functionLayer(lambda X: (X, X * 2), NumOutputs=2, Name="f")])
    with pytest.raises(ValueError, match="predict: layer 'f' has 2 outputs; name one of them "
                                         "in Outputs \\('f/out1', 'f/out2'\\)"):
        ml.predict(net, a, Outputs="f")
    np.testing.assert_array_equal(ml.predict(net, a, Outputs="f/out2").data, a.data * 2)
    with pytest.raises(ValueError, match="^functionLayer: OutputNames must have NumOutputs"):
        ml.functionLayer(np.tanh, OutputNames=["a", "b"])
    with pytest.raises(TypeError, match="^functionLayer: PredictFcn must be a function"):
        ml.functionLayer(3)


# --------------------------------------------------------------------------- inputs

def test_feature_input(dtype, rng):
    mean = rng.standard_normal((4, 1)).astype(dtype).astype(np.float64)
    sd = rng.uniform(0.5, 2, (4, 1)).astype(dtype).astype(np.float64)
    layer = ml.featureInputLayer(4, Normalization="zscore", Mean=mean.astype(dtype),
                                 StandardDeviation=sd.astype(dtype))
    check(layer, "CB", dtype, rng, lambda x: (x - mean) / sd, lambda x, r: r / sd,
          shape=(4, 5))
    layer = ml.featureInputLayer(4, Normalization="rescale-symmetric",
                                 Min=np.array(-2, dtype), Max=np.array(3, dtype))
    check(layer, "CB", dtype, rng, lambda x: 2 * (x + 2) / 5 - 1, lambda x, r: r * 2 / 5,
          shape=(4, 3))
    with pytest.raises(ValueError, match="must be of size 4"):
        ml.featureInputLayer(4).predict(ml.dlarray(np.zeros((3, 2)), "CB"))
    with pytest.raises(ValueError, match="input format of FeatureInputLayer"):
        ml.featureInputLayer(4).predict(ml.dlarray(np.zeros((4, 2, 2)), "CBT"))
    with pytest.raises(ValueError, match="^featureInputLayer: NormalizationDimension"):
        ml.featureInputLayer(4, NormalizationDimension="element")


def test_image3d_input(dtype, rng):
    mean = rng.standard_normal((1, 1, 1, 2)).astype(dtype).astype(np.float64)
    layer = ml.image3dInputLayer([3, 4, 2, 2], Mean=mean.astype(dtype))
    assert layer.Normalization == "zerocenter"
    check(layer, "SSSCB", dtype, rng, lambda x: x - mean[..., None], lambda x, r: r,
          shape=(3, 4, 2, 2, 3))
    assert ml.image3dInputLayer([3, 4, 2]).InputSize.tolist() == [3, 4, 2, 1]
    assert ml.image3dInputLayer([3, 4, 2, 2])._description() == \
        "3×4×2×2 images with 'zerocenter' normalization"
    with pytest.raises(ValueError, match="^image3dInputLayer: InputSize must be a 1×3 or"):
        ml.image3dInputLayer([3, 4])


def test_input_split_complex_through_cat(rng):
    layer = ml.featureInputLayer(3, SplitComplexInputs=True)
    x = rng.standard_normal((3, 2))
    Y, gx, _ = run(layer, x, "CB", r=np.arange(12.0).reshape(6, 2))
    np.testing.assert_array_equal(ml.extractdata(Y), np.vstack([x, np.zeros((3, 2))]))
    np.testing.assert_array_equal(gx, np.arange(6.0).reshape(3, 2))


# --------------------------------------------------------------------------- output losses

@pytest.mark.parametrize("fmt", ("CB", "SSCB", "CBT"))
def test_classification_loss(fmt, dtype, rng):
    shape = random_shape(fmt, rng)
    c = shape[fmt.index("C")]
    ca = fmt.index("C")
    n = shape[fmt.index("B")]
    y = rng.uniform(0.01, 1, shape)
    y /= y.sum(axis=ca, keepdims=True)
    y[(0,) * len(shape)] = 1e-9                      # below eps('single'): clamped
    t = np.moveaxis(np.eye(c)[rng.integers(0, c, np.delete(shape, ca))], -1, ca)
    w = rng.uniform(0.5, 2, c)
    for weights in ("none", w):
        layer = ml.classificationLayer(ClassWeights=weights)
        wb = 1 if isinstance(weights, str) else _bcast(w, fmt)

        def model(Y):
            loss = layer._loss(Y, t.astype(dtype))
            return loss, ml.dlgradient(loss, Y)
        loss, g = ml.dlfeval(model, ml.dlarray(y.astype(dtype), fmt))
        yc = np.maximum(y.astype(dtype).astype(np.float64), EPS1)
        np.testing.assert_allclose(float(ml.extractdata(loss)),
                                   -np.sum(wb * t * np.log(yc)) / n, **tol(dtype))
        live = y.astype(dtype) >= EPS1
        np.testing.assert_allclose(ml.extractdata(g), np.where(live, -wb * t / yc / n, 0),
                                   **tol(dtype))
        assert loss.dtype == dtype


@pytest.mark.parametrize("fmt", ("CB", "SSCB", "CBT"))
def test_regression_loss(fmt, dtype, rng):
    shape = random_shape(fmt, rng)
    n = shape[fmt.index("B")]
    y, t = rng.standard_normal(shape), rng.standard_normal(shape)
    layer = ml.regressionLayer(ResponseNames=["a"])

    def model(Y):
        loss = layer._loss(Y, t.astype(dtype))
        return loss, ml.dlgradient(loss, Y)
    loss, g = ml.dlfeval(model, ml.dlarray(y.astype(dtype), fmt))
    yy, tt = y.astype(dtype).astype(np.float64), t.astype(dtype).astype(np.float64)
    np.testing.assert_allclose(float(ml.extractdata(loss)), np.sum(0.5 * (yy - tt) ** 2) / n,
                               **tol(dtype))
    np.testing.assert_allclose(ml.extractdata(g), (yy - tt) / n, **tol(dtype))
    assert layer._description() == "mean-squared-error with response 'a'"
    assert ml.regressionLayer(ResponseNames=["a", "b"])._description() == \
        "mean-squared-error with 'a' and 1 other responses"


def test_classification_classes_from_categorical():
    layer = ml.classificationLayer(Classes=ml.categorical(["dog", "cat", "dog"]))
    assert list(layer.Classes) == ["cat", "dog"] and layer.OutputSize == 2


# --------------------------------------------------------------------------- torch

TORCH_ACT = {
    "relu": (lambda o: ml.reluLayer(), lambda F, x, o: F.relu(x)),
    "leakyrelu": (lambda o: ml.leakyReluLayer(o), lambda F, x, o: F.leaky_relu(x, o)),
    "clippedrelu": (lambda o: ml.clippedReluLayer(o), lambda F, x, o: F.hardtanh(x, 0, o)),
    "elu": (lambda o: ml.eluLayer(o), lambda F, x, o: F.elu(x, o)),
    "gelu": (lambda o: ml.geluLayer(), lambda F, x, o: F.gelu(x)),
    "gelu-tanh": (lambda o: ml.geluLayer(Approximation="tanh"),
                  lambda F, x, o: F.gelu(x, approximate="tanh")),
    "tanh": (lambda o: ml.tanhLayer(), lambda F, x, o: F.tanh(x)),
    "sigmoid": (lambda o: ml.sigmoidLayer(), lambda F, x, o: F.sigmoid(x)),
    "swish": (lambda o: ml.swishLayer(), lambda F, x, o: F.silu(x)),
    "softplus": (lambda o: ml.softplusLayer(), lambda F, x, o: F.softplus(x)),
}


def _torch_grad(torch, fn, x, r):
    xt = torch.tensor(x, requires_grad=True)
    y = fn(xt)
    (y * torch.tensor(r, dtype=xt.dtype)).sum().backward()
    return y.detach().numpy(), xt.grad.numpy()


@pytest.mark.parametrize("name", list(TORCH_ACT))
def test_activations_vs_torch(name, dtype, rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    make, tf = TORCH_ACT[name]
    o = float(rng.uniform(0.1, 3))
    x = (rng.standard_normal((5, 4, 3, 2)) * 3).astype(dtype)
    r = rng.standard_normal(x.shape).astype(dtype)
    Y, gx, _ = run(make(o), x, "SSCB", r)
    yt, gt = _torch_grad(torch, lambda t: tf(F, t, o), x, r)
    np.testing.assert_allclose(ml.extractdata(Y), yt, **tol(dtype))
    np.testing.assert_allclose(gx, gt, **tol(dtype))


def test_norms_vs_torch(dtype, rng):
    """group/instance/layer normalization and LRN against torch (NCHW = reversed SSCB)."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((5, 4, 6, 3)).astype(dtype)      # H W C N (MATLAB SSCB)
    r = rng.standard_normal(x.shape).astype(dtype)
    off, sc = rng.standard_normal(6), rng.standard_normal(6)

    def nchw(a):
        return np.ascontiguousarray(np.transpose(a, (3, 2, 0, 1)))

    def back(a):
        return np.transpose(a, (2, 3, 1, 0))
    tdt = torch.float32 if dtype == np.float32 else torch.float64
    cases = [
        (ml.groupNormalizationLayer(3, Offset=off.reshape(1, 1, 6), Scale=sc.reshape(1, 1, 6)),
         lambda t: F.group_norm(t, 3, torch.tensor(sc, dtype=tdt), torch.tensor(off, dtype=tdt),
                                eps=1e-5)),
        (ml.instanceNormalizationLayer(Offset=off.reshape(1, 1, 6), Scale=sc.reshape(1, 1, 6)),
         lambda t: F.instance_norm(t, weight=torch.tensor(sc, dtype=tdt),
                                   bias=torch.tensor(off, dtype=tdt), eps=1e-5)),
        (ml.layerNormalizationLayer(OperationDimension="batch-excluded",
                                    Offset=off.reshape(1, 1, 6), Scale=sc.reshape(1, 1, 6)),
         lambda t: F.group_norm(t, 1, torch.tensor(sc, dtype=tdt), torch.tensor(off, dtype=tdt),
                                eps=1e-5)),
        (ml.crossChannelNormalizationLayer(5, Alpha=1e-2, Beta=0.75, K=2),
         lambda t: F.local_response_norm(t, 5, alpha=1e-2, beta=0.75, k=2.0)),
    ]
    for layer, tf in cases:
        Y, gx, _ = run(layer, x, "SSCB", r)
        yt, gt = _torch_grad(torch, tf, nchw(x), nchw(r))
        np.testing.assert_allclose(ml.extractdata(Y), back(yt), **tol(dtype),
                                   err_msg=type(layer).__name__)
        np.testing.assert_allclose(gx, back(gt), rtol=tol(dtype)["rtol"] * 10,
                                   atol=tol(dtype)["atol"] * 10, err_msg=type(layer).__name__)


# --------------------------------------------------------------------------- in a network

def test_new_layers_in_a_dlnetwork():
    """Names (§14.3), size propagation, predict, training-mode forward (dropout active,
    reproducible from ml.rng) and gradients for every learnable, PReLU Alpha included."""
    layers = [ml.featureInputLayer(4), ml.fullyConnectedLayer(6), ml.layerNormalizationLayer(),
              ml.geluLayer(), ml.dropoutLayer(0.5), ml.preluLayer(), ml.flattenLayer(),
              ml.fullyConnectedLayer(3), ml.softmaxLayer()]
    ml.rng(0)
    net = ml.dlnetwork(layers)
    assert [layer.Name for layer in net.Layers] == [
        "featureinput", "fc_1", "layernorm", "gelu", "dropout", "prelu", "flatten", "fc_2",
        "softmax"]
    X = ml.dlarray(np.random.default_rng(0).random((4, 5)).astype(np.float32), "CB")
    Yp = ml.predict(net, X)
    assert Yp.dims == "CB" and Yp.shape == (3, 5)

    def loss_fn(net, X):
        Y, _ = ml.forward(net, X, nargout=2)
        loss = ml.sum(Y * Y, "all")
        return Y, loss, ml.dlgradient(loss, net.Learnables)
    ml.rng(3)
    Y1, _, g = ml.dlfeval(loss_fn, net, X)
    ml.rng(3)
    Y2, _, _ = ml.dlfeval(loss_fn, net, X)
    np.testing.assert_array_equal(ml.extractdata(Y1), ml.extractdata(Y2))
    assert not np.allclose(ml.extractdata(Y1), ml.extractdata(Yp))      # dropout on
    assert [(row[0], row[1]) for row in zip(g.Layer, g.Parameter)] == [
        ("fc_1", "Weights"), ("fc_1", "Bias"), ("layernorm", "Offset"),
        ("layernorm", "Scale"), ("prelu", "Alpha"), ("fc_2", "Weights"), ("fc_2", "Bias")]
    for v in g.Value:
        assert np.all(np.isfinite(ml.extractdata(v)))


# --------------------------------------------------------------------------- properties

from hypothesis import given, settings, strategies as st     # noqa: E402


@settings(max_examples=25, deadline=None)
@given(h=st.integers(1, 4), w=st.integers(1, 4), g=st.integers(1, 3), cg=st.integers(1, 3),
       b=st.integers(1, 3), seed=st.integers(0, 2 ** 31 - 1))
def test_group_norm_output_is_normalized_per_group(h, w, g, cg, b, seed):
    """With Scale 1 and Offset 0 every group of every observation has mean 0 and biased
    variance var/(var + Epsilon) (float64)."""
    x = np.random.default_rng(seed).standard_normal((h, w, g * cg, b)) * 3 + 1
    layer = ml.groupNormalizationLayer(g)
    y = ml.extractdata(layer.predict(ml.dlarray(x, "SSCB"))).reshape(h, w, g, cg, b)
    xg = x.reshape(h, w, g, cg, b)
    v = xg.var(axis=(0, 1, 3))
    np.testing.assert_allclose(y.mean(axis=(0, 1, 3)), 0, atol=1e-12)
    np.testing.assert_allclose(y.var(axis=(0, 1, 3)), v / (v + 1e-5), rtol=1e-10, atol=1e-12)


@settings(max_examples=25, deadline=None)
@given(fmt=st.sampled_from(FORMATS), p=st.floats(0.0, 0.95), seed=st.integers(0, 10 ** 6))
def test_dropout_keeps_or_scales_each_element(fmt, p, seed):
    """Training output elements are 0 or x/(1-p), and the same rng seed gives the same mask."""
    gen = np.random.default_rng(seed)
    x = gen.standard_normal(random_shape(fmt, gen)) + 5
    layer = ml.dropoutLayer(p)
    ml.rng(seed)
    y1, _ = layer._forward_train(ml.dlarray(x, fmt), "forward")
    ml.rng(seed)
    y2, _ = layer._forward_train(ml.dlarray(x, fmt), "forward")
    a = ml.extractdata(y1)
    np.testing.assert_array_equal(a, ml.extractdata(y2))
    xs = ml.extractdata(ml.dlarray(x, fmt))
    assert np.all((a == 0) | np.isclose(a, xs / (1 - p), rtol=1e-14))
