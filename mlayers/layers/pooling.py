"""Pooling layers: max and average pooling in 1-D, 2-D and 3-D, global pooling, max
unpooling (MATLAB classes MaxPooling1DLayer ... MaxUnpooling2DLayer).

MATLAB_SEMANTICS §2.2, §3.4, §8 item 10, §14.2:

* ``Stride`` defaults to 1 in every dimension, not to the pool size:
  ``maxPooling2dLayer(2)`` on a 4×4 input gives 3×3 (PyTorch's ``MaxPool2d(2)`` gives 2×2).
* ``Padding``: the conv forms of §3.3 (1-D ``p``/``[l r]``; 2-D ``p``/``[a b]``/
  ``[t b l r]``; 3-D ``p``/``[a b c]``/2×3) or ``'same'`` (§3.4 with Feff = PoolSize:
  ``out = ceil(in/Stride)``, the extra at the end).  Padding must be smaller than PoolSize.
* Max pooling: padded cells hold -realmax (they win only over -Inf).  Average pooling: ``PaddingValue`` 0 counts the
  padded cells as zeros (divisor = pool area); ``'mean'`` leaves them out (inferred).
* ``maxPooling2dLayer(..., HasUnpoolingOutputs=true)`` has three outputs ``out``,
  ``indices`` (1-based column-major linear indices into the whole input, ``out``'s format)
  and ``size`` (the input size, an unformatted 1-by-k dlarray), which
  ``maxUnpooling2dLayer`` (inputs ``in``, ``indices``, ``size``) consumes.
* Formats: 2-D layers ``SSCB``, ``SSCBT`` (time steps independent), ``SSC``, ``SSCT``;
  1-D and 3-D layers also take one S fewer with T as the last pooled dimension
  (``CBT`` pools T, ``SSCBT`` pools S, S, T), as their convolutions do.
* Global pooling keeps singleton S dimensions (``SSCB`` -> ``1×1×C×B``); where it pools T
  (``CBT`` in 1-D, ``SCBT`` in 2-D, ``SSCBT`` in 3-D) the T dimension is removed
  (``CBT`` -> ``CB``), as §14.2 lists.

Every forward is a call of the functional operations (:mod:`mlayers.functional.pooling`),
so ``predict``, ``forward`` and ``dlfeval`` share one path and one backward pass.
"""

__all__ = [
    "AveragePooling1DLayer", "AveragePooling2DLayer", "AveragePooling3DLayer",
    "GlobalAveragePooling1DLayer", "GlobalAveragePooling2DLayer", "GlobalAveragePooling3DLayer",
    "GlobalMaxPooling1DLayer", "GlobalMaxPooling2DLayer", "GlobalMaxPooling3DLayer",
    "MaxPooling1DLayer", "MaxPooling2DLayer", "MaxPooling3DLayer", "MaxUnpooling2DLayer",
    "averagePooling1dLayer", "averagePooling2dLayer", "averagePooling3dLayer",
    "globalAveragePooling1dLayer", "globalAveragePooling2dLayer", "globalAveragePooling3dLayer",
    "globalMaxPooling1dLayer", "globalMaxPooling2dLayer", "globalMaxPooling3dLayer",
    "maxPooling1dLayer", "maxPooling2dLayer", "maxPooling3dLayer", "maxUnpooling2dLayer",
]
import numpy as np

from .. import _autodiff, _ops, _ops_pool
from .. import _validate as V
from .._display import format_for_error, format_size, int2str_row, times
from .._props import REQUIRED, Layer, Prop, general_props, make_constructor, replace
from ..dlarray import dlarray, stripdims
from ..functional.pooling import avgpool, maxpool, maxunpool, pool_padding_value
from ._conv_family import (
    _ones,
    _padding_mode,
    _padding_size,
    _set_padding_size,
    _zero_pads,
    formats,
    same_padding,
)
from .input import logical

HYPER = "Hyperparameters"
_PAD_DOC = {1: "'same' or sizes: p or [l r]", 2: "'same' or sizes: p, [a b] or [t b l r]",
            3: "'same' or sizes: p, [a b c] or 2×3 [t l f; b r k]"}
_PAD_SIZE_DOC = {1: "padding [l r]", 2: "padding [t b l r]", 3: "padding 2×3 [t l f; b r k]"}


