/* train_neuron.c: train the paper's neuron in plain C, with the loss and its gradient
 * from a library gradc built ahead of time -- no Python at run time.
 *
 * The model (neuron.py beside this file): C(w, b) = mean((relu(X @ w + b) - y)^2).
 *
 *   gradc build runtime/examples/neuron.py:loss 'f64[d]' 'f64[]' 'f64[n,d]' 'f64[n]' \
 *       --wrt w,b -o aot --name neuron
 *   cc -std=c99 -O2 -ffp-contract=off -I aot runtime/examples/train_neuron.c \
 *       -L aot -lneuron -Wl,-rpath,"$PWD/aot" -o aot/train_neuron
 *   aot/train_neuron
 *
 * The data are synthetic and deterministic (a 64-bit LCG, not rand(), so every platform
 * draws the same numbers): X uniform in [-1, 1), y = relu(X w* + b*) + noise.
 * -ffp-contract=off keeps the compiler from fusing a*b+c into one rounding, so this
 * program rounds exactly as numpy does; tests/test_aot.py repeats the training in
 * Python with gradc and expects the same final loss.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "neuron.h"

#define N_SAMPLES 200
#define N_FEATURES 3
#define STEPS 500
#define LEARNING_RATE 0.1

/* Knuth's MMIX linear congruential generator; the top 53 bits as a double in [0, 1). */
static uint64_t lcg_state = 20240601u;

static double uniform(void) {
    lcg_state = lcg_state * 6364136223846793005u + 1442695040888963407u;
    return (double)(lcg_state >> 11) * (1.0 / 9007199254740992.0); /* 2^-53 */
}

static void make_data(double *X, double *y) {
    const double w_true[N_FEATURES] = {0.5, -1.0, 2.0}, b_true = 0.3;
    for (int i = 0; i < N_SAMPLES; i++) {
        double z = b_true;
        for (int j = 0; j < N_FEATURES; j++) {
            X[i * N_FEATURES + j] = 2.0 * uniform() - 1.0;
            z += X[i * N_FEATURES + j] * w_true[j];
        }
        double noise = 0.1 * (2.0 * uniform() - 1.0);
        y[i] = (z > 0.0 ? z : 0.0) + noise;
    }
}

static void check(gradc_status status, const char *what) {
    if (status != GRADC_OK) {
        fprintf(stderr, "%s: %s\n", what, gradc_status_string(status));
        exit(1);
    }
}

int main(void) {
    static double X[N_SAMPLES * N_FEATURES], y[N_SAMPLES];
    make_data(X, y);

    int64_t sizes[NEURON_NUM_SIZES];
    sizes[NEURON_SIZE_n] = N_SAMPLES;
    sizes[NEURON_SIZE_d] = N_FEATURES;
    check(neuron_value_and_grad_check_sizes(sizes), "value_and_grad");
    check(neuron_forward_check_sizes(sizes), "forward");

    /* One workspace serves both entry points: the larger of their sizes, aligned by hand
     * (C99 has no aligned_alloc). */
    size_t need = neuron_value_and_grad_workspace_bytes(sizes);
    if (neuron_forward_workspace_bytes(sizes) > need) need = neuron_forward_workspace_bytes(sizes);
    char *raw = malloc(need + GRADC_WORKSPACE_ALIGN);
    if (!raw) return 1;
    void *workspace = (void *)(((uintptr_t)raw + GRADC_WORKSPACE_ALIGN - 1) & ~(uintptr_t)(GRADC_WORKSPACE_ALIGN - 1));

    double w[N_FEATURES] = {0.1, 0.1, 0.1}, b = 0.1;
    double loss, dw[N_FEATURES], db;
    void *args[NEURON_VALUE_AND_GRAD_NUM_ARGS] = {w, &b, X, y, &loss, dw, &db};
    for (int step = 0; step < STEPS; step++) {
        check(neuron_value_and_grad(args, sizes, workspace), "value_and_grad");
        if (step % 50 == 0) printf("step %3d  loss %.10f\n", step, loss);
        for (int j = 0; j < N_FEATURES; j++) w[j] -= LEARNING_RATE * dw[j];
        b -= LEARNING_RATE * db;
    }

    void *forward_args[NEURON_FORWARD_NUM_ARGS] = {w, &b, X, y, &loss};
    check(neuron_forward(forward_args, sizes, workspace), "forward");
    printf("w = [%.6f, %.6f, %.6f]  b = %.6f  (data drawn with w = [0.5, -1, 2], b = 0.3)\n",
           w[0], w[1], w[2], b);
    printf("final loss %.17g\n", loss);
    free(raw);
    return 0;
}
