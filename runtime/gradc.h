/* gradc.h: the stable ABI of everything gradc generates.
 *
 * Every compiled gradc function -- a JIT kernel (backend "llvm"), generated C
 * (backend "c", `gradc c`), or an entry point of an ahead-of-time library
 * (`gradc build`) -- is a function of this type:
 *
 *     int32_t NAME(void **args, const int64_t *sizes, void *workspace);
 *
 * args       Data pointers, one per array, in this order: the inputs (the model's
 *            arguments), then the outputs, then (JIT kernels and generated C only)
 *            array constants the model closed over.  Arrays are dense, row-major
 *            (C order), of the element type their dtype names (see "Element types"),
 *            aligned to their element size.  A scalar (shape []) is a pointer to
 *            one element.  Inputs are only read; outputs are only written, and must
 *            not overlap any other array.  Ahead-of-time libraries embed their
 *            constants, so their callers pass inputs and outputs only.
 * sizes      The run-time value of each size symbol (the `n` in f64[n,d]), in the
 *            order the generated header or source lists them.  Every size must be
 *            >= 0 and consistent with the arrays passed; the kernel trusts them.
 * workspace  Scratch memory for intermediates, at least the byte count the
 *            generated `..._workspace_bytes(sizes)` returns (0 bytes: any pointer,
 *            NULL included), aligned to GRADC_WORKSPACE_ALIGN.  Reuse it across
 *            calls freely, but never share one workspace between two calls that run
 *            at the same time.  Its layout: each intermediate buffer in turn, each
 *            rounded up to a multiple of GRADC_WORKSPACE_ALIGN bytes.
 * returns    A gradc_status: GRADC_OK, or an OR of GRADC_INDEX_OUT_OF_BOUNDS (an index
 *            array -- take_along_axis, S[rows, cols] -- pointed outside its array) and
 *            GRADC_NEGATIVE_POWER (an integer to a negative integer power).  On an
 *            error the outputs hold unspecified values.
 *
 * Kernels keep no state, allocate nothing, and may run concurrently on different
 * arguments and workspaces.
 *
 * Element types: f64 -> double, f32 -> float, i64 -> int64_t, i32 -> int32_t,
 * bool -> uint8_t holding 0 or 1 (numpy's bool).
 *
 * The helpers below are the scalar functions generated C calls: the names follow
 * libm's (a trailing `f` for float, `i` for integers), and they follow numpy's
 * semantics, NaN included: numpy's maximum(nan, 1) is nan, so gradc_max(NAN, 1.0)
 * is NAN (C's fmax would return 1.0).
 */
#ifndef GRADC_H
#define GRADC_H

#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* -- status codes ----------------------------------------------------------------- */
typedef int32_t gradc_status;

enum {
    GRADC_OK = 0,
    GRADC_INDEX_OUT_OF_BOUNDS = 1, /* an index array pointed outside its array (kernel) */
    GRADC_EMPTY_REDUCTION = 2,     /* max/min over zero elements (from ..._check_sizes) */
    GRADC_SIZE_TOO_SMALL = 3,      /* a size below the model's bound, e.g. x[1:4] needs n >= 4 */
    GRADC_NEGATIVE_SIZE = 4,       /* a size < 0 (from ..._check_sizes) */
    GRADC_NEGATIVE_POWER = 8,      /* an integer to a negative integer power (kernel) */
    /* linear algebra (kernels of the LLVM backend, runtime/lapack.c) */
    GRADC_SINGULAR_MATRIX = 16,    /* linalg.solve or linalg.inv of a singular matrix */
    GRADC_NOT_POSITIVE_DEFINITE = 32, /* linalg.cholesky of a matrix that is not positive definite */
    GRADC_NO_CONVERGENCE = 64,     /* linalg.eigh's eigenvalue iteration did not converge */
    GRADC_LAPACK_UNAVAILABLE = 128, /* no LAPACK routines were registered */
    GRADC_OUT_OF_MEMORY = 256      /* a linear algebra workspace could not be allocated */
};
/* A kernel returns GRADC_OK or an OR of the kernel codes (GRADC_INDEX_OUT_OF_BOUNDS,
 * GRADC_NEGATIVE_POWER): every problem found in the call, not only the first. */

