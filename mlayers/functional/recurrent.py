"""MATLAB's functional recurrent operations: ``lstm`` and ``gru`` (MATLAB_SEMANTICS §17).

    [Y, hiddenState, cellState] = lstm(X, H0, C0, weights, recurrentWeights, bias)
    [Y, hiddenState]            = gru(X, H0, weights, recurrentWeights, bias)

Both run over the ``T`` dimension of ``X`` (S dimensions are flattened into C, column
major), in MATLAB's gate order (LSTM: input, forget, cell candidate, output blocks of H
rows; GRU: reset, update, candidate), forward and backward through time in the compiled
kernels (:mod:`mlayers._ops_rnn`).  ``Y`` has ``X``'s format without its ``S``
dimensions; the final states are ``H x B`` (format ``CB``).

:func:`_bilstm_op` (used by ``bilstmLayer``) runs the same kernels over the input and
over the time-reversed input.
"""

__all__ = ["lstm", "gru"]
import numpy as np

from .. import _ops, _ops_rnn
from .. import _validate as V
from .._autodiff import input_needed, operation, recording
from .._display import format_size
from .._options import parse_name_value, validatestring
from ..dlarray import as_formatted, dlarray, stripdims

STATE_ACTIVATIONS = ("tanh", "softsign", "relu")
GATE_ACTIVATIONS = ("sigmoid", "hard-sigmoid")
RESET_GATE_MODES = ("after-multiplication", "before-multiplication",
                    "recurrent-bias-after-multiplication")


# --------------------------------------------------------------------------- helpers

def _data(a):
    return a._data if isinstance(a, dlarray) else a


def _float(a, fname, argname):
    """numpy data of a dlarray or array: float32/float64 kept, other reals as double."""
    a = _data(a)
    if type(a) is np.ndarray and a.dtype in (np.float32, np.float64):
        return a                    # real_array's answer, without its checks on every call
    arr = V.real_array(a, V.Where(fname, argname),
                       "a real float32 or float64 array (MATLAB single or double)")
    if arr.dtype not in (np.float32, np.float64):
        arr = arr.astype(np.float64)
    return arr


def _sequence_layout(X, fname):
    """(C', B, T, hasB, hasT) of a formatted X: S and C flattened (column major)."""
    dims = X._dims
    if "U" in dims or "C" not in dims:
        raise ValueError(f"{fname}: X must have a channel (C) dimension and optionally "
                         f"S, B and T dimensions, got '{dims}'")
    shape = X._data.shape
    c = dims.index("C")
    cp = int(np.prod(shape[:c + 1]))
    B = shape[dims.index("B")] if "B" in dims else 1
    T = shape[dims.index("T")] if "T" in dims else 1
    return cp, B, T, "B" in dims, "T" in dims


def _x3(X, layout):
    cp, B, T = layout[:3]
    return X._data.reshape((cp, B, T), order="F")


def _dx(dx3, X):
    return None if dx3 is None else dx3.reshape(X._data.shape, order="F").astype(
        X._data.dtype, copy=False)


def _y_dims(layout):
    return "C" + ("B" if layout[3] else "") + ("T" if layout[4] else "")


def _y_out(y3, layout):
    """H x B x T kernel output -> data in the output format (absent B/T dropped)."""
    H, B, T = y3.shape
    shape = (H,) + ((B,) if layout[3] else ()) + ((T,) if layout[4] else ())
    return y3.reshape(shape, order="F")


def _dy_in(g, layout, H):
    """Gradient of Y in its data shape -> H x B x T (or None)."""
    if g is None:
        return None
    return np.reshape(g, (H, layout[1], layout[2]), order="F")


def _state_dims(layout):
    return "CB" if layout[3] else "C"


def _state_out(s, layout):
    return s if layout[3] else s[:, 0]


