# Recurrent kernels: LSTM and GRU forward and backward through time.
#
# Layout (MATLAB_SEMANTICS §17): a C x B x T MATLAB array is, in memory, a C-ordered
# T x B x C array, so every time step is one row-major B x C block.  Learnables are
# row-major (gates*H) x C and (gates*H) x H matrices with MATLAB's gate blocks of H rows
# (LSTM i, f, g, o; GRU r, z, n).
#
# Forward: the recurrence runs one job per chunk of observations (the chunks are
# independent through time, so a job runs every time step of its chunk with no
# synchronisation): per step the gate pre-activations, then the gates and states, fused,
# element by element.  The float32 LSTM forms each step's pre-activations as one product
# over [x_t h_(t-1)] into a step-sized block (rnn_sgemm_bias2); the other cells project
# the inputs of all time steps first, as one gemm split into fixed blocks of rows, and add
# the recurrent product per step.
#
# Backward: the same jobs walk the steps backwards and store the gate gradients of every
# step; the weight gradients, bias gradients and input gradients are then single gemms
# over all T*B rows (split into fixed blocks of output rows), so every sum is computed in
# the same order whatever the number of threads.
from cython cimport floating
from cython.parallel cimport prange, threadid
from libc.math cimport exp, tanh, fabs, expf, tanhf, fabsf
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from _blas cimport gemm
from _openmp cimport omp_get_max_threads

cdef extern from "_rnn_simd.h":
    enum: RNN_KB        # rows of dg packed at once by rnn_sgemm_at2
    void rnn_sigmoid2_f(float* a, Py_ssize_t n) noexcept nogil
    void rnn_tanh2_f(float* a, Py_ssize_t n) noexcept nogil
    void rnn_tanh2_to_f(const float* a, float* out, Py_ssize_t n) noexcept nogil
    void rnn_sgemm(Py_ssize_t M, Py_ssize_t N, Py_ssize_t K, const float* A,
                   Py_ssize_t sam, Py_ssize_t sak, const float* B, Py_ssize_t ldb, float* C,
                   Py_ssize_t ldc, int accumulate) noexcept nogil
    void rnn_sgemm_bias2(Py_ssize_t M, Py_ssize_t N, const float* bias, Py_ssize_t K1,
                         const float* A1, Py_ssize_t lda1, const float* B1, Py_ssize_t ldb1,
                         Py_ssize_t K2, const float* A2, Py_ssize_t lda2, const float* B2,
                         Py_ssize_t ldb2, float* C, Py_ssize_t ldc) noexcept nogil
    void rnn_sgemm_at2(Py_ssize_t M, Py_ssize_t K, const float* A, Py_ssize_t lda,
                       Py_ssize_t N1, const float* B1, Py_ssize_t ldb1, float* C1,
                       Py_ssize_t ldc1, Py_ssize_t N2, const float* B2, Py_ssize_t ldb2,
                       float* C2, Py_ssize_t ldc2, float* colsum, float* buf) noexcept nogil
    void rnn_lstm_cell_f(Py_ssize_t nb, Py_ssize_t H, float* g, const float* cp, float* cn,
                         float* hn) noexcept nogil
    void rnn_lstm_bwd_f(Py_ssize_t nb, Py_ssize_t H, const float* g, const float* sc,
                        const float* cprev, const float* dy, float* dh, float* dc,
                        float* dg, int sact, int gact) noexcept nogil
    void rnn_lstm_bwd_cell_f(Py_ssize_t nb, Py_ssize_t H, const float* g, const float* c,
                             const float* cprev, const float* dy, float* dh, float* dc,
                             float* dg) noexcept nogil
    void rnn_lstm_bwd_d(Py_ssize_t nb, Py_ssize_t H, const double* g, const double* sc,
                        const double* cprev, const double* dy, double* dh, double* dc,
                        double* dg, int sact, int gact) noexcept nogil
    void rnn_gru_bwd_after_f(Py_ssize_t nb, Py_ssize_t H, const float* g, const float* hp,
                             const float* hn, const float* dy, float* dh, float* ax,
                             float* ah, int sact, int gact) noexcept nogil
    void rnn_gru_bwd_after_d(Py_ssize_t nb, Py_ssize_t H, const double* g, const double* hp,
                             const double* hn, const double* dy, double* dh, double* ax,
                             double* ah, int sact, int gact) noexcept nogil
    void rnn_gru_bwd_before1_f(Py_ssize_t nb, Py_ssize_t H, const float* g, const float* hp,
                               const float* dy, float* dh, float* ax, int sact,
                               int gact) noexcept nogil
    void rnn_gru_bwd_before1_d(Py_ssize_t nb, Py_ssize_t H, const double* g,
                               const double* hp, const double* dy, double* dh, double* ax,
                               int sact, int gact) noexcept nogil
    void rnn_gru_bwd_before2_f(Py_ssize_t nb, Py_ssize_t H, const float* g, const float* hp,
                               const float* drh, float* dh, float* ax, int gact) noexcept nogil
    void rnn_gru_bwd_before2_d(Py_ssize_t nb, Py_ssize_t H, const double* g,
                               const double* hp, const double* drh, double* dh, double* ax,
                               int gact) noexcept nogil


