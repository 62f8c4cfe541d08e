"""Layer declarations: one property table per layer generates everything else.

A layer is a class that *declares*:

* ``_constructor``   the MATLAB function name (``"transposedConv1dLayer"``);
* ``_positional``    the property names its required positional arguments set;
* ``_props``         a tuple of :class:`Prop` in MATLAB's class order (the order of the
                     "Show all properties" listing);
* ``_display``       the brief display: ``((None, names), ("Hyperparameters", names), ...)``;
* ``_type_name``     the layer-array Type column, ``(current, legacy)``;
* ``_description()`` the layer-array Description column;
* ``_forward(X, fname)`` the prediction on a formatted dlarray (optional).

From that, :class:`Layer` generates the constructor (MATLAB's positional + ``'Name', value``
pairs + ``Name=value`` keywords, through :mod:`mlayers._options`), the validation of every
value (constructor and assignment share the same converter), Python attributes with
MATLAB names, read-only errors, the docstrings, the brief display (``repr``), the full
listing (``show_all_properties``) and the layer-array row.

The brief display order differs from the class order in MATLAB (``NumChannels`` comes
second in the display but late in the class), so the groups are declared once per layer in
``_display`` rather than as a flag on each property.
"""
import numpy as np

from . import _defaults, _display, _empty
from ._cache import LRUCache
from ._options import parse_name_value
from .dlarray import as_formatted, stripdims
from ._validate import Where

REQUIRED = object()        # default of a property that a positional argument sets

#: every concrete layer class, in definition order (the contract test walks it)
LAYER_CLASSES = []


class ReadOnlyPropertyError(AttributeError, TypeError):
    """Assignment to a read-only layer property.

    Both an ``AttributeError`` (Python's convention for read-only attributes) and a
    ``TypeError`` (the package's error for a malformed call).
    """


class Prop:
    """One MATLAB property (or constructor-only option) of a layer.

    Parameters
    ----------
    name : str
        MATLAB name, e.g. ``"Stride"``.
    default : object
        Stored value before any argument; ``REQUIRED`` for positional arguments.
    convert : callable ``(value, where) -> value``, optional
        Validates and canonicalises a value (constructor and assignment alike); see
        :mod:`mlayers._validate`.
    readonly : bool
        Read-only after construction (an option may still set it in the constructor).
    option : bool
        Accepted as a constructor name-value option.
    attribute : bool
        Exposed as a layer attribute.  ``False`` for constructor-only options such as
        ``Padding``, which MATLAB turns into ``PaddingMode``/``PaddingSize``.
    get : callable ``(layer) -> value``, optional
        A derived property: computed, never stored.
    set : callable ``(layer, value, where)``, optional
        Stores a converted value when that involves other properties (size checks,
        inferring ``NumChannels`` from ``Weights``...).  Default: store it as it is.
    doc : str
        One-line description for the generated docstrings.
    """

    __slots__ = ("name", "default", "convert", "readonly", "option", "attribute", "get",
                 "set", "doc")

    def __init__(self, name, default=None, convert=None, *, readonly=False, option=True,
                 attribute=True, get=None, set=None, doc=""):
        self.name, self.default, self.convert = name, default, convert
        self.readonly, self.option, self.attribute = readonly, option, attribute
        self.get, self.set, self.doc = get, set, doc

    def __repr__(self):
        return f"Prop({self.name!r})"


def general_props(input_names=("in",), output_names=("out",)):
    """``Name, NumInputs, InputNames, NumOutputs, OutputNames``: every layer ends with these
    (§2.1; the last four read-only)."""
    from ._validate import text
    ins, outs = list(input_names), list(output_names)
    return (
        Prop("Name", "", text, doc="layer name"),
        Prop("NumInputs", len(ins), readonly=True, option=False, doc="number of inputs"),
        Prop("InputNames", None, get=lambda layer: list(ins), option=False,
             doc="input names"),
        Prop("NumOutputs", len(outs), readonly=True, option=False, doc="number of outputs"),
        Prop("OutputNames", None, get=lambda layer: list(outs), option=False,
             doc="output names"),
    )


