"""float32 accuracy of every convolution path on long reductions (issue 20), and Winograd
F(2, 3)'s fallback for filters whose rows' range is extreme (issue 21, defect 4).

The reference is a float64 im2col product written here with numpy (no engine code).  The
bound is the rounding model of a blocked sum, not a tuned number: a sum whose terms are
added in levels of f_1, f_2, ... terms each (f_1 in the registers, then the sums of those,
...) commits one rounding of relative size at most u = 2**-24 per addition, uniformly
distributed, and the partial sums of a level with f children grow to f times a child's
variance, so for zero-mean terms

    E[err^2] / E[y^2] = (u^2 / 3) * sum_i f_i / 2        (RMS over the outputs)

The direct kernel sums at most CHUNK_TAPS = 96 (channel, tap) pairs in its registers,
GROUP_CHUNKS = 8 chunks in a buffer and the groups in the output (pyx/_conv.pyx); the gemm
paths at most GEMM_KBLOCK = 128 terms per BLAS call, Winograd F(2 x 2, 3 x 3)'s at most
WINOGRAD2D_KBLOCK = 16 (mlayers._ops._WINOGRAD2D_KBLOCK), in groups of GEMM_GROUP = 8 blocks
(pyx/_conv.pyx _gemm_kb3).  The tests allow twice the model's
RMS (the transforms of Winograd add a few roundings per term, the fan-ins are at most
these).  A single running sum of the n terms (what the kernels did before) has the model's
RMS u * sqrt(n / 6): 26 u for n = 4096, against 4.3 u for these blocks, so it fails here.
With torch installed, the same cases are compared with PyTorch's float32 error.
"""
import math

import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops

U32 = 2.0 ** -24
CHUNK_TAPS, GROUP_CHUNKS, GEMM_KBLOCK, WINOGRAD2D_KBLOCK, GEMM_GROUP = 96, 8, 128, 16, 8


def _direct_fanins(channels, taps):
    """Fan-ins of the direct kernel's blocked sum of channels x taps terms."""
    per_chunk = max(1, CHUNK_TAPS // taps)
    chunks = math.ceil(channels / per_chunk)
    return [per_chunk * taps, min(GROUP_CHUNKS, chunks), math.ceil(chunks / GROUP_CHUNKS)]


def _gemm_fanins(k):
    blocks = math.ceil(k / GEMM_KBLOCK)
    return [math.ceil(k / blocks), blocks]


def test_winograd2d_block_is_the_models():
    assert _ops._WINOGRAD2D_KBLOCK == WINOGRAD2D_KBLOCK
    # and the cases named so take it: the forward, and the stride-1 transposed convolution
    # (the adjoint as a forward: 512 channels in, 256 out)
    geom = _ops.conv_geometry("t", (8, 8), (3, 3), (1, 1), (1, 1), (1, 1), (1, 1))
    assert _ops._use_winograd2d(geom, 8, 512, 512, 1, 4)
    assert _ops._use_winograd2d(geom, 8, 512, 256, 1, 4)


def _w22_fanins(channels):
    """Fan-ins of Winograd F(2 x 2, 3 x 3)'s sums: gemm's over the channels in blocks of
    at most WINOGRAD2D_KBLOCK, groups of GEMM_GROUP blocks, the groups, then the output
    transform's (three rows of three)."""
    blocks = math.ceil(channels / WINOGRAD2D_KBLOCK)
    return [math.ceil(channels / blocks), min(blocks, GEMM_GROUP),
            math.ceil(blocks / GEMM_GROUP), 3, 3]


def _bound(fanins):
    """Twice the model's RMS error relative to the RMS output (module docstring)."""
    return 2 * U32 * math.sqrt(sum(fanins) / 6)


def _rms_rel(y, ref):
    return float(np.sqrt(np.mean((y.astype(np.float64) - ref) ** 2) / np.mean(ref ** 2)))


def _max_rel(y, ref):
    return float(np.abs(y.astype(np.float64) - ref).max() / np.abs(ref).max())


# ----------------------------------------------------------------- float64 references

def _ref_conv(x, w, stride, pad, groups=1):
    """y = conv(x, w) in float64, MATLAB layout: x H x W x C x N, w kH x kW x Cg x F."""
    x = np.pad(x.astype(np.float64), ((pad, pad), (pad, pad), (0, 0), (0, 0)))
    kh, kw, cg, f = w.shape
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(0, 1))
    win = win[::stride, ::stride]                     # oh, ow, C, N, kh, kw
    fg = f // groups
    out = []
    for g in range(groups):
        xg = win[:, :, g * cg:(g + 1) * cg]
        out.append(np.einsum("ijcnab,abcf->ijfn", xg, w[..., g * fg:(g + 1) * fg]
                             .astype(np.float64), optimize=True))
    return np.concatenate(out, axis=2)


