"""Winograd F(2 x 2, 3 x 3) over planes (pyx/_conv.pyx conv_winograd2d and
conv_weight_grad_winograd2d, their transforms w22_in/w22_dy/w22_out in pyx/_simd.h,
mlayers._ops._run_winograd2d): the convolution, its stride-1 adjoint (dX, the transposed
convolution) and its weight gradient against the sparse-matrix oracle, per instruction
set, float32 and float64, even and odd planes, every padding it takes, one to several jobs
of images and segments, sums over channels in one to several groups of blocks; relu's
values when the bound program asks for them; the same bits on 1 to 3 threads; the
fallback to the other kernels for results that are not finite and for filters of extreme
spread; and the policy."""
import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops
from mlayers import reference as R
from test_kernels import (F32, F64, _fixed, _spy, case_id, check_conv_both_ways,
                          isa_level)  # noqa: F401  (isa_level: a fixture)


@pytest.fixture
def w2_calls(monkeypatch):
    """Every _run_winograd2d result (False: recomputed by another kernel), on problems
    small enough for a quick oracle: past the channel thresholds, which are performance
    policy (test_policy)."""
    calls = _spy(monkeypatch, "_run_winograd2d")
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    monkeypatch.setattr(_ops, "_WINOGRAD2D_MIN_CHANNELS", 1)
    monkeypatch.setattr(_ops, "_WINOGRAD2D_MIN_SMALL", 1)
    monkeypatch.setattr(_ops, "_WINOGRAD2D_MIN_TILES", 0)
    monkeypatch.setattr(_ops, "_WINOGRAD2D_MIN_TILES_DW", 0)
    monkeypatch.setattr(_ops, "_WINOGRAD2D_MIN_CHANNELS_DW", 1)
    return calls


@pytest.fixture
def dw_calls(monkeypatch):
    """Every conv_weight_grad_winograd2d result (False: recomputed by another kernel)."""
    calls = []
    run = _ops._conv.conv_weight_grad_winograd2d

    def spy(*args):
        calls.append(run(*args))
        return calls[-1]
    monkeypatch.setattr(_ops._conv, "conv_weight_grad_winograd2d", spy)
    return calls


def _cases():
    cases = []
    shapes = [((8, 8), [1, 1], [1, 1]), ((7, 9), [1, 1], [1, 1]), ((6, 5), [0, 0], [0, 0]),
              ((5, 6), [1, 0], [0, 1]), ((1, 1), [1, 1], [1, 1]), ((2, 13), [0, 1], [1, 0]),
              ((15, 4), [1, 1], [0, 0]), ((20, 5), [1, 1], [1, 1]), ((19, 6), [1, 0], [0, 1])]
    for i, (size, before, after) in enumerate(shapes):
        for j, (cg, fg, n, dtype) in enumerate([(3, 5, 2, F32), (8, 4, 20, F64),
                                                 (4, 9, 7, F32), (17, 3, 1, F64),
                                                 (150, 6, 2, F64), (12, 10, 3, F32)]):
            c = _fixed(2, size, (3, 3), cg, fg, 1, n, dtype, stride=[1, 1],
                       dilation=[1, 1], before=before, after=after, kind="w22")
            c["seed"] += 37 * i + j
            cases.append(c)
    return cases


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
def test_against_oracle(level, isa_level, w2_calls, dw_calls, monkeypatch):  # noqa: F811
    """(150 channels: the sums over channels in two groups of blocks, the adjoint's over
    the filters in one; 20 images: several jobs and segments; rows of 1 to 10 tiles: the
    transforms' vectors of 8 and 4 tiles, the last 4 overlapping, and single tiles)"""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    isa_level(level)
    monkeypatch.setitem(_ops._state, "threads", 2)
    for c in _cases():
        before, dw_before = len(w2_calls), len(dw_calls)
        check_conv_both_ways(c)
        # (a random filter of few channels may exceed the spread limit: that call then
        # takes the other kernels, against the same oracle; with 8 or more every call of
        # the forward and, padding 1, the adjoint takes F(2 x 2, 3 x 3))
        assert any(w2_calls[before:]), case_id(c)
        if min(c["cg"], c["fg"]) >= 8:
            pad1 = (c["padding"] == 1).all()
            assert all(w2_calls[before:]) and len(w2_calls) - before >= 2 + 2 * pad1, \
                case_id(c)
        assert dw_calls[dw_before:] and all(dw_calls[dw_before:]), case_id(c)


