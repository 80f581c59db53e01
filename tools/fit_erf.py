"""Fit the polynomials of gradc's erf and erfc (gradc/ops/special.py) with mpmath.

    python tools/fit_erf.py        # prints the coefficient tables and their errors

erf(x) = x P(x^2) for |x| < 1; erf(x) = 1 - exp(-x^2) Q_k(|x| - c_k) on three pieces of
[1, 6); 1 beyond (erfc(6) = 2e-17 is below half an ulp of 1).  erfc adds a piece on
[0.5, 1) in the same form (Q_0) and its tail on [6, 28): erfc(x) = exp(-x^2) T(1/x^2) / x.  Each polynomial is
mpmath's Chebyshev fit (near minimax) of the exact function, to far below float64's
resolution; the float64 error then comes from Horner's rounding (measured by
tests/test_special.py against math.erf).
"""
import mpmath

mpmath.mp.dps = 50

PIECES = [(1.0, 2.0), (2.0, 3.5), (3.5, 6.0)]


def fit(f, a, b, degree):
    coeffs, err = mpmath.chebyfit(f, [a, b], degree, error=True)
    return [float(c) for c in coeffs], float(err)


def main():
    def p(t):                   # erf(sqrt t) / sqrt t, with its limit at 0
        if t == 0:
            return 2 / mpmath.sqrt(mpmath.pi)
        x = mpmath.sqrt(t)
        return mpmath.erf(x) / x
    coeffs, err = fit(p, 0, 1, 17)
    print(f"P = {coeffs!r}  # max error {err:.1e}")
    for lo, hi in PIECES:
        c = (lo + hi) / 2
        q = lambda u, c=c: mpmath.erfc(u + c) * mpmath.exp((u + c) ** 2)   # noqa: E731
        coeffs, err = fit(q, lo - c, hi - c, 24)
        print(f"Q[{lo}, {hi}) around {c} = {coeffs!r}  # max error {err:.1e}")
    q0 = lambda u: mpmath.erfc(u + 0.75) * mpmath.exp((u + 0.75) ** 2)   # noqa: E731
    coeffs, err = fit(q0, -0.25, 0.25, 16)
    print(f"Q_0 [0.5, 1) around 0.75 = {coeffs!r}  # max error {err:.1e}")

    def tail(t):                # x erfc(x) exp(x^2) as a function of t = 1/x^2
        x = 1 / mpmath.sqrt(t)
        return mpmath.erfc(x) * mpmath.exp(x * x) * x
    coeffs, err = fit(tail, mpmath.mpf(1) / 28 ** 2, mpmath.mpf(1) / 36, 12)
    print(f"T on 1/x^2 for x in [6, 28) = {coeffs!r}  # max error {err:.1e}")
    fit_erfinv()


def fit_erfinv():
    """erfinv(x) = x R(w), w = -log((1 - x)(1 + x)): R in w - 3.125 on [0, 6.25], then in
    s - centre on pieces of s = sqrt(w) up to 27.5 (ndtri's p down to 5e-324).  R at a
    given s comes from the root of log erfc(y) = log(1 - x), exact where x rounds to 1."""
    def ratio(s):
        e = mpmath.exp(-s * s)
        q = e / (1 + mpmath.sqrt(1 - e))                 # 1 - x
        y = mpmath.findroot(lambda t: mpmath.log(mpmath.erfc(t)) - mpmath.log(q), s)
        return y / (1 - q)

    def central(w):
        if w == 0:
            return mpmath.sqrt(mpmath.pi) / 2
        x = mpmath.sqrt(-mpmath.expm1(-w))
        return mpmath.erfinv(x) / x
    coeffs, err = fit(lambda u: central(u + 3.125), -3.125, 3.125, 26)
    print(f"R central, in w - 3.125 = {coeffs!r}  # max error {err:.1e}")
    for lo, hi in [(2.5, 4.0), (4.0, 6.2), (6.2, 13.0), (13.0, 27.5)]:
        c = (lo + hi) / 2
        coeffs, err = fit(lambda u, c=c: ratio(u + c), lo - c, hi - c, 22)
        print(f"R tail, s in [{lo}, {hi}) around {c} = {coeffs!r}  # max error {err:.1e}")


if __name__ == "__main__":
    main()
