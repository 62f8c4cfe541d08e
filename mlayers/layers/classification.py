"""classificationLayer (MATLAB class ClassificationOutputLayer).

An output layer holds the loss used in training (cross-entropy over mutually exclusive
classes, ``'crossentropyex'``).  It has no role in prediction: MATLAB's ``predict`` does
not run output layers.  Package default (MATLAB_SEMANTICS §2.2): ``predict`` on the layer
is the identity, and ``ml.dlnetwork`` drops a trailing classification layer.
"""

__all__ = ["ClassificationOutputLayer", "classificationLayer"]
import numpy as np

from .. import _validate as V
from .._display import format_for_error, times
from .._options import validatestring
from .._props import Layer, Prop, general_props, make_constructor

HYPER = "Hyperparameters"


class categorical:  # MATLAB's class name
    """The class names of a classification layer, as MATLAB's categorical column.

    Iterates and indexes like a list of ``str``; displays as ``[N×1 categorical]``.
    """

    __slots__ = ("_names",)

    def __init__(self, names):
        self._names = tuple(str(n) for n in names)

    def __len__(self):
        return len(self._names)

    def __iter__(self):
        return iter(self._names)

    def __getitem__(self, i):
        return self._names[i]

    def __eq__(self, other):
        return list(self._names) == [str(n) for n in other] \
            if isinstance(other, (categorical, list, tuple)) else NotImplemented

    def __hash__(self):
        return hash(self._names)

    def __repr__(self):
        return f"[{len(self._names)}{times()}1 categorical]"


def _classes(value, where):
    """'auto' or class names (a list of text, or a categorical); names must be unique.

    A categorical array (``ml.categorical``) gives its categories, in order (MATLAB's
    ``categories(C)``, as ``trainNetwork`` sets them)."""
    if isinstance(value, (str, np.str_)):
        return validatestring(value, ("auto",), where.fname, where.name)
    constraint = "'auto' or a list of unique class names (text)"
    if type(value).__name__ == "categorical" and \
            type(value).__module__.startswith("mlayers.training"):
        from ..training.categorical import categories
        value = categories(value)
    if isinstance(value, np.ndarray) and value.dtype.kind in "US":
        value = value.reshape(-1).tolist()
    if not isinstance(value, (list, tuple, categorical)) or len(value) == 0 or \
            not all(isinstance(v, (str, np.str_)) for v in value):
        raise where.error(constraint, value, TypeError)
    names = [str(v) for v in value]
    if len(set(names)) != len(names):
        raise where.error(constraint, value)
    return categorical(names)


def _class_weights(value, where):
    """'none' or a vector of positive finite weights, one per class."""
    if isinstance(value, (str, np.str_)):
        return validatestring(value, ("none",), where.fname, where.name)
    constraint = "'none' or a vector of positive finite weights"
    a = V.real_array(value, where, constraint)
    flat = a.reshape(-1).astype(np.float64)
    if flat.size == 0 or not np.all(np.isfinite(flat)) or np.any(flat <= 0) \
            or sum(s != 1 for s in a.shape) > 1:
        raise where.error(constraint, value)
    return flat.reshape(-1, 1)


def _output_size(layer):
    classes = layer._values["Classes"]
    return "auto" if isinstance(classes, str) else len(classes)


class ClassificationOutputLayer(Layer):
    """Classification output layer (MATLAB ``ClassificationOutputLayer``)."""

    _constructor = "classificationLayer"
    _summary = ("Classification output layer (cross-entropy loss); the identity in "
                "predict, dropped by dlnetwork.")
    _positional = ()
    _props = (
        Prop("Classes", "auto", _classes, doc="'auto' or the class names"),
        Prop("ClassWeights", "none", _class_weights,
             doc="'none' or one positive weight per class"),
        Prop("OutputSize", None, get=_output_size, option=False,
             doc="number of classes, 'auto' until Classes are known"),
        Prop("LossFunction", "crossentropyex", readonly=True, option=False,
             doc="'crossentropyex'"),
        *general_props(output_names=()),
    )
    _display = ((None, ("Name", "Classes", "ClassWeights", "OutputSize")),
                (HYPER, ("LossFunction",)))
    _type_name = ("Classification Output", "Classification Output")
    _default_name = "classoutput"
    _example = "classificationLayer(Name='output')"
    _example_input = ("CB", (5, 2))
    _is_output_layer = True
    _output_kind = "classification"          # (the loss training takes from it)

    def _check(self, fname):
        w, classes = self._values["ClassWeights"], self._values["Classes"]
        if not isinstance(w, str) and not isinstance(classes, str) and w.size != len(classes):
            raise ValueError(f"{fname}: ClassWeights must have one weight per class "
                             f"({len(classes)}), got {format_for_error(w.reshape(-1))}")

    def _description(self):
        classes = self._values["Classes"]
        if isinstance(classes, str):
            return "crossentropyex"
        if len(classes) == 1:
            return f"crossentropyex with '{classes[0]}'"
        return f"crossentropyex with '{classes[0]}' and {len(classes) - 1} other classes"

    def _output_shape(self, dims, shape, fname):
        return dims, shape

    def _forward(self, X, fname):
        return X

    def _loss(self, Y, T):
        """Training loss, MATLAB's crossentropyex (MATLAB_SEMANTICS §16.5)::

            loss = -sum(w_i .* T .* log(max(Y, eps('single')))) / N

        summed over classes (C) and any S and T dimensions, ``N`` the number of
        observations (the size of B), ``w`` the ClassWeights per class (1 for 'none').
        Built from :func:`mlayers.max` (the clamp at ``eps('single')`` for both dtypes)
        and :func:`mlayers.crossentropy` (the sum, weights and ``N``); a scalar dlarray,
        traced inside ``dlfeval``.

        Parameters
        ----------
        Y : dlarray
            The network's formatted output (probabilities along C).
        T : numpy array or dlarray
            One-hot targets of Y's size, in Y's stored (canonical) order when unformatted.
        """
        from ..functional.mathfun import max as _max
        from ..functional.losses import crossentropy
        dtype = Y.dtype if Y.dtype in (np.float32, np.float64) else np.dtype(np.float64)
        Yc = _max(Y, dtype.type(np.finfo(np.float32).eps))
        w = self._values["ClassWeights"]
        if isinstance(w, str):
            return crossentropy(Yc, T)
        c = Y.shape[Y.dims.index("C")]
        if w.size != c:
            raise ValueError(f"crossentropyex: ClassWeights of {self._label()} must have one "
                             f"weight per class ({c}), got {w.size}")
        return crossentropy(Yc, T, Weights=w.reshape(-1).astype(dtype), WeightsFormat="C")


classificationLayer = make_constructor(ClassificationOutputLayer)
