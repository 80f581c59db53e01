"""Independent oracles for the core test suite.

Everything here is computed with plain numpy, never with gradc, so a test that compares
gradc against these helpers compares it against an independent implementation:

* :func:`fd_grad` / :func:`fd_jvp`: central finite differences of a numpy function;
* :func:`check_shapes`: runs a gradc graph with the numpy evaluator and checks every
  node's shape rule against the shape numpy actually produced;
* the tolerance constants, with their justification.

Tolerances
----------
Central differences with step ``h`` have truncation error ``h**2 |f'''| / 6`` and
rounding error ``~ eps * |f| / h``.  With ``h = 1e-6`` (relative to ``|x|``, at least
1e-6) and float64 ``eps = 2.2e-16`` on well-scaled inputs (``|x|, |f|, |f'''| <= ~100``)
both terms stay below ~1e-9 relative to the scale of the function, so ``FD_RTOL =
FD_ATOL = 1e-6`` leaves three orders of magnitude of margin yet catches any wrong
derivative (a missing factor, a sign, a dropped term is an O(1) relative error).

float32 forward results are compared with the float64 reference evaluated on the same
(float32-rounded) inputs.  Each op rounds to within a few ulps (eps32 = 1.19e-7); the
cases reduce at most ~24 terms of magnitude <= ~10, so the accumulated error is below
~50 eps32 ~ 6e-6 of the result's scale: ``F32_RTOL = 2e-5`` with an absolute term of
the same size times the magnitude of the largest term.  float32 gradients chain up to
~10 such ops, with condition numbers <= ~10 on the domains used, so ``F32_GRAD_RTOL =
2e-4`` (~1700 eps32) against the float64 gradient.
"""
from __future__ import annotations

import contextlib

import numpy as np
import pytest

import gradc
from gradc.evaluate import bind_sizes, evaluate
from gradc.shapes import resolve

FD_STEP = 1e-6
FD_RTOL = 1e-6
FD_ATOL = 1e-6
F32_RTOL = 2e-5
F32_GRAD_RTOL = 2e-4


# ----------------------------------------------------------------------------- finite differences
def _step(x):
    return FD_STEP * max(1.0, abs(float(x)))


def fd_grad(f, args, i):
    """d f(*args) / d args[i] by central differences; ``f`` returns a scalar (numpy)."""
    args = [np.array(a, dtype=np.float64) if np.asarray(a).dtype.kind == "f" else a for a in args]
    x = args[i]
    g = np.zeros(x.shape, dtype=np.float64)
    flat = g.reshape(-1)
    for k in range(x.size):
        xp, xm = x.copy(), x.copy()
        h = _step(x.reshape(-1)[k])
        xp.reshape(-1)[k] += h
        xm.reshape(-1)[k] -= h
        ap, am = list(args), list(args)
        ap[i], am[i] = xp, xm
        flat[k] = (float(f(*ap)) - float(f(*am))) / (2 * h)
    return g


def fd_jvp(f, args, diff, tangents):
    """Directional derivative of numpy ``f`` along ``tangents`` (one per index in ``diff``)."""
    # (the step scales with the finite entries: an inf among them would make it inf)
    scale = max([1.0] + [float(np.max(np.abs(a[np.isfinite(a)]), initial=0.0))
                         for a in (np.asarray(args[i], np.float64) for i in diff)])
    h = FD_STEP * scale
    ap, am = list(args), list(args)
    for i, t in zip(diff, tangents):
        ap[i] = np.asarray(args[i], np.float64) + h * t
        am[i] = np.asarray(args[i], np.float64) - h * t
    return (np.asarray(f(*ap), np.float64) - np.asarray(f(*am), np.float64)) / (2 * h)


def fd_jacobian(f, x):
    """Numerator-layout Jacobian of numpy ``f`` at ``x``: shape f(x).shape + x.shape."""
    x = np.asarray(x, np.float64)
    y = np.asarray(f(x))
    J = np.zeros((y.size, x.size))
    for k in range(x.size):
        e = np.zeros(x.size)
        e[k] = 1.0
        J[:, k] = fd_jvp(lambda z: f(z), [x], [0], [e.reshape(x.shape)]).reshape(-1)
    return J.reshape(y.shape + x.shape)


def assert_fd_close(got, want, what=""):
    np.testing.assert_allclose(np.asarray(got, np.float64), want, rtol=FD_RTOL, atol=FD_ATOL,
                               err_msg=what)


# ----------------------------------------------------------------------------- graphs
def resolved_shape(graph, nid, sizes):
    return resolve(graph[nid]["shape"], sizes)


def check_shapes(graph, arrays):
    """Evaluate ``graph`` with numpy; assert every node's shape rule matched numpy's."""
    sizes = bind_sizes(graph, arrays)
    bad = []

    def check(nid, value):
        want = resolved_shape(graph, nid, sizes)
        if tuple(value.shape) != tuple(want):
            bad.append(f"node {nid} {graph.expr(nid)}: shape rule {want}, numpy {value.shape}")

    outs = evaluate(graph, arrays, check=check)
    assert not bad, "\n".join(bad)
    return outs


