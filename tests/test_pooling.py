"""avgpool, maxpool, maxunpool: forward against a NumPy reference written from MATLAB's
formula (MATLAB_SEMANTICS §3.1, §3.4, §11.2), backward against central finite differences
(float64) and PyTorch, indices against MATLAB's 1-based column-major convention, the
documented §8 item 10 numbers, thread-count independence, NaN handling and errors."""
import itertools
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mlayers as ml
from mlayers import _ops
from conftest import assert_close
from gradcheck import check


# --------------------------------------------------------------------------- reference

def same_pads(n, p, s):
    """§3.4: out = ceil(n/s), total = max((out-1)*s + p - n, 0), the extra at the end."""
    out = -(-n // s)
    total = max((out - 1) * s + p - n, 0)
    return total // 2, total - total // 2


def ref_pool(x, pool, stride, before, after, mode):
    """Pooling of ``x`` (``S1..Sd x C x N``, float64) by the formula, with loops.

    mode 'max': padded cells never win; ties go to the first cell in column-major order
    (returns also the 0-based linear indices into x).  'avg': padded cells count as zeros
    (divide by prod(pool)).  'mean': divide by the number of real cells.
    """
    x = np.asarray(x, dtype=np.float64)
    d = len(pool)
    in_size = x.shape[:d]
    rest = x.shape[d:]
    out = [(n + b + a - p) // s + 1 for n, b, a, p, s in zip(in_size, before, after, pool,
                                                             stride)]
    y = np.zeros(tuple(out) + rest)
    idx = np.zeros(tuple(out) + rest, dtype=np.int64)
    for o in itertools.product(*[range(m) for m in out]):
        lo = [oi * s - b for oi, s, b in zip(o, stride, before)]
        hi = [l + p for l, p in zip(lo, pool)]
        rl = [max(l, 0) for l in lo]
        rh = [min(h, n) for h, n in zip(hi, in_size)]
        count = math.prod(h - l for l, h in zip(rl, rh))
        for r in itertools.product(*[range(m) for m in rest]):
            cells = [(c, x[c + r]) for c in itertools.product(*[range(l, h)
                                                                 for l, h in zip(rl, rh)])]
            # column-major order of the window: the first S index varies fastest
            cells.sort(key=lambda cv: tuple(reversed(cv[0])))
            if mode == "max":
                best_c, best_v = cells[0]
                for c, v in cells[1:]:
                    if v > best_v:
                        best_c, best_v = c, v
                y[o + r] = best_v
                idx[o + r] = np.ravel_multi_index(best_c + r, x.shape, order="F")
            else:
                total = sum(v for _, v in cells)
                y[o + r] = total / (math.prod(pool) if mode == "avg" else count)
    return y, idx


def _run(op, x, fmt, pool, **kw):
    return ml.extractdata(op(ml.dlarray(x, fmt), pool, **kw))


# --------------------------------------------------------------------------- forward

CASES = [
    # fmt, shape, pool, stride, padding (numeric [before; after] rows or 'same')
    ("SCB", (9, 2, 3), (3,), (2,), ((1,), (2,))),
    ("SCB", (7, 3, 2), (2,), (1,), "same"),
    ("SSCB", (6, 5, 2, 2), (2, 3), (2, 1), ((1, 0), (0, 2))),
    ("SSCB", (5, 7, 3, 1), (3, 3), (2, 2), "same"),
    ("SSCB", (4, 4, 1, 2), (2, 2), (1, 1), ((0, 0), (0, 0))),
    ("SSSCB", (4, 5, 3, 2, 2), (2, 2, 3), (1, 2, 1), ((1, 0, 1), (0, 1, 2))),
    ("SSSCB", (5, 4, 3, 1, 2), (3, 2, 2), (2, 2, 2), "same"),
]


