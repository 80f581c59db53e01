"""gradc's thread pool runtime (runtime/parallel.c), called directly.

gradc_combine merges per-chunk partial reductions in chunk order.  Oracle: numpy's
sum / fmax-with-NaN-propagation over the chunk axis, computed in the same order."""
import ctypes

import numpy as np
import pytest

_callpath = pytest.importorskip("gradc._callpath")
_COMBINE = ctypes.CFUNCTYPE(None, ctypes.c_int32, ctypes.c_int32, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64,
                            ctypes.c_int64)(_callpath.combine_address())
# gradc_combine's element codes (parallel.c), bool as one byte
_KINDS = {np.float64: 0, np.float32: 1, np.int64: 2, np.int32: 3, np.uint8: 4, np.uint64: 5, np.uint32: 6,
          np.int8: 7, np.int16: 8, np.uint16: 9}


def _partials(dtype, chunks, numel, rng):
    if np.dtype(dtype).kind == "f":
        p = rng.standard_normal((chunks, numel)).astype(dtype)
        p[0, 3] = np.nan
        return p
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, (chunks, numel), dtype=dtype, endpoint=True)


@pytest.mark.parametrize("dtype", list(_KINDS))
@pytest.mark.parametrize("chunks", [1, 2, 5])
@pytest.mark.parametrize("op", ["sum", "max", "min"])
def test_combine_matches_numpy_for_every_dtype_and_chunk_count(op, chunks, dtype):
    """One chunk (a nest that ran serially) is a copy of it, any dtype; more chunks are
    summed in chunk order (integers wrap, as numpy's do) or reduced by max/min with NaN
    propagating.  1031 elements: no multiple of a vector width.  Exact: the same
    operations in the same order as the oracle's."""
    rng = np.random.default_rng(chunks)
    p = _partials(dtype, chunks, 1031, rng)
    out = np.zeros(1031, dtype)
    _COMBINE({"sum": 0, "max": 1, "min": 2}[op], _KINDS[dtype], p.ctypes.data, out.ctypes.data, 1031, chunks)
    ref = p[0].copy()
    with np.errstate(over="ignore", invalid="ignore"):
        for t in range(1, chunks):
            ref = ref + p[t] if op == "sum" else (np.maximum if op == "max" else np.minimum)(ref, p[t])
    assert np.array_equal(out, ref, equal_nan=np.dtype(dtype).kind == "f")
    if chunks == 1:
        assert np.array_equal(out.view(np.uint8), p[0].view(np.uint8))   # the very bits, NaN's payload too
