"""Layer-graph networks end to end: a ResNet-style graph (projection shortcuts), a
U-Net-style graph (transposedConv2dLayer + depthConcatenationLayer) and an Inception-style
block give the outputs of (1) a composition of single-layer ``predict`` calls wired by hand
from ``net.Connections`` with NumPy merges, and (2) the same network written in PyTorch
with the same weights (skipped when torch is absent).  Plus the executor's per-layer
overhead on the N2 digit network."""

import numpy as np
import pytest
from conftest import assert_close

import mlayers as ml
from mlayers._table import Table

MAX_ERRORS = {}        # (network, reference, dtype) -> max abs error, printed by -s


def _randomize_batchnorm(net, rng):
    """Random statistics, offsets and scales for every batch-normalization layer."""
    learn, state = [], []
    for layer in net.Layers:
        if type(layer).__name__ == "BatchNormalizationLayer":
            c = layer.NumChannels
            shape = (1, 1, c)
            learn += [(layer.Name, "Offset", rng.standard_normal(shape)),
                      (layer.Name, "Scale", 0.5 + rng.random(shape))]
            state += [(layer.Name, "TrainedMean", 0.3 * rng.standard_normal(shape)),
                      (layer.Name, "TrainedVariance", 0.5 + rng.random(shape))]
    cols = ("Layer", "Parameter", "Value")
    net.Learnables = Table(cols, [(a, b, ml.dlarray(v.astype(np.float32))) for a, b, v in learn])
    net.State = Table(cols, [(a, b, ml.dlarray(v.astype(np.float32))) for a, b, v in state])
    return net


def compose(net, X):
    """The network by single-layer predict calls, wired from net.Connections; the merge
    layers computed with NumPy."""
    sources = {}
    for s, d in zip(net.Connections.Source, net.Connections.Destination):
        layer, _, port = d.partition("/")
        sources.setdefault(layer, {})[port or "in"] = s
    acts = {}
    for layer in net.Layers:
        if not layer.InputNames:
            acts[layer.Name] = ml.predict(layer, X)
            continue
        ins = [acts[sources[layer.Name][p]] for p in layer.InputNames]
        kind = type(layer).__name__
        if kind == "AdditionLayer":
            y = ml.dlarray._from_canonical(sum(x.data for x in ins), ins[0].dims)
        elif kind == "DepthConcatenationLayer":
            y = ml.dlarray._from_canonical(
                np.concatenate([x.data for x in ins], axis=ins[0].dims.index("C")), ins[0].dims)
        else:
            assert len(ins) == 1
            y = ml.predict(layer, ins[0])
        acts[layer.Name] = y
    return acts[net.OutputNames[0]]


def _record(name, ref, dtype, actual, expected):
    err = float(np.max(np.abs(np.asarray(actual, np.float64) - expected)))
    MAX_ERRORS[(name, ref, np.dtype(dtype).name)] = err
    print(f"{name} vs {ref} ({np.dtype(dtype).name}): max abs error {err:.3g}")


# --------------------------------------------------------------------------- networks

def resnet_graph():
    """MathWorks' residual-network structure at small size: stem, a downsampling block
    with a projection shortcut (1x1 stride-2 conv + BN), an identity block, global
    average pooling, FC, softmax."""
    layers = [ml.imageInputLayer([8, 8, 3], Normalization="none", Name="input"),
              ml.convolution2dLayer(3, 4, Padding="same", Name="convInp"),
              ml.batchNormalizationLayer(Name="BNInp"), ml.reluLayer(Name="reluInp"),
              ml.convolution2dLayer(3, 6, Padding="same", Stride=2, Name="S1U1_conv1"),
              ml.batchNormalizationLayer(Name="S1U1_BN1"), ml.reluLayer(Name="S1U1_relu1"),
              ml.convolution2dLayer(3, 6, Padding="same", Name="S1U1_conv2"),
              ml.batchNormalizationLayer(Name="S1U1_BN2"),
              ml.additionLayer(2, Name="add11"), ml.reluLayer(Name="relu11"),
              ml.convolution2dLayer(3, 6, Padding="same", Name="S1U2_conv1"),
              ml.batchNormalizationLayer(Name="S1U2_BN1"), ml.reluLayer(Name="S1U2_relu1"),
              ml.convolution2dLayer(3, 6, Padding="same", Name="S1U2_conv2"),
              ml.batchNormalizationLayer(Name="S1U2_BN2"),
              ml.additionLayer(2, Name="add12"), ml.reluLayer(Name="relu12"),
              ml.averagePooling2dLayer(4, Name="globalPool"),
              ml.fullyConnectedLayer(5, Name="fcFinal"), ml.softmaxLayer(Name="softmax")]
    g = ml.layerGraph(layers)
    g = ml.addLayers(g, [ml.convolution2dLayer(1, 6, Stride=2, Name="skipConv1"),
                         ml.batchNormalizationLayer(Name="skipBN1")])
    g = ml.connectLayers(g, "reluInp", "skipConv1")
    g = ml.connectLayers(g, "skipBN1", "add11/in2")
    g = ml.connectLayers(g, "relu11", "add12/in2")
    return g