def _cast(g, like):
    if g is None:
        return None
    a = _data(like)
    g = np.reshape(g, np.shape(a))
    return g.astype(a.dtype, copy=False) if isinstance(a, np.ndarray) and a.dtype.kind == "f" \
        else g


def _traced(a):
    return isinstance(a, dlarray) and a._node is not None


def _need_dx(X):
    """Inside a backward: whether dL/dX is wanted (X traced, and its gradient leads to a
    variable dlgradient was asked for: not for a network's data)."""
    return _traced(X) and input_needed(0)


def _check_state(s, H, B, fname, argname):
    a = _float(s, fname, argname)
    n = a.size
    if not (n == H or n == H * B) or (a.ndim >= 1 and a.shape[0] != H and n != H):
        raise ValueError(f"{fname}: {argname} must have NumHiddenUnits ({H}) rows and 1 or "
                         f"{B} (observations) columns, got {format_size(a.shape)}")
    return a


def _check_params(weights, recurrent, bias, gates, cp, fname, bias_blocks=None):
    """numpy (W, R, b) after MATLAB's size checks; H from recurrentWeights."""
    R = _float(recurrent, fname, "recurrentWeights")
    if R.ndim != 2 or R.shape[0] != gates * R.shape[1] or R.shape[1] == 0:
        raise ValueError(f"{fname}: recurrentWeights must be a {gates}*NumHiddenUnits×"
                         f"NumHiddenUnits matrix, got {format_size(R.shape)}")
    H = R.shape[1]
    W = _float(weights, fname, "weights")
    if W.ndim != 2 or W.shape != (gates * H, cp):
        raise ValueError(f"{fname}: weights must be a {gates * H}×{cp} matrix "
                         f"({gates}*NumHiddenUnits × input channels), got "
                         f"{format_size(W.shape)}")
    b = _float(bias, fname, "bias")
    nb = (bias_blocks or gates) * H
    if b.size != nb or (b.ndim == 2 and b.shape[1] != 1) or b.ndim > 2:
        raise ValueError(f"{fname}: bias must be a {nb}×1 vector, got {format_size(b.shape)}")
    return W, R, b, H


def _options(fname, args, kwargs, extra=()):
    opts = parse_name_value(fname, args, kwargs,
                            ("DataFormat", "StateActivationFunction",
                             "GateActivationFunction") + extra)
    sact = validatestring(opts.get("StateActivationFunction", "tanh"), STATE_ACTIVATIONS,
                          fname, "StateActivationFunction")
    gact = validatestring(opts.get("GateActivationFunction", "sigmoid"), GATE_ACTIVATIONS,
                          fname, "GateActivationFunction")
    return opts, sact, gact


def _formatted(X, data_format, fname):
    if data_format is not None and data_format != "" and _traced(X) and not X._dims:
        from .mathfun import relabel         # keeps the trace through the relabelling
        return relabel(X, data_format)
    return as_formatted(X, data_format, fname)


def _unformat(Y, data_format):
    if data_format is None or data_format == "":
        return Y
    keep = "".join(d for d in str(data_format).upper() if d in Y.dims)
    return stripdims(Y, keep)


def _dtype(*arrays):
    return _ops.compute_dtype(*arrays)


# --------------------------------------------------------------------------- operations

