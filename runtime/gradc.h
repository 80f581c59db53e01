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

/* i0e, i1e, i0, i1 and erfcx: the algorithms of gradc/ops/bessel.py (the same Chebyshev
 * coefficients, tools/fit_bessel.py; the same split exp(x^2) and asymptotic series). */
static const double gradc_i0_small_[32] = {-7.057100692457294e-20, 5.669178006921496e-19, -4.4153416464793395e-18, 3.3307945188222384e-17, -2.431279846547955e-16, 1.715391285555133e-15, -1.1685332877993451e-14, 7.676185498604936e-14, -4.856446783111929e-13, 2.95505266312964e-12, -1.726826291441556e-11, 9.675809035373237e-11, -5.189795601635263e-10, 2.6598237246823866e-09, -1.300025009986248e-08, 6.046995022541919e-08, -2.670793853940612e-07, 1.1173875391201037e-06, -4.4167383584587505e-06, 1.6448448070728896e-05, -5.754195010082104e-05, 0.00018850288509584165, -0.0005763755745385824, 0.0016394756169413357, -0.004324309995050576, 0.010546460394594998, -0.02373741480589947, 0.04930528423967071, -0.09490109704804764, 0.17162090152220877, -0.3046826723431984, 0.6767952744094761};
static const double gradc_i1_small_[31] = {4.379302756655071e-20, -3.541581772542136e-19, 2.7779141127610464e-18, -2.111421214358166e-17, 1.5536319577362005e-16, -1.1055969477353862e-15, 7.600684294735408e-15, -5.042185504727912e-14, 3.223793365945575e-13, -1.9839743977649436e-12, 1.1736186298890901e-11, -6.663489723502027e-11, 3.625590281552117e-10, -1.8872497517228294e-09, 9.381537386495773e-09, -4.445059128796328e-08, 2.0032947535521353e-07, -8.568720264695455e-07, 3.4702513081376785e-06, -1.3273163656039436e-05, 4.781565107550054e-05, -0.00016176081582589674, 0.0005122859561685758, -0.0015135724506312532, 0.004156422944312888, -0.010564084894626197, 0.024726449030626516, -0.05294598120809499, 0.1026436586898471, -0.17641651835783406, 0.25258718644363365};
static const double gradc_i0_large_[32] = {-1.601954907174972e-20, 2.886051596289224e-20, 6.444656697373444e-20, -1.938426454160906e-19, -2.4887098371508075e-19, 1.193650890845982e-18, 9.921475412173699e-19, -7.233180487874754e-18, -4.830504485944182e-18, 4.46562142029676e-17, 3.461222867697461e-17, -2.8276239805165836e-16, -3.425485619677219e-16, 1.7725601330565263e-15, 3.8116806693526224e-15, -9.554846698828307e-15, -4.150569347287222e-14, 1.54008621752141e-14, 3.8527783827421426e-13, 7.180124451383666e-13, -1.7941785315068062e-12, -1.3215811840447713e-11, -3.1499165279632416e-11, 1.1889147107846439e-11, 4.94060238822497e-10, 3.3962320257083865e-09, 2.266668990498178e-08, 2.0489185894690638e-07, 2.8913705208347567e-06, 6.889758346916825e-05, 0.0033691164782556943, 0.8044904110141088};
static const double gradc_i1_large_[32] = {1.6128418516514802e-20, -3.049812452373096e-20, -6.394267188269098e-20, 2.0269443840532852e-19, 2.4142767194548486e-19, -1.242193275194891e-18, -9.314178867326884e-19, 7.517296310842105e-18, 4.414348323071708e-18, -4.6503053684893586e-17, -3.209525921993424e-17, 2.96262899764595e-16, 3.3082023109209285e-16, -1.8803547755107825e-15, -3.8144030724370075e-15, 1.0420276984128802e-14, 4.272440016711951e-14, -2.1015418427726643e-14, -4.0835511110921974e-13, -7.198551776245908e-13, 2.0356285441470896e-12, 1.4125807436613782e-11, 3.2526035830154884e-11, -1.8974958123505413e-11, -5.589743462196584e-10, -3.835380385964237e-09, -2.6314688468895196e-08, -2.512236237870209e-07, -3.882564808877691e-06, -0.00011058893876262371, -0.009761097491361469, 0.7785762350182801};
static inline double gradc_cheb_(double t, const double *c, int n) {
    double b1 = 0.0, b2 = 0.0, t2 = 2.0 * t;
    for (int k = 0; k < n - 1; k++) { double b0 = t2 * b1 - b2 + c[k]; b2 = b1; b1 = b0; }
    return t * b1 - b2 + 0.5 * c[n - 1];
}
static inline double gradc_i0e(double x) {
    double a = fabs(x);
    if (a != a) return x;
    if (a <= 8.0) return gradc_cheb_(0.25 * a - 1.0, gradc_i0_small_, 32);
    return gradc_cheb_(16.0 / a - 1.0, gradc_i0_large_, 32) / sqrt(a);
}
static inline double gradc_i1e(double x) {
    double a = fabs(x);
    if (a != a) return x;
    if (a <= 8.0) return x * gradc_cheb_(0.25 * a - 1.0, gradc_i1_small_, 31);
    return copysign(gradc_cheb_(16.0 / a - 1.0, gradc_i1_large_, 32) / sqrt(a), x);
}
static inline double gradc_i0(double x) { double a = fabs(x); return a == INFINITY ? a : exp(a) * gradc_i0e(x); }
static inline double gradc_i1(double x) { double a = fabs(x); return a == INFINITY ? x : exp(a) * gradc_i1e(x); }
static inline double gradc_exp_square_(double u, double splitter) {   /* exp(u^2), h^2 exact */
    double p = u * splitter, h = p - (p - u);
    return exp(h * h) * exp((u - h) * (u + h));
}
static inline double gradc_erfcx_(double x, double cut, double big, double splitter, int f32) {
    double a = fabs(x), pos;
    if (x != x) return x;
    if (a < cut) {
        pos = gradc_exp_square_(a, splitter) * (f32 ? (double)erfcf((float)a) : erfc(a));
    } else {
        double w = 0.5 / (a * a), s = 1.0;
        for (int k = 12; k > 0; k--) s = 1.0 - (2 * k - 1) * w * s;
        pos = 0.5641895835477563 * s / a;
    }
    if (x >= 0.0) return pos;
    return a > big ? INFINITY : 2.0 * gradc_exp_square_(a, splitter) - pos;
}
static inline double gradc_erfcx(double x) { return gradc_erfcx_(x, 10.0, 27.0, 134217729.0, 0); }
static inline float gradc_i0ef(float x) { return (float)gradc_i0e((double)x); }
static inline float gradc_i1ef(float x) { return (float)gradc_i1e((double)x); }
static inline float gradc_i0f(float x) { return (float)gradc_i0((double)x); }
static inline float gradc_i1f(float x) { return (float)gradc_i1((double)x); }
static inline float gradc_erfcxf(float x) { return (float)gradc_erfcx((double)x); }
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

