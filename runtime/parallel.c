/* gradc's thread pool: gradc_parallel_for splits [0, n) into `chunks` equal ranges and
 * runs them on up to `threads` threads (the caller is one), each thread taking the next
 * chunk from a shared counter.  Taking chunks dynamically keeps both cores busy when
 * one is slowed by other work (another library's spinning threads, the OS); the split
 * depends only on n and chunks, so per-chunk partial results, combined in chunk order
 * by the kernel, give the same answer on every run for a given thread count.
 *
 * One parallel_for runs at a time; a caller that finds the pool busy (another thread
 * is inside a kernel) runs all chunks itself, in order -- the same result, serially.
 * After fork() the child starts a fresh pool (pool_after_fork_in_child).  Included by callpath.c; ahead-of-time
 * libraries can compile it on its own (it needs only pthreads).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef void (*gradc_task)(void *ctx, int64_t start, int64_t end, int32_t chunk);

#define GRADC_MAX_THREADS 256

static struct {
    pthread_mutex_t busy;     /* held for the whole of one parallel_for */
    pthread_mutex_t lock;     /* with wake/done: sleeping and waking */
    pthread_cond_t wake, done;
    int nworkers;
    long generation;          /* bumped to wake the workers for a parallel_for */
    uint64_t claim;           /* atomic: threads << 48 | chunks << 24 | next chunk */
    int64_t finished;         /* atomic: chunks completed in this parallel_for */
    gradc_task fn;            /* these three are written before `claim` is published, */
    void *ctx;                /* and read by a thread only after it claimed a chunk */
    int64_t n;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0};

#define CLAIM_FIELD(c, shift) ((int)(((c) >> (shift)) & 0xffffff))

static void run_chunk(gradc_task fn, void *ctx, int64_t n, int chunks, int t) {
    int64_t start = n * t / chunks, end = n * (t + 1) / chunks;
    fn(ctx, start, end, t);
}

/* Run chunks of the current parallel_for until none is left.  A chunk is claimed by
 * advancing `claim` with a compare-and-swap, so a thread that wakes late -- after the
 * others took every chunk, or after that parallel_for returned -- claims nothing and
 * touches nothing.  `id` is the thread's number (the caller is 0): threads numbered at
 * or above the call's thread count do not join it. */
static void take_chunks(int id) {
    uint64_t c = __atomic_load_n(&pool.claim, __ATOMIC_ACQUIRE);
    for (;;) {
        int chunks = CLAIM_FIELD(c, 24), t = CLAIM_FIELD(c, 0);
        if (t >= chunks || id >= (int)(c >> 48)) return;
        if (!__atomic_compare_exchange_n(&pool.claim, &c, c + 1, 0, __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
            continue;                               /* c now holds the current value */
        run_chunk(pool.fn, pool.ctx, pool.n, chunks, t);
        if (__atomic_add_fetch(&pool.finished, 1, __ATOMIC_ACQ_REL) == chunks) {
            pthread_mutex_lock(&pool.lock);         /* the last chunk: wake the caller */
            pthread_cond_signal(&pool.done);
            pthread_mutex_unlock(&pool.lock);
        }
        c = __atomic_load_n(&pool.claim, __ATOMIC_ACQUIRE);
    }
}

/* After finishing, a worker polls for new work this many times (a pause each, about
 * 50-100 us in all) before sleeping: waking a sleeping thread costs more than a small
 * kernel, while spinning longer would steal the core from whoever runs next. */
#define GRADC_SPIN 4000

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg; /* worker 1, 2, ... (the caller is 0) */
    long seen = 0;
    for (;;) {
        long gen;
        for (int spin = 0; (gen = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE)) == seen && spin < GRADC_SPIN; spin++)
            cpu_relax();
        if (gen == seen) {
            pthread_mutex_lock(&pool.lock);
            while ((gen = __atomic_load_n(&pool.generation, __ATOMIC_ACQUIRE)) == seen)
                pthread_cond_wait(&pool.wake, &pool.lock);
            pthread_mutex_unlock(&pool.lock);
        }
        seen = gen;
        take_chunks(id);
    }
    return NULL;
}

/* After fork() the child has only the forking thread: locks another thread held at
 * that moment would stay locked forever, and the workers are gone.  The child starts
 * with a fresh pool (registered once, at the first parallel_for). */
static void pool_after_fork_in_child(void) {
    pthread_mutex_init(&pool.busy, NULL);
    pthread_mutex_init(&pool.lock, NULL);
    pthread_cond_init(&pool.wake, NULL);
    pthread_cond_init(&pool.done, NULL);
    pool.nworkers = 0;
    pool.generation = 0;
    pool.claim = 0;
    pool.finished = 0;
}

static pthread_once_t pool_fork_once = PTHREAD_ONCE_INIT;

static void pool_register_fork_handler(void) { pthread_atfork(NULL, NULL, pool_after_fork_in_child); }