static inline const char *gradc_status_string(gradc_status s) {
    switch (s) {
    case GRADC_OK: return "ok";
    case GRADC_INDEX_OUT_OF_BOUNDS: return "index out of bounds in a gather or scatter";
    case GRADC_EMPTY_REDUCTION: return "max or min of an empty array";
    case GRADC_SIZE_TOO_SMALL: return "a size is below the model's lower bound";
    case GRADC_NEGATIVE_SIZE: return "a size is negative";
    case GRADC_NEGATIVE_POWER: return "an integer to a negative integer power";
    case GRADC_SINGULAR_MATRIX: return "singular matrix";
    case GRADC_NOT_POSITIVE_DEFINITE: return "matrix is not positive definite";
    case GRADC_NO_CONVERGENCE: return "eigenvalues did not converge";
    default:
        if (s & GRADC_NEGATIVE_POWER) return "an integer to a negative integer power (and an index out of bounds)";
        return "unknown gradc status";
    }
}

/* -- the kernel ABI ---------------------------------------------------------------- */
typedef int32_t (*gradc_kernel)(void **args, const int64_t *sizes, void *workspace);

/* The workspace's alignment, and the rounding of each buffer in it. */
#define GRADC_WORKSPACE_ALIGN 64

static inline size_t gradc_workspace_round(size_t nbytes) {
    return (nbytes + (GRADC_WORKSPACE_ALIGN - 1)) & ~(size_t)(GRADC_WORKSPACE_ALIGN - 1);
}

/* -- scalar helpers used by generated C (numpy semantics) ---------------------------- */

/* A gather/scatter index: negative indices count from the end (as in numpy); an index
 * outside [-n, n) sets the status and reads element 0 instead (never out of bounds). */
static inline int64_t gradc_index(int64_t k, int64_t n, int32_t *status) {
    if (k < 0) k += n;
    if (k >= 0 && k < n) return k;
    *status |= GRADC_INDEX_OUT_OF_BOUNDS;
    return 0;
}

/* numpy.abs: fabs for floats; an integer's most negative value is its own abs (wraps,
 * computed in unsigned arithmetic: no undefined behaviour). */
static inline double gradc_abs(double x) { return fabs(x); }
static inline float gradc_absf(float x) { return fabsf(x); }
static inline int64_t gradc_absi(int64_t x) { return x < 0 ? (int64_t)(0 - (uint64_t)x) : x; }

/* numpy.power.  Integers: square-and-multiply, wrapping (unsigned arithmetic); a negative
 * exponent gives 0 (numpy raises ValueError: the kernel checks the exponent first and
 * sets GRADC_NEGATIVE_POWER, as its loop IR says). */
static inline double gradc_pow(double x, double y) { return pow(x, y); }
static inline float gradc_powf(float x, float y) { return powf(x, y); }
static inline int64_t gradc_powi(int64_t x, int64_t y) {
    if (y < 0) return 0;
    uint64_t result = 1, base = (uint64_t)x;
    for (uint64_t e = (uint64_t)y; e; e >>= 1) {
        if (e & 1) result *= base;
        base *= base;
    }
    return (int64_t)result;
}
static inline uint64_t gradc_powu(uint64_t x, uint64_t y) {   /* unsigned: never negative */
    uint64_t result = 1;
    for (; y; y >>= 1) {
        if (y & 1) result *= x;
        x *= x;
    }
    return result;
}

/* numpy.maximum / numpy.minimum: NaN in either operand gives NaN. */
static inline double gradc_max(double x, double y) { return (x > y || x != x) ? x : y; }
static inline float gradc_maxf(float x, float y) { return (x > y || x != x) ? x : y; }
/* numpy's integer division (int_floor_divide, int_remainder, int_fmod), exact: C's
 * division truncates, so the floored forms move a remainder whose sign differs from
 * the divisor's; a zero divisor gives 0 and INT64_MIN / -1 wraps (both undefined in C),
 * as numpy's.  Narrower integers are computed in these and converted back. */
static inline int64_t gradc_idiv_trunc_(int64_t x, int64_t y, int64_t *r) {
    if (y == 0) { *r = 0; return 0; }
    if (y == -1) { *r = 0; return (int64_t)(0 - (uint64_t)x); }
    *r = x % y;
    return x / y;
}
static inline int64_t gradc_idiv_qi(int64_t x, int64_t y) {
    int64_t r, q = gradc_idiv_trunc_(x, y, &r);
    return (r != 0 && ((r < 0) != (y < 0))) ? q - 1 : q;
}
static inline int64_t gradc_idiv_ri(int64_t x, int64_t y) {
    int64_t r;
    gradc_idiv_trunc_(x, y, &r);
    return (r != 0 && ((r < 0) != (y < 0))) ? r + y : r;
}
static inline int64_t gradc_idiv_fmodi(int64_t x, int64_t y) {
    int64_t r;
    gradc_idiv_trunc_(x, y, &r);
    return r;
}
/* numpy's left_shift / right_shift of integers: a count outside [0, 64) -- undefined in
 * C -- gives 0, or -1 for a negative value shifted right, as numpy's; a negative value
 * is shifted in unsigned arithmetic (no undefined behaviour).  Narrower integers are
 * shifted here, sign- or zero-extended, and converted back, which gives numpy's
 * answer for their counts too (the bits beyond their width are dropped). */
