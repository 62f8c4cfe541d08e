"""Batch normalization, softmax over channels and ReLU, in MATLAB's memory layout.

Memory contract (C-contiguous, float32 or float64): ``x[O, C, I]`` where ``C`` is the
channel dimension, ``I`` the product of the dimensions before it in MATLAB order (the S
dimensions) and ``O`` the product of those after it (B, T, U).  A Fortran-ordered MATLAB
``H x W x C x N`` array is exactly such a C-ordered ``N x C x (W*H)`` block, so the seam
(``mlayers._ops_norm``) passes it without a copy.

Determinism: every per-channel statistic is accumulated in double by one thread, in a fixed
order (o outer, i inner, interleaved partial sums combined in a fixed tree); work is
split over channels (or over ``O`` for elementwise and softmax passes, which have no
reductions across ``O``), so results do not depend on the thread count.  All validation
happens in the seam before these functions run.

Speed: the row loops are C (``_norm_rows.h``), built for AVX-512, AVX2 and baseline x86-64
and picked at load time; they vectorize without -ffast-math (explicit partial sums fix
the reduction order).  Softmax uses a branch-free exponential that vectorizes where
libm's ``exp`` does not.
"""
from cython cimport floating
from cython.parallel cimport parallel, prange
from libc.math cimport sqrt
from libc.stdlib cimport malloc, free

from _openmp cimport omp_get_max_threads, omp_get_thread_num

cdef extern from "_stream.h" nogil:
    void stream_fence()