cdef inline void _mm(bint acc, Py_ssize_t M, Py_ssize_t N, Py_ssize_t K,
                     const floating* A, Py_ssize_t lda, const floating* B, Py_ssize_t ldb,
                     floating* C, Py_ssize_t ldc) noexcept nogil:
    # row-major C (+)= A B for one time step: float32 through the register-blocked kernel
    # of _rnn_simd.h, float64 through BLAS
    if floating is float:
        rnn_sgemm(M, N, K, A, lda, 1, B, ldb, C, ldc, acc)
    else:
        gemm(False, False, <int>M, <int>N, <int>K, <floating>1, A, <int>lda, B, <int>ldb,
             <floating>(1 if acc else 0), C, <int>ldc)

DEF CHUNK = 16      # observations per float64 recurrence job (fixed: thread-count independent)
DEF ROWS = 64       # rows per projection / input-gradient gemm job
DEF WROWS = 256     # at most this many output rows per weight-gradient gemm job

# activation codes (the seam maps MATLAB names to these)
DEF TANH = 0
DEF SOFTSIGN = 1
DEF RELU = 2
DEF SIGMOID = 0
DEF HARD_SIGMOID = 1

# GRU reset-gate modes
DEF AFTER = 0
DEF BEFORE = 1
DEF RECURRENT_BIAS = 2

include "_blas_threads.pxi"


# --------------------------------------------------------------------------- activations

cdef inline floating _state_act(floating x, int kind) noexcept nogil:
    if kind == TANH:
        if floating is float:
            return tanhf(x)
        else:
            return tanh(x)
    elif kind == SOFTSIGN:
        if floating is float:
            return x / (1 + fabsf(x))
        else:
            return x / (1 + fabs(x))
    else:
        return x if x > 0 else (0 if x <= 0 else x)      # NaN propagates


cdef inline floating _state_grad(floating y, int kind) noexcept nogil:
    # derivative from the output y = act(x)
    cdef floating a
    if kind == TANH:
        return 1 - y * y
    elif kind == SOFTSIGN:
        if floating is float:
            a = 1 - fabsf(y)
        else:
            a = 1 - fabs(y)
        return a * a
    else:
        return 1 if y > 0 else 0


cdef inline floating _gate_act(floating x, int kind) noexcept nogil:
    cdef floating v
    if kind == SIGMOID:
        if floating is float:
            return 1 / (1 + expf(-x))
        else:
            return 1 / (1 + exp(-x))
    else:
        v = <floating>0.2 * x + <floating>0.5
        if v < 0:
            return 0
        if v > 1:
            return 1
        return v


