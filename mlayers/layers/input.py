"""imageInputLayer and sequenceInputLayer (MATLAB classes ImageInputLayer, SequenceInputLayer).

Both layers normalize their input with given statistics (MATLAB_SEMANTICS §2.2)::

    'zerocenter'        x - Mean
    'zscore'            (x - Mean) ./ StandardDeviation
    'rescale-symmetric' 2*(x - Min) ./ (Max - Min) - 1
    'rescale-zero-one'  (x - Min) ./ (Max - Min)
    'none'              x
    callable            f(x)

Statistics are per element (the InputSize), per channel (``1×1×c``; ``c×1`` for vector
sequences) or one scalar, and broadcast over the observations (and time steps).  MATLAB
computes them while training; here they are given.  A layer run on its own with empty
statistics raises ``ValueError`` naming the missing property (§9.6); a ``dlnetwork`` fills
empty statistics with neutral values when it is built (see ``initialize``).
"""

__all__ = ["ImageInputLayer", "SequenceInputLayer", "FeatureInputLayer", "Image3DInputLayer",
           "imageInputLayer", "sequenceInputLayer", "featureInputLayer", "image3dInputLayer"]
import numpy as np

from .. import _ops
from .. import _validate as V
from .._display import format_for_error, format_size, times, trim_shape
from .._options import validatestring
from .._props import REQUIRED, Layer, Prop, general_props, make_constructor
from ..dlarray import dlarray

HYPER = "Hyperparameters"

NORMALIZATIONS = ("zerocenter", "zscore", "rescale-symmetric", "rescale-zero-one", "none")
NORMALIZATION_DIMENSIONS = ("auto", "channel", "element", "all")
AUGMENTATIONS = ("none", "randcrop", "randfliplr")

#: the statistics each mode uses, in MATLAB's display order (Max before Min, documented)
STATISTICS = {"zerocenter": ("Mean",), "zscore": ("Mean", "StandardDeviation"),
              "rescale-symmetric": ("Max", "Min"), "rescale-zero-one": ("Max", "Min")}


# --------------------------------------------------------------------------- converters

def logical(value, where):
    """A logical scalar (``true``/``false``, or the numbers 0 and 1) -> ``bool``."""
    constraint = "a logical scalar (True/False or 0/1)"
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    return bool(V.real_scalar(value, where, constraint, lambda x: x in (0, 1)))


def _normalization(value, where):
    if callable(value) and not isinstance(value, (str, np.str_)):
        return value
    if not isinstance(value, (str, np.str_)):
        raise where.error(", ".join(repr(n) for n in NORMALIZATIONS)
                          + " or a function handle (callable)", value, TypeError)
    return validatestring(value, NORMALIZATIONS, where.fname, where.name)


def _augmentation(value, where):
    """'none', 'randcrop', 'randfliplr', or a list of them (MATLAB's cell array)."""
    if isinstance(value, (list, tuple)) and value and \
            all(isinstance(v, (str, np.str_)) for v in value):
        return [validatestring(v, AUGMENTATIONS, where.fname, where.name) for v in value]
    if not isinstance(value, (str, np.str_)):
        raise where.error("'none', 'randcrop', 'randfliplr' or a list of them", value,
                          TypeError)
    return validatestring(value, AUGMENTATIONS, where.fname, where.name)


def _image_size(value, where):
    """``[h w]`` (one channel) or ``[h w c]`` -> read-only int64 ``[h w c]``."""
    constraint = f"a 1{times()}2 or 1{times()}3 vector of positive integers"
    a = V.real_array(value, where, constraint)
    if a.size not in (2, 3) or not (a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 1)):
        raise where.error(constraint, value)
    v = V.integers(a.reshape(-1), where, constraint, value, 1)
    if v.size == 2:
        v = np.append(v, 1)
    v.flags.writeable = False
    return v


