"""Layer graphs: layerGraph and the graph functions (copies, names, ports, errors), the
displays, plot, the merge layers, multi-input/-output dlnetworks, R2024a-style building,
Learnables/State assignment, factors, analyzeNetwork issues, and the 500-layer timing."""
import copy

import numpy as np
import pytest
from conftest import assert_close

import mlayers as ml
from mlayers._table import Table


def residual_layers():
    return [ml.imageInputLayer([8, 8, 3], Normalization="none", Name="in"),
            ml.convolution2dLayer(3, 4, Padding="same", Name="c1"),
            ml.batchNormalizationLayer(Name="bn1"), ml.reluLayer(Name="r1"),
            ml.convolution2dLayer(3, 4, Padding="same", Name="c2"),
            ml.additionLayer(2, Name="add"), ml.reluLayer(Name="r2")]


def residual_graph():
    return ml.connectLayers(ml.layerGraph(residual_layers()), "r1", "add/in2")


# --------------------------------------------------------------------------- layerGraph

def test_layer_graph_chains_an_array_and_displays(capsys):
    g = residual_graph()
    assert [layer.Name for layer in g.Layers] == ["in", "c1", "bn1", "r1", "c2", "add", "r2"]
    t = g.Connections
    assert t.VariableNames == ["Source", "Destination"]
    assert list(zip(t.Source, t.Destination)) == [
        ("in", "c1"), ("c1", "bn1"), ("bn1", "r1"), ("r1", "c2"), ("r1", "add/in2"),
        ("c2", "add/in1"), ("add", "r2")]
    assert g.InputNames == ["in"] and g.OutputNames == []
    g.display("lgraph")
    assert capsys.readouterr().out == """\
lgraph = 

  LayerGraph with properties:

         Layers: [7×1 nnet.cnn.layer.Layer]
    Connections: [7×2 table]
     InputNames: {'in'}
    OutputNames: {1×0 cell}

"""
    g2 = ml.addLayers(g, ml.classificationLayer(Name="out"))
    g2 = ml.connectLayers(g2, "r2", "out")
    assert g2.OutputNames == ["out"]
    assert len(ml.layerGraph().Layers) == 0


def test_graph_functions_return_copies():
    layers = residual_layers()
    g = ml.layerGraph(layers)
    assert layers[5].Name == "add" and g.Layers[1] is not layers[1]       # layers copied
    g2 = ml.connectLayers(g, "r1", "add/in2")
    assert len(g.Connections) == 6 and len(g2.Connections) == 7
    g3 = ml.removeLayers(g2, "c2")
    assert [layer.Name for layer in g3.Layers] == ["in", "c1", "bn1", "r1", "add", "r2"]
    assert list(zip(g3.Connections.Source, g3.Connections.Destination)) == [
        ("in", "c1"), ("c1", "bn1"), ("bn1", "r1"), ("r1", "add/in2"), ("add", "r2")]
    assert len(g2.Layers) == 7
    g4 = ml.disconnectLayers(g2, "r1", "add/in2")
    assert len(g4.Connections) == 6 and len(g2.Connections) == 7
    # layerGraph(net) takes the layers and connections of a network
    net = ml.dlnetwork(g2)
    g5 = ml.layerGraph(net)
    assert [layer.Name for layer in g5.Layers] == [layer.Name for layer in net.Layers]
    assert g5.Connections.Destination == net.Connections.Destination


def test_automatic_names_one_rule_for_graphs_networks_and_add_layers():
    g = ml.layerGraph([ml.convolution2dLayer(3, 2), ml.reluLayer(), ml.convolution2dLayer(3, 2),
                       ml.reluLayer(), ml.fullyConnectedLayer(2)])
    assert [layer.Name for layer in g.Layers] == ["conv_1", "relu_1", "conv_2", "relu_2", "fc"]
    # MATLAB's documented example: nine unnamed FC layers -> fc_1 ... fc_9
    g9 = ml.layerGraph([ml.fullyConnectedLayer(2) for _ in range(9)])
    assert [layer.Name for layer in g9.Layers] == [f"fc_{k}" for k in range(1, 10)]
    # addLayers: names already in the graph are taken
    g2 = ml.addLayers(g, [ml.reluLayer(), ml.additionLayer(2)])
    assert [layer.Name for layer in g2.Layers][5:] == ["relu", "addition"]
    g3 = ml.addLayers(g2, ml.reluLayer())
    assert g3.Layers[-1].Name == "relu_3"
    net = ml.dlnetwork(Initialize=False)
    net = ml.addLayers(net, [ml.reluLayer(), ml.reluLayer(Name="relu_1"), ml.reluLayer()])
    assert [layer.Name for layer in net.Layers] == ["relu_2", "relu_1", "relu_3"]


