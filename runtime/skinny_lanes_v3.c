/* Lane-filling forms of a row pipeline's narrow products for AVX2 hosts (x86-64-v3).
 *
 * The same two forms as skinny_lanes.c (vectors along a dimension hundreds long, one
 * accumulator per column of C, so 10 classes fill every lane instead of 10 of 12), in
 * 256-bit vectors and 16 registers.  With 16 registers the N columns cannot all be held
 * at once, so they are taken in groups of at most LANES3_NG (6) columns, as evenly as N
 * allows (10 = 5 + 5, 16 = 6 + 5 + 5):
 *
 *   NN (Z[rows] = X[rows] @ W):     for each panel of k and each RB rows of X, every group
 *                                   in turn: RB x NG accumulators of partial dot products,
 *                                   RB vectors of X and one vector of W^T (15 registers at
 *                                   most); the RB rows of the panel stay in L1 across the
 *                                   groups;
 *   TN (gW^T += G[rows]^T X[rows]): for each tile of CV vectors of columns of X, every
 *                                   group in turn: NG x CV accumulators of a tile of gW^T,
 *                                   CV vectors of a row of X and one broadcast element of G.
 *
 * Each step does at least as many multiply-adds as loads (two of each per cycle on the
 * cores it targets), so no lane is wasted on padding, but the measured gains depend on
 * where the block is: on a block in cache (tools/skinny_speed.c, a Zen 3) float32 NN at
 * N = 10 ran at 86 GFLOP/s against the padded kernel's 59, and TN at 67 against 48,
 * while float64 NN gained only for narrow N, and a float64 TN tile, whose rows of X are
 * 4 KB apart at K = 512, fell out of L1 and lost to the padded kernel (which streams the
 * rows in order): there is no float64 TN form.  skinny_lanes3_nn_wins / _tn_wins say
 * where each form runs, from whole pipelines (tools/pipeline_forms.py).  W^T is packed
 * by lanes_pack with L = 4 (float64) or 8 (float32) lanes; NN's panels of k are sized
 * by LANES3_L1B as skinny_lanes.c's by LANES_L1B (-D to re-tune).  The sums' order
 * depends only on K, N and the block's rows: the same bits on every run.  Included by
 * skinny.c after skinny_lanes.c, whose folds, packing and unrolling pragma it shares.
 */
#ifdef GRADC_SKINNY_LANES
#define GRADC_V3 __attribute__((target("arch=x86-64-v3")))
#define LANES3_NG 6
#ifndef LANES3_L1B
#define LANES3_L1B 28672
#endif
#define LANES3_L(T) ((int64_t)(32 / sizeof(T)))   /* lanes of vd and vf (skinny.c) */

typedef int64_t lanes_mask_vd __attribute__((vector_size(32)));
typedef int32_t lanes_mask_vf __attribute__((vector_size(32)));

/* The first lanes of a vector (bit l of m: lane l); masked-off lanes are not read (no
 * fault past an array's end) and load as 0, and are not written. */
GRADC_V3 static inline __m256i lanes3_mask64(unsigned m) {
    return _mm256_set_epi64x(-(long long)((m >> 3) & 1), -(long long)((m >> 2) & 1),
                             -(long long)((m >> 1) & 1), -(long long)(m & 1));
}
GRADC_V3 static inline __m256i lanes3_mask32(unsigned m) {
    return _mm256_set_epi32(-(int)((m >> 7) & 1), -(int)((m >> 6) & 1), -(int)((m >> 5) & 1), -(int)((m >> 4) & 1),
                            -(int)((m >> 3) & 1), -(int)((m >> 2) & 1), -(int)((m >> 1) & 1), -(int)(m & 1));
}
GRADC_V3 static inline vd lanes_load_vd(unsigned m, const double *p) { return (vd)_mm256_maskload_pd(p, lanes3_mask64(m)); }
GRADC_V3 static inline vf lanes_load_vf(unsigned m, const float *p) { return (vf)_mm256_maskload_ps(p, lanes3_mask32(m)); }
GRADC_V3 static inline void lanes_store_vf(unsigned m, float *p, vf v) { _mm256_maskstore_ps(p, lanes3_mask32(m), (__m256)v); }

/* A tile's loads and stores: plain vector moves when all L lanes are wanted (m is then
 * a constant: no branch is left), masked ones for the last columns. */
