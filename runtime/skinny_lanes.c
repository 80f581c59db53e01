/* Lane-filling forms of a row pipeline's narrow products, for AVX-512 hosts.
 *
 * skinny.c's kernels hold a row of C in vectors, so C's N columns are padded to whole
 * vectors: 10 classes fill 10 of 12 float64 lanes and 10 of 16 float32 lanes, and the
 * kernels, bound by their multiply-adds, waste the rest.  These forms put the vectors
 * along a dimension hundreds long instead, and keep one accumulator per column of C:
 *
 *   NN (Z[rows] = X[rows] @ W):     vectors along k: RB rows of X against the N rows of
 *                                   W^T (packed by gradc_skinny_pack), RB x N accumulators
 *                                   of partial dot products;
 *   TN (gW^T += G[rows]^T X[rows]): vectors along the columns of X: for each row q of
 *                                   the block, CV vectors of X[q] meet the N broadcast
 *                                   elements of G[q]; N x CV accumulators hold a tile of
 *                                   gW^T ([N, M], the padded accumulator's space) for the
 *                                   whole block.
 *
 * On a block in cache (tools/skinny_speed.c; a Zen 4, 64 x 512 float64 and 128 x 512
 * float32 blocks, N from 5 to 14) NN runs at 90-96% of the core's multiply-add peak in
 * float64 and 86-96% in float32, TN at 80-96% in float64 (the wider N lowest) and
 * 96-98% in float32, where the 256-bit forms they replace ran at about 80% (float64 NN
 * and TN, float32 NN; float32 TN was already at 95%).  What that took:
 *
 * - 512-bit vectors.  Zen 4 runs them double-pumped, at the 256-bit forms' FLOP rate,
 *   with half the instructions (loads, loop overhead) per FLOP; one vector of X is one
 *   cache line.  In TN a tile of CV vectors then covers CV lines of each row of X, and
 *   float64 rows 4 KB apart (K = 512) no longer put each tile's lines in one set of L1:
 *   TN float64 went from 80% to 90%+ of peak there.
 * - NN's dot products summed by folds (lanes_fold): L accumulators become one vector of
 *   their L sums in L - 1 folds of 3 instructions, stored to C as a vector, where each
 *   sum took an extraction through the stack and a scalar add before (a tenth of NN's
 *   time at N = 10).  The folds' levels are written out one by one: as one loop over
 *   the levels GCC kept it a loop, with a division per row block.
 * - NN's rows of X and vectors of W^T held in registers (an empty asm): for N <= 3 GCC
 *   otherwise folded each row's load into every multiply-add, N loads of it per step
 *   (N = 3 ran at 31 GFLOP/s in float64, 49 with the loads held).
 * - NN's panels of k sized so the panel of W^T, RB rows of X and the RB rows prefetched
 *   for the next step share L1 (LANES_L1B), and split evenly.
 * - The k past the last vector (NN) and the columns past the last vector (TN) in one
 *   masked step each, not scalar loops.
 * - TN tiles as wide as the registers allow (LANES_CV): small N reads each row of X in
 *   more lines per broadcast of G.
 *
 * The accumulators need up to 31 vector registers, so the kernels are compiled for
 * x86-64-v4 only and used only where the CPU has AVX-512 (skinny_lanes_ok); elsewhere
 * skinny.c's padded kernels run.  While TN sums a block from cache, it prefetches the
 * same lines of the next block into L2 (one per line), so the next NN meets X in cache
 * instead of waiting on memory.  Each sum's order depends only on K, N and the block's
 * rows: the same bits on every run.  Included by skinny.c.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(GRADC_NO_CLONES)
#include <immintrin.h>
#define GRADC_SKINNY_LANES 1
#define GRADC_V4 __attribute__((target("arch=x86-64-v4")))
#define GRADC_UNROLL _Pragma("GCC unroll 32")

/* 512-bit vectors (a cache line each), their unaligned forms and their shuffle masks */
typedef double vd8 __attribute__((vector_size(64)));
typedef float vf16 __attribute__((vector_size(64)));
typedef double vd8u __attribute__((vector_size(64), aligned(8), may_alias));
typedef float vf16u __attribute__((vector_size(64), aligned(4), may_alias));
typedef int64_t lanes_mask_vd8 __attribute__((vector_size(64)));
typedef int32_t lanes_mask_vf16 __attribute__((vector_size(64)));

