"""Reverse-mode automatic differentiation: the tape behind ``dlfeval`` and ``dlgradient``.

Every differentiable computation is an *operation*: a function decorated with
:func:`operation` that returns ``(result, backward)``.  ``backward`` maps the gradient of
the result to the gradients of the operation's positional arguments::

    @operation
    def relu(X):
        x = data(X)
        y = np.maximum(x, 0)
        def backward(dy):
            return (dy * (x > 0),)          # one entry per positional argument
        return like(X, y), backward

* Outside :func:`dlfeval` nothing is recorded: the wrapper returns ``result`` and drops
  ``backward`` at once, so nothing is kept alive (``predict`` pays no autodiff cost).
  :func:`recording` tells an operation whether to keep what only its backward needs.
* Inside, a call with at least one *traced* positional dlarray records
  ``(backward, input nodes, output nodes)`` on the tape, and its dlarray outputs are
  traced.  A dlarray is traced when ``dlfeval`` made it a leaf (every dlarray among
  ``dlfeval``'s inputs, also inside lists, tuples, dicts, tables and networks) or when a
  recorded operation produced it.
* :func:`dlgradient` walks the tape backwards once, from the loss's node, and returns
  the gradients shaped like what was asked for: zeros for inputs the loss does not
  depend on (MATLAB's rule).  With EnableHigherDerivatives it walks it with the
  operations' *rules* instead (:func:`rule`: the same derivatives written with
  operations, so recorded in turn), and the gradients it returns are traced.

``backward`` receives and returns plain numpy arrays in the stored (canonical) order of
the dlarrays: the gradient of a dlarray has its data's shape.  It receives one gradient
per output; for an operation with several outputs, ``None`` stands for an output the loss
does not depend on.  It returns a tuple with one entry per positional argument, ``None``
for arguments that are not differentiable (options, integers, non-dlarray data).
"""
import contextlib
import functools
import itertools
import threading

import numpy as np

from . import _ops_norm
from .dlarray import dlarray

__all__ = ["dlfeval", "dlgradient", "operation", "rule", "recording", "data", "like"]

_ids = itertools.count(1)


class _Local(threading.local):
    def __init__(self):
        self.stack = []      # active tapes of this thread (nested dlfeval: its own tape)
        self.needed = None   # inputs of the backward being run whose gradients are used


_local = _Local()            # dlfeval in one thread does not trace another's operations


class Tape:
    """What one ``dlfeval`` call records: operations in call order."""

    __slots__ = ("records", "id", "__weakref__")

    def __init__(self):
        self.records = []          # (backward, input node ids, output node ids)
        self.id = next(_ids)


def _tape():
    stack = _local.stack
    return stack[-1] if stack else None


def recording():
    """True inside ``dlfeval`` (in this thread): operations keep what their backward needs."""
    return bool(_local.stack)


def _node(x, tape):
    """The node id of ``x`` on ``tape``, or None when ``x`` is not traced there."""
    if type(x) is dlarray or isinstance(x, dlarray):
        n = x._node
        if n is not None and n[0] is tape:
            return n[1]
    return None


def _new_node(tape):
    return (tape, next(_ids))


def data(x):
    """The numpy data of a dlarray, or ``x`` itself (an array or a number)."""
    return x._data if isinstance(x, dlarray) else x


def like(x, y, dims=None):
    """A dlarray holding numpy data ``y``, with ``x``'s format (or ``dims``)."""
    return dlarray._from_canonical(y, (x._dims if isinstance(x, dlarray) else "")
                                   if dims is None else dims)


