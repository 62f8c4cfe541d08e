"""Independent reference oracle: convolutions as ``scipy.sparse`` matrices.

Written from the definitions in MATLAB_SEMANTICS §3.1, §3.2 and §3.7 and nothing else: it
shares no code with :mod:`mlayers._ops` or the compiled kernels (no im2col, no engine
layout).  It is slow and meant for tests.

Conventions
-----------
Arrays are in MATLAB dimension order (numpy indices are MATLAB's minus one):

    x        S1 x .. x Sd x C x N          one observation per trailing index
    conv w   F1 x .. x Fd x Cg x (Fg*G)     MATLAB's grouped F x Cg x Fg x G, last two merged
                                            column-major (G = 1: MATLAB's F x C x NF)
    tconv w  F1 x .. x Fd x Fg x (Cg*G)     MATLAB's grouped F x Fg x Cg x G, last two merged
                                            (G = 1: MATLAB's F x NF x C)

Output channel ``g*Fg + f`` (0-based) reads input channels ``g*Cg .. g*Cg + Cg - 1``.

One observation ``S1 x .. x Sd x C`` is vectorised column-major, as MATLAB's ``X(:)``::

    vec(X) = X.ravel(order='F')

and the matrices here satisfy ``vec(Y) = A @ vec(X)`` (the bias is added separately).

Convolution (cross-correlation, no kernel flip), per spatial dimension, 0-based::

    out = floor((in + pb + pa - Feff) / S) + 1,   Feff = (F - 1)*D + 1
    y[j, g*Fg+f] = sum_{k, c} w[k, c, g*Fg+f] * x[j*S + k*D - pb, g*Cg+c]

where positions outside ``0 .. in-1`` are zero padding (no matrix entry).

Transposed convolution (scatter form), per spatial dimension, 0-based::

    full = S*(in - 1) + Feff
    yfull[i*S + k*D, g*Fg+f] += w[k, f, g*Cg+c] * x[i, g*Cg+c]
    y = yfull[cb : full - ca] followed by ``offset`` positions that receive nothing
    out = full - cb - ca + offset

If the crops consume all of ``full`` (possible with an offset: MATLAB's manual
OutputSizeOffset ``max(0, 1 - (full - cb - ca))``), every output position is bias only.

The transposed convolution matrix is the transpose of the convolution matrix from its
output space (``pad_before = cb``, same weights array) wherever, per spatial dimension,
``offset == 0`` or ``ca == 0``; otherwise that convolution would read the offset
positions, which the transposed convolution leaves empty.
"""
import itertools

import numpy as np
import scipy.sparse as sp

__all__ = [
    "PADDING_MODES",
    "conv_output_size", "conv_transpose_output_size",
    "conv_matrix", "conv_transpose_matrix",
    "padding_indices", "pad_array",
    "conv", "conv_transpose", "conv_grads", "conv_transpose_grads",
]

#: MATLAB's named PaddingValue modes (MATLAB_SEMANTICS §3.7).
PADDING_MODES = ("symmetric-include-edge", "symmetric-exclude-edge", "replicate")


# --------------------------------------------------------------------------- arguments

def _vector(v, d, name, minimum):
    """Scalar or length-d sequence of integers >= minimum -> tuple of d ints."""
    a = np.asarray(v)
    if a.dtype == bool or not np.issubdtype(a.dtype, np.number):
        raise TypeError(f"reference: {name} must be integer-valued, got {v!r}")
    a = a.ravel()
    if a.size == 1:
        a = np.repeat(a, d)
    if a.size != d or not np.all(np.isfinite(a)) or np.any(a != np.round(a)) \
            or np.any(a < minimum):
        raise ValueError(f"reference: {name} must be a scalar or {d} integers >= {minimum}, "
                         f"got {v!r}")
    return tuple(int(t) for t in a)


def _pad_pair(p, d, name):
    """Scalar, length-d vector (symmetric) or 2 x d ``[before; after]`` -> (before, after)."""
    a = np.asarray(p)
    if a.ndim == 2:
        if a.shape != (2, d):
            raise ValueError(f"reference: {name} as a matrix must be 2x{d}, got {a.shape}")
        return _vector(a[0], d, name, 0), _vector(a[1], d, name, 0)
    v = _vector(a, d, name, 0)
    return v, v