@pytest.mark.parametrize("make, message", [
    (lambda: ml.layerGraph([ml.reluLayer(Name="a"), ml.reluLayer(Name="a")]),
     r"^layerGraph: layer names must be unique, got 'a' for layers 1 and 2$"),
    (lambda: ml.addLayers(residual_graph(), ml.reluLayer(Name="r1")),
     r"^addLayers: layer names must be unique, got 'r1' for layer 8, the name of a layer "
     r"already in the graph$"),
    (lambda: ml.layerGraph([ml.reluLayer(Name="a/b")]),
     r"^layerGraph: layer names must not contain '/', got 'a/b' for layer 1$"),
    (lambda: ml.connectLayers(residual_graph(), "nope", "add/in1"),
     r"^connectLayers: layer 'nope' is not a layer of the graph$"),
    (lambda: ml.connectLayers(residual_graph(), "c1", "add/in3"),
     r"^connectLayers: layer 'add' has no input named 'in3'; its inputs are in1, in2$"),
    (lambda: ml.connectLayers(ml.layerGraph(residual_layers()), "c1", "add"),
     r"^connectLayers: layer 'add' has several inputs \(in1, in2\); name one, e.g. "
     r"'add/in1'$"),
    (lambda: ml.connectLayers(residual_graph(), "in", "add/in2"),
     r"^connectLayers: cannot connect 'in' to input 'add/in2': it is already connected to "
     r"'r1'$"),
    (lambda: ml.connectLayers(residual_graph(), "r1", "add/in2"),
     r"^connectLayers: cannot connect 'r1' to input 'add/in2': the connection already "
     r"exists$"),
    (lambda: ml.connectLayers(ml.layerGraph(ml.additionLayer(2, Name="a")), "a", "a/in2"),
     r"^connectLayers: a layer cannot be connected to itself, got 'a' to 'a/in2'$"),
    (lambda: ml.connectLayers(residual_graph(), "r2", "in"),
     r"^connectLayers: layer 'in' \(Image Input\) has no inputs \(an input layer\); it cannot "
     r"be the destination of a connection, got 'in'$"),
    (lambda: ml.connectLayers(ml.layerGraph([ml.reluLayer(Name="r"),
                                             ml.classificationLayer(Name="out")]),
                              "out", "r"),
     r"^connectLayers: layer 'out' \(Classification Output\) has no outputs \(an output "
     r"layer\)"),
    (lambda: ml.connectLayers(ml.layerGraph([ml.reluLayer(Name="a"), ml.additionLayer(2, Name="b"),
                                             ml.reluLayer(Name="c")]), "c", "b/in2"),
     r"^connectLayers: connecting 'c' to 'b/in2' would create a cycle \('b' already feeds "
     r"'c'\); layer graphs must be acyclic$"),
    (lambda: ml.disconnectLayers(residual_graph(), "c1", "add/in2"),
     r"^disconnectLayers: there is no connection from 'c1' to 'add/in2'$"),
    (lambda: ml.removeLayers(residual_graph(), ["c1", "zz"]),
     r"^removeLayers: layer 'zz' is not a layer of the graph$"),
    (lambda: ml.layerGraph([ml.reluLayer(), ml.imageInputLayer([2, 2])]),
     r"^layerGraph: layer 'imageinput' \(Image Input\) is an input layer; in a layer array an "
     r"input layer must be the first layer$"),
    (lambda: ml.replaceLayer(residual_graph(), "add", ml.reluLayer(Name="x")),
     r"^replaceLayer: cannot reconnect input 'in1' of 'add' by name: layer 'x' has inputs in$"),
])
def test_graph_errors_name_the_layers(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_graph_type_errors():
    with pytest.raises(TypeError, match="^addLayers: the first argument must be a layer graph "
                                        "or a dlnetwork, got list"):
        ml.addLayers([], ml.reluLayer())
    with pytest.raises(TypeError, match="^connectLayers: s must be a string"):
        ml.connectLayers(residual_graph(), 3, "add/in1")
    with pytest.raises(TypeError, match="^replaceLayer: unknown name 'Mode'"):
        ml.replaceLayer(residual_graph(), "r2", ml.reluLayer(), Mode="order")


def test_replace_layer_by_name_and_order():
    g = residual_graph()
    # by name: a chain whose first layer has in1/in2 takes over add's inputs
    g2 = ml.replaceLayer(g, "add", [ml.multiplicationLayer(2, Name="mul"),
                                    ml.reluLayer(Name="post")])
    assert [layer.Name for layer in g2.Layers] == ["in", "c1", "bn1", "r1", "c2", "mul", "post",
                                                   "r2"]
    assert list(zip(g2.Connections.Source, g2.Connections.Destination))[3:] == [
        ("r1", "c2"), ("r1", "mul/in2"), ("c2", "mul/in1"), ("mul", "post"), ("post", "r2")]
    # by order: the relu's input 'in' goes to the first input of the new layer
    g3 = ml.replaceLayer(g, "r2", ml.leakyReluLayer(Name="lr") if hasattr(ml, "leakyReluLayer")
                         else ml.softmaxLayer(Name="lr"), ReconnectBy="order")
    assert ("add", "lr") in list(zip(g3.Connections.Source, g3.Connections.Destination))
    g4 = ml.replaceLayer(g, "add", ml.depthConcatenationLayer(2, Name="cat"), "ReconnectBy",
                         "order")
    assert ("r1", "cat/in2") in list(zip(g4.Connections.Source, g4.Connections.Destination))
    assert [layer.Name for layer in g.Layers][5] == "add"                 # unchanged


# --------------------------------------------------------------------------- networks

def test_network_from_graph_runs_in_stable_topological_order(rng):
    # Insertion order with the shortcut branch last: the network sorts it in.
    g = ml.layerGraph([ml.imageInputLayer([5, 5, 2], Normalization="none", Name="in"),
                       ml.convolution2dLayer(3, 2, Padding="same", Name="a"),
                       ml.additionLayer(2, Name="add")])
    g = ml.addLayers(g, ml.convolution2dLayer(1, 2, Name="short"))
    g = ml.connectLayers(g, "in", "short")
    g = ml.connectLayers(g, "short", "add/in2")
    net = ml.dlnetwork(g)
    assert [layer.Name for layer in net.Layers] == ["in", "a", "short", "add"]
    assert net.OutputNames == ["add"]
    x = rng.standard_normal((5, 5, 2, 3))
    X = ml.dlarray(x, "SSCB")
    ya = ml.predict(net.Layers[1], X)
    ys = ml.predict(net.Layers[2], X)
    Y = ml.predict(net, X)
    np.testing.assert_allclose(Y.data, ya.data + ys.data, rtol=1e-12)
    Ya, Ys = ml.predict(net, X, Outputs=["a", "short"])
    np.testing.assert_array_equal(Ya.data, ya.data)
    np.testing.assert_array_equal(Ys.data, ys.data)
    Y2, state = ml.predict(net, X, nargout=2)
    np.testing.assert_array_equal(Y2.data, Y.data)
    assert isinstance(state, Table) and len(state) == 0


def test_multiple_inputs_and_outputs(rng, dtype):
    g = ml.layerGraph([ml.convolution2dLayer(1, 3, Name="c"), ml.additionLayer(2, Name="add"),
                       ml.reluLayer(Name="r")])
    g = ml.addLayers(g, ml.concatenationLayer(3, 2, Name="cat"))
    g = ml.connectLayers(g, "c", "cat/in1")
    X1 = ml.dlarray(rng.standard_normal((4, 4, 2, 2)).astype(dtype), "SSCB")
    X2 = ml.dlarray(rng.standard_normal((4, 4, 3, 2)).astype(dtype), "SSCB")
    X3 = ml.dlarray(rng.standard_normal((4, 4, 1, 2)).astype(dtype), "SSCB")
    net = ml.dlnetwork(g, X1, X2, X3)
    assert net.InputNames == ["c", "add/in2", "cat/in2"]
    assert net.OutputNames == ["r", "cat"]
    Yr, Ycat = ml.predict(net, X1, X2, X3)
    c = ml.predict(net.Layers[0], X1).data
    assert Yr.dtype == dtype and Ycat.shape == (4, 4, 4, 2)
    assert_close(Yr.data, np.maximum(c + X2.data, 0), dtype, fan_in=3)
    assert_close(Ycat.data, np.concatenate([c, X3.data], axis=2), dtype, fan_in=3)
    Yc = ml.predict(net, X1, X2, X3, Outputs="cat")
    np.testing.assert_array_equal(Yc.data, Ycat.data)
    with pytest.raises(ValueError, match=r"^predict: the network has 3 input\(s\) \(c, add/in2, "
                                         r"cat/in2\), got 1$"):
        ml.predict(net, X1)
    # OutputNames chosen at build time
    net2 = ml.dlnetwork(g, X1, X2, X3, OutputNames=["add"])
    assert net2.OutputNames == ["add"]
    c2 = ml.predict(net2.Layers[0], X1).data
    np.testing.assert_array_equal(ml.predict(net2, X1, X2, X3).data, c2 + X2.data)


def test_r2024a_style_building(rng):
    net = ml.dlnetwork()
    assert net.Initialized is False and len(net.Layers) == 0
    net = ml.addLayers(net, [ml.imageInputLayer([6, 6, 1], Normalization="none"),
                             ml.convolution2dLayer(3, 2, Padding="same"), ml.additionLayer(2),
                             ml.reluLayer()])
    net = ml.addLayers(net, ml.convolution2dLayer(1, 2, Name="skip"))
    net = ml.connectLayers(net, "imageinput", "skip")
    net = ml.connectLayers(net, "skip", "addition/in2")
    assert net.Initialized is False
    assert "    Initialized: 0\n" in repr(net)
    with pytest.raises(ValueError, match="^predict: the network must be initialized"):
        ml.predict(net, ml.dlarray(np.zeros((6, 6, 1, 1)), "SSCB"))
    net2 = ml.initialize(net)
    assert net2.Initialized and not net.Initialized
    assert [r.Layer for r in net2.Learnables] == ["conv", "conv", "skip", "skip"]
    X = ml.dlarray(rng.standard_normal((6, 6, 1, 2)), "SSCB")
    Y = ml.predict(net2, X)
    a = ml.predict(net2.Layers[1], X).data
    s = ml.predict(net2.Layers[2], X).data
    np.testing.assert_allclose(Y.data, np.maximum(a + s, 0), rtol=1e-12)
    # uninitialized learnables are listed with empty values
    assert [r.Value.shape for r in net.Learnables] == [(0, 0)] * 4
    # editing an initialized network leaves it uninitialized; getLayer gives a copy
    net3 = ml.removeLayers(net2, "relu")
    assert not net3.Initialized and net2.Initialized
    layer = ml.getLayer(net2, "skip")
    assert layer.Name == "skip" and layer is not net2.Layers[2]


def test_merge_size_and_format_errors_name_the_layers():
    g = ml.layerGraph([ml.imageInputLayer([8, 8, 3], Name="in"),
                       ml.convolution2dLayer(3, 4, Padding="same", Name="c1"),
                       ml.convolution2dLayer(3, 8, Padding="same", Name="c2"),
                       ml.additionLayer(2, Name="add")])
    g = ml.connectLayers(g, "c1", "add/in2")
    with pytest.raises(ValueError, match=(
            r"^dlnetwork: layer 4 'add' \(Addition\): the inputs of AdditionLayer 'add' must "
            r"have the same size, got 8×8×8×1 \(in1\), 8×8×4×1 \(in2\); its inputs come from "
            r"'c2' \(in1\), 'c1' \(in2\)$")):
        ml.dlnetwork(g)
    g = ml.replaceLayer(g, "add", ml.depthConcatenationLayer(2, Name="cat"))
    net = ml.dlnetwork(g)
    assert net.Layers[3].Name == "cat"
    assert ml.predict(net, ml.dlarray(np.ones((8, 8, 3, 1)), "SSCB")).shape == (8, 8, 12, 1)
    g = ml.layerGraph([ml.sequenceInputLayer(3, Name="s"), ml.additionLayer(2, Name="add")])
    g = ml.addLayers(g, ml.imageInputLayer([2, 2, 3], Name="im"))
    g = ml.connectLayers(g, "im", "add/in2")
    with pytest.raises(ValueError, match=r"^dlnetwork: layer 3 'add' \(Addition\): the inputs "
                                         r"of AdditionLayer 'add' must have the same format, "
                                         r"got 'CBT' \(in1\) and 'SSCB' \(in2\)"):
        ml.dlnetwork(g)
    g = ml.layerGraph([ml.imageInputLayer([4, 4, 1], Name="in"), ml.additionLayer(2, Name="a")])
    with pytest.raises(ValueError, match=r"^dlnetwork: the network has unconnected inputs "
                                         r"\(a/in2\); connect them or give one example input "
                                         r"for each, got 0$"):
        ml.dlnetwork(g)


def test_cycle_error_in_topological_order():
    g = ml.layerGraph([ml.reluLayer(Name="a"), ml.reluLayer(Name="b")])
    g._conns.append(("b", 0, "a", 0))           # bypass connectLayers' check
    with pytest.raises(ValueError, match="^dlnetwork: the layer graph must not contain cycles; "
                                         "layers on or after a cycle: a, b$"):
        ml.dlnetwork(g, Initialize=False)


# --------------------------------------------------------------------------- merge layers

def test_merge_layer_rows_and_validation():
    rows = [layer._layer_array_row() for layer in (
        ml.additionLayer(3), ml.multiplicationLayer(2), ml.depthConcatenationLayer(4),
        ml.concatenationLayer(1, 2))]
    assert rows == [("", "Addition", "Element-wise addition of 3 inputs"),
                    ("", "Multiplication", "Element-wise multiplication of 2 inputs"),
                    ("", "Depth concatenation", "Depth concatenation of 4 inputs"),
                    ("", "Concatenation", "Concatenation of 2 inputs along dimension 1")]
    assert ml.additionLayer(3).InputNames == ["in1", "in2", "in3"]
    assert ml.concatenationLayer(3, 2).OutputNames == ["out"]
    with pytest.raises(ValueError, match="^additionLayer: NumInputs must be an integer greater "
                                         "than or equal to 2"):
        ml.additionLayer(1)
    with pytest.raises(TypeError, match="^concatenationLayer: missing required argument"):
        ml.concatenationLayer(3)


def test_concatenation_display(capsys):
    ml.concatenationLayer(3, 2, Name="concat").display("layer")
    assert capsys.readouterr().out == """\
layer = 

  ConcatenationLayer with properties:

          Name: 'concat'
           Dim: 3
     NumInputs: 2
    InputNames: {'in1'  'in2'}

"""
    text = repr(ml.depthConcatenationLayer(2, Name="d"))
    assert text == ("  DepthConcatenationLayer with properties:\n\n          Name: 'd'\n"
                    "     NumInputs: 2\n    InputNames: {'in1'  'in2'}\n")


@pytest.mark.parametrize("layer, fn", [
    (lambda: ml.additionLayer(3), lambda a, b, c: a + b + c),
    (lambda: ml.multiplicationLayer(3), lambda a, b, c: a * b * c),
    (lambda: ml.depthConcatenationLayer(3), lambda a, b, c: np.concatenate([a, b, c], 2)),
    (lambda: ml.concatenationLayer(1, 3), lambda a, b, c: np.concatenate([a, b, c], 0)),
])
def test_merge_forward_and_gradients(layer, fn, rng):
    """Forward against numpy; backward of sum(w .* Y) against central differences."""
    layer = layer()
    xs = [rng.standard_normal((3, 2, 2, 2)) for _ in range(3)]
    (Y,), _ = layer._run([ml.dlarray(x, "SSCB") for x in xs], False, "predict")
    np.testing.assert_allclose(Y.data, fn(*xs), rtol=1e-14)
    assert Y.dims == "SSCB"
    w = rng.standard_normal(Y.shape)

    def loss(*X):
        (out,), _ = layer._run(list(X), True, "forward")
        L = ml.sum(out * ml.dlarray(w, "SSCB"), "all")
        return L, ml.dlgradient(L, *X)

    _, grads = ml.dlfeval(loss, *[ml.dlarray(x, "SSCB") for x in xs])
    eps = 1e-6
    for k in range(3):
        num = np.zeros_like(xs[k])
        for idx in np.ndindex(xs[k].shape):
            plus_, minus_ = [x.copy() for x in xs], [x.copy() for x in xs]
            plus_[k][idx] += eps
            minus_[k][idx] -= eps
            num[idx] = ((fn(*plus_) * w).sum() - (fn(*minus_) * w).sum()) / (2 * eps)
        np.testing.assert_allclose(grads[k].data, num, rtol=1e-7, atol=1e-8)


# --------------------------------------------------------------------------- training API

def test_learnables_state_assignment_and_factors(rng):
    ml.rng(0)
    net = ml.dlnetwork(residual_graph())
    t = net.Learnables
    assert list(zip(t.Layer, t.Parameter)) == [("c1", "Weights"), ("c1", "Bias"),
                                               ("bn1", "Offset"), ("bn1", "Scale"),
                                               ("c2", "Weights"), ("c2", "Bias")]
    old = net.Layers[1]
    w = rng.standard_normal((3, 3, 3, 4)).astype(np.float32)
    net.Learnables = Table(("Layer", "Parameter", "Value"), [("c1", "Weights", ml.dlarray(w))])
    np.testing.assert_array_equal(net.Layers[1].Weights, w)
    assert net.Layers[1] is not old and old.Weights is not w        # copy on write
    s = net.State
    assert list(zip(s.Layer, s.Parameter)) == [("bn1", "TrainedMean"),
                                               ("bn1", "TrainedVariance")]
    net.State = Table(("Layer", "Parameter", "Value"),
                      [("bn1", "TrainedMean", ml.dlarray(np.arange(4.0)))])   # a C vector
    assert net.Layers[2].TrainedMean.shape == (1, 1, 4)
    np.testing.assert_array_equal(net.Layers[2].TrainedMean.ravel(), np.arange(4.0))
    with pytest.raises(ValueError, match="^dlnetwork: Learnables names parameter 'Offset' of "
                                         "layer 'c1', which has Weights, Bias$"):
        net.Learnables = Table(("Layer", "Parameter", "Value"), [("c1", "Offset", 1.0)])
    with pytest.raises(ValueError, match=r"^dlnetwork: the Value of c1/Bias must have size "
                                         r"1×1×4, got 1×5$"):
        net.Learnables = Table(("Layer", "Parameter", "Value"), [("c1", "Bias", np.ones((1, 5)))])
    # factors map to the layers' properties and return new networks
    net2 = ml.setLearnRateFactor(net, "c1", "Weights", 0.5)
    assert ml.getLearnRateFactor(net2, "c1", "Weights") == 0.5
    assert ml.getLearnRateFactor(net, "c1", "Weights") == 1
    assert net2.Layers[1].WeightLearnRateFactor == 0.5
    net3 = ml.setL2Factor(net2, "bn1", "Scale", 2)
    assert ml.getL2Factor(net3, "bn1", "Scale") == 2 and ml.getL2Factor(net2, "bn1", "Scale") == 1
    layer = ml.setLearnRateFactor(ml.convolution2dLayer(3, 2), "Bias", 0)
    assert ml.getLearnRateFactor(layer, "Bias") == 0
    with pytest.raises(ValueError, match=r"^setLearnRateFactor: parameterName must be a "
                                         r"learnable parameter of layer 'r1' \(none\), got 'W'"):
        ml.setLearnRateFactor(net, "r1", "W", 1)
    assert ml.resetState(net).State.Value[0] is not None


def test_traced_copy_and_gradient_table(rng):
    ml.rng(1)
    net = ml.dlnetwork([ml.convolution2dLayer(3, 2, Name="c1"),
                        ml.convolution2dLayer(1, 2, Name="c2")],
                       ml.dlarray(np.zeros((5, 5, 1, 1)), "SSCB"))
    X = ml.dlarray(rng.standard_normal((5, 5, 1, 2)), "SSCB")

    def model(net, X):
        t = net.Learnables
        assert all(v._node is not None for v in t.Value)          # traced
        assert t.Value[0] is net.Learnables.Value[0]              # the very same arrays
        Y = ml.forward(net, X)
        L = ml.sum(Y * Y, "all")
        return L, ml.dlgradient(L, net.Learnables)

    L, g = ml.dlfeval(model, net, X)
    assert isinstance(g, Table) and g.Layer == ["c1", "c1", "c2", "c2"]
    assert [v.shape for v in g.Value] == [v.shape for v in net.Learnables.Value]
    assert all(v._node is None for v in net.Learnables.Value)     # the network is untouched
    assert np.all(np.isfinite(g.Value[0].data)) and np.abs(g.Value[0].data).sum() > 0


# --------------------------------------------------------------------------- analysis, plot

def test_analyze_network_reports_issues(capsys):
    g = ml.layerGraph(residual_layers())                 # add/in2 unconnected
    info = ml.analyzeNetwork(g)
    out = capsys.readouterr().out
    assert info.NumErrors == 1 and info.NumWarnings == 0
    assert info.Issues[0].Layer == "add"
    assert info.Issues[0].Description.startswith("Missing input 'add/in2'. Each layer input "
                                                 "must be connected")
    assert "Error 'add': Missing input 'add/in2'" in out
    rows = list(info.LayerInfo)
    assert rows[4].Activations == "8(S) × 8(S) × 4(C) × 1(B)" and rows[5].Activations == ""
    info = ml.analyzeNetwork(residual_graph())
    assert info.NumErrors == 0 and info.TotalLearnables == (3 * 3 * 3 * 4 + 4) + 8 + (
        3 * 3 * 4 * 4 + 4)
    g = ml.connectLayers(ml.layerGraph([ml.imageInputLayer([8, 8, 3], Name="in"),
                                        ml.convolution2dLayer(3, 4, Name="c"),
                                        ml.additionLayer(2, Name="add")]), "in", "add/in2")
    info = ml.analyzeNetwork(g)
    assert info.NumErrors == 1 and "must have the same size" in info.Issues[0].Description
    capsys.readouterr()


def test_summary_lists_every_input(capsys):
    g = ml.layerGraph([ml.convolution2dLayer(1, 3, Name="c"), ml.additionLayer(2, Name="add")])
    X = ml.dlarray(np.zeros((4, 4, 2, 1)), "SSCB")
    net = ml.dlnetwork(g, X, ml.dlarray(np.zeros((4, 4, 3, 1)), "SSCB"))
    ml.summary(net)
    assert capsys.readouterr().out == (
        "   Initialized: true\n\n   Number of learnables: 9\n\n   Inputs:\n"
        "      1   'c'   (unconnected input)\n      2   'add/in2'   (unconnected input)\n\n")


def test_plot_renders_png(tmp_path):
    pytest.importorskip("matplotlib")
    g = residual_graph()
    fig = ml.plot(g)
    texts = [t for t in fig.axes[0].texts if t.get_text()]
    names = [t.get_text() for t in texts]
    assert names == [layer.Name for layer in g.Layers]
    pos = {t.get_text(): t.get_position() for t in texts}
    assert pos["in"][1] > pos["c1"][1] > pos["r1"][1] > pos["add"][1] > pos["r2"][1]
    path = tmp_path / "lgraph.png"
    fig.savefig(path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    net = ml.dlnetwork(g)
    assert len([t for t in ml.plot(net).axes[0].texts if t.get_text()]) == 7
    with pytest.raises(TypeError, match="^plot: the argument must be a layer graph"):
        ml.plot([1, 2])


# --------------------------------------------------------------------------- speed

def _big_graph(blocks):
    layers = [ml.featureInputLayer(8, Name="in") if hasattr(ml, "featureInputLayer")
              else ml.sequenceInputLayer(8, Name="in")]
    g = ml.layerGraph(layers)
    prev = "in"
    for b in range(blocks):
        g = ml.addLayers(g, [ml.fullyConnectedLayer(8, Name=f"fc{b}"),
                             ml.reluLayer(Name=f"r{b}"), ml.fullyConnectedLayer(8, Name=f"g{b}"),
                             ml.additionLayer(2, Name=f"add{b}")])
        g = ml.connectLayers(g, prev, f"fc{b}")
        g = ml.connectLayers(g, prev, f"add{b}/in2")
        prev = f"add{b}"
    return g


def test_500_layer_graph_builds_and_analyzes(capsys):
    # its speed (well under a second) is measured by bench/graph_build.py, not here
    g = _big_graph(125)                       # 501 layers, 625 connections
    net = ml.dlnetwork(g)
    info = ml.analyzeNetwork(net)
    capsys.readouterr()
    assert len(net.Layers) == 501 and info.NumErrors == 0
    assert len(g.Connections) == 625


def test_stateful_prediction_and_reset_state(rng):
    ml.rng(0)
    net = ml.dlnetwork([ml.sequenceInputLayer(3), ml.lstmLayer(4), ml.fullyConnectedLayer(2)])
    X = ml.dlarray(rng.standard_normal((3, 2, 5)), "CBT")
    Y, state = ml.predict(net, X, nargout=2)
    assert list(zip(state.Layer, state.Parameter)) == [("lstm", "HiddenState"),
                                                       ("lstm", "CellState")]
    assert state.Value[0].shape == (4, 2)                   # H×B after the last time step
    net.State = state                                       # MATLAB's stateful prediction
    Y2 = ml.predict(net, X)
    assert not np.allclose(Y2.data, Y.data)
    # the state continues the sequence: two chunks equal one call on the whole sequence
    ml.rng(0)
    fresh = ml.dlnetwork([ml.sequenceInputLayer(3), ml.lstmLayer(4), ml.fullyConnectedLayer(2)])
    XX = ml.dlarray(np.concatenate([X.data, X.data], axis=2), "CBT")
    np.testing.assert_allclose(ml.predict(fresh, XX).data[..., 5:], Y2.data, rtol=1e-10)
    reset = ml.resetState(net)
    assert [v.shape for v in reset.State.Value] == [(4, 1), (4, 1)]
    assert not any(np.any(v.data) for v in reset.State.Value)
    np.testing.assert_array_equal(ml.predict(reset, X).data, Y.data)
    assert np.any(net.State.Value[0].data)                  # the original is unchanged


def test_add_input_layer(rng):
    net = ml.dlnetwork([ml.convolution2dLayer(3, 2, Padding="same", Name="c"), ml.reluLayer()],
                       Initialize=False)
    assert net.InputNames == ["c"]
    net2 = ml.addInputLayer(net, ml.imageInputLayer([5, 5, 3], Normalization="none"))
    assert net2.Initialized and net2.InputNames == ["imageinput"]
    assert [layer.Name for layer in net2.Layers] == ["imageinput", "c", "relu"]
    assert net2.Layers[1].NumChannels == 3 and not net.Initialized
    X = ml.dlarray(rng.standard_normal((5, 5, 3, 2)), "SSCB")
    np.testing.assert_array_equal(ml.predict(net2, X).data,
                                  np.maximum(ml.predict(net2.Layers[1], X).data, 0))
    g = ml.dlnetwork(ml.layerGraph([ml.reluLayer(Name="r"), ml.additionLayer(2, Name="add")]),
                     Initialize=False)
    g2 = ml.addInputLayer(g, ml.featureInputLayer(4, Name="f") if hasattr(ml, "featureInputLayer")
                          else ml.sequenceInputLayer(4, Name="f"), "add/in2")
    assert g2.InputNames == ["r", "f"] and not g2.Initialized
    with pytest.raises(ValueError, match=r"^addInputLayer: inputName must be an unconnected "
                                         r"input of the network \(r, add/in2\), got 'add/in1'$"):
        ml.addInputLayer(g, ml.sequenceInputLayer(4), "add/in1")


def test_multi_output_ports_max_unpooling(rng):
    g = ml.layerGraph([ml.imageInputLayer([4, 4, 2], Normalization="none", Name="in"),
                       ml.maxPooling2dLayer(2, Stride=2, HasUnpoolingOutputs=True, Name="pool"),
                       ml.reluLayer(Name="r"), ml.maxUnpooling2dLayer(Name="unpool")])
    assert list(zip(g.Connections.Source, g.Connections.Destination)) == [
        ("in", "pool"), ("pool/out", "r"), ("r", "unpool/in")]
    with pytest.raises(ValueError, match=r"^connectLayers: layer 'pool' has several outputs "
                                         r"\(out, indices, size\); name one"):
        ml.connectLayers(g, "pool", "unpool/indices")
    g = ml.connectLayers(g, "pool/indices", "unpool/indices")
    g = ml.connectLayers(g, "pool/size", "unpool/size")
    net = ml.dlnetwork(g)
    assert net.OutputNames == ["unpool"]
    x = rng.random((4, 4, 2, 3)) + 0.1                     # positive: the ReLU keeps it
    Y = ml.predict(net, ml.dlarray(x, "SSCB"))
    # numpy: each 2×2 window keeps its maximum in place, zeros elsewhere
    ref = np.zeros_like(x)
    for i in range(0, 4, 2):
        for j in range(0, 4, 2):
            win = x[i:i + 2, j:j + 2]
            ref[i:i + 2, j:j + 2] = np.where(win == win.max(axis=(0, 1)), win, 0)
    np.testing.assert_array_equal(Y.data, ref)
    out, idx = ml.predict(net, ml.dlarray(x, "SSCB"), Outputs=["pool/out", "pool/indices"])
    assert out.shape == (2, 2, 2, 3) and idx.shape == out.shape


# --------------------------------------------------------------------------- random DAGs

from hypothesis import given, settings, strategies as st  # noqa: E402


@st.composite
def random_dags(draw):
    """Nodes in creation order: ('relu', src) | ('fc', src, seed) | ('add', src1, src2),
    node 0 the input; plus a random insertion order of the nodes into the graph."""
    n = draw(st.integers(2, 9))
    nodes = [("input",)]
    for k in range(1, n):
        kind = draw(st.sampled_from(["relu", "fc", "add"]))
        src = draw(st.integers(0, k - 1))
        if kind == "add":
            nodes.append(("add", src, draw(st.integers(0, k - 1))))
        elif kind == "fc":
            nodes.append(("fc", src, draw(st.integers(0, 1000))))
        else:
            nodes.append(("relu", src))
    order = draw(st.permutations(list(range(n))))
    return nodes, order


@settings(max_examples=40, deadline=None)
@given(random_dags())
def test_random_dags_run_in_stable_topological_order(case):
    nodes, order = case
    c = 3
    weights = {}
    layers = {}
    for k, node in enumerate(nodes):
        name = f"n{k}"
        if node[0] == "input":
            layers[k] = ml.sequenceInputLayer(c, Normalization="none", Name=name)
        elif node[0] == "relu":
            layers[k] = ml.reluLayer(Name=name)
        elif node[0] == "fc":
            r = np.random.default_rng(node[2])
            weights[k] = (r.standard_normal((c, c)), r.standard_normal((c, 1)))
            layers[k] = ml.fullyConnectedLayer(c, Weights=weights[k][0], Bias=weights[k][1],
                                               Name=name)
        else:
            layers[k] = ml.additionLayer(2, Name=name)
    g = ml.layerGraph()
    for k in order:                                     # random insertion order
        g = ml.addLayers(g, layers[k])
    for k, node in enumerate(nodes):
        if node[0] in ("relu", "fc"):
            g = ml.connectLayers(g, f"n{node[1]}", f"n{k}")
        elif node[0] == "add":
            g = ml.connectLayers(g, f"n{node[1]}", f"n{k}/in1")
            g = ml.connectLayers(g, f"n{node[2]}", f"n{k}/in2")
    net = ml.dlnetwork(g)
    names = [layer.Name for layer in net.Layers]
    # stable topological order: each layer is the earliest-inserted one whose sources
    # are all placed
    preds = {f"n{k}": {f"n{s}" for s in node[1:2 + (node[0] == "add")]} if k else set()
             for k, node in enumerate(nodes)}
    inserted = [f"n{k}" for k in order]
    placed = []
    for name in names:
        ready = [m for m in inserted if m not in placed and preds[m] <= set(placed)]
        assert name == ready[0]
        placed.append(name)
    # outputs against numpy in creation order
    x = np.random.default_rng(len(nodes)).standard_normal((c, 2, 4))
    vals = {0: x}
    for k, node in enumerate(nodes[1:], start=1):
        a = vals[node[1]]
        if node[0] == "relu":
            vals[k] = np.maximum(a, 0)
        elif node[0] == "fc":
            w, b = weights[k]
            vals[k] = np.einsum("ij,jbt->ibt", w, a) + b[:, :, None]
        else:
            vals[k] = a + vals[node[2]]
    used = {s for node in nodes[1:] for s in node[1:2 + (node[0] == "add")]}
    outs = [k for k in range(len(nodes)) if k not in used]
    assert sorted(net.OutputNames, key=names.index) == net.OutputNames
    assert sorted(net.OutputNames) == sorted(f"n{k}" for k in outs)
    Y = ml.predict(net, ml.dlarray(x, "CBT"))
    Y = Y if isinstance(Y, tuple) else (Y,)
    for name, y in zip(net.OutputNames, Y):
        np.testing.assert_allclose(y.data, vals[int(name[1:])], rtol=1e-12, atol=1e-12)


def test_table_rows_masks_and_column_assignment():
    ml.rng(0)
    net = ml.dlnetwork(residual_graph())
    t = net.Learnables
    conv = t[np.array(t.Layer) == "c1"]                     # MATLAB t(t.Layer == "c1", :)
    assert isinstance(conv, Table) and conv.Parameter == ["Weights", "Bias"]
    assert t[1:3].Layer == ["c1", "bn1"] and t[[4, 0]].Parameter == ["Weights", "Weights"]
    conv.Value = [v * 0 for v in conv.Value]                # t.Value = ...
    net.Learnables = conv                                    # assign a subset back
    assert not net.Layers[1].Weights.any() and net.Layers[4].Weights.any()
    with pytest.raises(ValueError, match="^Table: Value must have 2 values"):
        conv.Value = [1]
    with pytest.raises(IndexError, match="^Table: a logical row index must have 6 elements"):
        t[np.array([True, False])]


def test_analyze_graph_with_output_layer_reports_unconnected_outputs(capsys):
    g = ml.addLayers(residual_graph(), [ml.fullyConnectedLayer(2, Name="fc"),
                                        ml.softmaxLayer(Name="sm"),
                                        ml.classificationLayer(Name="out")])
    info = ml.analyzeNetwork(g)                  # r2 is left unconnected, fc has no input
    descriptions = [(r.Layer, r.Description.split(".")[0]) for r in info.Issues]
    assert ("r2", "Unconnected output 'r2'") in descriptions
    assert ("fc", "Missing input 'fc'") in descriptions
    assert info.LayerInfo[-1].Name == "out" and info.LayerInfo[-1].Type == \
        "Classification Output"
    g = ml.connectLayers(g, "r2", "fc")
    info = ml.analyzeNetwork(g)
    assert info.NumErrors == 0 and len(info.LayerInfo) == 10
    capsys.readouterr()


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["add", "connect", "disconnect", "remove"]),
                          st.integers(0, 50), st.integers(0, 50)), max_size=25))
