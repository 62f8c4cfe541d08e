"""MATLAB's ``trainNetwork`` and ``trainnet``, the trained networks, ``classify``.

Training is a loop over the package's pieces (STYLE Part 2 §5): a mini-batch source, the
network's loss evaluated by ``ml.dlfeval`` (``ml.forward(net, X, nargout=2)`` + the output
layer's loss + ``ml.dlgradient(loss, net.Learnables)``), and the shared solver rules of
:mod:`mlayers.training.solvers`.  Reporting (verbose table, training-progress plot, the
``info`` record, ``OutputFcn``) observes the loop.

One trainNetwork iteration (MATLAB_SEMANTICS §16.2-§16.6, from MathWorks source):

1. training-mode forward of the mini-batch and the gradient of the **mean** loss
   (``crossentropyex``: ``−Σ T·log(max(Y, eps('single')))/N``, gradient ``−T./Y/N``;
   regression: ``Σ ½(Y−T)²/N``, gradient ``(Y−T)/N``);
2. the reported loss excludes L2;
3. ``g += λ·l2f·W`` for every learnable whose learn-rate factor is nonzero (biases have
   ``BiasL2Factor`` 0; batch-norm offset and scale have L2 factor 1);
4. gradient clipping (``'l2norm'`` per parameter, ``'global-l2norm'``, ``'absolute-value'``);
5. the solver step with ``lr·LearnRateFactor`` (``t`` = update count for Adam);
6. the layer state (batch-norm running statistics) is updated, then reporting.

Before training: empty learnables are initialized from ``ml.rng`` (the network is built
then, in layer order, Weights before Bias), input normalization statistics are computed
from the training data (no random draws), then ``'once'`` draws one ``randperm(N)``;
``'every-epoch'`` draws one per epoch.  An epoch has ``floor(N/B)`` iterations (the final
partial mini-batch is discarded).  The piecewise schedule multiplies the rate by the drop
factor after every ``LearnRateDropPeriod``-th epoch.  After the last iteration, batch
normalization statistics are finalized: ``'population'`` (one training-mode pass over the
training data, batch statistics merged exactly, with E2's ``+ε`` on the variance
switchable through ``package_defaults(bn_population_variance=...)``) or ``'moving'``.
"""
import math
import os
import pickle
import time

import numpy as np

from .. import _defaults
from .._autodiff import data as _data, dlfeval, dlgradient, operation
from .._options import parse_name_value
from .._table import Table
from ..dlarray import dlarray
from . import solvers as _solvers
from .categorical import as_categorical, categorical, categories
from .minibatch import randperm
from .options import _TrainingOptions
from .reporting import ProgressPlot, TrainnetTable, VerboseTable

__all__ = ["trainNetwork", "trainnet", "SeriesNetwork", "DAGNetwork", "classify",
           "activations", "predictAndUpdateState", "classifyAndUpdateState", "resetState",
           "minibatchpredict", "scores2label"]

_EPS_SINGLE = float(np.finfo(np.float32).eps)


# --------------------------------------------------------------------------- losses
# The output layers' losses (§16.5), used when the output layer does not declare
# ``_loss(Y, T)``.  T is numpy data in Y's stored shape (constant).

def _batch_size(Y):
    dims = Y._dims if isinstance(Y, dlarray) else ""
    return Y._data.shape[dims.index("B")] if "B" in dims else 1


@operation
def _crossentropyex(Y, T, weights=None):
    """MATLAB's crossentropyex: ``−Σ w·T·log(max(Y, eps('single')))/N``, gradient
    ``−w·T./Y/N`` (weights per class along C, optional); MATLAB's ``max`` omits NaN."""
    y = _data(Y)
    t = np.asarray(T, dtype=y.dtype)
    n = _batch_size(Y)
    if weights is not None:
        shape = [1] * y.ndim
        shape[Y._dims.index("C")] = -1
        t = t * np.asarray(weights, dtype=y.dtype).reshape(shape)
    loss = -np.sum(t * np.log(np.fmax(y, y.dtype.type(_EPS_SINGLE)))) / y.dtype.type(n)
    out = dlarray._from_canonical(np.asarray(loss, dtype=y.dtype), "")

    def backward(dl):
        return (dl * (-t / y / y.dtype.type(n)), None, None)
    return out, backward


@operation
def _half_mse(Y, T):
    """regressionLayer's loss: ``Σ ½(Y−T)²/N`` (not divided by the response count)."""
    y = _data(Y)
    t = np.asarray(T, dtype=y.dtype)
    n = _batch_size(Y)
    d = y - t
    loss = np.sum(y.dtype.type(0.5) * d * d) / y.dtype.type(n)
    out = dlarray._from_canonical(np.asarray(loss, dtype=y.dtype), "")

    def backward(dl):
        return (dl * d / y.dtype.type(n), None)
    return out, backward


