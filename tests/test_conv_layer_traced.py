"""Convolution layers inside dlfeval run ``functional.conv.conv_layer`` (the geometry the
layer checked once per input size, no option parsing).  Their outputs and gradients must be
dlconv's with the same options, bit for bit (the same kernels on the same arrays), for
every kind of convolution layer and input layout it takes; and match central differences."""

import numpy as np
import pytest

import mlayers as ml
from mlayers import _ops
from mlayers.functional import conv as fconv

from gradcheck import check_layer_gradients, layer_against

CASES = [
    # (layer, dlconv options, input format and size)
    (lambda: ml.convolution2dLayer(3, 4, Padding="same"), dict(Padding="same"),
     "SSCB", (7, 6, 3, 2)),
    (lambda: ml.convolution2dLayer([3, 2], 5, Stride=[2, 1], DilationFactor=[1, 2],
                                   Padding=[1, 0, 2, 1]),
     dict(Stride=[2, 1], DilationFactor=[1, 2], Padding=np.array([[1, 2], [0, 1]])),
     "SSCB", (9, 8, 2, 3)),
    (lambda: ml.groupedConvolution2dLayer(3, 2, 3, Padding=1), dict(Padding=1),
     "SSCB", (6, 5, 6, 2)),
    (lambda: ml.groupedConvolution2dLayer(3, 2, "channel-wise", Stride=2),
     dict(Stride=2), "SSCB", (7, 7, 3, 2)),
    (lambda: ml.convolution1dLayer(3, 4, Padding="causal", DilationFactor=2),
     dict(Padding=np.array([[4], [0]]), DilationFactor=2), "SCB", (11, 3, 2)),
    (lambda: ml.convolution2dLayer(2, 3), {}, "SSCBT", (5, 4, 2, 2, 3)),
    (lambda: ml.convolution3dLayer(2, 3, Padding="same"), dict(Padding="same"),
     "SSSCB", (4, 5, 3, 2, 2)),
]


def _run(layer_fn, opts, fmt, size, dtype):
    rng = np.random.default_rng(len(fmt) + size[0])
    layer = layer_fn()
    x = rng.standard_normal(size).astype(dtype)
    X = ml.dlarray(x, fmt)
    # (grouping read from the weights' last dim)
    got, ref, net, ct = layer_against(layer, X, dtype, rng,
                                      lambda X, W, B: ml.dlconv(X, W, B, **opts))
    return got, ref, net, X, ct


@pytest.mark.parametrize("case", CASES, ids=[c[2] + str(i) for i, c in enumerate(CASES)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_equals_dlconv(case, dtype, monkeypatch):
    calls = []
    original = fconv.conv_layer

    def spy(*args):
        calls.append(1)
        return original(*args)
    monkeypatch.setattr(fconv, "conv_layer", spy)
    planned = []
    backward = _ops.Plan.backward
    monkeypatch.setattr(_ops.Plan, "backward",
                        lambda *a: planned.append(backward(*a)) or planned[-1])
    got, ref, _, _, _ = _run(*case, dtype)
    assert calls                                     # the layer took the planned operation
    assert planned and all(g is not None for g in planned)      # ... and its backward
    for a, b in zip(got, ref):
        a, b = np.asarray(getattr(a, "data", a)), np.asarray(getattr(b, "data", b))
        assert a.shape == b.shape and a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("case", CASES[1:3], ids=["strided", "grouped"])
def test_layer_gradients_against_central_differences(case):
    (Y, L, dX, dW, dB), _, net, X, ct = _run(*case, np.float64)
    check_layer_gradients(net, X, ct, (dX, dW, dB))


def test_plan_backward_only_for_its_arrays():
    """A plan's backward is conv_backward's for the arrays it was made for (bit for bit)
    and declines anything else, which conv_backward then checks."""
    rng = np.random.default_rng(0)
    x = np.asfortranarray(rng.standard_normal((8, 7, 3, 2)).astype(np.float32))
    w = np.asfortranarray(rng.standard_normal((3, 3, 3, 5)).astype(np.float32))
    pads = np.array([[1, 1], [1, 1]])
    plan = _ops._keyed(_ops._conv_plan(x, w, None, 1, 1, pads, 1, 0, "dlconv")[0],
                       _ops._plan_key(x, w, None))
    dy = np.asfortranarray(rng.standard_normal((8, 7, 5, 2)).astype(np.float32))
    for need in (True, False):
        got = plan.backward(x, w, dy, need)
        want = _ops.conv_backward(x, w, dy, 1, 1, pads, 1, need_dx=need)
        for a, b in zip(got, want):
            if b is None:
                assert a is None
            else:
                np.testing.assert_array_equal(a, b)
    assert plan.backward(x, w, dy[:, :6], True) is None                  # dY's size
    assert plan.backward(x, w, dy.astype(np.float64), True) is None      # dY's class
    assert plan.backward(x[:, :, :, :1], w, dy[..., :1], True) is None   # another X
    assert plan.backward(x, w.astype(np.float64), dy, True) is None
    assert plan.backward(ml.dlarray(x), w, dy, True) is None
