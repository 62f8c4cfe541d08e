"""Robustness (issue 21): nothing a user types hangs, wraps, crashes or costs out of
proportion.

Part 1: one regression test per defect of issue 21 (each confirmed failing before its fix).
Part 2: the property-based suite over every public constructor, ``predict``, the
functional operations, ``dlnetwork`` and ``dlfeval``/``dlgradient``: any input either
computes the value an independent reference gives or raises ``ValueError``/``TypeError``
(``AttributeError`` for unknown properties) whose message names the function and the
argument.  Layers and operations added later are walked automatically
(``mlayers._props.LAYER_CLASSES``, ``ml.__all__``, ``ml.functional.__all__``).

The longer campaign is ``tools/fuzz_campaign.py`` (a subprocess and a timeout per case);
its last results are summarized in ``docs/robustness.md``.
"""
import math
import threading
import time
import tracemalloc
import warnings

import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops
from mlayers._rng import rng as mrng


@pytest.fixture(autouse=True)
def _keep_stream():
    saved = mrng()
    yield
    mrng(saved)


# =========================================================================== Part 1

# ------------------------------------------------------------------ 1. twister State

def _settings(state, seed=0):
    return {"Type": "twister", "Seed": seed, "State": state}


@pytest.mark.parametrize("state", [
    np.zeros(625, np.uint32),                                  # the issue's all-zero key
    np.r_[np.uint32(0x7FFFFFFF), np.zeros(623, np.uint32), 0],  # only word 1's low bits
])
def test_rng_refuses_the_degenerate_state(state):
    before = mrng()
    with pytest.raises(ValueError, match=r"^rng: State must not be the all-zero"):
        mrng(_settings(state))
    assert mrng() == before            # nothing changed: rand/randn still work
    u = ml.rand(1, 1000)
    assert u.min() > 0 and u.max() < 1
    assert np.isfinite(ml.randn(1, 10)).all()


def test_rng_accepts_a_state_whose_top_bit_alone_is_set():
    # only the top bit of word 1 belongs to MT19937's 19937-bit state: not degenerate
    state = np.r_[np.uint32(0x80000000), np.zeros(623, np.uint32), 624].astype(np.uint32)
    mrng(_settings(state))
    t0 = time.perf_counter()
    z = ml.randn(1, 10)       # the rejection loop ends: the state mixes within ~1e5 draws
    assert np.isfinite(z).all() and time.perf_counter() - t0 < 5
    u = ml.rand(1, 200000)
    assert 0 <= u.min() and u.max() < 1 and (u[0, -1000:] > 0).mean() > 0.9


@pytest.mark.parametrize("state, exc, match", [
    (np.zeros(624, np.uint32), ValueError, r"^rng: State must be 625 uint32 values.*got 624"),
    (np.r_[np.ones(624), 625], ValueError, r"^rng: State\(625\) must be a position"),
    (np.r_[np.ones(624), -1], ValueError, r"^rng: State must be 625 .*got the value -1"),
    (np.r_[np.full(624, 0.5), 3], ValueError, r"^rng: State must be 625 .*got the value 0\.5"),
    (np.r_[np.full(624, 2.0**32), 3], ValueError, r"^rng: State must be 625"),
    (np.r_[np.full(624, np.nan), 3], ValueError, r"^rng: State must be 625"),
    (np.array(["a"] * 625), TypeError, r"^rng: State must be 625"),
    (None, TypeError, r"^rng: State must be 625"),
])
def test_rng_validates_every_state_word(state, exc, match):
    before = mrng()
    with pytest.raises(exc, match=match):
        mrng(_settings(state))
    assert mrng() == before


def test_rng_checks_the_seed_before_changing_the_state():
    before = mrng()
    other = mrng(7)
    ml.rand(1, 3)
    with pytest.raises(ValueError, match=r"^rng: seed"):
        mrng(_settings(other.State, seed=-1))
    mrng(before)