cdef extern from "_norm_rows.h" nogil:
    double nrm_sum_f32(const float *x, Py_ssize_t no, Py_ssize_t stride, Py_ssize_t ni)
    void nrm_sum2_f32(const float *x, Py_ssize_t n, double s, double *sd, double *sdd)
    void nrm_affine_sum2_f32(const float *x, float *y, Py_ssize_t ni, double m, float a,
                             float b, const float *nx, Py_ssize_t p, Py_ssize_t n, double s,
                             double *sa, double *sb)
    double nrm_tree(double *a)
    enum: NRM_W
    double nrm_sum_f64(const double *x, Py_ssize_t no, Py_ssize_t stride, Py_ssize_t ni)
    double nrm_sumsq_f32(const float *x, Py_ssize_t no, Py_ssize_t stride, Py_ssize_t ni,
                         double m)
    double nrm_sumsq_f64(const double *x, Py_ssize_t no, Py_ssize_t stride, Py_ssize_t ni,
                         double m)
    void nrm_dotdev_f32(const float *g, const float *x, Py_ssize_t no, Py_ssize_t stride,
                        Py_ssize_t ni, double m, double *sg, double *sgx)
    void nrm_dotdev_f64(const double *g, const double *x, Py_ssize_t no, Py_ssize_t stride,
                        Py_ssize_t ni, double m, double *sg, double *sgx)
    void nrm_affine_f32(const float *x, float *y, Py_ssize_t no, Py_ssize_t stride,
                        Py_ssize_t ni, double m, float a, float b, int stream)
    void nrm_affine_f64(const double *x, double *y, Py_ssize_t no, Py_ssize_t stride,
                        Py_ssize_t ni, double m, double a, double b, int stream)
    void nrm_affine2_f32(const float *g, const float *x, float *y, Py_ssize_t no,
                         Py_ssize_t stride, Py_ssize_t ni, float k, double m, float a,
                         float b, int stream)
    void nrm_affine2_f64(const double *g, const double *x, double *y, Py_ssize_t no,
                         Py_ssize_t stride, Py_ssize_t ni, double k, double m, double a,
                         double b, int stream)
    void nrm_blk_mean_f32(const float *x, Py_ssize_t no, Py_ssize_t nc, Py_ssize_t ni,
                          Py_ssize_t c0, Py_ssize_t c1, double *mean)
    void nrm_blk_mean_f64(const double *x, Py_ssize_t no, Py_ssize_t nc, Py_ssize_t ni,
                          Py_ssize_t c0, Py_ssize_t c1, double *mean)
    void nrm_blk_var_f32(const float *x, Py_ssize_t no, Py_ssize_t nc, Py_ssize_t ni,
                         Py_ssize_t c0, Py_ssize_t c1, const double *mean, double *var)
    void nrm_blk_var_f64(const double *x, Py_ssize_t no, Py_ssize_t nc, Py_ssize_t ni,
                         Py_ssize_t c0, Py_ssize_t c1, const double *mean, double *var)
    void nrm_blk_dot_f32(const float *g, const float *x, Py_ssize_t no, Py_ssize_t nc,
                         Py_ssize_t ni, Py_ssize_t c0, Py_ssize_t c1, const double *mean,
                         double *sg, double *sgx, const float *msk, float *dx,
                         const double *a, int stream)
    void nrm_blk_dot_f64(const double *g, const double *x, Py_ssize_t no, Py_ssize_t nc,
                         Py_ssize_t ni, Py_ssize_t c0, Py_ssize_t c1, const double *mean,
                         double *sg, double *sgx, const double *msk, double *dx,
                         const double *a, int stream)
    void nrm_blk_affine_f32(const float *x, float *y, Py_ssize_t no, Py_ssize_t nc,
                            Py_ssize_t ni, Py_ssize_t c0, Py_ssize_t c1, const double *m,
                            const double *a, const double *b, int stream, int rect)
    void nrm_blk_affine_f64(const double *x, double *y, Py_ssize_t no, Py_ssize_t nc,
                            Py_ssize_t ni, Py_ssize_t c0, Py_ssize_t c1, const double *m,
                            const double *a, const double *b, int stream, int rect)
    void nrm_blk_affine2_f32(const float *g, const float *x, float *y, Py_ssize_t no,
                             Py_ssize_t nc, Py_ssize_t ni, Py_ssize_t c0, Py_ssize_t c1,
                             const double *k, const double *m, const double *a,
                             const double *b, int stream, const float *msk)
    void nrm_blk_affine2_f64(const double *g, const double *x, double *y, Py_ssize_t no,
                             Py_ssize_t nc, Py_ssize_t ni, Py_ssize_t c0, Py_ssize_t c1,
                             const double *k, const double *m, const double *a,
                             const double *b, int stream, const double *msk)
    void nrm_softmax_f32(const float *x, float *y, double *sm, float *mx, Py_ssize_t nc,
                         Py_ssize_t ni)
    void nrm_softmax_f64(const double *x, double *y, double *sm, double *mx, Py_ssize_t nc,
                         Py_ssize_t ni)
    void nrm_softmax_back_f32(const float *y, const float *g, float *dx, double *sm,
                              Py_ssize_t nc, Py_ssize_t ni)
    void nrm_softmax_back_f64(const double *y, const double *g, double *dx, double *sm,
                              Py_ssize_t nc, Py_ssize_t ni)
    void nrm_cnorm_rows_f32(const float *x, float *y, Py_ssize_t no, Py_ssize_t nc,
                            const double *off, const double *scale, double eps,
                            double *mean, double *invstd)
    void nrm_cnorm_rows_f64(const double *x, double *y, Py_ssize_t no, Py_ssize_t nc,
                            const double *off, const double *scale, double eps,
                            double *mean, double *invstd)
    void nrm_cnorm_cols_f32(const float *x, float *y, Py_ssize_t nc, Py_ssize_t ni,
                            const double *off, const double *scale, double eps,
                            double *mean, double *invstd, float *mh, float *ml)
    void nrm_cnorm_cols_f64(const double *x, double *y, Py_ssize_t nc, Py_ssize_t ni,
                            const double *off, const double *scale, double eps,
                            double *mean, double *invstd, double *mh, double *ml)
    void nrm_cnorm_rows_back_f32(const float *x, const float *g, float *dx, Py_ssize_t o0,
                                 Py_ssize_t o1, Py_ssize_t nc, const double *mean,
                                 const double *invstd, const double *scale, double *sg,
                                 double *sgx)
    void nrm_cnorm_rows_back_f64(const double *x, const double *g, double *dx,
                                 Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t nc,
                                 const double *mean, const double *invstd,
                                 const double *scale, double *sg, double *sgx)
    void nrm_cnorm_cols_back_f32(const float *x, const float *g, float *dx, Py_ssize_t nc,
                                 Py_ssize_t ni, const double *mean, const double *invstd,
                                 const double *scale, double *sg, double *sgx, double *sa,
                                 double *sb, float *mh, float *ml)
    void nrm_cnorm_cols_back_f64(const double *x, const double *g, double *dx,
                                 Py_ssize_t nc, Py_ssize_t ni, const double *mean,
                                 const double *invstd, const double *scale, double *sg,
                                 double *sgx, double *sa, double *sb, double *mh,
                                 double *ml)
    void nrm_relu_f32(const float *x, float *y, Py_ssize_t n, int stream)
    void nrm_relu_f64(const double *x, double *y, Py_ssize_t n, int stream)
    void nrm_relu_back_f32(const float *x, const float *g, float *dx, Py_ssize_t n,
                           int stream)
    void nrm_relu_back_f64(const double *x, const double *g, double *dx, Py_ssize_t n,
                           int stream)
    void nrm_add_f32(const float *a, const float *b, float *y, Py_ssize_t n, int rect,
                     int stream)
    void nrm_add_f64(const double *a, const double *b, double *y, Py_ssize_t n, int rect,
                     int stream)


def max_threads():
    return omp_get_max_threads()


# --------------------------------------------------------------------------- dispatch

cdef inline double _sum(const floating *x, Py_ssize_t no, Py_ssize_t st,
                        Py_ssize_t ni) noexcept nogil:
    if floating is float:
        return nrm_sum_f32(x, no, st, ni)
    else:
        return nrm_sum_f64(x, no, st, ni)


