"""Element-wise ops.  Their Jacobians are diagonal (the paper's diagonal condition):
each op gives its partial derivatives ``dy/dx_i`` as element-wise expressions, and the
VJP (``g * d``) and JVP (``t * d``) both follow from them.  A partial is a Value, a
boolean mask (the derivative is an indicator, as for ``max(0, z)``), a callable
``g -> g * d`` when there is a cheaper form (``g / x``), or ``None`` (zero).
Broadcasting (the paper's scalar expansion) is implicit; its adjoint sums over the
expanded axes (:func:`unbroadcast`).
"""
from __future__ import annotations

import numpy as np

from .bind import batch_broadcasting, convert, result_dtype, tracer, unbroadcast  # noqa: F401  (re-exported)
from .registry import Op, register
from .structure import broadcast_to
from ..errors import ShapeError


def _check_operand(x, what):
    from ..tracer import Value
    if isinstance(x, Value) or isinstance(x, (bool, int, float, np.generic, np.ndarray, list, tuple)):
        return
    from ..errors import UnsupportedError
    if x is None:     # an argument passed as None is an empty pytree, not a value
        from ..tracer import user_source
        src = user_source()
        raise UnsupportedError(f"{what}: cannot use None as an operand (an argument passed as None is an "
                               "empty pytree and holds no array)" + (f"  [at {src}]" if src else ""))
    raise UnsupportedError(f"{what}: cannot use a {type(x).__name__} as an operand")


# ----------------------------------------------------------------------------- rules
def _ew_shape(env, avals, dtype=None, out=None):
    shape = env.broadcast([s for s, _ in avals], "element-wise op")
    return shape, np.dtype(out or avals[-1][1])


def _np_keep(fn):
    """numpy reference that keeps the input dtype (numpy 2 already does for arrays)."""
    def f(*xs):
        r = fn(*xs)
        return np.asarray(r, dtype=np.result_type(*xs)) if np.ndim(r) == 0 else r
    return f


def chain(g, d):
    """Apply a diagonal partial ``d`` to an incoming (co)tangent ``g``."""
    if d is None or g is None:
        return None
    if callable(d) and not hasattr(d, "_id"):
        return d(g)
    if d.dtype == np.bool_:
        return where(d, g, 0.0)
    return g * d


def elementwise(name, numpy, partials=None, *, vjp=None, jvp=None, llvm=None, c=None,
                out=None, infix=None, doc="", notation=None, deriv=None, cost=1, math=None, libm=None,
                root=False):
    """Register an element-wise op; VJP/JVP come from ``partials`` unless given.
    ``root``: always computed into a buffer of its own (never inlined into its readers).
    ``cost``: its size inlined into a loop body (8 for a vector math call); ``math``:
    the function of gradc's math library the op is (instead of ``llvm`` and ``c``),
    ``libm``: C's name for it in libm (None: gradc.h's ``gradc_<math>``)."""
    def shape_rule(env, avals, **params):
        return _ew_shape(env, avals, out=out)

    if partials is not None and vjp is None:
        def vjp(g, ans, *args, **params):
            ds = partials(ans, *args)
            return tuple(unbroadcast(chain(g, d), a._shape) for d, a in zip(ds, args))
    if partials is not None and jvp is None:
        def jvp(ts, ans, *args, **params):
            ds = partials(ans, *args)
            terms = [chain(t, d) for t, d in zip(ts, ds)]
            terms = [x for x in terms if x is not None]
            if not terms:
                return None
            total = terms[0]
            for x in terms[1:]:
                total = total + x
            return broadcast_to(total, ans._shape) if total._shape != ans._shape else total
    return register(Op(name, "elementwise", shape_rule, numpy, vjp, jvp, partials,
                       llvm, c, doc, infix, notation=notation, deriv=deriv, cost=cost, math=math, libm=libm,
                       root=root, batch=batch_broadcasting(name)))