def _ref_transposed(x, w, stride, crop):
    """The transposed convolution in float64: x H x W x C x N, w kH x kW x F x C."""
    h, wd, c, n = x.shape
    kh, kw, f, _ = w.shape
    full = np.zeros(((h - 1) * stride + kh, (wd - 1) * stride + kw, f, n))
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    for a in range(kh):
        for b in range(kw):
            full[a:a + (h - 1) * stride + 1:stride, b:b + (wd - 1) * stride + 1:stride] += \
                np.einsum("ijcn,fc->ijfn", x64, w64[a, b])
    return full[crop:full.shape[0] - crop, crop:full.shape[1] - crop]


def _ref_weight_grad(x, dy, kh, kw, stride, pad):
    xp = np.pad(x.astype(np.float64), ((pad, pad), (pad, pad), (0, 0), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, (kh, kw), axis=(0, 1))
    win = win[::stride, ::stride][:dy.shape[0], :dy.shape[1]]
    return np.einsum("ijcnab,ijfn->abcf", win, dy.astype(np.float64), optimize=True)


def _data(rng, shape, positive=False):
    a = rng.random(shape) if positive else rng.standard_normal(shape)
    return np.asfortranarray(a.astype(np.float32))


# ------------------------------------------------------------------------ the cases

def _forward_cases():
    """(name, x shape, w shape, stride, pad, groups, winograd, fan-ins)."""
    return [
        # the issue's: convolution2dLayer(4,512,'Stride',2,'Padding',1) on 8x8x256x8
        ("4x4x256->512 s2", (8, 8, 256, 8), (4, 4, 256, 512), 2, 1, 1, True,
         _direct_fanins(256, 16)),
        ("3x3x512->512 Winograd", (8, 8, 512, 8), (3, 3, 512, 512), 1, 1, 1, True,
         _w22_fanins(512)),                   # F(2 x 2, 3 x 3)
        ("3x3x512->512 Winograd rows", (8, 8, 512, 4), (3, 3, 512, 512), 1, 1, 1, "rows",
         _direct_fanins(512, 3) + [3]),       # + F(2, 3)'s output transform
        ("3x3x512->512 direct", (8, 8, 512, 4), (3, 3, 512, 512), 1, 1, 1, False,
         _direct_fanins(512, 9)),
        ("1x1x1024->256", (8, 8, 1024, 4), (1, 1, 1024, 256), 1, 0, 1, True,
         _direct_fanins(1024, 1)),
        # two filters per group: the im2col + gemm path
        ("grouped 3x3x256->2 x4 (gemm)", (8, 8, 1024, 4), (3, 3, 256, 8), 1, 1, 4, True,
         _gemm_fanins(256 * 9)),
        ("grouped 3x3x128->64 x2", (8, 8, 256, 4), (3, 3, 128, 128), 1, 1, 2, True,
         _direct_fanins(128, 3) + [3]),
    ]


def _run_forward_case(case, seed):
    """(x, w, the convolution with the case's Winograd setting, the float64 reference)."""
    name, xs, ws, stride, pad, groups, wino, _ = case
    rng = np.random.default_rng(seed)
    x, w = _data(rng, xs, positive=True), _data(rng, ws)
    ref = _ref_conv(x, w, stride, pad, groups)
    with_winograd, use_2d = ml.get_winograd(), _ops._use_winograd2d
    try:
        ml.set_winograd(bool(wino))
        if wino == "rows":      # F(2, 3) along rows, not F(2 x 2, 3 x 3)
            _ops._use_winograd2d = lambda *args, **kwargs: False
        y = _ops.conv(x, w, None, stride, 1, pad, groups)
    finally:
        ml.set_winograd(with_winograd)
        _ops._use_winograd2d = use_2d
    return x, w, y, ref


@pytest.mark.parametrize("case", _forward_cases(), ids=lambda c: c[0])
def test_forward_long_reductions(case):
    name, xs, ws, stride, pad, groups, wino, fanins = case
    x, w, y, ref = _run_forward_case(case, 20)
    assert _rms_rel(y, ref) <= _bound(fanins), name


def test_issue_case_through_dlconv():
    # dlconv(X, W, 0, Stride=2, Padding=1) as MATLAB's convolution2dLayer(4,512,...) runs it
    rng = np.random.default_rng(21)
    x, w = _data(rng, (8, 8, 256, 8), positive=True), _data(rng, (4, 4, 256, 512))
    y = ml.extractdata(ml.dlconv(ml.dlarray(x, "SSCB"), w, 0, Stride=2, Padding=1))
    ref = _ref_conv(x, w, 2, 1)
    assert _rms_rel(y, ref) <= _bound(_direct_fanins(256, 16))
    # the max error too: a running sum of the 4096 terms gave 2.0e-6 here; the blocked
    # sum's model RMS is 4.3 u, and the largest of 65536 errors is within 5 RMS
    assert _max_rel(y, ref) <= 5 * _bound(_direct_fanins(256, 16))


def test_channelwise_forward():
    rng = np.random.default_rng(22)
    x, w = _data(rng, (32, 32, 64, 4), positive=True), _data(rng, (5, 5, 1, 64))
    y = _ops.conv(x, w, None, 2, 1, 2, 64)
    assert _rms_rel(y, _ref_conv(x, w, 2, 2, 64)) <= _bound([25])


@pytest.mark.parametrize("stride, k", [(2, 4), (1, 3)])
def test_transposed_long_reductions(stride, k):
    # transposedConv2dLayer(k, 256, Stride=stride, Cropping=1) on 8 x 8 x 512 x 8: each
    # output sums 512 channels x (k/stride)^2 taps
    rng = np.random.default_rng(23)
    x, w = _data(rng, (8, 8, 512, 8), positive=True), _data(rng, (k, k, 256, 512))
    y = _ops.conv_transpose(x, w, None, stride, 1, 1)
    # (stride 1: the adjoint as a forward convolution, by F(2 x 2, 3 x 3))
    fanins = _direct_fanins(512, (k // stride) ** 2) if stride > 1 else _w22_fanins(512)
    assert _rms_rel(y, _ref_transposed(x, w, stride, 1)) <= _bound(fanins)


@pytest.mark.parametrize("shape, wshape, stride", [
    ((8, 8, 256, 8), (4, 4, 256, 512), 2),      # dX sums 512 filters x 4 taps
    ((32, 32, 64, 16), (3, 3, 64, 64), 1),      # dW sums 16 images x 32 x 32 positions
])
def test_gradients_long_reductions(shape, wshape, stride):
    rng = np.random.default_rng(24)
    x, w = _data(rng, shape, positive=True), _data(rng, wshape)
    y = _ref_conv(x, w, stride, 1)
    dy = _data(rng, y.shape)
    dx, dw, db = _ops.conv_backward(x, w, dy, stride, 1, 1)
    # dX is the transposed convolution of dY (filters and channels swapped)
    ref_dx = _ref_transposed(dy, w, stride, 1)[:shape[0], :shape[1]]
    assert _rms_rel(dx, ref_dx) <= _bound(
        _direct_fanins(wshape[3], (wshape[0] // stride) ** 2) if stride > 1
        else _w22_fanins(wshape[3]))
    ref_dw = _ref_weight_grad(x, dy, wshape[0], wshape[1], stride, 1)
    if stride > 1:
        # dW: per image, vectors of partial sums over the grid (16 lanes), a tree of the
        # lanes, then the images in order
        grid = (y.shape[0] + 2) * (y.shape[1] + 2)
        fanins = [math.ceil(grid / 16), 16, shape[3]]
    else:
        # F(2 x 2, 3 x 3)'s dW: an image's 256 tiles in blocks of 128 (one group), the 16
        # images' jobs in 8 segments of 2, the segments (conv_weight_grad_winograd2d)
        geom = _ops.conv_geometry("t", shape[:2], wshape[:2], (1, 1), (1, 1), (1, 1), (1, 1))
        assert _ops._use_winograd2d(geom, shape[3], 64, 64, 1, 4, weight_grad=True)
        assert _ops._WINOGRAD2D_KBLOCK_DW == 128
        fanins = [128, 2, 2, 8]
    assert _rms_rel(dw, ref_dw) <= _bound(fanins)
    ref_db = dy.astype(np.float64).sum(axis=(0, 1, 3))
    assert _max_rel(db, ref_db) <= 2 * U32      # summed in double, rounded once


def test_small_plane_paths():
    """conv_cv (small planes: chunks of CHUNK_TAPS terms from zero, added in order after
    the bias) forward and dX, and conv_weight_grad_cv (chunks of 128 positions, segments of
    2048 in order): the longest reductions they take, within the model's bound."""
    rng = np.random.default_rng(25)
    shape, wshape = (7, 7, 64, 64), (3, 3, 64, 64)     # 576 terms; dW over 3136 positions
    geom = _ops.conv_geometry("t", shape[:2], wshape[:2], (1, 1), (1, 1), (1, 1), (1, 1))
    assert _ops._cv_vectors(geom, shape[3], 64, 64, 1, np.float32) >= 2 or \
        _ops._conv.isa()[0] < _ops._DIRECT_MIN_ISA
    x, w = _data(rng, shape, positive=True), _data(rng, wshape)
    y = _ops.conv(x, w, None, 1, 1, 1)
    ref = _ref_conv(x, w, 1, 1)
    per_chunk = max(1, CHUNK_TAPS // 9)
    cv_fanins = [per_chunk * 9, math.ceil(64 / per_chunk)]
    assert _rms_rel(y, ref) <= _bound(cv_fanins)
    dy = _data(rng, ref.shape)
    dx, dw, _ = _ops.conv_backward(x, w, dy, 1, 1, 1)
    assert _rms_rel(dx, _ref_transposed(dy, w, 1, 1)) <= _bound(cv_fanins)
    positions = shape[3] * 49
    ref_dw = _ref_weight_grad(x, dy, 3, 3, 1, 1)
    assert _rms_rel(dw, ref_dw) <= _bound([128, 16, math.ceil(positions / 2048)])


def test_longer_small_plane_paths():
    """Past the direct kernel's reductions on small planes: conv_cv's forward and dX up to
    _CV_MAX_TERMS terms (two levels), its weight gradient at any channel count, and im2col +
    gemm for the long reductions over planes of at most _GEMM_MAX_PLANE positions (BLAS in
    blocks of GEMM_KBLOCK terms), each within its model's bound and taking that path."""
    rng = np.random.default_rng(26)
    cv_isa = _ops._conv.isa()[0] >= _ops._DIRECT_MIN_ISA
    # 5 x 5 filters over 40 channels: 1000 terms forward, 800 in dX (32 filters)
    shape, wshape = (7, 7, 40, 16), (5, 5, 40, 32)
    geom = _ops.conv_geometry("t", shape[:2], wshape[:2], (1, 1), (1, 1), (2, 2), (2, 2))
    assert not _ops._gemm_reduction(geom, 40, 1)
    assert (_ops._cv_vectors(geom, shape[3], 40, 32, 1, np.float32) > 0) == cv_isa
    x, w = _data(rng, shape, positive=True), _data(rng, wshape)
    y = _ops.conv(x, w, None, 1, 1, 2)
    per_chunk = CHUNK_TAPS // 25
    assert _rms_rel(y, _ref_conv(x, w, 1, 2)) <= _bound([per_chunk * 25,
                                                        math.ceil(40 / per_chunk)])
    dy = _data(rng, y.shape)
    dx, dw, _ = _ops.conv_backward(x, w, dy, 1, 1, 2)
    assert _rms_rel(dx, _ref_transposed(dy, w, 1, 2)) <= _bound([per_chunk * 25,
                                                                 math.ceil(32 / per_chunk)])
    assert _rms_rel(dw, _ref_weight_grad(x, dy, 5, 5, 1, 2)) <= _bound([128, 7])
    # 3 x 3 over 256 channels on 4 x 4 planes: 2304 terms each way, gemm's
    shape, wshape = (4, 4, 256, 4), (3, 3, 256, 256)
    geom = _ops.conv_geometry("t", shape[:2], wshape[:2], (1, 1), (1, 1), (1, 1), (1, 1))
    assert _ops._gemm_reduction(geom, 256, 1) and not _ops._gemm_reduction(geom, 256, 2)
    assert not _ops._use_winograd2d(geom, shape[3], 256, 256, 1, 4)
    x, w = _data(rng, shape, positive=True), _data(rng, wshape)
    y = _ops.conv(x, w, None, 1, 1, 1)
    assert _rms_rel(y, _ref_conv(x, w, 1, 1)) <= _bound(_gemm_fanins(2304))
    dy = _data(rng, y.shape)
    dx, dw, _ = _ops.conv_backward(x, w, dy, 1, 1, 1)
    # (dX: gemm over the 256 filters, then col2im adds each input's nine taps)
    assert _rms_rel(dx, _ref_transposed(dy, w, 1, 1)) <= _bound(_gemm_fanins(256) + [9])
    assert _rms_rel(dw, _ref_weight_grad(x, dy, 3, 3, 1, 1)) <= _bound(_gemm_fanins(64))


# ----------------------------------------------------------- against PyTorch (optional)

def _torch_max_rel(torch, fn, ref):
    return _max_rel(fn().detach().numpy(), ref)


@pytest.mark.parametrize("case", _forward_cases(), ids=lambda c: c[0])
def test_forward_no_worse_than_torch(case):
    torch = pytest.importorskip("torch")
    name, xs, ws, stride, pad, groups, wino, _ = case
    x, w, y, ref = _run_forward_case(case, 25)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    wt = torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1)))
    yt = torch.nn.functional.conv2d(xt, wt, stride=stride, padding=pad, groups=groups)
    ref_t = ref.transpose(3, 2, 0, 1)
    assert _rms_rel(y, ref) <= _rms_rel(yt.numpy(), ref_t), name
    assert _max_rel(y, ref) <= _max_rel(yt.numpy(), ref_t), name


@pytest.mark.parametrize("stride, k", [(2, 4), (1, 3)])
def test_transposed_no_worse_than_torch(stride, k):
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(26)
    x, w = _data(rng, (8, 8, 512, 8), positive=True), _data(rng, (k, k, 256, 512))
    y = _ops.conv_transpose(x, w, None, stride, 1, 1)
    ref = _ref_transposed(x, w, stride, 1)
    yt = torch.nn.functional.conv_transpose2d(
        torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1))),
        torch.from_numpy(np.ascontiguousarray(w.transpose(3, 2, 0, 1))),
        stride=stride, padding=1).numpy()
    ref_t = ref.transpose(3, 2, 0, 1)
    assert _rms_rel(y, ref) <= _rms_rel(yt, ref_t)
    assert _max_rel(y, ref) <= _max_rel(yt, ref_t)


