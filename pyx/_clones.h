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

#endif
