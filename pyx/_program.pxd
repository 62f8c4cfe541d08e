# A compiled inference program's step (_conv.run_program, mlayers._ops.program): a C
# function of its integer arguments (slots of its input and output, addresses, sizes), the
# slots' addresses and the thread count; 0, or -1 when out of memory.  Each kernel module
# gives the addresses of its steps (program_steps).
ctypedef int (*program_step)(const Py_ssize_t* args, char** slots,
                             int nthreads) noexcept nogil
