"""The pooling fast paths (issue 20) against NumPy references and the general kernels.

* max pooling 2x2, stride 2, no padding (``_pool``'s row kernels, and the two-pass form
  when the windows tile the plane): values, winners (first
  maximum in MATLAB's column-major order, the first NaN when there is one) and the gradient,
  on data full of ties, signed zeros, -Inf and NaN, odd sizes (a leftover row/column);
* global average pooling as a reduction on X's own memory (``_ops_pool.global_average``:
  leading S dimensions, trailing T): the same numbers as the general kernel, NumPy's mean.
"""
import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops, _ops_pool, _pool


def _nasty(rng, shape, dtype):
    x = rng.integers(-2, 3, shape).astype(dtype)
    u = rng.random(shape)
    x[u < 0.04] = np.nan
    x[(u >= 0.04) & (u < 0.1)] = -np.inf
    x[(u >= 0.1) & (u < 0.25)] = -0.0
    return np.asfortranarray(x)


def _ref_max22(x):
    """Per 2x2 window (H fastest): value and 0-based column-major linear index."""
    h, w = x.shape[:2]
    rest = x.shape[2:]
    oh, ow = h // 2, w // 2
    y = np.empty((oh, ow) + rest, dtype=x.dtype)
    idx = np.empty((oh, ow) + rest, dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            for r in np.ndindex(*rest):
                cells = [(2 * i, 2 * j), (2 * i + 1, 2 * j), (2 * i, 2 * j + 1),
                         (2 * i + 1, 2 * j + 1)]
                vals = [x[(a, b) + r] for a, b in cells]
                nans = [k for k, v in enumerate(vals) if np.isnan(v)]
                if nans:
                    k = nans[0]
                else:
                    m = max(vals)
                    k = next(q for q, v in enumerate(vals) if v == m)
                y[(i, j) + r] = vals[k]
                idx[(i, j) + r] = np.ravel_multi_index(cells[k] + r, x.shape, order="F")
    return y, idx


def _check_max(rng, x, ys, win, ref_y, ref_i):
    """Max pooling's values (signed zeros too: the first of -0 and +0), winners and
    gradient (dY added at the winners) against the reference's."""
    for got in ys:
        assert got.dtype == x.dtype
        np.testing.assert_array_equal(got, ref_y)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref_y))
    np.testing.assert_array_equal(win.linear_indices(), ref_i)
    dy = rng.standard_normal(ref_y.shape).astype(x.dtype)
    dx = _ops_pool.maxpool_backward(dy, win, x.dtype)
    ref_dx = np.zeros(x.size, dtype=x.dtype)
    np.add.at(ref_dx, ref_i.ravel(order="F"), dy.ravel(order="F"))
    np.testing.assert_array_equal(dx.ravel(order="F"), ref_dx)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
# (exact tilings take two passes in blocks of rows: 130 x 128, five blocks; rows of more
# than 1024 windows, 2050 x 4, the one-pass rows)
@pytest.mark.parametrize("shape", [(6, 4, 3, 2), (7, 5, 2, 3), (2, 2, 1, 1), (9, 8, 1, 2),
                                   (130, 128, 1, 1), (2050, 4, 1, 1)])
def test_max22_values_winners_gradient(dtype, shape):
    rng = np.random.default_rng(sum(shape))
    x = _nasty(rng, shape, dtype)
    ref_y, ref_i = _ref_max22(x)
    y = _ops_pool.pool(x, 2, 2, 0, "max")
    y2, win = _ops_pool.maxpool_indices(x, 2, 2, 0)
    _check_max(rng, x, (y, y2), win, ref_y, ref_i)


def _ref_max22_values(x, winners=False):
    """_ref_max22's values (and ``winners``: 0-based column-major linear indices),
    vectorized: the four cells of each window in column-major order, the first equal to the
    maximum (so the first of -0 and +0), or the first NaN."""
    cells = np.stack([x[0::2, 0::2], x[1::2, 0::2], x[0::2, 1::2], x[1::2, 1::2]])
    nan = np.isnan(cells)
    m = np.max(np.where(nan, -np.inf, cells), axis=0)
    first = np.where(nan.any(axis=0), np.argmax(nan, axis=0), np.argmax(cells == m, axis=0))
    y = np.take_along_axis(cells, first[None], axis=0)[0]
    y[nan.any(axis=0)] = np.nan
    if not winners:
        return y
    i, j = np.meshgrid(np.arange(x.shape[0] // 2), np.arange(x.shape[1] // 2), indexing="ij")
    i = 2 * i[(...,) + (None,) * (x.ndim - 2)] + first % 2
    j = 2 * j[(...,) + (None,) * (x.ndim - 2)] + first // 2
    rest = np.indices(y.shape)[2:]
    return y, np.ravel_multi_index((i, j, *rest), x.shape, order="F")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2, 3])
