"""Sequence padding and truncation for mini-batches of variable-length sequences
(MATLAB_SEMANTICS §17.3).

Contract (used by trainNetwork / trainnet / predict / classify / minibatchpredict for cell
arrays of sequences, i.e. Python lists of arrays):

``pad_sequences(seqs, SequenceLength="longest", SequencePaddingValue=0,
SequencePaddingDirection="right")``

* ``seqs``: a list (or tuple) of N arrays of MATLAB size ``C x T_i`` (or ``S.. x C x
  T_i`` for image sequences): every array has the same leading sizes, the time steps
  along the LAST dimension.  A 1-D array of T values is one channel, ``1 x T``.
* ``SequenceLength``: ``"longest"`` pads every sequence to ``L = max T_i``;
  ``"shortest"`` truncates every sequence to ``L = min T_i``; a positive integer n pads
  to ``L = n * ceil(max T_i / n)`` (the caller then runs the batch in chunks of n time
  steps with the state carried between them: :func:`sequence_chunks`).
* ``SequencePaddingValue``: a real scalar (default 0), the value of padded steps.
* ``SequencePaddingDirection``: ``"right"`` keeps the data first (padding at the end,
  truncation keeps the first steps); ``"left"`` keeps the data last (padding at the
  start, truncation keeps the last steps).
* Returns ONE array of MATLAB size ``C x N x L`` (``S.. x C x N x L``), Fortran-ordered,
  i.e. the canonical data of a ``CBT`` (``S..CBT``) dlarray, float32 for float32 input,
  else float64.  There is no mask: the layers run over the padding, as MATLAB's do.

``unpad_sequences(Y, lengths, SequencePaddingDirection="right")`` is the inverse for
sequence-to-sequence outputs (``K x N x L``): the list of ``K x min(T_i, L)`` arrays
MATLAB returns for cell-array input.  ``sequence_chunks(X, n)`` splits the time
dimension into chunks of n steps.
"""

__all__ = ["pad_sequences", "unpad_sequences", "sequence_chunks"]
import math

import numpy as np

from .. import _validate as V
from .._options import parse_name_value, validatestring
from ..dlarray import dlarray

_OPTIONS = ("SequenceLength", "SequencePaddingValue", "SequencePaddingDirection")


def _as_sequence(s, i, fname):
    a = s._data if hasattr(s, "_data") else s
    a = np.asarray(a)
    if a.dtype == np.bool_ or not (np.issubdtype(a.dtype, np.floating)
                                   or np.issubdtype(a.dtype, np.integer)):
        raise TypeError(f"{fname}: sequence {i + 1} must be a real numeric array, got "
                        f"dtype {a.dtype}")
    if a.ndim == 0:
        raise ValueError(f"{fname}: sequence {i + 1} must be a C×T array, got a scalar")
    if a.ndim == 1:
        a = a.reshape(1, -1)
    return a


def _length(value, fname):
    if isinstance(value, str):
        return validatestring(value, ("longest", "shortest"), fname, "SequenceLength")
    if isinstance(value, (bool, np.bool_)) or not np.isscalar(value) \
            or not float(value).is_integer() or value < 1:
        raise ValueError(f"{fname}: SequenceLength must be 'longest', 'shortest' or a "
                         f"positive integer, got {value!r}")
    return int(value)


def _direction(value, fname):
    return validatestring(value, ("right", "left"), fname, "SequencePaddingDirection")


