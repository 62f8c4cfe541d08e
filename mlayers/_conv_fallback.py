"""Convolutions whose cost is the work, for geometries the kernels would blow up (issue 21).

The compiled kernels build padded input volumes (the direct kernel's phase volumes, the
channel-wise kernels' planes) whose size is the padded extent the convolution spans,
``(O - 1)*S + (K - 1)*D + 1`` per dimension, and the direct adjoint computes every input
position densely.  Normally both are about the size of the input and the work, but a
large Stride x DilationFactor (``dlconv`` of a 4 x 4 input with Stride 512,
DilationFactor 512, Padding 256: a 513 x 513 extent per channel for one output) or a
filter much larger than the input of a transposed convolution (F^(2d) instead of F^d)
makes them arbitrarily larger.  :func:`needed` recognises those geometries (the kernel
seam, :mod:`mlayers._ops`, asks it first) and the three functions here compute them
instead, in cost proportional to outputs x filter taps x channels (the work a
gather-and-multiply, im2col without the padded extent, does), with bounded memory.

Everything works in the engine layout of :mod:`mlayers._ops` (``N x C x D0 x D1 x D2``,
three spatial dimensions, the geometry's ``packed`` vector), so the seam can call these
exactly where it would call a kernel.  They are NumPy (BLAS for the products): slower
per multiply-add than the kernels on ordinary problems, which never come here.
"""
import functools
import math

import numpy as np

#: A geometry goes here when the kernels' padded extent exceeds this many times the work
#: (input elements + outputs x filter taps, per channel) plus :data:`EXTENT_SLACK`.
EXTENT_RATIO = 16
EXTENT_SLACK = 1 << 16
#: ...or when a gemm kernel's column buffer (at least 64 columns of channels x taps rows,
#: one per thread) would exceed this many bytes: huge filters (transposedConv3dLayer(200, 3)
#: has 8e6 taps: 4 GB per thread).
COLUMN_BUDGET = 1 << 30
#: Elements of one chunk's gathered columns (the memory bound of this module).
CHUNK = 1 << 21
#: The direct adjoint computes every input position with the taps of its stride phase:
#: it is used only while that is at most this many times the scatter's work.
ADJOINT_RATIO = 16


def _fields(packed):
    return [tuple(int(v) for v in packed[j:j + 3]) for j in range(0, 18, 3)]


# Geometries are made once per size (_ops.conv_geometry is cached) and compared by
# identity, so these per-geometry numbers are computed once, not on every call.
@functools.lru_cache(maxsize=512)
def extent(geom):
    """Elements of the padded input region one channel of the convolution spans."""
    _, o, k, s, dl, _ = _fields(geom.packed)
    return math.prod((oi - 1) * si + (ki - 1) * di + 1 for oi, ki, si, di in zip(o, k, s, dl))


def work(geom):
    """Elements read and multiply-adds of one channel pair: in + out x taps."""
    return geom.in_total + geom.out_total * geom.k_total


def needed(geom, rows, itemsize, nthreads):
    """Whether the convolution of ``geom`` must avoid the kernels (see the module doc).

    ``rows``: channels per group x taps of the gemm kernels' column buffer.
    """
    ext = extent(geom)
    if ext > EXTENT_RATIO * work(geom) + EXTENT_SLACK:
        return True
    if ext * itemsize * max(nthreads, 1) > COLUMN_BUDGET:
        return True       # the kernels' padded planes/volumes alone (per thread)
    return rows * 64 * itemsize * max(nthreads, 1) > COLUMN_BUDGET


def dense_adjoint_ok(geom):
    """Whether the direct adjoint (every input position, taps of its phase) costs at most
    :data:`ADJOINT_RATIO` times the scatter (outputs x taps): false for a transposed
    convolution whose filter is much larger than its input."""
    dense = geom.in_total * geom.k_total // max(math.prod(geom.stride), 1)
    return dense <= ADJOINT_RATIO * work(geom)


# --------------------------------------------------------------------------- index

