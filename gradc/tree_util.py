"""Pytrees: nested containers of arrays, as in JAX's ``jax.tree_util``.

A pytree is a leaf (an array, a number, a traced value: anything not listed below) or a
container of pytrees: a ``tuple``, ``list``, ``dict`` (and ``OrderedDict``,
``defaultdict``), ``namedtuple`` or a class registered with :func:`register_pytree_node`,
:func:`register_pytree_node_class` or :func:`register_dataclass`.  ``None`` is a container with no children,
so it holds no leaf.  Flattening walks a tree depth first (a dict in sorted key order)
and returns its leaves and a :class:`PyTreeDef`, the tree with the leaves taken out;
the treedef compares and hashes by structure, so it can key a cache::

    >>> from gradc.tree_util import tree_flatten, tree_unflatten, tree_map
    >>> leaves, tree = tree_flatten({"W": 1.0, "b": (2.0, None)})
    >>> leaves
    [1.0, 2.0]
    >>> tree
    PyTreeDef({'W': *, 'b': (*, None)})
    >>> tree_unflatten(tree, [10.0, 20.0])
    {'W': 10.0, 'b': (20.0, None)}
    >>> tree_map(lambda x, y: x + y, {"a": 1, "b": 2}, {"a": 10, "b": 20})
    {'a': 11, 'b': 22}

gradc's transformations flatten their arguments this way (see ``docs/pytrees.md``).
"""
from __future__ import annotations

import collections
import dataclasses
import functools
from typing import Any, Callable, NamedTuple

__all__ = ["PyTreeDef", "tree_flatten", "tree_unflatten", "tree_leaves", "tree_structure",
           "tree_map", "tree_flatten_with_path", "tree_leaves_with_path", "tree_map_with_path",
           "tree_reduce", "tree_all", "tree_transpose", "register_pytree_node", "register_pytree_node_class",
           "register_dataclass", "all_leaves", "keystr"]


class _NodeType(NamedTuple):
    flatten: Callable      # node -> (children, aux data)
    unflatten: Callable    # (aux data, children) -> node


_REGISTRY: dict[type, _NodeType] = {}


def register_pytree_node(nodetype: type, flatten_func: Callable, unflatten_func: Callable) -> None:
    """Make instances of ``nodetype`` pytree nodes.  ``flatten_func(node)`` returns
    ``(children, aux_data)`` (``aux_data`` hashable: it is part of the treedef);
    ``unflatten_func(aux_data, children)`` rebuilds the node."""
    if nodetype in _REGISTRY:
        raise ValueError(f"{nodetype.__name__} is already registered as a pytree node")
    _REGISTRY[nodetype] = _NodeType(flatten_func, unflatten_func)


def _sorted_keys(d: dict) -> tuple:
    try:
        return tuple(sorted(d))
    except TypeError:            # keys of mixed types: a deterministic order all the same
        return tuple(sorted(d, key=lambda k: (type(k).__name__, repr(k))))


register_pytree_node(tuple, lambda t: (t, None), lambda _, c: tuple(c))
register_pytree_node(list, lambda t: (t, None), lambda _, c: list(c))
register_pytree_node(dict, lambda d: ([d[k] for k in _sorted_keys(d)], _sorted_keys(d)),
                     lambda keys, c: dict(zip(keys, c)))
register_pytree_node(type(None), lambda _: ((), None), lambda _, c: None)
# As JAX: an OrderedDict keeps its keys' order (it is part of the treedef), a defaultdict
# sorts them as a dict and keeps its default factory.
register_pytree_node(collections.OrderedDict, lambda d: (list(d.values()), tuple(d)),
                     lambda keys, c: collections.OrderedDict(zip(keys, c)))
register_pytree_node(collections.defaultdict,
                     lambda d: ([d[k] for k in _sorted_keys(d)], (d.default_factory, _sorted_keys(d))),
                     lambda aux, c: collections.defaultdict(aux[0], zip(aux[1], c)))


