"""The compiled elementwise activations (``mlayers._ops_act``, ``pyx/_act.pyx``) against
NumPy/SciPy references written here from the formulas of ``mlayers/functional/activations.py``
(computed in float64, compared in ulps of the result's dtype), for float32 and float64, odd
sizes, NaN/Inf, every dense memory order and a non-dense view, and 1 vs 2 threads bitwise."""
import numpy as np
import pytest
from scipy import special

import mlayers as ml
from mlayers import _ops_act as A

PAR = {"leakyrelu": 0.2, "clippedrelu": 0.5, "elu": 0.7}
KINDS = list(A.KINDS)
C = np.sqrt(2 / np.pi)


def ref_forward(kind, x, p):
    with np.errstate(all="ignore"):
        if kind == "leakyrelu":
            return np.where(x > 0, x, x * p)
        if kind == "clippedrelu":
            return np.minimum(np.maximum(x, 0), p)
        if kind == "elu":
            return np.where(x > 0, x, p * np.expm1(np.minimum(x, 0)))
        if kind == "gelu":     # 0.5*x*(1 + erf(x/sqrt(2))), the tail without cancellation
            return 0.5 * x * np.where(x < 0, special.erfc(-x / np.sqrt(2)),
                                      1 + special.erf(x / np.sqrt(2)))
        if kind == "gelu_tanh":
            return 0.5 * x * (1 + np.tanh(C * (x + 0.044715 * x ** 3)))
        if kind == "sigmoid":
            return special.expit(x)
        if kind == "swish":
            return x * special.expit(x)
        return np.logaddexp(0, x)


def ref_backward(kind, x, dy, p):
    with np.errstate(all="ignore"):
        if kind == "leakyrelu":
            return np.where(x > 0, dy, dy * p)
        if kind == "clippedrelu":
            return np.where((x > 0) & (x < p), dy, 0)
        if kind == "elu":
            return np.where(x > 0, dy, dy * p * (np.expm1(np.minimum(x, 0)) + 1))
        if kind == "gelu":
            phi = np.where(x < 0, special.erfc(-x / np.sqrt(2)), 1 + special.erf(x / np.sqrt(2)))
            return dy * (0.5 * phi + x * np.exp(-0.5 * x * x) / np.sqrt(2 * np.pi))
        if kind == "gelu_tanh":
            t = np.tanh(C * (x + 0.044715 * x ** 3))
            return dy * (0.5 * (1 + t) + 0.5 * x * (1 - t * t) * C * (1 + 3 * 0.044715 * x * x))
        s = special.expit(x)
        if kind == "sigmoid":
            return dy * s * (1 - s)
        if kind == "swish":
            return dy * (s + x * s * (1 - s))
        return dy * s


def ulps(y, r, dtype):
    """|y - r| in units of the dtype's spacing at |r| (at least the smallest normal's)."""
    tiny = np.finfo(dtype).tiny
    sp = np.spacing(np.maximum(np.abs(r), tiny).astype(dtype)).astype(np.float64)
    return np.abs(y.astype(np.float64) - r) / sp


# well-conditioned forward tolerance (ulps); gelu_tanh's tail and the backward products
# inherit the formula's own cancellation, so those are compared against a scale instead
FWD_ULPS = {"leakyrelu": 1, "clippedrelu": 0, "elu": 4, "gelu": 16, "sigmoid": 4,
            "swish": 4, "softplus": 4}


def _data(dtype, n, rng):
    x = np.concatenate([rng.standard_normal(n) * 4, np.linspace(-30, 30, 601),
                        np.linspace(-1e-3, 1e-3, 51), [0.0, -0.0, 1e-30, -1e-30]])
    return x.astype(dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_forward_backward_values(kind, dtype):
    rng = np.random.default_rng(5)
    x = _data(dtype, 4001, rng)
    p = PAR.get(kind, 0.0)
    xd = x.astype(np.float64)
    y = A.forward(kind, x, p)
    assert y.dtype == dtype and y.shape == x.shape
    r = ref_forward(kind, xd, p)
    if kind in FWD_ULPS:
        tol = FWD_ULPS[kind] if dtype == np.float32 else max(FWD_ULPS[kind], 2)
        big = np.abs(r) > (1e-35 if dtype == np.float32 else 1e-300)
        if kind == "gelu" and dtype == np.float64:
            # scipy's erfc rounds a^2 before exp(-a^2): its own error grows as ~x^2 ulps
            tol = tol + xd ** 2
        assert np.all((ulps(y, r, dtype) <= tol)[big])
        assert np.all(np.abs(y[~big] - r[~big]) <= 2 * np.finfo(dtype).tiny + 1e-44)
    else:
        eps = np.finfo(dtype).eps
        assert np.all(np.abs(y - r) <= 4 * eps * np.maximum(np.abs(xd), 1))
    dy = rng.standard_normal(x.size).astype(dtype)
    d = A.backward(kind, x, dy, p, y=y if kind in A.USES_Y else None)
    rd = ref_backward(kind, xd, dy.astype(np.float64), p)
    eps = np.finfo(dtype).eps
    # products of dy with a derivative in [-0.2, 1.2]: a few eps of |dy| * (1 + |x|)
    assert np.all(np.abs(d - rd) <= 16 * eps * np.abs(dy) * (1 + np.abs(xd)) + 1e-37)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_nan_inf(kind, dtype):
    x = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1.0, -1.0, 1e30, -1e30, 200, -200],
                 dtype=dtype)
    p = PAR.get(kind, 0.0)
    y = A.forward(kind, x, p)
    r = ref_forward(kind, x.astype(np.float64), p)
    # NaN where the formula gives NaN in the input's precision (0*Inf included)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref_forward(kind, x, dtype(p))))
    fin = np.isfinite(r)
    np.testing.assert_array_equal(y[~fin & ~np.isnan(r)], r[~fin & ~np.isnan(r)])
    np.testing.assert_allclose(y[fin], r[fin], rtol=4 * np.finfo(dtype).eps,
                               atol=np.finfo(dtype).tiny * 4)
    dy = np.ones_like(x)
    d = A.backward(kind, x, dy, p, y=y if kind in A.USES_Y else None)
    rd = ref_backward(kind, x.astype(np.float64), np.ones(x.size), p)
    rdx = ref_backward(kind, x, dy, dtype(p))
    np.testing.assert_array_equal(np.isnan(d), np.isnan(rdx))
    fin = np.isfinite(rd) & np.isfinite(rdx)
    np.testing.assert_allclose(d[fin], rd[fin], rtol=8 * np.finfo(dtype).eps,
                               atol=np.finfo(dtype).tiny * 4)


