"""MATLAB's ``dlnetwork``: one graph executor for chains and layer graphs, its tables,
``forward``/``predict``, ``summary`` and ``analyzeNetwork``.

``ml.dlnetwork(layers)`` takes a layer array (chained in array order), a ``layerGraph``, or
nothing (R2024a: ``dlnetwork()`` then ``addLayers``/``connectLayers``/``initialize``).
Building:

1. copies the layers (MATLAB layers are values: the caller's array is not changed);
2. drops output layers (``classificationLayer``; MATLAB's ``dlnetwork`` rejects them,
   package default, MATLAB_SEMANTICS §2.2) — in a layer array only as the last layer;
3. names unnamed layers and rejects duplicate names (one rule for graphs and networks,
   :func:`mlayers.graph.assign_names`);
4. orders the layers in the stable topological order of their insertion order (§15): a
   chain keeps its order; this is ``net.Layers``;
5. initializes (unless ``Initialize=False``): propagates the activation sizes through the
   graph, which infers every ``'auto'`` size (NumChannels, InputSize, ...), checks formats,
   channel counts and the sizes meeting at a merge layer, and fills empty learnables with
   each layer's initializer in layer order, Weights before Bias, from ``ml.rng``.

Any error names the layer: ``dlnetwork: layer 3 'conv_2' (2-D Convolution): ...``.

**The executor.**  When the structure is final, the network compiles a schedule once: each
layer output gets a slot; each step lists the layer, its input slots and output slots;
network inputs are the first slots (``InputNames`` order).  ``predict`` and ``forward`` walk
the schedule calling each layer's execution contract ``Layer._run(inputs, training,
fname) -> (outputs, state)`` (a single-input, single-output layer with the default ``_run``
is called through ``_forward`` directly in predict).  Format checks run the first time a
given combination of input formats is seen; slots no longer needed are released.

**Inference program.**  ``predict`` (untraced, formats already checked) runs a program
derived from the schedule: a ``batchNormalizationLayer`` whose input is read only from a
``convolution1d/2d/3dLayer`` is folded into that convolution (``W' = W.*a``, ``b' =
b.*a + offset - mean.*a``, ``a = scale./sqrt(var + Epsilon)`` in float64, the
batchnorm inference form), one convolution instead of two passes.  The folded weights are
made once per input dtype and kept while the layers and their parameter values are the
same objects (assigning ``Learnables``/``State`` or a property replaces them).
``ml.package_defaults(network_fold_batchnorm=False)`` runs layer by layer.  A
``reluLayer`` whose input is read by it alone, not asked for as an output, and made by a
layer whose result is always a new array (a convolution, folded or not, or an
``additionLayer`` of two or more inputs) rectifies that array in place: the same kernel
and bits, without a second array and while the values are still in the cache (N4, 1
thread: each ReLU 0.11-0.13 ms -> about half).  Bound to an input size, such a ReLU that
is the next step runs inside its producer's step (``_predict_fn(..., rectify=True)``):
the residual sum's pass, or the convolution's kernel (gemm, channel-wise and conv_cv
rectify their results as they write them; the others get the ReLU pass in that step).
Bound, a residual block's ``additionLayer`` of two inputs runs in the step of the
convolution (folded or not) whose result it alone reads, when its other input is made
before that convolution runs (the block's input, or the main path for a shortcut
convolution scheduled after it), with the ReLU that alone reads the sum: Winograd F(2 x 2,
3 x 3) adds the residual as it transforms the outputs back and rectifies the sum, the
other kernels add it in a pass after; the same sums, no step, array or pass of its own
(N4: all six additions and their ReLUs).

**Training.**  ``Learnables``/``State`` are ``Layer, Parameter, Value`` tables (Value an
unformatted dlarray; rows in layer then property order) and can be assigned (a subset of
rows too).  Inside ``dlfeval`` the network is traced through ``_traced_copy``: a copy whose
layers are copies holding traced dlarrays in ``_values`` for every learnable and state
parameter, so ``dlgradient(loss, net.Learnables)`` differentiates the forward pass.
"""
import copy
import operator

import numpy as np

from . import _autodiff, _defaults, _display, _ops, _ops_norm, _props
from ._cache import LRUCache
from ._options import parse_name_value
from ._predict import register
from ._props import Compiled, Layer, LayerArray, layer_array
from ._table import Table
from ._validate import Where
from .dlarray import as_formatted, dlarray, networkDataLayout, stripdims
from .graph import GraphBase, LayerGraph, clone, input_names, layer_type, shallow_copy
from .layers._conv_family import ConvLayer, GroupedConvLayer
from .functional.activations import relu
from .layers.activation import ReLULayer
from .layers.batchnorm import BatchNormalizationLayer
from .layers.merge import AdditionLayer
from .layers.pooling import MaxPooling2DLayer
from .layers.input import InputLayer, logical

__all__ = ["Table", "analyzeNetwork", "dlnetwork", "summary", "forward", "initialize",
           "resetState", "getLayer", "addInputLayer", "setLearnRateFactor", "getLearnRateFactor",
           "setL2Factor", "getL2Factor", "NetworkAnalysis"]

_OPTIONS = ("Initialize", "OutputNames")
_RUN_OPTIONS = ("DataFormat", "InputDataFormats", "Outputs")


# --------------------------------------------------------------------------- helpers

class _Spec:
    """What a layer's format check needs of an activation: its format."""

    __slots__ = ("dims",)

    def __init__(self, dims):
        self.dims = dims


_type = layer_type


def _learnable_names(layer):
    return type(layer)._learnable_names()


def _state_names(layer):
    return getattr(layer, "_state_parameters", ())


def _strip_fname(message):
    head, sep, rest = message.partition(": ")
    if sep and " " not in head:
        return rest
    return message


def _layer_error(fname, index, layer, exc, sources=None):
    """The same exception type, with the layer's index, name and type in the message."""
    msg = (f"{fname}: layer {index} '{layer.Name}' ({_type(layer)}): "
           f"{_strip_fname(str(exc))}")
    if sources:
        msg += "; its inputs come from " + ", ".join(f"'{s}' ({p})" for s, p in sources)
    return type(exc)(msg) if isinstance(exc, (ValueError, TypeError)) else ValueError(msg)


def _input_spec(layer):
    """(format, shape with one observation) of what an input layer outputs first."""
    if hasattr(layer, "_input_spec"):
        return layer._input_spec()
    size = layer._values["InputSize"]
    ctor = layer._constructor
    if ctor in ("imageInputLayer", "image3dInputLayer"):
        s = tuple(int(v) for v in np.ravel(size))
        return "S" * (len(s) - 1) + "CB", s + (1,)
    if ctor == "featureInputLayer":
        return "CB", (int(np.ravel(size)[0]), 1)
    t = layer._values.get("MinLength", 1)
    if np.ndim(size) == 0:
        return "CBT", (int(size), 1, t)
    s = tuple(int(v) for v in size)
    return "S" * (len(s) - 1) + "CBT", s + (1, t)


def _count(n):
    """MATLAB summary style: 1234 -> '1.2k', 1234567 -> '1.2M' (inferred)."""
    if n < 1000:
        return str(n)
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if n >= div:
            return f"{n / div:.1f}{suffix}"
    return str(n)


def _activation_text(dims, shape):
    return " × ".join(f"{s}({d})" for s, d in zip(shape, dims)).replace(
        "×", _display.times())


def _param_value(v):
    """A parameter as a table Value: an unformatted dlarray (the traced one as it is)."""
    if isinstance(v, dlarray):
        return v
    if v is None:
        return dlarray._from_canonical(np.zeros((0, 0), np.float32), "")
    return dlarray._from_canonical(v, "")


def _numeric(v, fname, what):
    d = v._data if isinstance(v, dlarray) else np.asarray(v)
    if d.dtype not in (np.float32, np.float64):
        if d.dtype.kind in "iub":
            d = d.astype(np.float64)
        else:
            raise TypeError(f"{fname}: {what} must be a single or double array, got "
                            f"{d.dtype}")
    return d


def _fit_shape(d, old):
    """``d`` in the shape of the parameter it replaces (vectors may come as C vectors)."""
    if old is not None and not isinstance(old, dlarray) and d.shape != old.shape \
            and d.size == old.size:
        return d.reshape(old.shape, order="F")
    return d


class _Plan:
    """The compiled schedule of a network (module docstring)."""

    __slots__ = ("steps", "nslots", "slot", "inputs", "outputs", "out_slots", "run",
                 "release", "checked", "sources", "producer", "subplans", "programs",
                 "relu_fusions")