def test_random_edit_sequences_keep_the_graph_consistent(ops):
    """Graph functions never change their argument; connections always join existing
    ports, each input at most once, and the graph stays acyclic."""
    g = ml.layerGraph([ml.reluLayer(Name="r0")])
    k = 1
    for op, a, b in ops:
        before = (list(g.Connections.Source), list(g.Connections.Destination),
                  [layer.Name for layer in g.Layers])
        names = [layer.Name for layer in g.Layers]
        try:
            if op == "add":
                new = ml.addLayers(g, ml.additionLayer(2, Name=f"a{k}") if a % 2
                                   else ml.reluLayer(Name=f"r{k}"))
                k += 1
            elif op == "connect" and names:
                dst = names[b % len(names)]
                port = "/in%d" % (1 + a % 2) if dst.startswith("a") else ""
                new = ml.connectLayers(g, names[a % len(names)], dst + port)
            elif op == "disconnect" and len(g.Connections):
                row = g.Connections[a % len(g.Connections)]
                new = ml.disconnectLayers(g, row.Source, row.Destination)
            elif op == "remove" and len(names) > 1:
                new = ml.removeLayers(g, names[a % len(names)])
            else:
                continue
        except ValueError:
            new = g                                    # refused edits change nothing
        assert (list(g.Connections.Source), list(g.Connections.Destination),
                [layer.Name for layer in g.Layers]) == before
        g = new
        layer_names = {layer.Name for layer in g.Layers}
        dests = [d for d in g.Connections.Destination]
        assert len(dests) == len(set(dests))
        for s, d in zip(g.Connections.Source, g.Connections.Destination):
            assert s in layer_names and d.split("/")[0] in layer_names
        g._topological_order("test")                   # raises on a cycle


