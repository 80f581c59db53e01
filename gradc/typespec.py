"""TYPES: argument types written on the command line, such as ``f64[n,d] f64[d] f64[]``.

A type is ``DTYPE[DIMS]``:

* ``DTYPE`` is one of ``f64``, ``f32``, ``i64``, ``i32``, ``bool``;
* ``DIMS`` is a comma-separated list, empty for a scalar (``f64[]``; a bare ``f64`` means
  the same).  A dimension is a positive number (a fixed size) or a name made of letters,
  digits and ``_`` starting with a letter (a size that may vary).  One name is one size
  throughout the list: ``f64[n,d] f64[d]`` says the matrix has as many columns as the
  vector has entries.

:func:`parse_types` turns the list into example arrays for tracing: each named size gets
a deterministic example value, distinct per name and never 1 (1 marks a broadcast
dimension in gradc), floats are standard-normal draws and integers lie in ``[0, 3)``,
all from one fixed seed.

An argument may be a pytree of types (:func:`type_trees`): ``{W: f64[d,h], b: f64[h]}``
is a dict, ``(f64[d], f64[])`` a tuple, nested as deep as needed; every command that
takes TYPES takes trees, and each leaf is one input named by its path (``params_W``).
"""
from __future__ import annotations

import re

import numpy as np

from .errors import GradcError
from .tracer import Spec

__all__ = ["TypeSpecError", "DTYPES", "parse_type", "parse_types", "specs_of", "example_sizes", "split_types",
           "type_trees"]

DTYPES = {"f64": np.float64, "f32": np.float32, "i64": np.int64, "i32": np.int32, "bool": np.bool_}

# Example sizes: the usual names get their own (n samples = 8, d features = 3, ...),
# other names the next free value of _PREFERRED in order of first appearance.
_BY_NAME = {"n": 8, "d": 3, "m": 5, "k": 4, "h": 6, "p": 7}
_PREFERRED = (8, 3, 5, 7, 4, 6, 9, 10, 11, 12, 13, 14, 15, 16)
_SEED = 0

_TYPE_RE = re.compile(r"^(?P<dtype>[A-Za-z_][A-Za-z0-9_]*)(?:\[(?P<dims>[^\[\]]*)\])?$")
_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")
_HELP = "expected DTYPE[DIMS] such as f64[n,d], f32[n], i64[3] or f64[] (dtypes: " + \
        ", ".join(DTYPES) + ")"


class TypeSpecError(GradcError, ValueError):
    """A TYPES entry that does not parse (bad dtype, bad dimension, bad brackets)."""


def split_types(items) -> list[str]:
    """Split command-line words into types: ``"f64[n, d] f64[d]"`` (one quoted word) gives
    ``["f64[n,d]", "f64[d]"]``; blanks inside brackets are dropped."""
    out = []
    for item in items:
        word, depth = "", 0
        for ch in str(item):
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            if ch.isspace():
                if depth > 0:
                    continue
                if word:
                    out.append(word)
                word = ""
                continue
            word += ch
        if word:
            out.append(word)
    return out


def parse_type(text: str) -> tuple[np.dtype, tuple]:
    """``"f64[n,3]"`` -> ``(dtype('float64'), ("n", 3))``; raises :class:`TypeSpecError`."""
    t = "".join(str(text).split())
    m = _TYPE_RE.match(t)
    if not m:
        if t.count("[") != t.count("]"):
            raise TypeSpecError(f"bad type {text!r}: unbalanced brackets; {_HELP}")
        raise TypeSpecError(f"bad type {text!r}: {_HELP}")
    name = m.group("dtype")
    if name not in DTYPES:
        hint = {"float64": "f64", "double": "f64", "float": "f64", "float32": "f32", "int64": "i64",
                "int": "i64", "int32": "i32", "bool_": "bool", "b": "bool"}.get(name.lower())
        extra = f" (did you mean {hint}?)" if hint else ""
        raise TypeSpecError(f"bad type {text!r}: unknown dtype {name!r}{extra}; dtypes are "
                            + ", ".join(DTYPES))
    dims_text = m.group("dims")
    dims: list = []
    if dims_text:
        for k, d in enumerate(dims_text.split(",")):
            if d == "":
                raise TypeSpecError(f"bad type {text!r}: empty dimension {k}; {_HELP}")
            if d.isdigit():
                n = int(d)
                if n < 1:
                    raise TypeSpecError(f"bad type {text!r}: dimension {k} has size {n}; a fixed size must be >= 1")
                dims.append(n)
            elif _NAME_RE.match(d):
                dims.append(d)
            else:
                raise TypeSpecError(f"bad type {text!r}: dimension {k} ({d!r}) is neither a positive "
                                    "number nor a size name such as n or d")
    return np.dtype(DTYPES[name]), tuple(dims)