def register_pytree_node_class(cls: type) -> type:
    """Class decorator: ``cls`` defines ``tree_flatten(self) -> (children, aux_data)``
    and a classmethod ``tree_unflatten(aux_data, children)``, as in JAX."""
    register_pytree_node(cls, lambda x: x.tree_flatten(), cls.tree_unflatten)
    return cls


def register_dataclass(nodetype: type | None = None, data_fields=None, meta_fields=None, drop_fields=()):
    """Make a dataclass a pytree node, as JAX's ``register_dataclass``: its
    ``data_fields`` are children (arrays, or subtrees), its ``meta_fields`` are static
    (hashable, part of the treedef: a change compiles again).  Without the lists, the
    fields come from the dataclass: a field declared with
    ``dataclasses.field(metadata={"static": True})`` is a meta field, every other one a
    data field.  Usable as a class decorator (``@register_dataclass``)."""
    if nodetype is None:
        return functools.partial(register_dataclass, data_fields=data_fields, meta_fields=meta_fields,
                                 drop_fields=drop_fields)
    if (data_fields is None) != (meta_fields is None):
        raise TypeError("register_dataclass: give both data_fields and meta_fields, or neither")
    if data_fields is None:
        if not dataclasses.is_dataclass(nodetype):
            raise TypeError(f"register_dataclass: {nodetype.__name__} is not a dataclass; "
                            "decorate it with @dataclasses.dataclass first, or give data_fields and meta_fields")
        fields = [f for f in dataclasses.fields(nodetype) if f.init and f.name not in drop_fields]
        meta_fields = [f.name for f in fields if f.metadata.get("static", False)]
        data_fields = [f.name for f in fields if not f.metadata.get("static", False)]
    data_fields, meta_fields = tuple(data_fields), tuple(meta_fields)
    if dataclasses.is_dataclass(nodetype):
        init_fields = {f.name for f in dataclasses.fields(nodetype) if f.init} - set(drop_fields)
        missing = init_fields - set(data_fields) - set(meta_fields)
        if missing:
            raise ValueError(f"register_dataclass: {nodetype.__name__}'s fields {sorted(missing)} are in neither "
                             "data_fields nor meta_fields")

    def flatten(x):
        return [getattr(x, k) for k in data_fields], tuple(getattr(x, k) for k in meta_fields)

    def unflatten(meta, children):
        return nodetype(**dict(zip(data_fields, children)), **dict(zip(meta_fields, meta)))
    register_pytree_node(nodetype, flatten, unflatten)
    _FIELD_NAMES[nodetype] = data_fields
    return nodetype


_FIELD_NAMES: dict = {}     # a registered dataclass's data fields: its children's path keys


def _is_namedtuple(x) -> bool:
    return isinstance(x, tuple) and hasattr(type(x), "_fields") and type(x) is not tuple


def _node_of(x):
    """(node type, its flatten/unflatten) for a container, or None for a leaf."""
    if _is_namedtuple(x):
        return type(x), _NodeType(lambda t: (tuple(t), None), lambda _, c, cls=type(x): cls(*c))
    t = type(x)
    entry = _REGISTRY.get(t)
    return (t, entry) if entry is not None else None