@pytest.mark.parametrize("kind", KINDS)
def test_memory_orders(kind):
    rng = np.random.default_rng(7)
    base = rng.standard_normal((5, 7, 3, 4)).astype(np.float32)
    p = PAR.get(kind, 0.0)
    want = A.forward(kind, np.ascontiguousarray(base), p)
    dy = rng.standard_normal(base.shape).astype(np.float32)
    wantd = A.backward(kind, np.ascontiguousarray(base), dy, p,
                       y=want if kind in A.USES_Y else None)
    perm = (2, 0, 3, 1)
    layouts = [np.asfortranarray(base),
               np.ascontiguousarray(base.transpose(perm)).transpose(np.argsort(perm)),
               base[:, ::-1][:, ::-1],                                   # C, reversed twice
               np.asfortranarray(np.pad(base, ((0, 0), (0, 2), (0, 0), (0, 0))))[:, :7]]
    for x in layouts:
        np.testing.assert_array_equal(x, base)
        y = A.forward(kind, x, p)
        np.testing.assert_array_equal(y, want)
        if x.flags.f_contiguous or x.flags.c_contiguous:
            assert y.strides == x.strides
        for g in (dy, np.asfortranarray(dy)):
            d = A.backward(kind, x, g, p, y=y if kind in A.USES_Y else None)
            np.testing.assert_array_equal(d, wantd)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("kind", KINDS)
def test_threads_bitwise_and_sizes(kind, dtype):
    rng = np.random.default_rng(11)
    p = PAR.get(kind, 0.0)
    for n in (0, 1, 7, 16385, 100003):
        x = (rng.standard_normal(n) * 5).astype(dtype)
        dy = rng.standard_normal(n).astype(dtype)
        outs = []
        for t in (1, 2):
            with ml.threads(t):
                y = A.forward(kind, x, p)
                d = A.backward(kind, x, dy, p, y=y if kind in A.USES_Y else None)
            outs.append((y.copy(), d.copy()))
        assert outs[0][0].tobytes() == outs[1][0].tobytes()
        assert outs[0][1].tobytes() == outs[1][1].tobytes()
        # chunk boundaries do not change values: elementwise equal to the one-element calls
        if 0 < n <= 16385:
            k = min(n - 1, 16384)
            one = A.forward(kind, x[k:k + 1], p)
            assert one.tobytes() == outs[0][0][k:k + 1].tobytes()


def test_functional_use_kernel_layout():
    """The public ops keep a Fortran-ordered input's layout (no copy) and value semantics."""
    from mlayers.functional import activations as F
    x = np.asfortranarray(np.random.default_rng(3).standard_normal((64, 64, 16, 4)),
                          dtype=np.float32)
    y1 = F.swish(x)._data
    y2 = F.swish(x)._data
    assert y1.flags.f_contiguous and not np.shares_memory(y1, y2)
    np.testing.assert_array_equal(y1, y2)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("alpha", [1.0, 0.0, -0.5])
def test_elu_backward_any_alpha(alpha, dtype):
    """elu's backward takes y + alpha from the forward result for alpha > 0 and exp(x)
    otherwise; both match the formula, NaN/Inf included, with or without y passed."""
    rng = np.random.default_rng(13)
    x = np.concatenate([rng.standard_normal(999) * 6,
                        [np.nan, np.inf, -np.inf, 0.0, -0.0, -200.0, 1e-40]]).astype(dtype)
    dy = np.concatenate([rng.standard_normal(x.size - 1), [np.inf]]).astype(dtype)
    y = A.forward("elu", x, alpha)
    want = ref_backward("elu", x.astype(np.float64), dy.astype(np.float64), alpha)
    with np.errstate(all="ignore"):
        want_nan = np.isnan(ref_backward("elu", x, dy, dtype(alpha)))
    eps = np.finfo(dtype).eps
    for d in (A.backward("elu", x, dy, alpha, y=y), A.backward("elu", x, dy, alpha)):
        np.testing.assert_array_equal(np.isnan(d), want_nan)
        ok = ~want_nan & np.isfinite(want)
        assert np.all(np.abs(d[ok] - want[ok])
                      <= 16 * eps * np.abs(dy[ok]) * (1 + np.abs(x[ok])) + 1e-37)
        np.testing.assert_array_equal(d[np.isinf(want)], want[np.isinf(want)])