def test_initializing_a_copy_leaves_the_original_uninitialized():
    net = ml.dlnetwork([ml.imageInputLayer([4, 4, 1]), ml.convolution2dLayer(3, 2)],
                       Initialize=False)
    net2 = ml.addLayers(net, ml.reluLayer())
    net2 = ml.connectLayers(net2, "conv", "relu")
    assert net2.initialize() is net2 and net2.Initialized
    assert net.Layers[1].Weights.size == 0 and not net.Initialized
    assert net2.Layers[1].Weights.shape == (3, 3, 1, 2)


def test_factors_of_layers_without_factor_properties():
    net = ml.dlnetwork([ml.featureInputLayer(3), ml.fullyConnectedLayer(2),
                        ml.preluLayer(Name="p")])
    assert ml.getLearnRateFactor(net, "p", "Alpha") == 1
    net2 = ml.setLearnRateFactor(net, "p", "Alpha", 0.25)
    net3 = ml.setL2Factor(net2, "p", "Alpha", 3)
    assert ml.getLearnRateFactor(net3, "p", "Alpha") == 0.25
    assert ml.getL2Factor(net3, "p", "Alpha") == 3 and ml.getL2Factor(net2, "p", "Alpha") == 1
    assert ml.getLearnRateFactor(net, "p", "Alpha") == 1
    with pytest.raises(ValueError, match="^setLearnRateFactor: factor must be a nonnegative"):
        ml.setLearnRateFactor(net, "p", "Alpha", -1)


