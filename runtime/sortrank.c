/* gradc_sort_rank: op sort_rank of the LLVM backend (ops/arrays.py: sort, argsort,
 * median, quantile, unique take their order from it): for each of `batch` rows of `n`
 * numbers, rank[i] = the place of x[i] in the row's stable ascending sort, NaN last
 * (numpy's order).  The merge sort is gradc.h's (gradc_sort_rank_f64, _f32, _i8 ...
 * _u64), which generated C calls directly and ahead-of-time libraries link as their
 * own gradc_sort_rank: one definition, the same ranks on every native backend.  `scratch`: n int64 values of
 * the kernel's workspace (schedule.workspace_layout), so nothing is allocated.
 * dtype: a GRADC_SORT_* code of gradc.h (0 float64, 1 float32, 2-5 int8-int64, 6-9
 * uint8-uint64; bool as uint8).  Returns GRADC_OK. */
int32_t gradc_sort_rank(int32_t dtype, int64_t batch, int64_t n, const void *x, int64_t *rank,
                        int64_t *scratch) {
    return gradc_sort_rank_any(dtype, batch, n, x, rank, scratch);
}
