"""Shared declarations and behaviour of the convolution family.

One table per flavour (convolution, transposed convolution, grouped convolution), built
for 1, 2 or 3 spatial dimensions; the per-layer files only pick one and add a name, a type
and the accepted input formats.  Arithmetic is MATLAB_SEMANTICS §3; every convolution
runs through :func:`mlayers._ops.conv` / :func:`mlayers._ops.conv_transpose`.
"""
import math
from typing import NamedTuple

import numpy as np

from .. import _autodiff, _defaults, _ops, _ops_norm
from .. import _validate as V
from .._display import format_for_error, format_size, int2str_row, times
from .._initializers import BIAS_INITIALIZERS, WEIGHTS_INITIALIZERS, initialize
from .._options import validatestring
from .._props import REQUIRED, Layer, Prop, general_props
from ..dlarray import dlarray

HYPER = "Hyperparameters"
LEARN = "Learnable Parameters"


# --------------------------------------------------------------------------- defaults

def _ones(nd):
    if nd == 1:
        return 1
    v = np.ones(nd, dtype=np.int64)
    v.flags.writeable = False
    return v


def _zero_pads(nd):
    return V.stored_form((0,) * nd, (0,) * nd)


def _as_tuple(v, nd):
    return (int(v),) if nd == 1 else tuple(int(e) for e in v)


# --------------------------------------------------------------------------- hooks

def _set_filter_size(layer, value, where):
    # Open question §9.8: changing FilterSize under existing Weights would silently
    # mismatch them, so it is refused until Weights are cleared.
    w = layer._values.get("Weights")
    if w is not None and _as_tuple(value, layer._nd) != tuple(w.shape[:layer._nd]):
        raise ValueError(f"{where.fname}: FilterSize must match the Weights "
                         f"({format_size(w.shape)}) while Weights are set, got "
                         f"{format_for_error(value)}; set Weights = [] first")
    layer._values["FilterSize"] = value


def learnable_getter(which):
    """Property getter for a learnable: MATLAB shows [] (0×0) until it is set."""
    def get(layer):
        a = layer._values[which]
        return np.zeros((0, 0)) if a is None else a
    return get


def _set_learnable(which):
    def set_(layer, a, where):
        if a is None:
            layer._values[which] = None
            return
        expected, legend = layer._learnable_size(which)
        a = V.check_size(a, expected, where, legend)
        layer._values[which] = a
        layer._fix_from_learnable(which, a)
    return set_


def _padding_mode(layer):
    p = layer._values["Padding"]
    return p if isinstance(p, str) else "manual"


def _padding_size(layer):
    p = layer._values["Padding"]
    mode = _padding_mode(layer)
    if mode == "same":
        # Resolved at run time from the input size; [] (0×0) until the layer has run
        # (§14.1, documented R2024a getlayer example; corrects Part 1 §3.4's zeros).
        return layer._state.get("same_padding", np.zeros((0, 0)))
    if mode == "causal":
        f, dil = layer._values["FilterSize"], layer._values["DilationFactor"]
        return V.stored_form(((f - 1) * dil,), (0,))
    return p


def _manual_size_setter(stored, mode_of):
    """Setter of PaddingSize/CroppingSize: MATLAB allows it only in 'manual' mode
    (nnet_cnn:layer:Layer:PaddingSizeCanOnlyBeSetInManualMode)."""
    def set_(layer, value, where):
        mode = mode_of(layer)
        if mode != "manual":
            raise ValueError(f"{where.fname}: {stored}Size can only be set when {stored}Mode "
                             f"is 'manual', got {stored}Mode '{mode}'")
        layer._values[stored] = value
    return set_


_set_padding_size = _manual_size_setter("Padding", _padding_mode)


def _cropping_mode(layer):
    c = layer._values["Cropping"]
    return c if isinstance(c, str) else "manual"


