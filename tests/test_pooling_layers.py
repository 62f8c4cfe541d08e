"""Pooling layers: constructors, validation, displays, layer-array rows, default names,
every accepted format against the NumPy reference of tests/test_pooling.py, global pooling
shapes (§14.2), HasUnpoolingOutputs with maxUnpooling2dLayer in a network, and gradients
through networks against finite differences."""
import math

import numpy as np
import pytest

import mlayers as ml
from conftest import assert_close
from gradcheck import numeric_gradient, relative_error
from test_pooling import ref_pool, same_pads


# --------------------------------------------------------------------------- constructors

def test_constructor_forms_and_defaults():
    a = ml.maxPooling1dLayer(3, "Stride", 2, "pad", "same", Name="p1")
    assert (a.PoolSize, a.Stride, a.PaddingMode, a.Name) == (3, 2, "same", "p1")
    b = ml.averagePooling1dLayer(4, Padding=[1, 2], PaddingValue="mean")
    assert b.PaddingSize.tolist() == [1, 2] and b.PaddingValue == "mean" and b.Stride == 1
    c = ml.maxPooling3dLayer(2)
    assert c.PoolSize.tolist() == [2, 2, 2] and c.Stride.tolist() == [1, 1, 1]
    assert c.PaddingSize.tolist() == [[0, 0, 0], [0, 0, 0]]
    d = ml.averagePooling3dLayer([3, 2, 1], stride=[2, 1, 1], padding=[1, 0, 0])
    assert d.PaddingSize.tolist() == [[1, 0, 0], [1, 0, 0]] and d.PaddingValue == 0
    e = ml.maxPooling3dLayer(3, Padding=np.array([[1, 2, 0], [0, 1, 2]]))
    assert e.PaddingSize.tolist() == [[1, 2, 0], [0, 1, 2]]
    g = ml.globalAveragePooling2dLayer("Name", "gap")
    assert g.Name == "gap" and g.NumInputs == 1 and g.OutputNames == ["out"]
    u = ml.maxUnpooling2dLayer(Name="unpool")
    assert u.NumInputs == 3 and u.InputNames == ["in", "indices", "size"]


def test_validation_errors():
    with pytest.raises(ValueError, match=r"^maxPooling1dLayer: PoolSize must be a positive "
                                         r"integer scalar, got \[2 2\]"):
        ml.maxPooling1dLayer([2, 2])
    with pytest.raises(ValueError, match=r"^maxPooling1dLayer: Padding must be smaller than "
                                         r"PoolSize 2 in each dimension, got \[0 2\]"):
        ml.maxPooling1dLayer(2, Padding=[0, 2])
    with pytest.raises(ValueError, match=r"^averagePooling3dLayer: Padding must be smaller "
                                         r"than PoolSize \[2 2 2\]"):
        ml.averagePooling3dLayer(2, Padding=2)
    with pytest.raises(ValueError, match=r"^averagePooling1dLayer: PaddingValue must be 0 or "
                                         r"'mean', got 3"):
        ml.averagePooling1dLayer(2, PaddingValue=3)
    with pytest.raises(TypeError, match=r"^maxPooling3dLayer: unknown name 'PaddingValue'"):
        ml.maxPooling3dLayer(2, PaddingValue=0)
    with pytest.raises(TypeError, match=r"^globalMaxPooling1dLayer: unknown name 'Stride'"):
        ml.globalMaxPooling1dLayer(Stride=2)
    layer = ml.maxPooling3dLayer(3, Padding=2)
    with pytest.raises(ValueError, match=r"^MaxPooling3DLayer: Padding must be smaller"):
        layer.PoolSize = 2
    assert layer.PoolSize.tolist() == [3, 3, 3]
    with pytest.raises(TypeError, match=r"^MaxUnpooling2DLayer: NumInputs is read-only"):
        ml.maxUnpooling2dLayer().NumInputs = 2


# --------------------------------------------------------------------------- display

DISPLAYS = {
    "maxPooling1dLayer(3, Stride=2, Name='p1')": """\
  MaxPooling1DLayer with properties:

           Name: 'p1'

   Hyperparameters
       PoolSize: 3
         Stride: 2
    PaddingMode: 'manual'
    PaddingSize: [0 0]
""",
    "averagePooling3dLayer(2, Padding=1)": """\
  AveragePooling3DLayer with properties:

            Name: ''

   Hyperparameters
        PoolSize: [2 2 2]
          Stride: [1 1 1]
     PaddingMode: 'manual'
     PaddingSize: [2×3 double]
    PaddingValue: 0
""",
    "globalMaxPooling3dLayer(Name='gmp')": """\
  GlobalMaxPooling3DLayer with properties:

    Name: 'gmp'
""",
    "maxUnpooling2dLayer(Name='unpool')": """\
  MaxUnpooling2DLayer with properties:

          Name: 'unpool'
     NumInputs: 3
    InputNames: {'in'  'indices'  'size'}
""",
}


