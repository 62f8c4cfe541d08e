"""Recurrent layers: lstmLayer, bilstmLayer, gruLayer (MATLAB_SEMANTICS §17).

Each layer is a declaration plus calls of the differentiable operations of
:mod:`mlayers.functional.recurrent`; it holds no gradient code.

Learnables (MATLAB layouts, gate blocks of NumHiddenUnits = H rows):

    lstmLayer    InputWeights 4H×InputSize  RecurrentWeights 4H×H  Bias 4H×1   (i, f, g, o)
    bilstmLayer  InputWeights 8H×InputSize  RecurrentWeights 8H×H  Bias 8H×1   (forward
                 rows 1:4H, backward rows 4H+1:8H, each i, f, g, o)
    gruLayer     InputWeights 3H×InputSize  RecurrentWeights 3H×H  Bias 3H×1   (r, z, n;
                 6H×1 in 'recurrent-bias-after-multiplication' mode)

State parameters ``HiddenState`` (and ``CellState`` for the LSTMs): ``H×1`` zeros when the
layer is initialized (2H×1 for bilstmLayer); running the layer returns the state after the
last time step (``H×B``) as the layer's state update, which ``dlnetwork`` stores for
stateful prediction (``[Y, state] = predict(net, X)``; ``net.State = state``).

Ports: with ``HasStateInputs`` the inputs are ``in``, ``hidden`` (and ``cell``), the
initial states come from those inputs and the state properties cannot be set; with
``HasStateOutputs`` the outputs are ``out``, ``hidden`` (and ``cell``).
"""

__all__ = ["LSTMLayer", "BiLSTMLayer", "GRULayer", "LSTMProjectedLayer", "lstmLayer",
           "bilstmLayer", "gruLayer", "lstmProjectedLayer"]
import numpy as np

from .. import _rng
from .. import _validate as V
from .._display import format_size, times
from .._initializers import initialize as _initialize
from .._props import REQUIRED, Layer, Prop, make_constructor
from ..dlarray import dlarray
from ..functional.recurrent import (GATE_ACTIVATIONS, RESET_GATE_MODES, STATE_ACTIVATIONS,
                                    _bilstm_op, _gru_op, _lstm_op)
from ._conv_family import learnable_getter
from .input import logical

HYPER = "Hyperparameters"
LEARN = "Learnable Parameters"
STATE = "State Parameters"

WEIGHTS_INITIALIZERS = ("glorot", "he", "orthogonal", "narrow-normal", "zeros", "ones")
LSTM_BIAS_INITIALIZERS = ("unit-forget-gate", "narrow-normal", "ones", "zeros")
GRU_BIAS_INITIALIZERS = ("zeros", "narrow-normal", "ones")


# --------------------------------------------------------------------------- initializers

def orthogonal(sz):
    """MATLAB's ``'orthogonal'`` initializer: Q of the economy QR decomposition of a
    standard-normal matrix drawn from MATLAB's stream, columns times ``sign(diag(R))``
    (MATLAB_SEMANTICS §17.1, inferred).  A wide matrix is the transpose of a tall one."""
    m, n = sz
    z = _rng.randn(m, n)
    tall = m >= n
    try:        # one thread: a threaded LAPACK QR of a small matrix crawls on a busy machine
        from threadpoolctl import threadpool_limits
        limits = threadpool_limits(1, "blas")
    except Exception:
        limits = None
    try:
        q, r = np.linalg.qr(z if tall else z.T)
    finally:
        if limits is not None:
            limits.restore_original_limits()
    d = np.sign(np.diag(r))
    d[d == 0] = 1
    q = q * d
    return np.asfortranarray(q if tall else q.T, dtype=np.float32)


def _draw(init, sz, num_in, num_out, fname, name):
    if isinstance(init, str) and init == "orthogonal":
        return orthogonal(sz)
    return _initialize(init, sz, num_in, num_out, fname, name)


def _unit_forget_gate(H, directions):
    """Ones on the forget-gate rows (H+1:2H of each direction's 4H block), else zeros."""
    b = np.zeros((4 * H * directions, 1), dtype=np.float32, order="F")
    for d in range(directions):
        b[4 * H * d + H:4 * H * d + 2 * H] = 1
    return b


