"""dlresize and resize2dLayer: forward against a reference written from resize2dLayer's
sampling rules (MATLAB_SEMANTICS §14.2), against PyTorch's interpolate where the modes
coincide, backward against finite differences and PyTorch, layer construction, display,
networks and errors."""
import math

import numpy as np
import pytest

import mlayers as ml
from conftest import assert_close
from gradcheck import check


# --------------------------------------------------------------------------- reference

def ref_coords(n, m, s, transform):
    """1-based sampling coordinates u(x), x = 1..m, clamped to [1, n]."""
    out = []
    for x in range(1, m + 1):
        u = x / s + 0.5 * (1 - 1 / s) if transform == "half-pixel" else 1 + (x - 1) / s
        out.append(min(max(u, 1.0), float(n)))
    return out


def ref_nearest(u, s, rounding):
    if rounding == "round":
        return int(math.floor(u + 0.5))          # MATLAB round of u >= 1
    if rounding == "floor":
        return int(math.floor(u))
    return int(math.ceil(u)) if s < 1 else int(math.trunc(u))   # 'onnx-10'


def ref_resize(x, out, scales, method, transform, rounding):
    """Resize the first len(out) axes of x, one axis after the other, with loops."""
    y = np.asarray(x, dtype=np.float64)
    for axis, (m, s) in enumerate(zip(out, scales)):
        n = y.shape[axis]
        us = ref_coords(n, m, s, transform)
        moved = np.moveaxis(y, axis, 0)
        res = np.empty((m,) + moved.shape[1:])
        for k, u in enumerate(us):
            if method == "nearest":
                res[k] = moved[ref_nearest(u, s, rounding) - 1]
            else:
                i = int(math.floor(u))
                f = u - i
                j = min(i + 1, n)
                res[k] = moved[i - 1] if f == 0 else (1 - f) * moved[i - 1] + f * moved[j - 1]
        y = np.moveaxis(res, 0, axis)
    return y


# --------------------------------------------------------------------------- forward

MODES = [("nearest", t, r) for t in ("half-pixel", "asymmetric")
         for r in ("round", "floor", "onnx-10")] + \
    [("linear", t, "round") for t in ("half-pixel", "asymmetric")]   # rounding: nearest only


@pytest.mark.parametrize("method,transform,rounding", MODES)
@pytest.mark.parametrize("scale", [2, [1.5, 0.5], [0.75, 3]])
def test_scale_against_reference(method, transform, rounding, scale, rng, dtype):
    x = rng.standard_normal((5, 4, 3, 2)).astype(dtype)
    Y = ml.dlresize(ml.dlarray(x, "SSCB"), Scale=scale, Method=method,
                    GeometricTransformMode=transform, NearestRoundingMode=rounding)
    s = np.broadcast_to(np.asarray(scale, dtype=float), (2,))
    out = [int(math.floor(si * n)) for si, n in zip(s, x.shape[:2])]
    expected = ref_resize(x, out, s, method, transform, rounding)
    y = ml.extractdata(Y)
    assert Y.dims == "SSCB" and y.shape == tuple(out) + (3, 2) and y.dtype == dtype
    assert_close(y, expected, dtype, 2)


def test_output_size_and_nan_keeps_aspect_ratio(rng):
    x = rng.standard_normal((4, 6, 2))
    Y = ml.dlresize(ml.dlarray(x, "SSC"), OutputSize=[7, 9], Method="linear")
    np.testing.assert_allclose(ml.extractdata(Y),
                               ref_resize(x, (7, 9), (7 / 4, 9 / 6), "linear", "half-pixel",
                                          "round"), rtol=1e-13, atol=1e-14)
    Y = ml.dlresize(ml.dlarray(x, "SSC"), OutputSize=[8, np.nan])
    assert Y.shape == (8, 12, 2)
    np.testing.assert_array_equal(ml.extractdata(Y),
                                  ref_resize(x, (8, 12), (2, 2), "nearest", "half-pixel",
                                             "round"))


def test_documented_example_shape():
    """MathWorks' example: dlresize(dlarray(A,'SSC'),'Scale',[1.5 1]) on peppers.png
    (384x512x3) gives 576x512x3."""
    X = ml.dlarray(np.zeros((384, 512, 3), dtype=np.float32), "SSC")
    assert ml.dlresize(X, "Scale", [1.5, 1]).shape == (576, 512, 3)


def test_one_and_three_spatial_dims(rng):
    x = rng.standard_normal((5, 2, 3))
    Y = ml.dlresize(ml.dlarray(x, "SCB"), Scale=2.5, Method="linear")
    np.testing.assert_allclose(ml.extractdata(Y),
                               ref_resize(x, (12,), (2.5,), "linear", "half-pixel", "round"),
                               rtol=1e-13, atol=1e-14)
    x = rng.standard_normal((3, 4, 2, 2))
    Y = ml.dlresize(ml.dlarray(x, "SSSC"), Scale=[2, 1, 1.5])
    np.testing.assert_array_equal(ml.extractdata(Y),
                                  ref_resize(x, (6, 4, 3), (2, 1, 1.5), "nearest",
                                             "half-pixel", "round"))


