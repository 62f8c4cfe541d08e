/* Non-temporal ("streaming") stores for results that do not fit in the caches.
 *
 * A plain store first reads the destination's cache line from memory (read for ownership),
 * so an elementwise pass over arrays larger than the last-level cache moves the result
 * twice.  SSE2's non-temporal stores write whole lines without reading them: a leaky ReLU
 * over 6.4 M floats took 1.54 ms with plain stores and 1.19-1.21 ms with these (1 thread,
 * this machine).  The values stored are the same; only the cache traffic changes.  Below
 * the cache size they lose (the next layer would have found the result in the cache), so
 * the seams ask for them only for large arrays (mlayers/_ops_norm.py, `_stream`).
 *
 * Results are computed into local blocks of STREAM_BYTES (four 64-byte lines, kept in L1),
 * and each block is stored with 16-byte non-temporal stores while the next one is
 * computed (STREAM_BLOCKS): on this AMD machine, mixing non-temporal stores into a
 * vectorized loop's own stores, or storing one line per block, ran 3-4 times slower than
 * plain stores, and loading a block right after computing it waits on store forwarding.
 * Only whole 64-byte-aligned blocks stream; the elements before the first and after the
 * last go through plain stores.
 *
 * Non-temporal stores are weakly ordered: every thread that streamed calls stream_fence()
 * once after its last one, before the threads join (the launchers in the .pyx files do it
 * at the end of their parallel blocks; a fence per 4096 floats costs 7 %).
 */
#ifndef MLAYERS_STREAM_H
#define MLAYERS_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#if defined(__SSE2__) || defined(_M_X64)
#include <emmintrin.h>
#define STREAM_SSE2 1
#else
#define STREAM_SSE2 0
#endif

/* inlined into every target_clones body: a call would cost a vzeroupper and a transition
 * from the caller's AVX code to this SSE code per block */
#if defined(__GNUC__)
#define STREAM_INLINE static inline __attribute__((always_inline))
#else
#define STREAM_INLINE static inline
#endif

#define STREAM_BYTES 256
#define STREAM_N(T) ((ptrdiff_t)(STREAM_BYTES / sizeof(T)))

/* [*s0, *s1): the whole 64-byte-aligned blocks of STREAM_BYTES within y[0, n) (empty when
 * none, or when the machine has no non-temporal stores) */
STREAM_INLINE void stream_span(const void *y, size_t size, ptrdiff_t n, ptrdiff_t *s0,
                               ptrdiff_t *s1)
{
    ptrdiff_t head = (ptrdiff_t)((64 - ((uintptr_t)y & 63)) & 63), nb = STREAM_BYTES / size;
    *s0 = *s1 = 0;
    if (!STREAM_SSE2 || head % (ptrdiff_t)size != 0)
        return;
    head /= (ptrdiff_t)size;
    if (n - head < nb)
        return;
    *s0 = head;
    *s1 = head + (n - head) / nb * nb;
}

/* STREAM_BYTES from src to the 64-byte-aligned dst, bypassing the caches */
STREAM_INLINE void stream_store(void *dst, const void *src)
{
#if STREAM_SSE2
    for (int k = 0; k < STREAM_BYTES / 16; k++)
        _mm_stream_ps((float *)dst + 4 * k, _mm_loadu_ps((const float *)src + 4 * k));
#else
    memcpy(dst, src, STREAM_BYTES);
#endif
}

STREAM_INLINE void stream_fence(void)
{
#if STREAM_SSE2
    _mm_sfence();
#endif
}

/* The aligned blocks [S0, S1) of Y (from stream_span): each filled by the statement after
 * I and BUF (STREAM_N(T) values for Y[I ..] into the local block BUF) and stored
 * non-temporally while the next one is filled.  No fence (see above). */
#define STREAM_BLOCKS(T, Y, S0, S1, I, BUF, ...)                                          \
    do {                                                                                  \
        T sb_blocks[2][STREAM_N(T)];                                                      \
        int sb_k = 0;                                                                     \
        for (ptrdiff_t I = (S0); I < (S1); I += STREAM_N(T), sb_k ^= 1) {                 \
            T *restrict BUF = sb_blocks[sb_k];                                            \
            __VA_ARGS__;                                                                  \
            if (I > (S0))                                                                 \
                stream_store((Y) + I - STREAM_N(T), sb_blocks[sb_k ^ 1]);                 \
        }                                                                                 \
        if ((S1) > (S0))                                                                  \
            stream_store((Y) + (S1) - STREAM_N(T), sb_blocks[sb_k ^ 1]);                  \
    } while (0)

/* Plain stores run in chunks of STREAM_CHUNK bytes, each first asking for the lines of Y
 * STREAM_AHEAD bytes further on: a store that misses waits for its line to be read, and
 * the hardware prefetchers did not run far enough ahead of these stores on the Intel host
 * (relu, its backward and add over 6.4 M floats: 1.37-1.39x on 1 thread, 1.06-1.07x on
 * 2).  A separate loop, so the computing loop stays as it vectorizes.  Only for runs of
 * STREAM_PREFETCH_MIN bytes or more: the rows of small planes (7 x 7) are too short to
 * reach the lines asked for, and the requests cost them 10-25 %.  Prefetches do not
 * fault: past the end of Y they cost only the request. */
#define STREAM_CHUNK 1024
#define STREAM_AHEAD 2048
#define STREAM_PREFETCH_MIN 4096
/* ask for the lines of the BYTES bytes STREAM_AHEAD bytes past P (also the activations'
 * loops, pyx/_act_rows.h) */
#define STREAM_PREFETCH(P, BYTES)                                                         \
    for (int st_l = 0; st_l < (int)(BYTES); st_l += 64)                                   \
        __builtin_prefetch((const char *)(P) + STREAM_AHEAD + st_l)

/* for (I = 0; I < N; I++) Y[I] = EXPR;  with, when STREAM is nonzero, Y's whole aligned
 * blocks stored non-temporally (STREAM_BLOCKS), else the chunks above.  EXPR may read Y[I]
 * itself: a block is stored after all its elements and the next block's are read. */
#define STREAM_FOR(T, STREAM, Y, N, I, EXPR)                                              \
    do {                                                                                  \
        T *st_y = (Y);                                                                    \
        ptrdiff_t st_n = (N), st_0 = 0, st_1 = 0, I;                                      \
        if (!(STREAM) && st_n * (ptrdiff_t)sizeof(T) >= STREAM_PREFETCH_MIN) {            \
            const ptrdiff_t st_ch = STREAM_CHUNK / (ptrdiff_t)sizeof(T);                  \
            for (ptrdiff_t st_c = 0; st_c < st_n; st_c += st_ch) {                        \
                STREAM_PREFETCH(st_y + st_c, STREAM_CHUNK);                               \
                const ptrdiff_t st_e = st_c + st_ch < st_n ? st_c + st_ch : st_n;         \
                for (I = st_c; I < st_e; I++)                                             \
                    st_y[I] = (EXPR);                                                     \
            }                                                                             \
            break;                                                                        \
        }                                                                                 \
        if (STREAM)                                                                       \
            stream_span(st_y, sizeof(T), st_n, &st_0, &st_1);                             \
        for (I = 0; I < st_0; I++)                                                        \
            st_y[I] = (EXPR);                                                             \
        STREAM_BLOCKS(T, st_y, st_0, st_1, st_i, st_o,                                    \
                      for (I = st_i; I < st_i + STREAM_N(T); I++) st_o[I - st_i] = (EXPR)); \
        for (I = st_1; I < st_n; I++)                                                     \
            st_y[I] = (EXPR);                                                             \
    } while (0)

#endif
