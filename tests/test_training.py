"""categorical, minibatchqueue, trainingOptions, the verbose table, the progress plot, and
trainNetwork / trainnet behaviour (MATLAB_SEMANTICS §13, §16)."""
import math
import os

import numpy as np
import pytest

import mlayers as ml
from mlayers.training.reporting import TrainnetTable, VerboseTable


# --------------------------------------------------------------------------- categorical

def test_categorical_sorting_and_equality():
    c = ml.categorical(["dog", "cat", "Bird", "dog", ""])
    assert ml.categories(c) == ["Bird", "cat", "dog"]          # character-code order
    assert (c == "dog").tolist() == [True, False, False, True, False]
    assert (c == ml.categorical(["dog", "dog", "Bird", "x", ""])).tolist() == \
        [True, False, True, False, False]                       # <undefined> equals nothing
    assert c[4] == "<undefined>" and c.isundefined()[4]
    n = ml.categorical(np.array([10, 2, 1, 2]))
    assert ml.categories(n) == ["1", "2", "10"]                  # numeric order
    assert (n == 2).tolist() == [False, True, False, True]
    assert ml.countcats(n).tolist() == [1, 2, 1]
    fixed = ml.categorical(["b", "a", "z"], ["b", "a"])
    assert ml.categories(fixed) == ["b", "a"] and fixed.isundefined().tolist() == \
        [False, False, True]
    assert "3×1 categorical array" in repr(ml.categorical(["a", "b", "a"]))


# --------------------------------------------------------------------------- minibatchqueue

def test_randperm_matches_matlab():
    ml.rng(0)
    assert ml.randperm(6).tolist() == [6, 3, 5, 1, 2, 4]
    ml.rng(0)
    assert ml.randperm(8).tolist() == [6, 3, 7, 8, 5, 1, 2, 4]


def test_minibatchqueue_batches_and_end_of_data():
    X = np.arange(2 * 2 * 1 * 10, dtype=np.float64).reshape((2, 2, 1, 10), order="F")
    Y = ml.categorical(list("abcabcabca"))
    q = ml.minibatchqueue(ml.combine(ml.arrayDatastore(X, IterationDimension=4),
                                     ml.arrayDatastore(Y)),
                          MiniBatchSize=4, MiniBatchFormat=["SSBC", ""])
    seen = []
    while ml.hasdata(q):
        x, y = next(q)
        assert x.dims == "SSCB" and x._data.dtype == np.float32
        seen.append(x.shape[3])
        np.testing.assert_array_equal(x._data, X[..., sum(seen) - x.shape[3]:sum(seen)])
        assert isinstance(y, ml.categorical)
    assert seen == [4, 4, 2]
    with pytest.raises(RuntimeError, match="end of data reached. Use reset or shuffle"):
        next(q)
    q.reset()
    assert ml.hasdata(q)
    d = ml.minibatchqueue((X, Y), MiniBatchSize=4, PartialMiniBatch="discard")
    assert len(list(d)) == 2
    ml.rng(0)
    q.shuffle()
    ml.rng(0)
    order = ml.randperm(10) - 1
    x, _ = next(q)
    np.testing.assert_array_equal(x._data, X[..., order[:4]])


def test_minibatchqueue_collates_as_matlab():
    """MATLAB's collate: observations joined along their first singleton dimension; the
    formats MathWorks' pages use give their documented results."""
    XT = np.random.rand(10, 2)                   # PINN example: rows [x t], "BC"
    x = next(ml.minibatchqueue(ml.arrayDatastore(XT), MiniBatchSize=4,
                               MiniBatchFormat="BC"))
    assert x.dims == "CB" and x.shape == (2, 4)
    np.testing.assert_array_equal(x._data, XT[:4].T.astype(np.float32))
    # next's reference page: one-channel images "SSBC" -> 100x100x1x2 SSCB, labels "BC"
    # -> 1x2 CB
    imgs = np.random.rand(6, 5, 1, 7)
    labels = np.arange(7.0).reshape(7, 1)
    q = ml.minibatchqueue(ml.combine(ml.arrayDatastore(imgs, IterationDimension=4),
                                     ml.arrayDatastore(labels)),
                          MiniBatchSize=2, MiniBatchFormat=["SSBC", "BC"])
    x, y = next(q)
    assert (x.dims, x.shape, y.dims, y.shape) == ("SSCB", (6, 5, 1, 2), "CB", (1, 2))
    np.testing.assert_array_equal(x._data, imgs[..., :2].astype(np.float32))
    np.testing.assert_array_equal(y._data, [[0.0, 1.0]])
    rgb = np.random.rand(4, 4, 3, 5)             # H x W x 3 images: "SSCB"
    x = next(ml.minibatchqueue(ml.arrayDatastore(rgb, IterationDimension=4),
                               MiniBatchSize=3, MiniBatchFormat="SSCB"))
    np.testing.assert_array_equal(x._data, rgb[..., :3].astype(np.float32))
    cols = np.random.rand(3, 8)                  # F x N read along 2: F x B, "CB"
    x = next(ml.minibatchqueue(ml.arrayDatastore(cols, IterationDimension=2),
                               MiniBatchSize=5, MiniBatchFormat="CB"))
    np.testing.assert_array_equal(x._data, cols[:, :5].astype(np.float32))
    t = next(ml.minibatchqueue(ml.arrayDatastore(ml.categorical(list("abcab"))),
                               MiniBatchSize=3))
    assert t.shape == (3, 1)                     # a column of labels, as MATLAB's


def test_minibatchqueue_fcn_and_display():
    X = np.random.rand(10, 3)

    def preprocess(xs):
        return np.stack(xs, axis=1) * 2            # F × B

    q = ml.minibatchqueue(X, MiniBatchSize=5, MiniBatchFcn=preprocess,
                          MiniBatchFormat="CB", OutputCast="double")
    x = next(q)
    assert x.dims == "CB" and x._data.dtype == np.float64
    np.testing.assert_allclose(x._data, X[:5].T * 2)
    text = repr(ml.minibatchqueue(X))
    assert text == ("  minibatchqueue with 1 output and properties:\n"
                    "   Mini-batch creation:\n"
                    "               MiniBatchSize: 128\n"
                    "            PartialMiniBatch: 'return'\n"
                    "                MiniBatchFcn: 'collate'\n"
                    "    PreprocessingEnvironment: 'serial'\n"
                    "   Outputs:\n"
                    "                  OutputCast: {'single'}\n"
                    "             OutputAsDlarray: 1\n"
                    "             MiniBatchFormat: {''}\n"
                    "           OutputEnvironment: {'auto'}\n")
    with pytest.raises(ValueError, match="MiniBatchSize"):
        ml.minibatchqueue(X, MiniBatchSize=0)