def _bind(name, *xs, float_result=True, out=None):
    t = tracer()
    for x in xs:
        _check_operand(x, name)
    if all(not isinstance(x, t.Value) for x in xs) and t.current() is None:
        # Concrete inputs outside a trace: the numpy reference answers directly.
        from .registry import OPS
        arrs = [np.asarray(x) for x in xs]
        dt = result_dtype(xs, float_result)
        return OPS[name].numpy(*[a.astype(dt) if a.dtype.kind != "b" or name != "where" else a
                                 for a in arrs])
    dt = result_dtype(xs, float_result)
    return t.bind(name, *[convert(x, dt) for x in xs])


# ----------------------------------------------------------------------------- unary ops
def _sigmoid_np(x):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e)).astype(x.dtype)


def _softplus_np(x):
    return (np.maximum(x, 0) + np.log1p(np.exp(-np.abs(x)))).astype(x.dtype)


elementwise("neg", np.negative, vjp=lambda g, y, x: (-g,), jvp=lambda ts, y, x: -ts[0],
            c="-{0}", llvm=lambda e, x: e.neg(x), doc="-x",
            notation=lambda m, u: m.neg(u), deriv="−1")
elementwise("copy", lambda x: np.array(x, copy=True), vjp=lambda g, y, x: (copy(g),),
            jvp=lambda ts, y, x: copy(ts[0]), c="{0}", llvm=lambda e, x: x,
            doc="x, computed into a buffer of its own: a scan's level, which the next level reads "
                "twice, is not inlined into its readers (nor is its adjoint)",
            notation=lambda m, u: u, root=True)
elementwise("exp", np.exp, lambda y, x: (y,), math="exp", libm="exp", cost=8,
            notation="exp", deriv="exp {u}")
elementwise("log", np.log, lambda y, x: (lambda g: g / x,), math="log", libm="log", cost=8,
            notation="ln", deriv="1/{u}")
elementwise("log1p", np.log1p, lambda y, x: (lambda g: g / (1.0 + x),), math="log1p", libm="log1p", cost=8,
            notation=lambda m, u: m.fn("ln", m.add(m.num(1), u)), deriv="1/(1 + {u})")
elementwise("expm1", np.expm1, lambda y, x: (y + 1.0,), math="expm1", libm="expm1", cost=8,
            notation=lambda m, u: m.add(m.fn("exp", u), m.num(-1)), deriv="exp {u}")
elementwise("sqrt", np.sqrt, lambda y, x: (lambda g: g / (2.0 * y),), math="sqrt", libm="sqrt",
            notation="sqrt", deriv="1/(2√{u})")
elementwise("abs", np.abs, lambda y, x: (sign(x),), c="gradc_abs({0})", llvm=lambda e, x: e.abs(x),
            notation="abs", deriv="sign {u}")
elementwise("sign", _np_keep(np.sign), lambda y, x: (None,), c="gradc_sign({0})", llvm=lambda e, x: e.sign(x),
            notation="sign")
for _n, _f in [("floor", np.floor), ("ceil", np.ceil), ("trunc", np.trunc), ("rint", np.rint)]:
    elementwise(_n, _f, lambda y, x: (None,), c=f"gradc_{_n}({{0}})",
                llvm=(lambda n: lambda e, x: e.intrinsic(f"llvm.{n}", x))(_n), notation=_n,
                doc="floats (an integer is its own floor); derivative 0")
elementwise("fmod", np.fmod, lambda z, x, y: (lambda g: g, lambda g: -g * trunc(x / y)),
            c="gradc_fmod({0}, {1})", llvm=lambda e, x, y: e.b.frem(x, y), cost=8,
            doc="C's fmod (exact; the sign of x), floats; derivatives 1 and -trunc(x/y)",
            notation=lambda m, u, v: m.fn("fmod", u, v))
def _int_np(f):
    def ref(x, y):
        with np.errstate(all="ignore"):     # x // 0 is 0, as numpy (which warns)
            return f(x, y)
    return ref