def _foldable_conv(layer):
    """A convolution whose output batch normalization can be folded into."""
    if not isinstance(layer, ConvLayer) or isinstance(layer, GroupedConvLayer):
        return False
    v = layer._values
    return all(type(v[k]) is np.ndarray for k in ("Weights", "Bias"))


def _foldable_bn(layer):
    if type(layer) is not BatchNormalizationLayer:
        return False
    v = layer._values
    return all(type(v[k]) is np.ndarray for k in ("Offset", "Scale", "TrainedMean",
                                                  "TrainedVariance"))


class _FoldedConvBN:
    """A convolution followed by batch normalization, run as one convolution (module
    docstring, inference program), valid while the layers' parameter values are the
    objects the folded weights were made from (:meth:`parts`; the program checks them and
    the layers)."""

    __slots__ = ("conv", "bn", "key", "clones")

    def __init__(self, conv, bn):
        self.conv, self.bn = conv, bn
        self.key = self._key()
        self.clones = {}

    _NAMES = (("Weights", "Bias"), ("Offset", "Scale", "TrainedMean", "TrainedVariance",
                                    "Epsilon"))

    def parts(self):
        """``(values, name, value folded)`` for each parameter value folded: the program
        runs while every ``values[name] is value`` (and the layers are the same objects)."""
        return [(layer._values, k, layer._values[k])
                for layer, names in zip((self.conv, self.bn), self._NAMES) for k in names]

    def _key(self):
        return tuple(v for _, _, v in self.parts())

    def _clone(self, dtype):
        """The convolution with the folded weights, for inputs of ``dtype``."""
        W, bias, off, sc, mean, var, eps = self.key
        # the batchnorm inference form (functional/normalization.py), in float64
        invstd = 1.0 / np.sqrt(var.reshape(-1).astype(np.float64) + eps)
        a = sc.reshape(-1) * invstd
        shift = off.reshape(-1) - mean.reshape(-1).astype(np.float64) * a
        out = np.float32 if all(np.dtype(d) == np.float32 for d in (
            dtype, W.dtype, bias.dtype, off.dtype, sc.dtype, mean.dtype, var.dtype)) \
            else np.float64
        # (Fortran order: the kernels' layout is its transpose, so no copy per call)
        w2 = np.asfortranarray((W.astype(np.float64) * a).astype(out))
        # (only this program holds them: read-only, so kernels may keep what they derive
        # from them, _ops._w22_weights)
        w2.setflags(write=False)
        b2 = (bias.reshape(-1).astype(np.float64) * a + shift).astype(out)
        c = copy.copy(self.conv)
        values = dict(self.conv._values)
        values["Weights"] = w2
        values["Bias"] = b2.reshape(bias.shape)
        object.__setattr__(c, "_values", values)
        object.__setattr__(c, "_memo", LRUCache())   # plans hold packed weights
        return c

    def _for(self, dtype):
        c = self.clones.get(dtype)
        if c is None:
            c = self.clones[dtype] = self._clone(dtype)
        return c

    def _forward(self, X, fname):
        return self._for(X._data.dtype)._forward(X, fname)

    def _predict_fn(self, specs, fname, rectify=False, residual=False, pool=False):
        return self._for(specs[0][2])._predict_fn(specs, fname, rectify, residual, pool)


#: steps whose ``_predict_fn`` takes ``rectify``: the ReLU of their result in the same step
_RECTIFYING = (AdditionLayer, ConvLayer, _FoldedConvBN)
#: ... and ``residual``: an addition to their result in the same step
_RESIDUAL = (ConvLayer, _FoldedConvBN)


def _wrapped_forward(forward, dims, fname):
    """A bound step (dlnetwork._bind) for a layer without a _predict_fn: its _forward
    on the array wrapped in its format."""
    def run(x):
        return forward(dlarray._from_canonical(x, dims), fname)._data
    return run


def _wrapped_run(layer, dims, nout, fname):
    """The same for a general step: _run on the wrapped inputs."""
    def run(*xs):
        ys, _ = layer._run([dlarray._from_canonical(x, d) for x, d in zip(xs, dims)],
                           False, fname)
        return ys[0]._data if nout == 1 else [y._data for y in ys]
    return run


def _relu_in_place(X, fname):
    """A ReLU step of the inference program on an array no one else holds (module
    docstring): rectified in place."""
    if type(X) is dlarray and _ops_norm.relu_in_place(X._data):
        return X
    return relu(X)


# --------------------------------------------------------------------------- dlnetwork