def test_minibatchqueue_fcn_gets_copies_of_fortran_ordered_observations():
    # MATLAB data (loadmat) is Fortran-ordered: each observation is taken as a view and
    # copied, never the whole array; MiniBatchFcn may change what it gets in place
    A = np.asfortranarray(np.random.default_rng(5).random((6, 5, 1, 40)))
    kept = A.copy()

    def preprocess(obs):
        for o in obs:
            o *= 0                                  # must not reach the datastore
        return ml.cat(4, *[o + 1 for o in obs])

    seen = []
    q = ml.minibatchqueue(ml.arrayDatastore(A, IterationDimension=4), 1, MiniBatchSize=16,
                          MiniBatchFcn=lambda obs: seen.append([o.copy() for o in obs])
                          or preprocess(obs), MiniBatchFormat="SSCB")
    x = next(q)
    assert x.shape == (6, 5, 1, 16)
    np.testing.assert_array_equal(A, kept)
    assert len(seen[0]) == 16
    for k, o in enumerate(seen[0]):
        np.testing.assert_array_equal(o, A[..., k])


# --------------------------------------------------------------------------- options

E3_ADAM = """  TrainingOptionsADAM with properties:

             GradientDecayFactor: 0.9000
      SquaredGradientDecayFactor: 0.9990
                         Epsilon: 1.0000e-08
                InitialLearnRate: 0.0050
               LearnRateSchedule: 'none'
             LearnRateDropFactor: 0.1000
             LearnRateDropPeriod: 10
                L2Regularization: 1.0000e-04
         GradientThresholdMethod: 'l2norm'
               GradientThreshold: Inf
                       MaxEpochs: 8000
                   MiniBatchSize: 128
                         Verbose: 0
                VerboseFrequency: 50
                  ValidationData: []
             ValidationFrequency: 50
              ValidationPatience: Inf
                         Shuffle: 'once'
                  CheckpointPath: ''
             CheckpointFrequency: 1
         CheckpointFrequencyUnit: 'epoch'
            ExecutionEnvironment: 'cpu'
                      WorkerLoad: []
                       OutputFcn: []
                           Plots: 'training-progress'
                  SequenceLength: 'shortest'
            SequencePaddingValue: 0
        SequencePaddingDirection: 'right'
            DispatchInBackground: 0
         ResetInputNormalization: 1
    BatchNormalizationStatistics: 'population'
                   OutputNetwork: 'last-iteration'
"""


def test_training_options_e3_display_verbatim():
    with ml.package_defaults(training_era="E3"):
        o = ml.trainingOptions("adam", InitialLearnRate=0.005, MaxEpochs=8000,
                               Verbose=False, ExecutionEnvironment="cpu",
                               Plots="training-progress", SequenceLength="shortest")
        assert repr(o) == E3_ADAM


def test_training_options_defaults_and_errors():
    s = ml.trainingOptions("sgdm")
    assert s.InitialLearnRate == 0.01 and s.Momentum == 0.9 and s.MaxEpochs == 30
    assert s.ValidationPatience == math.inf and s.BatchNormalizationStatistics == "auto"
    a = ml.trainingOptions("adam")
    assert a.InitialLearnRate == 0.001 and a.SquaredGradientDecayFactor == 0.999
    r = ml.trainingOptions("rmsprop", "initiallearn", 0.1)          # prefix, pairs
    assert r.SquaredGradientDecayFactor == 0.9 and r.InitialLearnRate == 0.1
    lines = repr(s).splitlines()
    assert lines[2].strip() == "Momentum: 0.9000" and "Acceleration" in lines[-1]
    with pytest.raises(TypeError, match=r"'InitalLearnRate' is not an option for solver "
                                        r"'sgdm'\."):
        ml.trainingOptions("sgdm", InitalLearnRate=0.1)
    with pytest.raises(TypeError, match="'Momentum' is not an option for solver 'adam'"):
        ml.trainingOptions("adam", Momentum=0.5)
    with pytest.raises(ValueError, match="MaxEpochs must be a positive integer"):
        ml.trainingOptions("sgdm", MaxEpochs=0)
    with pytest.raises(ValueError, match="Shuffle"):
        ml.trainingOptions("sgdm", Shuffle="sometimes")
    with pytest.raises(ValueError, match="GradientDecayFactor"):
        ml.trainingOptions("adam", GradientDecayFactor=1)
    with pytest.raises(ValueError, match="solverName"):
        ml.trainingOptions("lbfgsx")
    s.MaxEpochs = 5
    assert s.MaxEpochs == 5


# --------------------------------------------------------------------------- verbose

def test_verbose_table_layout():
    t = VerboseTable()
    assert t.header() == [
        "|" + "=" * 88 + "|",
        "|  Epoch  |  Iteration  |  Time Elapsed  |  Mini-batch  |  Mini-batch  |  Base Learning  |",
        "|         |             |   (hh:mm:ss)   |   Accuracy   |     Loss     |      Rate       |",
        "|" + "=" * 88 + "|"]
    assert t.row(epoch=1, iteration=1, time=11.9, metric=14.0625, loss=1.9668, rate=0.01) \
        == "|       1 |           1 |       00:00:11 |       14.06% |       1.9668 |          0.0100 |"
    v = VerboseTable(validation=True)
    assert v.row(epoch=1, iteration=1, time=3, metric=25, val_metric=20, loss=3.2166,
                 val_loss=2.8498, rate=float(np.float32(1e-4))) == (
        "|       1 |           1 |       00:00:03 |       25.00% |       20.00% |       3.2166 |"
        "       2.8498 |      1.0000e-04 |")
    assert "8.5896e-05" in v.row(epoch=1, iteration=2, time=0, metric=1, loss=8.5896e-05,
                                 rate=0.01)
    r = VerboseTable("regression")
    assert "Mini-batch" in r.header()[1] and "RMSE" in r.header()[2]
    assert r.row(epoch=1, iteration=1, time=0, metric=25.781, loss=332.41, rate=0.001) == \
        "|       1 |           1 |       00:00:00 |        25.78 |        332.4 |          0.0010 |"
    tn = TrainnetTable(validation=True)
    assert tn.header()[0] == "    Iteration    Epoch    TimeElapsed    LearnRate    " \
                             "TrainingLoss    ValidationLoss"
    assert tn.row(Iteration=0, Epoch=0, TimeElapsed=8, LearnRate=0.0001,
                  ValidationLoss=4.3566) == \
        "            0        0       00:00:08       0.0001                            4.3566"