def _pads_of(case_pad, shape, pool, stride):
    if case_pad == "same":
        pairs = [same_pads(n, p, s) for n, p, s in zip(shape, pool, stride)]
        return tuple(p[0] for p in pairs), tuple(p[1] for p in pairs)
    return case_pad


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[0]}-{c[2]}-{c[4]}")
@pytest.mark.parametrize("mode", ["max", "avg", "mean"])
def test_forward_against_reference(case, mode, rng, dtype):
    fmt, shape, pool, stride, pad = case
    x = rng.standard_normal(shape).astype(dtype)
    before, after = _pads_of(pad, shape, pool, stride)
    expected, idx = ref_pool(x, pool, stride, before, after, mode)
    padding = "same" if pad == "same" else np.array([before, after])
    if mode == "max":
        Y, I, size = ml.maxpool(ml.dlarray(x, fmt), pool, Stride=stride, Padding=padding,
                                nargout=3)
        np.testing.assert_array_equal(ml.extractdata(Y), expected.astype(dtype))
        np.testing.assert_array_equal(ml.extractdata(I), idx + 1)
        assert I.dims == fmt and ml.extractdata(I).dtype == np.float64
        assert list(size) == list(shape)
        assert ml.extractdata(Y).dtype == dtype
    else:
        pv = "mean" if mode == "mean" else 0
        y = _run(ml.avgpool, x, fmt, pool, Stride=stride, Padding=padding, PaddingValue=pv)
        assert y.dtype == dtype
        assert_close(y, expected, dtype, fan_in=math.prod(pool))


@settings(max_examples=25, deadline=None)
@given(st.data())
def test_forward_random_geometry(data):
    """Random sizes, pool sizes, strides and pads (property test against the reference)."""
    d = data.draw(st.integers(1, 3))
    pool = tuple(data.draw(st.integers(1, 3)) for _ in range(d))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(d))
    before = tuple(data.draw(st.integers(0, p - 1)) for p in pool)
    after = tuple(data.draw(st.integers(0, p - 1)) for p in pool)
    size = tuple(data.draw(st.integers(max(1, p - b - a), 6)) for p, b, a in
                 zip(pool, before, after))
    c, n = data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))
    seed = data.draw(st.integers(0, 2**31 - 1))
    x = np.random.default_rng(seed).standard_normal(size + (c, n))
    fmt = "S" * d + "CB"
    for mode in ("max", "avg", "mean"):
        expected, idx = ref_pool(x, pool, stride, before, after, mode)
        if mode == "max":
            Y, I, _ = ml.maxpool(ml.dlarray(x, fmt), pool, Stride=stride,
                                 Padding=np.array([before, after]), nargout=3)
            np.testing.assert_array_equal(ml.extractdata(Y), expected)
            np.testing.assert_array_equal(ml.extractdata(I), idx + 1)
        else:
            y = _run(ml.avgpool, x, fmt, pool, Stride=stride,
                     Padding=np.array([before, after]),
                     PaddingValue="mean" if mode == "mean" else 0)
            np.testing.assert_allclose(y, expected, rtol=1e-12, atol=1e-14)


def test_matlab_documented_pitfall_numbers(dtype):
    """§8 item 10: stride 1 by default; 'same' pads bottom/right; PaddingValue 'mean';
    padding never wins a max."""
    x = np.array([[1, 2], [3, 4]], dtype=dtype).reshape(2, 2, 1, 1)
    X = ml.dlarray(x, "SSCB")
    y = ml.extractdata(ml.avgpool(X, 2, Padding="same"))[:, :, 0, 0]
    np.testing.assert_array_equal(y, np.array([[2.5, 1.5], [1.75, 1]], dtype=dtype))
    y = ml.extractdata(ml.avgpool(X, 2, Padding="same", PaddingValue="mean"))[:, :, 0, 0]
    np.testing.assert_array_equal(y, np.array([[2.5, 3], [3.5, 4]], dtype=dtype))
    y = ml.extractdata(ml.maxpool(-X, 2, Padding="same"))[:, :, 0, 0]
    np.testing.assert_array_equal(y, -x[:, :, 0, 0])
    assert ml.maxpool(ml.dlarray(np.zeros((4, 4, 1, 1), dtype), "SSCB"), 2).shape == \
        (3, 3, 1, 1)


