/* Matrix products with a narrow right operand: C[M,N] = op(A) @ B with N small (a
 * linear layer with a few outputs, the 10 classes of a softmax, their gradients).
 *
 * Why not BLAS: OpenBLAS runs X[65536,512] @ W[512,10] at about 17 GFLOP/s (measured
 * here), several times slower than reading X from memory, because its kernels are tuned
 * for wide products.  With N <= 16, a row of C fits in a few vector registers:
 *
 *   NN (C = A @ B):    4 rows of A at a time, each element of a row broadcast against
 *                      the (packed, zero-padded) row of B and accumulated in registers;
 *   TN (C = A^T @ B):  A is stored [K, M] (the usual X^T @ G of a gradient): 4 rows of
 *                      A and of B at a time; the 4 rows of B stay in registers while
 *                      each column i of A updates row i of C.
 *
 * Both read A exactly once, from start to end.  Threads split the rows of C into
 * chunks (gradc_parallel_for), so every element of C is summed in the same order
 * whatever the thread count; except A^T @ B with many rows of A, where threads take
 * row ranges and per-chunk partial results are added in chunk order (the same answer
 * on every run for a given thread count, as gradc's other reductions).
 *
 * target_clones compiles each kernel for AVX-512, AVX2+FMA and baseline x86-64; the
 * loader picks the best the CPU has.  Included by callpath.c after parallel.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define GRADC_SKINNY_MAX_N 16

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && !defined(GRADC_NO_CLONES)
#define GRADC_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define GRADC_CLONES
#endif

typedef struct {
    int tn;                 /* 0: C = A @ B (A is [M,K]); 1: C = A^T @ B (A is [K,M]) */
    int64_t M, N, K, lda, ldb, ldc;
    const void *A, *B;
    void *C;
    const void *Bp;         /* NN: B packed to [K, NP], zero-padded */
    int np;
    int *failed;            /* set when a chunk could not allocate its accumulator */
} skinny_args;

/* 32-byte vectors (4 doubles, 8 floats): ymm registers on AVX2/AVX-512 hosts, pairs of
 * xmm on baseline x86-64.  NV vectors make a padded row of C (NP = NV * lanes). */
typedef double vd __attribute__((vector_size(32)));
typedef float vf __attribute__((vector_size(32)));
/* The same, for loads and stores at any element-aligned address, aliasing anything:
 * single vector moves that keep accumulators in registers (a memcpy of a whole row of
 * vectors made GCC keep them on the stack: 6 us for a 64x16 @ 16x16 product). */
typedef double vdu __attribute__((vector_size(32), aligned(8), may_alias));
typedef float vfu __attribute__((vector_size(32), aligned(4), may_alias));

#define SPLAT_double(x) ((vd){(x), (x), (x), (x)})
#define SPLAT_float(x) ((vf){(x), (x), (x), (x), (x), (x), (x), (x)})
#define SPLAT(V, T, x) SPLAT_##T(x)

/* Write the first N elements of a padded row of C held in NV vectors (both kernels end
 * so): through a local row, since C's rows are N wide, not NP. */
