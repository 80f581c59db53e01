/* Dense linear algebra for generated kernels: LAPACK, as numpy ships it.
 *
 * A kernel's linalg node (loop IR LapackCall) calls gradc_lapack once for its whole
 * stack of matrices.  gradc's buffers are row-major; LAPACK is column-major, so each
 * matrix is copied transposed into a workspace (the copy is O(M^2) beside LAPACK's
 * O(M^3)), handed to the routine numpy.linalg uses for the same function (gesv, getrf,
 * potrf, syevd, gesdd, geqrf and orgqr; trtrs for the triangular solves of cholesky's
 * derivatives), and the result copied back.  Failures set a status bit instead of
 * returning garbage: a singular matrix in solve or inv, a matrix that is not positive
 * definite in cholesky, an eigenvalue or singular value computation that did not
 * converge.  det and
 * slogdet of a singular matrix are 0 and (0, -inf), as numpy's.
 *
 * Python registers the routines' addresses once (lapack_register, from
 * gradc.backends.blas.find_lapack): numpy's OpenBLAS exports them with 64-bit integers
 * (ILP64) under a prefix and suffix (scipy_dgesv_64_).  Included by callpath.c.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The routine codes, mirrored by gradc/backends/loop_ir.py (LAPACK_ROUTINES). */
enum {
    GRADC_LA_SOLVE = 0,      /* a (M, M), b (M, K) -> x (M, K)  (gesv) */
    GRADC_LA_INV = 1,        /* a (M, M) -> a^-1               (gesv with b = I) */
    GRADC_LA_DET = 2,        /* a (M, M) -> det                (getrf) */
    GRADC_LA_SLOGDET = 3,    /* a (M, M) -> (sign, ln|det|)    (getrf) */
    GRADC_LA_CHOLESKY = 4,   /* a (M, M) -> L, lower           (potrf 'L') */
    GRADC_LA_EIGVALSH = 5,   /* a (M, M) -> w (M,), ascending  (syevd 'N', 'L') */
    GRADC_LA_EIGH = 6,       /* a (M, M) -> V (M, M) columns   (syevd 'V', 'L') */
    GRADC_LA_SOLVE_LOWER = 7, /* a (M, M) lower triangular, b (M, K) -> x  (trtrs 'L') */
    GRADC_LA_SOLVE_UPPER = 8, /* a (M, M) upper triangular, b (M, K) -> x  (trtrs 'U') */
    /* rectangular a (M, N), K = min(M, N): the call's n is N and its k is M */
    GRADC_LA_SVDVALS = 9,    /* a -> s (K,), descending          (gesdd 'N') */
    GRADC_LA_SVD_U = 10,     /* a -> U (M, K)                    (gesdd 'S') */
    GRADC_LA_SVD_VT = 11,    /* a -> Vt (K, N)                   (gesdd 'S') */
    GRADC_LA_SVD_U_FULL = 12, /* a -> U (M, M)                   (gesdd 'A') */
    GRADC_LA_SVD_VT_FULL = 13, /* a -> Vt (N, N)                 (gesdd 'A') */
    GRADC_LA_QR_Q = 14,      /* a -> Q (M, K)                    (geqrf, orgqr) */
    GRADC_LA_QR_R = 15,      /* a -> R (K, N), upper trapezoidal (geqrf) */
    GRADC_LA_QR_Q_COMPLETE = 16, /* a -> Q (M, M)                (geqrf, orgqr) */
    GRADC_LA_PINV = 17,      /* a, rcond (one per matrix) -> a^+ (N, M)  (gesdd 'S') */
    /* square again: scipy.linalg.lu_factor's parts, as floats (exact below 2^24) */
    GRADC_LA_LU = 18,        /* a (M, M) -> L and U packed, L's unit diagonal implied  (getrf) */
    GRADC_LA_LU_PIVOTS = 19, /* a (M, M) -> LAPACK's row swaps, 0-based (M,)           (getrf) */
    GRADC_LA_LU_PERM = 20    /* a (M, M) -> perm (M,) with a[perm] = L U                (getrf) */
};

