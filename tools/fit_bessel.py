"""Chebyshev coefficients of the exponentially scaled Bessel functions I0 and I1 for
gradc/scipy/_bessel.py (Cephes' layout, coefficients computed afresh with mpmath):

* 0 <= x <= 8: exp(-x) I0(x) and exp(-x) I1(x) / x in t = x/4 - 1;
* x > 8: sqrt(x) exp(-x) I0(x) and sqrt(x) exp(-x) I1(x) in t = 16/x - 1 (analytic at
  t = -1, x = inf, where both tend to 1/sqrt(2 pi)).

The value is sum'_k c_k T_k(t) (c_0 halved), Clenshaw's recurrence.  Printed highest
degree first, dropping coefficients below 1e-20 of the function's size.
"""
import mpmath as mp

mp.mp.dps = 40


def cheb(f, n=60):
    nodes = [mp.cos(mp.pi * (j + mp.mpf(1) / 2) / n) for j in range(n)]
    vals = [f(t) for t in nodes]
    return [2 * mp.fsum(v * mp.cos(k * mp.pi * (j + mp.mpf(1) / 2) / n) for j, v in enumerate(vals)) / n
            for k in range(n)]


def show(name, c):
    while abs(c[-1]) < 1e-20:
        c.pop()
    print(f"{name} = ({', '.join(repr(float(v)) for v in reversed(c))})")


show("_I0_SMALL", cheb(lambda t: mp.exp(-4 * (t + 1)) * mp.besseli(0, 4 * (t + 1))))
show("_I1_SMALL", cheb(lambda t: mp.exp(-4 * (t + 1)) * mp.besseli(1, 4 * (t + 1)) / (4 * (t + 1))))
show("_I0_LARGE", cheb(lambda t: mp.sqrt(16 / (t + 1)) * mp.exp(-16 / (t + 1)) * mp.besseli(0, 16 / (t + 1))))
show("_I1_LARGE", cheb(lambda t: mp.sqrt(16 / (t + 1)) * mp.exp(-16 / (t + 1)) * mp.besseli(1, 16 / (t + 1))))
