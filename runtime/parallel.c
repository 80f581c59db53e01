/* gradc's thread pool: gradc_parallel_for splits [0, n) into `chunks` equal ranges and
 * runs them on up to `threads` threads (the caller is one), each thread taking the next
 * chunk from a shared counter.  Taking chunks dynamically keeps both cores busy when
 * one is slowed by other work (another library's spinning threads, the OS); the split
 * depends only on n and chunks, so per-chunk partial results, combined in chunk order
 * by the kernel, give the same answer on every run for a given thread count.
 *
 * One parallel_for runs at a time; a caller that finds the pool busy (another thread
 * is inside a kernel) runs all chunks itself, in order -- the same result, serially.
 * After fork() the child starts a fresh pool.  Included by callpath.c; ahead-of-time
 * libraries can compile it on its own (it needs only pthreads).
 */
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

typedef void (*gradc_task)(void *ctx, int64_t start, int64_t end, int32_t chunk);

#define GRADC_MAX_THREADS 256

static struct {
    pthread_mutex_t busy;     /* held for the whole of one parallel_for */
    pthread_mutex_t lock;     /* protects the fields below */
    pthread_cond_t wake, done;
    int nworkers;
    long generation;
    int pending;
    gradc_task fn;
    void *ctx;
    int64_t n;
    int chunks;
    int threads;
    int next;                 /* the next chunk to run (atomic) */
    pid_t pid;
    int ready;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static void run_chunk(gradc_task fn, void *ctx, int64_t n, int chunks, int t) {
    int64_t start = n * t / chunks, end = n * (t + 1) / chunks;
    fn(ctx, start, end, t);
}

static void take_chunks(gradc_task fn, void *ctx, int64_t n, int chunks) {
    int t;
    while ((t = __atomic_fetch_add(&pool.next, 1, __ATOMIC_RELAXED)) < chunks) run_chunk(fn, ctx, n, chunks, t);
}

/* After finishing, a worker polls for new work this many times (a pause each, about
 * 50 us in all) before sleeping: waking a sleeping thread costs more than a small
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
        if (id < pool.threads) {
            take_chunks(pool.fn, pool.ctx, pool.n, pool.chunks);
            if (__atomic_sub_fetch(&pool.pending, 1, __ATOMIC_ACQ_REL) == 0) {
                pthread_mutex_lock(&pool.lock);
                pthread_cond_signal(&pool.done);
                pthread_mutex_unlock(&pool.lock);
            }
        }
    }
    return NULL;
}

static int ensure_workers(int want) {
    if (pool.pid != getpid()) { /* a fresh process (fork): its pool has no threads yet */
        pthread_mutex_init(&pool.lock, NULL);
        pthread_cond_init(&pool.wake, NULL);
        pthread_cond_init(&pool.done, NULL);
        pool.nworkers = 0;
        pool.generation = 0;
        pool.pid = getpid();
    }
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

void gradc_parallel_for(gradc_task fn, void *ctx, int64_t n, int32_t chunks, int32_t threads) {
    if (threads > chunks) threads = chunks;
    if (threads <= 1 || threads > GRADC_MAX_THREADS || pthread_mutex_trylock(&pool.busy) != 0) {
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
    pool.fn = fn; pool.ctx = ctx; pool.n = n; pool.chunks = chunks; pool.threads = threads;
    __atomic_store_n(&pool.next, 0, __ATOMIC_RELAXED);
    __atomic_store_n(&pool.pending, threads - 1, __ATOMIC_RELAXED);
    __atomic_add_fetch(&pool.generation, 1, __ATOMIC_RELEASE); /* publishes the fields above */
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    take_chunks(fn, ctx, n, chunks);
    for (int spin = 0; __atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) > 0 && spin < GRADC_SPIN; spin++)
        cpu_relax();
    pthread_mutex_lock(&pool.lock);
    while (__atomic_load_n(&pool.pending, __ATOMIC_ACQUIRE) > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}

/* Combine per-chunk partial reductions in chunk order: out[e] = op over t of
 * partials[t * numel + e].  op: 0 sum, 1 max, 2 min (max/min propagate NaN, as numpy);
 * dtype: 0 float64, 1 float32, 2 int64, 3 int32, 4 bool (one byte).  Integer sums wrap
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
    if (dtype == 0) GRADC_COMBINE(double, __builtin_isnan);
    else if (dtype == 1) GRADC_COMBINE(float, __builtin_isnan);
    else if (dtype == 2) GRADC_COMBINE(int64_t, GRADC_NEVER_NAN);
    else if (dtype == 3) GRADC_COMBINE(int32_t, GRADC_NEVER_NAN);
    else GRADC_COMBINE(uint8_t, GRADC_NEVER_NAN);
}