def test_indices_hand_worked_example():
    """MATLAB's [Y, indx] = maxpool(X, 2, 'Stride', 2) on a 4x4x1x2 input whose values
    are the column-major element numbers (X(:) = 1:32), so each window's max is its
    bottom-right cell: X(2,2) = 6, X(4,2) = 8, X(2,4) = 14, X(4,4) = 16 in observation 1,
    and 16 more in observation 2."""
    x = np.arange(1.0, 33.0).reshape((4, 4, 1, 2), order="F")
    Y, I, size = ml.maxpool(ml.dlarray(x, "SSCB"), 2, Stride=2, nargout=3)
    np.testing.assert_array_equal(ml.extractdata(I)[:, :, 0, 0], [[6, 14], [8, 16]])
    np.testing.assert_array_equal(ml.extractdata(I)[:, :, 0, 1], [[22, 30], [24, 32]])
    np.testing.assert_array_equal(ml.extractdata(Y), ml.extractdata(I))
    np.testing.assert_array_equal(size, [4, 4, 1, 2])
    # ties: the first cell in column-major order wins (all equal: the top-left)
    I = ml.maxpool(ml.dlarray(np.ones((4, 4, 1, 1)), "SSCB"), 2, Stride=2, nargout=3)[1]
    np.testing.assert_array_equal(ml.extractdata(I)[:, :, 0, 0], [[1, 9], [3, 11]])
    # channel 2 of a 3x3x2 input starts at element 10
    x = np.zeros((3, 3, 2, 1))
    x[1, 2, 1, 0] = 5.0                        # X(2,3,2): 2 + 3*2 + 9*1 = 17
    I = ml.maxpool(ml.dlarray(x, "SSCB"), 3, nargout=3)[1]
    assert ml.extractdata(I)[0, 0, 1, 0] == 17


def test_global_pooling(rng, dtype):
    x = rng.standard_normal((4, 5, 3, 2)).astype(dtype)
    X = ml.dlarray(x, "SSCB")
    y = ml.extractdata(ml.avgpool(X, "global"))
    assert y.shape == (1, 1, 3, 2)
    assert_close(y, x.astype(np.float64).mean(axis=(0, 1), keepdims=True), dtype, 20)
    y = ml.extractdata(ml.maxpool(X, "glob"))
    np.testing.assert_array_equal(y, x.max(axis=(0, 1), keepdims=True))


def test_time_pooling_and_folding(rng, dtype):
    """PoolFormat 'T' pools the T dimension of CBT data; without it, SSCBT time steps are
    pooled independently (T folded into the observations)."""
    x = rng.standard_normal((3, 2, 9)).astype(dtype)          # C x B x T
    y = ml.extractdata(ml.maxpool(ml.dlarray(x, "CBT"), 3, Stride=2, PoolFormat="T"))
    ref, _ = ref_pool(x.transpose(2, 0, 1), (3,), (2,), (0,), (0,), "max")
    np.testing.assert_array_equal(y, ref.transpose(1, 2, 0).astype(dtype))
    Y, I, _ = ml.maxpool(ml.dlarray(x, "CBT"), 3, PoolFormat="T", nargout=3)
    flat = x.reshape(-1, order="F")
    # the indices point into the whole C x B x T input
    np.testing.assert_array_equal(flat[ml.extractdata(I).astype(np.int64) - 1],
                                  ml.extractdata(Y))
    x = rng.standard_normal((5, 4, 2, 2, 3)).astype(dtype)    # S S C B T
    y = ml.extractdata(ml.avgpool(ml.dlarray(x, "SSCBT"), 2))
    for t in range(3):
        ref, _ = ref_pool(x[..., t], (2, 2), (1, 1), (0, 0), (0, 0), "avg")
        assert_close(y[..., t], ref, dtype, 4)