# (the whole batch as one run of rows per thread, and the winners' plane by plane: uneven
# shares of planes, rows of 1, 3, 7 and 20 windows, whose copies out are shorter and longer
# than one fixed-size copy, and blocks of rows that end inside a plane; every case is large
# enough to take the threads)
@pytest.mark.parametrize("shape", [(14, 14, 16, 25), (2, 2, 16, 1100), (6, 34, 16, 41),
                                   (40, 8, 16, 33)])
def test_max22_across_planes(dtype, threads, shape):
    rng = np.random.default_rng(sum(shape) + threads)
    x = _nasty(rng, shape, dtype)
    ref_y, ref_i = _ref_max22_values(x, winners=True)
    y0, i0 = _ref_max22(x[..., :1])
    np.testing.assert_array_equal(ref_y[..., :1], y0)
    np.testing.assert_array_equal(ref_i[..., :1], i0)
    with ml.threads(threads):
        y = _ops_pool.pool(x, 2, 2, 0, "max")
        y2, win = _ops_pool.maxpool_indices(x, 2, 2, 0)
    for got in (y, y2):
        np.testing.assert_array_equal(got, ref_y)
        np.testing.assert_array_equal(np.signbit(got), np.signbit(ref_y))
    np.testing.assert_array_equal(win.linear_indices(), ref_i)


def test_max22_3d_and_public_indices():
    rng = np.random.default_rng(3)
    x = _nasty(rng, (6, 4, 3, 2, 2), np.float32)          # SSSCB, pool [2 2 1]
    Y, I, size = ml.maxpool(ml.dlarray(x, "SSSCB"), [2, 2, 1], Stride=[2, 2, 1], nargout=3)
    y = np.asarray(Y._data)
    flat = x.ravel(order="F")
    ind = np.asarray(I._data).astype(np.int64) - 1
    np.testing.assert_array_equal(flat[ind], y)
    for k in range(3):
        ry, ri = _ref_max22(np.asfortranarray(x[:, :, k]))
        np.testing.assert_array_equal(y[:, :, k], ry)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_average_leading_and_trailing(dtype):
    rng = np.random.default_rng(5)
    x = np.asfortranarray(rng.standard_normal((5, 7, 3, 19)).astype(dtype))
    x[1, 2, 0, 0] = np.nan
    fast = _ops_pool.global_average(x, [0, 1])
    np.testing.assert_array_equal(fast, _ops_pool.pool(x, (5, 7), 1, 0, "average"))
    ref = x.astype(np.float64).mean(axis=(0, 1), keepdims=True)
    np.testing.assert_allclose(fast, ref, rtol=1e-6 if dtype == np.float32 else 1e-13)
    for cbt in ((6, 5, 40), (64, 33, 7)):                # 2112 columns: several blocks
        x = np.asfortranarray(rng.standard_normal(cbt).astype(dtype))
        Y = ml.avgpool(ml.dlarray(x, "CBT"), "global", PoolFormat="T")
        assert Y.dims == "CBT" and Y.shape == cbt[:2] + (1,)
        ref = x.astype(np.float64).mean(axis=2, keepdims=True)
        np.testing.assert_allclose(Y._data, ref, rtol=1e-6 if dtype == np.float32 else 1e-13)
        assert Y._data.dtype == dtype
    dy = rng.standard_normal((1, 1, 3, 19)).astype(dtype)
    np.testing.assert_array_equal(
        _ops_pool.global_average_backward(dy, (5, 7, 3, 19), np.dtype(dtype)),
        _ops_pool.avgpool_backward(dy, (5, 7, 3, 19), np.dtype(dtype), (5, 7)))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_average_c_ordered(dtype):
    """Data in another dense order (a user's C-ordered array, a layer's permuted output)
    pooled over its contiguous axis takes the reduction on its Fortran-ordered view: the
    same bits as the general pooling, no copy."""
    rng = np.random.default_rng(11)
    x = np.ascontiguousarray(rng.standard_normal((6, 5, 3, 4)).astype(dtype))
    assert _ops_pool.global_average(x, [0, 1]) is None      # another order of the terms
    permuted = rng.standard_normal((33, 64, 40)).astype(dtype).transpose(1, 0, 2)  # B C T
    for shape, axes, fmt in (((64, 33, 40), [2], "CBT"), ((12, 50), [1], "CT"),
                             (None, [2], "CBT")):
        x = np.ascontiguousarray(rng.standard_normal(shape).astype(dtype)) if shape \
            else permuted
        x.flat[7] = np.inf
        fast = _ops_pool.global_average(x, axes)
        assert fast is not None and fast.shape == tuple(1 if i in axes else n
                                                       for i, n in enumerate(x.shape))
        general = np.asarray(ml.avgpool(ml.dlarray(np.asfortranarray(x), fmt), "global",
                                        **({"PoolFormat": "T"} if "T" in fmt else {}))._data)
        np.testing.assert_array_equal(fast, general)
        ref = x.astype(np.float64).mean(axis=tuple(axes), keepdims=True)
        # (means near zero of terms near one: the error is relative to the terms)
        scale = np.abs(x[np.isfinite(x)]).max()
        np.testing.assert_allclose(fast, ref, rtol=0, atol=8 * np.finfo(dtype).eps * scale)


