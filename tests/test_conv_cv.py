"""conv_cv, the direct convolution vectorized over output channels for small planes
(pyx/_simd.h cv_block, mlayers._ops._run_cv), and its weight gradient
(conv_weight_grad_cv): forward, dX (the stride-1 adjoint as a forward convolution) and dW
against the sparse-matrix oracle, per instruction set, 1-D to 3-D,
strides, dilations, asymmetric padding, one to several filter blocks of 1, 2 and 4
vectors, batches whose position blocks straddle images; the same bits on 1 and 3 threads;
and the policy that sends small planes to it and larger ones elsewhere."""
from types import SimpleNamespace

import numpy as np
import pytest

from mlayers import _ops
from mlayers import reference as R
from test_kernels import (F32, F64, _fixed, _spy, case_id, check_conv_both_ways, conv_arrays,
                          isa_level)  # noqa: F401  (isa_level: a fixture)


def _cases(lanes):
    """Geometries conv_cv takes at this vector width (filters: multiples of ``lanes``)."""
    cases = []
    shapes = [(2, (7, 7), (3, 3), [1, 1], [1, 1], 1, 1),
              (2, (5, 9), (3, 2), [0, 1], [2, 0], [2, 1], [1, 2]),
              (1, (40,), (5,), [4], [0], 1, 2),                        # causal, dilated
              (1, (33,), (3,), [1], [1], 3, 1),
              (3, (4, 5, 3), (3, 3, 1), [1, 1, 0], [1, 1, 0], 1, 1),
              (2, (12, 14), (3, 3), [1, 1], [1, 1], 1, 1),
              (2, (6, 6), (1, 1), [0, 0], [0, 0], 1, 1)]
    for i, (d, size, k, before, after, stride, dil) in enumerate(shapes):
        for j, (cg, fmul, n, dtype) in enumerate([(3, 1, 3, F32), (16, 2, 2, F64),
                                                   (5, 4, 5, F32), (9, 3, 1, F64)]):
            c = _fixed(d, size, k, cg, fmul * lanes[np.dtype(dtype).name], 1, n, dtype,
                       stride=stride if isinstance(stride, list) else [stride] * d,
                       dilation=dil if isinstance(dil, list) else [dil] * d,
                       before=before, after=after, kind="cv")
            c["seed"] += 31 * i + j
            cases.append(c)
    return cases


@pytest.fixture
def cv_calls(monkeypatch):
    """conv_cv's calls (``forward``: _run_cv's) and the filter widths of
    conv_weight_grad_cv's (``weight_grads``), on small problems (a quick oracle)."""
    grads = []
    run = _ops._conv.conv_weight_grad_cv

    def spy(*args):
        grads.append(args[4])
        return run(*args)
    monkeypatch.setattr(_ops._conv, "conv_weight_grad_cv", spy)
    calls = SimpleNamespace(forward=_spy(monkeypatch, "_run_cv"), weight_grads=grads)
    monkeypatch.setattr(_ops, "_PARALLEL_MIN_MACS", 0)
    monkeypatch.setattr(_ops, "_DIRECT_MIN_ISA", 0)
    # (Winograd F(2 x 2, 3 x 3) would take some of these 3 x 3 shapes first)
    monkeypatch.setattr(_ops, "_use_winograd2d", lambda *args, **kwargs: False)
    return calls


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
def test_against_oracle(level, isa_level, cv_calls, monkeypatch):  # noqa: F811
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    isa_level(level)
    monkeypatch.setitem(_ops._state, "threads", 2)
    lanes = {"float32": _ops._conv.cv_shape(False, 1)[0],
             "float64": _ops._conv.cv_shape(True, 1)[0]}
    widths = set()
    for c in _cases(lanes):
        before, grads = len(cv_calls.forward), len(cv_calls.weight_grads)
        check_conv_both_ways(c)
        assert len(cv_calls.forward) > before, case_id(c)
        # dW by conv_weight_grad_cv with two or four vectors of filters
        if c["fg"] % (2 * lanes[np.dtype(c["dtype"]).name]) == 0:
            assert len(cv_calls.weight_grads) > grads, case_id(c)
            widths.update(w // lanes[np.dtype(c["dtype"]).name]
                          for w in cv_calls.weight_grads[grads:])
    assert widths == {2, 4}