cdef inline floating _gate_grad(floating y, int kind) noexcept nogil:
    if kind == SIGMOID:
        return y * (1 - y)
    else:
        return <floating>0.2 if (y > 0 and y < 1) else 0


# Whole rows at once: float32 tanh and sigmoid through the vectorized loops of
# _rnn_simd.h (rnn_tanh2f, rnn_sigmoid2f), everything else element by element (float64:
# libm).
cdef inline void _gate_rows(floating* a, Py_ssize_t n, int kind) noexcept nogil:
    cdef Py_ssize_t j
    if floating is float:
        if kind == SIGMOID:
            rnn_sigmoid2_f(a, n)
            return
    for j in range(n):
        a[j] = _gate_act(a[j], kind)


cdef inline void _state_rows(floating* a, Py_ssize_t n, int kind) noexcept nogil:
    cdef Py_ssize_t j
    if floating is float:
        if kind == TANH:
            rnn_tanh2_f(a, n)
            return
    for j in range(n):
        a[j] = _state_act(a[j], kind)


cdef inline void _state_to(const floating* a, floating* out, Py_ssize_t n,
                           int kind) noexcept nogil:
    cdef Py_ssize_t j
    if floating is float:
        if kind == TANH:
            rnn_tanh2_to_f(a, out, n)
            return
    for j in range(n):
        out[j] = _state_act(a[j], kind)


