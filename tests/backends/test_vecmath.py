"""Accuracy and vectorization tests for gradc.backends.vecmath.

Each function is called from a loop kernel ``void k(T* x, T* y, i64 n)`` that
declares it as gradc's kernels do, optimized at O3 with loop/SLP vectorization
for the host CPU (so the loop calls a vector variant, and its remainder the
scalar function), JIT-compiled with MCJIT next to the vector math object code
the JIT compiles (``llvm_jit.vecmath_object``), and swept over its whole domain.
Every sweep point also runs through the scalar function and each vector variant
called directly, which must agree with the loop bit for bit: so the accuracy
bounds hold for every entry point.

References: float64 results are compared with numpy's functions in np.longdouble
(x87 extended precision, 11 more bits than float64: the reference is good to
~1/1000 ulp, so errors come out in fractional ulps, not rounded to whole ones);
float32 results with numpy's float64 functions on the same inputs (29 more bits).
mpmath (200-bit) confirms the long double reference on a sample of every sweep
(``test_long_double_reference_against_mpmath``) and re-measures each sweep's worst
point.  Errors are in ulps of the output dtype at the reference (see
``vecmath_harness.ulp_error``).  Special values (nan, inf, signed zeros) must match
numpy exactly.

CI runs a sample of ~300k points per function and dtype.  For a long sweep
(~30 million points per function and dtype, about 3 minutes)::

    GRADC_LONG_SWEEP=1 python -m pytest tests/backends/test_vecmath.py -s
"""

from __future__ import annotations

import math
import os
import re
import zlib

import numpy as np
import pytest
from llvmlite import ir

try:
    from . import vecmath_harness as H
except ImportError:                       # rootdir-style import (no __init__.py)
    import vecmath_harness as H

from gradc.backends import vecmath

MAX_ULP = 4.0
LONG = os.environ.get("GRADC_LONG_SWEEP", "") not in ("", "0")
N_PER_KIND = 10_000_000 if LONG else 100_000    # per input kind (3 kinds + specials)
CHUNK = 1_000_000
DTYPES = [np.float64, np.float32]


def _dt_id(dt):
    return np.dtype(dt).name


# ---------------------------------------------------------------------------
# References
# ---------------------------------------------------------------------------

def reference(name: str, x: np.ndarray) -> np.ndarray:
    """Reference values, in float64 for float32 x and in longdouble for float64 x
    (see module docstring)."""
    w = x.astype(np.longdouble if x.dtype == np.float64 else np.float64)
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return 1 / (1 + np.exp(-w))
        if name == "softplus":
            return np.maximum(w, 0) + np.log1p(np.exp(-np.abs(w)))
        return getattr(np, name)(w)


def mp_ulp_error(name: str, got: np.ndarray, x: np.ndarray) -> np.ndarray:
    """|got - f(x)| in float64 ulps at f(x), f evaluated by mpmath with 200 bits
    (finite inputs and results only)."""
    import mpmath
    f = {"exp": mpmath.exp, "log": mpmath.log, "log1p": mpmath.log1p, "expm1": mpmath.expm1,
         "tanh": mpmath.tanh, "sin": mpmath.sin, "cos": mpmath.cos,
         "sigmoid": lambda v: 1 / (1 + mpmath.exp(-v)),
         "softplus": lambda v: mpmath.log1p(mpmath.exp(v))}[name]
    out = np.empty(x.size)
    with mpmath.workprec(200):
        for i, (xi, gi) in enumerate(zip(x.tolist(), np.asarray(got, np.longdouble))):
            exact = f(mpmath.mpf(xi))
            m, e2 = np.frexp(gi)                 # got exactly: a 64-bit integer times 2**k
            g = mpmath.ldexp(int(np.ldexp(m, 64)), int(e2) - 64)
            a = abs(exact)
            e = int(mpmath.floor(mpmath.log(a, 2))) if a else -1074
            ulp = mpmath.ldexp(1, max(e - 52, -1074))
            out[i] = float(abs(g - exact) / ulp)
    return out


