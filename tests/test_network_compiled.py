"""predict's compiled chains (``package_defaults(network_compile=True)``, mlayers/network.py
``_compiled_chains``, mlayers/_ops.py ``program``): consecutive bound steps whose kernels
can run without Python between them (convolutions on the im2col and channel-wise
kernels, pooling, fully connected, softmax) run as one call of ``_conv.run_program``.
The same kernels with the same arguments: the per-step program's bits, which the
reference is (``network_compile=False``), itself tested against the layers one by one in
test_network_bound.py."""

import numpy as np
import pytest

import mlayers as ml
from mlayers import _conv, _ops


def compiled_steps(net):
    """The compiled chains' steps in the network's bound programs (for this setting)."""
    return [s for k, e in net._plan.programs.items() if k[2]
            for b in e[3].values() if b for s in b[0] if hasattr(s[0], "keep")]


def per_step(net, *args, **kwargs):
    with ml.package_defaults(network_compile=False):
        return ml.predict(net, *args, **kwargs)


def assert_same(a, b):
    assert a.dims == b.dims
    assert np.asarray(a.data).dtype == np.asarray(b.data).dtype
    np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))


def digits(rng, dtype, size=28, pool_padding=None, pooling="max", bn=True):
    """MATLAB's digit classifier (BENCHMARKS.md N1), random learnables of ``dtype``."""
    layers = [ml.imageInputLayer([size, size, 1], Normalization="none")]
    c = 1
    for i, f in enumerate((8, 16, 32)):
        layers.append(ml.convolution2dLayer(
            3, f, Padding="same",
            Weights=rng.standard_normal((3, 3, c, f)).astype(dtype) / 3,
            Bias=rng.standard_normal((1, 1, f)).astype(dtype)))
        if bn:
            layers.append(ml.batchNormalizationLayer(
                Offset=rng.standard_normal((1, 1, f)).astype(dtype),
                Scale=(1 + 0.1 * rng.standard_normal((1, 1, f))).astype(dtype),
                TrainedMean=rng.standard_normal((1, 1, f)).astype(dtype),
                TrainedVariance=(1 + rng.random((1, 1, f))).astype(dtype)))
        layers.append(ml.reluLayer())
        if i < 2:
            kw = {} if pool_padding is None else {"Padding": pool_padding}
            layers.append(ml.maxPooling2dLayer(2, Stride=2, **kw) if pooling == "max"
                          else ml.averagePooling2dLayer(2, Stride=2, **kw))
        c = f
    side = -(-(-(-size // 2)) // 2) if pool_padding is not None else size // 4
    layers += [ml.fullyConnectedLayer(
        10, Weights=rng.standard_normal((10, side * side * 32)).astype(dtype) / 30,
        Bias=rng.standard_normal((10, 1)).astype(dtype)), ml.softmaxLayer()]
    return ml.dlnetwork(layers)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("bn", [True, False])
def test_digit_classifier_compiled_equals_per_step(dtype, batch, bn):
    rng = np.random.default_rng(batch)
    net = digits(rng, dtype, bn=bn)
    x = rng.random((28, 28, 1, batch)).astype(dtype)
    x[3, 4, 0, 0] = np.nan                          # NaN propagates through the chain
    X = ml.dlarray(x, "SSCB")
    ys = [ml.predict(net, X) for _ in range(3)]     # run, bind (and compile), compiled
    assert compiled_steps(net)
    ref = per_step(net, X)
    for y in ys:
        assert_same(y, ref)
    assert np.isnan(np.asarray(ref.data)[:, 0]).all()
    assert np.isfinite(np.asarray(ref.data)[:, 1:]).all()
    assert ys[1].data is not ys[2].data             # a new array every call
    np.testing.assert_array_equal(np.asarray(X.data), x)


def test_whole_batch_one_network_is_one_call():
    """N2 (the digit classifier at batch 1): every layer in one compiled call, and the
    'same' convolutions' displayed PaddingSize as after a run layer by layer."""
    rng = np.random.default_rng(0)
    net = digits(rng, np.float32)
    X = ml.dlarray(rng.random((28, 28, 1, 1)).astype(np.float32), "SSCB")
    ml.predict(net, X)
    ml.predict(net, X)
    (bound,) = [b for k, e in net._plan.programs.items() if k[2] for b in e[3].values()]
    assert len(bound[0]) == 1 and hasattr(bound[0][0][0], "keep")
    for layer in net.Layers:
        layer._state.clear()            # (what the compiled call must set again)
    assert np.asarray(net.Layers[1].PaddingSize).size == 0
    y = ml.predict(net, X)
    other = digits(np.random.default_rng(0), np.float32)
    assert_same(y, per_step(other, X))
    for a, b in zip(net.Layers, other.Layers):
        if hasattr(a, "PaddingSize"):
            np.testing.assert_array_equal(a.PaddingSize, b.PaddingSize)
            assert np.asarray(a.PaddingSize).size == 4


@pytest.mark.parametrize("threads", [1, 2])
def test_thread_count_read_at_each_call(threads):
    """Large steps split over the threads in use at the call; the bits never change."""
    rng = np.random.default_rng(1)
    net = digits(rng, np.float32, size=56)
    X = ml.dlarray(rng.random((56, 56, 1, 8)).astype(np.float32), "SSCB")
    ref = per_step(net, X)
    with ml.threads(threads):
        ys = [ml.predict(net, X) for _ in range(3)]
    for y in ys:
        assert_same(y, ref)


@pytest.mark.parametrize("pooling", ["max", "average"])
def test_padded_pooling(pooling):
    """Padded max pooling reads the package default for its padded cells on every call,
    so it stays out of a chain; padded average pooling has no such default and runs in
    one.  Both give the per-step program's bits, and a max pooling with the other
    default gives the other numbers at once."""
    rng = np.random.default_rng(2)
    net = digits(rng, np.float32, size=26, pool_padding="same", pooling=pooling)
    x = rng.random((26, 26, 1, 2)).astype(np.float32) - 2.0     # windows of negatives
    X = ml.dlarray(x, "SSCB")
    for setting in ("-realmax", "-Inf", "-realmax"):
        with ml.package_defaults(maxpool_padding=setting):
            ys = [ml.predict(net, X) for _ in range(3)]
            ref = per_step(net, X)
        for y in ys:
            assert_same(y, ref)
    kernels = [s.kernel for st in compiled_steps(net) for s in _chain(st[0])]
    assert ("pool" in kernels) == (pooling == "average")


def _chain(fn):
    return [k.program for k in fn.keep]


def test_in_place_and_assigned_learnables_are_seen():
    """The chain holds the addresses of the layers' own arrays: a change in place is
    seen at the next call; an assignment (a new array) makes the program again."""
    rng = np.random.default_rng(3)
    net = digits(rng, np.float32, bn=False)
    X = ml.dlarray(rng.random((28, 28, 1, 1)).astype(np.float32), "SSCB")
    ml.predict(net, X)
    before = ml.predict(net, X)
    assert compiled_steps(net)
    w = net._layers[1]._values["Weights"]
    w *= -1                                          # in place
    fc = net._layers[-2]._values["Bias"]
    fc += 1
    after = ml.predict(net, X)
    assert not np.array_equal(np.asarray(after.data), np.asarray(before.data))
    assert_same(after, per_step(net, X))
    table = net.Learnables
    table.Value[0] = ml.dlarray(np.ones((3, 3, 1, 8), np.float32))
    net.Learnables = table
    y = ml.predict(net, X)
    assert_same(y, per_step(net, X))
    assert not np.array_equal(np.asarray(y.data), np.asarray(after.data))


def test_inputs_in_any_memory_order_and_formats():
    """A C-ordered input (copied once into MATLAB's order) and an input of an
    unformatted DataFormat give the same bits."""
    rng = np.random.default_rng(4)
    net = digits(rng, np.float64)
    x = np.ascontiguousarray(rng.random((28, 28, 1, 2)))
    X = ml.dlarray(x, "SSCB")
    ref = per_step(net, X)
    for _ in range(3):
        assert_same(ml.predict(net, X), ref)
        y = ml.predict(net, x, DataFormat="SSCB")
        np.testing.assert_array_equal(np.asarray(y), np.asarray(ref.data))


def test_sequence_and_feature_chains():
    """1-D convolutions (CBT and SCB data) and fully connected chains."""
    rng = np.random.default_rng(5)
    seq = ml.dlnetwork([
        ml.sequenceInputLayer(5), ml.convolution1dLayer(3, 6, Padding="causal"),
        ml.reluLayer(), ml.convolution1dLayer(3, 4, DilationFactor=2, Padding="causal"),
        ml.globalAveragePooling1dLayer(), ml.fullyConnectedLayer(3), ml.softmaxLayer()])
    feat = ml.dlnetwork([ml.featureInputLayer(6), ml.fullyConnectedLayer(4),
                         ml.fullyConnectedLayer(5), ml.softmaxLayer()])
    for net, X in ((seq, ml.dlarray(rng.random((5, 2, 9)).astype(np.float32), "CBT")),
                   (feat, ml.dlarray(rng.random((6, 7)).astype(np.float32), "CB"))):
        ys = [ml.predict(net, X) for _ in range(3)]
        assert compiled_steps(net)
        for y in ys:
            assert_same(y, per_step(net, X))


def test_run_program_checks_sizes_and_memory():
    """The executor checks its buffers' sizes before it runs anything, and a work area
    it cannot allocate is a MemoryError, not a crash."""
    x = np.zeros(10, np.float32)
    y = np.zeros(4, np.float32)
    table = np.array([0, 40, 16, 0], dtype=np.intp)
    _conv.run_program(table, x, y, 1)                   # no steps: nothing happens
    with pytest.raises(ValueError, match="run_program: x and y must hold 40 and 16 bytes, "
                                         "got 40 and 12"):
        _conv.run_program(table, x, y[:3], 1)
    ro = y.copy()
    ro.setflags(write=False)
    with pytest.raises((BufferError, ValueError)):
        _conv.run_program(table, x, ro, 1)           # a result it cannot write
    big = np.array([0, 40, 16, 1 << 61], dtype=np.intp)
    with pytest.raises(MemoryError, match="intermediate results"):
        _conv.run_program(big, x, y, 1)


def test_switch_off():
    """network_compile=False runs one step per layer (and builds its own program)."""
    rng = np.random.default_rng(6)
    net = digits(rng, np.float32)
    X = ml.dlarray(rng.random((28, 28, 1, 1)).astype(np.float32), "SSCB")
    with ml.package_defaults(network_compile=False):
        ml.predict(net, X)
        ml.predict(net, X)
    assert not compiled_steps(net)
    ml.predict(net, X)
    ml.predict(net, X)
    assert compiled_steps(net)
    assert _ops.program_step("conv", np.float32, (1, 2)).args == (1, 2)