# --------------------------------------------------------------------------- converters

def _factor(gates):
    """Learn-rate / L2 factor: a nonnegative scalar or a 1×G vector (one per gate)."""
    constraint = f"a nonnegative finite real scalar or 1{times()}{gates} vector"

    def convert(value, where):
        a = V.real_array(value, where, constraint)
        if not np.all(np.isfinite(a)) or np.any(a < 0):
            raise where.error(constraint, value)
        if a.size == 1:
            return float(a.reshape(-1)[0])
        if a.size == gates and (a.ndim == 1 or (a.ndim == 2 and a.shape[0] == 1)):
            out = np.array(a.reshape(1, -1), dtype=np.float64)
            out.flags.writeable = False
            return out
        raise where.error(constraint, value)
    return convert


def _state_setter(name):
    def set_(layer, a, where):
        if a is None:
            layer._values[name] = None
            return
        if layer._values["HasStateInputs"]:
            raise ValueError(f"{where.fname}: {name} must be empty when HasStateInputs is "
                             f"true (the state comes from the '{'hidden' if name == 'HiddenState' else 'cell'}' "
                             f"input), got {format_size(a.shape)}")
        n = layer._state_rows()
        if a.ndim == 0 or a.ndim > 2 or a.shape[0] != n:
            raise ValueError(f"{where.fname}: {name} must be a {n}{times()}1 vector "
                             f"({'2*' if layer._directions == 2 else ''}NumHiddenUnits"
                             f"{times()}1), got {format_size(a.shape or (1, 1))}")
        layer._values[name] = a.reshape(n, -1) if a.ndim == 1 else a
    return set_


def _learnable_setter(which):
    def set_(layer, a, where):
        if a is None:
            layer._values[which] = None
            return
        expected, legend = layer._learnable_size(which)
        a = V.check_size(a, expected, where, legend)
        if which == layer._input_size_from[0] and layer._values["InputSize"] == "auto":
            layer._values["InputSize"] = int(a.shape[layer._input_size_from[1]])
        layer._values[which] = a
    return set_


# --------------------------------------------------------------------------- base