typedef int64_t la_int;
typedef void (*la_gesv_t)(const la_int *, const la_int *, void *, const la_int *, la_int *, void *,
                          const la_int *, la_int *);
typedef void (*la_getrf_t)(const la_int *, const la_int *, void *, const la_int *, la_int *, la_int *);
typedef void (*la_potrf_t)(const char *, const la_int *, void *, const la_int *, la_int *, size_t);
typedef void (*la_trtrs_t)(const char *, const char *, const char *, const la_int *, const la_int *, const void *,
                           const la_int *, void *, const la_int *, la_int *, size_t, size_t, size_t);
typedef void (*la_gesdd_t)(const char *, const la_int *, const la_int *, void *, const la_int *, void *, void *,
                           const la_int *, void *, const la_int *, void *, const la_int *, la_int *, la_int *, size_t);
typedef void (*la_geqrf_t)(const la_int *, const la_int *, void *, const la_int *, void *, void *, const la_int *,
                           la_int *);
typedef void (*la_orgqr_t)(const la_int *, const la_int *, const la_int *, void *, const la_int *, const void *,
                           void *, const la_int *, la_int *);
typedef void (*la_syevd_t)(const char *, const char *, const la_int *, void *, const la_int *, void *, void *,
                           const la_int *, la_int *, const la_int *, la_int *, size_t, size_t);

/* [0]: double, [1]: float */
static la_gesv_t la_gesv[2];
static la_getrf_t la_getrf[2];
static la_potrf_t la_potrf[2];
static la_syevd_t la_syevd[2];
static la_trtrs_t la_trtrs[2];
/* registered apart (lapack_register_rect): an extension without them still runs the others */
static la_gesdd_t la_gesdd[2];
static la_geqrf_t la_geqrf[2];
static la_orgqr_t la_orgqr[2];