# --------------------------------------------------------------------------- trainNetwork

def _toy(n=40, seed=0):
    rs = np.random.RandomState(seed)
    labels = np.array(["a", "b"])[rs.randint(0, 2, n)]
    X = rs.rand(4, 4, 1, n).astype(np.float32)
    X[:, :, 0, labels == "a"] += 1.0
    return X, labels


def _toy_layers():
    return [ml.imageInputLayer([4, 4, 1]), ml.fullyConnectedLayer(2), ml.softmaxLayer(),
            ml.classificationLayer()]


def test_trainNetwork_verbose_info_and_inference(capsys):
    X, labels = _toy()
    opts = ml.trainingOptions("sgdm", MaxEpochs=2, MiniBatchSize=8, VerboseFrequency=3,
                              ValidationData=(X[..., :10], labels[:10]),
                              ValidationFrequency=4, InitialLearnRate=0.1)
    ml.rng(1)
    net, info = ml.trainNetwork(X, labels, _toy_layers(), opts, nargout=2)
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "Training on single CPU."
    assert out[1] == "Initializing input data normalization."
    assert "Validation" in out[3] and out[-1] == "Training finished: Max epochs completed."
    rows = [ln for ln in out if ln.startswith("|  ") and "%" in ln]
    iters = [int(r.split("|")[2]) for r in rows]
    assert iters == [1, 3, 4, 6, 8, 9, 10]          # 1, VerboseFrequency, validation, last
    assert len(info["TrainingLoss"]) == 10 and np.isnan(info["ValidationLoss"][1])
    assert set(info) >= {"TrainingLoss", "TrainingAccuracy", "ValidationLoss",
                         "ValidationAccuracy", "BaseLearnRate", "FinalValidationLoss",
                         "FinalValidationAccuracy", "OutputNetworkIteration"}
    assert isinstance(net, ml.SeriesNetwork) and net.Layers[-1].Name == "classoutput"
    scores = ml.predict(net, X)
    assert scores.shape == (40, 2) and scores.dtype == np.float32
    YPred, s2 = ml.classify(net, X, nargout=2)
    np.testing.assert_array_equal(s2, scores)
    assert ml.categories(YPred) == ["a", "b"] and np.mean(YPred == labels) > 0.9
    act = ml.activations(net, X, "fc")
    assert act.shape == (2, 40)


def test_trainNetwork_reproducible_and_shuffle_never():
    X, labels = _toy()
    opts = ml.trainingOptions("adam", MaxEpochs=2, MiniBatchSize=16, Verbose=False,
                              Shuffle="every-epoch")
    ml.rng(3)
    a = ml.predict(ml.trainNetwork(X, labels, _toy_layers(), opts), X)
    ml.rng(3)
    b = ml.predict(ml.trainNetwork(X, labels, _toy_layers(), opts), X)
    np.testing.assert_array_equal(a, b)


def test_schedule_and_output_fcn_stop():
    X, labels = _toy(n=32)
    seen = []

    def stop_at_5(info):
        if info["State"] == "iteration":
            seen.append((info["Iteration"], info["BaseLearnRate"]))
        return info["Iteration"] == 5

    opts = ml.trainingOptions("sgdm", MaxEpochs=10, MiniBatchSize=16, Verbose=False,
                              LearnRateSchedule="piecewise", LearnRateDropFactor=0.5,
                              LearnRateDropPeriod=1, OutputFcn=stop_at_5)
    net, info = ml.trainNetwork(X, labels, _toy_layers(), opts, nargout=2)
    assert [i for i, _ in seen] == [1, 2, 3, 4, 5]
    assert [r for _, r in seen] == [0.01, 0.01, 0.005, 0.005, 0.0025]
    assert info["StopReason"] == "Stopped by OutputFcn" and len(info["TrainingLoss"]) == 5


def test_nan_loss_stops_with_message(capsys):
    X, labels = _toy(n=16)
    layers = _toy_layers()[:-1]

    def nan_loss(Y, T):
        return ml.sum(Y, "all") * math.nan

    opts = ml.trainingOptions("sgdm", MaxEpochs=3, MiniBatchSize=8)
    W0 = ml.dlnetwork(layers).Learnables[0].Value._data
    net, info = ml.trainnet(X, ml.categorical(labels), layers, nan_loss, opts, nargout=2)
    out = capsys.readouterr().out
    assert out.rstrip().endswith("Training stopped: Training loss is NaN")
    assert info["StopReason"] == "Training loss is NaN"
    assert np.all(np.isfinite(net.Learnables[0].Value._data))     # no NaN step taken
    del W0


def test_keyboard_interrupt_returns_network():
    X, labels = _toy(n=16)
    calls = []

    def interrupt(info):
        calls.append(info["Iteration"])
        if info["State"] == "iteration" and info["Iteration"] == 2:
            raise KeyboardInterrupt

    opts = ml.trainingOptions("sgdm", MaxEpochs=5, MiniBatchSize=8, Verbose=False,
                              OutputFcn=interrupt)
    net, info = ml.trainNetwork(X, labels, _toy_layers(), opts, nargout=2)
    assert info["StopReason"] == "Stopped manually" and isinstance(net, ml.SeriesNetwork)
    assert ml.predict(net, X).shape == (16, 2)


def test_label_and_option_errors():
    X, labels = _toy(n=16)
    opts = ml.trainingOptions("sgdm", MaxEpochs=1, Verbose=False)
    with pytest.raises(ValueError, match="number of labels"):
        ml.trainNetwork(X, labels[:10], _toy_layers(), opts)
    with pytest.raises(TypeError, match="options must be created by trainingOptions"):
        ml.trainNetwork(X, labels, _toy_layers(), {"MaxEpochs": 1})
    with pytest.raises(ValueError, match="output layer"):
        ml.trainNetwork(X, labels, _toy_layers()[:-1], opts)