# numpy's integer division, exact for every integer (no float estimate): the quotient
# rounded down and the remainder with the divisor's sign; C's fmod (the dividend's sign).
# A zero divisor gives 0, and the most negative integer // -1 wraps, as numpy's.
for _name, _f, _which in (("int_floor_divide", np.floor_divide, "q"), ("int_remainder", np.remainder, "r"),
                          ("int_fmod", np.fmod, "fmod")):
    elementwise(_name, _int_np(_f), c=f"gradc_idiv_{_which}({{0}}, {{1}})",
                llvm=(lambda w: lambda e, x, y: e.int_divide(x, y, w))(_which), cost=4,
                doc=f"numpy.{_f.__name__} of integers (exact); no derivative",
                notation=(lambda n: lambda m, u, v: m.fn(n, u, v))(_f.__name__))

elementwise("sin", np.sin, lambda y, x: (cos(x),), math="sin", libm="sin", cost=8,
            notation="sin", deriv="cos {u}")
elementwise("cos", np.cos, lambda y, x: (-sin(x),), math="cos", libm="cos", cost=8,
            notation="cos", deriv="−sin {u}")
elementwise("tanh", np.tanh, lambda y, x: (1.0 - y * y,), math="tanh", libm="tanh", cost=8,
            notation="tanh", deriv="1 − tanh²{u}")
elementwise("sigmoid", _sigmoid_np, lambda y, x: (y * (1.0 - y),), math="sigmoid", cost=8,
            doc="1/(1+exp(-x)), stable for all x", notation="sigmoid", deriv="σ({u})(1 − σ({u}))")
elementwise("softplus", _softplus_np, lambda y, x: (sigmoid(x),), math="softplus", cost=8,
            doc="log(1+exp(x)) = max(x,0)+log1p(exp(-|x|))", notation="softplus", deriv="σ({u})")
elementwise("relu", lambda x: np.maximum(x, np.zeros((), x.dtype)), lambda y, x: (x > 0.0,),
            c="gradc_relu({0})", llvm=lambda e, x: e.relu(x), doc="max(0, x); derivative 1[x > 0]",
            notation=lambda m, u: m.fn("max", m.num(0), u))
elementwise("square", np.square, lambda y, x: (2.0 * x,), c="({0}*{0})", llvm=lambda e, x: e.mul(x, x),
            notation=lambda m, u: m.pow(u, m.num(2)), deriv="2{u}")
elementwise("stop_gradient", lambda x: x, vjp=lambda g, y, x: (None,), jvp=lambda ts, y, x: None,
            c="{0}", llvm=lambda e, x: x)


def _cast_np(x, dtype):
    dt = np.dtype(dtype)
    if x.dtype.kind == "f" and dt.kind in "iu":
        return _float_to_int(x, dt)
    return x.astype(dt)


def _float_to_int(x, dt):
    """A float array as integer type ``dt`` as the native backends convert it (gradc.h's
    gradc_f2i32, LlvmCodegen.float_to_int): numpy's answer on x86-64 for every value,
    which numpy's astype gives only in its vector loops (a length's last few elements and
    other platforms differ for values out of range): truncation through int32 (int64 for
    8-byte types), out of range or NaN -> the range's minimum, uint32/uint64 from 2^31
    (2^63) up as x - 2^31 (2^63) with the top bit set, wrapped to ``dt``."""
    x = np.asarray(x, np.float64)
    bits = 64 if dt.itemsize == 8 else 32
    ity = np.int64 if bits == 64 else np.int32
    lim = 2.0 ** (bits - 1)

    def trunc(v):
        ok = (v >= -lim) & (v < lim)
        return np.where(ok, np.where(ok, v, 0.0).astype(ity), np.iinfo(ity).min).astype(ity)
    if dt.kind == "u" and dt.itemsize >= 4:
        big = x >= lim
        k = trunc(np.where(big, x - lim, x))
        k = np.where(big, k ^ np.iinfo(ity).min, k).astype(ity)
    else:
        k = trunc(x)
    return k.astype(dt)


register(Op("cast", "elementwise",
            lambda env, avals, dtype: (avals[0][0], np.dtype(dtype)), _cast_np,
            vjp=lambda g, y, x, dtype: (convert(g, x.dtype) if x.dtype.kind == "f" else None,),
            jvp=lambda ts, y, x, dtype: convert(ts[0], dtype),
            llvm=lambda e, x, dtype: e.cast(x, dtype), c="({ctype}){0}", batch=batch_broadcasting("cast")))

