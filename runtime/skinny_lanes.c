/* Lane-filling forms of a row pipeline's narrow products, for AVX-512 hosts.
 *
 * skinny.c's kernels hold a row of C in vectors, so C's N columns are padded to whole
 * vectors: 10 classes fill 10 of 12 float64 lanes and 10 of 16 float32 lanes, and the
 * kernels, bound by their multiply-adds, waste the rest.  These forms put the vectors
 * along a dimension hundreds long instead, and keep one accumulator per column of C:
 *
 *   NN (Z[rows] = X[rows] @ W):     vectors along k: RB rows of X against the N rows of
 *                                   W^T (packed [N, K] by gradc_skinny_pack), RB x N
 *                                   accumulators of partial dot products, each added
 *                                   across its lanes once per row;
 *   TN (gW^T += G[rows]^T X[rows]): vectors along the columns of X: for each row q of
 *                                   the block, CV vectors of X[q] meet the N broadcast
 *                                   elements of G[q]; N x CV accumulators hold a tile of
 *                                   gW^T ([N, M], the padded accumulator's space) for the
 *                                   whole block.
 *
 * Both need about N x 2 vector registers, more than AVX2's 16, so they are compiled for
 * x86-64-v4 only (its 32 registers; 256-bit vectors, which Zen 4 runs at the same rate
 * as 512-bit ones) and used only where the CPU has AVX-512 (skinny_lanes_ok); elsewhere
 * skinny.c's padded kernels run.  While TN sums a block from cache, it prefetches the
 * same lines of the next block into L2 (one per line), so the next NN meets X in cache
 * instead of waiting on memory.  Included by skinny.c.
 */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(GRADC_NO_CLONES)
#define GRADC_SKINNY_LANES 1
#define GRADC_V4 __attribute__((target("arch=x86-64-v4")))
#define GRADC_UNROLL _Pragma("GCC unroll 32")

/* Accumulators per form (RB rows of X for NN, CV vectors of columns for TN): as many as
 * the 32 registers hold with the loads beside them. */
#define LANES_RB(N) ((N) <= 6 ? 4 : (N) <= 9 ? 3 : (N) <= 14 ? 2 : 1)
#define LANES_CV(N) ((N) <= 14 ? 2 : 1)

GRADC_V4 static inline double lanes_hsum_vd(vd v) { return (v[0] + v[2]) + (v[1] + v[3]); }
GRADC_V4 static inline float lanes_hsum_vf(vf v) {
    return ((v[0] + v[4]) + (v[2] + v[6])) + ((v[1] + v[5]) + (v[3] + v[7]));
}

/* C[i, j] = sum_k A[i, k] B[k, j] for rows i of [0, M): A [M, K] (leading dimension
 * lda), C leading dimension ldc, B packed by lanes_pack as Bt.  In panels of k whose part of Bt
 * (N x LANES_KB(T) elements, about 20 KB) stays in L1 while all rows pass; each
 * panel's dot products are added into C.  The k that do not fill a vector (K % lanes)
 * are added one by one at the end. */
/* B [K, N] (leading dimension ldb) packed for lanes_nn: the N vectors of B^T for each
 * vector of k in turn ([K / L][N][L], read in one stream; rows of B^T apart would each
 * be 4 KB apart at K = 512, all in one set of L1), then the K % L last k as [N][K % L].
 * N * K elements in all. */
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

