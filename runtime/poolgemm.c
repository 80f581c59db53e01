/* Matrix products on gradc's own thread pool.
 *
 * Generated kernels call gradc_pool_dgemm / gradc_pool_sgemm where they used to call
 * OpenBLAS's CBLAS directly.  OpenBLAS runs a thread pool of its own whose workers spin
 * for about 0.1 s after every call; beside gradc's pool on the same cores, the two
 * fought (a two-layer MLP ran 2.3x slower with both pools than with either alone).  Here
 * the product is split into row blocks of C on gradc's pool, and every block is one
 * single-threaded BLAS call (OpenBLAS's thread count is 1 while gradc's products run,
 * restored after), so a gradc call never wakes OpenBLAS's pool and leaves nothing of it
 * spinning.  The split depends only on M and the thread count, so a product gives the
 * same bits on every run for a given thread count.
 *
 * Python registers the library's functions once (gradc_pool_gemm_register) before any
 * kernel runs; the CBLAS integer width (32-bit LP64 or 64-bit ILP64) is the library's.
 * Included by callpath.c.
 */
#include <pthread.h>
#include <stdint.h>

typedef void (*gradc_blas_set_threads)(int);
typedef int (*gradc_blas_get_threads)(void);

static gradc_blas_set_threads pool_blas_set;  /* openblas_set_num_threads */
static gradc_blas_get_threads pool_blas_get;  /* openblas_get_num_threads */
static void *pool_gemm_d, *pool_gemm_s;       /* cblas_dgemm / cblas_sgemm */
static int pool_gemm_ilp64;                   /* 1: 64-bit BLAS integers */

/* Below this much work a product runs as one call on the caller's thread: the pool's
 * hand-off (a few microseconds) would cost more than it saves.  The work counts at least
 * GRADC_POOL_GEMM_MIN_K multiply-adds per element of C: with a short inner dimension the
 * time goes to writing C (a layer's backward dZ[2048,4] @ W^T[4,64], 0.5M multiply-adds,
 * took 47-58 us on one thread, 24 us a half). */
#define GRADC_POOL_GEMM_MIN_WORK (1 << 21)
#define GRADC_POOL_GEMM_MIN_K 16
/* OpenBLAS runs products of at most this many multiply-adds on the calling thread
 * (GEMM_MULTITHREAD_THRESHOLD 4 x 65536): those need no thread-count change. */
#define GRADC_BLAS_THREADS_FROM (4.0 * 65536.0)
/* A product with a short inner dimension (k <= GRADC_SHORT_K: a layer's 16 inputs, the
 * backward product of a 4-output layer) is bound by writing C, and OpenBLAS writes it
 * twice: with beta = 0 it first zeroes C (dgemm_beta, a memset), then its kernel stores
 * the products.  For a C beyond the caches (2048x256 doubles: 4 MB) both passes go
 * through memory; in row blocks whose part of C stays in L2 (GRADC_C_BLOCK_BYTES) the
 * second pass finds it in cache.  Each block is another BLAS call that packs B again
 * (k x n elements), so blocks are used only when a block has at least 4k rows: its part
 * of C is then at least 4 times B (attention's 2048-column Q K^T, 16 rows a block, ran
 * 7% slower blocked).  The blocks depend only on the shapes, so the bits do not depend
 * on the run. */
#define GRADC_SHORT_K 32
#define GRADC_C_BLOCK_BYTES (256 << 10)
/* A product with a long inner dimension and a small C (a gradient X^T @ G: 64 x 64 from
 * 65536 rows) is split over k instead: each thread sums its range of k into a C of its
 * own, and the partial Cs are added in thread order (the same bits on every run for a
 * given thread count).  Split by rows of C, every thread would pack all of op(B) again:
 * for 64 x 65536 @ 65536 x 64 two halves of C ran side by side in 14.0 ms, two halves of
 * k in 10.1 ms (OpenBLAS's own two threads: 12.0 ms).  Used when k >= GRADC_KSPLIT_RATIO
 * x m, C is contiguous (generated code's always is) and the partial Cs take at most
 * GRADC_KSPLIT_BYTES. */
#define GRADC_KSPLIT_RATIO 2
#define GRADC_KSPLIT_BYTES (8 << 20)

/* OpenBLAS's thread count is process-wide in its pthreads builds (even the "_local"
 * setter changes it for every thread), so it is set to 1 while any gradc product runs
 * and restored when the last one returns; a counter keeps concurrent gradc calls from
 * restoring each other's 1.  Another thread's numpy product in that window runs on
 * one thread: slower, never wrong. */