# ----------------------------------------------------------------------------- binary ops
elementwise("add", np.add, lambda z, x, y: (lambda g: g, lambda g: g), c="({0} + {1})",
            llvm=lambda e, x, y: e.add(x, y), infix="+", notation=lambda m, u, v: m.add(u, v))
elementwise("sub", np.subtract, lambda z, x, y: (lambda g: g, lambda g: -g), c="({0} - {1})",
            llvm=lambda e, x, y: e.sub(x, y), infix="-", notation=lambda m, u, v: m.add(u, m.neg(v)))
elementwise("mul", np.multiply, lambda z, x, y: (y, x), c="({0} * {1})",
            llvm=lambda e, x, y: e.mul(x, y), infix="*", notation=lambda m, u, v: m.mul(u, v))
elementwise("div", np.divide, lambda z, x, y: (lambda g: g / y, lambda g: -(g * z) / y),
            c="({0} / {1})", llvm=lambda e, x, y: e.div(x, y), infix="/",
            notation=lambda m, u, v: m.mul(u, m.pow(v, m.num(-1))))
elementwise("pow", np.power,
            lambda z, x, y: (lambda g: g * (y * power(x, y - 1.0)),
                             # x**y log x -> 0 as x -> 0 (y > 0): 0 there, not 0 * -inf (JAX's rule)
                             lambda g: g * (z * log(where(x == 0.0, 1.0, x)))),
            c="gradc_pow({0}, {1})", llvm=lambda e, x, y: e.pow(x, y), infix="**",
            doc="x ** y; integers raised to a negative integer power are an error, as in numpy",
            notation=lambda m, u, v: m.pow(u, v), cost=8)
def _is_constant(v) -> bool:
    """Does ``v`` depend on no input of the graph being traced (a literal, a constant
    array, or views and arithmetic of constants)?"""
    t = tracer()
    if not isinstance(v, t.Value):
        return True
    g = v._b.graph
    if g[v._id]["op"] == "const":
        return True
    return not any(g[a]["op"] == "input" for a in g.reachable([v._id], forward=False))


def _select_partials(wins_x, wins_y):
    """Partials of max/min(x, y), given which operand is selected strictly (``wins_x``
    = ``x > y`` for max).  Against a constant the paper's strict rule holds: max(0, z)
    has Jacobian diag(1[z > 0]), 0 at z = 0.  Between two operands that both vary, a tie
    splits the gradient equally (JAX's and PyTorch's convention), so max(x, x) has
    derivative 1 and the two sides of PPO's clipped objective share it."""
    def partials(z, x, y):
        if _is_constant(x) or _is_constant(y):
            return wins_x(x, y), wins_y(x, y)
        dt = z.dtype if z.dtype.kind == "f" else np.dtype(np.float64)
        tie = x == y
        return (where(tie, 0.5, convert(wins_x(x, y), dt)),
                where(tie, 0.5, convert(wins_y(x, y), dt)))
    return partials


elementwise("maximum", np.maximum, _select_partials(lambda x, y: x > y, lambda x, y: y > x),
            c="gradc_max({0}, {1})", llvm=lambda e, x, y: e.maximum(x, y),
            doc="derivative 1[x > y], 1[y > x] (the paper); a tie of two varying operands splits 1/2, 1/2",
            notation=lambda m, u, v: m.fn("max", u, v))
elementwise("minimum", np.minimum, _select_partials(lambda x, y: x < y, lambda x, y: y < x),
            c="gradc_min({0}, {1})", llvm=lambda e, x, y: e.minimum(x, y),
            doc="derivative 1[x < y], 1[y < x]; a tie of two varying operands splits 1/2, 1/2",
            notation=lambda m, u, v: m.fn("min", u, v))
