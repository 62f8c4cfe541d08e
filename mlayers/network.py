"""MATLAB's ``dlnetwork`` for layer arrays, its tables, ``summary`` and ``analyzeNetwork``.

``ml.dlnetwork(layers)`` takes a layer array (a Python list or ``ml.layer_array``), as
MATLAB's ``dlnetwork(layers)`` does for a series network, and:

1. copies the layers (MATLAB layers are values: the caller's array is not changed);
2. drops a trailing ``classificationLayer`` (MATLAB's ``dlnetwork`` rejects output layers;
   package default, MATLAB_SEMANTICS §2.2) and rejects output layers elsewhere;
3. names unnamed layers (rule below) and rejects duplicate names;
4. checks that an input layer comes first (or that example inputs are given, or
   ``Initialize=False``), and that input layers appear nowhere else;
5. propagates the activation sizes through the chain, which infers every ``'auto'``
   size (NumChannels, InputSize, NumGroups, ...), checks channel counts, formats and
   spatial sizes, and initializes empty learnables with each layer's initializer, in
   layer order, Weights before Bias, from MATLAB's stream (``ml.rng``).

Any error names the layer: ``dlnetwork: layer 3 'conv_2' (2-D Convolution): ...``.

Automatic names (inferred from MATLAB's layer graphs; MATLAB_SEMANTICS §9.8): an unnamed
layer gets its type's default name (``imageinput``, ``conv``, ``groupedconv``,
``batchnorm``, ``relu``, ``maxpool``, ``avgpool``, ``fc``, ``softmax``, ...).  When several
unnamed layers share a default name they are numbered in order, ``conv_1``, ``conv_2``;
a name a user already gave is skipped.

Size propagation uses each layer's ``_output_shape(dims, shape, fname)`` when it has one;
otherwise (the convolution layers) it runs the layer on zeros of the activation size with
one observation.
"""
import copy
import itertools

import numpy as np

from . import _display
from ._options import parse_name_value
from ._predict import register
from ._props import Layer, LayerArray, layer_array
from ._validate import Where
from ._table import Table
from .dlarray import as_formatted, dlarray, stripdims
from .layers.input import InputLayer, logical

__all__ = ["Table", "analyzeNetwork", "dlnetwork", "summary"]

#: default names of layers declared elsewhere (the convolution family), by class name;
#: layers declared in mlayers.layers.* for networks carry ``_default_name`` themselves.
_DEFAULT_NAMES = {
    "Convolution1DLayer": "conv1d",
    "Convolution2DLayer": "conv",
    "Convolution3DLayer": "conv3d",
    "GroupedConvolution2DLayer": "groupedconv",
    "TransposedConvolution1DLayer": "transposed-conv1d",
    "TransposedConvolution2DLayer": "transposed-conv",
    "TransposedConvolution3DLayer": "transposed-conv3d",
}

_OPTIONS = ("Initialize",)


# --------------------------------------------------------------------------- helpers

class _Spec:
    """What a layer's format check needs of an activation: its format."""

    __slots__ = ("dims",)

    def __init__(self, dims):
        self.dims = dims


def _type(layer):
    return layer._layer_array_row()[1]


def _default_name(layer):
    name = getattr(layer, "_default_name", None) or _DEFAULT_NAMES.get(type(layer).__name__)
    if name is None:
        name = type(layer).__name__.removesuffix("Layer").lower()
    return name


def _assign_names(layers):
    """Name unnamed layers (module docstring rule); duplicate given names are an error."""
    given = {}
    for i, layer in enumerate(layers, start=1):
        if layer.Name:
            if layer.Name in given:
                raise ValueError(f"dlnetwork: layer names must be unique, got '{layer.Name}' "
                                 f"for layers {given[layer.Name]} and {i}")
            given[layer.Name] = i
    unnamed = [layer for layer in layers if not layer.Name]
    bases = [_default_name(layer) for layer in unnamed]
    counts = {b: bases.count(b) for b in bases}
    used = set(given)
    numbers = {}
    for layer, base in zip(unnamed, bases):
        if counts[base] == 1 and base not in used:
            name = base
        else:
            k = numbers.get(base, 0)
            while True:
                k += 1
                name = f"{base}_{k}"
                if name not in used:
                    break
            numbers[base] = k
        used.add(name)
        layer._values["Name"] = name


