"""Batch normalization, softmax over channels and ReLU, in MATLAB's memory layout.

Memory contract (C-contiguous, float32 or float64): ``x[O, C, I]`` where ``C`` is the
channel dimension, ``I`` the product of the dimensions before it in MATLAB order (the S
dimensions) and ``O`` the product of those after it (B, T, U).  A Fortran-ordered MATLAB
``H x W x C x N`` array is exactly such a C-ordered ``N x C x (W*H)`` block, so the seam
(``mlayers._ops_norm``) passes it without a copy.

Determinism: every per-channel statistic is accumulated in double by one thread, in a fixed
order (o outer, i inner); work is split over channels (or over ``O`` for elementwise and
softmax passes, which have no reductions across ``O``), so results do not depend on the
thread count.  All validation happens in the seam before these functions run.
"""
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, sqrt
from libc.stdlib cimport malloc, free

from _openmp cimport omp_get_max_threads, omp_get_thread_num


def max_threads():
    return omp_get_max_threads()


def bn_train_forward(const floating[:, :, ::1] x, const double[::1] offset,
                     const double[::1] scale, double eps, floating[:, :, ::1] y,
                     double[::1] mean, double[::1] var, double[::1] invstd, int nthreads):
    """Batch statistics (biased variance, two passes in double) and the normalized output."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t c, o, i
    cdef double s, m, d, a, b, cnt = <double>(no * ni)
    for c in prange(nc, nogil=True, num_threads=nthreads, schedule='dynamic'):
        s = 0
        for o in range(no):
            for i in range(ni):
                s = s + x[o, c, i]
        m = s / cnt
        s = 0
        for o in range(no):
            for i in range(ni):
                d = x[o, c, i] - m
                s = s + d * d
        mean[c] = m
        var[c] = s / cnt
        invstd[c] = 1.0 / sqrt(s / cnt + eps)
        a = scale[c] * invstd[c]
        b = offset[c] - m * a
        for o in range(no):
            for i in range(ni):
                y[o, c, i] = <floating>(x[o, c, i] * a + b)


def bn_train_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,
                      const double[::1] mean, const double[::1] invstd,
                      const double[::1] scale, floating[:, :, ::1] dx,
                      double[::1] dscale, double[::1] doffset, int nthreads):
    """Gradients through the batch statistics:
    ``dx = scale*invstd*(dy - mean(dy) - xhat*mean(dy*xhat))``."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t c, o, i
    cdef double sg, sgx, m, r, k, g, a, b, cnt = <double>(no * ni)
    for c in prange(nc, nogil=True, num_threads=nthreads, schedule='dynamic'):
        m = mean[c]
        r = invstd[c]
        sg = 0
        sgx = 0
        for o in range(no):
            for i in range(ni):
                g = dy[o, c, i]
                sg = sg + g
                sgx = sgx + g * (x[o, c, i] - m)
        doffset[c] = sg
        dscale[c] = sgx * r
        # dx = k*dy + a*x + b with k = scale*r, a = -k*r*r*sgx/cnt, b = -k*sg/cnt - a*m
        k = scale[c] * r
        a = -k * r * r * sgx / cnt
        b = -k * sg / cnt - a * m
        for o in range(no):
            for i in range(ni):
                dx[o, c, i] = <floating>(k * dy[o, c, i] + a * x[o, c, i] + b)


def channel_affine(const floating[:, :, ::1] x, const double[::1] a, const double[::1] b,
                   floating[:, :, ::1] y, int nthreads):
    """``y = a[c]*x + b[c]`` (batchnorm's inference form), parallel over O x C blocks."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t j, o, c, i
    cdef floating ac, bc
    for j in prange(no * nc, nogil=True, num_threads=nthreads, schedule='static'):
        o = j // nc
        c = j % nc
        ac = <floating>a[c]
        bc = <floating>b[c]
        for i in range(ni):
            y[o, c, i] = x[o, c, i] * ac + bc


def softmax_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int nthreads):
    """Softmax over C for every (o, i): ``exp(x - max) / sum``, the sum in double."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t o, c, i, t
    cdef double *scratch = <double *> malloc(sizeof(double) * 2 * ni * max(nthreads, 1))
    cdef double *mx
    cdef double *sm
    cdef double e
    if scratch == NULL:
        raise MemoryError()
    try:
        for o in prange(no, nogil=True, num_threads=nthreads, schedule='static'):
            t = omp_get_thread_num()
            mx = scratch + 2 * ni * t
            sm = mx + ni
            for i in range(ni):
                mx[i] = x[o, 0, i]
                sm[i] = 0
            for c in range(1, nc):
                for i in range(ni):
                    if x[o, c, i] > mx[i] or x[o, c, i] != x[o, c, i]:
                        mx[i] = x[o, c, i]
            for c in range(nc):
                for i in range(ni):
                    e = exp(x[o, c, i] - mx[i])
                    y[o, c, i] = <floating>e
                    sm[i] = sm[i] + e
            for i in range(ni):
                sm[i] = 1.0 / sm[i]
            for c in range(nc):
                for i in range(ni):
                    y[o, c, i] = <floating>(y[o, c, i] * sm[i])
    finally:
        free(scratch)


def softmax_backward(const floating[:, :, ::1] y, const floating[:, :, ::1] dy,
                     floating[:, :, ::1] dx, int nthreads):
    """``dx = y .* (dy - sum(dy .* y, C))``, the sum in double."""
    cdef Py_ssize_t no = y.shape[0], nc = y.shape[1], ni = y.shape[2]
    cdef Py_ssize_t o, c, i, t
    cdef double *scratch = <double *> malloc(sizeof(double) * ni * max(nthreads, 1))
    cdef double *sm
    if scratch == NULL:
        raise MemoryError()
    try:
        for o in prange(no, nogil=True, num_threads=nthreads, schedule='static'):
            t = omp_get_thread_num()
            sm = scratch + ni * t
            for i in range(ni):
                sm[i] = 0
            for c in range(nc):
                for i in range(ni):
                    sm[i] = sm[i] + <double>dy[o, c, i] * y[o, c, i]
            for c in range(nc):
                for i in range(ni):
                    dx[o, c, i] = <floating>(y[o, c, i] * (dy[o, c, i] - sm[i]))
    finally:
        free(scratch)


def relu_forward(const floating[::1] x, floating[::1] y, int nthreads):
    """``y = max(x, 0)`` with NaN kept."""
    cdef Py_ssize_t n = x.shape[0], j
    cdef floating v
    for j in prange(n, nogil=True, num_threads=nthreads, schedule='static'):
        v = x[j]
        y[j] = 0 if v <= 0 else v       # NaN fails v <= 0 and is kept


def relu_backward(const floating[::1] x, const floating[::1] dy, floating[::1] dx,
                  int nthreads):
    """``dx = dy`` where ``x > 0``, else 0."""
    cdef Py_ssize_t n = x.shape[0], j
    for j in prange(n, nogil=True, num_threads=nthreads, schedule='static'):
        dx[j] = dy[j] if x[j] > 0 else 0