@pytest.mark.parametrize("call", DISPLAYS)
def test_displays_have_no_footer(call):
    """Pooling and unpooling layers are Family A without learnables: no footer (§14.1)."""
    assert repr(eval("ml." + call)) == DISPLAYS[call]


def test_layer_array_rows():
    layers = ml.layer_array([
        ml.maxPooling1dLayer(3, Name="a"), ml.averagePooling1dLayer(2, Padding="same"),
        ml.maxPooling3dLayer(3, Stride=2), ml.averagePooling3dLayer([2, 2, 1], Padding=[1, 1, 0]),
        ml.globalAveragePooling1dLayer(), ml.globalAveragePooling2dLayer(),
        ml.globalAveragePooling3dLayer(), ml.globalMaxPooling2dLayer(),
        ml.maxUnpooling2dLayer(),
    ])
    assert repr(layers) == """\
  9×1 Layer array with layers:

     1   'a'   1-D Max Pooling              3 max pooling with stride 1 and padding [0  0]
     2   ''    1-D Average Pooling          2 average pooling with stride 1 and padding 'same'
     3   ''    3-D Max Pooling              3×3×3 max pooling with stride [2  2  2] and padding [0  0  0; 0  0  0]
     4   ''    3-D Average Pooling          2×2×1 average pooling with stride [1  1  1] and padding [1  1  0; 1  1  0]
     5   ''    1-D Global Average Pooling   1-D global average pooling
     6   ''    2-D Global Average Pooling   2-D global average pooling
     7   ''    3-D Global Average Pooling   3-D global average pooling
     8   ''    2-D Global Max Pooling       2-D global max pooling
     9   ''    Max Unpooling                Max Unpooling
"""
    with ml.package_defaults(type_names="legacy"):
        assert "Global Average Pooling " in repr(ml.layer_array([ml.globalAveragePooling2dLayer()]))


def test_default_names_in_networks():
    net = ml.dlnetwork([ml.imageInputLayer([8, 8, 2], Normalization="none"),
                        ml.maxPooling2dLayer(2), ml.averagePooling2dLayer(2),
                        ml.globalAveragePooling2dLayer(), ml.globalMaxPooling2dLayer()])
    assert [layer.Name for layer in net.Layers[1:]] == ["maxpool", "avgpool", "gapool",
                                                        "gmpool"]


# --------------------------------------------------------------------------- forward

def _layer_ref(x, fmt, nd, pool, stride, pads, mode):
    """Reference for a local pooling layer on any accepted format: move the pooled dims
    (the S dims, plus T when there are fewer than nd S dims) first, C next, the rest
    merged."""
    ns = fmt.count("S")
    pooled = [i for i, c in enumerate(fmt) if c == "S"] + ([fmt.index("T")] if ns < nd else [])
    c = [fmt.index("C")]
    rest = [i for i in range(len(fmt)) if i not in pooled + c]
    xt = x.transpose(pooled + c + rest)
    rest_shape = xt.shape[nd + 1:]
    xk = xt.reshape(xt.shape[:nd + 1] + (math.prod(rest_shape),), order="F")
    in_size = xk.shape[:nd]
    if pads == "same":
        pp = [same_pads(n, p, s) for n, p, s in zip(in_size, pool, stride)]
        before, after = [p[0] for p in pp], [p[1] for p in pp]
    else:
        before, after = pads
    y, _ = ref_pool(xk, pool, stride, before, after, mode)
    y = y.reshape(y.shape[:nd + 1] + rest_shape, order="F")
    return y.transpose(np.argsort(pooled + c + rest))


LOCAL = [
    # constructor, nd, pool, stride, pads (before, after) or 'same', formats, mode
    ("maxPooling1dLayer(3, Stride=2, Padding=[1, 0])", 1, (3,), (2,), ((1,), (0,)),
     ["SCB", "SCBT", "CBT", "SC", "SCT", "CT"], "max"),
    ("averagePooling1dLayer(2, Padding='same', PaddingValue='mean')", 1, (2,), (1,), "same",
     ["SCB", "CBT", "SCBT"], "mean"),
    ("averagePooling1dLayer(3, Padding=1)", 1, (3,), (1,), ((1,), (1,)), ["SCB", "CBT"],
     "avg"),
    ("maxPooling2dLayer([2, 3], Stride=[2, 1], Padding=[1, 0, 0, 2])", 2, (2, 3), (2, 1),
     ((1, 0), (0, 2)), ["SSCB", "SSCBT", "SSC", "SSCT"], "max"),
    ("averagePooling2dLayer(3, Stride=2, Padding='same')", 2, (3, 3), (2, 2), "same",
     ["SSCB", "SSCBT"], "avg"),
    ("maxPooling3dLayer([2, 2, 3], Stride=[1, 2, 1], Padding='same')", 3, (2, 2, 3),
     (1, 2, 1), "same", ["SSSCB", "SSCBT", "SSSCBT", "SSSC"], "max"),
    ("averagePooling3dLayer(2, Padding=1, PaddingValue='mean')", 3, (2, 2, 2), (1, 1, 1),
     ((1, 1, 1), (1, 1, 1)), ["SSSCB", "SSCBT"], "mean"),
]

