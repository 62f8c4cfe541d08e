"""maxPooling2dLayer and averagePooling2dLayer (MATLAB classes MaxPooling2DLayer,
AveragePooling2DLayer).

MATLAB_SEMANTICS §2.2, §3.4, §8 item 10:

* ``Stride`` defaults to ``[1 1]``, not to the pool size: ``maxPooling2dLayer(2)`` on a
  4×4 input gives 3×3 (PyTorch's ``MaxPool2d(2)`` gives 2×2).
* ``Padding``: ``[0 0 0 0]``, a scalar, ``[a b]``, ``[t b l r]`` or ``'same'`` (§3.4 with
  Feff = PoolSize: ``out = ceil(in/Stride)``, the extra row/column at the bottom/right).
  Padding must be smaller than PoolSize.
* Max pooling: padded cells never win.  Average pooling: ``PaddingValue`` 0 counts the
  padded cells as zeros (divisor = pool area); ``'mean'`` leaves them out (inferred).
* ``HasUnpoolingOutputs`` (max pooling) is constructible and displayed; such a layer has
  three outputs ``{'out' 'indices' 'size'}`` that only a max-unpooling layer consumes,
  which mlayers does not provide, so ``predict`` raises ``ValueError`` for it.

Computation: :func:`mlayers._ops.pool` on ``S×S×C×N`` data (T folded into N).
"""

__all__ = ["AveragePooling2DLayer", "MaxPooling2DLayer", "averagePooling2dLayer", "maxPooling2dLayer"]
import numpy as np

from .. import _ops
from .. import _validate as V
from .._display import format_for_error, format_size, int2str_row, times
from .._options import validatestring
from .._props import REQUIRED, Layer, Prop, general_props, make_constructor, replace
from ._conv_family import (
    _padding_mode,
    _padding_size,
    _set_padding_size,
    _zero_pads,
    fold,
    same_padding,
)
from .input import logical

HYPER = "Hyperparameters"


def _pool_padding_value(value, where):
    """Average pooling PaddingValue: 0 or 'mean'."""
    if isinstance(value, (str, np.str_)):
        return validatestring(value, ("mean",), where.fname, where.name)
    return V.real_scalar(value, where, "0 or 'mean'", lambda x: x == 0)


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


def _pool_props(extra):
    ones = np.ones(2, dtype=np.int64)
    ones.flags.writeable = False
    props = (
        Prop("PoolSize", REQUIRED, V.size_vector(2),
             set=_set_checked("PoolSize", _store("PoolSize")),
             doc="pooling region [h w] (scalar or 1×2)"),
        Prop("Stride", ones, V.size_vector(2), doc="step size, default [1 1]"),
        Prop("Padding", _zero_pads(2), V.padding_forms(2, ("same",)), attribute=False,
             set=_set_checked("Padding", _store("Padding")),
             doc="'same' or sizes: p, [a b] or [t b l r]"),
        Prop("PaddingMode", None, get=_padding_mode, option=False,
             doc="'manual' or 'same'"),
        Prop("PaddingSize", None, V.padding_forms(2, ()), get=_padding_size,
             set=_set_checked("PaddingSize", _set_padding_size), option=False,
             doc="padding [t b l r]"),
        *extra,
        *general_props(),
    )
    return props


