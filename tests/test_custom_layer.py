"""User-defined layers (MATLAB's ``classdef < nnet.layer.Layer``, mlayers/layers/custom.py):
declaration, display, initialization from layouts, networks, training through dlfeval
and the solvers, state, several inputs and outputs, and the errors.  Every number is
checked against NumPy written from the layer's formula, or central differences."""
import numpy as np
import pytest

import mlayers as ml

from gradcheck import check


class projectAndReshapeLayer(ml.nnet.layer.Layer, ml.nnet.layer.Formattable):
    """MathWorks' GAN example's custom layer, ported."""
    Learnable = ("Weights", "Bias")

    def __init__(self, outputSize, Name=""):
        self.Name = Name
        self.Type = "Project and Reshape"
        self.Description = "Project and reshape to size " + "×".join(map(str, outputSize))
        self.OutputSize = list(outputSize)

    def initialize(self, layout):
        n = int(np.prod(self.OutputSize))
        if self.Weights is None:
            c = layout.Size[ml.finddim(layout, "C")[0] - 1]
            self.Weights = np.asfortranarray(
                np.random.default_rng(0).standard_normal((n, c)) * 0.1)
        if self.Bias is None:
            self.Bias = np.zeros((n, 1))
        return self

    def predict(self, X):
        X = ml.fullyconnect(X, self.Weights, self.Bias)
        return ml.dlarray(ml.reshape(X, *self.OutputSize, []), "SSCB")


class scaleShift(ml.nnet.layer.Layer):
    """Not Formattable, two inputs: Z = A .* Scale + B (and its own forward)."""
    Learnable = ("Scale",)

    def __init__(self, scale):
        self.NumInputs = 2
        self.Scale = scale

    def predict(self, A, B):
        assert A.dims == "" and B.dims == ""          # unformatted, as in MATLAB
        return A * self.Scale + B

    def forward(self, A, B):
        return A * self.Scale * 2 + B


class counter(ml.nnet.layer.Layer):
    """A state parameter counted up in training: [Z, state] = forward(layer, X)."""
    State = ("Count",)

    def __init__(self):
        self.Count = np.zeros((1, 1))

    def predict(self, X):
        return X, self.Count

    def forward(self, X):
        return X * 1, self.Count + 1


def test_declaration_and_matlab_display():
    layer = projectAndReshapeLayer([4, 4, 8], Name="proj")
    assert layer.Weights is None and layer.NumInputs == 1 and layer.OutputNames == ["out"]
    assert repr(layer) == (
        "  projectAndReshapeLayer with properties:\n\n"
        "          Name: 'proj'\n"
        "    OutputSize: [4 4 8]\n\n"
        "   Learnable Parameters\n"
        "       Weights: []\n"
        "          Bias: []\n\n"
        "   State Parameters\n"
        "    No properties.\n\n"
        "  Show all properties\n")
    assert layer._layer_array_row() == ("proj", "Project and Reshape",
                                        "Project and reshape to size 4×4×8")
    layer.Weights = ml.dlarray(np.zeros((3, 2), np.float32))    # MATLAB names the class
    layer.Bias = np.zeros((3, 1), np.float32)
    assert "       Weights: [3×2 dlarray]\n          Bias: [3×1 single]\n" in repr(layer)
    assert ml.properties(layer)[:3] == ["OutputSize", "Name", "Description"]
    assert "Weights" in ml.properties(layer)
    # MATLAB's defaults: Type and Description show the class name
    plain = counter()
    assert plain.Type == plain.Description == "counter"
    plain.NumOutputs = 2
    assert plain.OutputNames == ["out1", "out2"]
    plain.InputNames = ["a", "b", "c"]
    assert plain.NumInputs == 3
    with pytest.raises(ValueError, match="counter: NumInputs must be a positive integer"):
        plain.NumInputs = 0
    with pytest.raises(TypeError, match="counter: Count must be a numeric array"):
        plain.Count = "x"
    with pytest.raises(TypeError, match="bad: Learnable and State must name new properties, "
                                        "got 'Name', a layer property or method"):
        type("bad", (ml.nnet.layer.Layer,), {"Learnable": ("Name",)})


