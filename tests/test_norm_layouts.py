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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layernorm_channel_only_blocks_are_the_whole_row_loops(rng, dtype):
    """The column form takes positions in register blocks (pyx/_norm_rows.h NRM_CB) and
    the rest in whole-row loops: the same expressions on the same terms, so a position
    gives the same bits either way (here: 31 positions cut from 64, and the block's)."""
    from mlayers import _norm
    x = (rng.standard_normal((3, 9, 64)) * 3 + 1).astype(dtype)
    off, sc = rng.standard_normal(9), rng.standard_normal(9)

    def run(a):
        y = np.empty_like(a)
        m, r = np.empty((a.shape[0], a.shape[2])), np.empty((a.shape[0], a.shape[2]))
        _norm.cnorm_forward(a, off, sc, 1e-5, y, m, r, 1)
        return y, m, r
    whole = run(x)
    for lo, hi in ((0, 31), (33, 64), (32, 64)):
        part = run(np.ascontiguousarray(x[:, :, lo:hi]))
        for w, p in zip(whole, part):
            np.testing.assert_array_equal(w[..., lo:hi], p)


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


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("ni", [1, 7, 31, 32, 33, 95, 1000])
def test_groupnorm_kernel_reduction_lengths(rng, dtype, ni):
    """gn's statistics (partial sums in lanes, the tail after them) for group lengths
    around the lane count, against float64 NumPy, forward and backward."""
    x = np.asfortranarray((rng.standard_normal((ni, 6, 3)) * 2 + 5).astype(dtype))
    off, sc = rng.standard_normal(6), rng.standard_normal(6)
    y, mean, invstd = O.gn(x, 1, 3, off, sc, 1e-5)
    xd = x.astype(np.float64).reshape(ni, 3, 2, 3)        # I x (G, Cg) x O
    mu = xd.mean(axis=(0, 2), keepdims=True)
    r = 1 / np.sqrt(((xd - mu) ** 2).mean(axis=(0, 2), keepdims=True) + 1e-5)
    xh = ((xd - mu) * r).reshape(x.shape)
    ref = xh * sc.reshape(1, 6, 1) + off.reshape(1, 6, 1)
    tol = 2e-6 if dtype == np.float32 else 1e-13
    assert np.max(np.abs(y - ref)) <= tol * np.max(np.abs(ref))
    np.testing.assert_allclose(mean, mu.reshape(3, 3).T.ravel(), rtol=1e-12 if dtype ==
                               np.float64 else 1e-7)
    g = rng.standard_normal(x.shape)
    dx, dscale, doffset = O.gn_backward(x, g.astype(dtype), 1, 3, mean, invstd, sc)
    gh = (g * sc.reshape(1, 6, 1)).reshape(ni, 3, 2, 3)
    xh4 = xh.reshape(ni, 3, 2, 3)
    dxr = (r * (gh - gh.mean(axis=(0, 2), keepdims=True)
                - xh4 * (gh * xh4).mean(axis=(0, 2), keepdims=True))).reshape(x.shape)
    # dx cancels (to ~0 for two-element groups): compared against the scale of its terms
    assert np.max(np.abs(dx - dxr)) <= tol * 10 * np.max(np.abs(gh)) * np.max(r)
    np.testing.assert_allclose(doffset, g.sum(axis=(0, 2)), rtol=tol * 10, atol=tol * 100)
    np.testing.assert_allclose(dscale, (g * xh).sum(axis=(0, 2)), rtol=tol * 10,
                               atol=tol * 100)


@pytest.mark.parametrize("ni, cg, ng, no", [(1024, 1, 3, 5), (1031, 3, 2, 4),
                                             (1100, 2, 1, 7), (1056, 5, 4, 3)])
def test_groupnorm_pipelined_groups_same_bits(rng, ni, cg, ng, no):
    """float32 groups with long rows take the next group's sums while a group's result is
    written (rows not a multiple of the lanes: the sums in parts): the same bits as the
    groups taken one at a time (the streaming path), on 1-3 threads (runs of groups of
    every length), NaN and Inf kept to their group; within float32 of float64 NumPy."""
    from mlayers import _norm
    # (magnitudes spread over 2^-8 ... 2^8: sums whose rounding depends on their order)
    x = (rng.standard_normal((no, ng * cg, ni))
         * np.exp2(rng.integers(-8, 9, (no, ng * cg, ni))) + 3).astype(np.float32)
    x[1, 0, 5] = np.nan
    x[-1, -1, -2] = np.inf
    off, sc = rng.standard_normal(ng * cg), rng.standard_normal(ng * cg)
    runs = []
    for threads, stream in ((1, True), (1, False), (2, False), (3, False)):
        y, mean, invstd = np.empty_like(x), np.empty(no * ng), np.empty(no * ng)
        _norm.gn_forward(x, ng, off, sc, 1e-5, y, mean, invstd, threads, stream)
        runs.append((y, mean, invstd))
    for y, mean, invstd in runs[1:]:
        for a, b in zip(runs[0], (y, mean, invstd)):
            assert np.array_equal(a, b, equal_nan=True)
    y, mean, _ = runs[0]
    xd = x.astype(np.float64).reshape(no, ng, cg * ni)
    mu = xd.mean(axis=2, keepdims=True)
    r = 1 / np.sqrt(((xd - mu) ** 2).mean(axis=2, keepdims=True) + 1e-5)
    ref = ((xd - mu) * r).reshape(x.shape) * sc[:, None] + off[:, None]
    bad = ~np.isfinite(mu).reshape(no, ng).repeat(cg, axis=1)      # (o, c) of bad groups
    assert np.isnan(y[bad]).all() and np.isfinite(y[~bad]).all()
    assert np.max(np.abs(y[~bad] - ref[~bad])) <= 2e-6 * np.max(np.abs(ref[~bad]))
    np.testing.assert_allclose(mean[np.isfinite(mu.ravel())], mu[np.isfinite(mu)],
                               rtol=1e-12)