for _n, _f, _s in [("gt", np.greater, ">"), ("ge", np.greater_equal, ">="), ("lt", np.less, "<"),
                   ("le", np.less_equal, "<="), ("eq", np.equal, "=="), ("ne", np.not_equal, "!=")]:
    elementwise(_n, _f, vjp=lambda g, z, x, y: (None, None), jvp=lambda ts, z, x, y: None,
                out=np.bool_, c=f"({{0}} {_s} {{1}})", infix=_s,
                llvm=(lambda s: lambda e, x, y: e.compare(s, x, y))(_s),
                notation=(lambda s: lambda m, u, v: m.cmp(s, u, v))(_s))
elementwise("logical_and", np.logical_and, vjp=lambda g, z, x, y: (None, None),
            jvp=lambda ts, z, x, y: None, out=np.bool_, c="({0} && {1})",
            llvm=lambda e, x, y: e.logical_and(x, y), notation=lambda m, u, v: m.and_(u, v))
elementwise("logical_not", np.logical_not, vjp=lambda g, z, x: (None,), jvp=lambda ts, z, x: None,
            out=np.bool_, c="(!{0})", llvm=lambda e, x: e.logical_not(x), notation=lambda m, u: m.not_(u))


def _where_shape(env, avals):
    shape = env.broadcast([s for s, _ in avals], "where")
    return shape, np.dtype(avals[1][1])


register(Op("where", "elementwise", _where_shape, np.where,
            vjp=lambda g, z, c, x, y: (None, unbroadcast(where(c, g, 0.0), x._shape),
                                       unbroadcast(where(c, 0.0, g), y._shape)),
            jvp=lambda ts, z, c, x, y: where(c, ts[1] if ts[1] is not None else 0.0,
                                             ts[2] if ts[2] is not None else 0.0),
            llvm=lambda e, c, x, y: e.select(c, x, y), c="({0} ? {1} : {2})",
            doc="select x where c else y; derivative is the mask", rule="select ⇒ mask 1[c]",
            batch=batch_broadcasting("where")))


# ----------------------------------------------------------------------------- user API
def _refuse_bool(x, what, instead):
    from ..tracer import Value
    if (isinstance(x, Value) or isinstance(x, np.ndarray)) and x.dtype == np.bool_:
        raise TypeError(f"The numpy boolean {what} is not supported, use {instead} instead.")


def copy(x):
    """x computed into a buffer of its own (internal: see ``stats.materialize``)."""
    return _bind("copy", x, float_result=False)


def neg(x):
    _refuse_bool(x, "negative, the `-` operator,", "the `~` operator or logical_not")
    return _bind("neg", x, float_result=False)


def exp(x): return _bind("exp", x)
def log(x): return _bind("log", x)
def log1p(x): return _bind("log1p", x)
def expm1(x): return _bind("expm1", x)
def sqrt(x): return _bind("sqrt", x)
def abs(x): return _bind("abs", x, float_result=False)  # noqa: A001
def sign(x):
    _refuse_bool(x, "sign", "astype(int) first")     # numpy's sign has no bool loop
    return _bind("sign", x, float_result=False)      # numpy keeps integer dtypes


def trunc(x): return _bind("trunc", x)
def sin(x): return _bind("sin", x)
def cos(x): return _bind("cos", x)
def tanh(x): return _bind("tanh", x)
def sigmoid(x): return _bind("sigmoid", x)
def softplus(x): return _bind("softplus", x)
def relu(x): return _bind("relu", x)
def square(x):
    t = tracer()
    if isinstance(x, t.Value) and x.dtype == np.bool_:
        x = convert(x, np.int8)                  # numpy's square has no bool loop: int8
    return _bind("square", x, float_result=False)


def stop_gradient(x): return _bind("stop_gradient", x)
def add(x, y): return _bind("add", x, y, float_result=False)
def subtract(x, y): return _bind("sub", x, y, float_result=False)
def multiply(x, y): return _bind("mul", x, y, float_result=False)
def divide(x, y): return _bind("div", x, y)
def maximum(x, y): return _bind("maximum", x, y, float_result=False)
def minimum(x, y): return _bind("minimum", x, y, float_result=False)