def test_forward_and_adjoint_against_oracle_float32_tight(w2_calls):
    """64 channels and filters, 8 x 8 (N4's third stage): the result within a few roundings
    of each output's terms (float64 oracle), and the adjoint (dX) too."""
    rng = np.random.default_rng(40)
    x = np.asfortranarray(rng.standard_normal((8, 8, 64, 9)), dtype=F32)
    w = np.asfortranarray(rng.standard_normal((3, 3, 64, 64)) / 24, dtype=F32)
    b = rng.standard_normal(64).astype(F32)
    pads = np.array([[1, 1], [1, 1]])
    y = _ops.conv(x, w, b, 1, 1, pads)
    x64, w64 = x.astype(F64), w.astype(F64)
    ref = R.conv(x64, w64, b.astype(F64), 1, 1, pads)
    scale = R.conv(np.abs(x64), np.abs(w64), np.abs(b.astype(F64)), 1, 1, pads)
    assert (np.abs(y - ref) / scale).max() < 16 * np.finfo(F32).eps
    dy = np.asfortranarray(rng.standard_normal(y.shape), dtype=F32)
    dx = _ops.conv_backward(x, w, dy, 1, 1, pads)[0]
    dref = R.conv_grads(x64, w64, dy.astype(F64), 1, 1, pads)[0]
    dscale = R.conv_grads(x64, np.abs(w64), np.abs(dy.astype(F64)), 1, 1, pads)[0]
    assert (np.abs(dx - dref) / dscale).max() < 16 * np.finfo(F32).eps
    assert len(w2_calls) == 2 and all(w2_calls)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_rectify_is_relu_of_the_sums(dtype, w2_calls):
    """The bound program's conv + relu: relu's values (x <= 0 gives +0, NaN kept) of what
    the kernel gives unrectified, bit for bit."""
    rng = np.random.default_rng(41)
    x = rng.standard_normal((4, 16, 1, 10, 10)).astype(dtype)
    w = np.ascontiguousarray(rng.standard_normal((8, 16, 3, 3)).astype(dtype))
    b = rng.standard_normal(8).astype(dtype)
    geom = _ops.conv_geometry("t", (10, 10), (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))
    plain = np.empty((4, 8, 1, 10, 10), dtype)
    rect = np.empty_like(plain)
    assert _ops._run_winograd2d(x, w, b, plain, geom, 1)
    assert _ops._run_winograd2d(x, w, b, rect, geom, 2, True)
    expect = np.where(plain <= 0, dtype(0), plain)
    np.testing.assert_array_equal(rect, expect)
    assert not np.signbit(rect).any()


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
@pytest.mark.parametrize("dtype", [F32, F64])
@pytest.mark.parametrize("size", [(10, 10), (9, 7), (3, 2)])   # whole tiles; odd sizes
def test_residual_is_added_before_the_relu(level, dtype, size, isa_level):  # noqa: F811
    """A residual block's addition in the kernel: the sums of the result and the residual
    as a separate addition gives them, then their ReLU with ``rectify``, bit for bit; on
    every instruction set, for planes of whole tiles (added as the outputs are transformed)
    and odd sizes (added as they are copied out)."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    isa_level(level)
    rng = np.random.default_rng(43)
    x = rng.standard_normal((3, 16, 1) + size).astype(dtype)
    w = np.ascontiguousarray(rng.standard_normal((8, 16, 3, 3)).astype(dtype))
    b = rng.standard_normal(8).astype(dtype)
    res = rng.standard_normal((3, 8, 1) + size).astype(dtype) * 4
    res[0, 0, 0, 0, :2] = -np.inf                 # (Inf in the residual: the sum's, kept)
    geom = _ops.conv_geometry("t", size, (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))
    plain = np.empty((3, 8, 1) + size, dtype)
    assert _ops._run_winograd2d(x, w, b, plain, geom, 1)
    for rectify in (False, True):
        got = np.full_like(plain, np.nan)
        assert _ops._run_winograd2d(x, w, b, got, geom, 2, rectify, res)
        expect = plain + res
        if rectify:
            expect = np.where(expect <= 0, dtype(0), expect)
            assert not np.signbit(got).any()
        np.testing.assert_array_equal(got, expect)


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
def test_weight_gradient_of_many_channels_against_oracle(level, isa_level, w2_calls,
                                                         dw_calls, monkeypatch):
    """From 64 channels (W22_DW_OWN) the weight gradient's products run in w22_gemm on each
    V transposed: channels that are not whole vectors (67, 64 + 3), jobs of odd tile
    counts, float32 and float64, every instruction set; with 80 images of 9 tiles, 12
    jobs in 8 segments (some summing two jobs), on this path and, with the BLAS path's
    jobs held to 64 tiles, on that one."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    isa_level(level)
    monkeypatch.setitem(_ops._state, "threads", 2)
    monkeypatch.setattr(_ops, "_WINOGRAD2D_TILES_DW", 64)
    for i, (size, cg, fg, n, dtype) in enumerate([((7, 9), 67, 5, 3, F32),
                                                    ((8, 8), 64, 6, 9, F64),
                                                    ((5, 6), 80, 3, 80, F32),
                                                    ((5, 6), 24, 3, 80, F32)]):
        c = _fixed(2, size, (3, 3), cg, fg, 1, n, dtype, stride=[1, 1], dilation=[1, 1],
                   before=[1, 1], after=[1, 1], kind="w22")
        c["seed"] += 11 * i
        before = len(dw_calls)
        check_conv_both_ways(c)
        assert dw_calls[before:] and all(dw_calls[before:]), case_id(c)