def _image3d_size(value, where):
    """``[h w d]`` (one channel) or ``[h w d c]`` -> read-only int64 ``[h w d c]``."""
    constraint = f"a 1{times()}3 or 1{times()}4 vector of positive integers"
    a = V.real_array(value, where, constraint)
    if a.size not in (3, 4) or not (a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 1)):
        raise where.error(constraint, value)
    v = V.integers(a.reshape(-1), where, constraint, value, 1)
    if v.size == 3:
        v = np.append(v, 1)
    v.flags.writeable = False
    return v


def _sequence_size(value, where):
    """``c`` (vector sequences), ``[n c]`` (1-D image sequences), ``[h w c]`` (2-D)."""
    constraint = (f"a positive integer scalar, or a 1{times()}2 or 1{times()}3 vector of "
                  "positive integers")
    a = V.real_array(value, where, constraint)
    if a.size not in (1, 2, 3) or not (a.ndim <= 1 or (a.ndim == 2 and a.shape[0] == 1)):
        raise where.error(constraint, value)
    v = V.integers(a.reshape(-1), where, constraint, value, 1)
    if v.size == 1:
        return int(v[0])
    v.flags.writeable = False
    return v


def _set_statistic(name):
    """Store a statistic after checking its size against InputSize (see _stat_shapes)."""
    def set_(layer, a, where):
        if a is not None:
            allowed = list(dict.fromkeys(layer._stat_shapes()))      # unique, in order
            got = trim_shape(a.shape)
            if got not in [trim_shape(s) for s in allowed]:
                want = ", ".join(format_size(s) for s in allowed)
                raise ValueError(f"{where.fname}: {name} must be of size {want} "
                                 f"(a scalar, per channel or per element of InputSize), "
                                 f"got {format_size(a.shape)}")
        layer._values[name] = a
    return set_


def _get_statistic(name):
    def get(layer):
        a = layer._values[name]
        return np.zeros((0, 0)) if a is None else a
    return get


def _statistics_props():
    return tuple(Prop(n, None, V.learnable, get=_get_statistic(n), set=_set_statistic(n),
                      doc=doc) for n, doc in (
        ("Mean", "mean for 'zerocenter' and 'zscore'"),
        ("StandardDeviation", "standard deviation for 'zscore'"),
        ("Min", "minimum for the rescale modes"),
        ("Max", "maximum for the rescale modes")))


def _normalization_props(default, dimensions=NORMALIZATION_DIMENSIONS):
    return (
        Prop("Normalization", default, _normalization,
             doc="'zerocenter', 'zscore', 'rescale-symmetric', 'rescale-zero-one', 'none' "
                 "or a callable f(X)"),
        Prop("NormalizationDimension", "auto", V.choice(dimensions),
             doc=", ".join(f"'{d}'" for d in dimensions)
                 + " (how training computes the statistics)"),
        *_statistics_props(),
    )


# --------------------------------------------------------------------------- behaviour