def test_a_valid_state_roundtrips():
    mrng(11)
    s = mrng()
    a = ml.randn(3, 4)
    mrng(_settings(s.State, 11))
    np.testing.assert_array_equal(ml.randn(3, 4), a)


# ------------------------------------------------------------------ 5. wrapping integers

@pytest.mark.parametrize("make, name", [
    (lambda: ml.convolution2dLayer(3, 2**63), "NumFilters"),
    (lambda: ml.convolution2dLayer(3, 4, Stride=1e20), "Stride"),
    (lambda: ml.convolution2dLayer(3, 4, DilationFactor=2**64 - 1), "DilationFactor"),
    (lambda: ml.convolution2dLayer(3, 4, DilationFactor=2**64), "DilationFactor"),
    (lambda: ml.convolution2dLayer(3, 4, DilationFactor=[1, 2**70]), "DilationFactor"),
    (lambda: ml.convolution1dLayer(2**31, 4), "FilterSize"),
    (lambda: ml.convolution2dLayer(3, 4, Padding=2**40), "Padding"),
    (lambda: ml.fullyConnectedLayer(np.uint64(2**63)), "OutputSize"),
    (lambda: ml.imageInputLayer([2**63, 3, 1]), "InputSize"),
    (lambda: ml.transposedConv2dLayer(3, 4, Cropping=np.uint64(2**64 - 1)), "Cropping"),
])
def test_integers_beyond_the_index_range_are_refused(make, name):
    with pytest.raises(ValueError, match=rf"^\w+: {name} must be .*at most 2147483647"):
        make()


def test_the_largest_allowed_integer_is_stored_exactly():
    layer = ml.convolution2dLayer(3, 2**31 - 1)
    assert layer.NumFilters == 2**31 - 1
    layer = ml.convolution2dLayer(3, 4, Stride=np.uint64(2**31 - 1))
    assert list(layer.Stride) == [2**31 - 1] * 2


def test_assignment_goes_through_the_same_bound():
    layer = ml.convolution2dLayer(3, 4)
    with pytest.raises(ValueError, match=r"^Convolution2DLayer: Stride must be .*at most"):
        layer.Stride = 2**63
    assert list(layer.Stride) == [1, 1]


# ------------------------------------------------------------------ 6. errors that name nothing

@pytest.mark.parametrize("call, fname", [
    (lambda: ml.rand(2**40), "rand"),
    (lambda: ml.rand(3, 2**62), "rand"),
    (lambda: ml.randn(2**63), "randn"),
    (lambda: ml.rand([2**33, 2**33], "single"), "rand"),
    (lambda: ml.rand(0, 2**62), "rand"),
])
def test_huge_random_arrays_name_the_function(call, fname):
    with pytest.raises(ValueError, match=rf"^{fname}: "):
        call()


def test_huge_random_array_message_names_the_size_and_bytes():
    with pytest.raises(ValueError) as info:
        ml.rand(3, 2**62)
    msg = str(info.value)
    assert "3×4611686018427387904" in msg and str(3 * 2**62 * 8) in msg


def test_huge_layer_initialization_names_layer_learnable_and_bytes():
    layer = ml.transposedConv3dLayer(100000, 3, Name="big")
    x = ml.dlarray(np.zeros((2, 2, 2, 2, 1), np.float32), "SSSCB")
    with pytest.raises(ValueError) as info:
        layer.predict(x)
    msg = str(info.value)
    assert msg.startswith("predict: Weights of TransposedConvolution3DLayer 'big'")
    assert str(100000**3 * 3 * 2 * 8) in msg and "bytes" in msg
    assert np.size(layer.Weights) == 0    # nothing was half-initialized


def test_scalar_weights_error_says_what_it_got():
    with pytest.raises(ValueError) as info:
        ml.convolution1dLayer(3, 4, Weights=np.float64(1.0))
    msg = str(info.value)
    assert msg.startswith("convolution1dLayer: Weights must be of size")
    assert not msg.rstrip().endswith("got")
    assert msg.endswith("got a scalar (1)")


