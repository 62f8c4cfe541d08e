"""Max and average pooling, per channel, over 1 to 3 spatial dimensions, and their
backward passes.

Memory contract (C-contiguous, float32 or float64): ``x[P, I0, I1, I2]`` and
``y[P, O0, O1, O2]`` where ``P`` counts every (observation, channel) plane; ``geom`` is
packed as in ``_conv`` (``[I.., O.., K.., S.., D.., P..]``; dilation is ignored).  The
engine's dimension 2 is MATLAB's first spatial dimension, so a plane-local offset
``(i0*I1 + i1)*I2 + i2`` plus ``p*I0*I1*I2`` is MATLAB's 0-based column-major linear
index into the whole input.

Padding semantics (MATLAB's): max pooling pads with ``pad_floor`` (``-realmax`` of the
data's class in MATLAB, so padded cells win only over ``-Inf``); average pooling either counts
padded cells as zeros (divides by the pool area, MATLAB's default) or leaves them out
(divides by the number of real cells, PaddingValue 'mean'), summing in double precision
(also for float32 data, then rounded once).  A NaN in a window makes the
result NaN, as max/mean do on NaN; the max's index is then the first NaN's.  Ties in a max
go to the first cell in MATLAB's column-major order.

Every kernel is parallel over planes only (each plane's outputs and gradients are written
by one thread, in a fixed order), so results do not depend on the thread count and the
backward scatters are race-free.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport NAN, isnan
from libc.stdint cimport int32_t
from libc.string cimport memcpy, memset

DEF MODE_MAX = 0
DEF MODE_AVERAGE = 1           # padded cells count as zeros
DEF MODE_AVERAGE_REAL = 2      # padded cells are left out

MAX, AVERAGE, AVERAGE_REAL = MODE_MAX, MODE_AVERAGE, MODE_AVERAGE_REAL

cdef extern from "_pool_rows.h" nogil:
    void pool_max22_f(const float* r0, const float* r1, float* y, Py_ssize_t n)
    void pool_max22_d(const double* r0, const double* r1, double* y, Py_ssize_t n)
    void pool_max22_idx_f(const float* r0, const float* r1, float* y, int32_t* ip,
                          Py_ssize_t n, int32_t off, int32_t width)
    void pool_max22_idx_d(const double* r0, const double* r1, double* y, int32_t* ip,
                          Py_ssize_t n, int32_t off, int32_t width)
    void pool_max22_exact_f(const float* x, float* y, Py_ssize_t pairs, Py_ssize_t n)
    void pool_max22_exact_d(const double* x, double* y, Py_ssize_t pairs, Py_ssize_t n)
    void pool_sum_rows_f(const float* x, float* y, Py_ssize_t rows, Py_ssize_t stride,
                         Py_ssize_t ncols, double div, double* acc)
    void pool_sum_rows_d(const double* x, double* y, Py_ssize_t rows, Py_ssize_t stride,
                         Py_ssize_t ncols, double div, double* acc)
    void pool_sum_planes_f(const float* x, float* y, Py_ssize_t nplanes, Py_ssize_t len,
                           double div)
    void pool_sum_planes_d(const double* x, double* y, Py_ssize_t nplanes, Py_ssize_t len,
                           double div)
    void pool_max22_exact_idx_f(const float* x, float* y, int32_t* ip, Py_ssize_t pairs,
                                Py_ssize_t n)
    void pool_max22_exact_idx_d(const double* x, double* y, int32_t* ip, Py_ssize_t pairs,
                                Py_ssize_t n)
    Py_ssize_t POOL_PAIRS_BLOCK
    void pool_max_plane_f(const float* xp, float* yp, int32_t* ip, const Py_ssize_t* g,
                          float pad_floor)
    void pool_max_plane_d(const double* xp, double* yp, int32_t* ip, const Py_ssize_t* g,
                          double pad_floor)


cdef inline void _max22_row(const floating* r0, const floating* r1, floating* y,
                            Py_ssize_t n) noexcept nogil:
    if floating is float:
        pool_max22_f(r0, r1, y, n)
    else:
        pool_max22_d(r0, r1, y, n)


cdef inline void _max22_row_idx(const floating* r0, const floating* r1, floating* y,
                                int32_t* ip, Py_ssize_t n, int32_t off,
                                int32_t width) noexcept nogil:
    if floating is float:
        pool_max22_idx_f(r0, r1, y, ip, n, off, width)
    else:
        pool_max22_idx_d(r0, r1, y, ip, n, off, width)


cdef inline void _max22_exact(const floating* xp, floating* yp, Py_ssize_t pairs,
                              Py_ssize_t n) noexcept nogil:
    """2x2 windows, stride 2, over ``pairs`` pairs of rows of 2n values that the windows
    tile exactly (no winners; n <= POOL_PAIRS_BLOCK / 2): y is pairs x n."""
    if floating is float:
        pool_max22_exact_f(xp, yp, pairs, n)
    else:
        pool_max22_exact_d(xp, yp, pairs, n)


cdef inline bint _tiles22(const Py_ssize_t* g) noexcept nogil:
    """Whether 2-D windows of 2x2, stride 2, unpadded, tile the planes exactly."""
    return (g[6] == 1 and g[9] == 1 and g[15] == 0 and g[7] == 2 and g[8] == 2
            and g[10] == 2 and g[11] == 2 and g[16] == 0 and g[17] == 0
            and g[1] == 2 * g[4] and g[2] == 2 * g[5] and g[0] == g[3]
            and 2 * g[5] <= POOL_PAIRS_BLOCK)


cdef inline void _max_plane(const floating* xp, floating* yp, int32_t* ip,
                            const Py_ssize_t* g, floating pad_floor) noexcept nogil:
    """Max pooling of one plane (raw C-contiguous pointers); ``ip`` NULL: no winners.

    A window that has padded cells outputs at least ``pad_floor`` (MATLAB pads with
    ``-realmax``, which only a window of ``-Inf`` real cells shows; ``-Inf``: padded cells
    never win).  The winner stays the window's first real maximum (pool_max_plane: any
    window; 2 x 2 windows at stride 2 here, rows of windows at once)."""
    cdef Py_ssize_t i0n = g[0], i1n = g[1], i2n = g[2]
    cdef Py_ssize_t o0n = g[3], o1n = g[4], o2n = g[5]
    cdef Py_ssize_t k0n = g[6], k1n = g[7], k2n = g[8]
    cdef Py_ssize_t s0 = g[9], s1 = g[10], s2 = g[11]
    cdef Py_ssize_t p0 = g[15], p1 = g[16], p2 = g[17]
    cdef Py_ssize_t o0, o1, off, out = 0
    if k0n == 1 and s0 == 1 and p0 == 0 and k1n == 2 and k2n == 2 and s1 == 2 and s2 == 2 \
            and p1 == 0 and p2 == 0 and 2 * o1n <= i1n and 2 * o2n <= i2n:
        # pool 2x2, stride 2, every window real: rows of windows at once
        if _tiles22(g):
            if ip == NULL:
                _max22_exact(xp, yp, o0n * o1n, o2n)
            elif floating is float:
                pool_max22_exact_idx_f(xp, yp, ip, o0n * o1n, o2n)
            else:
                pool_max22_exact_idx_d(xp, yp, ip, o0n * o1n, o2n)
            return
        for o0 in range(o0n):
            for o1 in range(o1n):
                off = (o0 * i1n + 2 * o1) * i2n
                if ip == NULL:
                    _max22_row(xp + off, xp + off + i2n, yp + out, o2n)
                else:
                    _max22_row_idx(xp + off, xp + off + i2n, yp + out, ip + out, o2n,
                                   <int32_t>off, <int32_t>i2n)
                out = out + o2n
        return
    if floating is float:
        pool_max_plane_f(xp, yp, ip, g, pad_floor)
    else:
        pool_max_plane_d(xp, yp, ip, g, pad_floor)


def pool(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
         const Py_ssize_t[::1] geom, int mode, int nthreads, double pad_floor=-1.0 / 0.0):
    if x.shape[0] > 0:
        _pool(&x[0, 0, 0, 0], &y[0, 0, 0, 0], x.shape[0], &geom[0], mode, nthreads,
              pad_floor)


cdef void _pool(const floating* x, floating* y, Py_ssize_t planes, const Py_ssize_t* geom,
                int mode, int nthreads, double pad_floor) noexcept nogil:
    # pool on checked memory: planes x I0 x I1 x I2 -> planes x O0 x O1 x O2
    cdef Py_ssize_t i0n = geom[0], i1n = geom[1], i2n = geom[2]
    cdef Py_ssize_t o0n = geom[3], o1n = geom[4], o2n = geom[5]
    cdef Py_ssize_t k0n = geom[6], k1n = geom[7], k2n = geom[8]
    cdef Py_ssize_t s0 = geom[9], s1 = geom[10], s2 = geom[11]
    cdef Py_ssize_t p0 = geom[15], p1 = geom[16], p2 = geom[17]
    cdef Py_ssize_t area = k0n * k1n * k2n
    cdef Py_ssize_t isize = i0n * i1n * i2n, osize = o0n * o1n * o2n
    cdef Py_ssize_t p, o0, o1, o2, a0, a1, a2, b0, b1, b2, i0, i1, i2, count
    cdef double total             # average pooling sums in double, also for float32
    cdef Py_ssize_t nt, t, share, lo, hi
    cdef const floating* xp
    if mode == MODE_MAX and _tiles22(geom):
        # windows that tile every plane: the planes one after another are rows of windows
        # too, so each thread takes a share of whole planes in one run
        nt = max(1, min(nthreads, planes))
        if nt == 1:     # (no OpenMP region: about a microsecond to enter, as _conv's)
            _max22_exact(x, y, planes * o0n * o1n, o2n)
            return
        share = (planes + nt - 1) // nt
        for t in prange(nt, num_threads=nt, schedule='static'):
            lo = t * share
            hi = min(planes, lo + share)
            if hi > lo:
                _max22_exact(x + lo * isize, y + lo * osize, (hi - lo) * o0n * o1n, o2n)
        return
    if mode == MODE_MAX:
        if planes == 1 or nthreads == 1:
            for p in range(planes):
                _max_plane(x + p * isize, y + p * osize, NULL, geom, <floating>pad_floor)
            return
        for p in prange(planes, num_threads=nthreads, schedule='static'):
            _max_plane(x + p * isize, y + p * osize, NULL, geom, <floating>pad_floor)
        return
    for p in prange(planes, num_threads=nthreads, schedule='static'):
        xp = x + p * isize
        for o0 in range(o0n):
            a0 = max(o0 * s0 - p0, 0)
            b0 = min(o0 * s0 - p0 + k0n, i0n)
            for o1 in range(o1n):
                a1 = max(o1 * s1 - p1, 0)
                b1 = min(o1 * s1 - p1 + k1n, i1n)
                for o2 in range(o2n):
                    a2 = max(o2 * s2 - p2, 0)
                    b2 = min(o2 * s2 - p2 + k2n, i2n)
                    count = (b0 - a0) * (b1 - a1) * (b2 - a2)
                    total = 0
                    for i0 in range(a0, b0):
                        for i1 in range(a1, b1):
                            for i2 in range(a2, b2):
                                total = total + xp[(i0 * i1n + i1) * i2n + i2]
                    if mode == MODE_AVERAGE:
                        total = total / area
                    elif count > 0:
                        total = total / count
                    y[p * osize + (o0 * o1n + o1) * o2n + o2] = <floating>total


def maxpool_argmax(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
                   int32_t[:, :, :, ::1] idx, const Py_ssize_t[::1] geom, int nthreads,
                   double pad_floor=-1.0 / 0.0):
    """Max pooling that also writes, per output, the plane-local offset of the cell that
    won (the first maximum in column-major order; the first NaN when there is one).
    The caller guarantees that a plane has fewer than 2**31 cells."""
    cdef Py_ssize_t p, planes = x.shape[0]
    for p in prange(planes, nogil=True, num_threads=nthreads, schedule='static'):
        _max_plane(&x[p, 0, 0, 0], &y[p, 0, 0, 0], &idx[p, 0, 0, 0], &geom[0],
                   <floating>pad_floor)


def maxpool_backward(const floating[:, :, :, ::1] dy, const int32_t[:, :, :, ::1] idx,
                     floating[:, ::1] dx, int nthreads):
    """dx[p, :] = 0, then dx[p, idx[p, o]] += dy[p, o] for every output o of plane p."""
    cdef Py_ssize_t planes = dy.shape[0], n0 = dy.shape[1], n1 = dy.shape[2]
    cdef Py_ssize_t n2 = dy.shape[3], plane = dx.shape[1]
    cdef Py_ssize_t p, o0, o1, o2
    for p in prange(planes, nogil=True, num_threads=nthreads, schedule='static'):
        memset(&dx[p, 0], 0, plane * sizeof(floating))
        for o0 in range(n0):
            for o1 in range(n1):
                for o2 in range(n2):
                    dx[p, idx[p, o0, o1, o2]] += dy[p, o0, o1, o2]


def avgpool_backward(const floating[:, :, :, ::1] dy, floating[:, :, :, ::1] dx,
                     const Py_ssize_t[::1] geom, int mode, int nthreads):
    """Adjoint of average pooling: each output's gradient, divided by the pool area
    (MODE_AVERAGE) or by the number of real cells (MODE_AVERAGE_REAL), is added to every
    real cell of its window."""
    cdef Py_ssize_t i0n = geom[0], i1n = geom[1], i2n = geom[2]
    cdef Py_ssize_t o0n = geom[3], o1n = geom[4], o2n = geom[5]
    cdef Py_ssize_t k0n = geom[6], k1n = geom[7], k2n = geom[8]
    cdef Py_ssize_t s0 = geom[9], s1 = geom[10], s2 = geom[11]
    cdef Py_ssize_t p0 = geom[15], p1 = geom[16], p2 = geom[17]
    cdef Py_ssize_t planes = dx.shape[0], area = k0n * k1n * k2n
    cdef Py_ssize_t plane = i0n * i1n * i2n
    cdef Py_ssize_t p, o0, o1, o2, a0, a1, a2, b0, b1, b2, i0, i1, i2, count
    cdef floating g
    for p in prange(planes, nogil=True, num_threads=nthreads, schedule='static'):
        memset(&dx[p, 0, 0, 0], 0, plane * sizeof(floating))
        for o0 in range(o0n):
            a0 = max(o0 * s0 - p0, 0)
            b0 = min(o0 * s0 - p0 + k0n, i0n)
            for o1 in range(o1n):
                a1 = max(o1 * s1 - p1, 0)
                b1 = min(o1 * s1 - p1 + k1n, i1n)
                for o2 in range(o2n):
                    a2 = max(o2 * s2 - p2, 0)
                    b2 = min(o2 * s2 - p2 + k2n, i2n)
                    count = (b0 - a0) * (b1 - a1) * (b2 - a2)
                    if count == 0:
                        continue
                    if mode == MODE_AVERAGE:
                        g = dy[p, o0, o1, o2] / area
                    else:
                        g = dy[p, o0, o1, o2] / count
                    for i0 in range(a0, b0):
                        for i1 in range(a1, b1):
                            for i2 in range(a2, b2):
                                dx[p, i0, i1, i2] += g


# --------------------------------------------------------------------------- global average

DEF _PLANES = 64     # planes a job of mean_planes sums (pool_sum_planes: 16 at a time)


cdef inline void _sum_planes(const floating* x, floating* y, Py_ssize_t nplanes,
                             Py_ssize_t length, double div) noexcept nogil:
    if floating is float:
        pool_sum_planes_f(x, y, nplanes, length, div)
    else:
        pool_sum_planes_d(x, y, nplanes, length, div)


def mean_planes(const floating[:, ::1] x, floating[::1] y, double div, int nthreads):
    """Global average pooling of contiguous planes: ``y[p] = sum(x[p, :]) / div``, summed
    in double in memory order (as :func:`pool` does), parallel over groups of planes."""
    cdef Py_ssize_t planes = x.shape[0], length = x.shape[1]
    cdef Py_ssize_t g, groups = (planes + _PLANES - 1) // _PLANES
    if planes == 0:
        return
    if groups == 1 or nthreads == 1:
        with nogil:
            _sum_planes(&x[0, 0], &y[0], planes, length, div)
        return
    for g in prange(groups, nogil=True, num_threads=nthreads, schedule='static'):
        _sum_planes(&x[_PLANES * g, 0], &y[_PLANES * g], min(_PLANES, planes - _PLANES * g),
                    length, div)


DEF _COLS = 512

cdef inline void _sum_rows_block(const floating* x, floating* y, Py_ssize_t rows,
                                 Py_ssize_t stride, Py_ssize_t ncols,
                                 double div) noexcept nogil:
    """``y[j] = (sum over r of x[r*stride + j], in double, in order of r) / div`` for
    ``j < ncols <= _COLS`` (pool_sum_rows)."""
    cdef double acc[_COLS]
    if floating is float:
        pool_sum_rows_f(x, y, rows, stride, ncols, div, acc)
    else:
        pool_sum_rows_d(x, y, rows, stride, ncols, div, acc)


def mean_rows(const floating[:, ::1] x, floating[::1] y, double div, int nthreads):
    """Global average pooling over the outer dimension: ``y[j] = sum(x[:, j]) / div``,
    each column summed in double in row order (what :func:`pool` computes), parallel over
    blocks of columns.  A MATLAB ``C x B x T`` array is C-order ``T x (B*C)``: the mean
    over T is a sum of its contiguous ``B*C`` blocks."""
    cdef Py_ssize_t rows = x.shape[0], cols = x.shape[1]
    cdef Py_ssize_t b, blocks = (cols + _COLS - 1) // _COLS
    for b in prange(blocks, nogil=True, num_threads=nthreads, schedule='static'):
        _sum_rows_block(&x[0, 0] + b * _COLS, &y[b * _COLS], rows, cols,
                        min(<Py_ssize_t>_COLS, cols - b * _COLS), div)


# --------------------------------------------------------------------------- programs

from _program cimport program_step


cdef int _pool_step(const Py_ssize_t* a, char** s, int nthreads,
                    floating kind) noexcept nogil:
    # a compiled program's pooling (_conv.run_program): [x slot, y slot, planes, mode,
    # one thread, pad floor (the bits of a double), geometry (18)]
    cdef double floor
    memcpy(&floor, &a[5], sizeof(double))
    _pool(<const floating*>s[a[0]], <floating*>s[a[1]], a[2], a + 6, <int>a[3],
          1 if a[4] else nthreads, floor)
    return 0


cdef int _pool_step_f(const Py_ssize_t* a, char** s, int nthreads) noexcept nogil:
    return _pool_step(a, s, nthreads, <float>0)


cdef int _pool_step_d(const Py_ssize_t* a, char** s, int nthreads) noexcept nogil:
    return _pool_step(a, s, nthreads, <double>0)


def program_steps():
    """{step: (address for float32, address for float64)} of this module's program steps."""
    return {"pool": (<size_t><program_step>_pool_step_f, <size_t><program_step>_pool_step_d)}