class InputLayer(Layer):
    """Normalization shared by the input layers; subclasses give the shapes."""

    _formats = ()

    def _display_rows(self):
        # Only the chosen mode's statistics are displayed (documented for zerocenter and
        # the rescale modes; zscore inferred), so the statistics rows depend on the value.
        shown = set(STATISTICS.get(self._mode_name(), ()))
        rows = []
        for title, names in self._display:
            rows.append((title, [(n, getattr(self, n)) for n in names
                                 if n not in ("Mean", "StandardDeviation", "Min", "Max")
                                 or n in shown]))
        return rows

    def _mode_name(self):
        mode = self._values["Normalization"]
        return mode if isinstance(mode, str) else "custom"

    def _stat_rank(self):
        """Number of leading dimensions the statistics span (InputSize's rank)."""
        return len(self._full_shape())

    def _stat_shapes(self):
        full = self._full_shape()
        per_channel = (1,) * (len(full) - 1) + (self._channels(),)
        if len(full) == 2 and full[1] == 1:        # vector sequences: c×1
            per_channel = full
        return [(1, 1), per_channel, full]

    def _channels(self):
        full = self._full_shape()
        return full[0] if self._is_vector_sequence() else full[-1]

    def _is_vector_sequence(self):
        return False

    def initialize(self, num_channels=None, *, fname="initialize"):
        """Fill empty statistics of the chosen mode with neutral values.

        Package default (MATLAB's value is not documented here): per-channel ``Mean`` 0,
        ``StandardDeviation`` 1, and ``Min``/``Max`` that make the rescaling the identity
        (``[0 1]`` for ``'rescale-zero-one'``, ``[-1 1]`` for ``'rescale-symmetric'``), in
        single precision.  ``dlnetwork`` calls this when it is built.  Returns the layer.
        """
        mode = self._mode_name()
        neutral = {"Mean": 0.0, "StandardDeviation": 1.0, "Max": 1.0,
                   "Min": -1.0 if mode == "rescale-symmetric" else 0.0}
        shape = self._stat_shapes()[1]
        for name in STATISTICS.get(mode, ()):
            if self._values[name] is None:
                self._values[name] = np.full(shape, neutral[name], dtype=np.float32,
                                             order="F")
        return self

    def _normalize(self, X, fname):
        """Apply Normalization to the formatted dlarray ``X`` (statistics span its first
        dimensions and broadcast over B and T), through the differentiable arithmetic."""
        mode = self._values["Normalization"]
        if mode == "none":
            return X
        if callable(mode):
            # MATLAB hands the function the numeric data (not a dlarray); so does this
            y = mode(X.data)
            shape = y.shape if isinstance(y, dlarray) else np.shape(y)
            kind = (y.dtype if isinstance(y, dlarray) else np.asarray(y).dtype).kind
            if tuple(shape) != tuple(X.shape) or kind != "f":
                raise ValueError(f"{fname}: the Normalization function of {self._label()} "
                                 f"must return a real array of the input's size "
                                 f"{format_size(X.shape)}, got "
                                 f"{format_for_error(y.data if isinstance(y, dlarray) else y)}")
            return y if isinstance(y, dlarray) and y.dims == X.dims else \
                dlarray._from_canonical(np.asarray(y.data if isinstance(y, dlarray) else y),
                                        X.dims)
        stats = {}
        for name in STATISTICS[mode]:
            a = self._values[name]
            if a is None:
                raise ValueError(f"{fname}: {name} of {self._label()} must be set for "
                                 f"'{mode}' normalization, got []")
            # Statistics span the first InputSize dims; broadcast over B and T.
            lead = self._stat_rank()
            shape = trim_shape(a.shape) + (1,) * lead
            stats[name] = a.reshape(shape[:lead] + (1,) * (X.ndim - lead), order="F")
        # The package's dtype policy (_ops.compute_dtype): single only when the data and
        # every statistic are single.  Integer data are converted (never traced); traced
        # single data meet double statistics as dlarrays, so the arithmetic promotes.
        dtype = _ops.compute_dtype(X.data, *stats.values())
        if X.dtype.kind != "f":
            X = dlarray._from_canonical(X.data.astype(dtype), X.dims)
        s = {k: dlarray._from_canonical(v.astype(dtype, copy=False), "")
             for k, v in stats.items()}
        if mode == "zerocenter":
            return X - s["Mean"]
        if mode == "zscore":
            return (X - s["Mean"]) / s["StandardDeviation"]
        scaled = (X - s["Min"]) / (s["Max"] - s["Min"])
        return scaled * 2 - 1 if mode == "rescale-symmetric" else scaled

    def _split_complex(self, Y, c_axis):
        # Real input: the imaginary half is zero.  Channels 1..c hold the real parts and
        # c+1..2c the imaginary parts (documented for SplitComplexInputs).
        if not self._values["SplitComplexInputs"]:
            return Y
        from ..functional.mathfun import cat
        return cat(c_axis + 1, Y, dlarray._from_canonical(np.zeros_like(Y.data), Y.dims))

    def _check_size(self, X, fname):
        lead = X.dims.index("C") + 1
        got = X.shape[:lead]
        want = self._full_shape() if not self._is_vector_sequence() else (self._channels(),)
        if tuple(got) != tuple(want):
            raise ValueError(f"{fname}: the input of {self._label()} must be of size "
                             f"{format_size(want)} (InputSize) per observation, got "
                             f"{format_size(got)} (format '{X.dims}')")

    def _forward(self, X, fname):
        self._check_size(X, fname)
        Y = self._normalize(X, fname)
        return self._split_complex(Y, X.dims.index("C"))

    def _predict_fn(self, specs, fname):
        # the inference program checked the size when it ran the input of this size
        v = self._values
        if v["Normalization"] == "none" and not v.get("SplitComplexInputs"):
            return _same
        return None

    def _output_shape(self, dims, shape, fname):
        """Format and size of the output for an input of format ``dims`` and ``shape``."""
        c = dims.index("C")
        k = 2 if self._values["SplitComplexInputs"] else 1
        return dims, shape[:c] + (shape[c] * k,) + shape[c + 1:]