def test_network_initializes_runs_and_differentiates_a_custom_layer(rng):
    layer = projectAndReshapeLayer([3, 2, 4], Name="proj")
    net = ml.dlnetwork([ml.featureInputLayer(5, Name="in"), layer,
                        ml.reluLayer(Name="relu")])
    assert layer.Weights is None                   # the network initialized its own copy
    t = net.Learnables
    assert list(t.Parameter) == ["Weights", "Bias"] and t.Value[0].shape == (24, 5)
    W, b = np.asarray(t.Value[0].data), np.asarray(t.Value[1].data)
    x = rng.standard_normal((5, 7))
    X = ml.dlarray(x, "CB")
    Y = ml.predict(net, X)
    ref = np.maximum((W @ x + b).reshape(3, 2, 4, 7, order="F"), 0)
    assert Y.dims == "SSCB"
    np.testing.assert_allclose(Y.data, ref, rtol=1e-12)
    ct = rng.standard_normal((3, 2, 4, 7))

    def loss(net, X):
        L = ml.sum(ml.forward(net, X) * ct, "all")
        return ml.dlgradient(L, net.Learnables)
    g = ml.dlfeval(loss, net, X)
    mask = (W @ x + b).reshape(3, 2, 4, 7, order="F") > 0
    gz = (ct * mask).reshape(24, 7, order="F")
    np.testing.assert_allclose(g.Value[0].data, gz @ x.T, rtol=1e-12)
    np.testing.assert_allclose(g.Value[1].data, gz.sum(1, keepdims=True), rtol=1e-12)
    # the solvers update the custom layer's learnables in the network
    net2, vel = ml.sgdmupdate(net, g, [], 0.1, 0.9)
    np.testing.assert_allclose(net2.Learnables.Value[0].data, W - 0.1 * (gz @ x.T),
                               rtol=1e-12)
    assert ml.predict(net2, X).shape == (3, 2, 4, 7)
    # ... and the factors, kept with the layer as for MATLAB's custom-layer family
    net3 = ml.setLearnRateFactor(net, "proj", "Weights", 0)
    assert ml.getLearnRateFactor(net3, "proj", "Weights") == 0
    net4, _ = ml.sgdmupdate(net3, g, [], 0.1, 0.9)
    np.testing.assert_array_equal(net4.Learnables.Value[0].data, W)


def test_unformatted_two_inputs_forward_and_the_gradient(rng):
    g = ml.layerGraph([ml.featureInputLayer(3, Name="a"), ml.reluLayer(Name="ra")])
    g = ml.addLayers(g, [ml.featureInputLayer(3, Name="b")])
    g = ml.addLayers(g, [scaleShift(np.full((3, 1), 0.5))])
    g = ml.connectLayers(g, "ra", "scaleshift/in1")
    g = ml.connectLayers(g, "b", "scaleshift/in2")
    net = ml.dlnetwork(g)
    a, b = rng.standard_normal((3, 4)), rng.standard_normal((3, 4))
    A, B = ml.dlarray(a, "CB"), ml.dlarray(b, "CB")
    Y = ml.predict(net, A, B)
    assert Y.dims == "CB"                          # the first input's format
    np.testing.assert_allclose(Y.data, np.maximum(a, 0) * 0.5 + b, rtol=1e-12)
    np.testing.assert_allclose(ml.forward(net, A, B).data, np.maximum(a, 0) + b, rtol=1e-12)
    # dL/dA, dL/dB and dL/dScale through the layer in a traced training step
    w = rng.standard_normal((3, 4))
    net = ml.dlnetwork(g)

    def loss(net, A, B):
        L = ml.sum(ml.forward(net, A, B) * w, "all")
        return ml.dlgradient(L, A, B, net.Learnables)
    gA, gB, gL = ml.dlfeval(loss, net, A, B)
    np.testing.assert_allclose(gA.data, w * 1.0 * (a > 0), rtol=1e-12)   # 2 * 0.5
    np.testing.assert_allclose(gB.data, w, rtol=1e-12)
    np.testing.assert_allclose(gL.Value[0].data,
                               (2 * np.maximum(a, 0) * w).sum(1, keepdims=True), rtol=1e-12)
    layer = scaleShift(np.full((3, 1), 0.5))
    assert max(check(lambda a, b: ml.sum(layer.predict(a, b) * w, "all"), [a, b],
                     ["", ""])) < 1e-7