class dlnetwork(GraphBase, Compiled):  # MATLAB's class name
    """Deep learning network for custom training loops and prediction (MATLAB's
    ``dlnetwork``), from a layer array, a layer graph, or nothing.

    Parameters
    ----------
    layers : sequence of layers, LayerGraph, or None
        A layer array (chained in order) or a ``layerGraph``; ``None`` (or no argument)
        makes an empty network to build with ``addLayers``/``connectLayers``.
    *X : dlarray, optional
        Example inputs (MATLAB's ``dlnetwork(layers, X1, ..., XN)``): formatted dlarrays
        for the unconnected inputs (``InputNames`` that are not input layers), in order.
    Initialize : bool, default True
        ``False`` builds an uninitialized network; call ``ml.initialize(net, X...)`` later.
    OutputNames : str or list of str, optional
        The network outputs (default: every unconnected layer output, in layer order).

    Attributes
    ----------
    Layers : LayerArray
        The layers in the stable topological order of their insertion order.
    Connections : Table
        ``Source``, ``Destination``.
    Learnables, State : Table
        ``Layer, Parameter, Value`` (Value an unformatted dlarray); assignable.
    InputNames, OutputNames : list of str
    Initialized : bool

    Examples
    --------
    MATLAB::

        layers = [imageInputLayer([28 28 1]); convolution2dLayer(3,8); reluLayer];
        net = dlnetwork(layers);
        Y = predict(net, dlarray(rand(28,28,1,16,'single'),'SSCB'));

    Python::

        >>> layers = [ml.imageInputLayer([28, 28, 1]), ml.convolution2dLayer(3, 8),
        ...           ml.reluLayer()]
        >>> net = ml.dlnetwork(layers)
        >>> Y = ml.predict(net, ml.dlarray(ml.rand(28, 28, 1, 16, "single"), "SSCB"))
        >>> Y.dims, Y.shape
        ('SSCB', (26, 26, 8, 16))
    """

    _compiled = {"_plan": lambda: None}     # (its schedule: compiled again on use)

    def __init__(self, layers=None, *args, **kwargs):
        fname = "dlnetwork"
        examples = []
        args = list(args)
        while args and not isinstance(args[0], (str, np.str_)):
            examples.append(args.pop(0))
        options = parse_name_value(fname, args, kwargs, _OPTIONS)
        init = logical(options.get("Initialize", True), Where(fname, "Initialize"))
        self._graph_init()
        self.Initialized = False
        self._activations = None
        self._plan = None
        self._output_names = None
        if layers is None:
            return
        if isinstance(layers, GraphBase):
            self._from_graph(layers, fname)
        else:
            self._from_array(layers, fname)
        if "OutputNames" in options:
            names = options["OutputNames"]
            names = [names] if isinstance(names, str) else list(names)
            for n in names:
                self._endpoint(n, True, fname)
            self._output_names = names
        self._sort(fname)
        if init:
            entries = self._input_entries()
            free = [e for e in entries if e[1] is not None]
            if free and not examples and len(self._layers) and \
                    free[0][0] == self._layers[0].Name and not isinstance(
                        self._layers[0], InputLayer) and len(free) == 1:
                first = self._layers[0]
                raise ValueError(
                    f"dlnetwork: the first layer must be an input layer (imageInputLayer or "
                    f"sequenceInputLayer), got layer 1 '{first.Name}' ({_type(first)}); "
                    f"give example inputs, dlnetwork(layers, X), or Initialize=False")
            self._initialize(examples, fname)
        elif examples:
            raise ValueError("dlnetwork: example inputs need Initialize=True")

    # ------------------------------------------------------------- building

    def _from_array(self, layers, fname):
        items = list(layer_array(layers))
        if not items:
            raise ValueError("dlnetwork: layers must contain at least one layer, got an "
                             "empty array")
        for i, layer in enumerate(items[:-1], start=1):
            if getattr(layer, "_is_output_layer", False):
                raise ValueError(f"dlnetwork: layer {i} '{layer.Name}' ({_type(layer)}) "
                                 f"is an output layer; output layers may only be the "
                                 f"last layer (dlnetwork drops it)")
        if getattr(items[-1], "_is_output_layer", False):
            items.pop()
            if not items:
                raise ValueError("dlnetwork: layers must contain a layer besides the output "
                                 "layer")
        for i, layer in enumerate(items[1:], start=2):
            if isinstance(layer, InputLayer):
                # A misplaced layer is a value error, not a type error.
                raise ValueError(  # noqa: TRY004
                    f"dlnetwork: layer {i} '{layer.Name}' ({_type(layer)}) is an input "
                    f"layer; an input layer must be the first layer")
        self._add_layers(items, fname)

    def _from_graph(self, g, fname):
        keep = [clone(layer) for layer in g._layers
                if not getattr(layer, "_is_output_layer", False)]
        names = {layer._values["Name"] for layer in keep}
        self._layers = LayerArray(keep)
        self._conns = [c for c in g._conns if c[0] in names and c[2] in names]
        self._reindex()

    def _changed(self):
        self._plan = None
        self._activations = None
        self.Initialized = False

    def _sort(self, fname):
        order = self._topological_order(fname)
        if order != list(range(len(order))):
            self._layers = LayerArray(self._layers[i] for i in order)
            self._reindex()

    def _input_entries(self):
        """Network inputs in InputNames order: (layer, None) for an input layer,
        (layer, port) for an unconnected input port."""
        connected = {(c[2], c[3]) for c in self._conns}
        out = []
        for layer in self._layers:
            name = layer._values["Name"]
            ins = input_names(layer)
            if not ins:
                out.append((name, None))
            else:
                out.extend((name, k) for k in range(len(ins)) if (name, k) not in connected)
        return out

    def _output_entries(self, fname):
        if self._output_names is not None:
            return [self._endpoint(n, True, fname) for n in self._output_names]
        return self._free_outputs()

    def _compile(self, fname="predict"):
        """The schedule (module docstring); once per structure."""
        self._sort(fname)
        p = _Plan()
        entries = self._input_entries()
        in_slot = {e: k for k, e in enumerate(entries)}
        in_edges = self._in_edges()
        slot = {}
        n = len(entries)
        steps, sources = [], []
        for i, layer in enumerate(self._layers):
            name = layer._values["Name"]
            nin = len(input_names(layer))
            if nin == 0:
                ins = (in_slot[(name, None)],)
                srcs = ()
            else:
                ins = tuple(slot[in_edges[(name, k)]] if (name, k) in in_edges
                            else in_slot[(name, k)] for k in range(nin))
                srcs = tuple((in_edges[(name, k)][0] if (name, k) in in_edges else "input",
                              input_names(layer)[k]) for k in range(nin))
            nout = len(layer.OutputNames)
            outs = tuple(range(n, n + nout))
            for k in range(nout):
                slot[(name, k)] = n + k
            n += nout
            fast = (type(layer)._run is Layer._run or layer._one_output_run_is_forward) \
                and nin <= 1 and nout == 1
            steps.append((i, ins, outs, fast))
            sources.append(srcs if nin > 1 else ())
        p.steps, p.nslots, p.slot, p.inputs, p.sources = steps, n, slot, entries, sources
        outputs = self._output_entries(fname)
        p.outputs = outputs
        p.out_slots = [slot[o] for o in outputs]
        p.producer = {k: i for i, _, outs, _ in steps for k in outs}
        p.run = self._needed_steps(p, p.out_slots)
        p.subplans = {}
        # release a slot after its last reader, unless it is an output
        last_use = {}
        for i, ins, _, _ in steps:
            for k in ins:
                last_use[k] = i
        keep = set(p.out_slots)
        release = [[] for _ in steps]
        for k, i in last_use.items():
            if k not in keep:
                release[i].append(k)
        p.release = [tuple(r) for r in release]
        p.checked = set()
        p.programs = {}
        p.relu_fusions = {}
        self._plan = p
        return p

    def _program(self, p, run, release, slots):
        """The inference program for these steps (module docstring): a list of
        ``(step index, callable, input slot, output slot, slots to release, folded
        step index)`` (a single-input single-output layer called through ``_forward``,
        or with input and output slot None the general ``_run`` of a step), and the
        guards that keep the folded weights valid."""
        layers = self._layers
        readers = {}
        for i, ins, _, _ in run:
            for k in ins:
                readers.setdefault(k, []).append(i)
        by_index = {step[0]: step for step in run}
        folded, skip, guards = {}, set(), []
        if _defaults.get("network_fold_batchnorm"):
            for i, ins, outs, fast in run:
                if not fast or not _foldable_conv(layers[i]):
                    continue
                r = readers.get(outs[0], ())
                if len(r) != 1 or outs[0] in slots:
                    continue
                j = r[0]
                nxt = by_index[j]
                if not nxt[3] or not _foldable_bn(layers[j]):
                    continue
                f = _FoldedConvBN(layers[i], layers[j])
                folded[i] = (f, j)
                skip.add(j)
                guards.append(f)
        # ReLUs that may rectify their input in place (module docstring)
        in_place = set()
        for i, ins, outs, fast in run:
            if not fast or type(layers[i]) is not ReLULayer or ins[0] in slots \
                    or len(readers.get(ins[0], ())) != 1 or ins[0] not in p.producer:
                continue
            j = p.producer[ins[0]]
            maker = layers[j]
            # (j in skip: a batch normalization folded into its convolution's step)
            if j in skip or isinstance(maker, ConvLayer) or (
                    type(maker) is AdditionLayer and maker._values["NumInputs"] >= 2):
                in_place.add(i)
        prog = []
        for i, ins, outs, fast in run:
            if i in skip:
                continue
            rel = release[i] if release is not None else ()
            if not fast:
                prog.append((i, (layers[i], ins, outs), None, None, rel, None))
            elif i in folded:
                f, j = folded[i]
                rel = rel + (release[j] if release is not None else ())
                prog.append((i, f._forward, ins[0], by_index[j][2][0], rel, j))
            else:
                fn = _relu_in_place if i in in_place else layers[i]._forward
                prog.append((i, fn, ins[0], outs[0], rel, None))
        return prog, guards

    def _run_program(self, p, Xs, run, release, slots, check, fname):
        """predict through the inference program (module docstring); with ``check`` the
        layers' format checks run as in :meth:`_execute` (a folded batch normalization
        checks the folded step's output, which has its input's format).  Inputs of a
        format, size and dtype seen before run the program bound to them (:meth:`_bind`)."""
        key = (tuple(slots), _defaults.get("network_fold_batchnorm"),
               _defaults.get("network_compile"))
        entry = p.programs.get(key)
        layers = self._layers
        # the same layer objects (the entry holds them, so no id is reused), no property
        # assigned since (the program keeps what it worked out from them), the same
        # folded parameter values
        if entry is not None:
            prog, guards, members, bound = entry
            # (list equality: identity first, and layers compare by identity alone)
            if (members[0] != _props.ASSIGNMENTS or layers != members[1]
                    or (guards[0] and not all(map(
                        operator.is_, map(dict.__getitem__, *guards[1:3]), guards[3])))):
                entry = None
        if entry is None:
            prog, folded = self._program(p, run, release, slots)
            # (the folded parameter values, _FoldedConvBN.parts, as three lists checked in
            # one pass)
            guards = (folded, *map(list, zip(*[(d, k, v) for f in folded
                                               for d, k, v in f.parts()]))) \
                if folded else (folded, [], [], [])
            bound = LRUCache()
            entry = p.programs[key] = (prog, guards, (_props.ASSIGNMENTS, list(layers)),
                                       bound)
        sig = tuple([(x._dims, x._data.shape, x._data.dtype) for x in Xs])
        steps = None if check else bound.get(sig)
        if steps:
            return self._run_bound(steps, p, Xs, slots, fname)
        specs = dict(enumerate(sig)) if steps is None else None     # (False: never bound)
        vals = [None] * p.nslots
        vals[:len(Xs)] = Xs
        step = i = None
        try:
            for step in prog:
                i = step[0]
                if check:
                    for k in (step[1][1] if step[2] is None else (step[2],)):
                        layers[i]._check_format(vals[k], fname)
                if step[2] is not None:
                    outs = (step[3],)
                    vals[step[3]] = step[1](vals[step[2]], fname)
                    if check and step[5] is not None:
                        i = step[5]
                        layers[i]._check_format(vals[step[3]], fname)
                else:
                    layer, ins, outs = step[1]
                    ys, _ = layer._run([vals[k] for k in ins], False, fname)
                    for k, y in zip(outs, ys):
                        vals[k] = y
                if specs is not None:
                    for k in outs:
                        d = getattr(vals[k], "_data", None)
                        specs[k] = (vals[k]._dims, d.shape, d.dtype) \
                            if isinstance(d, np.ndarray) else None
                for k in step[4]:
                    vals[k] = None
        except (ValueError, TypeError) as exc:
            raise _layer_error(fname, i + 1, layers[i], exc, p.sources[i]) from exc
        if specs is not None:
            try:
                bound[sig] = self._bind(prog, specs, slots, fname)
            except (ValueError, TypeError):
                bound[sig] = False      # (what cannot be bound keeps running unbound)
        return vals

    def _bind(self, prog, specs, slots, fname):
        """The inference program bound to one format, size and dtype of the inputs: steps
        ``(function, input slots, output slots, slots to release, step index)`` on the
        slots' arrays (``specs``: each slot's format, size and dtype, from a run).  A
        layer's :meth:`Layer._predict_fn` where it has one and its inputs are float
        arrays, else its ``_forward``/``_run`` on the arrays wrapped.  A convolution runs
        in its step the ReLU that alone reads its result, the residual block's addition
        that alone reads it (:meth:`_residual_steps`) and the max pooling after them that
        its kernel can do (:meth:`_pooling_step`).  False (never bound) with an output
        that is not an array, or an empty one (empty batches keep the layers' per-call
        rule, ``package_defaults(empty_batch=...)``)."""
        if any(v is None or 0 in v[1] for v in specs.values()):
            return False
        steps = []
        skip = {}           # program step -> the slots it would have released
        made, readers = {}, {}
        for n, (_, fn, k_in, k_out, _, _) in enumerate(prog):
            for k in ((k_in,) if k_in is not None else fn[1]):
                readers[k] = readers.get(k, 0) + 1
            for k in ((k_out,) if k_in is not None else fn[2]):
                made[k] = n
        residual = self._residual_steps(prog, specs, slots, made, readers)
        for n, (i, fn, k_in, k_out, rel, _) in enumerate(prog):
            if n in skip:
                if steps:       # (released one step later than the step's own place)
                    f, ins, outs, r, j = steps[-1]
                    steps[-1] = (f, ins, outs, r + skip[n], j)
                continue
            ins = (k_in,) if k_in is not None else fn[1]
            spec = tuple(specs[k] for k in ins)
            floats = all(v[2] in (np.float32, np.float64) for v in spec)
            layer, outs = (fn[0], fn[2]) if k_in is None else (
                getattr(fn, "__self__", None), (k_out,))
            f = None
            if floats and len(outs) == 1 and hasattr(layer, "_predict_fn"):
                # the addition of a residual block in the same step
                if n in residual:
                    m, other, relu_step = residual[n]
                    f = layer._predict_fn(spec, fname, rectify=relu_step is not None,
                                          residual=True)
                    if f is not None:
                        ins = (k_in, other)
                        outs = (prog[relu_step][3],) if relu_step is not None \
                            else prog[m][1][2]
                        skip[m] = prog[m][4]
                        if relu_step is not None:
                            skip[relu_step] = prog[relu_step][4]
                        steps.append((f, ins, outs, rel, i))
                        continue
                nxt = prog[n + 1] if n + 1 < len(prog) else None
                # the ReLU that alone reads this result, in the same step (in the same
                # pass or kernel where the layer can)
                rectify = (nxt is not None and nxt[1] is _relu_in_place
                           and nxt[2] == outs[0] and isinstance(layer, _RECTIFYING))
                f = (layer._predict_fn(spec, fname, rectify=True) if rectify
                     else layer._predict_fn(spec, fname))
                if f is not None and rectify:
                    outs, rel = (nxt[3],), rel + nxt[4]
                    skip[n + 1] = ()
                # ... and the max pooling after them, as the kernel writes its planes
                m = n + 1 + rectify
                if f is not None and isinstance(layer, _RESIDUAL) and m < len(prog):
                    pooled = self._pooling_step(prog[m], outs[0], specs, readers, slots,
                                                fname)
                    fp = pooled and layer._predict_fn(spec, fname, rectify=rectify,
                                                      pool=True)
                    if fp:
                        f = _ops.with_state(fp, pooled[0]._state, pooled[1])
                        outs, rel = (prog[m][3],), rel + prog[m][4]
                        skip[m] = ()
            if f is None and fn is _relu_in_place and floats:
                f = _ops_norm.relu_in_place_or_new
            elif f is None:
                f = (_wrapped_run(layer, [v[0] for v in spec], len(outs), fname)
                     if k_in is None else _wrapped_forward(fn, spec[0][0], fname))
            steps.append((f, ins, outs, rel, i))
        if _defaults.get("network_compile"):
            steps = self._compiled_chains(steps, specs)
        return steps, {k: v[0] for k, v in specs.items()}

    @staticmethod
    def _compiled_chains(steps, specs):
        """The bound steps with each chain of two or more kernel calls that a compiled
        program can run (:func:`_ops.program`) as one step: steps whose functions carry
        their kernel call (``program``), of one input and one output of one float dtype,
        each reading the result of the step before it, which nothing else reads."""
        out, chain = [], []

        def close():
            if sum(st[0].program.kernel != "same" for st in chain) >= 2:
                shapes = [specs[chain[0][1][0]][1]] + [specs[st[2][0]][1] for st in chain]
                fn = _ops.program([st[0].program for st in chain], shapes, dtype,
                                  keep=[st[0] for st in chain])
                inside = {st[2][0] for st in chain[:-1]}    # (never set: nothing to free)
                out.append((fn, chain[0][1], chain[-1][2],
                            tuple(k for st in chain for k in st[3] if k not in inside),
                            chain[-1][4]))
            else:
                out.extend(chain)
            chain.clear()

        dtype = None
        for step in steps:
            f, ins, outs, rel, i = step
            p = getattr(f, "program", None)
            t = specs[ins[0]][2] if len(ins) == 1 else None
            usable = (p is not None and len(outs) == 1 and t in (np.float32, np.float64)
                      and specs[outs[0]][2] == t and p.dtype in (None, t))
            if chain and not (usable and t == dtype and ins[0] == chain[-1][2][0]
                              and ins[0] in rel):
                close()
            if usable:
                chain.append(step)
                dtype = t
            else:
                out.append(step)
        close()
        return out

    @staticmethod
    def _pooling_step(step, k, specs, readers, slots, fname):
        """``(pooling layer, its state after a run)`` when program ``step`` is a max
        pooling a convolution's kernel can do as it writes its planes (the pooling layer's
        ``_max22_state``) of slot ``k``, which it alone reads and is not an output; else
        None."""
        layer = getattr(step[1], "__self__", None)
        if step[2] != k or readers.get(k) != 1 or k in slots \
                or not isinstance(layer, MaxPooling2DLayer):
            return None
        state = layer._max22_state((specs[k],), fname)
        return None if state is None else (layer, state)

    @staticmethod
    def _residual_steps(prog, specs, slots, made, readers):
        """{program step of a convolution: (its addition's step, the addition's other
        input slot, the step of the ReLU that alone reads the sum or None)} for the
        additions a convolution's step can run (:meth:`_bind`): two inputs of one format,
        size and float dtype, the convolution's result read by the addition alone and not
        an output, the other input made before the convolution runs (``made``: each slot's
        program step; ``readers``: each slot's count of readers)."""
        found = {}
        for m, (i, fn, k_in, k_out, rel, _) in enumerate(prog):
            if k_in is not None or type(fn[0]) is not AdditionLayer or len(fn[1]) != 2:
                continue
            for k, other in (fn[1], fn[1][::-1]):
                n = made.get(k)
                if (n is None or readers[k] != 1 or k in slots or specs[k] != specs[other]
                        or specs[k][2] not in (np.float32, np.float64)
                        or made.get(other, -1) >= n or n in found):
                    continue
                step = prog[n]
                if step[2] is None or not isinstance(getattr(step[1], "__self__", None),
                                                     _RESIDUAL):
                    continue
                nxt = prog[m + 1] if m + 1 < len(prog) else None
                relu_step = (m + 1 if nxt is not None and nxt[1] is _relu_in_place
                             and nxt[2] == fn[2][0] else None)
                found[n] = (m, other, relu_step)
                break
        return found

    def _run_bound(self, bound, p, Xs, slots, fname):
        steps, dims = bound
        vals = [None] * p.nslots
        vals[:len(Xs)] = [x._data for x in Xs]
        i = None
        try:
            for f, ins, outs, rel, i in steps:
                y = f(vals[ins[0]]) if len(ins) == 1 else f(*[vals[k] for k in ins])
                if len(outs) == 1:
                    vals[outs[0]] = y
                else:
                    for k, v in zip(outs, y):
                        vals[k] = v
                for k in rel:
                    vals[k] = None
        except (ValueError, TypeError) as exc:
            raise _layer_error(fname, i + 1, self._layers[i], exc, p.sources[i]) from exc
        for k in slots:
            vals[k] = dlarray._from_canonical(vals[k], dims[k])
        return vals

    @staticmethod
    def _needed_steps(p, slots):
        """The steps the given output slots depend on, in schedule order."""
        need = set()
        stack = [p.producer[k] for k in slots if k in p.producer]
        while stack:
            i = stack.pop()
            if i not in need:
                need.add(i)
                stack.extend(p.producer[k] for k in p.steps[i][1] if k in p.producer)
        return [step for step in p.steps if step[0] in need]

    def initialize(self, *X, _fname="initialize"):
        """Initialize the network in place (MATLAB's ``net = initialize(net, X...)``);
        returns it.  ``X``: example inputs for the unconnected inputs, in order.
        Learnables that are already set are kept."""
        self._initialize(list(X), _fname)
        return self

    def _initialize(self, X, fname, issues=None):
        p = self._compile(fname)
        # initialization fills the layers in place: first make them this network's own
        # (graph functions share unchanged layers between a network and its copies)
        self._layers = layers = LayerArray(clone(layer) for layer in self._layers)
        entries = p.inputs
        free = [e for e in entries if e[1] is not None]
        if len(X) != len(free):
            if not free:
                first = layers[self._index[entries[0][0]]] if entries else None
                raise ValueError(
                    f"{fname}: example inputs are only for networks without an input "
                    f"layer; layer 1 '{first.Name if first else ''}' is an input layer"
                    if first is not None and len(entries) == 1 else
                    f"{fname}: the network has no unconnected inputs, got {len(X)} "
                    f"example inputs")
            texts = [self._port_text(n, k, False) for n, k in free]
            if issues is None:
                raise ValueError(f"{fname}: the network has unconnected inputs "
                                 f"({', '.join(texts)}); connect them or give one example "
                                 f"input for each, got {len(X)}")
            for (n, _), t in zip(free, texts):
                issues.append((n, "Error", f"Missing input '{t}'. Each layer input must be "
                                           f"connected to the output of another layer."))
            X = []
        spec = [None] * p.nslots
        ex = iter(X)
        for k, (name, port) in enumerate(entries):
            if port is None:
                spec[k] = _input_spec(layers[self._index[name]])
            else:
                x = next(ex, None)
                if x is None:
                    continue
                if isinstance(x, networkDataLayout):
                    # (MATLAB's initialize(net, layout): the sizes without data; NaN, a
                    # size not known, counts as one)
                    if not x.Format:
                        raise ValueError(f"{fname}: a networkDataLayout example input "
                                         f"must be formatted, got an unformatted layout")
                    # (labels in any order, as dlarray's: put in canonical order)
                    canon = dlarray(np.zeros([1 if v != v else v for v in x.Size]), x.Format)
                    dims, shape = canon.dims, canon.shape
                else:
                    example = as_formatted(x, None, fname)
                    dims, shape = example.dims, example.shape
                if "B" in dims:          # sizes per observation; the batch size is not fixed
                    b = dims.index("B")
                    shape = shape[:b] + (1,) + shape[b + 1:]
                spec[k] = (dims, tuple(shape))
        acts = []
        for (i, ins, outs, _), srcs in zip(p.steps, p.sources):
            layer = layers[i]
            in_specs = [spec[k] for k in ins]
            if any(s is None for s in in_specs):
                acts.append(None)
                continue
            try:
                for dims, _shape in in_specs:
                    layer._check_format(_Spec(dims), fname)
                self._initialize_layer(layer, in_specs, fname)
                out_specs = self._propagate(layer, in_specs, fname)
            except (ValueError, TypeError) as exc:
                err = _layer_error(fname, i + 1, layer, exc, srcs)
                if issues is None:
                    raise err from exc
                issues.append((layer.Name, "Error", str(err)))
                acts.append(None)
                continue
            out_specs = [(d, tuple(int(s) for s in sh)) for d, sh in out_specs]
            for k, o in zip(outs, out_specs):
                spec[k] = o
            acts.append(out_specs)
        self._activations = acts
        if issues is None or not any(t == "Error" for _, t, _ in issues):
            self.Initialized = True

    @staticmethod
    def _initialize_layer(layer, in_specs, fname):
        dims, shape = in_specs[0]
        if hasattr(layer, "_initialize_specs"):      # every input's (custom layers)
            layer._initialize_specs(in_specs, fname)
        elif hasattr(layer, "_initialize_for"):
            layer._initialize_for(dims, shape, fname)
        elif isinstance(layer, InputLayer):
            layer.initialize(fname=fname)
        elif type(layer).initialize is not Layer.initialize and "C" in dims:
            layer.initialize(int(shape[dims.index("C")]), fname=fname)

    @staticmethod
    def _propagate(layer, in_specs, fname):
        if len(in_specs) == 1 and hasattr(layer, "_output_shape") and \
                len(layer.OutputNames) == 1:
            return [layer._output_shape(in_specs[0][0], tuple(in_specs[0][1]), fname)]
        if hasattr(layer, "_output_shapes"):
            return layer._output_shapes(in_specs, fname)
        # No size rule: run the layer on zeros of the activation size, one observation.
        xs = [dlarray._from_canonical(np.zeros(shape, dtype=np.float32), dims)
              for dims, shape in in_specs]
        ys, _ = layer._run(xs, False, fname)
        return [(y.dims, y.shape) for y in ys]

    # ------------------------------------------------------------- properties

    @property
    def Layers(self):
        if self._plan is None and self._conns:
            self._sort("dlnetwork")
        return self._layers

    def _rows(self, names_of):
        return [(layer._values["Name"], p, _param_value(layer._values.get(p)))
                for layer in self._layers for p in names_of(layer)]

    @property
    def Learnables(self):
        return Table(("Layer", "Parameter", "Value"), self._rows(_learnable_names))

    def _replace_values(self, items):
        """Assign ``(layer index, parameter, numpy array)`` items in place, copying each
        changed layer once (copy on write: other networks may share the layer), without
        checks: :meth:`_set_parameters` checks first; the solvers' steps pass values
        computed from this network's own parameters, of their sizes and classes."""
        copied = set()
        for i, param, value in items:
            if i not in copied:
                self._layers[i] = clone(self._layers[i])
                copied.add(i)
            self._layers[i]._values[param] = value

    @Learnables.setter
    def Learnables(self, table):
        self._set_parameters(table, "Learnables", _learnable_names)

    @property
    def State(self):
        return Table(("Layer", "Parameter", "Value"), self._rows(_state_names))

    @State.setter
    def State(self, table):
        self._set_parameters(table, "State", _state_names, strict=False)

    def _set_parameters(self, table, what, names_of, fname="dlnetwork", strict=True):
        """Assign table rows to the layers (copy on write).  Learnables keep their size;
        state may change it (a recurrent state becomes H×B)."""
        if not isinstance(table, Table) or not {"Layer", "Parameter", "Value"} <= set(
                table.VariableNames):
            raise TypeError(f"{fname}: {what} must be a table with variables Layer, "
                            f"Parameter and Value, got {type(table).__name__}")
        items = []
        for row in table:
            i = self._index.get(row.Layer)
            if i is None:
                raise ValueError(f"{fname}: {what} names layer '{row.Layer}', which is not "
                                 f"a layer of the network")
            layer = self._layers[i]
            if row.Parameter not in names_of(layer):
                raise ValueError(f"{fname}: {what} names parameter '{row.Parameter}' of "
                                 f"layer '{row.Layer}', which has "
                                 f"{', '.join(names_of(layer)) or 'none'}")
            d = _numeric(row.Value, fname, f"the Value of {row.Layer}/{row.Parameter}")
            old = layer._values.get(row.Parameter)
            old = old._data if isinstance(old, dlarray) else old   # (custom layers' dlarrays)
            d = _fit_shape(d, old)
            if strict and old is not None and d.shape != old.shape:
                x = _display.times()
                raise ValueError(f"{fname}: the Value of {row.Layer}/{row.Parameter} must "
                                 f"have size {_display.format_size(old.shape)}, got "
                                 f"{_display.format_size(d.shape).replace('×', x)}")
            v = row.Value
            if isinstance(v, dlarray) and v._node is not None and v._data.dtype == d.dtype:
                # a traced value (net.Learnables = L inside dlfeval, as MATLAB's model
                # functions of a learnables table do) stays on the trace
                if v._data.shape != d.shape:
                    from .functional.mathfun import take
                    index = np.arange(v._data.size).reshape(v._data.shape).reshape(
                        d.shape, order="F")
                    v = take(v, index.reshape(-1), d.shape, "")
                d = v
            items.append((i, row.Parameter, d))
        self._replace_values(items)

    @property
    def Connections(self):
        return self._connections_table()

    @property
    def InputNames(self):
        entries = self._plan.inputs if self._plan is not None else self._input_entries()
        return [n if k is None else self._port_text(n, k, False) for n, k in entries]

    @property
    def OutputNames(self):
        entries = (self._plan.outputs if self._plan is not None
                   else self._output_entries("dlnetwork"))
        return [self._port_text(n, k, True) for n, k in entries]

    def __repr__(self):
        """MATLAB's ``disp(net)``."""
        x = _display.times()
        n = len(self._layers)
        rows = [("Layers", f"[{n}{x}1 nnet.cnn.layer.Layer]"),
                ("Connections", f"[{len(self._conns)}{x}2 table]"),
                ("Learnables", f"[{len(self._rows(_learnable_names))}{x}3 table]"),
                ("State", f"[{len(self._rows(_state_names))}{x}3 table]"),
                ("InputNames", _cell(self.InputNames)),
                ("OutputNames", _cell(self.OutputNames)),
                ("Initialized", "1" if self.Initialized else "0")]
        w = max(len(k) for k, _ in rows)
        lines = ["  dlnetwork with properties:", ""]
        lines += [" " * (4 + w - len(k)) + k + ": " + v for k, v in rows]
        lines += ["", "  View summary with summary.", ""]
        return "\n".join(lines)

    __str__ = __repr__

    def display(self, name="net"):
        """Print MATLAB's ``name = `` display of the network."""
        print(_display.named(name, repr(self)), end="")

    # ------------------------------------------------------------- autodiff

    def _traced_copy(self, fn):
        """A copy whose layers hold ``fn(dlarray(value))`` for every learnable and state
        parameter (``dlfeval`` traces networks through this).  An untraced result is
        stored as plain data."""
        new = copy.copy(self)
        layers = []
        for layer in self._layers:
            names = [p for p in (*_learnable_names(layer), *_state_names(layer))
                     if layer._values.get(p) is not None]
            if names:
                c = shallow_copy(layer)
                values = dict(layer._values)
                object.__setattr__(c, "_values", values)
                for p in names:
                    r = fn(_param_value(values[p]))
                    if isinstance(r, dlarray) and r._node is None:
                        r = r._data
                    values[p] = r
                layer = c
            layers.append(layer)
        new._layers = LayerArray(layers)
        return new

    # ------------------------------------------------------------- running

    def _call(self, fname, args, kwargs, training):
        p = self._plan
        if not (kwargs or training) and len(args) == 1 and p is not None:
            # (predict(net, X) on a format it has run: what the general path below does
            # then, without its option handling, which was a fifth of a batch-1 call)
            X = args[0]
            if (type(X) is dlarray and len(p.out_slots) == 1 == len(p.inputs)
                    and (X._dims,) in p.checked and not _autodiff.recording()):
                return self._run_program(p, args, p.run, p.release, p.out_slots, False,
                                         fname)[p.out_slots[0]]
        # (not given: every output, a tuple when there are several (the API's form);
        # given: MATLAB's count, the first nargout outputs, one more is the state)
        nargout = kwargs.pop("nargout", None)
        args = list(args)
        X = []
        while args and not isinstance(args[0], (str, np.str_)):
            X.append(args.pop(0))
        opts = parse_name_value(fname, args, kwargs, _RUN_OPTIONS) if args or kwargs else {}
        if not self.Initialized:
            raise ValueError(f"{fname}: the network must be initialized; build it with an "
                             f"input layer, dlnetwork(layers, X), or call "
                             f"ml.initialize(net, X)")
        p = self._plan if self._plan is not None else self._compile(fname)
        if len(X) != len(p.inputs):
            raise ValueError(f"{fname}: the network has {len(p.inputs)} input(s) "
                             f"({', '.join(self.InputNames)}), got {len(X)}")
        fmts = opts.get("InputDataFormats")
        data_format = opts.get("DataFormat")
        if fmts is not None:
            fmts = [fmts] if isinstance(fmts, str) else list(fmts)
            if len(fmts) != len(X):
                raise ValueError(f"{fname}: InputDataFormats must have one format per "
                                 f"input ({len(X)}), got {len(fmts)}")
        else:
            fmts = [data_format] * len(X)
        Xs = [x if type(x) is dlarray and x._dims and f is None
              else as_formatted(x, f, fname) for x, f in zip(X, fmts)]
        wanted = opts.get("Outputs")
        if wanted is None:
            slots, run, release, single = p.out_slots, p.run, p.release, len(p.out_slots) == 1
            names_n = len(slots)
        else:
            single = isinstance(wanted, (str, np.str_))
            if not single and not (isinstance(wanted, (list, tuple, np.ndarray)) and all(
                    isinstance(n, (str, np.str_)) for n in wanted)):
                raise TypeError(f"{fname}: Outputs must be a layer name or a list of layer "
                                f"names, got {type(wanted).__name__}")
            names = [wanted] if single else list(wanted)
            slots = []
            for n in names:
                try:
                    src = self._endpoint(n, True, fname) if isinstance(n, str) else None
                except ValueError:
                    src = None
                if src is None:
                    layer = (self._layers[self._index[n]]
                             if isinstance(n, str) and n in self._index else None)
                    if layer is not None and len(layer.OutputNames) > 1:
                        raise ValueError(f"{fname}: layer '{n}' has {len(layer.OutputNames)} "
                                         f"outputs; name one of them in Outputs ("
                                         + ", ".join(f"'{n}/{o}'" for o in layer.OutputNames)
                                         + ")")
                    raise ValueError(f"{fname}: Outputs must name layers of the network "
                                     f"({', '.join(self._index)}), got '{n}'")
                slots.append(p.slot[src])
            run = p.subplans.get(tuple(slots))
            if run is None:
                run = p.subplans[tuple(slots)] = self._needed_steps(p, slots)
            release = None
            names_n = len(slots)
        if nargout is not None and (isinstance(nargout, bool) or not isinstance(
                nargout, (int, np.integer)) or not 1 <= nargout <= names_n + 1):
            raise ValueError(f"{fname}: nargout must be an integer from 1 to {names_n + 1} "
                             f"(the {names_n} output(s), then the state), got {nargout!r}")
        key = tuple(x._dims for x in Xs)
        check = key not in p.checked
        if not training and nargout != names_n + 1 and not _autodiff.recording():
            vals = self._run_program(p, Xs, run, release, slots, check, fname)
        else:
            vals, states = self._execute(p, Xs, run, release, training, check, fname,
                                         slots)
        if check:
            p.checked.add(key)
        Ys = [vals[k] for k in slots]
        if (data_format not in (None, "")) or opts.get("InputDataFormats") is not None:
            Ys = [stripdims(y) for y in Ys]
        if nargout == names_n + 1:
            return (*Ys, self._state_table(states))
        if nargout is None:
            return Ys[0] if single else tuple(Ys)
        return Ys[0] if nargout == 1 else tuple(Ys[:nargout])

    def _execute(self, p, Xs, run, release, training, check, fname, slots=()):
        layers = self._layers
        vals = [None] * p.nslots
        vals[:len(Xs)] = Xs
        states = {}
        step = None
        # (training, formats checked: a batch normalization or an addition and the ReLU
        # that alone reads it as one operation, _relu_fusions, worked out once per steps
        # and outputs)
        fused = {}
        if training and not check:
            key = (id(run), tuple(slots))
            fused = p.relu_fusions.get(key)
            if fused is None:
                fused = p.relu_fusions[key] = self._relu_fusions(run, slots)
        try:
            for step in run:
                i, ins, outs, fast = step
                layer = layers[i]
                if check:
                    for k in ins:
                        layer._check_format(vals[k], fname)
                if i in fused:
                    # (the ReLU's step: None, run with the layer it reads)
                    if fused[i] is not None:
                        vals[fused[i]], st = layer._run_rectified([vals[k] for k in ins],
                                                                  fname)
                        if st:
                            states[layer._values["Name"]] = st
                elif fast and not training:
                    vals[outs[0]] = layer._forward(vals[ins[0]], fname)
                else:
                    ys, st = layer._run([vals[k] for k in ins], training, fname)
                    for k, y in zip(outs, ys):
                        vals[k] = y
                    if st:
                        states[layer._values["Name"]] = st
                if release is not None:
                    for k in release[i]:
                        vals[k] = None
        except (ValueError, TypeError) as exc:
            i = step[0]
            raise _layer_error(fname, i + 1, layers[i], exc, p.sources[i]) from exc
        return vals, states

    def _relu_fusions(self, run, slots):
        """{step: the slot of the ReLU after it, ReLU step: None} for the ``reluLayer``
        steps that alone read the result (not an output) of a layer that declares
        ``_run_rectified`` (batch normalization, addition): in training the two run as one
        operation (the ReLU in that layer's output pass, its backward in the layer's), the
        numbers and gradients of the two."""
        layers = self._layers
        readers, made = {}, {}
        for i, ins, outs, fast in run:
            for k in ins:
                readers[k] = readers.get(k, 0) + 1
            for k in outs:
                made[k] = i
        fused = {}
        for i, ins, outs, fast in run:
            if type(layers[i]) is not ReLULayer or not fast:
                continue
            j = made.get(ins[0])
            if (j is not None and hasattr(layers[j], "_run_rectified")
                    and readers[ins[0]] == 1 and ins[0] not in slots):
                fused[j], fused[i] = outs[0], None
        return fused

    def _state_table(self, updates):
        rows = []
        for layer in self._layers:
            name = layer._values["Name"]
            new = updates.get(name, {})
            for param in _state_names(layer):
                old = layer._values.get(param)
                if param in new:
                    v = new[param]
                    d = v._data if isinstance(v, dlarray) else np.asarray(v)
                    f = _fit_shape(d, old)
                    val = dlarray._from_canonical(f, "")
                    if isinstance(v, dlarray) and f is d:
                        val._node = v._node
                else:
                    val = _param_value(old)
                rows.append((name, param, val))
        return Table(("Layer", "Parameter", "Value"), rows)

    def predict(self, *args, **kwargs):
        """Run the network in inference mode (MATLAB's ``Y = predict(net, X1, ..., XM)``).

        Options: ``DataFormat`` (unformatted input; outputs are then unformatted),
        ``InputDataFormats`` (one per input), ``Outputs`` (a layer name or ``'layer/port'``,
        or a list: a tuple of outputs), ``nargout`` (number of outputs + 1 also returns
        the state table).
        """
        return self._call("predict", args, kwargs, False)

    def forward(self, *args, **kwargs):
        """Run the network in training mode (MATLAB's ``[Y, state] = forward(net, X)``);
        see :func:`forward`."""
        return self._call("forward", args, kwargs, True)

    # ------------------------------------------------------------- analysis

    def summary(self):
        """Print MATLAB's ``summary(net)``: initialization, learnables, inputs."""
        print(_summary_text(self), end="")

    def _layer_info(self):
        rows = []
        acts = self._activations or [None] * len(self._layers)
        for i, (layer, act) in enumerate(zip(self._layers, acts), start=1):
            params = [(p, layer._values.get(p)) for p in _learnable_names(layer)]
            params = [(p, a) for p, a in params if a is not None and np.size(a)]
            rows.append((i, layer.Name, _type(layer),
                         "; ".join(_activation_text(*a) for a in act) if act else "",
                         ", ".join(f"{p} {_display.format_size(_display.trim_shape(np.shape(a)))}"
                                   for p, a in params) or "-",
                         sum(int(np.size(a)) for _, a in params)))
        return rows