def _same(x):
    return x


_same.program = _ops.program_step("same", None, ())


class ImageInputLayer(InputLayer):
    """Image input layer (MATLAB ``ImageInputLayer``): 2-D images, format SSCB."""

    _constructor = "imageInputLayer"
    _summary = "Image input layer: checks the size of SSCB images and normalizes them."
    _positional = ("InputSize",)
    _props = (
        Prop("InputSize", REQUIRED, _image_size, readonly=True,
             doc="[h w c] (or [h w] for one channel)"),
        *_normalization_props("zerocenter"),
        Prop("SplitComplexInputs", False, logical,
             doc="split complex input into real and imaginary channels"),
        Prop("DataAugmentation", "none", _augmentation,
             doc="'none', 'randcrop', 'randfliplr' or a list (training only; legacy)"),
        *general_props(input_names=()),
    )
    _display = ((None, ("Name", "InputSize", "SplitComplexInputs")),
                (HYPER, ("DataAugmentation", "Normalization", "NormalizationDimension",
                         "Mean", "StandardDeviation", "Max", "Min")))
    _type_name = ("Image Input", "Image Input")
    _formats = ("SSCB", "SSC")
    _default_name = "imageinput"
    _example = "imageInputLayer([28, 28, 3], Normalization='none', Name='input')"
    _example_input = ("SSCB", (28, 28, 3, 2))

    def _full_shape(self):
        return tuple(int(v) for v in self._values["InputSize"])

    def _description(self):
        size = format_size(self._full_shape())
        mode = self._values["Normalization"]
        if mode == "none":
            return f"{size} images"
        if callable(mode):
            return f"{size} images with custom normalization"
        return f"{size} images with '{mode}' normalization"


class SequenceInputLayer(InputLayer):
    """Sequence input layer (MATLAB ``SequenceInputLayer``): CBT, SCBT or SSCBT."""

    _constructor = "sequenceInputLayer"
    _summary = ("Sequence input layer: c gives vector sequences (CBT), [n c] 1-D image "
                "sequences (SCBT), [h w c] 2-D image sequences (SSCBT).")
    _positional = ("InputSize",)
    _props = (
        Prop("InputSize", REQUIRED, _sequence_size, readonly=True,
             doc="c, [n c] or [h w c]"),
        Prop("MinLength", 1, V.positive_int, doc="minimum sequence length"),
        *_normalization_props("none"),
        Prop("SplitComplexInputs", False, logical,
             doc="split complex input into real and imaginary channels"),
        *general_props(input_names=()),
    )
    _display = ((None, ("Name", "InputSize", "MinLength", "SplitComplexInputs")),
                (HYPER, ("Normalization", "NormalizationDimension", "Mean",
                         "StandardDeviation", "Max", "Min")))
    _type_name = ("Sequence Input", "Sequence Input")
    _default_name = "sequenceinput"
    _example = "sequenceInputLayer(12, Name='seq')"
    _example_input = ("CBT", (12, 2, 5))

    @property
    def _formats(self):
        size = self._values["InputSize"]
        s = "S" * (0 if np.ndim(size) == 0 else len(size) - 1)
        # T may be absent (one time step), as may B (one observation).
        return (s + "CBT", s + "CB", s + "CT", s + "C")

    def _is_vector_sequence(self):
        return np.ndim(self._values["InputSize"]) == 0

    def _full_shape(self):
        size = self._values["InputSize"]
        if np.ndim(size) == 0:
            return (int(size), 1)
        return tuple(int(v) for v in size)

    def _stat_rank(self):
        return 1 if self._is_vector_sequence() else len(self._full_shape())

    def _check_size(self, X, fname):
        super()._check_size(X, fname)
        if "T" in X.dims and X.shape[X.dims.index("T")] < self._values["MinLength"]:
            raise ValueError(f"{fname}: the sequences given to {self._label()} must have at "
                             f"least MinLength ({self._values['MinLength']}) time steps, "
                             f"got {X.shape[X.dims.index('T')]}")

    def _description(self):
        size = self._values["InputSize"]
        text = str(size) if np.ndim(size) == 0 else format_size(size)
        return f"Sequence input with {text} dimensions"