# ------------------------------------------------------ Winograd F(2, 3): extreme rows

def _spread(w):
    """pack_direct_weights' spread, from its definition: per filter, the sum over rows of
    three taps (MATLAB's first dimension) of |G w| over the smaller of the sums of |w|
    that an output next to either end's padding sees."""
    g = np.array([[1, 0, 0], [.5, .5, .5], [.5, -.5, .5], [0, 0, 1]])
    rows = np.moveaxis(w.astype(np.float64), 0, -1)            # kW, C, F, 3
    tw = np.abs(rows @ g.T).sum(axis=(0, 1, 3))
    lo = np.abs(rows[..., 1:]).sum(axis=(0, 1, 3))
    hi = np.abs(rows[..., :2]).sum(axis=(0, 1, 3))
    return (tw / np.minimum(lo, hi)).max()


@pytest.fixture
def packed_spreads(monkeypatch):
    seen = []
    pack = _ops._pack_direct

    def spy(plan, w, b, gm=None, spread=None):
        out = pack(plan, w, b, gm, spread)
        if spread is not None:
            seen.append(float(spread[0]))
        return out
    monkeypatch.setattr(_ops, "_pack_direct", spy)
    # (these pin F(2, 3) along rows: Winograd F(2 x 2, 3 x 3) would take the shapes first)
    monkeypatch.setattr(_ops, "_use_winograd2d", lambda *args, **kwargs: False)
    return seen


