"""Elementwise activations (leaky/clipped ReLU, ELU, GELU, sigmoid, swish, softplus) and
their backward passes, one pass each over the raw memory of a dense array.

Memory contract: 1-D C-contiguous float32 or float64 buffers (the seam,
``mlayers._ops_act``, passes the memory of any dense layout, and the result has the same
layout).  Work is split into fixed chunks of ACT_CHUNK elements, so the result does not
depend on the thread count; each thread takes one contiguous run of chunks (static
schedule), so it streams through memory in order: on 2 threads leakyReLU on 6.4 M floats
took 0.73-0.77 ms this way against 0.92 with chunks handed out dynamically (PyTorch 0.80).
The loops are C (``_act_rows.h``); all validation happens in
the seam.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange

cdef extern from "_stream.h" nogil:
    void stream_fence()

cdef extern from "_act_rows.h" nogil:
    void act_forward_f32(int kind, const float *x, float *y, Py_ssize_t n, double p,
                         int stream)
    void act_forward_f64(int kind, const double *x, double *y, Py_ssize_t n, double p,
                         int stream)
    void act_backward_f32(int kind, const float *x, const float *y, const float *g,
                          float *d, Py_ssize_t n, double p, int stream)
    void act_backward_f64(int kind, const double *x, const double *y, const double *g,
                          double *d, Py_ssize_t n, double p, int stream)

DEF ACT_CHUNK = 16384


def forward(int kind, const floating[::1] x, floating[::1] y, double p, int nthreads,
            bint stream=False):
    """``y = f(x)`` for activation ``kind`` with parameter ``p`` (``stream``: non-temporal
    stores of y, ``_stream.h``).  y must not be x (the kernels take restrict pointers)."""
    cdef Py_ssize_t n = x.shape[0], k, lo, nk = (n + ACT_CHUNK - 1) // ACT_CHUNK
    with nogil, parallel(num_threads=nthreads):
        for k in prange(nk, schedule='static'):
            lo = k * ACT_CHUNK
            if floating is float:
                act_forward_f32(kind, &x[lo], &y[lo], min(ACT_CHUNK, n - lo), p, stream)
            else:
                act_forward_f64(kind, &x[lo], &y[lo], min(ACT_CHUNK, n - lo), p, stream)
        if stream:
            stream_fence()


def backward(int kind, const floating[::1] x, const floating[::1] y,
             const floating[::1] dy, floating[::1] dx, double p, int nthreads,
             bint stream=False):
    """``dx = dy .* f'(x)`` (sigmoid: from ``y``)."""
    cdef Py_ssize_t n = x.shape[0], k, lo, nk = (n + ACT_CHUNK - 1) // ACT_CHUNK
    with nogil, parallel(num_threads=nthreads):
        for k in prange(nk, schedule='static'):
            lo = k * ACT_CHUNK
            if floating is float:
                act_backward_f32(kind, &x[lo], &y[lo], &dy[lo], &dx[lo],
                                 min(ACT_CHUNK, n - lo), p, stream)
            else:
                act_backward_f64(kind, &x[lo], &y[lo], &dy[lo], &dx[lo],
                                 min(ACT_CHUNK, n - lo), p, stream)
        if stream:
            stream_fence()
