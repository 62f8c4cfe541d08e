# Recurrent kernels: LSTM and GRU forward and backward through time.
#
# Layout (MATLAB_SEMANTICS §17): a C x B x T MATLAB array is, in memory, a C-ordered
# T x B x C array, so every time step is one row-major B x C block.  Learnables are
# row-major (gates*H) x C and (gates*H) x H matrices with MATLAB's gate blocks of H rows
# (LSTM i, f, g, o; GRU r, z, n).
#
# Forward: the input projection of all time steps is one gemm (split into fixed blocks of
# rows for the threads); the recurrence runs one job per fixed chunk of CHUNK observations
# (the chunks are independent through time, so a job runs every time step of its chunk
# with no synchronisation): per step one gemm with the recurrent weights, then the gates,
# fused, element by element.
#
# Backward: the same jobs walk the steps backwards and store the gate gradients of every
# step; the weight gradients, bias gradients and input gradients are then single gemms
# over all T*B rows (split into fixed blocks of output rows), so every sum is computed in
# the same order whatever the number of threads.
from cython cimport floating
from cython.parallel cimport prange
from libc.math cimport exp, tanh, fabs, expf, tanhf, fabsf
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy

from _blas cimport gemm
from _openmp cimport omp_get_max_threads

DEF CHUNK = 16      # observations per recurrence job (fixed: thread-count independent)
DEF ROWS = 64       # output rows per weight/input-gradient gemm job

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
    cdef int prev = 0
    if _blas_get != NULL and _blas_set != NULL:
        prev = _blas_get()
        if prev != 1:
            _blas_set(1)
    return prev


cdef inline void _blas_release(int prev) noexcept nogil:
    if _blas_set != NULL and prev > 1:
        _blas_set(prev)


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


# --------------------------------------------------------------------------- shared phases

cdef void _project(const floating* x, const floating* w, const floating* b,
                   floating* g, Py_ssize_t rows, Py_ssize_t c, Py_ssize_t n,
                   int nthreads) noexcept nogil:
    # g[rows, n] = x[rows, c] @ w[n, c]^T + b  (the input projection of every step)
    cdef Py_ssize_t nblk = (rows + ROWS - 1) // ROWS
    cdef Py_ssize_t blk, r0, nr, i, j
    for blk in prange(nblk, num_threads=nthreads, schedule='static'):
        r0 = blk * ROWS
        nr = min(<Py_ssize_t>ROWS, rows - r0)
        for i in range(r0, r0 + nr):
            for j in range(n):
                g[i * n + j] = b[j]
        gemm(False, True, <int>nr, <int>n, <int>c, <floating>1, x + r0 * c, <int>c,
             w, <int>c, <floating>1, g + r0 * n, <int>n)


cdef void _weight_grads(const floating* dg, Py_ssize_t ldg, Py_ssize_t ngates,
                        Py_ssize_t h, Py_ssize_t rows,
                        const floating* x, Py_ssize_t c, floating* dw,
                        const floating* hp, const floating* hp_last, floating* dr,
                        floating* db, int nthreads) noexcept nogil:
    # dw[ngates*h, c] = dg^T x ; dr[ngates*h, h] = dg^T hp (the last gate block against
    # hp_last: the GRU's r .* h in 'before-multiplication' mode) ; db = column sums of dg.
    # A NULL dw, dr or db is skipped.  Jobs are fixed blocks of output rows within one gate
    # block, each a full-K gemm, so the sums do not depend on the number of threads.
    cdef Py_ssize_t per_gate = (h + ROWS - 1) // ROWS
    cdef Py_ssize_t njobs = ngates * per_gate
    cdef Py_ssize_t job, gate, m0, nm, i, j
    cdef const floating* src
    cdef floating s
    for job in prange(njobs, num_threads=nthreads, schedule='dynamic'):
        gate = job // per_gate
        m0 = gate * h + (job % per_gate) * ROWS
        nm = min(<Py_ssize_t>ROWS, (gate + 1) * h - m0)
        if dw != NULL:
            gemm(True, False, <int>nm, <int>c, <int>rows, <floating>1, dg + m0, <int>ldg,
                 x, <int>c, <floating>0, dw + m0 * c, <int>c)
        if dr != NULL:
            src = hp_last if gate == ngates - 1 else hp
            gemm(True, False, <int>nm, <int>h, <int>rows, <floating>1, dg + m0, <int>ldg,
                 src, <int>h, <floating>0, dr + m0 * h, <int>h)
        if db != NULL:
            for j in range(m0, m0 + nm):
                s = 0
                for i in range(rows):
                    s = s + dg[i * ldg + j]
                db[j] = s