SHAPES = {"SCB": (7, 3, 2), "SCBT": (6, 2, 2, 3), "CBT": (3, 2, 8), "SC": (6, 2),
          "SCT": (6, 2, 4), "CT": (2, 7), "SSCB": (6, 5, 2, 2), "SSCBT": (5, 6, 2, 2, 4),
          "SSC": (5, 4, 3), "SSCT": (4, 5, 2, 3), "SSSCB": (4, 5, 4, 2, 2),
          "SSSCBT": (3, 4, 4, 1, 2, 2), "SSSC": (4, 3, 5, 2)}


@pytest.mark.parametrize("case", LOCAL, ids=lambda c: c[0])
def test_local_pooling_every_format(case, rng, dtype):
    call, nd, pool, stride, pads, fmts, mode = case
    layer = eval("ml." + call)
    for fmt in fmts:
        x = rng.standard_normal(SHAPES[fmt]).astype(dtype)
        Y = ml.predict(layer, ml.dlarray(x, fmt))
        expected = _layer_ref(x, fmt, nd, pool, stride, pads, mode)
        assert Y.dims == fmt, fmt
        assert layer._output_shape(fmt, x.shape, "predict") == (fmt, expected.shape)
        if mode == "max":
            np.testing.assert_array_equal(ml.extractdata(Y), expected.astype(dtype), fmt)
        else:
            assert_close(ml.extractdata(Y), expected, dtype, math.prod(pool), fmt)
    if pads == "same":
        assert layer.PaddingSize.size > 0                # resolved by the run


GLOBAL = [
    # constructor, format, input shape, output dims, reduced axes (input), output shape
    ("globalAveragePooling2dLayer", "SSCB", (4, 5, 3, 2), "SSCB", (0, 1), (1, 1, 3, 2)),
    ("globalAveragePooling2dLayer", "SSCBT", (4, 5, 3, 2, 3), "SSCBT", (0, 1),
     (1, 1, 3, 2, 3)),
    ("globalAveragePooling2dLayer", "SCBT", (4, 3, 2, 5), "SCB", (0, 3), (1, 3, 2)),
    ("globalMaxPooling2dLayer", "SSC", (4, 5, 3), "SSC", (0, 1), (1, 1, 3)),
    ("globalAveragePooling3dLayer", "SSSCB", (3, 4, 2, 3, 2), "SSSCB", (0, 1, 2),
     (1, 1, 1, 3, 2)),
    ("globalMaxPooling3dLayer", "SSCBT", (3, 4, 2, 3, 5), "SSCB", (0, 1, 4), (1, 1, 2, 3)),
    ("globalAveragePooling1dLayer", "CBT", (3, 2, 5), "CB", (2,), (3, 2)),
    ("globalMaxPooling1dLayer", "SCB", (7, 3, 2), "SCB", (0,), (1, 3, 2)),
    ("globalMaxPooling1dLayer", "SCBT", (7, 3, 2, 4), "SCBT", (0,), (1, 3, 2, 4)),
]


@pytest.mark.parametrize("case", GLOBAL, ids=lambda c: f"{c[0]}-{c[1]}")
def test_global_pooling_formats(case, rng, dtype):
    """§14.2: singleton S kept; a pooled T removed."""
    name, fmt, shape, out_dims, axes, out_shape = case
    layer = getattr(ml, name)()
    x = rng.standard_normal(shape).astype(dtype)
    Y = ml.predict(layer, ml.dlarray(x, fmt))
    assert (Y.dims, Y.shape) == (out_dims, out_shape)
    assert layer._output_shape(fmt, shape, "predict") == (out_dims, out_shape)
    x64 = x.astype(np.float64)
    ref = x64.max(axis=axes) if "Max" in name else x64.mean(axis=axes)
    assert_close(ml.extractdata(Y).reshape(ref.shape), ref, dtype,
                 math.prod(shape[a] for a in axes))


