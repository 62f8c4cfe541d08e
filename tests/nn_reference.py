"""Independent references for the nnops tests: NumPy from MATLAB's formulas (written from
MATLAB_SEMANTICS §11 and the MathWorks pages, not from the package) and a finite-difference
gradient checker (central differences in float64) that runs the package's operations
through ``ml.dlfeval``/``ml.dlgradient``.
"""
import math

import numpy as np
from scipy import special

import mlayers as ml


# --------------------------------------------------------------------------- formulas
# All take numpy data in the dlarray's stored order (S.. C B T U) and the channel axis c.

def bn(x, c, offset, scale, eps=1e-5, mean=None, var=None):
    axes = tuple(i for i in range(x.ndim) if i != c)
    shp = [1] * x.ndim
    shp[c] = -1
    mu = x.mean(axis=axes) if mean is None else np.ravel(mean)
    v = ((x - mu.reshape(shp)) ** 2).mean(axis=axes) if var is None else np.ravel(var)
    y = np.ravel(scale).reshape(shp) * (x - mu.reshape(shp)) / np.sqrt(v.reshape(shp) + eps) \
        + np.ravel(offset).reshape(shp)
    return y, mu, v


def normalize_over(x, axes, c, offset, scale, eps=1e-5):
    shp = [1] * x.ndim
    shp[c] = -1
    mu = x.mean(axis=axes, keepdims=True)
    v = ((x - mu) ** 2).mean(axis=axes, keepdims=True)
    return np.ravel(scale).reshape(shp) * (x - mu) / np.sqrt(v + eps) \
        + np.ravel(offset).reshape(shp)


def groupnorm(x, c, b, g, offset, scale, eps=1e-5):
    """Loop over observations and groups: channels (k-1)*C/G+1 .. k*C/G (1-based)."""
    y = np.empty_like(x, dtype=np.float64)
    nc = x.shape[c]
    cg = nc // g
    for n in range(x.shape[b]):
        for k in range(g):
            idx = [slice(None)] * x.ndim
            idx[b] = n
            idx[c] = slice(k * cg, (k + 1) * cg)
            blk = x[tuple(idx)].astype(np.float64)
            y[tuple(idx)] = (blk - blk.mean()) / np.sqrt(blk.var() + eps)
    shp = [1] * x.ndim
    shp[c] = -1
    return y * np.ravel(scale).reshape(shp) + np.ravel(offset).reshape(shp)


def crosschannel(x, c, w, alpha=1e-4, beta=0.75, k=2.0):
    """y = x ./ (k + alpha*ss/w).^beta, ss over channels max(c-floor((w-1)/2),1) ..
    min(c+ceil((w-1)/2),C) (1-based, MathWorks source)."""
    nc = x.shape[c]
    xm = np.moveaxis(x.astype(np.float64), c, 0)
    y = np.empty_like(xm)
    for j in range(1, nc + 1):
        lo = max(j - math.floor((w - 1) / 2), 1)
        hi = min(j + math.ceil((w - 1) / 2), nc)
        ss = (xm[lo - 1:hi] ** 2).sum(axis=0)
        y[j - 1] = xm[j - 1] / (k + alpha * ss / w) ** beta
    return np.moveaxis(y, 0, c)


def softmax(x, c):
    e = np.exp(x - x.max(axis=c, keepdims=True))
    return e / e.sum(axis=c, keepdims=True)


def gelu(x, approx="none"):
    if approx == "none":
        return 0.5 * x * (1 + special.erf(x / math.sqrt(2)))
    return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


def fullyconnect(x_matlab, w, b):
    """x in MATLAB order H x W x C x N (or C x N): W * X(:, n) + b."""
    n = x_matlab.shape[-1]
    cols = [np.ravel(x_matlab[..., j], order="F") for j in range(n)]
    wm = np.reshape(w, (w.shape[0], -1), order="F")
    return np.stack([wm @ col + np.ravel(b) for col in cols], axis=1)


# --------------------------------------------------------------------------- gradients

def relative_error(a, b):
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    scale = max(np.abs(b).max(initial=0.0), 1e-12)
    return float(np.abs(a - b).max(initial=0.0) / scale)


def gradcheck(fun, args, formats, rng, eps=1e-6):
    """Max relative error of dlgradient vs central differences for every argument whose
    ``formats`` entry is a string ('' for an unformatted dlarray); ``None`` entries are
    passed as they are (constants).  ``fun(*args)`` returns a dlarray or a tuple of them;
    the loss is ``sum(Y_k .* R_k)`` with fixed random R_k.  Returns a list of errors."""
    args = [np.array(a, dtype=np.float64, order="C") if f is not None else a
            for a, f in zip(args, formats)]   # contiguous: reshape(-1) below is a view

    def wrap(arrs):
        return [ml.dlarray(a, f) if f is not None else a for a, f in zip(arrs, formats)]

    def outs(y):
        return y if isinstance(y, tuple) else (y,)

    ys = outs(fun(*wrap(args)))
    rs = [rng.standard_normal(y.data.shape) for y in ys]

    def value(arrs):
        return sum(float((y.data.astype(np.float64) * r).sum())
                   for y, r in zip(outs(fun(*wrap(arrs))), rs))

    def traced(*dl):
        loss = None
        for y, r in zip(outs(fun(*dl)), rs):
            term = ml.sum(y * r, "all")
            loss = term if loss is None else loss + term
        wrt = [d for d, f in zip(dl, formats) if f is not None]
        g = ml.dlgradient(loss, *wrt)
        return g if isinstance(g, tuple) else (g,)

    grads = ml.dlfeval(traced, *wrap(args))
    errors = []
    k = 0
    for i, f in enumerate(formats):
        if f is None:
            continue
        a = args[i]
        num = np.zeros_like(a)
        flat, nflat = a.reshape(-1), num.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            fp = value(args)
            flat[j] = old - eps
            fm = value(args)
            flat[j] = old
            nflat[j] = (fp - fm) / (2 * eps)
        got = ml.extractdata(grads[k])
        assert got.shape == a.shape or got.size == a.size
        errors.append(relative_error(got.reshape(a.shape), num))
        k += 1
    return errors