def test_thread_count_does_not_change_bits(w2_calls, dw_calls):
    """The forward, dX and dW on 1 to 3 threads: 24 channels (the weight gradient's
    products by BLAS) and 64 (by w22_gemm, W22_DW_OWN)."""
    rng = np.random.default_rng(42)
    for c, f, n in ((24, 40, 37), (64, 7, 30)):
        x = np.asfortranarray(rng.standard_normal((9, 8, c, n)), dtype=F32)
        w = np.asfortranarray(rng.standard_normal((3, 3, c, f)), dtype=F32)
        dy = np.asfortranarray(rng.standard_normal((9, 8, f, n)), dtype=F32)
        out = []
        for threads in (1, 2, 3):
            with _ops.threads(threads):
                out.append((_ops.conv(x, w, None, 1, 1, 1),)
                           + _ops.conv_backward(x, w, dy, 1, 1, 1)[:2])
        for got in out[1:]:
            for a, b in zip(got, out[0]):
                np.testing.assert_array_equal(a, b)
    assert len(w2_calls) == 12 and all(w2_calls) and len(dw_calls) == 6 and all(dw_calls)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_not_finite_outputs_take_the_direct_sums(dtype, w2_calls):
    """One Inf input: the transforms would give Inf - Inf = NaN where the direct sums give
    Inf; the call reports it and the outputs are the direct sums', bit for bit.  A NaN
    weight: the weights' spread is NaN and the kernel does not run."""
    rng = np.random.default_rng(43)
    x = np.asfortranarray(rng.standard_normal((8, 8, 6, 3)), dtype=dtype)
    x[3, 4, 2, 1] = np.inf
    w = np.asfortranarray(rng.standard_normal((3, 3, 6, 5)), dtype=dtype)
    y = _ops.conv(x, w, None, 1, 1, 1)
    assert w2_calls == [False]
    with_winograd = ml.get_winograd()
    try:
        ml.set_winograd(False)
        direct = _ops.conv(x, w, None, 1, 1, 1)
    finally:
        ml.set_winograd(with_winograd)
    np.testing.assert_array_equal(y, direct)
    assert np.isposinf(y).any() or np.isneginf(y).any()
    x[3, 4, 2, 1] = 0
    w[1, 1, 3, 2] = np.nan
    spread = _ops._conv.pack_winograd2d_weights(
        np.ascontiguousarray(w.transpose(3, 2, 1, 0)), np.empty((16, 30), dtype))
    assert np.isnan(spread)
    # (an Inf anywhere too: a centre tap is in every corner sum)
    for tap in ((1, 1), (0, 0)):
        wi = w.copy()
        wi[1, 1, 3, 2] = 0
        wi[tap + (3, 2)] = np.inf
        assert np.isnan(_ops._conv.pack_winograd2d_weights(
            np.ascontiguousarray(wi.transpose(3, 2, 1, 0)), np.empty((16, 30), dtype)))
    y = _ops.conv(x, w, None, 1, 1, 1)
    assert w2_calls[-1] is False
    assert np.isnan(y[..., 2, :]).any() and not np.isnan(np.delete(y, 2, axis=2)).any()