def test_dataformat_unformatted_input(rng):
    x = rng.standard_normal((2, 3, 6, 5))                      # B C S S
    Y = ml.maxpool(x, [2, 3], DataFormat="BCSS")
    assert Y.dims == ""
    ref, _ = ref_pool(x.transpose(2, 3, 1, 0), (2, 3), (1, 1), (0, 0), (0, 0), "max")
    np.testing.assert_array_equal(ml.extractdata(Y), ref.transpose(3, 2, 0, 1))
    err = check(lambda X: ml.sum(ml.avgpool(X, 2, DataFormat="BCSS") ** 2, "all"), [x],
                [""])
    assert err[0] < 1e-7


def test_nan_and_inf():
    x = np.arange(16.0).reshape(4, 4, 1, 1)
    x[1, 0, 0, 0] = np.nan
    x[3, 3, 0, 0] = np.inf
    Y, I, _ = ml.maxpool(ml.dlarray(x, "SSCB"), 2, Stride=2, nargout=3)
    y, i = ml.extractdata(Y)[:, :, 0, 0], ml.extractdata(I)[:, :, 0, 0]
    assert np.isnan(y[0, 0]) and i[0, 0] == 2            # the NaN's own index
    assert y[1, 1] == np.inf and i[1, 1] == 16
    a = ml.extractdata(ml.avgpool(ml.dlarray(x, "SSCB"), 2, Stride=2))[:, :, 0, 0]
    assert np.isnan(a[0, 0]) and a[1, 1] == np.inf and np.isfinite(a[0, 1])
    # MATLAB pads max pooling with -realmax (codegen source): it shows only where every
    # real cell of a padded window is -Inf; package_defaults(maxpool_padding="-Inf")
    # lets padded cells never win
    for dt in (np.float32, np.float64):
        X = ml.dlarray(np.full((2, 2, 1, 1), -np.inf, dtype=dt), "SSCB")
        y = ml.extractdata(ml.maxpool(X, 2, Padding="same"))[:, :, 0, 0]
        realmax = np.finfo(dt).max
        np.testing.assert_array_equal(y, np.array([[-np.inf, -realmax],
                                                   [-realmax, -realmax]], dtype=dt))
        with ml.package_defaults(maxpool_padding="-Inf"):
            y = ml.extractdata(ml.maxpool(X, 2, Padding="same"))
        assert np.all(y == -np.inf)


# --------------------------------------------------------------------------- backward

GRAD_CASES = [
    ("SCB", (7, 2, 2), 3, dict(Stride=2, Padding=1)),
    ("SSCB", (5, 6, 2, 2), [2, 3], dict(Stride=[2, 1], Padding=np.array([[1, 0], [0, 2]]))),
    ("SSCB", (5, 5, 1, 2), 3, dict(Padding="same")),
    ("SSCB", (4, 5, 2, 1), 2, dict()),                       # overlapping windows
    ("SSSCB", (4, 3, 4, 1, 2), [2, 2, 3], dict(Stride=[1, 2, 1], Padding="same")),
]


@pytest.mark.parametrize("case", GRAD_CASES, ids=lambda c: f"{c[0]}-{c[3]}")
@pytest.mark.parametrize("op", ["max", "avg", "mean"])
def test_gradients_against_finite_differences(case, op, rng):
    fmt, shape, pool, kw = case
    x = rng.permutation(np.arange(math.prod(shape), dtype=np.float64)).reshape(shape) / 7
    w = None

    def fun(X):
        nonlocal w
        if op == "max":
            Y = ml.maxpool(X, pool, **kw)
        else:
            Y = ml.avgpool(X, pool, PaddingValue="mean" if op == "mean" else 0, **kw)
        if w is None:
            w = rng.standard_normal(ml.extractdata(Y).shape)
        return ml.sum(Y * ml.dlarray(w, fmt), "all")
    err = check(fun, [x], [fmt])
    assert err[0] < 1e-7