@operation
def _lstm_op(X, H0, C0, W, R, b, *, sact, gact, fname):
    """Differentiable LSTM on a formatted X; returns (Y, hT, cT) dlarrays."""
    layout = _sequence_layout(X, fname)
    cp, B, T = layout[:3]
    w, r, bb, H = _check_params(W, R, b, 4, cp, fname)
    h0 = _check_state(H0, H, B, fname, "H0")
    c0 = _check_state(C0, H, B, fname, "C0")
    x = _x3(X, layout)
    dtype = _dtype(x, w, r, bb)
    y3, hT, cT, saved = _ops_rnn.lstm_forward(x, w, r, bb, h0, c0, sact, gact, dtype,
                                              keep=recording())
    outs = (dlarray._from_canonical(_y_out(y3, layout), _y_dims(layout)),
            dlarray._from_canonical(_state_out(hT, layout), _state_dims(layout)),
            dlarray._from_canonical(_state_out(cT, layout), _state_dims(layout)))

    def backward(dy, dh, dc):
        need_dx = _need_dx(X)
        dx3, dw, dr, db, dh0, dc0 = _ops_rnn.lstm_backward(
            saved, _dy_in(dy, layout, H), _state_grad_in(dh, H), _state_grad_in(dc, H),
            need_dx)
        return (_dx(dx3, X), _cast(_ops_rnn.state_grad(dh0, np.shape(h0)), H0),
                _cast(_ops_rnn.state_grad(dc0, np.shape(c0)), C0),
                _cast(dw, W), _cast(dr, R), _cast(db, b))
    return outs, backward


def _state_grad_in(g, H):
    return None if g is None else np.reshape(g, (H, -1))


@operation
def _gru_op(X, H0, W, R, b, *, mode, sact, gact, fname):
    """Differentiable GRU on a formatted X; returns (Y, hT) dlarrays."""
    layout = _sequence_layout(X, fname)
    cp, B, T = layout[:3]
    rbias = mode == "recurrent-bias-after-multiplication"
    w, r, bb, H = _check_params(W, R, b, 3, cp, fname, 6 if rbias else 3)
    h0 = _check_state(H0, H, B, fname, "H0")
    x = _x3(X, layout)
    dtype = _dtype(x, w, r, bb)
    flat = bb.reshape(-1)
    bin_, rb = (flat[:3 * H], flat[3 * H:]) if rbias else (flat, None)
    y3, hT, saved = _ops_rnn.gru_forward(x, w, r, bin_, rb, h0, mode, sact, gact, dtype,
                                         keep=recording())
    outs = (dlarray._from_canonical(_y_out(y3, layout), _y_dims(layout)),
            dlarray._from_canonical(_state_out(hT, layout), _state_dims(layout)))

    def backward(dy, dh):
        need_dx = _need_dx(X)
        dx3, dw, dr, db, drb, dh0 = _ops_rnn.gru_backward(
            saved, _dy_in(dy, layout, H), _state_grad_in(dh, H), need_dx)
        if rbias:
            db = np.concatenate([db, drb])
        return (_dx(dx3, X), _cast(_ops_rnn.state_grad(dh0, np.shape(h0)), H0),
                _cast(dw, W), _cast(dr, R), _cast(db, b))
    return outs, backward


