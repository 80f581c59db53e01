/* Speed of a row pipeline's narrow products on one block in cache, one thread.
 *
 * Times the two products a row pipeline runs per block of rows (gradc_skinny_rows,
 * runtime/skinny.c), Z[rows] = X[rows] @ W (NN, W packed once) and
 * gW^T += G[rows]^T X[rows] (TN), for every N asked, each in both of its forms:
 * the lane-filling forms (lanes: skinny_lanes.c's where the CPU has AVX-512, else
 * skinny_lanes_v3.c's where it has AVX2, which has no float64 TN) and skinny.c's
 * padded kernels (pad), called directly, so the dispatch (skinny_lanes_nn / skinny_lanes_tn, the
 * "dispatch" column) can be chosen from the figures.  Each call is timed in 7 rounds of
 * about 0.05 s of CPU time (CLOCK_PROCESS_CPUTIME_ID); the minimum is shown, in
 * GFLOP/s (2 * rows * K * N per call), and the dispatched form's as a fraction of this
 * core's peak, measured first by a loop of independent multiply-adds.  On a block in
 * cache: inside a row pipeline, where the head reads X from memory and the tail's
 * prefetches meet the next block, the ranking can differ (skinny_lanes_v3.c's widths
 * were chosen from whole pipelines).
 *
 *     gcc -O3 -std=gnu11 -pthread -fwrapv -Iruntime tools/skinny_speed.c -o /tmp/skinny_speed -lm
 *     /tmp/skinny_speed float64 64 512 10        # dtype, rows, K, N
 *     /tmp/skinny_speed -l float32 128 512 1-16  # -l: the lanes forms only
 *
 * -Iruntime picks the kernels: point it at another checkout's runtime/ to time those;
 * -DLANES_RB=... / -DLANES_CV=... / -DLANES_L1B=... re-tune skinny_lanes.c's blocking.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gradc.h"
#include "parallel.c"
#include "skinny.c"
#ifndef LANES_NN_L   /* kernels from before the 512-bit forms */
#define LANES_NN_L(T) LANES_L(T)
#endif

static double cpu_now(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

typedef struct {
    int dtype, tn, form;      /* form: 1 lanes, 2 padded */
    int64_t rows, K, N;
    void *X, *W, *Wp, *Z, *G, *acc;
} bench;

static void run_once(const bench *b) {
    int64_t rows = b->rows, K = b->K, N = b->N;
#ifdef GRADC_SKINNY_LANES
    if (b->form == 1) {   /* the widest lane-filling forms the CPU runs */
        int v4 = skinny_lanes_ok();
        if (b->tn) (v4 ? lanes_tn : lanes3_tn)[b->dtype][N - 1](b->X, K, b->G, N, rows, K, b->acc);
        else (v4 ? lanes_nn : lanes3_nn)[b->dtype][N - 1](b->X, K, b->Wp, K, rows, b->Z, N);
        return;
    }
#endif
    int failed = 0;
    skinny_args s = {b->tn, b->tn ? K : rows, N, b->tn ? rows : K, K, N, N, b->X,
                     b->tn ? b->G : b->Wp, b->tn ? b->acc : b->Z, b->Wp, 0, &failed};
    if (b->tn) skinny_pick_tnp(b->dtype, N, &s.np)(&s, 0, rows);
    else skinny_pick(b->dtype, 0, N, &s.np)(&s, 0, rows, 0, K, b->Z, N);
}

/* Seconds of CPU time per call: the minimum over 7 rounds of about 0.05 s each. */
static double time_calls(const bench *b) {
    run_once(b);
    int64_t reps = 1;
    for (;;) {
        double t0 = cpu_now();
        for (int64_t r = 0; r < reps; r++) run_once(b);
        if (cpu_now() - t0 > 0.01) break;
        reps *= 2;
    }
    reps *= 5;
    double best = 1e30;
    for (int round = 0; round < 7; round++) {
        double t0 = cpu_now();
        for (int64_t r = 0; r < reps; r++) run_once(b);
        double t = (cpu_now() - t0) / (double)reps;
        if (t < best) best = t;
    }
    return best;
}

/* This core's multiply-add peak in GFLOP/s of the dtype: CH independent chains of the
 * widest vectors the CPU has (512-bit with AVX-512, else 256-bit, whose 16 registers
 * hold 12 chains beside the two operands without spilling). */
#define FMA_PEAK(NAME, TARGET, LANES, CH)                                                       \
    __attribute__((target(TARGET))) static double NAME(int dtype) {                          \
        typedef double vN __attribute__((vector_size(8 * LANES)));                          \
        vN acc[CH];                                                                          \
        for (int i = 0; i < CH; i++) acc[i] = (vN){0};                                       \
        vN a = (vN){0} + 1e-9, x = a;                                                        \
        int64_t iters = 20000000;                                                            \
        double best = 1e30;                                                                  \
        for (int round = 0; round < 5; round++) {                                            \
            double t0 = cpu_now();                                                           \
            for (int64_t k = 0; k < iters; k++) {                                            \
                __asm__("" : "+x"(x));                                                       \
                for (int i = 0; i < CH; i++) acc[i] += a * x;                                \
            }                                                                                \
            double t = cpu_now() - t0;                                                       \
            if (t < best) best = t;                                                          \
        }                                                                                    \
        double s = 0;                                                                        \
        for (int i = 0; i < CH; i++) s += acc[i][0];                                         \
        if (s == 12345.0) printf(" ");                                                       \
        return (double)iters * CH * LANES * 2 / best / 1e9 * (dtype == 0 ? 1 : 2);           \
    }
FMA_PEAK(fma_peak_v4, "arch=x86-64-v4", 8, 16)
FMA_PEAK(fma_peak_v3, "arch=x86-64-v3", 4, 12)

static double fma_peak(int dtype) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? fma_peak_v4(dtype) : fma_peak_v3(dtype);
}