def test_maxunpool_forward_and_gradient(rng, dtype):
    x = rng.standard_normal((5, 6, 2, 2)).astype(dtype)
    Y, I, size = ml.maxpool(ml.dlarray(x, "SSCB"), 2, Stride=2, nargout=3)
    Z = ml.maxunpool(Y, I, size)
    z = ml.extractdata(Z)
    assert Z.dims == "SSCB" and z.shape == x.shape and z.dtype == dtype
    lin = ml.extractdata(I).reshape(-1).astype(np.int64) - 1
    expected = np.zeros(x.size, dtype=dtype)
    expected[lin] = x.reshape(-1, order="F")[lin]
    np.testing.assert_array_equal(z, expected.reshape(x.shape, order="F"))
    # maxpool(maxunpool(...)) gives the pooled values back where windows do not overlap
    np.testing.assert_array_equal(ml.extractdata(ml.maxpool(Z, 2, Stride=2)),
                                  ml.extractdata(Y))
    # (tests.gradcheck perturbs C-ordered arrays in place)
    y = np.ascontiguousarray(ml.extractdata(Y), dtype=np.float64)
    i = ml.extractdata(I)
    err = check(lambda Yd: ml.sum(ml.maxunpool(Yd, ml.dlarray(i, "SSCB"), size) ** 2, "all"),
                [y], ["SSCB"])
    assert err[0] < 1e-7


def test_maxunpool_repeated_index_keeps_the_last_value():
    """Overlapping windows share winners: the cell is written (not summed), and its
    gradient goes to the last value written there."""
    x = np.array([[1.0, 5.0, 2.0]]).reshape(3, 1, 1, order="F")  # S=3 C=1 B=1
    Y, I, size = ml.maxpool(ml.dlarray(x, "SCB"), 2, nargout=3)
    np.testing.assert_array_equal(ml.extractdata(I).reshape(-1), [2, 2])
    z = ml.extractdata(ml.maxunpool(Y, I, size)).reshape(-1)
    np.testing.assert_array_equal(z, [0, 5, 0])

    def f(Yd):
        return ml.sum(ml.maxunpool(Yd, I, size) * ml.dlarray(np.array([1.0, 3.0, 1.0]).reshape(
            3, 1, 1), "SCB"), "all")
    g = ml.dlfeval(lambda Yd: ml.dlgradient(f(Yd), Yd), ml.dlarray(ml.extractdata(Y), "SCB"))
    np.testing.assert_array_equal(ml.extractdata(g).reshape(-1), [0, 3])


def test_maxpool_gradient_goes_to_the_first_max():
    x = np.ones((2, 2, 1, 1))
    g = ml.dlfeval(lambda X: ml.dlgradient(ml.sum(ml.maxpool(X, 2), "all"), X),
                   ml.dlarray(x, "SSCB"))
    np.testing.assert_array_equal(ml.extractdata(g)[:, :, 0, 0], [[1, 0], [0, 0]])


def test_thread_count_independence(rng):
    """Forward, indices and both backward passes are bitwise the same on 1 and 2 threads
    (sizes above the kernels' parallel threshold)."""
    x = rng.standard_normal((40, 36, 8, 12)).astype(np.float32)
    w = None

    def run():
        nonlocal w
        def f(X):
            nonlocal w
            Y, I, _ = ml.maxpool(X, 3, Stride=2, Padding="same", nargout=3)
            A = ml.avgpool(X, [3, 2], Padding=1, PaddingValue="mean")
            if w is None:
                w = (rng.standard_normal(Y.shape).astype(np.float32),
                     rng.standard_normal(A.shape).astype(np.float32))
            loss = ml.sum(Y * ml.dlarray(w[0], "SSCB"), "all") + \
                ml.sum(A * ml.dlarray(w[1], "SSCB"), "all")
            return Y, I, A, ml.dlgradient(loss, X)
        return [ml.extractdata(v) for v in ml.dlfeval(f, ml.dlarray(x, "SSCB"))]
    with _ops.threads(1):
        one = run()
    with _ops.threads(2):
        two = run()
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