def numpy_same_dtype(name: str, x: np.ndarray) -> np.ndarray:
    """numpy's own result in x's dtype (for exact special-value checks)."""
    with np.errstate(all="ignore"):
        if name == "sigmoid":
            return (1 / (1 + np.exp(-x.astype(np.longdouble)))).astype(x.dtype)
        if name == "softplus":
            w = x.astype(np.longdouble)
            return (np.maximum(w, 0) + np.log1p(np.exp(-np.abs(w)))).astype(x.dtype)
        return getattr(np, name)(x)


# ---------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------

def trig_limit(dt) -> float:
    return vecmath.TRIG_ACCURATE_LIMIT["f64" if np.dtype(dt) == np.float64 else "f32"]


def interesting_range(name: str, dt) -> tuple[float, float]:
    """Where the function is neither constant nor trivially x."""
    f64 = np.dtype(dt) == np.float64
    if name in ("sin", "cos"):
        lim = trig_limit(dt)
        return -lim, lim
    return {
        "exp": (-750.0, 712.0) if f64 else (-106.0, 90.0),
        "expm1": (-40.0, 712.0) if f64 else (-20.0, 90.0),
        "log": (0.0, 4.0),
        "log1p": (-1.0, 4.0),
        "tanh": (-22.0, 22.0) if f64 else (-10.0, 10.0),
        "sigmoid": (-750.0, 40.0) if f64 else (-106.0, 20.0),
        "softplus": (-750.0, 40.0) if f64 else (-106.0, 20.0),
    }[name]


def thresholds(name: str, dt) -> list[float]:
    """Points where behaviour changes (overflow, underflow, regime switches)."""
    info = np.finfo(dt)
    ln_max = math.log(float(info.max))
    ln_sub = math.log(float(info.smallest_subnormal))
    ln_tiny = math.log(float(info.tiny))
    common = [ln_max, ln_sub, ln_tiny, -ln_max, -ln_sub, -ln_tiny]
    return {
        "exp": common + [0.5 * math.log(2), -0.5 * math.log(2)],
        "expm1": common + [-37.5, -17.4, 0.5 * math.log(2), -0.5 * math.log(2)],
        "log": [1.0, math.sqrt(0.5), math.sqrt(2.0)],
        "log1p": [-1.0, math.sqrt(0.5) - 1, math.sqrt(2.0) - 1, 2.0**24, 2.0**53],
        "tanh": [0.625, -0.625, 0.5493061443340549, -0.5493061443340549, 19.0, 22.0, 9.0, 355.0],
        "sigmoid": common + [36.7, 16.6],
        "softplus": common + [36.7, 16.6],
        "sin": [math.pi / 4, math.pi / 2, math.pi, trig_limit(dt)],
        "cos": [math.pi / 4, math.pi / 2, math.pi, trig_limit(dt)],
    }[name]


def special_values(name: str, dt) -> np.ndarray:
    with np.errstate(over="ignore"):
        return _special_values(name, np.dtype(dt))


def _special_values(name: str, dt) -> np.ndarray:
    info = np.finfo(dt)
    base = [0.0, -0.0, np.inf, -np.inf, np.nan, 1.0, -1.0, 0.5, -0.5, 2.0, -2.0,
            info.smallest_subnormal, info.smallest_subnormal * 3, info.tiny,
            info.tiny * (1 - info.eps), info.max, info.eps, info.epsneg,
            1e-8, 1e-20, 1e-300, 1e300, 710.0, 89.0, 88.7, 100.0, -745.2, -104.0, 1e5]
    pts = np.array(base + thresholds(name, dt), dtype=np.float64)
    pts = np.concatenate([pts, -pts]).astype(dt)
    # The points and a few neighbours on each side.
    out = [pts]
    up, down = pts.copy(), pts.copy()
    for _ in range(3):
        up = np.nextafter(up, dt.type(np.inf))
        down = np.nextafter(down, dt.type(-np.inf))
        out += [up, down]
    return np.concatenate(out)