@operation
def _bilstm_op(X, H0, C0, W, R, b, *, sact, gact, fname):
    """Differentiable bidirectional LSTM (bilstmLayer): learnables 8H x C, 8H x H, 8H
    (forward rows first), states 2H.  Returns (Y 2H x B x T, hT 2H x B, cT 2H x B):
    Y stacks the forward outputs over the re-reversed backward outputs; hT, cT stack the
    forward final states over the backward ones (after the whole reversed sequence)."""
    layout = _sequence_layout(X, fname)
    cp, B, T = layout[:3]
    w, r, bb, H = _check_params(W, R, b, 8, cp, fname)
    h0 = _check_state(H0, 2 * H, B, fname, "H0")
    c0 = _check_state(C0, 2 * H, B, fname, "C0")
    x = _x3(X, layout)
    dtype = _dtype(x, w, r, bb)
    h0m = np.reshape(h0, (2 * H, -1), order="F")
    c0m = np.reshape(c0, (2 * H, -1), order="F")
    bf = bb.reshape(-1)
    keep = recording()
    yf, hf, cf, sf = _ops_rnn.lstm_forward(x, w[:4 * H], r[:4 * H], bf[:4 * H], h0m[:H],
                                           c0m[:H], sact, gact, dtype, keep=keep)
    yb, hb, cb, sb = _ops_rnn.lstm_forward(x[:, :, ::-1], w[4 * H:], r[4 * H:], bf[4 * H:],
                                           h0m[H:], c0m[H:], sact, gact, dtype, keep=keep)
    y3 = np.concatenate([yf, yb[:, :, ::-1]], axis=0)
    hT = np.concatenate([hf, hb], axis=0)
    cT = np.concatenate([cf, cb], axis=0)
    outs = (dlarray._from_canonical(_y_out(y3, layout), _y_dims(layout)),
            dlarray._from_canonical(_state_out(hT, layout), _state_dims(layout)),
            dlarray._from_canonical(_state_out(cT, layout), _state_dims(layout)))

    def backward(dy, dh, dc):
        need_dx = _need_dx(X)
        d3 = _dy_in(dy, layout, 2 * H)
        dhm = _state_grad_in(dh, 2 * H)
        dcm = _state_grad_in(dc, 2 * H)
        part = lambda a, lo: None if a is None else a[lo:lo + H]
        gf = _ops_rnn.lstm_backward(sf, part(d3, 0), part(dhm, 0), part(dcm, 0), need_dx)
        gb = _ops_rnn.lstm_backward(sb, None if d3 is None else d3[H:, :, ::-1],
                                    part(dhm, H), part(dcm, H), need_dx)
        dx3 = gf[0] + gb[0][:, :, ::-1] if need_dx else None
        dh0 = np.concatenate([gf[4], gb[4]], axis=1)       # B x 2H
        dc0 = np.concatenate([gf[5], gb[5]], axis=1)
        return (_dx(dx3, X), _cast(_ops_rnn.state_grad(dh0, np.shape(h0)), H0),
                _cast(_ops_rnn.state_grad(dc0, np.shape(c0)), C0),
                _cast(np.concatenate([gf[1], gb[1]]), W),
                _cast(np.concatenate([gf[2], gb[2]]), R),
                _cast(np.concatenate([gf[3], gb[3]]), b))
    return outs, backward


# --------------------------------------------------------------------------- public

def lstm(X, H0, C0, weights, recurrentWeights, bias, *args, nargout=1, **kwargs):
    """Long short-term memory over the time steps of ``X`` (MATLAB's ``lstm``).

    Parameters
    ----------
    X : dlarray or array
        Formatted sequence data (``CBT``, ``CT``, ``CB``, ``SCBT``...; S flattened into C),
        or unformatted data with ``DataFormat``.
    H0, C0 : dlarray or array
        Initial hidden and cell states, ``NumHiddenUnits x 1`` (shared by every
        observation) or ``NumHiddenUnits x B``.
    weights, recurrentWeights, bias : dlarray or array
        ``4H x C``, ``4H x H`` and ``4H x 1``, gate blocks input, forget, cell candidate,
        output (MATLAB's order, PyTorch's ``i, f, g, o``; ``bias`` = ``bias_ih + bias_hh``).
    DataFormat : str
        Labels of unformatted ``X``; then ``Y`` is unformatted, in that label order.
    StateActivationFunction : {'tanh', 'softsign', 'relu'}
    GateActivationFunction : {'sigmoid', 'hard-sigmoid'}
    nargout : int
        1: ``Y``; 2: ``(Y, hiddenState)``; 3: ``(Y, hiddenState, cellState)``.

    Returns
    -------
    Y : dlarray
        ``H x B x T`` (``X``'s format without S).
    hiddenState, cellState : dlarray
        States after the last time step, ``H x B`` (format ``CB``).

    Examples
    --------
    MATLAB::

        X = dlarray(randn(10,32,64),"CBT");
        H0 = zeros(3,1); C0 = zeros(3,1);
        weights = dlarray(randn(12,10),"CU");
        recurrentWeights = dlarray(randn(12,3),"CU");
        bias = dlarray(randn(12,1),"C");
        [Y,hiddenState,cellState] = lstm(X,H0,C0,weights,recurrentWeights,bias);

    Python::

        X = ml.dlarray(np.random.randn(10, 32, 64), "CBT")
        H0 = np.zeros((3, 1)); C0 = np.zeros((3, 1))
        Y, hiddenState, cellState = ml.lstm(X, H0, C0, np.random.randn(12, 10),
                                            np.random.randn(12, 3), np.random.randn(12, 1),
                                            nargout=3)
    """
    fname = "lstm"
    opts, sact, gact = _options(fname, args, kwargs)
    _check_nargout(nargout, 3, fname)
    fmt = opts.get("DataFormat")
    Xf = _formatted(X, fmt, fname)
    Y, h, c = _lstm_op(Xf, H0, C0, weights, recurrentWeights, bias, sact=sact, gact=gact,
                       fname=fname)
    outs = (_unformat(Y, fmt), h, c)
    return outs[0] if nargout == 1 else outs[:nargout]