def operation(fn):
    """Declare a differentiable operation (see the module docstring)."""

    @functools.wraps(fn)
    def op(*args, **kwargs):
        stack = _local.stack
        tape = stack[-1] if stack else None
        result, backward = fn(*args, **kwargs)
        if tape is None:
            return result
        inputs = [_node(a, tape) for a in args]
        if not any(i is not None for i in inputs):
            return result
        outs = result if isinstance(result, tuple) else (result,)
        out_ids = []
        for y in outs:
            if isinstance(y, dlarray) and y._data.dtype.kind == "f":
                y._node = _new_node(tape)
                out_ids.append(y._node[1])
            else:
                out_ids.append(None)
        # (what a traced backward needs is kept only for operations that have one: the
        # values as they are now, as an indexed assignment X[i] = v later rebinds X)
        call = op if op.rule is None else (op, _frozen(args), {
            k: _frozen(v) for k, v in kwargs.items()} if kwargs else kwargs, _frozen(result))
        tape.records.append((backward, inputs, out_ids, isinstance(result, tuple), call))
        return result

    op.__wrapped_operation__ = fn
    op.rule = None
    return op


def _frozen(v):
    """``v`` with each dlarray (also in a tuple or list) replaced by an alias that later
    assignments to the original do not reach (the same data and trace node)."""
    if isinstance(v, dlarray):
        a = dlarray._from_canonical(v._data, v._dims)
        a._node = v._node
        return a
    if isinstance(v, (tuple, list)) and any(isinstance(e, dlarray) for e in v):
        return type(v)(_frozen(e) for e in v) if type(v) in (tuple, list) else v
    return v


def rule(op):
    """Declare the traced backward of operation ``op`` (``dlgradient`` with
    EnableHigherDerivatives)::

        @rule(tanh)
        def _(g, Y, X):                 # g: dL/dY (traced), Y: the result, X...: the inputs
            return (g * (1 - Y * Y),)   # one entry per positional input, None: no gradient

    It computes the inputs' gradients with dlarray operations, so they are recorded in
    turn and can be differentiated again; :func:`input_needed` tells it which will be
    used.  ``g`` is a list (None for an output the loss
    does not depend on) for an operation with several outputs; the operation's keyword
    arguments follow its positional ones."""
    def declare(fn):
        op.rule = fn
        return fn
    return declare


# --------------------------------------------------------------------------- dlfeval

def _map(obj, fn, fname=None):
    """``obj`` with every dlarray ``a`` in it replaced by ``fn(a)``: networks and tables
    map their own arrays (``_traced_copy``), lists, tuples and dicts are rebuilt; any
    other value is kept, or with ``fname`` is a TypeError naming that function."""
    if isinstance(obj, dlarray):
        return fn(obj)
    if hasattr(obj, "_traced_copy"):
        return obj._traced_copy(lambda a: _map(a, fn, fname))
    if isinstance(obj, list):
        return [_map(o, fn, fname) for o in obj]
    if isinstance(obj, tuple) and not hasattr(obj, "_fields"):
        return tuple(_map(o, fn, fname) for o in obj)
    if isinstance(obj, dict):
        return {k: _map(v, fn, fname) for k, v in obj.items()}
    if fname is not None:
        raise TypeError(f"{fname}: the variables must be dlarrays, or lists, tuples, dicts "
                        f"or tables of them, got {type(obj).__name__}")
    return obj


def _trace(obj, tape):
    """A copy of ``obj`` in which every dlarray is a new leaf on ``tape``."""
    def leaf(a):
        t = dlarray._from_canonical(a._data, a._dims)
        t._node = _new_node(tape)
        return t
    return _map(obj, leaf)


def _untrace(obj):
    """``obj`` with every traced dlarray replaced by an untraced one (same data)."""
    return _map(obj, lambda a: a if a._node is None
                else dlarray._from_canonical(a._data, a._dims))