static inline int64_t gradc_shli(int64_t x, int64_t y) { return (uint64_t)y < 64 ? (int64_t)((uint64_t)x << y) : 0; }
static inline uint64_t gradc_shlu(uint64_t x, uint64_t y) { return y < 64 ? x << y : 0; }
static inline int64_t gradc_shri(int64_t x, int64_t y) {
    int64_t n = (uint64_t)y < 64 ? y : 63;
    return x < 0 ? ~(~x >> n) : x >> n;
}
static inline uint64_t gradc_shru(uint64_t x, uint64_t y) { return y < 64 ? x >> y : 0; }
/* numpy.bitwise_count: the 1 bits of |x|, as uint8. */
static inline uint8_t gradc_bitcountu(uint64_t x) {
    x = x - ((x >> 1) & UINT64_C(0x5555555555555555));
    x = (x & UINT64_C(0x3333333333333333)) + ((x >> 2) & UINT64_C(0x3333333333333333));
    x = (x + (x >> 4)) & UINT64_C(0x0F0F0F0F0F0F0F0F);
    return (uint8_t)((x * UINT64_C(0x0101010101010101)) >> 56);
}
static inline uint8_t gradc_bitcounti(int64_t x) { return gradc_bitcountu(x < 0 ? 0 - (uint64_t)x : (uint64_t)x); }
static inline uint64_t gradc_idiv_qu(uint64_t x, uint64_t y) { return y ? x / y : 0; }
static inline uint64_t gradc_idiv_ru(uint64_t x, uint64_t y) { return y ? x % y : 0; }
static inline uint64_t gradc_idiv_fmodu(uint64_t x, uint64_t y) { return y ? x % y : 0; }
static inline int64_t gradc_maxi(int64_t x, int64_t y) { return x > y ? x : y; }
static inline double gradc_min(double x, double y) { return (x < y || x != x) ? x : y; }
static inline float gradc_minf(float x, float y) { return (x < y || x != x) ? x : y; }
static inline int64_t gradc_mini(int64_t x, int64_t y) { return x < y ? x : y; }
static inline uint64_t gradc_maxu(uint64_t x, uint64_t y) { return x > y ? x : y; }
static inline uint64_t gradc_minu(uint64_t x, uint64_t y) { return x < y ? x : y; }
static inline uint64_t gradc_absu(uint64_t x) { return x; }

/* relu(x) = maximum(x, 0): NaN stays NaN. */
static inline double gradc_relu(double x) { return (x > 0.0 || x != x) ? x : 0.0; }
static inline float gradc_reluf(float x) { return (x > 0.0f || x != x) ? x : 0.0f; }

/* Rounding to an integral value, and C's remainder (numpy.floor, ceil, trunc, rint, fmod
 * of floats: their names in float32 as gradc_*f). */
static inline double gradc_floor(double x) { return floor(x); }
static inline float gradc_floorf(float x) { return floorf(x); }
static inline double gradc_ceil(double x) { return ceil(x); }
static inline float gradc_ceilf(float x) { return ceilf(x); }
static inline double gradc_trunc(double x) { return trunc(x); }
static inline float gradc_truncf(float x) { return truncf(x); }
static inline double gradc_rint(double x) { return rint(x); }
static inline float gradc_rintf(float x) { return rintf(x); }
static inline double gradc_fmod(double x, double y) { return fmod(x, y); }
static inline float gradc_fmodf(float x, float y) { return fmodf(x, y); }
static inline double gradc_erf(double x) { return erf(x); }
static inline float gradc_erff(float x) { return erff(x); }
static inline double gradc_erfc(double x) { return erfc(x); }
static inline float gradc_erfcf(float x) { return erfcf(x); }

/* erfinv and ndtri: Newton's method on libm's erf and erfc (gradc's LLVM code evaluates
 * Chebyshev fits instead: the two backends are independent checks of each other).
 * gradc_erfcinv_(q), 0 < q <= 1/2: the y with erfc(y) = q, from sqrt(-log(q (2 - q))),
 * on log erfc (concave, so from that side the steps decrease monotonically to it). */