def test_formats_rejected():
    with pytest.raises(ValueError, match=r"^predict: the input format of MaxPooling1DLayer "
                                         r"must be one of"):
        ml.maxPooling1dLayer(2).predict(ml.dlarray(np.zeros((3, 3, 2, 1)), "SSCB"))
    with pytest.raises(ValueError, match=r"^predict: the input format of "
                                         r"GlobalAveragePooling2DLayer must be one of"):
        ml.globalAveragePooling2dLayer().predict(ml.dlarray(np.zeros((3, 2)), "CB"))
    with pytest.raises(ValueError, match=r"^predict: the padded input of MaxPooling3DLayer "
                                         r"\(2×4×4 plus padding\) must be at least PoolSize "
                                         r"3×3×3"):
        ml.maxPooling3dLayer(3).predict(ml.dlarray(np.zeros((2, 4, 4, 1, 1)), "SSSCB"))


# --------------------------------------------------------------------------- unpooling

def _unpool_net(size, stride=2):
    lg = ml.layerGraph([
        ml.imageInputLayer(list(size), Normalization="none", Name="in"),
        ml.maxPooling2dLayer(2, Stride=stride, HasUnpoolingOutputs=True, Name="pool"),
        ml.maxUnpooling2dLayer(Name="unpool")])
    lg = ml.connectLayers(lg, "pool/indices", "unpool/indices")
    lg = ml.connectLayers(lg, "pool/size", "unpool/size")
    return ml.dlnetwork(lg)


def test_unpooling_outputs_and_network(rng, dtype):
    layer = ml.maxPooling2dLayer(2, Stride=2, HasUnpoolingOutputs=True)
    assert layer.NumOutputs == 3 and layer.OutputNames == ["out", "indices", "size"]
    x = rng.standard_normal((6, 4, 3, 2)).astype(dtype)
    X = ml.dlarray(x, "SSCB")
    (Y, I, S), state = layer._run([X], False, "predict")
    Yf, If, Sf = ml.maxpool(X, 2, Stride=2, nargout=3)
    np.testing.assert_array_equal(ml.extractdata(Y), ml.extractdata(Yf))
    np.testing.assert_array_equal(ml.extractdata(I), ml.extractdata(If))
    assert S.dims == "" and ml.extractdata(S).tolist() == [[6, 4, 3, 2]] and state is None
    net = _unpool_net((6, 4, 3))
    assert [lay.Name for lay in net.Layers] == ["in", "pool", "unpool"]
    Z = ml.predict(net, X)
    np.testing.assert_array_equal(ml.extractdata(Z), ml.extractdata(ml.maxunpool(Yf, If, Sf)))
    assert Z.dims == "SSCB" and Z.shape == x.shape


def test_gradients_through_networks_against_finite_differences(rng):
    """Unpooling network, and a chain of pooling layers, differentiated with respect to
    the input through ml.forward inside dlfeval."""
    nets = [
        (_unpool_net((4, 6, 2)), "SSCB", (4, 6, 2, 2)),
        (ml.dlnetwork([ml.imageInputLayer([7, 6, 2], Normalization="none"),
                       ml.averagePooling2dLayer(3, Padding="same", PaddingValue="mean"),
                       ml.maxPooling2dLayer(2, Stride=[2, 1], Padding=[0, 1, 1, 0]),
                       ml.globalAveragePooling2dLayer()]), "SSCB", (7, 6, 2, 2)),
        (ml.dlnetwork([ml.sequenceInputLayer(3, MinLength=9),
                       ml.maxPooling1dLayer(3, Stride=2, Padding="same"),
                       ml.averagePooling1dLayer(2),
                       ml.globalMaxPooling1dLayer()]), "CBT", (3, 2, 9)),
    ]
    for net, fmt, shape in nets:
        x = rng.permutation(np.arange(math.prod(shape), dtype=np.float64)).reshape(shape) / 5
        out = ml.predict(net, ml.dlarray(x, fmt))
        w = rng.standard_normal(out.shape)

        def loss(X):
            return ml.sum(ml.forward(net, X) * ml.dlarray(w, out.dims), "all")
        g = ml.dlfeval(lambda X: ml.dlgradient(loss(X), X), ml.dlarray(x, fmt))
        num = numeric_gradient(lambda a: float(ml.extractdata(loss(ml.dlarray(a, fmt)))),
                               [x], 0)
        assert relative_error(ml.extractdata(g), num) < 1e-7


def test_unpooling_errors():
    layer = ml.maxUnpooling2dLayer(Name="u")
    X = ml.dlarray(np.zeros((2, 2, 1, 1)), "SSCB")
    with pytest.raises(ValueError, match=r"^predict: MaxUnpooling2DLayer 'u' has three inputs"):
        layer.predict(X)
    with pytest.raises(ValueError, match=r"^predict: MaxUnpooling2DLayer 'u' needs 3 inputs"):
        layer._run([X], False, "predict")
    with pytest.raises(ValueError, match=r"the 'size' input of MaxUnpooling2DLayer 'u' must "
                                         r"come from the 'size' output"):
        layer._output_shapes([("SSCB", (2, 2, 1, 1)), ("SSCB", (2, 2, 1, 1)), ("", (1, 4))],
                             "dlnetwork")