def test_state_from_forward_and_several_outputs(rng):
    net = ml.dlnetwork([ml.featureInputLayer(2), counter()])
    X = ml.dlarray(rng.standard_normal((2, 3)), "CB")
    Y, state = ml.forward(net, X, nargout=2)
    np.testing.assert_array_equal(Y.data, X.data)
    assert list(state.Parameter) == ["Count"] and state.Value[0].data[0, 0] == 1
    net.State = state
    _, state = ml.forward(net, X, nargout=2)
    assert state.Value[0].data[0, 0] == 2

    class split(ml.nnet.layer.Layer, ml.nnet.layer.Formattable):
        def __init__(self):
            self.OutputNames = ["top", "bottom"]

        def predict(self, X):
            return X[:1, :], X[1:, :] * 2
    net = ml.dlnetwork([ml.featureInputLayer(2, Name="in"), split()])
    assert net.OutputNames == ["split/top", "split/bottom"]
    top, bottom = ml.predict(net, X)
    np.testing.assert_array_equal(bottom.data, X.data[1:] * 2)
    np.testing.assert_array_equal(ml.predict(net, X, Outputs="split/top").data, X.data[:1])


def test_trainnet_trains_a_custom_layer(rng):
    class affine(ml.nnet.layer.Layer, ml.nnet.layer.Formattable):
        Learnable = ("Weights", "Bias")

        def initialize(self, layout):
            c = layout.Size[ml.finddim(layout, "C")[0] - 1]
            self.Weights = np.zeros((1, c))
            self.Bias = np.zeros((1, 1))
            return self

        def predict(self, X):
            return ml.fullyconnect(X, self.Weights, self.Bias)
    x = rng.standard_normal((64, 3))
    y = x @ np.array([[1.0], [-2.0], [0.5]]) + 0.25
    opts = ml.trainingOptions("adam", MaxEpochs=200, InitialLearnRate=0.05,
                              MiniBatchSize=64, Verbose=False)
    net = ml.trainnet(x, y, [ml.featureInputLayer(3), affine()], "mse", opts)
    W = np.asarray(net.Learnables.Value[0].data)
    np.testing.assert_allclose(W, [[1.0, -2.0, 0.5]], atol=0.05)


def test_errors_name_the_layer_and_what_was_expected(rng):
    class noPredict(ml.nnet.layer.Layer):
        pass

    class wrongCount(ml.nnet.layer.Layer):
        State = ("S",)
        S = 0.0                                     # (a class-body default)

        def predict(self, X):
            return X

    class notFormatted(ml.nnet.layer.Layer, ml.nnet.layer.Formattable):
        def predict(self, X):
            return ml.stripdims(X)
    X = ml.dlarray(rng.standard_normal((2, 3)), "CB")
    with pytest.raises(NotImplementedError, match="noPredict: a custom layer must define "
                                                  "predict"):
        ml.predict(noPredict(), X)
    with pytest.raises(ValueError, match="predict of wrongCount must return 1 output\\(s\\) "
                                         "and the 1 state value\\(s\\) \\(S\\), a tuple, "
                                         "got 1"):
        ml.predict(wrongCount(), X)
    with pytest.raises(ValueError, match="predict of notFormatted \\(Formattable\\) must "
                                         "return formatted dlarrays"):
        ml.predict(notFormatted(), X)
    with pytest.raises(ValueError, match="has 2 input\\(s\\), got 1"):
        scaleShift(1.0)._run([X], False, "predict")