# ------------------------------------------------------------------ 2./3. cost of convolutions

from hypothesis import given, settings, strategies as st   # noqa: E402

from mlayers import _conv_fallback, reference as ref       # noqa: E402
from conftest import assert_close                           # noqa: E402


def _tconv_fft(x, w, bias=None):
    """Independent reference for a stride-1, uncropped transposed convolution: a true
    (flipped) full convolution, y(:,..,f,n) = sum_c conv(x(:,..,c,n), w(:,..,f,c)), by FFT."""
    from scipy.signal import fftconvolve
    d = x.ndim - 2
    x64, w64 = x.astype(np.float64), w.astype(np.float64)
    out = tuple(a + b - 1 for a, b in zip(x.shape[:d], w.shape[:d]))
    y = np.zeros(out + (w.shape[d], x.shape[-1]))
    for n in range(x.shape[-1]):
        for f in range(w.shape[d]):
            for c in range(x.shape[d]):
                y[..., f, n] += fftconvolve(x64[..., c, n], w64[..., f, c], mode="full")
    if bias is not None:
        y += np.reshape(bias, -1)[:, None]
    return y


def _timed(f):
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0


def test_issue_forward_stride_times_dilation_costs_the_work():
    # issue 21 defect 2: 4.3 s and 1.1 GB for a 1 x 1 output before the fix
    r = np.random.default_rng(0)
    x, w = r.random((4, 4, 64, 64)), r.random((2, 2, 64, 64))
    y, dt = _timed(lambda: ml.dlconv(ml.dlarray(x, "SSCB"), w, 0, Stride=512,
                                     DilationFactor=512, Padding=256))
    assert y.shape == (1, 1, 64, 64)
    assert_close(y._data, ref.conv(x, w, None, 512, 512, 256), np.float64, 256)
    assert dt < 1.0, dt