def replace(props, *new):
    """A copy of the table ``props`` with the entries of the same name replaced by ``new``."""
    by_name = {p.name: p for p in new}
    out = tuple(by_name.pop(p.name, p) for p in props)
    if by_name:
        raise KeyError(f"replace: no property named {', '.join(by_name)}")
    return out


def _camel(name):
    return name[0].lower() + name[1:]


def _make_attribute(spec):
    def fget(self):
        if spec.get is not None:
            return spec.get(self)
        return self._values[spec.name]

    def fset(self, value):
        self._assign(spec, value, type(self).__name__, constructing=False)

    return property(fget, fset, doc=spec.doc)


def shallow_copy(obj):
    """``copy.copy`` of a layer or network (an object with a ``__dict__``) without the
    copy protocol's lookups, a third of its cost: every solver step copies the layers
    whose parameters it updates."""
    c = object.__new__(type(obj))
    c.__dict__.update(obj.__dict__)
    return c


class Compiled:
    """Objects that keep what they compiled for their inputs (a layer's per-size plans,
    a network's schedule) in attributes named in ``_compiled`` with the factory of their
    empty value: pickling leaves them out (they hold closures and bound kernels, made
    again on use); ``copy.copy`` keeps them."""

    _compiled = {}

    def __getstate__(self):
        state = dict(self.__dict__)
        for name, empty in self._compiled.items():
            state[name] = empty()
        return state

    __copy__ = shallow_copy