static pthread_mutex_t pool_blas_lock = PTHREAD_MUTEX_INITIALIZER;
static int pool_blas_users, pool_blas_saved;
static int pool_blas_forked_inside;   /* the parent forked while a product ran: the
                                       * thread count is still 1, pool_blas_saved the
                                       * count to restore */

/* A child of fork() has only the forking thread: a lock held by another thread stays
 * locked, and products that were running are gone.  Nothing of OpenBLAS is called here
 * (the child restores the thread count on its next product). */
static void pool_blas_after_fork_in_child(void) {
    pthread_mutex_init(&pool_blas_lock, NULL);
    if (pool_blas_users > 0) pool_blas_forked_inside = 1;
    pool_blas_users = 0;
}

static pthread_once_t pool_blas_fork_once = PTHREAD_ONCE_INIT;

static void pool_blas_register_fork_handler(void) { pthread_atfork(NULL, NULL, pool_blas_after_fork_in_child); }

static void pool_blas_single(int enter) {
    if (!pool_blas_set || !pool_blas_get) return;
    pthread_once(&pool_blas_fork_once, pool_blas_register_fork_handler);
    pthread_mutex_lock(&pool_blas_lock);
    if (enter && pool_blas_users++ == 0) {
        if (!pool_blas_forked_inside) pool_blas_saved = pool_blas_get();
        pool_blas_forked_inside = 0;
        if (pool_blas_saved != 1) pool_blas_set(1);
    } else if (!enter && --pool_blas_users == 0 && pool_blas_saved != 1) {
        pool_blas_set(pool_blas_saved);
    }
    pthread_mutex_unlock(&pool_blas_lock);
}

/* Does gradc's own kernel (gemm_small.c) run an m x n product with inner dimension k
 * (m and k of the whole product, or of a thread's range of k)?  Where it was measured
 * faster than single-threaded OpenBLAS 0.3 on a Zen 4 core (tools/gemm_speed.py; CPU
 * time, load average 4-5, float64):
 *   - m k >= 16384 and k >= 16: below, packing op(B) and starting each tile cost more
 *     than OpenBLAS's own kernel (192x64 @ 64x64 35 us against 34, 256x32 @ 32x64 26
 *     against 25, 2048x8 @ 8x64 57 against 54); above, it gains (128x128 @ 128x64 46
 *     against 52, 2048x16 @ 16x64 92 against 93, 2048x64 @ 64x64 324 against 391);
 *   - at least 64 rows of op(A), or 16 with at most 64 columns: with few rows, each
 *     packed pass of op(B) serves only a few tiles (16x4096 @ 4096x256, A transposed,
 *     1143 us against 1034; 16x2048 @ 2048x64, A transposed, 121 against 132);
 *   - k <= 256 or n <= 256: a pass's packed op(B) stays in L2 (1000x1000 @ 1000x1000
 *     ran 4% slower);
 *   - or, with B transposed (a layer's backward dZ @ W^T, k its outputs), k < 16 and at
 *     least 32 rows: OpenBLAS runs these at 22-35 GFLOP/s in float64 (tools/gemm_speed.py
 *     forms nt, load average 2.4-2.7: 64x10 @ 10x128 4.1 us against 4.9, 2048x4 @ 4x64 30
 *     against 48, 2048x10 @ 10x128 116 against 149, 64x15 @ 15x128 5.7 against 6.6;
 *     float32 2.5 against 2.7, 15 against 23, 58 against 77), while with fewer rows
 *     OpenBLAS kept up (float32 16x10 @ 10x128 1.2 us against 1.0).
 * Where the CPU has AVX2 but not AVX-512 (the x86-64-v3 kernel, 6 x 8 tiles), never with
 * A transposed (op(A) = A^T: a gradient X^T @ G): the tile reads 6 elements of each of
 * kc rows of A, rows 2-4 KB apart, which fall out of L1.  Measured on a Zen 3 core
 * against OpenBLAS 0.3.31's Haswell kernels (same tool), float64 lost from n = 32
 * (64x2048 @ 2048x32 437 us against 323, 256x4096 @ 4096x128 10.9 ms against 7.5,
 * 512x65536 @ 65536x128 372 ms against 219: M4 large's X^T @ dH) and at n = 16 won or
 * lost by 10-15% from run to run; float32 lost everywhere but at k = 65536 (64x2048 @
 * 2048x64 417 us against 263, 16x2048 @ 2048x64 168 against 84, 256x4096 @ 4096x128 5.8
 * ms against 4.2; 64x65536 @ 65536x64 8.8 against 9.8).  Without the transpose it kept
 * up or won (4096x256 @ 256x128 level, 2048x16 @ 16x64 123 us against 169, 65536x64 @
 * 64x64 13.8 ms against 21.9; float32 4096x512 @ 512x64 3.2 ms against 4.1). */
