"""MATLAB's solver update functions: ``sgdmupdate``, ``adamupdate``, ``rmspropupdate``, ``dlupdate``.

One implementation of each update rule (``_sgdm_step``, ``_adam_step``, ``_rmsprop_step``)
works on numpy arrays; the public functions map it over MATLAB's containers and the
``trainingOptions`` solvers of :func:`mlayers.trainNetwork` call the same functions
(MATLAB_SEMANTICS §12, STYLE Part 2 §5).

Rules (float arithmetic in the parameter's dtype; the scalar rate ``lr·f`` and Adam's bias
correction are computed in double and then applied, as MATLAB applies a double scalar to a
single array)::

    sgdm:     vel = μ·vel − (lr·f)·g;             p = p + vel
    adam:     m = β1·m + (1−β1)·g;  v = β2·v + (1−β2)·g²
              p = p − (lr·f·sqrt(1−β2^t)/(1−β1^t))·(m ./ (sqrt(v) + ε))
    rmsprop:  s = ρ·s + (1−ρ)·g²;                 p = p − (lr·f)·g ./ (sqrt(s) + ε)

* ``f`` (the parameter's learn-rate factor) applies only when the first argument is a
  ``dlnetwork``; tables, dicts, lists and arrays use the global rate (MATLAB's rule).
* ``[]`` (Python ``[]`` or ``None``) as initial state is a scalar 0.
* ``lr·f == 0`` leaves the parameter and its state unchanged (newer MATLAB source;
  MATLAB_SEMANTICS §12 package default).
* Containers are kept: a network gives a network (and state tables), a Learnables table a
  table, a dict a dict, a list a list, a dlarray a dlarray, a numpy array a numpy array.
"""
import copy
import math
import numbers

import numpy as np

from .. import network as _network
from ..dlarray import dlarray

__all__ = ["sgdmupdate", "adamupdate", "rmspropupdate", "dlupdate"]


# --------------------------------------------------------------------------- the rules

def _sgdm_step(p, g, vel, rate, momentum):
    """One SGDM step on numpy arrays; ``rate`` = lr·f (a double)."""
    vel = momentum * vel - rate * g
    return p + vel, vel


def _adam_step(p, g, m, v, rate, t, beta1, beta2, epsilon):
    """One Adam step on numpy arrays; ``rate`` = lr·f, ``t`` the update count."""
    m = beta1 * m + (1.0 - beta1) * g
    v = beta2 * v + (1.0 - beta2) * (g * g)
    eff = rate * math.sqrt(1.0 - beta2 ** t) / (1.0 - beta1 ** t)
    return p - eff * (m / (np.sqrt(v) + epsilon)), m, v


def _rmsprop_step(p, g, s, rate, rho, epsilon):
    """One RMSProp step on numpy arrays; ``rate`` = lr·f."""
    s = rho * s + (1.0 - rho) * (g * g)
    return p - rate * g / (np.sqrt(s) + epsilon), s


# --------------------------------------------------------------------------- validation

def _describe(v):
    if isinstance(v, (np.ndarray, dlarray)):
        return f"an array of size {'x'.join(map(str, np.shape(v)))}"
    return repr(v)


def _scalar(fname, name, value, low=None, low_open=False, high=None, high_open=False,
            what=None):
    if isinstance(value, dlarray):
        value = value._data
    if isinstance(value, np.ndarray) and value.size == 1:
        value = value.reshape(())[()]
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        value = float(value)
        ok = math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value < high if high_open else value <= high
    if not ok:
        raise ValueError(f"{fname}: {name} must be {what}, got {_describe(value)}")
    return value


def _rate(fname, value):
    return _scalar(fname, "learnRate", value, low=0.0, what="a finite nonnegative scalar")


def _decay(fname, name, value):
    return _scalar(fname, name, value, low=0.0, high=1.0, high_open=True,
                   what="a scalar in the range [0, 1)")


def _epsilon(fname, value):
    return _scalar(fname, "epsilon", value, low=0.0, low_open=True,
                   what="a finite positive scalar")


def _iteration(fname, value):
    t = _scalar(fname, "iteration", value, low=1.0, what="a positive integer")
    if t != int(t):
        raise ValueError(f"{fname}: iteration must be a positive integer, got {value!r}")
    return int(t)


# --------------------------------------------------------------------------- containers