def test_declarations_inherit_default_and_refuse_what_matlab_would_not_compile():
    class base(ml.nnet.layer.Layer):
        Learnable = "A"                            # one name (a bare string)
        A = 0.25                                   # properties (Learnable) A = 0.25

        def predict(self, X):
            return X * self.A

    class derived(base):
        Learnable = ("B",)
        B = 2.0

        def predict(self, X):
            return X * self.A * self.B
    d = derived()
    assert derived._learnables == ("A", "B") and float(d.A) == 0.25 and float(d.B) == 2.0
    net = ml.dlnetwork([ml.featureInputLayer(1), d])
    assert list(net.Learnables.Parameter) == ["A", "B"]
    for bad, msg in [({"Learnable": ("W", "W")}, "Learnable names 'W' twice"),
                     ({"Learnable": ("bad name",)}, "names must be public identifiers"),
                     ({"Learnable": ("_w",)}, "names must be public identifiers"),
                     ({"Learnable": ("forward",), "forward": lambda s, X: X},
                      "got 'forward', a layer property or method"),
                     ({"backward": lambda *a: a}, "custom backward functions are not "
                                                  "supported")]:
        with pytest.raises(TypeError, match=msg):
            type("bad", (ml.nnet.layer.Layer,), bad)


def test_layers_are_values_and_methods_run_on_a_copy(rng):
    # MATLAB layers are values: the network keeps its own properties, and an assignment
    # inside predict stays in predict
    P = projectAndReshapeLayer([2, 2, 3], Name="p")
    net = ml.dlnetwork([ml.featureInputLayer(5), P])
    P.OutputSize[0] = 4                            # the user's object only
    X = ml.dlarray(rng.standard_normal((5, 2)), "CB")
    assert ml.predict(net, X).shape == (2, 2, 3, 2)
    got = ml.getLayer(net, "p")
    got.OutputSize[1] = 1
    assert ml.predict(net, X).shape == (2, 2, 3, 2)

    class clamps(ml.nnet.layer.Layer):
        Learnable = ("Alpha",)
        Alpha = -1.0
        seen = None

        def predict(self, X):
            type(self).seen = type(self.Alpha)     # a dlarray, as MATLAB's networks hold
            self.Alpha = ml.max(self.Alpha, 0.1)   # MATLAB: changes the copy only
            return X * self.Alpha
    net = ml.dlnetwork([ml.featureInputLayer(1), clamps()])
    ml.predict(net, ml.dlarray(np.ones((1, 2)), "CB"))
    assert float(net.Learnables.Value[0]) == -1.0 and clamps.seen is ml.dlarray


def test_state_reset_initialize_layouts_and_the_batch_check(rng):
    class acc(ml.nnet.layer.Layer):
        State = ("H",)

        def initialize(self, layout):
            type(self).layout = (layout.Size, layout.Format)
            self.H = np.zeros((layout.Size[0], 1))
            return self

        def predict(self, X):
            return X, self.H + 1

        def resetState(self):
            self.H = self.H * 0 - 1
            return self
    net = ml.dlnetwork([ml.sequenceInputLayer(3), acc()])
    size, fmt = acc.layout
    assert fmt == "CBT" and size[0] == 3 and np.isnan(size[1]) and np.isnan(size[2])
    X = ml.dlarray(rng.standard_normal((3, 2, 4)), "CBT")
    _, state = ml.predict(net, X, nargout=2)
    net.State = state
    assert float(net.State.Value[0].data[0, 0]) == 1
    assert float(ml.resetState(net).State.Value[0].data[0, 0]) == -1

    class folds(ml.nnet.layer.Layer):             # not Formattable: must keep the layout
        def predict(self, X):
            return ml.reshape(X, int(np.prod(X.shape[:3])), [])
    net = ml.dlnetwork([ml.imageInputLayer([2, 2, 3], Normalization="none"), folds()])
    with pytest.raises(ValueError, match="does not keep the input's 5 observations in "
                                         "dimension 4 of its format 'SSCB'"):
        ml.predict(net, ml.dlarray(rng.standard_normal((2, 2, 3, 5)), "SSCB"))

    class empty(ml.nnet.layer.Layer):
        Learnable = ("W",)

        def predict(self, X):
            return X * self.W
    with pytest.raises(ValueError, match="the learnable parameter W of empty 'empty' is "
                                         "empty: set it, or fill it in the layer's initialize"):
        ml.dlnetwork([ml.featureInputLayer(2), empty()])

    class typo(ml.nnet.layer.Layer):
        def predict(self, X):
            return X * self.Weigths
    with pytest.raises(ValueError, match="predict of typo 'typo' raised AttributeError"):
        ml.dlnetwork([ml.featureInputLayer(2), typo()])