class Layer(Compiled):
    """Base class of every layer; subclasses only declare (see the module docstring)."""

    _constructor = None
    _positional = ()
    _optional_positional = ()   # properties an optional positional argument may set
    _props = ()
    _display = ()
    _type_name = ("", "")
    _summary = ""
    _example = None        # a constructor call, e.g. "transposedConv1dLayer(11, 96, Stride=4)"
    _example_input = None  # (format, shape) of a small input the example layer accepts
    _formats = ()          # accepted input formats (canonical); () accepts any
    #: display family (MATLAB_SEMANTICS §14.1): "A" for classic layer classes (own groups,
    #: "Show all properties" footer only with learnable parameters), "B" for layers on
    #: MATLAB's custom-layer base class (Name and the other non-learnable properties
    #: untitled, then the Learnable and State groups, always the footer)
    _family = "A"
    #: the footer decision; None applies the §14.1 rule (see ``_has_footer``)
    _footer = None
    _compiled = {"_memo": LRUCache}

    # ------------------------------------------------------------- class generation

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        _empty.install(cls)        # zero observations: one rule for every layer (_empty)
        cls._by_name = {p.name: p for p in cls._props}
        # Positional arguments are not name-value options (MATLAB rejects 'NumFilters', 8).
        cls._option_names = tuple(p.name for p in cls._props
                                  if p.option and p.name not in cls._positional)
        for p in cls._props:
            if p.attribute:
                setattr(cls, p.name, _make_attribute(p))
        if cls._constructor:
            for _, names in cls._display:
                for n in names:
                    if n not in cls._by_name:
                        raise TypeError(f"{cls.__name__}: display names unknown property {n}")
            cls.__doc__ = (cls.__doc__ or "") + "\n" + _class_doc(cls)
            LAYER_CLASSES.append(cls)

    # ------------------------------------------------------------- construction

    def __init__(self, *args, **kwargs):
        fname = self._constructor
        n = len(self._positional)
        if len(args) < n:
            missing = ", ".join(_camel(p) for p in self._positional[len(args):])
            raise TypeError(f"{fname}: missing required argument(s) {missing}; syntax: "
                            f"{_syntax(type(self))}")
        given = dict(zip(self._positional, args[:n]))
        rest = args[n:]
        # Optional positional arguments (dropoutLayer(p), eluLayer(alpha)): taken while
        # the next argument is not text (text starts the name-value pairs).
        for name in self._optional_positional:
            if not rest or isinstance(rest[0], (str, np.str_)):
                break
            given[name], rest = rest[0], rest[1:]
        options = parse_name_value(fname, rest, kwargs, self._option_names)
        for name in options:
            if name in given:
                raise TypeError(f"{fname}: {name} must be given once, as the positional "
                                f"argument or as a name-value option, got both")
        given.update(options)
        object.__setattr__(self, "_values", {})
        object.__setattr__(self, "_state", {})      # run-time state (resolved 'same' pads)
        # per-input-size plans, the few most recently used; any assignment clears it
        object.__setattr__(self, "_memo", LRUCache())
        for p in self._props:
            self._values[p.name] = None if p.default is REQUIRED else p.default
        # Table order, not call order: Weights are checked against FilterSize and
        # NumChannels whatever order the user wrote them in.
        for p in self._props:
            if p.name in given:
                self._assign(p, given[p.name], fname, constructing=True)
        self._check(fname)

    def _check(self, fname):
        """Cross-property checks after construction (override when needed)."""

    def _assign(self, spec, value, fname, constructing):
        if not constructing and (spec.readonly or (spec.get is not None and spec.set is None)):
            raise ReadOnlyPropertyError(f"{fname}: {spec.name} is read-only")
        where = Where(fname, spec.name, self)
        if spec.convert is not None:
            value = spec.convert(value, where)
        if spec.set is not None:
            spec.set(self, value, where)
        else:
            self._values[spec.name] = value
        self._memo.clear()
        global ASSIGNMENTS
        ASSIGNMENTS += 1

    def __setattr__(self, name, value):
        spec = type(self)._by_name.get(name)
        if name.startswith("_") or (spec is not None and spec.attribute):
            object.__setattr__(self, name, value)
            return
        raise AttributeError(f"{type(self).__name__}: unrecognized property '{name}'; "
                             f"properties are: {', '.join(self._property_names())}")

    # ------------------------------------------------------------- display

    @classmethod
    def _property_names(cls):
        return [p.name for p in cls._props if p.attribute]

    def _display_rows(self):
        return [(title, [(n, getattr(self, n)) for n in names])
                for title, names in self._display]

    @classmethod
    def _learnable_names(cls):
        """Names of the learnable parameters: ``_learnables`` when the class declares it,
        else ``Weights`` and ``Bias`` where the class has them."""
        names = cls.__dict__.get("_learnable_names_of_class")   # (per class, not inherited)
        if names is None:
            names = getattr(cls, "_learnables", None)
            if names is None:
                names = tuple(n for n in ("Weights", "Bias") if n in cls._by_name)
            names = tuple(names)
            setattr(cls, "_learnable_names_of_class", names)
        return names

    @classmethod
    def _has_footer(cls):
        """MATLAB's footer rule (§14.1, from MathWorks source; every transcript agrees):
        ``  Show all properties`` is printed by Family-B layers and by Family-A layers
        with learnable parameters only (not by input, output, pooling, dropout, ...)."""
        if cls._footer is not None:
            return bool(cls._footer)
        return cls._family == "B" or bool(cls._learnable_names())

    def __repr__(self):
        """MATLAB's ``disp(layer)``: from ``  <ClassName> with properties:`` to the footer
        (printed only where MATLAB prints it, see ``_has_footer``)."""
        return _display.layer_text(type(self).__name__, self._display_rows(),
                                   footer=self._has_footer())

    __str__ = __repr__

    def display(self, name="ans"):
        """Print MATLAB's ``name = `` display (what MATLAB prints for ``layer`` without ``;``)."""
        print(_display.named(name, repr(self)), end="")

    def _all_properties_text(self):
        rows = [(n, getattr(self, n)) for n in self._property_names()]
        return _display.layer_text(type(self).__name__, [(None, rows)], footer=False)

    def show_all_properties(self):
        """Print every property with its value, as MATLAB's "Show all properties" link does."""
        print(self._all_properties_text())

    # ------------------------------------------------------------- layer arrays

    def _layer_array_row(self):
        current, legacy = self._type_name
        type_ = legacy if _defaults.get("type_names") == "legacy" else current
        return (self.Name, type_, self._description())

    def _description(self):
        return ""

    # ------------------------------------------------------------- running

    def predict(self, X, *args, **kwargs):
        """Run the layer on ``X`` (MATLAB's ``predict``); returns a dlarray.

        ``X`` is a formatted dlarray, or a numpy array / unformatted dlarray with the
        ``DataFormat`` option (``DataFormat="SCB"`` or ``"DataFormat", "SCB"``); then the
        output is unformatted, in the same label order, as in MATLAB.  Empty learnables
        are initialized first from the input's channel count.
        """
        fname = "predict"
        DataFormat = (parse_name_value(fname, args, kwargs, ("DataFormat",)).get("DataFormat")
                      if args or kwargs else None)
        Xf = as_formatted(X, DataFormat, fname)
        self._check_format(Xf, fname)
        Y = self._forward(Xf, fname)
        if DataFormat is not None and DataFormat != "":
            # unformatted in, unformatted out: in the caller's label order when the layer
            # keeps the labels, else (e.g. SSCB -> CB) in MATLAB's canonical order
            same_labels = sorted(Y.dims) == sorted(str(DataFormat).upper())
            return stripdims(Y, DataFormat) if same_labels else stripdims(Y)
        return Y

    def _label(self):
        name = self._values["Name"]
        return f"{type(self).__name__} '{name}'" if name else type(self).__name__

    def _check_format(self, X, fname):
        if self._formats and X.dims not in self._formats:
            raise ValueError(f"{fname}: the input format of {self._label()} must be one of "
                             f"{', '.join(repr(f) for f in self._formats)}, got '{X.dims}'")

    def _forward(self, X, fname):
        raise NotImplementedError(f"{fname}: {type(self).__name__} has no prediction")

    # ------------------------------------------------------------- network execution
    # The graph executor (mlayers.network) runs every layer through _run.  During a
    # traced forward (inside dlfeval) the network hands each layer a copy whose
    # _values hold traced dlarrays for its learnables and state, so a layer's
    # forward must pass its parameters to the differentiable operations
    # (mlayers.functional), which accept dlarrays or numpy arrays alike.

    #: a layer whose own _run, given one input and one output, is Layer._run (the
    #: inference program then calls its _forward directly)
    _one_output_run_is_forward = False

    def _predict_fn(self, specs, fname):
        """Prediction as a function of the inputs' data alone, for inputs of ``specs``
        (one ``(format, size, dtype)`` per input), or None.

        The function takes the input arrays (canonical order, any memory layout) and
        returns the output's array: the numbers of ``_forward``/``_run`` without their
        per-call work (formats, options, wrapping).  The inference program binds one per
        input size (mlayers.network); layers with none run through ``_forward``/``_run``.
        It may keep what it works out from the sizes and the layer's properties (a
        property assignment makes the program again), but reads learnables when it runs.
        """
        return None

    def _bound(self, X, fname):
        """:meth:`_predict_fn` for the untraced dlarray X, kept in the layer's memo."""
        key = ("predict_fn", X._dims, X._data.shape, X._data.dtype)
        entry = self._memo.get(key)
        # (a clone copies the memo: its functions belong to the layer that made them)
        if entry is None or entry[0] is not self:
            entry = self._memo[key] = (self, self._predict_fn(
                ((X._dims, X._data.shape, X._data.dtype),), fname))
        return entry[1]

    def _run(self, inputs, training, fname):
        """Outputs for a list of formatted inputs, one per ``InputNames`` entry.

        Returns ``(outputs, state)``: a list with one dlarray per ``OutputNames`` entry,
        and a dict ``{state parameter: new value}`` (training-mode updates such as batch
        normalization's running statistics) or None.  ``training`` selects MATLAB's
        ``forward`` (batch statistics, dropout) over ``predict``.
        """
        if training:
            Y, state = self._forward_train(inputs[0], fname)
            return [Y], state
        return [self._forward(inputs[0], fname)], None

    def _forward_train(self, X, fname):
        """Training-mode output and state updates; the same as predict by default."""
        return self._forward(X, fname), None

    def initialize(self, num_channels=None):
        """Infer ``'auto'`` sizes from the input channel count and fill empty learnables.

        Called by ``predict`` on the first run and by ``dlnetwork`` when it is built.
        Layers without learnables do nothing.  Returns the layer.
        """
        return self