class PyTreeDef:
    """The structure of a pytree: its containers, with the leaves taken out.

    Two treedefs are equal when their containers are of the same types with the same
    keys (dict keys, namedtuple classes, registered nodes' aux data) and the same
    nesting.  ``num_leaves`` counts the leaves; ``unflatten(leaves)`` rebuilds a tree."""

    __slots__ = ("node_type", "aux", "children", "num_leaves", "_hash")

    def __init__(self, node_type, aux, children: tuple):
        self.node_type = node_type          # None for a leaf
        self.aux = aux
        self.children = children
        self.num_leaves = 1 if node_type is None else sum(c.num_leaves for c in children)
        self._hash = hash((node_type, aux, children))

    def is_leaf(self) -> bool:
        """True for the treedef of a single leaf."""
        return self.node_type is None

    def unflatten(self, leaves):
        return tree_unflatten(self, leaves)

    def __eq__(self, other):
        if self is other:
            return True
        return (isinstance(other, PyTreeDef) and self._hash == other._hash
                and self.node_type is other.node_type and self.aux == other.aux
                and self.children == other.children)

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"PyTreeDef({self._show()})"

    def _show(self) -> str:
        t = self.node_type
        if t is None:
            return "*"
        kids = [c._show() for c in self.children]
        if t is type(None):
            return "None"
        if t is tuple:
            return "(" + ", ".join(kids) + ("," if len(kids) == 1 else "") + ")"
        if t is list:
            return "[" + ", ".join(kids) + "]"
        if t is dict:
            return "{" + ", ".join(f"{k!r}: {c}" for k, c in zip(self.aux, kids)) + "}"
        if hasattr(t, "_fields"):
            return f"{t.__name__}(" + ", ".join(f"{k}={c}" for k, c in zip(t._fields, kids)) + ")"
        return f"{t.__name__}[{self.aux!r}](" + ", ".join(kids) + ")"


_LEAF = PyTreeDef(None, None, ())


def tree_flatten(tree, is_leaf: Callable[[Any], bool] | None = None):
    """``(leaves, treedef)``: the leaves of ``tree`` depth first, and its structure.
    ``is_leaf(x)`` True stops the walk at ``x`` (it becomes one leaf)."""
    leaves: list = []
    return leaves, _flatten(tree, is_leaf, leaves)


def _flatten(x, is_leaf, leaves) -> PyTreeDef:
    if is_leaf is not None and is_leaf(x):
        leaves.append(x)
        return _LEAF
    node = _node_of(x)
    if node is None:
        leaves.append(x)
        return _LEAF
    t, nt = node
    children, aux = nt.flatten(x)
    return PyTreeDef(t, aux, tuple(_flatten(c, is_leaf, leaves) for c in children))


def flatten_as(treedef: PyTreeDef, tree, is_leaf=None):
    """The leaves of ``tree`` if its structure is ``treedef``, else None: the
    ``tree_flatten`` and comparison of a call path, without building a treedef."""
    out: list = []
    return out if _match(treedef, tree, is_leaf, out) else None


def _match(td: PyTreeDef, x, is_leaf, out) -> bool:
    t = td.node_type
    if t is None:
        if (is_leaf is not None and is_leaf(x)) or _node_of(x) is None:
            out.append(x)
            return True
        return False
    if type(x) is not t or (is_leaf is not None and is_leaf(x)):
        return False
    if t is dict:
        if len(x) != len(td.aux):
            return False
        try:
            return all(_match(c, x[k], is_leaf, out) for k, c in zip(td.aux, td.children))
        except KeyError:
            return False
    if t is tuple or t is list or (hasattr(t, "_fields") and issubclass(t, tuple)):
        return len(x) == len(td.children) and all(_match(c, e, is_leaf, out) for c, e in zip(td.children, x))
    if x is None:
        return True
    children, aux = _REGISTRY[t].flatten(x)
    return aux == td.aux and len(children) == len(td.children) and \
        all(_match(c, e, is_leaf, out) for c, e in zip(td.children, children))


def tree_unflatten(treedef: PyTreeDef, leaves):
    """The tree of structure ``treedef`` holding ``leaves`` (in tree_flatten's order)."""
    leaves = list(leaves)
    if len(leaves) != treedef.num_leaves:
        raise ValueError(f"tree_unflatten: {treedef} has {treedef.num_leaves} leaves, "
                         f"but {len(leaves)} were given")
    it = iter(leaves)
    return _unflatten(treedef, it)


def _unflatten(td: PyTreeDef, it):
    if td.node_type is None:
        return next(it)
    children = [_unflatten(c, it) for c in td.children]
    if hasattr(td.node_type, "_fields") and issubclass(td.node_type, tuple):
        return td.node_type(*children)
    return _REGISTRY[td.node_type].unflatten(td.aux, children)


