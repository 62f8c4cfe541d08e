"""Central finite differences: the independent reference for every gradient test.

``numeric_gradient(f, arrays, i)`` differentiates a scalar function of numpy arrays with
respect to ``arrays[i]`` by the fourth-order central stencil in float64
(``(-f(x+2h) + 8 f(x+h) - 8 f(x-h) + f(x-2h)) / 12h``, h = 1e-4: truncation error of order
h^4 and rounding error about 1e-12 |f|, so the reference is far more accurate than the
1e-7 the tests ask of the gradients).  ``check(f_dl, arrays)`` runs
the same function through ``ml.dlfeval``/``ml.dlgradient`` and compares.
"""
import numpy as np

import mlayers as ml


def numeric_gradient(f, arrays, i, eps=1e-4):
    """d f(*arrays) / d arrays[i], fourth-order central differences, float64."""
    # C order: flat below must be a view of the array it perturbs
    arrays = [np.array(a, dtype=np.float64, order="C", copy=True) for a in arrays]
    a = arrays[i]
    g = np.zeros_like(a)
    flat, gflat = a.reshape(-1), g.reshape(-1)
    for k in range(flat.size):
        old = flat[k]
        values = []
        for step in (2, 1, -1, -2):
            flat[k] = old + step * eps
            values.append(f(*arrays))
        flat[k] = old
        gflat[k] = (-values[0] + 8 * values[1] - 8 * values[2] + values[3]) / (12 * eps)
    return g


def relative_error(a, b, noise=0.0):
    """max|a - b| relative to max|b|.  ``noise`` (the finite differences' own rounding
    error, see :func:`fd_noise`) is the smallest scale used: a gradient that is exactly
    zero cannot be checked more finely than the reference resolves."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max(initial=0.0), noise / 1e-7, 1e-300)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def fd_noise(f_value, eps=1e-4):
    """Rounding-error bound of :func:`numeric_gradient` for a function of size
    ``f_value``: the stencil's weights sum to 1.5/h, each value carries a few ulps (64 to
    cover the summations inside f)."""
    return 64 * np.finfo(np.float64).eps * (abs(f_value) + 1.0) * 1.5 / eps


def check(fun, arrays, formats, eps=1e-4):
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
        noise = fd_noise(value(*arrays), eps)
        errors.append(relative_error(ml.extractdata(grads[k]), num, noise))
        k += 1
    return errors


def check_layer_gradients(net, X, ct, grads):
    """``grads`` (dL/dX, dL/dWeights, dL/dBias of a one-layer ``net`` at data ``X``, for
    L = sum(predict(net, X) .* ct)) against central differences of that loss."""
    arrays = [np.asarray(X.data), np.asarray(net.Learnables.Value[0].data),
              np.asarray(net.Learnables.Value[1].data)]
    name = net.Layers[0].Name

    def loss(x, w, b):
        net.Learnables = ml.Table(("Layer", "Parameter", "Value"),
                                  [(name, "Weights", ml.dlarray(w)),
                                   (name, "Bias", ml.dlarray(b))])
        return float(np.sum(np.asarray(ml.predict(net, ml.dlarray(x, X.dims)).data) * ct))

    for i, g in enumerate(grads):
        assert relative_error(np.asarray(g.data), numeric_gradient(loss, arrays, i)) < 1e-7


def layer_against(layer, X, dtype, rng, reference):
    """A one-layer network of ``layer`` (weights and bias cast to ``dtype``) run through
    ``ml.forward`` inside ``dlfeval``, and ``reference(X, W, B)`` (a functional form giving
    the layer's output) with the same weights: ``(Y, L, dL/dX, dL/dW, dL/dB)`` of each for
    L = sum(Y .* ct), ct random; returns them with the network and ct."""
    net = ml.dlnetwork(layer, X)
    name = net.Layers[0].Name
    W, B = (ml.dlarray(np.asarray(v.data, dtype)) for v in net.Learnables.Value)
    net.Learnables = ml.Table(("Layer", "Parameter", "Value"),
                              [(name, "Weights", W), (name, "Bias", B)])
    ct = rng.standard_normal(ml.predict(net, X).shape).astype(dtype)

    def through_layer(net, X):
        Y = ml.forward(net, X)
        L = ml.sum(Y * ct, "all")
        return (Y, L) + tuple(ml.dlgradient(L, [X, net.Learnables.Value[0],
                                                net.Learnables.Value[1]]))

    def through_reference(X, W, B):
        Y = reference(X, W, B)
        L = ml.sum(Y * ct, "all")
        return (Y, L) + tuple(ml.dlgradient(L, [X, W, B]))

    return (ml.dlfeval(through_layer, net, X), ml.dlfeval(through_reference, X, W, B), net,
            ct)