# --------------------------------------------------------------------------- PyTorch

def _to_torch(x):
    """MATLAB H x W x C x N -> torch N x C x H x W (and 1-D/3-D alike)."""
    d = x.ndim - 2
    return np.ascontiguousarray(x.transpose((d + 1, d) + tuple(range(d))))


def _from_torch(t, d):
    a = t.detach().numpy()
    return a.transpose(tuple(range(2, d + 2)) + (1, 0))


@pytest.mark.parametrize("d,size,k,s,p", [
    (1, (11,), 3, 2, 1), (2, (9, 8), 3, 2, 1), (2, (8, 8), 2, 1, 0), (3, (6, 5, 7), 3, 2, 1),
])
@pytest.mark.parametrize("op", ["max", "avg", "mean"])
def test_against_torch(d, size, k, s, p, op, rng, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal(size + (3, 2)).astype(dtype)
    fmt = "S" * d + "CB"
    xt = torch.from_numpy(_to_torch(x)).requires_grad_(True)
    if op == "max":
        yt, it = getattr(F, f"max_pool{d}d")(xt, k, stride=s, padding=p, return_indices=True)
    else:
        # MATLAB's stride default is 1, so it is always passed explicitly to torch
        yt = getattr(F, f"avg_pool{d}d")(xt, k, stride=s, padding=p,
                                        count_include_pad=(op == "avg"))
    w = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    (yt * torch.from_numpy(w)).sum().backward()

    def f(X):
        if op == "max":
            Y, I, _ = ml.maxpool(X, k, Stride=s, Padding=p, nargout=3)
        else:
            Y = ml.avgpool(X, k, Stride=s, Padding=p,
                           PaddingValue="mean" if op == "mean" else 0)
            I = Y
        loss = ml.sum(Y * ml.dlarray(_from_torch(torch.from_numpy(w), d), fmt), "all")
        return Y, I, ml.dlgradient(loss, X)
    Y, I, G = ml.dlfeval(f, ml.dlarray(x, fmt))
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-13)
    np.testing.assert_allclose(ml.extractdata(Y), _from_torch(yt, d), **tol)
    np.testing.assert_allclose(ml.extractdata(G), _from_torch(xt.grad, d), **tol)
    if op == "max":
        # torch: row-major offsets within each (n, c) plane; MATLAB: 1-based column-major
        # linear indices into the whole array
        ti = _from_torch(it, d).astype(np.int64)
        sub = np.unravel_index(ti, size, order="C")
        c_idx = np.arange(3).reshape((1,) * d + (3, 1))
        n_idx = np.arange(2).reshape((1,) * d + (1, 2))
        full = tuple(np.broadcast_to(a, ti.shape) for a in sub) + (
            np.broadcast_to(c_idx, ti.shape), np.broadcast_to(n_idx, ti.shape))
        expected = np.ravel_multi_index(full, x.shape, order="F") + 1
        np.testing.assert_array_equal(ml.extractdata(I), expected)


def test_maxunpool_against_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((6, 8, 3, 2))
    xt = torch.from_numpy(_to_torch(x))
    yt, it = F.max_pool2d(xt, 2, stride=2, return_indices=True)
    zt = F.max_unpool2d(yt, it, 2, stride=2, output_size=xt.shape[2:])
    Y, I, size = ml.maxpool(ml.dlarray(x, "SSCB"), 2, Stride=2, nargout=3)
    np.testing.assert_array_equal(ml.extractdata(ml.maxunpool(Y, I, size)),
                                  _from_torch(zt, 2))


# --------------------------------------------------------------------------- errors

