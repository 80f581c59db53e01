"""Pytrees: nested containers of arrays, as in JAX's ``jax.tree_util``.

A pytree is a leaf (an array, a number, a traced value: anything not listed below) or a
container of pytrees: a ``tuple``, ``list``, ``dict``, ``namedtuple`` or a class
registered with :func:`register_pytree_node`.  ``None`` is a container with no children,
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

from typing import Any, Callable, NamedTuple

__all__ = ["PyTreeDef", "tree_flatten", "tree_unflatten", "tree_leaves", "tree_structure",
           "tree_map", "tree_flatten_with_path", "register_pytree_node", "all_leaves"]


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


def _child_keys(td: PyTreeDef) -> list:
    t = td.node_type
    if t is dict:
        return list(td.aux)
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


def _keystr(path) -> str:
    return "".join(f"[{k!r}]" for k in path)


def keystr(path) -> str:
    """``"['W1'][0]"``: a path written as Python indexing."""
    return _keystr(path)


def all_leaves(iterable) -> bool:
    """True if every element of ``iterable`` is a leaf."""
    return all(_node_of(x) is None for x in iterable)