static int gemm_small_wants(int ta, int tb, int64_t m, int64_t n, int64_t k) {
    if (tb && k < 16 && m >= 32) return 1;
    if (ta && gemm_small_isa() == 1) return 0;
    return (m >= 64 || (m >= 16 && n <= 64)) && k >= 16 && m * k >= 16384 && (k <= 256 || n <= 256);
}

enum { CBLAS_ROW_MAJOR = 101, CBLAS_NO_TRANS = 111, CBLAS_TRANS = 112 };

/* Is the m x n product short and wide (m rows too few for gradc's kernel, which then
 * leaves it to OpenBLAS) while its transpose, n x m = op(B)^T @ op(A)^T, is a shape
 * the kernel takes with at least one whole panel of m columns?  The transpose's long
 * operand streams by rows while only the short one is packed.  Measured on a Zen 4 core
 * (tools/gemm_speed.py, one thread, CPU time), the transpose against OpenBLAS:
 *   - attention's Q^T @ dS, 32 x 2048 from k = 2048: float32 3.16 against 4.37 ms,
 *     float64 6.7 against 7.6; 32 x 512: 0.65 against 0.80 ms (float32);
 *   - 16 x 256 from 4096 rows: float64 0.94 against 1.09 ms, but float32 0.66 against
 *     0.50 (16 of a float32 panel's 32 columns), and 10 columns lose in both types:
 *     hence at least a panel (16 doubles, 32 floats; half that in AVX2 code).
 * The transpose is made in a buffer and copied into C: m n elements against m n k
 * multiply-adds. */
static int gemm_small_flipped(size_t item, int ta, int tb, int64_t m, int64_t n, int64_t k) {
    int isa = gemm_small_isa();
    int64_t panel = (isa == 2 ? 4 : 2) * (int64_t)(32 / item);
    return isa != 0 && m >= panel && n >= 4 * m && !gemm_small_wants(ta, tb, m, n, k)
           && gemm_small_wants(!tb, !ta, n, m, k);
}