_empty.install(Layer)

#: property assignments so far, by any layer: a network's inference programs, which keep
#: what they worked out from its layers' properties, are made again when it changes
ASSIGNMENTS = 0


# --------------------------------------------------------------------------- constructors

def _syntax(cls):
    args = [_camel(p) for p in cls._positional]
    args += [f"[{_camel(p)}]" for p in cls._optional_positional]
    return f"{cls._constructor}({', '.join(args + ['Name=Value', '...'])})"


def _format_default(p):
    if p.default is REQUIRED:
        return "required"
    if p.default is None:
        return "[]"
    return _display.format_value(p.default)


def _class_doc(cls):
    lines = [_syntax(cls), ""]
    if cls._positional or cls._optional_positional:
        lines += ["Parameters", "-" * 10]
        for name in cls._positional + cls._optional_positional:
            p = cls._by_name[name]
            opt = ", optional" if name in cls._optional_positional else ""
            lines.append(f"{_camel(name)} : sets {name}{opt}" + (f", {p.doc}" if p.doc else ""))
        lines.append("")
    opts = [p for p in cls._props if p.option and p.name not in cls._positional]
    lines += ["Name-value options (case-insensitive; unique prefixes accepted; pairs or "
              "keywords)", "-" * 40]
    for p in opts:
        lines.append(f"{p.name} : default {_format_default(p)}")
        if p.doc:
            lines.append(f"    {p.doc}")
    lines += ["", "Properties (MATLAB class order; read-only ones marked)", "-" * 40]
    for p in cls._props:
        if p.attribute:
            ro = " (read-only)" if p.readonly or (p.get is not None and p.set is None) else ""
            lines.append(f"{p.name}{ro}" + (f" : {p.doc}" if p.doc else ""))
    if cls._example:
        lines += ["", "Examples", "-" * 8, f">>> layer = ml.{cls._example}",
                  ">>> print(layer)                      # MATLAB's property display"]
    return "\n".join(lines)