def same_padding(in_size, stride, feff):
    """Conv/pool 'same' (§3.4): out = ceil(in/S); the extra row/column goes to the end."""
    before, after = [], []
    for n, s, fe in zip(in_size, stride, feff):
        total = max((-(-n // s) - 1) * s + fe - n, 0)
        before.append(total // 2)
        after.append(total - total // 2)
    return tuple(before), tuple(after)


def same_cropping(feff, stride):
    """Transposed 'same' (§3.5): crop Feff - S with the extra at the end (switchable,
    §9.1), or, when Feff < S, no crop and S - Feff trailing bias-only positions
    (OutputSizeOffset).  Returns (before, after, offset)."""
    before, after, offset = [], [], []
    for fe, s in zip(feff, stride):
        total = fe - s
        lo, hi = (total // 2, total - total // 2) if total >= 0 else (0, 0)
        if _defaults.get("same_crop_extra") == "start":
            lo, hi = hi, lo
        before.append(lo)
        after.append(hi)
        offset.append(max(0, -total))
    return tuple(before), tuple(after), tuple(offset)


def _same_crop(layer):
    """Transposed 'same' of a layer: depends only on F and S, so it is concrete at
    construction (§3.5)."""
    nd = layer._nd
    return same_cropping(_as_tuple(layer._values["FilterSize"], nd),
                         _as_tuple(layer._values["Stride"], nd))


def _cropping_size(layer):
    if _cropping_mode(layer) == "same":
        before, after, _ = _same_crop(layer)
        return V.stored_form(before, after)
    return layer._values["Cropping"]


def _num_groups(value, where):
    if isinstance(value, (str, np.str_)):
        return validatestring(value, ("channel-wise",), where.fname, where.name)
    try:
        return V.positive_int(value, where)
    except (TypeError, ValueError):
        raise where.error("a positive integer scalar or 'channel-wise'", value,
                          TypeError if isinstance(value, (bool, np.bool_)) or value is None
                          else ValueError) from None


def _set_num_groups(layer, value, where):
    # Remember the constructor's choice: the description keeps saying "channel-wise"
    # after NumGroups has become the channel count.
    object.__setattr__(layer, "_channelwise", value == "channel-wise")
    layer._values["NumGroups"] = value


# --------------------------------------------------------------------------- tables

def learnable_props(weights_size, bias_size):
    """Initializers, learnables, factors and the general properties (MATLAB class order);
    shared by every layer with Weights and Bias."""
    return (
        Prop("WeightsInitializer", "glorot", V.initializer(WEIGHTS_INITIALIZERS),
             doc="'glorot', 'he', 'narrow-normal', 'zeros', 'ones' or a callable f(sz)"),
        Prop("BiasInitializer", "zeros", V.initializer(BIAS_INITIALIZERS),
             doc="'zeros', 'narrow-normal', 'ones' or a callable f(sz)"),
        Prop("Weights", None, V.learnable, get=learnable_getter("Weights"),
             set=_set_learnable("Weights"),
             doc=f"learnable weights, {weights_size} numpy array ([] until initialized)"),
        Prop("Bias", None, V.learnable, get=learnable_getter("Bias"), set=_set_learnable("Bias"),
             doc=f"learnable bias, {bias_size} ([] until initialized)"),
        Prop("WeightLearnRateFactor", 1.0, V.nonneg_factor, doc="learning-rate factor"),
        Prop("BiasLearnRateFactor", 1.0, V.nonneg_factor, doc="learning-rate factor"),
        Prop("WeightL2Factor", 1.0, V.nonneg_factor, doc="L2 regularization factor"),
        Prop("BiasL2Factor", 0.0, V.nonneg_factor, doc="L2 regularization factor"),
        *general_props(),
    )


def _filter_size(nd):
    return Prop("FilterSize", REQUIRED, V.size_vector(nd), set=_set_filter_size,
                doc="filter size" + ("" if nd == 1 else f" (scalar or 1×{nd})"))


def _padding_props(nd, modes):
    return (
        Prop("Padding", _zero_pads(nd), V.padding_forms(nd, modes), attribute=False,
             doc=" or ".join(f"'{m}'" for m in modes) + " or sizes: " + {
                 1: "p or [l r]", 2: "p, [a b] or [t b l r]",
                 3: "p, [a b c] or 2×3 [t l f; b r k]"}[nd]),
        Prop("PaddingSize", None, V.padding_forms(nd, ()), get=_padding_size,
             set=_set_padding_size, option=False,
             doc="padding " + {1: "[l r]", 2: "[t b l r]", 3: "2×3 [t l f; b r k]"}[nd]),
        Prop("PaddingMode", None, get=_padding_mode, option=False,
             doc="'manual', 'same'" + (" or 'causal'" if "causal" in modes else "")),
        Prop("PaddingValue", 0.0, V.padding_value,
             doc="a scalar, 'symmetric-include-edge', 'symmetric-exclude-edge' or "
                 "'replicate'"),
    )


def conv_props(nd):
    """Convolution1D/2D/3DLayer, in MATLAB's class order (§2.2; order inferred)."""
    modes = ("same", "causal") if nd == 1 else ("same",)
    return (
        _filter_size(nd),
        Prop("NumFilters", REQUIRED, V.positive_int, readonly=True, doc="number of filters"),
        Prop("Stride", _ones(nd), V.size_vector(nd), doc="step size"),
        Prop("DilationFactor", _ones(nd), V.size_vector(nd), doc="dilation factor"),
        *_padding_props(nd, modes),
        Prop("NumChannels", "auto", V.auto_or_positive_int, readonly=True,
             doc="number of input channels, 'auto' until known"),
        *learnable_props("FilterSize×NumChannels×NumFilters", "1×" * nd + "NumFilters"),
    )


def transposed_props(nd):
    """TransposedConvolution1D/2D/3DLayer (§2.2): no DilationFactor, no PaddingValue."""
    return (
        _filter_size(nd),
        Prop("NumFilters", REQUIRED, V.positive_int, readonly=True, doc="number of filters"),
        Prop("Stride", _ones(nd), V.size_vector(nd), doc="up-sampling factor"),
        Prop("Cropping", _zero_pads(nd), V.padding_forms(nd, ("same",)), attribute=False,
             doc="'same' or sizes: " + {1: "p or [l r]", 2: "p, [a b] or [t b l r]",
                                        3: "p, [a b c] or 2×3 [t l f; b r k]"}[nd]),
        Prop("CroppingMode", None, get=_cropping_mode, option=False,
             doc="'manual' or 'same'"),
        Prop("CroppingSize", None, V.padding_forms(nd, ()), get=_cropping_size,
             set=_manual_size_setter("Cropping", _cropping_mode), option=False,
             doc="cropping " + {1: "[l r]", 2: "[t b l r]", 3: "2×3 [t l f; b r k]"}[nd]),
        Prop("NumChannels", "auto", V.auto_or_positive_int, readonly=True,
             doc="number of input channels, 'auto' until known"),
        *learnable_props("FilterSize×NumFilters×NumChannels (filters first)", "1×" * nd + "NumFilters"),
    )


def grouped_props():
    """GroupedConvolution2DLayer (§2.2)."""
    return (
        _filter_size(2),
        Prop("NumGroups", REQUIRED, _num_groups, readonly=True, set=_set_num_groups,
             doc="number of groups or 'channel-wise'"),
        Prop("NumChannelsPerGroup", "auto", V.auto_or_positive_int, readonly=True,
             doc="channels per group, 'auto' until known"),
        Prop("NumFiltersPerGroup", REQUIRED, V.positive_int, readonly=True,
             doc="filters per group"),
        Prop("Stride", _ones(2), V.size_vector(2), doc="step size"),
        Prop("DilationFactor", _ones(2), V.size_vector(2), doc="dilation factor"),
        *_padding_props(2, ("same",)),
        *learnable_props("FilterSize×NumChannelsPerGroup×NumFiltersPerGroup×NumGroups",
               "1×1×NumFiltersPerGroup×NumGroups"),
    )


def conv_display(nd):
    return ((None, ("Name",)),
            (HYPER, ("FilterSize", "NumChannels", "NumFilters", "Stride", "DilationFactor",
                     "PaddingMode", "PaddingSize", "PaddingValue")),
            (LEARN, ("Weights", "Bias")))


TRANSPOSED_DISPLAY = ((None, ("Name",)),
                      (HYPER, ("FilterSize", "NumChannels", "NumFilters", "Stride",
                               "CroppingMode", "CroppingSize")),
                      (LEARN, ("Weights", "Bias")))

GROUPED_DISPLAY = ((None, ("Name",)),
                   (HYPER, ("FilterSize", "NumGroups", "NumChannelsPerGroup",
                            "NumFiltersPerGroup", "Stride", "DilationFactor", "PaddingMode",
                            "PaddingSize")),
                   (LEARN, ("Weights", "Bias")))


def formats(nd, time_as_space):
    """Accepted input formats (§2.4): ``nd`` S dims (T independent, B optional), and, for
    the layers MATLAB documents it for, ``nd-1`` S dims with T as the last conv dim."""
    s = "S" * nd
    out = [s + "CB", s + "CBT", s + "C", s + "CT"]
    if time_as_space:
        t = "S" * (nd - 1)
        out += [t + "CBT", t + "CT"]
    return tuple(out)


# --------------------------------------------------------------------------- input folding

class _Folded(NamedTuple):
    """The shape and dtype of a folded input (:func:`fold`), for :meth:`_plan_entry` to
    look its plan up by without an array."""
    shape: tuple
    dtype: np.dtype


def fold(X, nd):
    """Formatted input -> (``S1..Sd x C x N`` array for _ops, function restoring Y).

    T is folded into the observations when the layer convolves over ``nd`` S dims (a free
    F-order reshape: B and T are adjacent), or becomes the last convolution dimension when
    the input has one S fewer (§2.4).  Missing B is a singleton.
    """
    dims, data = X.dims, X.data     # the caller checked the format
    ns = dims.count("S")
    if ns == nd:
        rest = data.shape[nd + 1:]
        x = data.reshape(data.shape[:nd + 1] + (math.prod(rest),), order="F")

        def restore(y):
            return dlarray._from_canonical(
                y.reshape(y.shape[:nd + 1] + rest, order="F"), dims)
        return x, restore
    # One S fewer: T is the last convolution dimension.
    has_b = "B" in dims
    c, t = dims.index("C"), dims.index("T")
    perm = list(range(ns)) + [t, c] + ([dims.index("B")] if has_b else [])
    x = data.transpose(perm)
    if not has_b:
        x = x[..., np.newaxis]

    def restore(y):
        if not has_b:
            y = y[..., 0]
        back = list(range(ns)) + [ns + 1] + ([ns + 2] if has_b else []) + [ns]
        return dlarray._from_canonical(y.transpose(back), dims)
    return x, restore


# --------------------------------------------------------------------------- behaviour

class ConvFamilyLayer(Layer):
    """Behaviour shared by every convolution layer; subclasses set ``_nd`` and tables."""

    _nd = 2
    _formats = ()

    # ------------------------------------------------------------- learnables

    def _num_channels(self):
        """Input channels, or None while 'auto'."""
        c = self._values["NumChannels"]
        return None if c == "auto" else c

    def _set_channels(self, c, fname):
        known = self._num_channels()
        if known is None:
            self._values["NumChannels"] = c
        elif known != c:
            raise ValueError(f"{fname}: the number of input channels must be {known} "
                             f"(NumChannels of {self._label()}), got {c}")

    def initialize(self, num_channels=None, *, fname="initialize"):
        """Infer ``'auto'`` channel counts from ``num_channels`` and fill empty learnables.

        Parameters
        ----------
        num_channels : int, optional
            The input's channel count (what ``dlnetwork`` knows when it is built).
            Required while the layer's channel count is still ``'auto'``.

        Returns
        -------
        layer
            The layer itself, with ``Weights``/``Bias`` drawn by their initializers from
            MATLAB's stream (:func:`mlayers.rng`) if they were empty (Weights first).
        """
        if num_channels is not None:
            self._set_channels(V.positive_int(num_channels, V.Where(fname, "num_channels")),
                               fname)
        for which, init_name in (("Weights", "WeightsInitializer"),
                                 ("Bias", "BiasInitializer")):
            if self._values[which] is not None:
                continue
            size, _ = self._learnable_size(which)
            if None in size:
                raise ValueError(f"{fname}: num_channels must be given to initialize "
                                 f"{self._label()}, whose channel count is 'auto', got None")
            num_in, num_out = self._fans()
            self._values[which] = initialize(self._values[init_name], size, num_in, num_out,
                                             fname, init_name)
        return self

    def _forward(self, X, fname):
        x, restore = fold(X, self._nd)
        if self._values["Weights"] is None or self._values["Bias"] is None:
            self.initialize(x.shape[self._nd], fname=fname)
        if _autodiff.recording() or isinstance(self._values["Weights"], dlarray) \
                or isinstance(self._values["Bias"], dlarray):
            return self._traced(X, x.shape[:self._nd], fname)
        return restore(self._compute(x, fname))

    def _traced(self, X, in_size, fname):
        """Inside dlfeval: the same convolution through a differentiable operation: for a
        convolution over the layer's S dimensions, functional.conv.conv_layer on the plan
        of the input's size; otherwise dlconv / dltranspconv.  Weights and Bias may be
        traced dlarrays (a network's learnables)."""
        from ..functional import conv
        ns = X.dims.count("S")
        if ns == self._nd and self._ops_run is _ops.conv:
            # the plan's checks, made once per input size, instead of dlconv's options
            w, b = self._values["Weights"], self._values["Bias"]
            wd = _autodiff.data(w)
            shape = X.shape[:ns + 1] + (math.prod(X.shape[ns + 1:]),)     # folded, as fold
            args, _, plan = self._plan_entry(
                _Folded(shape, X._data.dtype),
                wd.reshape(wd.shape[:ns + 1] + (-1,), order="F"), _autodiff.data(b), fname)
            if args["padding_value"] == 0:
                return conv.conv_layer(X, w, b, plan, ns, args["stride"], args["dilation"],
                                       args["padding"], args["groups"])
        # convolving over T (one S fewer than the layer's dims): say so in the weights
        wfmt = None if ns == self._nd else "S" * ns + "TCU"
        op, opts = self._functional(in_size, fname)
        w = self._values["Weights"]
        if wfmt is not None:
            opts["WeightsFormat"] = wfmt
            if isinstance(w, dlarray):
                w = conv.stripdims(w) if w.dims else w
        return op(X, w, self._values["Bias"], **opts)

    def _compute(self, x, fname):
        """Y for the folded input: through a plan made once per input size and dtype."""
        w, b = self._ops_weights(), self._values["Bias"]
        args, _, plan = self._plan_entry(x, w, b, fname)
        y = plan(x, w, b) if plan is not None else None
        return y if y is not None else self._ops_run(x, w, b, **args, fname=fname)

    def _plan_entry(self, x, w, b, fname):
        """(functional arguments, state, plan or None) for x, kept per input size."""
        key = self._memo_key(x)
        entry = self._memo.get(key)
        if entry is None:
            if type(x) is _Folded:      # (zeros of its size, no memory: the plan's checks)
                x = np.broadcast_to(np.zeros((), x.dtype), x.shape)
            args = self._ops_args(x.shape[:self._nd], fname)
            entry = self._memo[key] = (args, dict(self._state),
                                       self._ops_plan(x, w, b, **args, fname=fname))
        self._state.update(entry[1])    # the displayed 'same' PaddingSize follows the input
        return entry

    def _predict_fn(self, specs, fname, rectify=False, residual=False, pool=False):
        """The convolution of ``S..C x (B, T)`` data of this size: the plan of
        :meth:`_compute` on the folded array (T with B, as :func:`fold`), called
        straight away while the learnables keep their sizes and classes.  ``rectify``:
        the ReLU that alone reads the result as well (the inference program fuses it), in
        the convolution's kernel where it can (:meth:`_ops.Plan.run_operands`);
        ``residual``: the function takes a second array, of the result's size and dtype,
        added to it before that ReLU (a residual block's addition; None where the plan
        cannot); ``pool``: its result is the 2 x 2, stride-2 max pooling of that (the
        pooling layer after it, in the convolution's kernel, :meth:`_ops.Plan.launcher`; None
        where the plan cannot, :attr:`_ops.Plan.can_pool`, or the weights in the kernels'
        layout are not views of the layer's)."""
        (dims, shape, dtype), = specs
        nd = self._nd
        v = self._values
        if dims.count("S") != nd or any(
                type(v[k]) is not np.ndarray for k in ("Weights", "Bias")):
            return None
        folded = shape[:nd + 1] + (math.prod(shape[nd + 1:]),)
        rest = shape[nd + 1:]
        plan = state = kept = None
        if type(self)._memo_key is ConvFamilyLayer._memo_key:  # (no package default in it)
            probe = np.broadcast_to(np.zeros((), dtype), folded)
            _, state, plan = self._plan_entry(probe, self._ops_weights(), v["Bias"], fname)
            # (the learnables keep the objects, sizes and classes the plan was made for: a
            # new value is an assignment, which makes the program again; kept in the
            # kernels' layout when that is a view, which sees changes made in place)
            if plan is not None:
                we, b, views = plan.operands(self._ops_weights(), v["Bias"])
                kept = (we, b) if views else None

        if (residual and (plan is None or len(rest) != 1)) or (pool and (
                plan is None or not plan.can_pool or len(rest) != 1 or residual)):
            return None

        launch = (plan.launcher(*kept, rest, rectify, pool)
                  if kept is not None and not residual else None)
        if pool and launch is None:
            return None
        if launch is not None:
            return _ops.with_state(launch, self._state, state)

        def run(x, r=None):
            xf = x.reshape(folded, order="F")
            if plan is None:
                y = self._compute(xf, fname)
                if rectify:
                    y = _ops_norm.relu_in_place_or_new(y)
            else:
                y = plan.run_operands(xf, *(kept or plan.operands(
                    self._ops_weights(), self._values["Bias"])[:2]), rectify, r)
                if state:
                    self._state.update(state)
            return y.reshape(y.shape[:nd + 1] + rest, order="F")
        return run

    def _memo_key(self, x):
        return (x.shape, x.dtype)

    def _ops_weights(self):
        return self._values["Weights"]

    def _fix_from_learnable(self, which, a):
        """A given Weights array fixes NumChannels (from MathWorks source)."""
        if which == "Weights" and self._num_channels() is None:
            self._values["NumChannels"] = int(a.shape[self._channel_axis])

    # ------------------------------------------------------------- descriptions

    def _size_text(self, extra=None):
        f = _as_tuple(self._values["FilterSize"], self._nd)
        parts = list(f) + ([extra] if extra is not None else [])
        return times().join(str(p) for p in parts)

    @staticmethod
    def _vec_text(v):
        return str(int(v)) if np.ndim(v) == 0 else int2str_row(v)


class ConvLayer(ConvFamilyLayer):
    """convolution1dLayer / convolution2dLayer / convolution3dLayer behaviour."""

    @property
    def _channel_axis(self):
        return self._nd

    def _learnable_size(self, which):
        nd, nf = self._nd, self._values["NumFilters"]
        if which == "Weights":
            f = _as_tuple(self._values["FilterSize"], nd)
            return f + (self._num_channels(), nf), "FilterSize×NumChannels×NumFilters"
        return (1,) * nd + (nf,), "1×" * nd + "NumFilters"

    def _fans(self):
        k = math.prod(_as_tuple(self._values["FilterSize"], self._nd))
        return k * self._num_channels(), k * self._values["NumFilters"]

    def _pads(self, in_size):
        """(before, after) per conv dim; 'same' is resolved here, from the input (§3.4)."""
        nd = self._nd
        f = _as_tuple(self._values["FilterSize"], nd)
        s = _as_tuple(self._values["Stride"], nd)
        d = _as_tuple(self._values["DilationFactor"], nd)
        if _padding_mode(self) == "same":
            feff = tuple((fi - 1) * di + 1 for fi, di in zip(f, d))
            before, after = same_padding(in_size, s, feff)
            self._state["same_padding"] = V.stored_form(before, after)
            return tuple(before), tuple(after)
        return V.before_after(_padding_size(self), nd)

    _ops_run, _ops_plan = staticmethod(_ops.conv), staticmethod(_ops.conv_plan)

    def _functional(self, in_size, fname):
        from ..functional.conv import dlconv
        args = self._ops_args(in_size, fname)
        return dlconv, dict(Stride=args["stride"], DilationFactor=args["dilation"],
                            Padding=np.array(args["padding"]),
                            PaddingValue=args["padding_value"])

    def _ops_args(self, in_size, fname):
        nd = self._nd
        before, after = self._pads(in_size)
        return dict(stride=_as_tuple(self._values["Stride"], nd),
                    dilation=_as_tuple(self._values["DilationFactor"], nd),
                    padding=(tuple(before), tuple(after)), groups=self._ops_groups(),
                    padding_value=self._values["PaddingValue"])

    def _ops_groups(self):
        return 1

    def _padding_text(self):
        mode = _padding_mode(self)
        return f"'{mode}'" if mode != "manual" else int2str_row(_padding_size(self))

    def _stride_dilation_text(self):
        text = f"stride {self._vec_text(self._values['Stride'])}"
        dil = self._values["DilationFactor"]
        if np.any(np.asarray(dil) != 1):
            text += f", dilation factor {self._vec_text(dil)},"
        return text

    def _description(self):
        return (f"{self._values['NumFilters']} {self._size_text(self._num_channels())} "
                f"convolutions with {self._stride_dilation_text()} and padding "
                f"{self._padding_text()}")


class GroupedConvLayer(ConvLayer):
    """groupedConvolution2dLayer behaviour: G groups of Fg filters over Cg channels."""

    _channelwise = False

    def _num_channels(self):
        g, cg = self._values["NumGroups"], self._values["NumChannelsPerGroup"]
        if g == "channel-wise" or cg == "auto":
            return None
        return g * cg

    def _cg_expected(self):
        cg = self._values["NumChannelsPerGroup"]
        if cg != "auto":
            return cg
        return 1 if self._channelwise else None

    def _g_known(self):
        g = self._values["NumGroups"]
        return None if g == "channel-wise" else g

    def _check(self, fname):
        if self._channelwise and self._values["NumChannelsPerGroup"] not in ("auto", 1):
            raise ValueError(f"{fname}: NumChannelsPerGroup must be 'auto' or 1 for a "
                             f"channel-wise layer, got "
                             f"{self._values['NumChannelsPerGroup']}")

    def _set_channels(self, c, fname):
        g = self._g_known()
        if g is None:                     # channel-wise: one group per channel
            g = c
            self._values["NumGroups"] = c
        if c % g:
            raise ValueError(f"{fname}: the number of input channels must be divisible by "
                             f"NumGroups ({g}) of {self._label()}, got {c}")
        cg = self._values["NumChannelsPerGroup"]
        if cg == "auto":
            self._values["NumChannelsPerGroup"] = c // g
        elif cg * g != c:
            raise ValueError(f"{fname}: the number of input channels must be {cg * g} "
                             f"(NumChannelsPerGroup × NumGroups of {self._label()}), got {c}")

    def _learnable_size(self, which):
        fg, g = self._values["NumFiltersPerGroup"], self._g_known()
        if which == "Weights":
            f = _as_tuple(self._values["FilterSize"], 2)
            return (f + (self._cg_expected(), fg, g),
                    "FilterSize×NumChannelsPerGroup×NumFiltersPerGroup×NumGroups")
        return (1, 1, fg, g), "1×1×NumFiltersPerGroup×NumGroups"

    def _fix_from_learnable(self, which, a):
        if self._values["NumGroups"] == "channel-wise":
            self._values["NumGroups"] = int(a.shape[4] if which == "Weights" else a.shape[3])
        if which == "Weights" and self._values["NumChannelsPerGroup"] == "auto":
            self._values["NumChannelsPerGroup"] = int(a.shape[2])

    def _fans(self):
        k = math.prod(_as_tuple(self._values["FilterSize"], 2))
        return k * self._values["NumChannelsPerGroup"], k * self._values["NumFiltersPerGroup"]

    def _ops_weights(self):
        w = self._values["Weights"]
        # FH×FW×Cg×Fg×G -> FH×FW×Cg×(Fg·G): merging the last two dims is free in F order.
        return w.reshape(w.shape[:3] + (w.shape[3] * w.shape[4],), order="F")

    def _ops_groups(self):
        return self._values["Weights"].shape[4]

    def _description(self):
        fg = self._values["NumFiltersPerGroup"]
        rest = (f"convolutions with {self._stride_dilation_text()} and padding "
                f"{self._padding_text()}")
        if self._channelwise:
            return f"channel-wise {fg} {self._size_text()} {rest}"
        cg = self._values["NumChannelsPerGroup"]
        size = self._size_text(None if cg == "auto" else cg)
        return f"{self._values['NumGroups']} groups of {fg} {size} {rest}"


class TransposedConvLayer(ConvFamilyLayer):
    """transposedConv1dLayer / transposedConv2dLayer / transposedConv3dLayer behaviour."""

    @property
    def _channel_axis(self):
        return self._nd + 1

    def _learnable_size(self, which):
        nd, nf = self._nd, self._values["NumFilters"]
        if which == "Weights":
            f = _as_tuple(self._values["FilterSize"], nd)
            return f + (nf, self._num_channels()), "FilterSize×NumFilters×NumChannels"
        return (1,) * nd + (nf,), "1×" * nd + "NumFilters"

    def _fans(self):
        k = math.prod(_as_tuple(self._values["FilterSize"], self._nd))
        c, nf = self._num_channels(), self._values["NumFilters"]
        if _defaults.get("transposed_he_fan_in") == "filters":
            return k * nf, k * c
        return k * c, k * nf

    def _crops(self, in_size, fname):
        """(before, after, offset) per dim; offset = OutputSizeOffset bias-only positions."""
        nd = self._nd
        if _cropping_mode(self) == "same":
            return _same_crop(self)
        before, after = V.before_after(self._values["Cropping"], nd)
        f = _as_tuple(self._values["FilterSize"], nd)
        s = _as_tuple(self._values["Stride"], nd)
        offset = []
        for i, (n, fi, si, b, a) in enumerate(zip(in_size, f, s, before, after)):
            # Source rule (§3.2, §9.7): a crop that leaves nothing is topped up with
            # bias-only positions to one output; an offset >= Stride is an error.
            o = max(0, 1 - (si * (n - 1) + fi - b - a))
            if o >= si:
                raise ValueError(f"{fname}: the cropping of {self._label()} must leave at "
                                 f"least one output along spatial dimension {i + 1} "
                                 f"(input size {n}, full output {si * (n - 1) + fi}), got "
                                 f"cropping {b} + {a}")
            offset.append(o)
        return before, after, tuple(offset)

    _ops_run = staticmethod(_ops.conv_transpose)
    _ops_plan = staticmethod(_ops.conv_transpose_plan)

    def _functional(self, in_size, fname):
        from ..functional.conv import dltranspconv
        stride = _as_tuple(self._values["Stride"], self._nd)
        if _cropping_mode(self) == "same":
            return dltranspconv, dict(Stride=stride, Cropping="same")
        args = self._ops_args(in_size, fname)
        if any(args["offset"]):
            raise ValueError(f"{fname}: the cropping of {self._label()} leaves no computed "
                             f"output (only bias positions); such a layer cannot be "
                             f"differentiated")
        return dltranspconv, dict(Stride=stride, Cropping=np.array(args["cropping"]))

    def _ops_args(self, in_size, fname):
        before, after, offset = self._crops(in_size, fname)
        return dict(stride=_as_tuple(self._values["Stride"], self._nd), dilation=1,
                    cropping=(tuple(before), tuple(after)), groups=1, offset=tuple(offset))

    def _memo_key(self, x):
        # the 'same' crop side is a switchable package default, so it is part of the key
        return (x.shape, x.dtype, _defaults.get("same_crop_extra"))

    def _description(self):
        mode = _cropping_mode(self)
        crop = "'same'" if mode == "same" else int2str_row(_cropping_size(self))
        return (f"{self._values['NumFilters']} {self._size_text(self._num_channels())} "
                f"transposed convolutions with stride "
                f"{self._vec_text(self._values['Stride'])} and cropping {crop}")