def _is_network(x):
    # (asked of the class: the instance's Learnables property builds the whole table)
    return hasattr(type(x), "Learnables") and hasattr(type(x), "Layers") and not _is_table(x)


def _is_table(x):
    from .._table import Table
    return isinstance(x, Table)


def _is_empty_state(s):
    return s is None or (isinstance(s, (list, tuple)) and len(s) == 0) or (
        isinstance(s, np.ndarray) and s.size == 0)


def _np(x):
    """numpy data of a leaf (dlarray, array or number)."""
    if isinstance(x, dlarray):
        return x._data
    return np.asarray(x)


def _wrap(template, value):
    """``value`` (numpy) in the leaf type of ``template``."""
    if isinstance(template, dlarray):
        value = np.asarray(value)
        return dlarray._from_canonical(value, template._dims
                                       if value.ndim == template._data.ndim else "")
    return np.asarray(value)


def _key(row):
    return (row.Layer, row.Parameter)


def _table_values(fname, name, t, keys):
    """Values of the table ``t`` for ``keys``, matched by (Layer, Parameter)."""
    if not _is_table(t):
        raise TypeError(f"{fname}: {name} must be a table with variables Layer, Parameter "
                        f"and Value like the learnables, got {type(t).__name__}")
    by = {_key(r): r.Value for r in t}
    missing = [k for k in keys if k not in by]
    if missing:
        raise ValueError(f"{fname}: {name} must have a row for every learnable parameter "
                         f"being updated; missing {missing[0][0]}/{missing[0][1]}")
    return [by[k] for k in keys]


def _learn_rate_factor(net, layer, param):
    """The learn-rate factor of ``layer``/``param`` in ``net`` (public API first)."""
    return factor(net, layer, param, "LearnRateFactor")


def factor(net, layer, param, kind):
    """The ``kind`` (``"LearnRateFactor"``/``"L2Factor"``) factor of a learnable: a float,
    or, for a per-gate factor of a recurrent layer (``1×4`` for an LSTM), a column with
    one factor per row of the learnable (the layer's ``_factor_for``), which multiplies
    elementwise.  Scalars come from the public getters (``getLearnRateFactor``), which
    also know the factors kept with layers that have no factor property."""
    fname = "get" + kind
    lay = net._layer(layer, fname)
    if hasattr(lay, "_factor_for"):
        return lay._factor_for(param, kind)
    return float(_network._factor_of(lay, param, kind, fname))


def scaled_rate(lr, f, p):
    """``lr·f`` for parameter ``p``: a float, or a per-row array in ``p``'s dtype; None when
    it is zero everywhere (the parameter and its solver state are then left unchanged)."""
    rate = lr * f
    if np.ndim(rate) == 0:
        return None if rate == 0 else float(rate)
    if not np.any(rate):
        return None
    return np.asarray(rate, dtype=np.asarray(p).dtype)


def _net_with_values(net, updates):
    """A copy of ``net`` (MATLAB value semantics) with ``updates`` {(layer, param): numpy},
    assigned through the public ``Learnables`` setter (the network copies on write)."""
    new = net._copy() if hasattr(net, "_copy") else copy.deepcopy(net)
    _set_values_inplace(new, updates)
    return new


def _set_values_inplace(net, updates):
    """``net.Learnables = <the updated rows>`` (in place on ``net``)."""
    from .._table import Table
    rows = [(k[0], k[1], dlarray._from_canonical(np.asarray(v), ""))
            for k, v in updates.items()]
    net.Learnables = Table(("Layer", "Parameter", "Value"), rows)