static void *filled(size_t n, size_t item, unsigned seed) {
    void *p = aligned_alloc(64, (n * item + 63) & ~(size_t)63);
    srand(seed);
    for (size_t i = 0; i < n; i++) {
        double v = (double)rand() / RAND_MAX - 0.5;
        if (item == 8) ((double *)p)[i] = v;
        else ((float *)p)[i] = (float)v;
    }
    return p;
}

int main(int argc, char **argv) {
    int lanes_only = argc > 1 && strcmp(argv[1], "-l") == 0;
    argv += lanes_only;
    argc -= lanes_only;
    if (argc < 5) {
        fprintf(stderr, "usage: %s [-l] float64|float32 ROWS K N|N0-N1 ...\n", argv[0]);
        return 2;
    }
    int dtype = strcmp(argv[1], "float32") == 0;
    int64_t rows = atoll(argv[2]), K = atoll(argv[3]);
    size_t item = dtype ? 4 : 8;
    double peak = fma_peak(dtype);
    double load[1];
    getloadavg(load, 1);
    printf("%s, block %lld x %lld, one thread, CPU time per call (min of 7); peak %.1f GFLOP/s; "
           "load average %.1f\n", argv[1], (long long)rows, (long long)K, peak, load[0]);
    printf("%4s %-4s %-8s %9s %6s %9s %6s %6s\n", "N", "form", "dispatch", "lanes us", "GF/s", "pad us", "GF/s",
           "peak");
    for (int a = 4; a < argc; a++) {
        int n0 = atoi(argv[a]), n1 = n0;
        char *dash = strchr(argv[a], '-');
        if (dash) n1 = atoi(dash + 1);
        for (int N = n0; N <= n1; N++) {
            bench b = {dtype, 0, 0, rows, K, N, filled(rows * K, item, 1), filled(K * N, item, 2),
                       aligned_alloc(64, K * 16 * item + 64), aligned_alloc(64, rows * N * item + 64),
                       filled(rows * N, item, 3), calloc(K * 16 + 16, item)};
            for (int tn = 0; tn < 2; tn++) {
                b.tn = tn;
                int lanes = tn ? skinny_lanes_tn(dtype, N) : skinny_lanes_nn(dtype, N);
                double fl = 2.0 * rows * K * N, t[3] = {0, 1e30, 1e30};
                for (int form = 1; form < 3; form++) {
                    if (form == 1 && !skinny_lanes_ok() && !(skinny_lanes3_ok() && (dtype == 1 || !tn))) continue;  /* no such form */
                    if (form == 2 && lanes_only) continue;
                    b.form = form;
#ifdef GRADC_SKINNY_LANES
                    if (!tn && form == 1) {   /* W packed as the form reads it */
                        int v4 = skinny_lanes_ok();
                        if (dtype == 0) lanes_pack_double(v4 ? LANES_NN_L(double) : LANES3_L(double), N, K, b.W, N, b.Wp);
                        else lanes_pack_float(v4 ? LANES_NN_L(float) : LANES3_L(float), N, K, b.W, N, b.Wp);
                    }
#endif
                    if (!tn && form == 2) {
                        int np;
                        skinny_pick(dtype, 0, N, &np);
                        for (int64_t k = 0; k < K; k++) {
                            memcpy((char *)b.Wp + k * np * item, (char *)b.W + k * N * item, N * item);
                            memset((char *)b.Wp + (k * np + N) * item, 0, (np - N) * item);
                        }
                    }
                    t[form] = time_calls(&b);
                }
                t[0] = lanes ? t[1] : t[2];
                printf("%4d %-4s %-8s", N, tn ? "TN" : "NN", lanes ? "lanes" : "pad");
                for (int form = 1; form < 3; form++)
                    if (t[form] < 1e30) printf(" %9.2f %6.1f", t[form] * 1e6, fl / t[form] / 1e9);
                    else printf(" %9s %6s", "-", "-");
                if (t[0] < 1e30) printf(" %6.2f\n", fl / t[0] / 1e9 / peak);
                else printf(" %6s\n", "-");
            }
            free(b.X); free(b.W); free(b.Wp); free(b.Z); free(b.G); free(b.acc);
        }
    }
    return 0;
}