/* -- sorting (op sort_rank: np.sort, argsort, median, quantile, unique, ...) ----------- */

/* gradc_sort_rank_f64 / _f32 / _i8 ... _i64 / _u8 ... _u64: for each of `batch` rows of
 * `n` numbers (row t at x + t*n), rank[t*n + i] = the place of x[t*n + i] in the row's
 * stable ascending sort (equal values keep their order), NaN after every number (numpy's
 * order; -0.0 and 0.0 are equal, so they keep their order; unsigned values compare as
 * unsigned, so a uint64 above 2^63 sorts after every smaller one; bool is _u8).  A
 * bottom-up merge sort of the row's indices: O(n log n) comparisons, no allocation.
 * `scratch` holds n int64 values (the caller's workspace); the row's ranks are the
 * second index buffer, and the passes start in whichever buffer makes the sorted order
 * end in `scratch`, from where it is scattered into the ranks.  The one definition of
 * sort_rank's native order: generated C calls it, LLVM kernels and ahead-of-time
 * libraries through gradc_sort_rank (gradc_sort_rank_any below). */
#define GRADC_SORT_RANK_(S, T, BEFORE)                                                          \
    static inline int gradc_sort_before_##S##_(T u, T v) { return BEFORE; } /* u before v? */   \
    static inline void gradc_sort_rank_##S(int64_t batch, int64_t n, const T *x, int64_t *rank, \
                                           int64_t *scratch) {                                  \
        int passes = 0;                                                                         \
        for (int64_t w = 1; w < n; w *= 2) passes++;                                            \
        for (int64_t t = 0; t < batch; t++, x += n, rank += n) {                                \
            int64_t *idx = passes % 2 ? rank : scratch, *tmp = passes % 2 ? scratch : rank;     \
            for (int64_t i = 0; i < n; i++) idx[i] = i;                                         \
            for (int64_t w = 1; w < n; w *= 2) {                                                \
                for (int64_t lo = 0; lo < n; lo += 2 * w) {                                     \
                    int64_t mid = n - lo > w ? lo + w : n, hi = n - lo > 2 * w ? lo + 2 * w : n; \
                    int64_t i = lo, j = mid, k = lo;                                            \
                    /* stable: the left run's element first unless the right's is before it */ \
                    while (i < mid && j < hi)                                                   \
                        tmp[k++] = gradc_sort_before_##S##_(x[idx[j]], x[idx[i]]) ? idx[j++] : idx[i++]; \
                    while (i < mid) tmp[k++] = idx[i++];                                        \
                    while (j < hi) tmp[k++] = idx[j++];                                         \
                }                                                                               \
                int64_t *swap = idx; idx = tmp; tmp = swap;                                     \
            }                                                                                   \
            for (int64_t j = 0; j < n; j++) rank[scratch[j]] = j;   /* idx == scratch here */   \
        }                                                                                       \
    }