def test_checkpoints_and_validation_patience(tmp_path):
    X, labels = _toy(n=32)
    opts = ml.trainingOptions("sgdm", MaxEpochs=3, MiniBatchSize=16, Verbose=False,
                              CheckpointPath=str(tmp_path))
    ml.trainNetwork(X, labels, _toy_layers(), opts)
    assert len(list(tmp_path.glob("net_checkpoint__*__*.pkl"))) == 3
    # with validation the network has run predict before its checkpoint: its compiled
    # plans (closures) stay out of the file, and the loaded network predicts the same
    ck = tmp_path / "with_validation"
    ck.mkdir()
    opts = ml.trainingOptions("sgdm", MaxEpochs=2, MiniBatchSize=16, Verbose=False,
                              CheckpointPath=str(ck), ValidationData=(X, labels),
                              ValidationFrequency=1)
    ml.trainNetwork(X, labels, _toy_layers(), opts)
    import pickle
    last = sorted(ck.glob("*.pkl"), key=lambda f: int(f.name.split("__")[1]))[-1]
    with open(last, "rb") as f:
        saved = pickle.load(f)
    assert isinstance(saved, ml.dlnetwork)
    Xf = ml.dlarray(np.asarray(X, np.float32), "SSCB")
    np.testing.assert_array_equal(ml.predict(saved, Xf).data,
                                  ml.predict(pickle.loads(pickle.dumps(saved)), Xf).data)
    # a validation loss that cannot improve stops after ValidationPatience validations
    opts = ml.trainingOptions("sgdm", MaxEpochs=50, MiniBatchSize=16, Verbose=False,
                              InitialLearnRate=1e-12, ValidationData=(X, labels),
                              ValidationFrequency=1, ValidationPatience=2)
    _, info = ml.trainNetwork(X, labels, _toy_layers(), opts, nargout=2)
    assert info["StopReason"] == "Met validation criterion"


def test_training_progress_plot_is_saved(capsys):
    import matplotlib
    matplotlib.use("Agg")
    X, labels = _toy(n=32)
    opts = ml.trainingOptions("sgdm", MaxEpochs=2, MiniBatchSize=8, Verbose=False,
                              Plots="training-progress", ValidationData=(X, labels),
                              ValidationFrequency=2)
    _, info = ml.trainNetwork(X, labels, _toy_layers(), opts, nargout=2)
    path = info["TrainingProgressFigure"]
    assert f"Training progress figure saved to {path}" in capsys.readouterr().out
    import matplotlib.image as mpimg
    img = mpimg.imread(path)
    assert img.shape[0] > 300 and img.shape[1] > 500
    assert np.std(img[..., :3]) > 0.01              # something was drawn
    os.remove(path)


def test_regression_and_moving_statistics():
    rs = np.random.RandomState(0)
    X = rs.rand(3, 3, 1, 24).astype(np.float32)
    Y = np.stack([X.sum(axis=(0, 1, 2)), X[0, 0, 0]], axis=1)       # N × 2 responses
    layers = [ml.imageInputLayer([3, 3, 1]), ml.convolution2dLayer(2, 3),
              ml.batchNormalizationLayer(), ml.reluLayer(), ml.fullyConnectedLayer(2),
              _regression_layer()]
    opts = ml.trainingOptions("adam", MaxEpochs=3, MiniBatchSize=8, Verbose=False,
                              BatchNormalizationStatistics="moving", InitialLearnRate=0.01)
    net, info = ml.trainNetwork(X, Y, layers, opts, nargout=2)
    assert "TrainingRMSE" in info and ml.predict(net, X).shape == (24, 2)
    # half MSE: Loss = RMSE^2 / 2 for a single mini-batch
    np.testing.assert_allclose(info["TrainingLoss"], info["TrainingRMSE"] ** 2 / 2,
                               rtol=1e-4)
    mean = net._net.State[0].Value._data
    assert np.all(mean != 0)                         # moving averages were kept


def _regression_layer():
    if hasattr(ml, "regressionLayer"):
        return ml.regressionLayer()
    pytest.skip("regressionLayer is not available yet")


def test_trainnet_and_minibatchpredict(capsys):
    X, labels = _toy()
    layers = _toy_layers()[:-1]
    opts = ml.trainingOptions("adam", MaxEpochs=3, MiniBatchSize=8, InitialLearnRate=0.05)
    ml.rng(0)
    net = ml.trainnet(X, ml.categorical(labels), layers, "crossentropy", opts)
    out = capsys.readouterr().out
    assert out.startswith("    Iteration    Epoch    TimeElapsed    LearnRate    TrainingLoss")
    assert out.rstrip().endswith("Training stopped: Max epochs completed")
    assert isinstance(net, ml.dlnetwork)
    scores = ml.minibatchpredict(net, X)
    assert scores.shape == (40, 2)
    pred = ml.scores2label(scores, ["a", "b"])
    assert np.mean(pred == labels) > 0.9
    # a callable loss
    opts = ml.trainingOptions("sgdm", MaxEpochs=1, MiniBatchSize=8, Verbose=False)
    calls = []

    def loss(Y, T):
        calls.append(Y.dims)
        return ml.sum(-(T * ml.log(Y)), "all") / 8

    ml.trainnet(X, ml.categorical(labels), layers, loss, opts)
    assert calls and calls[0] == "CB"


def test_features_dag_and_sequences():
    rs = np.random.RandomState(0)
    X = rs.randn(40, 4).astype(np.float32)
    y = (X[:, 0] > 0).astype(int)                       # integer labels -> categorical
    layers = [ml.featureInputLayer(4), ml.fullyConnectedLayer(2), ml.softmaxLayer(),
              ml.classificationLayer()]
    opts = ml.trainingOptions("sgdm", MaxEpochs=8, MiniBatchSize=10, Verbose=False,
                              InitialLearnRate=0.1)
    net = ml.trainNetwork(X, y, layers, opts)
    pred = ml.classify(net, X)
    assert ml.categories(pred) == ["0", "1"] and np.mean(pred == y) > 0.9
    # a layer graph gives a DAGNetwork
    lg = ml.layerGraph([ml.imageInputLayer([4, 4, 1]),
                        ml.convolution2dLayer(3, 2, Padding="same", Name="c1"),
                        ml.reluLayer(Name="r1"), ml.additionLayer(2, Name="add"),
                        ml.fullyConnectedLayer(2), ml.softmaxLayer(), ml.classificationLayer()])
    lg = ml.connectLayers(lg, "c1", "add/in2")
    Xi, yi = _toy(n=20)
    dag = ml.trainNetwork(Xi, yi, lg, ml.trainingOptions("sgdm", MaxEpochs=3, MiniBatchSize=5,
                                                         Verbose=False))
    assert isinstance(dag, ml.DAGNetwork) and len(dag.Connections) == 7
    assert ml.predict(dag, Xi).shape == (20, 2)
    # sequences (a list of C×T arrays), sequence-to-one; hidden states are not carried
    seqs = [rs.randn(3, rs.randint(4, 8)).astype(np.float32) for _ in range(20)]
    labels = np.array(["up" if s[0].mean() > 0 else "down" for s in seqs])
    layers = [ml.sequenceInputLayer(3), ml.lstmLayer(6, OutputMode="last"),
              ml.fullyConnectedLayer(2), ml.softmaxLayer(), ml.classificationLayer()]
    opts = ml.trainingOptions("adam", MaxEpochs=4, MiniBatchSize=5, Verbose=False,
                              InitialLearnRate=0.05)
    snet = ml.trainNetwork(seqs, labels, layers, opts)
    assert ml.predict(snet, seqs).shape == (20, 2)