/* Loads and stores of the first n lanes (bit l of m: lane l): the lanes past them are
 * neither read (no fault past an array's end) nor written; masked-off loads give 0. */
GRADC_V4 static inline vd8 lanes_load_vd8(unsigned m, const double *p) { return (vd8)_mm512_maskz_loadu_pd((__mmask8)m, p); }
GRADC_V4 static inline vf16 lanes_load_vf16(unsigned m, const float *p) { return (vf16)_mm512_maskz_loadu_ps((__mmask16)m, p); }
GRADC_V4 static inline void lanes_store_vd8(unsigned m, double *p, vd8 v) { _mm512_mask_storeu_pd(p, (__mmask8)m, (__m512d)v); }
GRADC_V4 static inline void lanes_store_vf16(unsigned m, float *p, vf16 v) { _mm512_mask_storeu_ps(p, (__mmask16)m, (__m512)v); }

/* fold(x, y, s): one level of a transposing sum.  Lanes come in blocks of s; the sum
 * of x's blocks 2b and 2b+1 goes to block 2b, y's to block 2b+1.  Folding L vectors
 * pairwise at s = 1, 2, .., L/2 leaves one vector whose lane l is the sum of vector l's
 * lanes: L sums in L - 1 folds of two shuffles and an add. */
#define LANES_LO(i, s, L) (((i) / (s)) % 2 == 0 ? (i) : (L) + (i) - (s))
#define LANES_HI(i, s, L) (((i) / (s)) % 2 == 0 ? (i) + (s) : (L) + (i))
#define LANES_LIST4(F, s, L) F(0, s, L), F(1, s, L), F(2, s, L), F(3, s, L)
#define LANES_LIST8(F, s, L) LANES_LIST4(F, s, L), F(4, s, L), F(5, s, L), F(6, s, L), F(7, s, L)
#define LANES_LIST16(F, s, L) LANES_LIST8(F, s, L), F(8, s, L), F(9, s, L), F(10, s, L), F(11, s, L), \
    F(12, s, L), F(13, s, L), F(14, s, L), F(15, s, L)
