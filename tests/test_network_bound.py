"""predict's inference program bound to an input size (mlayers/network.py): from the
second call with inputs of one format, size and dtype, the steps run on arrays through
the layers' ``_predict_fn``.  The bound program must give the numbers of the unbound one
bit for bit (the same kernels), keep formats, and follow any change to the network.
Here one step per layer; the compiled chains of them: test_network_compiled.py."""

import numpy as np
import pytest

import mlayers as ml
from mlayers import network


@pytest.fixture(autouse=True)
def _one_step_per_layer():
    """The bound program step by step: the chains that run as one compiled call
    (``network_compile``) are tested against it in test_network_compiled.py."""
    with ml.package_defaults(network_compile=False):
        yield


def unbound(monkeypatch, net, *args, **kwargs):
    """predict with binding switched off (a fresh program: every layer's _forward/_run)."""
    with monkeypatch.context() as m:
        m.setattr(network.dlnetwork, "_bind", lambda *a: False)
        net._plan.programs.clear()
        out = ml.predict(net, *args, **kwargs)
    net._plan.programs.clear()
    return out


def assert_same(a, b):
    assert a.dims == b.dims
    assert np.asarray(a.data).dtype == np.asarray(b.data).dtype
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))


def digits(dtype):
    layers = [ml.imageInputLayer([12, 12, 1], Normalization="none")]
    for f in (4, 6):
        layers += [ml.convolution2dLayer(3, f, Padding="same"), ml.batchNormalizationLayer(),
                   ml.reluLayer(), ml.maxPooling2dLayer(2, Stride=2)]
    layers += [ml.averagePooling2dLayer(2, Padding="same"), ml.fullyConnectedLayer(5),
               ml.softmaxLayer()]
    net = ml.dlnetwork(layers)
    return net, ml.dlarray(np.random.default_rng(1).random((12, 12, 1, 3)).astype(dtype),
                           "SSCB")


def residual(dtype):
    lg = ml.layerGraph([
        ml.imageInputLayer([8, 8, 3], Normalization="zerocenter", Mean=np.full((1, 1, 3), 0.5),
                           Name="in"),
        ml.convolution2dLayer(3, 4, Padding="same", Name="c1"),
        ml.batchNormalizationLayer(Name="bn1"), ml.reluLayer(Name="r1"),
        ml.convolution2dLayer(3, 4, Padding="same", Name="c2"),
        ml.additionLayer(2, Name="add"), ml.reluLayer(Name="r2"),
        ml.maxPooling2dLayer(2, Stride=2, HasUnpoolingOutputs=True, Name="mp"),
        ml.maxUnpooling2dLayer(Name="unpool"),
        ml.globalAveragePooling2dLayer(Name="gap"), ml.fullyConnectedLayer(3, Name="fc")])
    lg = ml.connectLayers(lg, "r1", "add/in2")
    lg = ml.disconnectLayers(lg, "mp/out", "unpool/in")
    lg = ml.connectLayers(lg, "mp/out", "unpool/in")
    lg = ml.connectLayers(lg, "mp/indices", "unpool/indices")
    lg = ml.connectLayers(lg, "mp/size", "unpool/size")
    net = ml.dlnetwork(lg)
    return net, ml.dlarray(np.random.default_rng(2).random((8, 8, 3, 2)).astype(dtype),
                           "SSCB")


def sequence(dtype):
    net = ml.dlnetwork([
        ml.sequenceInputLayer(5), ml.convolution1dLayer(3, 6, Padding="causal"),
        ml.reluLayer(), ml.layerNormalizationLayer(), ml.globalAveragePooling1dLayer(),
        ml.fullyConnectedLayer(4), ml.softmaxLayer()])
    return net, ml.dlarray(np.random.default_rng(3).random((5, 2, 9)).astype(dtype), "CBT")


def features(dtype):
    net = ml.dlnetwork([ml.featureInputLayer(6, Normalization="zscore",
                                             Mean=np.arange(6.0).reshape(6, 1),
                                             StandardDeviation=np.ones((6, 1))),
                        ml.fullyConnectedLayer(4), ml.reluLayer(), ml.fullyConnectedLayer(2)])
    return net, ml.dlarray(np.random.default_rng(4).random((6, 5)).astype(dtype), "CB")


