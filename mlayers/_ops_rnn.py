"""Seam of the recurrent kernels (``pyx/_rnn.pyx``): layouts, dtypes, threads.

The only importer of :mod:`mlayers._rnn`.  Arrays come in MATLAB's canonical order:

* ``x``  ``C x B x T`` (the canonical data of a CBT dlarray; any memory order).  A
  Fortran-ordered one is, in memory, the C-ordered ``T x B x C`` array the kernels take,
  so ``x.transpose(2, 1, 0)`` is a no-copy view for it;
* ``w``  ``G*H x C``, ``r`` ``G*H x H``, ``b`` ``G*H`` (G = 4 for LSTM, 3 for GRU), gate
  blocks in MATLAB's order;
* states ``H x B`` (or ``H x 1`` / ``H``: the same state for every observation).

Outputs are views in MATLAB order again (``H x B x T`` of the C-ordered ``T x B x H``
kernel arrays).  The forward returns a ``saved`` record that the backward takes.
"""
import threading

import numpy as np

from . import _ops, _rnn

STATE_ACTIVATIONS = {"tanh": 0, "softsign": 1, "relu": 2}
GATE_ACTIVATIONS = {"sigmoid": 0, "hard-sigmoid": 1}
RESET_GATE_MODES = {"after-multiplication": 0, "before-multiplication": 1,
                    "recurrent-bias-after-multiplication": 2}

# Below this many multiply-adds a call runs on one thread (as in _ops).
_PARALLEL_MIN_MACS = 1 << 20
_hooks = {"done": False}


def _ensure_blas_hooks():
    """Hand the BLAS thread setters (found by _ops) to the recurrent kernels too, so the
    gemms called from their OpenMP threads run single-threaded inside them."""
    if _hooks["done"]:
        return
    _hooks["done"] = True
    addresses = _ops.blas_info().get("hook_addresses")
    if addresses:
        _rnn.set_blas_thread_hooks(*addresses)


_local = threading.local()


def _scratch(name, shape, dtype):
    """A per-thread reusable buffer (prediction: the gates and cell states of every step
    are not kept for a backward, so their pages are not faulted in again at every call)."""
    pool = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = {}
    a = pool.get(name)
    if a is None or a.shape != shape or a.dtype != dtype:
        a = pool[name] = np.empty(shape, dtype)
    return a


def _threads(T, B, G, C, H):
    macs = T * B * G * (C + H)
    return 1 if macs < _PARALLEL_MIN_MACS else _ops.get_num_threads()


def _steps(x, dtype):
    """``C x B x T`` -> C-contiguous ``T x B x C`` (a view for Fortran-ordered float data)."""
    return np.ascontiguousarray(x.transpose(2, 1, 0), dtype=dtype)


def _mat(a, dtype):
    return np.ascontiguousarray(a, dtype=dtype)


def _transposed(a, dtype):
    """A weight matrix transposed, C-contiguous: the forward kernels' operand (a view, no
    copy, for MATLAB's column-major learnables)."""
    return np.ascontiguousarray(np.transpose(a), dtype=dtype)


def _vec(a, n, dtype):
    return np.ascontiguousarray(np.reshape(a, n), dtype=dtype)


def _state_in(s, B, H, dtype):
    """``H x B``, ``H x 1`` or ``H`` -> C-contiguous ``B x H``."""
    s = np.reshape(s, (H, -1), order="F")
    return np.ascontiguousarray(np.broadcast_to(s.T, (B, H)), dtype=dtype)


def state_grad(g, shape):
    """Gradient ``B x H`` of a state -> the state's own (MATLAB) shape, summed over B
    where the state was shared by every observation."""
    H = g.shape[1]
    n = int(np.prod(shape)) // H if H else 0
    if n == g.shape[0]:
        return np.reshape(g.T, shape, order="F") if len(shape) > 1 else g.T.reshape(shape)
    return g.sum(axis=0).reshape(shape)


class Saved:
    """What a backward needs from its forward (C-ordered kernel arrays)."""
    __slots__ = ("kind", "x", "w", "r", "hs", "cs", "gates", "hn", "codes", "mode", "nt")


def lstm_forward(x, w, r, b, h0, c0, sact, gact, dtype, keep=True):
    """LSTM over ``x`` (C x B x T).  Returns ``(Y, hT, cT, saved)``: Y ``H x B x T``,
    the final states ``H x B``.  ``keep=False`` (no backward will follow) works in
    reused scratch buffers; ``saved`` is then None."""
    _ensure_blas_hooks()
    C, B, T = x.shape
    H = r.shape[1]
    xs = _steps(x, dtype)
    b = _vec(b, 4 * H, dtype)
    hs = np.empty((T + 1, B, H), dtype)
    if keep:
        cs = np.empty((T + 1, B, H), dtype)
        gates = np.empty((T, B, 4 * H), dtype)
    else:
        cs = _scratch("cs", (T + 1, B, H), dtype)
        # float32 forms each step's gates in a step-sized block (see pyx/_rnn.pyx)
        steps = 1 if dtype == np.float32 else T
        gates = _scratch("gates", (steps, B, 4 * H), dtype)
    hs[0] = _state_in(h0, B, H, dtype)
    cs[0] = _state_in(c0, B, H, dtype)
    nt = _threads(T, B, 4 * H, C, H)
    codes = (STATE_ACTIVATIONS[sact], GATE_ACTIVATIONS[gact])
    _rnn.lstm_forward(xs, _transposed(w, dtype), _transposed(r, dtype), b, hs, cs, gates,
                      codes[0], codes[1], nt)
    Y = hs[1:].transpose(2, 1, 0)
    if not keep:
        return Y, hs[T].T, cs[T].T.copy(), None
    s = Saved()
    s.kind, s.x, s.w, s.r, s.hs, s.cs, s.gates, s.codes, s.nt = \
        "lstm", xs, w, r, hs, cs, gates, codes, nt
    return Y, hs[T].T, cs[T].T, s