def _recurrent_props(gates, bias_inits, cell, gru=False):
    """The property table (MATLAB class order) of a recurrent layer with ``gates`` gate
    blocks of H rows in its learnables."""
    g = gates
    props = [
        Prop("Name", "", V.text, doc="layer name"),
        Prop("InputNames", None, get=lambda layer: layer._port_names(True), option=False,
             doc="input names"),
        Prop("OutputNames", None, get=lambda layer: layer._port_names(False), option=False,
             doc="output names"),
        Prop("NumInputs", None, get=lambda layer: len(layer._port_names(True)), option=False,
             doc="number of inputs"),
        Prop("NumOutputs", None, get=lambda layer: len(layer._port_names(False)),
             option=False, doc="number of outputs"),
        Prop("HasStateInputs", False, logical, readonly=True,
             doc="state inputs 'hidden'" + (" and 'cell'" if cell else "")),
        Prop("HasStateOutputs", False, logical, readonly=True,
             doc="state outputs 'hidden'" + (" and 'cell'" if cell else "")),
        Prop("InputSize", "auto", V.auto_or_positive_int, readonly=True,
             doc="input channels, 'auto' until known"),
        Prop("NumHiddenUnits", REQUIRED, V.positive_int, readonly=True,
             doc="number of hidden units H"),
        Prop("OutputMode", "sequence", V.choice(("sequence", "last")), readonly=True,
             doc="'sequence' (every step) or 'last' (the last step)"),
        Prop("StateActivationFunction", "tanh", V.choice(STATE_ACTIVATIONS),
             doc="'tanh', 'softsign' or 'relu'"),
        Prop("GateActivationFunction", "sigmoid", V.choice(GATE_ACTIVATIONS),
             doc="'sigmoid' or 'hard-sigmoid'"),
    ]
    if gru:
        props.append(Prop("ResetGateMode", "after-multiplication", V.choice(RESET_GATE_MODES),
                          readonly=True, doc="where the reset gate applies"))
    props += [
        Prop("InputWeightsInitializer", "glorot", V.initializer(WEIGHTS_INITIALIZERS),
             doc="'glorot', 'he', 'orthogonal', 'narrow-normal', 'zeros', 'ones' or f(sz)"),
        Prop("RecurrentWeightsInitializer", "orthogonal", V.initializer(WEIGHTS_INITIALIZERS),
             doc="'orthogonal', 'glorot', 'he', 'narrow-normal', 'zeros', 'ones' or f(sz)"),
        Prop("BiasInitializer", bias_inits[0], V.initializer(bias_inits),
             doc=", ".join(repr(b) for b in bias_inits) + " or f(sz)"),
        Prop("InputWeights", None, V.learnable, get=learnable_getter("InputWeights"),
             set=_learnable_setter("InputWeights"), doc="input weights"),
        Prop("RecurrentWeights", None, V.learnable, get=learnable_getter("RecurrentWeights"),
             set=_learnable_setter("RecurrentWeights"), doc="recurrent weights"),
        Prop("Bias", None, V.learnable, get=learnable_getter("Bias"),
             set=_learnable_setter("Bias"), doc="bias"),
        Prop("InputWeightsLearnRateFactor", 1.0, _factor(g), doc="learn-rate factor"),
        Prop("RecurrentWeightsLearnRateFactor", 1.0, _factor(g), doc="learn-rate factor"),
        Prop("BiasLearnRateFactor", 1.0, _factor(g), doc="learn-rate factor"),
        Prop("InputWeightsL2Factor", 1.0, _factor(g), doc="L2 factor"),
        Prop("RecurrentWeightsL2Factor", 1.0, _factor(g), doc="L2 factor"),
        Prop("BiasL2Factor", 0.0, _factor(g), doc="L2 factor (0: biases not regularized)"),
        Prop("HiddenState", None, V.learnable, get=learnable_getter("HiddenState"),
             set=_state_setter("HiddenState"), doc="hidden state"),
    ]
    if cell:
        props.append(Prop("CellState", None, V.learnable, get=learnable_getter("CellState"),
                          set=_state_setter("CellState"), doc="cell state"))
    return tuple(props)


def _display_groups(cell, gru=False):
    hyper = ("InputSize", "NumHiddenUnits", "OutputMode", "StateActivationFunction",
             "GateActivationFunction") + (("ResetGateMode",) if gru else ())
    return ((None, ("Name", "InputNames", "OutputNames", "NumInputs", "NumOutputs",
                    "HasStateInputs", "HasStateOutputs")),
            (HYPER, hyper),
            (LEARN, ("InputWeights", "RecurrentWeights", "Bias")),
            (STATE, ("HiddenState", "CellState") if cell else ("HiddenState",)))