@pytest.mark.parametrize("dtype", [F32, F64])
def test_weight_gradient_not_finite_takes_the_other_kernels(dtype, w2_calls, dw_calls,
                                                              monkeypatch):
    rng = np.random.default_rng(46)
    x = np.asfortranarray(rng.standard_normal((8, 8, 6, 3)), dtype=dtype)
    x[2, 5, 1, 2] = -np.inf
    w = np.asfortranarray(rng.standard_normal((3, 3, 6, 5)), dtype=dtype)
    dy = np.asfortranarray(rng.standard_normal((8, 8, 5, 3)), dtype=dtype)
    dw = _ops.conv_backward(x, w, dy, 1, 1, 1)[1]
    assert dw_calls == [False]
    monkeypatch.setattr(_ops, "_use_winograd2d", lambda *args, **kwargs: False)
    np.testing.assert_array_equal(dw, _ops.conv_backward(x, w, dy, 1, 1, 1)[1])
    assert not np.isfinite(dw[:, :, 1, :]).all()


def _spread2d(w):
    """pack_winograd2d_weights' spread from its definition, for w MATLAB 3 x 3 x C x F:
    per filter, sum |G g G^T| over the least sum of |g| over a 2 x 2 corner."""
    g = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    taps = np.moveaxis(w.astype(np.float64), (0, 1), (-2, -1))       # C, F, 3, 3
    u = g @ taps @ g.T
    tw = np.abs(u).sum(axis=(0, 2, 3))
    a = np.abs(taps)
    corners = [a[:, :, r:r + 2, s:s + 2].sum(axis=(0, 2, 3)) for r in (0, 1) for s in (0, 1)]
    return (tw / np.min(corners, axis=0)).max()


@pytest.mark.parametrize("dtype, big", [(F32, 1e6), (F64, 1e20)])
def test_huge_tap_takes_the_direct_sums(dtype, big, w2_calls, monkeypatch):
    """A filter whose corner taps are tiny next to one huge tap: F(2 x 2, 3 x 3) would round
    the huge tap's products into the corner outputs that do not see it; the spread says
    so and the call keeps the other kernels, bit for bit."""
    rng = np.random.default_rng(44)
    x = np.asfortranarray(rng.random((12, 12, 16, 2)), dtype=dtype)
    w = rng.standard_normal((3, 3, 16, 16)).astype(dtype)
    w[2, 2, 0, 0] = big
    w = np.asfortranarray(w)
    u = np.empty((16, 16 * 16), dtype)
    spread = _ops._conv.pack_winograd2d_weights(np.ascontiguousarray(w.transpose(3, 2, 1, 0)),
                                                u)
    assert spread == pytest.approx(_spread2d(w), rel=1e-9)
    assert spread > _ops._WINOGRAD2D_MAX_SPREAD
    y = _ops.conv(x, w, None, 1, 1, 1)
    assert w2_calls == [False]
    monkeypatch.setattr(_ops, "_use_winograd2d", lambda *args, **kwargs: False)
    np.testing.assert_array_equal(y, _ops.conv(x, w, None, 1, 1, 1))