def test_global_average_gradient_is_dy_over_T():
    rng = np.random.default_rng(7)
    x = rng.standard_normal((4, 3, 6))
    w = rng.standard_normal((4, 3, 1))

    def loss(X):
        Y = ml.avgpool(X, "global", PoolFormat="T")
        return ml.sum(Y * ml.dlarray(w, "CBT"), "all")

    def f(X):
        L = loss(X)
        return L, ml.dlgradient(L, X)

    _, g = ml.dlfeval(f, ml.dlarray(x, "CBT"))
    g = np.asarray(g._data)
    np.testing.assert_allclose(g, np.broadcast_to(w / 6, x.shape), rtol=1e-12)


def test_global_average_with_strided_singletons():
    """A singleton axis of any stride (``a[:, None, :]``) does not take the pooled axis's
    place: the reduction is over T, as the general path computes it."""
    rng = np.random.default_rng(13)
    a = rng.standard_normal((4, 10)).astype(np.float32)
    x = a[:, None, :]                                         # C x B(1) x T, B stride 0
    Y = ml.avgpool(ml.dlarray(x, "CBT"), "global", PoolFormat="T")
    assert Y.shape == (4, 1, 1)
    np.testing.assert_allclose(np.asarray(Y._data).ravel(), a.astype(np.float64).mean(axis=1),
                               rtol=1e-6)
    assert ml.globalAveragePooling1dLayer().predict(ml.dlarray(x, "CBT")).shape == (4, 1)
    s = rng.standard_normal((5, 2, 3)).astype(np.float32)[..., None]    # S C B T(1)
    Z = ml.avgpool(ml.dlarray(s, "SCBT"), "global")
    assert Z.shape == (1, 2, 3, 1)
    np.testing.assert_allclose(np.asarray(Z._data)[0, ..., 0], s[..., 0].mean(axis=0),
                               rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_global_average_gradient_keeps_the_input_layout(dtype):
    """The gradient of a global average comes back in the memory order of the input (a
    convolution's B x C x T memory, Fortran; a non-dense view: Fortran), the values dy /
    area in every case, so the layer before gets it without a copy into its layout."""
    rng = np.random.default_rng(14)
    base = rng.standard_normal((3, 4, 6)).astype(dtype)      # B x C x T in memory
    w = rng.standard_normal((4, 3, 1)).astype(dtype)
    for x, order in ((base.transpose(1, 0, 2), [1, 0, 2]),
                     (np.asfortranarray(base.transpose(1, 0, 2)), [2, 1, 0]),
                     (base.transpose(1, 0, 2)[:, :, ::2], None)):
        assert _ops.memory_order(x) == order
        want = np.broadcast_to(w / dtype(x.shape[2]), x.shape)
        dx = _ops_pool.global_average_backward(w, x.shape, dtype, order)
        np.testing.assert_array_equal(dx, want)
        assert dx.transpose(order or (2, 1, 0)).flags.c_contiguous

        def f(X):
            L = ml.sum(ml.avgpool(X, "global", PoolFormat="T") * ml.dlarray(w, "CBT"),
                       "all")
            return ml.dlgradient(L, X)
        g = ml.dlfeval(f, ml.dlarray(x, "CBT"))
        np.testing.assert_array_equal(np.asarray(g._data), want)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_mean_of_contiguous_planes_in_memory_order(dtype):
    """_pool.mean_planes (pool_sum_planes: 16 planes side by side, blocks of 16 values
    turned around in the registers) adds each plane's values in double in memory order:
    bitwise the sequential sum (np.cumsum's last value) over the length, rounded once, for
    plane counts and lengths around its blocks, NaN and Inf included, on 1-3 threads."""
    rng = np.random.default_rng(17)
    for planes, length in ((2048, 256), (37, 1000), (16, 16), (17, 15), (5, 3), (130, 33)):
        x = (rng.standard_normal((planes, length)) * 1e3).astype(dtype)
        x[1, length // 2] = np.nan
        x[planes - 1, 0] = np.inf
        ref = (np.cumsum(x.astype(np.float64), axis=1)[:, -1] / length).astype(dtype)
        for t in (1, 2, 3):
            y = np.empty(planes, dtype)
            _pool.mean_planes(x, y, float(length), t)
            np.testing.assert_array_equal(y, ref)


def _ref_max_windows(x, k, s, p, pad_floor):
    """Any 2-D window, stride and padding, one window at a time (H fastest): the first NaN
    or the first cell equal to the maximum of the window's real cells, its 0-based
    column-major index, and pad_floor for a window with padded cells whose maximum is
    below it (MATLAB's -realmax padding)."""
    h, w = x.shape[:2]
    rest = x.shape[2:]
    oh, ow = (h + 2 * p[0] - k[0]) // s[0] + 1, (w + 2 * p[1] - k[1]) // s[1] + 1
    y = np.empty((oh, ow) + rest, dtype=x.dtype)
    idx = np.empty((oh, ow) + rest, dtype=np.int64)
    for i in range(oh):
        for j in range(ow):
            cells = [(a, b) for b in range(j * s[1] - p[1], j * s[1] - p[1] + k[1])
                     for a in range(i * s[0] - p[0], i * s[0] - p[0] + k[0])
                     if 0 <= a < h and 0 <= b < w]
            for r in np.ndindex(*rest):
                vals = [x[(a, b) + r] for a, b in cells]
                nans = [q for q, v in enumerate(vals) if np.isnan(v)]
                q = nans[0] if nans else next(q for q, v in enumerate(vals)
                                              if v == max(vals))
                v = vals[q]
                if not nans and len(cells) < k[0] * k[1] and v < pad_floor:
                    v = pad_floor
                y[(i, j) + r] = v
                idx[(i, j) + r] = np.ravel_multi_index(cells[q] + r, x.shape, order="F")
    return y, idx


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k,s,p,shape", [
    ((3, 3), (2, 2), (0, 0), (9, 8, 3, 2)), ((3, 3), (2, 2), (1, 1), (9, 8, 3, 2)),
    ((3, 2), (1, 2), (1, 0), (9, 8, 3, 2)), ((2, 2), (1, 1), (0, 1), (9, 8, 3, 2)),
    ((5, 4), (3, 2), (2, 1), (9, 8, 3, 2)),
    # windows along the rows wider than the taps whose spans the kernel tabulates (64)
    ((70, 2), (5, 1), (3, 1), (140, 3, 2, 1))])
def test_max_any_window(dtype, k, s, p, shape):
    """The general max pooling kernel (pool_max_plane: any window, stride, padding) on
    ties, signed zeros, -Inf and NaN: values, winners and gradient against the reference,
    with and without the winners."""
    rng = np.random.default_rng(sum(k + s + p))
    x = _nasty(rng, shape, dtype)
    x[:3, :3, 0, 0] = -np.inf           # a corner of -Inf: padding's floor shows there
    floor = _ops_pool._pad_floor(np.dtype(dtype))
    ref_y, ref_i = _ref_max_windows(x, k, s, p, floor)
    y = _ops_pool.pool(x, k, s, [[p[0], p[1]], [p[0], p[1]]], "max")
    y2, win = _ops_pool.maxpool_indices(x, k, s, [[p[0], p[1]], [p[0], p[1]]])
    _check_max(rng, x, (y, y2), win, ref_y, ref_i)