def _cell(names):
    if not names:
        return "{1" + _display.times() + "0 cell}"
    return _display.format_value(list(names))


# --------------------------------------------------------------------------- functions

def forward(net, *args, **kwargs):
    """Training-mode forward pass (MATLAB's ``[Y1,...,YN,state] = forward(net,X1,...,XM)``).

    Layers run their training behaviour (batch statistics, dropout).  Inputs in
    ``net.InputNames`` order; ``Outputs=`` as in :meth:`dlnetwork.predict`;
    ``nargout=numOutputs+1`` also returns the updated ``state`` table (assign it with
    ``net.State = state``).

    Examples
    --------
    MATLAB::

        [Y, state] = forward(net, X);

    Python::

        Y, state = ml.forward(net, X, nargout=2)
    """
    if not isinstance(net, dlnetwork):
        raise TypeError(f"forward: net must be a dlnetwork, got {type(net).__name__}")
    return net._call("forward", args, kwargs, True)


def initialize(net, *X):
    """Initialize the learnables and state of a network (MATLAB's ``net =
    initialize(net, X1, ..., XN)``; the example inputs are needed only for unconnected
    inputs).  Returns an initialized copy."""
    if not isinstance(net, dlnetwork):
        raise TypeError(f"initialize: net must be a dlnetwork, got {type(net).__name__}")
    new = net._copy()
    new._plan = None
    return new.initialize(*X)


