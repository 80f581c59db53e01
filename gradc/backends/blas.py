"""Finding the BLAS that numpy already ships, for matrix-matrix products.

gradc does not bundle a BLAS: numpy's wheels carry OpenBLAS (``scipy_cblas_dgemm64_``,
ILP64) and gradc's JIT resolves the symbols ``gradc_cblas_dgemm``/``gradc_cblas_sgemm``
to it.  Measured on the dev machine, OpenBLAS's DGEMM is far ahead of the loop nests
gradc generates for large products, and its per-call cost is small next to
the products the benchmark models compute.  When no CBLAS is found (another numpy
build), or for ahead-of-time libraries, the generated loops are used instead."""
from __future__ import annotations

import ctypes
import glob
import os

import numpy as np

_found: dict | None = None

# (symbol in the library, integer width of its BLAS ints)
_CANDIDATES = [("scipy_cblas_{t}gemm64_", 64), ("cblas_{t}gemm64_", 64), ("cblas_{t}gemm", 32),
               ("scipy_cblas_{t}gemm", 32)]


def _libraries():
    base = os.path.dirname(np.__file__)
    pats = [os.path.join(base, "..", "numpy.libs", "*blas*"), os.path.join(base, ".libs", "*blas*"),
            os.path.join(base, "..", "numpy.libs", "*.so*")]
    seen = []
    for p in pats:
        for f in sorted(glob.glob(p)):
            if f not in seen and (".so" in f or f.endswith(".dylib")):
                seen.append(f)
    return seen


def _thread_control(lib) -> tuple:
    """The addresses of OpenBLAS's ``openblas_set_num_threads`` and
    ``openblas_get_num_threads`` (numpy's build prefixes and suffixes them), or (0, 0)."""
    for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
        found = _addresses(lib, [f"{prefix}openblas_{verb}_num_threads{suffix}" for verb in ("set", "get")])
        if found:
            return tuple(found)
    return 0, 0


def _loaded_libraries():
    """(path, ctypes library) for each shared library numpy ships that loads."""
    for path in _libraries():
        try:
            yield path, ctypes.CDLL(path)
        except OSError:
            continue


def _addresses(lib, names) -> list | None:
    """The addresses of ``names`` in ``lib``, or None when one is missing."""
    try:
        return [ctypes.cast(getattr(lib, n), ctypes.c_void_p).value for n in names]
    except AttributeError:
        return None


def find() -> dict:
    """{"d": address, "s": address, "int": 32|64} or {} when no CBLAS gemm is found."""
    global _found
    if _found is not None:
        return _found
    _found = {}
    if os.environ.get("GRADC_NO_BLAS"):
        return _found
    for path, lib in _loaded_libraries():
        for pattern, width in _CANDIDATES:
            found = _addresses(lib, [pattern.format(t="d"), pattern.format(t="s")])
            if found:
                _found = {"d": found[0], "s": found[1], "int": width, "library": os.path.basename(path),
                          "library_path": path, "threads": _thread_control(lib)}
                return _found
    return _found


_lapack: dict | None = None

# The LAPACK routines gradc's linear algebra calls (runtime/lapack.c), double then float.
LAPACK_ROUTINES = ("gesv", "getrf", "potrf", "syevd", "trtrs")
# linalg.svd's and linalg.qr's, registered apart (an older extension lacks them)
LAPACK_RECT_ROUTINES = ("gesdd", "geqrf", "orgqr")


def find_lapack() -> dict:
    """{"addresses": [d routines..., s routines...], "rect": [d gesdd, geqrf, orgqr, s ...]
    or None, "library": name} for numpy's ILP64
    LAPACK (``scipy_dgesv_64_``: 64-bit integers, Fortran calling convention), or {}
    when this numpy build has none (then linear algebra runs on backend="numpy")."""
    global _lapack
    if _lapack is not None:
        return _lapack
    _lapack = {}
    if os.environ.get("GRADC_NO_BLAS"):
        return _lapack
    for path, lib in _loaded_libraries():
        for pattern in ("scipy_{t}{r}_64_", "{t}{r}_64_", "{t}{r}64_"):
            addrs = _addresses(lib, [pattern.format(t=t, r=r) for t in "ds" for r in LAPACK_ROUTINES])
            if addrs:
                rect = _addresses(lib, [pattern.format(t=t, r=r) for t in "ds" for r in LAPACK_RECT_ROUTINES])
                _lapack = {"addresses": addrs, "rect": rect, "library": os.path.basename(path)}
                return _lapack
    return _lapack
