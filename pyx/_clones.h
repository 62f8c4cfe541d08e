/* What the C row loops of the norm and pooling kernels share (_norm_rows.h, _pool_rows.h):
 * MLAYERS_CLONES builds a function for AVX-512 (x86-64-v4), AVX2 (x86-64-v3) and baseline
 * x86-64 (GCC's target_clones; the loader picks one), so a portable build still runs them
 * at the machine's vector width; and `restrict` for MSVC.  (Their selects, x > 0 ? a : b
 * and NaN tests, become vector blends only without trapping math: each header says so for
 * its own code.) */
#ifndef MLAYERS_CLONES_H
#define MLAYERS_CLONES_H

#if defined(_MSC_VER) && !defined(restrict)
#define restrict __restrict
#endif

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__) \
    && !defined(MLAYERS_NO_CLONES)
#define MLAYERS_CLONES \
    __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define MLAYERS_CLONES
#endif

/* v[0 .. L) <- their transpose (v[r]: row r of an L x L block, vectors of type VT) in
 * log2(L) rounds, each zipping row r with row r + L/2 into rows 2r and 2r + 1 (the two
 * vectors' first halves, then their second halves, interleaved element by element): a
 * round moves an element's row and column bits one place around, so log2(L) rounds swap
 * them.  (_simd.h's fully connected kernels, _pool_rows.h's plane sums.) */
#define MLAYERS_TRANSPOSE(VT, L, v)                                                       \
    do {                                                                                  \
        __typeof__((VT){0} < (VT){0}) tr_lo, tr_hi;                                       \
        for (int tr_u = 0; tr_u < (L); tr_u++) {                                          \
            tr_lo[tr_u] = (tr_u % 2 ? (L) : 0) + tr_u / 2;                                \
            tr_hi[tr_u] = tr_lo[tr_u] + (L) / 2;                                          \
        }                                                                                 \
        for (int tr_round = 1; tr_round < (L); tr_round *= 2) {                           \
            VT tr_z[L];                                                                   \
            for (int tr_r = 0; tr_r < (L) / 2; tr_r++) {                                  \
                tr_z[2 * tr_r] = __builtin_shuffle((v)[tr_r], (v)[tr_r + (L) / 2], tr_lo);\
                tr_z[2 * tr_r + 1] = __builtin_shuffle((v)[tr_r], (v)[tr_r + (L) / 2],    \
                                                       tr_hi);                            \
            }                                                                             \
            for (int tr_r = 0; tr_r < (L); tr_r++) (v)[tr_r] = tr_z[tr_r];                \
        }                                                                                 \
    } while (0)

#endif