@pytest.mark.parametrize("draw", ["normal", "uniform", "laplace"])
def test_ordinary_weights_keep_winograd(draw, w2_calls):
    """Ordinary weights' spread is well under the limit (so Winograd runs), and the
    transformed weights are G g G^T."""
    rng = np.random.default_rng(45)
    w = getattr(rng, draw)(size=(3, 3, 32, 24)).astype(F32)
    u = np.empty((16, 24 * 32 + 16), F32)
    spread = _ops._conv.pack_winograd2d_weights(np.ascontiguousarray(w.transpose(3, 2, 1, 0)),
                                                u)
    assert spread == pytest.approx(_spread2d(w), rel=1e-6)
    assert spread <= _ops._WINOGRAD2D_MAX_SPREAD / 1.5
    g = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    # (the engine's taps: MATLAB's second dimension outer, its first inner)
    expect = g @ np.moveaxis(w.astype(F64), (1, 0), (-2, -1)) @ g.T     # C, F, 4, 4
    got = u[:, :24 * 32].reshape(4, 4, 24, 32).transpose(3, 2, 0, 1)
    np.testing.assert_array_equal(got, expect.astype(F32))


def test_policy():
    """Which convolutions take F(2 x 2, 3 x 3): 2-D 3 x 3, stride and dilation 1, one
    group, padding at most 1, enough channels and filters, and tiles, within the buffer
    budget; the weight gradient from more tiles."""
    def use(size, k=(3, 3), stride=(1, 1), dil=(1, 1), before=(1, 1), after=(1, 1), cg=64,
            fg=64, groups=1, itemsize=4, n=32, weight_grad=False):
        geom = _ops.conv_geometry("t", size, k, stride, dil, before, after)
        return _ops._use_winograd2d(geom, n, cg, fg, groups, itemsize, weight_grad)

    assert use((8, 8)) and use((15, 15), cg=32, fg=32) and use((30, 30), cg=16, fg=16)
    assert use((32, 32), before=(0, 0), after=(0, 0), cg=3, fg=16) is False   # 3 channels
    assert not use((14, 14), cg=8, fg=16) and use((4, 4), cg=128, fg=128)
    assert not use((7, 7), cg=16, fg=16)               # small plane, few channels
    assert use((7, 7), cg=32, fg=32)
    assert not use((8, 8), stride=(2, 2)) and not use((8, 8), dil=(2, 2))
    assert not use((8, 8), groups=2) and not use((8, 8), k=(5, 5), before=(2, 2),
                                                  after=(2, 2))
    assert not use((8, 8), before=(2, 2), after=(0, 0))
    assert not use((56, 56))                           # 16 x 128 x 784 x 4 bytes > budget
    assert use((56, 56), cg=32, fg=32) and not use((56, 56), cg=32, fg=32, itemsize=8)
    # tiles: 8 x 8 has 16 an image, 15 x 15 64
    assert not use((8, 8), n=4) and use((8, 8), n=8) and use((15, 15), cg=32, fg=32, n=1)
    # the weight gradient: 256 tiles
    assert use((8, 8), weight_grad=True) and not use((8, 8), n=8, weight_grad=True)
    assert use((15, 15), cg=32, fg=32, n=4, weight_grad=True)
    assert not use((15, 15), cg=32, fg=32, n=3, weight_grad=True)
    assert not use((14, 14), cg=8, fg=16, weight_grad=True)
    # ... and 32 channels and filters (16: the forward's, not the weight gradient's)
    assert use((30, 30), cg=16, fg=16) and not use((30, 30), cg=16, fg=16, weight_grad=True)
    assert not use((15, 15), cg=16, fg=32, weight_grad=True)
    # the weight gradient's jobs: 64 tiles on w22_gemm's path (from 64 channels), else
    # as many as keep its V and dM within 1 MiB, 64 to 256
    own = _ops._conv.W22_DW_OWN_CHANNELS
    assert _ops._w22_dw_tiles(own, 16, 4) == _ops._w22_dw_tiles(256, 256, 8) == 64
    assert _ops._w22_dw_tiles(16, 16, 4) == _ops._w22_dw_tiles(32, 32, 4) == 256
    assert _ops._w22_dw_tiles(32, 32, 8) == 128
    assert _ops._w22_dw_tiles(32, 512, 4) == 64
    geom3 = _ops.conv_geometry("t", (8, 8, 8), (3, 3, 3), (1,) * 3, (1,) * 3, (1,) * 3,
                               (1,) * 3)
    assert not _ops._use_winograd2d(geom3, 32, 64, 64, 1, 4)
    with_winograd = ml.get_winograd()
    try:
        ml.set_winograd(False)
        assert not use((8, 8)) and not use((8, 8), weight_grad=True)
    finally:
        ml.set_winograd(with_winograd)