def tree_leaves(tree, is_leaf=None) -> list:
    """The leaves of ``tree``, depth first (dicts in sorted key order)."""
    return tree_flatten(tree, is_leaf)[0]


def tree_structure(tree, is_leaf=None) -> PyTreeDef:
    """The treedef of ``tree``."""
    return tree_flatten(tree, is_leaf)[1]


def tree_map(f: Callable, tree, *rest, is_leaf=None):
    """A tree of ``tree``'s structure whose leaves are ``f(leaf, *matching leaves of rest)``.
    Every tree in ``rest`` must have ``tree``'s structure (it may hold subtrees where
    ``tree`` has leaves, as in JAX: those subtrees are passed whole)."""
    leaves, td = tree_flatten(tree, is_leaf)
    others = [_flatten_up_to(td, r) for r in rest]
    return tree_unflatten(td, [f(*xs) for xs in zip(leaves, *others)])


def _flatten_up_to(td: PyTreeDef, tree) -> list:
    """The subtrees of ``tree`` at the leaf positions of ``td``."""
    out: list = []

    def walk(t: PyTreeDef, x, path):
        if t.node_type is None:
            out.append(x)
            return
        node = _node_of(x)
        if node is None or node[0] is not t.node_type:
            raise ValueError(f"tree_map: at {_keystr(path) or 'the root'} the first tree has "
                             f"{PyTreeDef(t.node_type, t.aux, t.children)} but another has "
                             f"{type(x).__name__} {x!r:.60}")
        children, aux = node[1].flatten(x)
        if aux != t.aux or len(children) != len(t.children):
            raise ValueError(f"tree_map: at {_keystr(path) or 'the root'} the trees differ: "
                             f"{t} vs {tree_structure(x)}")
        keys = _child_keys(t)
        for k, c, ct in zip(keys, children, t.children):
            walk(ct, c, path + (k,))
    walk(td, tree, ())
    return out


def broadcast_prefix(prefix, tree, is_leaf=None) -> list:
    """For each leaf of ``tree``, the value of ``prefix`` (a tree whose structure is a
    prefix of ``tree``'s: its leaves stand for whole subtrees, as vmap's ``in_axes``) at
    that leaf's place.  ``None`` in ``prefix`` is a leaf.  Raises ValueError naming the
    place where the structures differ."""
    values, td = tree_flatten(prefix, is_leaf=lambda x: x is None)
    out: list = []
    for v, sub in zip(values, _flatten_up_to(td, tree)):
        out += [v] * len(tree_leaves(sub, is_leaf))
    return out


def _child_keys(td: PyTreeDef) -> list:
    t = td.node_type
    if t is dict or t is collections.OrderedDict:
        return list(td.aux)
    if t is collections.defaultdict:
        return list(td.aux[1])
    if t in _FIELD_NAMES:
        return list(_FIELD_NAMES[t])
    if hasattr(t, "_fields") and issubclass(t, tuple):
        return list(t._fields)
    return list(range(len(td.children)))


def tree_flatten_with_path(tree, is_leaf=None):
    """``([(path, leaf), ...], treedef)``; a path is a tuple of dict keys, sequence
    indices and namedtuple field names from the root to the leaf."""
    leaves, td = tree_flatten(tree, is_leaf)
    return list(zip(leaf_paths(td), leaves)), td


def leaf_paths(td: PyTreeDef) -> list[tuple]:
    """The path of each leaf of ``td``, in leaf order."""
    out: list = []

    def walk(t, path):
        if t.node_type is None:
            out.append(path)
            return
        for k, c in zip(_child_keys(t), t.children):
            walk(c, path + (k,))
    walk(td, ())
    return out


def tree_leaves_with_path(tree, is_leaf=None) -> list:
    """``[(path, leaf), ...]``: the first half of :func:`tree_flatten_with_path`."""
    return tree_flatten_with_path(tree, is_leaf)[0]