#define LANES3_LOAD(V, m, p) ((m) == (1u << L) - 1 ? (V)*(const V##u *)(p) : lanes_load_##V(m, p))
#define LANES3_STORE(V, m, p, x)                                                             \
    do {                                                                                     \
        if ((m) == (1u << L) - 1) *(V##u *)(p) = (x);                                        \
        else lanes_store_##V(m, p, x);                                                       \
    } while (0)

GRADC_V3 static inline vd lanes_fold_vd(vd x, vd y, int s) {
    return s == 1 ? LANES_FOLD_AT(vd, 4, 1) : LANES_FOLD_AT(vd, 4, 2);
}
GRADC_V3 static inline vf lanes_fold_vf(vf x, vf y, int s) {
    return s == 1 ? LANES_FOLD_AT(vf, 8, 1) : s == 2 ? LANES_FOLD_AT(vf, 8, 2) : LANES_FOLD_AT(vf, 8, 4);
}

/* Rows per NN step: 4 for one or two columns (a step then does as many multiply-adds as
 * loads), else 2.  Vectors of columns per TN tile: as many as the 16 registers hold
 * beside NG x CV accumulators and a broadcast. */
#define LANES3_RB(N) ((N) <= 2 ? 4 : 2)
#define LANES3_CV(NG) (14 / ((NG) + 1) < 7 ? 14 / ((NG) + 1) : 7)
/* N columns in G groups of NG_0 >= NG_1 >= ... (sizes differing by at most one) */
#define LANES3_GROUPS(N) (((N) + LANES3_NG - 1) / LANES3_NG)
#define LANES3_GROUP_WIDTH(N, g) ((N) / LANES3_GROUPS(N) + ((g) < (N) % LANES3_GROUPS(N)))

/* The sums of one NN group: acc[r * NG + j] (RB rows, NG columns), folded L at a time
 * into vectors of their sums and written to out[r * NG + j] (RB * NG, padded to L). */
#define LANES3_NN_GROUP(T, V, NG, RB)                                                        \
    GRADC_V3 static inline void lanes3_nn_group_##T##_##NG##_##RB(                           \
            const T *const *a, int64_t lda, const T *Bt, int64_t N, int64_t j0, int64_t kb, int64_t ke,   \
            int64_t K, unsigned tail, int prefetch, T *out) {                                \
        enum { L = sizeof(V) / sizeof(T), NA = RB * NG, G = (NA + L - 1) / L };             \
        V acc[NA];                                                                           \
        GRADC_UNROLL for (int f = 0; f < NA; f++) acc[f] = (V){0};                           \
        for (int64_t k = kb; k < ke; k += L) {                                               \
            /* the next RB rows, a cache line at a time (each row a new page for the      \
             * hardware prefetcher), on the panel's first group only */                    \
            if (prefetch && (k & (64 / (int64_t)sizeof(T) - 1)) == 0)                        \
                GRADC_UNROLL for (int r = 0; r < RB; r++) __builtin_prefetch(a[r] + RB * lda + k, 0, 3); \
            V x[RB];                                                                         \
            GRADC_UNROLL for (int r = 0; r < RB; r++) {                                      \
                x[r] = *(const V##u *)(a[r] + k);                                            \
                __asm__("" : "+x"(x[r]));   /* loaded once, not once per column */           \
            }                                                                                \
            const T *w_k = Bt + k * N + j0 * L;                                              \
            GRADC_UNROLL for (int j = 0; j < NG; j++) {                                      \
                V w = *(const V##u *)(w_k + j * L);                                          \
                __asm__("" : "+x"(w));                                                       \
                GRADC_UNROLL for (int r = 0; r < RB; r++) acc[r * NG + j] += x[r] * w;      \
            }                                                                                \
        }                                                                                    \
        if (tail) {   /* the last K % L k: masked loads */                                   \
            int64_t Kv = K - K % L;                                                          \
            V x[RB];                                                                         \
            GRADC_UNROLL for (int r = 0; r < RB; r++) x[r] = lanes_load_##V(tail, a[r] + Kv); \
            GRADC_UNROLL for (int j = 0; j < NG; j++) {                                      \
                V w = lanes_load_##V(tail, Bt + Kv * N + (j0 + j) * (K - Kv));               \
                GRADC_UNROLL for (int r = 0; r < RB; r++) acc[r * NG + j] += x[r] * w;      \
            }                                                                                \
        }                                                                                    \
        GRADC_UNROLL for (int g = 0; g < G; g++) {                                           \
            V t[L];                                                                          \
            GRADC_UNROLL for (int l = 0; l < L; l++) t[l] = g * L + l < NA ? acc[g * L + l] : (V){0}; \
            LANES_FOLD(V, t)                                                                 \
            *(V##u *)(out + g * L) = t[0];                                                   \
        }                                                                                    \
    }

/* C[i, j] = sum_k A[i, k] B[k, j] for rows i of [0, M): A [M, K] (leading dimension
 * lda), C leading dimension ldc, B packed by lanes_pack (L = LANES3_L) as Bt. */
#define LANES3_NN(T, V, N)                                                                   \
    GRADC_V3 static void lanes3_nn_##T##_##N(const T *A, int64_t lda, const T *Bt, int64_t K, \
                                             int64_t M, T *C, int64_t ldc) {                 \
        enum { L = sizeof(V) / sizeof(T), RB = LANES3_RB(N), NGROUPS = LANES3_GROUPS(N) };  \
        LANES_K_PANELS(LANES3_L1B, T, N, RB)                                                 \
        for (int64_t kb = 0; kb < Kv || kb == 0; kb += KB) {                                 \
            int64_t ke = kb + KB < Kv ? kb + KB : Kv;                                        \
            unsigned t = ke == Kv ? tail : 0;                                                \
            for (int64_t i = 0; i < M; i += RB) {                                            \
                int rb = M - i < RB ? (int)(M - i) : RB;                                     \
                const T *a[RB];                                                              \
                GRADC_UNROLL for (int r = 0; r < RB; r++)                                    \
                    a[r] = A + (i + (r < rb ? r : 0)) * lda;  /* short block: repeat row i */ \
                int prefetch = i + 2 * RB <= M && rb == RB;                                  \
                int64_t j0 = 0;                                                              \
                GRADC_UNROLL for (int g = 0; g < NGROUPS; g++) {                             \
                    const int ng = LANES3_GROUP_WIDTH(N, g);                                 \
                    T sums[RB * LANES3_NG + 8] = {0};                                              \
                    switch (ng) {                                                            \
                    case 1: (RB == 4 ? lanes3_nn_group_##T##_1_4 : lanes3_nn_group_##T##_1_2)(a, lda, Bt, N, j0, kb, ke, K, t, prefetch && g == 0, sums); break; \
                    case 2: (RB == 4 ? lanes3_nn_group_##T##_2_4 : lanes3_nn_group_##T##_2_2)(a, lda, Bt, N, j0, kb, ke, K, t, prefetch && g == 0, sums); break; \
                    case 3: (RB == 4 ? lanes3_nn_group_##T##_3_4 : lanes3_nn_group_##T##_3_2)(a, lda, Bt, N, j0, kb, ke, K, t, prefetch && g == 0, sums); break; \
                    case 4: (RB == 4 ? lanes3_nn_group_##T##_4_4 : lanes3_nn_group_##T##_4_2)(a, lda, Bt, N, j0, kb, ke, K, t, prefetch && g == 0, sums); break; \
                    case 5: (RB == 4 ? lanes3_nn_group_##T##_5_4 : lanes3_nn_group_##T##_5_2)(a, lda, Bt, N, j0, kb, ke, K, t, prefetch && g == 0, sums); break; \
                    default: (RB == 4 ? lanes3_nn_group_##T##_6_4 : lanes3_nn_group_##T##_6_2)(a, lda, Bt, N, j0, kb, ke, K, t, prefetch && g == 0, sums); break; \
                    }                                                                        \
                    for (int r = 0; r < rb; r++)                                             \
                        for (int j = 0; j < ng; j++) {                                       \
                            T *c = C + (i + r) * ldc + j0 + j;                               \
                            *c = kb == 0 ? sums[r * ng + j] : *c + sums[r * ng + j];         \
                        }                                                                    \
                    j0 += ng;                                                                \
                }                                                                            \
            }                                                                                \
        }                                                                                    \
    }

/* One TN tile: Ct[j0 + j, c + v L] for NG columns j of C^T and CV vectors v, summed over
 * the K rows q of the block; m masks the last vector's lanes.  The group that prefetches
 * reads, for each row, the same lines of the next block into L2. */
#define LANES3_TN_TILE(T, V, NG, CV, c, K, m, j0, prefetch)                                  \
    do {                                                                                     \
        V acc[NG][CV];                                                                       \
        GRADC_UNROLL for (int j = 0; j < NG; j++)                                            \
            GRADC_UNROLL for (int v = 0; v < CV; v++) acc[j][v] = LANES3_LOAD(V, m, Ct + ((j0) + j) * M + (c) + v * L); \
        for (int64_t q = 0; q < (K); q++) {                                                  \
            const T *x = A + q * lda + (c), *gq = B + q * ldb + (j0);                        \
            if (prefetch)                                                                    \
                GRADC_UNROLL for (int v = 0; v < CV * L; v += 64 / (int)sizeof(T)) __builtin_prefetch(x + ahead + v, 0, 2); \
            V xv[CV];                                                                        \
            GRADC_UNROLL for (int v = 0; v < CV; v++) xv[v] = LANES3_LOAD(V, m, x + v * L); \
            GRADC_UNROLL for (int j = 0; j < NG; j++) {                                      \
                T gj = gq[j];                                                                \
                GRADC_UNROLL for (int v = 0; v < CV; v++) acc[j][v] += gj * xv[v];           \
            }                                                                                \
        }                                                                                    \
        GRADC_UNROLL for (int j = 0; j < NG; j++)                                            \
            GRADC_UNROLL for (int v = 0; v < CV; v++) LANES3_STORE(V, m, Ct + ((j0) + j) * M + (c) + v * L, acc[j][v]); \
    } while (0)

/* TN's groups, as NN's: at most LANES3_NG columns, the first N % G groups one column
 * wider than the others (written out with constant widths, so each tile's accumulators
 * are a fixed set of registers); a tile is CV vectors wide, CV as the widest group
 * allows.  One group of 10-13 columns with single-vector tiles measured slower than two
 * groups of tiles a cache line wide (each column strip of a block is read once per
 * group, from L2, but in whole lines). */
#define LANES3_TN_G(N) (((N) + LANES3_NG - 1) / LANES3_NG)
#define LANES3_TN_WIDE(N) ((N) / LANES3_TN_G(N) + 1)
#define LANES3_TN_NARROW(N) ((N) / LANES3_TN_G(N))
#define LANES3_TN_CV(N) LANES3_CV((N) % LANES3_TN_G(N) ? LANES3_TN_WIDE(N) : LANES3_TN_NARROW(N))

/* The groups of one tile of CV vectors at column c (mask m), in turn. */
#define LANES3_TN_GROUPS(T, V, N, CV, c, K, m)                                               \
    do {                                                                                     \
        int64_t j0 = 0;                                                                      \
        for (int g = 0; g < LANES3_TN_G(N); g++) {                                           \
            if (g < (N) % LANES3_TN_G(N)) {                                                  \
                LANES3_TN_TILE(T, V, LANES3_TN_WIDE(N), CV, c, K, m, j0, g == 0);            \
                j0 += LANES3_TN_WIDE(N);                                                     \
            } else {                                                                         \
                LANES3_TN_TILE(T, V, LANES3_TN_NARROW(N), CV, c, K, m, j0, g == 0);          \
                j0 += LANES3_TN_NARROW(N);                                                   \
            }                                                                                \
        }                                                                                    \
    } while (0)

/* Ct[j, c] += sum_q A[q, c] B[q, j] over the K rows q of the block: A [K, M] (leading
 * dimension lda), B [K, N] (ldb), Ct [N, M] dense: skinny_lanes.c's sweep over the
 * columns, each tile its groups in turn (CV for the widest group). */
#define LANES3_TN(T, V, N)                                                                   \
    GRADC_V3 static void lanes3_tn_##T##_##N(const T *A, int64_t lda, const T *B, int64_t ldb, \
                                             int64_t K, int64_t M, T *Ct) {                  \
        enum { L = sizeof(V) / sizeof(T), CV = LANES3_TN_CV(N) };                            \
        LANES_TN_SWEEP(LANES3_TN_GROUPS, T, V, N, CV)                                        \
    }

#define LANES3_NN_GROUPS(T, V, RB)                                                           \
    LANES3_NN_GROUP(T, V, 1, RB) LANES3_NN_GROUP(T, V, 2, RB) LANES3_NN_GROUP(T, V, 3, RB)   \
    LANES3_NN_GROUP(T, V, 4, RB) LANES3_NN_GROUP(T, V, 5, RB) LANES3_NN_GROUP(T, V, 6, RB)
LANES3_NN_GROUPS(double, vd, 2) LANES3_NN_GROUPS(double, vd, 4)
LANES3_NN_GROUPS(float, vf, 2) LANES3_NN_GROUPS(float, vf, 4)

#define LANES3_KERNELS(N) LANES3_NN(double, vd, N) LANES3_NN(float, vf, N) LANES3_TN(float, vf, N)
LANES3_KERNELS(1) LANES3_KERNELS(2) LANES3_KERNELS(3) LANES3_KERNELS(4)
LANES3_KERNELS(5) LANES3_KERNELS(6) LANES3_KERNELS(7) LANES3_KERNELS(8)
LANES3_KERNELS(9) LANES3_KERNELS(10) LANES3_KERNELS(11) LANES3_KERNELS(12)
LANES3_KERNELS(13) LANES3_KERNELS(14) LANES3_KERNELS(15) LANES3_KERNELS(16)

#define LANES3_ROW(T, form, fn_t)                                                            \
    {(fn_t)lanes3_##form##_##T##_1, (fn_t)lanes3_##form##_##T##_2, (fn_t)lanes3_##form##_##T##_3,  \
     (fn_t)lanes3_##form##_##T##_4, (fn_t)lanes3_##form##_##T##_5, (fn_t)lanes3_##form##_##T##_6,  \
     (fn_t)lanes3_##form##_##T##_7, (fn_t)lanes3_##form##_##T##_8, (fn_t)lanes3_##form##_##T##_9,  \
     (fn_t)lanes3_##form##_##T##_10, (fn_t)lanes3_##form##_##T##_11, (fn_t)lanes3_##form##_##T##_12, \
     (fn_t)lanes3_##form##_##T##_13, (fn_t)lanes3_##form##_##T##_14, (fn_t)lanes3_##form##_##T##_15, \
     (fn_t)lanes3_##form##_##T##_16}
static const lanes_nn_fn lanes3_nn[2][16] = {LANES3_ROW(double, nn, lanes_nn_fn), LANES3_ROW(float, nn, lanes_nn_fn)};
static const lanes_tn_fn lanes3_tn[2][16] = {{0}, LANES3_ROW(float, tn, lanes_tn_fn)};   /* no float64 TN */

/* Widths where these forms beat skinny.c's padded kernels (see skinny_lanes_nn). */
/* Widths where these forms ran faster than skinny.c's padded kernels inside a row
 * pipeline (tools/pipeline_forms.py: softmax regressions of N classes, both threads, on
 * a Zen 3): in float32 every N up to 12 but 8 (which fills the padded kernel's vector
 * exactly), 12-40% faster at 65536 x 512 and 4096 x 256; in float64 the head for N up
 * to 6, 5-35% faster.  The float64 head past 6 columns won with X in the last-level
 * cache (4096 x 256, 10 classes: 819 against 969 us) but lost streaming X from memory
 * (65536 x 512: 26.7 against 22.6 ms; 16384 x 128 and 8192 x 384 too), and a block
 * does not know which it meets, so there the padded kernel stays. */
static int skinny_lanes3_nn_wins(int32_t dtype, int64_t N) { return dtype == 0 ? N <= 6 : N <= 12 && N != 8; }
static int skinny_lanes3_tn_wins(int32_t dtype, int64_t N) { return dtype == 1 && N <= 12 && N != 8; }

/* Does this CPU run the x86-64-v3 code (AVX2, FMA, BMI2, ...)?  Computed once. */
static int skinny_lanes3_ok(void) {
    static int ok = -1;
    if (ok < 0) {
        __builtin_cpu_init();
        ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")
             && __builtin_cpu_supports("bmi2");
    }
    return ok;
}
#else
static int skinny_lanes3_ok(void) { return 0; }
static int skinny_lanes3_nn_wins(int32_t dtype, int64_t N) { (void)dtype; (void)N; return 0; }
static int skinny_lanes3_tn_wins(int32_t dtype, int64_t N) { (void)dtype; (void)N; return 0; }
#endif