@pytest.mark.parametrize("dtype, big", [(np.float32, 1e6), (np.float64, 1e20)])
def test_winograd_huge_tap_falls_back(dtype, big, packed_spreads):
    # issue 21: w(3,2,1,1) = 1e6 (float32) or 1e20 (float64), 24 x 24 x 16 input,
    # Padding=1: F(2, 3) gave 0.25 for an edge output whose direct sum is 0.2874
    rng = np.random.default_rng(27)
    x = np.asfortranarray(rng.random((24, 24, 16, 2)).astype(dtype))
    w = rng.standard_normal((3, 3, 16, 16)).astype(dtype)
    w[2, 1, 0, 0] = big
    w = np.asfortranarray(w)
    y = ml.extractdata(ml.dlconv(ml.dlarray(x, "SSCB"), w, 0, Padding=1))
    assert packed_spreads and packed_spreads[0] > _ops._WINOGRAD_ROWS_MAX_SPREAD
    assert packed_spreads[0] == pytest.approx(_spread(w), rel=1e-6)
    ml.set_winograd(False)
    try:
        direct = _ops.conv(x, w, None, 1, 1, 1)
    finally:
        ml.set_winograd(True)
    np.testing.assert_array_equal(y, direct)          # the direct sums, bit for bit
    # and those are accurate per output: within a few roundings of each output's terms
    ref = _ref_conv(x, w, 1, 1)
    scale = _ref_conv(np.abs(x), np.abs(w), 1, 1)
    assert (np.abs(y - ref) / scale).max() <= 16 * np.finfo(dtype).eps
    # the transposed convolution (stride 1: the adjoint as a forward, F(2, 3) too)
    yt = _ops.conv_transpose(x, np.asfortranarray(w.transpose(0, 1, 3, 2)), None, 1, 1, 1)
    ml.set_winograd(False)
    try:
        dt = _ops.conv_transpose(x, np.asfortranarray(w.transpose(0, 1, 3, 2)), None, 1, 1, 1)
    finally:
        ml.set_winograd(True)
    np.testing.assert_array_equal(yt, dt)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_winograd_kept_for_ordinary_weights(dtype, packed_spreads):
    rng = np.random.default_rng(28)
    x = np.asfortranarray(rng.random((24, 24, 16, 2)).astype(dtype))
    for w in (rng.standard_normal((3, 3, 16, 16)), rng.uniform(-1, 1, (3, 3, 16, 16)),
              rng.laplace(size=(3, 3, 16, 16))):
        packed_spreads.clear()
        w = np.asfortranarray(w.astype(dtype))
        y = _ops.conv(x, w, None, 1, 1, 1)
        assert packed_spreads[0] == pytest.approx(_spread(w), rel=1e-6)
        assert packed_spreads[0] <= _ops._WINOGRAD_ROWS_MAX_SPREAD
        ref = _ref_conv(x, w, 1, 1)
        assert _rms_rel(y, ref) <= _bound(_direct_fanins(16, 3) + [3]) * (
            1 if dtype == np.float32 else 2.0 ** -29)