/* One function per element type: T the type, S its suffix. */
#define GRADC_LAPACK_DEFINE(T, S, IDX)                                                                      \
    static void la_to_cols_##S(const T *src, T *dst, int64_t rows, int64_t cols) {                           \
        for (int64_t i = 0; i < rows; i++)                                                                  \
            for (int64_t j = 0; j < cols; j++) dst[i + j * rows] = src[i * cols + j];                       \
    }                                                                                                       \
    static void la_from_cols_##S(const T *src, T *dst, int64_t rows, int64_t cols) {                         \
        for (int64_t i = 0; i < rows; i++)                                                                  \
            for (int64_t j = 0; j < cols; j++) dst[i * cols + j] = src[i + j * rows];                       \
    }                                                                                                       \
    static int32_t la_run_##S(int32_t routine, int64_t batch, int64_t n, int64_t k, const T *a, const T *b, \
                              T *out) {                                                                     \
        int32_t status = 0;                                                                                 \
        la_int N = n, K = k, info = 0, lda = n > 1 ? n : 1;                                                 \
        int64_t nn = n * n;                                                                                 \
        if (routine == GRADC_LA_INV) K = n;                                                                 \
        T *wa = malloc(sizeof(T) * (size_t)(nn > 0 ? nn : 1));                                              \
        T *wb = malloc(sizeof(T) * (size_t)(n * K > 0 ? n * K : 1));                                        \
        la_int *ipiv = malloc(sizeof(la_int) * (size_t)(n > 0 ? n : 1));                                    \
        T *work = NULL, *w = NULL;                                                                          \
        la_int *iwork = NULL, lwork = -1, liwork = -1;                                                      \
        if (!wa || !wb || !ipiv) {                                                                          \
            status |= GRADC_OUT_OF_MEMORY;                                                                  \
            goto done;                                                                                      \
        }                                                                                                   \
        if (routine == GRADC_LA_EIGH || routine == GRADC_LA_EIGVALSH) {                                     \
            const char *jobz = routine == GRADC_LA_EIGH ? "V" : "N";                                         \
            T wq = 0;                                                                                       \
            la_int iq = 0;                                                                                  \
            w = malloc(sizeof(T) * (size_t)(n > 0 ? n : 1));                                                 \
            if (!w) {                                                                                       \
                status |= GRADC_OUT_OF_MEMORY;                                                              \
                goto done;                                                                                  \
            }                                                                                               \
            if (n > 0) {   /* the workspace LAPACK asks for, once for the stack */                          \
                la_syevd[IDX](jobz, "L", &N, wa, &lda, w, &wq, &lwork, &iq, &liwork, &info, 1, 1);          \
                lwork = (la_int)wq > 1 ? (la_int)wq : 1;                                                    \
                liwork = iq > 1 ? iq : 1;                                                                   \
                work = malloc(sizeof(T) * (size_t)lwork);                                                   \
                iwork = malloc(sizeof(la_int) * (size_t)liwork);                                            \
                if (!work || !iwork) {                                                                      \
                    status |= GRADC_OUT_OF_MEMORY;                                                          \
                    goto done;                                                                              \
                }                                                                                           \
            }                                                                                               \
        }                                                                                                   \
        for (int64_t t = 0; t < batch; t++) {                                                               \
            const T *at = a + t * nn;                                                                       \
            info = 0;                                                                                       \
            switch (routine) {                                                                              \
            case GRADC_LA_SOLVE:                                                                            \
            case GRADC_LA_INV: {                                                                            \
                T *x = out + t * n * K;                                                                     \
                if (n == 0) break;                                                                          \
                la_to_cols_##S(at, wa, n, n);                                                               \
                if (routine == GRADC_LA_SOLVE) {                                                            \
                    la_to_cols_##S(b + t * n * K, wb, n, K);                                                \
                } else {                                                                                    \
                    memset(wb, 0, sizeof(T) * (size_t)nn);                                                  \
                    for (int64_t i = 0; i < n; i++) wb[i + i * n] = 1;                                      \
                }                                                                                           \
                if (K > 0) la_gesv[IDX](&N, &K, wa, &lda, ipiv, wb, &lda, &info);                           \
                else la_getrf[IDX](&N, &N, wa, &lda, ipiv, &info);                                          \
                if (info != 0) status |= GRADC_SINGULAR_MATRIX;                                             \
                la_from_cols_##S(wb, x, n, K);                                                              \
                break;                                                                                      \
            }                                                                                               \
            case GRADC_LA_SOLVE_LOWER:                                                                      \
            case GRADC_LA_SOLVE_UPPER: {                                                                    \
                T *x = out + t * n * K;                                                                     \
                if (n == 0) break;                                                                          \
                la_to_cols_##S(at, wa, n, n);                                                               \
                la_to_cols_##S(b + t * n * K, wb, n, K);                                                    \
                la_trtrs[IDX](routine == GRADC_LA_SOLVE_LOWER ? "L" : "U", "N", "N", &N, &K, wa, &lda, wb,  \
                              &lda, &info, 1, 1, 1);                                                        \
                if (info != 0) status |= GRADC_SINGULAR_MATRIX;                                             \
                la_from_cols_##S(wb, x, n, K);                                                              \
                break;                                                                                      \
            }                                                                                               \
            case GRADC_LA_DET:                                                                              \
            case GRADC_LA_SLOGDET: {                                                                        \
                /* det(A^T) = det(A): the row-major matrix is LU-factored as it lies */                    \
                T sign = 1, logdet = 0;                                                                     \
                if (n > 0) {                                                                                \
                    memcpy(wa, at, sizeof(T) * (size_t)nn);                                                 \
                    la_getrf[IDX](&N, &N, wa, &lda, ipiv, &info);                                           \
                    if (info > 0) {                                                                         \
                        sign = 0;                                                                           \
                        logdet = -INFINITY;                                                                 \
                    } else {                                                                                \
                        for (int64_t i = 0; i < n; i++) {                                                   \
                            T u = wa[i + i * n];                                                            \
                            if (ipiv[i] != i + 1) sign = -sign;                                             \
                            if (u < 0) sign = -sign;                                                        \
                            logdet += (T)log(fabs((double)u));                                              \
                        }                                                                                   \
                    }                                                                                       \
                }                                                                                           \
                if (routine == GRADC_LA_DET) {                                                              \
                    out[t] = sign * (T)exp((double)logdet); /* numpy's det: sign e^logdet */                \
                } else {                                                                                    \
                    out[2 * t] = sign;                                                                      \
                    out[2 * t + 1] = logdet;                                                                \
                }                                                                                           \
                break;                                                                                      \
            }                                                                                               \
            case GRADC_LA_CHOLESKY: {                                                                       \
                T *l = out + t * nn;                                                                        \
                if (n == 0) break;                                                                          \
                la_to_cols_##S(at, wa, n, n);                                                               \
                la_potrf[IDX]("L", &N, wa, &lda, &info, 1);                                                 \
                if (info != 0) status |= GRADC_NOT_POSITIVE_DEFINITE;                                       \
                for (int64_t i = 0; i < n; i++)                                                             \
                    for (int64_t j = 0; j < n; j++) l[i * n + j] = j <= i ? wa[i + j * n] : 0;               \
                break;                                                                                      \
            }                                                                                               \
            case GRADC_LA_EIGVALSH:                                                                         \
            case GRADC_LA_EIGH: {                                                                           \
                if (n == 0) break;                                                                          \
                la_to_cols_##S(at, wa, n, n);                                                               \
                la_syevd[IDX](routine == GRADC_LA_EIGH ? "V" : "N", "L", &N, wa, &lda, w, work, &lwork,     \
                              iwork, &liwork, &info, 1, 1);                                                 \
                if (info != 0) status |= GRADC_NO_CONVERGENCE;                                              \
                if (routine == GRADC_LA_EIGH) la_from_cols_##S(wa, out + t * nn, n, n);                     \
                else memcpy(out + t * n, w, sizeof(T) * (size_t)n);                                          \
                break;                                                                                      \
            }                                                                                               \
            case GRADC_LA_LU:                                                                               \
            case GRADC_LA_LU_PIVOTS:                                                                        \
            case GRADC_LA_LU_PERM: {                                                                        \
                /* a singular matrix factors too (a zero on U's diagonal), as scipy's lu_factor */          \
                if (n == 0) break;                                                                          \
                la_to_cols_##S(at, wa, n, n);                                                               \
                la_getrf[IDX](&N, &N, wa, &lda, ipiv, &info);                                               \
                if (routine == GRADC_LA_LU) {                                                               \
                    la_from_cols_##S(wa, out + t * nn, n, n);                                               \
                } else if (routine == GRADC_LA_LU_PIVOTS) {                                                 \
                    for (int64_t i = 0; i < n; i++) out[t * n + i] = (T)(ipiv[i] - 1);                      \
                } else { /* the swaps applied in order to 0, 1, ..., n - 1 */                               \
                    T *perm = out + t * n;                                                                  \
                    for (int64_t i = 0; i < n; i++) perm[i] = (T)i;                                         \
                    for (int64_t i = 0; i < n; i++) {                                                       \
                        T tmp = perm[i];                                                                    \
                        perm[i] = perm[ipiv[i] - 1];                                                        \
                        perm[ipiv[i] - 1] = tmp;                                                            \
                    }                                                                                       \
                }                                                                                           \
                break;                                                                                      \
            }                                                                                               \
            default:                                                                                        \
                status |= GRADC_LAPACK_UNAVAILABLE;                                                         \
            }                                                                                               \
        }                                                                                                   \
    done:                                                                                                   \
        free(wa);                                                                                           \
        free(wb);                                                                                           \
        free(ipiv);                                                                                         \
        free(w);                                                                                            \
        free(work);                                                                                         \
        free(iwork);                                                                                        \
        return status;                                                                                      \
    }

