"""The normalization seam's layout handling and result pool (mlayers._ops_norm).

relu and layer normalization over C alone run on the raw buffer of any dense layout
(C, Fortran, or a permutation such as the B x C x T memory of a convolution output);
large results come from a pool that hands a buffer out again only when nothing references
it.  References: NumPy formulas in float64.
"""
import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops_norm as O


def _layouts(rng, shape, dtype):
    x = rng.standard_normal(shape).astype(dtype) * 3 + 1
    yield "C", x
    yield "F", np.asfortranarray(x)
    p = (1, 0) + tuple(range(2, len(shape)))
    yield "perm", np.ascontiguousarray(x.transpose(p)).transpose(p)
    big = np.asfortranarray(rng.standard_normal(shape[:1] + (2 * shape[1],) + shape[2:]))
    yield "strided", big[:, ::2].astype(dtype)[:, :]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_any_layout_keeps_strides(rng, dtype):
    for name, x in _layouts(rng, (6, 5, 70), dtype):
        y = O.relu(x)
        assert np.array_equal(y, np.maximum(x, 0)), name
        if name != "strided":
            assert y.strides == x.strides, name
        g = rng.standard_normal(x.shape)
        for dy in (g, np.asfortranarray(g), g.astype(dtype).transpose(2, 1, 0).copy()
                   .transpose(2, 1, 0)):
            assert np.array_equal(O.relu_backward(x, dy), np.where(x > 0, dy.astype(dtype), 0))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("shape,dims", [((16, 3, 40), "CBT"), ((5, 16, 4), "SCB"),
                                        ((16, 7), "CB")])
def test_layernorm_channel_only_any_layout(rng, dtype, shape, dims):
    c = dims.index("C")
    nc = shape[c]
    off = rng.standard_normal((nc, 1)).astype(dtype)
    sc = rng.standard_normal((nc, 1)).astype(dtype)
    tol = 2e-6 if dtype == np.float32 else 1e-12
    for name, x in _layouts(rng, shape, dtype):
        X = ml.dlarray._from_canonical(x, dims)
        Y, back = ml.layernorm.__wrapped__(X, ml.dlarray(off), ml.dlarray(sc),
                                           OperationDimension="channel-only")
        xd = x.astype(np.float64)
        mu = xd.mean(axis=c, keepdims=True)
        r = 1 / np.sqrt(((xd - mu) ** 2).mean(axis=c, keepdims=True) + 1e-5)
        cs = [1] * x.ndim
        cs[c] = -1
        xh = (xd - mu) * r
        ref = xh * sc.reshape(cs) + off.reshape(cs)
        assert Y._data.dtype == dtype
        assert np.max(np.abs(Y._data - ref)) <= tol * np.max(np.abs(ref)), name
        g = rng.standard_normal(shape)
        dx, doff, dsc = back(g.astype(dtype))[:3]
        gh = g * sc.reshape(cs)
        dxr = r * (gh - gh.mean(axis=c, keepdims=True)
                   - xh * (gh * xh).mean(axis=c, keepdims=True))
        assert np.max(np.abs(dx - dxr)) <= tol * 10 * np.max(np.abs(dxr)), name
        axes = tuple(k for k in range(x.ndim) if k != c)
        assert np.allclose(doff.ravel(), g.sum(axis=axes), rtol=tol * 10, atol=tol * 100)
        assert np.allclose(dsc.ravel(), (g * xh).sum(axis=axes), rtol=tol * 10,
                           atol=tol * 100)


def test_layernorm_channel_only_thread_independent(rng):
    x = np.asfortranarray(rng.standard_normal((32, 8, 300)).astype(np.float32))
    X = ml.dlarray._from_canonical(x, "CBT")
    off, sc = rng.standard_normal(32), rng.standard_normal(32)
    g = rng.standard_normal(x.shape).astype(np.float32)
    outs = []
    for n in (1, 2):
        with ml.threads(n):
            y, st = O.cnorm(x, 0, off, sc, 1e-5)
            outs.append((y, *O.cnorm_backward(st, g, sc)))
    for a, b in zip(*outs):
        assert np.array_equal(a, b)


def test_pool_never_shares_live_memory(rng):
    x = rng.standard_normal((64, 32, 64)).astype(np.float32)      # 512 KiB: pooled
    y1 = O.relu(x)
    view = y1[3:]
    del y1
    y2 = O.relu(-x)
    assert not np.shares_memory(view, y2)
    assert np.array_equal(view, np.maximum(x, 0)[3:])
    kept = y2.copy()
    del y2, view
    y3 = O.relu(x)              # may reuse a freed buffer: the values are new
    assert np.array_equal(y3, np.maximum(x, 0))
    assert not np.array_equal(y3, kept)
