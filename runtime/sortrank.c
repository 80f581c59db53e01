/* gradc_sort_rank: op sort_rank of the LLVM backend (ops/arrays.py: sort, argsort,
 * median, quantile take their order from it): for each of `batch` rows of `n` floats,
 * rank[i] = the place of x[i] in the row's stable ascending sort, NaN last (numpy's
 * order).  The merge sort is gradc.h's (gradc_sort_rank_f64 / _f32), which generated C
 * calls directly and ahead-of-time libraries link as their own gradc_sort_rank: one
 * definition, the same ranks on every native backend.  `scratch`: n int64 values of
 * the kernel's workspace (schedule.workspace_layout), so nothing is allocated.
 * dtype: 0 float64, 1 float32.  Returns GRADC_OK. */
int32_t gradc_sort_rank(int32_t dtype, int64_t batch, int64_t n, const void *x, int64_t *rank,
                        int64_t *scratch) {
    return gradc_sort_rank_any(dtype, batch, n, x, rank, scratch);
}