def kernel_of(f, *args):
    """The native kernel a transformed function runs for these arguments."""
    return f.lower(*args)._entry.run.kernel


def ops_in(graph):
    return {d["op"] for _, d in graph.nx.nodes(data=True)}


def as_dtype(arrays, dtype):
    return [np.asarray(a, dtype) if np.asarray(a).dtype.kind == "f" else a for a in arrays]


def rng(seed=0):
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------- domains
def normal(r, shape):
    return r.standard_normal(shape)


def positive(r, shape):
    """log, sqrt, division, power bases: [0.5, 2] keeps every derivative O(1)."""
    return r.uniform(0.5, 2.0, shape)


def away(r, shape):
    """|x| in [0.2, 2] with a random sign: relu/abs/sign/maximum(0, x) stay off their kink."""
    return r.choice([-1.0, 1.0], size=shape) * r.uniform(0.2, 2.0, shape)


def distinct(r, shape):
    """Values spaced >= 0.2 apart (max/min reductions: no ties within a finite-difference step)."""
    n = int(np.prod(shape, dtype=np.int64))
    v = (r.permutation(n) - n / 2) * 0.3 + r.uniform(-0.05, 0.05, n)
    return v.reshape(shape)


def scalar_of(x):
    return gradc.numpy.sum(x) if getattr(x, "ndim", 0) else x


def large_sort_input(dtype):
    """300,000 values to sort, with what a sort must get right: ties (the stable order
    decides), NaN (numpy puts it last) and signed zeros (equal: they keep their order)."""
    x = np.random.default_rng(1).standard_normal(300_000).astype(dtype)
    x[::5] = x[1::5]
    x[[7, 70_000, 299_999]] = np.nan
    x[[100, 200, 300]], x[[150, 250]] = -0.0, 0.0
    return x


def sort_argsort_median(x):
    """A model of the three ways users order values (see ``assert_sorts_like_numpy``)."""
    gnp = gradc.numpy
    return gnp.sort(x), gnp.argsort(x), gnp.median(gnp.where(gnp.isnan(x), 0.0, x))


def assert_same_bits(got, want):
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_array_equal(got.view(f"i{got.itemsize}"), want.view(f"i{want.itemsize}"))


def assert_sorts_like_numpy(x, sorted_, order, median):
    """``sort_argsort_median(x)``'s results against numpy's stable sort: the values, the
    permutation, the bits of the sorted values (-0.0 and 0.0 in numpy's order) and the
    median of the values with NaN as 0 (float32: to its rounding)."""
    np.testing.assert_array_equal(sorted_, np.sort(x))
    np.testing.assert_array_equal(order, np.argsort(x, kind="stable"))
    assert_same_bits(x[order], np.sort(x, kind="stable"))
    np.testing.assert_allclose(median, np.median(np.where(np.isnan(x), 0, x)), rtol=1e-6 if x.dtype == np.float32 else 0)


# Python source for a test's subprocess: ``guarded(a, at_end)``, a copy of array ``a`` in
# fresh pages with a PROT_NONE page right before and right after (at_end: its last byte
# is the last before the trailing guard page, else its first byte the first after the
# leading one), so a native read or write one element outside it faults.  Run in a
# subprocess: a fault kills that process, not the test run.
GUARD_PRELUDE = r"""
import ctypes, mmap
import numpy as _guard_np
PAGE = mmap.PAGESIZE
libc = ctypes.CDLL(None, use_errno=True)
libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_keep = []

def guarded(a, at_end):
    a = _guard_np.ascontiguousarray(a)
    npages = max(1, -(-a.nbytes // PAGE))
    m = mmap.mmap(-1, (npages + 2) * PAGE)
    base = ctypes.addressof(ctypes.c_char.from_buffer(m))
    for p in (0, npages + 1):
        assert libc.mprotect(base + p * PAGE, PAGE, 0) == 0, ctypes.get_errno()
    _keep.append(m)
    off = PAGE + (npages * PAGE - a.nbytes if at_end else 0)
    g = _guard_np.frombuffer(m, dtype=a.dtype, count=a.size, offset=off).reshape(a.shape)
    g[...] = a
    return g
"""


# The forms a row pipeline's narrow products can run (runtime/skinny.c, skinny_level):
# the choice by CPU and width, and each form forced for every width, so that one host
# tests them all (a form the CPU lacks falls back to the padded kernels).
SKINNY_FORMS = {"chosen": -1, "padded": 0, "avx2": 3, "avx512": 4}


@contextlib.contextmanager
def skinny_form(name):
    """Run the row pipelines' narrow products in form ``name`` (SKINNY_FORMS) inside."""
    from gradc import _callpath
    if not hasattr(_callpath, "skinny_forms"):
        pytest.skip("gradc._callpath was built before skinny_forms: rebuild it")
    was = _callpath.skinny_forms(SKINNY_FORMS[name])
    try:
        yield
    finally:
        _callpath.skinny_forms(was)