def _dim_ranges(n, o, k, s, dl, p):
    """Per output index of one dimension: the taps [lo, hi) that land in the input."""
    start = np.arange(o, dtype=np.int64) * s - p
    lo = np.maximum(0, (-start + dl - 1) // dl)
    hi = np.where(start <= n - 1, np.minimum(k, (n - 1 - start) // dl + 1), 0)
    return start, lo, hi


def _valid_outputs(packed):
    """Flat indices of the outputs with at least one tap in the input (the others are
    the bias alone: with a large padding most outputs read only zeros)."""
    i, o, k, s, dl, p = _fields(packed)
    per = []
    for d in range(3):
        _, lo, hi = _dim_ranges(i[d], o[d], k[d], s[d], dl[d], p[d])
        per.append(np.flatnonzero(hi > lo))
    if min(len(v) for v in per) == 0:
        return np.empty(0, dtype=np.intp)
    return ((per[0][:, None, None] * o[1] + per[1][None, :, None]) * o[2]
            + per[2][None, None, :]).reshape(-1)


def _chunks(outputs, n_taps, per_pair):
    """(output indices, tap slice) pairs covering outputs x taps, CHUNK elements each."""
    kc = max(1, min(n_taps, CHUNK // max(per_pair, 1)))
    jc = max(1, CHUNK // max(per_pair * kc, 1))
    for t0 in range(0, n_taps, kc):
        for j0 in range(0, len(outputs), jc):
            yield outputs[j0:j0 + jc], slice(t0, min(t0 + kc, n_taps))


def _index(packed, js, ts):
    """idx[j, t]: the flat input position output j reads with tap t, or the input's size
    (where the caller keeps a zero) outside the input; for outputs ``js`` (flat
    indices), taps ``ts`` (a slice)."""
    i, o, k, s, dl, p = _fields(packed)
    oj = np.unravel_index(js, o)
    kt = np.unravel_index(np.arange(ts.start, ts.stop), k)
    flat = np.zeros((len(js), ts.stop - ts.start), dtype=np.intp)
    valid = np.ones(flat.shape, dtype=bool)
    for d in range(3):
        r = oj[d][:, None] * s[d] + kt[d][None, :] * dl[d] - p[d]
        valid &= (r >= 0) & (r < i[d])
        flat = flat * i[d] + r
    flat[~valid] = math.prod(i)
    return flat


# --------------------------------------------------------------------------- windows
# With many taps per output (a filter much larger than the input), each output's taps
# that land in the input are one strided box of the input and one box of the filter: a
# loop over the outputs that touch the input, each a dense product of its boxes, costs
# those taps x channels with no index arrays (the gather would build one per pair).

#: taps x channels per group from which the loop over outputs replaces the gather
WINDOW_MIN = 4096


def _dim_windows(n, o, k, s, dl, p):
    """(output index, input slice, tap slice) of the outputs of one dimension with taps
    in the input."""
    start, lo, hi = _dim_ranges(n, o, k, s, dl, p)
    return [(int(j), slice(int(start[j] + lo[j] * dl), int(start[j] + (hi[j] - 1) * dl + 1),
                           dl), slice(int(lo[j]), int(hi[j])))
            for j in np.flatnonzero(hi > lo)]


def _windows(packed):
    """(output index, input box, filter box) for every output with taps in the input."""
    i, o, k, s, dl, p = _fields(packed)
    per = [_dim_windows(*a) for a in zip(i, o, k, s, dl, p)]
    for j0, x0, w0 in per[0]:
        for j1, x1, w1 in per[1]:
            for j2, x2, w2 in per[2]:
                yield (j0, j1, j2), (x0, x1, x2), (w0, w1, w2)


def _use_windows(we):
    return math.prod(we.shape[1:]) >= WINDOW_MIN


# --------------------------------------------------------------------------- operations

def forward(xe, we, b, ye, packed, groups, nthreads=1):
    """ye = conv(xe) + b (engine layout, the signature of ``_conv.conv_forward``)."""
    if _use_windows(we):
        cout, cg = we.shape[:2]
        fg = cout // groups
        w = we.astype(ye.dtype, copy=False)
        ye[...] = 0 if b.size == 0 else b.reshape(1, cout, 1, 1, 1)
        for j, xs, ws in _windows(packed):
            for g in range(groups):
                xb = xe[:, g * cg:(g + 1) * cg][(slice(None), slice(None)) + xs]
                wb = w[g * fg:(g + 1) * fg][(slice(None), slice(None)) + ws]
                ye[(slice(None), slice(g * fg, (g + 1) * fg)) + j] += np.tensordot(
                    xb, wb, axes=([1, 2, 3, 4], [1, 2, 3, 4]))
        return
    n, c = xe.shape[:2]
    cout, cg = we.shape[:2]
    fg = cout // groups
    itot, otot = math.prod(xe.shape[2:]), math.prod(ye.shape[2:])
    ktot = math.prod(we.shape[2:])
    x = np.zeros((n, c, itot + 1), dtype=ye.dtype)
    x[:, :, :itot] = xe.reshape(n, c, itot)
    w = we.reshape(cout, cg, ktot).astype(ye.dtype, copy=False)
    y = ye.reshape(n, cout, otot)
    y[...] = 0 if b.size == 0 else b.reshape(1, cout, 1)
    for js, ts in _chunks(_valid_outputs(packed), ktot, n * cg):
        idx = _index(packed, js, ts)
        for g in range(groups):
            cols = x[:, g * cg:(g + 1) * cg][:, :, idx]                 # n, cg, J, T
            y[:, g * fg:(g + 1) * fg, js] += np.tensordot(
                cols, w[g * fg:(g + 1) * fg, :, ts], axes=([1, 3], [1, 2])).transpose(0, 2, 1)


def adjoint(dye, we, b, dxe, packed, groups, nthreads=1):
    """dxe = conv^T(dye) + b (the transposed convolution; ``_conv.conv_adjoint``'s
    signature): each output's products scattered onto the input positions they read."""
    if _use_windows(we):
        cout, cg = we.shape[:2]
        fg = cout // groups
        w = we.astype(dxe.dtype, copy=False)
        dxe[...] = 0 if b.size == 0 else b.reshape(1, -1, 1, 1, 1)
        for j, xs, ws in _windows(packed):
            for g in range(groups):
                dyj = dye[(slice(None), slice(g * fg, (g + 1) * fg)) + j]     # n, fg
                wb = w[g * fg:(g + 1) * fg][(slice(None), slice(None)) + ws]
                dxe[(slice(None), slice(g * cg, (g + 1) * cg)) + xs] += np.tensordot(
                    dyj, wb, axes=([1], [0]))
        return
    n, cout = dye.shape[:2]
    cg = we.shape[1]
    fg = cout // groups
    c = dxe.shape[1]
    itot, otot = math.prod(dxe.shape[2:]), math.prod(dye.shape[2:])
    ktot = math.prod(we.shape[2:])
    dy = dye.reshape(n, cout, otot)
    w = we.reshape(cout, cg, ktot).astype(dxe.dtype, copy=False)
    dx = dxe.reshape(n, c, itot)
    dx[...] = 0 if b.size == 0 else b.reshape(1, c, 1)
    for js, ts in _chunks(_valid_outputs(packed), ktot, n * max(cg, fg)):
        idx = _index(packed, js, ts)
        for g in range(groups):
            vals = np.tensordot(dy[:, g * fg:(g + 1) * fg, js], w[g * fg:(g + 1) * fg, :, ts],
                                axes=([1], [0]))                          # n, J, cg, T
            dxg = dx[:, g * cg:(g + 1) * cg]
            # one tap reads each input position at most once over the outputs, so its
            # products add with plain fancy indexing; only real terms are added (no
            # 0 * Inf from the padding)
            for t in range(idx.shape[1]):
                keep = idx[:, t] < itot
                if keep.any():
                    dxg[:, :, idx[keep, t]] += vals[..., t][:, keep].transpose(0, 2, 1)


def weight_grad(xe, dye, dwe, packed, groups, nthreads=1):
    """dwe = the weight gradient of conv(xe) for output gradient dye (engine layout)."""
    if _use_windows(dwe):
        cout, cg = dwe.shape[:2]
        fg = cout // groups
        dwe[...] = 0
        for j, xs, ws in _windows(packed):
            for g in range(groups):
                dyj = dye[(slice(None), slice(g * fg, (g + 1) * fg)) + j]     # n, fg
                xb = xe[:, g * cg:(g + 1) * cg][(slice(None), slice(None)) + xs]
                dwe[(slice(g * fg, (g + 1) * fg), slice(None)) + ws] += np.tensordot(
                    dyj, xb, axes=([0], [0])).astype(dwe.dtype, copy=False)
        return
    n, c = xe.shape[:2]
    cout, cg = dwe.shape[:2]
    fg = cout // groups
    itot, otot = math.prod(xe.shape[2:]), math.prod(dye.shape[2:])
    ktot = math.prod(dwe.shape[2:])
    x = np.zeros((n, c, itot + 1), dtype=dwe.dtype)
    x[:, :, :itot] = xe.reshape(n, c, itot)
    dy = dye.reshape(n, cout, otot)
    dw = dwe.reshape(cout, cg, ktot)
    dw[...] = 0
    for js, ts in _chunks(_valid_outputs(packed), ktot, n * cg):
        idx = _index(packed, js, ts)
        for g in range(groups):
            cols = x[:, g * cg:(g + 1) * cg][:, :, idx]                 # n, cg, J, T
            dw[g * fg:(g + 1) * fg, :, ts] += np.tensordot(
                dy[:, g * fg:(g + 1) * fg, js], cols, axes=([0, 2], [0, 2]))