GRADC_LAPACK_DEFINE(double, d, 0)
GRADC_LAPACK_DEFINE(float, s, 1)

/* The rectangular routines (SVD and QR) of an (m, n) matrix stack, k = min(m, n).  The
 * matrix is copied column-major as numpy's umath_linalg does, so the factors are those
 * numpy.linalg returns (the same routine on the same matrix). */
#define GRADC_LAPACK_RECT(T, S, IDX)                                                                        \
    static int32_t la_rect_##S(int32_t routine, int64_t batch, int64_t m, int64_t n, const T *a,            \
                               const T *rcond, T *out) {                                                    \
        int32_t status = 0;                                                                                 \
        int64_t k = m < n ? m : n;                                                                          \
        int svd = routine <= GRADC_LA_SVD_VT_FULL || routine == GRADC_LA_PINV;                              \
        int full = routine == GRADC_LA_SVD_U_FULL || routine == GRADC_LA_SVD_VT_FULL;                       \
        int complete = routine == GRADC_LA_QR_Q_COMPLETE;                                                   \
        /* the columns of the workspace: n, or m for complete Q (orgqr builds m columns in it) */           \
        int64_t acols = complete && m > n ? m : n;                                                          \
        int64_t ucols = full ? m : k, vtrows = full ? n : k, qcols = complete ? m : k;                      \
        /* an output's size per matrix */                                                                   \
        int64_t each = routine == GRADC_LA_SVDVALS ? k                                                      \
                       : (routine == GRADC_LA_SVD_U || routine == GRADC_LA_SVD_U_FULL) ? m * ucols          \
                       : (routine == GRADC_LA_SVD_VT || routine == GRADC_LA_SVD_VT_FULL) ? vtrows * n       \
                       : routine == GRADC_LA_QR_R ? k * n : routine == GRADC_LA_PINV ? n * m : m * qcols;   \
        la_int M = m, N = n, K = k, QC = qcols, info = 0, lwork = -1;                                        \
        la_int lda = m > 1 ? m : 1, ldu = m > 1 ? m : 1, ldvt = vtrows > 1 ? vtrows : 1;                     \
        const char *jobz = routine == GRADC_LA_SVDVALS ? "N" : full ? "A" : "S";                            \
        T *wa = NULL, *s = NULL, *u = NULL, *vt = NULL, *work = NULL, wq = 0, wq2 = 0;                      \
        la_int *iwork = NULL;                                                                               \
        if (k == 0) { /* no reflector, no singular value: a square factor is the identity */                \
            memset(out, 0, sizeof(T) * (size_t)(batch * each));                                            \
            int64_t side = (routine == GRADC_LA_SVD_U_FULL || complete) ? m                                 \
                           : routine == GRADC_LA_SVD_VT_FULL ? n : 0;                                       \
            for (int64_t t = 0; t < batch; t++)                                                             \
                for (int64_t i = 0; i < side; i++) out[t * each + i * side + i] = 1;                        \
            return 0;                                                                                       \
        }                                                                                                   \
        wa = malloc(sizeof(T) * (size_t)(m * acols));                                                       \
        s = malloc(sizeof(T) * (size_t)k);                                                                  \
        if (svd) {                                                                                          \
            u = malloc(sizeof(T) * (size_t)(m * ucols));                                                    \
            vt = malloc(sizeof(T) * (size_t)(vtrows * n));                                                  \
            iwork = malloc(sizeof(la_int) * (size_t)(8 * k));                                               \
        }                                                                                                   \
        if (!wa || !s || (svd && (!u || !vt || !iwork))) {                                                  \
            status |= GRADC_OUT_OF_MEMORY;                                                                  \
            goto done;                                                                                      \
        }                                                                                                   \
        /* the workspace LAPACK asks for, once for the stack */                                             \
        if (svd) {                                                                                          \
            la_gesdd[IDX](jobz, &M, &N, wa, &lda, s, u, &ldu, vt, &ldvt, &wq, &lwork, iwork, &info, 1);     \
        } else {                                                                                            \
            la_geqrf[IDX](&M, &N, wa, &lda, s, &wq, &lwork, &info);                                         \
            if (routine != GRADC_LA_QR_R) la_orgqr[IDX](&M, &QC, &K, wa, &lda, s, &wq2, &lwork, &info);     \
            if (wq2 > wq) wq = wq2;                                                                         \
        }                                                                                                   \
        lwork = (la_int)wq > 1 ? (la_int)wq : 1;                                                            \
        work = malloc(sizeof(T) * (size_t)lwork);                                                           \
        if (!work) {                                                                                        \
            status |= GRADC_OUT_OF_MEMORY;                                                                  \
            goto done;                                                                                      \
        }                                                                                                   \
        for (int64_t t = 0; t < batch; t++) {                                                               \
            T *o = out + t * each;                                                                          \
            info = 0;                                                                                       \
            la_to_cols_##S(a + t * m * n, wa, m, n);                                                        \
            if (svd) {                                                                                      \
                la_gesdd[IDX](jobz, &M, &N, wa, &lda, s, u, &ldu, vt, &ldvt, work, &lwork, iwork, &info, 1); \
                if (info != 0) status |= GRADC_NO_CONVERGENCE;                                              \
                if (routine == GRADC_LA_PINV) { /* V diag(1/s) U^T over s > rcond s_max, as numpy's */     \
                    T cut = rcond[t] * s[0];                                                                \
                    for (int64_t l = 0; l < k; l++) s[l] = s[l] > cut ? 1 / s[l] : 0;                       \
                    for (int64_t i = 0; i < n; i++)                                                         \
                        for (int64_t j = 0; j < m; j++) {                                                   \
                            T acc = 0;                                                                      \
                            for (int64_t l = 0; l < k; l++) acc += vt[l + i * k] * s[l] * u[j + l * m];     \
                            o[i * m + j] = acc;                                                             \
                        }                                                                                   \
                } else if (routine == GRADC_LA_SVDVALS) memcpy(o, s, sizeof(T) * (size_t)k);                \
                else if (routine == GRADC_LA_SVD_U || routine == GRADC_LA_SVD_U_FULL)                       \
                    la_from_cols_##S(u, o, m, ucols);                                                       \
                else la_from_cols_##S(vt, o, vtrows, n);                                                    \
                continue;                                                                                   \
            }                                                                                               \
            la_geqrf[IDX](&M, &N, wa, &lda, s, work, &lwork, &info);                                        \
            if (routine == GRADC_LA_QR_R) {                                                                 \
                for (int64_t i = 0; i < k; i++)                                                             \
                    for (int64_t j = 0; j < n; j++) o[i * n + j] = j >= i ? wa[i + j * m] : 0;              \
                continue;                                                                                   \
            }                                                                                               \
            la_orgqr[IDX](&M, &QC, &K, wa, &lda, s, work, &lwork, &info);                                   \
            la_from_cols_##S(wa, o, m, qcols);                                                              \
        }                                                                                                   \
    done:                                                                                                   \
        free(wa);                                                                                           \
        free(s);                                                                                            \
        free(u);                                                                                            \
        free(vt);                                                                                           \
        free(work);                                                                                         \
        free(iwork);                                                                                        \
        return status;                                                                                      \
    }