def _set_checked(name, store):
    """Store a value, then re-check padding < PoolSize (MATLAB checks on every change)."""
    def set_(layer, value, where):
        old = dict(layer._values)
        store(layer, value, where)
        try:
            layer._check_padding(where.fname)
        except ValueError:
            layer._values.clear()
            layer._values.update(old)
            raise
    return set_


def _store(name):
    def store(layer, value, where):
        layer._values[name] = value
    return store


def _num_outputs(layer):
    return 3 if layer._values.get("HasUnpoolingOutputs") else 1


def _output_names(layer):
    return ["out", "indices", "size"] if layer._values.get("HasUnpoolingOutputs") else ["out"]


def _tuple(v, nd):
    return (int(v),) if nd == 1 else tuple(int(e) for e in v)


def _pool_props(nd, extra):
    return (
        Prop("PoolSize", REQUIRED, V.size_vector(nd),
             set=_set_checked("PoolSize", _store("PoolSize")),
             doc="pooling region" + ("" if nd == 1 else f" (scalar or 1×{nd})")),
        Prop("Stride", _ones(nd), V.size_vector(nd),
             doc="step size, default " + ("1" if nd == 1 else "[" + " ".join("1" * nd) + "]")),
        Prop("Padding", _zero_pads(nd), V.padding_forms(nd, ("same",)), attribute=False,
             set=_set_checked("Padding", _store("Padding")), doc=_PAD_DOC[nd]),
        Prop("PaddingMode", None, get=_padding_mode, option=False,
             doc="'manual' or 'same'"),
        Prop("PaddingSize", None, V.padding_forms(nd, ()), get=_padding_size,
             set=_set_checked("PaddingSize", _set_padding_size), option=False,
             doc=_PAD_SIZE_DOC[nd]),
        *extra,
        *general_props(),
    )


def _pooled_dims(layer, dims):
    """Labels of the pooled dimensions of an input format: ``nd`` S dims, or the S dims
    and T when the input has one S fewer (1-D and 3-D layers, global 2-D)."""
    ns = dims.count("S")
    if ns == layer._nd:
        return "S" * ns
    return "S" * ns + "T"


def _pool_format(layer, dims):
    pooled = _pooled_dims(layer, dims)
    return pooled if "T" in pooled else None


def _pooled_sizes(dims, shape, pooled):
    sizes = [n for c, n in zip(dims, shape) if c == "S"]
    if "T" in pooled:
        sizes.append(shape[dims.index("T")])
    return sizes


def _replace_pooled(dims, shape, pooled, out):
    shape = list(shape)
    axes = [i for i, c in enumerate(dims) if c == "S"]
    if "T" in pooled:
        axes.append(dims.index("T"))
    for i, o in zip(axes, out):
        shape[i] = o
    return tuple(shape)


# --------------------------------------------------------------------------- local pooling