/* floats: NaN after every number and equal to NaN (so NaNs keep their order too) */
GRADC_SORT_RANK_(f64, double, u < v || (v != v && u == u))
GRADC_SORT_RANK_(f32, float, u < v || (v != v && u == u))
/* integers: C's < on the type itself (no NaN; unsigned types compare as unsigned) */
GRADC_SORT_RANK_(i8, int8_t, u < v)
GRADC_SORT_RANK_(i16, int16_t, u < v)
GRADC_SORT_RANK_(i32, int32_t, u < v)
GRADC_SORT_RANK_(i64, int64_t, u < v)
GRADC_SORT_RANK_(u8, uint8_t, u < v)
GRADC_SORT_RANK_(u16, uint16_t, u < v)
GRADC_SORT_RANK_(u32, uint32_t, u < v)
GRADC_SORT_RANK_(u64, uint64_t, u < v)
#undef GRADC_SORT_RANK_
/* Any of them, by dtype code (GRADC_SORT_*: loop_ir.SORT_CODES says which numpy dtype
 * has which): the body of gradc_sort_rank, the function LLVM code calls
 * (runtime/sortrank.c links it into the JIT; an ahead-of-time library defines its own
 * from this).  The code generators emit only these codes; the JIT learns from the
 * extension which it has (callpath.c's sort_rank_kinds), so an older runtime is never
 * asked for one it lacks. */
enum { GRADC_SORT_F64 = 0, GRADC_SORT_F32 = 1, GRADC_SORT_I8 = 2, GRADC_SORT_I16 = 3,
       GRADC_SORT_I32 = 4, GRADC_SORT_I64 = 5, GRADC_SORT_U8 = 6, GRADC_SORT_U16 = 7,
       GRADC_SORT_U32 = 8, GRADC_SORT_U64 = 9 };
static inline int32_t gradc_sort_rank_any(int32_t dtype, int64_t batch, int64_t n, const void *x,
                                          int64_t *rank, int64_t *scratch) {
    if (n <= 0 || batch <= 0) return GRADC_OK;
    switch (dtype) {
    case GRADC_SORT_F64: gradc_sort_rank_f64(batch, n, (const double *)x, rank, scratch); break;
    case GRADC_SORT_F32: gradc_sort_rank_f32(batch, n, (const float *)x, rank, scratch); break;
    case GRADC_SORT_I8: gradc_sort_rank_i8(batch, n, (const int8_t *)x, rank, scratch); break;
    case GRADC_SORT_I16: gradc_sort_rank_i16(batch, n, (const int16_t *)x, rank, scratch); break;
    case GRADC_SORT_I32: gradc_sort_rank_i32(batch, n, (const int32_t *)x, rank, scratch); break;
    case GRADC_SORT_I64: gradc_sort_rank_i64(batch, n, (const int64_t *)x, rank, scratch); break;
    case GRADC_SORT_U8: gradc_sort_rank_u8(batch, n, (const uint8_t *)x, rank, scratch); break;
    case GRADC_SORT_U16: gradc_sort_rank_u16(batch, n, (const uint16_t *)x, rank, scratch); break;
    case GRADC_SORT_U32: gradc_sort_rank_u32(batch, n, (const uint32_t *)x, rank, scratch); break;
    case GRADC_SORT_U64: gradc_sort_rank_u64(batch, n, (const uint64_t *)x, rank, scratch); break;
    default: break;
    }
    return GRADC_OK;
}

#ifdef __cplusplus
}
#endif

#endif /* GRADC_H */