def test_thread_count_and_chunks_do_not_change_bits(cv_calls):
    c = _fixed(2, (7, 7), (3, 3), 40, 64, 1, 3, F32, before=[1, 1], after=[1, 1])
    x, w, b = conv_arrays(c)
    args = (c["stride"], c["dilation"], c["padding"], c["groups"])
    outs = []
    for t in (1, 3):
        with _ops.threads(t):
            outs.append(_ops.conv(x, w, b, *args))
    np.testing.assert_array_equal(outs[0], outs[1])
    assert len(cv_calls.forward) == 2


def test_nonfinite_propagate(cv_calls):
    """Inf and NaN in X, weights or bias reach the outputs they touch as MATLAB's zero
    padding then sums give them: a NaN weight times a padded zero is NaN, as in every
    engine path (docs/engine.md)."""
    c = _fixed(2, (6, 6), (3, 3), 4, 16, 1, 2, F32, before=[1, 1], after=[1, 1])
    x, w, b = conv_arrays(c)
    x[2, 3, 1, 1] = np.inf
    w[0, 0, 2, 5] = np.nan
    y = _ops.conv(x, w, b, 1, 1, c["padding"], 1)
    assert cv_calls.forward
    with np.errstate(invalid="ignore"):
        xp = np.pad(x.astype(np.float64), [(1, 1), (1, 1), (0, 0), (0, 0)])
        r = R.conv(xp, w.astype(np.float64), b.astype(np.float64))
    np.testing.assert_array_equal(np.isnan(y), np.isnan(r))
    np.testing.assert_array_equal(np.isinf(y), np.isinf(r))


def test_weight_grad_nonfinite(cv_calls):
    """An Inf in dY gives the weight gradient MATLAB's zero padding then sums give: Inf
    where it meets input values, NaN where it meets a padded zero (as every engine path)."""
    lanes = _ops._conv.cv_shape(False, 1)[0]
    c = _fixed(2, (6, 6), (3, 3), 4, 2 * lanes, 1, 2, F32, before=[1, 1], after=[1, 1])
    x, w, _ = conv_arrays(c)
    dy = np.asfortranarray(np.random.default_rng(3).standard_normal((6, 6, 2 * lanes, 2)),
                           dtype=F32)
    dy[0, 0, 3, 1] = np.inf
    _, dw, _ = _ops.conv_backward(x, w, dy, 1, 1, c["padding"], 1)
    assert cv_calls.weight_grads
    xp = np.pad(x.astype(np.float64), [(1, 1), (1, 1), (0, 0), (0, 0)])
    with np.errstate(invalid="ignore"):
        _, rw, _ = R.conv_grads(xp, w.astype(np.float64), dy.astype(np.float64))
    assert np.isnan(rw).any() and np.isinf(rw).any()
    np.testing.assert_array_equal(np.isnan(dw), np.isnan(rw))
    np.testing.assert_array_equal(np.isinf(dw), np.isinf(rw))
    fin = np.isfinite(rw)
    np.testing.assert_allclose(dw[fin], rw[fin], rtol=1e-5, atol=1e-5 * np.abs(rw[fin]).max())


def test_adjoint_skips_nonfinite_weights(cv_calls):
    """dX with a non-finite weight takes the scatter (adds only real terms), not conv_cv,
    whose padded volume would make 0 * Inf = NaN where the adjoint has no term."""
    c = _fixed(2, (7, 7), (3, 3), 16, 16, 1, 2, F32, before=[1, 1], after=[1, 1])
    x, w, _ = conv_arrays(c)
    w[0, 0, 0, 0] = np.inf
    dy = np.ones((7, 7, 16, 2), F32, order="F")
    _ops.conv_backward(x, w, dy, 1, 1, c["padding"], 1)
    assert not cv_calls.forward