def sweep_inputs(name: str, dt, n: int, rng) -> np.ndarray:
    """n random bit patterns of finite floats (both signs, all magnitudes),
    n log-uniform magnitudes of both signs up to the interesting range, and
    n uniform points of the interesting range."""
    dt = np.dtype(dt)
    it = np.uint64 if dt == np.float64 else np.uint32
    bits = rng.integers(0, np.iinfo(it).max, n, dtype=it, endpoint=True).view(dt)
    bits = bits[np.isfinite(bits)]
    lo, hi = interesting_range(name, dt)
    top = max(abs(lo), abs(hi), 4.0)
    sub = float(np.finfo(dt).smallest_subnormal)
    mags = np.exp(rng.uniform(math.log(sub), math.log(top), n))
    mags *= rng.choice([-1.0, 1.0], n)
    uni = rng.uniform(lo, hi, n)
    parts = [bits, mags.astype(dt), uni.astype(dt)]
    if name in ("sin", "cos"):
        # Hard cases for range reduction: floats nearest to multiples of pi/2.
        k = np.floor(rng.uniform(0, hi / (math.pi / 2), n // 4)).astype(np.longdouble)
        near = (k * np.longdouble("1.57079632679489661923132169163975144")).astype(dt)
        parts += [near, np.nextafter(near, dt.type(np.inf)), -near]
    return np.concatenate(parts)


def accuracy_domain(name: str, x: np.ndarray) -> np.ndarray:
    """Mask of the inputs on which the <= MAX_ULP promise holds."""
    if name in ("sin", "cos"):
        return ~(np.abs(x) >= trig_limit(x.dtype))      # keeps nan and inf
    return np.ones(x.shape, bool)


# ---------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------

def assert_same_bits(got, want, x, what):
    """Equal values with equal bits; any nan for nan (its payload is not specified)."""
    nan = np.isnan(want)
    same = (np.isnan(got) == nan) & (nan | (got.view(f"u{got.itemsize}") == want.view(f"u{want.itemsize}")))
    if not same.all():
        i = int(np.argmin(same))
        raise AssertionError(f"{what}: x={x[i]!r} gives {got[i]!r}, expected {want[i]!r} "
                             f"({int((~same).sum())} of {x.size} differ)")


@pytest.mark.parametrize("dt", DTYPES, ids=_dt_id)
@pytest.mark.parametrize("name", vecmath.NAMES)
def test_accuracy(name, dt):
    kernel = H.compile_unary_kernel(name, dt)
    lanes = H.compile_lanes_kernels(name, dt, vecmath.host_target())
    rng = np.random.default_rng([zlib.crc32(f"{name}/{_dt_id(dt)}".encode()), int(LONG)])
    worst, worst_x, total = -1.0, None, 0
    chunks = [special_values(name, dt)]
    remaining = N_PER_KIND
    while remaining > 0:
        m = min(CHUNK, remaining)
        chunks.append(sweep_inputs(name, dt, m, rng))
        remaining -= m
    for x in chunks:
        x = x[accuracy_domain(name, x)]
        got = kernel(x)
        for w in lanes.widths():
            assert_same_bits(lanes[w](x), got, x, f"{name} {_dt_id(dt)} " + (f"v{w}" if w else "scalar"))
        err = H.ulp_error(got, reference(name, x), dt)
        i = int(np.argmax(err))
        total += x.size
        if err[i] > worst:
            worst, worst_x, worst_got = float(err[i]), x[i], got[i]
    print(f"\nvecmath {name:8s} {_dt_id(dt)}: worst {worst:.3f} ulp at x={worst_x!r} "
          f"(got {worst_got!r}, ref {reference(name, np.array([worst_x]))[0]!r}; "
          f"{total} points)")
    assert worst <= MAX_ULP, (name, _dt_id(dt), worst, worst_x)
    if dt == np.float64 and np.isfinite(worst_got) and worst_got != 0:
        # the worst point again, against mpmath: the long double reference measured it
        # to within 1/100 ulp
        exact = mp_ulp_error(name, np.array([worst_got], np.float64), np.array([worst_x]))[0]
        assert abs(exact - worst) <= 0.01, (name, worst_x, worst, exact)


@pytest.mark.parametrize("name", vecmath.NAMES)
def test_long_double_reference_against_mpmath(name):
    """The float64 reference (long double) is within 1/100 ulp of the exact value on
    the special values and a sample of the sweep, so the fractional ulps measured
    against it are the vector code's own error."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    x = np.concatenate([special_values(name, np.float64), sweep_inputs(name, np.float64, 1000, rng)])
    x = x[accuracy_domain(name, x) & np.isfinite(x)]
    ref = reference(name, x)
    ok = np.isfinite(ref) & (ref != 0) & (np.abs(ref) >= np.finfo(np.float64).tiny)
    x, ref = x[ok], ref[ok]
    err = mp_ulp_error(name, ref, x)
    i = int(np.argmax(err))
    print(f"\nlong double {name}: within {err[i]:.2e} float64 ulp of mpmath ({x.size} points)")
    assert err[i] <= 0.01, (name, x[i], err[i])


# Special values whose results numpy defines exactly (not rounding-dependent).
EXACT_SPECIALS = {
    "exp": [(np.nan, np.nan), (np.inf, np.inf), (-np.inf, 0.0), (0.0, 1.0),
            (-0.0, 1.0), (710.0, np.inf), (-746.0, 0.0), (1e300, np.inf)],
    "log": [(np.nan, np.nan), (np.inf, np.inf), (0.0, -np.inf), (-0.0, -np.inf),
            (-1.0, np.nan), (-np.inf, np.nan), (1.0, 0.0)],
    "log1p": [(np.nan, np.nan), (np.inf, np.inf), (-1.0, -np.inf), (-2.0, np.nan),
              (-np.inf, np.nan), (0.0, 0.0), (-0.0, -0.0)],
    "expm1": [(np.nan, np.nan), (np.inf, np.inf), (-np.inf, -1.0), (0.0, 0.0),
              (-0.0, -0.0), (710.0, np.inf), (-100.0, -1.0)],
    "tanh": [(np.nan, np.nan), (np.inf, 1.0), (-np.inf, -1.0), (0.0, 0.0),
             (-0.0, -0.0), (50.0, 1.0), (-50.0, -1.0)],
    "sigmoid": [(np.nan, np.nan), (np.inf, 1.0), (-np.inf, 0.0), (0.0, 0.5),
                (-0.0, 0.5), (800.0, 1.0), (-800.0, 0.0)],
    "softplus": [(np.nan, np.nan), (np.inf, np.inf), (-np.inf, 0.0), (-800.0, 0.0),
                 (1e300, 1e300)],
    "sin": [(np.nan, np.nan), (np.inf, np.nan), (-np.inf, np.nan), (0.0, 0.0),
            (-0.0, -0.0)],
    "cos": [(np.nan, np.nan), (np.inf, np.nan), (-np.inf, np.nan), (0.0, 1.0),
            (-0.0, 1.0)],
}


def _same(a, b) -> bool:
    if np.isnan(a) or np.isnan(b):
        return bool(np.isnan(a) and np.isnan(b))
    return a == b and np.signbit(a) == np.signbit(b)


@pytest.mark.parametrize("dt", DTYPES, ids=_dt_id)
@pytest.mark.parametrize("name", vecmath.NAMES)
def test_special_values_match_numpy(name, dt):
    kernel = H.compile_unary_kernel(name, dt)
    dt = np.dtype(dt)
    # Table entries (with float32 overflow at 89 and underflow at -104).
    table = list(EXACT_SPECIALS[name])
    if dt == np.float32 and name in ("exp", "expm1"):
        table += [(89.0, np.inf)]
    if dt == np.float32 and name == "exp":
        table += [(-104.0, 0.0)]
    if dt == np.float32:
        table = [(x, e) for x, e in table if abs(x) < 1e30 or not np.isfinite(x)]
    x = np.array([t[0] for t in table], dt)
    got = kernel(x)
    ref = numpy_same_dtype(name, x)
    for xi, gi, ri, (_, expected) in zip(x, got, ref, table):
        assert _same(ri, dt.type(expected)), f"table disagrees with numpy: {name}({xi!r})"
        assert _same(gi, ri), f"{name}({xi!r}) = {gi!r}, numpy gives {ri!r}"
    # Every special value numpy returns for the special-value table (nan,
    # inf, zero) must be reproduced exactly, except where the true result
    # is so close to an overflow threshold that rounding decides.
    x = special_values(name, dt)
    got, ref = kernel(x), numpy_same_dtype(name, x)
    special = np.isnan(ref) | np.isinf(ref) | (ref == 0)
    err = H.ulp_error(got, reference(name, x), dt)
    for xi, gi, ri, ei in zip(x[special], got[special], ref[special], err[special]):
        if not _same(gi, ri):
            assert np.isfinite(ei) and ei <= 1.0, f"{name}({xi!r}) = {gi!r}, numpy {ri!r}"


@pytest.mark.parametrize("dt", DTYPES, ids=_dt_id)
@pytest.mark.parametrize("name", ["sin", "cos"])
def test_trig_outside_accurate_domain(name, dt):
    """Without Payne-Hanek, huge arguments give inaccurate but finite values
    in [-1, 1]; inf and nan give nan."""
    kernel = H.compile_unary_kernel(name, dt)
    rng = np.random.default_rng(7)
    dt = np.dtype(dt)
    lim = trig_limit(dt)
    mags = np.exp(rng.uniform(math.log(lim), math.log(float(np.finfo(dt).max)), 200_000))
    x = np.concatenate([mags, -mags, [np.finfo(dt).max, -np.finfo(dt).max]]).astype(dt)
    y = kernel(x)
    assert np.all(np.isfinite(y)) and np.all(np.abs(y) <= 1)
    assert np.all(np.isnan(kernel(np.array([np.inf, -np.inf, np.nan], dt))))


@pytest.mark.parametrize("dt", DTYPES, ids=_dt_id)
@pytest.mark.parametrize("name", vecmath.NAMES)
def test_vectorized_without_libm_calls(name, dt):
    """The loop calls the full-width vector variant (and the scalar function only in
    its remainder); neither it nor the library code calls libm; the library's
    bodies are vector code in the host's widest registers."""
    kernel = H.compile_unary_kernel(name, dt)
    assert not H.libm_calls(kernel.asm), H.libm_calls(kernel.asm)
    assert not H.libm_calls(kernel.library_asm), H.libm_calls(kernel.library_asm)
    bits = H.host_vector_bits()
    elt = "double" if np.dtype(dt) == np.float64 else "float"
    width = bits // (64 if elt == "double" else 32)
    sfx = "f64" if elt == "double" else "f32"
    variant = vecmath.symbol(name, sfx, width)
    calls = set(re.findall(r"call (?:fast )?<(\d+) x %s> @\"?(\w+)" % elt, kernel.optimized_ir))
    assert (str(width), variant) in calls, f"the loop does not call {variant}: {sorted(calls)}"
    assert variant in H.called_symbols(kernel.asm)
    reg = {512: "zmm", 256: "ymm", 128: "xmm"}[bits]
    assert re.search(r"%" + reg + r"\d", kernel.library_asm), f"no {reg} registers in the library"
    body = kernel.library_asm.split(f"{variant}:", 1)[1].split(".Lfunc_end", 1)[0]
    assert re.search(r"%" + reg + r"\d", body) and not re.search(r"\bcall", body), \
        f"{variant} is not straight-line {reg} code"


@pytest.mark.parametrize("target", [None, vecmath.Target(128, False),
                                    pytest.param(vecmath.Target(512, True), marks=pytest.mark.skipif(
                                        H.host_vector_bits() < 512, reason="AVX-512 instructions need an AVX-512 host"))],
                         ids=["host", "sse", "avx512"])
@pytest.mark.parametrize("dt", DTYPES, ids=_dt_id)
@pytest.mark.parametrize("name", vecmath.NAMES)
def test_scalar_and_vector_variants_agree_bit_for_bit(name, dt, target):
    """The scalar function, every vector variant and a scalar body emitted by the
    same code give the same bits, lane for lane (so a value does not depend on
    whether a loop's vector part or its remainder computed it), for the host's
    widths and for other targets' layouts (run here with LLVM splitting the
    vectors)."""
    target = target or vecmath.host_target()
    lanes = H.compile_lanes_kernels(name, dt, target)
    assert lanes.widths() == [None, *target.widths("f64" if np.dtype(dt) == np.float64 else "f32")]
    rng = np.random.default_rng(11)
    x = np.concatenate([special_values(name, dt), sweep_inputs(name, dt, 5_000, rng)])
    x = x[rng.permutation(x.size)]               # specials in every lane position
    want = lanes[None](x)
    assert_same_bits(lanes.body(x), want, x, f"{name} {_dt_id(dt)} scalar body")
    for w in lanes.widths()[1:]:
        for shift in range(w):                    # each value in each lane
            xs = np.roll(x, shift)
            assert_same_bits(lanes[w](xs), np.roll(want, shift), xs, f"{name} {_dt_id(dt)} v{w}")


@pytest.mark.parametrize("dt", DTYPES, ids=_dt_id)
@pytest.mark.parametrize("name", vecmath.NAMES)
def test_host_without_fma(name, dt):
    """On a CPU without FMA, llvm.fmuladd is an unfused mul + add and the
    float32 sin/cos reduction avoids llvm.fma (which would be a libm call):
    same accuracy, still vectorized, no libm calls."""
    kernel = H.compile_unary_kernel(name, dt, features=H.host_features_without("fma"))
    assert not H.libm_calls(kernel.asm), H.libm_calls(kernel.asm)
    assert not H.libm_calls(kernel.library_asm), H.libm_calls(kernel.library_asm)
    assert re.search(r"call <\d+ x (double|float)> @\"?gradc_vm_", kernel.optimized_ir)
    assert not re.search(r"vfn?madd", kernel.asm + kernel.library_asm)
    rng = np.random.default_rng(3)
    x = np.concatenate([special_values(name, dt), sweep_inputs(name, dt, 20_000, rng)])
    x = x[accuracy_domain(name, x)]
    err = H.ulp_error(kernel(x), reference(name, x), dt)
    print(f"\nvecmath {name:8s} {_dt_id(dt)} without FMA: worst {err.max():.3f} ulp")
    assert err.max() <= MAX_ULP, (name, x[np.argmax(err)], err.max())


@pytest.mark.parametrize("dt", DTYPES, ids=_dt_id)
@pytest.mark.parametrize("name", vecmath.NAMES)
def test_avx2_code(name, dt):
    """On AVX-512 hosts the library uses a few AVX-512 instructions (scalef, getmant,
    getexp, fixupimm, rcp14, permutes); the x86-64-v3 library runs generic code instead.  That code, built
    for this host with AVX-512 switched off: ymm registers only, the same accuracy
    bound on a smaller sweep, and numpy's special values."""
    if not H.host_features().get("avx2") or not H.host_features().get("fma"):
        pytest.skip("needs an AVX2 + FMA host")
    kernel = H.compile_unary_kernel(name, dt, features=H.host_features_without_avx512())
    assert not re.search(r"%zmm\d", kernel.library_asm) and re.search(r"%ymm\d", kernel.library_asm)
    assert not H.libm_calls(kernel.library_asm), H.libm_calls(kernel.library_asm)
    rng = np.random.default_rng([zlib.crc32(f"avx2/{name}/{_dt_id(dt)}".encode()), int(LONG)])
    x = np.concatenate([special_values(name, dt), sweep_inputs(name, dt, N_PER_KIND // 4, rng)])
    x = x[accuracy_domain(name, x)]
    got = kernel(x)
    err = H.ulp_error(got, reference(name, x), dt)
    i = int(np.argmax(err))
    print(f"\nvecmath {name:8s} {_dt_id(dt)} AVX2 code: worst {err[i]:.3f} ulp at x={x[i]!r}")
    assert err[i] <= MAX_ULP, (name, x[i], err[i])
    table = [t[0] for t in EXACT_SPECIALS[name]]
    if np.dtype(dt) == np.float32:                  # 1e300 does not fit
        table = [v for v in table if abs(v) < 1e30 or not np.isfinite(v)]
    table = np.array(table, dt)
    for xi, gi, ri in zip(table, kernel(table), numpy_same_dtype(name, table)):
        assert _same(gi, ri), f"{name}({xi!r}) = {gi!r}, numpy gives {ri!r}"


def test_polynomials_are_the_tools():
    """vecmath's coefficient table is what tools/vecmath_coeffs.py computes (mpmath's
    Chebyshev fits, and float32 tanh's table of polynomials), so the table can be
    regenerated and checked."""
    pytest.importorskip("mpmath")
    import importlib.util
    path = os.path.join(os.path.dirname(__file__), "..", "..", "tools", "vecmath_coeffs.py")
    spec = importlib.util.spec_from_file_location("vecmath_coeffs", path)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    polynomials = {(name, sfx) for name, entry in tool.TABLE.items() for sfx in entry[2]}
    assert polynomials | {("tanh_table", "f32")} == set(vecmath._COEFFS)
    for (name, sfx), coeffs in vecmath._COEFFS.items():
        assert list(coeffs) == tool.coefficients(name, sfx), (name, sfx)


def test_declare_and_annotate():
    mod = ir.Module()
    for ty, sfx in ((ir.DoubleType(), "f64"), (ir.FloatType(), "f32")):
        f = vecmath.declare(mod, "exp", ty)
        assert f.name == f"gradc_vm_exp_{sfx}" and f.is_declaration
        assert f.function_type.return_type == ty and list(f.function_type.args) == [ty]
        assert vecmath.declare(mod, "exp", ty) is f
    with pytest.raises(ValueError):
        vecmath.declare(mod, "nope", ir.DoubleType())
    assert set(vecmath.NAMES) == {"exp", "log", "log1p", "expm1", "tanh", "sigmoid",
                                  "softplus", "sin", "cos"}
    target = vecmath.Target(256, True)
    assert target.widths("f64") == (2, 4) and target.widths("f32") == (4, 8)
    assert vecmath.Target(512, True).widths("f64") == (2, 4, 8)
    assert vecmath.Target(128, False).widths("f32") == (4,)
    text = vecmath.annotate(str(mod), target)
    assert ('declare double @gradc_vm_exp_f64(double %".1") nounwind willreturn memory(none) '
            '"vector-function-abi-variant"="_ZGV_LLVM_N2v_gradc_vm_exp_f64(gradc_vm_exp_f64_v2),'
            '_ZGV_LLVM_N4v_gradc_vm_exp_f64(gradc_vm_exp_f64_v4)"') in text
    assert "declare <8 x float> @gradc_vm_exp_f32_v8(<8 x float>) nounwind willreturn memory(none)" in text
    assert ('@llvm.compiler.used = appending global [4 x ptr] [ptr @gradc_vm_exp_f64_v2, '
            'ptr @gradc_vm_exp_f64_v4, ptr @gradc_vm_exp_f32_v4, ptr @gradc_vm_exp_f32_v8]') in text
    assert vecmath.functions_in(text) == {("exp", "f64"), ("exp", "f32")}
    assert vecmath.functions_in(b"\0gradc_vm_log1p_f32_v8\0gradc_vm_nope_f64\0") == {("log1p", "f32")}


def test_ulp_error_helper():
    f64, f32 = np.float64, np.float32
    one = np.array([1.0])
    assert H.ulp_error(np.nextafter(one, 2), one, f64)[0] == 1.0
    assert H.ulp_error(np.array([np.inf]), np.array([np.finfo(f64).max]), f64)[0] == 1.0
    assert H.ulp_error(np.array([np.inf]), np.array([np.inf]), f64)[0] == 0.0
    assert H.ulp_error(np.array([-np.inf]), np.array([np.inf]), f64)[0] == np.inf
    assert H.ulp_error(np.array([np.nan]), np.array([np.nan]), f64)[0] == 0.0
    assert H.ulp_error(np.array([np.nan]), one, f64)[0] == np.inf
    assert H.ulp_error(one, np.array([np.nan]), f64)[0] == np.inf
    assert H.ulp_error(np.array([-0.0]), np.array([0.0]), f64)[0] == np.inf
    assert H.ulp_error(np.array([0.0]), np.array([5e-324]), f64)[0] == 1.0
    # float32 result against a float64 reference half-way between floats
    ref = np.array([1.0 + 2.0**-24])
    assert H.ulp_error(np.array([1.0], f32), ref, f32)[0] == 0.5
    assert H.ulp_error(np.array([0.0], f32), np.array([1e-50]), f32)[0] < 1e-3


# ---------------------------------------------------------------------------
# The prebuilt library (compiled by setup.py, loaded by the JIT on x86-64-v3/v4 hosts)
# ---------------------------------------------------------------------------

def _prebuilt_or_skip():
    from gradc.backends import llvm_jit
    lib = llvm_jit.prebuilt_vecmath()
    if lib is None:
        pytest.skip("no prebuilt vector math library for this host (or gradc was built without llvmlite)")
    return lib


@pytest.mark.parametrize("dt", DTYPES, ids=_dt_id)
@pytest.mark.parametrize("name", vecmath.NAMES)
def test_prebuilt_library_gives_the_same_bits(name, dt):
    """The object setup.py compiled for this host's x86-64 level computes exactly what
    the library the JIT compiles for this CPU computes (so the accuracy sweeps above
    hold for it), on a sweep sample and every special value, in the loop's vector
    variant and its scalar remainder."""
    lib = _prebuilt_or_skip()
    x = np.concatenate([sweep_inputs(name, dt, 20_000, np.random.default_rng(11)), special_values(name, dt)])
    want = H.compile_unary_kernel(name, dt)(x)
    got = H.compile_unary_kernel_with_library(name, dt, lib)(x)
    assert_same_bits(got, want, x, f"prebuilt {name}")


def test_prebuilt_library_is_refused_when_it_does_not_fit(tmp_path, monkeypatch):
    """Stale (a vecmath module changed), damaged, unknown or switched-off prebuilt libraries
    are not loaded: the JIT compiles the functions instead."""
    import json
    import shutil
    from gradc.backends import llvm_jit
    _prebuilt_or_skip()
    d = tmp_path / "pb"
    shutil.copytree(llvm_jit.PREBUILT_DIR, d)
    assert llvm_jit.prebuilt_vecmath(str(d)) is not None
    manifest = json.loads((d / vecmath.PREBUILT_MANIFEST).read_text())

    def variant(edit):
        m = json.loads(json.dumps(manifest))
        edit(m)
        (d / vecmath.PREBUILT_MANIFEST).write_text(json.dumps(m))
        return llvm_jit.prebuilt_vecmath(str(d))
    assert variant(lambda m: m.update(source_sha256="0" * 64)) is None          # other code
    assert variant(lambda m: m.update(triple="aarch64-unknown-linux-gnu")) is None
    assert variant(lambda m: [o["requires"].append("no-such-feature") for o in m["objects"]]) is None
    assert variant(lambda m: [o.update(sha256="0" * 64) for o in m["objects"]]) is None   # damaged
    (d / vecmath.PREBUILT_MANIFEST).write_text("{not json")
    assert llvm_jit.prebuilt_vecmath(str(d)) is None
    assert llvm_jit.prebuilt_vecmath(str(tmp_path / "missing")) is None
    monkeypatch.setenv("GRADC_PREBUILT", "0")
    assert llvm_jit.prebuilt_vecmath() is None


def test_source_digest_covers_every_vector_math_module(tmp_path):
    """The digest that ties a prebuilt library to its code covers every module the
    library's code comes from: each vecmath*.py next to vecmath.py is in SOURCES, and an
    edit to any one of them changes the digest.  The modules are copied and loaded as
    setup.py loads them (a stand-in package, without the rest of gradc)."""
    import glob
    import shutil
    from gradc.backends.standalone import load_vecmath, unload
    here = os.path.dirname(os.path.abspath(vecmath.__file__))
    assert sorted(vecmath.SOURCES) == sorted(os.path.basename(p) for p in glob.glob(os.path.join(here, "vecmath*.py")))
    for name in vecmath.SOURCES:
        shutil.copy(os.path.join(here, name), tmp_path / name)
    package = "gradc_test_vecmath_copy"
    try:
        copy = load_vecmath(str(tmp_path / "vecmath.py"), package)
        assert copy.source_digest() == vecmath.source_digest()
        seen = {copy.source_digest()}
        for name in vecmath.SOURCES:
            with open(tmp_path / name, "a") as f:
                f.write("# edited\n")
            seen.add(copy.source_digest())
        assert len(seen) == len(vecmath.SOURCES) + 1
    finally:
        unload(package)


def test_a_fresh_process_compiles_no_vector_math(tmp_path):
    """With the prebuilt library, the first transcendental kernel of a process (fresh
    disk cache) compiles only itself."""
    import subprocess
    import sys
    _prebuilt_or_skip()
    code = ("import numpy as np, gradc\n"
            "from gradc.backends import llvm_jit\n"
            "def refuse(*a, **k): raise AssertionError('compiled vector math')\n"
            "llvm_jit.vecmath_object = refuse\n"
            "x = np.linspace(-3, 3, 1001)\n"
            "v, g = gradc.value_and_grad(lambda x: gradc.sum(gradc.tanh(x) * gradc.exp(-x * x) + gradc.log1p(x * x)))(x)\n"
            "assert np.isclose(v, np.sum(np.tanh(x) * np.exp(-x * x) + np.log1p(x * x)), rtol=1e-12)\n"
            "print('ok')\n")
    env = dict(os.environ, GRADC_CACHE_DIR=str(tmp_path / "cache"))
    r = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