#define GRADC_POOL_GEMM(NAME, T, I, PTR)                                                         \
    typedef void (*NAME##_blas)(int32_t, int32_t, int32_t, I, I, I, T, const T *, I, const T *, \
                                I, T, T *, I);                                                  \
    typedef struct {                                                                            \
        int32_t ta, tb;                                                                         \
        I n, k, lda, ldb, ldc;                                                                  \
        T alpha, beta;                                                                          \
        const T *A, *B;                                                                         \
        T *C;                                                                                   \
        I m;                                                                                    \
        T *partials;           /* k split: one m x n C per chunk */                             \
    } NAME##_task;                                                                              \
    /* chunk's share [start, end) of k into its own C (alpha applied, beta 0) */              \
    static void NAME##_ksteps(void *ctx, int64_t start, int64_t end, int32_t chunk) {           \
        const NAME##_task *t = (const NAME##_task *)ctx;                                        \
        T *part = t->partials + (int64_t)chunk * (int64_t)t->m * (int64_t)t->n;                 \
        if (end <= start) {                                                                     \
            for (int64_t e = 0; e < (int64_t)t->m * (int64_t)t->n; e++) part[e] = 0;            \
            return;                                                                             \
        }                                                                                       \
        /* columns start.. of op(A), rows start.. of op(B) */                                   \
        const T *A = t->ta == CBLAS_TRANS ? t->A + start * (int64_t)t->lda : t->A + start;     \
        const T *B = t->tb == CBLAS_TRANS ? t->B + start : t->B + start * (int64_t)t->ldb;     \
        if (t->alpha == (T)1 && gemm_small_wants(t->ta == CBLAS_TRANS, t->tb == CBLAS_TRANS, t->m, t->n, end - start)            \
            && gemm_small_##T(t->ta == CBLAS_TRANS, t->tb == CBLAS_TRANS, 0, t->m, t->n,         \
                              end - start, A, t->lda, B, t->ldb, part, t->n) == 0)              \
            return;                                                                             \
        ((NAME##_blas)PTR)(CBLAS_ROW_MAJOR, t->ta, t->tb, t->m, t->n, (I)(end - start),          \
                           t->alpha, A, t->lda, B, t->ldb, (T)0, part, t->n);                   \
    }                                                                                           \
    static void NAME##_rows(void *ctx, int64_t start, int64_t end, int32_t chunk) {             \
        const NAME##_task *t = (const NAME##_task *)ctx;                                        \
        (void)chunk;                                                                            \
        if (end <= start) return;                                                               \
        if (t->alpha == (T)1 && t->beta == (T)0 && gemm_small_wants(t->ta == CBLAS_TRANS, t->tb == CBLAS_TRANS, t->m, t->n, t->k) \
            && gemm_small_##T(t->ta == CBLAS_TRANS, t->tb == CBLAS_TRANS, start, end, t->n, t->k, \
                              t->A, t->lda, t->B, t->ldb, t->C, t->ldc) == 0)                   \
            return;                                                                             \
        int64_t step = end - start;                                                             \
        if (t->k <= GRADC_SHORT_K && t->n > 0) {                                                \
            int64_t rows = GRADC_C_BLOCK_BYTES / ((int64_t)t->n * (int64_t)sizeof(T));          \
            if (rows >= 4 * (int64_t)t->k && rows < step) step = rows;                          \
        }                                                                                       \
        for (int64_t s = start; s < end; s += step) {                                           \
            int64_t e = end - s > step ? s + step : end;                                        \
            /* rows s.. of op(A): rows of A, or columns of A when it is transposed */          \
            const T *A = t->ta == CBLAS_TRANS ? t->A + s : t->A + s * (int64_t)t->lda;         \
            ((NAME##_blas)PTR)(CBLAS_ROW_MAJOR, t->ta, t->tb, (I)(e - s), t->n, t->k,           \
                               t->alpha, A, t->lda, t->B, t->ldb, t->beta,                      \
                               t->C + s * (int64_t)t->ldc, t->ldc);                             \
        }                                                                                       \
    }                                                                                           \
    static void NAME(int32_t order, int32_t ta, int32_t tb, I m, I n, I k, T alpha, const T *A, \
                     I lda, const T *B, I ldb, T beta, T *C, I ldc, int32_t threads) {          \
        (void)order; /* generated kernels are row-major */                                      \
        NAME##_task t = {ta, tb, n, k, lda, ldb, ldc, alpha, beta, A, B, C, m, NULL};           \
        double work = (double)m * (double)n * (double)k;                                        \
        int32_t chunks = threads;                                                               \
        if (chunks > m) chunks = (int32_t)m;                                                    \
        if (work <= GRADC_BLAS_THREADS_FROM) {                                                  \
            NAME##_rows(&t, 0, m, 0);                                                           \
            return;                                                                             \
        }                                                                                       \
        if (alpha == (T)1 && beta == (T)0 && gemm_small_flipped(sizeof(T), ta == CBLAS_TRANS, tb == CBLAS_TRANS, m, n, k)) { \
            /* C^T = op(B)^T @ op(A)^T, tall, into a buffer; then C is its transpose */         \
            T *ct = malloc((size_t)m * (size_t)n * sizeof(T));                                 \
            if (ct) {                                                                           \
                NAME(order, tb == CBLAS_TRANS ? CBLAS_NO_TRANS : CBLAS_TRANS,                   \
                     ta == CBLAS_TRANS ? CBLAS_NO_TRANS : CBLAS_TRANS, n, m, k, alpha, B, ldb, A, lda, \
                     beta, ct, m, threads);                                                     \
                for (int64_t i = 0; i < (int64_t)m; i++)                                        \
                    for (int64_t j = 0; j < (int64_t)n; j++) C[i * (int64_t)ldc + j] = ct[j * (int64_t)m + i]; \
                free(ct);                                                                       \
                return;                                                                         \
            }                                                                                   \
        }                                                                                       \
        pool_blas_single(1);                                                                    \
        double c_work = (double)m * (double)n * (double)(k > GRADC_POOL_GEMM_MIN_K ? k : GRADC_POOL_GEMM_MIN_K); \
        size_t part_elems = (size_t)m * (size_t)n;                                              \
        if (threads > 1 && work >= GRADC_POOL_GEMM_MIN_WORK && beta == (T)0 && ldc == n         \
            && k >= GRADC_KSPLIT_RATIO * (int64_t)m                                             \
            && part_elems * sizeof(T) * (size_t)threads <= GRADC_KSPLIT_BYTES                   \
            && (t.partials = malloc(part_elems * sizeof(T) * (size_t)threads)) != NULL) {       \
            gradc_parallel_for(NAME##_ksteps, &t, k, threads, threads);                         \
            /* C (contiguous: ldc == n) = the partial Cs summed in thread order */              \
            gradc_combine(0, sizeof(T) == sizeof(double) ? 0 : 1, t.partials, C,                \
                          (int64_t)part_elems, threads);                                        \
            free(t.partials);                                                                   \
        } else if (threads <= 1 || chunks <= 1 || c_work < GRADC_POOL_GEMM_MIN_WORK)           \
            NAME##_rows(&t, 0, m, 0);                                                           \
        else                                                                                    \
            gradc_parallel_for(NAME##_rows, &t, m, chunks, threads);                            \
        pool_blas_single(0);                                                                    \
    }                                                                                           \
    /* A batch of products of one shape, item i's operands and result `stride` elements     \
     * after item i-1's (a stack of attention heads): threads take ranges of items, each    \
     * item one single-threaded product (gradc's kernel or BLAS), so the bits do not        \
     * depend on the thread count. */                                                       \
    typedef struct {                                                                            \
        NAME##_task t;                                                                          \
        int64_t sa, sb, sc;                                                                     \
    } NAME##_items_task;                                                                        \
    static void NAME##_items(void *ctx, int64_t start, int64_t end, int32_t chunk) {            \
        const NAME##_items_task *b = (const NAME##_items_task *)ctx;                            \
        (void)chunk;                                                                            \
        for (int64_t i = start; i < end; i++) {                                                 \
            NAME##_task t = b->t;                                                               \
            t.A += i * b->sa;                                                                   \
            t.B += i * b->sb;                                                                   \
            t.C += i * b->sc;                                                                   \
            NAME##_rows(&t, 0, t.m, 0);                                                         \
        }                                                                                       \
    }                                                                                           \
    static void NAME##_batched(int32_t order, int32_t ta, int32_t tb, I m, I n, I k, T alpha,   \
                               const T *A, I lda, int64_t sa, const T *B, I ldb, int64_t sb,    \
                               T beta, T *C, I ldc, int64_t sc, int64_t batch, int32_t threads) { \
        (void)order;                                                                            \
        NAME##_items_task b = {{ta, tb, n, k, lda, ldb, ldc, alpha, beta, A, B, C, m, NULL}, sa, sb, sc}; \
        if (batch <= 0) return;                                                                 \
        double work = (double)batch * (double)m * (double)n * (double)(k > GRADC_POOL_GEMM_MIN_K ? k : GRADC_POOL_GEMM_MIN_K); \
        pool_blas_single(1);                                                                    \
        if (threads > 1 && batch > 1 && work >= GRADC_POOL_GEMM_MIN_WORK)                       \
            gradc_parallel_for(NAME##_items, &b, batch, threads < batch ? threads : (int32_t)batch, threads); \
        else                                                                                    \
            NAME##_items(&b, 0, batch, 0);                                                      \
        pool_blas_single(0);                                                                    \
    }

GRADC_POOL_GEMM(pool_dgemm64, double, int64_t, pool_gemm_d)
GRADC_POOL_GEMM(pool_sgemm64, float, int64_t, pool_gemm_s)
GRADC_POOL_GEMM(pool_dgemm32, double, int32_t, pool_gemm_d)
GRADC_POOL_GEMM(pool_sgemm32, float, int32_t, pool_gemm_s)

/* Where the generated code's gradc_pool_{d,s}gemm symbols point, for the registered
 * library's integer width: {dgemm, sgemm}; and the batched ones (..._batched). */
static void pool_gemm_addresses(uintptr_t out[2]) {
    out[0] = pool_gemm_ilp64 ? (uintptr_t)&pool_dgemm64 : (uintptr_t)&pool_dgemm32;
    out[1] = pool_gemm_ilp64 ? (uintptr_t)&pool_sgemm64 : (uintptr_t)&pool_sgemm32;
}

static void pool_gemm_batched_addresses(uintptr_t out[2]) {
    out[0] = pool_gemm_ilp64 ? (uintptr_t)&pool_dgemm64_batched : (uintptr_t)&pool_dgemm32_batched;
    out[1] = pool_gemm_ilp64 ? (uintptr_t)&pool_sgemm64_batched : (uintptr_t)&pool_sgemm32_batched;
}
