/* gradc_sort_rank: for each of `batch` rows of `n` floats, rank[i] = the place of x[i]
 * in the row's stable ascending sort, NaN last (numpy's order), for op sort_rank of
 * the LLVM backend (ops/arrays.py: sort, argsort, median, quantile take their order
 * from it).  A bottom-up merge sort of the row's indices: O(n log n) comparisons, two
 * index buffers of n entries.  Generated C and ahead-of-time libraries count pairwise
 * comparisons instead (O(n^2) work, no library).
 * Returns GRADC_OK, or GRADC_OUT_OF_MEMORY when the index buffers cannot be allocated. */

#define GRADC_SORT_RANK(S, T)                                                                    \
    /* is x[a] before x[b] in numpy's order (NaN after every number)? */                         \
    static inline int sr_before_##S(const T *x, int64_t a, int64_t b) {                          \
        T u = x[a], v = x[b];                                                                    \
        return u < v || (v != v && u == u);                                                      \
    }                                                                                            \
    static void sr_row_##S(const T *x, int64_t n, int64_t *idx, int64_t *tmp, int64_t *rank) {   \
        for (int64_t i = 0; i < n; i++) idx[i] = i;                                              \
        for (int64_t w = 1; w < n; w *= 2) {                                                     \
            for (int64_t lo = 0; lo < n; lo += 2 * w) {                                          \
                int64_t mid = lo + w < n ? lo + w : n, hi = lo + 2 * w < n ? lo + 2 * w : n;     \
                int64_t i = lo, j = mid, k = lo;                                                 \
                /* stable: the left run's element goes first unless the right's is before it */ \
                while (i < mid && j < hi) tmp[k++] = sr_before_##S(x, idx[j], idx[i]) ? idx[j++] : idx[i++]; \
                while (i < mid) tmp[k++] = idx[i++];                                             \
                while (j < hi) tmp[k++] = idx[j++];                                              \
            }                                                                                    \
            int64_t *t = idx; idx = tmp; tmp = t;                                                \
        }                                                                                        \
        for (int64_t j = 0; j < n; j++) rank[idx[j]] = j;                                        \
    }

GRADC_SORT_RANK(d, double)
GRADC_SORT_RANK(s, float)

/* dtype: 0 float64, 1 float32. */
int32_t gradc_sort_rank(int32_t dtype, int64_t batch, int64_t n, const void *x, int64_t *rank) {
    if (n <= 0 || batch <= 0) return GRADC_OK;
    int64_t *buf = (int64_t *)malloc(sizeof(int64_t) * 2 * (size_t)n);
    if (buf == NULL) return GRADC_OUT_OF_MEMORY;
    for (int64_t t = 0; t < batch; t++) {
        if (dtype == 0) sr_row_d((const double *)x + t * n, n, buf, buf + n, rank + t * n);
        else sr_row_s((const float *)x + t * n, n, buf, buf + n, rank + t * n);
    }
    free(buf);
    return GRADC_OK;
}