#ifndef LANES_KBB
#define LANES_KBB 2560
#endif
#define LANES_KB(T) (LANES_KBB / (int64_t)sizeof(T))
#define LANES_NN(T, V, N)                                                                    \
    GRADC_V4 static void lanes_nn_##T##_##N(const T *A, int64_t lda, const T *Bt, int64_t K, \
                                            int64_t M, T *C, int64_t ldc) {                  \
        enum { L = sizeof(V) / sizeof(T), RB = LANES_RB(N) };                                \
        int64_t Kv = K - K % L, KB = LANES_KB(T) * 8 / N / L * L;                            \
        for (int64_t kb = 0; kb < Kv || kb == 0; kb += KB) {                                 \
            int64_t ke = kb + KB < Kv ? kb + KB : Kv;                                        \
            for (int64_t i = 0; i < M; i += RB) {                                            \
                int rb = M - i < RB ? (int)(M - i) : RB;                                     \
                const T *a[RB];                                                              \
                V acc[RB][N];                                                                \
                GRADC_UNROLL for (int r = 0; r < RB; r++) {                                  \
                    a[r] = A + (i + (r < rb ? r : 0)) * lda;  /* short block: repeat row i */ \
                    GRADC_UNROLL for (int j = 0; j < N; j++) acc[r][j] = (V){0};             \
                }                                                                            \
                for (int64_t k = kb; k < ke; k += L) {                                       \
                    /* once per cache line: the next rows of A (each row a new page for  \
                     * the hardware prefetcher) */                                           \
                    if ((k & (64 / (int64_t)sizeof(T) - 1)) == 0)                            \
                        GRADC_UNROLL for (int r = 0; r < RB; r++) __builtin_prefetch(a[r] + RB * lda + k, 0, 3); \
                    V x[RB];                                                                 \
                    GRADC_UNROLL for (int r = 0; r < RB; r++) x[r] = *(const V##u *)(a[r] + k); \
                    const T *w_k = Bt + k * N;   /* the N vectors of Bt for these k */       \
                    GRADC_UNROLL for (int j = 0; j < N; j++) {                               \
                        V w = *(const V##u *)(w_k + j * L);                                  \
                        /* in a register: GCC otherwise loads it again for every row */    \
                        __asm__("" : "+v"(w));                                               \
                        GRADC_UNROLL for (int r = 0; r < RB; r++) acc[r][j] += x[r] * w;     \
                    }                                                                        \
                }                                                                            \
                for (int r = 0; r < rb; r++) {                                               \
                    T *c = C + (i + r) * ldc;                                                \
                    for (int j = 0; j < N; j++) {                                            \
                        T sum = lanes_hsum_##V(acc[r][j]);                                   \
                        if (ke == Kv)                                                        \
                            for (int64_t k = Kv; k < K; k++) sum += a[r][k] * Bt[Kv * N + j * (K - Kv) + k - Kv]; \
                        c[j] = kb == 0 ? sum : c[j] + sum;                                   \
                    }                                                                        \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

/* Ct[j, c] += sum_q A[q, c] B[q, j] over the K rows q of the block: A [K, M] (leading
 * dimension lda), B [K, N] (ldb), Ct [N, M] dense.  Tiles of CV vectors of columns, then
 * single vectors, then single columns. */
#define LANES_TN_TILE(T, V, N, CV, c, K)                                                     \
    do {                                                                                     \
        V acc[N][CV];                                                                        \
        GRADC_UNROLL for (int j = 0; j < N; j++)                                             \
            GRADC_UNROLL for (int v = 0; v < CV; v++) acc[j][v] = *(V##u *)(Ct + j * M + (c) + v * L); \
        for (int64_t q = 0; q < (K); q++) {                                                  \
            const T *x = A + q * lda + (c), *g = B + q * ldb;                                \
            __builtin_prefetch(x + ahead, 0, 2);                                             \
            V xv[CV];                                                                        \
            GRADC_UNROLL for (int v = 0; v < CV; v++) xv[v] = *(const V##u *)(x + v * L);   \
            GRADC_UNROLL for (int j = 0; j < N; j++) {                                       \
                V gj = SPLAT(V, T, g[j]);                                                    \
                GRADC_UNROLL for (int v = 0; v < CV; v++) acc[j][v] += gj * xv[v];           \
            }                                                                                \
        }                                                                                    \
        GRADC_UNROLL for (int j = 0; j < N; j++)                                             \
            GRADC_UNROLL for (int v = 0; v < CV; v++) *(V##u *)(Ct + j * M + (c) + v * L) = acc[j][v]; \
    } while (0)

#define LANES_TN(T, V, N)                                                                    \
    GRADC_V4 static void lanes_tn_##T##_##N(const T *A, int64_t lda, const T *B, int64_t ldb, \
                                            int64_t K, int64_t M, T *Ct) {                   \
        enum { L = sizeof(V) / sizeof(T), CV = LANES_CV(N) };                                \
        int64_t ahead = K * lda;   /* the next block: its rows follow this block's */       \
        int64_t c = 0;                                                                       \
        for (; c + CV * L <= M; c += CV * L) LANES_TN_TILE(T, V, N, CV, c, K);               \
        for (; c + L <= M; c += L) LANES_TN_TILE(T, V, N, 1, c, K);                          \
        for (; c < M; c++)                                                                   \
            for (int j = 0; j < N; j++) {                                                    \
                T sum = Ct[j * M + c];                                                       \
                for (int64_t q = 0; q < K; q++) sum += A[q * lda + c] * B[q * ldb + j];      \
                Ct[j * M + c] = sum;                                                         \
            }                                                                                \
    }

#define LANES_L(T) ((int64_t)(32 / sizeof(T)))   /* lanes of vd and vf */
#define LANES_KERNELS(N)                                                                     \
    LANES_NN(double, vd, N) LANES_TN(double, vd, N) LANES_NN(float, vf, N) LANES_TN(float, vf, N)
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