def _flatten(fname, params, grad, states):
    """Leaves of the parameter container with their gradients and states.

    Returns (kind, keys, param leaves, grad leaves, state leaves per state, rebuild) where
    ``rebuild(new_params, new_states)`` builds the output containers."""
    nstates = len(states)
    if _is_network(params) or _is_table(params):
        net = params if _is_network(params) else None
        gkeys = [_key(r) for r in grad] if _is_table(grad) else None
        if gkeys is None:
            raise TypeError(f"{fname}: the gradients must be a table with variables Layer, "
                            f"Parameter and Value (as dlgradient returns for the learnables), "
                            f"got {type(grad).__name__}")
        # (a network's rows as its Learnables table has them, without building the table)
        pby = ({(layer, p): v for layer, p, v in net._rows(_network._learnable_names)}
               if net is not None else {_key(r): r.Value for r in params})
        missing = [k for k in gkeys if k not in pby]
        if missing:
            raise ValueError(f"{fname}: the gradients have a row {missing[0][0]}/"
                             f"{missing[0][1]} that is not a learnable parameter")
        keys = gkeys
        pleaves = [pby[k] for k in keys]
        gleaves = [r.Value for r in grad]
        sleaves = []
        for i, s in enumerate(states):
            if _is_empty_state(s) or (isinstance(s, numbers.Real) and s == 0):
                sleaves.append([None] * len(keys))
            else:
                sleaves.append(_table_values(fname, _STATE_NAMES[fname][i], s, keys))
        factors = ([_learn_rate_factor(net, *k) for k in keys] if net is not None
                   else [1.0] * len(keys))

        def rebuild(newp, news):
            from .._table import Table
            out_states = [Table(("Layer", "Parameter", "Value"),
                                [(k[0], k[1], v) for k, v in zip(keys, col)])
                          for col in news]
            if net is not None:
                # (the rules' results have their parameters' sizes and classes: assigned
                # without the Learnables setter's checks)
                newnet = net._copy()
                newnet._replace_values((net._index[k[0]], k[1], _np(v))
                                       for k, v in zip(keys, newp))
                return newnet, out_states
            rows = []
            upd = dict(zip(keys, newp))
            for r in params:
                rows.append((r.Layer, r.Parameter, upd.get(_key(r), r.Value)))
            return Table(params.VariableNames[:3], rows), out_states
        return pleaves, gleaves, sleaves, factors, rebuild

    if isinstance(params, (dict, list, tuple)):
        # MATLAB's structs (of structs) of parameters, as model functions hold them:
        # parameters.conv1.Weights is params["conv1"]["Weights"]; lists likewise
        keys, pleaves = _paths(params)
        gleaves = _at(fname, "the gradients", grad, params, keys)
        sleaves = []
        for i, s in enumerate(states):
            if _is_empty_state(s) or (isinstance(s, numbers.Real) and s == 0):
                sleaves.append([None] * len(keys))
            else:
                sleaves.append(_at(fname, _STATE_NAMES[fname][i], s, params, keys))

        def rebuild(newp, news):
            return _rebuild(params, newp), [_rebuild(params, col) for col in news]
        return pleaves, gleaves, sleaves, [1.0] * len(keys), rebuild

    if isinstance(params, (dlarray, np.ndarray, numbers.Real)) and not isinstance(params, bool):
        if not isinstance(grad, (dlarray, np.ndarray, numbers.Real)):
            raise TypeError(f"{fname}: the gradient must be an array like the parameters, "
                            f"got {type(grad).__name__}")
        sleaves = [[None] if _is_empty_state(s) else [s] for s in states]

        def rebuild(newp, news):
            return newp[0], [col[0] for col in news]
        return [params], [grad], sleaves, [1.0], rebuild

    raise TypeError(f"{fname}: the parameters must be a dlnetwork, a table of learnables, "
                    f"a dict, a list or an array, got {type(params).__name__}")


def _describe_container(x):
    if isinstance(x, (list, tuple)):
        return f"a list of {len(x)}"
    if isinstance(x, dict):
        return f"a dict of {len(x)}"
    return type(x).__name__


def _paths(x, prefix=()):
    """``(paths, leaves)`` of a nested container of parameters: the key or index path of
    every leaf (anything that is not a dict, list or tuple), in order."""
    if isinstance(x, dict):
        items = x.items()
    elif isinstance(x, (list, tuple)):
        items = enumerate(x)
    else:
        return [prefix], [x]
    paths, leaves = [], []
    for k, v in items:
        p, lv = _paths(v, prefix + (k,))
        paths += p
        leaves += lv
    return paths, leaves


def _where(path):
    return "".join(f"[{k!r}]" for k in path) or "the top level"


def _at(fname, what, x, params, paths):
    """The leaves of ``x`` at ``paths``, as ``x`` must have the parameters' structure."""
    got, leaves = _paths(x)
    if set(got) != set(paths) or len(got) != len(paths):
        missing = [p for p in paths if p not in set(got)]
        extra = [p for p in got if p not in set(paths)]
        detail = (f"missing {_where(missing[0])}" if missing
                  else f"{_where(extra[0])} is not a parameter" if extra
                  else "of another structure")
        raise ValueError(f"{fname}: {what} must have the parameters' structure "
                         f"({_describe_container(params)}), got {_describe_container(x)}: "
                         f"{detail}")
    by = dict(zip(got, leaves))
    return [by[p] for p in paths]