cdef void _input_grads(const floating* dg, Py_ssize_t n, const floating* w, Py_ssize_t c,
                       floating* dx, Py_ssize_t rows, int nthreads) noexcept nogil:
    # dx[rows, c] = dg[rows, n] @ w[n, c]
    cdef Py_ssize_t nblk = (rows + ROWS - 1) // ROWS
    cdef Py_ssize_t blk, r0, nr
    for blk in prange(nblk, num_threads=nthreads, schedule='static'):
        r0 = blk * ROWS
        nr = min(<Py_ssize_t>ROWS, rows - r0)
        gemm(False, False, <int>nr, <int>c, <int>n, <floating>1, dg + r0 * n, <int>n,
             w, <int>c, <floating>0, dx + r0 * c, <int>c)


# --------------------------------------------------------------------------- LSTM

def lstm_forward(const floating[:, :, ::1] x, const floating[:, ::1] w,
                 const floating[:, ::1] r, const floating[::1] b,
                 floating[:, :, ::1] hs, floating[:, :, ::1] cs,
                 floating[:, :, ::1] gates, int sact, int gact, int nthreads):
    """hs[0], cs[0] hold the initial states; fills hs[1:], cs[1:] and the activated gates
    (T x B x 4H, blocks i, f, g, o)."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], C = x.shape[2], H = r.shape[1]
    cdef Py_ssize_t G = 4 * H
    cdef Py_ssize_t nchunks = (B + CHUNK - 1) // CHUNK
    cdef Py_ssize_t ch, b0, nb, t, i, j
    cdef floating* gt
    cdef floating* hp
    cdef floating* cp
    cdef floating* hn
    cdef floating* cn
    cdef floating gi, gf, gg, go, c
    cdef int prev
    if T == 0 or B == 0:
        return
    with nogil:
        prev = _blas_hold()
        _project(&x[0, 0, 0], &w[0, 0], &b[0], &gates[0, 0, 0], T * B, C, G, nthreads)
        for ch in prange(nchunks, num_threads=nthreads, schedule='dynamic'):
            b0 = ch * CHUNK
            nb = min(<Py_ssize_t>CHUNK, B - b0)
            for t in range(T):
                gt = &gates[t, b0, 0]
                hp = &hs[t, b0, 0]
                cp = &cs[t, b0, 0]
                hn = &hs[t + 1, b0, 0]
                cn = &cs[t + 1, b0, 0]
                gemm(False, True, <int>nb, <int>G, <int>H, <floating>1, hp, <int>H,
                     &r[0, 0], <int>H, <floating>1, gt, <int>G)
                for i in range(nb):
                    for j in range(H):
                        gi = _gate_act(gt[i * G + j], gact)
                        gf = _gate_act(gt[i * G + H + j], gact)
                        gg = _state_act(gt[i * G + 2 * H + j], sact)
                        go = _gate_act(gt[i * G + 3 * H + j], gact)
                        c = gf * cp[i * H + j] + gi * gg
                        cn[i * H + j] = c
                        hn[i * H + j] = go * _state_act(c, sact)
                        gt[i * G + j] = gi
                        gt[i * G + H + j] = gf
                        gt[i * G + 2 * H + j] = gg
                        gt[i * G + 3 * H + j] = go
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
    cdef Py_ssize_t nchunks = (B + CHUNK - 1) // CHUNK
    cdef Py_ssize_t ch, b0, nb, t, i, j, k
    cdef const floating* gt
    cdef floating* dgt
    cdef floating gi, gf, gg, go, c, sc, dhc, dcc
    cdef int prev
    if T == 0 or B == 0:
        return
    with nogil:
        prev = _blas_hold()
        for ch in prange(nchunks, num_threads=nthreads, schedule='dynamic'):
            b0 = ch * CHUNK
            nb = min(<Py_ssize_t>CHUNK, B - b0)
            for t in range(T - 1, -1, -1):
                gt = &gates[t, b0, 0]
                dgt = &dg[t, b0, 0]
                for i in range(nb):
                    for j in range(H):
                        k = i * G + j
                        gi = gt[k]
                        gf = gt[k + H]
                        gg = gt[k + 2 * H]
                        go = gt[k + 3 * H]
                        c = cs[t + 1, b0 + i, j]
                        sc = _state_act(c, sact)
                        dhc = dh[b0 + i, j]
                        if has_dy:
                            dhc = dhc + dy[t, b0 + i, j]
                        dcc = dc[b0 + i, j] + dhc * go * _state_grad(sc, sact)
                        dgt[k] = dcc * gg * _gate_grad(gi, gact)
                        dgt[k + H] = dcc * cs[t, b0 + i, j] * _gate_grad(gf, gact)
                        dgt[k + 2 * H] = dcc * gi * _state_grad(gg, sact)
                        dgt[k + 3 * H] = dhc * sc * _gate_grad(go, gact)
                        dc[b0 + i, j] = dcc * gf
                gemm(False, False, <int>nb, <int>H, <int>G, <floating>1, dgt, <int>G,
                     &r[0, 0], <int>H, <floating>0, &dh[b0, 0], <int>H)
        _weight_grads(&dg[0, 0, 0], G, 4, H, T * B, &x[0, 0, 0], C, &dw[0, 0],
                      &hs[0, 0, 0], &hs[0, 0, 0], &dr[0, 0], &db[0], nthreads)
        if need_dx:
            _input_grads(&dg[0, 0, 0], G, &w[0, 0], C, &dx[0, 0, 0], T * B, nthreads)
        _blas_release(prev)


# --------------------------------------------------------------------------- GRU

def gru_forward(const floating[:, :, ::1] x, const floating[:, ::1] w,
                const floating[:, ::1] r, const floating[::1] b, const floating[::1] rb,
                floating[:, :, ::1] hs, floating[:, :, ::1] gates,
                floating[:, :, ::1] hn, int mode, int sact, int gact, int nthreads):
    """hs[0] holds the initial state; fills hs[1:], the activated gates (T x B x 3H,
    blocks r, z, n) and hn (T x B x H): R_n h + rb_n in the after-multiplication modes,
    r .* h in 'before-multiplication' mode."""
    cdef Py_ssize_t T = x.shape[0], B = x.shape[1], C = x.shape[2], H = r.shape[1]
    cdef Py_ssize_t G = 3 * H
    cdef Py_ssize_t nchunks = (B + CHUNK - 1) // CHUNK
    cdef Py_ssize_t ch, b0, nb, t, i, j, k
    cdef floating* gt
    cdef floating* hp
    cdef floating* hnew
    cdef floating* hnt
    cdef floating* gh
    cdef floating rr, z, n, v
    cdef int prev
    if T == 0 or B == 0:
        return
    with nogil:
        prev = _blas_hold()
        _project(&x[0, 0, 0], &w[0, 0], &b[0], &gates[0, 0, 0], T * B, C, G, nthreads)
        for ch in prange(nchunks, num_threads=nthreads, schedule='dynamic'):
            b0 = ch * CHUNK
            nb = min(<Py_ssize_t>CHUNK, B - b0)
            gh = <floating*>malloc(CHUNK * G * sizeof(floating))
            for t in range(T):
                gt = &gates[t, b0, 0]
                hp = &hs[t, b0, 0]
                hnew = &hs[t + 1, b0, 0]
                hnt = &hn[t, b0, 0]
                if mode == BEFORE:
                    gemm(False, True, <int>nb, <int>(2 * H), <int>H, <floating>1, hp, <int>H,
                         &r[0, 0], <int>H, <floating>0, gh, <int>G)
                    for i in range(nb):
                        for j in range(H):
                            k = i * G + j
                            rr = _gate_act(gt[k] + gh[k], gact)
                            gt[k] = rr
                            gt[k + H] = _gate_act(gt[k + H] + gh[k + H], gact)
                            hnt[i * H + j] = rr * hp[i * H + j]
                    gemm(False, True, <int>nb, <int>H, <int>H, <floating>1, hnt, <int>H,
                         &r[2 * H, 0], <int>H, <floating>0, gh + 2 * H, <int>G)
                    for i in range(nb):
                        for j in range(H):
                            k = i * G + j
                            z = gt[k + H]
                            n = _state_act(gt[k + 2 * H] + gh[k + 2 * H], sact)
                            gt[k + 2 * H] = n
                            hnew[i * H + j] = (1 - z) * n + z * hp[i * H + j]
                else:
                    gemm(False, True, <int>nb, <int>G, <int>H, <floating>1, hp, <int>H,
                         &r[0, 0], <int>H, <floating>0, gh, <int>G)
                    for i in range(nb):
                        for j in range(H):
                            k = i * G + j
                            rr = _gate_act(gt[k] + gh[k] + rb[j], gact)
                            z = _gate_act(gt[k + H] + gh[k + H] + rb[H + j], gact)
                            v = gh[k + 2 * H] + rb[2 * H + j]
                            n = _state_act(gt[k + 2 * H] + rr * v, sact)
                            gt[k] = rr
                            gt[k + H] = z
                            gt[k + 2 * H] = n
                            hnt[i * H + j] = v
                            hnew[i * H + j] = (1 - z) * n + z * hp[i * H + j]
            free(gh)
        _blas_release(prev)


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
    cdef Py_ssize_t nchunks = (B + CHUNK - 1) // CHUNK
    cdef Py_ssize_t ch, b0, nb, t, i, j, k
    cdef const floating* gt
    cdef const floating* hp
    cdef const floating* hnt
    cdef floating* ax
    cdef floating* ah
    cdef floating* drh
    cdef floating* dhb
    cdef floating rr, z, n, dhc, dpn, dr_, dpz, dpr
    cdef int prev
    if T == 0 or B == 0:
        return
    with nogil:
        prev = _blas_hold()
        for ch in prange(nchunks, num_threads=nthreads, schedule='dynamic'):
            b0 = ch * CHUNK
            nb = min(<Py_ssize_t>CHUNK, B - b0)
            drh = <floating*>malloc(CHUNK * H * sizeof(floating))
            dhb = &dh[b0, 0]
            for t in range(T - 1, -1, -1):
                gt = &gates[t, b0, 0]
                hp = &hs[t, b0, 0]
                hnt = &hn[t, b0, 0]
                ax = &dgx[t, b0, 0]
                ah = &dgh[t, b0, 0]
                if mode == BEFORE:
                    for i in range(nb):
                        for j in range(H):
                            k = i * G + j
                            z = gt[k + H]
                            n = gt[k + 2 * H]
                            dhc = dhb[i * H + j]
                            if has_dy:
                                dhc = dhc + dy[t, b0 + i, j]
                            ax[k + 2 * H] = dhc * (1 - z) * _state_grad(n, sact)
                            ax[k + H] = dhc * (hp[i * H + j] - n) * _gate_grad(z, gact)
                            dhb[i * H + j] = dhc * z
                    # d(r .* h) = dpre_n @ R_n
                    gemm(False, False, <int>nb, <int>H, <int>H, <floating>1, ax + 2 * H,
                         <int>G, &r[2 * H, 0], <int>H, <floating>0, drh, <int>H)
                    for i in range(nb):
                        for j in range(H):
                            k = i * G + j
                            rr = gt[k]
                            ax[k] = drh[i * H + j] * hp[i * H + j] * _gate_grad(rr, gact)
                            dhb[i * H + j] = dhb[i * H + j] + drh[i * H + j] * rr
                    gemm(False, False, <int>nb, <int>H, <int>(2 * H), <floating>1, ax,
                         <int>G, &r[0, 0], <int>H, <floating>1, dhb, <int>H)
                else:
                    for i in range(nb):
                        for j in range(H):
                            k = i * G + j
                            rr = gt[k]
                            z = gt[k + H]
                            n = gt[k + 2 * H]
                            dhc = dhb[i * H + j]
                            if has_dy:
                                dhc = dhc + dy[t, b0 + i, j]
                            dpn = dhc * (1 - z) * _state_grad(n, sact)
                            dpz = dhc * (hp[i * H + j] - n) * _gate_grad(z, gact)
                            dpr = dpn * hnt[i * H + j] * _gate_grad(rr, gact)
                            ax[k] = dpr
                            ax[k + H] = dpz
                            ax[k + 2 * H] = dpn
                            ah[k] = dpr
                            ah[k + H] = dpz
                            ah[k + 2 * H] = dpn * rr
                            dhb[i * H + j] = dhc * z
                    gemm(False, False, <int>nb, <int>H, <int>G, <floating>1, ah, <int>G,
                         &r[0, 0], <int>H, <floating>1, dhb, <int>H)
            free(drh)
        if mode == BEFORE:
            _weight_grads(&dgx[0, 0, 0], G, 3, H, T * B, &x[0, 0, 0], C, &dw[0, 0],
                          &hs[0, 0, 0], &hn[0, 0, 0], &dr[0, 0], &db[0], nthreads)
        else:
            _weight_grads(&dgx[0, 0, 0], G, 3, H, T * B, &x[0, 0, 0], C, &dw[0, 0],
                          NULL, NULL, NULL, &db[0], nthreads)
            # the recurrent pre-activations differ from the input ones in the n block
            _weight_grads(&dgh[0, 0, 0], G, 3, H, T * B, NULL, C, NULL,
                          &hs[0, 0, 0], &hs[0, 0, 0], &dr[0, 0], &drb[0], nthreads)
        if need_dx:
            _input_grads(&dgx[0, 0, 0], G, &w[0, 0], C, &dx[0, 0, 0], T * B, nthreads)
        _blas_release(prev)