def dlfeval(fun, *args, **kwargs):
    """Evaluate a deep learning model function with tracing on (MATLAB's ``dlfeval``).

    Every dlarray among ``args`` (also inside lists, tuples, dicts, ``Learnables`` and
    ``State`` tables and ``dlnetwork`` objects) becomes a traced variable for
    :func:`dlgradient`; numeric inputs are constants.  Returns what ``fun`` returns, with
    every dlarray untraced (MATLAB's rule).  A nested ``dlfeval`` has a tape of its own.

    Examples
    --------
    MATLAB::

        function [y, dydx] = rosenbrock(x)
            y = 100*(x(2) - x(1).^2).^2 + (1 - x(1)).^2;
            dydx = dlgradient(y, x);
        end
        [y, dydx] = dlfeval(@rosenbrock, dlarray([-1 2]));     % 104, [396 200]

    Python::

        >>> def rosenbrock(x):
        ...     y = 100 * (x[1] - x[0] ** 2) ** 2 + (1 - x[0]) ** 2
        ...     return y, ml.dlgradient(y, x)
        >>> y, dydx = ml.dlfeval(rosenbrock, ml.dlarray([-1.0, 2.0]))
    """
    if not callable(fun):
        raise TypeError(f"dlfeval: fun must be a function, got {type(fun).__name__}")
    tape = Tape()
    traced = [_trace(a, tape) for a in args]
    _local.stack.append(tape)
    try:
        out = fun(*traced, **kwargs)
    finally:
        _local.stack.remove(tape)
        tape.records.clear()
    return _untrace(out)


# --------------------------------------------------------------------------- dlgradient

_GRADIENT_OPTIONS = ("RetainData", "EnableHigherDerivatives")


def dlgradient(y, *xs, **kwargs):
    """Gradients of a traced real scalar by reverse mode (MATLAB's ``dlgradient``).

    Parameters
    ----------
    y : dlarray
        A real scalar computed, inside :func:`dlfeval`, from traced variables.
    *xs : dlarray, list, tuple, dict, Learnables table
        What to differentiate with respect to; each gradient has the structure, size and
        format of its ``x``.  Variables ``y`` does not depend on get zeros.
    RetainData : bool
        Accepted for MATLAB compatibility: the trace is always kept until ``dlfeval``
        returns, so several ``dlgradient`` calls in one ``dlfeval`` work either way.
    EnableHigherDerivatives : bool
        ``True``: the gradients are traced (computed by dlarray operations, recorded on
        the same trace), so ``dlgradient`` can differentiate them again (second and
        higher derivatives, e.g. a physics-informed network's ``Uxx``).  Every operation
        between ``y`` and the variables must support it (docs/autodiff.md, "Higher
        derivatives"); one that does not is a ``ValueError`` naming it.

    Returns
    -------
    The gradient, or a tuple of gradients for several ``xs``.

    Examples
    --------
    MATLAB::

        gradients = dlgradient(loss, net.Learnables);

    Python::

        gradients = ml.dlgradient(loss, net.Learnables)
    """
    from ._options import parse_name_value
    from ._validate import Where
    from .layers.input import logical
    fname = "dlgradient"
    names = [a for a in xs if isinstance(a, str)]
    if names:
        k = next(i for i, a in enumerate(xs) if isinstance(a, str))
        xs, pairs = xs[:k], xs[k:]
    else:
        pairs = ()
    opts = parse_name_value(fname, pairs, kwargs, _GRADIENT_OPTIONS)
    for name in _GRADIENT_OPTIONS:
        if name in opts:
            opts[name] = logical(opts[name], Where(fname, name))
    higher = bool(opts.get("EnableHigherDerivatives"))
    tape = _tape()
    if tape is None:
        raise ValueError("dlgradient: dlgradient must be called inside a function evaluated "
                         "by dlfeval (the value to differentiate is not traced)")
    if not isinstance(y, dlarray):
        raise TypeError(f"dlgradient: the value to differentiate must be a traced real "
                        f"dlarray scalar, got {type(y).__name__}")
    if y._data.size != 1:
        raise ValueError(f"dlgradient: value to differentiate is non-scalar; it must be a "
                         f"traced real dlarray scalar, got size "
                         f"{'×'.join(map(str, y._data.shape))}")
    if not xs:
        raise TypeError("dlgradient: at least one variable to differentiate with respect "
                        "to is required")
    if _node(y, tape) is None:
        # MATLAB: "Value to differentiate is not traced" (the usual cause: extractdata)
        raise ValueError("dlgradient: the value to differentiate is not traced: it must be "
                         "computed from the traced inputs of the function evaluated by "
                         "dlfeval with dlarray operations (extractdata stops tracing)")
    wanted = _wanted_nodes(xs, tape, fname)
    if higher:
        grads = _backward_traced(tape, y, wanted)
    else:
        grads = _backward(tape, y, wanted)
    out = tuple(_map(x, lambda a: _gradient(a, grads, tape, fname, higher), fname)
                for x in xs)
    return out[0] if len(out) == 1 else out