def unet_graph():
    layers = [ml.imageInputLayer([8, 8, 2], Normalization="none", Name="input"),
              ml.convolution2dLayer(3, 4, Padding="same", Name="enc_conv"),
              ml.reluLayer(Name="enc_relu"),
              ml.maxPooling2dLayer(2, Stride=2, Name="pool"),
              ml.convolution2dLayer(3, 8, Padding="same", Name="bridge_conv"),
              ml.reluLayer(Name="bridge_relu"),
              ml.transposedConv2dLayer(2, 4, Stride=2, Name="upconv"),
              ml.depthConcatenationLayer(2, Name="cat"),
              ml.convolution2dLayer(3, 4, Padding="same", Name="dec_conv"),
              ml.reluLayer(Name="dec_relu"),
              ml.convolution2dLayer(1, 3, Name="final")]
    return ml.connectLayers(ml.layerGraph(layers), "enc_relu", "cat/in2")


def inception_graph():
    g = ml.layerGraph([ml.imageInputLayer([8, 8, 4], Normalization="none", Name="input"),
                       ml.convolution2dLayer(1, 2, Name="b1"),
                       ml.depthConcatenationLayer(4, Name="cat"), ml.reluLayer(Name="out")])
    g = ml.addLayers(g, [ml.convolution2dLayer(1, 2, Name="b2a"),
                         ml.convolution2dLayer(3, 3, Padding="same", Name="b2b")])
    g = ml.addLayers(g, [ml.convolution2dLayer(1, 2, Name="b3a"),
                         ml.convolution2dLayer(5, 2, Padding="same", Name="b3b")])
    g = ml.addLayers(g, [ml.maxPooling2dLayer(3, Stride=1, Padding="same", Name="b4a"),
                         ml.convolution2dLayer(1, 2, Name="b4b")])
    for a, k in (("b2a", 2), ("b3a", 3), ("b4a", 4)):
        g = ml.connectLayers(g, "input", a)
    for b, k in (("b2b", 2), ("b3b", 3), ("b4b", 4)):
        g = ml.connectLayers(g, b, f"cat/in{k}")
    return g


NETWORKS = {"resnet": (resnet_graph, (8, 8, 3)), "unet": (unet_graph, (8, 8, 2)),
            "inception": (inception_graph, (8, 8, 4))}


def build(name, seed=0):
    make, size = NETWORKS[name]
    ml.rng(seed)
    net = ml.dlnetwork(make())
    return _randomize_batchnorm(net, np.random.default_rng(seed)), size


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_graph_network_equals_single_layer_composition(name, rng, dtype):
    net, size = build(name)
    X = ml.dlarray(rng.standard_normal(size + (3,)).astype(dtype), "SSCB")
    with ml.package_defaults(network_fold_batchnorm=False):
        Y = ml.predict(net, X)
    ref = compose(net, X)
    assert Y.dims == ref.dims and Y.shape == ref.shape and Y.dtype == dtype
    _record(name, "composition", dtype, Y.data, ref.data.astype(np.float64))
    np.testing.assert_array_equal(Y.data, ref.data)       # the same calls: bitwise equal
    # batch normalization folded into the convolutions (the default): float round-off
    Yf = ml.predict(net, X)
    scale = np.abs(ref.data.astype(np.float64)).max()
    tol = 1e-12 if dtype == np.float64 else 16 * np.finfo(np.float32).eps
    assert np.abs(Yf.data.astype(np.float64) - ref.data).max() <= tol * scale


def test_network_shapes_and_orders():
    net, _ = build("resnet")
    names = [layer.Name for layer in net.Layers]
    # the shortcut branch, inserted last, runs before the addition that needs it
    assert names.index("skipBN1") < names.index("add11")
    assert names.index("S1U1_BN2") < names.index("skipConv1")       # stable: insertion order
    assert net.OutputNames == ["softmax"] and net.InputNames == ["input"]
    net, _ = build("unet")
    assert ml.predict(net, ml.dlarray(np.zeros((8, 8, 2, 1)), "SSCB")).shape == (8, 8, 3, 1)
    net, _ = build("inception")
    assert ml.predict(net, ml.dlarray(np.zeros((8, 8, 4, 2)), "SSCB")).shape == (8, 8, 9, 2)


# --------------------------------------------------------------------------- PyTorch