def gru(X, H0, weights, recurrentWeights, bias, *args, nargout=1, **kwargs):
    """Gated recurrent unit over the time steps of ``X`` (MATLAB's ``gru``).

    Parameters
    ----------
    X : dlarray or array
        Formatted sequence data (``CBT``...), or unformatted data with ``DataFormat``.
    H0 : dlarray or array
        Initial hidden state, ``NumHiddenUnits x 1`` or ``NumHiddenUnits x B``.
    weights, recurrentWeights : dlarray or array
        ``3H x C`` and ``3H x H``, gate blocks reset, update, candidate.
    bias : dlarray or array
        ``3H x 1``; ``6H x 1`` in ``'recurrent-bias-after-multiplication'`` mode (rows
        ``3H+1:6H`` the recurrent biases).
    ResetGateMode : {'after-multiplication', 'before-multiplication',
                     'recurrent-bias-after-multiplication'}
        Where the reset gate applies (MATLAB_SEMANTICS §17.2):
        after: ``h~ = σs(W_h x + b_h + r .* (R_h h))``; before:
        ``h~ = σs(W_h x + R_h (r .* h) + b_h)``; recurrent-bias:
        ``h~ = σs(W_h x + b_h + r .* (R_h h + Rb_h))`` (PyTorch's ``nn.GRU``).
    DataFormat, StateActivationFunction, GateActivationFunction : as :func:`lstm`.
    nargout : int
        1: ``Y``; 2: ``(Y, hiddenState)``.

    Examples
    --------
    MATLAB::

        [Y,hiddenState] = gru(X,H0,weights,recurrentWeights,bias);

    Python::

        Y, hiddenState = ml.gru(X, H0, weights, recurrentWeights, bias, nargout=2)
    """
    fname = "gru"
    opts, sact, gact = _options(fname, args, kwargs, ("ResetGateMode",))
    mode = validatestring(opts.get("ResetGateMode", "after-multiplication"),
                          RESET_GATE_MODES, fname, "ResetGateMode")
    _check_nargout(nargout, 2, fname)
    fmt = opts.get("DataFormat")
    Xf = _formatted(X, fmt, fname)
    Y, h = _gru_op(Xf, H0, weights, recurrentWeights, bias, mode=mode, sact=sact, gact=gact,
                   fname=fname)
    outs = (_unformat(Y, fmt), h)
    return outs[0] if nargout == 1 else outs[:nargout]


def _check_nargout(nargout, most, fname):
    if isinstance(nargout, bool) or not isinstance(nargout, (int, np.integer)) \
            or not 1 <= nargout <= most:
        raise ValueError(f"{fname}: nargout must be an integer from 1 to {most}, "
                         f"got {nargout!r}")


for _op, _name in ((_lstm_op, "lstm"), (_gru_op, "gru"), (_bilstm_op, "bilstm")):
    _op.__name__ = _name            # (what dlgradient's errors name)
del _op, _name