def _cmp(name):
    def f(x, y):
        return _bind(name, x, y, float_result=False)
    f.__name__ = name
    return f


greater, greater_equal, less, less_equal, equal, not_equal = (
    _cmp(n) for n in ("gt", "ge", "lt", "le", "eq", "ne"))


def logical_and(x, y):
    return _bind("logical_and", convert_bool(x), convert_bool(y), float_result=False)


def logical_not(x):
    return _bind("logical_not", convert_bool(x), float_result=False)


def convert_bool(x):
    t = tracer()
    if isinstance(x, t.Value) and x.dtype != np.bool_:
        return x != 0
    return x


def power(x, y, operator=False):
    """x ** y; a constant exponent 2 becomes ``square`` (cheaper, exact derivative).
    Integers to integer powers stay integers (numpy's rule); a negative integer
    exponent is an error (numpy's ValueError) -- here when it is a constant, at run
    time when it is an array.  ``operator``: called as ``x ** y``, where numpy's arrays
    compute ``** 2`` as ``square`` (so a bool array's ``** 2`` is int8, its
    ``np.power(b, 2)`` int64)."""
    t = tracer()
    py_int = isinstance(y, int) and not isinstance(y, bool)
    if getattr(x, "dtype", None) == np.bool_ and py_int and not (operator and y == 2):
        # numpy: np.power(bool, int) is int64 (``b ** 2`` is square's int8, below)
        x = convert(x, np.int64) if isinstance(x, t.Value) else np.asarray(x, np.int64)
    if isinstance(x, t.Value) and x.dtype.kind in "iu" and isinstance(y, (int, np.integer)) \
            and not isinstance(y, bool) and y < 0:
        raise ValueError("Integers to negative integer powers are not allowed.")
    if isinstance(y, (int, float)) and not isinstance(y, bool):
        if y == 2:
            return square(x)
        if y == 1:
            return x
        if y == 0.5:
            return sqrt(x)
    return _bind("pow", x, y, float_result=False)


def where(c, x, y):
    """Element-wise select: x where c is true, else y (numpy's three-argument where)."""
    t = tracer()
    if t.current() is None and not any(isinstance(a, t.Value) for a in (c, x, y)):
        return np.where(c, x, y)
    dt = result_dtype([x, y], float_result=False)
    cv = convert_bool(c) if isinstance(c, t.Value) else np.asarray(c, dtype=bool)
    return t.bind("where", cv, convert(x, dt), convert(y, dt))


def astype(x, dtype):
    t = tracer()
    dtype = np.dtype(dtype)
    if dtype.kind not in "biuf":
        from ..errors import UnsupportedError
        raise UnsupportedError(f"astype: dtype {dtype} is not supported (float32/float64/int/bool)")
    if dtype.kind == "f" and dtype not in (np.float32, np.float64) and isinstance(x, t.Value):
        from ..errors import UnsupportedError
        raise UnsupportedError(f"astype: dtype={dtype}: a {dtype} result is not supported (gradc computes in "
                               "float32 and float64; float16 arguments compute in float32): use float32")
    return convert(x, dtype) if isinstance(x, t.Value) else np.asarray(x).astype(dtype)


def clip(x, lo=None, hi=None, out=None, *, min=None, max=None, a_min=None, a_max=None,  # noqa: A002
         **kw):
    """numpy.clip (its ``a_min``/``a_max`` keywords and numpy 2.1's ``min``/``max``
    too): maximum, then minimum."""
    from ..errors import UnsupportedError
    lo = next((b for b in (lo, a_min, min) if b is not None), None)
    hi = next((b for b in (hi, a_max, max) if b is not None), None)
    if out is not None:
        raise UnsupportedError("clip(..., out=...) cannot write into a traced value")
    if kw:   # a ufunc keyword (where=, dtype=, casting=...) ignored would change the result
        raise UnsupportedError(f"clip: keyword(s) {', '.join(sorted(kw))} not supported "
                               "(supported: a_min/min, a_max/max)")
    out = x
    if lo is not None:
        out = maximum(out, lo)
    if hi is not None:
        out = minimum(out, hi)
    return out