#define STORE_ROW(T, V, NV, L, acc_row, dst, N)                                              \
    do {                                                                                     \
        T row_[NV * L];                                                                      \
        for (int v = 0; v < NV; v++) *(V##u *)(row_ + v * L) = (acc_row)[v];                 \
        memcpy((dst), row_, (size_t)(N) * sizeof(T));                                        \
    } while (0)

/* NN, rows [r0, r1) of C, RB rows at a time: acc[RB][NV] lives in registers; for each k
 * the packed row k of B (NV vectors) meets the RB broadcast elements A[i..i+RB, k]. */
#define SKINNY_NN(T, V, NV, RB)                                                              \
    GRADC_CLONES static void skinny_nn_##T##_##NV(const skinny_args *s, int64_t r0, int64_t r1,      \
                                                  int64_t k0, int64_t k1, void *out, int64_t ldo) { \
        (void)k0; (void)k1; (void)out; (void)ldo;                                             \
        enum { L = sizeof(V) / sizeof(T), NP = NV * L };                                     \
        const T *A = (const T *)s->A, *Bp = (const T *)s->Bp;                               \
        T *C = (T *)s->C;                                                                    \
        int64_t K = s->K, N = s->N, lda = s->lda, ldc = s->ldc, i = r0;                      \
        for (; i < r1; i += RB) {                                                            \
            int rb = r1 - i < RB ? (int)(r1 - i) : RB;                                       \
            V acc[RB][NV];                                                                   \
            const T *a[RB];                                                                  \
            for (int r = 0; r < RB; r++) {                                                   \
                a[r] = A + (i + (r < rb ? r : 0)) * lda;  /* short block: repeat row 0 */     \
                for (int v = 0; v < NV; v++) acc[r][v] = (V){0};                             \
            }                                                                                \
            for (int64_t k = 0; k < K; k++) {                                                \
                /* once per cache line: the next RB rows of A, whose first touch would     \
                 * otherwise stall (each row is a new page for the hardware prefetcher) */ \
                if ((k & (64 / (int64_t)sizeof(T) - 1)) == 0 && i + RB < r1)                  \
                    for (int r = 0; r < RB; r++) __builtin_prefetch(a[r] + RB * lda + k, 0, 3); \
                V b[NV];   /* one vector load each (a memcpy of the row went through the stack) */ \
                for (int v = 0; v < NV; v++) b[v] = *(const V##u *)(Bp + k * NP + v * L);   \
                for (int r = 0; r < RB; r++) {                                               \
                    V x = SPLAT(V, T, a[r][k]);                                              \
                    for (int v = 0; v < NV; v++) acc[r][v] += x * b[v];                      \
                }                                                                            \
            }                                                                                \
            for (int r = 0; r < rb; r++) STORE_ROW(T, V, NV, L, acc[r], C + (i + r) * ldc, N); \
        }                                                                                    \
    }

/* In a TN kernel's step over rows r .. r+rb-1 (rb <= RB): B's rows into d[RB][NV] (lanes
 * past N are padding, never stored; B's last rows, and missing rows as zeros, through a
 * padded copy) and x[q] pointing at the same rows of A from column c0 (a missing row at
 * row r: its d is zero). */
#define SKINNY_LOAD_ROWS(T, V, NV, RB, c0)                                                   \
    V d[RB][NV];                                                                             \
    const T *x[RB];                                                                          \
    for (int q = 0; q < RB; q++) {                                                           \
        const T *brow = B + (r + q) * ldb;                                                   \
        if (q < rb && (r + q) * ldb + NP <= b_end) {                                         \
            for (int v = 0; v < NV; v++) d[q][v] = *(const V##u *)(brow + v * L);            \
        } else {                                                                             \
            T row[NP] = {0};                                                                 \
            if (q < rb) memcpy(row, brow, (size_t)N * sizeof(T));                            \
            for (int v = 0; v < NV; v++) d[q][v] = *(const V##u *)(row + v * L);             \
        }                                                                                    \
        x[q] = A + (r + (q < rb ? q : 0)) * lda + (c0);                                      \
    }

/* TN, rows [i0, i1) of C = columns [i0, i1) of A (A is [K, M]), summed over rows
 * [k0, k1) of A and B, written to `out` (leading dimension ldc).  Rows of A are read
 * once, in order: RB rows of B stay in registers (RB x NV vectors) while column i of
 * those RB rows of A updates row i of C, accumulated in a local block of up to
 * SKINNY_TN_COLS rows of C (at most 256 KB: it stays in L2) written once at the end. */
#define SKINNY_TN_COLS 2048
#define SKINNY_TN(T, V, NV, RB)                                                              \
    GRADC_CLONES static void skinny_tn_##T##_##NV(const skinny_args *s, int64_t i0, int64_t i1,      \
                                                  int64_t k0, int64_t k1, void *out, int64_t ldc) { \
        enum { L = sizeof(V) / sizeof(T), NP = NV * L };                                     \
        const T *A = (const T *)s->A, *B = (const T *)s->B;                                 \
        T *C = (T *)out;                                                                     \
        int64_t N = s->N, lda = s->lda, ldb = s->ldb;                                        \
        int64_t b_end = (s->K - 1) * ldb + N;  /* elements of B: vector loads stay inside */ \
        int64_t width = i1 - i0 < SKINNY_TN_COLS ? i1 - i0 : SKINNY_TN_COLS;                 \
        V (*acc)[NV] = aligned_alloc(64, ((size_t)width * sizeof(V) * NV + 63) & ~(size_t)63); \
        if (!acc) { s->failed[0] = 1; return; }                                              \
        for (int64_t c0 = i0; c0 < i1; c0 += SKINNY_TN_COLS) {                               \
            int64_t nc = i1 - c0 < SKINNY_TN_COLS ? i1 - c0 : SKINNY_TN_COLS;                \
            for (int64_t c = 0; c < nc; c++)                                                 \
                for (int v = 0; v < NV; v++) acc[c][v] = (V){0};                             \
            for (int64_t r = k0; r < k1; r += RB) {                                          \
                int rb = k1 - r < RB ? (int)(k1 - r) : RB;                                   \
                SKINNY_LOAD_ROWS(T, V, NV, RB, c0);                                          \
                for (int64_t c = 0; c < nc; c++) {                                           \
                    V t[NV];                                                                 \
                    for (int v = 0; v < NV; v++) t[v] = acc[c][v];                           \
                    for (int q = 0; q < RB; q++) {                                           \
                        V a = SPLAT(V, T, x[q][c]);                                          \
                        for (int v = 0; v < NV; v++) t[v] += a * d[q][v];                    \
                    }                                                                        \
                    for (int v = 0; v < NV; v++) acc[c][v] = t[v];                           \
                }                                                                            \
            }                                                                                \
            for (int64_t c = 0; c < nc; c++) STORE_ROW(T, V, NV, L, acc[c], C + (c0 + c) * ldc, N); \
        }                                                                                    \
        free(acc);                                                                           \
    }

/* TN into a padded accumulator: Cp[M, NP] += A[k0:k1]^T @ B[k0:k1], Cp's rows NP wide
 * (a row pipeline's per-thread sum over its blocks of rows: no allocation, no
 * conversion per block; gradc_skinny_unpad writes C once at the end). */
#define SKINNY_TNP(T, V, NV, RB)                                                             \
    GRADC_CLONES static void skinny_tnp_##T##_##NV(const skinny_args *s, int64_t k0, int64_t k1) {   \
        enum { L = sizeof(V) / sizeof(T), NP = NV * L };                                     \
        const T *A = (const T *)s->A, *B = (const T *)s->B;                                 \
        T *Cp = (T *)s->C;                                                                   \
        int64_t M = s->M, N = s->N, lda = s->lda, ldb = s->ldb;                              \
        int64_t b_end = (s->K - 1) * ldb + N;                                                \
        for (int64_t r = k0; r < k1; r += RB) {                                              \
            int rb = k1 - r < RB ? (int)(k1 - r) : RB;                                       \
            SKINNY_LOAD_ROWS(T, V, NV, RB, 0);                                               \
            for (int64_t c = 0; c < M; c++) {                                                \
                V t[NV];                                                                     \
                for (int v = 0; v < NV; v++) t[v] = *(V##u *)(Cp + c * NP + v * L);          \
                for (int q = 0; q < RB; q++) {                                               \
                    V a = SPLAT(V, T, x[q][c]);                                              \
                    for (int v = 0; v < NV; v++) t[v] += a * d[q][v];                        \
                }                                                                            \
                for (int v = 0; v < NV; v++) *(V##u *)(Cp + c * NP + v * L) = t[v];          \
            }                                                                                \
        }                                                                                    \
    }

/* Both forms for each padded width skinny_pick chooses from (NV vectors, RB rows). */
#define SKINNY_KERNELS(T, V, NV, RB) SKINNY_NN(T, V, NV, RB) SKINNY_TN(T, V, NV, RB) SKINNY_TNP(T, V, NV, RB)
SKINNY_KERNELS(double, vd, 1, 4)
SKINNY_KERNELS(double, vd, 2, 4)
SKINNY_KERNELS(double, vd, 3, 4)
SKINNY_KERNELS(double, vd, 4, 2)
SKINNY_KERNELS(float, vf, 1, 4)
SKINNY_KERNELS(float, vf, 2, 4)

typedef void (*skinny_fn)(const skinny_args *, int64_t, int64_t, int64_t, int64_t, void *, int64_t);

static skinny_fn skinny_pick(int dtype, int tn, int64_t N, int *np) {
    if (dtype == 0) {
        int nv = (int)((N + 3) / 4);
        *np = 4 * nv;
        switch (nv) {
        case 1: return tn ? skinny_tn_double_1 : skinny_nn_double_1;
        case 2: return tn ? skinny_tn_double_2 : skinny_nn_double_2;
        case 3: return tn ? skinny_tn_double_3 : skinny_nn_double_3;
        default: return tn ? skinny_tn_double_4 : skinny_nn_double_4;
        }
    }
    *np = N <= 8 ? 8 : 16;
    if (*np == 8) return tn ? skinny_tn_float_1 : skinny_nn_float_1;
    return tn ? skinny_tn_float_2 : skinny_nn_float_2;
}

typedef struct {
    skinny_fn fn;
    const skinny_args *args;
    int64_t rows, step;     /* chunks cover units of `step` rows of C */
} skinny_task;

static void skinny_run_chunk(void *ctx, int64_t start, int64_t end, int32_t chunk) {
    (void)chunk;
    const skinny_task *t = (const skinny_task *)ctx;
    int64_t r0 = start * t->step, r1 = end * t->step;
    if (r1 > t->rows) r1 = t->rows;
    if (r0 < r1) t->fn(t->args, r0, r1, 0, t->args->K, t->args->C, t->args->ldc);
}

/* TN split by rows of A instead: chunk t sums rows [K t / chunks, K (t+1) / chunks) into
 * its own partial C (contiguous M x N); the partials are added in chunk order. */
typedef struct {
    skinny_fn fn;
    const skinny_args *args;
    char *partials;
    size_t part_bytes;
} skinny_rows_task;

static void skinny_run_rows(void *ctx, int64_t start, int64_t end, int32_t chunk) {
    const skinny_rows_task *t = (const skinny_rows_task *)ctx;
    const skinny_args *s = t->args;
    t->fn(s, 0, s->M, start, end, t->partials + (size_t)chunk * t->part_bytes, s->N);
}

/* C[M,N] = A @ B (tn = 0, A is [M,K]) or A^T @ B (tn = 1, A is [K,M]); B is [K,N];
 * all row-major with leading dimensions lda, ldb, ldc.  dtype: 0 float64, 1 float32.
 * Returns 0 when done, 1 when the product is not one it handles (N too wide): the
 * caller then uses BLAS. */
int32_t gradc_skinny_gemm(int32_t dtype, int32_t tn, int64_t M, int64_t N, int64_t K, const void *A,
                          int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc, int32_t threads) {
    if (N > GRADC_SKINNY_MAX_N || (dtype != 0 && dtype != 1) || M < 0 || N < 0 || K < 0) return 1;
    if (M == 0 || N == 0) return 0;
    size_t item = dtype == 0 ? sizeof(double) : sizeof(float);
    if (K == 0) {
        for (int64_t i = 0; i < M; i++) memset((char *)C + i * ldc * item, 0, (size_t)N * item);
        return 0;
    }
    int failed = 0;
    skinny_args s = {tn, M, N, K, lda, ldb, ldc, A, B, C, NULL, 0, &failed};
    skinny_fn fn = skinny_pick(dtype, tn, N, &s.np);
    void *packed = NULL;
    if (!tn) {   /* pack B to [K, NP], zero-padded: the kernel's inner loop has a fixed width */
        packed = malloc((size_t)K * s.np * item);
        if (!packed) return 1;
        for (int64_t k = 0; k < K; k++) {
            char *dst = (char *)packed + (size_t)k * s.np * item;
            memcpy(dst, (const char *)B + (size_t)(k * ldb) * item, (size_t)N * item);
            memset(dst + N * item, 0, (size_t)(s.np - N) * item);
        }
        s.Bp = packed;
    }
    double work = (double)M * (double)K * (double)s.np;
    int parallel = threads > 1 && work >= 262144.0;
    int32_t row_chunks = 4 * threads;
    size_t part_bytes = (size_t)M * (size_t)N * item;
    if (parallel && tn && ldc == N && K >= 64 * (int64_t)row_chunks
        && part_bytes * (size_t)row_chunks <= ((size_t)64 << 20)) {
        /* A^T @ B with many rows (the gradient X.T @ G): threads take contiguous row
         * ranges of A, which streams memory far better than column strips of every
         * row.  Deterministic for a given thread count, like gradc's reductions. */
        char *partials = malloc(part_bytes * (size_t)row_chunks);
        if (!partials) { free(packed); return 1; }
        skinny_rows_task rt = {fn, &s, partials, part_bytes};
        gradc_parallel_for(skinny_run_rows, &rt, K, row_chunks, threads);
        gradc_combine(0, dtype, partials, C, M * N, row_chunks);
        free(partials);
        free(packed);
        return failed;
    }
    /* chunks of 8 rows of C (TN: 8 columns of A, one cache line of doubles) */
    skinny_task t = {fn, &s, M, 8};
    int64_t units = (M + 7) / 8;
    int32_t chunks = units < 4 * threads ? (int32_t)units : 4 * threads;
    if (!parallel || chunks <= 1)
        fn(&s, 0, M, 0, K, C, ldc);
    else
        gradc_parallel_for(skinny_run_chunk, &t, units, chunks, threads);
    free(packed);
    return failed;   /* out of memory: BLAS recomputes all of C */
}

/* A row pipeline (gradc.backends.schedule.RowPipeline) runs, on each thread, blocks of
 * rows of X that stay in cache: Z[rows] = X[rows] @ W, the row-wise work on Z, then
 * gW += X[rows]^T @ G[rows], so X is read from memory once.  These entry points are its
 * products, single-threaded (the pipeline's chunks are the parallelism).  Both narrow
 * operands are padded to the kernels' width NP (<= GRADC_SKINNY_MAX_N): W packed once
 * per call, gW summed in a padded accumulator per thread, written out once. */
typedef void (*skinny_tnp_fn)(const skinny_args *, int64_t, int64_t);

static skinny_tnp_fn skinny_pick_tnp(int dtype, int64_t N, int *np) {
    skinny_pick(dtype, 1, N, np);
    if (dtype == 0) {
        switch (*np / 4) {
        case 1: return skinny_tnp_double_1;
        case 2: return skinny_tnp_double_2;
        case 3: return skinny_tnp_double_3;
        default: return skinny_tnp_double_4;
        }
    }
    return *np == 8 ? skinny_tnp_float_1 : skinny_tnp_float_2;
}

static int skinny_declines(int32_t dtype, int64_t M, int64_t N, int64_t K) {
    return N > GRADC_SKINNY_MAX_N || (dtype != 0 && dtype != 1) || M < 0 || N < 0 || K < 0;
}

#include "skinny_lanes.c"
#include "skinny_lanes_v3.c"

/* Does the row pipeline's head (NN: W packed for lanes_nn) or tail (TN: gW^T summed
 * by lanes_tn) run N columns in a lane-filling form, and which: 4 for skinny_lanes.c's
 * (AVX-512), 3 for skinny_lanes_v3.c's (AVX2), 0 for the padded kernels above.  AVX-512:
 * every width but float32 NN at N = 16, which fills the padded kernel's two vectors
 * exactly (tools/skinny_speed.c on a Zen 4: 64 x 512 and 64 x 256 float64 blocks,
 * 128 x 512 and 128 x 256 float32 ones, every N from 1 to 16).  AVX2: the widths of
 * skinny_lanes3_nn_wins / _tn_wins.
 *
 * skinny_forced (gradc._callpath.skinny_forms) overrides the choice so that tests run
 * every form on one host: 0 the padded kernels everywhere, 3 or 4 that level's forms
 * for every width the CPU runs and the level has, -1 (the default) the choice above. */
static int skinny_forced = -1;

static int skinny_level(int32_t dtype, int64_t N, int tn) {
    if (N < 1 || N > 16) return 0;
    int v4 = skinny_lanes_ok(), v3 = skinny_lanes3_ok() && (!tn || dtype == 1);
    switch (skinny_forced) {
    case 0: return 0;
    case 3: return v3 ? 3 : 0;
    case 4: return v4 ? 4 : 0;
    default: break;
    }
    if (v4) return (tn || dtype == 0 || N <= 15) ? 4 : 0;
    if (v3) return (tn ? skinny_lanes3_tn_wins(dtype, N) : skinny_lanes3_nn_wins(dtype, N)) ? 3 : 0;
    return 0;
}

static int skinny_lanes_nn(int32_t dtype, int64_t N) { return skinny_level(dtype, N, 0); }
static int skinny_lanes_tn(int32_t dtype, int64_t N) { return skinny_level(dtype, N, 1); }

/* Set skinny_forced (-1, 0, 3 or 4); returns the previous value.  Not for use while a
 * row pipeline runs: its pack and its blocks must see one choice. */
int32_t gradc_skinny_force(int32_t level) {
    int32_t was = skinny_forced;
    skinny_forced = (level == 0 || level == 3 || level == 4) ? level : -1;
    return was;
}

/* B [K, N] (leading dimension ldb) packed to Bp [K, NP], zero-padded, or for
 * skinny_lanes.c's NN as lanes_pack lays it out; Bp holds K * 16 elements.  Returns 1 (nothing packed) when N is wider than GRADC_SKINNY_MAX_N. */
int32_t gradc_skinny_pack(int32_t dtype, int64_t N, int64_t K, const void *B, int64_t ldb, void *Bp) {
    if (skinny_declines(dtype, 0, N, K)) return 1;
    size_t item = dtype == 0 ? sizeof(double) : sizeof(float);
#ifdef GRADC_SKINNY_LANES
    int level = skinny_lanes_nn(dtype, N);
    if (level) {
        if (dtype == 0) lanes_pack_double(level == 4 ? LANES_NN_L(double) : LANES3_L(double), N, K, B, ldb, Bp);
        else lanes_pack_float(level == 4 ? LANES_NN_L(float) : LANES3_L(float), N, K, B, ldb, Bp);
        return 0;
    }
#endif
    int np;
    skinny_pick(dtype, 0, N, &np);
    for (int64_t k = 0; k < K; k++) {
        char *dst = (char *)Bp + (size_t)k * np * item;
        memcpy(dst, (const char *)B + (size_t)(k * ldb) * item, (size_t)N * item);
        memset(dst + N * item, 0, (size_t)(np - N) * item);
    }
    return 0;
}

/* tn = 0: C[M, N] = A[M, K] @ B, B packed by gradc_skinny_pack (ldb unused);
 * tn = 1: Cp[M, NP] += A[K, M]^T @ B[K, N], Cp a padded accumulator (M * 16 elements,
 *         zeroed before the first block; ldc unused), or for skinny_lanes.c's TN its
 *         transpose Cp[N, M] += B^T @ A.
 * On the calling thread.  Returns 1 when N is too wide: the caller runs BLAS instead
 * (and gradc_skinny_unpad leaves C alone). */
int32_t gradc_skinny_rows(int32_t dtype, int32_t tn, int64_t M, int64_t N, int64_t K, const void *A,
                          int64_t lda, const void *B, int64_t ldb, void *C, int64_t ldc) {
    if (skinny_declines(dtype, M, N, K)) return 1;
    if (M == 0 || N == 0 || K == 0) {
        size_t item = dtype == 0 ? sizeof(double) : sizeof(float);
        if (!tn)
            for (int64_t i = 0; i < M && N > 0; i++) memset((char *)C + i * ldc * item, 0, (size_t)N * item);
        return 0;
    }
#ifdef GRADC_SKINNY_LANES
    int level = tn ? skinny_lanes_tn(dtype, N) : skinny_lanes_nn(dtype, N);
    if (level) {
        if (tn) (level == 4 ? lanes_tn : lanes3_tn)[dtype][N - 1](A, lda, B, ldb, K, M, C);
        else (level == 4 ? lanes_nn : lanes3_nn)[dtype][N - 1](A, lda, B, K, M, C, ldc);
        return 0;
    }
#endif
    int failed = 0;
    skinny_args s = {tn, M, N, K, lda, ldb, ldc, A, B, C, B, 0, &failed};
    if (tn) {
        skinny_pick_tnp(dtype, N, &s.np)(&s, 0, K);
    } else {
        skinny_pick(dtype, 0, N, &s.np)(&s, 0, M, 0, K, C, ldc);
    }
    return 0;
}

/* C[M, N] (leading dimension ldc) = the padded accumulator Cp[M, NP] (or Cp[N, M]
 * transposed); nothing when N is too wide (BLAS wrote C). */
void gradc_skinny_unpad(int32_t dtype, int64_t M, int64_t N, const void *Cp, void *C, int64_t ldc) {
    if (skinny_declines(dtype, M, N, 0)) return;
    size_t item = dtype == 0 ? sizeof(double) : sizeof(float);
    if (skinny_lanes_tn(dtype, N)) {   /* Cp is C^T, [N, M] dense */
        for (int64_t i = 0; i < M; i++)
            for (int64_t j = 0; j < N; j++) {
                if (dtype == 0) ((double *)C)[i * ldc + j] = ((const double *)Cp)[j * M + i];
                else ((float *)C)[i * ldc + j] = ((const float *)Cp)[j * M + i];
            }
        return;
    }
    int np;
    skinny_pick(dtype, 1, N, &np);
    for (int64_t i = 0; i < M; i++)
        memcpy((char *)C + (size_t)(i * ldc) * item, (const char *)Cp + (size_t)(i * np) * item, (size_t)N * item);
}
