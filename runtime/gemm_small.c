/* gradc's own kernel for the matrix products of MLP layers: C = op(A) @ op(B), row-major,
 * alpha 1, beta 0 (all that generated code asks of poolgemm.c), with a short inner
 * dimension per pass and up to a few hundred columns.
 *
 * Why not OpenBLAS: single-threaded on a Zen 4 core (DGEMM peak about 53 GFLOP/s), it
 * runs a layer's (2048x64) @ (64x64) at 40-44 GFLOP/s, (2048x16) @ (16x64) at 31-37 and
 * X^T @ G of 65536 rows at 24-28; with beta = 0 it also zeroes C (a memset pass) before
 * its kernel writes it.  These shapes are too small for its blocking to pay off.
 *
 * How: op(B) is packed once per pass of at most GEMM_KC values of k into panels of NR
 * columns ([kc][NR] each, the last panel zero-padded), which stay in L1/L2 while every row
 * of A passes.  For MR rows of op(A) at a time (read where they are, not packed; held in
 * L1 while they meet every panel), an MR x NR tile of C lives in registers: for each k,
 * the NR/L vectors of the panel meet the MR broadcast elements of op(A).  The tile is
 * stored once (added to C on the passes after the first), so C is written once when
 * K <= GEMM_KC.  Every element of C is the sum over k in increasing order, one fused
 * multiply-add at a time, whichever rows a thread takes: the bits do not depend on how
 * rows are split.
 *
 * Bounds: op(A) is read one element at a time at rows < M (a short tile repeats its last
 * row) and k < K; op(B) only through the packed copy, whose panels are whole; C is written
 * only at rows < M and columns < N (a short panel through a local row).  No load can read
 * past an operand.
 *
 * Compiled for x86-64-v4 (32 vector registers: a 6 x 16 double tile, 24 accumulators) and
 * x86-64-v3 (16 registers: 6 x 8, 12 accumulators); on other CPUs gradc_gemm_small
 * declines and the caller runs BLAS.  Included by callpath.c after skinny.c (vd, vf, their
 * unaligned forms, skinny_lanes_ok).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(GRADC_NO_CLONES)
#define GRADC_GEMM_SMALL 1

/* Values of k per pass: a panel of 16 doubles is then 32 KB, and all of op(B) for N = 256
 * is 512 KB, inside Zen 4's 1 MB L2. */
#define GEMM_KC 256

#define GEMM_PRAGMA_UNROLL _Pragma("GCC unroll 32")

/* Rows [k0, k0 + kc) of op(B) (op(B) = B [K, N], or B^T with B [N, K] when tb) into
 * panels of NR columns: panel p at Bp + p * kc * NR, element (k, j) at k * NR + j. */