def test_population_epsilon_switch_and_trainnet_mse():
    X, labels = _toy(n=20)
    layers = [ml.imageInputLayer([4, 4, 1]), ml.convolution2dLayer(2, 2),
              ml.batchNormalizationLayer(Epsilon=0.01), ml.reluLayer(),
              ml.fullyConnectedLayer(2), ml.softmaxLayer(), ml.classificationLayer()]
    opts = ml.trainingOptions("sgdm", MaxEpochs=1, MiniBatchSize=10, Verbose=False)
    ml.rng(0)
    plus = ml.trainNetwork(X, labels, layers, opts)._net.State
    with ml.package_defaults(bn_population_variance="exact"):
        ml.rng(0)
        exact = ml.trainNetwork(X, labels, layers, opts)._net.State
    np.testing.assert_array_equal(plus[0].Value._data, exact[0].Value._data)   # mean
    np.testing.assert_allclose(plus[1].Value._data - exact[1].Value._data, 0.01,
                               rtol=1e-5)                                     # var + ε
    # trainnet regression with "mse" (not halved) and numeric targets
    Y = X.sum(axis=(0, 1, 2)).reshape(-1, 1)
    rlayers = [ml.imageInputLayer([4, 4, 1]), ml.fullyConnectedLayer(1)]
    net, info = ml.trainnet(X, Y, rlayers, "mse",
                            ml.trainingOptions("adam", MaxEpochs=2, MiniBatchSize=10,
                                               Verbose=False, InitialLearnRate=0.01),
                            nargout=2)
    assert isinstance(net, ml.dlnetwork) and len(info["TrainingHistory"]["TrainingLoss"]) == 4
    assert ml.minibatchpredict(net, X).shape == (20, 1)


def test_predict_and_update_state_chunks_equal_one_call():
    rs = np.random.RandomState(0)
    seqs = [rs.randn(3, 8).astype(np.float32) for _ in range(6)]
    labels = np.array(["a", "b"] * 3)
    layers = [ml.sequenceInputLayer(3), ml.lstmLayer(5, OutputMode="last"),
              ml.fullyConnectedLayer(2), ml.softmaxLayer(), ml.classificationLayer()]
    net = ml.trainNetwork(seqs, labels, layers,
                          ml.trainingOptions("adam", MaxEpochs=1, MiniBatchSize=3,
                                             Verbose=False))
    full = ml.predict(net, [seqs[0]])
    n1, _ = ml.predictAndUpdateState(net, [seqs[0][:, :4]])
    n2, second = ml.predictAndUpdateState(n1, [seqs[0][:, 4:]])
    np.testing.assert_allclose(second, full, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ml.predict(ml.resetState(n2), [seqs[0]]), full, rtol=1e-6)
    n3, lab, sc = ml.classifyAndUpdateState(net, [seqs[0]], nargout=3)
    assert lab.shape == (1,) and sc.shape == (1, 2)


def test_training_independent_of_thread_count():
    X, labels = _toy(n=24)
    layers = [ml.imageInputLayer([4, 4, 1]), ml.convolution2dLayer(3, 4, Padding="same"),
              ml.batchNormalizationLayer(), ml.reluLayer(), ml.fullyConnectedLayer(2),
              ml.softmaxLayer(), ml.classificationLayer()]
    opts = ml.trainingOptions("adam", MaxEpochs=2, MiniBatchSize=8, Verbose=False,
                              Shuffle="every-epoch")
    results = []
    for n in (1, 2):
        with ml.threads(n):
            ml.rng(5)
            net = ml.trainNetwork(X, labels, layers, opts)
        results.append([np.array(r.Value._data) for r in net._net.Learnables])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_output_size_mismatch_names_trainNetwork():
    X, labels = _toy(n=10)
    layers = [ml.imageInputLayer([4, 4, 1]), ml.fullyConnectedLayer(3), ml.softmaxLayer(),
              ml.classificationLayer()]
    with pytest.raises(ValueError, match="trainNetwork: the network output must have one "
                                         "score per class"):
        ml.trainNetwork(X, labels, layers, ml.trainingOptions("sgdm", Verbose=False))


from hypothesis import given, settings, strategies as st   # noqa: E402


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 40), st.integers(1, 12), st.sampled_from(["return", "discard"]),
       st.booleans())
def test_minibatchqueue_covers_each_observation_once(n, b, partial, shuffled):
    X = np.arange(n, dtype=np.float64).reshape(n, 1)          # N × 1 features
    q = ml.minibatchqueue(X, MiniBatchSize=b, PartialMiniBatch=partial, OutputCast="double")
    if shuffled:
        ml.rng(n)
        q.shuffle()
    seen = np.concatenate([np.asarray(x._data).reshape(-1) for x in q]) if ml.hasdata(q) \
        else np.zeros(0)
    expect = n if partial == "return" else (n // b) * b
    assert len(seen) == expect and len(set(seen.tolist())) == expect
    assert set(seen.tolist()) <= set(range(n))


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(alphabet="abAB_1", min_size=1, max_size=3), min_size=1, max_size=20))
def test_categorical_categories_are_sorted_unique(values):
    c = ml.categorical(values)
    assert ml.categories(c) == sorted(set(values))
    assert np.asarray(c).tolist() == values
    for v in set(values):
        assert (c == v).tolist() == [x == v for x in values]


def test_sequence_to_sequence_classification():
    rs = np.random.RandomState(0)
    seqs = [rs.randn(2, rs.randint(4, 9)).astype(np.float32) for _ in range(12)]
    labs = [ml.categorical(np.where(s[0] > 0, "pos", "neg").reshape(1, -1), ["neg", "pos"])
            for s in seqs]
    layers = [ml.sequenceInputLayer(2), ml.lstmLayer(6, OutputMode="sequence"),
              ml.fullyConnectedLayer(2), ml.softmaxLayer(), ml.classificationLayer()]
    opts = ml.trainingOptions("adam", MaxEpochs=6, MiniBatchSize=4, Verbose=False,
                              InitialLearnRate=0.05)
    net = ml.trainNetwork(seqs, labs, layers, opts)
    pred, scores = ml.classify(net, seqs, nargout=2)
    # a cell of 1×T_i label sequences and K×T_i scores, without the padding
    assert [p.shape for p in pred] == [(1, s.shape[1]) for s in seqs]
    assert [sc.shape for sc in scores] == [(2, s.shape[1]) for s in seqs]
    acc = np.mean(np.concatenate([(p == l).reshape(-1) for p, l in zip(pred, labs)]))
    assert acc > 0.8