def _strip_fname(message):
    for prefix in ("dlnetwork: ", "predict: ", "initialize: "):
        if message.startswith(prefix):
            return message[len(prefix):]
    return message


def _layer_error(fname, index, layer, exc):
    """The same exception type, with the layer's index, name and type in the message."""
    msg = (f"{fname}: layer {index} '{layer.Name}' ({_type(layer)}): "
           f"{_strip_fname(str(exc))}")
    return type(exc)(msg) if isinstance(exc, (ValueError, TypeError)) else ValueError(msg)


def _learnable_names(layer):
    names = getattr(layer, "_learnables", None)
    if names is None:
        names = tuple(n for n in ("Weights", "Bias") if n in type(layer)._by_name)
    return names


def _state_names(layer):
    return getattr(layer, "_state_parameters", ())


def _input_spec(layer):
    """(format, shape with one observation) of what an input layer outputs first."""
    size = layer._values["InputSize"]
    if layer._constructor == "imageInputLayer":
        return "SSCB", tuple(int(v) for v in size) + (1,)
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


# --------------------------------------------------------------------------- dlnetwork

class dlnetwork:  # MATLAB's class name
    """Deep learning network for prediction (MATLAB's ``dlnetwork``), from a layer array.

    Parameters
    ----------
    layers : sequence of layers
        A layer array (Python list or ``ml.layer_array``), the first one an input layer
        (``imageInputLayer``, ``sequenceInputLayer``) unless example inputs are given.
    *X : dlarray, optional
        Example inputs (MATLAB's ``dlnetwork(layers, X)``): formatted dlarrays that fix
        the input size of a network without an input layer.
    Initialize : bool, default True
        ``False`` builds an uninitialized network (MATLAB's ``Initialize=false``); call
        ``net.initialize(X)`` later.

    Attributes
    ----------
    Layers : LayerArray
        The network's layers (copies of the given ones, named and initialized).
    Learnables, State : Table
        Rows ``Layer, Parameter, Value`` (Value an unformatted dlarray viewing the layer's
        array), in layer order.
    Connections : Table
        Rows ``Source, Destination``.
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

    def __init__(self, layers, *args, **kwargs):
        fname = "dlnetwork"
        examples = []
        args = list(args)
        while args and not isinstance(args[0], (str, np.str_)):
            examples.append(args.pop(0))
        options = parse_name_value(fname, args, kwargs, _OPTIONS)
        init = logical(options.get("Initialize", True), Where(fname, "Initialize"))
        items = copy.deepcopy(list(layer_array(layers)))
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
        _assign_names(items)
        self._layers = LayerArray(items)
        self._activations = None
        self.Initialized = False
        if examples and isinstance(items[0], InputLayer):
            raise ValueError(f"dlnetwork: example inputs are only for networks without an "
                             f"input layer; layer 1 '{items[0].Name}' is an input layer")
        if init:
            if not examples and not isinstance(items[0], InputLayer):
                raise ValueError(
                    f"dlnetwork: the first layer must be an input layer (imageInputLayer or "
                    f"sequenceInputLayer), got layer 1 '{items[0].Name}' ({_type(items[0])}); "
                    f"give example inputs, dlnetwork(layers, X), or Initialize=False")
            self.initialize(*examples, _fname=fname)

    # ------------------------------------------------------------- building

    def initialize(self, *X, _fname="initialize"):
        """Initialize the network (MATLAB's ``net = initialize(net, X)``); returns it.

        ``X`` (example inputs, formatted dlarrays) is needed only when the first layer is
        not an input layer.  Learnables that are already set are kept.
        """
        layers = self._layers
        first = layers[0]
        if isinstance(first, InputLayer):
            dims, shape = _input_spec(first)
        else:
            if len(X) != 1:
                raise ValueError(f"{_fname}: one example input is needed for a network "
                                 f"whose first layer '{first.Name}' is not an input layer, "
                                 f"got {len(X)}")
            example = as_formatted(X[0], None, _fname)
            dims, shape = example.dims, example.shape
            if "B" in dims:          # sizes per observation; the batch size is not fixed
                b = dims.index("B")
                shape = shape[:b] + (1,) + shape[b + 1:]
        acts = []
        for i, layer in enumerate(layers, start=1):
            try:
                layer._check_format(_Spec(dims), _fname)
                self._initialize_layer(layer, dims, shape, _fname)
                dims, shape = self._propagate(layer, dims, shape, _fname)
            except (ValueError, TypeError) as exc:
                raise _layer_error(_fname, i, layer, exc) from exc
            acts.append((dims, tuple(int(s) for s in shape)))
        self._activations = acts
        self.Initialized = True
        return self

    @staticmethod
    def _initialize_layer(layer, dims, shape, fname):
        if hasattr(layer, "_initialize_for"):
            layer._initialize_for(dims, shape, fname)
        elif isinstance(layer, InputLayer):
            layer.initialize(fname=fname)
        elif type(layer).initialize is not Layer.initialize and "C" in dims:
            layer.initialize(int(shape[dims.index("C")]), fname=fname)

    @staticmethod
    def _propagate(layer, dims, shape, fname):
        if hasattr(layer, "_output_shape"):
            return layer._output_shape(dims, tuple(shape), fname)
        # No size rule (convolution layers): run the layer on zeros, one observation.
        x = np.zeros(shape, dtype=np.float32, order="F")
        Y = layer._forward(dlarray._from_canonical(x, dims), fname)
        return Y.dims, Y.shape

    # ------------------------------------------------------------- properties

    @property
    def Layers(self):
        return self._layers

    @property
    def Learnables(self):
        rows = [(layer.Name, p, dlarray(getattr(layer, p)))
                for layer in self._layers for p in _learnable_names(layer)
                if getattr(layer, p).size]
        return Table(("Layer", "Parameter", "Value"), rows)

    @property
    def State(self):
        rows = [(layer.Name, p, dlarray(getattr(layer, p)))
                for layer in self._layers for p in _state_names(layer)
                if getattr(layer, p).size]
        return Table(("Layer", "Parameter", "Value"), rows)

    @property
    def Connections(self):
        names = [layer.Name for layer in self._layers]
        return Table(("Source", "Destination"), list(itertools.pairwise(names)))

    @property
    def InputNames(self):
        return [self._layers[0].Name]

    @property
    def OutputNames(self):
        return [self._layers[-1].Name]

    def __repr__(self):
        """MATLAB's ``disp(net)``."""
        x = _display.times()
        n = len(self._layers)
        rows = [("Layers", f"[{n}{x}1 nnet.cnn.layer.Layer]"),
                ("Connections", f"[{max(n - 1, 0)}{x}2 table]"),
                ("Learnables", f"[{len(self.Learnables)}{x}3 table]"),
                ("State", f"[{len(self.State)}{x}3 table]"),
                ("InputNames", _display.format_value(self.InputNames)),
                ("OutputNames", _display.format_value(self.OutputNames)),
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

    # ------------------------------------------------------------- running

    def predict(self, X, *args, **kwargs):
        """Run the network on ``X`` (MATLAB's ``Y = predict(net, X)``).

        Options: ``DataFormat`` (for unformatted input; the output is then unformatted)
        and ``Outputs`` (a layer name, or a list of names, whose outputs to return instead
        of the network output).
        """
        fname = "predict"
        opts = parse_name_value(fname, args, kwargs, ("DataFormat", "Outputs"))
        if not self.Initialized:
            raise ValueError("predict: the network must be initialized; build it with an "
                             "input layer, dlnetwork(layers, X), or call net.initialize(X)")
        data_format = opts.get("DataFormat")
        Xf = as_formatted(X, data_format, fname)
        wanted = opts.get("Outputs", self.OutputNames)
        single = isinstance(wanted, (str, np.str_))
        names = [wanted] if single else list(wanted)
        index = {layer.Name: i for i, layer in enumerate(self._layers)}
        for n in names:
            if n not in index:
                raise ValueError(f"predict: Outputs must name layers of the network "
                                 f"({', '.join(index)}), got '{n}'")
        last = max(index[n] for n in names)
        outputs = {}
        Y = Xf
        for i, layer in enumerate(self._layers[:last + 1]):
            try:
                layer._check_format(Y, fname)
                Y = layer._forward(Y, fname)
            except (ValueError, TypeError) as exc:
                raise _layer_error(fname, i + 1, layer, exc) from exc
            outputs[layer.Name] = Y
        result = [outputs[n] for n in names]
        if data_format is not None and data_format != "":
            result = [stripdims(r) for r in result]
        if single or "Outputs" not in opts:
            return result[0]
        return tuple(result)

    # ------------------------------------------------------------- analysis

    def summary(self):
        """Print MATLAB's ``summary(net)``: initialization, learnables, inputs."""
        print(_summary_text(self), end="")

    def _layer_info(self):
        rows = []
        acts = self._activations or [None] * len(self._layers)
        for i, (layer, act) in enumerate(zip(self._layers, acts), start=1):
            params = [(p, getattr(layer, p)) for p in _learnable_names(layer)
                      if getattr(layer, p).size]
            rows.append((i, layer.Name, _type(layer),
                         _activation_text(*act) if act else "",
                         ", ".join(f"{p} {_display.format_size(_display.trim_shape(a.shape))}"
                                   for p, a in params) or "-",
                         sum(int(a.size) for _, a in params)))
        return rows


# --------------------------------------------------------------------------- analysis

class NetworkAnalysis:
    """The result of :func:`analyzeNetwork`: ``LayerInfo`` (a :class:`Table`),
    ``TotalLearnables``, and a text display of the table."""

    def __init__(self, net):
        self.Network = net
        self.LayerInfo = Table(("Index", "Name", "Type", "Activations", "LearnableSizes",
                                "NumLearnables"), net._layer_info())
        self.TotalLearnables = sum(r.NumLearnables for r in self.LayerInfo)

    def __repr__(self):
        rows = [("#", "Name", "Type", "Activations", "Learnable sizes", "Learnables")]
        rows += [(str(r.Index), f"'{r.Name}'", r.Type, r.Activations, r.LearnableSizes,
                  str(r.NumLearnables)) for r in self.LayerInfo]
        widths = [max(len(r[j]) for r in rows) for j in range(6)]
        n = len(self.LayerInfo)
        lines = [f"  Network analysis: {n} layers, {self.TotalLearnables} learnables", ""]
        for k, r in enumerate(rows):
            lines.append("    " + r[0].rjust(widths[0]) + "   " + "   ".join(
                c.ljust(w) for c, w in zip(r[1:5], widths[1:5])) + "   "
                + r[5].rjust(widths[5]))
            if k == 0:
                lines.append("")
        lines += ["", f"  Total learnables: {self.TotalLearnables}", ""]
        return "\n".join(lines)

    __str__ = __repr__


def analyzeNetwork(net, *X):
    """Layer-by-layer analysis of a network or layer array (MATLAB's ``analyzeNetwork``).

    Prints, per layer, its name, type, activation size (one observation), learnable sizes
    and number of learnables, then the total, and returns a :class:`NetworkAnalysis`
    (MATLAB R2023a+: ``info = analyzeNetwork(net, Plots="none")``).  A layer array is
    built into a ``dlnetwork`` first (``X``: example inputs if it has no input layer).

    Examples
    --------
    >>> info = ml.analyzeNetwork(ml.dlnetwork(layers))
    >>> info.TotalLearnables
    """
    if not isinstance(net, dlnetwork):
        net = dlnetwork(net, *X)
    elif not net.Initialized:
        raise ValueError("analyzeNetwork: the network must be initialized; call "
                         "net.initialize(X) first")
    info = NetworkAnalysis(net)
    print(repr(info))
    return info


def summary(net):
    """MATLAB's ``summary(net)``: prints whether the network is initialized, its number of
    learnables and its inputs."""
    if not isinstance(net, dlnetwork):
        raise TypeError(f"summary: net must be a dlnetwork, got {type(net).__name__}")
    net.summary()


def _summary_text(net):
    total = sum(int(getattr(layer, p).size) for layer in net.Layers
                for p in _learnable_names(layer))
    first = net.Layers[0]
    lines = [f"   Initialized: {'true' if net.Initialized else 'false'}", "",
             f"   Number of learnables: {_count(total)}", "", "   Inputs:",
             f"      1   '{first.Name}'   {first._description()}", ""]
    return "\n".join(lines) + "\n"


register(dlnetwork, lambda net, X, *args, **kwargs: net.predict(X, *args, **kwargs))