cdef inline double _sumsq(const floating *x, Py_ssize_t no, Py_ssize_t st, Py_ssize_t ni,
                          double m) noexcept nogil:
    if floating is float:
        return nrm_sumsq_f32(x, no, st, ni, m)
    else:
        return nrm_sumsq_f64(x, no, st, ni, m)


cdef inline double _stats(const floating *x, Py_ssize_t n, double *var) noexcept nogil:
    # Mean (returned) and biased variance of n contiguous values, as the two passes in
    # double give them.  float32: one pass of the sums of x - x[0] and its square (terms
    # rounded at most once in double), kept when the mean lies within 32 spreads of x[0], where the
    # variance's cancellation costs under 10 bits of double's 53; otherwise two passes.
    cdef double sd, sdd, m
    if floating is float:
        nrm_sum2_f32(x, n, x[0], &sd, &sdd)
        return _moments(x, n, sd, sdd, var)
    else:
        m = _sum(x, 1, n, n) / n
        var[0] = _sumsq(x, 1, n, n, m) / n
        return m


cdef inline double _moments(const float *x, Py_ssize_t n, double sd, double sdd,
                            double *var) noexcept nogil:
    # _stats from the one-pass sums sd, sdd of x - x[0]
    cdef double md = sd / n, m
    if md * md <= 1024.0 * (sdd / n - md * md):
        var[0] = sdd / n - md * md
        return x[0] + md
    m = nrm_sum_f32(x, 1, n, n) / n
    var[0] = nrm_sumsq_f32(x, 1, n, n, m) / n
    return m


cdef inline void _dotdev(const floating *g, const floating *x, Py_ssize_t no, Py_ssize_t st,
                         Py_ssize_t ni, double m, double *sg, double *sgx) noexcept nogil:
    if floating is float:
        nrm_dotdev_f32(g, x, no, st, ni, m, sg, sgx)
    else:
        nrm_dotdev_f64(g, x, no, st, ni, m, sg, sgx)


cdef inline void _affine(const floating *x, floating *y, Py_ssize_t no, Py_ssize_t st,
                         Py_ssize_t ni, double m, floating a, floating b,
                         bint stream=False) noexcept nogil:
    if floating is float:
        nrm_affine_f32(x, y, no, st, ni, m, a, b, stream)
    else:
        nrm_affine_f64(x, y, no, st, ni, m, a, b, stream)


cdef inline void _affine2(const floating *g, const floating *x, floating *y, Py_ssize_t no,
                          Py_ssize_t st, Py_ssize_t ni, floating k, double m, floating a,
                          floating b, bint stream=False) noexcept nogil:
    if floating is float:
        nrm_affine2_f32(g, x, y, no, st, ni, k, m, a, b, stream)
    else:
        nrm_affine2_f64(g, x, y, no, st, ni, k, m, a, b, stream)


# --------------------------------------------------------------------------- batch norm

