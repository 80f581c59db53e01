"""numpy's bitwise operations on integers and bit casts: ``&``, ``|``, ``^``, ``~``, ``<<``,
``>>`` (bitwise_and, bitwise_or, bitwise_xor, invert, left_shift, right_shift),
bitwise_count, and ``x.view(dtype)`` between types of one size (jax.lax's
bitcast_convert_type) -- what hashes, bit masks and counter-based random numbers
written in numpy compute.

numpy's semantics exactly: its dtype promotion (a Python int takes the array's type:
``uint32 ^ 0xFFFFFFFF`` is uint32; bool shifts are int8), right shifts arithmetic for
signed integers and logical for unsigned ones, and a shift count outside ``[0, width)``
gives 0 (-1 for a negative value shifted right) where LLVM and C leave it undefined.
Booleans keep their logical meaning (``mask & mask`` is logical_and), as numpy's.
Floats are refused as numpy refuses them (its TypeError).  The results are integers:
no gradient flows through them, as through a comparison.
"""
from __future__ import annotations

import builtins

import numpy as np

from .bind import batch_broadcasting, convert, result_dtype, tracer
from .elementwise import _check_operand, convert_bool, elementwise, logical_and, logical_not, not_equal
from .mathfuncs import logical_or
from .registry import Op, register


def _no_vjp(g, z, *args, **params):
    return (None,) * len(args)


def _no_jvp(ts, z, *args, **params):
    return None


def _fn(name):
    return lambda m, *us: m.fn(name, *us)


# ----------------------------------------------------------------------------- primitives
for _name, _f, _instr in (("bitwise_and", np.bitwise_and, "and_"), ("bitwise_or", np.bitwise_or, "or_"),
                          ("bitwise_xor", np.bitwise_xor, "xor")):
    elementwise(_name, _f, vjp=_no_vjp, jvp=_no_jvp,
                c=f"({{0}} {dict(and_='&', or_='|', xor='^')[_instr]} {{1}})",
                llvm=(lambda i: lambda e, x, y: getattr(e.b, i)(x, y))(_instr),
                doc=f"numpy.{_name} of integers; no derivative", notation=_fn(_name))
elementwise("invert", np.invert, vjp=_no_vjp, jvp=_no_jvp, c="(({ctype})~{0})",
            llvm=lambda e, x: e.b.not_(x), doc="numpy.invert (~) of integers; no derivative",
            notation=_fn("invert"))


# (the C helpers compute in 64 bits: the cast drops the bits beyond a narrower type)
elementwise("left_shift", np.left_shift, vjp=_no_vjp, jvp=_no_jvp, c="(({ctype})gradc_shl({0}, {1}))",
            llvm=lambda e, x, y: e.shift(x, y, left=True), cost=2,
            doc="numpy.left_shift (<<) of integers: 0 for a count outside [0, width); no derivative",
            notation=_fn("left_shift"))
elementwise("right_shift", np.right_shift, vjp=_no_vjp, jvp=_no_jvp, c="(({ctype})gradc_shr({0}, {1}))",
            llvm=lambda e, x, y: e.shift(x, y, left=False), cost=2,
            doc="numpy.right_shift (>>) of integers, arithmetic for signed ones: a count outside "
                "[0, width) gives 0, or -1 for a negative value; no derivative",
            notation=_fn("right_shift"))
def bitwise_count_np(x):
    """numpy.bitwise_count (numpy 2), also where numpy (1.26) lacks it: the 1 bits of
    |x| (the most negative value's wrapped abs, one bit), uint8."""
    x = np.asarray(x)
    if hasattr(np, "bitwise_count"):
        return np.bitwise_count(x)
    if x.dtype == np.bool_:
        x = x.astype(np.uint8)
    magnitude = np.ascontiguousarray(np.where(x < 0, -x, x).astype(f"u{x.dtype.itemsize}"))
    bits = np.unpackbits(magnitude.reshape(magnitude.shape + (1,)).view(np.uint8), axis=-1)
    return bits.sum(axis=-1, dtype=np.uint8)


elementwise("bitwise_count", bitwise_count_np, vjp=_no_vjp, jvp=_no_jvp, out=np.uint8,
            c="gradc_bitcount({0})", llvm=lambda e, x: e.bitwise_count(x), cost=4,
            doc="numpy.bitwise_count: the number of 1 bits of |x|, uint8; no derivative",
            notation=_fn("bitwise_count"))
register(Op("bitcast", "elementwise", lambda env, avals, dtype: (avals[0][0], np.dtype(dtype)),
            lambda x, dtype: np.asarray(x).view(dtype), vjp=_no_vjp, jvp=_no_jvp,
            llvm=lambda e, x, dtype: e.bitcast(x, dtype),
            c="((union {{ {src} from; {ctype} to; }}){{ .from = {0} }}).to",
            doc="the same bits as another type of the same size (x.view(dtype), "
                "lax.bitcast_convert_type); no derivative",
            notation="bitcast",
            batch=batch_broadcasting("bitcast")))


# ----------------------------------------------------------------------------- user API
_OPERATOR = {"bitwise_and": "&", "bitwise_or": "|", "bitwise_xor": "^", "invert": "~", "left_shift": "<<",
             "right_shift": ">>", "bitwise_count": None}


def _dtype_name(x) -> str:
    if isinstance(x, (bool, int, float)):
        return f"a Python {type(x).__name__}"
    return str(np.asarray(x).dtype if not isinstance(x, tracer().Value) else x.dtype)