@pytest.mark.parametrize("first", [0.0, 1e3, 1e6, -3e7])
def test_groupnorm_statistics_one_pass_and_fallback(first):
    """float32 group statistics take one pass of the sums of x - x[0] (exact terms in
    double) unless the mean lies far from x[0] (outliers first, 6000 values: the mean is
    55 spreads away, past the 32 where the two passes take over): either way mean and
    variance as float64 NumPy's two passes give them."""
    rng = np.random.default_rng(4)
    x = np.asfortranarray((rng.standard_normal((3000, 4, 5)) * 0.5 + 2).astype(np.float32))
    x[0, :, :] = first or x[0, :, :]
    off, sc = np.zeros(4), np.ones(4)
    _, mean, invstd = O.gn(x, 1, 2, off, sc, 0.0)
    xd = x.astype(np.float64).reshape(3000, 2, 2, 5)             # I x (G, Cg) x O
    mu = xd.mean(axis=(0, 2)).T.ravel()
    var = xd.var(axis=(0, 2)).T.ravel()
    np.testing.assert_allclose(mean, mu, rtol=1e-13)
    np.testing.assert_allclose(1 / np.asarray(invstd) ** 2, var, rtol=1e-9)


@pytest.mark.parametrize("fmt, shape, w", [("SSCB", (12, 12, 16, 40), 5),
                                           ("SSCB", (8, 8, 40, 40), 21),
                                           ("CBT", (24, 30, 100), 3)])
def test_crosschannelnorm_slabs_on_threads(fmt, shape, w):
    """crosschannelnorm computes in slabs of the last dimension on several threads: the
    same bits as one thread, against the float64 formula; an Inf or NaN reaches only the
    outputs whose window holds it (wide windows too, whose running-sum differences would
    spread it)."""
    rng = np.random.default_rng(6)
    x = np.asfortranarray(rng.standard_normal(shape).astype(np.float32))
    x.flat[3], x.flat[50] = np.inf, np.nan
    g = rng.standard_normal(shape).astype(np.float32)
    op = ml.crosschannelnorm.__wrapped_operation__
    out = []
    for nt in (1, 2, 3):
        with ml.threads(nt):
            y, back = op(ml.dlarray(x, fmt), w)
            out.append((np.asarray(y._data), np.asarray(back(g)[0])))
    for y, dx in out[1:]:
        np.testing.assert_array_equal(y, out[0][0])
        np.testing.assert_array_equal(dx, out[0][1])
    c = fmt.index("C")
    xd = np.moveaxis(x.astype(np.float64), c, 0)
    lo, hi = (w - 1) // 2, w // 2
    with np.errstate(invalid="ignore"):
        ss = np.stack([(xd[max(0, k - lo):k + hi + 1] ** 2).sum(axis=0)
                       for k in range(xd.shape[0])])
        ref = np.moveaxis(xd / (2 + 1e-4 * ss / w) ** 0.75, 0, c)
    np.testing.assert_array_equal(np.isnan(out[0][0]), np.isnan(ref))
    fin = np.isfinite(ref)
    np.testing.assert_allclose(out[0][0][fin], ref[fin], rtol=1e-6)


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="needs fork")
def test_crosschannelnorm_threads_after_fork():
    """A forked child (multiprocessing's default on Linux) inherits the thread pool object
    but not its threads: crosschannelnorm there still runs (a new pool), no hang."""
    import multiprocessing as mp
    x = np.asfortranarray(np.random.default_rng(2).standard_normal((16, 16, 8, 64)),
                          dtype=np.float32)
    with ml.threads(2):
        ref = np.asarray(ml.crosschannelnorm(ml.dlarray(x, "SSCB"), 5)._data)
    ctx = mp.get_context("fork")
    with ctx.Pool(1) as pool:
        out = pool.apply_async(_ccn_in_child, (x,)).get(timeout=60)
    np.testing.assert_array_equal(out, ref)


def _ccn_in_child(x):
    with ml.threads(2):
        return np.asarray(ml.crosschannelnorm(ml.dlarray(x, "SSCB"), 5)._data)
