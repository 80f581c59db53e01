"""What a ``gradc`` command's arguments name: ``FILE.py:FUNC`` loaded as a function,
``--wrt`` as argnums, ``--size`` as example sizes, and TYPES (:mod:`gradc.typespec`,
pytrees of types included) as example arrays.  Shared by the commands (:mod:`gradc.cli`, :mod:`gradc.aot`,
:mod:`gradc.bench`), which import it and never each other."""
from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import traceback

from .errors import GradcError


class CLIError(GradcError):
    """A command-line error reported as one line (missing file, missing tool, ...)."""


_MODEL_FILES: set = set()   # files loaded by load_function: where errors are located


def load_function(target: str):
    """``"path/to/model.py:loss"`` -> the function ``loss`` defined in that file."""
    path, sep, name = target.rpartition(":")
    if not sep or not path or not name:
        raise CLIError(f"expected FILE.py:FUNC (e.g. model.py:loss), got {target!r}")
    if not os.path.isfile(path):
        what = "is a directory" if os.path.isdir(path) else "does not exist"
        raise CLIError(f"{path}: file {what}")
    shown, path = path, os.path.abspath(path)
    modname = "_gradc_model_" + "".join(c if c.isalnum() else "_" for c in
                                       os.path.splitext(os.path.basename(path))[0])
    spec = importlib.util.spec_from_file_location(modname, path)
    if spec is None or spec.loader is None:
        raise CLIError(f"{target}: cannot load {path} as a Python module (does it end in .py?)")
    module = importlib.util.module_from_spec(spec)
    sys.modules[modname] = module
    _MODEL_FILES.add(path)
    folder = os.path.dirname(path)
    sys.path.insert(0, folder)           # the model may import modules beside it
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        where = shown if os.path.abspath(e.filename or path) == path else e.filename
        raise CLIError(f"{where}:{e.lineno}: syntax error: {e.msg}") from None
    except GradcError as e:
        raise CLIError(f"while loading {shown}: {with_frame(str(e), e, path)}") from None
    except Exception as e:
        raise CLIError(f"while loading {shown}: {with_frame(f'{type(e).__name__}: {e}', e, path)}") from None
    finally:
        if sys.path and sys.path[0] == folder:
            sys.path.pop(0)
    fn = getattr(module, name, None)
    if fn is None:
        funcs = sorted(k for k, v in vars(module).items()
                       if inspect.isfunction(v) and v.__module__ == modname and not k.startswith("_"))
        hint = f" (functions defined there: {', '.join(funcs)})" if funcs else " (it defines no functions)"
        raise CLIError(f"{shown}: no function named {name!r}{hint}")
    if not callable(fn):
        raise CLIError(f"{shown}: {name!r} is a {type(fn).__name__}, not a function")
    return fn


def user_frame(exc, path=None) -> str:
    """`` (at model.py:12)``: the innermost frame of the exception in a model file."""
    files = _MODEL_FILES | ({path} if path else set())
    where = None
    for fr in traceback.extract_tb(exc.__traceback__):
        if os.path.abspath(fr.filename) in files:
            where = fr
    if where is None:
        return ""
    try:
        shown = os.path.relpath(where.filename)
    except ValueError:
        shown = where.filename
    if shown.startswith(".." + os.sep + ".."):
        shown = where.filename
    return f" (at {shown}:{where.lineno})"


def with_frame(msg: str, exc, path=None) -> str:
    """``msg`` plus where in the model it happened, unless ``msg`` already says so."""
    where = user_frame(exc, path)
    loc = where[len(" (at "):-1]
    if where and os.path.basename(loc) not in msg:
        return msg + where
    return msg


def parse_wrt(text: str | None, fn):
    """``"0,1"`` or ``"w,b"`` -> ``(0, 1)``; a single entry gives an int (``"0"`` -> 0)."""
    if text is None:
        return 0
    try:
        params = [p.name for p in inspect.signature(fn).parameters.values()
                  if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    except (TypeError, ValueError):
        params = []
    out = []
    for item in text.split(","):
        item = item.strip()
        if item.lstrip("-").isdigit():
            out.append(int(item))
        elif item in params:
            out.append(params.index(item))
        else:
            known = f" (arguments: {', '.join(params)})" if params else ""
            raise CLIError(f"--wrt {text}: {item!r} is neither an argument index nor an argument name{known}")
    return out[0] if len(out) == 1 else tuple(out)


def parse_sizes(items) -> dict:
    """``["n=100", "d=4"]`` (or ``"n=100,d=4"``) -> ``{"n": 100, "d": 4}``."""
    sizes = {}
    for item in items or ():
        for part in item.split(","):
            k, sep, v = part.partition("=")
            if not sep or not k.strip() or not v.strip().isdigit() or int(v) < 1:
                raise CLIError(f"--size {part}: expected NAME=POSITIVE_INT such as n=100")
            sizes[k.strip()] = int(v)
    return sizes


def target(args):
    """``(function, specs, flat)`` for a ``FILE.py:FUNC TYPES...`` command line.  TYPES
    may be pytrees (:func:`gradc.typespec.type_trees`); ``flat`` (a :class:`gradc.api.Flat`)
    says how they flatten to the graph's inputs, ``flat.names`` names them, and
    ``specs`` is one spec per leaf keeping the size names of TYPES, so what the command
    prints uses them."""
    from .api import Flat, _names, prepare
    from .tree_util import tree_flatten
    from .typespec import parse_types, specs_of, type_trees
    sizes = parse_sizes(args.size)
    trees = type_trees(args.types)
    leaves = tree_flatten(trees)[0]
    specs = specs_of(leaves, sizes=sizes)   # bad types fail before loading
    fn = load_function(args.target)
    check_arity(fn, trees, args.types)
    flat = Flat(trees, _names(fn, len(trees)))
    # the example arrays of these types meet the checks every call meets (ranks, dtypes)
    prepare(parse_types(leaves, sizes=sizes), (), getattr(fn, "__name__", "f"), flat.labels, flat.positions)
    return fn, specs, flat


def check_arity(fn, arrays, types):
    """One TYPES entry (a type or a tree of types: ``arrays`` has one per argument) per
    positional argument of ``fn`` (defaults may be left out)."""
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return
    try:
        sig.bind(*arrays)
    except TypeError:
        from .typespec import split_types
        params = [p for p in sig.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        required = [p for p in params if p.default is p.empty]
        many = f"{len(required)}" if len(required) == len(params) else f"{len(required)} to {len(params)}"
        if any(p.kind == p.VAR_POSITIONAL for p in sig.parameters.values()):
            many = f"at least {len(required)}"
        words = split_types(types)
        name = getattr(fn, "__name__", "the function")
        n = len(arrays)        # one per argument: a tree of types counts once
        given = f"{n} type was" if n == 1 else f"{n} types were"
        raise CLIError(f"{name}({', '.join(p.name for p in params)}) takes {many} "
                       f"argument{'' if many == '1' else 's'}, but {given} given: {' '.join(words)}") from None