def _needed(records, wanted):
    """The nodes computed from a wanted variable."""
    needed = set(wanted)
    for _, inputs, outputs, _, _ in records:
        if any(i in needed for i in inputs if i is not None):
            needed.update(o for o in outputs if o is not None)
    return needed


def _backward(tape, y, wanted):
    """Gradient of every node reached from ``y`` that leads back to a node of ``wanted``
    (the variables asked for): {node id: numpy array}.

    Gradients that reach no wanted variable are not computed: an operation none of whose
    inputs depends on one is skipped, and while an operation's backward runs,
    :func:`input_needed` tells it which of its inputs' gradients will be used (a network's
    first convolution then skips dL/dX, its largest adjoint: the data is traced by
    ``dlfeval`` but only the learnables are asked for)."""
    needed = _needed(tape.records, wanted)
    yid = _node(y, tape)
    grads = {yid: np.ones(y._data.shape, dtype=y._data.dtype)}
    try:
        for backward, inputs, outputs, multi, _ in reversed(tape.records):
            gs = [grads.get(o) if o is not None else None for o in outputs]
            if all(g is None for g in gs):
                continue
            mask = [node is not None and node in needed for node in inputs]
            if not any(mask):
                continue
            _local.needed = mask
            gin = backward(*gs) if multi else backward(gs[0])
            # (an output's gradient has no other reader: dropped now, its memory is the
            # next gradient's, still in cache, and the step's peak shrinks)
            del gs
            for o in outputs:
                if o not in wanted:
                    grads.pop(o, None)
            for node, g, use in zip(inputs, gin, mask):
                if not use or g is None:
                    continue
                prev = grads.get(node)
                grads[node] = g if prev is None else _ops_norm.add(prev, g)
    finally:
        _local.needed = None
    return grads


def _backward_traced(tape, y, wanted):
    """:func:`_backward` with every gradient a traced dlarray computed by the operations'
    rules (:func:`rule`), so that it can be differentiated again (EnableHigherDerivatives):
    {node id: dlarray}.  An operation without a rule on the way is a ValueError naming it."""
    seed = dlarray._from_canonical(np.ones(y._data.shape, y._data.dtype), y._dims)
    return _walk_traced(list(tape.records), {_node(y, tape): seed}, wanted)


def _walk_traced(records, grads, wanted):
    """The traced reverse walk over ``records`` (a snapshot: the rules record operations
    of their own) from the gradients ``grads`` {node: dlarray} (updated and returned)."""
    from .functional.arith import plus
    needed = _needed(records, wanted)
    for _, inputs, outputs, multi, call in reversed(records):
        gs = [grads.get(o) if o is not None else None for o in outputs]
        if all(g is None for g in gs):
            continue
        mask = [node is not None and node in needed for node in inputs]
        if not any(mask):
            continue
        if not isinstance(call, tuple):
            name = getattr(call, "__name__", "an operation").lstrip("_")
            raise ValueError(f"dlgradient: EnableHigherDerivatives is not supported through "
                             f"'{name}': the gradient passes through an operation whose "
                             f"backward pass is not itself differentiable here (see "
                             f"docs/autodiff.md, 'Higher derivatives')")
        op, args, kwargs, result = call
        saved, _local.needed = _local.needed, mask   # (input_needed, for the rules too)
        try:
            gin = op.rule(gs if multi else gs[0], result, *args, **kwargs)
        finally:
            _local.needed = saved
        for node, g, use in zip(inputs, gin, mask):
            if use and g is not None:
                prev = grads.get(node)
                grads[node] = g if prev is None else plus(prev, g)
    return grads