class _RecurrentLayer(Layer):
    """Shared machinery: sizes, initialization, ports, formats, running."""

    _gates = 4          # gate blocks of H rows per direction
    _directions = 1
    _cell = True
    _learnables = ("InputWeights", "RecurrentWeights", "Bias")
    _example_input = ("CBT", (3, 2, 5))
    _input_size_from = ("InputWeights", 1)     # the learnable (and axis) fixing InputSize

    @property
    def _state_parameters(self):
        if self._values["HasStateInputs"]:
            return ()
        return ("HiddenState", "CellState") if self._cell else ("HiddenState",)

    def _port_names(self, inputs):
        has = self._values["HasStateInputs" if inputs else "HasStateOutputs"]
        first = "in" if inputs else "out"
        if not has:
            return [first]
        return [first, "hidden", "cell"] if self._cell else [first, "hidden"]

    def _state_rows(self):
        return self._directions * self._values["NumHiddenUnits"]

    def _rows(self):
        return self._gates * self._directions * self._values["NumHiddenUnits"]

    def _bias_rows(self):
        return self._rows()

    def _learnable_size(self, which):
        H = self._values["NumHiddenUnits"]
        r = self._rows()
        pre = f"{self._gates * self._directions}*NumHiddenUnits"
        if which == "InputWeights":
            n = self._values["InputSize"]
            return (r, None if n == "auto" else n), f"{pre}{times()}InputSize"
        if which == "RecurrentWeights":
            return (r, H), f"{pre}{times()}NumHiddenUnits"
        return (self._bias_rows(), 1), f"{pre}{times()}1"

    def _check(self, fname):
        if self._values["HasStateInputs"]:
            for name in ("HiddenState", "CellState") if self._cell else ("HiddenState",):
                if self._values[name] is not None:
                    raise ValueError(f"{fname}: {name} must be empty when HasStateInputs "
                                     f"is true")

    # ------------------------------------------------------------- initialization

    def _fans(self, which):
        H = self._values["NumHiddenUnits"]
        out = self._gates * self._directions * H
        if which == "InputWeights":
            return self._values["InputSize"], out
        return H, out

    def initialize(self, input_size=None, *, fname="initialize"):
        """Fix ``InputSize`` and fill empty learnables (InputWeights, RecurrentWeights,
        Bias, drawn in that order) and states (zeros).  Returns the layer."""
        if input_size is not None:
            n = V.positive_int(input_size, V.Where(fname, "input_size"))
            known = self._values["InputSize"]
            if known not in ("auto", n):
                raise ValueError(f"{fname}: the input of {self._label()} must have "
                                 f"InputSize ({known}) channels, got {n}")
            self._values["InputSize"] = n
        for which in self._learnables:
            if self._values[which] is not None:
                continue
            size, _ = self._learnable_size(which)
            if None in size:
                raise ValueError(f"{fname}: input_size must be given to initialize "
                                 f"{self._label()}, whose InputSize is 'auto', got None")
            init = self._values[which + "Initializer"]
            if which == "Bias" and isinstance(init, str) and init == "unit-forget-gate":
                value = _unit_forget_gate(self._values["NumHiddenUnits"], self._directions)
            else:
                num_in, num_out = self._fans(which)
                value = _draw(init, size, num_in, num_out, fname, which + "Initializer")
            self._values[which] = value
        for name in self._state_parameters:
            if self._values[name] is None:
                self._values[name] = np.zeros((self._state_rows(), 1), dtype=np.float32,
                                              order="F")
        self._memo.clear()
        return self

    @staticmethod
    def _channels(dims, shape):
        c = dims.index("C")
        return int(np.prod(shape[:c + 1]))

    def _initialize_for(self, dims, shape, fname):
        return self.initialize(self._channels(dims, shape), fname=fname)

    def _check_format(self, X, fname):
        dims = X.dims
        ok = "C" in dims and "U" not in dims and dims.replace("S", "") in ("CBT", "CT", "CB",
                                                                          "C")
        if not ok:
            raise ValueError(f"{fname}: the input format of {self._label()} must be 'CBT', "
                             f"'CT', 'CB' or one with S dimensions before C (e.g. 'SCBT'), "
                             f"got '{dims}'")

    def _output_shape(self, dims, shape, fname):
        out = self._state_rows()
        has_b, has_t = "B" in dims, "T" in dims
        odims = "C" + ("B" if has_b else "")
        oshape = [out] + ([shape[dims.index("B")]] if has_b else [])
        if self._values["OutputMode"] == "sequence" and has_t:
            odims += "T"
            oshape.append(shape[dims.index("T")])
        return odims, tuple(oshape)

    # ------------------------------------------------------------- running

    def _initial_states(self, inputs, fname):
        if self._values["HasStateInputs"]:
            names = self._port_names(True)
            if len(inputs) != len(names):
                raise ValueError(f"{fname}: {self._label()} has state inputs and needs "
                                 f"{len(names)} inputs ({', '.join(names)}), got "
                                 f"{len(inputs)}")
            return inputs[1:]
        return [self._values[n] for n in self._state_parameters]

    def _run(self, inputs, training, fname):
        """Outputs and the state update ``{HiddenState, CellState}`` (H×B after the
        last time step); the same in training and prediction (MATLAB's ``forward`` and
        ``predict`` both return the state)."""
        X = inputs[0]
        self._check_format(X, fname)
        n = self._channels(X.dims, X.shape)
        v = self._values
        if v["InputSize"] != n or any(v[p] is None for p in self._learnables
                                      + tuple(self._state_parameters)):
            self.initialize(n, fname=fname)     # (validates and fills: not on every call)
        outs = self._call(X, self._initial_states(inputs, fname), fname)
        Y = outs[0] if self._values["OutputMode"] == "sequence" or "T" not in X.dims \
            else outs[1]
        outputs = [Y] + (list(outs[1:]) if self._values["HasStateOutputs"] else [])
        state = None
        if not self._values["HasStateInputs"]:
            state = dict(zip(self._state_parameters, outs[1:]))
        return outputs, state

    def _forward(self, X, fname):
        return self._run([X], False, fname)[0][0]

    def _forward_train(self, X, fname):
        outputs, state = self._run([X], True, fname)
        return outputs[0], state

    def _factor_for(self, param, kind):
        """The ``kind`` (``"LearnRateFactor"`` or ``"L2Factor"``) factor of learnable
        ``param`` for the solver: a float, or for a per-gate ``1×G`` factor a column of one
        factor per row of the learnable (gate g's factor on its H rows, in each direction),
        which multiplies the learnable's gradient / L2 term elementwise."""
        f = self._values[param + kind]
        if np.ndim(f) == 0:
            return float(f)
        H = self._values["NumHiddenUnits"]
        per_row = np.repeat(np.asarray(f, dtype=np.float64).reshape(-1), H)
        return np.tile(per_row, self._directions).reshape(-1, 1)

    def _options(self):
        return dict(sact=self._values["StateActivationFunction"],
                    gact=self._values["GateActivationFunction"])

    def _description(self):
        return f"{self._type_name[0]} with {self._values['NumHiddenUnits']} hidden units"