#define LANES_FOLD_AT(V, L, s) \
    (__builtin_shuffle(x, y, (lanes_mask_##V){LANES_LIST##L(LANES_LO, s, L)}) \
     + __builtin_shuffle(x, y, (lanes_mask_##V){LANES_LIST##L(LANES_HI, s, L)}))
GRADC_V4 static inline vd8 lanes_fold_vd8(vd8 x, vd8 y, int s) {
    return s == 1 ? LANES_FOLD_AT(vd8, 8, 1) : s == 2 ? LANES_FOLD_AT(vd8, 8, 2) : LANES_FOLD_AT(vd8, 8, 4);
}
GRADC_V4 static inline vf16 lanes_fold_vf16(vf16 x, vf16 y, int s) {
    return s == 1 ? LANES_FOLD_AT(vf16, 16, 1) : s == 2 ? LANES_FOLD_AT(vf16, 16, 2)
         : s == 4 ? LANES_FOLD_AT(vf16, 16, 4) : LANES_FOLD_AT(vf16, 16, 8);
}

/* Accumulators per form, as many as the 32 registers hold beside the loads: NN keeps
 * RB x N sums, RB rows of X and a vector of W^T (RB = 2 for N = 10: 23 registers);
 * more rows for small N measured slower (their row pointers no longer fit in integer
 * registers).  TN keeps N x CV sums, CV vectors of a row of X and a broadcast element of
 * G.  LANES_RB, LANES_CV and LANES_L1B (below) can be set with -D to re-tune them with
 * tools/skinny_speed.c. */
#ifndef LANES_RB
#define LANES_RB(N) ((N) <= 6 ? 4 : (N) <= 9 ? 3 : (N) <= 14 ? 2 : 1)
#endif
#ifndef LANES_CV
#define LANES_CV(N) (30 / ((N) + 1) < 8 ? 30 / ((N) + 1) : 8)
#endif

/* B [K, N] (leading dimension ldb) packed for lanes_nn with vectors of L lanes: the N
 * vectors of B^T for each vector of k in turn ([K / L][N][L], read in one stream; rows of
 * B^T apart would each be 4 KB apart at K = 512, all in one set of L1), then the K % L
 * last k as [N][K % L].  N * K elements in all. */
#define LANES_PACK(T)                                                                        \
    static void lanes_pack_##T(int64_t L, int64_t N, int64_t K, const T *B, int64_t ldb, T *Bt) { \
        int64_t Kv = K - K % L;                                                              \
        for (int64_t k0 = 0; k0 < Kv; k0 += L, Bt += N * L)                                  \
            for (int64_t j = 0; j < N; j++)                                                  \
                for (int64_t l = 0; l < L; l++) Bt[j * L + l] = B[(k0 + l) * ldb + j];       \
        for (int64_t j = 0; j < N; j++)                                                      \
            for (int64_t k = Kv; k < K; k++) *Bt++ = B[k * ldb + j];                         \
    }
LANES_PACK(double)
LANES_PACK(float)
#define LANES_NN_L(T) ((int64_t)(64 / sizeof(T)))   /* lanes of vd8 and vf16 */

#ifndef LANES_L1B
#define LANES_L1B 28672
#endif

/* An NN form's k: Kv the k of whole vectors, tail the mask of the K % L past them, KB
 * the panel length (a panel of Bt beside RB rows of A and the next RB, prefetched, within
 * L1B bytes; panels split evenly, whole vectors each). */
#define LANES_K_PANELS(L1B, T, N, RB)                                                        \
    int64_t Kv = K - K % L;                                                                  \
    unsigned tail = (1u << (K - Kv)) - 1;                                                    \
    int64_t KB = (L1B) / (((N) + 2 * (RB)) * (int64_t)sizeof(T)) / L * L;                   \
    if (KB < L) KB = L;                                                                      \
    int64_t panels = (Kv + KB - 1) / KB;                                                     \
    if (panels > 1) KB = ((Kv + panels - 1) / panels + L - 1) / L * L;

/* t[0] = the L sums of t[0..L)'s lanes, level by level (loops of constant length, fully
 * unrolled; the levels past log2 L run no iteration). */
#define LANES_FOLD(V, t)                                                                     \
    GRADC_UNROLL for (int p = 0; p < L / 2; p++) t[p] = lanes_fold_##V(t[2 * p], t[2 * p + 1], 1); \
    GRADC_UNROLL for (int p = 0; p < L / 4; p++) t[p] = lanes_fold_##V(t[2 * p], t[2 * p + 1], 2); \
    GRADC_UNROLL for (int p = 0; p < L / 8; p++) t[p] = lanes_fold_##V(t[2 * p], t[2 * p + 1], 4); \
    GRADC_UNROLL for (int p = 0; p < L / 16; p++) t[p] = lanes_fold_##V(t[2 * p], t[2 * p + 1], 8);

/* C[i, j] = sum_k A[i, k] B[k, j] for rows i of [0, M): A [M, K] (leading dimension
 * lda), C leading dimension ldc, B packed by lanes_pack as Bt. */
#define LANES_NN(T, V, N)                                                                    \
    GRADC_V4 static void lanes_nn_##T##_##N(const T *A, int64_t lda, const T *Bt, int64_t K, \
                                            int64_t M, T *C, int64_t ldc) {                  \
        enum { L = sizeof(V) / sizeof(T), RB = LANES_RB(N), NA = RB * N, G = (NA + L - 1) / L }; \
        LANES_K_PANELS(LANES_L1B, T, N, RB)                                                  \
        for (int64_t kb = 0; kb < Kv || kb == 0; kb += KB) {                                 \
            int64_t ke = kb + KB < Kv ? kb + KB : Kv;                                        \
            for (int64_t i = 0; i < M; i += RB) {                                            \
                int rb = M - i < RB ? (int)(M - i) : RB;                                     \
                const T *a[RB];                                                              \
                V acc[NA];                                                                   \
                GRADC_UNROLL for (int r = 0; r < RB; r++)                                    \
                    a[r] = A + (i + (r < rb ? r : 0)) * lda;  /* short block: repeat row i */ \
                GRADC_UNROLL for (int f = 0; f < NA; f++) acc[f] = (V){0};                   \
                for (int64_t k = kb; k < ke; k += L) {                                       \
                    /* a vector is a cache line: the same line of the next RB rows (each  \
                     * row a new page for the hardware prefetcher) */                       \
                    GRADC_UNROLL for (int r = 0; r < RB; r++) __builtin_prefetch(a[r] + RB * lda + k, 0, 3); \
                    V x[RB];                                                                 \
                    GRADC_UNROLL for (int r = 0; r < RB; r++) {                              \
                        x[r] = *(const V##u *)(a[r] + k);                                    \
                        __asm__("" : "+v"(x[r]));   /* loaded once, not once per column */   \
                    }                                                                        \
                    const T *w_k = Bt + k * N;   /* the N vectors of Bt for these k */       \
                    GRADC_UNROLL for (int j = 0; j < N; j++) {                               \
                        V w = *(const V##u *)(w_k + j * L);                                  \
                        /* in a register: GCC otherwise loads it again for every row */    \
                        __asm__("" : "+v"(w));                                               \
                        GRADC_UNROLL for (int r = 0; r < RB; r++) acc[r * N + j] += x[r] * w; \
                    }                                                                        \
                }                                                                            \
                if (ke == Kv && tail) {   /* the last K % L k: masked loads */               \
                    V x[RB];                                                                 \
                    GRADC_UNROLL for (int r = 0; r < RB; r++) x[r] = lanes_load_##V(tail, a[r] + Kv); \
                    GRADC_UNROLL for (int j = 0; j < N; j++) {                               \
                        V w = lanes_load_##V(tail, Bt + Kv * N + j * (K - Kv));              \
                        GRADC_UNROLL for (int r = 0; r < RB; r++) acc[r * N + j] += x[r] * w; \
                    }                                                                        \
                }                                                                            \
                /* the NA sums, L to a vector, in the order of C's rows */                   \
                V sums[G];                                                                   \
                GRADC_UNROLL for (int g = 0; g < G; g++) {                                   \
                    V t[L];                                                                  \
                    GRADC_UNROLL for (int l = 0; l < L; l++) t[l] = g * L + l < NA ? acc[g * L + l] : (V){0}; \
                    /* the levels one by one: loops of constant length, fully unrolled */   \
                    LANES_FOLD(V, t)                                                         \
                    sums[g] = t[0];                                                          \
                }                                                                            \
                if (rb == RB && ldc == N) {   /* the block's rows of C are contiguous */    \
                    T *c = C + i * N;                                                        \
                    GRADC_UNROLL for (int g = 0; g < G; g++) {                               \
                        unsigned m = NA - g * L >= L ? (1u << L) - 1 : (1u << (NA - g * L)) - 1; \
                        V s = kb == 0 ? sums[g] : sums[g] + lanes_load_##V(m, c + g * L);    \
                        lanes_store_##V(m, c + g * L, s);                                    \
                    }                                                                        \
                } else {                                                                     \
                    T flat[G * L];                                                           \
                    GRADC_UNROLL for (int g = 0; g < G; g++) *(V##u *)(flat + g * L) = sums[g]; \
                    for (int r = 0; r < rb; r++)                                             \
                        for (int j = 0; j < N; j++) {                                        \
                            T *c = C + (i + r) * ldc + j;                                    \
                            *c = kb == 0 ? flat[r * N + j] : *c + flat[r * N + j];           \
                        }                                                                    \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

/* Ct[j, c] += sum_q A[q, c] B[q, j] over the K rows q of the block: A [K, M] (leading
 * dimension lda), B [K, N] (ldb), Ct [N, M] dense.  Tiles of CV vectors of columns, then
 * single vectors, then the last M % L columns in a masked vector. */
#define LANES_TN_TILE(T, V, N, CV, c, K, m)                                                  \
    do {                                                                                     \
        V acc[N][CV];                                                                        \
        GRADC_UNROLL for (int j = 0; j < N; j++)                                             \
            GRADC_UNROLL for (int v = 0; v < CV; v++) acc[j][v] = lanes_load_##V(m, Ct + j * M + (c) + v * L); \
        for (int64_t q = 0; q < (K); q++) {                                                  \
            const T *x = A + q * lda + (c), *g = B + q * ldb;                                \
            GRADC_UNROLL for (int v = 0; v < CV * L; v += 64 / (int)sizeof(T)) {             \
                __builtin_prefetch(x + ahead + v, 0, 2);                                     \
            }                                                                                \
            V xv[CV];                                                                        \
            GRADC_UNROLL for (int v = 0; v < CV; v++) xv[v] = lanes_load_##V(m, x + v * L);  \
            GRADC_UNROLL for (int j = 0; j < N; j++) {                                       \
                T gj = g[j];                                                                 \
                GRADC_UNROLL for (int v = 0; v < CV; v++) acc[j][v] += gj * xv[v];           \
            }                                                                                \
        }                                                                                    \
        GRADC_UNROLL for (int j = 0; j < N; j++)                                             \
            GRADC_UNROLL for (int v = 0; v < CV; v++) lanes_store_##V(m, Ct + j * M + (c) + v * L, acc[j][v]); \
    } while (0)

/* A TN form's sweep over the M columns: TILE(T, V, N, CV, c, K, mask) for tiles of CV
 * vectors, then single vectors, then the last M % L columns masked (L, A, lda, K, M in
 * scope; `ahead`, the next block's offset, for the tile's prefetches). */
#define LANES_TN_SWEEP(TILE, T, V, N, CV)                                                    \
    const unsigned all = (1u << L) - 1;                                                      \
    int64_t ahead = K * lda;   /* the next block: its rows follow this block's */           \
    int64_t c = 0;                                                                           \
    for (; c + (CV) * L <= M; c += (CV) * L) TILE(T, V, N, CV, c, K, all);                   \
    for (; c + L <= M; c += L) TILE(T, V, N, 1, c, K, all);                                  \
    if (c < M) {                                                                             \
        unsigned part = (1u << (M - c)) - 1;                                                 \
        TILE(T, V, N, 1, c, K, part);                                                        \
    }

#define LANES_TN(T, V, N)                                                                    \
    GRADC_V4 static void lanes_tn_##T##_##N(const T *A, int64_t lda, const T *B, int64_t ldb, \
                                            int64_t K, int64_t M, T *Ct) {                   \
        enum { L = sizeof(V) / sizeof(T), CV = LANES_CV(N) };                                \
        LANES_TN_SWEEP(LANES_TN_TILE, T, V, N, CV)                                           \
    }

#define LANES_KERNELS(N)                                                                     \
    LANES_NN(double, vd8, N) LANES_TN(double, vd8, N) LANES_NN(float, vf16, N) LANES_TN(float, vf16, N)
LANES_KERNELS(1) LANES_KERNELS(2) LANES_KERNELS(3) LANES_KERNELS(4)
LANES_KERNELS(5) LANES_KERNELS(6) LANES_KERNELS(7) LANES_KERNELS(8)
LANES_KERNELS(9) LANES_KERNELS(10) LANES_KERNELS(11) LANES_KERNELS(12)
LANES_KERNELS(13) LANES_KERNELS(14) LANES_KERNELS(15) LANES_KERNELS(16)

typedef void (*lanes_nn_fn)(const void *, int64_t, const void *, int64_t, int64_t, void *, int64_t);
typedef void (*lanes_tn_fn)(const void *, int64_t, const void *, int64_t, int64_t, int64_t, void *);

#define LANES_ROW(T, form, fn_t)                                                             \
    {(fn_t)lanes_##form##_##T##_1, (fn_t)lanes_##form##_##T##_2, (fn_t)lanes_##form##_##T##_3,  \
     (fn_t)lanes_##form##_##T##_4, (fn_t)lanes_##form##_##T##_5, (fn_t)lanes_##form##_##T##_6,  \
     (fn_t)lanes_##form##_##T##_7, (fn_t)lanes_##form##_##T##_8, (fn_t)lanes_##form##_##T##_9,  \
     (fn_t)lanes_##form##_##T##_10, (fn_t)lanes_##form##_##T##_11, (fn_t)lanes_##form##_##T##_12, \
     (fn_t)lanes_##form##_##T##_13, (fn_t)lanes_##form##_##T##_14, (fn_t)lanes_##form##_##T##_15, \
     (fn_t)lanes_##form##_##T##_16}
static const lanes_nn_fn lanes_nn[2][16] = {LANES_ROW(double, nn, lanes_nn_fn), LANES_ROW(float, nn, lanes_nn_fn)};
static const lanes_tn_fn lanes_tn[2][16] = {LANES_ROW(double, tn, lanes_tn_fn), LANES_ROW(float, tn, lanes_tn_fn)};

/* Does this CPU run the x86-64-v4 code (AVX-512 F, VL, BW, DQ, CD)?  Computed once. */
static int skinny_lanes_ok(void) {
    static int ok = -1;
    if (ok < 0) {
        __builtin_cpu_init();
        ok = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
             && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
             && __builtin_cpu_supports("avx512cd");
    }
    return ok;
}
#else
static int skinny_lanes_ok(void) { return 0; }
#endif