@operation
def _trainnet_loss(Y, T, kind):
    """trainnet's built-in losses (§16.9 package defaults): crossentropy ÷ the non-channel
    element count, the others ÷ numel; "mse" not halved."""
    y = _data(Y)
    t = np.asarray(T, dtype=y.dtype)
    one = y.dtype.type
    if kind == "crossentropy":
        c = Y._dims.index("C") if "C" in Y._dims else 0
        m = one(y.size // max(y.shape[c], 1))
        loss = -np.sum(t * np.log(np.maximum(y, one(_EPS_SINGLE)))) / m

        def grad():
            return -t / np.maximum(y, one(_EPS_SINGLE)) * (y >= _EPS_SINGLE) / m
    elif kind == "binary-crossentropy":
        m = one(y.size)
        yc = np.clip(y, one(_EPS_SINGLE), one(1 - _EPS_SINGLE))
        loss = -np.sum(t * np.log(yc) + (1 - t) * np.log(1 - yc)) / m

        def grad():
            return (-(t / yc) + (1 - t) / (1 - yc)) / m
    elif kind == "mse":
        m = one(y.size)
        d = y - t
        loss = np.sum(d * d) / m

        def grad():
            return 2 * d / m
    elif kind == "mae":
        m = one(y.size)
        d = y - t
        loss = np.sum(np.abs(d)) / m

        def grad():
            return np.sign(d) / m
    elif kind == "huber":
        m = one(y.size)
        d = y - t
        a = np.abs(d)
        loss = np.sum(np.where(a <= 1, one(0.5) * d * d, a - one(0.5))) / m

        def grad():
            return np.clip(d, -1, 1) / m
    else:
        raise ValueError(f"trainnet: unknown loss '{kind}'")
    out = dlarray._from_canonical(np.asarray(loss, dtype=y.dtype), "")

    def backward(dl):
        return (dl * grad(), None, None)
    return out, backward


# --------------------------------------------------------------------------- data

def _input_kind(layer):
    name = type(layer).__name__
    if name == "ImageInputLayer":
        return "SSCB"
    if name in ("Image3DInputLayer", "Image3dInputLayer"):
        return "SSSCB"
    if name == "FeatureInputLayer":
        return "CB"
    if name == "SequenceInputLayer":
        return "CBT"
    return None


class _Data:
    """Predictors in a layout where a mini-batch is one contiguous copy, and the batch as
    a formatted dlarray in MATLAB's layout."""

    def __init__(self, X, fmt, fname, options=None, input_layer=None):
        self.fmt = fmt
        self.seq = None
        if isinstance(X, dlarray):
            X = X._data if not X._dims else np.asarray(X._data)
        if isinstance(X, (list, tuple)) and fmt == "CBT":
            self.seq = [np.asarray(x, dtype=np.float32) for x in X]
            self.seq = [x.reshape(-1, 1) if x.ndim == 1 else x for x in self.seq]
            self.n = len(self.seq)
            opts = options
            self.pad_value = float(getattr(opts, "SequencePaddingValue", 0.0)) if opts else 0.0
            self.pad_dir = getattr(opts, "SequencePaddingDirection", "right") if opts else "right"
            self.length = getattr(opts, "SequenceLength", "longest") if opts else "longest"
            return
        X = np.asarray(X)
        if X.dtype.kind not in "fiub":
            raise TypeError(f"{fname}: the predictors must be numeric, got {X.dtype}")
        if fmt is None:
            fmt = {4: "SSCB", 5: "SSSCB", 2: "CB"}.get(X.ndim)
            if fmt is None:
                raise ValueError(f"{fname}: the predictors must be H×W×C×N images or N×F "
                                 f"features, got an array of {X.ndim} dimensions")
            self.fmt = fmt
        if fmt == "CB":
            if X.ndim != 2:
                raise ValueError(f"{fname}: feature data must be an N×numFeatures matrix, "
                                 f"got {X.ndim} dimensions")
            self.store = np.ascontiguousarray(X, dtype=np.float32)          # N × F
            self.n = X.shape[0]
        elif fmt in ("SSCB", "SSSCB"):
            want = len(fmt)
            if X.ndim == want - 1 and input_layer is not None and \
                    getattr(input_layer, "InputSize", [0])[-1] == 1:
                X = X.reshape(X.shape[:-1] + (1, X.shape[-1]), order="F")
            if X.ndim != want:
                raise ValueError(f"{fname}: image data must be a {'H×W×C×N' if want == 4 else 'H×W×D×C×N'}"
                                 f" array, got {X.ndim} dimensions")
            self.store = np.ascontiguousarray(X.T, dtype=np.float32)        # N × C × W × H
            self.n = X.shape[-1]
        elif fmt == "CBT":
            X = np.asarray(X, dtype=np.float32)
            if X.ndim == 2:
                X = X[:, None, :]
            if X.ndim != 3:
                raise ValueError(f"{fname}: sequence data must be a list of C×T arrays or "
                                 f"a C×N×T array")
            self.store = X
            self.n = X.shape[1]
        else:
            raise ValueError(f"{fname}: unsupported input format {fmt}")

    def batch(self, idx):
        if self.seq is not None:
            seqs = [self.seq[i] for i in idx]
            return dlarray._from_canonical(self._pad(seqs), "CBT")
        if self.fmt == "CB":
            return dlarray._from_canonical(self.store[idx].T, "CB")
        if self.fmt == "CBT":
            return dlarray._from_canonical(self.store[:, idx, :], "CBT")
        return dlarray._from_canonical(self.store[idx].T, self.fmt)

    def _pad(self, seqs):
        try:
            from .sequences import pad_sequences
        except ImportError:
            pad_sequences = None
        if pad_sequences is not None:
            try:
                return np.asarray(pad_sequences(seqs, SequenceLength=self.length,
                                                SequencePaddingValue=self.pad_value,
                                                SequencePaddingDirection=self.pad_dir),
                                  dtype=np.float32)
            except TypeError:
                pass
        lens = [s.shape[1] for s in seqs]
        L = max(lens) if self.length == "longest" else (
            min(lens) if self.length == "shortest" else
            int(math.ceil(max(lens) / self.length) * self.length))
        c = seqs[0].shape[0]
        out = np.full((c, len(seqs), L), self.pad_value, dtype=np.float32)
        for j, s in enumerate(seqs):
            s = s[:, :L] if self.pad_dir == "right" else s[:, s.shape[1] - min(L, s.shape[1]):]
            k = s.shape[1]
            if self.pad_dir == "right":
                out[:, j, :k] = s
            else:
                out[:, j, L - k:] = s
        return out

    def all_data(self):
        """The whole data set in MATLAB layout (for input-normalization statistics)."""
        if self.seq is not None:
            return np.concatenate(self.seq, axis=1)[:, :, None]      # C × ΣT × 1
        if self.fmt == "CB":
            return self.store.T
        if self.fmt == "CBT":
            return self.store
        return self.store.T


class _Targets:
    """Responses as numpy in the network output's stored shape, per mini-batch."""

    def __init__(self, Y, kind, classes, n, fname, direction="right"):
        self.kind = kind
        self.fname = fname
        self.seq = None
        self.direction = direction
        if _is_sequence_list(Y):
            self._init_sequences(Y, kind, classes, n, fname)
            return
        if kind == "classification":
            c = Y if isinstance(Y, categorical) else as_categorical(Y, fname)
            codes = c.codes.reshape(-1)
            if codes.size != n:
                raise ValueError(f"{fname}: the number of labels ({codes.size}) must match "
                                 f"the number of observations ({n})")
            names = categories(c)
            remap = np.array([classes.index(nm) if nm in classes else -1 for nm in names]
                             + [-1], dtype=np.int64)
            k = remap[codes]
            if np.any(k < 0):
                bad = np.asarray(c).reshape(-1)[np.argmax(k < 0)]
                raise ValueError(f"{fname}: labels must be classes of the output layer "
                                 f"({', '.join(classes)}), got '{bad}'")
            self.codes = k
            onehot = np.zeros((n, len(classes)), dtype=np.float32)
            onehot[np.arange(n), k] = 1
            self.store = onehot                                  # N × K
        else:
            Yn = np.asarray(Y._data if isinstance(Y, dlarray) else Y)
            if Yn.dtype.kind not in "fiub":
                raise TypeError(f"{fname}: responses must be numeric for regression, got "
                                f"{Yn.dtype}")
            Yn = Yn.astype(np.float32)
            if Yn.ndim == 1:
                Yn = Yn[:, None]
            if Yn.ndim == 2:
                if Yn.shape[0] != n:
                    raise ValueError(f"{fname}: responses must have one row per observation "
                                     f"({n}), got {Yn.shape[0]}")
                self.store = np.ascontiguousarray(Yn)            # N × R
            else:
                if Yn.shape[-1] != n:
                    raise ValueError(f"{fname}: responses must have one observation per "
                                     f"predictor ({n}), got {Yn.shape[-1]}")
                self.store = np.ascontiguousarray(Yn.T)          # N × ... reversed
            self.ndim = Yn.ndim

    def _init_sequences(self, Y, kind, classes, n, fname):
        """Sequence-to-sequence responses: a list of label sequences (categorical or text,
        ``1×T_i``) or of numeric ``R×T_i`` arrays, one per observation."""
        if len(Y) != n:
            raise ValueError(f"{fname}: the number of response sequences ({len(Y)}) must "
                             f"match the number of observations ({n})")
        seqs = []
        for i, y in enumerate(Y):
            if kind == "classification":
                c = y if isinstance(y, categorical) else categorical(
                    np.asarray(y, dtype=object).reshape(-1), classes)
                names = categories(c)
                remap = np.array([classes.index(nm) if nm in classes else -1
                                  for nm in names] + [-1], dtype=np.int64)
                k = remap[c.codes.reshape(-1)]
                if np.any(k < 0):
                    raise ValueError(f"{fname}: response sequence {i + 1} has labels that "
                                     f"are not classes of the output layer "
                                     f"({', '.join(classes)})")
                onehot = np.zeros((len(classes), k.size), dtype=np.float32)
                onehot[k, np.arange(k.size)] = 1
                seqs.append(onehot)
            else:
                a = np.asarray(y, dtype=np.float32)
                seqs.append(a.reshape(1, -1) if a.ndim == 1 else a)
        self.seq = seqs

    def batch(self, idx, like):
        """Targets of ``idx`` shaped as the network output ``like`` (a dlarray)."""
        y = like._data
        if self.seq is not None:
            L = y.shape[-1]
            out = np.zeros(y.shape, dtype=np.float32)     # padded steps: zero targets
            for j, i in enumerate(idx):
                s = self.seq[i]
                k = min(s.shape[1], L)
                if self.direction == "right":
                    out[:, j, :k] = s[:, :k]
                else:
                    out[:, j, L - k:] = s[:, s.shape[1] - k:]
            return out
        t = self.store[idx].T                                    # K × B or MATLAB layout
        if t.shape == y.shape:
            return t
        if "T" in like._dims and t.ndim == 2:                     # sequence-to-one style
            return t.reshape(t.shape + (1,) * (y.ndim - 2))
        if t.size == y.size:
            return t.reshape(y.shape, order="F")
        what = ("one score per class" if self.kind == "classification"
                else "one value per response")
        raise ValueError(f"{self.fname}: the network output must have {what}: its size is "
                         f"{'×'.join(map(str, y.shape))} ({like._dims}) but the targets of "
                         f"the mini-batch have size {'×'.join(map(str, t.shape))}")


def _is_sequence_list(Y):
    """A list of per-observation response sequences (not a flat list of labels)."""
    return isinstance(Y, (list, tuple)) and len(Y) > 0 and all(
        isinstance(y, categorical) or (isinstance(y, np.ndarray) and y.ndim >= 1
                                       and y.size > 1) or
        (isinstance(y, (list, tuple)) and len(y) > 1) for y in Y)


def _metric(kind, Y, T):
    """(accuracy % or RMSE) of a mini-batch: Y dlarray output, T numpy targets."""
    y = Y._data
    if kind == "classification":
        c = Y._dims.index("C")
        hit = np.argmax(y, axis=c) == np.argmax(T, axis=c)
        has = np.any(T != 0, axis=c)                  # padded steps have no target
        return 100.0 * float(np.mean(hit[has])) if has.any() else math.nan
    n = _batch_size(Y)
    return float(np.sqrt(np.sum((y.astype(np.float64) - T) ** 2) / n))


# --------------------------------------------------------------------------- networks

def _is_graph(layers):
    return hasattr(layers, "Connections") and not isinstance(layers, (list, tuple))


def _split_output(layers, fname):
    """(layers or graph without the output layer, the output layer or None)."""
    from .._props import layer_array
    if _is_graph(layers):
        outs = [layer for layer in layers.Layers if getattr(layer, "_is_output_layer", False)]
        if len(outs) > 1:
            raise ValueError(f"{fname}: the network must have one output layer, got "
                             f"{len(outs)}")
        if not outs:
            return layers, None
        from .. import graph as _graph
        return _graph.removeLayers(layers, outs[0].Name), outs[0]
    items = list(layer_array(layers))
    if not items:
        raise ValueError(f"{fname}: layers must not be empty")
    for i, layer in enumerate(items[:-1], start=1):
        if getattr(layer, "_is_output_layer", False):
            raise ValueError(f"{fname}: layer {i} '{layer.Name}' is an output layer; the "
                             f"output layer must be the last layer")
    if getattr(items[-1], "_is_output_layer", False):
        return items[:-1], items[-1]
    return items, None


def _loss_kind(out_layer, fname):
    if out_layer is None:
        raise ValueError(f"{fname}: the last layer must be an output layer "
                         f"(classificationLayer or regressionLayer)")
    kind = getattr(out_layer, "_output_kind", None)
    if kind is not None:
        return kind
    if hasattr(out_layer, "_loss"):
        return "custom"
    raise ValueError(f"{fname}: unsupported output layer {type(out_layer).__name__}")


def _set_classes(out_layer, classes):
    from ..graph import clone
    c = clone(out_layer)
    cur = c._values.get("Classes")
    if isinstance(cur, str):
        c.Classes = list(classes)
    return c


def _name_output(out_layer, net):
    """The output layer named as MATLAB names it (``classoutput``, ``regressionoutput``)
    when unnamed, unique among the network's layer names."""
    from ..graph import clone, default_name
    if out_layer._values.get("Name"):
        return out_layer
    taken = {lay.Name for lay in net.Layers}
    base = default_name(out_layer)
    name, k = base, 0
    while name in taken:
        k += 1
        name = f"{base}_{k}"
    c = clone(out_layer)
    c._values["Name"] = name
    return c


class _TrainedNetwork:
    """Common part of SeriesNetwork and DAGNetwork: a dlnetwork plus the output layer."""

    def __init__(self, net, out_layer, kind, series):
        self._net = net
        self._out = out_layer
        self._kind = kind
        self._series = series

    @property
    def Layers(self):
        from .._props import LayerArray
        return LayerArray(list(self._net.Layers) + ([self._out] if self._out is not None
                                                    else []))

    @property
    def InputNames(self):
        return list(self._net.InputNames)

    @property
    def OutputNames(self):
        return [self._out.Name] if self._out is not None else list(self._net.OutputNames)

    @property
    def Connections(self):
        t = self._net.Connections
        rows = [tuple(r) for r in t]
        if self._out is not None:
            rows.append((self._net.OutputNames[0], self._out.Name))
        return Table(("Source", "Destination"), rows)

    def _classes(self):
        cl = self._out._values.get("Classes") if self._out is not None else None
        return None if cl is None or isinstance(cl, str) else [str(c) for c in cl]

    def __repr__(self):
        from .. import _display
        x = _display.times()
        n = len(self.Layers)
        rows = [("Layers", _Raw(f"[{n}{x}1 nnet.cnn.layer.Layer]"))]
        if not self._series:
            rows.append(("Connections", _Raw(f"[{len(self.Connections)}{x}2 table]")))
        rows += [("InputNames", list(self.InputNames)), ("OutputNames", list(self.OutputNames))]
        return _display.layer_text(type(self).__name__, [(None, rows)], footer=False)

    __str__ = __repr__

    # ------------------------------------------------------------- inference

    def _run(self, X, fname, opts, outputs=None, update_state=False):
        """The network on the data ``X`` (a list of one array per input for several) in
        mini-batches: the outputs of each."""
        Xs = X if isinstance(X, _Inputs) else [X]
        layers = _input_layers(self._net, fname) if len(Xs) > 1 else [self._net.Layers[0]]
        mbs = int(opts.get("MiniBatchSize", 128))
        if mbs < 1:
            raise ValueError(f"{fname}: MiniBatchSize must be a positive integer, got {mbs}")
        import types
        seq_opts = types.SimpleNamespace(
            SequenceLength=opts.get("SequenceLength", "longest"),
            SequencePaddingValue=opts.get("SequencePaddingValue", 0.0),
            SequencePaddingDirection=opts.get("SequencePaddingDirection", "right"))
        if len(Xs) != len(self._net.InputNames):
            raise ValueError(f"{fname}: the network has {len(self._net.InputNames)} input(s), "
                             f"got {len(Xs)} set(s) of data")
        datas = [_Data(x, _input_kind(lay), fname, seq_opts, input_layer=lay)
                 for x, lay in zip(Xs, layers)]
        d = datas[0]
        outs = []
        net = self._net
        for s in range(0, d.n, mbs):
            idx = np.arange(s, min(s + mbs, d.n))
            Xb = [data.batch(idx) for data in datas]
            if update_state:
                Y, state = net.predict(*Xb, nargout=2)
                net = _copy_net(net)
                net.State = state
            elif outputs is not None:
                Y = net.predict(*Xb, Outputs=outputs)
            else:
                Y = net.predict(*Xb)
            if d.seq is not None and Y._dims == "CBT" and Y._data.shape[2] > 1:
                # sequence-to-sequence on a list of sequences: MATLAB returns a cell of
                # K×T_i arrays without the padding
                from .sequences import unpad_sequences
                lengths = [d.seq[i].shape[1] for i in idx]
                Y = unpad_sequences(Y, lengths, seq_opts.SequencePaddingDirection)
            outs.append(Y)
        if update_state:
            self._net = net
        return outs

    @staticmethod
    def _to_numeric(outs):
        """Concatenate mini-batch outputs: ``CB`` → N×K, else MATLAB layout with N last;
        for several outputs (tuples), a tuple of each's."""
        if isinstance(outs[0], tuple):
            return tuple(_TrainedNetwork._to_numeric([o[k] for o in outs])
                         for k in range(len(outs[0])))
        if isinstance(outs[0], list):                     # sequence-to-sequence cells
            return [np.asarray(y, dtype=np.float32) for o in outs for y in o]
        Y0 = outs[0]
        dims = Y0._dims
        if dims == "CB":
            return np.concatenate([o._data.T for o in outs], axis=0).astype(np.float32)
        if dims == "CBT" and Y0._data.shape[2] == 1:
            return np.concatenate([o._data[:, :, 0].T for o in outs], axis=0)
        b = dims.index("B") if "B" in dims else Y0._data.ndim - 1
        return np.concatenate([o._data for o in outs], axis=b).astype(np.float32)

    def predict(self, X, *args, **kwargs):
        X, args = _Inputs.split(X, args)
        opts = parse_name_value("predict", args, kwargs, ("MiniBatchSize", "Acceleration",
                                                          "ExecutionEnvironment",
                                                          "SequenceLength",
                                                          "SequencePaddingValue",
                                                          "SequencePaddingDirection",
                                                          "ReturnCategorical"))
        return self._to_numeric(self._run(X, "predict", opts))

    def classify(self, X, *args, nargout=1, **kwargs):
        X, args = _Inputs.split(X, args)
        opts = parse_name_value("classify", args, kwargs, ("MiniBatchSize", "Acceleration",
                                                           "ExecutionEnvironment",
                                                           "SequenceLength",
                                                           "SequencePaddingValue",
                                                           "SequencePaddingDirection"))
        if self._kind != "classification":
            raise ValueError("classify: the network must be a classification network (its "
                             "output layer is not a classificationLayer)")
        scores = self._to_numeric(self._run(X, "classify", opts))
        if isinstance(scores, list):                      # one K×T_i array per sequence
            labels = [categorical._from_codes(np.argmax(sc, axis=0).reshape(1, -1),
                                              self._classes()) for sc in scores]
            return (labels, scores) if nargout == 2 else labels
        labels = scores2label(scores, self._classes())
        return (labels, scores) if nargout == 2 else labels


def _predictor_columns(ds):
    """The columns of a datastore of predictors in the layouts _Data reads: images with
    observations last, features first."""
    return [np.moveaxis(np.asarray(a), ax, np.ndim(a) - 1 if np.ndim(a) >= 3 else 0)
            for a, ax in ds._columns()]


class _Inputs(list):
    """The data of a network of several inputs (MATLAB's ``predict(net, X1, ..., XN)``)."""

    @classmethod
    def split(cls, X, args):
        """(X or _Inputs of X and the leading arrays of ``args``, the name-value rest)."""
        more = []
        args = list(args)
        while args and not isinstance(args[0], (str, np.str_)):
            more.append(args.pop(0))
        if hasattr(X, "_columns") and not more:         # combine(ds1, ds2) of the inputs
            cols = _predictor_columns(X)
            return (cls(cols) if len(cols) > 1 else cols[0]), args
        return (cls([X] + more) if more else X), args


class _Raw:
    def __init__(self, text):
        self.text = text

    def __repr__(self):
        return self.text


class SeriesNetwork(_TrainedNetwork):
    """A trained network of a layer array (MATLAB ``SeriesNetwork``), as ``trainNetwork``
    returns it: ``Layers`` (with the output layer), ``predict`` (N×K float32),
    ``classify``, ``activations``, ``predictAndUpdateState``, ``resetState``."""

    def __init__(self, net, out_layer, kind):
        super().__init__(net, out_layer, kind, True)


class DAGNetwork(_TrainedNetwork):
    """A trained layer graph (MATLAB ``DAGNetwork``); see :class:`SeriesNetwork`."""

    def __init__(self, net, out_layer, kind):
        super().__init__(net, out_layer, kind, False)


def _register_predict():
    from .._predict import register
    register(_TrainedNetwork, lambda net, X, *a, **kw: net.predict(X, *a, **kw))


_register_predict()


def _copy_net(net):
    return net._copy() if hasattr(net, "_copy") else net


def classify(net, X, *args, nargout=1, **kwargs):
    """Classify data with a trained network (MATLAB ``[YPred, scores] = classify(net, X)``).

    Returns the labels (a categorical with one label per observation, the first maximum
    of each row, categories in the output layer's order) and, with ``nargout=2``, the
    ``N×K`` float32 scores.  Options: ``MiniBatchSize`` (128), sequence options.
    """
    if not isinstance(net, _TrainedNetwork):
        raise TypeError(f"classify: net must be a SeriesNetwork or DAGNetwork, got "
                        f"{type(net).__name__}")
    return net.classify(X, *args, nargout=nargout, **kwargs)


def activations(net, X, layer, *args, **kwargs):
    """Activations of a layer (MATLAB ``activations(net, X, layer)``): the layer's output
    for every observation in MATLAB layout (``H×W×C×N``; ``K×N`` for ``CB`` outputs)."""
    if not isinstance(net, _TrainedNetwork):
        raise TypeError(f"activations: net must be a SeriesNetwork or DAGNetwork, got "
                        f"{type(net).__name__}")
    opts = parse_name_value("activations", args, kwargs, ("MiniBatchSize", "OutputAs",
                                                          "Acceleration",
                                                          "ExecutionEnvironment"))
    name = layer if isinstance(layer, str) else net.Layers[int(layer) - 1].Name
    outs = net._run(X, "activations", opts, outputs=name)
    dims = outs[0]._dims
    b = dims.index("B") if "B" in dims else outs[0]._data.ndim - 1
    return np.concatenate([o._data for o in outs], axis=b)


def predictAndUpdateState(net, X, *args, nargout=2, **kwargs):
    """MATLAB ``[net, Y] = predictAndUpdateState(net, X)``: predict and keep the recurrent
    state (the returned network carries it)."""
    new, Y = _predict_and_update(net, X, args, kwargs, "predictAndUpdateState")
    return (new, Y) if nargout == 2 else new


def _predict_and_update(net, X, args, kwargs, fname):
    """(network carrying the updated state, scores); errors name ``fname``."""
    if not isinstance(net, _TrainedNetwork):
        raise TypeError(f"{fname}: net must be a SeriesNetwork or DAGNetwork, got "
                        f"{type(net).__name__}")
    import copy
    new = copy.copy(net)
    opts = parse_name_value(fname, args, kwargs, ("MiniBatchSize",))
    return new, new._to_numeric(new._run(X, fname, opts, update_state=True))


def classifyAndUpdateState(net, X, *args, nargout=2, **kwargs):
    """MATLAB ``[net, YPred, scores] = classifyAndUpdateState(net, X)``."""
    new, scores = _predict_and_update(net, X, args, kwargs, "classifyAndUpdateState")
    labels = scores2label(scores, new._classes())
    return (new, labels, scores)[:max(nargout, 1)] if nargout > 1 else new


def resetState(net):
    """MATLAB ``net = resetState(net)``: the initial recurrent state (also for dlnetwork)."""
    from .. import network as _network
    if isinstance(net, _TrainedNetwork):
        import copy
        new = copy.copy(net)
        new._net = _network.resetState(net._net)
        return new
    return _network.resetState(net)


def scores2label(scores, classNames, *args, **kwargs):
    """Labels of the highest scores (MATLAB ``scores2label(scores, classNames)``): a
    categorical, one label per row (``N×K`` scores; the first maximum), categories in
    ``classNames`` order; NaN rows give ``<undefined>``."""
    s = np.asarray(scores._data if isinstance(scores, dlarray) else scores)
    if s.dtype.kind not in "biuf":
        raise TypeError(f"scores2label: scores must be a numeric array, got "
                        f"{type(scores).__name__}")
    if isinstance(classNames, (str, np.str_)) or not np.iterable(classNames):
        classNames = None if classNames is None else [classNames]
    names = [str(c) for c in (classNames if classNames is not None else [])]
    if s.ndim == 0:
        s = s.reshape(1, 1)
    if s.ndim == 1:
        s = s[None, :]
    if s.shape[-1] != len(names):
        raise ValueError(f"scores2label: classNames must have one name per column of "
                         f"scores ({s.shape[-1]}), got {len(names)}")
    if s.shape[-1] == 0:        # no classes: every label is <undefined>
        k = np.full(s.shape[:-1], -1)
    else:
        k = np.argmax(s, axis=-1)
        k = np.where(np.any(np.isnan(s), axis=-1), -1, k)
    return categorical._from_codes(k.reshape(-1), names)


def minibatchpredict(net, X, *args, **kwargs):
    """Predict in mini-batches (MATLAB ``minibatchpredict(net, X)``): numeric scores with
    one row per observation for ``CB`` outputs (``N×K``), else MATLAB layout.  A network
    of several inputs takes them in ``net.InputNames`` order, ``minibatchpredict(net, X1,
    X2)``, or as the columns of a datastore (``combine(...)``)."""
    args = list(args)
    inputs = [X]
    while args and not isinstance(args[0], (str, np.str_)):
        inputs.append(args.pop(0))
    if len(inputs) == 1 and hasattr(X, "_columns"):
        inputs = _predictor_columns(X)
    opts = parse_name_value("minibatchpredict", args, kwargs,
                            ("MiniBatchSize", "InputDataFormats", "Acceleration",
                             "ExecutionEnvironment", "SequenceLength",
                             "SequencePaddingValue", "SequencePaddingDirection"))
    if isinstance(net, _TrainedNetwork):
        return net.predict(*inputs, MiniBatchSize=opts.get("MiniBatchSize", 128))
    from ..network import dlnetwork
    if not isinstance(net, dlnetwork):
        raise TypeError(f"minibatchpredict: net must be a dlnetwork, SeriesNetwork or "
                        f"DAGNetwork, got {type(net).__name__}")
    names = [n for n in net.InputNames if "/" not in n]
    if len(inputs) != len(net.InputNames) or len(names) != len(inputs):
        raise ValueError(f"minibatchpredict: the network has {len(net.InputNames)} input(s) "
                         f"({', '.join(net.InputNames)}), in input layers, got "
                         f"{len(inputs)} set(s) of data")
    layers = [net._layers[net._index[n]] for n in names]
    data = [_Data(x, _input_kind(lay), "minibatchpredict", input_layer=lay)
            for x, lay in zip(inputs, layers)]
    n = data[0].n
    if any(d.n != n for d in data):
        raise ValueError(f"minibatchpredict: every input must have the same number of "
                         f"observations, got {', '.join(str(d.n) for d in data)}")
    mbs = int(opts.get("MiniBatchSize", 128))
    outs = []
    for s in range(0, n, mbs):
        idx = np.arange(s, min(s + mbs, n))
        outs.append(net.predict(*[d.batch(idx) for d in data]))
    return _TrainedNetwork._to_numeric(outs)


# --------------------------------------------------------------------------- the loop

class _Stop(Exception):
    pass


def _learnable_keys(net):
    return [(r.Layer, r.Parameter) for r in net.Learnables]


def _factors(net, keys):
    lr = {k: _solvers.factor(net, k[0], k[1], "LearnRateFactor") for k in keys}
    l2 = {k: _solvers.factor(net, k[0], k[1], "L2Factor") for k in keys}
    return lr, l2


def _clip(grads, method, threshold):
    """Gradient clipping (§16.3), after L2: in place on the dict of numpy gradients."""
    if not math.isfinite(threshold):
        return
    T = threshold
    if method == "l2norm":
        for k, g in grads.items():
            n = float(np.sqrt(np.sum(g * g, dtype=g.dtype)))
            if n > T:
                grads[k] = g * g.dtype.type(T / n)
    elif method == "global-l2norm":
        total = 0.0
        for g in grads.values():
            total += float(np.sum(g * g, dtype=g.dtype))
        L = math.sqrt(total)
        if L > T:
            for k, g in grads.items():
                grads[k] = g * g.dtype.type(T / L)
    else:
        for k, g in grads.items():
            grads[k] = np.clip(g, -T, T).astype(g.dtype)


#: recurrent states are not carried from one mini-batch to the next in training (each
#: mini-batch starts from the network's initial state, as in MATLAB's trainNetwork)
_SEQUENCE_STATES = ("HiddenState", "CellState")


def _training_state(state):
    """The rows of a forward state table that training keeps (normalization statistics)."""
    rows = [tuple(r) for r in state if r.Parameter not in _SEQUENCE_STATES]
    if len(rows) == len(state):
        return state
    return Table(("Layer", "Parameter", "Value"), rows)


def _bn_layers(net):
    return [lay for lay in net.Layers
            if "TrainedMean" in getattr(lay, "_state_parameters", ())
            and "TrainedVariance" in getattr(lay, "_state_parameters", ())]


def _bn_sources(net, bns):
    """The output feeding each batch-norm layer (its source in the connections)."""
    src = {}
    conns = list(net.Connections)
    for lay in bns:
        name = lay.Name
        for r in conns:
            dest = r.Destination.split("/")[0]
            if dest == name:
                src[name] = r.Source
                break
        else:
            raise ValueError(f"trainNetwork: batch normalization layer '{name}' has no input")
    return src


def _reset_bn_state(net, bns):
    rows = []
    for lay in bns:
        m = np.asarray(lay.TrainedMean)
        v = np.asarray(lay.TrainedVariance)
        if m.size == 0:
            continue
        rows.append((lay.Name, "TrainedMean", dlarray._from_canonical(np.zeros_like(m), "")))
        rows.append((lay.Name, "TrainedVariance",
                     dlarray._from_canonical(np.ones_like(v), "")))
    if rows:
        net.State = Table(("Layer", "Parameter", "Value"), rows)


def _population_statistics(net, datas, B):
    """'population' (§16.6): one training-mode pass (mini-batches of B in data order,
    partial last kept), per-channel batch mean and biased variance of each batch-norm
    input merged exactly; E2's TrainedVariance = variance + Epsilon (switchable)."""
    from ..network import forward
    bns = _bn_layers(net)
    if not bns:
        return net
    src = _bn_sources(net, bns)
    names = [src[b.Name] for b in bns]
    acc = {b.Name: None for b in bns}
    n = datas[0].n
    for s in range(0, n, B):
        idx = np.arange(s, min(s + B, n))
        outs = forward(net, *(d.batch(idx) for d in datas), Outputs=names, nargout=len(names))
        outs = outs if isinstance(outs, tuple) else (outs,)
        for b, A in zip(bns, outs):
            a = A._data
            c = A._dims.index("C")
            axes = tuple(i for i in range(a.ndim) if i != c)
            n2 = a.size // a.shape[c]
            mu2 = np.mean(a, axis=axes, dtype=np.float64)
            var2 = np.mean((a - mu2.reshape([-1 if i == c else 1 for i in range(a.ndim)])
                            .astype(a.dtype)) ** 2, axis=axes, dtype=np.float64)
            prev = acc[b.Name]
            if prev is None:
                acc[b.Name] = (n2, mu2, var2)
            else:
                n1, mu1, var1 = prev
                r = n2 / (n1 + n2)
                mu = (1 - r) * mu1 + r * mu2
                var = (1 - r) * (var1 + mu1 ** 2) + r * (var2 + mu2 ** 2) - mu ** 2
                acc[b.Name] = (n1 + n2, mu, var)
    plus = _defaults.get("bn_population_variance") == "plus_epsilon"
    rows = []
    for b in bns:
        n, mu, var = acc[b.Name]
        if plus:
            var = var + float(b.Epsilon)
        old_m = np.asarray(b.TrainedMean)
        dt = old_m.dtype if old_m.dtype.kind == "f" else np.float32
        rows.append((b.Name, "TrainedMean", dlarray._from_canonical(
            mu.astype(dt).reshape(old_m.shape if old_m.size == mu.size else mu.shape), "")))
        old_v = np.asarray(b.TrainedVariance)
        rows.append((b.Name, "TrainedVariance", dlarray._from_canonical(
            var.astype(dt).reshape(old_v.shape if old_v.size == var.size else var.shape), "")))
    net.State = Table(("Layer", "Parameter", "Value"), rows)
    return net


def _input_statistics(net, datas, options, fname):
    """Input normalization statistics from the training data (§16.2; no random draws), for
    every input layer.  Returns True when statistics were computed."""
    computed = False
    for name, data in zip(net.InputNames, datas):
        computed |= _input_layer_statistics(net, net._index[name], data, options)
    return computed


def _input_layer_statistics(net, index, data, options):
    first = net._layers[index]
    mode = first._values.get("Normalization") if hasattr(first, "_values") else None
    if not isinstance(mode, str) or mode == "none":
        return False
    from ..layers.input import STATISTICS
    names = STATISTICS.get(mode, ())
    if not names:
        return False
    given = all(first._values.get(n) is not None and not _is_neutral_default(first, n)
                for n in names)
    if given and not options.ResetInputNormalization:
        return False
    X = data.all_data().astype(np.float64)
    fmt = data.fmt
    c = fmt.index("C")
    dim = first._values.get("NormalizationDimension", "auto")
    if dim in ("auto", "channel"):
        axes = tuple(i for i in range(X.ndim) if i != c)
        keep = True
    elif dim == "element":
        axes = (X.ndim - 1,) if data.seq is None else (1, 2)
        keep = True
    else:
        axes = None
        keep = False
    stats = {}
    if "Mean" in names:
        stats["Mean"] = np.mean(X, axis=axes, keepdims=keep)
    if "StandardDeviation" in names:
        stats["StandardDeviation"] = np.std(X, axis=axes, keepdims=keep)
    if "Max" in names:
        stats["Max"] = np.max(X, axis=axes, keepdims=keep)
    if "Min" in names:
        stats["Min"] = np.min(X, axis=axes, keepdims=keep)
    from ..graph import clone
    lay = clone(first)
    for k, v in stats.items():
        v = np.asarray(v, dtype=np.float32)
        if fmt == "CB" or fmt == "CBT":
            v = v.reshape(-1, 1)
        else:
            v = v.reshape(v.shape[:len(fmt) - 1])
        setattr(lay, k, v)
    net._layers[index] = lay
    return True


def _is_neutral_default(layer, name):
    return getattr(layer, "_neutral_statistics", False)


class _Loop:
    """The shared training loop of trainNetwork and trainnet."""

    def __init__(self, net, datas, targets, loss_fn, options, kind, fname, val=None,
                 verbose_style="trainNetwork", metric_kind=None):
        # (one _Data per network input, one _Targets per output; loss_fn(*Ys, *Ts);
        # val: (datas, targets) of the validation data)
        self.net = net
        self.datas = datas
        self.targets = targets
        self.loss_fn = loss_fn
        self.o = options
        self.kind = kind
        self.fname = fname
        self.val = val
        self.style = verbose_style
        # (accuracy or RMSE: of a network of one output)
        self.metric_kind = (metric_kind or kind) if len(targets) == 1 else kind

    # one mini-batch: loss, gradients (a dict of numpy), new state, first output, targets
    def _evaluate(self, Xb, idx):
        from ..network import forward
        targets = self.targets
        loss_fn = self.loss_fn

        def model_loss(net, *X):
            outs = forward(net, *X, nargout=len(targets) + 1)
            Ys, state = outs[:-1], outs[-1]
            Ts = [t.batch(idx, Y) for t, Y in zip(targets, Ys)]
            loss = loss_fn(*Ys, *Ts)
            grads = dlgradient(loss, net.Learnables)
            return loss, grads, state, Ys[0], Ts[0]
        return dlfeval(model_loss, self.net, *Xb)

    def _validate(self):
        Xv, Tv = self.val
        B = self.o.MiniBatchSize
        total_loss, n = 0.0, 0
        sq = 0.0
        hits = 0
        count = 0
        nv = Xv[0].n
        for s in range(0, nv, B):
            idx = np.arange(s, min(s + B, nv))
            Ys = self.net.predict(*(d.batch(idx) for d in Xv))
            Ys = Ys if isinstance(Ys, tuple) else (Ys,)
            Ts = [t.batch(idx, Y) for t, Y in zip(Tv, Ys)]
            b = len(idx)
            loss = float(_data(self.loss_fn(*Ys, *Ts)))
            total_loss += loss * b
            Y, T = Ys[0], Ts[0]
            if self.metric_kind == "classification":
                c = Y._dims.index("C")
                h = np.argmax(Y._data, axis=c) == np.argmax(T, axis=c)
                hits += int(np.sum(h))
                count += h.size
            elif self.metric_kind == "regression":
                sq += float(np.sum((Y._data.astype(np.float64) - T) ** 2))
            n += b
        metric = 100.0 * hits / max(count, 1) if self.metric_kind == "classification" \
            else math.sqrt(sq / max(n, 1)) if self.metric_kind == "regression" else math.nan
        return total_loss / max(n, 1), metric

    def run(self):
        o = self.o
        net = self.net
        N = self.datas[0].n
        B = min(int(o.MiniBatchSize), N)
        ipe = N // B
        keys = _learnable_keys(net)
        lrf, l2f = _factors(net, keys)
        # (in MATLAB's memory order, the gradients' and the kernels': solvers._same_order)
        params = {r_key: np.array(v._data, dtype=np.float32, order="F")
                  for r_key, v in zip(keys, [r.Value for r in net.Learnables])}
        solver = o.SolverName
        nstate = {"sgdm": 1, "adam": 2, "rmsprop": 1}[solver]
        states = {k: [np.float32(0)] * nstate for k in keys}
        lam = float(o.L2Regularization)
        lr = float(o.InitialLearnRate)
        bn_mode = o.BatchNormalizationStatistics
        if bn_mode == "auto":
            bn_mode = "population" if self.style == "trainNetwork" else "moving"
        out_mode = o.OutputNetwork
        if out_mode == "auto":
            out_mode = ("last-iteration" if self.style == "trainNetwork" or self.val is None
                        else "best-validation-loss")
        if out_mode == "best-validation":
            out_mode = "best-validation-loss"
        bns = _bn_layers(net)
        _reset_bn_state(net, bns)

        # reporting
        verbose = bool(o.Verbose)
        vfreq = int(o.VerboseFrequency)
        validating = self.val is not None
        valfreq = int(o.ValidationFrequency)
        total_iters = ipe * int(o.MaxEpochs)
        if self.style == "trainNetwork":
            table = VerboseTable(self.metric_kind if self.metric_kind in (
                "classification", "regression") else "regression", validating)
        else:
            wanted = [m.lower() for m in (o.Metrics or []) if isinstance(m, str)]
            shown = {"classification": ("accuracy", "Accuracy"),
                     "regression": ("rmse", "RMSE")}.get(self.metric_kind)
            self.metric_column = shown[1] if shown and shown[0] in wanted else None
            table = TrainnetTable(validating, [self.metric_column]
                                  if self.metric_column else [])
        plot = None
        if o.Plots == "training-progress":
            plot = ProgressPlot(self.metric_kind, ipe, int(o.MaxEpochs))
        out_fcns = o.OutputFcn if isinstance(o.OutputFcn, list) else (
            [o.OutputFcn] if o.OutputFcn is not None else [])
        info = {"TrainingLoss": [], "BaseLearnRate": []}
        mkey = "TrainingAccuracy" if self.metric_kind == "classification" else "TrainingRMSE"
        vkey = "ValidationAccuracy" if self.metric_kind == "classification" else "ValidationRMSE"
        info[mkey] = []
        if validating:
            info["ValidationLoss"] = []
            info[vkey] = []
        best = (math.inf, None, 0)
        bad_validations = 0
        reason = "Max epochs completed"
        start = time.perf_counter()
        printed_last = 0
        if verbose:
            if self.style == "trainNetwork":
                print("\n".join(table.header()))
            else:
                print("\n".join(table.header()))
        self._call_outputs(out_fcns, {"State": "start", "Epoch": 0, "Iteration": 0,
                                      "TimeSinceStart": 0.0, "TrainingLoss": None,
                                      "ValidationLoss": None, "BaseLearnRate": lr})
        if validating and self.style != "trainNetwork":
            vl, vm = self._validate()
            if verbose:
                extra = ({"Validation" + self.metric_column: vm}
                         if getattr(self, "metric_column", None) else {})
                print(table.row(Iteration=0, Epoch=0, TimeElapsed=0,
                                LearnRate=float(np.float32(lr)), ValidationLoss=vl, **extra))
        order = np.arange(N)
        if o.Shuffle == "once":
            order = randperm(N) - 1
        iteration = 0
        epoch = 0
        last_row = None
        try:
            for epoch in range(1, int(o.MaxEpochs) + 1):
                if o.Shuffle == "every-epoch":
                    order = randperm(N) - 1
                for k in range(ipe):
                    iteration += 1
                    idx = order[k * B:(k + 1) * B]
                    Xb = [d.batch(idx) for d in self.datas]
                    loss, grads, state, Y, T = self._evaluate(Xb, idx)
                    loss_v = float(_data(loss))
                    metric = _metric(self.metric_kind, Y, T) \
                        if self.metric_kind in ("classification", "regression") else None
                    if math.isnan(loss_v):
                        reason = "Training loss is NaN"
                        self._record(info, mkey, loss_v, metric, lr, vkey, None)
                        last_row = dict(epoch=epoch, iteration=iteration,
                                        time=time.perf_counter() - start, metric=metric,
                                        loss=loss_v, rate=lr)
                        raise _Stop
                    g = {key: np.asarray(v._data, dtype=np.float32)
                         for key, v in zip(((r.Layer, r.Parameter) for r in grads),
                                           (r.Value for r in grads))}
                    # L2 (every learnable with a nonzero learn-rate factor)
                    for key in keys:
                        if np.any(lrf[key]) and np.any(lam * l2f[key]):
                            g[key] = g[key] + np.asarray(lam * l2f[key],
                                                         dtype=np.float32) * params[key]
                    _clip(g, o.GradientThresholdMethod, float(o.GradientThreshold))
                    # solver step (the shared rules)
                    for key in keys:
                        rate = _solvers.scaled_rate(lr, lrf[key], params[key])
                        if rate is None:
                            continue
                        p, s = params[key], states[key]
                        if solver == "sgdm":
                            p, v = _solvers._sgdm_step(p, g[key], s[0], rate,
                                                       float(o.Momentum))
                            states[key] = [v]
                        elif solver == "adam":
                            p, m, v = _solvers._adam_step(
                                p, g[key], s[0], s[1], rate, iteration,
                                float(o.GradientDecayFactor),
                                float(o.SquaredGradientDecayFactor), float(o.Epsilon))
                            states[key] = [m, v]
                        else:
                            p, v = _solvers._rmsprop_step(
                                p, g[key], s[0], rate, float(o.SquaredGradientDecayFactor),
                                float(o.Epsilon))
                            states[key] = [v]
                        params[key] = p.astype(np.float32, copy=False)
                    net.Learnables = Table(("Layer", "Parameter", "Value"),
                                           [(key[0], key[1],
                                             dlarray._from_canonical(params[key], ""))
                                            for key in keys])
                    state = _training_state(state)
                    if len(state):
                        net.State = state
                    # reporting
                    elapsed = time.perf_counter() - start
                    vl = vm = None
                    if validating and (iteration == 1 or iteration % valfreq == 0
                                       or iteration == total_iters):
                        vl, vm = self._validate()
                        if vl < best[0]:
                            best = (vl, _copy_net(net), iteration)
                            bad_validations = 0
                        else:
                            bad_validations += 1
                    self._record(info, mkey, loss_v, metric, lr, vkey, (vl, vm)
                                 if validating else None)
                    row = dict(epoch=epoch, iteration=iteration, time=elapsed, metric=metric,
                               loss=loss_v, rate=lr, val_metric=vm, val_loss=vl)
                    last_row = row
                    if verbose and (iteration == 1 or iteration % vfreq == 0 or
                                    (validating and iteration % valfreq == 0)):
                        self._print_row(table, row)
                        printed_last = iteration
                    if plot is not None:
                        plot.update(iteration, metric, loss_v, vm, vl, lr)
                    stop = self._call_outputs(out_fcns, {
                        "State": "iteration", "Epoch": epoch, "Iteration": iteration,
                        "TimeSinceStart": elapsed, "TrainingLoss": loss_v,
                        "ValidationLoss": vl, "BaseLearnRate": lr,
                        ("TrainingAccuracy" if self.metric_kind == "classification"
                         else "TrainingRMSE"): metric,
                        ("ValidationAccuracy" if self.metric_kind == "classification"
                         else "ValidationRMSE"): vm})
                    if stop:
                        reason = "Stopped by OutputFcn"
                        raise _Stop
                    if validating and math.isfinite(o.ValidationPatience) and \
                            bad_validations >= o.ValidationPatience:
                        reason = "Met validation criterion"
                        raise _Stop
                    if o.CheckpointPath and o.CheckpointFrequencyUnit == "iteration" and \
                            iteration % int(o.CheckpointFrequency) == 0:
                        self._checkpoint(net, iteration)
                if o.CheckpointPath and o.CheckpointFrequencyUnit == "epoch" and \
                        epoch % int(o.CheckpointFrequency) == 0:
                    self._checkpoint(net, iteration)
                if o.LearnRateSchedule == "piecewise" and epoch % int(o.LearnRateDropPeriod) == 0:
                    lr = lr * float(o.LearnRateDropFactor)
        except _Stop:
            pass
        except KeyboardInterrupt:
            reason = "Stopped manually"
        # the last row, validation at the end
        if validating and last_row is not None and last_row.get("val_loss") is None \
                and reason != "Training loss is NaN":
            vl, vm = self._validate()
            last_row["val_loss"], last_row["val_metric"] = vl, vm
            if info.get("ValidationLoss"):
                info["ValidationLoss"][-1] = vl
                info[vkey][-1] = vm
            if vl < best[0]:
                best = (vl, _copy_net(net), iteration)
        if verbose and last_row is not None and printed_last != last_row["iteration"]:
            self._print_row(table, last_row)
        if verbose and self.style == "trainNetwork":
            print("\n".join(table.footer()))
        if out_mode == "best-validation-loss" and best[1] is not None:
            net = best[1]
            out_iter = best[2]
        else:
            out_iter = iteration
        if bn_mode == "population" and bns and iteration > 0:
            net = _population_statistics(net, self.datas, B)
        try:
            self._call_outputs(out_fcns, {"State": "done", "Epoch": epoch, "Iteration": iteration,
                                      "TimeSinceStart": time.perf_counter() - start,
                                          "TrainingLoss": None, "ValidationLoss": None,
                                          "BaseLearnRate": lr})
        except KeyboardInterrupt:
            reason = "Stopped manually"
        if verbose:
            if self.style == "trainNetwork":
                print(f"Training finished: {reason}.")
            else:
                print(f"Training stopped: {reason}")
        fig_path = None
        if plot is not None:
            fig_path = plot.finish(f"Training finished: {reason}")
            if fig_path is not None:
                print(f"Training progress figure saved to {fig_path}")
        out = {k: np.asarray(v, dtype=np.float64) for k, v in info.items()}
        if validating:
            fv, fm = (last_row.get("val_loss"), last_row.get("val_metric")) if last_row \
                else (None, None)
            out["FinalValidationLoss"] = math.nan if fv is None else fv
            out["Final" + vkey] = math.nan if fm is None else fm
        out["OutputNetworkIteration"] = out_iter
        out["StopReason"] = reason
        if fig_path is not None:
            out["TrainingProgressFigure"] = fig_path
        return net, out

    def _record(self, info, mkey, loss, metric, lr, vkey, val):
        info["TrainingLoss"].append(loss)
        info[mkey].append(np.nan if metric is None else metric)
        info["BaseLearnRate"].append(lr)
        if "ValidationLoss" in info:
            vl, vm = val if val is not None else (None, None)
            info["ValidationLoss"].append(np.nan if vl is None else vl)
            info[vkey].append(np.nan if vm is None else vm)

    def _print_row(self, table, row):
        rate = float(np.float32(row["rate"]))
        if self.style == "trainNetwork":
            print(table.row(epoch=row["epoch"], iteration=row["iteration"], time=row["time"],
                            metric=row["metric"], val_metric=row.get("val_metric"),
                            loss=row["loss"], val_loss=row.get("val_loss"), rate=rate))
        else:
            print(table.row(Iteration=row["iteration"], Epoch=row["epoch"],
                            TimeElapsed=row["time"], LearnRate=rate,
                            TrainingLoss=row["loss"], ValidationLoss=row.get("val_loss"),
                            **({"Training" + self.metric_column: row["metric"],
                                "Validation" + self.metric_column: row.get("val_metric")}
                               if getattr(self, "metric_column", None) else {})))

    @staticmethod
    def _call_outputs(fcns, info):
        stop = False
        for f in fcns:
            r = f(dict(info))
            stop = stop or bool(r)
        return stop

    def _checkpoint(self, net, iteration):
        stamp = time.strftime("%Y_%m_%d__%H_%M_%S")
        path = os.path.join(self.o.CheckpointPath,
                            f"net_checkpoint__{iteration}__{stamp}.pkl")
        with open(path, "wb") as f:
            pickle.dump(net, f)


# --------------------------------------------------------------------------- entry points

def _check_options(options, fname):
    if not isinstance(options, _TrainingOptions):
        raise TypeError(f"{fname}: options must be created by trainingOptions, got "
                        f"{type(options).__name__}")


def _build(layers, fname):
    from ..network import dlnetwork
    if hasattr(layers, "Learnables") and hasattr(layers, "forward"):
        net = _copy_net(layers)
        if not net.Initialized:
            # (MATLAB's training initializes a network built with dlnetwork, addLayers
            # or Initialize=false, from its input layers)
            net.initialize(_fname=fname)
    else:
        net = dlnetwork(layers)
    return net


def _input_layers(net, fname):
    """The network's input layers, in InputNames order (training reads its data through
    them)."""
    names = net.InputNames
    if any("/" in n for n in names):
        raise ValueError(f"{fname}: every input of the network must be an input layer "
                         f"(imageInputLayer, featureInputLayer, ...), got the inputs "
                         f"{', '.join(names)}")
    return [net._layers[net._index[n]] for n in names]


def _input_data(net, Xs, fname, options):
    """One _Data per network input, all of the same number of observations."""
    layers = _input_layers(net, fname)
    if len(Xs) != len(layers):
        raise ValueError(f"{fname}: the network has {len(layers)} input(s) "
                         f"({', '.join(net.InputNames)}), got {len(Xs)} set(s) of "
                         f"predictors")
    datas = [_Data(x, _input_kind(lay), fname, options, lay) for x, lay in zip(Xs, layers)]
    if any(d.n != datas[0].n for d in datas):
        raise ValueError(f"{fname}: every input must have the same number of observations, "
                         f"got {', '.join(str(d.n) for d in datas)}")
    return datas


def trainNetwork(X, Y, layers, options=None, *, nargout=1):
    """Train a neural network (MATLAB ``net = trainNetwork(X, Y, layers, options)``, or
    ``trainNetwork(ds, layers, options)`` with a datastore of predictors and responses:
    ``combine(arrayDatastore(X, IterationDimension=4), arrayDatastore(Y))``).

    Parameters
    ----------
    X : numpy array
        Images ``H×W×C×N`` (either memory order), 3-D images ``H×W×D×C×N``, features
        ``N×numFeatures`` (featureInputLayer), or a list of ``C×T`` sequences.
    Y : categorical, or strings/integers (``categorical(Y)``), or numeric responses
        ``N×R`` for regression.
    layers : layer array (list) ending in ``classificationLayer``/``regressionLayer``, or
        a layerGraph.
    options : trainingOptions(...)
    nargout : 1 or 2
        2 also returns ``info`` (a dict with MATLAB's fields ``TrainingLoss``,
        ``TrainingAccuracy``/``TrainingRMSE``, ``BaseLearnRate``, and with validation
        data ``ValidationLoss``, ``ValidationAccuracy``/``ValidationRMSE``,
        ``FinalValidationLoss``, ``FinalValidationAccuracy``/``...RMSE``;
        ``OutputNetworkIteration``).

    Returns
    -------
    SeriesNetwork (layer array) or DAGNetwork (layerGraph), and ``info``.

    Examples
    --------
    MATLAB::

        options = trainingOptions('sgdm', MaxEpochs=4, Verbose=false);
        net = trainNetwork(XTrain, YTrain, layers, options);
        YPred = classify(net, XTest);

    Python::

        options = ml.trainingOptions("sgdm", MaxEpochs=4, Verbose=False)
        net = ml.trainNetwork(XTrain, YTrain, layers, options)
        YPred = ml.classify(net, XTest)
    """
    fname = "trainNetwork"
    ds = None
    if options is None and isinstance(layers, _TrainingOptions):
        ds, layers, options = X, Y, layers
    _check_options(options, fname)
    if nargout not in (1, 2):
        raise ValueError(f"{fname}: nargout must be 1 or 2, got {nargout}")
    series = not _is_graph(layers)
    body, out_layer = _split_output(layers, fname)
    kind = _loss_kind(out_layer, fname)
    net = _build(body, fname)           # initializes empty learnables from ml.rng
    if len(net.OutputNames) != 1:
        raise ValueError(f"{fname}: the network must have one output (its output layer), "
                         f"got {len(net.OutputNames)}; networks with several outputs train "
                         f"with trainnet and a loss function of every output")
    if ds is not None:
        Xs, (Y,) = _datastore_columns(ds, len(net.InputNames), 1, fname)
    else:
        Xs = [X]
    for X in Xs:
        _check_data(X, Y, fname)
    if kind == "classification":
        Yc = Y if _is_sequence_list(Y) else as_categorical(Y, fname)
        if _is_sequence_list(Y):
            cats = sorted({str(v) for y in Y for v in np.asarray(y, dtype=object).reshape(-1)
                           if str(v) not in ("", "<undefined>")}) if not all(
                isinstance(y, categorical) for y in Y) else categories(Y[0])
            Yc_for_classes = categorical(cats)
        else:
            Yc_for_classes = Yc
        cl = out_layer._values.get("Classes")
        classes = categories(Yc_for_classes) if isinstance(cl, str) else [str(c) for c in cl]
        out_layer = _set_classes(out_layer, classes)
        weights = out_layer._values.get("ClassWeights")
        weights = None if isinstance(weights, str) else np.asarray(weights).reshape(-1)
        own = hasattr(out_layer, "_loss")

        def loss_fn(Yo, T):
            if own:                 # (the output layer as finally set up below)
                return out_layer._loss(Yo, T)
            return _crossentropyex(Yo, T, weights)
    else:
        Yc, classes = Y, None
        own = hasattr(out_layer, "_loss")

        def loss_fn(Yo, T):
            if own:
                return out_layer._loss(Yo, T)
            return _half_mse(Yo, T)
    out_layer = _name_output(out_layer, net)
    inputs = _input_layers(net, fname)
    if hasattr(out_layer, "_input_spatial"):
        # (a custom output layer's forwardLoss sees images' scores as 1 x 1 x K x N)
        from ..graph import clone
        out_layer = clone(out_layer)
        object.__setattr__(out_layer, "_input_spatial",
                           {"SSCB": 2, "SSSCB": 3}.get(_input_kind(inputs[0]), 0))
    datas = _input_data(net, Xs, fname, options)
    target_kind = "classification" if kind == "classification" else "regression"
    targets = _Targets(Yc, target_kind, classes, datas[0].n, fname,
                       options.SequencePaddingDirection)
    val = None
    if options.ValidationData is not None:
        Xvs, (Yv,) = _validation_data(options.ValidationData, len(Xs), 1, fname)
        dvs = [_Data(x, d.fmt, fname, options, lay) for x, d, lay in zip(Xvs, datas, inputs)]
        tv = _Targets(as_categorical(Yv, fname) if kind == "classification" and not
                      _is_sequence_list(Yv) else Yv, target_kind, classes, dvs[0].n, fname,
                      options.SequencePaddingDirection)
        val = (dvs, [tv])
    verbose = bool(options.Verbose)
    if verbose and options.ExecutionEnvironment == "auto":
        print("Training on single CPU.")
    if _input_statistics(net, datas, options, fname) and verbose:
        print("Initializing input data normalization.")
    loop = _Loop(net, datas, [targets], loss_fn, options, target_kind, fname, val=val)
    net, info = loop.run()
    cls = SeriesNetwork if series else DAGNetwork
    trained = cls(net, out_layer, target_kind)
    return (trained, info) if nargout == 2 else trained


def _check_data(X, Y, fname):
    if X is None or Y is None:
        raise TypeError(f"{fname}: the predictors X and the responses Y must be given, got "
                        f"{'None' if X is None else type(X).__name__} and "
                        f"{'None' if Y is None else type(Y).__name__}")
    n = len(X) if isinstance(X, (list, tuple)) else (
        np.shape(X._data if isinstance(X, dlarray) else X)[-1] if np.ndim(
            X._data if isinstance(X, dlarray) else X) >= 3 else np.shape(X)[0]
        if np.ndim(X) >= 1 else 0)
    if n == 0:
        raise ValueError(f"{fname}: the training data must have at least one observation, "
                         f"got 0")


def _datastore_columns(ds, n_in, n_out, fname):
    """(predictors, responses): lists of the columns of a datastore (``combine``), the
    network's inputs first, in the layouts training reads: images with observations last,
    features and labels first."""
    if not hasattr(ds, "_columns"):
        raise TypeError(f"{fname}: the data must be a datastore of predictors and "
                        f"responses (combine(...)) in this form, got {type(ds).__name__}")
    cols = ds._columns()
    if len(cols) != n_in + n_out:
        raise ValueError(f"{fname}: the datastore must have {n_in + n_out} columns (one for "
                         f"each of the network's {n_in} input(s), then one for each of its "
                         f"{n_out} output(s)), got {len(cols)}")
    out = []
    for k, (a, axis) in enumerate(cols):
        if isinstance(a, categorical):
            out.append(a)
            continue
        a = np.asarray(a)
        want = a.ndim - 1 if (k < n_in and a.ndim >= 3) else 0
        out.append(np.moveaxis(a, axis, want) if axis != want else a)
    return out[:n_in], out[n_in:]


def _validation_data(v, n_in, n_out, fname):
    """ValidationData as (predictors, responses) lists: a pair (X, Y) of a network of one
    input and output, or a datastore like the training data's."""
    if isinstance(v, tuple) and len(v) == 2 and n_in == n_out == 1:
        return [v[0]], [v[1]]
    if hasattr(v, "_columns"):
        return _datastore_columns(v, n_in, n_out, fname)
    raise ValueError(f"{fname}: ValidationData must be a pair (XValidation, "
                     f"YValidation)" + ("" if n_in == n_out == 1 else
                                        " of a network of one input and output, or a "
                                        "datastore of its inputs and outputs"))


_TRAINNET_LOSSES = {"crossentropy": "crossentropy", "index-crossentropy": "crossentropy",
                    "binary-crossentropy": "binary-crossentropy", "mse": "mse",
                    "l2loss": "mse", "mean-squared-error": "mse", "mae": "mae",
                    "l1loss": "mae", "mean-absolute-error": "mae", "huber": "huber"}


def trainnet(X, *args, nargout=1):
    """Train a neural network (MATLAB ``net = trainnet(X, T, layers, lossFcn, options)``,
    R2023b, or ``trainnet(ds, layers, lossFcn, options)`` with a datastore of predictors
    and targets, ``combine(arrayDatastore(X, IterationDimension=4), arrayDatastore(T))``).

    ``lossFcn``: ``"crossentropy"``, ``"index-crossentropy"``, ``"binary-crossentropy"``,
    ``"mse"``/``"l2loss"``, ``"mae"``/``"l1loss"``, ``"huber"``, or a function
    ``loss(Y, T)`` of dlarrays.  Returns a ``dlnetwork`` (and ``info`` with
    ``nargout=2``: ``TrainingHistory``, ``ValidationHistory``,
    ``OutputNetworkIteration``, ``StopReason``).  Package defaults (§16.9):
    crossentropy divides by the non-channel element count, the others by the element
    count; ``"mse"`` is not halved; the partial mini-batch is discarded.
    """
    fname = "trainnet"
    ds = None
    if len(args) == 3:
        ds, Y = X, None
        layers, lossFcn, options = args
    elif len(args) == 4:
        Y, layers, lossFcn, options = args
    else:
        raise TypeError(f"{fname}: expected trainnet(X, T, layers, lossFcn, options) or "
                        f"trainnet(ds, layers, lossFcn, options), got {1 + len(args)} "
                        f"arguments")
    _check_options(options, fname)
    body, out_layer = _split_output(layers, fname) if not (
        hasattr(layers, "Learnables") and hasattr(layers, "forward")) else (layers, None)
    net = _build(body, fname)
    n_out = len(net.OutputNames)
    if ds is not None:
        Xs, Ys = _datastore_columns(ds, len(net.InputNames), n_out, fname)
    else:
        if n_out != 1:
            raise ValueError(f"{fname}: a network of {n_out} outputs trains on a datastore "
                             f"of its inputs and targets (combine(...)), got arrays")
        Xs, Ys = [X], [Y]
    for X in Xs:
        for Y in Ys:
            _check_data(X, Y, fname)
    metric_kind = None
    if callable(lossFcn):
        user = lossFcn

        def loss_fn(*outs):
            Ys_, Ts_ = outs[:n_out], outs[n_out:]
            return user(*Ys_, *(dlarray._from_canonical(np.asarray(T, dtype=Yo._data.dtype),
                                                         Yo._dims)
                                 for Yo, T in zip(Ys_, Ts_)))
        kind_name = "custom"
    elif isinstance(lossFcn, str) and lossFcn.lower() in _TRAINNET_LOSSES:
        if n_out != 1:
            raise ValueError(f"{fname}: a network of {n_out} outputs needs a loss function "
                             f"of its outputs and targets (lossFcn(Y1, ..., T1, ...)), got "
                             f"{lossFcn!r}")
        kind_name = _TRAINNET_LOSSES[lossFcn.lower()]      # index-crossentropy: integer

        def loss_fn(Yo, T, _k=kind_name):
            return _trainnet_loss(Yo, T, _k)
    else:
        raise ValueError(f"{fname}: lossFcn must be one of "
                         f"{', '.join(repr(k) for k in _TRAINNET_LOSSES)} or a function, got "
                         f"{lossFcn!r}")
    datas = _input_data(net, Xs, fname, options)
    n = datas[0].n

    def is_class(Y):
        return isinstance(Y, categorical) or (
            not isinstance(Y, (np.ndarray, dlarray)) and len(Y) and isinstance(
                list(Y)[0], str)) or (kind_name == "crossentropy" and isinstance(
                    Y, np.ndarray) and Y.dtype.kind in "iuU")
    classes_of, targets = [], []
    if isinstance(lossFcn, str) and lossFcn.lower() == "index-crossentropy":
        # integer class indices 1..K address the output channels directly
        idx = np.asarray(Ys[0]).reshape(-1)
        if idx.dtype.kind not in "iuf" or np.any(idx != np.round(idx)) or np.any(idx < 1):
            raise ValueError(f"{fname}: targets for 'index-crossentropy' must be positive "
                             f"integer class indices")
        K = int(net.predict(*(d.batch(np.arange(1)) for d in datas))._data.shape[0])
        if np.max(idx) > K:
            raise ValueError(f"{fname}: class indices must be at most the number of network "
                             f"outputs ({K}), got {int(np.max(idx))}")
        classes = [str(k) for k in range(1, K + 1)]
        Ys = [categorical(idx.astype(np.int64), list(range(1, K + 1)))]
        targets = [_Targets(Ys[0], "classification", classes, n, fname)]
        classes_of = [classes]
    else:
        for Y in Ys:
            if is_class(Y):
                Yc = as_categorical(Y, fname)
                classes_of.append(categories(Yc))
                targets.append(_Targets(Yc, "classification", classes_of[-1], n, fname))
            else:
                classes_of.append(None)
                targets.append(_Targets(Y, "regression", None, n, fname))
    if n_out == 1:
        metric_kind = "classification" if classes_of[0] is not None else "regression"
    val = None
    if options.ValidationData is not None:
        Xvs, Yvs = _validation_data(options.ValidationData, len(Xs), n_out, fname)
        dvs = [_Data(x, d.fmt, fname, options, lay)
               for x, d, lay in zip(Xvs, datas, _input_layers(net, fname))]
        tvs = [_Targets(as_categorical(Yv, fname) if cl is not None else Yv,
                        "classification" if cl is not None else "regression", cl, dvs[0].n,
                        fname) for Yv, cl in zip(Yvs, classes_of)]
        val = (dvs, tvs)
    _input_statistics(net, datas, options, fname)
    loop = _Loop(net, datas, targets, loss_fn, options, kind_name, fname, val=val,
                 verbose_style="trainnet", metric_kind=metric_kind)
    net, info = loop.run()
    hist = {"Iteration": np.arange(1, len(info["TrainingLoss"]) + 1),
            "TrainingLoss": info["TrainingLoss"], "LearnRate": info["BaseLearnRate"]}
    out = {"TrainingHistory": hist,
           "ValidationHistory": {"ValidationLoss": info.get("ValidationLoss")}
           if val is not None else None,
           "OutputNetworkIteration": info["OutputNetworkIteration"],
           "StopReason": info["StopReason"]}
    return (net, out) if nargout == 2 else net
