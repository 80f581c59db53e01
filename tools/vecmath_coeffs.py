"""Polynomial coefficients of gradc's vector math (gradc/backends/vecmath_coeffs.py, ``_COEFFS``).

Each polynomial approximates, on the interval its function's range reduction leaves,
the smooth part of a function once its exact leading terms are taken out (so the
polynomial's error is scaled down by the factor in front of it).  The coefficients are
mpmath's Chebyshev approximations (``mpmath.chebyfit``: within a small factor of the
minimax polynomial of that degree, a fraction of the Taylor polynomial's error, so a
few terms fewer for the same accuracy), rounded to the format.

    python tools/vecmath_coeffs.py          # prints the table pasted into vecmath_coeffs.py
                                            # (needs mpmath, used nowhere else)

float32 tanh on AVX-512 uses a table of polynomials instead (``tanh_table``).

The degrees were chosen as the lowest whose approximation error, times the factor in
front, stays below about 1/8 ulp of the result (printed as ``err/ulp``); the accuracy
tests (tests/backends/test_vecmath.py) measure the whole functions.
"""
from __future__ import annotations

import mpmath as mp

mp.mp.prec = 200

LN2 = mp.log(2)


def _exp_p(r):
    # exp(r) = 1 + r + r^2 * P(r)
    return mp.mpf(1) / 2 if r == 0 else (mp.exp(r) - 1 - r) / r**2


def _log_r(z):
    # log(1+f) = 2 atanh(s) = 2s + s*z*R(z), z = s^2
    if z == 0:
        return mp.mpf(2) / 3
    s = mp.sqrt(z)
    return (2 * mp.atanh(s) - 2 * s) / (s * z)


def _sin_s(z):
    # sin(r) = r + r*z*S(z), z = r^2
    if z == 0:
        return -mp.mpf(1) / 6
    r = mp.sqrt(z)
    return (mp.sin(r) - r) / (r * z)


def _cos_c(z):
    # cos(r) = 1 - z/2 + z^2*C(z)
    if z == 0:
        return mp.mpf(1) / 24
    return (mp.cos(mp.sqrt(z)) - 1 + z / 2) / z**2


def _tanh_t(z):
    # tanh(a) = a + a*z*T(z), z = a^2 (float32, small |a|)
    if z == 0:
        return -mp.mpf(1) / 3
    a = mp.sqrt(z)
    return (mp.tanh(a) - a) / (a * z)


# name: (function, interval, {suffix: degree}, size of the factor in front relative
# to the result, for the printed error estimate)
_SLACK = 1.0001            # reduced arguments reach slightly past the ideal interval
_HALF_LN2 = LN2 / 2 * _SLACK
_LOG_Z = ((mp.sqrt(2) - 1) / (mp.sqrt(2) + 1)) ** 2 * _SLACK     # s = f/(2+f), f <= sqrt2-1
_LOG_WIDE_Z = (mp.mpf(1) / 5) ** 2 * _SLACK                    # f in [-1/4, 1/2]
# float32 sin/cos: the reduced argument reaches about 0.92 near the accurate limit
# (vecmath_funcs.py's _trig_reduce)
_TRIG_Z = {"f64": (0, (mp.pi / 4) ** 2 * _SLACK), "f32": (0, mp.mpf(0.92) ** 2)}
TABLE = {
    "exp": (_exp_p, (-_HALF_LN2, _HALF_LN2), {"f64": 9, "f32": 4}, _HALF_LN2**2),
    "log": (_log_r, (0, _LOG_Z), {"f64": 6, "f32": 2}, _LOG_Z * mp.sqrt(_LOG_Z) / 0.34),
    "log_wide": (_log_r, (0, _LOG_WIDE_Z), {"f64": 7, "f32": 3}, _LOG_WIDE_Z * mp.sqrt(_LOG_WIDE_Z) / 0.34),
    "sin": (_sin_s, _TRIG_Z, {"f64": 5, "f32": 3}, (mp.pi / 4) ** 2),
    # float32 sin/cos reduced by pi (not pi/2): |y| <= pi/2 + 0.16 (x/pi off by 0.05 near 2^21)
    "sin_pi": (_sin_s, (0, mp.mpf(1.76) ** 2), {"f32": 4}, mp.mpf(1.76) ** 2),
    "cos": (_cos_c, _TRIG_Z, {"f64": 5, "f32": 2}, (mp.pi / 4) ** 4 / 0.7),
    "tanh": (_tanh_t, (0, mp.mpf(0.55) ** 2), {"f32": 4}, mp.mpf(0.55) ** 2),
}
ULP = {"f64": mp.mpf(2) ** -53, "f32": mp.mpf(2) ** -24}

