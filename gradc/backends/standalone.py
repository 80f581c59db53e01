"""gradc's vector math loaded on its own, without the gradc package: vecmath.py and the
vecmath_*.py modules beside it, imported as a stand-in package whose path is their
folder (their relative imports find each other there).  setup.py compiles the prebuilt
library so, before gradc's other dependencies may be installed; tools/vecmath_speed.py
loads an older copy of the code beside the current one so; a test checks the digest of
a copy so.  Standard library only: setup.py loads this file by its path."""
from __future__ import annotations

import importlib.util
import os
import sys
import types


def load_vecmath(path: str, name: str):
    """The vecmath.py at ``path``, imported as ``name + ".vecmath"`` in a stand-in
    package ``name`` whose other modules are the files next to it."""
    package = types.ModuleType(name)
    package.__path__ = [os.path.dirname(os.path.abspath(path))]    # where its relative imports look
    sys.modules[name] = package
    spec = importlib.util.spec_from_file_location(f"{name}.vecmath", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module     # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def unload(name: str) -> None:
    """Forget stand-in package ``name`` and its modules (load_vecmath's)."""
    for m in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        sys.modules.pop(m)