@pytest.mark.parametrize("groups", [1, 4])
def test_depthwise_and_grouped_huge_stride_dilation_1d(groups):
    # the channel-wise kernel's plane spanned 2^24 elements per job before the fix
    r = np.random.default_rng(1)
    s = 2**24
    x = r.standard_normal((5, 4, 3)).astype(np.float32)
    w = r.standard_normal((2, 4 // groups, 4)).astype(np.float32)
    tracemalloc.start()
    y, dt = _timed(lambda: _ops.conv(x, w, None, s, s, s // 2, groups))
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert_close(y, ref.conv(x, w, None, s, s, s // 2, groups), np.float32, 8)
    assert dt < 1.0 and peak < 16 << 20, (dt, peak)
    dy = r.standard_normal(y.shape).astype(np.float32)
    (dx, dw, db), dt = _timed(lambda: _ops.conv_backward(x, w, dy, s, s, s // 2, groups))
    rdx, rdw, rdb = ref.conv_grads(x, w, dy, s, s, s // 2, groups)
    assert_close(dx, rdx, np.float32, 8)
    assert_close(dw, rdw, np.float32, 8)
    assert dt < 1.0, dt


def test_issue_transposed_filter_larger_than_input_costs_f_to_the_d():
    # issue 21 defect 3: 1.85 s (PyTorch 0.02 s); the dense adjoint cost F^(2d)
    r = np.random.default_rng(2)
    x = r.random((4, 4, 8, 2)).astype(np.float32)
    w = r.standard_normal((200, 200, 8, 8)).astype(np.float32)
    y, dt = _timed(lambda: ml.dltranspconv(ml.dlarray(x, "SSCB"), w, 0))
    assert y.shape == (203, 203, 8, 2)
    assert_close(y._data, _tconv_fft(x, w), np.float32, 8 * 16)
    assert dt < 1.0, dt


def test_issue_transposed_conv3d_layer_with_a_huge_filter_finishes():
    # issue 21: transposedConv3dLayer(200, 3) ran for minutes; same rule with 40^3 taps
    layer = ml.transposedConv3dLayer(40, 3)
    ml.rng(0)
    x = ml.dlarray(ml.rand(8, 13, 2, 2, 3).astype(np.float32), "SSSCB")
    y, dt = _timed(lambda: layer.predict(x))
    assert y.shape == (47, 52, 41, 3, 3)
    assert_close(y._data, _tconv_fft(x._data, layer.Weights, layer.Bias), np.float32,
                 2 * 8)
    assert dt < 5.0, dt


def test_costly_geometries_are_recognised_and_ordinary_ones_are_not():
    big = _ops.conv_geometry("t", (4, 4), (2, 2), (512, 512), (512, 512), (256, 256),
                             (256, 256))
    assert _ops._fallback(big, 64, np.float64)
    tconv = _ops.transposed_geometry("t", (4, 4), (200, 200), (1, 1), (1, 1), (0, 0),
                                     (0, 0), (0, 0))
    assert not _conv_fallback.dense_adjoint_ok(tconv)
    for args in [((56, 56), (3, 3), (1, 1), (1, 1), (1, 1), (1, 1)),
                 ((224, 224), (7, 7), (2, 2), (1, 1), (3, 3), (3, 3)),
                 ((56, 56), (3, 3), (1, 1), (64, 64), (64, 64), (64, 64)),
                 ((4096,), (5,), (1,), (1,), (2,), (2,)),
                 ((28, 28), (1, 1), (4, 4), (1, 1), (0, 0), (0, 0))]:
        g = _ops.conv_geometry("t", *args)
        assert not _ops._fallback(g, 64, np.float32), args
        assert _conv_fallback.dense_adjoint_ok(g), args


@st.composite
def _conv_cases(draw):
    d = draw(st.integers(1, 3))
    groups = draw(st.sampled_from([1, 2]))
    cg, fg = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    n = draw(st.integers(1, 2))
    size = [draw(st.integers(1, 5)) for _ in range(d)]
    k = [draw(st.integers(1, 3)) for _ in range(d)]
    s = [draw(st.sampled_from([1, 2, 3, 7, 1000])) for _ in range(d)]
    dl = [draw(st.sampled_from([1, 2, 5, 999])) for _ in range(d)]
    pb = [draw(st.sampled_from([0, 1, 3, 500, 2000])) for _ in range(d)]
    pa = [draw(st.sampled_from([0, 1, 3, 500, 2000])) for _ in range(d)]
    dtype = draw(st.sampled_from([np.float32, np.float64]))
    return d, groups, cg, fg, n, size, k, s, dl, [pb, pa], dtype


@settings(max_examples=40, deadline=None)
@given(_conv_cases(), st.booleans())
def test_gather_path_matches_the_reference(case, forced):
    """The gather path (forced on ordinary geometries too) against the sparse-matrix
    oracle: forward, both gradients, the transposed convolution and its gradients."""
    d, groups, cg, fg, n, size, k, s, dl, pads, dtype = case
    out = [(i + b + a - ((kk - 1) * di + 1)) // si + 1
           for i, kk, si, di, b, a in zip(size, k, s, dl, *pads)]
    if min(out) < 1 or math.prod(out) > 512:
        return
    r = np.random.default_rng(sum(size) + sum(k))
    x = r.standard_normal(size + [cg * groups, n]).astype(dtype)
    w = r.standard_normal(k + [cg, fg * groups]).astype(dtype)
    b = r.standard_normal(fg * groups).astype(dtype)
    old = _conv_fallback.EXTENT_RATIO, _conv_fallback.EXTENT_SLACK
    if forced:
        _conv_fallback.EXTENT_RATIO, _conv_fallback.EXTENT_SLACK = 0, -1
    try:
        pads = np.array(pads)
        y = _ops.conv(x, w, b, s, dl, pads, groups)
        fan = cg * math.prod(k)
        assert_close(y, ref.conv(x, w, b, s, dl, pads, groups), dtype, fan)
        dy = r.standard_normal(y.shape).astype(dtype)
        got = _ops.conv_backward(x, w, dy, s, dl, pads, groups)
        for a, e in zip(got, ref.conv_grads(x, w, dy, s, dl, pads, groups)):
            assert_close(a, e, dtype, max(fan, fg * math.prod(k), n * math.prod(out)))
        # the transposed convolution of y's size back to x's (weights F x Fg x Cg*G)
        full = [si * (o - 1) + (kk - 1) * di + 1 for si, o, kk, di in zip(s, out, k, dl)]
        if min(f - b - a for f, b, a in zip(full, *pads)) < 1:
            return
        yt = _ops.conv_transpose(dy, w, None, s, dl, pads, groups)
        assert_close(yt, ref.conv_transpose(dy, w, None, s, dl, pads, groups), dtype,
                     fg * math.prod(k))
    finally:
        _conv_fallback.EXTENT_RATIO, _conv_fallback.EXTENT_SLACK = old


# ------------------------------------------------------------------ 7. empty batches

from mlayers._props import LAYER_CLASSES    # noqa: E402


def _make(cls):
    """The layer of the class's documented example (every layer declares one)."""
    return eval("ml." + cls._example, {"ml": ml, "np": np})


def _example_input(cls, batch, dtype=np.float32, seed=0):
    fmt, shape = cls._example_input
    shape = list(shape)
    shape[fmt.index("B")] = batch
    data = np.random.default_rng(seed).standard_normal(shape).astype(dtype)
    return ml.dlarray._from_canonical(data, fmt)


_SINGLE_INPUT = [c for c in LAYER_CLASSES if c._example_input is not None]


@pytest.mark.parametrize("cls", _SINGLE_INPUT, ids=lambda c: c._constructor)
def test_every_layer_maps_an_empty_batch_to_an_empty_output_of_the_right_size(cls):
    layer = _make(cls)
    y1 = layer.predict(_example_input(cls, 2))
    y0 = layer.predict(_example_input(cls, 0))
    expect = list(y1.shape)
    if "B" in y1.dims:
        expect[y1.dims.index("B")] = 0
    assert (y0.dims, y0.shape, y0.dtype) == (y1.dims, tuple(expect), y1.dtype)


@pytest.mark.parametrize("cls", [c for c in LAYER_CLASSES if c._example_input is None],
                         ids=lambda c: c._constructor)
def test_multi_input_layers_map_empty_batches_too(cls):
    layer = _make(cls)
    if cls._constructor in ("additionLayer", "multiplicationLayer",
                            "depthConcatenationLayer", "concatenationLayer"):
        xs = [ml.dlarray._from_canonical(np.zeros((3, 4, 2, 0), np.float32), "SSCB")] * 2
        ys, state = layer._run(xs, False, "predict")
        assert state is None and ys[0].shape[-1] == 0 and ys[0].dims == "SSCB"


def test_empty_batch_leaves_the_state_alone_in_training():
    layer = ml.batchNormalizationLayer(TrainedMean=np.zeros(3), TrainedVariance=np.ones(3),
                                       Offset=np.zeros(3), Scale=np.ones(3))
    x = ml.dlarray._from_canonical(np.zeros((4, 4, 3, 0), np.float32), "SSCB")
    ys, state = layer._run([x], True, "forward")
    assert ys[0].shape == (4, 4, 3, 0) and state is None


def test_networks_map_empty_batches_and_differentiate_through_them():
    net = ml.dlnetwork([ml.imageInputLayer([8, 8, 2], Normalization="none"),
                        ml.convolution2dLayer(3, 4), ml.batchNormalizationLayer(),
                        ml.reluLayer(), ml.maxPooling2dLayer(2),
                        ml.fullyConnectedLayer(3), ml.softmaxLayer()])
    x0 = ml.dlarray(np.zeros((8, 8, 2, 0), np.float32), "SSCB")
    y = net.predict(x0)
    assert (y.dims, y.shape) == ("CB", (3, 0))
    assert net.forward(x0).shape == (3, 0)

    def f(net, x):
        loss = ml.sum(net.forward(x), "all")
        return loss, ml.dlgradient(loss, net.Learnables)
    loss, grads = ml.dlfeval(f, net, x0)
    assert float(loss._data.sum()) == 0.0


def test_functional_convolutions_accept_empty_batches():
    x = ml.dlarray(np.zeros((5, 5, 2, 0)), "SSCB")
    w = np.ones((3, 3, 2, 4))
    assert ml.dlconv(x, w, 0).shape == (3, 3, 4, 0)
    assert ml.dltranspconv(ml.dlarray(np.zeros((5, 5, 4, 0)), "SSCB"), w, 0).shape == \
        (7, 7, 2, 0)
    dx, dw, db = _ops.conv_backward(np.zeros((5, 5, 2, 0)), w, np.zeros((3, 3, 4, 0)))
    assert dx.shape == (5, 5, 2, 0) and not dw.any() and not db.any()


def test_empty_batch_error_default_names_the_layer():
    layer = ml.fullyConnectedLayer(3, Name="fc")
    x = ml.dlarray(np.zeros((4, 0), np.float32), "CB")
    with ml.package_defaults(empty_batch="error"):
        with pytest.raises(ValueError, match=r"^predict: the input of FullyConnectedLayer "
                                             r"'fc' must have at least one observation"):
            layer.predict(x)
    assert layer.predict(x).shape == (3, 0)


# ------------------------------------------------------------------ 8. smaller defects

def test_plan_cache_is_bounded():
    from mlayers._cache import PLAN_CACHE_SIZE
    layer = ml.convolution1dLayer(3, 4)
    for n in range(5, 5 + 3 * PLAN_CACHE_SIZE):
        layer.predict(ml.dlarray(np.zeros((n, 2, 1), np.float32), "SCB"))
    assert len(layer._memo) == PLAN_CACHE_SIZE
    # the most recent sizes are kept; an old one is recomputed and still right
    x = np.random.default_rng(0).standard_normal((5, 2, 1)).astype(np.float32)
    y = layer.predict(ml.dlarray(x, "SCB"))
    assert_close(y._data, ref.conv(x, layer.Weights, layer.Bias), np.float32, 6)
    layer.Stride = 2                        # an assignment still empties it
    assert len(layer._memo) == 0


def test_cloned_layers_keep_a_bounded_cache():
    from mlayers import graph
    from mlayers._cache import LRUCache
    layer = ml.convolution1dLayer(3, 4)
    layer.predict(ml.dlarray(np.zeros((5, 2, 1), np.float32), "SCB"))
    c = graph.clone(layer)
    assert isinstance(c._memo, LRUCache) and len(c._memo) == 1 and c._memo is not layer._memo


def test_threads_block_is_thread_local():
    before = ml.get_num_threads()
    seen = {}
    inside, done = threading.Event(), threading.Event()

    def other():
        inside.wait(5)
        seen["other"] = ml.get_num_threads()
        done.set()

    t = threading.Thread(target=other)
    t.start()
    with ml.threads(1):
        inside.set()
        done.wait(5)
        assert ml.get_num_threads() == 1
    t.join(5)
    assert seen["other"] == before and ml.get_num_threads() == before
    with ml.threads(1):
        ml.set_num_threads(2)                 # inside a block: that block's count
        assert ml.get_num_threads() == 2
    assert ml.get_num_threads() == before
    with pytest.raises(ValueError, match=r"^threads: n must be a positive integer"):
        with ml.threads(0):
            pass


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_on_infinite_input_warns_nothing(dtype):
    # MATLAB: softmax of [Inf; 1] is [1; 0] (exp(x - max) with max = Inf gives NaN at the
    # Inf itself in a naive formula); the layer must not print NumPy RuntimeWarnings
    x = ml.dlarray(np.array([[np.inf, 1.0, -np.inf], [1.0, np.inf, -np.inf]],
                            dtype).T.copy(), "CB")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        y = ml.softmaxLayer().predict(x)
    assert y.shape == (3, 2)