def _weights(w, d):
    """Float64 weights with exactly d + 2 dimensions (MATLAB drops trailing singletons)."""
    w = np.asarray(w, dtype=np.float64)
    if w.ndim > d + 2:
        raise ValueError(f"reference: weights have {w.ndim} dimensions, at most {d + 2} "
                         f"expected for {d} spatial dimensions")
    return w.reshape(w.shape + (1,) * (d + 2 - w.ndim))


def _groups_split(total, groups, what):
    if groups < 1 or total % groups:
        raise ValueError(f"reference: {groups} groups do not divide the {total} {what}")
    return total // groups


def conv_output_size(in_size, filter_size, stride=1, dilation=1, pad_before=0, pad_after=0):
    """Spatial output size of a convolution: ``floor((in + pb + pa - Feff)/S) + 1``."""
    d = len(in_size)
    s, dl = _vector(stride, d, "stride", 1), _vector(dilation, d, "dilation", 1)
    pb, pa = _vector(pad_before, d, "pad_before", 0), _vector(pad_after, d, "pad_after", 0)
    out = []
    for n, f, si, di, b, a in zip(in_size, filter_size, s, dl, pb, pa):
        feff = (f - 1) * di + 1
        if n + b + a < feff:
            raise ValueError(f"reference: padded input {n}+{b}+{a} is shorter than the "
                             f"dilated filter {feff}")
        out.append((n + b + a - feff) // si + 1)
    return tuple(out)


def conv_transpose_output_size(in_size, filter_size, stride=1, dilation=1, crop_before=0,
                               crop_after=0, offset=0):
    """Spatial output size of a transposed convolution: ``S(in-1) + Feff - cb - ca + offset``."""
    d = len(in_size)
    s, dl = _vector(stride, d, "stride", 1), _vector(dilation, d, "dilation", 1)
    cb, ca = _vector(crop_before, d, "crop_before", 0), _vector(crop_after, d, "crop_after", 0)
    off = _vector(offset, d, "offset", 0)
    out = []
    for n, f, si, di, b, a, o in zip(in_size, filter_size, s, dl, cb, ca, off):
        m = si * (n - 1) + (f - 1) * di + 1 - b - a + o
        if m < 1:
            raise ValueError("reference: the cropping leaves an empty output")
        out.append(m)
    return tuple(out)


# --------------------------------------------------------------------------- matrices

def _taps(filter_size):
    """Every filter tap as a tuple of 0-based indices (MATLAB's k - 1)."""
    return itertools.product(*(range(f) for f in filter_size))


def _conv_triplets(in_size, wshape, stride, dilation, pad_before, pad_after, groups):
    """COO triplets (rows, cols, weight index) of the convolution; see :func:`conv_matrix`."""
    d = len(in_size)
    fsize, cg, ftot = wshape[:d], wshape[d], wshape[d + 1]
    fg = _groups_split(ftot, groups, "filters (weights' last dimension)")
    out = conv_output_size(in_size, fsize, stride, dilation, pad_before, pad_after)
    n_in, n_out = int(np.prod(in_size)), int(np.prod(out))
    # channel pairs: (local input channel cl, output channel ft) -> global input channel
    cl, ft = np.meshgrid(np.arange(cg), np.arange(ftot), indexing="ij")
    cl, ft = cl.ravel(), ft.ravel()
    cin = (ft // fg) * cg + cl
    grid = np.meshgrid(*(np.arange(o) for o in out), indexing="ij")  # output positions j
    rows, cols, widx = [], [], []
    for k in _taps(fsize):
        pos = [j * s + kk * dl - b for j, s, kk, dl, b in
               zip(grid, stride, k, dilation, pad_before)]
        ok = np.ones(out, dtype=bool)
        for p, n in zip(pos, in_size):
            ok &= (p >= 0) & (p < n)
        if not ok.any():
            continue
        out_lin = np.ravel_multi_index([j[ok] for j in grid], out, order="F")
        in_lin = np.ravel_multi_index([p[ok] for p in pos], in_size, order="F")
        wi = np.ravel_multi_index(tuple(np.full(cl.size, kk) for kk in k) + (cl, ft),
                                  wshape, order="F")
        rows.append((out_lin[None, :] + n_out * ft[:, None]).ravel())
        cols.append((in_lin[None, :] + n_in * cin[:, None]).ravel())
        widx.append(np.repeat(wi, out_lin.size))
    shape = (n_out * ftot, n_in * cg * groups)
    return _cat(rows), _cat(cols), _cat(widx), shape, out


def _conv_transpose_triplets(in_size, wshape, stride, dilation, crop_before, crop_after,
                             groups, offset):
    """COO triplets of the transposed convolution; see :func:`conv_transpose_matrix`."""
    d = len(in_size)
    fsize, fg, ctot = wshape[:d], wshape[d], wshape[d + 1]
    cg = _groups_split(ctot, groups, "input channels (weights' last dimension)")
    out = conv_transpose_output_size(in_size, fsize, stride, dilation, crop_before,
                                     crop_after, offset)
    kept = [o - off for o, off in zip(out, offset)]  # full - cb - ca: computed positions
    n_in, n_out = int(np.prod(in_size)), int(np.prod(out))
    # channel pairs: (local output channel f, input channel c) -> global output channel
    f, c = np.meshgrid(np.arange(fg), np.arange(ctot), indexing="ij")
    f, c = f.ravel(), c.ravel()
    cout = (c // cg) * fg + f
    grid = np.meshgrid(*(np.arange(n) for n in in_size), indexing="ij")  # input positions i
    rows, cols, widx = [], [], []
    for k in _taps(fsize):
        # scatter: x[i] lands on yfull[i*S + k*D], i.e. on y[i*S + k*D - cb] after cropping
        pos = [i * s + kk * dl - b for i, s, kk, dl, b in
               zip(grid, stride, k, dilation, crop_before)]
        ok = np.ones(in_size, dtype=bool)
        for p, m in zip(pos, kept):
            ok &= (p >= 0) & (p < m)
        if not ok.any():
            continue
        in_lin = np.ravel_multi_index([i[ok] for i in grid], in_size, order="F")
        out_lin = np.ravel_multi_index([p[ok] for p in pos], out, order="F")
        wi = np.ravel_multi_index(tuple(np.full(f.size, kk) for kk in k) + (f, c),
                                  wshape, order="F")
        rows.append((out_lin[None, :] + n_out * cout[:, None]).ravel())
        cols.append((in_lin[None, :] + n_in * c[:, None]).ravel())
        widx.append(np.repeat(wi, in_lin.size))
    shape = (n_out * fg * groups, n_in * ctot)
    return _cat(rows), _cat(cols), _cat(widx), shape, out


def _cat(parts):
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, np.int64)


def _csr(rows, cols, widx, shape, w):
    vals = np.asarray(w, dtype=np.float64).ravel(order="F")[widx]
    return sp.coo_matrix((vals, (rows, cols)), shape=shape).tocsr()


def conv_matrix(in_size, weights, stride=1, dilation=1, pad_before=0, pad_after=0, groups=1):
    """Sparse matrix of a grouped N-d convolution (cross-correlation, zero padding).

    Parameters
    ----------
    in_size : tuple of int
        Spatial input size ``(S1, .., Sd)``, d = 1, 2 or 3.
    weights : array_like
        ``F1 x .. x Fd x Cg x (Fg*G)``: MATLAB's grouped ``F x Cg x Fg x G`` with the last
        two dimensions merged column-major (for G = 1, MATLAB's ``F x C x NF``).  Missing
        trailing singleton dimensions are allowed.
    stride, dilation : int or sequence of d ints
        Positive.
    pad_before, pad_after : int or sequence of d ints
        Nonnegative zero padding at the start / end of each spatial dimension.
    groups : int
        G; output channel ``g*Fg + f`` reads input channels ``g*Cg .. g*Cg+Cg-1``.

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape ``(prod(out)*Fg*G, prod(in_size)*Cg*G)`` with ``vec(Y) = A @ vec(X)`` for one
        observation, ``vec(X) = X.ravel(order='F')``; the bias is not included.  Output
        size ``out = floor((in + pb + pa - Feff)/S) + 1`` with ``Feff = (F-1)*D + 1``.

    Examples
    --------
    MATLAB ``dlconv([0 0 1 0 0]', [1 2 3]', 0, 'Padding', 1)`` gives ``[0 3 2 1 0]``:

    >>> A = conv_matrix((5,), np.array([1., 2., 3.]).reshape(3, 1, 1), pad_before=1,
    ...                 pad_after=1)
    >>> A @ np.array([0., 0., 1., 0., 0.])
    array([0., 3., 2., 1., 0.])
    """
    d = len(in_size)
    w = _weights(weights, d)
    args = (tuple(int(n) for n in in_size), w.shape,
            _vector(stride, d, "stride", 1), _vector(dilation, d, "dilation", 1),
            _vector(pad_before, d, "pad_before", 0), _vector(pad_after, d, "pad_after", 0),
            int(groups))
    rows, cols, widx, shape, _ = _conv_triplets(*args)
    return _csr(rows, cols, widx, shape, w)


def conv_transpose_matrix(in_size, weights, stride=1, dilation=1, crop_before=0, crop_after=0,
                          groups=1, offset=0):
    """Sparse matrix of a grouped N-d transposed convolution, from the scatter definition.

    Parameters
    ----------
    in_size : tuple of int
        Spatial input size ``(S1, .., Sd)``.
    weights : array_like
        ``F1 x .. x Fd x Fg x (Cg*G)``: MATLAB's grouped ``F x Fg x Cg x G`` with the last
        two dimensions merged column-major (for G = 1, MATLAB's ``F x NF x C``).
    stride, dilation : int or sequence of d ints
    crop_before, crop_after : int or sequence of d ints
        Positions removed from the start / end of the full output ``S*(in-1) + Feff``.
    groups : int
        Output channel ``g*Fg + f`` gathers input channels ``g*Cg .. g*Cg+Cg-1``.
    offset : int or sequence of d ints
        Trailing positions appended after cropping that receive nothing (MATLAB's
        OutputSizeOffset: bias only).

    Returns
    -------
    scipy.sparse.csr_matrix
        Shape ``(prod(out)*Fg*G, prod(in_size)*Cg*G)``, ``vec(Y) = A @ vec(X)`` (no bias),
        ``out = S*(in-1) + Feff - cb - ca + offset``.

    Examples
    --------
    MATLAB ``dltranspconv([0 1 0]', [1 2 3]', 0)`` gives ``[0 1 2 3 0]`` (no kernel flip):

    >>> A = conv_transpose_matrix((3,), np.array([1., 2., 3.]).reshape(3, 1, 1))
    >>> A @ np.array([0., 1., 0.])
    array([0., 1., 2., 3., 0.])
    """
    d = len(in_size)
    w = _weights(weights, d)
    args = (tuple(int(n) for n in in_size), w.shape,
            _vector(stride, d, "stride", 1), _vector(dilation, d, "dilation", 1),
            _vector(crop_before, d, "crop_before", 0), _vector(crop_after, d, "crop_after", 0),
            int(groups), _vector(offset, d, "offset", 0))
    rows, cols, widx, shape, _ = _conv_transpose_triplets(*args)
    return _csr(rows, cols, widx, shape, w)


# --------------------------------------------------------------------------- padding values

def padding_indices(n, before, after, mode):
    """Source index of every position of a padded axis (MATLAB_SEMANTICS §3.7).

    Position ``q`` of the padded axis (``q = -before .. n + after - 1`` in input
    coordinates) reads input index ``src[q + before]``; ``-1`` marks a constant.

    ===========================  ============================  ====================
    mode                         q < 0                         q >= n
    ===========================  ============================  ====================
    number (constant)            -1                            -1
    'symmetric-include-edge'     -q - 1   (edge repeated)      2n - 1 - q
    'symmetric-exclude-edge'     -q       (edge not repeated)  2n - 2 - q
    'replicate'                  0                             n - 1
    ===========================  ============================  ====================

    Mirror modes raise ``ValueError`` when the padding is longer than what they can
    mirror (``n`` for include-edge, ``n - 1`` for exclude-edge), the package default.
    """
    q = np.arange(-before, n + after)
    lo, hi = q < 0, q >= n
    src = q.copy()
    if not isinstance(mode, str):
        src[lo | hi] = -1
        return src
    limit = {"symmetric-include-edge": n, "symmetric-exclude-edge": n - 1,
             "replicate": None}
    if mode not in limit:
        raise ValueError(f"reference: unknown PaddingValue {mode!r}")
    if limit[mode] is not None and max(before, after) > limit[mode]:
        raise ValueError(f"reference: padding {max(before, after)} is longer than the "
                         f"{n} elements {mode!r} can mirror")
    if mode == "symmetric-include-edge":
        src[lo], src[hi] = -q[lo] - 1, 2 * n - 1 - q[hi]
    elif mode == "symmetric-exclude-edge":
        src[lo], src[hi] = -q[lo], 2 * n - 2 - q[hi]
    else:
        src[lo], src[hi] = 0, n - 1
    return src


def pad_array(x, pad_before, pad_after, padding_value=0):
    """Pad the leading ``len(pad_before)`` (spatial) dimensions of ``x`` explicitly.

    ``padding_value`` is a number or one of :data:`PADDING_MODES`; see
    :func:`padding_indices` for the index mapping.  Returns a new float64 array.
    """
    xp = np.asarray(x, dtype=np.float64)
    for axis, (b, a) in enumerate(zip(pad_before, pad_after)):
        src = padding_indices(xp.shape[axis], b, a, padding_value)
        xp = np.take(xp, np.where(src < 0, 0, src), axis=axis)
        if np.any(src < 0):
            sl = [slice(None)] * xp.ndim
            sl[axis] = src < 0
            xp[tuple(sl)] = padding_value
    return xp


def _unpad_adjoint(gp, shape, pad_before, pad_after, padding_value):
    """Adjoint of :func:`pad_array` (constant positions drop out): fold ``gp`` back."""
    g = gp
    for axis in reversed(range(len(pad_before))):
        src = padding_indices(shape[axis], pad_before[axis], pad_after[axis], padding_value)
        moved = np.moveaxis(g, axis, 0)
        acc = np.zeros((shape[axis],) + moved.shape[1:])
        keep = src >= 0
        np.add.at(acc, src[keep], moved[keep])
        g = np.moveaxis(acc, 0, axis)
    return g


# --------------------------------------------------------------------------- batched operations

def _batched(x, w):
    """Float64 x (S.. x C x N) and w with d + 2 dims; d is x.ndim - 2."""
    x = np.asarray(x, dtype=np.float64)
    d = x.ndim - 2
    if not 1 <= d <= 3:
        raise ValueError(f"reference: x must be S1..Sd x C x N with d = 1..3, got {x.shape}")
    return x, _weights(w, d), d


def _apply(A, x, d, out, cout):
    """Apply A to every observation of x (S.. x C x N) -> out.. x cout x N."""
    n = x.shape[d + 1]
    y = A @ x.reshape(-1, n, order="F")
    return np.asarray(y).reshape(tuple(out) + (cout, n), order="F")


def _add_bias(y, bias, d):
    if bias is None:
        return y
    b = np.asarray(bias, dtype=np.float64).ravel(order="F")
    if b.size == 1:
        b = np.repeat(b, y.shape[d])
    if b.size != y.shape[d]:
        raise ValueError(f"reference: bias has {b.size} elements for {y.shape[d]} channels")
    return y + b.reshape((1,) * d + (-1, 1))


def _dw_from_triplets(rows, cols, widx, wshape, xv, dyv):
    """dW[e] = sum over the entries A[r, c] = w[e] and observations of dy[r] * x[c]."""
    contrib = np.einsum("ij,ij->i", dyv[rows], xv[cols]) if rows.size else np.zeros(0)
    return np.bincount(widx, weights=contrib, minlength=int(np.prod(wshape))).reshape(
        wshape, order="F")


def conv(x, w, bias=None, stride=1, dilation=1, padding=0, groups=1, padding_value=0):
    """Reference grouped convolution of a batch in MATLAB layout.

    Parameters
    ----------
    x : array_like
        ``S1 x .. x Sd x C x N`` (d = 1, 2, 3).
    w : array_like
        ``F1 x .. x Fd x Cg x (Fg*G)`` (see :func:`conv_matrix`).
    bias : array_like, optional
        ``Fg*G`` elements (any shape) or a scalar.
    stride, dilation : int or sequence of d ints
    padding : int, sequence of d ints, or 2 x d array
        Scalar (every edge), per-dimension (symmetric) or ``[before; after]``.
    groups : int
    padding_value : float or str
        A number, or MATLAB's ``'symmetric-include-edge'``, ``'symmetric-exclude-edge'``,
        ``'replicate'``; non-zero values pad explicitly with :func:`pad_array` first.

    Returns
    -------
    numpy.ndarray
        float64 ``O1 x .. x Od x Fg*G x N``.

    Examples
    --------
    MATLAB ``dlconv([1 2 3 4 5 6]', ones(3,1,1), 0, 'Stride', 2, 'Padding', 'same')``
    pads ``[0 1]`` and gives ``[6 12 11]``:

    >>> conv(np.arange(1., 7.).reshape(6, 1, 1), np.ones((3, 1, 1)), stride=2,
    ...      padding=[[0], [1]]).ravel()
    array([ 6., 12., 11.])
    """
    x, w, d = _batched(x, w)
    before, after = _pad_pair(padding, d, "padding")
    if isinstance(padding_value, str) or padding_value != 0:
        x = pad_array(x, before, after, padding_value)
        before = after = (0,) * d
    A = conv_matrix(x.shape[:d], w, stride, dilation, before, after, groups)
    out = conv_output_size(x.shape[:d], w.shape[:d], stride, dilation, before, after)
    return _add_bias(_apply(A, x, d, out, w.shape[d + 1]), bias, d)


def conv_transpose(x, w, bias=None, stride=1, dilation=1, cropping=0, groups=1, offset=0):
    """Reference grouped transposed convolution of a batch in MATLAB layout.

    Parameters
    ----------
    x : array_like
        ``S1 x .. x Sd x C x N``.
    w : array_like
        ``F1 x .. x Fd x Fg x (Cg*G)`` (see :func:`conv_transpose_matrix`).
    bias : array_like, optional
        ``Fg*G`` elements or a scalar; added everywhere, offset positions included.
    cropping : int, sequence of d ints, or 2 x d array
        As ``padding`` in :func:`conv`.
    offset : int or sequence of d ints
        Trailing bias-only positions per spatial dimension.

    Returns
    -------
    numpy.ndarray
        float64 ``O1 x .. x Od x Fg*G x N``, ``O = S*(in-1) + Feff - cb - ca + offset``.

    Examples
    --------
    MATLAB transposed ``'same'`` with F < S (x = [1 2], W = [1 2], Stride 3, bias 0.5):

    >>> conv_transpose(np.array([1., 2.]).reshape(2, 1, 1), np.array([1., 2.]).reshape(2, 1, 1),
    ...                0.5, stride=3, offset=1).ravel()
    array([1.5, 2.5, 0.5, 2.5, 4.5, 0.5])
    """
    x, w, d = _batched(x, w)
    cb, ca = _pad_pair(cropping, d, "cropping")
    off = _vector(offset, d, "offset", 0)
    A = conv_transpose_matrix(x.shape[:d], w, stride, dilation, cb, ca, groups, off)
    out = conv_transpose_output_size(x.shape[:d], w.shape[:d], stride, dilation, cb, ca, off)
    return _add_bias(_apply(A, x, d, out, w.shape[d] * groups), bias, d)


def _check_dy(dy, shape):
    dy = np.asarray(dy, dtype=np.float64)
    if dy.shape != tuple(shape):
        raise ValueError(f"reference: dy must have size {tuple(shape)}, got {dy.shape}")
    return dy


def conv_grads(x, w, dy, stride=1, dilation=1, padding=0, groups=1, padding_value=0):
    """Gradients of :func:`conv`, from its matrix, in float64.

    Parameters
    ----------
    x, w, stride, dilation, padding, groups, padding_value
        As in :func:`conv`.
    dy : array_like
        dL/dY, the size of ``conv(x, w, ...)``: ``O1 x .. x Od x Fg*G x N``.

    Returns
    -------
    dX : numpy.ndarray
        ``A^T dY`` per observation, x's shape (folded back through the explicit padding
        step for a non-zero ``padding_value``; constant padding carries no gradient).
    dW : numpy.ndarray
        w's shape (d + 2 dims).  The convolution is linear in w, so
        ``dW[e] = sum_n <A(unit_e) x_n, dy_n>``: the sum of ``dy[r] * x[c]`` over the
        matrix entries ``A[r, c]`` that carry weight ``e``.
    dB : numpy.ndarray
        Length ``Fg*G``: dY summed over positions and observations.
    """
    x, w, d = _batched(x, w)
    before, after = _pad_pair(padding, d, "padding")
    xs = x.shape
    padded = isinstance(padding_value, str) or padding_value != 0
    if padded:
        x = pad_array(x, before, after, padding_value)
        before = after = (0,) * d
    sz = tuple(x.shape[:d])
    rows, cols, widx, shape, out = _conv_triplets(
        sz, w.shape, _vector(stride, d, "stride", 1), _vector(dilation, d, "dilation", 1),
        before, after, int(groups))
    n = x.shape[d + 1]
    dy = _check_dy(dy, tuple(out) + (w.shape[d + 1], n))
    A = _csr(rows, cols, widx, shape, w)
    xv, dyv = x.reshape(-1, n, order="F"), dy.reshape(-1, n, order="F")
    dx = np.asarray(A.T @ dyv).reshape(x.shape, order="F")
    if padded:
        pb, pa = _pad_pair(padding, d, "padding")
        dx = _unpad_adjoint(dx, xs, pb, pa, padding_value)
    dw = _dw_from_triplets(rows, cols, widx, w.shape, xv, dyv)
    db = dy.sum(axis=tuple(i for i in range(dy.ndim) if i != d))
    return dx, dw, db


def conv_transpose_grads(x, w, dy, stride=1, dilation=1, cropping=0, groups=1, offset=0):
    """Gradients of :func:`conv_transpose`, from its matrix, in float64.

    Parameters
    ----------
    x, w, stride, dilation, cropping, groups, offset
        As in :func:`conv_transpose`.
    dy : array_like
        dL/dY, the size of ``conv_transpose(x, w, ...)``.

    Returns
    -------
    dX : numpy.ndarray
        ``A^T dY`` per observation, x's shape.
    dW : numpy.ndarray
        w's shape: ``dW[e]`` sums ``dy[r] * x[c]`` over the entries carrying weight ``e``.
    dB : numpy.ndarray
        Length ``Fg*G``: dY summed over all positions (offset positions included) and
        observations.
    """
    x, w, d = _batched(x, w)
    cb, ca = _pad_pair(cropping, d, "cropping")
    rows, cols, widx, shape, out = _conv_transpose_triplets(
        tuple(x.shape[:d]), w.shape, _vector(stride, d, "stride", 1),
        _vector(dilation, d, "dilation", 1), cb, ca, int(groups),
        _vector(offset, d, "offset", 0))
    n = x.shape[d + 1]
    dy = _check_dy(dy, tuple(out) + (w.shape[d] * groups, n))
    A = _csr(rows, cols, widx, shape, w)
    xv, dyv = x.reshape(-1, n, order="F"), dy.reshape(-1, n, order="F")
    dx = np.asarray(A.T @ dyv).reshape(x.shape, order="F")
    dw = _dw_from_triplets(rows, cols, widx, w.shape, xv, dyv)
    db = dy.sum(axis=tuple(i for i in range(dy.ndim) if i != d))
    return dx, dw, db