#define GEMM_PACK(ATTR, NAME, T)                                                             \
    ATTR static void NAME(int tb, const T *B, int64_t ldb, int64_t k0, int64_t kc, int64_t N, \
                              int64_t NR, T *Bp) {                                           \
        for (int64_t j0 = 0; j0 < N; j0 += NR, Bp += kc * NR) {                              \
            int64_t nb = N - j0 < NR ? N - j0 : NR;                                          \
            if (tb) {                                                                        \
                for (int64_t j = 0; j < NR; j++)                                             \
                    for (int64_t k = 0; k < kc; k++)                                         \
                        Bp[k * NR + j] = j < nb ? B[(j0 + j) * ldb + k0 + k] : (T)0;         \
            } else if (nb == NR) {   /* a whole panel: plain copies, which vectorize */        \
                for (int64_t k = 0; k < kc; k++) {                                           \
                    const T *b = B + (k0 + k) * ldb + j0;                                    \
                    for (int64_t j = 0; j < NR; j++) Bp[k * NR + j] = b[j];                  \
                }                                                                            \
            } else {                                                                         \
                for (int64_t k = 0; k < kc; k++) {                                           \
                    const T *b = B + (k0 + k) * ldb + j0;                                    \
                    for (int64_t j = 0; j < NR; j++) Bp[k * NR + j] = j < nb ? b[j] : (T)0;  \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

/* Rows [m0, m1) of C (+)= op(A)[:, pass] @ packed op(B)[pass, :]: element (i, k) of op(A) at
 * A[i * SA + k * SK] (A already offset to the pass's first k).  NAME's tile is MR rows by
 * NV vectors V. */
#define GEMM_TILES(ATTR, NAME, T, V, MR, NV, SA, SK)                                         \
    ATTR static void NAME(int64_t m0, int64_t m1, int64_t N, int64_t kc, const T *A, int64_t lda, \
                          const T *Bp, T *C, int64_t ldc, int accumulate, const T *next_b,     \
                          int64_t ldb, int64_t next_rows) {                                  \
        enum { L = sizeof(V) / sizeof(T), NR = NV * L, LINE = 64 / sizeof(T) };              \
        (void)lda;                                                                           \
        /* the next pass's rows of B (next_rows of them, N wide), one line per step of the    \
         * first panels, so that packing them finds them in cache */                        \
        int64_t pf_row = 0, pf_col = 0;                                                      \
        for (int64_t i = m0; i < m1; i += MR) {                                              \
            int rb = m1 - i < MR ? (int)(m1 - i) : MR;                                       \
            const T *a[MR];                                                                  \
            GEMM_PRAGMA_UNROLL for (int r = 0; r < MR; r++)                                  \
                a[r] = A + (i + (r < rb ? r : rb - 1)) * (SA);  /* short tile: repeat a row */ \
            const T *bp = Bp;                                                                \
            for (int64_t j0 = 0; j0 < N; j0 += NR, bp += kc * NR) {                          \
                V acc[MR][NV];                                                               \
                GEMM_PRAGMA_UNROLL for (int r = 0; r < MR; r++)                              \
                    GEMM_PRAGMA_UNROLL for (int v = 0; v < NV; v++) acc[r][v] = (V){0};      \
                for (int64_t k = 0; k < kc; k++) {                                           \
                    /* the next tile's rows of A, once per cache line, on the first panel \
                     * (each row of A may start a new page for the hardware prefetcher) */ \
                    if ((SK) == 1 && j0 == 0 && (k & (64 / (int64_t)sizeof(T) - 1)) == 0)    \
                        GEMM_PRAGMA_UNROLL for (int r = 0; r < MR; r++)                      \
                            __builtin_prefetch(a[r] + MR * (SA) + k, 0, 3);                  \
                    /* A^T: the same columns of the next pass's row k, which this pass's   \
                     * tiles fetch line by line at a stride the prefetcher does not cover */ \
                    if ((SA) == 1 && j0 == 0) __builtin_prefetch(a[0] + (k + kc) * (SK), 0, 2); \
                    if (j0 == 0 && pf_row < next_rows) {                                     \
                        __builtin_prefetch(next_b + pf_row * ldb + pf_col, 0, 2);            \
                        pf_col += LINE;                                                      \
                        if (pf_col >= N) pf_col = 0, pf_row++;                               \
                    }                                                                        \
                    V b[NV];                                                                 \
                    GEMM_PRAGMA_UNROLL for (int v = 0; v < NV; v++)                          \
                        b[v] = *(const V##u *)(bp + k * NR + v * L);                         \
                    GEMM_PRAGMA_UNROLL for (int r = 0; r < MR; r++) {                        \
                        T x = a[r][k * (SK)];                                                \
                        GEMM_PRAGMA_UNROLL for (int v = 0; v < NV; v++) acc[r][v] += x * b[v]; \
                    }                                                                        \
                }                                                                            \
                int64_t nb = N - j0;                                                         \
                /* the next tile's lines of C, for writing: its first touch would otherwise \
                 * wait for each line (C is written once, never read before) */             \
                if (i + MR < m1)                                                             \
                    for (int r = 0; r < MR; r++)                                             \
                        for (int64_t j = 0; j < (nb < NR ? nb : NR); j += 64 / (int64_t)sizeof(T)) \
                            __builtin_prefetch(C + (i + MR + r) * ldc + j0 + j, 1, 3);       \
                /* unrolled over the tile's rows, so the accumulators stay in registers   \
                 * (a loop to rb kept them on the stack: 24 more stores and loads a tile) */ \
                GEMM_PRAGMA_UNROLL for (int r = 0; r < MR; r++) {                            \
                    if (r >= rb) break;                                                      \
                    T *c = C + (i + r) * ldc + j0;                                           \
                    if (nb >= NR) {                                                          \
                        GEMM_PRAGMA_UNROLL for (int v = 0; v < NV; v++) {                    \
                            V o = acc[r][v];                                                 \
                            if (accumulate) o += *(V##u *)(c + v * L);                       \
                            *(V##u *)(c + v * L) = o;                                        \
                        }                                                                    \
                    } else {                                                                 \
                        T row[NR];                                                           \
                        GEMM_PRAGMA_UNROLL for (int v = 0; v < NV; v++) *(V##u *)(row + v * L) = acc[r][v]; \
                        for (int64_t j = 0; j < nb; j++) c[j] = accumulate ? c[j] + row[j] : row[j]; \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

/* One ISA's kernels for one type: A @ op(B) (rows of A contiguous) and A^T @ op(B). */
#define GEMM_ISA(ATTR, ISA, T, V, MR, NV)                                                    \
    GEMM_PACK(ATTR, gemm_pack_##ISA##_##T, T)                                                \
    GEMM_TILES(ATTR, gemm_tiles_n_##ISA##_##T, T, V, MR, NV, lda, 1)                         \
    GEMM_TILES(ATTR, gemm_tiles_t_##ISA##_##T, T, V, MR, NV, 1, lda)

#define GEMM_V4 __attribute__((target("arch=x86-64-v4")))
#define GEMM_V3 __attribute__((target("arch=x86-64-v3")))
GEMM_ISA(GEMM_V4, v4, double, vd, 6, 4)
GEMM_ISA(GEMM_V4, v4, float, vf, 6, 4)
GEMM_ISA(GEMM_V3, v3, double, vd, 6, 2)
GEMM_ISA(GEMM_V3, v3, float, vf, 6, 2)

typedef void (*gemm_tiles_fn)(int64_t, int64_t, int64_t, int64_t, const void *, int64_t, const void *,
                              void *, int64_t, int, const void *, int64_t, int64_t);

/* Which kernels this CPU runs: 2 (x86-64-v4), 1 (x86-64-v3), 0 (neither: BLAS runs).
 * GRADC_GEMM_SMALL_ISA=v3 (or off), read once, picks a lesser one, so that the AVX2
 * kernels are tested on an AVX-512 host (tests/backends/test_gemm_small.py). */
static int gemm_small_isa(void) {
    static int isa = -1;
    if (isa < 0) {
        __builtin_cpu_init();
        int best = skinny_lanes_ok() ? 2
                   : (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ? 1 : 0;
        const char *want = getenv("GRADC_GEMM_SMALL_ISA");
        if (want && strcmp(want, "v3") == 0 && best > 1) best = 1;
        if (want && strcmp(want, "off") == 0) best = 0;
        isa = best;
    }
    return isa;
}

/* The packed panels' memory: a buffer kept by each thread for the usual sizes (a malloc
 * and free of 32 KB cost about a microsecond beside a 64x64x64 product's 10), freed when
 * the thread exits (a pthread key's destructor); anything larger allocated for the call. */
#define GEMM_KEPT_BYTES (512 << 10)
static __thread void *gemm_kept;
static pthread_key_t gemm_kept_key;
static pthread_once_t gemm_kept_once = PTHREAD_ONCE_INIT;
static int gemm_kept_key_ok;
static void gemm_kept_make_key(void) { gemm_kept_key_ok = pthread_key_create(&gemm_kept_key, free) == 0; }
static void *gemm_buffer(size_t bytes) {
    if (bytes > GEMM_KEPT_BYTES) return malloc(bytes);
    if (!gemm_kept) {
        pthread_once(&gemm_kept_once, gemm_kept_make_key);
        if (!gemm_kept_key_ok) return malloc(bytes);      /* no key: not kept */
        gemm_kept = malloc(GEMM_KEPT_BYTES);
        if (gemm_kept && pthread_setspecific(gemm_kept_key, gemm_kept) != 0) {
            free(gemm_kept);
            gemm_kept = NULL;
            return malloc(bytes);
        }
    }
    return gemm_kept;
}
static void gemm_buffer_done(void *p) {
    if (p != gemm_kept) free(p);
}

/* Rows [m0, m1) of C = op(A) @ op(B) (op(A) is [M, K]: A [M, K], or A^T with A [K, M] when
 * ta; op(B) is [K, N]).  0 when done; 1 when it declined (a CPU without AVX2 and FMA, or no
 * memory for the packed panels): nothing was written and the caller runs BLAS. */
#define GEMM_SMALL_RUN(T)                                                                \
    static int gemm_small_##T(int ta, int tb, int64_t m0, int64_t m1, int64_t N, int64_t K, const T *A, \
                              int64_t lda, const T *B, int64_t ldb, T *C, int64_t ldc) {     \
        int isa = gemm_small_isa();                                                          \
        if (isa == 0) return 1;                                                              \
        if (m1 <= m0 || N <= 0) return 0;                                                    \
        if (K <= 0) {                                                                        \
            for (int64_t i = m0; i < m1; i++)                                                \
                for (int64_t j = 0; j < N; j++) C[i * ldc + j] = 0;                          \
            return 0;                                                                        \
        }                                                                                    \
        int64_t NR = (isa == 2 ? 4 : 2) * (int64_t)(32 / sizeof(T));                         \
        gemm_tiles_fn tiles = (gemm_tiles_fn)(isa == 2 ? (ta ? gemm_tiles_t_v4_##T : gemm_tiles_n_v4_##T) \
                                                       : (ta ? gemm_tiles_t_v3_##T : gemm_tiles_n_v3_##T)); \
        /* passes of equal length: K = 300 is two passes of 150, not 256 and 44 */          \
        int64_t passes = (K + GEMM_KC - 1) / GEMM_KC, kc = (K + passes - 1) / passes;        \
        int64_t panels = (N + NR - 1) / NR;                                                  \
        size_t bytes = (size_t)(panels * NR * kc) * sizeof(T);                               \
        void *Bp = gemm_buffer(bytes);                                                       \
        if (!Bp) return 1;                                                                   \
        for (int64_t k0 = 0; k0 < K; k0 += kc) {                                             \
            int64_t kn = K - k0 < kc ? K - k0 : kc;                                          \
            if (isa == 2) gemm_pack_v4_##T(tb, B, ldb, k0, kn, N, NR, (T *)Bp);              \
            else gemm_pack_v3_##T(tb, B, ldb, k0, kn, N, NR, (T *)Bp);                       \
            int64_t next = tb ? 0 : K - k0 - kn < kc ? K - k0 - kn : kc;  /* rows of B next */ \
            tiles(m0, m1, N, kn, ta ? A + k0 * lda : A + k0, lda, Bp, C, ldc, k0 > 0,        \
                  B + (k0 + kn) * ldb, ldb, next);                                           \
        }                                                                                    \
        gemm_buffer_done(Bp);                                                                \
        return 0;                                                                            \
    }
GEMM_SMALL_RUN(double)
GEMM_SMALL_RUN(float)

#else
static int gemm_small_double(int ta, int tb, int64_t m0, int64_t m1, int64_t N, int64_t K, const double *A,
                             int64_t lda, const double *B, int64_t ldb, double *C, int64_t ldc) {
    (void)ta; (void)tb; (void)m0; (void)m1; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb; (void)C; (void)ldc;
    return 1;
}
static int gemm_small_float(int ta, int tb, int64_t m0, int64_t m1, int64_t N, int64_t K, const float *A,
                            int64_t lda, const float *B, int64_t ldb, float *C, int64_t ldc) {
    (void)ta; (void)tb; (void)m0; (void)m1; (void)N; (void)K; (void)A; (void)lda; (void)B; (void)ldb; (void)C; (void)ldc;
    return 1;
}
#endif

/* The C ABI entry the tests and harnesses call directly, whatever the shape: dtype 0
 * float64, 1 float32; ta, tb 1 for a transposed operand; C = op(A) @ op(B), all M rows.
 * 0 when done, 1 when declined (see gemm_small_*). */
int gradc_gemm_small(int32_t dtype, int32_t ta, int32_t tb, int64_t M, int64_t N, int64_t K, const void *A,
                     int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc) {
    if (dtype == 0)
        return gemm_small_double(ta, tb, 0, M, N, K, (const double *)A, lda, (const double *)B, ldb, (double *)C, ldc);
    return gemm_small_float(ta, tb, 0, M, N, K, (const float *)A, lda, (const float *)B, ldb, (float *)C, ldc);
}
