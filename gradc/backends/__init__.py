"""Backends compile an optimized graph into a callable ``run(arrays) -> [arrays]``.

``numpy`` is the reference evaluator (the oracle).  Native backends register here too."""
from __future__ import annotations

from ..errors import ArgumentError

_BACKENDS: dict = {}


def register(name, module_path):
    _BACKENDS[name] = module_path


def get(name: str):
    if name not in _BACKENDS:
        raise ArgumentError(f"unknown backend {name!r} (available: {', '.join(sorted(_BACKENDS))})")
    import importlib
    return importlib.import_module(_BACKENDS[name])


register("numpy", "gradc.backends.numpy_backend")
register("llvm", "gradc.backends.llvm_backend")
register("c", "gradc.backends.c_backend")