def test_errors():
    X = ml.dlarray(np.zeros((4, 4, 1, 1)), "SSCB")
    with pytest.raises(ValueError, match=r"^maxpool: Padding must be smaller than the pool "
                                         r"size \(2\) along dimension 1, got 2$"):
        ml.maxpool(X, 2, Padding=2)
    with pytest.raises(ValueError, match=r"^avgpool: poolSize must be a positive integer"):
        ml.avgpool(X, 0)
    with pytest.raises(ValueError, match=r"^avgpool: poolSize must be"):
        ml.avgpool(X, [2, 2, 2])
    with pytest.raises(ValueError, match=r"^avgpool: the padded input \(4 \+ 0 \+ 0\) must be "
                                         r"at least the pool size 5"):
        ml.avgpool(X, 5)
    with pytest.raises(ValueError, match=r"^avgpool: PaddingValue must be 0 or 'mean', got 1"):
        ml.avgpool(X, 2, PaddingValue=1)
    with pytest.raises(TypeError, match=r"^maxpool: unknown name 'PaddingValue'"):
        ml.maxpool(X, 2, PaddingValue=0)
    with pytest.raises(ValueError, match=r"^maxpool: nargout must be 1, 2 or 3, got 4"):
        ml.maxpool(X, 2, nargout=4)
    with pytest.raises(ValueError, match=r"^maxpool: X must have a spatial \(S\) dimension"):
        ml.maxpool(ml.dlarray(np.zeros((3, 2)), "CB"), 2)
    with pytest.raises(ValueError, match=r"^maxpool: PoolFormat has a T dimension but X"):
        ml.maxpool(X, 2, PoolFormat="T")
    with pytest.raises(ValueError, match=r"^avgpool: Stride must be a positive integer"):
        ml.avgpool(X, 2, Stride=0)
    Y, I, size = ml.maxpool(X, 2, Stride=2, nargout=3)
    with pytest.raises(ValueError, match=r"^maxunpool: indx must be positive integer linear "
                                         r"indices"):
        ml.maxunpool(Y, ml.dlarray(ml.extractdata(I) + 100, "SSCB"), size)
    with pytest.raises(ValueError, match=r"^maxunpool: indx must have as many elements as Y"):
        ml.maxunpool(Y, np.ones(3), size)
    with pytest.raises(ValueError, match=r"^maxunpool: inputSize must be a vector of "
                                         r"positive integers"):
        ml.maxunpool(Y, I, [4, 0, 1, 1])
    with pytest.raises(ValueError, match=r"^maxunpool: indx must have the format of Y"):
        ml.maxunpool(Y, ml.dlarray(ml.extractdata(I), "SSCU"), size)


def test_maxunpool_refuses_outputs_larger_than_memory():
    X = ml.dlarray(np.ones((2, 2, 1, 1)), "SSCB")
    with pytest.raises(ValueError, match=r"^maxunpool: the output of size 1000000×1000000×1×1 "
                                         r"would need .* more than the maximum array size"):
        ml.maxunpool(X, np.ones((2, 2, 1, 1)), [1e6, 1e6, 1, 1])


def test_float32_average_sums_in_double(rng):
    """Average pooling sums float32 data in double and rounds once: a global average of
    40000 values is within one float32 ulp of the float64 mean."""
    x = (rng.random((200, 200, 2, 1)) + 100).astype(np.float32)
    y = ml.extractdata(ml.avgpool(ml.dlarray(x, "SSCB"), "global")).reshape(-1)
    ref = x.astype(np.float64).mean(axis=(0, 1)).reshape(-1)
    assert np.all(np.abs(y - ref) <= np.spacing(ref.astype(np.float32)))