def test_missing_or_empty_data():
    opts = ml.trainingOptions("sgdm", MaxEpochs=1, Verbose=False)
    with pytest.raises(ValueError, match="at least one observation"):
        ml.trainNetwork(np.zeros((4, 4, 1, 0), np.float32), np.array([]), _toy_layers(), opts)
    with pytest.raises(TypeError, match="responses Y must be given"):
        ml.trainNetwork(np.zeros((4, 4, 1, 4), np.float32), None, _toy_layers(), opts)
    with pytest.raises(TypeError, match="labels must be categorical"):
        ml.trainNetwork(np.zeros((4, 4, 1, 4), np.float32), np.zeros(4), _toy_layers(), opts)


def test_trainnet_index_crossentropy_addresses_channels():
    rs = np.random.RandomState(0)
    X = rs.rand(4, 4, 1, 20).astype(np.float32)
    y = np.where(X[0, 0, 0] > 0.5, 3, 1)               # class 2 never occurs
    layers = [ml.imageInputLayer([4, 4, 1]), ml.fullyConnectedLayer(3), ml.softmaxLayer()]
    opts = ml.trainingOptions("adam", MaxEpochs=5, MiniBatchSize=5, Verbose=False,
                              InitialLearnRate=0.05)
    net = ml.trainnet(X, y, layers, "index-crossentropy", opts)
    scores = ml.minibatchpredict(net, X)
    assert scores.shape == (20, 3)
    assert np.mean(np.argmax(scores, axis=1) + 1 == y) > 0.7
    with pytest.raises(ValueError, match="at most the number of network outputs"):
        ml.trainnet(X, y + 1, layers, "index-crossentropy", opts)


def test_trainnet_accuracy_metric_columns(capsys):
    X, labels = _toy(n=20)
    opts = ml.trainingOptions("adam", MaxEpochs=1, MiniBatchSize=5, Metrics="accuracy",
                              ValidationData=(X, labels), ValidationFrequency=2)
    ml.trainnet(X, labels, _toy_layers()[:-1], "crossentropy", opts)
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["Iteration", "Epoch", "TimeElapsed", "LearnRate",
                                "TrainingLoss", "ValidationLoss", "TrainingAccuracy",
                                "ValidationAccuracy"]
    assert len(lines[2].split()) == 6           # iteration 0: validation columns only
    assert [ln.split()[0] for ln in lines[2:-1]] == ["0", "1", "2", "4"]


def test_trainNetwork_from_datastores():
    X, labels = _toy(n=24)
    ds = ml.combine(ml.arrayDatastore(X, IterationDimension=4),
                    ml.arrayDatastore(ml.categorical(labels)))
    opts = ml.trainingOptions("sgdm", MaxEpochs=2, MiniBatchSize=8, Verbose=False,
                              ValidationData=ds, Shuffle="never")
    ml.rng(0)
    a = ml.trainNetwork(ds, _toy_layers(), opts)
    ml.rng(0)
    b = ml.trainNetwork(X, labels, _toy_layers(), opts)
    np.testing.assert_array_equal(ml.predict(a, X), ml.predict(b, X))


def test_categorical_cat_and_transpose():
    # MATLAB's T = cat(2, dataT{:}) of one label each, and Y = [Y; YPred']
    labels = [ml.categorical([v]).reshape(1, 1) for v in ("dog", "cat", "dog")]
    T = ml.cat(2, *labels)
    assert T.shape == (1, 3) and list(T) == ["dog", "cat", "dog"]
    assert ml.categories(T) == ["dog", "cat"]          # the first's, then the new ones
    Y = ml.cat(1, [], T.T, ml.categorical(["bird"]).reshape(1, 1))
    assert Y.shape == (4, 1) and list(Y) == ["dog", "cat", "dog", "bird"]
    assert ml.categories(Y) == ["dog", "cat", "bird"]
    np.testing.assert_array_equal(Y.isundefined(), False)
    # an N-vector and an N x 1 column have MATLAB's same size: compared elementwise
    v = ml.categorical(["dog", "cat", "dog", "bird"])
    assert (Y == v).shape == (4, 1) and (Y == v).all() and (v == Y).shape == (4,)
    with pytest.raises(TypeError, match="cat: array 2 must be categorical like the others"):
        ml.cat(1, T, np.zeros((1, 3)))


def test_array_datastore_display():
    ds = ml.arrayDatastore(np.zeros((2, 2, 1, 5)), IterationDimension=4)
    assert repr(ds) == ("  ArrayDatastore with properties:\n\n"
                        "              ReadSize: 1\n"
                        "    IterationDimension: 4\n"
                        "            OutputType: \"cell\"\n")
    assert ds.NumObservations == 5


def test_tables_pickle_as_a_custom_loop_checkpoint_saves_them():
    import pickle
    net = ml.dlnetwork([ml.featureInputLayer(3), ml.fullyConnectedLayer(2)])
    grads = net.Learnables._traced_copy(lambda v: ml.dlarray(np.ones(v.shape, np.float32)))
    _, avg, avgSq = ml.adamupdate(net, grads, [], [], 1)
    for t in (net.Learnables, net.State, avg, avgSq):
        u = pickle.loads(pickle.dumps(t))
        assert u.VariableNames == t.VariableNames and len(u) == len(t)
        for a, b in zip(u, t):
            assert a[:2] == b[:2]
            np.testing.assert_array_equal(np.asarray(a.Value.data), np.asarray(b.Value.data))