def test_layers_and_networks_pickle_with_a_module_level_custom_layer(rng):
    import pickle
    net = ml.dlnetwork([ml.featureInputLayer(5), projectAndReshapeLayer([2, 2, 3], "p")])
    X = ml.dlarray(rng.standard_normal((5, 2)), "CB")
    Y = ml.predict(net, X)
    np.testing.assert_array_equal(ml.predict(pickle.loads(pickle.dumps(net)), X).data, Y.data)


def test_network_data_layout_as_matlab_has_it(rng):
    layout = ml.networkDataLayout([8, 8, 2, np.nan], "SSCB")
    assert repr(layout) == ("  networkDataLayout with properties:\n\n"
                            "      Size: [8 8 2 NaN]\n    Format: 'SSCB'\n")
    assert ml.finddim(layout, "C") == [3]
    for bad in ([3], [3, -1], [3, 2.5], ["a", 2]):
        with pytest.raises(ValueError, match="networkDataLayout: sz must be a row vector of "
                                             "two or more nonnegative integers or NaN"):
            ml.networkDataLayout(bad)
    with pytest.raises(ValueError, match="fmt must label every dimension of sz \\(4\\)"):
        ml.networkDataLayout([8, 8, 2, 1], "SSC")
    with pytest.raises(ValueError, match="nonnegative integers or NaN values, got \\[inf, 3\\]"):
        ml.networkDataLayout([np.inf, 3], "CB")
    # labels in any order, as a dlarray's ("BC" is CB)
    bc = ml.dlnetwork([ml.fullyConnectedLayer(2)], ml.networkDataLayout([np.nan, 3], "BC"))
    assert bc.Learnables.Value[0].shape == (2, 3)
    # MATLAB's initialize(net, layout) and dlnetwork(layers, layout): sizes without data
    layers = [ml.convolution2dLayer(3, 4, Name="c"), ml.fullyConnectedLayer(6, Name="fc"),
              projectAndReshapeLayer([2, 2, 1], "p")]
    net = ml.dlnetwork(layers, layout)
    assert net.Learnables.Value[0].shape == (3, 3, 2, 4)
    assert net.Learnables.Value[4].shape == (4, 6)            # its layout: 6 channels
    later = ml.initialize(ml.dlnetwork(layers, Initialize=False), layout)
    x = ml.dlarray(rng.standard_normal((8, 8, 2, 3)), "SSCB")
    assert ml.predict(later, x).shape == (2, 2, 1, 3)


class sseClassificationLayer(ml.nnet.layer.ClassificationLayer):
    """MathWorks' 'Define Custom Classification Output Layer' example, ported."""

    def __init__(self, name):
        self.Name = name
        self.Description = "Sum of squares error"

    def forwardLoss(self, Y, T):
        sumSquares = ml.sum((Y - T) ** 2)          # Y, T: 1 x 1 x K x N for images
        N = ml.size(Y, 4)
        return ml.sum(sumSquares) / N