def test_exact_samples_keep_inf():
    x = np.array([1.0, np.inf, 3.0]).reshape(3, 1)
    y = ml.extractdata(ml.dlresize(ml.dlarray(x, "SC"), Scale=1, Method="linear"))
    np.testing.assert_array_equal(y.reshape(-1), [1, np.inf, 3])


@pytest.mark.parametrize("mode,matlab", [
    ("bilinear", dict(Method="linear")),
    ("nearest", dict(GeometricTransformMode="asymmetric", NearestRoundingMode="floor")),
    ("nearest-exact", dict()),
])
def test_against_torch(mode, matlab, rng, dtype):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((5, 7, 3, 2)).astype(dtype)
    xt = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1))).requires_grad_(True)
    kw = dict(align_corners=False) if mode == "bilinear" else {}
    yt = torch.nn.functional.interpolate(xt, size=(11, 4), mode=mode, **kw)
    w = rng.standard_normal(tuple(yt.shape)).astype(dtype)
    (yt * torch.from_numpy(w)).sum().backward()

    def f(X):
        Y = ml.dlresize(X, OutputSize=[11, 4], **matlab)
        return Y, ml.dlgradient(ml.sum(Y * ml.dlarray(w.transpose(2, 3, 1, 0), "SSCB"),
                                       "all"), X)
    Y, G = ml.dlfeval(f, ml.dlarray(x, "SSCB"))
    tol = dict(rtol=1e-5, atol=1e-5) if dtype == np.float32 else dict(rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(ml.extractdata(Y), yt.detach().numpy().transpose(2, 3, 1, 0),
                               **tol)
    np.testing.assert_allclose(ml.extractdata(G), xt.grad.numpy().transpose(2, 3, 1, 0), **tol)


@pytest.mark.parametrize("kw", [
    dict(Scale=[1.5, 0.5], Method="linear"),
    dict(OutputSize=[7, 3], Method="linear", GeometricTransformMode="asymmetric"),
    dict(Scale=2),
    dict(OutputSize=[3, 5], NearestRoundingMode="onnx-10"),
])
def test_gradients_against_finite_differences(kw, rng):
    x = rng.standard_normal((4, 5, 2, 2))
    Y = ml.dlresize(ml.dlarray(x, "SSCB"), **kw)
    w = rng.standard_normal(Y.shape)
    err = check(lambda X: ml.sum(ml.dlresize(X, **kw) * ml.dlarray(w, "SSCB"), "all"), [x],
                ["SSCB"])
    assert err[0] < 1e-7


def test_dataformat(rng):
    x = rng.standard_normal((2, 3, 4, 5))                      # B C S S
    Y = ml.dlresize(x, Scale=2, DataFormat="BCSS", Method="linear")
    assert Y.dims == "" and Y.shape == (2, 3, 8, 10)
    ref = ref_resize(x.transpose(2, 3, 1, 0), (8, 10), (2, 2), "linear", "half-pixel", "round")
    np.testing.assert_allclose(ml.extractdata(Y), ref.transpose(3, 2, 0, 1), rtol=1e-13)
    w = rng.standard_normal((2, 3, 8, 10))
    err = check(lambda X: ml.sum(ml.dlresize(X, Scale=2, DataFormat="BCSS", Method="linear")
                                 * ml.dlarray(w), "all"), [x], [""])
    assert err[0] < 1e-7


def test_errors():
    X = ml.dlarray(np.zeros((4, 4, 1)), "SSC")
    with pytest.raises(ValueError, match=r"^dlresize: exactly one of Scale and OutputSize "
                                         r"must be given, got neither$"):
        ml.dlresize(X)
    with pytest.raises(ValueError, match=r"^dlresize: exactly one of Scale and OutputSize "
                                         r"must be given, got both$"):
        ml.dlresize(X, Scale=2, OutputSize=[2, 2])
    with pytest.raises(ValueError, match=r"^dlresize: Scale must be a positive number"):
        ml.dlresize(X, Scale=[1, 2, 3])
    with pytest.raises(ValueError, match=r"^dlresize: Scale must be a positive number"):
        ml.dlresize(X, Scale=-1)
    with pytest.raises(ValueError, match=r"^dlresize: Scale 0.1 gives an empty output"):
        ml.dlresize(X, Scale=0.1)
    with pytest.raises(ValueError, match=r"^dlresize: OutputSize must be a vector of 2"):
        ml.dlresize(X, OutputSize=[np.nan, np.nan])
    with pytest.raises(ValueError, match=r"^dlresize: OutputSize must be a vector of 2"):
        ml.dlresize(X, OutputSize=[2.5, 2])
    with pytest.raises(ValueError, match=r"^dlresize: Method must be"):
        ml.dlresize(X, Scale=2, Method="cubic")
    with pytest.raises(ValueError, match=r"^dlresize: X must have a spatial \(S\) dimension"):
        ml.dlresize(ml.dlarray(np.zeros((3, 2)), "CB"), Scale=2)


# --------------------------------------------------------------------------- layer

DISPLAY = """\
  Resize2DLayer with properties:

                      Name: 'up'
                     Scale: [2 2]
                OutputSize: []
      EnableReferenceInput: 0
                    Method: 'bilinear'
    GeometricTransformMode: 'half-pixel'
       NearestRoundingMode: 'round'

   Learnable Parameters
    No properties.

   State Parameters
    No properties.

  Show all properties
"""


def test_layer_construction_display_and_row():
    layer = ml.resize2dLayer("Scale", 2, "Method", "bil", Name="up")
    assert repr(layer) == DISPLAY                  # Family B: the footer is printed
    assert layer.Scale.tolist() == [2, 2] and layer.OutputSize.shape == (0, 0)
    assert layer.NumInputs == 1 and layer.InputNames == ["in"]
    ref = ml.resize2dLayer(EnableReferenceInput=True)
    assert ref.NumInputs == 2 and ref.InputNames == ["in", "ref"]
    rows = repr(ml.layer_array([layer, ml.resize2dLayer(OutputSize=[64, np.nan]), ref]))
    assert "'up'   Resize   resize with scale [2 2]\n" in rows
    assert "resize with output size [64 NaN]\n" in rows
    assert "resize with reference input\n" in rows
    with pytest.raises(ValueError, match=r"^resize2dLayer: exactly one of Scale, OutputSize "
                                         r"and EnableReferenceInput=true must be given, got 2"):
        ml.resize2dLayer(Scale=2, OutputSize=[3, 3])
    with pytest.raises(ValueError, match=r"^resize2dLayer: Scale must be a positive number"):
        ml.resize2dLayer(Scale=[1, 2, 3])
    with pytest.raises(ValueError, match=r"^resize2dLayer: Method must be"):
        ml.resize2dLayer(Scale=2, Method="cubic")
    with pytest.raises(TypeError, match=r"^Resize2DLayer: Scale is read-only"):
        layer.Scale = 3


def test_layer_predict_and_networks(rng, dtype):
    x = rng.standard_normal((4, 3, 2, 2)).astype(dtype)
    layer = ml.resize2dLayer(Scale=[2, 1.5], Method="bilinear",
                             GeometricTransformMode="asymmetric")
    y = ml.extractdata(ml.predict(layer, ml.dlarray(x, "SSCB")))
    assert_close(y, ref_resize(x, (8, 4), (2, 1.5), "linear", "asymmetric", "round"), dtype, 2)
    # size propagation and a reference input in a graph
    lg = ml.layerGraph([ml.imageInputLayer([6, 6, 2], Normalization="none", Name="in"),
                        ml.maxPooling2dLayer(2, Stride=2, Name="p"),
                        ml.resize2dLayer(EnableReferenceInput=True, Name="r")])
    lg = ml.connectLayers(lg, "in", "r/ref")
    net = ml.dlnetwork(lg)
    x = rng.standard_normal((6, 6, 2, 3)).astype(np.float32)
    Y = ml.predict(net, ml.dlarray(x, "SSCB"))
    assert Y.shape == (6, 6, 2, 3)
    net = ml.dlnetwork([ml.imageInputLayer([5, 4, 1], Normalization="none"),
                        ml.resize2dLayer(OutputSize=[10, np.nan])])
    assert ml.predict(net, ml.dlarray(np.ones((5, 4, 1, 2), np.float32), "SSCB")).shape == \
        (10, 8, 1, 2)
    assert net.Layers[1].Name == "resize"


def test_large_resize_gradient_adjoint_identity(rng):
    """Long dimensions take the scattered adjoint (the sampling matrix would be large):
    Y is linear in X, so <dL/dX, X> = <W, Y> for L = sum(W .* Y)."""
    x = rng.standard_normal((3000, 1, 2))
    w = rng.standard_normal((1700, 1, 2))

    def f(X):
        Y = ml.dlresize(X, OutputSize=1700, Method="linear")
        return Y, ml.dlgradient(ml.sum(Y * ml.dlarray(w, "SCB"), "all"), X)
    Y, G = ml.dlfeval(f, ml.dlarray(x, "SCB"))
    lhs = float(np.sum(ml.extractdata(G) * x))
    rhs = float(np.sum(w * ml.extractdata(Y)))
    assert abs(lhs - rhs) <= 1e-12 * max(abs(rhs), 1)
    np.testing.assert_allclose(ml.extractdata(Y),
                               ref_resize(x, (1700,), (1700 / 3000,), "linear", "half-pixel",
                                          "round"), rtol=1e-12, atol=1e-12)


def test_refuses_outputs_larger_than_memory():
    X = ml.dlarray(np.zeros((4, 4, 2, 2)), "SSCB")
    with pytest.raises(ValueError, match=r"^dlresize: the output of size .* more than the "
                                         r"maximum array size"):
        ml.dlresize(X, Scale=1e10)
    with pytest.raises(ValueError, match=r"^dlresize: OutputSize must be"):
        ml.dlresize(X, OutputSize=[1e30, 2])