cdef inline Py_ssize_t _block_size(Py_ssize_t nc, int nthreads) noexcept nogil:
    """Channels per parallel job: about four jobs per thread (the results do not depend
    on it: every channel sums its rows in the same order whatever the blocks).  The jobs
    are scheduled statically, each thread a run of neighbouring blocks: the blocks of one
    observation are neighbours in memory, and two threads writing neighbouring blocks at
    the same time shared the cache line between them, observation after observation (the
    normalized output of 7 x 7 x 32 x 128 took 2 threads longer than one)."""
    cdef Py_ssize_t jobs = 4 * max(nthreads, 1)
    return max((nc + jobs - 1) // jobs, 1)


def bn_train_forward(const floating[:, :, ::1] x, const double[::1] offset,
                     const double[::1] scale, double eps, floating[:, :, ::1] y,
                     double[::1] mean, double[::1] var, double[::1] invstd,
                     double[::1] a, int nthreads, bint stream=False, bint rect=False):
    """Batch statistics (biased variance, two passes in double) and the normalized output
    ``y = a[c]*(x - mean[c]) + offset[c]`` (``rect``: relu's values of it); ``a`` is
    scratch (returned filled: scale*invstd)."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t bs = _block_size(nc, nthreads), nb = (nc + bs - 1) // bs
    cdef Py_ssize_t blk, c0, c1, c
    if no == 0 or ni == 0 or nc == 0:
        return
    with nogil, parallel(num_threads=nthreads):
        for blk in prange(nb, schedule='static'):
            c0 = blk * bs
            c1 = min(c0 + bs, nc)
            if floating is float:
                nrm_blk_mean_f32(&x[0, 0, 0], no, nc, ni, c0, c1, &mean[0])
                nrm_blk_var_f32(&x[0, 0, 0], no, nc, ni, c0, c1, &mean[0], &var[0])
            else:
                nrm_blk_mean_f64(&x[0, 0, 0], no, nc, ni, c0, c1, &mean[0])
                nrm_blk_var_f64(&x[0, 0, 0], no, nc, ni, c0, c1, &mean[0], &var[0])
            for c in range(c0, c1):
                invstd[c] = 1.0 / sqrt(var[c] + eps)
                a[c] = scale[c] * invstd[c]
            if floating is float:
                nrm_blk_affine_f32(&x[0, 0, 0], &y[0, 0, 0], no, nc, ni, c0, c1, &mean[0], &a[0],
                                   &offset[0], stream, rect)
            else:
                nrm_blk_affine_f64(&x[0, 0, 0], &y[0, 0, 0], no, nc, ni, c0, c1, &mean[0], &a[0],
                                   &offset[0], stream, rect)
        if stream:
            stream_fence()


def bn_train_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,
                      const double[::1] mean, const double[::1] invstd,
                      const double[::1] scale, floating[:, :, ::1] dx,
                      double[::1] dscale, double[::1] doffset, double[::1] k,
                      double[::1] a, double[::1] b, int nthreads, bint stream=False,
                      const floating[:, :, ::1] mask=None):
    """Gradients through the batch statistics:
    ``dx = scale*invstd*(dy - mean(dy) - xhat*mean(dy*xhat))`` = ``k*dy + a*(x - mean) + b``;
    ``k``, ``a``, ``b`` are scratch.  ``mask`` (x's shape): the output of a ReLU after the
    normalization, whose backward is applied to dy first (dy where mask > 0, else 0)."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t bs = _block_size(nc, nthreads), nb = (nc + bs - 1) // bs
    cdef Py_ssize_t blk, c0, c1, c
    cdef double r, cnt = <double>(no * ni)
    cdef const floating* mp = NULL
    if mask is not None:
        if mask.shape[0] != no or mask.shape[1] != nc or mask.shape[2] != ni:
            raise ValueError("bn_train_backward: the mask must have x's shape")
        mp = &mask[0, 0, 0]
    if no == 0 or ni == 0 or nc == 0:
        return
    with nogil, parallel(num_threads=nthreads):
        for blk in prange(nb, schedule='static'):
            c0 = blk * bs
            c1 = min(c0 + bs, nc)
            if floating is float:
                nrm_blk_dot_f32(&dy[0, 0, 0], &x[0, 0, 0], no, nc, ni, c0, c1, &mean[0],
                                &doffset[0], &dscale[0], mp, NULL, NULL, 0)
            else:
                nrm_blk_dot_f64(&dy[0, 0, 0], &x[0, 0, 0], no, nc, ni, c0, c1, &mean[0],
                                &doffset[0], &dscale[0], mp, NULL, NULL, 0)
            for c in range(c0, c1):
                r = invstd[c]
                # doffset = sum(dy); dscale holds sum(dy .* (x - mean)) until scaled by r
                k[c] = scale[c] * r
                a[c] = -k[c] * r * r * dscale[c] / cnt
                b[c] = -k[c] * doffset[c] / cnt
                dscale[c] = dscale[c] * r
            if floating is float:
                nrm_blk_affine2_f32(&dy[0, 0, 0], &x[0, 0, 0], &dx[0, 0, 0], no, nc, ni, c0, c1,
                                    &k[0], &mean[0], &a[0], &b[0], stream, mp)
            else:
                nrm_blk_affine2_f64(&dy[0, 0, 0], &x[0, 0, 0], &dx[0, 0, 0], no, nc, ni, c0, c1,
                                    &k[0], &mean[0], &a[0], &b[0], stream, mp)
        if stream:
            stream_fence()


def bn_infer_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,
                      const double[::1] mean, const double[::1] a, floating[:, :, ::1] dx,
                      double[::1] sg, double[::1] sgx, int nthreads, bint stream=False):
    """Inference-form batchnorm backward in one sweep: ``dx = a[c]*dy`` and per channel
    ``sum(dy)``, ``sum(dy .* (x - mean[c]))`` in double."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t bs = _block_size(nc, nthreads), nb = (nc + bs - 1) // bs
    cdef Py_ssize_t blk, c0, c1
    if no == 0 or ni == 0 or nc == 0:
        sg[:] = 0
        sgx[:] = 0
        return
    with nogil, parallel(num_threads=nthreads):
        for blk in prange(nb, schedule='static'):
            c0 = blk * bs
            c1 = min(c0 + bs, nc)
            if floating is float:
                nrm_blk_dot_f32(&dy[0, 0, 0], &x[0, 0, 0], no, nc, ni, c0, c1, &mean[0],
                                &sg[0], &sgx[0], NULL, &dx[0, 0, 0], &a[0], stream)
            else:
                nrm_blk_dot_f64(&dy[0, 0, 0], &x[0, 0, 0], no, nc, ni, c0, c1, &mean[0],
                                &sg[0], &sgx[0], NULL, &dx[0, 0, 0], &a[0], stream)
        if stream:
            stream_fence()


def channel_affine(const floating[:, :, ::1] x, const double[::1] m, const double[::1] a,
                   const double[::1] b, floating[:, :, ::1] y, int nthreads,
                   bint stream=False):
    """``y = a[c]*(x - m[c]) + b[c]`` (batchnorm's inference form), parallel over O x C
    rows."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t j, o, c
    if ni == 0:
        return
    if ni == 1:                     # CB data: one row per observation, C elements long
        for o in prange(no, nogil=True, num_threads=nthreads, schedule='static'):
            for c in range(nc):
                y[o, c, 0] = <floating>((x[o, c, 0] - m[c]) * a[c] + b[c])
        return
    with nogil, parallel(num_threads=nthreads):
        for j in prange(no * nc, schedule='static'):
            o = j // nc
            c = j % nc
            _affine(&x[o, c, 0], &y[o, c, 0], 1, ni, ni, m[c], <floating>a[c],
                    <floating>b[c], stream)
        if stream:
            stream_fence()


# --------------------------------------------------------------------------- group norm
# Statistics per (o, group of cg consecutive channels) over cg*I contiguous elements:
# layer normalization over S and C (G = 1), group and instance normalization (G = C).

# rows (elements per channel and observation) from which gn_forward takes the next
# group's statistics while it writes a group's result (_gn_run_f32): with shorter rows the
# parts of lane blocks at their ends cost more than the overlap gains (1 / 2 threads, 32
# observations of 64 channels, 1-64 groups: rows of 3136 1.1-1.6x / 1.1-1.4x; 8 groups:
# rows of 784 0.95-1.08x, of 196 0.6-0.8x)
DEF GN_PIPELINE_ROW = 1024


def gn_forward(const floating[:, :, ::1] x, Py_ssize_t ng, const double[::1] offset,
               const double[::1] scale, double eps, floating[:, :, ::1] y,
               double[::1] mean, double[::1] invstd, int nthreads, bint stream=False):
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t cg = nc // ng, n = cg * ni, nj = no * ng
    cdef Py_ssize_t j, o, g, c, t, nt = max(nthreads, 1)
    cdef double m, r, a, v
    if n == 0:
        return
    if floating is float:
        if not stream and ni >= GN_PIPELINE_ROW:
            # each thread a run of groups, the next one's statistics taken as this one's
            # result is written (_gn_run_f32); its bits do not depend on the runs
            for t in prange(nt, nogil=True, num_threads=nthreads, schedule='static'):
                _gn_run_f32(&x[0, 0, 0], &y[0, 0, 0], nj * t // nt, nj * (t + 1) // nt, ng,
                            cg, ni, &offset[0], &scale[0], eps, &mean[0], &invstd[0])
            return
    with nogil, parallel(num_threads=nthreads):
        for j in prange(nj, schedule='static'):
            o = j // ng
            g = j % ng
            m = _stats(&x[o, g * cg, 0], n, &v)
            r = 1.0 / sqrt(v + eps)
            mean[j] = m
            invstd[j] = r
            for c in range(g * cg, (g + 1) * cg):
                a = scale[c] * r
                _affine(&x[o, c, 0], &y[o, c, 0], 1, ni, ni, m, <floating>a, <floating>offset[c],
                        stream)
        if stream:
            stream_fence()


cdef void _gn_run_f32(const float *x, float *y, Py_ssize_t j0, Py_ssize_t j1, Py_ssize_t ng,
                      Py_ssize_t cg, Py_ssize_t ni, const double *offset, const double *scale,
                      double eps, double *mean, double *invstd) noexcept nogil:
    # gn_forward's groups j0 ... j1 - 1 (group j: n contiguous elements from x + j n): each
    # group's rows written while the next group's one-pass sums are taken
    # (nrm_affine_sum2_f32), the first group's sums alone (nrm_sum2_f32, the same bits)
    cdef Py_ssize_t n = cg * ni, j, k, c
    cdef double sd, sdd, m, r, v
    cdef double sa[NRM_W]
    cdef double sb[NRM_W]
    cdef const float *nx
    if j0 >= j1:
        return
    nrm_sum2_f32(x + j0 * n, n, x[j0 * n], &sd, &sdd)
    for j in range(j0, j1):
        m = _moments(x + j * n, n, sd, sdd, &v)
        r = 1.0 / sqrt(v + eps)
        mean[j] = m
        invstd[j] = r
        nx = x + (j + 1) * n if j + 1 < j1 else NULL
        for k in range(NRM_W):
            sa[k] = 0
            sb[k] = 0
        for k in range(cg):
            c = j % ng * cg + k
            nrm_affine_sum2_f32(x + j * n + k * ni, y + j * n + k * ni, ni, m,
                                <float>(scale[c] * r), <float>offset[c], nx, k * ni, n,
                                nx[0] if nx != NULL else 0, sa, sb)
        sd = nrm_tree(sa)
        sdd = nrm_tree(sb)


def gn_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] dy, Py_ssize_t ng,
                const double[::1] mean, const double[::1] invstd, const double[::1] scale,
                floating[:, :, ::1] dx, double[:, ::1] sg, double[:, ::1] sgx,
                int nthreads, bint stream=False):
    """dx through the statistics; sg[o, c] = sum(dy), sgx[o, c] = sum(dy .* (x - mean))
    per row, for the caller to reduce over o (fixed order) into doffset and dscale."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t cg = nc // ng, n = cg * ni
    cdef Py_ssize_t j, o, g, c
    cdef double m, r, A, B
    if n == 0:
        return
    with nogil, parallel(num_threads=nthreads):
        for j in prange(no * ng, schedule='static'):
            o = j // ng
            g = j % ng
            m = mean[j]
            r = invstd[j]
            A = 0
            B = 0
            for c in range(g * cg, (g + 1) * cg):
                _dotdev(&dy[o, c, 0], &x[o, c, 0], 1, ni, ni, m, &sg[o, c], &sgx[o, c])
                A = A + scale[c] * sg[o, c]
                B = B + scale[c] * sgx[o, c]
            A = A / n                   # mean(scale .* dy)
            B = B * r / n               # mean(scale .* dy .* xhat)
            for c in range(g * cg, (g + 1) * cg):
                _affine2(&dy[o, c, 0], &x[o, c, 0], &dx[o, c, 0], 1, ni, ni,
                         <floating>(r * scale[c]), m, <floating>(-r * r * B),
                         <floating>(-r * A), stream)
        if stream:
            stream_fence()


# --------------------------------------------------------------------------- channel norm
# Layer normalization over C alone: statistics per (o, i) over x[o, :, i].  Rows (I = 1,
# each position's C values contiguous) run in chunks of CN_CHUNK positions; the per-channel
# gradient sums are accumulated per chunk (rows) or per o (columns) into psg/psgx, which
# the seam adds in a fixed order: no result depends on the thread count.

DEF CN_CHUNK = 64


def cnorm_chunks(Py_ssize_t no, Py_ssize_t ni):
    """Number of partial-sum rows cnorm_backward fills."""
    return (no + CN_CHUNK - 1) // CN_CHUNK if ni == 1 else no


def cnorm_forward(const floating[:, :, ::1] x, const double[::1] offset,
                  const double[::1] scale, double eps, floating[:, :, ::1] y,
                  double[:, ::1] mean, double[:, ::1] invstd, int nthreads):
    """``mean[o, i]``, ``invstd[o, i]`` over C and ``y = scale[c]*invstd*(x - mean) +
    offset[c]``."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t k, o0, o1, o, t, nt = max(nthreads, 1)
    cdef Py_ssize_t nk = (no + CN_CHUNK - 1) // CN_CHUNK
    cdef floating *scr
    if no == 0 or nc == 0 or ni == 0:
        return
    if ni == 1:
        for k in prange(nk, nogil=True, num_threads=nthreads, schedule='static'):
            o0 = k * CN_CHUNK
            o1 = min(o0 + CN_CHUNK, no)
            if floating is float:
                nrm_cnorm_rows_f32(&x[o0, 0, 0], &y[o0, 0, 0], o1 - o0, nc, &offset[0],
                                   &scale[0], eps, &mean[o0, 0], &invstd[o0, 0])
            else:
                nrm_cnorm_rows_f64(&x[o0, 0, 0], &y[o0, 0, 0], o1 - o0, nc, &offset[0],
                                   &scale[0], eps, &mean[o0, 0], &invstd[o0, 0])
        return
    scr = <floating *> malloc(sizeof(floating) * 2 * ni * nt)
    if scr == NULL:
        raise MemoryError()
    try:
        for o in prange(no, nogil=True, num_threads=nthreads, schedule='static'):
            t = omp_get_thread_num()
            if floating is float:
                nrm_cnorm_cols_f32(&x[o, 0, 0], &y[o, 0, 0], nc, ni, &offset[0], &scale[0],
                                   eps, &mean[o, 0], &invstd[o, 0], scr + 2 * ni * t,
                                   scr + 2 * ni * t + ni)
            else:
                nrm_cnorm_cols_f64(&x[o, 0, 0], &y[o, 0, 0], nc, ni, &offset[0], &scale[0],
                                   eps, &mean[o, 0], &invstd[o, 0], scr + 2 * ni * t,
                                   scr + 2 * ni * t + ni)
    finally:
        free(scr)