def _rebuild(template, leaves):
    """``template``'s structure with ``leaves`` (in ``_paths`` order) at its leaves."""
    it = iter(leaves)

    def build(t):
        if isinstance(t, dict):
            return {k: build(v) for k, v in t.items()}
        if isinstance(t, (list, tuple)):
            return type(t)(build(v) for v in t)
        return next(it)
    return build(template)


_STATE_NAMES = {
    "sgdmupdate": ("vel",),
    "adamupdate": ("averageGrad", "averageSqGrad"),
    "rmspropupdate": ("averageSqGrad",),
}


def _real(fname, what, x):
    """``x`` as a numpy array of real numbers; a named TypeError otherwise (a string or
    dict would give a raw conversion error, a complex array a NumPy warning)."""
    try:
        a = np.asarray(_np(x))
    except (TypeError, ValueError):
        a = None
    if a is None or a.dtype.kind not in "biuf":
        raise TypeError(f"{fname}: {what} must be a real numeric array, got "
                        f"{type(x).__name__}" + ("" if a is None else f" of dtype {a.dtype}"))
    return a


def _leaf_arrays(fname, p, g, states):
    pd = _real(fname, "the parameters", p)
    if pd.dtype.kind != "f":
        pd = pd.astype(np.float64)
    dt = pd.dtype
    gd = _real(fname, "the gradient", g)
    if gd.shape != pd.shape and gd.size != pd.size:
        raise ValueError(f"{fname}: the gradient must have the size of its parameter "
                         f"({'x'.join(map(str, pd.shape))}), got "
                         f"{'x'.join(map(str, gd.shape))}")
    gd = np.asarray(gd, dtype=dt).reshape(pd.shape)
    sd = []
    for s in states:
        if s is None:
            sd.append(dt.type(0))
        else:
            a = _real(fname, "the solver state", s).astype(dt, copy=False)
            if a.size != 1 and a.size != pd.size:
                raise ValueError(f"{fname}: the solver state must be [] or have the size of "
                                 f"its parameter ({'x'.join(map(str, pd.shape))}), got "
                                 f"{'x'.join(map(str, a.shape))}")
            sd.append(a.reshape(pd.shape) if a.size == pd.size and a.ndim else a)
    pd, gd, *sd = _same_order(pd, gd, *sd)
    return pd, gd, sd


def _same_order(*arrays):
    """The rules' array operands in one memory order, MATLAB's (Fortran): numpy runs an
    elementwise operation on operands of different orders through strided, buffered loops
    (N4's 58-parameter sgdm step: 0.48 ms with C-ordered weights beside the kernels'
    Fortran-ordered gradients, 0.37 ms in one order).  The updated parameters come out in
    that order too, in which the convolutions read weights without a copy (a batch-1 N4
    training step: 91.9 M -> 86.4 M instructions).  Arrays already in it are returned as
    they are (scalars too)."""
    return [np.asfortranarray(a) if isinstance(a, np.ndarray) and a.ndim > 1 else a
            for a in arrays]


def _apply(fname, params, grad, states, step):
    """Map ``step(p, g, states, factor) -> (p, states) | None`` over the leaves."""
    pleaves, gleaves, sleaves, factors, rebuild = _flatten(fname, params, grad, states)
    newp, news = [], [[] for _ in states]
    # IEEE arithmetic as in MATLAB: a gradient of 1e20 in single squares to Inf, quietly
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        for i, (p, g, f) in enumerate(zip(pleaves, gleaves, factors)):
            leaf_states = [col[i] for col in sleaves]
            pd, gd, sd = _leaf_arrays(fname, p, g, leaf_states)
            out = step(pd, gd, sd, f)
            if out is None:                 # zero rate: parameter and state unchanged
                newp.append(p)
                for col, s in zip(news, sd):
                    col.append(_wrap(p, s))
                continue
            pn, sn = out
            newp.append(_wrap(p, np.asarray(pn, dtype=pd.dtype)))
            for col, s in zip(news, sn):
                col.append(_wrap(p, np.asarray(s, dtype=pd.dtype)))
    p_out, s_out = rebuild(newp, news)
    return (p_out, *s_out)


# --------------------------------------------------------------------------- public