def _torch_conv(torch, layer, x, F):
    w = torch.from_numpy(np.asarray(layer.Weights, np.float64).transpose(3, 2, 0, 1).copy())
    b = torch.from_numpy(np.asarray(layer.Bias, np.float64).ravel().copy())
    stride = tuple(int(s) for s in np.ravel(layer.Stride)) * (2 // np.size(layer.Stride))
    if layer.PaddingMode == "same":
        # MATLAB 'same' (§3.4): total = max((ceil(n/s) - 1)*s + f - n, 0), extra at the end
        pads = []
        for n, s, f in zip(x.shape[2:], stride, w.shape[2:]):
            total = max((-(-n // s) - 1) * s + f - n, 0)
            pads.append((total // 2, total - total // 2))
        x = F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    return F.conv2d(x, w, b, stride=stride)


def _torch_bn(torch, layer, x, F):
    p = [torch.from_numpy(np.asarray(getattr(layer, n), np.float64).ravel().copy())
         for n in ("TrainedMean", "TrainedVariance", "Scale", "Offset")]
    return F.batch_norm(x, p[0], p[1], p[2], p[3], training=False, eps=layer.Epsilon)


def torch_forward(net, x):
    """The network in PyTorch (NCHW, float64) from its layers and connections."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    sources = {}
    for s, d in zip(net.Connections.Source, net.Connections.Destination):
        layer, _, port = d.partition("/")
        sources.setdefault(layer, {})[port or "in"] = s
    acts = {}
    for layer in net.Layers:
        kind = type(layer).__name__
        if not layer.InputNames:
            acts[layer.Name] = torch.from_numpy(x.transpose(3, 2, 0, 1).astype(np.float64))
            continue
        ins = [acts[sources[layer.Name][p]] for p in layer.InputNames]
        h = ins[0]
        if kind == "Convolution2DLayer":
            y = _torch_conv(torch, layer, h, F)
        elif kind == "BatchNormalizationLayer":
            y = _torch_bn(torch, layer, h, F)
        elif kind == "ReLULayer":
            y = F.relu(h)
        elif kind == "AdditionLayer":
            y = ins[0] + ins[1]
        elif kind == "DepthConcatenationLayer":
            y = torch.cat(ins, dim=1)
        elif kind == "MaxPooling2DLayer":
            p = int(np.ravel(layer.PoolSize)[0])
            s = int(np.ravel(layer.Stride)[0])
            pad = (p - 1) // 2 if layer.PaddingMode == "same" else 0
            y = F.max_pool2d(h, p, stride=s, padding=pad)
        elif kind == "AveragePooling2DLayer":
            y = F.avg_pool2d(h, int(np.ravel(layer.PoolSize)[0]))
        elif kind == "TransposedConvolution2DLayer":
            w = torch.from_numpy(np.asarray(layer.Weights, np.float64).transpose(3, 2, 0, 1)
                                 .copy())
            b = torch.from_numpy(np.asarray(layer.Bias, np.float64).ravel().copy())
            y = F.conv_transpose2d(h, w, b, stride=int(np.ravel(layer.Stride)[0]))
        elif kind == "FullyConnectedLayer":
            w = torch.from_numpy(np.asarray(layer.Weights, np.float64))
            b = torch.from_numpy(np.asarray(layer.Bias, np.float64).ravel())
            y = F.linear(h.flatten(1), w, b)          # spatial size 1x1: flatten = channels
        elif kind == "SoftmaxLayer":
            y = F.softmax(h, dim=1)
        else:
            raise AssertionError(kind)
        acts[layer.Name] = y
    out = acts[net.OutputNames[0]].numpy()
    return out.T if out.ndim == 2 else out.transpose(2, 3, 1, 0)


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_graph_network_matches_pytorch(name, rng, dtype):
    pytest.importorskip("torch")
    net, size = build(name)
    x = rng.standard_normal(size + (3,)).astype(dtype)
    Y = ml.predict(net, ml.dlarray(x, "SSCB"))
    ref = torch_forward(net, x)
    assert Y.shape == ref.shape
    _record(name, "PyTorch", dtype, Y.data, ref)
    # float32: the weights are float32 and the data are rounded once per layer
    assert_close(Y.data, ref, dtype, fan_in=200)


# --------------------------------------------------------------------------- overhead

def digit_network():
    """BENCHMARKS N1/N2: MATLAB's 'Create Simple Deep Learning Network' digit classifier."""
    layers = [ml.imageInputLayer([28, 28, 1])]
    for k, f in enumerate((8, 16, 32)):
        layers += [ml.convolution2dLayer(3, f, Padding="same"), ml.batchNormalizationLayer(),
                   ml.reluLayer()]
        if k < 2:
            layers.append(ml.maxPooling2dLayer(2, Stride=2))
    layers += [ml.fullyConnectedLayer(10), ml.softmaxLayer()]
    return layers


def test_executor_matches_the_layers_called_by_hand():
    """predict(net) is exactly the layers' own calls in order (its per-layer overhead is
    measured by bench/graph_build.py)."""
    ml.rng(0)
    net = ml.dlnetwork(digit_network())
    assert len(net.Layers) == 14                 # the input layer and 13 others
    X = ml.dlarray(np.random.default_rng(0).random((28, 28, 1, 1)).astype(np.float32), "SSCB")
    h = X
    for layer in net.Layers:
        h = layer._forward(h, "predict")
    with ml.package_defaults(network_fold_batchnorm=False):
        np.testing.assert_array_equal(h.data, ml.predict(net, X).data)