# float32 tanh on AVX-512 (vecmath_funcs.py's _tanh_f32_table): a table of polynomials, one per
# interval [(i - 1/2) w, (i + 1/2) w] of |x| (the first [0, w/2]), in t = |x| - i*w,
# looked up in registers (vpermi2ps: 32 entries).  The first interval's constant and
# linear coefficients are 0 and 1 exactly (tanh(t) = t to within a few ulp for tiny t,
# subnormals and -0.0 too).  Each coefficient is rounded to float32 in turn, lowest
# degree first, and the remaining ones refitted to it (least squares of the relative
# error on Chebyshev points, in mpmath): rounding the constant alone costs up to an ulp
# at an interval's lower end, where tanh is smaller than the constant.
TANH_TABLE = {"intervals": 32, "width": mp.mpf(37) / 128, "degree": 5}


def _tanh_interval(i: int) -> list[float]:
    w, deg = TANH_TABLE["width"], TANH_TABLE["degree"]
    slack = w / 256                        # t = |x| - i*w as vecmath rounds it
    lo, hi = (0 if i == 0 else -w / 2 - slack), w / 2 + slack
    m = 48
    ts = [lo + (hi - lo) * (1 - mp.cos(mp.pi * (k + mp.mpf(1) / 2) / m)) / 2 for k in range(m)]
    with mp.workprec(100):
        fs = [mp.tanh(i * w + t) for t in ts]
        fixed = {0: 0.0, 1: 1.0} if i == 0 else {}
        while len(fixed) < deg + 1:
            free = [j for j in range(deg + 1) if j not in fixed]
            a, b = mp.matrix(m, len(free)), mp.matrix(m, 1)
            for r, (t, f) in enumerate(zip(ts, fs)):
                weight = 1 / f
                for col, j in enumerate(free):
                    a[r, col] = t ** j * weight
                b[r] = (f - sum(v * t ** j for j, v in fixed.items())) * weight
            fixed[free[0]] = _round(mp.qr_solve(a, b)[0][0], "f32")
    return [fixed[j] for j in range(deg + 1)]


def tanh_table() -> list[float]:
    """vecmath's ("tanh_table", "f32"): each interval's coefficients, lowest degree
    first, the intervals one after another."""
    return [c for i in range(TANH_TABLE["intervals"]) for c in _tanh_interval(i)]


def tanh_table_error() -> float:
    """Max relative error of the table's polynomials (rounded coefficients) on a fine
    grid of each interval, in float32 ulps."""
    w, deg = TANH_TABLE["width"], TANH_TABLE["degree"]
    cs = tanh_table()
    worst = 0
    for i in range(TANH_TABLE["intervals"]):
        poly = [mp.mpf(c) for c in cs[i * (deg + 1):(i + 1) * (deg + 1)]]
        lo = 0 if i == 0 else -w / 2
        for k in range(1, 201):
            t = lo + (w / 2 - lo) * k / 200
            exact = mp.tanh(i * w + t)
            worst = max(worst, abs(mp.polyval(poly[::-1], t) - exact) / exact)
    return float(worst / ULP["f32"])


def _round(v, sfx):
    import numpy as np
    return float(v) if sfx == "f64" else float(np.float32(float(v)))


def coefficients(name: str, sfx: str) -> list[float]:
    """Coefficients (lowest degree first) of ``name``'s polynomial for ``sfx``, rounded
    (``tanh_table``: the table of polynomials)."""
    if name == "tanh_table":
        return tanh_table()
    f, interval, degrees, _ = TABLE[name]
    lo, hi = interval[sfx] if isinstance(interval, dict) else interval
    # chebyfit lists the highest degree first (mpmath 1.3, which pyproject allows, has no asc=)
    poly, _ = mp.chebyfit(f, [lo, hi], degrees[sfx] + 1, error=True)
    poly = poly[::-1]
    return [_round(c, sfx) for c in poly]


def error(name: str, sfx: str) -> float:
    """Max |polynomial (rounded coefficients) - function| on a fine grid, times the
    factor in front, in ulps of the result."""
    f, interval, _, scale = TABLE[name]
    lo, hi = interval[sfx] if isinstance(interval, dict) else interval
    cs = [mp.mpf(c) for c in coefficients(name, sfx)]
    worst = 0
    for i in range(2001):
        t = lo + (hi - lo) * i / 2000
        worst = max(worst, abs(mp.polyval(cs[::-1], t) - f(t)))
    return float(worst * scale / ULP[sfx])


def main():
    print("_COEFFS = {")
    for name, (_, _, degrees, _) in TABLE.items():
        for sfx in degrees:
            cs = coefficients(name, sfx)
            print(f"    # err/ulp {error(name, sfx):.3g}")
            print(f'    ("{name}", "{sfx}"): _hex("{" ".join(c.hex() for c in cs)}"),')
    per = TANH_TABLE["degree"] + 1
    cs = tanh_table()
    print(f"    # err/ulp {tanh_table_error():.3g}")
    print('    ("tanh_table", "f32"): _hex(')
    for i in range(0, len(cs), per):
        print(f'        "{" ".join(c.hex() for c in cs[i:i + per])} "')
    print("    ),")
    print("}")


if __name__ == "__main__":
    main()