static int ensure_workers(int want) {
    while (pool.nworkers < want) {
        pthread_t th;
        pthread_attr_t attr;
        pthread_attr_init(&attr);
        pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
        int rc = pthread_create(&th, &attr, worker, (void *)(intptr_t)(pool.nworkers + 1));
        pthread_attr_destroy(&attr);
        if (rc != 0) break;
        pool.nworkers++;
    }
    return pool.nworkers;
}

/* The caller waits for the chunks, not for the workers: when a worker is slow to wake
 * (a descheduled virtual CPU took 200-300 us to answer, measured on a 2-core VM) the
 * caller runs the chunks itself and returns, never slower than running them alone. */
void gradc_parallel_for(gradc_task fn, void *ctx, int64_t n, int32_t chunks, int32_t threads) {
    pthread_once(&pool_fork_once, pool_register_fork_handler);
    if (threads > chunks) threads = chunks;
    if (threads <= 1 || threads > GRADC_MAX_THREADS || chunks >= (1 << 24)
        || pthread_mutex_trylock(&pool.busy) != 0) {
        for (int t = 0; t < chunks; t++) run_chunk(fn, ctx, n, chunks, t);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    int have = ensure_workers(threads - 1);
    if (have < threads - 1) { /* could not start threads: run serially, same chunks */
        pthread_mutex_unlock(&pool.lock);
        pthread_mutex_unlock(&pool.busy);
        for (int t = 0; t < chunks; t++) run_chunk(fn, ctx, n, chunks, t);
        return;
    }
    pool.fn = fn; pool.ctx = ctx; pool.n = n;
    __atomic_store_n(&pool.finished, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.claim, (uint64_t)threads << 48 | (uint64_t)chunks << 24, __ATOMIC_RELEASE);
    __atomic_add_fetch(&pool.generation, 1, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    take_chunks(0);
    for (int spin = 0; __atomic_load_n(&pool.finished, __ATOMIC_ACQUIRE) < chunks && spin < GRADC_SPIN; spin++)
        cpu_relax();
    pthread_mutex_lock(&pool.lock);
    while (__atomic_load_n(&pool.finished, __ATOMIC_ACQUIRE) < chunks) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}

/* Combine per-chunk partial reductions in chunk order: out[e] = op over t of
 * partials[t * numel + e].  op: 0 sum, 1 max, 2 min (max/min propagate NaN, as numpy);
 * dtype: 0 float64, 1 float32, 2 int64, 3 int32, 4 bool or uint8 (one byte), 5 uint64,
 * 6 uint32, 7 int8, 8 int16, 9 uint16 (unsigned max/min compare unsigned).  Integer sums wrap
 * (this file is built with -fwrapv), as numpy's do.  A library function rather than generated code:
 * it is a few microseconds per call and keeps kernels (and their compile time) small. */
#define GRADC_COMBINE(T, ISNAN)                                                          \
    do {                                                                                 \
        const T *p = (const T *)partials;                                                \
        T *o = (T *)out;                                                                 \
        for (int64_t e = 0; e < numel; e++) {                                            \
            T acc = p[e];                                                                \
            for (int64_t t = 1; t < chunks; t++) {                                       \
                T v = p[t * numel + e];                                                  \
                if (op == 0) acc = acc + v;                                              \
                else if (ISNAN(acc)) continue;                                           \
                else if (ISNAN(v)) acc = v;                                              \
                else if (op == 1 ? v > acc : v < acc) acc = v;                           \
            }                                                                            \
            o[e] = acc;                                                                  \
        }                                                                                \
    } while (0)

#define GRADC_NEVER_NAN(x) 0

void gradc_combine(int32_t op, int32_t dtype, const void *partials, void *out, int64_t numel,
                   int64_t chunks) {
    if (chunks < 1) return;
    if (chunks == 1) {   /* a nest that ran serially: a copy (the loop below, per element
                          * with its branches, took 0.72 us for M4 small's
                          * 1280 partial dW2 elements, memmove 0.10 us: CPU time, load
                          * average 3) */
        static const unsigned char bytes[10] = {8, 4, 8, 4, 1, 8, 4, 1, 2, 2};
        if (numel > 0) memmove(out, partials, (size_t)numel * bytes[dtype >= 0 && dtype <= 9 ? dtype : 4]);
        return;
    }
    if (dtype == 0) GRADC_COMBINE(double, __builtin_isnan);
    else if (dtype == 1) GRADC_COMBINE(float, __builtin_isnan);
    else if (dtype == 2) GRADC_COMBINE(int64_t, GRADC_NEVER_NAN);
    else if (dtype == 3) GRADC_COMBINE(int32_t, GRADC_NEVER_NAN);
    else if (dtype == 5) GRADC_COMBINE(uint64_t, GRADC_NEVER_NAN);
    else if (dtype == 6) GRADC_COMBINE(uint32_t, GRADC_NEVER_NAN);
    else if (dtype == 7) GRADC_COMBINE(int8_t, GRADC_NEVER_NAN);
    else if (dtype == 8) GRADC_COMBINE(int16_t, GRADC_NEVER_NAN);
    else if (dtype == 9) GRADC_COMBINE(uint16_t, GRADC_NEVER_NAN);
    else GRADC_COMBINE(uint8_t, GRADC_NEVER_NAN);
}