def getLayer(net, name):
    """The layer called ``name`` (MATLAB's ``layer = getLayer(net, name)``); a copy."""
    if not isinstance(net, GraphBase):
        raise TypeError(f"getLayer: net must be a dlnetwork or a layer graph, got "
                        f"{type(net).__name__}")
    return clone(net._layer(name, "getLayer"))


def addInputLayer(net, layer, *args, **kwargs):
    """Add an input layer to a network and connect it (MATLAB's ``net =
    addInputLayer(net, layer)`` / ``addInputLayer(net, layer, inputName)``).

    The input layer feeds ``inputName`` (one of ``net.InputNames`` that is an unconnected
    input), by default the first unconnected input.  ``Initialize`` (default: true when
    no unconnected input remains, inferred) initializes the result.  Returns a new network.
    """
    fname = "addInputLayer"
    if not isinstance(net, dlnetwork):
        raise TypeError(f"{fname}: net must be a dlnetwork, got {type(net).__name__}")
    if not isinstance(layer, InputLayer):
        raise TypeError(f"{fname}: layer must be an input layer, got {type(layer).__name__}")
    args = list(args)
    target = args.pop(0) if args and isinstance(args[0], str) and \
        args[0].lower() != "initialize" else None
    opts = parse_name_value(fname, args, kwargs, ("Initialize",))
    new = net._copy()
    free = [e for e in new._input_entries() if e[1] is not None]
    texts = [new._port_text(n, k, False) for n, k in free]
    if not free:
        raise ValueError(f"{fname}: the network has no unconnected inputs")
    if target is None:
        target = texts[0]
    elif target not in texts:
        raise ValueError(f"{fname}: inputName must be an unconnected input of the network "
                         f"({', '.join(texts)}), got '{target}'")
    added = new._add_layers(layer, fname)
    new._connect(added[0].Name, target, fname)
    new._sort(fname)
    remaining = [e for e in new._input_entries() if e[1] is not None]
    init = logical(opts.get("Initialize", not remaining), Where(fname, "Initialize"))
    if init:
        new._initialize([], fname)
    return new


