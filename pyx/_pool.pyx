"""Max and average pooling, per channel, over 1 to 3 spatial dimensions.

Memory contract (C-contiguous, float32 or float64): ``x[P, I0, I1, I2]`` and
``y[P, O0, O1, O2]`` where ``P`` counts every (observation, channel) plane; ``geom`` is
packed as in ``_conv`` (``[I.., O.., K.., S.., D.., P..]``; dilation is ignored).

Padding semantics (MATLAB's): padded cells never win a max; average pooling either counts
padded cells as zeros (divides by the pool area, MATLAB's default) or leaves them out
(divides by the number of real cells, PaddingValue 'mean').  A NaN in a window makes the
result NaN, as max/mean do on NaN.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport NAN, isnan

DEF MODE_MAX = 0
DEF MODE_AVERAGE = 1           # padded cells count as zeros
DEF MODE_AVERAGE_REAL = 2      # padded cells are left out

MAX, AVERAGE, AVERAGE_REAL = MODE_MAX, MODE_AVERAGE, MODE_AVERAGE_REAL


def pool(const floating[:, :, :, ::1] x, floating[:, :, :, ::1] y,
         const Py_ssize_t[::1] geom, int mode, int nthreads):
    cdef Py_ssize_t i0n = geom[0], i1n = geom[1], i2n = geom[2]
    cdef Py_ssize_t o0n = geom[3], o1n = geom[4], o2n = geom[5]
    cdef Py_ssize_t k0n = geom[6], k1n = geom[7], k2n = geom[8]
    cdef Py_ssize_t s0 = geom[9], s1 = geom[10], s2 = geom[11]
    cdef Py_ssize_t p0 = geom[15], p1 = geom[16], p2 = geom[17]
    cdef Py_ssize_t planes = x.shape[0], area = k0n * k1n * k2n
    cdef Py_ssize_t p, o0, o1, o2, a0, a1, a2, b0, b1, b2, i0, i1, i2, count
    cdef floating acc, v
    cdef bint nan
    for p in prange(planes, nogil=True, num_threads=nthreads, schedule='static'):
        for o0 in range(o0n):
            a0 = max(o0 * s0 - p0, 0)
            b0 = min(o0 * s0 - p0 + k0n, i0n)
            for o1 in range(o1n):
                a1 = max(o1 * s1 - p1, 0)
                b1 = min(o1 * s1 - p1 + k1n, i1n)
                for o2 in range(o2n):
                    a2 = max(o2 * s2 - p2, 0)
                    b2 = min(o2 * s2 - p2 + k2n, i2n)
                    nan = False
                    count = (b0 - a0) * (b1 - a1) * (b2 - a2)
                    if mode == MODE_MAX:
                        acc = -1.0 / 0.0
                        for i0 in range(a0, b0):
                            for i1 in range(a1, b1):
                                for i2 in range(a2, b2):
                                    v = x[p, i0, i1, i2]
                                    if v > acc:
                                        acc = v
                                    elif isnan(v):
                                        nan = True
                    else:
                        acc = 0
                        for i0 in range(a0, b0):
                            for i1 in range(a1, b1):
                                for i2 in range(a2, b2):
                                    acc = acc + x[p, i0, i1, i2]
                        if mode == MODE_AVERAGE:
                            acc = acc / area
                        elif count > 0:
                            acc = acc / count
                    y[p, o0, o1, o2] = NAN if nan else acc