class LSTMLayer(_RecurrentLayer):
    """Long short-term memory layer (MATLAB ``LSTMLayer``)."""

    _constructor = "lstmLayer"
    _summary = "Long short-term memory (LSTM) layer over the time steps of sequences."
    _positional = ("NumHiddenUnits",)
    _props = _recurrent_props(4, LSTM_BIAS_INITIALIZERS, True)
    _display = _display_groups(True)
    _type_name = ("LSTM", "LSTM")
    _default_name = "lstm"
    _example = "lstmLayer(4, Name='lstm1')"

    def _call(self, X, states, fname):
        v = self._values
        return _lstm_op(X, states[0], states[1], v["InputWeights"], v["RecurrentWeights"],
                        v["Bias"], fname=fname, **self._options())


class BiLSTMLayer(_RecurrentLayer):
    """Bidirectional LSTM layer (MATLAB ``BiLSTMLayer``): forward over the sequence and
    backward over its reverse, outputs stacked (2*NumHiddenUnits channels)."""

    _constructor = "bilstmLayer"
    _summary = "Bidirectional long short-term memory (BiLSTM) layer."
    _positional = ("NumHiddenUnits",)
    _directions = 2
    _props = _recurrent_props(4, LSTM_BIAS_INITIALIZERS, True)
    _display = _display_groups(True)
    _type_name = ("BiLSTM", "BiLSTM")
    _default_name = "bilstm"
    _example = "bilstmLayer(3, Name='bilstm1')"

    def _call(self, X, states, fname):
        v = self._values
        return _bilstm_op(X, states[0], states[1], v["InputWeights"], v["RecurrentWeights"],
                          v["Bias"], fname=fname, **self._options())

    def _run(self, inputs, training, fname):
        outputs, state = super()._run(inputs, training, fname)
        if state:
            # Stateful prediction carries only the forward half; the backward half restarts
            # from the initial state (MATLAB_SEMANTICS §17.2, package default).
            H = self._values["NumHiddenUnits"]
            for name, new in list(state.items()):
                init = self._values[name]
                d = new._data if isinstance(new, dlarray) else new
                d2 = d.reshape(2 * H, -1)
                i0 = np.broadcast_to(np.asarray(init._data if isinstance(init, dlarray)
                                                else init).reshape(2 * H, -1)[H:],
                                     (H, d2.shape[1]))
                if isinstance(new, dlarray) and new._node is None:
                    state[name] = dlarray._from_canonical(
                        np.concatenate([d2[:H], i0.astype(d2.dtype)]).reshape(d.shape),
                        new._dims)
        return outputs, state