def resetState(net):
    """Reset the state of a network (MATLAB's ``net = resetState(net)``): layers that
    keep a state between calls go back to their initial state — a layer's own
    ``_reset_state()`` when it has one, else recurrent layers' ``HiddenState`` /
    ``CellState`` become the zeros they are initialized with (``H×1``); batch-normalization
    statistics are kept (package default, inferred).  Returns a new network."""
    if not isinstance(net, dlnetwork):
        raise TypeError(f"resetState: net must be a dlnetwork, got {type(net).__name__}")
    new = net._copy()
    for i, layer in enumerate(new._layers):
        if hasattr(layer, "_reset_state"):
            c = clone(layer)
            c._reset_state()
            new._layers[i] = c
        elif hasattr(layer, "_state_rows"):
            c = clone(layer)
            for p in _state_names(layer):
                old = layer._values.get(p)
                if old is not None:
                    dtype = old.dtype if hasattr(old, "dtype") else np.float32
                    c._values[p] = np.zeros((c._state_rows(), 1), dtype=dtype, order="F")
            new._layers[i] = c
    return new


def _factor_property(layer, param, kind, fname):
    names = _learnable_names(layer)
    if param not in names:
        raise ValueError(f"{fname}: parameterName must be a learnable parameter of layer "
                         f"'{layer.Name}' ({', '.join(names) or 'none'}), got '{param}'")
    prop = ("Weight" if param == "Weights" else param) + kind
    # layers without the property (MATLAB's custom-layer family, e.g. PReLU) keep the
    # factor with the layer, as MATLAB keeps it with the learnable parameter
    return prop if prop in type(layer)._by_name else None