def test_forward_returns_the_updated_state(rng):
    """forward's state table: batch-norm moving statistics after one batch (§16.6: λ·μ_B +
    (1−λ)·old, biased batch variance), every state row, assignable with net.State."""
    ml.rng(0)
    net = ml.dlnetwork(residual_graph())
    X = ml.dlarray(rng.standard_normal((8, 8, 3, 4)), "SSCB")
    Y, state = ml.forward(net, X, nargout=2)
    assert list(zip(state.Layer, state.Parameter)) == [("bn1", "TrainedMean"),
                                                       ("bn1", "TrainedVariance")]
    h = ml.predict(net.Layers[1], X).data                  # the conv output before bn1
    mu = h.mean(axis=(0, 1, 3))
    var = h.var(axis=(0, 1, 3))
    np.testing.assert_allclose(state.Value[0].data.ravel(), 0.1 * mu, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(state.Value[1].data.ravel(), 0.1 * var + 0.9, rtol=1e-5)
    assert state.Value[0].shape == (1, 1, 4)               # the parameter's own shape
    # training mode normalizes with the batch statistics, predict with the trained ones
    assert not np.allclose(Y.data, ml.predict(net, X).data)
    net.State = state
    np.testing.assert_allclose(net.Layers[2].TrainedMean.ravel(), 0.1 * mu, rtol=1e-5,
                               atol=1e-7)
    Y2, Yr1, state2 = ml.forward(net, X, Outputs=["r2", "r1"], nargout=3)
    np.testing.assert_array_equal(Y2.data, Y.data)
    assert Yr1.shape == (8, 8, 4, 4) and len(state2) == 2


def test_nargout_given_takes_matlabs_count_of_outputs(rng):
    # MATLAB: Z = predict(netE, X) on a three-output encoder is its first output;
    # [Y1, Y2] = forward(net, X) its first two; one more than the outputs adds the state
    three = ml.functionLayer(lambda X: (X[:2, :], X[2:, :], X[2:, :] * 2), NumOutputs=3,
                             Name="s")
    net = ml.dlnetwork([ml.featureInputLayer(5, Name="in"), three])
    X = ml.dlarray(rng.standard_normal((5, 3)), "CB")
    every = ml.predict(net, X)                       # nargout not given: the API's tuple
    assert isinstance(every, tuple) and len(every) == 3
    first = ml.predict(net, X, nargout=1)
    np.testing.assert_array_equal(first.data, X.data[:2])
    a, b = ml.forward(net, X, nargout=2)
    np.testing.assert_array_equal(b.data, X.data[2:])
    *ys, state = ml.forward(net, X, nargout=4)
    assert len(ys) == 3 and isinstance(state, Table)
    for bad in (0, 5, 1.5, True):
        with pytest.raises(ValueError, match=r"predict: nargout must be an integer from 1 to "
                                             r"4 \(the 3 output\(s\), then the state\)"):
            ml.predict(net, X, nargout=bad)
    # the tuple passed on whole is named, not printed
    with pytest.raises(ValueError, match="got a tuple of 3 values \\(a 2\\(C\\) × 3\\(B\\) dlarray"):
        ml.predict(ml.dlnetwork([ml.featureInputLayer(2), ml.reluLayer()]), every)


def test_outputs_run_only_the_layers_they_need(rng):
    g = ml.layerGraph([ml.featureInputLayer(3, Name="in"), ml.reluLayer(Name="a")])
    g = ml.addLayers(g, [ml.fullyConnectedLayer(2, Name="b1"), ml.reluLayer(Name="b2")])
    g = ml.connectLayers(g, "in", "b1")
    net = ml.dlnetwork(g)
    assert net.OutputNames == ["a", "b2"]
    X = ml.dlarray(rng.standard_normal((3, 5)), "CB")

    def boom(X, fname):
        raise AssertionError("layer b2 should not run")

    object.__setattr__(net.Layers[3], "_forward", boom)
    Ya = ml.predict(net, X, Outputs="a")
    np.testing.assert_array_equal(Ya.data, np.maximum(X.data, 0))
    assert ml.predict(net, X, Outputs=["b1"])[0].shape == (2, 5)
    with pytest.raises(AssertionError, match="should not run"):
        ml.predict(net, X)
