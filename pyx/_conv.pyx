"""Grouped N-d convolution engine: forward, exact adjoint, weight gradient.

Memory contract (all arrays C-contiguous, dtype float32 or float64, one dtype per call)
-------------------------------------------------------------------------------------
Every geometry is three-dimensional: 1-D and 2-D problems carry leading singleton
spatial dimensions.  With ``G`` groups,

    x    [N, G*Cg, I0, I1, I2]      convolution input
    w    [G*Fg, Cg, K0, K1, K2]     output channel g*Fg+f reads input channels g*Cg .. g*Cg+Cg-1
    y    [N, G*Fg, O0, O1, O2]      convolution output
    bias [G*Fg] (or length 0)

    y[n, g*Fg+f, o] = bias[g*Fg+f]
                      + sum_{c, k} w[g*Fg+f, c, k] * x[n, g*Cg+c, o*S + k*D - P]

where positions outside ``x`` read as zero (zero padding; ``P`` is the padding before,
the padding after is implied by ``O``).  ``geom`` packs the integers as
``[I0 I1 I2, O0 O1 O2, K0 K1 K2, S0 S1 S2, D0 D1 D2, P0 P1 P2]``.

A MATLAB ``H x W x C x B`` array is column-major, which is the same memory as a C-order
``B x C x W x H`` array: the caller passes MATLAB data with its spatial dimensions
reversed and never copies it.

Functions here compute on memory they are given: no validation, no Python objects inside
``nogil``.  Parallel jobs write disjoint outputs, and how work is cut into jobs depends only
on the geometry, never on the thread count, so results are bitwise identical for any
number of threads.  BLAS is held to one thread while our own threads run.
"""
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.stdlib cimport calloc, malloc, free
from libc.string cimport memcpy, memset
from libc.math cimport fabs, INFINITY, NAN

cdef extern from "_pool_rows.h" nogil:
    void pool_max22_exact_f(const float* x, float* y, Py_ssize_t pairs, Py_ssize_t n)
    void pool_max22_exact_d(const double* x, double* y, Py_ssize_t pairs, Py_ssize_t n)
    void pool_max22_rows_f(const float* x, float* y, Py_ssize_t pairs, Py_ssize_t n,
                           Py_ssize_t hn, int rect)
    void pool_max22_rows_d(const double* x, double* y, Py_ssize_t pairs, Py_ssize_t n,
                           Py_ssize_t hn, int rect)
    Py_ssize_t POOL_PAIRS_BLOCK


cdef extern from "_simd.h" nogil:
    void shift_rows_f(float* d, Py_ssize_t n, const float* s, Py_ssize_t ss, Py_ssize_t rows,
                      Py_ssize_t lo, Py_ssize_t hi)
    void shift_rows_d(double* d, Py_ssize_t n, const double* s, Py_ssize_t ss,
                      Py_ssize_t rows, Py_ssize_t lo, Py_ssize_t hi)
    void copy_rows_f(float* d, Py_ssize_t ds, const float* s, Py_ssize_t ss,
                     Py_ssize_t rows, Py_ssize_t n, int rectify, const float* a,
                     Py_ssize_t as_)
    void copy_rows_d(double* d, Py_ssize_t ds, const double* s, Py_ssize_t ss,
                     Py_ssize_t rows, Py_ssize_t n, int rectify, const double* a,
                     Py_ssize_t as_)
    void taps_row_f(float* y, Py_ssize_t n, const float* base, const Py_ssize_t* off,
                    const float* w, Py_ssize_t ntaps, float b)
    void taps_row_d(double* y, Py_ssize_t n, const double* base, const Py_ssize_t* off,
                    const double* w, Py_ssize_t ntaps, double b)
    void taps_rows4_f(float* y, Py_ssize_t ys, Py_ssize_t n, const float* base,
                      const Py_ssize_t* off, const float* w, Py_ssize_t ws, Py_ssize_t ntaps,
                      const float* b)
    void taps_rows4_d(double* y, Py_ssize_t ys, Py_ssize_t n, const double* base,
                      const Py_ssize_t* off, const double* w, Py_ssize_t ws,
                      Py_ssize_t ntaps, const double* b)
    void taps_scatter_f(float* base, const Py_ssize_t* off, Py_ssize_t n, const float* dy,
                        const float* w, Py_ssize_t ntaps)
    void taps_scatter_d(double* base, const Py_ssize_t* off, Py_ssize_t n, const double* dy,
                        const double* w, Py_ssize_t ntaps)
    void taps_dot_f(float* acc, Py_ssize_t n, const float* dy, const float* base,
                    const Py_ssize_t* off, Py_ssize_t ntaps)
    void taps_dot_d(double* acc, Py_ssize_t n, const double* dy, const double* base,
                    const Py_ssize_t* off, Py_ssize_t ntaps)
    ctypedef struct mlayers_runs:
        const void* src
        void* y
        Py_ssize_t ld, nf, yplane, s, pstride, nseg
        const Py_ssize_t* seg
        int wino
        void* bad
    void direct_block_f(Py_ssize_t fb, float* out, const float* plane, Py_ssize_t cstride,
                        Py_ssize_t nch, const Py_ssize_t* off, Py_ssize_t ntaps,
                        const float* w, const float* b, int acc, const mlayers_runs* cp)
    void direct_block_d(Py_ssize_t fb, double* out, const double* plane, Py_ssize_t cstride,
                        Py_ssize_t nch, const Py_ssize_t* off, Py_ssize_t ntaps,
                        const double* w, const double* b, int acc, const mlayers_runs* cp)
    void rectify_row_f(float* y, Py_ssize_t n)
    void rectify_row_d(double* y, Py_ssize_t n)
    void store_runs_f(const mlayers_runs* r)
    void store_runs_d(const mlayers_runs* r)
    void dw_block_f(Py_ssize_t fb, float* acc, Py_ssize_t lda, const float* dy,
                    Py_ssize_t ldy, const float* base, Py_ssize_t cstride, Py_ssize_t nch,
                    const Py_ssize_t* off, Py_ssize_t ntaps, Py_ssize_t n)
    void dw_block_d(Py_ssize_t fb, double* acc, Py_ssize_t lda, const double* dy,
                    Py_ssize_t ldy, const double* base, Py_ssize_t cstride, Py_ssize_t nch,
                    const Py_ssize_t* off, Py_ssize_t ntaps, Py_ssize_t n)
    void split_row_f(float* dst, Py_ssize_t dstride, Py_ssize_t nph, Py_ssize_t len,
                     const float* x, Py_ssize_t s, Py_ssize_t p, const Py_ssize_t* bounds)
    void split_row_d(double* dst, Py_ssize_t dstride, Py_ssize_t nph, Py_ssize_t len,
                     const double* x, Py_ssize_t s, Py_ssize_t p, const Py_ssize_t* bounds)
    void merge_row_f(float* x, Py_ssize_t n, const float* src, Py_ssize_t dstride,
                     Py_ssize_t nph, Py_ssize_t s, Py_ssize_t p, const Py_ssize_t* bounds,
                     float b)
    void merge_row_d(double* x, Py_ssize_t n, const double* src, Py_ssize_t dstride,
                     Py_ssize_t nph, Py_ssize_t s, Py_ssize_t p, const Py_ssize_t* bounds,
                     double b)
    double row_sum_f(const float* x, Py_ssize_t n)
    double row_sum_d(const double* x, Py_ssize_t n)
    void cv_block_f(Py_ssize_t V, float* tot, const float* const* q, Py_ssize_t cbase,
                    Py_ssize_t cstride, Py_ssize_t nch, const Py_ssize_t* off,
                    Py_ssize_t ntaps, const float* w, const float* b0)
    void cv_block_d(Py_ssize_t V, double* tot, const double* const* q, Py_ssize_t cbase,
                    Py_ssize_t cstride, Py_ssize_t nch, const Py_ssize_t* off,
                    Py_ssize_t ntaps, const double* w, const double* b0)
    void cvw_block_f(Py_ssize_t V, float* tot, const float* base, const Py_ssize_t* qpos,
                     const Py_ssize_t* roff, Py_ssize_t np, const float* dyt)
    void cvw_block_d(Py_ssize_t V, double* tot, const double* base, const Py_ssize_t* qpos,
                     const Py_ssize_t* roff, Py_ssize_t np, const double* dyt)
    void cv_store_f(const float* tot, Py_ssize_t W, Py_ssize_t n, const Py_ssize_t* yoff,
                    float* y, Py_ssize_t ot, int rectify)
    void cv_store_d(const double* tot, Py_ssize_t W, Py_ssize_t n, const Py_ssize_t* yoff,
                    double* y, Py_ssize_t ot, int rectify)
    Py_ssize_t cv_rows_f(Py_ssize_t V)
    Py_ssize_t cv_rows_d(Py_ssize_t V)
    Py_ssize_t cv_lanes_f()
    Py_ssize_t cv_lanes_d()
    void wino_in_f(float* v, Py_ssize_t vstride, const float** rows, const float* bt,
                   Py_ssize_t n)
    void wino_in_d(double* v, Py_ssize_t vstride, const double** rows, const double* bt,
                   Py_ssize_t n)
    float wino_out_f(float* z, Py_ssize_t zstride, const float* mm, Py_ssize_t mstride,
                     const float* at, Py_ssize_t m, float b, Py_ssize_t n)
    double wino_out_d(double* z, Py_ssize_t zstride, const double* mm, Py_ssize_t mstride,
                      const double* at, Py_ssize_t m, double b, Py_ssize_t n)
    void wino_rows_f(float* u, Py_ssize_t ustride, Py_ssize_t n, const float* d)
    void wino_rows_d(double* u, Py_ssize_t ustride, Py_ssize_t n, const double* d)
    void w22_in_f(float* v, Py_ssize_t vstride, const float* d, Py_ssize_t ld, Py_ssize_t tp,
                  Py_ssize_t tq)
    void w22_in_d(double* v, Py_ssize_t vstride, const double* d, Py_ssize_t ld,
                  Py_ssize_t tp, Py_ssize_t tq)
    void w22_dy_f(float* v, Py_ssize_t vstride, const float* d, Py_ssize_t ld, Py_ssize_t tp,
                  Py_ssize_t tq)
    void w22_dy_d(double* v, Py_ssize_t vstride, const double* d, Py_ssize_t ld,
                  Py_ssize_t tp, Py_ssize_t tq)
    void skinny_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                  const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc)
    void skinny_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* a, Py_ssize_t lda,
                  const double* b, Py_ssize_t ldb, double* c, Py_ssize_t ldc)
    void fanout_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                  const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc)
    void fanout_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* a, Py_ssize_t lda,
                  const double* b, Py_ssize_t ldb, double* c, Py_ssize_t ldc)
    void fanin_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                 const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc)
    void fanin_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* a, Py_ssize_t lda,
                 const double* b, Py_ssize_t ldb, double* c, Py_ssize_t ldc)
    int FAN_MAX_K
    int FAN_MAX_M
    void w22_gemm_f(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const float* a, Py_ssize_t lda,
                    const float* b, Py_ssize_t ldb, float* c, Py_ssize_t ldc, int beta)
    void w22_gemm_d(Py_ssize_t m, Py_ssize_t n, Py_ssize_t k, const double* a, Py_ssize_t lda,
                    const double* b, Py_ssize_t ldb, double* c, Py_ssize_t ldc, int beta)
    int w22_out_f(float* z, Py_ssize_t ldz, const float* m, Py_ssize_t mstride, float b,
                  int rectify, Py_ssize_t tp, Py_ssize_t tq, float* tmp, const float* res)
    int w22_out_d(double* z, Py_ssize_t ldz, const double* m, Py_ssize_t mstride, double b,
                  int rectify, Py_ssize_t tp, Py_ssize_t tq, double* tmp, const double* res)
    int mlayers_level
    int mlayers_max_level()
    int mlayers_set_level(int level)
    int mlayers_vbytes()


# The C kernels come in a float and a double version; these pick one from the fused type,
# so the code below calls each kernel once whatever the precision.

cdef inline void _copy_rows(floating* d, Py_ssize_t ds, const floating* s, Py_ssize_t ss,
                            Py_ssize_t rows, Py_ssize_t n, bint rectify,
                            const floating* a=NULL, Py_ssize_t as_=0) noexcept nogil:
    # rows of n values from s to d (ss, ds apart), plus rows of a (as_ apart) when given,
    # relu's values with rectify
    if floating is float:
        copy_rows_f(d, ds, s, ss, rows, n, rectify, a, as_)
    else:
        copy_rows_d(d, ds, s, ss, rows, n, rectify, a, as_)


cdef inline void _taps_row(floating* y, Py_ssize_t n, const floating* base,
                           const Py_ssize_t* off, const floating* w, Py_ssize_t ntaps,
                           floating b) noexcept nogil:
    if floating is float:
        taps_row_f(y, n, base, off, w, ntaps, b)
    else:
        taps_row_d(y, n, base, off, w, ntaps, b)


cdef inline void _taps_rows(floating* y, Py_ssize_t ys, Py_ssize_t n, const floating* base,
                            const Py_ssize_t* off, const floating* w, Py_ssize_t ntaps,
                            const floating* b, Py_ssize_t nf) noexcept nogil:
    # _taps_row of nf (1 or 4) filters, w's ntaps apart, into rows ys apart; b: their nf
    # biases
    if nf == 1:
        _taps_row(y, n, base, off, w, ntaps, b[0])
    elif floating is float:
        taps_rows4_f(y, ys, n, base, off, w, ntaps, ntaps, b)
    else:
        taps_rows4_d(y, ys, n, base, off, w, ntaps, ntaps, b)


cdef inline void _taps_scatter(floating* base, const Py_ssize_t* off, Py_ssize_t n,
                               const floating* dy, const floating* w,
                               Py_ssize_t ntaps) noexcept nogil:
    if floating is float:
        taps_scatter_f(base, off, n, dy, w, ntaps)
    else:
        taps_scatter_d(base, off, n, dy, w, ntaps)


cdef inline void _taps_dot(floating* acc, Py_ssize_t n, const floating* dy,
                           const floating* base, const Py_ssize_t* off,
                           Py_ssize_t ntaps) noexcept nogil:
    if floating is float:
        taps_dot_f(acc, n, dy, base, off, ntaps)
    else:
        taps_dot_d(acc, n, dy, base, off, ntaps)


cdef inline void _direct_block(Py_ssize_t fb, floating* out, const floating* plane,
                               Py_ssize_t cstride, Py_ssize_t nch, const Py_ssize_t* off,
                               Py_ssize_t ntaps, const floating* w, const floating* b,
                               int acc, const mlayers_runs* cp) noexcept nogil:
    if floating is float:
        direct_block_f(fb, out, plane, cstride, nch, off, ntaps, w, b, acc, cp)
    else:
        direct_block_d(fb, out, plane, cstride, nch, off, ntaps, w, b, acc, cp)


cdef inline void _dw_block(Py_ssize_t fb, floating* acc, Py_ssize_t lda, const floating* dy,
                           Py_ssize_t ldy, const floating* base, Py_ssize_t cstride,
                           Py_ssize_t nch, const Py_ssize_t* off, Py_ssize_t ntaps,
                           Py_ssize_t n) noexcept nogil:
    if floating is float:
        dw_block_f(fb, acc, lda, dy, ldy, base, cstride, nch, off, ntaps, n)
    else:
        dw_block_d(fb, acc, lda, dy, ldy, base, cstride, nch, off, ntaps, n)


cdef inline void _split_row(floating* dst, Py_ssize_t dstride, Py_ssize_t nph, Py_ssize_t length,
                            const floating* x, Py_ssize_t s, Py_ssize_t p,
                            const Py_ssize_t* bounds) noexcept nogil:
    if floating is float:
        split_row_f(dst, dstride, nph, length, x, s, p, bounds)
    else:
        split_row_d(dst, dstride, nph, length, x, s, p, bounds)


cdef inline void _merge_row(floating* x, Py_ssize_t n, const floating* src, Py_ssize_t dstride,
                            Py_ssize_t nph, Py_ssize_t s, Py_ssize_t p,
                            const Py_ssize_t* bounds, floating b) noexcept nogil:
    if floating is float:
        merge_row_f(x, n, src, dstride, nph, s, p, bounds, b)
    else:
        merge_row_d(x, n, src, dstride, nph, s, p, bounds, b)


cdef inline double _row_sum(const floating* x, Py_ssize_t n) noexcept nogil:
    if floating is float:
        return row_sum_f(x, n)
    else:
        return row_sum_d(x, n)

cdef inline void _wino_in(floating* v, Py_ssize_t vstride, const floating** rows,
                          const floating* bt, Py_ssize_t n) noexcept nogil:
    if floating is float:
        wino_in_f(v, vstride, rows, bt, n)
    else:
        wino_in_d(v, vstride, rows, bt, n)


cdef inline double _wino_out(floating* z, Py_ssize_t zstride, const floating* mm,
                             Py_ssize_t mstride, const floating* at, Py_ssize_t m, floating b,
                             Py_ssize_t n) noexcept nogil:
    if floating is float:
        return wino_out_f(z, zstride, mm, mstride, at, m, b, n)
    else:
        return wino_out_d(z, zstride, mm, mstride, at, m, b, n)


cdef inline void _wino_rows(floating* u, Py_ssize_t ustride, Py_ssize_t n,
                            const floating* d) noexcept nogil:
    if floating is float:
        wino_rows_f(u, ustride, n, d)
    else:
        wino_rows_d(u, ustride, n, d)

from _blas cimport gemm, gemm_cm, gemv_cm
from _openmp cimport MLAYERS_OPENMP, omp_get_max_threads

OPENMP = bool(MLAYERS_OPENMP)

ISA_NAMES = ("baseline", "AVX2+FMA", "AVX-512")


def set_isa(int level):
    """Run the SIMD kernels built for instruction set ``level`` (index into ISA_NAMES),
    at most the best this CPU has; returns the level now in use.  For tests and
    comparisons: the module starts on the best one."""
    return mlayers_set_level(level)


def isa():
    """(level in use, best level this CPU has, bytes per vector of the kernels in use)."""
    return mlayers_level, mlayers_max_level(), mlayers_vbytes()


set_isa(len(ISA_NAMES) - 1)

# Column tiles are sized so one tile of the im2col matrix stays in L2 (1 MiB on Zen 4),
# where gemm streams it from, while gemm's N dimension stays wide enough to be efficient.
DEF TILE_BYTES = 768 * 1024
# The im2col + gemm kernels on small planes (_images_per_product): columns of one product
# (images side by side), and the bytes of its two matrices at most
DEF IMAGES_COLUMNS = 128
DEF IMAGES_BYTES = 8 << 20
DEF TILE_MIN = 64
# Jobs a geometry is cut into when there is no natural parallelism (a single image).
DEF MIN_JOBS = 8
# Which channel-wise kernel _depthwise runs.
DEF DW_FORWARD = 0
DEF DW_ADJOINT = 1
DEF DW_FORWARD_RELU = 2     # the forward, each output plane rectified as it is made
DEF DW_POOL = 4             # (a flag on the forward: each output plane max-pooled 2 x 2)


cdef struct Geom:
    Py_ssize_t i0, i1, i2, o0, o1, o2, k0, k1, k2
    Py_ssize_t s0, s1, s2, d0, d1, d2, p0, p1, p2
    Py_ssize_t itot, otot, ktot


include "_blas_threads.pxi"


cdef Geom _geom(const Py_ssize_t[::1] g) noexcept:
    return _geom_at(&g[0])


cdef Geom _geom_at(const Py_ssize_t* g) noexcept nogil:
    cdef Geom r
    r.i0, r.i1, r.i2 = g[0], g[1], g[2]
    r.o0, r.o1, r.o2 = g[3], g[4], g[5]
    r.k0, r.k1, r.k2 = g[6], g[7], g[8]
    r.s0, r.s1, r.s2 = g[9], g[10], g[11]
    r.d0, r.d1, r.d2 = g[12], g[13], g[14]
    r.p0, r.p1, r.p2 = g[15], g[16], g[17]
    r.itot = r.i0 * r.i1 * r.i2
    r.otot = r.o0 * r.o1 * r.o2
    r.ktot = r.k0 * r.k1 * r.k2
    return r


cdef inline Py_ssize_t _lo(Py_ssize_t off, Py_ssize_t s) noexcept nogil:
    # smallest o >= 0 with o*s + off >= 0
    return 0 if off >= 0 else (-off + s - 1) // s


cdef inline Py_ssize_t _hi(Py_ssize_t off, Py_ssize_t s, Py_ssize_t n) noexcept nogil:
    # smallest o >= 0 with o*s + off >= n (positions below it are inside the input)
    return 0 if off >= n else (n - off + s - 1) // s


cdef inline Py_ssize_t _clamp(Py_ssize_t v, Py_ssize_t lo, Py_ssize_t hi) noexcept nogil:
    return lo if v < lo else (hi if v > hi else v)


cdef Py_ssize_t* _phase_bounds(Py_ssize_t n, Py_ssize_t s, Py_ssize_t p, Py_ssize_t nph,
                               Py_ssize_t length) except NULL:
    """[lo, hi) per stride phase r < nph of a row of n inputs split as m -> x[s*m + r - p]:
    the phase positions inside the input (the rest is padding), at most ``length``."""
    cdef Py_ssize_t* b = _phase_bounds_c(n, s, p, nph, length)
    if b == NULL:
        raise MemoryError("mlayers: cannot allocate the convolution work buffer")
    return b