def test_pool_format_selects_the_pooled_dimensions(rng):
    """PoolFormat 'T' pools only T (the S dimensions are pooled independently, like C and
    B); 'SST' pools both S dimensions and T.  Gradients through these relabellings."""
    x = rng.standard_normal((4, 5, 2, 3, 6))                    # S S C B T
    y = ml.extractdata(ml.maxpool(ml.dlarray(x, "SSCBT"), 3, PoolFormat="T"))
    np.testing.assert_array_equal(y, np.stack([x[..., t:t + 3].max(-1) for t in range(4)], -1))
    y = ml.extractdata(ml.avgpool(ml.dlarray(x, "SSCBT"), [2, 2, 3], PoolFormat="SST",
                                  Stride=[1, 2, 3]))
    ref = np.zeros((3, 2, 2, 3, 2))
    for i, j, t in itertools.product(range(3), range(2), range(2)):
        ref[i, j, :, :, t] = x[i:i + 2, 2 * j:2 * j + 2, :, :, 3 * t:3 * t + 3].mean(
            axis=(0, 1, 4))
    np.testing.assert_allclose(y, ref, rtol=1e-12, atol=1e-14)
    w = rng.standard_normal((4, 5, 2, 3, 4))
    xd = rng.permutation(np.arange(x.size, dtype=np.float64)).reshape(x.shape) / 7  # no ties
    err = check(lambda X: ml.sum(ml.maxpool(X, 3, PoolFormat="T") * ml.dlarray(w, "SSCBT"),
                                 "all"), [xd], ["SSCBT"])
    assert err[0] < 1e-7
    xc = rng.standard_normal((3, 2, 9))
    w = rng.standard_normal((3, 2, 5))
    err = check(lambda X: ml.sum(ml.avgpool(X, 3, Stride=2, Padding=1, PoolFormat="T",
                                            PaddingValue="mean") * ml.dlarray(w, "CBT"),
                                 "all"), [xc], ["CBT"])
    assert err[0] < 1e-7


def test_unformatted_indices_refer_to_the_input_as_given(rng):
    """With DataFormat, X(indx) == Y in X's own dimension order, inputSize = size(X), and
    maxunpool(..., DataFormat=...) returns zeros of that size with the maxima in place."""
    x = rng.permutation(np.arange(180, dtype=np.float64)).reshape(2, 3, 6, 5)   # B C S S
    Y, I, size = ml.maxpool(x, 2, Stride=2, DataFormat="BCSS", nargout=3)
    i = ml.extractdata(I).astype(np.int64)
    np.testing.assert_array_equal(x.reshape(-1, order="F")[i - 1], ml.extractdata(Y))
    assert list(size) == [2, 3, 6, 5] and Y.dims == "" and I.dims == ""
    Z = ml.maxunpool(Y, I, size, DataFormat="BCSS")
    expected = np.zeros(x.size)
    expected[i.reshape(-1) - 1] = x.reshape(-1, order="F")[i.reshape(-1) - 1]
    np.testing.assert_array_equal(ml.extractdata(Z), expected.reshape(x.shape, order="F"))
    w = rng.standard_normal(x.shape)
    y = np.ascontiguousarray(ml.extractdata(Y))
    err = check(lambda Yd: ml.sum(ml.maxunpool(Yd, I, size, DataFormat="BCSS") *
                                  ml.dlarray(w), "all"), [y], [""])
    assert err[0] < 1e-7


def test_checked_geometries_are_reused_only_for_the_same_call():
    """The pooling seam remembers a checked geometry per (shape, options): a repeated
    call, other options on the same shape, list-valued options and bad options all still
    give the reference or the error."""
    from mlayers import _ops_pool
    x = np.asfortranarray(np.random.default_rng(8).standard_normal((9, 7, 3, 2)))
    for pool, stride, pad in [((3, 2), (2, 1), ((1, 0), (1, 1))),
                              ((3, 2), (2, 1), ((1, 0), (1, 1))),
                              ((3, 2), (1, 1), ((0, 0), (0, 0))), ([2, 2], [2, 2], 0)]:
        b, a = (pad, pad) if np.isscalar(pad) else pad
        b = (b, b) if np.isscalar(b) else b
        a = (a, a) if np.isscalar(a) else a
        y = _ops_pool.pool(x, pool, stride, pad, "max")
        assert_close(y, ref_pool(x, tuple(pool), tuple(stride), b, a, "max")[0], np.float64, 1)
    with pytest.raises(ValueError, match="Padding must be smaller than PoolSize"):
        _ops_pool.pool(x, (3, 2), (2, 1), ((3, 0), (1, 1)), "max")
