"""Central finite differences: the independent reference for every gradient test.

``numeric_gradient(f, arrays, i)`` differentiates a scalar function of numpy arrays with
respect to ``arrays[i]`` by central differences in float64.  ``check(f_dl, arrays)`` runs
the same function through ``ml.dlfeval``/``ml.dlgradient`` and compares.
"""
import numpy as np

import mlayers as ml


def numeric_gradient(f, arrays, i, eps=1e-6):
    """d f(*arrays) / d arrays[i], central differences, float64."""
    arrays = [np.array(a, dtype=np.float64, copy=True) for a in arrays]
    a = arrays[i]
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        flat[k] = old + eps
        fp = f(*arrays)
        flat[k] = old - eps
        fm = f(*arrays)
        flat[k] = old
        gflat[k] = (fp - fm) / (2 * eps)
    return g


def relative_error(a, b):
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max(initial=0.0), 1e-12)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def check(fun, arrays, formats, eps=1e-6):
    """Max relative error of dlgradient against finite differences, per argument.

    ``fun(*dlarrays) -> scalar dlarray``; ``formats[i]`` labels ``arrays[i]`` (None: pass
    the numpy array as a constant, not differentiated).
    """
    def value(*arrs):
        args = [ml.dlarray(a, f) if f is not None else a for a, f in zip(arrs, formats)]
        return float(ml.extractdata(fun(*args)))

    def both(*args):
        loss = fun(*args)
        wrt = [a for a, f in zip(args, formats) if f is not None]
        g = ml.dlgradient(loss, *wrt)
        return g if isinstance(g, tuple) else (g,)

    args = [ml.dlarray(np.asarray(a, dtype=np.float64), f) if f is not None else a
            for a, f in zip(arrays, formats)]
    grads = ml.dlfeval(both, *args)
    errors = []
    k = 0
    for i, f in enumerate(formats):
        if f is None:
            continue
        num = numeric_gradient(value, arrays, i, eps)
        errors.append(relative_error(ml.extractdata(grads[k]), num))
        k += 1
    return errors