def sgdmupdate(net, grad, vel, learnRate=0.01, momentum=0.9):
    """Update parameters by stochastic gradient descent with momentum (MATLAB ``sgdmupdate``).

    ``vel = momentum·vel − learnRate·f·grad;  p = p + vel`` for every learnable parameter;
    ``f`` is the parameter's learn-rate factor when ``net`` is a ``dlnetwork`` (else 1).

    Parameters
    ----------
    net : dlnetwork, Learnables table, dict, list, dlarray or numpy array
    grad : same structure as ``net``'s learnables (a table for a network)
    vel : ``[]``/``None`` (scalar 0) or the velocity returned by the previous call
    learnRate : float, default 0.01
        Finite, nonnegative.
    momentum : float, default 0.9
        In [0, 1).

    Returns
    -------
    (net, vel)
        Updated parameters (same container) and velocity (a table for a network).

    Examples
    --------
    MATLAB::

        [net, vel] = sgdmupdate(net, gradients, vel, learnRate, momentum);

    Python::

        net, vel = ml.sgdmupdate(net, gradients, vel, learnRate, momentum)
    """
    fname = "sgdmupdate"
    lr = _rate(fname, learnRate)
    mom = _decay(fname, "momentum", momentum)

    def step(p, g, s, f):
        rate = scaled_rate(lr, f, p)
        if rate is None:
            return None
        pn, v = _sgdm_step(p, g, s[0], rate, mom)
        return pn, (v,)
    return _apply(fname, net, grad, [vel], step)


def adamupdate(net, grad, averageGrad, averageSqGrad, iteration, learnRate=0.001,
               gradDecay=0.9, sqGradDecay=0.999, epsilon=1e-8):
    """Update parameters by adaptive moment estimation (MATLAB ``adamupdate``).

    ``m = β1·m + (1−β1)·g``, ``v = β2·v + (1−β2)·g²``,
    ``p = p − lr·f·sqrt(1−β2^t)/(1−β1^t)·m./(sqrt(v)+ε)``: ε is added to the square root
    of the *uncorrected* ``v`` (MATLAB's form; with ``p = 1``, ``g = 1e-6``, ``t = 1`` in
    float64 the result is 0.99924025, where PyTorch's Adam gives 0.99900990).

    Parameters
    ----------
    net : dlnetwork, Learnables table, dict, list, dlarray or numpy array
    grad : gradients, same structure
    averageGrad, averageSqGrad : ``[]``/``None`` or the averages returned before
    iteration : positive integer ``t`` (starts at 1)
    learnRate : float, default 0.001
    gradDecay : float, default 0.9, in [0, 1)
    sqGradDecay : float, default 0.999, in [0, 1)
    epsilon : float, default 1e-8, positive

    Returns
    -------
    (net, averageGrad, averageSqGrad)

    Examples
    --------
    MATLAB::

        [net, avgG, avgSqG] = adamupdate(net, gradients, avgG, avgSqG, iteration);

    Python::

        net, avgG, avgSqG = ml.adamupdate(net, gradients, avgG, avgSqG, iteration)
    """
    fname = "adamupdate"
    t = _iteration(fname, iteration)
    lr = _rate(fname, learnRate)
    b1 = _decay(fname, "gradDecay", gradDecay)
    b2 = _decay(fname, "sqGradDecay", sqGradDecay)
    eps = _epsilon(fname, epsilon)

    def step(p, g, s, f):
        rate = scaled_rate(lr, f, p)
        if rate is None:
            return None
        pn, m, v = _adam_step(p, g, s[0], s[1], rate, t, b1, b2, eps)
        return pn, (m, v)
    return _apply(fname, net, grad, [averageGrad, averageSqGrad], step)


def rmspropupdate(net, grad, averageSqGrad, learnRate=0.001, sqGradDecay=0.9, epsilon=1e-8):
    """Update parameters by root mean square propagation (MATLAB ``rmspropupdate``).

    ``s = ρ·s + (1−ρ)·g²;  p = p − lr·f·g./(sqrt(s)+ε)``.

    Parameters
    ----------
    net : dlnetwork, Learnables table, dict, list, dlarray or numpy array
    grad : gradients, same structure
    averageSqGrad : ``[]``/``None`` or the average returned before
    learnRate : float, default 0.001
    sqGradDecay : float, default 0.9, in [0, 1)
    epsilon : float, default 1e-8, positive

    Returns
    -------
    (net, averageSqGrad)

    Examples
    --------
    MATLAB::

        [net, avgSqG] = rmspropupdate(net, gradients, avgSqG);

    Python::

        net, avgSqG = ml.rmspropupdate(net, gradients, avgSqG)
    """
    fname = "rmspropupdate"
    lr = _rate(fname, learnRate)
    rho = _decay(fname, "sqGradDecay", sqGradDecay)
    eps = _epsilon(fname, epsilon)

    def step(p, g, s, f):
        rate = scaled_rate(lr, f, p)
        if rate is None:
            return None
        pn, sq = _rmsprop_step(p, g, s[0], rate, rho, eps)
        return pn, (sq,)
    return _apply(fname, net, grad, [averageSqGrad], step)