class maeRegressionLayer(ml.nnet.layer.RegressionLayer):
    """MathWorks' 'Define Custom Regression Output Layer' example, ported."""

    def __init__(self, name):
        self.Name = name
        self.Description = "Mean absolute error"

    def forwardLoss(self, Y, T):
        R = ml.size(Y, 3)
        meanAbsoluteError = ml.sum(ml.abs(Y - T), 3) / R
        N = ml.size(Y, 4)
        return ml.sum(meanAbsoluteError) / N


def _images(rng, n=24):
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, n)]
    X = rng.random((5, 5, 1, n)).astype(np.float32)
    X[:, :, 0, labels == "a"] += 1.0
    X[:2, :, 0, labels == "b"] -= 1.0
    return X, labels


def test_custom_output_layers_train_with_matlabs_forward_loss(rng):
    X, labels = _images(rng)
    body = [ml.imageInputLayer([5, 5, 1], Normalization="none"), ml.fullyConnectedLayer(3),
            ml.softmaxLayer()]
    opts = ml.trainingOptions("sgdm", MaxEpochs=150, MiniBatchSize=24, Shuffle="never",
                              InitialLearnRate=0.1, Verbose=False)
    ml.rng(0)
    net, info = ml.trainNetwork(X, labels, body + [sseClassificationLayer("sse")], opts,
                                nargout=2)
    # the first iteration's loss against the SSE of the initial network's scores
    ml.rng(0)
    net0 = ml.dlnetwork(body)
    P = np.asarray(ml.predict(net0, ml.dlarray(X, "SSCB")).data, np.float64)   # K x N
    T = (labels[None, :] == np.array(["a", "b", "c"])[:, None]).astype(np.float64)
    np.testing.assert_allclose(info["TrainingLoss"][0], ((P - T) ** 2).sum() / 24, rtol=1e-5)
    assert info["TrainingLoss"][-1] < 0.5 * info["TrainingLoss"][0]
    assert net.Layers[-1].Classes == ["a", "b", "c"]
    assert np.mean(np.asarray(ml.classify(net, X)) == labels) > 0.9
    # regression: MAE over the responses, 1 x 1 x R x N in forwardLoss
    y = np.stack([X.mean(axis=(0, 1, 2)), X[0, 0, 0]], axis=1)              # N x 2
    reg = [ml.imageInputLayer([5, 5, 1], Normalization="none"), ml.fullyConnectedLayer(2)]
    opts = ml.trainingOptions("adam", MaxEpochs=1, MiniBatchSize=24, Shuffle="never",
                              Verbose=False)
    ml.rng(1)
    _, info = ml.trainNetwork(X, y, reg + [maeRegressionLayer("mae")], opts, nargout=2)
    ml.rng(1)
    P = np.asarray(ml.predict(ml.dlnetwork(reg), ml.dlarray(X, "SSCB")).data, np.float64)
    np.testing.assert_allclose(info["TrainingLoss"][0], np.abs(P - y.T).sum(0).mean() / 2,
                               rtol=1e-5)


# --------------------------------------------------------------------------- checkLayer

class _PReLU(ml.nnet.layer.Layer):
    """MathWorks' preluLayer example (checkLayer's reference page)."""
    Learnable = ("Alpha",)

    def __init__(self, numChannels, name):
        super().__init__(Name=name)
        self.Alpha = np.random.default_rng(0).random((1, 1, numChannels))

    def predict(self, X):
        return ml.max(X, 0) + self.Alpha * ml.min(0, X)