class FeatureInputLayer(InputLayer):
    """Feature input layer (MATLAB ``FeatureInputLayer``, R2020b): feature vectors, CB."""

    _constructor = "featureInputLayer"
    _summary = ("Feature input layer: checks the number of features of CB data and "
                "normalizes them (Normalization 'none' by default).")
    _positional = ("InputSize",)
    _props = (
        Prop("InputSize", REQUIRED, V.positive_int, readonly=True,
             doc="number of features"),
        *_normalization_props("none", ("auto", "channel", "all")),
        Prop("SplitComplexInputs", False, logical,
             doc="split complex input into real and imaginary channels"),
        *general_props(input_names=()),
    )
    _display = ((None, ("Name", "InputSize", "SplitComplexInputs")),
                (HYPER, ("Normalization", "NormalizationDimension", "Mean",
                         "StandardDeviation", "Max", "Min")))
    _type_name = ("Feature Input", "Feature Input")
    _formats = ("CB", "C")
    _default_name = "featureinput"
    _example = "featureInputLayer(10, Name='features')"
    _example_input = ("CB", (10, 4))

    def _is_vector_sequence(self):
        return True                      # statistics are numFeatures×1, like vector sequences

    def _full_shape(self):
        return (int(self._values["InputSize"]), 1)

    def _stat_rank(self):
        return 1

    def _input_spec(self):
        return "CB", (int(self._values["InputSize"]), 1)

    def _description(self):
        return f"{self._values['InputSize']} features"


class Image3DInputLayer(InputLayer):
    """3-D image input layer (MATLAB ``Image3DInputLayer``): volumes, format SSSCB."""

    _constructor = "image3dInputLayer"
    _summary = ("3-D image input layer: checks the size of SSSCB volumes and normalizes "
                "them ('zerocenter' by default).")
    _positional = ("InputSize",)
    _props = (
        Prop("InputSize", REQUIRED, _image3d_size, readonly=True,
             doc="[h w d c] (or [h w d] for one channel)"),
        *_normalization_props("zerocenter"),
        Prop("SplitComplexInputs", False, logical,
             doc="split complex input into real and imaginary channels"),
        *general_props(input_names=()),
    )
    _display = ((None, ("Name", "InputSize", "SplitComplexInputs")),
                (HYPER, ("Normalization", "NormalizationDimension", "Mean",
                         "StandardDeviation", "Max", "Min")))
    _type_name = ("3-D Image Input", "3-D Image Input")
    _formats = ("SSSCB", "SSSC")
    _default_name = "image3dinput"
    _example = "image3dInputLayer([8, 8, 4, 2], Normalization='none', Name='vol')"
    _example_input = ("SSSCB", (8, 8, 4, 2, 2))

    def _full_shape(self):
        return tuple(int(v) for v in self._values["InputSize"])

    def _input_spec(self):
        return "SSSCB", self._full_shape() + (1,)

    def _description(self):
        size = format_size(self._full_shape())
        mode = self._values["Normalization"]
        if mode == "none":
            return f"{size} images"
        if callable(mode):
            return f"{size} images with custom normalization"
        return f"{size} images with '{mode}' normalization"


imageInputLayer = make_constructor(ImageInputLayer)
sequenceInputLayer = make_constructor(SequenceInputLayer)
featureInputLayer = make_constructor(FeatureInputLayer)
image3dInputLayer = make_constructor(Image3DInputLayer)