def _factor_args(fname, args):
    """(network or None, layer, parameter, rest) from MATLAB's two call forms."""
    if args and isinstance(args[0], Layer):
        if len(args) < 2:
            raise TypeError(f"{fname}: parameterName is required")
        return None, args[0], args[1], args[2:]
    if len(args) < 3:
        raise TypeError(f"{fname}: expected ({fname[:3]}(net, layerName, parameterName"
                        f"{', factor' if fname.startswith('set') else ''}) or "
                        f"(layer, parameterName{', factor' if fname.startswith('set') else ''})")
    net, name, param, rest = args[0], args[1], args[2], args[3:]
    if not isinstance(net, dlnetwork):
        raise TypeError(f"{fname}: the first argument must be a dlnetwork or a layer, got "
                        f"{type(net).__name__}")
    return net, net._layer(name, fname), param, rest


def _set_factor(kind, fname, args):
    net, layer, param, rest = _factor_args(fname, args)
    if len(rest) != 1:
        raise TypeError(f"{fname}: factor is required")
    prop = _factor_property(layer, param, kind, fname)
    c = clone(layer)
    if prop is not None:
        setattr(c, prop, rest[0])
    else:
        from ._validate import nonneg_factor
        f = nonneg_factor(rest[0], Where(fname, "factor"))
        object.__setattr__(c, "_factors", {**getattr(layer, "_factors", {}), (param, kind): f})
    if net is None:
        return c
    new = net._copy()
    new._layers[new._index[layer.Name]] = c
    return new