def test_bad_arguments_are_refused():
    x = np.zeros((2, 3, 1, 5, 5), F32)
    u = np.zeros((16, 12), F32)
    y = np.zeros((2, 4, 1, 5, 5), F32)
    b = np.zeros(0, F32)
    with pytest.raises(ValueError, match="conv_winograd2d"):
        _ops._conv.conv_winograd2d(x, np.zeros((16, 11), F32), b, y, 1, 1, 64, 32, 1)
    with pytest.raises(ValueError, match="conv_winograd2d"):
        _ops._conv.conv_winograd2d(x, u, b, y, 3, 1, 64, 32, 1)
    with pytest.raises(ValueError, match="pack_winograd2d_weights"):
        _ops._conv.pack_winograd2d_weights(np.zeros((4, 3, 3, 2), F32), u)
    for bad in (dict(kblock=0), dict(b=np.zeros(2, F32)), dict(x=x[:, :0], u=u[:, :0])):
        args = dict(x=x, u=u, b=b, kblock=16) | bad
        with pytest.raises(ValueError, match="conv_winograd2d"):
            _ops._conv.conv_winograd2d(args["x"], np.ascontiguousarray(args["u"]), args["b"],
                                       y, 1, 1, 64, args["kblock"], 1)
    dw = np.zeros((4, 3, 1, 3, 3), F32)
    with pytest.raises(ValueError, match="conv_weight_grad_winograd2d"):
        _ops._conv.conv_weight_grad_winograd2d(x, y, dw[:3].copy(), 1, 1, 64, 32, 1)
    with pytest.raises(ValueError, match="conv_weight_grad_winograd2d"):
        _ops._conv.conv_weight_grad_winograd2d(x, y, dw, 1, -1, 64, 32, 1)
    with pytest.raises(ValueError, match="conv_weight_grad_winograd2d"):
        _ops._conv.conv_weight_grad_winograd2d(x[:0], y[:0], dw, 1, 1, 64, 32, 1)


@pytest.mark.parametrize("dtype", [F32, F64])
def test_read_only_weights_keep_their_packing(dtype, w2_calls):
    """Read-only weights (the inference program's folded convolutions) are packed once
    and the packing reused while the array lives; writeable weights are packed every call,
    so a change made in place gives a new result; a filter of extreme spread is refused
    on every call, cached or not; the same bits either way."""
    import gc
    rng = np.random.default_rng(46)
    x = np.asfortranarray(rng.random((10, 10, 8, 3)), dtype=dtype)
    w = np.asfortranarray(rng.standard_normal((3, 3, 8, 8)).astype(dtype))
    want = _ops.conv(x, w, None, 1, 1, 1)
    ro = w.copy(order="F")
    ro.setflags(write=False)
    _ops._W22_PACKED.pop(id(ro), None)
    got = [_ops.conv(x, ro, None, 1, 1, 1) for _ in range(2)]
    for y in got:
        np.testing.assert_array_equal(y, want)
    entry = _ops._W22_PACKED[id(ro)]
    assert entry[0]() is ro and not entry[2].flags.writeable
    del ro, entry
    gc.collect()
    assert not any(e[0]() is None for e in _ops._W22_PACKED.values())
    # writeable weights changed in place: a new result
    w[1, 1, 0, 0] += 1
    moved = _ops.conv(x, w, None, 1, 1, 1)
    assert not np.array_equal(moved, want)
    w[1, 1, 0, 0] -= 1
    # an extreme filter, read-only: refused (the other kernels) on the first and later calls
    big = w.copy(order="F")
    big[2, 2, 0, 0] = 1e7
    big.setflags(write=False)
    n = len(w2_calls)
    a, b = _ops.conv(x, big, None, 1, 1, 1), _ops.conv(x, big, None, 1, 1, 1)
    assert w2_calls[n:] == [False, False]
    np.testing.assert_array_equal(a, b)
    assert w2_calls[:3] == [True, True, True]