# ---------------------------------------- Winograd F(9 - K, K), float64 1-D: extreme taps

def _spread_fmk(w, k):
    """pack_winograd_weights' spread from its definition, for w MATLAB K x C x F."""
    _, gm, at = _ops._winograd_matrices(k)
    wf = np.moveaxis(w.astype(np.float64), 0, -1)                 # C, F, K
    tw = (np.abs(wf @ gm.T) * np.abs(at).sum(axis=0)).sum(axis=(0, 2))
    a = np.abs(wf)
    with np.errstate(divide="ignore"):
        return (tw / np.minimum(a[..., 1:].sum(axis=(0, 2)), a[..., :-1].sum(axis=(0, 2)))).max()


@pytest.fixture
def winograd_calls(monkeypatch):
    calls = []
    run = _ops._conv.conv_winograd

    def spy(*args):
        calls.append(True)
        return run(*args)
    monkeypatch.setattr(_ops._conv, "conv_winograd", spy)
    return calls


@pytest.mark.parametrize("k", [3, 5, 7])
def test_winograd_fmk_extreme_tap_falls_back(k, winograd_calls):
    rng = np.random.default_rng(29)
    x = np.asfortranarray(rng.random((256, 64, 2)))
    ordinary = rng.standard_normal((k, 64, 64))
    extreme = ordinary.copy()
    extreme[k - 1, 3, 7] = 1e20
    for w, falls_back in ((ordinary, False), (extreme, True)):
        winograd_calls.clear()
        w = np.asfortranarray(w)
        ratio = _spread_fmk(w, k) / _ops._winograd_equal_spread(k)
        assert (ratio > _ops._WINOGRAD_MAX_SPREAD) == falls_back
        y = _ops.conv(x, w, None, 1, 1, k // 2)
        assert winograd_calls == ([] if falls_back else [True])
        ml.set_winograd(False)
        try:
            direct = _ops.conv(x, w, None, 1, 1, k // 2)
        finally:
            ml.set_winograd(True)
        if falls_back:
            np.testing.assert_array_equal(y, direct)
        else:
            assert _rms_rel(y, _ref_conv1d(x, w, k // 2)) <= 8 * _rms_rel(
                direct, _ref_conv1d(x, w, k // 2)) + 2.0 ** -52


def _ref_conv1d(x, w, pad):
    xp = np.pad(x.astype(np.longdouble), ((pad, pad), (0, 0), (0, 0)))
    win = np.lib.stride_tricks.sliding_window_view(xp, w.shape[0], axis=0)   # L, C, N, K
    return np.einsum("lcnk,kcf->lfn", win, w.astype(np.longdouble)).astype(np.float64)
