# Row-major gemm over scipy's Fortran BLAS.  This is the only place where float and double
# part ways: everything else is written once over `floating`.
from cython cimport floating
from scipy.linalg.cython_blas cimport sgemm, dgemm


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