GRADC_LAPACK_RECT(double, d, 0)
GRADC_LAPACK_RECT(float, s, 1)

/* The entry generated kernels call: ``routine`` (GRADC_LA_*) on ``batch`` matrices of
 * size n x n (``single``: float32, else float64); ``k``: solve's right-hand columns, or
 * the rows of the rectangular routines' (k, n) matrices (SVD, QR, pinv, whose b holds
 * one rcond per matrix).
 * Returns 0 or an OR of GRADC_* status bits. */
int32_t gradc_lapack(int32_t routine, int32_t single, int64_t batch, int64_t n, int64_t k, const void *a,
                     const void *b, void *out) {
    int idx = single ? 1 : 0;
    if (routine >= GRADC_LA_SVDVALS && routine <= GRADC_LA_PINV) {
        if (!la_gesdd[idx] || !la_geqrf[idx] || !la_orgqr[idx])
            return GRADC_LAPACK_UNAVAILABLE;
        if (single) return la_rect_s(routine, batch, k, n, (const float *)a, (const float *)b, (float *)out);
        return la_rect_d(routine, batch, k, n, (const double *)a, (const double *)b, (double *)out);
    }
    if (!la_gesv[idx] || !la_getrf[idx] || !la_potrf[idx] || !la_syevd[idx] || !la_trtrs[idx])
        return GRADC_LAPACK_UNAVAILABLE;
    if (single) return la_run_s(routine, batch, n, k, (const float *)a, (const float *)b, (float *)out);
    return la_run_d(routine, batch, n, k, (const double *)a, (const double *)b, (double *)out);
}