def _grads_in(dY, dhT, B, H, T, dtype):
    dy = _steps(dY, dtype) if dY is not None else np.zeros((1, 1, 1), dtype)
    dh = np.zeros((B, H), dtype) if dhT is None else _state_in(dhT, B, H, dtype).copy()
    return dy, dh


def lstm_backward(s, dY, dhT, dcT, need_dx=True):
    """Gradients ``(dX C x B x T, dW, dR, db, dh0 B x H, dc0 B x H)`` from the gradients
    of Y (``H x B x T`` or None), of the final hidden and cell states (``H x B`` or None)."""
    T, B, C = s.x.shape
    H = s.r.shape[1]
    dtype = s.x.dtype
    dy, dh = _grads_in(dY, dhT, B, H, T, dtype)
    dc = np.zeros((B, H), dtype) if dcT is None else _state_in(dcT, B, H, dtype).copy()
    dg = np.empty((T, B, 4 * H), dtype)
    dx = np.zeros((T, B, C) if need_dx else (1, 1, 1), dtype)
    dw = np.zeros((4 * H, C), dtype)      # zeros: no time steps or observations leave them
    dr = np.zeros((4 * H, H), dtype)
    db = np.zeros(4 * H, dtype)
    _rnn.lstm_backward(s.x, _mat(s.w, dtype), _mat(s.r, dtype), s.hs, s.cs, s.gates, dy,
                       dY is not None, dh, dc, dg, dx, need_dx, dw, dr, db, s.codes[0],
                       s.codes[1], s.nt)
    return (dx.transpose(2, 1, 0) if need_dx else None), dw, dr, db, dh, dc


def gru_forward(x, w, r, b, rb, h0, mode, sact, gact, dtype, keep=True):
    """GRU over ``x`` (C x B x T); ``rb`` the recurrent bias (3H, or None: zeros).
    Returns ``(Y, hT, saved)`` (``saved`` None with ``keep=False``, as lstm_forward)."""
    _ensure_blas_hooks()
    C, B, T = x.shape
    H = r.shape[1]
    xs = _steps(x, dtype)
    b = _vec(b, 3 * H, dtype)
    rb = np.zeros(3 * H, dtype) if rb is None else _vec(rb, 3 * H, dtype)
    hs = np.empty((T + 1, B, H), dtype)
    hs[0] = _state_in(h0, B, H, dtype)
    if keep:
        gates = np.empty((T, B, 3 * H), dtype)
        hn = np.empty((T, B, H), dtype)
    else:
        gates = _scratch("gates", (T, B, 3 * H), dtype)
        hn = _scratch("hn", (T, B, H), dtype)
    nt = _threads(T, B, 3 * H, C, H)
    codes = (STATE_ACTIVATIONS[sact], GATE_ACTIVATIONS[gact])
    m = RESET_GATE_MODES[mode]
    _rnn.gru_forward(xs, _transposed(w, dtype), _transposed(r, dtype), b, rb, hs, gates, hn, m,
                     codes[0], codes[1], nt)
    if not keep:
        return hs[1:].transpose(2, 1, 0), hs[T].T, None
    s = Saved()
    s.kind, s.x, s.w, s.r, s.hs, s.gates, s.hn, s.codes, s.mode, s.nt = \
        "gru", xs, w, r, hs, gates, hn, codes, m, nt
    return hs[1:].transpose(2, 1, 0), hs[T].T, s


def gru_backward(s, dY, dhT, need_dx=True):
    """Gradients ``(dX, dW, dR, db, drb, dh0 B x H)``; drb (the recurrent bias) is None
    in 'before-multiplication' mode."""
    T, B, C = s.x.shape
    H = s.r.shape[1]
    dtype = s.x.dtype
    dy, dh = _grads_in(dY, dhT, B, H, T, dtype)
    before = s.mode == RESET_GATE_MODES["before-multiplication"]
    dgx = np.empty((T, B, 3 * H), dtype)
    dgh = np.empty((1, 1, 1) if before else (T, B, 3 * H), dtype)
    dx = np.zeros((T, B, C) if need_dx else (1, 1, 1), dtype)
    dw = np.zeros((3 * H, C), dtype)
    dr = np.zeros((3 * H, H), dtype)
    db = np.zeros(3 * H, dtype)
    drb = np.zeros(3 * H, dtype)
    _rnn.gru_backward(s.x, _mat(s.w, dtype), _mat(s.r, dtype), s.hs, s.gates, s.hn, dy,
                      dY is not None, dh, dgx, dgh, dx, need_dx, dw, dr, db, drb, s.mode,
                      s.codes[0], s.codes[1], s.nt)
    return ((dx.transpose(2, 1, 0) if need_dx else None), dw, dr, db,
            None if before else drb, dh)