class PoolingLayer(Layer):
    """Behaviour shared by the max and average pooling layers; subclasses set ``_nd``,
    the kind and the tables."""

    _positional = ("PoolSize",)
    _nd = 2
    _kind = "max"
    _formats = ("SSCB", "SSCBT", "SSC", "SSCT")
    _family = "A"

    def _check(self, fname):
        self._check_padding(fname)

    def _check_padding(self, fname):
        if self._values["PoolSize"] is None or _padding_mode(self) != "manual":
            return
        nd = self._nd
        before, after = V.before_after(self._values["Padding"], nd)
        pool = _tuple(self._values["PoolSize"], nd)
        if any(max(b, a) >= p for b, a, p in zip(before, after, pool)):
            raise ValueError(f"{fname}: Padding must be smaller than PoolSize "
                             f"{format_for_error(self._values['PoolSize'])} in each "
                             f"dimension, got {format_for_error(self._values['Padding'])}")

    def _geometry(self):
        nd = self._nd
        return _tuple(self._values["PoolSize"], nd), _tuple(self._values["Stride"], nd)

    def _pads(self, in_size):
        """(before, after) for pooled sizes ``in_size``; 'same' resolved (and recorded for
        the PaddingSize display) here."""
        pool, stride = self._geometry()
        if _padding_mode(self) == "same":
            before, after = same_padding(in_size, stride, pool)
            self._state["same_padding"] = V.stored_form(before, after)
            return tuple(before), tuple(after)
        return V.before_after(self._values["Padding"], self._nd)

    def _output_shape(self, dims, shape, fname):
        pooled = _pooled_dims(self, dims)
        spatial = _pooled_sizes(dims, shape, pooled)
        before, after = self._pads(spatial)
        pool, stride = self._geometry()
        out = []
        for n, b, a, p, s in zip(spatial, before, after, pool, stride):
            if n + b + a < p:
                raise ValueError(f"{fname}: the padded input of {self._label()} "
                                 f"({format_size(spatial)} plus padding) must be at least "
                                 f"PoolSize {format_size(pool)}, got {n + b + a} along a "
                                 f"dimension of size {n}")
            out.append((n + b + a - p) // s + 1)
        return dims, _replace_pooled(dims, shape, pooled, out)

    def _op_args(self, dims, shape, fname):
        """(PoolSize, name-value arguments) of the functional call for inputs of format
        ``dims`` and size ``shape``, worked out (and checked) once per format and size."""
        key = ("op_args", dims, shape)
        entry = self._memo.get(key)
        if entry is None:
            self._output_shape(dims, shape, fname)  # size check with a layer message
            pooled = _pooled_dims(self, dims)
            before, after = self._pads(_pooled_sizes(dims, shape, pooled))
            pool, stride = self._geometry()
            kw = dict(Stride=stride, Padding=(tuple(before), tuple(after)))
            pf = _pool_format(self, dims)
            if pf:
                kw["PoolFormat"] = pf
            entry = self._memo[key] = (pool, kw, dict(self._state))
        pool, kw, state = entry
        self._state.update(state)   # the displayed 'same' PaddingSize follows the last input
        return pool, dict(kw)

    def _mode(self):
        if self._kind == "max":
            return "max"
        return "average-real" if self._values["PaddingValue"] == "mean" else "average"

    def _max22_state(self, specs, fname):
        """The layer's state after a run on inputs ``specs`` (its displayed 'same'
        PaddingSize) when it is then 2-D max pooling of 2 x 2, stride 2 and no padding of
        planes of even sizes, which a convolution before it can do as it writes its planes
        (dlnetwork._bind); else None."""
        (dims, shape, dtype), = specs
        if self._kind != "max" or self._values.get("HasUnpoolingOutputs") \
                or dims != "SSCB" or shape[0] % 2 or shape[1] % 2:
            return None
        pool, kw = self._op_args(dims, shape, fname)
        if (tuple(pool) != (2, 2) or tuple(kw["Stride"]) != (2, 2) or "PoolFormat" in kw
                or any(kw["Padding"][0]) or any(kw["Padding"][1])):
            return None
        return dict(self._state)

    def _predict_fn(self, specs, fname):
        """The kernels straight away for S..CB data (the functional operation's option
        handling and backward serve training)."""
        (dims, shape, dtype), = specs
        if self._values.get("HasUnpoolingOutputs") or dims[-2:] != "CB" \
                or dims.count("S") != len(dims) - 2:
            return None
        pool, kw = self._op_args(dims, shape, fname)
        if "PoolFormat" in kw:
            return None
        run = _ops_pool.pool_fn(shape, dtype, pool, kw["Stride"], kw["Padding"],
                                self._mode(), fname)
        # (as _op_args: the displayed 'same' PaddingSize)
        return _ops.with_state(run, self._state, dict(self._state))

    def _forward(self, X, fname):
        if not _autodiff.recording() and type(X) is dlarray:
            run = self._bound(X, fname)
            if run is not None:
                return dlarray._from_canonical(run(X._data), X._dims)
        pool, kw = self._op_args(X.dims, X.shape, fname)
        if self._kind == "max":
            return maxpool(X, pool, **kw)
        return avgpool(X, pool, PaddingValue=self._values["PaddingValue"], **kw)

    def _description(self):
        nd = self._nd
        pool = times().join(str(p) for p in _tuple(self._values["PoolSize"], nd))
        stride = self._values["Stride"]
        stride = str(int(stride)) if nd == 1 else int2str_row(stride)
        mode = _padding_mode(self)
        pad = "'same'" if mode == "same" else int2str_row(_padding_size(self))
        return f"{pool} {self._kind} pooling with stride {stride} and padding {pad}"


def _max_display(nd):
    return ((None, ("Name",)), (HYPER, ("PoolSize", "Stride", "PaddingMode", "PaddingSize")))


def _avg_display():
    return ((None, ("Name",)),
            (HYPER, ("PoolSize", "Stride", "PaddingMode", "PaddingSize", "PaddingValue")))


_AVG_EXTRA = (Prop("PaddingValue", 0.0, pool_padding_value,
                   doc="0 (padded cells count as zeros) or 'mean' (left out)"),)


class MaxPooling2DLayer(PoolingLayer):
    """2-D max pooling layer (MATLAB ``MaxPooling2DLayer``)."""

    _constructor = "maxPooling2dLayer"
    _summary = "2-D max pooling layer (Stride defaults to [1 1])."
    _props = replace(
        _pool_props(2, (Prop("HasUnpoolingOutputs", False, logical,
                             doc="add the 'indices' and 'size' outputs for max unpooling"),)),
        Prop("NumOutputs", None, get=_num_outputs, option=False, doc="number of outputs"),
        Prop("OutputNames", None, get=_output_names, option=False, doc="output names"),
    )
    _display = ((None, ("Name", "HasUnpoolingOutputs", "NumOutputs", "OutputNames")),
                (HYPER, ("PoolSize", "Stride", "PaddingMode", "PaddingSize")))
    _type_name = ("2-D Max Pooling", "Max Pooling")
    _default_name = "maxpool"
    _example = "maxPooling2dLayer(2, Stride=2, Name='pool1')"
    _example_input = ("SSCB", (6, 5, 3, 2))

    # (one output: HasUnpoolingOutputs is false, and _run below is Layer._run)
    _one_output_run_is_forward = True

    def _run(self, inputs, training, fname):
        if not self._values["HasUnpoolingOutputs"]:
            return super()._run(inputs, training, fname)
        X = inputs[0]
        self._check_format(X, fname)
        pool, kw = self._op_args(X.dims, X.shape, fname)
        Y, indx, size = maxpool(X, pool, nargout=3, **kw)
        return [Y, indx, dlarray(size.astype(np.float64).reshape(1, -1))], None

    def _forward(self, X, fname):
        if self._values["HasUnpoolingOutputs"]:
            return self._run([X], False, fname)[0][0]
        return super()._forward(X, fname)

    def _output_shapes(self, in_specs, fname):
        """Sizes of ``out``, ``indices`` and ``size``.  The ``size`` spec carries the
        *input's* format and size (its value at run time is that size as a 1-by-k
        vector), so that a connected max unpooling layer can propagate sizes."""
        dims, shape = in_specs[0]
        out = self._output_shape(dims, tuple(shape), fname)
        if not self._values["HasUnpoolingOutputs"]:
            return [out]
        return [out, out, (dims, tuple(shape))]


class AveragePooling2DLayer(PoolingLayer):
    """2-D average pooling layer (MATLAB ``AveragePooling2DLayer``)."""

    _constructor = "averagePooling2dLayer"
    _summary = "2-D average pooling layer (Stride defaults to [1 1])."
    _kind = "average"
    _props = _pool_props(2, _AVG_EXTRA)
    _display = _avg_display()
    _type_name = ("2-D Average Pooling", "Average Pooling")
    _default_name = "avgpool"
    _example = "averagePooling2dLayer(2, Stride=2, Padding='same', Name='avg1')"
    _example_input = ("SSCB", (5, 5, 3, 2))


class MaxPooling1DLayer(PoolingLayer):
    """1-D max pooling layer (MATLAB ``MaxPooling1DLayer``, R2021b)."""

    _constructor = "maxPooling1dLayer"
    _summary = "1-D max pooling layer (Stride defaults to 1)."
    _nd = 1
    _formats = formats(1, time_as_space=True)
    _props = _pool_props(1, ())
    _display = _max_display(1)
    _type_name = ("1-D Max Pooling", "1-D Max Pooling")
    _default_name = "maxpool"
    _example = "maxPooling1dLayer(3, Stride=2, Name='pool1')"
    _example_input = ("CBT", (3, 2, 9))


class AveragePooling1DLayer(PoolingLayer):
    """1-D average pooling layer (MATLAB ``AveragePooling1DLayer``, R2021b)."""

    _constructor = "averagePooling1dLayer"
    _summary = "1-D average pooling layer (Stride defaults to 1)."
    _nd = 1
    _kind = "average"
    _formats = formats(1, time_as_space=True)
    _props = _pool_props(1, _AVG_EXTRA)
    _display = _avg_display()
    _type_name = ("1-D Average Pooling", "1-D Average Pooling")
    _default_name = "avgpool"
    _example = "averagePooling1dLayer(3, Padding='same', Name='avg1')"
    _example_input = ("SCB", (8, 3, 2))


class MaxPooling3DLayer(PoolingLayer):
    """3-D max pooling layer (MATLAB ``MaxPooling3DLayer``)."""

    _constructor = "maxPooling3dLayer"
    _summary = "3-D max pooling layer (Stride defaults to [1 1 1])."
    _nd = 3
    _formats = formats(3, time_as_space=True)
    _props = _pool_props(3, ())
    _display = _max_display(3)
    _type_name = ("3-D Max Pooling", "3-D Max Pooling")
    _default_name = "maxpool"
    _example = "maxPooling3dLayer(2, Stride=2, Name='pool3')"
    _example_input = ("SSSCB", (4, 5, 4, 2, 2))


class AveragePooling3DLayer(PoolingLayer):
    """3-D average pooling layer (MATLAB ``AveragePooling3DLayer``)."""

    _constructor = "averagePooling3dLayer"
    _summary = "3-D average pooling layer (Stride defaults to [1 1 1])."
    _nd = 3
    _kind = "average"
    _formats = formats(3, time_as_space=True)
    _props = _pool_props(3, _AVG_EXTRA)
    _display = _avg_display()
    _type_name = ("3-D Average Pooling", "3-D Average Pooling")
    _default_name = "avgpool"
    _example = "averagePooling3dLayer([2, 2, 1], Padding='same', Name='avg3')"
    _example_input = ("SSSCB", (4, 5, 3, 2, 2))


# --------------------------------------------------------------------------- global pooling

class GlobalPoolingLayer(Layer):
    """Mean or max over every S dimension (and T where the format has one S fewer than
    ``_nd``), singleton S dimensions kept, a pooled T removed (§14.2)."""

    _props = general_props()
    _display = ((None, ("Name",)),)
    _family = "A"
    _nd = 2
    _kind = "max"

    def _pool_t(self, dims):
        return dims.count("S") < self._nd

    def _output_shape(self, dims, shape, fname):
        if self._pool_t(dims):
            t = dims.index("T")
            shape = tuple(1 if c == "S" else n for c, n in zip(dims, shape))
            return dims[:t] + dims[t + 1:], shape[:t] + shape[t + 1:]
        return dims, tuple(1 if c == "S" else n for c, n in zip(dims, shape))

    def _forward(self, X, fname):
        op = maxpool if self._kind == "max" else avgpool
        if not self._pool_t(X.dims):
            return op(X, "global")
        Y = op(X, "global", PoolFormat="S" * X.dims.count("S") + "T")
        out_dims = self._output_shape(X.dims, X.shape, fname)[0]
        return dlarray(stripdims(Y), out_dims)        # T is singleton now: drop it

    def _description(self):
        kind = "max" if self._kind == "max" else "average"
        return f"{self._nd}-D global {kind} pooling"


def _global(nd, kind, formats_, example_input):
    kind_cap = "Max" if kind == "max" else "Average"
    name = f"Global{kind_cap}Pooling{nd}DLayer"
    attrs = dict(
        __doc__=f"{nd}-D global {kind} pooling layer (MATLAB ``{name}``).",
        _constructor=f"global{kind_cap}Pooling{nd}dLayer",
        _summary=f"{nd}-D global {kind} pooling layer (singleton spatial dimensions kept).",
        _nd=nd, _kind=kind, _formats=formats_,
        _type_name=(f"{nd}-D Global {kind_cap} Pooling", f"Global {kind_cap} Pooling"),
        _default_name="gmpool" if kind == "max" else "gapool",
        _example=f"global{kind_cap}Pooling{nd}dLayer(Name='g{nd}')",
        _example_input=example_input,
        __module__=__name__,
    )
    return type(name, (GlobalPoolingLayer,), attrs)


_G1 = ("SCB", "SCBT", "SC", "SCT", "CBT", "CT")
_G2 = ("SSCB", "SSCBT", "SSC", "SSCT", "SCBT", "SCT")
_G3 = ("SSSCB", "SSSCBT", "SSSC", "SSSCT", "SSCBT", "SSCT")
GlobalAveragePooling1DLayer = _global(1, "average", _G1, ("CBT", (3, 2, 5)))
GlobalAveragePooling2DLayer = _global(2, "average", _G2, ("SSCB", (4, 5, 3, 2)))
GlobalAveragePooling3DLayer = _global(3, "average", _G3, ("SSSCB", (3, 4, 2, 3, 2)))
GlobalMaxPooling1DLayer = _global(1, "max", _G1, ("SCB", (7, 3, 2)))
GlobalMaxPooling2DLayer = _global(2, "max", _G2, ("SSCB", (4, 5, 3, 2)))
GlobalMaxPooling3DLayer = _global(3, "max", _G3, ("SSSCB", (3, 4, 2, 3, 2)))


# --------------------------------------------------------------------------- unpooling

class MaxUnpooling2DLayer(Layer):
    """2-D max unpooling layer (MATLAB ``MaxUnpooling2DLayer``): inputs ``in`` (pooled
    data), ``indices`` and ``size`` from a ``maxPooling2dLayer`` with
    ``HasUnpoolingOutputs=true``; writes each value at its index into zeros of the
    original size."""

    _constructor = "maxUnpooling2dLayer"
    _summary = "2-D max unpooling layer (inputs 'in', 'indices', 'size')."
    _props = general_props(input_names=("in", "indices", "size"))
    _display = ((None, ("Name", "NumInputs", "InputNames")),)
    _type_name = ("Max Unpooling", "Max Unpooling")
    _default_name = "maxunpool"
    _family = "A"
    _formats = ()            # three inputs of different kinds: checked in _run
    _example = "maxUnpooling2dLayer(Name='unpool')"
    _example_input = None

    def _run(self, inputs, training, fname):
        if len(inputs) != 3:
            raise ValueError(f"{fname}: {self._label()} needs 3 inputs (in, indices, size), "
                             f"got {len(inputs)}")
        Y, indx, size = inputs
        if Y.dims not in ("SSCB", "SSCBT", "SSC", "SSCT"):
            raise ValueError(f"{fname}: the input format of {self._label()} must be one of "
                             f"'SSCB', 'SSCBT', 'SSC', 'SSCT', got '{Y.dims}'")
        s = size.data if isinstance(size, dlarray) else np.asarray(size)
        return [maxunpool(Y, indx, s.reshape(-1))], None

    def _forward(self, X, fname):
        raise ValueError(f"{fname}: {self._label()} has three inputs (in, indices, size); "
                         f"run it in a network after a maxPooling2dLayer with "
                         f"HasUnpoolingOutputs=true")

    def _output_shapes(self, in_specs, fname):
        if len(in_specs) != 3:
            raise ValueError(f"{fname}: {self._label()} needs 3 inputs (in, indices, size), "
                             f"got {len(in_specs)}")
        (dims, shape), (idims, ishape), (sdims, sshape) = in_specs
        if tuple(ishape) != tuple(shape):
            raise ValueError(f"{fname}: the 'indices' input of {self._label()} must have the "
                             f"size of 'in' ({format_size(shape)}), got "
                             f"{format_size(ishape)}")
        if sdims != dims:
            raise ValueError(f"{fname}: the 'size' input of {self._label()} must come from "
                             f"the 'size' output of a maxPooling2dLayer with "
                             f"HasUnpoolingOutputs=true")
        return [(dims, tuple(sshape))]

    def _description(self):
        return "Max Unpooling"


maxPooling1dLayer = make_constructor(MaxPooling1DLayer)
maxPooling2dLayer = make_constructor(MaxPooling2DLayer)
maxPooling3dLayer = make_constructor(MaxPooling3DLayer)
averagePooling1dLayer = make_constructor(AveragePooling1DLayer)
averagePooling2dLayer = make_constructor(AveragePooling2DLayer)
averagePooling3dLayer = make_constructor(AveragePooling3DLayer)
globalAveragePooling1dLayer = make_constructor(GlobalAveragePooling1DLayer)
globalAveragePooling2dLayer = make_constructor(GlobalAveragePooling2DLayer)
globalAveragePooling3dLayer = make_constructor(GlobalAveragePooling3DLayer)
globalMaxPooling1dLayer = make_constructor(GlobalMaxPooling1DLayer)
globalMaxPooling2dLayer = make_constructor(GlobalMaxPooling2DLayer)
globalMaxPooling3dLayer = make_constructor(GlobalMaxPooling3DLayer)
maxUnpooling2dLayer = make_constructor(MaxUnpooling2DLayer)