def cnorm_backward(const floating[:, :, ::1] x, const floating[:, :, ::1] dy,
                   const double[:, ::1] mean, const double[:, ::1] invstd,
                   const double[::1] scale, floating[:, :, ::1] dx, double[:, ::1] psg,
                   double[:, ::1] psgx, int nthreads):
    """dx through the statistics; ``psg[k, c]``, ``psgx[k, c]``: partial sums of ``dy``
    and ``dy .* xhat`` per chunk k (``cnorm_chunks`` rows, zeroed by the caller)."""
    cdef Py_ssize_t no = x.shape[0], nc = x.shape[1], ni = x.shape[2]
    cdef Py_ssize_t k, o0, o1, o, t, nt = max(nthreads, 1)
    cdef Py_ssize_t nk = (no + CN_CHUNK - 1) // CN_CHUNK
    cdef double *dscr
    cdef floating *scr
    if no == 0 or nc == 0 or ni == 0:
        return
    if ni == 1:
        for k in prange(nk, nogil=True, num_threads=nthreads, schedule='static'):
            o0 = k * CN_CHUNK
            o1 = min(o0 + CN_CHUNK, no)
            if floating is float:
                nrm_cnorm_rows_back_f32(&x[0, 0, 0], &dy[0, 0, 0], &dx[0, 0, 0], o0, o1, nc,
                                        &mean[0, 0], &invstd[0, 0], &scale[0], &psg[k, 0],
                                        &psgx[k, 0])
            else:
                nrm_cnorm_rows_back_f64(&x[0, 0, 0], &dy[0, 0, 0], &dx[0, 0, 0], o0, o1, nc,
                                        &mean[0, 0], &invstd[0, 0], &scale[0], &psg[k, 0],
                                        &psgx[k, 0])
        return
    dscr = <double *> malloc(sizeof(double) * 2 * ni * nt)
    scr = <floating *> malloc(sizeof(floating) * 2 * ni * nt)
    if dscr == NULL or scr == NULL:
        free(dscr)
        free(scr)
        raise MemoryError()
    try:
        for o in prange(no, nogil=True, num_threads=nthreads, schedule='static'):
            t = omp_get_thread_num()
            if floating is float:
                nrm_cnorm_cols_back_f32(&x[o, 0, 0], &dy[o, 0, 0], &dx[o, 0, 0], nc, ni,
                                        &mean[o, 0], &invstd[o, 0], &scale[0], &psg[o, 0],
                                        &psgx[o, 0], dscr + 2 * ni * t,
                                        dscr + 2 * ni * t + ni, scr + 2 * ni * t,
                                        scr + 2 * ni * t + ni)
            else:
                nrm_cnorm_cols_back_f64(&x[o, 0, 0], &dy[o, 0, 0], &dx[o, 0, 0], nc, ni,
                                        &mean[o, 0], &invstd[o, 0], &scale[0], &psg[o, 0],
                                        &psgx[o, 0], dscr + 2 * ni * t,
                                        dscr + 2 * ni * t + ni, scr + 2 * ni * t,
                                        scr + 2 * ni * t + ni)
    finally:
        free(dscr)
        free(scr)