def _factor_of(layer, param, kind, fname):
    """``layer``'s ``kind`` factor of ``param`` (what getLearnRateFactor returns)."""
    prop = _factor_property(layer, param, kind, fname)
    if prop is None:
        return getattr(layer, "_factors", {}).get((param, kind), 1.0)
    return getattr(layer, prop)


def _get_factor(kind, fname, args):
    net, layer, param, rest = _factor_args(fname, args)
    return _factor_of(layer, param, kind, fname)


def setLearnRateFactor(*args):
    """Set a parameter's learn-rate factor (MATLAB's ``net = setLearnRateFactor(net,
    layerName, parameterName, factor)`` or ``layer = setLearnRateFactor(layer,
    parameterName, factor)``): the layer's ``<Param>LearnRateFactor`` property
    (``Weights`` -> ``WeightLearnRateFactor``).  Returns a new network (or layer)."""
    return _set_factor("LearnRateFactor", "setLearnRateFactor", args)


def getLearnRateFactor(*args):
    """A parameter's learn-rate factor (MATLAB's ``getLearnRateFactor(net, layerName,
    parameterName)`` or ``getLearnRateFactor(layer, parameterName)``)."""
    return _get_factor("LearnRateFactor", "getLearnRateFactor", args)


def setL2Factor(*args):
    """Set a parameter's L2 regularization factor (MATLAB's ``setL2Factor``); see
    :func:`setLearnRateFactor`."""
    return _set_factor("L2Factor", "setL2Factor", args)


def getL2Factor(*args):
    """A parameter's L2 regularization factor (MATLAB's ``getL2Factor``)."""
    return _get_factor("L2Factor", "getL2Factor", args)


# --------------------------------------------------------------------------- analysis

class NetworkAnalysis:
    """The result of :func:`analyzeNetwork`: ``LayerInfo`` (a :class:`Table` with Index,
    Name, Type, Activations, LearnableSizes, NumLearnables), ``TotalLearnables``,
    ``Issues`` (a Table with Layer, Severity, Description), ``NumErrors``,
    ``NumWarnings``, and a text display."""

    def __init__(self, net, issues=(), extra=()):
        self.Network = net
        rows = net._layer_info()
        rows += [(len(rows) + k, layer.Name, _type(layer), "-", "-", 0)
                 for k, layer in enumerate(extra, start=1)]
        self.LayerInfo = Table(("Index", "Name", "Type", "Activations", "LearnableSizes",
                                "NumLearnables"), rows)
        self.TotalLearnables = sum(r.NumLearnables for r in self.LayerInfo)
        self.Issues = Table(("Layer", "Severity", "Description"),
                            [(n or "", s, d) for n, s, d in issues])
        self.NumErrors = sum(1 for r in self.Issues if r.Severity == "Error")
        self.NumWarnings = sum(1 for r in self.Issues if r.Severity == "Warning")

    def __repr__(self):
        rows = [("#", "Name", "Type", "Activations", "Learnable sizes", "Learnables")]
        rows += [(str(r.Index), f"'{r.Name}'", r.Type, r.Activations, r.LearnableSizes,
                  str(r.NumLearnables)) for r in self.LayerInfo]
        widths = [max(len(r[j]) for r in rows) for j in range(6)]
        n = len(self.LayerInfo)
        e, w = self.NumErrors, self.NumWarnings
        lines = [f"  Network analysis: {n} layers, {self.TotalLearnables} learnables, "
                 f"{e} error{'' if e == 1 else 's'}, {w} warning{'' if w == 1 else 's'}", ""]
        for k, r in enumerate(rows):
            lines.append("    " + r[0].rjust(widths[0]) + "   " + "   ".join(
                c.ljust(w) for c, w in zip(r[1:5], widths[1:5])) + "   "
                + r[5].rjust(widths[5]))
            if k == 0:
                lines.append("")
        lines += ["", f"  Total learnables: {self.TotalLearnables}", ""]
        if len(self.Issues):
            lines.append("  Issues:")
            for r in self.Issues:
                where = f" '{r.Layer}'" if r.Layer else ""
                lines.append(f"    {r.Severity}{where}: {r.Description}")
            lines.append("")
        return "\n".join(lines)

    __str__ = __repr__


def _analyze(g, X, fname="analyzeNetwork"):
    """A network built from ``g`` for analysis, and the issues found: problems of the
    graph do not raise, they become issues (MATLAB's analyzer)."""
    from .graph import layerGraph
    issues = []
    extra = []
    net = dlnetwork()
    if isinstance(g, dlnetwork):
        net._from_graph(g, fname)
        net._output_names = g._output_names
    else:
        lg = g if isinstance(g, LayerGraph) else layerGraph(g)
        net._from_graph(lg, fname)
        for layer in lg._layers:
            if getattr(layer, "_is_output_layer", False):
                extra.append(layer)       # listed after the network's layers
                if not any(c[2] == layer.Name for c in lg._conns):
                    issues.append((layer.Name, "Error", "Missing input. Each layer input "
                                   "must be connected to the output of another layer."))
        if extra:
            # a graph for trainNetwork ends in output layers: every other output is used
            for name, k in lg._free_outputs():
                issues.append((name, "Error", f"Unconnected output "
                               f"'{lg._port_text(name, k, True)}'. Each layer output must be "
                               f"connected to the input of another layer."))
    net._initialize(list(X), fname, issues)
    return net, issues, extra


def analyzeNetwork(net, *X, Plots="none"):
    """Layer-by-layer analysis of a network, layer graph or layer array (MATLAB's
    ``analyzeNetwork``).

    Prints, per layer (network order), its name, type, activation sizes (one
    observation), learnable sizes and number of learnables, the total, and the issues
    (errors such as unconnected inputs or mismatched sizes at a merge layer, naming the
    layer), and returns a :class:`NetworkAnalysis` (MATLAB R2023a+: ``info =
    analyzeNetwork(net, Plots="none")``).  ``X``: example inputs for unconnected inputs.

    Examples
    --------
    >>> info = ml.analyzeNetwork(lgraph)
    >>> info.TotalLearnables, info.NumErrors
    """
    if isinstance(net, dlnetwork) and net.Initialized and not X and \
            net._activations is not None:
        built, issues, extra = net, [], []          # already propagated: reuse it
    else:
        built, issues, extra = _analyze(net, X)
    info = NetworkAnalysis(built, issues, extra)
    print(repr(info))
    return info


def summary(net):
    """MATLAB's ``summary(net)``: prints whether the network is initialized, its number of
    learnables and its inputs."""
    if not isinstance(net, dlnetwork):
        raise TypeError(f"summary: net must be a dlnetwork, got {type(net).__name__}")
    net.summary()


def _summary_text(net):
    total = sum(int(np.size(layer._values.get(p))) for layer in net._layers
                for p in _learnable_names(layer) if layer._values.get(p) is not None)
    lines = [f"   Initialized: {'true' if net.Initialized else 'false'}", "",
             f"   Number of learnables: {_count(total)}", "", "   Inputs:"]
    entries = net._plan.inputs if net._plan is not None else net._input_entries()
    for k, (name, port) in enumerate(entries, start=1):
        layer = net._layers[net._index[name]]
        if port is None:
            desc = layer._description()
        else:
            desc = "(unconnected input)"
        text = name if port is None else net._port_text(name, port, False)
        lines.append(f"      {k}   '{text}'   {desc}")
    lines.append("")
    return "\n".join(lines) + "\n"


register(dlnetwork, lambda net, *args, **kwargs: net._call("predict", args, kwargs, False))