def test_policy():
    """Small planes with a multiple of the vector width of filters take conv_cv (strided
    forward convolutions larger ones too); larger planes, grouped and long reductions do
    not."""
    lanes = _ops._conv.cv_shape(False, 1)[0]

    def vectors(size, cg, fg, groups=1, n=128, stride=1, forward=False):
        g = _ops.conv_geometry("t", size, (3, 3), (stride, stride), (1, 1), (1, 1), (1, 1))
        return _ops._cv_vectors(g, n, cg, fg, groups, F32, forward)
    if _ops._conv.isa()[0] < _ops._DIRECT_MIN_ISA:
        assert vectors((7, 7), 16, 32) == 0
        return
    assert vectors((7, 7), 16, 2 * lanes) == 2
    assert vectors((7, 7), 16, 4 * lanes) == 4
    assert vectors((7, 7), 16, 3 * lanes) == 1
    assert vectors((7, 7), 16, lanes + 1) == 0
    assert vectors((7, 7), 16, 2 * lanes, groups=2) == 0
    assert vectors((32, 32), 16, 2 * lanes) == 0
    assert vectors((7, 7), 128, 2 * lanes) == 2            # 1152 terms: two levels
    assert vectors((7, 7), 342, 2 * lanes) == 0            # 3078 terms: three levels
    # a strided forward convolution up to 28 x 28 outputs (not its weight gradient)
    assert vectors((56, 56), 16, 2 * lanes, stride=2, forward=True) == 2
    assert vectors((56, 56), 16, 2 * lanes, stride=2) == 0
    assert vectors((58, 58), 16, 2 * lanes, stride=2, forward=True) == 0
    assert vectors((32, 32), 16, 2 * lanes, forward=True) == 0
    # filters whose rows are not three taps (no Winograd F(2, 3) along rows): up to 20 x 20
    g5 = [_ops.conv_geometry("t", (s, s), (5, 5), (1, 1), (1, 1), (2, 2), (2, 2))
          for s in (20, 21)]
    assert [_ops._cv_vectors(g, 32, 32, 2 * lanes, 1, F32, True) for g in g5] == [2, 0]


def test_groups_of_images(cv_calls):
    """A batch whose padded volumes exceed conv_cv's budget is computed in groups of
    images (96 here: 85 channels of 16 x 16 volumes): outputs on either side of a group
    boundary and in the last group against the oracle."""
    lanes = _ops._conv.cv_shape(False, 1)[0]
    rng = np.random.default_rng(12)
    x = np.asfortranarray(rng.standard_normal((14, 14, 85, 200)), dtype=F32)
    w = np.asfortranarray(rng.standard_normal((3, 3, 85, lanes)), dtype=F32)
    b = rng.standard_normal(lanes).astype(F32)
    y = _ops.conv(x, w, b, 1, 1, 1, 1)
    assert cv_calls.forward
    for lo, hi in ((90, 100), (190, 200)):
        r = R.conv(x[..., lo:hi].astype(np.float64), w.astype(np.float64),
                   b.astype(np.float64), 1, 1, 1, 1)
        assert np.abs(y[..., lo:hi] - r).max() <= 1e-5 * np.abs(r).max()


def test_weight_grad_volume_budget(cv_calls):
    """conv_weight_grad_cv holds every image's padded volume: when those would pass its
    budget (a 1 x 1 input padded by 60 with dilation 60: 121 x 121 volumes), the weight
    gradient takes another kernel, with the oracle's values."""
    lanes = _ops._conv.cv_shape(False, 1)[0]
    rng = np.random.default_rng(14)
    x = np.asfortranarray(rng.standard_normal((1, 1, 16, 300)), dtype=F32)
    w = np.asfortranarray(rng.standard_normal((3, 3, 16, 2 * lanes)), dtype=F32)
    dy = np.asfortranarray(rng.standard_normal((1, 1, 2 * lanes, 300)), dtype=F32)
    geom = _ops.conv_geometry("t", (1, 1), (3, 3), (1, 1), (60, 60), (60, 60), (60, 60))
    xe = np.empty((300, 16, 1, 1, 1), F32)
    assert _ops._cv_volume_bytes(_ops._cv_packed(geom), xe) > _ops._CVW_MAX_INPUT
    _, dw, _ = _ops.conv_backward(x, w, dy, 1, 60, 60, 1)
    assert not cv_calls.weight_grads
    _, rw, _ = R.conv_grads(x.astype(np.float64), w.astype(np.float64),
                            dy.astype(np.float64), 1, 60, 60, 1)
    assert np.abs(dw - rw).max() <= 1e-5 * np.abs(rw).max()


@pytest.mark.parametrize("dtype", [F32, F64])
def test_strided_forward_beyond_small_planes(cv_calls, dtype):  # noqa: F811
    """A strided convolution with more outputs than the small-plane bound (20 x 18 here)
    still takes conv_cv forward, against the oracle (gradients by the other kernels)."""
    if _ops._conv.isa()[0] < _ops._DIRECT_MIN_ISA:
        pytest.skip("conv_cv needs the direct kernel's instruction set")
    lanes = _ops._conv.cv_shape(dtype == F64, 1)[0]
    c = _fixed(2, (40, 36), (3, 3), 5, 2 * lanes, 1, 2, dtype, stride=[2, 2], dilation=[1, 1],
               before=[1, 1], after=[0, 1], kind="cv")
    before = len(cv_calls.forward)
    check_conv_both_ways(c)
    assert len(cv_calls.forward) > before