# --------------------------------------------------------------------------- softmax

def softmax_forward(const floating[:, :, ::1] x, floating[:, :, ::1] y, int nthreads):
    """Softmax over C for every (o, i): ``exp(x - max) / sum``, the sum in double."""
    if x.shape[0] * x.shape[1] * x.shape[2] and _softmax(
            &x[0, 0, 0], &y[0, 0, 0], x.shape[0], x.shape[1], x.shape[2], nthreads) < 0:
        raise MemoryError()


cdef inline void _softmax_obs(const floating* x, floating* y, double* sums, floating* maxs,
                              Py_ssize_t o, Py_ssize_t nc, Py_ssize_t ni) noexcept nogil:
    # observation o of _softmax (sums, maxs: the thread's ni scratch values each)
    if floating is float:
        nrm_softmax_f32(x + o * nc * ni, y + o * nc * ni, sums, maxs, nc, ni)
    else:
        nrm_softmax_f64(x + o * nc * ni, y + o * nc * ni, sums, maxs, nc, ni)


cdef int _softmax(const floating* x, floating* y, Py_ssize_t no, Py_ssize_t nc,
                  Py_ssize_t ni, int nthreads) noexcept nogil:
    # softmax_forward on checked memory (no x nc x ni); -1 when out of memory
    cdef Py_ssize_t o, t, nt = max(nthreads, 1)
    cdef double *sums = <double *> malloc(sizeof(double) * ni * nt)
    cdef floating *maxs = <floating *> malloc(sizeof(floating) * ni * nt)
    if sums != NULL and maxs != NULL:
        if no == 1 or nthreads == 1:
            # (no OpenMP region: entering one cost about a microsecond, longer than a
            # batch-1 classifier's softmax)
            for o in range(no):
                _softmax_obs(x, y, sums, maxs, o, nc, ni)
        else:
            for o in prange(no, num_threads=nthreads, schedule='static'):
                t = omp_get_thread_num()
                _softmax_obs(x, y, sums + ni * t, maxs + ni * t, o, nc, ni)
    free(sums)
    free(maxs)
    return 0 if sums != NULL and maxs != NULL else -1