class PoolingLayer(Layer):
    """Behaviour shared by the 2-D pooling layers; subclasses set the mode and tables."""

    _positional = ("PoolSize",)
    _formats = ("SSCB", "SSCBT", "SSC", "SSCT")
    _nd = 2

    def _check(self, fname):
        self._check_padding(fname)

    def _check_padding(self, fname):
        if self._values["PoolSize"] is None or _padding_mode(self) != "manual":
            return
        before, after = V.before_after(self._values["Padding"], 2)
        pool = tuple(int(p) for p in self._values["PoolSize"])
        if any(max(b, a) >= p for b, a, p in zip(before, after, pool)):
            raise ValueError(f"{fname}: Padding must be smaller than PoolSize "
                             f"{format_for_error(np.array(pool))} in each dimension, got "
                             f"{format_for_error(self._values['Padding'])}")

    def _pads(self, in_size):
        """(before, after) for an input of spatial size ``in_size``; 'same' resolved here."""
        if _padding_mode(self) == "same":
            before, after = same_padding(in_size, tuple(int(s) for s in self._values["Stride"]),
                                         tuple(int(p) for p in self._values["PoolSize"]))
            self._state["same_padding"] = V.stored_form(before, after)
            return before, after
        return V.before_after(self._values["Padding"], 2)

    def _output_shape(self, dims, shape, fname):
        spatial = shape[:2]
        before, after = self._pads(spatial)
        pool = self._values["PoolSize"]
        stride = self._values["Stride"]
        out = []
        for n, b, a, p, s in zip(spatial, before, after, pool, stride):
            if n + b + a < p:
                raise ValueError(f"{fname}: the padded input of {self._label()} "
                                 f"({format_size(spatial)} plus padding) must be at least "
                                 f"PoolSize {format_size(pool)}, got {n + b + a} along a "
                                 f"dimension of size {n}")
            out.append((n + b + a - int(p)) // int(s) + 1)
        return dims, tuple(out) + tuple(shape[2:])

    def _forward(self, X, fname):
        self._output_shape(X.dims, X.shape, fname)      # size check with a layer message
        x, restore = fold(X, 2)
        before, after = self._pads(x.shape[:2])
        y = _ops.pool(x, tuple(int(p) for p in self._values["PoolSize"]),
                      tuple(int(s) for s in self._values["Stride"]),
                      np.array([before, after]), self._mode(), fname)
        return restore(y)

    def _description_text(self, kind):
        pool = times().join(str(int(p)) for p in self._values["PoolSize"])
        mode = _padding_mode(self)
        pad = "'same'" if mode == "same" else int2str_row(_padding_size(self))
        return (f"{pool} {kind} pooling with stride {int2str_row(self._values['Stride'])} "
                f"and padding {pad}")


class MaxPooling2DLayer(PoolingLayer):
    """2-D max pooling layer (MATLAB ``MaxPooling2DLayer``)."""

    _constructor = "maxPooling2dLayer"
    _summary = "2-D max pooling layer (Stride defaults to [1 1])."
    _props = replace(
        _pool_props((Prop("HasUnpoolingOutputs", False, logical,
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

    def _mode(self):
        return "max"

    def _output_shape(self, dims, shape, fname):
        # Checked here, so that dlnetwork refuses the layer when it is built, not only
        # when it runs (_forward calls _output_shape first).
        if self._values["HasUnpoolingOutputs"]:
            raise ValueError(f"{fname}: {self._label()} has HasUnpoolingOutputs = 1; its "
                             f"'indices' and 'size' outputs feed a max unpooling layer, which "
                             f"mlayers does not provide; set HasUnpoolingOutputs to false")
        return super()._output_shape(dims, shape, fname)

    def _description(self):
        return self._description_text("max")


class AveragePooling2DLayer(PoolingLayer):
    """2-D average pooling layer (MATLAB ``AveragePooling2DLayer``)."""

    _constructor = "averagePooling2dLayer"
    _summary = "2-D average pooling layer (Stride defaults to [1 1])."
    _props = _pool_props((Prop("PaddingValue", 0.0, _pool_padding_value,
                               doc="0 (padded cells count as zeros) or 'mean' (left out)"),))
    _display = ((None, ("Name",)),
                (HYPER, ("PoolSize", "Stride", "PaddingMode", "PaddingSize", "PaddingValue")))
    _type_name = ("2-D Average Pooling", "Average Pooling")
    _default_name = "avgpool"
    _example = "averagePooling2dLayer(2, Stride=2, Padding='same', Name='avg1')"
    _example_input = ("SSCB", (5, 5, 3, 2))

    def _mode(self):
        return "average-real" if self._values["PaddingValue"] == "mean" else "average"

    def _description(self):
        return self._description_text("average")


maxPooling2dLayer = make_constructor(MaxPooling2DLayer)
averagePooling2dLayer = make_constructor(AveragePooling2DLayer)