def example_sizes(parsed, sizes=None) -> dict[str, int]:
    """An example value for every named size: ``sizes`` where given; else n=8, d=3, m=5,
    k=4, h=6, p=7; else the next of 8, 3, 5, 7, 4, 6, 9, 10, ...  A value is never 1,
    never a fixed size of the list, and never shared by two names."""
    sizes = dict(sizes or {})
    for k, v in sizes.items():
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise TypeSpecError(f"size {k}={v!r}: a size must be a positive integer")
    fixed = {d for _, dims in parsed for d in dims if isinstance(d, int)}
    taken = fixed | set(sizes.values())
    names = list(dict.fromkeys(d for _, dims in parsed for d in dims if isinstance(d, str)))
    out = {d: int(sizes[d]) for d in names if d in sizes}
    for d in names:
        if d not in out and d in _BY_NAME and _BY_NAME[d] not in taken:
            out[d] = _BY_NAME[d]
            taken.add(out[d])
    candidates = iter(list(_PREFERRED) + list(range(_PREFERRED[-1] + 1, 10_000)))
    for d in names:
        if d not in out:
            n = next(candidates)
            while n in taken or n == 1:
                n = next(candidates)
            out[d] = n
            taken.add(n)
    return out


def specs_of(types, sizes=None) -> list[Spec]:
    """The argument specs TYPES describe, for tracing with the size names as written:
    ``f64[n,d]`` traces with the symbols ``n`` and ``d`` (a number is a fixed size), so
    graphs, code and messages speak of the user's sizes."""
    parsed = [parse_type(w) for w in split_types(types)]
    ex = example_sizes(parsed, sizes)
    return [Spec(tuple(dims), dtype, tuple(ex[d] if isinstance(d, str) else d for d in dims))
            for dtype, dims in parsed]


def parse_types(specs, sizes=None, seed: int = _SEED) -> list[np.ndarray]:
    """Example arrays for the types ``specs`` (a list of strings, see the module doc).

    ``sizes`` optionally fixes named sizes (``{"n": 100}``).  Floats are standard-normal,
    integers uniform in ``[0, 3)``, booleans fair coin flips, drawn in order from one
    generator seeded with ``seed``, so the same TYPES always give the same arrays."""
    words = split_types(specs)
    parsed = [parse_type(w) for w in words]
    if sizes:
        names = {d for _, dims in parsed for d in dims if isinstance(d, str)}
        unknown = sorted(set(sizes) - names)
        if unknown:
            raise TypeSpecError(f"size {unknown[0]!r} is given a value but no type uses it "
                                f"(sizes in the types: {', '.join(sorted(names)) or 'none'})")
    ex = example_sizes(parsed, sizes)
    rng = np.random.default_rng(seed)
    arrays = []
    for dtype, dims in parsed:
        shape = tuple(ex[d] if isinstance(d, str) else d for d in dims)
        if dtype.kind == "f":
            a = rng.standard_normal(shape).astype(dtype)
        elif dtype.kind == "b":
            a = rng.random(shape) < 0.5
        else:
            a = rng.integers(0, 3, size=shape).astype(dtype)
        arrays.append(np.asarray(a, dtype=dtype))
    return arrays


def type_trees(types) -> list:
    """One pytree of type strings per argument, from TYPES words (``{k: T, ...}`` is a
    dict, ``(T, ...)`` a tuple; blanks may appear anywhere) or from Python trees:
    ``["{W: f64[n,d], b: f64[d]}", "f64[n]"]`` -> ``[{"W": "f64[n,d]", "b": "f64[d]"},
    "f64[n]"]``.  Raises :class:`TypeSpecError` naming the character that does not fit."""
    if isinstance(types, str):
        types = [types]
    if not all(isinstance(t, str) for t in types):
        return list(types)
    text = " ".join(types)
    pos = 0

    def fail(msg):
        raise TypeSpecError(f"TYPES {text!r}: {msg} at character {pos + 1}")

    def skip():
        nonlocal pos
        while pos < len(text) and text[pos].isspace():
            pos += 1

    def item():
        nonlocal pos
        skip()
        if pos >= len(text):
            fail("expected a type")
        if text[pos] in "{(":
            close = "}" if text[pos] == "{" else ")"
            pos += 1
            keys, vals = [], []
            while True:
                skip()
                if pos < len(text) and text[pos] == close:
                    pos += 1
                    break
                if close == "}":
                    m = re.match(r"[A-Za-z_][A-Za-z0-9_]*|'[^']*'|\"[^\"]*\"", text[pos:])
                    if not m:
                        fail("expected a key")
                    keys.append(m.group(0).strip("'\""))
                    pos += m.end()
                    skip()
                    if pos >= len(text) or text[pos] != ":":
                        fail("expected ':' after a key")
                    pos += 1
                vals.append(item())
                skip()
                if pos < len(text) and text[pos] == ",":
                    pos += 1
                elif pos >= len(text) or text[pos] != close:
                    fail(f"expected ',' or '{close}'")
            return dict(zip(keys, vals)) if close == "}" else tuple(vals)
        start, depth = pos, 0
        while pos < len(text):
            ch = text[pos]
            if ch == "[":
                depth += 1
            elif ch == "]":
                depth -= 1
            elif depth == 0 and (ch.isspace() or ch in ",:{}()"):
                break
            pos += 1
        word = "".join(text[start:pos].split())
        if not word:
            fail("expected a type")
        return word

    out = []
    skip()
    while pos < len(text):
        out.append(item())
        skip()
    return out