def softmax_backward(const floating[:, :, ::1] y, const floating[:, :, ::1] dy,
                     floating[:, :, ::1] dx, int nthreads):
    """``dx = y .* (dy - sum(dy .* y, C))``, the sum in double."""
    cdef Py_ssize_t no = y.shape[0], nc = y.shape[1], ni = y.shape[2]
    cdef Py_ssize_t o, t, nt = max(nthreads, 1)
    cdef double *sums = <double *> malloc(sizeof(double) * ni * nt)
    if sums == NULL:
        raise MemoryError()
    try:
        for o in prange(no, nogil=True, num_threads=nthreads, schedule='static'):
            t = omp_get_thread_num()
            if floating is float:
                nrm_softmax_back_f32(&y[o, 0, 0], &dy[o, 0, 0], &dx[o, 0, 0], sums + ni * t,
                                     nc, ni)
            else:
                nrm_softmax_back_f64(&y[o, 0, 0], &dy[o, 0, 0], &dx[o, 0, 0], sums + ni * t,
                                     nc, ni)
    finally:
        free(sums)


# --------------------------------------------------------------------------- relu

DEF RELU_CHUNK = 16384


def relu_forward(const floating[::1] x, floating[::1] y, int nthreads, bint stream=False):
    """``y = max(x, 0)`` with NaN kept, in chunks of RELU_CHUNK elements (``stream``:
    non-temporal stores, ``_stream.h``; never for ``y`` is ``x``)."""
    cdef Py_ssize_t n = x.shape[0], k, lo, nk = (n + RELU_CHUNK - 1) // RELU_CHUNK
    with nogil, parallel(num_threads=nthreads):
        for k in prange(nk, schedule='static'):
            lo = k * RELU_CHUNK
            if floating is float:
                nrm_relu_f32(&x[lo], &y[lo], min(RELU_CHUNK, n - lo), stream)
            else:
                nrm_relu_f64(&x[lo], &y[lo], min(RELU_CHUNK, n - lo), stream)
        if stream:
            stream_fence()