NETWORKS = [digits, residual, sequence, features]


@pytest.mark.parametrize("make", NETWORKS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_bound_equals_unbound(monkeypatch, make, dtype):
    net, X = make(dtype)
    x0 = np.array(X.data)
    first = ml.predict(net, X)      # runs the program, then binds it to X's size
    entries = list(net._plan.programs.values())
    assert entries and all(len(e[3]) == 1 for e in entries)
    bound = ml.predict(net, X)
    again = ml.predict(net, X)
    ref = unbound(monkeypatch, net, X)
    for y in (first, bound, again):
        assert_same(y, ref)
    np.testing.assert_array_equal(np.asarray(X.data), x0)   # the caller's X untouched
    assert bound.data is not again.data


def test_sizes_alternate(monkeypatch):
    net, X = digits(np.float32)
    rng = np.random.default_rng(5)
    xs = [ml.dlarray(rng.random((12, 12, 1, n)).astype(t), "SSCB")
          for n, t in ((3, np.float32), (1, np.float32), (3, np.float64))]
    got = [[ml.predict(net, x) for x in xs] for _ in range(3)]
    (entry,) = net._plan.programs.values()
    assert len(entry[3]) == 3
    for x, *ys in zip(xs, *got):
        ref = unbound(monkeypatch, net, x)
        for y in ys:
            assert_same(y, ref)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_changes_after_binding_are_seen(monkeypatch, dtype):
    net, X = residual(dtype)      # (float32: the learnables' class, so every step binds)
    ml.predict(net, X)
    ml.predict(net, X)
    # a property of a layer inside the network, in place
    net.Layers[2].Epsilon = 0.5                  # bn1, folded into c1
    y = ml.predict(net, X)
    assert_same(y, unbound(monkeypatch, net, X))
    # learnables assigned (copy on write: new layer objects) after binding
    rows = [(r.Layer, r.Parameter, ml.dlarray(np.asarray(r.Value.data) * 1.5))
            for r in net.Learnables]
    before = ml.predict(net, X)
    assert_same(before, unbound(monkeypatch, net, X))    # (fills the layers' own memos)
    net.Learnables = ml.Table(("Layer", "Parameter", "Value"), rows)
    y = ml.predict(net, X)
    assert np.abs(np.asarray(y.data) - np.asarray(before.data)).max() > 1e-6
    assert_same(ml.predict(net, X), unbound(monkeypatch, net, X))
    # weights changed in place (no new objects): the unfolded layers read them each call
    # (the output moves: nothing derived from their values is kept)
    before = ml.predict(net, X)
    w = net.Layers[4].Weights
    w *= -1
    y = ml.predict(net, X)
    assert np.abs(np.asarray(y.data) - np.asarray(before.data)).max() > 1e-6
    assert_same(y, unbound(monkeypatch, net, X))


def test_outputs_and_formats(monkeypatch):
    net, X = residual(np.float32)
    for _ in range(2):
        add, fc = ml.predict(net, X, Outputs=["add", "fc"])
    ref_add, ref_fc = unbound(monkeypatch, net, X, Outputs=["add", "fc"])
    assert_same(add, ref_add)
    assert_same(fc, ref_fc)
    x = np.asarray(X.data)
    for _ in range(2):
        y = ml.predict(net, x, DataFormat="SSCB")
    assert type(y) is ml.dlarray and y.dims == "" and y.shape == fc.shape


def test_nan_propagates_through_the_bound_program():
    net, X = digits(np.float32)
    ml.predict(net, X)
    X.data[3, 4, 0, 1] = np.nan
    y = np.asarray(ml.predict(net, X).data)
    assert np.isnan(y[:, 1]).all() and np.isfinite(y[:, [0, 2]]).all()


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fused_sum_and_relu_kernel(dtype):
    """The addition step with the ReLU that alone reads it, fused (_ops_norm.add): a + b,
    then max(., 0) with NaN kept and -0 -> +0 as the ReLU kernel, in the operands' own
    layout; operands of different layouts take numpy's sum and the ReLU kernel."""
    from mlayers import _ops_norm
    rng = np.random.default_rng(6)
    a = rng.standard_normal((5, 4, 3, 2)).astype(dtype)
    b = rng.standard_normal((5, 4, 3, 2)).astype(dtype)
    a[0, 0, 0, 0], b[1, 0, 0, 0] = np.nan, np.inf
    a[2, 0, 0, 0], b[2, 0, 0, 0] = -0.0, -0.0
    s = a + b
    want = np.where(s <= 0, dtype(0), s)
    for x, y in ((a, b), (np.asfortranarray(a), np.asfortranarray(b)),
                 (a.transpose(2, 0, 3, 1), b.transpose(2, 0, 3, 1)),
                 (a, np.asfortranarray(b))):
        got = _ops_norm.add(x, y, rectify=True)
        ref = want if x.shape == a.shape else want.transpose(2, 0, 3, 1)
        np.testing.assert_array_equal(got, ref)
        assert not np.signbit(got).any()
        np.testing.assert_array_equal(_ops_norm.add(x, y), x + y)


def test_properties_assigned_after_binding(monkeypatch):
    """A property assigned to a layer inside the network (the same layer object) makes the
    bound program again: convolution Stride, pooling PoolSize, input Normalization."""
    rng = np.random.default_rng(7)
    net = ml.dlnetwork([
        ml.imageInputLayer([8, 8, 1], Normalization="none"),
        ml.convolution2dLayer(3, 4, Padding="same"), ml.reluLayer(),
        ml.maxPooling2dLayer(2, Stride=2), ml.globalAveragePooling2dLayer(),
        ml.fullyConnectedLayer(2)])
    X = ml.dlarray(rng.random((8, 8, 1, 3)).astype(np.float32), "SSCB")
    for change in (lambda: setattr(net.Layers[1], "Stride", 2),
                   lambda: setattr(net.Layers[3], "PoolSize", 1),
                   lambda: (setattr(net.Layers[0], "Normalization", "zerocenter"),
                            setattr(net.Layers[0], "Mean", np.float32(0.5)))):
        ml.predict(net, X)
        before = ml.predict(net, X)                 # bound
        change()
        y = ml.predict(net, X)
        assert_same(y, unbound(monkeypatch, net, X))
        assert y.shape != before.shape or np.abs(
            np.asarray(y.data) - np.asarray(before.data)).max() > 1e-6


def test_integer_input_and_empty_batches(monkeypatch):
    """uint8 images into a normalizing input layer: that step runs the layer's own call,
    the rest bound; an empty batch is never bound (the empty-batch rule stays per call)."""
    net = ml.dlnetwork([
        ml.imageInputLayer([6, 6, 1], Normalization="zerocenter", Mean=np.float32(100)),
        ml.convolution2dLayer(3, 2), ml.reluLayer(), ml.fullyConnectedLayer(3)])
    x = np.random.default_rng(8).integers(0, 255, (6, 6, 1, 2)).astype(np.uint8)
    X = ml.dlarray(x, "SSCB")
    first, second = ml.predict(net, X), ml.predict(net, X)
    (entry,) = net._plan.programs.values()
    assert all(entry[3].values())
    assert_same(first, second)
    assert_same(second, unbound(monkeypatch, net, X))
    X0 = ml.dlarray(np.zeros((6, 6, 1, 0), np.float32), "SSCB")
    ml.predict(net, X)              # (bound again: the helper above dropped the programs)
    for _ in range(2):
        assert ml.predict(net, X0).shape == (3, 0)
    (entry,) = net._plan.programs.values()
    assert [bool(v) for v in entry[3].values()] == [True, False]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("channels", [1, 3])     # the channel-wise and the gemm kernel
@pytest.mark.parametrize("threads", [1, 2])
# (rows of 3, 9 and 20 outputs: shorter than half a vector, than a vector, and longer, as
# the channel-wise kernel copies them out of its wide runs)
@pytest.mark.parametrize("size", [(9, 7), (3, 4), (20, 6)])
def test_convolution_kernel_rectifies_as_relu(dtype, channels, threads, size):
    """conv_forward's ``rectify`` (the inference program's convolution + ReLU step): the
    unrectified result's max(., 0) bit for bit (+0, never -0), NaN kept as the ReLU kernel
    keeps it, on every tile and image."""
    from mlayers import _conv, _ops
    rng = np.random.default_rng(11)
    x = rng.standard_normal(size + (channels, 3)).astype(dtype)
    w = rng.standard_normal((3, 3, channels, 5)).astype(dtype)
    b = rng.standard_normal((1, 1, 5)).astype(dtype)
    x[size[0] // 2, size[1] // 2, 0, 1] = np.nan
    plan = _ops.conv_plan(x, w, b, 1, 1, 1)
    we, be, _ = plan.operands(w, b)
    xe = _ops._to_engine(x, 2, dtype, plan._xe_shape)
    plain, rect = (np.empty(plan._shape, dtype) for _ in range(2))
    before = _conv.isa()[0]
    try:
        for level in range(_conv.isa()[1] + 1):     # every instruction set's rectify_row
            _conv.set_isa(level)
            _conv.conv_forward(xe, we, be, plain, plan._geom.packed, 1, threads)
            _conv.conv_forward(xe, we, be, rect, plan._geom.packed, 1, threads, True)
            want = np.where(plain <= 0, dtype(0), plain)
            np.testing.assert_array_equal(rect, want)
            assert not np.signbit(rect[~np.isnan(rect)]).any()
            assert np.isnan(rect).any() and (plain < 0).any()
    finally:
        _conv.set_isa(before)


@pytest.mark.parametrize("batch", [1, 40])      # the gemm kernel's fused ReLU; a pass after
def test_convolution_and_its_relu_are_one_step(monkeypatch, batch):
    """A ReLU that alone reads a convolution's (or folded convolution's) result runs in
    that convolution's bound step: no step of its own, the unbound program's bits."""
    from mlayers import _ops_norm
    net = ml.dlnetwork([
        ml.imageInputLayer([14, 14, 8], Normalization="none"),
        ml.convolution2dLayer(3, 16, Padding="same"), ml.batchNormalizationLayer(),
        ml.reluLayer(), ml.convolution2dLayer(3, 16), ml.reluLayer(),
        ml.globalAveragePooling2dLayer(), ml.fullyConnectedLayer(3)])
    X = ml.dlarray(np.random.default_rng(8).standard_normal((14, 14, 8, batch))
                   .astype(np.float32), "SSCB")
    ml.predict(net, X)
    ((steps, _),) = [b for e in net._plan.programs.values() for b in e[3].values()]
    assert len(steps) == 5              # input, conv+bn+relu, conv+relu, pooling, fc
    assert all(s[0] is not _ops_norm.relu_in_place_or_new for s in steps)
    y = ml.predict(net, X)
    assert_same(y, unbound(monkeypatch, net, X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grouped_1d_and_3d_convolutions_with_their_relus(monkeypatch, dtype):
    """The fused convolution + ReLU step for grouped, 1-D (SCBT) and 3-D convolutions:
    the unbound program's bits, NaN kept."""
    from mlayers import _ops_norm
    rng = np.random.default_rng(15)
    cases = [
        ([ml.imageInputLayer([9, 8, 4], Normalization="none"),
          ml.groupedConvolution2dLayer(3, 3, 2, Padding="same"), ml.reluLayer(),
          ml.groupedConvolution2dLayer(3, 1, "channel-wise"), ml.reluLayer(),
          ml.fullyConnectedLayer(3)], (9, 8, 4, 5), "SSCB"),
        ([ml.sequenceInputLayer([7, 3]), ml.convolution1dLayer(3, 6, Padding="same"),
          ml.reluLayer(), ml.flattenLayer(), ml.fullyConnectedLayer(2)],
         (7, 3, 4, 5), "SCBT"),
        ([ml.image3dInputLayer([5, 6, 4, 2], Normalization="none"),
          ml.convolution3dLayer(2, 4), ml.reluLayer(), ml.fullyConnectedLayer(2)],
         (5, 6, 4, 2, 3), "SSSCB")]
    for layers, shape, fmt in cases:
        net = ml.dlnetwork(layers)
        x = rng.standard_normal(shape).astype(dtype)
        x.flat[3] = np.nan
        X = ml.dlarray(x, fmt)
        ml.predict(net, X)
        ((steps, _),) = [b for e in net._plan.programs.values() for b in e[3].values()]
        assert all(s[0] is not _ops_norm.relu_in_place_or_new for s in steps)
        y = ml.predict(net, X)                      # bound
        assert_same(y, unbound(monkeypatch, net, X))


def resnet(dtype, size=16, batch=3):
    """Two residual blocks (MATLAB's small ResNet shape, N4): an identity shortcut and a
    stride-2 one through a 1 x 1 convolution, 3 x 3 convolutions of 16 and 24 channels
    (F(2 x 2, 3 x 3) at these sizes, whole tiles or odd planes), batch normalization."""
    def block(name, c, stride):
        return [ml.convolution2dLayer(3, c, Padding="same", Stride=stride, Name=name + "c1"),
                ml.batchNormalizationLayer(Name=name + "bn1"), ml.reluLayer(Name=name + "r1"),
                ml.convolution2dLayer(3, c, Padding="same", Name=name + "c2"),
                ml.batchNormalizationLayer(Name=name + "bn2"),
                ml.additionLayer(2, Name=name + "add"), ml.reluLayer(Name=name + "r2")]
    lg = ml.layerGraph([ml.imageInputLayer([size, size, 3], Normalization="none"),
                        ml.convolution2dLayer(3, 16, Padding="same", Name="c0"),
                        ml.reluLayer(Name="r0")] + block("a", 16, 1) + block("b", 24, 2)
                       + [ml.globalAveragePooling2dLayer(Name="gap"),
                          ml.fullyConnectedLayer(5, Name="fc")])
    lg = ml.addLayers(lg, ml.convolution2dLayer(1, 24, Stride=2, Name="bsc"))
    lg = ml.connectLayers(lg, "r0", "aadd/in2")
    lg = ml.connectLayers(lg, "ar2", "bsc")
    lg = ml.connectLayers(lg, "bsc", "badd/in2")
    net = ml.dlnetwork(lg)
    rng = np.random.default_rng(size)
    # (batch normalization statistics that move the values: sums of both signs)
    for layer in net.Layers:
        if isinstance(layer, ml.layers.batchnorm.BatchNormalizationLayer):
            c = layer.NumChannels
            layer.TrainedMean = rng.standard_normal((1, 1, c)).astype(np.float32) * 0.1
            layer.TrainedVariance = rng.random((1, 1, c)).astype(np.float32) + 0.5
    return net, ml.dlarray(rng.standard_normal((size, size, 3, batch)).astype(dtype), "SSCB")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("size", [16, 15])
@pytest.mark.parametrize("threads", [1, 2])
def test_residual_additions_run_in_the_convolution_steps(monkeypatch, dtype, size, threads):
    """Each addition of a residual block runs in the step of the convolution whose result
    it alone reads (the other input made before it: the block's input, or the main path
    for the 1 x 1 shortcut), with the ReLU after it: no addition or ReLU steps of their own,
    the unbound program's bits (F(2 x 2, 3 x 3) adding in its kernel, the others after)."""
    from mlayers import _ops
    from mlayers.layers.merge import AdditionLayer
    net, X = resnet(dtype, size)
    in_kernel = []
    run = _ops._run_winograd2d

    def spy(*args):
        in_kernel.append(len(args) > 7 and args[7] is not None)
        return run(*args)
    monkeypatch.setattr(_ops, "_run_winograd2d", spy)
    with ml.threads(threads):
        ml.predict(net, X)
        got = ml.predict(net, X)
        ((steps, _),) = [b for e in net._plan.programs.values() for b in e[3].values()]
        fused = [net.Layers[s[4]].Name for s in steps if len(s[1]) == 2]
        assert fused == ["ac2", "bsc"]
        own = (AdditionLayer, ml.layers.activation.ReLULayer)
        assert not any(isinstance(net.Layers[s[4]], own) for s in steps)
        assert any(in_kernel)
        assert_same(got, unbound(monkeypatch, net, X))


def test_residual_addition_not_fused_when_its_operand_is_needed(monkeypatch):
    """A convolution result that is an output, or that another layer reads too, stays a
    step's result of its own, with its addition a step of its own."""
    net, X = resnet(np.float32)
    lg = ml.addLayers(ml.layerGraph(net), ml.globalAveragePooling2dLayer(Name="gap2"))
    twice = ml.dlnetwork(ml.connectLayers(lg, "abn2", "gap2"))
    for n, outputs in ((net, ["abn2", "fc"]), (twice, ["fc", "gap2"])):
        ml.predict(n, X, Outputs=outputs)
        got = ml.predict(n, X, Outputs=outputs)
        ((steps, _),) = [b for e in n._plan.programs.values() for b in e[3].values()]
        assert [n.Layers[s[4]].Name for s in steps if len(s[1]) == 2] == ["aadd", "bsc"]
        for a, b in zip(got, unbound(monkeypatch, n, X, Outputs=outputs)):
            assert_same(a, b)


@pytest.mark.parametrize("dims", [1, 3])
def test_residual_addition_of_1d_and_3d_convolutions(monkeypatch, dims):
    """3-D (SSSCB) convolutions, whose kernels add the residual in a pass after: the same;
    1-D ones on CBT data (over T: no bound convolution step) keep the addition's step.
    The unbound program's bits either way."""
    conv = ml.convolution1dLayer if dims == 1 else ml.convolution3dLayer
    size = [12] * dims + [4]
    inp = (ml.sequenceInputLayer(4, MinLength=12, Name="in") if dims == 1
           else ml.image3dInputLayer(size, Normalization="none", Name="in"))
    lg = ml.layerGraph([inp, conv(3, 4, Padding="same", Name="c1"), ml.reluLayer(Name="r1"),
                        conv(3, 4, Padding="same", Name="c2"),
                        ml.additionLayer(2, Name="add"), ml.reluLayer(Name="r2")])
    net = ml.dlnetwork(ml.connectLayers(lg, "in", "add/in2"))
    rng = np.random.default_rng(dims)
    X = ml.dlarray(rng.standard_normal((4, 3, 12) if dims == 1 else size + [3])
                   .astype(np.float32), "CBT" if dims == 1 else "SSSCB")
    ml.predict(net, X)
    got = ml.predict(net, X)
    ((steps, _),) = [b for e in net._plan.programs.values() for b in e[3].values()]
    assert [net.Layers[s[4]].Name for s in steps if len(s[1]) == 2] == (
        ["add"] if dims == 1 else ["c2"])
    assert_same(got, unbound(monkeypatch, net, X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("threads", [1, 2])
def test_channel_wise_convolution_pools_its_planes(dtype, threads):
    """conv_forward's ``pool``: the 2 x 2, stride-2 max pooling of its (rectified) result,
    the pooling kernel's bits (NaN, signed zeros), on every instruction set's row copies;
    refused where it does not apply."""
    from mlayers import _conv, _ops, _ops_pool
    rng = np.random.default_rng(12)
    # (rows of the kernel's runs an even number apart, pooled where they lie, and an odd
    # number: a 2 x 2 filter, pooled from a compact copy; strides within the filter's
    # reach, and beyond it: rows longer than the run's room, also from a compact copy;
    # rows of two outputs, which the unpooled kernel sums in its scalar tail)
    for size, f, k, pad, stride in [((28, 28), 8, 3, 1, 1), ((6, 10), 5, 3, 1, 1),
                                    ((2, 2), 3, 3, 1, 1), ((8, 10), 5, 2, [[1, 1], [0, 0]], 1),
                                    ((16, 16), 4, 3, 1, 2), ((12, 12), 4, 1, 0, 3),
                                    ((5, 10), 3, (5, 2), [[0, 2], [2, 0]], [2, 3])]:
        x = rng.standard_normal(size + (1, 3)).astype(dtype)
        x[1, 1, 0, 0] = x[0, min(3, size[1] - 1), 0, 1] = np.nan
        w = rng.standard_normal((k if isinstance(k, tuple) else (k, k)) + (1, f)).astype(dtype)
        b = rng.standard_normal((1, 1, f)).astype(dtype)
        plan = _ops.conv_plan(x, w, b, stride, 1, pad)
        assert plan.can_pool
        we, be, _ = plan.operands(w, b)
        xe = _ops._to_engine(x, 2, dtype, plan._xe_shape)
        n, c, _, o1, o2 = plan._shape
        before = _conv.isa()[0]
        try:
            for level in range(_conv.isa()[1] + 1):
                _conv.set_isa(level)
                for rectify in (False, True):
                    full = np.empty(plan._shape, dtype)
                    _conv.conv_forward(xe, we, be, full, plan._geom.packed, 1, threads,
                                       rectify)
                    want = _ops_pool.pool(np.asfortranarray(
                        full.reshape(n, c, o1, o2).T), 2, 2, 0, "max")
                    got = np.empty((n, c, 1, o1 // 2, o2 // 2), dtype)
                    _conv.conv_forward(xe, we, be, got, plan._geom.packed, 1, threads,
                                       rectify, True)
                    got = got.reshape(n, c, o1 // 2, o2 // 2).T
                    np.testing.assert_array_equal(got, want)
                    np.testing.assert_array_equal(np.signbit(got), np.signbit(want))
                    assert np.isnan(got).any()
        finally:
            _conv.set_isa(before)
    with pytest.raises(ValueError, match="pooled size"):
        _conv.conv_forward(xe, we, be, np.empty(plan._shape, dtype), plan._geom.packed, 1, 1,
                           False, True)
    x3 = rng.standard_normal((6, 6, 3, 2)).astype(dtype)         # three channels: gemm
    assert not _ops.conv_plan(x3, rng.standard_normal((3, 3, 3, 4)).astype(dtype), None,
                              1, 1, 1).can_pool


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 5])
def test_max_pooling_runs_in_the_convolution_step(monkeypatch, dtype, batch):
    """A 2 x 2, stride-2 max pooling that alone reads a channel-wise convolution (+ batch
    normalization + ReLU: N1's first layers) runs in the convolution's step; pooling that
    the kernel cannot do (odd planes, padding, average, several channels) keeps its step.
    The unbound program's bits either way."""
    def net(pool, size=12, channels=1):
        return ml.dlnetwork([
            ml.imageInputLayer([size, size, channels], Normalization="none"),
            ml.convolution2dLayer(3, 4, Padding="same", Name="c1"),
            ml.batchNormalizationLayer(Name="bn"), ml.reluLayer(Name="r"), pool,
            ml.fullyConnectedLayer(3, Name="fc")])
    rng = np.random.default_rng(batch)
    cases = [(net(ml.maxPooling2dLayer(2, Stride=2, Name="p")), 12, 1, True),
             (net(ml.maxPooling2dLayer(2, Stride=2, Padding="same", Name="p")), 12, 1, True),
             (net(ml.maxPooling2dLayer(2, Stride=2, Name="p"), 11), 11, 1, False),
             (net(ml.maxPooling2dLayer(2, Stride=2, Padding=1, Name="p")), 12, 1, False),
             (net(ml.maxPooling2dLayer(3, Stride=2, Name="p")), 12, 1, False),
             (net(ml.averagePooling2dLayer(2, Stride=2, Name="p")), 12, 1, False),
             (net(ml.maxPooling2dLayer(2, Stride=2, Name="p"), 12, 3), 12, 3, False)]
    for n, size, channels, fused in cases:
        X = ml.dlarray(rng.standard_normal((size, size, channels, batch)).astype(dtype),
                       "SSCB")
        ml.predict(n, X)
        got = ml.predict(n, X)
        ((steps, _),) = [b for e in n._plan.programs.values() for b in e[3].values()]
        names = [n.Layers[s[4]].Name for s in steps]
        assert ("p" not in names) == fused, (size, channels)
        assert_same(got, unbound(monkeypatch, n, X))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("order", ["F", "C"])
def test_small_steps_on_sequences_of_images_and_any_memory_order(monkeypatch, dtype, order):
    """The steps that call their kernels straight away (Plan.launcher, matmul_fn: the
    batch-1 programs), and the softmax and pooling steps, take the time dimension with the batch
    (SSCBT) and inputs in C order too, with the unbound program's bits; and a 'same'
    convolution run there still shows its PaddingSize."""
    net = ml.dlnetwork([
        ml.sequenceInputLayer([6, 5, 2]),
        ml.convolution2dLayer(3, 4, Padding="same", Name="c1"), ml.reluLayer(Name="r"),
        ml.maxPooling2dLayer(2, Stride=2, Padding="same"), ml.flattenLayer(),
        ml.fullyConnectedLayer(3, Name="fc"), ml.softmaxLayer()])
    rng = np.random.default_rng(11)
    for shape, fmt in (((6, 5, 2, 2, 3), "SSCBT"), ((6, 5, 2, 1), "SSCB")):
        data = rng.standard_normal(shape).astype(dtype)
        X = ml.dlarray(np.asfortranarray(data) if order == "F" else
                       np.ascontiguousarray(data), fmt)
        for outputs in (None, ["r", "softmax"]):
            ml.predict(net, X, Outputs=outputs)
            got = ml.predict(net, X, Outputs=outputs)
            assert [len(e[3]) for e in net._plan.programs.values()] == [1]
            ref = unbound(monkeypatch, net, X, Outputs=outputs)
            for y, r in zip(got if outputs else [got], ref if outputs else [ref]):
                assert_same(y, r)
            net._plan.programs.clear()
        assert got[0].shape == shape[:2] + (4,) + shape[3:]
    assert list(np.asarray(net.Layers[1].PaddingSize).ravel()) == [1, 1, 1, 1]


def test_bound_steps_follow_the_thread_count_and_say_when_memory_runs_out(monkeypatch):
    """A bound step reads the thread count when it runs (``ml.threads`` blocks change it
    for large pooling and softmax steps too), and a convolution whose result finds no
    memory says which function and how many bytes, bound or not."""
    from mlayers import _buffers, _ops, _ops_norm, _ops_pool
    seen = {}

    def spy(name, kernel):
        def run(*args):
            seen[name] = args[-2] if name == "pool" else args[-1]
            return kernel(*args)
        return run
    monkeypatch.setattr(_ops_pool._pool, "pool", spy("pool", _ops_pool._pool.pool))
    monkeypatch.setattr(_ops_norm._norm, "softmax_forward",
                        spy("softmax", _ops_norm._norm.softmax_forward))
    net = ml.dlnetwork([ml.imageInputLayer([64, 64, 3], Normalization="none"),
                        ml.averagePooling2dLayer(2, Stride=2), ml.softmaxLayer()])
    X = ml.dlarray(np.random.default_rng(6).random((64, 64, 3, 16)).astype(np.float32),
                   "SSCB")
    with ml.threads(2):
        ml.predict(net, X)
        ml.predict(net, X)
    assert seen == {"pool": 2, "softmax": 2}
    with ml.threads(1):
        ml.predict(net, X)
    assert seen == {"pool": 1, "softmax": 1}

    x = np.random.default_rng(7).random((64, 64, 1, 16)).astype(np.float32)
    w = np.random.default_rng(8).random((3, 3, 1, 8)).astype(np.float32)
    plan = _ops.conv_plan(x, w, None, padding=1)
    we, b, _ = plan.operands(w, None)
    assert plan._pooled and plan._gemm is _ops._conv.conv_forward

    def no_memory(*args, **kwargs):
        raise MemoryError
    monkeypatch.setattr(_buffers, "empty", no_memory)
    for call in (lambda: plan.run_operands(x, we, b),
                 lambda: plan.launcher(we, b, (16,))(x)):
        with pytest.raises(MemoryError, match=r"dlconv: out of memory for the output Y of "
                                              r"2097152 bytes"):
            call()
