# BLAS held to one thread inside our OpenMP regions (included by the kernel modules that
# call gemm from prange threads: _conv, _rnn).  Each module keeps its own copy of the
# registered hooks; mlayers._ops finds the BLAS library's set/get-num-threads functions
# once and hands their addresses to each module.

ctypedef void (*set_threads_fn)(int) noexcept nogil
ctypedef int (*get_threads_fn)() noexcept nogil
cdef set_threads_fn _blas_set = NULL
cdef get_threads_fn _blas_get = NULL


def set_blas_thread_hooks(size_t set_addr, size_t get_addr):
    """Register the BLAS library's set/get-num-threads C functions (addresses, 0 = none)."""
    global _blas_set, _blas_get
    _blas_set = <set_threads_fn>set_addr
    _blas_get = <get_threads_fn>get_addr


def max_threads():
    return omp_get_max_threads()


cdef inline int _blas_hold() noexcept nogil:
    # Our prange threads each call gemm; a multithreaded BLAS underneath would
    # oversubscribe the cores.  Returns the previous setting for _blas_release.
    cdef int prev = 0
    if _blas_get != NULL and _blas_set != NULL:
        prev = _blas_get()
        if prev != 1:
            _blas_set(1)
    return prev


cdef inline void _blas_release(int prev) noexcept nogil:
    if _blas_set != NULL and prev > 1:
        _blas_set(prev)