def test_trainnet_from_a_datastore_and_an_uninitialized_network():
    # MATLAB: net = trainnet(ds, layers, lossFcn, options), and a dlnetwork built with
    # dlnetwork + addLayers (uninitialized) trains as it is
    rng = np.random.default_rng(2)
    X = rng.random((6, 6, 1, 32)).astype(np.float32)
    labels = np.array(["a", "b"])[rng.integers(0, 2, 32)]
    X[:, :, 0, labels == "a"] += 1
    opts = ml.trainingOptions("sgdm", MaxEpochs=3, MiniBatchSize=8, Verbose=False,
                              Shuffle="never")
    layers = [ml.imageInputLayer([6, 6, 1]), ml.fullyConnectedLayer(2), ml.softmaxLayer()]
    ml.rng(5)
    from_arrays = ml.trainnet(X, ml.categorical(labels), layers, "crossentropy", opts)
    ml.rng(5)
    ds = ml.combine(ml.arrayDatastore(X, IterationDimension=4),
                    ml.arrayDatastore(ml.categorical(labels)))
    from_ds = ml.trainnet(ds, layers, "crossentropy", opts)
    for a, b in zip(from_arrays.Learnables.Value, from_ds.Learnables.Value):
        np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    ml.rng(5)
    empty = ml.addLayers(ml.dlnetwork(), layers)
    assert not empty.Initialized
    trained = ml.trainnet(X, ml.categorical(labels), empty, "crossentropy", opts)
    for a, b in zip(from_arrays.Learnables.Value, trained.Learnables.Value):
        np.testing.assert_array_equal(np.asarray(a.data), np.asarray(b.data))
    with pytest.raises(ValueError, match="the datastore must have 2 columns \\(one for each "
                                         "of the network's 1 input\\(s\\), then one for "
                                         "each of its 1 output\\(s\\)\\), got 3"):
        ml.trainnet(ml.combine(ds, ml.arrayDatastore(np.zeros((32, 1)))), layers,
                    "crossentropy", opts)
    ml.rng(0)
    sample = ml.randperm(20, 5)
    ml.rng(0)
    np.testing.assert_array_equal(sample, ml.randperm(20)[:5])


def test_minibatchqueue_next_nargout_and_the_output_count_hint():
    X, T, U = np.random.rand(4, 10), np.random.rand(10, 1), np.random.rand(10, 1)

    def ds():
        return ml.combine(ml.arrayDatastore(X, IterationDimension=2), ml.arrayDatastore(T),
                          ml.arrayDatastore(U))
    q = ml.minibatchqueue(ds(), MiniBatchSize=5, MiniBatchFormat=["CB", "", ""])
    x = q.next(nargout=1)                     # MATLAB's X = next(mbq): the first output
    assert isinstance(x, ml.dlarray) and x.shape == (4, 5)
    assert len(q.next(nargout=2)) == 2
    with pytest.raises(ValueError, match="next: nargout must be an integer from 1 to "
                                         "NumOutputs \\(3\\), got 4"):
        q.next(nargout=4)
    with pytest.raises(ValueError, match="minibatchqueue\\(ds, 2, ...\\) for a MiniBatchFcn "
                                         "with 2"):
        ml.minibatchqueue(ds(), MiniBatchSize=5, MiniBatchFormat=["CB", ""],
                          MiniBatchFcn=lambda a, b, c: (ml.cat(2, *a), ml.cat(1, *b)))


def test_training_progress_monitor_records_what_the_loop_reports():
    # MATLAB's monitor = trainingProgressMonitor(Metrics="Loss", Info="Epoch", ...)
    monitor = ml.trainingProgressMonitor(Metrics=["TrainingLoss", "ValidationLoss"],
                                         Info="Epoch", XLabel="Iteration")
    assert monitor.Stop is False and monitor.Progress == 0
    for it in range(1, 5):
        ml.recordMetrics(monitor, it, TrainingLoss=ml.dlarray(np.float32(1.0 / it)))
        ml.updateInfo(monitor, Epoch=f"{it} of 4")
        monitor.Progress = 25 * it
    ml.recordMetrics(monitor, 4, {"ValidationLoss": 0.5})           # the structure form
    np.testing.assert_allclose(monitor.MetricData["TrainingLoss"],
                               [[1, 1], [2, 0.5], [3, 1 / 3], [4, 0.25]], rtol=1e-7)
    assert monitor.MetricData["ValidationLoss"].tolist() == [[4.0, 0.5]]
    assert monitor.InfoData["Epoch"][-1] == "4 of 4" and monitor.Progress == 100
    assert "TrainingProgressMonitor with properties:" in repr(monitor)
    with pytest.raises(ValueError, match="recordMetrics: 'Acc' is not a metric of the "
                                         "monitor \\(TrainingLoss, ValidationLoss\\)"):
        ml.recordMetrics(monitor, 1, Acc=1)
    with pytest.raises(ValueError, match="Progress must be a number from 0 to 100, got 120"):
        monitor.Progress = 120
    ml.groupSubPlot(monitor, "Loss", ["TrainingLoss", "ValidationLoss"])
    ml.yscale(monitor, "Loss", "log")
    import matplotlib
    matplotlib.use("Agg")
    fig = monitor.plot()
    assert len(fig.axes) == 1 and fig.axes[0].get_yscale() == "log"


def test_minibatchpredict_of_several_inputs_and_of_datastores():
    # MATLAB: scores = minibatchpredict(net, XTest, featuresTest) (inputs in InputNames
    # order), or a combined datastore of them
    rng = np.random.default_rng(3)
    X = rng.random((8, 8, 1, 20)).astype(np.float32)
    A = rng.random((20, 1)).astype(np.float32)
    lg = ml.layerGraph([ml.imageInputLayer([8, 8, 1], Normalization="none"),
                        ml.fullyConnectedLayer(4), ml.flattenLayer(),
                        ml.concatenationLayer(1, 2, Name="cat"), ml.fullyConnectedLayer(2),
                        ml.softmaxLayer()])
    lg = ml.connectLayers(ml.addLayers(lg, ml.featureInputLayer(1, Name="features")),
                          "features", "cat/in2")
    net = ml.dlnetwork(lg)
    ref = np.asarray(ml.predict(net, ml.dlarray(X, "SSCB"), ml.dlarray(A.T, "CB")).data).T
    np.testing.assert_array_equal(ml.minibatchpredict(net, X, A, MiniBatchSize=7), ref)
    ds = ml.combine(ml.arrayDatastore(X, IterationDimension=4), ml.arrayDatastore(A))
    np.testing.assert_array_equal(ml.minibatchpredict(net, ds), ref)
    one = ml.dlnetwork([ml.imageInputLayer([8, 8, 1]), ml.fullyConnectedLayer(3)])
    np.testing.assert_array_equal(ml.minibatchpredict(one, ml.arrayDatastore(X, IterationDimension=4)),
                                  ml.minibatchpredict(one, X))
    with pytest.raises(ValueError, match="minibatchpredict: the network has 2 input\\(s\\)"):
        ml.minibatchpredict(net, X)


def _two_output_graph():
    g = ml.layerGraph([ml.featureInputLayer(3, Name="in"), ml.fullyConnectedLayer(2, Name="a")])
    return ml.connectLayers(ml.addLayers(g, ml.fullyConnectedLayer(1, Name="b")), "in", "b")