def composite_gradients(fn, args, g):
    """A rule's work done by differentiating a recomputation: ``fn(*args)`` (the
    operation's result written with dlarray operations that have rules) is recorded, and
    its traced gradients in the direction ``g`` are returned, one per argument (None for
    an argument that is not a traced dlarray or that the result does not depend on)."""
    tape = _tape()
    start = len(tape.records)
    Y = fn(*args)
    ynode = _node(Y, tape)
    if ynode is None:
        return (None,) * len(args)
    nodes = [_node(a, tape) for a in args]
    grads = _walk_traced(tape.records[start:], {ynode: g}, {n for n in nodes if n})
    return tuple(None if n is None else grads.get(n) for n in nodes)


@contextlib.contextmanager
def every_input_needed():
    """Inside: :func:`input_needed` is True (a rule running an operation's own backward
    pass, which must not read the mask of the operation the rule is for)."""
    saved, _local.needed = _local.needed, None
    try:
        yield
    finally:
        _local.needed = saved


def input_needed(k):
    """Inside an operation's backward: whether the gradient of its ``k``-th positional
    input will be used (True outside a backward pass).  An operation may return None for
    an input that is not needed instead of computing it."""
    mask = _local.needed
    return mask is None or k >= len(mask) or mask[k]


def _wanted_nodes(xs, tape, fname):
    """The node ids of the traced dlarrays in dlgradient's variables ``xs``."""
    out = set()
    _map(xs, lambda a: out.add(_node(a, tape)), fname)
    out.discard(None)
    return out


def _gradient(x, grads, tape, fname, traced=False):
    """dlgradient's result for the variable ``x``: its gradient (zeros where the loss
    does not depend on it), shaped and formatted as ``x``.  ``traced`` (with
    EnableHigherDerivatives): the traced dlarray of ``grads``, a gradient that does not
    depend on any variable as a new leaf (whose own gradients are zeros)."""
    node = _node(x, tape)
    if node is None:
        raise ValueError(f"{fname}: the variables must be traced dlarrays (inputs of "
                         f"the function evaluated by dlfeval, or values computed from "
                         f"them), got an untraced {'×'.join(map(str, x.shape))} dlarray")
    g = grads.get(node)
    if traced:
        if g is None or _node(g, tape) is None:
            g = dlarray._from_canonical(np.zeros(x._data.shape, x._data.dtype)
                                        if g is None else g._data, x._dims)
            g._node = _new_node(tape)
        from .functional.mathfun import cast
        # (in the variable's class, as first-order gradients are; and each variable its
        # own object, as MATLAB's outputs are values)
        return _frozen(cast(g, x._data.dtype))
    if g is None:
        g = np.zeros(x._data.shape, dtype=x._data.dtype)
    else:
        g = np.asarray(g, dtype=x._data.dtype).reshape(x._data.shape)
    return dlarray._from_canonical(g, x._dims)


def unbroadcast(g, shape):
    """Sum ``g`` down to ``shape`` (the adjoint of numpy/MATLAB implicit expansion)."""
    if g.shape == tuple(shape):
        return g
    if g.ndim < len(shape):       # numpy drops leading singletons when assigning
        g = g.reshape((1,) * (len(shape) - g.ndim) + g.shape)
    nd = g.ndim - len(shape)
    if nd > 0:
        g = g.sum(axis=tuple(range(nd)))
    axes = tuple(i for i, (a, b) in enumerate(zip(g.shape, shape)) if b == 1 and a != 1)
    if axes:
        g = g.sum(axis=axes, keepdims=True)
    return g.reshape(shape)