def test_checklayer_passes_a_valid_layer(capsys):
    result = ml.checkLayer(_PReLU(4, "prelu"), [3, 3, 4], ObservationDimension=4)
    out = capsys.readouterr().out
    assert (result.Passed, result.Failed, result.Skipped) == (11, 0, 4)
    assert out.startswith("Skipping GPU tests. No compatible GPU device found.\n")
    assert "Running nnet.checklayer.TestLayerWithoutBackward\n" in out
    assert "\t 11 Passed, 0 Failed, 0 Incomplete, 4 Skipped.\n" in out
    names = [name for name, _, _ in result]
    assert "gradientsAreNumericallyCorrect(Observations=multiple)" in names
    # a networkDataLayout (formatted data; a NaN batch is 1 and then 2 observations)
    r = ml.checkLayer(_PReLU(4, "prelu"), ml.networkDataLayout([3, 3, 4, np.nan], "SSCB"),
                      verbose=False)
    assert (r.Passed, r.Failed) == (11, 0)
    r = ml.checkLayer(ml.functionLayer(lambda X: ml.tanh(X) * X), [3, 4],
                      ObservationDimension=2, verbose=False)
    assert r.Failed == 0


def test_checklayer_finds_what_is_wrong(capsys):
    class Untraced(ml.nnet.layer.Layer):
        def predict(self, X):         # extractdata: no gradient; float64 for single data
            return ml.dlarray(np.asarray(ml.extractdata(X), np.float64) * 2)
    r = ml.checkLayer(Untraced(), [2, 3], ObservationDimension=2)
    failed = {name.split("(")[0] for name, outcome, _ in r if outcome == "Failed"}
    assert failed == {"predictIsConsistentInType", "backwardPropagationDoesNotError",
                      "gradientsAreNumericallyCorrect"}
    out = capsys.readouterr().out
    assert "Verification failed in nnet.checklayer.TestLayerWithoutBackward/" \
           "backwardPropagationDoesNotError(Observations=one)." in out

    class Scaled(ml.nnet.layer.Layer):
        Learnable = ("W",)

        def __init__(self):
            super().__init__(Name="scaled")
            self.W = np.array([[2.0]])

        def predict(self, X):       # the value is X * W, the traced path X * W * 0.5
            return X * self.W * 0.5 + ml.dlarray(ml.extractdata(X) * 0.5 * 2)
    r = ml.checkLayer(Scaled(), [2], ObservationDimension=2, verbose=False)
    assert [o for n, o, _ in r if n.startswith("gradientsAreNumericallyCorrect")] == \
        ["Failed", "Failed"]

    class TwoInputs(ml.nnet.layer.Layer):
        def predict(self, X, Y):
            return X
    r = ml.checkLayer(TwoInputs(), [2, 2], verbose=False)
    assert r[0][:2] == ("functionSyntaxesAreCorrect", "Failed")


def test_checklayer_refuses_bad_calls():
    with pytest.raises(TypeError, match="checkLayer: layer must be a custom layer"):
        ml.checkLayer(ml.reluLayer(), [2, 2])

    class F(ml.nnet.layer.Layer, ml.nnet.layer.Formattable):
        def predict(self, X):
            return X
    with pytest.raises(ValueError, match="checkLayer: a Formattable layer is checked with "
                                         "networkDataLayout"):
        ml.checkLayer(F(), [2, 2])
    with pytest.raises(ValueError, match="checkLayer: the layer has 1 input"):
        ml.checkLayer(_PReLU(2, "p"), [2, 2], [2, 2])
    for bad in ([], "abc", [-2, 2], [2.5, 2]):
        with pytest.raises((TypeError, ValueError),
                           match="checkLayer: validInputSize must be a vector of positive "
                                 "integers"):
            ml.checkLayer(_PReLU(2, "p"), bad, verbose=False)
    with pytest.raises(TypeError, match="checkLayer: ObservationDimension must be a "
                                        "positive integer"):
        ml.checkLayer(_PReLU(2, "p"), [2, 2], ObservationDimension="x", verbose=False)
    with pytest.raises(ValueError, match="checkLayer: the generated data of size "
                                         "100000×100000×100×2 would need"):
        ml.checkLayer(_PReLU(2, "p"), [100000, 100000, 100], verbose=False)