def _same_learnables(a, b):
    assert list(a.Learnables.Layer) == list(b.Learnables.Layer)
    for u, v in zip(a.Learnables.Value, b.Learnables.Value):
        np.testing.assert_allclose(np.asarray(u.data), np.asarray(v.data), rtol=1e-6,
                                   atol=1e-7)


def _adam_loop(net, batches, model_loss, lr):
    """What trainnet does with Shuffle="never" and no L2 term: a custom loop."""
    avg, avg_sq = [], []
    for iteration, batch in enumerate(batches, start=1):
        loss, grads = ml.dlfeval(model_loss, net, *batch)
        net, avg, avg_sq = ml.adamupdate(net, grads, avg, avg_sq, iteration, lr)
    return net


def test_trainnet_several_outputs_with_a_loss_function_of_every_output():
    # MATLAB: net = trainnet(ds, net, @(Y1,Y2,T1,T2) ..., options), ds = combine(X, T1, T2)
    rng = np.random.default_rng(4)
    X = rng.standard_normal((24, 3)).astype(np.float32)
    T1 = rng.standard_normal((24, 2)).astype(np.float32)
    T2 = rng.standard_normal((24, 1)).astype(np.float32)
    opts = ml.trainingOptions("adam", MaxEpochs=2, MiniBatchSize=8, Verbose=False,
                              Shuffle="never", L2Regularization=0, InitialLearnRate=0.01)
    ml.rng(1)
    net = ml.dlnetwork(_two_output_graph())
    ds = ml.combine(ml.arrayDatastore(X), ml.arrayDatastore(T1), ml.arrayDatastore(T2))

    def loss(Y1, Y2, T1, T2):
        return ml.mse(Y1, T1) + 0.5 * ml.l1loss(Y2, T2)
    trained, info = ml.trainnet(ds, net, loss, opts, nargout=2)
    assert isinstance(trained, ml.dlnetwork) and len(info["TrainingHistory"]["Iteration"]) == 6

    def model_loss(net, X, T1, T2):
        Y1, Y2 = ml.forward(net, X)
        value = loss(Y1, Y2, T1, T2)
        return value, ml.dlgradient(value, net.Learnables)
    batches = [(ml.dlarray(X[i:i + 8].T, "CB"), ml.dlarray(T1[i:i + 8].T, "CB"),
                ml.dlarray(T2[i:i + 8].T, "CB")) for _ in range(2) for i in (0, 8, 16)]
    _same_learnables(trained, _adam_loop(net, batches, model_loss, 0.01))
    Y1, Y2 = ml.minibatchpredict(trained, X)            # [Y1, Y2] = minibatchpredict(...)
    assert Y1.shape == (24, 2) and Y2.shape == (24, 1)
    P1, P2 = ml.predict(trained, ml.dlarray(X.T, "CB"))
    np.testing.assert_allclose(Y1, np.asarray(P1.data).T, rtol=1e-6)
    with pytest.raises(ValueError, match="trainnet: a network of 2 outputs trains on a "
                                         "datastore"):
        ml.trainnet(X, T1, net, loss, opts)
    with pytest.raises(ValueError, match="trainnet: a network of 2 outputs needs a loss "
                                         "function"):
        ml.trainnet(ds, net, "mse", opts)
    with pytest.raises(ValueError, match="trainnet: the datastore must have 3 columns"):
        ml.trainnet(ml.combine(ml.arrayDatastore(X), ml.arrayDatastore(T1)), net, loss, opts)


def test_trainnet_and_trainnetwork_with_image_and_feature_inputs():
    # MathWorks' "Train Network on Image and Feature Data": ds = combine(images, features,
    # labels), a network of an image input and a feature input joined by concatenation
    rng = np.random.default_rng(5)
    n = 16
    images = rng.random((5, 5, 1, n)).astype(np.float32)
    features = rng.random((n, 1)).astype(np.float32)
    labels = ml.categorical(np.array(["p", "q"])[rng.integers(0, 2, n)])
    g = ml.layerGraph([ml.imageInputLayer([5, 5, 1], Normalization="none", Name="img"),
                       ml.convolution2dLayer(3, 4, Name="conv"), ml.reluLayer(Name="r"),
                       ml.fullyConnectedLayer(3, Name="fc1"),
                       ml.concatenationLayer(1, 2, Name="cat"),
                       ml.fullyConnectedLayer(2, Name="fc2"), ml.softmaxLayer(Name="sm")])
    g = ml.addLayers(g, ml.featureInputLayer(1, Name="feat"))
    g = ml.connectLayers(g, "feat", "cat/in2")
    opts = ml.trainingOptions("adam", MaxEpochs=2, MiniBatchSize=4, Verbose=False,
                              Shuffle="never", L2Regularization=0, InitialLearnRate=0.01)
    ml.rng(2)
    net = ml.dlnetwork(g)
    ds = ml.combine(ml.arrayDatastore(images, IterationDimension=4),
                    ml.arrayDatastore(features), ml.arrayDatastore(labels))
    trained = ml.trainnet(ds, net, "crossentropy", opts)
    onehot = ml.onehotencode(labels.T, 1)

    def model_loss(net, X1, X2, T):
        Y = ml.forward(net, X1, X2)
        value = ml.crossentropy(Y, T)
        return value, ml.dlgradient(value, net.Learnables)
    batches = [(ml.dlarray(images[..., i:i + 4], "SSCB"), ml.dlarray(features[i:i + 4].T, "CB"),
                onehot[:, i:i + 4]) for _ in range(2) for i in range(0, n, 4)]
    _same_learnables(trained, _adam_loop(net, batches, model_loss, 0.01))
    scores = ml.minibatchpredict(trained, images, features)
    assert scores.shape == (n, 2)
    # trainNetwork: the same data with a classification layer
    lg = ml.addLayers(g, ml.classificationLayer(Name="out"))
    lg = ml.connectLayers(lg, "sm", "out")
    ml.rng(2)
    dag = ml.trainNetwork(ds, lg, opts)
    YPred, s2 = ml.classify(dag, images, features, nargout=2)
    assert len(YPred) == n and s2.shape == (n, 2)
    np.testing.assert_array_equal(ml.minibatchpredict(dag, images, features), s2)
    ds_in = ml.combine(ml.arrayDatastore(images, IterationDimension=4),
                       ml.arrayDatastore(features))
    assert np.array_equal(ml.classify(dag, ds_in), YPred)    # classify(net, dsTest)
