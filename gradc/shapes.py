"""Symbolic shapes.

A dimension is either an ``int`` (a size fixed at trace time; 1 marks a broadcast
dimension) or a ``str`` naming a size known only at run time (``"n"``).  A graph traced
for ``x`` of shape ``(n,)`` serves every ``n``: gradc specializes only on rank, dtype and
which dimensions are 1 (Theano's broadcastable pattern).

During tracing a :class:`ShapeEnv` unifies symbols (``X @ w`` says ``X.shape[1]`` and
``w.shape[0]`` are one size) with a union-find, binds a symbol to an int when it meets
a fixed size (a numpy constant, or user code reading ``x.shape``), and records lower
bounds (``x[1:4]`` needs ``n >= 4``).  These become the graph's call-time checks.
"""
from __future__ import annotations

from .errors import ShapeError

Dim = int | str
Shape = tuple  # tuple[Dim, ...]

_NAMES = "nmkpqrstuvabcdefghij"


def fmt_shape(shape: Shape) -> str:
    return "[" + ",".join(str(d) for d in shape) + "]"


class ShapeEnv:
    """Union-find over size symbols, with their example values and lower bounds."""

    def __init__(self):
        self._parent: dict[str, Dim] = {}
        self.example: dict[str, int] = {}
        self.minimum: dict[str, int] = {}
        self._count = 0
        self._given: set[str] = set()   # names chosen by the caller (see shown)
        # names ``new`` never picks: an enclosing trace's sizes (a nested trace names the
        # sizes of the values it closes over as the enclosing one does, so a name means
        # one size in both)
        self.reserved: set[str] = set()
        # sizes named by the caller that ``pin`` fixed: {name: (value, where)}; where()
        # (set by the tracer: the user's line) says where
        self.fixed: dict[str, tuple[int, str]] = {}
        self.where = None

    def new(self, example: int) -> str:
        while True:
            i = self._count
            self._count += 1
            name = _NAMES[i % len(_NAMES)] + (str(i // len(_NAMES)) if i >= len(_NAMES) else "")
            if name not in self._parent and name not in self.reserved:
                break
        self._parent[name] = name
        self.example[name] = int(example)
        return name

    def named(self, name: str, example: int) -> Dim:
        """The symbol ``name`` (created on first use), so a transformed graph keeps the
        size names of the graph it came from."""
        if name not in self._parent:
            self._parent[name] = name
            self.example[name] = int(example)
            self._given.add(name)
        return self.find(name)

    def find(self, d: Dim) -> Dim:
        if isinstance(d, int):
            return d
        root = d
        while isinstance(root, str) and self._parent.get(root, root) != root:
            root = self._parent[root]
        # path compression
        while isinstance(d, str) and d != root and self._parent.get(d, d) != d:
            self._parent[d], d = root, self._parent[d]
        return root

    def canon(self, shape: Shape) -> Shape:
        return tuple(self.find(d) for d in shape)

    def value(self, d: Dim) -> int:
        """The example (trace-time) value of a dimension."""
        d = self.find(d)
        return d if isinstance(d, int) else self.example[d]

    def shown(self, d: Dim) -> Dim:
        """A dimension as a message shows it: by the name it was given (``gradc graph
        m.py:f 'f64[n,d]'`` traces with the user's names), else by its example value (a
        name gradc made up would mean nothing to the caller)."""
        d = self.find(d)
        return d if isinstance(d, str) and d in self._given else self.value(d)

    def equal(self, a: Dim, b: Dim, what: str) -> Dim:
        """Declare two dimensions the same size; returns the unified dimension."""
        a, b = self.find(a), self.find(b)
        if a == b:
            return a
        if isinstance(a, int) and isinstance(b, int):
            raise ShapeError(f"{what}: sizes {a} and {b} do not agree")
        if isinstance(a, int):
            a, b = b, a
        elif isinstance(b, str) and self._order(b) > self._order(a):
            a, b = b, a  # keep the older symbol as the root: names stay stable
        # a is a symbol; b is a symbol or an int
        if self.example[a] != self.value(b):
            raise ShapeError(f"{what}: sizes {self.shown(a)} and {self.shown(b)} do not agree")
        self._parent[a] = b
        lo = self.minimum.pop(a, 0)
        if isinstance(b, str) and lo:
            self.minimum[b] = max(self.minimum.get(b, 0), lo)
        return b

    def _order(self, s: str) -> int:
        return list(self.example).index(s)

    def pin(self, d: Dim) -> int:
        """Fix a symbolic size to its example value (user code needed the number);
        for the sizes the caller named, ``self.where()`` records where."""
        d = self.find(d)
        if isinstance(d, int):
            return d
        v = self.example[d]
        named = [n for n in self._given if self.find(n) == d]
        self._parent[d] = v
        if named:
            at = self.where() if self.where else ""
            for n in named:
                self.fixed.setdefault(n, (v, at))
        return v

    def at_least(self, d: Dim, k: int) -> None:
        d = self.find(d)
        if isinstance(d, str):
            self.minimum[d] = max(self.minimum.get(d, 0), k)

    def broadcast(self, shapes: list[Shape], what: str) -> Shape:
        """numpy broadcasting over symbolic shapes (size-1 dims are always ints)."""
        rank = max((len(s) for s in shapes), default=0)
        out = []
        for i in range(rank):
            dims = [self.find(s[len(s) - rank + i]) for s in shapes if len(s) - rank + i >= 0]
            non_one = [d for d in dims if d != 1]
            d = 1
            for e in non_one:
                try:
                    d = e if d == 1 else self.equal(d, e, what)
                except ShapeError:
                    shown = " and ".join(fmt_shape(tuple(self.shown(x) for x in s)) for s in shapes)
                    raise ShapeError(f"{what}: shapes {shown} cannot be broadcast together") from None
            out.append(d)
        return tuple(out)


def resolve(shape: Shape, sizes: dict[str, int]) -> tuple[int, ...]:
    """Concrete shape of a symbolic one, given the run-time sizes of the symbols."""
    return tuple(d if isinstance(d, int) else sizes[d] for d in shape)


def common_ends(a, b) -> tuple[int, int]:
    """(p, q): ``a`` and ``b`` (sequences of sizes or symbols) begin with the same p
    entries and end with the same q, the two parts not overlapping.  A row-major reshape
    between them keeps those axes as they are and reshapes only the middle."""
    p = 0
    while p < min(len(a), len(b)) and a[p] == b[p]:
        p += 1
    q = 0
    while q < min(len(a), len(b)) - p and a[len(a) - 1 - q] == b[len(b) - 1 - q]:
        q += 1
    return p, q