class GRULayer(_RecurrentLayer):
    """Gated recurrent unit layer (MATLAB ``GRULayer``)."""

    _constructor = "gruLayer"
    _summary = "Gated recurrent unit (GRU) layer over the time steps of sequences."
    _positional = ("NumHiddenUnits",)
    _gates = 3
    _cell = False
    _props = _recurrent_props(3, GRU_BIAS_INITIALIZERS, False, gru=True)
    _display = _display_groups(False, gru=True)
    _type_name = ("GRU", "GRU")
    _default_name = "gru"
    _example = "gruLayer(4, Name='gru1')"

    def _bias_rows(self):
        rb = self._values["ResetGateMode"] == "recurrent-bias-after-multiplication"
        return (6 if rb else 3) * self._values["NumHiddenUnits"]

    def _call(self, X, states, fname):
        v = self._values
        return _gru_op(X, states[0], v["InputWeights"], v["RecurrentWeights"], v["Bias"],
                       mode=v["ResetGateMode"], fname=fname, **self._options())


def _times_transpose(A, B, dtype):
    """``A * B.'`` for numpy arrays (computed in ``dtype``, the LSTM's compute type) or
    (traced) dlarrays: differentiable."""
    if isinstance(A, dlarray) or isinstance(B, dlarray):
        from ..functional.mathfun import permute
        A = A if isinstance(A, dlarray) else dlarray(A)
        B = B if isinstance(B, dlarray) else dlarray(B)
        return A @ permute(B, [2, 1])
    return A.astype(dtype, copy=False) @ B.astype(dtype, copy=False).T


def _projected_props():
    """lstmLayer's table plus the projector sizes, initializers, learnables and factors
    (lstmProjectedLayer, R2022b; layouts inferred, see the class docstring)."""
    base = list(_recurrent_props(4, LSTM_BIAS_INITIALIZERS, True))
    names = [p.name for p in base]
    i = names.index("NumHiddenUnits") + 1
    base[i:i] = [Prop("OutputProjectorSize", REQUIRED, V.positive_int, readonly=True,
                      doc="columns of OutputProjector (size of the projected hidden state)"),
                 Prop("InputProjectorSize", REQUIRED, V.positive_int, readonly=True,
                      doc="columns of InputProjector (size of the projected input)")]
    names = [p.name for p in base]
    i = names.index("BiasInitializer") + 1
    base[i:i] = [Prop("InputProjectorInitializer", "orthogonal",
                      V.initializer(WEIGHTS_INITIALIZERS), doc="initializer of InputProjector"),
                 Prop("OutputProjectorInitializer", "orthogonal",
                      V.initializer(WEIGHTS_INITIALIZERS),
                      doc="initializer of OutputProjector")]
    names = [p.name for p in base]
    i = names.index("Bias") + 1
    base[i:i] = [Prop("InputProjector", None, V.learnable, get=learnable_getter("InputProjector"),
                      set=_learnable_setter("InputProjector"), doc="input projector"),
                 Prop("OutputProjector", None, V.learnable,
                      get=learnable_getter("OutputProjector"),
                      set=_learnable_setter("OutputProjector"), doc="output projector")]
    names = [p.name for p in base]
    i = names.index("BiasL2Factor") + 1
    base[i:i] = [Prop(n, 1.0, V.nonneg_factor, doc="factor") for n in (
        "InputProjectorLearnRateFactor", "OutputProjectorLearnRateFactor",
        "InputProjectorL2Factor", "OutputProjectorL2Factor")]
    return tuple(base)