def add(const floating[::1] a, const floating[::1] b, floating[::1] y, bint rect,
        int nthreads, bint stream=False):
    """``y = a + b``, and ``max(y, 0)`` with NaN kept when ``rect``, in chunks of
    RELU_CHUNK elements."""
    cdef Py_ssize_t n = a.shape[0], k, lo, nk = (n + RELU_CHUNK - 1) // RELU_CHUNK
    if b.shape[0] != n or y.shape[0] != n:
        raise ValueError(f"add: a, b and y must have one length, got {n}, {b.shape[0]} "
                         f"and {y.shape[0]}")
    with nogil, parallel(num_threads=nthreads):
        for k in prange(nk, schedule='static'):
            lo = k * RELU_CHUNK
            if floating is float:
                nrm_add_f32(&a[lo], &b[lo], &y[lo], min(RELU_CHUNK, n - lo), rect, stream)
            else:
                nrm_add_f64(&a[lo], &b[lo], &y[lo], min(RELU_CHUNK, n - lo), rect, stream)
        if stream:
            stream_fence()


def relu_backward(const floating[::1] x, const floating[::1] dy, floating[::1] dx,
                  int nthreads, bint stream=False):
    """``dx = dy`` where ``x > 0``, else 0."""
    cdef Py_ssize_t n = x.shape[0], k, lo, nk = (n + RELU_CHUNK - 1) // RELU_CHUNK
    with nogil, parallel(num_threads=nthreads):
        for k in prange(nk, schedule='static'):
            lo = k * RELU_CHUNK
            if floating is float:
                nrm_relu_back_f32(&x[lo], &dy[lo], &dx[lo], min(RELU_CHUNK, n - lo), stream)
            else:
                nrm_relu_back_f64(&x[lo], &dy[lo], &dx[lo], min(RELU_CHUNK, n - lo), stream)
        if stream:
            stream_fence()


# --------------------------------------------------------------------------- programs

from _program cimport program_step


cdef int _softmax_step(const Py_ssize_t* a, char** s, int nthreads,
                       floating kind) noexcept nogil:
    # a compiled program's softmax (_conv.run_program): [x slot, y slot, O, C, I, one
    # thread]
    return _softmax(<const floating*>s[a[0]], <floating*>s[a[1]], a[2], a[3], a[4],
                    1 if a[5] else nthreads)


cdef int _softmax_step_f(const Py_ssize_t* a, char** s, int nthreads) noexcept nogil:
    return _softmax_step(a, s, nthreads, <float>0)


cdef int _softmax_step_d(const Py_ssize_t* a, char** s, int nthreads) noexcept nogil:
    return _softmax_step(a, s, nthreads, <double>0)


def program_steps():
    """{step: (address for float32, address for float64)} of this module's program steps."""
    return {"softmax": (<size_t><program_step>_softmax_step_f,
                        <size_t><program_step>_softmax_step_d)}