def tree_map_with_path(f: Callable, tree, *rest, is_leaf=None):
    """:func:`tree_map` whose ``f`` also receives each leaf's path first:
    ``f(path, leaf, *matching leaves of rest)``."""
    leaves, td = tree_flatten(tree, is_leaf)
    others = [_flatten_up_to(td, r) for r in rest]
    return tree_unflatten(td, [f(p, *xs) for p, xs in zip(leaf_paths(td), zip(leaves, *others))])


_NO_INITIAL = object()


def tree_reduce(function: Callable, tree, initializer=_NO_INITIAL, is_leaf=None):
    """``functools.reduce(function, tree_leaves(tree))``, with ``initializer`` first
    when given (an empty tree without one raises TypeError, as reduce does)."""
    leaves = tree_leaves(tree, is_leaf)
    if initializer is _NO_INITIAL:
        return functools.reduce(function, leaves)
    return functools.reduce(function, leaves, initializer)


def tree_all(tree, is_leaf=None) -> bool:
    """True if every leaf of ``tree`` is truthy."""
    return all(tree_leaves(tree, is_leaf))


def tree_transpose(outer_treedef: PyTreeDef, inner_treedef: PyTreeDef | None, pytree_to_transpose):
    """``jax.tree_util.tree_transpose``: a tree of ``outer_treedef``'s structure whose
    leaves are trees of ``inner_treedef``'s becomes a tree of the inner structure whose
    leaves are trees of the outer one (a list of dicts into a dict of lists).
    ``inner_treedef=None``: the structure of the first inner tree."""
    if not isinstance(outer_treedef, PyTreeDef):
        raise TypeError(f"tree_transpose: outer_treedef must be a PyTreeDef, got {type(outer_treedef).__name__}")
    inners = _flatten_up_to(outer_treedef, pytree_to_transpose)
    if inner_treedef is None:
        if not inners:
            raise ValueError("tree_transpose: inner_treedef=None needs an outer tree with at least one leaf")
        inner_treedef = tree_structure(inners[0])
    if not isinstance(inner_treedef, PyTreeDef):
        raise TypeError(f"tree_transpose: inner_treedef must be a PyTreeDef or None, got {type(inner_treedef).__name__}")
    rows = []
    for path, sub in zip(leaf_paths(outer_treedef), inners):
        leaves, td = tree_flatten(sub)
        if td != inner_treedef:
            raise ValueError(f"tree_transpose: the subtree at {_keystr(path) or 'the root'} has structure {td}, "
                             f"expected inner_treedef {inner_treedef}")
        rows.append(leaves)
    columns = [tree_unflatten(outer_treedef, [row[i] for row in rows]) for i in range(inner_treedef.num_leaves)]
    return tree_unflatten(inner_treedef, columns)


def _keystr(path) -> str:
    return "".join(f"[{k!r}]" for k in path)


def keystr(path) -> str:
    """``"['W1'][0]"``: a path written as Python indexing."""
    return _keystr(path)


def all_leaves(iterable) -> bool:
    """True if every element of ``iterable`` is a leaf."""
    return all(_node_of(x) is None for x in iterable)


# ----------------------------------------------------------------------------- compiled walks
# A call path that sees the same structure on every call can check it with straight-line
# code: ``compile_flatten`` and ``compile_unflatten`` generate that code for given
# treedefs (as ``collections.namedtuple`` generates its class).  Registered node types
# other than tuple, list, dict, None and namedtuples are walked by the generic code.
_BUILTIN_NODES = (tuple, list, dict, type(None))


def _compilable(td: PyTreeDef) -> bool:
    t = td.node_type
    if t is not None and t not in _BUILTIN_NODES and not (hasattr(t, "_fields") and issubclass(t, tuple)):
        return False
    return all(_compilable(c) for c in td.children)