class LSTMProjectedLayer(_RecurrentLayer):
    """LSTM layer with projected learnable weights (MATLAB ``LSTMProjectedLayer``,
    R2022b).

    MATLAB documents the principle: a projected layer replaces a product ``W*x`` by
    ``W*Q*Q'*x`` and stores ``Q`` and ``W' = W*Q``.  Here (layouts inferred):

    * ``InputProjector`` ``InputSize × InputProjectorSize``, ``InputWeights``
      ``4*NumHiddenUnits × InputProjectorSize``: the LSTM's input weights are
      ``InputWeights * InputProjector'``;
    * ``OutputProjector`` ``NumHiddenUnits × OutputProjectorSize``, ``RecurrentWeights``
      ``4*NumHiddenUnits × OutputProjectorSize``: the recurrent weights are
      ``RecurrentWeights * OutputProjector'``;

    and the layer is an LSTM with those weights (output size NumHiddenUnits, as MATLAB
    documents).  Gradients reach the factors through the differentiable products.
    """

    _constructor = "lstmProjectedLayer"
    _summary = "LSTM layer with projected learnable weights (compressed LSTM)."
    _positional = ("NumHiddenUnits", "OutputProjectorSize", "InputProjectorSize")
    _props = _projected_props()
    _display = ((None, ("Name", "InputNames", "OutputNames", "NumInputs", "NumOutputs",
                        "HasStateInputs", "HasStateOutputs")),
                (HYPER, ("InputSize", "NumHiddenUnits", "InputProjectorSize",
                         "OutputProjectorSize", "OutputMode", "StateActivationFunction",
                         "GateActivationFunction")),
                (LEARN, ("InputWeights", "RecurrentWeights", "Bias", "InputProjector",
                         "OutputProjector")),
                (STATE, ("HiddenState", "CellState")))
    _type_name = ("Projected LSTM", "Projected LSTM")
    _default_name = "lstmp"
    _example = "lstmProjectedLayer(6, 2, 2, Name='lstmp1')"
    _learnables = ("InputWeights", "RecurrentWeights", "Bias", "InputProjector",
                   "OutputProjector")
    _input_size_from = ("InputProjector", 0)

    def _learnable_size(self, which):
        H = self._values["NumHiddenUnits"]
        ips, ops = self._values["InputProjectorSize"], self._values["OutputProjectorSize"]
        n = self._values["InputSize"]
        x = times()
        if which == "InputWeights":
            return (4 * H, ips), f"4*NumHiddenUnits{x}InputProjectorSize"
        if which == "RecurrentWeights":
            return (4 * H, ops), f"4*NumHiddenUnits{x}OutputProjectorSize"
        if which == "InputProjector":
            return (None if n == "auto" else n, ips), f"InputSize{x}InputProjectorSize"
        if which == "OutputProjector":
            return (H, ops), f"NumHiddenUnits{x}OutputProjectorSize"
        return (4 * H, 1), f"4*NumHiddenUnits{x}1"

    def _fans(self, which):
        H = self._values["NumHiddenUnits"]
        ips, ops = self._values["InputProjectorSize"], self._values["OutputProjectorSize"]
        return {"InputWeights": (ips, 4 * H), "RecurrentWeights": (ops, 4 * H),
                "InputProjector": (self._values["InputSize"], ips),
                "OutputProjector": (H, ops)}[which]

    def _call(self, X, states, fname):
        v = self._values
        data = lambda a: a._data if isinstance(a, dlarray) else np.asarray(a)   # noqa: E731
        factors = [data(v[n]) for n in ("InputWeights", "InputProjector", "RecurrentWeights",
                                       "OutputProjector", "Bias")]
        dtype = np.float32 if all(a.dtype == np.float32 for a in [X._data] + factors) \
            else np.float64
        W = _times_transpose(v["InputWeights"], v["InputProjector"], dtype)
        R = _times_transpose(v["RecurrentWeights"], v["OutputProjector"], dtype)
        return _lstm_op(X, states[0], states[1], W, R, v["Bias"], fname=fname,
                        **self._options())

    def _description(self):
        v = self._values
        return (f"Projected LSTM with {v['NumHiddenUnits']} hidden units, output projector "
                f"size {v['OutputProjectorSize']} and input projector size "
                f"{v['InputProjectorSize']}")


lstmLayer = make_constructor(LSTMLayer)
bilstmLayer = make_constructor(BiLSTMLayer)
gruLayer = make_constructor(GRULayer)
lstmProjectedLayer = make_constructor(LSTMProjectedLayer)
