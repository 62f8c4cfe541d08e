# Row-major gemm over scipy's Fortran BLAS.  This is the only place where float and double
# part ways: everything else is written once over `floating`.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm, sgemv, dgemv


cdef inline void gemm(bint trans_a, bint trans_b, int m, int n, int k,
                      floating alpha, const floating* a, int lda,
                      const floating* b, int ldb, floating beta,
                      floating* c, int ldc) noexcept nogil:
    # Row-major C[m,n] = alpha * op(A) op(B) + beta * C.  A row-major matrix is the
    # transpose of a column-major one, so we ask BLAS for C^T = op(B)^T op(A)^T.
    cdef char ta = b'T' if trans_a else b'N'
    cdef char tb = b'T' if trans_b else b'N'
    if floating is float:
        sgemm(&tb, &ta, &n, &m, &k, &alpha, <float*>b, &ldb, <float*>a, &lda,
              &beta, c, &ldc)
    else:
        dgemm(&tb, &ta, &n, &m, &k, &alpha, <double*>b, &ldb, <double*>a, &lda,
              &beta, c, &ldc)


cdef inline void gemm_cm(char ta, char tb, int m, int n, int k,
                         const floating* a, int lda, const floating* b, int ldb,
                         floating* c, int ldc) noexcept nogil:
    # Column-major C[m,n] = op(A) op(B), BLAS's own convention (beta = 0).
    cdef floating one = 1
    cdef floating zero = 0
    if floating is float:
        sgemm(&ta, &tb, &m, &n, &k, &one, <float*>a, &lda, <float*>b, &ldb, &zero, c, &ldc)
    else:
        dgemm(&ta, &tb, &m, &n, &k, &one, <double*>a, &lda, <double*>b, &ldb, &zero, c, &ldc)


cdef inline void gemv_cm(char ta, int m, int n, const floating* a, int lda,
                         const floating* x, floating* y) noexcept nogil:
    # Column-major y = op(A) x, A m x n (beta = 0, unit strides).
    cdef floating one = 1
    cdef floating zero = 0
    cdef int inc = 1
    if floating is float:
        sgemv(&ta, &m, &n, &one, <float*>a, &lda, <float*>x, &inc, &zero, y, &inc)
    else:
        dgemv(&ta, &m, &n, &one, <double*>a, &lda, <double*>x, &inc, &zero, y, &inc)