static inline double gradc_erfcinv_(double q) {
    double y = sqrt(-log(q * (2.0 - q))), lq = log(q);
    for (int k = 0; k < 100; k++) {
        double c = erfc(y);
        double step = (log(c) - lq) / (-1.1283791670955126 * exp(-y * y) / c);
        y -= step;
        if (!(fabs(step) > 4e-17 * y)) break;
    }
    return y;
}
static inline double gradc_erfinv_pos_(double a) {      /* 0 <= a < 1 */
    if (a >= 0.5) return gradc_erfcinv_(1.0 - a);       /* (1 - a: exact) */
    double y = 0.886226925452758 * a;                   /* erf(y) <= 2y/sqrt(pi): from below */
    for (int k = 0; k < 100; k++) {
        double step = (erf(y) - a) / (1.1283791670955126 * exp(-y * y));
        y -= step;
        if (!(fabs(step) > 4e-17 * y)) break;
    }
    return y;
}
static inline double gradc_erfinv(double x) {
    double a = fabs(x);
    if (!(a < 1.0)) return a == 1.0 ? x * INFINITY : NAN;
    return copysign(gradc_erfinv_pos_(a), x);
}
static inline float gradc_erfinvf(float x) { return (float)gradc_erfinv((double)x); }
static inline double gradc_ndtri(double p) {
    if (!(p > 0.0 && p < 1.0)) return p == 0.0 ? -INFINITY : p == 1.0 ? INFINITY : NAN;
    if (p < 0.25) return -1.4142135623730951 * gradc_erfcinv_(2.0 * p);     /* (2p, 1 - 2p, 2p - 1: exact) */
    if (p < 0.5) return -1.4142135623730951 * gradc_erfinv_pos_(1.0 - 2.0 * p);
    return 1.4142135623730951 * gradc_erfinv_pos_(2.0 * p - 1.0);
}
static inline float gradc_ndtrif(float p) { return (float)gradc_ndtri((double)p); }

/* Float to integer as numpy on x86-64 (its contiguous loops), for every value (a C cast
   out of range is undefined): truncated toward zero through int32 (1, 2, 4-byte signed
   and 1, 2-byte unsigned targets, then wrapped) or int64; out of range or NaN gives the
   range's minimum (cvttsd2si's answer); uint32 and uint64 take x >= 2^31 (2^63) as
   x - 2^31 (2^63) with the top bit set.  Branch-free, so loops still vectorize. */
static inline int32_t gradc_f2i32(double x) {
    const int ok = x >= -2147483648.0 && x < 2147483648.0;
    const int32_t k = (int32_t)(ok ? x : 0.0);
    return ok ? k : INT32_MIN;
}
static inline int64_t gradc_f2i64(double x) {
    const int ok = x >= -9223372036854775808.0 && x < 9223372036854775808.0;
    const int64_t k = (int64_t)(ok ? x : 0.0);
    return ok ? k : INT64_MIN;
}
static inline uint32_t gradc_f2u32(double x) {
    const int big = x >= 2147483648.0;
    const uint32_t k = (uint32_t)gradc_f2i32(big ? x - 2147483648.0 : x);
    return big ? k ^ 0x80000000u : k;
}
static inline uint64_t gradc_f2u64(double x) {
    const int big = x >= 9223372036854775808.0;
    const uint64_t k = (uint64_t)gradc_f2i64(big ? x - 9223372036854775808.0 : x);
    return big ? k ^ 0x8000000000000000ull : k;
}

/* numpy.sign: -1, 0 or 1; NaN stays NaN. */
static inline double gradc_sign(double x) {
    return x > 0.0 ? 1.0 : x < 0.0 ? -1.0 : x == 0.0 ? 0.0 : x;
}
static inline float gradc_signf(float x) {
    return x > 0.0f ? 1.0f : x < 0.0f ? -1.0f : x == 0.0f ? 0.0f : x;
}
static inline int64_t gradc_signi(int64_t x) { return (x > 0) - (x < 0); }
static inline uint64_t gradc_signu(uint64_t x) { return x != 0; }

/* 1/(1+exp(-x)) without overflow: exp of a non-positive number only. */
static inline double gradc_sigmoid(double x) {
    double e = exp(-fabs(x));
    return x >= 0.0 ? 1.0 / (1.0 + e) : e / (1.0 + e);
}
static inline float gradc_sigmoidf(float x) {
    float e = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
}

/* log(1+exp(x)) = max(x,0) + log1p(exp(-|x|)): exact for large |x|, NaN stays NaN. */
static inline double gradc_softplus(double x) {
    return gradc_max(x, 0.0) + log1p(exp(-fabs(x)));
}
static inline float gradc_softplusf(float x) {
    return gradc_maxf(x, 0.0f) + log1pf(expf(-fabsf(x)));
}

#ifdef __cplusplus
}
#endif

#endif /* GRADC_H */