def dlupdate(fun, net, *extra):
    """Apply ``fun`` to every learnable parameter (MATLAB ``dlupdate``).

    ``fun(p, a1, ...)`` is called with each parameter (a dlarray) and the matching entries
    of the extra arguments (same structure: tables matched by Layer and Parameter, dicts by
    key, lists by position); no learn-rate factors.  When ``fun`` returns a tuple
    ``(p, o2, ...)`` the result is ``(net, out2, ...)`` with each output in the
    parameters' structure.  A table given as ``net`` or as the first extra argument may hold
    a subset of a network's learnables: only those rows are updated.

    Examples
    --------
    MATLAB::

        net = dlupdate(@(w, g) w - learnRate*g, net, gradients);

    Python::

        net = ml.dlupdate(lambda w, g: w - learnRate * g, net, gradients)
    """
    fname = "dlupdate"
    if not callable(fun):
        raise TypeError(f"{fname}: fun must be a function, got {type(fun).__name__}")
    if _is_network(net) or _is_table(net):
        table = net.Learnables if _is_network(net) else net
        keys = [_key(r) for r in table]
        tables = [e for e in extra if _is_table(e)]
        if tables and _is_network(net):
            sub = {_key(r) for r in tables[0]}
            keys = [k for k in keys if k in sub]
        pby = {_key(r): r.Value for r in table}
        pleaves = [pby[k] for k in keys]
        eleaves = []
        for i, e in enumerate(extra, start=1):
            if _is_table(e):
                eleaves.append(_table_values(fname, f"argument {i + 2}", e, keys))
            else:
                eleaves.append([e] * len(keys))     # a scalar/constant for every parameter

        def rebuild(outs):
            from .._table import Table
            first = outs[0]
            rest = [Table(("Layer", "Parameter", "Value"),
                          [(k[0], k[1], v) for k, v in zip(keys, col)]) for col in outs[1:]]
            if _is_network(net):
                newnet = _net_with_values(net, {k: _np(v) for k, v in zip(keys, first)})
                return (newnet, *rest)
            upd = dict(zip(keys, first))
            t = Table(("Layer", "Parameter", "Value"),
                      [(r.Layer, r.Parameter, upd.get(_key(r), r.Value)) for r in table])
            return (t, *rest)
    elif isinstance(net, (dict, list, tuple)):
        keys, pleaves = _paths(net)
        # (extra arguments of the parameters' structure give one entry per parameter;
        # anything else, a constant, goes to every parameter as it is)
        eleaves = [_at(fname, f"argument {i + 2}", e, net, keys)
                   if isinstance(e, (dict, list, tuple)) else [e] * len(keys)
                   for i, e in enumerate(extra, start=1)]

        def rebuild(outs):
            return tuple(_rebuild(net, col) for col in outs)
    else:
        pleaves = [net]
        eleaves = [[e] for e in extra]

        def rebuild(outs):
            return tuple(col[0] for col in outs)

    results = []
    for i, p in enumerate(pleaves):
        arg = p if isinstance(p, dlarray) or not isinstance(p, np.ndarray) else p
        r = fun(arg, *[col[i] for col in eleaves])
        results.append(r if isinstance(r, tuple) else (r,))
    nout = len(results[0]) if results else 1
    if any(len(r) != nout for r in results):
        raise ValueError(f"{fname}: fun must return the same number of outputs for every "
                         f"parameter")
    cols = [[r[j] for r in results] for j in range(nout)]
    if not results:
        cols = [[]]
    # the updated parameter keeps its container type (numpy in, numpy out)
    cols[0] = [_wrap(p, _np(v)) if not isinstance(p, dlarray) and isinstance(v, dlarray)
               else v for p, v in zip(pleaves, cols[0])]
    out = rebuild(cols)
    return out[0] if nout == 1 else out