cdef inline Py_ssize_t _chunk_size(Py_ssize_t B, int nthreads, floating dummy) noexcept nogil:
    # Observations per recurrence job.  The float32 products give every element the same
    # sum whatever the number of rows (see _rnn_simd.h), so float32 takes one chunk per
    # thread (fewer, larger per-step products), in multiples of the 8-row register block;
    # float64 goes through BLAS and keeps fixed chunks.  Either way the results do not
    # depend on the number of threads.
    cdef Py_ssize_t per
    if floating is float:
        per = (B + nthreads - 1) // nthreads
        per = ((per + 7) // 8) * 8
        return per if per > 8 else 8
    return CHUNK


# --------------------------------------------------------------------------- shared phases

cdef void _project(const floating* x, const floating* wt, const floating* b, floating* g,
                   Py_ssize_t rows, Py_ssize_t c, Py_ssize_t n, int nthreads) noexcept nogil:
    # g[rows, n] = x[rows, c] @ wt[c, n] + b  (the input projection of every step; wt is
    # the input weights transposed)
    cdef Py_ssize_t nblk = (rows + ROWS - 1) // ROWS
    cdef Py_ssize_t blk, r0, nr, i, j
    for blk in prange(nblk, num_threads=nthreads, schedule='static'):
        r0 = blk * ROWS
        nr = min(<Py_ssize_t>ROWS, rows - r0)
        for i in range(r0, r0 + nr):
            for j in range(n):
                g[i * n + j] = b[j]
        if floating is float:
            rnn_sgemm(nr, n, c, x + r0 * c, c, 1, wt, n, g + r0 * n, n, 1)
        else:
            gemm(False, False, <int>nr, <int>n, <int>c, <floating>1, x + r0 * c, <int>c,
                 wt, <int>n, <floating>1, g + r0 * n, <int>n)


cdef void* _alloc(size_t nbytes) except NULL:
    # work buffers are made, and checked, before the nogil regions that use them
    cdef void* p = malloc(max(nbytes, 1))
    if p == NULL:
        raise MemoryError("mlayers: cannot allocate the recurrent kernels' work buffer")
    return p


cdef inline Py_ssize_t _wg_rows(Py_ssize_t h) noexcept nogil:
    # output rows of one _weight_grads job (at most WROWS)
    cdef Py_ssize_t per_gate = (h + WROWS - 1) // WROWS
    return (h + per_gate - 1) // per_gate


cdef floating* _backward_buffers(Py_ssize_t n, Py_ssize_t h, int nthreads, float** wgb,
                                 floating kind) except NULL:
    # a backward pass's scratch of n elements and, after it (at a multiple of 64 bytes),
    # float32 _weight_grads' packed blocks of dg, one per thread (rnn_sgemm_at2's; float64
    # calls gemm: none): one allocation, freed once
    cdef Py_ssize_t lead = (n + 15) // 16 * 16
    cdef Py_ssize_t nw = 0 if floating is double else \
        ((_wg_rows(h) + 7) // 8) * 8 * RNN_KB * max(nthreads, 1)
    cdef floating* p = <floating*>_alloc((lead + nw) * sizeof(floating))
    wgb[0] = NULL if floating is double else <float*>(p + lead)
    return p


cdef void _weight_grads(const floating* dg, Py_ssize_t ldg, Py_ssize_t ngates,
                        Py_ssize_t h, Py_ssize_t rows,
                        const floating* x, Py_ssize_t c, floating* dw,
                        const floating* hp, const floating* hp_last, floating* dr,
                        floating* db, int nthreads, float* bufs) noexcept nogil:
    # dw[ngates*h, c] = dg^T x ; dr[ngates*h, h] = dg^T hp (the last gate block against
    # hp_last: the GRU's r .* h in 'before-multiplication' mode) ; db = column sums of dg.
    # A NULL dw, dr or db is skipped.  Jobs are fixed blocks of output rows within one gate
    # block (at most WROWS, so BLAS packs the other operand a few times only), each a
    # full-K product, so the sums do not depend on the number of threads.
    # (bufs: _backward_buffers' packed blocks for float32)
    cdef Py_ssize_t per_gate = (h + WROWS - 1) // WROWS
    cdef Py_ssize_t bsz = _wg_rows(h)
    cdef Py_ssize_t njobs = ngates * per_gate
    cdef Py_ssize_t job, gate, m0, nm, i, j
    cdef const floating* src
    cdef const floating* row
    cdef floating* acc
    cdef float* buf
    for job in prange(njobs, num_threads=nthreads, schedule='dynamic'):
        gate = job // per_gate
        m0 = gate * h + (job % per_gate) * bsz
        nm = min(bsz, (gate + 1) * h - m0)
        src = hp_last if gate == ngates - 1 else hp
        if floating is float:
            # both products and the sums from one packed copy of the job's dg columns
            buf = bufs + threadid() * (((bsz + 7) // 8) * 8 * RNN_KB)
            rnn_sgemm_at2(nm, rows, dg + m0, ldg,
                          c if dw != NULL else 0, x, c, dw + m0 * c if dw != NULL else NULL,
                          c, h if dr != NULL else 0, src, h,
                          dr + m0 * h if dr != NULL else NULL, h,
                          db + m0 if db != NULL else NULL, buf)
        else:
            if dw != NULL:
                gemm(True, False, <int>nm, <int>c, <int>rows, <floating>1, dg + m0,
                     <int>ldg, x, <int>c, <floating>0, dw + m0 * c, <int>c)
            if dr != NULL:
                gemm(True, False, <int>nm, <int>h, <int>rows, <floating>1, dg + m0,
                     <int>ldg, src, <int>h, <floating>0, dr + m0 * h, <int>h)
            if db != NULL:
                # rows in order, the block's columns side by side (contiguous, vectorized)
                acc = db + m0
                for j in range(nm):
                    acc[j] = 0
                for i in range(rows):
                    row = dg + i * ldg + m0
                    for j in range(nm):
                        acc[j] = acc[j] + row[j]


cdef void _input_grads(const floating* dg, Py_ssize_t n, const floating* w, Py_ssize_t c,
                       floating* dx, Py_ssize_t rows, int nthreads) noexcept nogil:
    # dx[rows, c] = dg[rows, n] @ w[n, c]
    cdef Py_ssize_t nblk = (rows + ROWS - 1) // ROWS
    cdef Py_ssize_t blk, r0, nr
    for blk in prange(nblk, num_threads=nthreads, schedule='static'):
        r0 = blk * ROWS
        nr = min(<Py_ssize_t>ROWS, rows - r0)
        if floating is float:
            rnn_sgemm(nr, c, n, dg + r0 * n, n, 1, w, c, dx + r0 * c, c, 0)
        else:
            gemm(False, False, <int>nr, <int>c, <int>n, <floating>1, dg + r0 * n, <int>n,
                 w, <int>c, <floating>0, dx + r0 * c, <int>c)


# --------------------------------------------------------------------------- LSTM

cdef inline void _lstm_cell(Py_ssize_t nb, Py_ssize_t H, floating* gt, const floating* cp,
                            floating* cn, floating* hn, int sact, int gact) noexcept nogil:
    # any activation functions: in place, row by row, as rnn_lstm_cell_f
    cdef Py_ssize_t G = 4 * H
    cdef Py_ssize_t i, j
    cdef floating* g
    for i in range(nb):
        g = gt + i * G
        _gate_rows(g, 2 * H, gact)                 # i, f
        _state_rows(g + 2 * H, H, sact)            # g
        _gate_rows(g + 3 * H, H, gact)             # o
        for j in range(H):
            cn[i * H + j] = g[H + j] * cp[i * H + j] + g[j] * g[2 * H + j]
        _state_to(cn + i * H, hn + i * H, H, sact)
        for j in range(H):
            hn[i * H + j] = g[3 * H + j] * hn[i * H + j]


def lstm_forward(const floating[:, :, ::1] x, const floating[:, ::1] wt,
                 const floating[:, ::1] rt, const floating[::1] b,
                 floating[:, :, ::1] hs, floating[:, :, ::1] cs,
                 floating[:, :, ::1] gates, int sact, int gact, int nthreads):
    """hs[0], cs[0] hold the initial states; fills hs[1:], cs[1:] and the activated gates
    (T x B x 4H, blocks i, f, g, o).  wt, rt: the input and recurrent weights transposed
    (C x 4H, H x 4H).  float32 only: gates may be 1 x B x 4H, a step's scratch reused by
    every step, when no backward needs them."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], C = x.shape[2], H = rt.shape[0]
    cdef Py_ssize_t G = 4 * H
    cdef Py_ssize_t chunk = _chunk_size(B, nthreads, <floating>0)
    cdef Py_ssize_t nchunks = (B + chunk - 1) // chunk
    cdef Py_ssize_t gstep = B * G if gates.shape[0] == T else 0
    cdef Py_ssize_t ch, b0, nb, t
    cdef floating* gt
    cdef int prev
    if T == 0 or B == 0:
        return
    if floating is double and gstep == 0 and T > 1:
        raise ValueError("lstm_forward: float64 needs the gates of every step")
    with nogil:
        prev = _blas_hold()
        if floating is double:
            _project(&x[0, 0, 0], &wt[0, 0], &b[0], &gates[0, 0, 0], T * B, C, G, nthreads)
        for ch in prange(nchunks, num_threads=nthreads, schedule='dynamic'):
            b0 = ch * chunk
            nb = min(chunk, B - b0)
            for t in range(T):
                gt = &gates[0, b0, 0] + t * gstep
                if floating is float:
                    # projection and recurrent product of the step in one pass
                    rnn_sgemm_bias2(nb, G, &b[0], C, &x[t, b0, 0], C, &wt[0, 0], G,
                                    H, &hs[t, b0, 0], H, &rt[0, 0], G, gt, G)
                    if sact == TANH and gact == SIGMOID:
                        rnn_lstm_cell_f(nb, H, gt, &cs[t, b0, 0], &cs[t + 1, b0, 0],
                                        &hs[t + 1, b0, 0])
                        continue
                else:
                    _mm(True, nb, G, H, &hs[t, b0, 0], H, &rt[0, 0], G, gt, G)
                _lstm_cell(nb, H, gt, &cs[t, b0, 0], &cs[t + 1, b0, 0], &hs[t + 1, b0, 0],
                           sact, gact)
        _blas_release(prev)


def lstm_backward(const floating[:, :, ::1] x, const floating[:, ::1] w,
                  const floating[:, ::1] r,
                  const floating[:, :, ::1] hs, const floating[:, :, ::1] cs,
                  const floating[:, :, ::1] gates, const floating[:, :, ::1] dy,
                  bint has_dy, floating[:, ::1] dh, floating[:, ::1] dc,
                  floating[:, :, ::1] dg, floating[:, :, ::1] dx, bint need_dx,
                  floating[:, ::1] dw, floating[:, ::1] dr, floating[::1] db,
                  int sact, int gact, int nthreads):
    """Backward through time.  dh, dc hold the gradients of the final states on entry and
    of the initial states on exit; dy (T x B x H) the gradients of every output step when
    has_dy.  dg is T x B x 4H scratch (the pre-activation gate gradients)."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], C = x.shape[2], H = r.shape[1]
    cdef Py_ssize_t G = 4 * H
    cdef Py_ssize_t chunk = _chunk_size(B, nthreads, <floating>0)
    cdef Py_ssize_t nchunks = (B + chunk - 1) // chunk
    cdef Py_ssize_t ch, b0, nb, t, i, j, k
    cdef const floating* gt
    cdef floating* dgt
    cdef floating* scr
    cdef floating* scrs
    cdef float* wgb
    cdef const floating* dyp
    cdef int prev
    if T == 0 or B == 0:
        return
    scrs = _backward_buffers(nchunks * chunk * H, H, nthreads, &wgb, <floating>0)
    with nogil:
        prev = _blas_hold()
        for ch in prange(nchunks, num_threads=nthreads, schedule='dynamic'):
            b0 = ch * chunk
            nb = min(chunk, B - b0)
            scr = scrs + ch * chunk * H
            for t in range(T - 1, -1, -1):
                gt = &gates[t, b0, 0]
                dgt = &dg[t, b0, 0]
                dyp = &dy[t, b0, 0] if has_dy else NULL
                if floating is float:
                    if sact == TANH and gact == SIGMOID:
                        rnn_lstm_bwd_cell_f(nb, H, gt, &cs[t + 1, b0, 0], &cs[t, b0, 0],
                                            dyp, &dh[b0, 0], &dc[b0, 0], dgt)
                    else:
                        _state_to(&cs[t + 1, b0, 0], scr, nb * H, sact)
                        rnn_lstm_bwd_f(nb, H, gt, scr, &cs[t, b0, 0], dyp, &dh[b0, 0],
                                       &dc[b0, 0], dgt, sact, gact)
                else:
                    _state_to(&cs[t + 1, b0, 0], scr, nb * H, sact)
                    rnn_lstm_bwd_d(nb, H, gt, scr, &cs[t, b0, 0], dyp, &dh[b0, 0],
                                   &dc[b0, 0], dgt, sact, gact)
                _mm(False, nb, H, G, dgt, G, &r[0, 0], H, &dh[b0, 0], H)
        _weight_grads(&dg[0, 0, 0], G, 4, H, T * B, &x[0, 0, 0], C, &dw[0, 0],
                      &hs[0, 0, 0], &hs[0, 0, 0], &dr[0, 0], &db[0], nthreads, wgb)
        if need_dx:
            _input_grads(&dg[0, 0, 0], G, &w[0, 0], C, &dx[0, 0, 0], T * B, nthreads)
        _blas_release(prev)
    free(scrs)


# --------------------------------------------------------------------------- GRU

def gru_forward(const floating[:, :, ::1] x, const floating[:, ::1] wt,
                const floating[:, ::1] rt, const floating[::1] b,
                const floating[::1] rb,
                floating[:, :, ::1] hs, floating[:, :, ::1] gates,
                floating[:, :, ::1] hn, int mode, int sact, int gact, int nthreads):
    """hs[0] holds the initial state; fills hs[1:], the activated gates (T x B x 3H,
    blocks r, z, n) and hn (T x B x H): R_n h + rb_n in the after-multiplication modes,
    r .* h in 'before-multiplication' mode.  wt, rt: the input and recurrent weights
    transposed (C x 3H, H x 3H)."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], C = x.shape[2], H = rt.shape[0]
    cdef Py_ssize_t G = 3 * H
    cdef Py_ssize_t chunk = _chunk_size(B, nthreads, <floating>0)
    cdef Py_ssize_t nchunks = (B + chunk - 1) // chunk
    cdef Py_ssize_t ch, b0, nb, t, i, j, k
    cdef floating* gt
    cdef floating* hp
    cdef floating* hnew
    cdef floating* hnt
    cdef floating* gh
    cdef floating* ghs
    cdef floating* g
    cdef floating z, v
    cdef int prev
    if T == 0 or B == 0:
        return
    ghs = <floating*>_alloc(nchunks * chunk * G * sizeof(floating))
    with nogil:
        prev = _blas_hold()
        _project(&x[0, 0, 0], &wt[0, 0], &b[0], &gates[0, 0, 0], T * B, C, G, nthreads)
        for ch in prange(nchunks, num_threads=nthreads, schedule='dynamic'):
            b0 = ch * chunk
            nb = min(chunk, B - b0)
            gh = ghs + ch * chunk * G
            for t in range(T):
                gt = &gates[t, b0, 0]
                hp = &hs[t, b0, 0]
                hnew = &hs[t + 1, b0, 0]
                hnt = &hn[t, b0, 0]
                if mode == BEFORE:
                    _mm(False, nb, 2 * H, H, hp, H, &rt[0, 0], G, gh, G)
                    for i in range(nb):
                        g = gt + i * G
                        for j in range(2 * H):
                            g[j] = g[j] + gh[i * G + j]
                        _gate_rows(g, 2 * H, gact)             # r, z
                        for j in range(H):
                            hnt[i * H + j] = g[j] * hp[i * H + j]
                    _mm(False, nb, H, H, hnt, H, &rt[0, 2 * H], G, gh + 2 * H, G)
                    for i in range(nb):
                        g = gt + i * G
                        for j in range(H):
                            g[2 * H + j] = g[2 * H + j] + gh[i * G + 2 * H + j]
                        _state_rows(g + 2 * H, H, sact)        # n
                        for j in range(H):
                            z = g[H + j]
                            hnew[i * H + j] = (1 - z) * g[2 * H + j] + z * hp[i * H + j]
                else:
                    _mm(False, nb, G, H, hp, H, &rt[0, 0], G, gh, G)
                    for i in range(nb):
                        g = gt + i * G
                        for j in range(2 * H):
                            g[j] = g[j] + gh[i * G + j] + rb[j]
                        _gate_rows(g, 2 * H, gact)             # r, z
                        for j in range(H):
                            v = gh[i * G + 2 * H + j] + rb[2 * H + j]
                            hnt[i * H + j] = v
                            g[2 * H + j] = g[2 * H + j] + g[j] * v
                        _state_rows(g + 2 * H, H, sact)        # n
                        for j in range(H):
                            z = g[H + j]
                            hnew[i * H + j] = (1 - z) * g[2 * H + j] + z * hp[i * H + j]
        _blas_release(prev)
    free(ghs)


def gru_backward(const floating[:, :, ::1] x, const floating[:, ::1] w,
                 const floating[:, ::1] r, const floating[:, :, ::1] hs,
                 const floating[:, :, ::1] gates, const floating[:, :, ::1] hn,
                 const floating[:, :, ::1] dy, bint has_dy, floating[:, ::1] dh,
                 floating[:, :, ::1] dgx, floating[:, :, ::1] dgh,
                 floating[:, :, ::1] dx, bint need_dx,
                 floating[:, ::1] dw, floating[:, ::1] dr, floating[::1] db,
                 floating[::1] drb, int mode, int sact, int gact, int nthreads):
    """Backward through time of gru_forward.  dh holds the gradient of the final state on
    entry and of the initial state on exit.  dgx, dgh are T x B x 3H scratch: the
    gradients of the input and recurrent pre-activations (in 'before-multiplication'
    mode dgh is not used and the n rows of dr pair with hn = r .* h)."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], C = x.shape[2], H = r.shape[1]
    cdef Py_ssize_t G = 3 * H
    cdef Py_ssize_t chunk = _chunk_size(B, nthreads, <floating>0)
    cdef Py_ssize_t nchunks = (B + chunk - 1) // chunk
    cdef Py_ssize_t ch, b0, nb, t, i, j, k
    cdef const floating* gt
    cdef const floating* hp
    cdef const floating* hnt
    cdef floating* ax
    cdef floating* ah
    cdef floating* drh
    cdef floating* drhs
    cdef float* wgb
    cdef floating* dhb
    cdef const floating* dyp
    cdef int prev
    if T == 0 or B == 0:
        return
    drhs = _backward_buffers(nchunks * chunk * H, H, nthreads, &wgb, <floating>0)
    with nogil:
        prev = _blas_hold()
        for ch in prange(nchunks, num_threads=nthreads, schedule='dynamic'):
            b0 = ch * chunk
            nb = min(chunk, B - b0)
            drh = drhs + ch * chunk * H
            dhb = &dh[b0, 0]
            for t in range(T - 1, -1, -1):
                gt = &gates[t, b0, 0]
                hp = &hs[t, b0, 0]
                hnt = &hn[t, b0, 0]
                ax = &dgx[t, b0, 0]
                dyp = &dy[t, b0, 0] if has_dy else NULL
                if mode == BEFORE:
                    if floating is float:
                        rnn_gru_bwd_before1_f(nb, H, gt, hp, dyp, dhb, ax, sact, gact)
                    else:
                        rnn_gru_bwd_before1_d(nb, H, gt, hp, dyp, dhb, ax, sact, gact)
                    # d(r .* h) = dpre_n @ R_n
                    _mm(False, nb, H, H, ax + 2 * H, G, &r[2 * H, 0], H, drh, H)
                    if floating is float:
                        rnn_gru_bwd_before2_f(nb, H, gt, hp, drh, dhb, ax, gact)
                    else:
                        rnn_gru_bwd_before2_d(nb, H, gt, hp, drh, dhb, ax, gact)
                    _mm(True, nb, H, 2 * H, ax, G, &r[0, 0], H, dhb, H)
                else:
                    ah = &dgh[t, b0, 0]
                    if floating is float:
                        rnn_gru_bwd_after_f(nb, H, gt, hp, hnt, dyp, dhb, ax, ah, sact, gact)
                    else:
                        rnn_gru_bwd_after_d(nb, H, gt, hp, hnt, dyp, dhb, ax, ah, sact, gact)
                    _mm(True, nb, H, G, ah, G, &r[0, 0], H, dhb, H)
        if mode == BEFORE:
            _weight_grads(&dgx[0, 0, 0], G, 3, H, T * B, &x[0, 0, 0], C, &dw[0, 0],
                          &hs[0, 0, 0], &hn[0, 0, 0], &dr[0, 0], &db[0], nthreads, wgb)
        else:
            _weight_grads(&dgx[0, 0, 0], G, 3, H, T * B, &x[0, 0, 0], C, &dw[0, 0],
                          NULL, NULL, NULL, &db[0], nthreads, wgb)
            # the recurrent pre-activations differ from the input ones in the n block
            _weight_grads(&dgh[0, 0, 0], G, 3, H, T * B, NULL, C, NULL,
                          &hs[0, 0, 0], &hs[0, 0, 0], &dr[0, 0], &drb[0], nthreads, wgb)
        if need_dx:
            _input_grads(&dgx[0, 0, 0], G, &w[0, 0], C, &dx[0, 0, 0], T * B, nthreads)
        _blas_release(prev)
    free(drhs)