cdef Py_ssize_t* _phase_bounds_c(Py_ssize_t n, Py_ssize_t s, Py_ssize_t p, Py_ssize_t nph,
                                 Py_ssize_t length) noexcept nogil:
    # (_phase_bounds; NULL when out of memory)
    cdef Py_ssize_t* b = <Py_ssize_t*>malloc(2 * nph * sizeof(Py_ssize_t))
    cdef Py_ssize_t r
    if b != NULL:
        for r in range(nph):
            b[2 * r] = min(_lo(r - p, s), length)
            b[2 * r + 1] = _clamp(_hi(r - p, s, n), b[2 * r], length)
    return b


def tile_length(const Py_ssize_t[::1] geom, Py_ssize_t rows, Py_ssize_t itemsize):
    """Output positions per column tile for an im2col matrix with ``rows`` rows."""
    cdef Geom g = _geom(geom)
    return _tile_length(&g, rows, itemsize)


cdef Py_ssize_t _tile_length(const Geom* g, Py_ssize_t rows, Py_ssize_t itemsize) noexcept nogil:
    cdef Py_ssize_t t = TILE_BYTES // max(rows * itemsize, 1)
    t = max(t, TILE_MIN)
    if t >= g.otot:
        return g.otot
    # whole output rows when possible keep the im2col walk simple
    if t > g.o2:
        t -= t % g.o2
    return max(t, 1)


# --------------------------------------------------------------------------- im2col

cdef void _im2col(const floating* x, Py_ssize_t nch, const Geom* g,
                  Py_ssize_t t0, Py_ssize_t nt, floating* col, Py_ssize_t ld) noexcept nogil:
    """col[(c, k0, k1, k2) * ld + t] = x[c, o(t0+t)*S + k*D - P] for c < nch, t < nt (zero
    outside)."""
    cdef Py_ssize_t c, k0, k1, k2, t, seg, o0, o1, o2, i0, i1, off, lo, hi, j, rlo, rhi
    cdef const floating* xc
    cdef const floating* xrow
    cdef floating* row
    cdef floating* dst
    # stride 1 and rows as long as the input's: consecutive output rows read consecutive
    # input rows, so a tap's whole tile is one copy (then its edge columns are zeroed)
    # (its one plane of the outer dimension is the input's first: no padding before it)
    cdef bint wide = (g.o0 == 1 and g.k0 == 1 and g.p0 == 0 and g.s1 == 1 and g.s2 == 1
                      and g.i2 == g.o2 and t0 % g.o2 == 0 and nt % g.o2 == 0)
    # (divisions worked out once: a tap's integer divisions took as long as its copies on
    # N1's 7 x 7 planes, 144 taps of 49 values)
    cdef Py_ssize_t r0 = t0 // g.o2, r1 = (t0 + nt) // g.o2
    cdef Py_ssize_t first2 = t0 % g.o2, first1 = r0 % g.o1, first0 = t0 // (g.o2 * g.o1)
    for c in range(nch):
        xc = x + c * g.itot
        for k0 in range(g.k0):
            for k1 in range(g.k1):
                for k2 in range(g.k2):
                    row = col + (((c * g.k0 + k0) * g.k1 + k1) * g.k2 + k2) * ld
                    off = k2 * g.d2 - g.p2
                    # the positions of an output row that read inside the input: the same
                    # for every row of this tap (short rows spent most of the time here)
                    if g.s2 == 1:
                        rlo = _clamp(-off, 0, g.o2)
                        rhi = _clamp(g.i2 - off, rlo, g.o2)
                    else:
                        rlo = _clamp(_lo(off, g.s2), 0, g.o2)
                        rhi = _clamp(_hi(off, g.s2, g.i2), rlo, g.o2)
                    if wide:
                        _im2col_wide(xc, g, k1, off, rlo, rhi, r0, r1, row)
                        continue
                    o2, o1, o0 = first2, first1, first0
                    t = 0
                    while t < nt:
                        seg = min(g.o2 - o2, nt - t)
                        i0 = o0 * g.s0 + k0 * g.d0 - g.p0
                        i1 = o1 * g.s1 + k1 * g.d1 - g.p1
                        if i0 < 0 or i0 >= g.i0 or i1 < 0 or i1 >= g.i1:
                            memset(row + t, 0, seg * sizeof(floating))
                        else:
                            # (runs as short as a 7-wide row: memset/memcpy beat loops)
                            xrow = xc + (i0 * g.i1 + i1) * g.i2 + off
                            lo = _clamp(rlo, o2, o2 + seg)
                            hi = _clamp(rhi, lo, o2 + seg)
                            dst = row + t - o2
                            if lo > o2:
                                memset(dst + o2, 0, (lo - o2) * sizeof(floating))
                            if g.s2 == 1:
                                memcpy(dst + lo, xrow + lo, (hi - lo) * sizeof(floating))
                            else:
                                for j in range(lo, hi):
                                    dst[j] = xrow[j * g.s2]
                            if hi < o2 + seg:
                                memset(dst + hi, 0, (o2 + seg - hi) * sizeof(floating))
                        t += seg
                        o2 = 0
                        o1 += 1
                        if o1 == g.o1:
                            o1 = 0
                            o0 += 1


cdef inline void _im2col_wide(const floating* xc, const Geom* g, Py_ssize_t k1,
                              Py_ssize_t off, Py_ssize_t rlo, Py_ssize_t rhi, Py_ssize_t r0,
                              Py_ssize_t r1, floating* row) noexcept nogil:
    """One tap's im2col row for output rows [r0, r1) of a 1-D/2-D stride-1 convolution
    whose output rows are as long as the input's (``_im2col``'s wide case)."""
    cdef Py_ssize_t n2 = g.o2, shift = k1 * g.d1 - g.p1
    # output rows [a, b) read inside the input; the others are padding
    cdef Py_ssize_t a = _clamp(-shift, r0, r1)
    cdef Py_ssize_t b = _clamp(g.i1 - shift, a, r1)
    if a > r0:
        memset(row, 0, (a - r0) * n2 * sizeof(floating))
    if r1 > b:
        memset(row + (b - r0) * n2, 0, (r1 - b) * n2 * sizeof(floating))
    if b == a:
        return
    # each row's values inside the input and zeros around them, in vectors (a memcpy of
    # the run and scalar edge stores took about as long as the product on 7 x 7 planes)
    if floating is float:
        shift_rows_f(row + (a - r0) * n2, n2, xc + (a + shift) * g.i2 + off, g.i2, b - a,
                     rlo, rhi)
    else:
        shift_rows_d(row + (a - r0) * n2, n2, xc + (a + shift) * g.i2 + off, g.i2, b - a,
                     rlo, rhi)


