# OpenMP shim: the extension must compile and run without OpenMP (MLAYERS_NO_OPENMP=1 or a
# compiler without it), so the few runtime calls we need fall back to serial stubs.
cdef extern from *:
    """
    #ifdef _OPENMP
    #include <omp.h>
    #define MLAYERS_OPENMP 1
    #else
    #define MLAYERS_OPENMP 0
    static int omp_get_max_threads(void) { return 1; }
    static int omp_get_thread_num(void) { return 0; }
    #endif
    """
    bint MLAYERS_OPENMP
    int omp_get_max_threads() noexcept nogil
    int omp_get_thread_num() noexcept nogil