@pytest.mark.parametrize("dtype", [F32, F64])
def test_weight_gradient_takes_planes_up_to_its_own_limit(cv_calls, dtype):
    """The weight gradient takes conv_weight_grad_cv for output planes of rows up to
    _CVW_MAX_ROW long up to _CVW_MAX_PLANE positions (the forward only up to
    _CV_MAX_PLANE): 15 x 15 and a stride-2 30 x 30 -> 15 x 15 against the float64
    reference; 17 x 17 and a 1-D row of 256 go elsewhere."""
    from conftest import assert_close
    lanes = _ops._conv.cv_shape(dtype == F64, 1)[0]
    rng = np.random.default_rng(12)
    for size, stride, fg, cv in ((15, 1, 2 * lanes, True), (15, 1, 4 * lanes, True),
                                 (30, 2, 2 * lanes, True), (17, 1, 2 * lanes, False)):
        out = (size - 1) // stride + 1
        assert (_ops._CV_MAX_PLANE < out * out <= _ops._CVW_MAX_PLANE) == cv
        x = rng.standard_normal((size, size, 3, 2)).astype(dtype)
        w = rng.standard_normal((3, 3, 3, fg)).astype(dtype)
        dy = rng.standard_normal((out, out, fg, 2)).astype(dtype)
        before = len(cv_calls.weight_grads)
        _, dw, _ = _ops.conv_backward(x, w, dy, stride=stride, padding=1, need_dx=False)
        assert (len(cv_calls.weight_grads) > before) == cv
        assert len(cv_calls.forward) == 0
        _, ref, _ = R.conv_grads(x.astype(F64), w.astype(F64), dy.astype(F64),
                                 stride=stride, padding=1)
        assert_close(dw, ref, dtype, fan_in=out * out * 2)
    # ... for planes of short rows only: one row of 256 (a 1-D layer) keeps the limit of
    # the other directions, 196
    for size, cv in ((256, False), (196, True)):
        geom = _ops.conv_geometry("t", (size,), (3,), (1,), (1,), (1,), (1,))
        assert bool(_ops._cv_vectors(geom, 2, 3, 2 * lanes, 1, dtype, weight_grad=True)) == cv


@pytest.mark.parametrize("level", range(len(_ops._conv.ISA_NAMES)))
def test_rectified_output_is_relu_of_the_output(level, isa_level, cv_calls, monkeypatch):  # noqa: F811
    """conv_cv's ``rectify`` (the inference program's convolution + ReLU step): the
    unrectified result's max(., 0) bit for bit, NaN kept, on every instruction set, with
    filter blocks of one and two vectors and a last block of positions cut short."""
    if level > _ops._conv.isa()[1]:
        pytest.skip(f"this CPU lacks {_ops._conv.ISA_NAMES[level]}")
    isa_level(level)
    rng = np.random.default_rng(16)
    # (planes of 7 x 6 and 3 x 2: runs of 7, 6 and 3 positions and the pieces blocks cut)
    for dtype, f, size in [(F32, 1, (7, 6)), (F32, 2, (7, 6)), (F64, 1, (7, 6)),
                           (F64, 2, (3, 2)), (F32, 1, (3, 2))]:
        f *= _ops._conv.cv_shape(dtype == F64, 1)[0]
        f = f if f >= 4 else 2 * f     # (float64 on the baseline: the direct kernels' least)
        x = rng.standard_normal(size + (5, 3)).astype(dtype)
        x[2, 1, 1, 1] = np.nan
        w = rng.standard_normal((3, 3, 5, f)).astype(dtype)
        b = rng.standard_normal((1, 1, f)).astype(dtype)
        b[0, 0, 0] = -1e30         # (filter 0: every output negative, rectified to +0)
        plan = _ops.conv_plan(x, w, b, 1, 1, 1)
        we, be, _ = plan.operands(w, b)
        before = len(cv_calls.forward)
        plain = np.array(plan.run_operands(x, we, be))
        rect = np.array(plan.run_operands(x, we, be, True))
        assert len(cv_calls.forward) == before + 2
        want = np.where(plain <= 0, dtype(0), plain)
        np.testing.assert_array_equal(rect, want)
        assert not np.signbit(rect[~np.isnan(rect)]).any()     # +0, never -0
        assert np.isnan(rect).any() and (plain < 0).any()