cdef void _col2im(const floating* col, Py_ssize_t nch, const Geom* g,
                  Py_ssize_t t0, Py_ssize_t nt, floating* x, Py_ssize_t ld) noexcept nogil:
    """The adjoint of _im2col: x[c, o(t0+t)*S + k*D - P] += col[(c, k) * ld + t]."""
    cdef Py_ssize_t c, k0, k1, k2, t, seg, o0, o1, o2, i0, i1, off, lo, hi, j
    cdef floating* xc
    cdef floating* xrow
    cdef const floating* row
    for c in range(nch):
        xc = x + c * g.itot
        for k0 in range(g.k0):
            for k1 in range(g.k1):
                for k2 in range(g.k2):
                    row = col + (((c * g.k0 + k0) * g.k1 + k1) * g.k2 + k2) * ld
                    off = k2 * g.d2 - g.p2
                    o2 = t0 % g.o2
                    o1 = (t0 // g.o2) % g.o1
                    o0 = t0 // (g.o2 * g.o1)
                    t = 0
                    while t < nt:
                        seg = min(g.o2 - o2, nt - t)
                        i0 = o0 * g.s0 + k0 * g.d0 - g.p0
                        i1 = o1 * g.s1 + k1 * g.d1 - g.p1
                        if i0 >= 0 and i0 < g.i0 and i1 >= 0 and i1 < g.i1:
                            xrow = xc + (i0 * g.i1 + i1) * g.i2 + off
                            lo = _clamp(_lo(off, g.s2), o2, o2 + seg)
                            hi = _clamp(_hi(off, g.s2, g.i2), lo, o2 + seg)
                            if g.s2 == 1:
                                for j in range(lo, hi):
                                    xrow[j] += row[t + j - o2]
                            else:
                                for j in range(lo, hi):
                                    xrow[j * g.s2] += row[t + j - o2]
                        t += seg
                        o2 = 0
                        o1 += 1
                        if o1 == g.o1:
                            o1 = 0
                            o0 += 1


# The reduction of gemm calls over long sums (im2col rows, filters of the adjoint) goes in
# blocks of at most this many terms, each added to the result: a long running sum in
# BLAS's registers rounds like its length (2304 terms: 1.7e-6 of the largest output,
# against 4e-7 in blocks; docs/engine.md "Accuracy")
DEF GEMM_KBLOCK = 128
# blocks per group of _gemm_kb3's middle level
DEF GEMM_GROUP = 8


cdef inline void _gemm_kb(bint trans_a, int m, int n, int k, const floating* a, int lda,
                          const floating* b, int ldb, floating beta, floating* c,
                          int ldc) noexcept nogil:
    """Row-major C = op(A) B + beta C with the reduction in near-equal blocks of at most
    GEMM_KBLOCK terms, summed in order."""
    cdef int nblk = max(1, (k + GEMM_KBLOCK - 1) // GEMM_KBLOCK)
    cdef int kb = (k + nblk - 1) // nblk
    cdef int k0 = 0, kn
    while True:
        kn = min(kb, k - k0)
        gemm(trans_a, False, m, n, kn, <floating>1, a + (k0 * lda if trans_a else k0), lda,
             b + k0 * ldb, ldb, beta if k0 == 0 else <floating>1, c, ldc)
        k0 += kn
        if k0 >= k:
            break


cdef inline void _gemm_kb3(bint trans_b, bint accumulate, int m, int n, int k,
                           const floating* a, int lda, const floating* b, int ldb,
                           floating* c, int ldc, int kblock, floating* tmp) noexcept nogil:
    """Row-major C = A op(B) (``accumulate``: C += A op(B)) with the reduction in three
    levels: blocks of at most ``kblock`` terms (w22_gemm for A B, the forward's per-point
    products; gemm for A B^T, the weight gradient's), groups of GEMM_GROUP blocks summed in
    order (in ``tmp``, m x n, unless the group writes C itself), the groups added to C in
    order."""
    cdef int nblk = max(1, (k + kblock - 1) // kblock)
    cdef int kb = (k + nblk - 1) // nblk
    cdef int k0 = 0, g0, i
    cdef bint direct
    while k0 < k:
        g0 = k0
        direct = g0 == 0 and not accumulate
        while k0 < k and k0 < g0 + GEMM_GROUP * kb:
            if trans_b:
                gemm(False, True, m, n, min(kb, k - k0), <floating>1, a + k0, lda, b + k0,
                     ldb, 0 if k0 == g0 else <floating>1, c if direct else tmp,
                     ldc if direct else n)
            elif floating is float:
                w22_gemm_f(m, n, min(kb, k - k0), a + k0, lda, b + k0 * ldb, ldb,
                           c if direct else tmp, ldc if direct else n, k0 != g0)
            else:
                w22_gemm_d(m, n, min(kb, k - k0), a + k0, lda, b + k0 * ldb, ldb,
                           c if direct else tmp, ldc if direct else n, k0 != g0)
            k0 += kb
        if not direct:
            for i in range(m):
                _add_to(c + i * ldc, tmp + i * n, n)


cdef inline bint _is_pointwise(const Geom* g) noexcept nogil:
    # 1x1 kernel, stride 1, no padding: the input already is the im2col matrix
    return (g.ktot == 1 and g.s0 == 1 and g.s1 == 1 and g.s2 == 1
            and g.p0 == 0 and g.p1 == 0 and g.p2 == 0
            and g.i0 == g.o0 and g.i1 == g.o1 and g.i2 == g.o2)


cdef inline Py_ssize_t _lines(Py_ssize_t n, Py_ssize_t itemsize) noexcept nogil:
    # n elements rounded up to whole 64-byte cache lines, so threads never share a line
    return (n * itemsize + 63) // 64 * 64 // itemsize


cdef floating* _thread_buffers(Py_ssize_t per_thread, int nthreads, floating kind) except? NULL:
    # One allocation for every thread's work area (``per_thread`` elements each, a whole
    # number of cache lines), made and checked while we hold the GIL, so nothing inside
    # the parallel region can fail.  ``kind`` only selects the type.
    cdef floating* p = _thread_buffers_c(per_thread, nthreads, kind)
    if p == NULL:
        raise MemoryError("mlayers: cannot allocate the convolution work buffer")
    return p


cdef inline floating* _thread_buffers_c(Py_ssize_t per_thread, int nthreads,
                                        floating kind) noexcept nogil:
    # (_thread_buffers without the GIL: NULL when out of memory, for kernels that return
    # an error code)
    return <floating*>malloc(max(per_thread * nthreads, 1) * sizeof(floating))


cdef void _fill_channels(floating* y, const floating* bias, Py_ssize_t nch,
                         Py_ssize_t ld, Py_ssize_t t0, Py_ssize_t nt) noexcept nogil:
    cdef Py_ssize_t c, t
    cdef floating v
    for c in range(nch):
        v = bias[c] if bias != NULL else 0
        for t in range(nt):
            y[c * ld + t0 + t] = v


# --------------------------------------------------------------------------- forward

cdef void _rectify(floating* y, Py_ssize_t nch, Py_ssize_t ld, Py_ssize_t nt) noexcept nogil:
    # rows of nt values ld apart, rectified as relu (x <= 0 gives +0, NaN kept)
    cdef Py_ssize_t c
    for c in range(nch):
        if floating is float:
            rectify_row_f(y + c * ld, nt)
        else:
            rectify_row_d(y + c * ld, nt)


def conv_forward(const floating[:, :, :, :, ::1] x, const floating[:, :, :, :, ::1] w,
                 const floating[::1] bias, floating[:, :, :, :, ::1] y,
                 const Py_ssize_t[::1] geom, Py_ssize_t groups, int nthreads,
                 bint rectify=False, bint pool=False):
    """y = conv(x, w) + bias (``rectify``: max(that, 0), NaN kept, relu's values; each tile
    while it is in cache).  ``bias`` of length 0 means no bias.  ``y`` is overwritten.

    ``pool``: y is the 2 x 2, stride-2 max pooling of that (N x F x 1 x O1/2 x O2/2: the
    pooling layer after the convolution, each output plane pooled while it is in cache,
    _pool_rows.h's selects); only the channel-wise kernel (one input channel per group)
    of 2-D planes of even sizes."""
    cdef Geom g = _geom(geom)
    cdef Py_ssize_t cg = w.shape[1]
    if pool and not (cg == 1 and g.o0 == 1 and g.o1 % 2 == 0 and g.o2 % 2 == 0
                     and g.o1 > 0 and g.o2 > 0
                     and g.o2 <= POOL_PAIRS_BLOCK and y.shape[2] == 1
                     and y.shape[3] == g.o1 // 2 and y.shape[4] == g.o2 // 2):
        raise ValueError("conv_forward: pooling needs one channel per group, a 2-D plane of "
                         "even sizes and y of the pooled size")
    if _conv_forward(&x[0, 0, 0, 0, 0], &w[0, 0, 0, 0, 0],
                     &bias[0] if bias.shape[0] > 0 else NULL, &y[0, 0, 0, 0, 0], &g,
                     x.shape[0], w.shape[0], cg, groups, nthreads, rectify, pool) < 0:
        raise MemoryError("mlayers: cannot allocate the convolution work buffer")


cdef inline Py_ssize_t _images_per_product(Py_ssize_t otot, Py_ssize_t n_img,
                                           Py_ssize_t rows, Py_ssize_t itemsize) noexcept nogil:
    # Images whose im2col matrices (``rows`` rows of otot columns, with the product's)
    # go side by side in one product of _conv_forward or conv_adjoint (1: an image a job),
    # so BLAS packs each block of the weights once per IMAGES_COLUMNS columns, not once per
    # image (a product of a few columns spent more time packing the weights than
    # multiplying); at most half the images, so two threads have work.  By the sizes
    # alone: the same jobs, and bits, for any thread count.
    if 2 * otot > IMAGES_COLUMNS:
        return 1
    return max(1, min(IMAGES_COLUMNS // otot, (n_img + 1) // 2,
                      IMAGES_BYTES // (rows * otot * itemsize)))


cdef void _conv_job_images(Py_ssize_t job, const floating* x, const floating* w,
                           const floating* bp, floating* y, const Geom* gp, Py_ssize_t n_img,
                           Py_ssize_t nb, Py_ssize_t groups, Py_ssize_t cg, Py_ssize_t fg,
                           Py_ssize_t cout, Py_ssize_t rows, bint rectify,
                           floating* col) noexcept nogil:
    # job ``job`` of _conv_forward on small planes: one group of ``nb`` images (the last
    # may have fewer) of one group of channels, their im2col matrices side by side in one
    # product (col: rows x nb*otot, then the fg x nb*otot result), copied out per image
    cdef Py_ssize_t grp = job % groups, n0 = job // groups * nb
    cdef Py_ssize_t m = min(nb, n_img - n0), ot = gp.otot, ncols = m * ot, i, f
    cdef floating* c = col + rows * nb * ot
    cdef floating beta = 0 if bp == NULL else 1
    for i in range(m):
        _im2col(x + ((n0 + i) * groups + grp) * cg * gp.itot, cg, gp, 0, ot, col + i * ot,
                ncols)
    if bp != NULL:
        _fill_channels(c, bp + grp * fg, fg, ncols, 0, ncols)
    _gemm_kb(False, <int>fg, <int>ncols, <int>rows, w + grp * fg * rows, <int>rows,
             col, <int>ncols, beta, c, <int>ncols)
    if rectify:
        _rectify(c, fg, ncols, ncols)
    for i in range(m):
        for f in range(fg):
            memcpy(y + ((n0 + i) * cout + grp * fg + f) * ot, c + f * ncols + i * ot,
                   ot * sizeof(floating))


cdef void _conv_job(Py_ssize_t job, const floating* x, const floating* w,
                    const floating* bp, floating* y, const Geom* gp, Py_ssize_t ntiles,
                    Py_ssize_t nt, Py_ssize_t groups, Py_ssize_t cg, Py_ssize_t fg,
                    Py_ssize_t cout, Py_ssize_t rows, bint pointwise, bint rectify,
                    Py_ssize_t n_img, Py_ssize_t nb, floating* col) noexcept nogil:
    # job ``job`` of _conv_forward: one tile of one group of one image, or with nb > 1
    # (small planes) of nb images (_conv_job_images) (col: the thread's im2col buffer)
    if nb > 1:
        _conv_job_images(job, x, w, bp, y, gp, n_img, nb, groups, cg, fg, cout, rows,
                         rectify, col)
        return
    cdef Py_ssize_t tile = job % ntiles
    cdef Py_ssize_t grp = (job // ntiles) % groups
    cdef Py_ssize_t n = job // (ntiles * groups)
    cdef Py_ssize_t t0 = tile * nt
    cdef Py_ssize_t len_ = min(nt, gp.otot - t0)
    cdef const floating* xg = x + (n * groups + grp) * cg * gp.itot
    cdef floating* yg = y + (n * cout + grp * fg) * gp.otot
    cdef floating beta = 0 if bp == NULL else 1
    if bp != NULL:
        _fill_channels(yg, bp + grp * fg, fg, gp.otot, t0, len_)
    if pointwise:
        _gemm_kb(False, <int>fg, <int>len_, <int>rows, w + grp * fg * rows, <int>rows,
                 xg + t0, <int>gp.itot, beta, yg + t0, <int>gp.otot)
    else:
        _im2col(xg, cg, gp, t0, len_, col, len_)
        _gemm_kb(False, <int>fg, <int>len_, <int>rows, w + grp * fg * rows, <int>rows,
                 col, <int>len_, beta, yg + t0, <int>gp.otot)
    if rectify:
        _rectify(yg + t0, fg, gp.otot, len_)


cdef int _conv_forward(const floating* x, const floating* w, const floating* bp, floating* y,
                       const Geom* gp, Py_ssize_t n_img, Py_ssize_t cout, Py_ssize_t cg,
                       Py_ssize_t groups, int nthreads, bint rectify,
                       bint pool) noexcept nogil:
    # conv_forward on checked memory (bp NULL: no bias); -1 when out of memory
    cdef Geom g = gp[0]
    cdef Py_ssize_t fg = cout // groups, rows = cg * g.ktot
    cdef int prev
    if cg == 1:
        return _depthwise((DW_FORWARD_RELU if rectify else DW_FORWARD) | (DW_POOL if pool else 0),
                          x, w, bp, y, &g, n_img, groups, fg, nthreads)
    cdef Py_ssize_t nt = _tile_length(&g, rows, sizeof(floating))
    cdef Py_ssize_t ntiles = (g.otot + nt - 1) // nt
    cdef Py_ssize_t njobs = n_img * groups * ntiles
    cdef bint pointwise = _is_pointwise(&g)
    cdef Py_ssize_t job
    cdef Py_ssize_t stride = 0 if pointwise else _lines(rows * nt, sizeof(floating))
    cdef Py_ssize_t nb = (1 if pointwise or ntiles > 1 else
                          _images_per_product(g.otot, n_img, rows + fg, sizeof(floating)))
    if nb > 1:
        njobs = (n_img + nb - 1) // nb * groups
        stride = _lines((rows + fg) * nb * g.otot, sizeof(floating))
    cdef floating* buf = _thread_buffers_c(stride, nthreads, <floating>0)
    if buf == NULL:
        return -1
    prev = _blas_hold()
    if njobs == 1 or nthreads == 1:
        # (no OpenMP region: entering one, even of one thread, cost about a microsecond,
        # a twentieth of a batch-1 layer's call)
        for job in range(njobs):
            _conv_job(job, x, w, bp, y, &g, ntiles, nt, groups, cg, fg, cout, rows,
                      pointwise, rectify, n_img, nb, buf)
    else:
        for job in prange(njobs, num_threads=nthreads, schedule='dynamic'):
            _conv_job(job, x, w, bp, y, &g, ntiles, nt, groups, cg, fg, cout, rows,
                      pointwise, rectify, n_img, nb, buf + threadid() * stride)
    _blas_release(prev)
    free(buf)
    return 0


# --------------------------------------------------------------------------- direct

# Output channels per register block of conv_direct: 6 (x 4 vectors) or 8 (x 3).
FILTER_BLOCKS = (6, 8)
# Fields of one row of conv_direct's ``passes`` table.
DEF PASS_NTAPS = 0
DEF PASS_TAP0 = 1
DEF PASS_OSTRIDE = 2    # 3 values: output index = OSTRIDE * grid + OSHIFT, per dimension
DEF PASS_OSHIFT = 5
DEF PASS_LO = 8         # 3 values: the grid positions this pass writes, [LO, HI)
DEF PASS_HI = 11
DEF PASS_FIELDS = 14
# (channel, tap) pairs per chunk of conv_direct's reduction: their input rows and weights
# fit in L1 while every filter block of an output block is computed
DEF CHUNK_TAPS = 96
# bytes of conv_cv's padded volumes built at once (a group of images)
DEF CV_VOLUMES = 8 << 20
CHUNK_TERMS = CHUNK_TAPS    # (visible to Python: mlayers._ops._run_cv)
# chunks whose sums are added up before they are added to the outputs' (accuracy: the
# sums are blocked in three levels, docs/engine.md "Accuracy")
DEF GROUP_CHUNKS = 8


cdef inline void _add_to(floating* y, const floating* x, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i
    for i in range(n):
        y[i] = y[i] + x[i]


cdef struct Direct:
    # what one job of conv_direct needs besides its pointers
    Py_ssize_t npass, nfb, fb_size, blk, cg, fg, cstride, planes, blocks, m1, m2
    Py_ssize_t wlen, y1, y2, yplane, nph, pstride
    bint wino


cdef double _direct_job(Py_ssize_t job, const Direct* d, const floating* vols,
                        const floating* wpk, const floating* bpk, const Py_ssize_t* passes,
                        const Py_ssize_t* span, const Py_ssize_t* off, floating* y,
                        floating* out) noexcept nogil:
    """One job of conv_direct: a block of grid positions of one image, every pass.

    ``vols`` are the image's phase volumes, ``y`` its output, ``out`` the thread's
    register-block buffers (one per phase of the innermost dimension) followed by room for
    the block's output runs and a buffer of one phase for sums of chunks.  Returns 0, or NaN if Winograd made an output Inf or NaN."""
    cdef Py_ssize_t* seg = <Py_ssize_t*>(out + d.nph * d.pstride)
    cdef floating* mid = out + d.nph * d.pstride + 4 * d.blk * sizeof(Py_ssize_t) // sizeof(floating)
    cdef floating* dst
    cdef Py_ssize_t k
    cdef bint last
    cdef Py_ssize_t grp = job // (d.planes * d.blocks), g0 = job // d.blocks % d.planes
    cdef Py_ssize_t b = job % d.blocks, p = 0, r, nph, q0, nq, cc, c0, fb
    cdef mlayers_runs runs
    cdef const Py_ssize_t* ps
    cdef const Py_ssize_t* pr
    cdef const floating* vn
    cdef const floating* wp
    cdef const floating* bias
    cdef floating* yg = y + grp * d.fg * d.yplane
    # Winograd's products other than m1 start from zero: the output transform adds m1 to
    # both outputs of a tile, so it alone carries the bias
    cdef floating zeros[8]
    cdef floating bad[16]      # a vector of the kernels' (at most 64 bytes)
    cdef double total = 0
    memset(zeros, 0, sizeof(zeros))
    memset(bad, 0, sizeof(bad))
    runs.ld = d.blk
    runs.yplane = d.yplane
    runs.pstride = d.pstride
    runs.seg = seg
    runs.wino = d.wino
    runs.bad = bad
    while p < d.npass:
        ps = passes + p * PASS_FIELDS
        # the stride phases of the innermost dimension (passes p .. p + nph - 1, on the
        # same grid) are computed one after the other and stored together, interleaved;
        # under Winograd, its four products are stored as two phases
        nph = 4 if d.wino else ps[PASS_OSTRIDE + 2]
        if b * d.blk >= span[p] or ps[PASS_LO] + g0 >= ps[PASS_HI]:
            p += nph
            continue
        q0 = _grid_flat(ps[PASS_LO] + g0, ps[PASS_LO + 1], ps[PASS_LO + 2], d.m1,
                        d.m2) + b * d.blk
        nq = min(d.blk, span[p] - b * d.blk)
        runs.s = ps[PASS_OSTRIDE + 2]
        runs.nseg = _grid_segments(q0, nq, ps, d.m1, d.m2, d.y1, d.y2, seg)
        vn = vols + grp * d.cg * d.cstride + q0
        for r in range(nph):
            pr = ps + r * PASS_FIELDS
            # channels in chunks whose rows and weights stay in L1 across the filter
            # blocks.  For accuracy the sums are blocked in three levels: each chunk's
            # sums start from zero in the registers; the chunks of a group of
            # GROUP_CHUNKS add up in ``mid``; the groups in ``out`` (the first group there
            # directly, after the bias)
            cc = max(1, CHUNK_TAPS // max(pr[PASS_NTAPS], 1))
            c0 = 0
            k = 0
            while c0 < d.cg:
                last = c0 + cc >= d.cg or k % GROUP_CHUNKS == GROUP_CHUNKS - 1
                for fb in range(d.nfb):
                    wp = (wpk + (grp * d.nfb + fb) * d.wlen
                          + (pr[PASS_TAP0] * d.cg + c0 * pr[PASS_NTAPS]) * d.fb_size)
                    # (the bias goes into the first group's sums only: the later groups
                    # start from zero in ``mid``)
                    bias = (&zeros[0] if (d.wino and r != 1) or k >= GROUP_CHUNKS
                            else bpk + (grp * d.nfb + fb) * d.fb_size)
                    # in the last chunk of the last phase, the block before this one is
                    # done: it goes to y while this one computes
                    _runs_of_block(&runs, d, fb - 1, out, yg,
                                   r == nph - 1 and c0 + cc >= d.cg and fb > 0)
                    dst = out + r * d.pstride + fb * d.fb_size * d.blk
                    if k >= GROUP_CHUNKS:
                        dst = mid + fb * d.fb_size * d.blk
                    _direct_block(d.fb_size, dst, vn + c0 * d.cstride, d.cstride,
                                  min(cc, d.cg - c0), off + pr[PASS_TAP0], pr[PASS_NTAPS],
                                  wp, bias, k % GROUP_CHUNKS > 0, &runs)
                    if k >= GROUP_CHUNKS and last:
                        _add_to(out + r * d.pstride + fb * d.fb_size * d.blk, dst,
                                d.fb_size * d.blk)
                c0 = c0 + cc
                k = k + 1
        _runs_of_block(&runs, d, d.nfb - 1, out, yg, True)
        if floating is float:
            store_runs_f(&runs)
        else:
            store_runs_d(&runs)
        p += nph
    for r in range(16):
        total += bad[r]
    return total


def pack_direct_weights(const floating[:, :, :, :] w, const floating[::1] bias,
                        const Py_ssize_t[::1] order, const Py_ssize_t[:, ::1] passes,
                        floating[:, :, ::1] wpk, floating[:, :, ::1] bpk,
                        const double[:, ::1] gm=None, double[::1] spread=None):
    """conv_direct's weights and bias from ``w[g, f, c, tap]`` (any strides) and ``bias``
    (length 0 for none), in blocks of FB = ``bpk.shape[2]`` filters, zero past the last:

        wpk[g, fb, (pass p, c, t, f)] = w[g, fb*FB + f, c, order[tap0_p + t]]
        bpk[g, fb, f] = bias[g*Fg + fb*FB + f]

    or with ``gm`` (a row per pass: Winograd's F(2, 3), conv_direct's ``wino``), the
    transformed weights, computed in double and rounded once: with u = 3*order[tap0_p + t],

        wpk[g, fb, (p, c, t, f)] = sum_{b < 3} gm[p, b] * w[g, fb*FB + f, c, u + b]

    Returns whether every weight is finite (what the adjoint's zero padding needs).  One
    loop in C: on the per-call path, numpy's temporaries for this cost 0.13-0.16 ms.

    With ``gm`` and ``spread``, ``spread[0]`` receives the largest, over the filters, of

        sum |transformed weights| / min(sum |w[.., 1:]|, sum |w[.., :2]|)

    (sums over the filter's rows of three taps): the size of the values F(2, 3) rounds,
    over that of the terms an output sees when the data past one end of its rows are zero
    (padding).  Winograd's rounding error is bounded in proportion to the first, the
    direct sums' to the second (_ops._WINOGRAD_ROWS_MAX_SPREAD).
    """
    cdef Py_ssize_t groups = w.shape[0], nout = w.shape[1], nin = w.shape[2]
    cdef Py_ssize_t nfb = wpk.shape[1], fbs = bpk.shape[2]
    cdef Py_ssize_t s1 = w.strides[1] // sizeof(floating), s2 = w.strides[2] // sizeof(floating)
    cdef Py_ssize_t s3 = w.strides[3] // sizeof(floating)
    cdef Py_ssize_t g, fb, nf, p, c, t, f
    cdef const floating* src
    cdef floating* dst
    cdef floating v
    cdef bint finite = True
    cdef bint wino = gm is not None
    cdef bint measure = wino and spread is not None
    cdef double tw[8]
    cdef double lo[8]
    cdef double hi[8]
    cdef double worst = 0, a0, a1, a2, den
    if fbs > 8:     # (the per-filter sums below hold 8)
        raise ValueError(f"pack_direct_weights: blocks of at most 8 filters, got {fbs}")
    with nogil:
        for g in range(groups):
            for fb in range(nfb):
                nf = min(fbs, nout - fb * fbs)
                dst = &wpk[g, fb, 0]
                for f in range(8):
                    tw[f] = 0
                    lo[f] = 0
                    hi[f] = 0
                for p in range(passes.shape[0]):
                    for c in range(nin):
                        for t in range(passes[p, PASS_NTAPS]):
                            src = (&w[g, fb * fbs, c, 0]
                                   + order[passes[p, PASS_TAP0] + t] * (3 if wino else 1) * s3)
                            for f in range(nf):
                                if wino:
                                    v = <floating>(gm[p, 0] * src[f * s1]
                                                   + gm[p, 1] * src[f * s1 + s3]
                                                   + gm[p, 2] * src[f * s1 + 2 * s3])
                                    if measure:
                                        tw[f] += fabs(v)
                                        if p == 0:
                                            a0 = fabs(src[f * s1])
                                            a1 = fabs(src[f * s1 + s3])
                                            a2 = fabs(src[f * s1 + 2 * s3])
                                            lo[f] += a1 + a2
                                            hi[f] += a0 + a1
                                else:
                                    v = src[f * s1]
                                # v - v is NaN exactly when v is Inf or NaN
                                finite = finite & (v - v == 0)
                                dst[f] = v
                            for f in range(nf, fbs):
                                dst[f] = 0
                            dst = dst + fbs
                for f in range(fbs):
                    bpk[g, fb, f] = (bias[g * nout + fb * fbs + f]
                                     if f < nf and bias.shape[0] else 0)
                if measure:
                    for f in range(nf):
                        den = min(lo[f], hi[f])
                        if tw[f] > worst * den:
                            worst = tw[f] / den if den > 0 else INFINITY
        if measure:
            spread[0] = worst
    return finite


cdef inline void _runs_of_block(mlayers_runs* runs, const Direct* d, Py_ssize_t fb,
                                floating* out, floating* yg, bint done) noexcept nogil:
    # the outputs of filter block fb (none unless done), from out to the group's yg
    runs.src = out + fb * d.fb_size * d.blk
    runs.y = yg + fb * d.fb_size * d.yplane
    runs.nf = min(d.fb_size, d.fg - fb * d.fb_size) if done else 0


def conv_direct(const floating[:, :, :, :, ::1] x, const floating[:, :, ::1] wpk,
                const floating[:, :, ::1] bpk, floating[:, :, :, :, ::1] y,
                const Py_ssize_t[::1] vol, const Py_ssize_t[:, ::1] passes,
                const Py_ssize_t[::1] off, Py_ssize_t batch, int nthreads, bint wino=False):
    """Convolutions as sums of stride-1 taps over padded, stride-phase volumes: no im2col.

    Each input channel is copied once per image into a zero-padded volume split into
    stride phases, ``v[r, m] = x[S*m + r - P]`` per dimension (``vol`` packs S, P, the
    phase counts R and the phase extents M, three values each, then the length of an
    innermost row: M2, the row stride, may be shorter, as rows share their padding).  A
    tap then reads the volume at a fixed offset from a "grid" position, so consecutive
    grid positions read consecutive memory and every input vector loaded feeds 6 or 8
    multiply-adds.

    A pass is a set of taps (``off[tap0 : tap0 + ntaps]``) whose sums go to the outputs
    ``y[OSTRIDE*m + OSHIFT]`` for grid positions ``LO <= m < HI`` (rows of ``passes``).
    The forward convolution is one pass; the transposed convolution is one pass per output
    stride phase, each a stride-1 convolution with that phase's taps.  Grid positions
    outside [LO, HI) along a row are computed and dropped (a few per row).  The S passes
    of the innermost dimension's phases (OSTRIDE[2] = S > 1) come one after the other,
    phase 0 first, with the same [LO, HI): their outputs are interleaved into whole rows
    of y with vector shuffles (S = 2, 4), not written S apart one value at a time, and
    outputs outside y are dropped there.

    While there are at least as many images left as threads, each thread takes whole
    images: it builds their volumes and computes them alone, with no barrier and the
    volumes in its own cache.  The images left over (fewer than the threads) share
    their jobs: the volumes of ``batch`` of them are built at once, then every thread
    takes blocks.  Either way each output is the same sum in the same order.

    ``wpk[g, fb, (pass, c, t, f)]`` holds the weights in blocks of 6 or 8 output channels
    (zero-padded), pass after pass; ``bpk[g, fb, f]`` the bias likewise.  Jobs are blocks
    of consecutive grid positions within one plane of the outermost dimension, so rows
    that are all padding are skipped.

    With ``wino``, the innermost dimension's three taps go through Winograd's F(2, 3):
    the volumes hold the input transform (_phase_volume), the passes come in fours, one
    per product, each with the other dimensions' taps and the transformed weights, on a
    grid of tiles of two outputs (OSTRIDE[2] = 2), and the stores apply the output
    transform.  Returns whether every output is finite (always, without ``wino``); if
    not, the caller recomputes without it, as the transforms mix values (Inf - Inf).
    """
    cdef Py_ssize_t n_img = x.shape[0], nch = x.shape[1], groups = wpk.shape[0]
    cdef Direct d
    cdef double bad = 0
    d.wino = wino
    d.npass = passes.shape[0]
    d.nfb = wpk.shape[1]
    d.fb_size = bpk.shape[2]
    d.blk = (4 if d.fb_size == 6 else 3) * (mlayers_vbytes() // sizeof(floating))
    d.cg = nch // groups
    d.fg = y.shape[1] // groups
    # blocks read up to blk - 1 positions past the last grid position: keep that much slack
    d.cstride = _lines(_volume_size(&vol[0]) + d.blk, sizeof(floating))
    d.m1 = vol[10]
    d.m2 = vol[11]
    d.wlen = wpk.shape[2]
    d.y1 = y.shape[3]
    d.y2 = y.shape[4]
    d.yplane = y.shape[2] * y.shape[3] * y.shape[4]
    d.planes = d.blocks = 0
    d.nph = 1
    d.pstride = d.nfb * d.fb_size * d.blk
    cdef Py_ssize_t tmp_stride
    cdef Py_ssize_t per_image = nch * d.cstride, i2 = x.shape[4]
    # whole images per thread while at least one is left for each thread
    cdef Py_ssize_t n_own = n_img // nthreads * nthreads if nthreads > 1 else 0
    # per pass: the grid positions it owns in each outer plane
    cdef Py_ssize_t* span = <Py_ssize_t*>malloc(d.npass * sizeof(Py_ssize_t))
    cdef floating* vols = NULL
    cdef floating* tmp = NULL
    cdef Py_ssize_t* bounds = NULL
    cdef const Py_ssize_t* ps
    cdef Py_ssize_t n, c, p, job, n0, nb, job_n, njobs, tid
    cdef floating* v
    if span == NULL:
        raise MemoryError("mlayers: cannot allocate the convolution work buffer")
    for p in range(d.npass):
        ps = &passes[p, 0]
        d.nph = max(d.nph, ps[PASS_OSTRIDE + 2])
        span[p] = 0
        if ps[PASS_HI] > ps[PASS_LO] and ps[PASS_HI + 1] > ps[PASS_LO + 1] \
                and ps[PASS_HI + 2] > ps[PASS_LO + 2]:
            span[p] = ((ps[PASS_HI + 1] - 1 - ps[PASS_LO + 1]) * d.m2
                       + ps[PASS_HI + 2] - ps[PASS_LO + 2])
            d.planes = max(d.planes, ps[PASS_HI] - ps[PASS_LO])
            d.blocks = max(d.blocks, (span[p] + d.blk - 1) // d.blk)
    if wino:
        d.nph = 4
    # A job is one block of grid positions in one outer plane, for every pass: the passes
    # of the transposed convolution interleave their outputs, which would otherwise share
    # cache lines between threads.
    njobs = groups * d.planes * d.blocks
    # per thread: the register blocks' outputs of each phase stored together, then the
    # runs of output positions, then the sums of chunks of one phase; before the jobs, Winograd's volumes use it for a padded row
    tmp_stride = (d.nph + 1) * d.pstride + 4 * d.blk * sizeof(Py_ssize_t) // sizeof(floating)
    tmp_stride = _lines(max(tmp_stride, 2 * vol[12] + 2 if wino else 0), sizeof(floating))
    try:
        vols = _thread_buffers(per_image, <int>max(batch, nthreads if n_own else 1),
                               <floating>0)
        tmp = _thread_buffers(tmp_stride, nthreads, <floating>0)
        bounds = _volume_bounds(i2, vol)
    except MemoryError:
        free(span)
        free(vols)
        free(tmp)
        raise
    with nogil:
        for n in prange(n_own, num_threads=nthreads, schedule='dynamic'):
            tid = threadid()
            v = vols + tid * per_image
            for c in range(nch):
                _phase_volume(&x[n, c, 0, 0, 0], x.shape[2], x.shape[3], i2, &vol[0], bounds,
                              d.cstride, v + c * d.cstride,
                              tmp + tid * tmp_stride if wino else NULL)
            for job in range(njobs):
                bad += _direct_job(job, &d, v, &wpk[0, 0, 0], &bpk[0, 0, 0], &passes[0, 0],
                                   span, &off[0], &y[n, 0, 0, 0, 0], tmp + tid * tmp_stride)
        n0 = n_own
        while n0 < n_img:
            nb = min(batch, n_img - n0)
            _build_volumes(&x[n0, 0, 0, 0, 0], nb * nch, x.shape[2], x.shape[3], i2,
                           &vol[0], bounds, d.cstride, vols, nthreads,
                           tmp if wino else NULL, tmp_stride)
            for job_n in prange(nb * njobs, num_threads=nthreads, schedule='dynamic'):
                n = job_n // njobs
                bad += _direct_job(job_n % njobs, &d, vols + n * per_image, &wpk[0, 0, 0],
                                   &bpk[0, 0, 0], &passes[0, 0], span, &off[0],
                                   &y[n0 + n, 0, 0, 0, 0], tmp + threadid() * tmp_stride)
            n0 += nb
    free(span)
    free(vols)
    free(tmp)
    free(bounds)
    return bad == 0


# --------------------------------------------------------------------------- Winograd

cdef struct Wino:
    # what one job of conv_winograd needs besides its pointers
    Py_ssize_t cg, fg, nfb, fbs, blk, nblk, m, dil, nph, phlen, vstride, yn


def pack_winograd_weights(const floating[:, :, :, ::1] w, const floating[:, ::1] gm,
                          floating[:, :, :, :, ::1] upk, const double[::1] acol=None,
                          double[::1] spread=None):
    """conv_winograd's transformed weights from ``w[g, f, c, k]``, in blocks of FB =
    ``upk.shape[4]`` filters, zero past the last:

        upk[g, fb, p, c, f] = sum_k gm[p, k] * w[g, fb*FB + f, c, k]

    With ``acol`` (the sums of |Aᵀ|'s columns) and ``spread``, ``spread[0]`` receives the
    largest, over the filters, of sum_{p, c} |upk| * acol[p] over the smaller of the sums
    of |w| without the first or without the last tap (_ops._WINOGRAD_MAX_SPREAD).

    One loop in C: numpy's product and transposed copy took 0.6 ms per call (C2)."""
    cdef Py_ssize_t groups = w.shape[0], nout = w.shape[1], nin = w.shape[2]
    cdef Py_ssize_t ntaps = w.shape[3], fbs = upk.shape[4], g, fb, p, c, f, k, o
    cdef floating acc
    cdef bint measure = acol is not None and spread is not None
    cdef double tw[8]
    cdef double first[8]
    cdef double last[8]
    cdef double worst = 0, den, a
    if fbs > 8:     # (the per-filter sums below hold 8)
        raise ValueError(f"pack_winograd_weights: blocks of at most 8 filters, got {fbs}")
    with nogil:
        for g in range(groups):
            for fb in range(upk.shape[1]):
                for f in range(8):
                    tw[f] = 0
                    first[f] = 0
                    last[f] = 0
                for p in range(upk.shape[2]):
                    for c in range(nin):
                        for f in range(fbs):
                            o = fb * fbs + f
                            acc = 0
                            if o < nout:
                                for k in range(ntaps):
                                    acc = acc + gm[p, k] * w[g, o, c, k]
                                    if measure and p == 0:
                                        # the sums without the first and without the
                                        # last tap, each of its own terms (no cancellation)
                                        a = fabs(w[g, o, c, k])
                                        if k > 0:
                                            first[f] += a
                                        if k < ntaps - 1:
                                            last[f] += a
                                if measure:
                                    tw[f] += fabs(acc) * acol[p]
                            upk[g, fb, p, c, f] = acc
                if measure:
                    for f in range(min(fbs, nout - fb * fbs)):
                        den = min(first[f], last[f])
                        if tw[f] > worst * den:
                            worst = tw[f] / den if den > 0 else INFINITY
        if measure:
            spread[0] = worst


cdef double _wino_job(Py_ssize_t job, const Wino* w, const floating* vol, const floating* upk,
                      const floating* bias, const floating* bt, const floating* at,
                      floating* y, floating* work) noexcept nogil:
    """One job of conv_winograd: a block of tiles of one group of one image, every filter
    (``bias`` NULL for none).  Returns 0, or NaN if an output is not finite."""
    cdef Py_ssize_t g = job // w.nblk, t0 = job % w.nblk * w.blk
    cdef Py_ssize_t cg = w.cg, blk = w.blk, fbs = w.fbs, m = w.m, dil = w.dil
    cdef Py_ssize_t pstride = fbs * blk, r, c, i, k, fb, f, nf
    cdef floating* v = work                       # [residue, point, channel, tile]
    cdef floating* mm = v + dil * 8 * cg * blk      # [residue, point, filter, tile]
    cdef floating* z = mm + dil * 8 * fbs * blk     # [phase, filter, tile]
    cdef floating zeros[8]
    cdef Py_ssize_t seg[4]
    cdef const floating* rows[8]
    cdef const floating* vc
    cdef Py_ssize_t off0 = 0
    cdef double bad = 0
    cdef mlayers_runs runs
    memset(zeros, 0, sizeof(zeros))
    # input i of tile u of residue r is x[S*u + r + dil*i - P]: row r + dil*(i % m) of the
    # volume, i // m positions on
    for r in range(dil):
        for c in range(cg):
            vc = vol + (g * cg + c) * w.vstride + t0
            for i in range(8):
                rows[i] = vc + (r + dil * (i % m)) * w.phlen + i // m
            _wino_in(v + (r * 8 * cg + c) * blk, cg * blk, rows, bt, blk)
    seg[0] = 0
    seg[1] = w.nph * t0
    seg[2] = min(w.nph * blk, w.yn - w.nph * t0)
    seg[3] = 0
    runs.src = z
    runs.ld = blk
    runs.yplane = w.yn
    runs.s = w.nph
    runs.pstride = pstride
    runs.nseg = 1
    runs.seg = seg
    runs.nf = 0
    runs.wino = False      # (this Winograd's output transform is wino_out's, not the stores')
    for fb in range(w.nfb):
        # the elementwise products, summed over channels: a 1x1 convolution per point;
        # the first also stores the previous filter block's outputs (the stores wait on
        # memory, the multiply-adds leave the load and store ports idle)
        for k in range(dil * 8):
            _direct_block(fbs, mm + k * pstride, v + k * cg * blk, blk, cg, &off0, 1,
                          upk + ((g * w.nfb + fb) * 8 + k % 8) * cg * fbs, zeros, 0,
                          &runs if k == 0 else NULL)
        nf = min(fbs, w.fg - fb * fbs)
        for f in range(nf):
            for r in range(dil):
                # output j of residue r is phase r + dil*j of the tile
                bad += _wino_out(z + r * pstride + f * blk, dil * pstride,
                                 mm + r * 8 * pstride + f * blk, pstride, at, m,
                                 0 if bias == NULL else bias[g * w.fg + fb * fbs + f], blk)
        runs.y = y + (g * w.fg + fb * fbs) * w.yn
        runs.nf = nf
    if floating is float:
        store_runs_f(&runs)
    else:
        store_runs_d(&runs)
    return bad


def conv_winograd(const floating[:, :, ::1] x, const floating[:, :, :, :, ::1] upk,
                  const floating[::1] bias, floating[:, :, ::1] y, Py_ssize_t dil,
                  Py_ssize_t pad, const floating[:, ::1] bt, const floating[:, ::1] at,
                  int nthreads):
    """A stride-1 one-dimensional convolution by Winograd's minimal filtering F(m, K) on 8
    points (m = 9 - K): 8 multiplications for m outputs of a K-tap filter, not m*K.
    Returns False, with y incomplete, if an output is not finite (then the caller
    recomputes it by the direct kernel, which gives IEEE arithmetic on the real terms).

    ``x[n, c, :]`` in, ``y[n, f, :]`` out, dilation ``dil``, padding ``pad`` before (after:
    whatever y's length implies).  The outputs of residue r = o % dil are a dilation-1
    convolution of the inputs x[r + dil*i - pad], cut into tiles of m outputs; a tile's 8
    inputs are transformed by ``bt`` (8 x 8), multiplied point by point with the
    transformed weights ``upk[g, fb, point, c, f]`` (pack_winograd_weights) and
    summed over channels by the direct kernel's register blocks, then transformed back by
    ``at`` (m x 8).  Each image's input is first split into S = dil*m phases, so that the
    8 inputs of consecutive tiles are 8 contiguous rows; the tiles of all residues of a
    block are stored together, S outputs per tile, interleaved.  Threads take whole
    images while at least one is left for each, then share the blocks of the rest.
    """
    cdef Py_ssize_t n_img = x.shape[0], nch = x.shape[1], groups = upk.shape[0]
    cdef Wino w
    w.nfb = upk.shape[1]
    w.cg = upk.shape[3]
    w.fbs = upk.shape[4]
    w.fg = y.shape[1] // groups
    w.m = at.shape[0]
    w.dil = dil
    w.nph = dil * w.m
    w.yn = y.shape[2]
    w.blk = (4 if w.fbs == 6 else 3) * (mlayers_vbytes() // sizeof(floating))
    w.nblk = (w.yn + w.nph * w.blk - 1) // (w.nph * w.blk)
    # the last tile reads 7 // m positions past its first
    w.phlen = w.nblk * w.blk + 7 // w.m
    w.vstride = _lines(w.nph * w.phlen, sizeof(floating))
    cdef Py_ssize_t per_image = nch * w.vstride
    cdef Py_ssize_t wstride = _lines(w.dil * 8 * (w.cg + w.fbs) * w.blk + w.nph * w.fbs * w.blk,
                                     sizeof(floating))
    cdef Py_ssize_t njobs = groups * w.nblk, n_own = n_img // nthreads * nthreads \
        if nthreads > 1 else 0
    cdef Py_ssize_t n, c, job, tid
    cdef floating* vols = NULL
    cdef floating* work = NULL
    cdef double* bad = <double*>calloc(nthreads, sizeof(double))
    cdef Py_ssize_t* bounds = NULL
    cdef double total = 0
    cdef const floating* bp = &bias[0] if bias.shape[0] else NULL
    try:
        if bad == NULL:
            raise MemoryError("mlayers: cannot allocate the convolution work buffer")
        vols = _thread_buffers(per_image, nthreads, <floating>0)
        work = _thread_buffers(wstride, nthreads, <floating>0)
        bounds = _phase_bounds(x.shape[2], w.nph, pad, w.nph, w.phlen)
    except MemoryError:
        free(bad)
        free(vols)
        free(work)
        raise
    with nogil:
        for n in prange(n_own, num_threads=nthreads, schedule='dynamic'):
            tid = threadid()
            for c in range(nch):
                _split_row(vols + tid * per_image + c * w.vstride, w.phlen, w.nph, w.phlen,
                           &x[n, c, 0], w.nph, pad, bounds)
            for job in range(njobs):
                bad[tid] += _wino_job(job, &w, vols + tid * per_image, &upk[0, 0, 0, 0, 0],
                                      bp, &bt[0, 0],
                                      &at[0, 0], &y[n, 0, 0], work + tid * wstride)
        for n in range(n_own, n_img):
            for c in prange(nch, num_threads=nthreads, schedule='static'):
                _split_row(vols + c * w.vstride, w.phlen, w.nph, w.phlen, &x[n, c, 0],
                           w.nph, pad, bounds)
            for job in prange(njobs, num_threads=nthreads, schedule='dynamic'):
                tid = threadid()
                bad[tid] += _wino_job(job, &w, vols, &upk[0, 0, 0, 0, 0],
                                      bp, &bt[0, 0],
                                      &at[0, 0], &y[n, 0, 0], work + tid * wstride)
    for tid in range(nthreads):
        total += bad[tid]
    free(bad)
    free(vols)
    free(work)
    free(bounds)
    return total == 0


def pack_winograd2d_weights(const floating[:, :, :, :] w, floating[:, ::1] u):
    """conv_winograd2d's weights from ``w[f, c, r, s]`` (3 x 3 taps, any strides):
    u[4a + b, f*C + c] = (G w[f, c] G^T)[a][b], G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1],
    computed in double and rounded once (u's rows may be longer than F*C: rows a multiple
    of 4 KiB apart would share cache sets).  Returns the largest, over the filters, of

        sum |u[:, f, :]| / (the least of sum |w[f, :, 2 x 2 corner]| over the 4 corners)

    (Inf where that is 0, NaN if a weight is not finite): the size of the values F(2 x 2,
    3 x 3) rounds, over that of the terms an output in a corner of a padded plane sees
    (_ops._WINOGRAD2D_MAX_SPREAD).  One loop in C, on the per-call path."""
    cdef Py_ssize_t nf = w.shape[0], nch = w.shape[1], f, c, r, a, b, ustride = u.shape[1]
    cdef double g[3][3]
    cdef double m[3][3]
    cdef double h[4][3]
    cdef double t, t2, tw, den, worst = 0
    cdef double corner[4]
    cdef double row[4]
    cdef floating* up
    cdef bint finite = True
    if w.shape[2] != 3 or w.shape[3] != 3 or u.shape[0] != 16 or u.shape[1] < nf * nch:
        raise ValueError("pack_winograd2d_weights: w must be F x C x 3 x 3 and u 16 x F*C")
    with nogil:
        for f in range(nf):
            tw = 0
            for a in range(4):
                corner[a] = 0
            for c in range(nch):
                up = &u[0, f * nch + c]
                for r in range(3):
                    for b in range(3):
                        g[r][b] = w[f, c, r, b]
                        m[r][b] = fabs(g[r][b])
                # (one test per pair: a sum of the nine is not finite if one is not)
                t = (((g[0][0] + g[0][1]) + (g[0][2] + g[1][0]))
                     + ((g[1][1] + g[1][2]) + (g[2][0] + g[2][1]))) + g[2][2]
                finite = finite & (t - t == 0)
                corner[0] += (m[0][0] + m[0][1]) + (m[1][0] + m[1][1])
                corner[1] += (m[0][1] + m[0][2]) + (m[1][1] + m[1][2])
                corner[2] += (m[1][0] + m[1][1]) + (m[2][0] + m[2][1])
                corner[3] += (m[1][1] + m[1][2]) + (m[2][1] + m[2][2])
                # h = G g (rows), then (h G^T)[a][b]
                for b in range(3):
                    h[0][b] = g[0][b]
                    h[1][b] = 0.5 * (g[0][b] + g[1][b] + g[2][b])
                    h[2][b] = 0.5 * (g[0][b] - g[1][b] + g[2][b])
                    h[3][b] = g[2][b]
                for a in range(4):
                    t = 0.5 * (h[a][0] + h[a][1] + h[a][2])
                    t2 = 0.5 * (h[a][0] - h[a][1] + h[a][2])
                    up[4 * a * ustride] = <floating>h[a][0]
                    up[(4 * a + 1) * ustride] = <floating>t
                    up[(4 * a + 2) * ustride] = <floating>t2
                    up[(4 * a + 3) * ustride] = <floating>h[a][2]
                    row[a] = (fabs(h[a][0]) + fabs(t)) + (fabs(t2) + fabs(h[a][2]))
                # (summed as a tree, one term per pair in the filter's running sum: a chain
                # of 16 dependent additions per pair was the loop's cost)
                tw += (row[0] + row[1]) + (row[2] + row[3])
            den = min(min(corner[0], corner[1]), min(corner[2], corner[3]))
            if tw > worst * den:
                worst = tw / den if den > 0 else INFINITY
    return worst if finite else NAN


cdef inline void _w22_in_image(const floating* xn, Py_ssize_t nch, Py_ssize_t ni0,
                               Py_ssize_t ni1, Py_ssize_t r0, Py_ssize_t r1, floating* pp,
                               Py_ssize_t ld, Py_ssize_t pad0, Py_ssize_t pad1, floating* v,
                               Py_ssize_t cstride, Py_ssize_t vs, Py_ssize_t tp,
                               Py_ssize_t tq) noexcept nogil:
    # an image's channels (planes of ni0 x ni1 at xn, their r0 x r1 corner copied into the
    # zero-padded plane pp) transformed by w22_in: channel c's tiles at v + c*cstride
    cdef Py_ssize_t c, r
    for c in range(nch):
        _copy_rows(pp + pad0 * ld + pad1, ld, xn + c * ni0 * ni1, ni1, r0, r1, False)
        if floating is float:
            w22_in_f(v + c * cstride, vs, pp, ld, tp, tq)
        else:
            w22_in_d(v + c * cstride, vs, pp, ld, tp, tq)


cdef struct W22:
    # the geometry of F(2 x 2, 3 x 3)'s jobs (conv_winograd2d, its weight gradient): tp x tq
    # tiles an image, whole images a job (nb of them, about chunk_tiles tiles), a padded
    # plane of (2 tp + 2) x ld values holding an input plane's r0 x r1 corner at (pad0,
    # pad1)
    Py_ssize_t n_img, nch, ni0, ni1, tp, tq, timg, ld, plane, nb, njobs, r0, r1, pad0, pad1


cdef W22 _w22_geometry(Py_ssize_t n_img, Py_ssize_t nch, Py_ssize_t ni0, Py_ssize_t ni1,
                       Py_ssize_t no0, Py_ssize_t no1, Py_ssize_t pad0, Py_ssize_t pad1,
                       Py_ssize_t chunk_tiles) noexcept:
    cdef W22 g
    g.n_img, g.nch, g.ni0, g.ni1, g.pad0, g.pad1 = n_img, nch, ni0, ni1, pad0, pad1
    g.tp, g.tq = (no0 + 1) // 2, (no1 + 1) // 2
    g.timg = g.tp * g.tq
    g.ld = 2 * g.tq + 2
    g.plane = (2 * g.tp + 2) * g.ld
    g.nb = max(1, min(n_img, chunk_tiles // max(g.timg, 1)))
    g.njobs = (n_img + g.nb - 1) // g.nb
    g.r0, g.r1 = min(ni0, 2 * g.tp + 2 - pad0), min(ni1, g.ld - pad1)
    return g


cdef struct W22Job:
    # a job's first image, image and tile counts, and its 16 matrices' stride
    Py_ssize_t n0, nimg, nt, vs


cdef inline W22Job _w22_job_input(const W22* g, const floating* x, Py_ssize_t job,
                                  Py_ssize_t extra, floating* vv,
                                  floating* pp) noexcept nogil:
    # The job's images transformed into its 16 C x tiles matrices at vv, vs apart (``extra``
    # more than their size); pp: the padded plane, zeroed here
    cdef W22Job j
    cdef Py_ssize_t k
    j.n0 = job * g.nb
    j.nimg = min(g.nb, g.n_img - j.n0)
    j.nt = j.nimg * g.timg
    j.vs = g.nch * j.nt + extra
    memset(pp, 0, g.plane * sizeof(floating))
    for k in range(j.nimg):
        _w22_in_image(x + (j.n0 + k) * g.nch * g.ni0 * g.ni1, g.nch, g.ni0, g.ni1, g.r0,
                      g.r1, pp, g.ld, g.pad0, g.pad1, vv + k * g.timg, j.nt, j.vs, g.tp, g.tq)
    return j


def conv_winograd2d(const floating[:, :, :, :, ::1] x, const floating[:, ::1] u,
                    const floating[::1] bias, floating[:, :, :, :, ::1] y, Py_ssize_t pad0,
                    Py_ssize_t pad1, Py_ssize_t chunk_tiles, Py_ssize_t kblock, int nthreads,
                    bint rectify=False, const floating[:, :, :, :, ::1] residual=None):
    """A 3 x 3, stride-1 convolution of planes by Winograd's F(2 x 2, 3 x 3): 16
    products per 2 x 2 outputs instead of 36, the sums over channels by gemm.  Returns
    False, with y incomplete, if an output is not finite (the caller then recomputes it by
    another kernel: the transforms can turn Inf into Inf - Inf = NaN).

    ``x[n, c, 0, :, :]`` in, padded by ``pad0``/``pad1`` zeros before each dimension (after:
    what y's size implies); ``u[k, f*C + c]`` the transformed weights (G g G^T)[a][b] at
    k = 4a + b (pack_winograd2d_weights); ``y[n, f, 0, :, :]`` out, + ``bias`` (length 0:
    none), plus ``residual`` (y's shape; a residual block's addition, its sums) when given,
    ``rectify``: relu's values.  A job is a group of whole images, about
    ``chunk_tiles`` tiles: their channels' tiles are transformed (w22_in) into 16 matrices
    of C x tiles, multiplied by the 16 F x C matrices of u (gemm on the job's thread, the
    sums over channels in blocks of ``kblock`` and groups of them, _gemm_kb3) and
    transformed back (w22_out), all in the thread's buffers.
    """
    cdef Py_ssize_t n_img = x.shape[0], nch = x.shape[1], nf = y.shape[1]
    cdef Py_ssize_t no0 = y.shape[3], no1 = y.shape[4]
    cdef W22 g = _w22_geometry(n_img, nch, x.shape[3], x.shape[4], no0, no1, pad0, pad1,
                               chunk_tiles)
    cdef Py_ssize_t tp = g.tp, tq = g.tq, timg = g.timg, tmax = g.nb * timg
    cdef bint whole = no0 % 2 == 0 and no1 % 2 == 0
    # (the 16 matrices' strides are a cache line more than their size: a multiple of
    # 4 KiB would put the 16 streams of the transforms into the same cache sets)
    cdef Py_ssize_t vs, ms, extra = 64 // sizeof(floating)
    # (per thread: the padded plane, then the 16 V and M matrices and the output scratch)
    cdef Py_ssize_t pl = _lines(g.plane, sizeof(floating))
    cdef Py_ssize_t stride = pl + _lines(16 * ((nch + nf) * tmax + 2 * extra) + 8 * timg
                                         + nf * tmax, sizeof(floating))
    cdef Py_ssize_t job, n0, nimg, nt, k, f, i
    cdef W22Job jb
    cdef floating* vv
    cdef floating* mm
    cdef floating* pp
    cdef floating* zs
    cdef floating* zt
    cdef floating bv
    cdef const floating* bp = &bias[0] if bias.shape[0] else NULL
    cdef const floating* rp = NULL
    cdef const floating* rk
    cdef int prev
    cdef Py_ssize_t fails = 0
    if u.shape[0] != 16 or u.shape[1] < nf * nch or x.shape[2] != 1 \
            or y.shape[2] != 1 or y.shape[0] != n_img:
        raise ValueError("conv_winograd2d: the shapes of x, u and y do not agree")
    if not (0 <= pad0 <= 2 and 0 <= pad1 <= 2 and no0 > 0 and no1 > 0 and g.ni0 > 0
            and g.ni1 > 0 and nch > 0 and kblock > 0 and bias.shape[0] in (0, nf)):
        raise ValueError("conv_winograd2d: padding of 0 to 2, nonempty planes and channels, "
                         "a positive block and a bias of 0 or F values expected")
    if residual is not None:
        if any(residual.shape[i] != y.shape[i] for i in range(5)):
            raise ValueError("conv_winograd2d: the residual must have y's shape")
        rp = &residual[0, 0, 0, 0, 0]
    cdef floating* buf = _thread_buffers(stride, nthreads, <floating>0)
    with nogil:
        prev = _blas_hold()
        for job in prange(g.njobs, num_threads=nthreads, schedule='dynamic'):
            pp = buf + threadid() * stride
            vv = pp + pl
            jb = _w22_job_input(&g, &x[0, 0, 0, 0, 0], job, extra, vv, pp)
            n0, nimg, nt, vs = jb.n0, jb.nimg, jb.nt, jb.vs
            ms = nf * nt + extra
            mm = vv + 16 * vs
            zs = mm + 16 * ms
            zt = zs + 4 * timg
            for i in range(16):
                # (row-major: the F x tiles products = u_i (F x C) times v_i (C x tiles))
                _gemm_kb3(False, False, <int>nf, <int>nt, <int>nch, &u[i, 0], <int>nch,
                          vv + i * vs, <int>nt, mm + i * ms, <int>nt, <int>kblock,
                          zt + 4 * timg)
            for k in range(nimg):
                for f in range(nf):
                    bv = bp[f] if bp != NULL else 0
                    # (this output plane's residual; odd sizes add it as they copy out)
                    rk = rp + ((n0 + k) * nf + f) * no0 * no1 if rp != NULL else NULL
                    if floating is float:
                        fails += 1 - w22_out_f(&y[n0 + k, f, 0, 0, 0] if whole else zs,
                                               no1 if whole else 2 * tq,
                                               mm + f * nt + k * timg, ms, bv,
                                               rectify and (whole or rk == NULL), tp, tq,
                                               zt, rk if whole else NULL)
                    else:
                        fails += 1 - w22_out_d(&y[n0 + k, f, 0, 0, 0] if whole else zs,
                                               no1 if whole else 2 * tq,
                                               mm + f * nt + k * timg, ms, bv,
                                               rectify and (whole or rk == NULL), tp, tq,
                                               zt, rk if whole else NULL)
                    if not whole:
                        _copy_rows(&y[n0 + k, f, 0, 0, 0], no1, zs, 2 * tq, no0, no1,
                                   rectify and rk != NULL, rk, no1)
        _blas_release(prev)
    free(buf)
    return fails == 0


cdef int _w22_weight(floating* dw, const floating* du, Py_ssize_t kstride) noexcept nogil:
    # dw[0 .. 8] (3 x 3) = G^T dU G in double, dU[k] = du[k*kstride]; returns 1 if a result
    # is not finite
    cdef double h[4][3]
    cdef Py_ssize_t a, r
    cdef int bad = 0
    # G = [1 0 0; .5 .5 .5; .5 -.5 .5; 0 0 1]
    for a in range(4):
        h[a][0] = (<double>du[4 * a * kstride]
                   + 0.5 * (<double>du[(4 * a + 1) * kstride] + du[(4 * a + 2) * kstride]))
        h[a][1] = 0.5 * (<double>du[(4 * a + 1) * kstride] - du[(4 * a + 2) * kstride])
        h[a][2] = (0.5 * (<double>du[(4 * a + 1) * kstride] + du[(4 * a + 2) * kstride])
                   + du[(4 * a + 3) * kstride])
    for r in range(3):
        dw[r] = <floating>(h[0][r] + 0.5 * (h[1][r] + h[2][r]))
        dw[3 + r] = <floating>(0.5 * (h[1][r] - h[2][r]))
        dw[6 + r] = <floating>(0.5 * (h[1][r] + h[2][r]) + h[3][r])
    for r in range(9):
        bad |= dw[r] - dw[r] != 0
    return bad


# Segments of conv_weight_grad_winograd2d (a fixed number: its bits are the same on any
# thread count)
DEF W22_SEGMENTS = 8
# Channels from which conv_weight_grad_winograd2d's products run in w22_gemm: interleaved
# against the BLAS calls, 1 thread, 32 images, 64 tiles a job: 8 x 8 x 64 -> 64 1.19-1.20x,
# 14 x 14 x 64 -> 64 1.19-1.20x, 8 x 8 x 128 -> 128 1.14-1.48x, 15 x 15 x 32 -> 64
# 1.24-1.25x, the same bits as OpenBLAS's (both sum a block's tiles in order); with 16 and
# 32 channels 0.88-1.01x and 1.0-1.4x, and OpenBLAS's sums differ there (more accurate).
DEF W22_DW_OWN = 64
W22_DW_OWN_CHANNELS = W22_DW_OWN


def conv_weight_grad_winograd2d(const floating[:, :, :, :, ::1] x,
                                const floating[:, :, :, :, ::1] dy,
                                floating[:, :, :, :, ::1] dw, Py_ssize_t pad0,
                                Py_ssize_t pad1, Py_ssize_t chunk_tiles, Py_ssize_t kblock,
                                int nthreads):
    """The weight gradient of conv_winograd2d's convolution: with V = B^T d B of each
    input tile and dM = A dY A^T of its 2 x 2 output gradients, dU[k] = sum over tiles of
    dM[k] V[k]^T (F x C, gemm per point k and job, the sums over tiles in blocks of
    ``kblock`` and groups of them, _gemm_kb3), and dw[f, c, 0] = G^T dU G (in double,
    rounded once).  Jobs as conv_winograd2d's; up to W22_SEGMENTS segments of consecutive
    jobs each sum theirs in a buffer of their own, added in order at the end (so the bits
    do not depend on the thread count).  Returns whether every gradient is finite (else dw
    is incomplete: the transforms can give Inf - Inf = NaN where the direct sums give
    Inf)."""
    cdef Py_ssize_t n_img = x.shape[0], nch = x.shape[1], nf = dy.shape[1]
    cdef Py_ssize_t no0 = dy.shape[3], no1 = dy.shape[4]
    cdef W22 g = _w22_geometry(n_img, nch, x.shape[3], x.shape[4], no0, no1, pad0, pad1,
                               chunk_tiles)
    cdef Py_ssize_t tp = g.tp, tq = g.tq, timg = g.timg, tmax = g.nb * timg
    cdef Py_ssize_t njobs = g.njobs, dplane = 4 * timg
    cdef Py_ssize_t vs, ds, extra = 64 // sizeof(floating)
    # (a segment's 16 F x C sums a cache line more than F*C apart: see conv_winograd2d)
    cdef Py_ssize_t nseg = min(njobs, W22_SEGMENTS), fc = nf * nch, ks = fc + extra
    # with W22_DW_OWN channels or more, V_k transposed (tiles x C) and the product by
    # w22_gemm (vectors of channels), not by a BLAS call that packs both operands again
    cdef bint own = nch >= W22_DW_OWN
    # (per thread: the padded plane, then the 16 V and dM matrices, the dY plane, a group's
    # sums and, for w22_gemm, one V transposed)
    cdef Py_ssize_t pl = _lines(g.plane, sizeof(floating))
    cdef Py_ssize_t stride = pl + _lines(16 * ((nch + nf) * tmax + 2 * extra) + dplane + fc
                                         + (nch * tmax if own else 0), sizeof(floating))
    cdef Py_ssize_t seg, job, n0, nimg, nt, k, c, f, i, sg
    cdef W22Job jb
    cdef floating* vv
    cdef floating* dd
    cdef floating* pp
    cdef floating* pd
    cdef floating* part
    cdef int prev
    cdef Py_ssize_t fails = 0
    if dy.shape[0] != n_img or x.shape[2] != 1 or dy.shape[2] != 1 or dw.shape[0] != nf \
            or dw.shape[1] != nch or dw.shape[2] != 1 or dw.shape[3] != 3 or dw.shape[4] != 3:
        raise ValueError("conv_weight_grad_winograd2d: the shapes of x, dy and dw do not agree")
    if not (0 <= pad0 <= 2 and 0 <= pad1 <= 2 and no0 > 0 and no1 > 0 and g.ni0 > 0
            and g.ni1 > 0 and n_img > 0 and kblock > 0):
        raise ValueError("conv_weight_grad_winograd2d: padding of 0 to 2, nonempty planes "
                         "and batch and a positive block expected")
    cdef floating* buf = _thread_buffers(stride, nthreads, <floating>0)
    cdef floating* parts
    try:
        parts = _thread_buffers(16 * ks, nseg, <floating>0)
    except MemoryError:
        free(buf)
        raise
    with nogil:
        prev = _blas_hold()
        for seg in prange(nseg, num_threads=nthreads, schedule='dynamic'):
            pp = buf + threadid() * stride
            vv = pp + pl
            part = parts + seg * 16 * ks
            for job in range(seg * njobs // nseg, (seg + 1) * njobs // nseg):
                jb = _w22_job_input(&g, &x[0, 0, 0, 0, 0], job, extra, vv, pp)
                n0, nimg, nt, vs = jb.n0, jb.nimg, jb.nt, jb.vs
                ds = nf * nt + extra
                dd = vv + 16 * vs
                pd = dd + 16 * ds
                # (odd sizes leave a column and a row of the dY tiles' plane zero)
                memset(pd, 0, dplane * sizeof(floating))
                for k in range(nimg):
                    for f in range(nf):
                        _copy_rows(pd, 2 * tq, &dy[n0 + k, f, 0, 0, 0], no1, no0, no1, False)
                        if floating is float:
                            w22_dy_f(dd + f * nt + k * timg, ds, pd, 2 * tq, tp, tq)
                        else:
                            w22_dy_d(dd + f * nt + k * timg, ds, pd, 2 * tq, tp, tq)
                # part_k (F x C) (+)= dM_k (F x tiles) V_k^T, the tiles in blocks and groups
                for i in range(16):
                    if own:
                        _transpose(vv + i * vs, nch, nt, nt, pd + dplane + fc, nch)
                        _gemm_kb3(False, job > seg * njobs // nseg, <int>nf, <int>nch,
                                  <int>nt, dd + i * ds, <int>nt, pd + dplane + fc, <int>nch,
                                  part + i * ks, <int>nch, <int>kblock, pd + dplane)
                    else:
                        _gemm_kb3(True, job > seg * njobs // nseg, <int>nf, <int>nch,
                                  <int>nt, dd + i * ds, <int>nt, vv + i * vs, <int>nt,
                                  part + i * ks, <int>nch, <int>kblock, pd + dplane)
        _blas_release(prev)
        # the segments' sums added in order, into the first (elementwise: any split)
        for i in prange(16, num_threads=nthreads, schedule='static'):
            for sg in range(1, nseg):
                _add_to(parts + i * ks, parts + sg * 16 * ks + i * ks, fc)
        for f in prange(nf, num_threads=nthreads, schedule='static'):
            for c in range(nch):
                fails += _w22_weight(&dw[f, c, 0, 0, 0], parts + f * nch + c, ks)
    free(buf)
    free(parts)
    return fails == 0


cdef inline Py_ssize_t _grid_flat(Py_ssize_t g0, Py_ssize_t g1, Py_ssize_t g2, Py_ssize_t m1,
                                  Py_ssize_t m2) noexcept nogil:
    return (g0 * m1 + g1) * m2 + g2


cdef inline Py_ssize_t _volume_size(const Py_ssize_t* v) noexcept nogil:
    # elements of one phase volume: phases x phase extents, and the end of the last row
    # (rows overlap: v[11] is their stride, v[12] their length)
    return v[6] * v[7] * v[8] * v[9] * v[10] * v[11] + v[12] - v[11]


cdef inline Py_ssize_t _grid_length(const Py_ssize_t* v, Py_ssize_t o0, Py_ssize_t o1,
                                    Py_ssize_t o2, Py_ssize_t lanes) noexcept nogil:
    # grid positions up to the last output, rounded up to whole vectors (zeros past it)
    cdef Py_ssize_t q = ((o0 - 1) * v[10] + o1 - 1) * v[11] + o2
    return (q + lanes - 1) // lanes * lanes


cdef void _to_grid(const floating* dyc, Py_ssize_t o0, Py_ssize_t o1, Py_ssize_t o2,
                   const Py_ssize_t* v, floating* grid) noexcept nogil:
    """One channel of the output gradient onto the grid (its gaps are left as they are):
    rows by _copy_rows' vectors, not a memcpy call per row."""
    cdef Py_ssize_t g0
    for g0 in range(o0):
        _copy_rows(grid + g0 * v[10] * v[11], v[11], dyc + g0 * o1 * o2, o2, o1, o2, False)


cdef void _build_volumes(const floating* x, Py_ssize_t nvol, Py_ssize_t i0, Py_ssize_t i1,
                         Py_ssize_t i2, const Py_ssize_t* v, const Py_ssize_t* bounds,
                         Py_ssize_t cstride, floating* vols, int nthreads,
                         floating* scratch=NULL, Py_ssize_t sstride=0) noexcept nogil:
    """The phase volumes of ``nvol`` consecutive input channels, ``cstride`` apart
    (Winograd's if ``scratch``: each thread's is ``sstride`` apart)."""
    cdef Py_ssize_t c
    for c in prange(nvol, num_threads=nthreads, schedule='static'):
        _phase_volume(x + c * i0 * i1 * i2, i0, i1, i2, v, bounds, cstride, vols + c * cstride,
                      scratch + threadid() * sstride if scratch != NULL else NULL)


cdef Py_ssize_t* _volume_bounds(Py_ssize_t i2, const Py_ssize_t[::1] v) except NULL:
    # the innermost dimension's phase bounds for _phase_volume
    return _phase_bounds(i2, v[2], v[5], v[8], v[12])


cdef void _phase_volume(const floating* xc, Py_ssize_t i0, Py_ssize_t i1, Py_ssize_t i2,
                        const Py_ssize_t* v, const Py_ssize_t* bounds, Py_ssize_t size,
                        floating* dst, floating* scratch=NULL) noexcept nogil:
    """dst[r0, r1, r2, m0, m1, m2] = x[S*m + r - P] per dimension (zero outside), then zeros
    up to ``size``.  ``v`` = [S0 S1 S2, P0 P1 P2, R0 R1 R2, M0 M1 M2, L]: rows of L values
    start M2 <= L apart, overlapping where both are zero (_ops._row_stride); ``bounds``
    from _volume_bounds.

    With ``scratch`` (2L + 2 values), the innermost dimension holds Winograd's F(2, 3)
    input transform instead (S2 = 2, R2 = 4, M2 = L): phase k of a row is u_k[j] of the
    padded row's d[2j .. 2j+3] (wino_rows), d[i] = x[i - P2]."""
    cdef Py_ssize_t r0, r1, m0, m1, a0, a1, k
    cdef Py_ssize_t stride2 = v[11], plane = v[9] * v[10] * stride2
    cdef Py_ssize_t ntile = v[12], ncopy = _clamp(2 * v[12] + 2 - v[5], 0, i2)
    cdef floating* row
    cdef const floating* src
    for r0 in range(v[6]):
        for r1 in range(v[7]):
            for m0 in range(v[9]):
                a0 = v[0] * m0 + r0 - v[3]
                for m1 in range(v[10]):
                    a1 = v[1] * m1 + r1 - v[4]
                    # every stride phase of one input row while it is in L1
                    row = dst + (r0 * v[7] + r1) * v[8] * plane + (m0 * v[10] + m1) * stride2
                    src = xc + (a0 * i1 + a1) * i2 if 0 <= a0 < i0 and 0 <= a1 < i1 else NULL
                    if scratch == NULL:
                        _split_row(row, plane, v[8], v[12], src, v[2], v[5], bounds)
                    elif src == NULL:
                        for k in range(4):
                            memset(row + k * plane, 0, ntile * sizeof(floating))
                    else:
                        memset(scratch, 0, (2 * ntile + 2) * sizeof(floating))
                        memcpy(scratch + v[5], src, ncopy * sizeof(floating))
                        _wino_rows(row, plane, ntile, scratch)
    row = dst + v[6] * v[7] * v[8] * plane
    memset(row, 0, (size - (row - dst)) * sizeof(floating))


cdef Py_ssize_t _grid_segments(Py_ssize_t q0, Py_ssize_t nq, const Py_ssize_t* ps,
                               Py_ssize_t m1, Py_ssize_t m2, Py_ssize_t y1, Py_ssize_t y2,
                               Py_ssize_t* seg) noexcept nogil:
    """Runs of grid positions q0 .. q0+nq-1 that the pass owns, with their outputs in y:
    seg[4i .. 4i+3] = (offset in the block, output index, outputs, first phase).

    With S = OSTRIDE[2] > 1, ``ps`` is phase 0 of the S passes stored together: grid
    position g gives the S outputs S*g + r + OSHIFT[2], r < S, of a row of y, and a run
    keeps those inside the row.  Computed once per block, used for every channel."""
    cdef Py_ssize_t q = q0, end = q0 + nq, g0, g1, g2, n = 0, t0, t1, row
    cdef Py_ssize_t lo2 = ps[PASS_LO + 2], hi2 = ps[PASS_HI + 2], s2 = ps[PASS_OSTRIDE + 2]
    g0 = q // (m1 * m2)
    g1 = (q // m2) % m1
    g2 = q % m2
    while q < end:
        if (g0 >= ps[PASS_LO] and g0 < ps[PASS_HI] and g1 >= ps[PASS_LO + 1]
                and g1 < ps[PASS_HI + 1] and g2 < hi2):
            if g2 < lo2:
                q += lo2 - g2
                g2 = lo2
                continue
            row = ((ps[PASS_OSTRIDE] * g0 + ps[PASS_OSHIFT]) * y1
                   + ps[PASS_OSTRIDE + 1] * g1 + ps[PASS_OSHIFT + 1]) * y2
            t0 = s2 * g2 + ps[PASS_OSHIFT + 2]
            t1 = min(y2, s2 * (g2 + min(hi2 - g2, end - q)) + ps[PASS_OSHIFT + 2])
            if t1 > max(t0, 0):
                seg[4 * n] = q - q0
                seg[4 * n + 1] = row + max(t0, 0)
                seg[4 * n + 2] = t1 - max(t0, 0)
                seg[4 * n + 3] = max(t0, 0) - t0
                n += 1
        q += m2 - g2               # on to the next row
        g2 = 0
        g1 += 1
        if g1 == m1:
            g1 = 0
            g0 += 1
    return n


DEF DW_CHANNELS = 16    # input channels per weight-gradient job


def dw_filter_block(Py_ssize_t fg):
    """Filters per register block of conv_weight_grad_direct (_simd.h dw_block: 6 x 4 or
    8 x 3 sums, the same bits): the one that costs less, counting the empty filter slots
    and 8 x 3's one more load per 24 multiply-adds (about 5 % per slot, measured: 16 and 32
    filters 7 % faster in 8 x 3 than in 6 x 4's 18 and 36 slots, 64 filters 3 % slower)."""
    return 8 if (fg + 7) // 8 * 8 * 21 < (fg + 5) // 6 * 6 * 20 else 6


def conv_weight_grad_direct(const floating[:, :, :, :, ::1] x,
                            const floating[:, :, :, :, ::1] dy, floating[:, :, :, :, ::1] dw,
                            const Py_ssize_t[::1] vol, const Py_ssize_t[::1] off,
                            Py_ssize_t batch, int nthreads):
    """dw[f, c, t] = sum_n sum_o dy[n, f, o] * x[n, c, o*S + k(t)*D - P], without im2col.

    ``x`` goes into the phase volumes of conv_direct's forward plan (``vol``, tap offsets
    ``off``) and ``dy`` onto the same grid, zero where the grid has no output, so every tap
    is a dot product of two long contiguous rows.  A job owns one register block of
    filters (dw_filter_block) x DW_CHANNELS channels of ``dw`` and sums the images in
    order, so the result does not depend on the thread count.  ``dw`` is overwritten.
    """
    cdef Py_ssize_t n_img = x.shape[0], nch = x.shape[1], cout = dw.shape[0], cg = dw.shape[1]
    cdef Py_ssize_t groups = nch // cg, fg = cout // groups, ktot = off.shape[0]
    cdef Py_ssize_t o0 = dy.shape[2], o1 = dy.shape[3], o2 = dy.shape[4]
    cdef Py_ssize_t lanes = mlayers_vbytes() // sizeof(floating)
    cdef Py_ssize_t q = _grid_length(&vol[0], o0, o1, o2, lanes)
    cdef Py_ssize_t cstride = _lines(_volume_size(&vol[0]) + lanes, sizeof(floating))
    cdef Py_ssize_t fbk = dw_filter_block(fg)
    cdef Py_ssize_t nfb = (fg + fbk - 1) // fbk, rows = nfb * fbk
    # channels per job: DW_CHANNELS, halved while the jobs are too few to keep every thread
    # busy (16 -> 16 channels: 2 filter blocks, so one channel block would make 2 jobs;
    # on 2 threads 4 blocks of 4 channels make 8).  Each dw value is the same dot products
    # summed over the images in order whatever the blocks.
    cdef Py_ssize_t cbs = DW_CHANNELS
    while cbs > 4 and groups * nfb * ((cg + cbs - 1) // cbs) < 3 * nthreads:
        cbs //= 2
    cdef Py_ssize_t ncb = (cg + cbs - 1) // cbs
    cdef Py_ssize_t njobs = groups * nfb * ncb, lda = cg * ktot
    cdef Py_ssize_t n0, nb, n, job, grp, fb, cb, i, f
    cdef floating* vols = NULL
    cdef floating* grid = NULL
    cdef floating* acc = NULL
    cdef Py_ssize_t* bounds = NULL
    try:
        vols = _thread_buffers(cstride, <int>(nch * batch), <floating>0)
        # zeroed below, on the threads: the grid's gaps and padding filters stay zero,
        # outputs are rewritten (calloc zeroed it on the calling thread while the others
        # waited: 14 x 14 x 8 -> 16, 128 images, ran 1.16x as fast on 2 threads as on 1)
        grid = <floating*>malloc(max(batch * groups * rows * q, 1) * sizeof(floating))
        acc = <floating*>calloc(groups * rows * lda, sizeof(floating))
        if grid == NULL or acc == NULL:
            raise MemoryError("mlayers: cannot allocate the convolution work buffer")
        bounds = _volume_bounds(x.shape[4], vol)
    except MemoryError:
        free(vols)
        free(grid)
        free(acc)
        raise
    with nogil:
        for i in prange(batch * groups * rows, num_threads=nthreads, schedule='static'):
            memset(grid + i * q, 0, q * sizeof(floating))
        n0 = 0
        while n0 < n_img:
            nb = min(batch, n_img - n0)
            _build_volumes(&x[n0, 0, 0, 0, 0], nb * nch, x.shape[2], x.shape[3], x.shape[4],
                           &vol[0], bounds, cstride, vols, nthreads)
            for i in prange(nb * groups * fg, num_threads=nthreads, schedule='static'):
                n = i // (groups * fg)
                grp = i // fg % groups
                f = i % fg
                _to_grid(&dy[n0 + n, grp * fg + f, 0, 0, 0], o0, o1, o2, &vol[0],
                         grid + ((n * groups + grp) * rows + f) * q)
            for job in prange(njobs, num_threads=nthreads, schedule='dynamic'):
                # consecutive jobs share their channels, which stay in L2 between them
                grp = job // (nfb * ncb)
                cb = job // nfb % ncb
                fb = job % nfb
                for n in range(nb):
                    _dw_block(fbk, acc + (grp * rows + fb * fbk) * lda + cb * cbs * ktot,
                              lda, grid + ((n * groups + grp) * rows + fb * fbk) * q, q,
                              vols + (n * nch + grp * cg + cb * cbs) * cstride,
                              cstride, min(cbs, cg - cb * cbs), &off[0], ktot, q)
            n0 += nb
        for grp in range(groups):
            memcpy(&dw[grp * fg, 0, 0, 0, 0], acc + grp * rows * lda,
                   fg * lda * sizeof(floating))
    free(vols)
    free(grid)
    free(acc)
    free(bounds)


def depthwise_weight_grad(const floating[:, :, :, :, ::1] x,
                          const floating[:, :, :, :, ::1] dy, floating[:, :, :, :, ::1] dw,
                          const Py_ssize_t[::1] vol, const Py_ssize_t[::1] off, int nthreads):
    """The weight gradient with one input channel per group (channel-wise convolution).

    As conv_weight_grad_direct, on a single channel: for each image, a filter's channel
    goes into its phase volume and the filter's output gradient onto the grid (both fit
    in L1), then one long dot product per tap adds to the filter's gradient.  A job owns
    a run of consecutive filters and takes them image by image, so it reads x in long
    contiguous stretches that the prefetchers follow (the problem is bound by reading x:
    one filter at a time through every image, 1.5x slower on G2).  Each filter sums its
    images in order, whatever the threads.  ``dw`` is overwritten.
    """
    cdef Py_ssize_t n_img = x.shape[0], nch = x.shape[1], cout = dw.shape[0]
    cdef Py_ssize_t fg = cout // nch, ktot = off.shape[0]
    # a few jobs per thread for balance, each as long as that allows; with several filters
    # per channel, up to a channel's filters a job (they share its volume: N1's first
    # convolution, one channel to 8 filters, built it 8 times per image)
    cdef Py_ssize_t per_job = max(1, cout // (4 * nthreads))
    if fg > 1:
        per_job = max(per_job, min(fg, (cout + nthreads - 1) // nthreads))
    cdef Py_ssize_t njobs = (cout + per_job - 1) // per_job
    cdef Py_ssize_t o0 = dy.shape[2], o1 = dy.shape[3], o2 = dy.shape[4]
    cdef Py_ssize_t lanes = mlayers_vbytes() // sizeof(floating)
    cdef Py_ssize_t q = _grid_length(&vol[0], o0, o1, o2, lanes)
    cdef Py_ssize_t cstride = _lines(_volume_size(&vol[0]) + lanes, sizeof(floating))
    cdef Py_ssize_t stride = cstride + _lines(q, sizeof(floating))
    cdef Py_ssize_t job, co, c0, c1, n, built
    cdef Py_ssize_t* bounds = _volume_bounds(x.shape[4], vol)
    cdef floating* work
    cdef floating* v
    cdef floating* grid
    try:
        work = _thread_buffers(stride, nthreads, <floating>0)
    except MemoryError:
        free(bounds)
        raise
    with nogil:
        for job in prange(njobs, num_threads=nthreads, schedule='dynamic'):
            v = work + threadid() * stride
            grid = v + cstride
            c0 = job * per_job
            c1 = min(cout, c0 + per_job)
            memset(grid, 0, q * sizeof(floating))
            memset(&dw[c0, 0, 0, 0, 0], 0, (c1 - c0) * ktot * sizeof(floating))
            for n in range(n_img):
                built = -1
                for co in range(c0, c1):
                    if co // fg != built:
                        built = co // fg
                        _phase_volume(&x[n, built, 0, 0, 0], x.shape[2], x.shape[3],
                                      x.shape[4], &vol[0], bounds, cstride, v)
                    _to_grid(&dy[n, co, 0, 0, 0], o0, o1, o2, &vol[0], grid)
                    _taps_dot(&dw[co, 0, 0, 0, 0], q, grid, v, &off[0], ktot)
    free(work)
    free(bounds)


# --------------------------------------------------------------------------- adjoint

def depthwise_adjoint(const floating[:, :, :, :, ::1] dy, const floating[:, ::1] wpk,
                      const floating[::1] bias, floating[:, :, :, :, ::1] dx,
                      const Py_ssize_t[::1] vol, const Py_ssize_t[:, ::1] passes,
                      const Py_ssize_t[::1] off, int nthreads):
    """dx = conv^T(dy) + bias with one input channel per group (channel-wise), by gathers.

    The passes of the direct adjoint plan: stride phase r of dx is a stride-1 convolution
    of dy (padded with zeros, ``vol``) with the taps of phase r.  A job owns one dx
    channel: it builds the padded volumes of the group's dy channels, computes each pass
    over the whole grid of a volume (taps_row: one long run, sums in registers), then
    interleaves the phases into each dx row (merge_row).  A scatter instead would add
    every tap into a padded plane: a load and a store per term, and scalar row tails.

    ``wpk[g, (pass, f, t)]`` holds group g's weights pass after pass; ``off`` the taps'
    offsets in a volume.  ``dx`` is overwritten; ``bias`` (length G, or 0) is added.
    """
    cdef Py_ssize_t n_img = dx.shape[0], groups = dx.shape[1], fg = dy.shape[1] // groups
    cdef Py_ssize_t npass = passes.shape[0], ntaps = off.shape[0]
    cdef Py_ssize_t s0 = passes[0, PASS_OSTRIDE], s1 = passes[0, PASS_OSTRIDE + 1]
    cdef Py_ssize_t s2 = passes[0, PASS_OSTRIDE + 2]
    # pass 0 is phase 0, whose output shift is minus the padding
    cdef Py_ssize_t p0 = -passes[0, PASS_OSHIFT], p1 = -passes[0, PASS_OSHIFT + 1]
    cdef Py_ssize_t p2 = -passes[0, PASS_OSHIFT + 2]
    cdef Py_ssize_t m1 = vol[10], m2 = vol[11]
    cdef Py_ssize_t cstride = _lines(_volume_size(&vol[0]), sizeof(floating))
    # one pass's outputs on the grid of a volume
    cdef Py_ssize_t gstride = _lines(vol[9] * m1 * m2, sizeof(floating))
    cdef Py_ssize_t stride = fg * cstride + npass * gstride
    cdef Py_ssize_t job, n, grp, f, t, k, a0, a1, q0, q1, pp
    cdef const Py_ssize_t* ps
    cdef floating* v
    cdef floating* out
    cdef Py_ssize_t* offs = <Py_ssize_t*>malloc(fg * ntaps * sizeof(Py_ssize_t))
    cdef Py_ssize_t* vbounds = NULL
    cdef Py_ssize_t* xbounds = NULL
    cdef floating* work = NULL
    if offs == NULL:
        raise MemoryError("mlayers: cannot allocate the convolution work buffer")
    # the taps of every filter of a group, in wpk's order: filter f reads its own volume
    k = 0
    for pp in range(npass):
        ps = &passes[pp, 0]
        for f in range(fg):
            for t in range(ps[PASS_NTAPS]):
                offs[k] = off[ps[PASS_TAP0] + t] + f * cstride
                k += 1
    try:
        vbounds = _volume_bounds(dy.shape[4], vol)
        xbounds = _phase_bounds(dx.shape[4], s2, p2, s2, m2)
        work = _thread_buffers(stride, nthreads, <floating>0)
    except MemoryError:
        free(offs)
        free(vbounds)
        free(xbounds)
        raise
    with nogil:
        for job in prange(n_img * groups, num_threads=nthreads, schedule='dynamic'):
            v = work + threadid() * stride
            out = v + fg * cstride
            n = job // groups
            grp = job % groups
            for f in range(fg):
                _phase_volume(&dy[n, grp * fg + f, 0, 0, 0], dy.shape[2], dy.shape[3],
                              dy.shape[4], &vol[0], vbounds, cstride, v + f * cstride)
            # each pass from its first grid position to its last (rows' ends included)
            for pp in range(npass):
                ps = &passes[pp, 0]
                if ps[PASS_HI] <= ps[PASS_LO] or ps[PASS_HI + 1] <= ps[PASS_LO + 1] \
                        or ps[PASS_HI + 2] <= 0:
                    continue
                q0 = _grid_flat(ps[PASS_LO], ps[PASS_LO + 1], 0, m1, m2)
                q1 = _grid_flat(ps[PASS_HI] - 1, ps[PASS_HI + 1] - 1, ps[PASS_HI + 2], m1, m2)
                _taps_row(out + pp * gstride + q0, q1 - q0, v + q0, offs + ps[PASS_TAP0] * fg,
                          &wpk[grp, 0] + ps[PASS_TAP0] * fg, ps[PASS_NTAPS] * fg, 0)
            # dx row (a0, a1) takes phase r2 from the grid row of pass (r0, r1, r2)
            for a0 in range(dx.shape[2]):
                for a1 in range(dx.shape[3]):
                    _merge_row(&dx[n, grp, a0, a1, 0], dx.shape[4],
                               out + (((a0 + p0) % s0 * s1 + (a1 + p1) % s1) * s2 * gstride
                                      + _grid_flat((a0 + p0) // s0, (a1 + p1) // s1, 0, m1,
                                                   m2)),
                               gstride, s2, s2, p2, xbounds,
                               bias[grp] if bias.shape[0] > 0 else 0)
    free(work)
    free(offs)
    free(vbounds)
    free(xbounds)


cdef inline Py_ssize_t _channel_blocks(Py_ssize_t parallel_jobs, Py_ssize_t nch) noexcept nogil:
    # Split channels only when images x groups give too few jobs; a function of the
    # geometry alone, so every thread count computes the same sums in the same order.
    cdef Py_ssize_t nb = (MIN_JOBS + parallel_jobs - 1) // parallel_jobs
    return _clamp(nb, 1, nch)


cdef void _adjoint_job_images(Py_ssize_t job, const floating* dy, const floating* w,
                              const floating* bp, floating* dx, const Geom* gp,
                              Py_ssize_t n_img, Py_ssize_t nb, Py_ssize_t groups,
                              Py_ssize_t cg, Py_ssize_t fg, floating* buf) noexcept nogil:
    # job ``job`` of conv_adjoint on small planes: one group of ``nb`` images (the last may
    # have fewer) of one group of channels: their dY side by side (buf: fg x nb*otot), one
    # product into their im2col matrices (after it: cg*ktot x nb*otot), each scattered back
    cdef Py_ssize_t grp = job % groups, n0 = job // groups * nb
    cdef Py_ssize_t m = min(nb, n_img - n0), ot = gp.otot, ncols = m * ot, i, f
    cdef Py_ssize_t rows = cg * gp.ktot, cout = groups * fg
    cdef floating* col = buf + fg * nb * ot
    cdef floating* dxb
    for i in range(m):
        for f in range(fg):
            memcpy(buf + f * ncols + i * ot, dy + ((n0 + i) * cout + grp * fg + f) * ot,
                   ot * sizeof(floating))
    # col[(c, k), t] = sum_f w[f, (c, k)] dy[f, t]
    _gemm_kb(True, <int>rows, <int>ncols, <int>fg, w + grp * fg * rows, <int>rows, buf,
             <int>ncols, <floating>0, col, <int>ncols)
    for i in range(m):
        dxb = dx + ((n0 + i) * groups + grp) * cg * gp.itot
        _fill_channels(dxb, bp + grp * cg if bp != NULL else NULL, cg, gp.itot, 0, gp.itot)
        _col2im(col + i * ot, cg, gp, 0, ot, dxb, ncols)


def conv_adjoint(const floating[:, :, :, :, ::1] dy, const floating[:, :, :, :, ::1] w,
                 const floating[::1] bias, floating[:, :, :, :, ::1] dx,
                 const Py_ssize_t[::1] geom, Py_ssize_t groups, int nthreads):
    """dx = conv^T(dy) + bias: the exact adjoint of conv_forward (the transposed convolution).

    ``dy`` has the shape of the convolution output, ``dx`` of its input.  ``dx`` is
    overwritten; ``bias`` (length G*Cg, or 0) is added per ``dx`` channel.
    """
    cdef Geom g = _geom(geom)
    cdef Py_ssize_t n_img = dy.shape[0], cout = w.shape[0], cg = w.shape[1]
    cdef Py_ssize_t fg = cout // groups
    cdef const floating* bp = &bias[0] if bias.shape[0] > 0 else NULL
    cdef int prev
    cdef Py_ssize_t nb = _channel_blocks(n_img * groups, cg)
    cdef Py_ssize_t cb = (cg + nb - 1) // nb
    nb = (cg + cb - 1) // cb
    cdef Py_ssize_t nt = tile_length(geom, cb * g.ktot, sizeof(floating))
    cdef Py_ssize_t njobs = n_img * groups * nb
    cdef bint pointwise = _is_pointwise(&g)
    cdef Py_ssize_t job, n, grp, blk, c0, ncb, t0, len_
    cdef floating* col
    cdef floating* dxb
    if cg == 1:
        if _depthwise(DW_ADJOINT, &dy[0, 0, 0, 0, 0], &w[0, 0, 0, 0, 0], bp,
                      &dx[0, 0, 0, 0, 0], &g, n_img, groups, fg, nthreads) < 0:
            raise MemoryError("mlayers: cannot allocate the convolution work buffer")
        return
    cdef Py_ssize_t stride = 0 if pointwise else _lines(cb * g.ktot * nt, sizeof(floating))
    # small planes: several images a product (_adjoint_job_images)
    cdef Py_ssize_t ni = (1 if pointwise or nt < g.otot else
                          _images_per_product(g.otot, n_img, cg * g.ktot + fg,
                                              sizeof(floating)))
    if ni > 1:
        njobs = (n_img + ni - 1) // ni * groups
        stride = _lines((cg * g.ktot + fg) * ni * g.otot, sizeof(floating))
    cdef floating* buf = _thread_buffers(stride, nthreads, <floating>0)
    with nogil:
        prev = _blas_hold()
        for job in prange(njobs, num_threads=nthreads, schedule='dynamic'):
            col = buf + threadid() * stride
            if ni > 1:
                _adjoint_job_images(job, &dy[0, 0, 0, 0, 0], &w[0, 0, 0, 0, 0], bp,
                                    &dx[0, 0, 0, 0, 0], &g, n_img, ni, groups, cg, fg, col)
                continue
            blk = job % nb
            grp = (job // nb) % groups
            n = job // (nb * groups)
            c0 = blk * cb
            ncb = min(cb, cg - c0)
            dxb = &dx[n, grp * cg + c0, 0, 0, 0]
            _fill_channels(dxb, bp + grp * cg + c0 if bp != NULL else NULL,
                           ncb, g.itot, 0, g.itot)
            t0 = 0
            while t0 < g.otot:
                len_ = min(nt, g.otot - t0)
                if pointwise:
                    # dx[c, t] += sum_f w[f, c] dy[f, t]
                    _gemm_kb(True, <int>ncb, <int>len_, <int>fg,
                             &w[grp * fg, c0, 0, 0, 0], <int>cg,
                             &dy[n, grp * fg, 0, 0, 0] + t0, <int>g.otot,
                             <floating>1, dxb + t0, <int>g.itot)
                else:
                    # col[(c, k), t] = sum_f w[f, (c, k)] dy[f, t]
                    _gemm_kb(True, <int>(ncb * g.ktot), <int>len_, <int>fg,
                             &w[grp * fg, c0, 0, 0, 0], <int>(cg * g.ktot),
                             &dy[n, grp * fg, 0, 0, 0] + t0, <int>g.otot,
                             <floating>0, col, <int>len_)
                    _col2im(col, ncb, &g, t0, len_, dxb, len_)
                t0 = t0 + len_
        _blas_release(prev)
    free(buf)


# --------------------------------------------------------------------------- weight gradient

def channel_sums(const floating[:, :, :, :, ::1] dy, floating[::1] db, int nthreads):
    """db[c] = the sum of dy[:, c] (the bias gradient), accumulated in double.

    One job per channel, images in order, so the bits do not depend on the thread count.
    """
    cdef Py_ssize_t c, n, plane = dy.shape[2] * dy.shape[3] * dy.shape[4]
    cdef double s
    with nogil:
        for c in prange(dy.shape[1], num_threads=nthreads, schedule='static'):
            s = 0
            for n in range(dy.shape[0]):
                s = s + _row_sum(&dy[n, c, 0, 0, 0], plane)
            db[c] = <floating>s


def conv_weight_grad(const floating[:, :, :, :, ::1] x, const floating[:, :, :, :, ::1] dy,
                     floating[:, :, :, :, ::1] dw, const Py_ssize_t[::1] geom,
                     Py_ssize_t groups, int nthreads):
    """dw[f, c, k] = sum_n sum_o dy[n, f, o] * x[n, c, o*S + k*D - P] (within groups).

    By im2col and gemm, for the problems conv_weight_grad_direct and depthwise_weight_grad
    leave (channel-wise convolutions go to the latter).  ``dw`` is overwritten.  Each job
    owns a block of ``dw`` and sums images and tiles in a fixed order, so the result does
    not depend on the thread count.
    """
    cdef Geom g = _geom(geom)
    cdef Py_ssize_t n_img = x.shape[0], cout = dw.shape[0], cg = dw.shape[1]
    cdef Py_ssize_t fg = cout // groups
    cdef int prev
    cdef Py_ssize_t nb = _channel_blocks(groups, cg)
    cdef Py_ssize_t cb = (cg + nb - 1) // nb
    nb = (cg + cb - 1) // cb
    cdef Py_ssize_t nt = tile_length(geom, cb * g.ktot, sizeof(floating))
    cdef bint pointwise = _is_pointwise(&g)
    cdef Py_ssize_t job, n, grp, blk, c0, ncb, t0, len_
    cdef floating* col
    cdef floating* dwb
    cdef const floating* xb
    cdef const floating* dyg
    cdef Py_ssize_t stride = 0 if pointwise else _lines(cb * g.ktot * nt, sizeof(floating))
    cdef floating* buf = _thread_buffers(stride, nthreads, <floating>0)
    with nogil:
        prev = _blas_hold()
        for job in prange(groups * nb, num_threads=nthreads, schedule='dynamic'):
            col = buf + threadid() * stride
            blk = job % nb
            grp = job // nb
            c0 = blk * cb
            ncb = min(cb, cg - c0)
            dwb = &dw[grp * fg, c0, 0, 0, 0]
            for n in range(n_img):
                xb = &x[n, grp * cg + c0, 0, 0, 0]
                dyg = &dy[n, grp * fg, 0, 0, 0]
                t0 = 0
                while t0 < g.otot:
                    len_ = min(nt, g.otot - t0)
                    # dw[f, (c, k)] += sum_t dy[f, t] col[(c, k), t]
                    if pointwise:
                        gemm(False, True, <int>fg, <int>ncb, <int>len_, <floating>1,
                             dyg + t0, <int>g.otot, xb + t0, <int>g.itot,
                             <floating>(1 if n > 0 or t0 > 0 else 0), dwb, <int>cg)
                    else:
                        _im2col(xb, ncb, &g, t0, len_, col, len_)
                        gemm(False, True, <int>fg, <int>(ncb * g.ktot), <int>len_,
                             <floating>1, dyg + t0, <int>g.otot, col, <int>len_,
                             <floating>(1 if n > 0 or t0 > 0 else 0), dwb,
                             <int>(cg * g.ktot))
                    t0 = t0 + len_
        _blas_release(prev)
    free(buf)


# --------------------------------------------------------------------------- channel-wise
#
# With one input channel per group, gemm would multiply one-row matrices.  Instead each job
# copies its input channel once into a zero-padded "plane" whose innermost rows are split
# into stride phases (row r holds positions r, r+S, r+2S, ...).  Every filter tap then reads
# a contiguous run of a phase row, and the C loops in _simd.h vectorise at full width.

cdef struct Plane:
    Py_ssize_t a0, a1, a2   # extents of the padded input the convolution actually reads
    Py_ssize_t nph          # stride phases kept: min(S2, a2), as taps never reach others
    Py_ssize_t len2         # length of one stride-phase row
    Py_ssize_t size         # elements in one plane


cdef Plane _plane(const Geom* g) noexcept nogil:
    cdef Plane p
    p.a0 = (g.o0 - 1) * g.s0 + (g.k0 - 1) * g.d0 + 1
    p.a1 = (g.o1 - 1) * g.s1 + (g.k1 - 1) * g.d1 + 1
    p.a2 = (g.o2 - 1) * g.s2 + (g.k2 - 1) * g.d2 + 1
    p.nph = min(g.s2, p.a2)
    p.len2 = (p.a2 + g.s2 - 1) // g.s2
    p.size = p.a0 * p.a1 * p.nph * p.len2
    return p


cdef void _build_plane(const floating* xc, const Geom* g, const Plane* pl,
                       const Py_ssize_t* bounds, floating* dst) noexcept nogil:
    """dst[a0, a1, r, m] = x[a0 - P0, a1 - P1, m*S2 + r - P2], zero outside x."""
    cdef Py_ssize_t a0, a1, i0, i1
    for a0 in range(pl.a0):
        i0 = a0 - g.p0
        for a1 in range(pl.a1):
            i1 = a1 - g.p1
            _split_row(dst + (a0 * pl.a1 + a1) * pl.nph * pl.len2, pl.len2, pl.nph, pl.len2,
                       xc + (i0 * g.i1 + i1) * g.i2
                       if 0 <= i0 < g.i0 and 0 <= i1 < g.i1 else NULL,
                       g.s2, g.p2, bounds)


cdef void _add_plane(const floating* src, const Geom* g, const Plane* pl,
                     const Py_ssize_t* bounds, floating b, floating* xc) noexcept nogil:
    """The adjoint of _build_plane, plus a constant: x = b + (padded plane -> input)."""
    cdef Py_ssize_t i0, i1, a0, a1
    cdef const floating* row
    for i0 in range(g.i0):
        for i1 in range(g.i1):
            a0 = i0 + g.p0
            a1 = i1 + g.p1
            row = src + (a0 * pl.a1 + a1) * pl.nph * pl.len2 if a0 < pl.a0 and a1 < pl.a1 \
                else NULL
            _merge_row(xc + (i0 * g.i1 + i1) * g.i2, g.i2, row, pl.len2, pl.nph, g.s2, g.p2,
                       bounds, b)


cdef Py_ssize_t* _tap_offsets(const Geom* g) noexcept nogil:
    """off[t]: where filter tap t = (k0, k1, k2) reads, relative to its output row's base
    (NULL when out of memory)."""
    cdef Plane pl = _plane(g)
    cdef Py_ssize_t* off = <Py_ssize_t*>malloc(g.ktot * sizeof(Py_ssize_t))
    cdef Py_ssize_t k0, k1, k2, q, t = 0
    if off == NULL:
        return NULL
    for k0 in range(g.k0):
        for k1 in range(g.k1):
            for k2 in range(g.k2):
                q = k2 * g.d2
                off[t] = ((k0 * g.d0 * pl.a1 + k1 * g.d1) * pl.nph + q % g.s2) * pl.len2 + q // g.s2
                t += 1
    return off


cdef inline Py_ssize_t _row_base(const Geom* g, const Plane* pl, Py_ssize_t o0,
                                 Py_ssize_t o1) noexcept nogil:
    # where output row (o0, o1) starts reading in the plane (tap offsets are added to it)
    return (o0 * g.s0 * pl.a1 + o1 * g.s1) * pl.nph * pl.len2


cdef inline Py_ssize_t _vector_ops(Py_ssize_t n, Py_ssize_t lanes) noexcept nogil:
    # what _taps_row spends on a run of n outputs: vectors, or scalars below one vector
    return (n + lanes - 1) // lanes if n >= lanes else n


cdef void _dw_forward_job(Py_ssize_t job, const floating* x, const floating* w,
                          const floating* bias, floating* y, const Geom* g, const Plane* pl,
                          const Py_ssize_t* off, const Py_ssize_t* bounds, Py_ssize_t groups,
                          Py_ssize_t fg, Py_ssize_t nshare, Py_ssize_t per, Py_ssize_t half,
                          Py_ssize_t r, Py_ssize_t nwide, Py_ssize_t pooled, bint wide,
                          bint rows_pool, bint rectify, bint pool,
                          floating* plane) noexcept nogil:
    # job ``job`` of _depthwise_forward: a share of one (image, group)'s filters (plane:
    # the thread's work area)
    cdef Py_ssize_t cout = groups * fg
    cdef floating zeros[4]
    zeros[0] = zeros[1] = zeros[2] = zeros[3] = 0
    cdef floating* run = plane + half
    cdef floating* cmp = run + _dw_runs(fg) * half
    cdef Py_ssize_t n = job // (groups * nshare)
    cdef Py_ssize_t grp = job // nshare % groups
    cdef Py_ssize_t f0 = grp * fg + job % nshare * per
    cdef Py_ssize_t f1 = min(grp * fg + fg, f0 + per)
    cdef Py_ssize_t co, nf, o0, o1, k
    cdef floating* yc
    cdef const floating* bq
    if f0 < f1:
        _build_plane(x + (n * groups + grp) * g.itot, g, pl, bounds, plane)
    co = f0
    while co < f1:
        nf = 4 if f1 - co >= 4 else 1
        bq = bias + co if bias != NULL else zeros
        for o0 in range(g.o0):
            yc = y + ((n * cout + co) * g.o0 + o0) * g.o1 * g.o2
            if pool or wide:
                _taps_rows(run, half, nwide, plane + _row_base(g, pl, o0, 0), off,
                           w + co * g.ktot, g.ktot, bq, nf)
            for k in range(nf if pool or wide else 0):
                if pool and rows_pool:
                    # pooled as the pooling kernel pools it, from the run's rows (one
                    # plane of 2-D data: o0 is 0), rectified after (the same values);
                    # the last row's tail, never written, zeroed
                    memset(run + k * half + nwide, 0, (r - g.o2) * sizeof(floating))
                    if floating is float:
                        pool_max22_rows_f(run + k * half, y + (n * cout + co + k) * pooled,
                                          g.o1 // 2, g.o2 // 2, r // 2, rectify)
                    else:
                        pool_max22_rows_d(run + k * half, y + (n * cout + co + k) * pooled,
                                          g.o1 // 2, g.o2 // 2, r // 2, rectify)
                elif pool:
                    # (rows an odd number apart: first rectified into a compact plane)
                    _copy_rows(cmp, g.o2, run + k * half, r, g.o1, g.o2, rectify)
                    if floating is float:
                        pool_max22_exact_f(cmp, y + (n * cout + co + k) * pooled,
                                           g.o1 // 2, g.o2 // 2)
                    else:
                        pool_max22_exact_d(cmp, y + (n * cout + co + k) * pooled,
                                           g.o1 // 2, g.o2 // 2)
                else:
                    # (the rows out of the run rectified as they are copied)
                    _copy_rows(yc + k * g.otot, g.o2, run + k * half, r, g.o1, g.o2,
                               rectify)
            if not (pool or wide):
                for o1 in range(g.o1):
                    _taps_rows(yc + o1 * g.o2, g.otot, g.o2,
                               plane + _row_base(g, pl, o0, o1), off, w + co * g.ktot,
                               g.ktot, bq, nf)
        if rectify and not wide and not pool:
            _rectify(y + (n * cout + co) * g.otot, 1, 0, nf * g.otot)
        co += nf


cdef void _depthwise_forward(const floating* x, const floating* w, const floating* bias,
                             floating* y, const Geom* g, Py_ssize_t n_img, Py_ssize_t groups,
                             Py_ssize_t fg, int nthreads, floating* work,
                             const Py_ssize_t* off, const Py_ssize_t* bounds,
                             bint rectify, bint pool) noexcept nogil:
    # A job builds one padded plane of an (image, group) and runs a share of its filters
    # on it, four at a time where it can (_taps_rows: each input vector loaded once for
    # the four).  Consecutive output rows read the plane a fixed distance r apart, so a slab's
    # rows can run as one *wide* row of (o1 - 1) r + o2 outputs (the r - o2 between rows
    # are wasted) into a scratch run, then be copied out: short rows (N1's 28, 14 or 7
    # outputs on 16 lanes) otherwise end in overlapped or scalar tails and one call each.
    cdef Plane pl = _plane(g)
    cdef Py_ssize_t stride = _depthwise_work(g, sizeof(floating), fg)
    cdef Py_ssize_t half = _lines(pl.size, sizeof(floating))
    cdef Py_ssize_t job
    cdef Py_ssize_t lanes = mlayers_vbytes() // sizeof(floating)
    cdef Py_ssize_t r = g.s1 * pl.nph * pl.len2
    cdef Py_ssize_t nwide = (g.o1 - 1) * r + g.o2
    # (pooled planes: the rows out of a wide run into a compact plane, then pooled)
    cdef bint wide = g.o1 > 1 and (pool or
        _vector_ops(nwide, lanes) <= g.o1 * _vector_ops(g.o2, lanes))
    cdef Py_ssize_t pooled = (g.o1 // 2) * (g.o2 // 2)
    # (pooled where the run's rows lie: pairs of values, and the rows' full length read
    # within the run's room, which a stride above the filter's reach could exceed)
    cdef bint rows_pool = r % 2 == 0 and r <= POOL_PAIRS_BLOCK and g.o1 * r <= pl.size
    # filters split into shares only as far as needed to give every thread work
    cdef Py_ssize_t planes = n_img * groups
    cdef Py_ssize_t nshare = min(fg, max(1, (4 * nthreads + planes - 1) // planes))
    cdef Py_ssize_t per = (fg + nshare - 1) // nshare
    if fg >= 4:
        per = (per + 3) // 4 * 4    # (shares of whole blocks of four)
        nshare = (fg + per - 1) // per
    if planes * nshare == 1 or nthreads == 1:
        # (no OpenMP region, as _conv_forward)
        for job in range(planes * nshare):
            _dw_forward_job(job, x, w, bias, y, g, &pl, off, bounds, groups, fg, nshare, per,
                            half, r, nwide, pooled, wide, rows_pool, rectify, pool, work)
    else:
        for job in prange(planes * nshare, num_threads=nthreads, schedule='dynamic'):
            _dw_forward_job(job, x, w, bias, y, g, &pl, off, bounds, groups, fg, nshare, per,
                            half, r, nwide, pooled, wide, rows_pool, rectify, pool,
                            work + threadid() * stride)


cdef void _depthwise_adjoint(const floating* dy, const floating* w, const floating* bias,
                             floating* dx, const Geom* g, Py_ssize_t n_img, Py_ssize_t groups,
                             Py_ssize_t fg, int nthreads, floating* work,
                             const Py_ssize_t* off, const Py_ssize_t* bounds) noexcept nogil:
    # One job per (image, input channel): it owns that dx channel and sums its fg filters
    # into a padded plane, then folds the plane back onto the channel.
    cdef Plane pl = _plane(g)
    cdef Py_ssize_t stride = _depthwise_work(g, sizeof(floating), fg)
    cdef Py_ssize_t job, n, grp, f, co, o0, o1
    cdef floating* plane
    cdef floating* base
    cdef const floating* dyrow
    for job in prange(n_img * groups, num_threads=nthreads, schedule='dynamic'):
        plane = work + threadid() * stride
        n = job // groups
        grp = job % groups
        memset(plane, 0, pl.size * sizeof(floating))
        for f in range(fg):
            co = grp * fg + f
            for o0 in range(g.o0):
                for o1 in range(g.o1):
                    base = plane + _row_base(g, &pl, o0, o1)
                    dyrow = dy + ((n * groups * fg + co) * g.o0 * g.o1 + o0 * g.o1 + o1) * g.o2
                    _taps_scatter(base, off, g.o2, dyrow, w + co * g.ktot, g.ktot)
        _add_plane(plane, g, &pl, bounds, bias[grp] if bias != NULL else 0, dx + job * g.itot)


cdef inline Py_ssize_t _dw_runs(Py_ssize_t fg) noexcept nogil:
    # the forward's wide runs per thread: one per filter of a block (_taps_rows)
    return 4 if fg >= 4 else 1


cdef Py_ssize_t _depthwise_work(const Geom* g, Py_ssize_t itemsize, Py_ssize_t fg) noexcept nogil:
    # per thread: one padded plane, as much again for each of the forward's wide runs, and
    # an output plane (the rows to pool, with DW_POOL)
    cdef Plane pl = _plane(g)
    return ((1 + _dw_runs(fg)) * _lines(pl.size, itemsize)
            + _lines(g.o0 * g.o1 * g.o2, itemsize))


cdef int _depthwise(int op, const floating* a, const floating* b, const floating* bias,
                    floating* out, const Geom* g, Py_ssize_t n_img, Py_ssize_t groups,
                    Py_ssize_t fg, int nthreads) noexcept nogil:
    """Run one channel-wise kernel with its tap offsets and per-thread planes; -1 when
    out of memory.

    forward: a = x, b = w, out = y;  adjoint: a = dy, b = w, out = dx.
    """
    cdef Plane pl = _plane(g)
    cdef Py_ssize_t* off = _tap_offsets(g)
    cdef Py_ssize_t* bounds = _phase_bounds_c(g.i2, g.s2, g.p2, pl.nph, pl.len2)
    cdef floating* work = _thread_buffers_c(_depthwise_work(g, sizeof(floating), fg),
                                            nthreads, <floating>0)
    cdef int rc = 0
    if off == NULL or bounds == NULL or work == NULL:
        rc = -1
    elif op != DW_ADJOINT:
        _depthwise_forward(a, b, bias, out, g, n_img, groups, fg, nthreads, work, off,
                           bounds, op & ~DW_POOL == DW_FORWARD_RELU, op & DW_POOL != 0)
    else:
        _depthwise_adjoint(a, b, bias, out, g, n_img, groups, fg, nthreads, work, off,
                           bounds)
    free(work)
    free(off)
    free(bounds)
    return rc


# --------------------------------------------------------------------------- matmul

# edge of the square tiles _transpose copies at a time
DEF REVERSE_TILE = 16


def reverse_axes(const floating[::1] x, floating[::1] y, const Py_ssize_t[::1] shape):
    """``y`` = ``x`` (C order, of ``shape``) with its axes reversed, in C order: what
    ``np.ascontiguousarray(a.T)`` makes of a C-ordered ``a``, a MATLAB-order array's
    engine layout.  numpy copies element by element with one side far apart; this goes by
    square tiles of the first and last axes, so both sides are read and written in runs
    (a 32 x 32 x 3 x 32 float32 image batch: about 0.2 ms by numpy)."""
    cdef Py_ssize_t nd = shape.shape[0], k, m, r, j, i0, i, jj
    cdef Py_ssize_t first = shape[0] if nd else 1, last = shape[nd - 1] if nd else 1
    cdef Py_ssize_t mid = 1, total = 1
    for k in range(nd):
        total *= shape[k]
    if total != x.shape[0] or total != y.shape[0]:
        raise ValueError(f"reverse_axes: x and y must hold {total} elements (shape "
                         f"{list(shape)}), got {x.shape[0]} and {y.shape[0]}")
    for k in range(1, nd - 1):
        mid *= shape[k]
    if nd < 2:
        if x.shape[0]:
            memcpy(&y[0], &x[0], x.shape[0] * sizeof(floating))
        return
    # the middle axes: x's index m (C order over shape[1:-1]) is y's index ymid[m] (C
    # order over the same axes reversed)
    cdef Py_ssize_t* ymid = <Py_ssize_t*>malloc(max(mid, 1) * sizeof(Py_ssize_t))
    if ymid == NULL:
        raise MemoryError("mlayers: cannot allocate the transpose's index")
    for m in range(mid):
        r = m
        j = 0
        for k in range(nd - 2, 0, -1):      # x's digits, its last middle axis fastest
            i = r % shape[k]
            r //= shape[k]
            # in y the axes run the other way: x's axis k has the place value of x's axes
            # 1 .. k - 1 together
            jj = 1
            for i0 in range(1, k):
                jj *= shape[i0]
            j += i * jj
        ymid[m] = j
    with nogil:
        for m in range(mid):
            _transpose(&x[0] + m * last, first, last, mid * last, &y[0] + ymid[m] * first,
                       mid * first)
    free(ymid)


cdef void _transpose(const floating* a, Py_ssize_t rows, Py_ssize_t cols, Py_ssize_t lda,
                     floating* t, Py_ssize_t ldt) noexcept nogil:
    """t[c * ldt + r] = a[r * lda + c] (r < rows, c < cols) by square tiles, so both sides
    are read and written in runs (a tile's rows of a stay in L1 while its columns go out)."""
    cdef Py_ssize_t i0, j0, n0, n1, i, j
    for i0 in range(0, rows, REVERSE_TILE):
        n0 = min(REVERSE_TILE, rows - i0)
        for j0 in range(0, cols, REVERSE_TILE):
            n1 = min(REVERSE_TILE, cols - j0)
            if n0 == REVERSE_TILE and n1 == REVERSE_TILE:
                # (a whole tile: fixed trip counts, which the compiler unrolls)
                for j in range(REVERSE_TILE):
                    for i in range(REVERSE_TILE):
                        t[(j0 + j) * ldt + i0 + i] = a[(i0 + i) * lda + j0 + j]
            else:
                for j in range(n1):
                    for i in range(n0):
                        t[(j0 + j) * ldt + i0 + i] = a[(i0 + i) * lda + j0 + j]


cdef void _add_rows(floating* c, const floating* bias, Py_ssize_t rows, Py_ssize_t ldc,
                    Py_ssize_t cols) noexcept nogil:
    cdef Py_ssize_t i, j
    for j in range(cols):
        for i in range(rows):
            c[j * ldc + i] += bias[i]


cdef void _fan(int fan, int split, Py_ssize_t s, Py_ssize_t w, Py_ssize_t m, Py_ssize_t n,
               Py_ssize_t k, const floating* a, Py_ssize_t lda, const floating* b,
               Py_ssize_t ldb, floating* c) noexcept nogil:
    """matmul's chunk of C (m x n, column-major): rows s..s+w (split 0) or columns (split
    1), by fanout_ (fan 1: op(A) = A^T) or fanin_ (fan 2: op(B) = B^T)."""
    cdef Py_ssize_t rows = w if split == 0 else m, cols = n if split == 0 else w
    cdef floating* cc = c + (s if split == 0 else s * m)
    # (the chunk's rows of op(A) and columns of op(B) in the stored operands)
    cdef const floating* aa = a + (0 if split == 1 else (s * lda if fan == 1 else s))
    cdef const floating* bb = b + (0 if split == 0 else (s * ldb if fan == 1 else s))
    if fan == 1:
        if floating is float:
            fanout_f(rows, cols, k, aa, lda, bb, ldb, cc, m)
        else:
            fanout_d(rows, cols, k, aa, lda, bb, ldb, cc, m)
    elif floating is float:
        fanin_f(rows, cols, k, aa, lda, bb, ldb, cc, m)
    else:
        fanin_d(rows, cols, k, aa, lda, bb, ldb, cc, m)


def matmul(const floating[::1] a, const floating[::1] b, floating[::1] c,
           int m, int n, int k, bint ta, bint tb, int lda, int ldb,
           int split, int chunk, int nthreads, const floating[::1] bias=None):
    """Column-major ``C[m, n] = op(A) op(B)`` (``bias``, m values: then each added to its
    row of the product, one rounding as in ``C += bias``) in chunks of ``chunk`` rows
    (split 0) or columns (1) of C, or of the reduction (2: each chunk's product into its
    own buffer, the buffers then added in order), one BLAS call per chunk (a chunk of the
    reduction with few rows of column-major operands: the skinny kernel) on our own
    threads with BLAS held to one thread: no second thread pool (numpy's BLAS workers spin
    for a tenth of a second after each threaded call, taking a core from the OpenMP kernels
    that follow).  The chunks depend on the shapes only, so the result is bitwise the same
    for any thread count."""
    cdef const floating* bp = NULL
    if bias is not None:
        if bias.shape[0] != m:
            raise ValueError(f"matmul: bias must have {m} elements, got {bias.shape[0]}")
        bp = &bias[0]
    if _matmul(&a[0], &b[0], &c[0], m, n, k, ta, tb, lda, ldb, split, chunk, nthreads,
               bp) < 0:
        raise MemoryError("mlayers: cannot allocate the matrix product's partial sums")


cdef void _matmul_chunk(Py_ssize_t j, int chunk, Py_ssize_t length, bint thin, int fan,
                        int split, char cta, char ctb, int m, int n, int k,
                        const floating* a, int lda, const floating* b, int ldb, floating* c,
                        floating* part, const floating* bp) noexcept nogil:
    # chunk j of _matmul's product
    cdef Py_ssize_t s = j * chunk, mn = <Py_ssize_t>m * n
    cdef int w = <int>(chunk if s + chunk <= length else length - s)
    cdef bint tb = ctb == b'T', ta = cta == b'T'
    if thin:
        if floating is float:
            skinny_f(m, n, w, a + s * lda, lda, b + s, ldb, part + j * mn, m)
        else:
            skinny_d(m, n, w, a + s * lda, lda, b + s, ldb, part + j * mn, m)
        return
    if fan:
        _fan(fan, split, s, w, m, n, k, a, lda, b, ldb, c)
        if bp != NULL:
            if split == 0:
                _add_rows(c + s, bp + s, w, m, n)
            else:
                _add_rows(c + s * m, bp, m, m, w)
        return
    if split == 0 and n == 1 and ta and not tb:
        # one observation, weights in rows: dot products, BLAS's gemv (1.2-3.8x its gemm of
        # one column from 10 x 1568, N2's fully connected layer, to 1000 x 2048; float32
        # errors of the same size, 1-3e-7 of the largest; with weights in columns, gemv
        # measured 0.82x for 10 rows, so they keep gemm)
        gemv_cm(cta, k, w, a + s * lda, lda, b, c + s)
        if bp != NULL:
            _add_rows(c + s, bp + s, w, m, 1)
    elif split == 0:
        # rows s.. of op(A): a column offset of A, or a row offset of A transposed
        gemm_cm(cta, ctb, w, n, k, a + (s * lda if ta else s), lda, b, ldb, c + s, m)
        if bp != NULL:
            _add_rows(c + s, bp + s, w, m, n)
    elif split == 1:
        gemm_cm(cta, ctb, m, w, k, a, lda, b + (s if tb else s * ldb), ldb, c + s * m, m)
        if bp != NULL:
            _add_rows(c + s * m, bp, m, m, w)
    else:
        gemm_cm(cta, ctb, m, n, w, a + (s if ta else s * lda), lda,
                b + (s * ldb if tb else s), ldb, part + j * mn, m)


cdef int _matmul(const floating* a, const floating* b, floating* c, int m, int n, int k,
                 bint ta, bint tb, int lda, int ldb, int split, int chunk, int nthreads,
                 const floating* bp) noexcept nogil:
    # matmul on checked memory (bp NULL: no bias); -1 when out of memory
    cdef char cta = b'T' if ta else b'N'
    cdef char ctb = b'T' if tb else b'N'
    cdef Py_ssize_t length = m if split == 0 else (n if split == 1 else k)
    cdef Py_ssize_t nchunks = (length + chunk - 1) // chunk
    cdef Py_ssize_t j, i, mn = <Py_ssize_t>m * n
    cdef floating* part = NULL
    cdef floating acc
    if split == 2:
        part = <floating*>malloc(nchunks * mn * sizeof(floating))
        if part == NULL:
            return -1
    # the reduction's chunks of 4 rows to two vectors of column-major operands by skinny_
    # (_simd.h; with fewer rows a vector holds mostly other columns' values, and BLAS was
    # faster, 0.45-0.78x at 1 and 2 rows; A row-major as 4 x 4 dot products along the
    # reduction measured 0.63-1.16x, so weights in C order keep BLAS)
    cdef bint thin = (split == 2 and not ta and not tb
                      and 4 <= m <= 2 * mlayers_vbytes() // <Py_ssize_t>sizeof(floating))
    # a fully connected layer's backward with few outputs (_simd.h fanout_ / fanin_): the
    # input gradient W^T dY (a reduction of OutputSize terms) and the weight gradient
    # dY X^T (OutputSize rows), where BLAS packs more than it multiplies
    # (from 4 outputs: with 1 or 2, BLAS's product was level or faster, 0.87-1.0x)
    cdef int fan = 0 if split == 2 else (
        1 if ta and not tb and 4 <= k <= FAN_MAX_K else (
            2 if tb and not ta and 4 <= m <= FAN_MAX_M else 0))
    cdef int prev = _blas_hold()
    if nchunks == 1 or nthreads == 1:
        # (on the calling thread, as _conv_forward: an OpenMP region of one thread took
        # about a microsecond to enter and leave, as long as a batch-1 layer's product)
        for j in range(nchunks):
            _matmul_chunk(j, chunk, length, thin, fan, split, cta, ctb, m, n, k, a, lda, b,
                          ldb, c, part, bp)
    else:
        for j in prange(nchunks, num_threads=nthreads, schedule="static"):
            _matmul_chunk(j, chunk, length, thin, fan, split, cta, ctb, m, n, k, a, lda, b,
                          ldb, c, part, bp)
    if split == 2:
        for i in prange(mn, num_threads=nthreads, schedule="static"):
            acc = part[i]
            for j in range(1, nchunks):
                acc = acc + part[j * mn + i]
            c[i] = acc if bp == NULL else acc + bp[i % m]
    _blas_release(prev)
    free(part)
    return 0


# --------------------------------------------------------------------------- small planes

def cv_shape(bint double_precision, Py_ssize_t vectors):
    """(lanes, positions per block) of conv_cv's register block with ``vectors`` vectors of
    output channels, in the instruction set in use (positions 0: not supported)."""
    if double_precision:
        return cv_lanes_d(), cv_rows_d(vectors)
    return cv_lanes_f(), cv_rows_f(vectors)


cdef void _cv_job(Py_ssize_t job, const floating* vols, Py_ssize_t cstride,
                  Py_ssize_t per_image, const Py_ssize_t* qpos, Py_ssize_t ot,
                  Py_ssize_t npos, const floating* wpk, const floating* bias, Py_ssize_t nfb,
                  Py_ssize_t V, Py_ssize_t R, Py_ssize_t nch, const Py_ssize_t* off,
                  Py_ssize_t ntaps, Py_ssize_t cc, floating* y, Py_ssize_t nf,
                  bint rectify) noexcept nogil:
    # One block of R output positions (numbered across the batch), every filter block;
    # ``qpos[o]``: where output o of a plane reads its image's volumes; ``rectify``: the
    # ReLU of the finished sums as they go out.
    cdef const floating* q[24]
    cdef Py_ssize_t yoff[24]
    cdef floating tot[24 * 64]
    cdef Py_ssize_t r, fb, c0, f, width
    cdef Py_ssize_t nvalid = min(R, npos - job * R)
    cdef Py_ssize_t p = job * R, img = p // ot, rem = p % ot
    cdef const floating* b0
    width = V * (cv_lanes_d() if floating is double else cv_lanes_f())
    for r in range(R):
        # positions past the batch's last repeat the block's first: computed, never stored
        if r < nvalid:
            q[r] = vols + img * per_image + qpos[rem]
            yoff[r] = img * nf * ot + rem
            rem += 1
            if rem == ot:
                rem = 0
                img += 1
        else:
            q[r] = q[0]
    for fb in range(nfb):
        if nch == 0:
            for r in range(R):
                for f in range(width):
                    tot[r * width + f] = bias[fb * width + f]
        c0 = 0
        while c0 < nch:
            # the first chunk's sums are added to the biases as they leave the registers
            b0 = bias + fb * width if c0 == 0 else NULL
            if floating is double:
                cv_block_d(V, tot, q, c0 * cstride, cstride, min(cc, nch - c0), off, ntaps,
                           wpk + (fb * nch + c0) * ntaps * width, b0)
            else:
                cv_block_f(V, tot, q, c0 * cstride, cstride, min(cc, nch - c0), off, ntaps,
                           wpk + (fb * nch + c0) * ntaps * width, b0)
            c0 += cc
        if floating is double:
            cv_store_d(tot, width, nvalid, yoff, y + fb * width * ot, ot, rectify)
        else:
            cv_store_f(tot, width, nvalid, yoff, y + fb * width * ot, ot, rectify)


cdef void _cv_volumes(const floating[:, :, :, :, ::1] x, Py_ssize_t n0, Py_ssize_t nimg,
                      const Py_ssize_t* g, floating* vols, int nthreads) noexcept nogil:
    # Each (image, channel) of images n0 .. n0 + nimg - 1 into its volume (V0 x V1 x V2 =
    # g[18:21], zero where this never writes): input row (i0, i1) at padded (i0 + P0,
    # i1 + P1), columns from P2; what lies past the volume is never read
    cdef Py_ssize_t nch = x.shape[1], v0 = g[18], v1 = g[19], v2 = g[20]
    cdef Py_ssize_t cstride = v0 * v1 * v2, nc, i, a0
    cdef Py_ssize_t ncols = max(0, min(x.shape[4], v2 - g[17]))
    # (the rows of each input plane that land inside the volume: i1 < V1 - P1)
    cdef Py_ssize_t nrows = max(0, min(x.shape[3], v1 - g[16]))
    for nc in prange(nimg * nch, num_threads=nthreads, schedule='static'):
        for i in range(x.shape[2]):
            a0 = i + g[15]
            if a0 < v0 and nrows > 0 and ncols > 0:
                _copy_rows(vols + nc * cstride + (a0 * v1 + g[16]) * v2 + g[17], v2,
                           &x[n0 + nc // nch, nc % nch, i, 0, 0], x.shape[4], nrows, ncols,
                           False)


def conv_cv(const floating[:, :, :, :, ::1] x, const floating[:, :, ::1] wpk,
            const floating[::1] bias, floating[:, :, :, :, ::1] y,
            const Py_ssize_t[::1] geom, Py_ssize_t chunk, int nthreads,
            bint rectify=False):
    """Convolution (one group) by blocks of output positions x output channels
    (_simd.h cv_block): for small planes with a multiple of the vector width of filters
    (``rectify``: its ReLU too, relu's values, applied to the finished sums).

    ``wpk[fb, c*ntaps + t, j]`` holds filter ``fb*W + j`` (W = wpk.shape[2], one to four
    vectors) for channel c and tap t, ``bias`` the W*nfb biases.  Each (image, channel)
    is first copied into a zero-padded volume as large as the taps read (``geom[18:21]``,
    appended by the caller: V0 V1 V2).  Jobs are blocks of output positions numbered
    across a group of images whose volumes take about CV_VOLUMES bytes, so short planes
    leave no empty slots but in a group's last block; each output is the bias plus the
    chunks of ``chunk`` channels, each summed from zero, in channel order, the same for
    any thread count."""
    cdef const Py_ssize_t* g = &geom[0]
    cdef Py_ssize_t n_img = x.shape[0], nch = x.shape[1], nf = y.shape[1]
    cdef Py_ssize_t width = wpk.shape[2], nfb = wpk.shape[0]
    cdef Py_ssize_t lanes = cv_lanes_d() if floating is double else cv_lanes_f()
    cdef Py_ssize_t V = width // lanes
    cdef Py_ssize_t R = cv_rows_d(V) if floating is double else cv_rows_f(V)
    cdef Py_ssize_t v0 = g[18], v1 = g[19], v2 = g[20]
    cdef Py_ssize_t cstride = v0 * v1 * v2, per_image = nch * cstride
    cdef Py_ssize_t ntaps = g[6] * g[7] * g[8]
    cdef Py_ssize_t ot = g[3] * g[4] * g[5]
    # images whose volumes are built at once (about CV_VOLUMES bytes, at least one)
    cdef Py_ssize_t group = max(1, min(n_img, CV_VOLUMES // max(per_image * sizeof(floating), 1)))
    cdef Py_ssize_t i, j, k, t, n0, nb, njobs
    cdef floating* vols
    cdef Py_ssize_t* off
    cdef Py_ssize_t* qpos
    if R == 0 or R > 24 or width > 64 or V * lanes != width or nfb * width != nf:
        raise ValueError("conv_cv: unsupported register block")
    vols = <floating*>calloc(max(group * per_image, 1), sizeof(floating))
    off = <Py_ssize_t*>malloc((max(ntaps, 1) + max(ot, 1)) * sizeof(Py_ssize_t))
    if vols == NULL or off == NULL:
        free(vols)
        free(off)
        raise MemoryError("mlayers: cannot allocate the convolution work buffer")
    t = 0
    for i in range(g[6]):
        for j in range(g[7]):
            for k in range(g[8]):
                off[t] = (i * g[12] * v1 + j * g[13]) * v2 + k * g[14]
                t += 1
    # where each output of a plane reads its image's volumes (channel 0, tap 0)
    qpos = off + max(ntaps, 1)
    t = 0
    for i in range(g[3]):
        for j in range(g[4]):
            for k in range(g[5]):
                qpos[t] = (i * g[9] * v1 + j * g[10]) * v2 + k * g[11]
                t += 1
    with nogil:
        n0 = 0
        while n0 < n_img:
            nb = min(group, n_img - n0)
            _cv_volumes(x, n0, nb, g, vols, nthreads)
            njobs = (nb * ot + R - 1) // R
            for i in prange(njobs, num_threads=nthreads, schedule='static'):
                _cv_job(i, vols, cstride, per_image, qpos, ot, nb * ot, &wpk[0, 0, 0],
                        &bias[0], nfb, V, R, nch, off, ntaps, chunk, &y[n0, 0, 0, 0, 0], nf,
                        rectify)
            n0 += nb
    free(vols)
    free(off)


# positions per segment of conv_weight_grad_cv's sums (partial sums added in order)
DEF CVW_SEGMENT = 2048
# positions per chunk summed from zero in the registers
DEF CVW_CHUNK = 128


cdef void _cvw_job(Py_ssize_t job, const floating* vols, const Py_ssize_t* qpos,
                   Py_ssize_t npos, const Py_ssize_t* roff, Py_ssize_t npairs,
                   const floating* dyt, Py_ssize_t V, Py_ssize_t R, Py_ssize_t width,
                   Py_ssize_t nblk, Py_ssize_t nseg, floating* part) noexcept nogil:
    # Segment s of pair block pb of filter block fb: its partial sums into part
    cdef Py_ssize_t s = job % nseg, pb = job // nseg % nblk, fb = job // (nseg * nblk)
    cdef Py_ssize_t ro[24]
    cdef Py_ssize_t r, j0, j1, n
    cdef floating* tot = part + job * R * width
    for r in range(R):
        # pairs past the last repeat the block's first: computed, never stored
        ro[r] = roff[pb * R + r] if pb * R + r < npairs else roff[pb * R]
    memset(tot, 0, R * width * sizeof(floating))
    j0 = s * CVW_SEGMENT
    j1 = min(npos, j0 + CVW_SEGMENT)
    while j0 < j1:
        n = min(CVW_CHUNK, j1 - j0)
        if floating is double:
            cvw_block_d(V, tot, vols, qpos + j0, ro, n, dyt + (fb * npos + j0) * width)
        else:
            cvw_block_f(V, tot, vols, qpos + j0, ro, n, dyt + (fb * npos + j0) * width)
        j0 += n


def conv_weight_grad_cv(const floating[:, :, :, :, ::1] x,
                        const floating[:, :, :, :, ::1] dy, floating[:, :, :, :, ::1] dw,
                        const Py_ssize_t[::1] geom, Py_ssize_t width, int nthreads):
    """Weight gradient (one group) by blocks of (channel, tap) pairs x ``width`` filters
    (_simd.h cvw_block): conv_cv's counterpart, for the same small planes.

    The input goes into conv_cv's padded volumes, the output gradient into a positions x
    filters copy per filter block; a job sums one segment of CVW_SEGMENT positions
    (numbered across the batch) for one block of pairs, in chunks of CVW_CHUNK from zero
    in the registers; the segments' partial sums are then added in order.  Jobs and order
    depend on the shapes only.  The volumes' only zeros are the padding's, real terms of
    the sums (an Inf in dy times one is NaN, as in MATLAB and in gemm's columns)."""
    cdef const Py_ssize_t* g = &geom[0]
    cdef Py_ssize_t n_img = x.shape[0], nch = x.shape[1], nf = dy.shape[1]
    cdef Py_ssize_t lanes = cv_lanes_d() if floating is double else cv_lanes_f()
    cdef Py_ssize_t V = width // lanes
    cdef Py_ssize_t R = cv_rows_d(V) if floating is double else cv_rows_f(V)
    cdef Py_ssize_t v1 = g[19], v2 = g[20], cstride = g[18] * g[19] * g[20]
    cdef Py_ssize_t per_image = nch * cstride, ot = g[3] * g[4] * g[5]
    cdef Py_ssize_t ntaps = g[6] * g[7] * g[8], npairs = nch * ntaps
    cdef Py_ssize_t npos = n_img * ot, nfb = nf // width
    cdef Py_ssize_t nblk = (npairs + R - 1) // R, nseg = (npos + CVW_SEGMENT - 1) // CVW_SEGMENT
    cdef Py_ssize_t njobs = nfb * nblk * nseg
    cdef Py_ssize_t i, j, k, t, p, n, o, f, r, fb, pb
    cdef floating acc
    cdef const floating* src
    cdef floating* dst
    cdef floating* vols = NULL
    cdef floating* dyt = NULL
    cdef floating* part = NULL
    cdef Py_ssize_t* qpos = NULL
    cdef Py_ssize_t* roff = NULL
    if R == 0 or R > 24 or V * lanes != width or nfb * width != nf or npos == 0:
        raise ValueError("conv_weight_grad_cv: unsupported register block")
    vols = <floating*>calloc(max(n_img * per_image, 1), sizeof(floating))
    dyt = <floating*>malloc(max(npos * nf, 1) * sizeof(floating))
    part = <floating*>malloc(max(njobs * R * width, 1) * sizeof(floating))
    qpos = <Py_ssize_t*>malloc(npos * sizeof(Py_ssize_t))
    roff = <Py_ssize_t*>malloc(max(npairs, 1) * sizeof(Py_ssize_t))
    if vols == NULL or dyt == NULL or part == NULL or qpos == NULL or roff == NULL:
        free(vols)
        free(dyt)
        free(part)
        free(qpos)
        free(roff)
        raise MemoryError("mlayers: cannot allocate the convolution work buffer")
    t = 0
    for k in range(nch):
        for i in range(g[6]):
            for j in range(g[7]):
                for n in range(g[8]):
                    roff[t] = k * cstride + (i * g[12] * v1 + j * g[13]) * v2 + n * g[14]
                    t += 1
    with nogil:
        _cv_volumes(x, 0, n_img, g, vols, nthreads)
        for p in prange(npos, num_threads=nthreads, schedule='static'):
            n = p // ot
            o = p % ot
            qpos[p] = n * per_image + ((o // (g[4] * g[5]) * g[9] * v1
                                        + o // g[5] % g[4] * g[10]) * v2 + o % g[5] * g[11])
            # (index arithmetic out of the filter loop: it was 12 % of 8x8x64->64's time)
            src = &dy[n, 0, 0, 0, 0] + o
            for fb in range(nfb):
                dst = dyt + (fb * npos + p) * width
                for f in range(width):
                    dst[f] = src[(fb * width + f) * ot]
        for i in prange(njobs, num_threads=nthreads, schedule='dynamic'):
            _cvw_job(i, vols, qpos, npos, roff, npairs, dyt, V, R, width, nblk, nseg, part)
        # segments in order, into dw[f, pair]
        for i in prange(nfb * nblk, num_threads=nthreads, schedule='static'):
            fb = i // nblk
            pb = i % nblk
            for r in range(min(R, npairs - pb * R)):
                for f in range(width):
                    acc = 0
                    for k in range(nseg):
                        acc = acc + part[((i * nseg + k) * R + r) * width + f]
                    (&dw[0, 0, 0, 0, 0])[(fb * width + f) * npairs + pb * R + r] = acc
    free(vols)
    free(dyt)
    free(part)
    free(qpos)
    free(roff)


# --------------------------------------------------------------------------- programs
# A compiled inference program (mlayers._ops.program): a chain of kernel calls run in one
# call without the GIL, the layers' intermediate results in one work area.  Each step is a
# C function (_program.pxd) of the integers it reads (its arguments: slot numbers of its
# input and output, addresses of weights held alive by the program's owner, sizes).

from cpython.buffer cimport (PyObject_GetBuffer, PyBuffer_Release, PyBUF_ANY_CONTIGUOUS,
                             PyBUF_WRITABLE)

from _program cimport program_step

# the program table's header: steps, input bytes, output bytes, bytes of each half of the
# work area (slots: 0 input, 1 output, 2 and 3 the two halves), then per step its
# function's address, its argument count and its arguments
DEF PROGRAM_HEADER = 4


def run_program(const Py_ssize_t[::1] prog, x, y, int nthreads):
    """Run a compiled inference program (``mlayers._ops.program`` made ``prog``; its
    addresses are trusted) on the contiguous buffer ``x`` into the writable contiguous
    buffer ``y``, whose sizes in bytes it checks."""
    cdef Py_buffer bx, by
    cdef char* slots[4]
    cdef Py_ssize_t k, pos = PROGRAM_HEADER, half = prog[3]
    cdef int rc = 0
    PyObject_GetBuffer(x, &bx, PyBUF_ANY_CONTIGUOUS)
    try:
        PyObject_GetBuffer(y, &by, PyBUF_ANY_CONTIGUOUS | PyBUF_WRITABLE)
        try:
            if bx.len != prog[1] or by.len != prog[2]:
                raise ValueError(f"run_program: x and y must hold {prog[1]} and {prog[2]} "
                                 f"bytes, got {bx.len} and {by.len}")
            slots[0] = <char*>bx.buf
            slots[1] = <char*>by.buf
            slots[2] = <char*>malloc(max(2 * half, 1))
            slots[3] = slots[2] + half
            if slots[2] == NULL:
                raise MemoryError("mlayers: cannot allocate the program's intermediate "
                                  f"results ({2 * half} bytes)")
            with nogil:
                for k in range(prog[0]):
                    rc = (<program_step>prog[pos])(&prog[pos + 2], slots, nthreads)
                    if rc < 0:
                        break
                    pos += 2 + prog[pos + 1]
            free(slots[2])
        finally:
            PyBuffer_Release(&by)
    finally:
        PyBuffer_Release(&bx)
    if rc < 0:
        raise MemoryError("mlayers: cannot allocate a kernel's work buffer")


cdef int _conv_step(const Py_ssize_t* a, char** s, int nthreads,
                    floating kind) noexcept nogil:
    # conv_forward: [x slot, y slot, w, bias (0: none), images, filters, channels per
    # group, groups, one thread, rectify, pool, geometry (18)]
    cdef Geom g = _geom_at(a + 11)
    return _conv_forward(<const floating*>s[a[0]], <const floating*><size_t>a[2],
                         <const floating*><size_t>a[3], <floating*>s[a[1]], &g, a[4], a[5],
                         a[6], a[7], 1 if a[8] else nthreads, a[9] != 0, a[10] != 0)


cdef int _conv_step_f(const Py_ssize_t* a, char** s, int nthreads) noexcept nogil:
    return _conv_step(a, s, nthreads, <float>0)


cdef int _conv_step_d(const Py_ssize_t* a, char** s, int nthreads) noexcept nogil:
    return _conv_step(a, s, nthreads, <double>0)


cdef int _matmul_step(const Py_ssize_t* a, char** s, int nthreads,
                      floating kind) noexcept nogil:
    # matmul of the weights by the slot: [b slot, c slot, a, bias (0: none), m, n, k,
    # transposed a, lda, split, chunk, pieces]
    return _matmul(<const floating*><size_t>a[2], <const floating*>s[a[0]],
                   <floating*>s[a[1]], <int>a[4], <int>a[5], <int>a[6], a[7] != 0, False,
                   <int>a[8], <int>a[6], <int>a[9], <int>a[10],
                   1 if a[11] == 1 else min(nthreads, <int>a[11]),
                   <const floating*><size_t>a[3])


cdef int _matmul_step_f(const Py_ssize_t* a, char** s, int nthreads) noexcept nogil:
    return _matmul_step(a, s, nthreads, <float>0)


cdef int _matmul_step_d(const Py_ssize_t* a, char** s, int nthreads) noexcept nogil:
    return _matmul_step(a, s, nthreads, <double>0)


def program_steps():
    """{step: (address for float32, address for float64)} of this module's program steps."""
    return {"conv": (<size_t><program_step>_conv_step_f, <size_t><program_step>_conv_step_d),
            "matmul": (<size_t><program_step>_matmul_step_f,
                       <size_t><program_step>_matmul_step_d)}