def _refuse(name, xs, why):
    from ..errors import UnsupportedError
    from ..tracer import user_source
    src = user_source()
    op = _OPERATOR[name]
    what = f"numpy.{name}" + (f" (the {op} operator)" if op else "")
    raise UnsupportedError(f"{what} of {' and '.join(_dtype_name(x) for x in xs)}: {why}"
                           + (f"  [at {src}]" if src else ""))


def _integer_dtype(name, xs):
    """numpy's result dtype of bitwise op ``name`` on ``xs`` (booleans stay bool), or a
    refusal where numpy raises TypeError (floats; int64 with uint64, whose common type
    is float64)."""
    for x in xs:
        _check_operand(x, name)
    dt = result_dtype(xs, float_result=False)
    if dt.kind not in "biu":
        if any(_dtype_name(x) in ("a Python float", "float32", "float64") for x in xs):
            why = ("numpy has no bitwise operations on floats (it raises TypeError); "
                   "convert with astype, or reinterpret the bits with x.view(np.uint32/np.uint64)")
        else:
            why = f"their common type is {dt} and numpy has no bitwise operations on it (it raises TypeError)"
        _refuse(name, xs, why)
    return dt


def _concrete(xs) -> bool:
    t = tracer()
    return t.current() is None and not any(isinstance(x, t.Value) for x in xs)


def _logical(name, bool_fn):
    """numpy's ``name`` of two operands: bools logically (as numpy's), integers bitwise."""
    def f(x, y):
        if _concrete((x, y)):
            return getattr(np, name)(x, y)
        dt = _integer_dtype(name, (x, y))
        if dt == np.bool_:
            return bool_fn(convert_bool(x), convert_bool(y))
        return tracer().bind(name, convert(x, dt), convert(y, dt))
    f.__name__ = name
    f.__doc__ = f"numpy.{name} (the {_OPERATOR[name]} operator): bitwise on integers, logical on booleans."
    return f


bitwise_and = _logical("bitwise_and", logical_and)
bitwise_or = _logical("bitwise_or", logical_or)
bitwise_xor = _logical("bitwise_xor", not_equal)


def invert(x):
    """numpy.invert (``~``, bitwise_not): the bits flipped; a boolean's logical not."""
    if _concrete((x,)):
        return np.invert(x)
    dt = _integer_dtype("invert", (x,))
    if dt == np.bool_:
        return logical_not(x)
    return tracer().bind("invert", convert(x, dt))


def _shift(name):
    def f(x, y):
        if _concrete((x, y)):
            return getattr(np, name)(x, y)
        dt = _integer_dtype(name, (x, y))
        if dt == np.bool_:
            dt = np.dtype(np.int8)        # numpy's shifts have no bool loop: int8
        return tracer().bind(name, convert(x, dt), convert(y, dt))
    f.__name__ = name
    return f


left_shift, right_shift = _shift("left_shift"), _shift("right_shift")
left_shift.__doc__ = "numpy.left_shift (``<<``): 0 where the count is negative or at least the bit width."
right_shift.__doc__ = ("numpy.right_shift (``>>``), arithmetic for signed integers: where the count is "
                       "negative or at least the bit width, 0 (-1 for a negative value).")


def bitwise_count(x):
    """numpy.bitwise_count: the number of 1 bits in ``|x|``, as uint8."""
    if _concrete((x,)):
        return bitwise_count_np(x)
    dt = _integer_dtype("bitwise_count", (x,))
    return tracer().bind("bitwise_count", convert(x, np.uint8 if dt == np.bool_ else dt))


def view(x, dtype=None, type=None):  # noqa: A002  (numpy's keyword)
    """``x.view(dtype)`` (numpy's ndarray.view) for a dtype of the same item size: the
    same bits read as ``dtype`` (uint32 <-> float32, int64/uint64 <-> float64, int32 <->
    uint32, ...); no gradient flows through it.  A view as another size (which numpy
    spreads over the last axis) is refused."""
    from ..errors import UnsupportedError
    from ..tracer import user_source
    at = f"  [at {user_source()}]" if user_source() else ""
    if type is not None and not (isinstance(type, builtins.type) and issubclass(type, np.ndarray)):
        raise UnsupportedError(f"view(type={type!r}): only ndarray views are supported" + at)
    if dtype is None or (isinstance(dtype, builtins.type) and issubclass(dtype, np.ndarray)):
        return x
    dt = np.dtype(dtype)
    t = tracer()
    if not isinstance(x, t.Value):
        return np.asarray(x).view(dt)
    src = x.dtype
    supported = "biuf"
    if src == np.bool_ or dt == np.bool_ or src.kind not in supported or dt.kind not in supported \
            or dt.itemsize not in (1, 2, 4, 8) or (dt.kind == "f" and dt.itemsize < 4):
        raise UnsupportedError(f"view: reinterpreting {src} as {dt} is not supported (gradc views integers "
                               "and float32/float64 as each other, at the same size)" + at)
    if dt.itemsize != src.itemsize:
        raise UnsupportedError(f"view: {src} has {src.itemsize} bytes and {dt} {dt.itemsize}: gradc reinterprets "
                               "bits between types of the same size only (numpy's view of another size "
                               "changes the last axis)" + at)
    return x if dt == src else t.bind("bitcast", x, dtype=dt)


def bitcast_convert_type(operand, new_dtype):
    """jax.lax.bitcast_convert_type for types of the same size (``x.view(new_dtype)``)."""
    return view(operand, new_dtype)
