/* gradc's thread pool: gradc_parallel_for splits [0, n) into `chunks` equal static
 * ranges and runs chunk t on worker t (chunk 0 on the caller).  The split depends only
 * on n and chunks, so per-chunk partial results, combined in chunk order by the
 * kernel, give the same answer on every run for a given thread count.
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
    pid_t pid;
    int ready;
} pool = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER,
          PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0, 0, 0};

static void run_chunk(gradc_task fn, void *ctx, int64_t n, int chunks, int t) {
    int64_t start = n * t / chunks, end = n * (t + 1) / chunks;
    fn(ctx, start, end, t);
}

static void *worker(void *arg) {
    int id = (int)(intptr_t)arg; /* runs chunk id (1..) */
    long seen = 0;
    pthread_mutex_lock(&pool.lock);
    for (;;) {
        while (pool.generation == seen) pthread_cond_wait(&pool.wake, &pool.lock);
        seen = pool.generation;
        if (id < pool.chunks) {
            gradc_task fn = pool.fn;
            void *ctx = pool.ctx;
            int64_t n = pool.n;
            int chunks = pool.chunks;
            pthread_mutex_unlock(&pool.lock);
            run_chunk(fn, ctx, n, chunks, id);
            pthread_mutex_lock(&pool.lock);
            if (--pool.pending == 0) pthread_cond_signal(&pool.done);
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

void gradc_parallel_for(gradc_task fn, void *ctx, int64_t n, int32_t chunks) {
    if (chunks <= 1 || chunks > GRADC_MAX_THREADS || pthread_mutex_trylock(&pool.busy) != 0) {
        for (int t = 0; t < chunks; t++) run_chunk(fn, ctx, n, chunks, t);
        return;
    }
    pthread_mutex_lock(&pool.lock);
    int have = ensure_workers(chunks - 1);
    if (have < chunks - 1) { /* could not start threads: run serially, same chunks */
        pthread_mutex_unlock(&pool.lock);
        pthread_mutex_unlock(&pool.busy);
        for (int t = 0; t < chunks; t++) run_chunk(fn, ctx, n, chunks, t);
        return;
    }
    pool.fn = fn; pool.ctx = ctx; pool.n = n; pool.chunks = chunks;
    pool.pending = chunks - 1;
    pool.generation++;
    pthread_cond_broadcast(&pool.wake);
    pthread_mutex_unlock(&pool.lock);
    run_chunk(fn, ctx, n, chunks, 0);
    pthread_mutex_lock(&pool.lock);
    while (pool.pending > 0) pthread_cond_wait(&pool.done, &pool.lock);
    pthread_mutex_unlock(&pool.lock);
    pthread_mutex_unlock(&pool.busy);
}
