"""Whether backend="llvm" can run linalg's LAPACK ops here (tests/test_lapack.py,
tests/test_ops.py's LAPACK lines)."""
from __future__ import annotations

import pytest

REBUILD = ("gradc._callpath was built before runtime/lapack.c (or numpy's LAPACK was not found): "
           "rebuild it with `python setup.py build_ext --inplace`")


def native_lapack() -> bool:
    """Does the LLVM JIT call numpy's LAPACK (gradc_lapack registered)?"""
    from gradc.backends import llvm_jit
    return bool(llvm_jit.init()["blas"].get("lapack"))


def native_lapack_or_skip() -> None:
    if not native_lapack():
        pytest.skip(REBUILD)


def native_rect_lapack() -> bool:
    """Does it also call the SVD and QR routines (an extension built with them)?"""
    from gradc import _callpath
    return native_lapack() and hasattr(_callpath, "lapack_register_rect")


def native_rect_lapack_or_skip() -> None:
    if not native_rect_lapack():
        pytest.skip(REBUILD)


def native_lu_lapack() -> bool:
    """Does it also know the LU routines (gradc.scipy.linalg.lu, lu_factor)?"""
    from gradc import _callpath
    return native_lapack() and getattr(_callpath, "LAPACK_ROUTINES", 0) >= 21


def native_lu_lapack_or_skip() -> None:
    if not native_lu_lapack():
        pytest.skip(REBUILD)