def make_constructor(cls):
    """The public MATLAB-named constructor function of a layer class."""
    def constructor(*args, **kwargs):
        return cls(*args, **kwargs)

    constructor.__name__ = constructor.__qualname__ = cls._constructor
    constructor.__module__ = cls.__module__
    constructor.__doc__ = (f"{cls._summary}\n\nReturns a {cls.__name__} "
                           f"(MATLAB's {cls._constructor}).\n\n{_class_doc(cls)}")
    return constructor


def properties(layer):
    """MATLAB's ``properties(layer)``: the list of public property names, in class order."""
    if not isinstance(layer, Layer):
        raise TypeError(f"properties: layer must be a layer, got {type(layer).__name__}")
    own = layer._own_properties() if hasattr(layer, "_own_properties") else []
    return own + layer._property_names()      # (a custom layer's own properties first)


# --------------------------------------------------------------------------- layer arrays

class LayerArray(list):
    """A list of layers with MATLAB's layer-array display (an N×1 ``Layer`` array).

    It is a plain Python ``list`` in every other respect; slicing returns a LayerArray.
    """

    def __getitem__(self, index):
        out = list.__getitem__(self, index)
        return LayerArray(out) if isinstance(index, slice) else out

    def __repr__(self):
        return _display.layer_array_text([layer._layer_array_row() for layer in self])

    __str__ = __repr__

    def display(self, name="layers"):
        """Print MATLAB's ``name = `` form of the layer-array display."""
        print(_display.named(name, repr(self)), end="")


def layer_array(layers):
    """A MATLAB layer array from a sequence of layers (``layers = [layer1; layer2; ...]``).

    Examples
    --------
    >>> layers = ml.layer_array([ml.convolution2dLayer(3, 8, Name="conv1"),
    ...                          ml.reluLayer(Name="relu1")])
    >>> layers            # "  2×1 Layer array with layers: ..."
    """
    if isinstance(layers, Layer):
        layers = [layers]
    try:
        items = list(layers)
    except TypeError:
        raise TypeError(f"layer_array: layers must be a sequence of layers, got "
                        f"{type(layers).__name__}") from None
    for i, layer in enumerate(items):
        if not isinstance(layer, Layer):
            raise TypeError(f"layer_array: element {i + 1} must be a layer, got "
                            f"{type(layer).__name__}")
    return LayerArray(items)