def pad_sequences(seqs, *args, fname="pad_sequences", **kwargs):
    """Pad or truncate a list of sequences into one ``C x N x L`` array (see the module
    docstring for the contract).

    Examples
    --------
    MATLAB (inside trainNetwork, with ``SequenceLength="longest"``)::

        % XTrain = {randn(3,5); randn(3,2)}  ->  mini-batch 3 x 2 x 5, zeros after seq 2

    Python::

        >>> X = pad_sequences([np.ones((3, 5)), np.ones((3, 2))])
        >>> X.shape
        (3, 2, 5)
        >>> X[:, 1, 2:].sum()
        0.0
    """
    opts = parse_name_value(fname, args, kwargs, _OPTIONS)
    length = _length(opts.get("SequenceLength", "longest"), fname)
    pad = opts.get("SequencePaddingValue", 0)
    if isinstance(pad, (bool, np.bool_)) or not np.isscalar(pad) or \
            not np.isreal(pad) or isinstance(pad, str):
        raise ValueError(f"{fname}: SequencePaddingValue must be a real scalar, got {pad!r}")
    direction = _direction(opts.get("SequencePaddingDirection", "right"), fname)
    if not isinstance(seqs, (list, tuple)) or len(seqs) == 0:
        raise ValueError(f"{fname}: sequences must be a non-empty list of C×T arrays, got "
                         f"{type(seqs).__name__}")
    arrays = [_as_sequence(s, i, fname) for i, s in enumerate(seqs)]
    lead = arrays[0].shape[:-1]
    for i, a in enumerate(arrays):
        if a.shape[:-1] != lead:
            raise ValueError(f"{fname}: every sequence must have the same size except the "
                             f"time steps (last dimension), got {arrays[0].shape} for "
                             f"sequence 1 and {a.shape} for sequence {i + 1}")
    lengths = [a.shape[-1] for a in arrays]
    if length == "longest":
        L = max(lengths)
    elif length == "shortest":
        L = min(lengths)
    else:
        L = length * int(math.ceil(max(lengths) / length))
    dtype = np.float32 if all(a.dtype == np.float32 for a in arrays) else np.float64
    out = np.full(lead + (len(arrays), L), pad, dtype=dtype, order="F")
    for j, a in enumerate(arrays):
        k = min(a.shape[-1], L)
        if direction == "right":
            out[..., j, :k] = a[..., :k]
        else:
            out[..., j, L - k:] = a[..., a.shape[-1] - k:]
    return out


def unpad_sequences(Y, lengths, SequencePaddingDirection="right"):
    """Sequence outputs ``K x N x L`` -> a list of ``K x min(T_i, L)`` arrays (the steps
    that held data), MATLAB's cell-array output of sequence-to-sequence prediction."""
    fname = "unpad_sequences"
    y = _numeric(Y, fname, "Y", 2, "a K×N×L numeric array")
    direction = _direction(SequencePaddingDirection, fname)
    L = y.shape[-1]
    where = V.Where(fname, "lengths")
    what = f"a vector of {y.shape[-2]} nonnegative integers (one per sequence of Y)"
    n = V.real_array(lengths, where, what)
    if n.ndim > 1 or n.size != y.shape[-2]:
        raise where.error(what, lengths)
    n = V.integers(n.reshape(-1), where, what, lengths, 0, maximum=2**63 - 1)
    out = []
    for j, t in enumerate(n):
        k = min(int(t), L)
        out.append(y[..., j, :k] if direction == "right" else y[..., j, L - k:])
    return out


def sequence_chunks(X, n):
    """Chunks of ``n`` time steps of a ``... x N x L`` array (the last one may be shorter),
    for ``SequenceLength=n``: run them in order with the recurrent state carried."""
    fname = "sequence_chunks"
    x = _numeric(X, fname, "X", 1, "a numeric array (time steps last)")
    where = V.Where(fname, "n")
    n = int(V.integers(V.scalar(n, where, "a positive integer scalar"), where,
                       "a positive integer scalar", n, 1, maximum=2**63 - 1)[0])
    L = x.shape[-1]
    return [x[..., s:s + n] for s in range(0, L, n)]


def _numeric(X, fname, name, ndim, what):
    """The data of a dlarray or numeric array with at least ``ndim`` dimensions; a named
    TypeError/ValueError otherwise (not a raw AttributeError/IndexError)."""
    x = X._data if isinstance(X, dlarray) else X
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "biuf":
        raise TypeError(f"{fname}: {name} must be {what}, got {type(X).__name__}")
    if x.ndim < ndim:
        raise ValueError(f"{fname}: {name} must be {what}, got a {x.ndim}-D array")
    return x