def compile_flatten(treedefs, is_leaf=None):
    """A function ``flatten(*args)`` returning the leaves of ``args`` (a tuple, in
    :func:`tree_flatten`'s order) when there are ``len(treedefs)`` of them and each has
    its treedef's containers -- the same types, lengths and dict keys -- else None.  What
    sits where a treedef has a leaf is returned as it is, not checked to be a leaf: the
    caller checks leaves (gradc's C call path accepts only arrays and numbers).  A list
    or tuple for which ``is_leaf`` is true is a leaf (the structure differs: None).
    Returns None when a treedef holds a node type this does not compile."""
    treedefs = tuple(treedefs)
    if not all(_compilable(td) for td in treedefs):
        return None
    ns: dict = {"_is_leaf": is_leaf}
    lines, leaves = [], []
    counter = [0]

    def const(value) -> str:
        name = f"_c{len(ns)}"
        ns[name] = value
        return name

    def walk(td: PyTreeDef, var: str, indent: str):
        t = td.node_type
        if t is None:
            leaves.append(var)
            return
        if t is type(None):
            lines.append(f"{indent}if {var} is not None: return None")
            return
        n = len(td.children)
        lines.append(f"{indent}if type({var}) is not {const(t)} or len({var}) != {n}: return None")
        if (t is list or t is tuple) and is_leaf is not None:
            lines.append(f"{indent}if _is_leaf({var}): return None")
        keys = [const(k) for k in td.aux] if t is dict else [str(i) for i in range(n)]
        for k, child in zip(keys, td.children):
            if child.node_type is None:
                leaves.append(f"{var}[{k}]")
                continue
            counter[0] += 1
            sub = f"v{counter[0]}"
            lines.append(f"{indent}{sub} = {var}[{k}]")
            walk(child, sub, indent)

    args = [f"a{i}" for i in range(len(treedefs))]
    for a, td in zip(args, treedefs):
        walk(td, a, "        ")
    unpack = f"        {', '.join(args)}{',' if len(args) == 1 else ''} = args\n" if args else ""
    src = ("def flatten(*args):\n"
           f"    if len(args) != {len(treedefs)}: return None\n"
           "    try:\n" + unpack + "".join(line + "\n" for line in lines) +
           f"        return ({', '.join(leaves)}{',' if len(leaves) == 1 else ''})\n"
           "    except KeyError:\n"
           "        return None\n")
    exec(compile(src, "<gradc.tree_util.compile_flatten>", "exec"), ns)   # noqa: S102 (generated above)
    return ns["flatten"]


def compile_unflatten(treedef: PyTreeDef):
    """A function ``unflatten(leaves)`` equal to ``tree_unflatten(treedef, leaves[-n:])``
    with ``n = treedef.num_leaves``, without the checks (the caller passes a sequence of
    at least n leaves).  Returns None when ``treedef`` holds a node type this does not
    compile."""
    if not _compilable(treedef):
        return None
    ns: dict = {}
    pos = [0]

    def const(value) -> str:
        name = f"_c{len(ns)}"
        ns[name] = value
        return name

    def expr(td: PyTreeDef) -> str:
        t = td.node_type
        if t is None:
            pos[0] += 1
            return f"o[b + {pos[0] - 1}]"
        if t is type(None):
            return "None"
        kids = [expr(c) for c in td.children]
        if t is dict:
            return "{" + ", ".join(f"{const(k)}: {e}" for k, e in zip(td.aux, kids)) + "}"
        if t is tuple:
            return "(" + ", ".join(kids) + ("," if len(kids) == 1 else "") + ")"
        if t is list:
            return "[" + ", ".join(kids) + "]"
        return f"{const(t)}(" + ", ".join(kids) + ")"          # a namedtuple

    body = expr(treedef)
    src = (f"def unflatten(o):\n    b = len(o) - {treedef.num_leaves}\n    return {body}\n")
    exec(compile(src, "<gradc.tree_util.compile_unflatten>", "exec"), ns)   # noqa: S102 (generated above)
    return ns["unflatten"]
